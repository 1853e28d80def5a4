// prod, var/std_dev, norm, cumsum, logsumexp over several axes, argmax/argmin:
// closed forms, gradcheck + gradgradcheck over axes (negative ones included),
// zeros in prod, ties in the inf-norm, the 2-norm at 0, and axis errors.

#include <cmath>
#include <cstring>
#include <limits>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;
using axes = std::vector<int>;

namespace {
const std::vector<axes> axis_sets = {{}, {0}, {-1}, {0, 2}, {1, -1}};
const double inf = std::numeric_limits<double>::infinity();

xarray<double> grad_of(const std::function<tensor<double>(const tensor<double>&)>& f, const xarray<double>& x0) {
    reset_tape<double>();
    tensor<double> x(x0, true);
    return tape<double>::current().gradient(f(x), {x})[0].value();
}
}  // namespace

TEST_CASE("prod: values, gradients with zeros, gradgradcheck over axes") {
    xarray<double> x = uniform({2, 3, 5}, 0.5, 1.5, 201);
    for (const auto& a : axis_sets) {
        INFO("axes size ", a.size());
        expect_grads([a](const args& t) { return prod(t[0], a, false); }, {x}, true);
        expect_grads([a](const args& t) { return prod(t[0], a, true); }, {uniform({3, 1, 4}, -1.5, 1.5, 202)}, true);
    }
    CHECK(prod(tensor<double>(xarray<double>{{1, 2, 3}, {4, 5, 6}}), {1}).value() == xarray<double>{6, 120});
    CHECK(prod(tensor<double>(xarray<double>{{1, 2, 3}, {4, 5, 6}})).item() == 720);
    // one zero: only the zero's slope is nonzero; two zeros: every slope is 0 (no 0/0)
    CHECK(grad_of([](auto& t) { return prod(t); }, xarray<double>{2, 0, 3}) == xarray<double>{0, 6, 0});
    CHECK(grad_of([](auto& t) { return prod(t); }, xarray<double>{0, 4, 0}) == xarray<double>{0, 0, 0});
    expect_grads([](const args& t) { return prod(t[0]); }, {xarray<double>{0.0, 1.5, -2.0, 0.7, 1.1}}, true);
    // empty product is 1
    CHECK(prod(tensor<double>(xt::zeros<double>({2, 0})), {1}).value() == xarray<double>{1, 1});
    CHECK_THROWS_WITH_AS(prod(tensor<double>(x), {3}), doctest::Contains("prod: axis 3 is out of range for a tensor of rank 3"),
                         shape_error);
}

