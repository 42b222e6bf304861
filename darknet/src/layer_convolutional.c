/*
 * layer_convolutional.c — [convolutional] / [conv]: grouped 2-D convolution
 * as GEMMs over unfolded (im2col) images, optional batch norm, then the
 * activation.
 *
 *   input  (batch, c, h, w)
 *   weights (filters, c/groups, size, size)     biases (filters)
 *   output (batch, filters, out_h, out_w),  out = (in + 2*padding - size)/stride + 1
 *
 * Paths (all give the same results up to float summation order; tests/test_kernels.c
 * compares the fast ones with the reference):
 *   - depthwise (groups == c == filters): direct kernels (conv_depthwise.c),
 *     workers split the channels;
 *   - implicit GEMM (where the packed AVX-512 GEMM runs, gemm_fast.c): a slice
 *     of images is one GEMM per group whose right-hand side is packed straight
 *     from the input image (nothing unfolded into scratch) and whose result is
 *     written straight into the output images; the input delta of a stride-1
 *     convolution is itself a convolution with the flipped weights (see
 *     "implicit GEMM" below);
 *   - otherwise chunked: a chunk of images is unfolded side by side so one
 *     GEMM covers it;
 *   both cut the batch into SLICES fixed slices that workers share
 *   (threads.c), each slice with its own weight-update sum, so results do not
 *   depend on the thread count;
 *   - reference (dn_conv_reference, or too little workspace): one im2col and
 *     GEMM per image and group.
 *
 * Upstream quirk fixed: a 1x1 convolution with stride > 1 is computed
 * correctly (upstream skips im2col for every 1x1 kernel and reads garbage).
 */
#include "layer_gpu.h"
#include <math.h>
#include <stdlib.h>

int dn_conv_reference = 0;

/* Images are convolved in chunks whose scratch stays about this many floats
 * (1 MiB: the columns stay in L2 while one GEMM covers several images). */
#define CHUNK_FLOATS ((size_t)1 << 18)

/* Floats of scratch one image needs on the chunked path:
 * columns (k, n) and the output/delta transposed (m, n). */
static size_t chunk_image_floats(const dn_layer *l)
{
    size_t k = (size_t)l->size * l->size * (l->c / l->groups), m = (size_t)(l->filters / l->groups);
    return (k + m) * l->out_h * l->out_w;
}

/* Images per chunk (at least 1, at most the batch). */
static int chunk_images(const dn_layer *l)
{
    size_t per = chunk_image_floats(l), c = CHUNK_FLOATS / per;
    if (c < 1) c = 1;
    return c < (size_t)l->batch ? (int)c : l->batch;
}

/* The batch is cut into SLICES fixed parts, each with its own weight-update
 * sum (slice 0 straight into weight_updates, the others into zeroed copies
 * added in slice order), so results do not depend on the number of workers. */
#define SLICES 6

/* Floats of scratch for `workers` workers: each its chunk's scratch, and
 * SLICES - 1 copies of the weight updates. */
static size_t workers_scratch(const dn_layer *l, int workers)
{
    return (size_t)workers * chunk_image_floats(l) * chunk_images(l) + (size_t)(SLICES - 1) * l->nweights;
}

static size_t depthwise_workspace(const dn_layer *l);   /* the depthwise section below */

static size_t conv_workspace(const dn_layer *l)
{
    size_t per_image = (size_t)(l->c / l->groups) * l->size * l->size * l->out_h * l->out_w;
    int workers = dn_threads() < SLICES ? dn_threads() : SLICES;
    size_t chunked = workers_scratch(l, workers) + l->nweights;   /* + the flipped weights */
    size_t ws = chunked > per_image ? chunked : per_image, dw = depthwise_workspace(l);
    return dw > ws ? dw : ws;
}

