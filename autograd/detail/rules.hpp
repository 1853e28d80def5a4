#pragma once
// Generic drivers for elementwise ops. An op is a small struct ("rule") with
//   forward(x[, y], s)              -> xtensor expression of the result
//   grad(x, y, gy, s)               -> gradient w.r.t. x        (unary)
//   grad_a / grad_b(a, b, y, gy)    -> gradient w.r.t. a and b  (binary)
// The grad formulas are templates: the fast path instantiates them on xtensor
// containers (one fused loop, nothing recorded); with create_graph they are
// instantiated on tensors, so the reverse pass is itself recorded and can be
// differentiated again. One formula, two uses.

#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "autograd/detail/record.hpp"
#include "autograd/ops.hpp"

namespace tapegrad::detail {

template <class Rule, class T> void unary_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    if (c.create_graph)
        c.add_graph(0, Rule::grad(c.tx(0), c.ty(), c.tgy(), c.self.scalar));
    else
        c.add(0, Rule::grad(c.x(0), c.y(), c.gy(), c.self.scalar));
}

template <class Rule, class T> tensor<T> unary(const tensor<T>& x, T s0 = T(0), T s1 = T(0)) {
    const auto& xv = x.value();
    tensor<T> out = make_result<T>(Rule::name, &unary_backward<Rule, T>, {&x});
    node<T>* n = out.node_ptr();
    n->scalar[0] = s0;
    n->scalar[1] = s1;
    n->value.resize(xv.shape());
    const T* s = n->scalar;
    xt::noalias(n->value) = Rule::forward(xv, s);
    return out;
}

template <class Rule, class T> void binary_backward(backward_ctx<T>& c) {
    if (c.create_graph) {
        if (c.wants(0)) c.add_graph(0, Rule::grad_a(c.tx(0), c.tx(1), c.ty(), c.tgy()));
        if (c.wants(1)) c.add_graph(1, Rule::grad_b(c.tx(0), c.tx(1), c.ty(), c.tgy()));
    } else {
        if (c.wants(0)) c.add(0, Rule::grad_a(c.x(0), c.x(1), c.y(), c.gy()));
        if (c.wants(1)) c.add(1, Rule::grad_b(c.x(0), c.x(1), c.y(), c.gy()));
    }
}

template <class Rule, class T> tensor<T> binary(const tensor<T>& a, const tensor<T>& b) {
    const auto& av = a.value();
    const auto& bv = b.value();
    tensor<T> out = make_result<T>(Rule::name, &binary_backward<Rule, T>, {&a, &b});
    auto& v = out_value(out);
    if (shapes_equal(av.shape(), bv.shape()))
        v.resize(av.shape());
    else
        v.resize(broadcast_shape(Rule::name, av.shape(), bv.shape()));
    xt::noalias(v) = Rule::forward(av, bv);
    return out;
}

/// Normalise a possibly negative axis; throws naming the op when out of range.
inline std::size_t norm_axis(const char* op, int axis, std::size_t rank) {
    int r = static_cast<int>(rank);
    if (axis < -r || axis >= r)
        throw shape_error(std::string(op) + ": axis " + std::to_string(axis) + " is out of range for a tensor of rank " +
                          std::to_string(rank));
    return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

template <class S> shape_t to_shape(const S& s) { return shape_t(s.begin(), s.end()); }

}  // namespace tapegrad::detail
