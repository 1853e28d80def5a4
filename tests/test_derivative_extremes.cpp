// First and second derivatives at extreme inputs (±1000, ±30, exact zeros), where a
// rule could multiply a 0 by an inf or NaN factor although the true derivative is
// finite. Expected numbers are PyTorch 1.13's in float64 (/usr/bin/python3 with
// torch.autograd.grad(..., create_graph=True)), written out here.

#include <cmath>
#include <functional>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using xt::xarray;
using fn = std::function<tensor<double>(const tensor<double>&)>;

namespace {
struct d012 { double y, d1, d2; };

/// y(x0), dy/dx and d2y/dx2 of a scalar function through the recorded reverse pass.
d012 derivatives(const fn& f, double x0) {
    reset_tape<double>();
    auto& tp = tape<double>::current();
    tensor<double> x(xarray<double>(x0), true);
    tensor<double> y = f(x);
    tensor<double> g = tp.gradient(y, {x}, {true})[0];
    // A first derivative that is a constant (x^0) has a zero second derivative.
    const double h = g.requires_grad() ? tp.gradient(g, {x})[0].item() : 0.0;
    return {y.item(), g.item(), h};
}

/// got == want, exactly for 0 and infinities, else to 1e-12 relative.
void expect_near(double got, double want, const char* what) {
    INFO(std::string(what) << ": got " << got << ", want " << want);
    CHECK_FALSE(std::isnan(got));
    if (want == 0 || std::isinf(want)) CHECK(got == want);
    else CHECK(got == doctest::Approx(want).epsilon(1e-12));
}

void expect(const fn& f, double x0, d012 want) {
    const d012 got = derivatives(f, x0);
    INFO("x = " << x0);
    expect_near(got.y, want.y, "value");
    expect_near(got.d1, want.d1, "first derivative");
    expect_near(got.d2, want.d2, "second derivative");
}
}  // namespace

TEST_CASE("softplus: second derivative is finite below -709 (PyTorch's values)") {
    fn f = [](const tensor<double>& x) { return softplus(x); };
    expect(f, -1000.0, {0.0, 0.0, 0.0});
    expect(f, -800.0, {0.0, 0.0, 0.0});
    expect(f, -709.0, {1.216780750623423e-308, 1.216780750623423e-308, 1.216780750623423e-308});
    expect(f, -30.0, {9.357622968839737e-14, 9.3576229688393e-14, 9.357622968838423e-14});
    expect(f, 0.0, {0.6931471805599453, 0.5, 0.25});
    // PyTorch's softplus is linear above its threshold 20 and gives (30, 1, 0) at 30; ours is the exact
    // function: d1 = sigmoid(30) and d2 = sigmoid'(30), PyTorch's sigmoid values at 30.
    expect(f, 30.0, {30.0, 0.9999999999999065, 9.348077867342945e-14});
    expect(f, 1000.0, {1000.0, 1.0, 0.0});
    // At -710 the true d2 is sigmoid(-710)(1 - sigmoid(-710)) = 4.476e-309 (a denormal); PyTorch
    // rounds it to 0. Either way it is finite and below 1e-300.
    const d012 d = derivatives(f, -710.0);
    CHECK(std::isfinite(d.d2));
    CHECK(std::abs(d.d2) < 1e-300);
}

TEST_CASE("bce_with_logits: second derivative is finite at logits of ±800 and ±1000 (PyTorch's values)") {
    for (double t : {0.0, 0.3, 1.0}) {
        fn f = [t](const tensor<double>& z) {
            return bce_with_logits(reshape(z, {1}), tensor<double>(xarray<double>{t}));
        };
        INFO("target " << t);
        // PyTorch: (-1000, 0) -> (0, 0, 0); (-1000, 0.3) -> (300, -0.3, 0); (-1000, 1) -> (1000, -1, 0)
        expect(f, -1000.0, {1000.0 * t, -t, 0.0});
        expect(f, -800.0, {800.0 * t, -t, 0.0});
        // PyTorch: (1000, 0) -> (1000, 1, 0); (1000, 0.3) -> (700, 0.7, 0); (1000, 1) -> (0, 0, 0)
        expect(f, 1000.0, {1000.0 * (1 - t), 1 - t, 0.0});
    }
}

