#pragma once
// Every differentiable op. Each is implemented in one place in autograd/ops_*.cpp,
// forward and backward side by side, for T = float and T = double.
// Binary elementwise ops broadcast both operands as NumPy does. Axes may be
// negative (counted from the end). Shape errors throw tapegrad::shape_error and
// name the op and both shapes.
//
// Domains follow IEEE 754 as PyTorch does: log(0) = -inf, log(-1) = NaN,
// sqrt(-1) = NaN; these propagate and are never an error.

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// An axis of a tensor: 0 is the outermost; negative counts from the end (-1 is
/// the last). Out of range is a shape_error naming the op, the axis and the rank.
using axis_t = int;
/// Several axes (for reductions, permute).
using axes_t = std::vector<axis_t>;

/// How a loss reduces its per-element values.
enum class reduction { mean, sum, none };

// ---------------------------------------------------------------- elementwise
/// a + b
template <class T> tensor<T> add(const tensor<T>& a, const tensor<T>& b);
/// a - b
template <class T> tensor<T> sub(const tensor<T>& a, const tensor<T>& b);
/// a * b (elementwise)
template <class T> tensor<T> mul(const tensor<T>& a, const tensor<T>& b);
/// a / b
template <class T> tensor<T> div(const tensor<T>& a, const tensor<T>& b);
/// -x
template <class T> tensor<T> neg(const tensor<T>& x);
/// x + s
template <class T> tensor<T> add_scalar(const tensor<T>& x, T s);
/// x * s
template <class T> tensor<T> mul_scalar(const tensor<T>& x, T s);
/// s - x
template <class T> tensor<T> rsub_scalar(const tensor<T>& x, T s);
/// s / x
template <class T> tensor<T> rdiv_scalar(const tensor<T>& x, T s);
/// a ^ b, both tensors (b's gradient needs a > 0)
template <class T> tensor<T> pow(const tensor<T>& a, const tensor<T>& b);
/// x ^ p for a scalar exponent
template <class T> tensor<T> pow(const tensor<T>& x, T p);
/// e^x
template <class T> tensor<T> exp(const tensor<T>& x);
/// natural log
template <class T> tensor<T> log(const tensor<T>& x);
/// square root
template <class T> tensor<T> sqrt(const tensor<T>& x);
/// |x|; gradient sign(x), 0 at 0 (as PyTorch)
template <class T> tensor<T> abs(const tensor<T>& x);
/// Gauss error function
template <class T> tensor<T> erf(const tensor<T>& x);
/// min(max(x, lo), hi); gradient 1 on [lo, hi]
template <class T> tensor<T> clamp(const tensor<T>& x, T lo, T hi);
/// Elementwise max; on ties each side gets half the gradient (as PyTorch).
template <class T> tensor<T> maximum(const tensor<T>& a, const tensor<T>& b);
/// Elementwise min; on ties each side gets half the gradient.
template <class T> tensor<T> minimum(const tensor<T>& a, const tensor<T>& b);
/// cond != 0 ? a : b, broadcasting all three; cond gets no gradient.
template <class T> tensor<T> where(const tensor<T>& cond, const tensor<T>& a, const tensor<T>& b);

/// 1 where x > s else 0; differentiable with a zero gradient (as PyTorch).
template <class T> tensor<T> greater(const tensor<T>& x, T s);
/// 1 where x < s else 0; differentiable with a zero gradient.
template <class T> tensor<T> less(const tensor<T>& x, T s);
/// sign(x) (-1, 0 or 1); differentiable with a zero gradient.
template <class T> tensor<T> sign(const tensor<T>& x);

// ---------------------------------------------------------- linear algebra
/// Matrix product op(a) . op(b) through BLAS gemm, where op transposes the last two
/// axes when the flag is set (no transpose is materialised). As torch.matmul: a 1-D
/// operand is a vector (its axis dropped from the result; no transpose flag), and
/// N-D operands are stacks of matrices whose leading (batch) axes broadcast, e.g.
/// [B, H, T, D] x [B, H, D, T] or [B, T, D] x [D, E].
template <class T>
tensor<T> matmul(const tensor<T>& a, const tensor<T>& b, bool transpose_a = false, bool transpose_b = false);

