// Convolution, pooling and batch normalisation (autograd/conv.hpp). Linear pairs
// carry the second derivatives: unfold2d (im2col) and fold2d (col2im), max pooling's
// pick and scatter, each the other's transpose and so the other's backward. conv2d
// is unfold2d then one node of per-sample gemms with the bias added in the same
// pass; its second-order path is the same product as recorded matmuls. Every
// buffer is a tape slot's value or gradient, kept across resets: a training step
// in steady state allocates nothing.

#include "autograd/conv.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/detail/op_drivers.hpp"
#include "autograd/kernels/blas.hpp"
#include "autograd/ops.hpp"

namespace tapegrad {

using detail::make_result;

namespace {

std::string pair_str(const std::array<std::size_t, 2>& a) {
    return "(" + std::to_string(a[0]) + ", " + std::to_string(a[1]) + ")";
}

// The sliding geometry of one op on [N, C, H, W]: output size per axis.
struct geometry {
    std::size_t n, c, h, w, oh, ow;
    window2d win;
    std::size_t rows() const { return c * win.kernel[0] * win.kernel[1]; }  // of the unfolded matrix
    std::size_t cols() const { return oh * ow; }
};

// Shapes are read from values (inline storage): a training step allocates nothing.
template <class S> geometry make_geometry(const char* op, const S& xs, const window2d& win) {
    if (xs.size() != 4)
        throw shape_error(std::string(op) + ": input must be [N, C, H, W], got " + shape_str(xs));
    geometry g{xs[0], xs[1], xs[2], xs[3], 0, 0, win};
    const std::size_t in[2] = {xs[2], xs[3]};
    std::size_t out[2];
    for (int a = 0; a < 2; ++a) {
        if (win.kernel[a] == 0 || win.stride[a] == 0 || win.dilation[a] == 0)
            throw shape_error(std::string(op) + ": kernel " + pair_str(win.kernel) + ", stride " + pair_str(win.stride) +
                              " and dilation " + pair_str(win.dilation) + " must be at least 1");
        const std::size_t span = win.dilation[a] * (win.kernel[a] - 1) + 1;
        const std::size_t padded = in[a] + win.pad_before[a] + win.pad_after[a];
        if (span > padded)
            throw shape_error(std::string(op) + ": the kernel spans " + std::to_string(span) + " along " +
                              (a == 0 ? "the height" : "the width") + " (kernel " + pair_str(win.kernel) +
                              ", dilation " + pair_str(win.dilation) + "), more than the padded input's " +
                              std::to_string(padded) + " (input " + shape_str(xs) + ", padding " +
                              pair_str(win.pad_before) + " before, " + pair_str(win.pad_after) + " after)");
        out[a] = (padded - span) / win.stride[a] + 1;
    }
    g.oh = out[0];
    g.ow = out[1];
    return g;
}

// op_data of unfold2d and fold2d: [C, H, W, kh, kw, sh, sw, top, left, bottom, right, dh, dw]
constexpr std::size_t geometry_slots = 13;

template <class T> void store_geometry(node<T>* n, const geometry& g) {
    if (!n->op_data) return;
    const window2d& w = g.win;
    const std::size_t v[geometry_slots] = {g.c,          g.h,          g.w,          w.kernel[0],     w.kernel[1],
                                           w.stride[0],  w.stride[1],  w.pad_before[0], w.pad_before[1],
                                           w.pad_after[0], w.pad_after[1], w.dilation[0], w.dilation[1]};
    std::copy(v, v + geometry_slots, n->op_data);
}

template <class T> geometry load_geometry(const node<T>& n, std::size_t batch) {
    const std::size_t* a = n.op_data;
    window2d w;
    w.kernel = {a[3], a[4]};
    w.stride = {a[5], a[6]};
    w.pad_before = {a[7], a[8]};
    w.pad_after = {a[9], a[10]};
    w.dilation = {a[11], a[12]};
    return make_geometry("unfold2d", std::array<std::size_t, 4>{batch, a[0], a[1], a[2]}, w);
}

// The unfolded matrix row by row: for each sample, tap (c, i, j) and output row oy,
// f(matrix, lo, hi, image) where entries [lo, hi) of the ow-long run starting at
// `matrix` come from the image at image, image + sw, ... and the rest are padding.
// A row in the vertical padding has lo = hi = 0.
template <class F> void for_each_run(const geometry& g, F&& f) {
    const window2d& w = g.win;
    const std::size_t kh = w.kernel[0], kw = w.kernel[1], L = g.cols(), sw = w.stride[1], left = w.pad_before[1];
    for (std::size_t n = 0; n < g.n; ++n)
        for (std::size_t c = 0; c < g.c; ++c)
            for (std::size_t i = 0; i < kh; ++i)
                for (std::size_t j = 0; j < kw; ++j) {
                    const std::size_t row = (c * kh + i) * kw + j;
                    const std::size_t image = (n * g.c + c) * g.h * g.w;
                    const std::size_t matrix = (n * g.rows() + row) * L;
                    // columns ox with left <= ox sw + j dw < left + w, in unsigned arithmetic
                    const std::size_t off = j * w.dilation[1];
                    const std::size_t lo = std::min(g.ow, off >= left ? 0 : (left - off + sw - 1) / sw);
                    const std::size_t hi = std::min(g.ow, off >= left + g.w ? 0 : (left + g.w - off + sw - 1) / sw);
                    for (std::size_t oy = 0; oy < g.oh; ++oy) {
                        // iy = oy sh - top + i dh
                        const std::size_t ty = oy * w.stride[0] + i * w.dilation[0];
                        const std::size_t m = matrix + oy * g.ow;
                        if (ty < w.pad_before[0] || ty - w.pad_before[0] >= g.h || lo >= hi) {
                            f(m, std::size_t(0), std::size_t(0), std::size_t(0));
                            continue;
                        }
                        f(m, lo, hi, image + (ty - w.pad_before[0]) * g.w + lo * sw + off - left);
                    }
                }
}

// Add the runs of the unfolded matrix `cols` into the image `dx` (col2im).
template <class T> void fold_into(const geometry& g, const T* cols, T* dx) {
    const std::size_t sw = g.win.stride[1];
    for_each_run(g, [&](std::size_t m, std::size_t lo, std::size_t hi, std::size_t img) {
        const T* from = cols + m + lo;
        T* to = dx + img;
        if (sw == 1)
            for (std::size_t k = 0; k < hi - lo; ++k) to[k] += from[k];
        else
            for (std::size_t k = 0; k < hi - lo; ++k) to[k * sw] += from[k];
    });
}

// Write the unfolded matrix of image `x` into `cols` (im2col), padding as 0.
template <class T> void unfold_into(const geometry& g, const T* x, T* cols) {
    const std::size_t sw = g.win.stride[1], ow = g.ow;
    for_each_run(g, [&](std::size_t m, std::size_t lo, std::size_t hi, std::size_t img) {
        T* to = cols + m;
        std::fill(to, to + lo, T(0));
        const T* from = x + img;
        if (sw == 1)
            std::copy(from, from + (hi - lo), to + lo);
        else
            for (std::size_t k = lo; k < hi; ++k) to[k] = from[(k - lo) * sw];
        std::fill(to + std::max(lo, hi), to + ow, T(0));
    });
}

template <class T>
tensor<T> unfold_op(const tensor<T>& x, const geometry& g, bool fill = true, bool keep_on_tape = false);
template <class T> tensor<T> fold_op(const tensor<T>& cols, const geometry& g);

// y = unfold(x) (linear); dx = fold(gy), the transpose
template <class T> void unfold_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const geometry g = load_geometry(c.self, c.x(0).shape()[0]);
    if (c.create_graph) {
        c.add_graph(0, fold_op(c.tgy(), g));
        return;
    }
    bool had;
    T* dx = c.grad_data(c.input(0), had);
    if (!had) std::fill(dx, dx + c.x(0).size(), T(0));
    fold_into(g, c.gy().data(), dx);
    c.mark(c.input(0));
}

// `fill` false leaves the matrix for conv_gemm_op to write sample by sample;
// `keep_on_tape` (conv2d's own matrix, when conv2d is recorded) makes it a tape slot
// even for a constant input, so conv1's matrix is not a new allocation each step.
// replay: the matrix again, unless its conv fills it sample by sample (scalar[0] = 1)
template <class T> void unfold_forward(node<T>& n, node<T>* const* in) {
    if (n.scalar[0] != T(0)) return;
    unfold_into(load_geometry(n, in[0]->value.shape()[0]), in[0]->value.data(), n.value.data());
}

template <class T> tensor<T> unfold_op(const tensor<T>& x, const geometry& g, bool fill, bool keep_on_tape) {
    tensor<T> out = keep_on_tape ? detail::make_tape_result<T>("unfold2d", &unfold_backward<T>, {&x}, geometry_slots)
                                 : make_result<T>("unfold2d", &unfold_backward<T>, {&x}, geometry_slots);
    node<T>* n = out.node_ptr();
    if (n->op_data) {
        store_geometry(n, g);
        n->scalar[0] = fill ? T(0) : T(1);
        n->forward = &unfold_forward<T>;
    }
    n->value.resize({g.n, g.rows(), g.cols()});  // a tape slot keeps its buffer: no allocation in steady state
    if (fill) unfold_into(g, x.value().data(), n->value.data());
    return out;
}

// y = fold(cols) (linear); dcols = unfold(gy), the transpose
template <class T> void fold_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const geometry g = load_geometry(c.self, c.x(0).shape()[0]);
    if (c.create_graph) {
        c.add_graph(0, unfold_op(c.tgy(), g));
        return;
    }
    bool had;
    T* dcols = c.grad_data(c.input(0), had);
    if (!had) {
        unfold_into(g, c.gy().data(), dcols);
    } else {
        const std::size_t sw = g.win.stride[1];
        const T* gy = c.gy().data();
        for_each_run(g, [&](std::size_t m, std::size_t lo, std::size_t hi, std::size_t img) {
            for (std::size_t k = lo; k < hi; ++k) dcols[m + k] += gy[img + (k - lo) * sw];
        });
    }
    c.mark(c.input(0));
}

