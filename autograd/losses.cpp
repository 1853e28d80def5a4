// Losses. Most are composed from the differentiable ops, so that every loss has
// first and second derivatives for free; the only new primitive for them is `pick`
// (y[i] = x[i, label[i]]). The two losses of every training loop, mse and
// cross-entropy with labels, are single fused nodes when reduced (one pass
// forward, one backward, instead of four and five nodes), each with a backward on
// values for speed and one with ops, so they stay twice differentiable; both are
// native ops (a custom op's dispatch cost more than the loss on small nets).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <xtensor/xadapt.hpp>

#include "autograd/detail/lines.hpp"
#include "autograd/detail/op_drivers.hpp"
#include "autograd/detail/trace.hpp"
#include "autograd/function.hpp"
#include "autograd/one_hot.hpp"

namespace tapegrad {

namespace {

template <class T> tensor<T> reduce(const tensor<T>& per_element, reduction r) {
    switch (r) {
    case reduction::mean: return mean(per_element);
    case reduction::sum: return sum(per_element);
    case reduction::none: return per_element;
    }
    return per_element;
}

template <class T> void check_same(const char* op, const tensor<T>& pred, const tensor<T>& target) {
    if (!detail::shapes_equal(pred.value().shape(), target.value().shape()))
        throw shape_error(std::string(op) + ": prediction shape " + shape_str(pred.value().shape()) +
                          " and target shape " + shape_str(target.value().shape()) +
                          " differ; reshape the target to the prediction's shape");
}

template <class T> void check_labels(const char* op, const tensor<T>& scores, const std::vector<std::size_t>& labels) {
    const auto& s = scores.value().shape();
    if (s.size() != 2)
        throw shape_error(std::string(op) + ": expects scores of shape [N, C], got " + shape_str(s));
    if (labels.size() != s[0])
        throw shape_error(std::string(op) + ": " + std::to_string(labels.size()) + " labels for scores of shape " +
                          shape_str(s) + "; give one label per row");
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels[i] >= s[1])
            throw std::out_of_range(std::string(op) + ": label " + std::to_string(labels[i]) + " at row " +
                                    std::to_string(i) + " is out of range for " + std::to_string(s[1]) +
                                    " classes (labels must be in 0.." + std::to_string(s[1] - 1) + ")");
}

// y[i] = x[i, label_i]; dx[i, label_i] += gy[i]
template <class T> void pick_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const auto& xv = c.x(0);
    const std::size_t rows = xv.shape()[0], cols = xv.shape()[1];
    if (c.create_graph) {
        c.add_graph(0, reshape(c.tgy(), {rows, 1}) * tensor<T>(one_hot<T>(c.self.op_data, rows, cols)));
        return;
    }
    node<T>* in = c.input(0);
    bool had;
    T* g = c.grad_data(in, had);
    if (!had) std::fill(g, g + rows * cols, T(0));
    for (std::size_t i = 0; i < rows; ++i) g[i * cols + c.self.op_data[i]] += c.gy().data()[i];
    c.mark(in);
}

// replay: the labels of this call (detail::store_indices), checked, then picked
template <class T> void pick_forward(node<T>& n, node<T>* const* in) {
    const auto& labels = detail::stored_indices_source(n);
    const auto& xv = in[0]->value;
    const std::size_t rows = labels.size(), cols = xv.shape()[1];
    for (std::size_t i = 0; i < rows; ++i)
        if (labels[i] >= cols)
            throw std::out_of_range("pick: label " + std::to_string(labels[i]) + " at row " + std::to_string(i) +
                                    " is out of range for " + std::to_string(cols) + " classes (labels must be in 0.." +
                                    std::to_string(cols - 1) + ")");
    std::copy(labels.begin(), labels.end(), n.op_data);
    for (std::size_t i = 0; i < rows; ++i) n.value.data()[i] = xv.data()[i * cols + labels[i]];
}

template <class T> tensor<T> pick(const tensor<T>& x, const std::vector<std::size_t>& labels) {
    const auto& xv = x.value();
    const std::size_t rows = xv.shape()[0], cols = xv.shape()[1];
    detail::check_traced_labels<T>(&labels, "pick");  // the replay reads them through the pointer
    tensor<T> out = detail::make_result<T>("pick", &pick_backward<T>, {&x}, rows + 1);
    node<T>* n = out.node_ptr();
    detail::store_indices(n, labels);
    n->forward = &pick_forward<T>;
    n->value.resize({rows});
    for (std::size_t i = 0; i < rows; ++i) n->value.data()[i] = xv.data()[i * cols + labels[i]];
    return out;
}

