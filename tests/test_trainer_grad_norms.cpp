// tapegrad train --log-grad-norms: per-parameter gradient-norm columns in
// metrics.csv (finite, positive, one per parameter), the plot's extra panel, the
// option's values, and resume refusing a CSV whose columns differ.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "apps/commands.hpp"
#include "apps/model.hpp"
#include "apps/options.hpp"
#include "apps/report.hpp"

namespace fs = std::filesystem;
using namespace tapegrad;
using namespace tapegrad::app;

namespace {

std::string temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("tapegrad_gradnorms_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(p);
    return p.string();
}

train_options seed_run(const std::string& out) {
    train_options o;
    o.data = "digits";
    o.model = "seed";
    o.loss = "mse";
    o.hidden = 12;
    o.layers.clear();
    o.optimizer = "sgd";
    o.lr = 0.1;
    o.epochs = 2;
    o.batch_size = 128;
    o.quiet = true;
    o.progress = "lines";
    o.out = out;
    return o;
}

std::string first_line(const std::string& path) {
    std::ifstream f(path);
    std::string line;
    std::getline(f, line);
    return line;
}

const train_setting& setting(const std::string& key) {
    for (const auto& s : train_settings())
        if (s.key == key) return s;
    throw std::logic_error("no setting " + key);
}

}  // namespace

TEST_CASE("--log-grad-norms adds a finite, positive gradient-norm column per parameter, and plots them") {
    const std::string dir = temp_dir("on");
    train_options o = seed_run(dir);
    o.log_grad_norms = true;
    REQUIRE(run_train(o) == 0);
    const std::string csv = dir + "/metrics.csv";
    std::string want = "epoch,train_loss,val_loss,val_acc,seconds,lr";
    model_spec spec;
    spec.kind = "seed";
    spec.inputs = 64;
    spec.classes = 10;
    spec.hidden = 12;
    for (const auto& [name, p] : make_classifier(spec, 1)->named_parameters()) want += ",grad_norm_" + name;
    CHECK(want == "epoch,train_loss,val_loss,val_acc,seconds,lr,grad_norm_0.weight,grad_norm_0.bias,"
                  "grad_norm_2.weight,grad_norm_2.bias");
    CHECK(first_line(csv) == want);
    metric_columns extra;
    const auto rows = read_metrics_csv(csv, &extra);
    REQUIRE(rows.size() == 2);
    REQUIRE(extra.names.size() == 4);
    REQUIRE(extra.rows.size() == 2);
    for (const auto& row : extra.rows) {
        REQUIRE(row.size() == 4);
        for (double v : row) {
            CHECK(std::isfinite(v));
            CHECK(v > 0);
        }
    }
    std::ifstream svg(dir + "/curves.svg");
    const std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
    CHECK(text.find("log10 gradient norm") != std::string::npos);
    CHECK(text.find("grad_norm_2.weight") != std::string::npos);

    // Off (the default): the six columns as before.
    const std::string dir2 = temp_dir("off");
    REQUIRE(run_train(seed_run(dir2)) == 0);
    CHECK(first_line(dir2 + "/metrics.csv") == "epoch,train_loss,val_loss,val_acc,seconds,lr");
    fs::remove_all(dir);
    fs::remove_all(dir2);
}

TEST_CASE("resume refuses a metrics CSV whose columns differ from this run's, and continues one that matches") {
    for (bool first : {true, false}) {
        CAPTURE(first);
        const std::string dir = temp_dir(first ? "resume_on" : "resume_off");
        train_options o = seed_run(dir);
        o.log_grad_norms = first;
        o.stop_after = 1;
        REQUIRE(run_train(o) == 0);
        train_options r = seed_run(dir + "/more");
        r.resume = dir + "/checkpoint.npz";
        r.log_grad_norms = !first;
        const std::string csv = dir + "/metrics.csv";
        CHECK_THROWS_WITH_AS(run_train(r),
                             doctest::Contains((csv + ": its columns are 'epoch,train_loss,val_loss,val_acc,seconds,lr" +
                                                (first ? ",grad_norm_0.weight" : "' but this run writes"))
                                                   .c_str()),
                             std::runtime_error);
        CHECK_THROWS_WITH_AS(run_train(r),
                             doctest::Contains(first ? "--log-grad-norms is off now, it was on"
                                                     : "--log-grad-norms is on now"),
                             std::runtime_error);
        CHECK_THROWS_WITH_AS(run_train(r), doctest::Contains("resume with the --log-grad-norms setting"),
                             std::runtime_error);
        CHECK_FALSE(fs::exists(dir + "/more/metrics.csv"));
        // The same setting continues the file, earlier rows and their norms kept.
        r.log_grad_norms = first;
        REQUIRE(run_train(r) == 0);
        metric_columns before, after;
        const auto rows_before = read_metrics_csv(csv, &before);
        const auto rows_after = read_metrics_csv(dir + "/more/metrics.csv", &after);
        REQUIRE(rows_before.size() == 1);
        REQUIRE(rows_after.size() == 2);
        CHECK(after.names == before.names);
        CHECK(after.rows.at(0) == before.rows.at(0));
        CHECK(after.names.size() == (first ? 4u : 0u));
        fs::remove_all(dir);
    }
}

TEST_CASE("--log-grad-norms takes no value (on), on or off") {
    const train_setting& s = setting("log_grad_norms");
    CHECK(s.flag == "--log-grad-norms");
    CHECK_FALSE(s.saved);  // a resume may choose; the metrics' columns are checked instead
    train_options o;
    s.set(o, "", s.flag);
    CHECK(o.log_grad_norms);
    s.set(o, "off", s.flag);
    CHECK_FALSE(o.log_grad_norms);
    CHECK(s.get(o) == "off");
    s.set(o, "on", s.flag);
    CHECK(s.get(o) == "on");
    CHECK_THROWS_WITH_AS(s.set(o, "yes", s.flag), doctest::Contains("--log-grad-norms"), option_error);
}
