#pragma once
// Thin wrapper over CBLAS gemm (it checks no shapes: callers do). OpenBLAS's <cblas.h> cannot share a
// translation unit with xtensor-blas, so only blas.cpp includes it.

#include <cstddef>
#include <string>

namespace tapegrad::blas {

/// C[m, n] = alpha * op(A) op(B) + beta * C, row-major. op(A) is [m, k], op(B) is
/// [k, n]; `lda`, `ldb`, `ldc` are the row strides of A, B and C as stored.
/// Callers check shapes first: BLAS writes past buffers it was told are larger.
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
          std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc);
/// Double-precision gemm, same contract.
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
          std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc);

/// Set the number of BLAS threads (OpenBLAS); 1 when the caller runs its own threads.
void set_num_threads(int n);
/// The number of BLAS threads in use.
int num_threads();
/// Which BLAS library and kernel are in use, e.g. "OpenBLAS 0.3.21 ... SkylakeX".
std::string info();

}  // namespace tapegrad::blas
