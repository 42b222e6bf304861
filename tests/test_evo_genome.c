/*
 * test_evo_genome.c — genomes <-> cfg text: lexing (comments, CRLF,
 * whitespace, aliases, duplicate keys), "# evo" annotations, route/shortcut
 * references as gene ids, classifier-head detection, round trips (genome and
 * framework shapes), option access, copies, and the shape/limit check.
 */
#include "evo_internal.h"
#include "testlib.h"
#include "evo_testutil.h"

#define CHECK_EVO(expr)                                                                             \
    do {                                                                                            \
        dn_status te_s = (expr);                                                                    \
        CHECK(te_s == DN_OK, "%s -> %s: %s", #expr, dn_status_name(te_s), evo_last_error());        \
    } while (0)

/* ------------------------------------------------------------ fixtures */

static const char *CONV_BN =
    "[net]\nbatch=16\nwidth=12\nheight=12\nchannels=3\nlearning_rate=0.05\nmomentum=0.9\n"
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=16\nsize=3\nstride=2\npad=1\nactivation=relu\n"
    "[connected]\noutput=20\nactivation=leaky\n"
    "[dropout]\nprobability=0.3\n"
    "[connected]\noutput=5\nactivation=linear\n"
    "[softmax]\n";

/* The same cfg with CRLF line ends, spaces and tabs inside lines, comments,
 * aliases and a duplicate key (the first wins). */
static const char *CONV_BN_MESSY =
    "# a comment\r\n[net]\r\n batch = 16 \r\nwidth=12\r\n\theight=1 2\r\nchannels=3\r\n; another comment\r\n"
    "learning_rate=0.05\r\nmomentum=0.9\r\n\r\n"
    "[conv]\r\nbatch_normalize=1\r\nfilters=8\r\nfilters=99\r\nsize=3\r\nstride=1\r\npad=1\r\nactivation = leaky\r\n"
    "[max]\r\nsize=2\r\nstride=2\r\nnovalue=\r\nnoequals\r\n"
    "[convolutional]\r\nfilters=16\r\nsize=3\r\nstride=2\r\npad=1\r\nactivation=relu\r\n"
    "  [conn]  \r\noutput=20\r\nactivation=leaky\r\n"
    "[dropout]\r\nprobability=0.3\r\n"
    "[connected]\r\noutput=5\r\nactivation=linear\r\n"
    "[soft]";

/* route and shortcut, relative and absolute indexes; head avgpool+softmax. */
static const char *ROUTE_SC =
    "[net]\nbatch=4\nwidth=16\nheight=16\nchannels=3\n"
    "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=relu\n"           /* 0 */
    "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=relu\n"           /* 1 */
    "[shortcut]\nfrom=0\nactivation=linear\n"                                /* 2 */
    "[convolutional]\nfilters=4\nsize=1\nstride=2\nactivation=relu\n"        /* 3: 8x8x4 */
    "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=relu\n"           /* 4 */
    "[route]\nlayers=-1,3\n"                                                 /* 5: 8x8x10 */
    "[shortcut]\nfrom=-5\n"                                                  /* 6: from 1 (16x16) */
    "[convolutional]\nfilters=10\nsize=1\nactivation=linear\n"               /* 7 */
    "[avg]\n"
    "[softmax]\n";

/* Annotated by hand: ids out of order, one section without an id. */
static const char *ANNOTATED =
    "[net]\n# evo next_id=40\nwidth=8\nheight=8\nchannels=1\n"
    "# evo id=7\n[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n"
    "# evo id=3\n\n[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n"
    "# evo id=12\n[shortcut]\nfrom=-2\n"
    "[avgpool]\n"
    "# evo id=5\n[connected]\noutput=3\nactivation=linear\n"
    "# evo id=9\n[softmax]\n";

/* ------------------------------------------------------------ helpers */

/* Framework warnings, counted (the messy cfg has some on purpose; emitted
 * cfgs must have none). */
static int warnings;
static void count_warning(const char *msg, void *user)
{
    (void)user;
    ++warnings;
    if (getenv("EVO_TEST_VERBOSE")) fprintf(stderr, "warning: %s\n", msg);
}

/* Both cfg texts build in the framework to layers of the same types and
 * shapes; the second (emitted) one without any warning. */
static int same_shapes(const char *cfg_a, const char *cfg_b)
{
    dn_parse_options po = {.quiet = 1, .shapes_only = 1};
    dn_network *a = NULL, *b = NULL;
    int ok = dn_network_parse_string(cfg_a, "a", &po, &a) == DN_OK;
    warnings = 0;
    ok = ok && dn_network_parse_string(cfg_b, "b", &po, &b) == DN_OK;
    if (!ok) fprintf(stderr, "same_shapes: %s\n", dn_last_error());
    CHECK(warnings == 0, "the emitted cfg parses without warnings (%d)", warnings);
    ok = ok && a->n == b->n && a->w == b->w && a->h == b->h && a->c == b->c && a->batch == b->batch;
    for (int i = 0; ok && i < a->n; ++i) {
        const dn_layer *x = &a->layers[i], *y = &b->layers[i];
        ok = x->type == y->type && x->w == y->w && x->h == y->h && x->c == y->c && x->out_w == y->out_w &&
             x->out_h == y->out_h && x->out_c == y->out_c && x->nweights == y->nweights;
    }
    ok = ok && dn_network_param_count(a) == dn_network_param_count(b);
    dn_network_free(a);
    dn_network_free(b);
    return ok;
}

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

/* Parse must fail with `status` and a message containing `what`. */
static void expect_parse_error(const char *cfg, dn_status status, const char *what)
{
    evo_genome g;
    dn_status st = evo_genome_parse(cfg, "bad.cfg", &g);
    CHECK(st == status, "expected %s, got %s (%s) for:\n%s", dn_status_name(status), dn_status_name(st),
          evo_last_error(), cfg);
    CHECK(contains(evo_last_error(), what), "message '%s' lacks '%s'", evo_last_error(), what);
    CHECK(g.n == 0 && g.genes == NULL && g.net == NULL, "failed parse leaves an empty genome");
    evo_genome_free(&g);
}

/* ------------------------------------------------------------ tests */

static void test_trivial_seed(void)
{
    char *text = read_text("cfg/evo-trivial.cfg");
    CHECK(text != NULL, "cfg/evo-trivial.cfg must exist (run from the repository root)");
    if (!text) return;
    evo_genome g;
    CHECK_EVO(evo_genome_parse(text, "cfg/evo-trivial.cfg", &g));
    CHECK(g.n == 3 && g.body_end == 0 && g.next_id == 4, "n %d body_end %d next_id %d", g.n, g.body_end, g.next_id);
    if (g.n == 3) {
        CHECK(!strcmp(g.genes[0].type, "avgpool") && !strcmp(g.genes[1].type, "connected") &&
              !strcmp(g.genes[2].type, "softmax"), "types %s %s %s", g.genes[0].type, g.genes[1].type, g.genes[2].type);
        CHECK(g.genes[0].id == 1 && g.genes[1].id == 2 && g.genes[2].id == 3, "ids 1..3");
        CHECK(evo_gene_get(&g.genes[1], "output") && !strcmp(evo_gene_get(&g.genes[1], "output"), "10"), "10 classes");
    }
    CHECK(evo_net_get(&g, "width") && !strcmp(evo_net_get(&g, "width"), "28"), "28 wide");
    CHECK(evo_net_get(&g, "channels") && !strcmp(evo_net_get(&g, "channels"), "1"), "1 channel");
    CHECK(evo_net_get(&g, "learning_rate") && atof(evo_net_get(&g, "learning_rate")) == 0.1, "lr 0.1");
    evo_cost cost;
    CHECK_EVO(evo_genome_check(&g, NULL, &cost));
    CHECK(cost.layers == 3 && cost.params == 20, "trivial seed: %d layers, %zu params (1*10 weights + 10 biases)",
          cost.layers, cost.params);
    /* the seed trains in the framework as is */
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string(text, "seed", NULL, &net));
    CHECK(net && net->batch == 64 && net->outputs == 10, "seed batch/outputs");
    dn_network_free(net);
    evo_genome_free(&g);
    free(text);
}

