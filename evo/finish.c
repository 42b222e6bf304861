/*
 * finish.c — final training of a search's winner: the model a user gets.
 *
 * The search ranks children after short training on part of the training
 * images; the winner (evo_state_best_ever: the best of the highest fidelity
 * level) is then trained once more, longer, as one would train a hand-designed
 * model: on ALL training images (the validation holdout included), one
 * warm-up + cosine cycle (evo_cosine_rate) from the genome's learning_rate
 * over the whole run, random flip and 2-pixel crop as -augment says (auto:
 * when the winner overfits, decide_augment),
 * starting from the winner's inherited weights or from scratch, at its
 * searched width or with every hidden layer wider (-final-width: then from
 * scratch; auto picks the width by measured speed, choose_width). Its test
 * accuracy is measured once, at the end, on the .data's valid= split (the
 * test set, read by nothing else), and `darknet evolve export DIR` exports
 * this model.
 *
 * Length: with -hours, whatever of the budget the search left (at least the
 * -final share): the steps are set after a short measurement of this
 * machine's speed on the winner and refitted at every checkpoint to the pace
 * so far (the cosine then follows the new length); without -hours,
 * -final-epochs epochs.
 *
 * The front (-objective costs, -final-front K): after the winner, up to K-1
 * cheaper archived models are trained the same way, the k-th the top-ranked
 * within 1/sqrt(10)^k of the winner's first cost, into DIR/final/front/ID/
 * (same files). Timed, the winner gets half of the time and the others share
 * the other half. `finish DIR -max-flops F` trains one model of a budget
 * there too.
 *
 * DIR/final/ and DIR/final/front/ID/ (every file written atomically):
 *   model.cfg           the network trained (annotated cfg, as individuals/)
 *   progress.json       {id, step, steps, seconds, from, augment, width, seed}
 *   curve.tsv           step and mean training loss, up to 64 points
 *   checkpoint.weights  the weights after `step` steps (every 30 s or 10% of the steps)
 *   final.weights       the finished model
 *   result.json         {id, steps, seconds, test_accuracy, images, val_accuracy,
 *                        from, augment, width, params, flops}: written last, so
 *                        its presence means "finished"
 * A kill at any moment loses at most the steps since the last checkpoint:
 * -resume (or `darknet evolve finish DIR`) continues from it, with the same
 * schedule (the data order after a resume differs from an unbroken run's).
 */
#include "evo_internal.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECKPOINT_SECONDS 30.0
#define MEASURE_STEPS 20        /* steps timed before the length of a timed run is fixed */
#define CURVE_POINTS EVO_CURVE_POINTS
#define TEST_BATCH 100
#define AUTO_AUGMENT_GAP 0.02    /* -augment auto: train - validation accuracy at which final training augments */
#define RETRIES 3               /* a diverged final training starts again at half the peak rate, this often */

typedef struct {
    int id, step, steps;        /* steps 0: not fixed yet (timed run, measuring) */
    int evals;                  /* the search's evaluations when it started */
    double seconds;             /* spent so far, over sessions */
    int scratch, augment;
    float erase;                /* with augment: random erasing's probability */
    float lr;                   /* > 0: the peak rate asked for (finish -lr); 0: the genome's */
    double decay;               /* > 0: the weight decay asked for (finish -decay); 0: the genome's */
    float lr_scale;             /* the peak rate is multiplied by this (halved after a divergence) */
    double width;               /* every hidden layer's width x this (1: as searched) */
    uint64_t seed;
    float curve_loss[CURVE_POINTS]; int curve_step[CURVE_POINTS]; int ncurve;
} progress;

/* A file of a final-training folder (DIR/final or DIR/final/front/ID). */
static char *path_in(const char *fdir, const char *name)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", fdir, name) < 0 ? NULL : p;
}

/* DIR/final (front_id < 0: the winner's) or DIR/final/front/ID; malloc'd. */
static char *final_folder(const char *dir, int front_id)
{
    char *p = NULL;
    int n = front_id < 0 ? asprintf(&p, "%s/final", dir) : asprintf(&p, "%s/final/front/%d", dir, front_id);
    return n < 0 ? NULL : p;
}


/* ------------------------------------------------------------ progress.json */

static dn_status save_curve(const char *fdir, const progress *p)
{
    evo_text t = {0};
    evo_text_add(&t, "# step\tmean training loss (final training of individual %d)\n", p->id);
    for (int i = 0; i < p->ncurve; ++i) evo_text_add(&t, "%d\t%.5g\n", p->curve_step[i], p->curve_loss[i]);
    char *path = path_in(fdir, "curve.tsv");
    dn_status s = t.failed || !path ? evo_fail(DN_ERR_NOMEM, "out of memory") : dn_write_file_atomic(path, t.s, t.n);
    free(path);
    evo_text_free(&t);
    return s;
}

static int read_curve(const char *fdir, int *step, float *loss, int max)
{
    char *path = path_in(fdir, "curve.tsv"), *text = NULL, *save = NULL;
    int n = 0;
    if (!path || dn_read_file(path, &text, NULL) != DN_OK) { free(path); return 0; }
    for (char *l = strtok_r(text, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save))
        if (*l != '#' && sscanf(l, "%d %f", &step[n], &loss[n]) == 2 && isfinite(loss[n])) ++n;
    free(text);
    free(path);
    return n;
}

int evo_final_curve(const char *dir, int *step, float *loss, int max)
{
    char *fdir = final_folder(dir, -1);
    int n = fdir ? read_curve(fdir, step, loss, max) : 0;
    free(fdir);
    return n;
}

/* The model's size, written with the result. */
typedef struct { size_t params; double flops; } model_size;

