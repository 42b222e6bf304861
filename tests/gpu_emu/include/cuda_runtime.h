/*
 * cuda_runtime.h — the runtime API (cuda_runtime_api.h) plus, in C++, just
 * enough of the CUDA kernel language to compile the .cu files of darknet/src
 * as plain C++ for the host emulator (tests/gpu_emu/cu2cpp rewrites each
 * launch `k<<<grid, block>>>(args)` as `gpu_emu_kernel(k, "k", grid,
 * block)(args)`).
 *
 * A launch checks its configuration (as CUDA: at most 1024 threads a block,
 * grid.x < 2^31, grid.y and grid.z <= 65535), that a device is current, and
 * that every pointer argument is NULL or memory of the current device; any
 * failure is the launch error cudaGetLastError returns, and nothing runs.
 * Then it runs the blocks one after the other on the calling host thread.
 * blockIdx, threadIdx, blockDim and gridDim are thread_local, so several
 * host threads (evolve workers, data-parallel replicas) run kernels at once;
 * __shared__ variables are thread_local statics too, so with one block at a
 * time per host thread they are per block.
 *
 * Two modes (gpu_emu.h):
 *
 * One thread per block (make EMU=1; the default). cu2cpp sets THREADS and
 * WARP to 1, so a block is one thread and a warp one lane, and the kernel
 * runs once per (block, thread), each to its end. Shared-memory reductions
 * across threads, __syncthreads ordering and warp shuffles are never
 * exercised (their code paths degenerate to one thread); __syncthreads in a
 * block of several threads and a shuffle across lanes abort with a message
 * instead of giving wrong answers.
 *
 * Real blocks (make EMU=1 EMU_BLOCKS=full; GPU_EMU_FULL). THREADS and WARP
 * keep their values; each block's threads run as cooperative fibers
 * (fibers.c): __syncthreads is a barrier of the block, the warp operations
 * (__shfl_sync, __shfl_up_sync, __shfl_down_sync, __shfl_xor_sync,
 * __syncwarp, __ballot_sync, __any_sync, __all_sync) exchange values between
 * the 32 lanes of a warp (lanes by linear thread index, as CUDA) after all
 * lanes of the mask arrived, and what is undefined on a GPU (a divergent
 * barrier, a mask without the caller or with a lane that returned, a
 * deadlock) is an error that stops the program. Shuffles move up to 8 bytes.
 *
 * Neither mode covers real parallelism: threads between two barriers run one
 * after the other (in a fixed order, DN_EMU_ORDER chooses which), so a data
 * race only shows when its result depends on that order; nor memory fences,
 * atomics, timing, or warps running in lockstep (code that relies on
 * implicit warp synchrony without __syncwarp is not caught). Dynamic shared
 * memory aborts with a message. Pointers inside struct arguments are not
 * checked.
 */
#ifndef GPU_EMU_CUDA_RUNTIME_H
#define GPU_EMU_CUDA_RUNTIME_H
#include "cuda_runtime_api.h"
#include "gpu_emu.h"

#ifdef __cplusplus
#include <math.h>
#ifdef GPU_EMU_FULL
#include <string.h>
#include <tuple>
#include <type_traits>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local

typedef gpu_emu_uint3 uint3;
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* Internal linkage: each converted .cu has its own indexes and launcher. */
namespace {

__attribute__((unused)) thread_local uint3 blockIdx, threadIdx;
__attribute__((unused)) thread_local dim3 blockDim, gridDim;

#ifndef GPU_EMU_FULL
/* ------------------------------------------------------------ one thread per block */

inline unsigned gpu_emu_block_threads() { return blockDim.x * blockDim.y * blockDim.z; }

inline void __syncthreads()
{
    if (gpu_emu_block_threads() != 1) gpu_emu_unsupported("__syncthreads in a block of several threads", "a kernel");
}

/* Only lane 0 exists (WARP is 1): a shuffle may only read the caller's own value. */
template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int lanemask, int width = 32)
{
    (void)mask; (void)width;
    if (lanemask != 0) gpu_emu_unsupported("__shfl_xor_sync across lanes", "a kernel");
    return v;
}
template <typename T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    (void)mask; (void)width;
    if (delta != 0) gpu_emu_unsupported("__shfl_down_sync across lanes", "a kernel");
    return v;
}
template <typename T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    (void)mask; (void)width;
    if (delta != 0) gpu_emu_unsupported("__shfl_up_sync across lanes", "a kernel");
    return v;
}
template <typename T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32)
{
    (void)mask; (void)width;
    if (src != 0) gpu_emu_unsupported("__shfl_sync across lanes", "a kernel");
    return v;
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { (void)mask; }
inline unsigned __ballot_sync(unsigned mask, int pred) { (void)mask; return pred != 0; }
inline int __any_sync(unsigned mask, int pred) { (void)mask; return pred != 0; }
inline int __all_sync(unsigned mask, int pred) { (void)mask; return pred != 0; }
#else
/* ------------------------------------------------------------ real blocks (fibers.c) */

constexpr int warpSize = 32;

inline void __syncthreads(const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    gpu_emu_syncthreads(file, line);
}

template <typename T> inline T gpu_emu_shfl(int op, unsigned mask, T v, int arg, int width, const char *file, int line)
{
    static_assert(sizeof(T) <= sizeof(unsigned long long) && std::is_trivially_copyable<T>::value,
                  "the emulator shuffles values of at most 8 bytes");
    unsigned long long bits = 0;
    memcpy(&bits, &v, sizeof v);
    bits = gpu_emu_warp_op(op, mask, bits, arg, width, file, line);
    memcpy(&v, &bits, sizeof v);
    return v;
}
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = warpSize, const char *file = __builtin_FILE(),
                     int line = __builtin_LINE())
{
    return gpu_emu_shfl(GPU_EMU_SHFL_IDX, mask, v, src, width, file, line);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize, const char *file = __builtin_FILE(),
                        int line = __builtin_LINE())
{
    return gpu_emu_shfl(GPU_EMU_SHFL_UP, mask, v, (int)delta, width, file, line);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize,
                          const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    return gpu_emu_shfl(GPU_EMU_SHFL_DOWN, mask, v, (int)delta, width, file, line);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lanemask, int width = warpSize, const char *file = __builtin_FILE(),
                         int line = __builtin_LINE())
{
    return gpu_emu_shfl(GPU_EMU_SHFL_XOR, mask, v, lanemask, width, file, line);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    gpu_emu_warp_op(GPU_EMU_SYNCWARP, mask, 0, 0, warpSize, file, line);
}
inline unsigned __ballot_sync(unsigned mask, int pred, const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    return (unsigned)gpu_emu_warp_op(GPU_EMU_BALLOT, mask, pred != 0, 0, warpSize, file, line);
}
inline int __any_sync(unsigned mask, int pred, const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    return (int)gpu_emu_warp_op(GPU_EMU_ANY, mask, pred != 0, 0, warpSize, file, line);
}
inline int __all_sync(unsigned mask, int pred, const char *file = __builtin_FILE(), int line = __builtin_LINE())
{
    return (int)gpu_emu_warp_op(GPU_EMU_ALL, mask, pred != 0, 0, warpSize, file, line);
}

