// The tape's storage: the per-thread tape pool, node slots, keeping leaves alive,
// rewind/reset and the counters; and make_result, which records an op's node (or
// hands out a pooled leaf when nothing is recorded).
// The reverse pass is in reverse_pass.cpp.

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "autograd/detail/record.hpp"

namespace tapegrad {

namespace {
// Generations are stamped into leaves that several tapes may share, so they come
// from a process-wide counter and never repeat across tapes.
std::atomic<std::uint64_t> g_generation{0};
}  // namespace

namespace {
/// Every tape ever made, and those free for a new thread. Tapes are never freed
/// (the pool itself is leaked on purpose): a handle that outlives its thread
/// still points at readable memory and fails its checks with a clear error.
template <class T> struct tape_pool {
    std::mutex m;
    std::vector<std::unique_ptr<tape<T>>> all;
    std::vector<tape<T>*> free;
};
template <class T> tape_pool<T>& pool_of() {
    static tape_pool<T>* p = new tape_pool<T>;
    return *p;
}
}  // namespace

template <class T> tape<T>*& tape<T>::redirect() {
    thread_local tape<T>* t = nullptr;
    return t;
}

template <class T> tape<T>& tape<T>::current() {
    if (tape<T>* r = redirect()) return *r;  // a compiled step's own tape, while it traces or replays
    struct lease_t {
        tape<T>* t;
        lease_t() {
            auto& p = pool_of<T>();
            std::lock_guard<std::mutex> lock(p.m);
            if (p.free.empty()) {
                p.all.push_back(std::make_unique<tape<T>>());
                t = p.all.back().get();
            } else {
                t = p.free.back();
                p.free.pop_back();
            }
            t->lease();
        }
        ~lease_t() {
            t->retire();
            auto& p = pool_of<T>();
            std::lock_guard<std::mutex> lock(p.m);
            p.free.push_back(t);
        }
    };
    thread_local lease_t lease;
    return *lease.t;
}

template <class T> void tape<T>::lease() {
    generation_ = ++g_generation;
    lease_start_.store(next_serial_, std::memory_order_release);
    owner_.store(std::this_thread::get_id(), std::memory_order_release);
}

template <class T> void tape<T>::retire() {
    reset();
    owner_.store(std::thread::id(), std::memory_order_release);
}

template <class T> void tape<T>::claim(node<T>* n) {
    const void* expected = nullptr;
    if (!n->writer.compare_exchange_strong(expected, static_cast<const void*>(this), std::memory_order_acq_rel))
        throw std::logic_error(
            "tapegrad: two threads ran reverse passes into the same leaf (shape " + shape_str(n->value.shape()) +
            ") at the same time; a leaf's gradient buffers belong to one pass at a time. Give each thread its own "
            "copy of the parameters, or serialise backward()/gradient() with a mutex");
    claimed_.push_back(n);
}

template <class T> node<T>* tape<T>::push(const char* op, backward_fn<T> backward) {
    if (size_ == blocks_.size() * block_nodes) {
        blocks_.push_back(std::make_unique<node<T>[]>(block_nodes));
        // Written once, before any handle to the slot exists: other threads' checks read them.
        for (std::size_t i = 0; i < block_nodes; ++i) {
            blocks_.back()[i].home = this;
            blocks_.back()[i].on_tape = true;
        }
    }
    node<T>& n = slot(size_);
    n.index = size_++;
    peak_ = std::max(peak_, size_);
    n.op = op;
    n.backward = backward;
    n.serial = next_serial_++;
    n.pass = 0;
    n.requires_grad = true;
    n.inputs = nullptr;
    n.n_inputs = 0;
    n.op_data = nullptr;
    n.n_op_data = 0;
    n.scalar[0] = n.scalar[1] = T(0);
    n.forward = nullptr;
    n.forward_range = nullptr;
    n.backward_range = nullptr;  // a reused slot must not keep its last op's kernels
    n.backward_kernel = nullptr;
    n.fused_step = nullptr;
    return &n;
}

template <class T> void tape<T>::restamp() {
    for (std::size_t b = 0, left = size_; left > 0; ++b) {  // block by block: no division per node
        node<T>* block = blocks_[b].get();
        const std::size_t count = std::min(left, block_nodes);
        for (std::size_t i = 0; i < count; ++i) block[i].serial = next_serial_++;
        left -= count;
    }
}

template <class T> void tape<T>::keep(const std::shared_ptr<node<T>>& leaf) {
    if (leaf->kept_in.load(std::memory_order_relaxed) == generation_) return;
    leaf->kept_in.store(generation_, std::memory_order_relaxed);
    kept_.push_back(leaf);
}

template <class T> void tape<T>::rewind(const position& p) {
    if (p.nodes > size_) throw std::logic_error("tapegrad: tape::rewind to a position past the end of the tape");
    for (std::size_t i = p.nodes; i < size_; ++i) {
        node<T>& n = slot(i);
        n.serial = 0;
        n.grad_graph = tensor<T>();
        n.hooks.reset();  // a result's hooks live until its tape's reset
    }
    for (std::size_t i = p.kept; i < kept_.size(); ++i) kept_[i]->kept_in.store(0, std::memory_order_relaxed);
    if (p.kept < kept_.size()) kept_.resize(p.kept);
    size_ = p.nodes;
    arena_.rewind(p.arena_block, p.arena_used);
}

template <class T> void tape<T>::reset() {
    for (std::size_t i = 0; i < size_; ++i) {
        node<T>& n = slot(i);
        n.serial = 0;
        n.grad_graph = tensor<T>();
        n.hooks.reset();  // a result's hooks live until its tape's reset
    }
    kept_.clear();
    size_ = 0;
    generation_ = ++g_generation;
    arena_.reset();
}

template <class T> tape_stats tape<T>::stats() const {
    tape_stats s;
    s.nodes = size_;
    s.node_capacity = blocks_.size() * block_nodes;
    s.peak_nodes = peak_;
    for (const auto& b : blocks_)
        for (std::size_t i = 0; i < block_nodes; ++i)
            s.value_bytes += (b[i].value.size() + b[i].grad.size() + b[i].pass_grad.size()) * sizeof(T);
    s.value_bytes += scratch_.size() * sizeof(T);
    s.arena_bytes = arena_.capacity();
    s.kept_leaves = kept_.size();
    for (std::size_t i = 0; i < detail::broadcast_scratch_buffers; ++i)
        s.thread_scratch_bytes += detail::broadcast_scratch<T>(i).size() * sizeof(T);
    return s;
}

// ------------------------------------------------------------- make_result
namespace detail {

namespace {
template <class T>
tensor<T> push_result(const char* op, backward_fn<T> backward, const tensor<T>* const* inputs, std::size_t n_inputs,
                      std::size_t n_op_data) {
    tape<T>& tp = tape<T>::current();
    node<T>* n = tp.push(op, backward);
    n->inputs = tp.data().template alloc<node<T>*>(n_inputs);
    n->n_inputs = static_cast<std::uint32_t>(n_inputs);
    for (std::size_t i = 0; i < n_inputs; ++i) {
        node<T>* in = inputs[i]->node_ptr();
        n->inputs[i] = in;
        if (!in->on_tape && inputs[i]->owner()) tp.keep(inputs[i]->owner());
    }
    if (n_op_data) {
        n->op_data = tp.data().template alloc<std::size_t>(n_op_data);
        n->n_op_data = static_cast<std::uint32_t>(n_op_data);
    }
    return tensor<T>::from_tape(n);
}
}  // namespace

// Results of ops that record nothing (inference under no_grad, ops on constants) are
// leaves. Building one cost a node (three xarrays) and a value buffer, both freed
// with the last handle: 3-4x a recorded op on small tensors. Instead each thread keeps
// a few freed leaves with their value buffers: the next such result takes one, and a
// value of the same size as before is written in place, with no allocation.
namespace {
constexpr std::size_t pooled_leaves = 32;                  // per thread and scalar type
constexpr std::size_t pooled_value_bytes = std::size_t(1) << 20;  // larger buffers are freed

template <class T> bool& leaf_pool_closed() {  // trivially destructible: readable during thread exit
    thread_local bool closed = false;
    return closed;
}
template <class T> struct leaf_pool {
    std::vector<node<T>*> free;
    leaf_pool() { free.reserve(pooled_leaves); }
    ~leaf_pool() {
        leaf_pool_closed<T>() = true;
        for (node<T>* n : free) delete n;
    }
};
// This thread's pool; null while the thread exits, or if making the pool failed.
template <class T> leaf_pool<T>* this_thread_leaf_pool() noexcept {
    if (leaf_pool_closed<T>()) return nullptr;
    try {
        thread_local leaf_pool<T> pool;
        return &pool;
    } catch (...) {
        return nullptr;
    }
}

// A leaf can go back to the pool if nothing but its value was ever used: a result
// that became a parameter (requires_grad, gradients, hooks) is simply freed.
template <class T> bool plain_leaf(const node<T>& n) {
    return !n.requires_grad && !n.grad_defined && n.grad.size() == 0 && n.pass_grad.size() == 0 && !n.hooks &&
           !n.custom && !n.grad_graph.defined() &&
           n.value.size() * sizeof(T) <= pooled_value_bytes;
}

template <class T> struct recycle_leaf {
    void operator()(node<T>* n) const noexcept {
        leaf_pool<T>* pool = plain_leaf(*n) ? this_thread_leaf_pool<T>() : nullptr;
        if (pool && pool->free.size() < pooled_leaves) {
            // what a tape or a pass may have stamped while the leaf was an input
            n->kept_in.store(0, std::memory_order_relaxed);
            n->writer.store(nullptr, std::memory_order_relaxed);
            n->pass = 0;
            n->scalar[0] = n->scalar[1] = T(0);
            pool->free.push_back(n);  // within the reserved capacity: no allocation
            return;
        }
        delete n;
    }
};

// The shared_ptr control blocks of pooled leaves, recycled the same way: with them a
// result that reuses a leaf allocates nothing at all.
template <class U> struct control_block_pool {
    std::vector<void*> free;
    control_block_pool() { free.reserve(pooled_leaves); }
    ~control_block_pool() {
        closed() = true;
        for (void* p : free) ::operator delete(p);
    }
    static bool& closed() {
        thread_local bool c = false;
        return c;
    }
    static control_block_pool* here() noexcept {  // null as this_thread_leaf_pool
        if (closed()) return nullptr;
        try {
            thread_local control_block_pool pool;
            return &pool;
        } catch (...) {
            return nullptr;
        }
    }
};
template <class U> struct control_block_allocator {
    using value_type = U;
    control_block_allocator() = default;
    template <class V> control_block_allocator(const control_block_allocator<V>&) noexcept {}
    U* allocate(std::size_t n) {
        control_block_pool<U>* pool = n == 1 ? control_block_pool<U>::here() : nullptr;
        if (pool && !pool->free.empty()) {
            void* p = pool->free.back();
            pool->free.pop_back();
            return static_cast<U*>(p);
        }
        return static_cast<U*>(::operator new(n * sizeof(U)));
    }
    void deallocate(U* p, std::size_t n) noexcept {
        control_block_pool<U>* pool = n == 1 ? control_block_pool<U>::here() : nullptr;
        if (pool && pool->free.size() < pooled_leaves) {
            pool->free.push_back(p);
            return;
        }
        ::operator delete(p);
    }
    template <class V> bool operator==(const control_block_allocator<V>&) const noexcept { return true; }
    template <class V> bool operator!=(const control_block_allocator<V>&) const noexcept { return false; }
};

template <class T> std::shared_ptr<node<T>> new_result_leaf(const char* op) {
    node<T>* n = nullptr;
    leaf_pool<T>* pool = this_thread_leaf_pool<T>();
    if (pool && !pool->free.empty()) {
        n = pool->free.back();
        pool->free.pop_back();
    } else {
        n = new node<T>();
    }
    n->op = op;
    // on bad_alloc the deleter takes n back
    return std::shared_ptr<node<T>>(n, recycle_leaf<T>{}, control_block_allocator<node<T>>{});
}
}  // namespace

template <class T>
tensor<T> make_result(const char* op, backward_fn<T> backward, const tensor<T>* const* inputs, std::size_t n_inputs,
                      std::size_t n_op_data) {
    bool record = false;
    if (grad_enabled())
        for (std::size_t i = 0; i < n_inputs && !record; ++i) record = inputs[i]->node_ptr()->requires_grad;
    if (record) return push_result(op, backward, inputs, n_inputs, n_op_data);
    if (recording_forced()) {  // a compiled step's trace records every op, as a constant when no gradient flows
        tensor<T> out = push_result(op, backward, inputs, n_inputs, n_op_data);
        out.node_ptr()->requires_grad = false;
        return out;
    }
    return tensor<T>::from_leaf(new_result_leaf<T>(op));
}

template <class T>
tensor<T> make_tape_result(const char* op, backward_fn<T> backward, std::initializer_list<const tensor<T>*> inputs,
                           std::size_t n_op_data) {
    tensor<T> out = push_result(op, backward, inputs.begin(), inputs.size(), n_op_data);
    bool any = false;
    for (const tensor<T>* t : inputs) any = any || t->node_ptr()->requires_grad;
    out.node_ptr()->requires_grad = any;  // false: the reverse pass never reaches it
    return out;
}

}  // namespace detail

#define TAPEGRAD_INSTANTIATE(T) \
    template class tape<T>; \
    template tensor<T> detail::make_result<T>(const char*, backward_fn<T>, const tensor<T>* const*, std::size_t, std::size_t); \
    template tensor<T> detail::make_tape_result<T>(const char*, backward_fn<T>, \
                                                   std::initializer_list<const tensor<T>*>, std::size_t);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)

}  // namespace tapegrad
