// conv2d, max/avg pooling, adaptive_avg_pool2d and flatten (autograd/conv.hpp):
// torch 1.13 fixtures to 1e-10 in float64 (tests/fixtures/ops/conv.txt, from
// scripts/make_op_fixtures.py), gradcheck and gradgradcheck across strides,
// paddings, dilations, groups and odd sizes, the tie rule, and the errors.

#include <cmath>
#include <limits>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"
#include "tests/op_fixtures.hpp"

using namespace tapegrad;
using tapegrad::testing::check_op_fixtures;
using args = std::vector<tensor<double>>;
using ints = std::vector<std::size_t>;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;

namespace {
conv2d_options conv(std::array<std::size_t, 2> stride, std::array<std::size_t, 2> padding,
                    std::array<std::size_t, 2> dilation = {1, 1}, std::size_t groups = 1) {
    conv2d_options o;
    o.stride = stride;
    o.padding = padding;
    o.dilation = dilation;
    o.groups = groups;
    return o;
}
conv2d_options same(std::array<std::size_t, 2> dilation = {1, 1}) {
    conv2d_options o;
    o.same = true;
    o.dilation = dilation;
    return o;
}
const tensor<double> none;
}  // namespace

TEST_CASE("torch fixtures: conv2d, pooling and flatten") {
    using fn = tapegrad::testing::fixture_fn;
    auto c3 = [](conv2d_options o) -> fn {
        return [o](const args& x, const ints&) { return conv2d(x[0], x[1], x[2], o); };
    };
    auto c2 = [](conv2d_options o) -> fn {
        return [o](const args& x, const ints&) { return conv2d(x[0], x[1], none, o); };
    };
    const double worst = check_op_fixtures(
        "conv",
        {
            {"conv_basic", c3({})},
            {"conv_stride2_pad1", c3(conv({2, 2}, {1, 1}))},
            {"conv_stride_2x1_pad_1x2", c2(conv({2, 1}, {1, 2}))},
            {"conv_dilation2", c3(conv({1, 1}, {2, 2}, {2, 2}))},
            {"conv_groups3", c3(conv({1, 1}, {1, 1}, {1, 1}, 3))},
            {"conv_depthwise", c2(conv({2, 2}, {0, 0}, {1, 1}, 4))},
            {"conv_same_odd", c2(same())},
            {"conv_same_even_dilated", c2(same({1, 2}))},
            {"conv_1x1", c2({})},
            {"conv_extremes", c2(conv({1, 1}, {1, 1}))},
            {"max_pool_2", [](const args& x, const ints&) { return max_pool2d(x[0], {2, 2}); }},
            {"max_pool_3_s2_p1", [](const args& x, const ints&) { return max_pool2d(x[0], {3, 3}, {2, 2}, {1, 1}); }},
            {"max_pool_2x3_s1", [](const args& x, const ints&) { return max_pool2d(x[0], {2, 3}, {1, 1}); }},
            {"max_pool_ties", [](const args& x, const ints&) { return max_pool2d(x[0], {2, 2}); }},
            {"max_pool_ties_overlap", [](const args& x, const ints&) { return max_pool2d(x[0], {2, 2}, {1, 1}); }},
            {"avg_pool_2", [](const args& x, const ints&) { return avg_pool2d(x[0], {2, 2}); }},
            {"avg_pool_3_s2_p1", [](const args& x, const ints&) { return avg_pool2d(x[0], {3, 3}, {2, 2}, {1, 1}); }},
            {"adaptive_avg_1x1", [](const args& x, const ints&) { return adaptive_avg_pool2d_1x1(x[0]); }},
            {"flatten", [](const args& x, const ints&) { return flatten(x[0]); }},
            {"conv_pool_net",
             [](const args& x, const ints&) {
                 const tensor<double> h = tanh(conv2d(x[0], x[1], x[2], conv({1, 1}, {1, 1})));
                 return flatten(max_pool2d(relu(conv2d(h, x[3])), {2, 2}));
             }},
        });
    MESSAGE("largest relative difference from torch: " << worst);
}