static void round_trip(const char *cfg, const char *name, int plain_ids)
{
    evo_genome g, a, p;
    CHECK_EVO(evo_genome_parse(cfg, name, &g));
    char *ann = NULL, *plain = NULL;
    CHECK_EVO(evo_genome_emit(&g, 1, &ann));
    CHECK_EVO(evo_genome_emit(&g, 0, &plain));
    CHECK_EVO(evo_genome_parse(ann, name, &a));
    CHECK(genome_equal(&g, &a), "%s: parse(emit(g, annotated)) == g\n%s", name, ann);
    CHECK_EVO(evo_genome_parse(plain, name, &p));
    CHECK(!contains(plain, "# evo") && contains(ann, "# evo id="), "%s: annotations only when asked", name);
    /* a plain cfg loses the ids: equal when they were 1..n */
    CHECK(genome_equal(&g, &p) == plain_ids, "%s: plain round trip equal=%d expected %d", name, genome_equal(&g, &p),
          plain_ids);
    CHECK(same_shapes(cfg, ann), "%s: annotated emit builds the same layers", name);
    CHECK(same_shapes(cfg, plain), "%s: plain emit builds the same layers", name);
    /* emitting is stable */
    char *again = NULL;
    CHECK_EVO(evo_genome_emit(&a, 1, &again));
    CHECK(ann && again && strcmp(ann, again) == 0, "%s: emit(parse(emit(g))) == emit(g)", name);
    free(again);
    free(ann);
    free(plain);
    evo_genome_free(&g);
    evo_genome_free(&a);
    evo_genome_free(&p);
}

