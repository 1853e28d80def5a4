// Gradient hooks (tensor::register_hook) and retain_grad: a hook sees a tensor's
// complete gradient in backward() and tape::gradient() (also under create_graph)
// and may replace it; checked against gradients written out by hand.

#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "optim/optimizer.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using testing::uniform;

namespace {

using arr = xt::xarray<double>;

/// a b for 2-D arrays, written out (the reference the tests compare against).
arr mm(const arr& a, const arr& b) {
    const std::size_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
    arr c = xt::zeros<double>({m, n});
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j)
            for (std::size_t l = 0; l < k; ++l) c(i, j) += a(i, l) * b(l, j);
    return c;
}
arr tr(const arr& a) { return xt::transpose(a); }

double norm(const arr& a) {
    double s = 0;
    for (double v : a) s += v * v;
    return std::sqrt(s);
}

void check_close(const arr& got, const arr& want, double tol = 1e-12) {
    REQUIRE(got.shape() == want.shape());
    for (std::size_t k = 0; k < got.size(); ++k) CHECK(got.flat(k) == doctest::Approx(want.flat(k)).epsilon(tol));
}

/// Scale g down to norm at most c (a hook's gradient clipping), in tensor ops.
tensor<double> clip_norm(const tensor<double>& g, double c) {
    const double n = norm(g.value());
    return n > c ? mul_scalar(g, c / n) : tensor<double>();
}

struct fixture {
    arr x0 = uniform({2, 3}, -1, 1, 11);
    arr w0 = uniform({3, 4}, -1, 1, 12);
    fixture() { reset_tape<double>(); }
    ~fixture() { reset_tape<double>(); }
};

}  // namespace

TEST_CASE_FIXTURE(fixture, "a hook on an activation clips its gradient norm before it flows to the inputs") {
    tensor<double> x(x0, true), w(w0, true);
    tensor<double> h = matmul(x, w);
    const double c = 0.25;
    int calls = 0;
    arr seen;
    h.register_hook([&](const tensor<double>& g) {
        ++calls;
        seen = g.value();
        return clip_norm(g, c);
    });
    tensor<double> loss = mul_scalar(sum(h * h), 0.5);  // dL/dh = h
    loss.backward();
    CHECK(calls == 1);
    const arr h0 = mm(x0, w0);
    check_close(seen, h0);  // the hook saw the complete gradient
    REQUIRE(norm(h0) > c);
    const arr gh = h0 * (c / norm(h0));
    check_close(w.grad(), mm(tr(x0), gh));
    check_close(x.grad(), mm(gh, tr(w0)));
    CHECK(norm(mm(gh, tr(w0))) < norm(mm(h0, tr(w0))));
}

TEST_CASE_FIXTURE(fixture, "a hook on a weight clips its gradient in backward() and tape::gradient()") {
    tensor<double> x(x0, true), w(w0, true);
    const double c = 0.1;
    w.register_hook([&](const tensor<double>& g) { return clip_norm(g, c); });
    tensor<double> loss = mul_scalar(sum(matmul(x, w) * matmul(x, w)), 0.5);
    const arr h0 = mm(x0, w0);
    const arr gw = mm(tr(x0), h0);
    REQUIRE(norm(gw) > c);
    SUBCASE("backward") {
        loss.backward();
        check_close(w.grad(), gw * (c / norm(gw)));
        CHECK(norm(w.grad()) == doctest::Approx(c).epsilon(1e-12));
        check_close(x.grad(), mm(h0, tr(w0)));  // x has no hook: its gradient is untouched
        loss.backward();  // accumulates hooked gradients like any other
        check_close(w.grad(), gw * (2 * c / norm(gw)));
    }
    SUBCASE("gradient") {
        auto g = tape<double>::current().gradient(loss, {w, x});
        check_close(g[0].value(), gw * (c / norm(gw)));
        check_close(g[1].value(), mm(h0, tr(w0)));
        CHECK_FALSE(w.has_grad());  // gradient() leaves .grad alone, hooked or not
    }
}

