// More elementwise ops (issue #9): sin, cos, log1p, expm1, rsqrt, one-sided
// clamps, and the comparisons of two tensors. One rule row per op, written as in
// ops_elementwise.cpp: x is the input, y the output, gy the output's gradient and
// s the op's scalars; the grad formula runs on xtensor (fast path) and on tensors
// (create_graph, so second derivatives come from the same line).

#include <cmath>

#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "autograd/detail/op_drivers.hpp"

namespace tapegrad {
namespace rules {

// clang-format off
struct sin_rule     { static constexpr const char* name = "sin";
  template <class X, class S> static auto forward(const X& x, const S*) { return sin(x); }
  // d sin x = cos x
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) { return gy * cos(x); } };
struct cos_rule     { static constexpr const char* name = "cos";
  template <class X, class S> static auto forward(const X& x, const S*) { return cos(x); }
  // d cos x = -sin x
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) { return -(gy * sin(x)); } };
struct log1p_rule   { static constexpr const char* name = "log1p";
  template <class X, class S> static auto forward(const X& x, const S*) { return log1p(x); }
  // d log(1 + x) = 1 / (1 + x)
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) { return gy / (x + S(1)); } };
struct expm1_rule   { static constexpr const char* name = "expm1";
  template <class X, class S> static auto forward(const X& x, const S*) { return expm1(x); }
  // d (e^x - 1) = e^x = y + 1
  template <class X, class Y, class G, class S> static auto grad(const X&, const Y& y, const G& gy, const S*) { return gy * (y + S(1)); } };
struct rsqrt_rule   { static constexpr const char* name = "rsqrt";
  template <class X, class S> static auto forward(const X& x, const S*) { return S(1) / sqrt(x); }
  // d x^(-1/2) = -1/2 x^(-3/2) = -y^3 / 2
  template <class X, class Y, class G, class S> static auto grad(const X&, const Y& y, const G& gy, const S*) { return gy * (y * y * y) * S(-0.5); } };
struct clamp_min_rule { static constexpr const char* name = "clamp_min";
  template <class X, class S> static auto forward(const X& x, const S* s) { return xt::maximum(x, s[0]); }
  // d max(x, lo) = 1 where x >= lo, else 0
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S* s) { return where(x < s[0], S(0), gy); } };
struct clamp_max_rule { static constexpr const char* name = "clamp_max";
  template <class X, class S> static auto forward(const X& x, const S* s) { return xt::minimum(x, s[0]); }
  // d min(x, hi) = 1 where x <= hi, else 0
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S* s) { return where(x > s[0], S(0), gy); } };
// clang-format on

}  // namespace rules

using detail::unary;

template <class T> tensor<T> sin(const tensor<T>& x) { return unary<rules::sin_rule>(x); }
template <class T> tensor<T> cos(const tensor<T>& x) { return unary<rules::cos_rule>(x); }
template <class T> tensor<T> log1p(const tensor<T>& x) { return unary<rules::log1p_rule>(x); }
template <class T> tensor<T> expm1(const tensor<T>& x) { return unary<rules::expm1_rule>(x); }
template <class T> tensor<T> rsqrt(const tensor<T>& x) { return unary<rules::rsqrt_rule>(x); }
template <class T> tensor<T> clamp_min(const tensor<T>& x, T lo) {
    if (std::isnan(lo)) throw std::invalid_argument("clamp_min: the bound is NaN; pass a number");
    return unary<rules::clamp_min_rule>(x, lo);
}
template <class T> tensor<T> clamp_max(const tensor<T>& x, T hi) {
    if (std::isnan(hi)) throw std::invalid_argument("clamp_max: the bound is NaN; pass a number");
    return unary<rules::clamp_max_rule>(x, hi);
}

