/*
 * cuda_emu.c — the CUDA runtime emulated on the host, so that the GPU code
 * paths of an EMU=1 build (make EMU=1, make test-gpu-emu) run without a GPU.
 * Kernels: include/cuda_runtime.h and cu2cpp (real blocks: fibers.c);
 * cuBLAS: cublas_emu.c.
 *
 * Devices: DN_EMU_DEVICES of them (default 2). The current device belongs to
 * the host thread (cudaSetDevice; 0 until set). Device memory is host memory
 * from malloc, filled with 0xff bytes (NaN floats, so a read before the first
 * write shows), and recorded in a registry of buffers so that every call can
 * check what a real device would reject:
 *   - cudaMemcpy: the direction against where each pointer really is, and the
 *     device side inside one buffer; cudaMemset likewise;
 *   - cudaFree: only what cudaMalloc returned (or NULL);
 *   - kernel and cuBLAS pointer arguments: memory of the current device
 *     (peer access is never enabled).
 * A failing call returns CUDA's error code and is the thread's last error
 * (cudaGetLastError). The registry keeps addresses plus a constant offset,
 * not pointers, so a buffer never freed is a leak LeakSanitizer reports with
 * the stack that allocated it.
 *
 * Not modelled: asynchrony (every call has finished when it returns, so a
 * missing synchronisation cannot show), streams, device memory size (only
 * DN_EMU_FAIL_ALLOC_AFTER / gpu_emu_alloc_limit make allocations fail),
 * unified memory, peer access, device properties.
 */
#include "cuda_runtime_api.h"
#include "gpu_emu.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEVICES 64
#define HIDE ((uintptr_t)1 << 62)   /* registry keys: address + HIDE (not a pointer to LeakSanitizer) */

typedef struct {
    uintptr_t key;   /* address + HIDE */
    size_t bytes;
    int device;
} buffer;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static buffer *buffers;           /* sorted by key; under lock */
static size_t nbuffers, capacity;
static long allocs_left = -1;     /* allocations that may still succeed; -1: no limit */
static size_t in_use[MAX_DEVICES], peak[MAX_DEVICES];
static long launches[MAX_DEVICES];

static int ndevices;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static _Thread_local int current;               /* this host thread's device */
static _Thread_local cudaError_t last_error;

/* ------------------------------------------------------------ configuration */

static void print_stats(void)
{
    for (int d = 0; d < ndevices; ++d) {
        pthread_mutex_lock(&lock);
        long n = launches[d];
        size_t p = peak[d];
        pthread_mutex_unlock(&lock);
        if (n || p) fprintf(stderr, "gpu_emu: device %d: %ld launches, peak %zu bytes\n", d, n, p);
    }
    gpu_emu_counts c;
    gpu_emu_block_counts(&c);
    if (c.blocks)
        fprintf(stderr, "gpu_emu: real blocks: %ld blocks, %ld threads, %ld barriers, %ld warp operations (%ld lanes)\n",
                c.blocks, c.threads, c.barriers, c.warp_ops, c.lanes);
}

static long env_long(const char *name, long fallback, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi) {
        fprintf(stderr, "gpu_emu: %s=%s is not a number in [%ld, %ld]; using %ld\n", name, v, lo, hi, fallback);
        return fallback;
    }
    return n;
}

static void configure(void)
{
    ndevices = (int)env_long("DN_EMU_DEVICES", 2, 0, MAX_DEVICES);
    allocs_left = env_long("DN_EMU_FAIL_ALLOC_AFTER", -1, 0, 1L << 40);
    if (getenv("DN_EMU_STATS") && *getenv("DN_EMU_STATS") && strcmp(getenv("DN_EMU_STATS"), "0") != 0)
        atexit(print_stats);
}

static int device_count(void)
{
    pthread_once(&once, configure);
    return ndevices;
}

static cudaError_t fail(cudaError_t err)
{
    last_error = err;
    return err;
}

void gpu_emu_set_error(int err) { last_error = (cudaError_t)err; }

int gpu_emu_device_ok(int *device)
{
    *device = current;
    if (device_count() == 0) { last_error = cudaErrorNoDevice; return 0; }
    return 1;
}

/* ------------------------------------------------------------ the registry (callers hold lock) */

/* Index of the buffer holding address a, or -1. */
static long find(uintptr_t a)
{
    uintptr_t key = a + HIDE;
    size_t lo = 0, hi = nbuffers;   /* first buffer with buffers[i].key > key */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (buffers[mid].key <= key) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return -1;
    const buffer *b = &buffers[lo - 1];
    return key < b->key + b->bytes ? (long)(lo - 1) : -1;
}

