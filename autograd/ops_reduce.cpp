// Reductions (sum, mean, max, min, logsumexp) and the normalising activations
// (softmax, log_softmax). Sums are computed through detail::sum_to, the same loop
// that reduces broadcast gradients; their gradients go back through
// detail::broadcast_back. Softmax-like ops are loops over lines along their axis.

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <xtensor/xreducer.hpp>

#include "autograd/detail/lines.hpp"
#include "autograd/detail/op_drivers.hpp"

namespace tapegrad {

using detail::make_result;
using detail::to_shape;
using detail::xshape;

namespace {

/// Which axes an op reduces: `axes` normalised; empty means all. Inline storage: no heap.
using axis_mask = xt::svector<std::size_t, 4>;
axis_mask reduced_axes(const char* op, const std::vector<int>& axes, std::size_t rank) {
    axis_mask mask(rank, axes.empty() ? 1 : 0);
    for (int a : axes) mask[detail::norm_axis(op, a, rank)] = 1;
    return mask;
}

template <class S, class M> xshape keep_shape(const S& xs, const M& mask) {
    xshape k(xs.begin(), xs.end());
    for (std::size_t i = 0; i < k.size(); ++i)
        if (mask[i]) k[i] = 1;
    return k;
}

template <class S, class M> xshape out_shape(const S& xs, const M& mask, bool keepdims) {
    xshape s;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        if (!mask[i]) s.push_back(xs[i]);
        else if (keepdims) s.push_back(1);
    }
    return s;
}

/// The reduced-axes mask is stored in op_data (one entry per input axis).
template <class T> xshape node_keep_shape(const backward_ctx<T>& c) { return keep_shape(c.x(0).shape(), c.self.op_data); }

// ------------------------------------------------------------ sum, mean
// y = s * sum over axes (s = 1, or 1 / count for mean); dx = s gy broadcast back over the reduced axes
template <class T> void sum_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const xshape keep = node_keep_shape(c);
    const T scale = c.self.scalar[0];
    if (c.create_graph) {
        tensor<T> g = broadcast_to(reshape(c.tgy(), to_shape(keep)), to_shape(c.x(0).shape()));
        c.add_graph(0, scale == T(1) ? g : mul_scalar(g, scale));
    } else if (c.self.backward_kernel) {
        c.run_kernel();
    } else {
        c.add_broadcast(0, c.gy().data(), keep, scale);
    }
}

// Every axis reduced: dx (+)= s gy, one value at every element (broadcast_back's bits)
template <class T> void sum_all_kernel(node<T>& n, const grad_target<T>* out) {
    const T v = n.scalar[0] * n.grad.data()[0];
    T* d = out[0].data;
    const std::size_t size = n.inputs[0]->value.size();
    if (out[0].add) for (std::size_t k = 0; k < size; ++k) d[k] += v;
    else std::fill(d, d + size, v);
}

// replay: the recorded reduction (axes in op_data, scale in scalar[0]) into the recorded shape
template <class T> void sum_forward(node<T>& n, node<T>* const* in) {
    const auto& xv = in[0]->value;
    const xshape out(n.value.shape().begin(), n.value.shape().end());
    detail::sum_to<T>(xv, n.value, keep_shape(xv.shape(), n.op_data), false);
    const T scale = n.scalar[0];
    if (scale != T(1))
        for (auto& v : n.value) v *= scale;
    n.value.reshape(out);
}

template <class T>
tensor<T> sum_op(const char* op, const tensor<T>& x, const std::vector<int>& axes, bool keepdims, bool average) {
    const auto& xv = x.value();
    const axis_mask mask = reduced_axes(op, axes, xv.dimension());
    const xshape keep = keep_shape(xv.shape(), mask);
    tensor<T> out = make_result<T>(op, &sum_backward<T>, {&x}, xv.dimension());
    node<T>* n = out.node_ptr();
    if (n->op_data) {
        std::copy(mask.begin(), mask.end(), n->op_data);
        n->forward = &sum_forward<T>;
    }
    if (std::all_of(mask.begin(), mask.end(), [](auto m) { return m != 0; })) n->backward_kernel = &sum_all_kernel<T>;
    std::size_t count = 1;
    for (std::size_t i = 0; i < mask.size(); ++i)
        if (mask[i]) count *= xv.shape()[i];
    // mean = sum / count (count 0 gives NaN, as in PyTorch)
    const T scale = average ? T(1) / T(count) : T(1);
    n->scalar[0] = scale;
    detail::sum_to<T>(xv, n->value, keep, false);
    if (scale != T(1))
        for (auto& v : n->value) v *= scale;
    n->value.reshape(out_shape(xv.shape(), mask, keepdims));
    return out;
}

