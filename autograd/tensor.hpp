#pragma once
// The tensor handle, the tape it records on, and the public autodiff API.
//
// Design (see README "How the tape works"):
//  * A tape is a flat, creation-ordered array of nodes; the reverse pass is one
//    loop from the end to the start. Creation order is a topological order.
//  * Nodes live in fixed-size blocks that are never moved, so a tensor handle is
//    a raw node pointer plus the serial number the node had when it was made.
//    Resetting the tape keeps every block and every value buffer, so a training
//    loop in steady state allocates nothing for the tape.
//  * Leaves (parameters, constants) are reference-counted nodes outside the tape.
//    Results of ops that need no gradient are leaves too, so inference does not
//    grow the tape.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <stdexcept>

#include "autograd/config.hpp"  // first: checks the build flags before xtensor is read
#include <xtensor/xarray.hpp>
#include <xtensor/xnoalias.hpp>

namespace tapegrad {

/// Error for a shape an op cannot take; the message names the op and the shapes.
class shape_error : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

/// Shape of a tensor, outermost dimension first.
using shape_t = std::vector<std::size_t>;

template <class T> class tensor;
template <class T> class tape;
template <class T> struct node;
template <class T> struct backward_ctx;

/// Signature of a node's reverse-mode rule.
template <class T> using backward_fn = void (*)(backward_ctx<T>&);

/// "[2, 3]": how shapes appear in every error message.
std::string shape_str(const shape_t& shape);
/// Same for any xtensor shape type.
template <class S> std::string shape_str(const S& shape) {
    return shape_str(shape_t(shape.begin(), shape.end()));
}

/// Handle to a value in the graph, cheap to copy: 32 bytes (the node pointer, its
/// serial number, and a shared_ptr set only for leaves). A default-constructed
/// tensor is undefined.
template <class T> class tensor {
  public:
    using value_type = T;
    using array_type = xt::xarray<T>;

    /// An undefined tensor.
    tensor() = default;
    /// A leaf holding `value`; `requires_grad` makes it a differentiable input.
    explicit tensor(array_type value, bool requires_grad = false);

    /// Leaf filled with zeros.
    static tensor zeros(const shape_t& shape, bool requires_grad = false);
    /// Leaf filled with ones.
    static tensor ones(const shape_t& shape, bool requires_grad = false);
    /// Leaf filled with `fill`.
    static tensor full(const shape_t& shape, T fill, bool requires_grad = false);
    /// Scalar (0-d) leaf.
    static tensor scalar(T v, bool requires_grad = false);

    /// True unless default-constructed.
    bool defined() const { return node_ != nullptr; }
    /// The value; throws if the tensor's tape was reset since it was made.
    const array_type& value() const;
    /// Mutable value of a leaf (e.g. for optimizer updates); throws for op results.
    array_type& mutable_value();
    /// Shape of the value.
    shape_t shape() const;
    /// Number of dimensions.
    std::size_t dim() const { return value().dimension(); }
    /// Number of elements.
    std::size_t size() const { return value().size(); }
    /// The single element of a one-element tensor; throws otherwise.
    T item() const;

    /// Whether gradients flow to this tensor.
    bool requires_grad() const;
    /// Turn gradient tracking on or off for a leaf; returns *this.
    tensor& set_requires_grad(bool on);
    /// True for tensors not produced by a recorded op.
    bool is_leaf() const;
    /// Name of the op that produced this tensor ("leaf" for leaves).
    const char* op_name() const;

    /// Whether `backward()` has left a gradient here.
    bool has_grad() const;
    /// The accumulated gradient (same shape as value). Throws std::logic_error when
    /// there is none: before the first backward(), after zero_grad(), and for a leaf
    /// that no backward() has reached (the loss does not depend on it), as well as
    /// for results of ops. has_grad() asks without throwing; tape::gradient()
    /// returns zeros for such a leaf instead (see gradient_options::allow_unused).
    const array_type& grad() const;
    /// Mutable gradient (for clipping, tests); throws if there is none.
    array_type& mutable_grad();
    /// Forget the gradient; the buffer is kept for the next backward.
    void zero_grad();

    /// Reverse pass from this scalar, adding into `.grad()` of every leaf that
    /// requires grad (PyTorch semantics: gradients accumulate until zero_grad).
    void backward() const;
    /// Reverse pass seeded with `seed` (same shape as this tensor).
    void backward(const array_type& seed) const;

    /// A leaf copy of the value with no history; it survives tape resets.
    tensor detach() const;

    /// Internal: the node this handle points at.
    node<T>* node_ptr() const { return node_; }
    /// Internal: handle to a tape node.
    static tensor from_tape(node<T>* n);
    /// Internal: handle to an owned leaf node.
    static tensor from_leaf(std::shared_ptr<node<T>> n);
    /// Internal: the owning pointer of a leaf (empty for tape nodes).
    const std::shared_ptr<node<T>>& owner() const { return owner_; }

  private:
    void check_alive() const;

    node<T>* node_ = nullptr;
    std::uint64_t serial_ = 0;        // node's serial when this handle was made
    std::shared_ptr<node<T>> owner_;  // set for leaves only
};

/// One entry of the tape (or a leaf). Plain data: the rules in ops_*.cpp read it.
template <class T> struct node {
    // Empty ([0]) until used: a default xarray is 0-d with one element, a heap
    // allocation each, which every inference result and tape slot would pay three times.
    xt::xarray<T> value{typename xt::xarray<T>::shape_type{0}};
    xt::xarray<T> grad{typename xt::xarray<T>::shape_type{0}};  // tape nodes: gradient of the current pass; leaves: accumulated .grad
    xt::xarray<T> work{typename xt::xarray<T>::shape_type{0}};  // leaves: gradient of the current tape.gradient() pass; fused losses: saved data
    tensor<T> grad_graph; // gradient as a recorded tensor, when create_graph is on
    backward_fn<T> backward = nullptr;
    const char* op = "leaf";
    node<T>** inputs = nullptr;   // arena-allocated, n_inputs long
    std::size_t* aux = nullptr;   // arena-allocated op data: axes, indices, shapes
    std::uint32_t n_inputs = 0;
    std::uint32_t n_aux = 0;
    T scalar[2]{};                // op parameters (exponent, slope, bounds...)
    std::uint64_t serial = 0;     // 0 = dead slot; handles compare against this
    std::uint64_t pass = 0;       // backward pass whose gradient `grad`/`work` hold
    // Leaves may be read by ops recording on several threads at once (shared
    // parameters), so the two per-leaf fields such ops write are atomics (relaxed).
    std::atomic<std::uint64_t> kept_in{0}; // leaves: tape generation that holds a reference (unique across tapes)
    std::size_t index = 0;        // position on the tape
    std::atomic<std::uint32_t> uses{0};    // leaves: recorded ops that read it in tape generation `kept_in`
    tape<T>* home = nullptr;      // tape nodes: the tape owning this slot (set once; tapes are never freed)
    // Leaves: the tape whose reverse pass is writing this leaf's gradient buffers
    // (grad, work, pass, grad_graph), claimed on first touch and released when the
    // pass returns; a second thread's pass reaching it meanwhile gets a clear error.
    std::atomic<const void*> writer{nullptr};
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

/// Counters a test or benchmark can read to prove the tape does not grow.
struct tape_stats {
    std::size_t nodes = 0;          ///< nodes recorded since the last reset
    std::size_t node_capacity = 0;  ///< node slots allocated (kept across resets)
    std::size_t peak_nodes = 0;     ///< most nodes ever recorded between resets
    std::size_t value_bytes = 0;    ///< bytes held by value and gradient buffers of all slots
    std::size_t arena_bytes = 0;    ///< bytes of the arena for inputs and op data
    std::size_t kept_leaves = 0;    ///< leaves referenced since the last reset
};

/// Bump allocator for per-node op data; blocks are kept across resets.
class arena {
  public:
    /// `n` uninitialised objects of trivially-copyable type U, valid until reset.
    template <class U> U* alloc(std::size_t n) {
        return static_cast<U*>(alloc_bytes(n * sizeof(U), alignof(U)));
    }
    /// Forget everything allocated; keep the blocks.
    void reset() { block_ = 0; used_ = 0; }
    /// Rewind to an earlier (block, used) position.
    void rewind(std::size_t block, std::size_t used) { block_ = block; used_ = used; }
    std::size_t block() const { return block_; }
    std::size_t used() const { return used_; }
    /// Total bytes of all blocks.
    std::size_t capacity() const;

  private:
    void* alloc_bytes(std::size_t bytes, std::size_t align);
    struct chunk { std::unique_ptr<unsigned char[]> data; std::size_t size; };
    std::vector<chunk> blocks_;
    std::size_t block_ = 0;
    std::size_t used_ = 0;
};

/// Options of a reverse pass.
struct gradient_options {
    /// Record the reverse pass itself so its results can be differentiated again.
    bool create_graph = false;
    /// An entry of `wrt` that the output does not depend on gets a zero gradient of
    /// its shape (true, the default), or makes gradient() throw std::invalid_argument
    /// naming it (false, as PyTorch's allow_unused=False).
    bool allow_unused = true;
};

/// The per-thread, per-scalar-type tape. Ops record on `tape<T>::current()`.
///
/// Threading rule (docs/threads.md): a tensor produced by a recorded op belongs to
/// the thread that recorded it. Using it on another thread, or after that thread
/// exited, throws std::logic_error naming the recording thread; detach() gives a
/// leaf any thread may read. Tapes are never freed while the process runs (a
/// thread's tape is reset and handed to the next new thread), so no handle can
/// ever read freed memory.
template <class T> class tape {
  public:
    using array_type = xt::xarray<T>;
    static constexpr std::size_t block_nodes = 256;

    /// The calling thread's tape.
    static tape& current();

    /// Gradients of `loss` (a one-element tensor) with respect to each of
    /// `wrt`, as in TensorFlow's GradientTape.gradient. Leaves' `.grad()` is left
    /// alone. A tensor that `loss` does not depend on gets zeros.
    std::vector<tensor<T>> gradient(const tensor<T>& loss, const std::vector<tensor<T>>& wrt,
                                    gradient_options opts = {});
    /// Same with an explicit seed (a vector-Jacobian product) for an output of any shape.
    std::vector<tensor<T>> gradient(const tensor<T>& output, const std::vector<tensor<T>>& wrt,
                                    const tensor<T>& seed, gradient_options opts);

    /// Reverse pass that accumulates into leaves' `.grad()` (tensor::backward).
    void backward(const tensor<T>& output, const array_type* seed);

    /// Forget all recorded nodes, keeping their memory for the next step.
    /// Every tensor produced by a recorded op becomes invalid.
    void reset();
    /// A position on the tape; rewind() drops what was recorded after it.
    struct position { std::size_t nodes, arena_block, arena_used, kept; };
    /// The current position.
    position mark() const { return {size_, arena_.block(), arena_.used(), kept_.size()}; }
    /// Drop nodes recorded after `p`, keeping their memory.
    void rewind(const position& p);

    /// Number of nodes recorded since the last reset.
    std::size_t size() const { return size_; }
    /// Memory and node counters.
    tape_stats stats() const;

    /// Internal: a fresh node slot at the end of the tape.
    node<T>* push(const char* op, backward_fn<T> backward);
    /// Internal: keep a leaf alive until the next reset.
    void keep(const std::shared_ptr<node<T>>& leaf);
    /// Internal: op data storage.
    arena& data() { return arena_; }
    /// Internal: scratch buffer for broadcast reductions in the reverse pass.
    array_type& scratch() { return scratch_; }

    /// Internal: take leaf `n`'s gradient buffers for this tape's current pass.
    void claim(node<T>* n);
    /// Internal: the thread currently recording on this tape (default id while free).
    std::thread::id owner() const { return owner_.load(std::memory_order_acquire); }
    /// Internal: serial of the first node made since the current owner took this tape.
    std::uint64_t lease_start() const { return lease_start_.load(std::memory_order_acquire); }
    /// Internal: hand a free tape to the calling thread / give it back at thread exit.
    void lease();
    void retire();

    tape() = default;
    tape(const tape&) = delete;
    tape& operator=(const tape&) = delete;

  private:
    void run(node<T>* root, const tensor<T>* seed_graph, const array_type* seed, bool into_leaf_grad,
             bool create_graph);
    node<T>& slot(std::size_t i) { return blocks_[i / block_nodes][i % block_nodes]; }

    std::vector<std::unique_ptr<node<T>[]>> blocks_;
    std::size_t size_ = 0;
    std::size_t peak_ = 0;
    std::uint64_t next_serial_ = 1;
    std::uint64_t generation_ = 0;  // drawn from a process-wide counter: unique across tapes
    std::uint64_t pass_ = 0;
    std::atomic<std::thread::id> owner_{};
    std::atomic<std::uint64_t> lease_start_{0};
    std::vector<std::shared_ptr<node<T>>> kept_;
    arena arena_;
    array_type scratch_;
    std::vector<node<T>*> claimed_;  // leaves whose gradient buffers this tape's pass holds
    int passes_ = 0;                 // reverse passes running (gradient() inside a rule nests)
    struct pass_scope;
};

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

/// Reset the calling thread's tape for scalar type T (between training steps).
template <class T> void reset_tape() { tape<T>::current().reset(); }

}  // namespace tapegrad
