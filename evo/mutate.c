/*
 * mutate.c — the mutations of "Large-Scale Evolution of Image Classifiers"
 * (Real et al. 2017), applied to genomes that are Darknet cfgs, and the
 * paper's step "copy the parent, draw one mutation, keep the child if valid".
 *
 * Every mutation edits only the body, genes [0, body_end): the classifier
 * head and the input ([net] width/height/channels) never change. Positions
 * for insertions are in [0, body_end]; a gene inserted at p reads the output
 * of gene p-1 (the network input when p = 0). New genes get fresh ids from
 * next_id; untouched genes keep theirs. All draws are uniform and come from
 * the caller's rng (dn_rand_u64 / dn_rand_uniform), so results are
 * deterministic given the rng state.
 *
 * Darknet adaptations (see the README):
 *   - kernels are square: the paper alters the horizontal or the vertical
 *     filter size, but upstream Darknet has no rectangular kernels, so
 *     alter_filter_size changes both at once;
 *   - strides are powers of two, changed by one octave (1..8);
 *   - a skip connection is a [shortcut] (elementwise sum over the smaller
 *     channel count, Darknet's stand-in for the paper's interpolation /
 *     truncation of non-primary inputs);
 *   - a gene referenced by a [route] or [shortcut] is never removed.
 */
#include "evo_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *const mutation_names[EVO_MUT_COUNT] = {
    "alter_learning_rate", "identity", "reset_weights", "insert_convolution", "remove_convolution", "alter_stride",
    "alter_channels", "alter_filter_size", "insert_one_to_one", "add_skip", "remove_skip",
};

/* The cell-space kinds, which live outside [0, EVO_MUT_COUNT). */
static const struct { evo_mutation m; const char *name; } cell_kinds[] = {
    {EVO_MUT_HIDDEN_STATE, "hidden_state"}, {EVO_MUT_OP, "op"}, {EVO_MUT_RANDOM, "random"},
};

const char *evo_mutation_name(evo_mutation m)
{
    if (m == EVO_MUT_NONE) return "none";
    for (size_t i = 0; i < sizeof cell_kinds / sizeof *cell_kinds; ++i)
        if (cell_kinds[i].m == m) return cell_kinds[i].name;
    return (m >= 0 && m < EVO_MUT_COUNT) ? mutation_names[m] : "unknown";
}

dn_status evo_mutation_from_name(const char *name, evo_mutation *out)
{
    if (!name || !out) return evo_fail(DN_ERR_ARG, "evo_mutation_from_name: no name or output");
    if (strcmp(name, "none") == 0) { *out = EVO_MUT_NONE; return DN_OK; }
    for (int m = 0; m < EVO_MUT_COUNT; ++m)
        if (strcmp(name, mutation_names[m]) == 0) { *out = (evo_mutation)m; return DN_OK; }
    for (size_t i = 0; i < sizeof cell_kinds / sizeof *cell_kinds; ++i)
        if (strcmp(name, cell_kinds[i].name) == 0) { *out = cell_kinds[i].m; return DN_OK; }
    return evo_fail(DN_ERR_ARG, "unknown mutation '%s'", name);
}

/* ------------------------------------------------------------ helpers */

/* Uniform integer in [lo, hi]. */
static int rand_int(uint64_t *rng, int lo, int hi)
{
    return lo + (int)(dn_rand_u64(rng) % (uint64_t)(hi - lo + 1));
}

/* Uniform integer in [lo, hi] other than `skip` (which lies in the range,
 * and the range holds at least two values). */
static int rand_int_except(uint64_t *rng, int lo, int hi, int skip)
{
    int v = rand_int(rng, lo, hi - 1);
    return v >= skip ? v + 1 : v;
}

/* Integer option of a gene, `def` when absent; -1 when not a number. */
static int gene_int(const evo_gene *g, const char *key, int def, int *out)
{
    const char *s = evo_gene_get(g, key);
    if (!s) { *out = def; return 0; }
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < -1000000000L || v > 1000000000L) return -1;
    *out = (int)v;
    return 0;
}

static dn_status gene_set_int(evo_gene *g, const char *key, int v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%d", v);
    return evo_gene_set(g, key, buf);
}