TEST_CASE_FIXTURE(fixture, "an activation's gradient read by retain_grad and by a hook equals tape.gradient") {
    tensor<double> x(x0, true), w(w0, true);
    tensor<double> h = tanh(matmul(x, w));
    tensor<double> loss = sum(h * h * h);
    auto& tp = tape<double>::current();
    const arr want = tp.gradient(loss, {h})[0].value();
    check_close(want, 3.0 * xt::eval(h.value() * h.value()));

    CHECK_FALSE(h.retains_grad());
    CHECK_FALSE(h.has_grad());
    h.retain_grad();
    CHECK(h.retains_grad());
    arr by_hook;
    h.register_hook([&](const tensor<double>& g) {
        by_hook = g.value();
        return tensor<double>();  // undefined: keep the gradient
    });
    loss.backward();
    REQUIRE(h.has_grad());
    check_close(h.grad(), want);
    check_close(by_hook, want);
    // tape.gradient calls the hook too, but does not add to the retained gradient.
    by_hook = arr();
    tp.gradient(loss, {w});
    check_close(by_hook, want);
    check_close(h.grad(), want);
    loss.backward();  // retained gradients accumulate like a leaf's .grad
    check_close(h.grad(), 2.0 * want);
    h.zero_grad();
    CHECK_FALSE(h.has_grad());
    // Without retain_grad the message says what to do.
    tensor<double> other = exp(x);
    sum(other).backward();
    CHECK_THROWS_WITH_AS(other.grad(), doctest::Contains("retain_grad()"), std::logic_error);
    CHECK_THROWS_WITH_AS(other.grad(), doctest::Contains("'exp'"), std::logic_error);
    // A leaf retains its gradient anyway; retain_grad() on it changes nothing.
    x.retain_grad();
    CHECK(x.retains_grad());
}

TEST_CASE_FIXTURE(fixture, "a hook sees the total gradient of a tensor read by several ops, once") {
    tensor<double> x(x0, true);
    tensor<double> y = exp(x);
    const arr a = uniform({2, 3}, -1, 1, 21), b = uniform({2, 3}, -1, 1, 22);
    std::vector<arr> seen;
    y.register_hook([&](const tensor<double>& g) {
        seen.push_back(g.value());
        return tensor<double>();
    });
    tensor<double> loss = sum(y * tensor<double>(a)) + sum(y * tensor<double>(b));
    loss.backward();
    REQUIRE(seen.size() == 1);
    check_close(seen[0], a + b);
    check_close(x.grad(), xt::eval((a + b) * xt::exp(x0)));
}

TEST_CASE_FIXTURE(fixture, "a leaf's hook replaces its gradient; a hook on the loss scales everything") {
    tensor<double> x(x0, true), w(w0, true);
    SUBCASE("leaf") {
        x.register_hook([](const tensor<double>& g) { return mul_scalar(g, 2.0); });
        sum(matmul(x, w)).backward();
        const arr ones = xt::ones<double>({2, 4});
        check_close(x.grad(), 2.0 * mm(ones, tr(w0)));
        check_close(w.grad(), mm(tr(x0), ones));  // w has no hook
        auto g = tape<double>::current().gradient(sum(matmul(x, w)), {x});
        check_close(g[0].value(), 2.0 * mm(ones, tr(w0)));
    }
    SUBCASE("loss") {
        tensor<double> loss = sum(matmul(x, w));
        loss.register_hook([](const tensor<double>& g) {
            CHECK(g.value().size() == 1);
            CHECK(g.item() == 1.0);
            return tensor<double>::full(g.shape(), 3.0);
        });
        loss.backward();
        check_close(w.grad(), 3.0 * mm(tr(x0), xt::ones<double>({2, 4})));
    }
}

TEST_CASE_FIXTURE(fixture, "several hooks run in registration order, each seeing the one before; remove() takes one off") {
    tensor<double> x(x0, true);
    tensor<double> y = mul_scalar(x, 2.0);
    std::vector<int> order;
    auto h1 = y.register_hook([&](const tensor<double>& g) {
        order.push_back(1);
        return add_scalar(g, 1.0);
    });
    arr seen2;
    auto h2 = y.register_hook([&](const tensor<double>& g) {
        order.push_back(2);
        seen2 = g.value();
        return mul_scalar(g, 3.0);
    });
    CHECK(h1.active());
    CHECK(h2.active());
    tensor<double> loss = sum(y);
    loss.backward();
    CHECK(order == std::vector<int>{1, 2});
    check_close(seen2, arr(xt::ones<double>({2, 3}) * 2.0));  // hook 2 got hook 1's replacement
    check_close(x.grad(), arr(xt::ones<double>({2, 3}) * 12.0));  // (1 + 1) * 3 * 2

    h1.remove();
    CHECK_FALSE(h1.active());
    CHECK(h2.active());
    h1.remove();  // twice is harmless
    x.zero_grad();
    order.clear();
    loss.backward();
    CHECK(order == std::vector<int>{2});
    check_close(x.grad(), arr(xt::ones<double>({2, 3}) * 6.0));

    // Leaf hooks: removal too, and they survive the tape's reset.
    tensor<double> z(x0, true);
    int leaf_calls = 0;
    auto hz = z.register_hook([&](const tensor<double>&) {
        ++leaf_calls;
        return tensor<double>();
    });
    sum(z).backward();
    reset_tape<double>();
    CHECK(hz.active());
    CHECK_FALSE(h2.active());  // a result's hooks live until its tape's reset
    sum(z).backward();
    CHECK(leaf_calls == 2);
    hz.remove();
    sum(z).backward();
    CHECK(leaf_calls == 2);
    hook_handle<double> never;  // default-constructed: inactive, remove() is a no-op
    CHECK_FALSE(never.active());
    never.remove();
}

