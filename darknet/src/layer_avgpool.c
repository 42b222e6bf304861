/*
 * layer_avgpool.c — [avgpool] / [avg]: global average over each channel.
 *
 *   input (batch, c, h, w) -> output (batch, c, 1, 1)
 */
#include "layer_gpu.h"

static dn_status avgpool_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    DN_TRY(dn_require_image(l, ctx));
    l->out_w = l->out_h = 1;
    l->out_c = l->c;
    return DN_OK;
}

static dn_status avgpool_forward(dn_layer *l, dn_network *net)
{
    size_t hw = (size_t)l->h * l->w;
    for (int b = 0; b < l->batch; ++b)
        for (int k = 0; k < l->c; ++k)
            l->output[b * l->c + k] = dn_sum(net->input + ((size_t)b * l->c + k) * hw, hw) / (float)hw;
    return DN_OK;
}

static dn_status avgpool_backward(dn_layer *l, dn_network *net)
{
    if (!net->delta) return DN_OK;
    size_t hw = (size_t)l->h * l->w;
    for (int b = 0; b < l->batch; ++b)
        for (int k = 0; k < l->c; ++k) {
            float g = l->delta[b * l->c + k] / (float)hw;
            float *d = net->delta + ((size_t)b * l->c + k) * hw;
            for (size_t i = 0; i < hw; ++i) d[i] += g;
        }
    return DN_OK;
}

static double avgpool_flops(const dn_layer *l) { return (double)l->inputs; }

/* ------------------------------------------------------------ GPU half */
#ifdef DN_GPU
/* input (batch*c rows of h*w) -> output (batch*c) */
static dn_status avgpool_forward_gpu(dn_layer *l, dn_network *net)
{
    return DN_CUDA(dn_cuda_row_mean(net->input_gpu, (size_t)l->batch * l->c, l->h * l->w, l->output_gpu));
}

static dn_status avgpool_backward_gpu(dn_layer *l, dn_network *net)
{
    if (!net->delta_gpu) return DN_OK;
    return DN_CUDA(dn_cuda_row_mean_backward(l->delta_gpu, (size_t)l->batch * l->c, l->h * l->w, net->delta_gpu));
}

static const dn_layer_gpu_ops avgpool_gpu = {
    .forward_gpu = avgpool_forward_gpu,
    .backward_gpu = avgpool_backward_gpu,
};
#endif

const dn_layer_ops dn_avgpool_ops = {
    .type = DN_AVGPOOL,
    .names = {"avgpool", "avg"},
    .parse = avgpool_parse,
    .alloc_buffers = dn_alloc_output_delta,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .flops = avgpool_flops,
    .gpu = DN_GPU_OPS(avgpool_gpu),
};