// ----------------------------------------------------------- fused mse
// A native op, not a custom one: on small nets its dispatch through custom_op cost
// more than the loss (about 500 instructions a step on the tiny 4-16-3 net).
// The scale (1 / n for the mean, 1 for the sum) is scalar[0].

// y = s sum (p - t)^2, also the replay kernel
template <class T> void mse_forward(node<T>& n, node<T>* const* in) {
    const T* p = in[0]->value.data();
    const T* t = in[1]->value.data();
    const std::size_t size = in[0]->value.size();
    T acc[4] = {};
    std::size_t j = 0;
    for (; j + 4 <= size; j += 4)
        for (std::size_t k = 0; k < 4; ++k) {
            const T d = p[j + k] - t[j + k];
            acc[k] += d * d;
        }
    for (; j < size; ++j) {
        const T d = p[j] - t[j];
        acc[0] += d * d;
    }
    detail::fit(n.value, detail::xshape{});
    n.value.data()[0] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) * n.scalar[0];
}

template <class T> void mse_kernel(node<T>& n, const grad_target<T>* out);

// dp = 2 s (p - t) gy, dt = -dp
template <class T> void mse_backward(backward_ctx<T>& c) {
    const T scale = c.self.scalar[0];
    if (c.create_graph) {  // the same with ops: twice differentiable
        tensor<T> d = mul_scalar(c.tx(0) - c.tx(1), T(2) * scale) * c.tgy();
        if (c.wants(0)) c.add_graph(0, d);
        if (c.wants(1)) c.add_graph(1, -d);
        return;
    }
    c.run_kernel();
}

template <class T> void mse_kernel(node<T>& n, const grad_target<T>* out) {
    const T kg = T(2) * n.scalar[0] * n.grad.data()[0];
    const T* p = n.inputs[0]->value.data();
    const T* t = n.inputs[1]->value.data();
    const std::size_t size = n.inputs[0]->value.size();
    for (std::size_t i = 0; i < 2; ++i) {
        T* g = out[i].data;
        if (!g) continue;
        const bool had = out[i].add;
        const T sign = i == 0 ? kg : -kg;
        for (std::size_t j = 0; j < size; ++j) {
            const T d = sign * (p[j] - t[j]);
            g[j] = had ? g[j] + d : d;
        }
    }
}

template <class T> tensor<T> fused_mse(const tensor<T>& pred, const tensor<T>& target, T scale) {
    tensor<T> out = detail::make_result<T>("mse", &mse_backward<T>, {&pred, &target});
    node<T>* n = out.node_ptr();
    n->scalar[0] = scale;
    n->forward = &mse_forward<T>;
    n->backward_kernel = &mse_kernel<T>;
    node<T>* const in[2] = {pred.node_ptr(), target.node_ptr()};
    mse_forward(*n, in);
    return out;
}

}  // namespace

