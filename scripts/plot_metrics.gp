# Loss and accuracy curves from a tapegrad metrics CSV, as PNG.
# Called by `tapegrad train` as:
#   gnuplot -e 'csv="run/metrics.csv"; out="run/curves.png"; title="..."' scripts/plot_metrics.gp
# Columns: epoch,train_loss,val_loss,val_acc,seconds,lr, then with --log-grad-norms one
# grad_norm_<parameter> column per parameter, drawn in a third panel on a log scale.
if (!exists("csv")) csv = "metrics.csv"
if (!exists("out")) out = "curves.png"
if (!exists("title")) title = "tapegrad"
set datafile separator ","
stats csv using 1 skip 1 nooutput
ncols = STATS_columns
norms = ncols > 6
set terminal pngcairo size (norms ? 1500 : 1000),420 font "sans,10" noenhanced
set output out
set key autotitle columnhead
if (norms) { set multiplot layout 1,3 title title noenhanced } else { set multiplot layout 1,2 title title noenhanced }
set xlabel "epoch"
set grid
set ylabel "loss"
plot csv using 1:2 with linespoints lw 2 title "train loss", \
     csv using 1:3 with linespoints lw 2 title "validation loss"
set ylabel "accuracy"
plot csv using 1:4 with linespoints lw 2 title "validation accuracy"
if (norms) {
    set ylabel "gradient L2 norm (mean over the epoch's steps)"
    set logscale y
    plot for [i=7:ncols] csv using 1:i with linespoints lw 2 title columnhead(i)
}
unset multiplot