// ------------------------------------------------------------------ shapes
/// Swap the last two axes (a copy).
template <class T> tensor<T> transpose(const tensor<T>& x);
/// Reorder axes: result axis i is x's axis `axes[i]` (negative axes count from the end).
template <class T> tensor<T> permute(const tensor<T>& x, const axes_t& axes);
/// Same elements, new shape (row-major); sizes must agree.
template <class T> tensor<T> reshape(const tensor<T>& x, const shape_t& shape);
/// Elements [begin, end) along `axis`.
template <class T> tensor<T> slice(const tensor<T>& x, axis_t axis, std::size_t begin, std::size_t end);
/// Rows x[indices[k]] along axis 0 (a gather); the gradient scatter-adds.
template <class T> tensor<T> index_select(const tensor<T>& x, const std::vector<std::size_t>& indices);
/// Join along an existing axis.
template <class T> tensor<T> concat(const std::vector<tensor<T>>& xs, axis_t axis);
/// Join along a new axis.
template <class T> tensor<T> stack(const std::vector<tensor<T>>& xs, axis_t axis);
/// Broadcast to `shape` (the gradient is sum_to).
template <class T> tensor<T> broadcast_to(const tensor<T>& x, const shape_t& shape);
/// Sum broadcast dimensions away to reach `shape` (the gradient is broadcast_to).
template <class T> tensor<T> sum_to(const tensor<T>& x, const shape_t& shape);

// -------------------------------------------------------------- reductions
/// Sum of all elements (0-d result).
template <class T> tensor<T> sum(const tensor<T>& x);
/// Sum over `axes`.
template <class T> tensor<T> sum(const tensor<T>& x, const axes_t& axes, bool keepdims = false);
/// Mean of all elements.
template <class T> tensor<T> mean(const tensor<T>& x);
/// Mean over `axes`.
template <class T> tensor<T> mean(const tensor<T>& x, const axes_t& axes, bool keepdims = false);
/// Max of all elements; tied maxima share the gradient equally. A NaN makes the
/// result NaN (as torch.max); of tied +0 and -0 the first is returned.
template <class T> tensor<T> max(const tensor<T>& x);
/// Max over `axes`.
template <class T> tensor<T> max(const tensor<T>& x, const axes_t& axes, bool keepdims = false);
/// Min of all elements.
template <class T> tensor<T> min(const tensor<T>& x);
/// Min over `axes`.
template <class T> tensor<T> min(const tensor<T>& x, const axes_t& axes, bool keepdims = false);
/// log(sum(exp(x))) over `axis`, computed without overflow.
template <class T> tensor<T> logsumexp(const tensor<T>& x, axis_t axis, bool keepdims = false);

// ------------------------------------------------------------- activations
/// max(x, 0); gradient 0 at 0.
template <class T> tensor<T> relu(const tensor<T>& x);
/// x > 0 ? x : slope * x
template <class T> tensor<T> leaky_relu(const tensor<T>& x, T slope = T(0.01));
/// x > 0 ? x : alpha * (e^x - 1)
template <class T> tensor<T> elu(const tensor<T>& x, T alpha = T(1));
/// x * Phi(x), the exact (erf) form
template <class T> tensor<T> gelu(const tensor<T>& x);
/// hyperbolic tangent
template <class T> tensor<T> tanh(const tensor<T>& x);
/// 1 / (1 + e^-x), stable for any x
template <class T> tensor<T> sigmoid(const tensor<T>& x);
/// log(1 + e^x), stable for any x
template <class T> tensor<T> softplus(const tensor<T>& x);
/// exp(x) / sum(exp(x)) along `axis`, stable for any x
template <class T> tensor<T> softmax(const tensor<T>& x, axis_t axis = -1);
/// x - logsumexp(x) along `axis`
template <class T> tensor<T> log_softmax(const tensor<T>& x, axis_t axis = -1);

// ------------------------------------------------------------------ losses
/// mean((pred - target)^2); shapes must match exactly.
template <class T> tensor<T> mse(const tensor<T>& pred, const tensor<T>& target, reduction r = reduction::mean);
/// mean(|pred - target|)
template <class T> tensor<T> l1(const tensor<T>& pred, const tensor<T>& target, reduction r = reduction::mean);
/// Huber: 0.5 d^2 where |d| < delta, else delta (|d| - delta/2)
template <class T>
tensor<T> huber(const tensor<T>& pred, const tensor<T>& target, T delta = T(1), reduction r = reduction::mean);
/// Negative log-likelihood of log-probabilities [N, C] at class labels [N].
template <class T>
tensor<T> nll(const tensor<T>& log_probs, const std::vector<std::size_t>& labels, reduction r = reduction::mean);
/// Cross-entropy from logits [N, C] with class labels [N].
template <class T>
tensor<T> cross_entropy(const tensor<T>& logits, const std::vector<std::size_t>& labels,
                        reduction r = reduction::mean);