static void test_round_trips(void)
{
    round_trip(CONV_BN, "conv_bn", 1);
    round_trip(CONV_BN_MESSY, "messy", 1);
    round_trip(ROUTE_SC, "route_sc", 1);
    round_trip(ANNOTATED, "annotated", 0);
    const char *files[] = {"cfg/evo-trivial.cfg", "cfg/fashion-small.cfg", "cfg/cifar10-small.cfg"};
    for (int i = 0; i < 3; ++i) {
        char *t = read_text(files[i]);
        CHECK(t != NULL, "%s exists", files[i]);
        if (t) round_trip(t, files[i], 1);
        free(t);
    }
}

static void test_messy_equals_clean(void)
{
    evo_genome a, b;
    CHECK_EVO(evo_genome_parse(CONV_BN, "clean", &a));
    CHECK_EVO(evo_genome_parse(CONV_BN_MESSY, "messy", &b));
    CHECK(genome_equal(&a, &b), "CRLF, whitespace, comments, aliases and duplicate keys lex like the clean cfg");
    CHECK(b.n == 7 && !strcmp(b.genes[0].type, "convolutional") && !strcmp(b.genes[1].type, "maxpool") &&
          !strcmp(b.genes[3].type, "connected") && !strcmp(b.genes[6].type, "softmax"), "aliases are canonical");
    CHECK(b.n == 7 && evo_gene_get(&b.genes[0], "filters") && !strcmp(evo_gene_get(&b.genes[0], "filters"), "8"),
          "first duplicate wins");
    CHECK(b.n == 7 && b.genes[1].nkv == 2, "key= and key-without-= lines are dropped (%d options)", b.genes[1].nkv);
    char *plain = NULL;
    CHECK_EVO(evo_genome_emit(&b, 0, &plain));
    CHECK(!contains(plain, "99") && !contains(plain, "\r") && !contains(plain, "novalue"), "emit is clean:\n%s", plain);
    free(plain);
    evo_genome_free(&a);
    evo_genome_free(&b);
}

