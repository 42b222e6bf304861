/*
 * network.c — running a network: forward, backward, SGD update, training on
 * a batch, prediction, the learning-rate policy, batch resizing and freeing.
 * Training follows upstream's order exactly (train_network in pjreddie Darknet): seen grows by
 * the mini-batch before the pass, and the update runs after every
 * `subdivisions` mini-batches.
 *
 * Errors: each pass returns the first failure of a layer (only a layer on a
 * GPU can fail mid-pass) as it happens; the loops check one status per
 * layer call and nothing else.
 */
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void dn_network_free(dn_network *net)
{
    if (!net) return;
    if (net->on_gpu) dn_gpu_network_free(net);
    for (int i = 0; net->layers && i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        if (l->ops && l->ops->free) l->ops->free(l);
        else dn_free_common(l);
    }
    free(net->layers);
    free(net->source);
    free(net->steps);
    free(net->scales);
    free(net->workspace);
    free(net->input_buf);
    free(net->truth_buf);
    free(net);
}

dn_status dn_network_set_batch(dn_network *net, int batch)
{
    if (!net || batch < 1) return dn_fail(DN_ERR_ARG, "dn_network_set_batch: batch must be at least 1");
    if (batch == net->batch) return DN_OK;
    float *in = dn_layer_alloc((size_t)batch * net->inputs);
    float *truth = dn_layer_alloc((size_t)batch * net->truths);
    if (!in || !truth) { free(in); free(truth); return DN_ERR_NOMEM; }
    free(net->input_buf); net->input_buf = in;
    free(net->truth_buf); net->truth_buf = truth;
    net->batch = batch;
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        l->batch = batch;
        DN_TRY(l->ops->alloc_buffers(l));
    }
    return net->on_gpu ? dn_gpu_set_batch(net) : DN_OK;
}

size_t dn_network_batch_num(const dn_network *net)
{
    return (size_t)(net->seen / ((uint64_t)net->batch * net->subdivisions));
}

float dn_network_rate(const dn_network *net)
{
    size_t batch_num = dn_network_batch_num(net);
    float lr = net->learning_rate;
    if (batch_num < (size_t)net->burn_in) return lr * powf((float)batch_num / net->burn_in, net->power);
    switch (net->policy) {
    case DN_POLICY_CONSTANT: return lr;
    case DN_POLICY_STEP: return lr * powf(net->scale, (float)(batch_num / (size_t)net->step));
    case DN_POLICY_STEPS: {
        float rate = lr;
        for (int i = 0; i < net->num_steps; ++i) {
            if ((size_t)net->steps[i] > batch_num) return rate;
            rate *= net->scales[i];
        }
        return rate;
    }
    case DN_POLICY_EXP: return lr * powf(net->gamma, (float)batch_num);
    case DN_POLICY_POLY:
        if (net->max_batches <= 0) return lr;
        return lr * powf(1 - (float)batch_num / net->max_batches, net->power);
    case DN_POLICY_SIGMOID: return lr * (1.f / (1.f + expf(net->gamma * ((float)batch_num - net->step))));
    case DN_POLICY_RANDOM: {
        uint64_t s = batch_num * 0x9E3779B97F4A7C15ull ^ net->rng;   /* same batch, same draw */
        return lr * powf(dn_rand_uniform(&s, 0, 1), net->power);
    }
    }
    return lr;
}

dn_status dn_network_forward(dn_network *net, const float *input, const float *truth, int train)
{
    if (!net || !input) return dn_fail(DN_ERR_ARG, "dn_network_forward: no network or input");
    if (!net->input_buf) return dn_fail(DN_ERR_ARG, "%s: network was parsed for shapes only", net->source);
    if (input != net->input_buf) dn_copy(net->input_buf, input, (size_t)net->batch * net->inputs);
    net->truth = NULL;
    if (truth) {
        if (truth != net->truth_buf) dn_copy(net->truth_buf, truth, (size_t)net->batch * net->truths);
        net->truth = net->truth_buf;
    }
    net->train = train;
    net->input = net->input_buf;
    net->delta = NULL;
    if (net->on_gpu) return dn_gpu_forward(net);
    float cost = 0;
    int costs = 0;
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        dn_zero_parallel(l->delta, (size_t)l->batch * l->outputs);
        DN_TRY(l->ops->forward(l, net));
        net->input = l->output;
        if (l->has_cost) { cost += l->cost; ++costs; }
    }
    net->cost = costs ? cost / costs : 0;
    return DN_OK;
}

dn_status dn_network_backward(dn_network *net)
{
    if (!net || !net->input_buf)
        return dn_fail(DN_ERR_ARG, "dn_network_backward: no network, or one parsed for shapes only");
    if (net->on_gpu) return dn_gpu_backward(net);
    for (int i = net->n - 1; i >= 0; --i) {
        dn_layer *l = &net->layers[i];
        if (l->stopbackward) break;
        net->input = i ? net->layers[i - 1].output : net->input_buf;
        net->delta = i ? net->layers[i - 1].delta : NULL;
        DN_TRY(l->ops->backward(l, net));
    }
    return DN_OK;
}

/* Upstream's SGD with heavy-ball momentum on one layer's host arrays; updates
 * hold the negative gradient summed over the full batch B:
 *   U -= decay*B*W;  W += lr/B * U;  U *= momentum. */
