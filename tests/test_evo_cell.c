/*
 * test_evo_cell.c — the NASNet-style cell search space (evo/cell.c):
 * expansions of cfg/evo-nasnet.cfg for many random cell architectures build
 * in our framework with the expected shapes and, without avg3x3, in Debian's
 * upstream darknet with the same shapes; template errors name their line;
 * each mutation changes exactly one thing and keeps a valid DAG; sampling
 * reaches every op and input; the text form round-trips and rejects garbage;
 * the "# evo cells" genome line round-trips; rescaling; determinism.
 */
#include "evo_internal.h"
#include "testlib.h"
#include "evo_testutil.h"

#include <sys/wait.h>
#include <unistd.h>

#define CHECK_EVO(expr)                                                                             \
    do {                                                                                            \
        dn_status te_s = (expr);                                                                    \
        CHECK(te_s == DN_OK, "%s -> %s: %s", #expr, dn_status_name(te_s), evo_last_error());        \
    } while (0)

#define TEMPLATE "cfg/evo-nasnet.cfg"
#define NCELLS 8
/* cfg/evo-nasnet.cfg: stem, N N R N N R N N, head */
static const int cell_reduction[NCELLS] = {0, 0, 1, 0, 0, 1, 0, 0};
static const int cell_filters[NCELLS] = {16, 16, 32, 32, 32, 64, 64, 64};
static const int cell_size[NCELLS] = {28, 28, 14, 14, 14, 7, 7, 7};

static evo_genome g_tmpl;

/* ------------------------------------------------------------ helpers */

static const evo_block *blocks_of(const evo_cells *c, int r) { return r ? c->reduction : c->normal; }

/* Block outputs of cell r that no later block reads. */
static int unused_blocks(const evo_cells *c, int r)
{
    int used[2 + EVO_MAX_BLOCKS] = {0}, n = 0;
    for (int j = 0; j < c->blocks; ++j) used[blocks_of(c, r)[j].in[0]] = used[blocks_of(c, r)[j].in[1]] = 1;
    for (int j = 0; j < c->blocks; ++j) n += !used[2 + j];
    return n;
}

static dn_network *shapes_of(const evo_genome *g)
{
    char *text = NULL;
    if (evo_genome_emit(g, 0, &text) != DN_OK) return NULL;
    dn_parse_options po = {.batch = 1, .quiet = 1, .shapes_only = 1};
    dn_network *net = NULL;
    dn_status st = dn_network_parse_string(text, "<expanded>", &po, &net);
    if (st != DN_OK) fprintf(stderr, "expanded cfg does not build: %s\n", dn_last_error());
    free(text);
    return net;
}

/* Index of the last gene of cell k (its output [route]): ids of cell k lie in
 * [next_id + k*STRIDE, next_id + (k+1)*STRIDE). */
static int cell_output(const evo_genome *g, int tmpl_next_id, int k)
{
    int lo = tmpl_next_id + k * EVO_CELL_ID_STRIDE, at = -1;
    for (int i = 0; i < g->n; ++i)
        if (g->genes[i].id >= lo && g->genes[i].id < lo + EVO_CELL_ID_STRIDE) at = i;
    return at;
}

/* Everything an expansion of the template must satisfy; returns the number of
 * failed checks (so callers can stop early). */
static int check_expansion(const evo_cells *c, const evo_genome *g, const dn_network *net)
{
    int before = tl_failed;
    int cells_left = 0, dup_ids = 0, big_ids = 0;
    for (int i = 0; i < g->n; ++i) cells_left += strcmp(g->genes[i].type, "cell") == 0;
    CHECK(cells_left == 0, "%d [cell]s left", cells_left);
    char *text = NULL;
    CHECK_EVO(evo_cells_format(c, &text));
    CHECK(g->cells && text && strcmp(g->cells, text) == 0, "cells text carried: %s", g->cells ? g->cells : "(null)");
    free(text);
    CHECK(net->n == g->n, "one layer per gene: %d vs %d", net->n, g->n);
    const dn_layer *last = &net->layers[net->n - 1];
    CHECK(last->outputs == 10, "10 classes at the end, got %d", last->outputs);
    int avg = g->body_end;
    CHECK(avg > 0 && !strcmp(g->genes[avg].type, "avgpool"), "head starts at the [avgpool] (%d)", avg);
    CHECK(net->layers[avg].w == 7 && net->layers[avg].h == 7, "7x7 after two reductions, got %dx%d",
          net->layers[avg].w, net->layers[avg].h);
    for (int k = 0; k < NCELLS; ++k) {
        int o = cell_output(g, g_tmpl.next_id, k);
        CHECK(o >= 0 && !strcmp(g->genes[o].type, "route"), "cell %d ends with a [route]", k);
        if (o < 0) continue;
        const dn_layer *l = &net->layers[o];
        int want_c = cell_filters[k] * unused_blocks(c, cell_reduction[k]);
        CHECK(l->out_w == cell_size[k] && l->out_h == cell_size[k] && l->out_c == want_c,
              "cell %d output %dx%dx%d, expected %dx%dx%d", k, l->out_w, l->out_h, l->out_c, cell_size[k],
              cell_size[k], want_c);
    }
    int shortcuts = 0, unequal = 0;
    for (int i = 0; i < net->n; ++i) {
        const dn_layer *l = &net->layers[i];
        if (l->type != DN_SHORTCUT) continue;
        const dn_layer *f = &net->layers[l->from];
        shortcuts++;
        if (f->out_w != l->w || f->out_h != l->h || f->out_c != l->c) {
            unequal++;
            fprintf(stderr, "shortcut %d adds %dx%dx%d to %dx%dx%d\n", i, f->out_w, f->out_h, f->out_c, l->w, l->h, l->c);
        }
    }
    CHECK(shortcuts == NCELLS * c->blocks && unequal == 0, "%d shortcuts (one per block), %d of unequal shapes",
          shortcuts, unequal);
    CHECK(evo_count_upstream_unsafe(g) == 0, "no strided 1x1 convolution");
    for (int i = 0; i < g->n; ++i) {
        big_ids += g->genes[i].id >= g->next_id;
        for (int j = i + 1; j < g->n; ++j) dup_ids += g->genes[i].id == g->genes[j].id;
    }
    CHECK(dup_ids == 0 && big_ids == 0, "%d duplicate ids, %d ids >= next_id", dup_ids, big_ids);
    return tl_failed - before;
}

/* ------------------------------------------------------------ upstream */

static char g_harness[1024], g_dir[64];

static int find_harness(void)
{
    const char *build = getenv("BUILD");
    char cwd[512];
    if (!getcwd(cwd, sizeof cwd)) return 0;
    snprintf(g_harness, sizeof g_harness, "%s/%s/tests/upstream_harness", cwd, build && *build ? build : "build");
    if (access(g_harness, X_OK) == 0) return 1;
    snprintf(g_harness, sizeof g_harness, "%s/build/tests/upstream_harness", cwd);
    return access(g_harness, X_OK) == 0;
}

/* One cfg's layer table from upstream: (w h c out_w out_h out_c inputs outputs) rows. */
static int read_upstream_rows(const char *path, int (*rows)[8], int max)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, i;
    char type[64];
    while (n < max && fscanf(f, " layer %d %63s %d %d %d %d %d %d %d %d", &i, type, &rows[n][0], &rows[n][1],
                             &rows[n][2], &rows[n][3], &rows[n][4], &rows[n][5], &rows[n][6], &rows[n][7]) == 10)
        n++;
    fclose(f);
    return n;
}