/* A launch's kernel and arguments, for the fibers: each thread calls the
 * kernel with its own copy of the arguments, as on a GPU. */
template <typename... P> struct gpu_emu_args {
    void (*kernel)(P...);
    std::tuple<typename std::decay<P>::type...> args;
    static void run(void *p)
    {
        gpu_emu_args *a = static_cast<gpu_emu_args *>(p);
        std::apply(a->kernel, a->args);
    }
};
#endif

/* Kernel arguments: pointers must be device memory of the current device. */
template <typename T> inline bool gpu_emu_arg_ok(const T &, int, const char *, int) { return true; }
template <typename T> inline bool gpu_emu_arg_ok(T *p, int device, const char *kernel, int arg)
{
    return gpu_emu_check_pointer(p, device, kernel, arg) == 0;
}

template <typename... P> struct gpu_emu_launch {
    void (*kernel)(P...);
    const char *name;
    dim3 grid, block;
    size_t shared_bytes;

    bool config_ok() const
    {
        unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
        return threads >= 1 && threads <= 1024 && block.x <= 1024 && block.y <= 1024 && block.z <= 64 &&
               grid.x >= 1 && grid.x <= 2147483647u && grid.y >= 1 && grid.y <= 65535 && grid.z >= 1 &&
               grid.z <= 65535;
    }

    /* The arguments are converted to the kernel's parameter types once, as a launch does. */
    void operator()(P... args) const
    {
        int device = 0;
        if (!gpu_emu_device_ok(&device)) return;
        if (!config_ok()) { gpu_emu_set_error(cudaErrorInvalidConfiguration); return; }
        if (shared_bytes) gpu_emu_unsupported("dynamic shared memory", name);
        int arg = 0;
        bool ok = true;
        ((ok = gpu_emu_arg_ok(args, device, name, ++arg) && ok), ...);
        if (!ok) { gpu_emu_set_error(cudaErrorIllegalAddress); return; }
        gpu_emu_count_launch(device);
        gridDim = grid;
        blockDim = block;
#ifndef GPU_EMU_FULL
        for (blockIdx.z = 0; blockIdx.z < grid.z; ++blockIdx.z)
            for (blockIdx.y = 0; blockIdx.y < grid.y; ++blockIdx.y)
                for (blockIdx.x = 0; blockIdx.x < grid.x; ++blockIdx.x)
                    for (threadIdx.z = 0; threadIdx.z < block.z; ++threadIdx.z)
                        for (threadIdx.y = 0; threadIdx.y < block.y; ++threadIdx.y)
                            for (threadIdx.x = 0; threadIdx.x < block.x; ++threadIdx.x) kernel(args...);
#else
        gpu_emu_args<P...> a{kernel, {args...}};
        unsigned long long nblocks = (unsigned long long)grid.x * grid.y * grid.z;
        int reverse = gpu_emu_reverse_order();
        for (unsigned long long k = 0; k < nblocks; ++k) {
            unsigned long long b = reverse ? nblocks - 1 - k : k;
            blockIdx = uint3{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y),
                             (unsigned)(b / ((unsigned long long)grid.x * grid.y))};
            gpu_emu_run_block(name, blockIdx, uint3{block.x, block.y, block.z}, &threadIdx, &gpu_emu_args<P...>::run,
                              &a);
        }
#endif
    }
};

/* kernel<<<grid, block[, shared bytes[, stream]]>>>: every stream is the same here. */
template <typename... P>
inline gpu_emu_launch<P...> gpu_emu_kernel(void (*kernel)(P...), const char *name, dim3 grid, dim3 block,
                                           size_t shared_bytes = 0, cudaStream_t stream = 0)
{
    (void)stream;
    return gpu_emu_launch<P...>{kernel, name, grid, block, shared_bytes};
}

} /* namespace */
#endif /* __cplusplus */
#endif
