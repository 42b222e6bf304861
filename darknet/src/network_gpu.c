/*
 * network_gpu.c — a network on a CUDA device: moving it there
 * (dn_network_to_gpu), keeping host and device parameters in step
 * (dn_network_pull / dn_network_push), and the GPU forward / backward /
 * update that network.c calls when net->on_gpu.
 *
 * Residency: every layer's output and delta live on the device. A layer type
 * with GPU kernels (its ops' `gpu` half, l->gpu_native) also keeps its parameters,
 * their updates and batch-norm state there; the host arrays are current only
 * after dn_network_pull. A layer type without kernels runs its CPU code:
 * the outputs it reads are pulled, its output and delta pushed; in backward
 * its delta and the deltas it writes are pulled, then pushed back. Its
 * parameters stay on the host and network.c updates them there.
 *
 * Errors: every CUDA / cuBLAS / cuDNN failure comes back as the status of
 * the call that met it, and each pass returns the first one.
 */
#include "internal.h"
#include <stdlib.h>

#ifdef DN_GPU
#include "gpu_kernels.h"

/* ------------------------------------------------------------ device twins */

typedef struct { float **host, **dev; size_t n; } twin;
#define PARAM_TWINS 12   /* entries param_twins lists */

/* Parameter-sized twins (conv/connected/batchnorm arrays). */
static int param_twins(dn_layer *l, twin *t)
{
    size_t c = (size_t)l->out_c;
    twin all[] = {
        {&l->weights, &l->weights_gpu, l->nweights}, {&l->weight_updates, &l->weight_updates_gpu, l->nweights},
        {&l->biases, &l->biases_gpu, c}, {&l->bias_updates, &l->bias_updates_gpu, c},
        {&l->scales, &l->scales_gpu, c}, {&l->scale_updates, &l->scale_updates_gpu, c},
        {&l->rolling_mean, &l->rolling_mean_gpu, c}, {&l->rolling_variance, &l->rolling_variance_gpu, c},
        {&l->mean, &l->mean_gpu, c}, {&l->variance, &l->variance_gpu, c},
        {&l->mean_delta, &l->mean_delta_gpu, c}, {&l->variance_delta, &l->variance_delta_gpu, c},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof *all; ++i) t[n++] = all[i];
    return n;
}

/* Batch-sized twins: output, delta (every layer), batch-norm inputs (native). */
static int batch_twins(dn_layer *l, twin *t)
{
    size_t n = (size_t)l->batch * l->outputs;
    twin all[] = {{&l->output, &l->output_gpu, n}, {&l->delta, &l->delta_gpu, n},
                  {&l->x, &l->x_gpu, n}, {&l->x_norm, &l->x_norm_gpu, n}};
    int count = l->gpu_native ? 4 : 2;
    for (int i = 0; i < count; ++i) t[i] = all[i];
    return count;
}

static void free_twins(twin *t, int n)
{
    for (int i = 0; i < n; ++i) { dn_gpu_free(*t[i].dev); *t[i].dev = NULL; }
}

/* Allocate the device copy of every present host array; push when `push`. */
static dn_status alloc_twins(twin *t, int n, int push)
{
    for (int i = 0; i < n; ++i) {
        if (!*t[i].host) continue;
        dn_gpu_free(*t[i].dev);
        *t[i].dev = NULL;
        DN_TRY(dn_gpu_alloc(t[i].n, t[i].dev));
        if (push) DN_TRY(dn_gpu_push(*t[i].dev, *t[i].host, t[i].n));
    }
    return DN_OK;
}

/* Device twin of a host parameter array of l (NULL if none). */
static float *device_of(dn_layer *l, const float *host)
{
    twin t[PARAM_TWINS];
    int n = param_twins(l, t);
    for (int i = 0; host && i < n; ++i)
        if (*t[i].host == host) return *t[i].dev;
    return NULL;
}

/* ------------------------------------------------------------ moving, freeing */

void dn_gpu_network_free(dn_network *net)
{
    if (!net) return;
    for (int i = 0; net->layers && i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        const dn_layer_gpu_ops *g = l->ops ? l->ops->gpu : NULL;
        if (g && g->release_gpu) g->release_gpu(l);
        twin t[PARAM_TWINS];
        free_twins(t, param_twins(l, t));
        l->gpu_native = 1;   /* free every batch twin */
        free_twins(t, batch_twins(l, t));
        l->gpu_native = 0;
    }
    float **bufs[] = {&net->input_buf_gpu, &net->truth_buf_gpu, &net->workspace_gpu};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) { dn_gpu_free(*bufs[i]); *bufs[i] = NULL; }
    net->input_gpu = net->delta_gpu = NULL;
    net->on_gpu = 0;
}