#define UPSTREAM_CASES 10

/* One avg-free architecture (batch 1, non-trivial batch-norm statistics):
 * every layer's inference output in upstream matches ours (to the documented
 * batch-norm epsilon difference). */
static void test_upstream_forward(void)
{
    evo_genome t, g;
    CHECK_EVO(evo_genome_copy(&g_tmpl, &t));
    CHECK_EVO(evo_net_set(&t, "batch", "1"));
    uint64_t rng = 3;
    evo_cells c;
    evo_cells_random(&c, EVO_DEFAULT_BLOCKS, EVO_OPS_UPSTREAM, &rng);
    CHECK_EVO(evo_cells_expand(&t, &c, &g));
    char *text = NULL, cfg[600], wts[600], in[600], out[600];
    CHECK_EVO(evo_genome_emit(&g, 0, &text));
    snprintf(cfg, sizeof cfg, "%s/f.cfg", g_dir);
    snprintf(wts, sizeof wts, "%s/f.weights", g_dir);
    snprintf(in, sizeof in, "%s/f.in", g_dir);
    snprintf(out, sizeof out, "%s/f.out", g_dir);
    dn_network *net = NULL;
    dn_parse_options po = {.batch = 1, .seed = 7, .quiet = 1};
    CHECK_EVO(dn_network_parse_string(text, "f.cfg", &po, &net));
    FILE *f = fopen(cfg, "w");
    if (f) { fputs(text, f); fclose(f); }
    free(text);
    evo_genome_free(&t);
    evo_genome_free(&g);
    if (!net || !f) return;
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        for (int k = 0; l->batch_normalize && k < l->out_c; ++k) {
            l->rolling_mean[k] = 0.1f * (float)(k % 3);
            l->rolling_variance[k] = 0.5f + 0.1f * (float)(k % 5);
            l->scales[k] = 0.8f + 0.05f * (float)(k % 4);
        }
    }
    CHECK_EVO(dn_weights_save(net, wts));
    float x[28 * 28];
    for (int i = 0; i < 28 * 28; ++i) x[i] = (float)((i * 37) % 101) / 101.f;
    f = fopen(in, "wb");
    CHECK(f && fwrite(x, sizeof x, 1, f) == 1, "write %s", in);
    if (f) fclose(f);
    const float *ours = NULL;
    dn_network_predict(net, x, &ours);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' forward '%s' '%s' '%s' '%s' 2>>'%s/log.txt'", g_harness, cfg, wts, in, out, g_dir);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "upstream forward ran");
    f = fopen(out, "rb");
    float worst = 0;
    int worst_at = -1, short_read = !f;
    for (int i = 0; f && i < net->n; ++i) {
        const dn_layer *l = &net->layers[i];
        float *y = malloc(sizeof(float) * (size_t)l->outputs), m = 1e-3f, d = 0;
        if (!y || fread(y, sizeof *y, (size_t)l->outputs, f) != (size_t)l->outputs) { short_read = 1; free(y); break; }
        for (int k = 0; k < l->outputs; ++k) m = fmaxf(m, fabsf(l->output[k]));
        for (int k = 0; k < l->outputs; ++k) d = fmaxf(d, fabsf(l->output[k] - y[k]) / m);
        if (d > worst) { worst = d; worst_at = i; }
        free(y);
    }
    if (f) fclose(f);
    CHECK(!short_read, "upstream wrote every layer's output");
    CHECK(worst < 2e-3f, "every layer's output matches upstream: worst relative difference %g at layer %d", worst,
          worst_at);
    printf("upstream forward of an expanded cfg (%d layers): worst relative difference %.2g\n", net->n, worst);
    dn_network_free(net);
    unlink(cfg);
    unlink(wts);
    unlink(in);
    unlink(out);
}