static void gene_clear(evo_gene *g)
{
    for (int i = 0; i < g->nkv; ++i) {
        free(g->kv[i].key);
        free(g->kv[i].value);
    }
    free(g->kv);
    free(g->type);
    free(g->refs);
    memset(g, 0, sizeof *g);
}

/* A new gene of `type` with key=value pairs from a NULL-terminated list. */
static dn_status gene_make(evo_gene *g, const char *type, const char *const *kv)
{
    memset(g, 0, sizeof *g);
    g->type = strdup(type);
    if (!g->type) return evo_fail(DN_ERR_NOMEM, "out of memory");
    for (int i = 0; kv && kv[i]; i += 2) {
        dn_status st = evo_gene_set(g, kv[i], kv[i + 1]);
        if (st != DN_OK) { gene_clear(g); return st; }
    }
    return DN_OK;
}

/* Move `count` built genes into g at position pos (<= body_end); ids are
 * given here from next_id. On failure the genes are freed and g is unchanged. */
static dn_status insert_genes(evo_genome *g, int pos, evo_gene *genes, int count)
{
    evo_gene *ng = realloc(g->genes, (size_t)(g->n + count) * sizeof *ng);
    if (!ng) {
        for (int k = 0; k < count; ++k) gene_clear(&genes[k]);
        return evo_fail(DN_ERR_NOMEM, "out of memory");
    }
    g->genes = ng;
    memmove(&ng[pos + count], &ng[pos], (size_t)(g->n - pos) * sizeof *ng);
    for (int k = 0; k < count; ++k) {
        ng[pos + k] = genes[k];
        ng[pos + k].id = g->next_id++;
    }
    g->n += count;
    g->body_end += count;
    return DN_OK;
}

static void remove_gene(evo_genome *g, int i)
{
    gene_clear(&g->genes[i]);
    memmove(&g->genes[i], &g->genes[i + 1], (size_t)(g->n - i - 1) * sizeof *g->genes);
    g->n--;
    g->body_end--;
}

static int is_type(const evo_gene *g, const char *type) { return strcmp(g->type, type) == 0; }

/* 1 when some route/shortcut reads gene `id`. */
static int is_referenced(const evo_genome *g, int id)
{
    for (int i = 0; i < g->n; ++i)
        for (int k = 0; k < g->genes[i].nrefs; ++k)
            if (g->genes[i].refs[k] == id) return 1;
    return 0;
}

/* Body genes of `type` (unreferenced ones only when `free_only`), into idx (n). */
static int body_genes(const evo_genome *g, const char *type, int free_only, int *idx)
{
    int n = 0;
    for (int i = 0; i < g->body_end; ++i)
        if (is_type(&g->genes[i], type) && !(free_only && is_referenced(g, g->genes[i].id))) idx[n++] = i;
    return n;
}

/* Index of a uniformly drawn body gene of `type`, or -1 (message set). */
static int pick_body_gene(const evo_genome *g, const char *type, int free_only, uint64_t *rng, const char *mut)
{
    int *idx = malloc((size_t)(g->body_end + 1) * sizeof *idx);
    if (!idx) { evo_fail(DN_ERR_NOMEM, "out of memory"); return -1; }
    int n = body_genes(g, type, free_only, idx);
    int pick = n ? idx[rand_int(rng, 0, n - 1)] : -1;
    free(idx);
    if (pick < 0)
        evo_fail(DN_ERR_ARG, "%s does not apply: no %s[%s] in the body", mut, free_only ? "removable " : "", type);
    return pick;
}

/* Shape inference of g (nothing allocated): layer i of the network is gene i. */
static dn_status genome_shapes(const evo_genome *g, dn_network **net)
{
    char *text;
    DN_TRY(evo_genome_emit(g, 0, &text));
    dn_parse_options po = {.batch = 1, .quiet = 1, .shapes_only = 1};
    dn_status st = dn_network_parse_string(text, "<genome>", &po, net);
    free(text);
    if (st != DN_OK) return evo_fail(st, "the parent genome does not build: %s", dn_last_error());
    return DN_OK;
}

/* ------------------------------------------------------------ mutations */

