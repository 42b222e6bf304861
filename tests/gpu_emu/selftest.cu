/*
 * selftest.cu — the host emulator's own test, built from this CUDA source by
 * cu2cpp like the .cu files of darknet/src (BUILD/tests/gpu_emu/selftest; run by
 * tests/test_gpu_emu.sh in both modes).
 *
 * Both modes: a block-wide shared-memory reduction and the warp operations
 * (xor butterfly, shuffle down, an inclusive scan with shuffle up, a
 * broadcast, 8-lane segments, a ballot, a shuffle of doubles) give the
 * sums the host computes for the THREADS and WARP the mode compiled.
 *
 * Real blocks (GPU_EMU_FULL) also prove the mode is real: blocks have 256
 * threads and warps 32 lanes; the counters show barriers and warp
 * operations that ran with several threads; a kernel that leaves out its
 * barrier reads a value not yet written (so threads do not run in lockstep
 * and the reduction above needed its barriers); lanes are numbered by
 * linear thread index in 3-D blocks; __shared__ memory is NaN when a block
 * starts and shared by its threads; and each kind of undefined behaviour
 * (divergent barrier, bad masks, a lane that returned, a deadlock, a bad
 * width) stops a forked child with the emulator's message.
 * Prints "N passed, M failed"; exits non-zero on failure.
 */
#include <cuda_runtime.h>
#include "gpu_emu.h"
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 256
#define WARP 32
#define FULL_MASK 0xffffffffu
#define SEG (WARP < 8 ? WARP : 8)   /* lanes of a shuffle segment (width) */

static int passed, failed;
#define CHECK(cond, ...)                                                            \
    do {                                                                            \
        if (cond) ++passed;                                                         \
        else {                                                                      \
            ++failed;                                                               \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                    \
            fprintf(stderr, __VA_ARGS__);                                           \
            fputc('\n', stderr);                                                    \
        }                                                                           \
    } while (0)

/* ------------------------------------------------------------ kernels */

/* The reduction of darknet/src: right only if every __syncthreads is a barrier. */
static __device__ float block_sum(float v)
{
    __shared__ float s[THREADS];
    s[threadIdx.x] = v;
    __syncthreads();
    for (int k = THREADS / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
        __syncthreads();
    }
    float r = s[0];
    __syncthreads();
    return r;
}

