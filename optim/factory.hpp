#pragma once
// An optimizer chosen by name, as a command line or a config file names it.

#include <memory>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"
#include "optim/optimizer.hpp"

namespace tapegrad::optim {

/// Which optimizer and the settings a command line usually gives.
struct optimizer_spec {
    std::string name = "adam";  ///< sgd | adam | adamw | rmsprop | adagrad
    double lr = 1e-3;           ///< initial learning rate
    double momentum = 0.9;      ///< sgd
    double weight_decay = 0;    ///< all (decoupled for adamw)
};

/// The optimizer of `spec` over `params` (PyTorch defaults for everything else).
/// Throws std::invalid_argument for an unknown name or a bad setting.
template <class T>
std::unique_ptr<optimizer<T>> make_optimizer(const optimizer_spec& spec, std::vector<tensor<T>> params);

extern template std::unique_ptr<optimizer<float>> make_optimizer(const optimizer_spec&, std::vector<tensor<float>>);
extern template std::unique_ptr<optimizer<double>> make_optimizer(const optimizer_spec&, std::vector<tensor<double>>);

}  // namespace tapegrad::optim