TEST_CASE("pow with a scalar exponent: zero exponent and x^1 at x = 0 (PyTorch's values)") {
    // PyTorch: x**0 at 0 -> (1, 0, const); x**1 -> (0, 1, 0); x**2 -> (0, 0, 2)
    expect([](const tensor<double>& x) { return pow(x, 0.0); }, 0.0, {1.0, 0.0, 0.0});
    expect([](const tensor<double>& x) { return pow(x, 1.0); }, 0.0, {0.0, 1.0, 0.0});
    expect([](const tensor<double>& x) { return pow(x, 2.0); }, 0.0, {0.0, 0.0, 2.0});
    // x^0 is 1 for every x, inf included, and its gradient is 0 (not 0 * inf^-1 * ...).
    expect([](const tensor<double>& x) { return pow(x, 0.0); }, 1000.0, {1.0, 0.0, 0.0});
    expect([](const tensor<double>& x) { return pow(x, 0.0); }, -3.0, {1.0, 0.0, 0.0});
}

namespace {
/// Value, both first derivatives and the 2x2 Hessian of a^b at (a0, b0).
struct pow_derivs { double y, ga, gb, haa, hab, hba, hbb; };
pow_derivs pow_at(double a0, double b0) {
    reset_tape<double>();
    auto& tp = tape<double>::current();
    tensor<double> a(xarray<double>(a0), true), b(xarray<double>(b0), true);
    tensor<double> y = pow(a, b);
    auto g = tp.gradient(y, {a, b}, {true});
    auto ha = tp.gradient(g[0], {a, b}, {true});
    auto hb = tp.gradient(g[1], {a, b}, {true});
    return {y.item(), g[0].item(), g[1].item(), ha[0].item(), ha[1].item(), hb[0].item(), hb[1].item()};
}
}  // namespace

TEST_CASE("pow(a, b) with tensors: zero base and zero exponent (PyTorch's values where it has them)") {
    // PyTorch: a=0, b=0 -> y 1, dy/da 0, dy/db 0 (its second derivatives here are NaN).
    pow_derivs p = pow_at(0.0, 0.0);
    expect_near(p.y, 1.0, "0^0");
    expect_near(p.ga, 0.0, "d/da at (0, 0)");
    expect_near(p.gb, 0.0, "d/db at (0, 0)");
    // Ours are finite: every factor with a 0 base or exponent is masked, before and after recording.
    for (double h : {p.haa, p.hab, p.hba, p.hbb}) CHECK(std::isfinite(h));
    // PyTorch: a=0, b=1 -> (0, 1, 0), d2/da2 0, d2/dadb 1.
    p = pow_at(0.0, 1.0);
    expect_near(p.y, 0.0, "0^1");
    expect_near(p.ga, 1.0, "d/da at (0, 1)");
    expect_near(p.gb, 0.0, "d/db at (0, 1)");
    expect_near(p.haa, 0.0, "d2/da2 at (0, 1)");
    expect_near(p.hab, 1.0, "d2/dadb at (0, 1)");
    // PyTorch: a=0, b=2 -> (0, 0, 0), d2/da2 2, d2/dadb 0. d2/db2 = 0^2 log^2 0 -> 0 (PyTorch NaN).
    p = pow_at(0.0, 2.0);
    expect_near(p.ga, 0.0, "d/da at (0, 2)");
    expect_near(p.gb, 0.0, "d/db at (0, 2)");
    expect_near(p.haa, 2.0, "d2/da2 at (0, 2)");
    expect_near(p.hab, 0.0, "d2/dadb at (0, 2)");
    expect_near(p.hbb, 0.0, "d2/db2 at (0, 2)");
    // PyTorch: a=2, b=0 -> (1, 0, log 2), d2/da2 0, d2/dadb 0 (-0), d2/dbda 0.5, d2/db2 log(2)^2.
    p = pow_at(2.0, 0.0);
    expect_near(p.y, 1.0, "2^0");
    expect_near(p.ga, 0.0, "d/da at (2, 0)");
    expect_near(p.gb, 0.6931471805599453, "d/db at (2, 0)");
    expect_near(p.haa, 0.0, "d2/da2 at (2, 0)");
    expect_near(p.hba, 0.5, "d2/dbda at (2, 0)");
    expect_near(p.hbb, 0.4804530139182014, "d2/db2 at (2, 0)");
    // Away from the masked points the rule is unchanged.
    auto r = gradcheck([](const std::vector<tensor<double>>& v) { return pow(v[0], v[1]); },
                       {xarray<double>{0.5, 1.5, 2.0}, xarray<double>{-1.0, 0.5, 3.0}});
    CHECK(r.passed());
}

