// The article's output layer with a hand-written backward (formulas/hand_backward.hpp).

#include "formulas/hand_backward.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <stdexcept>

#include "autograd/ops.hpp"

namespace tapegrad::formulas {

const char* to_string(delta3_form form) { return form == delta3_form::article ? "article" : "corrected"; }

namespace {

template <class T> struct saved_softmax {
    xt::xarray<T> output{typename xt::xarray<T>::shape_type{0}};  // o = softmax(z), [N, C]
    T scale = 0;                                                   // s = 1 / (N C)
};

// o = softmax(z) row by row (shifted by the row's max, so +-1000 is safe);
// returns L = s sum (o - t)^2.
template <class T> T forward_rows(const xt::xarray<T>& z, const xt::xarray<T>& t, xt::xarray<T>& o, T scale) {
    const std::size_t rows = z.shape()[0], cols = z.shape()[1];
    o.resize(z.shape());
    T total = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        const T* zi = z.data() + i * cols;
        const T* ti = t.data() + i * cols;
        T* oi = o.data() + i * cols;
        const T m = *std::max_element(zi, zi + cols);
        T sum = 0;
        for (std::size_t j = 0; j < cols; ++j) sum += (oi[j] = std::exp(zi[j] - m));
        for (std::size_t j = 0; j < cols; ++j) {
            oi[j] /= sum;
            total += (oi[j] - ti[j]) * (oi[j] - ti[j]);
        }
    }
    return total * scale;
}

// delta3 = -dE/dz for E = 1/2 sum (t - o)^2, one row of C classes.
//   corrected: softmax's Jacobian do_k/dz_j = o_k (delta_kj - o_j) gives
//              delta3_j = o_j ((t_j - o_j) - sum_k o_k (t_k - o_k))
//   article:   delta3_j = o_j (1 - o_j) (t_j - o_j), the Jacobian's diagonal only
template <class T> void delta3_row(delta3_form form, const T* o, const T* t, T* d, std::size_t cols) {
    if (form == delta3_form::article) {
        for (std::size_t j = 0; j < cols; ++j) d[j] = o[j] * (1 - o[j]) * (t[j] - o[j]);
        return;
    }
    T s = 0;
    for (std::size_t k = 0; k < cols; ++k) s += o[k] * (t[k] - o[k]);
    for (std::size_t j = 0; j < cols; ++j) d[j] = o[j] * ((t[j] - o[j]) - s);
}

template <class T> using hand_op = custom_op<T, saved_softmax<T>, saved_softmax<T>>;

template <class T> hand_op<T> make_op(delta3_form form) {
    hand_op<T> op(form == delta3_form::article ? "softmax_mse (article's delta3)" : "softmax_mse (hand delta3)");
    op.forward([](auto& a) {
          saved_softmax<T>& sv = a.saved();
          sv.scale = a.params().scale;
          a.y().resize(typename xt::xarray<T>::shape_type{});
          a.y().data()[0] = forward_rows(a.x(0), a.x(1), sv.output, sv.scale);
      })
        .backward_values([form](auto& a) {
            // dL/dz = -2 s gy delta3, dL/dt = -2 s gy (o - t)
            const saved_softmax<T>& sv = a.saved();
            const std::size_t rows = a.x(0).shape()[0], cols = a.x(0).shape()[1];
            const T k = -2 * sv.scale * a.gy().data()[0];
            const T* o = sv.output.data();
            const T* t = a.x(1).data();
            if (a.wants(0)) {
                T* dz = a.grad(0).data();
                for (std::size_t i = 0; i < rows; ++i) {
                    delta3_row(form, o + i * cols, t + i * cols, dz + i * cols, cols);
                    for (std::size_t j = 0; j < cols; ++j) dz[i * cols + j] *= k;
                }
            }
            if (a.wants(1)) {
                T* dt = a.grad(1).data();
                for (std::size_t j = 0, n = rows * cols; j < n; ++j) dt[j] = k * (o[j] - t[j]);
            }
        });
    return op;
}

template <class T> const hand_op<T>& op_for(delta3_form form) {
    static const hand_op<T> corrected = make_op<T>(delta3_form::corrected);
    static const hand_op<T> article = make_op<T>(delta3_form::article);
    return form == delta3_form::article ? article : corrected;
}

}  // namespace

