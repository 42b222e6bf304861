/*
 * layer_softmax.c — [softmax] / [soft]: softmax over each of `groups` equal
 * slices of the input, with a temperature. When targets are given it also
 * computes the cross-entropy loss and its gradient:
 *
 *   p = softmax(x / T)           (batch, inputs)
 *   cost = sum over batch of -sum_i t_i log p_i
 *   delta = t - p                (negative gradient w.r.t. the logits, T = 1)
 *
 * Backward passes delta through unchanged, as upstream: the softmax and its
 * cross-entropy are one unit.
 */
#include "layer_gpu.h"
#include <float.h>
#include <math.h>

static dn_status softmax_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_opts o = ctx->opts;
    DN_TRY(dn_opt_int(o, "groups", 1, &l->softmax_groups));
    DN_TRY(dn_opt_float(o, "temperature", 1, &l->temperature));
    if (l->softmax_groups < 1 || l->inputs % l->softmax_groups)
        return dn_opt_fail(o, "groups", DN_ERR_SHAPE, "groups=%d must divide the %d inputs", l->softmax_groups, l->inputs);
    if (!(l->temperature > 0)) return dn_opt_fail(o, "temperature", DN_ERR_PARSE, "temperature must be positive");
    l->out_w = l->w; l->out_h = l->h; l->out_c = l->c;
    l->has_cost = 1;
    return DN_OK;
}

static void softmax_slice(const float *x, int n, float temp, float *out)
{
    float largest = -FLT_MAX, sum = 0;
    for (int i = 0; i < n; ++i) if (x[i] > largest) largest = x[i];
    for (int i = 0; i < n; ++i) { out[i] = expf((x[i] - largest) / temp); sum += out[i]; }
    for (int i = 0; i < n; ++i) out[i] /= sum;
}

static dn_status softmax_forward(dn_layer *l, dn_network *net)
{
    int n = l->inputs / l->softmax_groups;
    for (int b = 0; b < l->batch; ++b)
        for (int g = 0; g < l->softmax_groups; ++g) {
            size_t off = (size_t)b * l->inputs + (size_t)g * n;
            softmax_slice(net->input + off, n, l->temperature, l->output + off);
        }
    l->cost = 0;
    if (!net->truth) return DN_OK;
    size_t total = (size_t)l->batch * l->inputs;
    for (size_t i = 0; i < total; ++i) {
        float t = net->truth[i], p = l->output[i];
        l->delta[i] = t - p;
        if (t != 0) l->cost += -t * logf(p < FLT_MIN ? FLT_MIN : p);   /* a NaN p stays NaN */
    }
    return DN_OK;
}

static dn_status softmax_backward(dn_layer *l, dn_network *net)
{
    if (net->delta) dn_axpy(net->delta, 1, l->delta, (size_t)l->batch * l->inputs);
    return DN_OK;
}

static double softmax_flops(const dn_layer *l) { return 3.0 * l->inputs; }

/* ------------------------------------------------------------ GPU half */
#ifdef DN_GPU
/* input (batch, groups * n) -> softmax of each slice / temperature; with a
 * truth: delta = t - p and the cross-entropy cost. */
static dn_status softmax_forward_gpu(dn_layer *l, dn_network *net)
{
    int len = l->inputs / l->softmax_groups, parts = 0;
    size_t rows = (size_t)l->batch * l->softmax_groups;
    DN_TRY(DN_CUDA(dn_cuda_softmax(net->input_gpu, rows, len, l->temperature, l->output_gpu)));
    l->cost = 0;
    if (!net->truth) return DN_OK;
    DN_TRY(dn_gpu_loss_truth_fits(l, net));
    DN_TRY(DN_CUDA(dn_cuda_softmax_cost(l->output_gpu, net->truth_buf_gpu, (size_t)l->batch * l->inputs,
                                        l->delta_gpu, net->workspace_gpu, &parts)));
    return dn_gpu_loss_pull(net, parts, &l->cost);
}

static dn_status softmax_backward_gpu(dn_layer *l, dn_network *net) { return dn_gpu_pass_delta(l, net, 1); }

static const dn_layer_gpu_ops softmax_gpu = {
    .forward_gpu = softmax_forward_gpu,
    .backward_gpu = softmax_backward_gpu,
    .workspace_gpu = dn_gpu_loss_workspace,
};
#endif

/* A loss that is also the network's output (the probabilities). */
const dn_layer_ops dn_softmax_ops = {
    .type = DN_SOFTMAX,
    .names = {"softmax", "soft"},
    .loss = 1,
    .parse = softmax_parse,
    .alloc_buffers = dn_alloc_output_delta,
    .forward = softmax_forward,
    .backward = softmax_backward,
    .flops = softmax_flops,
    .gpu = DN_GPU_OPS(softmax_gpu),
};
