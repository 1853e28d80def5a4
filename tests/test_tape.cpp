// The tape itself: recording, accumulation, reset and reuse, nesting, errors.

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using xt::xarray;

namespace {
struct fresh_tape {
    fresh_tape() {
        reset_tape<double>();
        reset_tape<float>();
    }
};
}  // namespace

TEST_CASE_FIXTURE(fresh_tape, "a tensor used several times accumulates its gradient") {
    tensor<double> x(xarray<double>{1.5, -2.0}, true);
    auto y = sum(x * x + x * 3.0 + exp(x));  // dy/dx = 2x + 3 + e^x
    y.backward();
    CHECK(x.grad()(0) == doctest::Approx(2 * 1.5 + 3 + std::exp(1.5)));
    CHECK(x.grad()(1) == doctest::Approx(2 * -2.0 + 3 + std::exp(-2.0)));
    // backward() accumulates like PyTorch until zero_grad()
    auto y2 = sum(x * 2.0);
    y2.backward();
    CHECK(x.grad()(0) == doctest::Approx(2 * 1.5 + 3 + std::exp(1.5) + 2));
    x.zero_grad();
    CHECK_FALSE(x.has_grad());
}

TEST_CASE_FIXTURE(fresh_tape, "a chain of 100,000 ops differentiates without recursion") {
    tensor<double> x(xarray<double>{0.5}, true);
    tensor<double> y = x;
    for (int i = 0; i < 100000; ++i) y = y * 1.00001;
    y.backward();
    CHECK(tape<double>::current().size() == 100000);
    CHECK(x.grad()(0) == doctest::Approx(std::pow(1.00001, 100000)).epsilon(1e-9));
}

TEST_CASE_FIXTURE(fresh_tape, "tape.gradient returns gradients and leaves .grad alone") {
    tensor<double> w(xarray<double>{{1, 2}, {3, 4}}, true);
    tensor<double> x(xarray<double>{{1, -1}}, false);
    auto loss = sum(matmul(x, w));
    auto g = tape<double>::current().gradient(loss, {w, x});
    CHECK_FALSE(w.has_grad());
    xarray<double> expected_w{{1, 1}, {-1, -1}};
    xarray<double> expected_x{{3, 7}};
    CHECK(g[0].value() == expected_w);
    CHECK(g[1].value() == xarray<double>{{0, 0}});  // x does not require grad: zeros
    (void)expected_x;
    // A tensor the loss does not depend on gets zeros of its shape.
    tensor<double> unused(xarray<double>{1, 2, 3}, true);
    auto g2 = tape<double>::current().gradient(loss, {unused});
    CHECK(g2[0].value() == xarray<double>{0, 0, 0});
}

TEST_CASE_FIXTURE(fresh_tape, "gradient with respect to an intermediate tensor") {
    tensor<double> x(xarray<double>{2.0}, true);
    auto h = x * x;       // 4
    auto y = sum(h * h);  // 16, dy/dh = 2h = 8
    auto g = tape<double>::current().gradient(y, {h, x});
    CHECK(g[0].value()(0) == doctest::Approx(8.0));
    CHECK(g[1].value()(0) == doctest::Approx(32.0));  // 4 x^3
}

TEST_CASE_FIXTURE(fresh_tape, "no_grad records nothing and detach cuts the graph") {
    tensor<double> x(xarray<double>{1.0, 2.0}, true);
    {
        no_grad quiet;
        auto y = x * x;
        CHECK_FALSE(y.requires_grad());
        CHECK(y.is_leaf());
        CHECK(tape<double>::current().size() == 0);
    }
    auto y = x * x.detach();  // d/dx = x.detach() only
    sum(y).backward();
    CHECK(x.grad() == xarray<double>{1.0, 2.0});
    // detach survives a reset, op results do not
    auto kept = (x * 3.0).detach();
    auto lost = x * 3.0;
    reset_tape<double>();
    CHECK(kept.value() == xarray<double>{3.0, 6.0});
    CHECK_THROWS_WITH_AS(lost.value(), doctest::Contains("used after its tape was reset"), std::logic_error);
}

TEST_CASE_FIXTURE(fresh_tape, "ops on tensors that need no gradient record nothing") {
    tensor<float> a(xarray<float>{1, 2, 3});
    auto b = tanh(a * a + 1.0f);
    CHECK(tape<float>::current().size() == 0);
    CHECK(b.value()(1) == doctest::Approx(std::tanh(5.0f)));
}

TEST_CASE_FIXTURE(fresh_tape, "backward errors say what to do") {
    tensor<double> x(xarray<double>{1.0, 2.0}, true);
    auto y = x * 2.0;
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("has shape [2]"), shape_error);
    CHECK_THROWS_WITH_AS(y.backward(xarray<double>{1, 2, 3}), doctest::Contains("[3] does not match"), shape_error);
    y.backward(xarray<double>{1.0, 10.0});  // vector-Jacobian product with a seed
    CHECK(x.grad() == xarray<double>{2.0, 20.0});
    tensor<double> c(xarray<double>{1.0});
    CHECK_THROWS_WITH_AS(c.backward(), doctest::Contains("does not require grad"), std::logic_error);
    CHECK_THROWS_WITH_AS(tensor<double>().value(), doctest::Contains("undefined"), std::logic_error);
    CHECK_THROWS_WITH_AS(y.mutable_value(), doctest::Contains("only leaves"), std::logic_error);
    tensor<double> z(xarray<double>{1.0}, true);
    CHECK_THROWS_WITH_AS(z.grad(), doctest::Contains("no gradient"), std::logic_error);
}

