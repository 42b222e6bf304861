/*
 * evo_internal.h — evo's implementation header, shared by the files of evo/
 * and its tests (the module's API for callers is evo.h): genomes, mutations,
 * the cell search space, inheritance, data, evaluation, the MPI wire format,
 * the run folder's writes, JSON lines, text buffers, selection, plots and
 * diagrams.
 *
 * Data flow of one evaluation:
 *   parent genome --mutate--> child genome --emit--> cfg text --parse--> network
 *   --inherit parent's matched layers--> train T steps --> validation accuracy
 *   --> run folder (cfg, weights, one event line).
 */
#ifndef EVO_INTERNAL_H
#define EVO_INTERNAL_H

#include "evo.h"

/* ------------------------------------------------------------ genome */

/* A genome is an ordinary Darknet cfg split into sections. Every layer
 * section carries a stable id that survives mutation; in emitted cfg text the
 * id rides on a comment line "# evo id=N" right before the section header,
 * which upstream Darknet ignores. Route/shortcut references are kept as gene
 * ids and emitted as relative indexes (layers=-3, from=-2). */
typedef struct {
    char *key, *value;
} evo_kv;

typedef struct {
    int id;              /* stable gene id, >= 1                         */
    char *type;          /* section name without brackets: "convolutional" */
    evo_kv *kv; int nkv; /* options in order, except layers= / from=      */
    int *refs; int nrefs;/* route: input gene ids; shortcut: one id       */
} evo_gene;

typedef struct {
    evo_kv *net; int nnet;   /* [net] options in order                    */
    evo_gene *genes; int n;  /* layer sections in order                   */
    int body_end;            /* genes [0, body_end) may mutate; the rest is the
                                classifier head (global pool, connected,
                                dropout, softmax, cost at the end), never broken */
    int next_id;             /* next unused gene id                        */
    char *cells;             /* cell architecture ("# evo cells <text>", see
                                evo_cells_format) of a genome expanded from a
                                cell template; NULL when none               */
} evo_genome;

/* cfg text (annotated or not) -> genome. Unannotated sections get ids 1..n. */
dn_status evo_genome_parse(const char *cfg_text, const char *name, evo_genome *out);
/* genome -> cfg text (malloc'd). annotate=1 writes "# evo" id lines;
 * annotate=0 writes a plain cfg for export. */
dn_status evo_genome_emit(const evo_genome *g, int annotate, char **text);
dn_status evo_genome_copy(const evo_genome *src, evo_genome *dst);
void evo_genome_free(evo_genome *g);

/* Option access on genes and [net]; set replaces or appends. */
const char *evo_gene_get(const evo_gene *g, const char *key);
dn_status evo_gene_set(evo_gene *g, const char *key, const char *value);
/* Whole-string integer option: *out = its value, or def when absent; -1 when
 * present but not an integer (within +-1e9). */
int evo_gene_int(const evo_gene *g, const char *key, int def, int *out);
dn_status evo_gene_set_int(evo_gene *g, const char *key, int value);
const char *evo_net_get(const evo_genome *g, const char *key);
dn_status evo_net_set(evo_genome *g, const char *key, const char *value);
int evo_genome_find(const evo_genome *g, int id);   /* index of gene id, or -1 */

/* ------------------------------------------------------------ limits */

/* Shape inference of the genome's cfg (nothing allocated) and the limits.
 * DN_OK when the genome builds and fits; otherwise an error saying why. */
typedef struct { int layers; size_t params; double flops; size_t memory; } evo_cost;
dn_status evo_genome_check(const evo_genome *g, const evo_limits *lim, evo_cost *cost);

/* g with every hidden [convolutional] / [connected] layer k times as wide
 * (k in [1, EVO_MAX_WIDTH]; the last one, the class scores, unchanged):
 * scale.c. out is a new genome; the result is not yet shape-checked. */
#define EVO_MAX_WIDTH 4
dn_status evo_genome_widen(const evo_genome *g, double k, evo_genome *out);

/* ------------------------------------------------------------ mutations */

/* Apply mutation m to g in place. DN_ERR_ARG (with a message) when m does not
 * apply to this genome (e.g. nothing to remove); g is then unchanged. The
 * result is not yet checked against shapes or limits. */
dn_status evo_mutate(evo_genome *g, evo_mutation m, uint64_t *rng);
/* learning_rate *= factor in g's [net] (the framework's default 0.001 when absent). */
dn_status evo_scale_learning_rate(evo_genome *g, double factor);

/* Number of 1x1 convolutions with stride > 1 (which upstream Darknet computes
 * wrongly); evo_mutate_child never lets a child have more than its parent. */
int evo_count_upstream_unsafe(const evo_genome *g);

/* The paper's step: draw a mutation uniformly, apply it to a copy of parent,
 * check shapes and limits; on failure draw again (up to max_tries). */
dn_status evo_mutate_child(const evo_genome *parent, const evo_limits *lim, uint64_t *rng,
                           int max_tries, evo_genome *child, evo_mutation *applied);

