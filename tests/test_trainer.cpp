// The trainer's parts in-process: checkpoints round-trip bit for bit and refuse
// bad state without half-loading, optimizer steps match the textbook formulas,
// the learning-rate schedules, and a short digits training run.

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "apps/commands.hpp"
#include "apps/model.hpp"
#include "autograd/ops.hpp"
#include "nn/checkpoint.hpp"

namespace fs = std::filesystem;
using namespace tapegrad;
using namespace tapegrad::app;

namespace {
std::string temp_path(const std::string& name) {
    return (fs::temp_directory_path() / ("tapegrad_trainer_" + std::to_string(::getpid()) + "_" + name)).string();
}

model_spec small_mlp() {
    model_spec s;
    s.kind = "mlp";
    s.inputs = 5;
    s.classes = 3;
    s.layers = {4};
    return s;
}
}  // namespace

/// The parameter values of a module by name (copies).
state_dict values(const nn::module<float>& m) {
    state_dict s;
    for (const auto& [name, t] : m.named_parameters()) s[name] = t.value();
    return s;
}

TEST_CASE("the trainer's arrays round-trip bit for bit") {
    state_dict s;
    s["config"] = xt::xarray<float>({1.5f, -2.25f, 3e-39f, NAN, INFINITY, -0.0f});
    s["norm_mean"] = xt::xarray<float>({{0.1f, 0.2f}, {0.3f, 0.4f}});
    const std::string p = temp_path("rt.npz");
    save_arrays(p, s);
    state_dict back = load_arrays(p);
    REQUIRE(back.size() == 2);
    CHECK(back["norm_mean"].shape() == s["norm_mean"].shape());
    CHECK(std::memcmp(back["config"].data(), s["config"].data(), 6 * sizeof(float)) == 0);
    fs::remove(p);
    std::ofstream(p) << "hello";
    CHECK_THROWS_WITH(load_arrays(p), doctest::Contains(p.c_str()));
    fs::remove(p);
}

TEST_CASE("a model checkpoint of another architecture is refused, naming the parameter") {
    auto a = make_classifier(small_mlp(), 1);
    const std::string p = temp_path("model.npz");
    nn::save_npz(*a, p);
    model_spec wider = small_mlp();
    wider.layers = {6};
    auto b = make_classifier(wider, 2);
    const state_dict before = values(*b);
    CHECK_THROWS_WITH(nn::load_npz(*b, p), doctest::Contains("0.weight"));
    CHECK(values(*b) == before);  // nothing half-loaded
    auto c = make_classifier(small_mlp(), 3);
    nn::load_npz(*c, p);
    CHECK(values(*c) == values(*a));
    fs::remove(p);
}

TEST_CASE("networks: names, shapes, seeded initialisation") {
    auto a = make_classifier(small_mlp(), 5), b = make_classifier(small_mlp(), 5), c = make_classifier(small_mlp(), 6);
    const state_dict sa = values(*a);
    CHECK(sa.count("0.weight") == 1);
    CHECK(sa.count("2.bias") == 1);
    CHECK(sa.at("0.weight").shape() == std::vector<std::size_t>{4, 5});
    CHECK(sa == values(*b));
    CHECK(sa != values(*c));
    for (float v : sa.at("0.weight")) CHECK(std::abs(v) <= 1 / std::sqrt(5.f));
    model_spec seed;
    seed.kind = "seed";
    seed.inputs = 6;
    seed.classes = 3;
    seed.hidden = 7;
    auto s = make_classifier(seed, 1);
    const state_dict ss = values(*s);
    CHECK(ss.at("0.weight").shape() == std::vector<std::size_t>{7, 6});
    CHECK(ss.at("2.bias").shape() == std::vector<std::size_t>{3});
    CHECK(s->parameter_count() == 7 * 6 + 7 + 3 * 7 + 3);
    // tanh hidden layer: outputs of the hidden layer lie in (-1, 1)
    CHECK(s->summary().find("Tanh") != std::string::npos);
    model_spec bad = small_mlp();
    bad.activation = "swish";
    CHECK_THROWS(make_classifier(bad, 1));
}

