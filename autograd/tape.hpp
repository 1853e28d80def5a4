#pragma once
// The tape: a flat, creation-ordered array of nodes in fixed-size blocks, walked
// backwards by the reverse pass (definitions in tape.cpp and reverse_pass.cpp).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "autograd/arena.hpp"
#include "autograd/node.hpp"

namespace tapegrad {

/// Counters a test or benchmark can read to prove the tape does not grow.
struct tape_stats {
    std::size_t nodes = 0;          ///< nodes recorded since the last reset
    std::size_t node_capacity = 0;  ///< node slots allocated (kept across resets)
    std::size_t peak_nodes = 0;     ///< most nodes ever recorded between resets
    std::size_t value_bytes = 0;    ///< bytes held by value and gradient buffers of all slots
    std::size_t arena_bytes = 0;    ///< bytes of the arena for inputs and op data
    std::size_t kept_leaves = 0;    ///< leaves referenced since the last reset
    /// bytes of the calling thread's buffers for broadcasting ops (shared by its tapes, kept for reuse)
    std::size_t thread_scratch_bytes = 0;
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

/// Internal: runs of elementwise nodes that a compiled step's reverse pass takes block
/// by block (autograd/compile.cpp), in descending order: range k is nodes [first[k], last[k]).
struct reverse_ranges {
    const std::size_t* first = nullptr;
    const std::size_t* last = nullptr;
    std::size_t count = 0;
    void* ctx = nullptr;
    /// Run the nodes of range k at indices <= top for reverse pass `pass`.
    void (*run)(void* ctx, std::size_t k, std::size_t top, std::uint64_t pass) = nullptr;
};

/// Internal: a compiled step's planned reverse pass (autograd/compile.cpp). run(ctx, pass)
/// writes the pass's gradients, or returns false before writing any (the tape's own loop
/// then runs the pass).
struct reverse_plan {
    void* ctx = nullptr;
    bool (*run)(void* ctx, std::uint64_t pass) = nullptr;
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
    /// Internal: backward() from a node of this tape whose checks a compiled step's
    /// trace already made (the replay of a recorded backward()).
    void replay_backward(node<T>* root, const array_type* seed, const reverse_ranges* ranges = nullptr);
    /// Internal: the same pass as a compiled step's plan; false when the plan declined.
    bool replay_planned(const reverse_plan& plan);

    /// Forget all recorded nodes, keeping their memory for the next step.
    /// Every tensor produced by a recorded op becomes invalid.
    void reset();
    /// A position on the tape; rewind() drops what was recorded after it.
    struct position { std::size_t nodes, arena_block, arena_used, kept; };
    /// The current position.
    position mark() const { return {size_, arena_.block(), arena_.used(), kept_.size()}; }
    /// Drop nodes recorded after `p`, keeping their memory.
    void rewind(const position& p);

    /// Number of the latest reverse pass on this tape: nodes it reached carry it (to_dot).
    std::uint64_t last_pass() const { return pass_; }
    /// Whether that pass recorded its gradients (create_graph): then the nodes' plain
    /// gradient buffers were not written.
    bool last_pass_recorded() const { return last_recorded_; }
    /// Number of nodes recorded since the last reset.
    std::size_t size() const { return size_; }
    /// Memory and node counters.
    tape_stats stats() const;

    /// Internal: give every recorded node a new serial, so handles to the old values
    /// go stale (a compiled step's replay rewrote them).
    void restamp();
    /// Internal: node i of the tape.
    node<T>& at(std::size_t i) { return slot(i); }
    /// Internal: while set, current() returns this tape on the calling thread (a
    /// compiled step's own tape during its trace and replay).
    static tape*& redirect();

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
             bool create_graph, const reverse_ranges* ranges = nullptr);
    node<T>& slot(std::size_t i) { return blocks_[i / block_nodes][i % block_nodes]; }

    std::vector<std::unique_ptr<node<T>[]>> blocks_;
    std::size_t size_ = 0;
    std::size_t peak_ = 0;
    std::uint64_t next_serial_ = 1;
    std::uint64_t generation_ = 0;  // drawn from a process-wide counter: unique across tapes
    std::uint64_t pass_ = 0;
    bool last_recorded_ = false;
    std::atomic<std::thread::id> owner_{};
    std::atomic<std::uint64_t> lease_start_{0};
    std::vector<std::shared_ptr<node<T>>> kept_;
    arena arena_;
    array_type scratch_;
    std::vector<node<T>*> claimed_;  // leaves whose gradient buffers this tape's pass holds
    int passes_ = 0;                 // reverse passes running (gradient() inside a rule nests)
    struct pass_scope;
};

/// Reset the calling thread's tape for scalar type T (between training steps).
template <class T> void reset_tape() { tape<T>::current().reset(); }

}  // namespace tapegrad
