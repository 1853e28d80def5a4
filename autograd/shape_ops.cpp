// The shape ops, each with its forward, its backward rule right above it (the
// forward takes its address) and the recorded second-order path:
//  * permute, transpose, reshape, slice, index_select (rows), concat, stack,
//    broadcast_to and sum_to;
//  * (issue #9) squeeze, unsqueeze, flip, constant pad, strided slices, gather and
//    index_select along any axis.
//
// flip, pad and strided slices are one pair of primitives on a "box" (per axis a
// start, a step that may be negative, and a count): extract reads the box out of a
// tensor, embed writes a tensor into a box of a larger one filled with a constant.
// Each is the other's backward (both are linear), so both are twice differentiable.
// gather and scatter-add are the same kind of pair.
//
// Replay kernels (a compiled step's forward, autograd/compile.hpp) recompute the ops
// whose parameters are fixed at the trace (axes, ranges, boxes, shapes) without
// allocating; index_select's replay reads each call's indices from a label argument
// (detail::store_indices), gather's from an index argument. scatter-add (only in
// gather's recorded backward) has none.

#include <algorithm>
#include <cstdint>
#include <numeric>

#include <xtensor/xadapt.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xstrided_view.hpp>

#include "autograd/detail/op_drivers.hpp"
#include "autograd/detail/trace.hpp"
#include "autograd/one_hot.hpp"

