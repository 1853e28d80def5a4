// The last partial batch of autograd/kernels/simd.hpp (a masked load and store on
// AVX2, a padded copy elsewhere): a load reads exactly the tail and zero-fills the
// other lanes, a store writes exactly the tail, and for_each visits every element
// once. A store that wrote one lane too many would overwrite the next tensor's data.

#include <cstddef>
#include <limits>
#include <vector>

#include <doctest/doctest.h>

#include "autograd/kernels/simd.hpp"

namespace {

template <class T> void check_tail() {
    constexpr std::size_t lanes = xsimd::batch<T>::size;
    const T sentinel = T(-7.25);
    for (std::size_t n = 1; n < lanes; ++n) {
        CAPTURE(n);
        std::vector<T> src(2 * lanes, std::numeric_limits<T>::quiet_NaN());  // a NaN read past the tail would show
        for (std::size_t i = 0; i < n; ++i) src[i] = T(i + 1);
        alignas(64) T lane[lanes];
        tapegrad::simd::load(src.data(), tapegrad::simd::partial{n}).store_unaligned(lane);
        for (std::size_t i = 0; i < lanes; ++i) CHECK(lane[i] == (i < n ? T(i + 1) : T(0)));

        std::vector<T> dst(2 * lanes, sentinel);
        tapegrad::simd::store(dst.data() + 1, xsimd::batch<T>(T(3)), tapegrad::simd::partial{n});  // unaligned on purpose
        CHECK(dst[0] == sentinel);
        for (std::size_t i = 1; i <= n; ++i) CHECK(dst[i] == T(3));
        for (std::size_t i = n + 1; i < dst.size(); ++i) CHECK(dst[i] == sentinel);
    }
}

template <class T> void check_for_each() {
    constexpr std::size_t lanes = xsimd::batch<T>::size;
    for (std::size_t n = 0; n <= 3 * lanes + 1; ++n) {
        CAPTURE(n);
        std::vector<T> x(n + 1, T(0));
        x[n] = T(-1);  // one past the end
        tapegrad::simd::for_each<T>(n, [&](std::size_t k, auto tag) {
            tapegrad::simd::store(x.data() + k, tapegrad::simd::load(x.data() + k, tag) + T(1), tag);
        });
        for (std::size_t i = 0; i < n; ++i) CHECK(x[i] == T(1));
        CHECK(x[n] == T(-1));
    }
}

}  // namespace

TEST_CASE("simd tail: a partial load reads only the tail, a partial store writes only the tail") {
    check_tail<float>();
    check_tail<double>();
}

TEST_CASE("simd tail: for_each visits every element once, whatever the length") {
    check_for_each<float>();
    check_for_each<double>();
}
