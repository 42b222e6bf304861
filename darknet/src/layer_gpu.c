/*
 * layer_gpu.c — helpers the GPU halves of the layer types share (declared
 * in layer_gpu.h): batch norm, bias and activation around a convolution or
 * a GEMM, passing a delta back, a layer's own device state, pooling windows
 * and loss partial sums. Each layer's GPU forward / backward is in its own
 * layer_<type>.c, next to the CPU code it is the twin of.
 */
#include "layer_gpu.h"

#ifdef DN_GPU

/* ------------------------------------------------------------ batch norm, bias, activation */

dn_cuda_bn dn_gpu_bn_params(dn_layer *l)
{
    dn_cuda_bn p = {l->x_gpu, l->x_norm_gpu, l->mean_gpu, l->variance_gpu, l->rolling_mean_gpu,
                    l->rolling_variance_gpu, l->scales_gpu, l->biases_gpu, l->scale_updates_gpu, l->bias_updates_gpu,
                    l->mean_delta_gpu, l->variance_delta_gpu, l->batch, l->out_c, l->out_w * l->out_h, DN_BN_EPSILON};
    return p;
}

dn_status dn_gpu_bias_bn_activate(dn_layer *l, dn_network *net)
{
    if (l->batch_normalize) {
        dn_cuda_bn p = dn_gpu_bn_params(l);
        DN_TRY(DN_CUDA(dn_cuda_bn_forward(&p, l->output_gpu, net->train)));
    } else {
        DN_TRY(DN_CUDA(dn_cuda_add_bias(l->output_gpu, l->biases_gpu, l->batch, l->out_c, l->out_w * l->out_h)));
    }
    return DN_CUDA(dn_cuda_activate(l->output_gpu, (size_t)l->batch * l->outputs, (int)l->activation));
}

dn_status dn_gpu_activate_bn_bias_backward(dn_layer *l, dn_network *net)
{
    DN_TRY(DN_CUDA(dn_cuda_gradient(l->output_gpu, (size_t)l->batch * l->outputs, (int)l->activation, l->delta_gpu)));
    if (l->batch_normalize) {
        dn_cuda_bn p = dn_gpu_bn_params(l);
        return DN_CUDA(dn_cuda_bn_backward(&p, l->delta_gpu, net->train));
    }
    return DN_CUDA(dn_cuda_backward_bias(l->bias_updates_gpu, l->delta_gpu, l->batch, l->out_c, l->out_w * l->out_h));
}

/* ------------------------------------------------------------ deltas and state */

dn_status dn_gpu_pass_delta(dn_layer *l, dn_network *net, float a)
{
    if (!net->delta_gpu) return DN_OK;
    return DN_CUDA(dn_cuda_axpy(net->delta_gpu, a, l->delta_gpu, (size_t)l->batch * l->outputs));
}

void dn_gpu_state_release(dn_layer *l)
{
    dn_gpu_free(l->gpu_state);
    l->gpu_state = NULL;
}

dn_status dn_gpu_state_alloc(dn_layer *l, size_t n)
{
    dn_gpu_state_release(l);
    float *state = NULL;
    DN_TRY(dn_gpu_alloc(n, &state));
    l->gpu_state = state;
    return DN_OK;
}

/* ------------------------------------------------------------ pooling */

dn_cuda_pool dn_gpu_pool_window(const dn_layer *l)
{
    dn_cuda_pool p = {l->batch * l->c, l->h, l->w, l->out_h, l->out_w, l->size, l->stride, l->pad};
    return p;
}

/* ------------------------------------------------------------ losses */

size_t dn_gpu_loss_workspace(const dn_layer *l) { (void)l; return DN_CUDA_PARTIALS; }

dn_status dn_gpu_loss_truth_fits(const dn_layer *l, const dn_network *net)
{
    if ((size_t)l->batch * l->inputs <= (size_t)net->batch * net->truths) return DN_OK;
    return dn_fail(DN_ERR_SHAPE, "layer %d: %d inputs per image but the truth has %d values", l->index, l->inputs,
                   net->truths);
}

dn_status dn_gpu_loss_pull(dn_network *net, int parts, float *out)
{
    float host[DN_CUDA_PARTIALS];
    DN_TRY(dn_gpu_pull(host, net->workspace_gpu, (size_t)parts));
    double s = 0;
    for (int i = 0; i < parts; ++i) s += host[i];
    *out = (float)s;
    return DN_OK;
}

#else
typedef int dn_layer_gpu_unused;   /* CPU build: nothing here */
#endif