/* Function-preserving mutations (network morphisms; Net2Net, Chen et al.
 * 2016; NASH, Elsken et al. 2017). Started from the parent's weights
 * (evo_inherit, then evo_morph_init) the child computes the parent's function:
 *   deepen: an identity [convolutional] (3x3 stride 1, filters = its input
 *     channels, batch_normalize=1) after a body layer (or at the input); relu
 *     where its input is never negative, else a CReLU (2C filters, relu; its
 *     reader's weights for the second half negated) or linear (see mutate.c);
 *   widen: a body convolution's filters f -> [f+1, max(2f,16)], the new
 *     filters copies of old ones, the reader's weights split among the copies
 *     where its output reaches exactly one [convolutional] (groups=1) or
 *     [connected] through [maxpool], [avgpool], [local_avgpool], [activation]
 *     and [dropout], and no route/shortcut reads any of them; elsewhere (its
 *     channels read through routes and shortcuts, or by several layers) the
 *     new filters start fresh and every reader weighs them 0, where
 *     evo_widen_flow says that keeps the function;
 *   skip_zero: [route] of an earlier body layer -> [convolutional] (BN,
 *     linear, stride making its map the main path's; or a residual block:
 *     that conv with relu, then a 1x1 BN linear one) -> [shortcut] onto the
 *     main path; the last branch conv's batch-norm scales start at 0, so it
 *     adds 0;
 *   flatten: the head's global [avgpool] (read by its [connected], through
 *     [dropout] only) removed; the [connected] (O outputs) then reads the
 *     body's C x H x W output with W'[o][c*H*W + p] = W[o][c] / (H*W);
 *   deepen_head: a hidden [connected] (relu, N = 64, 128 or 256 units, at
 *     least 2 O) before the classifier (linear, no batch norm, O outputs,
 *     not already reading a [connected]): units j < O compute relu(z_j) and
 *     O + j relu(-z_j) from the old logits z, the classifier reads their
 *     difference (z) and the other units with weight 0.
 * They are plain evo_mutation values: evo_mutate applies them. */
int evo_mutation_is_morph(evo_mutation m);   /* 1 for deepen, widen, skip_zero, flatten, deepen_head */
int evo_flatten_pool(const evo_genome *g);   /* the [avgpool] flatten removes; -1: none */
int evo_head_classifier(const evo_genome *g);   /* the [connected] deepen_head reads from; -1: none */

/* Which mutations evo_mutate_child_set draws from:
 *   paper: the 11 Large-Scale Evolution mutations (evo_mutate_child: same draws);
 *   morph: deepen, widen, skip_zero, flatten, deepen_head, alter_learning_rate, identity;
 *   all:   the paper's 11 and the 5 morphisms. */
typedef enum { EVO_MUTSET_PAPER, EVO_MUTSET_MORPH, EVO_MUTSET_ALL } evo_mutation_set;
dn_status evo_mutation_set_from_name(const char *name, evo_mutation_set *out);   /* "paper", "morph", "all" */
const char *evo_mutation_set_name(evo_mutation_set s);                         /* "unknown" else */
/* The paper's step with a chosen set: draw a mutation uniformly from the set,
 * apply it to a copy of parent, check shapes, limits and upstream safety; on
 * failure draw again (up to max_tries). EVO_MUTSET_PAPER is evo_mutate_child. */
dn_status evo_mutate_child_set(const evo_genome *parent, const evo_limits *lim, evo_mutation_set set,
                               uint64_t *rng, int max_tries, evo_genome *child, evo_mutation *applied);
/* widen's Net2Net case: index of the one layer that reads body convolution
 * i's output (see above), -1 when there is no such single reader. */
int evo_widen_reader(const evo_genome *g, int i);
/* widen's general case: DN_OK when layer `layer` of net (a child's network,
 * shapes are enough), a [convolutional] grown from old_filters, can start
 * with its parent's function: its new channels reach only one-for-one
 * layers, routes, shortcuts that add them onto nothing old (nor shift what
 * they add), and the [convolutional] (groups 1) and [connected] layers that
 * then weigh them 0 (morph.c); an error saying where they go otherwise. */
dn_status evo_widen_flow(const dn_network *net, int layer, int old_filters);
/* deepen's CReLU: index of the layer that reads body convolution i's output
 * through layers linear in it ([avgpool], [local_avgpool], [dropout],
 * linear [activation]) and nothing else reads, a [convolutional] or
 * [connected]; -1 when there is none. */
int evo_crelu_reader(const evo_genome *g, int i);

/* After evo_inherit (which copies the layers whose gene id and array sizes
 * match): initialise what morphism m added or changed so that child(x) ==
 * parent(x) in inference (in training mode too, except for deepen's batch
 * norm, which then normalises with each batch's own statistics, and dropout's
 * random masks). X: n
 * training inputs (n * child->inputs floats; NULL or n < 1: mean 0 and
 * variance 1, exact in inference all the same) for deepen's batch-norm
 * statistics; seed: widen's copies and random split. Host arrays: call it
 * before dn_network_to_gpu. Other mutations: nothing to do (DN_OK). */
dn_status evo_morph_init(dn_network *child, const evo_genome *child_genome, const dn_network *parent,
                         const evo_genome *parent_genome, evo_mutation m, const float *X, int n, uint64_t seed);

/* ------------------------------------------------------------ cells */

