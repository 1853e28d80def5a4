#pragma once
// The trainer's view of a model and its optimizer: build from a spec, forward to
// logits, loss, one optimizer step, and the named arrays a checkpoint holds.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.hpp"

namespace tapegrad::app {

/// What network to build.
struct model_spec {
    std::string kind = "mlp";                 ///< "seed" or "mlp"
    std::size_t inputs = 0;                   ///< input features
    std::size_t classes = 0;                  ///< output classes
    std::size_t hidden = 100;                 ///< seed: tanh hidden units
    std::vector<std::size_t> layers;          ///< mlp: hidden sizes
    std::string activation = "relu";          ///< mlp: hidden activation
    std::string loss = "ce";                  ///< "ce" or "mse"

    /// "784-256-128-10 relu, ce" for logs.
    std::string describe() const;
};

/// Named arrays: what checkpoints are made of.
using state_dict = std::map<std::string, xt::xarray<float>>;

/// A classifier: logits = net(x); the loss is applied by the trainer.
class classifier {
  public:
    virtual ~classifier() = default;
    /// Logits [B, classes] of inputs [B, inputs], recorded on the tape.
    virtual tensor<float> forward(const tensor<float>& x) = 0;
    /// Trainable parameters, in a fixed order.
    virtual std::vector<tensor<float>> parameters() = 0;
    /// Parameter values by name.
    virtual state_dict state() = 0;
    /// Load values by name; throws naming the parameter on a missing/unexpected name or wrong shape.
    virtual void load_state(const state_dict& s) = 0;
    /// A printout of the layers and parameter count.
    virtual std::string summary() = 0;
};

/// Build the network of `spec`, initialised from `seed`.
std::unique_ptr<classifier> make_classifier(const model_spec& spec, std::uint64_t seed);

/// The loss of `spec.loss` on logits: cross-entropy, or MSE between
/// softmax(logits) and one-hot targets (the article).
tensor<float> classification_loss(const std::string& loss, const tensor<float>& logits,
                                  const std::vector<std::size_t>& labels);

/// Optimizer settings from the command line.
struct optimizer_spec {
    std::string name = "adam";  ///< sgd | adam | adamw | rmsprop | adagrad
    double lr = 1e-3;           ///< initial learning rate
    double momentum = 0.9;      ///< sgd
    double weight_decay = 0;    ///< all
};

/// An optimizer over a fixed list of parameters.
class trainer_optimizer {
  public:
    virtual ~trainer_optimizer() = default;
    /// Apply one update from the parameters' .grad().
    virtual void step() = 0;
    /// Clear the parameters' gradients.
    virtual void zero_grad() = 0;
    /// Set the learning rate of the next step.
    virtual void set_lr(double lr) = 0;
    /// Per-parameter state (moments, step counts) by name.
    virtual state_dict state() = 0;
    /// Restore state saved by state().
    virtual void load_state(const state_dict& s) = 0;
};

/// Build the optimizer of `spec` over `params`.
std::unique_ptr<trainer_optimizer> make_optimizer(const optimizer_spec& spec, std::vector<tensor<float>> params);

/// Scale gradients so their global L2 norm is at most `max_norm`; returns the norm before.
double clip_grad_norm(const std::vector<tensor<float>>& params, double max_norm);

/// Save named arrays as a NumPy .npz; load them back.
void save_checkpoint(const std::string& path, const state_dict& arrays);
/// Load a .npz written by save_checkpoint; throws naming the file on bad input.
state_dict load_checkpoint(const std::string& path);

}  // namespace tapegrad::app
