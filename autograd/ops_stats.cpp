// Statistics (issue #9): prod, var/std_dev, norm, cumsum, logsumexp over several
// axes, argmax/argmin. Most are composed from recorded ops, so their first and
// second derivatives come from rules already checked; cumsum is a primitive whose
// backward is the reverse running sum (itself the same primitive, so it is twice
// differentiable); argmax/argmin are constants.

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>


#include "autograd/detail/lines.hpp"
#include "autograd/detail/op_drivers.hpp"
#include "autograd/detail/trace.hpp"

namespace tapegrad {

using detail::make_result;
using detail::to_shape;

namespace {

/// The reduced axes of x (empty list: all), normalised, as a 0/1 mask.
std::vector<char> axis_mask(const char* op, const std::vector<int>& axes, std::size_t rank) {
    std::vector<char> mask(rank, axes.empty() ? 1 : 0);
    for (int a : axes) {
        const std::size_t k = detail::norm_axis(op, a, rank);
        if (mask[k]) throw shape_error(std::string(op) + ": axis " + std::to_string(a) + " is listed twice");
        mask[k] = 1;
    }
    return mask;
}

/// x with its reduced axes moved last and merged: [kept..., L]; `kept` and `keep`
/// (x's shape with reduced axes 1) describe the result shapes.
template <class T> struct folded {
    tensor<T> x;
    shape_t kept, keep;
    std::size_t len = 1;
};

template <class T> folded<T> fold(const char* op, const tensor<T>& x, const std::vector<int>& axes) {
    const shape_t s = x.shape();
    const auto mask = axis_mask(op, axes, s.size());
    std::vector<std::size_t> perm;
    folded<T> f;
    f.keep = s;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (!mask[i]) perm.push_back(i), f.kept.push_back(s[i]);
    for (std::size_t i = 0; i < s.size(); ++i)
        if (mask[i]) perm.push_back(i), f.len *= s[i], f.keep[i] = 1;
    bool identity = true;
    for (std::size_t i = 0; i < perm.size(); ++i) identity = identity && perm[i] == i;
    shape_t merged = f.kept;
    merged.push_back(f.len);
    f.x = reshape(identity ? x : permute(x, axes_t(perm.begin(), perm.end())), merged);
    return f;
}

template <class T> tensor<T> unfold(const folded<T>& f, const tensor<T>& r, bool keepdims) {
    return reshape(r, keepdims ? f.keep : f.kept);
}

}  // namespace

// ------------------------------------------------------------------ prod
// prod over a line as a tree of pairwise products (log2 L recorded muls): the
// gradient of each element is the product of the others, right with zeros, where
// y / x would divide by 0.
template <class T> tensor<T> prod(const tensor<T>& x, const std::vector<int>& axes, bool keepdims) {
    folded<T> f = fold("prod", x, axes);
    tensor<T> r = f.x;
    std::size_t len = f.len;
    if (len == 0) {
        shape_t s = f.kept;
        s.push_back(1);
        r = tensor<T>::ones(s);  // the empty product is 1
    }
    while (len > 1) {
        const std::size_t half = len / 2;
        tensor<T> m = slice(r, -1, 0, half) * slice(r, -1, half, 2 * half);
        if (len % 2) m = concat<T>({m, slice(r, -1, 2 * half, len)}, -1);
        r = m;
        len = half + len % 2;
    }
    return unfold(f, r, keepdims);
}
template <class T> tensor<T> prod(const tensor<T>& x) { return prod(x, {}, false); }

// ------------------------------------------------------------ var, std_dev
// var = sum (x - mean)^2 / (n - correction): d var / dx = 2 (x - mean) / (n - correction)
template <class T> tensor<T> var(const tensor<T>& x, const std::vector<int>& axes, int correction, bool keepdims) {
    const auto mask = axis_mask("var", axes, x.dim());
    std::size_t n = 1;
    for (std::size_t i = 0; i < mask.size(); ++i)
        if (mask[i]) n *= x.shape()[i];
    if (correction < 0) throw std::invalid_argument("var: correction must be >= 0, got " + std::to_string(correction));
    // n <= correction divides by 0 (inf or NaN), as PyTorch
    const T denom = T(std::max<long long>(0, static_cast<long long>(n) - correction));
    tensor<T> d = x - mean(x, axes, true);
    return mul_scalar(sum(d * d, axes, keepdims), T(1) / denom);
}

template <class T> tensor<T> std_dev(const tensor<T>& x, const std::vector<int>& axes, int correction, bool keepdims) {
    return sqrt(var(x, axes, correction, keepdims));
}

// ------------------------------------------------------------------ norm
// p = 1: sum |x|, d = sign(x). p = 2: sqrt(sum x^2), d = x / y, 0 where y = 0: computed as
// sqrt(s + z) - z with z = [s == 0] (eq: no gradient), so the slope there is x / 1 = 0, not
// 0 / 0; z is an op, not a C++-built constant, so a compiled step's replay recomputes it.
// p = inf: max |x|, d = sign(x) at the maxima, shared by ties.
template <class T> tensor<T> norm(const tensor<T>& x, double p, const std::vector<int>& axes, bool keepdims) {
    axis_mask("norm", axes, x.dim());
    if (p == 1) return sum(abs(x), axes, keepdims);
    if (p == 2) {
        tensor<T> s = sum(x * x, axes, keepdims);
        tensor<T> zero = eq(s, tensor<T>::scalar(T(0)));
        return sqrt(s + zero) - zero;
    }
    if (std::isinf(p) && p > 0) return max(abs(x), axes, keepdims);
    throw std::invalid_argument("norm: p = " + std::to_string(p) +
                                " is not supported; use 1, 2 or std::numeric_limits<double>::infinity()");
}

// ---------------------------------------------------------------- cumsum
// y_k = sum_{j <= k} x_j along the axis; dx_j = sum_{k >= j} gy_k, the reverse running
// sum (op_data[1] = 1), whose own gradient is the forward one again.
namespace {
template <class T> tensor<T> running_sum(const tensor<T>& x, std::size_t axis, bool reverse);

/// dst (+)= the running sums of src along the lines of L (from their ends when from_end).
/// A strided axis goes a block of lines at a time, its rows in xsimd-friendly loops over
/// the lines (each line walked alone read one element per cache line: 10x slower); every
/// line still adds its elements in the same order, so the sums are the same bits.
template <class T>
void running_sums(const detail::line_layout& L, const T* src, T* dst, bool from_end, bool accumulate) {
    if (L.inner > 1) {
        thread_local std::vector<T> acc;
        acc.resize(L.inner);
        for (std::size_t b = 0; b < L.outer; ++b) {
            std::fill(acc.begin(), acc.end(), T(0));
            T* a = acc.data();
            for (std::size_t k = 0; k < L.len; ++k) {
                const std::size_t row = b * L.len * L.inner + (from_end ? L.len - 1 - k : k) * L.inner;
                const T* x = src + row;
                T* y = dst + row;
                for (std::size_t l = 0; l < L.inner; ++l) {
                    a[l] += x[l];
                    y[l] = accumulate ? y[l] + a[l] : a[l];
                }
            }
        }
        return;
    }
    // Contiguous lines, four at a time: one line's sums are a chain of dependent adds
    // (4 cycles an element); four lines interleaved keep four chains in flight.
    const std::size_t n = L.len;
    auto lines = [&](std::size_t begin, std::size_t end) {
        std::size_t l = begin;
        for (; l + 4 <= end; l += 4) {
            T a[4] = {};
            for (std::size_t k = 0; k < n; ++k) {
                const std::size_t at = l * n + (from_end ? n - 1 - k : k);
                for (std::size_t j = 0; j < 4; ++j) {
                    const std::size_t i = at + j * n;
                    a[j] += src[i];
                    dst[i] = accumulate ? dst[i] + a[j] : a[j];
                }
            }
        }
        for (; l < end; ++l) {
            T a = 0;
            for (std::size_t k = 0; k < n; ++k) {
                const std::size_t i = l * n + (from_end ? n - 1 - k : k);
                a += src[i];
                dst[i] = accumulate ? dst[i] + a : a;
            }
        }
    };
    if (L.lines() * n >= detail::parallel_grain && engine_threads() > 1) detail::parallel_run(L.lines(), 4, lines);
    else lines(0, L.lines());
}

/// y = running sums of x along `axis` (from its end when `reverse`).
template <class T> void running_sum_values(const xt::xarray<T>& xv, T* y, std::size_t axis, bool reverse) {
    running_sums(detail::line_layout(xv.shape(), axis), xv.data(), y, reverse, false);
}

template <class T> void running_sum_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const std::size_t axis = c.self.op_data[0];
    const bool reverse = c.self.op_data[1] != 0;
    if (c.create_graph) {
        c.add_graph(0, running_sum(c.tgy(), axis, !reverse));
        return;
    }
    bool had;
    T* dx = c.grad_data(c.input(0), had);
    running_sums(detail::line_layout(c.gy().shape(), axis), c.gy().data(), dx, !reverse, had);  // the opposite direction
    c.mark(c.input(0));
}
// replay (op_data: axis, reverse)
template <class T> void running_sum_forward(node<T>& n, node<T>* const* in) {
    running_sum_values(in[0]->value, n.value.data(), n.op_data[0], n.op_data[1] != 0);
}

template <class T> tensor<T> running_sum(const tensor<T>& x, std::size_t axis, bool reverse) {
    const auto& xv = x.value();
    tensor<T> out = make_result<T>("cumsum", &running_sum_backward<T>, {&x}, 2);
    node<T>* n = out.node_ptr();
    n->forward = &running_sum_forward<T>;
    if (n->op_data) n->op_data[0] = axis, n->op_data[1] = reverse ? 1 : 0;
    n->value.resize(xv.shape());
    running_sum_values(xv, n->value.data(), axis, reverse);
    return out;
}
}  // namespace

