#pragma once
// Compiled steps (docs/compile.md): trace a training step once, replay it as a flat
// list of kernels over buffers allocated at the trace.
//
//     auto step = tapegrad::compile([&](const tensor<float>& x, const std::vector<std::size_t>& y) {
//         opt.zero_grad();
//         tensor<float> loss = cross_entropy(net->forward(x), y);
//         loss.backward();
//         opt.step();
//         return loss;
//     });
//     float l = step(x, y).item();  // first call traces (runs eagerly), later calls replay
//
// What a replay repeats: every tapegrad op the function ran (recomputed from the
// current inputs and parameters), its backward() calls, zero_grad() calls, optimizer
// steps and code wrapped in replayed(). What it cannot see: other C++ code, and
// control flow that depends on tensor values. A function that does something the
// replay cannot repeat (an op without a replay kernel, tape::gradient(), a write
// through mutable_value()) is still correct: it runs eagerly on every call, and
// stats().eager_reason says why.

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/detail/trace.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad {

/// Switches of a compiled step. Each pass can be turned off, for measurement and debugging.
struct compile_options {
    /// Chains of elementwise ops of one size run block by block in one loop (bit-identical to eager).
    bool fuse_elementwise = true;
    /// A bias add and the activation after a matmul run in one pass over its result (bit-identical).
    bool fuse_bias_activation = true;
    /// The reverse pass runs the backward of a chain of elementwise ops of one size block by
    /// block in one loop, with no per-op dispatch (bit-identical).
    bool fuse_backward_elementwise = true;
    /// optim::sgd without momentum updates a weight inside its weight-gradient gemm
    /// (w = (1 - lr wd) w - lr dL/dw, where eager computes w - lr (dL/dw + wd w): the
    /// results differ by rounding, a few ulp per step). Only for a weight read by one
    /// matmul, in a step with one backward() followed directly by the SGD step.
    bool fuse_sgd = true;
    /// The reverse pass of a step with one backward() runs as a plan made at its first
    /// replay: the nodes it reaches, in order, each one call of its op's backward kernel
    /// into gradient buffers found without the rules' dispatch (bit-identical: the eager
    /// rules call the same kernels). Steps with hooks, or an op without a kernel, keep the
    /// tape's loop; so does a call whose parameters changed requires_grad or got hooks.
    bool plan_backward = true;
    /// In the planned reverse pass, the matmul before a bias add takes the add's gradient
    /// buffer instead of a copy of it (bit-identical; the add's own gradient is left
    /// undefined, which only check mode would read, so check mode keeps the copy).
    bool alias_bias_grad = true;
    /// Debug: every call of a replayable step also runs it eagerly; up to the first event
    /// that may change values (an optimizer step), the replay must record the same ops and
    /// give the same values and gradients (of ops and leaves) bit for bit, else
    /// std::logic_error names the first op that differs. The eager run's effects are kept.
    bool check = false;
};

/// What a compiled step did so far, and how its latest program looks.
struct compile_stats {
    std::size_t traces = 0;       ///< calls that traced (ran eagerly and recorded)
    std::size_t replays = 0;      ///< calls that replayed a program
    std::size_t programs = 0;     ///< programs kept (one per input signature)
    std::size_t kernels = 0;      ///< latest program: forward kernels
    std::size_t fused_loops = 0;  ///< latest program: elementwise chains run as one loop
    std::size_t fused_bias_activation = 0;  ///< latest program: bias + activation passes after a gemm
    std::size_t fused_sgd_weights = 0;      ///< latest program: weights stepped inside their gemm
    std::size_t fused_backward_loops = 0;   ///< latest program: elementwise chains whose backward runs as one loop
    std::size_t planned_backward_nodes = 0; ///< latest program: nodes of its planned reverse pass (0: no plan)
    std::size_t aliased_bias_grads = 0;     ///< latest program: planned bias adds that hand on their gradient buffer
    std::string eager_reason;     ///< latest program: why it runs eagerly ("" when it replays)
};

/// Run `fn` now and, while a compiled step traces, on every replay of it: C++ code
/// (not tapegrad ops) that belongs to the step, such as a hand-written update of a leaf.
/// The replay calls a copy of `fn`, so what it captures must outlive the compiled step.
template <class T, class F> void replayed(F&& fn) {
    if (detail::tracer<T>* t = detail::active_tracer<T>()) t->on_host(std::function<void()>(fn), nullptr);
    detail::pause_trace<T> quiet;
    fn();
}

namespace detail {
/// replayed() for code that only forgets gradients (optimizer::zero_grad).
template <class T, class F> void replayed_zero_grad(F&& fn) {
    if (tracer<T>* t = active_tracer<T>()) t->on_host(std::function<void()>(fn), nullptr, true);
    pause_trace<T> quiet;
    fn();
}
/// replayed() for an SGD step the fuse_sgd pass may take into the gemms.
template <class T, class F> void replayed_sgd(F&& fn, sgd_fusion<T>* sgd) {
    if (tracer<T>* t = active_tracer<T>()) t->on_host(std::function<void()>(fn), sgd);
    pause_trace<T> quiet;
    fn();
}
}  // namespace detail

namespace detail {

/// One argument of a compiled call: a tensor (its node and owner), class labels or an index array.
/// `owner` points into the caller's tensor, alive for the call: reading it costs no
/// reference count (two atomic operations per argument and call).
template <class T> struct compiled_arg {
    node<T>* tensor_node = nullptr;
    const std::shared_ptr<node<T>>* owner = nullptr;
    bool requires_grad = false;
    const std::vector<std::size_t>* labels = nullptr;
    const xt::xarray<std::size_t>* index = nullptr;  // an index argument (gather)
};

/// The type-erased engine behind compiled<T, Args...> (autograd/compile.cpp).
template <class T> class compiled_core {
  public:
    using label_slots = std::vector<std::vector<std::size_t>>;
    using index_slots = std::vector<xt::xarray<std::size_t>>;
    /// Calls the user's function with the program's label and index slots.
    struct invoker {
        void* ctx;
        tensor<T> (*call)(void* ctx, const label_slots& labels, const index_slots& indices);
    };
    explicit compiled_core(compile_options o);
    ~compiled_core();
    compiled_core(const compiled_core&) = delete;
    compiled_core& operator=(const compiled_core&) = delete;

    tensor<T> call(const std::vector<compiled_arg<T>>& args, invoker run);
    compile_stats stats() const;
    const compile_options& options() const { return o_; }

    struct program;  // public only for the trace's recorder (compile.cpp)

  private:
    program& find(const std::vector<compiled_arg<T>>& args);
    tensor<T> trace(program& p, const std::vector<compiled_arg<T>>& args, invoker run);
    tensor<T> replay(program& p, const std::vector<compiled_arg<T>>& args);
    tensor<T> check(program& p, const std::vector<compiled_arg<T>>& args, invoker run);

    compile_options o_;
    std::vector<std::unique_ptr<program>> programs_;
    program* last_ = nullptr;
    std::vector<std::size_t> key_;  // scratch: the signature of the current call
    compile_stats stats_;
    std::atomic<bool> busy_{false};  // a second caller (another thread, or fn itself) is refused
};

template <class A> struct arg_kind;
template <class T> struct arg_kind<tensor<T>> {
    static constexpr bool is_labels = false, is_index = false;
};
template <> struct arg_kind<std::vector<std::size_t>> {
    static constexpr bool is_labels = true, is_index = false;
};
template <> struct arg_kind<xt::xarray<std::size_t>> {
    static constexpr bool is_labels = false, is_index = true;
};

template <class F> struct fn_traits : fn_traits<decltype(&F::operator())> {};
template <class C, class R, class... A> struct fn_traits<R (C::*)(A...) const> {
    using result = R;
    using args = std::tuple<std::decay_t<A>...>;
};
template <class C, class R, class... A> struct fn_traits<R (C::*)(A...)> : fn_traits<R (C::*)(A...) const> {};

}  // namespace detail

/// A compiled step: call it like the function it wraps. Arguments are tensors,
/// class-label vectors (const std::vector<std::size_t>&) and index arrays for gather
/// (const xt::xarray<std::size_t>&); the first call with a new signature (tensor
/// shapes and requires_grad, label counts, index shapes) traces, later ones
/// replay that signature's program. The result is the function's result; it stays
/// readable until the next call of the step (detach() to keep it). Not copyable;
/// a step runs on one thread at a time.
template <class T, class... Args> class compiled {
  public:
    using function = std::function<tensor<T>(const Args&...)>;
    compiled(function fn, compile_options o) : fn_(std::move(fn)), core_(std::make_unique<detail::compiled_core<T>>(o)) {
        args_.resize(sizeof...(Args));
    }

    tensor<T> operator()(const Args&... args) {
        std::size_t i = 0;
        (describe(args_[i++], args), ...);
        struct ctx_t {
            compiled* self;
            std::tuple<const Args&...> args;
        } ctx{this, std::tuple<const Args&...>(args...)};
        using core = detail::compiled_core<T>;
        typename core::invoker run{&ctx, [](void* c, const typename core::label_slots& labels,
                                            const typename core::index_slots& indices) {
            auto* x = static_cast<ctx_t*>(c);
            return x->self->invoke(x->args, labels, indices, std::index_sequence_for<Args...>{});
        }};
        tensor<T> out = core_->call(args_, run);
        for (auto& a : args_) a.owner = nullptr;  // the caller's tensors: not ours to read after the call
        return out;
    }

    /// Counters and the latest program's passes.
    compile_stats stats() const { return core_->stats(); }

  private:
    static void describe(detail::compiled_arg<T>& d, const tensor<T>& t) {
        node<T>* n = d.tensor_node = t.node_ptr();
        if (!n) throw std::invalid_argument("compile: a tensor argument is undefined");
        if (n->on_tape)  // op_name() checks the handle first (a stale or another thread's result throws there)
            throw std::invalid_argument(std::string("compile: a tensor argument is the result of op '") + t.op_name() +
                                        "'; pass leaves (detach() it) to a compiled step");
        d.owner = &t.owner();
        d.requires_grad = n->requires_grad;  // a leaf: its handle needs no checks
        d.labels = nullptr;
        d.index = nullptr;
    }
    static void describe(detail::compiled_arg<T>& d, const std::vector<std::size_t>& labels) {
        d.tensor_node = nullptr;
        d.owner = nullptr;
        d.labels = &labels;
        d.index = nullptr;
    }
    static void describe(detail::compiled_arg<T>& d, const xt::xarray<std::size_t>& index) {
        d.tensor_node = nullptr;
        d.owner = nullptr;
        d.labels = nullptr;
        d.index = &index;
    }

    // Label and index arguments are passed as the program's own copies, whose addresses the replay keeps.
    template <std::size_t I, class Tuple>
    decltype(auto) pick(const Tuple& args, const typename detail::compiled_core<T>::label_slots& labels,
                        const typename detail::compiled_core<T>::index_slots& indices) {
        using A = std::decay_t<std::tuple_element_t<I, std::tuple<Args...>>>;
        if constexpr (detail::arg_kind<A>::is_labels) {
            std::size_t k = 0;  // label arguments before I
            for (std::size_t j = 0; j < I; ++j) k += args_[j].labels != nullptr;
            return static_cast<const std::vector<std::size_t>&>(labels[k]);
        } else if constexpr (detail::arg_kind<A>::is_index) {
            std::size_t k = 0;  // index arguments before I
            for (std::size_t j = 0; j < I; ++j) k += args_[j].index != nullptr;
            return static_cast<const xt::xarray<std::size_t>&>(indices[k]);
        } else {
            return static_cast<const A&>(std::get<I>(args));
        }
    }
    template <class Tuple, std::size_t... I>
    tensor<T> invoke(const Tuple& args, const typename detail::compiled_core<T>::label_slots& labels,
                     const typename detail::compiled_core<T>::index_slots& indices, std::index_sequence<I...>) {
        return fn_(pick<I>(args, labels, indices)...);
    }

    function fn_;
    std::unique_ptr<detail::compiled_core<T>> core_;
    std::vector<detail::compiled_arg<T>> args_;
};

namespace detail {
template <class F, class Tuple> struct compiled_for;
template <class F, class... A> struct compiled_for<F, std::tuple<A...>> {
    using result = typename fn_traits<F>::result;
    using type = compiled<typename result::value_type, A...>;
};
}  // namespace detail

/// Compile a step: `fn` takes tensors and label vectors and returns a tensor (the loss).
template <class F> auto compile(F fn, compile_options o = {}) {
    using C = typename detail::compiled_for<F, typename detail::fn_traits<F>::args>::type;
    return C(typename C::function(std::move(fn)), o);
}

}  // namespace tapegrad
