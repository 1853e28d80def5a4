// logsumexp and log_softmax add their gradient into one that is already there
// (detail::add_scaled_exp's accumulate path). At -O3 with AVX-512, g++ 12 once
// kept only lane 0 of the old values when they were loaded after the exp, so
// lanes 1..7 lost the other term. Every length from 1 to 19 covers full SIMD
// blocks and tails, in float and double, with either node recorded first.

#include <cmath>

#include <doctest/doctest.h>

#include "autograd/ops.hpp"
#include "tests/check.hpp"

using namespace tapegrad;
using xt::xarray;

namespace {
template <class T> xarray<T> ramp(std::size_t n) {
    xarray<T> x = xt::zeros<T>({n});
    for (std::size_t i = 0; i < n; ++i) x(i) = T(0.37) * T(i) - T(2) + T(i % 3);
    return x;
}

template <class T> xarray<T> softmax_of(const xarray<T>& x) {
    T top = x(0);
    for (T v : x) top = std::max(top, v);
    xarray<T> e = x;
    T total = 0;
    for (auto& v : e) total += (v = std::exp(v - top));
    for (auto& v : e) v /= total;
    return e;
}

// d/dx [f(x) + sum(x * w)] where f is recorded first (`f_first`) or second.
template <class T, class F> xarray<T> grad_plus_linear(F f, const xarray<T>& x0, const xarray<T>& w, bool f_first) {
    reset_tape<T>();
    tensor<T> x(x0, true);
    tensor<T> a, b;
    if (f_first) {
        a = f(x);
        b = sum(x * tensor<T>(w));
    } else {
        b = sum(x * tensor<T>(w));
        a = f(x);
    }
    return tape<T>::current().gradient(a + b, {x})[0].value();
}

template <class T> void check_lengths() {
    const T tol = std::is_same<T, float>::value ? T(2e-6) : T(1e-14);
    for (std::size_t n = 1; n <= 19; ++n) {
        const xarray<T> x = ramp<T>(n);
        xarray<T> w = xt::zeros<T>({n});
        for (std::size_t i = 0; i < n; ++i) w(i) = T(1) + T(i) / T(8);
        const xarray<T> p = softmax_of(x);
        for (bool first : {true, false}) {
            INFO("n = ", n, ", nonlinear node recorded first: ", first);
            // logsumexp: d = softmax(x) + w
            xarray<T> g = grad_plus_linear<T>([](const tensor<T>& t) { return logsumexp(t, 0); }, x, w, first);
            // log_softmax summed: d = 1 - n softmax(x) + w
            xarray<T> h = grad_plus_linear<T>([](const tensor<T>& t) { return sum(log_softmax(t, 0)); }, x, w, first);
            for (std::size_t i = 0; i < n; ++i) {
                CHECK(std::abs(g(i) - (p(i) + w(i))) <= tol);
                CHECK(std::abs(h(i) - (T(1) - T(n) * p(i) + w(i))) <= tol * T(n));
            }
        }
    }
}
}  // namespace

TEST_CASE("logsumexp and log_softmax add into an existing gradient in every lane (double)") { check_lengths<double>(); }

TEST_CASE("logsumexp and log_softmax add into an existing gradient in every lane (float)") { check_lengths<float>(); }
