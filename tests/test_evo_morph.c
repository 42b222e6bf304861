/*
 * test_evo_morph.c — the function-preserving mutations (deepen, widen,
 * skip_zero, flatten, deepen_head) and the mutation sets: each morphism changes the genome as it
 * says; started from a parent with random weights (random batch-norm rolling
 * statistics and scales too), evo_inherit + evo_morph_init give a child whose
 * outputs equal the parent's; leaving out evo_morph_init, or splitting the
 * widened channels wrongly, shows; widened copies drift apart under SGD while
 * an equal split keeps them identical; repeated morphisms grow a small
 * seed while keeping its function; flatten waits for a map downsampled 4x
 * each way; the paper set draws exactly what
 * evo_mutate_child drew before the sets existed.
 */
#include "evo_internal.h"
#include "testlib.h"
#include "evo_testutil.h"

#include <unistd.h>

#define CHECK_EVO(expr)                                                                             \
    do {                                                                                            \
        dn_status te_s = (expr);                                                                    \
        CHECK(te_s == DN_OK, "%s -> %s: %s", #expr, dn_status_name(te_s), evo_last_error());        \
    } while (0)

#define BATCH 8
#define EXACT 1e-4f       /* child vs parent logits, relative (floor 1) */

/* ------------------------------------------------------------ fixtures */

/* 1-channel 28x28: BN+relu conv, pool, leaky conv, pool, BN+relu conv, and a
 * [connected] head on the flattened 7x7x5 output. */
static const char *SMALL =
    "[net]\nbatch=8\nwidth=28\nheight=28\nchannels=1\nlearning_rate=0.05\nmomentum=0.9\ndecay=0.0005\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=relu\n"   /* 0: 28x28x4 */
    "[maxpool]\nsize=2\nstride=2\n"                                                    /* 1: 14x14x4 */
    "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=leaky\n"                     /* 2: 14x14x6 */
    "[maxpool]\nsize=2\nstride=2\n"                                                    /* 3: 7x7x6 */
    "[convolutional]\nbatch_normalize=1\nfilters=5\nsize=3\npad=1\nactivation=relu\n"   /* 4: 7x7x5 */
    "[connected]\noutput=10\nactivation=linear\n[softmax]\n";

/* deepen's rule on SMALL at positions 0..5: relu after the input (images in
 * [0,1]), a relu conv and a pool of it; after the leaky conv, linear where a
 * max pool reads it (3) and a CReLU or (one draw in two) linear after the
 * pool, where conv 4 reads it directly (4). */
enum { KIND_RELU, KIND_LINEAR, KIND_CRELU };
static const int SMALL_KIND[6] = {KIND_RELU, KIND_RELU, KIND_RELU, KIND_LINEAR, KIND_CRELU, KIND_RELU};

/* A linear conv read through [avgpool] and [dropout] by the [connected]. */
static const char *DROP =
    "[net]\nbatch=8\nwidth=12\nheight=12\nchannels=2\nlearning_rate=0.05\n"
    "[convolutional]\nbatch_normalize=1\nfilters=3\nsize=3\nstride=2\npad=1\nactivation=relu\n"   /* 0: 6x6x3 */
    "[maxpool]\nsize=2\nstride=2\n"                                                              /* 1: 3x3x3 */
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=linear\n"                              /* 2: 3x3x4 */
    "[avgpool]\n[dropout]\nprobability=0.3\n[connected]\noutput=5\nactivation=linear\n[softmax]\n";

/* A residual block: conv 0 is read by a shortcut and conv 1 feeds it, so
 * only conv 3 can widen; a route makes insertion before it useless. */
static const char *RES =
    "[net]\nbatch=8\nwidth=16\nheight=16\nchannels=3\nlearning_rate=0.05\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"   /* 0 */
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=relu\n"    /* 1 */
    "[shortcut]\nfrom=-2\nactivation=linear\n"                                          /* 2 */
    "[route]\nlayers=-1\n"                                                              /* 3 */
    "[convolutional]\nfilters=6\nsize=3\nstride=2\npad=1\nactivation=relu\n"             /* 4: 8x8x6 */
    "[avgpool]\n[connected]\noutput=4\nactivation=linear\n[softmax]\n";

/* A trivial seed that has downsampled 4x with two strided convolutions: a
 * global [avgpool] of a 7x7 map, which flatten may remove. */
static const char *POOLED =
    "[net]\nbatch=8\nwidth=28\nheight=28\nchannels=1\nlearning_rate=0.05\nmomentum=0.9\n"
    "[convolutional]\nbatch_normalize=1\nfilters=3\nsize=3\nstride=2\npad=1\nactivation=relu\n"   /* 0: 14x14x3 */
    "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\nactivation=linear\n"                    /* 1: 7x7x4 */
    "[avgpool]\n[connected]\noutput=10\nactivation=linear\n[softmax]\n";

/* Interconnected, as grown bodies are: every conv's new channels reach their
 * readers through shortcuts and routes (in the middle of a concatenation,
 * and flattened into the [connected]), so each can widen with its readers
 * weighing the new channels 0. */
static const char *WIRED =
    "[net]\nbatch=8\nwidth=12\nheight=12\nchannels=1\nlearning_rate=0.05\n"
    "[convolutional]\nbatch_normalize=1\nfilters=3\nsize=3\npad=1\nactivation=relu\n"    /* 0: 12x12x3 */
    "[convolutional]\nbatch_normalize=1\nfilters=3\nsize=3\npad=1\nactivation=leaky\n"   /* 1: 12x12x3 */
    "[shortcut]\nfrom=-2\nactivation=linear\n"                                          /* 2: 1 + 0 */
    "[route]\nlayers=-1,-3\n"                                                            /* 3: 12x12x6 (2, 0) */
    "[convolutional]\nfilters=4\nsize=1\nactivation=linear\n"                           /* 4: 12x12x4 */
    "[maxpool]\nsize=2\nstride=2\n"                                                     /* 5: 6x6x4 */
    "[convolutional]\nbatch_normalize=1\nfilters=5\nsize=3\npad=1\nactivation=relu\n"    /* 6: 6x6x5 */
    "[route]\nlayers=-1,-2\n"                                                            /* 7: 6x6x9 (6, 5) */
    "[connected]\noutput=10\nactivation=linear\n[softmax]\n";

/* conv 0 (2 filters) is added onto conv 1's first 2 of 4 channels: new
 * channels of conv 0 would land on conv 1's old channels 2 and 3, so only
 * conv 1 can widen. */
static const char *ALIGNED =
    "[net]\nbatch=8\nwidth=8\nheight=8\nchannels=2\nlearning_rate=0.05\n"
    "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=3\npad=1\nactivation=relu\n"    /* 0: 8x8x2 */
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=relu\n"    /* 1: 8x8x4 */
    "[shortcut]\nfrom=-2\nactivation=linear\n"                                          /* 2: 1 + 0 on 2 channels */
    "[avgpool]\n[connected]\noutput=3\nactivation=linear\n[softmax]\n";

/* The only conv's channels reach the [softmax] (through a shortcut and the
 * pool): nothing can widen. */
static const char *LOCKED =
    "[net]\nwidth=8\nheight=8\nchannels=4\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n"
    "[activation]\nactivation=relu\n"
    "[shortcut]\nfrom=-2\n"
    "[avgpool]\n[softmax]\n";

static char *TRIVIAL, *FASHION;

/* ------------------------------------------------------------ helpers */

static int geti(const evo_gene *g, const char *key, int def)
{
    const char *s = evo_gene_get(g, key);
    return s ? atoi(s) : def;
}

static const char *gets_(const evo_gene *g, const char *key)
{
    const char *s = evo_gene_get(g, key);
    return s ? s : "";
}

static dn_network *build(const evo_genome *g, uint64_t seed)
{
    char *text = NULL;
    dn_network *net = NULL;
    dn_parse_options po = {.batch = BATCH, .seed = seed, .quiet = 1};
    if (evo_genome_emit(g, 1, &text) == DN_OK && dn_network_parse_string(text, "net", &po, &net) != DN_OK)
        fprintf(stderr, "build: %s\n", dn_last_error());
    free(text);
    return net;
}

static dn_network *shapes(const evo_genome *g)
{
    char *text = NULL;
    dn_network *net = NULL;
    dn_parse_options po = {.quiet = 1, .shapes_only = 1};
    if (evo_genome_emit(g, 0, &text) == DN_OK) dn_network_parse_string(text, "g", &po, &net);
    free(text);
    return net;
}

/* Every array random, far from the framework's init: weights He-uniform on
 * the fan-in, biases and rolling means +-0.3, scales 0.5..1.5, rolling
 * variances 0.3..2. */
static void randomise(dn_network *net, uint64_t seed)
{
    uint64_t rng = seed;
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        dn_param p[DN_MAX_PARAMS];
        int np = dn_layer_params(l, p);
        float fan = l->type == DN_CONVOLUTIONAL ? (float)(l->c * l->size * l->size) : (float)l->inputs;
        for (int k = 0; k < np; ++k)
            for (size_t e = 0; e < p[k].n; ++e) {
                float *v = &p[k].data[e];
                if (!strcmp(p[k].name, "weights")) *v = dn_rand_uniform(&rng, -1, 1) * sqrtf(6.f / fan);
                else if (!strcmp(p[k].name, "scales")) *v = dn_rand_uniform(&rng, 0.5f, 1.5f);
                else if (!strcmp(p[k].name, "rolling_variance")) *v = dn_rand_uniform(&rng, 0.3f, 2.f);
                else *v = dn_rand_uniform(&rng, -0.3f, 0.3f);
            }
    }
}