TEST_CASE("conv2d: gradcheck and gradgradcheck across strides, paddings, dilations, groups and odd sizes") {
    struct config {
        shape_t x, w;
        conv2d_options o;
        bool bias;
    };
    const std::vector<config> configs = {
        {{2, 2, 5, 4}, {3, 2, 3, 3}, {}, true},
        {{1, 3, 7, 5}, {2, 3, 3, 2}, conv({2, 3}, {1, 0}), false},
        {{2, 2, 6, 6}, {2, 2, 2, 3}, conv({1, 2}, {2, 1}, {2, 1}), true},
        {{1, 4, 5, 5}, {6, 2, 3, 3}, conv({1, 1}, {1, 1}, {1, 1}, 2), true},
        {{1, 3, 4, 5}, {3, 1, 2, 2}, conv({1, 1}, {0, 0}, {1, 1}, 3), false},
        {{1, 2, 5, 4}, {2, 2, 4, 3}, same({1, 1}), true},
        {{1, 1, 1, 1}, {2, 1, 1, 1}, {}, true},
    };
    unsigned seed = 1;
    for (const auto& c : configs) {
        CAPTURE(shape_str(c.x));
        CAPTURE(shape_str(c.w));
        std::vector<xt::xarray<double>> in = {uniform(c.x, -1, 1, seed++), uniform(c.w, -1, 1, seed++)};
        if (c.bias) in.push_back(uniform({c.w[0]}, -1, 1, seed++));
        const conv2d_options o = c.o;
        const bool bias = c.bias;
        expect_grads([o, bias](const args& a) { return conv2d(a[0], a[1], bias ? a[2] : none, o); }, in, true);
    }
}

TEST_CASE("unfold2d and fold2d are each other's transpose") {
    window2d w;
    w.kernel = {2, 3};
    w.stride = {2, 1};
    w.pad_before = {1, 0};
    w.pad_after = {0, 2};
    w.dilation = {1, 2};
    const xt::xarray<double> x = uniform({2, 3, 5, 6}, -1, 1, 3);
    const tensor<double> cols = unfold2d(tensor<double>(x), w);
    const xt::xarray<double> c = uniform(cols.shape(), -1, 1, 4);
    // <unfold(x), c> = <x, fold(c)>
    const double left = xt::sum(cols.value() * c)();
    const double right = xt::sum(x * fold2d(tensor<double>(c), 5, 6, w).value())();
    CHECK(left == doctest::Approx(right).epsilon(1e-13));
    expect_grads([w](const args& a) { return unfold2d(a[0], w); }, {x}, true);
    expect_grads([w](const args& a) { return fold2d(a[0], 5, 6, w); }, {c}, true);
}

TEST_CASE("pooling: gradcheck and gradgradcheck, the tie rule, and NaN") {
    unsigned seed = 40;
    for (const shape_t& s : std::vector<shape_t>{{2, 2, 5, 4}, {1, 3, 7, 7}, {1, 1, 2, 3}}) {
        CAPTURE(shape_str(s));
        const xt::xarray<double> x = uniform(s, -1, 1, seed++);  // no ties: finite differences see one winner
        expect_grads([](const args& a) { return max_pool2d(a[0], {2, 2}, {1, 1}); }, {x}, true);
        expect_grads([](const args& a) { return max_pool2d(a[0], {2, 3}, {2, 1}, {1, 1}); }, {x}, true);
        expect_grads([](const args& a) { return avg_pool2d(a[0], {2, 2}, {1, 2}, {1, 0}); }, {x}, true);
        expect_grads([](const args& a) { return adaptive_avg_pool2d_1x1(a[0]); }, {x}, true);
        expect_grads([](const args& a) { return flatten(a[0]) * flatten(a[0]); }, {x}, true);
    }
    // Ties: the first maximum in row-major window order wins and takes the whole gradient.
    tensor<double> x(xt::xarray<double>{{{{2.0, 2.0}, {2.0, 2.0}}}}, true);
    tensor<double> y = max_pool2d(x, {2, 2});
    CHECK(y.item() == 2.0);
    y.backward();
    CHECK(x.grad() == xt::xarray<double>{{{{1.0, 0.0}, {0.0, 0.0}}}});
    reset_tape<double>();
    // -1000 against padding: padding never wins (it is -inf for max, as in PyTorch)
    tensor<double> low(xt::xarray<double>{{{{-1000.0, -1000.0}, {-1000.0, -999.0}}}}, true);
    tensor<double> m = max_pool2d(low, {2, 2}, {1, 1}, {1, 1});
    CHECK(m.value()(0, 0, 0, 0) == -1000.0);
    CHECK(m.value()(0, 0, 1, 1) == -999.0);
    reset_tape<double>();
    // NaN propagates, as in PyTorch
    const double nan = std::numeric_limits<double>::quiet_NaN();
    tensor<double> n(xt::xarray<double>{{{{1.0, nan}, {3.0, 0.0}}}});
    CHECK(std::isnan(max_pool2d(n, {2, 2}).item()));
    // of two NaNs the last takes the gradient (torch 1.13 gives [[0, 0], [1, 0]] for both)
    for (const auto& v : {xt::xarray<double>{{{{nan, 1.0}, {nan, 2.0}}}}, xt::xarray<double>{{{{3.0, nan}, {nan, 2.0}}}}}) {
        reset_tape<double>();
        tensor<double> two(v, true);
        max_pool2d(two, {2, 2}).backward();
        CHECK(two.grad() == xt::xarray<double>{{{{0.0, 0.0}, {1.0, 0.0}}}});
    }
    reset_tape<double>();
}