static dn_status save_progress(const char *fdir, const progress *p, const char *name, float test, int images,
                               float val, const model_size *size)
{
    evo_json_writer w;
    evo_json_begin(&w);
    evo_json_int(&w, "id", p->id);
    evo_json_int(&w, "evals", p->evals);
    evo_json_int(&w, "step", p->step);
    evo_json_int(&w, "steps", p->steps);
    evo_json_num(&w, "seconds", p->seconds);
    evo_json_str(&w, "from", p->scratch ? "scratch" : "inherit");
    evo_json_int(&w, "augment", p->augment);
    evo_json_num(&w, "erase", p->erase);
    evo_json_num(&w, "lr", p->lr);
    evo_json_num(&w, "lr_scale", p->lr_scale);
    evo_json_num(&w, "decay", p->decay);
    evo_json_num(&w, "width", p->width);
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seed);
    evo_json_str(&w, "seed", seed);
    if (images > 0) {
        evo_json_num(&w, "test_accuracy", test);
        evo_json_int(&w, "images", images);
        evo_json_num(&w, "val_accuracy", val);
    }
    if (size) {
        evo_json_num(&w, "params", (double)size->params);
        evo_json_num(&w, "flops", size->flops);
    }
    char *line = NULL, *path = path_in(fdir, name);
    size_t len = 0;
    dn_status s = path ? evo_json_end(&w, &line, &len) : evo_fail(DN_ERR_NOMEM, "out of memory");
    if (s == DN_OK) s = save_curve(fdir, p);
    if (s == DN_OK) s = dn_write_file_atomic(path, line, len);
    free(line);
    free(path);
    return s;
}

/* An optional number of a JSON object; absent or not a number: def. */
static double num_or(const evo_json_object *o, const char *key, double def)
{
    const evo_json_field *f = evo_json_get(o, key);
    return f && f->type == EVO_JSON_NUMBER ? f->num : def;
}

static dn_status load_progress(const char *fdir, const char *name, progress *p, float *test, int *images,
                               model_size *size)
{
    char *path = path_in(fdir, name), *text = NULL;
    size_t n = 0;
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status s = dn_read_file(path, &text, &n);
    evo_json_object o;
    memset(&o, 0, sizeof o);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) --n;
    if (s == DN_OK && evo_json_parse(text, n, &o) != DN_OK) s = evo_fail(DN_ERR_PARSE, "%s: %s", path, evo_last_error());
    if (s == DN_OK) {
        const evo_json_field *f = evo_json_get(&o, "seed");
        memset(p, 0, sizeof *p);
        p->id = (int)num_or(&o, "id", -1);
        p->evals = (int)num_or(&o, "evals", 0);
        p->step = (int)num_or(&o, "step", 0);
        p->steps = (int)num_or(&o, "steps", 0);
        p->seconds = num_or(&o, "seconds", 0);
        p->augment = (int)num_or(&o, "augment", 0);
        p->erase = (float)num_or(&o, "erase", 0);
        p->lr = (float)num_or(&o, "lr", 0);
        p->decay = num_or(&o, "decay", 0);
        p->lr_scale = (float)num_or(&o, "lr_scale", 1);
        p->width = num_or(&o, "width", 1);
        const evo_json_field *from = evo_json_get(&o, "from");
        p->scratch = from && from->type == EVO_JSON_STRING && !strcmp(from->str, "scratch");
        p->seed = f && f->type == EVO_JSON_STRING ? strtoull(f->str, NULL, 10) : 1;
        p->ncurve = read_curve(fdir, p->curve_step, p->curve_loss, CURVE_POINTS);
        if (test) *test = (float)num_or(&o, "test_accuracy", 0);
        if (images) *images = (int)num_or(&o, "images", 0);
        if (size) {
            size->params = (size_t)num_or(&o, "params", 0);
            size->flops = num_or(&o, "flops", 0);
        }
        if (p->id < 0 || p->step < 0 || p->steps < 0 || (p->steps && p->step > p->steps) ||
            !(p->lr >= 0) || !(p->decay >= 0 && p->decay < 1) || !(p->erase >= 0 && p->erase <= 1) ||
            !(p->lr_scale > 0 && p->lr_scale <= 1) ||
            !(p->width >= 1 && p->width <= EVO_MAX_WIDTH))
            s = evo_fail(DN_ERR_DATA, "%s: id, step, steps, decay, erase, lr_scale or width out of range", path);
    }
    evo_json_object_free(&o);
    free(text);
    free(path);
    return s;
}

/* fdir/result.json into *info (done 0: absent). */
static dn_status read_result(const char *fdir, evo_final_info *info)
{
    memset(info, 0, sizeof *info);
    char *path = fdir ? path_in(fdir, "result.json") : NULL;
    int done = path && evo_file_exists(path);
    free(path);
    if (!done) return DN_OK;
    progress p;
    model_size size;
    DN_TRY(load_progress(fdir, "result.json", &p, &info->test_accuracy, &info->images, &size));
    info->done = 1;
    info->id = p.id;
    info->evals = p.evals;
    info->steps = p.steps;
    info->seconds = p.seconds;
    info->scratch = p.scratch;
    info->augment = p.augment;
    info->erase = p.erase;
    info->lr_scale = p.lr_scale;
    info->decay = p.decay;
    info->width = p.width;
    info->params = size.params;
    info->flops = size.flops;
    return DN_OK;
}

dn_status evo_final_read(const char *dir, evo_final_info *info)
{
    char *fdir = dir ? final_folder(dir, -1) : NULL;
    dn_status s = read_result(fdir, info);
    free(fdir);
    return s;
}

dn_status evo_final_read_of(const char *dir, int id, evo_final_info *info, char **folder)
{
    if (folder) *folder = NULL;
    char *fdir = dir ? final_folder(dir, -1) : NULL;
    dn_status s = read_result(fdir, info);
    if (s == DN_OK && !(info->done && info->id == id)) {   /* not the winner's: its own front folder */
        free(fdir);
        fdir = final_folder(dir, id);
        s = read_result(fdir, info);
        if (s == DN_OK && info->done && info->id != id) memset(info, 0, sizeof *info);
    }
    if (s == DN_OK && info->done && folder) { *folder = fdir; fdir = NULL; }
    free(fdir);
    return s;
}

/* ------------------------------------------------------------ the model */

/* One attempt at the final training: a retry after a divergence starts
 * afresh at a lower rate and keeps the seconds the failed attempts spent. */
typedef struct {
    int restart;               /* 1: do not continue progress.json */
    float lr_scale;            /* with restart: the new attempt's */
    double spent;              /* seconds spent so far (out: after this attempt) */
    double width;              /* > 0: the width an earlier attempt chose (a retry keeps it) */
} attempt;

