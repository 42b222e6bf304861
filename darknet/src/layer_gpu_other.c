/*
 * layer_gpu_other.c — GPU kernels of the layer types that are not
 * convolution, connected or activation (layer_gpu.c): [maxpool], [avgpool],
 * [local_avgpool], [route], [shortcut], [softmax], [cost], [dropout],
 * [batchnorm]. Each forward / backward is the twin of the CPU code in
 * layer_<type>.c (same semantics: backward adds into the deltas it feeds).
 * The kernels are in gpu_layer_kernels.cu (batch norm: gpu_kernels.cu).
 *
 * Device state of a layer's own (l->gpu_state): maxpool's argmax indexes
 * (batch*outputs ints) and dropout's draws (batch*inputs floats, drawn on
 * the host from net->rng exactly as the CPU does, then pushed). Losses sum
 * per-block partials in net->workspace_gpu and pull them to set l->cost.
 */
#include "internal.h"

#ifdef DN_GPU
#include "gpu_kernels.h"
#include "gpu_layer_kernels.h"

_Static_assert(sizeof(int) == sizeof(float), "maxpool keeps its int indexes in a float device buffer");

/* ------------------------------------------------------------ helpers */

static size_t no_workspace(const dn_layer *l) { (void)l; return 0; }
static size_t loss_workspace(const dn_layer *l) { (void)l; return DN_CUDA_PARTIALS; }

static size_t batch_outputs(const dn_layer *l) { return (size_t)l->batch * l->outputs; }

/* net->delta_gpu += a * l->delta_gpu (batch*outputs) when there is a previous layer. */
static dn_status pass_delta(dn_layer *l, dn_network *net, float a)
{
    if (!net->delta_gpu) return DN_OK;
    return DN_CUDA(dn_cuda_axpy(net->delta_gpu, a, l->delta_gpu, batch_outputs(l)));
}

static void release_state(dn_layer *l)
{
    dn_gpu_free(l->gpu_state);
    l->gpu_state = NULL;
}

/* l->gpu_state = n zeroed floats (device), replacing any earlier state. */
static dn_status alloc_state(dn_layer *l, size_t n)
{
    release_state(l);
    l->gpu_state = dn_gpu_alloc(n);
    return l->gpu_state ? DN_OK : dn_gpu_alloc_failed();
}

/* ------------------------------------------------------------ pooling */

/* Planes (batch*c) of h x w -> out_h x out_w. */
static dn_cuda_pool pool_window(const dn_layer *l)
{
    dn_cuda_pool p = {l->batch * l->c, l->h, l->w, l->out_h, l->out_w, l->size, l->stride, l->pad};
    return p;
}

/* argmax indexes (batch, outputs) */
static dn_status maxpool_setup(dn_layer *l) { return alloc_state(l, batch_outputs(l)); }

static dn_status maxpool_forward_gpu(dn_layer *l, dn_network *net)
{
    dn_cuda_pool p = pool_window(l);
    return DN_CUDA(dn_cuda_maxpool_forward(&p, net->input_gpu, l->output_gpu, l->gpu_state));
}

static dn_status maxpool_backward_gpu(dn_layer *l, dn_network *net)
{
    if (!net->delta_gpu) return DN_OK;
    dn_cuda_pool p = pool_window(l);
    return DN_CUDA(dn_cuda_maxpool_backward(&p, l->delta_gpu, l->gpu_state, net->delta_gpu));
}

static dn_status local_avgpool_forward_gpu(dn_layer *l, dn_network *net)
{
    dn_cuda_pool p = pool_window(l);
    return DN_CUDA(dn_cuda_local_avgpool_forward(&p, net->input_gpu, l->output_gpu));
}

static dn_status local_avgpool_backward_gpu(dn_layer *l, dn_network *net)
{
    if (!net->delta_gpu) return DN_OK;
    dn_cuda_pool p = pool_window(l);
    return DN_CUDA(dn_cuda_local_avgpool_backward(&p, l->delta_gpu, net->delta_gpu));
}

/* input (batch*c rows of h*w) -> output (batch*c) */
static dn_status avgpool_forward_gpu(dn_layer *l, dn_network *net)
{
    return DN_CUDA(dn_cuda_row_mean(net->input_gpu, (size_t)l->batch * l->c, l->h * l->w, l->output_gpu));
}

static dn_status avgpool_backward_gpu(dn_layer *l, dn_network *net)
{
    if (!net->delta_gpu) return DN_OK;
    return DN_CUDA(dn_cuda_row_mean_backward(l->delta_gpu, (size_t)l->batch * l->c, l->h * l->w, net->delta_gpu));
}

/* ------------------------------------------------------------ route */

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

