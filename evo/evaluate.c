/*
 * evaluate.c — one evaluation of an individual, in-process, through darknet.h:
 *
 *   child genome --emit (plain)--> cfg text --parse (batch, seed)--> network
 *   [parent cfg + weights --parse, load--> parent network --evo_inherit--> child]
 *   [a morphism: evo_morph_init makes the child compute the parent's function]
 *   train `steps` batches drawn by a background loader from the training split,
 *     the learning rate of each step from the schedule (evo_schedule)
 *   top-1 accuracy on the validation holdout (or its first val_images)
 *     --> trained weights in memory
 *   [-objective ...latency: inference time per image on the CPU, see measure_latency]
 *
 * It never fails the process: a cfg that does not build, a divergence (NaN or
 * Inf in the loss, the weights or the outputs), an allocation failure or a
 * data error make the child EVO_FAILED with the message as its reason.
 * evo_eval_options.threads sets the GEMM threads (process-wide; 0: the default).
 */
#include "evo_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOSS_WINDOW 10   /* the reported loss is the mean of the last LOSS_WINDOW batches */

/* An evo_* call by another part of evo failed: its message is evo_last_error(). */
static dn_status evo_failed(dn_status s, const char *context)
{
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", evo_last_error());
    return evo_fail(s, "%s: %s", context, msg);
}

/* ------------------------------------------------------------ schedule */

dn_status evo_schedule_from_name(const char *name, evo_schedule *out)
{
    static const char *const names[] = {"cfg", "constant", "cosine"};
    for (int i = 0; i < 3; ++i)
        if (name && !strcmp(name, names[i])) { *out = (evo_schedule)i; return DN_OK; }
    return evo_fail(DN_ERR_ARG, "unknown schedule '%s' (cosine, constant or cfg)", name ? name : "");
}

void evo_augment(dn_loader_options *lo, const dn_data_config *dc, int augment, float erase)
{
    lo->flip = dc->flip || augment;
    lo->crop_pad = dc->crop_pad ? dc->crop_pad : augment ? 2 : 0;
    lo->erase = dc->erase > 0 ? dc->erase : augment ? erase : 0;
}

const char *evo_augment_text(int augment, float erase, char *buf, size_t n)
{
    if (!augment) snprintf(buf, n, "no augmentation");
    else if (erase > 0) snprintf(buf, n, "flip + crop + erasing %g", erase);
    else snprintf(buf, n, "flip + crop");
    return buf;
}

float evo_cosine_rate(float lr, int i, int n)
{
    int warm = n / 20 > 1 ? n / 20 : 1;
    if (i < warm) return lr * (0.1f + 0.9f * (float)i / (float)warm);
    float lo = lr / 100, t = n - warm > 1 ? (float)(i - warm) / (float)(n - warm - 1) : 1;
    return lo + (lr - lo) * 0.5f * (1 + cosf(3.14159265f * t));
}

/* ------------------------------------------------------------ validation */

static int argmax(const float *p, int n)
{
    int best = 0;
    for (int i = 1; i < n; ++i)
        if (p[i] > p[best]) best = i;
    return best;
}

static int all_finite(const float *p, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (!isfinite(p[i])) return 0;
    return 1;
}

/* Inputs of images [start, start+count) at the network's shape: the rows
 * themselves when the arrays already have it, else converted into X. */
static dn_status batch_inputs(dn_network *net, const dn_split *s, int start, int count, float *X, const float **in)
{
    const dn_dataset *d = &s->arrays;
    if (!s->is_list && d->w == net->w && d->h == net->h && d->c == net->c) {
        *in = d->X + (size_t)start * d->cols;
        return DN_OK;
    }
    for (int j = 0; j < count; ++j)
        if (dn_split_eval_input(s, start + j, net->w, net->h, net->c, X + (size_t)j * net->inputs) != DN_OK)
            return dn_fail_context(DN_ERR_DATA, "validation input");
    *in = X;
    return DN_OK;
}

/* Right answers among images [start, start+count). */
static dn_status score_batch(dn_network *net, const dn_split *s, int start, int count, float *X, float *P, int *right)
{
    const float *in = NULL;
    DN_TRY(batch_inputs(net, s, start, count, X, &in));
    if (dn_network_predict_batch(net, in, count, P) != DN_OK) return dn_fail_context(DN_ERR_ARG, "validation");
    for (int j = 0; j < count; ++j) {
        const float *p = P + (size_t)j * net->outputs;
        if (!all_finite(p, (size_t)net->outputs))
            return evo_fail(DN_ERR_NUMERIC, "diverged: the network outputs NaN or Inf for validation image %d",
                                 start + j);
        *right += argmax(p, net->outputs) == s->labels[start + j];
    }
    return DN_OK;
}