/* learning_rate *= 2^U(-1,1) (the framework's default 0.001 when absent). */
static dn_status alter_learning_rate(evo_genome *g, uint64_t *rng)
{
    const char *s = evo_net_get(g, "learning_rate");
    double lr = 0.001;
    if (s) {
        char *end;
        lr = strtod(s, &end);
        if (end == s || *end || !(lr > 0) || !isfinite(lr))
            return evo_fail(DN_ERR_ARG, "alter_learning_rate does not apply: learning_rate=%s is not a positive number", s);
    }
    double nlr = lr * exp2((double)dn_rand_uniform(rng, -1, 1));
    char buf[64];
    snprintf(buf, sizeof buf, "%.6g", nlr);
    return evo_net_set(g, "learning_rate", buf);
}

/* [convolutional] size=3 pad=1 stride 1|2, filters = the input channels at
 * the position, then BN + relu or linear without BN. */
static dn_status insert_convolution(evo_genome *g, uint64_t *rng)
{
    dn_network *net;
    DN_TRY(genome_shapes(g, &net));
    int pos = rand_int(rng, 0, g->body_end);
    int channels = pos == 0 ? net->c : net->layers[pos - 1].out_c;
    dn_network_free(net);
    int stride = rand_int(rng, 1, 2);
    int bn = rand_int(rng, 0, 1);
    char filters[32], str[8];
    snprintf(filters, sizeof filters, "%d", channels);
    snprintf(str, sizeof str, "%d", stride);
    const char *with_bn[] = {"batch_normalize", "1", "filters", filters, "size", "3", "stride", str, "pad", "1",
                             "activation", "relu", NULL};
    const char *linear[] = {"filters", filters, "size", "3", "stride", str, "pad", "1", "activation", "linear", NULL};
    evo_gene conv;
    DN_TRY(gene_make(&conv, "convolutional", bn ? with_bn : linear));
    return insert_genes(g, pos, &conv, 1);
}

/* Remove a body convolution that no route/shortcut reads. */
static dn_status remove_convolution(evo_genome *g, uint64_t *rng)
{
    int i = pick_body_gene(g, "convolutional", 1, rng, "remove_convolution");
    if (i < 0) return DN_ERR_ARG;
    remove_gene(g, i);
    return DN_OK;
}

/* Stride 2^k -> 2^(k±1), within 1..8 (a stride that is not a power of two
 * counts as the power of two below it). */
static dn_status alter_stride(evo_genome *g, uint64_t *rng)
{
    int i = pick_body_gene(g, "convolutional", 0, rng, "alter_stride");
    if (i < 0) return DN_ERR_ARG;
    int stride;
    if (gene_int(&g->genes[i], "stride", 1, &stride) || stride < 1)
        return evo_fail(DN_ERR_ARG, "alter_stride does not apply: stride=%s", evo_gene_get(&g->genes[i], "stride"));
    int k = 0;
    while (k < 30 && (2 << k) <= stride) ++k;   /* floor(log2(stride)) */
    int nk = k <= 0 ? 1 : k >= 3 ? k - 1 : k + (rand_int(rng, 0, 1) ? 1 : -1);
    return gene_set_int(&g->genes[i], "stride", 1 << nk);
}

/* filters f -> uniform in [ceil(f/2), 2f], other than f. */
static dn_status alter_channels(evo_genome *g, uint64_t *rng)
{
    int i = pick_body_gene(g, "convolutional", 0, rng, "alter_channels");
    if (i < 0) return DN_ERR_ARG;
    int f;
    if (gene_int(&g->genes[i], "filters", 1, &f) || f < 1 || f > 500000000)
        return evo_fail(DN_ERR_ARG, "alter_channels does not apply: filters=%s", evo_gene_get(&g->genes[i], "filters"));
    int lo = (f + 1) / 2, hi = 2 * f;   /* hi > lo for every f >= 1 */
    return gene_set_int(&g->genes[i], "filters", rand_int_except(rng, lo, hi, f));
}