/* ------------------------------------------------------------ shortcut */

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
    size_t n = batch_outputs(l);
    dn_cuda_shortcut s = from_onto_out(l);
    DN_TRY(dn_gpu_copy(l->output_gpu, net->input_gpu, n));
    DN_TRY(DN_CUDA(dn_cuda_shortcut_add(&s, net->layers[l->from].output_gpu, l->alpha, l->beta, l->output_gpu)));
    return DN_CUDA(dn_cuda_activate(l->output_gpu, n, (int)l->activation));
}

/* from.delta += beta * delta (mapped); prev.delta += delta, scaled by alpha
 * where `from` was added (layer_shortcut.c's order). */
static dn_status shortcut_backward_gpu(dn_layer *l, dn_network *net)
{
    dn_cuda_shortcut back = out_onto_from(l), fwd = from_onto_out(l);
    DN_TRY(DN_CUDA(dn_cuda_gradient(l->output_gpu, batch_outputs(l), (int)l->activation, l->delta_gpu)));
    DN_TRY(DN_CUDA(dn_cuda_shortcut_add(&back, l->delta_gpu, 1, l->beta, net->layers[l->from].delta_gpu)));
    if (l->alpha != 1) DN_TRY(DN_CUDA(dn_cuda_shortcut_add(&fwd, NULL, l->alpha, 0, l->delta_gpu)));
    return pass_delta(l, net, 1);
}

/* ------------------------------------------------------------ losses */

/* The truth the CPU layer reads: net->truth[0 .. batch*inputs). The CPU
 * reads past the truth buffer when the layer is wider than the network
 * output; on the device that would poison the context, so it is an error. */
static dn_status truth_fits(const dn_layer *l, const dn_network *net)
{
    if ((size_t)l->batch * l->inputs <= (size_t)net->batch * net->truths) return DN_OK;
    return dn_fail(DN_ERR_SHAPE, "layer %d: %d inputs per image but the truth has %d values", l->index, l->inputs,
                   net->truths);
}

/* Sum of the `parts` partial sums a loss kernel left in the workspace. */
static dn_status pull_loss(dn_network *net, int parts, float *out)
{
    float host[DN_CUDA_PARTIALS];
    DN_TRY(dn_gpu_pull(host, net->workspace_gpu, (size_t)parts));
    double s = 0;
    for (int i = 0; i < parts; ++i) s += host[i];
    *out = (float)s;
    return DN_OK;
}

/* input (batch, groups * n) -> softmax of each slice / temperature; with a
 * truth: delta = t - p and the cross-entropy cost. */
static dn_status softmax_forward_gpu(dn_layer *l, dn_network *net)
{
    int len = l->inputs / l->softmax_groups, parts = 0;
    size_t rows = (size_t)l->batch * l->softmax_groups;
    DN_TRY(DN_CUDA(dn_cuda_softmax(net->input_gpu, rows, len, l->temperature, l->output_gpu)));
    l->cost = 0;
    if (!net->truth) return DN_OK;
    DN_TRY(truth_fits(l, net));
    DN_TRY(DN_CUDA(dn_cuda_softmax_cost(l->output_gpu, net->truth_buf_gpu, (size_t)l->batch * l->inputs,
                                        l->delta_gpu, net->workspace_gpu, &parts)));
    return pull_loss(net, parts, &l->cost);
}

static dn_status softmax_backward_gpu(dn_layer *l, dn_network *net) { return pass_delta(l, net, 1); }

/* Per-element error into output, its delta, and their sum as the cost. */
static dn_status cost_forward_gpu(dn_layer *l, dn_network *net)
{
    int parts = 0;
    l->cost = 0;
    if (!net->truth) return DN_OK;
    DN_TRY(truth_fits(l, net));
    DN_TRY(DN_CUDA(dn_cuda_cost(net->input_gpu, net->truth_buf_gpu, (size_t)l->batch * l->inputs, (int)l->cost_type,
                                l->output_gpu, l->delta_gpu, net->workspace_gpu, &parts)));
    return pull_loss(net, parts, &l->cost);
}

static dn_status cost_backward_gpu(dn_layer *l, dn_network *net) { return pass_delta(l, net, l->cost_scale); }

/* ------------------------------------------------------------ dropout */

/* draws (batch, inputs) */
static dn_status dropout_setup(dn_layer *l) { return alloc_state(l, (size_t)l->batch * l->inputs); }

/* The CPU's draws, in its order from net->rng (also kept in l->rand). */
static dn_status dropout_forward_gpu(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->inputs;
    if (!net->train) return dn_gpu_copy(l->output_gpu, net->input_gpu, n);
    for (size_t i = 0; i < n; ++i) l->rand[i] = dn_rand_uniform(&net->rng, 0, 1);
    DN_TRY(dn_gpu_push(l->gpu_state, l->rand, n));
    return DN_CUDA(dn_cuda_dropout(net->input_gpu, l->gpu_state, n, l->probability, l->dropout_scale, l->output_gpu));
}