template <class T> tensor<T> fold_op(const tensor<T>& cols, const geometry& g) {
    tensor<T> out = make_result<T>("fold2d", &fold_backward<T>, {&cols}, geometry_slots);
    node<T>* n = out.node_ptr();
    store_geometry(n, g);
    n->value.resize({g.n, g.c, g.h, g.w});
    std::fill(n->value.begin(), n->value.end(), T(0));
    fold_into(g, cols.value().data(), n->value.data());
    return out;
}

// Sums of n values in 32 independent lanes, so the compiler vectorises them without
// reassociating anything itself (several vector registers: the adds do not wait on
// each other); results are the same on every run.
constexpr std::size_t sum_lanes = 32;
template <class T> T add_lanes(T* lane) {  // pairwise, in a fixed order; overwrites the lanes
    for (std::size_t width = sum_lanes / 2; width > 0; width /= 2)
        for (std::size_t j = 0; j < width; ++j) lane[j] += lane[j + width];
    return lane[0];
}
template <class T, class F> T lane_sum(std::size_t n, F&& term) {
    T lane[sum_lanes] = {};
    std::size_t k = 0;
    for (; k + sum_lanes <= n; k += sum_lanes)
        for (std::size_t j = 0; j < sum_lanes; ++j) lane[j] += term(k + j);
    for (; k < n; ++k) lane[k % sum_lanes] += term(k);
    return add_lanes(lane);
}
/// Two such sums in one pass over the data.
template <class T, class F, class G> std::pair<T, T> lane_sum2(std::size_t n, F&& f, G&& g) {
    T a[sum_lanes] = {}, b[sum_lanes] = {};
    std::size_t k = 0;
    for (; k + sum_lanes <= n; k += sum_lanes)
        for (std::size_t j = 0; j < sum_lanes; ++j) {
            a[j] += f(k + j);
            b[j] += g(k + j);
        }
    for (; k < n; ++k) {
        a[k % sum_lanes] += f(k);
        b[k % sum_lanes] += g(k);
    }
    return {add_lanes(a), add_lanes(b)};
}

// ---------------------------------------------------------------- conv gemm
// y[n, g*Og + o, l] = sum_k W[g*Og + o, k] cols[n, g*K + k, l] (+ b[g*Og + o]): the
// product of each group's filters [Og, K] with the sample's unfolded columns [K, L],
// one gemm per sample and group. Inputs: cols [N, G*K, L], weight [O, C/G, kh, kw],
// bias [O] (optional). op_data: [oh, ow].
struct gemm_dims {
    std::size_t n, groups, out_per_group, k, l;
};

template <class T> gemm_dims conv_dims(const xt::xarray<T>& cols, const xt::xarray<T>& w) {
    const std::size_t k = w.shape()[1] * w.shape()[2] * w.shape()[3];
    const std::size_t groups = cols.shape()[1] / k;
    return {cols.shape()[0], groups, w.shape()[0] / groups, k, cols.shape()[2]};
}

template <class T> tensor<T> conv_gemm_op(const tensor<T>& cols, const tensor<T>& weight, const tensor<T>& bias,
                                          std::size_t oh, std::size_t ow, const tensor<T>* unfold_from = nullptr,
                                          const geometry* unfold_geometry = nullptr);