static dn_status conv_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_opts o = ctx->opts;
    int pad, padding, binary, xnor;
    DN_TRY(dn_opt_int(o, "filters", 1, &l->filters));
    DN_TRY(dn_opt_int(o, "size", 1, &l->size));
    DN_TRY(dn_opt_int(o, "stride", 1, &l->stride));
    DN_TRY(dn_opt_int(o, "pad", 0, &pad));
    DN_TRY(dn_opt_int(o, "padding", 0, &padding));
    DN_TRY(dn_opt_int(o, "groups", 1, &l->groups));
    DN_TRY(dn_opt_int(o, "batch_normalize", 0, &l->batch_normalize));
    DN_TRY(dn_opt_int(o, "binary", 0, &binary));
    DN_TRY(dn_opt_int(o, "xnor", 0, &xnor));
    const char *act = dn_opt_str(o, "activation", "logistic");
    if (dn_activation_from_name(act, &l->activation) != DN_OK)
        return dn_opt_fail(o, "activation", DN_ERR_PARSE, "unknown activation '%s'", act);
    if (binary || xnor)
        return dn_opt_fail(o, binary ? "binary" : "xnor", DN_ERR_PARSE, "binary/xnor convolutions are not supported");
    l->pad = pad ? l->size / 2 : padding;
    DN_TRY(dn_require_image(l, ctx));
    if (l->filters < 1) return dn_opt_fail(o, "filters", DN_ERR_SHAPE, "filters=%d must be at least 1", l->filters);
    if (l->size < 1) return dn_opt_fail(o, "size", DN_ERR_SHAPE, "size=%d must be at least 1", l->size);
    if (l->stride < 1) return dn_opt_fail(o, "stride", DN_ERR_SHAPE, "stride=%d must be at least 1", l->stride);
    if (l->pad < 0) return dn_opt_fail(o, "padding", DN_ERR_SHAPE, "padding=%d must not be negative", l->pad);
    if (l->groups < 1) return dn_opt_fail(o, "groups", DN_ERR_SHAPE, "groups=%d must be at least 1", l->groups);
    if (l->c % l->groups || l->filters % l->groups)
        return dn_opt_fail(o, "groups", DN_ERR_SHAPE, "groups=%d must divide both the input channels (%d) and filters (%d)",
                           l->groups, l->c, l->filters);
    long long pw = (long long)l->w + 2LL * l->pad, ph = (long long)l->h + 2LL * l->pad;  /* no int overflow */
    if (l->size > pw || l->size > ph)
        return dn_opt_fail(o, "size", DN_ERR_SHAPE, "kernel size %d is larger than its padded input %dx%d (padding %d)",
                           l->size, l->w, l->h, l->pad);
    long long ow = (pw - l->size) / l->stride + 1, oh = (ph - l->size) / l->stride + 1;
    double limit = 1073741824.0, kc = (double)l->size * l->size * l->c;   /* 2^30 floats, as the parser's limit */
    if ((double)ow * oh * l->filters > limit || kc > limit || kc / l->groups * l->filters > limit ||
        kc / l->groups * ow * oh > limit)
        return dn_opt_fail(o, NULL, DN_ERR_SHAPE, "too large: output %lldx%lldx%d, kernel %dx%dx%d (limit 2^30 floats)",
                           ow, oh, l->filters, l->size, l->size, l->c);
    l->out_w = (int)ow;
    l->out_h = (int)oh;
    l->out_c = l->filters;
    l->nweights = (size_t)l->filters * (l->c / l->groups) * l->size * l->size;
    l->workspace_size = conv_workspace(l);
    return DN_OK;
}

static dn_status conv_alloc_params(dn_layer *l)
{
    l->weights = dn_layer_alloc(l->nweights);
    l->weight_updates = dn_layer_alloc(l->nweights);
    l->biases = dn_layer_alloc((size_t)l->filters);
    l->bias_updates = dn_layer_alloc((size_t)l->filters);
    if (!l->weights || !l->weight_updates || !l->biases || !l->bias_updates) return DN_ERR_NOMEM;
    return l->batch_normalize ? dn_alloc_batchnorm_params(l, l->filters) : DN_OK;
}

/* He-normal: std sqrt(2 / fan_in), biases 0, as upstream. */
static void conv_init_params(dn_layer *l, uint64_t *rng)
{
    float std = sqrtf(2.f / (l->size * l->size * l->c / l->groups));
    for (size_t i = 0; i < l->nweights; ++i) l->weights[i] = std * dn_rand_normal(rng);
    dn_fill(l->biases, (size_t)l->filters, 0);
    if (l->batch_normalize) dn_init_batchnorm_params(l, l->filters);
}

static dn_status conv_alloc_buffers(dn_layer *l)
{
    DN_TRY(dn_alloc_output_delta(l));
    return l->batch_normalize ? dn_alloc_batchnorm_buffers(l) : DN_OK;
}

/* 1x1, stride 1, no padding: the image already is its own column matrix. */
static int is_pointwise(const dn_layer *l) { return l->size == 1 && l->stride == 1 && l->pad == 0; }