TEST_CASE("conv2d and pooling: errors name the op and the shapes") {
    const tensor<double> x(xt::zeros<double>({1, 3, 5, 5}));
    CHECK_THROWS_WITH_AS(conv2d(x, tensor<double>(xt::zeros<double>({4, 2, 3, 3}))),
                         "conv2d: 1 group(s) need the input's 3 channels = weight.shape[1] * groups and the weight's 4 "
                         "filters divisible by groups; got input [1, 3, 5, 5], weight [4, 2, 3, 3]",
                         shape_error);
    CHECK_THROWS_WITH_AS(conv2d(x, tensor<double>(xt::zeros<double>({4, 3, 7, 3}))),
                         "conv2d: the kernel spans 7 along the height (kernel (7, 3), dilation (1, 1)), more than the "
                         "padded input's 5 (input [1, 3, 5, 5], padding (0, 0) before, (0, 0) after)",
                         shape_error);
    CHECK_THROWS_WITH_AS(conv2d(x, tensor<double>(xt::zeros<double>({4, 3, 3, 3})), none, conv({0, 1}, {0, 0})),
                         "conv2d: kernel (3, 3), stride (0, 1) and dilation (1, 1) must be at least 1", shape_error);
    CHECK_THROWS_WITH_AS(conv2d(x, tensor<double>(xt::zeros<double>({4, 3, 3, 3})), tensor<double>(xt::zeros<double>({3}))),
                         doctest::Contains("conv2d: bias must be [4] (one per filter); got input [1, 3, 5, 5], weight "
                                           "[4, 3, 3, 3], bias [3]"),
                         shape_error);
    conv2d_options strided_same = same();
    strided_same.stride = {2, 2};
    CHECK_THROWS_WITH_AS(conv2d(x, tensor<double>(xt::zeros<double>({4, 3, 3, 3})), none, strided_same),
                         "conv2d: padding 'same' needs stride 1 (as PyTorch), got stride (2, 2)", shape_error);
    CHECK_THROWS_WITH_AS(conv2d(tensor<double>(xt::zeros<double>({3, 5, 5})), tensor<double>(xt::zeros<double>({4, 3, 3, 3}))),
                         doctest::Contains("conv2d: input must be [N, C, H, W]"), shape_error);
    CHECK_THROWS_WITH_AS(max_pool2d(x, {2, 2}, {0, 0}, {2, 0}),
                         "max_pool2d: padding (2, 0) must be at most half the kernel (2, 2)", shape_error);
    CHECK_THROWS_WITH_AS(avg_pool2d(x, {6, 1}), doctest::Contains("avg_pool2d: the kernel spans 6 along the height"),
                         shape_error);
}