template <class T> tensor<T> softmax_mse_hand(const tensor<T>& logits, const tensor<T>& target, delta3_form form) {
    if (logits.shape().size() != 2 || logits.shape() != target.shape() || logits.shape()[1] == 0)
        throw shape_error("softmax_mse_hand: logits " + shape_str(logits.shape()) + " and target " +
                          shape_str(target.shape()) + " must be [N, C] of the same shape, C at least 1");
    const tensor<T>* in[2] = {&logits, &target};
    const T scale = T(1) / static_cast<T>(std::max<std::size_t>(logits.size(), 1));
    return op_for<T>(form).apply(in, 2, saved_softmax<T>{{}, scale});
}

template tensor<float> softmax_mse_hand(const tensor<float>&, const tensor<float>&, delta3_form);
template tensor<double> softmax_mse_hand(const tensor<double>&, const tensor<double>&, delta3_form);

hand_backward_check check_hand_backward(delta3_form form, unsigned seed, std::size_t rows, std::size_t classes) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 2.0);
    std::uniform_int_distribution<std::size_t> label(0, classes - 1);
    xt::xarray<double> z = xt::zeros<double>({rows, classes}), t = xt::zeros<double>({rows, classes});
    for (auto& v : z) v = normal(rng);
    for (std::size_t i = 0; i < rows; ++i) t(i, label(rng)) = 1.0;

    hand_backward_check c;
    c.form = form;
    c.report = check_custom_op(op_for<double>(form), {z, t}, saved_softmax<double>{{}, 1.0 / double(rows * classes)});

    // The tape's -dE/dz (E = L / (2 s)) against the hand delta3, and the term the
    // article's form leaves out: the Jacobian's off-diagonal -o_j sum_{k != j} o_k (t_k - o_k).
    tape<double>& tp = tape<double>::current();
    const auto start = tp.mark();
    tensor<double> zt(z, true);
    tensor<double> o = softmax(zt, 1);
    const double s = 1.0 / double(rows * classes);
    const xt::xarray<double> dz = tp.gradient(mse(o, tensor<double>(t)), {zt})[0].value();
    for (std::size_t i = 0; i < rows; ++i) {
        const double* oi = &o.value()(i, 0);
        const double* ti = &t(i, 0);
        std::vector<double> hand(classes);
        delta3_row(form, oi, ti, hand.data(), classes);
        for (std::size_t j = 0; j < classes; ++j) {
            const double truth = -dz(i, j) / (2 * s);
            double off = 0;
            for (std::size_t k = 0; k < classes; ++k)
                if (k != j) off += oi[k] * (ti[k] - oi[k]);
            off *= -oi[j];
            c.delta3_error = std::max(c.delta3_error, std::abs(hand[j] - truth));
            c.cross_term_fit = std::max(c.cross_term_fit, std::abs((truth - hand[j]) - off));
        }
    }
    o = tensor<double>();
    tp.rewind(start);  // leave the tape as it was: the check may run between steps
    return c;
}

std::string hand_backward_check::verdict() const {
    std::ostringstream os;
    os.precision(3);
    const auto& logits = report.first.inputs.at(0);
    const auto& target = report.first.inputs.at(1);
    if (passed()) {
        os << "hand backward (" << to_string(form) << " delta3, softmax + MSE): PASS against central differences "
           << "(max abs error " << std::max(logits.abs_error, target.abs_error) << "); delta3 matches the tape's "
           << "-dE/dz2 to " << delta3_error;
        return os.str();
    }
    os << "hand backward (" << to_string(form) << " delta3, softmax + MSE) refused: ";
    if (!logits.passed) {
        os << "the term delta3 (dL/dz2 = -2/(N C) delta3) is wrong: at logits" << logits.worst_index << " it gives "
           << logits.analytic << " where central differences give " << logits.numeric << ".";
        if (cross_term_fit <= 1e-9 * std::max(1.0, delta3_error) && delta3_error > 0)
            os << " It is exactly the sigmoid's delta3, o_j (1 - o_j) (t_j - o_j): the diagonal of softmax's "
                  "Jacobian only. It misses the off-diagonal term -o_j sum_{k != j} o_k (t_k - o_k) (max size "
               << delta3_error << "); use o_j ((t_j - o_j) - sum_k o_k (t_k - o_k)).";
    }
    if (!target.passed)
        os << " The target term dL/dt = -2/(N C) (o - t) is wrong: at target" << target.worst_index << " it gives "
           << target.analytic << " where central differences give " << target.numeric << ".";
    if (!report.first.reentrant) os << " Two backward passes gave different gradients.";
    return os.str();
}

hand_backward_check require_hand_backward(delta3_form form, unsigned seed) {
    hand_backward_check c = check_hand_backward(form, seed);
    if (!c.passed()) throw std::logic_error(c.verdict() + "\n" + c.report.table());
    return c;
}

}  // namespace tapegrad::formulas