/// Cross-entropy from logits [N, C] with probability targets [N, C].
template <class T>
tensor<T> cross_entropy(const tensor<T>& logits, const tensor<T>& target_probs, reduction r = reduction::mean);
/// Binary cross-entropy from logits, targets in [0, 1], stable for any logit.
template <class T>
tensor<T> bce_with_logits(const tensor<T>& logits, const tensor<T>& targets, reduction r = reduction::mean);

// ============================================== more elementwise ops, reductions, shapes, losses
// Axes are axis_t (negative counts from the end) and axis lists axes_t; an axis
// out of range throws shape_error naming the op, the axis and the rank.

// ------------------------------------------------- more elementwise (ops_math.cpp)
/// sin x; derivative cos x
template <class T> tensor<T> sin(const tensor<T>& x);
/// cos x; derivative -sin x
template <class T> tensor<T> cos(const tensor<T>& x);
/// log(1 + x), accurate near 0; derivative 1 / (1 + x)
template <class T> tensor<T> log1p(const tensor<T>& x);
/// e^x - 1, accurate near 0; derivative e^x
template <class T> tensor<T> expm1(const tensor<T>& x);
/// 1 / sqrt(x); derivative -1/2 x^(-3/2)
template <class T> tensor<T> rsqrt(const tensor<T>& x);
/// max(x, lo); gradient 1 where x >= lo (as PyTorch's clamp(min=lo))
template <class T> tensor<T> clamp_min(const tensor<T>& x, T lo);
/// min(x, hi); gradient 1 where x <= hi
template <class T> tensor<T> clamp_max(const tensor<T>& x, T hi);
/// 1 where a == b else 0, broadcasting. Comparisons are differentiable with a zero
/// gradient (as in PyTorch), so they may appear inside a function being differentiated.
template <class T> tensor<T> eq(const tensor<T>& a, const tensor<T>& b);
/// 1 where a != b else 0 (zero gradient)
template <class T> tensor<T> ne(const tensor<T>& a, const tensor<T>& b);
/// 1 where a < b else 0 (zero gradient)
template <class T> tensor<T> lt(const tensor<T>& a, const tensor<T>& b);
/// 1 where a <= b else 0 (zero gradient)
template <class T> tensor<T> le(const tensor<T>& a, const tensor<T>& b);
/// 1 where a > b else 0 (zero gradient)
template <class T> tensor<T> gt(const tensor<T>& a, const tensor<T>& b);
/// 1 where a >= b else 0 (zero gradient)
template <class T> tensor<T> ge(const tensor<T>& a, const tensor<T>& b);

// ------------------------------------------------- more activations (ops_activations.cpp)
/// x * sigmoid(x) (swish)
template <class T> tensor<T> silu(const tensor<T>& x);
/// x * tanh(softplus(x))
template <class T> tensor<T> mish(const tensor<T>& x);
/// log(sigmoid(x)) = -softplus(-x), stable for any x
template <class T> tensor<T> logsigmoid(const tensor<T>& x);
/// clamp(x, lo, hi); gradient 0 at and outside the bounds (as PyTorch's hardtanh)
template <class T> tensor<T> hardtanh(const tensor<T>& x, T lo = T(-1), T hi = T(1));
/// scale * (x > 0 ? x : alpha (e^x - 1)) with PyTorch's constants
template <class T> tensor<T> selu(const tensor<T>& x);