/* The NASNet-style cell search space of "Regularized Evolution for Image
 * Classifier Architecture Search" (Real et al. 2019), from cfg templates.
 *
 * A template is an ordinary Darknet cfg whose outer stack (stem, head) the
 * user writes, with [cell] sections (type=normal|reduction, filters=F,
 * optional blocks=B) where cells go. An individual is one architecture for
 * the normal cell and one for the reduction cell (evo_cells), shared by every
 * [cell] of its type; evo_cells_expand turns template + cells into plain
 * Darknet layers (see cell.c for what each op becomes).
 *
 * Cell k reads h(k-1) = the layer right before its [cell] and h(k-2) = the
 * previous cell's h(k-1) (for the first cell, h(k-2) = h(k-1)). Each block
 * applies an op to each of two hidden states and adds the results; the cell
 * output concatenates the block outputs no later block reads. */
typedef enum {
    EVO_OP_IDENTITY, EVO_OP_SEP3, EVO_OP_SEP5, EVO_OP_SEP7, EVO_OP_MAX3, EVO_OP_AVG3,
    EVO_OP_CONV1, EVO_OP_CONV3, EVO_OP_COUNT
} evo_op;
/* "identity","sep3x3","sep5x5","sep7x7","max3x3","avg3x3","conv1x1","conv3x3" ("unknown" else). */
const char *evo_op_name(evo_op op);
dn_status evo_op_from_name(const char *name, evo_op *out);
/* -ops: "all", "upstream" (every op pjreddie Darknet loads) or a comma list
 * of op names -> op_mask (bit i = evo_op i). */
dn_status evo_ops_parse(const char *list, unsigned *mask);

#define EVO_OPS_ALL ((1u << EVO_OP_COUNT) - 1)                 /* op_mask: every op */
#define EVO_OPS_UPSTREAM (EVO_OPS_ALL & ~(1u << EVO_OP_AVG3))  /* ops pjreddie Darknet loads */
#define EVO_MAX_BLOCKS 16
#define EVO_DEFAULT_BLOCKS 5                                   /* B of the paper */

/* in[s]: hidden state index: 0 = h(k-2), 1 = h(k-1), 2+j = block j's output
 * (only j < the block's own index). op[s] is applied to in[s]. */
typedef struct { int in[2]; evo_op op[2]; } evo_block;
typedef struct { int blocks; evo_block normal[EVO_MAX_BLOCKS], reduction[EVO_MAX_BLOCKS]; } evo_cells;

/* DN_OK when c is well formed: 1 <= blocks <= EVO_MAX_BLOCKS, every input
 * index of block j in [0, 2+j), every op a known one. */
dn_status evo_cells_check(const evo_cells *c);

/* The genome (template) has at least one [cell] section. */
int evo_genome_has_cells(const evo_genome *g);
/* Template errors (unknown cell type or key, a cell with no layer before it,
 * filters missing or < 1, a cell in the classifier head, input sizes that do
 * not line up) -> DN_ERR_PARSE / DN_ERR_SHAPE. A genome has no line numbers,
 * so messages name "template: layer i"; evo_template_parse names file:line. */
dn_status evo_template_check(const evo_genome *tmpl);
/* evo_genome_parse + evo_template_check with "name:line: what" messages. */
dn_status evo_template_parse(const char *cfg_text, const char *name, evo_genome *out);
/* Blocks per cell the template asks for (its [cell] blocks=), else EVO_DEFAULT_BLOCKS. */
int evo_template_blocks(const evo_genome *tmpl);

/* Text form, stored on the comment line "# evo cells <text>" of an
 * individual's cfg; no whitespace (the cfg lexer strips it; parse skips it):
 *   normal=sep3x3(0)+identity(1),max3x3(1)+sep5x5(2);reduction=avg3x3(0)+conv1x1(1),...
 * one "op(input)+op(input)" per block, blocks separated by ',', the two cells
 * by ';' (both required, same number of blocks). */
dn_status evo_cells_parse(const char *text, evo_cells *out);
dn_status evo_cells_format(const evo_cells *c, char **text);        /* malloc'd */

/* Uniform sample: every block picks each input uniformly among the hidden
 * states available to it and each op uniformly among the ops of op_mask
 * (bit i = evo_op i; no known op in it: every op). blocks is clamped to
 * [1, EVO_MAX_BLOCKS]. Unused entries are zero. */
void evo_cells_random(evo_cells *c, int blocks, unsigned op_mask, uint64_t *rng);
/* The paper's mutations, applied to a uniformly chosen cell (normal or
 * reduction), block and input slot:
 *   hidden-state: the input index changes to a different valid one (< the
 *     block's own state index, so the cell stays a DAG);
 *   op: the op changes to a different op of op_mask.
 * DN_ERR_ARG (message, c unchanged) when no other choice exists or c is
 * malformed. Identity ("no change") is the caller's. */
dn_status evo_cells_mutate_hidden(evo_cells *c, uint64_t *rng);
dn_status evo_cells_mutate_op(evo_cells *c, unsigned op_mask, uint64_t *rng);

/* Expand every [cell] of the template into plain Darknet layers with cell
 * architecture c. out has no [cell] left and carries c as out->cells. Gene
 * ids are a function of (template, c): template layers keep theirs; layer
 * `role` of the k-th cell (0-based) gets tmpl->next_id + k*EVO_CELL_ID_STRIDE
 * + role, where the role names the block, input slot and kind of layer, so
 * a layer keeps its id (and inherited weights) across mutations elsewhere. */