/* Buffers that depend on the mini-batch size. */
dn_status dn_gpu_set_batch(dn_network *net)
{
    if (net->on_gpu) DN_TRY(dn_gpu_use(net->gpu_index));   /* a batch change from any thread */
    float **bufs[] = {&net->input_buf_gpu, &net->truth_buf_gpu, &net->workspace_gpu};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) { dn_gpu_free(*bufs[i]); *bufs[i] = NULL; }
    DN_TRY(dn_gpu_alloc((size_t)net->batch * net->inputs, &net->input_buf_gpu));
    DN_TRY(dn_gpu_alloc((size_t)net->batch * (net->truths ? net->truths : 1), &net->truth_buf_gpu));
    size_t ws = 0;
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        twin t[4];
        DN_TRY(alloc_twins(t, batch_twins(l, t), 0));
        const dn_layer_gpu_ops *g = l->ops->gpu;
        if (g && g->setup_gpu) DN_TRY(g->setup_gpu(l));
        size_t need = g && g->workspace_gpu ? g->workspace_gpu(l) : 0;
        if (need > ws) ws = need;
    }
    net->workspace_gpu_size = ws;
    return dn_gpu_alloc(ws, &net->workspace_gpu);
}

static dn_status to_gpu(dn_network *net)
{
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        l->gpu_native = l->ops->gpu != NULL;
        twin t[PARAM_TWINS];
        if (l->gpu_native) DN_TRY(alloc_twins(t, param_twins(l, t), 1));
    }
    return dn_gpu_set_batch(net);
}

dn_status dn_network_to_gpu(dn_network *net, int index)
{
    if (!net) return dn_fail(DN_ERR_ARG, "dn_network_to_gpu: no network");
    if (!net->input_buf) return dn_fail(DN_ERR_ARG, "%s: network was parsed for shapes only", net->source);
    if (net->on_gpu) DN_TRY(dn_network_pull(net));
    dn_gpu_network_free(net);
    DN_TRY(dn_gpu_use(index));
    dn_status s = to_gpu(net);
    if (s != DN_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dn_last_error());
        dn_gpu_network_free(net);
        return dn_fail(s, "%s: cannot put the network on GPU %d: %s", net->source, index, msg);
    }
    net->on_gpu = 1;
    net->gpu_index = index;
    return DN_OK;
}

/* Copy every parameter array of the native layers (and their updates). */
static dn_status sync_params(dn_network *net, int to_device)
{
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        if (!l->gpu_native) continue;
        twin t[PARAM_TWINS];
        int n = param_twins(l, t);
        for (int k = 0; k < n; ++k) {
            if (!*t[k].host || !*t[k].dev) continue;
            DN_TRY(to_device ? dn_gpu_push(*t[k].dev, *t[k].host, t[k].n) : dn_gpu_pull(*t[k].host, *t[k].dev, t[k].n));
        }
    }
    return DN_OK;
}

dn_status dn_network_pull(const dn_network *net)
{
    if (!net || !net->on_gpu) return DN_OK;
    DN_TRY(dn_gpu_use(net->gpu_index));
    return sync_params((dn_network *)net, 0);   /* writes only the arrays' contents */
}

dn_status dn_network_push(dn_network *net)
{
    if (!net || !net->on_gpu) return DN_OK;
    DN_TRY(dn_gpu_use(net->gpu_index));
    return sync_params(net, 1);
}

/* ------------------------------------------------------------ CPU fallback */

static dn_status pull_outputs(dn_network *net, const int *src, int n)
{
    for (int j = 0; j < n; ++j)
        if (src[j] >= 0) {
            dn_layer *s = &net->layers[src[j]];
            DN_TRY(dn_gpu_pull(s->output, s->output_gpu, (size_t)s->batch * s->outputs));
        }
    return DN_OK;
}

static dn_status move_deltas(dn_network *net, const int *src, int n, int to_device)
{
    for (int j = 0; j < n; ++j)
        if (src[j] >= 0) {
            dn_layer *s = &net->layers[src[j]];
            size_t count = (size_t)s->batch * s->outputs;
            DN_TRY(to_device ? dn_gpu_push(s->delta_gpu, s->delta, count) : dn_gpu_pull(s->delta, s->delta_gpu, count));
        }
    return DN_OK;
}