/* Reference path: one GEMM per image and group. */
static void conv_forward_ref(dn_layer *l, dn_network *net)
{
    int m = l->filters / l->groups;                       /* filters per group  */
    int k = l->size * l->size * l->c / l->groups;         /* column height      */
    int n = l->out_w * l->out_h;                          /* output positions   */
    size_t in_group = (size_t)(l->c / l->groups) * l->h * l->w;
    for (int b = 0; b < l->batch; ++b)
        for (int g = 0; g < l->groups; ++g) {
            const float *a = l->weights + (size_t)g * m * k;                    /* (m, k) */
            const float *im = net->input + ((size_t)b * l->groups + g) * in_group;
            float *c = l->output + ((size_t)b * l->groups + g) * m * n;         /* (m, n) */
            const float *cols = im;                                             /* (k, n) */
            if (!is_pointwise(l)) {
                dn_im2col(im, l->c / l->groups, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w, net->workspace);
                cols = net->workspace;
            }
            dn_gemm(0, 0, m, n, k, 1, a, k, cols, n, 0, c, n);
        }
}

static void conv_backward_ref(dn_layer *l, dn_network *net)
{
    int m = l->filters / l->groups, k = l->size * l->size * l->c / l->groups, n = l->out_w * l->out_h;
    size_t in_group = (size_t)(l->c / l->groups) * l->h * l->w;
    for (int b = 0; b < l->batch; ++b)
        for (int g = 0; g < l->groups; ++g) {
            const float *d = l->delta + ((size_t)b * l->groups + g) * m * n;    /* (m, n) */
            const float *im = net->input + ((size_t)b * l->groups + g) * in_group;
            float *wu = l->weight_updates + (size_t)g * m * k;                  /* (m, k) */
            const float *cols = im;
            if (!is_pointwise(l)) {
                dn_im2col(im, l->c / l->groups, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w, net->workspace);
                cols = net->workspace;
            }
            dn_gemm(0, 1, m, k, n, 1, d, n, cols, n, 1, wu, k);
            if (!net->delta) continue;
            const float *a = l->weights + (size_t)g * m * k;
            float *imd = net->delta + ((size_t)b * l->groups + g) * in_group;
            if (is_pointwise(l)) {
                dn_gemm(1, 0, k, n, m, 1, a, k, d, n, 1, imd, n);
            } else {
                dn_gemm(1, 0, k, n, m, 1, a, k, d, n, 0, net->workspace, n);
                dn_col2im(net->workspace, l->c / l->groups, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w, imd);
            }
        }
}

/* Chunked path: images b0 .. b0+cb-1, per group g (m filters,
 * k = size*size*c/groups, n = out_h*out_w, N = cb*n):
 *   cols (k, N) = im2col of the chunk's images side by side
 *   outT (m, N) = W_g (m, k) * cols, then scattered to output (batch, filters, n). */
static void conv_forward_chunk(dn_layer *l, dn_network *net, int b0, int cb, float *scratch)
{
    int m = l->filters / l->groups, cg = l->c / l->groups;
    int k = l->size * l->size * cg, n = l->out_w * l->out_h;
    size_t N = (size_t)cb * n, in_group = (size_t)cg * l->h * l->w;
    float *cols = scratch, *outT = scratch + (size_t)k * N;
    for (int g = 0; g < l->groups; ++g) {
        for (int b = 0; b < cb; ++b)
            dn_im2col_ld(net->input + ((size_t)(b0 + b) * l->groups + g) * in_group, cg, l->h, l->w, l->size,
                         l->stride, l->pad, l->out_h, l->out_w, cols + (size_t)b * n, N);
        dn_gemm(0, 0, m, (int)N, k, 1, l->weights + (size_t)g * m * k, k, cols, (int)N, 0, outT, (int)N);
        for (int b = 0; b < cb; ++b)
            for (int i = 0; i < m; ++i)
                dn_copy(l->output + ((size_t)(b0 + b) * l->filters + (size_t)g * m + i) * n,
                        outT + (size_t)i * N + (size_t)b * n, (size_t)n);
    }
}

/* Backward of one chunk, per group:
 *   dT (m, N) = delta gathered;  cols (k, N) = im2col of the chunk
 *   wu_g (m, k) += dT * cols^T   (wu: the weight updates or a worker's copy)
 *   cols = W_g^T (k, m) * dT, folded back into each image's delta by col2im. */