namespace tapegrad {

using detail::make_result;
using detail::out_value;
using detail::to_shape;

namespace {
/// Per-axis sizes and strides, on the stack up to rank 8: replay kernels allocate nothing.
using small_dims = xt::svector<std::size_t, 8>;

/// Row-major strides of a shape.
template <class S> small_dims strides_of(const S& s) {
    small_dims st(s.size(), 1);
    for (std::size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
    return st;
}

/// dst[i . dst_st] = src[i . src_st] (+= with Add) for every index i of `shape`, the last
/// axis fastest: the copy behind permute, slice and concat, forward and backward (xtensor's
/// strided views cost 5-10x). Rows with unit strides are plain loops the compiler vectorises.
template <bool Add = false, class T, class S>
void copy_strided(const S& shape, const T* src, const small_dims& src_st, T* dst, const small_dims& dst_st) {
    const std::size_t r = shape.size();
    std::size_t total = 1;
    for (std::size_t e : shape) total *= e;
    if (total == 0) return;
    if (r == 0) {
        *dst = Add ? *dst + *src : *src;
        return;
    }
    small_dims idx(r, 0);
    const std::size_t inner = shape[r - 1], si = src_st[r - 1], di = dst_st[r - 1];
    std::size_t so = 0, dof = 0;
    for (std::size_t k = 0; k < total; k += inner) {
        T* d = dst + dof;
        const T* q = src + so;
        if (si == 1 && di == 1) {
            if constexpr (Add) for (std::size_t j = 0; j < inner; ++j) d[j] += q[j];
            else std::copy(q, q + inner, d);
        } else {
            for (std::size_t j = 0; j < inner; ++j) d[j * di] = Add ? d[j * di] + q[j * si] : q[j * si];
        }
        for (std::size_t a = r - 1; a-- > 0;) {  // odometer over the outer axes
            if (++idx[a] < shape[a]) {
                so += src_st[a];
                dof += dst_st[a];
                break;
            }
            so -= src_st[a] * (shape[a] - 1);
            dof -= dst_st[a] * (shape[a] - 1);
            idx[a] = 0;
        }
    }
}
}  // namespace

// ----------------------------------------------------------------- permute
namespace {
/// copy_strided into a row-major dst whose last axis is strided in src (a transpose):
/// tiles of that axis and the one contiguous in src, so both sides are read and written
/// a cache line at a time; walking dst's rows read one src element per line.
template <bool Add, class T, class S> void permute_copy(const S& shape, const T* src, const small_dims& src_st, T* dst) {
    const std::size_t r = shape.size();
    const small_dims dst_st = strides_of(shape);
    std::size_t p = r;  // the axis of dst that is contiguous in src
    for (std::size_t a = 0; r >= 2 && a + 1 < r; ++a)
        if (src_st[a] == 1 && shape[a] > 1) p = a;
    if (p == r || src_st[r - 1] == 1) return copy_strided<Add>(shape, src, src_st, dst, dst_st);
    const std::size_t rows = shape[p], cols = shape[r - 1], sj = src_st[r - 1], di = dst_st[p];
    small_dims outer_shape, outer_src, outer_dst;  // the other axes
    for (std::size_t a = 0; a + 1 < r; ++a)
        if (a != p) outer_shape.push_back(shape[a]), outer_src.push_back(src_st[a]), outer_dst.push_back(dst_st[a]);
    std::size_t total = 1;
    for (std::size_t e : outer_shape) total *= e;
    small_dims idx(outer_shape.size(), 0);
    std::size_t so = 0, dof = 0;
    // 16 rows read one 64-byte line of each of 8 src columns: 8 lines at a power-of-two stride
    // share an L1 set, and 16 would not fit its 8 ways (measured: 2.3x slower)
    constexpr std::size_t tile_i = 16, tile_j = 8;
    for (std::size_t k = 0; k < total; ++k) {
        for (std::size_t i0 = 0; i0 < rows; i0 += tile_i)
            for (std::size_t j0 = 0; j0 < cols; j0 += tile_j) {
                const std::size_t i1 = std::min(rows, i0 + tile_i), j1 = std::min(cols, j0 + tile_j);
                for (std::size_t i = i0; i < i1; ++i) {
                    T* d = dst + dof + i * di;
                    const T* q = src + so + i;
                    for (std::size_t j = j0; j < j1; ++j) d[j] = Add ? d[j] + q[j * sj] : q[j * sj];
                }
            }
        for (std::size_t a = outer_shape.size(); a-- > 0;) {
            if (++idx[a] < outer_shape[a]) {
                so += outer_src[a];
                dof += outer_dst[a];
                break;
            }
            so -= outer_src[a] * (outer_shape[a] - 1);
            dof -= outer_dst[a] * (outer_shape[a] - 1);
            idx[a] = 0;
        }
    }
}

// y = x with axes reordered; dx = gy with the inverse order
template <class T> void permute_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const std::size_t r = c.self.n_op_data;
    std::vector<std::size_t> inv(r);
    for (std::size_t i = 0; i < r; ++i) inv[c.self.op_data[i]] = i;
    if (c.create_graph) {
        c.add_graph(0, permute(c.tgy(), axes_t(inv.begin(), inv.end())));
        return;
    }
    const small_dims gst = strides_of(c.gy().shape());
    small_dims src_st(r);
    for (std::size_t i = 0; i < r; ++i) src_st[i] = gst[inv[i]];
    bool had;
    T* dx = c.grad_data(c.input(0), had);
    if (had) permute_copy<true>(c.x(0).shape(), c.gy().data(), src_st, dx);
    else permute_copy<false>(c.x(0).shape(), c.gy().data(), src_st, dx);
    c.mark(c.input(0));
}
// y[i] = x[i permuted by order] (y already of the permuted shape)
template <class T> void permute_fill(xt::xarray<T>& y, const xt::xarray<T>& xv, const std::size_t* order) {
    const small_dims xst = strides_of(xv.shape());
    small_dims src_st(xv.dimension());
    for (std::size_t i = 0; i < src_st.size(); ++i) src_st[i] = xst[order[i]];
    permute_copy<false>(y.shape(), xv.data(), src_st, y.data());
}
// replay: the axis order in op_data
template <class T> void permute_forward(node<T>& n, node<T>* const* in) { permute_fill(n.value, in[0]->value, n.op_data); }
}  // namespace

template <class T> tensor<T> permute(const tensor<T>& x, const axes_t& axes) {
    const auto& xv = x.value();
    const std::size_t r = xv.dimension();
    if (axes.size() != r)
        throw shape_error("permute: " + std::to_string(axes.size()) + " axes given for a tensor of rank " +
                          std::to_string(r) + " (shape " + shape_str(xv.shape()) + "); give one axis per dimension");
    std::vector<std::size_t> order(r);
    std::vector<bool> seen(r, false);
    for (std::size_t i = 0; i < r; ++i) {
        order[i] = detail::norm_axis("permute", axes[i], r);
        if (seen[order[i]]) {
            std::string list;
            for (axis_t a : axes) list += (list.empty() ? "" : ", ") + std::to_string(a);
            throw shape_error("permute: axes [" + list + "] are not a permutation of 0.." + std::to_string(r - 1) +
                              " for shape " + shape_str(xv.shape()) + " (axis " + std::to_string(axes[i]) +
                              " appears twice)");
        }
        seen[order[i]] = true;
    }
    tensor<T> out = make_result<T>("permute", &permute_backward<T>, {&x}, r);
    node<T>* n = out.node_ptr();
    n->forward = &permute_forward<T>;
    if (n->op_data) std::copy(order.begin(), order.end(), n->op_data);
    shape_t shape(r);
    for (std::size_t i = 0; i < r; ++i) shape[i] = xv.shape()[order[i]];
    n->value.resize(shape);
    permute_fill(n->value, xv, order.data());  // order, not op_data: an unrecorded result has none
    return out;
}

template <class T> tensor<T> transpose(const tensor<T>& x) {
    const std::size_t r = x.dim();
    if (r < 2) throw shape_error("transpose: needs at least 2 dimensions, got shape " + shape_str(x.shape()));
    axes_t axes(r);
    std::iota(axes.begin(), axes.end(), 0);
    std::swap(axes[r - 1], axes[r - 2]);
    return permute(x, axes);
}

// ----------------------------------------------------------------- reshape
namespace {
// y = x viewed with another shape; dx = gy viewed with x's shape
template <class T> void reshape_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const auto& xs = c.x(0).shape();
    if (c.create_graph) c.add_graph(0, reshape(c.tgy(), to_shape(xs)));
    else c.add(0, xt::adapt(c.gy().data(), c.gy().size(), xt::no_ownership(), xs));
}
// replay: the values, in the recorded shape
template <class T> void reshape_forward(node<T>& n, node<T>* const* in) {
    const auto& xv = in[0]->value;
    std::copy(xv.data(), xv.data() + xv.size(), n.value.data());
}
}  // namespace

