#pragma once
// Internal: one fused pass over an optimizer's buffers. Each update reads and
// writes every buffer exactly once per element, in xsimd batches, instead of
// one pass per xtensor assignment: the Adam step is memory bound, and a single
// pass also avoids xarray's per-assignment broadcasting overhead, which
// dominates for small layers.
//
// The last partial batch goes through the same batch code on a zero-padded
// copy, so there is one formula per optimizer, not a batch and a scalar one.

#include <algorithm>
#include <cstddef>

#include <xsimd/xsimd.hpp>

namespace tapegrad::optim::simd {

/// Tag of a whole batch at ptr + k.
struct full {};
/// Tag of the last n (< lanes) elements.
struct partial {
    std::size_t n;
};

/// Load one batch (or the zero-padded tail) from p.
template <class T> inline xsimd::batch<T> load(const T* p, full) { return xsimd::batch<T>::load_unaligned(p); }
template <class T> inline xsimd::batch<T> load(const T* p, partial t) {
    alignas(64) T buf[xsimd::batch<T>::size] = {};
    std::copy(p, p + t.n, buf);
    return xsimd::batch<T>::load_unaligned(buf);
}
/// Store one batch (or only the tail's n elements) to p.
template <class T> inline void store(T* p, const xsimd::batch<T>& v, full) { v.store_unaligned(p); }
template <class T> inline void store(T* p, const xsimd::batch<T>& v, partial t) {
    alignas(64) T buf[xsimd::batch<T>::size];
    v.store_unaligned(buf);
    std::copy(buf, buf + t.n, p);
}

/// Calls body(k, full{}) for k = 0, S, 2S, ... (S = lanes of xsimd::batch<T>),
/// then body(k, partial{n - k}) once for the rest. The body loads with
/// simd::load(ptr + k, tag) and stores with simd::store(ptr + k, value, tag).
template <class T, class F> inline void for_each(std::size_t n, F&& body) {
    constexpr std::size_t lanes = xsimd::batch<T>::size;
    std::size_t k = 0;
    for (; k + lanes <= n; k += lanes) body(k, full{});
    if (k < n) body(k, partial{n - k});
}

}  // namespace tapegrad::optim::simd
