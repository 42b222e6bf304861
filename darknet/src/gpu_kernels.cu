/*
 * gpu_kernels.cu — CUDA kernels of the GPU backend: vector helpers,
 * activations and their gradients, biases, im2col/col2im, batch norm and the
 * SGD update. Each kernel is the twin of the CPU code named in
 * gpu_kernels.h and computes the same formulas (float summation order may
 * differ). Only the extern "C" launchers are visible to the C code.
 */
#include "gpu_kernels.h"
#include <cuda_runtime.h>
#include <math.h>

#define THREADS 256
#define SELU_SCALE 1.0507f
#define SELU_ALPHA 1.6732f
#include "gpu_launch.cuh"

/* The activation ids of darknet.h's dn_activation, in order. */
enum { LOGISTIC, RELU, RELIE, LINEAR, RAMP, TANH, PLSE, LEAKY, ELU, LOGGY, STAIR, HARDTAN, LHTAN, SELU };


/* ------------------------------------------------------------ vectors */

__global__ void fill_kernel(float *x, size_t n, float v) { GRID_LOOP(i, n) x[i] = v; }
__global__ void axpy_kernel(float *y, float a, const float *x, size_t n) { GRID_LOOP(i, n) y[i] += a * x[i]; }

extern "C" int dn_cuda_fill(float *x, size_t n, float v)
{
    if (!n) return 0;
    fill_kernel<<<blocks_for(n), THREADS>>>(x, n, v);
    return launched();
}

extern "C" int dn_cuda_axpy(float *y, float a, const float *x, size_t n)
{
    if (!n) return 0;
    axpy_kernel<<<blocks_for(n), THREADS>>>(y, a, x, n);
    return launched();
}

/* ------------------------------------------------------------ activations (blas.c) */

__device__ float activate(float x, int a)
{
    switch (a) {
    case LOGISTIC: return 1.f / (1.f + expf(-x));
    case RELU: return x * (x > 0);
    case RELIE: return x > 0 ? x : .01f * x;
    case RAMP: return x * (x > 0) + .1f * x;
    case TANH: return tanhf(x);
    case PLSE:
        if (x < -4) return .01f * (x + 4);
        if (x > 4) return .01f * (x - 4) + 1;
        return .125f * x + .5f;
    case LEAKY: return x > 0 ? x : .1f * x;
    case ELU: return x >= 0 ? x : expf(x) - 1;
    case LOGGY: return 2.f / (1.f + expf(-x)) - 1;
    case STAIR: {
        int n = (int)floorf(x);
        if (n % 2 == 0) return floorf(x / 2);
        return (x - n) + floorf(x / 2);
    }
    case HARDTAN: return x < -1 ? -1 : (x > 1 ? 1 : x);
    case LHTAN:
        if (x < 0) return .001f * x;
        if (x > 1) return .001f * (x - 1) + 1;
        return x;
    case SELU: return x >= 0 ? SELU_SCALE * x : SELU_SCALE * SELU_ALPHA * (expf(x) - 1);
    default: return x;
    }
}

__device__ float gradient(float y, int a)
{
    switch (a) {
    case LOGISTIC: return y * (1 - y);
    case RELU: return y > 0;
    case RELIE: return y > 0 ? 1 : .01f;
    case RAMP: return (y > 0) + .1f;
    case TANH: return 1 - y * y;
    case PLSE: return (y < 0 || y > 1) ? .01f : .125f;
    case LEAKY: return y > 0 ? 1 : .1f;
    case ELU: return y >= 0 ? 1 : y + 1;
    case LOGGY: { float s = (y + 1) / 2; return 2 * (1 - s) * s; }
    case STAIR: return floorf(y) == y ? 0 : 1;
    case HARDTAN: return (y > -1 && y < 1);
    case LHTAN: return (y > 0 && y < 1) ? 1 : .001f;
    case SELU: return y >= 0 ? SELU_SCALE : y + SELU_SCALE * SELU_ALPHA;
    default: return 1;
    }
}

__global__ void activate_kernel(float *x, size_t n, int a) { GRID_LOOP(i, n) x[i] = activate(x[i], a); }
__global__ void gradient_kernel(const float *y, size_t n, int a, float *d) { GRID_LOOP(i, n) d[i] *= gradient(y[i], a); }

extern "C" int dn_cuda_activate(float *x, size_t n, int act)
{
    if (!n || act == LINEAR) return 0;
    activate_kernel<<<blocks_for(n), THREADS>>>(x, n, act);
    return launched();
}

