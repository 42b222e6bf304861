/*
 * layer_activation.c — [activation]: an activation function on its own.
 *
 *   input (batch, inputs) -> output (batch, inputs) = act(input)
 */
#include "layer_gpu.h"

static dn_status activation_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    const char *act = dn_opt_str(ctx->opts, "activation", "linear");
    if (dn_activation_from_name(act, &l->activation) != DN_OK)
        return dn_opt_fail(ctx->opts, "activation", DN_ERR_PARSE, "unknown activation '%s'", act);
    l->out_w = l->w; l->out_h = l->h; l->out_c = l->c;
    return DN_OK;
}

static dn_status activation_forward(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->outputs;
    dn_copy(l->output, net->input, n);
    dn_activate_array(l->output, n, l->activation);
    return DN_OK;
}

static dn_status activation_backward(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->outputs;
    dn_gradient_array(l->output, n, l->activation, l->delta);
    if (net->delta) dn_axpy(net->delta, 1, l->delta, n);
    return DN_OK;
}

static double activation_flops(const dn_layer *l) { return (double)l->outputs; }

/* ------------------------------------------------------------ GPU half */
#ifdef DN_GPU
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
    return dn_gpu_pass_delta(l, net, 1);
}

static const dn_layer_gpu_ops activation_gpu = {
    .forward_gpu = activation_forward_gpu,
    .backward_gpu = activation_backward_gpu,
};
#endif

const dn_layer_ops dn_activation_layer_ops = {
    .type = DN_ACTIVATION_LAYER,
    .names = {"activation"},
    .parse = activation_parse,
    .alloc_buffers = dn_alloc_output_delta,
    .forward = activation_forward,
    .backward = activation_backward,
    .flops = activation_flops,
    .gpu = DN_GPU_OPS(activation_gpu),
};