// dcols_n,g = W_g^T gy_n,g;  dW_g = sum_n gy_n,g cols_n,g^T;  db = sum_{n,l} gy
template <class T> void conv_gemm_backward(backward_ctx<T>& c) {
    const bool has_bias = c.self.n_inputs == 3;
    if (c.create_graph) {
        const gemm_dims d = conv_dims(c.x(0), c.x(1));
        const std::size_t out = d.groups * d.out_per_group;
        const tensor<T> gy = reshape(c.tgy(), {d.n, d.groups, d.out_per_group, d.l});
        const tensor<T> w = reshape(c.tx(1), {d.groups, d.out_per_group, d.k});
        if (c.wants(0)) c.add_graph(0, reshape(matmul(w, gy, true, false), {d.n, d.groups * d.k, d.l}));
        if (c.wants(1)) {
            const tensor<T> cols = reshape(c.tx(0), {d.n, d.groups, d.k, d.l});
            c.add_graph(1, reshape(sum(matmul(gy, cols, false, true), {0}), shape_t(c.x(1).shape().begin(), c.x(1).shape().end())));
        }
        if (has_bias && c.wants(2)) c.add_graph(2, sum(reshape(c.tgy(), {d.n, out, d.l}), {0, 2}));
        return;
    }
    const gemm_dims d = conv_dims(c.x(0), c.x(1));
    const std::size_t og = d.out_per_group, out = d.groups * og, K = d.k, L = d.l;
    const T* gy = c.gy().data();
    const T* cols = c.x(0).data();
    const T* w = c.x(1).data();
    // Sample by sample, so both gemms read gy_n while it is in cache.
    bool had_cols = false, had_w = false;
    T* dcols = c.wants(0) ? c.grad_data(c.input(0), had_cols) : nullptr;
    T* dw = c.wants(1) ? c.grad_data(c.input(1), had_w) : nullptr;
    for (std::size_t n = 0; n < d.n; ++n)
        for (std::size_t g = 0; g < d.groups; ++g) {
            const T* gy_ng = gy + (n * out + g * og) * L;
            const std::size_t cols_ng = (n * d.groups * K + g * K) * L;
            if (dw)
                blas::gemm(false, true, og, K, L, T(1), gy_ng, L, cols + cols_ng, L, had_w || n > 0 ? T(1) : T(0),
                           dw + g * og * K, K);
            if (dcols)
                blas::gemm(true, false, K, L, og, T(1), w + g * og * K, K, gy_ng, L, had_cols ? T(1) : T(0),
                           dcols + cols_ng, L);
        }
    if (dcols) c.mark(c.input(0));
    if (dw) c.mark(c.input(1));
    if (has_bias && c.wants(2)) {
        bool had;
        T* db = c.grad_data(c.input(2), had);
        if (!had) std::fill(db, db + out, T(0));
        for (std::size_t n = 0; n < d.n; ++n)
            for (std::size_t o = 0; o < out; ++o) {
                const T* row = gy + (n * out + o) * L;
                db[o] += lane_sum<T>(L, [row](std::size_t l) { return row[l]; });
            }
        c.mark(c.input(2));
    }
}

// With `unfold_from`, each sample's columns are unfolded (unfold_geometry) into `cols`,
// the unfold node made just before (unfold_op with fill false), right before its gemm
// reads them, while they are still in cache.
// y_n,g = W_g cols_n,g (+ b), one gemm per sample and group. With `unfold_from`, each
// sample's columns are first unfolded (unfold_geometry) into `cols`, right before its
// gemm reads them, while they are still in cache.
template <class T>
void conv_gemm_fill(xt::xarray<T>& y, xt::xarray<T>& cols, const xt::xarray<T>& weight, const xt::xarray<T>* bias,
                    std::size_t oh, std::size_t ow, const xt::xarray<T>* unfold_from, const geometry* unfold_geometry) {
    const gemm_dims d = conv_dims(cols, weight);
    const std::size_t og = d.out_per_group, o_all = d.groups * og, K = d.k, L = d.l;
    y.resize({d.n, o_all, oh, ow});
    const T* cv = cols.data();
    const T* w = weight.data();
    T* yv = y.data();
    geometry one_sample = unfold_geometry ? *unfold_geometry : geometry{};
    one_sample.n = 1;
    for (std::size_t n = 0; n < d.n; ++n) {
        if (unfold_from) {
            const std::size_t image = one_sample.c * one_sample.h * one_sample.w, rows = d.groups * K;
            unfold_into(one_sample, unfold_from->data() + n * image, cols.data() + n * rows * L);
        }
        for (std::size_t g = 0; g < d.groups; ++g)
            blas::gemm(false, false, og, L, K, T(1), w + g * og * K, K, cv + (n * d.groups * K + g * K) * L, L, T(0),
                       yv + (n * o_all + g * og) * L, L);
        if (bias) {
            const T* b = bias->data();
            for (std::size_t o = 0; o < o_all; ++o) {
                T* row = yv + (n * o_all + o) * L;
                for (std::size_t l = 0; l < L; ++l) row[l] += b[o];
            }
        }
    }
}

// replay: inputs cols (an unfold node, which this conv fills when its scalar[0] is 1), weight, bias
template <class T> void conv_gemm_forward(node<T>& n, node<T>* const* in) {
    node<T>& cols = *in[0];
    const bool deferred = cols.on_tape && cols.forward == &unfold_forward<T> && cols.scalar[0] != T(0);
    const geometry g = deferred ? load_geometry(cols, cols.value.shape()[0]) : geometry{};
    conv_gemm_fill(n.value, cols.value, in[1]->value, n.n_inputs == 3 ? &in[2]->value : nullptr, n.value.shape()[2],
                   n.value.shape()[3], deferred ? &cols.inputs[0]->value : nullptr, deferred ? &g : nullptr);
}

template <class T> tensor<T> conv_gemm_op(const tensor<T>& cols, const tensor<T>& weight, const tensor<T>& bias,
                                          std::size_t oh, std::size_t ow, const tensor<T>* unfold_from,
                                          const geometry* unfold_geometry) {
    tensor<T> out = bias.defined() ? make_result<T>("conv2d", &conv_gemm_backward<T>, {&cols, &weight, &bias})
                                   : make_result<T>("conv2d", &conv_gemm_backward<T>, {&cols, &weight});
    node<T>* n = out.node_ptr();
    // replayable when the matrix it fills is a recorded unfold of the same input, or it fills none
    node<T>* c = cols.node_ptr();
    if (n->on_tape && (!unfold_from || (c->on_tape && c->op_data && c->inputs[0] == unfold_from->node_ptr())))
        n->forward = &conv_gemm_forward<T>;
    conv_gemm_fill(n->value, c->value, weight.value(), bias.defined() ? &bias.value() : nullptr, oh, ow,
                   unfold_from ? &unfold_from->value() : nullptr, unfold_geometry);
    return out;
}

