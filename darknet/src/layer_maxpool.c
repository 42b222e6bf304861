/*
 * layer_maxpool.c — [maxpool] / [max]: windowed maximum per channel.
 *
 *   input (batch, c, h, w) -> output (batch, c, out_h, out_w)
 *   out = (in + padding - size)/stride + 1; the window starts at -padding/2;
 *   cells outside the input never win (upstream's effective "ceil mode").
 *   Defaults: stride=1, size=stride, padding=size-1.
 */
#include "internal.h"
#include <float.h>
#include <stdlib.h>

/* Shared by [maxpool] and [local_avgpool]: size, stride, padding and shape. */
dn_status dn_parse_pool_window(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_opts o = ctx->opts;
    DN_TRY(dn_opt_int(o, "stride", 1, &l->stride));
    DN_TRY(dn_opt_int(o, "size", l->stride, &l->size));
    DN_TRY(dn_opt_int(o, "padding", l->size - 1, &l->pad));
    DN_TRY(dn_require_image(l, ctx));
    /* stride first: size defaults to it */
    if (l->stride < 1) return dn_opt_fail(o, "stride", DN_ERR_SHAPE, "stride=%d must be at least 1", l->stride);
    if (l->size < 1) return dn_opt_fail(o, "size", DN_ERR_SHAPE, "size=%d must be at least 1", l->size);
    if (l->pad < 0) return dn_opt_fail(o, "padding", DN_ERR_SHAPE, "padding=%d must not be negative", l->pad);
    long long pw = (long long)l->w + l->pad, ph = (long long)l->h + l->pad;   /* no int overflow */
    if (l->size > pw || l->size > ph)
        return dn_opt_fail(o, "size", DN_ERR_SHAPE, "window size %d is larger than its padded input %dx%d (padding %d)",
                           l->size, l->w, l->h, l->pad);
    long long ow = (pw - l->size) / l->stride + 1, oh = (ph - l->size) / l->stride + 1;
    if ((double)ow * oh * l->c > 1073741824.0 || (double)l->size * l->size > 1073741824.0)
        return dn_opt_fail(o, NULL, DN_ERR_SHAPE, "too large: output %lldx%lldx%d, window %d (limit 2^30 floats)", ow, oh,
                           l->c, l->size);
    l->out_w = (int)ow;
    l->out_h = (int)oh;
    l->out_c = l->c;
    return DN_OK;
}

static dn_status maxpool_alloc_buffers(dn_layer *l)
{
    DN_TRY(dn_alloc_output_delta(l));
    free(l->indexes);
    l->indexes = dn_calloc((size_t)l->batch * l->outputs, sizeof(int));
    return l->indexes ? DN_OK : DN_ERR_NOMEM;
}

static void maxpool_forward(dn_layer *l, dn_network *net)
{
    int off = -l->pad / 2;
    for (int b = 0; b < l->batch; ++b)
        for (int k = 0; k < l->c; ++k) {
            const float *in = net->input + ((size_t)b * l->c + k) * l->h * l->w;
            for (int i = 0; i < l->out_h; ++i)
                for (int j = 0; j < l->out_w; ++j) {
                    size_t o = (((size_t)b * l->c + k) * l->out_h + i) * l->out_w + j;
                    float best = -FLT_MAX;
                    int best_at = -1;
                    for (int y = i * l->stride + off; y < i * l->stride + off + l->size; ++y)
                        for (int x = j * l->stride + off; x < j * l->stride + off + l->size; ++x) {
                            if (y < 0 || y >= l->h || x < 0 || x >= l->w) continue;
                            float v = in[y * l->w + x];
                            if (v > best || best_at < 0) { best = v; best_at = y * l->w + x; }
                        }
                    l->output[o] = best_at < 0 ? 0 : best;
                    l->indexes[o] = best_at < 0 ? -1 : (int)(((size_t)b * l->c + k) * l->h * l->w) + best_at;
                }
        }
}

static void maxpool_backward(dn_layer *l, dn_network *net)
{
    if (!net->delta) return;
    size_t n = (size_t)l->batch * l->outputs;
    for (size_t i = 0; i < n; ++i)
        if (l->indexes[i] >= 0) net->delta[l->indexes[i]] += l->delta[i];
}

static double maxpool_flops(const dn_layer *l) { return (double)l->outputs * l->size * l->size; }

const dn_layer_ops dn_maxpool_ops = {
    DN_MAXPOOL, {"maxpool", "max", NULL},
    dn_parse_pool_window, NULL, NULL, maxpool_alloc_buffers,
    maxpool_forward, maxpool_backward, NULL, dn_free_common, maxpool_flops,
};
