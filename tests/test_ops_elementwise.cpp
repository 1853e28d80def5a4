// Elementwise ops and activations: closed forms, float64 gradcheck over several
// shapes and broadcasting in each operand, kinks nudged away, stability at +-1000.

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;

namespace {
const std::vector<shape_t> shapes = {{1}, {5}, {3, 4}, {2, 3, 2}};
// Pairs of shapes that broadcast, in both orders.
const std::vector<std::pair<shape_t, shape_t>> broadcast_pairs = {
    {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{4}, {3, 4}}, {{3, 1}, {1, 4}}, {{2, 3, 4}, {3, 1}}, {{1}, {2, 3}}, {{2, 1, 3}, {4, 1}}, {{}, {2, 2}}};
}  // namespace

TEST_CASE("binary ops: values and gradients with broadcasting in either operand") {
    using fn = tensor<double> (*)(const tensor<double>&, const tensor<double>&);
    const std::vector<std::pair<const char*, fn>> ops = {
        {"add", &add<double>}, {"sub", &sub<double>}, {"mul", &mul<double>}, {"div", &div<double>},
        {"pow", &tapegrad::pow<double>}, {"maximum", &maximum<double>}, {"minimum", &minimum<double>}};
    unsigned seed = 1;
    for (const auto& [name, op] : ops) {
        for (const auto& [sa, sb] : broadcast_pairs) {
            CAPTURE(name);
            INFO(shape_str(sa), " with ", shape_str(sb));
            // pow needs a > 0; div needs b away from 0; max/min need a != b
            xarray<double> a = uniform(sa, 0.5, 2.0, seed++);
            xarray<double> b = uniform(sb, 0.5, 2.0, seed++);
            if (std::string(name) == "maximum" || std::string(name) == "minimum") b = b + 0.013;  // no ties
            expect_grads([op](const args& x) { return op(x[0], x[1]); }, {a, b}, seed % 3 == 0);
        }
    }
}

TEST_CASE("add and sub with a bias row: gy passes through, the row's gradient adds the rows in order") {
    // float values whose sums depend on the order: row 0, then row 1, ... from zero, onto a held gradient too
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1e4f, 1e4f);
    for (const auto& [big, row] : std::vector<std::pair<shape_t, shape_t>>{
             {{37, 3}, {3}}, {{5, 2, 16}, {2, 16}}, {{1, 9}, {9}}, {{6, 5}, {1, 5}}}) {
        for (bool is_sub : {false, true})
            for (bool row_first : {false, true}) {
                INFO(shape_str(big), " with ", shape_str(row), is_sub ? " sub" : " add", row_first ? ", row first" : "");
                xarray<float> xv = xarray<float>::from_shape(big), bv = xarray<float>::from_shape(row),
                              gv = xarray<float>::from_shape(big);
                for (auto* a : {&xv, &bv, &gv})
                    for (auto& v : *a) v = u(rng) * (u(rng) > 0 ? 1e-4f : 1.0f);
                tensor<float> x(xv, true), b(bv, true);
                const std::size_t n = bv.size(), rows = gv.size() / n;
                // the row's sign in the op: b's gradient is -gy in x - b and gy in b - x
                const float sign = is_sub && !row_first ? -1.0f : 1.0f, x_sign = is_sub && row_first ? -1.0f : 1.0f;
                for (int step = 0; step < 2; ++step) {  // the second backward accumulates onto the first
                    tensor<float> y = row_first ? (is_sub ? b - x : b + x) : (is_sub ? x - b : x + b);
                    y.backward(gv);
                    reset_tape<float>();
                }
                std::vector<float> want(n, 0.0f);  // the second pass adds its rows onto the held sums
                for (int step = 0; step < 2; ++step)
                    for (std::size_t r = 0; r < rows; ++r)
                        for (std::size_t k = 0; k < n; ++k) want[k] += sign * gv.data()[r * n + k];
                REQUIRE(shape_t(b.grad().shape().begin(), b.grad().shape().end()) == row);
                for (std::size_t k = 0; k < n; ++k) CHECK(b.grad().data()[k] == want[k]);
                for (std::size_t k = 0; k < gv.size(); ++k) CHECK(x.grad().data()[k] == x_sign * gv.data()[k] * 2.0f);
            }
    }
    // -0.0 rows sum to +0.0 (a zero-filled start), as sum_to's
    tensor<float> x(xarray<float>{{1.0f, 2.0f}, {3.0f, 4.0f}}, true), b(xarray<float>{0.0f, 0.0f}, true);
    (x + b).backward(xarray<float>{{-0.0f, -0.0f}, {-0.0f, -0.0f}});
    CHECK_FALSE(std::signbit(b.grad()(0)));
    reset_tape<float>();
}