static void conv_backward_chunk(dn_layer *l, dn_network *net, int b0, int cb, float *scratch, float *wu)
{
    int m = l->filters / l->groups, cg = l->c / l->groups;
    int k = l->size * l->size * cg, n = l->out_w * l->out_h;
    size_t N = (size_t)cb * n, in_group = (size_t)cg * l->h * l->w;
    float *cols = scratch, *dT = scratch + (size_t)k * N;
    for (int g = 0; g < l->groups; ++g) {
        for (int b = 0; b < cb; ++b)
            for (int i = 0; i < m; ++i)
                dn_copy(dT + (size_t)i * N + (size_t)b * n,
                        l->delta + ((size_t)(b0 + b) * l->filters + (size_t)g * m + i) * n, (size_t)n);
        for (int b = 0; b < cb; ++b)
            dn_im2col_ld(net->input + ((size_t)(b0 + b) * l->groups + g) * in_group, cg, l->h, l->w, l->size,
                         l->stride, l->pad, l->out_h, l->out_w, cols + (size_t)b * n, N);
        const float *a = l->weights + (size_t)g * m * k;
        dn_gemm(0, 1, m, k, (int)N, 1, dT, (int)N, cols, (int)N, 1, wu + (size_t)g * m * k, k);
        if (!net->delta) continue;
        dn_gemm(1, 0, k, (int)N, m, 1, a, k, dT, (int)N, 0, cols, (int)N);
        for (int b = 0; b < cb; ++b)
            dn_col2im_ld(cols + (size_t)b * n, N, cg, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w,
                         net->delta + ((size_t)(b0 + b) * l->groups + g) * in_group);
    }
}

/* ------------------------------------------------------------ implicit GEMM
 * Where the packed GEMM runs (AVX-512), a slice of nb images is one GEMM per
 * group and pass, with the unfolded images (IM2COL) packed straight from the
 * input and the results written straight into the images (IMAGES): nothing
 * is unfolded into scratch. Per group g (m filters, cg channels,
 * k = size*size*cg, n = out_h*out_w, N = nb*n):
 *   forward       out_g (m, N)  = W_g (m, k) * unfold(in_g) (k, N)
 *   weights       wu_g (m, k)  += delta_g (m, N) * unfold(in_g)^T (N, k)
 *   input delta, stride 1: a convolution of delta_g (m channels, padded
 *                 size-1-pad) with the flipped, transposed weights
 *                 Wf_g (cg, m*size*size): in_delta_g (cg, nb*h*w) += Wf_g * unfold(delta_g)
 *   input delta, stride > 1: cols (k, cb*n) = W_g^T * delta_g per chunk, col2im. */

/* The unfolded (IM2COL) view of images b0.. of a tensor (batch, channels, h, w)
 * whose group g starts at channel g*gc. */
static dn_matrix unfolded(const float *x, int b0, int channels, int gc, int g, int h, int w, int size, int stride,
                          int pad, int out_h, int out_w)
{
    size_t img = (size_t)channels * h * w;
    return (dn_matrix){.kind = DN_MAT_IM2COL, .data = x + b0 * img + (size_t)g * gc * h * w, .img = img,
                       .h = h, .w = w, .size = size, .stride = stride, .pad = pad, .out_h = out_h, .out_w = out_w};
}

/* Images b0.. of a tensor (batch, channels, n) as an (gc, N) matrix from channel g*gc. */
static dn_matrix images(const float *x, int b0, int channels, int gc, int g, int n)
{
    size_t img = (size_t)channels * n;
    return (dn_matrix){.kind = DN_MAT_IMAGES, .data = x + b0 * img + (size_t)g * gc * n, .img = img, .n = n};
}

static int flipped_backward(const dn_layer *l) { return l->stride == 1 && l->pad <= l->size - 1; }

/* Wf (groups, cg, m, size, size): Wf[g][ch][f][ky][kx] = W[g*m + f][ch][size-1-ky][size-1-kx]. */
static void flip_weights(const dn_layer *l, float *wf)
{
    int m = l->filters / l->groups, cg = l->c / l->groups, ss = l->size * l->size;
    for (int g = 0; g < l->groups; ++g)
        for (int f = 0; f < m; ++f)
            for (int ch = 0; ch < cg; ++ch) {
                const float *src = l->weights + ((size_t)(g * m + f) * cg + ch) * ss;
                float *dst = wf + ((size_t)(g * cg + ch) * m + f) * ss;
                for (int t = 0; t < ss; ++t) dst[t] = src[ss - 1 - t];
            }
}

