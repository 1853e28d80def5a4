// More shape ops (issue #9): squeeze, unsqueeze, flip, constant pad, strided
// slices, gather and index_select along any axis.
//
// flip, pad and strided slices are one pair of primitives on a "box" (per axis a
// start, a step that may be negative, and a count): extract reads the box out of a
// tensor, embed writes a tensor into a box of a larger one filled with a constant.
// Each is the other's backward (both are linear), so both are twice differentiable.
// gather and scatter-add are the same kind of pair.

#include <algorithm>
#include <cstdint>
#include <numeric>

#include "autograd/detail/op_drivers.hpp"

namespace tapegrad {

using detail::make_result;
using detail::to_shape;

namespace {

// ------------------------------------------------------------------ boxes
struct box_axis {
    std::int64_t start, step;
    std::size_t count;
};
using box = std::vector<box_axis>;

/// Row-major strides of a shape.
template <class S> std::vector<std::size_t> strides_of(const S& s) {
    std::vector<std::size_t> st(s.size(), 1);
    for (std::size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
    return st;
}

/// f(k, offset): k runs over the box's elements in row-major order, offset is the
/// element's position in a tensor of shape `big`.
template <class S, class F> void for_each_in_box(const box& b, const S& big, F&& f) {
    const std::size_t r = b.size();
    std::size_t total = 1;
    for (const auto& a : b) total *= a.count;
    if (total == 0) return;
    const auto st = strides_of(big);
    std::vector<std::size_t> idx(r, 0);
    std::int64_t off = 0;
    for (std::size_t i = 0; i < r; ++i) off += b[i].start * std::int64_t(st[i]);
    for (std::size_t k = 0; k < total; ++k) {
        f(k, static_cast<std::size_t>(off));
        for (std::size_t i = r; i-- > 0;) {  // odometer, last axis fastest
            if (++idx[i] < b[i].count) {
                off += b[i].step * std::int64_t(st[i]);
                break;
            }
            off -= b[i].step * std::int64_t(st[i]) * std::int64_t(b[i].count - 1);
            idx[i] = 0;
        }
    }
}

// op_data layout of both box ops: [rank, then per axis: start, step, count, big extent]
template <class T> void store_box(node<T>* n, const box& b, const shape_t& big) {
    if (!n->op_data) return;
    n->op_data[0] = b.size();
    for (std::size_t i = 0; i < b.size(); ++i) {
        n->op_data[1 + 4 * i] = static_cast<std::size_t>(b[i].start);
        n->op_data[2 + 4 * i] = static_cast<std::size_t>(b[i].step);
        n->op_data[3 + 4 * i] = b[i].count;
        n->op_data[4 + 4 * i] = big[i];
    }
}
template <class T> box load_box(const node<T>& n, shape_t& big) {
    const std::size_t r = n.op_data[0];
    box b(r);
    big.resize(r);
    for (std::size_t i = 0; i < r; ++i) {
        b[i] = {static_cast<std::int64_t>(n.op_data[1 + 4 * i]), static_cast<std::int64_t>(n.op_data[2 + 4 * i]), n.op_data[3 + 4 * i]};
        big[i] = n.op_data[4 + 4 * i];
    }
    return b;
}

template <class T> tensor<T> box_extract(const char* op, const tensor<T>& x, const box& b);
template <class T> tensor<T> box_embed(const char* op, const tensor<T>& x, const box& b, const shape_t& big, T fill);

// y = x[box]; dx = gy embedded in zeros of x's shape at the box
template <class T> void extract_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    shape_t big;
    const box b = load_box(c.self, big);
    if (c.create_graph) {
        c.add_graph(0, box_embed(c.self.op, c.tgy(), b, big, T(0)));
        return;
    }
    bool had;
    T* dx = c.grad_data(c.input(0), had);
    if (!had) std::fill(dx, dx + c.x(0).size(), T(0));
    const T* gy = c.gy().data();
    for_each_in_box(b, big, [&](std::size_t k, std::size_t o) { dx[o] += gy[k]; });
    c.mark(c.input(0));
}

template <class T> tensor<T> box_extract(const char* op, const tensor<T>& x, const box& b) {
    const auto& xv = x.value();
    tensor<T> out = make_result<T>(op, &extract_backward<T>, {&x}, 1 + 4 * b.size());
    node<T>* n = out.node_ptr();
    const shape_t big = to_shape(xv.shape());
    store_box(n, b, big);
    shape_t s(b.size());
    for (std::size_t i = 0; i < b.size(); ++i) s[i] = b[i].count;
    n->value.resize(s);
    T* y = n->value.data();
    for_each_in_box(b, big, [&](std::size_t k, std::size_t o) { y[k] = xv.data()[o]; });
    return out;
}

// y = fill with y[box] = x; dx = gy[box]
template <class T> void embed_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    shape_t big;
    const box b = load_box(c.self, big);
    if (c.create_graph) {
        c.add_graph(0, box_extract(c.self.op, c.tgy(), b));
        return;
    }
    bool had;
    T* dx = c.grad_data(c.input(0), had);
    const T* gy = c.gy().data();
    for_each_in_box(b, big, [&](std::size_t k, std::size_t o) { dx[k] = had ? dx[k] + gy[o] : gy[o]; });
    c.mark(c.input(0));
}

template <class T> tensor<T> box_embed(const char* op, const tensor<T>& x, const box& b, const shape_t& big, T fill) {
    const auto& xv = x.value();
    tensor<T> out = make_result<T>(op, &embed_backward<T>, {&x}, 1 + 4 * b.size());
    node<T>* n = out.node_ptr();
    store_box(n, b, big);
    n->value.resize(big);
    std::fill(n->value.begin(), n->value.end(), fill);
    T* y = n->value.data();
    for_each_in_box(b, big, [&](std::size_t k, std::size_t o) { y[o] = xv.data()[k]; });
    return out;
}

/// The whole of each axis of `s`, step 1.
box full_box(const shape_t& s) {
    box b(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) b[i] = {0, 1, s[i]};
    return b;
}

}  // namespace

