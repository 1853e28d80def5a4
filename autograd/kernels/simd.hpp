#pragma once
// Internal: one pass over raw buffers in xsimd batches. Used where xtensor's
// per-assignment machinery costs more than the arithmetic: optimizer steps
// (memory bound, one read and write per buffer), row loops of softmax-like ops,
// and elementwise ops on small contiguous tensors.
//
// The last partial batch goes through the same batch code on a zero-padded
// copy, so there is one formula per loop, not a batch and a scalar one.

#include <algorithm>
#include <cstddef>
#include <type_traits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <xsimd/xsimd.hpp>

#include "autograd/kernels/parallel.hpp"

namespace tapegrad::simd {

/// Tag of a whole batch at ptr + k.
struct full {};
/// Tag of the last n (< lanes) elements.
struct partial {
    std::size_t n;
};

#if defined(__AVX2__)
// The tail as an AVX2 lane mask (lanes below n set): a masked load or store of it needs
// no padded copy, whose memset and memcpy calls cost more than a small tensor's arithmetic.
template <class T> inline __m256i tail_mask(std::size_t n) {
    if constexpr (sizeof(T) == 4)
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    else
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(n)), _mm256_setr_epi64x(0, 1, 2, 3));
}
template <class T> constexpr bool avx2_batch = xsimd::batch<T>::size * sizeof(T) == 32 &&
                                              (std::is_same<T, float>::value || std::is_same<T, double>::value);
#endif

/// Load one batch (or the zero-padded tail) from p.
template <class T> inline xsimd::batch<T> load(const T* p, full) { return xsimd::batch<T>::load_unaligned(p); }
template <class T> inline xsimd::batch<T> load(const T* p, partial t) {
#if defined(__AVX2__)
    if constexpr (avx2_batch<T>) {  // masked-off lanes are zero and touch no memory
        if constexpr (std::is_same<T, float>::value) return _mm256_maskload_ps(p, tail_mask<T>(t.n));
        else return _mm256_maskload_pd(p, tail_mask<T>(t.n));
    }
#endif
    alignas(64) T buf[xsimd::batch<T>::size] = {};
    std::copy(p, p + t.n, buf);
    return xsimd::batch<T>::load_unaligned(buf);
}
/// Store one batch (or only the tail's n elements) to p.
template <class T> inline void store(T* p, const xsimd::batch<T>& v, full) { v.store_unaligned(p); }
template <class T> inline void store(T* p, const xsimd::batch<T>& v, partial t) {
#if defined(__AVX2__)
    if constexpr (avx2_batch<T>) {
        if constexpr (std::is_same<T, float>::value) _mm256_maskstore_ps(p, tail_mask<T>(t.n), v);
        else _mm256_maskstore_pd(p, tail_mask<T>(t.n), v);
        return;
    }
#endif
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

/// for_each over [0, n), split into batch-aligned pieces across the engine threads
/// (set_engine_threads) when n is large; the body must treat elements independently.
template <class T, class F> inline void parallel_for_each(std::size_t n, F&& body) {
    detail::parallel_for(n, xsimd::batch<T>::size, [&body](std::size_t begin, std::size_t end) {
        // A private copy whose address never escapes: stores through the body's T*
        // cannot alias its captured constants, so they stay in registers.
        auto local = body;
        for_each<T>(end - begin, [&local, begin](std::size_t k, auto tag) { local(begin + k, tag); });
    });
}

}  // namespace tapegrad::simd
