/*
 * layer_cost.c — [cost]: a loss on the previous layer's output.
 *   sse:    error = (t - x)^2,   delta = t - x
 *   L1:     error = |t - x|,     delta = sign(t - x)
 *   smooth: Huber with threshold 1
 * As upstream, the output holds the per-element errors and backward adds
 * scale * delta to the previous layer's delta (so [softmax] followed by
 * [cost] trains with both gradients, exactly like Darknet). An unknown type
 * is an error (upstream silently falls back to sse).
 *
 *   input (batch, inputs) -> output (batch, inputs)
 */
#include "internal.h"
#include <math.h>
#include <string.h>

static dn_status cost_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_opts o = ctx->opts;
    const char *type = dn_opt_str(o, "type", "sse");
    if (strcmp(type, "sse") == 0) l->cost_type = DN_COST_SSE;
    else if (strcmp(type, "L1") == 0) l->cost_type = DN_COST_L1;
    else if (strcmp(type, "smooth") == 0) l->cost_type = DN_COST_SMOOTH;
    else return dn_opt_fail(o, "type", DN_ERR_PARSE, "unknown cost type '%s' (known: sse, L1, smooth)", type);
    float ratio, noobj, thresh;
    DN_TRY(dn_opt_float(o, "scale", 1, &l->cost_scale));
    DN_TRY(dn_opt_float(o, "ratio", 0, &ratio));
    DN_TRY(dn_opt_float(o, "noobj", 1, &noobj));   /* upstream's key */
    DN_TRY(dn_opt_float(o, "thresh", 0, &thresh));
    l->out_w = l->w; l->out_h = l->h; l->out_c = l->c;
    l->has_cost = 1;
    return DN_OK;
}

static void cost_forward(dn_layer *l, dn_network *net)
{
    l->cost = 0;
    if (!net->truth) return;
    size_t n = (size_t)l->batch * l->inputs;
    for (size_t i = 0; i < n; ++i) {
        float diff = net->truth[i] - net->input[i];
        float a = fabsf(diff);
        switch (l->cost_type) {
        case DN_COST_SSE: l->output[i] = diff * diff; l->delta[i] = diff; break;
        case DN_COST_L1: l->output[i] = a; l->delta[i] = diff > 0 ? 1 : -1; break;
        case DN_COST_SMOOTH:
            if (a < 1) { l->output[i] = diff * diff; l->delta[i] = diff; }
            else { l->output[i] = 2 * a - 1; l->delta[i] = diff > 0 ? 1 : -1; }
            break;
        }
    }
    l->cost = dn_sum(l->output, n);
}

static void cost_backward(dn_layer *l, dn_network *net)
{
    if (net->delta) dn_axpy(net->delta, l->cost_scale, l->delta, (size_t)l->batch * l->inputs);
}

static double cost_flops(const dn_layer *l) { return 3.0 * l->inputs; }

const dn_layer_ops dn_cost_ops = {
    DN_COST, {"cost", NULL, NULL},
    cost_parse, NULL, NULL, dn_alloc_output_delta,
    cost_forward, cost_backward, NULL, dn_free_common, cost_flops,
};