// ----------------------------------------------------- max pooling's halves
// pick: y[p, l] = x[p, at[p, l]] for each image p = (n, c) and window l (the
// maxima, once `at` holds the winners); scatter: y[p, at[p, l]] += g[p, l], its
// transpose. Each is the other's backward, so max_pool2d is twice differentiable.
// op_data: the geometry, then the winners (N*C*L, offsets inside each image).
template <class T> tensor<T> pick_op(const tensor<T>& x, const std::size_t* at, const geometry& g);
template <class T> tensor<T> scatter_op(const tensor<T>& gy, const std::size_t* at, const geometry& g);

template <class T> node<T>* with_winners(tensor<T>& out, const std::size_t* at, const geometry& g) {
    node<T>* n = out.node_ptr();
    if (n->op_data) {
        store_geometry(n, g);
        std::copy(at, at + g.n * g.c * g.cols(), n->op_data + geometry_slots);
    }
    return n;
}

template <class T> void pick_backward(backward_ctx<T>& c) {  // dx[at] += gy
    if (!c.wants(0)) return;
    const geometry g = load_geometry(c.self, c.x(0).shape()[0]);
    const std::size_t* at = c.self.op_data + geometry_slots;
    if (c.create_graph) {
        c.add_graph(0, scatter_op(c.tgy(), at, g));
        return;
    }
    bool had;
    T* dx = c.grad_data(c.input(0), had);
    if (!had) std::fill(dx, dx + c.x(0).size(), T(0));
    const T* gy = c.gy().data();
    const std::size_t L = g.cols(), hw = g.h * g.w, planes = g.n * g.c;
    const window2d& w = g.win;
    if (!had && w.stride[0] >= w.kernel[0] && w.stride[1] >= w.kernel[1]) {
        // windows do not overlap: each element is written at most once, so a store does (no
        // read-modify-write chain); + 0 keeps the sign the sum into zeros gives a -0
        for (std::size_t p = 0; p < planes; ++p)
            for (std::size_t l = 0; l < L; ++l) dx[p * hw + at[p * L + l]] = gy[p * L + l] + T(0);
    } else {
        for (std::size_t p = 0; p < planes; ++p)
            for (std::size_t l = 0; l < L; ++l) dx[p * hw + at[p * L + l]] += gy[p * L + l];
    }
    c.mark(c.input(0));
}

template <class T> tensor<T> pick_op(const tensor<T>& x, const std::size_t* at, const geometry& g) {
    tensor<T> out = make_result<T>("max_pool2d", &pick_backward<T>, {&x}, geometry_slots + g.n * g.c * g.cols());
    node<T>* n = with_winners(out, at, g);
    n->value.resize({g.n, g.c, g.oh, g.ow});
    T* y = n->value.data();
    const T* xv = x.value().data();
    const std::size_t L = g.cols(), hw = g.h * g.w;
    for (std::size_t p = 0; p < g.n * g.c; ++p)
        for (std::size_t l = 0; l < L; ++l) y[p * L + l] = xv[p * hw + at[p * L + l]];
    return out;
}

template <class T> void scatter_backward(backward_ctx<T>& c) {  // dgy = dy[at]
    if (!c.wants(0)) return;
    const geometry g = load_geometry(c.self, c.x(0).shape()[0]);
    const std::size_t* at = c.self.op_data + geometry_slots;
    if (c.create_graph) {
        c.add_graph(0, pick_op(c.tgy(), at, g));
        return;
    }
    bool had;
    T* dg = c.grad_data(c.input(0), had);
    const T* gy = c.gy().data();
    const std::size_t L = g.cols(), hw = g.h * g.w;
    for (std::size_t p = 0; p < g.n * g.c; ++p)
        for (std::size_t l = 0; l < L; ++l) dg[p * L + l] = (had ? dg[p * L + l] : T(0)) + gy[p * hw + at[p * L + l]];
    c.mark(c.input(0));
}

template <class T> tensor<T> scatter_op(const tensor<T>& gy, const std::size_t* at, const geometry& g) {
    tensor<T> out = make_result<T>("max_unpool2d", &scatter_backward<T>, {&gy}, geometry_slots + g.n * g.c * g.cols());
    node<T>* n = with_winners(out, at, g);
    n->value.resize({g.n, g.c, g.h, g.w});
    std::fill(n->value.begin(), n->value.end(), T(0));
    T* y = n->value.data();
    const T* gv = gy.value().data();
    const std::size_t L = g.cols(), hw = g.h * g.w;
    for (std::size_t p = 0; p < g.n * g.c; ++p)
        for (std::size_t l = 0; l < L; ++l) y[p * hw + at[p * L + l]] += gv[p * L + l];
    return out;
}

// Pooling windows: stride 0 is the kernel; padding at most half the kernel, as
// PyTorch requires, so every window holds at least one element of the image.
window2d pool_window(const char* op, std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride,
                     std::array<std::size_t, 2> padding) {
    window2d w;
    w.kernel = kernel;
    for (int a = 0; a < 2; ++a) {
        w.stride[a] = stride[a] == 0 ? kernel[a] : stride[a];
        if (padding[a] > kernel[a] / 2)
            throw shape_error(std::string(op) + ": padding " + pair_str(padding) +
                              " must be at most half the kernel " + pair_str(kernel));
    }
    w.pad_before = w.pad_after = padding;
    return w;
}

}  // namespace

template <class T> tensor<T> unfold2d(const tensor<T>& x, const window2d& w) {
    return unfold_op(x, make_geometry("unfold2d", x.value().shape(), w));
}

template <class T> tensor<T> fold2d(const tensor<T>& cols, std::size_t height, std::size_t width, const window2d& w) {
    const auto& cs = cols.value().shape();
    if (cs.size() != 3)
        throw shape_error("fold2d: columns must be [N, C*kh*kw, L], got " + shape_str(cs));
    const std::size_t taps = w.kernel[0] * w.kernel[1];
    if (taps == 0 || cs[1] % taps != 0)
        throw shape_error("fold2d: columns " + shape_str(cs) + " do not hold whole kernels " + pair_str(w.kernel));
    const geometry g = make_geometry("fold2d", std::array<std::size_t, 4>{cs[0], cs[1] / taps, height, width}, w);
    if (cs[2] != g.cols())
        throw shape_error("fold2d: columns " + shape_str(cs) + " hold " + std::to_string(cs[2]) +
                          " windows, but a " + std::to_string(height) + "x" + std::to_string(width) +
                          " image has " + std::to_string(g.cols()) + " with this window");
    return fold_op(cols, g);
}

