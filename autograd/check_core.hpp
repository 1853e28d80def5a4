#pragma once
// The checking core shared by gradcheck (autograd/gradcheck.cpp) and hand_check
// (formulas/hand_check.cpp): element names, the tape guard and the central
// differences, written once.

#include <cstddef>
#include <string>
#include <utility>

#include <xtensor/xarray.hpp>

#include "autograd/tensor.hpp"

namespace tapegrad {
namespace check {

/// "(1, 2)": the row-major flat index `flat` of `shape` as a multi-index.
std::string multi_index(const shape_t& shape, std::size_t flat);

/// Rewinds the calling thread's float64 tape to where it was when constructed,
/// also when the checked function throws.
class rewind_guard {
  public:
    rewind_guard() : tp_(tape<double>::current()), start_(tp_.mark()) {}
    ~rewind_guard() { tp_.rewind(start_); }
    rewind_guard(const rewind_guard&) = delete;
    rewind_guard& operator=(const rewind_guard&) = delete;

  private:
    tape<double>& tp_;
    tape<double>::position start_;
};

/// {f() at x[e] + eps, f() at x[e] - eps}, evaluated under no_grad. `x` is the
/// value of a leaf that f reads; x[e] is restored afterwards, also when f throws.
/// The central difference of f along x[e] is (first - second) / (2 eps).
template <class F> auto plus_minus(xt::xarray<double>& x, std::size_t e, double eps, F&& f) {
    struct restore {
        double& slot;
        double saved;
        ~restore() { slot = saved; }
    } keep{x.data()[e], x.data()[e]};
    no_grad quiet;
    keep.slot = keep.saved + eps;
    auto plus = f();
    keep.slot = keep.saved - eps;
    auto minus = f();
    return std::make_pair(std::move(plus), std::move(minus));
}

}  // namespace check
}  // namespace tapegrad
