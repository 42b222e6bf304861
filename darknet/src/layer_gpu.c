/*
 * layer_gpu.c — GPU kernels per layer type (the GPU half of the ops table):
 * [convolutional] (cuDNN in CUDNN=1 builds, conv_cudnn.c; else im2col +
 * cuBLAS per image and group, as the CPU reference path), [connected]
 * (cuBLAS), [activation]. Bias, batch norm and activations run as CUDA
 * kernels with the CPU semantics (blas.c).
 * Every other layer type has no entry and takes network_gpu.c's fallback.
 */
#include "internal.h"

#ifdef DN_GPU
#include "gpu_kernels.h"

static dn_cuda_bn bn_params(dn_layer *l)
{
    dn_cuda_bn p = {l->x_gpu, l->x_norm_gpu, l->mean_gpu, l->variance_gpu, l->rolling_mean_gpu,
                    l->rolling_variance_gpu, l->scales_gpu, l->biases_gpu, l->scale_updates_gpu, l->bias_updates_gpu,
                    l->mean_delta_gpu, l->variance_delta_gpu, l->batch, l->out_c, l->out_w * l->out_h, DN_BN_EPSILON};
    return p;
}

/* Batch norm or bias, then the activation (conv and connected forward). */
static dn_status bias_bn_activate(dn_layer *l, dn_network *net)
{
    if (l->batch_normalize) {
        dn_cuda_bn p = bn_params(l);
        DN_TRY(DN_CUDA(dn_cuda_bn_forward(&p, l->output_gpu, net->train)));
    } else {
        DN_TRY(DN_CUDA(dn_cuda_add_bias(l->output_gpu, l->biases_gpu, l->batch, l->out_c, l->out_w * l->out_h)));
    }
    return DN_CUDA(dn_cuda_activate(l->output_gpu, (size_t)l->batch * l->outputs, (int)l->activation));
}

/* Activation gradient, then batch norm or bias backward. */
static dn_status activate_bn_bias_backward(dn_layer *l, dn_network *net)
{
    DN_TRY(DN_CUDA(dn_cuda_gradient(l->output_gpu, (size_t)l->batch * l->outputs, (int)l->activation, l->delta_gpu)));
    if (l->batch_normalize) {
        dn_cuda_bn p = bn_params(l);
        return DN_CUDA(dn_cuda_bn_backward(&p, l->delta_gpu, net->train));
    }
    return DN_CUDA(dn_cuda_backward_bias(l->bias_updates_gpu, l->delta_gpu, l->batch, l->out_c, l->out_w * l->out_h));
}

/* ------------------------------------------------------------ convolutional
 * With DN_CUDNN, a layer conv_cudnn.c has set up convolves through cuDNN;
 * otherwise (and with dn_cudnn_enabled 0) im2col + cuBLAS per image and group
 * as the CPU reference path. Bias / batch norm / activation are shared. */

static int pointwise(const dn_layer *l) { return l->size == 1 && l->stride == 1 && l->pad == 0; }

/* Floats of net->workspace_gpu: one image's columns for im2col, and what
 * cuDNN's algorithms need (both, so dn_cudnn_enabled may change any time). */
static size_t conv_workspace(const dn_layer *l)
{
    size_t cols = (size_t)(l->c / l->groups) * l->size * l->size * l->out_h * l->out_w;
#ifdef DN_CUDNN
    size_t cudnn = dn_conv_cudnn_workspace(l);
    if (cudnn > cols) return cudnn;
#endif
    return cols;
}

/* Columns of image b, group g: the image itself for 1x1 stride 1. */
static dn_status conv_columns(dn_layer *l, dn_network *net, const float *im, const float **cols)
{
    if (pointwise(l)) { *cols = im; return DN_OK; }
    *cols = net->workspace_gpu;
    return DN_CUDA(dn_cuda_im2col(im, l->c / l->groups, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w,
                                  net->workspace_gpu));
}

/* output (m, n) = weights (m, k) x columns (k, n) per image and group. */
static dn_status conv_forward_im2col(dn_layer *l, dn_network *net)
{
    int m = l->filters / l->groups, k = l->size * l->size * l->c / l->groups, n = l->out_w * l->out_h;
    size_t in_group = (size_t)(l->c / l->groups) * l->h * l->w;
    for (int b = 0; b < l->batch; ++b)
        for (int g = 0; g < l->groups; ++g) {
            const float *cols;
            DN_TRY(conv_columns(l, net, net->input_gpu + ((size_t)b * l->groups + g) * in_group, &cols));
            DN_TRY(dn_gpu_gemm(0, 0, m, n, k, 1, l->weights_gpu + (size_t)g * m * k, k, cols, n, 0,
                               l->output_gpu + ((size_t)b * l->groups + g) * m * n, n));
        }
    return DN_OK;
}

