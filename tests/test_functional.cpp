// Functional transforms (autograd/functional.hpp), float64: closed-form Jacobians
// and Hessians, a network's Hessian against central differences of its gradient,
// the three Jacobian modes against each other, jvp/vjp/hvp against the matrices,
// unused inputs, extremes, errors, and that calls leave the tape as they found it.

#include <cmath>
#include <string>

#include <doctest/doctest.h>

#include "autograd/functional.hpp"
#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;
namespace fx = tapegrad::functional;

namespace {
/// Largest |a - b| (infinite for a NaN), and a failure when the shapes differ.
double max_diff(const xarray<double>& a, const xarray<double>& b) {
    REQUIRE(shape_t(a.shape().begin(), a.shape().end()) == shape_t(b.shape().begin(), b.shape().end()));
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = std::abs(a.data()[i] - b.data()[i]);
        if (std::isnan(d)) return INFINITY;  // std::max would skip a NaN
        worst = std::max(worst, d);
    }
    return worst;
}
/// A matrix view [rows, cols] of a block whose shape is (rows shape) + (cols shape).
xarray<double> as_matrix(const tensor<double>& t, std::size_t rows) {
    xarray<double> m = t.value();
    m.reshape({rows, t.size() / rows});
    return m;
}
/// Softmax of a 1-D array, computed stably in plain C++.
xarray<double> softmax_ref(const xarray<double>& x) {
    double top = -INFINITY;
    for (double v : x) top = std::max(top, v);
    xarray<double> s = xt::zeros<double>(x.shape());
    double z = 0;
    for (std::size_t i = 0; i < x.size(); ++i) z += (s(i) = std::exp(x(i) - top));
    for (std::size_t i = 0; i < x.size(); ++i) s(i) /= z;
    return s;
}
/// diag(p) - p p^T: the Jacobian of softmax and the Hessian of logsumexp.
xarray<double> diag_minus_outer(const xarray<double>& p) {
    const std::size_t n = p.size();
    xarray<double> m = xt::zeros<double>({n, n});
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) m(i, j) = (i == j ? p(i) : 0.0) - p(i) * p(j);
    return m;
}
std::string what_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no exception)";
}
}  // namespace

TEST_CASE("the Hessian of a quadratic form x^T A x is A + A^T, and hvp is (A + A^T) v") {
    const xarray<double> a0 = uniform({4, 4}, -1, 1, 11), x0 = uniform({4}, -1, 1, 12), v0 = uniform({4}, -1, 1, 13);
    tensor<double> A(a0);
    auto f = [&](const args& in) { return sum(in[0] * matmul(A, in[0])); };
    xarray<double> sym = a0 + xt::transpose(a0);

    auto H = fx::hessian<double>(f, {tensor<double>(x0)});
    REQUIRE(H.size() == 1);
    REQUIRE(H[0].size() == 1);
    CHECK(H[0][0].shape() == shape_t{4, 4});
    CHECK(max_diff(H[0][0].value(), sym) < 1e-14);

    auto r = fx::hvp<double>(f, {tensor<double>(x0)}, {tensor<double>(v0)});
    xarray<double> sv = xt::zeros<double>({4});
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 4; ++j) sv(i) += sym(i, j) * v0(j);
    CHECK(max_diff(r.hvps[0].value(), sv) < 1e-14);
    double xAx = 0;
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 4; ++j) xAx += x0(i) * a0(i, j) * x0(j);
    CHECK(r.output.item() == doctest::Approx(xAx).epsilon(1e-14));

    // the gradient (vjp without u) is (A + A^T) x
    auto g = fx::vjp<double>(f, {tensor<double>(x0)});
    xarray<double> sx = xt::zeros<double>({4});
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 4; ++j) sx(i) += sym(i, j) * x0(j);
    CHECK(max_diff(g.vjps[0].value(), sx) < 1e-14);
}

