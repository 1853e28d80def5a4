// matmul through BLAS gemm, in one file: the shape checks, the forward (2-D and
// 3-D with a shared or batched B; 1-D vectors; N-D stacks with broadcast batch
// axes), their replay kernels, the SGD step a compiled step fuses into a weight
// gradient, and the backward rules,
// whose create_graph branch records the same formulas as matmuls (second order).

#include <algorithm>
#include <numeric>

#include "autograd/detail/op_drivers.hpp"
#include "autograd/kernels/blas.hpp"

namespace tapegrad {

using detail::make_result;
using detail::to_shape;

namespace {

// ------------------------------------------------------------ shape checks
struct mm_dims {
    std::size_t batch, m, n, k, ar, ac, br, bc;
    bool batched_b;
};

// The error of mm_check, out of line: the check runs on every forward and backward.
template <class T>
[[noreturn, gnu::cold, gnu::noinline]] void mm_fail(const xt::xarray<T>& a, const xt::xarray<T>& b, bool ta, bool tb) {
    const auto &sa = a.shape(), &sb = b.shape();
    const std::string head = "matmul: shapes " + shape_str(sa) + " and " + shape_str(sb) + " (transpose_a=" +
                             (ta ? "true" : "false") + ", transpose_b=" + (tb ? "true" : "false") + "): ";
    const std::size_t ra = sa.size(), rb = sb.size();
    if (!((ra == 2 && rb == 2) || (ra == 3 && rb == 3) || (ra == 3 && rb == 2)))
        throw shape_error(head + "supported ranks are 2-D x 2-D, 3-D x 3-D and 3-D x 2-D");
    if (rb == 3 && sb[0] != sa[0])
        throw shape_error(head + "batch sizes " + std::to_string(sa[0]) + " and " + std::to_string(sb[0]) + " differ");
    const std::size_t k = ta ? sa[ra - 2] : sa[ra - 1], kb = tb ? sb[rb - 1] : sb[rb - 2];
    throw shape_error(head + "inner dimensions " + std::to_string(k) + " and " + std::to_string(kb) + " differ");
}

template <class T> mm_dims mm_check(const xt::xarray<T>& a, const xt::xarray<T>& b, bool ta, bool tb) {
    const auto &sa = a.shape(), &sb = b.shape();
    const std::size_t ra = sa.size(), rb = sb.size();
    if (!((ra == 2 && rb == 2) || (ra == 3 && rb == 3) || (ra == 3 && rb == 2)) || (rb == 3 && sb[0] != sa[0]))
        mm_fail(a, b, ta, tb);
    mm_dims d{};
    d.batch = ra == 3 ? sa[0] : 1;
    d.batched_b = rb == 3;
    d.ar = sa[ra - 2];
    d.ac = sa[ra - 1];
    d.br = sb[rb - 2];
    d.bc = sb[rb - 1];
    d.m = ta ? d.ac : d.ar;
    d.k = ta ? d.ar : d.ac;
    d.n = tb ? d.br : d.bc;
    if (d.k != (tb ? d.bc : d.br)) mm_fail(a, b, ta, tb);
    return d;
}

/// Whether the 2-D/3-D path (the one that can take a fused SGD step) takes these ranks and batches.
template <class T> bool classic_shapes(const xt::xarray<T>& a, const xt::xarray<T>& b) {
    const std::size_t ra = a.dimension(), rb = b.dimension();
    return (ra == 2 && rb == 2) || (ra == 3 && rb == 2) || (ra == 3 && rb == 3 && a.shape()[0] == b.shape()[0]);
}

// N-D stacks of matrices (issue #9) whose leading (batch) axes broadcast as NumPy's:
// one gemm per output batch, each operand read in place at its broadcast batch (no
// copies, no materialised transposes).
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


// Backward rules and kernels, defined below the forward.
template <class T> void matmul_backward(backward_ctx<T>& c);
template <class T> void matmul_kernel(node<T>& n, const grad_target<T>* out);
template <class T> void matmul_nd_backward(backward_ctx<T>& c);

// ---------------------------------------------------------- forward, N-D
// y[p] = op(A[a_at p]) op(B[b_at p]), one gemm per output batch
template <class T> void matmul_nd_forward(node<T>& n, node<T>* const* in) {
    const bool ta = n.scalar[0] != T(0), tb = n.scalar[1] != T(0);
    const auto& av = in[0]->value;
    const auto& bv = in[1]->value;
    const nd_dims d = nd_check(av, bv, ta, tb);
    shape_t ys = d.batch;
    ys.push_back(d.m);
    ys.push_back(d.n);
    n.value.resize(ys);
    const std::size_t sa = d.ar * d.ac, sb = d.br * d.bc, sy = d.m * d.n;
    for (std::size_t p = 0; p < d.a_at.size(); ++p)
        blas::gemm(ta, tb, d.m, d.n, d.k, T(1), av.data() + d.a_at[p] * sa, d.ac, bv.data() + d.b_at[p] * sb, d.bc, T(0),
                   n.value.data() + p * sy, d.n);
}

template <class T> tensor<T> matmul_nd(const tensor<T>& a, const tensor<T>& b, bool ta, bool tb) {
    nd_check(a.value(), b.value(), ta, tb);  // throws before anything is recorded
    tensor<T> out = make_result<T>("matmul", &matmul_nd_backward<T>, {&a, &b});
    node<T>* n = out.node_ptr();
    n->scalar[0] = ta ? T(1) : T(0);
    n->scalar[1] = tb ? T(1) : T(0);
    n->forward = &matmul_nd_forward<T>;
    node<T>* const in[2] = {a.node_ptr(), b.node_ptr()};
    matmul_nd_forward(*n, in);
    return out;
}

// y = op(A) op(B) for 2-D x 2-D, 3-D x 2-D (shared B) and 3-D x 3-D (batched B)
template <class T> void matmul_forward(node<T>& n, node<T>* const* in) {
    const bool ta = n.scalar[0] != T(0), tb = n.scalar[1] != T(0);
    const auto& av = in[0]->value;
    const auto& bv = in[1]->value;
    const mm_dims d = mm_check(av, bv, ta, tb);
    if (av.dimension() == 3) detail::fit(n.value, detail::xshape{d.batch, d.m, d.n});
    else detail::fit(n.value, detail::xshape{d.m, d.n});
    for (std::size_t p = 0; p < d.batch; ++p)
        blas::gemm(ta, tb, d.m, d.n, d.k, T(1), av.data() + p * d.ar * d.ac, d.ac,
                   bv.data() + (d.batched_b ? p * d.br * d.bc : 0), d.bc, T(0), n.value.data() + p * d.m * d.n, d.n);
}


}  // namespace

// ------------------------------------------------------------ forward
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
    mm_check(a.value(), b.value(), ta, tb);  // throws before anything is recorded
    tensor<T> out = make_result<T>("matmul", &matmul_backward<T>, {&a, &b});
    node<T>* n = out.node_ptr();
    n->scalar[0] = ta ? T(1) : T(0);
    n->scalar[1] = tb ? T(1) : T(0);
    n->forward = &matmul_forward<T>;
    n->backward_kernel = &matmul_kernel<T>;
    node<T>* const in[2] = {a.node_ptr(), b.node_ptr()};
    matmul_forward(*n, in);
    return out;
}

