// Second derivatives: closed forms, a Hessian-vector product against a central
// difference of the gradient, and gradgradcheck of a small network.

#include <cmath>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;

namespace {
/// d2/dx2 of sum(f(x)), elementwise (f acts elementwise, so the Hessian is diagonal).
xarray<double> second(const std::function<tensor<double>(const tensor<double>&)>& f, const xarray<double>& x0) {
    reset_tape<double>();
    tensor<double> x(x0, true);
    auto& tp = tape<double>::current();
    auto g = tp.gradient(sum(f(x)), {x}, {true})[0];
    auto h = tp.gradient(sum(g), {x})[0];
    return h.value();
}
}  // namespace

TEST_CASE("second derivatives of elementwise ops match closed forms") {
    xarray<double> x{-1.3, -0.4, 0.2, 0.9, 2.1};
    xarray<double> pos{0.3, 0.8, 1.5, 2.2, 3.0};
    auto check = [](const xarray<double>& got, auto closed) {
        for (std::size_t i = 0; i < got.size(); ++i) CHECK(got(i) == doctest::Approx(closed(i)).epsilon(1e-12));
    };
    check(second([](auto& t) { return tapegrad::tanh(t); }, x), [&](std::size_t i) {
        double t = std::tanh(x(i));
        return -2 * t * (1 - t * t);
    });
    check(second([](auto& t) { return sigmoid(t); }, x), [&](std::size_t i) {
        double s = 1 / (1 + std::exp(-x(i)));
        return s * (1 - s) * (1 - 2 * s);
    });
    check(second([](auto& t) { return tapegrad::exp(t); }, x), [&](std::size_t i) { return std::exp(x(i)); });
    check(second([](auto& t) { return tapegrad::log(t); }, pos), [&](std::size_t i) { return -1 / (pos(i) * pos(i)); });
    check(second([](auto& t) { return tapegrad::pow(t, 3.5); }, pos),
          [&](std::size_t i) { return 3.5 * 2.5 * std::pow(pos(i), 1.5); });
    check(second([](auto& t) { return t * t * t; }, x), [&](std::size_t i) { return 6 * x(i); });
    check(second([](auto& t) { return 1.0 / t; }, pos), [&](std::size_t i) { return 2 / std::pow(pos(i), 3); });
}

TEST_CASE("mixed second derivatives of mul, div and pow") {
    xarray<double> a0{0.5, 1.5}, b0{2.0, 0.7};
    auto& tp = tape<double>::current();
    tensor<double> a(a0, true), b(b0, true);
    // d/db (d/da sum(a*b)) = 1
    auto ga = tp.gradient(sum(a * b), {a}, {true})[0];
    CHECK(tp.gradient(sum(ga), {b})[0].value() == xarray<double>{1, 1});
    // y = a / b: d2y/db2 = 2a/b^3, d2y/dadb = -1/b^2
    auto gb = tp.gradient(sum(a / b), {b}, {true})[0];
    auto h = tp.gradient(sum(gb), {a, b});
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(h[0].value()(i) == doctest::Approx(-1 / (b0(i) * b0(i))));
        CHECK(h[1].value()(i) == doctest::Approx(2 * a0(i) / std::pow(b0(i), 3)));
    }
    // y = a^b: d2y/db2 = a^b log(a)^2
    auto gp = tp.gradient(sum(tapegrad::pow(a, b)), {b}, {true})[0];
    auto hp = tp.gradient(sum(gp), {b})[0];
    for (std::size_t i = 0; i < 2; ++i)
        CHECK(hp.value()(i) == doctest::Approx(std::pow(a0(i), b0(i)) * std::pow(std::log(a0(i)), 2)));
    reset_tape<double>();
}

TEST_CASE("second derivative through matmul matches its closed form") {
    // L = sum((A B)^2): dL/dA = 2 A B B^T, and d/dA <dL/dA, V> = 2 V B B^T
    xarray<double> a0 = uniform({3, 4}, -1, 1, 1), b0 = uniform({4, 2}, -1, 1, 2), v0 = uniform({3, 4}, -1, 1, 3);
    auto& tp = tape<double>::current();
    tensor<double> a(a0, true), b(b0), v(v0);
    auto y = matmul(a, b);
    auto g = tp.gradient(sum(y * y), {a}, {true})[0];
    auto hv = tp.gradient(sum(g * v), {a})[0].value();
    tensor<double> bb = matmul(b, b, false, true);
    auto expected = (matmul(v, bb) * 2.0).value();
    CHECK(xt::allclose(hv, expected, 1e-12, 1e-12));
    reset_tape<double>();
}

TEST_CASE("Hessian-vector product of a small MLP matches a central difference of its gradient") {
    const xarray<double> x = uniform({5, 3}, -1, 1, 10);
    const std::vector<std::size_t> labels{0, 2, 1, 1, 0};
    const std::vector<xarray<double>> p0 = {uniform({4, 3}, -1, 1, 11), uniform({4}, -1, 1, 12),
                                            uniform({3, 4}, -1, 1, 13), uniform({3}, -1, 1, 14)};
    std::vector<xarray<double>> dir;
    for (unsigned i = 0; i < 4; ++i) dir.push_back(uniform(shape_t(p0[i].shape().begin(), p0[i].shape().end()), -1, 1, 20 + i));
    auto loss = [&](const args& p) {
        tensor<double> h = tapegrad::tanh(matmul(tensor<double>(x), p[0], false, true) + p[1]);
        return cross_entropy(matmul(h, p[2], false, true) + p[3], labels);
    };
    auto gradient_at = [&](double step, bool create, std::vector<tensor<double>>& params) {
        params.clear();
        for (unsigned i = 0; i < 4; ++i) params.emplace_back(xarray<double>(p0[i] + step * dir[i]), true);
        return tape<double>::current().gradient(loss(params), params, {create});
    };
    std::vector<tensor<double>> params;
    auto g = gradient_at(0, true, params);
    tensor<double> gv = sum(g[0] * tensor<double>(dir[0]));
    for (unsigned i = 1; i < 4; ++i) gv = gv + sum(g[i] * tensor<double>(dir[i]));
    auto hv = tape<double>::current().gradient(gv, params);
    const double h = 1e-5;
    std::vector<tensor<double>> tmp;
    auto gp = gradient_at(h, false, tmp);
    auto gm = gradient_at(-h, false, tmp);
    for (unsigned i = 0; i < 4; ++i) {
        xarray<double> numeric = (gp[i].value() - gm[i].value()) / (2 * h);
        CHECK(xt::allclose(hv[i].value(), numeric, 1e-6, 1e-8));
    }
    reset_tape<double>();
}

TEST_CASE("gradgradcheck of the article's network") {
    auto f = [](const args& p) {
        tensor<double> h = tapegrad::tanh(matmul(p[0], p[1], false, true) + p[2]);
        return softmax(matmul(h, p[3], false, true) + p[4], 1);
    };
    std::vector<xarray<double>> in = {uniform({2, 3}, -1, 1, 1), uniform({4, 3}, -1, 1, 2), uniform({4}, -1, 1, 3),
                                      uniform({3, 4}, -1, 1, 4), uniform({3}, -1, 1, 5)};
    auto r = gradgradcheck(f, in);
    INFO(r.table());
    CHECK(r.passed());
}
