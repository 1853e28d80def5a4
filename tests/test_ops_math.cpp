// sin, cos, log1p, expm1, rsqrt, clamp_min/clamp_max and the tensor comparisons:
// closed forms, float64 gradcheck + gradgradcheck over several shapes, first and
// second derivatives at the extremes written out, and broadcasting errors.

#include <cmath>
#include <limits>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"
#include "tests/derivs.hpp"

using namespace tapegrad;
using tapegrad::testing::expect_grads;
using tapegrad::testing::first_derivative;
using tapegrad::testing::second_derivative;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;

namespace {
const std::vector<shape_t> shapes = {{1}, {7}, {3, 5}, {2, 3, 3}};

void check_close(const xarray<double>& got, const xarray<double>& want, double tol = 1e-13) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        if (std::isnan(want.data()[i])) CHECK(std::isnan(got.data()[i]));
        else if (std::isinf(want.data()[i])) CHECK(got.data()[i] == want.data()[i]);
        else CHECK(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(tol).scale(1));
    }
}
}  // namespace

TEST_CASE("sin and cos: values, gradcheck and gradgradcheck") {
    unsigned seed = 11;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        xarray<double> x = uniform(s, -4, 4, seed++);
        expect_grads([](const args& a) { return tapegrad::sin(a[0]); }, {x}, true);
        expect_grads([](const args& a) { return tapegrad::cos(a[0]); }, {x}, true);
        check_close(tapegrad::sin(tensor<double>(x)).value(), xt::sin(x));
    }
    xarray<double> e{-1000.0, 0.0, 1000.0};
    check_close(first_derivative([](auto& t) { return tapegrad::sin(t); }, e), xt::cos(e));
    check_close(second_derivative([](auto& t) { return tapegrad::sin(t); }, e), -xt::sin(e));
    check_close(second_derivative([](auto& t) { return tapegrad::cos(t); }, e), -xt::cos(e));
}

TEST_CASE("log1p and expm1: accurate near 0, derivatives at the extremes") {
    unsigned seed = 21;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        expect_grads([](const args& a) { return tapegrad::log1p(a[0]); }, {uniform(s, -0.8, 3, seed++)}, true);
        expect_grads([](const args& a) { return tapegrad::expm1(a[0]); }, {uniform(s, -3, 3, seed++)}, true);
    }
    // log1p(1e-20) is 1e-20, where log(1 + x) would give 0
    CHECK(tapegrad::log1p(tensor<double>::scalar(1e-20)).item() == 1e-20);
    CHECK(tapegrad::expm1(tensor<double>::scalar(1e-20)).item() == 1e-20);
    xarray<double> x{-1000.0, 0.0, 1000.0};
    // expm1: f' = f'' = e^x: 0, 1, inf
    const double inf = std::numeric_limits<double>::infinity();
    check_close(first_derivative([](auto& t) { return tapegrad::expm1(t); }, x), xarray<double>{0.0, 1.0, inf});
    check_close(second_derivative([](auto& t) { return tapegrad::expm1(t); }, x), xarray<double>{0.0, 1.0, inf});
    // log1p: f' = 1/(1+x), f'' = -1/(1+x)^2
    xarray<double> p{0.0, 1000.0, -0.5};
    check_close(first_derivative([](auto& t) { return tapegrad::log1p(t); }, p), xarray<double>{1.0, 1.0 / 1001, 2.0});
    check_close(second_derivative([](auto& t) { return tapegrad::log1p(t); }, p),
                xarray<double>{-1.0, -1.0 / (1001.0 * 1001.0), -4.0});
    // log1p(-1) = -inf with derivative inf, as IEEE and PyTorch
    CHECK(tapegrad::log1p(tensor<double>::scalar(-1.0)).item() == -inf);
}

TEST_CASE("rsqrt: values and first and second derivatives") {
    unsigned seed = 31;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        expect_grads([](const args& a) { return rsqrt(a[0]); }, {uniform(s, 0.2, 5, seed++)}, true);
    }
    xarray<double> x{0.25, 1.0, 1000.0};
    check_close(rsqrt(tensor<double>(x)).value(), xarray<double>{2.0, 1.0, 1 / std::sqrt(1000.0)});
    // f' = -x^(-3/2) / 2, f'' = 3/4 x^(-5/2)
    check_close(first_derivative([](auto& t) { return rsqrt(t); }, x), -0.5 * xt::pow(x, -1.5));
    check_close(second_derivative([](auto& t) { return rsqrt(t); }, x), 0.75 * xt::pow(x, -2.5));
    CHECK(rsqrt(tensor<double>::scalar(0.0)).item() == std::numeric_limits<double>::infinity());
}