static int insert(void *p, size_t bytes, int device)
{
    if (nbuffers == capacity) {
        size_t cap = capacity ? 2 * capacity : 256;
        buffer *grown = realloc(buffers, cap * sizeof *grown);
        if (!grown) return -1;
        buffers = grown;
        capacity = cap;
    }
    uintptr_t key = (uintptr_t)p + HIDE;
    size_t at = nbuffers;
    while (at > 0 && buffers[at - 1].key > key) --at;
    memmove(&buffers[at + 1], &buffers[at], (nbuffers - at) * sizeof *buffers);
    buffers[at] = (buffer){key, bytes, device};
    ++nbuffers;
    in_use[device] += bytes;
    if (in_use[device] > peak[device]) peak[device] = in_use[device];
    return 0;
}

static const char *where(const void *p)
{
    return p ? "host memory" : "NULL";
}

/* ------------------------------------------------------------ checks (gpu_emu.h) */

int gpu_emu_is_device(const void *p)
{
    pthread_mutex_lock(&lock);
    int r = find((uintptr_t)p) >= 0;
    pthread_mutex_unlock(&lock);
    return r;
}

int gpu_emu_check_pointer(const void *p, int device, const char *who, int arg)
{
    if (!p) return 0;
    pthread_mutex_lock(&lock);
    long i = find((uintptr_t)p);
    int owner = i >= 0 ? buffers[i].device : -1;
    pthread_mutex_unlock(&lock);
    if (owner == device) return 0;
    if (owner < 0)
        fprintf(stderr, "gpu_emu: %s, argument %d: %p is host memory, not device memory\n", who, arg, p);
    else
        fprintf(stderr, "gpu_emu: %s, argument %d: %p is memory of device %d, but device %d is current\n", who, arg,
                p, owner, device);
    return -1;
}

int gpu_emu_check_range(const void *p, size_t bytes, int device, const char *who)
{
    pthread_mutex_lock(&lock);
    long i = p ? find((uintptr_t)p) : -1;
    buffer b = i >= 0 ? buffers[i] : (buffer){0, 0, -1};
    pthread_mutex_unlock(&lock);
    if (i < 0) {
        fprintf(stderr, "gpu_emu: %s: %p is %s, not device memory\n", who, p, where(p));
        return -1;
    }
    size_t offset = (uintptr_t)p + HIDE - b.key;
    if (bytes > b.bytes - offset) {
        fprintf(stderr, "gpu_emu: %s: %zu bytes at offset %zu of a %zu-byte device buffer\n", who, bytes, offset,
                b.bytes);
        return -1;
    }
    if (device >= 0 && b.device != device) {
        fprintf(stderr, "gpu_emu: %s: %p is memory of device %d, but device %d is current\n", who, p, b.device,
                device);
        return -1;
    }
    return 0;
}

void gpu_emu_unsupported(const char *what, const char *where_)
{
    fprintf(stderr, "gpu_emu: %s (in %s) is not emulated\n", what, where_);
    abort();
}

int gpu_emu_may_alloc(void)
{
    device_count();
    pthread_mutex_lock(&lock);
    int ok = allocs_left != 0;
    if (allocs_left > 0) --allocs_left;
    pthread_mutex_unlock(&lock);
    return ok;
}

void gpu_emu_count_launch(int device)
{
    pthread_mutex_lock(&lock);
    ++launches[device];
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------ for tests (gpu_emu.h) */

void gpu_emu_alloc_limit(long n)
{
    device_count();   /* the environment is read first, so it cannot override this later */
    pthread_mutex_lock(&lock);
    allocs_left = n < 0 ? -1 : n;
    pthread_mutex_unlock(&lock);
}

long gpu_emu_buffers(int device)
{
    long n = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nbuffers; ++i) n += device < 0 || buffers[i].device == device;
    pthread_mutex_unlock(&lock);
    return n;
}

size_t gpu_emu_bytes(int device)
{
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (int d = 0; d < MAX_DEVICES; ++d) n += device < 0 || d == device ? in_use[d] : 0;
    pthread_mutex_unlock(&lock);
    return n;
}

long gpu_emu_launches(int device)
{
    pthread_mutex_lock(&lock);
    long n = device >= 0 && device < MAX_DEVICES ? launches[device] : 0;
    pthread_mutex_unlock(&lock);
    return n;
}

/* ------------------------------------------------------------ devices */