typedef struct {
    const char *fdir;          /* DIR/final or DIR/final/front/ID */
    int evals;                 /* the search's evaluations so far */
    const evo_options *o;
    const evo_finish_options *fo;
    FILE *log;
    dn_data_config dc;
    dn_split train, test;
    dn_network *net;
    dn_loader *ld;
    float *X, *Y;
    char *cfg;                 /* annotated cfg of the model */
} finish_ctx;

/* The individual's annotated cfg with every hidden layer `width` times as
 * wide, checked against the search's limits. A width that breaks a shape or
 * a limit is an error saying so. */
static dn_status widened_cfg(evo_store *st, const evo_options *o, int id, double width, char **cfg)
{
    char *text = NULL;
    evo_genome g, wide;
    memset(&g, 0, sizeof g);
    memset(&wide, 0, sizeof wide);
    *cfg = NULL;
    dn_status s = evo_store_load_individual(st, id, &text, NULL, NULL);
    if (s == DN_OK) s = evo_genome_parse(text, "the final model", &g);
    if (s == DN_OK) s = evo_genome_widen(&g, width, &wide);
    if (s == DN_OK) s = evo_genome_check(&wide, &o->limits, NULL);
    if (s == DN_OK) s = evo_genome_emit(&wide, 1, cfg);
    if (s != DN_OK) s = evo_fail(s, "individual %d at width x%g: %s", id, width, evo_last_error());
    evo_genome_free(&g);
    evo_genome_free(&wide);
    free(text);
    return s;
}

/* An annotated cfg with [net] decay= set (the model.cfg written then says
 * what was trained). */
static dn_status with_decay(char **cfg, double decay)
{
    evo_genome g;
    DN_TRY(evo_genome_parse(*cfg, "the final model", &g));
    char value[32], *out = NULL;
    snprintf(value, sizeof value, "%g", decay);
    dn_status s = evo_net_set(&g, "decay", value);
    if (s == DN_OK) s = evo_genome_emit(&g, 1, &out);
    evo_genome_free(&g);
    if (s == DN_OK) {
        free(*cfg);
        *cfg = out;
    }
    return s;
}

/* The winner's (or -id's) cfg at the width p->width, or the cell template
 * scaled with its cells; p->decay > 0 replaces its weight decay. */
static dn_status model_cfg(finish_ctx *c, evo_store *st, const evo_individual *v, const progress *p)
{
    dn_status s;
    if (c->fo->filters > 0 || c->fo->cells > 0) s = evo_scaled_cfg(st, v->id, c->fo->filters, c->fo->cells, &c->cfg);
    else if (p->width > 1) s = widened_cfg(st, c->o, v->id, p->width, &c->cfg);
    else s = evo_store_load_individual(st, v->id, &c->cfg, NULL, NULL);
    return s == DN_OK && p->decay > 0 ? with_decay(&c->cfg, p->decay) : s;
}

/* The network of an annotated cfg (genome annotations dropped). */
static dn_status parse_network(const char *cfg, int batch, uint64_t seed, dn_network **net)
{
    evo_genome g;
    DN_TRY(evo_genome_parse(cfg, "the final model", &g));
    char *plain = NULL;
    dn_status s = evo_genome_emit(&g, 0, &plain);
    evo_genome_free(&g);
    dn_parse_options po = {.batch = batch, .seed = seed, .quiet = 1};
    if (s == DN_OK) s = dn_network_parse_string(plain, "the final model", &po, net);
    free(plain);
    return s;
}

static dn_status build_model(finish_ctx *c, evo_store *st, const evo_individual *v, progress *p)
{
    dn_status s = parse_network(c->cfg, c->o->batch, p->seed, &c->net);
    if (s != DN_OK) return s;
    char *ck = path_in(c->fdir, "checkpoint.weights");
    if (!ck) return evo_fail(DN_ERR_NOMEM, "out of memory");
    if (p->step > 0 && evo_file_exists(ck)) s = dn_weights_load(c->net, ck);
    else if (!p->scratch) {
        void *w = NULL;
        size_t wn = 0;
        s = evo_store_load_individual(st, v->id, NULL, &w, &wn);
        if (s == DN_OK) s = dn_weights_load_memory(c->net, w, wn, "the winner's weights");
        free(w);
        p->step = 0;
    } else {
        p->step = 0;
    }
    free(ck);
    return s;
}

static dn_status load_data(finish_ctx *c)
{
    DN_TRY(dn_data_config_read(c->o->data_path, &c->dc));
    dn_status s = dn_split_load(&c->dc, 0, c->o->max_train > 0 ? c->o->max_train : 0, &c->train);
    return s == DN_OK ? DN_OK : dn_fail_context(s, "%s", c->o->data_path);
}

static dn_status check_classes(const finish_ctx *c)
{
    if (c->net->outputs != c->dc.classes)
        return evo_fail(DN_ERR_SHAPE, "the final model has %d outputs but the data has %d classes", c->net->outputs,
                        c->dc.classes);
    return DN_OK;
}

/* ------------------------------------------------------------ -final-width auto */

/* The search ranks architectures after minutes of training, so it favours
 * models that learn fast: on a CPU, small ones (the trivial seed's winners
 * have under 20k parameters and reach 75 epochs in a 36-minute final
 * training). With -final-width auto a timed final training trains the winner
 * at the widest of WIDTHS (evo_genome_widen, from scratch) whose training
 * still gets AUTO_WIDTH_EPOCHS epochs in the time left, each width's speed
 * measured here on this machine; the winner as searched (inheriting its
 * weights as -final-from says) when even x2 would get fewer. A new training
 * from scratch gives up the weights the search trained, so it must buy a much
 * larger model: no step between 1 and 2 (seeded with fashion-small.cfg, whose
 * lineage's weights are worth more than a slightly wider model from scratch,
 * an hour's search leaves 18 minutes in which x1.25 would still get 20 epochs).
 * Not for models of a Pareto front (their cost is what the user chose them
 * by) nor for -filters/-cells, which set the size themselves. */