template <class T>
tensor<T> conv2d(const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias, const conv2d_options& o) {
    const auto &xs = x.value().shape(), &ws = weight.value().shape();
    auto shapes = [&] {  // for errors only: building it costs allocations
        return "input " + shape_str(xs) + ", weight " + shape_str(ws) +
               (bias.defined() ? ", bias " + shape_str(bias.value().shape()) : std::string());
    };
    if (xs.size() != 4 || ws.size() != 4)
        throw shape_error("conv2d: input must be [N, C, H, W] and weight [O, C/groups, kh, kw]; got " + shapes());
    const std::size_t groups = o.groups;
    if (groups == 0 || xs[1] % groups != 0 || ws[0] % groups != 0 || ws[1] * groups != xs[1])
        throw shape_error("conv2d: " + std::to_string(groups) + " group(s) need the input's " + std::to_string(xs[1]) +
                          " channels = weight.shape[1] * groups and the weight's " + std::to_string(ws[0]) +
                          " filters divisible by groups; got " + shapes());
    if (bias.defined() && (bias.value().dimension() != 1 || bias.value().shape()[0] != ws[0]))
        throw shape_error("conv2d: bias must be [" + std::to_string(ws[0]) + "] (one per filter); got " + shapes());
    window2d w;
    w.kernel = {ws[2], ws[3]};
    w.stride = o.stride;
    w.dilation = o.dilation;
    if (o.same) {
        if (o.stride[0] != 1 || o.stride[1] != 1)
            throw shape_error("conv2d: padding 'same' needs stride 1 (as PyTorch), got stride " + pair_str(o.stride));
        for (int a = 0; a < 2; ++a) {  // PyTorch: the extra zero of an even span goes after
            const std::size_t total = o.dilation[a] * (w.kernel[a] - 1);
            w.pad_before[a] = total / 2;
            w.pad_after[a] = total - total / 2;
        }
    } else {
        w.pad_before = w.pad_after = o.padding;
    }
    const geometry g = make_geometry("conv2d", xs, w);
    const bool recorded = grad_enabled() && (x.requires_grad() || weight.requires_grad() ||
                                             (bias.defined() && bias.requires_grad()));
    return conv_gemm_op(unfold_op(x, g, false, recorded), weight, bias, g.oh, g.ow, &x, &g);
}

namespace {
// take ? a : b on the bits. g++ compiles a float ternary in a loop to a branch, and on
// pooled activations that branch mispredicts about half the time: 5-7x slower.
template <class T> T select_bits(bool take, T a, T b) {
    using bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    static_assert(sizeof(T) == sizeof(bits), "float or double");
    bits ab, bb;
    std::memcpy(&ab, &a, sizeof a);
    std::memcpy(&bb, &b, sizeof b);
    const bits mask = bits(0) - bits(take);
    bb = (ab & mask) | (bb & ~mask);
    std::memcpy(&b, &bb, sizeof b);
    return b;
}

// The winner of one window by PyTorch's CPU rule: scan in row-major order from the
// window's first element inside the image; a value greater than the best so far,
// or a NaN, takes over.
// (So of several NaNs the last wins, as in PyTorch.)
template <class T> struct window_max {
    T best = -std::numeric_limits<T>::infinity();
    std::size_t at = std::size_t(-1);
    void see(const T* image, std::size_t here) {
        const T v = image[here];
        if (at == std::size_t(-1)) at = here;
        const bool take = (v > best) | (v != v);
        best = select_bits(take, v, best);
        at = (here & (std::size_t(0) - take)) | (at & (std::size_t(take) - 1));
    }
};
}  // namespace

namespace {
// y = the maximum of each window, its offset kept in `winners` (PyTorch's rule, window_max)
template <class T> void max_pool_fill(xt::xarray<T>& value, const xt::xarray<T>& x, const geometry& g, std::size_t* winners) {
    const window2d& w = g.win;
    const std::array<std::size_t, 2> kernel = w.kernel;
    const std::size_t L = g.cols(), hw = g.h * g.w;
    value.resize({g.n, g.c, g.oh, g.ow});
    T* y = value.data();
    const T* xv = x.data();
    const bool inside = w.pad_before[0] == 0 && w.pad_before[1] == 0;  // every window lies in the image: no bounds tests
    for (std::size_t p = 0; p < g.n * g.c; ++p) {
        const T* image = xv + p * hw;
        std::size_t* at = winners + p * L;
        T* out_p = y + p * L;
        if (inside && kernel[0] == 2 && kernel[1] == 2) {  // the usual 2x2 pool, unrolled
            // the geometry in locals: `at` is a std::size_t* like g's fields, which every store to it would reload
            const std::size_t gw = g.w, oh = g.oh, ow = g.ow, s0 = w.stride[0], s1 = w.stride[1];
            for (std::size_t oy = 0; oy < oh; ++oy)
                for (std::size_t ox = 0; ox < ow; ++ox) {
                    const std::size_t c0 = oy * s0 * gw + ox * s1;
                    const std::size_t k[3] = {c0 + 1, c0 + gw, c0 + gw + 1};
                    T best = image[c0];
                    std::size_t win = c0;
                    for (std::size_t j = 0; j < 3; ++j) {  // window_max's rule, selected by masks
                        const T v = image[k[j]];
                        const bool take = (v > best) | (v != v);
                        best = select_bits(take, v, best);
                        win = (k[j] & (std::size_t(0) - take)) | (win & (std::size_t(take) - 1));
                    }
                    at[oy * ow + ox] = win;
                    out_p[oy * ow + ox] = best;
                }
            continue;
        }
        for (std::size_t oy = 0; oy < g.oh; ++oy)
            for (std::size_t ox = 0; ox < g.ow; ++ox) {
                window_max<T> m;
                if (inside) {
                    const std::size_t corner = oy * w.stride[0] * g.w + ox * w.stride[1];
                    for (std::size_t i = 0; i < w.kernel[0]; ++i)
                        for (std::size_t j = 0; j < w.kernel[1]; ++j) m.see(image, corner + i * g.w + j);
                } else {
                    for (std::size_t i = 0; i < w.kernel[0]; ++i) {
                        const std::size_t ty = oy * w.stride[0] + i;
                        if (ty < w.pad_before[0] || ty - w.pad_before[0] >= g.h) continue;
                        for (std::size_t j = 0; j < w.kernel[1]; ++j) {
                            const std::size_t tx = ox * w.stride[1] + j;
                            if (tx < w.pad_before[1] || tx - w.pad_before[1] >= g.w) continue;
                            m.see(image, (ty - w.pad_before[0]) * g.w + (tx - w.pad_before[1]));
                        }
                    }
                }
                at[oy * g.ow + ox] = m.at;
                out_p[oy * g.ow + ox] = image[m.at];
            }
    }
}

// replay: the geometry and the winners live in op_data
template <class T> void max_pool_forward(node<T>& n, node<T>* const* in) {
    max_pool_fill(n.value, in[0]->value, load_geometry(n, in[0]->value.shape()[0]), n.op_data + geometry_slots);
}
}  // namespace

