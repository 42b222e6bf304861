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
 *
 * Besides them, five function-preserving mutations (network morphisms:
 * Net2Net, Chen et al. 2016; NASH, Elsken et al. 2017): deepen, widen,
 * skip_zero, flatten and deepen_head, whose child computes the parent's
 * function once evo_morph_init (morph.c) has set the weights they add or
 * change; and the mutation sets
 * (paper, morph, all) evo_mutate_child_set draws from.
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

/* The kinds outside [0, EVO_MUT_COUNT): the morphisms and the cell space's. */
static const struct { evo_mutation m; const char *name; } other_kinds[] = {
    {EVO_MUT_DEEPEN, "deepen"}, {EVO_MUT_WIDEN, "widen"}, {EVO_MUT_SKIP_ZERO, "skip_zero"}, {EVO_MUT_FLATTEN, "flatten"},
    {EVO_MUT_DEEPEN_HEAD, "deepen_head"},
    {EVO_MUT_HIDDEN_STATE, "hidden_state"}, {EVO_MUT_OP, "op"}, {EVO_MUT_RANDOM, "random"},
};

const char *evo_mutation_name(evo_mutation m)
{
    if (m == EVO_MUT_NONE) return "none";
    for (size_t i = 0; i < sizeof other_kinds / sizeof *other_kinds; ++i)
        if (other_kinds[i].m == m) return other_kinds[i].name;
    return (m >= 0 && m < EVO_MUT_COUNT) ? mutation_names[m] : "unknown";
}