static const double WIDTHS[] = {1, 2, 2.5, 3, 4};
#define AUTO_WIDTH_EPOCHS 20.0
#define WIDTH_WARM_STEPS 2      /* untimed: first-step allocations */
#define WIDTH_TIMED_STEPS 6

static int auto_width(const finish_ctx *c)
{
    int costs = 0;
    return c->fo->width == EVO_WIDTH_AUTO && c->fo->seconds > 0 && !c->fo->front && c->fo->filters <= 0 &&
           c->fo->cells <= 0 && evo_options_costs(c->o, &costs) == DN_OK && !costs;
}

/* Seconds per training step of the network of cfg on device (-1: the CPU),
 * timed on random images: the cost of a step does not depend on them. */
static dn_status seconds_per_step(const char *cfg, int batch, uint64_t seed, int device, double *per_step)
{
    dn_network *net = NULL;
    DN_TRY(parse_network(cfg, batch, seed, &net));
    int n = net->batch * net->subdivisions;
    float *X = malloc((size_t)n * net->inputs * sizeof *X), *Y = calloc((size_t)n * net->outputs, sizeof *Y);
    dn_status s = X && Y ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory for a batch of %d", n);
    uint64_t rng = seed | 1;
    for (size_t i = 0; s == DN_OK && i < (size_t)n * net->inputs; ++i) X[i] = dn_rand_uniform(&rng, 0, 1);
    for (int i = 0; s == DN_OK && i < n; ++i) Y[(size_t)i * net->outputs + i % net->outputs] = 1;
    if (s == DN_OK && device >= 0) s = dn_network_to_gpu(net, device);
    double t0 = 0;
    for (int i = 0; s == DN_OK && i < WIDTH_WARM_STEPS + WIDTH_TIMED_STEPS; ++i) {
        if (i == WIDTH_WARM_STEPS) t0 = dn_time_now();
        float loss;
        s = dn_network_train(net, X, Y, n, &loss);
    }
    if (s == DN_OK) s = dn_network_pull(net);   /* a device's queue drained: the steps are done */
    if (s == DN_OK) *per_step = (dn_time_now() - t0) / WIDTH_TIMED_STEPS;
    free(X);
    free(Y);
    dn_network_free(net);
    return s;
}

static dn_status choose_width(finish_ctx *c, evo_store *st, const evo_individual *v, progress *p, int device,
                              double seconds_left)
{
    double t0 = dn_time_now();
    dn_status s = DN_OK;
    p->width = 1;
    if (c->log) fprintf(c->log, "final: -final-width auto: the widest with %.0f epochs in the %.0f s left:", AUTO_WIDTH_EPOCHS,
                        seconds_left);
    for (size_t i = 0; s == DN_OK && i < sizeof WIDTHS / sizeof WIDTHS[0]; ++i) {
        char *cfg = NULL;
        dn_status w = WIDTHS[i] > 1 ? widened_cfg(st, c->o, v->id, WIDTHS[i], &cfg)
                                    : evo_store_load_individual(st, v->id, &cfg, NULL, NULL);
        double per = 0;
        if (w == DN_OK) w = seconds_per_step(cfg, c->o->batch, p->seed, device, &per);
        free(cfg);
        if (w != DN_OK) {   /* a limit, a shape or the device's memory: no wider */
            if (WIDTHS[i] == 1) s = w;
            else if (c->log) fprintf(c->log, " x%g: %s;", WIDTHS[i], evo_last_error());
            break;
        }
        double epochs = (seconds_left - (dn_time_now() - t0)) / per * c->o->batch / c->train.n;
        if (c->log) fprintf(c->log, " x%g %.0f ms/step %.1f epochs;", WIDTHS[i], 1000 * per, epochs);
        if (epochs < AUTO_WIDTH_EPOCHS && WIDTHS[i] > 1) break;
        p->width = WIDTHS[i];
    }
    p->seconds += dn_time_now() - t0;
    if (s == DN_OK && c->log) {
        fprintf(c->log, " x%g\n", p->width);
        fflush(c->log);
    }
    return s;
}

static dn_status start_loader(finish_ctx *c, const progress *p)
{
    dn_loader_options lo;
    memset(&lo, 0, sizeof lo);
    dn_loader_options_from_network(&lo, c->net);
    int batch = c->net->batch * c->net->subdivisions;
    lo.split = &c->train;
    lo.batch = batch;
    evo_augment(&lo, &c->dc, p->augment, p->erase);
    lo.seed = p->seed ^ (uint64_t)(p->step + 1) * 0x9E3779B97F4A7C15ull;   /* a resumed run draws anew */
    c->X = malloc((size_t)batch * c->net->inputs * sizeof(float));
    c->Y = malloc((size_t)batch * c->dc.classes * sizeof(float));
    if (!c->X || !c->Y) return evo_fail(DN_ERR_NOMEM, "out of memory for a training batch of %d", batch);
    if (dn_loader_start(&lo, &c->ld) != DN_OK) return dn_fail_context(DN_ERR_DATA, "training data");
    return DN_OK;
}

/* -augment auto: flip + crop only for a winner that overfits. Augmentation
 * is a regulariser: it pays when a model can memorise its training images and
 * costs accuracy when it underfits (the small nets grown from the trivial
 * seed lost 1.4 to 4.7 points with it at the same time; fashion-small.cfg
 * gains from it over long training). The winner's search weights are scored,
 * as the holdout is, on as many of the images it trained on (the search's
 * training part) as the holdout has: AUTO_AUGMENT_GAP or more above its
 * validation accuracy, and at least two standard errors of that difference
 * (so that a small holdout's noise is not read as overfitting), means it
 * overfits. */
