/*
 * layer_shortcut.c — [shortcut]: residual sum of the previous layer and an
 * earlier layer `from`, then an activation:
 *
 *   out = act(alpha * prev + beta * from)      out shape = prev's shape
 *
 * When `from` has another shape, upstream's rule applies: positions are
 * strided (from larger) or spread (from smaller) by the width ratio, and only
 * the smaller channel count is added. The ratio must be a whole number, the
 * same in width and height (upstream asserts the latter and crashes on the
 * former; here both are shape errors).
 */
#include "layer_gpu.h"

static dn_status shortcut_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_opts o = ctx->opts;
    int from;
    if (!dn_opt_str(o, "from", NULL)) return dn_opt_fail(o, NULL, DN_ERR_PARSE, "needs from= (a layer index)");
    DN_TRY(dn_opt_int(o, "from", 0, &from));
    DN_TRY(dn_opt_float(o, "alpha", 1, &l->alpha));
    DN_TRY(dn_opt_float(o, "beta", 1, &l->beta));
    const char *act = dn_opt_str(o, "activation", "linear");
    if (dn_activation_from_name(act, &l->activation) != DN_OK)
        return dn_opt_fail(o, "activation", DN_ERR_PARSE, "unknown activation '%s'", act);
    int idx = from < 0 ? ctx->index + from : from;
    if (idx < 0 || idx >= ctx->index)
        return dn_opt_fail(o, "from", DN_ERR_SHAPE, "from=%d points to layer %d, but only layers 0..%d come before it",
                           from, idx, ctx->index - 1);
    DN_TRY(dn_require_image(l, ctx));
    const dn_layer *src = &ctx->net->layers[idx];
    l->from = idx;
    l->shortcut_w = src->out_w; l->shortcut_h = src->out_h; l->shortcut_c = src->out_c;
    l->out_w = l->w; l->out_h = l->h; l->out_c = l->c;
    int w1 = src->out_w, h1 = src->out_h, w2 = l->w, h2 = l->h;
    if (w1 / w2 != h1 / h2 || w2 / w1 != h2 / h1)
        return dn_opt_fail(o, "from", DN_ERR_SHAPE,
                           "layer %d (%dx%d) and the previous layer (%dx%d) differ by different ratios in width and "
                           "height", idx, w1, h1, w2, h2);
    /* deviation: a ratio that is not a whole number (e.g. 14x14 onto 4x4) is an
     * error here; upstream accepts it and then reads out of bounds */
    if ((w1 >= w2 ? w1 % w2 : w2 % w1) || (h1 >= h2 ? h1 % h2 : h2 % h1))
        return dn_opt_fail(o, "from", DN_ERR_SHAPE,
                           "layer %d (%dx%d) and the previous layer (%dx%d) differ by a ratio that is not a whole "
                           "number (upstream Darknet reads out of bounds there)", idx, w1, h1, w2, h2);
    return DN_OK;
}

/* out (b, c2, h2, w2) = s1*out + s2*add (b, c1, h1, w1), upstream's mapping.
 * add == NULL only scales the positions the mapping reaches by s1. */
static void shortcut_add(int batch, int w1, int h1, int c1, const float *add, int w2, int h2, int c2, float s1,
                         float s2, float *out)
{
    int stride = w1 / w2 < 1 ? 1 : w1 / w2;
    int sample = w2 / w1 < 1 ? 1 : w2 / w1;
    int minw = w1 < w2 ? w1 : w2, minh = h1 < h2 ? h1 : h2, minc = c1 < c2 ? c1 : c2;
    for (int b = 0; b < batch; ++b)
        for (int k = 0; k < minc; ++k)
            for (int j = 0; j < minh; ++j)
                for (int i = 0; i < minw; ++i) {
                    size_t oi = (size_t)i * sample + (size_t)w2 * ((size_t)j * sample + (size_t)h2 * (k + (size_t)c2 * b));
                    size_t ai = (size_t)i * stride + (size_t)w1 * ((size_t)j * stride + (size_t)h1 * (k + (size_t)c1 * b));
                    out[oi] = s1 * out[oi] + (add ? s2 * add[ai] : 0);
                }
}

/* It reads the previous layer and `from`. */
static int shortcut_sources(const dn_layer *l, int *out, int max)
{
    out[0] = l->index - 1;
    if (max < 2) return 1;
    out[1] = l->from;
    return 2;
}