template <class T> tensor<T> reshape(const tensor<T>& x, const shape_t& shape) {
    const auto& xv = x.value();
    const std::size_t count = std::accumulate(shape.begin(), shape.end(), std::size_t(1), std::multiplies<>());
    if (count != xv.size())
        throw shape_error("reshape: cannot reshape " + shape_str(xv.shape()) + " (" + std::to_string(xv.size()) +
                          " elements) into " + shape_str(shape) + " (" + std::to_string(count) + " elements)");
    tensor<T> out = make_result<T>("reshape", &reshape_backward<T>, {&x});
    out.node_ptr()->forward = &reshape_forward<T>;
    auto& v = out_value(out);
    v.resize(shape);
    std::copy(xv.data(), xv.data() + xv.size(), v.data());
    return out;
}

// ------------------------------------------------------------------- slice
namespace {

// y = x[begin:end] on axis; dx is gy placed in that range, zeros elsewhere
template <class T> void slice_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const std::size_t axis = c.self.op_data[0], begin = c.self.op_data[1], end = c.self.op_data[2];
    const auto& xv = c.x(0);
    if (c.create_graph) {
        shape_t before = to_shape(xv.shape()), after = before;
        before[axis] = begin;
        after[axis] = xv.shape()[axis] - end;
        c.add_graph(0, concat<T>({tensor<T>::zeros(before), c.tgy(), tensor<T>::zeros(after)}, int(axis)));
        return;
    }
    node<T>* in = c.input(0);
    bool had;
    T* data = c.grad_data(in, had);
    if (!had) std::fill(data, data + xv.size(), T(0));
    const small_dims xst = strides_of(xv.shape());
    copy_strided<true>(c.gy().shape(), c.gy().data(), strides_of(c.gy().shape()), data + begin * xst[axis], xst);
    c.mark(in);
}
// replay: y = x[begin:end] on the axis (op_data: axis, begin, end)
template <class T> void slice_forward(node<T>& n, node<T>* const* in) {
    const auto& xv = in[0]->value;
    const small_dims xst = strides_of(xv.shape());
    copy_strided(n.value.shape(), xv.data() + n.op_data[1] * xst[n.op_data[0]], xst, n.value.data(),
                 strides_of(n.value.shape()));
}
}  // namespace

