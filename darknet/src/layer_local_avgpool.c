/*
 * layer_local_avgpool.c — [local_avgpool] / [local_avg] (AlexeyAB's name):
 * windowed average per channel, same window rules and keys as [maxpool].
 * Cells outside the input are not counted: each output is the mean of the
 * window cells that lie inside the image.
 *
 *   input (batch, c, h, w) -> output (batch, c, out_h, out_w)
 */
#include "layer_gpu.h"

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

static dn_status local_avgpool_forward(dn_layer *l, dn_network *net)
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
    return DN_OK;
}

static dn_status local_avgpool_backward(dn_layer *l, dn_network *net)
{
    if (!net->delta) return DN_OK;
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
    return DN_OK;
}

static double local_avgpool_flops(const dn_layer *l) { return (double)l->outputs * l->size * l->size; }

/* The window column ("0 size x size / stride": a pool has no filters). */
static void local_avgpool_describe(const dn_layer *l, FILE *f) { dn_describe_row(l, f, 1, 0); }

/* ------------------------------------------------------------ GPU half */
#ifdef DN_GPU
static dn_status local_avgpool_forward_gpu(dn_layer *l, dn_network *net)
{
    dn_cuda_pool p = dn_gpu_pool_window(l);
    return DN_CUDA(dn_cuda_local_avgpool_forward(&p, net->input_gpu, l->output_gpu));
}

static dn_status local_avgpool_backward_gpu(dn_layer *l, dn_network *net)
{
    if (!net->delta_gpu) return DN_OK;
    dn_cuda_pool p = dn_gpu_pool_window(l);
    return DN_CUDA(dn_cuda_local_avgpool_backward(&p, l->delta_gpu, net->delta_gpu));
}

static const dn_layer_gpu_ops local_avgpool_gpu = {
    .forward_gpu = local_avgpool_forward_gpu,
    .backward_gpu = local_avgpool_backward_gpu,
};
#endif

const dn_layer_ops dn_local_avgpool_ops = {
    .type = DN_LOCAL_AVGPOOL,
    .names = {"local_avgpool", "local_avg"},
    .parse = dn_parse_pool_window,
    .describe = local_avgpool_describe,
    .alloc_buffers = dn_alloc_output_delta,
    .forward = local_avgpool_forward,
    .backward = local_avgpool_backward,
    .flops = local_avgpool_flops,
    .gpu = DN_GPU_OPS(local_avgpool_gpu),
};