TEST_CASE_FIXTURE(fixture, "hooks under create_graph: the replaced gradient stays differentiable") {
    // y = x*x, L = sum(tanh(y)); a hook multiplies dL/dy by y, in tensor ops.
    // Hooked gradient G(x) = (1 - tanh(x^2)^2) x^2 2x; its derivative checked against
    // central differences of G computed by hooked first-order passes.
    const arr xv = uniform({5}, -1.2, 1.2, 31);
    hook_handle<double> hook;
    const auto hooked_grad = [&hook](const arr& at, bool create_graph, tensor<double>* keep_x) {
        tensor<double> x(at, true);
        tensor<double> y = x * x;
        hook = y.register_hook([y](const tensor<double>& g) { return g * y; });
        tensor<double> loss = sum(tanh(y));
        if (keep_x) *keep_x = x;
        return tape<double>::current().gradient(loss, {x}, {create_graph})[0];
    };
    tensor<double> x;
    tensor<double> g = hooked_grad(xv, true, &x);
    REQUIRE(g.requires_grad());
    arr want = xv;
    for (std::size_t i = 0; i < xv.size(); ++i) {
        const double t = std::tanh(xv(i) * xv(i));
        want(i) = (1 - t * t) * xv(i) * xv(i) * 2 * xv(i);
    }
    check_close(g.value(), want);
    // dG_i/dx_i (G is elementwise, so the Hessian is diagonal): one pass with v = 1.
    // Hooks run in every pass through y, this one too; here only the first is hooked.
    hook.remove();
    arr d = tape<double>::current().gradient(sum(g), {x})[0].value();
    const double eps = 1e-6;
    for (std::size_t i = 0; i < xv.size(); ++i) {
        arr xp = xv, xm = xv;
        xp(i) += eps;
        xm(i) -= eps;
        const double fd = (hooked_grad(xp, false, nullptr).value()(i) - hooked_grad(xm, false, nullptr).value()(i)) /
                          (2 * eps);
        CHECK(d(i) == doctest::Approx(fd).epsilon(1e-6));
    }

    // A leaf hook under create_graph: twice the gradient, twice the Hessian.
    reset_tape<double>();
    tensor<double> a(xv, true);
    a.register_hook([](const tensor<double>& gr) { return mul_scalar(gr, 2.0); });
    tensor<double> ga = tape<double>::current().gradient(sum(a * a * a), {a}, {true})[0];
    check_close(ga.value(), xt::eval(6.0 * xv * xv));
    // Second pass: d/da sum(2 * 3a^2) = 12 a, then the hook doubles it again.
    arr ha = tape<double>::current().gradient(sum(ga), {a})[0].value();
    check_close(ha, xt::eval(24.0 * xv));
}

TEST_CASE_FIXTURE(fixture, "a hook returning the wrong shape is a shape_error naming the op and both shapes") {
    tensor<double> x(x0, true), w(w0, true);
    tensor<double> h = matmul(x, w);
    h.register_hook([](const tensor<double>&) { return tensor<double>::zeros({3}); });
    tensor<double> loss = sum(h);
    CHECK_THROWS_WITH_AS(loss.backward(),
                         "register_hook: the hook on the result of op 'matmul' returned a gradient of shape [3] for a "
                         "tensor of shape [2, 4]; a hook must return a tensor of its tensor's shape (or an undefined "
                         "tensor to keep the gradient)",
                         shape_error);
    reset_tape<double>();
    x.register_hook([](const tensor<double>&) { return tensor<double>::zeros({3, 2}); });
    CHECK_THROWS_WITH_AS(tape<double>::current().gradient(sum(x), {x}),
                         doctest::Contains("the hook on a leaf returned a gradient of shape [3, 2] for a tensor of "
                                           "shape [2, 3]"),
                         shape_error);
    tensor<double> c(x0);
    CHECK_THROWS_WITH_AS(c.register_hook([](const tensor<double>& g) { return g; }),
                         doctest::Contains("does not require grad"), std::logic_error);
    CHECK_THROWS_AS(w.register_hook(hook_fn<double>()), std::invalid_argument);
}