// ------------------------------------------------------------ comparisons
// y = [a op b] as 0/1; dy/da = dy/db = 0 (a step function, flat almost everywhere,
// as PyTorch). The result is a recorded node when an input needs a gradient, so a
// function that uses a mask stays differentiable and its inputs get zeros.
namespace {

template <class T> void compare_backward(backward_ctx<T>& c) {
    for (std::size_t i = 0; i < 2; ++i) {
        if (!c.wants(i)) continue;
        const shape_t s = detail::to_shape(c.x(i).shape());
        if (c.create_graph) {
            c.add_graph(i, tensor<T>::zeros(s));
        } else {
            xt::xarray<T> zero = xt::xarray<T>::from_shape(s);
            zero.fill(T(0));
            c.add(i, zero);
        }
    }
}

// The comparisons as types, so that each has a replay kernel.
struct eq_f { template <class A, class B> auto operator()(const A& x, const B& y) const { return xt::equal(x, y); } };
struct ne_f { template <class A, class B> auto operator()(const A& x, const B& y) const { return xt::not_equal(x, y); } };
struct lt_f { template <class A, class B> auto operator()(const A& x, const B& y) const { return xt::less(x, y); } };
struct le_f { template <class A, class B> auto operator()(const A& x, const B& y) const { return xt::less_equal(x, y); } };
struct gt_f { template <class A, class B> auto operator()(const A& x, const B& y) const { return xt::greater(x, y); } };
struct ge_f { template <class A, class B> auto operator()(const A& x, const B& y) const { return xt::greater_equal(x, y); } };

// forward, and replay: y = [a op b], broadcast, into y's buffer of the broadcast shape
template <class T, class F> void compare_forward(node<T>& n, node<T>* const* in) {
    xt::noalias(n.value) = xt::cast<T>(F{}(in[0]->value, in[1]->value));
}

template <class T, class F> tensor<T> compare(const char* op, const tensor<T>& a, const tensor<T>& b) {
    const auto& av = a.value();
    const auto& bv = b.value();
    const detail::xshape shape = detail::broadcast_shape(op, av.shape(), bv.shape());  // throws naming both shapes
    tensor<T> out = detail::make_result<T>(op, &compare_backward<T>, {&a, &b});
    node<T>* n = out.node_ptr();
    n->forward = &compare_forward<T, F>;
    n->value.resize(shape);
    node<T>* in[2] = {a.node_ptr(), b.node_ptr()};
    compare_forward<T, F>(*n, in);
    return out;
}

}  // namespace

template <class T> tensor<T> eq(const tensor<T>& a, const tensor<T>& b) {
    return compare<T, eq_f>("eq", a, b);
}
template <class T> tensor<T> ne(const tensor<T>& a, const tensor<T>& b) {
    return compare<T, ne_f>("ne", a, b);
}
template <class T> tensor<T> lt(const tensor<T>& a, const tensor<T>& b) {
    return compare<T, lt_f>("lt", a, b);
}
template <class T> tensor<T> le(const tensor<T>& a, const tensor<T>& b) {
    return compare<T, le_f>("le", a, b);
}
template <class T> tensor<T> gt(const tensor<T>& a, const tensor<T>& b) {
    return compare<T, gt_f>("gt", a, b);
}
template <class T> tensor<T> ge(const tensor<T>& a, const tensor<T>& b) {
    return compare<T, ge_f>("ge", a, b);
}

#define TAPEGRAD_MATH(T)                                                  \
    template tensor<T> sin(const tensor<T>&);                            \
    template tensor<T> cos(const tensor<T>&);                            \
    template tensor<T> log1p(const tensor<T>&);                          \
    template tensor<T> expm1(const tensor<T>&);                          \
    template tensor<T> rsqrt(const tensor<T>&);                          \
    template tensor<T> clamp_min(const tensor<T>&, T);                   \
    template tensor<T> clamp_max(const tensor<T>&, T);                   \
    template tensor<T> eq(const tensor<T>&, const tensor<T>&);           \
    template tensor<T> ne(const tensor<T>&, const tensor<T>&);           \
    template tensor<T> lt(const tensor<T>&, const tensor<T>&);           \
    template tensor<T> le(const tensor<T>&, const tensor<T>&);           \
    template tensor<T> gt(const tensor<T>&, const tensor<T>&);           \
    template tensor<T> ge(const tensor<T>&, const tensor<T>&);
TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_MATH)

}  // namespace tapegrad
