// Elementwise ops and activations: one rule per op, forward and derivative together.
// In the grad formulas, x is the input, y the output, gy the output's gradient and
// s the op's scalar parameters. Unqualified calls (exp, where, ...) resolve to
// xtensor, to xsimd for rules marked `simd` (detail/op_drivers.hpp), and to
// tapegrad's recorded ops with create_graph.

#include <cmath>

#include <xtensor/xmath.hpp>

#include "autograd/detail/op_drivers.hpp"

namespace tapegrad {
namespace rules {

// Helpers the rules call unqualified: on xtensor expressions they are lazy
// expressions; on tensors (create_graph) the overloads below record ops, so the
// guard itself is part of the differentiated graph.
template <class E, std::enable_if_t<xt::is_xexpression<E>::value, int> = 0> auto sigmoid(const E& x) {
    using S = typename E::value_type;
    return S(1) / (S(1) + xt::exp(-x));
}
template <class T, class A> xsimd::batch<T, A> sigmoid(const xsimd::batch<T, A>& x) {
    return T(1) / (T(1) + xsimd::exp(-x));
}
/// Where a^b's a-derivative b a^(b-1) is 0 although a^(b-1) is inf (b = 0).
template <class E, std::enable_if_t<xt::is_xexpression<E>::value, int> = 0> auto exponent_is_zero(const E& b) {
    return xt::equal(b, typename E::value_type(0));
}
/// Where a^b's b-derivative a^b log a is 0 although log a = -inf (a = 0, b >= 0).
template <class A, class B, std::enable_if_t<xt::is_xexpression<A>::value, int> = 0>
auto base_is_zero(const A& a, const B& b) {
    using S = typename A::value_type;
    return xt::equal(a, S(0)) && (b >= S(0));
}
template <class T> tensor<T> exponent_is_zero(const tensor<T>& b) {
    return tensor<T>(xt::xarray<T>(xt::cast<T>(xt::equal(b.value(), T(0)))));
}
template <class T> tensor<T> base_is_zero(const tensor<T>& a, const tensor<T>& b) {
    return tensor<T>(xt::xarray<T>(xt::cast<T>(xt::equal(a.value(), T(0)) && (b.value() >= T(0)))));
}

constexpr double inv_sqrt2 = 0.70710678118654752440;
constexpr double inv_sqrt2pi = 0.39894228040143267794;
constexpr double two_over_sqrtpi = 1.12837916709551257390;

// clang-format off
struct neg_rule     { static constexpr const char* name = "neg"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S*) { return -x; }
  // d(-x) = -1
  template <class X, class Y, class G, class S> static auto grad(const X&, const Y&, const G& gy, const S*) { return -gy; } };
struct add_scalar_rule   { static constexpr const char* name = "add_scalar"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S* s) { return x + s[0]; }
  // d(x + s) = 1
  template <class X, class Y, class G, class S> static const G& grad(const X&, const Y&, const G& gy, const S*) { return gy; } };
struct mul_scalar_rule   { static constexpr const char* name = "mul_scalar"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S* s) { return x * s[0]; }
  // d(s x) = s
  template <class X, class Y, class G, class S> static auto grad(const X&, const Y&, const G& gy, const S* s) { return gy * s[0]; } };
struct rsub_scalar_rule  { static constexpr const char* name = "rsub_scalar"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S* s) { return s[0] - x; }
  // d(s - x) = -1
  template <class X, class Y, class G, class S> static auto grad(const X&, const Y&, const G& gy, const S*) { return -gy; } };
