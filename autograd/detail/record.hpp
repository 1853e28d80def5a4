#pragma once
// Internal machinery shared by the op implementations: making result nodes,
// the backward context, gradient accumulation and the one central place where
// broadcast gradients are reduced back to an input's shape (sum_to).
// Included by autograd/*.cpp only; users never need it.

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/tensor.hpp"

namespace tapegrad {

namespace detail {

/// xtensor's own shape type: inline storage for up to 4 dimensions, so shapes
/// made inside ops do not touch the heap.
using xshape = xt::xarray<double>::shape_type;

/// Shape of `a op b` under NumPy broadcasting; throws shape_error naming op and shapes.
template <class SA, class SB>
xshape broadcast_shape(const char* op, const SA& a, const SB& b) {
    std::size_t rank = std::max(a.size(), b.size());
    xshape out(rank);
    for (std::size_t i = 0; i < rank; ++i) {
        std::size_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
        std::size_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
        if (da != db && da != 1 && db != 1)
            throw shape_error(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                              " cannot be broadcast together (dimension " + std::to_string(i) +
                              ": " + std::to_string(da) + " vs " + std::to_string(db) + ")");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

template <class SA, class SB> bool shapes_equal(const SA& a, const SB& b) {
    // a plain loop: std::equal becomes a memcmp call, which costs more than the few dimensions
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i] != b[i]) return false;
    return true;
}

/// fit's rare path, out of line so that fit itself inlines to a few compares.
template <class T, class S> [[gnu::noinline]] void refit(xt::xarray<T>& a, const S& shape) { a.resize(shape); }
/// Resize `a` to `shape` unless it already has it (xtensor's resize compares through memcmp).
template <class T, class S> [[gnu::always_inline]] inline void fit(xt::xarray<T>& a, const S& shape) {
    if (!shapes_equal(a.shape(), shape)) refit(a, shape);
}

/// Per-thread buffers of a broadcasting op's operands expanded to the result's shape
/// (and of its gradients before they are summed down): xtensor's broadcasting
/// iterators cost 5-10x a loop over buffers. Kept across calls: no heap in steady
/// state; tape_stats::thread_scratch_bytes reports them.
constexpr std::size_t broadcast_scratch_buffers = 4;
template <class T> xt::xarray<T>& broadcast_scratch(std::size_t i) {
    thread_local xt::xarray<T> buffers[broadcast_scratch_buffers] = {
        xt::xarray<T>(xshape{0}), xt::xarray<T>(xshape{0}), xt::xarray<T>(xshape{0}), xt::xarray<T>(xshape{0})};
    return buffers[i];
}

/// dst (+)= src summed down to dst's shape; src's shape must broadcast from dst's.
/// The reverse of broadcasting, used by every op whose inputs broadcast.
template <class T> void sum_to(const xt::xarray<T>& src, xt::xarray<T>& dst, const xshape& dst_shape, bool accumulate);

/// dst (+)= scale * g broadcast to dst_shape, where g holds prod(g_shape) values and
/// g_shape broadcasts to dst_shape: the gradient of a reduction spread back over its input.
template <class T>
void broadcast_back(const T* g, const xshape& g_shape, xt::xarray<T>& dst, const xshape& dst_shape, bool accumulate,
                    T scale);

/// While true on this thread (a compiled step's trace), ops record a node even when
/// no gradient flows, so the replay recomputes every value that derives from its inputs.
inline bool& recording_forced() {
    thread_local bool on = false;
    return on;
}
/// Sets recording_forced() for a scope and restores it after.
struct force_recording {
    bool before;
    explicit force_recording(bool on) : before(recording_forced()) { recording_forced() = on; }
    ~force_recording() { recording_forced() = before; }
    force_recording(const force_recording&) = delete;
    force_recording& operator=(const force_recording&) = delete;
};

/// Whether recording is on and any of `inputs` needs a gradient.
template <class T> bool needs_record(std::initializer_list<const tensor<T>*> inputs) {
    if (!grad_enabled()) return false;
    for (auto* t : inputs)
        if (t->requires_grad()) return true;
    return false;
}

/// The result of an op: a new tape node wired to `inputs` when a gradient is
/// needed, otherwise a fresh leaf. `n_op_data` slots of op data are reserved.
template <class T>
tensor<T> make_result(const char* op, backward_fn<T> backward, const tensor<T>* const* inputs, std::size_t n_inputs,
                      std::size_t n_op_data = 0);

template <class T>
tensor<T> make_result(const char* op, backward_fn<T> backward, std::initializer_list<const tensor<T>*> inputs,
                      std::size_t n_op_data = 0) {
    return make_result<T>(op, backward, inputs.begin(), inputs.size(), n_op_data);
}

/// As make_result, but always a tape node (requires_grad false when no input needs
/// a gradient), so its value buffer is a tape slot's, reused across resets. Only for
/// intermediates an op keeps for its own backward and never hands out: the node
/// lives until the tape is reset. Call it only when the op's own result is recorded.
template <class T>
tensor<T> make_tape_result(const char* op, backward_fn<T> backward, std::initializer_list<const tensor<T>*> inputs,
                           std::size_t n_op_data = 0);

/// Writable value of a result node (ops fill it right after make_result).
template <class T> xt::xarray<T>& out_value(const tensor<T>& t) { return t.node_ptr()->value; }

/// Indices from C++ (labels of pick, rows of index_select) in a node made with
/// make_result(..., indices.size() + 1): the indices, then the vector's address, which a
/// compiled step's replay reads again (check_traced_labels made sure it is a label slot).
template <class T> void store_indices(node<T>* n, const std::vector<std::size_t>& indices) {
    static_assert(sizeof(std::size_t) == sizeof(std::uintptr_t), "op_data holds a pointer");
    if (!n->op_data) return;
    std::copy(indices.begin(), indices.end(), n->op_data);
    n->op_data[indices.size()] = static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(&indices));
}
/// Replay: the vector store_indices saw, refilled by this call; its values are copied
/// into op_data (where the backward reads them) once the caller has checked them.
template <class T> const std::vector<std::size_t>& stored_indices_source(const node<T>& n) {
    return *reinterpret_cast<const std::vector<std::size_t>*>(static_cast<std::uintptr_t>(n.op_data[n.n_op_data - 1]));
}

}  // namespace detail