static void test_heads(void)
{
    evo_genome g;
    CHECK_EVO(evo_genome_parse(CONV_BN, "conv_bn", &g));
    CHECK(g.n == 7 && g.body_end == 3, "connected/dropout/connected/softmax head: body_end %d", g.body_end);
    evo_genome_free(&g);
    CHECK_EVO(evo_genome_parse(ROUTE_SC, "route_sc", &g));
    CHECK(g.n == 10 && g.body_end == 8, "avgpool/softmax head: n %d body_end %d", g.n, g.body_end);
    evo_genome_free(&g);
    char *t = read_text("cfg/fashion-small.cfg");
    CHECK_EVO(evo_genome_parse(t, "fashion", &g));
    CHECK(g.n == 9 && g.body_end == 6, "fashion-small: n %d body_end %d", g.n, g.body_end);
    evo_genome_free(&g);
    free(t);
    t = read_text("cfg/cifar10-small.cfg");
    CHECK_EVO(evo_genome_parse(t, "cifar", &g));
    CHECK(g.n == 11 && g.body_end == 9, "cifar10-small (1x1 conv stays in the body): n %d body_end %d", g.n, g.body_end);
    evo_genome_free(&g);
    free(t);
    /* a head type in the middle of the body does not end the body */
    CHECK_EVO(evo_genome_parse("[net]\nwidth=8\nheight=8\nchannels=1\n[avgpool]\n[convolutional]\nfilters=2\n"
                               "[cost]\n", "mid", &g));
    CHECK(g.n == 3 && g.body_end == 2, "only the suffix is the head (body_end %d)", g.body_end);
    evo_genome_free(&g);
    /* cost after softmax is part of the head */
    CHECK_EVO(evo_genome_parse("[net]\nwidth=8\nheight=8\nchannels=1\n[convolutional]\nfilters=2\n[avgpool]\n"
                               "[softmax]\n[cost]\n", "sc", &g));
    CHECK(g.n == 4 && g.body_end == 1, "softmax+cost head (body_end %d)", g.body_end);
    evo_genome_free(&g);

    expect_parse_error("[net]\nwidth=8\nheight=8\nchannels=1\n[convolutional]\nfilters=2\n", DN_ERR_PARSE,
                       "seed has no classifier head");
    expect_parse_error("[net]\nwidth=8\nheight=8\nchannels=1\n[avgpool]\n[connected]\noutput=2\n", DN_ERR_PARSE,
                       "seed has no classifier head");
}

static void test_annotations(void)
{
    evo_genome g;
    CHECK_EVO(evo_genome_parse(ANNOTATED, "ann", &g));
    int want[] = {7, 3, 12, 13, 5, 9};   /* the unannotated [avgpool] gets max id + 1 */
    CHECK(g.n == 6, "6 genes");
    for (int i = 0; i < 6 && i < g.n; ++i) CHECK(g.genes[i].id == want[i], "gene %d id %d want %d", i, g.genes[i].id, want[i]);
    CHECK(g.next_id == 40, "next_id from the annotation: %d", g.next_id);
    CHECK(g.n == 6 && g.genes[2].nrefs == 1 && g.genes[2].refs[0] == 7, "shortcut from=-2 is gene id 7");
    CHECK(evo_genome_find(&g, 12) == 2 && evo_genome_find(&g, 9) == 5 && evo_genome_find(&g, 4) == -1, "find");
    CHECK(g.body_end == 3, "head avgpool/connected/softmax (body_end %d)", g.body_end);
    evo_genome_free(&g);
    /* next_id below the largest id is raised */
    CHECK_EVO(evo_genome_parse("[net]\n# evo next_id=2\nwidth=4\nheight=4\nchannels=1\n# evo id=30\n[avgpool]\n"
                               "# evo id=31\n[softmax]\n", "low", &g));
    CHECK(g.next_id == 32, "next_id = max id + 1 (%d)", g.next_id);
    evo_genome_free(&g);
    /* an id line followed by an option is not the header's id */
    CHECK_EVO(evo_genome_parse("[net]\nwidth=4\nheight=4\n# evo id=30\nchannels=1\n[avgpool]\n[softmax]\n", "stray", &g));
    CHECK(g.n == 2 && g.genes[0].id == 1 && g.genes[1].id == 2, "stray id line ignored");
    evo_genome_free(&g);
    expect_parse_error("[net]\nwidth=4\nheight=4\nchannels=1\n# evo id=3\n[avgpool]\n# evo id=3\n[softmax]\n",
                       DN_ERR_PARSE, "bad.cfg:8: gene id 3 is already used by the section at line 6");
    expect_parse_error("[net]\nwidth=4\nheight=4\nchannels=1\n# evo id=zero\n[avgpool]\n[softmax]\n", DN_ERR_PARSE,
                       "bad.cfg:5");
    expect_parse_error("[net]\nwidth=4\nheight=4\nchannels=1\n# evo id=0\n[avgpool]\n[softmax]\n", DN_ERR_PARSE,
                       "id must be an integer >= 1");
}

