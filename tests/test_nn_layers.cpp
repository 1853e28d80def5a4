// Closed-form outputs of every layer, initialiser ranges, dropout, norms.

#include <cmath>

#include <doctest/doctest.h>
#include <xtensor/xmath.hpp>

#include "nn/layers.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using nn::activation;

namespace {
void check_close(const xt::xarray<double>& a, const xt::xarray<double>& b, double tol = 1e-12) {
    REQUIRE(a.shape() == b.shape());
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a.flat(i) == doctest::Approx(b.flat(i)).epsilon(tol));
}
}  // namespace

TEST_CASE("linear computes x W^T + b for 2-D and 1-D inputs") {
    std::mt19937_64 rng(1);
    nn::linear<double> fc(2, 3, rng);
    fc.weight().mutable_value() = xt::xarray<double>{{1, 2}, {3, 4}, {5, 6}};
    fc.bias().mutable_value() = xt::xarray<double>{0.5, -1, 2};
    auto y = fc(tensor<double>(xt::xarray<double>{{1, -1}, {2, 0.5}}));
    check_close(y.value(), xt::xarray<double>{{-0.5, -2, 1}, {3.5, 7, 15}});
    auto y1 = fc(tensor<double>(xt::xarray<double>{1, -1}));
    check_close(y1.value(), xt::xarray<double>{-0.5, -2, 1});
    CHECK_THROWS_WITH_AS(fc(tensor<double>(xt::zeros<double>({2, 5}))),
                         "Linear(2 -> 3): input of shape [2, 5] must end in 2 features", shape_error);
    nn::linear<double> nobias(2, 3, rng, nn::init::xavier_uniform, false);
    CHECK(!nobias.has_bias());
    CHECK(nobias.type_name() == "Linear(2 -> 3, bias=false)");
    CHECK_THROWS_WITH_AS(nobias.bias(), "Linear(2 -> 3, bias=false): this layer has no bias", std::logic_error);
    reset_tape<double>();
}

TEST_CASE("initialisers: ranges, spreads, zero biases, seeded") {
    const std::size_t in = 300, out = 200;
    auto stats = [&](nn::init i, unsigned seed) {
        std::mt19937_64 rng(seed);
        nn::linear<double> fc(in, out, rng, i);
        const auto& w = fc.weight().value();
        const double sd = std::sqrt(xt::mean(w * w)());
        return std::make_tuple(xt::amax(xt::abs(w))(), sd, xt::amax(xt::abs(fc.bias().value()))(), w);
    };
    {
        auto [mx, sd, bmax, w] = stats(nn::init::pytorch_default, 1);
        const double bound = 1 / std::sqrt(double(in));
        CHECK(mx <= bound);
        CHECK(mx > 0.99 * bound);
        CHECK(bmax <= bound);
        CHECK(bmax > 0.9 * bound);  // PyTorch also draws the bias
        CHECK(sd == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.02));
    }
    {
        auto [mx, sd, bmax, w] = stats(nn::init::xavier_uniform, 1);
        CHECK(mx <= std::sqrt(6.0 / (in + out)));
        CHECK(sd == doctest::Approx(std::sqrt(2.0 / (in + out))).epsilon(0.02));
        CHECK(bmax == 0);
    }
    {
        auto [mx, sd, bmax, w] = stats(nn::init::xavier_normal, 1);
        CHECK(sd == doctest::Approx(std::sqrt(2.0 / (in + out))).epsilon(0.02));
        CHECK(bmax == 0);
    }
    {
        auto [mx, sd, bmax, w] = stats(nn::init::kaiming_uniform, 1);
        CHECK(mx <= std::sqrt(6.0 / in));
        CHECK(sd == doctest::Approx(std::sqrt(2.0 / in)).epsilon(0.02));
    }
    {
        auto [mx, sd, bmax, w] = stats(nn::init::kaiming_normal, 1);
        CHECK(sd == doctest::Approx(std::sqrt(2.0 / in)).epsilon(0.02));
    }
    CHECK(std::get<3>(stats(nn::init::xavier_normal, 7)) == std::get<3>(stats(nn::init::xavier_normal, 7)));
    CHECK(std::get<3>(stats(nn::init::xavier_normal, 7)) != std::get<3>(stats(nn::init::xavier_normal, 8)));
}

TEST_CASE("activation modules match their scalar formulas") {
    const xt::xarray<double> x{-2.0, -0.5, 0.3, 1.5};
    auto apply = [&](activation a) { return nn::activation_module<double>(a)(tensor<double>(x)).value(); };
    auto map = [&](auto f) {
        xt::xarray<double> y = x;
        for (auto& v : y) v = f(v);
        return y;
    };
    check_close(apply(activation::relu), map([](double v) { return v > 0 ? v : 0; }));
    check_close(apply(activation::leaky_relu), map([](double v) { return v > 0 ? v : 0.01 * v; }));
    check_close(nn::activation_module<double>(activation::leaky_relu, 0.2)(tensor<double>(x)).value(),
                map([](double v) { return v > 0 ? v : 0.2 * v; }));
    check_close(apply(activation::elu), map([](double v) { return v > 0 ? v : std::exp(v) - 1; }));
    check_close(apply(activation::gelu), map([](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }));
    check_close(apply(activation::tanh), map([](double v) { return std::tanh(v); }));
    check_close(apply(activation::sigmoid), map([](double v) { return 1 / (1 + std::exp(-v)); }));
    check_close(apply(activation::softplus), map([](double v) { return std::log1p(std::exp(v)); }));
    const double z = std::exp(-2.0) + std::exp(-0.5) + std::exp(0.3) + std::exp(1.5);
    check_close(apply(activation::softmax), map([&](double v) { return std::exp(v) / z; }));
    check_close(apply(activation::log_softmax), map([&](double v) { return v - std::log(z); }));
    CHECK(nn::activation_module<double>(activation::elu, 0.5).type_name() == "ELU(alpha=0.5)");
    CHECK(nn::activation_module<double>(activation::log_softmax).type_name() == "LogSoftmax(dim=-1)");
}

