// The tensor handle: leaf construction, the liveness and thread checks every
// access makes, and the accessors.

#include <sstream>
#include <stdexcept>
#include <thread>

#include <xtensor/xbuilder.hpp>

#include "autograd/detail/trace.hpp"
#include "autograd/hooks.hpp"
#include "autograd/tensor.hpp"

namespace tapegrad {

namespace {
std::string thread_str(std::thread::id id) {
    std::ostringstream os;
    os << id;
    return os.str();
}
}  // namespace

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
    if (detail::tracer<T>* t = detail::active_tracer<T>())
        t->not_replayable("a leaf's value was written in C++ (mutable_value) inside the compiled function; wrap "
                          "the write in tapegrad::replayed<T>(...) or use an optimizer");
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
    if (node_->on_tape) return node_->hooks && node_->hooks->retained_defined;  // retain_grad()
    return node_->grad_defined;
}

template <class T> const xt::xarray<T>& tensor<T>::grad() const {
    if (!has_grad())
        throw std::logic_error(
            node_->on_tape
                ? std::string("tapegrad: grad() of the result of op '") + node_->op +
                      "', which keeps no gradient; call retain_grad() on it before backward(), or use tape.gradient()"
                : std::string("tapegrad: grad() of a tensor that has no gradient; set requires_grad on the leaf and "
                              "call backward() on a loss that depends on it"));
    return node_->on_tape ? node_->hooks->retained : node_->grad;
}

template <class T> xt::xarray<T>& tensor<T>::mutable_grad() {
    if (detail::tracer<T>* t = detail::active_tracer<T>())
        t->not_replayable("a gradient was written in C++ (mutable_grad) inside the compiled function; wrap the "
                          "write in tapegrad::replayed<T>(...)");
    return const_cast<xt::xarray<T>&>(grad());
}

template <class T> void tensor<T>::zero_grad() {
    check_alive();
    auto forget = [](node<T>* n) {
        if (n->on_tape) {
            if (n->hooks) n->hooks->retained_defined = false;
        } else {
            n->grad_defined = false;
        }
    };
    if (detail::tracer<T>* t = detail::active_tracer<T>())  // repeated on every replay
        t->on_host([forget, n = node_, keep = owner_] { forget(n); }, nullptr, true);
    forget(node_);
}

namespace {
template <class T> hook_table<T>& hooks_of(node<T>* n) {
    if (!n->hooks) n->hooks = std::make_shared<hook_table<T>>();
    return *n->hooks;
}
}  // namespace

template <class T> hook_handle<T> tensor<T>::register_hook(hook_fn<T> fn) {
    check_alive();
    if (!node_->requires_grad)
        throw std::logic_error("tapegrad: register_hook() on a tensor that does not require grad (shape " +
                               shape_str(node_->value.shape()) +
                               "); no gradient would ever reach the hook. Set requires_grad on the leaf first");
    if (!fn) throw std::invalid_argument("tapegrad: register_hook() needs a callable hook, got an empty function");
    hook_table<T>& h = hooks_of(node_);
    hook_handle<T> handle;
    handle.table_ = node_->hooks;
    handle.id_ = h.next_id++;
    h.hooks.push_back({handle.id_, std::move(fn)});
    return handle;
}

template <class T> void tensor<T>::retain_grad() {
    check_alive();
    if (node_->on_tape) hooks_of(node_).retain = true;
}

template <class T> bool tensor<T>::retains_grad() const {
    check_alive();
    return node_->on_tape ? node_->hooks && node_->hooks->retain : node_->requires_grad;
}

template <class T> void hook_handle<T>::remove() {
    if (auto h = table_.lock()) {
        auto& v = h->hooks;
        for (auto it = v.begin(); it != v.end(); ++it)
            if (it->id == id_) {
                v.erase(it);
                break;
            }
    }
    table_.reset();
}

template <class T> bool hook_handle<T>::active() const {
    auto h = table_.lock();
    if (!h) return false;
    for (const auto& e : h->hooks)
        if (e.id == id_) return true;
    return false;
}

template <class T> void tensor<T>::backward() const { tape<T>::current().backward(*this, nullptr); }
template <class T> void tensor<T>::backward(const array_type& seed) const { tape<T>::current().backward(*this, &seed); }

template <class T> tensor<T> tensor<T>::detach() const { return tensor(value()); }

#define TAPEGRAD_INSTANTIATE(T) \
    template class tensor<T>; \
    template class hook_handle<T>;
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)

}  // namespace tapegrad
