// Reductions over every axis and over all, with keepdims; logsumexp, softmax, log_softmax.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include <doctest/doctest.h>
#include <xtensor/xreducer.hpp>
#include <xtensor/xsort.hpp>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;

TEST_CASE("sum and mean over each axis, several axes and all, with and without keepdims") {
    xarray<double> x = uniform({2, 3, 4}, -1, 1, 1);
    tensor<double> t(x);
    CHECK(sum(t).value()() == doctest::Approx(xt::sum(x)()));
    CHECK(mean(t).value()() == doctest::Approx(xt::mean(x)()));
    for (std::vector<int> axes : {std::vector<int>{0}, {1}, {2}, {-1}, {0, 2}, {}}) {
        for (bool keep : {false, true}) {
            INFO("axes ", shape_str(shape_t(axes.begin(), axes.end())), " keepdims ", keep);
            auto s = sum(t, axes, keep).value();
            std::vector<std::size_t> ax;
            for (int a : axes) ax.push_back(a < 0 ? a + 3 : a);
            if (ax.empty()) ax = {0, 1, 2};
            xarray<double> expected = xt::sum(x, ax, xt::evaluation_strategy::immediate);
            CHECK(s.size() == expected.size());
            CHECK(xt::allclose(xt::flatten(s), xt::flatten(expected)));
            CHECK(s.dimension() == (keep ? 3 : 3 - ax.size()));
            expect_grads([axes, keep](const args& a) { return sum(a[0], axes, keep); }, {x}, true);
            expect_grads([axes, keep](const args& a) { return mean(a[0], axes, keep); }, {x});
        }
    }
}

TEST_CASE("max and min, ties share the gradient") {
    xarray<double> x = uniform({3, 4}, -1, 1, 2);
    tensor<double> t(x);
    CHECK(max(t).value()() == xt::amax(x)());
    CHECK(min(t, {1}).value() == xarray<double>(xt::amin(x, {1})));
    for (int axis : {0, 1}) {
        expect_grads([axis](const args& a) { return max(a[0], {axis}); }, {x}, true);
        expect_grads([axis](const args& a) { return min(a[0], {axis}, true); }, {x});
    }
    expect_grads([](const args& a) { return max(a[0]); }, {x});
    tensor<double> tied(xarray<double>{{1, 3, 3}, {2, 0, 1}}, true);
    sum(max(tied, {1})).backward();
    CHECK(tied.grad() == xarray<double>{{0, 0.5, 0.5}, {1, 0, 0}});
}

TEST_CASE("max and min over any axes of a rank-3 tensor: values, NaN, signed zeros, extremes") {
    xarray<double> x = uniform({2, 3, 4}, -1000, 1000, 5);
    const std::vector<std::vector<int>> axis_sets{{0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}, {-1}};
    for (const auto& axes : axis_sets)
        for (bool keep : {false, true}) {
            std::vector<std::size_t> ax;
            for (int a : axes) ax.push_back(static_cast<std::size_t>(a < 0 ? a + 3 : a));
            xarray<double> hi = xt::amax(x, ax, xt::evaluation_strategy::immediate);
            xarray<double> lo = xt::amin(x, ax, xt::evaluation_strategy::immediate);
            const auto mx = max(tensor<double>(x), axes, keep).value();
            const auto mn = min(tensor<double>(x), axes, keep).value();
            CHECK(mx.dimension() == (keep ? 3 : 3 - ax.size()));
            CHECK(xt::flatten(mx) == xt::flatten(hi));
            CHECK(xt::flatten(mn) == xt::flatten(lo));
            expect_grads([axes, keep](const args& a) { return max(a[0], axes, keep); }, {uniform({2, 3, 4}, -1, 1, 6)}, true);
        }
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    // a NaN anywhere in a fiber gives NaN, as torch.max does
    xarray<double> with_nan{{1, nan, 3}, {nan, -2, -1}, {-inf, -inf, -inf}};
    const auto m = max(tensor<double>(with_nan), {1}).value();
    CHECK(std::isnan(m(0)));
    CHECK(std::isnan(m(1)));
    CHECK(m(2) == -inf);
    const auto lo = min(tensor<double>(with_nan), {0}).value();
    CHECK(std::isnan(lo(0)));
    CHECK(std::isnan(lo(1)));
    CHECK(lo(2) == -inf);
    // +0 and -0 tie: the first wins, and both share the gradient
    tensor<double> zeros(xarray<double>{-0.0, 0.0}, true);
    tensor<double> z = max(zeros);
    CHECK(std::signbit(z.value()()));
    CHECK(!std::signbit(max(tensor<double>(xarray<double>{0.0, -0.0})).value()()));
    z.backward();
    CHECK(zeros.grad() == xarray<double>{0.5, 0.5});
}

