// Checkpoints and metrics are never half-written: a failure (a full disk, a
// crash) injected at every point of the commit leaves the previous checkpoint,
// and resuming from what is left gives the uninterrupted run bit for bit; a
// Ctrl-C finishes the step, commits and returns 130; every field read back
// from a checkpoint is checked, naming the file and the field.

#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "apps/commands.hpp"
#include "apps/durable_io.hpp"
#include "apps/report.hpp"
#include "apps/train_checkpoint.hpp"
#include "data/dataset.hpp"
#include "io/npz.hpp"

namespace fs = std::filesystem;
using namespace tapegrad;
using namespace tapegrad::app;

namespace {

/// `text == has(part)`: `part` occurs in `text` (doctest prints both on failure).
struct has {
    std::string part;
    explicit has(std::string p) : part(std::move(p)) {}
};
bool operator==(const std::string& text, const has& h) { return text.find(h.part) != std::string::npos; }
std::ostream& operator<<(std::ostream& os, const has& h) { return os << "has(\"" << h.part << "\")"; }

std::string temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("tapegrad_atomic_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

/// A 3-epoch digits run: 1318 training images in batches of 64 = 21 steps per epoch.
train_options small_run(const std::string& out) {
    train_options o;
    o.data = "digits";
    o.layers = {16};
    o.epochs = 3;
    o.batch_size = 64;
    o.lr = 0.01;
    o.warmup = 5;
    o.quiet = true;
    o.progress = "lines";
    o.out = out;
    return o;
}
constexpr std::size_t steps_per_epoch = 21;

/// metrics.csv without its wall-time column.
std::string loss_curve(const std::string& csv) {
    std::string out;
    for (const auto& r : read_metrics_csv(csv)) {
        std::ostringstream os;
        os.precision(17);
        os << r.epoch << ',' << r.train_loss << ',' << r.val_loss << ',' << r.val_acc << ',' << r.lr << '\n';
        out += os.str();
    }
    return out;
}

struct finished_run {
    std::string checkpoint;  ///< bytes of the final checkpoint
    std::string curve;       ///< loss curve
};

finished_run reference() {
    static const finished_run ref = [] {
        const std::string dir = temp_dir("reference");
        REQUIRE(run_train(small_run(dir)) == 0);
        finished_run r{slurp(dir + "/checkpoint.npz"), loss_curve(dir + "/metrics.csv")};
        fs::remove_all(dir);
        return r;
    }();
    return ref;
}

/// Resume from `dir`'s checkpoint to the end and compare with the uninterrupted run.
void resume_and_compare(const std::string& dir) {
    train_options o = small_run("");
    o.resume = dir + "/checkpoint.npz";
    REQUIRE(run_train(o) == 0);
    const finished_run ref = reference();
    CHECK(loss_curve(dir + "/metrics.csv") == ref.curve);
    CHECK(slurp(dir + "/checkpoint.npz") == ref.checkpoint);
}

struct hook_guard {
    explicit hook_guard(fault_hook h) { set_fault_hook(std::move(h)); }
    ~hook_guard() { set_fault_hook({}); }
};

/// Decode/encode the text in trainer.config.
std::string config_of(const std::vector<npz::entry>& es) {
    for (const auto& e : es)
        if (e.name == "trainer.config") {
            std::string s;
            for (float v : npz::to_array<float>(e, "")) s += static_cast<char>(static_cast<unsigned char>(v));
            return s;
        }
    return "";
}

npz::entry& entry_named(std::vector<npz::entry>& es, const std::string& name) {
    for (auto& e : es)
        if (e.name == name) return e;
    FAIL("no entry " << name);
    return es.front();
}

void set_text(std::vector<npz::entry>& es, const std::string& text) {
    xt::xarray<float> a = xt::xarray<float>::from_shape({text.size()});
    for (std::size_t i = 0; i < text.size(); ++i) a(i) = static_cast<float>(static_cast<unsigned char>(text[i]));
    entry_named(es, "trainer.config") = npz::make_entry("trainer.config", a);
}

std::string replace_setting(std::string text, const std::string& key, const std::string& value) {
    const auto at = text.find("\n" + key + "=");
    REQUIRE(at != std::string::npos);
    const auto end = text.find('\n', at + 1);
    return text.substr(0, at + 1) + key + "=" + value + text.substr(end);
}

template <class T> void set_scalar(std::vector<npz::entry>& es, const std::string& name, T v) {
    entry_named(es, name) = npz::make_entry(name, xt::xarray<T>(v));
}

/// The error of resuming from `entries` written into a copy of `dir`.
std::string resume_error(const std::string& dir, const std::vector<npz::entry>& entries,
                         const std::string& metrics = "") {
    const std::string bad = temp_dir("bad");
    npz::write(bad + "/checkpoint.npz", entries);
    if (metrics.empty()) fs::copy_file(dir + "/metrics.csv", bad + "/metrics.csv");
    else std::ofstream(bad + "/metrics.csv") << metrics;
    train_options o = small_run("");
    o.resume = bad + "/checkpoint.npz";
    std::string what = "(resumed without an error)";
    try {
        run_train(o);
    } catch (const std::exception& e) {
        what = e.what();
    }
    fs::remove_all(bad);
    return what;
}

}  // namespace

TEST_CASE("a failure at every point of a commit leaves a consistent checkpoint; resume equals the full run") {
    const std::vector<std::string> points = {
        "metrics:writing",    "metrics:written",     "metrics:synced",     "metrics:renamed",
        "metrics:dir-synced", "checkpoint:begin",    "checkpoint:written", "checkpoint:synced",
        "checkpoint:renamed", "checkpoint:dir-synced"};
    for (const auto& point : points) {
        CAPTURE(point);
        const std::string dir = temp_dir("fail");
        {
            hook_guard h([&](const std::string& p, std::size_t count) {
                if (p == point && count == 2) throw write_error(p + ": No space left on device (injected)");
            });
            CHECK_THROWS_WITH(run_train(small_run(dir)), doctest::Contains("No space left on device"));
        }
        const bool committed = point == "checkpoint:renamed" || point == "checkpoint:dir-synced";
        if (point.rfind("checkpoint:", 0) == 0 && point != "checkpoint:begin") {  // says which one is on disk
            const std::string says = committed ? "checkpoint of epoch 2 is in place" : "checkpoint was not written";
            hook_guard h([&](const std::string& p, std::size_t count) {
                if (p == point && count == 2) throw write_error(p + ": No space left on device (injected)");
            });
            fs::remove_all(dir);
            CHECK_THROWS_WITH(run_train(small_run(dir)), doctest::Contains(says.c_str()));
        }
        // What is on disk is epoch 1's checkpoint, or epoch 2's when the rename happened.
        const loaded_checkpoint c = read_checkpoint(dir + "/checkpoint.npz");
        CHECK(c.state.epochs_done == (committed ? 2u : 1u));
        CHECK(!fs::exists(dir + "/checkpoint.npz.partial"));
        CHECK(!fs::exists(dir + "/metrics.csv.tmp"));
        CHECK(read_metrics_csv(dir + "/metrics.csv").size() >= c.state.epochs_done);
        resume_and_compare(dir);
        fs::remove_all(dir);
    }
}

TEST_CASE("Ctrl-C (SIGINT, SIGTERM) finishes the step, commits a checkpoint mid-epoch and returns 130; resume equals the full run") {
    for (std::size_t at : {std::size_t(1), std::size_t(30), steps_per_epoch, std::size_t(2 * steps_per_epoch + 20)}) {
        CAPTURE(at);
        const std::string dir = temp_dir("sigint");
        const int sig = at == 30 ? SIGTERM : SIGINT;  // both ask for the same orderly stop
        {
            hook_guard h([&](const std::string& p, std::size_t step) {
                if (p == "step" && step == at) std::raise(sig);  // the real handler runs
            });
            CHECK(run_train(small_run(dir)) == 130);
        }
        const loaded_checkpoint c = read_checkpoint(dir + "/checkpoint.npz");
        CHECK(c.state.epochs_done == at / steps_per_epoch);
        CHECK(c.state.step_in_epoch == at % steps_per_epoch);
        CHECK(read_metrics_csv(dir + "/metrics.csv").size() == at / steps_per_epoch);
        resume_and_compare(dir);
        fs::remove_all(dir);
    }
}

TEST_CASE("every field read back from a checkpoint is checked, naming the file and the field") {
    const std::string dir = temp_dir("fields");
    train_options o = small_run(dir);
    o.stop_after = 2;
    REQUIRE(run_train(o) == 0);
    const std::string ckpt = dir + "/checkpoint.npz";
    const std::vector<npz::entry> good = npz::read(ckpt);
    const std::string text = config_of(good);
    REQUIRE(text.find("epochs_done=2\n") != std::string::npos);
    auto with_setting = [&](const std::string& key, const std::string& value) {
        std::vector<npz::entry> es = good;
        set_text(es, replace_setting(text, key, value));
        return resume_error(dir, es);
    };
    CHECK(with_setting("step_size", "0") ==
          has("checkpoint.npz: the checkpoint's setting 'step_size' must be a whole number from 1 to "
                            "100000, got '0'"));
    CHECK(with_setting("gamma", "nan") == has("setting 'gamma' must be a number greater than 0"));
    CHECK(with_setting("epochs_done", "1e30") ==
          has("setting 'epochs_done' must be a whole number from 0 to 100000, got '1e30'"));
    CHECK(with_setting("batch_size", "18446744073709551615") == has("setting 'batch_size' must be"));
    CHECK(with_setting("layers", "") == has("setting 'layers' must be a comma-separated list"));
    CHECK(with_setting("features", "784") == has("normalisation 'feature' over 784 features needs 784 values"));
    CHECK(with_setting("classes", "5") == has("the checkpoint's model takes 64 inputs and 5 classes, the data"));
    CHECK(with_setting("step_in_epoch", "21") == has("at step 21 of an epoch, but an epoch has 21 steps"));
    CHECK(with_setting("epochs_done", "1") == has("the optimizer state has taken 42 steps"));
    CHECK(with_setting("last_val_acc", "0.5") == has("the metrics and the checkpoint come from different runs"));

    std::vector<npz::entry> es = good;
    xt::xarray<float> bytes = npz::to_array<float>(entry_named(es, "trainer.config"), ckpt);
    bytes(3) = 300.5f;  // floats cast to unsigned char without a check before
    entry_named(es, "trainer.config") = npz::make_entry("trainer.config", bytes);
    CHECK(resume_error(dir, es) == has("'trainer.config' holds text bytes, but element 3 is 300.5"));

    es = good;
    set_scalar(es, "optimizer.adam.0.step", 1e30);  // converted to int64 without a check before (UB)
    CHECK(resume_error(dir, es) == has("optimizer state 'adam.0.step' is 1e+30, not a step count"));
    es = good;
    set_scalar(es, "optimizer.adam.0.step", std::numeric_limits<double>::quiet_NaN());
    CHECK(resume_error(dir, es) == has("not a step count"));
    es = good;
    set_scalar(es, "optimizer.adam.lr", std::numeric_limits<double>::infinity());
    CHECK(resume_error(dir, es) == has("'adam.lr' is inf, not a learning rate"));

    es = good;
    xt::xarray<float> w = npz::to_array<float>(entry_named(es, "0.weight"), ckpt);
    w(0, 3) = std::numeric_limits<float>::quiet_NaN();
    entry_named(es, "0.weight") = npz::make_entry("0.weight", w);
    CHECK(resume_error(dir, es) == has("weight '0.weight' has nan at element 3"));

    es = good;
    xt::xarray<float> sc = npz::to_array<float>(entry_named(es, "trainer.norm_scale"), ckpt);
    sc(5) = 0;
    entry_named(es, "trainer.norm_scale") = npz::make_entry("trainer.norm_scale", sc);
    CHECK(resume_error(dir, es) == has("'trainer.norm_scale' has 0 at element 5 (a divisor must be"));
    es = good;
    entry_named(es, "trainer.norm_mean") = npz::make_entry("trainer.norm_mean", xt::xarray<float>({1.f, 2.f}));
    CHECK(resume_error(dir, es) == has("needs 64 values in 'trainer.norm_mean'"));

    // A mixed set is refused: the metrics beside it belong to another run, or lost rows.
    std::string csv = slurp(dir + "/metrics.csv");
    CHECK(resume_error(dir, good, csv.substr(0, csv.rfind('\n', csv.size() - 2) + 1)) ==
          has("has rows for 1 epoch(s) but"));
    // The older three-file format cannot be checked, and is refused with what to do.
    es = good;
    es.erase(std::remove_if(es.begin(), es.end(), [](const npz::entry& e) { return e.name == "trainer.config"; }),
             es.end());
    npz::write(dir + "/old.npz", es);
    std::ofstream(dir + "/old.meta.npz") << "x";
    CHECK_THROWS_WITH(read_checkpoint(dir + "/old.npz"), doctest::Contains("the older three-file format"));
    fs::remove(dir + "/old.meta.npz");
    CHECK_THROWS_WITH(read_checkpoint(dir + "/old.npz"), doctest::Contains("not a tapegrad training checkpoint"));

    // And the untouched checkpoint resumes to the uninterrupted run.
    resume_and_compare(dir);
    fs::remove_all(dir);
}

TEST_CASE("a checkpoint's bytes in memory read like the file (tests/fuzz reads them so); a cut buffer names itself") {
    const std::string dir = temp_dir("memory");
    train_options o = small_run(dir);
    o.stop_after = 1;
    REQUIRE(run_train(o) == 0);
    const std::string ckpt = dir + "/checkpoint.npz";
    const std::string file = slurp(ckpt);
    const auto* data = reinterpret_cast<const unsigned char*>(file.data());
    const loaded_checkpoint a = read_checkpoint(ckpt);
    const loaded_checkpoint b = read_checkpoint(data, file.size(), "checkpoint buffer");
    CHECK(b.path == "checkpoint buffer");
    CHECK(b.state.epochs_done == 1);
    CHECK(b.state.epochs_done == a.state.epochs_done);
    CHECK(b.state.loss_sum == a.state.loss_sum);
    CHECK(b.state.last.val_acc == a.state.last.val_acc);
    CHECK(b.options.layers == a.options.layers);
    CHECK(b.options.lr == a.options.lr);
    CHECK(b.norm.mean() == a.norm.mean());
    CHECK(b.norm.scale() == a.norm.scale());
    auto same = [](const std::vector<npz::entry>& x, const std::vector<npz::entry>& y) {
        REQUIRE(x.size() == y.size());
        REQUIRE(!x.empty());
        for (std::size_t i = 0; i < x.size(); ++i) {
            CHECK(x[i].name == y[i].name);
            CHECK(x[i].data == y[i].data);
        }
    };
    same(b.model, a.model);
    same(b.optimizer, a.optimizer);
    CHECK_NOTHROW(check_checkpoint(data, file.size(), "checkpoint buffer"));
    CHECK_THROWS_WITH(check_checkpoint(data, file.size() - 1, "checkpoint buffer"),
                      ("checkpoint buffer: corrupt or unsupported .npz at byte offset " +
                       std::to_string(file.size() - 1) + ": no end-of-central-directory record (not a zip, or truncated)")
                          .c_str());
    fs::remove_all(dir);
}

TEST_CASE("write errors are reported: SVG, confusion matrix and metrics on a full disk") {
    const std::vector<epoch_record> rows = {{1, 0.5, 0.4, 0.9, 1.0, 1e-3}};
    CHECK_THROWS_WITH(write_svg_plot("/dev/full", rows, "t"), doctest::Contains("/dev/full: writing failed: No space left"));
    confusion_matrix m(2);
    m.add(0, 1);
    CHECK_THROWS_WITH(m.write_csv("/dev/full", {"a", "b"}), doctest::Contains("/dev/full: writing failed"));
    // metrics.csv is replaced by a rename: a device there is refused, never swapped for a file
    CHECK_THROWS_WITH(write_metrics_csv("/dev/full", rows), doctest::Contains("/dev/full: is not a regular file"));
    const std::string dir = temp_dir("writers");
    CHECK_THROWS_WITH(write_metrics_csv(dir + "/missing/metrics.csv", rows), doctest::Contains("No such file"));
    write_metrics_csv(dir + "/m.csv", rows);
    {
        hook_guard h([](const std::string& p, std::size_t) {
            if (p == "metrics:writing") throw write_error("metrics.csv: No space left on device (injected)");
        });
        CHECK_THROWS_WITH(write_metrics_csv(dir + "/m.csv", {rows[0], rows[0]}), doctest::Contains("No space left"));
    }
    CHECK(read_metrics_csv(dir + "/m.csv").size() == 1);  // the previous version, whole
    CHECK(!fs::exists(dir + "/m.csv.tmp"));
    fs::remove_all(dir);
}

TEST_CASE("gnuplot reading an endless file is stopped after its time limit, with a reason") {
    const std::string dir = temp_dir("gnuplot");
    std::string why;
    const bool ok = write_png_plot_gnuplot(dir + "/c.png", "/dev/full", "t", 1.0, &why);
    CHECK_FALSE(ok);
    if (why != "not installed") CHECK(why == has("did not finish within 1 s and was stopped"));
    CHECK(!fs::exists(dir + "/c.png"));
    fs::remove_all(dir);
}

TEST_CASE("batch counts never overflow; skip continues an interrupted epoch") {
    data::dataset d;
    d.features = 1;
    d.class_names = {"a", "b"};
    for (int i = 0; i < 10; ++i) {
        d.x.push_back(float(i));
        d.y.push_back(std::size_t(i % 2));
    }
    CHECK(data::loader(d, std::numeric_limits<std::size_t>::max(), 1).batches_per_epoch() == 1);
    CHECK(data::loader(d, 3, 1).batches_per_epoch() == 4);
    data::loader l(d, 3, 1, false);
    l.skip(2);
    data::batch b;
    REQUIRE(l.next(b));
    CHECK(b.x(0, 0) == 6.f);
    l.skip(std::numeric_limits<std::size_t>::max());
    CHECK_FALSE(l.next(b));
}
