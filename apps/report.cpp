#include "apps/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apps/durable_io.hpp"
#include "autograd/format.hpp"

extern char** environ;

namespace tapegrad::app {

// ------------------------------------------------------------------ CSV

void write_metrics_csv(const std::string& path, const std::vector<epoch_record>& rows, const metric_columns* extra) {
    // Replaced by a rename, so a device or a link to one (/dev/full) would be
    // swapped for a plain file; refuse it instead.
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    if (!ec && std::filesystem::exists(st) && !std::filesystem::is_regular_file(st))
        throw std::runtime_error(path + ": is not a regular file (a device, directory or link to one): remove it "
                                 "or choose another --out");
    if (extra && extra->rows.size() != rows.size())
        throw std::logic_error(path + ": " + std::to_string(extra->rows.size()) + " rows of extra columns for " +
                               std::to_string(rows.size()) + " metrics rows");
    std::ostringstream f;
    f << "epoch,train_loss,val_loss,val_acc,seconds,lr";
    if (extra)
        for (const auto& name : extra->names) f << ',' << name;
    f << '\n';
    f << std::setprecision(17);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        f << r.epoch << ',' << r.train_loss << ',' << r.val_loss << ',' << r.val_acc << ',' << std::setprecision(6)
          << r.seconds << ',' << std::setprecision(17) << r.lr;
        if (extra) {
            if (extra->rows[i].size() != extra->names.size())
                throw std::logic_error(path + ": row " + std::to_string(i + 1) + " has " +
                                       std::to_string(extra->rows[i].size()) + " extra values for " +
                                       std::to_string(extra->names.size()) + " columns");
            f << std::setprecision(9);
            for (double v : extra->rows[i]) f << ',' << v;
            f << std::setprecision(17);
        }
        f << '\n';
    }
    // Written aside and renamed: a crash or a full disk leaves the previous version.
    write_file_atomically(path, f.str(), "metrics", rows.empty() ? 0 : rows.back().epoch);
}

std::vector<epoch_record> read_metrics_csv(const std::string& path, metric_columns* extra) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error(path + ": cannot open the metrics CSV");
    std::string line;
    std::getline(f, line);
    if (line.rfind("epoch,train_loss,val_loss,val_acc,seconds", 0) != 0) {
        throw std::runtime_error(path + ": line 1 is not the metrics header 'epoch,train_loss,...'");
    }
    std::vector<std::string> header;
    for (std::size_t b = 0;;) {
        const auto e = line.find(',', b);
        header.push_back(line.substr(b, e == std::string::npos ? e : e - b));
        if (e == std::string::npos) break;
        b = e + 1;
    }
    if (extra) {
        extra->names.assign(header.size() > 6 ? header.begin() + 6 : header.end(), header.end());
        extra->rows.clear();
    }
    std::vector<epoch_record> rows;
    std::size_t n = 1;
    while (std::getline(f, line)) {
        ++n;
        if (line.empty()) continue;
        std::replace(line.begin(), line.end(), ',', ' ');
        std::istringstream is(line);
        epoch_record r;
        if (!(is >> r.epoch >> r.train_loss >> r.val_loss >> r.val_acc >> r.seconds)) {
            throw std::runtime_error(path + ": line " + std::to_string(n) + " is not a metrics row");
        }
        is >> r.lr;  // optional column
        if (extra) {
            std::vector<double> values(extra->names.size());
            for (double& v : values)
                if (!(is >> v))
                    throw std::runtime_error(path + ": line " + std::to_string(n) + " has fewer values than the " +
                                             std::to_string(header.size()) + " columns of the header");
            extra->rows.push_back(std::move(values));
        }
        rows.push_back(r);
    }
    return rows;
}

// ------------------------------------------------------------------ SVG

