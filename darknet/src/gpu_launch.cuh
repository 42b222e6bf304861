/*
 * gpu_launch.cuh — what every CUDA source shares: the number of blocks for n
 * elements, a launch's status, the grid-stride loop and the block-wide sum.
 * Include it after defining THREADS (threads per block), which
 * tests/gpu_emu/cu2cpp rewrites to 1 in each .cu for the host emulator (it
 * inlines this header, so its __shared__ memory is checked like the .cu's).
 */
#ifndef DN_GPU_LAUNCH_CUH
#define DN_GPU_LAUNCH_CUH
#ifndef THREADS
#error "define THREADS before including gpu_launch.cuh"
#endif
#include <cuda_runtime.h>

/* Blocks of THREADS for n elements (at least 1, at most what a grid-stride loop needs). */
static unsigned blocks_for(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    if (b < 1) b = 1;
    return b > 65535u * 32u ? 65535u * 32u : (unsigned)b;
}

/* The status of the last launch as the launchers return it (0: queued). */
static int launched(void) { return (int)cudaGetLastError(); }

#define GRID_LOOP(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
                             i += (size_t)blockDim.x * gridDim.x)

/* Sum of v over the block (blockDim.x == THREADS, a power of two), returned
 * to every thread: a tree reduction in shared memory. */
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
#endif