TEST_CASE("the Jacobian of softmax is diag(s) - s s^T in every mode, also at +-1000") {
    auto f = [](const args& in) { return softmax(in[0], 0); };
    for (const xarray<double>& x0 : {uniform({5}, -2, 2, 21), xarray<double>{1000, -1000, 0, 999, 1000}}) {
        CAPTURE(x0);
        const xarray<double> closed = diag_minus_outer(softmax_ref(x0));
        for (fx::mode m : {fx::mode::reverse, fx::mode::forward, fx::mode::automatic}) {
            auto J = fx::jacobian<double>(f, {tensor<double>(x0)}, m);
            REQUIRE(J.size() == 1);
            CHECK(J[0].shape() == shape_t{5, 5});
            CHECK(max_diff(J[0].value(), closed) < 1e-15);
        }
    }
}

TEST_CASE("the Hessian of logsumexp is diag(p) - p p^T, also at +-1000") {
    auto f = [](const args& in) { return logsumexp(in[0], 0); };
    for (const xarray<double>& x0 : {uniform({6}, -3, 3, 31), xarray<double>{-1000, 1000, 0, 1000, -999, 999}}) {
        CAPTURE(x0);
        auto H = fx::hessian<double>(f, {tensor<double>(x0)});
        CHECK(max_diff(H[0][0].value(), diag_minus_outer(softmax_ref(x0))) < 1e-13);
    }
}

TEST_CASE("a small network's Hessian matches central differences of its gradient, block by block") {
    // loss(W1, b1, W2) = mse(tanh(x W1 + b1) W2, y); data fixed, parameters are the inputs
    const xarray<double> x0 = uniform({5, 3}, -1, 1, 41), y0 = uniform({5, 2}, -1, 1, 42);
    const std::vector<xarray<double>> p0{uniform({3, 4}, -1, 1, 43), uniform({4}, -0.5, 0.5, 44),
                                         uniform({4, 2}, -1, 1, 45)};
    tensor<double> x(x0), y(y0);
    auto loss = [&](const args& p) { return mse(matmul(tapegrad::tanh(matmul(x, p[0]) + p[1]), p[2]), y); };
    args params;
    for (const auto& p : p0) params.emplace_back(p);
    auto H = fx::hessian<double>(loss, params);
    REQUIRE(H.size() == 3);

    const double eps = 1e-5;
    double worst = 0;
    for (std::size_t j = 0; j < 3; ++j) {
        for (std::size_t e = 0; e < p0[j].size(); ++e) {
            std::vector<args> shifted(2, args{});
            for (int side = 0; side < 2; ++side) {
                for (std::size_t k = 0; k < 3; ++k) {
                    xarray<double> v = p0[k];
                    if (k == j) v.data()[e] += side == 0 ? eps : -eps;
                    shifted[side].emplace_back(v);
                }
            }
            auto gp = fx::vjp<double>(loss, shifted[0]).vjps;
            auto gm = fx::vjp<double>(loss, shifted[1]).vjps;
            for (std::size_t i = 0; i < 3; ++i) {
                // column e of block (i, j): d grad_i / d p_j[e]
                CHECK(H[i][j].shape() == [&] {
                    shape_t s(p0[i].shape().begin(), p0[i].shape().end());
                    s.insert(s.end(), p0[j].shape().begin(), p0[j].shape().end());
                    return s;
                }());
                xarray<double> block = as_matrix(H[i][j], p0[i].size());
                for (std::size_t r = 0; r < p0[i].size(); ++r) {
                    const double numeric = (gp[i].value().data()[r] - gm[i].value().data()[r]) / (2 * eps);
                    const double d = std::abs(block(r, e) - numeric);
                    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
                }
            }
        }
    }
    CHECK(worst < 1e-8);
    // the blocks are symmetric: H[i][j] = H[j][i]^T
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            CHECK(max_diff(as_matrix(H[i][j], p0[i].size()), xt::transpose(as_matrix(H[j][i], p0[j].size()))) <
                  1e-14);
}