static int implicit_forward(dn_layer *l, dn_network *net, int b0, int nb)
{
    int m = l->filters / l->groups, cg = l->c / l->groups, k = l->size * l->size * cg, n = l->out_h * l->out_w;
    for (int g = 0; g < l->groups; ++g) {
        dn_matrix a = {.kind = DN_MAT_DENSE, .data = l->weights + (size_t)g * m * k, .ld = (size_t)k};
        dn_matrix b = unfolded(net->input, b0, l->c, cg, g, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w);
        dn_matrix c = images(l->output, b0, l->filters, m, g, n);
        if (!dn_gemm_matrix(m, nb * n, k, 1, &a, &b, 0, &c)) return 0;
    }
    return 1;
}

/* Input delta for stride > 1 through cols and col2im, chunk by chunk. */
static void strided_input_delta(dn_layer *l, dn_network *net, int b0, int nb, int g, float *scratch)
{
    int m = l->filters / l->groups, cg = l->c / l->groups, k = l->size * l->size * cg, n = l->out_h * l->out_w;
    int chunk = chunk_images(l);
    size_t in_group = (size_t)cg * l->h * l->w;
    dn_matrix a = {.kind = DN_MAT_DENSE_T, .data = l->weights + (size_t)g * m * k, .ld = (size_t)k};
    for (int c0 = b0; c0 < b0 + nb; c0 += chunk) {
        int cb = b0 + nb - c0 < chunk ? b0 + nb - c0 : chunk;
        dn_matrix b = unfolded(l->delta, c0, l->filters, m, g, l->out_h, l->out_w, 1, 1, 0, l->out_h, l->out_w);
        dn_matrix c = {.kind = DN_MAT_DENSE, .data = scratch, .ld = (size_t)cb * n};
        dn_gemm_matrix(k, cb * n, m, 1, &a, &b, 0, &c);
        for (int i = 0; i < cb; ++i)
            dn_col2im_ld(scratch + (size_t)i * n, (size_t)cb * n, cg, l->h, l->w, l->size, l->stride, l->pad, l->out_h,
                         l->out_w, net->delta + ((size_t)(c0 + i) * l->groups + g) * in_group);
    }
}

static int implicit_backward(dn_layer *l, dn_network *net, int b0, int nb, float *wu, const float *wf, float *scratch)
{
    int m = l->filters / l->groups, cg = l->c / l->groups, k = l->size * l->size * cg, n = l->out_h * l->out_w;
    for (int g = 0; g < l->groups; ++g) {
        dn_matrix a = images(l->delta, b0, l->filters, m, g, n);
        dn_matrix b = unfolded(net->input, b0, l->c, cg, g, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w);
        b.kind = DN_MAT_IM2COL_T;
        dn_matrix c = {.kind = DN_MAT_DENSE, .data = wu + (size_t)g * m * k, .ld = (size_t)k};
        if (!dn_gemm_matrix(m, k, nb * n, 1, &a, &b, 1, &c)) return 0;
        if (!net->delta) continue;
        if (!flipped_backward(l)) {
            strided_input_delta(l, net, b0, nb, g, scratch);
            continue;
        }
        int ss = l->size * l->size;
        dn_matrix fa = {.kind = DN_MAT_DENSE, .data = wf + (size_t)g * cg * m * ss, .ld = (size_t)m * ss};
        dn_matrix fb = unfolded(l->delta, b0, l->filters, m, g, l->out_h, l->out_w, l->size, 1, l->size - 1 - l->pad,
                                l->h, l->w);
        dn_matrix fc = images(net->delta, b0, l->c, cg, g, l->h * l->w);
        dn_gemm_matrix(cg, nb * l->h * l->w, m * ss, 1, &fa, &fb, 1, &fc);
    }
    return 1;
}

/* Workers worth starting for a layer: one when its work per batch is too
 * small to pay for starting threads (tiny nets, small batches). */
#define PARALLEL_MIN_FLOPS 16e6

static int worth_workers(const dn_layer *l, int w)
{
    double flops = 2.0 * l->nweights * l->out_h * l->out_w * l->batch;
    return flops < PARALLEL_MIN_FLOPS && w > 1 ? 1 : w;
}

/* Workers the shared workspace allows now (at most dn_threads() and the
 * batch), 0 for the per-image reference path. */
static int usable_workers(const dn_layer *l, const dn_network *net)
{
    if (dn_conv_reference) return 0;
    int w = dn_threads() < SLICES ? dn_threads() : SLICES;
    w = worth_workers(l, w);
    while (w > 0 && workers_scratch(l, w) + l->nweights > net->workspace_size) --w;
    return w;
}

typedef struct {
    dn_layer *l;
    dn_network *net;
    int backward;
    const float *flipped;   /* Wf for the implicit input delta (backward, stride 1) */
} conv_job;