static void test_references(void)
{
    evo_genome g;
    CHECK_EVO(evo_genome_parse(ROUTE_SC, "rs", &g));
    if (g.n != 10) { evo_genome_free(&g); CHECK(0, "route_sc parse"); return; }
    CHECK(g.genes[2].nrefs == 1 && g.genes[2].refs[0] == 1, "absolute from=0 -> id 1");
    CHECK(g.genes[5].nrefs == 2 && g.genes[5].refs[0] == 5 && g.genes[5].refs[1] == 4, "layers=-1,3 -> ids 5,4");
    CHECK(g.genes[6].nrefs == 1 && g.genes[6].refs[0] == 2, "from=-5 -> id 2");
    CHECK(evo_gene_get(&g.genes[5], "layers") == NULL && evo_gene_get(&g.genes[6], "from") == NULL,
          "layers=/from= are refs, not options");
    CHECK(evo_gene_get(&g.genes[6], "activation") == NULL && g.genes[6].nkv == 0, "no activation key on gene 6");
    char *plain = NULL;
    CHECK_EVO(evo_genome_emit(&g, 0, &plain));
    CHECK(contains(plain, "[shortcut]\nactivation=linear\nfrom=-2\n"), "absolute from=0 emitted relative:\n%s", plain);
    CHECK(contains(plain, "[route]\nlayers=-1,-2\n"), "route emitted relative");
    CHECK(contains(plain, "[shortcut]\nfrom=-5\n"), "shortcut from=-5");
    free(plain);
    /* refs follow ids when genes move: swap the two convs the route reads */
    evo_genome c;
    CHECK_EVO(evo_genome_copy(&g, &c));
    evo_gene tmp = c.genes[3];
    c.genes[3] = c.genes[4];
    c.genes[4] = tmp;         /* ids 5, 4 now at indexes 3, 4 */
    CHECK_EVO(evo_genome_emit(&c, 0, &plain));
    CHECK(contains(plain, "[route]\nlayers=-2,-1\n"), "route follows its genes:\n%s", plain);
    free(plain);
    c.genes[5].refs[0] = 9;   /* a later gene */
    plain = NULL;
    CHECK(evo_genome_emit(&c, 0, &plain) == DN_ERR_ARG && plain == NULL, "a forward reference is refused");
    CHECK(contains(evo_last_error(), "refers to gene id 9"), "message: %s", evo_last_error());
    evo_genome_free(&c);
    evo_genome_free(&g);

    const char *head = "[net]\nwidth=8\nheight=8\nchannels=1\n[convolutional]\nfilters=2\n[convolutional]\nfilters=2\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%s[route]\nlayers=-3\n[avgpool]\n[softmax]\n", head);
    expect_parse_error(buf, DN_ERR_PARSE, "bad.cfg:10: layers=-3: index -3 points to layer -1");
    snprintf(buf, sizeof buf, "%s[route]\nlayers=2\n[avgpool]\n[softmax]\n", head);
    expect_parse_error(buf, DN_ERR_PARSE, "bad.cfg:10: layers=2: index 2 points to layer 2, but only layers 0..1");
    snprintf(buf, sizeof buf, "%s[shortcut]\nfrom=0,1\n[avgpool]\n[softmax]\n", head);
    expect_parse_error(buf, DN_ERR_PARSE, "exactly one");
    snprintf(buf, sizeof buf, "%s[route]\nlayers=-1,x\n[avgpool]\n[softmax]\n", head);
    expect_parse_error(buf, DN_ERR_PARSE, "'x' is not a layer index");
    snprintf(buf, sizeof buf, "%s[route]\n[avgpool]\n[softmax]\n", head);
    expect_parse_error(buf, DN_ERR_PARSE, "bad.cfg:9: [route] needs layers=");
    expect_parse_error("[net]\nwidth=8\nheight=8\nchannels=1\n[shortcut]\nfrom=-1\n[softmax]\n", DN_ERR_PARSE,
                       "only layers 0..-1");
}

