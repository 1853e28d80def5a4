// The reverse pass: one loop from the root down the tape, calling each reached
// node's rule; backward() accumulates into leaves' .grad, gradient() returns the
// gradients (recorded ones with create_graph).

#include <atomic>
#include <optional>
#include <stdexcept>
#include <string>

#include "autograd/detail/record.hpp"
#include "autograd/detail/trace.hpp"
#include "autograd/hooks.hpp"
#include "autograd/ops.hpp"

namespace tapegrad {

namespace {
// Pass numbers are stamped into leaves that several tapes may share, so they
// come from a process-wide counter and never repeat across tapes.
std::atomic<std::uint64_t> g_pass{0};
}  // namespace

/// Open while a reverse pass runs; when the outermost one ends, the leaves it
/// claimed are released (and lose their recorded gradients) for other threads.
template <class T> struct tape<T>::pass_scope {
    tape& tp;
    explicit pass_scope(tape& t) : tp(t) { ++tp.passes_; }
    ~pass_scope() {
        if (--tp.passes_ > 0) return;
        for (node<T>* n : tp.claimed_) {
            n->grad_graph = tensor<T>();  // leaves must not keep recorded gradients alive past the call
            n->writer.store(nullptr, std::memory_order_release);
        }
        tp.claimed_.clear();
    }
};

template <class T>
void tape<T>::run(node<T>* root, const tensor<T>* seed_graph, const array_type* seed, bool into_leaf_grad,
                  bool create_graph, const reverse_ranges* ranges) {
    detail::pause_trace<T> quiet;  // rules and hooks run as outside a trace
    const std::uint64_t pass = pass_ = ++g_pass;
    last_recorded_ = create_graph;
    backward_ctx<T> root_ctx{*this, *root, pass, into_leaf_grad, create_graph};
    if (create_graph) {
        root_ctx.add_graph_to(root, seed_graph ? *seed_graph : tensor<T>::ones(shape_t(root->value.shape().begin(),
                                                                                       root->value.shape().end())));
    } else if (seed) {
        root_ctx.add_to(root, *seed);
    } else {
        // d root / d root = 1, written in place: a lazily broadcast xt::ones made g++
        // warn (-Wnonnull) on its rank-0 shape compare.
        bool had = false;
        T* g = root_ctx.grad_data(root, had);
        for (std::size_t k = 0, n = root->value.size(); k < n; ++k) g[k] = had ? g[k] + T(1) : T(1);
        root_ctx.mark(root);
    }
    std::optional<enable_grad> recording;
    if (create_graph) recording.emplace();
    // Creation order is a topological order: one loop from the root down. A node's
    // gradient is complete when the loop reaches it, so its hooks run right there.
    std::size_t next_range = 0;
    if (root->on_tape)
        for (std::size_t i = root->index + 1; i-- > 0;) {
            if (ranges) {  // a compiled step's elementwise run: all of its nodes at once, block by block
                while (next_range < ranges->count && ranges->first[next_range] > i) ++next_range;
                if (next_range < ranges->count && i < ranges->last[next_range]) {
                    ranges->run(ranges->ctx, next_range, i, pass);
                    i = ranges->first[next_range++];
                    continue;
                }
            }
            node<T>& n = slot(i);
            if (n.pass != pass || !n.backward) continue;
            if (n.hooks) {
                detail::run_hooks(n, n.grad, create_graph);
                hook_table<T>& h = *n.hooks;
                if (h.retain && into_leaf_grad) {  // retain_grad(): accumulate as a leaf would
                    if (h.retained_defined) h.retained += n.grad;
                    else h.retained = n.grad;
                    h.retained_defined = true;
                }
            }
            backward_ctx<T> ctx{*this, n, pass, into_leaf_grad, create_graph};
            n.backward(ctx);
        }
    // Hooked leaves collected this pass's gradient in pass_grad (backward_ctx::to_grad):
    // complete now, so run their hooks, then accumulate into .grad for backward().
    for (std::size_t k = 0; k < claimed_.size(); ++k) {
        node<T>& n = *claimed_[k];
        if (!n.hooks || n.pass != pass) continue;
        detail::run_hooks(n, n.pass_grad, create_graph);
        if (!into_leaf_grad) continue;
        if (n.grad_defined) {
            backward_ctx<T>::check_held(&n, n.grad);
            n.grad += n.pass_grad;
        } else {
            n.grad = n.pass_grad;
        }
        n.grad_defined = true;
    }
}

namespace detail {
template <class T> void run_hooks(node<T>& n, xt::xarray<T>& g, bool create_graph) {
    // A copy: a hook may register or remove hooks while it runs.
    const std::vector<typename hook_table<T>::entry> list = n.hooks->hooks;
    // Without create_graph nothing a hook computes is differentiated again, so it
    // records nothing (as PyTorch): ops on captured parameters add no nodes mid-pass.
    std::optional<no_grad> quiet;
    if (!create_graph) quiet.emplace();
    for (const auto& e : list) {
        tensor<T> replacement = e.fn(create_graph ? n.grad_graph : tensor<T>(g));
        if (!replacement.defined()) continue;
        if (!shapes_equal(replacement.value().shape(), n.value.shape()))
            throw shape_error(std::string("register_hook: the hook on ") +
                              (n.on_tape ? std::string("the result of op '") + n.op + "'" : std::string("a leaf")) +
                              " returned a gradient of shape " + shape_str(replacement.value().shape()) +
                              " for a tensor of shape " + shape_str(n.value.shape()) +
                              "; a hook must return a tensor of its tensor's shape (or an undefined tensor to keep "
                              "the gradient)");
        if (create_graph) n.grad_graph = replacement;
        else g = replacement.value();
    }
    if (create_graph) g = n.grad_graph.value();  // the buffer mirrors the recorded gradient
}
}  // namespace detail

namespace {
template <class T> void check_seed(const char* who, const tensor<T>& out, const xt::xarray<T>* seed) {
    if (!out.requires_grad())
        throw std::logic_error(std::string("tapegrad: ") + who +
                               ": the tensor does not require grad; no input of its computation has "
                               "requires_grad set (or it was computed inside no_grad)");
    if (seed) {
        if (!detail::shapes_equal(seed->shape(), out.value().shape()))
            throw shape_error(std::string(who) + ": seed gradient of shape " + shape_str(seed->shape()) +
                              " does not match the output's shape " + shape_str(out.value().shape()));
    } else if (out.value().size() != 1) {
        throw shape_error(std::string(who) + ": output of op '" + out.op_name() + "' has shape " +
                          shape_str(out.value().shape()) +
                          "; without a seed gradient the output must have one element (reduce it, e.g. with "
                          "sum() or mean(), or pass a seed of the same shape)");
    }
}
}  // namespace

template <class T> void tape<T>::backward(const tensor<T>& output, const array_type* seed) {
    check_seed("backward", output, seed);
    node<T>* root = output.node_ptr();
    if (root->on_tape && root->home != this) return root->home->backward(output, seed);  // a compiled step's tape
    if (detail::tracer<T>* t = detail::active_tracer<T>()) t->on_backward(root, seed);
    pass_scope scope(*this);
    run(output.node_ptr(), nullptr, seed, true, false);
}

template <class T> void tape<T>::replay_backward(node<T>* root, const array_type* seed, const reverse_ranges* ranges) {
    pass_scope scope(*this);
    run(root, nullptr, seed, true, false, ranges);
}

template <class T> bool tape<T>::replay_planned(const reverse_plan& plan) {
    pass_scope scope(*this);  // releases the leaves the plan claims
    const std::uint64_t pass = pass_ = ++g_pass;
    last_recorded_ = false;
    return plan.run(plan.ctx, pass);
}

template <class T>
std::vector<tensor<T>> tape<T>::gradient(const tensor<T>& loss, const std::vector<tensor<T>>& wrt,
                                         gradient_options opts) {
    return gradient(loss, wrt, tensor<T>(), opts);
}

template <class T>
std::vector<tensor<T>> tape<T>::gradient(const tensor<T>& output, const std::vector<tensor<T>>& wrt,
                                         const tensor<T>& seed, gradient_options opts) {
    check_seed("gradient", output, seed.defined() ? &seed.value() : nullptr);
    node<T>* root = output.node_ptr();
    if (root->on_tape && root->home != this) {  // a compiled step's result, on the step's own tape
        if (opts.create_graph)
            throw std::logic_error(
                "tapegrad: gradient() with create_graph of a compiled step's result: its reverse pass would record "
                "on another tape; take second derivatives of the eager function instead");
        return root->home->gradient(output, wrt, seed, opts);
    }
    if (detail::tracer<T>* t = detail::active_tracer<T>())
        t->not_replayable("tape::gradient() ran inside the compiled function; call backward() there instead");
    for (const auto& w : wrt) w.value();  // throws for undefined, stale or other threads' handles
    pass_scope scope(*this);
    run(output.node_ptr(), seed.defined() ? &seed : nullptr, seed.defined() ? &seed.value() : nullptr, false,
        opts.create_graph);
    const std::uint64_t pass = pass_;
    std::vector<tensor<T>> out;
    out.reserve(wrt.size());
    for (std::size_t i = 0; i < wrt.size(); ++i) {
        node<T>* n = wrt[i].node_ptr();
        // A leaf this pass never claimed was not reached (and another thread may own its fields).
        const bool reached = (n->on_tape || n->writer.load(std::memory_order_acquire) == this) && n->pass == pass;
        if (!reached) {
            if (!opts.allow_unused)
                throw std::invalid_argument(
                    "gradient: input " + std::to_string(i) + " of wrt (" +
                    (n->on_tape ? std::string("result of op '") + n->op + "'" : std::string("leaf")) + " of shape " +
                    shape_str(n->value.shape()) + ") is not used to compute the output of op '" + output.op_name() +
                    "'; drop it from wrt, or set gradient_options::allow_unused = true to get zeros for it");
            out.push_back(tensor<T>::zeros(wrt[i].shape()));
        } else if (opts.create_graph) {
            out.push_back(n->grad_graph);
        } else {
            out.push_back(tensor<T>(n->on_tape ? n->grad : n->pass_grad));
        }
    }
    return out;
}

// ----------------------------------------------------------- backward_ctx
template <class T> void backward_ctx<T>::add_graph_to(node<T>* n, tensor<T> g) {
    if (!n->on_tape) claim(n);
    if (!detail::shapes_equal(g.value().shape(), n->value.shape()))
        g = tapegrad::sum_to(g, shape_t(n->value.shape().begin(), n->value.shape().end()));
    n->grad_graph = (n->pass == pass) ? tapegrad::add(n->grad_graph, g) : g;
    n->pass = pass;
}

#define TAPEGRAD_INSTANTIATE(T) \
    template struct backward_ctx<T>; \
    template void detail::run_hooks<T>(node<T>&, xt::xarray<T>&, bool); \
    template void tape<T>::run(node<T>*, const tensor<T>*, const xt::xarray<T>*, bool, bool, const reverse_ranges*); \
    template void tape<T>::backward(const tensor<T>&, const xt::xarray<T>*); \
    template void tape<T>::replay_backward(node<T>*, const xt::xarray<T>*, const reverse_ranges*); \
    template bool tape<T>::replay_planned(const reverse_plan&); \
    template std::vector<tensor<T>> tape<T>::gradient(const tensor<T>&, const std::vector<tensor<T>>&, gradient_options); \
    template std::vector<tensor<T>> tape<T>::gradient(const tensor<T>&, const std::vector<tensor<T>>&, const tensor<T>&, gradient_options);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)

}  // namespace tapegrad
