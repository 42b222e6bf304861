/*
 * test_evo_mutate.c — the paper's mutations on Darknet genomes and weight
 * inheritance: each mutation changes exactly what it says (and nothing in the
 * head or the input), children build, not-applicable cases leave the genome
 * alone, limits reject, draws are deterministic and every mutation gets used;
 * inherited arrays are the parent's bit for bit, the rest a fresh init.
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

/* ------------------------------------------------------------ fixtures */

/* A mid-size body: convs with and without BN, a shortcut, a pool, a route;
 * genes 0 (shortcut source) and 4, 5 (route inputs) are referenced. */
static const char *MID =
    "[net]\nbatch=8\nwidth=16\nheight=16\nchannels=3\nlearning_rate=0.05\nmomentum=0.9\n"
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=relu\n"   /* 0 */
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=relu\n"   /* 1 */
    "[shortcut]\nfrom=-2\nactivation=linear\n"                                                   /* 2 */
    "[maxpool]\nsize=2\nstride=2\n"                                                              /* 3: 8x8 */
    "[convolutional]\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"                   /* 4 */
    "[convolutional]\nfilters=12\nsize=5\nstride=1\npad=1\nactivation=leaky\n"                   /* 5 */
    "[route]\nlayers=-1,-2\n"                                                                    /* 6: 8x8x28 */
    "[convolutional]\nfilters=10\nsize=1\nstride=1\npad=1\nactivation=linear\n"                  /* 7 */
    "[avgpool]\n[connected]\noutput=10\nactivation=linear\n[softmax]\n";

/* A plain chain of convs (every conv removable), head connected+softmax. */
static const char *CHAIN =
    "[net]\nbatch=4\nwidth=20\nheight=20\nchannels=2\nlearning_rate=0.1\n"
    "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=relu\n"
    "[convolutional]\nbatch_normalize=1\nfilters=7\nsize=7\nstride=2\npad=1\nactivation=relu\n"
    "[convolutional]\nfilters=5\nsize=1\nstride=1\nactivation=relu\n"
    "[avgpool]\n[connected]\noutput=4\nactivation=linear\n[softmax]\n";

/* Map sizes 14, 14, 7, 4, 4: 4x4 and 14x14 fit no shortcut rule (14/4 is
 * not an integer), 14 and 7 do. */
static const char *ODD =
    "[net]\nwidth=14\nheight=14\nchannels=2\n"
    "[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=relu\n"
    "[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=relu\n"
    "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\nactivation=relu\n"
    "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\nactivation=relu\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n"
    "[avgpool]\n[softmax]\n";

/* The only conv is read by a shortcut: nothing removable. */
static const char *LOCKED =
    "[net]\nwidth=8\nheight=8\nchannels=4\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n"
    "[activation]\nactivation=relu\n"
    "[shortcut]\nfrom=-2\n"
    "[avgpool]\n[softmax]\n";

static char *TRIVIAL;   /* cfg/evo-trivial.cfg */

/* ------------------------------------------------------------ helpers */

static int geti(const evo_gene *g, const char *key, int def)
{
    const char *s = evo_gene_get(g, key);
    return s ? atoi(s) : def;
}

static int is_pow2(int v) { return v > 0 && (v & (v - 1)) == 0; }

/* How a child differs from its parent, by gene id. */
typedef struct {
    int added, removed, changed;   /* genes new in the child / gone / same id, other content */
    int added_at[4], added_id[4];  /* child indexes and ids of the first added genes */
    int removed_idx;               /* parent index of the (last) removed gene */
    int changed_idx;               /* child index of the (last) changed gene */
    int order_kept;                /* common genes appear in the same order */
    int head_same, input_same, net_same;
} diff;

static diff genome_diff(const evo_genome *p, const evo_genome *c)
{
    diff d = {0};
    d.removed_idx = d.changed_idx = -1;
    int last = -1;
    d.order_kept = 1;
    for (int i = 0; i < c->n; ++i) {
        int j = evo_genome_find(p, c->genes[i].id);
        if (j < 0) {
            if (d.added < 4) { d.added_at[d.added] = i; d.added_id[d.added] = c->genes[i].id; }
            d.added++;
            continue;
        }
        if (j < last) d.order_kept = 0;
        last = j;
        if (!gene_equal(&p->genes[j], &c->genes[i])) { d.changed++; d.changed_idx = i; }
    }
    for (int j = 0; j < p->n; ++j)
        if (evo_genome_find(c, p->genes[j].id) < 0) { d.removed++; d.removed_idx = j; }
    int hp = p->n - p->body_end, hc = c->n - c->body_end;
    d.head_same = hp == hc;
    for (int k = 0; d.head_same && k < hp; ++k) d.head_same = gene_equal(&p->genes[p->body_end + k], &c->genes[c->body_end + k]);
    const char *keys[] = {"width", "height", "channels"};
    d.input_same = 1;
    for (int k = 0; k < 3; ++k) {
        const char *a = evo_net_get(p, keys[k]), *b = evo_net_get(c, keys[k]);
        d.input_same &= (a == NULL) == (b == NULL) && (!a || !strcmp(a, b));
    }
    d.net_same = kvs_equal(p->net, p->nnet, c->net, c->nnet);
    return d;
}

/* The child's plain cfg builds in the framework (shape inference). */
static int builds(const evo_genome *g)
{
    char *text = NULL;
    if (evo_genome_emit(g, 0, &text) != DN_OK) return 0;
    dn_parse_options po = {.quiet = 1, .shapes_only = 1};
    dn_network *net = NULL;
    int ok = dn_network_parse_string(text, "child", &po, &net) == DN_OK;
    if (!ok) fprintf(stderr, "builds: %s\n%s\n", dn_last_error(), text);
    dn_network_free(net);
    free(text);
    return ok;
}

/* Shapes of a genome (nothing allocated); caller frees. */
static dn_network *shapes(const evo_genome *g)
{
    char *text = NULL;
    dn_network *net = NULL;
    dn_parse_options po = {.quiet = 1, .shapes_only = 1};
    if (evo_genome_emit(g, 0, &text) == DN_OK) dn_network_parse_string(text, "g", &po, &net);
    free(text);
    return net;
}