/* weight_updates += delta x columns^T; net->delta_gpu += col2im(weights^T x delta). */
static dn_status conv_backward_im2col(dn_layer *l, dn_network *net)
{
    int m = l->filters / l->groups, k = l->size * l->size * l->c / l->groups, n = l->out_w * l->out_h;
    size_t in_group = (size_t)(l->c / l->groups) * l->h * l->w;
    for (int b = 0; b < l->batch; ++b)
        for (int g = 0; g < l->groups; ++g) {
            const float *d = l->delta_gpu + ((size_t)b * l->groups + g) * m * n, *cols;
            DN_TRY(conv_columns(l, net, net->input_gpu + ((size_t)b * l->groups + g) * in_group, &cols));
            DN_TRY(dn_gpu_gemm(0, 1, m, k, n, 1, d, n, cols, n, 1, l->weight_updates_gpu + (size_t)g * m * k, k));
            if (!net->delta_gpu) continue;
            const float *a = l->weights_gpu + (size_t)g * m * k;
            float *imd = net->delta_gpu + ((size_t)b * l->groups + g) * in_group;
            if (pointwise(l)) {
                DN_TRY(dn_gpu_gemm(1, 0, k, n, m, 1, a, k, d, n, 1, imd, n));
                continue;
            }
            DN_TRY(dn_gpu_gemm(1, 0, k, n, m, 1, a, k, d, n, 0, net->workspace_gpu, n));
            DN_TRY(DN_CUDA(dn_cuda_col2im(net->workspace_gpu, l->c / l->groups, l->h, l->w, l->size, l->stride, l->pad,
                                          l->out_h, l->out_w, imd)));
        }
    return DN_OK;
}

/* net->input_gpu (batch, c, h, w) -> l->output_gpu (batch, filters, out_h, out_w) */
static dn_status conv_convolve(dn_layer *l, dn_network *net)
{
#ifdef DN_CUDNN
    if (dn_conv_cudnn_active(l)) return dn_conv_cudnn_forward(l, net);
#endif
    return conv_forward_im2col(l, net);
}

static dn_status conv_forward_gpu(dn_layer *l, dn_network *net)
{
    DN_TRY(conv_convolve(l, net));
    return bias_bn_activate(l, net);
}

static dn_status conv_backward_gpu(dn_layer *l, dn_network *net)
{
    DN_TRY(activate_bn_bias_backward(l, net));
#ifdef DN_CUDNN
    if (dn_conv_cudnn_active(l)) return dn_conv_cudnn_backward(l, net);
#endif
    return conv_backward_im2col(l, net);
}

/* ------------------------------------------------------------ connected */

static dn_status connected_forward_gpu(dn_layer *l, dn_network *net)
{
    DN_TRY(dn_gpu_gemm(0, 1, l->batch, l->outputs, l->inputs, 1, net->input_gpu, l->inputs, l->weights_gpu, l->inputs,
                       0, l->output_gpu, l->outputs));
    return bias_bn_activate(l, net);
}

static dn_status connected_backward_gpu(dn_layer *l, dn_network *net)
{
    DN_TRY(activate_bn_bias_backward(l, net));
    DN_TRY(dn_gpu_gemm(1, 0, l->outputs, l->inputs, l->batch, 1, l->delta_gpu, l->outputs, net->input_gpu, l->inputs,
                       1, l->weight_updates_gpu, l->inputs));
    if (!net->delta_gpu) return DN_OK;
    return dn_gpu_gemm(0, 0, l->batch, l->inputs, l->outputs, 1, l->delta_gpu, l->outputs, l->weights_gpu, l->inputs,
                       1, net->delta_gpu, l->inputs);
}

/* ------------------------------------------------------------ activation */

static dn_status activation_forward_gpu(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->outputs;
    DN_TRY(dn_gpu_copy(l->output_gpu, net->input_gpu, n));
    return DN_CUDA(dn_cuda_activate(l->output_gpu, n, (int)l->activation));
}

static dn_status activation_backward_gpu(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->outputs;
    DN_TRY(DN_CUDA(dn_cuda_gradient(l->output_gpu, n, (int)l->activation, l->delta_gpu)));
    return net->delta_gpu ? DN_CUDA(dn_cuda_axpy(net->delta_gpu, 1, l->delta_gpu, n)) : DN_OK;
}

static size_t no_workspace(const dn_layer *l) { (void)l; return 0; }

static const dn_layer_gpu_ops conv_gpu = {
    .forward_gpu = conv_forward_gpu, .backward_gpu = conv_backward_gpu, .workspace_gpu = conv_workspace,
#ifdef DN_CUDNN
    .setup_gpu = dn_conv_cudnn_setup, .release_gpu = dn_conv_cudnn_release,
#endif
};
static const dn_layer_gpu_ops connected_gpu = {
    .forward_gpu = connected_forward_gpu, .backward_gpu = connected_backward_gpu, .workspace_gpu = no_workspace};
static const dn_layer_gpu_ops activation_gpu = {
    .forward_gpu = activation_forward_gpu, .backward_gpu = activation_backward_gpu, .workspace_gpu = no_workspace};

const dn_layer_gpu_ops *dn_layer_gpu_ops_for_type(dn_layer_type t)
{
    switch (t) {
    case DN_CONVOLUTIONAL: return &conv_gpu;
    case DN_CONNECTED: return &connected_gpu;
    case DN_ACTIVATION_LAYER: return &activation_gpu;
    default: return dn_layer_gpu_ops_other(t);
    }
}

#else
typedef int dn_layer_gpu_unused;   /* CPU build: nothing here */
#endif