struct rdiv_scalar_rule  { static constexpr const char* name = "rdiv_scalar"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S* s) { return s[0] / x; }
  // d(s / x) = -s / x^2 = -y / x
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y& y, const G& gy, const S*) { return -gy * y / x; } };
struct pow_scalar_rule   { static constexpr const char* name = "pow_scalar";
  template <class X, class S> static auto forward(const X& x, const S* s) { return pow(x, s[0]); }
  // d x^p = p x^(p-1); p = 0 is a separate zero-gradient op (pow below), so 0 * 0^-1 never appears,
  // and x^1's second derivative is that op's 0
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S* s) { return gy * s[0] * pow(x, s[0] - S(1)); } };
struct square_rule  { static constexpr const char* name = "pow_scalar"; static constexpr bool simd = true;
  // x^2 as x * x: one rounding, where libm's pow may be an ulp off, and in xsimd batches (PyTorch does the same)
  template <class X, class S> static auto forward(const X& x, const S*) { return x * x; }
  // d x^2 = 2 x, in pow_scalar_rule's order: (gy 2) x^1
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) { return gy * S(2) * x; } };
struct exp_rule     { static constexpr const char* name = "exp"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S*) { return exp(x); }
  // d e^x = e^x = y
  template <class X, class Y, class G, class S> static auto grad(const X&, const Y& y, const G& gy, const S*) { return gy * y; } };
struct log_rule     { static constexpr const char* name = "log"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S*) { return log(x); }
  // d log x = 1 / x
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) { return gy / x; } };
struct sqrt_rule    { static constexpr const char* name = "sqrt"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S*) { return sqrt(x); }
  // d sqrt x = 1 / (2 sqrt x) = 0.5 / y
  template <class X, class Y, class G, class S> static auto grad(const X&, const Y& y, const G& gy, const S*) { return gy * S(0.5) / y; } };
struct abs_rule     { static constexpr const char* name = "abs";
  template <class X, class S> static auto forward(const X& x, const S*) { return abs(x); }
  // d |x| = sign(x), 0 at 0
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) { return gy * sign(x); } };
struct erf_rule     { static constexpr const char* name = "erf";
  template <class X, class S> static auto forward(const X& x, const S*) { return erf(x); }
  // d erf x = 2/sqrt(pi) e^(-x^2)
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) { return gy * S(two_over_sqrtpi) * exp(-(x * x)); } };
struct clamp_rule   { static constexpr const char* name = "clamp";
  template <class X, class S> static auto forward(const X& x, const S* s) { return xt::clip(x, s[0], s[1]); }
  // d clamp(x, lo, hi) = 1 on [lo, hi], else 0
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S* s) { return where(x < s[0], S(0), where(x > s[1], S(0), gy)); } };
struct relu_rule    { static constexpr const char* name = "relu"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S*) { return maximum(x, S(0)); }
  // d relu x = 1 for x > 0, else 0
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) { return where(x > S(0), gy, S(0)); } };
struct leaky_rule   { static constexpr const char* name = "leaky_relu"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S* s) { return where(x > S(0), x, s[0] * x); }
  // d = 1 for x > 0, else slope
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S* s) { return where(x > S(0), gy, gy * s[0]); } };
struct elu_rule     { static constexpr const char* name = "elu"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S* s) { return where(x > S(0), x, s[0] * expm1(x)); }
  // d = 1 for x > 0, else alpha e^x = y + alpha
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y& y, const G& gy, const S* s) { return where(x > S(0), gy, gy * (y + s[0])); } };
struct gelu_rule    { static constexpr const char* name = "gelu";
  template <class X, class S> static auto forward(const X& x, const S*) { return S(0.5) * x * (S(1) + xt::erf(x * S(inv_sqrt2))); }
  // d x Phi(x) = Phi(x) + x phi(x)
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) {
    return gy * (S(0.5) * (S(1) + erf(x * S(inv_sqrt2))) + x * exp(S(-0.5) * (x * x)) * S(inv_sqrt2pi)); } };
struct tanh_rule    { static constexpr const char* name = "tanh"; static constexpr bool simd = true;
  template <class X, class S> static auto forward(const X& x, const S*) { return tanh(x); }
  // d tanh x = 1 - y^2
  template <class X, class Y, class G, class S> static auto grad(const X&, const Y& y, const G& gy, const S*) { return gy * (S(1) - y * y); } };