// ------------------------------------------------------------ max / min
/// f(i, o, len, step) for every run of a row-major tensor of shape `xs`: elements
/// [i, i + len), whose indices in the reduction over the axes where mask != 0 (keepdims
/// layout) are o + k * step. The trailing axes that share the last axis's mask make the
/// run: step 0 when they are reduced (one output), 1 when kept. Runs come in element
/// order, so every output sees its elements in order. No heap.
template <class S, class M, class F> void for_each_reduced(const S& xs, const M& mask, F&& f) {
    const std::size_t rank = xs.size();
    if (rank == 0) return f(std::size_t(0), std::size_t(0), std::size_t(1), std::size_t(0));
    const bool inner_reduced = mask[rank - 1] != 0;
    std::size_t len = 1, d0 = rank;  // the run: axes [d0, rank)
    while (d0 > 0 && (mask[d0 - 1] != 0) == inner_reduced) len *= xs[--d0];
    xt::svector<std::size_t, 8> at(rank, 0), ostride(rank, 0);
    std::size_t runs = 1;
    for (std::size_t d = rank, s = 1; d-- > 0;) {
        ostride[d] = mask[d] ? 0 : s;
        if (!mask[d]) s *= xs[d];
        if (d < d0) runs *= xs[d];
    }
    if (len == 0) return;
    const std::size_t step = inner_reduced ? 0 : 1;
    std::size_t o = 0;
    for (std::size_t r = 0, i = 0; r < runs; ++r, i += len) {
        f(i, o, len, step);
        for (std::size_t d = d0; d-- > 0;) {  // next outer multi-index, carrying o along
            o += ostride[d];
            if (++at[d] < xs[d]) break;
            o -= ostride[d] * at[d];
            at[d] = 0;
        }
    }
}

/// The rule of max (Max) or min: v takes over from best when more extreme, or a NaN.
template <bool Max, class T> bool takes_over(T v, T best) { return (Max ? v > best : v < best) | (v != v); }

/// best after seeing x[0..n) in order, by takes_over: lanes of xsimd batches, then the
/// lanes in order. Values the rule treats as equal are equal except for the sign of a
/// zero and NaN payloads, so where the lanes could pick another element than the scan in
/// order (a zero result, a NaN) the element the scan picks is looked up.
template <bool Max, class T> T fiber_extreme(const T* x, std::size_t n, T best) {
    using V = xsimd::batch<T>;
    constexpr std::size_t lanes = V::size;
    T seg = Max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
    std::size_t k = 0;
    if (n >= lanes) {
        V acc(seg);
        for (; k + lanes <= n; k += lanes) {
            const V v = V::load_unaligned(x + k);
            acc = xsimd::select((Max ? v > acc : v < acc) | xsimd::isnan(v), v, acc);  // xsimd's != is ordered: false for NaN
        }
        alignas(64) T lane[lanes];
        acc.store_aligned(lane);
        for (std::size_t j = 0; j < lanes; ++j)
            if (takes_over<Max>(lane[j], seg)) seg = lane[j];
    }
    for (; k < n; ++k)
        if (takes_over<Max>(x[k], seg)) seg = x[k];
    if (seg != seg) {  // the scan in order ends on the last NaN
        for (std::size_t j = n; j-- > 0;)
            if (x[j] != x[j]) {
                seg = x[j];
                break;
            }
    } else if (seg == T(0)) {  // and on the first zero, +0 or -0
        for (std::size_t j = 0; j < n; ++j)
            if (x[j] == T(0)) {
                seg = x[j];
                break;
            }
    }
    return takes_over<Max>(seg, best) ? seg : best;
}