#define EVO_CELL_ID_STRIDE 400
dn_status evo_cells_expand(const evo_genome *tmpl, const evo_cells *c, evo_genome *out);
/* Export at another width/depth: every [cell]'s filters scaled so that the
 * first cell has `filters` (<= 0: unchanged; each at least 1), every run of
 * consecutive normal [cell]s made `normal_cells` long (<= 0: unchanged; extra
 * cells are copies of the run's last one, with fresh ids). Still a template. */
dn_status evo_template_rescale(const evo_genome *tmpl, int filters, int normal_cells, evo_genome *out);
/* Why pjreddie Darknet cannot load c's expansion (avg3x3 is [local_avgpool],
 * AlexeyAB's fork only), or NULL when it can. */
const char *evo_cells_upstream_note(const evo_cells *c);
/* Which Darknet forks load a plain cfg: "loads in: ..." (a [local_avgpool],
 * the avg3x3 op, is AlexeyAB-only). */
const char *evo_forks_note(const char *cfg_text);

/* ------------------------------------------------------------ inheritance */

/* Copy into child every parameter array of the parent's layer with the same
 * gene id when the layer type and every array size match (bit for bit,
 * including batch-norm rolling statistics). Layers without a match keep the
 * initialisation the framework gave them. Returns counts of layers copied and
 * layers left initialised. Also carries over `seen`. */
typedef struct { int copied, initialised; } evo_inherit_stats;
dn_status evo_inherit(dn_network *child, const evo_genome *child_genome,
                      const dn_network *parent, const evo_genome *parent_genome,
                      evo_inherit_stats *stats);

/* ------------------------------------------------------------ data */

/* Loaded once per process and shared by every evaluation. The validation
 * split is carved from the training images; the test set is not loaded
 * during the search. */
typedef struct {
    dn_data_config config;
    dn_split train;          /* training images minus the holdout */
    dn_split holdout;        /* validation split (last `holdout` images after a seeded shuffle) */
    int classes;
} evo_data;

dn_status evo_data_load(const char *data_path, int holdout, uint64_t seed, int max_train, evo_data *out);
void evo_data_free(evo_data *d);

/* ------------------------------------------------------------ evaluation */

/* Learning rate of each evaluation (-schedule). */
typedef enum {
    EVO_SCHEDULE_CFG,        /* the cfg's policy= on the lineage's seen count (upstream's rule) */
    EVO_SCHEDULE_CONSTANT,   /* the genome's learning_rate throughout (the paper's) */
    EVO_SCHEDULE_COSINE      /* warm-up, then cosine to 1/100 over the evaluation's own steps */
} evo_schedule;
dn_status evo_schedule_from_name(const char *name, evo_schedule *out);
/* Rate of step i (0-based) of n for the peak rate lr under EVO_SCHEDULE_COSINE:
 * a linear warm-up from lr/10 over the first max(1, n/20) steps, then
 * lr/100 + (lr - lr/100) (1 + cos(pi t)) / 2 with t going from 0 to 1 over
 * the rest. Every evaluation (child, promotion, final training) restarts it,
 * as SGDR's warm restarts. */
float evo_cosine_rate(float lr, int i, int n);
/* Set net's rate for step i of n under schedule (evo_schedule): the cfg's
 * policy is left alone for EVO_SCHEDULE_CFG; peak: the genome's learning_rate. */
void evo_set_rate(dn_network *net, int schedule, float peak, int i, int n);
/* The loader's augmentation: the .data's flip= / crop_pad= / erase=, or with
 * augment a random horizontal flip, a 2-pixel pad-and-crop and random erasing
 * with probability erase (0: none). */
void evo_augment(dn_loader_options *lo, const dn_data_config *dc, int augment, float erase);
/* "flip + crop", "flip + crop + erasing 0.5" or "no augmentation", into buf. */
const char *evo_augment_text(int augment, float erase, char *buf, size_t n);

typedef struct {
    int steps;               /* training batches per child                */
    int batch;               /* images per batch (overrides the cfg)      */
    int inherit;             /* 1: start from the parent's matched weights */
    uint64_t seed;           /* drives init, dropout and data order        */
    int threads;             /* BLAS threads (0: the default)              */
    int gpu;                 /* 1 + CUDA device to train on; 0: the CPU    */
    int schedule;            /* evo_schedule                               */
    int val_images;          /* score on the first N holdout images (0: all) */
    int augment;             /* 1: flip and 2-pixel crop on training batches (unless the .data says) */
    float erase;             /* with augment: random erasing's probability per image */
    evo_mutation mutation;   /* a morphism: evo_morph_init after inheritance */
    int latency_threads;     /* > 0: measure the inference latency with this many threads */
} evo_eval_options;

typedef struct {
    evo_outcome outcome;
    char reason[512];        /* why it failed                              */
    int diverged;            /* it failed because the loss, weights or outputs became NaN or Inf */
    char retried[512];       /* a child that diverged at its genome's rate and was trained again
                                at half the rate (the search's evaluate_child): the first reason */
    float accuracy;          /* validation top-1 in [0,1]                   */
    int val_images;          /* holdout images it was measured on           */
    float loss;              /* mean training loss of the last batches      */
    int steps;               /* batches trained                            */
    uint64_t seen;           /* images seen by the lineage                  */
    double train_seconds, eval_seconds, build_seconds;
    evo_inherit_stats inherited;
    size_t params; double flops;
    float latency_ms;        /* inference ms per image at batch 1 (0: not measured) */
    float latency_batch_ms;  /* ... per image at the evaluation's batch */
    void *weights; size_t weights_size;  /* trained .weights bytes (malloc'd) */
} evo_result;