/* Copy s (1 .. SLICES-1) of the weight updates in the workspace. */
static float *slice_updates(const dn_layer *l, const dn_network *net, int workers, int s)
{
    return net->workspace + (size_t)workers * chunk_image_floats(l) * chunk_images(l) + (size_t)(s - 1) * l->nweights;
}

/* Worker w of W takes slices w, w+W, ...: slice s is images
 * [s*B/SLICES, (s+1)*B/SLICES), done in chunks with the worker's scratch. */
static void conv_worker(void *arg, int w, int workers)
{
    conv_job *j = arg;
    dn_layer *l = j->l;
    int chunk = chunk_images(l);
    float *scratch = j->net->workspace + (size_t)w * chunk_image_floats(l) * chunk;
    for (int s = w; s < SLICES; s += workers) {
        float *wu = l->weight_updates;
        if (j->backward && s > 0) {
            wu = slice_updates(l, j->net, workers, s);
            dn_fill(wu, l->nweights, 0);
        }
        int b_begin = (int)((long long)s * l->batch / SLICES), b_end = (int)((long long)(s + 1) * l->batch / SLICES);
        if (b_end == b_begin) continue;
        if (j->backward ? implicit_backward(l, j->net, b_begin, b_end - b_begin, wu, j->flipped, scratch)
                        : implicit_forward(l, j->net, b_begin, b_end - b_begin))
            continue;
        for (int b0 = b_begin; b0 < b_end; b0 += chunk) {
            int cb = b_end - b0 < chunk ? b_end - b0 : chunk;
            if (j->backward) conv_backward_chunk(l, j->net, b0, cb, scratch, wu);
            else conv_forward_chunk(l, j->net, b0, cb, scratch);
        }
    }
}

static void conv_chunked(dn_layer *l, dn_network *net, int workers, int backward)
{
    float *wf = net->workspace + workers_scratch(l, workers);
    if (backward && net->delta && flipped_backward(l) && dn_gemm_fast_available()) flip_weights(l, wf);
    conv_job j = {l, net, backward, wf};
    dn_parallel(conv_worker, &j, workers);
    if (!backward) return;
    for (int s = 1; s < SLICES; ++s)
        if ((long long)(s + 1) * l->batch / SLICES > (long long)s * l->batch / SLICES)   /* slice not empty */
            dn_axpy(l->weight_updates, 1, slice_updates(l, net, workers, s), l->nweights);
}

/* ------------------------------------------------------------ depthwise */

static int is_depthwise(const dn_layer *l) { return l->groups == l->c && l->filters == l->c && l->c > 1; }

static dn_depthwise depthwise_params(const dn_layer *l)
{
    dn_depthwise p = {l->batch, l->c, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w};
    return p;
}

static int depthwise_max_workers(const dn_layer *l) { return dn_threads() < l->c ? dn_threads() : l->c; }

/* Scratch of the depthwise kernels for all their workers (0 if not depthwise). */
static size_t depthwise_workspace(const dn_layer *l)
{
    if (!is_depthwise(l)) return 0;
    dn_depthwise p = depthwise_params(l);
    return (size_t)depthwise_max_workers(l) * dn_depthwise_scratch(&p);
}

typedef struct {
    dn_layer *l;
    dn_network *net;
    dn_depthwise p;
    size_t scratch;   /* floats of workspace per worker */
    int backward;
} depthwise_job;

/* Worker w of W: channels [w*c/W, (w+1)*c/W) with its own scratch. */
static void depthwise_worker(void *arg, int w, int workers)
{
    depthwise_job *j = arg;
    int c0 = (int)((long long)w * j->p.c / workers), c1 = (int)((long long)(w + 1) * j->p.c / workers);
    float *tmp = j->net->workspace + (size_t)w * j->scratch;
    if (j->backward)
        dn_depthwise_backward(&j->p, j->net->input, j->l->weights, j->l->delta, j->l->weight_updates, j->net->delta,
                              tmp, c0, c1);
    else
        dn_depthwise_forward(&j->p, j->net->input, j->l->weights, j->l->output, tmp, c0, c1);
}

/* The depthwise kernels are memory-bound: count each float copied into and
 * out of their local planes as DEPTHWISE_COPY_FLOPS when deciding on workers. */
#define DEPTHWISE_COPY_FLOPS 8.0