/* Odd square kernels: half-width h = (size-1)/2 -> h' uniform in
 * [floor(h/2), max(2h,1)] other than h; size = 2h'+1 with pad=1 ("same"
 * padding size/2). The paper alters the width or the height; Darknet has no
 * rectangular kernels, so both change together. */
static dn_status alter_filter_size(evo_genome *g, uint64_t *rng)
{
    int i = pick_body_gene(g, "convolutional", 0, rng, "alter_filter_size");
    if (i < 0) return DN_ERR_ARG;
    int size;
    if (gene_int(&g->genes[i], "size", 1, &size) || size < 1 || size > 100000)
        return evo_fail(DN_ERR_ARG, "alter_filter_size does not apply: size=%s", evo_gene_get(&g->genes[i], "size"));
    int h = (size - 1) / 2;
    int nh = rand_int_except(rng, h / 2, h > 0 ? 2 * h : 1, h);
    DN_TRY(gene_set_int(&g->genes[i], "size", 2 * nh + 1));
    return evo_gene_set(&g->genes[i], "pad", "1");
}

/* An identity edge: [activation] relu or [activation] linear, at random.
 * (Not a standalone [batchnorm]: upstream Darknet crashes on one on the CPU,
 * and a winner must load there.) */
static dn_status insert_one_to_one(evo_genome *g, uint64_t *rng)
{
    int pos = rand_int(rng, 0, g->body_end);
    const char *relu[] = {"activation", "relu", NULL}, *linear[] = {"activation", "linear", NULL};
    evo_gene gene;
    DN_TRY(gene_make(&gene, "activation", rand_int(rng, 0, 1) ? relu : linear));
    return insert_genes(g, pos, &gene, 1);
}

/* The shortcut rule on (w1,h1) -> (w2,h2): equal, or one an integer multiple
 * of the other by the same factor in both directions. */
static int skip_fits(const dn_layer *a, const dn_layer *b)
{
    int w1 = a->out_w, h1 = a->out_h, w2 = b->out_w, h2 = b->out_h;
    if (w1 == w2 && h1 == h2) return 1;
    if (w1 % w2 == 0 && h1 % h2 == 0 && w1 / w2 == h1 / h2) return 1;
    return w2 % w1 == 0 && h2 % h1 == 0 && w2 / w1 == h2 / h1;
}

/* Sources for a shortcut inserted at pos: body genes j <= pos-2 (pos-1 is
 * the shortcut's own main input) whose output fits gene pos-1's. */
static int skip_sources(const dn_network *net, int pos, int *src)
{
    int n = 0;
    for (int j = 0; j + 2 <= pos; ++j)
        if (skip_fits(&net->layers[j], &net->layers[pos - 1])) {
            if (src) src[n] = j;
            ++n;
        }
    return n;
}

/* [shortcut] from=<earlier body gene> activation=linear at a body position:
 * the position is drawn among those that have a source, then the source. */
