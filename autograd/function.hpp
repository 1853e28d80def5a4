#pragma once
// Custom ops (docs/custom_ops.md): a forward on xtensor values and a backward, the
// vector-Jacobian product, either on plain values (differentiable once) or with
// tensor ops (twice differentiable). What the forward saves lives in the op's tape
// slot and is reused by the next call recorded there, so a training loop in steady
// state allocates nothing for it.
//
//     custom_op<double> swish("swish");
//     swish.forward([](auto& a) { a.y() = a.x(0) / (1.0 + xt::exp(-a.x(0))); })
//          .backward_tensors([](auto& a) {
//              tensor<double> s = sigmoid(a.x(0));                // d/dx x s(x) = s + x s (1 - s)
//              a.set_grad(0, a.gy() * (s + a.x(0) * s * (1.0 - s)));
//          });
//     tensor<double> y = swish({x});

#include <atomic>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "autograd/detail/record.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/scopes.hpp"

namespace tapegrad {

/// The default saved-state and parameter type of a custom op: nothing.
struct no_saved {};

/// Turn the first-run check on or off: while on, every float64 custom op is checked
/// (gradcheck, and gradgradcheck when its backward uses tensor ops) at its inputs the
/// first time it runs, and throws std::logic_error naming the op if it fails. Also on
/// when the environment variable TAPEGRAD_CHECK_CUSTOM_OPS is set to 1. For development.
void set_check_custom_ops(bool on);
/// Whether the first-run check is on.
bool check_custom_ops();

template <class T, class S, class P> class custom_op;

/// What a custom op's forward sees: the input values, the typed parameters of the
/// call, the output to write and the state to save for the backward.
template <class T, class S, class P> struct forward_args {
    const xt::xarray<T>& x(std::size_t i) const { return inputs[i]->node_ptr()->value; }
    std::size_t n_inputs() const { return n; }
    xt::xarray<T>& y() const { return *out; }  ///< write the output here
    S& saved() const { return *state; }         ///< kept for the backward (reused across steps)
    const P& params() const { return *par; }     ///< the call's parameters
    bool recording = false;  ///< false when no backward will run: saving can be skipped
    const tensor<T>* const* inputs;
    std::size_t n;
    xt::xarray<T>* out;
    S* state;
    const P* par;
};

/// What a backward on plain values sees. grad(i) is the buffer for dL/dx_i, of
/// x(i)'s shape: assign the whole gradient (it may be given any shape that
/// broadcasts to x(i), it is summed down).
template <class T, class S> struct value_backward_args {
    const xt::xarray<T>& x(std::size_t i) const { return c.x(i); }
    const xt::xarray<T>& y() const { return c.y(); }
    const xt::xarray<T>& gy() const { return c.gy(); }  ///< dL/dy
    const S& saved() const { return state; }
    bool wants(std::size_t i) const { return c.wants(i); }
    std::size_t n_inputs() const { return c.self.n_inputs; }
    xt::xarray<T>& grad(std::size_t i);
    backward_ctx<T>& c;
    const S& state;
    std::uint64_t handed = 0;  // bit i: grad(i) was asked for
    std::uint64_t direct = 0;  // bit i: ...and is input i's gradient buffer itself
};

/// What a backward with tensor ops sees: the inputs, output and dL/dy as tensors
/// (recorded when a second derivative is taken). set_grad(i, g) gives dL/dx_i.
template <class T, class S> struct tensor_backward_args {
    tensor<T> x(std::size_t i) const { return c.tx(i); }
    tensor<T> y() const { return c.ty(); }
    tensor<T> gy() const { return c.create_graph ? c.tgy() : tensor<T>(c.gy()); }
    const S& saved() const { return state; }
    bool wants(std::size_t i) const { return c.wants(i); }
    std::size_t n_inputs() const { return c.self.n_inputs; }
    void set_grad(std::size_t i, const tensor<T>& g) const {
        if (!c.wants(i)) return;
        if (c.create_graph) c.add_graph(i, g);
        else c.add(i, g.value());
    }
    backward_ctx<T>& c;
    const S& state;
};

namespace detail {

template <class T> std::vector<xt::xarray<T>>& spare_grads() {
    thread_local std::vector<xt::xarray<T>> spares;
    return spares;
}

template <class T, class S, class P> struct custom_def {
    std::string name;
    std::function<void(forward_args<T, S, P>&)> forward;
    std::function<void(value_backward_args<T, S>&)> backward_values;
    std::function<void(tensor_backward_args<T, S>&)> backward_tensors;
    std::atomic<bool> checked{false};
};

template <class T, class S, class P> struct custom_slot final : custom_state {
    std::shared_ptr<const custom_def<T, S, P>> def;
    S saved{};
    std::optional<P> params;  // recorded nodes: the call's parameters, for a compiled step's replay
    static const void* key() {
        static const char k = 0;
        return &k;
    }
    custom_slot() { type_key = key(); }
};

// The rule every custom op's node runs: dispatch to the backward the op has.
template <class T, class S, class P> void custom_backward(backward_ctx<T>& c) {
    auto* slot = static_cast<custom_slot<T, S, P>*>(c.self.custom.get());
    const custom_def<T, S, P>& d = *slot->def;
    if (c.create_graph) {
        if (!d.backward_tensors)
            throw std::logic_error("tapegrad: custom op '" + d.name +
                                   "' has a backward on plain values and is differentiable once; write its "
                                   "backward with tensor ops (custom_op::backward_tensors) to take a second "
                                   "derivative through it");
        tensor_backward_args<T, S> a{c, slot->saved};
        d.backward_tensors(a);
        return;
    }
    if (!d.backward_values) {  // tensor backward used once: its ops need not record
        no_grad quiet;
        tensor_backward_args<T, S> a{c, slot->saved};
        d.backward_tensors(a);
        return;
    }
    value_backward_args<T, S> a{c, slot->saved};
    d.backward_values(a);
    auto& spares = spare_grads<T>();
    for (std::size_t i = 0; i < c.self.n_inputs; ++i) {
        if (!(a.handed >> i & 1u) || !c.wants(i)) continue;
        node<T>* in = c.input(i);
        if (a.direct >> i & 1u) {
            xt::xarray<T>& g = c.target(in);
            if (shapes_equal(g.shape(), in->value.shape())) {
                c.mark(in);
                continue;
            }
            std::swap(g, spares[i]);  // the user gave a broadcastable shape: sum it down
        }
        c.add_to(in, spares[i]);
    }
}

/// Whether a compiled step can replay op calls with parameters P: they are copied at the trace.
template <class P> constexpr bool replayable_params = std::is_copy_constructible<P>::value && std::is_copy_assignable<P>::value;

// Replay kernel of a custom op: its forward again, with the parameters of the recorded call.
template <class T, class S, class P> void custom_forward(node<T>& n, node<T>* const* in) {
    auto* slot = static_cast<custom_slot<T, S, P>*>(n.custom.get());
    constexpr std::size_t on_stack = 4;  // most ops: no thread_local lookup, no vector
    if (n.n_inputs <= on_stack) {
        tensor<T> handles[on_stack];
        const tensor<T>* ptrs[on_stack];
        for (std::size_t i = 0; i < n.n_inputs; ++i) {
            handles[i] = backward_ctx<T>::handle(in[i]);
            ptrs[i] = &handles[i];
        }
        forward_args<T, S, P> a{true, ptrs, n.n_inputs, &n.value, &slot->saved, &*slot->params};
        slot->def->forward(a);
        return;
    }
    thread_local std::vector<tensor<T>> handles;
    thread_local std::vector<const tensor<T>*> ptrs;
    handles.clear();
    ptrs.clear();
    for (std::size_t i = 0; i < n.n_inputs; ++i) handles.push_back(backward_ctx<T>::handle(in[i]));
    for (const tensor<T>& h : handles) ptrs.push_back(&h);
    forward_args<T, S, P> a{true, ptrs.data(), n.n_inputs, &n.value, &slot->saved, &*slot->params};
    slot->def->forward(a);
    handles.clear();  // drop the handles' hold on leaves
}

}  // namespace detail

template <class T, class S> xt::xarray<T>& value_backward_args<T, S>::grad(std::size_t i) {
    if (i >= 64 || i >= c.self.n_inputs)
        throw std::out_of_range("tapegrad: grad(" + std::to_string(i) + ") of a custom op with " +
                                std::to_string(c.self.n_inputs) + " inputs");
    auto& spares = detail::spare_grads<T>();
    if (spares.size() <= i) spares.resize(i + 1);
    handed |= std::uint64_t(1) << i;
    node<T>* in = c.input(i);
    if (!c.wants(i) || c.defined(in)) {  // not wanted, or holds a gradient already: add to it afterwards
        detail::fit(spares[i], in->value.shape());  // writable through data() as well as assignable
        return spares[i];
    }
    direct |= std::uint64_t(1) << i;
    xt::xarray<T>& g = c.target(in);
    detail::fit(g, in->value.shape());
    return g;
}

/// A user-defined op on T tensors: `S` is what its forward saves for its backward
/// (any default-constructible type: arrays, vectors, strings, numbers), `P` the type
/// of the parameters each call takes. Cheap to copy (a shared definition); the
/// definition stays alive as long as a node recorded with it.
template <class T, class S = no_saved, class P = no_saved> class custom_op {
  public:
    /// An op called `name` in errors and reports.
    explicit custom_op(std::string name) : def_(std::make_shared<detail::custom_def<T, S, P>>()) {
        def_->name = std::move(name);
    }
    /// The forward: fill a.y() from a.x(i) and a.params(), save into a.saved().
    custom_op& forward(std::function<void(forward_args<T, S, P>&)> f) {
        def_->forward = std::move(f);
        return *this;
    }
    /// A backward on plain values (differentiable once): fill a.grad(i) for each wanted input.
    custom_op& backward_values(std::function<void(value_backward_args<T, S>&)> f) {
        def_->backward_values = std::move(f);
        return *this;
    }
    /// A backward with tensor ops (twice differentiable): a.set_grad(i, ...) for each input.
    /// With backward_values too, that one runs for first derivatives and this one for
    /// recorded (create_graph) passes.
    custom_op& backward_tensors(std::function<void(tensor_backward_args<T, S>&)> f) {
        def_->backward_tensors = std::move(f);
        return *this;
    }
    const std::string& name() const { return def_->name; }
    /// Whether a second derivative can be taken through the op.
    bool twice_differentiable() const { return static_cast<bool>(def_->backward_tensors); }

    /// Apply the op.
    tensor<T> operator()(std::initializer_list<tensor<T>> inputs, const P& params = P{}) const {
        std::vector<const tensor<T>*> ptrs;
        ptrs.reserve(inputs.size());
        for (const auto& t : inputs) ptrs.push_back(&t);
        return apply(ptrs.data(), ptrs.size(), params);
    }
    tensor<T> operator()(const std::vector<tensor<T>>& inputs, const P& params = P{}) const {
        std::vector<const tensor<T>*> ptrs;
        ptrs.reserve(inputs.size());
        for (const auto& t : inputs) ptrs.push_back(&t);
        return apply(ptrs.data(), ptrs.size(), params);
    }
    /// Apply the op to `n` inputs given as pointers (no allocation).
    tensor<T> apply(const tensor<T>* const* inputs, std::size_t n, const P& params = P{}) const;

  private:
    void first_run_check(const tensor<T>* const* inputs, std::size_t n, const P& params) const;
    std::shared_ptr<detail::custom_def<T, S, P>> def_;
};

/// What check_custom_op found: first and (when the backward uses tensor ops) second derivatives.
struct custom_op_report {
    std::string op;
    gradcheck_report first;
    gradcheck_report second;
    bool second_checked = false;  ///< false for a backward on values (differentiable once)
    bool passed() const { return first.passed() && (!second_checked || second.passed()); }
    std::string table() const {
        return "custom op '" + op + "': " + (passed() ? "PASS" : "FAIL") + "\n" + first.table() +
               (second_checked ? second.table() : "second derivatives: not checked (backward on values)\n");
    }
};

/// Check a float64 custom op at `inputs`: gradcheck and, when it is twice
/// differentiable, gradgradcheck.
template <class S, class P>
custom_op_report check_custom_op(const custom_op<double, S, P>& op, const std::vector<xt::xarray<double>>& inputs,
                                 const P& params = P{}, const gradcheck_options& o = {}) {
    const gradcheck_fn f = [&](const std::vector<tensor<double>>& v) { return op(v, params); };
    custom_op_report r;
    r.op = op.name();
    r.first = gradcheck(f, inputs, o, op.name());
    if (op.twice_differentiable()) {
        r.second_checked = true;
        r.second = gradgradcheck(f, inputs, o, op.name());  // it labels itself "(second order)"
    }
    return r;
}

/// The same at random inputs of the given shapes, uniform in [-1, 1) from `seed`.
template <class S, class P>
custom_op_report check_custom_op(const custom_op<double, S, P>& op, const std::vector<shape_t>& shapes,
                                 const P& params = P{}, unsigned seed = 1, const gradcheck_options& o = {}) {
    std::mt19937_64 rng(seed);
    std::vector<xt::xarray<double>> inputs;
    for (const auto& s : shapes) inputs.push_back(random_input(s, rng));
    return check_custom_op(op, inputs, params, o);
}

template <class T, class S, class P>
void custom_op<T, S, P>::first_run_check(const tensor<T>* const* inputs, std::size_t n, const P& params) const {
    if constexpr (std::is_same<T, double>::value) {
        if (!check_custom_ops() || def_->checked.exchange(true)) return;
        std::vector<xt::xarray<double>> values;
        for (std::size_t i = 0; i < n; ++i) values.push_back(inputs[i]->value());
        custom_op_report r = check_custom_op(*this, values, params);
        if (!r.passed())
            throw std::logic_error("tapegrad: custom op '" + def_->name +
                                   "' failed its first-run check (set_check_custom_ops): its backward disagrees "
                                   "with central differences; fix the backward\n" + r.table());
    }
}

template <class T, class S, class P>
tensor<T> custom_op<T, S, P>::apply(const tensor<T>* const* inputs, std::size_t n, const P& params) const {
    const auto& d = *def_;
    if (!d.forward || (!d.backward_values && !d.backward_tensors))
        throw std::logic_error("tapegrad: custom op '" + d.name +
                               "' needs a forward and a backward (backward_values or backward_tensors)");
    if (n > 64) throw std::invalid_argument("tapegrad: custom op '" + d.name + "' takes at most 64 inputs");
    first_run_check(inputs, n, params);
    tensor<T> out = detail::make_result<T>(d.name.c_str(), &detail::custom_backward<T, S, P>, inputs, n);
    node<T>* nd = out.node_ptr();
    using slot_t = detail::custom_slot<T, S, P>;
    // Unrecorded results get a slot too: it keeps the definition, and so the op's
    // name the node points to, alive as long as the result.
    if (!nd->custom || nd->custom->type_key != slot_t::key()) nd->custom = std::make_unique<slot_t>();
    auto* slot = static_cast<slot_t*>(nd->custom.get());
    if (slot->def != def_) slot->def = def_;
    if constexpr (detail::replayable_params<P>) {
        if (nd->on_tape) {
            slot->params = params;
            nd->forward = &detail::custom_forward<T, S, P>;
        }
    }
    forward_args<T, S, P> a{nd->on_tape, inputs, n, &nd->value, &slot->saved, &params};
    d.forward(a);
    return out;
}

}  // namespace tapegrad