namespace {

std::string xml_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '"': o += "&quot;"; break;
            default: o += c;
        }
    }
    return o;
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks.
double nice_step(double range, int target) {
    if (!(range > 0)) return 1;
    const double raw = range / target;
    const double p = std::pow(10.0, std::floor(std::log10(raw)));
    const double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

std::string num(double v) {
    if (std::abs(v) < 1e-12) v = 0;  // accumulated ticks land on -1e-17, not on 0
    return tapegrad::detail::num(v, 4);
}

struct series {
    std::string label;
    std::string color;
    std::vector<double> y;
};

/// One panel: axes, ticks, grid, the series as polylines with points, a legend.
void panel(std::ostream& o, double x0, double y0, double w, double h, const std::vector<double>& xs,
           const std::vector<series>& ss, const std::string& ylabel) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& s : ss)
        for (double v : s.y)
            if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (!std::isfinite(lo)) lo = 0, hi = 1;
    if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
    const double pad = 0.05 * (hi - lo);
    lo -= pad, hi += pad;
    const double xmin = xs.empty() ? 0 : xs.front(), xmax = xs.size() < 2 ? xmin + 1 : xs.back();
    auto px = [&](double x) { return x0 + (x - xmin) / (xmax - xmin) * w; };
    auto py = [&](double y) { return y0 + h - (y - lo) / (hi - lo) * h; };

    o << "<rect x='" << x0 << "' y='" << y0 << "' width='" << w << "' height='" << h
      << "' fill='white' stroke='#333'/>\n";
    const double ys = nice_step(hi - lo, 5);
    for (double t = std::ceil(lo / ys) * ys; t <= hi; t += ys) {
        o << "<line x1='" << x0 << "' x2='" << x0 + w << "' y1='" << py(t) << "' y2='" << py(t)
          << "' stroke='#ddd'/>\n";
        o << "<text x='" << x0 - 6 << "' y='" << py(t) + 4 << "' text-anchor='end' font-size='11'>" << num(t)
          << "</text>\n";
    }
    const double xs_step = std::max(1.0, std::round(nice_step(xmax - xmin, 8)));
    for (double t = std::ceil(xmin / xs_step) * xs_step; t <= xmax + 1e-9; t += xs_step) {
        o << "<line x1='" << px(t) << "' x2='" << px(t) << "' y1='" << y0 + h << "' y2='" << y0 + h + 4
          << "' stroke='#333'/>\n";
        o << "<text x='" << px(t) << "' y='" << y0 + h + 17 << "' text-anchor='middle' font-size='11'>" << num(t)
          << "</text>\n";
    }
    o << "<text x='" << x0 + w / 2 << "' y='" << y0 + h + 33 << "' text-anchor='middle' font-size='12'>epoch</text>\n";
    o << "<text transform='translate(" << x0 - 45 << "," << y0 + h / 2
      << ") rotate(-90)' text-anchor='middle' font-size='12'>" << xml_escape(ylabel) << "</text>\n";
    double ly = y0 + 16;
    for (const auto& s : ss) {
        o << "<polyline fill='none' stroke='" << s.color << "' stroke-width='2' points='";
        for (std::size_t i = 0; i < s.y.size() && i < xs.size(); ++i)
            if (std::isfinite(s.y[i])) o << px(xs[i]) << ',' << py(s.y[i]) << ' ';
        o << "'/>\n";
        for (std::size_t i = 0; i < s.y.size() && i < xs.size(); ++i)
            if (std::isfinite(s.y[i]))
                o << "<circle cx='" << px(xs[i]) << "' cy='" << py(s.y[i]) << "' r='2.5' fill='" << s.color
                  << "'/>\n";
        o << "<line x1='" << x0 + w - 150 << "' x2='" << x0 + w - 130 << "' y1='" << ly - 4 << "' y2='" << ly - 4
          << "' stroke='" << s.color << "' stroke-width='2'/>\n";
        o << "<text x='" << x0 + w - 125 << "' y='" << ly << "' font-size='12'>" << xml_escape(s.label)
          << "</text>\n";
        ly += 16;
    }
}

}  // namespace

