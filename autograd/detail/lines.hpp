#pragma once
// Loops over the lines of a tensor along one axis, for softmax-like ops and the
// fused losses: a tensor of shape [..., n, ...] is `outer` x `inner` lines of n
// elements, `inner` apart. The last axis (inner = 1) is the common case; its lines
// are contiguous, the stride is a compile-time 1 and the exp runs in xsimd batches.
// Included by autograd/*.cpp only.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "autograd/kernels/parallel.hpp"
#include "autograd/kernels/simd.hpp"

namespace tapegrad::detail {

/// The lines of a shape along one axis.
struct line_layout {
    std::size_t outer = 1, len = 1, inner = 1;
    template <class S> line_layout(const S& shape, std::size_t axis) {
        for (std::size_t i = 0; i < axis; ++i) outer *= shape[i];
        len = shape[axis];
        for (std::size_t i = axis + 1; i < shape.size(); ++i) inner *= shape[i];
    }
    std::size_t lines() const { return outer * inner; }
    /// Offset of line l's first element; its elements are `inner` apart.
    std::size_t start(std::size_t l) const { return (l / inner) * len * inner + l % inner; }
};

/// Unit stride as a compile-time constant, so contiguous lines compile to vector loops.
using unit = std::integral_constant<std::size_t, 1>;

/// Largest element of the line; 0 for an empty line or an infinite maximum, so x - m stays finite.
template <class T, class S> T safe_max(const T* x, std::size_t n, S stride) {
    T m = -std::numeric_limits<T>::infinity();
    std::size_t k = 0;
    if constexpr (std::is_same<S, unit>::value) {
        // Eight independent maxima: one chain of dependent max instructions is
        // latency-bound (about 4 cycles an element); max is exact in any order.
        T lanes[8] = {m, m, m, m, m, m, m, m};
        for (; k + 8 <= n; k += 8)
            for (std::size_t j = 0; j < 8; ++j) lanes[j] = std::max(lanes[j], x[k + j]);
        for (T v : lanes) m = std::max(m, v);
    }
    for (; k < n; ++k) m = std::max(m, x[k * stride]);
    return std::isinf(m) || n == 0 ? T(0) : m;
}

/// sum of a[k] (b[k] when b is given) along the line. A contiguous line runs in four
/// xsimd accumulators: one chain of dependent adds is latency-bound (4 cycles an
/// element). A line shorter than a batch is summed in order, as a strided one.
template <class T, class S> T line_dot(const T* a, const T* b, std::size_t n, S stride) {
    T s = 0;
    std::size_t k = 0;
    if constexpr (std::is_same<S, unit>::value) {
        using V = xsimd::batch<T>;
        constexpr std::size_t w = V::size;
        if (n >= w) {
            V acc[4] = {V(T(0)), V(T(0)), V(T(0)), V(T(0))};
            auto term = [&](std::size_t at) {
                const V x = V::load_unaligned(a + at);
                return b ? V(x * V::load_unaligned(b + at)) : x;
            };
            for (; k + 4 * w <= n; k += 4 * w)
                for (std::size_t j = 0; j < 4; ++j) acc[j] = acc[j] + term(k + j * w);
            for (; k + w <= n; k += w) acc[0] = acc[0] + term(k);
            s = xsimd::hadd(V((acc[0] + acc[1]) + (acc[2] + acc[3])));
        }
    }
    for (; k < n; ++k) s += b ? a[k * stride] * b[k * stride] : a[k * stride];
    return s;
}

/// y = exp(x - shift) along the line; returns sum(y).
template <class T> T exp_shifted(const T* x, T shift, T* y, std::size_t n, unit) {
    simd::for_each<T>(n, [&](std::size_t k, auto tag) {
        simd::store(y + k, xsimd::exp(simd::load(x + k, tag) - shift), tag);
    });
    T acc[4] = {};
    std::size_t k = 0;
    for (; k + 4 <= n; k += 4)
        for (std::size_t j = 0; j < 4; ++j) acc[j] += y[k + j];
    for (; k < n; ++k) acc[0] += y[k];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}
template <class T> T exp_shifted(const T* x, T shift, T* y, std::size_t n, std::size_t stride) {
    T s = 0;
    for (std::size_t k = 0; k < n; ++k) s += (y[k * stride] = std::exp(x[k * stride] - shift));
    return s;
}

/// dx (+)= a + b exp(e - shift) along a line (a null: no a term), the form of the
/// log_softmax and logsumexp gradients; exp runs in xsimd batches on contiguous lines.
template <class T>
void add_scaled_exp(T* dx, bool accumulate, const T* a, T b, const T* e, T shift, std::size_t n, unit) {
    // dx's old values are loaded before the exp: with the load after it, g++ 12 -O3
    // (AVX-512) kept only lane 0 of them (test_ops_stats, logsumexp gradients summed).
    simd::for_each<T>(n, [&](std::size_t k, auto tag) {
        using V = xsimd::batch<T>;
        const V old = accumulate ? simd::load(dx + k, tag) : V(T(0));
        V d = V(b) * xsimd::exp(simd::load(e + k, tag) - V(shift));
        if (a) d = d + simd::load(a + k, tag);
        simd::store(dx + k, d + old, tag);
    });
}
template <class T>
void add_scaled_exp(T* dx, bool accumulate, const T* a, T b, const T* e, T shift, std::size_t n, std::size_t stride) {
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = k * stride;
        const T d = (a ? a[i] : T(0)) + b * std::exp(e[i] - shift);
        dx[i] = accumulate ? dx[i] + d : d;
    }
}

/// log sum exp of the line, using y as scratch for the exponentials.
template <class T, class S> T lse_line(const T* x, T* scratch, std::size_t n, S stride) {
    const T m = safe_max(x, n, stride);
    return m + std::log(exp_shifted(x, m, scratch, n, stride));
}

/// Runs f(line, offset, stride) for every line, with a compile-time unit stride when
/// lines are contiguous; lines are independent, so large tensors split them across
/// the engine threads.
template <class F> void for_each_line(const line_layout& L, F&& f) {
    auto lines = [&](std::size_t begin, std::size_t end) {
        if (L.inner == 1)
            for (std::size_t l = begin; l < end; ++l) f(l, l * L.len, unit{});
        else
            for (std::size_t l = begin; l < end; ++l) f(l, L.start(l), L.inner);
    };
    if (L.lines() * L.len >= parallel_grain && engine_threads() > 1)
        parallel_run(L.lines(), 1, lines);
    else
        lines(0, L.lines());
}

}  // namespace tapegrad::detail
