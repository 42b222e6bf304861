/*
 * layer_route.c — [route]: concatenate earlier layers' outputs along channels.
 * `layers=` is a comma list of indexes; negative ones count back from this
 * layer. Every input must have the same width and height.
 *
 *   inputs (batch, c_j, h, w) for each j -> output (batch, sum c_j, h, w)
 */
#include "layer_gpu.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static dn_status route_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    dn_opts o = ctx->opts;
    const char *spec = dn_opt_str(o, "layers", NULL);
    if (!spec || !*spec) return dn_opt_fail(o, NULL, DN_ERR_PARSE, "needs layers= (a comma list of layer indexes)");
    int count = 1;
    for (const char *p = spec; *p; ++p) count += *p == ',';
    l->input_layers = dn_calloc((size_t)count, sizeof(int));
    l->input_sizes = dn_calloc((size_t)count, sizeof(int));
    if (!l->input_layers || !l->input_sizes) return DN_ERR_NOMEM;
    l->n_inputs = count;
    const char *p = spec;
    l->out_c = 0;
    for (int j = 0; j < count; ++j) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || errno)
            return dn_opt_fail(o, "layers", DN_ERR_PARSE, "layers=%s: '%.*s' is not a layer index", spec,
                               (int)strcspn(p, ","), p);
        long idx = v < 0 ? ctx->index + v : v;
        if (idx < 0 || idx >= ctx->index)
            return dn_opt_fail(o, "layers", DN_ERR_SHAPE,
                               "layers=%s: index %ld points to layer %ld, but only layers 0..%d come before it", spec, v,
                               idx, ctx->index - 1);
        const dn_layer *in = &ctx->net->layers[idx];
        if (j > 0 && (in->out_w != l->out_w || in->out_h != l->out_h))
            return dn_opt_fail(o, "layers", DN_ERR_SHAPE,
                               "inputs differ in size: layer %d is %dx%d but layer %ld is %dx%d", l->input_layers[0],
                               l->out_w, l->out_h, idx, in->out_w, in->out_h);
        l->input_layers[j] = (int)idx;
        l->input_sizes[j] = in->outputs;
        l->out_w = in->out_w;
        l->out_h = in->out_h;
        if ((long long)l->out_c + in->out_c > 1073741824LL)
            return dn_opt_fail(o, "layers", DN_ERR_SHAPE, "layers=%s: too many channels (limit 2^30)", spec);
        l->out_c += in->out_c;
        p = *end ? end + 1 : end;
    }
    /* a route's "input" is the concatenation it makes */
    l->w = l->out_w; l->h = l->out_h; l->c = l->out_c;
    l->inputs = l->out_w * l->out_h * l->out_c;
    return DN_OK;
}

/* Its inputs are the layers it concatenates, not the previous one. */
static int route_sources(const dn_layer *l, int *out, int max)
{
    int n = l->n_inputs < max ? l->n_inputs : max;
    for (int j = 0; j < n; ++j) out[j] = l->input_layers[j];
    return n;
}

static void route_free(dn_layer *l)
{
    free(l->input_layers);
    free(l->input_sizes);
    l->input_layers = l->input_sizes = NULL;
    dn_free_common(l);
}

static dn_status route_forward(dn_layer *l, dn_network *net)
{
    size_t offset = 0;
    for (int j = 0; j < l->n_inputs; ++j) {
        const float *in = net->layers[l->input_layers[j]].output;
        size_t sz = (size_t)l->input_sizes[j];
        for (int b = 0; b < l->batch; ++b) dn_copy(l->output + offset + (size_t)b * l->outputs, in + b * sz, sz);
        offset += sz;
    }
    return DN_OK;
}

static dn_status route_backward(dn_layer *l, dn_network *net)
{
    size_t offset = 0;
    for (int j = 0; j < l->n_inputs; ++j) {
        float *d = net->layers[l->input_layers[j]].delta;
        size_t sz = (size_t)l->input_sizes[j];
        for (int b = 0; b < l->batch; ++b) dn_axpy(d + b * sz, 1, l->delta + offset + (size_t)b * l->outputs, sz);
        offset += sz;
    }
    return DN_OK;
}

static double route_flops(const dn_layer *l) { (void)l; return 0; }

/* ------------------------------------------------------------ GPU half */
#ifdef DN_GPU
/* Input j (batch, input_sizes[j]) sits at column `offset` of the output (batch, outputs). */
static dn_status route_forward_gpu(dn_layer *l, dn_network *net)
{
    size_t offset = 0;
    for (int j = 0; j < l->n_inputs; ++j) {
        size_t sz = (size_t)l->input_sizes[j];
        DN_TRY(DN_CUDA(dn_cuda_copy_rows(l->output_gpu + offset, (size_t)l->outputs,
                                         net->layers[l->input_layers[j]].output_gpu, sz, (size_t)l->batch, sz, 0)));
        offset += sz;
    }
    return DN_OK;
}

static dn_status route_backward_gpu(dn_layer *l, dn_network *net)
{
    size_t offset = 0;
    for (int j = 0; j < l->n_inputs; ++j) {
        size_t sz = (size_t)l->input_sizes[j];
        DN_TRY(DN_CUDA(dn_cuda_copy_rows(net->layers[l->input_layers[j]].delta_gpu, sz, l->delta_gpu + offset,
                                         (size_t)l->outputs, (size_t)l->batch, sz, 1)));
        offset += sz;
    }
    return DN_OK;
}

static const dn_layer_gpu_ops route_gpu = {
    .forward_gpu = route_forward_gpu,
    .backward_gpu = route_backward_gpu,
};
#endif

const dn_layer_ops dn_route_ops = {
    .type = DN_ROUTE,
    .names = {"route"},
    .parse = route_parse,
    .sources = route_sources,
    .alloc_buffers = dn_alloc_output_delta,
    .free = route_free,
    .forward = route_forward,
    .backward = route_backward,
    .flops = route_flops,
    .gpu = DN_GPU_OPS(route_gpu),
};
