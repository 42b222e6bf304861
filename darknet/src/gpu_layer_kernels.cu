/*
 * gpu_layer_kernels.cu — CUDA kernels of the layer types without weights
 * (plus the losses): max / average / local average pooling, route copies,
 * shortcut sums, softmax, the cost losses and dropout. Each is the twin of
 * the CPU layer named in gpu_layer_kernels.h and computes the same formulas
 * (float summation order may differ). Backward passes gather (each thread
 * owns one element of the delta it adds to), so no kernel needs atomics and
 * results do not depend on scheduling. Only the extern "C" launchers are
 * visible to the C code.
 */
#include "gpu_layer_kernels.h"
#include <cuda_runtime.h>
#include <float.h>
#include <math.h>

#define THREADS 256      /* a power of two, a multiple of WARP */
#define WARP 32
#define FULL_MASK 0xffffffffu
#include "gpu_launch.cuh"


/* Rows r handled by whole warps: every lane of a warp sees the same r, so
 * the shuffles inside the loop always run with all 32 lanes. */
#define WARP_ROW_LOOP(r, rows) for (size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / WARP; r < (rows); \
                                    r += (size_t)blockDim.x * gridDim.x / WARP)

/* Blocks for one warp per row. */
static unsigned warp_blocks_for(size_t rows) { return blocks_for(rows * WARP); }

/* ------------------------------------------------------------ reductions */

