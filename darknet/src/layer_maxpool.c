/*
 * layer_maxpool.c — [maxpool] / [max]: windowed maximum per channel.
 *
 *   input (batch, c, h, w) -> output (batch, c, out_h, out_w)
 *   out = (in + padding - size)/stride + 1; the window starts at -padding/2;
 *   cells outside the input never win (upstream's effective "ceil mode").
 *   Defaults: stride=1, size=stride, padding=size-1.
 */
#include "layer_gpu.h"
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

static void maxpool_free(dn_layer *l)
{
    free(l->indexes);
    l->indexes = NULL;
    dn_free_common(l);
}

/* Window rows (or columns) [*lo, *hi) of output i clipped to the input [0, len). */
static void clip_window(int i, int stride, int off, int size, int len, int *lo, int *hi)
{
    int a = i * stride + off, e = a + size;
    *lo = a < 0 ? 0 : a;
    *hi = e > len ? len : e;
}

/* Output (i, j) of a channel by the clipped window: used on the border, where
 * the window may leave the input. Cells are scanned in row order, the first
 * valid one seeds the maximum and only a strictly greater one replaces it. */
static void maxpool_clipped(const dn_layer *l, const float *in, int i, int j, float *out, int *idx, int base)
{
    int off = -l->pad / 2, y0, y1, x0, x1;
    clip_window(i, l->stride, off, l->size, l->h, &y0, &y1);
    clip_window(j, l->stride, off, l->size, l->w, &x0, &x1);
    if (y0 >= y1 || x0 >= x1) { *out = 0; *idx = -1; return; }
    int best_at = y0 * l->w + x0;
    float best = in[best_at];
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) {
            int at = y * l->w + x, gt = in[at] > best;   /* branch-free: random data mispredicts */
            best_at ^= (best_at ^ at) & -gt;
            best = gt ? in[at] : best;
        }
    *out = best;
    *idx = base + best_at;
}

/* gt ? a : b, bit for bit, without a branch or a float select: GCC does not
 * if-convert a chain of float comparisons under the default -ftrapping-math,
 * but vectorises this. */
static inline float select_bits(int gt, float a, float b)
{
    uint32_t ua, ub;
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ub ^= (ua ^ ub) & (uint32_t)-gt;
    memcpy(&b, &ub, sizeof b);
    return b;
}

/* n interior outputs (windows wholly inside the input, so the top-left cell
 * seeds the maximum): window k has its top-left cell at in[k*stride] and
 * absolute index at + k*stride; rows are w apart. Same scan as
 * maxpool_clipped. Called with constant size and stride, GCC unrolls the
 * window and vectorises over k. */
static inline void maxpool_span(const float *restrict in, int at, int w, int size, int stride, int n,
                                float *restrict out, int *restrict idx)
{
    for (int k = 0; k < n; ++k) {
        const float *p = in + (ptrdiff_t)k * stride;
        float best = p[0];
        int best_at = 0;
        for (int dy = 0; dy < size; ++dy)
            for (int dx = 0; dx < size; ++dx) {
                int cell = dy * w + dx, gt = p[cell] > best;
                best = select_bits(gt, p[cell], best);
                best_at ^= (best_at ^ cell) & -gt;
            }
        out[k] = best;
        idx[k] = at + k * stride + best_at;
    }
}

/* maxpool_span for any window, sh rows by sw columns, with window k at
 * in[k*step] and its output at out[k*ostep] (and idx): one pass over the n
 * outputs per window cell, in row order, so that each pass vectorises. Also
 * serves the border, with the window clipped to the input. */
static void maxpool_span_rect(const float *restrict in, int at, int w, int sh, int sw, int step, int n,
                              float *restrict out, int *restrict idx, int ostep)
{
    for (int k = 0; k < n; ++k) {
        out[k * ostep] = in[(ptrdiff_t)k * step];
        idx[k * ostep] = 0;
    }
    for (int dy = 0; dy < sh; ++dy)
        for (int dx = 0; dx < sw; ++dx) {
            int cell = dy * w + dx;
            const float *p = in + cell;
            for (int k = 0; k < n; ++k) {
                float v = p[(ptrdiff_t)k * step], b = out[k * ostep];
                int gt = v > b;
                out[k * ostep] = select_bits(gt, v, b);
                idx[k * ostep] ^= (idx[k * ostep] ^ cell) & -gt;
            }
        }
    for (int k = 0; k < n; ++k) idx[k * ostep] += at + k * step;
}