static dn_status shortcut_forward(dn_layer *l, dn_network *net)
{
    dn_copy(l->output, net->input, (size_t)l->batch * l->outputs);
    shortcut_add(l->batch, l->shortcut_w, l->shortcut_h, l->shortcut_c, net->layers[l->from].output, l->out_w,
                 l->out_h, l->out_c, l->alpha, l->beta, l->output);
    dn_activate_array(l->output, (size_t)l->batch * l->outputs, l->activation);
    return DN_OK;
}

static dn_status shortcut_backward(dn_layer *l, dn_network *net)
{
    dn_gradient_array(l->output, (size_t)l->batch * l->outputs, l->activation, l->delta);
    shortcut_add(l->batch, l->out_w, l->out_h, l->out_c, l->delta, l->shortcut_w, l->shortcut_h, l->shortcut_c, 1,
                 l->beta, net->layers[l->from].delta);
    /* forward scaled prev by alpha only where `from` was added; elsewhere
     * (other channels or positions of a differently shaped `from`) by 1.
     * (Upstream applies alpha everywhere in backward.) */
    if (l->alpha != 1)
        shortcut_add(l->batch, l->shortcut_w, l->shortcut_h, l->shortcut_c, NULL, l->out_w, l->out_h, l->out_c,
                     l->alpha, 0, l->delta);
    if (net->delta) dn_axpy(net->delta, 1, l->delta, (size_t)l->batch * l->outputs);
    return DN_OK;
}

static double shortcut_flops(const dn_layer *l) { return 2.0 * l->outputs; }

/* ------------------------------------------------------------ GPU half */
#ifdef DN_GPU
/* `from` (shortcut shape) added onto this layer's shape, and the reverse. */
static dn_cuda_shortcut from_onto_out(const dn_layer *l)
{
    dn_cuda_shortcut s = {l->batch, l->shortcut_w, l->shortcut_h, l->shortcut_c, l->out_w, l->out_h, l->out_c};
    return s;
}

static dn_cuda_shortcut out_onto_from(const dn_layer *l)
{
    dn_cuda_shortcut s = {l->batch, l->out_w, l->out_h, l->out_c, l->shortcut_w, l->shortcut_h, l->shortcut_c};
    return s;
}

/* out = act(alpha * prev + beta * from) */
static dn_status shortcut_forward_gpu(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->outputs;
    dn_cuda_shortcut s = from_onto_out(l);
    DN_TRY(dn_gpu_copy(l->output_gpu, net->input_gpu, n));
    DN_TRY(DN_CUDA(dn_cuda_shortcut_add(&s, net->layers[l->from].output_gpu, l->alpha, l->beta, l->output_gpu)));
    return DN_CUDA(dn_cuda_activate(l->output_gpu, n, (int)l->activation));
}

/* from.delta += beta * delta (mapped); prev.delta += delta, scaled by alpha
 * where `from` was added (the CPU backward's order). */
static dn_status shortcut_backward_gpu(dn_layer *l, dn_network *net)
{
    dn_cuda_shortcut back = out_onto_from(l), fwd = from_onto_out(l);
    DN_TRY(DN_CUDA(dn_cuda_gradient(l->output_gpu, (size_t)l->batch * l->outputs, (int)l->activation, l->delta_gpu)));
    DN_TRY(DN_CUDA(dn_cuda_shortcut_add(&back, l->delta_gpu, 1, l->beta, net->layers[l->from].delta_gpu)));
    if (l->alpha != 1) DN_TRY(DN_CUDA(dn_cuda_shortcut_add(&fwd, NULL, l->alpha, 0, l->delta_gpu)));
    return dn_gpu_pass_delta(l, net, 1);
}

static const dn_layer_gpu_ops shortcut_gpu = {
    .forward_gpu = shortcut_forward_gpu,
    .backward_gpu = shortcut_backward_gpu,
};
#endif

const dn_layer_ops dn_shortcut_ops = {
    .type = DN_SHORTCUT,
    .names = {"shortcut"},
    .parse = shortcut_parse,
    .sources = shortcut_sources,
    .alloc_buffers = dn_alloc_output_delta,
    .forward = shortcut_forward,
    .backward = shortcut_backward,
    .flops = shortcut_flops,
    .gpu = DN_GPU_OPS(shortcut_gpu),
};
