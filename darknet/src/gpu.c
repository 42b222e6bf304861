/*
 * gpu.c — the CUDA runtime side of the GPU backend: device selection, CUDA /
 * cuBLAS / cuDNN errors turned into dn_status ("file:line: call: message"),
 * device buffers (alloc, free, push, pull), one cuBLAS handle per device and
 * row-major GEMM on the device with dn_gemm's contract.
 * In a CPU build (no DN_GPU) the public calls exist and report that the
 * build has no GPU support.
 */
#include "internal.h"
#include <stdlib.h>

#ifdef DN_GPU
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <pthread.h>
#ifdef DN_CUDNN
#include <cudnn.h>
#endif

#define MAX_DEVICES 64

static _Thread_local dn_status sticky = DN_OK;   /* first GPU failure of a void pass */
static pthread_mutex_t handle_lock = PTHREAD_MUTEX_INITIALIZER;
static cublasHandle_t handles[MAX_DEVICES];

int dn_gpu_built(void) { return 1; }

dn_status dn_gpu_take_error(void)
{
    dn_status s = sticky;
    sticky = DN_OK;
    return s;
}

dn_status dn_gpu_note(dn_status s)
{
    if (s != DN_OK && sticky == DN_OK) sticky = s;
    return s;
}

dn_status dn_gpu_cuda_status(int err, const char *call, const char *file, int line)
{
    if (err == 0) return DN_OK;
    dn_status s = err == (int)cudaErrorMemoryAllocation ? DN_ERR_NOMEM : DN_ERR_GPU;
    cudaGetLastError();   /* clear a non-sticky error so the next call starts clean */
    return dn_gpu_note(dn_fail(s, "%s:%d: %s: %s (%s)", file, line, call, cudaGetErrorString((cudaError_t)err),
                               cudaGetErrorName((cudaError_t)err)));
}

dn_status dn_gpu_cublas_status(int err, const char *call, const char *file, int line)
{
    if (err == 0) return DN_OK;
    dn_status s = err == (int)CUBLAS_STATUS_ALLOC_FAILED ? DN_ERR_NOMEM : DN_ERR_GPU;
    return dn_gpu_note(dn_fail(s, "%s:%d: %s: %s", file, line, call, cublasGetStatusString((cublasStatus_t)err)));
}

#ifdef DN_CUDNN
dn_status dn_gpu_cudnn_status(int err, const char *call, const char *file, int line)
{
    if (err == 0) return DN_OK;
    dn_status s = err == (int)CUDNN_STATUS_ALLOC_FAILED ? DN_ERR_NOMEM : DN_ERR_GPU;
    return dn_gpu_note(dn_fail(s, "%s:%d: %s: %s", file, line, call, cudnnGetErrorString((cudnnStatus_t)err)));
}
#endif

int dn_gpu_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) { cudaGetLastError(); return 0; }
    return n;
}

dn_status dn_gpu_use(int index)
{
    int n = dn_gpu_count();
    if (n == 0) return dn_fail(DN_ERR_GPU, "no CUDA device");
    if (index < 0 || index >= n || index >= MAX_DEVICES)
        return dn_fail(DN_ERR_GPU, "GPU %d does not exist (%d CUDA device%s)", index, n, n == 1 ? "" : "s");
    return DN_CUDA(cudaSetDevice(index));
}

/* The cuBLAS handle of the current device, created on first use. */
static dn_status blas_handle(cublasHandle_t *out)
{
    int dev = 0;
    DN_TRY(DN_CUDA(cudaGetDevice(&dev)));
    if (dev < 0 || dev >= MAX_DEVICES) return dn_gpu_note(dn_fail(DN_ERR_GPU, "GPU %d: too many devices", dev));
    pthread_mutex_lock(&handle_lock);
    dn_status s = DN_OK;
    if (!handles[dev]) s = DN_CUBLAS(cublasCreate(&handles[dev]));
    *out = handles[dev];
    pthread_mutex_unlock(&handle_lock);
    return s;
}

float *dn_gpu_alloc(size_t n)
{
    void *p = NULL;
    size_t bytes;
    if (!dn_mul_ok(n ? n : 1, sizeof(float), &bytes)) { dn_fail(DN_ERR_NOMEM, "device buffer of %zu floats is too large", n); return NULL; }
    if (DN_CUDA(cudaMalloc(&p, bytes)) != DN_OK) return NULL;
    if (DN_CUDA(cudaMemset(p, 0, bytes)) != DN_OK) { cudaFree(p); return NULL; }
    return p;
}

void dn_gpu_free(float *p)
{
    if (p) cudaFree(p);
}

dn_status dn_gpu_push(float *dst, const float *src, size_t n)
{
    if (!n) return DN_OK;
    return DN_CUDA(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyHostToDevice));
}

dn_status dn_gpu_pull(float *dst, const float *src, size_t n)
{
    if (!n) return DN_OK;
    return DN_CUDA(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost));
}

dn_status dn_gpu_copy(float *dst, const float *src, size_t n)
{
    if (!n || dst == src) return DN_OK;
    return DN_CUDA(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice));
}

/* Row-major C = alpha op(A) op(B) + beta C as column-major C^T = op(B)^T op(A)^T. */
dn_status dn_gpu_gemm(int TA, int TB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc)
{
    cublasHandle_t h = NULL;
    DN_TRY(blas_handle(&h));
    return DN_CUBLAS(cublasSgemm(h, TB ? CUBLAS_OP_T : CUBLAS_OP_N, TA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha,
                                 B, ldb, A, lda, &beta, C, ldc));
}

dn_status dn_gpu_sync(void) { return DN_CUDA(cudaDeviceSynchronize()); }

#else /* CPU build */

static dn_status no_gpu(void) { return dn_fail(DN_ERR_GPU, "this build has no GPU support (rebuild with make GPU=1)"); }

int dn_gpu_built(void) { return 0; }
int dn_gpu_count(void) { return 0; }
dn_status dn_gpu_use(int index) { (void)index; return no_gpu(); }
dn_status dn_gpu_take_error(void) { return DN_OK; }
dn_status dn_network_to_gpu(dn_network *net, int index) { (void)net; (void)index; return no_gpu(); }
dn_status dn_network_pull(const dn_network *net) { (void)net; return DN_OK; }
dn_status dn_network_push(dn_network *net) { (void)net; return DN_OK; }
void dn_gpu_network_free(dn_network *net) { (void)net; }
dn_status dn_gpu_set_batch(dn_network *net) { (void)net; return no_gpu(); }
dn_status dn_gpu_forward(dn_network *net) { (void)net; return no_gpu(); }
void dn_gpu_backward(dn_network *net) { (void)net; }
void dn_gpu_update_layer(dn_layer *l, float lr, float B, float decay, float momentum)
{
    (void)l; (void)lr; (void)B; (void)decay; (void)momentum;
}

#endif
