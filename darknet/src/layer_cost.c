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
#include "layer_gpu.h"
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

static dn_status cost_forward(dn_layer *l, dn_network *net)
{
    l->cost = 0;
    if (!net->truth) return DN_OK;
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
    return DN_OK;
}

static dn_status cost_backward(dn_layer *l, dn_network *net)
{
    if (net->delta) dn_axpy(net->delta, l->cost_scale, l->delta, (size_t)l->batch * l->inputs);
    return DN_OK;
}

static double cost_flops(const dn_layer *l) { return 3.0 * l->inputs; }

/* ------------------------------------------------------------ GPU half */
#ifdef DN_GPU
/* Per-element error into output, its delta, and their sum as the cost
 * (per-block partials in net->workspace_gpu, added up on the host). */
static dn_status cost_forward_gpu(dn_layer *l, dn_network *net)
{
    int parts = 0;
    l->cost = 0;
    if (!net->truth) return DN_OK;
    DN_TRY(dn_gpu_loss_truth_fits(l, net));
    DN_TRY(DN_CUDA(dn_cuda_cost(net->input_gpu, net->truth_buf_gpu, (size_t)l->batch * l->inputs, (int)l->cost_type,
                                l->output_gpu, l->delta_gpu, net->workspace_gpu, &parts)));
    return dn_gpu_loss_pull(net, parts, &l->cost);
}

static dn_status cost_backward_gpu(dn_layer *l, dn_network *net) { return dn_gpu_pass_delta(l, net, l->cost_scale); }

static const dn_layer_gpu_ops cost_gpu = {
    .forward_gpu = cost_forward_gpu,
    .backward_gpu = cost_backward_gpu,
    .workspace_gpu = dn_gpu_loss_workspace,
};
#endif

/* A loss on the output of the layer before it, which stays the network's
 * output (beyond_output): [cost] may follow [softmax] or another [cost]. */
const dn_layer_ops dn_cost_ops = {
    .type = DN_COST,
    .names = {"cost"},
    .loss = 1,
    .beyond_output = 1,
    .parse = cost_parse,
    .alloc_buffers = dn_alloc_output_delta,
    .forward = cost_forward,
    .backward = cost_backward,
    .flops = cost_flops,
    .gpu = DN_GPU_OPS(cost_gpu),
};