/* Avg-free architectures: our shapes vs upstream's, layer by layer. */
static void test_upstream(void)
{
    if (!find_harness()) {
        printf("SKIP upstream shapes: %s is missing (it needs Debian's darknet package)\n", g_harness);
        return;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/evo_cell_XXXXXX");
    if (!mkdtemp(g_dir)) { CHECK(0, "mkdtemp"); return; }
    uint64_t rng = 77;
    dn_network *nets[UPSTREAM_CASES] = {0};
    char cmd[16384];
    int len = snprintf(cmd, sizeof cmd, "cd '%s' &&", g_dir);
    for (int k = 0; k < UPSTREAM_CASES; ++k) {
        evo_cells c;
        evo_cells_random(&c, k % 3 == 2 ? 2 + k % 5 : EVO_DEFAULT_BLOCKS, EVO_OPS_UPSTREAM, &rng);
        CHECK(evo_cells_upstream_note(&c) == NULL, "avg-free cells load upstream");
        evo_genome g;
        CHECK_EVO(evo_cells_expand(&g_tmpl, &c, &g));
        char *text = NULL, path[600];
        CHECK_EVO(evo_genome_emit(&g, 0, &text));
        nets[k] = shapes_of(&g);
        snprintf(path, sizeof path, "%s/c%d.cfg", g_dir, k);
        FILE *f = fopen(path, "w");
        CHECK(f && text && fputs(text, f) >= 0, "write %s", path);
        if (f) fclose(f);
        free(text);
        evo_genome_free(&g);
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s' shapes c%d.cfg >c%d.txt 2>>log.txt &&", g_harness, k, k);
    }
    snprintf(cmd + len, sizeof cmd - (size_t)len, " true");
    test_upstream_forward();
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "upstream parsed every expanded cfg (see %s/log.txt)", g_dir);
    static int rows[2048][8];
    for (int k = 0; k < UPSTREAM_CASES; ++k) {
        char path[600];
        snprintf(path, sizeof path, "%s/c%d.txt", g_dir, k);
        int n = read_upstream_rows(path, rows, 2048);
        const dn_network *net = nets[k];
        CHECK(net && n == net->n, "case %d: upstream has %d layers, ours %d", k, n, net ? net->n : -1);
        for (int i = 0; net && i < n && i < net->n; ++i) {
            const dn_layer *l = &net->layers[i];
            int ours[8] = {l->w, l->h, l->c, l->out_w, l->out_h, l->out_c, l->inputs, l->outputs};
            /* upstream leaves a route's input shape and the output shape of
               connected/softmax at 0: compare what it sets */
            int flat = l->type == DN_CONNECTED || l->type == DN_SOFTMAX;
            int from = flat ? 6 : l->type == DN_ROUTE ? 3 : 0;
            int same = !memcmp(ours + from, rows[i] + from, sizeof(int) * (size_t)(8 - from));
            CHECK(same, "case %d layer %d (%s): ours %d %d %d -> %d %d %d (%d -> %d), upstream %d %d %d -> %d %d %d "
                  "(%d -> %d)", k, i, dn_layer_type_name(l->type), ours[0], ours[1], ours[2], ours[3], ours[4], ours[5],
                  ours[6], ours[7], rows[i][0], rows[i][1], rows[i][2], rows[i][3], rows[i][4], rows[i][5], rows[i][6],
                  rows[i][7]);
            if (!same) break;
        }
        dn_network_free(nets[k]);
        unlink(path);
        snprintf(path, sizeof path, "%s/c%d.cfg", g_dir, k);
        unlink(path);
    }
    if (tl_failed == 0) {
        char log[600];
        snprintf(log, sizeof log, "%s/log.txt", g_dir);
        unlink(log);
        rmdir(g_dir);
    } else {
        printf("kept %s for inspection\n", g_dir);
    }
}

/* ------------------------------------------------------------ expansion */

static void test_template(void)
{
    CHECK(evo_genome_has_cells(&g_tmpl), "the template has cells");
    CHECK(evo_template_blocks(&g_tmpl) == EVO_DEFAULT_BLOCKS, "default B = 5");
    CHECK_EVO(evo_template_check(&g_tmpl));
    evo_genome plain;
    CHECK_EVO(evo_genome_parse("[net]\nwidth=4\nheight=4\nchannels=1\n[avgpool]\n[softmax]\n", "p", &plain));
    CHECK(!evo_genome_has_cells(&plain), "a plain cfg has no cells");
    CHECK(evo_template_check(&plain) == DN_ERR_PARSE && strstr(evo_last_error(), "no [cell]"),
          "no [cell]: %s", evo_last_error());
    evo_genome_free(&plain);
}

/* Many random architectures (every op mask, 1..8 blocks) expand and build. */
static void test_random_expansions(void)
{
    uint64_t rng = 12345;
    const unsigned masks[] = {EVO_OPS_ALL, EVO_OPS_UPSTREAM, 1u << EVO_OP_IDENTITY,
                              (1u << EVO_OP_IDENTITY) | (1u << EVO_OP_CONV1), (1u << EVO_OP_AVG3) | (1u << EVO_OP_MAX3)};
    int built = 0;
    for (int k = 0; k < 120; ++k) {
        evo_cells c;
        int blocks = k < 60 ? EVO_DEFAULT_BLOCKS : 1 + k % 8;
        evo_cells_random(&c, blocks, masks[k % 5], &rng);
        evo_genome g;
        dn_status st = evo_cells_expand(&g_tmpl, &c, &g);
        CHECK(st == DN_OK, "case %d expands: %s", k, evo_last_error());
        if (st != DN_OK) continue;
        dn_network *net = shapes_of(&g);
        CHECK(net != NULL, "case %d builds", k);
        evo_cost cost;
        CHECK_EVO(evo_genome_check(&g, NULL, &cost));
        if (net && check_expansion(&c, &g, net)) {
            char *t = NULL;
            evo_cells_format(&c, &t);
            fprintf(stderr, "  failing case %d: %s\n", k, t ? t : "?");
            free(t);
        }
        built += net != NULL;
        dn_network_free(net);
        evo_genome_free(&g);
    }
    CHECK(built == 120, "%d of 120 built", built);
}

