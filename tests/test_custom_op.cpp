// Custom ops (autograd/function.hpp): a tensor-op backward is twice differentiable,
// a values backward refuses second order naming the op, typed saved state reaches
// the backward, check_custom_op catches a wrong backward, and the first-run check.

#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include <xtensor/xmath.hpp>

#include "autograd/function.hpp"
#include "autograd/ops.hpp"

using namespace tapegrad;

namespace {

// swish(x) = x sigmoid(x); d/dx = s + x s (1 - s)
custom_op<double> make_swish() {
    custom_op<double> op("swish");
    op.forward([](auto& a) { a.y() = a.x(0) / (1.0 + xt::exp(-a.x(0))); })
        .backward_tensors([](auto& a) {
            tensor<double> s = sigmoid(a.x(0));
            a.set_grad(0, a.gy() * (s + a.x(0) * s * (1.0 - s)));
        });
    return op;
}

struct eps_param { double eps = 0; };
// smooth_abs(x) = sqrt(x^2 + eps^2); d/dx = x / y (backward on values)
custom_op<double, eps_param, eps_param> make_smooth_abs(bool wrong = false) {
    custom_op<double, eps_param, eps_param> op("smooth_abs");
    op.forward([](auto& a) {
          a.saved().eps = a.params().eps;
          a.y() = xt::sqrt(a.x(0) * a.x(0) + a.params().eps * a.params().eps);
      })
        .backward_values([wrong](auto& a) {
            if (wrong) a.grad(0) = a.gy() * a.x(0);  // forgot the / y
            else a.grad(0) = a.gy() * a.x(0) / a.y();
        });
    return op;
}

}  // namespace

TEST_CASE("custom op: swish values, gradient and second derivative match closed forms") {
    custom_op<double> swish = make_swish();
    xt::xarray<double> xv = {-1000.0, -2.0, 0.0, 0.5, 1000.0};
    tensor<double> x(xv, true);
    tensor<double> y = swish({x});
    CHECK(std::string(y.op_name()) == "swish");
    for (std::size_t i = 0; i < xv.size(); ++i) {
        const double s = 1.0 / (1.0 + std::exp(-xv(i)));
        CHECK(y.value()(i) == doctest::Approx(xv(i) * s));
    }
    auto g = tape<double>::current().gradient(sum(y), {x}, {true, true});
    auto gg = tape<double>::current().gradient(sum(g[0]), {x});
    for (std::size_t i = 0; i < xv.size(); ++i) {
        const double s = 1.0 / (1.0 + std::exp(-xv(i)));
        CHECK(g[0].value()(i) == doctest::Approx(s + xv(i) * s * (1 - s)));
        // d2/dx2 = s(1-s) (2 + x (1 - 2 s))
        CHECK(gg[0].value()(i) == doctest::Approx(s * (1 - s) * (2 + xv(i) * (1 - 2 * s))));
    }
    CHECK(g[0].value()(0) == 0.0);  // -1000: s underflows to 0, no NaN
    CHECK(g[0].value()(4) == 1.0);
    reset_tape<double>();
    auto r = check_custom_op(swish, std::vector<shape_t>{{3, 4}});
    CHECK(r.second_checked);
    CHECK_MESSAGE(r.passed(), r.table());
}

TEST_CASE("custom op: a backward on values is differentiable once and says so") {
    auto op = make_smooth_abs();
    tensor<double> x(xt::xarray<double>{-1000.0, 0.0, 3.0}, true);
    tensor<double> y = op({x}, eps_param{1e-3});
    sum(y).backward();
    CHECK(x.grad()(0) == doctest::Approx(-1.0));
    CHECK(x.grad()(1) == 0.0);  // exact zero: x / sqrt(eps^2)
    CHECK(x.grad()(2) == doctest::Approx(3.0 / std::sqrt(9.0 + 1e-6)));
    reset_tape<double>();
    tensor<double> y2 = op({x}, eps_param{1e-3});
    try {
        tape<double>::current().gradient(sum(y2), {x}, {true, true});
        FAIL("no error");
    } catch (const std::logic_error& e) {
        const std::string m = e.what();
        CHECK(m.find("custom op 'smooth_abs' has a backward on plain values and is differentiable once") !=
              std::string::npos);
        CHECK(m.find("backward_tensors") != std::string::npos);
        CHECK(m.find("undefined") == std::string::npos);
    }
    reset_tape<double>();
    auto r = check_custom_op(op, std::vector<shape_t>{{2, 3}}, eps_param{0.5});
    CHECK_FALSE(r.second_checked);
    CHECK_MESSAGE(r.passed(), r.table());
}