TEST_CASE("var and std_dev: correction, axes, gradients") {
    xarray<double> x{{1, 2, 3, 4}, {2, 4, 6, 9}};
    // row 0: mean 2.5, squares sum 5; row 1: mean 5.25, sum 26.75
    CHECK(xt::allclose(var(tensor<double>(x), {1}).value(), xarray<double>{5.0 / 3, 26.75 / 3}, 1e-15, 0));
    CHECK(var(tensor<double>(x), {1}, 0).value() == xarray<double>{5.0 / 4, 26.75 / 4});
    xarray<double> sd = std_dev(tensor<double>(x), {-1}, 0, true).value();
    CHECK(sd.shape() == xarray<double>::shape_type{2, 1});
    CHECK(sd(0, 0) == std::sqrt(1.25));
    CHECK(sd(1, 0) == std::sqrt(26.75 / 4));
    CHECK(var(tensor<double>(xarray<double>{3.0})).item() != var(tensor<double>(xarray<double>{3.0})).item());  // 0/0 = NaN
    xarray<double> r = uniform({3, 4, 2}, -2, 2, 211);
    for (const auto& a : axis_sets)
        for (int corr : {0, 1}) {
            INFO("correction ", corr);
            expect_grads([a, corr](const args& t) { return var(t[0], a, corr); }, {r}, true);
            expect_grads([a, corr](const args& t) { return std_dev(t[0], a, corr, true); }, {r}, true);
        }
    CHECK_THROWS_WITH_AS(var(tensor<double>(x), {1}, -1), doctest::Contains("var: correction"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(var(tensor<double>(x), {2}), doctest::Contains("var: axis 2 is out of range"), shape_error);
}

TEST_CASE("norm: p = 1, 2, inf over axes; the 2-norm's slope is 0 at 0; inf-norm ties share") {
    xarray<double> x{{3, -4, 0}, {1, -1, 1}};
    CHECK(norm(tensor<double>(x), 2, {1}).value() == xarray<double>{5, std::sqrt(3.0)});
    CHECK(norm(tensor<double>(x), 1, {-1}).value() == xarray<double>{7, 3});
    CHECK(norm(tensor<double>(x), inf, {1}).value() == xarray<double>{4, 1});
    CHECK(norm(tensor<double>(x)).item() == doctest::Approx(std::sqrt(28.0)));
    CHECK(grad_of([](auto& t) { return norm(t); }, xt::zeros<double>({3})) == xarray<double>{0, 0, 0});
    xarray<double> g2 = grad_of([](auto& t) { return sum(norm(t, 2, {1})); }, xarray<double>{{0, 0}, {3, 4}});
    CHECK(g2(0, 0) == 0.0);
    CHECK(g2(0, 1) == 0.0);
    CHECK(g2(1, 0) == doctest::Approx(0.6).epsilon(1e-15));
    CHECK(g2(1, 1) == doctest::Approx(0.8).epsilon(1e-15));
    // ties in the inf-norm: |1| = |-1| = |1| share the slope, each with its sign
    xarray<double> g = grad_of([](auto& t) { return sum(norm(t, inf, {1})); }, x);
    CHECK(g == xarray<double>{{0, -1, 0}, {1.0 / 3, -1.0 / 3, 1.0 / 3}});
    xarray<double> r = uniform({3, 4, 2}, -2, 2, 221, 0.0);
    for (const auto& a : axis_sets)
        for (double p : {1.0, 2.0, inf}) {
            INFO("p ", p);
            expect_grads([a, p](const args& t) { return norm(t[0], p, a); }, {r}, true);
        }
    CHECK_THROWS_WITH_AS(norm(tensor<double>(x), 3), doctest::Contains("norm: p = 3"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(norm(tensor<double>(x), 2, {-3}), doctest::Contains("norm: axis -3 is out of range for a tensor of rank 2"),
                         shape_error);
}

TEST_CASE("cumsum along any axis, twice differentiable") {
    xarray<double> x{{1, 2, 3}, {4, 5, 6}};
    CHECK(cumsum(tensor<double>(x), 1).value() == xarray<double>{{1, 3, 6}, {4, 9, 15}});
    CHECK(cumsum(tensor<double>(x), -2).value() == xarray<double>{{1, 2, 3}, {5, 7, 9}});
    // d sum(cumsum(x)) / dx_j = number of k >= j
    CHECK(grad_of([](auto& t) { return sum(cumsum(t, 1)); }, x) == xarray<double>{{3, 2, 1}, {3, 2, 1}});
    xarray<double> r = uniform({3, 4, 5}, -2, 2, 231);
    for (int a : {0, 1, 2, -1}) expect_grads([a](const args& t) { return cumsum(t[0], a) * t[0]; }, {r}, true);
    CHECK_THROWS_WITH_AS(cumsum(tensor<double>(x), 2), doctest::Contains("cumsum: axis 2 is out of range for a tensor of rank 2"),
                         shape_error);
}

TEST_CASE("cumsum along contiguous rows, four at a time: the in-order sums, bit for bit") {
    // 7 rows of 13: one group of four interleaved rows, then three alone; forward, and the
    // backward (reverse running sums) accumulated with another term, from both ends
    const xarray<float> x = xt::cast<float>(uniform({7, 13}, -1000, 1000, 232));
    const xarray<float> g = xt::cast<float>(uniform({7, 13}, -1, 1, 233)), w = xt::cast<float>(uniform({7, 13}, -1, 1, 234));
    for (bool reverse : {false, true}) {
        CAPTURE(reverse);
        xarray<float> want = xt::zeros<float>({7, 13}), dwant = want;
        for (std::size_t r = 0; r < 7; ++r) {
            float a = 0, d = 0;
            for (std::size_t k = 0; k < 13; ++k) {
                const std::size_t j = reverse ? 12 - k : k, i = reverse ? k : 12 - k;
                want(r, j) = (a += x(r, j));
                dwant(r, i) = (d += g(r, i));  // the gradient runs the other way
            }
        }
        dwant += w;
        tensor<float> t(x, true);
        tensor<float> y = reverse ? flip(cumsum(flip(t, {1}), 1), {1}) : cumsum(t, 1);
        CHECK(std::memcmp(y.value().data(), want.data(), x.size() * sizeof(float)) == 0);
        sum(y * tensor<float>(g) + t * tensor<float>(w)).backward();
        CHECK(std::memcmp(t.grad().data(), dwant.data(), x.size() * sizeof(float)) == 0);
        reset_tape<float>();
    }
}

TEST_CASE("logsumexp over several axes: stable at +-1000, gradient softmax") {
    xarray<double> x{{{1000, 1000}, {-1000, 0}}, {{1, 2}, {3, 4}}};
    auto y = logsumexp(tensor<double>(x), {1, 2});
    CHECK(y.value()(0) == doctest::Approx(1000 + std::log(2.0)));
    CHECK(y.value()(1) == doctest::Approx(std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(4.0))));
    CHECK(logsumexp(tensor<double>(x), {0, -1}, true).shape() == shape_t{1, 2, 1});
    xarray<double> g = grad_of([](auto& t) { return sum(logsumexp(t, {1, 2})); }, x);
    CHECK(g(0, 0, 0) == doctest::Approx(0.5));
    CHECK(g(0, 1, 0) == 0.0);
    xarray<double> r = uniform({3, 4, 2}, -3, 3, 241);
    for (const auto& a : axis_sets) expect_grads([a](const args& t) { return logsumexp(t[0], a, true); }, {r}, true);
    CHECK_THROWS_WITH_AS(logsumexp(tensor<double>(x), {0, 0}), doctest::Contains("logsumexp: axis 0 is listed twice"),
                         shape_error);
}

TEST_CASE("argmax and argmin: first on ties, constants") {
    xarray<double> x{{1, 5, 5}, {7, -2, 7}};
    CHECK(argmax(tensor<double>(x), 1).value() == xarray<double>{1, 0});
    CHECK(argmin(tensor<double>(x), -1).value() == xarray<double>{0, 1});
    CHECK(argmax(tensor<double>(x), 0, true).value() == xarray<double>{{1, 0, 1}});
    CHECK(argmax(tensor<double>(x)).item() == 3);
    CHECK(argmin(tensor<double>(x)).item() == 4);
    CHECK(argmax(tensor<double>(xarray<double>{1, std::nan(""), 3})).item() == 1);  // NaN is the largest, as PyTorch
    tensor<double> w(x, true);
    CHECK(argmax(w, 1).is_leaf());
    CHECK_FALSE(argmax(w, 1).requires_grad());
    CHECK_THROWS_WITH_AS(argmax(tensor<double>(x), 2), doctest::Contains("argmax: axis 2 is out of range"), shape_error);
    CHECK_THROWS_WITH_AS(argmin(tensor<double>(xt::zeros<double>({0}))), doctest::Contains("argmin: the tensor"), shape_error);
}
