/*
 * gpu.c — the CUDA runtime side of the GPU backend: device selection, CUDA /
 * cuBLAS / cuDNN errors turned into dn_status ("file:line: call: message"),
 * device buffers (alloc, free, push, pull), cuBLAS (and with DN_CUDNN cuDNN)
 * handles per thread and device on the thread's default stream, row-major
 * GEMM on the device with dn_gemm's contract, and -gpus list parsing.
 * In a CPU build (no DN_GPU) the public calls exist and report that the
 * build has no GPU support.
 */
#include "internal.h"
#include <stdlib.h>

dn_status dn_gpu_parse_list(const char *list, int *out, int max, int *count)
{
    *count = 0;
    if (!list) return dn_fail(DN_ERR_ARG, "no device list");
    for (const char *c = list;;) {
        char *end;
        long d = strtol(c, &end, 10);
        if (end == c || *c < '0' || *c > '9' || d > 1023 || (*end && *end != ','))
            return dn_fail(DN_ERR_ARG, "-gpus %s: expected device numbers separated by commas (e.g. 0,1)", list);
        for (int i = 0; i < *count; ++i)
            if (out[i] == d) return dn_fail(DN_ERR_ARG, "-gpus %s: device %ld listed twice", list, d);
        if (*count == max) return dn_fail(DN_ERR_ARG, "-gpus %s: at most %d devices", list, max);
        out[(*count)++] = (int)d;
        if (!*end) return DN_OK;
        c = end + 1;
    }
}

#ifdef DN_GPU
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <pthread.h>
#ifdef DN_CUDNN
#include <cudnn.h>
#endif

#define MAX_DEVICES 64

int dn_gpu_built(void) { return 1; }

dn_status dn_gpu_cuda_status(int err, const char *call, const char *file, int line)
{
    if (err == 0) return DN_OK;
    dn_status s = err == (int)cudaErrorMemoryAllocation ? DN_ERR_NOMEM : DN_ERR_GPU;
    cudaGetLastError();   /* clear a non-sticky error so the next call starts clean */
    return dn_fail(s, "%s:%d: %s: %s (%s)", file, line, call, cudaGetErrorString((cudaError_t)err),
                   cudaGetErrorName((cudaError_t)err));
}

dn_status dn_gpu_cublas_status(int err, const char *call, const char *file, int line)
{
    if (err == 0) return DN_OK;
    dn_status s = err == (int)CUBLAS_STATUS_ALLOC_FAILED ? DN_ERR_NOMEM : DN_ERR_GPU;
    return dn_fail(s, "%s:%d: %s: %s", file, line, call, cublasGetStatusString((cublasStatus_t)err));
}

