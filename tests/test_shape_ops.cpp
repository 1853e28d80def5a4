// squeeze, unsqueeze, flip, pad, strided slices, gather and index_select along any
// axis: values, gradcheck + gradgradcheck, and errors naming the op and shapes.

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;
using xt::xarray;
using args = std::vector<tensor<double>>;

namespace {
// f(x) * w with a fixed random w, so every output element has its own weight in the check
tensor<double> weighted(const tensor<double>& y, unsigned seed) {
    return y * tensor<double>(uniform(y.shape(), -1, 1, seed));
}
}  // namespace

TEST_CASE("squeeze and unsqueeze") {
    tensor<double> x(uniform({1, 3, 1, 2}, -1, 1, 301));
    CHECK(squeeze(x).shape() == shape_t{3, 2});
    CHECK(squeeze(x, {0}).shape() == shape_t{3, 1, 2});
    CHECK(squeeze(x, {-2, 0}).shape() == shape_t{3, 2});
    CHECK(unsqueeze(x, 0).shape() == shape_t{1, 1, 3, 1, 2});
    CHECK(unsqueeze(x, -1).shape() == shape_t{1, 3, 1, 2, 1});
    CHECK(unsqueeze(tensor<double>::scalar(2.0), 0).shape() == shape_t{1});
    CHECK(squeeze(x).value() == xarray<double>(xt::reshape_view(x.value(), {3, 2})));
    expect_grads([](const args& t) { return weighted(unsqueeze(squeeze(t[0], {2}), 1), 1); }, {x.value()}, true);
    CHECK_THROWS_WITH_AS(squeeze(x, {1}), doctest::Contains("squeeze: axis 1 of shape [1, 3, 1, 2] has size 3, not 1"),
                         shape_error);
    CHECK_THROWS_WITH_AS(unsqueeze(x, 5), doctest::Contains("unsqueeze: axis 5 is out of range for a tensor of rank 5"),
                         shape_error);
}

TEST_CASE("flip along one or several axes") {
    xarray<double> v{{1, 2, 3}, {4, 5, 6}};
    CHECK(flip(tensor<double>(v), {1}).value() == xarray<double>{{3, 2, 1}, {6, 5, 4}});
    CHECK(flip(tensor<double>(v), {0, -1}).value() == xarray<double>{{6, 5, 4}, {3, 2, 1}});
    CHECK(flip(tensor<double>(v), {}).value() == v);
    xarray<double> x = uniform({2, 3, 5}, -1, 1, 311);
    for (std::vector<int> a : {std::vector<int>{0}, {2}, {-2}, {0, 1, 2}})
        expect_grads([a](const args& t) { return weighted(flip(t[0], a), 2) * t[0]; }, {x}, true);
    CHECK_THROWS_WITH_AS(flip(tensor<double>(v), {2}), doctest::Contains("flip: axis 2 is out of range for a tensor of rank 2"),
                         shape_error);
    CHECK_THROWS_WITH_AS(flip(tensor<double>(v), {1, -1}), doctest::Contains("flip: axis -1 is listed twice"), shape_error);
}

TEST_CASE("pad with a constant") {
    xarray<double> v{{1, 2}, {3, 4}};
    CHECK(pad(tensor<double>(v), {{1, 0}, {0, 2}}, -1.0).value() ==
          xarray<double>{{-1, -1, -1, -1}, {1, 2, -1, -1}, {3, 4, -1, -1}});
    CHECK(pad(tensor<double>(v), {{0, 0}, {0, 0}}).value() == v);
    xarray<double> x = uniform({2, 3, 4}, -1, 1, 321);
    expect_grads([](const args& t) { return weighted(pad(t[0], {{0, 1}, {2, 0}, {1, 3}}, 0.5), 3) * weighted(pad(t[0], {{0, 1}, {2, 0}, {1, 3}}), 4); },
                 {x}, true);
    CHECK_THROWS_WITH_AS(pad(tensor<double>(v), {{1, 1}}), doctest::Contains("pad: 1 (before, after) pairs for a tensor of shape [2, 2]"),
                         shape_error);
}