/* A fixed small architecture: the exact layers a block becomes. */
static void test_expansion_layers(void)
{
    evo_cells c;
    CHECK_EVO(evo_cells_parse("normal=sep5x5(1)+identity(0);reduction=conv1x1(0)+identity(1)", &c));
    evo_genome g;
    CHECK_EVO(evo_cells_expand(&g_tmpl, &c, &g));
    /* first cell (normal, F=16) right after the stem (gene 0) */
    const char *want[] = {"convolutional", "route", "convolutional", "route", "convolutional", "convolutional",
                          "shortcut", "route"};
    for (int i = 0; i < 8 && 1 + i < g.n; ++i)
        CHECK(!strcmp(g.genes[1 + i].type, want[i]), "normal cell layer %d is [%s], expected [%s]", i,
              g.genes[1 + i].type, want[i]);
    const evo_gene *dw = &g.genes[5];
    CHECK(evo_gene_get(dw, "groups") && !strcmp(evo_gene_get(dw, "groups"), "16") &&
          !strcmp(evo_gene_get(dw, "size"), "5") && !strcmp(evo_gene_get(dw, "pad"), "1"), "sep5x5 is depthwise 5x5");
    CHECK(!strcmp(evo_gene_get(&g.genes[6], "size"), "1") && !evo_gene_get(&g.genes[6], "groups"), "then pointwise");
    /* the reduction cell (third cell): conv1x1 on h(k-2) is maxpool size=1 stride=2 + 1x1 conv, identity on
       h(k-1) a maxpool size=1 stride=2 */
    int o = cell_output(&g, g_tmpl.next_id, 2), n1x1 = 0, sub = 0;
    for (int i = o - 1; i >= 0 && g.genes[i].id >= g_tmpl.next_id + 2 * EVO_CELL_ID_STRIDE; --i) {
        const evo_gene *x = &g.genes[i];
        if (!strcmp(x->type, "maxpool") && !strcmp(evo_gene_get(x, "size"), "1") &&
            !strcmp(evo_gene_get(x, "stride"), "2"))
            sub++;
        if (!strcmp(x->type, "convolutional") && !strcmp(evo_gene_get(x, "size"), "1"))
            n1x1 += !strcmp(evo_gene_get(x, "stride"), "1");
    }
    CHECK(sub == 2, "two stride-2 subsamplings in the reduction cell, got %d", sub);
    CHECK(n1x1 == 3, "three stride-1 1x1 convs (two inputs + conv1x1), got %d", n1x1);
    /* cell 3 reads h(k-2) at 28x28 and halves it with maxpool size=2 stride=2 */
    int pools2 = 0;
    for (int i = 0; i < g.n; ++i)
        if (!strcmp(g.genes[i].type, "maxpool") && !strcmp(evo_gene_get(&g.genes[i], "size"), "2")) pools2++;
    CHECK(pools2 == 2, "one halving of h(k-2) after each reduction, got %d", pools2);
    dn_network *net = shapes_of(&g);
    CHECK(net && !check_expansion(&c, &g, net), "fixed architecture builds");
    dn_network_free(net);
    evo_genome_free(&g);
}

static void test_determinism(void)
{
    uint64_t rng = 99;
    evo_cells c;
    evo_cells_random(&c, 5, EVO_OPS_ALL, &rng);
    evo_genome a, b, tcopy;
    CHECK_EVO(evo_genome_copy(&g_tmpl, &tcopy));
    CHECK_EVO(evo_cells_expand(&g_tmpl, &c, &a));
    CHECK_EVO(evo_cells_expand(&tcopy, &c, &b));
    char *ta = NULL, *tb = NULL;
    CHECK_EVO(evo_genome_emit(&a, 1, &ta));
    CHECK_EVO(evo_genome_emit(&b, 1, &tb));
    CHECK(ta && tb && strcmp(ta, tb) == 0, "same template and cells give the same cfg text");
    /* the expanded genome round-trips through its annotated text, cells included */
    evo_genome back;
    CHECK_EVO(evo_genome_parse(ta, "expanded", &back));
    CHECK(genome_equal(&a, &back), "expanded genome == parse(emit(expanded))");
    CHECK(back.cells && a.cells && !strcmp(back.cells, a.cells), "cells survive the round trip");
    /* an op mutation keeps the ids of every untouched layer: the stem, the
       head and every cell's two input convs stay; only the mutated slot's
       layers (at most 3 per cell of its type) come and go */
    evo_cells m = c;
    CHECK_EVO(evo_cells_mutate_op(&m, EVO_OPS_ALL, &rng));
    evo_genome e;
    CHECK_EVO(evo_cells_expand(&g_tmpl, &m, &e));
    int same = 0;
    for (int i = 0; i < a.n; ++i) {
        int j = evo_genome_find(&e, a.genes[i].id);
        same += j >= 0 && !strcmp(e.genes[j].type, a.genes[i].type);
    }
    CHECK(same >= a.n - 3 * NCELLS && same < a.n + 1, "a one-op change keeps the ids of all but a few layers (%d of %d kept)", same, a.n);
    for (int k = 0; k < NCELLS; ++k) {
        int id = g_tmpl.next_id + k * EVO_CELL_ID_STRIDE;
        CHECK(evo_genome_find(&a, id) >= 0 && evo_genome_find(&e, id) >= 0, "cell %d's input conv id %d kept", k, id);
    }
    for (int i = 0; i < g_tmpl.n; ++i)
        if (strcmp(g_tmpl.genes[i].type, "cell"))
            CHECK(evo_genome_find(&a, g_tmpl.genes[i].id) >= 0, "template layer id %d kept", g_tmpl.genes[i].id);
    free(ta);
    free(tb);
    evo_genome_free(&a);
    evo_genome_free(&b);
    evo_genome_free(&e);
    evo_genome_free(&back);
    evo_genome_free(&tcopy);
}

/* ------------------------------------------------------------ template errors */

static const char *HEAD = "[net]\nwidth=16\nheight=16\nchannels=1\n";

/* Parse `body` (after HEAD, so section lines start at 5) as a template:
 * expect `status` and a message holding "t.cfg:<line>:" and `what`. */
static void expect_error(const char *body, dn_status status, int line, const char *what)
{
    char text[2048], tag[32];
    snprintf(text, sizeof text, "%s%s", HEAD, body);
    snprintf(tag, sizeof tag, "t.cfg:%d:", line);
    evo_genome g;
    dn_status st = evo_template_parse(text, "t.cfg", &g);
    const char *msg = evo_last_error();
    CHECK(st == status && strstr(msg, tag) && strstr(msg, what), "expected %s '%s...%s', got %s '%s'",
          dn_status_name(status), tag, what, dn_status_name(st), msg);
    CHECK(g.n == 0 && g.genes == NULL, "nothing left in the genome after an error");
}