namespace {
template <class T> std::uint64_t bits_of(T v) {
    std::uint64_t b = 0;
    std::memcpy(&b, &v, sizeof v);
    return b;
}
// Long fibers (several xsimd batches and a tail): the lanes must pick what a scan in
// order picks. Here the winner sits at every position in turn, with the ties and NaNs
// whose choice the lanes cannot see: +0 against -0, and two NaN payloads.
template <class T> void long_fibers() {
    const std::size_t n = 37;
    const T nan_a = std::numeric_limits<T>::quiet_NaN(), nan_b = -std::numeric_limits<T>::quiet_NaN();
    for (std::size_t at = 0; at < n; ++at) {
        CAPTURE(at);
        xarray<T> x = xt::cast<T>(uniform({2, n}, -1000, -1, 7));  // all negative: a zero is the maximum
        x(0, at) = T(1000);                                         // one winner, any position
        x(1, at) = T(-0.0);                                         // tied zeros: the first wins
        x(1, (at + 11) % n) = T(0.0);
        const xarray<T> m = max(tensor<T>(x), {1}).value();
        CHECK(m(0) == T(1000));
        CHECK(m(1) == T(0));
        CHECK(std::signbit(m(1)) == (at < (at + 11) % n));
        x(0, at) = nan_a;  // two NaNs: the last wins, as a scan in order
        x(0, (at + 5) % n) = nan_b;
        const xarray<T> lo = min(tensor<T>(x), {1}).value();
        CHECK(bits_of(lo(0)) == bits_of(at < (at + 5) % n ? nan_b : nan_a));
        // the kept axis: column-wise over 2 rows
        const xarray<T> col = max(tensor<T>(x), {0}).value();
        CHECK(std::isnan(col(at)));
        CHECK(std::isnan(col((at + 5) % n)));
    }
    // gradients of a long fiber with ties: shared, and all elements reached
    tensor<T> t(xarray<T>(xt::zeros<T>(std::vector<std::size_t>{1, n}) + T(2)), true);
    max(t, {1}).backward();
    for (std::size_t k = 0; k < n; ++k) CHECK(t.grad()(0, k) == doctest::Approx(1.0 / n));
}
}  // namespace

TEST_CASE("max and min over long fibers pick what a scan in order picks: signed zeros, NaN payloads, ties") {
    long_fibers<float>();
    long_fibers<double>();
}

TEST_CASE("logsumexp is stable and differentiable") {
    xarray<double> x = uniform({3, 5}, -2, 2, 3);
    auto l = logsumexp(tensor<double>(x), 1).value();
    for (std::size_t i = 0; i < 3; ++i) {
        double s = 0;
        for (std::size_t j = 0; j < 5; ++j) s += std::exp(x(i, j));
        CHECK(l(i) == doctest::Approx(std::log(s)));
    }
    for (int axis : {0, 1})
        expect_grads([axis](const args& a) { return logsumexp(a[0], axis); }, {x}, true);
    tensor<float> big(xarray<float>{{1000.f, 1000.f}, {-1000.f, -1000.f}});
    auto lb = logsumexp(big, 1).value();
    CHECK(lb(0) == doctest::Approx(1000.f + std::log(2.f)));
    CHECK(lb(1) == doctest::Approx(-1000.f + std::log(2.f)));
}

TEST_CASE("softmax and log_softmax: values, gradients on each axis, stability") {
    xarray<double> x = uniform({3, 4}, -2, 2, 4);
    auto p = softmax(tensor<double>(x), 1).value();
    auto lp = log_softmax(tensor<double>(x), 1).value();
    for (std::size_t i = 0; i < 3; ++i) {
        double s = 0;
        for (std::size_t j = 0; j < 4; ++j) s += std::exp(x(i, j));
        for (std::size_t j = 0; j < 4; ++j) {
            CHECK(p(i, j) == doctest::Approx(std::exp(x(i, j)) / s));
            CHECK(lp(i, j) == doctest::Approx(x(i, j) - std::log(s)));
        }
    }
    for (int axis : {0, 1, -1}) {
        expect_grads([axis](const args& a) { return softmax(a[0], axis); }, {x}, true);
        expect_grads([axis](const args& a) { return log_softmax(a[0], axis); }, {x}, true);
    }
    xarray<double> x3 = uniform({2, 3, 2}, -2, 2, 5);
    expect_grads([](const args& a) { return softmax(a[0], 1); }, {x3});
    tensor<float> big(xarray<float>{{1000.f, 0.f, -1000.f}});
    auto ps = softmax(big, 1).value();
    CHECK(ps(0) == 1.0f);
    CHECK(ps(2) == 0.0f);
    auto ls = log_softmax(big, 1).value();
    CHECK(ls(0) == 0.0f);
    CHECK(ls(2) == -2000.0f);
}

