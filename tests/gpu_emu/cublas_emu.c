/*
 * cublas_emu.c — the cuBLAS calls darknet/src/gpu.c makes, emulated on the
 * host for EMU=1 builds (see cuda_emu.c). cublasSgemm is a plain reference
 * loop (column-major, as cuBLAS) after cuBLAS's own argument checks
 * (CUBLAS_STATUS_INVALID_VALUE for a bad size or leading dimension) and the
 * emulator's: A, B and C lie in device buffers of the current device over
 * their whole extent, alpha and beta are host pointers (host pointer mode),
 * the handle was created on the current device and no other host thread is
 * using it at the same moment. beta == 0 does not read C, as cuBLAS.
 *
 * Not modelled: cuBLAS's summation order and speed, streams (recorded,
 * otherwise ignored), pointer mode device, math modes, other routines.
 */
#include "cublas_v2.h"
#include "gpu_emu.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct cublasContext {
    int device;            /* current when it was created */
    cudaStream_t stream;
    atomic_int busy;       /* a call is running on it */
};

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    int device;
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = NULL;
    if (!gpu_emu_device_ok(&device)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!gpu_emu_may_alloc()) return CUBLAS_STATUS_ALLOC_FAILED;   /* a real handle holds device memory */
    cublasHandle_t h = calloc(1, sizeof *h);
    if (!h) return CUBLAS_STATUS_ALLOC_FAILED;
    h->device = device;
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    free(handle);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

/* A matrix of `rows` x `cols` (column-major, leading dimension ld) on `device`. */
static int matrix_ok(const float *p, int rows, int cols, int ld, int device, const char *name)
{
    char who[64];
    snprintf(who, sizeof who, "cublasSgemm %s (%d x %d, ld %d)", name, rows, cols, ld);
    if (rows == 0 || cols == 0) return 1;
    size_t extent = ((size_t)(cols - 1) * (size_t)ld + (size_t)rows) * sizeof(float);
    return gpu_emu_check_range(p, extent, device, who) == 0;
}

static int scalar_ok(const float *p, const char *name)
{
    if (p && !gpu_emu_is_device(p)) return 1;
    fprintf(stderr, "gpu_emu: cublasSgemm %s: %p is not a host pointer (pointer mode host)\n", name, (const void *)p);
    return 0;
}

static int max1(int a) { return a > 1 ? a : 1; }

/* C = alpha op(A) op(B) + beta C, column-major; op(A) m x k, op(B) k x n. */
static void sgemm_ref(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc)
{
    size_t a_row = ta ? (size_t)lda : 1, a_l = ta ? 1 : (size_t)lda;   /* strides of op(A)[i][l] */
    size_t b_l = tb ? (size_t)ldb : 1, b_col = tb ? 1 : (size_t)ldb;   /* strides of op(B)[l][j] */
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
            const float *a = A + i * a_row, *b = B + j * b_col;
            double s = 0;
            for (int l = 0; l < k; ++l) s += (double)a[l * a_l] * b[l * b_l];
            float *c = &C[i + (size_t)j * ldc];
            *c = alpha * (float)s + (beta == 0.f ? 0.f : beta * *c);
        }
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    int ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    if ((unsigned)transa > CUBLAS_OP_C || (unsigned)transb > CUBLAS_OP_C || m < 0 || n < 0 || k < 0 ||
        lda < max1(ta ? k : m) || ldb < max1(tb ? n : k) || ldc < max1(m))
        return CUBLAS_STATUS_INVALID_VALUE;
    int device;
    if (!gpu_emu_device_ok(&device)) return CUBLAS_STATUS_EXECUTION_FAILED;
    if (handle->device != device) {
        fprintf(stderr, "gpu_emu: cublasSgemm: a handle of device %d used while device %d is current\n",
                handle->device, device);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if (atomic_exchange(&handle->busy, 1)) {
        fprintf(stderr, "gpu_emu: cublasSgemm: a handle used by two host threads at once\n");
        return CUBLAS_STATUS_INTERNAL_ERROR;
    }
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if (!scalar_ok(alpha, "alpha") || !scalar_ok(beta, "beta") ||
        !matrix_ok(A, ta ? k : m, ta ? m : k, lda, device, "A") ||
        !matrix_ok(B, tb ? n : k, tb ? k : n, ldb, device, "B") || !matrix_ok(C, m, n, ldc, device, "C"))
        st = CUBLAS_STATUS_EXECUTION_FAILED;   /* what an illegal address in the kernel gives */
    else if (m && n) {
        gpu_emu_count_launch(device);
        sgemm_ref(ta, tb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
    }
    atomic_store(&handle->busy, 0);
    return st;
}

static const struct {
    cublasStatus_t status;
    const char *name, *text;
} statuses[] = {
    {CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS", "success"},
    {CUBLAS_STATUS_NOT_INITIALIZED, "CUBLAS_STATUS_NOT_INITIALIZED", "the library was not initialized"},
    {CUBLAS_STATUS_ALLOC_FAILED, "CUBLAS_STATUS_ALLOC_FAILED", "the resource allocation failed"},
    {CUBLAS_STATUS_INVALID_VALUE, "CUBLAS_STATUS_INVALID_VALUE", "an invalid numeric value was used as an argument"},
    {CUBLAS_STATUS_EXECUTION_FAILED, "CUBLAS_STATUS_EXECUTION_FAILED", "the GPU program failed to execute"},
    {CUBLAS_STATUS_INTERNAL_ERROR, "CUBLAS_STATUS_INTERNAL_ERROR", "an internal operation failed"},
};

const char *cublasGetStatusName(cublasStatus_t status)
{
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; ++i)
        if (statuses[i].status == status) return statuses[i].name;
    return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; ++i)
        if (statuses[i].status == status) return statuses[i].text;
    return "unknown status";
}
