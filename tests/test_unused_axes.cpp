// Inputs the output does not depend on (tape.gradient's zeros, allow_unused = false,
// .grad() of a leaf never reached) and the one axis type: negative axes everywhere,
// permute included, and out-of-range axes named with the op and the rank.

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using xt::xarray;

TEST_CASE("tape.gradient gives an unused input zeros of its shape; allow_unused = false names it") {
    reset_tape<double>();
    auto& tp = tape<double>::current();
    tensor<double> x(xarray<double>{1.0, 2.0}, true), unused(xt::ones<double>({2, 3}), true);
    tensor<double> loss = sum(x * x);
    auto g = tp.gradient(loss, {x, unused});
    CHECK(g[0].value() == xarray<double>{2.0, 4.0});
    CHECK(g[1].shape() == shape_t{2, 3});
    CHECK(xt::all(xt::equal(g[1].value(), 0.0)));
    // Also with create_graph.
    auto gg = tp.gradient(loss, {x, unused}, {true});
    CHECK(xt::all(xt::equal(gg[1].value(), 0.0)));

    gradient_options strict;
    strict.allow_unused = false;
    CHECK_THROWS_WITH_AS(tp.gradient(loss, {x, unused}, strict),
                         doctest::Contains("input 1 of wrt (leaf of shape [2, 3]) is not used to compute the output"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(tp.gradient(loss, {x, unused}, strict), doctest::Contains("allow_unused = true"),
                         std::invalid_argument);
    // A used input passes the strict check, and so does one reached only through a zero-gradient op.
    CHECK(tp.gradient(loss, {x}, strict)[0].value() == xarray<double>{2.0, 4.0});
    CHECK(xt::all(xt::equal(tp.gradient(loss + sum(sign(unused)), {unused}, strict)[0].value(), 0.0)));
    // An intermediate result that does not lead to the loss is named by its op.
    tensor<double> side = exp(x);
    CHECK_THROWS_WITH_AS(tp.gradient(loss, {side}, strict), doctest::Contains("result of op 'exp' of shape [2]"),
                         std::invalid_argument);
}

TEST_CASE(".grad() of a leaf that backward() never reached is a clear error, the same every time") {
    reset_tape<double>();
    tensor<double> x(xarray<double>{1.0, 2.0}, true), unused(xarray<double>{5.0}, true);
    sum(x * 3.0).backward();
    CHECK(x.has_grad());
    CHECK_FALSE(unused.has_grad());
    CHECK_THROWS_WITH_AS(unused.grad(), doctest::Contains("has no gradient"), std::logic_error);
    CHECK_THROWS_WITH_AS(unused.mutable_grad(), doctest::Contains("loss that depends on it"), std::logic_error);
    // Still no gradient after a second backward, and zero_grad keeps it so for the reached one.
    sum(x * 3.0).backward();
    CHECK_FALSE(unused.has_grad());
    CHECK(x.grad() == xarray<double>{6.0, 6.0});
    x.zero_grad();
    CHECK_THROWS_AS(x.grad(), std::logic_error);
    // A leaf reached through a zero-gradient op does get zeros (as PyTorch).
    sum(sign(unused) + x).backward();
    CHECK(unused.grad() == xarray<double>{0.0});
}

TEST_CASE("negative axes are accepted by every axis-taking op, permute included") {
    reset_tape<double>();
    const xarray<double> v = testing::uniform({2, 3, 4}, -1, 1, 3);
    tensor<double> x(v);
    auto same = [](const tensor<double>& a, const tensor<double>& b) {
        CHECK(a.shape() == b.shape());
        CHECK(a.value() == b.value());
    };
    same(permute(x, {-1, 0, -2}), permute(x, {2, 0, 1}));
    same(sum(x, {-1}), sum(x, {2}));
    same(mean(x, {-3, -1}, true), mean(x, {0, 2}, true));
    same(max(x, {-2}), max(x, {1}));
    same(min(x, {-2}), min(x, {1}));
    same(logsumexp(x, -1), logsumexp(x, 2));
    same(softmax(x, -2), softmax(x, 1));
    same(log_softmax(x, -3), log_softmax(x, 0));
    same(slice(x, -1, 1, 3), slice(x, 2, 1, 3));
    same(concat<double>({x, x}, -1), concat<double>({x, x}, 2));
    same(stack<double>({x, x}, -1), stack<double>({x, x}, 3));
    const axes_t axes{-1, 0, 1};  // the one axis type: std::vector<axis_t>, axis_t = int
    same(permute(x, axes), permute(x, {2, 0, 1}));
    testing::expect_grads([](const std::vector<tensor<double>>& a) { return permute(a[0], {-1, -3, 1}); }, {v},
                          true);
}

TEST_CASE("an out-of-range axis names the op, the axis and the rank") {
    tensor<double> x(xt::zeros<double>({2, 3}));
    CHECK_THROWS_WITH_AS(permute(x, {0, 2}), doctest::Contains("permute: axis 2 is out of range for a tensor of rank 2"),
                         shape_error);
    CHECK_THROWS_WITH_AS(permute(x, {-3, 0}), doctest::Contains("permute: axis -3 is out of range"), shape_error);
    CHECK_THROWS_WITH_AS(permute(x, {1, -1}), doctest::Contains("permute: axes [1, -1] are not a permutation of 0..1 for shape [2, 3] (axis -1 appears twice)"), shape_error);
    CHECK_THROWS_WITH_AS(permute(x, {0}), doctest::Contains("permute: 1 axes given for a tensor of rank 2"),
                         shape_error);
    CHECK_THROWS_WITH_AS(sum(x, {-3}), doctest::Contains("sum: axis -3 is out of range for a tensor of rank 2"),
                         shape_error);
    CHECK_THROWS_WITH_AS(mean(x, {2}), doctest::Contains("mean: axis 2"), shape_error);
    CHECK_THROWS_WITH_AS(max(x, {5}), doctest::Contains("max: axis 5"), shape_error);
    CHECK_THROWS_WITH_AS(softmax(x, 2), doctest::Contains("softmax: axis 2 is out of range for a tensor of rank 2"),
                         shape_error);
    CHECK_THROWS_WITH_AS(logsumexp(x, -3), doctest::Contains("logsumexp: axis -3"), shape_error);
    CHECK_THROWS_WITH_AS(slice(x, 2, 0, 1), doctest::Contains("slice: axis 2"), shape_error);
    CHECK_THROWS_WITH_AS(concat<double>({x, x}, -3), doctest::Contains("concat: axis -3"), shape_error);
    CHECK_THROWS_WITH_AS(stack<double>({x, x}, 3), doctest::Contains("stack: axis 3 is out of range for a tensor of rank 3"),
                         shape_error);
}