cudaError_t cudaGetDeviceCount(int *count)
{
    if (!count) return fail(cudaErrorInvalidValue);
    *count = device_count();
    return *count ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int device)
{
    int n = device_count();
    if (n == 0) return fail(cudaErrorNoDevice);
    if (device < 0 || device >= n) return fail(cudaErrorInvalidDevice);
    current = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    if (!device) return fail(cudaErrorInvalidValue);
    if (device_count() == 0) return fail(cudaErrorNoDevice);
    *device = current;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    return device_count() ? cudaSuccess : fail(cudaErrorNoDevice);
}

/* ------------------------------------------------------------ memory */

cudaError_t cudaMalloc(void **ptr, size_t bytes)
{
    int device;
    if (!ptr) return fail(cudaErrorInvalidValue);
    *ptr = NULL;
    if (!gpu_emu_device_ok(&device)) return cudaErrorNoDevice;
    if (!bytes) return cudaSuccess;
    if (!gpu_emu_may_alloc()) return fail(cudaErrorMemoryAllocation);
    void *p = malloc(bytes);
    if (!p) return fail(cudaErrorMemoryAllocation);
    memset(p, 0xff, bytes);
    pthread_mutex_lock(&lock);
    int r = insert(p, bytes, device);
    pthread_mutex_unlock(&lock);
    if (r) { free(p); return fail(cudaErrorMemoryAllocation); }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr)
{
    if (!ptr) return cudaSuccess;
    pthread_mutex_lock(&lock);
    long i = find((uintptr_t)ptr);
    int ok = i >= 0 && buffers[i].key == (uintptr_t)ptr + HIDE;
    if (ok) {
        in_use[buffers[i].device] -= buffers[i].bytes;
        memmove(&buffers[i], &buffers[i + 1], (nbuffers - (size_t)i - 1) * sizeof *buffers);
        --nbuffers;
    }
    pthread_mutex_unlock(&lock);
    if (!ok) {
        fprintf(stderr, "gpu_emu: cudaFree(%p): not a pointer cudaMalloc returned\n", ptr);
        return fail(cudaErrorInvalidValue);
    }
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *ptr, int value, size_t bytes)
{
    int device;
    if (!gpu_emu_device_ok(&device)) return cudaErrorNoDevice;
    if (!bytes) return cudaSuccess;
    if (gpu_emu_check_range(ptr, bytes, -1, "cudaMemset")) return fail(cudaErrorInvalidValue);
    memset(ptr, value, bytes);
    return cudaSuccess;
}

static const char *const kind_names[] = {"HostToHost", "HostToDevice", "DeviceToHost", "DeviceToDevice",
                                         "Default"};

/* One side of a copy: device memory (a range of one buffer) or host memory. */
static int side_ok(const void *p, size_t bytes, int on_device, const char *side, cudaMemcpyKind kind)
{
    char who[96];
    snprintf(who, sizeof who, "cudaMemcpy%s %s", kind_names[kind], side);
    if (on_device) return gpu_emu_check_range(p, bytes, -1, who) == 0;
    if (!p || gpu_emu_is_device(p)) {
        fprintf(stderr, "gpu_emu: %s: %p is %s, not host memory\n", who, p, p ? "device memory" : "NULL");
        return 0;
    }
    return 1;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    int device;
    if ((unsigned)kind > cudaMemcpyDefault) return fail(cudaErrorInvalidMemcpyDirection);
    if (!gpu_emu_device_ok(&device)) return cudaErrorNoDevice;
    if (!bytes) return cudaSuccess;
    int dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    int src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) { dst_dev = gpu_emu_is_device(dst); src_dev = gpu_emu_is_device(src); }
    if (!side_ok(dst, bytes, dst_dev, "destination", kind) || !side_ok(src, bytes, src_dev, "source", kind))
        return fail(cudaErrorInvalidValue);
    memmove(dst, src, bytes);
    return cudaSuccess;
}

/* ------------------------------------------------------------ errors */

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

static const struct {
    cudaError_t err;
    const char *name, *text;
} errors[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration", "invalid configuration argument"},
    {cudaErrorInvalidMemcpyDirection, "cudaErrorInvalidMemcpyDirection", "invalid copy direction for memcpy"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorIllegalAddress, "cudaErrorIllegalAddress", "an illegal memory access was encountered"},
};

const char *cudaGetErrorName(cudaError_t err)
{
    for (size_t i = 0; i < sizeof errors / sizeof *errors; ++i)
        if (errors[i].err == err) return errors[i].name;
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t err)
{
    for (size_t i = 0; i < sizeof errors / sizeof *errors; ++i)
        if (errors[i].err == err) return errors[i].text;
    return "unknown error";
}