template <class T> tensor<T> slice(const tensor<T>& x, int axis, std::size_t begin, std::size_t end) {
    const auto& xv = x.value();
    const std::size_t ax = detail::norm_axis("slice", axis, xv.dimension());
    if (begin > end || end > xv.shape()[ax])
        throw shape_error("slice: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                          ") is out of bounds for axis " + std::to_string(ax) + " of shape " + shape_str(xv.shape()));
    tensor<T> out = make_result<T>("slice", &slice_backward<T>, {&x}, 3);
    node<T>* n = out.node_ptr();
    n->forward = &slice_forward<T>;
    if (n->op_data) {
        n->op_data[0] = ax;
        n->op_data[1] = begin;
        n->op_data[2] = end;
    }
    shape_t shape = to_shape(xv.shape());
    shape[ax] = end - begin;
    n->value.resize(shape);
    const small_dims xst = strides_of(xv.shape());
    copy_strided(n->value.shape(), xv.data() + begin * xst[ax], xst, n->value.data(), strides_of(n->value.shape()));
    return out;
}

// ------------------------------------------------------------ index_select
namespace {
// y[k] = x[idx[k]] (rows); dx[idx[k]] += gy[k] (scatter-add)
template <class T> void index_select_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const auto& xv = c.x(0);
    const std::size_t rows = xv.shape()[0], row = rows ? xv.size() / rows : 0, count = c.self.n_op_data - 1;
    if (c.create_graph) {
        // scatter-add as a product with a constant one-hot matrix H[k, idx[k]] = 1: dx = H^T gy
        tensor<T> g2 = reshape(c.tgy(), {count, row});
        c.add_graph(0, reshape(matmul(tensor<T>(one_hot<T>(c.self.op_data, count, rows)), g2, true, false),
                               to_shape(xv.shape())));
        return;
    }
    node<T>* in = c.input(0);
    bool had;
    T* g = c.grad_data(in, had);
    if (!had) std::fill(g, g + xv.size(), T(0));
    const T* src = c.gy().data();
    for (std::size_t k = 0; k < count; ++k) {
        T* dst = g + c.self.op_data[k] * row;
        for (std::size_t j = 0; j < row; ++j) dst[j] += src[k * row + j];
    }
    c.mark(in);
}
// replay: the indices of this call (detail::store_indices), checked, then the rows copied
template <class T> void index_select_forward(node<T>& n, node<T>* const* in) {
    const auto& indices = detail::stored_indices_source(n);
    const auto& xv = in[0]->value;
    const std::size_t rows = xv.shape()[0], row = rows ? xv.size() / rows : 0;
    for (std::size_t k = 0; k < indices.size(); ++k)
        if (indices[k] >= rows)
            throw std::out_of_range("index_select: index " + std::to_string(indices[k]) + " at position " +
                                    std::to_string(k) + " is out of range for " + std::to_string(rows) + " rows");
    std::copy(indices.begin(), indices.end(), n.op_data);
    for (std::size_t k = 0; k < indices.size(); ++k)
        std::copy(xv.data() + indices[k] * row, xv.data() + (indices[k] + 1) * row, n.value.data() + k * row);
}
}  // namespace

template <class T> tensor<T> index_select(const tensor<T>& x, const std::vector<std::size_t>& indices) {
    const auto& xv = x.value();
    if (xv.dimension() == 0) throw shape_error("index_select: needs at least 1 dimension, got a 0-d tensor");
    const std::size_t rows = xv.shape()[0], row = rows ? xv.size() / rows : 0;
    for (std::size_t k = 0; k < indices.size(); ++k)
        if (indices[k] >= rows)
            throw std::out_of_range("index_select: index " + std::to_string(indices[k]) + " at position " +
                                    std::to_string(k) + " is out of range for axis 0 of shape " +
                                    shape_str(xv.shape()));
    detail::check_traced_labels<T>(&indices, "index_select");  // the replay reads them through the pointer
    tensor<T> out = make_result<T>("index_select", &index_select_backward<T>, {&x}, indices.size() + 1);
    node<T>* n = out.node_ptr();
    detail::store_indices(n, indices);
    n->forward = &index_select_forward<T>;
    shape_t shape = to_shape(xv.shape());
    shape[0] = indices.size();
    n->value.resize(shape);
    for (std::size_t k = 0; k < indices.size(); ++k)
        std::copy(xv.data() + indices[k] * row, xv.data() + (indices[k] + 1) * row, n->value.data() + k * row);
    return out;
}

