/*
 * layer_avgpool.c — [avgpool] / [avg]: global average over each channel.
 *
 *   input (batch, c, h, w) -> output (batch, c, 1, 1)
 */
#include "internal.h"

static dn_status avgpool_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    DN_TRY(dn_require_image(l, ctx));
    l->out_w = l->out_h = 1;
    l->out_c = l->c;
    return DN_OK;
}

static void avgpool_forward(dn_layer *l, dn_network *net)
{
    size_t hw = (size_t)l->h * l->w;
    for (int b = 0; b < l->batch; ++b)
        for (int k = 0; k < l->c; ++k)
            l->output[b * l->c + k] = dn_sum(net->input + ((size_t)b * l->c + k) * hw, hw) / (float)hw;
}

static void avgpool_backward(dn_layer *l, dn_network *net)
{
    if (!net->delta) return;
    size_t hw = (size_t)l->h * l->w;
    for (int b = 0; b < l->batch; ++b)
        for (int k = 0; k < l->c; ++k) {
            float g = l->delta[b * l->c + k] / (float)hw;
            float *d = net->delta + ((size_t)b * l->c + k) * hw;
            for (size_t i = 0; i < hw; ++i) d[i] += g;
        }
}

static double avgpool_flops(const dn_layer *l) { return (double)l->inputs; }

const dn_layer_ops dn_avgpool_ops = {
    DN_AVGPOOL, {"avgpool", "avg", NULL},
    avgpool_parse, NULL, NULL, dn_alloc_output_delta,
    avgpool_forward, avgpool_backward, NULL, dn_free_common, avgpool_flops,
};
