#pragma once
// Gradient clipping as torch.nn.utils.clip_grad_norm_ / clip_grad_value_.
// Parameters without a gradient are skipped.

#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad::optim {

/// Scale all gradients by min(1, max_norm / (total + 1e-6)), where total is the
/// L2 norm of all gradients together; returns total (before clipping).
template <class T> T clip_grad_norm(const std::vector<tensor<T>>& params, T max_norm);

/// Clamp every gradient element into [-value, value]; value must be >= 0.
template <class T> void clip_grad_value(const std::vector<tensor<T>>& params, T value);

}  // namespace tapegrad::optim
