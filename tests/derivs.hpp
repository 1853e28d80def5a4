#pragma once
// Elementwise first and second derivatives through the tape, for tests of
// elementwise ops at chosen points (extremes, kinks): f acts elementwise, so
// d/dx sum(f(x)) is f'(x) and d/dx sum(f'(x)) is f''(x), element by element.

#include <functional>

#include <xtensor/xarray.hpp>

#include "autograd/ops.hpp"

namespace tapegrad::testing {

using unary_fn = std::function<tensor<double>(const tensor<double>&)>;

/// f'(x0) elementwise, from one reverse pass.
inline xt::xarray<double> first_derivative(const unary_fn& f, const xt::xarray<double>& x0) {
    reset_tape<double>();
    tensor<double> x(x0, true);
    return tape<double>::current().gradient(sum(f(x)), {x})[0].value();
}

/// f''(x0) elementwise, from a recorded reverse pass differentiated again.
inline xt::xarray<double> second_derivative(const unary_fn& f, const xt::xarray<double>& x0) {
    reset_tape<double>();
    tensor<double> x(x0, true);
    auto& tp = tape<double>::current();
    auto g = tp.gradient(sum(f(x)), {x}, {true})[0];
    return tp.gradient(sum(g), {x})[0].value();
}

}  // namespace tapegrad::testing