TEST_CASE("one optimizer step matches the textbook update") {
    const xt::xarray<float> w0 = {1.0f, -2.0f}, g = {0.5f, -0.25f};
    auto one_step = [&](optimizer_spec s) {
        tensor<float> w(w0, true);
        auto opt = make_optimizer(s, {w});
        sum(w * tensor<float>(g)).backward();  // d/dw = g
        opt->step();
        reset_tape<float>();
        return xt::xarray<float>(w.value());
    };
    const float lr = 0.1f;
    // sgd: w - lr g
    auto w = one_step({"sgd", lr, 0.0, 0.0});
    CHECK(w(0) == doctest::Approx(1.0 - 0.05));
    // sgd with weight decay: g + wd w
    w = one_step({"sgd", lr, 0.0, 0.1});
    CHECK(w(1) == doctest::Approx(-2.0 - 0.1 * (-0.25 + 0.1 * -2.0)));
    // adam's first step is lr * sign(g) (bias-corrected m / sqrt(v) = g/|g|)
    w = one_step({"adam", lr, 0.0, 0.0});
    CHECK(w(0) == doctest::Approx(0.9).epsilon(1e-5));
    CHECK(w(1) == doctest::Approx(-1.9).epsilon(1e-5));
    // adamw decays the weight first: w (1 - lr wd) - lr sign(g)
    w = one_step({"adamw", lr, 0.0, 0.5});
    CHECK(w(0) == doctest::Approx(1.0 * (1 - 0.05) - 0.1).epsilon(1e-5));
    // rmsprop: v = 0.01 g^2, w - lr g / sqrt(v) = w - 10 lr sign(g)
    w = one_step({"rmsprop", lr, 0.0, 0.0});
    CHECK(w(0) == doctest::Approx(1.0 - 1.0).epsilon(1e-4));
    // adagrad: v = g^2, w - lr sign(g)
    w = one_step({"adagrad", lr, 0.0, 0.0});
    CHECK(w(1) == doctest::Approx(-1.9).epsilon(1e-5));
    tensor<float> p(w0, true);
    CHECK_THROWS_WITH(make_optimizer({"lbfgs", lr, 0, 0}, {p}), doctest::Contains("unknown optimizer 'lbfgs'"));
    CHECK_THROWS_AS(make_optimizer({"sgd", -1, 0, 0}, {p}), std::invalid_argument);
}

TEST_CASE("optimizer state restores the exact trajectory") {
    const std::string state_path = temp_path("opt.npz");
    auto run = [&](int steps, bool resume, xt::xarray<float>* w_after_2) {
        tensor<float> w(xt::xarray<float>{0.3f, -0.7f, 1.1f}, true);
        auto opt = make_optimizer({"adam", 0.05, 0.0, 0.0}, {w});
        int start = 0;
        if (resume) {
            w.mutable_value() = *w_after_2;
            opt->load_state(state_path);
            start = 2;
        }
        for (int i = start; i < steps; ++i) {
            sum(w * w * w).backward();
            opt->step();
            opt->zero_grad();
            reset_tape<float>();
            if (i == 1 && !resume) {
                opt->save_state(state_path);
                *w_after_2 = w.value();
            }
        }
        return xt::xarray<float>(w.value());
    };
    xt::xarray<float> mid;
    const auto straight = run(5, false, &mid);
    const auto resumed = run(5, true, &mid);
    CHECK(straight == resumed);
    fs::remove(state_path);
}

TEST_CASE("learning-rate schedules") {
    train_options o;
    o.lr = 1.0;
    o.schedule = "none";
    CHECK(learning_rate(o, 50, 3, 100) == 1.0);
    o.schedule = "step";
    o.step_size = 2;
    o.gamma = 0.5;
    CHECK(learning_rate(o, 0, 1, 100) == 1.0);
    CHECK(learning_rate(o, 0, 2, 100) == 0.5);
    CHECK(learning_rate(o, 0, 5, 100) == 0.25);
    o.step_size = 0;  // divided by: refused, not SIGFPE
    CHECK_THROWS_WITH(learning_rate(o, 0, 2, 100), doctest::Contains("--step-size must be at least 1"));
    o.step_size = 2;
    o.schedule = "exp";
    CHECK(learning_rate(o, 0, 3, 100) == 0.125);
    o.schedule = "cosine";
    CHECK(learning_rate(o, 0, 0, 100) == 1.0);
    CHECK(learning_rate(o, 50, 0, 100) == doctest::Approx(0.5));
    CHECK(learning_rate(o, 100, 0, 100) == doctest::Approx(0.0));
    o.warmup = 10;
    CHECK(learning_rate(o, 0, 0, 110) == doctest::Approx(0.1));
    CHECK(learning_rate(o, 9, 0, 110) == doctest::Approx(1.0));
    CHECK(learning_rate(o, 60, 0, 110) == doctest::Approx(0.5));
    o.schedule = "linear";
    CHECK_THROWS_WITH(learning_rate(o, 0, 0, 10), doctest::Contains("unknown schedule 'linear'"));
}

TEST_CASE("mse loss is on softmax probabilities against one-hot targets") {
    const tensor<float> logits(xt::xarray<float>{{0.f, 0.f}, {0.f, 0.f}});
    // softmax = 0.5 everywhere; each row has one (1 - 0.5)^2 and one 0.5^2: mean 0.25
    CHECK(classification_loss("mse", logits, {0, 1}).item() == doctest::Approx(0.25));
    CHECK(classification_loss("ce", logits, {0, 1}).item() == doctest::Approx(std::log(2.0)));
    CHECK_THROWS_WITH(classification_loss("hinge", logits, {0, 1}), doctest::Contains("unknown loss 'hinge'"));
    reset_tape<float>();
}

TEST_CASE("a short digits run through run_train writes its outputs") {
    train_options o;
    o.data = "digits";
    o.layers = {16};
    o.epochs = 2;
    o.batch_size = 64;
    o.lr = 0.01;
    o.quiet = true;
    o.progress = "lines";
    o.out = temp_path("run");
    CHECK(run_train(o) == 0);
    CHECK(fs::exists(fs::path(o.out) / "metrics.csv"));
    CHECK(fs::exists(fs::path(o.out) / "checkpoint.npz"));
    eval_options e;
    e.checkpoint = (fs::path(o.out) / "checkpoint.npz").string();
    CHECK(run_eval(e) == 0);
    fs::remove_all(o.out);
}
