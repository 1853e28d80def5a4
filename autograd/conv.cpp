// Convolution and pooling (autograd/conv.hpp). The two primitives are unfold2d
// (im2col) and fold2d (col2im); each is linear and the other's transpose, so each
// is the other's backward and both are twice differentiable. The other ops are
// compositions of them with matmul, gather, mean and reshape.

#include "autograd/conv.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "autograd/detail/op_drivers.hpp"
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

geometry make_geometry(const char* op, const shape_t& xs, const window2d& win) {
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
    return make_geometry("unfold2d", {batch, a[0], a[1], a[2]}, w);
}

// f(image offset, matrix offset) for every unfolded entry that lies inside the
// image (padding entries are 0 and skipped), sample by sample.
template <class F> void for_each_tap(const geometry& g, F&& f) {
    const window2d& w = g.win;
    const std::size_t kh = w.kernel[0], kw = w.kernel[1], L = g.cols();
    for (std::size_t n = 0; n < g.n; ++n)
        for (std::size_t c = 0; c < g.c; ++c)
            for (std::size_t i = 0; i < kh; ++i)
                for (std::size_t j = 0; j < kw; ++j) {
                    const std::size_t row = (c * kh + i) * kw + j;
                    const std::size_t image = (n * g.c + c) * g.h * g.w;
                    const std::size_t matrix = (n * g.rows() + row) * L;
                    for (std::size_t oy = 0; oy < g.oh; ++oy) {
                        // iy = oy sh - top + i dh, in unsigned arithmetic: skip rows in the padding
                        const std::size_t ty = oy * w.stride[0] + i * w.dilation[0];
                        if (ty < w.pad_before[0] || ty - w.pad_before[0] >= g.h) continue;
                        const std::size_t iy = ty - w.pad_before[0];
                        for (std::size_t ox = 0; ox < g.ow; ++ox) {
                            const std::size_t tx = ox * w.stride[1] + j * w.dilation[1];
                            if (tx < w.pad_before[1] || tx - w.pad_before[1] >= g.w) continue;
                            f(image + iy * g.w + (tx - w.pad_before[1]), matrix + oy * g.ow + ox);
                        }
                    }
                }
}

template <class T> tensor<T> unfold_op(const tensor<T>& x, const geometry& g);
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
    const T* gy = c.gy().data();
    for_each_tap(g, [&](std::size_t image, std::size_t matrix) { dx[image] += gy[matrix]; });
    c.mark(c.input(0));
}

template <class T> tensor<T> unfold_op(const tensor<T>& x, const geometry& g) {
    tensor<T> out = make_result<T>("unfold2d", &unfold_backward<T>, {&x}, geometry_slots);
    node<T>* n = out.node_ptr();
    store_geometry(n, g);
    n->value.resize({g.n, g.rows(), g.cols()});
    std::fill(n->value.begin(), n->value.end(), T(0));
    T* y = n->value.data();
    const T* xv = x.value().data();
    for_each_tap(g, [&](std::size_t image, std::size_t matrix) { y[matrix] = xv[image]; });
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
    if (!had) std::fill(dcols, dcols + c.x(0).size(), T(0));
    const T* gy = c.gy().data();
    for_each_tap(g, [&](std::size_t image, std::size_t matrix) { dcols[matrix] += gy[image]; });
    c.mark(c.input(0));
}

template <class T> tensor<T> fold_op(const tensor<T>& cols, const geometry& g) {
    tensor<T> out = make_result<T>("fold2d", &fold_backward<T>, {&cols}, geometry_slots);
    node<T>* n = out.node_ptr();
    store_geometry(n, g);
    n->value.resize({g.n, g.c, g.h, g.w});
    std::fill(n->value.begin(), n->value.end(), T(0));
    T* y = n->value.data();
    const T* cv = cols.value().data();
    for_each_tap(g, [&](std::size_t image, std::size_t matrix) { y[image] += cv[matrix]; });
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
    return unfold_op(x, make_geometry("unfold2d", x.shape(), w));
}

template <class T> tensor<T> fold2d(const tensor<T>& cols, std::size_t height, std::size_t width, const window2d& w) {
    const shape_t cs = cols.shape();
    if (cs.size() != 3)
        throw shape_error("fold2d: columns must be [N, C*kh*kw, L], got " + shape_str(cs));
    const std::size_t taps = w.kernel[0] * w.kernel[1];
    if (taps == 0 || cs[1] % taps != 0)
        throw shape_error("fold2d: columns " + shape_str(cs) + " do not hold whole kernels " + pair_str(w.kernel));
    const geometry g = make_geometry("fold2d", {cs[0], cs[1] / taps, height, width}, w);
    if (cs[2] != g.cols())
        throw shape_error("fold2d: columns " + shape_str(cs) + " hold " + std::to_string(cs[2]) +
                          " windows, but a " + std::to_string(height) + "x" + std::to_string(width) +
                          " image has " + std::to_string(g.cols()) + " with this window");
    return fold_op(cols, g);
}