static dn_status decide_augment(finish_ctx *c, evo_store *st, const evo_individual *v, progress *p)
{
    char *cfg = NULL;
    void *w = NULL;
    size_t wn = 0;
    dn_network *net = NULL;
    evo_data d;
    dn_split sample;
    memset(&d, 0, sizeof d);
    memset(&sample, 0, sizeof sample);
    float train_acc = 0;
    dn_status s = evo_store_load_individual(st, v->id, &cfg, &w, &wn);
    if (s == DN_OK) s = parse_network(cfg, TEST_BATCH, p->seed, &net);
    if (s == DN_OK) s = dn_weights_load_memory(net, w, wn, "the winner's weights");
    if (s == DN_OK) s = evo_data_load(c->o->data_path, c->o->holdout, c->o->seed, c->o->max_train, &d);
    int n = d.holdout.n < d.train.n ? d.holdout.n : d.train.n;
    if (s == DN_OK) s = dn_split_slice(&d.train, 0, n, &sample);
    if (s == DN_OK) s = evo_split_accuracy(net, &sample, &train_acc);
    if (s == DN_OK) {
        double t = train_acc, val = v->accuracy, gap = t - val;
        int nv = v->val_images > 0 ? v->val_images : d.holdout.n;
        double se = sqrt(t * (1 - t) / n + val * (1 - val) / nv);   /* of the gap: two independent samples */
        double bar = fmax(AUTO_AUGMENT_GAP, 2 * se);
        p->augment = gap >= bar;
        if (c->log)
            fprintf(c->log, "final: -augment auto: individual %d scores %.2f%% on %d of its training images and "
                    "%.2f%% on %d validation images (%+.2f pp%s %.2f: 2 points or two standard errors): %s\n",
                    v->id, 100.0 * t, n, 100.0 * val, nv, 100.0 * gap, p->augment ? " >=" : " <", 100.0 * bar,
                    p->augment ? "it overfits, augmentation" : "no augmentation");
    }
    dn_split_free(&sample);
    evo_data_free(&d);
    dn_network_free(net);
    free(w);
    free(cfg);
    return s;
}

static dn_status checkpoint(finish_ctx *c, const progress *p)
{
    char *ck = path_in(c->fdir, "checkpoint.weights");
    if (!ck) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status s = dn_network_pull(c->net);
    if (s == DN_OK) s = dn_weights_save(c->net, ck);
    free(ck);
    if (s == DN_OK) s = save_progress(c->fdir, p, "progress.json", 0, 0, 0, NULL);
    return s;
}

/* Steps of a timed run once MEASURE_STEPS have been timed: what fits the time left. */
static int steps_for(double seconds_left, double per_step, int done)
{
    double n = done + (per_step > 0 ? seconds_left / per_step : 0);
    if (n < done + 1) n = done + 1;
    return n > 1e9 ? 1000000000 : (int)n;
}

static void add_curve(progress *p, int step, float loss)
{
    if (p->ncurve == CURVE_POINTS) {   /* keep every other point: the curve stays evenly spaced */
        for (int i = 0; i < CURVE_POINTS / 2; ++i) {
            p->curve_step[i] = p->curve_step[2 * i + 1];
            p->curve_loss[i] = p->curve_loss[2 * i + 1];
        }
        p->ncurve = CURVE_POINTS / 2;
    }
    p->curve_step[p->ncurve] = step;
    p->curve_loss[p->ncurve++] = loss;
}

static float peak_rate(const finish_ctx *c, const progress *p)
{
    return (p->lr > 0 ? p->lr : c->net->learning_rate) * p->lr_scale;
}

static dn_status train(finish_ctx *c, progress *p, double seconds_budget)
{
    int batch = c->net->batch * c->net->subdivisions;
    float peak = peak_rate(c, p), sum = 0;
    int nsum = 0, every = p->steps > 0 ? (p->steps / CURVE_POINTS > 1 ? p->steps / CURVE_POINTS : 1) : 50;
    double t0 = dn_time_now(), last_ck = t0, spent0 = p->seconds;
    int guess = p->steps > 0 ? p->steps : MEASURE_STEPS * 50;   /* the schedule's length while measuring */
    int step0 = p->step;
    while (p->steps == 0 || p->step < p->steps) {
        float loss;
        evo_set_rate(c->net, EVO_SCHEDULE_COSINE, peak, p->step, p->steps > 0 ? p->steps : guess);
        if (dn_loader_next(c->ld, c->X, c->Y, NULL) != DN_OK) return dn_fail_context(DN_ERR_DATA, "training data");
        DN_TRY(dn_network_train(c->net, c->X, c->Y, batch, &loss));
        ++p->step;
        sum += loss;
        if (++nsum == every) {
            if (p->ncurve == CURVE_POINTS) every *= 2;   /* add_curve keeps every other point */
            add_curve(p, p->step, sum / (float)nsum);
            sum = 0;
            nsum = 0;
        }
        double now = dn_time_now();
        p->seconds = spent0 + (now - t0);
        if (p->steps == 0 && p->step - step0 >= MEASURE_STEPS) {
            p->steps = steps_for(seconds_budget - p->seconds, (now - t0) / (p->step - step0), p->step);
            every = p->steps / CURVE_POINTS > 1 ? p->steps / CURVE_POINTS : 1;
            if (c->log) fprintf(c->log, "final: %d steps (%.1f epochs) fit the %.0f s left\n", p->steps,
                                (double)p->steps * batch / c->train.n, seconds_budget - p->seconds);
        }
        int tenth = p->steps / 10 > 1 ? p->steps / 10 : 1;
        if (p->steps > 0 && p->step < p->steps && (now - last_ck >= CHECKPOINT_SECONDS || p->step % tenth == 0)) {
            /* a timed run refits its length to the pace so far: the machine may be slower now than
             * while measuring (other work, thermal limits), and the budget is the user's */
            if (seconds_budget > 0)
                p->steps = steps_for(seconds_budget - p->seconds, (now - t0) / (p->step - step0), p->step);
            DN_TRY(checkpoint(c, p));
            last_ck = now;
            if (c->log) {
                fprintf(c->log, "final: step %d/%d  loss %.4f  (%.0f s)\n", p->step, p->steps, loss, p->seconds);
                fflush(c->log);
            }
        }
    }
    return dn_network_pull(c->net);
}

static dn_status test_accuracy(finish_ctx *c, float *acc, int *images)
{
    *images = 0;
    if (!c->dc.valid) return DN_OK;
    DN_TRY(dn_split_load(&c->dc, 1, 0, &c->test));
    DN_TRY(dn_network_set_batch(c->net, TEST_BATCH));
    *images = c->test.n;
    return evo_split_accuracy(c->net, &c->test, acc);
}