TEST_CASE("dropout: seeded masks in training mode, identity in eval mode") {
    const xt::xarray<double> ones = xt::ones<double>({2000});
    nn::dropout<double> d(0.25, 42);
    CHECK(d.type_name() == "Dropout(p=0.25)");
    auto y = d(tensor<double>(ones)).value();
    std::size_t zeros = 0;
    for (double v : y) {
        CHECK((v == 0 || v == doctest::Approx(1 / 0.75)));
        zeros += v == 0;
    }
    CHECK(zeros > 450);  // 2000 * 0.25 = 500 expected
    CHECK(zeros < 550);
    CHECK(xt::sum(y)() != doctest::Approx(0));
    // the same seed gives the same mask; the next call a different one
    nn::dropout<double> again(0.25, 42);
    CHECK(again(tensor<double>(ones)).value() == y);
    CHECK(again(tensor<double>(ones)).value() != y);
    again.reseed(42);
    CHECK(again(tensor<double>(ones)).value() == y);
    d.eval();
    CHECK(d(tensor<double>(ones)).value() == ones);
    CHECK_THROWS_WITH_AS(nn::dropout<double>(1.0), "Dropout: invalid probability 1 (must be in [0, 1))",
                         std::invalid_argument);
    reset_tape<double>();
}

TEST_CASE("layer_norm normalises each row with the biased variance") {
    nn::layer_norm<double> ln(3);
    ln.parameter("weight").mutable_value() = xt::xarray<double>{1, 2, 0.5};
    ln.parameter("bias").mutable_value() = xt::xarray<double>{0, 1, -1};
    auto y = ln(tensor<double>(xt::xarray<double>{{1, 2, 3}, {2, 4, 6}})).value();
    const double s1 = std::sqrt(2.0 / 3 + 1e-5), s2 = std::sqrt(8.0 / 3 + 1e-5);
    check_close(y, xt::xarray<double>{{-1 / s1, 1, 0.5 / s1 - 1}, {-2 / s2, 1, 1 / s2 - 1}});
    CHECK(ln.type_name() == "LayerNorm(3, eps=1e-05)");
    CHECK_THROWS_WITH_AS(ln(tensor<double>(xt::zeros<double>({2, 4}))),
                         "LayerNorm(3, eps=1e-05): input of shape [2, 4] must end in 3", shape_error);
    reset_tape<double>();
}

TEST_CASE("batch_norm1d: batch statistics in training, running statistics in eval") {
    nn::batch_norm1d<double> bn(2);
    const xt::xarray<double> x{{1, 10}, {2, 20}, {3, 30}, {4, 40}};
    auto y = bn(tensor<double>(x)).value();
    // column 0: mean 2.5, biased var 1.25, unbiased 5/3; column 1 is 10x
    const double s0 = std::sqrt(1.25 + 1e-5), s1 = std::sqrt(125 + 1e-5);
    check_close(y, xt::xarray<double>{{-1.5 / s0, -15 / s1}, {-0.5 / s0, -5 / s1}, {0.5 / s0, 5 / s1}, {1.5 / s0, 15 / s1}});
    check_close(bn.running_mean().value(), xt::xarray<double>{0.25, 2.5});
    check_close(bn.running_var().value(), xt::xarray<double>{0.9 + 0.1 * 5 / 3, 0.9 + 0.1 * 500 / 3});
    // eval: the running statistics, and the buffers stay put
    bn.eval();
    const xt::xarray<double> rm = bn.running_mean().value(), rv = bn.running_var().value();
    auto e = bn(tensor<double>(xt::xarray<double>{{1, 10}})).value();
    check_close(e, xt::xarray<double>{{(1 - rm(0)) / std::sqrt(rv(0) + 1e-5), (10 - rm(1)) / std::sqrt(rv(1) + 1e-5)}});
    CHECK(bn.running_mean().value() == rm);
    bn.train();
    CHECK_THROWS_WITH_AS(bn(tensor<double>(xt::xarray<double>{{1, 10}})),
                         "BatchNorm1d(2, eps=1e-05, momentum=0.1): training mode needs more than 1 sample per "
                         "channel, got input [1, 2] (use eval() for single samples)",
                         shape_error);
    CHECK_THROWS_WITH_AS(bn(tensor<double>(xt::zeros<double>({4, 3}))),
                         "BatchNorm1d(2, eps=1e-05, momentum=0.1): input of shape [4, 3] must be [N, 2]", shape_error);
    reset_tape<double>();
}
