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
 * Then it runs the kernel once per (block, thread), one after the other, on
 * the calling host thread. blockIdx, threadIdx, blockDim and gridDim are
 * thread_local, so several host threads (evolve workers, data-parallel
 * replicas) run kernels at once; __shared__ variables are thread_local too.
 *
 * What this does NOT cover: threads of a block running together. cu2cpp
 * sets THREADS and WARP to 1, so a block is one thread and a warp one lane:
 * shared-memory reductions across threads, __syncthreads ordering and warp
 * shuffles are never exercised (their code paths degenerate to one thread),
 * nor are races, real parallelism or timing. __syncthreads in a block of
 * several threads, a warp shuffle across lanes and dynamic shared memory
 * abort with a message instead of giving wrong answers. Pointers inside
 * struct arguments are not checked.
 */
#ifndef GPU_EMU_CUDA_RUNTIME_H
#define GPU_EMU_CUDA_RUNTIME_H
#include "cuda_runtime_api.h"
#include "gpu_emu.h"

#ifdef __cplusplus
#include <math.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* Internal linkage: each converted .cu has its own indexes and launcher. */
namespace {

__attribute__((unused)) thread_local uint3 blockIdx, threadIdx;
__attribute__((unused)) thread_local dim3 blockDim, gridDim;

inline unsigned gpu_emu_block_threads() { return blockDim.x * blockDim.y * blockDim.z; }

inline void __syncthreads()
{
    if (gpu_emu_block_threads() != 1) gpu_emu_unsupported("__syncthreads in a block of several threads", "a kernel");
}

/* Lane `lanemask` away: only lane 0 exists (WARP is 1), so only a mask of 0 is meaningful. */
template <typename T> inline T __shfl_xor_sync(unsigned mask, T v, int lanemask, int width = 32)
{
    (void)mask; (void)width;
    if (lanemask != 0) gpu_emu_unsupported("__shfl_xor_sync across lanes", "a kernel");
    return v;
}

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
        for (blockIdx.z = 0; blockIdx.z < grid.z; ++blockIdx.z)
            for (blockIdx.y = 0; blockIdx.y < grid.y; ++blockIdx.y)
                for (blockIdx.x = 0; blockIdx.x < grid.x; ++blockIdx.x)
                    for (threadIdx.z = 0; threadIdx.z < block.z; ++threadIdx.z)
                        for (threadIdx.y = 0; threadIdx.y < block.y; ++threadIdx.y)
                            for (threadIdx.x = 0; threadIdx.x < block.x; ++threadIdx.x) kernel(args...);
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
