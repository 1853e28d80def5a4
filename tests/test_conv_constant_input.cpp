// conv2d of an input that needs no gradient (a batch of images): when the conv is
// recorded, its unfolded matrix is a tape slot too (requires_grad false), so a
// training step reuses that buffer instead of allocating a new leaf; gradients are
// those of the same conv with the input requiring grad. When nothing is recorded
// the result stays a leaf that outlives the tape.

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using args = std::vector<tensor<double>>;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;

namespace {
conv2d_options padded(std::size_t pad, std::size_t stride = 1) {
    conv2d_options o;
    o.padding = {pad, pad};
    o.stride = {stride, stride};
    return o;
}
}  // namespace

TEST_CASE("conv2d of a constant input: the unfolded matrix is a tape slot, reused every step") {
    const xt::xarray<double> xv = uniform({2, 3, 5, 4}, -1, 1, 701);
    tensor<double> w(uniform({4, 3, 3, 3}, -1, 1, 702), true), b(uniform({4}, -1, 1, 703), true);
    const tensor<double> x(xv);  // constant
    const double* first_buffer = nullptr;
    for (int step = 0; step < 3; ++step) {
        INFO("step ", step);
        reset_tape<double>();
        tensor<double> y = conv2d(x, w, b, padded(1));
        const node<double>* cols = y.node_ptr()->inputs[0];
        CHECK(std::string(cols->op) == "unfold2d");
        CHECK(cols->on_tape);
        CHECK_FALSE(cols->requires_grad);
        CHECK(tape<double>::current().stats().nodes == 2);
        if (step == 0) first_buffer = cols->value.data();
        CHECK(cols->value.data() == first_buffer);  // the slot's buffer, not a new one
        const auto g = tape<double>::current().gradient(sum(y * y), {w, b});
        const xt::xarray<double> y_value = y.value(), dw = g[0].value(), db = g[1].value();

        // the same conv with the input requiring grad: the same numbers
        reset_tape<double>();
        tensor<double> x_grad(xv, true);
        tensor<double> y2 = conv2d(x_grad, w, b, padded(1));
        CHECK(y2.value() == y_value);
        const auto g2 = tape<double>::current().gradient(sum(y2 * y2), {w, b});
        CHECK(g2[0].value() == dw);
        CHECK(g2[1].value() == db);
    }
    // second order through the constant input's conv, and a strided one
    expect_grads([&x](const args& t) { return conv2d(x, t[0], t[1], padded(1)); }, {w.value(), b.value()}, true);
    expect_grads([&x](const args& t) { return conv2d(x, t[0], tensor<double>(), padded(0, 2)); }, {w.value()}, true);
}

TEST_CASE("conv2d with nothing to record returns a leaf that outlives the tape") {
    reset_tape<double>();
    const tensor<double> x(uniform({1, 3, 4, 4}, -1, 1, 711)), w(uniform({2, 3, 3, 3}, -1, 1, 712));
    tensor<double> frozen = conv2d(x, w, tensor<double>(), padded(1));
    const xt::xarray<double> expected = frozen.value();
    tensor<double> in_no_grad;
    tensor<double> trained_w(w.value(), true);
    {
        no_grad guard;
        in_no_grad = conv2d(x, trained_w, tensor<double>(), padded(1));
    }
    CHECK(tape<double>::current().stats().nodes == 0);
    reset_tape<double>();
    CHECK(frozen.value() == expected);
    CHECK(in_no_grad.value() == expected);
    CHECK_FALSE(frozen.requires_grad());
}