template <class T>
tensor<T> conv2d(const tensor<T>& x, const tensor<T>& weight, const tensor<T>& bias, const conv2d_options& o) {
    const shape_t xs = x.shape(), ws = weight.shape();
    const std::string shapes = "input " + shape_str(xs) + ", weight " + shape_str(ws) +
                               (bias.defined() ? ", bias " + shape_str(bias.shape()) : std::string());
    if (xs.size() != 4 || ws.size() != 4)
        throw shape_error("conv2d: input must be [N, C, H, W] and weight [O, C/groups, kh, kw]; got " + shapes);
    const std::size_t groups = o.groups;
    if (groups == 0 || xs[1] % groups != 0 || ws[0] % groups != 0 || ws[1] * groups != xs[1])
        throw shape_error("conv2d: " + std::to_string(groups) + " group(s) need the input's " + std::to_string(xs[1]) +
                          " channels = weight.shape[1] * groups and the weight's " + std::to_string(ws[0]) +
                          " filters divisible by groups; got " + shapes);
    if (bias.defined() && (bias.shape().size() != 1 || bias.shape()[0] != ws[0]))
        throw shape_error("conv2d: bias must be [" + std::to_string(ws[0]) + "] (one per filter); got " + shapes);
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
    const std::size_t n = xs[0], out = ws[0], k = g.rows() / groups, L = g.cols();
    const tensor<T> cols = unfold_op(x, g);  // [N, C kh kw, L]
    tensor<T> y = groups == 1 ? matmul(reshape(weight, {out, k}), cols)  // [N, O, L]
                              : matmul(reshape(weight, {groups, out / groups, k}), reshape(cols, {n, groups, k, L}));
    y = reshape(y, {n, out, g.oh, g.ow});
    if (bias.defined()) y = y + reshape(bias, {out, 1, 1});
    return y;
}

template <class T>
tensor<T> max_pool2d(const tensor<T>& x, std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride,
                     std::array<std::size_t, 2> padding) {
    const geometry g = make_geometry("max_pool2d", x.shape(), pool_window("max_pool2d", kernel, stride, padding));
    const window2d& w = g.win;
    // Which element of each window wins, by PyTorch's CPU rule: scan the window in
    // row-major order from its first element inside the image; a value greater
    // than the best so far, or a NaN, takes over.
    xt::xarray<std::size_t> winner = xt::zeros<std::size_t>({g.n, g.c, g.cols()});
    const T* xv = x.value().data();
    for (std::size_t p = 0; p < g.n * g.c; ++p) {
        const T* image = xv + p * g.h * g.w;
        std::size_t* best_at = winner.data() + p * g.cols();
        for (std::size_t oy = 0; oy < g.oh; ++oy)
            for (std::size_t ox = 0; ox < g.ow; ++ox) {
                T best = -std::numeric_limits<T>::infinity();
                std::size_t at = std::size_t(-1);
                for (std::size_t i = 0; i < w.kernel[0]; ++i) {
                    const std::size_t ty = oy * w.stride[0] + i;
                    if (ty < w.pad_before[0] || ty - w.pad_before[0] >= g.h) continue;
                    for (std::size_t j = 0; j < w.kernel[1]; ++j) {
                        const std::size_t tx = ox * w.stride[1] + j;
                        if (tx < w.pad_before[1] || tx - w.pad_before[1] >= g.w) continue;
                        const std::size_t here = (ty - w.pad_before[0]) * g.w + (tx - w.pad_before[1]);
                        if (at == std::size_t(-1)) at = here;
                        if (image[here] > best || std::isnan(image[here])) {
                            best = image[here];
                            at = here;
                        }
                    }
                }
                best_at[oy * g.ow + ox] = at;
            }
    }
    const tensor<T> picked = gather(reshape(x, {g.n, g.c, g.h * g.w}), 2, winner);
    return reshape(picked, {g.n, g.c, g.oh, g.ow});
}

template <class T>
tensor<T> avg_pool2d(const tensor<T>& x, std::array<std::size_t, 2> kernel, std::array<std::size_t, 2> stride,
                     std::array<std::size_t, 2> padding) {
    const geometry g = make_geometry("avg_pool2d", x.shape(), pool_window("avg_pool2d", kernel, stride, padding));
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
    const shape_t s = x.shape();
    if (s.empty()) throw shape_error("flatten: needs at least 1 dimension, got a 0-d tensor");
    std::size_t rest = 1;
    for (std::size_t d = 1; d < s.size(); ++d) rest *= s[d];
    return reshape(x, {s[0], rest});
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
    template tensor<T> flatten(const tensor<T>&);
TAPEGRAD_CONV_OPS(float)
TAPEGRAD_CONV_OPS(double)

}  // namespace tapegrad
