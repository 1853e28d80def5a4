#include "autograd/kernels/blas.hpp"

#include <algorithm>

#include <cblas.h>

namespace tapegrad::blas {

namespace {
CBLAS_TRANSPOSE flag(bool t) { return t ? CblasTrans : CblasNoTrans; }
blasint as_int(std::size_t v) { return static_cast<blasint>(v); }
blasint ld(std::size_t v) { return static_cast<blasint>(v < 1 ? 1 : v); }  // BLAS rejects 0

// Up to this many multiply-adds a plain loop beats the BLAS call, whose fixed
// cost (argument checks, dispatch, packing) is ~150-300 ns: a batch-1 layer of a
// small MLP is a few hundred multiply-adds.
constexpr std::size_t small_gemm_work = 2048;

/// Whether m n k <= small_gemm_work, without overflowing the product.
bool is_small(std::size_t m, std::size_t n, std::size_t k) {
    return m <= small_gemm_work && n <= small_gemm_work && k <= small_gemm_work && m * n * k <= small_gemm_work;
}

/// The same contract as gemm, in plain loops, for small products. The transpose
/// flags are template parameters so that each inner loop has unit stride or a
/// fixed one and compiles to vector code.
template <bool TA, bool TB, class T>
void small_gemm(std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a, std::size_t lda, const T* b,
                std::size_t ldb, T beta, T* c, std::size_t ldc) {
    for (std::size_t i = 0; i < m; ++i) {
        T* ci = c + i * ldc;
        if (beta == T(0)) std::fill(ci, ci + n, T(0));  // beta 0 ignores NaN in C, as BLAS does
        else if (beta != T(1)) for (std::size_t j = 0; j < n; ++j) ci[j] *= beta;
        if constexpr (TB) {  // B's rows are contiguous along p: one dot product per element
            for (std::size_t j = 0; j < n; ++j) {
                const T* bj = b + j * ldb;
                T s = 0;
                if constexpr (TA) for (std::size_t p = 0; p < k; ++p) s += a[p * lda + i] * bj[p];
                else for (std::size_t p = 0; p < k; ++p) s += a[i * lda + p] * bj[p];
                ci[j] += alpha * s;
            }
        } else {  // B's rows are contiguous along j: C's row is a sum of scaled rows of B
            for (std::size_t p = 0; p < k; ++p) {
                const T f = alpha * (TA ? a[p * lda + i] : a[i * lda + p]);
                const T* bp = b + p * ldb;
                for (std::size_t j = 0; j < n; ++j) ci[j] += f * bp[j];
            }
        }
    }
}

template <class T>
void small_gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a, std::size_t lda,
                const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
    if (ta && tb) small_gemm<true, true>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else if (ta) small_gemm<true, false>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else if (tb) small_gemm<false, true>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else small_gemm<false, false>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
}  // namespace

void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a, std::size_t lda,
          const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
    if (m == 0 || n == 0) return;
    if (is_small(m, n, k)) return small_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), as_int(m), as_int(n), as_int(k), alpha, a, ld(lda), b, ld(ldb),
                beta, c, ld(ldc));
}

void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
          std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc) {
    if (m == 0 || n == 0) return;
    if (is_small(m, n, k)) return small_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), as_int(m), as_int(n), as_int(k), alpha, a, ld(lda), b, ld(ldb),
                beta, c, ld(ldc));
}

void set_num_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }
int num_threads() { return openblas_get_num_threads(); }
std::string info() { return openblas_get_config(); }

}  // namespace tapegrad::blas