TEST_CASE("softmax and log_softmax along a strided axis equal the last axis's, at +-1000, with -inf and NaN") {
    // [5, 37] along axis 0: 37 lines a block (xsimd batches and a tail) against the contiguous path on the transpose
    xarray<float> x = xt::cast<float>(uniform({5, 37}, -3, 3, 9));
    x(0, 3) = 1000.f, x(4, 3) = -1000.f, x(2, 10) = -std::numeric_limits<float>::infinity();
    for (std::size_t k = 0; k < 5; ++k) x(k, 20) = -std::numeric_limits<float>::infinity();  // a line of -inf: NaN, as contiguous
    x(1, 30) = std::numeric_limits<float>::quiet_NaN();
    const xarray<float> xt_ = xt::transpose(x);
    for (bool log : {false, true}) {
        CAPTURE(log);
        tensor<float> a(x, true), b(xt_, true);
        tensor<float> ya = log ? log_softmax(a, 0) : softmax(a, 0);
        tensor<float> yb = log ? log_softmax(b, 1) : softmax(b, 1);
        const xarray<float> want = xt::transpose(yb.value());
        for (std::size_t i = 0; i < x.size(); ++i) {
            const float u = ya.value().data()[i], w = want.data()[i];
            INFO(i, " ", u, " ", w);
            CHECK(((std::isnan(u) && std::isnan(w)) || u == w || u == doctest::Approx(w).epsilon(1e-6)));
        }
        const xarray<float> g = xt::cast<float>(uniform({5, 37}, -1, 1, 10));
        sum(ya * tensor<float>(g)).backward();
        sum(yb * tensor<float>(xarray<float>(xt::transpose(g)))).backward();
        const xarray<float> gwant = xt::transpose(b.grad());
        for (std::size_t i = 0; i < x.size(); ++i) {
            const float u = a.grad().data()[i], w = gwant.data()[i];
            CHECK(((std::isnan(u) && std::isnan(w)) || u == w || u == doctest::Approx(w).epsilon(1e-5).scale(1)));
        }
        reset_tape<float>();
    }
}

namespace {
// softmax and log_softmax backward along contiguous rows of n against long-double formulas:
// dx = y (g - sum(g y)) and dx = g - softmax sum(g), where the sums run in xsimd accumulators.
template <class T> void check_long_rows(T tol) {
    for (std::size_t n : {1, 7, 8, 9, 17, 31, 32, 33, 65, 1000}) {
        CAPTURE(n);
        const xarray<T> x = xt::cast<T>(uniform({2, n}, -4, 4, 30 + unsigned(n)));
        const xarray<T> g = xt::cast<T>(uniform({2, n}, -1, 1, 31 + unsigned(n)));
        for (bool log : {false, true}) {
            CAPTURE(log);
            tensor<T> a(x, true);
            tensor<T> y = log ? log_softmax(a, -1) : softmax(a, -1);
            sum(y * tensor<T>(g)).backward();
            for (std::size_t r = 0; r < 2; ++r) {
                long double top = x(r, 0), total = 0, dot = 0, gsum = 0;
                for (std::size_t k = 0; k < n; ++k) top = std::max<long double>(top, x(r, k));
                for (std::size_t k = 0; k < n; ++k) total += std::exp(static_cast<long double>(x(r, k)) - top);
                for (std::size_t k = 0; k < n; ++k) {
                    const long double p = std::exp(static_cast<long double>(x(r, k)) - top) / total;
                    dot += g(r, k) * p;
                    gsum += g(r, k);
                }
                for (std::size_t k = 0; k < n; ++k) {
                    const long double p = std::exp(static_cast<long double>(x(r, k)) - top) / total;
                    const long double want = log ? g(r, k) - p * gsum : p * (g(r, k) - dot);
                    CHECK(std::abs(static_cast<long double>(a.grad()(r, k)) - want) <= tol * (1 + std::abs(want)));
                }
            }
            reset_tape<T>();
        }
    }
}
}  // namespace

TEST_CASE("softmax and log_softmax gradients along long contiguous rows (xsimd sums and tails)") {
    check_long_rows<float>(2e-5f);
    check_long_rows<double>(1e-13);
}

TEST_CASE("reduction axis errors name the op") {
    tensor<double> t(xarray<double>::from_shape({2, 3}));
    CHECK_THROWS_WITH_AS(sum(t, {2}), doctest::Contains("sum: axis 2 is out of range for a tensor of rank 2"), shape_error);
    CHECK_THROWS_WITH_AS(softmax(t, -3), doctest::Contains("softmax: axis -3"), shape_error);
}