struct sigmoid_rule { static constexpr const char* name = "sigmoid"; static constexpr bool simd = true;
  // 1 / (1 + e^-x): e^-x overflows to inf for x << 0 and the quotient is then exactly 0, never NaN
  template <class X, class S> static auto forward(const X& x, const S*) { return S(1) / (S(1) + exp(-x)); }
  // d sigmoid x = y (1 - y)
  template <class X, class Y, class G, class S> static auto grad(const X&, const Y& y, const G& gy, const S*) { return gy * y * (S(1) - y); } };
struct softplus_rule { static constexpr const char* name = "softplus"; static constexpr bool simd = true;
  // log(1 + e^x) = max(x, 0) + log1p(e^-|x|), no overflow
  template <class X, class S> static auto forward(const X& x, const S*) { return maximum(x, S(0)) + log1p(exp(-abs(x))); }
  // d softplus x = sigmoid(x), as the sigmoid op: its own derivative y (1 - y) stays finite where e^-x overflows
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) { return gy * sigmoid(x); } };

struct add_rule { static constexpr const char* name = "add"; static constexpr bool simd = true;
  static constexpr bool grads_read_operands = false;
  template <class A, class B> static auto forward(const A& a, const B& b) { return a + b; }
  // d(a + b) = (1, 1)
  template <class A, class B, class Y, class G> static const G& grad_a(const A&, const B&, const Y&, const G& gy) { return gy; }
  template <class A, class B, class Y, class G> static const G& grad_b(const A&, const B&, const Y&, const G& gy) { return gy; } };
struct sub_rule { static constexpr const char* name = "sub"; static constexpr bool simd = true;
  static constexpr bool grads_read_operands = false;
  template <class A, class B> static auto forward(const A& a, const B& b) { return a - b; }
  // d(a - b) = (1, -1)
  template <class A, class B, class Y, class G> static const G& grad_a(const A&, const B&, const Y&, const G& gy) { return gy; }
  template <class A, class B, class Y, class G> static auto grad_b(const A&, const B&, const Y&, const G& gy) { return -gy; } };
struct mul_rule { static constexpr const char* name = "mul"; static constexpr bool simd = true;
  template <class A, class B> static auto forward(const A& a, const B& b) { return a * b; }
  // d(a b) = (b, a)
  template <class A, class B, class Y, class G> static auto grad_a(const A&, const B& b, const Y&, const G& gy) { return gy * b; }
  template <class A, class B, class Y, class G> static auto grad_b(const A& a, const B&, const Y&, const G& gy) { return gy * a; } };
struct div_rule { static constexpr const char* name = "div"; static constexpr bool simd = true;
  template <class A, class B> static auto forward(const A& a, const B& b) { return a / b; }
  // d(a / b) = (1 / b, -a / b^2 = -y / b)
  template <class A, class B, class Y, class G> static auto grad_a(const A&, const B& b, const Y&, const G& gy) { return gy / b; }
  template <class A, class B, class Y, class G> static auto grad_b(const A&, const B& b, const Y& y, const G& gy) { return -gy * y / b; } };
struct pow_rule { static constexpr const char* name = "pow";
  template <class A, class B> static auto forward(const A& a, const B& b) { return pow(a, b); }
  // d a^b = (b a^(b-1), a^b log a), with PyTorch's zeros where b = 0 (0 * 0^-1) and where a = 0, b >= 0
  // (0 * log 0); the masked base is replaced by 1 so no inf enters the recorded (second-order) graph either
  template <class A, class B, class Y, class G> static auto grad_a(const A& a, const B& b, const Y&, const G& gy) {
    return where(exponent_is_zero(b), 0, gy * b * pow(where(exponent_is_zero(b), 1, a), b - 1)); }
  template <class A, class B, class Y, class G> static auto grad_b(const A& a, const B& b, const Y& y, const G& gy) {
    return where(base_is_zero(a, b), 0, gy * y * log(where(base_is_zero(a, b), 1, a))); } };  // no stored lazy mask: it would dangle