static dn_status finish_files(finish_ctx *c, progress *p, const evo_individual *v)
{
    char *wpath = path_in(c->fdir, "final.weights"), *cpath = path_in(c->fdir, "model.cfg");
    dn_status s = wpath && cpath ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
    if (s == DN_OK) s = dn_weights_save(c->net, wpath);
    float acc = 0;
    int images = 0;
    if (s == DN_OK) s = test_accuracy(c, &acc, &images);
    model_size size = {dn_network_param_count(c->net), dn_network_flops(c->net)};
    if (s == DN_OK) s = save_progress(c->fdir, p, "result.json", acc, images, v->accuracy, &size);
    if (s == DN_OK && c->log) {
        char aug[64];
        fprintf(c->log, "final: individual %d trained %d steps (%.1f epochs, %s, %s) in %.0f s\n", v->id, p->steps,
                (double)p->steps * c->o->batch / c->train.n, p->scratch ? "from scratch" : "from its weights",
                evo_augment_text(p->augment, p->erase, aug, sizeof aug), p->seconds);
        if (images > 0)
            fprintf(c->log, "final: test accuracy %.2f%% on %d images (search validation %.2f%%: a gap of %+.2f pp)\n",
                    100.0 * acc, images, 100.0 * v->accuracy, 100.0 * (v->accuracy - acc));
    }
    free(wpath);
    free(cpath);
    return s;
}

static void ctx_free(finish_ctx *c)
{
    if (c->ld) dn_loader_stop(c->ld);
    dn_network_free(c->net);
    dn_split_free(&c->train);
    dn_split_free(&c->test);
    dn_data_config_free(&c->dc);
    free(c->X);
    free(c->Y);
    free(c->cfg);
}

/* A progress.json of another model or setting is not continued. */
static int same_run(const progress *p, const evo_individual *v, const evo_finish_options *fo, int evals)
{
    double width = fo->width > 1 ? fo->width : 1;
    return p->id == v->id && p->evals == evals &&
           p->scratch == (fo->scratch || fo->filters > 0 || fo->cells > 0 || p->width > 1) &&
           (fo->width == EVO_WIDTH_AUTO || fabs(p->width - width) < 1e-9) &&
           (fo->augment == EVO_AUGMENT_AUTO || p->augment == fo->augment) && p->erase == fo->erase && p->lr == fo->lr &&
           p->decay == fo->decay;
}

static dn_status start_or_continue(finish_ctx *c, evo_store *st, const evo_individual *v, const attempt *a,
                                   int device, progress *p)
{
    char *pp = path_in(c->fdir, "progress.json");
    if (!pp) return evo_fail(DN_ERR_NOMEM, "out of memory");
    int have = evo_file_exists(pp);
    free(pp);
    progress old;
    if (!a->restart && have && load_progress(c->fdir, "progress.json", &old, NULL, NULL, NULL) == DN_OK &&
        same_run(&old, v, c->fo, c->evals) && old.steps > 0) {
        *p = old;
        if (c->log) fprintf(c->log, "final: continuing at step %d of %d\n", p->step, p->steps);
    } else {
        memset(p, 0, sizeof *p);
        p->id = v->id;
        p->evals = c->evals;
        p->augment = c->fo->augment;
        p->erase = c->fo->erase;
        p->seed = c->o->seed ^ 0xF1A1ull;
        p->lr = c->fo->lr;
        p->decay = c->fo->decay;
        p->lr_scale = a->restart ? a->lr_scale : 1;
        p->seconds = a->restart ? a->spent : 0;   /* a timed retry fits the time the failed attempts left */
        p->width = 1;
        if (a->width > 0) p->width = a->width;
        else if (auto_width(c)) DN_TRY(choose_width(c, st, v, p, device, c->fo->seconds - p->seconds));
        else if (c->fo->width > 1) p->width = c->fo->width;
        /* a new network (other cells, another width): no weights to start from */
        p->scratch = c->fo->scratch || c->fo->filters > 0 || c->fo->cells > 0 || p->width > 1;
    }
    DN_TRY(model_cfg(c, st, v, p));
    char *mpath = path_in(c->fdir, "model.cfg");
    dn_status s = mpath ? dn_make_parent_dirs(mpath) : evo_fail(DN_ERR_NOMEM, "out of memory");
    if (s == DN_OK) s = dn_write_file_atomic(mpath, c->cfg, strlen(c->cfg));
    free(mpath);
    return s;
}

/* The best ever (evo_ranks_above) whose cfg and weights are intact: a lost
 * individual's weights went to orphans/; the next best then, with a message. */
static int best_intact(const evo_store *st, const evo_state *state, FILE *log)
{
    char *skip = calloc((size_t)state->n + 1, 1);
    int b = -1;
    while (skip) {
        b = -1;
        for (int i = 0; i < state->n; ++i)
            if (!skip[i] && state->ind[i].outcome == EVO_OK && (b < 0 || evo_ranks_above(&state->ind[i], &state->ind[b])))
                b = i;
        if (b < 0 || evo_store_check_individual(st, state->ind[b].id) == DN_OK) break;
        if (log) fprintf(log, "final: the best, individual %d, has no intact files (%s); taking the next best\n",
                         state->ind[b].id, evo_last_error());
        skip[b] = 1;
    }
    free(skip);
    return b;
}