static void test_template_errors(void)
{
    const char *stem = "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n";   /* lines 5-9 */
    const char *tail = "[avgpool]\n[connected]\noutput=3\nactivation=linear\n[softmax]\n";
    char b[1024];
    snprintf(b, sizeof b, "%s[cell]\ntype=fancy\nfilters=4\n%s", stem, tail);
    expect_error(b, DN_ERR_PARSE, 10, "unknown cell type 'fancy'");
    snprintf(b, sizeof b, "[cell]\ntype=normal\nfilters=4\n%s%s", stem, tail);
    expect_error(b, DN_ERR_PARSE, 5, "needs a layer before it");
    snprintf(b, sizeof b, "%s[cell]\ntype=normal\n%s", stem, tail);
    expect_error(b, DN_ERR_PARSE, 10, "needs filters=");
    snprintf(b, sizeof b, "%s[cell]\ntype=normal\nfilters=0\n%s", stem, tail);
    expect_error(b, DN_ERR_PARSE, 10, "filters=0");
    snprintf(b, sizeof b, "%s[cell]\nfilters=4\n%s", stem, tail);
    expect_error(b, DN_ERR_PARSE, 10, "needs type=normal or type=reduction");
    snprintf(b, sizeof b, "%s[cell]\ntype=normal\nfilters=4\nstride=2\n%s", stem, tail);
    expect_error(b, DN_ERR_PARSE, 10, "no option 'stride'");
    snprintf(b, sizeof b, "%s[cell]\ntype=normal\nfilters=4\n[avgpool]\n[cell]\ntype=normal\nfilters=4\n"
             "[connected]\noutput=3\nactivation=linear\n[softmax]\n", stem);
    expect_error(b, DN_ERR_PARSE, 14, "classifier head (after the [avgpool] at t.cfg:13)");
    snprintf(b, sizeof b, "%s[cell]\ntype=normal\nfilters=4\nblocks=3\n[cell]\ntype=normal\nfilters=4\nblocks=2\n%s",
             stem, tail);
    expect_error(b, DN_ERR_PARSE, 14, "blocks=2");
    /* h(k-2) is 16x16, h(k-1) 14x14 after an unpadded 3x3 conv: no halving lines them up */
    snprintf(b, sizeof b, "%s[cell]\ntype=normal\nfilters=4\n[convolutional]\nfilters=4\nsize=3\nactivation=relu\n"
             "[cell]\ntype=normal\nfilters=4\n%s", stem, tail);
    expect_error(b, DN_ERR_SHAPE, 17, "do not line up");
    /* without line numbers, evo_template_check names the layer */
    char text[1024];
    snprintf(text, sizeof text, "%s%s[cell]\ntype=odd\nfilters=4\n%s", HEAD, stem, tail);
    evo_genome g;
    CHECK_EVO(evo_genome_parse(text, "t.cfg", &g));
    CHECK(evo_template_check(&g) == DN_ERR_PARSE && strstr(evo_last_error(), "template: layer 1:") &&
          strstr(evo_last_error(), "unknown cell type 'odd'"), "genome check names the layer: %s", evo_last_error());
    evo_genome_free(&g);
    /* a cell architecture with another B than the template's blocks= */
    snprintf(text, sizeof text, "%s%s[cell]\ntype=normal\nfilters=4\nblocks=3\n[cell]\ntype=reduction\nfilters=4\n%s",
             HEAD, stem, tail);
    CHECK_EVO(evo_template_parse(text, "t.cfg", &g));
    CHECK(evo_template_blocks(&g) == 3, "blocks= of the template");
    uint64_t rng = 5;
    evo_cells c;
    evo_cells_random(&c, 4, EVO_OPS_ALL, &rng);
    evo_genome e;
    CHECK(evo_cells_expand(&g, &c, &e) == DN_ERR_ARG && strstr(evo_last_error(), "blocks=3"), "B mismatch: %s",
          evo_last_error());
    evo_cells_random(&c, 3, EVO_OPS_ALL, &rng);
    CHECK_EVO(evo_cells_expand(&g, &c, &e));
    c.normal[1].in[0] = 3;   /* block 1 cannot read itself */
    evo_genome e2;
    CHECK(evo_cells_expand(&g, &c, &e2) == DN_ERR_ARG, "malformed cells are refused");
    evo_genome_free(&e);
    evo_genome_free(&g);
}

/* ------------------------------------------------------------ sampling and mutation */

static void test_random_coverage(void)
{
    enum { B = 5, N = 3000 };
    static int seen_op[2][B][2][EVO_OP_COUNT], seen_in[2][B][2][2 + B];
    uint64_t rng = 2024;
    int bad = 0;
    for (int k = 0; k < N; ++k) {
        evo_cells c;
        evo_cells_random(&c, B, EVO_OPS_ALL, &rng);
        bad += c.blocks != B || evo_cells_check(&c) != DN_OK;
        for (int r = 0; r < 2; ++r)
            for (int j = 0; j < B; ++j)
                for (int s = 0; s < 2; ++s) {
                    seen_op[r][j][s][blocks_of(&c, r)[j].op[s]]++;
                    seen_in[r][j][s][blocks_of(&c, r)[j].in[s]]++;
                }
    }
    CHECK(bad == 0, "%d invalid samples", bad);
    int missing = 0, skewed = 0;
    for (int r = 0; r < 2; ++r)
        for (int j = 0; j < B; ++j)
            for (int s = 0; s < 2; ++s) {
                for (int o = 0; o < EVO_OP_COUNT; ++o) {
                    int n = seen_op[r][j][s][o];
                    missing += n == 0;
                    skewed += n < N / EVO_OP_COUNT * 7 / 10 || n > N / EVO_OP_COUNT * 13 / 10;
                }
                for (int i = 0; i < 2 + B; ++i) {
                    int n = seen_in[r][j][s][i], expect = N / (2 + j);
                    if (i < 2 + j) {
                        missing += n == 0;
                        skewed += n < expect * 7 / 10 || n > expect * 13 / 10;
                    } else {
                        CHECK(n == 0, "block %d read state %d, which is not before it", j, i);
                    }
                }
            }
    CHECK(missing == 0, "%d (cell, block, slot, op|input) combinations never sampled", missing);
    CHECK(skewed == 0, "%d combinations off uniform by more than 30%%", skewed);
    /* a mask restricts the ops; blocks are clamped */
    unsigned mask = (1u << EVO_OP_SEP3) | (1u << EVO_OP_MAX3);
    int outside = 0;
    for (int k = 0; k < 200; ++k) {
        evo_cells c;
        evo_cells_random(&c, 3, mask, &rng);
        for (int r = 0; r < 2; ++r)
            for (int j = 0; j < 3; ++j)
                for (int s = 0; s < 2; ++s) outside += !(mask >> blocks_of(&c, r)[j].op[s] & 1u);
    }
    CHECK(outside == 0, "%d ops outside the mask", outside);
    evo_cells c;
    evo_cells_random(&c, 99, EVO_OPS_ALL, &rng);
    CHECK(c.blocks == EVO_MAX_BLOCKS && evo_cells_check(&c) == DN_OK, "blocks clamped to %d", c.blocks);
    evo_cells_random(&c, 0, EVO_OPS_ALL, &rng);
    CHECK(c.blocks == 1, "blocks clamped to 1");
}