TEST_CASE("jacobian: reverse, forward and automatic agree for several inputs and outputs; jvp = J v, vjp = u^T J") {
    const xarray<double> a0 = uniform({2, 3}, -1, 1, 51), b0 = uniform({3}, -1, 1, 52);
    auto f = [](const args& in) { return tapegrad::tanh(in[0] * in[1]) * sum(in[1] * in[1]); };  // [2, 3]
    const args in{tensor<double>(a0), tensor<double>(b0)};
    auto Jr = fx::jacobian<double>(f, in, fx::mode::reverse);
    auto Jf = fx::jacobian<double>(f, in, fx::mode::forward);
    auto Ja = fx::jacobian<double>(f, in);
    REQUIRE(Jr.size() == 2);
    CHECK(Jr[0].shape() == shape_t{2, 3, 2, 3});
    CHECK(Jr[1].shape() == shape_t{2, 3, 3});
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(max_diff(Jr[i].value(), Jf[i].value()) < 1e-15);
        CHECK(max_diff(Jr[i].value(), Ja[i].value()) < 1e-15);
    }
    // against a closed form: d out(r, c) / d a(r', c') = [r = r', c = c'] (1 - t^2) b_c S, S = sum(b^2)
    double S = 0;
    for (double v : b0) S += v * v;
    for (std::size_t r = 0; r < 2; ++r)
        for (std::size_t c = 0; c < 3; ++c) {
            const double t = std::tanh(a0(r, c) * b0(c));
            CHECK(Jr[0].value()(r, c, r, c) == doctest::Approx((1 - t * t) * b0(c) * S).epsilon(1e-14));
            CHECK(Jr[0].value()(r, c, 1 - r, c) == 0.0);
            // d / d b(k): [c = k] (1 - t^2) a S + t 2 b_k
            for (std::size_t k = 0; k < 3; ++k)
                CHECK(Jr[1].value()(r, c, k) ==
                      doctest::Approx((c == k ? (1 - t * t) * a0(r, c) * S : 0.0) + t * 2 * b0(k)).epsilon(1e-14));
        }

    const xarray<double> va = uniform({2, 3}, -1, 1, 53), vb = uniform({3}, -1, 1, 54), u = uniform({2, 3}, -1, 1, 55);
    auto jv = fx::jvp<double>(f, in, {tensor<double>(va), tensor<double>(vb)});
    auto uj = fx::vjp<double>(f, in, tensor<double>(u));
    xarray<double> jv_ref = xt::zeros<double>({2, 3});
    xarray<double> uja = xt::zeros<double>({2, 3}), ujb = xt::zeros<double>({3});
    const xarray<double> J0 = as_matrix(Jr[0], 6), J1 = as_matrix(Jr[1], 6);
    for (std::size_t o = 0; o < 6; ++o) {
        for (std::size_t e = 0; e < 6; ++e) jv_ref.data()[o] += J0(o, e) * va.data()[e];
        for (std::size_t e = 0; e < 3; ++e) jv_ref.data()[o] += J1(o, e) * vb(e);
        for (std::size_t e = 0; e < 6; ++e) uja.data()[e] += u.data()[o] * J0(o, e);
        for (std::size_t e = 0; e < 3; ++e) ujb(e) += u.data()[o] * J1(o, e);
    }
    CHECK(max_diff(jv.jvp.value(), jv_ref) < 1e-14);
    CHECK(max_diff(uj.vjps[0].value(), uja) < 1e-14);
    CHECK(max_diff(uj.vjps[1].value(), ujb) < 1e-14);
    CHECK(max_diff(jv.output.value(), f(in).value()) == 0.0);
    CHECK(max_diff(uj.output.value(), f(in).value()) == 0.0);
}

