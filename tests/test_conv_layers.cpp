// Convolutional layers (nn/conv_layers.hpp): BatchNorm2d against torch 1.13
// fixtures (tests/fixtures/ops/nn_conv.txt, from scripts/make_op_fixtures.py),
// gradcheck and gradgradcheck, PyTorch's initialisation of Conv2d, a small CNN
// in nn::sequential through an .npz round trip, and the errors.

#include <cmath>
#include <cstdio>
#include <cstring>

#include <doctest/doctest.h>

#include "nn/checkpoint.hpp"
#include "nn/conv_layers.hpp"
#include "tests/check.hpp"
#include "tests/op_fixtures.hpp"

using namespace tapegrad;
using args = std::vector<tensor<double>>;
using ints = std::vector<std::size_t>;
using tapegrad::testing::expect_grads;
using tapegrad::testing::uniform;

namespace {
// A BatchNorm2d over x's channels with its weight and bias bound to a[1], a[2].
std::shared_ptr<nn::batch_norm2d<double>> bound_bn(const args& a, bool affine = true) {
    auto bn = std::make_shared<nn::batch_norm2d<double>>(a[0].shape()[1], 1e-5, 0.1, affine);
    if (affine) {
        bn->parameter("weight") = a[1];
        bn->parameter("bias") = a[2];
    }
    return bn;
}

template <class T> std::shared_ptr<nn::sequential<T>> small_cnn(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    conv2d_options pad1;
    pad1.padding = {1, 1};
    auto net = std::make_shared<nn::sequential<T>>();
    net->push_back(std::make_shared<nn::unflatten<T>>(std::vector<std::size_t>{1, 6, 6}));
    net->push_back(std::make_shared<nn::conv2d<T>>(1, 4, std::array<std::size_t, 2>{3, 3}, rng, pad1));
    net->push_back(std::make_shared<nn::batch_norm2d<T>>(4));
    net->push_back(std::make_shared<nn::activation_module<T>>(nn::activation::tanh));
    net->push_back(std::make_shared<nn::max_pool2d<T>>(std::array<std::size_t, 2>{2, 2}));
    net->push_back(std::make_shared<nn::avg_pool2d<T>>(std::array<std::size_t, 2>{3, 3}, std::array<std::size_t, 2>{1, 1},
                                                       std::array<std::size_t, 2>{1, 1}));
    net->push_back(std::make_shared<nn::flatten<T>>());
    net->push_back(std::make_shared<nn::linear<T>>(36, 3, rng));
    return net;
}
}  // namespace

TEST_CASE("torch fixtures: BatchNorm2d in training and eval mode, running statistics") {
    using tapegrad::testing::check_op_fixtures;
    check_op_fixtures(
        "nn_conv",
        {
            {"bn2d_train", [](const args& a, const ints&) { return (*bound_bn(a))(a[0]); }},
            {"bn2d_train_no_affine", [](const args& a, const ints&) { return (*bound_bn(a, false))(a[0]); }},
            {"bn2d_train_extremes", [](const args& a, const ints&) { return (*bound_bn(a))(a[0]); }},
            {"bn2d_eval",
             [](const args& a, const ints&) {
                 auto bn = bound_bn(a);
                 bn->running_mean().mutable_value() = a[3].value();
                 bn->running_var().mutable_value() = a[4].value();
                 bn->eval();
                 return (*bn)(a[0]);
             }},
            {"bn2d_running",
             [](const args& a, const ints&) {
                 nn::batch_norm2d<double> bn(a[0].shape()[1]);
                 bn(a[0]);
                 const std::size_t c = a[0].shape()[1];
                 xt::xarray<double> both = xt::zeros<double>({2 * c});
                 for (std::size_t k = 0; k < c; ++k) {
                     both(k) = bn.running_mean().value()(k);
                     both(c + k) = bn.running_var().value()(k);
                 }
                 return tensor<double>(both);
             }},
        });
}