// ------------------------------------------------------------------ concat
namespace {
// y = [x0 | x1 | ...] on axis; dx_i = gy restricted to x_i's range
template <class T> void concat_backward(backward_ctx<T>& c) {
    const std::size_t axis = c.self.op_data[0];
    std::size_t offset = 0;
    for (std::size_t i = 0; i < c.self.n_inputs; ++i) {
        const auto& xv = c.x(i);
        const std::size_t len = xv.shape()[axis];
        if (c.wants(i)) {
            if (c.create_graph) c.add_graph(i, slice(c.tgy(), int(axis), offset, offset + len));
            else {
                bool had;
                T* d = c.grad_data(c.input(i), had);
                const small_dims yst = strides_of(c.gy().shape());
                const T* from = c.gy().data() + offset * yst[axis];
                if (had) copy_strided<true>(xv.shape(), from, yst, d, strides_of(xv.shape()));
                else copy_strided(xv.shape(), from, yst, d, strides_of(xv.shape()));
                c.mark(c.input(i));
            }
        }
        offset += len;
    }
}
// replay: each input copied into its range of the axis (op_data: axis)
template <class T> void concat_forward(node<T>& n, node<T>* const* in) {
    const std::size_t axis = n.op_data[0];
    const small_dims yst = strides_of(n.value.shape());
    std::size_t offset = 0;
    for (std::size_t i = 0; i < n.n_inputs; ++i) {
        const auto& xv = in[i]->value;
        copy_strided(xv.shape(), xv.data(), strides_of(xv.shape()), n.value.data() + offset * yst[axis], yst);
        offset += xv.shape()[axis];
    }
}
}  // namespace

template <class T> tensor<T> concat(const std::vector<tensor<T>>& xs, int axis) {
    if (xs.empty()) throw shape_error("concat: needs at least one tensor");
    const auto& first = xs[0].value();
    const std::size_t rank = first.dimension();
    const std::size_t ax = detail::norm_axis("concat", axis, rank);
    shape_t shape = to_shape(first.shape());
    shape[ax] = 0;
    std::vector<const tensor<T>*> ptrs;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const auto& s = xs[i].value().shape();
        bool ok = s.size() == rank;
        for (std::size_t d = 0; ok && d < rank; ++d) ok = d == ax || s[d] == first.shape()[d];
        if (!ok)
            throw shape_error("concat: input " + std::to_string(i) + " has shape " + shape_str(s) +
                              ", which does not match input 0's shape " + shape_str(first.shape()) +
                              " outside axis " + std::to_string(ax));
        shape[ax] += s[ax];
        ptrs.push_back(&xs[i]);
    }
    tensor<T> out = make_result<T>("concat", &concat_backward<T>, ptrs.data(), ptrs.size(), 1);
    node<T>* n = out.node_ptr();
    n->forward = &concat_forward<T>;
    if (n->op_data) n->op_data[0] = ax;
    n->value.resize(shape);
    const small_dims yst = strides_of(n->value.shape());
    std::size_t offset = 0;
    for (const auto& x : xs) {
        const auto& xv = x.value();
        copy_strided(xv.shape(), xv.data(), strides_of(xv.shape()), n->value.data() + offset * yst[ax], yst);
        offset += xv.shape()[ax];
    }
    return out;
}

template <class T> tensor<T> stack(const std::vector<tensor<T>>& xs, int axis) {
    if (xs.empty()) throw shape_error("stack: needs at least one tensor");
    const std::size_t ax = detail::norm_axis("stack", axis, xs[0].dim() + 1);
    std::vector<tensor<T>> parts;
    parts.reserve(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) {
        if (xs[i].shape() != xs[0].shape())
            throw shape_error("stack: input " + std::to_string(i) + " has shape " + shape_str(xs[i].shape()) +
                              ", but input 0 has shape " + shape_str(xs[0].shape()));
        shape_t s = xs[i].shape();
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(ax), 1);
        parts.push_back(reshape(xs[i], s));
    }
    return concat(parts, int(ax));
}

// ---------------------------------------------------- broadcast_to / sum_to
namespace {
// y = x broadcast; dx = sum_to(gy, x.shape) (done by the accumulation itself)
template <class T> void broadcast_to_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    if (c.create_graph) c.add_graph(0, c.tgy());
    else c.add(0, c.gy());
}
// y = x summed down to a shape; dx = gy broadcast back to x.shape
template <class T> void sum_to_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const auto& xs = c.x(0).shape();
    if (c.create_graph) c.add_graph(0, broadcast_to(c.tgy(), to_shape(xs)));
    else c.add_broadcast(0, c.gy().data(), c.gy().shape(), T(1));
}
// replay kernels: the eager computations, into the recorded shapes
template <class T> void broadcast_to_forward(node<T>& n, node<T>* const* in) {
    const auto& xv = in[0]->value;
    const detail::xshape shape(n.value.shape().begin(), n.value.shape().end());
    detail::broadcast_back<T>(xv.data(), xv.shape(), n.value, shape, false, T(1));
}
template <class T> void sum_to_forward(node<T>& n, node<T>* const* in) {
    const detail::xshape shape(n.value.shape().begin(), n.value.shape().end());
    detail::sum_to<T>(in[0]->value, n.value, shape, false);
}
}  // namespace

