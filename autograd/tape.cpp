// The tape: node storage, the reverse pass, gradient accumulation.

#include <algorithm>
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
    if (node_->on_tape && node_->serial != serial_)
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
template <class T> tape<T>& tape<T>::current() {
    thread_local tape<T> instance;
    return instance;
}

template <class T> node<T>* tape<T>::push(const char* op, backward_fn<T> backward) {
    if (size_ == blocks_.size() * block_nodes) blocks_.push_back(std::make_unique<node<T>[]>(block_nodes));
    node<T>& n = slot(size_);
    n.index = size_++;
    peak_ = std::max(peak_, size_);
    n.op = op;
    n.backward = backward;
    n.serial = next_serial_++;
    n.pass = 0;
    n.on_tape = true;
    n.requires_grad = true;
    n.inputs = nullptr;
    n.n_inputs = 0;
    n.aux = nullptr;
    n.n_aux = 0;
    n.scalar[0] = n.scalar[1] = T(0);
    return &n;
}

template <class T> void tape<T>::keep(const std::shared_ptr<node<T>>& leaf) {
    if (leaf->kept_in == generation_) return;
    leaf->kept_in = generation_;
    kept_.push_back(leaf);
}

template <class T> void tape<T>::rewind(const position& p) {
    if (p.nodes > size_) throw std::logic_error("tapegrad: tape::rewind to a position past the end of the tape");
    for (std::size_t i = p.nodes; i < size_; ++i) {
        node<T>& n = slot(i);
        n.serial = 0;
        n.grad_graph = tensor<T>();
    }
    for (std::size_t i = p.kept; i < kept_.size(); ++i) kept_[i]->kept_in = 0;
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
    for (auto& leaf : kept_) leaf->grad_graph = tensor<T>();
    kept_.clear();
    size_ = 0;
    ++generation_;
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
    const std::uint64_t pass = ++pass_;
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
    for (const auto& w : wrt) w.value();  // throws for undefined or stale handles
    run(output.node_ptr(), seed.defined() ? &seed : nullptr, seed.defined() ? &seed.value() : nullptr, false,
        opts.create_graph);
    const std::uint64_t pass = pass_;
    std::vector<tensor<T>> out;
    out.reserve(wrt.size());
    for (const auto& w : wrt) {
        node<T>* n = w.node_ptr();
        if (n->pass != pass) {
            out.push_back(tensor<T>::zeros(w.shape()));
        } else if (opts.create_graph) {
            out.push_back(n->grad_graph);
        } else {
            out.push_back(tensor<T>(n->on_tape ? n->grad : n->work));
        }
    }
    if (opts.create_graph)  // leaves must not keep recorded gradients alive past the call
        for (auto& leaf : kept_) leaf->grad_graph = tensor<T>();
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
            const std::uint64_t kept_before = in->kept_in;
            tp.keep(inputs[i]->owner());
            in->uses = in->kept_in == kept_before ? in->uses + 1 : 1;  // first use this generation: 1
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
