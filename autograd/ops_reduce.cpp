// Reductions (sum, mean, max, min, logsumexp) and the normalising activations
// (softmax, log_softmax). Reductions are computed through detail::sum_to, the same
// loop that reduces broadcast gradients.

#include <cmath>
#include <limits>
#include <numeric>

#include <xtensor/xadapt.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xreducer.hpp>

#include "autograd/detail/rules.hpp"

namespace tapegrad {

using detail::make_result;
using detail::to_shape;
using xshape = typename xt::xarray<double>::shape_type;

namespace {

/// Which axes an op reduces: `axes` normalised; empty means all.
std::vector<bool> reduced_axes(const char* op, const std::vector<int>& axes, std::size_t rank) {
    std::vector<bool> mask(rank, axes.empty());
    for (int a : axes) mask[detail::norm_axis(op, a, rank)] = true;
    return mask;
}

template <class S, class M> xshape keep_shape(const S& xs, const M& mask) {
    xshape k(xs.begin(), xs.end());
    for (std::size_t i = 0; i < k.size(); ++i)
        if (mask[i]) k[i] = 1;
    return k;
}

template <class S, class M> shape_t out_shape(const S& xs, const M& mask, bool keepdims) {
    shape_t s;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        if (!mask[i]) s.push_back(xs[i]);
        else if (keepdims) s.push_back(1);
    }
    return s;
}

/// The reduced-axes mask is stored in aux (one entry per input axis).
template <class T> xshape node_keep_shape(const backward_ctx<T>& c) { return keep_shape(c.x(0).shape(), c.self.aux); }

template <class T> auto keep_view(const xt::xarray<T>& a, const xshape& keep) {
    return xt::adapt(a.data(), a.size(), xt::no_ownership(), keep);
}

// ---------------------------------------------------------------- sum
// y = sum over axes; dx = gy broadcast back over the reduced axes
template <class T> void sum_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const xshape keep = node_keep_shape(c);
    const auto& xs = c.x(0).shape();
    if (c.create_graph) c.add_graph(0, broadcast_to(reshape(c.tgy(), to_shape(keep)), to_shape(xs)));
    else c.add(0, xt::broadcast(keep_view(c.gy(), keep), xs));
}

// ------------------------------------------------------------ max / min
// y = max (or min) over axes; dx = gy at the extreme elements, shared equally by ties
template <class T> void extreme_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const xshape keep = node_keep_shape(c);
    const auto& xv = c.x(0);
    xt::xarray<T> hit = xt::cast<T>(xt::equal(xv, keep_view(c.y(), keep)));
    xt::xarray<T> ties;
    detail::sum_to<T>(hit, ties, keep, false);
    if (c.create_graph) {
        tensor<T> share = reshape(c.tgy(), to_shape(keep)) / tensor<T>(std::move(ties));
        c.add_graph(0, share * tensor<T>(std::move(hit)));
    } else {
        c.add(0, hit * (keep_view(c.gy(), keep) / ties));
    }
}

template <class T>
tensor<T> reduce_op(const char* op, backward_fn<T> bw, const tensor<T>& x, const std::vector<int>& axes, bool keepdims,
                    bool is_max) {
    const auto& xv = x.value();
    const std::vector<bool> mask = reduced_axes(op, axes, xv.dimension());
    const xshape keep = keep_shape(xv.shape(), mask);
    tensor<T> out = make_result<T>(op, bw, {&x}, xv.dimension());
    node<T>* n = out.node_ptr();
    if (n->aux)
        for (std::size_t i = 0; i < mask.size(); ++i) n->aux[i] = mask[i];
    if (bw == &sum_backward<T>) {
        detail::sum_to<T>(xv, n->value, keep, false);
    } else {
        if (xv.size() == 0) throw shape_error(std::string(op) + ": reduction of an empty tensor of shape " + shape_str(xv.shape()));
        std::vector<std::size_t> ax;
        for (std::size_t i = 0; i < mask.size(); ++i)
            if (mask[i]) ax.push_back(i);
        if (is_max) n->value = xt::amax(xv, ax, xt::keep_dims | xt::evaluation_strategy::immediate);
        else n->value = xt::amin(xv, ax, xt::keep_dims | xt::evaluation_strategy::immediate);
    }
    n->value.reshape(out_shape(xv.shape(), mask, keepdims));
    return out;
}

}  // namespace

template <class T> tensor<T> sum(const tensor<T>& x, const std::vector<int>& axes, bool keepdims) {
    return reduce_op<T>("sum", &sum_backward<T>, x, axes, keepdims, false);
}
template <class T> tensor<T> sum(const tensor<T>& x) { return sum(x, {}, false); }

template <class T> tensor<T> mean(const tensor<T>& x, const std::vector<int>& axes, bool keepdims) {
    const auto mask = reduced_axes("mean", axes, x.dim());
    std::size_t count = 1;
    for (std::size_t i = 0; i < mask.size(); ++i)
        if (mask[i]) count *= x.value().shape()[i];
    // mean = sum / count (count 0 gives NaN, as in PyTorch)
    return mul_scalar(sum(x, axes, keepdims), T(1) / T(count));
}
template <class T> tensor<T> mean(const tensor<T>& x) { return mean(x, {}, false); }

