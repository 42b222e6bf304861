/*
 * layer.c — the table of layer types and helpers every layer shares:
 * allocation of output/delta buffers, freeing, parameter listing, and the
 * defaults of the optional hooks.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

/* Every layer type, indexed by dn_layer_type: each layer_<type>.c defines
 * its ops, and this is the one place that lists them. */
extern const dn_layer_ops dn_convolutional_ops, dn_connected_ops, dn_maxpool_ops, dn_avgpool_ops,
    dn_local_avgpool_ops, dn_dropout_ops, dn_softmax_ops, dn_cost_ops, dn_route_ops, dn_shortcut_ops,
    dn_batchnorm_ops, dn_activation_layer_ops;

static const dn_layer_ops *const all_ops[] = {
    [DN_CONVOLUTIONAL] = &dn_convolutional_ops,
    [DN_CONNECTED] = &dn_connected_ops,
    [DN_MAXPOOL] = &dn_maxpool_ops,
    [DN_AVGPOOL] = &dn_avgpool_ops,
    [DN_LOCAL_AVGPOOL] = &dn_local_avgpool_ops,
    [DN_DROPOUT] = &dn_dropout_ops,
    [DN_SOFTMAX] = &dn_softmax_ops,
    [DN_COST] = &dn_cost_ops,
    [DN_ROUTE] = &dn_route_ops,
    [DN_SHORTCUT] = &dn_shortcut_ops,
    [DN_BATCHNORM] = &dn_batchnorm_ops,
    [DN_ACTIVATION_LAYER] = &dn_activation_layer_ops,
};
/* A type added to the enum without an entry here shortens the table (types
 * are added last, before DN_LAYER_TYPE_COUNT); tests/test_smoke.c checks
 * that no entry in the middle is missing and that each has its required hooks. */
_Static_assert(sizeof all_ops / sizeof *all_ops == DN_LAYER_TYPE_COUNT,
               "all_ops needs an entry for every dn_layer_type");

const dn_layer_ops *dn_layer_ops_for_type(dn_layer_type t)
{
    return (t >= 0 && t < DN_LAYER_TYPE_COUNT) ? all_ops[t] : NULL;
}

const dn_layer_ops *dn_layer_ops_for_section(const char *bracketed)
{
    size_t len = strlen(bracketed);
    if (len < 3 || bracketed[0] != '[' || bracketed[len - 1] != ']') return NULL;
    for (int t = 0; t < DN_LAYER_TYPE_COUNT; ++t)
        for (int k = 0; k < 3 && all_ops[t]->names[k]; ++k) {
            const char *nm = all_ops[t]->names[k];
            if (strlen(nm) == len - 2 && strncmp(nm, bracketed + 1, len - 2) == 0) return all_ops[t];
        }
    return NULL;
}

const char *dn_layer_type_name(dn_layer_type t)
{
    const dn_layer_ops *ops = dn_layer_ops_for_type(t);
    return ops ? ops->names[0] : "?";
}

/* Appends text to buf (size bytes, *used of them taken), truncating. */
static void append(char *buf, size_t size, size_t *used, const char *text)
{
    int n = snprintf(buf + *used, size - *used, "%s", text);
    if (n > 0) *used += (size_t)n < size - *used ? (size_t)n : size - *used - 1;
}

const char *dn_layer_type_list(int (*keep)(const dn_layer_ops *ops), char *buf, size_t size)
{
    int kept[DN_LAYER_TYPE_COUNT], n = 0;
    for (int t = 0; t < DN_LAYER_TYPE_COUNT; ++t)
        if (keep(all_ops[t])) kept[n++] = t;
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; ++i) {
        append(buf, size, &used, i == 0 ? "[" : i == n - 1 ? " or [" : ", [");
        append(buf, size, &used, all_ops[kept[i]]->names[0]);
        append(buf, size, &used, "]");
    }
    return buf;
}

/* ------------------------------------------------------------ optional hooks */

