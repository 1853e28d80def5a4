// The trainer's outputs: metrics CSV round trip, SVG plot, confusion matrix.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "apps/report.hpp"

namespace fs = std::filesystem;
using namespace tapegrad::app;

namespace {
std::string temp_path(const std::string& name) {
    return (fs::temp_directory_path() / ("tapegrad_report_" + std::to_string(::getpid()) + "_" + name)).string();
}
std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
}  // namespace

TEST_CASE("metrics CSV round-trips losses bit for bit") {
    std::vector<epoch_record> rows = {{1, 0.1 + 1e-17, 2.0 / 3.0, 0.875, 1.5, 1e-3}, {2, 1.0 / 7.0, 0.25, 0.9, 2.0, 5e-4}};
    const std::string p = temp_path("m.csv");
    write_metrics_csv(p, rows);
    CHECK(slurp(p).rfind("epoch,train_loss,val_loss,val_acc,seconds,lr\n", 0) == 0);
    auto back = read_metrics_csv(p);
    REQUIRE(back.size() == 2);
    CHECK(back[1].epoch == 2);
    CHECK(back[0].train_loss == rows[0].train_loss);
    CHECK(back[0].val_loss == rows[0].val_loss);
    CHECK(back[1].train_loss == rows[1].train_loss);
    CHECK(back[1].val_acc == rows[1].val_acc);
    CHECK(back[1].lr == rows[1].lr);
    std::ofstream(p) << "not,a,metrics,file\n";
    CHECK_THROWS_WITH_AS(read_metrics_csv(p), doctest::Contains("not the metrics header"), std::runtime_error);
    fs::remove(p);
    CHECK_THROWS_WITH_AS(read_metrics_csv(p), doctest::Contains("cannot open"), std::runtime_error);
}

TEST_CASE("SVG plot is a complete document with both panels") {
    std::vector<epoch_record> rows;
    for (std::size_t e = 1; e <= 5; ++e) rows.push_back({e, 1.0 / e, 1.2 / e, 0.5 + 0.08 * e, 1, 0});
    const std::string p = temp_path("p.svg");
    write_svg_plot(p, rows, "digits <mlp> & co");
    const std::string s = slurp(p);
    CHECK(s.rfind("<svg xmlns='http://www.w3.org/2000/svg'", 0) == 0);
    CHECK(s.find("</svg>") != std::string::npos);
    CHECK(s.find("digits &lt;mlp&gt; &amp; co") != std::string::npos);
    CHECK(s.find("validation accuracy") != std::string::npos);
    std::size_t polylines = 0;
    for (std::size_t at = 0; (at = s.find("<polyline", at)) != std::string::npos; ++at) ++polylines;
    CHECK(polylines == 3);
    // One epoch and NaN values must not break the drawing.
    write_svg_plot(p, {{1, NAN, 0.5, 0.5, 1, 0}}, "one");
    CHECK(slurp(p).find("</svg>") != std::string::npos);
    fs::remove(p);
}

TEST_CASE("confusion matrix counts, accuracy, recall and table") {
    confusion_matrix m(3);
    m.add(0, 0);
    m.add(0, 0);
    m.add(0, 1);
    m.add(1, 1);
    m.add(2, 0);
    CHECK(m.total() == 5);
    CHECK(m.at(0, 1) == 1);
    CHECK(m.accuracy() == doctest::Approx(0.6));
    CHECK(m.recall(0) == doctest::Approx(2.0 / 3.0));
    CHECK(m.recall(2) == 0.0);
    CHECK_THROWS_AS(m.add(3, 0), std::out_of_range);
    const std::string t = m.format({"cat", "dog", "Ankle boot"});
    CHECK(t.find("Ankle boot") != std::string::npos);
    CHECK(t.find("0.667") != std::string::npos);
    const std::string p = temp_path("c.csv");
    m.write_csv(p, {"cat", "dog", "bird"});
    CHECK(slurp(p) == "true\\predicted,cat,dog,bird\ncat,2,1,0\ndog,0,1,0\nbird,1,0,0\n");
    fs::remove(p);
}

TEST_CASE("durations read well") {
    CHECK(format_duration(3.14) == "3.1s");
    CHECK(format_duration(65) == "1m05s");
    CHECK(format_duration(7300) == "2h01m");
    CHECK(format_duration(NAN) == "?");
}

TEST_CASE("a progress bar that is not live prints nothing") {
    std::ostringstream os;
    progress_bar bar(os, false);
    bar.start(1, 2, 10);
    for (std::size_t i = 1; i <= 10; ++i) bar.update(i, 0.5);
    bar.finish();
    CHECK(os.str().empty());
    progress_bar live(os, true);
    live.start(1, 2, 10);
    live.update(10, 0.5);
    CHECK(os.str().find("10/10") != std::string::npos);
    CHECK(os.str().find("steps/s") != std::string::npos);
    CHECK(os.str().find("loss 0.5") != std::string::npos);
}