TEST_CASE("strided slices") {
    xarray<double> v{{0, 1, 2, 3, 4, 5, 6}, {7, 8, 9, 10, 11, 12, 13}};
    CHECK(slice(tensor<double>(v), 1, 1, 7, 2).value() == xarray<double>{{1, 3, 5}, {8, 10, 12}});
    CHECK(slice(tensor<double>(v), -1, 0, 7, 3).value() == xarray<double>{{0, 3, 6}, {7, 10, 13}});
    CHECK(slice(tensor<double>(v), 1, 2, 2, 2).shape() == shape_t{2, 0});
    CHECK(slice(tensor<double>(v), 0, 1, 2, 5).value() == xarray<double>{{7, 8, 9, 10, 11, 12, 13}});
    xarray<double> x = uniform({4, 7, 3}, -1, 1, 331);
    for (int axis : {0, 1, -1})
        expect_grads([axis](const args& t) { return weighted(slice(t[0], axis, 1, 3 + (axis == 1 ? 4 : 0), 2), 5) * slice(t[0], axis, 0, 2 + (axis == 1 ? 4 : 0), 2); },
                     {x}, true);
    CHECK_THROWS_WITH_AS(slice(tensor<double>(v), 1, 0, 8, 2), doctest::Contains("slice: range [0, 8) is out of bounds for axis 1 of shape [2, 7]"),
                         shape_error);
    CHECK_THROWS_WITH_AS(slice(tensor<double>(v), 1, 0, 4, 0), doctest::Contains("slice: step must be at least 1"),
                         std::invalid_argument);
}

TEST_CASE("gather along any axis, with repeated indices") {
    xarray<double> v{{1, 2, 3}, {4, 5, 6}};
    xt::xarray<std::size_t> i1{{2, 2}, {0, 1}};
    CHECK(gather(tensor<double>(v), 1, i1).value() == xarray<double>{{3, 3}, {4, 5}});
    xt::xarray<std::size_t> i0{{1, 0, 1}};
    CHECK(gather(tensor<double>(v), 0, i0).value() == xarray<double>{{4, 2, 6}});
    // repeated indices scatter-add their gradients
    tensor<double> w(v, true);
    sum(gather(w, -1, i1)).backward();
    CHECK(w.grad() == xarray<double>{{0, 0, 2}, {1, 1, 0}});
    xarray<double> x = uniform({3, 4, 5}, -1, 1, 341);
    xt::xarray<std::size_t> idx = xt::zeros<std::size_t>({2, 4, 3});
    for (std::size_t k = 0; k < idx.size(); ++k) idx.data()[k] = (k * 7 + 1) % 3;
    expect_grads([idx](const args& t) { return weighted(gather(t[0], 0, idx), 6) * gather(t[0], 0, idx); }, {x}, true);
    xt::xarray<std::size_t> idx2 = xt::zeros<std::size_t>({3, 4, 6});
    for (std::size_t k = 0; k < idx2.size(); ++k) idx2.data()[k] = (k * 3 + 2) % 5;
    expect_grads([idx2](const args& t) { return weighted(gather(t[0], -1, idx2), 7) * gather(t[0], 2, idx2); }, {x}, true);
    CHECK_THROWS_WITH_AS(gather(tensor<double>(v), 1, xt::xarray<std::size_t>{1, 2}),
                         doctest::Contains("gather: index of shape [2] does not fit input of shape [2, 3]"), shape_error);
    CHECK_THROWS_WITH_AS(gather(tensor<double>(v), 1, xt::xarray<std::size_t>(xt::ones<std::size_t>({1, 1}) * 3)),
                         doctest::Contains("gather: index value 3 at flat position 0 is out of range for axis 1"),
                         std::out_of_range);
}

TEST_CASE("index_select along any axis") {
    xarray<double> v{{1, 2, 3}, {4, 5, 6}};
    CHECK(index_select(tensor<double>(v), 1, {2, 0, 2}).value() == xarray<double>{{3, 1, 3}, {6, 4, 6}});
    CHECK(index_select(tensor<double>(v), -2, {1}).value() == xarray<double>{{4, 5, 6}});
    xarray<double> x = uniform({3, 4, 5}, -1, 1, 351);
    for (int axis : {0, 1, 2, -1})
        expect_grads([axis](const args& t) { return weighted(index_select(t[0], axis, {1, 0, 1}), 8) * index_select(t[0], axis, {2, 2, 0}); },
                     {x}, true);
    CHECK_THROWS_WITH_AS(index_select(tensor<double>(v), 1, {3}),
                         doctest::Contains("index_select: index 3 at position 0 is out of range for axis 1 of shape [2, 3]"),
                         std::out_of_range);
    CHECK_THROWS_WITH_AS(index_select(tensor<double>(v), 2, {0}), doctest::Contains("index_select: axis 2 is out of range"),
                         shape_error);
}