TEST_CASE("binary op values match xtensor") {
    xarray<double> a{{1, 2, 3}, {4, 5, 6}}, b{10, 20, 30};
    tensor<double> ta(a), tb(b);
    CHECK((ta + tb).value() == xarray<double>(a + b));
    CHECK((ta - tb).value() == xarray<double>(a - b));
    CHECK((ta * tb).value() == xarray<double>(a * b));
    CHECK((ta / tb).value() == xarray<double>(a / b));
    CHECK((2.0 - ta).value() == xarray<double>(2.0 - a));
    CHECK((2.0 / ta).value() == xarray<double>(2.0 / a));
    CHECK(xt::allclose(tapegrad::pow(ta, 2.0).value(), a * a, 1e-15));  // libm pow is not exact
    CHECK(maximum(ta, tensor<double>(xarray<double>{3.0})).value() == xarray<double>{{3, 3, 3}, {4, 5, 6}});
}

TEST_CASE("maximum and minimum split the gradient on ties, as PyTorch") {
    tensor<double> a(xarray<double>{1.0, 2.0, 3.0}, true), b(xarray<double>{1.0, 5.0, 0.0}, true);
    sum(maximum(a, b)).backward();
    CHECK(a.grad() == xarray<double>{0.5, 0.0, 1.0});
    CHECK(b.grad() == xarray<double>{0.5, 1.0, 0.0});
}

TEST_CASE("maximum and minimum in batches: xtensor's values bit for bit, NaN and signed zeros included") {
    // 19 floats: two batches and a tail; NaN in either operand, ties, -0 against +0
    const float nan = std::numeric_limits<float>::quiet_NaN();
    xarray<float> a = xt::cast<float>(uniform({19}, -1000, 1000, 70)), b = xt::cast<float>(uniform({19}, -1000, 1000, 71));
    a(1) = nan, b(2) = nan, a(3) = b(3), a(9) = b(9), a(5) = -0.0f, b(5) = 0.0f, a(17) = nan, b(17) = nan, a(18) = b(18);
    const xarray<float> g = xt::cast<float>(uniform({19}, -1, 1, 72));
    for (bool max : {true, false}) {
        CAPTURE(max);
        tensor<float> ta(a, true), tb(b, true);
        tensor<float> y = max ? maximum(ta, tb) : minimum(ta, tb);
        const xarray<float> want = max ? xarray<float>(xt::maximum(a, b)) : xarray<float>(xt::minimum(a, b));
        CHECK(std::memcmp(y.value().data(), want.data(), a.size() * sizeof(float)) == 0);
        sum(y * tensor<float>(g)).backward();
        for (std::size_t i = 0; i < a.size(); ++i) {
            CAPTURE(i);
            const float d = a(i) - b(i);
            const bool a_wins = max ? d > 0 : d < 0, b_wins = max ? d < 0 : d > 0;
            const float ga = a_wins ? g(i) : b_wins ? 0.0f : g(i) * 0.5f;  // ties and NaN: half each
            const float gb = b_wins ? g(i) : a_wins ? 0.0f : g(i) * 0.5f;
            CHECK(std::memcmp(&ta.grad()(i), &ga, sizeof ga) == 0);
            CHECK(std::memcmp(&tb.grad()(i), &gb, sizeof gb) == 0);
        }
        reset_tape<float>();
    }
}