// ------------------------------------------------- class-label helpers
// (issue #9) Labels over any positions, class weights, ignore_index; used by the
// nll and cross_entropy overloads that take class_loss_options.
namespace {

/// Scores [N, C] or [N, C, d1, ...] as [M, C] with classes last, M = N d1 ...
template <class T> tensor<T> classes_last(const char* op, const tensor<T>& x, std::size_t n_labels) {
    const shape_t s = x.shape();
    if (s.size() < 2)
        throw shape_error(std::string(op) + ": expects scores of shape [N, C] or [N, C, d1, ...], got " + shape_str(s));
    const std::size_t m = s[1] ? x.size() / s[1] : 0;
    if (n_labels != m)
        throw shape_error(std::string(op) + ": " + std::to_string(n_labels) + " labels for scores of shape " +
                          shape_str(s) + "; give one label per position, " + std::to_string(m) +
                          " in all (N, d1, ... flattened row-major)");
    if (s.size() == 2) return x;
    std::vector<std::size_t> perm{0};
    for (std::size_t i = 2; i < s.size(); ++i) perm.push_back(i);
    perm.push_back(1);
    return reshape(permute(x, axes_t(perm.begin(), perm.end())), {m, s[1]});
}

/// The shape of a per-position loss: scores' shape without the class axis.
shape_t positions_shape(const shape_t& s) {
    shape_t out{s[0]};
    out.insert(out.end(), s.begin() + 2, s.end());
    return out;
}

/// Per-position class weights (0 where ignored) and the labels with ignored ones made safe (0).
template <class T> struct class_picks {
    std::vector<std::size_t> labels;
    xt::xarray<T> w;        // [M]
    xt::xarray<T> kept;     // [M]: 0 where ignored, else 1
    T weight_sum = 0;
};

template <class T>
class_picks<T> picks(const char* op, const std::vector<std::size_t>& labels, std::size_t classes,
                     const class_loss_options& o) {
    if (!o.weight.empty() && o.weight.size() != classes)
        throw shape_error(std::string(op) + ": " + std::to_string(o.weight.size()) + " class weights for " +
                          std::to_string(classes) + " classes; give one weight per class");
    class_picks<T> p;
    p.labels.resize(labels.size());
    p.w.resize({labels.size()});
    p.kept.resize({labels.size()});
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const bool ignored = o.ignore_index >= 0 && labels[i] == static_cast<std::size_t>(o.ignore_index);
        if (!ignored && labels[i] >= classes)
            throw std::out_of_range(std::string(op) + ": label " + std::to_string(labels[i]) + " at position " +
                                    std::to_string(i) + " is out of range for " + std::to_string(classes) +
                                    " classes (labels must be in 0.." + std::to_string(classes - 1) +
                                    " or equal ignore_index " + std::to_string(o.ignore_index) + ")");
        p.labels[i] = ignored ? 0 : labels[i];
        p.kept(i) = ignored ? T(0) : T(1);
        p.w(i) = ignored ? T(0) : (o.weight.empty() ? T(1) : T(o.weight[labels[i]]));
        p.weight_sum += p.w(i);
    }
    return p;
}

// per-position -w_i lp[i, label_i]; mean divides by sum w_i over kept positions (as PyTorch)
template <class T>
tensor<T> weighted_nll(const tensor<T>& lp2, const class_picks<T>& p, reduction r, const shape_t& none_shape) {
    tensor<T> per = -pick(lp2, p.labels) * tensor<T>(p.w);
    switch (r) {
    case reduction::none: return reshape(per, none_shape);
    case reduction::sum: return sum(per);
    case reduction::mean: break;
    }
    return mul_scalar(sum(per), T(1) / p.weight_sum);  // 0 / 0 = NaN when all are ignored, as PyTorch
}

}  // namespace

// ====================================================== cross_entropy
// Every path of cross_entropy is here: with labels and a reduction, one fused node
// (forward; backward; its create_graph branch records the same formula with ops,
// so it is twice differentiable); without reduction, with class_loss_options and
// with soft targets, composed from recorded ops (log_softmax, pick, sum).
namespace {

// A native op, as mse: labels in op_data (detail::store_indices, so a compiled step's
// replay reads each call's), the scale (1 / rows for the mean) in scalar[0], and
// softmax(x) in pass_grad, the slot's scratch, for the backward.

// y = s sum_i (logsumexp(x_i) - x_i[label_i]); p = softmax(x) into probs (a row at a
// time into one row when no backward will read it)
template <class T>
void ce_fill(node<T>& n, const xt::xarray<T>& xv, const std::vector<std::size_t>& labels, xt::xarray<T>& probs,
             bool all_rows) {
    const std::size_t rows = xv.shape()[0], cols = xv.shape()[1];
    if (labels.size() != rows)  // a compiled step's replay reaches here without check_labels
        throw shape_error("cross_entropy: " + std::to_string(labels.size()) + " labels for scores of shape " +
                          shape_str(xv.shape()));
    for (std::size_t i = 0; i < rows; ++i)
        if (labels[i] >= cols)
            throw std::out_of_range("cross_entropy: label " + std::to_string(labels[i]) + " at row " +
                                    std::to_string(i) + " is out of range for " + std::to_string(cols) +
                                    " classes (labels must be in 0.." + std::to_string(cols - 1) + ")");
    if (all_rows) detail::fit(probs, xv.shape());
    else detail::fit(probs, detail::xshape{cols});
    T total = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        const T* x = xv.data() + i * cols;
        T* p = all_rows ? probs.data() + i * cols : probs.data();
        const T m = detail::safe_max(x, cols, detail::unit{});
        const T e = detail::exp_shifted(x, m, p, cols, detail::unit{});
        total += m + std::log(e) - x[labels[i]];
        const T inv = T(1) / e;
        for (std::size_t j = 0; j < cols; ++j) p[j] *= inv;
    }
    detail::fit(n.value, detail::xshape{});
    n.value.data()[0] = total * n.scalar[0];
}