/// What a backward rule sees: its node, its inputs, and where to put gradients.
template <class T> struct backward_ctx {
    tape<T>& tp;
    node<T>& self;
    std::uint64_t pass;
    bool into_leaf_grad;  // backward(): leaves accumulate into .grad; gradient(): into .pass_grad
    bool create_graph;    // gradients are recorded tensors (second derivatives)

    node<T>* input(std::size_t i) const { return self.inputs[i]; }
    bool wants(std::size_t i) const { return self.inputs[i]->requires_grad; }
    const xt::xarray<T>& x(std::size_t i) const { return self.inputs[i]->value; }
    const xt::xarray<T>& y() const { return self.value; }
    const xt::xarray<T>& gy() const { return self.grad; }

    // Recorded-graph views of the same things (create_graph only).
    tensor<T> tx(std::size_t i) const { return handle(self.inputs[i]); }
    tensor<T> ty() const { return handle(&self); }
    tensor<T> tgy() const { return self.grad_graph; }

    static tensor<T> handle(node<T>* n) {
        return n->on_tape ? tensor<T>::from_tape(n) : tensor<T>::from_leaf(leaf_owner(n));
    }
    static std::shared_ptr<node<T>> leaf_owner(node<T>* n) {
        // Leaves are kept alive by the tape for the whole pass; a non-owning
        // shared_ptr lets the handle point at them without a second count.
        return std::shared_ptr<node<T>>(std::shared_ptr<node<T>>{}, n);
    }

    /// Buffer the gradient for node `n` goes into during this pass.
    xt::xarray<T>& target(node<T>* n) const {
        if (n->on_tape) return n->grad;
        claim(n);
        return to_grad(n) ? n->grad : n->pass_grad;
    }
    bool defined(node<T>* n) const {
        if (n->on_tape) return n->pass == pass;
        claim(n);
        return to_grad(n) ? n->grad_defined : n->pass == pass;
    }
    /// Whether leaf n's gradient goes straight into .grad: backward(), and no hooks (a
    /// hooked leaf collects its pass gradient in pass_grad; the pass adds it after the hooks).
    bool to_grad(const node<T>* n) const { return into_leaf_grad && !n->hooks; }
    /// A leaf's gradient buffers belong to one reverse pass at a time: claim them for
    /// this tape (released when gradient()/backward() returns), or throw when another
    /// thread's pass holds them.
    void claim(node<T>* n) const {
        if (n->writer.load(std::memory_order_acquire) != &tp) tp.claim(n);
    }
    void mark(node<T>* n) const {
        if (!n->on_tape && to_grad(n)) n->grad_defined = true;
        n->pass = pass;
    }

    /// Add `g` (an xtensor expression of the output's or the input's shape) to
    /// input i's gradient, reducing broadcast dimensions.
    template <class E> void add(std::size_t i, const E& g) { add_to(self.inputs[i], g); }

    /// Gradient buffer of n for this pass: sized to n's value on first use, else checked
    /// against it. `had` says whether it already holds a gradient to add to.
    T* grad_data(node<T>* n, bool& had) const {
        auto& g = target(n);
        had = defined(n);
        if (!had) detail::fit(g, n->value.shape());
        else check_held(n, g);
        return g.data();
    }

    /// Where each input's gradient goes this pass, in input order (null for an input that
    /// takes none), claimed and marked as written; the weight whose SGD step this matmul takes
    /// (a compiled step's fuse_sgd) gets its value instead, unless it holds a gradient or has hooks.
    /// Then the node's backward kernel writes them (run_kernel).
    void targets(grad_target<T>* out) {
        for (std::uint32_t i = 0; i < self.n_inputs; ++i) {
            node<T>* m = self.inputs[i];
            out[i] = {};
            if (!m->requires_grad) continue;
            const fused_sgd_step<T>* f = self.fused_step;
            if (f && f->weight == m && into_leaf_grad && !m->hooks && !defined(m)) {
                out[i] = {m->value.data(), false, true};
                continue;
            }
            bool had;
            out[i].data = grad_data(m, had);
            out[i].add = had;
            mark(m);
        }
    }
    /// The rule of an op with a backward kernel, outside create_graph.
    void run_kernel() {
        grad_target<T> out[2];
        targets(out);
        self.backward_kernel(self, out);
    }

    /// A held gradient must have its tensor's shape (a leaf whose value was replaced by
    /// one of another shape keeps its old .grad until zero_grad()).
    static void check_held(const node<T>* n, const xt::xarray<T>& g) {
        if (!detail::shapes_equal(g.shape(), n->value.shape()))
            throw shape_error("backward: the gradient held for " + std::string(n->op) + " has shape " +
                              shape_str(g.shape()) + " but its value has shape " + shape_str(n->value.shape()) +
                              "; call zero_grad() after changing a tensor's shape");
    }

    template <class E> void add_to(node<T>* n, const E& g) {
        auto& dst = target(n);
        const auto& want = n->value.shape();
        const bool had = defined(n);
        if (had) check_held(n, dst);
        if (detail::shapes_equal(g.shape(), want)) {
            if constexpr (std::is_same<std::decay_t<E>, xt::xarray<T>>::value) {  // a buffer (gy passed through): plain loops
                if (had) {
                    T* d = dst.data();
                    const T* s = g.data();
                    for (std::size_t k = 0, n = g.size(); k < n; ++k) d[k] += s[k];
                } else {
                    detail::fit(dst, want);
                    std::copy(g.data(), g.data() + g.size(), dst.data());
                }
            } else if (had) {
                xt::noalias(dst) += g;
            } else {
                detail::fit(dst, want);
                xt::noalias(dst) = g;
            }
        } else if constexpr (std::is_same<std::decay_t<E>, xt::xarray<T>>::value) {
            detail::sum_to<T>(g, dst, want, had);  // already materialised: reduce it directly
        } else {
            auto& tmp = tp.scratch();
            tmp.resize(g.shape());
            xt::noalias(tmp) = g;
            detail::sum_to<T>(tmp, dst, want, had);
        }
        mark(n);
    }

    /// Add scale * g, a buffer of shape g_shape that broadcasts to input i's shape,
    /// to input i's gradient (the reverse of a reduction).
    void add_broadcast(std::size_t i, const T* g, const detail::xshape& g_shape, T scale) {
        node<T>* n = self.inputs[i];
        if (defined(n)) check_held(n, target(n));
        detail::broadcast_back<T>(g, g_shape, target(n), n->value.shape(), defined(n), scale);
        mark(n);
    }

    /// Recorded version of add(): `g` is a tensor on the tape.
    void add_graph(std::size_t i, const tensor<T>& g) { add_graph_to(self.inputs[i], g); }
    void add_graph_to(node<T>* n, tensor<T> g);
};

}  // namespace tapegrad