typedef struct { int in_changes, op_changes, other; int where[2][EVO_MAX_BLOCKS][2]; } diff;

static diff diff_cells(const evo_cells *a, const evo_cells *b)
{
    diff d;
    memset(&d, 0, sizeof d);
    if (a->blocks != b->blocks) d.other++;
    for (int r = 0; r < 2; ++r)
        for (int j = 0; j < EVO_MAX_BLOCKS; ++j)
            for (int s = 0; s < 2; ++s) {
                const evo_block *x = &blocks_of(a, r)[j], *y = &blocks_of(b, r)[j];
                int ci = x->in[s] != y->in[s], co = x->op[s] != y->op[s];
                if (j >= a->blocks) { d.other += ci + co; continue; }
                d.in_changes += ci;
                d.op_changes += co;
                d.where[r][j][s] += ci + co;
            }
    return d;
}

static void test_mutations(void)
{
    uint64_t rng = 4242;
    enum { B = 5, N = 2000 };
    int hit[2][2][B][2] = {{{{0}}}}, bad = 0, builds = 0;
    for (int k = 0; k < N; ++k) {
        evo_cells c, m;
        evo_cells_random(&c, B, EVO_OPS_ALL, &rng);
        for (int kind = 0; kind < 2; ++kind) {
            m = c;
            dn_status st = kind ? evo_cells_mutate_op(&m, EVO_OPS_ALL, &rng) : evo_cells_mutate_hidden(&m, &rng);
            diff d = diff_cells(&c, &m);
            int ok = st == DN_OK && evo_cells_check(&m) == DN_OK && d.other == 0 &&
                     (kind ? d.op_changes == 1 && d.in_changes == 0 : d.in_changes == 1 && d.op_changes == 0);
            if (!ok && bad++ < 5)
                fprintf(stderr, "mutation %d (%s): st %d in %d op %d other %d\n", k, kind ? "op" : "hidden", (int)st,
                        d.in_changes, d.op_changes, d.other);
            for (int r = 0; r < 2; ++r)
                for (int j = 0; j < B; ++j)
                    for (int s = 0; s < 2; ++s) hit[kind][r][j][s] += d.where[r][j][s];
            if (k < 6) {   /* the mutated cells still expand into a network that builds */
                evo_genome g;
                if (evo_cells_expand(&g_tmpl, &m, &g) == DN_OK) {
                    builds += evo_genome_check(&g, NULL, NULL) == DN_OK;
                    evo_genome_free(&g);
                }
            }
        }
    }
    CHECK(bad == 0, "%d mutations did not change exactly one input (hidden) or one op (op)", bad);
    CHECK(builds == 12, "mutated cells build (%d of 12)", builds);
    int never = 0;
    for (int kind = 0; kind < 2; ++kind)
        for (int r = 0; r < 2; ++r)
            for (int j = 0; j < B; ++j)
                for (int s = 0; s < 2; ++s) never += hit[kind][r][j][s] < N / (2 * B * 2) / 2;
    CHECK(never == 0, "%d (mutation, cell, block, slot) choices drawn far less than uniformly", never);

    /* op mutation within a mask stays in it */
    unsigned mask = (1u << EVO_OP_CONV3) | (1u << EVO_OP_SEP5) | (1u << EVO_OP_IDENTITY);
    int outside = 0;
    for (int k = 0; k < 300; ++k) {
        evo_cells c;
        evo_cells_random(&c, 4, mask, &rng);
        CHECK_EVO(evo_cells_mutate_op(&c, mask, &rng));
        for (int r = 0; r < 2; ++r)
            for (int j = 0; j < 4; ++j)
                for (int s = 0; s < 2; ++s) outside += !(mask >> blocks_of(&c, r)[j].op[s] & 1u);
    }
    CHECK(outside == 0, "%d ops outside the mask after op mutations", outside);

    /* no other choice: one-op mask; malformed cells; c unchanged */
    evo_cells c, before;
    evo_cells_random(&c, 3, 1u << EVO_OP_MAX3, &rng);
    before = c;
    CHECK(evo_cells_mutate_op(&c, 1u << EVO_OP_MAX3, &rng) == DN_ERR_ARG && strstr(evo_last_error(), "max3x3"),
          "one-op mask: %s", evo_last_error());
    CHECK(!memcmp(&c, &before, sizeof c), "unchanged after a refused op mutation");
    CHECK(evo_cells_mutate_op(&c, 0, &rng) == DN_ERR_ARG, "empty mask refused");
    c.blocks = 0;
    before = c;
    CHECK(evo_cells_mutate_hidden(&c, &rng) == DN_ERR_ARG && strstr(evo_last_error(), "0 blocks"),
          "malformed cells: %s", evo_last_error());
    CHECK(!memcmp(&c, &before, sizeof c), "unchanged after a refused hidden-state mutation");
    /* B = 1: block 0 chooses between h(k-2) and h(k-1), so the input flips */
    evo_cells_random(&c, 1, EVO_OPS_ALL, &rng);
    for (int k = 0; k < 20; ++k) {
        before = c;
        CHECK_EVO(evo_cells_mutate_hidden(&c, &rng));
        diff d = diff_cells(&before, &c);
        CHECK(d.in_changes == 1 && (c.normal[0].in[0] <= 1 && c.normal[0].in[1] <= 1 && c.reduction[0].in[0] <= 1 &&
                                    c.reduction[0].in[1] <= 1), "B=1 hidden mutation flips one input");
    }
}