// y = max (or min) over axes; dx = gy at the extreme elements, shared equally by ties
template <class T> void extreme_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const auto& xv = c.x(0);
    const T* x = xv.data();
    const T* y = c.y().data();
    const auto& mask = c.self.op_data;
    // ties per output, then the share gy / ties, in the node's spare buffer (kept across steps: no heap in a replay)
    xt::xarray<T>& share = c.self.pass_grad;
    detail::fit(share, c.y().shape());
    std::fill(share.begin(), share.end(), T(0));
    T* ties = share.data();
    for_each_reduced(xv.shape(), mask, [&](std::size_t i, std::size_t o, std::size_t len, std::size_t step) {
        if (step) {
            for (std::size_t k = 0; k < len; ++k) ties[o + k] += T(x[i + k] == y[o + k]);
            return;
        }
        std::size_t count = 0;  // an integer sum vectorises; a float one would be a serial chain
        for (std::size_t k = 0; k < len; ++k) count += x[i + k] == y[o];
        ties[o] += T(count);
    });
    if (c.create_graph) {
        const xshape keep = node_keep_shape(c);
        xt::xarray<T> hit = xt::xarray<T>::from_shape(xv.shape());
        T* h = hit.data();
        for_each_reduced(xv.shape(), mask, [&](std::size_t i, std::size_t o, std::size_t len, std::size_t step) {
            for (std::size_t k = 0; k < len; ++k) h[i + k] = T(x[i + k] == y[o + k * step]);
        });
        xt::xarray<T> tie_counts = share;
        tie_counts.reshape(keep);
        tensor<T> per_tie = reshape(c.tgy(), to_shape(keep)) / tensor<T>(std::move(tie_counts));
        c.add_graph(0, per_tie * tensor<T>(std::move(hit)));
        return;
    }
    for (std::size_t o = 0; o < share.size(); ++o) ties[o] = c.gy().data()[o] / ties[o];
    T* dx;
    const bool had = detail::grad_buffer(c, 0, dx);
    const T* per_tie = share.data();
    // hit * share, as written: a non-extreme element gets 0 * share (NaN where a fiber has no hit)
    for_each_reduced(xv.shape(), mask, [&](std::size_t i, std::size_t o, std::size_t len, std::size_t step) {
        T* d = dx + i;
        const T* xi = x + i;
        if (step) {
            const T *yo = y + o, *po = per_tie + o;
            if (had) for (std::size_t k = 0; k < len; ++k) d[k] += T(xi[k] == yo[k]) * po[k];
            else for (std::size_t k = 0; k < len; ++k) d[k] = T(xi[k] == yo[k]) * po[k];
            return;
        }
        const T yo = y[o], po = per_tie[o];
        if (had) for (std::size_t k = 0; k < len; ++k) d[k] += T(xi[k] == yo) * po;
        else for (std::size_t k = 0; k < len; ++k) d[k] = T(xi[k] == yo) * po;
    });
    c.mark(c.input(0));
}

/// y = max (is_max) or min of xv over the axes where mask[i] != 0, into y (already of
/// the result's size). The first extreme of a fiber wins a tie (+0 against -0); a NaN
/// makes its fiber's result NaN, as in PyTorch (the last NaN of several). No heap.
template <bool Max, class T, class M> void extreme_values(const xt::xarray<T>& xv, const M& mask, xt::xarray<T>& y) {
    using V = xsimd::batch<T>;
    T* out = y.data();
    const T* x = xv.data();
    std::fill(out, out + y.size(), Max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity());
    for_each_reduced(xv.shape(), mask, [&](std::size_t i, std::size_t o, std::size_t len, std::size_t step) {
        if (!step) {
            out[o] = fiber_extreme<Max>(x + i, len, out[o]);
            return;
        }
        // a kept inner axis: each output of the run sees one element, in order
        simd::for_each<T>(len, [&](std::size_t k, auto tag) {
            const V v = simd::load(x + i + k, tag), best = simd::load(out + o + k, tag);
            simd::store(out + o + k, xsimd::select((Max ? v > best : v < best) | xsimd::isnan(v), v, best), tag);
        });
    });
}
template <class T, class M> void extreme_values(const xt::xarray<T>& xv, const M& mask, bool is_max, xt::xarray<T>& y) {
    if (is_max) extreme_values<true>(xv, mask, y);
    else extreme_values<false>(xv, mask, y);
}
// replay (op_data: the mask; scalar[0]: 1 for max): the eager computation
template <class T> void extreme_forward(node<T>& n, node<T>* const* in) {
    extreme_values(in[0]->value, n.op_data, n.scalar[0] != T(0), n.value);
}