extern "C" int dn_cuda_gradient(const float *y, size_t n, int act, float *delta)
{
    if (!n || act == LINEAR) return 0;
    gradient_kernel<<<blocks_for(n), THREADS>>>(y, n, act, delta);
    return launched();
}

/* ------------------------------------------------------------ biases */

__global__ void add_bias_kernel(float *out, const float *b, int c, int spatial, size_t n)
{
    GRID_LOOP(i, n) out[i] += b[(i / spatial) % c];
}

/* One block per channel. */
__global__ void backward_bias_kernel(float *bu, const float *d, int batch, int c, int spatial)
{
    int ch = blockIdx.x;
    float v = 0;
    for (int b = 0; b < batch; ++b)
        for (int k = threadIdx.x; k < spatial; k += blockDim.x) v += d[((size_t)b * c + ch) * spatial + k];
    v = block_sum(v);
    if (threadIdx.x == 0) bu[ch] += v;
}

extern "C" int dn_cuda_add_bias(float *out, const float *biases, int batch, int c, int spatial)
{
    size_t n = (size_t)batch * c * spatial;
    if (!n) return 0;
    add_bias_kernel<<<blocks_for(n), THREADS>>>(out, biases, c, spatial, n);
    return launched();
}

extern "C" int dn_cuda_backward_bias(float *bias_updates, const float *delta, int batch, int c, int spatial)
{
    if (c < 1) return 0;
    backward_bias_kernel<<<c, THREADS>>>(bias_updates, delta, batch, c, spatial);
    return launched();
}

/* ------------------------------------------------------------ im2col (im2col.c) */

/* col (c*size*size, out_h*out_w): row r = (ch*size + ky)*size + kx. */
__global__ void im2col_kernel(const float *im, int h, int w, int size, int stride, int pad, int out_h, int out_w,
                              float *col, size_t n)
{
    GRID_LOOP(i, n) {
        int ox = (int)(i % out_w), oy = (int)(i / out_w % out_h);
        size_t r = i / ((size_t)out_w * out_h);
        int kx = (int)(r % size), ky = (int)(r / size % size), ch = (int)(r / ((size_t)size * size));
        int y = oy * stride + ky - pad, x = ox * stride + kx - pad;
        col[i] = (y >= 0 && y < h && x >= 0 && x < w) ? im[((size_t)ch * h + y) * w + x] : 0.f;
    }
}

/* Gathers every column entry that reads pixel (ch, y, x) and adds the sum. */
__global__ void col2im_kernel(const float *col, int h, int w, int size, int stride, int pad, int out_h, int out_w,
                              float *im, size_t n)
{
    GRID_LOOP(i, n) {
        int x = (int)(i % w), y = (int)(i / w % h), ch = (int)(i / ((size_t)w * h));
        float s = 0;
        for (int ky = 0; ky < size; ++ky) {
            int ty = y + pad - ky;
            if (ty < 0 || ty % stride) continue;
            int oy = ty / stride;
            if (oy >= out_h) continue;
            for (int kx = 0; kx < size; ++kx) {
                int tx = x + pad - kx;
                if (tx < 0 || tx % stride) continue;
                int ox = tx / stride;
                if (ox >= out_w) continue;
                size_t r = ((size_t)ch * size + ky) * size + kx;
                s += col[(r * out_h + oy) * out_w + ox];
            }
        }
        im[i] += s;
    }
}

extern "C" int dn_cuda_im2col(const float *im, int c, int h, int w, int size, int stride, int pad, int out_h,
                              int out_w, float *col)
{
    size_t n = (size_t)c * size * size * out_h * out_w;
    if (!n) return 0;
    im2col_kernel<<<blocks_for(n), THREADS>>>(im, h, w, size, stride, pad, out_h, out_w, col, n);
    return launched();
}

extern "C" int dn_cuda_col2im(const float *col, int c, int h, int w, int size, int stride, int pad, int out_h,
                              int out_w, float *im)
{
    size_t n = (size_t)c * h * w;
    if (!n) return 0;
    col2im_kernel<<<blocks_for(n), THREADS>>>(col, h, w, size, stride, pad, out_h, out_w, im, n);
    return launched();
}

/* ------------------------------------------------------------ SGD (network.c) */

__global__ void sgd_kernel(float *w, float *u, size_t n, float decay_b, float lr_b, float momentum)
{
    GRID_LOOP(i, n) {
        float ui = u[i];
        if (decay_b != 0.f) ui += -decay_b * w[i];
        w[i] += lr_b * ui;
        u[i] = ui * momentum;
    }
}