template <class T>
tensor<T> max_pool2d(const tensor<T>& x, std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride,
                     std::array<std::size_t, 2> padding) {
    const geometry g = make_geometry("max_pool2d", x.value().shape(), pool_window("max_pool2d", kernel, stride, padding));
    const std::size_t L = g.cols();
    tensor<T> out = make_result<T>("max_pool2d", &pick_backward<T>, {&x}, geometry_slots + g.n * g.c * L);
    node<T>* nd = out.node_ptr();
    thread_local std::vector<std::size_t> scratch;  // winners when nothing records (no allocation in steady state)
    std::size_t* winners = nd->op_data ? nd->op_data + geometry_slots : nullptr;
    if (nd->op_data) {
        store_geometry(nd, g);
        nd->forward = &max_pool_forward<T>;
    } else {
        scratch.resize(g.n * g.c * L), winners = scratch.data();
    }
    max_pool_fill(nd->value, x.value(), g, winners);
    return out;
}

template <class T>
tensor<T> avg_pool2d(const tensor<T>& x, std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride,
                     std::array<std::size_t, 2> padding) {
    const geometry g = make_geometry("avg_pool2d", x.value().shape(), pool_window("avg_pool2d", kernel, stride, padding));
    const tensor<T> cols = unfold_op(x, g);  // [N, C kh kw, L]: each channel's windows, kh kw rows each
    const tensor<T> windows = reshape(cols, {g.n, g.c, kernel[0] * kernel[1], g.cols()});
    return reshape(mean(windows, {2}), {g.n, g.c, g.oh, g.ow});
}

template <class T> tensor<T> adaptive_avg_pool2d_1x1(const tensor<T>& x) {
    if (x.shape().size() != 4)
        throw shape_error("adaptive_avg_pool2d: input must be [N, C, H, W], got " + shape_str(x.shape()));
    return mean(x, {2, 3}, true);
}

template <class T> tensor<T> flatten(const tensor<T>& x) {
    const auto& s = x.value().shape();
    if (s.empty()) throw shape_error("flatten: needs at least 1 dimension, got a 0-d tensor");
    std::size_t rest = 1;
    for (std::size_t d = 1; d < s.size(); ++d) rest *= s[d];
    thread_local shape_t to(2);  // reshape takes a shape_t: keep one, so no call allocates
    to = {s[0], rest};
    return reshape(x, to);
}

// ---------------------------------------------------------- batch_norm2d
// Inputs: x [N, C, H, W], then weight and bias [C] when affine, then (eval mode)
// the running mean and variance [C] (in training too, when given: the forward moves
// them). op_data: [affine, training, relu, the bits of each channel's mean and rstd,
// momentum's bits]; scalar[0] = eps.
// Per channel, over the m = N*H*W values: xhat = (x - mean) / sqrt(var + eps),
// y = xhat * weight + bias, then y = max(y, 0) with the relu. Training normalises
// with the batch's mean and biased variance.
namespace {

template <class T> struct channel_stats {
    std::vector<T> mean, rstd;  // per channel; rstd = 1 / sqrt(var + eps)
    std::vector<T> var;         // the biased variance (training)
};

// Batch statistics, two passes (mean, then squared deviations): each image row
// summed in T (vectorised), the rows in double, so long channels do not drift.
template <class T> void batch_stats(const xt::xarray<T>& x, T eps, channel_stats<T>& s) {
    const std::size_t n = x.shape()[0], ch = x.shape()[1], hw = x.size() / (n * ch);
    s.mean.assign(ch, T(0));
    s.var.assign(ch, T(0));
    s.rstd.assign(ch, T(0));
    const T* xv = x.data();
    for (std::size_t c = 0; c < ch; ++c) {
        double sum = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const T* p = xv + (i * ch + c) * hw;
            sum += lane_sum<T>(hw, [p](std::size_t k) { return p[k]; });
        }
        const T mean = T(sum / double(n * hw));
        double sq = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const T* p = xv + (i * ch + c) * hw;
            sq += lane_sum<T>(hw, [p, mean](std::size_t k) { return (p[k] - mean) * (p[k] - mean); });
        }
        const double var = sq / double(n * hw);
        s.mean[c] = mean;
        s.var[c] = T(var);
        s.rstd[c] = T(1.0 / std::sqrt(var + double(eps)));
    }
}

template <class T> void running_stats(const xt::xarray<T>& mean, const xt::xarray<T>& var, T eps, channel_stats<T>& s) {
    const std::size_t ch = mean.size();
    s.mean.assign(mean.data(), mean.data() + ch);
    s.rstd.resize(ch);
    for (std::size_t c = 0; c < ch; ++c) s.rstd[c] = T(1) / std::sqrt(var.data()[c] + eps);
}

thread_local channel_stats<float> stats_f;
thread_local channel_stats<double> stats_d;
template <class T> channel_stats<T>& scratch_stats() {
    if constexpr (std::is_same_v<T, float>) return stats_f;
    else return stats_d;
}

// The same normalisation as recorded tensor ops, for second derivatives.
template <class T> tensor<T> xhat_graph(backward_ctx<T>& c, bool affine, bool training, T eps, tensor<T>& rstd) {
    const tensor<T> x = c.tx(0);
    const std::size_t ch = c.x(0).shape()[1];
    if (training) {
        const tensor<T> xc = x - mean(x, {0, 2, 3}, true);
        rstd = T(1) / sqrt(mean(xc * xc, {0, 2, 3}, true) + eps);
        return xc * rstd;
    }
    const std::size_t first = affine ? 3 : 1;
    const tensor<T> m = reshape(c.tx(first), {ch, 1, 1});
    rstd = T(1) / sqrt(reshape(c.tx(first + 1), {ch, 1, 1}) + eps);
    return (x - m) * rstd;
}

template <class T> struct bn_backward_buffers {
    const T *x = nullptr, *gy = nullptr, *y = nullptr, *w = nullptr;  // w: null without the affine part
    T *dx = nullptr, *dw = nullptr, *db = nullptr;                    // null: not wanted
    bool had_x = false, had_w = false, had_b = false;                 // add to a gradient already there
};