// maximum and minimum run in xsimd batches with xtensor's rule, select(a > b, a, b), NaN included
struct maximum_rule { static constexpr const char* name = "maximum"; static constexpr bool simd = true;
  template <class A, class B> static auto forward(const A& a, const B& b) { return maximum(a, b); }
  // d max(a, b) = (1, 0) where a > b, (0, 1) where a < b, (1/2, 1/2) on ties
  template <class A, class B, class Y, class G, class S = scalar_of<G>> static auto grad_a(const A& a, const B& b, const Y&, const G& gy) { return where(a - b > S(0), gy, where(a - b < S(0), 0, gy * S(0.5))); }
  template <class A, class B, class Y, class G, class S = scalar_of<G>> static auto grad_b(const A& a, const B& b, const Y&, const G& gy) { return where(b - a > S(0), gy, where(b - a < S(0), 0, gy * S(0.5))); } };
struct minimum_rule { static constexpr const char* name = "minimum"; static constexpr bool simd = true;
  template <class A, class B> static auto forward(const A& a, const B& b) { return minimum(a, b); }
  // d min(a, b) = (1, 0) where a < b, (0, 1) where a > b, (1/2, 1/2) on ties
  template <class A, class B, class Y, class G, class S = scalar_of<G>> static auto grad_a(const A& a, const B& b, const Y&, const G& gy) { return where(a - b < S(0), gy, where(a - b > S(0), 0, gy * S(0.5))); }
  template <class A, class B, class Y, class G, class S = scalar_of<G>> static auto grad_b(const A& a, const B& b, const Y&, const G& gy) { return where(b - a < S(0), gy, where(b - a > S(0), 0, gy * S(0.5))); } };
// clang-format on

}  // namespace rules

using detail::binary;
using detail::unary;

namespace {
// d sign(x) = d [x > s] = d [x < s] = d x^0 = 0 (everywhere but at the jumps, as PyTorch): the
// input is reached and gets zeros, so these ops never cut a gradient off with an error.
template <class T> void zero_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    node<T>* in = c.input(0);
    if (c.create_graph) {
        c.add_graph(0, tensor<T>::zeros(detail::to_shape(in->value.shape())));
        return;
    }
    bool had;
    T* g = c.grad_data(in, had);
    if (!had) std::fill(g, g + in->value.size(), T(0));
    c.mark(in);
}

// forward, and replay, of each: y from x and the scalar s = scalar[0]
template <class T> void ones_forward(node<T>& n, node<T>* const*) { std::fill(n.value.begin(), n.value.end(), T(1)); }
template <class T> void greater_forward(node<T>& n, node<T>* const* in) {
    xt::noalias(n.value) = xt::cast<T>(in[0]->value > n.scalar[0]);
}
template <class T> void less_forward(node<T>& n, node<T>* const* in) {
    xt::noalias(n.value) = xt::cast<T>(in[0]->value < n.scalar[0]);
}
template <class T> void sign_forward(node<T>& n, node<T>* const* in) { xt::noalias(n.value) = xt::sign(in[0]->value); }

template <class T> tensor<T> zero_gradient_op(const char* op, const tensor<T>& x, forward_fn<T> forward, T s = T(0)) {
    const auto& xv = x.value();
    tensor<T> out = detail::make_result<T>(op, &zero_backward<T>, {&x});
    node<T>* n = out.node_ptr();
    n->forward = forward;
    n->scalar[0] = s;
    n->value.resize(xv.shape());
    node<T>* in[1] = {x.node_ptr()};
    forward(*n, in);
    return out;
}
}  // namespace


template <class T> tensor<T> add(const tensor<T>& a, const tensor<T>& b) { return binary<rules::add_rule>(a, b); }
template <class T> tensor<T> sub(const tensor<T>& a, const tensor<T>& b) { return binary<rules::sub_rule>(a, b); }
template <class T> tensor<T> mul(const tensor<T>& a, const tensor<T>& b) { return binary<rules::mul_rule>(a, b); }
template <class T> tensor<T> div(const tensor<T>& a, const tensor<T>& b) { return binary<rules::div_rule>(a, b); }
template <class T> tensor<T> pow(const tensor<T>& a, const tensor<T>& b) { return binary<rules::pow_rule>(a, b); }
template <class T> tensor<T> maximum(const tensor<T>& a, const tensor<T>& b) { return binary<rules::maximum_rule>(a, b); }
template <class T> tensor<T> minimum(const tensor<T>& a, const tensor<T>& b) { return binary<rules::minimum_rule>(a, b); }

