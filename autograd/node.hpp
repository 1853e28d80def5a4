#pragma once
// A node: one entry of the tape, or a leaf (parameter, constant, result of an op
// that needs no gradient). Plain data, read and written by the tape and the rules.
// Also the per-leaf switch of fused SGD, which lives in the node's fused_* fields.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>

#include "autograd/handle.hpp"

namespace tapegrad {

/// What a custom op (autograd/function.hpp) saved in its node. A tape slot keeps it
/// for the next call of an op of the same types recorded there, so its buffers are
/// reused from step to step.
struct custom_state {
    virtual ~custom_state() = default;
    const void* type_key = nullptr;  // which custom_slot<T, S, P> this is
};

/// One entry of the tape (or a leaf). Plain data: the rules in ops_*.cpp read it.
template <class T> struct node {
    // Empty ([0]) until used: a default xarray is 0-d with one element, a heap
    // allocation each, which every inference result and tape slot would pay three times.
    xt::xarray<T> value{typename xt::xarray<T>::shape_type{0}};
    xt::xarray<T> grad{typename xt::xarray<T>::shape_type{0}};  // tape nodes: gradient of the current pass; leaves: accumulated .grad
    xt::xarray<T> pass_grad{typename xt::xarray<T>::shape_type{0}};  // leaves: gradient of the current tape.gradient() pass (kept apart from .grad)
    std::unique_ptr<custom_state> custom;  // tape nodes of custom ops: what the forward saved
    tensor<T> grad_graph; // gradient as a recorded tensor, when create_graph is on
    backward_fn<T> backward = nullptr;
    const char* op = "leaf";
    node<T>** inputs = nullptr;   // arena-allocated, n_inputs long
    std::size_t* op_data = nullptr;  // tape nodes: arena-allocated integers the rule needs (axes, indices, shapes)
    std::uint32_t n_inputs = 0;
    std::uint32_t n_op_data = 0;
    T scalar[2]{};                // op parameters (exponent, slope, bounds...)
    std::uint64_t serial = 0;     // 0 = dead slot; handles compare against this
    std::uint64_t pass = 0;       // backward pass whose gradient `grad`/`pass_grad` hold
    // Leaves may be read by ops recording on several threads at once (shared
    // parameters), so the two per-leaf fields such ops write are atomics (relaxed).
    std::atomic<std::uint64_t> kept_in{0}; // leaves: tape generation that holds a reference (unique across tapes)
    std::size_t index = 0;        // position on the tape
    std::atomic<std::uint32_t> uses{0};    // leaves: recorded ops that read it in tape generation `kept_in`
    tape<T>* home = nullptr;      // tape nodes: the tape owning this slot (set once; tapes are never freed)
    // Leaves: the tape whose reverse pass is writing this leaf's gradient buffers
    // (grad, pass_grad, pass, grad_graph), claimed on first touch and released when the
    // pass returns; a second thread's pass reaching it meanwhile gets a clear error.
    std::atomic<const void*> writer{nullptr};
    // Hooks and retain_grad (autograd/hooks.hpp), out of line: null for nearly every node, so the
    // reverse pass pays one pointer test. Tape nodes lose theirs on reset/rewind; leaves keep theirs.
    std::shared_ptr<hook_table<T>> hooks;
    std::uint32_t fused_steps = 0; // leaves: fused SGD steps taken since optim::sgd last counted them
    std::uint64_t fused_by = 0;   // leaves: serial of the matmul node whose backward took the last fused step
    T fused_lr = 0;               // leaves with fused SGD: value = fused_decay * value - fused_lr * grad
    T fused_decay = 1;
    bool fused_sgd = false;       // leaves: set_fused_sgd() is on
    bool requires_grad = false;
    bool on_tape = false;
    bool grad_defined = false;    // leaves: `grad` holds an accumulated gradient
};

/// Opt-in SGD inside the reverse pass for a weight leaf `w`, as PyTorch's
/// `_apply_optimizer_in_backward`. When backward() (not tape::gradient(), not
/// create_graph) reaches a matmul that is the only recorded op reading `w` since
/// the last tape reset, and `w` has no accumulated gradient, the weight-gradient
/// gemm updates `w` in place, `w = (1 - lr*weight_decay) w - lr dL/dw`, and
/// `w.grad()` stays undefined. In every other case (weight tying, `w` read by
/// another op, an accumulated gradient) the gradient lands in `.grad()` as usual.
/// optim::sgd's `fused_backward` option sets this on its parameters.
template <class T> void set_fused_sgd(tensor<T>& w, T lr, T weight_decay = T(0)) {
    if (!w.is_leaf()) throw std::logic_error("tapegrad: set_fused_sgd() needs a leaf, got an op result");
    if (!(lr >= 0) || !(weight_decay >= 0))
        throw std::invalid_argument("tapegrad: set_fused_sgd() needs lr >= 0 and weight_decay >= 0");
    node<T>* n = w.node_ptr();
    n->fused_sgd = true;
    n->fused_lr = lr;
    n->fused_decay = T(1) - lr * weight_decay;
}

/// Turn fused SGD off for `w`: its gradient goes to `.grad()` again.
template <class T> void clear_fused_sgd(tensor<T>& w) {
    if (w.is_leaf()) w.node_ptr()->fused_sgd = false;
}

}  // namespace tapegrad
