#pragma once
// gradcheck: compare the tape's gradients with float64 central differences, as
// torch.autograd.gradcheck does, and say which input and element disagree.
// The element names, tape guard and central differences are autograd/check_core.hpp,
// shared with formulas/hand_check.

#include <cmath>
#include <cstddef>
#include <functional>
#include <iosfwd>
#include <random>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.hpp"

namespace tapegrad {

/// Tolerances and limits of a check. An element passes when
/// |analytic - numeric| <= atol + rtol * |numeric| (PyTorch's defaults).
struct gradcheck_options {
    double eps = 1e-6;   ///< central-difference step
    double atol = 1e-5;  ///< absolute tolerance
    double rtol = 1e-3;  ///< relative tolerance
    /// Outputs larger than this are compared along this many random projections
    /// instead of one row of the Jacobian per output element.
    std::size_t max_outputs = 256;
    unsigned seed = 12345;  ///< seed of the random projections
};

/// Result for one input: its worst element and whether all elements passed.
struct gradcheck_input_report {
    std::size_t input = 0;           ///< position in the inputs
    shape_t shape;                   ///< the input's shape
    bool shape_ok = true;            ///< the gradient had the input's shape
    std::size_t worst_element = 0;   ///< flat index of the worst element
    std::string worst_index;         ///< the same as a multi-index, "(1, 2)"
    std::size_t worst_output = 0;    ///< output element (or projection) of the worst entry
    double numeric = 0;              ///< central difference there
    double analytic = 0;             ///< tape gradient there
    double abs_error = 0;            ///< |analytic - numeric|
    /// abs_error / |numeric|: 0 when abs_error is 0, NaN (printed "-") when only the
    /// numeric value is exactly 0, where a relative error means nothing and atol decides.
    double rel_error = 0;
    bool passed = true;              ///< every element within tolerance
};

/// What gradcheck found.
struct gradcheck_report {
    std::string name;                           ///< label for the table
    std::vector<gradcheck_input_report> inputs; ///< one per input
    std::size_t outputs = 0;                    ///< output elements
    bool projected = false;                     ///< random projections were used
    bool reentrant = true;                      ///< a second backward gave identical gradients
    double reentrant_max_diff = 0;              ///< largest difference between the two
    gradcheck_options options;                  ///< tolerances used

    /// All inputs passed, shapes matched and backward was reentrant.
    bool passed() const;
    /// The readable table.
    std::string table() const;
};

/// Print the report as a table.
std::ostream& operator<<(std::ostream& os, const gradcheck_report& r);

/// A function of several float64 tensors.
using gradcheck_fn = std::function<tensor<double>(const std::vector<tensor<double>>&)>;

/// Check first derivatives of `f` at `inputs`. Each input becomes a leaf that
/// requires grad; `f` may return a tensor of any shape. The tape is rewound to
/// where it was, so gradcheck can run between training steps.
gradcheck_report gradcheck(const gradcheck_fn& f, const std::vector<xt::xarray<double>>& inputs,
                           const gradcheck_options& options = {}, const std::string& name = "");

/// Check second derivatives: gradcheck of the map (inputs, v) -> v^T J(inputs),
/// the recorded reverse pass, for a random cotangent v (which is checked too).
gradcheck_report gradgradcheck(const gradcheck_fn& f, const std::vector<xt::xarray<double>>& inputs,
                               const gradcheck_options& options = {}, const std::string& name = "");

/// Inputs for a gradient check: values uniform in [lo, hi) drawn from `rng`,
/// kept at least `gap` away from `avoid` (a kink of relu, abs, clamp) so central
/// differences are valid there. NaN `avoid` keeps every draw.
template <class Rng>
xt::xarray<double> random_input(const shape_t& shape, Rng& rng, double lo = -1, double hi = 1, double avoid = NAN,
                                double gap = 0.05) {
    std::uniform_real_distribution<double> u(lo, hi);
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    for (auto& v : a) {
        do v = u(rng);
        while (!std::isnan(avoid) && std::abs(v - avoid) < gap);
    }
    return a;
}

}  // namespace tapegrad