/* Apply m to a copy of the parsed cfg with rng seeded `seed`. */
static dn_status mutate_cfg(const char *cfg, evo_mutation m, uint64_t seed, evo_genome *parent, evo_genome *child)
{
    if (evo_genome_parse(cfg, "parent", parent) != DN_OK) return DN_ERR_PARSE;
    if (evo_genome_copy(parent, child) != DN_OK) return DN_ERR_NOMEM;
    uint64_t rng = seed;
    return evo_mutate(child, m, &rng);
}

/* Common checks on an applied mutation: head, input, validity, fresh ids. */
static void common_checks(const evo_genome *p, const evo_genome *c, const diff *d, const char *what)
{
    CHECK(d->head_same, "%s: head unchanged", what);
    CHECK(d->input_same, "%s: input unchanged", what);
    CHECK(d->order_kept, "%s: untouched genes keep their order", what);
    CHECK(evo_genome_check(c, NULL, NULL) == DN_OK, "%s: child valid: %s", what, evo_last_error());
    CHECK(builds(c), "%s: child cfg builds", what);
    for (int k = 0; k < d->added && k < 4; ++k)
        CHECK(d->added_id[k] >= p->next_id && d->added_id[k] < c->next_id, "%s: fresh id %d (parent next_id %d)", what,
              d->added_id[k], p->next_id);
    CHECK(c->next_id == p->next_id + d->added, "%s: next_id advanced by the genes added", what);
    CHECK(c->body_end - p->body_end == d->added - d->removed, "%s: body_end moves with the body", what);
}

static const char *cfg_at(int k) { return k == 0 ? TRIVIAL : k == 1 ? MID : CHAIN; }
#define NCFG 3
#define SEEDS 12

/* ------------------------------------------------------------ mutations */

static void test_names(void)
{
    for (int m = 0; m < EVO_MUT_COUNT; ++m) {
        evo_mutation back;
        CHECK_EVO(evo_mutation_from_name(evo_mutation_name((evo_mutation)m), &back));
        CHECK(back == m, "name round trip %d", m);
    }
    evo_mutation x;
    CHECK(!strcmp(evo_mutation_name(EVO_MUT_INSERT_CONVOLUTION), "insert_convolution"), "name");
    CHECK(!strcmp(evo_mutation_name(EVO_MUT_NONE), "none") && evo_mutation_from_name("none", &x) == DN_OK &&
          x == EVO_MUT_NONE, "none");
    CHECK(evo_mutation_from_name("grow_wings", &x) == DN_ERR_ARG && strstr(evo_last_error(), "grow_wings"), "unknown name");
    CHECK(!strcmp(evo_mutation_name(EVO_MUT_COUNT), "unknown"), "out of range");
}

static void test_learning_rate_identity_reset(void)
{
    for (int k = 0; k < NCFG; ++k)
        for (uint64_t s = 1; s <= SEEDS; ++s) {
            evo_genome p, c;
            CHECK_EVO(mutate_cfg(cfg_at(k), EVO_MUT_ALTER_LEARNING_RATE, s, &p, &c));
            double a = atof(evo_net_get(&p, "learning_rate")), b = atof(evo_net_get(&c, "learning_rate"));
            CHECK(b >= a * 0.4999 && b <= a * 2.0001 && b != a, "lr %g -> %g within 2^[-1,1]", a, b);
            diff d = genome_diff(&p, &c);
            CHECK(d.added == 0 && d.removed == 0 && d.changed == 0 && p.nnet == c.nnet, "only [net] changes");
            common_checks(&p, &c, &d, "alter_learning_rate");
            evo_genome_free(&p);
            evo_genome_free(&c);
            for (int m = EVO_MUT_IDENTITY; m <= EVO_MUT_RESET_WEIGHTS; ++m) {
                CHECK_EVO(mutate_cfg(cfg_at(k), (evo_mutation)m, s, &p, &c));
                CHECK(genome_equal(&p, &c), "%s leaves the genome as it is", evo_mutation_name((evo_mutation)m));
                evo_genome_free(&p);
                evo_genome_free(&c);
            }
        }
    /* absent learning_rate: the framework default 0.001 is the base */
    evo_genome g;
    CHECK_EVO(evo_genome_parse("[net]\nwidth=4\nheight=4\nchannels=1\n[avgpool]\n[softmax]\n", "x", &g));
    uint64_t rng = 5;
    CHECK_EVO(evo_mutate(&g, EVO_MUT_ALTER_LEARNING_RATE, &rng));
    double lr = evo_net_get(&g, "learning_rate") ? atof(evo_net_get(&g, "learning_rate")) : -1;
    CHECK(lr >= 0.0005 && lr <= 0.002, "lr from the default: %g", lr);
    evo_genome_free(&g);
}

