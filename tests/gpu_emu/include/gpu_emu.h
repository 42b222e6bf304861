/*
 * gpu_emu.h — the host emulator's own calls (tests/gpu_emu), beside the
 * CUDA and cuBLAS names it emulates. Tests of an EMU=1 build (the Makefile
 * defines DN_GPU_EMU there) use the first group to inject faults and to
 * count device memory; the second group is for the emulator's own parts
 * (the kernel launcher in cuda_runtime.h, fibers.c, cublas_emu.c).
 *
 * Environment, read once:
 *   DN_EMU_DEVICES=N            devices (default 2; 0: cudaErrorNoDevice)
 *   DN_EMU_FAIL_ALLOC_AFTER=N   the first N cudaMalloc / cublasCreate calls
 *                               succeed, every later one fails with
 *                               cudaErrorMemoryAllocation (a full device)
 *   DN_EMU_STATS=1              at exit, one stderr line per device used:
 *                               kernel launches, GEMMs, peak memory; in the
 *                               full mode one more: blocks, threads, barriers
 *                               and warp operations run with several threads
 *   DN_EMU_ORDER=reverse        full mode: threads of a block (between two
 *                               barriers) and blocks of a grid run last to
 *                               first (default forward: first to last)
 *
 * Two modes, chosen at build time. One thread per block (make EMU=1, in
 * build-emu/): cu2cpp sets THREADS and WARP to 1. Real blocks (make EMU=1
 * EMU_BLOCKS=full, in build-emu-full/; GPU_EMU_FULL is defined): THREADS
 * and WARP keep their values and each block runs as cooperative fibers with
 * real __syncthreads barriers and warp operations (fibers.c).
 */
#ifndef GPU_EMU_H
#define GPU_EMU_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ for tests */

/* From now on `n` more allocations succeed, then every one fails; n < 0:
 * no limit (the default unless DN_EMU_FAIL_ALLOC_AFTER is set). */
void gpu_emu_alloc_limit(long n);
/* Live device buffers and their bytes on `device` (-1: all devices). */
long gpu_emu_buffers(int device);
size_t gpu_emu_bytes(int device);
/* Kernel launches and GEMMs run on `device` so far. */
long gpu_emu_launches(int device);
/* Full mode: what ran so far, all host threads together. A barrier or warp
 * operation counts when it completed with more than one thread; lanes: the
 * threads of those warp operations, all added up. */
typedef struct { long blocks, threads, barriers, warp_ops, lanes; } gpu_emu_counts;
void gpu_emu_block_counts(gpu_emu_counts *c);

/* ------------------------------------------------------------ for the emulator */

/* Whether the calling thread has a usable current device; sets the last
 * error (cudaErrorNoDevice) when not. Its index in *device. */
int gpu_emu_device_ok(int *device);
/* Whether one more device allocation may happen (the alloc limit). */
int gpu_emu_may_alloc(void);
/* Record err as the calling thread's last error (what cudaGetLastError returns). */
void gpu_emu_set_error(int err);
/* Count a launch (or GEMM) on `device`. */
void gpu_emu_count_launch(int device);
/* 0 when p is NULL or device memory of `device`; else a message on stderr
 * naming `who` (the kernel or call and argument) and -1. */
int gpu_emu_check_pointer(const void *p, int device, const char *who, int arg);
/* 0 when [p, p + bytes) lies in one device buffer of `device` (any device
 * when device < 0); else a message naming `who` and -1. */
int gpu_emu_check_range(const void *p, size_t bytes, int device, const char *who);
/* Whether p points into device memory (of any device). */
int gpu_emu_is_device(const void *p);
/* A CUDA feature the emulator does not model: message and abort(). */
void gpu_emu_unsupported(const char *what, const char *where);

/* Full mode (fibers.c). A thread index as CUDA's uint3. */
typedef struct gpu_emu_uint3 { unsigned x, y, z; } gpu_emu_uint3;
/* Runs block `block` of `kernel`: dim.x * dim.y * dim.z threads, each as a
 * fiber calling body(arg) with *thread_idx set to its index while it runs.
 * Returns when all returned; a kernel error (divergent barrier, bad mask,
 * deadlock...) is a message and abort(). */
void gpu_emu_run_block(const char *kernel, gpu_emu_uint3 block, gpu_emu_uint3 dim, gpu_emu_uint3 *thread_idx,
                       void (*body)(void *), void *arg);
/* Whether DN_EMU_ORDER=reverse. */
int gpu_emu_reverse_order(void);
/* __syncthreads of the running thread, written at file:line. */
void gpu_emu_syncthreads(const char *file, int line);
/* A warp operation of the running thread: the value it returns (shuffles:
 * the source lane's value, bits as deposited; votes: the ballot or 0/1). */
enum { GPU_EMU_SHFL_IDX, GPU_EMU_SHFL_UP, GPU_EMU_SHFL_DOWN, GPU_EMU_SHFL_XOR, GPU_EMU_SYNCWARP, GPU_EMU_BALLOT,
       GPU_EMU_ANY, GPU_EMU_ALL };
unsigned long long gpu_emu_warp_op(int op, unsigned mask, unsigned long long value, int arg, int width,
                                   const char *file, int line);
/* A __shared__ variable reached by a thread: filled with 0xff bytes when
 * this is the first time in the running block. */
void gpu_emu_shared_fresh(void *p, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
