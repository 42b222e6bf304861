/*
 * layer_maxpool.c — [maxpool] / [max]: windowed maximum per channel.
 *
 *   input (batch, c, h, w) -> output (batch, c, out_h, out_w)
 *   out = (in + padding - size)/stride + 1; the window starts at -padding/2;
 *   cells outside the input never win (upstream's effective "ceil mode").
 *   Defaults: stride=1, size=stride, padding=size-1.
 */
#include "internal.h"
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

/* Window rows (or columns) [*lo, *hi) of output i clipped to the input [0, len). */
static void clip_window(int i, int stride, int off, int size, int len, int *lo, int *hi)
{
    int a = i * stride + off, e = a + size;
    *lo = a < 0 ? 0 : a;
    *hi = e > len ? len : e;
}

/* One channel: in (h, w) -> out, idx (out_h, out_w); base is the channel's
 * offset in the whole input. Cells are scanned in row order, the first valid
 * one seeds the maximum and only a strictly greater one replaces it. */
static void maxpool_channel(const dn_layer *l, const float *in, float *out, int *idx, int base)
{
    int off = -l->pad / 2;
    for (int i = 0; i < l->out_h; ++i) {
        int y0, y1;
        clip_window(i, l->stride, off, l->size, l->h, &y0, &y1);
        for (int j = 0; j < l->out_w; ++j) {
            int x0, x1;
            clip_window(j, l->stride, off, l->size, l->w, &x0, &x1);
            int o = i * l->out_w + j;
            if (y0 >= y1 || x0 >= x1) { out[o] = 0; idx[o] = -1; continue; }
            int best_at = y0 * l->w + x0;
            float best = in[best_at];
            for (int y = y0; y < y1; ++y)
                for (int x = x0; x < x1; ++x) {
                    int at = y * l->w + x, gt = in[at] > best;   /* branch-free: random data mispredicts */
                    best_at ^= (best_at ^ at) & -gt;
                    best = gt ? in[at] : best;
                }
            out[o] = best;
            idx[o] = base + best_at;
        }
    }
}

typedef struct {
    dn_layer *l;
    const float *input;
} maxpool_job;

/* Worker w of W: planes (image, channel) [w*P/W, (w+1)*P/W). */
static void maxpool_worker(void *arg, int w, int workers)
{
    maxpool_job *j = arg;
    dn_layer *l = j->l;
    size_t planes = (size_t)l->batch * l->c, in_ch = (size_t)l->h * l->w, out_ch = (size_t)l->out_h * l->out_w;
    size_t p0 = planes * (size_t)w / (size_t)workers, p1 = planes * (size_t)(w + 1) / (size_t)workers;
    for (size_t bk = p0; bk < p1; ++bk)
        maxpool_channel(l, j->input + bk * in_ch, l->output + bk * out_ch, l->indexes + bk * out_ch,
                        (int)(bk * in_ch));
}

/* Planes are independent: workers split them on layers large enough to pay
 * for a thread (results do not depend on the split). */
static void maxpool_forward(dn_layer *l, dn_network *net)
{
    maxpool_job j = {l, net->input};
    int workers = (size_t)l->batch * l->outputs < ((size_t)1 << 16) ? 1 : dn_threads();
    dn_parallel(maxpool_worker, &j, workers);
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