static void test_syntax_errors(void)
{
    expect_parse_error("width=8\n[net]\n[softmax]\n", DN_ERR_PARSE, "bad.cfg:1: option 'width=8' appears before");
    expect_parse_error("[softmax]\n", DN_ERR_PARSE, "the first section must be [net]");
    expect_parse_error("[net]\nwidth=1\n[avgpool]\n[network]\n[softmax]\n", DN_ERR_PARSE, "bad.cfg:4: [network] may only");
    expect_parse_error("[net]\nwidth=1\n[avgpool\n[softmax]\n", DN_ERR_PARSE, "bad.cfg:3: malformed section header");
    expect_parse_error("[net]\nwidth=1\n", DN_ERR_PARSE, "no layers after [net]");
    expect_parse_error("", DN_ERR_PARSE, "no [net]");
    evo_genome g;
    CHECK(evo_genome_parse(NULL, "x", &g) == DN_ERR_ARG, "NULL text");
    CHECK(evo_genome_parse("[net]", "x", NULL) == DN_ERR_ARG, "NULL out");
}

static void test_access_and_copy(void)
{
    evo_genome g, c;
    CHECK_EVO(evo_genome_parse(CONV_BN, "conv_bn", &g));
    CHECK_EVO(evo_genome_copy(&g, &c));
    CHECK(genome_equal(&g, &c), "copy is equal");
    CHECK(c.genes != g.genes && c.genes[0].kv != g.genes[0].kv && c.net != g.net, "copy is deep");
    CHECK_EVO(evo_gene_set(&c.genes[0], "filters", "12"));
    CHECK_EVO(evo_gene_set(&c.genes[0], "groups", "2"));
    CHECK(!strcmp(evo_gene_get(&c.genes[0], "filters"), "12") && !strcmp(evo_gene_get(&g.genes[0], "filters"), "8"),
          "set replaces in the copy only");
    CHECK(c.genes[0].nkv == g.genes[0].nkv + 1 && !strcmp(c.genes[0].kv[c.genes[0].nkv - 1].key, "groups"),
          "set appends a new key at the end");
    CHECK(!strcmp(c.genes[0].kv[1].key, "filters"), "replaced key keeps its place");
    CHECK_EVO(evo_net_set(&c, "learning_rate", "0.2"));
    CHECK(!strcmp(evo_net_get(&c, "learning_rate"), "0.2") && !strcmp(evo_net_get(&g, "learning_rate"), "0.05"),
          "net set");
    CHECK(evo_net_get(&c, "nothing") == NULL && evo_gene_get(&c.genes[0], "nothing") == NULL, "absent key");
    CHECK(evo_gene_set(&c.genes[0], "filters", "1 2") == DN_ERR_ARG, "value with a space refused");
    CHECK(evo_gene_set(&c.genes[0], "a=b", "1") == DN_ERR_ARG, "key with '=' refused");
    CHECK(evo_gene_set(&c.genes[0], "#x", "1") == DN_ERR_ARG, "comment key refused");
    CHECK(evo_net_set(&c, "x", "") == DN_ERR_ARG, "empty value refused");
    CHECK(!strcmp(evo_gene_get(&c.genes[0], "filters"), "12"), "refused set leaves the value");
    evo_genome_free(&c);
    evo_genome_free(&c);   /* double free of a freed genome is harmless */

    evo_genome r;
    CHECK_EVO(evo_genome_parse(ROUTE_SC, "rs", &r));
    CHECK(evo_gene_set(&r.genes[5], "layers", "-1") == DN_ERR_ARG, "route layers= is a ref");
    CHECK(evo_gene_set(&r.genes[6], "from", "-1") == DN_ERR_ARG, "shortcut from= is a ref");
    CHECK_EVO(evo_genome_copy(&r, &c));
    CHECK(genome_equal(&r, &c) && c.genes[5].refs != r.genes[5].refs, "refs copied deeply");
    evo_genome_free(&c);
    evo_genome_free(&r);
    evo_genome_free(&g);
}