static dn_status dropout_backward_gpu(dn_layer *l, dn_network *net)
{
    if (!net->delta_gpu) return DN_OK;
    if (!net->train) return pass_delta(l, net, 1);
    return DN_CUDA(dn_cuda_dropout_backward(l->delta_gpu, l->gpu_state, (size_t)l->batch * l->inputs, l->probability,
                                            l->dropout_scale, net->delta_gpu));
}

/* ------------------------------------------------------------ batchnorm */

static dn_cuda_bn bn_params(dn_layer *l)
{
    dn_cuda_bn p = {l->x_gpu, l->x_norm_gpu, l->mean_gpu, l->variance_gpu, l->rolling_mean_gpu,
                    l->rolling_variance_gpu, l->scales_gpu, l->biases_gpu, l->scale_updates_gpu, l->bias_updates_gpu,
                    l->mean_delta_gpu, l->variance_delta_gpu, l->batch, l->out_c, l->out_w * l->out_h, DN_BN_EPSILON};
    return p;
}

/* input (batch, c, h, w) -> normalised, scaled, shifted output */
static dn_status batchnorm_forward_gpu(dn_layer *l, dn_network *net)
{
    dn_cuda_bn p = bn_params(l);
    DN_TRY(dn_gpu_copy(l->output_gpu, net->input_gpu, batch_outputs(l)));
    return DN_CUDA(dn_cuda_bn_forward(&p, l->output_gpu, net->train));
}

static dn_status batchnorm_backward_gpu(dn_layer *l, dn_network *net)
{
    dn_cuda_bn p = bn_params(l);
    DN_TRY(DN_CUDA(dn_cuda_bn_backward(&p, l->delta_gpu, net->train)));
    return pass_delta(l, net, 1);
}

/* ------------------------------------------------------------ the table */

static const dn_layer_gpu_ops maxpool_gpu = {.forward_gpu = maxpool_forward_gpu,
                                             .backward_gpu = maxpool_backward_gpu,
                                             .workspace_gpu = no_workspace,
                                             .setup_gpu = maxpool_setup,
                                             .release_gpu = release_state};
static const dn_layer_gpu_ops avgpool_gpu = {
    .forward_gpu = avgpool_forward_gpu, .backward_gpu = avgpool_backward_gpu, .workspace_gpu = no_workspace};
static const dn_layer_gpu_ops local_avgpool_gpu = {.forward_gpu = local_avgpool_forward_gpu,
                                                   .backward_gpu = local_avgpool_backward_gpu,
                                                   .workspace_gpu = no_workspace};
static const dn_layer_gpu_ops route_gpu = {
    .forward_gpu = route_forward_gpu, .backward_gpu = route_backward_gpu, .workspace_gpu = no_workspace};
static const dn_layer_gpu_ops shortcut_gpu = {
    .forward_gpu = shortcut_forward_gpu, .backward_gpu = shortcut_backward_gpu, .workspace_gpu = no_workspace};
static const dn_layer_gpu_ops softmax_gpu = {
    .forward_gpu = softmax_forward_gpu, .backward_gpu = softmax_backward_gpu, .workspace_gpu = loss_workspace};
static const dn_layer_gpu_ops cost_gpu = {
    .forward_gpu = cost_forward_gpu, .backward_gpu = cost_backward_gpu, .workspace_gpu = loss_workspace};
static const dn_layer_gpu_ops dropout_gpu = {.forward_gpu = dropout_forward_gpu,
                                             .backward_gpu = dropout_backward_gpu,
                                             .workspace_gpu = no_workspace,
                                             .setup_gpu = dropout_setup,
                                             .release_gpu = release_state};
static const dn_layer_gpu_ops batchnorm_gpu = {
    .forward_gpu = batchnorm_forward_gpu, .backward_gpu = batchnorm_backward_gpu, .workspace_gpu = no_workspace};

const dn_layer_gpu_ops *dn_layer_gpu_ops_other(dn_layer_type t)
{
    switch (t) {
    case DN_MAXPOOL: return &maxpool_gpu;
    case DN_AVGPOOL: return &avgpool_gpu;
    case DN_LOCAL_AVGPOOL: return &local_avgpool_gpu;
    case DN_ROUTE: return &route_gpu;
    case DN_SHORTCUT: return &shortcut_gpu;
    case DN_SOFTMAX: return &softmax_gpu;
    case DN_COST: return &cost_gpu;
    case DN_DROPOUT: return &dropout_gpu;
    case DN_BATCHNORM: return &batchnorm_gpu;
    default: return NULL;
    }
}
#else
typedef int dn_layer_gpu_other_unused;   /* CPU build: nothing here */
#endif