int dn_layer_sources(const dn_layer *l, int *out, int max)
{
    if (l->ops->sources) return l->ops->sources(l, out, max);
    out[0] = l->index - 1;
    return 1;
}

size_t dn_layer_buffer_floats(const dn_layer *l)
{
    return l->ops->buffer_floats ? l->ops->buffer_floats(l) : 2 * (size_t)l->outputs;
}

float *dn_layer_alloc(size_t n) { return dn_calloc(n ? n : 1, sizeof(float)); }

dn_status dn_alloc_output_delta(dn_layer *l)
{
    size_t n = (size_t)l->batch * l->outputs;
    free(l->output);
    free(l->delta);
    l->output = dn_layer_alloc(n);
    l->delta = dn_layer_alloc(n);
    return (l->output && l->delta) ? DN_OK : DN_ERR_NOMEM;
}

void dn_free_common(dn_layer *l)
{
    float **arrays[] = {
        &l->weights, &l->weight_updates, &l->biases, &l->bias_updates, &l->scales,
        &l->scale_updates, &l->rolling_mean, &l->rolling_variance, &l->output, &l->delta,
        &l->x, &l->x_norm, &l->mean, &l->variance, &l->mean_delta, &l->variance_delta,
    };
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; ++i) { free(*arrays[i]); *arrays[i] = NULL; }
}

int dn_layer_params(const dn_layer *l, dn_param out[DN_MAX_PARAMS])
{
    if (!l->ops || !l->ops->params) return 0;
    return l->ops->params(l, out);
}

void dn_layer_init_params(dn_layer *l, uint64_t *rng)
{
    if (l->ops && l->ops->init_params) l->ops->init_params(l, rng);
}

/* ------------------------------------------------------------ batch-norm state */

dn_status dn_alloc_batchnorm_params(dn_layer *l, int c)
{
    l->scales = dn_layer_alloc((size_t)c);
    l->scale_updates = dn_layer_alloc((size_t)c);
    l->rolling_mean = dn_layer_alloc((size_t)c);
    l->rolling_variance = dn_layer_alloc((size_t)c);
    l->mean = dn_layer_alloc((size_t)c);
    l->variance = dn_layer_alloc((size_t)c);
    l->mean_delta = dn_layer_alloc((size_t)c);
    l->variance_delta = dn_layer_alloc((size_t)c);
    if (!l->scales || !l->scale_updates || !l->rolling_mean || !l->rolling_variance || !l->mean ||
        !l->variance || !l->mean_delta || !l->variance_delta)
        return DN_ERR_NOMEM;
    return DN_OK;
}

void dn_init_batchnorm_params(dn_layer *l, int c)
{
    dn_fill(l->scales, (size_t)c, 1);
    dn_fill(l->rolling_mean, (size_t)c, 0);
    dn_fill(l->rolling_variance, (size_t)c, 1);
}

dn_status dn_alloc_batchnorm_buffers(dn_layer *l)
{
    size_t n = (size_t)l->batch * l->outputs;
    free(l->x);
    free(l->x_norm);
    l->x = dn_layer_alloc(n);
    l->x_norm = dn_layer_alloc(n);
    return (l->x && l->x_norm) ? DN_OK : DN_ERR_NOMEM;
}

size_t dn_batchnorm_buffer_floats(const dn_layer *l)
{
    return (l->batch_normalize ? 4 : 2) * (size_t)l->outputs;
}

dn_param dn_make_param(const char *name, float *data, float *updates, size_t n, int decay)
{
    dn_param p = {name, data, updates, n, decay, 0, 0};
    return p;
}

int dn_batchnorm_param_list(const dn_layer *l, int c, dn_param *out)
{
    out[0] = dn_make_param("scales", l->scales, l->scale_updates, (size_t)c, 0);
    out[1] = dn_make_param("rolling_mean", l->rolling_mean, NULL, (size_t)c, 0);
    out[2] = dn_make_param("rolling_variance", l->rolling_variance, NULL, (size_t)c, 0);
    return 3;
}