// The per-channel backward. With Relu the gradient reaching the normalisation is
// gy where y > 0, else 0, read in place (no masked copy: one pass less).
template <bool Relu, class T>
void bn_backward_loops(const bn_backward_buffers<T>& b, const channel_stats<T>& s, std::size_t n, std::size_t ch,
                       std::size_t hw, bool training) {
    const double m = double(n * hw);
    for (std::size_t k = 0; k < ch; ++k) {
        const T mu = s.mean[k], r = s.rstd[k];
        double sum_gy = 0, sum_gy_xhat = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t at = (i * ch + k) * hw;
            const T *p = b.x + at, *g = b.gy + at, *y = b.y + at;
            auto grad = [=](std::size_t j) {  // [=]: y is read only with Relu
                if constexpr (Relu) return y[j] > T(0) ? g[j] : T(0);
                else return g[j];
            };
            auto grad_xhat = [&grad, p, mu, r](std::size_t j) { return grad(j) * ((p[j] - mu) * r); };
            const auto sums = lane_sum2<T>(hw, grad, grad_xhat);
            sum_gy += sums.first;
            sum_gy_xhat += sums.second;
        }
        if (b.dw) b.dw[k] = (b.had_w ? b.dw[k] : T(0)) + T(sum_gy_xhat);
        if (b.db) b.db[k] = (b.had_b ? b.db[k] : T(0)) + T(sum_gy);
        if (!b.dx) continue;
        const T scale = b.w ? b.w[k] : T(1);
        // mean(dxhat) and mean(dxhat xhat) over the channel's m values
        const T mean_d = training ? T(double(scale) * sum_gy / m) : T(0);
        const T mean_dx = training ? T(double(scale) * sum_gy_xhat / m) : T(0);
        // in xsimd batches: g++ left this loop scalar (its buffers may alias), 2x the hand-written time
        using V = xsimd::batch<T>;
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t at = (i * ch + k) * hw;
            const T *p = b.x + at, *g = b.gy + at, *y = b.y + at;
            T* d = b.dx + at;
            auto dx_at = [=](std::size_t j, auto tag) {
                V gj = simd::load(g + j, tag);
                if constexpr (Relu) gj = xsimd::select(simd::load(y + j, tag) > V(T(0)), gj, V(T(0)));
                return V(V(r) * (V(scale) * gj - V(mean_d) - (simd::load(p + j, tag) - V(mu)) * V(r) * V(mean_dx)));
            };
            if (b.had_x)
                simd::for_each<T>(hw, [&](std::size_t j, auto tag) { simd::store(d + j, V(simd::load(d + j, tag) + dx_at(j, tag)), tag); });
            else
                simd::for_each<T>(hw, [&](std::size_t j, auto tag) { simd::store(d + j, dx_at(j, tag), tag); });
        }
    }
}

// relu: gy = 0 where y <= 0 (relu'(0) = 0);  dxhat = gy w;
// training: dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat));
// eval: dx = rstd dxhat;  dw = sum gy xhat;  db = sum gy
template <class T> void batch_norm_backward(backward_ctx<T>& c) {
    const bool affine = c.self.op_data[0] != 0, training = c.self.op_data[1] != 0, relu = c.self.op_data[2] != 0;
    const T eps = c.self.scalar[0];
    const xt::xarray<T>& xv = c.x(0);
    const std::size_t n = xv.shape()[0], ch = xv.shape()[1], hw = xv.size() / (n * ch);
    if (c.create_graph) {
        tensor<T> rstd;
        const tensor<T> xhat = xhat_graph(c, affine, training, eps, rstd);
        const tensor<T> gy = relu ? where(c.ty() > T(0), c.tgy(), T(0)) : c.tgy();
        const tensor<T> dxhat = affine ? gy * reshape(c.tx(1), {ch, 1, 1}) : gy;
        if (c.wants(0)) {
            if (training)
                c.add_graph(0, rstd * (dxhat - mean(dxhat, {0, 2, 3}, true) - xhat * mean(dxhat * xhat, {0, 2, 3}, true)));
            else
                c.add_graph(0, rstd * dxhat);
        }
        if (affine && c.wants(1)) c.add_graph(1, sum(gy * xhat, {0, 2, 3}));
        if (affine && c.wants(2)) c.add_graph(2, sum(gy, {0, 2, 3}));
        return;
    }
    channel_stats<T>& s = scratch_stats<T>();
    s.mean.resize(ch);
    s.rstd.resize(ch);
    for (std::size_t k = 0; k < ch; ++k) {  // what the forward normalised with
        std::memcpy(&s.mean[k], c.self.op_data + 3 + k, sizeof(T));
        std::memcpy(&s.rstd[k], c.self.op_data + 3 + ch + k, sizeof(T));
    }
    bn_backward_buffers<T> b;
    b.x = xv.data();
    b.gy = c.gy().data();
    b.y = c.y().data();
    b.w = affine ? c.x(1).data() : nullptr;
    T *&dx = b.dx, *&dw = b.dw, *&db = b.db;
    if (c.wants(0)) dx = c.grad_data(c.input(0), b.had_x);
    if (affine && c.wants(1)) dw = c.grad_data(c.input(1), b.had_w);
    if (affine && c.wants(2)) db = c.grad_data(c.input(2), b.had_b);
    if (relu) bn_backward_loops<true>(b, s, n, ch, hw, training);
    else bn_backward_loops<false>(b, s, n, ch, hw, training);
    if (dx) c.mark(c.input(0));
    if (dw) c.mark(c.input(1));
    if (db) c.mark(c.input(2));
}