extern "C" int dn_cuda_sgd(float *w, float *u, size_t n, float decay_b, float lr_b, float momentum)
{
    if (!n) return 0;
    sgd_kernel<<<blocks_for(n), THREADS>>>(w, u, n, decay_b, lr_b, momentum);
    return launched();
}

/* ------------------------------------------------------------ batch norm (blas.c) */

/* Element k of channel ch over (batch, spatial). */
__device__ size_t bn_at(const dn_cuda_bn &p, int ch, size_t k)
{
    size_t b = k / p.spatial, s = k % p.spatial;
    return (b * p.c + ch) * p.spatial + s;
}

/* One block per channel: statistics, rolling update, normalise, scale, bias. */
__global__ void bn_forward_kernel(dn_cuda_bn p, float *data, int train)
{
    int ch = blockIdx.x;
    size_t count = (size_t)p.batch * p.spatial;
    float n = (float)count, denom = n > 1 ? n - 1 : 1;
    float mean, var;
    if (train) {
        float s = 0;
        for (size_t k = threadIdx.x; k < count; k += blockDim.x) s += data[bn_at(p, ch, k)];
        mean = block_sum(s) / n;
        float v = 0;
        for (size_t k = threadIdx.x; k < count; k += blockDim.x) {
            float d = data[bn_at(p, ch, k)] - mean;
            v += d * d;
        }
        var = block_sum(v) / denom;
        if (threadIdx.x == 0) {
            p.mean[ch] = mean;
            p.variance[ch] = var;
            p.rolling_mean[ch] = .99f * p.rolling_mean[ch] + .01f * mean;
            p.rolling_variance[ch] = .99f * p.rolling_variance[ch] + .01f * var;
        }
    } else {
        mean = p.rolling_mean[ch];
        var = p.rolling_variance[ch];
    }
    float inv = 1.f / sqrtf(var + p.eps), scale = p.scales[ch], bias = p.biases[ch];
    for (size_t k = threadIdx.x; k < count; k += blockDim.x) {
        size_t at = bn_at(p, ch, k);
        float x = data[at], xn = (x - mean) * inv;
        p.x[at] = x;
        p.x_norm[at] = xn;
        data[at] = xn * scale + bias;
    }
}

/* One block per channel: the exact derivative of the forward (train), or of
 * the frozen affine map (inference statistics). */
__global__ void bn_backward_kernel(dn_cuda_bn p, float *delta, int train)
{
    int ch = blockIdx.x;
    size_t count = (size_t)p.batch * p.spatial;
    float sd = 0, sdxn = 0, sdxm = 0;
    float mean = train ? p.mean[ch] : 0.f;
    for (size_t k = threadIdx.x; k < count; k += blockDim.x) {
        size_t at = bn_at(p, ch, k);
        sd += delta[at];
        sdxn += delta[at] * p.x_norm[at];
        if (train) sdxm += delta[at] * (p.x[at] - mean);
    }
    sd = block_sum(sd);
    sdxn = block_sum(sdxn);
    sdxm = block_sum(sdxm);
    float scale = p.scales[ch];
    if (threadIdx.x == 0) {
        p.bias_updates[ch] += sd;
        if (p.scale_updates) p.scale_updates[ch] += sdxn;
    }
    if (!train) {
        float f = scale / sqrtf(p.rolling_variance[ch] + p.eps);
        for (size_t k = threadIdx.x; k < count; k += blockDim.x) delta[bn_at(p, ch, k)] *= f;
        return;
    }
    float n = (float)count, denom = n > 1 ? n - 1 : 1;
    float inv = 1.f / sqrtf(p.variance[ch] + p.eps);
    float md = -inv * scale * sd, vd = -.5f * inv * inv * inv * scale * sdxm;
    if (threadIdx.x == 0) { p.mean_delta[ch] = md; p.variance_delta[ch] = vd; }
    for (size_t k = threadIdx.x; k < count; k += blockDim.x) {
        size_t at = bn_at(p, ch, k);
        delta[at] = delta[at] * scale * inv + vd * 2.f * (p.x[at] - mean) / denom + md / n;
    }
}

extern "C" int dn_cuda_bn_forward(const dn_cuda_bn *p, float *data, int train)
{
    if (p->c < 1) return 0;
    bn_forward_kernel<<<p->c, THREADS>>>(*p, data, train);
    return launched();
}

extern "C" int dn_cuda_bn_backward(const dn_cuda_bn *p, float *delta, int train)
{
    if (p->c < 1) return 0;
    bn_backward_kernel<<<p->c, THREADS>>>(*p, delta, train);
    return launched();
}