TEST_CASE("clamp_min and clamp_max: one bound, gradient 1 at the bound as PyTorch") {
    unsigned seed = 41;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        expect_grads([](const args& a) { return clamp_min(a[0], 0.25); }, {uniform(s, -2, 2, seed++, 0.25)}, true);
        expect_grads([](const args& a) { return clamp_max(a[0], -0.5); }, {uniform(s, -2, 2, seed++, -0.5)}, true);
    }
    xarray<double> x{-1000.0, 0.0, 0.25, 1000.0};
    check_close(clamp_min(tensor<double>(x), 0.25).value(), xarray<double>{0.25, 0.25, 0.25, 1000.0});
    check_close(clamp_max(tensor<double>(x), 0.25).value(), xarray<double>{-1000.0, 0.0, 0.25, 0.25});
    check_close(first_derivative([](auto& t) { return clamp_min(t, 0.25); }, x), xarray<double>{0, 0, 1, 1});
    check_close(first_derivative([](auto& t) { return clamp_max(t, 0.25); }, x), xarray<double>{1, 1, 1, 0});
    check_close(second_derivative([](auto& t) { return clamp_min(t * t, 0.25); }, x), xarray<double>{2, 0, 0, 2});
    CHECK_THROWS_WITH_AS(clamp_min(tensor<double>(x), std::nan("")), doctest::Contains("clamp_min"),
                         std::invalid_argument);
}

TEST_CASE("comparisons of two tensors are 0/1 masks that broadcast") {
    tensor<double> a(xarray<double>{{1, 2, 3}, {4, 5, 6}}), b(xarray<double>{2, 2, 7});
    CHECK(eq(a, b).value() == xarray<double>{{0, 1, 0}, {0, 0, 0}});
    CHECK(ne(a, b).value() == xarray<double>{{1, 0, 1}, {1, 1, 1}});
    CHECK(lt(a, b).value() == xarray<double>{{1, 0, 1}, {0, 0, 1}});
    CHECK(le(a, b).value() == xarray<double>{{1, 1, 1}, {0, 0, 1}});
    CHECK(gt(a, b).value() == xarray<double>{{0, 0, 0}, {1, 1, 0}});
    CHECK(ge(a, b).value() == xarray<double>{{0, 1, 0}, {1, 1, 0}});
    // NaN compares unequal to everything, as IEEE
    tensor<double> n(xarray<double>{std::nan(""), 1.0});
    CHECK(eq(n, n).value() == xarray<double>{0, 1});
    CHECK(ne(n, n).value() == xarray<double>{1, 0});
    CHECK_THROWS_WITH_AS(lt(a, tensor<double>(xarray<double>{1, 2})), doctest::Contains("lt: shapes [2, 3] and [2]"),
                         shape_error);
}

TEST_CASE("comparisons inside a differentiated function give zero gradients, first and second order") {
    using fn = tensor<double> (*)(const tensor<double>&, const tensor<double>&);
    for (fn op : {&eq<double>, &ne<double>, &lt<double>, &le<double>, &gt<double>, &ge<double>}) {
        reset_tape<double>();
        tensor<double> a(xarray<double>{{1, 2, 3}, {4, 5, 6}}, true), b(xarray<double>{2, 2, 7}, true);
        auto& tp = tape<double>::current();
        // a mask alone: zeros of each input's shape, no throw
        auto g = tp.gradient(sum(op(a, b)), {a, b});
        CHECK(g[0].value() == xt::zeros<double>({2, 3}));
        CHECK(g[1].value() == xt::zeros<double>({3}));
        // a mask selecting terms: the gradient flows through the product only
        auto g2 = tp.gradient(sum(op(a, b) * a * a), {a, b}, {true});
        xarray<double> mask = op(a, b).value();
        CHECK(g2[0].value() == xarray<double>(2.0 * mask * a.value()));
        CHECK(g2[1].value() == xt::zeros<double>({3}));
        auto h = tp.gradient(sum(g2[0]), {a, b});
        CHECK(h[0].value() == xarray<double>(2.0 * mask));
        CHECK(h[1].value() == xt::zeros<double>({3}));
    }
    // and gradcheck agrees (away from ties the mask is locally constant)
    expect_grads([](const args& x) { return gt(x[0], x[1]) * x[0] + le(x[0], x[1]) * x[1] * x[1]; },
                 {uniform({3, 4}, -1, 1, 51), uniform({4}, -1, 1, 52)}, true);
}
