// matmul through BLAS gemm, and the shape ops (permute, reshape, slice, gather,
// concat, broadcast). Each op: checks, forward, then its backward right below.

#include <algorithm>
#include <numeric>

#include <xtensor/xadapt.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xstrided_view.hpp>

#include "autograd/kernels/blas.hpp"
#include "autograd/detail/op_drivers.hpp"
#include "autograd/one_hot.hpp"

namespace tapegrad {

using detail::make_result;
using detail::out_value;
using detail::to_shape;

// ------------------------------------------------------------------ matmul
namespace {

struct mm_dims {
    std::size_t batch, m, n, k, ar, ac, br, bc;
    bool batched_b;
};

template <class T> mm_dims mm_check(const xt::xarray<T>& a, const xt::xarray<T>& b, bool ta, bool tb) {
    const auto &sa = a.shape(), &sb = b.shape();
    auto fail = [&](const std::string& why) {
        return shape_error("matmul: shapes " + shape_str(sa) + " and " + shape_str(sb) + " (transpose_a=" +
                           (ta ? "true" : "false") + ", transpose_b=" + (tb ? "true" : "false") + "): " + why);
    };
    const std::size_t ra = sa.size(), rb = sb.size();
    if (!((ra == 2 && rb == 2) || (ra == 3 && rb == 3) || (ra == 3 && rb == 2)))
        throw fail("supported ranks are 2-D x 2-D, 3-D x 3-D and 3-D x 2-D");
    mm_dims d{};
    d.batch = ra == 3 ? sa[0] : 1;
    d.batched_b = rb == 3;
    if (rb == 3 && sb[0] != sa[0])
        throw fail("batch sizes " + std::to_string(sa[0]) + " and " + std::to_string(sb[0]) + " differ");
    d.ar = sa[ra - 2];
    d.ac = sa[ra - 1];
    d.br = sb[rb - 2];
    d.bc = sb[rb - 1];
    d.m = ta ? d.ac : d.ar;
    d.k = ta ? d.ar : d.ac;
    const std::size_t kb = tb ? d.bc : d.br;
    d.n = tb ? d.br : d.bc;
    if (d.k != kb)
        throw fail("inner dimensions " + std::to_string(d.k) + " and " + std::to_string(kb) + " differ");
    return d;
}

// Whether input i takes its fused SGD step here (set_fused_sgd) instead of getting
// a gradient: only in backward(), and only if this matmul is the leaf's one recorded
// use and nothing was accumulated on it, so no other rule can read its new value.
template <class T> bool fuses_step(const backward_ctx<T>& c, std::size_t i) {
    node<T>* n = c.input(i);
    return c.into_leaf_grad && !n->on_tape && n->fused_sgd && n->uses == 1 && n->requires_grad && !c.defined(n);
}

// Where input i's gemms write, with their alpha and first beta: the gradient buffer
// (beta 1 if it holds a gradient, else 0), or the fused leaf's value itself
// (w = decay * w - lr * g: alpha -lr, beta decay).
template <class T> struct mm_out {
    T* data;
    T alpha, beta;
};

template <class T> mm_out<T> mm_target(backward_ctx<T>& c, std::size_t i, bool fused) {
    node<T>* in = c.input(i);
    if (fused) {
        ++in->fused_steps;
        in->fused_by = c.self.serial;
        return {in->value.data(), -in->fused_lr, in->fused_decay};
    }
    bool had;
    T* g = c.grad_data(in, had);
    c.mark(in);
    return {g, T(1), had ? T(1) : T(0)};
}

// y = op(A) op(B). Reverse: d op(A) = gy op(B)^T and d op(B) = op(A)^T gy, each
// transposed back when its operand was used transposed.
template <class T> void matmul_backward(backward_ctx<T>& c) {
    const bool ta = c.self.scalar[0] != T(0), tb = c.self.scalar[1] != T(0);
    // A matmul recorded before its weight's fused step (that step's own, or older)
    // would read the stepped weight in a second pass; later matmuls saw the new value.
    for (std::size_t i = 0; i < 2; ++i) {
        const node<T>* in = c.input(i);
        if (!in->on_tape && in->fused_by != 0 && c.self.serial <= in->fused_by)
            throw std::logic_error(
                "tapegrad: backward() reached a matmul whose weight already took its fused SGD step in an earlier "
                "backward() of this tape, so the recorded forward no longer matches it; reset the tape between "
                "backward passes, or turn fused SGD off (sgd_options::fused_backward = false) to accumulate");
    }
    if (c.create_graph) {
        tensor<T> a = c.tx(0), b = c.tx(1), gy = c.tgy();
        if (c.wants(0)) {
            tensor<T> d_op_a = matmul(gy, b, false, !tb);
            c.add_graph(0, ta ? transpose(d_op_a) : d_op_a);
        }
        if (c.wants(1)) c.add_graph(1, tb ? matmul(gy, a, true, ta) : matmul(a, gy, !ta, false));
        return;
    }
    const auto& av = c.x(0);
    const auto& bv = c.x(1);
    const mm_dims d = mm_check(av, bv, ta, tb);
    const T* gy = c.gy().data();
    auto grad_a = [&](bool fused) {
        const mm_out<T> o = mm_target(c, 0, fused);
        for (std::size_t p = 0; p < d.batch; ++p) {
            const T* bp = bv.data() + (d.batched_b ? p * d.br * d.bc : 0);
            const T* gp = gy + p * d.m * d.n;
            T* out = o.data + p * d.ar * d.ac;
            if (!ta) blas::gemm(false, !tb, d.m, d.k, d.n, o.alpha, gp, d.n, bp, d.bc, o.beta, out, d.ac);
            else blas::gemm(tb, true, d.k, d.m, d.n, o.alpha, bp, d.bc, gp, d.n, o.beta, out, d.ac);
        }
    };
    auto grad_b = [&](bool fused) {
        const mm_out<T> o = mm_target(c, 1, fused);
        T beta = o.beta;
        for (std::size_t p = 0; p < d.batch; ++p) {
            const T* ap = av.data() + p * d.ar * d.ac;
            const T* gp = gy + p * d.m * d.n;
            T* out = o.data + (d.batched_b ? p * d.br * d.bc : 0);
            if (!tb) blas::gemm(!ta, false, d.k, d.n, d.m, o.alpha, ap, d.ac, gp, d.n, beta, out, d.bc);
            else blas::gemm(true, ta, d.n, d.k, d.m, o.alpha, gp, d.n, ap, d.ac, beta, out, d.bc);
            if (!d.batched_b) beta = T(1);  // a shared B sums its gradient over the batch
        }
    };
    // A fused operand is overwritten with its new value, so the other operand's
    // gradient, which reads it, goes first; at most one of the two is fused.
    const bool fuse_b = fuses_step(c, 1), fuse_a = !fuse_b && fuses_step(c, 0);
    if (fuse_a) {
        if (c.wants(1)) grad_b(false);
        grad_a(true);
        return;
    }
    if (c.wants(0)) grad_a(false);
    if (c.wants(1)) grad_b(fuse_b);
}

}  // namespace

// ------------------------------------------------ N-D matmul (issue #9)
// Stacks of matrices whose leading (batch) axes broadcast as NumPy's: one gemm per
// output batch, each operand read in place at its broadcast batch (no copies, no
// materialised transposes). The backward is the 2-D rule per batch; an operand
// broadcast over batches accumulates its gradient over them (gemm beta = 1).
namespace {

struct nd_dims {
    std::size_t m, n, k, ar, ac, br, bc;
    shape_t batch;                         // the output's batch shape
    std::vector<std::size_t> a_at, b_at;   // per output batch: the operand's batch (in matrices)
};

/// For each batch index of `out` (row-major), the matching batch of `in` (right-aligned, size-1 axes repeat).
std::vector<std::size_t> batch_map(const shape_t& out, const shape_t& in) {
    std::size_t total = 1;
    for (std::size_t d : out) total *= d;
    std::vector<std::size_t> at(total, 0), idx(out.size(), 0), stride(out.size(), 0);
    std::size_t s = 1;
    for (std::size_t i = in.size(); i-- > 0;) {
        const std::size_t o = i + out.size() - in.size();
        stride[o] = in[i] == 1 ? 0 : s;
        s *= in[i];
    }
    for (std::size_t p = 0; p < total; ++p) {
        std::size_t off = 0;
        for (std::size_t i = 0; i < out.size(); ++i) off += idx[i] * stride[i];
        at[p] = off;
        for (std::size_t i = out.size(); i-- > 0;) {
            if (++idx[i] < out[i]) break;
            idx[i] = 0;
        }
    }
    return at;
}

template <class T> nd_dims nd_check(const xt::xarray<T>& a, const xt::xarray<T>& b, bool ta, bool tb) {
    const auto &sa = a.shape(), &sb = b.shape();
    const std::size_t ra = sa.size(), rb = sb.size();
    nd_dims d{};
    d.ar = sa[ra - 2], d.ac = sa[ra - 1], d.br = sb[rb - 2], d.bc = sb[rb - 1];
    d.m = ta ? d.ac : d.ar;
    d.k = ta ? d.ar : d.ac;
    d.n = tb ? d.br : d.bc;
    const std::size_t kb = tb ? d.bc : d.br;
    if (d.k != kb)
        throw shape_error("matmul: shapes " + shape_str(sa) + " and " + shape_str(sb) + " (transpose_a=" +
                          (ta ? "true" : "false") + ", transpose_b=" + (tb ? "true" : "false") + "): inner dimensions " +
                          std::to_string(d.k) + " and " + std::to_string(kb) + " differ");
    const shape_t batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
    try {
        d.batch = to_shape(detail::broadcast_shape("matmul", batch_a, batch_b));
    } catch (const shape_error&) {
        throw shape_error("matmul: shapes " + shape_str(sa) + " and " + shape_str(sb) + ": batch axes " +
                          shape_str(batch_a) + " and " + shape_str(batch_b) +
                          " do not broadcast (each pair of sizes must be equal or contain a 1)");
    }
    d.a_at = batch_map(d.batch, batch_a);
    d.b_at = batch_map(d.batch, batch_b);
    return d;
}

// y[p] = op(A[a_at p]) op(B[b_at p]); dA[a_at p] += gy[p] op(B)^T (transposed back when ta),
// dB[b_at p] += op(A)^T gy[p] (transposed back when tb)
template <class T> void matmul_nd_backward(backward_ctx<T>& c) {
    const bool ta = c.self.scalar[0] != T(0), tb = c.self.scalar[1] != T(0);
    if (c.create_graph) {
        tensor<T> a = c.tx(0), b = c.tx(1), gy = c.tgy();
        if (c.wants(0)) {
            tensor<T> d_op_a = matmul(gy, b, false, !tb);
            c.add_graph(0, ta ? transpose(d_op_a) : d_op_a);  // sums broadcast batches down to a's shape
        }
        if (c.wants(1)) c.add_graph(1, tb ? matmul(gy, a, true, ta) : matmul(a, gy, !ta, false));
        return;
    }
    const auto& av = c.x(0);
    const auto& bv = c.x(1);
    const nd_dims d = nd_check(av, bv, ta, tb);
    const T* gy = c.gy().data();
    const std::size_t sa = d.ar * d.ac, sb = d.br * d.bc, sy = d.m * d.n;
    auto zeroed = [&](std::size_t i) {
        bool had;
        T* g = c.grad_data(c.input(i), had);
        if (!had) std::fill(g, g + c.x(i).size(), T(0));
        c.mark(c.input(i));
        return g;
    };
    if (c.wants(0)) {
        T* da = zeroed(0);
        for (std::size_t p = 0; p < d.a_at.size(); ++p) {
            const T* bp = bv.data() + d.b_at[p] * sb;
            const T* gp = gy + p * sy;
            T* out = da + d.a_at[p] * sa;
            if (!ta) blas::gemm(false, !tb, d.m, d.k, d.n, T(1), gp, d.n, bp, d.bc, T(1), out, d.ac);
            else blas::gemm(tb, true, d.k, d.m, d.n, T(1), bp, d.bc, gp, d.n, T(1), out, d.ac);
        }
    }
    if (c.wants(1)) {
        T* db = zeroed(1);
        for (std::size_t p = 0; p < d.b_at.size(); ++p) {
            const T* ap = av.data() + d.a_at[p] * sa;
            const T* gp = gy + p * sy;
            T* out = db + d.b_at[p] * sb;
            if (!tb) blas::gemm(!ta, false, d.k, d.n, d.m, T(1), ap, d.ac, gp, d.n, T(1), out, d.bc);
            else blas::gemm(true, ta, d.n, d.k, d.m, T(1), gp, d.n, ap, d.ac, T(1), out, d.bc);
        }
    }
}

template <class T> tensor<T> matmul_nd(const tensor<T>& a, const tensor<T>& b, bool ta, bool tb) {
    const auto& av = a.value();
    const auto& bv = b.value();
    const nd_dims d = nd_check(av, bv, ta, tb);
    tensor<T> out = make_result<T>("matmul", &matmul_nd_backward<T>, {&a, &b});
    node<T>* n = out.node_ptr();
    n->scalar[0] = ta ? T(1) : T(0);
    n->scalar[1] = tb ? T(1) : T(0);
    shape_t ys = d.batch;
    ys.push_back(d.m);
    ys.push_back(d.n);
    n->value.resize(ys);
    const std::size_t sa = d.ar * d.ac, sb = d.br * d.bc, sy = d.m * d.n;
    for (std::size_t p = 0; p < d.a_at.size(); ++p)
        blas::gemm(ta, tb, d.m, d.n, d.k, T(1), av.data() + d.a_at[p] * sa, d.ac, bv.data() + d.b_at[p] * sb, d.bc, T(0),
                   n->value.data() + p * sy, d.n);
    return out;
}

/// Whether the original (fused-SGD-aware) path takes these ranks and batches.
template <class T> bool classic_shapes(const xt::xarray<T>& a, const xt::xarray<T>& b) {
    const std::size_t ra = a.dimension(), rb = b.dimension();
    return (ra == 2 && rb == 2) || (ra == 3 && rb == 2) || (ra == 3 && rb == 3 && a.shape()[0] == b.shape()[0]);
}

}  // namespace

template <class T> tensor<T> matmul(const tensor<T>& a, const tensor<T>& b, bool ta, bool tb) {
    const std::size_t ra = a.dim(), rb = b.dim();
    if (ra == 0 || rb == 0)
        throw shape_error("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                          ": a 0-d operand has no matrix axes; use mul for a scalar product");
    if (ra == 1 || rb == 1) {
        // a vector is a 1-row (left) or 1-column (right) matrix, and its axis is dropped from the result
        if ((ra == 1 && ta) || (rb == 1 && tb))
            throw shape_error("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                              ": a 1-D operand takes no transpose flag");
        const shape_t sa = a.shape(), sb = b.shape();
        const std::size_t ka = ra == 1 ? sa[0] : sa[ta ? ra - 2 : ra - 1];
        const std::size_t kb = rb == 1 ? sb[0] : sb[tb ? rb - 1 : rb - 2];
        if (ka != kb)
            throw shape_error("matmul: shapes " + shape_str(sa) + " and " + shape_str(sb) + ": inner dimensions " +
                              std::to_string(ka) + " and " + std::to_string(kb) + " differ");
        tensor<T> a2 = ra == 1 ? reshape(a, {1, a.size()}) : a;
        tensor<T> b2 = rb == 1 ? reshape(b, {b.size(), 1}) : b;
        tensor<T> y = matmul(a2, b2, ta, tb);
        shape_t s = y.shape();
        if (rb == 1) s.erase(s.end() - 1);
        if (ra == 1) s.erase(s.end() - 1 - (rb == 1 ? 0 : 1));
        return reshape(y, s);
    }
    if (!classic_shapes(a.value(), b.value())) return matmul_nd(a, b, ta, tb);
    const auto& av = a.value();
    const auto& bv = b.value();
    const mm_dims d = mm_check(av, bv, ta, tb);
    tensor<T> out = make_result<T>("matmul", &matmul_backward<T>, {&a, &b});
    node<T>* n = out.node_ptr();
    n->scalar[0] = ta ? T(1) : T(0);
    n->scalar[1] = tb ? T(1) : T(0);
    if (av.dimension() == 3) n->value.resize({d.batch, d.m, d.n});
    else n->value.resize({d.m, d.n});
    for (std::size_t p = 0; p < d.batch; ++p)
        blas::gemm(ta, tb, d.m, d.n, d.k, T(1), av.data() + p * d.ar * d.ac, d.ac,
                   bv.data() + (d.batched_b ? p * d.br * d.bc : 0), d.bc, T(0), n->value.data() + p * d.m * d.n, d.n);
    return out;
}

// ----------------------------------------------------------------- permute
namespace {
// y = x with axes reordered; dx = gy with the inverse order
template <class T> void permute_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const std::size_t r = c.self.n_op_data;
    std::vector<std::size_t> inv(r);
    for (std::size_t i = 0; i < r; ++i) inv[c.self.op_data[i]] = i;
    if (c.create_graph) c.add_graph(0, permute(c.tgy(), axes_t(inv.begin(), inv.end())));
    else c.add(0, xt::transpose(c.gy(), inv));
}
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
    if (n->op_data) std::copy(order.begin(), order.end(), n->op_data);
    shape_t shape(r);
    for (std::size_t i = 0; i < r; ++i) shape[i] = xv.shape()[order[i]];
    n->value.resize(shape);
    xt::noalias(n->value) = xt::transpose(xv, order);
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
}  // namespace

template <class T> tensor<T> reshape(const tensor<T>& x, const shape_t& shape) {
    const auto& xv = x.value();
    const std::size_t count = std::accumulate(shape.begin(), shape.end(), std::size_t(1), std::multiplies<>());
    if (count != xv.size())
        throw shape_error("reshape: cannot reshape " + shape_str(xv.shape()) + " (" + std::to_string(xv.size()) +
                          " elements) into " + shape_str(shape) + " (" + std::to_string(count) + " elements)");
    tensor<T> out = make_result<T>("reshape", &reshape_backward<T>, {&x});
    auto& v = out_value(out);
    v.resize(shape);
    std::copy(xv.data(), xv.data() + xv.size(), v.data());
    return out;
}

// ------------------------------------------------------------------- slice
namespace {
xt::xstrided_slice_vector range_on(std::size_t rank, std::size_t axis, std::size_t begin, std::size_t end) {
    xt::xstrided_slice_vector sv(rank, xt::all());
    sv[axis] = xt::range(begin, end);
    return sv;
}

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
    auto view = xt::strided_view(c.target(in), range_on(xv.dimension(), axis, begin, end));
    xt::noalias(view) += c.gy();
    c.mark(in);
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
    if (n->op_data) {
        n->op_data[0] = ax;
        n->op_data[1] = begin;
        n->op_data[2] = end;
    }
    shape_t shape = to_shape(xv.shape());
    shape[ax] = end - begin;
    n->value.resize(shape);
    xt::noalias(n->value) = xt::strided_view(xv, range_on(xv.dimension(), ax, begin, end));
    return out;
}

// ------------------------------------------------------------ index_select
namespace {
// y[k] = x[idx[k]] (rows); dx[idx[k]] += gy[k] (scatter-add)
template <class T> void index_select_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const auto& xv = c.x(0);
    const std::size_t rows = xv.shape()[0], row = rows ? xv.size() / rows : 0, count = c.self.n_op_data;
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
    tensor<T> out = make_result<T>("index_select", &index_select_backward<T>, {&x}, indices.size());
    node<T>* n = out.node_ptr();
    if (n->op_data) std::copy(indices.begin(), indices.end(), n->op_data);
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
            else c.add(i, xt::strided_view(c.gy(), range_on(xv.dimension(), axis, offset, offset + len)));
        }
        offset += len;
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
    if (n->op_data) n->op_data[0] = ax;
    n->value.resize(shape);
    std::size_t offset = 0;
    for (const auto& x : xs) {
        const std::size_t len = x.value().shape()[ax];
        auto view = xt::strided_view(n->value, range_on(rank, ax, offset, offset + len));
        xt::noalias(view) = x.value();
        offset += len;
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
}  // namespace

template <class T> tensor<T> broadcast_to(const tensor<T>& x, const shape_t& shape) {
    const auto& xv = x.value();
    if (!detail::shapes_equal(detail::broadcast_shape("broadcast_to", xv.shape(), shape), shape))
        throw shape_error("broadcast_to: shape " + shape_str(xv.shape()) + " cannot be broadcast to " +
                          shape_str(shape));
    tensor<T> out = make_result<T>("broadcast_to", &broadcast_to_backward<T>, {&x});
    detail::broadcast_back<T>(xv.data(), xv.shape(), out_value(out), detail::xshape(shape.begin(), shape.end()), false,
                              T(1));
    return out;
}

template <class T> tensor<T> sum_to(const tensor<T>& x, const shape_t& shape) {
    const auto& xv = x.value();
    if (!detail::shapes_equal(detail::broadcast_shape("sum_to", xv.shape(), shape), xv.shape()))
        throw shape_error("sum_to: shape " + shape_str(xv.shape()) + " cannot be summed down to " + shape_str(shape));
    tensor<T> out = make_result<T>("sum_to", &sum_to_backward<T>, {&x});
    detail::sum_to<T>(xv, out_value(out), typename xt::xarray<T>::shape_type(shape.begin(), shape.end()), false);
    return out;
}

#define TAPEGRAD_LINALG(T)                                                               \
    template tensor<T> matmul(const tensor<T>&, const tensor<T>&, bool, bool);          \
    template tensor<T> transpose(const tensor<T>&);                                     \
    template tensor<T> permute(const tensor<T>&, const axes_t&);                        \
    template tensor<T> reshape(const tensor<T>&, const shape_t&);                       \
    template tensor<T> slice(const tensor<T>&, int, std::size_t, std::size_t);          \
    template tensor<T> index_select(const tensor<T>&, const std::vector<std::size_t>&); \
    template tensor<T> concat(const std::vector<tensor<T>>&, int);                      \
    template tensor<T> stack(const std::vector<tensor<T>>&, int);                       \
    template tensor<T> broadcast_to(const tensor<T>&, const shape_t&);                  \
    template tensor<T> sum_to(const tensor<T>&, const shape_t&);
TAPEGRAD_LINALG(float)
TAPEGRAD_LINALG(double)

}  // namespace tapegrad