/* Build the child from its cfg, inherit from the parent (cfg text + weights
 * bytes; NULL for none), train, validate. Never fails the process: a bad cfg,
 * divergence or out-of-memory gives outcome EVO_FAILED with the reason. */
void evo_evaluate(const evo_genome *child, const evo_genome *parent, const void *parent_weights,
                  size_t parent_weights_size, const evo_data *data, const evo_eval_options *o,
                  evo_result *r);
void evo_result_free(evo_result *r);

/* ------------------------------------------------------------ MPI messages (wire.c)
 * Rank 0 and its workers exchange self-describing byte messages: a header
 * (magic "DNEV", version, type, payload length) and fixed-width fields and
 * length-prefixed strings, little-endian. evo_wire_open rejects a short,
 * foreign, wrong-version or wrong-length message with a clear error. */

#define EVO_WIRE_VERSION 5
/* ALIVE: a worker's heartbeat, every second while it runs */
typedef enum { EVO_MSG_SETUP = 1, EVO_MSG_READY, EVO_MSG_TASK, EVO_MSG_RESULT, EVO_MSG_STOP, EVO_MSG_ALIVE } evo_msg_type;

typedef struct { unsigned char *data; size_t len, cap; int failed; } evo_wire;   /* a message being written */
typedef struct { const unsigned char *p; size_t left; const char *what; int failed; } evo_reader;

void evo_wire_begin(evo_wire *w, evo_msg_type type);
void evo_wire_u32(evo_wire *w, uint32_t v);
void evo_wire_u64(evo_wire *w, uint64_t v);
void evo_wire_f64(evo_wire *w, double v);
void evo_wire_bytes(evo_wire *w, const void *p, size_t n);
void evo_wire_str(evo_wire *w, const char *s);
dn_status evo_wire_finish(evo_wire *w);   /* sets the payload length */
void evo_wire_free(evo_wire *w);
/* Check the header of msg (size bytes); r then reads the payload. */
dn_status evo_wire_open(const void *msg, size_t size, evo_msg_type *type, evo_reader *r);
dn_status evo_read_u32(evo_reader *r, const char *field, uint32_t *v);
dn_status evo_read_u64(evo_reader *r, const char *field, uint64_t *v);
dn_status evo_read_f64(evo_reader *r, const char *field, double *v);
/* text (n NULL): a C string, "" when empty; binary: a copy and its length, NULL when empty */
dn_status evo_read_bytes(evo_reader *r, const char *field, void **out, size_t *n);
dn_status evo_read_end(evo_reader *r);   /* nothing may be left */

/* What a worker rank needs before its first task. */
typedef struct {
    char *data_path;
    int holdout, max_train, threads;   /* threads 0: CPUs of the node / its workers */
    uint64_t seed;
    char *gpus;                        /* "" or a device list; worker k of a node uses device k mod count */
} evo_setup_msg;
/* One evaluation: the child (and parent) as annotated cfg text. */
typedef struct {
    int id;
    evo_eval_options eval;   /* seed, steps, batch, inherit (threads and gpu: the worker's own) */
    char *child_cfg, *parent_cfg;
    void *parent_weights; size_t parent_weights_size;
} evo_task_msg;

dn_status evo_wire_setup(evo_wire *w, const evo_setup_msg *m);
dn_status evo_unwire_setup(evo_reader *r, evo_setup_msg *m);
void evo_setup_msg_free(evo_setup_msg *m);
dn_status evo_wire_ready(evo_wire *w, dn_status status, const char *error);
dn_status evo_unwire_ready(evo_reader *r, uint32_t *status, char **error);
dn_status evo_wire_task(evo_wire *w, const evo_task_msg *m);
dn_status evo_unwire_task(evo_reader *r, evo_task_msg *m);
void evo_task_msg_free(evo_task_msg *m);
/* worker_seconds: the worker's time from receiving the task to sending this */
dn_status evo_wire_result(evo_wire *w, int id, const evo_result *r, double worker_seconds);
dn_status evo_unwire_result(evo_reader *r, int *id, evo_result *res, double *worker_seconds);

/* ------------------------------------------------------------ MPI (mpi.c; make MPI=1)
 * mpirun -np K darknet evolve ... -mpi: rank 0 runs the search with one
 * thread per worker rank; ranks 1..K-1 run evo_mpi_worker until told to stop. */
int evo_mpi_built(void);
dn_status evo_mpi_init(int *argc, char ***argv, int *rank, int *size);
void evo_mpi_finalize(void);
/* rank 0: set up worker `rank` (it loads the data) and wait until it is ready */
dn_status evo_mpi_connect(int rank, const evo_setup_msg *m);
/* rank 0: one evaluation on worker `rank`; an error (transport, malformed or
 * mismatched reply, or no message at all for DN_MPI_TIMEOUT seconds: the rank
 * died) means the rank must be dropped */
