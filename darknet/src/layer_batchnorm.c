/*
 * layer_batchnorm.c — [batchnorm]: standalone batch normalisation.
 *
 *   input (batch, c, h, w) -> output (batch, c, h, w)
 *   y = scales * (x - mean) / sqrt(var + 1e-5) + biases
 *
 * The .weights file holds scales, rolling_mean and rolling_variance only (no
 * biases), as upstream. Deviation: upstream never updates a standalone batch
 * norm; here its scales learn (they are saved), while its biases stay 0
 * because the file format has no place for them.
 */
#include "layer_gpu.h"

static dn_status batchnorm_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    l->out_w = l->w; l->out_h = l->h; l->out_c = l->c;
    (void)ctx;
    if (l->c < 1) return dn_opt_fail(ctx->opts, NULL, DN_ERR_SHAPE, "needs an input with channels");
    return DN_OK;
}

static dn_status batchnorm_alloc_params(dn_layer *l)
{
    l->biases = dn_layer_alloc((size_t)l->c);
    l->bias_updates = dn_layer_alloc((size_t)l->c);
    if (!l->biases || !l->bias_updates) return DN_ERR_NOMEM;
    return dn_alloc_batchnorm_params(l, l->c);
}

static void batchnorm_init_params(dn_layer *l, uint64_t *rng)
{
    (void)rng;
    dn_init_batchnorm_params(l, l->c);
}

static dn_status batchnorm_alloc_buffers(dn_layer *l)
{
    DN_TRY(dn_alloc_output_delta(l));
    return dn_alloc_batchnorm_buffers(l);
}

/* output, delta, x, x_norm */
static size_t batchnorm_buffer_floats(const dn_layer *l) { return 4 * (size_t)l->outputs; }

static dn_status batchnorm_forward(dn_layer *l, dn_network *net)
{
    dn_copy(l->output, net->input, (size_t)l->batch * l->outputs);
    dn_batchnorm_forward(l, l->output, net->train);
    return DN_OK;
}

static dn_status batchnorm_backward(dn_layer *l, dn_network *net)
{
    dn_batchnorm_backward(l, l->delta, net->train);
    if (net->delta) dn_axpy(net->delta, 1, l->delta, (size_t)l->batch * l->outputs);
    return DN_OK;
}

static int batchnorm_params(const dn_layer *l, dn_param *out) { return dn_batchnorm_param_list(l, l->c, out); }

static double batchnorm_flops(const dn_layer *l) { return 4.0 * l->outputs; }

/* ------------------------------------------------------------ GPU half */
#ifdef DN_GPU
/* input (batch, c, h, w) -> normalised, scaled, shifted output */
static dn_status batchnorm_forward_gpu(dn_layer *l, dn_network *net)
{
    dn_cuda_bn p = dn_gpu_bn_params(l);
    DN_TRY(dn_gpu_copy(l->output_gpu, net->input_gpu, (size_t)l->batch * l->outputs));
    return DN_CUDA(dn_cuda_bn_forward(&p, l->output_gpu, net->train));
}

static dn_status batchnorm_backward_gpu(dn_layer *l, dn_network *net)
{
    dn_cuda_bn p = dn_gpu_bn_params(l);
    DN_TRY(DN_CUDA(dn_cuda_bn_backward(&p, l->delta_gpu, net->train)));
    return dn_gpu_pass_delta(l, net, 1);
}

static const dn_layer_gpu_ops batchnorm_gpu = {
    .forward_gpu = batchnorm_forward_gpu,
    .backward_gpu = batchnorm_backward_gpu,
};
#endif

const dn_layer_ops dn_batchnorm_ops = {
    .type = DN_BATCHNORM,
    .names = {"batchnorm"},
    .parse = batchnorm_parse,
    .alloc_params = batchnorm_alloc_params,
    .init_params = batchnorm_init_params,
    .alloc_buffers = batchnorm_alloc_buffers,
    .buffer_floats = batchnorm_buffer_floats,
    .forward = batchnorm_forward,
    .backward = batchnorm_backward,
    .params = batchnorm_params,
    .flops = batchnorm_flops,
    .gpu = DN_GPU_OPS(batchnorm_gpu),
};