#define MAX_SOURCES 64

/* The layers whose outputs l reads (dn_layer_sources) are pulled first. */
static dn_status fallback_forward(dn_layer *l, dn_network *net)
{
    int src[MAX_SOURCES], ns = dn_layer_sources(l, src, MAX_SOURCES);
    size_t n = (size_t)l->batch * l->outputs;
    DN_TRY(pull_outputs(net, src, ns));
    net->input = l->index ? net->layers[l->index - 1].output : net->input_buf;
    dn_fill(l->delta, n, 0);
    DN_TRY(l->ops->forward(l, net));
    DN_TRY(dn_gpu_push(l->output_gpu, l->output, n));
    return dn_gpu_push(l->delta_gpu, l->delta, n);
}

static dn_status fallback_backward(dn_layer *l, dn_network *net)
{
    int src[MAX_SOURCES], ns = dn_layer_sources(l, src, MAX_SOURCES);
    DN_TRY(dn_gpu_pull(l->delta, l->delta_gpu, (size_t)l->batch * l->outputs));
    DN_TRY(pull_outputs(net, src, ns));
    DN_TRY(move_deltas(net, src, ns, 0));
    net->input = l->index ? net->layers[l->index - 1].output : net->input_buf;
    net->delta = l->index ? net->layers[l->index - 1].delta : NULL;
    DN_TRY(l->ops->backward(l, net));
    return move_deltas(net, src, ns, 1);
}

/* ------------------------------------------------------------ passes */

dn_status dn_gpu_forward(dn_network *net)
{
    DN_TRY(dn_gpu_use(net->gpu_index));
    DN_TRY(dn_gpu_push(net->input_buf_gpu, net->input_buf, (size_t)net->batch * net->inputs));
    if (net->truth) DN_TRY(dn_gpu_push(net->truth_buf_gpu, net->truth, (size_t)net->batch * net->truths));
    net->input_gpu = net->input_buf_gpu;
    net->delta_gpu = NULL;
    float cost = 0;
    int costs = 0;
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        DN_TRY(DN_CUDA(dn_cuda_fill(l->delta_gpu, (size_t)l->batch * l->outputs, 0)));
        const dn_layer_gpu_ops *g = l->ops->gpu;
        DN_TRY(g ? g->forward_gpu(l, net) : fallback_forward(l, net));
        net->input_gpu = l->output_gpu;
        if (l->has_cost) { cost += l->cost; ++costs; }
    }
    net->cost = costs ? cost / costs : 0;
    const dn_layer *o = dn_network_output_layer(net);
    return dn_gpu_pull(o->output, o->output_gpu, (size_t)o->batch * o->outputs);
}

dn_status dn_gpu_backward(dn_network *net)
{
    DN_TRY(dn_gpu_use(net->gpu_index));
    for (int i = net->n - 1; i >= 0; --i) {
        dn_layer *l = &net->layers[i];
        if (l->stopbackward) break;
        net->input_gpu = i ? net->layers[i - 1].output_gpu : net->input_buf_gpu;
        net->delta_gpu = i ? net->layers[i - 1].delta_gpu : NULL;
        const dn_layer_gpu_ops *g = l->ops->gpu;
        DN_TRY(g ? g->backward_gpu(l, net) : fallback_backward(l, net));
    }
    return DN_OK;
}

/* network.c's SGD step on the device arrays of one native layer. */
dn_status dn_gpu_update_layer(dn_layer *l, float lr, float B, float decay, float momentum)
{
    dn_param p[DN_MAX_PARAMS];
    int np = dn_layer_params(l, p);
    for (int k = 0; k < np; ++k) {
        if (!p[k].updates) continue;
        float *w = device_of(l, p[k].data), *u = device_of(l, p[k].updates);
        if (!w || !u) return dn_fail(DN_ERR_GPU, "layer %d: %s has no device copy", l->index, p[k].name);
        DN_TRY(DN_CUDA(dn_cuda_sgd(w, u, p[k].n, p[k].decay ? decay * B : 0.f, lr / B, momentum)));
    }
    return DN_OK;
}

#else
typedef int dn_network_gpu_unused;   /* CPU build: the stubs are in gpu.c */
#endif
