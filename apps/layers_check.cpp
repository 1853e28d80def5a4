// Layer cases for `tapegrad gradcheck`: every layer of nn/ in float64, checked
// with respect to its input and (where the layer exposes them) its parameters.

#include "apps/layers_check.hpp"

#include <memory>
#include <random>
#include <tuple>

#include "autograd/ops.hpp"
#include "nn/layers.hpp"

namespace tapegrad::app {

namespace {

using T = tensor<double>;

xt::xarray<double> rnd(const shape_t& shape, std::mt19937_64& rng, double lo = -1, double hi = 1) {
    return random_input(shape, rng, lo, hi);
}

/// Values in [lo, hi] at least 0.05 away from 0 (the kink of relu-like activations).
xt::xarray<double> off_kink(const shape_t& shape, std::mt19937_64& rng) {
    xt::xarray<double> a = rnd(shape, rng, -2, 2);
    for (auto& v : a)
        if (std::abs(v) < 0.05) v = v < 0 ? -0.05 - std::abs(v) : 0.05 + v;
    return a;
}

}  // namespace

std::vector<check_case> layer_cases(unsigned seed) {
    std::mt19937_64 r(seed + 1000);
    std::vector<check_case> c;

    // Linear: the gradcheck leaves replace the layer's weight and bias handles,
    // so the check covers dW and db as well as dx.
    {
        std::mt19937_64 init_rng(seed);
        auto lin = std::make_shared<nn::linear<double>>(5, 3, init_rng);
        c.push_back({"nn::linear 5 -> 3 (x, W, b)",
                     [lin](const std::vector<T>& v) {
                         lin->weight() = v[1];
                         lin->bias() = v[2];
                         return lin->forward(v[0]);
                     },
                     {rnd({4, 5}, r), rnd({3, 5}, r), rnd({3}, r)}});
    }
    // Every activation module.
    for (const char* name : {"relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "softplus", "softmax",
                             "log_softmax"}) {
        auto act = std::make_shared<nn::activation_module<double>>(nn::parse_activation(name));
        c.push_back({std::string("nn::activation ") + name, [act](const std::vector<T>& v) { return act->forward(v[0]); },
                     {off_kink({3, 4}, r)}});
    }
    // Sequential MLPs: the article's network and a ReLU stack, with respect to the input.
    for (auto [label, sizes, act] :
         {std::tuple{"nn::mlp 6-5-3 tanh (seed net)", std::vector<std::size_t>{6, 5, 3}, nn::activation::tanh},
          std::tuple{"nn::mlp 6-5-4-3 relu", std::vector<std::size_t>{6, 5, 4, 3}, nn::activation::relu}}) {
        std::mt19937_64 init_rng(seed + 7);
        auto net = nn::mlp<double>(sizes, act, init_rng);
        c.push_back({label, [net](const std::vector<T>& v) { return net->forward(v[0]); }, {rnd({3, sizes[0]}, r)}});
    }
    {
        auto ln = std::make_shared<nn::layer_norm<double>>(6);
        c.push_back({"nn::layer_norm 6", [ln](const std::vector<T>& v) { return ln->forward(v[0]); },
                     {rnd({3, 6}, r, -2, 2)}});
    }
    {
        auto bn = std::make_shared<nn::batch_norm1d<double>>(4);
        c.push_back({"nn::batch_norm1d 4 (train mode)", [bn](const std::vector<T>& v) { return bn->forward(v[0]); },
                     {rnd({5, 4}, r, -2, 2)}});
        auto bn_eval = std::make_shared<nn::batch_norm1d<double>>(4);
        bn_eval->eval();
        c.push_back({"nn::batch_norm1d 4 (eval mode)",
                     [bn_eval](const std::vector<T>& v) { return bn_eval->forward(v[0]); }, {rnd({5, 4}, r, -2, 2)}});
    }
    {
        // Reseeding inside the function gives every evaluation the same mask.
        auto drop = std::make_shared<nn::dropout<double>>(0.3, seed);
        c.push_back({"nn::dropout 0.3 (train mode)",
                     [drop, seed](const std::vector<T>& v) {
                         drop->reseed(seed);
                         return drop->forward(v[0]);
                     },
                     {rnd({4, 5}, r)}});
    }
    // The trainer's two losses on top of a network output.
    xt::xarray<double> onehot = xt::zeros<double>({3, 4});
    onehot(0, 1) = onehot(1, 3) = onehot(2, 0) = 1;
    c.push_back({"softmax + mse (the article's loss)",
                 [onehot](const std::vector<T>& v) { return mse(softmax(v[0], 1), T(onehot)); }, {rnd({3, 4}, r)}});
    c.push_back({"cross_entropy on logits",
                 [](const std::vector<T>& v) { return cross_entropy(v[0], {1, 3, 0}); }, {rnd({3, 4}, r)}});
    return c;
}

}  // namespace tapegrad::app