TEST_CASE("jacobian of a function with several outputs; automatic mode picks by size") {
    const xarray<double> x0 = uniform({3}, -1, 1, 61);
    // outputs: a scalar sum(x^2) (2x) and a [2, 3] broadcast product (rows x and 2x)
    fx::multi_fn<double> f = [](const args& in) {
        xarray<double> col = xt::zeros<double>({2, 1});
        col(0, 0) = 1;
        col(1, 0) = 2;
        tensor<double> two_rows(col);
        return std::vector<tensor<double>>{sum(in[0] * in[0]), two_rows * in[0]};
    };
    for (fx::mode m : {fx::mode::reverse, fx::mode::forward, fx::mode::automatic}) {
        auto J = fx::jacobian<double>(f, {tensor<double>(x0)}, m);
        REQUIRE(J.size() == 2);
        CHECK(J[0][0].shape() == shape_t{3});
        CHECK(max_diff(J[0][0].value(), 2.0 * x0) < 1e-15);
        CHECK(J[1][0].shape() == shape_t{2, 3, 3});
        for (std::size_t r = 0; r < 2; ++r)
            for (std::size_t c = 0; c < 3; ++c)
                for (std::size_t k = 0; k < 3; ++k)
                    CHECK(J[1][0].value()(r, c, k) == (c == k ? double(r + 1) : 0.0));
    }
}

TEST_CASE("an input the output does not depend on gets zeros of the right shape") {
    const xarray<double> a0 = uniform({2, 2}, -1, 1, 71), b0 = uniform({3}, -1, 1, 72);
    const args in{tensor<double>(a0), tensor<double>(b0)};
    auto f = [](const args& x) { return sum(x[0] * x[0] * x[0]); };  // ignores x[1]
    for (fx::mode m : {fx::mode::reverse, fx::mode::forward}) {
        auto J = fx::jacobian<double>(f, in, m);
        CHECK(max_diff(J[0].value(), 3.0 * a0 * a0) < 1e-15);
        CHECK(J[1].shape() == shape_t{3});
        CHECK(max_diff(J[1].value(), xt::zeros<double>({3})) == 0.0);
    }
    auto H = fx::hessian<double>(f, in);
    CHECK(max_diff(as_matrix(H[0][0], 4), [&] {
              xarray<double> d = xt::zeros<double>({4, 4});
              for (std::size_t i = 0; i < 4; ++i) d(i, i) = 6 * a0.data()[i];
              return d;
          }()) < 1e-15);
    CHECK(H[0][1].shape() == shape_t{2, 2, 3});
    CHECK(H[1][0].shape() == shape_t{3, 2, 2});
    CHECK(H[1][1].shape() == shape_t{3, 3});
    for (const auto* b : {&H[0][1], &H[1][0], &H[1][1]}) CHECK(xt::all(xt::equal(b->value(), 0.0)));

    auto g = fx::vjp<double>(f, in);
    CHECK(max_diff(g.vjps[1].value(), xt::zeros<double>({3})) == 0.0);
    auto jv = fx::jvp<double>(f, in, {tensor<double>::zeros({2, 2}), tensor<double>(b0)});  // moves only b
    CHECK(jv.jvp.item() == 0.0);
    auto hv = fx::hvp<double>(f, in, {tensor<double>::ones({2, 2}), tensor<double>::ones({3})});
    CHECK(max_diff(hv.hvps[0].value(), 6.0 * a0) < 1e-15);
    CHECK(max_diff(hv.hvps[1].value(), xt::zeros<double>({3})) == 0.0);

    // a function of no input at all, and a linear one (constant gradient, zero Hessian)
    tensor<double> c(xarray<double>{1.0, 2.0});
    auto constant = [&](const args&) { return sum(c); };
    CHECK(max_diff(fx::jacobian<double>(constant, in)[0].value(), xt::zeros<double>({2, 2})) == 0.0);
    CHECK(fx::jvp<double>(constant, in, {tensor<double>(a0), tensor<double>(b0)}).jvp.item() == 0.0);
    CHECK(max_diff(fx::hessian<double>(constant, in)[1][1].value(), xt::zeros<double>({3, 3})) == 0.0);
    auto linear = [](const args& x) { return sum(x[0]) + sum(x[1]) * 2.0; };
    CHECK(xt::all(xt::equal(fx::hessian<double>(linear, in)[0][1].value(), 0.0)));
    CHECK(max_diff(fx::vjp<double>(linear, in).vjps[1].value(), xarray<double>{2, 2, 2}) == 0.0);
    CHECK(max_diff(fx::hvp<double>(linear, in, {tensor<double>(a0), tensor<double>(b0)}).hvps[0].value(),
                   xt::zeros<double>({2, 2})) == 0.0);
}