static void test_check_and_limits(void)
{
    evo_genome g;
    CHECK_EVO(evo_genome_parse(CONV_BN, "conv_bn", &g));
    evo_cost cost;
    CHECK_EVO(evo_genome_check(&g, NULL, &cost));
    dn_network *net = NULL;
    dn_parse_options po = {.quiet = 1};
    CHECK_OK(dn_network_parse_string(CONV_BN, "full", &po, &net));
    if (net) {
        CHECK(cost.layers == net->n && cost.params == dn_network_param_count(net) &&
              cost.flops == dn_network_flops(net) && cost.memory == dn_network_memory_bytes(net),
              "cost = the framework's numbers at the [net] batch: %d %zu %g %zu", cost.layers, cost.params, cost.flops,
              cost.memory);
        /* conv 3*8*9+8 + bn scales 8 (rolling statistics are not learned), conv 8*16*9+16, fc 16*3*3*20+20, fc 20*5+5 */
        size_t want = (216 + 8 + 8) + (1152 + 16) + (2880 + 20) + (100 + 5);
        CHECK(cost.params == want, "params %zu want %zu", cost.params, want);
    }
    dn_network_free(net);

    evo_limits none = {0, 0, 0, 0};
    CHECK_EVO(evo_genome_check(&g, &none, NULL));
    evo_limits ok = {7, (double)cost.params, cost.flops, (double)cost.memory};
    CHECK_EVO(evo_genome_check(&g, &ok, NULL));
    struct { evo_limits lim; const char *word; } over[] = {
        {{6, 0, 0, 0}, "max_layers 6"},
        {{0, (double)cost.params - 1, 0, 0}, "max_params"},
        {{0, 0, cost.flops - 1, 0}, "max_flops"},
        {{0, 0, 0, (double)cost.memory - 1}, "max_memory"},
    };
    for (int i = 0; i < 4; ++i) {
        evo_cost c2;
        dn_status st = evo_genome_check(&g, &over[i].lim, &c2);
        CHECK(st != DN_OK && contains(evo_last_error(), over[i].word), "limit %d rejects: %s (%s)", i,
              dn_status_name(st), evo_last_error());
        CHECK(c2.params == cost.params, "cost filled even when over a limit");
    }
    /* memory follows the [net] batch */
    evo_genome b1;
    CHECK_EVO(evo_genome_copy(&g, &b1));
    CHECK_EVO(evo_net_set(&b1, "batch", "1"));
    evo_cost c1;
    CHECK_EVO(evo_genome_check(&b1, NULL, &c1));
    CHECK(c1.memory < cost.memory && c1.params == cost.params, "batch 1 needs less memory (%zu < %zu)", c1.memory,
          cost.memory);
    /* a genome that does not build */
    CHECK_EVO(evo_gene_set(&b1.genes[2], "size", "9"));
    CHECK_EVO(evo_gene_set(&b1.genes[2], "pad", "0"));
    dn_status st = evo_genome_check(&b1, NULL, NULL);
    CHECK(st == DN_ERR_SHAPE && contains(evo_last_error(), "does not build") && contains(evo_last_error(), "kernel size 9"),
          "kernel larger than its input: %s %s", dn_status_name(st), evo_last_error());
    evo_genome_free(&b1);
    evo_genome_free(&g);
}

/* The option `key` of gene i as an int (-1: absent). */
static int gene_int(const evo_genome *g, int i, const char *key)
{
    const char *v = evo_gene_get(&g->genes[i], key);
    return v ? atoi(v) : -1;
}

/* evo_genome_widen: hidden convs and connecteds k times as wide (rounded),
 * the class layer as it was, depthwise groups with their filters, ids and
 * references kept, the result builds; k outside [1, 4] is refused. */