void write_svg_plot(const std::string& path, const std::vector<epoch_record>& rows, const std::string& title,
                    const metric_columns* extra) {
    std::ostringstream o;
    const bool norms = extra && !extra->names.empty() && extra->rows.size() == rows.size();
    const int width = norms ? 1350 : 900;
    std::vector<double> xs;
    series tl{"train loss", "#1f77b4", {}}, vl{"validation loss", "#d62728", {}}, va{"validation accuracy",
                                                                                     "#2ca02c", {}};
    for (const auto& r : rows) {
        xs.push_back(static_cast<double>(r.epoch));
        tl.y.push_back(r.train_loss);
        vl.y.push_back(r.val_loss);
        va.y.push_back(r.val_acc);
    }
    o << std::setprecision(6);
    o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='400' viewBox='0 0 " << width
      << " 400' font-family='sans-serif'>\n";
    o << "<rect width='" << width << "' height='400' fill='#fafafa'/>\n";
    o << "<text x='" << width / 2 << "' y='24' text-anchor='middle' font-size='15'>" << xml_escape(title)
      << "</text>\n";
    panel(o, 70, 45, 360, 300, xs, {tl, vl}, "loss");
    panel(o, 520, 45, 360, 300, xs, {va}, "accuracy");
    if (norms) {  // gradient norms span decades (vanishing gradients): log10 scale
        static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
        std::vector<series> gs;
        for (std::size_t k = 0; k < extra->names.size(); ++k) {
            series g{extra->names[k], colors[k % 10], {}};
            for (const auto& row : extra->rows) g.y.push_back(row[k] > 0 ? std::log10(row[k]) : NAN);
            gs.push_back(std::move(g));
        }
        panel(o, 970, 45, 360, 300, xs, gs, "log10 gradient norm");
    }
    o << "</svg>\n";
    write_file_checked(path, o.str());
}

std::string run_with_time_limit(const std::vector<std::string>& args, double timeout_seconds) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&files, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&files, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    const int err = posix_spawnp(&pid, argv[0], &files, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    if (err == ENOENT) return "not installed";
    if (err != 0) return std::string("cannot start: ") + std::strerror(err);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
    int status = 0;
    while (true) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) return std::string("lost the process: ") + std::strerror(errno);
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            std::ostringstream os;
            os << "did not finish within " << timeout_seconds << " s and was stopped";
            return os.str();
        }
        ::usleep(10000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
    if (WIFEXITED(status)) return "failed with exit status " + std::to_string(WEXITSTATUS(status));
    return "was killed by signal " + std::to_string(WTERMSIG(status));
}

bool write_png_plot_gnuplot(const std::string& png_path, const std::string& csv_path, const std::string& title,
                            double timeout_seconds, std::string* why) {
    auto fail = [&](const std::string& reason) {
        if (why) *why = reason;
        std::remove(png_path.c_str());
        return false;
    };
    std::string script;
    for (const std::string& dir : {std::string(TAPEGRAD_APP_SOURCE_DIR) + "/scripts", std::string("scripts")}) {
        if (std::ifstream(dir + "/plot_metrics.gp").good()) {
            script = dir + "/plot_metrics.gp";
            break;
        }
    }
    if (script.empty()) return fail("scripts/plot_metrics.gp not found");
    auto gp_string = [](const std::string& s) {  // a gnuplot double-quoted string
        std::string q = "\"";
        for (char c : s) {
            if (c == '"' || c == '\\') q += '\\';
            q += c;
        }
        return q + "\"";
    };
    const std::string defs = "csv=" + gp_string(csv_path) + "; out=" + gp_string(png_path) +
                             "; title=" + gp_string(title);
    const std::string problem = run_with_time_limit({"gnuplot", "-e", defs, script}, timeout_seconds);
    if (!problem.empty()) return fail(problem == "not installed" ? problem : "gnuplot " + problem);
    if (!std::ifstream(png_path).good()) return fail("gnuplot wrote no " + png_path);
    if (why) why->clear();
    return true;
}

// ------------------------------------------------------------- confusion

void confusion_matrix::add(std::size_t truth, std::size_t predicted) {
    if (truth >= n_ || predicted >= n_) {
        throw std::out_of_range("confusion_matrix::add: class " + std::to_string(std::max(truth, predicted)) +
                                " with " + std::to_string(n_) + " classes");
    }
    ++counts_[truth * n_ + predicted];
}

std::size_t confusion_matrix::total() const {
    std::size_t t = 0;
    for (auto c : counts_) t += c;
    return t;
}

double confusion_matrix::accuracy() const {
    std::size_t diag = 0;
    for (std::size_t i = 0; i < n_; ++i) diag += at(i, i);
    const std::size_t t = total();
    return t ? static_cast<double>(diag) / static_cast<double>(t) : 0.0;
}

double confusion_matrix::recall(std::size_t truth) const {
    std::size_t row = 0;
    for (std::size_t j = 0; j < n_; ++j) row += at(truth, j);
    return row ? static_cast<double>(at(truth, truth)) / static_cast<double>(row) : 0.0;
}