/* One attempt, into fdir: on device `device` (-1: the CPU). */
static dn_status finish_on(evo_store *st, const evo_options *o, const evo_state *state, const evo_finish_options *fo,
                           const evo_individual *v, const char *fdir, int device, attempt *a, FILE *log)
{
    finish_ctx c = {.fdir = fdir, .evals = state->evals, .o = o, .fo = fo, .log = log};
    progress p;
    memset(&p, 0, sizeof p);
    /* one model: every thread -threads allows (a search's workers may have left the process at fewer) */
    dn_set_threads(o->threads);
    dn_status s = load_data(&c);
    if (s == DN_OK) s = start_or_continue(&c, st, v, a, device, &p);
    if (s == DN_OK) s = build_model(&c, st, v, &p);
    if (s == DN_OK) s = check_classes(&c);
    if (s == DN_OK && p.augment == EVO_AUGMENT_AUTO) s = decide_augment(&c, st, v, &p);
    if (s == DN_OK && p.steps == 0 && fo->seconds <= 0) {
        double n = fo->epochs * c.train.n / (c.net->batch * c.net->subdivisions);
        p.steps = n < 1 ? 1 : n > 1e9 ? 1000000000 : (int)n;
    }
    if (s == DN_OK && log) {
        char aug[64];
        fprintf(log, "final: training individual %d (val %.2f%%, level %d) on all %d training images, %s, %s, ", v->id,
                100.0 * v->accuracy, v->rung, c.train.n, p.scratch ? "from scratch" : "from its weights",
                evo_augment_text(p.augment, p.erase, aug, sizeof aug));
        int threads = dn_threads();
        if (device < 0) fprintf(log, "%d thread%s, ", threads, threads == 1 ? "" : "s");
        if (p.width > 1)
            fprintf(log, "width x%g (%zu params, %.3g MFLOPs), ", p.width, dn_network_param_count(c.net),
                    dn_network_flops(c.net) / 1e6);
        if (p.lr > 0 || p.lr_scale < 1) fprintf(log, "peak learning rate %g, ", peak_rate(&c, &p));
        if (p.decay > 0) fprintf(log, "weight decay %g, ", p.decay);
        if (p.steps > 0) fprintf(log, "%d steps\n", p.steps);
        else fprintf(log, "%.0f s\n", fo->seconds);
        fflush(log);
    }
    if (s == DN_OK && device >= 0) s = dn_network_to_gpu(c.net, device);
    if (s == DN_OK) s = start_loader(&c, &p);
    if (s == DN_OK) s = train(&c, &p, fo->seconds);
    if (s == DN_OK && c.ld) { dn_loader_stop(c.ld); c.ld = NULL; }
    if (s == DN_OK) s = finish_files(&c, &p, v);
    a->spent = p.seconds;
    a->lr_scale = p.lr_scale;
    if (p.width >= 1) a->width = p.width;
    ctx_free(&c);
    return s;
}

/* The first device of -gpus, or -1 (the CPU). */
static int first_device(const evo_options *o)
{
    int dev[EVO_MAX_GPUS], n = 0;
    if (!o->gpus || !*o->gpus || dn_gpu_parse_list(o->gpus, dev, EVO_MAX_GPUS, &n) != DN_OK || n < 1) return -1;
    return dev[0];
}

/* Train v into fdir: on the first -gpus device (the CPU when it is full),
 * from the start again at half the peak rate after a divergence. */
static dn_status finish_individual(evo_store *st, const evo_options *o, const evo_state *state,
                                   const evo_finish_options *fo, const evo_individual *v, const char *fdir, FILE *log)
{
    int device = first_device(o);
    attempt a = {.lr_scale = 1};
    dn_status s = finish_on(st, o, state, fo, v, fdir, device, &a, log);
    if (s == DN_ERR_NOMEM && device >= 0) {   /* the device is full: the CPU goes on from the last checkpoint */
        if (log) fprintf(log, "final: out of memory on GPU %d (%s); continuing on the CPU\n", device, evo_last_error());
        device = -1;
        s = finish_on(st, o, state, fo, v, fdir, device, &a, log);
    }
    for (int retry = 1; s == DN_ERR_NUMERIC && retry <= RETRIES; ++retry) {
        /* a rate too high for long training: from the start again, at half the peak rate */
        if (log) fprintf(log, "final: %s; starting again at half the peak learning rate (x%g)\n", evo_last_error(),
                         a.lr_scale / 2);
        a.restart = 1;
        a.lr_scale /= 2;
        s = finish_on(st, o, state, fo, v, fdir, device, &a, log);
    }
    if (s == DN_ERR_NUMERIC)
        return evo_fail(s, "final training of individual %d diverged at every peak learning rate down to x%g: %s", v->id,
                        a.lr_scale, evo_last_error());
    return s == DN_OK ? DN_OK : evo_fail(s, "final training of individual %d: %s", v->id, evo_last_error());
}

dn_status evo_finish(evo_store *st, const evo_options *o, const evo_state *state, const evo_finish_options *fo,
                     FILE *log)
{
    if (!st || !o || !state || !fo) return evo_fail(DN_ERR_ARG, "evo_finish: NULL argument");
    const char *dir = evo_store_dir(st);
    int b = fo->id >= 0 ? -1 : best_intact(st, state, log);
    for (int i = 0; fo->id >= 0 && i < state->n; ++i)
        if (state->ind[i].id == fo->id && state->ind[i].outcome == EVO_OK) b = i;
    if (b < 0)
        return evo_fail(DN_ERR_ARG, "%s: no trained individual%s to finish", dir,
                        fo->id >= 0 ? " with that id" : " whose files are intact");
    char *fdir = final_folder(dir, fo->front ? state->ind[b].id : -1);
    dn_status s = fdir ? finish_individual(st, o, state, fo, &state->ind[b], fdir, log)
                       : evo_fail(DN_ERR_NOMEM, "out of memory");
    free(fdir);
    return s;
}

/* ------------------------------------------------------------ the front */

#define FRONT_STEP 3.1622776601683795   /* sqrt(10): the k-th cheaper model is within winner / FRONT_STEP^k */

/* The cheaper models of the front that final training takes besides the
 * winner (index w): for k = 1 .. front-1, the top-ranked archived model
 * whose first cost is at most the winner's / sqrt(10)^k, not taken yet,
 * with intact files. Indexes into state->ind; returns their count. */
static int front_members(const evo_store *st, const evo_options *o, const evo_state *state, int w, int front, int *idx)
{
    int costs = 0, n = 0;
    if (front <= 1 || evo_options_costs(o, &costs) != DN_OK || !costs) return 0;
    int cost = evo_first_cost(costs);
    double budget = evo_cost_of(&state->ind[w], cost);
    for (int k = 1; k < front; ++k) {
        budget /= FRONT_STEP;
        int best = -1;
        for (int i = 0; i < state->n; ++i) {
            const evo_individual *v = &state->ind[i];
            int taken = i == w;
            for (int j = 0; j < n; ++j) taken |= idx[j] == i;
            if (taken || !v->archived || v->outcome != EVO_OK || evo_cost_of(v, cost) > budget) continue;
            if (best < 0 || evo_ranks_above(v, &state->ind[best])) best = i;
        }
        if (best >= 0 && evo_store_check_individual(st, state->ind[best].id) == DN_OK) idx[n++] = best;
    }
    return n;
}

