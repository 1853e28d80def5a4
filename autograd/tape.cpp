// The tape: node storage, the reverse pass, gradient accumulation.

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <xtensor/xadapt.hpp>
#include <xtensor/xbuilder.hpp>

#include "autograd/detail/record.hpp"
#include "autograd/ops.hpp"

namespace tapegrad {

namespace {
thread_local bool g_grad_enabled = true;
thread_local int g_tape_depth = 0;
// Generations and pass numbers are stamped into leaves that several tapes may
// share, so they come from process-wide counters and never repeat across tapes.
std::atomic<std::uint64_t> g_generation{0};
std::atomic<std::uint64_t> g_pass{0};

std::string thread_str(std::thread::id id) {
    std::ostringstream os;
    os << id;
    return os.str();
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

std::string shape_str(const shape_t& shape) {
    std::ostringstream os;
    os << '[';
    for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    os << ']';
    return os.str();
}

// ------------------------------------------------------------------ arena
void* arena::alloc_bytes(std::size_t bytes, std::size_t align) {
    constexpr std::size_t min_block = 64 * 1024;
    if (bytes == 0) bytes = 1;
    while (true) {
        if (block_ < blocks_.size()) {
            auto& b = blocks_[block_];
            std::size_t start = (used_ + align - 1) / align * align;
            if (start + bytes <= b.size) {
                used_ = start + bytes;
                return b.data.get() + start;
            }
            // Too small: try the next block (a kept one if it fits, else a new one).
            ++block_;
            used_ = 0;
            if (block_ < blocks_.size() && blocks_[block_].size < bytes + align) {
                std::size_t size = std::max(min_block, bytes + align);
                blocks_[block_] = {std::make_unique<unsigned char[]>(size), size};
            }
            continue;
        }
        std::size_t size = std::max(min_block, bytes + align);
        blocks_.push_back({std::make_unique<unsigned char[]>(size), size});
        block_ = blocks_.size() - 1;
        used_ = 0;
    }
}

std::size_t arena::capacity() const {
    std::size_t total = 0;
    for (const auto& b : blocks_) total += b.size;
    return total;
}

// ----------------------------------------------------------------- tensor
template <class T> tensor<T>::tensor(array_type value, bool requires_grad) {
    owner_ = std::make_shared<node<T>>();
    owner_->value = std::move(value);
    owner_->requires_grad = requires_grad;
    node_ = owner_.get();
}

template <class T> tensor<T> tensor<T>::zeros(const shape_t& shape, bool rg) { return full(shape, T(0), rg); }
template <class T> tensor<T> tensor<T>::ones(const shape_t& shape, bool rg) { return full(shape, T(1), rg); }
template <class T> tensor<T> tensor<T>::full(const shape_t& shape, T fill, bool rg) {
    array_type v(shape);
    v.fill(fill);
    return tensor(std::move(v), rg);
}
template <class T> tensor<T> tensor<T>::scalar(T v, bool rg) { return tensor(array_type(v), rg); }

template <class T> tensor<T> tensor<T>::from_tape(node<T>* n) {
    tensor t;
    t.node_ = n;
    t.serial_ = n->serial;
    return t;
}

template <class T> tensor<T> tensor<T>::from_leaf(std::shared_ptr<node<T>> n) {
    tensor t;
    t.node_ = n.get();
    t.owner_ = std::move(n);
    return t;
}

template <class T> void tensor<T>::check_alive() const {
    if (!node_) throw std::logic_error("tapegrad: use of an undefined (default-constructed) tensor");
    if (!node_->on_tape) return;
    // A tape node belongs to its tape's thread: check that before reading anything the
    // owner may be writing. Tapes are never freed, so `home` is always readable.
    const tape<T>& home = *node_->home;
    const std::thread::id me = std::this_thread::get_id(), owner = home.owner();
    const bool exited = serial_ < home.lease_start() || owner == std::thread::id();
    if (exited && (owner != me || node_->serial != serial_))
        throw std::logic_error(
            "tapegrad: a tensor produced by a recorded op was used after the thread that recorded it exited "
            "(its tape was reset then); keep what must outlive the thread as a leaf: tensor::detach() or value()");
    if (owner != me)
        throw std::logic_error("tapegrad: a tensor produced by a recorded op on thread " + thread_str(owner) +
                               " was used on thread " + thread_str(me) +
                               "; recorded tensors belong to the thread whose tape recorded them. Run the ops and "
                               "backward() on that thread, or pass tensor::detach() (a leaf any thread may read)");
    if (node_->serial != serial_)
        throw std::logic_error(
            "tapegrad: a tensor produced by a recorded op was used after its tape was reset or rewound; "
            "copy what you need first (tensor::detach() or value()) or reset the tape later");
}

template <class T> const xt::xarray<T>& tensor<T>::value() const {
    check_alive();
    return node_->value;
}

template <class T> xt::xarray<T>& tensor<T>::mutable_value() {
    check_alive();
    if (node_->on_tape)
        throw std::logic_error(std::string("tapegrad: mutable_value() on the result of op '") + node_->op +
                               "'; only leaves can be changed in place (use detach() for a modifiable copy)");
    return node_->value;
}

template <class T> shape_t tensor<T>::shape() const {
    const auto& s = value().shape();
    return shape_t(s.begin(), s.end());
}

template <class T> T tensor<T>::item() const {
    const auto& v = value();
    if (v.size() != 1)
        throw std::invalid_argument("tapegrad: item() needs a one-element tensor, got shape " + shape_str(v.shape()));
    return v.data()[0];
}

template <class T> bool tensor<T>::requires_grad() const {
    check_alive();
    return node_->requires_grad;
}

template <class T> tensor<T>& tensor<T>::set_requires_grad(bool on) {
    check_alive();
    if (node_->on_tape)
        throw std::logic_error(std::string("tapegrad: set_requires_grad() on the result of op '") + node_->op +
                               "'; only leaves can change it (detach() first)");
    node_->requires_grad = on;
    return *this;
}

template <class T> bool tensor<T>::is_leaf() const {
    check_alive();
    return !node_->on_tape;
}

template <class T> const char* tensor<T>::op_name() const {
    check_alive();
    return node_->op;
}

template <class T> bool tensor<T>::has_grad() const {
    check_alive();
    return !node_->on_tape && node_->grad_defined;
}

template <class T> const xt::xarray<T>& tensor<T>::grad() const {
    if (!has_grad())
        throw std::logic_error(
            "tapegrad: grad() of a tensor that has no gradient; set requires_grad on the leaf and call "
            "backward() on a loss that depends on it (results of ops keep no .grad; use tape.gradient())");
    return node_->grad;
}

template <class T> xt::xarray<T>& tensor<T>::mutable_grad() {
    grad();
    return node_->grad;
}

template <class T> void tensor<T>::zero_grad() {
    check_alive();
    node_->grad_defined = false;
}

template <class T> void tensor<T>::backward() const { tape<T>::current().backward(*this, nullptr); }
template <class T> void tensor<T>::backward(const array_type& seed) const { tape<T>::current().backward(*this, &seed); }

template <class T> tensor<T> tensor<T>::detach() const { return tensor(value()); }

// ------------------------------------------------------------------- tape
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

template <class T> tape<T>& tape<T>::current() {
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
    n.aux = nullptr;
    n.n_aux = 0;
    n.scalar[0] = n.scalar[1] = T(0);
    return &n;
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
            s.value_bytes += (b[i].value.size() + b[i].grad.size() + b[i].work.size()) * sizeof(T);
    s.value_bytes += scratch_.size() * sizeof(T);
    s.arena_bytes = arena_.capacity();
    s.kept_leaves = kept_.size();
    return s;
}

template <class T>
void tape<T>::run(node<T>* root, const tensor<T>* seed_graph, const array_type* seed, bool into_leaf_grad,
                  bool create_graph) {
    const std::uint64_t pass = pass_ = ++g_pass;
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
    if (!root->on_tape) return;

    std::optional<enable_grad> recording;
    if (create_graph) recording.emplace();
    // Creation order is a topological order: one loop from the root down.
    for (std::size_t i = root->index + 1; i-- > 0;) {
        node<T>& n = slot(i);
        if (n.pass != pass || !n.backward) continue;
        backward_ctx<T> ctx{*this, n, pass, into_leaf_grad, create_graph};
        n.backward(ctx);
    }
}

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
    pass_scope scope(*this);
    run(output.node_ptr(), nullptr, seed, true, false);
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
            out.push_back(tensor<T>(n->on_tape ? n->grad : n->work));
        }
    }
    return out;
}