namespace detail {
template <class T> bool fusable_matmul(const node<T>& n) { return n.forward == &matmul_forward<T>; }
template bool fusable_matmul(const node<float>&);
template bool fusable_matmul(const node<double>&);
}  // namespace detail

namespace {

// ---------------------------------------- SGD fused into the weight-gradient gemm
// A compiled step's fuse_sgd pass (autograd/compile.cpp) hands this matmul a weight
// whose only reader it is: in backward() the gemm that computes dL/dw writes
// w = decay * w - lr * dL/dw in place, unless w already holds a gradient or has hooks
// (backward_ctx::targets decides: a target with sgd set).

// Input i's gemms' alpha and first beta: 1 and 0 or 1 into a gradient buffer (beta 1 if
// it holds this pass's gradient), or -lr and decay into the fused weight's value.
template <class T> std::pair<T, T> mm_scales(const node<T>& n, const grad_target<T>& out) {
    if (!out.sgd) return {T(1), out.add ? T(1) : T(0)};
    const fused_sgd_step<T>& f = *n.fused_step;
    *f.taken = 1;
    return {-f.lr, f.decay};
}

// ------------------------------------------------------------ backward, 2-D / 3-D
// y = op(A) op(B). Reverse: d op(A) = gy op(B)^T and d op(B) = op(A)^T gy, each
// transposed back when its operand was used transposed.
template <class T> void matmul_kernel(node<T>& n, const grad_target<T>* out) {
    const bool ta = n.scalar[0] != T(0), tb = n.scalar[1] != T(0);
    const auto& av = n.inputs[0]->value;
    const auto& bv = n.inputs[1]->value;
    const mm_dims d = mm_check(av, bv, ta, tb);
    const T* gy = n.grad.data();
    auto grad_a = [&] {
        const auto [alpha, beta] = mm_scales(n, out[0]);
        for (std::size_t p = 0; p < d.batch; ++p) {
            const T* bp = bv.data() + (d.batched_b ? p * d.br * d.bc : 0);
            const T* gp = gy + p * d.m * d.n;
            T* o = out[0].data + p * d.ar * d.ac;
            if (!ta) blas::gemm(false, !tb, d.m, d.k, d.n, alpha, gp, d.n, bp, d.bc, beta, o, d.ac);
            else blas::gemm(tb, true, d.k, d.m, d.n, alpha, bp, d.bc, gp, d.n, beta, o, d.ac);
        }
    };
    auto grad_b = [&] {
        auto [alpha, beta] = mm_scales(n, out[1]);
        for (std::size_t p = 0; p < d.batch; ++p) {
            const T* ap = av.data() + p * d.ar * d.ac;
            const T* gp = gy + p * d.m * d.n;
            T* o = out[1].data + (d.batched_b ? p * d.br * d.bc : 0);
            if (!tb) blas::gemm(!ta, false, d.k, d.n, d.m, alpha, ap, d.ac, gp, d.n, beta, o, d.bc);
            else blas::gemm(true, ta, d.n, d.k, d.m, alpha, gp, d.n, ap, d.ac, beta, o, d.bc);
            if (!d.batched_b) beta = T(1);  // a shared B sums its gradient over the batch
        }
    };
    // A fused operand is overwritten with its new value, so the other operand's
    // gradient, which reads it, goes first; at most one of the two is fused.
    if (out[0].sgd) {
        if (out[1].data) grad_b();
        grad_a();
        return;
    }
    if (out[0].data) grad_a();
    if (out[1].data) grad_b();
}

template <class T> void matmul_backward(backward_ctx<T>& c) {
    const bool ta = c.self.scalar[0] != T(0), tb = c.self.scalar[1] != T(0);
    if (c.create_graph) {
        tensor<T> a = c.tx(0), b = c.tx(1), gy = c.tgy();
        if (c.wants(0)) {
            tensor<T> d_op_a = matmul(gy, b, false, !tb);
            c.add_graph(0, ta ? transpose(d_op_a) : d_op_a);
        }
        if (c.wants(1)) c.add_graph(1, tb ? matmul(gy, a, true, ta) : matmul(a, gy, !ta, false));
        return;
    }
    c.run_kernel();
}


// ------------------------------------------------------------ backward, N-D
// The 2-D rule per batch; an operand broadcast over batches accumulates its
// gradient over them (gemm beta = 1).
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

}  // namespace

template tensor<float> matmul(const tensor<float>&, const tensor<float>&, bool, bool);
template tensor<double> matmul(const tensor<double>&, const tensor<double>&, bool, bool);

}  // namespace tapegrad