static void test_insert_convolution(void)
{
    int strides[3] = {0}, bn = 0, lin = 0, broke = 0;
    for (int k = 0; k < NCFG; ++k)
        for (uint64_t s = 1; s <= SEEDS; ++s) {
            evo_genome p, c;
            CHECK_EVO(mutate_cfg(cfg_at(k), EVO_MUT_INSERT_CONVOLUTION, s, &p, &c));
            diff d = genome_diff(&p, &c);
            CHECK(d.added == 1 && d.removed == 0 && d.changed == 0 && c.n == p.n + 1, "one gene added");
            if (d.added != 1) { evo_genome_free(&p); evo_genome_free(&c); continue; }
            const evo_gene *g = &c.genes[d.added_at[0]];
            int pos = d.added_at[0];
            CHECK(!strcmp(g->type, "convolutional") && pos <= p.body_end, "a conv in the body at %d", pos);
            CHECK(geti(g, "size", 0) == 3 && geti(g, "pad", 0) == 1, "3x3 same padding");
            int st = geti(g, "stride", 0);
            CHECK(st == 1 || st == 2, "stride %d", st);
            if (st == 1 || st == 2) strides[st]++;
            dn_network *net = shapes(&p);
            int in_c = net ? (pos == 0 ? net->c : net->layers[pos - 1].out_c) : -1;
            dn_network_free(net);
            CHECK(geti(g, "filters", 0) == in_c, "filters %d = input channels %d", geti(g, "filters", 0), in_c);
            const char *act = evo_gene_get(g, "activation");
            int has_bn = geti(g, "batch_normalize", 0);
            CHECK(act && ((has_bn == 1 && !strcmp(act, "relu")) || (has_bn == 0 && !strcmp(act, "linear"))),
                  "BN+relu or linear without BN (bn=%d act=%s)", has_bn, act ? act : "-");
            bn += has_bn == 1;
            lin += has_bn == 0;
            /* a stride-1 insertion never breaks a genome; a stride-2 one may
             * (e.g. before a route whose inputs must match): evo_mutate_child
             * then draws again */
            dn_status cs = evo_genome_check(&c, NULL, NULL);
            if (st == 2 && cs != DN_OK) {
                CHECK(cs == DN_ERR_SHAPE && strstr(evo_last_error(), "does not build"), "shape error: %s", evo_last_error());
                broke++;
            } else {
                common_checks(&p, &c, &d, "insert_convolution");
            }
            evo_genome_free(&p);
            evo_genome_free(&c);
        }
    CHECK(strides[1] > 0 && strides[2] > 0 && bn > 0 && lin > 0, "both strides (%d, %d) and both kinds (%d, %d) drawn",
          strides[1], strides[2], bn, lin);
    CHECK(broke < strides[2], "most stride-2 insertions are valid (%d of %d broke)", broke, strides[2]);
}

static void test_remove_convolution(void)
{
    for (int k = 1; k < NCFG; ++k)
        for (uint64_t s = 1; s <= SEEDS; ++s) {
            evo_genome p, c;
            CHECK_EVO(mutate_cfg(cfg_at(k), EVO_MUT_REMOVE_CONVOLUTION, s, &p, &c));
            diff d = genome_diff(&p, &c);
            CHECK(d.removed == 1 && d.added == 0 && d.changed == 0 && c.n == p.n - 1, "one gene removed");
            if (d.removed == 1) {
                const evo_gene *g = &p.genes[d.removed_idx];
                CHECK(!strcmp(g->type, "convolutional") && d.removed_idx < p.body_end, "a body conv");
                if (k == 1) CHECK(d.removed_idx == 1 || d.removed_idx == 7, "MID: only genes 1 and 7 are unreferenced "
                                  "(removed %d)", d.removed_idx);
            }
            d.added = 0;
            CHECK(d.head_same && d.input_same && d.order_kept, "head/input/order");
            CHECK(c.next_id == p.next_id, "ids are not reused");
            evo_genome_free(&p);
            evo_genome_free(&c);
        }
}

static void test_alter_stride(void)
{
    int up = 0, down = 0, valid = 0;
    for (int k = 1; k < NCFG; ++k)
        for (uint64_t s = 1; s <= SEEDS; ++s) {
            evo_genome p, c;
            CHECK_EVO(mutate_cfg(cfg_at(k), EVO_MUT_ALTER_STRIDE, s, &p, &c));
            diff d = genome_diff(&p, &c);
            CHECK(d.changed == 1 && d.added == 0 && d.removed == 0, "one gene changed");
            if (d.changed == 1) {
                const evo_gene *a = &p.genes[evo_genome_find(&p, c.genes[d.changed_idx].id)], *b = &c.genes[d.changed_idx];
                int s0 = geti(a, "stride", 1), s1 = geti(b, "stride", 1);
                CHECK(!strcmp(b->type, "convolutional") && d.changed_idx < c.body_end, "a body conv");
                CHECK(is_pow2(s1) && s1 <= 8 && (s1 == 2 * s0 || 2 * s1 == s0), "stride %d -> %d", s0, s1);
                up += s1 > s0;
                down += s1 < s0;
                CHECK(a->nkv == b->nkv || (a->nkv + 1 == b->nkv && !evo_gene_get(a, "stride")), "only stride is new");
                for (int i = 0; i < a->nkv; ++i)
                    if (strcmp(a->kv[i].key, "stride"))
                        CHECK(evo_gene_get(b, a->kv[i].key) && !strcmp(evo_gene_get(b, a->kv[i].key), a->kv[i].value),
                              "option %s unchanged", a->kv[i].key);
            }
            CHECK(d.head_same && d.input_same, "head/input unchanged");
            /* a stride change may break a route (inputs of other sizes) */
            if (evo_genome_check(&c, NULL, NULL) == DN_OK) { valid++; CHECK(builds(&c), "valid child builds"); }
            evo_genome_free(&p);
            evo_genome_free(&c);
        }
    CHECK(up > 0 && down > 0, "strides go up (%d) and down (%d)", up, down);
    CHECK(valid > SEEDS, "most stride changes give valid children (%d of %d)", valid, 2 * SEEDS);
    /* bounds: stride 1 only goes up, stride 8 only down */
    for (uint64_t s = 1; s <= 8; ++s) {
        const char *c1 = "[net]\nwidth=64\nheight=64\nchannels=1\n[convolutional]\nfilters=2\nsize=3\npad=1\n"
                         "activation=relu\n[avgpool]\n[softmax]\n";
        const char *c8 = "[net]\nwidth=64\nheight=64\nchannels=1\n[convolutional]\nfilters=2\nsize=3\nstride=8\npad=1\n"
                         "activation=relu\n[avgpool]\n[softmax]\n";
        evo_genome p, c;
        CHECK_EVO(mutate_cfg(c1, EVO_MUT_ALTER_STRIDE, s, &p, &c));
        CHECK(geti(&c.genes[0], "stride", 0) == 2, "1 -> 2");
        evo_genome_free(&p);
        evo_genome_free(&c);
        CHECK_EVO(mutate_cfg(c8, EVO_MUT_ALTER_STRIDE, s, &p, &c));
        CHECK(geti(&c.genes[0], "stride", 0) == 4, "8 -> 4");
        evo_genome_free(&p);
        evo_genome_free(&c);
    }
}

