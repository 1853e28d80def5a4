#pragma once
// What the trainer shows and writes: a terminal progress bar, the per-epoch
// metrics CSV, loss/accuracy curves (SVG written here, PNG through gnuplot when
// it is installed) and the confusion matrix. No xtensor here: this file
// compiles in seconds and is unit-tested on its own.

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

namespace tapegrad::app {

/// One line of the metrics CSV.
struct epoch_record {
    std::size_t epoch = 0;     ///< 1-based epoch number
    double train_loss = 0;     ///< mean training loss over the epoch's batches
    double val_loss = 0;       ///< mean loss on the validation split
    double val_acc = 0;        ///< accuracy on the validation split
    double seconds = 0;        ///< wall time of the epoch (training + validation)
    double lr = 0;             ///< learning rate at the end of the epoch
};

/// Extra per-epoch columns after `lr` (tapegrad train --log-grad-norms writes
/// grad_norm_<parameter>): their names, and per CSV row one value per name.
struct metric_columns {
    std::vector<std::string> names;        ///< column headers, e.g. "grad_norm_0.weight"
    std::vector<std::vector<double>> rows;  ///< rows[i][k]: row i's value of column k
};

/// Write `rows` as CSV with the header epoch,train_loss,val_loss,val_acc,seconds,lr
/// (then `extra`'s columns, when given; it needs one row per row).
/// Losses are printed with 17 significant digits so a CSV identifies a run bit for bit.
/// Written aside, fsync'ed and renamed (apps/durable_io): a crash or a full disk
/// leaves the previous file. Throws write_error naming the file, or
/// std::runtime_error when `path` is not a regular file (a device, a link to /dev/full).
void write_metrics_csv(const std::string& path, const std::vector<epoch_record>& rows,
                       const metric_columns* extra = nullptr);
/// Read a CSV written by write_metrics_csv (its extra columns into `extra` when
/// given); throws std::runtime_error naming the file and line on anything else.
std::vector<epoch_record> read_metrics_csv(const std::string& path, metric_columns* extra = nullptr);

/// Draw train/validation loss and validation accuracy against epoch as a
/// self-contained SVG (two panels). No dependency; throws write_error naming the
/// file when a write or the close fails (a full disk).
/// With `extra` columns (gradient norms), a third panel draws them on a log scale.
void write_svg_plot(const std::string& path, const std::vector<epoch_record>& rows, const std::string& title,
                    const metric_columns* extra = nullptr);
/// Draw the same plot as PNG with gnuplot and scripts/plot_metrics.gp. Returns
/// false, having written nothing, when gnuplot is missing, fails, or runs longer
/// than `timeout_seconds` (it is then killed: gnuplot reading an endless file
/// never hangs the trainer); `why` then says which ("not installed" when it is
/// missing).
bool write_png_plot_gnuplot(const std::string& png_path, const std::string& csv_path, const std::string& title,
                            double timeout_seconds = 30, std::string* why = nullptr);

/// Run the program `args[0]` (looked up on PATH) with `args`, stdin, stdout and
/// stderr on /dev/null, killed after `timeout_seconds`. Returns "" on exit status 0,
/// else why it failed ("not installed" when the program is missing).
std::string run_with_time_limit(const std::vector<std::string>& args, double timeout_seconds);

/// Counts of (true class, predicted class) pairs.
class confusion_matrix {
  public:
    /// An all-zero matrix for `classes` classes.
    explicit confusion_matrix(std::size_t classes = 0) : n_(classes), counts_(classes * classes, 0) {}
    /// Count one prediction; throws std::out_of_range for a class >= classes().
    void add(std::size_t truth, std::size_t predicted);
    /// The count at (truth, predicted).
    std::size_t at(std::size_t truth, std::size_t predicted) const { return counts_[truth * n_ + predicted]; }
    /// Number of classes.
    std::size_t classes() const { return n_; }
    /// Number of predictions counted.
    std::size_t total() const;
    /// Fraction on the diagonal (0 when empty).
    double accuracy() const;
    /// Recall of one class: correct / examples of that class.
    double recall(std::size_t truth) const;
    /// A table with class names on rows (true) and columns (predicted), plus
    /// each class's recall.
    std::string format(const std::vector<std::string>& class_names) const;
    /// Write the counts as CSV with a header row of class names; throws
    /// write_error naming the file when a write or the close fails.
    void write_csv(const std::string& path, const std::vector<std::string>& class_names) const;

  private:
    std::size_t n_;
    std::vector<std::size_t> counts_;
};

/// A one-line progress bar redrawn in place with steps/s, ETA and running loss
/// when `live` (stdout is a terminal); silent otherwise, so logs get one plain
/// line per epoch from the caller instead.
class progress_bar {
  public:
    /// Draw on `os`; `live` enables the in-place bar.
    progress_bar(std::ostream& os, bool live) : os_(os), live_(live) {}
    /// Start an epoch of `steps` steps; `epoch` and `epochs` label it.
    void start(std::size_t epoch, std::size_t epochs, std::size_t steps);
    /// Report that `step` (1-based) steps of this epoch are done with the given
    /// running loss; redraws at most ~10 times a second.
    void update(std::size_t step, double running_loss);
    /// Erase the bar so the caller's epoch line replaces it.
    void finish();
    /// Whether the bar is drawn.
    bool live() const { return live_; }

  private:
    void draw(std::size_t step, double loss);
    std::ostream& os_;
    bool live_;
    std::size_t epoch_ = 0, epochs_ = 0, steps_ = 0;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

/// "1m05s" / "12.3s": a duration for humans.
std::string format_duration(double seconds);

/// Whether file descriptor 1 is a terminal.
bool stdout_is_terminal();

}  // namespace tapegrad::app