static void test_widen(void)
{
    evo_genome g, w;
    CHECK_EVO(evo_genome_parse(CONV_BN, "conv_bn", &g));
    CHECK_EVO(evo_genome_widen(&g, 2, &w));
    CHECK(gene_int(&w, 0, "filters") == 16 && gene_int(&w, 2, "filters") == 32 && gene_int(&w, 3, "output") == 40 &&
              gene_int(&w, 5, "output") == 5,
          "x2: filters 16 32, hidden connected 40, classes 5 (got %d %d %d %d)", gene_int(&w, 0, "filters"),
          gene_int(&w, 2, "filters"), gene_int(&w, 3, "output"), gene_int(&w, 5, "output"));
    CHECK(w.n == g.n && w.genes[2].id == g.genes[2].id && w.body_end == g.body_end, "same genes, ids and head");
    CHECK(gene_int(&g, 0, "filters") == 8, "the source genome is unchanged");
    evo_cost narrow, wide;
    CHECK_EVO(evo_genome_check(&g, NULL, &narrow));
    CHECK_EVO(evo_genome_check(&w, NULL, &wide));
    /* conv 3*16*9+16 + 16 scales, conv 16*32*9+32, fc 32*3*3*40+40, fc 40*5+5 */
    size_t want = (432 + 16 + 16) + (4608 + 32) + (11520 + 40) + (200 + 5);
    CHECK(wide.params == want && narrow.params < wide.params, "x2 params %zu want %zu", wide.params, want);
    evo_genome_free(&w);

    CHECK_EVO(evo_genome_widen(&g, 1.5, &w));
    CHECK(gene_int(&w, 0, "filters") == 12 && gene_int(&w, 2, "filters") == 24 && gene_int(&w, 3, "output") == 30,
          "x1.5 rounds: 12 24 30");
    evo_genome_free(&w);
    char *a = NULL, *b = NULL;
    CHECK_EVO(evo_genome_widen(&g, 1, &w));
    CHECK_EVO(evo_genome_emit(&g, 1, &a));
    CHECK_EVO(evo_genome_emit(&w, 1, &b));
    CHECK(a && b && !strcmp(a, b), "x1 is the same genome");
    free(a);
    free(b);
    evo_genome_free(&w);
    for (int i = 0; i < 3; ++i) {
        double bad[] = {0.5, 4.5, NAN};
        dn_status st = evo_genome_widen(&g, bad[i], &w);
        CHECK(st == DN_ERR_ARG && contains(evo_last_error(), "[1, 4]"), "width %g refused: %s", bad[i], evo_last_error());
    }
    evo_genome_free(&g);

    /* the class scores come from a conv (global average pool head): it keeps 10 filters; routes and shortcuts follow */
    CHECK_EVO(evo_genome_parse(ROUTE_SC, "route_sc", &g));
    CHECK_EVO(evo_genome_widen(&g, 2, &w));
    CHECK(gene_int(&w, 0, "filters") == 16 && gene_int(&w, 4, "filters") == 12 && gene_int(&w, 7, "filters") == 10,
          "x2 with a conv classifier: 16, 12, classes 10");
    CHECK(w.genes[5].nrefs == g.genes[5].nrefs && w.genes[6].refs[0] == g.genes[6].refs[0], "references kept");
    dn_network *net = NULL;
    char *text = NULL;
    CHECK_EVO(evo_genome_emit(&w, 0, &text));
    dn_parse_options po = {.quiet = 1, .shapes_only = 1};
    CHECK_OK(dn_network_parse_string(text, "widened", &po, &net));
    if (net) CHECK(net->outputs == 10 && net->layers[5].out_c == 20, "builds: 10 outputs, the route 8 + 12 = 20 channels");
    dn_network_free(net);
    free(text);
    evo_genome_free(&w);
    evo_genome_free(&g);

    /* a depthwise conv keeps groups = filters */
    static const char *DW = "[net]\nbatch=2\nwidth=8\nheight=8\nchannels=1\n"
                            "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=relu\n"
                            "[convolutional]\nfilters=6\ngroups=6\nsize=3\npad=1\nactivation=relu\n"
                            "[convolutional]\nfilters=4\ngroups=2\nsize=1\nactivation=relu\n"
                            "[avgpool]\n[connected]\noutput=3\n[softmax]\n";
    CHECK_EVO(evo_genome_parse(DW, "dw", &g));
    CHECK_EVO(evo_genome_widen(&g, 2, &w));
    CHECK(gene_int(&w, 1, "filters") == 12 && gene_int(&w, 1, "groups") == 12 && gene_int(&w, 2, "filters") == 8 &&
              gene_int(&w, 2, "groups") == 2,
          "depthwise 12/12, grouped 8/2");
    CHECK_EVO(evo_genome_check(&w, NULL, NULL));
    evo_genome_free(&w);
    evo_genome_free(&g);
}

int main(void)
{
    dn_set_warning_sink(count_warning, NULL);
    test_trivial_seed();
    test_round_trips();
    test_messy_equals_clean();
    test_heads();
    test_annotations();
    test_references();
    test_syntax_errors();
    test_access_and_copy();
    test_check_and_limits();
    test_widen();
    TEST_MAIN_END();
}