/* ------------------------------------------------------------ text form */

static void test_text(void)
{
    uint64_t rng = 31;
    int bad = 0;
    for (int k = 0; k < 500; ++k) {
        evo_cells c, back;
        evo_cells_random(&c, 1 + k % EVO_MAX_BLOCKS, EVO_OPS_ALL, &rng);
        char *t = NULL;
        if (evo_cells_format(&c, &t) != DN_OK || evo_cells_parse(t, &back) != DN_OK || memcmp(&c, &back, sizeof c))
            bad++;
        CHECK(!t || !strpbrk(t, " \t\n"), "no whitespace in '%s'", t);
        free(t);
    }
    CHECK(bad == 0, "%d of 500 cell texts did not round-trip", bad);
    evo_cells c;
    CHECK_EVO(evo_cells_parse(" reduction = max3x3(1) + avg3x3(0) ,\n conv3x3(2)+sep7x7(0) ;"
                              "normal=identity(0)+conv1x1(1),sep3x3(2)+sep5x5(1)", &c));
    CHECK(c.blocks == 2 && c.reduction[0].op[0] == EVO_OP_MAX3 && c.reduction[0].in[1] == 0 &&
          c.reduction[1].op[1] == EVO_OP_SEP7 && c.normal[1].in[0] == 2 && c.normal[1].op[1] == EVO_OP_SEP5,
          "whitespace and either cell order accepted");
    const char *bad_texts[][2] = {
        {"", "'normal=' or 'reduction='"},
        {"normal=sep3x3(0)+identity(1)", "';' and the other cell"},
        {"normal=sep3x3(0)+identity(1);normal=sep3x3(0)+identity(1)", "given twice"},
        {"normal=sep3x3(2)+identity(1);reduction=sep3x3(0)+identity(1)", "only 0..1 come before it"},
        {"normal=sep4x4(0)+identity(1);reduction=sep3x3(0)+identity(1)", "an op"},
        {"normal=sep3x3(0);reduction=sep3x3(0)+identity(1)", "'+'"},
        {"normal=sep3x3(0)+identity(1),max3x3(2)+max3x3(0);reduction=sep3x3(0)+identity(1)", "same number"},
        {"normal=sep3x3(0)+identity(1);reduction=sep3x3(0)+identity(1)garbage", "the end of the text"},
        {"normal=sep3x3(-1)+identity(1);reduction=sep3x3(0)+identity(1)", "hidden state index"},
        {"normal=sep3x3(0+identity(1);reduction=sep3x3(0)+identity(1)", "')'"},
        {"hello world", "'normal=' or 'reduction='"},
    };
    for (size_t i = 0; i < sizeof bad_texts / sizeof bad_texts[0]; ++i) {
        evo_cells keep = c;
        dn_status st = evo_cells_parse(bad_texts[i][0], &c);
        CHECK(st == DN_ERR_PARSE && strstr(evo_last_error(), bad_texts[i][1]), "'%s' -> %s: %s", bad_texts[i][0],
              dn_status_name(st), evo_last_error());
        CHECK(!memcmp(&keep, &c, sizeof c), "output untouched on error");
    }
    /* 17 blocks */
    char big[4096] = "normal=";
    for (int j = 0; j < 17; ++j) strcat(big, j ? ",identity(0)+identity(1)" : "identity(0)+identity(1)");
    CHECK(evo_cells_parse(big, &c) == DN_ERR_PARSE && strstr(evo_last_error(), "at most 16"), "17 blocks: %s",
          evo_last_error());
    for (int o = 0; o < EVO_OP_COUNT; ++o) {
        evo_op back;
        CHECK(evo_op_from_name(evo_op_name((evo_op)o), &back) == DN_OK && back == (evo_op)o, "op name %d", o);
    }
    CHECK(!strcmp(evo_op_name(EVO_OP_SEP7), "sep7x7") && !strcmp(evo_op_name(EVO_OP_COUNT), "unknown"), "names");
    /* upstream note */
    CHECK_EVO(evo_cells_parse("normal=sep3x3(0)+max3x3(1);reduction=conv1x1(0)+conv3x3(1)", &c));
    CHECK(evo_cells_upstream_note(&c) == NULL, "avg-free: upstream loads it");
    c.reduction[0].op[1] = EVO_OP_AVG3;
    CHECK(evo_cells_upstream_note(&c) && strstr(evo_cells_upstream_note(&c), "local_avgpool"), "avg3x3 noted");
}

/* ------------------------------------------------------------ genome line */