dn_status evo_split_accuracy(dn_network *net, const dn_split *s, float *accuracy)
{
    if (!net || !s || !accuracy || s->n < 1)
        return evo_fail(DN_ERR_ARG, "evo_split_accuracy: no network, or an empty split");
    *accuracy = 0;
    float *X = malloc((size_t)net->batch * net->inputs * sizeof(float));
    float *P = malloc((size_t)net->batch * net->outputs * sizeof(float));
    dn_status st = X && P ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory for validation buffers");
    int right = 0;
    for (int start = 0; st == DN_OK && start < s->n; start += net->batch) {
        int count = s->n - start < net->batch ? s->n - start : net->batch;
        st = score_batch(net, s, start, count, X, P, &right);
    }
    free(X);
    free(P);
    if (st == DN_OK) *accuracy = (float)right / (float)s->n;
    return st;
}

/* ------------------------------------------------------------ build */

typedef struct {
    dn_network *net;
    dn_loader *ld;
    float *X, *Y;
} eval_ctx;

static int param_layers(const dn_network *net)
{
    int n = 0;
    for (int i = 0; i < net->n; ++i) {
        dn_param p[DN_MAX_PARAMS];
        n += dn_layer_params(&net->layers[i], p) > 0;
    }
    return n;
}

/* Parse genome g's plain cfg; name names it in messages. */
static dn_status build_net(const evo_genome *g, const char *name, const dn_parse_options *po, dn_network **out)
{
    char *text = NULL;
    if (evo_genome_emit(g, 0, &text) != DN_OK) return evo_failed(DN_ERR_PARSE, name);
    dn_status s = dn_network_parse_string(text, name, po, out);
    free(text);
    return s == DN_OK ? DN_OK : s;
}

#define MORPH_IMAGES 64   /* training images for a morphism's batch-norm statistics */

/* A morphism's child computes its parent's function: the layers it added or
 * widened are set from the parent and from statistics of a few training images. */
static dn_status morph(eval_ctx *c, const evo_genome *child, const dn_network *pnet, const evo_genome *parent,
                       const evo_data *data, const evo_eval_options *o)
{
    int n = data->train.n < MORPH_IMAGES ? data->train.n : MORPH_IMAGES;
    float *X = malloc((size_t)n * c->net->inputs * sizeof(float));
    if (!X) return evo_fail(DN_ERR_NOMEM, "out of memory for the morphism's images");
    dn_status s = DN_OK;
    for (int j = 0; j < n && s == DN_OK; ++j)
        if (dn_split_eval_input(&data->train, j, c->net->w, c->net->h, c->net->c, X + (size_t)j * c->net->inputs) != DN_OK)
            s = dn_fail_context(DN_ERR_DATA, "the morphism's images");
    if (s == DN_OK && evo_morph_init(c->net, child, pnet, parent, o->mutation, X, n, o->seed) != DN_OK)
        s = evo_failed(DN_ERR_ARG, evo_mutation_name(o->mutation));
    free(X);
    return s;
}

static dn_status inherit_from(eval_ctx *c, const evo_genome *child, const evo_genome *parent, const void *pw,
                              size_t pws, const evo_data *data, const evo_eval_options *o, evo_result *r)
{
    dn_parse_options po = {.batch = 1, .seed = 1, .quiet = 1};
    dn_network *pnet = NULL;
    DN_TRY(build_net(parent, "parent", &po, &pnet));
    dn_status s = dn_weights_load_memory(pnet, pw, pws, "parent weights");
    if (s == DN_OK && evo_inherit(c->net, child, pnet, parent, &r->inherited) != DN_OK)
        s = evo_failed(DN_ERR_ARG, "inheritance");
    if (s == DN_OK && evo_mutation_is_morph(o->mutation)) s = morph(c, child, pnet, parent, data, o);
    dn_network_free(pnet);
    return s;
}

static dn_status build(eval_ctx *c, const evo_genome *child, const evo_genome *parent, const void *pw, size_t pws,
                       const evo_data *data, const evo_eval_options *o, evo_result *r)
{
    double t0 = dn_time_now();
    dn_parse_options po = {.batch = o->batch > 0 ? o->batch : 0, .seed = o->seed, .quiet = 1};
    DN_TRY(build_net(child, "child", &po, &c->net));
    r->params = dn_network_param_count(c->net);
    r->flops = dn_network_flops(c->net);
    if (c->net->truths != data->classes || c->net->outputs != data->classes)
        return evo_fail(DN_ERR_SHAPE, "the network has %d outputs but the data has %d classes",
                             c->net->outputs, data->classes);
    r->inherited.initialised = param_layers(c->net);
    if (o->inherit && parent && pw) DN_TRY(inherit_from(c, child, parent, pw, pws, data, o, r));
    r->build_seconds = dn_time_now() - t0;
    return DN_OK;
}