static void test_alter_channels(void)
{
    int lower = 0, higher = 0;
    for (int k = 1; k < NCFG; ++k)
        for (uint64_t s = 1; s <= SEEDS * 2; ++s) {
            evo_genome p, c;
            CHECK_EVO(mutate_cfg(cfg_at(k), EVO_MUT_ALTER_CHANNELS, s, &p, &c));
            diff d = genome_diff(&p, &c);
            CHECK(d.changed == 1 && d.added == 0 && d.removed == 0, "one gene changed");
            if (d.changed == 1) {
                const evo_gene *a = &p.genes[evo_genome_find(&p, c.genes[d.changed_idx].id)], *b = &c.genes[d.changed_idx];
                int f0 = geti(a, "filters", 1), f1 = geti(b, "filters", 1);
                CHECK(!strcmp(b->type, "convolutional") && d.changed_idx < c.body_end, "a body conv");
                CHECK(f1 >= (f0 + 1) / 2 && f1 <= 2 * f0 && f1 != f0, "filters %d -> %d in [ceil(f/2), 2f]", f0, f1);
                lower += f1 < f0;
                higher += f1 > f0;
                CHECK(a->nkv == b->nkv, "no option added");
            }
            common_checks(&p, &c, &d, "alter_channels");
            evo_genome_free(&p);
            evo_genome_free(&c);
        }
    CHECK(lower > 0 && higher > 0, "channels shrink (%d) and grow (%d)", lower, higher);
    /* f = 1: the only other value is 2 */
    evo_genome p, c;
    CHECK_EVO(mutate_cfg("[net]\nwidth=8\nheight=8\nchannels=1\n[convolutional]\nactivation=relu\n[avgpool]\n[softmax]\n",
                         EVO_MUT_ALTER_CHANNELS, 3, &p, &c));
    CHECK(geti(&c.genes[0], "filters", 0) == 2, "filters 1 -> 2");
    evo_genome_free(&p);
    evo_genome_free(&c);
}

static void test_alter_filter_size(void)
{
    int seen[16] = {0};
    for (int k = 1; k < NCFG; ++k)
        for (uint64_t s = 1; s <= SEEDS * 2; ++s) {
            evo_genome p, c;
            CHECK_EVO(mutate_cfg(cfg_at(k), EVO_MUT_ALTER_FILTER_SIZE, s, &p, &c));
            diff d = genome_diff(&p, &c);
            CHECK(d.changed == 1 && d.added == 0 && d.removed == 0, "one gene changed");
            if (d.changed == 1) {
                const evo_gene *a = &p.genes[evo_genome_find(&p, c.genes[d.changed_idx].id)], *b = &c.genes[d.changed_idx];
                int s0 = geti(a, "size", 1), s1 = geti(b, "size", 1);
                int h = (s0 - 1) / 2, h1 = (s1 - 1) / 2;
                CHECK(s1 % 2 == 1, "size %d stays odd", s1);
                CHECK(h1 >= h / 2 && h1 <= (h ? 2 * h : 1) && h1 != h, "half-width %d -> %d", h, h1);
                CHECK(geti(b, "pad", 0) == 1, "pad=1 keeps the map size");
                if (s1 < 16) seen[s1]++;
            }
            if (evo_genome_check(&c, NULL, NULL) == DN_OK) common_checks(&p, &c, &d, "alter_filter_size");
            else CHECK(strstr(evo_last_error(), "kernel size"), "only a kernel larger than its map may fail: %s",
                       evo_last_error());
            evo_genome_free(&p);
            evo_genome_free(&c);
        }
    CHECK(seen[1] && seen[5], "3x3 kernels become 1x1 and 5x5 (%d, %d)", seen[1], seen[5]);
    /* same padding: the output size is the input size at stride 1 */
    evo_genome p, c;
    CHECK_EVO(mutate_cfg(CHAIN, EVO_MUT_ALTER_FILTER_SIZE, 1, &p, &c));
    dn_network *a = shapes(&p), *b = shapes(&c);
    CHECK(a && b && a->layers[0].out_w == b->layers[0].out_w && a->layers[2].out_w == b->layers[2].out_w,
          "map sizes of stride-1 convs unchanged");
    dn_network_free(a);
    dn_network_free(b);
    evo_genome_free(&p);
    evo_genome_free(&c);
}

static void test_insert_one_to_one(void)
{
    int two = 0, one = 0;
    for (int k = 0; k < NCFG; ++k)
        for (uint64_t s = 1; s <= SEEDS; ++s) {
            evo_genome p, c;
            CHECK_EVO(mutate_cfg(cfg_at(k), EVO_MUT_INSERT_ONE_TO_ONE, s, &p, &c));
            diff d = genome_diff(&p, &c);
            CHECK(d.removed == 0 && d.changed == 0 && d.added == 1, "one gene added");
            if (d.added == 1) {
                const evo_gene *g = &c.genes[d.added_at[0]];
                const char *act = evo_gene_get(g, "activation");
                CHECK(!strcmp(g->type, "activation") && act && (!strcmp(act, "linear") || !strcmp(act, "relu")),
                      "[activation] linear or relu");
                if (act && !strcmp(act, "linear")) one++;
                else two++;
            }
            CHECK(d.added_at[0] <= p.body_end, "in the body");
            dn_network *a = shapes(&p), *b = shapes(&c);
            CHECK(a && b && a->outputs == b->outputs && b->n == a->n + d.added, "identity edge: shapes unchanged");
            for (int i = 0; a && b && i < p.n; ++i) {
                int j = evo_genome_find(&c, p.genes[i].id);
                CHECK(a->layers[i].out_w == b->layers[j].out_w && a->layers[i].out_c == b->layers[j].out_c,
                      "layer %d keeps its shape", i);
            }
            dn_network_free(a);
            dn_network_free(b);
            common_checks(&p, &c, &d, "insert_one_to_one");
            evo_genome_free(&p);
            evo_genome_free(&c);
        }
    CHECK(one > 0 && two > 0, "both kinds drawn (%d, %d)", one, two);
}

