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
#include "internal.h"

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

static void batchnorm_forward(dn_layer *l, dn_network *net)
{
    dn_copy(l->output, net->input, (size_t)l->batch * l->outputs);
    dn_batchnorm_forward(l, l->output, net->train);
}

static void batchnorm_backward(dn_layer *l, dn_network *net)
{
    dn_batchnorm_backward(l, l->delta, net->train);
    if (net->delta) dn_axpy(net->delta, 1, l->delta, (size_t)l->batch * l->outputs);
}

static int batchnorm_params(const dn_layer *l, dn_param *out) { return dn_batchnorm_param_list(l, l->c, out); }

static double batchnorm_flops(const dn_layer *l) { return 4.0 * l->outputs; }

const dn_layer_ops dn_batchnorm_ops = {
    DN_BATCHNORM, {"batchnorm", NULL, NULL},
    batchnorm_parse, batchnorm_alloc_params, batchnorm_init_params, batchnorm_alloc_buffers,
    batchnorm_forward, batchnorm_backward, batchnorm_params, dn_free_common, batchnorm_flops,
};
