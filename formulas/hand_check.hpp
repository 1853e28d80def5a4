#pragma once
// hand_check: "is my hand-derived gradient right?"
//
// The user gives a scalar loss as a function of named float64 parameters and,
// for each parameter, the gradient they derived by hand. tapegrad computes the
// true gradient twice, with the tape (reverse-mode autodiff) and with central
// finite differences, and says per parameter whether the hand gradient agrees
// with each. When it does not, the report shows the worst elements and fits
// hand ~= ratio * true by least squares, which tells a sign error (ratio -1)
// or a constant factor (2, 1/2, ...) apart from a structural error such as a
// missing term (no ratio fits).
//
//     auto r = tapegrad::hand_check(
//         [](const std::vector<tapegrad::tensor<double>>& p) { return tapegrad::sum(p[0] * p[0]); },
//         {{"w", w, 2.0 * w}});
//     std::cout << r;            // the table
//     if (!r.passed()) ...       // r.param("w").diagnosis, .ratio, .worst

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// One parameter to check: its name (for the table), its value, and the
/// gradient of the loss with respect to it that the user derived by hand.
/// The hand gradient must be dLoss/dparam (not the update direction -dLoss/dparam).
struct hand_param {
    std::string name;                 ///< shown in the report; must be unique and non-empty
    xt::xarray<double> value;         ///< where the gradient is evaluated
    xt::xarray<double> hand_gradient; ///< the hand-derived dLoss/dparam, same shape as value
};

/// A scalar loss of the parameters, in the order they were given. It is called
/// once with leaves that require grad (for the tape) and many times under
/// no_grad (for the finite differences), so it must be a pure function.
using hand_check_fn = std::function<tensor<double>(const std::vector<tensor<double>>&)>;

/// Tolerances. An element agrees when |hand - truth| <= atol + rtol * |truth|.
struct hand_check_options {
    double eps = 1e-6;    ///< central-difference step
    double atol = 1e-6;   ///< absolute tolerance
    double rtol = 1e-5;   ///< relative tolerance
    /// How many of the worst elements to list for a parameter that disagrees.
    std::size_t worst_count = 3;
    /// Finite differences cost two loss evaluations per element; a parameter with
    /// more elements than this is differenced at this many evenly spaced elements
    /// (0 = every element). The tape comparison always covers every element.
    std::size_t max_numeric_elements = 0;
    /// The ratio fit counts as a good fit when ||hand - ratio*true|| / ||hand||
    /// is below this; otherwise the mismatch is called structural.
    double fit_tolerance = 1e-3;
};

/// What a disagreement looks like.
enum class hand_diagnosis {
    agrees,          ///< every element within tolerance of the tape and of the differences
    sign_error,      ///< hand ~= -1 * true
    constant_factor, ///< hand ~= c * true for a constant c != 1 (sign included when c < 0)
    structural,      ///< no constant ratio fits: a missing, extra or wrong term
    hand_is_zero,    ///< the hand gradient is zero where the true one is not
    true_is_zero,    ///< the true gradient is zero, the hand one is not
    shape_mismatch,  ///< the hand gradient does not have the parameter's shape
    not_finite,      ///< the hand gradient contains NaN or infinity
    truth_unsure,    ///< the tape and the finite differences disagree with each other
};

/// Short name of a diagnosis ("sign error", "constant factor", ...).
const char* to_string(hand_diagnosis d);

/// One element where the hand gradient is far from the truth.
struct hand_element {
    std::size_t flat = 0;   ///< row-major flat index
    std::string index;      ///< the same as a multi-index, "(1, 2)"
    double hand = 0;        ///< the hand-derived value
    double autodiff = 0;    ///< the tape's value
    double numeric = 0;     ///< central difference (NaN when this element was not differenced)
};

/// Verdict for one parameter.
struct hand_param_report {
    std::string name;                  ///< the parameter's name
    shape_t shape;                     ///< the parameter's shape
    shape_t hand_shape;                ///< the hand gradient's shape
    bool agrees_autodiff = false;      ///< every element within tolerance of the tape
    bool agrees_numeric = false;       ///< every differenced element within tolerance of the differences
    bool autodiff_agrees_numeric = true; ///< sanity: the tape and the differences agree with each other
    std::size_t numeric_elements = 0;  ///< how many elements were differenced
    double max_abs_error = 0;          ///< max |hand - autodiff|
    double max_rel_error = 0;          ///< max |hand - autodiff| / |autodiff| (0 where both are 0)
    double max_abs_error_numeric = 0;  ///< max |hand - numeric| over differenced elements
    double autodiff_numeric_error = 0; ///< max |autodiff - numeric|: how far to trust the differences
    /// Least-squares ratio sum(hand*true) / sum(true*true) (true = the tape's gradient);
    /// NaN when the true gradient is zero or the shapes differ.
    double ratio = 0;
    /// ||hand - ratio*true|| / ||hand||: 0 when hand is exactly a multiple of true.
    double fit_residual = 0;
    hand_diagnosis diagnosis = hand_diagnosis::agrees; ///< what the mismatch looks like
    std::string explanation;           ///< one sentence saying what the diagnosis means here
    std::vector<hand_element> worst;   ///< worst elements, largest |hand - autodiff| first

    /// Agrees with the tape and with the finite differences.
    bool passed() const { return diagnosis == hand_diagnosis::agrees; }
};

/// What hand_check found for every parameter.
struct hand_check_report {
    std::string name;                      ///< label for the table
    double loss = 0;                       ///< the loss at the given parameters
    std::vector<hand_param_report> params; ///< one per parameter, in the order given
    hand_check_options options;            ///< tolerances used

    /// Every parameter passed.
    bool passed() const;
    /// The report of the parameter called `name`; throws std::out_of_range naming it if absent.
    const hand_param_report& param(const std::string& name) const;
    /// The readable table, with the worst elements under each parameter that disagrees.
    std::string table() const;
};

/// Print the report's table.
std::ostream& operator<<(std::ostream& os, const hand_check_report& r);

/// Check hand-derived gradients of the scalar `loss` against the tape and central
/// differences, in float64. Throws std::invalid_argument when there are no
/// parameters, a name is empty or repeated, or the loss is not one element.
/// The tape is rewound to where it was, so this can run between training steps.
hand_check_report hand_check(const hand_check_fn& loss, const std::vector<hand_param>& params,
                             const hand_check_options& options = {}, const std::string& name = "");

}  // namespace tapegrad