template <class T>
tensor<T> extreme_op(const char* op, const tensor<T>& x, const std::vector<int>& axes, bool keepdims, bool is_max) {
    const auto& xv = x.value();
    const axis_mask mask = reduced_axes(op, axes, xv.dimension());
    if (xv.size() == 0) throw shape_error(std::string(op) + ": reduction of an empty tensor of shape " + shape_str(xv.shape()));
    tensor<T> out = make_result<T>(op, &extreme_backward<T>, {&x}, xv.dimension());
    node<T>* n = out.node_ptr();
    if (n->op_data) std::copy(mask.begin(), mask.end(), n->op_data);
    n->forward = &extreme_forward<T>;
    n->scalar[0] = is_max ? T(1) : T(0);
    n->value.resize(out_shape(xv.shape(), mask, keepdims));
    extreme_values(xv, mask, is_max, n->value);
    return out;
}

}  // namespace

template <class T> tensor<T> sum(const tensor<T>& x, const std::vector<int>& axes, bool keepdims) {
    return sum_op<T>("sum", x, axes, keepdims, false);
}
template <class T> tensor<T> sum(const tensor<T>& x) { return sum(x, {}, false); }

template <class T> tensor<T> mean(const tensor<T>& x, const std::vector<int>& axes, bool keepdims) {
    return sum_op<T>("mean", x, axes, keepdims, true);
}
template <class T> tensor<T> mean(const tensor<T>& x) { return mean(x, {}, false); }

template <class T> tensor<T> max(const tensor<T>& x, const std::vector<int>& axes, bool keepdims) {
    return extreme_op<T>("max", x, axes, keepdims, true);
}
template <class T> tensor<T> max(const tensor<T>& x) { return max(x, {}, false); }
template <class T> tensor<T> min(const tensor<T>& x, const std::vector<int>& axes, bool keepdims) {
    return extreme_op<T>("min", x, axes, keepdims, false);
}
template <class T> tensor<T> min(const tensor<T>& x) { return min(x, {}, false); }

// ------------------------------------------- logsumexp, softmax, log_softmax
// All three work line by line along one axis (detail/lines.hpp).
namespace {

using detail::for_each_line;
using detail::line_layout;

// Lines along a strided axis (inner > 1), a block at a time: the block of outer index b
// holds len rows of `inner` contiguous elements, element (k, l) of line l at
// b * len * inner + k * inner + l. Walking each line alone reads one element per cache
// line, with a scalar exp: softmax over axis 0 of [512, 1024] took 25x the last axis.
// Here every pass runs along the rows, in xsimd batches over the lines of the block;
// each line still sums its elements in order. `stats` is per-line scratch (2 x inner).
template <class T, class F> void for_each_block(const line_layout& L, F&& f) {
    thread_local std::vector<T> stats;
    stats.resize(2 * L.inner);
    for (std::size_t b = 0; b < L.outer; ++b) f(b * L.len * L.inner, stats.data(), stats.data() + L.inner);
}
/// for_each over the `inner` lines of row k of a block: f(offset of (k, l) from the block, l, tag).
template <class T, class F> void along_rows(const line_layout& L, F&& f) {
    for (std::size_t k = 0; k < L.len; ++k)
        simd::for_each<T>(L.inner, [&](std::size_t l, auto tag) { f(k * L.inner + l, l, tag); });
}
/// m[l] = safe_max of line l of the block at x (0 for an infinite maximum, as safe_max).
template <class T> void block_max(const line_layout& L, const T* x, T* m) {
    using V = xsimd::batch<T>;
    std::fill(m, m + L.inner, -std::numeric_limits<T>::infinity());
    along_rows<T>(L, [&](std::size_t i, std::size_t l, auto tag) {
        const V v = simd::load(x + i, tag), best = simd::load(m + l, tag);
        simd::store(m + l, xsimd::select(best < v, v, best), tag);  // std::max(best, v): a NaN is passed over
    });
    for (std::size_t l = 0; l < L.inner; ++l)
        if (std::isinf(m[l])) m[l] = T(0);
}


// y = log sum exp x; dx = gy exp(x - y) = gy softmax(x)
template <class T> void logsumexp_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const std::size_t axis = c.self.op_data[0];
    if (c.create_graph) {
        xshape keep(c.x(0).shape().begin(), c.x(0).shape().end());
        keep[axis] = 1;
        shape_t k = to_shape(keep);
        c.add_graph(0, reshape(c.tgy(), k) * exp(c.tx(0) - reshape(c.ty(), k)));
        return;
    }
    const line_layout L(c.x(0).shape(), axis);
    const T* x = c.x(0).data();
    const T* y = c.y().data();
    const T* gy = c.gy().data();
    bool had;
    T* dx = c.grad_data(c.input(0), had);
    for_each_line(L, [&](std::size_t l, std::size_t o, auto s) {  // line l is y's element l
        detail::add_scaled_exp<T>(dx + o, had, nullptr, gy[l], x + o, y[l], L.len, s);
    });
    c.mark(c.input(0));
}

