/*
 * evo.h — the evolution module behind `darknet evolve`, for the CLI and for a
 * program that runs searches itself: the options of a search, its run folder,
 * running it, exporting and reporting. evo_internal.h holds the rest (genomes,
 * mutations, cells, evaluation, the store's writes, the MPI wire format, JSON).
 * Built on the framework's public API only (darknet.h and its toolkit).
 *
 *     evo_options o;
 *     evo_options_defaults(&o);              // then set what differs:
 *     o.data_path = strdup("cfg/fashion.data");
 *     o.seed_cfg_path = strdup("cfg/evo-trivial.cfg");
 *     o.evals = 100;
 *     char *seed = NULL;
 *     evo_store *st = NULL;
 *     evo_state state = {0};
 *     if (dn_read_file(o.seed_cfg_path, &seed, NULL) == DN_OK &&
 *         evo_store_create("runs/a", &o, seed, &st) == DN_OK &&
 *         evo_search_run(st, &o, &state, stdout) == DN_OK)
 *         evo_export("runs/a", -1, "winner", stdout);     // winner.cfg/.weights/.data/.labels
 *     else
 *         fprintf(stderr, "%s\n", dn_last_error());
 *     evo_store_close(st); evo_state_free(&state); evo_options_free(&o); free(seed);
 *
 * Papers: "Large-Scale Evolution of Image Classifiers" (Real et al., 2017) for
 * plain seeds that grow by mutation with weight inheritance; "Regularized
 * Evolution for Image Classifier Architecture Search" (Real et al., 2019) for
 * NASNet cell templates and aging evolution.
 */
#ifndef EVO_H
#define EVO_H

#include "darknet.h"
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------ errors */

/* One error channel for the framework and evo: evo_fail formats a message
 * into the calling thread's dn_last_error() and returns s
 * (`return evo_fail(DN_ERR_ARG, "...")`); its arguments may include
 * evo_last_error() itself. evo_last_error() is dn_last_error(). */