/* Workers for the depthwise kernels (0: take the general path). */
static int depthwise_workers(const dn_layer *l, const dn_network *net)
{
    if (dn_conv_reference || !is_depthwise(l)) return 0;
    dn_depthwise p = depthwise_params(l);
    double out_hw = (double)l->out_h * l->out_w, in_hw = (double)l->h * l->w;
    double work = (double)l->batch * l->c * (2.0 * l->size * l->size * out_hw + DEPTHWISE_COPY_FLOPS * (in_hw + out_hw));
    int w = depthwise_max_workers(l);
    if (work < PARALLEL_MIN_FLOPS) w = 1;
    while (w > 0 && (size_t)w * dn_depthwise_scratch(&p) > net->workspace_size) --w;
    return w;
}

static void conv_depthwise(dn_layer *l, dn_network *net, int workers, int backward)
{
    depthwise_job j = {l, net, depthwise_params(l), 0, backward};
    j.scratch = dn_depthwise_scratch(&j.p);
    dn_parallel(depthwise_worker, &j, workers);
}

static dn_status conv_forward(dn_layer *l, dn_network *net)
{
    int n = l->out_w * l->out_h;
    int workers = depthwise_workers(l, net);
    if (workers) conv_depthwise(l, net, workers, 0);
    else if ((workers = usable_workers(l, net))) conv_chunked(l, net, workers, 0);
    else conv_forward_ref(l, net);
    if (l->batch_normalize) {
        dn_batchnorm_forward_act(l, l->output, net->train, l->activation);
        return DN_OK;
    }
    dn_add_bias(l->output, l->biases, l->batch, l->out_c, n);
    dn_activate_array(l->output, (size_t)l->batch * l->outputs, l->activation);
    return DN_OK;
}

static dn_status conv_backward(dn_layer *l, dn_network *net)
{
    int n = l->out_w * l->out_h;
    if (l->batch_normalize) {
        dn_batchnorm_backward_act(l, l->delta, net->train, l->activation, l->output);
    } else {
        dn_gradient_array(l->output, (size_t)l->batch * l->outputs, l->activation, l->delta);
        dn_backward_bias(l->bias_updates, l->delta, l->batch, l->out_c, n);
    }
    int workers = depthwise_workers(l, net);
    if (workers) conv_depthwise(l, net, workers, 1);
    else if ((workers = usable_workers(l, net))) conv_chunked(l, net, workers, 1);
    else conv_backward_ref(l, net);
    return DN_OK;
}

/* File order: biases, [scales, rolling_mean, rolling_variance], weights */
static int conv_params(const dn_layer *l, dn_param *out)
{
    int n = 0;
    out[n++] = dn_make_param("biases", l->biases, l->bias_updates, (size_t)l->filters, 0);
    if (l->batch_normalize) n += dn_batchnorm_param_list(l, l->filters, out + n);
    out[n++] = dn_make_param("weights", l->weights, l->weight_updates, l->nweights, 1);
    return n;
}

static double conv_flops(const dn_layer *l)
{
    return 2.0 * l->nweights * l->out_h * l->out_w;
}

/* "filters size x size / stride" and the BFLOPs in the layer table. */
static void conv_describe(const dn_layer *l, FILE *f) { dn_describe_row(l, f, 1, 1); }

/* ------------------------------------------------------------ GPU half
 * With DN_CUDNN, a layer conv_cudnn.c has set up convolves through cuDNN;
 * otherwise (and with dn_cudnn_enabled 0) im2col + cuBLAS per image and group
 * as the CPU reference path. Bias / batch norm / activation are layer_gpu.c's. */
#ifdef DN_GPU

/* Floats of net->workspace_gpu: one image's columns for im2col, and what
 * cuDNN's algorithms need (both, so dn_cudnn_enabled may change any time). */
static size_t conv_workspace_gpu(const dn_layer *l)
{
    size_t cols = (size_t)(l->c / l->groups) * l->size * l->size * l->out_h * l->out_w;
#ifdef DN_CUDNN
    size_t cudnn = dn_conv_cudnn_workspace(l);
    if (cudnn > cols) return cudnn;
#endif
    return cols;
}

/* Columns of image b, group g: the image itself for 1x1 stride 1. */
static dn_status conv_columns_gpu(dn_layer *l, dn_network *net, const float *im, const float **cols)
{
    if (is_pointwise(l)) { *cols = im; return DN_OK; }
    *cols = net->workspace_gpu;
    return DN_CUDA(dn_cuda_im2col(im, l->c / l->groups, l->h, l->w, l->size, l->stride, l->pad, l->out_h, l->out_w,
                                  net->workspace_gpu));
}