// y = e^x / sum e^x; dx = y (gy - sum(gy y))
template <class T> void softmax_kernel(node<T>& n, const grad_target<T>* out) {
    const line_layout L(n.value.shape(), n.op_data[0]);
    const T* y = n.value.data();
    const T* gy = n.grad.data();
    const bool had = out[0].add;
    T* dx = out[0].data;
    if (L.inner > 1) {
        using V = xsimd::batch<T>;
        for_each_block<T>(L, [&](std::size_t base, T* dot, T*) {
            const T *yb = y + base, *gb = gy + base;
            T* db = dx + base;
            std::fill(dot, dot + L.inner, T(0));
            along_rows<T>(L, [&](std::size_t i, std::size_t l, auto tag) {
                simd::store(dot + l, V(simd::load(dot + l, tag) + simd::load(gb + i, tag) * simd::load(yb + i, tag)), tag);
            });
            along_rows<T>(L, [&](std::size_t i, std::size_t l, auto tag) {
                const V d = simd::load(yb + i, tag) * (simd::load(gb + i, tag) - simd::load(dot + l, tag));
                simd::store(db + i, had ? V(simd::load(db + i, tag) + d) : d, tag);
            });
        });
        return;
    }
    for_each_line(L, [&](std::size_t, std::size_t o, auto s) {
        const T dot = detail::line_dot(gy + o, y + o, L.len, s);
        for (std::size_t k = 0; k < L.len; ++k) {
            const std::size_t i = o + k * s;
            const T d = y[i] * (gy[i] - dot);
            dx[i] = had ? dx[i] + d : d;
        }
    });
}

template <class T> void softmax_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    if (c.create_graph) {
        tensor<T> y = c.ty(), gy = c.tgy();
        c.add_graph(0, y * (gy - sum(gy * y, {int(c.self.op_data[0])}, true)));
        return;
    }
    c.run_kernel();
}

// y = x - logsumexp(x); dx = gy - e^y sum(gy)
template <class T> void log_softmax_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const std::size_t axis = c.self.op_data[0];
    if (c.create_graph) {
        tensor<T> gy = c.tgy();
        c.add_graph(0, gy - exp(c.ty()) * sum(gy, {int(axis)}, true));
        return;
    }
    const line_layout L(c.y().shape(), axis);
    const T* y = c.y().data();
    const T* gy = c.gy().data();
    bool had;
    T* dx = c.grad_data(c.input(0), had);
    if (L.inner > 1) {
        using V = xsimd::batch<T>;
        for_each_block<T>(L, [&](std::size_t base, T* total, T*) {
            const T *yb = y + base, *gb = gy + base;
            T* db = dx + base;
            std::fill(total, total + L.inner, T(0));
            along_rows<T>(L, [&](std::size_t i, std::size_t l, auto tag) {
                simd::store(total + l, V(simd::load(total + l, tag) + simd::load(gb + i, tag)), tag);
            });
            along_rows<T>(L, [&](std::size_t i, std::size_t l, auto tag) {  // add_scaled_exp's form
                const V d = V(-simd::load(total + l, tag)) * xsimd::exp(simd::load(yb + i, tag) - V(T(0))) + simd::load(gb + i, tag);
                simd::store(db + i, had ? V(simd::load(db + i, tag) + d) : d, tag);
            });
        });
        c.mark(c.input(0));
        return;
    }
    for_each_line(L, [&](std::size_t, std::size_t o, auto s) {
        const T total = detail::line_dot<T>(gy + o, nullptr, L.len, s);
        detail::add_scaled_exp<T>(dx + o, had, gy + o, -total, y + o, T(0), L.len, s);
    });
    c.mark(c.input(0));
}