template <class T> tensor<T> max(const tensor<T>& x, const std::vector<int>& axes, bool keepdims) {
    return reduce_op<T>("max", &extreme_backward<T>, x, axes, keepdims, true);
}
template <class T> tensor<T> max(const tensor<T>& x) { return max(x, {}, false); }
template <class T> tensor<T> min(const tensor<T>& x, const std::vector<int>& axes, bool keepdims) {
    return reduce_op<T>("min", &extreme_backward<T>, x, axes, keepdims, false);
}
template <class T> tensor<T> min(const tensor<T>& x) { return min(x, {}, false); }

// --------------------------------------------------------------- logsumexp
namespace {

/// Row maximum along one axis with keepdims; -inf/+inf rows become 0 so x - m stays finite.
template <class T> xt::xarray<T> safe_max(const xt::xarray<T>& x, std::size_t axis) {
    if (x.shape()[axis] == 0) {
        xshape keep(x.shape().begin(), x.shape().end());
        keep[axis] = 1;
        return xt::zeros<T>(keep);
    }
    xt::xarray<T> m = xt::amax(x, {axis}, xt::keep_dims | xt::evaluation_strategy::immediate);
    for (auto& v : m)
        if (std::isinf(v)) v = T(0);
    return m;
}

/// log(sum(exp(x))) along axis, keepdims.
template <class T> xt::xarray<T> lse_keep(const xt::xarray<T>& x, std::size_t axis) {
    xt::xarray<T> m = safe_max(x, axis);
    xt::xarray<T> e = xt::exp(x - m);
    xt::xarray<T> s;
    detail::sum_to<T>(e, s, m.shape(), false);
    xt::xarray<T> out = m + xt::log(s);
    return out;
}

// y = log sum exp x; dx = gy exp(x - y) = gy softmax(x)
template <class T> void logsumexp_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const std::size_t axis = c.self.aux[0];
    xshape keep(c.x(0).shape().begin(), c.x(0).shape().end());
    keep[axis] = 1;
    if (c.create_graph) {
        shape_t k = to_shape(keep);
        c.add_graph(0, reshape(c.tgy(), k) * exp(c.tx(0) - reshape(c.ty(), k)));
    } else {
        c.add(0, keep_view(c.gy(), keep) * xt::exp(c.x(0) - keep_view(c.y(), keep)));
    }
}

// y = e^x / sum e^x; dx = y (gy - sum(gy y))
template <class T> void softmax_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const std::size_t axis = c.self.aux[0];
    if (c.create_graph) {
        tensor<T> y = c.ty(), gy = c.tgy();
        c.add_graph(0, y * (gy - sum(gy * y, {int(axis)}, true)));
        return;
    }
    xt::xarray<T> gyy = c.gy() * c.y();
    xshape keep(gyy.shape().begin(), gyy.shape().end());
    keep[axis] = 1;
    xt::xarray<T> dot;
    detail::sum_to<T>(gyy, dot, keep, false);
    c.add(0, c.y() * (c.gy() - dot));
}

// y = x - logsumexp(x); dx = gy - e^y sum(gy)
template <class T> void log_softmax_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const std::size_t axis = c.self.aux[0];
    if (c.create_graph) {
        tensor<T> gy = c.tgy();
        c.add_graph(0, gy - exp(c.ty()) * sum(gy, {int(axis)}, true));
        return;
    }
    xshape keep(c.gy().shape().begin(), c.gy().shape().end());
    keep[axis] = 1;
    xt::xarray<T> total;
    detail::sum_to<T>(c.gy(), total, keep, false);
    c.add(0, c.gy() - xt::exp(c.y()) * total);
}

template <class T>
tensor<T> along_axis(const char* op, backward_fn<T> bw, const tensor<T>& x, int axis, std::size_t& ax) {
    ax = detail::norm_axis(op, axis, x.dim());
    tensor<T> out = make_result<T>(op, bw, {&x}, 1);
    if (out.node_ptr()->aux) out.node_ptr()->aux[0] = ax;
    return out;
}

}  // namespace

template <class T> tensor<T> logsumexp(const tensor<T>& x, int axis, bool keepdims) {
    const auto& xv = x.value();
    std::size_t ax;
    tensor<T> out = along_axis<T>("logsumexp", &logsumexp_backward<T>, x, axis, ax);
    auto& v = out.node_ptr()->value;
    v = lse_keep(xv, ax);
    if (!keepdims) {
        shape_t s = to_shape(xv.shape());
        s.erase(s.begin() + static_cast<std::ptrdiff_t>(ax));
        v.reshape(s);
    }
    return out;
}

template <class T> tensor<T> softmax(const tensor<T>& x, int axis) {
    const auto& xv = x.value();
    std::size_t ax;
    tensor<T> out = along_axis<T>("softmax", &softmax_backward<T>, x, axis, ax);
    auto& v = out.node_ptr()->value;
    v.resize(xv.shape());
    xt::noalias(v) = xt::exp(xv - safe_max(xv, ax));
    xt::xarray<T> s;
    xshape keep(xv.shape().begin(), xv.shape().end());
    keep[ax] = 1;
    detail::sum_to<T>(v, s, keep, false);
    xt::noalias(v) = v / s;
    return out;
}

template <class T> tensor<T> log_softmax(const tensor<T>& x, int axis) {
    const auto& xv = x.value();
    std::size_t ax;
    tensor<T> out = along_axis<T>("log_softmax", &log_softmax_backward<T>, x, axis, ax);
    auto& v = out.node_ptr()->value;
    v.resize(xv.shape());
    xt::noalias(v) = xv - lse_keep(xv, ax);
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
