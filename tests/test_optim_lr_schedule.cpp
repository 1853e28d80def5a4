// Closed-form learning-rate schedules (optim/lr_schedule.hpp) and the optimizer
// factory (optim/factory.hpp): values against the formulas, the warm-up
// combinator's seams, and the factory's names and errors.

#include <cmath>
#include <memory>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "optim/factory.hpp"
#include "optim/lr_schedule.hpp"

using namespace tapegrad;
using namespace tapegrad::optim;

TEST_CASE("step, exponential and cosine decay in closed form") {
    step_decay s(0.1, 0.5, 3);
    CHECK(s.lr_at(0) == 0.1);
    CHECK(s.lr_at(2) == 0.1);
    CHECK(s.lr_at(3) == 0.05);
    CHECK(s.lr_at(8) == 0.1 * 0.25);
    CHECK(s.lr_at(9) == 0.1 * 0.125);
    exponential_decay e(2.0, 0.9);
    CHECK(e.lr_at(0) == 2.0);
    CHECK(e.lr_at(4) == 2.0 * std::pow(0.9, 4.0));
    cosine_decay c(1.0, 100);
    CHECK(c.lr_at(0) == 1.0);
    CHECK(c.lr_at(25) == doctest::Approx((1 + std::cos(M_PI / 4)) / 2).epsilon(1e-15));
    CHECK(c.lr_at(50) == doctest::Approx(0.5).epsilon(1e-15));
    CHECK(c.lr_at(100) == doctest::Approx(0.0));
    CHECK(c.lr_at(1000) == c.lr_at(100));  // stays at the end value
    CHECK(constant_lr(0.3).lr_at(12345) == 0.3);
    CHECK_THROWS_WITH(step_decay(1, 0.5, 0), doctest::Contains("step_size must be at least 1"));
    CHECK_THROWS_WITH(cosine_decay(1, 0), doctest::Contains("span must be at least 1"));
}

TEST_CASE("warm-up: linear to the schedule's start, then the schedule from its own step 0") {
    CHECK(linear_warmup_factor(0, 4) == 0.25);
    CHECK(linear_warmup_factor(3, 4) == 1.0);
    CHECK(linear_warmup_factor(4, 4) == 1.0);
    CHECK(linear_warmup_factor(0, 0) == 1.0);
    auto cos = std::make_shared<cosine_decay>(0.8, 10);
    warmup w(cos, 4);
    CHECK(w.lr_at(0) == 0.8 * 0.25);
    CHECK(w.lr_at(1) == 0.8 * 0.5);
    CHECK(w.lr_at(3) == 0.8);
    CHECK(w.lr_at(4) == cos->lr_at(0));   // the seam: warm-up's end is the schedule's start
    CHECK(w.lr_at(9) == cos->lr_at(5));
    CHECK(w.lr_at(14) == cos->lr_at(10));
    warmup none(cos, 0);
    CHECK(none.lr_at(7) == cos->lr_at(7));
    CHECK_THROWS_WITH(warmup(nullptr, 3), doctest::Contains("null"));
}

TEST_CASE("make_optimizer builds each optimizer by name and rejects unknown ones") {
    tensor<double> w(xt::xarray<double>{1.0, -2.0}, true);
    for (const char* name : {"sgd", "adam", "adamw", "rmsprop", "adagrad"}) {
        optimizer_spec s;
        s.name = name;
        s.lr = 0.5;
        auto opt = make_optimizer<double>(s, {w});
        REQUIRE(opt);
        CHECK(opt->lr() == 0.5);
    }
    optimizer_spec plain{"sgd", 0.5, 0.0, 0.0};
    sum(w * tensor<double>(xt::xarray<double>{2.0, 4.0})).backward();  // grad {2, 4}
    make_optimizer<double>(plain, {w})->step();  // w -= lr * g
    CHECK(w.value()(0) == 0.0);
    CHECK(w.value()(1) == -4.0);
    CHECK_THROWS_WITH(make_optimizer<double>({"lbfgs", 0.1, 0, 0}, {w}), doctest::Contains("unknown optimizer 'lbfgs'"));
}