/* output (m, n) = weights (m, k) x columns (k, n) per image and group. */
static dn_status conv_forward_im2col_gpu(dn_layer *l, dn_network *net)
{
    int m = l->filters / l->groups, k = l->size * l->size * l->c / l->groups, n = l->out_w * l->out_h;
    size_t in_group = (size_t)(l->c / l->groups) * l->h * l->w;
    for (int b = 0; b < l->batch; ++b)
        for (int g = 0; g < l->groups; ++g) {
            const float *cols;
            DN_TRY(conv_columns_gpu(l, net, net->input_gpu + ((size_t)b * l->groups + g) * in_group, &cols));
            DN_TRY(dn_gpu_gemm(0, 0, m, n, k, 1, l->weights_gpu + (size_t)g * m * k, k, cols, n, 0,
                               l->output_gpu + ((size_t)b * l->groups + g) * m * n, n));
        }
    return DN_OK;
}

/* weight_updates += delta x columns^T; net->delta_gpu += col2im(weights^T x delta). */
static dn_status conv_backward_im2col_gpu(dn_layer *l, dn_network *net)
{
    int m = l->filters / l->groups, k = l->size * l->size * l->c / l->groups, n = l->out_w * l->out_h;
    size_t in_group = (size_t)(l->c / l->groups) * l->h * l->w;
    for (int b = 0; b < l->batch; ++b)
        for (int g = 0; g < l->groups; ++g) {
            const float *d = l->delta_gpu + ((size_t)b * l->groups + g) * m * n, *cols;
            DN_TRY(conv_columns_gpu(l, net, net->input_gpu + ((size_t)b * l->groups + g) * in_group, &cols));
            DN_TRY(dn_gpu_gemm(0, 1, m, k, n, 1, d, n, cols, n, 1, l->weight_updates_gpu + (size_t)g * m * k, k));
            if (!net->delta_gpu) continue;
            const float *a = l->weights_gpu + (size_t)g * m * k;
            float *imd = net->delta_gpu + ((size_t)b * l->groups + g) * in_group;
            if (is_pointwise(l)) {
                DN_TRY(dn_gpu_gemm(1, 0, k, n, m, 1, a, k, d, n, 1, imd, n));
                continue;
            }
            DN_TRY(dn_gpu_gemm(1, 0, k, n, m, 1, a, k, d, n, 0, net->workspace_gpu, n));
            DN_TRY(DN_CUDA(dn_cuda_col2im(net->workspace_gpu, l->c / l->groups, l->h, l->w, l->size, l->stride, l->pad,
                                          l->out_h, l->out_w, imd)));
        }
    return DN_OK;
}

/* net->input_gpu (batch, c, h, w) -> l->output_gpu (batch, filters, out_h, out_w) */
static dn_status conv_convolve_gpu(dn_layer *l, dn_network *net)
{
#ifdef DN_CUDNN
    if (dn_conv_cudnn_active(l)) return dn_conv_cudnn_forward(l, net);
#endif
    return conv_forward_im2col_gpu(l, net);
}

static dn_status conv_forward_gpu(dn_layer *l, dn_network *net)
{
    DN_TRY(conv_convolve_gpu(l, net));
    return dn_gpu_bias_bn_activate(l, net);
}

static dn_status conv_backward_gpu(dn_layer *l, dn_network *net)
{
    DN_TRY(dn_gpu_activate_bn_bias_backward(l, net));
#ifdef DN_CUDNN
    if (dn_conv_cudnn_active(l)) return dn_conv_cudnn_backward(l, net);
#endif
    return conv_backward_im2col_gpu(l, net);
}

static const dn_layer_gpu_ops conv_gpu = {
    .forward_gpu = conv_forward_gpu,
    .backward_gpu = conv_backward_gpu,
    .workspace_gpu = conv_workspace_gpu,
#ifdef DN_CUDNN
    .setup_gpu = dn_conv_cudnn_setup,
    .release_gpu = dn_conv_cudnn_release,
#endif
};
#endif

const dn_layer_ops dn_convolutional_ops = {
    .type = DN_CONVOLUTIONAL,
    .names = {"convolutional", "conv"},
    .parse = conv_parse,
    .describe = conv_describe,
    .alloc_params = conv_alloc_params,
    .init_params = conv_init_params,
    .alloc_buffers = conv_alloc_buffers,
    .buffer_floats = dn_batchnorm_buffer_floats,
    .forward = conv_forward,
    .backward = conv_backward,
    .params = conv_params,
    .flops = conv_flops,
    .gpu = DN_GPU_OPS(conv_gpu),
};
