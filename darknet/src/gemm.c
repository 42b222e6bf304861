/*
 * gemm.c — matrix multiply. dn_gemm takes our AVX-512 kernel (gemm_fast.c)
 * where the CPU has AVX-512F, else OpenBLAS's cblas_sgemm when the build has
 * it (the default), else the portable dn_gemm_ref.
 * Row-major: C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C.
 */
#include "internal.h"

int dn_gemm_fast_enabled = 1;
#ifdef DN_OPENBLAS
#include <cblas.h>
#endif

void dn_gemm_ref(int TA, int TB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    for (int i = 0; i < M; ++i) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0) dn_fill(c, (size_t)N, 0);
        else if (beta != 1) dn_scal(c, beta, (size_t)N);
    }
    if (!TA && !TB) {            /* i-k-j: unit-stride inner loop over B's row */
        for (int i = 0; i < M; ++i)
            for (int k = 0; k < K; ++k) {
                float a = alpha * A[(size_t)i * lda + k];
                const float *b = B + (size_t)k * ldb;
                float *c = C + (size_t)i * ldc;
                for (int j = 0; j < N; ++j) c[j] += a * b[j];
            }
    } else if (TA && !TB) {      /* A is (K,M) */
        for (int k = 0; k < K; ++k)
            for (int i = 0; i < M; ++i) {
                float a = alpha * A[(size_t)k * lda + i];
                const float *b = B + (size_t)k * ldb;
                float *c = C + (size_t)i * ldc;
                for (int j = 0; j < N; ++j) c[j] += a * b[j];
            }
    } else if (!TA && TB) {      /* B is (N,K): dot products */
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                const float *a = A + (size_t)i * lda, *b = B + (size_t)j * ldb;
                float s = 0;
                for (int k = 0; k < K; ++k) s += a[k] * b[k];
                C[(size_t)i * ldc + j] += alpha * s;
            }
    } else {
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                float s = 0;
                for (int k = 0; k < K; ++k) s += A[(size_t)k * lda + i] * B[(size_t)j * ldb + k];
                C[(size_t)i * ldc + j] += alpha * s;
            }
    }
}

void dn_gemm(int TA, int TB, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (dn_gemm_fast(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
#ifdef DN_OPENBLAS
    if (K <= 0) { dn_gemm_ref(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); return; }
    cblas_sgemm(CblasRowMajor, TA ? CblasTrans : CblasNoTrans, TB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    dn_gemm_ref(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

/* ------------------------------------------------------------ split over workers */

/* C's columns cut into `parts` fixed blocks (so results do not depend on the
 * number of workers), each block one dn_gemm on one worker. */
typedef struct {
    int TA, TB, M, N, K, parts;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} split_job;

static void split_worker(void *arg, int w, int workers)
{
    const split_job *j = arg;
    for (int p = w; p < j->parts; p += workers) {
        int n0 = (int)((long long)p * j->N / j->parts), n1 = (int)((long long)(p + 1) * j->N / j->parts);
        const float *b = j->TB ? j->B + (size_t)n0 * j->ldb : j->B + n0;
        dn_gemm(j->TA, j->TB, j->M, n1 - n0, j->K, j->alpha, j->A, j->lda, b, j->ldb, j->beta, j->C + n0, j->ldc);
    }
}

#define SPLIT_PARTS 6          /* column blocks of a large GEMM */
#define SPLIT_MIN_COLS 64      /* narrowest block worth a worker */
#define SPLIT_MIN_FLOPS 16e6   /* smallest GEMM worth the workers */

void dn_gemm_parallel(int TA, int TB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc)
{
    int parts = N / SPLIT_MIN_COLS < SPLIT_PARTS ? N / SPLIT_MIN_COLS : SPLIT_PARTS;
    if (parts < 2 || 2.0 * M * N * K < SPLIT_MIN_FLOPS || dn_threads() < 2) {
        dn_gemm(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    split_job j = {TA, TB, M, N, K, parts, alpha, beta, A, B, C, lda, ldb, ldc};
    dn_parallel(split_worker, &j, dn_threads() < parts ? dn_threads() : parts);
}