TEST_CASE("scalar ops") {
    unsigned seed = 100;
    for (const auto& s : shapes) {
        xarray<double> x = uniform(s, 0.5, 2.0, seed++);
        expect_grads([](const args& a) { return a[0] + 3.0; }, {x});
        expect_grads([](const args& a) { return 3.0 - a[0]; }, {x});
        expect_grads([](const args& a) { return a[0] * -2.5; }, {x});
        expect_grads([](const args& a) { return a[0] / 4.0; }, {x});
        expect_grads([](const args& a) { return 2.0 / a[0]; }, {x}, true);
        expect_grads([](const args& a) { return -a[0]; }, {x});
        expect_grads([](const args& a) { return tapegrad::pow(a[0], 3.5); }, {x}, true);
        expect_grads([](const args& a) { return tapegrad::pow(a[0], -1.5); }, {x});
    }
}

TEST_CASE("pow(x, 2) is x * x exactly, with gradient 2 x, at the extremes too") {
    const double inf = std::numeric_limits<double>::infinity();
    const xarray<double> x = {-1000.0, -3.0, -0.0, 0.0, 1e-200, 0.1, 1000.0, 1e200, -inf, inf, std::nan("")};
    tensor<double> t(x, true);
    tensor<double> y = tapegrad::pow(t, 2.0);
    const xarray<double> want = x * x;
    CHECK(std::memcmp(y.value().data(), want.data(), x.size() * sizeof(double)) == 0);  // +0 for -0, inf, NaN
    sum(y).backward();
    const xarray<double> dwant = 2.0 * x;
    CHECK(std::memcmp(t.grad().data(), dwant.data(), x.size() * sizeof(double)) == 0);
    // float, past one xsimd batch with a partial tail
    const xarray<float> xf = xt::cast<float>(uniform({19}, -1000, 1000, 13));
    const xarray<float> wf = xf * xf;
    CHECK(tapegrad::pow(tensor<float>(xf), 2.0f).value() == wf);
    unsigned seed = 140;
    for (const auto& s : shapes)
        expect_grads([](const args& a) { return tapegrad::pow(a[0], 2.0); }, {uniform(s, -2.0, 2.0, seed++)}, true);
}

TEST_CASE("unary math ops: gradients and second derivatives") {
    unsigned seed = 200;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        xarray<double> pos = uniform(s, 0.2, 3.0, seed++);
        xarray<double> any = uniform(s, -2.0, 2.0, seed++, 0.0);
        expect_grads([](const args& a) { return tapegrad::exp(a[0]); }, {any}, true);
        expect_grads([](const args& a) { return tapegrad::log(a[0]); }, {pos}, true);
        expect_grads([](const args& a) { return tapegrad::sqrt(a[0]); }, {pos}, true);
        expect_grads([](const args& a) { return tapegrad::abs(a[0]); }, {any}, true);
        expect_grads([](const args& a) { return tapegrad::erf(a[0]); }, {any}, true);
        // clamp: values nudged away from both bounds
        xarray<double> c = uniform(s, -2.0, 2.0, seed++, 0.5);
        for (auto& v : c)
            if (std::abs(v + 0.5) < 0.05) v += 0.1;
        expect_grads([](const args& a) { return clamp(a[0], -0.5, 0.5); }, {c}, true);
    }
}

TEST_CASE("activations: gradients and second derivatives, kinks nudged away") {
    unsigned seed = 300;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        xarray<double> x = uniform(s, -3.0, 3.0, seed++, 0.0, 0.05);
        expect_grads([](const args& a) { return relu(a[0]); }, {x}, true);
        expect_grads([](const args& a) { return leaky_relu(a[0], 0.1); }, {x}, true);
        expect_grads([](const args& a) { return elu(a[0], 1.3); }, {x}, true);
        expect_grads([](const args& a) { return gelu(a[0]); }, {x}, true);
        expect_grads([](const args& a) { return tapegrad::tanh(a[0]); }, {x}, true);
        expect_grads([](const args& a) { return sigmoid(a[0]); }, {x}, true);
        expect_grads([](const args& a) { return softplus(a[0]); }, {x}, true);
    }
}

