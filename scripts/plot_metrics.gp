# Loss and accuracy curves from a tapegrad metrics CSV, as PNG.
# Called by `tapegrad train` as:
#   gnuplot -e 'csv="run/metrics.csv"; out="run/curves.png"; title="..."' scripts/plot_metrics.gp
# Columns: epoch,train_loss,val_loss,val_acc,seconds,lr
if (!exists("csv")) csv = "metrics.csv"
if (!exists("out")) out = "curves.png"
if (!exists("title")) title = "tapegrad"
set terminal pngcairo size 1000,420 font "sans,10" noenhanced
set output out
set datafile separator ","
set key autotitle columnhead
set multiplot layout 1,2 title title noenhanced
set xlabel "epoch"
set grid
set ylabel "loss"
plot csv using 1:2 with linespoints lw 2 title "train loss", \
     csv using 1:3 with linespoints lw 2 title "validation loss"
set ylabel "accuracy"
plot csv using 1:4 with linespoints lw 2 title "validation accuracy"
unset multiplot