TEST_CASE("hvp equals the Hessian times v, for several inputs") {
    const xarray<double> a0 = uniform({3}, -1, 1, 81), b0 = uniform({2, 3}, -1, 1, 82);
    auto f = [](const args& x) { return sum(tapegrad::exp(x[0] * x[1]) * x[1]) + sum(x[0] * x[0] * x[0]); };
    const args in{tensor<double>(a0), tensor<double>(b0)};
    const xarray<double> va = uniform({3}, -1, 1, 83), vb = uniform({2, 3}, -1, 1, 84);
    auto H = fx::hessian<double>(f, in);
    auto hv = fx::hvp<double>(f, in, {tensor<double>(va), tensor<double>(vb)});
    const std::vector<const xarray<double>*> v{&va, &vb};
    for (std::size_t i = 0; i < 2; ++i) {
        xarray<double> ref = xt::zeros<double>(in[i].shape());
        for (std::size_t j = 0; j < 2; ++j) {
            const xarray<double> block = as_matrix(H[i][j], in[i].size());
            for (std::size_t r = 0; r < in[i].size(); ++r)
                for (std::size_t e = 0; e < in[j].size(); ++e) ref.data()[r] += block(r, e) * v[j]->data()[e];
        }
        CHECK(max_diff(hv.hvps[i].value(), ref) < 1e-13);
    }
}

TEST_CASE("scalar-only transforms refuse a larger output, and wrong-shaped vectors name both shapes") {
    const args in{tensor<double>(xarray<double>{1, 2, 3})};
    auto vec = [](const args& x) { return x[0] * x[0]; };  // [3]
    CHECK_THROWS_AS(fx::hessian<double>(vec, in), shape_error);
    std::string m = what_of([&] { fx::hessian<double>(vec, in); });
    CHECK(m.find("hessian") != std::string::npos);
    CHECK(m.find("[3]") != std::string::npos);
    CHECK(m.find("sum()") != std::string::npos);  // says what to do

    CHECK_THROWS_AS(fx::hvp<double>(vec, in, {tensor<double>::ones({3})}), shape_error);
    m = what_of([&] { fx::hvp<double>(vec, in, {tensor<double>::ones({3})}); });
    CHECK(m.find("hvp") != std::string::npos);
    CHECK(m.find("[3]") != std::string::npos);

    CHECK_THROWS_AS(fx::vjp<double>(vec, in), shape_error);
    m = what_of([&] { fx::vjp<double>(vec, in); });
    CHECK(m.find("vjp") != std::string::npos);
    CHECK(m.find("pass u") != std::string::npos);

    m = what_of([&] { fx::vjp<double>(vec, in, tensor<double>::ones({2})); });
    CHECK(m.find("[2]") != std::string::npos);
    CHECK(m.find("[3]") != std::string::npos);
    CHECK_THROWS_AS(fx::vjp<double>(vec, in, tensor<double>::ones({3, 1})), shape_error);

    m = what_of([&] { fx::jvp<double>(vec, in, {tensor<double>::ones({4})}); });
    CHECK(m.find("jvp: v[0] has shape [4] but input 0 has shape [3]") != std::string::npos);
    CHECK_THROWS_AS(fx::jvp<double>(vec, in, {tensor<double>::ones({4})}), shape_error);
    CHECK_THROWS_AS(fx::jvp<double>(vec, in, {}), std::invalid_argument);
    m = what_of([&] { fx::hvp<double>([](const args& x) { return sum(x[0]); }, in, {tensor<double>::ones({2, 2})}); });
    CHECK(m.find("[2, 2]") != std::string::npos);
    CHECK(m.find("[3]") != std::string::npos);
    CHECK_THROWS_AS(fx::jacobian<double>(vec, {tensor<double>()}), std::invalid_argument);
    CHECK_THROWS_AS(fx::jacobian<double>([](const args&) { return tensor<double>(); }, in), std::invalid_argument);
}

