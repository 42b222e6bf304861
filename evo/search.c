/*
 * search.c — the steady-state searches, one evaluation at a time:
 *
 *   tournament (Large-Scale Evolution, Real et al. 2017): two living
 *     individuals drawn at random, the worse dies (when the population is
 *     full), the better gets a mutated child;
 *   aging (Regularized Evolution, Real et al. 2019): S living individuals
 *     drawn at random, the best gets a mutated child, the oldest dies;
 *   random: every individual a fresh sample of the search space; the worst
 *     dies when the population is full (so the best so far stays).
 *
 * Two search spaces, chosen by the seed cfg. A plain cfg grows by the 11
 * mutations of Large-Scale Evolution from P copies of itself (random search:
 * the seed after 1-16 random mutations), children inheriting their parent's
 * weights. A template with [cell] sections is the NASNet space: P random
 * cell architectures, then children by exactly one of hidden-state, op or
 * identity mutation, trained from scratch (-inherit 0 unless asked).
 * The best individual ever evaluated keeps its weights when it dies, so it
 * can be exported.
 *
 * -workers N: N threads each run evaluations, sharing the state under one
 * lock, steady state as the papers (no generations, no waiting): a worker
 * plans its step (selection, mutation, a new id; the individual it kills
 * stops being selectable at once), trains its child without the lock, then
 * records it (the next evaluation number, the event line, the files). The
 * event log therefore stays gap-free and in completion order; a killed
 * process loses only the children in flight. With more than one worker the
 * interleaving (and so the log) depends on timing; -workers 1 is reproducible.
 *
 * Promotions (-rungs R > 1, asynchronous successive halving as ASHA, Li et
 * al. 2020): every child is a level-0 evaluation (-steps, scored on the first
 * -val-images of the holdout). Before each new child a worker looks, from the
 * top level down, for a living level-k individual among the best 1/eta of all
 * individuals ever scored at level k (minus those already promoted from k);
 * if there is one, it trains it further instead (steps x eta^k x (eta - 1)
 * more, so that level k means steps x eta^k in all, with a fresh warm-up +
 * cosine cycle), scores it on the whole holdout and records a "promotion"
 * event: the same individual, one level up. Promotions take evaluation
 * numbers and count against -evals and -hours like children; they draw
 * nothing from the RNG, so -workers 1 stays reproducible. Export, final
 * training and the report take the best of the highest level reached.
 *
 * All randomness flows from the search seed: selection and mutation draw from
 * state->rng (restored from the event log on resume); each evaluation gets a
 * seed derived from (search seed, child id). Only the event log's timing
 * fields differ between two runs with the same seed.
 */
#include "evo_internal.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MUTATE_TRIES 100

/* What one session of the search keeps besides the state. */
typedef struct {
    evo_store *st;
    const evo_options *o;
    evo_state *s;
    FILE *log;
    evo_data data;
    evo_genome seed;
    double t0;            /* session start (dn_time_now)            */
    double elapsed0;      /* search seconds before this session      */
    int cells;            /* the seed is a [cell] template            */
    unsigned ops;         /* cell searches: allowed ops               */
    int blocks;           /* cell searches: blocks per cell           */
    int inherit;          /* children start from their parent's weights */
    int threads;          /* compute threads per evaluation (0: as set)  */
    evo_mutation_set mutset;  /* growth searches: the mutations drawn      */
    evo_schedule schedule;    /* each evaluation's learning rate          */
    int augment;          /* flip + crop in the search's training (-augment all) */
    int costs;            /* -objective: EVO_COST_* bits beside accuracy (0: accuracy alone) */
    double stood;         /* -patience ended the search: how long its best had stood (-1: it did not) */
    double last_report;   /* dn_time_now() of the last live report (worker 0) */
    int report_warned;    /* a live report failed once: warned, not again */
    int promoting[64], npromoting;  /* ids whose promotion is in flight      */
    int gpu[EVO_MAX_GPUS], ngpus;   /* -gpus: worker w trains on gpu[w % ngpus] */
    int mpi;              /* MPI: worker w sends its children to rank w+1 */
    int ranks_left;       /* MPI: worker ranks not dropped             */
    pthread_mutex_t lock; /* guards s, the store's state and the log   */
    int inflight;         /* evaluations being trained right now        */
    dn_status error;      /* the first failure of the search machinery  */
    char error_msg[1024];
} search_ctx;

/* One planned step: who is born from whom, who dies. */
typedef struct {
    int parent;           /* id, -1: a copy of the seed              */
    int killed;           /* id, -1: nobody                          */
} step_plan;

/* ------------------------------------------------------------ small helpers */

/* Seed of one evaluation: weights init, dropout, data order. Never 0. */
static uint64_t eval_seed(uint64_t search_seed, int id)
{
    uint64_t state = search_seed ^ ((uint64_t)id * 0xD1B54A32D192ED03ull);
    uint64_t v = dn_rand_u64(&state);
    return v ? v : 1;
}

static double elapsed_now(const search_ctx *c)
{
    return c->elapsed0 + (dn_time_now() - c->t0);
}