TEST_CASE("custom op: typed saved state with destructors reaches the backward and is reused") {
    struct saved_t {
        std::string tag;
        std::vector<int> counts;
        xt::xarray<double> scaled{xt::xarray<double>::shape_type{0}};
        double a = 0;
        int calls = 0;  // counts the forwards this state has seen
    };
    struct params_t {
        std::string tag;
        double a = 0;
    };
    custom_op<double, saved_t, params_t> op("scale_by");
    std::string seen;
    int calls_seen = 0;
    const int* counts_buffer = nullptr;  // where the saved vector's elements live
    op.forward([&counts_buffer](auto& f) {
          f.saved().tag = f.params().tag;
          f.saved().counts.assign(100, 7);
          counts_buffer = f.saved().counts.data();
          ++f.saved().calls;
          f.saved().a = f.params().a;
          f.saved().scaled = f.x(0) * f.params().a;  // y = a x
          f.y() = f.saved().scaled;
      })
        .backward_values([&seen, &calls_seen](auto& b) {
            seen = b.saved().tag + std::to_string(b.saved().counts.size());
            calls_seen = b.saved().calls;
            b.grad(0) = b.gy() * b.saved().a;  // dy/dx = a
        });
    tensor<double> x(xt::xarray<double>{1.0, 2.0}, true);
    {
        tensor<double> y = op({x}, params_t{"a long tag that needs the heap, not SSO", 2.5});
        sum(y).backward();
        reset_tape<double>();
    }
    CHECK(seen == "a long tag that needs the heap, not SSO100");
    CHECK(x.grad()(0) == 2.5);
    const int* first_buffer = counts_buffer;
    for (int step = 0; step < 20; ++step) {  // the slot's state is reused: same buffers every step
        tensor<double> y = op({x}, params_t{"t", -1.0});
        sum(y).backward();
        reset_tape<double>();
        CHECK(counts_buffer == first_buffer);
    }
    CHECK(seen == "t100");
    CHECK(calls_seen == 21);  // one state object, not a fresh one per step
    CHECK(x.grad()(1) == doctest::Approx(2.5 - 20.0));
}

TEST_CASE("custom op: check_custom_op catches a wrong backward") {
    auto wrong = make_smooth_abs(true);
    auto r = check_custom_op(wrong, std::vector<shape_t>{{4}}, eps_param{0.5});
    CHECK_FALSE(r.passed());
    CHECK(r.table().find("custom op 'smooth_abs': FAIL") != std::string::npos);
    CHECK(r.table().find("FAIL") != std::string::npos);
}

TEST_CASE("custom op: the first-run check refuses a wrong op once, naming it") {
    set_check_custom_ops(true);
    auto wrong = make_smooth_abs(true);
    tensor<double> x(xt::xarray<double>{0.3, -0.7}, true);
    try {
        wrong({x}, eps_param{0.5});
        FAIL("no error");
    } catch (const std::logic_error& e) {
        CHECK(std::string(e.what()).find("custom op 'smooth_abs' failed its first-run check") != std::string::npos);
    }
    CHECK_NOTHROW(wrong({x}, eps_param{0.5}));  // checked once per op
    auto good = make_swish();
    tensor<double> y = good({x});  // passes its check and records
    CHECK(y.value()(0) == doctest::Approx(0.3 / (1 + std::exp(-0.3))));
    set_check_custom_ops(false);
    reset_tape<double>();
}

TEST_CASE("custom op: zeros and +-1000 through the ported fused losses") {
    tensor<double> p(xt::xarray<double>{{0.0, 1000.0}, {-1000.0, 0.0}}, true);
    tensor<double> t(xt::xarray<double>{{0.0, 0.0}, {0.0, 0.0}});
    tensor<double> l = mse(p, t);
    CHECK(std::string(l.op_name()) == "mse");
    CHECK(l.item() == doctest::Approx(5e5));
    l.backward();
    CHECK(p.grad()(0, 1) == doctest::Approx(500.0));  // 2 (p - t) / n, n = 4
    CHECK(p.grad()(0, 0) == 0.0);
    reset_tape<double>();
    tensor<double> z(xt::xarray<double>{{1000.0, -1000.0, 0.0}}, true);
    tensor<double> ce = cross_entropy(z, std::vector<std::size_t>{1});
    CHECK(ce.item() == doctest::Approx(2000.0));
    ce.backward();
    CHECK(z.grad()(0, 0) == doctest::Approx(1.0));
    CHECK(z.grad()(0, 1) == doctest::Approx(-1.0));
    reset_tape<double>();
}
