// Losses. Most are composed from the differentiable ops, so that every loss has
// first and second derivatives for free; the only new primitive for them is `pick`
// (y[i] = x[i, label[i]]). The two losses of every training loop, mse and
// cross-entropy with labels, are single fused nodes when reduced (one pass
// forward, one backward, instead of four and five nodes); their create_graph
// backward is written with ops, so they stay twice differentiable.

#include <algorithm>
#include <xtensor/xadapt.hpp>

#include "autograd/detail/lines.hpp"
#include "autograd/detail/rules.hpp"
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
        c.add_graph(0, reshape(c.tgy(), {rows, 1}) * tensor<T>(one_hot<T>(c.self.aux, rows, cols)));
        return;
    }
    node<T>* in = c.input(0);
    bool had;
    T* g = c.grad_data(in, had);
    if (!had) std::fill(g, g + rows * cols, T(0));
    for (std::size_t i = 0; i < rows; ++i) g[i * cols + c.self.aux[i]] += c.gy().data()[i];
    c.mark(in);
}

template <class T> tensor<T> pick(const tensor<T>& x, const std::vector<std::size_t>& labels) {
    const auto& xv = x.value();
    const std::size_t rows = xv.shape()[0], cols = xv.shape()[1];
    tensor<T> out = detail::make_result<T>("pick", &pick_backward<T>, {&x}, rows);
    node<T>* n = out.node_ptr();
    if (n->aux) std::copy(labels.begin(), labels.end(), n->aux);
    n->value.resize({rows});
    for (std::size_t i = 0; i < rows; ++i) n->value.data()[i] = xv.data()[i * cols + labels[i]];
    return out;
}

// ----------------------------------------------------------- fused mse
// y = s sum (p - t)^2 (s = 1 / n for the mean); dp = 2 s (p - t) gy, dt = -dp
template <class T> void mse_backward(backward_ctx<T>& c) {
    const T k = T(2) * c.self.scalar[0];
    if (c.create_graph) {
        tensor<T> d = mul_scalar(c.tx(0) - c.tx(1), k) * c.tgy();
        if (c.wants(0)) c.add_graph(0, d);
        if (c.wants(1)) c.add_graph(1, -d);
        return;
    }
    const T kg = k * c.gy().data()[0];
    const T* p = c.x(0).data();
    const T* t = c.x(1).data();
    const std::size_t n = c.x(0).size();
    for (std::size_t i : {std::size_t(0), std::size_t(1)}) {
        if (!c.wants(i)) continue;
        node<T>* in = c.input(i);
        bool had;
        T* out = c.grad_data(in, had);
        const T sign = i == 0 ? kg : -kg;
        if (had) for (std::size_t j = 0; j < n; ++j) out[j] += sign * (p[j] - t[j]);
        else for (std::size_t j = 0; j < n; ++j) out[j] = sign * (p[j] - t[j]);
        c.mark(in);
    }
}

template <class T> tensor<T> fused_mse(const tensor<T>& pred, const tensor<T>& target, T scale) {
    const auto& pv = pred.value();
    const auto& tv = target.value();
    tensor<T> out = detail::make_result<T>("mse", &mse_backward<T>, {&pred, &target});
    node<T>* n = out.node_ptr();
    n->scalar[0] = scale;
    T acc[4] = {};
    const std::size_t size = pv.size();
    std::size_t j = 0;
    for (; j + 4 <= size; j += 4)
        for (std::size_t k = 0; k < 4; ++k) {
            const T d = pv.data()[j + k] - tv.data()[j + k];
            acc[k] += d * d;
        }
    for (; j < size; ++j) {
        const T d = pv.data()[j] - tv.data()[j];
        acc[0] += d * d;
    }
    n->value.resize(detail::xshape{});
    n->value.data()[0] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) * scale;
    return out;
}

// ------------------------------------------- fused cross-entropy with labels
// y = s sum_i (logsumexp(x_i) - x_i[label_i]); dx = s gy (softmax(x) - onehot(labels)).
// The forward keeps softmax(x) in the node's `work` buffer (unused on tape nodes) for the backward.
template <class T> void cross_entropy_backward(backward_ctx<T>& c) {
    if (!c.wants(0)) return;
    const T scale = c.self.scalar[0];
    const auto& xv = c.x(0);
    const std::size_t rows = xv.shape()[0], cols = xv.shape()[1];
    if (c.create_graph) {
        c.add_graph(0, mul_scalar(softmax(c.tx(0), 1) - tensor<T>(one_hot<T>(c.self.aux, rows, cols)), scale) * c.tgy());
        return;
    }
    const T k = scale * c.gy().data()[0];
    const T* p = c.self.work.data();
    node<T>* in = c.input(0);
    bool had;
    T* dx = c.grad_data(in, had);
    const std::size_t n = rows * cols;
    if (had) for (std::size_t j = 0; j < n; ++j) dx[j] += k * p[j];
    else for (std::size_t j = 0; j < n; ++j) dx[j] = k * p[j];
    for (std::size_t i = 0; i < rows; ++i) dx[i * cols + c.self.aux[i]] -= k;
    c.mark(in);
}

template <class T> tensor<T> fused_cross_entropy(const tensor<T>& logits, const std::vector<std::size_t>& labels, T scale) {
    const auto& xv = logits.value();
    const std::size_t rows = xv.shape()[0], cols = xv.shape()[1];
    tensor<T> out = detail::make_result<T>("cross_entropy", &cross_entropy_backward<T>, {&logits}, rows);
    node<T>* n = out.node_ptr();
    if (n->aux) std::copy(labels.begin(), labels.end(), n->aux);
    n->scalar[0] = scale;
    // Recorded: the probabilities stay in `work` for the backward; otherwise in the tape's scratch.
    xt::xarray<T>& probs = n->on_tape ? n->work : tape<T>::current().scratch();
    if (n->on_tape) probs.resize(xv.shape());
    else probs.resize({cols});
    T total = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        const T* x = xv.data() + i * cols;
        T* p = n->on_tape ? probs.data() + i * cols : probs.data();
        const T m = detail::safe_max(x, cols, detail::unit{});
        const T s = detail::exp_shifted(x, m, p, cols, detail::unit{});
        total += m + std::log(s) - x[labels[i]];
        const T inv = T(1) / s;
        for (std::size_t j = 0; j < cols; ++j) p[j] *= inv;
    }
    n->value.resize(detail::xshape{});
    n->value.data()[0] = total * scale;
    return out;
}

}  // namespace

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

template <class T> tensor<T> bce_with_logits(const tensor<T>& logits, const tensor<T>& targets, reduction r) {
    check_same("bce_with_logits", logits, targets);
    // -[t log s(z) + (1 - t) log(1 - s(z))] = softplus(z) - t z, stable for any z
    return reduce(softplus(logits) - targets * logits, r);
}

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
