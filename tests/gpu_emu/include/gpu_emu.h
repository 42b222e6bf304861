/*
 * gpu_emu.h — the host emulator's own calls (tests/gpu_emu), beside the
 * CUDA and cuBLAS names it emulates. Tests of an EMU=1 build (the Makefile
 * defines DN_GPU_EMU there) use the first group to inject faults and to
 * count device memory; the second group is for the emulator's own parts
 * (the kernel launcher in cuda_runtime.h, cublas_emu.c).
 *
 * Environment, read once:
 *   DN_EMU_DEVICES=N            devices (default 2; 0: cudaErrorNoDevice)
 *   DN_EMU_FAIL_ALLOC_AFTER=N   the first N cudaMalloc / cublasCreate calls
 *                               succeed, every later one fails with
 *                               cudaErrorMemoryAllocation (a full device)
 *   DN_EMU_STATS=1              at exit, one stderr line per device used:
 *                               kernel launches, GEMMs, peak memory
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

#ifdef __cplusplus
}
#endif
#endif
