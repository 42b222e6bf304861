/*
 * layer_local_avgpool.c — [local_avgpool] / [local_avg] (AlexeyAB's name):
 * windowed average per channel, same window rules and keys as [maxpool].
 * Cells outside the input are not counted: each output is the mean of the
 * window cells that lie inside the image.
 *
 *   input (batch, c, h, w) -> output (batch, c, out_h, out_w)
 */
#include "internal.h"

dn_status dn_parse_pool_window(dn_layer *l, dn_parse_ctx *ctx);

/* Visit the in-image cells of output (i, j)'s window: returns their count. */
static int window(const dn_layer *l, int i, int j, int *y0, int *y1, int *x0, int *x1)
{
    int off = -l->pad / 2;
    *y0 = i * l->stride + off; *y1 = *y0 + l->size;
    *x0 = j * l->stride + off; *x1 = *x0 + l->size;
    if (*y0 < 0) *y0 = 0;
    if (*x0 < 0) *x0 = 0;
    if (*y1 > l->h) *y1 = l->h;
    if (*x1 > l->w) *x1 = l->w;
    int n = (*y1 - *y0) * (*x1 - *x0);
    return n > 0 ? n : 0;
}

static void local_avgpool_forward(dn_layer *l, dn_network *net)
{
    for (int b = 0; b < l->batch; ++b)
        for (int k = 0; k < l->c; ++k) {
            const float *in = net->input + ((size_t)b * l->c + k) * l->h * l->w;
            float *out = l->output + ((size_t)b * l->c + k) * l->out_h * l->out_w;
            for (int i = 0; i < l->out_h; ++i)
                for (int j = 0; j < l->out_w; ++j) {
                    int y0, y1, x0, x1, n = window(l, i, j, &y0, &y1, &x0, &x1);
                    float s = 0;
                    for (int y = y0; y < y1; ++y)
                        for (int x = x0; x < x1; ++x) s += in[y * l->w + x];
                    out[i * l->out_w + j] = n ? s / n : 0;
                }
        }
}

static void local_avgpool_backward(dn_layer *l, dn_network *net)
{
    if (!net->delta) return;
    for (int b = 0; b < l->batch; ++b)
        for (int k = 0; k < l->c; ++k) {
            float *in_d = net->delta + ((size_t)b * l->c + k) * l->h * l->w;
            const float *d = l->delta + ((size_t)b * l->c + k) * l->out_h * l->out_w;
            for (int i = 0; i < l->out_h; ++i)
                for (int j = 0; j < l->out_w; ++j) {
                    int y0, y1, x0, x1, n = window(l, i, j, &y0, &y1, &x0, &x1);
                    if (!n) continue;
                    float g = d[i * l->out_w + j] / n;
                    for (int y = y0; y < y1; ++y)
                        for (int x = x0; x < x1; ++x) in_d[y * l->w + x] += g;
                }
        }
}

static double local_avgpool_flops(const dn_layer *l) { return (double)l->outputs * l->size * l->size; }

const dn_layer_ops dn_local_avgpool_ops = {
    DN_LOCAL_AVGPOOL, {"local_avgpool", "local_avg", NULL},
    dn_parse_pool_window, NULL, NULL, dn_alloc_output_delta,
    local_avgpool_forward, local_avgpool_backward, NULL, dn_free_common, local_avgpool_flops,
};