/* Train one cheaper model of the front unless its folder holds a finished
 * final training of this search's state; a divergence is a warning. */
static dn_status finish_member(evo_store *st, const evo_options *o, const evo_state *state,
                               const evo_finish_options *fo, const evo_individual *v, int *trained, FILE *log)
{
    char *fdir = final_folder(evo_store_dir(st), v->id);
    if (!fdir) return evo_fail(DN_ERR_NOMEM, "out of memory");
    evo_final_info fi;
    dn_status s = read_result(fdir, &fi);
    if (s == DN_OK && fi.done && fi.evals >= state->evals && fi.id == v->id) { free(fdir); return DN_OK; }
    if (s == DN_OK && fi.done) s = evo_final_set_aside_folder(fdir, log);   /* outdated: kept, trained anew */
    if (s == DN_OK) {
        if (log) fprintf(log, "final: the front: individual %d (%.4g MFLOPs, %zu params, val %.2f%%)\n", v->id,
                         v->flops / 1e6, v->params, 100.0 * v->accuracy);
        s = finish_individual(st, o, state, fo, v, fdir, log);
        if (s == DN_OK && trained) ++*trained;
    }
    if (s == DN_ERR_NUMERIC) {
        dn_warn("%s; export writes individual %d's search weights", evo_last_error(), v->id);
        s = DN_OK;
    }
    free(fdir);
    return s;
}

dn_status evo_finish_all(evo_store *st, const evo_options *o, const evo_state *state, const evo_finish_options *fo,
                         int front, int *trained, FILE *log)
{
    if (trained) *trained = 0;
    if (!st || !o || !state || !fo) return evo_fail(DN_ERR_ARG, "evo_finish_all: NULL argument");
    int w = best_intact(st, state, log);
    if (w < 0) return evo_fail(DN_ERR_ARG, "%s: no trained individual whose files are intact to finish", evo_store_dir(st));
    int *idx = malloc((size_t)(front > 1 ? front : 1) * sizeof *idx);
    if (!idx) return evo_fail(DN_ERR_NOMEM, "out of memory");
    int m = front_members(st, o, state, w, front, idx);
    evo_finish_options one = *fo;
    one.id = state->ind[w].id;
    one.front = 0;
    if (m > 0 && fo->seconds > 0) one.seconds = fo->seconds / 2;   /* the winner half, the others the rest */
    if (m > 0 && log) {
        fprintf(log, "final: the winner and %d cheaper model%s of the front:", m, m == 1 ? "" : "s");
        for (int j = 0; j < m; ++j) fprintf(log, " %d", state->ind[idx[j]].id);
        fprintf(log, "\n");
    }
    evo_final_info fi;
    dn_status s = evo_final_read(evo_store_dir(st), &fi), winner = DN_OK;
    char msg[1024] = "";
    if (s == DN_OK && !fi.done) {
        winner = evo_finish(st, o, state, &one, log);
        if (winner == DN_OK && trained) ++*trained;
        if (winner == DN_ERR_NUMERIC) snprintf(msg, sizeof msg, "%s", evo_last_error());
        else if (winner != DN_OK) s = winner;
    }
    one.front = 1;
    one.width = 1;   /* a cheaper model of the front keeps the cost it was chosen for */
    if (m > 0 && fo->seconds > 0) one.seconds = fo->seconds / (2.0 * m);
    for (int j = 0; s == DN_OK && j < m; ++j) {
        one.id = state->ind[idx[j]].id;
        s = finish_member(st, o, state, &one, &state->ind[idx[j]], trained, log);
    }
    free(idx);
    if (s == DN_OK && winner == DN_ERR_NUMERIC) return evo_fail(DN_ERR_NUMERIC, "%s", msg);
    return s;
}

void evo_finish_options_from(const evo_options *o, const evo_state *state, evo_finish_options *fo)
{
    memset(fo, 0, sizeof *fo);
    fo->id = -1;
    fo->scratch = o->final_from && !strcmp(o->final_from, "scratch");
    fo->augment = o->augment && !strcmp(o->augment, "none") ? 0 : o->augment && !strcmp(o->augment, "auto") ? EVO_AUGMENT_AUTO : 1;
    fo->erase = (float)o->erase;
    fo->decay = o->final_decay;
    fo->epochs = o->final_epochs;
    fo->width = evo_parse_width(o->final_width);
    if (o->hours > 0) {   /* what the search left, at least the share */
        double left = o->hours * 3600.0 - state->elapsed, share = o->hours * 3600.0 * o->final_share;
        fo->seconds = left > share ? left : share;
    }
}

dn_status evo_final_set_aside_folder(const char *folder, FILE *log)
{
    char to[4300];
    for (int k = 1; k < 10000; ++k) {
        snprintf(to, sizeof to, "%s.%d", folder, k);
        if (access(to, F_OK) == 0) continue;
        if (rename(folder, to) != 0) return evo_fail(DN_ERR_IO, "%s: cannot move it to %s: %s", folder, to, strerror(errno));
        if (log) fprintf(log, "final: the earlier final training is kept in %s\n", to);
        return DN_OK;
    }
    return evo_fail(DN_ERR_IO, "%s: no free name %s.K to keep it under", folder, folder);
}

dn_status evo_final_set_aside(const char *dir, FILE *log)
{
    char *fdir = final_folder(dir, -1);
    dn_status s = fdir ? evo_final_set_aside_folder(fdir, log) : evo_fail(DN_ERR_NOMEM, "out of memory");
    free(fdir);
    return s;
}

double evo_parse_width(const char *text)
{
    if (!text) return 0;
    if (!strcmp(text, "auto")) return EVO_WIDTH_AUTO;
    char *end = NULL;
    double k = strtod(text, &end);
    return end != text && !*end && k >= 1 && k <= EVO_MAX_WIDTH ? k : 0;
}