// --------------------------------------------------------- squeeze, unsqueeze
template <class T> tensor<T> squeeze(const tensor<T>& x) {
    shape_t s;
    for (std::size_t d : x.shape())
        if (d != 1) s.push_back(d);
    return reshape(x, s);
}

template <class T> tensor<T> squeeze(const tensor<T>& x, const std::vector<int>& axes) {
    const shape_t xs = x.shape();
    std::vector<char> drop(xs.size(), 0);
    for (int a : axes) {
        const std::size_t k = detail::norm_axis("squeeze", a, xs.size());
        if (xs[k] != 1)
            throw shape_error("squeeze: axis " + std::to_string(a) + " of shape " + shape_str(xs) + " has size " +
                              std::to_string(xs[k]) + ", not 1; only axes of size 1 can be squeezed");
        drop[k] = 1;
    }
    shape_t s;
    for (std::size_t i = 0; i < xs.size(); ++i)
        if (!drop[i]) s.push_back(xs[i]);
    return reshape(x, s);
}

template <class T> tensor<T> unsqueeze(const tensor<T>& x, int axis) {
    shape_t s = x.shape();
    const std::size_t k = detail::norm_axis("unsqueeze", axis, s.size() + 1);
    s.insert(s.begin() + static_cast<std::ptrdiff_t>(k), 1);
    return reshape(x, s);
}

// ------------------------------------------------------------------- flip
// y = x reversed along axes (a box with step -1); dx = gy reversed the same way
template <class T> tensor<T> flip(const tensor<T>& x, const std::vector<int>& axes) {
    const shape_t xs = x.shape();
    box b = full_box(xs);
    std::vector<char> seen(xs.size(), 0);
    for (int a : axes) {
        const std::size_t k = detail::norm_axis("flip", a, xs.size());
        if (seen[k]) throw shape_error("flip: axis " + std::to_string(a) + " is listed twice");
        seen[k] = 1;
        if (xs[k] > 0) b[k] = {std::int64_t(xs[k]) - 1, -1, xs[k]};
    }
    return box_extract("flip", x, b);
}

// -------------------------------------------------------------------- pad
// y = value everywhere, x placed at the offsets `before`; dx = gy cut back out
template <class T>
tensor<T> pad(const tensor<T>& x, const std::vector<std::pair<std::size_t, std::size_t>>& widths, T value) {
    const shape_t xs = x.shape();
    if (widths.size() != xs.size())
        throw shape_error("pad: " + std::to_string(widths.size()) + " (before, after) pairs for a tensor of shape " +
                          shape_str(xs) + "; give one pair per axis");
    box b = full_box(xs);
    shape_t big = xs;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        b[i].start = std::int64_t(widths[i].first);
        big[i] += widths[i].first + widths[i].second;
    }
    return box_embed("pad", x, b, big, value);
}