TEST_CASE("audit: activations and elementwise ops at ±30 and ±1000, first and second order (PyTorch's values)") {
    using tapegrad::tanh;
    struct row { const char* name; fn f; double x; d012 want; };
    const double inf = INFINITY;
    const row rows[] = {
        {"sigmoid", [](auto& x) { return sigmoid(x); }, -1000, {0, 0, 0}},
        {"sigmoid", [](auto& x) { return sigmoid(x); }, -30, {9.357622968839299e-14, 9.357622968838423e-14, 9.357622968836671e-14}},
        {"sigmoid", [](auto& x) { return sigmoid(x); }, 30, {0.9999999999999065, 9.348077867342945e-14, -9.348077867341197e-14}},
        {"sigmoid", [](auto& x) { return sigmoid(x); }, 1000, {1, 0, 0}},
        {"tanh", [](auto& x) { return tanh(x); }, -1000, {-1, 0, 0}},
        {"tanh", [](auto& x) { return tanh(x); }, 1000, {1, 0, 0}},
        {"gelu", [](auto& x) { return gelu(x); }, -1000, {0, 0, 0}},
        {"gelu", [](auto& x) { return gelu(x); }, 30, {30, 1, -1.3233342291209357e-193}},
        {"gelu", [](auto& x) { return gelu(x); }, 1000, {1000, 1, 0}},
        {"elu", [](auto& x) { return elu(x); }, -1000, {-1, 0, 0}},
        {"elu", [](auto& x) { return elu(x); }, -30, {-0.9999999999999064, 9.357622968840175e-14, 9.357622968840175e-14}},
        {"elu", [](auto& x) { return elu(x); }, 1000, {1000, 1, 0}},
        {"erf", [](auto& x) { return erf(x); }, -1000, {-1, 0, 0}},
        {"erf", [](auto& x) { return erf(x); }, 1000, {1, 0, 0}},
        {"exp", [](auto& x) { return exp(x); }, -1000, {0, 0, 0}},
        {"exp", [](auto& x) { return exp(x); }, 1000, {inf, inf, inf}},  // truly infinite
        {"log", [](auto& x) { return log(x); }, 1000, {6.907755278982137, 0.001, -1e-06}},
        {"sqrt", [](auto& x) { return sqrt(x); }, 1000, {31.622776601683793, 0.015811388300841896, -7.905694150420949e-06}},
        {"rdiv", [](auto& x) { return 2.0 / x; }, -1000, {-0.002, -2e-06, -4e-09}},
        {"rdiv", [](auto& x) { return 2.0 / x; }, 1000, {0.002, -2e-06, 4e-09}},
        {"relu", [](auto& x) { return relu(x); }, -1000, {0, 0, 0}},
        {"relu", [](auto& x) { return relu(x); }, 1000, {1000, 1, 0}},
        {"abs", [](auto& x) { return abs(x); }, -1000, {1000, -1, 0}},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        expect(r.f, r.x, r.want);
    }
}