/* Interior windows, the usual ones with size and stride as constants. */
static void maxpool_interior(const float *in, int at, int w, int size, int stride, int n, float *out, int *idx)
{
    if (size == 2 && stride == 2) maxpool_span(in, at, w, 2, 2, n, out, idx);
    else if (size == 3 && stride == 1) maxpool_span(in, at, w, 3, 1, n, out, idx);
    else if (size == 2 && stride == 1) maxpool_span(in, at, w, 2, 1, n, out, idx);
    else if (size == 3 && stride == 2) maxpool_span(in, at, w, 3, 2, n, out, idx);
    else maxpool_span_rect(in, at, w, size, size, stride, n, out, idx, 1);
}

/* Outputs [*lo, *hi) of out_len whose windows lie wholly inside [0, len). */
static void interior_range(int stride, int off, int size, int len, int out_len, int *lo, int *hi)
{
    int last = len - size - off;   /* largest window start (relative to off) that fits */
    *lo = (-off + stride - 1) / stride;
    if (*lo > out_len) *lo = out_len;
    *hi = last < 0 ? 0 : last / stride + 1;
    if (*hi > out_len) *hi = out_len;
    if (*hi < *lo) *hi = *lo;
}

/* Interior: windows wholly inside, rows [i0, i1) by columns [j0, j1). With
 * stride 1 and out_w == w an output row maps onto an input row with the same
 * flat offset, so the rows go as one span; the border columns it computes
 * wrongly on the way (windows that wrap onto the next row, still inside the
 * plane) are redone afterwards by maxpool_border_columns. */
static void maxpool_interior_block(const dn_layer *l, const float *in, float *out, int *idx, int base, int i0,
                                   int i1, int j0, int j1)
{
    int off = -l->pad / 2, ow = l->out_w, s = l->stride;
    if (i0 >= i1 || j0 >= j1) return;
    if (s == 1 && ow == l->w) {
        int o = i0 * ow + j0, at = (i0 + off) * l->w + j0 + off;
        maxpool_interior(in + at, base + at, l->w, l->size, 1, (i1 - 1 - i0) * ow + j1 - j0, out + o, idx + o);
        return;
    }
    for (int i = i0; i < i1; ++i) {
        int o = i * ow + j0, at = (i * s + off) * l->w + j0 * s + off;
        maxpool_interior(in + at, base + at, l->w, l->size, s, j1 - j0, out + o, idx + o);
    }
}

/* Border rows (window clipped vertically) over the interior columns [j0, j1). */
static void maxpool_border_row(const dn_layer *l, const float *in, float *out, int *idx, int base, int i, int j0,
                               int j1)
{
    int off = -l->pad / 2, s = l->stride, y0, y1;
    clip_window(i, s, off, l->size, l->h, &y0, &y1);
    if (y0 >= y1) {
        for (int j = j0; j < j1; ++j) maxpool_clipped(l, in, i, j, out + i * l->out_w + j, idx + i * l->out_w + j, base);
        return;
    }
    int o = i * l->out_w + j0, at = y0 * l->w + j0 * s + off;
    maxpool_span_rect(in + at, base + at, l->w, y1 - y0, l->size, s, j1 - j0, out + o, idx + o, 1);
}

/* Border columns (window clipped horizontally) over the interior rows [i0, i1). */
static void maxpool_border_column(const dn_layer *l, const float *in, float *out, int *idx, int base, int j, int i0,
                                  int i1)
{
    int off = -l->pad / 2, s = l->stride, x0, x1;
    clip_window(j, s, off, l->size, l->w, &x0, &x1);
    if (x0 >= x1) {
        for (int i = i0; i < i1; ++i) maxpool_clipped(l, in, i, j, out + i * l->out_w + j, idx + i * l->out_w + j, base);
        return;
    }
    int o = i0 * l->out_w + j, at = (i0 * s + off) * l->w + x0;
    maxpool_span_rect(in + at, base + at, l->w, l->size, x1 - x0, s * l->w, i1 - i0, out + o, idx + o, l->out_w);
}

/* One channel: in (h, w) -> out, idx (out_h, out_w); base is the channel's
 * offset in the whole input. Interior, then border rows and columns as spans
 * of clipped windows, then the corners one by one. */
static void maxpool_channel(const dn_layer *l, const float *in, float *out, int *idx, int base)
{
    int off = -l->pad / 2, ow = l->out_w, i0, i1, j0, j1;
    interior_range(l->stride, off, l->size, l->h, l->out_h, &i0, &i1);
    interior_range(l->stride, off, l->size, l->w, ow, &j0, &j1);
    maxpool_interior_block(l, in, out, idx, base, i0, i1, j0, j1);
    for (int j = 0; j < ow; ++j)
        if ((j < j0 || j >= j1) && i0 < i1) maxpool_border_column(l, in, out, idx, base, j, i0, i1);
    for (int i = 0; i < l->out_h; ++i) {
        if (i >= i0 && i < i1) continue;
        if (j0 < j1) maxpool_border_row(l, in, out, idx, base, i, j0, j1);
        for (int j = 0; j < ow; ++j)
            if (j < j0 || j >= j1) maxpool_clipped(l, in, i, j, out + i * ow + j, idx + i * ow + j, base);
    }
}