static __device__ float warp_sum(float v)
{
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

/* The CPU's running maximum: a value replaces it only when strictly greater
 * (so NaNs never win). */
static __device__ float warp_max(float v)
{
    for (int o = WARP / 2; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(FULL_MASK, v, o);
        v = u > v ? u : v;
    }
    return v;
}

/* Blocks of a loss kernel: one partial sum each, at most DN_CUDA_PARTIALS. */
static unsigned loss_blocks(size_t n)
{
    unsigned b = blocks_for(n);
    return b > DN_CUDA_PARTIALS ? DN_CUDA_PARTIALS : b;
}

/* ------------------------------------------------------------ pooling windows */

/* Window of output o along one axis clipped to the input [0, len): [*lo, *hi). */
static __device__ void clip_window(int o, const dn_cuda_pool &p, int len, int *lo, int *hi)
{
    int a = o * p.stride - p.pad / 2, e = a + p.size;
    *lo = a < 0 ? 0 : a;
    *hi = e > len ? len : e;
}

/* Outputs [*lo, *hi) of out_len along one axis whose (unclipped) window
 * holds input position pos: o*stride + off <= pos < o*stride + off + size. */
static __device__ void covering(int pos, const dn_cuda_pool &p, int out_len, int *lo, int *hi)
{
    int rel = pos + p.pad / 2;   /* pos - off >= 0 */
    int first = rel - p.size + 1;
    *lo = first <= 0 ? 0 : (first + p.stride - 1) / p.stride;
    int last = rel / p.stride;
    *hi = last < out_len ? last + 1 : out_len;
}

/* ------------------------------------------------------------ maxpool */

/* One thread per output (plane, oy, ox). */
static __global__ void maxpool_forward_kernel(dn_cuda_pool p, const float *in, float *out, int *idx, size_t n)
{
    GRID_LOOP(i, n) {
        int ox = (int)(i % p.out_w), oy = (int)(i / p.out_w % p.out_h);
        size_t plane = i / ((size_t)p.out_w * p.out_h), base = plane * p.h * p.w;
        int y0, y1, x0, x1;
        clip_window(oy, p, p.h, &y0, &y1);
        clip_window(ox, p, p.w, &x0, &x1);
        if (y0 >= y1 || x0 >= x1) { out[i] = 0; idx[i] = -1; continue; }
        const float *src = in + base;
        int best_at = y0 * p.w + x0;
        float best = src[best_at];
        for (int y = y0; y < y1; ++y)
            for (int x = x0; x < x1; ++x) {
                int at = y * p.w + x;
                if (src[at] > best) { best = src[at]; best_at = at; }
            }
        out[i] = best;
        idx[i] = (int)(base + best_at);
    }
}

/* One thread per input cell (plane, y, x): the sum of the deltas of the
 * outputs whose winner it is, in output order. */
static __global__ void maxpool_backward_kernel(dn_cuda_pool p, const float *delta, const int *idx, float *in_delta,
                                               size_t n)
{
    GRID_LOOP(i, n) {
        int x = (int)(i % p.w), y = (int)(i / p.w % p.h);
        size_t plane = i / ((size_t)p.w * p.h), obase = plane * p.out_h * p.out_w;
        int i0, i1, j0, j1;
        covering(y, p, p.out_h, &i0, &i1);
        covering(x, p, p.out_w, &j0, &j1);
        float s = 0;
        for (int oy = i0; oy < i1; ++oy)
            for (int ox = j0; ox < j1; ++ox) {
                size_t o = obase + (size_t)oy * p.out_w + ox;
                if (idx[o] == (int)i) s += delta[o];
            }
        in_delta[i] += s;
    }
}

extern "C" int dn_cuda_maxpool_forward(const dn_cuda_pool *p, const float *in, float *out, int *idx)
{
    size_t n = (size_t)p->planes * p->out_h * p->out_w;
    if (!n) return 0;
    maxpool_forward_kernel<<<blocks_for(n), THREADS>>>(*p, in, out, idx, n);
    return launched();
}

extern "C" int dn_cuda_maxpool_backward(const dn_cuda_pool *p, const float *delta, const int *idx, float *in_delta)
{
    size_t n = (size_t)p->planes * p->h * p->w;
    if (!n) return 0;
    maxpool_backward_kernel<<<blocks_for(n), THREADS>>>(*p, delta, idx, in_delta, n);
    return launched();
}

/* ------------------------------------------------------------ local_avgpool */

/* In-image cells of output (oy, ox)'s window and their count (0: none). */
static __device__ int avg_window(const dn_cuda_pool &p, int oy, int ox, int *y0, int *y1, int *x0, int *x1)
{
    clip_window(oy, p, p.h, y0, y1);
    clip_window(ox, p, p.w, x0, x1);
    int n = (*y1 - *y0) * (*x1 - *x0);
    return (*y1 > *y0 && *x1 > *x0) ? n : 0;
}

static __global__ void local_avgpool_forward_kernel(dn_cuda_pool p, const float *in, float *out, size_t n)
{
    GRID_LOOP(i, n) {
        int ox = (int)(i % p.out_w), oy = (int)(i / p.out_w % p.out_h);
        const float *src = in + i / ((size_t)p.out_w * p.out_h) * p.h * p.w;
        int y0, y1, x0, x1, count = avg_window(p, oy, ox, &y0, &y1, &x0, &x1);
        float s = 0;
        for (int y = y0; y < y1; ++y)
            for (int x = x0; x < x1; ++x) s += src[y * p.w + x];
        out[i] = count ? s / count : 0;
    }
}

/* One thread per input cell: delta / count of every window holding it. */
static __global__ void local_avgpool_backward_kernel(dn_cuda_pool p, const float *delta, float *in_delta, size_t n)
{
    GRID_LOOP(i, n) {
        int x = (int)(i % p.w), y = (int)(i / p.w % p.h);
        const float *d = delta + i / ((size_t)p.w * p.h) * p.out_h * p.out_w;
        int i0, i1, j0, j1;
        covering(y, p, p.out_h, &i0, &i1);
        covering(x, p, p.out_w, &j0, &j1);
        float s = 0;
        for (int oy = i0; oy < i1; ++oy)
            for (int ox = j0; ox < j1; ++ox) {
                int y0, y1, x0, x1, count = avg_window(p, oy, ox, &y0, &y1, &x0, &x1);
                if (count) s += d[oy * p.out_w + ox] / count;
            }
        in_delta[i] += s;
    }
}

extern "C" int dn_cuda_local_avgpool_forward(const dn_cuda_pool *p, const float *in, float *out)
{
    size_t n = (size_t)p->planes * p->out_h * p->out_w;
    if (!n) return 0;
    local_avgpool_forward_kernel<<<blocks_for(n), THREADS>>>(*p, in, out, n);
    return launched();
}

extern "C" int dn_cuda_local_avgpool_backward(const dn_cuda_pool *p, const float *delta, float *in_delta)
{
    size_t n = (size_t)p->planes * p->h * p->w;
    if (!n) return 0;
    local_avgpool_backward_kernel<<<blocks_for(n), THREADS>>>(*p, delta, in_delta, n);
    return launched();
}

/* ------------------------------------------------------------ avgpool */

/* One warp per row. */
static __global__ void row_mean_kernel(const float *in, size_t rows, int len, float *out)
{
    int lane = threadIdx.x % WARP;
    WARP_ROW_LOOP(r, rows) {
        const float *row = in + r * len;
        float s = 0;
        for (int k = lane; k < len; k += WARP) s += row[k];
        s = warp_sum(s);
        if (lane == 0) out[r] = s / (float)len;
    }
}

static __global__ void row_mean_backward_kernel(const float *delta, int len, float *in_delta, size_t n)
{
    GRID_LOOP(i, n) in_delta[i] += delta[i / len] / (float)len;
}

extern "C" int dn_cuda_row_mean(const float *in, size_t rows, int len, float *out)
{
    if (!rows || len < 1) return 0;
    row_mean_kernel<<<warp_blocks_for(rows), THREADS>>>(in, rows, len, out);
    return launched();
}

extern "C" int dn_cuda_row_mean_backward(const float *delta, size_t rows, int len, float *in_delta)
{
    size_t n = rows * (size_t)(len > 0 ? len : 0);
    if (!n) return 0;
    row_mean_backward_kernel<<<blocks_for(n), THREADS>>>(delta, len, in_delta, n);
    return launched();
}

/* ------------------------------------------------------------ route */

static __global__ void copy_rows_kernel(float *dst, size_t dst_ld, const float *src, size_t src_ld, size_t len,
                                        size_t n, int add)
{
    GRID_LOOP(i, n) {
        size_t r = i / len, k = i % len;
        float v = src[r * src_ld + k];
        float *d = dst + r * dst_ld + k;
        *d = add ? *d + v : v;
    }
}

extern "C" int dn_cuda_copy_rows(float *dst, size_t dst_ld, const float *src, size_t src_ld, size_t rows, size_t len,
                                 int add)
{
    size_t n = rows * len;
    if (!n) return 0;
    copy_rows_kernel<<<blocks_for(n), THREADS>>>(dst, dst_ld, src, src_ld, len, n, add);
    return launched();
}

/* ------------------------------------------------------------ shortcut */

/* One thread per (b, k < minc, j < minh, i < minw): distinct threads write
 * distinct out positions (the spread factor keeps them apart). */
static __global__ void shortcut_add_kernel(dn_cuda_shortcut p, const float *add, float s1, float s2, float *out,
                                           int minw, int minh, int minc, size_t n)
{
    int stride = p.w1 / p.w2 < 1 ? 1 : p.w1 / p.w2;
    int sample = p.w2 / p.w1 < 1 ? 1 : p.w2 / p.w1;
    GRID_LOOP(t, n) {
        size_t i = t % minw, j = t / minw % minh, k = t / ((size_t)minw * minh) % minc;
        size_t b = t / ((size_t)minw * minh * minc);
        size_t oi = i * sample + (size_t)p.w2 * (j * sample + (size_t)p.h2 * (k + (size_t)p.c2 * b));
        size_t ai = i * stride + (size_t)p.w1 * (j * stride + (size_t)p.h1 * (k + (size_t)p.c1 * b));
        out[oi] = s1 * out[oi] + (add ? s2 * add[ai] : 0);
    }
}

extern "C" int dn_cuda_shortcut_add(const dn_cuda_shortcut *p, const float *add, float s1, float s2, float *out)
{
    if (p->w1 < 1 || p->w2 < 1) return 0;
    int minw = p->w1 < p->w2 ? p->w1 : p->w2, minh = p->h1 < p->h2 ? p->h1 : p->h2;
    int minc = p->c1 < p->c2 ? p->c1 : p->c2;
    size_t n = (size_t)p->batch * (minc > 0 ? minc : 0) * (minh > 0 ? minh : 0) * minw;
    if (!n) return 0;
    shortcut_add_kernel<<<blocks_for(n), THREADS>>>(*p, add, s1, s2, out, minw, minh, minc, n);
    return launched();
}

/* ------------------------------------------------------------ softmax */

/* One warp per slice: largest value, exponentials and their sum, divide. */
static __global__ void softmax_kernel(const float *in, size_t rows, int len, float temp, float *out)
{
    int lane = threadIdx.x % WARP;
    WARP_ROW_LOOP(r, rows) {
        const float *x = in + r * len;
        float *y = out + r * len;
        float largest = -FLT_MAX;
        for (int k = lane; k < len; k += WARP) largest = x[k] > largest ? x[k] : largest;
        largest = warp_max(largest);
        float sum = 0;
        for (int k = lane; k < len; k += WARP) {
            float e = expf((x[k] - largest) / temp);
            y[k] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        for (int k = lane; k < len; k += WARP) y[k] /= sum;   /* each lane rescales its own entries */
    }
}

extern "C" int dn_cuda_softmax(const float *in, size_t rows, int len, float temp, float *out)
{
    if (!rows || len < 1) return 0;
    softmax_kernel<<<warp_blocks_for(rows), THREADS>>>(in, rows, len, temp, out);
    return launched();
}

/* Block b writes partials[b]. */
static __global__ void softmax_cost_kernel(const float *p, const float *truth, size_t n, float *delta, float *partials)
{
    float s = 0;
    GRID_LOOP(i, n) {
        float t = truth[i], q = p[i];
        delta[i] = t - q;
        if (t != 0) s += -t * logf(q < FLT_MIN ? FLT_MIN : q);   /* a NaN q stays NaN */
    }
    s = block_sum(s);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

extern "C" int dn_cuda_softmax_cost(const float *p, const float *truth, size_t n, float *delta, float *partials,
                                    int *parts)
{
    *parts = 0;
    if (!n) return 0;
    unsigned b = loss_blocks(n);
    softmax_cost_kernel<<<b, THREADS>>>(p, truth, n, delta, partials);
    *parts = (int)b;
    return launched();
}

/* ------------------------------------------------------------ cost */

enum { COST_SSE, COST_L1, COST_SMOOTH };   /* darknet.h's dn_cost_type */

static __global__ void cost_kernel(const float *in, const float *truth, size_t n, int type, float *out, float *delta,
                                   float *partials)
{
    float s = 0;
    GRID_LOOP(i, n) {
        float diff = truth[i] - in[i], a = fabsf(diff), e, d;
        if (type == COST_SSE || (type == COST_SMOOTH && a < 1)) {   /* the CPU's branches, NaN included */
            e = diff * diff;
            d = diff;
        } else {
            e = type == COST_L1 ? a : 2 * a - 1;
            d = diff > 0 ? 1.f : -1.f;
        }
        out[i] = e;
        delta[i] = d;
        s += e;
    }
    s = block_sum(s);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

extern "C" int dn_cuda_cost(const float *in, const float *truth, size_t n, int type, float *out, float *delta,
                            float *partials, int *parts)
{
    *parts = 0;
    if (!n) return 0;
    unsigned b = loss_blocks(n);
    cost_kernel<<<b, THREADS>>>(in, truth, n, type, out, delta, partials);
    *parts = (int)b;
    return launched();
}

/* ------------------------------------------------------------ dropout */

static __global__ void dropout_kernel(const float *in, const float *rand, size_t n, float prob, float scale, float *out)
{
    GRID_LOOP(i, n) out[i] = rand[i] < prob ? 0 : in[i] * scale;
}

static __global__ void dropout_backward_kernel(const float *delta, const float *rand, size_t n, float prob,
                                               float scale, float *in_delta)
{
    GRID_LOOP(i, n) if (rand[i] >= prob) in_delta[i] += delta[i] * scale;
}

extern "C" int dn_cuda_dropout(const float *in, const float *rand, size_t n, float prob, float scale, float *out)
{
    if (!n) return 0;
    dropout_kernel<<<blocks_for(n), THREADS>>>(in, rand, n, prob, scale, out);
    return launched();
}

extern "C" int dn_cuda_dropout_backward(const float *delta, const float *rand, size_t n, float prob, float scale,
                                        float *in_delta)
{
    if (!n) return 0;
    dropout_backward_kernel<<<blocks_for(n), THREADS>>>(delta, rand, n, prob, scale, in_delta);
    return launched();
}