/* ------------------------------------------------------------ train */

static dn_status check_weights_finite(const dn_network *net, int steps)
{
    for (int i = 0; i < net->n; ++i) {
        dn_param p[DN_MAX_PARAMS];
        int np = dn_layer_params(&net->layers[i], p);
        for (int k = 0; k < np; ++k)
            if (!all_finite(p[k].data, p[k].n))
                return evo_fail(DN_ERR_NUMERIC, "training diverged: layer %d (%s) has NaN or Inf %s after %d "
                                     "steps", i, dn_layer_type_name(net->layers[i].type), p[k].name, steps);
    }
    return DN_OK;
}

static dn_status start_loader(eval_ctx *c, const evo_data *data, const evo_eval_options *o, int batch)
{
    dn_loader_options lo;
    memset(&lo, 0, sizeof lo);
    dn_loader_options_from_network(&lo, c->net);
    lo.split = &data->train;
    lo.batch = batch;
    evo_augment(&lo, &data->config, o->augment, o->erase);
    lo.seed = o->seed;
    c->X = malloc((size_t)batch * c->net->inputs * sizeof(float));
    c->Y = malloc((size_t)batch * data->classes * sizeof(float));
    if (!c->X || !c->Y) return evo_fail(DN_ERR_NOMEM, "out of memory for a training batch of %d", batch);
    if (dn_loader_start(&lo, &c->ld) != DN_OK) return dn_fail_context(DN_ERR_DATA, "training data");
    return DN_OK;
}

void evo_set_rate(dn_network *net, int schedule, float peak, int i, int n)
{
    if (schedule == EVO_SCHEDULE_CFG) return;
    net->policy = DN_POLICY_CONSTANT;
    net->burn_in = 0;
    net->learning_rate = schedule == EVO_SCHEDULE_COSINE ? evo_cosine_rate(peak, i, n) : peak;
}

static dn_status train(eval_ctx *c, const evo_data *data, const evo_eval_options *o, evo_result *r)
{
    double t0 = dn_time_now();
    int batch = c->net->batch * c->net->subdivisions;
    if (o->steps > 0) DN_TRY(start_loader(c, data, o, batch));
    float window[LOSS_WINDOW] = {0};
    float peak = c->net->learning_rate;
    for (int i = 0; i < o->steps; ++i) {
        float loss;
        evo_set_rate(c->net, o->schedule, peak, i, o->steps);
        if (dn_loader_next(c->ld, c->X, c->Y, NULL) != DN_OK) return dn_fail_context(DN_ERR_DATA, "training data");
        dn_status s = dn_network_train(c->net, c->X, c->Y, batch, &loss);
        if (s != DN_OK) return s;
        window[i % LOSS_WINDOW] = loss;
        r->steps = i + 1;
    }
    int nw = r->steps < LOSS_WINDOW ? r->steps : LOSS_WINDOW;
    float sum = 0;
    for (int i = 0; i < nw; ++i) sum += window[i];
    r->loss = nw ? sum / (float)nw : 0;
    r->seen = c->net->seen;
    if (dn_network_pull(c->net) != DN_OK) return DN_ERR_GPU;   /* trained on a GPU */
    DN_TRY(check_weights_finite(c->net, r->steps));
    r->train_seconds = dn_time_now() - t0;
    return DN_OK;
}

/* ------------------------------------------------------------ evaluate */

static dn_status validate(eval_ctx *c, const evo_data *data, const evo_eval_options *o, evo_result *r)
{
    double t0 = dn_time_now();
    dn_split part = data->holdout;   /* the holdout is shuffled: its first images are a random sample */
    if (o->val_images > 0 && o->val_images < part.n) part.n = o->val_images;
    DN_TRY(evo_split_accuracy(c->net, &part, &r->accuracy));
    r->val_images = part.n;
    if (dn_weights_save_memory(c->net, &r->weights, &r->weights_size) != DN_OK)
        return dn_fail_context(DN_ERR_NOMEM, "saving the trained weights");
    r->eval_seconds = dn_time_now() - t0;
    return DN_OK;
}