static dn_status add_skip(evo_genome *g, uint64_t *rng)
{
    dn_network *net;
    DN_TRY(genome_shapes(g, &net));
    int *buf = malloc((size_t)(2 * g->body_end + 2) * sizeof *buf);
    if (!buf) { dn_network_free(net); return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    int *positions = buf, *src = buf + g->body_end + 1, np = 0;
    for (int pos = 2; pos <= g->body_end; ++pos)
        if (skip_sources(net, pos, NULL) > 0) positions[np++] = pos;
    int pos = -1, from = -1;
    if (np > 0) {
        pos = positions[rand_int(rng, 0, np - 1)];
        from = src[rand_int(rng, 0, skip_sources(net, pos, src) - 1)];
    }
    dn_network_free(net);
    free(buf);
    if (pos < 0) return evo_fail(DN_ERR_ARG, "add_skip does not apply: no pair of body layers with fitting shapes");
    const char *kv[] = {"activation", "linear", NULL};
    evo_gene sc;
    DN_TRY(gene_make(&sc, "shortcut", kv));
    sc.refs = malloc(sizeof *sc.refs);
    if (!sc.refs) { gene_clear(&sc); return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    sc.refs[0] = g->genes[from].id;
    sc.nrefs = 1;
    return insert_genes(g, pos, &sc, 1);
}

/* Remove a body shortcut that no route/shortcut reads. */
static dn_status remove_skip(evo_genome *g, uint64_t *rng)
{
    int i = pick_body_gene(g, "shortcut", 1, rng, "remove_skip");
    if (i < 0) return DN_ERR_ARG;
    remove_gene(g, i);
    return DN_OK;
}

dn_status evo_mutate(evo_genome *g, evo_mutation m, uint64_t *rng)
{
    if (!g || !rng) return evo_fail(DN_ERR_ARG, "evo_mutate: no genome or rng");
    if (g->body_end < 0 || g->body_end > g->n) return evo_fail(DN_ERR_ARG, "evo_mutate: body_end %d out of 0..%d", g->body_end, g->n);
    switch (m) {
    case EVO_MUT_ALTER_LEARNING_RATE: return alter_learning_rate(g, rng);
    case EVO_MUT_IDENTITY: return DN_OK;        /* keep training as is */
    case EVO_MUT_RESET_WEIGHTS: return DN_OK;   /* the search loop trains from fresh weights */
    case EVO_MUT_INSERT_CONVOLUTION: return insert_convolution(g, rng);
    case EVO_MUT_REMOVE_CONVOLUTION: return remove_convolution(g, rng);
    case EVO_MUT_ALTER_STRIDE: return alter_stride(g, rng);
    case EVO_MUT_ALTER_CHANNELS: return alter_channels(g, rng);
    case EVO_MUT_ALTER_FILTER_SIZE: return alter_filter_size(g, rng);
    case EVO_MUT_INSERT_ONE_TO_ONE: return insert_one_to_one(g, rng);
    case EVO_MUT_ADD_SKIP: return add_skip(g, rng);
    case EVO_MUT_REMOVE_SKIP: return remove_skip(g, rng);
    default: return evo_fail(DN_ERR_ARG, "evo_mutate: unknown mutation %d", (int)m);
    }
}

/* 1x1 convolutions with stride > 1: upstream pjreddie Darknet skips im2col for
 * every 1x1 kernel and computes these wrongly, so a child must not add any
 * (the framework here computes them correctly; the export must run upstream). */
int evo_count_upstream_unsafe(const evo_genome *g)
{
    int n = 0;
    for (int i = 0; i < g->n; ++i) {
        const evo_gene *gene = &g->genes[i];
        if (strcmp(gene->type, "convolutional")) continue;
        const char *size = evo_gene_get(gene, "size"), *stride = evo_gene_get(gene, "stride");
        if ((size ? atoi(size) : 1) == 1 && (stride ? atoi(stride) : 1) > 1) ++n;
    }
    return n;
}

dn_status evo_mutate_child(const evo_genome *parent, const evo_limits *lim, uint64_t *rng, int max_tries,
                           evo_genome *child, evo_mutation *applied)
{
    if (child) memset(child, 0, sizeof *child);
    if (applied) *applied = EVO_MUT_NONE;
    if (!parent || !rng || !child) return evo_fail(DN_ERR_ARG, "evo_mutate_child: no parent, rng or child");
    int tries = max_tries < 1 ? 1 : max_tries;
    dn_status last = DN_ERR_ARG;
    char why[1024] = "";
    for (int t = 0; t < tries; ++t) {
        evo_mutation m = (evo_mutation)(dn_rand_u64(rng) % EVO_MUT_COUNT);
        evo_genome c;
        DN_TRY(evo_genome_copy(parent, &c));
        dn_status st = evo_mutate(&c, m, rng);
        if (st == DN_OK) st = evo_genome_check(&c, lim, NULL);
        if (st == DN_OK && evo_count_upstream_unsafe(&c) > evo_count_upstream_unsafe(parent))
            st = evo_fail(DN_ERR_SHAPE, "a 1x1 convolution with stride > 1 (upstream Darknet computes it wrongly)");
        if (st == DN_OK) {
            *child = c;
            if (applied) *applied = m;
            return DN_OK;
        }
        last = st;
        snprintf(why, sizeof why, "%s: %s", evo_mutation_name(m), evo_last_error());
        evo_genome_free(&c);
    }
    return evo_fail(last, "no valid child in %d tries; the last was %s", tries, why);
}