dn_status evo_mpi_evaluate(int rank, const evo_task_msg *t, evo_result *r, double *worker_seconds);
void evo_mpi_stop_workers(void);   /* rank 0, at the end: every worker still alive exits its loop */
int evo_mpi_worker(FILE *log);     /* ranks > 0: serve until stopped; the exit code */

/* ------------------------------------------------------------ the event log (events.c) */

/* The options that define a search's training and validation images: the
 * holdout is carved out of the first max_train images of the data's train
 * split, shuffled with the seed. Evaluation 1 records them; they cannot
 * change afterwards (every recorded accuracy was measured on that holdout). */
typedef struct {
    char *data;
    uint64_t seed;
    int holdout, max_train;
} evo_data_key;

/* One line of events.jsonl. */
typedef struct {
    int eval, id, parent;
    int promotion;                  /* 1: "event":"promotion" of the living individual id (not a child) */
    int rung;                       /* the fidelity level it reached (children: 0) */
    int val_images;                 /* holdout images the accuracy was measured on (0: unknown) */
    evo_mutation mutation;
    evo_outcome outcome;
    float accuracy;
    int steps;
    double seconds;
    size_t params;
    double flops;
    float latency_ms, latency_batch_ms;   /* 0: not measured */
    const int *killed; int nkilled;
    const int *lost; int nlost;     /* living individuals whose files were found damaged */
    const evo_data_key *key;        /* written with evaluation 1 only */
    uint64_t rng;
    double elapsed;
    int worker;
    double worker_busy;
} evo_event;

/* What replaying events.jsonl gives. */
typedef struct {
    evo_state state;
    /* The baseline: the first initial individual that trained. Its weights are
     * kept for good, even after it dies, so that every later individual can be
     * compared with the unmutated seed architecture trained the same way. */
    int baseline;            /* -1: none yet */
    evo_data_key key;        /* as evaluation 1 recorded it (has_key) */
    int has_key;
    long good_end;           /* bytes up to the last whole line */
    int torn;                /* the text ends in a torn line (a kill while writing it) */
} evo_log;

/* Replay text (the file at path) into log (zeroed, baseline -1): each line
 * checked and applied; an unparsable last line is torn (warned); any other bad
 * line is an error "path:line: what". */
dn_status evo_log_replay(evo_log *log, const char *path, const char *text, size_t size);
void evo_log_free(evo_log *log);
/* Every rule a replay enforces; nothing is changed. */
dn_status evo_event_check(const evo_state *s, const evo_event *e);
/* Room for one more individual, so that evo_event_apply cannot fail. */
dn_status evo_state_reserve(evo_state *s);
void evo_event_apply(evo_state *s, const evo_event *e, int *baseline);
/* The event as one JSON line ending in '\n' (malloc'd); r may be NULL. */
dn_status evo_event_line(const evo_event *e, const evo_result *r, char **line, size_t *len);
dn_status evo_state_copy(const evo_state *src, evo_state *dst);

/* ------------------------------------------------------------ the option table (options.c) */

/* One row per search option: its flag (NULL: a positional input), the word
 * after it in the help, its options.cfg key (NULL: not saved, as -out), the
 * type and field of evo_options, the default and the paper's value as text
 * (NULL: none), the help, and whether -resume may change it. */
typedef enum { EVO_OPT_STR, EVO_OPT_INT, EVO_OPT_DBL, EVO_OPT_U64, EVO_OPT_MIB } evo_opt_type;
typedef struct {
    const char *flag, *arg, *key;
    evo_opt_type type;       /* EVO_OPT_MIB: a double of bytes, given in MiB on the command line */
    size_t offset;
    const char *def, *paper, *help;
    int resume;
    const char *legacy;      /* the value when options.cfg lacks the key (a folder written before the
                                option existed keeps its behaviour); NULL: the default */
} evo_option_spec;

const evo_option_spec *evo_option_table(int *n);
const evo_option_spec *evo_option_by_flag(const char *flag);   /* NULL: no such flag */
/* A command-line value into o; -1 when it is not of the option's type
 * (evo_option_wants says what it wants: "an integer", ...). */
int evo_option_set(evo_options *o, const evo_option_spec *f, const char *value);
const char *evo_option_wants(const evo_option_spec *f);
void evo_option_print_default(FILE *out, const evo_option_spec *f);
/* options.cfg: the text of o, and o from the text (text is modified). */
dn_status evo_options_text(const evo_options *o, char **text);
dn_status evo_options_parse(char *text, const char *path, evo_options *o);

/* ------------------------------------------------------------ run folder: the search's writes */

/* Atomic writes of an individual's annotated cfg and weights. */
dn_status evo_store_save_individual(evo_store *st, int id, const char *cfg_text, const void *weights, size_t size);
dn_status evo_store_load_individual(evo_store *st, int id, char **cfg_text, void **weights, size_t *size);
dn_status evo_store_remove_weights(evo_store *st, int id);
/* Append one evaluation event (and the deaths it caused) as one JSON line, fsync'd. */
dn_status evo_store_append_event(evo_store *st, const evo_individual *child, const evo_result *r,
                                 const int *killed, int nkilled, uint64_t rng_after, double elapsed);
/* Individual id's cells in the run's template at filters / cells (export.c):
 * a plain cfg (malloc'd) to train from scratch. */
