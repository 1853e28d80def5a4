#pragma once
// Internal: what a compiled step's trace (autograd/compile.cpp) hears about while its
// function runs eagerly. The tape, tensor handles, losses and optimizers report the
// events a replay must repeat or that make replay impossible.

#include <functional>

#include <xtensor/xarray.hpp>

#include "autograd/detail/record.hpp"

namespace tapegrad::detail {

/// Plain SGD (no momentum) that a compiled step may fuse into weight-gradient gemms
/// (compile_options::fuse_sgd): the optimizer owns it and keeps lr current; `taken[i]`
/// is set when parameter i's step was taken inside the reverse pass.
template <class T> struct sgd_fusion {
    std::vector<node<T>*> params;
    double lr = 0, weight_decay = 0;
    std::vector<char> taken;
};

template <class T> struct tracer {
    virtual ~tracer() = default;
    /// backward() from `root` (seed null: the one-element root seeded with 1).
    virtual void on_backward(node<T>* root, const xt::xarray<T>* seed) = 0;
    /// C++ code to repeat on every replay (replayed()); `sgd` when it is an SGD step that may
    /// fuse; `grads_only` when it only forgets gradients (zero_grad), so no value depends on it.
    virtual void on_host(std::function<void()> fn, sgd_fusion<T>* sgd, bool grads_only = false) = 0;
    /// Something the replay cannot repeat happened: the step runs eagerly, and `why` says so.
    virtual void not_replayable(std::string why) = 0;
    /// Whether `labels` is one of the compiled function's label or index arguments.
    virtual bool is_label_argument(const void* labels) const = 0;
};

/// The calling thread's active trace of scalar type T, or null.
template <class T> tracer<T>*& active_tracer() {
    thread_local tracer<T>* t = nullptr;
    return t;
}

/// Stops the trace hearing (and forced recording) for a scope: the reverse pass and
/// replayed host code run as they would outside a trace.
template <class T> struct pause_trace {
    tracer<T>* saved = active_tracer<T>();
    force_recording off{false};
    pause_trace() { active_tracer<T>() = nullptr; }
    ~pause_trace() { active_tracer<T>() = saved; }
    pause_trace(const pause_trace&) = delete;
    pause_trace& operator=(const pause_trace&) = delete;
};

/// During a trace: labels or indices read by `op` must be an argument of the compiled
/// function (of type `as`), or the replay would read the trace's again.
template <class T>
void check_traced_labels(const void* labels, const char* op, const char* as = "const std::vector<std::size_t>&") {
    tracer<T>* t = active_tracer<T>();
    if (t && !t->is_label_argument(labels))
        t->not_replayable(std::string(op) +
                          " read class labels or indices that are not an argument of the compiled function; pass "
                          "them as a " + as + " argument");
}

}  // namespace tapegrad::detail