static void test_skips(void)
{
    int sources[8] = {0};
    for (int k = 1; k <= NCFG; ++k)
        for (uint64_t s = 1; s <= SEEDS * 3; ++s) {
            evo_genome p, c;
            CHECK_EVO(mutate_cfg(k < NCFG ? cfg_at(k) : ODD, EVO_MUT_ADD_SKIP, s, &p, &c));
            diff d = genome_diff(&p, &c);
            CHECK(d.added == 1 && d.removed == 0 && d.changed == 0, "one gene added");
            if (d.added == 1) {
                int pos = d.added_at[0];
                const evo_gene *g = &c.genes[pos];
                CHECK(!strcmp(g->type, "shortcut") && g->nrefs == 1 && pos < c.body_end, "a shortcut in the body");
                int src = g->nrefs == 1 ? evo_genome_find(&c, g->refs[0]) : -1;
                CHECK(src >= 0 && src <= pos - 2, "source %d is an earlier body gene, not the direct input (pos %d)", src, pos);
                CHECK(evo_gene_get(g, "activation") && !strcmp(evo_gene_get(g, "activation"), "linear"), "linear");
                dn_network *net = shapes(&c);
                if (net && src >= 0) {
                    const dn_layer *a = &net->layers[src], *b = &net->layers[pos - 1];
                    int fits = (a->out_w == b->out_w && a->out_h == b->out_h) ||
                               (a->out_w % b->out_w == 0 && a->out_w / b->out_w == a->out_h / b->out_h && a->out_h % b->out_h == 0) ||
                               (b->out_w % a->out_w == 0 && b->out_w / a->out_w == b->out_h / a->out_h && b->out_h % a->out_h == 0);
                    CHECK(fits, "source %dx%d fits %dx%d", a->out_w, a->out_h, b->out_w, b->out_h);
                    if (k == NCFG && src < 8) sources[src]++;
                }
                dn_network_free(net);
            }
            common_checks(&p, &c, &d, "add_skip");

            /* and remove_skip takes a shortcut out again */
            evo_genome r;
            CHECK_EVO(evo_genome_copy(&c, &r));
            uint64_t rng = s * 7;
            CHECK_EVO(evo_mutate(&r, EVO_MUT_REMOVE_SKIP, &rng));
            diff e = genome_diff(&c, &r);
            CHECK(e.removed == 1 && e.added == 0 && e.changed == 0 && !strcmp(c.genes[e.removed_idx].type, "shortcut"),
                  "remove_skip removes one shortcut");
            CHECK(evo_genome_check(&r, NULL, NULL) == DN_OK && e.head_same, "still valid: %s", evo_last_error());
            evo_genome_free(&r);
            evo_genome_free(&p);
            evo_genome_free(&c);
        }
    /* ODD (outputs 14, 14, 7, 4, 4): a shortcut at 2 reads 0 (14 on 14); at 3
     * reads 0 or 1 (14 on 7); at 4 nothing fits (14 or 7 on 4); at 5 reads
     * 3 (4 on 4). Gene 2 (7x7) is never a source. */
    CHECK(sources[0] > 0 && sources[1] > 0 && sources[3] > 0 && sources[2] == 0 && sources[4] == 0,
          "ODD sources %d %d %d %d %d", sources[0], sources[1], sources[2], sources[3], sources[4]);
}

