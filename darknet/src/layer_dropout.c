/*
 * layer_dropout.c — [dropout]: while training, zero each input with
 * probability p and scale survivors by 1/(1-p); identity at inference.
 * (Upstream works in place on the previous layer's buffers; this layer has
 * its own output so routes and shortcuts see the same values either way.)
 *
 *   input (batch, inputs) -> output (batch, inputs)
 */
#include "internal.h"
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

static void dropout_forward(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->inputs;
    if (!net->train) { dn_copy(l->output, net->input, n); return; }
    for (size_t i = 0; i < n; ++i) {
        l->rand[i] = dn_rand_uniform(&net->rng, 0, 1);
        l->output[i] = l->rand[i] < l->probability ? 0 : net->input[i] * l->dropout_scale;
    }
}

static void dropout_backward(dn_layer *l, dn_network *net)
{
    if (!net->delta) return;
    size_t n = (size_t)l->batch * l->inputs;
    if (!net->train) { dn_axpy(net->delta, 1, l->delta, n); return; }
    for (size_t i = 0; i < n; ++i)
        if (l->rand[i] >= l->probability) net->delta[i] += l->delta[i] * l->dropout_scale;
}

static double dropout_flops(const dn_layer *l) { return (double)l->inputs; }

const dn_layer_ops dn_dropout_ops = {
    DN_DROPOUT, {"dropout", NULL, NULL},
    dropout_parse, NULL, NULL, dropout_alloc_buffers,
    dropout_forward, dropout_backward, NULL, dn_free_common, dropout_flops,
};