static void test_genome_line(void)
{
    const char *cells = "normal=sep3x3(0)+identity(1);reduction=max3x3(1)+conv1x1(0)";
    char text[1024];
    snprintf(text, sizeof text, "[net]\n# evo next_id=9\n# evo cells %s\nwidth=4\nheight=4\nchannels=1\n"
             "\n# evo id=3\n[avgpool]\n\n# evo id=5\n[softmax]\n", cells);
    evo_genome g, copy, back;
    CHECK_EVO(evo_genome_parse(text, "g.cfg", &g));
    CHECK(g.cells && !strcmp(g.cells, cells), "cells read: %s", g.cells ? g.cells : "(null)");
    char *out = NULL, *plain = NULL;
    CHECK_EVO(evo_genome_emit(&g, 1, &out));
    CHECK(out && !strcmp(out, text), "annotated emit reproduces the text:\n%s", out);
    CHECK_EVO(evo_genome_emit(&g, 0, &plain));
    CHECK(plain && !strstr(plain, "evo"), "plain emit has no annotations");
    CHECK_EVO(evo_genome_parse(out, "g2", &back));
    CHECK(back.cells && !strcmp(back.cells, cells) && genome_equal(&g, &back), "round trip");
    CHECK_EVO(evo_genome_copy(&g, &copy));
    CHECK(copy.cells && copy.cells != g.cells && !strcmp(copy.cells, cells), "copy duplicates cells");
    evo_genome_free(&g);
    CHECK(copy.cells && !strcmp(copy.cells, cells), "copy independent of the source");
    evo_genome_free(&copy);
    evo_genome_free(&back);
    free(out);
    free(plain);
    /* written with spaces, stored canonically */
    CHECK_EVO(evo_genome_parse("[net]\n#  evo  cells  normal = identity(0) + identity(1) ; reduction = "
                               "identity(1) + identity(0)\nwidth=2\nheight=2\nchannels=1\n[softmax]\n", "s", &g));
    CHECK(g.cells && !strcmp(g.cells, "normal=identity(0)+identity(1);reduction=identity(1)+identity(0)"),
          "canonical: %s", g.cells ? g.cells : "(null)");
    evo_genome_free(&g);
    /* no line: NULL; a bad line: an error naming the line; two lines: error */
    CHECK_EVO(evo_genome_parse("[net]\nwidth=2\nheight=2\nchannels=1\n[softmax]\n", "n", &g));
    CHECK(g.cells == NULL, "no cells line -> NULL");
    evo_genome_free(&g);
    CHECK(evo_genome_parse("[net]\nwidth=2\n# evo cells normal=bogus\nheight=2\nchannels=1\n[softmax]\n", "b.cfg", &g) ==
              DN_ERR_PARSE && strstr(evo_last_error(), "b.cfg:3:"), "bad cells line: %s", evo_last_error());
    snprintf(text, sizeof text, "[net]\n# evo cells %s\n# evo cells %s\nwidth=2\nheight=2\nchannels=1\n[softmax]\n",
             cells, cells);
    CHECK(evo_genome_parse(text, "d.cfg", &g) == DN_ERR_PARSE && strstr(evo_last_error(), "d.cfg:3:"),
          "second cells line: %s", evo_last_error());
}

/* ------------------------------------------------------------ rescale */

/* The [cell]s of t: their types ('n'/'r') and filters. */
static int cells_of(const evo_genome *t, char *types, int *filters)
{
    int n = 0;
    for (int i = 0; i < t->n; ++i) {
        if (strcmp(t->genes[i].type, "cell")) continue;
        types[n] = evo_gene_get(&t->genes[i], "type")[0];
        filters[n] = atoi(evo_gene_get(&t->genes[i], "filters"));
        n++;
    }
    types[n] = 0;
    return n;
}

static void test_rescale(void)
{
    char types[64];
    int filters[64];
    evo_genome r;
    CHECK_EVO(evo_template_rescale(&g_tmpl, 0, 0, &r));
    CHECK(genome_equal(&r, &g_tmpl), "0, 0: unchanged");
    evo_genome_free(&r);

    CHECK_EVO(evo_template_rescale(&g_tmpl, 32, 0, &r));
    int n = cells_of(&r, types, filters);
    CHECK(n == 8 && !strcmp(types, "nnrnnrnn"), "same cells: %s", types);
    const int want[] = {32, 32, 64, 64, 64, 128, 128, 128};
    for (int k = 0; k < n && k < 8; ++k) CHECK(filters[k] == want[k], "cell %d filters %d, want %d", k, filters[k], want[k]);
    evo_genome_free(&r);

    CHECK_EVO(evo_template_rescale(&g_tmpl, 8, 3, &r));
    n = cells_of(&r, types, filters);
    CHECK(n == 11 && !strcmp(types, "nnnrnnnrnnn"), "N=3: %s", types);
    CHECK(filters[0] == 8 && filters[2] == 8 && filters[3] == 16 && filters[6] == 16 && filters[10] == 32,
          "filters halved: %d %d %d %d %d", filters[0], filters[2], filters[3], filters[6], filters[10]);
    CHECK_EVO(evo_template_check(&r));
    CHECK(r.body_end == r.n - 3 && !strcmp(r.genes[r.body_end].type, "avgpool"), "head kept");
    uint64_t rng = 8;
    evo_cells c;
    evo_cells_random(&c, 5, EVO_OPS_ALL, &rng);
    evo_genome e;
    CHECK_EVO(evo_cells_expand(&r, &c, &e));
    dn_network *net = shapes_of(&e);
    CHECK(net && net->layers[e.body_end].w == 7 && net->outputs == 10, "rescaled template builds, 7x7 at the head");
    dn_network_free(net);
    evo_genome_free(&e);
    int dups = 0;
    for (int i = 0; i < r.n; ++i)
        for (int j = i + 1; j < r.n; ++j) dups += r.genes[i].id == r.genes[j].id;
    CHECK(dups == 0 && r.next_id > g_tmpl.next_id, "unique ids after rescale (%d duplicates), next_id %d", dups,
          r.next_id);
    evo_genome_free(&r);

    CHECK_EVO(evo_template_rescale(&g_tmpl, 0, 1, &r));
    n = cells_of(&r, types, filters);
    CHECK(n == 5 && !strcmp(types, "nrnrn") && filters[0] == 16 && filters[4] == 64, "N=1: %s", types);
    CHECK_EVO(evo_template_check(&r));
    evo_genome_free(&r);
}

int main(void)
{
    dn_set_warning_sink(NULL, NULL);
    char *text = read_text(TEMPLATE);
    CHECK(text != NULL, "read %s (run from the repository root)", TEMPLATE);
    if (!text) TEST_MAIN_END();
    dn_status st = evo_template_parse(text, TEMPLATE, &g_tmpl);
    free(text);
    CHECK(st == DN_OK, "%s is a valid template: %s", TEMPLATE, evo_last_error());
    if (st != DN_OK) TEST_MAIN_END();
    test_template();
    test_expansion_layers();
    test_random_expansions();
    test_determinism();
    test_template_errors();
    test_random_coverage();
    test_mutations();
    test_text();
    test_genome_line();
    test_rescale();
    test_upstream();
    evo_genome_free(&g_tmpl);
    TEST_MAIN_END();
}
