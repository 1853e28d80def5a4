#pragma once
// Layers: Linear (with PyTorch/Xavier/Kaiming initialisers), Sequential, an
// activation module per core activation, Dropout, LayerNorm, BatchNorm1d, and
// an MLP builder. Every random initialiser draws from an engine the caller owns.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "nn/module.hpp"

namespace tapegrad::nn {

/// Weight initialisers of Linear. Biases: U(-1/sqrt(in), 1/sqrt(in)) for
/// pytorch_default (as torch.nn.Linear), zeros for the others.
enum class init {
    pytorch_default,  ///< U(-b, b), b = 1/sqrt(fan_in) (torch.nn.Linear's reset_parameters)
    xavier_uniform,   ///< U(-b, b), b = sqrt(6 / (fan_in + fan_out))
    xavier_normal,    ///< N(0, s^2), s = sqrt(2 / (fan_in + fan_out))
    kaiming_uniform,  ///< U(-b, b), b = sqrt(6 / fan_in) (ReLU gain)
    kaiming_normal,   ///< N(0, s^2), s = sqrt(2 / fan_in) (ReLU gain)
};
/// "xavier_uniform" etc. -> init; throws listing the valid names.
init parse_init(const std::string& name);
/// The name parse_init accepts.
std::string init_name(init i);

/// y = x W^T + b, weight [out, in] like PyTorch. x is [N, in] (or [in], or
/// [B, N, in]).
template <class T> class linear : public module<T> {
  public:
    /// A layer initialised by `i` from `rng` (weight first, row-major, then bias).
    linear(std::size_t in, std::size_t out, std::mt19937_64& rng, init i = init::pytorch_default, bool bias = true);
    /// Forward: matmul(x, W, false, true) + b.
    tensor<T> forward(const tensor<T>& x) override;
    /// The weight [out, in].
    tensor<T>& weight() { return *weight_; }
    /// The bias [out]; throws if the layer was built without one.
    tensor<T>& bias();
    /// Whether the layer has a bias.
    bool has_bias() const { return bias_ != nullptr; }
    /// Input features.
    std::size_t in_features() const { return in_; }
    /// Output features.
    std::size_t out_features() const { return out_; }
    /// "Linear(784 -> 256)" (", bias=false" when there is none).
    std::string type_name() const override;

  private:
    std::size_t in_, out_;
    tensor<T>* weight_ = nullptr;
    tensor<T>* bias_ = nullptr;
};

/// Children applied in order; they are named "0", "1", ...
template <class T> class sequential : public module<T> {
  public:
    /// An empty sequence.
    sequential() = default;
    /// A sequence of the given modules.
    explicit sequential(std::vector<std::shared_ptr<module<T>>> mods);
    /// Append a module (named by its position).
    void push_back(std::shared_ptr<module<T>> m);
    /// Number of modules.
    std::size_t size() const { return this->children().size(); }
    /// The i-th module; throws when out of range.
    std::shared_ptr<module<T>> operator[](std::size_t i) const;
    /// Apply every module in order; a module followed by a ReLU module runs both
    /// through its forward_relu (one fused node where the module has one).
    tensor<T> forward(const tensor<T>& x) override;
    /// "Sequential".
    std::string type_name() const override { return "Sequential"; }
};

/// Every activation of the core.
enum class activation { relu, leaky_relu, elu, gelu, tanh, sigmoid, softplus, softmax, log_softmax };
/// "relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "softplus",
/// "softmax", "log_softmax" -> activation; throws listing the valid names.
activation parse_activation(const std::string& name);
/// The name parse_activation accepts.
std::string activation_name(activation a);
/// Apply an activation (softmax/log_softmax over the last axis; `alpha` is the
/// leaky_relu slope or the elu alpha).
template <class T> tensor<T> apply_activation(activation a, const tensor<T>& x, T alpha);

/// An activation as a module (no parameters).
template <class T> class activation_module : public module<T> {
  public:
    /// Activation with PyTorch's default parameter (leaky slope 0.01, elu alpha 1).
    explicit activation_module(activation a);
    /// Activation with an explicit leaky_relu slope or elu alpha.
    activation_module(activation a, T alpha);
    /// Apply the activation.
    tensor<T> forward(const tensor<T>& x) override { return apply_activation(a_, x, alpha_); }
    /// Which activation.
    activation kind() const { return a_; }
    /// "ReLU", "LeakyReLU(0.01)", "Softmax(dim=-1)", ...
    std::string type_name() const override;

  private:
    activation a_;
    T alpha_;
};

/// Zeroes each element with probability p in training mode and scales the rest
/// by 1/(1-p) (inverted dropout, as PyTorch); the identity in eval mode. The
/// masks come from the layer's own engine, seeded at construction.
template <class T> class dropout : public module<T> {
  public:
    /// Dropout with probability p in [0, 1); `seed` seeds the layer's engine.
    explicit dropout(double p = 0.5, std::uint64_t seed = 0);
    /// x * mask / (1 - p) in training mode, x in eval mode.
    tensor<T> forward(const tensor<T>& x) override;
    /// Restart the mask sequence from `seed`.
    void reseed(std::uint64_t seed) { rng_.seed(seed); }
    /// The drop probability.
    double p() const { return p_; }
    /// "Dropout(p=0.5)".
    std::string type_name() const override;

  private:
    double p_;
    std::mt19937_64 rng_;
};

/// Normalises over the last axis: (x - mean) / sqrt(var + eps) * weight + bias,
/// var biased (as torch.nn.LayerNorm). weight starts at ones, bias at zeros.
template <class T> class layer_norm : public module<T> {
  public:
    /// LayerNorm over a last axis of `features` elements.
    explicit layer_norm(std::size_t features, double eps = 1e-5, bool affine = true);
    /// Normalise x [..., features].
    tensor<T> forward(const tensor<T>& x) override;
    /// "LayerNorm(64, eps=1e-05)".
    std::string type_name() const override;

  private:
    std::size_t features_;
    double eps_;
    tensor<T>* weight_ = nullptr;
    tensor<T>* bias_ = nullptr;
};

/// Batch normalisation of x [N, C] over the batch (as torch.nn.BatchNorm1d).
/// Training: normalise with the batch mean and biased variance, and update the
/// buffers running_mean/running_var (unbiased variance) with `momentum`.
/// Eval: normalise with the running statistics.
template <class T> class batch_norm1d : public module<T> {
  public:
    /// BatchNorm over `features` channels.
    explicit batch_norm1d(std::size_t features, double eps = 1e-5, double momentum = 0.1, bool affine = true);
    /// Normalise x [N, features]; training mode needs N > 1.
    tensor<T> forward(const tensor<T>& x) override;
    /// The running mean buffer [features].
    tensor<T>& running_mean() { return *running_mean_; }
    /// The running variance buffer [features].
    tensor<T>& running_var() { return *running_var_; }
    /// "BatchNorm1d(64, eps=1e-05, momentum=0.1)".
    std::string type_name() const override;

  private:
    std::size_t features_;
    double eps_, momentum_;
    tensor<T>* weight_ = nullptr;
    tensor<T>* bias_ = nullptr;
    tensor<T>* running_mean_ = nullptr;
    tensor<T>* running_var_ = nullptr;
};

/// Linear layers of sizes[0] -> sizes[1] -> ... with `hidden` after every layer
/// but the last (which has no activation). Needs at least two sizes.
template <class T>
std::shared_ptr<sequential<T>> mlp(const std::vector<std::size_t>& sizes, activation hidden, std::mt19937_64& rng,
                                   init i = init::pytorch_default);

extern template class linear<float>;
extern template class linear<double>;
extern template class sequential<float>;
extern template class sequential<double>;
extern template class activation_module<float>;
extern template class activation_module<double>;
extern template class dropout<float>;
extern template class dropout<double>;
extern template class layer_norm<float>;
extern template class layer_norm<double>;
extern template class batch_norm1d<float>;
extern template class batch_norm1d<double>;

}  // namespace tapegrad::nn
