// silu, mish, logsigmoid, hardtanh, selu: closed forms, float64 gradcheck +
// gradgradcheck, and first and second derivatives at +-1000 and 0 written out.

#include <cmath>

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
const double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;

double sigm(double x) { return 1 / (1 + std::exp(-x)); }

void check_close(const xarray<double>& got, const std::vector<double>& want, double tol = 1e-12) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(std::isfinite(got.data()[i]));
        CHECK(got.data()[i] == doctest::Approx(want[i]).epsilon(tol).scale(1));
    }
}
}  // namespace

TEST_CASE("silu: values and derivatives, stable at +-1000") {
    unsigned seed = 61;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        expect_grads([](const args& a) { return silu(a[0]); }, {uniform(s, -6, 6, seed++)}, true);
    }
    xarray<double> x{-1000.0, -2.0, 0.0, 1.5, 1000.0};
    std::vector<double> v, d1, d2;
    for (double t : x) {
        const double s = sigm(t);
        v.push_back(t * s);
        d1.push_back(s * (1 + t * (1 - s)));
        d2.push_back(s * (1 - s) * (2 + t * (1 - 2 * s)));
    }
    check_close(silu(tensor<double>(x)).value(), v);
    check_close(first_derivative([](auto& t) { return silu(t); }, x), d1);
    check_close(second_derivative([](auto& t) { return silu(t); }, x), d2);
}

TEST_CASE("mish: values and derivatives") {
    unsigned seed = 71;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        expect_grads([](const args& a) { return mish(a[0]); }, {uniform(s, -6, 6, seed++)}, true);
    }
    xarray<double> x{-30.0, -2.0, 0.0, 1.5, 30.0, 1000.0};
    std::vector<double> v, d1;
    for (double t : x) {
        const double sp = std::log1p(std::exp(-std::abs(t))) + std::max(t, 0.0), th = std::tanh(sp);
        v.push_back(t * th);
        d1.push_back(th + t * (1 - th * th) * sigm(t));
    }
    check_close(mish(tensor<double>(x)).value(), v);
    check_close(first_derivative([](auto& t) { return mish(t); }, x), d1);
    // f'' at 0 = 2 sech^2(log 2) sigmoid(0) = 2 * (1 - 0.36) * 0.5 = 0.64
    CHECK(second_derivative([](auto& t) { return mish(t); }, xarray<double>{0.0})(0) == doctest::Approx(0.64));
    // at -1000 the value and both derivatives are 0, not NaN (e^1000 overflows inside a naive softplus)
    CHECK(mish(tensor<double>::scalar(-1000.0)).item() == 0.0);
    CHECK(first_derivative([](auto& t) { return mish(t); }, xarray<double>{-1000.0})(0) == 0.0);
    CHECK(second_derivative([](auto& t) { return mish(t); }, xarray<double>{-1000.0})(0) == 0.0);
    // at +1000 mish is x: slope 1, curvature 0
    CHECK(second_derivative([](auto& t) { return mish(t); }, xarray<double>{1000.0})(0) == 0.0);
}

TEST_CASE("logsigmoid: stable values and derivatives at +-1000") {
    unsigned seed = 81;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        expect_grads([](const args& a) { return logsigmoid(a[0]); }, {uniform(s, -8, 8, seed++)}, true);
    }
    xarray<double> x{-1000.0, -2.0, 0.0, 1.5, 1000.0};
    // log s(-1000) = -1000 (not -inf), f' = 1 - s(x), f'' = -s(x) (1 - s(x))
    check_close(logsigmoid(tensor<double>(x)).value(),
                {-1000.0, -std::log1p(std::exp(2.0)), -std::log(2.0), -std::log1p(std::exp(-1.5)), 0.0});
    check_close(first_derivative([](auto& t) { return logsigmoid(t); }, x),
                {1.0, 1 - sigm(-2), 0.5, 1 - sigm(1.5), 0.0});
    check_close(second_derivative([](auto& t) { return logsigmoid(t); }, x),
                {0.0, -sigm(-2) * (1 - sigm(-2)), -0.25, -sigm(1.5) * (1 - sigm(1.5)), 0.0});
}

TEST_CASE("hardtanh: clamp with zero gradient at and outside the bounds") {
    unsigned seed = 91;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        xarray<double> x = uniform(s, -2, 2, seed++, -1.0);
        x = xt::where(xt::abs(x - 0.5) < 0.05, x + 0.1, x);  // away from the upper bound 0.5 too
        expect_grads([](const args& a) { return hardtanh(a[0], -1.0, 0.5); }, {x}, true);
    }
    xarray<double> x{-1000.0, -1.0, 0.0, 0.5, 1.0, 1000.0};
    check_close(hardtanh(tensor<double>(x)).value(), {-1.0, -1.0, 0.0, 0.5, 1.0, 1.0});
    check_close(first_derivative([](auto& t) { return hardtanh(t); }, x), {0, 0, 1, 1, 0, 0});
    check_close(second_derivative([](auto& t) { return hardtanh(t * t); }, x), {0, 0, 2, 2, 0, 0});
    CHECK_THROWS_WITH_AS(hardtanh(tensor<double>(x), 1.0, 1.0), doctest::Contains("hardtanh: lower bound"),
                         std::invalid_argument);
}

TEST_CASE("selu: PyTorch's constants, derivatives at +-1000 and 0") {
    unsigned seed = 101;
    for (const auto& s : shapes) {
        INFO(shape_str(s));
        expect_grads([](const args& a) { return selu(a[0]); }, {uniform(s, -3, 3, seed++, 0.0)}, true);
    }
    xarray<double> x{-1000.0, -1.0, 0.0, 2.0, 1000.0};
    check_close(selu(tensor<double>(x)).value(),
                {-scale * alpha, scale * alpha * std::expm1(-1.0), 0.0, 2 * scale, 1000 * scale});
    // f' = scale alpha e^x for x <= 0 (0 at -1000; PyTorch also takes this side at 0), scale above
    check_close(first_derivative([](auto& t) { return selu(t); }, x),
                {0.0, scale * alpha * std::exp(-1.0), scale * alpha, scale, scale});
    check_close(second_derivative([](auto& t) { return selu(t); }, x),
                {0.0, scale * alpha * std::exp(-1.0), scale * alpha, 0.0, 0.0});
}