// ---------------------------------------------------------- strided slice
template <class T> tensor<T> slice(const tensor<T>& x, int axis, std::size_t begin, std::size_t end, std::size_t step) {
    const shape_t xs = x.shape();
    const std::size_t k = detail::norm_axis("slice", axis, xs.size());
    if (step == 0) throw std::invalid_argument("slice: step must be at least 1, got 0");
    if (begin > end || end > xs[k])
        throw shape_error("slice: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                          ") is out of bounds for axis " + std::to_string(axis) + " of shape " + shape_str(xs));
    box b = full_box(xs);
    b[k] = {std::int64_t(begin), std::int64_t(step), (end - begin + step - 1) / step};
    return box_extract("slice", x, b);
}

// ---------------------------------------------------- gather, scatter-add
// gather: y[i] = x[i with axis entry index[i]]; scatter-add is its transpose:
// y = zeros(x shape), y[i with axis entry index[i]] += g[i]. Each is the other's
// backward. op_data: [axis, rank, big shape (x's), index shape, index values...]
namespace {

template <class T> struct gather_spec {
    std::size_t axis;
    shape_t big, ishape;
    const std::size_t* index;  // ishape's product values
};

/// f(k, offset in big) for each index element k (row-major over ishape).
template <class F> void for_each_gathered(const std::size_t axis, const shape_t& big, const shape_t& ishape,
                                          const std::size_t* index, F&& f) {
    const std::size_t r = big.size();
    std::size_t total = 1;
    for (std::size_t d : ishape) total *= d;
    const auto st = strides_of(big);
    std::vector<std::size_t> idx(r, 0);
    for (std::size_t k = 0; k < total; ++k) {
        std::size_t off = 0;
        for (std::size_t i = 0; i < r; ++i) off += (i == axis ? index[k] : idx[i]) * st[i];
        f(k, off);
        for (std::size_t i = r; i-- > 0;) {
            if (++idx[i] < ishape[i]) break;
            idx[i] = 0;
        }
    }
}

template <class T> void store_gather(node<T>* n, std::size_t axis, const shape_t& big, const shape_t& ishape,
                                     const std::size_t* index, std::size_t count) {
    if (!n->op_data) return;
    std::size_t* a = n->op_data;
    const std::size_t r = big.size();
    a[0] = axis;
    a[1] = r;
    std::copy(big.begin(), big.end(), a + 2);
    std::copy(ishape.begin(), ishape.end(), a + 2 + r);
    std::copy(index, index + count, a + 2 + 2 * r);
}
template <class T> gather_spec<T> load_gather(const node<T>& n) {
    const std::size_t r = n.op_data[1];
    return {n.op_data[0], shape_t(n.op_data + 2, n.op_data + 2 + r), shape_t(n.op_data + 2 + r, n.op_data + 2 + 2 * r), n.op_data + 2 + 2 * r};
}

template <class T> tensor<T> gather_op(const tensor<T>& x, std::size_t axis, const shape_t& ishape, const std::size_t* index);
template <class T>
tensor<T> scatter_add_op(const tensor<T>& g, std::size_t axis, const shape_t& big, const std::size_t* index);

// y = gather(x); dx = scatter_add(gy)
template <class T> void gather_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const auto s = load_gather(c.self);
    if (c.create_graph) {
        c.add_graph(0, scatter_add_op(c.tgy(), s.axis, s.big, s.index));
        return;
    }
    bool had;
    T* dx = c.grad_data(c.input(0), had);
    if (!had) std::fill(dx, dx + c.x(0).size(), T(0));
    const T* gy = c.gy().data();
    for_each_gathered(s.axis, s.big, s.ishape, s.index, [&](std::size_t k, std::size_t o) { dx[o] += gy[k]; });
    c.mark(c.input(0));
}

template <class T> tensor<T> gather_op(const tensor<T>& x, std::size_t axis, const shape_t& ishape, const std::size_t* index) {
    const auto& xv = x.value();
    const shape_t big = to_shape(xv.shape());
    const std::size_t count = std::accumulate(ishape.begin(), ishape.end(), std::size_t(1), std::multiplies<>());
    tensor<T> out = make_result<T>("gather", &gather_backward<T>, {&x}, 2 + 2 * big.size() + count);
    node<T>* n = out.node_ptr();
    store_gather(n, axis, big, ishape, index, count);
    n->value.resize(ishape);
    T* y = n->value.data();
    for_each_gathered(axis, big, ishape, index, [&](std::size_t k, std::size_t o) { y[k] = xv.data()[o]; });
    return out;
}