/* n images in [0,1] (the framework's image range) of net's input size. */
static float *images(const dn_network *net, int n, uint64_t seed)
{
    uint64_t rng = seed;
    float *X = malloc((size_t)n * net->inputs * sizeof *X);
    for (size_t i = 0; X && i < (size_t)n * net->inputs; ++i) X[i] = dn_rand_uniform(&rng, 0, 1);
    return X;
}

/* The logits: the layer before the final [softmax]. */
static const dn_layer *logits(const dn_network *net) { return &net->layers[net->n - 2]; }

/* Largest relative difference (floor 1) of the logits of a and b over one
 * forward pass each on the batch X (BATCH images), in mode `train`; with
 * `scaled`, the largest absolute difference over the largest |logit| of a
 * (how much of the output changed, whatever its scale). */
static float forward_diff_as(dn_network *a, dn_network *b, const float *X, int train, int scaled)
{
    if (dn_network_forward(a, X, NULL, train) != DN_OK || dn_network_forward(b, X, NULL, train) != DN_OK) {
        fprintf(stderr, "forward: %s\n", dn_last_error());
        return INFINITY;
    }
    const dn_layer *la = logits(a), *lb = logits(b);
    if (la->outputs != lb->outputs) return INFINITY;
    float worst = 0, top = 0;
    for (size_t i = 0; i < (size_t)BATCH * la->outputs; ++i) {
        float d = scaled ? fabsf(la->output[i] - lb->output[i]) : tl_rel_diff(la->output[i], lb->output[i], 1);
        if (!(d <= worst)) worst = d;   /* NaN wins */
        if (fabsf(la->output[i]) > top) top = fabsf(la->output[i]);
    }
    return scaled ? worst / (top > 0 ? top : 1) : worst;
}

static float forward_diff(dn_network *a, dn_network *b, const float *X, int train)
{
    return forward_diff_as(a, b, X, train, 0);
}