dn_status evo_scaled_cfg(evo_store *st, int id, int filters, int cells, char **plain);

/* The event of a promotion of living individual v (its state before it) as
 * evaluation eval, from the further training's result r (events.c). */
void evo_promotion_event(const evo_individual *v, int eval, const evo_result *r, uint64_t rng, double elapsed,
                         evo_event *e);

/* The final training's loss curve (DIR/final/curve.tsv, finish.c): at most
 * max (step, mean loss) points into step and loss; returns how many (0: none). */
#define EVO_CURVE_POINTS 64
int evo_final_curve(const char *dir, int *step, float *loss, int max);

/* With -hours and -patience: how long the best individual has stood at
 * search second `now` (the same ranking as evo_state_best_ever), when that is
 * at least -patience of the search's time, the initial population is
 * evaluated and the search's time is not up: the search ends early; else -1. */
double evo_stood_for(const evo_options *o, const evo_state *s, double now);
/* Seconds of -hours the search may spend: all of them, less -final's share. */
double evo_search_seconds(const evo_options *o);

/* A promotion of living individual ind (its state before it) as evaluation
 * eval: r holds the further training's steps, seconds and the new score
 * (outcome failed: it stays at its level and is not promoted again). */
dn_status evo_store_append_promotion(evo_store *st, const evo_individual *ind, int eval, const evo_result *r,
                                     uint64_t rng_after, double elapsed);
/* DIR/seed.cfg parsed (the seed or cell template the search started from). */
dn_status evo_store_load_seed(evo_store *st, evo_genome *seed);


/* ------------------------------------------------------------ store internals (data, evaluate, store, export) */

/* Files, folders and the cfg lexer come from the framework's toolkit
 * (darknet_toolkit.h): dn_read_file, dn_write_file_atomic, dn_make_dirs. */
/* Top-1 accuracy of net on every image of s (unlabelled images count as wrong).
 * A non-finite output is DN_ERR_NUMERIC. Uses the network's batch as is. */
dn_status evo_split_accuracy(dn_network *net, const dn_split *s, float *accuracy);

/* JSON lines of events.jsonl: a writer for one flat object per line, and a
 * reader for exactly such objects (numbers, strings, arrays of ints). */
typedef struct { char *buf; size_t len, cap; int fields, failed; } evo_json_writer;
void evo_json_begin(evo_json_writer *w);
void evo_json_int(evo_json_writer *w, const char *key, long long v);
void evo_json_u64(evo_json_writer *w, const char *key, uint64_t v);
void evo_json_num(evo_json_writer *w, const char *key, double v);   /* non-finite: null */
void evo_json_str(evo_json_writer *w, const char *key, const char *v);
void evo_json_ints(evo_json_writer *w, const char *key, const int *v, int n);
/* Closes the object, appends '\n'; *line (malloc'd) is the whole line. */
dn_status evo_json_end(evo_json_writer *w, char **line, size_t *len);

typedef enum { EVO_JSON_NULL, EVO_JSON_NUMBER, EVO_JSON_STRING, EVO_JSON_INTS } evo_json_type;
typedef struct {
    char *key;
    evo_json_type type;
    double num; uint64_t u64; int is_int;   /* numbers (u64: a non-negative integer, exact) */
    char *str;                              /* strings */
    int *ints; int nints;                   /* arrays of ints */
} evo_json_field;
typedef struct { evo_json_field *f; int n; } evo_json_object;
/* One line into an object; errors say "column N: what". */
dn_status evo_json_parse(const char *line, size_t len, evo_json_object *out);
const evo_json_field *evo_json_get(const evo_json_object *o, const char *key);
void evo_json_object_free(evo_json_object *o);

/* 1 when path names something that exists (util.c). */
int evo_file_exists(const char *path);

/* A growing text buffer: evo_text_add appends printf-style; an allocation
 * failure is remembered (failed) and the text stays as it was. */
