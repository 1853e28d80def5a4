#pragma once
// Shared test helpers: seeded random inputs and gradcheck assertions that print
// the report table when they fail.

#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xarray.hpp>

#include "autograd/gradcheck.hpp"
#include "autograd/ops.hpp"

namespace tapegrad::testing {

/// Uniform values in [lo, hi) with a fixed seed; `avoid` keeps values at least
/// `gap` away from a kink (relu, abs, clamp) so central differences are valid.
inline xt::xarray<double> uniform(const shape_t& shape, double lo = -1, double hi = 1, unsigned seed = 1,
                                  double avoid = NAN, double gap = 0.05) {
    std::mt19937 rng(seed);
    return random_input(shape, rng, lo, hi, avoid, gap);
}

/// Run gradcheck (and gradgradcheck when `second` is set) and assert it passes.
inline void expect_grads(const gradcheck_fn& f, const std::vector<xt::xarray<double>>& inputs, bool second = false,
                         const gradcheck_options& o = {}) {
    auto r = gradcheck(f, inputs, o);
    INFO(r.table());
    CHECK(r.passed());
    if (second) {
        auto r2 = gradgradcheck(f, inputs, o);
        INFO(r2.table());
        CHECK(r2.passed());
    }
}

}  // namespace tapegrad::testing