TEST_CASE_FIXTURE(fresh_tape, "reset keeps capacity: 100,000 training steps do not grow memory") {
    std::mt19937 rng(3);
    auto init = [&](shape_t s) { return tensor<float>(xt::xarray<float>(testing::uniform(s, -0.5, 0.5, rng())), true); };
    tensor<float> w1 = init({16, 4}), b1 = init({16}), w2 = init({3, 16}), b2 = init({3});
    tensor<float> x(xarray<float>{{0.1f, -0.2f, 0.3f, 0.7f}});
    tensor<float> target(xarray<float>{{0, 1, 0}});
    auto& tp = tape<float>::current();
    auto step = [&] {
        auto out = softmax(matmul(tanh(matmul(x, w1, false, true) + b1), w2, false, true) + b2, 1);
        auto loss = mse(out, target);
        loss.backward();
        for (auto* p : {&w1, &b1, &w2, &b2}) {
            xt::noalias(p->mutable_value()) -= 0.1f * p->grad();
            p->zero_grad();
        }
        float l = loss.item();
        tp.reset();
        return l;
    };
    const float first = step();
    for (int i = 0; i < 100; ++i) step();
    const tape_stats warm = tp.stats();
    float last = 0;
    for (int i = 0; i < 100000; ++i) last = step();
    const tape_stats later = tp.stats();
    CHECK(last < first);
    CHECK(later.node_capacity == warm.node_capacity);
    CHECK(later.value_bytes == warm.value_bytes);
    CHECK(later.arena_bytes == warm.arena_bytes);
    CHECK(later.peak_nodes == warm.peak_nodes);
    CHECK(warm.peak_nodes == 7);  // 2 matmul, 2 add, tanh, softmax, mse
}

TEST_CASE_FIXTURE(fresh_tape, "stats report the thread's broadcast buffers, which steady steps reuse") {
    tape<double>& tp = tape<double>::current();
    tensor<double> x(xt::ones<double>({40, 50}), true), col(xt::ones<double>({40, 1}), true);
    auto step = [&] {
        sum(x * col).backward();  // a column, not a bias row: the operands go through the buffers
        tp.reset();
    };
    step();
    const tape_stats warm = tp.stats();
    CHECK(warm.thread_scratch_bytes >= 2 * 40 * 50 * sizeof(double));  // col expanded, and its gradient before the sum
    step();
    CHECK(tp.stats().thread_scratch_bytes == warm.thread_scratch_bytes);
}

TEST_CASE_FIXTURE(fresh_tape, "rewind drops what was recorded after a mark") {
    tensor<double> x(xarray<double>{3.0}, true);
    auto a = x * x;
    auto mark = tape<double>::current().mark();
    auto b = a * a;
    tape<double>::current().rewind(mark);
    CHECK(tape<double>::current().size() == 1);
    CHECK(a.value()(0) == 9.0);
    CHECK_THROWS_AS(b.value(), std::logic_error);
}

TEST_CASE_FIXTURE(fresh_tape, "create_graph gives second derivatives") {
    tensor<double> x(xarray<double>{0.7}, true);
    auto y = sum(x * x * x);  // y' = 3x^2, y'' = 6x
    auto g = tape<double>::current().gradient(y, {x}, {true});
    CHECK(g[0].value()(0) == doctest::Approx(3 * 0.49));
    CHECK(g[0].requires_grad());
    auto h = tape<double>::current().gradient(sum(g[0]), {x});
    CHECK(h[0].value()(0) == doctest::Approx(6 * 0.7));
}

TEST_CASE_FIXTURE(fresh_tape, "nested gradient tapes give second derivatives, as in TensorFlow") {
    tensor<double> x(xarray<double>{0.3, -1.2}, true);
    gradient_tape<double> outer;
    tensor<double> dy;
    {
        gradient_tape<double> inner;
        auto y = sum(tanh(x));
        dy = inner.gradient(y, {x})[0];  // 1 - tanh^2, recorded for the outer tape
    }
    auto d2 = outer.gradient(sum(dy), {x})[0];  // -2 tanh (1 - tanh^2)
    for (std::size_t i = 0; i < 2; ++i) {
        double t = std::tanh(x.value()(i));
        CHECK(dy.value()(i) == doctest::Approx(1 - t * t));
        CHECK(d2.value()(i) == doctest::Approx(-2 * t * (1 - t * t)));
    }
    CHECK(outer.recorded() > 0);
}

TEST_CASE_FIXTURE(fresh_tape, "a single gradient tape does not record its reverse pass") {
    tensor<double> x(xarray<double>{0.3}, true);
    gradient_tape<double> tp;
    auto y = sum(tanh(x));
    const std::size_t before = tape<double>::current().size();
    auto g = tp.gradient(y, {x});
    CHECK(tape<double>::current().size() == before);  // fast path: nothing recorded
    CHECK_FALSE(g[0].requires_grad());
}

TEST_CASE_FIXTURE(fresh_tape, "tensor handles are small") {
    CHECK(sizeof(tensor<float>) <= 32);
    tensor<float> a(xarray<float>{1.f}, true);
    tensor<float> b = a;  // copies share the node
    b.set_requires_grad(false);
    CHECK_FALSE(a.requires_grad());
}

TEST_CASE_FIXTURE(fresh_tape, "a held gradient of a stale shape is an error that says to call zero_grad") {
    tensor<double> w(xarray<double>{1.0, 2.0}, true);
    sum(w * w).backward();
    w.mutable_value() = xarray<double>{1.0, 2.0, 3.0};  // replaced with another shape, .grad() kept
    CHECK_THROWS_WITH_AS(sum(w * w).backward(), doctest::Contains("call zero_grad()"), shape_error);
    reset_tape<double>();
    w.zero_grad();
    sum(w * w).backward();
    CHECK(w.grad() == xarray<double>{2.0, 4.0, 6.0});
}
