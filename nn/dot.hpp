#pragma once
// to_dot (autograd/dot.hpp) with a model's parameters named as in its checkpoints.

#include <string>

#include "autograd/dot.hpp"
#include "nn/module.hpp"

namespace tapegrad::nn {

/// to_dot options that label each parameter of `m` with its dotted name from
/// named_parameters() ("0.weight"), prefixed by `prefix` when given ("model.0.weight").
template <class T> dot_options<T> dot_names(const module<T>& m, const std::string& prefix = "") {
    dot_options<T> o;
    for (auto& [name, p] : m.named_parameters()) o.names.emplace_back(prefix.empty() ? name : prefix + "." + name, p);
    return o;
}

}  // namespace tapegrad::nn