TEST_CASE("activation values match their closed forms") {
    xarray<double> x{-2.0, -0.5, 0.0, 0.5, 2.0};
    tensor<double> t(x);
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double v = x(i);
        CHECK(relu(t).value()(i) == std::max(v, 0.0));
        CHECK(leaky_relu(t, 0.2).value()(i) == doctest::Approx(v > 0 ? v : 0.2 * v));
        CHECK(elu(t, 1.5).value()(i) == doctest::Approx(v > 0 ? v : 1.5 * (std::exp(v) - 1)));
        CHECK(gelu(t).value()(i) == doctest::Approx(0.5 * v * (1 + std::erf(v / std::sqrt(2.0)))));
        CHECK(sigmoid(t).value()(i) == doctest::Approx(1 / (1 + std::exp(-v))));
        CHECK(softplus(t).value()(i) == doctest::Approx(std::log1p(std::exp(v))));
    }
}

TEST_CASE("relu, abs and clamp gradients at their kinks follow PyTorch") {
    tensor<double> x(xarray<double>{0.0, -1.0, 1.0}, true);
    sum(relu(x) + tapegrad::abs(x) + clamp(x, -1.0, 1.0)).backward();
    // relu'(0) = 0, abs'(0) = 0, clamp' = 1 on the closed interval
    CHECK(x.grad() == xarray<double>{1.0, 0.0, 3.0});
}

TEST_CASE("activations are finite at +-1000 (float and double)") {
    auto finite = [](const auto& a) {
        for (auto v : a)
            if (!std::isfinite(v)) return false;
        return true;
    };
    tensor<float> xf(xarray<float>{-1000.f, -50.f, 0.f, 50.f, 1000.f}, true);
    for (auto y : {tapegrad::tanh(xf), sigmoid(xf), softplus(xf), gelu(xf), elu(xf, 1.f), leaky_relu(xf, .1f),
                   softmax(xf, 0), log_softmax(xf, 0)}) {
        INFO(y.op_name());
        CHECK(finite(y.value()));
        auto g = tape<float>::current().gradient(sum(y), {xf});
        CHECK(finite(g[0].value()));
    }
    CHECK(sigmoid(xf).value()(0) == 0.0f);
    CHECK(sigmoid(xf).value()(4) == 1.0f);
    CHECK(softplus(xf).value()(4) == 1000.0f);
    CHECK(softplus(xf).value()(0) == 0.0f);
    reset_tape<float>();
}

TEST_CASE("where picks elementwise and routes gradients to the chosen branch") {
    xarray<double> cond{1, 0, 1}, a = uniform({2, 3}, -1, 1, 7), b = uniform({3}, -1, 1, 8);
    tensor<double> c(cond);
    expect_grads([c](const args& x) { return where(c, x[0], x[1]); }, {a, b}, true);
    tensor<double> ta(a), tb(b);
    auto w = where(c, ta, tb).value();
    CHECK(w(1, 0) == a(1, 0));
    CHECK(w(1, 1) == b(1));
}

TEST_CASE("log and sqrt follow IEEE outside their domain, as PyTorch") {
    tensor<double> x(xarray<double>{-1.0, 0.0, 4.0});
    auto l = tapegrad::log(x).value();
    auto r = tapegrad::sqrt(x).value();
    CHECK(std::isnan(l(0)));
    CHECK(std::isinf(l(1)));
    CHECK(l(1) < 0);
    CHECK(std::isnan(r(0)));
    CHECK(r(1) == 0.0);
    CHECK(r(2) == 2.0);
}

TEST_CASE("broadcast errors name the op and both shapes") {
    tensor<double> a(xarray<double>::from_shape({2, 3})), b(xarray<double>::from_shape({4}));
    CHECK_THROWS_WITH_AS(a + b, doctest::Contains("add: shapes [2, 3] and [4] cannot be broadcast"), shape_error);
    CHECK_THROWS_WITH_AS(a * b, doctest::Contains("mul: shapes [2, 3] and [4]"), shape_error);
    CHECK_THROWS_WITH_AS(maximum(a, b), doctest::Contains("maximum"), shape_error);
    CHECK_THROWS_AS(clamp(a, 1.0, -1.0), std::invalid_argument);
}