// y = xhat * weight + bias (then relu) with the batch's or the running statistics;
// training also moves the running statistics (unbiased variance, as PyTorch).
// in: x, [weight, bias], [running_mean, running_var]; the statistics go to op_data when recorded.
template <class T>
void batch_norm_fill(node<T>& nd, node<T>* const* in, std::size_t n_in, bool affine, bool training, bool relu,
                     double momentum) {
    const xt::xarray<T>& xv_ = in[0]->value;
    const auto& xs = xv_.shape();
    const std::size_t n = xs[0], ch = xs[1], hw = xs[2] * xs[3], first = affine ? 3 : 1;
    const T eps = nd.scalar[0];
    const bool running = n_in > first;
    channel_stats<T>& s = scratch_stats<T>();
    if (training) batch_stats(xv_, eps, s);
    else running_stats(in[first]->value, in[first + 1]->value, eps, s);
    if (nd.op_data) {
        static_assert(sizeof(T) <= sizeof(std::size_t), "statistics are kept in op_data slots");
        nd.op_data[0] = affine;
        nd.op_data[1] = training;
        nd.op_data[2] = relu;
        std::memcpy(nd.op_data + 3 + 2 * ch, &momentum, sizeof(double));
        for (std::size_t k = 0; k < ch; ++k) {
            nd.op_data[3 + k] = nd.op_data[3 + ch + k] = 0;
            std::memcpy(nd.op_data + 3 + k, &s.mean[k], sizeof(T));
            std::memcpy(nd.op_data + 3 + ch + k, &s.rstd[k], sizeof(T));
        }
    }
    nd.value.resize(xs);
    const T* xv = xv_.data();
    T* y = nd.value.data();
    for (std::size_t k = 0; k < ch; ++k) {
        const T a = s.rstd[k] * (affine ? in[1]->value.data()[k] : T(1));
        const T b = (affine ? in[2]->value.data()[k] : T(0)) - s.mean[k] * a;
        for (std::size_t i = 0; i < n; ++i) {
            const T* p = xv + (i * ch + k) * hw;
            T* q = y + (i * ch + k) * hw;
            if (relu)
                for (std::size_t j = 0; j < hw; ++j) {
                    const T v = p[j] * a + b;
                    q[j] = v > T(0) ? v : T(0);  // as relu: max(v, 0), NaN -> 0 like the SIMD max
                }
            else
                for (std::size_t j = 0; j < hw; ++j) q[j] = p[j] * a + b;
        }
    }
    if (training && running) {
        const T mo = T(momentum), keep = T(1 - momentum), unbias = T(double(n * hw) / double(n * hw - 1));
        T* rm = in[first]->value.data();
        T* rv = in[first + 1]->value.data();
        for (std::size_t k = 0; k < ch; ++k) {
            rm[k] = keep * rm[k] + mo * s.mean[k];
            rv[k] = keep * rv[k] + mo * (s.var[k] * unbias);
        }
    }
}

// replay: affine, training and relu in op_data[0..2], momentum's bits after the statistics, eps in scalar[0]
template <class T> void batch_norm_forward(node<T>& n, node<T>* const* in) {
    const std::size_t ch = in[0]->value.shape()[1];
    double momentum;
    std::memcpy(&momentum, n.op_data + 3 + 2 * ch, sizeof(double));
    batch_norm_fill(n, in, n.n_inputs, n.op_data[0] != 0, n.op_data[1] != 0, n.op_data[2] != 0, momentum);
}

template <class T>
tensor<T> batch_norm2d_op(const char* op, const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias,
                          const tensor<T>& running_mean, const tensor<T>& running_var, bool training, double momentum,
                          double eps, bool relu) {
    const auto& xs = x.value().shape();
    const bool affine = weight.defined();
    auto per_channel = [&](const tensor<T>& t, const char* what) {
        if (t.defined() && (t.value().dimension() != 1 || xs.size() != 4 || t.value().shape()[0] != xs[1]))
            throw shape_error(std::string(op) + ": " + what + " " + shape_str(t.value().shape()) +
                              " must be [C] for the input's C channels; input " + shape_str(xs));
    };
    if (xs.size() != 4) throw shape_error(std::string(op) + ": input must be [N, C, H, W], got " + shape_str(xs));
    if (weight.defined() != bias.defined())
        throw shape_error(std::string(op) + ": give both weight and bias, or neither");
    per_channel(weight, "weight");
    per_channel(bias, "bias");
    per_channel(running_mean, "running_mean");
    per_channel(running_var, "running_var");
    if (!training && !(running_mean.defined() && running_var.defined()))
        throw shape_error(std::string(op) + ": eval mode needs running_mean and running_var");
    const std::size_t n = xs[0], ch = xs[1], hw = xs[2] * xs[3];
    if (training && n * hw < 2)
        throw shape_error(std::string(op) + ": training mode needs more than 1 value per channel, got input " + shape_str(xs));
    const tensor<T>* in[5] = {&x};
    std::size_t n_in = 1;
    if (affine) in[n_in++] = &weight, in[n_in++] = &bias;
    // eval reads the running statistics; training updates them (inputs without a gradient, so a replay does too)
    if (running_mean.defined() && running_var.defined()) in[n_in++] = &running_mean, in[n_in++] = &running_var;
    tensor<T> out = make_result<T>(op, &batch_norm_backward<T>, in, n_in, 4 + 2 * ch);
    node<T>* nd = out.node_ptr();
    nd->scalar[0] = T(eps);
    if (nd->op_data) nd->forward = &batch_norm_forward<T>;
    node<T>* nodes[5];
    for (std::size_t k = 0; k < n_in; ++k) nodes[k] = in[k]->node_ptr();
    batch_norm_fill(*nd, nodes, n_in, affine, training, relu, momentum);
    return out;
}

}  // namespace

template <class T>
tensor<T> batch_norm2d(const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias, const tensor<T>& running_mean,
                       const tensor<T>& running_var, bool training, double momentum, double eps) {
    return batch_norm2d_op("batch_norm2d", x, weight, bias, running_mean, running_var, training, momentum, eps, false);
}

template <class T>
tensor<T> batch_norm2d_relu(const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias,
                            const tensor<T>& running_mean, const tensor<T>& running_var, bool training,
                            double momentum, double eps) {
    return batch_norm2d_op("batch_norm2d_relu", x, weight, bias, running_mean, running_var, training, momentum, eps,
                           true);
}

#define TAPEGRAD_CONV_OPS(T)                                                                                      \
    template tensor<T> unfold2d(const tensor<T>&, const window2d&);                                               \
    template tensor<T> fold2d(const tensor<T>&, std::size_t, std::size_t, const window2d&);                      \
    template tensor<T> conv2d(const tensor<T>&, const tensor<T>&, const tensor<T>&, const conv2d_options&);       \
    template tensor<T> max_pool2d(const tensor<T>&, std::array<std::size_t, 2>, std::array<std::size_t, 2>,       \
                                  std::array<std::size_t, 2>);                                                    \
    template tensor<T> avg_pool2d(const tensor<T>&, std::array<std::size_t, 2>, std::array<std::size_t, 2>,       \
                                  std::array<std::size_t, 2>);                                                    \
    template tensor<T> adaptive_avg_pool2d_1x1(const tensor<T>&);                                                 \
    template tensor<T> flatten(const tensor<T>&);                                                                 \
    template tensor<T> batch_norm2d(const tensor<T>&, const tensor<T>&, const tensor<T>&, const tensor<T>&,         \
                                    const tensor<T>&, bool, double, double);                                      \
    template tensor<T> batch_norm2d_relu(const tensor<T>&, const tensor<T>&, const tensor<T>&, const tensor<T>&,    \
                                         const tensor<T>&, bool, double, double);
TAPEGRAD_CONV_OPS(float)
TAPEGRAD_CONV_OPS(double)

}  // namespace tapegrad