#ifdef DN_CUDNN
dn_status dn_gpu_cudnn_status(int err, const char *call, const char *file, int line)
{
    if (err == 0) return DN_OK;
    /* cuDNN 9's names; CUDNN_STATUS_ALLOC_FAILED (deprecated) is the host one */
    int nomem = err == (int)CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
                err == (int)CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
    dn_status s = nomem ? DN_ERR_NOMEM : DN_ERR_GPU;
    return dn_fail(s, "%s:%d: %s: %s", file, line, call, cudnnGetErrorString((cudnnStatus_t)err));
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

/* ------------------------------------------------------------ handles
 * cuBLAS and cuDNN handles are per thread and per device: several evolve
 * workers may train on one device at once, and neither library wants a
 * handle used by two threads at a time. Each handle runs on the thread's own
 * default stream (builds define CUDA_API_PER_THREAD_DEFAULT_STREAM and
 * compile kernels with --default-stream per-thread), so workers sharing a
 * device overlap instead of serialising on the legacy default stream.
 * A thread's handles are destroyed when it exits. */

typedef struct {
    cublasHandle_t blas[MAX_DEVICES];
#ifdef DN_CUDNN
    cudnnHandle_t dnn[MAX_DEVICES];
#endif
} thread_handles;

static pthread_key_t handles_key;
static pthread_once_t handles_once = PTHREAD_ONCE_INIT;

static void destroy_handles(void *p)
{
    thread_handles *t = p;
    int current = 0;
    cudaGetDevice(&current);
    for (int d = 0; d < MAX_DEVICES; ++d) {
        if (t->blas[d]) { cudaSetDevice(d); cublasDestroy(t->blas[d]); }
#ifdef DN_CUDNN
        if (t->dnn[d]) { cudaSetDevice(d); cudnnDestroy(t->dnn[d]); }
#endif
    }
    cudaSetDevice(current);
    free(t);
}

static void make_key(void) { pthread_key_create(&handles_key, destroy_handles); }

/* This thread's handles and the current device (or a failure). */
static dn_status my_handles(thread_handles **out, int *dev)
{
    DN_TRY(DN_CUDA(cudaGetDevice(dev)));
    if (*dev < 0 || *dev >= MAX_DEVICES) return dn_fail(DN_ERR_GPU, "GPU %d: too many devices", *dev);
    pthread_once(&handles_once, make_key);
    thread_handles *t = pthread_getspecific(handles_key);
    if (!t) {
        if (!(t = calloc(1, sizeof *t))) return dn_fail(DN_ERR_NOMEM, "out of memory for GPU handles");
        pthread_setspecific(handles_key, t);
    }
    *out = t;
    return DN_OK;
}

/* The cuBLAS handle of this thread on the current device, created on first use. */
static dn_status blas_handle(cublasHandle_t *out)
{
    thread_handles *t = NULL;
    int dev = 0;
    DN_TRY(my_handles(&t, &dev));
    if (!t->blas[dev]) {
        cublasHandle_t h = NULL;
        DN_TRY(DN_CUBLAS(cublasCreate(&h)));
        dn_status s = DN_CUBLAS(cublasSetStream(h, cudaStreamPerThread));
        if (s != DN_OK) { cublasDestroy(h); return s; }
        t->blas[dev] = h;
    }
    *out = t->blas[dev];
    return DN_OK;
}

#ifdef DN_CUDNN
/* The cuDNN handle of this thread on the current device, created on first use. */
dn_status dn_gpu_cudnn_handle(cudnnHandle_t *out)
{
    thread_handles *t = NULL;
    int dev = 0;
    DN_TRY(my_handles(&t, &dev));
    if (!t->dnn[dev]) {
        cudnnHandle_t h = NULL;
        DN_TRY(DN_CUDNN_CALL(cudnnCreate(&h)));
        dn_status s = DN_CUDNN_CALL(cudnnSetStream(h, cudaStreamPerThread));
        if (s != DN_OK) { cudnnDestroy(h); return s; }
        t->dnn[dev] = h;
    }
    *out = t->dnn[dev];
    return DN_OK;
}
#endif

dn_status dn_gpu_alloc(size_t n, float **out)
{
    void *p = NULL;
    size_t bytes;
    *out = NULL;
    if (!dn_mul_ok(n ? n : 1, sizeof(float), &bytes))
        return dn_fail(DN_ERR_NOMEM, "device buffer of %zu floats is too large", n);
    DN_TRY(DN_CUDA(cudaMalloc(&p, bytes)));
    dn_status s = DN_CUDA(cudaMemset(p, 0, bytes));
    if (s != DN_OK) { cudaFree(p); return s; }
    *out = p;
    return DN_OK;
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
dn_status dn_network_to_gpu(dn_network *net, int index) { (void)net; (void)index; return no_gpu(); }
dn_status dn_network_pull(const dn_network *net) { (void)net; return DN_OK; }
dn_status dn_network_push(dn_network *net) { (void)net; return DN_OK; }
void dn_gpu_network_free(dn_network *net) { (void)net; }
dn_status dn_gpu_set_batch(dn_network *net) { (void)net; return no_gpu(); }
dn_status dn_gpu_forward(dn_network *net) { (void)net; return no_gpu(); }
dn_status dn_gpu_backward(dn_network *net) { (void)net; return no_gpu(); }
dn_status dn_gpu_update_layer(dn_layer *l, float lr, float B, float decay, float momentum)
{
    (void)l; (void)lr; (void)B; (void)decay; (void)momentum;
    return no_gpu();
}

#endif