static void update_layer_host(dn_layer *l, float lr, float B, float decay, float momentum)
{
    dn_param p[DN_MAX_PARAMS];
    int np = dn_layer_params(l, p);
    for (int k = 0; k < np; ++k) {
        if (!p[k].updates) continue;
        if (p[k].decay) dn_axpy(p[k].updates, -decay * B, p[k].data, p[k].n);
        dn_axpy(p[k].data, lr / B, p[k].updates, p[k].n);
        dn_scal(p[k].updates, momentum, p[k].n);
    }
}

dn_status dn_network_update_batch(dn_network *net, float B, int host)
{
    float rate = dn_network_rate(net);
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        float lr = rate * l->lr_mult;
        if (!host && net->on_gpu && l->gpu_native) DN_TRY(dn_gpu_update_layer(l, lr, B, net->decay, net->momentum));
        else update_layer_host(l, lr, B, net->decay, net->momentum);
    }
    return DN_OK;
}

dn_status dn_network_update(dn_network *net)
{
    if (!net || !net->input_buf)
        return dn_fail(DN_ERR_ARG, "dn_network_update: no network, or one parsed for shapes only");
    return dn_network_update_batch(net, (float)net->batch * net->subdivisions, 0);
}

dn_status dn_network_train_pass(dn_network *net, const float *X, const float *Y)
{
    DN_TRY(dn_network_forward(net, X, Y, 1));
    if (!isfinite(net->cost))
        return dn_fail(DN_ERR_NUMERIC, "training diverged: loss is %s at batch %zu (learning rate %g)",
                       isnan(net->cost) ? "NaN" : "Inf", dn_network_batch_num(net), dn_network_rate(net));
    return dn_network_backward(net);
}

dn_status dn_network_train(dn_network *net, const float *X, const float *Y, int n, float *loss)
{
    if (!net || !X || !Y) return dn_fail(DN_ERR_ARG, "dn_network_train: no network or data");
    if (n < net->batch || n % net->batch)
        return dn_fail(DN_ERR_ARG, "dn_network_train: %d images is not a multiple of the mini-batch %d", n, net->batch);
    int batches = n / net->batch;
    float sum = 0;
    for (int i = 0; i < batches; ++i) {
        net->seen += (uint64_t)net->batch;
        DN_TRY(dn_network_train_pass(net, X + (size_t)i * net->batch * net->inputs,
                                     Y + (size_t)i * net->batch * net->truths));
        if ((net->seen / (uint64_t)net->batch) % (uint64_t)net->subdivisions == 0) DN_TRY(dn_network_update(net));
        sum += net->cost;
    }
    if (loss) *loss = sum / ((float)batches * net->batch);
    return DN_OK;
}

const dn_layer *dn_network_output_layer(const dn_network *net)
{
    int i = net->n - 1;
    while (i > 0 && net->layers[i].ops->beyond_output) --i;
    return &net->layers[i];
}

dn_status dn_network_predict(dn_network *net, const float *input, const float **output)
{
    if (output) *output = NULL;
    if (!net || !input || !output)
        return dn_fail(DN_ERR_ARG, "dn_network_predict: no network, input or output pointer");
    if (!net->input_buf) return dn_fail(DN_ERR_ARG, "%s: network was parsed for shapes only", net->source);
    dn_copy(net->input_buf, input, (size_t)net->inputs);
    DN_TRY(dn_network_forward(net, net->input_buf, NULL, 0));
    *output = dn_network_output_layer(net)->output;
    return DN_OK;
}

dn_status dn_network_predict_batch(dn_network *net, const float *X, int n, float *out)
{
    if (!net || !X || !out || n < 0) return dn_fail(DN_ERR_ARG, "dn_network_predict_batch: bad arguments");
    if (!net->input_buf) return dn_fail(DN_ERR_ARG, "%s: network was parsed for shapes only", net->source);
    const dn_layer *o = dn_network_output_layer(net);
    for (int start = 0; start < n; start += net->batch) {
        int count = n - start < net->batch ? n - start : net->batch;
        dn_copy(net->input_buf, X + (size_t)start * net->inputs, (size_t)count * net->inputs);
        if (count < net->batch)
            dn_fill(net->input_buf + (size_t)count * net->inputs, (size_t)(net->batch - count) * net->inputs, 0);
        DN_TRY(dn_network_forward(net, net->input_buf, NULL, 0));
        dn_copy(out + (size_t)start * net->outputs, o->output, (size_t)count * net->outputs);
    }
    return DN_OK;
}

size_t dn_network_param_count(const dn_network *net)
{
    size_t total = 0;
    for (int i = 0; i < net->n; ++i) {
        dn_param p[DN_MAX_PARAMS];
        int np = dn_layer_params(&net->layers[i], p);
        for (int k = 0; k < np; ++k)
            if (strncmp(p[k].name, "rolling_", 8) != 0) total += p[k].n;
    }
    return total;
}

size_t dn_network_memory_bytes(const dn_network *net)
{
    size_t floats = 2 * dn_network_param_count(net);      /* parameters and their updates */
    size_t scratch = 0;                                    /* shared by all layers */
    for (int i = 0; i < net->n; ++i) {
        const dn_layer *l = &net->layers[i];
        floats += dn_layer_buffer_floats(l) * (size_t)net->batch;   /* output, delta and the type's own */
        if (l->workspace_size > scratch) scratch = l->workspace_size;
    }
    floats += scratch + (size_t)net->batch * (net->inputs + net->truths);
    return floats * sizeof(float);
}

double dn_network_flops(const dn_network *net)
{
    double total = 0;
    for (int i = 0; i < net->n; ++i) total += net->layers[i].ops->flops(&net->layers[i]);
    return total;
}