std::string confusion_matrix::format(const std::vector<std::string>& names) const {
    auto name = [&](std::size_t i) { return i < names.size() ? names[i] : std::to_string(i); };
    std::size_t label_w = 10;
    for (std::size_t i = 0; i < n_; ++i) label_w = std::max(label_w, name(i).size());
    std::size_t cell_w = 5;
    for (auto c : counts_) cell_w = std::max(cell_w, std::to_string(c).size() + 1);
    std::ostringstream o;
    o << "confusion matrix (rows: true class, columns: predicted)\n";
    o << std::string(label_w + 2, ' ');
    for (std::size_t j = 0; j < n_; ++j) o << std::setw(static_cast<int>(cell_w)) << j;
    o << "  recall\n";
    for (std::size_t i = 0; i < n_; ++i) {
        o << std::setw(static_cast<int>(label_w)) << std::left << name(i) << std::right << std::setw(2);
        if (name(i) == std::to_string(i)) o << ' ';  // digits: the name is the index
        else o << i;
        for (std::size_t j = 0; j < n_; ++j) o << std::setw(static_cast<int>(cell_w)) << at(i, j);
        o << "  " << std::fixed << std::setprecision(3) << recall(i) << std::defaultfloat << '\n';
    }
    return o.str();
}

void confusion_matrix::write_csv(const std::string& path, const std::vector<std::string>& names) const {
    std::ostringstream f;
    auto name = [&](std::size_t i) { return i < names.size() ? names[i] : std::to_string(i); };
    f << "true\\predicted";
    for (std::size_t j = 0; j < n_; ++j) f << ',' << name(j);
    f << '\n';
    for (std::size_t i = 0; i < n_; ++i) {
        f << name(i);
        for (std::size_t j = 0; j < n_; ++j) f << ',' << at(i, j);
        f << '\n';
    }
    write_file_checked(path, f.str());
}

// -------------------------------------------------------------- progress

std::string format_duration(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    std::ostringstream o;
    if (s < 60) {
        o << std::fixed << std::setprecision(1) << s << "s";
    } else if (s < 3600) {
        const long t = std::lround(s);
        o << t / 60 << "m" << std::setw(2) << std::setfill('0') << t % 60 << "s";
    } else {
        const long t = std::lround(s);
        o << t / 3600 << "h" << std::setw(2) << std::setfill('0') << (t / 60) % 60 << "m";
    }
    return o.str();
}

bool stdout_is_terminal() { return ::isatty(1) == 1; }

void progress_bar::start(std::size_t epoch, std::size_t epochs, std::size_t steps) {
    epoch_ = epoch;
    epochs_ = epochs;
    steps_ = steps;
    start_ = std::chrono::steady_clock::now();
    last_draw_ = start_ - std::chrono::seconds(1);
    if (live_) draw(0, std::numeric_limits<double>::quiet_NaN());
}

void progress_bar::update(std::size_t step, double running_loss) {
    if (!live_) return;
    const auto now = std::chrono::steady_clock::now();
    if (step < steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    draw(step, running_loss);
}

void progress_bar::draw(std::size_t step, double loss) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(step) / elapsed : 0.0;
    const double eta_epoch = rate > 0 ? static_cast<double>(steps_ - step) / rate : NAN;
    // ETA of the whole run assumes the remaining epochs run at this epoch's pace.
    const double eta_run = rate > 0 ? eta_epoch + static_cast<double>(epochs_ - epoch_) * steps_ / rate : NAN;
    constexpr int width = 28;
    const int filled = steps_ ? static_cast<int>(width * step / steps_) : width;
    std::ostringstream o;
    o << "\r\033[2Kepoch " << epoch_ << "/" << epochs_ << " [";
    for (int i = 0; i < width; ++i) o << (i < filled ? '#' : i == filled ? '>' : '.');
    o << "] " << step << "/" << steps_ << "  " << std::fixed << std::setprecision(0) << rate << " steps/s  ETA "
      << format_duration(eta_epoch) << " (run " << format_duration(eta_run) << ")";
    if (std::isfinite(loss)) o << "  loss " << std::setprecision(4) << loss;
    os_ << o.str() << std::flush;
}

void progress_bar::finish() {
    if (live_) os_ << "\r\033[2K" << std::flush;
}

}  // namespace tapegrad::app