static void fmt_hms(double sec, char *buf, size_t n)
{
    if (sec < 0) sec = 0;
    long s = (long)(sec + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

/* ------------------------------------------------------------ population */

static int count_alive(const evo_state *s)
{
    int n = 0;
    for (int i = 0; i < s->n; ++i) n += s->ind[i].alive != 0;
    return n;
}

static dn_status state_push(evo_state *s, const evo_individual *ind)
{
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        evo_individual *p = realloc(s->ind, (size_t)cap * sizeof *p);
        if (!p) return evo_fail(DN_ERR_NOMEM, "search: out of memory for %d individuals", cap);
        s->ind = p; s->cap = cap;
    }
    s->ind[s->n++] = *ind;
    return DN_OK;
}

/* Index of the best living individual (ties: the older), or -1. */
static int best_alive(const evo_state *s)
{
    int b = -1;
    for (int i = 0; i < s->n; ++i)
        if (s->ind[i].alive && (b < 0 || s->ind[i].accuracy > s->ind[b].accuracy)) b = i;
    return b;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median_alive(const evo_state *s)
{
    int n = count_alive(s);
    if (n == 0) return 0;
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return 0;
    int k = 0;
    for (int i = 0; i < s->n; ++i) if (s->ind[i].alive) v[k++] = s->ind[i].accuracy;
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    float m = n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
    free(v);
    return m;
}

/* Who is born from whom and who dies, by the algorithm. Children in flight
 * count as members, so the population stays P with several workers. */
static dn_status plan_step(search_ctx *c, step_plan *p)
{
    const char *algo = c->o->algo ? c->o->algo : "tournament";
    int full = c->o->population - c->inflight > 1 ? c->o->population - c->inflight : 1;
    if (!strcmp(algo, "aging")) return evo_aging(c->s, full, c->o->sample, c->costs, &p->parent, &p->killed);
    if (!strcmp(algo, "random")) {
        p->parent = -1;
        p->killed = -1;
        return count_alive(c->s) >= full ? evo_worst_alive(c->s, c->costs, &p->killed) : DN_OK;
    }
    return evo_tournament(c->s, full, c->costs, &p->parent, &p->killed);
}

/* ------------------------------------------------------------ budget and progress */

double evo_search_seconds(const evo_options *o)
{
    double share = o->final_share > 0 && o->final_share < 1 ? o->final_share : 0;
    return o->hours * 3600.0 * (1 - share);
}

/* Evaluations finished or in flight. */
static int launched(const search_ctx *c) { return c->s->evals + c->inflight; }

/* Individuals evaluated or being trained: promotions in flight are not new ones. */
static int individuals(const search_ctx *c) { return c->s->n + c->inflight - c->npromoting; }

double evo_stood_for(const evo_options *o, const evo_state *s, double now)
{
    int b = evo_state_best_ever(s);
    if (!(o->hours > 0 && o->patience > 0) || b < 0 || s->n < o->population || now >= evo_search_seconds(o))
        return -1;
    double stood = now - s->ind[b].ranked_at;
    return stood >= o->patience * evo_search_seconds(o) ? stood : -1;
}

/* -patience is judged at the last recorded event's time (c->s->elapsed), so
 * the decision follows from the log alone: the report and a -resume replaying
 * it come to the same answer. */
static int out_of_time(const search_ctx *c)
{
    if (c->o->hours <= 0) return 0;
    return elapsed_now(c) >= evo_search_seconds(c->o) || evo_stood_for(c->o, c->s, c->s->elapsed) >= 0;
}

static int budget_left(const search_ctx *c)
{
    return !(c->o->evals > 0 && launched(c) >= c->o->evals) && !out_of_time(c);
}

/* The -evals budget counts evaluations in flight, and one of them may yet be
 * dropped without an event (a promotion whose individual died meanwhile, on a
 * rank that was lost): a worker out of budget waits for those in flight before
 * it leaves, so that the place a dropped one frees is used. Lock held; 1 when
 * budget is left after all. */
static int budget_after_inflight(search_ctx *c)
{
    while (c->error == DN_OK && c->inflight > 0 && c->o->evals > 0 && c->s->evals < c->o->evals && !out_of_time(c) &&
           !budget_left(c)) {
        pthread_mutex_unlock(&c->lock);
        usleep(10000);
        pthread_mutex_lock(&c->lock);
    }
    return c->error == DN_OK && budget_left(c);
}

/* Seconds left: the time budget, or the eval budget at the rate so far. */
static double seconds_left(const search_ctx *c)
{
    const evo_options *o = c->o;
    double el = elapsed_now(c), left = -1;
    if (o->hours > 0) left = evo_search_seconds(o) - el;
    if (o->evals > 0 && c->s->evals > 0) {
        double est = (o->evals - c->s->evals) * (el / c->s->evals);
        if (left < 0 || est < left) left = est;
    }
    return left;
}

/* "[ 41/800] " or "[ 41] ": evaluations done, of the budget. */
static void print_counter(const search_ctx *c)
{
    if (c->o->evals > 0) fprintf(c->log, "[%3d/%d] ", c->s->evals, c->o->evals);
    else fprintf(c->log, "[%3d] ", c->s->evals);
}

static void print_progress(const search_ctx *c, const evo_individual *ind, const evo_result *r,
                           const step_plan *p)
{
    if (!c->log) return;
    const evo_state *s = c->s;
    char left[32];
    print_counter(c);
    if (ind->mutation == EVO_MUT_RANDOM) fprintf(c->log, "sample %d (random)", ind->id);
    else if (ind->parent < 0) fprintf(c->log, "initial %d (%s)", ind->id, c->cells ? "random cells" : "seed copy");
    else fprintf(c->log, "child %d <- %d %s", ind->id, ind->parent, evo_mutation_name(ind->mutation));
    if (r->outcome == EVO_OK) fprintf(c->log, "  val %.1f%%  (%.2f s)", 100.0 * ind->accuracy, ind->seconds);
    else fprintf(c->log, "  FAILED (%.2f s): %s", ind->seconds, r->reason);
    if (r->retried[0]) fprintf(c->log, "  (diverged at its rate: trained again at half)");
    if (p->killed >= 0) fprintf(c->log, "  kills %d", p->killed);
    int b = best_alive(s);
    fprintf(c->log, " | best %.1f%% median %.1f%% | alive %d", b >= 0 ? 100.0 * s->ind[b].accuracy : 0.0,
            100.0 * median_alive(s), count_alive(s));
    double el = elapsed_now(c);
    if (el > 0) fprintf(c->log, " | %.0f evals/h", 3600.0 * s->evals / el);
    double sl = seconds_left(c);
    if (sl >= 0) { fmt_hms(sl, left, sizeof left); fprintf(c->log, " | %s left", left); }
    fputc('\n', c->log);
    fflush(c->log);
}

/* ------------------------------------------------------------ one evaluation */

/* The child genome and its parent's cfg + weights (when inheriting). */
typedef struct {
    evo_genome child, parent;
    int have_parent;
    int promotion;        /* > 0: a promotion of the parent, training this many more steps */
    int rung;             /* a promotion: the level it leads to */
    evo_mutation mutation;
    void *pweights; size_t pweights_size;
    char mut_error[512];  /* no mutation applied: why                 */
} step_input;

static void step_input_free(step_input *in)
{
    evo_genome_free(&in->child);
    if (in->have_parent) evo_genome_free(&in->parent);
    free(in->pweights);
    memset(in, 0, sizeof *in);
}

/* A random walk from the seed: 1-16 mutations (random search, growth space). */
static dn_status random_walk(search_ctx *c, step_input *in)
{
    dn_status s = evo_genome_copy(&c->seed, &in->child);
    int steps = 1 + (int)(dn_rand_u64(&c->s->rng) % 16);
    for (int i = 0; i < steps && s == DN_OK; ++i) {
        evo_genome next;
        evo_mutation m;
        if (evo_mutate_child_set(&in->child, &c->o->limits, c->mutset, &c->s->rng, MUTATE_TRIES, &next, &m) != DN_OK)
            break;
        evo_genome_free(&in->child);
        in->child = next;
    }
    in->mutation = EVO_MUT_RANDOM;
    return s;
}

/* One of the paper's cell mutations, drawn uniformly, applied to cells. */
static dn_status mutate_cells(search_ctx *c, evo_cells *cells, evo_mutation *m)
{
    int k = (int)(dn_rand_u64(&c->s->rng) % 3);
    if (k == 0) { *m = EVO_MUT_HIDDEN_STATE; return evo_cells_mutate_hidden(cells, &c->s->rng); }
    if (k == 1) { *m = EVO_MUT_OP; return evo_cells_mutate_op(cells, c->ops, &c->s->rng); }
    *m = EVO_MUT_IDENTITY;
    return DN_OK;
}

/* A cell-space child: the parent's cells mutated, or a uniform sample (no
 * parent), expanded with the template; drawn again until it passes the shape
 * and limit check. */
static dn_status cell_child(search_ctx *c, const evo_genome *parent, int random, step_input *in)
{
    evo_cells base;
    memset(&base, 0, sizeof base);
    if (parent) {
        if (!parent->cells) return evo_fail(DN_ERR_PARSE, "the parent has no '# evo cells' line");
        dn_status s = evo_cells_parse(parent->cells, &base);
        if (s != DN_OK) return s;
    }
    char why[512] = "";
    for (int t = 0; t < MUTATE_TRIES; ++t) {
        evo_cells cells = base;
        evo_mutation m = random ? EVO_MUT_RANDOM : EVO_MUT_NONE;
        if (!parent) evo_cells_random(&cells, c->blocks, c->ops, &c->s->rng);
        else if (mutate_cells(c, &cells, &m) != DN_OK) {
            snprintf(why, sizeof why, "%s", evo_last_error());
            continue;
        }
        evo_genome g;
        if (evo_cells_expand(&c->seed, &cells, &g) != DN_OK) {
            snprintf(why, sizeof why, "%s", evo_last_error());
            continue;
        }
        if (evo_genome_check(&g, &c->o->limits, NULL) != DN_OK) {
            snprintf(why, sizeof why, "%s", evo_last_error());
            evo_genome_free(&g);
            continue;
        }
        in->child = g;
        in->mutation = m;
        return DN_OK;
    }
    return evo_fail(DN_ERR_ARG, "no valid cell architecture in %d tries; the last: %s", MUTATE_TRIES, why);
}

/* A child with no parent: a seed copy, a random cell sample, or (random
 * search past the initial population) a random point of the growth space. */
static dn_status fresh_child(search_ctx *c, step_input *in)
{
    int random = individuals(c) >= c->o->population;
    if (c->cells) return cell_child(c, NULL, random, in);
    if (random) return random_walk(c, in);
    return evo_genome_copy(&c->seed, &in->child);
}

/* Build the child of p->parent (or a fresh one). A mutation that cannot be
 * applied is not an error of the search: it becomes a failed child. */
static dn_status prepare_child(search_ctx *c, const step_plan *p, step_input *in)
{
    memset(in, 0, sizeof *in);
    in->mutation = EVO_MUT_NONE;
    if (p->parent < 0) {
        dn_status s = fresh_child(c, in);
        if (s == DN_OK || !c->cells) return s;
        snprintf(in->mut_error, sizeof in->mut_error, "%s", evo_last_error());   /* e.g. limits too tight */
        return evo_genome_copy(&c->seed, &in->child);
    }
    char *cfg = NULL;
    void **w = c->inherit ? &in->pweights : NULL;   /* weights only when children inherit */
    dn_status s = evo_store_load_individual(c->st, p->parent, &cfg, w, &in->pweights_size);
    if (s != DN_OK) return s;
    char name[64];
    snprintf(name, sizeof name, "individual %d", p->parent);
    s = evo_genome_parse(cfg, name, &in->parent);
    free(cfg);
    if (s != DN_OK) return s;
    in->have_parent = 1;
    s = c->cells ? cell_child(c, &in->parent, 0, in)
                 : evo_mutate_child_set(&in->parent, &c->o->limits, c->mutset, &c->s->rng, MUTATE_TRIES, &in->child,
                                        &in->mutation);
    if (s != DN_OK) {
        snprintf(in->mut_error, sizeof in->mut_error, "no mutation applies: %s", evo_last_error());
        in->mutation = EVO_MUT_NONE;
        evo_genome_free(&in->child);
        return evo_genome_copy(&in->parent, &in->child);   /* recorded as the failed child's cfg */
    }
    return DN_OK;
}

/* Train and score the child on MPI rank `rank`. A transport failure or a
 * malformed reply fails the child and drops the rank (*dropped). */
static void evaluate_remote(search_ctx *c, int rank, int id, step_input *in, const evo_eval_options *eo,
                            evo_result *r, double *busy, int *dropped)
{
    evo_task_msg t;
    memset(&t, 0, sizeof t);
    t.id = id;
    t.eval = *eo;
    dn_status s = evo_genome_emit(&in->child, 1, &t.child_cfg);
    if (s == DN_OK && eo->inherit) s = evo_genome_emit(&in->parent, 1, &t.parent_cfg);
    if (s == DN_OK && eo->inherit) { t.parent_weights = in->pweights; t.parent_weights_size = in->pweights_size; }
    double seconds = 0;
    if (s == DN_OK) s = evo_mpi_evaluate(rank, &t, r, &seconds);
    *busy = seconds;
    if (s != DN_OK) {
        memset(r, 0, sizeof *r);
        r->outcome = EVO_FAILED;
        snprintf(r->reason, sizeof r->reason, "MPI rank %d: %s; the rank is dropped", rank, evo_last_error());
        *dropped = 1;
        if (c->log) fprintf(c->log, "evolve: %s\n", r->reason);
    }
    free(t.child_cfg);
    free(t.parent_cfg);
}

/* One evaluation with options eo, here or on the worker's MPI rank. */
static void evaluate_once(search_ctx *c, int worker, int id, step_input *in, const evo_eval_options *eo,
                          evo_result *r, double *busy, int *dropped)
{
    double t0 = dn_time_now();
    if (c->mpi) { evaluate_remote(c, worker + 1, id, in, eo, r, busy, dropped); return; }
    evo_evaluate(&in->child, eo->inherit ? &in->parent : NULL, eo->inherit ? in->pweights : NULL,
                 eo->inherit ? in->pweights_size : 0, &c->data, eo, r);
    *busy = dn_time_now() - t0;
}

/* Evaluate the child here or, in an MPI run, on the worker's rank. *busy:
 * the worker's compute seconds; *dropped: an MPI rank failed. */
static void evaluate_child(search_ctx *c, int worker, int id, step_input *in, evo_result *r, double *busy,
                           int *dropped)
{
    memset(r, 0, sizeof *r);
    if (in->mut_error[0]) {
        r->outcome = EVO_FAILED;
        snprintf(r->reason, sizeof r->reason, "%s", in->mut_error);
        return;
    }
    evo_eval_options eo;
    memset(&eo, 0, sizeof eo);
    eo.steps = c->o->steps;
    eo.batch = c->o->batch;
    eo.inherit = c->inherit && in->have_parent && in->mutation != EVO_MUT_RESET_WEIGHTS;
    eo.seed = eval_seed(c->o->seed, id);
    eo.threads = c->threads;
    eo.gpu = c->ngpus ? 1 + c->gpu[worker % c->ngpus] : 0;
    eo.schedule = c->schedule;
    eo.augment = c->augment;
    eo.erase = (float)c->o->erase;   /* evo_augment applies it only with augment */
    eo.val_images = c->o->rungs > 1 ? c->o->val_images : 0;   /* without promotions: the whole holdout */
    eo.mutation = in->mutation;
    eo.latency_threads = c->costs & EVO_COST_LATENCY ? c->o->latency_threads : 0;
    if (in->promotion) {   /* the individual itself, trained further, scored on the whole holdout */
        eo.steps = in->promotion;
        eo.val_images = 0;
        eo.inherit = 1;
        eo.mutation = EVO_MUT_NONE;
        eo.latency_threads = 0;   /* the same network: its latency is known */
        eo.seed = eval_seed(c->o->seed ^ 0x9E3779B97F4A7C15ull * (uint64_t)in->rung, id);
    }
    evaluate_once(c, worker, id, in, &eo, r, busy, dropped);
    if (in->promotion || !r->diverged || *dropped) return;
    /* A child that diverged trains again, once, from the same start at half
     * its genome's rate; the genome records the rate it was trained at. */
    char first[sizeof r->reason];
    snprintf(first, sizeof first, "%s", r->reason);
    if (evo_scale_learning_rate(&in->child, 0.5) != DN_OK) return;
    double again = 0;
    evo_result_free(r);
    evaluate_once(c, worker, id, in, &eo, r, &again, dropped);
    *busy += again;
    snprintf(r->retried, sizeof r->retried, "%s", first);
}

/* Write the child's files and the event (the store then deletes the weights
 * that nothing keeps: the killed's, a beaten dead best's, ...). */
static dn_status record_step(search_ctx *c, const evo_individual *ind, const step_input *in,
                             const evo_result *r, const step_plan *p, double elapsed)
{
    char *text = NULL;
    dn_status s = evo_genome_emit(&in->child, 1, &text);
    if (s != DN_OK) return s;
    int ok = r->outcome == EVO_OK;
    s = evo_store_save_individual(c->st, ind->id, text, ok ? r->weights : NULL, ok ? r->weights_size : 0);
    free(text);
    if (s != DN_OK) return s;
    return evo_store_append_event(c->st, ind, r, &p->killed, p->killed >= 0, c->s->rng, elapsed);
}

/* Apply the step to the in-memory state exactly as a replay of its event would. */
static dn_status apply_step(search_ctx *c, const evo_individual *ind, const step_plan *p, double elapsed)
{
    evo_state *s = c->s;
    if (p->killed >= 0) {
        evo_individual *k = evo_state_find(s, p->killed);
        if (k) { k->alive = 0; k->died_at = ind->eval; }
    }
    dn_status st = state_push(s, ind);
    if (st != DN_OK) return st;
    evo_archive_update(s, s->n - 1);
    s->ind[s->n - 1].elapsed = s->ind[s->n - 1].ranked_at = elapsed;
    s->evals = ind->eval;
    if (s->next_id <= ind->id) s->next_id = ind->id + 1;
    s->elapsed = elapsed;
    return DN_OK;
}

static void fill_individual(search_ctx *c, int id, const step_input *in, const step_plan *p,
                            const evo_result *r, evo_individual *ind)
{
    memset(ind, 0, sizeof *ind);
    ind->id = id;
    ind->parent = p->parent;
    ind->mutation = in->mutation;
    ind->eval = c->s->evals + 1;
    ind->outcome = r->outcome;
    ind->alive = r->outcome == EVO_OK;
    ind->died_at = ind->alive ? 0 : ind->eval;
    ind->accuracy = ind->alive ? r->accuracy : 0;
    ind->val_images = r->val_images;
    ind->steps = r->steps;
    ind->seconds = r->build_seconds + r->train_seconds + r->eval_seconds;
    ind->params = r->params;
    ind->flops = r->flops;
    ind->latency_ms = r->latency_ms;
    ind->latency_batch_ms = r->latency_batch_ms;
}

/* An MPI worker rank is gone: the search fails when it was the last one. */
static void lose_rank(search_ctx *c)
{
    if (--c->ranks_left > 0 || c->error != DN_OK) return;
    c->error = DN_ERR_IO;
    snprintf(c->error_msg, sizeof c->error_msg, "every MPI worker rank was dropped; resume with -resume");
}

/* ------------------------------------------------------------ promotions */

static int promoting(const search_ctx *c, int id)
{
    for (int i = 0; i < c->npromoting; ++i)
        if (c->promoting[i] == id) return 1;
    return 0;
}

/* Promotions in flight from level k. */
static int promoting_from(const search_ctx *c, int k)
{
    int n = 0;
    for (int i = 0; i < c->npromoting; ++i) {
        const evo_individual *v = evo_state_find(c->s, c->promoting[i]);
        n += v && v->rung == k;
    }
    return n;
}

/* Index of the individual to promote from level k, or -1: the best living,
 * promotable one, when it ranks within the level's free promotion slots. */
static int candidate_at(const search_ctx *c, int k)
{
    const evo_state *s = c->s;
    int reached = 0, above = promoting_from(c, k), best = -1;
    for (int i = 0; i < s->n; ++i) {
        const evo_individual *v = &s->ind[i];
        if (v->outcome != EVO_OK) continue;
        reached += v->rung >= k;
        above += v->rung > k;
        if (v->rung == k && v->alive && v->died_at == 0 && !v->stalled && !promoting(c, v->id) &&
            (best < 0 || v->accuracy > s->ind[best].accuracy))
            best = i;
    }
    int slots = reached / c->o->eta - above;
    if (best < 0 || slots <= 0) return -1;
    int rank = 0;   /* individuals of level k scored above it, dead or alive */
    for (int i = 0; i < s->n; ++i)
        rank += s->ind[i].outcome == EVO_OK && s->ind[i].rung == k && s->ind[i].accuracy > s->ind[best].accuracy;
    return rank < slots ? best : -1;
}

/* Further steps that take level k to k + 1: steps x eta^k x (eta - 1). */
static int promotion_steps(const evo_options *o, int k)
{
    double n = o->steps * (o->eta - 1.0);
    for (int i = 0; i < k; ++i) n *= o->eta;
    return n > 1e8 ? 100000000 : (int)n;
}

/* A promotion of v would end after the search's time: its further steps at
 * the speed its own evaluations had, against the time left. */
static int too_late(const search_ctx *c, const evo_individual *v)
{
    if (c->o->hours <= 0 || v->steps < 1) return 0;
    double need = v->seconds / v->steps * promotion_steps(c->o, v->rung);
    return need > evo_search_seconds(c->o) - elapsed_now(c);
}

/* The individual (index) to promote now, from the top level down, or -1
 * (none, or no time left for it: a child then uses the rest). */
static int promotion_candidate(const search_ctx *c)
{
    if (c->o->rungs < 2 || c->s->n < c->o->population || c->npromoting >= 64) return -1;
    for (int k = c->o->rungs - 2; k >= 0; --k) {
        int i = candidate_at(c, k);
        if (i >= 0) return too_late(c, &c->s->ind[i]) ? -1 : i;
    }
    return -1;
}

/* The promoted individual as both parent and child, with its weights. */
static dn_status prepare_promotion(search_ctx *c, const evo_individual *v, step_input *in)
{
    memset(in, 0, sizeof *in);
    in->mutation = EVO_MUT_NONE;
    char *cfg = NULL, name[64];
    DN_TRY(evo_store_load_individual(c->st, v->id, &cfg, &in->pweights, &in->pweights_size));
    snprintf(name, sizeof name, "individual %d", v->id);
    dn_status s = evo_genome_parse(cfg, name, &in->parent);
    free(cfg);
    if (s != DN_OK) return s;
    in->have_parent = 1;
    s = evo_genome_copy(&in->parent, &in->child);
    in->promotion = promotion_steps(c->o, v->rung);
    in->rung = v->rung + 1;
    return s;
}

static void print_promotion(const search_ctx *c, const evo_individual *v, const evo_result *r, double seconds)
{
    if (!c->log) return;
    print_counter(c);
    fprintf(c->log, "promote %d to level %d", v->id, v->rung);
    if (r->outcome == EVO_OK) fprintf(c->log, "  val %.2f%% on %d images  (+%d steps, %.2f s)", 100.0 * v->accuracy,
                                      r->val_images, r->steps, seconds);
    else fprintf(c->log, "  FAILED (%.2f s): %s; it stays at level %d", seconds, r->reason, v->rung);
    fputc('\n', c->log);
    fflush(c->log);
}

/* Write the promoted weights, then the event (a kill between the two leaves
 * weights one promotion ahead of the log; the store then deletes the weights
 * of an overtaken dead best ever). Lock held. */
static dn_status record_promotion(search_ctx *c, evo_individual *v, const step_input *in, evo_result *r,
                                  double elapsed)
{
    if (r->outcome == EVO_OK) {
        char *text = NULL;
        DN_TRY(evo_genome_emit(&in->child, 1, &text));
        dn_status s = evo_store_save_individual(c->st, v->id, text, r->weights, r->weights_size);
        free(text);
        if (s != DN_OK) return s;
    }
    int eval = c->s->evals + 1;
    DN_TRY(evo_store_append_promotion(c->st, v, eval, r, c->s->rng, elapsed));
    evo_event e;   /* the same event the store wrote, applied to the search's state */
    evo_promotion_event(v, eval, r, c->s->rng, elapsed, &e);
    int baseline = 0;
    evo_event_apply(c->s, &e, &baseline);
    return DN_OK;
}

/* Train individual index i further and record it. Called with c->lock held;
 * returns with it held. A promotion whose individual died meanwhile (another
 * worker's tournament) is dropped. */
static void promote(search_ctx *c, int worker, int i, double *busy, int *dropped)
{
    evo_individual v = c->s->ind[i];
    step_input in;
    dn_status s = prepare_promotion(c, &v, &in);
    if (s != DN_OK) {
        step_input_free(&in);
        c->error = s;
        snprintf(c->error_msg, sizeof c->error_msg, "%s", evo_last_error());
        return;
    }
    c->promoting[c->npromoting++] = v.id;
    ++c->inflight;
    if (c->log) {   /* a promotion may train long: say what is going on */
        fprintf(c->log, "        promoting %d to level %d: %d more steps...\n", v.id, v.rung + 1, in.promotion);
        fflush(c->log);
    }
    pthread_mutex_unlock(&c->lock);
    evo_result r;
    double seconds = 0;
    evaluate_child(c, worker, v.id, &in, &r, &seconds, dropped);
    *busy += seconds;
    pthread_mutex_lock(&c->lock);
    --c->inflight;
    for (int k = 0; k < c->npromoting; ++k)
        if (c->promoting[k] == v.id) c->promoting[k] = c->promoting[--c->npromoting];
    evo_individual *now = evo_state_find(c->s, v.id);
    if (now && now->alive && now->died_at == 0) {
        now->worker = worker;
        now->worker_busy = *busy;
        s = record_promotion(c, now, &in, &r, elapsed_now(c));
        if (s == DN_OK) print_promotion(c, now, &r, seconds);
        if (s != DN_OK && c->error == DN_OK) {
            c->error = s;
            snprintf(c->error_msg, sizeof c->error_msg, "%s", evo_last_error());
        }
    } else if (c->log) {
        fprintf(c->log, "evolve: the promotion of %d is dropped: it died while training\n", v.id);
    }
    evo_result_free(&r);
    step_input_free(&in);
}

/* One worker's evaluations until the budget is spent or the search failed.
 * Called with c->lock held; returns with it held. */
/* Every -report-every seconds, worker 0 rewrites the report as a live page
 * (it reloads itself); the lock is released meanwhile. Lock held. */
static void live_report(search_ctx *c)
{
    double now = dn_time_now();
    if (c->o->report_every <= 0 || now - c->last_report < c->o->report_every) return;
    c->last_report = now;
    pthread_mutex_unlock(&c->lock);
    evo_report_options ro = {.refresh = c->o->report_every > 5 ? (int)c->o->report_every : 5};
    dn_status s = evo_report(evo_store_dir(c->st), &ro, NULL, NULL);
    pthread_mutex_lock(&c->lock);
    if (s != DN_OK && !c->report_warned && c->log) {
        fprintf(c->log, "evolve: warning: the live report was not written: %s\n", evo_last_error());
        c->report_warned = 1;
    }
    c->last_report = dn_time_now();   /* the report's own time does not count */
}

static void worker_loop(search_ctx *c, int worker)
{
    double busy = 0;
    while (c->error == DN_OK && (budget_left(c) || budget_after_inflight(c))) {
        int promote_i = promotion_candidate(c);
        if (promote_i >= 0) {
            int dropped = 0;
            promote(c, worker, promote_i, &busy, &dropped);
            if (dropped) { lose_rank(c); return; }
            continue;
        }
        step_plan p = { -1, -1 };
        dn_status s = individuals(c) < c->o->population ? DN_OK : plan_step(c, &p);
        step_input in;
        memset(&in, 0, sizeof in);
        if (s == DN_OK) s = prepare_child(c, &p, &in);
        if (s != DN_OK) {
            step_input_free(&in);
            c->error = s;
            snprintf(c->error_msg, sizeof c->error_msg, "%s", evo_last_error());
            return;
        }
        evo_individual *k = p.killed >= 0 ? evo_state_find(c->s, p.killed) : NULL;
        if (k) k->alive = 0, k->died_at = -1;   /* no longer selectable; its death is logged with the child */
        int id = c->s->next_id++;
        ++c->inflight;
        pthread_mutex_unlock(&c->lock);
        evo_result r;
        double seconds = 0;
        int dropped = 0;
        evaluate_child(c, worker, id, &in, &r, &seconds, &dropped);
        busy += seconds;
        pthread_mutex_lock(&c->lock);
        --c->inflight;
        evo_individual ind;
        fill_individual(c, id, &in, &p, &r, &ind);
        ind.worker = worker;
        ind.worker_busy = busy;
        double el = elapsed_now(c);
        s = record_step(c, &ind, &in, &r, &p, el);
        if (s == DN_OK) s = apply_step(c, &ind, &p, el);
        if (s == DN_OK) print_progress(c, &ind, &r, &p);
        if (s != DN_OK && c->error == DN_OK) {
            c->error = s;
            snprintf(c->error_msg, sizeof c->error_msg, "%s", evo_last_error());
        }
        evo_result_free(&r);
        step_input_free(&in);
        if (dropped) { lose_rank(c); return; }
        if (worker == 0) live_report(c);
    }
    if (c->stood < 0) c->stood = evo_stood_for(c->o, c->s, c->s->elapsed);
}

typedef struct { search_ctx *c; int worker; } worker_arg;

/* MPI: have the worker's rank load the data; a rank that cannot is dropped. */
static int connect_rank(search_ctx *c, int worker)
{
    const evo_options *o = c->o;
    evo_setup_msg m = {.data_path = o->data_path, .holdout = o->holdout, .max_train = o->max_train,
                       .threads = o->threads, .seed = o->seed, .gpus = o->gpus ? o->gpus : ""};
    dn_status s = evo_mpi_connect(worker + 1, &m);
    if (s == DN_OK) return 1;
    pthread_mutex_lock(&c->lock);
    if (c->log) fprintf(c->log, "evolve: MPI rank %d dropped: %s\n", worker + 1, evo_last_error());
    lose_rank(c);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* One worker from start to end (the caller's thread for worker 0). */
static void *worker_thread(void *arg)
{
    worker_arg *a = arg;
    if (a->c->mpi && !connect_rank(a->c, a->worker)) return NULL;
    pthread_mutex_lock(&a->c->lock);
    worker_loop(a->c, a->worker);
    pthread_mutex_unlock(&a->c->lock);
    return NULL;
}

/* ------------------------------------------------------------ session */

static dn_status load_seed(search_ctx *c)
{
    dn_status s = evo_store_load_seed(c->st, &c->seed);
    if (s != DN_OK) return s;
    c->cells = evo_genome_has_cells(&c->seed);
    c->inherit = c->o->inherit < 0 ? !c->cells : c->o->inherit;
    c->augment = c->o->augment && !strcmp(c->o->augment, "all");
    if ((s = evo_schedule_from_name(c->o->schedule, &c->schedule)) != DN_OK) return s;
    if ((s = evo_mutation_set_from_name(c->o->mutations, &c->mutset)) != DN_OK) return s;
    if ((s = evo_options_costs(c->o, &c->costs)) != DN_OK) return s;
    if (!c->cells) return DN_OK;
    if ((s = evo_template_check(&c->seed)) != DN_OK) return s;
    c->blocks = c->o->blocks > 0 ? c->o->blocks : evo_template_blocks(&c->seed);
    return evo_ops_parse(c->o->ops, &c->ops);
}

static void print_start(const search_ctx *c)
{
    if (!c->log) return;
    const evo_options *o = c->o;
    fprintf(c->log, "evolve: %s, %s search of %s, population %d", evo_store_dir(c->st),
            o->algo ? o->algo : "tournament", c->cells ? "cells" : "growing networks", o->population);
    if (o->algo && !strcmp(o->algo, "aging")) fprintf(c->log, ", sample %d", o->sample);
    if (c->cells) fprintf(c->log, ", %d blocks, ops %s", c->blocks, o->ops ? o->ops : "all");
    fprintf(c->log, "\nevolve: %d steps x batch %d per child, inherit %d, seed %llu\n", o->steps, o->batch,
            c->inherit, (unsigned long long)o->seed);
    fprintf(c->log, "evolve: data %d training / %d validation images; budget", c->data.train.n, c->data.holdout.n);
    if (o->evals > 0) fprintf(c->log, " %d evaluations", o->evals);
    if (o->hours > 0) fprintf(c->log, "%s %.3g hours", o->evals > 0 ? " or" : "", o->hours);
    if (c->s->evals > 0) fprintf(c->log, "; resuming after evaluation %d", c->s->evals);
    int workers = c->mpi ? c->mpi : o->workers > 1 ? o->workers : 1;
    fprintf(c->log, "\nevolve: %d worker%s on ", workers, workers == 1 ? "" : "s");
    if (c->mpi) fprintf(c->log, "MPI ranks 1..%d (rank 0 keeps the population), ", c->mpi);
    if (c->ngpus) fprintf(c->log, "GPU%s %s (worker w on device w mod %d)", c->ngpus == 1 ? "" : "s", o->gpus, c->ngpus);
    else fprintf(c->log, "the CPU");
    if (c->threads) fprintf(c->log, ", %d threads each", c->threads);
    fputc('\n', c->log);
    fflush(c->log);
}

static void print_end(const search_ctx *c)
{
    if (!c->log) return;
    const evo_state *s = c->s;
    char el[32];
    fmt_hms(elapsed_now(c), el, sizeof el);
    int fails = 0;
    for (int i = 0; i < s->n; ++i) fails += s->ind[i].outcome != EVO_OK;
    fprintf(c->log, "evolve: done, %d evaluations (%d failed) in %s\n", s->evals, fails, el);
    if (c->stood >= 0) {
        char stood[32], left[32];
        fmt_hms(c->stood, stood, sizeof stood);
        fmt_hms(c->o->hours * 3600.0 - elapsed_now(c), left, sizeof left);
        fprintf(c->log, "evolve: the search ended early: its best had stood for %s (-patience %g of the search's time)",
                stood, c->o->patience);
        if (c->o->final_share > 0) fprintf(c->log, "; final training gets the %s left", left);
        fputc('\n', c->log);
    }
    int b = evo_state_best_ever(s);   /* what export and the report take */
    if (b < 0) {
        fprintf(c->log, "evolve: no individual trained (every evaluation failed): nothing to export\n");
    } else {
        const evo_individual *x = &s->ind[b];
        fprintf(c->log, "best: individual %d (parent %d, %s, evaluation %d, %s): val %.2f%%, %zu params, %.3g MFLOPs\n",
                x->id, x->parent, evo_mutation_name(x->mutation), x->eval, x->alive ? "alive" : "dead, weights kept",
                100.0 * x->accuracy, x->params, x->flops / 1e6);
    }
    fflush(c->log);
}

/* After the search (and its final training): how to export, and the report. */
static void print_after(const search_ctx *c)
{
    if (!c->log) return;
    char q[4200];
    if (evo_state_best_ever(c->s) >= 0)
        fprintf(c->log, "export with: darknet evolve export %s\n", evo_shell_quote(evo_store_dir(c->st), q, sizeof q));
    if (evo_state_best_ever(c->s) >= 0 && c->s->costs)
        fprintf(c->log, "the front (every archived model, with its test accuracy): darknet evolve export %s -pareto\n",
                evo_shell_quote(evo_store_dir(c->st), q, sizeof q));
    fflush(c->log);
    evo_report_after_search(evo_store_dir(c->st), c->log);   /* prints its path; a failure only warns */
}

/* The search's own final training of its winner (-final > 0) and, with
 * -objective costs, of cheaper models of the front (-final-front), each
 * unless done after the last evaluation; what a resumed search outdated is
 * kept as DIR/final.K and trained anew. */
static dn_status final_training(search_ctx *c)
{
    evo_final_info fi;
    if (c->o->final_share <= 0 || evo_state_best_ever(c->s) < 0) return DN_OK;
    DN_TRY(evo_final_read(evo_store_dir(c->st), &fi));
    if (fi.done && fi.evals < c->s->evals) DN_TRY(evo_final_set_aside(evo_store_dir(c->st), c->log));
    evo_finish_options fo;
    evo_finish_options_from(c->o, c->s, &fo);
    dn_status s = evo_finish_all(c->st, c->o, c->s, &fo, c->o->final_front, NULL, c->log);
    if (s != DN_ERR_NUMERIC) return s;
    /* a diverged final training costs the final model, not the search: export takes the search's best */
    dn_warn("%s; the search's best is what export writes (darknet evolve finish DIR -again tries again, e.g. "
            "-from scratch)", evo_last_error());
    return DN_OK;
}

/* A fresh search starts its RNG and ids from the seed. */
static void init_fresh(search_ctx *c)
{
    if (c->s->evals > 0) return;
    uint64_t state = c->o->seed ^ 0x5EA4C4E5EEDull;
    c->s->rng = dn_rand_u64(&state);
    if (c->s->n == 0 && c->s->next_id < 1) c->s->next_id = 1;
    if (c->s->n == 0) c->s->costs = c->costs;   /* the archive by -objective, as the store's copy */
}

/* Workers 1 .. N-1 on their own threads, worker 0 on the caller's. */
static dn_status search_loop(search_ctx *c)
{
    int n = c->mpi ? c->mpi : c->o->workers > 1 ? c->o->workers : 1;
    pthread_t *tid = calloc((size_t)n, sizeof *tid);
    worker_arg *args = calloc((size_t)n, sizeof *args);
    char *started = calloc((size_t)n, 1);
    if (!tid || !args || !started) {
        free(tid); free(args); free(started);
        return evo_fail(DN_ERR_NOMEM, "out of memory for %d workers", n);
    }
    pthread_mutex_init(&c->lock, NULL);
    c->ranks_left = c->mpi;
    for (int w = 0; w < n; ++w) args[w] = (worker_arg){c, w};
    for (int w = 1; w < n; ++w) started[w] = pthread_create(&tid[w], NULL, worker_thread, &args[w]) == 0;
    worker_thread(&args[0]);
    for (int w = 1; w < n; ++w) {
        if (started[w]) pthread_join(tid[w], NULL);
        else if (c->mpi) worker_thread(&args[w]);   /* a rank must be served even without a thread */
    }
    pthread_mutex_destroy(&c->lock);
    free(tid); free(args); free(started);
    if (c->error != DN_OK) return evo_fail(c->error, "%s", c->error_msg);
    return DN_OK;
}

dn_status evo_search_run(evo_store *st, const evo_options *o, evo_state *state, FILE *progress)
{
    if (!st || !o || !state) return evo_fail(DN_ERR_ARG, "evo_search_run: NULL argument");
    if (o->population < 1) return evo_fail(DN_ERR_ARG, "population must be at least 1, not %d", o->population);
    if (o->evals <= 0 && o->hours <= 0) return evo_fail(DN_ERR_ARG, "the search needs a budget (-evals or -hours)");
    search_ctx c;
    memset(&c, 0, sizeof c);
    c.st = st; c.o = o; c.s = state; c.log = progress;
    c.stood = -1;
    c.mpi = o->mpi_workers > 0 ? o->mpi_workers : 0;
    dn_status s = load_seed(&c);
    if (s != DN_OK) return s;
    s = evo_data_load(o->data_path, o->holdout, o->seed, o->max_train, &c.data);
    if (s != DN_OK) { evo_genome_free(&c.seed); return s; }
    init_fresh(&c);
    if (o->gpus && *o->gpus && (s = dn_gpu_parse_list(o->gpus, c.gpu, EVO_MAX_GPUS, &c.ngpus)) != DN_OK) {
        evo_fail(s, "%s", dn_last_error());
        evo_data_free(&c.data);
        evo_genome_free(&c.seed);
        return s;
    }
    c.threads = o->threads;
    if (o->workers > 1 && o->threads == 0) {   /* workers x threads = CPUs */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        c.threads = cpus > o->workers ? (int)(cpus / o->workers) : 1;
    }
    c.t0 = dn_time_now();
    c.last_report = c.t0;
    c.elapsed0 = state->elapsed;
    print_start(&c);
    s = search_loop(&c);
    if (s == DN_OK) print_end(&c);
    evo_data_free(&c.data);   /* final training loads every training image itself */
    if (s == DN_OK) s = final_training(&c);
    if (s == DN_OK) print_after(&c);
    if (s == DN_OK && state->n > 0 && evo_state_best_ever(state) < 0)
        s = evo_fail(DN_ERR_DATA, "%s: every one of the %d evaluations failed (the reasons are in events.jsonl and "
                     "the report): no model to export", evo_store_dir(st), state->evals);
    evo_genome_free(&c.seed);
    return s;
}