template <class T> tensor<T> neg(const tensor<T>& x) { return unary<rules::neg_rule>(x); }
template <class T> tensor<T> add_scalar(const tensor<T>& x, T s) { return unary<rules::add_scalar_rule>(x, s); }
template <class T> tensor<T> mul_scalar(const tensor<T>& x, T s) { return unary<rules::mul_scalar_rule>(x, s); }
template <class T> tensor<T> rsub_scalar(const tensor<T>& x, T s) { return unary<rules::rsub_scalar_rule>(x, s); }
template <class T> tensor<T> rdiv_scalar(const tensor<T>& x, T s) { return unary<rules::rdiv_scalar_rule>(x, s); }
template <class T> tensor<T> pow(const tensor<T>& x, T p) {
    if (p == T(0)) return zero_gradient_op("pow_scalar", x, &ones_forward<T>);  // x^0 = 1, NaN included
    if (p == T(2)) return unary<rules::square_rule>(x);  // the usual power: 12x faster than libm's pow
    return unary<rules::pow_scalar_rule>(x, p);
}
template <class T> tensor<T> exp(const tensor<T>& x) { return unary<rules::exp_rule>(x); }
template <class T> tensor<T> log(const tensor<T>& x) { return unary<rules::log_rule>(x); }
template <class T> tensor<T> sqrt(const tensor<T>& x) { return unary<rules::sqrt_rule>(x); }
template <class T> tensor<T> abs(const tensor<T>& x) { return unary<rules::abs_rule>(x); }
template <class T> tensor<T> erf(const tensor<T>& x) { return unary<rules::erf_rule>(x); }
template <class T> tensor<T> clamp(const tensor<T>& x, T lo, T hi) {
    if (!(lo <= hi))
        throw std::invalid_argument("clamp: lower bound " + std::to_string(lo) + " is above upper bound " +
                                    std::to_string(hi));
    return unary<rules::clamp_rule>(x, lo, hi);
}
template <class T> tensor<T> relu(const tensor<T>& x) { return unary<rules::relu_rule>(x); }
template <class T> tensor<T> leaky_relu(const tensor<T>& x, T slope) { return unary<rules::leaky_rule>(x, slope); }
template <class T> tensor<T> elu(const tensor<T>& x, T alpha) { return unary<rules::elu_rule>(x, alpha); }
template <class T> tensor<T> gelu(const tensor<T>& x) { return unary<rules::gelu_rule>(x); }
template <class T> tensor<T> tanh(const tensor<T>& x) { return unary<rules::tanh_rule>(x); }
template <class T> tensor<T> sigmoid(const tensor<T>& x) { return unary<rules::sigmoid_rule>(x); }
template <class T> tensor<T> softplus(const tensor<T>& x) { return unary<rules::softplus_rule>(x); }

template <class T> tensor<T> greater(const tensor<T>& x, T s) {
    return zero_gradient_op("greater", x, &greater_forward<T>, s);
}
template <class T> tensor<T> less(const tensor<T>& x, T s) {
    return zero_gradient_op("less", x, &less_forward<T>, s);
}
template <class T> tensor<T> sign(const tensor<T>& x) { return zero_gradient_op("sign", x, &sign_forward<T>); }

namespace {
// where(c, a, b): c picks a where nonzero; c gets no gradient.
template <class T> void where_backward(backward_ctx<T>& c) {
    if (c.create_graph) {
        tensor<T> cond = c.tx(0), gy = c.tgy();
        if (c.wants(1)) c.add_graph(1, where(cond, gy, T(0)));
        if (c.wants(2)) c.add_graph(2, where(cond, T(0), gy));
    } else {
        auto picked = xt::not_equal(c.x(0), T(0));
        if (c.wants(1)) c.add(1, xt::where(picked, c.gy(), T(0)));
        if (c.wants(2)) c.add(2, xt::where(picked, T(0), c.gy()));
    }
}
// forward, and replay: y = c != 0 ? a : b, broadcast
template <class T> void where_forward(node<T>& n, node<T>* const* in) {
    xt::noalias(n.value) = xt::where(xt::not_equal(in[0]->value, T(0)), in[1]->value, in[2]->value);
}
}  // namespace