// replay: this call's labels, checked by ce_fill, then kept for the backward
template <class T> void ce_forward(node<T>& n, node<T>* const* in) {
    const auto& labels = detail::stored_indices_source(n);
    ce_fill(n, in[0]->value, labels, n.pass_grad, true);
    std::copy(labels.begin(), labels.end(), n.op_data);
}

template <class T> void ce_kernel(node<T>& n, const grad_target<T>* out);

// dx = s gy (softmax(x) - onehot(labels))
template <class T> void ce_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    if (c.create_graph) {  // the same with ops: twice differentiable
        const std::size_t rows = c.x(0).shape()[0], cols = c.x(0).shape()[1];
        tensor<T> onehot(one_hot<T>(c.self.op_data, rows, cols));
        c.add_graph(0, mul_scalar(softmax(c.tx(0), 1) - onehot, c.self.scalar[0]) * c.tgy());
        return;
    }
    c.run_kernel();
}

template <class T> void ce_kernel(node<T>& n, const grad_target<T>* out) {
    T* dx = out[0].data;
    if (!dx) return;
    const auto& xv = n.inputs[0]->value;
    const std::size_t rows = xv.shape()[0], cols = xv.shape()[1];
    const T k = n.scalar[0] * n.grad.data()[0];
    const T* p = n.pass_grad.data();
    const bool had = out[0].add;
    for (std::size_t i = 0; i < rows; ++i) {
        const std::size_t label = n.op_data[i];
        T* d = dx + i * cols;
        const T* pi = p + i * cols;
        if (had) {
            for (std::size_t j = 0; j < cols; ++j) d[j] += j == label ? k * pi[j] - k : k * pi[j];
        } else {
            for (std::size_t j = 0; j < cols; ++j) d[j] = k * pi[j];
            d[label] -= k;
        }
    }
}

template <class T> tensor<T> fused_cross_entropy(const tensor<T>& logits, const std::vector<std::size_t>& labels, T scale) {
    detail::check_traced_labels<T>(&labels, "cross_entropy");  // the replay reads them through the pointer
    tensor<T> out = detail::make_result<T>("cross_entropy", &ce_backward<T>, {&logits}, labels.size() + 1);
    node<T>* n = out.node_ptr();
    n->scalar[0] = scale;
    const bool recorded = n->op_data != nullptr;  // no_grad: no backward reads the probabilities
    if (recorded) {
        detail::store_indices(n, labels);
        n->forward = &ce_forward<T>;
        n->backward_kernel = &ce_kernel<T>;
    }
    ce_fill(*n, logits.value(), labels, recorded ? n->pass_grad : tape<T>::current().scratch(), recorded);
    return out;
}

}  // namespace

template <class T>
tensor<T> cross_entropy(const tensor<T>& logits, const std::vector<std::size_t>& labels, reduction r) {
    check_labels("cross_entropy", logits, labels);
    if (r != reduction::none)
        return fused_cross_entropy(logits, labels, r == reduction::mean ? T(1) / T(labels.size()) : T(1));
    return -pick(log_softmax(logits, 1), labels);
}

template <class T> tensor<T> cross_entropy(const tensor<T>& logits, const tensor<T>& target_probs, reduction r) {
    check_same("cross_entropy", logits, target_probs);
    if (logits.dim() != 2)
        throw shape_error("cross_entropy: expects logits of shape [N, C], got " + shape_str(logits.shape()));
    return reduce(-sum(target_probs * log_softmax(logits, 1), {1}), r);
}