template <class T> tensor<T> broadcast_to(const tensor<T>& x, const shape_t& shape) {
    const auto& xv = x.value();
    if (!detail::shapes_equal(detail::broadcast_shape("broadcast_to", xv.shape(), shape), shape))
        throw shape_error("broadcast_to: shape " + shape_str(xv.shape()) + " cannot be broadcast to " +
                          shape_str(shape));
    tensor<T> out = make_result<T>("broadcast_to", &broadcast_to_backward<T>, {&x});
    out.node_ptr()->forward = &broadcast_to_forward<T>;
    detail::broadcast_back<T>(xv.data(), xv.shape(), out_value(out), detail::xshape(shape.begin(), shape.end()), false,
                              T(1));
    return out;
}

template <class T> tensor<T> sum_to(const tensor<T>& x, const shape_t& shape) {
    const auto& xv = x.value();
    if (!detail::shapes_equal(detail::broadcast_shape("sum_to", xv.shape(), shape), xv.shape()))
        throw shape_error("sum_to: shape " + shape_str(xv.shape()) + " cannot be summed down to " + shape_str(shape));
    tensor<T> out = make_result<T>("sum_to", &sum_to_backward<T>, {&x});
    out.node_ptr()->forward = &sum_to_forward<T>;
    detail::sum_to<T>(xv, out_value(out), typename xt::xarray<T>::shape_type(shape.begin(), shape.end()), false);
    return out;
}

#define TAPEGRAD_BASIC_SHAPE_OPS(T)                                                               \
    template tensor<T> transpose(const tensor<T>&);                                     \
    template tensor<T> permute(const tensor<T>&, const axes_t&);                        \
    template tensor<T> reshape(const tensor<T>&, const shape_t&);                       \
    template tensor<T> slice(const tensor<T>&, int, std::size_t, std::size_t);          \
    template tensor<T> index_select(const tensor<T>&, const std::vector<std::size_t>&); \
    template tensor<T> concat(const std::vector<tensor<T>>&, int);                      \
    template tensor<T> stack(const std::vector<tensor<T>>&, int);                       \
    template tensor<T> broadcast_to(const tensor<T>&, const shape_t&);                  \
    template tensor<T> sum_to(const tensor<T>&, const shape_t&);
TAPEGRAD_BASIC_SHAPE_OPS(float)
TAPEGRAD_BASIC_SHAPE_OPS(double)

