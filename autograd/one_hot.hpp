#pragma once
// One-hot rows from class indices: the constant the recorded (second-order)
// backward of pick, cross_entropy and index_select multiplies by, and the
// article's MSE targets.

#include <cstddef>

#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>

namespace tapegrad {

/// [rows, cols] zeros with a 1 at (i, idx[i]) for each row i; every idx[i] < cols
/// (callers check: labels are validated when the op is recorded).
template <class T, class Index> xt::xarray<T> one_hot(const Index& idx, std::size_t rows, std::size_t cols) {
    xt::xarray<T> h = xt::zeros<T>({rows, cols});
    for (std::size_t i = 0; i < rows; ++i) h(i, idx[i]) = T(1);
    return h;
}

}  // namespace tapegrad