static void test_not_applicable(void)
{
    struct { const char *cfg; evo_mutation m; const char *word; } cases[] = {
        {NULL, EVO_MUT_REMOVE_CONVOLUTION, "remove_convolution does not apply"},
        {NULL, EVO_MUT_ALTER_STRIDE, "alter_stride"},
        {NULL, EVO_MUT_ALTER_CHANNELS, "alter_channels"},
        {NULL, EVO_MUT_ALTER_FILTER_SIZE, "alter_filter_size"},
        {NULL, EVO_MUT_ADD_SKIP, "add_skip"},
        {NULL, EVO_MUT_REMOVE_SKIP, "remove_skip"},
        {"CHAIN", EVO_MUT_REMOVE_SKIP, "no removable [shortcut]"},
        {"LOCKED", EVO_MUT_REMOVE_CONVOLUTION, "no removable [convolutional]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        const char *cfg = !cases[i].cfg ? TRIVIAL : !strcmp(cases[i].cfg, "CHAIN") ? CHAIN : LOCKED;
        evo_genome p, c;
        dn_status st = mutate_cfg(cfg, cases[i].m, 9, &p, &c);
        CHECK(st == DN_ERR_ARG && strstr(evo_last_error(), cases[i].word), "%s: %s (%s)",
              evo_mutation_name(cases[i].m), dn_status_name(st), evo_last_error());
        CHECK(genome_equal(&p, &c), "%s: genome unchanged", evo_mutation_name(cases[i].m));
        evo_genome_free(&p);
        evo_genome_free(&c);
    }
    /* LOCKED: the shortcut itself is removable, the conv it reads is not */
    evo_genome p, c;
    CHECK_EVO(mutate_cfg(LOCKED, EVO_MUT_REMOVE_SKIP, 1, &p, &c));
    CHECK(c.n == p.n - 1 && evo_genome_find(&c, 3) < 0, "the shortcut goes");
    uint64_t rng = 1;
    CHECK_EVO(evo_mutate(&c, EVO_MUT_REMOVE_CONVOLUTION, &rng));
    CHECK(evo_genome_find(&c, 1) < 0, "then its source conv is removable");
    evo_genome_free(&p);
    evo_genome_free(&c);
    /* a skip needs a source other than the direct input */
    CHECK(mutate_cfg("[net]\nwidth=8\nheight=8\nchannels=1\n[convolutional]\nfilters=2\nactivation=relu\n[avgpool]\n"
                     "[softmax]\n", EVO_MUT_ADD_SKIP, 1, &p, &c) == DN_ERR_ARG, "one body gene: no skip");
    evo_genome_free(&p);
    evo_genome_free(&c);
    CHECK(mutate_cfg(TRIVIAL, EVO_MUT_COUNT, 1, &p, &c) == DN_ERR_ARG, "unknown mutation");
    evo_genome_free(&p);
    evo_genome_free(&c);
}

static void test_mutate_child(void)
{
    evo_genome mid;
    CHECK_EVO(evo_genome_parse(MID, "mid", &mid));
    evo_cost pc;
    CHECK_EVO(evo_genome_check(&mid, NULL, &pc));

    /* determinism */
    for (uint64_t s = 1; s <= 20; ++s) {
        uint64_t r1 = s, r2 = s;
        evo_genome a, b;
        evo_mutation ma, mb;
        CHECK_EVO(evo_mutate_child(&mid, NULL, &r1, 10, &a, &ma));
        CHECK_EVO(evo_mutate_child(&mid, NULL, &r2, 10, &b, &mb));
        CHECK(ma == mb && r1 == r2 && genome_equal(&a, &b), "same rng, same child (seed %llu)", (unsigned long long)s);
        evo_genome_free(&a);
        evo_genome_free(&b);
    }

    /* every mutation gets applied; every child is valid and keeps head and input */
    int count[EVO_MUT_COUNT] = {0};
    uint64_t rng = 42;
    for (int t = 0; t < 600; ++t) {
        evo_genome c;
        evo_mutation m = EVO_MUT_NONE;
        CHECK_EVO(evo_mutate_child(&mid, NULL, &rng, 20, &c, &m));
        if (m >= 0 && m < EVO_MUT_COUNT) count[m]++;
        diff d = genome_diff(&mid, &c);
        CHECK(d.head_same && d.input_same && evo_genome_check(&c, NULL, NULL) == DN_OK, "child %d (%s) valid", t,
              evo_mutation_name(m));
        CHECK(m != EVO_MUT_IDENTITY && m != EVO_MUT_RESET_WEIGHTS ? 1 : genome_equal(&mid, &c), "identity/reset keep it");
        evo_genome_free(&c);
    }
    for (int m = 0; m < EVO_MUT_COUNT; ++m)
        CHECK(count[m] > 600 / EVO_MUT_COUNT / 3, "%s applied %d times of 600", evo_mutation_name((evo_mutation)m), count[m]);

    /* limits: children never exceed them; impossible limits give an error */
    evo_limits lim = {0, (double)pc.params, 0, 0};
    int grew = 0;
    for (int t = 0; t < 100; ++t) {
        evo_genome c;
        evo_mutation m;
        CHECK_EVO(evo_mutate_child(&mid, &lim, &rng, 50, &c, &m));
        evo_cost cc;
        CHECK(evo_genome_check(&c, NULL, &cc) == DN_OK && (double)cc.params <= lim.max_params, "params %zu within %g",
              cc.params, lim.max_params);
        grew += cc.params > pc.params;
        evo_genome_free(&c);
    }
    CHECK(grew == 0, "no child over max_params");
    evo_limits tight = {2, 0, 0, 0};
    evo_genome c;
    evo_mutation m = EVO_MUT_IDENTITY;
    dn_status st = evo_mutate_child(&mid, &tight, &rng, 5, &c, &m);
    CHECK(st != DN_OK && strstr(evo_last_error(), "no valid child in 5 tries") && strstr(evo_last_error(), "max_layers"),
          "impossible limits: %s", evo_last_error());
    CHECK(c.n == 0 && c.genes == NULL && m == EVO_MUT_NONE, "no child on failure");
    evo_genome_free(&mid);

    /* a long random walk from the trivial seed stays valid, ids unique */
    evo_genome g;
    CHECK_EVO(evo_genome_parse(TRIVIAL, "trivial", &g));
    evo_limits walk = {40, 2e5, 5e7, 0};
    int convs = 0;
    for (int t = 0; t < 150; ++t) {
        evo_genome ch;
        if (evo_mutate_child(&g, &walk, &rng, 20, &ch, &m) != DN_OK) { CHECK(0, "walk step %d: %s", t, evo_last_error()); break; }
        diff d = genome_diff(&g, &ch);
        CHECK(d.head_same && d.input_same, "walk step %d keeps head and input", t);
        evo_genome_free(&g);
        g = ch;
    }
    for (int i = 0; i < g.n; ++i) {
        convs += !strcmp(g.genes[i].type, "convolutional");
        for (int j = 0; j < i; ++j) CHECK(g.genes[i].id != g.genes[j].id, "unique ids");
    }
    CHECK(convs > 0 && g.body_end > 0, "the walk grew a body (%d convs, body_end %d)", convs, g.body_end);
    CHECK(g.n - g.body_end == 3 && !strcmp(g.genes[g.n - 3].type, "avgpool"), "trivial head intact");
    CHECK(builds(&g), "final genome builds");
    evo_genome_free(&g);
}

/* ------------------------------------------------------------ inheritance */

/* Distinct known values: layer i, array k, element e. */
static void fill_known(dn_network *net)
{
    for (int i = 0; i < net->n; ++i) {
        dn_param p[DN_MAX_PARAMS];
        int np = dn_layer_params(&net->layers[i], p);
        for (int k = 0; k < np; ++k)
            for (size_t e = 0; e < p[k].n; ++e) p[k].data[e] = 1000.0f * (float)(i + 1) + 100.0f * (float)k + 0.25f * (float)e;
    }
}

static int arrays_equal(const dn_layer *a, const dn_layer *b)
{
    dn_param pa[DN_MAX_PARAMS], pb[DN_MAX_PARAMS];
    int na = dn_layer_params(a, pa), nb = dn_layer_params(b, pb);
    if (na != nb) return 0;
    for (int k = 0; k < na; ++k)
        if (pa[k].n != pb[k].n || memcmp(pa[k].data, pb[k].data, pa[k].n * sizeof(float))) return 0;
    return 1;
}

static dn_network *build(const evo_genome *g, uint64_t seed)
{
    char *text = NULL;
    dn_network *net = NULL;
    dn_parse_options po = {.batch = 2, .seed = seed, .quiet = 1};
    if (evo_genome_emit(g, 1, &text) == DN_OK && dn_network_parse_string(text, "net", &po, &net) != DN_OK)
        fprintf(stderr, "build: %s\n", dn_last_error());
    free(text);
    return net;
}

/* Mutate MID with m (first seed that applies and checks), inherit, and verify
 * every layer; want_init: expected count of initialised layers (-1: any). */
static void inherit_case(evo_mutation m, int want_init)
{
    evo_genome p, c;
    CHECK_EVO(evo_genome_parse(MID, "mid", &p));
    uint64_t seed = 1;
    for (;; ++seed) {
        CHECK_EVO(evo_genome_copy(&p, &c));
        uint64_t rng = seed;
        if (evo_mutate(&c, m, &rng) == DN_OK && evo_genome_check(&c, NULL, NULL) == DN_OK) break;
        evo_genome_free(&c);
        if (seed > 100) { CHECK(0, "%s never applied", evo_mutation_name(m)); evo_genome_free(&p); return; }
    }
    dn_network *parent = build(&p, 11), *child = build(&c, 22), *fresh = build(&c, 22);
    CHECK(parent && child && fresh, "networks build");
    if (!parent || !child || !fresh) goto done;
    fill_known(parent);
    parent->seen = 123456;
    CHECK(arrays_equal(&child->layers[0], &fresh->layers[0]), "same seed, same init");
    evo_inherit_stats st;
    CHECK_EVO(evo_inherit(child, &c, parent, &p, &st));
    int copied = 0, init = 0;
    for (int i = 0; i < child->n; ++i) {
        dn_param cp[DN_MAX_PARAMS];
        if (dn_layer_params(&child->layers[i], cp) == 0) continue;
        int j = evo_genome_find(&p, c.genes[i].id);
        int same_kind = j >= 0 && parent->layers[j].type == child->layers[i].type;
        dn_param pp[DN_MAX_PARAMS];
        int np = same_kind ? dn_layer_params(&parent->layers[j], pp) : 0, nc = dn_layer_params(&child->layers[i], cp);
        int match = same_kind && np == nc;
        for (int k = 0; match && k < nc; ++k) match = pp[k].n == cp[k].n;
        if (match) {
            copied++;
            CHECK(arrays_equal(&child->layers[i], &parent->layers[j]), "%s: layer %d copied bit for bit from %d",
                  evo_mutation_name(m), i, j);
        } else {
            init++;
            CHECK(arrays_equal(&child->layers[i], &fresh->layers[i]), "%s: layer %d keeps its fresh init",
                  evo_mutation_name(m), i);
        }
    }
    CHECK(st.copied == copied && st.initialised == init, "%s: stats %d/%d, expected %d/%d", evo_mutation_name(m),
          st.copied, st.initialised, copied, init);
    if (want_init >= 0) CHECK(init == want_init, "%s: %d layers initialised, expected %d", evo_mutation_name(m), init, want_init);
    CHECK(copied > 0, "%s: something inherited", evo_mutation_name(m));
    CHECK(child->seen == 123456, "seen carried over");
done:
    dn_network_free(parent);
    dn_network_free(child);
    dn_network_free(fresh);
    evo_genome_free(&p);
    evo_genome_free(&c);
}

static void test_inherit(void)
{
    inherit_case(EVO_MUT_INSERT_CONVOLUTION, 1);   /* filters = input channels: only the new conv is fresh */
    inherit_case(EVO_MUT_ALTER_FILTER_SIZE, 1);    /* only the altered conv */
    inherit_case(EVO_MUT_ALTER_CHANNELS, -1);      /* the conv and its readers */
    inherit_case(EVO_MUT_IDENTITY, 0);             /* everything */
    inherit_case(EVO_MUT_INSERT_ONE_TO_ONE, -1);   /* an [activation] has no params */
    inherit_case(EVO_MUT_REMOVE_CONVOLUTION, -1);

    /* conv 1 widened to 16: the shortcut passes 16 channels on, so conv 1 and
     * conv 4 (its reader after the pool) are fresh; conv 0, conv 5 (reads
     * conv 4's 16 channels), conv 7 (reads the route's 28) and the connected
     * layer are copied */
    evo_genome p, c;
    CHECK_EVO(evo_genome_parse(MID, "mid", &p));
    CHECK_EVO(evo_genome_copy(&p, &c));
    CHECK_EVO(evo_gene_set(&c.genes[1], "filters", "16"));
    dn_network *parent = build(&p, 3), *child = build(&c, 4);
    evo_inherit_stats st;
    if (parent && child) {
        fill_known(parent);
        CHECK_EVO(evo_inherit(child, &c, parent, &p, &st));
        CHECK(st.copied == 4 && st.initialised == 2, "conv 1 widened: %d copied, %d initialised (want 4, 2)", st.copied,
              st.initialised);
        CHECK(child->layers[1].nweights != parent->layers[1].nweights && child->layers[4].nweights !=
              parent->layers[4].nweights, "conv 1 and 4 changed size");
        CHECK(arrays_equal(&child->layers[0], &parent->layers[0]) && arrays_equal(&child->layers[5], &parent->layers[5]) &&
              arrays_equal(&child->layers[7], &parent->layers[7]) && arrays_equal(&child->layers[9], &parent->layers[9]),
              "convs 0, 5, 7 and the connected head copied");
        CHECK(child->layers[0].rolling_variance && child->layers[0].rolling_variance[3] == parent->layers[0].rolling_variance[3] &&
              child->layers[0].rolling_mean[7] == parent->layers[0].rolling_mean[7], "batch-norm rolling statistics copied");
    }
    /* same id, same array names and sizes, other layer type: not inherited
     * (a 1x1 conv with 4 filters on 1x1x3 and a connected 3 -> 4 both hold
     * biases(4) and weights(12)) */
    {
        const char *pc = "[net]\nwidth=1\nheight=1\nchannels=3\n[convolutional]\nfilters=4\nactivation=linear\n"
                         "[connected]\noutput=2\nactivation=linear\n[softmax]\n";
        const char *cc = "[net]\nwidth=1\nheight=1\nchannels=3\n[connected]\noutput=4\nactivation=linear\n"
                         "[connected]\noutput=2\nactivation=linear\n[softmax]\n";
        evo_genome gp, gc;
        CHECK_EVO(evo_genome_parse(pc, "pc", &gp));
        CHECK_EVO(evo_genome_parse(cc, "cc", &gc));
        dn_network *np_ = build(&gp, 5), *nc_ = build(&gc, 6);
        if (np_ && nc_) {
            fill_known(np_);
            CHECK_EVO(evo_inherit(nc_, &gc, np_, &gp, &st));
            CHECK(st.copied == 1 && st.initialised == 1 && !arrays_equal(&nc_->layers[0], &np_->layers[0]),
                  "conv -> connected with equal sizes not copied (%d copied, %d initialised)", st.copied, st.initialised);
        }
        dn_network_free(np_);
        dn_network_free(nc_);
        evo_genome_free(&gp);
        evo_genome_free(&gc);
    }
    /* mismatched network/genome pairs are refused */
    evo_genome short_g;
    CHECK_EVO(evo_genome_parse(TRIVIAL, "t", &short_g));
    CHECK(evo_inherit(child, &short_g, parent, &p, &st) == DN_ERR_ARG && strstr(evo_last_error(), "layer count"),
          "layer count mismatch refused");
    CHECK(evo_inherit(NULL, &c, parent, &p, &st) == DN_ERR_ARG, "NULL child refused");
    evo_genome_free(&short_g);
    dn_network_free(parent);
    dn_network_free(child);
    evo_genome_free(&p);
    evo_genome_free(&c);
}

/* ------------------------------------------------------------ upstream */


static void test_upstream_loads(void)
{
    char harness[512];
    if (!upstream_harness(harness, sizeof harness)) return;
    char dir[] = "/tmp/test_evo_mutate_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char path[600];
    snprintf(path, sizeof path, "%s/g.cfg", dir);
    /* the fixtures and the genomes along a random walk from the trivial seed */
    const char *fixed[] = {MID, CHAIN, ODD, LOCKED};
    evo_genome g;
    int checked = 0;
    for (int k = 0; k < 4; ++k) {
        CHECK_EVO(evo_genome_parse(fixed[k], "fixture", &g));
        char *text = NULL;
        CHECK_EVO(evo_genome_emit(&g, 1, &text));
        CHECK(text && upstream_same(harness, path, text), "fixture %d: upstream builds the annotated cfg alike", k);
        checked++;
        free(text);
        evo_genome_free(&g);
    }
    CHECK_EVO(evo_genome_parse(TRIVIAL, "trivial", &g));
    evo_limits lim = {30, 2e5, 5e7, 0};
    uint64_t rng = 2024;
    for (int t = 1; t <= 80; ++t) {
        evo_genome c;
        evo_mutation m;
        if (evo_mutate_child(&g, &lim, &rng, 20, &c, &m) != DN_OK) break;
        evo_genome_free(&g);
        g = c;
        if (t % 16) continue;
        for (int annotate = 0; annotate <= 1; ++annotate) {
            char *text = NULL;
            CHECK_EVO(evo_genome_emit(&g, annotate, &text));
            CHECK(text && upstream_same(harness, path, text), "walk step %d (annotate %d): upstream builds it alike:\n%s",
                  t, annotate, text ? text : "");
            checked++;
            free(text);
        }
    }
    evo_genome_free(&g);
    CHECK(checked == 14, "%d cfgs checked against upstream", checked);
    rmdir(dir);
}

/* Children never gain a 1x1 convolution with stride > 1 (upstream computes it
 * wrongly), even from a parent made of 1x1 convolutions. */
static void test_upstream_safe_children(void)
{
    const char *cfg = "[net]\nbatch=2\nwidth=16\nheight=16\nchannels=3\nlearning_rate=0.1\n"
                      "[convolutional]\nfilters=4\nsize=1\nstride=1\nactivation=relu\n"
                      "[convolutional]\nfilters=4\nsize=1\nstride=1\nactivation=relu\n"
                      "[avgpool]\n[connected]\noutput=3\nactivation=linear\n[softmax]\n";
    evo_genome parent;
    CHECK_EVO(evo_genome_parse(cfg, "ones", &parent));
    evo_limits lim = {0};
    uint64_t rng = 99;
    int unsafe = 0;
    for (int t = 0; t < 300; ++t) {
        evo_genome child;
        evo_mutation m;
        if (evo_mutate_child(&parent, &lim, &rng, 100, &child, &m) != DN_OK) continue;
        unsafe += evo_count_upstream_unsafe(&child) > 0;
        CHECK(m != EVO_MUT_ALTER_STRIDE, "alter_stride on a parent of 1x1 convolutions got through");
        evo_genome_free(&child);
    }
    CHECK(unsafe == 0, "%d children have a 1x1 convolution with stride > 1", unsafe);
    /* the filter has work to do: alter_stride alone makes such a layer */
    evo_genome raw;
    CHECK_EVO(evo_genome_copy(&parent, &raw));
    CHECK_EVO(evo_mutate(&raw, EVO_MUT_ALTER_STRIDE, &rng));
    CHECK(evo_count_upstream_unsafe(&raw) == 1, "alter_stride did not make a strided 1x1 convolution");
    evo_genome_free(&raw);
    evo_genome_free(&parent);
}

int main(void)
{
    TRIVIAL = read_text("cfg/evo-trivial.cfg");
    CHECK(TRIVIAL != NULL, "cfg/evo-trivial.cfg (run from the repository root)");
    if (!TRIVIAL) TEST_MAIN_END();
    test_names();
    test_learning_rate_identity_reset();
    test_insert_convolution();
    test_remove_convolution();
    test_alter_stride();
    test_alter_channels();
    test_alter_filter_size();
    test_insert_one_to_one();
    test_skips();
    test_not_applicable();
    test_mutate_child();
    test_inherit();
    test_upstream_loads();
    test_upstream_safe_children();
    free(TRIVIAL);
    TEST_MAIN_END();
}