/* The same over several batches of X (n a multiple of BATCH), inference. */
static float predict_diff_as(dn_network *a, dn_network *b, const float *X, int n, int scaled)
{
    float worst = 0;
    for (int s = 0; s < n; s += BATCH) {
        float d = forward_diff_as(a, b, X + (size_t)s * a->inputs, 0, scaled);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

static float predict_diff(dn_network *a, dn_network *b, const float *X, int n) { return predict_diff_as(a, b, X, n, 0); }

/* Apply m to a copy of cfg's genome with rng `seed`; DN_ERR_ARG when it does
 * not apply. The child is checked (shapes, upstream safety). */
static dn_status mutate_cfg(const char *cfg, evo_mutation m, uint64_t seed, evo_genome *p, evo_genome *c)
{
    memset(c, 0, sizeof *c);
    if (evo_genome_parse(cfg, "parent", p) != DN_OK) return DN_ERR_PARSE;
    if (evo_genome_copy(p, c) != DN_OK) return DN_ERR_NOMEM;
    uint64_t rng = seed;
    dn_status s = evo_mutate(c, m, &rng);
    if (s == DN_OK) s = evo_genome_check(c, NULL, NULL);
    return s;
}

/* A morphism's child network: built, inherited from parent and (init) set up
 * by evo_morph_init with statistics from Xs (ns images). */
static dn_network *morph_child(const evo_genome *c, const evo_genome *p, dn_network *parent, evo_mutation m, int init,
                               const float *Xs, int ns, uint64_t seed)
{
    dn_network *child = build(c, seed + 1000);
    if (!child) return NULL;
    evo_inherit_stats st;
    CHECK_EVO(evo_inherit(child, c, parent, p, &st));
    if (init) CHECK_EVO(evo_morph_init(child, c, parent, p, m, Xs, ns, seed));
    return child;
}

/* ------------------------------------------------------------ names and sets */

static void test_names_and_sets(void)
{
    evo_mutation ms[] = {EVO_MUT_DEEPEN, EVO_MUT_WIDEN, EVO_MUT_SKIP_ZERO, EVO_MUT_FLATTEN, EVO_MUT_DEEPEN_HEAD};
    const char *names[] = {"deepen", "widen", "skip_zero", "flatten", "deepen_head"};
    for (int k = 0; k < 5; ++k) {
        evo_mutation back;
        CHECK(!strcmp(evo_mutation_name(ms[k]), names[k]), "name of %d", (int)ms[k]);
        CHECK(evo_mutation_from_name(names[k], &back) == DN_OK && back == ms[k], "%s round trip", names[k]);
        CHECK(evo_mutation_is_morph(ms[k]), "%s is a morphism", names[k]);
    }
    for (int m = 0; m < EVO_MUT_COUNT; ++m) CHECK(!evo_mutation_is_morph((evo_mutation)m), "paper mutation %d is not", m);
    CHECK(!evo_mutation_is_morph(EVO_MUT_NONE) && !evo_mutation_is_morph(EVO_MUT_OP), "none / op are not");
    CHECK(EVO_MUT_COUNT == 11 && EVO_MUT_REMOVE_SKIP == 10 && EVO_MUT_DEEPEN == 50, "paper numbers kept");
    const char *sets[] = {"paper", "morph", "all"};
    for (int k = 0; k < 3; ++k) {
        evo_mutation_set s;
        CHECK(evo_mutation_set_from_name(sets[k], &s) == DN_OK && (int)s == k && !strcmp(evo_mutation_set_name(s), sets[k]),
              "set %s", sets[k]);
    }
    evo_mutation_set s;
    CHECK(evo_mutation_set_from_name("some", &s) == DN_ERR_ARG && strstr(evo_last_error(), "'some'"), "unknown set: %s",
          evo_last_error());
}

/* The paper set is the paper's step as it was: these walks (mutations, final
 * rng, FNV-1a of the final annotated cfg) were recorded with evo_mutate_child
 * before the sets existed. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; ++s) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}

static void test_paper_set_unchanged(void)
{
    static const int walk[2][40] = {
        {2, 0, 0, 1, 2, 8, 1, 1, 8, 3, 4, 2, 2, 8, 8, 9, 10, 2, 0, 3, 1, 6, 6, 5, 9, 6, 3, 2, 6, 6, 3, 1, 2, 0, 5, 6, 3, 6, 5, 6},
        {3, 4, 2, 5, 4, 3, 9, 4, 9, 3, 5, 4, 0, 1, 4, 9, 6, 3, 8, 6, 2, 5, 10, 6, 7, 6, 10, 1, 2, 5, 2, 4, 3, 3, 8, 8, 1, 9, 9, 10}};
    static const uint64_t rng_end[2] = {0xbf675a41b36c58e3ull, 0xbf675a41b36c58e4ull};
    static const uint64_t hash[2] = {0x87147ec1347a1c7bull, 0xfa40f33f4e454f38ull};
    const char *cfgs[2] = {TRIVIAL, FASHION};
    for (int k = 0; k < 2; ++k) {
        evo_genome g;
        CHECK_EVO(evo_genome_parse(cfgs[k], "seed", &g));
        evo_limits lim = {40, k ? 2e6 : 2e5, k ? 1e8 : 5e7, 0};
        uint64_t rng = 7 + (uint64_t)k, rng2 = rng;
        int same = 1;
        for (int t = 0; t < 40 && same; ++t) {
            evo_genome c, c2;
            evo_mutation m = EVO_MUT_NONE, m2 = EVO_MUT_NONE;
            CHECK_EVO(evo_mutate_child_set(&g, &lim, EVO_MUTSET_PAPER, &rng, 20, &c, &m));
            CHECK_EVO(evo_mutate_child(&g, &lim, &rng2, 20, &c2, &m2));
            same = m == walk[k][t] && m2 == m && rng2 == rng && genome_equal(&c, &c2);
            CHECK(same, "walk %d step %d: %s, recorded %s", k, t, evo_mutation_name(m), evo_mutation_name((evo_mutation)walk[k][t]));
            evo_genome_free(&c2);
            evo_genome_free(&g);
            g = c;
        }
        char *text = NULL;
        CHECK_EVO(evo_genome_emit(&g, 1, &text));
        CHECK(rng == rng_end[k] && text && fnv1a(text) == hash[k], "walk %d ends as recorded (rng %016llx, cfg %016llx)", k,
              (unsigned long long)rng, text ? (unsigned long long)fnv1a(text) : 0ull);
        free(text);
        evo_genome_free(&g);
    }
}

/* morph draws only its five; all draws the paper's and the morphisms. */
static void test_set_draws(void)
{
    evo_genome g;
    CHECK_EVO(evo_genome_parse(SMALL, "small", &g));
    for (int set = EVO_MUTSET_MORPH; set <= EVO_MUTSET_ALL; ++set) {
        int count[64] = {0}, paper = 0, unsafe = 0;
        uint64_t rng = 100 + (uint64_t)set;
        for (int t = 0; t < 300; ++t) {
            evo_genome c;
            evo_mutation m = EVO_MUT_NONE;
            CHECK_EVO(evo_mutate_child_set(&g, NULL, (evo_mutation_set)set, &rng, 20, &c, &m));
            if (m >= EVO_MUT_DEEPEN && m <= EVO_MUT_SKIP_ZERO) count[m - EVO_MUT_DEEPEN + 20]++;
            else if (m >= 0 && m < EVO_MUT_COUNT) { count[m]++; paper += m != EVO_MUT_IDENTITY && m != EVO_MUT_ALTER_LEARNING_RATE; }
            unsafe += evo_count_upstream_unsafe(&c) > 0;
            evo_genome_free(&c);
        }
        for (int k = 20; k < 23; ++k) CHECK(count[k] > 300 / 16 / 2, "set %d: morphism %d drawn %d times", set, k - 20, count[k]);
        CHECK(count[EVO_MUT_IDENTITY] > 0 && count[EVO_MUT_ALTER_LEARNING_RATE] > 0, "set %d: identity, learning rate", set);
        if (set == EVO_MUTSET_MORPH) CHECK(paper == 0, "morph drew %d structural paper mutations", paper);
        else CHECK(paper > 100, "all drew %d structural paper mutations", paper);
        CHECK(unsafe == 0, "set %d: %d children with a strided 1x1 convolution", set, unsafe);
    }
    uint64_t rng = 1;
    evo_genome c;
    CHECK(evo_mutate_child_set(&g, NULL, (evo_mutation_set)7, &rng, 3, &c, NULL) == DN_ERR_ARG, "unknown set refused");
    evo_genome_free(&g);
    /* flatten needs a global [avgpool] head (SMALL has none): on DROP both sets draw it and deepen_head */
    CHECK_EVO(evo_genome_parse(DROP, "drop", &g));
    for (int set = EVO_MUTSET_MORPH; set <= EVO_MUTSET_ALL; ++set) {
        int flattened = 0, headed = 0;
        rng = 200 + (uint64_t)set;
        for (int t = 0; t < 300; ++t) {
            evo_mutation m = EVO_MUT_NONE;
            CHECK_EVO(evo_mutate_child_set(&g, NULL, (evo_mutation_set)set, &rng, 20, &c, &m));
            flattened += m == EVO_MUT_FLATTEN;
            headed += m == EVO_MUT_DEEPEN_HEAD;
            evo_genome_free(&c);
        }
        CHECK(flattened > 300 / 16 / 2 && headed > 300 / 16 / 2, "set %d: flatten drawn %d times, deepen_head %d", set,
              flattened, headed);
    }
    evo_genome_free(&g);
}

/* ------------------------------------------------------------ the genomes */

static void test_deepen_genome(void)
{
    int seen[6] = {0}, crelus = 0, linears_at_crelu = 0;
    for (uint64_t s = 1; s <= 60; ++s) {
        evo_genome p, c;
        CHECK_EVO(mutate_cfg(SMALL, EVO_MUT_DEEPEN, s, &p, &c));
        int pos = -1;
        for (int i = 0; i < c.n; ++i)
            if (evo_genome_find(&p, c.genes[i].id) < 0) pos = i;
        CHECK(c.n == p.n + 1 && pos >= 0 && pos <= p.body_end, "one gene inserted in the body (at %d)", pos);
        if (pos < 0 || pos > 5) { evo_genome_free(&p); evo_genome_free(&c); continue; }
        const evo_gene *g = &c.genes[pos];
        dn_network *net = shapes(&p);
        int in_c = net ? (pos == 0 ? net->c : net->layers[pos - 1].out_c) : -1;
        dn_network_free(net);
        int kind = SMALL_KIND[pos];
        if (kind == KIND_CRELU && geti(g, "filters", 0) == in_c) kind = KIND_LINEAR;   /* the other half of the draws */
        crelus += kind == KIND_CRELU;
        linears_at_crelu += kind == KIND_LINEAR && SMALL_KIND[pos] == KIND_CRELU;
        int want = kind == KIND_CRELU ? 2 * in_c : in_c;
        CHECK(!strcmp(g->type, "convolutional") && geti(g, "filters", 0) == want && geti(g, "size", 0) == 3 &&
              geti(g, "stride", 1) == 1 && geti(g, "pad", 0) == 1 && geti(g, "batch_normalize", 0) == 1,
              "position %d: 3x3 stride-1 BN conv with %d filters (input %d channels): %d", pos, want, in_c,
              geti(g, "filters", 0));
        CHECK(!strcmp(gets_(g, "activation"), kind == KIND_LINEAR ? "linear" : "relu"), "position %d: activation %s",
              pos, gets_(g, "activation"));
        seen[pos]++;
        evo_genome_free(&p);
        evo_genome_free(&c);
    }
    for (int k = 0; k < 6; ++k) CHECK(seen[k] > 0, "position %d drawn", k);
    CHECK(crelus > 0 && linears_at_crelu > 0, "position 4: CReLUs (%d) and linear convs (%d) drawn", crelus,
          linears_at_crelu);
    /* RES: never right before the route (its output would be unused) */
    for (uint64_t s = 1; s <= 30; ++s) {
        evo_genome p, c;
        CHECK_EVO(mutate_cfg(RES, EVO_MUT_DEEPEN, s, &p, &c));
        int pos = -1;
        for (int i = 0; i < c.n; ++i)
            if (evo_genome_find(&p, c.genes[i].id) < 0) pos = i;
        CHECK(pos >= 0 && pos != 3, "RES: inserted at %d, not right before the route (3)", pos);
        evo_genome_free(&p);
        evo_genome_free(&c);
    }
}

static void test_widen_genome(void)
{
    int grew[5] = {0}, res[3] = {0}, wired[8] = {0};
    for (uint64_t s = 1; s <= 40; ++s) {
        evo_genome p, c;
        CHECK_EVO(mutate_cfg(SMALL, EVO_MUT_WIDEN, s, &p, &c));
        int changed = -1, n = 0;
        for (int i = 0; i < p.n; ++i)
            if (!gene_equal(&p.genes[i], &c.genes[i])) { changed = i; ++n; }
        CHECK(n == 1 && c.n == p.n && changed >= 0 && !strcmp(c.genes[changed].type, "convolutional"), "one conv changed");
        if (changed >= 0) {
            int f = geti(&p.genes[changed], "filters", 1), f1 = geti(&c.genes[changed], "filters", 1);
            CHECK(f1 > f && f1 <= (2 * f > 16 ? 2 * f : 16), "filters %d -> %d in [f+1, max(2f,16)]", f, f1);
            if (changed < 5) grew[changed]++;
        }
        evo_genome_free(&p);
        evo_genome_free(&c);
        /* RES: conv 0 (read by conv 1 and the shortcut), 1 (the shortcut's previous layer) and 4 */
        CHECK_EVO(mutate_cfg(RES, EVO_MUT_WIDEN, s, &p, &c));
        int r0 = geti(&c.genes[0], "filters", 0) > 4, r1 = geti(&c.genes[1], "filters", 0) > 4;
        int r4 = geti(&c.genes[4], "filters", 0) > 6;
        CHECK(r0 + r1 + r4 == 1, "RES widens one conv");
        res[0] += r0; res[1] += r1; res[2] += r4;
        evo_genome_free(&p);
        evo_genome_free(&c);
        /* ALIGNED: conv 1 only */
        CHECK_EVO(mutate_cfg(ALIGNED, EVO_MUT_WIDEN, s, &p, &c));
        CHECK(geti(&c.genes[1], "filters", 0) > 4 && geti(&c.genes[0], "filters", 0) == 2, "ALIGNED widens conv 1 only");
        evo_genome_free(&p);
        evo_genome_free(&c);
        CHECK_EVO(mutate_cfg(WIRED, EVO_MUT_WIDEN, s, &p, &c));
        for (int i = 0; i < p.n; ++i)
            if (!strcmp(p.genes[i].type, "convolutional") && geti(&c.genes[i], "filters", 0) > geti(&p.genes[i], "filters", 0))
                wired[i]++;
        evo_genome_free(&p);
        evo_genome_free(&c);
    }
    CHECK(grew[0] && grew[2] && grew[4], "every conv of SMALL widened (%d %d %d)", grew[0], grew[2], grew[4]);
    CHECK(res[0] && res[1] && res[2], "every conv of RES widened (%d %d %d)", res[0], res[1], res[2]);
    CHECK(wired[0] && wired[1] && wired[4] && wired[6], "every conv of WIRED widened (%d %d %d %d)", wired[0], wired[1],
          wired[4], wired[6]);
    evo_genome p, c;
    CHECK(mutate_cfg(LOCKED, EVO_MUT_WIDEN, 1, &p, &c) == DN_ERR_ARG && strstr(evo_last_error(), "widen does not apply"),
          "LOCKED: %s", evo_last_error());
    CHECK(genome_equal(&p, &c), "not applicable: genome unchanged");
    evo_genome_free(&p);
    evo_genome_free(&c);
    CHECK(mutate_cfg(TRIVIAL, EVO_MUT_WIDEN, 1, &p, &c) == DN_ERR_ARG, "trivial seed: nothing to widen");
    evo_genome_free(&p);
    evo_genome_free(&c);
}

static void test_skip_zero_genome(void)
{
    int strided = 0, ones = 0, blocks = 0, plain = 0;
    const char *cfgs[] = {SMALL, RES, FASHION};
    for (int k = 0; k < 3; ++k)
        for (uint64_t s = 1; s <= 20; ++s) {
            evo_genome p, c;
            CHECK_EVO(mutate_cfg(cfgs[k], EVO_MUT_SKIP_ZERO, s, &p, &c));
            int pos = -1;
            for (int i = 0; i < c.n && pos < 0; ++i)
                if (evo_genome_find(&p, c.genes[i].id) < 0) pos = i;
            int added = c.n - p.n, block = added == 4;
            CHECK((added == 3 || added == 4) && pos >= 1 && pos + added - 1 < c.body_end,
                  "three or four genes in the body (%d at %d)", added, pos);
            if (pos < 1 || pos + added - 1 >= c.n || (added != 3 && added != 4)) {
                evo_genome_free(&p);
                evo_genome_free(&c);
                continue;
            }
            blocks += block;
            plain += !block;
            const evo_gene *r = &c.genes[pos], *conv = &c.genes[pos + 1], *sc = &c.genes[pos + added - 1];
            if (block) {   /* the relu conv, then a 1x1 BN linear conv of the main path's channels */
                const evo_gene *last = &c.genes[pos + 2];
                CHECK(!strcmp(last->type, "convolutional") && geti(last, "size", 0) == 1 && geti(last, "stride", 1) == 1 &&
                      geti(last, "batch_normalize", 0) == 1 && !strcmp(gets_(last, "activation"), "linear") &&
                      geti(last, "filters", 0) == geti(conv, "filters", -1), "block: then a 1x1 BN linear conv");
            }
            int src = r->nrefs == 1 ? evo_genome_find(&c, r->refs[0]) : -1;
            CHECK(!strcmp(r->type, "route") && src >= 0 && src < pos, "route of an earlier body gene (%d)", src);
            CHECK(!strcmp(sc->type, "shortcut") && sc->nrefs == 1 && sc->refs[0] == c.genes[pos - 1].id &&
                  !strcmp(gets_(sc, "activation"), "linear"), "shortcut onto the main path, linear");
            CHECK(!strcmp(conv->type, "convolutional") && geti(conv, "batch_normalize", 0) == 1 &&
                  !strcmp(gets_(conv, "activation"), block ? "relu" : "linear"), "BN %s branch conv",
                  block ? "relu" : "linear");
            dn_network *net = shapes(&c);
            if (net) {
                const dn_layer *b = &net->layers[pos + 1], *m = &net->layers[pos - 1];
                CHECK(b->out_w == m->out_w && b->out_h == m->out_h && b->out_c == m->out_c, "branch %dx%dx%d = main %dx%dx%d",
                      b->out_w, b->out_h, b->out_c, m->out_w, m->out_h, m->out_c);
                strided += b->stride > 1;
                ones += b->size == 1;
            }
            dn_network_free(net);
            CHECK(evo_count_upstream_unsafe(&c) == 0, "no strided 1x1 convolution");
            evo_genome_free(&p);
            evo_genome_free(&c);
        }
    CHECK(strided > 0 && ones > 0, "strided (%d) and 1x1 (%d) branches drawn", strided, ones);
    CHECK(blocks > 0 && plain > 0, "residual blocks (%d) and plain branches (%d) drawn", blocks, plain);
    evo_genome p, c;
    CHECK(mutate_cfg(TRIVIAL, EVO_MUT_SKIP_ZERO, 1, &p, &c) == DN_ERR_ARG && strstr(evo_last_error(), "skip_zero does not apply"),
          "trivial seed: %s", evo_last_error());
    evo_genome_free(&p);
    evo_genome_free(&c);
}

/* flatten removes the head's global [avgpool] (dropout kept), nothing else;
 * it applies once, never without such a head, and not before the body has
 * downsampled 4x each way. */
static void test_flatten_genome(void)
{
    const char *cfgs[] = {POOLED, DROP};
    for (int k = 0; k < 2; ++k) {
        evo_genome p, c, again;
        CHECK_EVO(mutate_cfg(cfgs[k], EVO_MUT_FLATTEN, 1, &p, &c));
        int pool = -1;
        for (int i = 0; i < p.n; ++i)
            if (!strcmp(p.genes[i].type, "avgpool")) pool = i;
        int same = c.n == p.n - 1 && pool == p.body_end && c.body_end == p.body_end;
        for (int i = 0, j = 0; same && i < p.n; ++i)
            if (i != pool) same = gene_equal(&p.genes[i], &c.genes[j++]);
        CHECK(same, "cfg %d: the [avgpool] (gene %d, body_end %d) removed, every other gene kept", k, pool, p.body_end);
        CHECK(evo_flatten_pool(&c) < 0, "cfg %d: nothing left to flatten", k);
        dn_network *net = shapes(&c);
        const dn_layer *fc = net ? &net->layers[c.n - 2] : NULL;
        int want = k == 0 ? 7 * 7 * 4 : 3 * 3 * 4;
        CHECK(fc && fc->type == DN_CONNECTED && fc->inputs == want, "cfg %d: the [connected] reads %d inputs, want %d", k,
              fc ? fc->inputs : -1, want);
        dn_network_free(net);
        CHECK(evo_genome_copy(&c, &again) == DN_OK, "copy");
        uint64_t rng = 2;
        CHECK(evo_mutate(&again, EVO_MUT_FLATTEN, &rng) == DN_ERR_ARG && genome_equal(&again, &c),
              "cfg %d: a second flatten does not apply and changes nothing", k);
        evo_genome_free(&again);
        evo_genome_free(&p);
        evo_genome_free(&c);
    }
    const char *none[] = {SMALL, FASHION, LOCKED};
    for (int k = 0; k < 3; ++k) {
        evo_genome p, c;
        CHECK(mutate_cfg(none[k], EVO_MUT_FLATTEN, 1, &p, &c) == DN_ERR_ARG &&
              strstr(evo_last_error(), "flatten does not apply") && genome_equal(&p, &c),
              "cfg %d without a pooled [connected] head: %s", k, evo_last_error());
        evo_genome_free(&p);
        evo_genome_free(&c);
    }
    const char *early[] = {TRIVIAL, RES}, *maps[] = {"28x28", "8x8"};   /* 28x28 and 16x16 inputs */
    for (int k = 0; k < 2; ++k) {
        evo_genome p, c;
        CHECK(mutate_cfg(early[k], EVO_MUT_FLATTEN, 1, &p, &c) == DN_ERR_ARG &&
              strstr(evo_last_error(), "has not downsampled 4x") && strstr(evo_last_error(), maps[k]) &&
              genome_equal(&p, &c), "cfg %d, a %s map: not yet: %s", k, maps[k], evo_last_error());
        evo_genome_free(&p);
        evo_genome_free(&c);
    }
}

/* deepen_head inserts one hidden relu [connected] (64, 128 or 256 units)
 * right before the classifier, never a second one, and not before a
 * classifier with batch norm or a nonlinear activation. */
static void test_deepen_head_genome(void)
{
    const char *cfgs[] = {TRIVIAL, DROP, SMALL, RES};
    int sizes[3] = {0};
    for (int k = 0; k < 4; ++k)
        for (uint64_t s = 1; s <= 6; ++s) {
            evo_genome p, c, again;
            CHECK_EVO(mutate_cfg(cfgs[k], EVO_MUT_DEEPEN_HEAD, s, &p, &c));
            int cls = evo_head_classifier(&p), units = cls >= 0 ? geti(&c.genes[cls], "output", 0) : 0;
            int same = cls >= 0 && c.n == p.n + 1 && c.body_end == p.body_end;
            for (int i = 0, j = 0; same && j < c.n; ++j)
                if (j != cls) same = gene_equal(&p.genes[i++], &c.genes[j]);
            CHECK(same && !strcmp(c.genes[cls].type, "connected") && evo_genome_find(&p, c.genes[cls].id) < 0 &&
                  !strcmp(gets_(&c.genes[cls], "activation"), "relu") && geti(&c.genes[cls], "batch_normalize", 0) == 0,
                  "cfg %d seed %llu: a new relu [connected] right before the classifier (gene %d), the rest kept", k,
                  (unsigned long long)s, cls);
            sizes[0] += units == 64;
            sizes[1] += units == 128;
            sizes[2] += units == 256;
            CHECK(units == 64 || units == 128 || units == 256, "cfg %d: %d hidden units", k, units);
            CHECK(evo_genome_copy(&c, &again) == DN_OK, "copy");
            uint64_t rng = s;
            CHECK(evo_mutate(&again, EVO_MUT_DEEPEN_HEAD, &rng) == DN_ERR_ARG && genome_equal(&again, &c),
                  "cfg %d: no second hidden layer", k);
            evo_genome_free(&again);
            evo_genome_free(&p);
            evo_genome_free(&c);
        }
    CHECK(sizes[0] && sizes[1] && sizes[2], "64 (%d), 128 (%d) and 256 (%d) units drawn", sizes[0], sizes[1], sizes[2]);
    static const char *const bad[] = {
        NULL, NULL,   /* FASHION (its classifier reads a hidden [connected]), LOCKED (no [connected]) */
        "[net]\nwidth=8\nheight=8\nchannels=1\n[avgpool]\n[connected]\noutput=3\nbatch_normalize=1\nactivation=linear\n"
        "[softmax]\n",
        "[net]\nwidth=8\nheight=8\nchannels=1\n[avgpool]\n[connected]\noutput=3\nactivation=leaky\n[softmax]\n",
        "[net]\nwidth=8\nheight=8\nchannels=1\n[avgpool]\n[connected]\noutput=3\n[softmax]\n"};   /* logistic */
    for (int k = 0; k < 5; ++k) {
        evo_genome p, c;
        const char *cfg = k == 0 ? FASHION : k == 1 ? LOCKED : bad[k];
        CHECK(mutate_cfg(cfg, EVO_MUT_DEEPEN_HEAD, 1, &p, &c) == DN_ERR_ARG &&
              strstr(evo_last_error(), "deepen_head does not apply") && genome_equal(&p, &c),
              "case %d: %s", k, evo_last_error());
        evo_genome_free(&p);
        evo_genome_free(&c);
    }
}

/* ------------------------------------------------------------ function preserved */

/* variant: the children of deepen that are CReLUs, of skip_zero residual blocks */
typedef struct { int exact, checked, bare_differs, skipped, variant; float worst, worst_train, worst_other; } tally;

/* One morphism on one parent: the child equals the parent (inference; for
 * deepen also training mode), and without evo_morph_init it does not. */
static void exact_case(const char *cfg, const char *name, evo_mutation m, uint64_t s, tally *t)
{
    evo_genome p, c;
    dn_status st = mutate_cfg(cfg, m, s, &p, &c);
    if (st == DN_ERR_ARG) { t->skipped++; evo_genome_free(&p); evo_genome_free(&c); return; }
    CHECK(st == DN_OK, "%s %s seed %llu: %s", name, evo_mutation_name(m), (unsigned long long)s, evo_last_error());
    dn_network *parent = st == DN_OK ? build(&p, s) : NULL;
    float *X = parent ? images(parent, 4 * BATCH, s * 7) : NULL, *Xs = parent ? images(parent, 64, s * 11) : NULL;
    dn_network *child = NULL, *bare = NULL, *same = NULL;
    if (!parent || !X || !Xs) goto done;
    randomise(parent, s * 31);
    child = morph_child(&c, &p, parent, m, 1, Xs, 64, s);
    bare = morph_child(&c, &p, parent, m, 0, NULL, 0, s);
    if (!child || !bare) { CHECK(0, "%s: child builds", name); goto done; }
    float d = predict_diff(parent, child, X, 4 * BATCH), b = predict_diff_as(parent, bare, X, 4 * BATCH, 1);
    t->checked++;
    for (int i = 0; m == EVO_MUT_DEEPEN && i < c.n; ++i)   /* the new conv doubles its input: a CReLU */
        if (evo_genome_find(&p, c.genes[i].id) < 0) t->variant += child->layers[i].out_c == 2 * child->layers[i].c;
    t->variant += m == EVO_MUT_SKIP_ZERO && c.n == p.n + 4;   /* a residual block */
    t->exact += d <= EXACT;
    t->bare_differs += b > 1e-2f;
    if (!(d <= t->worst)) t->worst = d;
    CHECK(d <= EXACT, "%s %s seed %llu: child differs from parent by %g", name, evo_mutation_name(m), (unsigned long long)s, d);
    CHECK(b > 1e-2f, "%s %s seed %llu: without evo_morph_init the child differs by only %g", name, evo_mutation_name(m),
          (unsigned long long)s, b);
    if (m == EVO_MUT_DEEPEN && !strstr(cfg, "dropout")) {
        /* training mode: batch norm normalises with the batch's statistics.
         * Measured on this very batch, the new layer is the identity up to
         * rounding (1e-3; seen: 4e-6); measured on 64 other images, this
         * batch's mean and variance differ from theirs and the outputs move
         * by a few percent of their largest logit (loose: 0.1; seen: 0.04). */
        same = morph_child(&c, &p, parent, m, 1, X, BATCH, s);
        float dt = same ? forward_diff(parent, same, X, 1) : INFINITY, dl = forward_diff_as(parent, child, X, 1, 1);
        CHECK(dt <= 1e-3f, "%s deepen seed %llu: training mode with the batch's statistics differs by %g", name,
              (unsigned long long)s, dt);
        CHECK(dl <= 0.1f, "%s deepen seed %llu: training mode with other images' statistics differs by %g", name,
              (unsigned long long)s, dl);
        if (!(dt <= t->worst_train)) t->worst_train = dt;
        if (!(dl <= t->worst_other)) t->worst_other = dl;
    }
done:
    dn_network_free(parent);
    dn_network_free(child);
    dn_network_free(bare);
    dn_network_free(same);
    free(X);
    free(Xs);
    evo_genome_free(&p);
    evo_genome_free(&c);
}

static void test_function_preserved(void)
{
    evo_genome t0, t1;
    CHECK_EVO(mutate_cfg(TRIVIAL, EVO_MUT_DEEPEN, 1, &t0, &t1));   /* the trivial seed after a deepen at 0 */
    char *trivial_deep = NULL;
    CHECK_EVO(evo_genome_emit(&t1, 1, &trivial_deep));
    evo_genome_free(&t0);
    evo_genome_free(&t1);
    const char *cfgs[] = {SMALL, DROP, RES, FASHION, trivial_deep, TRIVIAL, POOLED, WIRED, ALIGNED};
    const char *names[] = {"small", "drop", "res", "fashion-small", "trivial+deepen", "trivial", "pooled", "wired",
                           "aligned"};
    evo_mutation ms[] = {EVO_MUT_DEEPEN, EVO_MUT_WIDEN, EVO_MUT_SKIP_ZERO, EVO_MUT_FLATTEN, EVO_MUT_DEEPEN_HEAD};
    for (int k = 0; k < 5; ++k) {
        tally t = {0};
        for (int c = 0; c < 9; ++c)
            for (uint64_t s = 1; s <= (c == 3 ? 3u : c == 7 ? 12u : 6u); ++s) exact_case(cfgs[c], names[c], ms[k], s, &t);
        for (uint64_t s = 7; ms[k] == EVO_MUT_DEEPEN && s <= 16; ++s) {   /* more CReLUs: signed inputs */
            exact_case(SMALL, "small", ms[k], s, &t);
            exact_case(DROP, "drop", ms[k], s, &t);
        }
        printf("%s: %d of %d children exact (worst %.2g), %d differ without evo_morph_init, %d not applicable\n",
               evo_mutation_name(ms[k]), t.exact, t.checked, t.worst, t.bare_differs, t.skipped);
        if (ms[k] == EVO_MUT_DEEPEN) {
            printf("deepen, training mode: worst %.2g (statistics of the batch), %.2g of the largest logit (of other "
                   "images); %d CReLUs\n", t.worst_train, t.worst_other, t.variant);
            CHECK(t.variant >= 5, "deepen: %d CReLU children among the exact ones", t.variant);
        }
        if (ms[k] == EVO_MUT_SKIP_ZERO) {
            printf("skip_zero: %d residual blocks\n", t.variant);
            CHECK(t.variant >= 5, "skip_zero: %d residual blocks among the exact ones", t.variant);
        }
        CHECK(t.checked >= 12 && t.exact == t.checked, "%s: %d of %d exact", evo_mutation_name(ms[k]), t.exact, t.checked);
    }
    free(trivial_deep);
}

/* ------------------------------------------------------------ widen: split and symmetry */

/* Parent filter of child filter j of the widened layer: the one whose weights
 * and biases it equals (-1: none). */
static int copy_source(const dn_layer *c, const dn_layer *p, int j)
{
    size_t per = p->nweights / (size_t)p->out_c;
    for (int f = 0; f < p->out_c; ++f)
        if (!memcmp(c->weights + (size_t)j * per, p->weights + (size_t)f * per, per * sizeof(float)) &&
            c->biases[j] == p->biases[f])
            return f;
    return -1;
}

/* Reader weights (O, F, per) from the parent's (O, f, per) with `how`: 0 each
 * copy the full weight (no split), 1 split equally among the copies. */
static void resplit(dn_layer *rc, const dn_layer *rp, const int *src, int F, int how)
{
    int O = rp->out_c;
    size_t per = rc->nweights / ((size_t)O * F);
    int f = (int)(rp->nweights / ((size_t)O * per));
    int copies[64] = {0};
    for (int j = 0; j < F; ++j) copies[src[j]]++;
    for (int o = 0; o < O; ++o)
        for (int j = 0; j < F; ++j)
            for (size_t e = 0; e < per; ++e)
                rc->weights[((size_t)o * F + j) * per + e] =
                    rp->weights[((size_t)o * f + src[j]) * per + e] / (how ? (float)copies[src[j]] : 1.f);
}

/* Largest difference between a widened copy and its source filter. */
static float copy_gap(const dn_layer *l, const int *src, int F)
{
    size_t per = l->nweights / (size_t)F;
    float gap = 0;
    for (int j = 0; j < F; ++j)
        if (src[j] != j)
            for (size_t e = 0; e < per; ++e) {
                float d = fabsf(l->weights[(size_t)j * per + e] - l->weights[(size_t)src[j] * per + e]);
                if (d > gap) gap = d;
            }
    return gap;
}

static float train_steps(dn_network *net, const float *X, const float *Y, int steps)
{
    float loss = 0;
    for (int k = 0; k < steps; ++k)
        if (dn_network_train(net, X + (size_t)(k % 4) * BATCH * net->inputs, Y + (size_t)(k % 4) * BATCH * 10, BATCH,
                             &loss) != DN_OK)
            return INFINITY;
    return loss;
}

/* SMALL's conv 0 widened (read by conv 2 through the pool): our split and an
 * equal split both keep the function, no split breaks it; after SGD steps the
 * copies of our split differ from their sources, those of the equal split do
 * not (symmetric forever: the test could tell). */
static void test_widen_split_and_symmetry(void)
{
    evo_genome p, c;
    uint64_t s = 1;
    for (;; ++s) {   /* the first seed that widens conv 0 */
        CHECK_EVO(mutate_cfg(SMALL, EVO_MUT_WIDEN, s, &p, &c));
        if (geti(&c.genes[0], "filters", 4) > 4 || s > 200) break;
        evo_genome_free(&p);
        evo_genome_free(&c);
    }
    int F = geti(&c.genes[0], "filters", 4);
    CHECK(F > 4, "a seed widens conv 0 (%d filters)", F);
    dn_network *parent = build(&p, 5);
    randomise(parent, 77);
    float *X = images(parent, 4 * BATCH, 3), *Y = calloc(4 * BATCH * 10, sizeof *Y);
    uint64_t rng = 9;
    for (int i = 0; i < 4 * BATCH; ++i) Y[i * 10 + (int)(dn_rand_u64(&rng) % 10)] = 1;
    dn_network *ours = morph_child(&c, &p, parent, EVO_MUT_WIDEN, 1, NULL, 0, 4);
    dn_network *equal = morph_child(&c, &p, parent, EVO_MUT_WIDEN, 1, NULL, 0, 4);
    dn_network *nosplit = morph_child(&c, &p, parent, EVO_MUT_WIDEN, 1, NULL, 0, 4);
    int src[64], found = 1;
    for (int j = 0; j < F && j < 64; ++j) {
        src[j] = copy_source(&ours->layers[0], &parent->layers[0], j);
        found &= src[j] >= 0 && (j < 4 ? src[j] == j : 1);
        found &= ours->layers[0].rolling_mean[j] == parent->layers[0].rolling_mean[src[j] < 0 ? 0 : src[j]] &&
                 ours->layers[0].scales[j] == parent->layers[0].scales[src[j] < 0 ? 0 : src[j]];
    }
    CHECK(found, "every new filter copies an old one in every array, the old ones stay");
    if (!found) goto done;
    resplit(&equal->layers[2], &parent->layers[2], src, F, 1);
    resplit(&nosplit->layers[2], &parent->layers[2], src, F, 0);
    float d_ours = predict_diff(parent, ours, X, 4 * BATCH), d_equal = predict_diff(parent, equal, X, 4 * BATCH),
          d_none = predict_diff(parent, nosplit, X, 4 * BATCH);
    CHECK(d_ours <= EXACT && d_equal <= EXACT, "random and equal splits exact (%g, %g)", d_ours, d_equal);
    CHECK(d_none > 1e-2f, "no split (every copy the full weight) changes the outputs only by %g", d_none);
    /* the split is unequal: two copies of one channel get different shares */
    int unequal = 0;
    size_t per = ours->layers[2].nweights / ((size_t)ours->layers[2].out_c * F);
    for (int j = 0; j < F; ++j)
        for (int k = 0; k < j; ++k)
            if (src[j] == src[k] && ours->layers[2].weights[(size_t)j * per] != ours->layers[2].weights[(size_t)k * per]) unequal = 1;
    CHECK(unequal, "the copies' shares differ");
    float l1 = train_steps(ours, X, Y, 6), l2 = train_steps(equal, X, Y, 6);
    float g_ours = copy_gap(&ours->layers[0], src, F), g_equal = copy_gap(&equal->layers[0], src, F);
    printf("widen symmetry: after 6 SGD steps copies differ from their sources by %.3g (random split), %.3g (equal split)\n",
           g_ours, g_equal);
    CHECK(isfinite(l1) && isfinite(l2), "training runs (%g, %g)", l1, l2);
    CHECK(g_ours > 1e-4f, "random split: the copies moved apart (%g)", g_ours);
    CHECK(g_equal < 1e-6f, "equal split: the copies stay identical (%g): the symmetry check can fail", g_equal);
done:
    dn_network_free(parent);
    dn_network_free(ours);
    dn_network_free(equal);
    dn_network_free(nosplit);
    free(X);
    free(Y);
    evo_genome_free(&p);
    evo_genome_free(&c);
}

/* ------------------------------------------------------------ growth */

/* The trivial seed deepened at 0 has one 1-filter conv; widen takes it to up
 * to 16 filters in one step. */
static void test_widen_one_filter(void)
{
    evo_genome t0, t1;
    CHECK_EVO(mutate_cfg(TRIVIAL, EVO_MUT_DEEPEN, 1, &t0, &t1));
    CHECK(geti(&t1.genes[0], "filters", 0) == 1 && !strcmp(gets_(&t1.genes[0], "activation"), "relu"),
          "trivial + deepen: a 1-filter relu conv at 0");
    int most = 0;
    for (uint64_t s = 1; s <= 20; ++s) {
        evo_genome c;
        CHECK_EVO(evo_genome_copy(&t1, &c));
        uint64_t rng = s;
        CHECK_EVO(evo_mutate(&c, EVO_MUT_WIDEN, &rng));
        int f = geti(&c.genes[0], "filters", 0);
        CHECK(f >= 2 && f <= 16, "1 -> %d filters in [2, 16]", f);
        if (f > most) most = f;
        evo_genome_free(&c);
    }
    CHECK(most >= 8, "widen reaches %d >= 8 filters from 1", most);
    evo_genome_free(&t0);
    evo_genome_free(&t1);
}

/* Alternating deepen and widen from the trivial seed, each child initialised
 * from its parent network: the function stays the seed's while it grows. */
/* After deepen_head the classifier learns to read the fresh hidden units
 * (their weights start at 0 and move under SGD) while the child starts as
 * its parent. */
static void test_deepen_head_learns(void)
{
    evo_genome p, c;
    CHECK_EVO(mutate_cfg(SMALL, EVO_MUT_DEEPEN_HEAD, 3, &p, &c));
    dn_network *parent = build(&p, 3);
    float *X = parent ? images(parent, 4 * BATCH, 9) : NULL, *Y = calloc(4 * BATCH * 10, sizeof *Y);
    if (!parent || !X || !Y) { CHECK(0, "setup"); goto done; }
    randomise(parent, 4);
    for (int i = 0; i < 4 * BATCH; ++i) Y[i * 10 + i % 10] = 1;
    dn_network *child = morph_child(&c, &p, parent, EVO_MUT_DEEPEN_HEAD, 1, NULL, 0, 3);
    if (!child) { CHECK(0, "child builds"); goto done; }
    CHECK(predict_diff(parent, child, X, 4 * BATCH) <= EXACT, "child = parent before training");
    const dn_layer *cls = logits(child);
    int O = cls->out_c, N = cls->inputs;
    float before = 0, after = 0;
    for (int o = 0; o < O; ++o)
        for (int j = 2 * O; j < N; ++j) before += fabsf(cls->weights[(size_t)o * N + j]);
    train_steps(child, X, Y, 8);
    for (int o = 0; o < O; ++o)
        for (int j = 2 * O; j < N; ++j) after += fabsf(cls->weights[(size_t)o * N + j]);
    CHECK(before == 0 && after > 1e-4f, "the classifier's weights on the %d fresh units: %g before, %g after 8 steps",
          N - 2 * O, before, after);
    dn_network_free(child);
done:
    dn_network_free(parent);
    free(X);
    free(Y);
    evo_genome_free(&p);
    evo_genome_free(&c);
}

static void test_growth_lineage(void)
{
    evo_genome g;
    CHECK_EVO(evo_genome_parse(POOLED, "pooled", &g));
    dn_network *net = build(&g, 1);
    randomise(net, 2);
    dn_network *seed_net = build(&g, 1);
    randomise(seed_net, 2);
    float *X = images(net, 2 * BATCH, 5), *Xs = images(net, 32, 6);
    size_t params0 = dn_network_param_count(net);
    float worst = 0, drift = 0;
    int steps = 0;
    uint64_t rng = 12;
    for (int t = 0; t < 12; ++t) {
        evo_mutation m = t % 3 == 1 ? EVO_MUT_DEEPEN : EVO_MUT_WIDEN;
        if (t == 0) m = EVO_MUT_DEEPEN;
        if (t == 5) m = EVO_MUT_FLATTEN;   /* later widens split the [connected]'s H*W blocks */
        if (t == 9) m = EVO_MUT_DEEPEN_HEAD;   /* then they split the hidden layer's */
        evo_genome c;
        CHECK_EVO(evo_genome_copy(&g, &c));
        if (evo_mutate(&c, m, &rng) != DN_OK || evo_genome_check(&c, NULL, NULL) != DN_OK) {
            CHECK(0, "step %d: %s: %s", t, evo_mutation_name(m), evo_last_error());
            evo_genome_free(&c);
            break;
        }
        dn_network *child = morph_child(&c, &g, net, m, 1, Xs, 32, 100 + (uint64_t)t);
        float d = child ? predict_diff(net, child, X, 2 * BATCH) : INFINITY;
        CHECK(d <= EXACT, "step %d (%s): child differs from parent by %g", t, evo_mutation_name(m), d);
        if (!(d <= worst)) worst = d;
        dn_network_free(net);
        net = child;
        evo_genome_free(&g);
        g = c;
        steps++;
        if (!net) break;
    }
    if (net) {
        drift = predict_diff(seed_net, net, X, 2 * BATCH);
        size_t params = dn_network_param_count(net);
        printf("growth: %d morphisms, %zu -> %zu parameters, worst step %.2g, seed vs grown %.2g\n", steps, params0, params,
               worst, drift);
        CHECK(params > 1000, "the seed grew to %zu parameters", params);
        CHECK(drift <= 1e-3f, "after %d morphisms the grown network still computes the seed's function (%g)", steps, drift);
    }
    dn_network_free(net);
    dn_network_free(seed_net);
    free(X);
    free(Xs);
    evo_genome_free(&g);
}

/* ------------------------------------------------------------ upstream */


/* Genomes along a walk of the "all" set from the trivial seed (routes of one
 * layer, branch convolutions, shortcuts, widened layers) load in upstream. */
static void test_upstream_loads(void)
{
    char harness[512];
    if (!upstream_harness(harness, sizeof harness)) return;
    char dir[] = "/tmp/test_evo_morph_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char path[600];
    snprintf(path, sizeof path, "%s/g.cfg", dir);
    evo_genome g;
    CHECK_EVO(evo_genome_parse(TRIVIAL, "trivial", &g));
    evo_limits lim = {40, 3e5, 5e7, 0};
    uint64_t rng = 31;
    int checked = 0, morphs = 0;
    for (int t = 1; t <= 60; ++t) {
        evo_genome c;
        evo_mutation m;
        if (evo_mutate_child_set(&g, &lim, EVO_MUTSET_ALL, &rng, 20, &c, &m) != DN_OK) break;
        morphs += evo_mutation_is_morph(m);
        evo_genome_free(&g);
        g = c;
        if (t % 12) continue;
        char *text = NULL;
        CHECK_EVO(evo_genome_emit(&g, 1, &text));
        CHECK(text && upstream_same(harness, path, text), "walk step %d: upstream builds it alike:\n%s", t, text ? text : "");
        checked++;
        free(text);
    }
    CHECK(checked == 5 && morphs > 5, "%d genomes checked against upstream, %d morphisms on the way", checked, morphs);
    evo_genome_free(&g);
    /* the head morphisms: conv features flattened into a hidden layer, then the classifier */
    CHECK_EVO(evo_genome_parse(POOLED, "pooled", &g));
    const evo_mutation head[] = {EVO_MUT_DEEPEN, EVO_MUT_WIDEN, EVO_MUT_FLATTEN, EVO_MUT_DEEPEN_HEAD, EVO_MUT_WIDEN};
    for (int k = 0; k < 5; ++k) CHECK_EVO(evo_mutate(&g, head[k], &rng));
    char *text = NULL;
    CHECK_EVO(evo_genome_emit(&g, 1, &text));
    CHECK(text && strstr(text, "relu") && !strstr(text, "[avgpool]") && upstream_same(harness, path, text),
          "flatten + deepen_head: upstream builds it alike:\n%s", text ? text : "");
    free(text);
    evo_genome_free(&g);
    rmdir(dir);
}

/* ------------------------------------------------------------ errors */

static void test_init_errors(void)
{
    evo_genome p, c;
    CHECK_EVO(mutate_cfg(SMALL, EVO_MUT_WIDEN, 1, &p, &c));
    dn_network *parent = build(&p, 1), *child = build(&c, 2);
    CHECK(evo_morph_init(NULL, &c, parent, &p, EVO_MUT_WIDEN, NULL, 0, 1) == DN_ERR_ARG, "no child refused");
    CHECK(evo_morph_init(child, &c, parent, &p, EVO_MUT_IDENTITY, NULL, 0, 1) == DN_OK, "identity: nothing to do");
    CHECK(evo_morph_init(child, &c, parent, &p, EVO_MUT_DEEPEN, NULL, 0, 1) == DN_ERR_ARG &&
          strstr(evo_last_error(), "deepen"), "a widened child is no deepened one: %s", evo_last_error());
    CHECK(evo_morph_init(child, &c, parent, &p, EVO_MUT_SKIP_ZERO, NULL, 0, 1) == DN_ERR_ARG, "nor a skip_zero one");
    CHECK(evo_morph_init(child, &c, parent, &p, EVO_MUT_FLATTEN, NULL, 0, 1) == DN_ERR_ARG &&
          strstr(evo_last_error(), "flatten"), "nor a flattened one: %s", evo_last_error());
    CHECK(evo_morph_init(child, &c, parent, &p, EVO_MUT_DEEPEN_HEAD, NULL, 0, 1) == DN_ERR_ARG &&
          strstr(evo_last_error(), "deepen_head"), "nor a deepened head: %s", evo_last_error());
    evo_genome t;
    CHECK_EVO(evo_genome_parse(TRIVIAL, "t", &t));
    CHECK(evo_morph_init(child, &t, parent, &p, EVO_MUT_WIDEN, NULL, 0, 1) == DN_ERR_ARG &&
          strstr(evo_last_error(), "layer count"), "mismatched genome refused: %s", evo_last_error());
    evo_genome_free(&t);
    dn_network_free(parent);
    dn_network_free(child);
    evo_genome_free(&p);
    evo_genome_free(&c);
    /* ALIGNED's conv 0 widened by hand: its new channels would be added onto conv 1's old ones */
    CHECK_EVO(evo_genome_parse(ALIGNED, "p", &p));
    CHECK_EVO(evo_genome_copy(&p, &c));
    CHECK_EVO(evo_gene_set_int(&c.genes[0], "filters", 3));
    parent = build(&p, 1);
    child = build(&c, 2);
    CHECK(parent && child && evo_widen_flow(child, 0, 2) == DN_ERR_ARG &&
          strstr(evo_last_error(), "[shortcut] 2 adds to channel 2"), "evo_widen_flow refuses: %s", evo_last_error());
    CHECK(parent && child && evo_morph_init(child, &c, parent, &p, EVO_MUT_WIDEN, NULL, 0, 1) == DN_ERR_ARG &&
          strstr(evo_last_error(), "widen of layer 0") && strstr(evo_last_error(), "shortcut"),
          "evo_morph_init refuses it: %s", evo_last_error());
    CHECK(evo_widen_flow(child, 1, 4) == DN_ERR_ARG, "layer 1 did not grow from 4 filters: refused");
    dn_network_free(parent);
    dn_network_free(child);
    evo_genome_free(&c);
    /* LOCKED's conv widened: its channels would reach the [softmax] */
    evo_genome_free(&p);
    CHECK_EVO(evo_genome_parse(LOCKED, "p", &p));
    CHECK_EVO(evo_genome_copy(&p, &c));
    CHECK_EVO(evo_gene_set_int(&c.genes[0], "filters", 5));
    child = build(&c, 2);
    CHECK(child == NULL || (evo_widen_flow(child, 0, 4) == DN_ERR_ARG && strstr(evo_last_error(), "[softmax]")),
          "LOCKED: %s", evo_last_error());
    dn_network_free(child);
    evo_genome_free(&p);
    evo_genome_free(&c);
}

int main(void)
{
    TRIVIAL = read_text("cfg/evo-trivial.cfg");
    FASHION = read_text("cfg/fashion-small.cfg");
    CHECK(TRIVIAL && FASHION, "cfg/evo-trivial.cfg, cfg/fashion-small.cfg (run from the repository root)");
    if (!TRIVIAL || !FASHION) TEST_MAIN_END();
    dn_set_threads(2);
    test_names_and_sets();
    test_paper_set_unchanged();
    test_set_draws();
    test_deepen_genome();
    test_widen_genome();
    test_skip_zero_genome();
    test_flatten_genome();
    test_deepen_head_genome();
    test_function_preserved();
    test_deepen_head_learns();
    test_widen_split_and_symmetry();
    test_widen_one_filter();
    test_growth_lineage();
    test_upstream_loads();
    test_init_errors();
    free(TRIVIAL);
    free(FASHION);
    TEST_MAIN_END();
}