/* One block per row: every thread gets the row's sum (twice, back to back). */
static __global__ void block_sum_kernel(const float *in, int len, float *every)
{
    float v = 0;
    for (int k = threadIdx.x; k < len; k += blockDim.x) v += in[(size_t)blockIdx.x * len + k];
    float a = block_sum(v), b = block_sum(2 * v);
    every[blockIdx.x * blockDim.x + threadIdx.x] = a;
    every[(gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x] = b;
}

enum { XOR_SUM, DOWN_SUM, UP_SCAN, BROADCAST, SEGMENT_SUM, BALLOT, ANY, ALL, RESULTS };

static __global__ void warp_kernel(const int *in, int *out, double *dout)
{
    size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    int lane = threadIdx.x % WARP, x = in[t], v;
    v = x;
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    out[t * RESULTS + XOR_SUM] = v;
    v = x;
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_down_sync(FULL_MASK, v, o);
    out[t * RESULTS + DOWN_SUM] = v;
    v = x;
    for (int o = 1; o < WARP; o <<= 1) {
        int u = __shfl_up_sync(FULL_MASK, v, o);
        if (lane >= o) v += u;
    }
    out[t * RESULTS + UP_SCAN] = v;
    out[t * RESULTS + BROADCAST] = __shfl_sync(FULL_MASK, x, 7 % WARP);
    v = x;
    for (int o = SEG / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o, SEG);
    out[t * RESULTS + SEGMENT_SUM] = v;
    out[t * RESULTS + BALLOT] = (int)__ballot_sync(FULL_MASK, x & 1);
    __syncwarp();
    out[t * RESULTS + ANY] = __any_sync(FULL_MASK, x == in[t - lane + WARP - 1]);   /* true: the last lane's own */
    out[t * RESULTS + ALL] = __all_sync(FULL_MASK, x > -50);
    double d = x * 0.5;
    for (int o = WARP / 2; o > 0; o >>= 1) d += __shfl_xor_sync(FULL_MASK, d, o);
    dout[t] = d;
}

#ifdef GPU_EMU_FULL
/* The block's size and warps, as the kernel sees them. */
static __global__ void shape_kernel(int *out)
{
    if (threadIdx.x == 0) out[blockIdx.x] = (int)blockDim.x;
    int lanes = __shfl_xor_sync(FULL_MASK, 1, 0);
    for (int o = WARP / 2; o > 0; o >>= 1) lanes += __shfl_xor_sync(FULL_MASK, lanes, o);
    if (threadIdx.x == 0) out[gridDim.x + blockIdx.x] = lanes;   /* 32: the warp's lanes, summed */
}

/* No barrier between the write and the neighbour's read: a race. */
static __global__ void race_kernel(float *out)
{
    __shared__ float s[THREADS];
    s[threadIdx.x] = (float)threadIdx.x;
    out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

/* __shared__ memory: NaN when a block starts (read before any write), then one
 * array for the whole block (thread 0's write seen by all after the barrier). */
static __global__ void shared_kernel(float *fresh, float *seen)
{
    __shared__ float s[THREADS];
    fresh[blockIdx.x * blockDim.x + threadIdx.x] = s[threadIdx.x];
    __syncthreads();
    if (threadIdx.x == 0) s[0] = 42.f + blockIdx.x;
    __syncthreads();
    seen[blockIdx.x * blockDim.x + threadIdx.x] = s[0];
}

/* 3-D blocks: indexes, and lanes by linear thread index (x fastest). */
static __global__ void index_kernel(int *out)
{
    int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int block = blockIdx.x + gridDim.x * blockIdx.y;
    int first = __shfl_sync(FULL_MASK, tid, 0);
    out[(block * 64 + tid) * 2] = (int)(blockIdx.y * 100000 + blockIdx.x * 10000 + threadIdx.z * 100 +
                                        threadIdx.y * 10 + threadIdx.x);
    out[(block * 64 + tid) * 2 + 1] = first;
}

/* Undefined behaviour, one kind per case; each must stop the program. */
static __global__ void bad_kernel(int which, int *out)
{
    int lane = threadIdx.x % WARP, v = (int)threadIdx.x;
    switch (which) {
    case 0:   /* a thread returns while the others wait at the barrier */
        if (threadIdx.x == 3) return;
        __syncthreads();
        break;
    case 1:   /* two barriers in divergent code */
        if (threadIdx.x < 32) __syncthreads();
        else __syncthreads();
        break;
    case 2:   /* a mask without the caller */
        v = __shfl_xor_sync(1u, v, 0);
        break;
    case 3:   /* a lane of the mask returned */
        if (threadIdx.x == 5) return;
        v = __shfl_xor_sync(FULL_MASK, v, 1);
        break;
    case 4:   /* reading a lane outside the mask */
        if (lane >= 16) return;
        v = __shfl_xor_sync(0xffffu, v, 16);
        break;
    case 5:   /* lane 0 at a shuffle, the others at the barrier */
        if (lane == 0) v = __shfl_xor_sync(FULL_MASK, v, 1);
        __syncthreads();
        break;
    case 6:   /* lanes disagree on the mask */
        v = __shfl_xor_sync(lane == 0 ? FULL_MASK : 0xfffffffeu, v, 1);
        break;
    case 7:   /* a width that is not a power of two */
        v = __shfl_xor_sync(FULL_MASK, v, 1, 3);
        break;
    case 8:   /* a mask naming lanes of a partial warp that do not exist */
        v = __shfl_xor_sync(FULL_MASK, v, 1);
        break;
    }
    out[threadIdx.x] = v;
}
#endif

/* ------------------------------------------------------------ host */

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) { fprintf(stderr, "cudaMalloc failed\n"); exit(1); }
    return p;
}