dn_status evo_mutation_from_name(const char *name, evo_mutation *out)
{
    if (!name || !out) return evo_fail(DN_ERR_ARG, "evo_mutation_from_name: no name or output");
    if (strcmp(name, "none") == 0) { *out = EVO_MUT_NONE; return DN_OK; }
    for (int m = 0; m < EVO_MUT_COUNT; ++m)
        if (strcmp(name, mutation_names[m]) == 0) { *out = (evo_mutation)m; return DN_OK; }
    for (size_t i = 0; i < sizeof other_kinds / sizeof *other_kinds; ++i)
        if (strcmp(name, other_kinds[i].name) == 0) { *out = other_kinds[i].m; return DN_OK; }
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
    if (i < g->body_end) g->body_end--;
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

dn_status evo_scale_learning_rate(evo_genome *g, double factor)
{
    const char *s = evo_net_get(g, "learning_rate");
    double lr = 0.001;
    if (s) {
        char *end;
        lr = strtod(s, &end);
        if (end == s || *end || !(lr > 0) || !isfinite(lr))
            return evo_fail(DN_ERR_ARG, "learning_rate=%s is not a positive number", s);
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.6g", lr * factor);
    return evo_net_set(g, "learning_rate", buf);
}

/* learning_rate *= 2^U(-1,1). */
static dn_status alter_learning_rate(evo_genome *g, uint64_t *rng)
{
    if (evo_scale_learning_rate(g, exp2((double)dn_rand_uniform(rng, -1, 1))) == DN_OK) return DN_OK;
    char why[512];
    snprintf(why, sizeof why, "%s", evo_last_error());
    return evo_fail(DN_ERR_ARG, "alter_learning_rate does not apply: %s", why);
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
    if (evo_gene_int(&g->genes[i], "stride", 1, &stride) || stride < 1)
        return evo_fail(DN_ERR_ARG, "alter_stride does not apply: stride=%s", evo_gene_get(&g->genes[i], "stride"));
    int k = 0;
    while (k < 30 && (2 << k) <= stride) ++k;   /* floor(log2(stride)) */
    int nk = k <= 0 ? 1 : k >= 3 ? k - 1 : k + (rand_int(rng, 0, 1) ? 1 : -1);
    return evo_gene_set_int(&g->genes[i], "stride", 1 << nk);
}

/* filters f -> uniform in [ceil(f/2), 2f], other than f. */
static dn_status alter_channels(evo_genome *g, uint64_t *rng)
{
    int i = pick_body_gene(g, "convolutional", 0, rng, "alter_channels");
    if (i < 0) return DN_ERR_ARG;
    int f;
    if (evo_gene_int(&g->genes[i], "filters", 1, &f) || f < 1 || f > 500000000)
        return evo_fail(DN_ERR_ARG, "alter_channels does not apply: filters=%s", evo_gene_get(&g->genes[i], "filters"));
    int lo = (f + 1) / 2, hi = 2 * f;   /* hi > lo for every f >= 1 */
    return evo_gene_set_int(&g->genes[i], "filters", rand_int_except(rng, lo, hi, f));
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
    if (evo_gene_int(&g->genes[i], "size", 1, &size) || size < 1 || size > 100000)
        return evo_fail(DN_ERR_ARG, "alter_filter_size does not apply: size=%s", evo_gene_get(&g->genes[i], "size"));
    int h = (size - 1) / 2;
    int nh = rand_int_except(rng, h / 2, h > 0 ? 2 * h : 1, h);
    DN_TRY(evo_gene_set_int(&g->genes[i], "size", 2 * nh + 1));
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

/* ------------------------------------------------------------ function-preserving mutations
 * Network morphisms: evo_morph_init (morph.c) gives the genes these add or
 * change weights under which the child computes its parent's function. */

/* Activations that never output a negative number. */
static int act_nonneg(dn_activation a) { return a == DN_RELU || a == DN_LOGISTIC; }

/* nn[i] = 1 when layer i's output is never negative, for i < upto. The rule
 * (exact, conservative): the network input is (images are in [0,1]); a
 * [convolutional] or [connected] is when its activation is relu or logistic;
 * an [activation] likewise, or when linear on such an input; pools and
 * dropout when their input is; a [route] when all its inputs are; a
 * [shortcut] when relu/logistic, or linear with both inputs non-negative and
 * alpha, beta >= 0. Anything else (leaky, linear convolutions, batchnorm)
 * may be negative. */
static void nonneg_outputs(const dn_network *net, int upto, unsigned char *nn)
{
    for (int i = 0; i < upto; ++i) {
        const dn_layer *l = &net->layers[i];
        int prev = i == 0 ? 1 : nn[i - 1], v = 0;
        switch (l->type) {
        case DN_CONVOLUTIONAL: case DN_CONNECTED: v = act_nonneg(l->activation); break;
        case DN_ACTIVATION_LAYER: v = act_nonneg(l->activation) || (l->activation == DN_LINEAR && prev); break;
        case DN_MAXPOOL: case DN_AVGPOOL: case DN_LOCAL_AVGPOOL: case DN_DROPOUT: v = prev; break;
        case DN_ROUTE:
            v = 1;
            for (int k = 0; k < l->n_inputs; ++k) v &= nn[l->input_layers[k]];
            break;
        case DN_SHORTCUT:
            v = act_nonneg(l->activation) ||
                (l->activation == DN_LINEAR && prev && nn[l->from] && l->alpha >= 0 && l->beta >= 0);
            break;
        default: v = 0;
        }
        nn[i] = (unsigned char)v;
    }
}

/* Insertion positions in [0, body_end] whose new layer is read by the next
 * one (not those before a [route], which ignores its previous layer). */
static int read_positions(const evo_genome *g, int first, int *pos)
{
    int n = 0;
    for (int p = first; p <= g->body_end; ++p)
        if (p >= g->n || !is_type(&g->genes[p], "route")) pos[n++] = p;
    return n;
}

/* deepen: [convolutional] batch_normalize=1 size=3 stride=1 pad=1 with
 *   - its input's C channels and relu when the input is never negative
 *     (nonneg_outputs): the identity on it;
 *   - else, one time in two, 2C filters and relu (a CReLU: relu(x) and
 *     relu(-x)) when evo_crelu_reader finds the one layer that reads it,
 *     which then subtracts the second half from the first:
 *     relu(x) - relu(-x) = x;
 *   - else C filters and linear: the identity on it.
 * so the init of morph.c is exact, and a signed input can still get a
 * nonlinearity (at twice the channels; selection weighs the two). */
static dn_status deepen(evo_genome *g, uint64_t *rng)
{
    dn_network *net;
    DN_TRY(genome_shapes(g, &net));
    int *pos = malloc((size_t)(g->body_end + 1) * sizeof *pos);
    unsigned char *nn = malloc((size_t)g->body_end + 1);
    if (!pos || !nn) { free(pos); free(nn); dn_network_free(net); return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    int np = read_positions(g, 0, pos);
    int p = np ? pos[rand_int(rng, 0, np - 1)] : 0;
    nonneg_outputs(net, p, nn);
    int channels = p == 0 ? net->c : net->layers[p - 1].out_c, relu = p == 0 ? 1 : nn[p - 1];
    dn_network_free(net);
    free(pos);
    free(nn);
    char filters[32];
    snprintf(filters, sizeof filters, "%d", relu ? channels : 2 * channels);
    const char *kv[] = {"batch_normalize", "1", "filters", filters, "size", "3", "stride", "1", "pad", "1",
                        "activation", "relu", NULL};
    evo_gene conv;
    DN_TRY(gene_make(&conv, "convolutional", kv));
    DN_TRY(insert_genes(g, p, &conv, 1));
    if (relu || (rand_int(rng, 0, 1) && evo_crelu_reader(g, p) >= 0)) return DN_OK;
    DN_TRY(evo_gene_set_int(&g->genes[p], "filters", channels));   /* linear: the draw, or no reader undoes a CReLU */
    return evo_gene_set(&g->genes[p], "activation", "linear");
}

/* Layer types that pass channels through one for one (widen's path). */
static int is_channelwise(const evo_gene *g)
{
    return is_type(g, "maxpool") || is_type(g, "avgpool") || is_type(g, "local_avgpool") || is_type(g, "activation") ||
           is_type(g, "dropout");
}

/* A [convolutional] without groups (or groups=1). */
static int is_plain_conv(const evo_gene *g)
{
    int groups;
    return is_type(g, "convolutional") && evo_gene_int(g, "groups", 1, &groups) == 0 && groups == 1;
}

/* Layers that pass channels one for one and are linear in them (inference). */
static int is_linear_channelwise(const evo_gene *g)
{
    const char *act = evo_gene_get(g, "activation");
    return is_type(g, "avgpool") || is_type(g, "local_avgpool") || is_type(g, "dropout") ||
           (is_type(g, "activation") && act && !strcmp(act, "linear"));
}

/* The one [convolutional] (groups=1) or [connected] that reads body
 * convolution i's output through layers `pass` accepts, with no route or
 * shortcut reading any of them; -1 when there is none. */
static int reader_through(const evo_genome *g, int i, int (*pass)(const evo_gene *))
{
    if (!g || i < 0 || i >= g->body_end || !is_plain_conv(&g->genes[i])) return -1;
    int k = i + 1;
    while (k < g->n && pass(&g->genes[k])) ++k;
    if (k >= g->n || !(is_plain_conv(&g->genes[k]) || is_type(&g->genes[k], "connected"))) return -1;
    for (int j = i; j < k; ++j)
        if (is_referenced(g, g->genes[j].id)) return -1;
    return k;
}

int evo_crelu_reader(const evo_genome *g, int i) { return reader_through(g, i, is_linear_channelwise); }

int evo_widen_reader(const evo_genome *g, int i) { return reader_through(g, i, is_channelwise); }

/* widen's general case for body convolution i of f filters: the child
 * with f + 1 (or `F`) filters builds and evo_widen_flow keeps its function. */
static int widens_exactly(const evo_genome *g, int i, int f, int F)
{
    evo_genome c;
    dn_network *net = NULL;
    if (evo_genome_copy(g, &c) != DN_OK) return 0;
    int ok = evo_gene_set_int(&c.genes[i], "filters", F) == DN_OK && genome_shapes(&c, &net) == DN_OK &&
             evo_widen_flow(net, i, f) == DN_OK;
    dn_network_free(net);
    evo_genome_free(&c);
    return ok;
}

/* widen: a body convolution (groups 1) whose output evo_widen_reader can
 * split, or whose new channels evo_widen_flow can have its readers weigh 0,
 * gets filters f -> uniform in [f+1, max(2f, 16)]. */
static dn_status widen(evo_genome *g, uint64_t *rng)
{
    int *idx = malloc((size_t)(g->body_end + 1) * sizeof *idx), n = 0, f = 0;
    if (!idx) return evo_fail(DN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < g->body_end; ++i)
        if (is_plain_conv(&g->genes[i]) && evo_gene_int(&g->genes[i], "filters", 1, &f) == 0 && f >= 1 &&
            f <= 250000000 && (evo_widen_reader(g, i) >= 0 || widens_exactly(g, i, f, f + 1)))
            idx[n++] = i;
    int i = n ? idx[rand_int(rng, 0, n - 1)] : -1;
    free(idx);
    if (i < 0)
        return evo_fail(DN_ERR_ARG, "widen does not apply: no body convolution whose new channels could reach only "
                        "layers that weigh them (through pools, activations, dropout, routes and shortcuts)");
    evo_gene_int(&g->genes[i], "filters", 1, &f);
    int F = rand_int(rng, f + 1, 2 * f > 16 ? 2 * f : 16);
    if (evo_widen_reader(g, i) < 0 && !widens_exactly(g, i, f, F)) F = f + 1;   /* a shortcut's alignment */
    return evo_gene_set_int(&g->genes[i], "filters", F);
}

/* The smallest stride s <= 8 with which a 3x3 pad-1 (or 1x1) convolution
 * maps src's output onto dst's map size ((w - 1)/s + 1, likewise h); 0: none. */
static int branch_stride(const dn_layer *src, const dn_layer *dst)
{
    for (int s = 1; s <= 8; ++s)
        if ((src->out_w - 1) / s + 1 == dst->out_w && (src->out_h - 1) / s + 1 == dst->out_h) return s;
    return 0;
}

/* Sources of a branch inserted at pos: body genes j <= pos-1 that a strided
 * convolution maps onto gene pos-1's map size. */
static int branch_sources(const dn_network *net, int pos, int *src)
{
    int n = 0;
    for (int j = 0; j < pos; ++j)
        if (branch_stride(&net->layers[j], &net->layers[pos - 1])) {
            if (src) src[n] = j;
            ++n;
        }
    return n;
}

static dn_status gene_ref(evo_gene *g, int id)
{
    g->refs = malloc(sizeof *g->refs);
    if (!g->refs) return evo_fail(DN_ERR_NOMEM, "out of memory");
    g->refs[0] = id;
    g->nrefs = 1;
    return DN_OK;
}

/* The genes of a skip_zero branch from gene `from` onto main path gene
 * `main` (channels: main's): [route], the branch conv (size, stride; relu
 * when `block`, then a 1x1 linear one), [shortcut]. Returns their count (3
 * or 4) in *n. On failure nothing is left allocated. */
static dn_status branch_genes(evo_gene *b, int from, int main, int channels, int size, int stride, int block, int *n)
{
    char filters[32], sz[8], st[8];
    snprintf(filters, sizeof filters, "%d", channels);
    snprintf(sz, sizeof sz, "%d", size);
    snprintf(st, sizeof st, "%d", stride);
    const char *conv[] = {"batch_normalize", "1", "filters", filters, "size", sz, "stride", st, "pad", "1",
                          "activation", block ? "relu" : "linear", NULL};
    const char *last[] = {"batch_normalize", "1", "filters", filters, "size", "1", "stride", "1", "pad", "1",
                          "activation", "linear", NULL};
    const char *linear[] = {"activation", "linear", NULL};
    *n = block ? 4 : 3;
    memset(b, 0, (size_t)*n * sizeof *b);
    dn_status s = gene_make(&b[0], "route", NULL);
    if (s == DN_OK) s = gene_ref(&b[0], from);
    if (s == DN_OK) s = gene_make(&b[1], "convolutional", conv);
    if (s == DN_OK && block) s = gene_make(&b[2], "convolutional", last);
    if (s == DN_OK) s = gene_make(&b[*n - 1], "shortcut", linear);
    if (s == DN_OK) s = gene_ref(&b[*n - 1], main);
    if (s != DN_OK)
        for (int k = 0; k < *n; ++k) gene_clear(&b[k]);
    return s;
}

/* skip_zero: [route layers=j] -> [convolutional] (BN, linear, filters = the
 * main path's channels, stride s mapping j's map onto it; 1x1 or 3x3 at
 * stride 1, 3x3 otherwise: a strided 1x1 is upstream-unsafe) -> [shortcut
 * from=main] at position pos (main = gene pos-1). pos is drawn among the
 * positions with a source, then j. One draw in two the branch is a residual
 * block instead: that conv with relu, then a 1x1 BN linear conv (the one
 * morph.c starts at 0), so the shortcut adds a nonlinearity. */
static dn_status skip_zero(evo_genome *g, uint64_t *rng)
{
    if (g->body_end < 1) return evo_fail(DN_ERR_ARG, "skip_zero does not apply: the body is empty");
    dn_network *net;
    DN_TRY(genome_shapes(g, &net));
    int *buf = malloc((size_t)(3 * g->body_end + 3) * sizeof *buf);
    if (!buf) { dn_network_free(net); return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    int *cand = buf, *pos = buf + g->body_end + 1, *src = pos + g->body_end + 1, np = 0;
    int nc = read_positions(g, 1, cand);
    for (int k = 0; k < nc; ++k)
        if (branch_sources(net, cand[k], NULL) > 0) pos[np++] = cand[k];
    int p = -1, j = -1, stride = 0, channels = 0;
    if (np > 0) {
        p = pos[rand_int(rng, 0, np - 1)];
        j = src[rand_int(rng, 0, branch_sources(net, p, src) - 1)];
        stride = branch_stride(&net->layers[j], &net->layers[p - 1]);
        channels = net->layers[p - 1].out_c;
    }
    dn_network_free(net);
    free(buf);
    if (p < 0)
        return evo_fail(DN_ERR_ARG, "skip_zero does not apply: no body layer a strided convolution maps onto a "
                        "later one");
    int size = stride > 1 || rand_int(rng, 0, 1) ? 3 : 1, block = rand_int(rng, 0, 1), n = 0;
    evo_gene b[4];
    DN_TRY(branch_genes(b, g->genes[j].id, g->genes[p - 1].id, channels, size, stride, block, &n));
    return insert_genes(g, p, b, n);
}

int evo_flatten_pool(const evo_genome *g)
{
    if (!g || g->body_end < 0 || g->body_end >= g->n || !is_type(&g->genes[g->body_end], "avgpool")) return -1;
    int k = g->body_end + 1;
    while (k < g->n && is_type(&g->genes[k], "dropout")) ++k;
    return k < g->n && is_type(&g->genes[k], "connected") ? g->body_end : -1;
}

#define FLATTEN_DOWNSAMPLE 4   /* flatten waits for a map this many times smaller than the input each way */

/* flatten: the head's global [avgpool] goes, so its [connected] reads the
 * body's whole C x H x W output instead of the C channel means (the head
 * of cfg/fashion-small.cfg rather than the trivial seed's); morph.c gives it
 * W[o][c] / (H W) at every position of channel c: the same logits. Only once
 * the body has downsampled (H W <= input positions / FLATTEN_DOWNSAMPLE^2,
 * 7x7 for 28x28): a flatten at full resolution makes a classifier on pixels
 * whose quick early gain crowds the convolutional lineages out of the
 * population, then stalls (a 2 h search stuck at 89.6% validation from its
 * 10th minute, all of it 1-channel convolutions into a 102k-weight layer). */
static dn_status flatten(evo_genome *g)
{
    int i = evo_flatten_pool(g);
    if (i < 0)
        return evo_fail(DN_ERR_ARG, "flatten does not apply: the head has no global [avgpool] read by a [connected] "
                        "(through [dropout] only)");
    dn_network *net;
    DN_TRY(genome_shapes(g, &net));
    int w = net->layers[i].w, h = net->layers[i].h, iw = net->w, ih = net->h;
    dn_network_free(net);
    if ((long)w * h * FLATTEN_DOWNSAMPLE * FLATTEN_DOWNSAMPLE > (long)iw * ih)
        return evo_fail(DN_ERR_ARG, "flatten does not apply: the pooled map is %dx%d, more than 1/%d of the %dx%d "
                        "input's positions (the body has not downsampled %dx yet)", w, h,
                        FLATTEN_DOWNSAMPLE * FLATTEN_DOWNSAMPLE, iw, ih, FLATTEN_DOWNSAMPLE);
    remove_gene(g, i);
    return DN_OK;
}

int evo_head_classifier(const evo_genome *g)
{
    if (!g) return -1;
    int k = g->n - 1, before;
    while (k >= g->body_end && k >= 0 && !is_type(&g->genes[k], "connected")) --k;
    if (k < g->body_end || k < 0) return -1;
    const char *act = evo_gene_get(&g->genes[k], "activation");
    int bn = 0;
    if (!act || strcmp(act, "linear") || evo_gene_int(&g->genes[k], "batch_normalize", 0, &bn) || bn) return -1;
    for (before = k - 1; before >= 0 && is_type(&g->genes[before], "dropout"); --before) {}
    return before >= 0 && is_type(&g->genes[before], "connected") ? -1 : k;
}

/* deepen_head: a hidden [connected] activation=relu of N units (64, 128 or
 * 256, at least twice the O classes) right before the classifier; morph.c
 * makes its first 2 O units the CReLU of the old logits z (relu(z),
 * relu(-z)) and the classifier read relu(z) - relu(-z) = z, the other units
 * fresh features the classifier starts reading with weight 0 (the head of
 * cfg/fashion-small.cfg: features -> hidden layer -> classes). */
static dn_status deepen_head(evo_genome *g, uint64_t *rng)
{
    int k = evo_head_classifier(g), classes = 0;
    if (k < 0 || evo_gene_int(&g->genes[k], "output", 1, &classes) || classes < 1)
        return evo_fail(DN_ERR_ARG, "deepen_head does not apply: the head's last [connected] is not linear without "
                        "batch norm, or already reads a [connected]");
    static const int sizes[] = {64, 128, 256};
    int units = sizes[rand_int(rng, 0, 2)];
    if (units < 2 * classes) units = 2 * classes;
    char out[32];
    snprintf(out, sizeof out, "%d", units);
    const char *kv[] = {"output", out, "activation", "relu", NULL};
    evo_gene hidden;
    DN_TRY(gene_make(&hidden, "connected", kv));
    int body_end = g->body_end;
    DN_TRY(insert_genes(g, k, &hidden, 1));
    g->body_end = body_end;   /* inserted into the head: the body is as it was */
    return DN_OK;
}

int evo_mutation_is_morph(evo_mutation m)
{
    return m == EVO_MUT_DEEPEN || m == EVO_MUT_WIDEN || m == EVO_MUT_SKIP_ZERO || m == EVO_MUT_FLATTEN ||
           m == EVO_MUT_DEEPEN_HEAD;
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
    case EVO_MUT_DEEPEN: return deepen(g, rng);
    case EVO_MUT_WIDEN: return widen(g, rng);
    case EVO_MUT_SKIP_ZERO: return skip_zero(g, rng);
    case EVO_MUT_FLATTEN: return flatten(g);
    case EVO_MUT_DEEPEN_HEAD: return deepen_head(g, rng);
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

static const char *const set_names[] = {"paper", "morph", "all"};

dn_status evo_mutation_set_from_name(const char *name, evo_mutation_set *out)
{
    if (!name || !out) return evo_fail(DN_ERR_ARG, "evo_mutation_set_from_name: no name or output");
    for (int k = 0; k < 3; ++k)
        if (strcmp(name, set_names[k]) == 0) { *out = (evo_mutation_set)k; return DN_OK; }
    return evo_fail(DN_ERR_ARG, "unknown mutation set '%s' (paper, morph or all)", name);
}

const char *evo_mutation_set_name(evo_mutation_set s)
{
    return s >= EVO_MUTSET_PAPER && s <= EVO_MUTSET_ALL ? set_names[s] : "unknown";
}

/* One uniform draw from the set (one rng step, as the paper's step always took). */
static evo_mutation draw_mutation(evo_mutation_set set, uint64_t *rng)
{
    static const evo_mutation morph[] = {EVO_MUT_DEEPEN, EVO_MUT_WIDEN, EVO_MUT_SKIP_ZERO, EVO_MUT_FLATTEN,
                                         EVO_MUT_DEEPEN_HEAD, EVO_MUT_ALTER_LEARNING_RATE, EVO_MUT_IDENTITY};
    uint64_t r = dn_rand_u64(rng);
    if (set == EVO_MUTSET_MORPH) return morph[r % 7];
    if (set == EVO_MUTSET_ALL) {
        uint64_t k = r % (EVO_MUT_COUNT + 5);   /* the paper's 11, then the 5 morphisms */
        return k < EVO_MUT_COUNT ? (evo_mutation)k : morph[k - EVO_MUT_COUNT];
    }
    return (evo_mutation)(r % EVO_MUT_COUNT);
}

dn_status evo_mutate_child_set(const evo_genome *parent, const evo_limits *lim, evo_mutation_set set, uint64_t *rng,
                               int max_tries, evo_genome *child, evo_mutation *applied)
{
    if (child) memset(child, 0, sizeof *child);
    if (applied) *applied = EVO_MUT_NONE;
    if (!parent || !rng || !child) return evo_fail(DN_ERR_ARG, "evo_mutate_child: no parent, rng or child");
    if (set < EVO_MUTSET_PAPER || set > EVO_MUTSET_ALL)
        return evo_fail(DN_ERR_ARG, "evo_mutate_child_set: unknown mutation set %d", (int)set);
    int tries = max_tries < 1 ? 1 : max_tries;
    dn_status last = DN_ERR_ARG;
    char why[1024] = "";
    for (int t = 0; t < tries; ++t) {
        evo_mutation m = draw_mutation(set, rng);
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

dn_status evo_mutate_child(const evo_genome *parent, const evo_limits *lim, uint64_t *rng, int max_tries,
                           evo_genome *child, evo_mutation *applied)
{
    return evo_mutate_child_set(parent, lim, EVO_MUTSET_PAPER, rng, max_tries, child, applied);
}