TEST_CASE("audit: softmax, log_softmax, logsumexp and cross_entropy with logits of ±1000 (PyTorch's values)") {
    const xarray<double> x0{{1000.0, -1000.0, 0.0}, {-1000.0, 1000.0, 999.0}};
    const xarray<double> v{{1.0, 2.0, 3.0}, {-1.0, 0.5, 2.0}};
    struct row { const char* name; std::function<tensor<double>(const tensor<double>&)> loss; xarray<double> g, hv; };
    const tensor<double> tv(v);
    const row rows[] = {
        {"cross_entropy", [](auto& x) { return cross_entropy(x, std::vector<std::size_t>{1, 2}); },
         {{0.5, -0.5, 0.0}, {0.0, 0.36552928931500245, -0.36552928931500245}},
         {{0.0, 0.0, 0.0}, {0.0, -0.14745894993111136, 0.1474589499311114}}},
        {"log_softmax", [&](auto& x) { return sum(log_softmax(x, 1) * tv); },
         {{-5.0, 2.0, 3.0}, {-1.0, -0.5965878679450074, 1.5965878679450074}},
         {{0.0, 0.0, 0.0}, {0.0, 0.44237684979333425, -0.44237684979333414}}},
        {"softmax", [&](auto& x) { return sum(softmax(x, 1) * tv); },
         {{0.0, 0.0, 0.0}, {0.0, -0.2949178998622229, 0.2949178998622228}},
         {{0.0, 0.0, 0.0}, {0.0, -0.2044299322641338, 0.2044299322641339}}},
        {"logsumexp", [](auto& x) { return sum(logsumexp(x, 1)); },
         {{1.0, 0.0, 0.0}, {0.0, 0.7310585786300168, 0.2689414213699995}},
         {{0.0, 0.0, 0.0}, {0.0, -0.29491789986223826, 0.2949178998622236}}},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        reset_tape<double>();
        auto& tp = tape<double>::current();
        tensor<double> x(x0, true);
        tensor<double> g = tp.gradient(r.loss(x), {x}, {true})[0];
        tensor<double> hv = tp.gradient(sum(g * tv), {x})[0];
        for (std::size_t k = 0; k < x0.size(); ++k) {
            INFO("element " << k);
            CHECK(g.value().data()[k] == doctest::Approx(r.g.data()[k]).epsilon(1e-12));
            CHECK(hv.value().data()[k] == doctest::Approx(r.hv.data()[k]).epsilon(1e-12));
        }
    }
}

TEST_CASE("sign, greater and less are differentiable with a zero gradient (as PyTorch)") {
    reset_tape<double>();
    auto& tp = tape<double>::current();
    tensor<double> x(xarray<double>{-2.0, 0.0, 3.0}, true);
    gradient_options strict;
    strict.allow_unused = false;  // x is reached: zeros come from the rule, not from "unused"
    const tensor<double> outs[] = {sum(sign(x)), sum(greater(x, 0.5)), sum(less(x, 0.5)), sum(x > 0.5),
                                   sum(x < 0.5)};
    // PyTorch: torch.autograd.grad(torch.sign(x).sum(), x) -> [0., 0., 0.]
    for (const auto& y : outs) {
        auto g = tp.gradient(y, {x}, strict)[0];
        CHECK(g.shape() == shape_t{3});
        CHECK(xt::all(xt::equal(g.value(), 0.0)));
    }
    CHECK(xt::all(xt::equal(greater(x, 0.5).value(), xarray<double>{0, 0, 1})));  // compares with s, not 0
    CHECK(xt::all(xt::equal(less(x, -1.0).value(), xarray<double>{1, 0, 0})));
    CHECK(xt::all(xt::equal(sign(x).value(), xarray<double>{-1, 0, 1})));
    // backward() leaves zeros in .grad, and mixing with a real path adds nothing.
    x.zero_grad();
    sum(sign(x) + x * 2.0).backward();
    CHECK(xt::all(xt::equal(x.grad(), xarray<double>{2, 2, 2})));
    // Second order: d/dx of the zero gradient is zero too.
    tensor<double> g = tp.gradient(sum(sign(x) * x), {x}, {true})[0];
    CHECK(xt::all(xt::equal(g.value(), sign(x).value())));
    auto h = tp.gradient(sum(g), {x})[0];
    CHECK(xt::all(xt::equal(h.value(), 0.0)));
    testing::expect_grads([](const std::vector<tensor<double>>& a) { return sign(a[0]) * a[0] * a[0]; },
                          {xarray<double>{-1.5, 0.7, 2.0}}, true);
}