/* ------------------------------------------------------------ latency */

#define LATENCY_RUNS 5   /* timed forward passes per batch size; the median counts */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of LATENCY_RUNS inference passes (after one untimed) over X. */
static dn_status time_forward(dn_network *net, const float *X, double *median)
{
    double t[LATENCY_RUNS];
    DN_TRY(dn_network_forward(net, X, NULL, 0));
    for (int k = 0; k < LATENCY_RUNS; ++k) {
        double t0 = dn_time_now();
        DN_TRY(dn_network_forward(net, X, NULL, 0));
        t[k] = dn_time_now() - t0;
    }
    qsort(t, LATENCY_RUNS, sizeof t[0], cmp_double);
    *median = t[LATENCY_RUNS / 2];
    return DN_OK;
}

/* What a deployed model costs per image: the trained network, rebuilt on the
 * CPU, timed on holdout images with o->latency_threads compute threads, at
 * batch 1 (latency_ms) and at the evaluation's batch (latency_batch_ms, per
 * image); the median of LATENCY_RUNS passes after a warm-up. The threads are
 * process-wide: with several workers the others' work shares the CPU, which
 * makes the figures noisier (one worker gives the cleanest). */
static dn_status measure_latency(const evo_genome *child, const evo_data *data, const evo_eval_options *o,
                                 evo_result *r)
{
    dn_parse_options po = {.batch = 1, .seed = 1, .quiet = 1};
    dn_network *net = NULL;
    DN_TRY(build_net(child, "child", &po, &net));
    int big = o->batch > 1 ? o->batch : 1, threads = dn_threads();
    float *X = malloc((size_t)big * net->inputs * sizeof(float));
    dn_status s = X ? dn_weights_load_memory(net, r->weights, r->weights_size, "trained weights")
                    : evo_fail(DN_ERR_NOMEM, "out of memory for the latency's images");
    for (int j = 0; s == DN_OK && j < big; ++j)
        if (dn_split_eval_input(&data->holdout, j % data->holdout.n, net->w, net->h, net->c,
                                X + (size_t)j * net->inputs) != DN_OK)
            s = dn_fail_context(DN_ERR_DATA, "the latency's images");
    dn_set_threads(o->latency_threads);
    double one = 0, many = 0;
    if (s == DN_OK) s = time_forward(net, X, &one);
    if (s == DN_OK) s = dn_network_set_batch(net, big);
    if (s == DN_OK) s = time_forward(net, X, &many);
    dn_set_threads(threads);
    if (s == DN_OK) {
        r->latency_ms = (float)(1e3 * one);
        r->latency_batch_ms = (float)(1e3 * many / big);
    }
    free(X);
    dn_network_free(net);
    return s;
}

static void ctx_free(eval_ctx *c)
{
    if (c->ld) dn_loader_stop(c->ld);
    dn_network_free(c->net);
    free(c->X);
    free(c->Y);
}

void evo_evaluate(const evo_genome *child, const evo_genome *parent, const void *parent_weights,
                  size_t parent_weights_size, const evo_data *data, const evo_eval_options *o, evo_result *r)
{
    if (!r) return;
    memset(r, 0, sizeof *r);
    eval_ctx c;
    memset(&c, 0, sizeof c);
    dn_status s = child && data && o ? DN_OK : evo_fail(DN_ERR_ARG, "evo_evaluate: no child, data or options");
    if (s == DN_OK) dn_set_threads(o->threads);
    if (s == DN_OK) s = build(&c, child, parent, parent_weights, parent_weights_size, data, o, r);
    if (s == DN_OK && o->gpu > 0 && (s = dn_network_to_gpu(c.net, o->gpu - 1)) != DN_OK)
        s = s;   /* out of device memory: a failed individual */
    if (s == DN_OK) s = train(&c, data, o, r);
    if (s == DN_OK) s = validate(&c, data, o, r);
    ctx_free(&c);
    if (s == DN_OK && o->latency_threads > 0) s = measure_latency(child, data, o, r);
    if (s == DN_OK) { r->outcome = EVO_OK; return; }
    r->outcome = EVO_FAILED;
    r->diverged = s == DN_ERR_NUMERIC;
    snprintf(r->reason, sizeof r->reason, "%s", *evo_last_error() ? evo_last_error() : dn_status_name(s));
    r->accuracy = 0;
    free(r->weights);
    r->weights = NULL;
    r->weights_size = 0;
}

void evo_result_free(evo_result *r)
{
    if (!r) return;
    free(r->weights);
    r->weights = NULL;
    r->weights_size = 0;
}
