// Learning-rate schedules against their closed forms, and gradient clipping.

#include <cmath>

#include <doctest/doctest.h>

#include "optim/clip.hpp"
#include "optim/schedulers.hpp"
#include "tests/check.hpp"

using namespace tapegrad;

namespace {
constexpr double pi = 3.14159265358979323846;

template <class F> std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(nothing thrown)";
}
}  // namespace

TEST_CASE("schedules follow their closed forms epoch by epoch") {
    tensor<double> p(xt::xarray<double>{1.0}, true);
    {
        optim::sgd<double> opt({p}, {0.1});
        optim::step_lr<double> s(opt, 3, 0.5);
        for (int e = 0; e < 10; ++e, s.step()) CHECK(opt.lr() == doctest::Approx(0.1 * std::pow(0.5, e / 3)).epsilon(1e-14));
    }
    {
        optim::sgd<double> opt({p}, {0.1});
        optim::exponential_lr<double> s(opt, 0.9);
        for (int e = 0; e < 10; ++e, s.step()) CHECK(opt.lr() == doctest::Approx(0.1 * std::pow(0.9, e)).epsilon(1e-14));
    }
    {
        optim::sgd<double> opt({p}, {0.1});
        optim::cosine_annealing_lr<double> s(opt, 8, 0.01);
        for (int e = 0; e <= 8; ++e, s.step())
            CHECK(opt.lr() == doctest::Approx(0.01 + 0.09 * (1 + std::cos(pi * e / 8)) / 2).epsilon(1e-12));
    }
    {
        optim::sgd<double> opt({p}, {0.1});
        optim::linear_warmup<double> s(opt, 0.2, 1.0, 4);
        CHECK(s.last_epoch() == 0);
        for (int e = 0; e < 8; ++e, s.step())
            CHECK(opt.lr() == doctest::Approx(0.1 * (0.2 + 0.8 * std::min(e, 4) / 4.0)).epsilon(1e-14));
        CHECK(s.base_lr() == 0.1);
    }
    optim::sgd<double> opt({p}, {0.1});
    CHECK(error_of([&] { optim::step_lr<double>(opt, 0); }) == "step_lr: invalid step_size 0 (must be >= 1)");
    CHECK(error_of([&] { optim::cosine_annealing_lr<double>(opt, 0); }) ==
          "cosine_annealing_lr: invalid t_max 0 (must be >= 1)");
    CHECK(error_of([&] { optim::linear_warmup<double>(opt, 0.0); }) ==
          "linear_warmup: invalid start_factor 0 (must be in (0, 1])");
    CHECK(error_of([&] { optim::exponential_lr<double>(opt, -1); }) == "exponential_lr: invalid gamma -1 (must be >= 0)");
}

TEST_CASE("clip_grad_norm scales by max_norm / total and returns the total") {
    tensor<double> a(xt::xarray<double>{3.0, 4.0}, true), b(xt::xarray<double>{12.0}, true), c(xt::xarray<double>{1.0}, true);
    auto grads = [&] {
        a.zero_grad();
        b.zero_grad();
        (sum(a * tensor<double>(xt::xarray<double>{3.0, 4.0})) + sum(b * tensor<double>(xt::xarray<double>{12.0}))).backward();
        reset_tape<double>();
    };
    grads();
    // c has no gradient and is skipped
    CHECK(optim::clip_grad_norm<double>({a, b, c}, 6.5) == doctest::Approx(13.0).epsilon(1e-15));
    const double coef = 6.5 / (13.0 + 1e-6);
    CHECK(a.grad()(0) == doctest::Approx(3 * coef).epsilon(1e-15));
    CHECK(a.grad()(1) == doctest::Approx(4 * coef).epsilon(1e-15));
    CHECK(b.grad()(0) == doctest::Approx(12 * coef).epsilon(1e-15));
    grads();
    CHECK(optim::clip_grad_norm<double>({a, b}, 100.0) == doctest::Approx(13.0));
    CHECK(a.grad() == xt::xarray<double>{3.0, 4.0});
    CHECK(error_of([&] { optim::clip_grad_norm<double>({a}, -1.0); }) == "clip_grad_norm: invalid max_norm -1 (must be >= 0)");
}

TEST_CASE("clip_grad_value clamps every element") {
    tensor<float> a(xt::xarray<float>{1.0f, 1.0f, 1.0f}, true);
    sum(a * tensor<float>(xt::xarray<float>{-5.0f, 0.5f, 7.0f})).backward();
    reset_tape<float>();
    optim::clip_grad_value<float>({a}, 2.0f);
    CHECK(a.grad() == xt::xarray<float>{-2.0f, 0.5f, 2.0f});
    CHECK(error_of([&] { optim::clip_grad_value<float>({a}, -1.0f); }) == "clip_grad_value: invalid value -1 (must be >= 0)");
}