namespace detail {
// The operand whose gradient a bias add (or sub's a) passes on unchanged, for the compiled
// step's planned reverse pass (autograd/compile.cpp); -1 for any other reverse kernel.
template <class T> int pass_through_operand(const node<T>& n) {
    const bool add = n.backward_kernel == &bias_backward_kernel<rules::add_rule, T>;
    const bool sub = n.backward_kernel == &bias_backward_kernel<rules::sub_rule, T>;
    if (!add && !sub) return -1;
    const int full = shapes_equal(n.inputs[0]->value.shape(), n.value.shape()) ? 0 : 1;  // as the kernel decides
    return sub && full == 1 ? -1 : full;  // sub's b takes -gy
}
}  // namespace detail

template <class T> tensor<T> where(const tensor<T>& cond, const tensor<T>& a, const tensor<T>& b) {
    const auto &cv = cond.value(), &av = a.value(), &bv = b.value();
    detail::xshape shape = detail::broadcast_shape("where", detail::broadcast_shape("where", cv.shape(), av.shape()), bv.shape());
    tensor<T> out = detail::make_result<T>("where", &where_backward<T>, {&cond, &a, &b});
    node<T>* n = out.node_ptr();
    n->forward = &where_forward<T>;
    n->value.resize(shape);
    node<T>* in[3] = {cond.node_ptr(), a.node_ptr(), b.node_ptr()};
    where_forward(*n, in);
    return out;
}

#define TAPEGRAD_ELEMENTWISE(T)                                                           \
    template tensor<T> add(const tensor<T>&, const tensor<T>&);                          \
    template tensor<T> sub(const tensor<T>&, const tensor<T>&);                          \
    template tensor<T> mul(const tensor<T>&, const tensor<T>&);                          \
    template tensor<T> div(const tensor<T>&, const tensor<T>&);                          \
    template tensor<T> pow(const tensor<T>&, const tensor<T>&);                          \
    template tensor<T> maximum(const tensor<T>&, const tensor<T>&);                      \
    template tensor<T> minimum(const tensor<T>&, const tensor<T>&);                      \
    template tensor<T> where(const tensor<T>&, const tensor<T>&, const tensor<T>&);      \
    template tensor<T> neg(const tensor<T>&);                                            \
    template tensor<T> add_scalar(const tensor<T>&, T);                                  \
    template tensor<T> mul_scalar(const tensor<T>&, T);                                  \
    template tensor<T> rsub_scalar(const tensor<T>&, T);                                 \
    template tensor<T> rdiv_scalar(const tensor<T>&, T);                                 \
    template tensor<T> pow(const tensor<T>&, T);                                         \
    template tensor<T> exp(const tensor<T>&);                                            \
    template tensor<T> log(const tensor<T>&);                                            \
    template tensor<T> sqrt(const tensor<T>&);                                           \
    template tensor<T> abs(const tensor<T>&);                                            \
    template tensor<T> erf(const tensor<T>&);                                            \
    template tensor<T> clamp(const tensor<T>&, T, T);                                    \
    template tensor<T> relu(const tensor<T>&);                                           \
    template tensor<T> leaky_relu(const tensor<T>&, T);                                  \
    template tensor<T> elu(const tensor<T>&, T);                                         \
    template tensor<T> gelu(const tensor<T>&);                                           \
    template tensor<T> tanh(const tensor<T>&);                                           \
    template tensor<T> sigmoid(const tensor<T>&);                                        \
    template tensor<T> softplus(const tensor<T>&);                                       \
    template tensor<T> greater(const tensor<T>&, T);                                     \
    template tensor<T> less(const tensor<T>&, T);                                        \
    template tensor<T> sign(const tensor<T>&);                                           \
    template int detail::pass_through_operand(const node<T>&);
TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_ELEMENTWISE)

}  // namespace tapegrad
