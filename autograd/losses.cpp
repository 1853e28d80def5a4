// Losses, composed from the differentiable ops so that every loss has first and
// second derivatives for free. The only new primitive is `pick` (y[i] = x[i, label[i]]).

#include <xtensor/xadapt.hpp>

#include "autograd/detail/rules.hpp"

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
        xt::xarray<T> onehot = xt::zeros<T>({rows, cols});
        for (std::size_t i = 0; i < rows; ++i) onehot(i, c.self.aux[i]) = T(1);
        c.add_graph(0, reshape(c.tgy(), {rows, 1}) * tensor<T>(std::move(onehot)));
        return;
    }
    node<T>* in = c.input(0);
    auto& g = c.target(in);
    if (!c.defined(in)) {
        g.resize(xv.shape());
        g.fill(T(0));
    }
    for (std::size_t i = 0; i < rows; ++i) g.data()[i * cols + c.self.aux[i]] += c.gy().data()[i];
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

}  // namespace

template <class T> tensor<T> mse(const tensor<T>& pred, const tensor<T>& target, reduction r) {
    check_same("mse", pred, target);
    tensor<T> d = pred - target;
    return reduce(d * d, r);
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
    return reduce(-pick(log_softmax(logits, 1), labels), r);
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