namespace {

// ------------------------------------------------------------------ boxes
struct box_axis {
    std::int64_t start, step;
    std::size_t count;
};
// On the stack up to rank 8: replay kernels allocate nothing. (Sized with resize(): its
// count constructor would need box_axis(0).)
using box = xt::svector<box_axis, 8>;

/// f(k, offset): k runs over the box's elements in row-major order, offset is the
/// element's position in a tensor of shape `big`. The last axis is an inner loop (with
/// a unit step, the usual slice, one the compiler vectorises); the odometer moves once
/// per row: per element it cost more than the copy.
template <class S, class F> void for_each_in_box(const box& b, const S& big, F&& f) {
    const std::size_t r = b.size();
    std::size_t total = 1;
    for (const auto& a : b) total *= a.count;
    if (total == 0) return;
    if (r == 0) return f(std::size_t(0), std::size_t(0));
    const auto st = strides_of(big);
    small_dims idx(r, 0);
    std::int64_t off = 0;
    for (std::size_t i = 0; i < r; ++i) off += b[i].start * std::int64_t(st[i]);
    const std::size_t row = b[r - 1].count;
    const std::int64_t inner = b[r - 1].step * std::int64_t(st[r - 1]);
    for (std::size_t k = 0; k < total; k += row) {
        const std::size_t o = static_cast<std::size_t>(off);
        if (inner == 1)
            for (std::size_t j = 0; j < row; ++j) f(k + j, o + j);
        else
            for (std::size_t j = 0; j < row; ++j) f(k + j, static_cast<std::size_t>(off + std::int64_t(j) * inner));
        for (std::size_t i = r - 1; i-- > 0;) {  // odometer over the other axes, the second last fastest
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
/// The box alone (the big shape is a value's shape): what the replay kernels read.
template <class T> box load_box(const node<T>& n) {
    box b;
    b.resize(n.op_data[0]);
    for (std::size_t i = 0; i < b.size(); ++i)
        b[i] = {static_cast<std::int64_t>(n.op_data[1 + 4 * i]), static_cast<std::int64_t>(n.op_data[2 + 4 * i]),
                n.op_data[3 + 4 * i]};
    return b;
}
/// The box and the big shape it lies in.
template <class T> box load_box(const node<T>& n, shape_t& big) {
    box b = load_box(n);
    big.resize(b.size());
    for (std::size_t i = 0; i < b.size(); ++i) big[i] = n.op_data[4 + 4 * i];
    return b;
}
// replay kernels: y = x[box]; y = fill (scalar[0]) with y[box] = x
template <class T> void extract_forward(node<T>& n, node<T>* const* in) {
    const T* x = in[0]->value.data();
    T* y = n.value.data();
    for_each_in_box(load_box(n), in[0]->value.shape(), [&](std::size_t k, std::size_t o) { y[k] = x[o]; });
}
template <class T> void embed_forward(node<T>& n, node<T>* const* in) {
    const T* x = in[0]->value.data();
    std::fill(n.value.begin(), n.value.end(), n.scalar[0]);
    T* y = n.value.data();
    for_each_in_box(load_box(n), n.value.shape(), [&](std::size_t k, std::size_t o) { y[o] = x[k]; });
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
    n->forward = &extract_forward<T>;
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
    n->forward = &embed_forward<T>;
    n->scalar[0] = fill;
    store_box(n, b, big);
    n->value.resize(big);
    std::fill(n->value.begin(), n->value.end(), fill);
    T* y = n->value.data();
    for_each_in_box(b, big, [&](std::size_t k, std::size_t o) { y[o] = xv.data()[k]; });
    return out;
}

/// The whole of each axis of `s`, step 1.
box full_box(const shape_t& s) {
    box b;
    b.resize(s.size());
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
// backward. op_data: [axis, rank, big shape (x's), index shape, index values...,
// the index argument's address (gather's replay; 0 when there is none)]
namespace {

struct gather_spec {
    std::size_t axis, rank, count;
    const std::size_t* big;     // x's shape (rank values)
    const std::size_t* ishape;  // the index's shape (rank values)
    const std::size_t* index;   // count values
};

/// f(k, offset in big) for each index element k (row-major over ishape); nothing on the heap up to rank 8.
template <class F>
void for_each_gathered(std::size_t axis, std::size_t r, const std::size_t* big, const std::size_t* ishape,
                       const std::size_t* index, F&& f) {
    std::size_t total = 1;
    for (std::size_t i = 0; i < r; ++i) total *= ishape[i];
    small_dims st(r, 1), idx(r, 0);
    for (std::size_t i = r; i-- > 1;) st[i - 1] = st[i] * big[i];
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
template <class F> void for_each_gathered(const gather_spec& s, F&& f) {
    for_each_gathered(s.axis, s.rank, s.big, s.ishape, s.index, std::forward<F>(f));
}

constexpr std::size_t gather_words(std::size_t rank, std::size_t count) { return 3 + 2 * rank + count; }

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
    a[2 + 2 * r + count] = 0;
}
template <class T> gather_spec load_gather(const node<T>& n) {
    const std::size_t r = n.op_data[1];
    return {n.op_data[0], r, n.n_op_data - gather_words(r, 0), n.op_data + 2, n.op_data + 2 + r, n.op_data + 2 + 2 * r};
}
shape_t shape_of(const std::size_t* dims, std::size_t rank) { return shape_t(dims, dims + rank); }

template <class T> tensor<T> gather_op(const tensor<T>& x, std::size_t axis, const shape_t& ishape, const std::size_t* index);
template <class T>
tensor<T> scatter_add_op(const tensor<T>& g, std::size_t axis, const shape_t& big, const std::size_t* index);

// y = gather(x); dx = scatter_add(gy)
template <class T> void gather_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const auto s = load_gather(c.self);
    if (c.create_graph) {
        c.add_graph(0, scatter_add_op(c.tgy(), s.axis, shape_of(s.big, s.rank), s.index));
        return;
    }
    bool had;
    T* dx = c.grad_data(c.input(0), had);
    if (!had) std::fill(dx, dx + c.x(0).size(), T(0));
    const T* gy = c.gy().data();
    for_each_gathered(s, [&](std::size_t k, std::size_t o) { dx[o] += gy[k]; });
    c.mark(c.input(0));
}

// replay: the index argument of this call (the call's signature fixed its shape), checked, then gathered
template <class T> void gather_forward(node<T>& n, node<T>* const* in) {
    const auto s = load_gather(n);
    const auto& index = *reinterpret_cast<const xt::xarray<std::size_t>*>(
        static_cast<std::uintptr_t>(n.op_data[n.n_op_data - 1]));
    const auto& xv = in[0]->value;
    if (xv.dimension() != s.rank || !std::equal(s.big, s.big + s.rank, xv.shape().begin()))
        throw shape_error("gather: replayed on an input of shape " + shape_str(xv.shape()) + ", traced with " +
                          shape_str(shape_of(s.big, s.rank)));
    const std::size_t* iv = index.data();
    for (std::size_t j = 0; j < s.count; ++j)
        if (iv[j] >= s.big[s.axis])
            throw std::out_of_range("gather: index value " + std::to_string(iv[j]) + " at flat position " +
                                    std::to_string(j) + " is out of range for axis " + std::to_string(s.axis) +
                                    " of shape " + shape_str(xv.shape()));
    std::copy(iv, iv + s.count, n.op_data + 2 + 2 * s.rank);  // where the backward reads them
    T* y = n.value.data();
    const T* x = xv.data();
    for_each_gathered(s, [&](std::size_t k, std::size_t o) { y[k] = x[o]; });
}

template <class T> tensor<T> gather_op(const tensor<T>& x, std::size_t axis, const shape_t& ishape, const std::size_t* index) {
    const auto& xv = x.value();
    const shape_t big = to_shape(xv.shape());
    const std::size_t count = std::accumulate(ishape.begin(), ishape.end(), std::size_t(1), std::multiplies<>());
    tensor<T> out = make_result<T>("gather", &gather_backward<T>, {&x}, gather_words(big.size(), count));
    node<T>* n = out.node_ptr();
    store_gather(n, axis, big, ishape, index, count);
    n->value.resize(ishape);
    T* y = n->value.data();
    for_each_gathered(axis, big.size(), big.data(), ishape.data(), index,
                      [&](std::size_t k, std::size_t o) { y[k] = xv.data()[o]; });
    return out;
}

// y = scatter_add(g) into shape big; dg = gather(gy)
template <class T> void scatter_add_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const auto s = load_gather(c.self);
    if (c.create_graph) {
        c.add_graph(0, gather_op(c.tgy(), s.axis, shape_of(s.ishape, s.rank), s.index));
        return;
    }
    bool had;
    T* dg = c.grad_data(c.input(0), had);
    const T* gy = c.gy().data();
    for_each_gathered(s, [&](std::size_t k, std::size_t o) { dg[k] = had ? dg[k] + gy[o] : gy[o]; });
    c.mark(c.input(0));
}

template <class T>
tensor<T> scatter_add_op(const tensor<T>& g, std::size_t axis, const shape_t& big, const std::size_t* index) {
    const auto& gv = g.value();
    const shape_t ishape = to_shape(gv.shape());
    tensor<T> out = make_result<T>("scatter_add", &scatter_add_backward<T>, {&g}, gather_words(big.size(), gv.size()));
    node<T>* n = out.node_ptr();
    store_gather(n, axis, big, ishape, index, gv.size());
    n->value.resize(big);
    std::fill(n->value.begin(), n->value.end(), T(0));
    T* y = n->value.data();
    for_each_gathered(axis, big.size(), big.data(), ishape.data(), index,
                      [&](std::size_t k, std::size_t o) { y[o] += gv.data()[k]; });
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
    detail::check_traced_labels<T>(&index, "gather", "const xt::xarray<std::size_t>&");  // the replay reads it again
    tensor<T> out = gather_op(x, k, is, index.data());
    node<T>* n = out.node_ptr();
    if (n->op_data) {
        static_assert(sizeof(std::size_t) == sizeof(std::uintptr_t), "op_data holds a pointer");
        n->op_data[n->n_op_data - 1] = static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(&index));
        n->forward = &gather_forward<T>;
    }
    return out;
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