// ------------------------------------------------- statistics (ops_stats.cpp)
/// Product of all elements; the gradient is right with zeros (no division).
template <class T> tensor<T> prod(const tensor<T>& x);
/// Product over `axes` (empty: all).
template <class T> tensor<T> prod(const tensor<T>& x, const axes_t& axes, bool keepdims = false);
/// Variance over `axes` (empty: all): sum (x - mean)^2 / (n - correction); correction 1 is
/// Bessel's (PyTorch's default), 0 the population variance.
template <class T>
tensor<T> var(const tensor<T>& x, const axes_t& axes = {}, int correction = 1, bool keepdims = false);
/// Standard deviation sqrt(var(...)), PyTorch's torch.std (named so as not to read as namespace std).
template <class T>
tensor<T> std_dev(const tensor<T>& x, const axes_t& axes = {}, int correction = 1, bool keepdims = false);
/// Vector p-norm over `axes` (empty: all) for p = 1, 2 or infinity; the 2-norm's
/// gradient is 0 at 0, and tied maxima share the inf-norm's gradient (as PyTorch).
template <class T>
tensor<T> norm(const tensor<T>& x, double p = 2, const axes_t& axes = {}, bool keepdims = false);
/// Running sum along `axis`.
template <class T> tensor<T> cumsum(const tensor<T>& x, axis_t axis);
/// log(sum(exp(x))) over several axes, without overflow.
template <class T> tensor<T> logsumexp(const tensor<T>& x, const axes_t& axes, bool keepdims = false);
/// Index of the largest element along `axis` (first on ties, NaN counts as largest), as a constant.
template <class T> tensor<T> argmax(const tensor<T>& x, axis_t axis, bool keepdims = false);
/// Flat index of the largest element, as a 0-d constant.
template <class T> tensor<T> argmax(const tensor<T>& x);
/// Index of the smallest element along `axis` (first on ties), as a constant.
template <class T> tensor<T> argmin(const tensor<T>& x, axis_t axis, bool keepdims = false);
/// Flat index of the smallest element, as a 0-d constant.
template <class T> tensor<T> argmin(const tensor<T>& x);

// ------------------------------------------------- more shape ops (shape_ops.cpp)
/// Drop every axis of size 1.
template <class T> tensor<T> squeeze(const tensor<T>& x);
/// Drop the listed axes, each of which must have size 1 (as NumPy; PyTorch ignores others).
template <class T> tensor<T> squeeze(const tensor<T>& x, const axes_t& axes);
/// Insert an axis of size 1 at `axis` (in -(rank+1)..rank).
template <class T> tensor<T> unsqueeze(const tensor<T>& x, axis_t axis);
/// Reverse the order of elements along each of `axes`.
template <class T> tensor<T> flip(const tensor<T>& x, const axes_t& axes);
/// Pad with `value`: widths[i] = {before, after} for axis i, one pair per axis.
template <class T>
tensor<T> pad(const tensor<T>& x, const std::vector<std::pair<std::size_t, std::size_t>>& widths, T value = T(0));
/// Elements begin, begin + step, ... below end along `axis` (step >= 1), as x[begin:end:step].
template <class T> tensor<T> slice(const tensor<T>& x, axis_t axis, std::size_t begin, std::size_t end, std::size_t step);
/// y[..., i, ...] = x[..., index[..., i, ...], ...] along `axis` (torch.gather): `index`
/// has x's rank and sizes no larger than x's outside `axis`; the gradient scatter-adds.
template <class T> tensor<T> gather(const tensor<T>& x, axis_t axis, const xt::xarray<std::size_t>& index);
/// The slices x[..., indices[k], ...] along `axis`; the gradient scatter-adds.
template <class T> tensor<T> index_select(const tensor<T>& x, axis_t axis, const std::vector<std::size_t>& indices);

// ------------------------------------------------- more losses (losses.cpp)
/// Options of cross_entropy / nll with class labels, as in PyTorch.
struct class_loss_options {
    std::vector<double> weight;        ///< per-class weights (empty: all 1); mean divides by the picked weights' sum
    long long ignore_index = -100;     ///< targets equal to this add nothing (and do not count in the mean)
    double label_smoothing = 0;        ///< cross_entropy only: mix the one-hot target with uniform, in [0, 1]
    reduction r = reduction::mean;
};
/// Cross-entropy from logits [N, C] or [N, C, d1, ...] (classes on axis 1) with labels
/// [N] or [N, d1, ...] flattened row-major; `reduction::none` gives shape [N, d1, ...].
template <class T>
tensor<T> cross_entropy(const tensor<T>& logits, const std::vector<std::size_t>& labels, const class_loss_options& o);
/// Negative log-likelihood of log-probabilities [N, C] or [N, C, d1, ...] with options.
template <class T>
tensor<T> nll(const tensor<T>& log_probs, const std::vector<std::size_t>& labels, const class_loss_options& o);
/// Binary cross-entropy of probabilities p in [0, 1]: -(t log p + (1 - t) log(1 - p)),
/// each log clamped at -100 as PyTorch does.
template <class T>
tensor<T> binary_cross_entropy(const tensor<T>& probs, const tensor<T>& targets, reduction r = reduction::mean);
/// bce_with_logits with pos_weight (broadcast against the logits, e.g. one per class [C]):
/// -(pw t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))).
template <class T>
tensor<T> bce_with_logits(const tensor<T>& logits, const tensor<T>& targets, const tensor<T>& pos_weight,
                          reduction r = reduction::mean);
