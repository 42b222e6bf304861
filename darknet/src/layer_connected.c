/*
 * layer_connected.c — [connected] / [conn]: fully connected layer over the
 * flattened (c, h, w) input, optional batch norm, then the activation.
 *
 *   input (batch, inputs)   weights (outputs, inputs)   biases (outputs)
 *   output (batch, outputs) = input * weights^T + biases
 *
 * File order differs from conv: biases, weights, then the batch-norm arrays.
 */
#include "layer_gpu.h"
#include <math.h>

static dn_status connected_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_opts o = ctx->opts;
    DN_TRY(dn_opt_int(o, "output", 1, &l->out_c));
    DN_TRY(dn_opt_int(o, "batch_normalize", 0, &l->batch_normalize));
    const char *act = dn_opt_str(o, "activation", "logistic");
    if (dn_activation_from_name(act, &l->activation) != DN_OK)
        return dn_opt_fail(o, "activation", DN_ERR_PARSE, "unknown activation '%s'", act);
    if (l->out_c < 1) return dn_opt_fail(o, "output", DN_ERR_SHAPE, "output=%d must be at least 1", l->out_c);
    l->out_w = l->out_h = 1;
    l->nweights = (size_t)l->out_c * l->inputs;
    return DN_OK;
}

static dn_status connected_alloc_params(dn_layer *l)
{
    l->weights = dn_layer_alloc(l->nweights);
    l->weight_updates = dn_layer_alloc(l->nweights);
    l->biases = dn_layer_alloc((size_t)l->out_c);
    l->bias_updates = dn_layer_alloc((size_t)l->out_c);
    if (!l->weights || !l->weight_updates || !l->biases || !l->bias_updates) return DN_ERR_NOMEM;
    return l->batch_normalize ? dn_alloc_batchnorm_params(l, l->out_c) : DN_OK;
}

/* Uniform in +-sqrt(2 / inputs), biases 0, as upstream. */
static void connected_init_params(dn_layer *l, uint64_t *rng)
{
    float scale = sqrtf(2.f / l->inputs);
    for (size_t i = 0; i < l->nweights; ++i) l->weights[i] = dn_rand_uniform(rng, -scale, scale);
    dn_fill(l->biases, (size_t)l->out_c, 0);
    if (l->batch_normalize) dn_init_batchnorm_params(l, l->out_c);
}

static dn_status connected_alloc_buffers(dn_layer *l)
{
    DN_TRY(dn_alloc_output_delta(l));
    return l->batch_normalize ? dn_alloc_batchnorm_buffers(l) : DN_OK;
}

static dn_status connected_forward(dn_layer *l, dn_network *net)
{
    dn_gemm_parallel(0, 1, l->batch, l->outputs, l->inputs, 1, net->input, l->inputs, l->weights, l->inputs, 0,
            l->output, l->outputs);
    if (l->batch_normalize) dn_batchnorm_forward(l, l->output, net->train);
    else dn_add_bias(l->output, l->biases, l->batch, l->outputs, 1);
    dn_activate_array(l->output, (size_t)l->batch * l->outputs, l->activation);
    return DN_OK;
}

static dn_status connected_backward(dn_layer *l, dn_network *net)
{
    dn_gradient_array(l->output, (size_t)l->batch * l->outputs, l->activation, l->delta);
    if (l->batch_normalize) dn_batchnorm_backward(l, l->delta, net->train);
    else dn_backward_bias(l->bias_updates, l->delta, l->batch, l->outputs, 1);
    /* weight_updates (outputs, inputs) += delta^T (outputs, batch) * input (batch, inputs) */
    dn_gemm_parallel(1, 0, l->outputs, l->inputs, l->batch, 1, l->delta, l->outputs, net->input, l->inputs, 1,
            l->weight_updates, l->inputs);
    /* prev delta (batch, inputs) += delta (batch, outputs) * weights (outputs, inputs) */
    if (net->delta)
        dn_gemm_parallel(0, 0, l->batch, l->inputs, l->outputs, 1, l->delta, l->outputs, l->weights, l->inputs, 1,
                net->delta, l->inputs);
    return DN_OK;
}

static int connected_params(const dn_layer *l, dn_param *out)
{
    int n = 0;
    out[n++] = dn_make_param("biases", l->biases, l->bias_updates, (size_t)l->out_c, 0);
    out[n] = dn_make_param("weights", l->weights, l->weight_updates, l->nweights, 1);
    out[n].rows = l->out_c;
    out[n++].cols = l->inputs;
    if (l->batch_normalize) n += dn_batchnorm_param_list(l, l->out_c, out + n);
    return n;
}

static double connected_flops(const dn_layer *l) { return 2.0 * l->nweights; }

static void connected_describe(const dn_layer *l, FILE *f) { dn_describe_row(l, f, 0, 1); }

/* ------------------------------------------------------------ GPU half */
#ifdef DN_GPU
/* The CPU's GEMMs through cuBLAS, and the shared batch norm / bias / activation. */
static dn_status connected_forward_gpu(dn_layer *l, dn_network *net)
{
    DN_TRY(dn_gpu_gemm(0, 1, l->batch, l->outputs, l->inputs, 1, net->input_gpu, l->inputs, l->weights_gpu, l->inputs,
                       0, l->output_gpu, l->outputs));
    return dn_gpu_bias_bn_activate(l, net);
}

static dn_status connected_backward_gpu(dn_layer *l, dn_network *net)
{
    DN_TRY(dn_gpu_activate_bn_bias_backward(l, net));
    DN_TRY(dn_gpu_gemm(1, 0, l->outputs, l->inputs, l->batch, 1, l->delta_gpu, l->outputs, net->input_gpu, l->inputs,
                       1, l->weight_updates_gpu, l->inputs));
    if (!net->delta_gpu) return DN_OK;
    return dn_gpu_gemm(0, 0, l->batch, l->inputs, l->outputs, 1, l->delta_gpu, l->outputs, l->weights_gpu, l->inputs,
                       1, net->delta_gpu, l->inputs);
}

static const dn_layer_gpu_ops connected_gpu = {
    .forward_gpu = connected_forward_gpu,
    .backward_gpu = connected_backward_gpu,
};
#endif

const dn_layer_ops dn_connected_ops = {
    .type = DN_CONNECTED,
    .names = {"connected", "conn"},
    .parse = connected_parse,
    .describe = connected_describe,
    .alloc_params = connected_alloc_params,
    .init_params = connected_init_params,
    .alloc_buffers = connected_alloc_buffers,
    .buffer_floats = dn_batchnorm_buffer_floats,
    .forward = connected_forward,
    .backward = connected_backward,
    .params = connected_params,
    .flops = connected_flops,
    .gpu = DN_GPU_OPS(connected_gpu),
};