template <class T> tensor<T> cumsum(const tensor<T>& x, int axis) {
    if (x.dim() == 0) return reshape(cumsum(reshape(x, {1}), 0), {});
    return running_sum(x, detail::norm_axis("cumsum", axis, x.dim()), false);
}

// ------------------------------------------------------ logsumexp (axes)
// The reduced axes are folded into one last axis, then the one-axis logsumexp
// (fused and stable; d = softmax) does the work.
template <class T> tensor<T> logsumexp(const tensor<T>& x, const std::vector<int>& axes, bool keepdims) {
    folded<T> f = fold("logsumexp", x, axes);
    return unfold(f, logsumexp(f.x, -1, false), keepdims);
}

// ------------------------------------------------------ argmax / argmin
namespace {
template <class T> tensor<T> arg_extreme(const char* op, const tensor<T>& x, int axis, bool keepdims, bool is_max) {
    const auto& xv = x.value();
    // The result is a leaf made here, not a node: a replay would return the trace's indices.
    if (detail::tracer<T>* t = detail::active_tracer<T>())
        t->not_replayable(std::string(op) + " ran inside the compiled function; its indices would be frozen at the "
                                            "trace: compute them outside the step, on its result");
    if (xv.dimension() == 0) return tensor<T>::scalar(T(0));
    const std::size_t ax = detail::norm_axis(op, axis, xv.dimension());
    if (xv.shape()[ax] == 0)
        throw shape_error(std::string(op) + ": axis " + std::to_string(axis) + " of shape " + shape_str(xv.shape()) +
                          " is empty, so it has no " + (is_max ? "largest" : "smallest") + " element");
    shape_t keep = to_shape(xv.shape());
    keep[ax] = 1;
    xt::xarray<T> out(keep);
    const detail::line_layout L(xv.shape(), ax);
    for (std::size_t l = 0; l < L.lines(); ++l) {
        const std::size_t o = L.start(l);
        std::size_t best = 0;
        T bv = xv.data()[o];
        for (std::size_t k = 1; k < L.len && !std::isnan(bv); ++k) {  // the first NaN wins, as PyTorch
            const T v = xv.data()[o + k * L.inner];
            if (std::isnan(v) || (is_max ? v > bv : v < bv)) best = k, bv = v;
        }
        out.data()[l] = T(best);
    }
    if (!keepdims) keep.erase(keep.begin() + static_cast<std::ptrdiff_t>(ax));
    out.reshape(keep);
    return tensor<T>(std::move(out));
}
}  // namespace

