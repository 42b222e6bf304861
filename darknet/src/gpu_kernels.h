/*
 * gpu_kernels.h — the CUDA kernels' C entry points (gpu_kernels.cu), GPU
 * builds only. Every launcher runs on the default stream, takes device
 * pointers and returns the cudaError_t of the launch as an int (0: queued);
 * gpu.c's DN_CUDA turns a non-zero code into a dn_status. Each is the GPU
 * twin of the CPU function named in its comment and follows its semantics.
 */
#ifndef DN_GPU_KERNELS_H
#define DN_GPU_KERNELS_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

int dn_cuda_fill(float *x, size_t n, float v);                               /* dn_fill */
int dn_cuda_axpy(float *y, float a, const float *x, size_t n);               /* dn_axpy */
int dn_cuda_activate(float *x, size_t n, int act);                           /* dn_activate_array */
int dn_cuda_gradient(const float *y, size_t n, int act, float *delta);       /* dn_gradient_array */
int dn_cuda_add_bias(float *out, const float *biases, int batch, int c, int spatial);        /* dn_add_bias */
int dn_cuda_backward_bias(float *bias_updates, const float *delta, int batch, int c, int spatial); /* dn_backward_bias */
/* dn_im2col / dn_col2im (col2im adds into im) */
int dn_cuda_im2col(const float *im, int c, int h, int w, int size, int stride, int pad, int out_h, int out_w,
                   float *col);
int dn_cuda_col2im(const float *col, int c, int h, int w, int size, int stride, int pad, int out_h, int out_w,
                   float *im);
/* dn_network_update for one array: u -= decay_b*w; w += lr_b*u; u *= momentum */
int dn_cuda_sgd(float *w, float *u, size_t n, float decay_b, float lr_b, float momentum);

/* Batch norm over (batch, c, spatial), dn_batchnorm_forward_ref semantics:
 * x <- data; train: batch mean and unbiased variance, rolling = .99 rolling
 * + .01 batch; data = scales * (x - m) / sqrt(v + eps) + biases, x_norm kept. */
typedef struct {
    float *x, *x_norm, *mean, *variance, *rolling_mean, *rolling_variance;
    float *scales, *biases, *scale_updates, *bias_updates, *mean_delta, *variance_delta;
    int batch, c, spatial;
    float eps;
} dn_cuda_bn;
int dn_cuda_bn_forward(const dn_cuda_bn *p, float *data, int train);
/* dn_batchnorm_backward_ref: accumulates bias/scale updates, rewrites delta. */
int dn_cuda_bn_backward(const dn_cuda_bn *p, float *delta, int train);

#ifdef __cplusplus
}
#endif
#endif
