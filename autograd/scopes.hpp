#pragma once
// Grad mode and the scopes that set it (no_grad, enable_grad), and the scoped
// recording gradient_tape (definitions in scopes.cpp).

#include <cstddef>
#include <vector>

#include "autograd/handle.hpp"

namespace tapegrad {

/// Whether ops record on the tape on this thread (off inside no_grad).
bool grad_enabled();
/// Set grad mode; prefer the scoped guards below.
void set_grad_enabled(bool on);

/// Scope in which ops record nothing, as torch.no_grad().
class no_grad {
  public:
    no_grad() : previous_(grad_enabled()) { set_grad_enabled(false); }
    ~no_grad() { set_grad_enabled(previous_); }
    no_grad(const no_grad&) = delete;
    no_grad& operator=(const no_grad&) = delete;

  private:
    bool previous_;
};

/// Scope in which ops record even inside no_grad.
class enable_grad {
  public:
    enable_grad() : previous_(grad_enabled()) { set_grad_enabled(true); }
    ~enable_grad() { set_grad_enabled(previous_); }
    enable_grad(const enable_grad&) = delete;
    enable_grad& operator=(const enable_grad&) = delete;

  private:
    bool previous_;
};

/// A scoped recording in the style of TensorFlow's GradientTape. Tapes nest:
/// `gradient()` of a tape that has an enclosing gradient_tape records its
/// reverse pass, so the outer tape can differentiate the result again.
template <class T> class gradient_tape {
  public:
    gradient_tape();
    ~gradient_tape();
    gradient_tape(const gradient_tape&) = delete;
    gradient_tape& operator=(const gradient_tape&) = delete;

    /// d loss / d wrt for each entry of `wrt`.
    std::vector<tensor<T>> gradient(const tensor<T>& loss, const std::vector<tensor<T>>& wrt);
    /// Nodes recorded since this scope opened.
    std::size_t recorded() const;

  private:
    std::size_t start_;
    int depth_;
};

}  // namespace tapegrad