TEST_CASE("BatchNorm2d: gradcheck and gradgradcheck, training and eval") {
    for (const shape_t& xs : {shape_t{2, 3, 2, 3}, shape_t{1, 2, 3, 1}, shape_t{4, 1, 1, 1}}) {
        CAPTURE(shape_str(xs));
        const std::size_t c = xs[1];
        const std::vector<xt::xarray<double>> in = {uniform(xs, -2, 2, 7), uniform({c}, 0.5, 1.5, 8),
                                                    uniform({c}, -1, 1, 9)};
        expect_grads([](const args& a) { return (*bound_bn(a))(a[0]); }, in, true);
        expect_grads(
            [](const args& a) {
                auto bn = bound_bn(a);
                bn->eval();
                return (*bn)(a[0]);
            },
            in, true);
    }
}

TEST_CASE("Conv2d: PyTorch's default initialisation, U(-b, b) with b = 1/sqrt(in/groups * kh * kw)") {
    struct config {
        std::size_t in, out, groups;
        std::array<std::size_t, 2> kernel;
    };
    for (const config& c : {config{32, 64, 1, {3, 3}}, config{16, 32, 4, {5, 3}}}) {
        CAPTURE(c.in);
        CAPTURE(c.groups);
        std::mt19937_64 rng(3);
        conv2d_options o;
        o.groups = c.groups;
        nn::conv2d<float> layer(c.in, c.out, c.kernel, rng, o);
        const double bound = 1.0 / std::sqrt(double(c.in / c.groups * c.kernel[0] * c.kernel[1]));
        const auto& w = layer.weight().value();
        CHECK(shape_str(w.shape()) == shape_str(shape_t{c.out, c.in / c.groups, c.kernel[0], c.kernel[1]}));
        double worst = 0, square = 0;
        for (float v : w) worst = std::max(worst, double(std::abs(v))), square += double(v) * v;
        CHECK(worst <= bound);
        CHECK(worst > 0.99 * bound);
        // the variance of U(-b, b) is b^2/3
        CHECK(square / double(w.size()) == doctest::Approx(bound * bound / 3).epsilon(0.05));
        const auto& b = layer.parameter("bias").value();
        REQUIRE(b.size() == c.out);
        for (float v : b) CHECK(std::abs(v) <= bound);
        CHECK(xt::amax(xt::abs(b))() > 0.5 * bound);
    }
    // Kaiming normal: s = sqrt(2 / fan_in), zero bias
    std::mt19937_64 rng(4);
    nn::conv2d<double> k(8, 64, {3, 3}, rng, {}, true, nn::init::kaiming_normal);
    const auto& w = k.weight().value();
    double square = 0;
    for (double v : w) square += v * v;
    CHECK(square / double(w.size()) == doctest::Approx(2.0 / 72).epsilon(0.05));
    CHECK(xt::amax(xt::abs(k.parameter("bias").value()))() == 0.0);
}

TEST_CASE("Conv2d: the forward is conv2d of the layer's weight and bias; names describe the options") {
    std::mt19937_64 rng(5);
    conv2d_options o;
    o.stride = {2, 1};
    o.padding = {1, 0};
    nn::conv2d<double> layer(2, 3, {3, 2}, rng, o);
    const tensor<double> x(uniform({2, 2, 5, 4}, -1, 1, 6));
    const auto y = layer(x).value();
    const auto want = conv2d(x, layer.weight(), layer.parameter("bias"), o).value();
    CHECK(y == want);
    CHECK(layer.type_name() == "Conv2d(2 -> 3, kernel=(3, 2), stride=(2, 1), padding=(1, 0))");
    conv2d_options same;
    same.same = true;
    CHECK(nn::conv2d<float>(4, 4, {3, 3}, rng, same, false).type_name() ==
          "Conv2d(4 -> 4, kernel=(3, 3), padding=same, bias=false)");
    CHECK(nn::max_pool2d<float>({2, 2}).type_name() == "MaxPool2d(kernel=(2, 2), stride=(2, 2))");
    CHECK(nn::avg_pool2d<float>({3, 3}, {1, 1}, {1, 1}).type_name() ==
          "AvgPool2d(kernel=(3, 3), stride=(1, 1), padding=(1, 1))");
    CHECK(nn::batch_norm2d<float>(8).type_name() == "BatchNorm2d(8, eps=1e-05, momentum=0.1)");
    CHECK(nn::unflatten<float>({1, 28, 28}).type_name() == "Unflatten(1, 1, 28, 28)");
}

