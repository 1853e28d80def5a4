#pragma once
// The cases `tapegrad gradcheck` runs: one per op and one per layer, in float64.

#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "autograd/gradcheck.hpp"

namespace tapegrad::app {

/// One gradcheck case: a name for the table, the function and its inputs.
struct check_case {
    std::string name;                        ///< row label
    gradcheck_fn f;                          ///< function of the inputs
    std::vector<xt::xarray<double>> inputs;  ///< where it is checked
};

/// A case for every op in autograd/ops.hpp, with inputs kept off kinks.
std::vector<check_case> op_cases(unsigned seed);
/// A case for every layer in nn/ (its parameters and input are the inputs).
std::vector<check_case> layer_cases(unsigned seed);

}  // namespace tapegrad::app