// y = scatter_add(g) into shape big; dg = gather(gy)
template <class T> void scatter_add_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const auto s = load_gather(c.self);
    if (c.create_graph) {
        c.add_graph(0, gather_op(c.tgy(), s.axis, s.ishape, s.index));
        return;
    }
    bool had;
    T* dg = c.grad_data(c.input(0), had);
    const T* gy = c.gy().data();
    for_each_gathered(s.axis, s.big, s.ishape, s.index,
                      [&](std::size_t k, std::size_t o) { dg[k] = had ? dg[k] + gy[o] : gy[o]; });
    c.mark(c.input(0));
}

template <class T>
tensor<T> scatter_add_op(const tensor<T>& g, std::size_t axis, const shape_t& big, const std::size_t* index) {
    const auto& gv = g.value();
    const shape_t ishape = to_shape(gv.shape());
    tensor<T> out = make_result<T>("scatter_add", &scatter_add_backward<T>, {&g}, 2 + 2 * big.size() + gv.size());
    node<T>* n = out.node_ptr();
    store_gather(n, axis, big, ishape, index, gv.size());
    n->value.resize(big);
    std::fill(n->value.begin(), n->value.end(), T(0));
    T* y = n->value.data();
    for_each_gathered(axis, big, ishape, index, [&](std::size_t k, std::size_t o) { y[o] += gv.data()[k]; });
    return out;
}

}  // namespace

template <class T> tensor<T> gather(const tensor<T>& x, int axis, const xt::xarray<std::size_t>& index) {
    const shape_t xs = x.shape();
    const std::size_t k = detail::norm_axis("gather", axis, xs.size());
    const shape_t is = to_shape(index.shape());
    bool ok = is.size() == xs.size();
    for (std::size_t d = 0; ok && d < xs.size(); ++d) ok = d == k || is[d] <= xs[d];
    if (!ok)
        throw shape_error("gather: index of shape " + shape_str(is) + " does not fit input of shape " + shape_str(xs) +
                          " along axis " + std::to_string(axis) +
                          "; the index needs the input's rank and sizes no larger than its outside the axis");
    for (std::size_t j = 0; j < index.size(); ++j)
        if (index.data()[j] >= xs[k])
            throw std::out_of_range("gather: index value " + std::to_string(index.data()[j]) + " at flat position " +
                                    std::to_string(j) + " is out of range for axis " + std::to_string(axis) +
                                    " of shape " + shape_str(xs));
    return gather_op(x, k, is, index.data());
}

// index_select along any axis: the axis moved to the front, rows picked, moved back.
template <class T> tensor<T> index_select(const tensor<T>& x, int axis, const std::vector<std::size_t>& indices) {
    const std::size_t r = x.dim();
    if (r == 0) throw shape_error("index_select: needs at least 1 dimension, got a 0-d tensor");
    const std::size_t k = detail::norm_axis("index_select", axis, r);
    if (k == 0) return index_select(x, indices);
    for (std::size_t j = 0; j < indices.size(); ++j)
        if (indices[j] >= x.shape()[k])
            throw std::out_of_range("index_select: index " + std::to_string(indices[j]) + " at position " +
                                    std::to_string(j) + " is out of range for axis " + std::to_string(axis) +
                                    " of shape " + shape_str(x.shape()));
    std::vector<std::size_t> front(r), back(r);
    front[0] = k;
    for (std::size_t i = 0, j = 1; i < r; ++i)
        if (i != k) front[j++] = i;
    for (std::size_t i = 0; i < r; ++i) back[front[i]] = i;
    return permute(index_select(permute(x, axes_t(front.begin(), front.end())), indices),
                   axes_t(back.begin(), back.end()));
}

#define TAPEGRAD_SHAPE_OPS(T)                                                                             \
    template tensor<T> squeeze(const tensor<T>&);                                                        \
    template tensor<T> squeeze(const tensor<T>&, const std::vector<int>&);                               \
    template tensor<T> unsqueeze(const tensor<T>&, int);                                                 \
    template tensor<T> flip(const tensor<T>&, const std::vector<int>&);                                  \
    template tensor<T> pad(const tensor<T>&, const std::vector<std::pair<std::size_t, std::size_t>>&, T); \
    template tensor<T> slice(const tensor<T>&, int, std::size_t, std::size_t, std::size_t);              \
    template tensor<T> gather(const tensor<T>&, int, const xt::xarray<std::size_t>&);                    \
    template tensor<T> index_select(const tensor<T>&, int, const std::vector<std::size_t>&);
TAPEGRAD_SHAPE_OPS(float)
TAPEGRAD_SHAPE_OPS(double)

}  // namespace tapegrad