static void test_block_sum(void)
{
    const int rows = 5, len = 1000;
    float *in = (float *)malloc(sizeof(float) * rows * len), *every = (float *)malloc(sizeof(float) * 2 * rows * THREADS);
    for (int i = 0; i < rows * len; ++i) in[i] = (float)(i % 97) - 40.f;
    float *d_in = (float *)dev_alloc(sizeof(float) * rows * len), *d_every = (float *)dev_alloc(sizeof(float) * 2 * rows * THREADS);
    cudaMemcpy(d_in, in, sizeof(float) * rows * len, cudaMemcpyHostToDevice);
    gpu_emu_counts before, after;
    gpu_emu_block_counts(&before);
    block_sum_kernel<<<rows, THREADS>>>(d_in, len, d_every);
    CHECK(cudaGetLastError() == cudaSuccess, "block_sum_kernel launches");
    gpu_emu_block_counts(&after);
    cudaMemcpy(every, d_every, sizeof(float) * 2 * rows * THREADS, cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int r = 0; r < rows; ++r) {
        float want = 0;
        for (int k = 0; k < len; ++k) want += in[r * len + k];   /* integers: exact in any order */
        for (int t = 0; t < THREADS; ++t) {
            float a = every[r * THREADS + t], b = every[(rows + r) * THREADS + t];
            if (a != want || b != 2 * want) {
                if (!wrong++) fprintf(stderr, "block_sum row %d thread %d: %g and %g, want %g and %g\n", r, t, a, b, want, 2 * want);
            }
        }
    }
    CHECK(!wrong, "block_sum: %d of %d sums wrong (THREADS %d)", wrong, 2 * rows * THREADS, THREADS);
#ifdef GPU_EMU_FULL
    long barriers = after.barriers - before.barriers;   /* per block_sum: 1 + log2(256) + 1 */
    CHECK(barriers == rows * 2 * 10, "block_sum: %ld barriers of 256 threads counted, want %d", barriers, rows * 2 * 10);
    CHECK(after.blocks - before.blocks == rows && after.threads - before.threads == rows * 256,
          "block_sum: %ld blocks of %ld threads", after.blocks - before.blocks, after.threads - before.threads);
#else
    CHECK(after.blocks == 0 && after.barriers == 0, "one thread per block: no fibers ran");
#endif
    cudaFree(d_in);
    cudaFree(d_every);
    free(in);
    free(every);
}