typedef struct { char *s; size_t n, cap; int failed; } evo_text;
void evo_text_add(evo_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void evo_text_put(evo_text *t, const char *s, size_t n);
void evo_text_html(evo_text *t, const char *s);     /* s with & < > " ' escaped for HTML */
void evo_text_free(evo_text *t);
/* s as one shell word for a command a user may copy ("export with: ..."): s
 * itself when it is plain, else single-quoted into buf (n bytes). */
const char *evo_shell_quote(const char *s, char *buf, size_t n);
/* Writes t atomically to path and frees it (out of memory: DN_ERR_NOMEM). */
dn_status evo_text_write(evo_text *t, const char *path);

/* ------------------------------------------------------------ selection */

/* The paper's pairwise tournament over the living individuals of s, drawing
 * from s->rng: *parent gets the better of two distinct random ones; *killed
 * the worse when at least `population` are alive, else -1. One alive: it is
 * the parent. None alive: *parent = -1 (start again from the seed). */
dn_status evo_tournament(evo_state *s, int population, int costs, int *parent, int *killed);
/* Regularized (aging) evolution: *parent gets the best of `sample` distinct
 * living individuals drawn at random (all of them when fewer live; ties: the
 * younger wins); *killed the oldest living one when at least `population`
 * are alive, else -1. None alive: *parent = -1. */
dn_status evo_aging(evo_state *s, int population, int sample, int costs, int *parent, int *killed);
/* The id of the worst living individual (random search kills it when the
 * population is full), or -1 when none lives. */
dn_status evo_worst_alive(const evo_state *s, int costs, int *id);
/* With costs (EVO_COST_* bits, -objective), "better" in all three is the
 * multi-objective order of pareto.c: the lower non-dominated rank within the
 * living population, then the larger crowding distance, then the younger;
 * without, the higher accuracy, then the younger. */

/* ------------------------------------------------------------ objectives (pareto.c) */

enum { EVO_COST_FLOPS = 1, EVO_COST_PARAMS = 2, EVO_COST_LATENCY = 4 };
#define EVO_MAX_OBJECTIVES 4   /* the error and the three costs */
/* "acc", "acc,flops", "acc,params,latency", ... (acc may be left out) -> EVO_COST_* bits */
dn_status evo_objective_parse(const char *text, int *costs);
const char *evo_objective_name(int costs);     /* the canonical text: "acc,flops" */
/* o->objective's costs; unset (NULL or "", as in options built by hand): accuracy alone */
dn_status evo_options_costs(const evo_options *o, int *costs);
const char *evo_cost_name(int cost);           /* one EVO_COST_* bit: "flops" */
double evo_cost_of(const evo_individual *v, int cost);
/* v's objectives, all to minimise, into out[EVO_MAX_OBJECTIVES]: 1 - accuracy,
 * then the chosen costs in the order flops, params, latency; returns their count. */
int evo_objective_values(const evo_individual *v, int costs, double *out);
int evo_dominates(const evo_individual *a, const evo_individual *b, int costs);
/* Non-dominated rank (0: the set's front) of each of v[0 .. n) into rank[],
 * and, when crowding is not NULL, its crowding distance within its rank
 * (INFINITY at the extremes of each objective). */
dn_status evo_pareto_rank(const evo_individual *const *v, int n, int costs, int *rank, double *crowding);
/* 1 when a is preferred to b: lower rank, then larger crowding, then younger. */
int evo_pareto_better(const evo_individual *a, int rank_a, double crowd_a, const evo_individual *b, int rank_b,
                      double crowd_b);
/* Individual s->ind[i] has a new score (added, or promoted): the archive
 * (evo_individual.archived, by s->costs) takes it unless an archived model
 * dominates or equals it, and drops the archived models it dominates; a
 * model dropped never returns (pareto.c). evo_event_apply calls it. */
void evo_archive_update(evo_state *s, int i);
/* The archive: indexes into s->ind (malloc'd, in evaluation order). */
dn_status evo_pareto_archive(const evo_state *s, int **idx, int *n);
/* 1 when individual id is in the archive. */
int evo_pareto_member(const evo_state *s, int id);
/* The first of the costs in the order flops, params, latency (0: none): what
 * the archive is sorted by and the front's final training is tiered by. */
int evo_first_cost(int costs);
/* The top-ranked (evo_ranks_above) of the models whose weights the search
 * keeps (the living, the best ever, with costs the archive) within the
 * budget, not in skip[]; finished=1: only those with a finished final
 * training (evo_final_read_of, not outdated by later evaluations). A clear
 * error names the cheapest kept model when none fits (export.c). */
dn_status evo_pick_within(const char *dir, const evo_options *o, evo_state *s, const evo_budget *b, const int *skip,
                          int nskip, int finished, const evo_individual **out);

/* ------------------------------------------------------------ report internals (plot.c, diagram.c) */

/* The progress plot (plot.c) as SVG text: one <circle class="ind alive|dead|failed"
 * data-id=.. > per individual of s and nothing else drawn as a circle (x: the
 * evaluation number, or the search time when over_time; failures in a band
 * below the axis), the best accuracy so far as a step line, and the lineage
 * (ids from the initial individual to the best; may be empty) as a line. */
dn_status evo_plot_progress(const evo_state *s, const int *lineage, int nlineage, int over_time, char **svg);
/* The Pareto plot (plot.c) of validation accuracy against one cost
 * (EVO_COST_*): one <circle class="ind ..."> per successful individual with
 * that cost known ("archived" when in the archive of a search with costs),
 * the front as a step line with its earlier states, the seed (seed_id, -1:
 * none) marked. */
dn_status evo_plot_pareto(const evo_state *s, int cost, int seed_id, char **svg);

/* Architecture diagrams (diagram.c) as Graphviz dot text. A network: the
 * layers of an individual's cfg as boxes (type, filters, size/stride,
 * activation, output w x h x c from shape inference; the options as written
 * when its shapes do not infer), edges for the flow, routes and shortcuts.
 * A cell: its two inputs h(k-2), h(k-1), each block's two ops and sum, and
 * the concatenated output. id (may be NULL) prefixes the ids of the
 * rendered SVG's elements, so that several can share one page. */
dn_status evo_diagram_network(const char *cfg_text, const char *name, const char *id, const char *title, char **dot);
dn_status evo_diagram_cell(const evo_cells *c, int reduction, const char *id, const char *title, char **dot);
/* Graphviz `dot` is on PATH. */
int evo_dot_available(void);
/* dot -Tsvg dot_path into svg_path (atomically). */
dn_status evo_dot_render(const char *dot_path, const char *svg_path);

#endif /* EVO_INTERNAL_H */
