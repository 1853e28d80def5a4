// `train --model cnn` stopped by Ctrl-C in the middle of an epoch resumes to the
// uninterrupted run bit for bit, with BatchNorm's running statistics in the
// checkpoint and Dropout masks seeded per step; a checkpoint written before
// --arch existed still reads (as an mlp), one with another network is refused.

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "apps/commands.hpp"
#include "apps/durable_io.hpp"
#include "apps/options.hpp"
#include "apps/report.hpp"
#include "apps/train_checkpoint.hpp"
#include "io/npz.hpp"

namespace fs = std::filesystem;
using namespace tapegrad;
using namespace tapegrad::app;

namespace {

std::string temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("tapegrad_cnn_" + std::to_string(::getpid()) + "_" + name);
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

/// 2 epochs on digits: 1318 images in batches of 64 = 21 steps per epoch.
train_options cnn_run(const std::string& out) {
    train_options o;
    o.model = "cnn";
    o.arch = "c4,bn,relu,mp2,d0.3,fc16,bn,relu,d0.2";
    o.data = "digits";
    o.epochs = 2;
    o.batch_size = 64;
    o.lr = 0.01;
    o.seed = 11;
    o.quiet = true;
    o.progress = "lines";
    o.out = out;
    return o;
}

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

struct hook_guard {
    explicit hook_guard(fault_hook h) { set_fault_hook(std::move(h)); }
    ~hook_guard() { set_fault_hook({}); }
};

}  // namespace

TEST_CASE("a cnn with BatchNorm and Dropout interrupted mid-epoch resumes to the uninterrupted run bit for bit") {
    const std::string full = temp_dir("full");
    REQUIRE(run_train(cnn_run(full)) == 0);
    const std::string curve = loss_curve(full + "/metrics.csv");
    CHECK(read_metrics_csv(full + "/metrics.csv").size() == 2);
    const loaded_checkpoint done = read_checkpoint(full + "/checkpoint.npz");
    CHECK(done.options.arch == "c4,bn,relu,mp2,d0.3,fc16,bn,relu,d0.2");
    bool has_running_stats = false;
    for (const auto& e : done.model) has_running_stats = has_running_stats || e.name == "2.running_mean";
    CHECK(has_running_stats);

    for (std::size_t at : {std::size_t(9), std::size_t(21 + 13)}) {  // in epoch 1, and in epoch 2
        CAPTURE(at);
        const std::string part = temp_dir("part");
        {
            hook_guard h([&](const std::string& p, std::size_t step) {
                if (p == "step" && step == at) std::raise(SIGINT);
            });
            CHECK(run_train(cnn_run(part)) == 130);
        }
        train_options rest = cnn_run("");
        rest.arch.clear();  // the checkpoint knows its network
        rest.resume = part + "/checkpoint.npz";
        REQUIRE(run_train(rest) == 0);
        CHECK(loss_curve(part + "/metrics.csv") == curve);
        CHECK(slurp(part + "/checkpoint.npz") == slurp(full + "/checkpoint.npz"));
        fs::remove_all(part);
    }

    // another --arch on resume is refused before anything is written; the same one is accepted
    train_options other = cnn_run("");
    other.resume = full + "/checkpoint.npz";
    other.arch = "c8,relu";
    const std::string refusal = "--arch c8,relu: the checkpoint " + full +
                                "/checkpoint.npz is of --arch c4,bn,relu,mp2,d0.3,fc16,bn,relu,d0.2, and a resume "
                                "continues the same network";
    CHECK_THROWS_WITH(run_train(other), doctest::Contains(refusal.c_str()));
    other.arch = "c4,bn,relu,mp2,d0.3,fc16,bn,relu,d0.2";
    CHECK(run_train(other) == 0);  // nothing to train: 2 epochs done
    fs::remove_all(full);
}

TEST_CASE("a checkpoint without an arch setting (written before --model cnn) reads as before; --model cnn runs with the default arch") {
    const std::string dir = temp_dir("mlp");
    train_options o;
    o.data = "digits";
    o.layers = {8};
    o.epochs = 1;
    o.quiet = true;
    o.out = dir;
    REQUIRE(run_train(o) == 0);
    std::vector<npz::entry> es = npz::read(dir + "/checkpoint.npz");
    for (auto& e : es) {
        if (e.name != "trainer.config") continue;
        std::string text;
        for (float v : npz::to_array<float>(e, "")) text += static_cast<char>(static_cast<unsigned char>(v));
        const auto at = text.find("arch=\n");
        REQUIRE(at != std::string::npos);  // an mlp saves an empty arch
        text.erase(at, 6);
        xt::xarray<float> a = xt::xarray<float>::from_shape({text.size()});
        for (std::size_t i = 0; i < text.size(); ++i) a(i) = static_cast<float>(static_cast<unsigned char>(text[i]));
        e = npz::make_entry("trainer.config", a);
    }
    npz::write(dir + "/old.npz", es);
    const loaded_checkpoint c = read_checkpoint(dir + "/old.npz");
    CHECK(c.options.model == "mlp");
    CHECK(c.options.arch.empty());

    // the default arch is written into the checkpoint, so a resume rebuilds the same network
    const std::string cnn_dir = temp_dir("default");
    train_options d;
    d.model = "cnn";
    d.data = "digits";
    d.epochs = 1;
    d.quiet = true;
    d.out = cnn_dir;
    REQUIRE(run_train(d) == 0);
    CHECK(read_checkpoint(cnn_dir + "/checkpoint.npz").options.arch == "c32,bn,relu,mp2,c64,bn,relu,mp2,fc128,relu");
    fs::remove_all(dir);
    fs::remove_all(cnn_dir);
}