template <class T>
tensor<T> along_axis(const char* op, backward_fn<T> bw, const tensor<T>& x, int axis, std::size_t& ax) {
    ax = detail::norm_axis(op, axis, x.dim());
    tensor<T> out = make_result<T>(op, bw, {&x}, 1);
    if (out.node_ptr()->op_data) out.node_ptr()->op_data[0] = ax;
    return out;
}

}  // namespace

namespace {
template <class T> void logsumexp_fill(node<T>& n, const node<T>* in, std::size_t ax, bool keepdims) {
    const auto& xv = in->value;
    xshape keep(xv.shape().begin(), xv.shape().end());
    keep[ax] = 1;
    auto& v = n.value;
    v.resize(keep);
    const line_layout L(xv.shape(), ax);
    xt::xarray<T>& scratch = tape<T>::current().scratch();  // the exponentials, each line in its own place
    scratch.resize({xv.size()});
    for_each_line(L, [&](std::size_t l, std::size_t o, auto s) {
        v.data()[l] = detail::lse_line(xv.data() + o, scratch.data() + o, L.len, s);
    });
    if (!keepdims) {
        keep.erase(keep.begin() + static_cast<std::ptrdiff_t>(ax));
        v.reshape(keep);
    }
}
// replay: keepdims is read from the recorded result's rank
template <class T> void logsumexp_forward(node<T>& n, node<T>* const* in) {
    logsumexp_fill(n, in[0], n.op_data[0], n.value.dimension() == in[0]->value.dimension());
}

// y = exp(x - lse(x)) along axis ax
template <class T> void softmax_fill(node<T>& n, const node<T>* in, std::size_t ax) {
    const auto& xv = in->value;
    auto& v = n.value;
    detail::fit(v, xv.shape());  // a replay finds the shape in place: no stride recomputation
    const line_layout L(xv.shape(), ax);
    if (L.inner > 1) {
        using V = xsimd::batch<T>;
        for_each_block<T>(L, [&](std::size_t base, T* m, T* inv) {
            const T* xb = xv.data() + base;
            T* yb = v.data() + base;
            block_max(L, xb, m);
            std::fill(inv, inv + L.inner, T(0));
            along_rows<T>(L, [&](std::size_t i, std::size_t l, auto tag) {
                const V e = xsimd::exp(simd::load(xb + i, tag) - simd::load(m + l, tag));
                simd::store(yb + i, e, tag);
                simd::store(inv + l, V(simd::load(inv + l, tag) + e), tag);
            });
            for (std::size_t l = 0; l < L.inner; ++l) inv[l] = T(1) / inv[l];
            along_rows<T>(L, [&](std::size_t i, std::size_t l, auto tag) {
                simd::store(yb + i, V(simd::load(yb + i, tag) * simd::load(inv + l, tag)), tag);
            });
        });
        return;
    }
    for_each_line(L, [&](std::size_t, std::size_t o, auto s) {
        const T* xl = xv.data() + o;
        T* yl = v.data() + o;
        const T inv = T(1) / detail::exp_shifted(xl, detail::safe_max(xl, L.len, s), yl, L.len, s);
        for (std::size_t k = 0; k < L.len; ++k) yl[k * s] *= inv;
    });
}

// y = x - lse(x) along axis ax
template <class T> void log_softmax_fill(node<T>& n, const node<T>* in, std::size_t ax) {
    const auto& xv = in->value;
    auto& v = n.value;
    detail::fit(v, xv.shape());  // a replay finds the shape in place: no stride recomputation
    const line_layout L(xv.shape(), ax);
    if (L.inner > 1) {
        using V = xsimd::batch<T>;
        for_each_block<T>(L, [&](std::size_t base, T* m, T* sum) {
            const T* xb = xv.data() + base;
            T* yb = v.data() + base;
            block_max(L, xb, m);
            std::fill(sum, sum + L.inner, T(0));
            along_rows<T>(L, [&](std::size_t i, std::size_t l, auto tag) {
                simd::store(sum + l, V(simd::load(sum + l, tag) + xsimd::exp(simd::load(xb + i, tag) - simd::load(m + l, tag))), tag);
            });
            for (std::size_t l = 0; l < L.inner; ++l) sum[l] = m[l] + std::log(sum[l]);  // the line's lse
            along_rows<T>(L, [&](std::size_t i, std::size_t l, auto tag) {
                simd::store(yb + i, V(simd::load(xb + i, tag) - simd::load(sum + l, tag)), tag);
            });
        });
        return;
    }
    for_each_line(L, [&](std::size_t, std::size_t o, auto s) {
        const T* xl = xv.data() + o;
        T* yl = v.data() + o;
        const T lse = detail::lse_line(xl, yl, L.len, s);  // y holds the exponentials until overwritten
        for (std::size_t k = 0; k < L.len; ++k) yl[k * s] = xl[k * s] - lse;
    });
}

// replay kernels: the axis is in op_data[0]
template <class T> void softmax_forward(node<T>& n, node<T>* const* in) { softmax_fill(n, in[0], n.op_data[0]); }
template <class T> void log_softmax_forward(node<T>& n, node<T>* const* in) {
    log_softmax_fill(n, in[0], n.op_data[0]);
}

/// Record a softmax-like op along `axis`; a recorded node gets its replay kernel.
template <class T>
tensor<T> along_axis_op(const char* op, backward_fn<T> bw, forward_fn<T> forward, const tensor<T>& x, int axis,
                        std::size_t& ax) {
    tensor<T> out = along_axis<T>(op, bw, x, axis, ax);
    if (out.node_ptr()->op_data) out.node_ptr()->forward = forward;
    return out;
}
}  // namespace

