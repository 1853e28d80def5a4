#pragma once
// The trainer's view of a model and its optimizer, built on nn/ and optim/:
// a network from a spec, the loss, an optimizer from command-line settings,
// and an estimate of the memory a training run needs.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.hpp"
#include "nn/module.hpp"
#include "optim/factory.hpp"

namespace tapegrad::app {

/// What network to build.
struct model_spec {
    std::string kind = "mlp";         ///< "seed", "mlp" or "cnn"
    std::size_t inputs = 0;           ///< input features
    std::size_t classes = 0;          ///< output classes
    std::size_t hidden = 100;         ///< seed: tanh hidden units
    std::vector<std::size_t> layers;  ///< mlp: hidden sizes
    std::string activation = "relu";  ///< mlp: hidden activation
    std::string arch;                 ///< cnn: the --arch list (apps/cnn_arch.hpp); empty: default_cnn_arch
    std::string loss = "ce";          ///< "ce" or "mse"

    /// "mlp 784-256-128-10 relu, ce" or "cnn 1x28x28 c32,bn,relu,mp2,... -> 10, ce" for logs.
    std::string describe() const;
};

/// The network of `spec` as an nn::sequential of linear layers and activation
/// modules (parameters "0.weight", "0.bias", "2.weight", ...), initialised with
/// PyTorch's default from an engine seeded with `seed`. The seed network is
/// Linear -> Tanh -> Linear; its softmax belongs to the loss. A cnn is
/// make_cnn's network of `spec.arch` on square images of `spec.inputs` pixels.
std::shared_ptr<nn::module<float>> make_classifier(const model_spec& spec, std::uint64_t seed);

/// The loss of `spec.loss` on logits: cross-entropy, or MSE between
/// softmax(logits) and one-hot targets (the article). With mse, `backward`
/// "hand" or "article" takes the output layer's backward from that delta3
/// (formulas/hand_backward.hpp) instead of the tape.
tensor<float> classification_loss(const std::string& loss, const tensor<float>& logits,
                                  const std::vector<std::size_t>& labels, const std::string& backward = "tape");

/// Optimizer settings from the command line (optim/factory.hpp).
using optimizer_spec = optim::optimizer_spec;

/// The optimizer of `spec` over `params`: optim::make_optimizer for float.
inline std::unique_ptr<optim::optimizer<float>> make_optimizer(const optimizer_spec& spec,
                                                               std::vector<tensor<float>> params) {
    return optim::make_optimizer<float>(spec, std::move(params));
}

/// Memory that training `spec` with optimizer `optimizer` on batches of
/// `batch` needs, roughly: weights, gradients, the optimizer's state, and the
/// activations of a batch (and of an evaluation chunk of 1000) with their
/// gradients; for a cnn, every layer's output from the planned shapes and the
/// convolutions' im2col columns. In double, so absurd sizes do not overflow.
double estimate_training_bytes(const model_spec& spec, std::size_t batch, const std::string& optimizer,
                               double momentum);

/// Number of parameters of `spec` (in double: never overflows).
double parameter_count(const model_spec& spec);

/// Throw std::runtime_error saying what the model needs when
/// estimate_training_bytes exceeds `available_bytes` (default: this machine's
/// physical memory).
void check_memory(const model_spec& spec, std::size_t batch, const std::string& optimizer, double momentum,
                  double available_bytes = 0);

/// Named float arrays (.npz through nn/npz).
using state_dict = std::map<std::string, xt::xarray<float>>;

/// Write named float arrays as an .npz (through io/npz).
void save_arrays(const std::string& path, const state_dict& arrays);
/// Read an .npz of float arrays; throws npz::npz_error naming the file.
state_dict load_arrays(const std::string& path);

}  // namespace tapegrad::app
