/*
 * layer_dropout.c — [dropout]: while training, zero each input with
 * probability p and scale survivors by 1/(1-p); identity at inference.
 * (Upstream works in place on the previous layer's buffers; this layer has
 * its own output so routes and shortcuts see the same values either way.)
 *
 *   input (batch, inputs) -> output (batch, inputs)
 */
#include "layer_gpu.h"
#include <stdlib.h>

static dn_status dropout_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_opts o = ctx->opts;
    DN_TRY(dn_opt_float(o, "probability", .5f, &l->probability));
    if (!(l->probability >= 0 && l->probability < 1))
        return dn_opt_fail(o, "probability", DN_ERR_PARSE, "probability=%g must be in [0, 1)", l->probability);
    l->dropout_scale = 1.f / (1.f - l->probability);
    l->out_w = l->w; l->out_h = l->h; l->out_c = l->c;
    return DN_OK;
}

static dn_status dropout_alloc_buffers(dn_layer *l)
{
    DN_TRY(dn_alloc_output_delta(l));
    free(l->rand);
    l->rand = dn_layer_alloc((size_t)l->batch * l->inputs);
    return l->rand ? DN_OK : DN_ERR_NOMEM;
}

/* output, delta, rand */
static size_t dropout_buffer_floats(const dn_layer *l) { return 2 * (size_t)l->outputs + (size_t)l->inputs; }

static void dropout_free(dn_layer *l)
{
    free(l->rand);
    l->rand = NULL;
    dn_free_common(l);
}

static dn_status dropout_forward(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->inputs;
    if (!net->train) { dn_copy(l->output, net->input, n); return DN_OK; }
    for (size_t i = 0; i < n; ++i) {
        l->rand[i] = dn_rand_uniform(&net->rng, 0, 1);
        l->output[i] = l->rand[i] < l->probability ? 0 : net->input[i] * l->dropout_scale;
    }
    return DN_OK;
}

static dn_status dropout_backward(dn_layer *l, dn_network *net)
{
    if (!net->delta) return DN_OK;
    size_t n = (size_t)l->batch * l->inputs;
    if (!net->train) { dn_axpy(net->delta, 1, l->delta, n); return DN_OK; }
    for (size_t i = 0; i < n; ++i)
        if (l->rand[i] >= l->probability) net->delta[i] += l->delta[i] * l->dropout_scale;
    return DN_OK;
}

static double dropout_flops(const dn_layer *l) { return (double)l->inputs; }

/* ------------------------------------------------------------ GPU half
 * The draws are the CPU's, from net->rng in its order (also kept in
 * l->rand), pushed into the layer's device state (batch*inputs floats). */
#ifdef DN_GPU
static dn_status dropout_setup_gpu(dn_layer *l) { return dn_gpu_state_alloc(l, (size_t)l->batch * l->inputs); }

static dn_status dropout_forward_gpu(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->inputs;
    if (!net->train) return dn_gpu_copy(l->output_gpu, net->input_gpu, n);
    for (size_t i = 0; i < n; ++i) l->rand[i] = dn_rand_uniform(&net->rng, 0, 1);
    DN_TRY(dn_gpu_push(l->gpu_state, l->rand, n));
    return DN_CUDA(dn_cuda_dropout(net->input_gpu, l->gpu_state, n, l->probability, l->dropout_scale, l->output_gpu));
}

static dn_status dropout_backward_gpu(dn_layer *l, dn_network *net)
{
    if (!net->delta_gpu) return DN_OK;
    if (!net->train) return dn_gpu_pass_delta(l, net, 1);
    return DN_CUDA(dn_cuda_dropout_backward(l->delta_gpu, l->gpu_state, (size_t)l->batch * l->inputs, l->probability,
                                            l->dropout_scale, net->delta_gpu));
}

static const dn_layer_gpu_ops dropout_gpu = {
    .forward_gpu = dropout_forward_gpu,
    .backward_gpu = dropout_backward_gpu,
    .setup_gpu = dropout_setup_gpu,
    .release_gpu = dn_gpu_state_release,
};
#endif

const dn_layer_ops dn_dropout_ops = {
    .type = DN_DROPOUT,
    .names = {"dropout"},
    .parse = dropout_parse,
    .alloc_buffers = dropout_alloc_buffers,
    .buffer_floats = dropout_buffer_floats,
    .free = dropout_free,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .flops = dropout_flops,
    .gpu = DN_GPU_OPS(dropout_gpu),
};