TEST_CASE("calls rewind the tape: repeated transforms do not grow it, and their results outlive a reset") {
    reset_tape<double>();
    auto& tp = tape<double>::current();
    tensor<double> w(xarray<double>{0.5, -1.0, 2.0}, true);
    tensor<double> before = tapegrad::tanh(w);  // something recorded by the caller, kept intact
    const std::size_t start = tp.size();
    const std::size_t kept = tp.stats().kept_leaves;
    auto f = [&](const args& x) { return logsumexp(x[0] * w, 0); };
    const args in{tensor<double>(xarray<double>{0.1, 0.2, 0.3})};
    const args v{tensor<double>(xarray<double>{1, 0, -1})};
    for (int k = 0; k < 5; ++k) {
        fx::vjp<double>(f, in);
        fx::jvp<double>(f, in, v);
        fx::jacobian<double>(f, in, fx::mode::forward);
        fx::hessian<double>(f, in);
        fx::hvp<double>(f, in, v);
        CHECK(tp.size() == start);
        CHECK(tp.stats().kept_leaves == kept);  // the call's leaves are let go too
    }
    CHECK(before.value()(0) == doctest::Approx(std::tanh(0.5)));  // the caller's node survived
    // the transforms also leave the caller's leaves' .grad() alone
    CHECK_FALSE(w.has_grad());
    // inside no_grad too
    {
        no_grad quiet;
        CHECK(fx::hessian<double>(f, in)[0][0].shape() == shape_t{3, 3});
    }
    auto H = fx::hessian<double>(f, in);
    reset_tape<double>();
    CHECK(H[0][0].is_leaf());
    CHECK(H[0][0].value().size() == 9);  // detached: still readable after the reset
}

TEST_CASE("create_graph keeps the results differentiable with respect to the inputs") {
    reset_tape<double>();
    auto& tp = tape<double>::current();
    const xarray<double> x0{0.5, -1.0, 2.0};
    tensor<double> x(x0, true);
    fx::options keep;
    keep.create_graph = true;
    // vjp of sum(x^3) is 3 x^2; its derivative d sum(3 x^2) / dx = 6 x
    auto g = fx::vjp<double>([](const args& in) { return sum(in[0] * in[0] * in[0]); }, {x}, tensor<double>(), keep);
    REQUIRE(g.vjps[0].requires_grad());
    CHECK(max_diff(tp.gradient(sum(g.vjps[0]), {x})[0].value(), 6.0 * x0) < 1e-15);
    // jacobian of x^2 is diag(2x); d sum(J) / dx = 2, both modes
    for (fx::mode m : {fx::mode::reverse, fx::mode::forward}) {
        auto J = fx::jacobian<double>([](const args& in) { return in[0] * in[0]; }, {x}, m, keep);
        REQUIRE(J[0].requires_grad());
        CHECK(max_diff(tp.gradient(sum(J[0]), {x})[0].value(), xarray<double>{2, 2, 2}) < 1e-15);
    }
    // hessian of sum(x^4) is diag(12 x^2): its trace's gradient is 24 x (third derivatives)
    auto H = fx::hessian<double>([](const args& in) { return sum(tapegrad::pow(in[0], 4.0)); }, {x}, keep);
    xarray<double> eye = xt::eye<double>(3);
    CHECK(max_diff(tp.gradient(sum(H[0][0] * tensor<double>(eye)), {x})[0].value(), 24.0 * x0) < 1e-12);
    // jvp and hvp too: d/dx of J v for f = x^3 (J v = 3 x^2 v) is 6 x v
    const xarray<double> v0{1.0, 2.0, -1.0};
    auto jv = fx::jvp<double>([](const args& in) { return in[0] * in[0] * in[0]; }, {x}, {tensor<double>(v0)}, keep);
    CHECK(max_diff(tp.gradient(sum(jv.jvp), {x})[0].value(), 6.0 * x0 * v0) < 1e-14);
    auto hv = fx::hvp<double>([](const args& in) { return sum(in[0] * in[0] * in[0]); }, {x}, {tensor<double>(v0)},
                              keep);
    CHECK(max_diff(tp.gradient(sum(hv.hvps[0]), {x})[0].value(), 6.0 * v0) < 1e-14);
    reset_tape<double>();
}