template <class T>
tensor<T> cross_entropy(const tensor<T>& logits, const std::vector<std::size_t>& labels, const class_loss_options& o) {
    if (!(o.label_smoothing >= 0 && o.label_smoothing <= 1))
        throw std::invalid_argument("cross_entropy: label_smoothing must be in [0, 1], got " +
                                    std::to_string(o.label_smoothing));
    const shape_t s = logits.shape();
    classes_last("cross_entropy", logits, labels.size());  // checks shapes before any work
    const std::size_t classes = s[1];
    const auto p = picks<T>("cross_entropy", labels, classes, o);
    tensor<T> lp2 = classes_last("cross_entropy", log_softmax(logits, 1), labels.size());
    tensor<T> loss = weighted_nll(lp2, p, o.r, positions_shape(s));
    if (o.label_smoothing == 0) return loss;
    // smoothing term per position: -sum_c w_c lp[i, c] (0 where ignored); the mean divides by the
    // picked weights' sum, as the nll term does (the number of kept positions when unweighted)
    const T eps = T(o.label_smoothing);
    tensor<T> lpw = o.weight.empty() ? lp2 : lp2 * tensor<T>(xt::xarray<T>(xt::adapt(o.weight, {classes})));
    tensor<T> smooth = -sum(lpw, {1}) * tensor<T>(p.kept);
    tensor<T> reduced;
    switch (o.r) {
    case reduction::none: reduced = reshape(smooth, positions_shape(s)); break;
    case reduction::sum: reduced = sum(smooth); break;
    case reduction::mean: reduced = mul_scalar(sum(smooth), T(1) / p.weight_sum); break;
    }
    return mul_scalar(loss, T(1) - eps) + mul_scalar(reduced, eps / T(classes));
}

// ============================================================ the others
template <class T> tensor<T> mse(const tensor<T>& pred, const tensor<T>& target, reduction r) {
    check_same("mse", pred, target);
    if (r != reduction::none) {
        const std::size_t n = pred.value().size();
        // mean over 0 elements is NaN, as in PyTorch
        return fused_mse(pred, target, r == reduction::mean ? T(1) / T(n) : T(1));
    }
    tensor<T> d = pred - target;
    return d * d;
}

template <class T> tensor<T> l1(const tensor<T>& pred, const tensor<T>& target, reduction r) {
    check_same("l1", pred, target);
    return reduce(abs(pred - target), r);
}

template <class T> tensor<T> huber(const tensor<T>& pred, const tensor<T>& target, T delta, reduction r) {
    check_same("huber", pred, target);
    if (!(delta > T(0))) throw std::invalid_argument("huber: delta must be positive, got " + std::to_string(delta));
    tensor<T> d = pred - target;
    tensor<T> a = abs(d);
    // 0.5 d^2 inside |d| < delta, delta (|d| - delta / 2) outside: continuous value and slope at |d| = delta
    return reduce(where(a < delta, T(0.5) * d * d, delta * (a - T(0.5) * delta)), r);
}

template <class T> tensor<T> nll(const tensor<T>& log_probs, const std::vector<std::size_t>& labels, reduction r) {
    check_labels("nll", log_probs, labels);
    return reduce(-pick(log_probs, labels), r);
}

template <class T> tensor<T> bce_with_logits(const tensor<T>& logits, const tensor<T>& targets, reduction r) {
    check_same("bce_with_logits", logits, targets);
    // -[t log s(z) + (1 - t) log(1 - s(z))] = softplus(z) - t z, stable for any z
    return reduce(softplus(logits) - targets * logits, r);
}


// ================================================== issue #9: more losses
// All composed from recorded ops (log_softmax, pick, where, ...), so each has first
// and second derivatives from rules that are checked on their own.
template <class T>
tensor<T> nll(const tensor<T>& log_probs, const std::vector<std::size_t>& labels, const class_loss_options& o) {
    if (o.label_smoothing != 0)
        throw std::invalid_argument("nll: label_smoothing applies to cross_entropy only; leave it 0 for nll");
    tensor<T> lp2 = classes_last("nll", log_probs, labels.size());
    const auto p = picks<T>("nll", labels, log_probs.shape()[1], o);
    return weighted_nll(lp2, p, o.r, positions_shape(log_probs.shape()));
}


template <class T> tensor<T> binary_cross_entropy(const tensor<T>& probs, const tensor<T>& targets, reduction r) {
    check_same("binary_cross_entropy", probs, targets);
    const auto& pv = probs.value();
    for (std::size_t i = 0; i < pv.size(); ++i)
        if (!(pv.data()[i] >= T(0) && pv.data()[i] <= T(1)))
            throw std::invalid_argument("binary_cross_entropy: probability " + std::to_string(pv.data()[i]) +
                                        " at flat position " + std::to_string(i) +
                                        " is outside [0, 1]; for scores use bce_with_logits");
    // log clamped at -100 (PyTorch): log(max(p, e^-100)), so at p = 0 the slope is finite, not 0/0
    const T floor = std::exp(T(-100));
    tensor<T> lp = log(clamp_min(probs, floor)), lq = log(clamp_min(1 - probs, floor));
    return reduce(-(targets * lp + (1 - targets) * lq), r);
}

