#pragma once
// A node: one entry of the tape, or a leaf (parameter, constant, result of an op
// that needs no gradient). Plain data, read and written by the tape and the rules.
// Tape nodes also carry their forward kernel, which a compiled step (autograd/compile.hpp)
// replays without recording.

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

/// A node's forward kernel: recompute `value` from the values of `in` (the node's
/// inputs; an unrecorded result has none of its own), op_data and scalars. The op
/// runs it once; a compiled step's replay runs it again with the node's inputs.
template <class T> using forward_fn = void (*)(node<T>& n, node<T>* const* in);
/// An elementwise forward kernel on elements [begin, end) only: the unit of a fused loop.
template <class T> using forward_range_fn = void (*)(node<T>&, std::size_t begin, std::size_t end);
/// An elementwise backward kernel on elements [begin, end): the gradient of input i
/// is written to dst[i] (added to it when had[i]) for each input with a non-null dst[i].
/// The node's rule runs it, and so does a compiled step's fused reverse loop: one kernel, same bits.
template <class T>
using backward_range_fn = void (*)(node<T>&, std::size_t begin, std::size_t end, T* const* dst, const bool* had);

/// Where a backward kernel writes the gradient of one input.
template <class T> struct grad_target {
    T* data = nullptr;  // null: the input takes no gradient
    bool add = false;   // add to what data holds (it holds this pass's gradient), else overwrite
    bool sgd = false;   // data is a weight's value, stepped in place (a matmul's fused SGD step)
};
/// A node's backward kernel: the gradients of its inputs (at most two), from its value,
/// inputs and grad, into out[i]. The node's rule finds the buffers and runs it, and so
/// does a compiled step's planned reverse pass: one kernel, the same bits.
template <class T> using backward_kernel_fn = void (*)(node<T>& n, const grad_target<T>* out);

/// A weight whose plain SGD step a compiled step takes inside this matmul's
/// weight-gradient gemm (compile_options::fuse_sgd): weight = decay * weight - lr * dL/dweight.
template <class T> struct fused_sgd_step {
    node<T>* weight = nullptr;
    T lr = 0, decay = 1;
    char* taken = nullptr;  // set to 1 when the gemm took the step (the optimizer then skips the weight)
};

/// One entry of the tape (or a leaf). Plain data: the rules in ops_*.cpp read it.
template <class T> struct node {
    // Empty ([0]) until used: a default xarray is 0-d with one element, a heap
    // allocation each, which every inference result and tape slot would pay three times.
    xt::xarray<T> value{typename xt::xarray<T>::shape_type{0}};
    xt::xarray<T> grad{typename xt::xarray<T>::shape_type{0}};  // tape nodes: gradient of the current pass; leaves: accumulated .grad
    xt::xarray<T> pass_grad{typename xt::xarray<T>::shape_type{0}};  // leaves: gradient of the current tape.gradient() pass (kept apart from .grad); tape nodes: a rule's scratch, kept with the slot (max/min)
    std::unique_ptr<custom_state> custom;  // tape nodes of custom ops: what the forward saved
    tensor<T> grad_graph; // gradient as a recorded tensor, when create_graph is on
    backward_fn<T> backward = nullptr;
    forward_fn<T> forward = nullptr;             // tape nodes: replay kernel (null: the op cannot be replayed)
    forward_range_fn<T> forward_range = nullptr;  // tape nodes of elementwise ops: the kernel on a range
    backward_range_fn<T> backward_range = nullptr;  // the same for their backward (inputs of the node's shape)
    backward_kernel_fn<T> backward_kernel = nullptr;  // tape nodes whose rule is one kernel over found buffers
    fused_sgd_step<T>* fused_step = nullptr;      // tape nodes of matmuls in a compiled step (fuse_sgd pass)
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
    tape<T>* home = nullptr;      // tape nodes: the tape owning this slot (set once; tapes are never freed)
    // Leaves: the tape whose reverse pass is writing this leaf's gradient buffers
    // (grad, pass_grad, pass, grad_graph), claimed on first touch and released when the
    // pass returns; a second thread's pass reaching it meanwhile gets a clear error.
    std::atomic<const void*> writer{nullptr};
    // Hooks and retain_grad (autograd/hooks.hpp), out of line: null for nearly every node, so the
    // reverse pass pays one pointer test. Tape nodes lose theirs on reset/rewind; leaves keep theirs.
    std::shared_ptr<hook_table<T>> hooks;
    bool requires_grad = false;
    bool on_tape = false;
    bool grad_defined = false;    // leaves: `grad` holds an accumulated gradient
};

}  // namespace tapegrad