typedef struct {
    dn_layer *l;
    const float *input;
    float *in_delta;
} maxpool_job;

/* Planes (image, channel) [*p0, *p1) of worker w of W. */
static void worker_planes(const dn_layer *l, int w, int workers, size_t *p0, size_t *p1)
{
    size_t planes = (size_t)l->batch * l->c;
    *p0 = planes * (size_t)w / (size_t)workers;
    *p1 = planes * (size_t)(w + 1) / (size_t)workers;
}

static void maxpool_worker(void *arg, int w, int workers)
{
    maxpool_job *j = arg;
    dn_layer *l = j->l;
    size_t in_ch = (size_t)l->h * l->w, out_ch = (size_t)l->out_h * l->out_w, p0, p1;
    worker_planes(l, w, workers, &p0, &p1);
    for (size_t bk = p0; bk < p1; ++bk)
        maxpool_channel(l, j->input + bk * in_ch, l->output + bk * out_ch, l->indexes + bk * out_ch,
                        (int)(bk * in_ch));
}

/* Planes are independent (a plane's indexes point into its own input plane):
 * workers split them on layers large enough to pay for a thread, and the
 * results do not depend on the split. */
static int maxpool_workers(const dn_layer *l)
{
    return (size_t)l->batch * l->outputs < ((size_t)1 << 16) ? 1 : dn_threads();
}

static dn_status maxpool_forward(dn_layer *l, dn_network *net)
{
    maxpool_job j = {l, net->input, NULL};
    dn_parallel(maxpool_worker, &j, maxpool_workers(l));
    return DN_OK;
}

/* Each plane's outputs add their delta to their winners in output order, as
 * a serial scatter would. */
static void maxpool_backward_worker(void *arg, int w, int workers)
{
    maxpool_job *j = arg;
    dn_layer *l = j->l;
    size_t out_ch = (size_t)l->out_h * l->out_w, p0, p1;
    worker_planes(l, w, workers, &p0, &p1);
    const int *idx = l->indexes;
    const float *d = l->delta;
    for (size_t i = p0 * out_ch; i < p1 * out_ch; ++i)
        if (idx[i] >= 0) j->in_delta[idx[i]] += d[i];
}

static dn_status maxpool_backward(dn_layer *l, dn_network *net)
{
    if (!net->delta) return DN_OK;
    maxpool_job j = {l, NULL, net->delta};
    dn_parallel(maxpool_backward_worker, &j, maxpool_workers(l));
    return DN_OK;
}

static double maxpool_flops(const dn_layer *l) { return (double)l->outputs * l->size * l->size; }

/* The window column ("0 size x size / stride": a pool has no filters). */
static void maxpool_describe(const dn_layer *l, FILE *f) { dn_describe_row(l, f, 1, 0); }

/* ------------------------------------------------------------ GPU half
 * The argmax indexes live in the layer's device state (batch*outputs ints
 * in a float buffer). */
#ifdef DN_GPU
_Static_assert(sizeof(int) == sizeof(float), "maxpool keeps its int indexes in a float device buffer");

static dn_status maxpool_setup_gpu(dn_layer *l) { return dn_gpu_state_alloc(l, (size_t)l->batch * l->outputs); }

static dn_status maxpool_forward_gpu(dn_layer *l, dn_network *net)
{
    dn_cuda_pool p = dn_gpu_pool_window(l);
    return DN_CUDA(dn_cuda_maxpool_forward(&p, net->input_gpu, l->output_gpu, l->gpu_state));
}

static dn_status maxpool_backward_gpu(dn_layer *l, dn_network *net)
{
    if (!net->delta_gpu) return DN_OK;
    dn_cuda_pool p = dn_gpu_pool_window(l);
    return DN_CUDA(dn_cuda_maxpool_backward(&p, l->delta_gpu, l->gpu_state, net->delta_gpu));
}

static const dn_layer_gpu_ops maxpool_gpu = {
    .forward_gpu = maxpool_forward_gpu,
    .backward_gpu = maxpool_backward_gpu,
    .setup_gpu = maxpool_setup_gpu,
    .release_gpu = dn_gpu_state_release,
};
#endif

const dn_layer_ops dn_maxpool_ops = {
    .type = DN_MAXPOOL,
    .names = {"maxpool", "max"},
    .parse = dn_parse_pool_window,
    .describe = maxpool_describe,
    .alloc_buffers = maxpool_alloc_buffers,
    .free = maxpool_free,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .flops = maxpool_flops,
    .gpu = DN_GPU_OPS(maxpool_gpu),
};