static void test_warps(void)
{
    const int blocks = 3, n = blocks * THREADS;
    int *in = (int *)malloc(sizeof(int) * n), *out = (int *)malloc(sizeof(int) * n * RESULTS);
    double *dout = (double *)malloc(sizeof(double) * n);
    for (int i = 0; i < n; ++i) in[i] = (i * 37) % 101 - 50;   /* -50 in some warps only */
    int *d_in = (int *)dev_alloc(sizeof(int) * n), *d_out = (int *)dev_alloc(sizeof(int) * n * RESULTS);
    double *d_dout = (double *)dev_alloc(sizeof(double) * n);
    cudaMemcpy(d_in, in, sizeof(int) * n, cudaMemcpyHostToDevice);
    gpu_emu_counts before, after;
    gpu_emu_block_counts(&before);
    warp_kernel<<<blocks, THREADS>>>(d_in, d_out, d_dout);
    CHECK(cudaGetLastError() == cudaSuccess, "warp_kernel launches");
    gpu_emu_block_counts(&after);
    cudaMemcpy(out, d_out, sizeof(int) * n * RESULTS, cudaMemcpyDeviceToHost);
    cudaMemcpy(dout, d_dout, sizeof(double) * n, cudaMemcpyDeviceToHost);
    static const char *const names[] = {"xor sum", "down sum", "up scan", "broadcast", "segment sum", "ballot", "any",
                                        "all"};
    int wrong[RESULTS] = {0}, dwrong = 0;
    for (int t = 0; t < n; ++t) {
        int base = t - t % WARP, lane = t % WARP, sum = 0, scan = 0, seg = 0, ballot = 0, all = 1;
        double dsum = 0;
        for (int l = 0; l < WARP; ++l) {
            sum += in[base + l];
            dsum += in[base + l] * 0.5;
            if (l <= lane) scan += in[base + l];
            if (l / SEG == lane / SEG) seg += in[base + l];
            if (in[base + l] & 1) ballot |= 1 << l;
            all &= in[base + l] > -50;
        }
        int want[RESULTS] = {sum, sum, scan, in[base + 7 % WARP], seg, ballot, 1, all};
        for (int k = 0; k < RESULTS; ++k) {
            if (k == DOWN_SUM && lane != 0) continue;   /* only lane 0 has the whole sum */
            if (out[t * RESULTS + k] != want[k] && !wrong[k]++)
                fprintf(stderr, "%s, thread %d: %d, want %d\n", names[k], t, out[t * RESULTS + k], want[k]);
        }
        if (dout[t] != dsum) ++dwrong;
    }
    for (int k = 0; k < RESULTS; ++k) CHECK(!wrong[k], "warp %s: %d threads wrong (WARP %d)", names[k], wrong[k], WARP);
    CHECK(!dwrong, "warp xor sum of doubles: %d threads wrong", dwrong);
#ifdef GPU_EMU_FULL
    /* per warp: 5 + 5 + 5 + 1 + 3 + 1 + 1 + 1 + 1 + 5 operations of 32 lanes */
    long ops = after.warp_ops - before.warp_ops, lanes = after.lanes - before.lanes, want = n / 32 * 28;
    CHECK(ops == want && lanes == 32 * want, "warps: %ld operations over %ld lanes, want %ld over %ld", ops, lanes,
          want, 32 * want);
#endif
    cudaFree(d_in);
    cudaFree(d_out);
    cudaFree(d_dout);
    free(in);
    free(out);
    free(dout);
}

#ifdef GPU_EMU_FULL
static void test_real_blocks(void)
{
    int *d_shape = (int *)dev_alloc(sizeof(int) * 4), shape[4];
    shape_kernel<<<2, THREADS>>>(d_shape);
    cudaMemcpy(shape, d_shape, sizeof shape, cudaMemcpyDeviceToHost);
    CHECK(THREADS == 256 && WARP == 32 && shape[0] == 256 && shape[1] == 256 && shape[2] == 32 && shape[3] == 32,
          "real blocks: THREADS %d, WARP %d; blocks of %d and %d threads, warps of %d and %d lanes", THREADS, WARP,
          shape[0], shape[1], shape[2], shape[3]);
    cudaFree(d_shape);

    float *d_race = (float *)dev_alloc(sizeof(float) * THREADS), race[THREADS];
    race_kernel<<<1, THREADS>>>(d_race);
    cudaMemcpy(race, d_race, sizeof race, cudaMemcpyDeviceToHost);
    int unwritten = 0;
    for (int t = 0; t < THREADS; ++t) unwritten += isnan(race[t]);
    CHECK(unwritten > 0, "without its barrier a block reads shared memory not yet written (%d threads did)", unwritten);
    cudaFree(d_race);

    const int blocks = 3, n = blocks * THREADS;
    float *d_fresh = (float *)dev_alloc(sizeof(float) * n), *d_seen = (float *)dev_alloc(sizeof(float) * n);
    float *fresh = (float *)malloc(sizeof(float) * n), *seen = (float *)malloc(sizeof(float) * n);
    shared_kernel<<<blocks, THREADS>>>(d_fresh, d_seen);
    cudaMemcpy(fresh, d_fresh, sizeof(float) * n, cudaMemcpyDeviceToHost);
    cudaMemcpy(seen, d_seen, sizeof(float) * n, cudaMemcpyDeviceToHost);
    int stale = 0, unseen = 0;
    for (int i = 0; i < n; ++i) {
        stale += !isnan(fresh[i]);
        unseen += seen[i] != 42.f + i / THREADS;
    }
    CHECK(!stale, "__shared__ is NaN when a block starts (%d threads read something else)", stale);
    CHECK(!unseen, "__shared__ is one array per block (%d threads missed thread 0's write)", unseen);
    cudaFree(d_fresh);
    cudaFree(d_seen);
    free(fresh);
    free(seen);

    int *d_idx = (int *)dev_alloc(sizeof(int) * 6 * 64 * 2), *idx = (int *)malloc(sizeof(int) * 6 * 64 * 2);
    index_kernel<<<dim3(3, 2), dim3(8, 4, 2)>>>(d_idx);
    cudaMemcpy(idx, d_idx, sizeof(int) * 6 * 64 * 2, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int b = 0; b < 6; ++b)
        for (int t = 0; t < 64; ++t) {
            int want = (b / 3) * 100000 + (b % 3) * 10000 + t / 32 * 100 + t / 8 % 4 * 10 + t % 8;
            if (idx[(b * 64 + t) * 2] != want || idx[(b * 64 + t) * 2 + 1] != t - t % 32) {
                if (!bad++) fprintf(stderr, "index_kernel block %d thread %d: %d %d\n", b, t, idx[(b * 64 + t) * 2], idx[(b * 64 + t) * 2 + 1]);
            }
        }
    CHECK(!bad, "3-D blocks: indexes and lanes by linear index (%d threads wrong)", bad);
    cudaFree(d_idx);
    free(idx);
}