template <class T>
tensor<T> bce_with_logits(const tensor<T>& logits, const tensor<T>& targets, const tensor<T>& pos_weight, reduction r) {
    check_same("bce_with_logits", logits, targets);
    if (!detail::shapes_equal(detail::broadcast_shape("bce_with_logits", logits.value().shape(), pos_weight.value().shape()),
                              logits.value().shape()))
        throw shape_error("bce_with_logits: pos_weight of shape " + shape_str(pos_weight.shape()) +
                          " does not broadcast to the logits' shape " + shape_str(logits.shape()) +
                          "; give one weight per class (the last axis)");
    // -(pw t log s(z) + (1 - t) log(1 - s(z))) = (1 - t) z + (1 + (pw - 1) t) softplus(-z)
    return reduce((1 - targets) * logits + (1 + (pos_weight - 1) * targets) * softplus(-logits), r);
}

template <class T> tensor<T> kl_div(const tensor<T>& input, const tensor<T>& target, const kl_div_options& o) {
    check_same("kl_div", input, target);
    tensor<T> per;
    if (o.log_target) {
        per = exp(target) * (target - input);  // e^lt (lt - x)
    } else {
        // t (log t - x), 0 where t = 0: log reads 1 there and the mask zeroes value and slopes
        tensor<T> kept(xt::xarray<T>(xt::cast<T>(target.value() > T(0))));
        tensor<T> safe = where(kept, target, T(1));
        per = kept * target * (log(safe) - input);
    }
    if (o.batchmean) {
        const std::size_t n = input.dim() ? input.shape()[0] : 1;
        return mul_scalar(sum(per), T(1) / T(n));
    }
    return reduce(per, o.r);
}

template <class T> tensor<T> smooth_l1(const tensor<T>& pred, const tensor<T>& target, T beta, reduction r) {
    check_same("smooth_l1", pred, target);
    if (!(beta >= T(0))) throw std::invalid_argument("smooth_l1: beta must be >= 0, got " + std::to_string(beta));
    tensor<T> d = pred - target;
    tensor<T> a = abs(d);
    if (beta == T(0)) return reduce(a, r);
    // 0.5 d^2 / beta inside |d| < beta, |d| - beta / 2 outside: value and slope continuous at |d| = beta
    return reduce(where(a < beta, (T(0.5) / beta) * d * d, a - T(0.5) * beta), r);
}

#define TAPEGRAD_MORE_LOSSES(T)                                                                                  \
    template tensor<T> nll(const tensor<T>&, const std::vector<std::size_t>&, const class_loss_options&);           \
    template tensor<T> cross_entropy(const tensor<T>&, const std::vector<std::size_t>&, const class_loss_options&); \
    template tensor<T> binary_cross_entropy(const tensor<T>&, const tensor<T>&, reduction);                      \
    template tensor<T> bce_with_logits(const tensor<T>&, const tensor<T>&, const tensor<T>&, reduction);         \
    template tensor<T> kl_div(const tensor<T>&, const tensor<T>&, const kl_div_options&);                        \
    template tensor<T> smooth_l1(const tensor<T>&, const tensor<T>&, T, reduction);
TAPEGRAD_MORE_LOSSES(float)
TAPEGRAD_MORE_LOSSES(double)
// ================================================== end of issue #9 losses

#define TAPEGRAD_LOSSES(T)                                                                               \
    template tensor<T> mse(const tensor<T>&, const tensor<T>&, reduction);                              \
    template tensor<T> l1(const tensor<T>&, const tensor<T>&, reduction);                               \
    template tensor<T> huber(const tensor<T>&, const tensor<T>&, T, reduction);                         \
    template tensor<T> nll(const tensor<T>&, const std::vector<std::size_t>&, reduction);               \
    template tensor<T> cross_entropy(const tensor<T>&, const std::vector<std::size_t>&, reduction);     \
    template tensor<T> cross_entropy(const tensor<T>&, const tensor<T>&, reduction);                    \
    template tensor<T> bce_with_logits(const tensor<T>&, const tensor<T>&, reduction);
TAPEGRAD_LOSSES(float)
TAPEGRAD_LOSSES(double)

}  // namespace tapegrad
