// gradcheck of every layer in float64, with respect to the input and every
// parameter: the layer's parameters are bound to gradcheck's inputs.

#include <doctest/doctest.h>

#include "nn/layers.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using nn::activation;

namespace {

// Inputs: x, then every parameter of m in named_parameters() order.
void check_module(nn::module<double>& m, const shape_t& x_shape, unsigned seed = 3, double avoid = NAN) {
    auto named = m.named_parameters();
    std::vector<xt::xarray<double>> inputs{testing::uniform(x_shape, -2, 2, seed, avoid)};
    for (auto& [name, t] : named) inputs.push_back(t.value());
    testing::expect_grads(
        [&](const std::vector<tensor<double>>& in) {
            for (std::size_t k = 0; k < named.size(); ++k) m.parameter(named[k].first) = in[k + 1];
            // the layer really computes with gradcheck's inputs (else the check would be vacuous)
            auto bound = m.parameters();
            for (std::size_t k = 0; k < named.size(); ++k) REQUIRE(bound[k].node_ptr() == in[k + 1].node_ptr());
            return m(in[0]);
        },
        inputs);
}

}  // namespace

TEST_CASE("gradcheck linear (2-D, 1-D input, no bias)") {
    std::mt19937_64 rng(1);
    nn::linear<double> fc(4, 3, rng);
    check_module(fc, {5, 4});
    check_module(fc, {4});
    nn::linear<double> nb(4, 2, rng, nn::init::kaiming_normal, false);
    check_module(nb, {3, 4});
}

TEST_CASE("gradcheck every activation module") {
    for (auto a : {activation::relu, activation::leaky_relu, activation::elu, activation::gelu, activation::tanh,
                   activation::sigmoid, activation::softplus, activation::softmax, activation::log_softmax}) {
        INFO(nn::activation_name(a));
        nn::activation_module<double> m(a);
        check_module(m, {3, 4}, 5, 0.0);  // keep away from the kink at 0
    }
}

TEST_CASE("gradcheck dropout with a fixed mask") {
    nn::dropout<double> d(0.3, 9);
    testing::expect_grads(
        [&](const std::vector<tensor<double>>& in) {
            d.reseed(9);  // the same mask on every evaluation
            return d(in[0]);
        },
        {testing::uniform({4, 5})});
}

TEST_CASE("gradcheck layer_norm") {
    nn::layer_norm<double> ln(5);
    ln.parameter("weight").mutable_value() = testing::uniform({5}, 0.5, 1.5, 7);
    ln.parameter("bias").mutable_value() = testing::uniform({5}, -1, 1, 8);
    check_module(ln, {3, 5});
    nn::layer_norm<double> plain(4, 1e-5, false);
    check_module(plain, {2, 3, 4});
}

TEST_CASE("gradcheck batch_norm1d in training and eval mode") {
    nn::batch_norm1d<double> bn(3);
    bn.parameter("weight").mutable_value() = testing::uniform({3}, 0.5, 1.5, 7);
    bn.parameter("bias").mutable_value() = testing::uniform({3}, -1, 1, 8);
    check_module(bn, {6, 3});
    bn.running_mean().mutable_value() = xt::xarray<double>{0.1, -0.2, 0.3};
    bn.running_var().mutable_value() = xt::xarray<double>{0.5, 1.5, 2.0};
    bn.eval();
    check_module(bn, {4, 3});
}

TEST_CASE("gradcheck an mlp through sequential") {
    std::mt19937_64 rng(4);
    auto net = nn::mlp<double>({3, 6, 5, 2}, activation::tanh, rng, nn::init::xavier_uniform);
    check_module(*net, {4, 3});
    reset_tape<double>();
}