/// Options of kl_div.
struct kl_div_options {
    reduction r = reduction::mean;  ///< mean over all elements (PyTorch's default), sum or none
    bool batchmean = false;         ///< sum / batch size (PyTorch's reduction='batchmean'); overrides r
    bool log_target = false;        ///< the target is given as log-probabilities
};
/// KL divergence of log-probabilities `input` from `target`: target (log target - input),
/// 0 where target is 0 (as PyTorch's kl_div).
template <class T> tensor<T> kl_div(const tensor<T>& input, const tensor<T>& target, const kl_div_options& o = {});
/// Smooth L1: 0.5 d^2 / beta where |d| < beta, else |d| - beta / 2 (beta 0: L1).
template <class T>
tensor<T> smooth_l1(const tensor<T>& pred, const tensor<T>& target, T beta = T(1), reduction r = reduction::mean);
// ================================================== end of issue #9 additions

// --------------------------------------------------------------- operators
template <class T> tensor<T> operator+(const tensor<T>& a, const tensor<T>& b) { return add(a, b); }
template <class T> tensor<T> operator-(const tensor<T>& a, const tensor<T>& b) { return sub(a, b); }
template <class T> tensor<T> operator*(const tensor<T>& a, const tensor<T>& b) { return mul(a, b); }
template <class T> tensor<T> operator/(const tensor<T>& a, const tensor<T>& b) { return div(a, b); }
template <class T> tensor<T> operator-(const tensor<T>& x) { return neg(x); }

template <class S> using if_scalar = std::enable_if_t<std::is_arithmetic<S>::value, int>;
template <class T, class S, if_scalar<S> = 0> tensor<T> operator+(const tensor<T>& x, S s) { return add_scalar(x, T(s)); }
template <class T, class S, if_scalar<S> = 0> tensor<T> operator+(S s, const tensor<T>& x) { return add_scalar(x, T(s)); }
template <class T, class S, if_scalar<S> = 0> tensor<T> operator-(const tensor<T>& x, S s) { return add_scalar(x, T(-s)); }
template <class T, class S, if_scalar<S> = 0> tensor<T> operator-(S s, const tensor<T>& x) { return rsub_scalar(x, T(s)); }
template <class T, class S, if_scalar<S> = 0> tensor<T> operator*(const tensor<T>& x, S s) { return mul_scalar(x, T(s)); }
template <class T, class S, if_scalar<S> = 0> tensor<T> operator*(S s, const tensor<T>& x) { return mul_scalar(x, T(s)); }
template <class T, class S, if_scalar<S> = 0> tensor<T> operator/(const tensor<T>& x, S s) { return mul_scalar(x, T(1) / T(s)); }
template <class T, class S, if_scalar<S> = 0> tensor<T> operator/(S s, const tensor<T>& x) { return rdiv_scalar(x, T(s)); }
/// 0/1 mask of x > s (zero gradient).
template <class T, class S, if_scalar<S> = 0> tensor<T> operator>(const tensor<T>& x, S s) { return greater(x, T(s)); }
/// 0/1 mask of x < s (zero gradient).
template <class T, class S, if_scalar<S> = 0> tensor<T> operator<(const tensor<T>& x, S s) { return less(x, T(s)); }

/// where() with a scalar branch.
template <class T, class S, if_scalar<S> = 0> tensor<T> where(const tensor<T>& c, const tensor<T>& a, S b) {
    return where(c, a, tensor<T>::scalar(T(b)));
}
template <class T, class S, if_scalar<S> = 0> tensor<T> where(const tensor<T>& c, S a, const tensor<T>& b) {
    return where(c, tensor<T>::scalar(T(a)), b);
}

}  // namespace tapegrad

#include "autograd/conv.hpp"  // conv2d, pooling, flatten