// ----------------------------------------------------------- gradient_tape
template <class T> gradient_tape<T>::gradient_tape() : start_(tape<T>::current().size()), depth_(++g_tape_depth) {}
template <class T> gradient_tape<T>::~gradient_tape() { --g_tape_depth; }
template <class T>
std::vector<tensor<T>> gradient_tape<T>::gradient(const tensor<T>& loss, const std::vector<tensor<T>>& wrt) {
    gradient_options opts;
    opts.create_graph = depth_ > 1;  // an enclosing tape is watching: record the reverse pass
    return tape<T>::current().gradient(loss, wrt, opts);
}
template <class T> std::size_t gradient_tape<T>::recorded() const { return tape<T>::current().size() - start_; }

// ------------------------------------------------------- backward_ctx, make_result
template <class T> void backward_ctx<T>::add_graph_to(node<T>* n, tensor<T> g) {
    if (!n->on_tape) claim(n);
    if (!detail::shapes_equal(g.value().shape(), n->value.shape()))
        g = tapegrad::sum_to(g, shape_t(n->value.shape().begin(), n->value.shape().end()));
    n->grad_graph = (n->pass == pass) ? tapegrad::add(n->grad_graph, g) : g;
    n->pass = pass;
}

namespace detail {

template <class T>
tensor<T> make_result(const char* op, backward_fn<T> backward, const tensor<T>* const* inputs, std::size_t n_inputs,
                      std::size_t n_aux) {
    bool record = false;
    if (grad_enabled())
        for (std::size_t i = 0; i < n_inputs && !record; ++i) record = inputs[i]->node_ptr()->requires_grad;
    if (!record) {
        auto leaf = std::make_shared<node<T>>();
        leaf->op = op;
        return tensor<T>::from_leaf(std::move(leaf));
    }
    tape<T>& tp = tape<T>::current();
    node<T>* n = tp.push(op, backward);
    n->inputs = tp.data().template alloc<node<T>*>(n_inputs);
    n->n_inputs = static_cast<std::uint32_t>(n_inputs);
    for (std::size_t i = 0; i < n_inputs; ++i) {
        node<T>* in = inputs[i]->node_ptr();
        n->inputs[i] = in;
        if (!in->on_tape && inputs[i]->owner()) {
            const std::uint64_t kept_before = in->kept_in.load(std::memory_order_relaxed);
            tp.keep(inputs[i]->owner());
            const bool again = in->kept_in.load(std::memory_order_relaxed) == kept_before;  // first use this generation: 1
            in->uses.store(again ? in->uses.load(std::memory_order_relaxed) + 1 : 1, std::memory_order_relaxed);
        }
    }
    if (n_aux) {
        n->aux = tp.data().template alloc<std::size_t>(n_aux);
        n->n_aux = static_cast<std::uint32_t>(n_aux);
    }
    return tensor<T>::from_tape(n);
}

}  // namespace detail

#define TAPEGRAD_INSTANTIATE(T)                                                                                  \
    template class tensor<T>;                                                                                    \
    template class tape<T>;                                                                                      \
    template class gradient_tape<T>;                                                                             \
    template struct backward_ctx<T>;                                                                             \
    template tensor<T> detail::make_result<T>(const char*, backward_fn<T>, const tensor<T>* const*, std::size_t, \
                                              std::size_t);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)

}  // namespace tapegrad