/* Runs bad_kernel case `which` in a child: it must abort with `message`. */
static void expect_kernel_error(int which, unsigned threads, const char *message)
{
    int fds[2];
    if (pipe(fds)) { perror("pipe"); exit(1); }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        int *d_out = (int *)dev_alloc(sizeof(int) * threads);
        bad_kernel<<<1, threads>>>(which, d_out);
        cudaDeviceSynchronize();
        _exit(0);
    }
    close(fds[1]);
    char text[8192];
    size_t got = 0;
    ssize_t r;
    while ((r = read(fds[0], text + got, sizeof text - 1 - got)) > 0) got += (size_t)r;
    text[got] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    CHECK(aborted && strstr(text, message) && strstr(text, "bad_kernel"),
          "undefined behaviour %d: %s with \"%s\"; got %s: %s", which, "abort", message,
          aborted ? "abort" : "no abort", text);
}

static void test_kernel_errors(void)
{
    expect_kernel_error(0, 64, "returned while 63 thread(s) wait at __syncthreads");
    expect_kernel_error(1, 64, "threads wait at different __syncthreads");
    expect_kernel_error(2, 64, "which leaves out the caller");
    expect_kernel_error(3, 64, "waits for lane 5, which returned");
    expect_kernel_error(4, 64, "reads lane 16, which its mask 0x0000ffff leaves out");
    expect_kernel_error(5, 64, "deadlock");
    expect_kernel_error(6, 64, "disagree");
    expect_kernel_error(7, 64, "width 3");
    expect_kernel_error(8, 40, "names lane 8, which does not exist");
}
#endif

int main(void)
{
    if (cudaSetDevice(0) != cudaSuccess) { fprintf(stderr, "no emulated device\n"); return 1; }
    test_block_sum();
    test_warps();
#ifdef GPU_EMU_FULL
    test_real_blocks();
    test_kernel_errors();
    const char *mode = "real blocks";
#else
    const char *mode = "one thread per block";
#endif
    printf("tests/gpu_emu/selftest.cu (%s%s): %d passed, %d failed\n", mode,
           gpu_emu_reverse_order() ? ", reverse order" : "", passed, failed);
    return failed != 0;
}