dn_status evo_fail(dn_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define evo_last_error dn_last_error
/* Returning on error: DN_TRY(expr) (darknet_toolkit.h), as in the framework. */

/* ------------------------------------------------------------ limits */

typedef struct {
    int max_layers;          /* 0: no limit */
    double max_params;       /* learnable floats */
    double max_flops;        /* forward FLOPs per image */
    double max_memory;       /* bytes at the training batch */
} evo_limits;

/* ------------------------------------------------------------ mutations */

typedef enum {
    EVO_MUT_NONE = -1,       /* the seed / initial individuals */
    EVO_MUT_ALTER_LEARNING_RATE,
    EVO_MUT_IDENTITY,
    EVO_MUT_RESET_WEIGHTS,
    EVO_MUT_INSERT_CONVOLUTION,
    EVO_MUT_REMOVE_CONVOLUTION,
    EVO_MUT_ALTER_STRIDE,
    EVO_MUT_ALTER_CHANNELS,
    EVO_MUT_ALTER_FILTER_SIZE,
    EVO_MUT_INSERT_ONE_TO_ONE,
    EVO_MUT_ADD_SKIP,
    EVO_MUT_REMOVE_SKIP,
    EVO_MUT_COUNT,           /* the Large-Scale Evolution mutations above */
    /* function-preserving mutations (network morphisms): started from the
     * parent's weights (evo_morph_init), the child computes the parent's function */
    EVO_MUT_DEEPEN = 50,         /* an identity [convolutional] inserted */
    EVO_MUT_WIDEN,               /* a convolution's filters grow, Net2Net's WiderNet */
    EVO_MUT_SKIP_ZERO,           /* a residual branch whose batch-norm scales start at 0 */
    EVO_MUT_FLATTEN,             /* the head's global [avgpool] removed: [connected] reads every position */
    EVO_MUT_DEEPEN_HEAD,         /* a hidden relu [connected] before the classifier */
    /* cell searches (Regularized Evolution); identity is EVO_MUT_IDENTITY */
    EVO_MUT_HIDDEN_STATE = 100,  /* a block input moves to another hidden state */
    EVO_MUT_OP,                  /* a block op changes */
    EVO_MUT_RANDOM               /* random search: a fresh uniform sample */
} evo_mutation;

const char *evo_mutation_name(evo_mutation m);       /* "insert_convolution", ... */
dn_status evo_mutation_from_name(const char *name, evo_mutation *out);

/* ------------------------------------------------------------ outcomes */

typedef enum { EVO_OK = 0, EVO_FAILED = 1 } evo_outcome;

/* ------------------------------------------------------------ run folder */

/* Options of a search; saved in DIR/options.cfg and restored by -resume. */
#define EVO_MAX_GPUS 16

typedef struct {
    char *data_path, *seed_cfg_path, *out_dir;
    char *algo;              /* "tournament", "aging" or "random" */
    char *ops;               /* cell searches: "all", "upstream" or a list of op names */
    int population, evals, steps, batch, holdout, workers;
    int inherit;             /* 1, 0, or -1: 1 for growth searches, 0 for cell searches */
    int sample;              /* aging: individuals sampled per cycle (S) */
    int blocks;              /* cell searches: blocks per cell (B; 0: the template's or 5) */
    double hours;
    uint64_t seed;
    evo_limits limits;
    int max_train;           /* 0: all training images */
    int threads;
    int mpi_workers;         /* not saved: worker ranks of an MPI run (-mpi); 0: none */
    char *gpus;              /* -gpus LIST: CUDA devices ("0,1"), one worker each by
                                default (worker w on device w mod count); NULL or "": the CPU */
    char *schedule;          /* "cosine", "constant" or "cfg": each evaluation's learning rate */
    char *mutations;         /* growth searches: "paper", "morph" or "all" */
    int rungs, eta;          /* fidelity levels and the promotion ratio (rungs 1: none) */
    int val_images;          /* children scored on this many holdout images (0: all) */
    double final_share;      /* final training: share of -hours (0: no final training) */
    double patience;         /* with -hours: the search ends once its best individual has stood for this
                                share of the search's time (0: it runs to the end) */
    double final_epochs;     /* final training without -hours */
    char *final_from;        /* "inherit" or "scratch" */
    char *final_width;       /* "auto" or a number in [1, 4]: the final model's width multiplier */
    int final_front;         /* with -objective costs: final training of the winner and up to
                                K-1 cheaper archived models (1: the winner only) */
    char *augment;           /* "none", "auto", "final" or "all" */
    double erase;            /* where augment applies: random erasing's probability per image (0: none) */
    double final_decay;      /* > 0: final training's weight decay; 0: the winner's own */
    char *objective;         /* "acc", or acc with costs: "acc,flops", "acc,params,latency", ... */
    int latency_threads;     /* threads the latency is measured with */
    double report_every;     /* seconds between live reports (0: only at the end) */
} evo_options;

void evo_options_defaults(evo_options *o);
void evo_options_free(evo_options *o);

/* One individual as recorded in the run folder. */
typedef struct {
    int id, parent;          /* parent -1 for the initial population */
    evo_mutation mutation;
    int eval;                /* evaluation number that created it (1-based) */
    int alive;
    int died_at;             /* evaluation number of its death, 0 if alive */
    evo_outcome outcome;
    float accuracy;
    int steps;
    double seconds;
    size_t params; double flops;
    int worker;              /* the worker that evaluated it (0 .. workers-1) */
    double worker_busy;      /* that worker's evaluation seconds so far (this session) */
    double elapsed;          /* search seconds when its event was recorded */
    double ranked_at;        /* search seconds when it reached its level and score (its event, or its
                                last promotion): how long the best has stood, for -patience */
    int rung;                /* fidelity level: 0 as a child, +1 per promotion */
    int val_images;          /* holdout images its accuracy was measured on (0: unknown) */
    int stalled;             /* a promotion failed (diverged): not promoted again */
    float latency_ms;        /* inference milliseconds per image at batch 1 (0: not measured) */
    float latency_batch_ms;  /* per image at the evaluation's batch (0: not measured) */
    int archived;            /* in the archive of non-dominated models (pareto.c) */
} evo_individual;

/* 1 when a ranks above b for export and the best ever: the higher fidelity
 * level (more training, scored on more images), then the higher accuracy. */
int evo_ranks_above(const evo_individual *a, const evo_individual *b);

/* The state of a search, rebuilt by replaying DIR/events.jsonl. */
typedef struct {
    evo_individual *ind; int n, cap;
    int evals;               /* evaluations finished                    */
    int next_id;
    uint64_t rng;            /* selection/mutation RNG after the last event */
    double elapsed;          /* search seconds so far (sum over sessions) */
    int costs;               /* -objective's costs (EVO_COST_* bits): what `archived` is kept by;
                                set before replaying or adding individuals */
} evo_state;

void evo_state_free(evo_state *s);
evo_individual *evo_state_find(evo_state *s, int id);
/* Index of the best individual ever evaluated (evo_ranks_above; ties: the
 * earlier evaluation), or -1: what final training, export and the report
 * take, and whose weights the search keeps after its death. */
int evo_state_best_ever(const evo_state *s);

typedef struct evo_store evo_store;
/* The writers (a new search, a resume) hold the folder's lock (an exclusive
 * flock on the folder) from before they read anything until evo_store_close;
 * a second writer is refused before it changes anything. Readers (status,
 * export, report) take no lock and may run beside a writer. */
/* Create DIR for a new search (an existing folder must hold no evaluation and
 * no individual), write options.cfg and seed.cfg; the store holds the lock. */
dn_status evo_store_create(const char *dir, const evo_options *o, const char *seed_cfg_text, evo_store **out);
/* Open an existing run folder for writing: lock, read the options, replay the
 * events (a torn last line from a kill is ignored), refuse a lost log (no
 * evaluation beside individuals) and changed data options; a living individual
 * whose cfg or weights are missing or damaged is dead in *state (lost, recorded
 * with the next event). Recovery (cutting a torn line, moving files no event
 * explains to DIR/orphans/) happens on the first write. */
dn_status evo_store_open(const char *dir, evo_options *o, evo_state *state, evo_store **out);
/* Open for reading only (no lock, no checks of the files): status, export. */
dn_status evo_store_open_read(const char *dir, evo_options *o, evo_state *state, evo_store **out);
void evo_store_close(evo_store *st);
/* Read a run folder's options and replayed events (evo_store_open_read, then
 * close), so that a reader (report) works while the search writes (a torn
 * last line is skipped with a warning). An absent events.jsonl reads as no events. */
dn_status evo_store_read(const char *dir, evo_options *o, evo_state *state);
/* Individual id's cfg can be read and its weights file fits it (size). */
dn_status evo_store_check_individual(const evo_store *st, int id);
/* Rewrite DIR/options.cfg atomically (a resume that extends the budget). */
dn_status evo_store_save_options(evo_store *st, const evo_options *o);
const char *evo_store_dir(const evo_store *st);

/* ------------------------------------------------------------ search, export, cli */

/* Run (or continue) a search until the budget is spent. */
dn_status evo_search_run(evo_store *st, const evo_options *o, evo_state *state, FILE *progress);

/* Export an individual (id < 0: the best ever evaluated) as PREFIX.cfg
 * (plain), PREFIX.weights, PREFIX.data and PREFIX.labels; report its test
 * accuracy. prefix NULL: DIR/best/best (DIR/export/N for id N); a folder
 * (ending in '/' or existing): FOLDER/best.* (FOLDER/N.*). */
dn_status evo_export(const char *dir, int id, const char *prefix, FILE *report);
/* The same; for cell searches, filters > 0 or normal_cells > 0 write the
 * individual's cells in the template at that width/depth (cfg, .data,
 * labels; no weights: it is to be trained from scratch). id < 0: the best
 * individual ever evaluated. */
dn_status evo_export_scaled(const char *dir, int id, const char *prefix, int filters, int normal_cells, FILE *report);

/* Budgets for export (0: no limit): forward FLOPs per image, parameters,
 * milliseconds per image at batch 1 (as the search measured it). */
typedef struct { double flops, params, latency; } evo_budget;
/* Export the most accurate kept model within the budget (the living, the
 * best ever, and with -objective costs the archive) as evo_export does. */
dn_status evo_export_within(const char *dir, const evo_budget *budget, const char *prefix, FILE *report);
/* Every archived model (pareto.c) into FOLDER (NULL: DIR/pareto), named by
 * its costs and accuracy, each with its test accuracy, and FOLDER/pareto.tsv. */
dn_status evo_export_pareto(const char *dir, const char *folder, FILE *report);

/* ------------------------------------------------------------ final training */

/* Final training of an individual (finish.c): on all training images, one
 * warm-up + cosine cycle, into DIR/final/, then its test accuracy. A search
 * with -final > 0 ends with it; `darknet evolve finish DIR` runs it later
 * (again: a finished one is replaced only when asked with -again). */
#define EVO_AUGMENT_AUTO (-1)
#define EVO_WIDTH_AUTO (-1.0)
typedef struct {
    int id;                  /* -1: the best ever (evo_state_best_ever) */
    double seconds;          /* > 0: this long (steps fixed after timing the first ones) */
    double epochs;           /* seconds 0: this many epochs */
    int scratch;             /* 1: from a fresh initialisation, not the individual's weights */
    int augment;             /* 1: random flip + 2-pixel pad-and-crop; EVO_AUGMENT_AUTO: when the
                                model overfits (see finish.c) */
    float erase;             /* with augment: random erasing with this probability per image (0: none) */
    int filters, cells;      /* cell searches: the template at this width / depth (from scratch) */
    double width;            /* > 1: every hidden layer this much wider (evo_genome_widen; from
                                scratch); 0 or 1: as searched; EVO_WIDTH_AUTO: chosen (see finish.c) */
    float lr;                /* > 0: this peak learning rate instead of the genome's */
    double decay;            /* > 0: this weight decay instead of the genome's [net] decay */
    int front;               /* 1: into DIR/final/front/ID (a model of the front besides the winner) */
} evo_finish_options;
/* The options a search's own final training uses (-final, -final-epochs,
 * -final-from, -final-width, -augment; the time -hours left). */
void evo_finish_options_from(const evo_options *o, const evo_state *state, evo_finish_options *fo);
/* "auto" -> EVO_WIDTH_AUTO, a number in [1, 4] -> itself; anything else -> 0 (not valid). */
double evo_parse_width(const char *text);
/* Train (or continue, after a kill) into evo_store_dir(st)/final/. */
dn_status evo_finish(evo_store *st, const evo_options *o, const evo_state *state, const evo_finish_options *fo,
                     FILE *log);
/* The search's final training (and `darknet evolve finish DIR`): the winner
 * into DIR/final/ unless it holds a finished model; then, with -objective
 * costs and front > 1, up to front-1 cheaper archived models into
 * DIR/final/front/ID/ (the most accurate within 1/sqrt(10), 1/10, ... of the
 * winner's first cost), each unless finished. Timed (fo->seconds): the winner
 * half, the others the other half evenly; else fo->epochs each. A cheaper
 * model that diverges is a warning; the winner's divergence is returned
 * (DN_ERR_NUMERIC) after the others trained. *trained (may be NULL): how
 * many models were trained. */
dn_status evo_finish_all(evo_store *st, const evo_options *o, const evo_state *state, const evo_finish_options *fo,
                         int front, int *trained, FILE *log);
/* DIR/final/result.json, when final training finished (done 0 otherwise). */
typedef struct {
    int done, id, steps, images, scratch, augment;
    int evals;               /* the search's evaluations when it was trained */
    double seconds;
    float test_accuracy;
    float lr_scale;          /* < 1: the peak rate was halved after divergences */
    float erase;             /* with augment: random erasing's probability (0: none) */
    double decay;            /* > 0: the weight decay it was trained with instead of its genome's */
    double width;            /* the width multiplier it was trained at (1: as searched) */
    size_t params; double flops;   /* of the model trained (0: not recorded) */
} evo_final_info;
dn_status evo_final_read(const char *dir, evo_final_info *info);
/* The finished final training of individual id: DIR/final when it trained id,
 * else DIR/final/front/ID; *folder (may be NULL) gets that folder (malloc'd)
 * when done. */
dn_status evo_final_read_of(const char *dir, int id, evo_final_info *info, char **folder);
/* Move DIR/final (with its front/) to DIR/final.K (the first free K; nothing
 * is deleted). */
dn_status evo_final_set_aside(const char *dir, FILE *log);
/* Move one folder FOLDER to FOLDER.K the same way (a front model trained anew). */
dn_status evo_final_set_aside_folder(const char *folder, FILE *log);

/* ------------------------------------------------------------ report */

/* `darknet evolve report DIR`: one self-contained HTML page (the progress
 * plot, the best individual's lineage, architecture diagrams, a summary)
 * plus the SVG and Graphviz files it embeds, written next to it. Reads the
 * run folder only, so it works while the search runs. */
typedef struct {
    const char *out;           /* the page; NULL: DIR/report/index.html; a folder: FOLDER/index.html */
    const int *ids; int nids;  /* more individuals to draw (besides the best and its ancestors) */
    int refresh;               /* > 0: a live page (a search writing it as it runs) that reloads
                                  itself every `refresh` seconds */
} evo_report_options;
/* *path (malloc'd; may be NULL) gets the page's path. Notes (Graphviz
 * missing, a figure that did not render) go to log (may be NULL). */
dn_status evo_report(const char *dir, const evo_report_options *ro, FILE *log, char **path);
/* The report at the end of a search: prints "report: PATH", or a warning
 * when it could not be written (never fails the search). */
void evo_report_after_search(const char *dir, FILE *log);

/* `darknet evolve ...` entry point (returns the process exit code). */
int evo_main(int argc, char **argv);

#endif /* EVO_H */
