/*
 * layer_convolutional.c — [convolutional] / [conv]: grouped 2-D convolution
 * through im2col + GEMM, optional batch norm, then the activation.
 *
 *   input  (batch, c, h, w)
 *   weights (filters, c/groups, size, size)     biases (filters)
 *   output (batch, filters, out_h, out_w),  out = (in + 2*padding - size)/stride + 1
 *
 * Upstream quirk fixed: a 1x1 convolution with stride > 1 is computed
 * correctly (upstream skips im2col for every 1x1 kernel and reads garbage).
 */
#include "internal.h"
#include <math.h>
#include <stdlib.h>

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
    l->workspace_size = (size_t)(l->c / l->groups) * l->size * l->size * l->out_h * l->out_w;
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

static void conv_forward(dn_layer *l, dn_network *net)
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
    if (l->batch_normalize) dn_batchnorm_forward(l, l->output, net->train);
    else dn_add_bias(l->output, l->biases, l->batch, l->out_c, n);
    dn_activate_array(l->output, (size_t)l->batch * l->outputs, l->activation);
}

static void conv_backward(dn_layer *l, dn_network *net)
{
    int m = l->filters / l->groups, k = l->size * l->size * l->c / l->groups, n = l->out_w * l->out_h;
    size_t in_group = (size_t)(l->c / l->groups) * l->h * l->w;
    dn_gradient_array(l->output, (size_t)l->batch * l->outputs, l->activation, l->delta);
    if (l->batch_normalize) dn_batchnorm_backward(l, l->delta, net->train);
    else dn_backward_bias(l->bias_updates, l->delta, l->batch, l->out_c, n);
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

const dn_layer_ops dn_convolutional_ops = {
    DN_CONVOLUTIONAL, {"convolutional", "conv", NULL},
    conv_parse, conv_alloc_params, conv_init_params, conv_alloc_buffers,
    conv_forward, conv_backward, conv_params, dn_free_common, conv_flops,
};