template <class T> tensor<T> logsumexp(const tensor<T>& x, int axis, bool keepdims) {
    std::size_t ax;
    tensor<T> out = along_axis_op<T>("logsumexp", &logsumexp_backward<T>, &logsumexp_forward<T>, x, axis, ax);
    logsumexp_fill(*out.node_ptr(), x.node_ptr(), ax, keepdims);
    return out;
}

template <class T> tensor<T> softmax(const tensor<T>& x, int axis) {
    std::size_t ax;
    tensor<T> out = along_axis_op<T>("softmax", &softmax_backward<T>, &softmax_forward<T>, x, axis, ax);
    if (out.node_ptr()->op_data) out.node_ptr()->backward_kernel = &softmax_kernel<T>;
    softmax_fill(*out.node_ptr(), x.node_ptr(), ax);
    return out;
}

template <class T> tensor<T> log_softmax(const tensor<T>& x, int axis) {
    std::size_t ax;
    tensor<T> out = along_axis_op<T>("log_softmax", &log_softmax_backward<T>, &log_softmax_forward<T>, x, axis, ax);
    log_softmax_fill(*out.node_ptr(), x.node_ptr(), ax);
    return out;
}

#define TAPEGRAD_REDUCE(T)                                                      \
    template tensor<T> sum(const tensor<T>&);                                  \
    template tensor<T> sum(const tensor<T>&, const std::vector<int>&, bool);   \
    template tensor<T> mean(const tensor<T>&);                                 \
    template tensor<T> mean(const tensor<T>&, const std::vector<int>&, bool);  \
    template tensor<T> max(const tensor<T>&);                                  \
    template tensor<T> max(const tensor<T>&, const std::vector<int>&, bool);   \
    template tensor<T> min(const tensor<T>&);                                  \
    template tensor<T> min(const tensor<T>&, const std::vector<int>&, bool);   \
    template tensor<T> logsumexp(const tensor<T>&, int, bool);                 \
    template tensor<T> softmax(const tensor<T>&, int);                         \
    template tensor<T> log_softmax(const tensor<T>&, int);
TAPEGRAD_REDUCE(float)
TAPEGRAD_REDUCE(double)

}  // namespace tapegrad
