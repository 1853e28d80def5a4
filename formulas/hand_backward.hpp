#pragma once
// The article's output layer, softmax then mean squared error, with its backward
// written by hand from delta3 and registered as a custom op (autograd/function.hpp).
// The rest of a network keeps using the tape. Before the op is used, a float64
// gradcheck decides whether the hand formula may be trusted, and when it may not,
// says which term is wrong.
//
// Rows are samples here (the trainer's layout): logits z and targets t are [N, C],
// o = softmax(z) in each row and L = s sum (o - t)^2 with s = 1 / (N C), as
// mse(softmax(z, 1), t). In the article's terms E = 1/2 sum (t - o)^2 and
// delta3 = -dE/dz, so dL/dz = -2 s delta3 and dL/dt = -2 s (o - t).

#include <cstddef>
#include <string>

#include "autograd/function.hpp"

namespace tapegrad::formulas {

/// Which delta3 the hand backward uses.
enum class delta3_form {
    corrected,  ///< o_j ((t_j - o_j) - sum_k o_k (t_k - o_k)): softmax's whole Jacobian
    article     ///< o (1 - o) (t - o): the article's; the sigmoid's derivative, wrong for softmax
};

/// "corrected" or "article".
const char* to_string(delta3_form form);

/// mse(softmax(logits, 1), target) whose backward is the hand-derived delta3 of
/// `form`. logits and target are [N, C] of equal shape (else std::invalid_argument
/// naming both). Differentiable once: a second derivative through it throws.
template <class T>
tensor<T> softmax_mse_hand(const tensor<T>& logits, const tensor<T>& target, delta3_form form = delta3_form::corrected);

/// What the check of a hand backward found.
struct hand_backward_check {
    delta3_form form = delta3_form::corrected;
    custom_op_report report;   ///< gradcheck of the op (float64, random logits, one-hot targets)
    double delta3_error = 0;   ///< max |delta3 by hand - delta3 from the tape|
    double cross_term_fit = 0; ///< max |that difference - the off-diagonal term|: 0 when exactly it is missing
    bool passed() const { return report.passed(); }
    /// One paragraph for people: PASS with the error, or which term is wrong and why.
    std::string verdict() const;
};

/// Gradcheck softmax_mse_hand<double> of `form` on a random [rows, classes] problem
/// from `seed`, and compare its delta3 with the tape's -dE/dz.
hand_backward_check check_hand_backward(delta3_form form, unsigned seed = 1, std::size_t rows = 4,
                                        std::size_t classes = 3);

/// check_hand_backward, throwing std::logic_error with the verdict when it fails.
/// Returns the passing check.
hand_backward_check require_hand_backward(delta3_form form, unsigned seed = 1);

}  // namespace tapegrad::formulas
