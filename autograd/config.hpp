#pragma once
// The compile flags every translation unit that uses tapegrad must share with the
// library. CMake's tapegrad::tapegrad target sets them; a build without CMake must
// pass them itself (README, "Use it in your project"):
//   -DXTENSOR_USE_XSIMD -DXTENSOR_DEFAULT_ALIGNMENT=64
//   '-DXTENSOR_DEFAULT_ALLOCATOR(T)=xsimd::aligned_allocator<T,64>'
// They change the type of xt::xarray, so forgetting one would otherwise show up as
// an undefined reference at link time, or as silent ODR trouble.

#ifndef XTENSOR_USE_XSIMD
#error "tapegrad: compile with -DXTENSOR_USE_XSIMD (and the alignment flags in autograd/config.hpp); find_package(tapegrad) with tapegrad::tapegrad sets them for you"
#endif
#if !defined(XTENSOR_DEFAULT_ALLOCATOR) || !defined(XTENSOR_DEFAULT_ALIGNMENT)
#error "tapegrad: compile with -DXTENSOR_DEFAULT_ALIGNMENT=64 '-DXTENSOR_DEFAULT_ALLOCATOR(T)=xsimd::aligned_allocator<T,64>' (see autograd/config.hpp); find_package(tapegrad) with tapegrad::tapegrad sets them for you"
#endif

#include <type_traits>

#include <xtensor/xarray.hpp>

static_assert(std::is_same<xt::xarray<double>::allocator_type, xsimd::aligned_allocator<double, 64>>::value,
              "tapegrad: xt::xarray must use xsimd::aligned_allocator<T, 64>: pass "
              "'-DXTENSOR_DEFAULT_ALLOCATOR(T)=xsimd::aligned_allocator<T,64>' (see autograd/config.hpp)");
