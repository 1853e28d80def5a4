// More activations (issue #9): silu, mish, logsigmoid, hardtanh, selu. One rule
// row per op as in ops_elementwise.cpp. Rules whose derivative needs sigmoid or
// softplus call sig()/splus() below: on xtensor a stable closed form, on tensors
// the recorded ops, whose own derivatives stay finite where e^-x overflows (the
// naive 1 / (1 + e^-x) has a NaN second derivative below about -709).

#include <cmath>
#include <type_traits>
#include <utility>

#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "autograd/detail/op_drivers.hpp"

namespace tapegrad {
namespace rules {

// The xtensor forms take their argument by forwarding reference: xtensor keeps an
// rvalue expression (sig(-x)) by value and an lvalue by reference, so a temporary
// argument cannot dangle inside the returned expression.
template <class X> using if_xexpression = std::enable_if_t<xt::is_xexpression<std::decay_t<X>>::value, int>;

/// sigmoid: 1 / (1 + e^-x) is exactly 0 or 1 at the extremes, never NaN.
template <class X, if_xexpression<X> = 0> auto sig(X&& x) {
    using S = typename std::decay_t<X>::value_type;
    return S(1) / (S(1) + xt::exp(-std::forward<X>(x)));
}
template <class T> tensor<T> sig(const tensor<T>& x) { return sigmoid(x); }

/// softplus: max(x, 0) + log1p(e^-|x|), no overflow.
template <class X, if_xexpression<X> = 0> auto splus(X&& x) {
    static_assert(std::is_lvalue_reference<X>::value, "splus uses its argument twice: pass an lvalue");
    using S = typename std::decay_t<X>::value_type;
    return xt::maximum(x, S(0)) + xt::log1p(xt::exp(-xt::abs(x)));
}
// softplus(x) = -logsigmoid(-x), whose recorded slope is sigmoid(x): finite second
// derivatives at any x (softplus's own rule divides by 1 + e^-x, which overflows)
template <class T> tensor<T> splus(const tensor<T>& x) { return -logsigmoid(-x); }

constexpr double selu_alpha = 1.6732632423543772848170429916717;
constexpr double selu_scale = 1.0507009873554804934193349852946;

// clang-format off
struct silu_rule    { static constexpr const char* name = "silu";
  template <class X, class S> static auto forward(const X& x, const S*) { return x * sig(x); }
  // d x s(x) = s (1 + x (1 - s)), s = sigmoid(x)
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) {
    return gy * (sig(x) * (x * (S(1) - sig(x)) + S(1))); } };  // no named locals: xtensor keeps lvalues by reference
struct mish_rule    { static constexpr const char* name = "mish";
  template <class X, class S> static auto forward(const X& x, const S*) { return x * xt::tanh(splus(x)); }
  // d x tanh(sp(x)) = t + x (1 - t^2) sigmoid(x), t = tanh(softplus(x))
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) {
    return gy * (tanh(splus(x)) + x * (S(1) - tanh(splus(x)) * tanh(splus(x))) * sig(x)); } };
struct logsigmoid_rule { static constexpr const char* name = "logsigmoid";
  // log s(x) = -softplus(-x) = min(x, 0) - log1p(e^-|x|)
  template <class X, class S> static auto forward(const X& x, const S*) { return xt::minimum(x, S(0)) - xt::log1p(xt::exp(-xt::abs(x))); }
  // d log s(x) = 1 - s(x) = s(-x)
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S*) { return gy * sig(-x); } };
struct hardtanh_rule { static constexpr const char* name = "hardtanh";
  template <class X, class S> static auto forward(const X& x, const S* s) { return xt::clip(x, s[0], s[1]); }
  // d hardtanh x = 1 strictly inside (lo, hi), else 0 (PyTorch's convention at the bounds)
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y&, const G& gy, const S* s) { return where(x > s[0], where(x < s[1], gy, S(0)), S(0)); } };
struct selu_rule    { static constexpr const char* name = "selu";
  template <class X, class S> static auto forward(const X& x, const S*) { return S(selu_scale) * xt::where(x > S(0), x, S(selu_alpha) * xt::expm1(x)); }
  // d = scale for x > 0, else scale alpha e^x = y + scale alpha
  template <class X, class Y, class G, class S> static auto grad(const X& x, const Y& y, const G& gy, const S*) {
    return where(x > S(0), gy * S(selu_scale), gy * (y + S(selu_scale * selu_alpha))); } };
// clang-format on

}  // namespace rules

using detail::unary;

template <class T> tensor<T> silu(const tensor<T>& x) { return unary<rules::silu_rule>(x); }
template <class T> tensor<T> mish(const tensor<T>& x) { return unary<rules::mish_rule>(x); }
template <class T> tensor<T> logsigmoid(const tensor<T>& x) { return unary<rules::logsigmoid_rule>(x); }
template <class T> tensor<T> hardtanh(const tensor<T>& x, T lo, T hi) {
    if (!(lo < hi))
        throw std::invalid_argument("hardtanh: lower bound " + std::to_string(lo) + " must be below upper bound " +
                                    std::to_string(hi));
    return unary<rules::hardtanh_rule>(x, lo, hi);
}
template <class T> tensor<T> selu(const tensor<T>& x) { return unary<rules::selu_rule>(x); }

#define TAPEGRAD_ACTIVATIONS(T)                          \
    template tensor<T> silu(const tensor<T>&);          \
    template tensor<T> mish(const tensor<T>&);          \
    template tensor<T> logsigmoid(const tensor<T>&);    \
    template tensor<T> hardtanh(const tensor<T>&, T, T); \
    template tensor<T> selu(const tensor<T>&);
TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_ACTIVATIONS)

}  // namespace tapegrad