template <class T> tensor<T> argmax(const tensor<T>& x, int axis, bool keepdims) {
    return arg_extreme("argmax", x, axis, keepdims, true);
}
template <class T> tensor<T> argmin(const tensor<T>& x, int axis, bool keepdims) {
    return arg_extreme("argmin", x, axis, keepdims, false);
}
namespace {
template <class T> tensor<T> flat_arg(const char* op, const tensor<T>& x, bool is_max) {
    if (x.size() == 0) throw shape_error(std::string(op) + ": the tensor of shape " + shape_str(x.shape()) + " is empty");
    xt::xarray<T> flat = x.value();
    flat.reshape({flat.size()});
    return arg_extreme(op, tensor<T>(std::move(flat)), 0, false, is_max);
}
}  // namespace
template <class T> tensor<T> argmax(const tensor<T>& x) { return flat_arg("argmax", x, true); }
template <class T> tensor<T> argmin(const tensor<T>& x) { return flat_arg("argmin", x, false); }

#define TAPEGRAD_STATS(T)                                                                  \
    template tensor<T> prod(const tensor<T>&);                                            \
    template tensor<T> prod(const tensor<T>&, const std::vector<int>&, bool);             \
    template tensor<T> var(const tensor<T>&, const std::vector<int>&, int, bool);         \
    template tensor<T> std_dev(const tensor<T>&, const std::vector<int>&, int, bool);     \
    template tensor<T> norm(const tensor<T>&, double, const std::vector<int>&, bool);     \
    template tensor<T> cumsum(const tensor<T>&, int);                                     \
    template tensor<T> logsumexp(const tensor<T>&, const std::vector<int>&, bool);        \
    template tensor<T> argmax(const tensor<T>&, int, bool);                               \
    template tensor<T> argmax(const tensor<T>&);                                          \
    template tensor<T> argmin(const tensor<T>&, int, bool);                               \
    template tensor<T> argmin(const tensor<T>&);
TAPEGRAD_STATS(float)
TAPEGRAD_STATS(double)

}  // namespace tapegrad