TEST_CASE("a CNN in nn::sequential: names, gradcheck, and an .npz round trip with BatchNorm2d's buffers") {
    auto a = small_cnn<double>(1);
    std::vector<std::string> names;
    for (const auto& [n, t] : a->named_parameters()) names.push_back(n);
    CHECK(names == std::vector<std::string>{"1.weight", "1.bias", "2.weight", "2.bias", "7.weight", "7.bias"});
    std::vector<std::string> buffers;
    for (const auto& [n, t] : a->named_buffers()) buffers.push_back(n);
    CHECK(buffers == std::vector<std::string>{"2.running_mean", "2.running_var"});
    CHECK(a->parameter_count() == 4 * 9 + 4 + 4 + 4 + 36 * 3 + 3);

    // the whole network, in training mode, against finite differences in its input
    const xt::xarray<double> x = uniform({3, 36}, -1, 1, 10);
    expect_grads([&](const args& in) { return (*a)(in[0]); }, {x});

    // one training forward moves the running statistics; eval uses them
    reset_tape<double>();
    (*a)(tensor<double>(x));
    CHECK(a->named_buffers()[0].second.value() != xt::xarray<double>(xt::zeros<double>({4})));
    const std::string path = "test_conv_layers_round_trip.npz";
    nn::save_npz(*a, path);
    auto b = small_cnn<double>(2);
    CHECK(b->parameters()[0].value() != a->parameters()[0].value());
    nn::load_npz(*b, path);
    std::remove(path.c_str());
    a->eval();
    b->eval();
    reset_tape<double>();
    const auto ya = (*a)(tensor<double>(x)).value(), yb = (*b)(tensor<double>(x)).value();
    REQUIRE(ya.shape() == yb.shape());
    CHECK(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(double)) == 0);  // bit for bit
    // eval mode really uses the running statistics: a batch of one sample works and
    // gives that sample's row of the batch's output
    xt::xarray<double> first = xt::zeros<double>({1, 36});
    std::copy(x.data(), x.data() + 36, first.data());
    const auto y0 = (*a)(tensor<double>(first)).value();
    for (std::size_t j = 0; j < 3; ++j) CHECK(y0(0, j) == doctest::Approx(ya(0, j)).epsilon(1e-14));
    reset_tape<double>();
}

TEST_CASE("conv layers: clear errors naming the layer and the shapes") {
    std::mt19937_64 rng(1);
    nn::conv2d<float> c(3, 8, {3, 3}, rng);
    const tensor<float> x(xt::xarray<float>(xt::zeros<float>({2, 4, 5, 5})));
    CHECK_THROWS_WITH_AS(c(x), doctest::Contains("conv2d: 1 group(s) need the input's 4 channels"), shape_error);
    CHECK_THROWS_WITH_AS(c(x), doctest::Contains("input [2, 4, 5, 5], weight [8, 3, 3, 3]"), shape_error);
    nn::batch_norm2d<float> bn(3);
    CHECK_THROWS_WITH_AS(bn(x), "BatchNorm2d(3, eps=1e-05, momentum=0.1): input of shape [2, 4, 5, 5] must be [N, 3, H, W]",
                         shape_error);
    const tensor<float> one(xt::xarray<float>(xt::zeros<float>({1, 3, 1, 1})));
    CHECK_THROWS_WITH_AS(bn(one), doctest::Contains("training mode needs more than 1 value per channel"), shape_error);
    nn::unflatten<float> u({1, 28, 28});
    const tensor<float> flat(xt::xarray<float>(xt::zeros<float>({2, 64})));
    CHECK_THROWS_WITH_AS(u(flat), "Unflatten(1, 1, 28, 28): input of shape [2, 64] must be [N, 784] to become [N, 1, 28, 28]",
                         shape_error);
    CHECK_THROWS_WITH_AS(nn::conv2d<float>(6, 4, {3, 3}, rng, [] {
                             conv2d_options o;
                             o.groups = 4;
                             return o;
                         }()),
                         "Conv2d: groups = 4 must divide both 6 input and 4 output channels", std::invalid_argument);
    CHECK_THROWS_WITH_AS(nn::max_pool2d<float>({0, 2}), "MaxPool2d: kernel (0, 2) must be at least 1", std::invalid_argument);
    nn::max_pool2d<float> big({7, 7});
    CHECK_THROWS_WITH_AS(big(x), doctest::Contains("max_pool2d: the kernel spans 7 along the height"), shape_error);
}
