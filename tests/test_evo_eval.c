/*
 * test_evo_eval.c — the data of a search (evo/data.c), one evaluation
 * (evo/evaluate.c) and export (evo/export.c) on a small generated IDX
 * dataset: 4 classes of 10x10 gray images, each class a bright quadrant over
 * noise; every image carries its index in its first two pixels so that splits
 * can be checked for disjointness.
 *
 *   data:     holdout sizes, train/holdout disjoint and complete, labels kept,
 *             determinism with the seed, max_train, bad holdouts
 *   evaluate: trains above chance and the accuracy matches an independent
 *             prediction; a cfg the framework rejects, outputs != classes and
 *             a divergent learning rate fail with their reason; inheritance
 *             of an identical genome copies every layer (same accuracy with
 *             0 steps), of a resized one copies none, with inherit=0 none
 *   schedule: evo_cosine_rate's warm-up and cosine; a poly seed whose
 *             lineage has used up max_batches no longer learns under the
 *             cfg schedule but does under cosine; val_images scores on a part
 *   export:   the four files, a plain cfg that parses, weights that load,
 *             absolute paths, labels, the test accuracy against an
 *             independent computation, failed/dead/unknown ids refused
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "evo_internal.h"
#include "testlib.h"
#include "testtmp.h"
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SIDE 10
#define PIX (SIDE * SIDE)
#define CLASSES 4
#define NTRAIN 400
#define NTEST 200
#define TEST_BASE 1000   /* index of the first test image */

static char data_path[512];
static unsigned char test_px[NTEST][PIX];
static int test_label[NTEST];



#define CHECK_ERR(expr, substr)                                                                            \
    do {                                                                                                   \
        dn_status te_s = (expr);                                                                           \
        CHECK(te_s != DN_OK && strstr(evo_last_error(), (substr)), "%s -> %s: '%s' (want an error with '%s')", \
              #expr, dn_status_name(te_s), evo_last_error(), (substr));                                    \
    } while (0)

static void quiet_sink(const char *msg, void *user) { (void)msg; (void)user; }

/* ------------------------------------------------------------ generated data */

static int label_of(int index) { return (index * 7 + 3) % CLASSES; }

static void make_image(int index, unsigned char *px)
{
    uint32_t h = (uint32_t)index * 2654435761u + 12345u;
    int k = label_of(index), qx = (k % 2) * 5, qy = (k / 2) * 5;
    for (int y = 0; y < SIDE; ++y)
        for (int x = 0; x < SIDE; ++x) {
            h = h * 1664525u + 1013904223u;
            int bright = x >= qx && x < qx + 5 && y >= qy && y < qy + 5;
            px[y * SIDE + x] = (unsigned char)(bright ? 20 + (h >> 25) : (h >> 25));
        }
    px[0] = (unsigned char)(index % 256);
    px[1] = (unsigned char)(index / 256);
}

static int index_of(const float *row) { return (int)(row[0] * 255 + 0.5f) + 256 * (int)(row[1] * 255 + 0.5f); }

static void put_be32(unsigned char *b, uint32_t v) { b[0] = v >> 24; b[1] = v >> 16; b[2] = v >> 8; b[3] = v; }

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile f = gzopen(path, "wb");
    if (!f || gzwrite(f, data, (unsigned)n) != (int)n) { fprintf(stderr, "%s: gz write failed\n", path); exit(2); }
    gzclose(f);
}

static void write_idx(const char *images, const char *labels, int n, int base)
{
    unsigned char *im = malloc(16 + (size_t)n * PIX), *lb = malloc(8 + (size_t)n);
    put_be32(im, 0x803); put_be32(im + 4, (uint32_t)n); put_be32(im + 8, SIDE); put_be32(im + 12, SIDE);
    put_be32(lb, 0x801); put_be32(lb + 4, (uint32_t)n);
    for (int i = 0; i < n; ++i) {
        make_image(base + i, im + 16 + (size_t)i * PIX);
        lb[8 + i] = (unsigned char)label_of(base + i);
    }
    write_gz(images, im, 16 + (size_t)n * PIX);
    write_gz(labels, lb, 8 + (size_t)n);
    free(im);
    free(lb);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0) { perror(path); exit(2); }
    fclose(f);
}

static void make_dataset(void)
{
    write_idx(tp("train-images-idx3-ubyte.gz"), tp("train-labels-idx1-ubyte.gz"), NTRAIN, 0);
    write_idx(tp("t10k-images-idx3-ubyte.gz"), tp("t10k-labels-idx1-ubyte.gz"), NTEST, TEST_BASE);
    for (int i = 0; i < NTEST; ++i) {
        make_image(TEST_BASE + i, test_px[i]);
        test_label[i] = label_of(TEST_BASE + i);
    }
    write_text(tp("names.txt"), "alpha\nbravo\ncharlie\ndelta\n");
    char text[2048];
    snprintf(text, sizeof text, "classes=4\ntrain=%s\nvalid=%s\nnames=%s\ntop=1\n", tp("train-images-idx3-ubyte.gz"),
             tp("t10k-images-idx3-ubyte.gz"), tp("names.txt"));
    snprintf(data_path, sizeof data_path, "%s", tp("easy.data"));
    write_text(data_path, text);
}

/* ------------------------------------------------------------ data */

static void test_data_load(void)
{
    evo_data d, e;
    CHECK_OK(evo_data_load(data_path, 50, 7, 0, &d));
    CHECK(d.classes == CLASSES && d.train.n == NTRAIN - 50 && d.holdout.n == 50, "sizes %d + %d", d.train.n, d.holdout.n);
    CHECK(!d.train.is_list && d.train.arrays.rows == d.train.n && d.holdout.arrays.rows == 50, "array rows");
    int seen[NTRAIN] = {0}, labels_ok = 1, order_changed = 0;
    const dn_split *sp[2] = {&d.train, &d.holdout};
    for (int k = 0; k < 2; ++k)
        for (int i = 0; i < sp[k]->n; ++i) {
            const dn_dataset *a = &sp[k]->arrays;
            int idx = index_of(a->X + (size_t)i * a->cols);
            if (idx >= 0 && idx < NTRAIN) seen[idx]++;
            int l = label_of(idx);
            labels_ok &= sp[k]->labels[i] == l && a->labels[i] == l && a->y[(size_t)i * CLASSES + l] == 1.0f;
            order_changed |= k == 0 && idx != i;
        }
    int all_once = 1;
    for (int i = 0; i < NTRAIN; ++i) all_once &= seen[i] == 1;
    CHECK(all_once, "every training image is in exactly one of train and holdout");
    CHECK(labels_ok, "labels and one-hot targets follow their images");
    CHECK(order_changed, "the images are shuffled");

    CHECK_OK(evo_data_load(data_path, 50, 7, 0, &e));
    CHECK(!memcmp(d.holdout.arrays.X, e.holdout.arrays.X, sizeof(float) * 50 * PIX) &&
          !memcmp(d.train.arrays.X, e.train.arrays.X, sizeof(float) * (NTRAIN - 50) * PIX), "same seed, same split");
    evo_data_free(&e);
    CHECK_OK(evo_data_load(data_path, 50, 8, 0, &e));
    CHECK(memcmp(d.holdout.arrays.X, e.holdout.arrays.X, sizeof(float) * 50 * PIX) != 0, "another seed, another holdout");
    evo_data_free(&e);
    evo_data_free(&d);
    CHECK(d.train.n == 0 && d.holdout.n == 0, "free clears");

    CHECK_OK(evo_data_load(data_path, 10, 1, 100, &d));
    int below = d.train.n == 90 && d.holdout.n == 10;
    for (int i = 0; i < d.holdout.n; ++i) below &= index_of(d.holdout.arrays.X + (size_t)i * PIX) < 100;
    CHECK(below, "max_train keeps the first 100 images");
    evo_data_free(&d);
    CHECK_OK(evo_data_load(data_path, NTRAIN - 1, 1, 0, &d));
    CHECK(d.train.n == 1, "one training image left");
    evo_data_free(&d);

    CHECK_ERR(evo_data_load(data_path, 0, 1, 0, &d), "at least 1 image");
    CHECK_ERR(evo_data_load(data_path, NTRAIN, 1, 0, &d), "leaves nothing to train on");
    CHECK_ERR(evo_data_load(tp("nope.data"), 10, 1, 0, &d), "nope.data");
    CHECK(d.train.n == 0 && d.config.train == NULL, "nothing kept on failure");
}

/* ------------------------------------------------------------ evaluate */

#define TINY(lr, out)                                                                                   \
    "[net]\nbatch=16\nwidth=10\nheight=10\nchannels=1\nlearning_rate=" lr "\nmomentum=0.9\ndecay=0.0005\n" \
    "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"                            \
    "[maxpool]\nsize=2\nstride=2\n"                                                                     \
    "[connected]\noutput=" out "\nactivation=linear\n"                                                  \
    "[softmax]\n"

static evo_genome genome(const char *cfg)
{
    evo_genome g;
    if (evo_genome_parse(cfg, "test cfg", &g) != DN_OK) { fprintf(stderr, "%s\n", evo_last_error()); exit(2); }
    return g;
}

static int argmax(const float *p, int n)
{
    int b = 0;
    for (int i = 1; i < n; ++i) if (p[i] > p[b]) b = i;
    return b;
}

/* Right answers of net, image by image, on n rows of floats. */
static int count_right(dn_network *net, const float *X, const int *labels, int n)
{
    int right = 0;
    for (int i = 0; i < n; ++i) {
        const float *p = NULL;
        dn_network_predict(net, X + (size_t)i * net->inputs, &p);
        right += p && argmax(p, net->outputs) == labels[i];
    }
    return right;
}

static evo_eval_options eval_opts(int steps, int inherit)
{
    evo_eval_options o = {.steps = steps, .batch = 16, .inherit = inherit, .seed = 11, .threads = 0};
    return o;
}

static void test_evaluate_trains(const evo_data *d, evo_result *r1)
{
    evo_genome g = genome(TINY("0.05", "4"));
    evo_eval_options o = eval_opts(80, 0);
    evo_evaluate(&g, NULL, NULL, 0, d, &o, r1);
    CHECK(r1->outcome == EVO_OK, "trains: %s", r1->reason);
    CHECK(r1->accuracy > 0.6f, "accuracy %.3f above chance (0.25)", r1->accuracy);
    CHECK(r1->steps == 80 && r1->seen == 80 * 16, "steps %d seen %llu", r1->steps, (unsigned long long)r1->seen);
    CHECK(isfinite(r1->loss) && r1->loss > 0 && r1->loss < 1.0f, "loss of the last batches %.3f", r1->loss);
    CHECK(r1->inherited.copied == 0 && r1->inherited.initialised == 2, "no parent: 2 layers initialised");
    CHECK(r1->params == 4 * 9 + 4 + 4 * 100 + 4 && r1->flops > 0, "params %zu flops %g", r1->params, r1->flops);
    CHECK(r1->build_seconds >= 0 && r1->train_seconds > 0 && r1->eval_seconds > 0, "timings");
    CHECK(r1->weights && r1->weights_size == 20 + r1->params * sizeof(float), "weights in memory: %zu bytes",
          r1->weights_size);

    /* the same accuracy from the saved weights, predicted one image at a time */
    char *text = NULL;
    CHECK_OK(evo_genome_emit(&g, 0, &text) == DN_OK ? DN_OK : DN_ERR_ARG);
    dn_parse_options po = {.batch = 1, .quiet = 1};
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string(text, "check", &po, &net));
    CHECK_OK(dn_weights_load_memory(net, r1->weights, r1->weights_size, "r1"));
    int right = count_right(net, d->holdout.arrays.X, d->holdout.labels, d->holdout.n);
    CHECK(abs(right - (int)(r1->accuracy * d->holdout.n + 0.5f)) <= 1, "independent %d/%d vs %.3f", right,
          d->holdout.n, r1->accuracy);
    CHECK(net->seen == r1->seen, "seen saved with the weights");
    dn_network_free(net);
    free(text);
    evo_genome_free(&g);
}

static void expect_failure(const evo_data *d, const char *cfg, int steps, const char *why, int diverged)
{
    evo_genome g = genome(cfg);
    evo_eval_options o = eval_opts(steps, 0);
    evo_result r;
    evo_evaluate(&g, NULL, NULL, 0, d, &o, &r);
    CHECK(r.outcome == EVO_FAILED && strstr(r.reason, why) && r.accuracy == 0 && !r.weights && !r.weights_size,
          "want failure '%s', got outcome %d reason '%s'", why, r.outcome, r.reason);
    CHECK(r.diverged == diverged, "'%s': diverged %d, want %d", why, r.diverged, diverged);
    evo_result_free(&r);
    evo_genome_free(&g);
}

static void test_evaluate_failures(const evo_data *d)
{
    expect_failure(d, "[net]\nbatch=16\nwidth=10\nheight=10\nchannels=1\n"
                      "[convolutional]\nfilters=4\nsize=3\nactivation=sparkly\n[connected]\noutput=4\n[softmax]\n",
                   5, "sparkly", 0);
    expect_failure(d, TINY("0.05", "3"), 5, "3 outputs but the data has 4 classes", 0);
    expect_failure(d, TINY("1e30", "4"), 20, "diverged", 1);
}

static void test_inheritance(const evo_data *d, const evo_result *r1)
{
    evo_genome parent = genome(TINY("0.05", "4")), child;
    CHECK_OK(evo_genome_copy(&parent, &child) == DN_OK ? DN_OK : DN_ERR_ARG);
    evo_eval_options o = eval_opts(0, 1);
    evo_result r;
    evo_evaluate(&child, &parent, r1->weights, r1->weights_size, d, &o, &r);
    CHECK(r.outcome == EVO_OK && r.inherited.copied == 2 && r.inherited.initialised == 0,
          "identical genome: every parametrised layer copied (%d, %d) %s", r.inherited.copied, r.inherited.initialised,
          r.reason);
    CHECK(r.accuracy == r1->accuracy, "0 steps: the parent's accuracy %.4f vs %.4f", r.accuracy, r1->accuracy);
    CHECK(r.seen == r1->seen && r.weights_size == r1->weights_size && !memcmp(r.weights, r1->weights, r.weights_size),
          "0 steps: the parent's weights, bit for bit");
    evo_result_free(&r);

    o.steps = 5;
    evo_evaluate(&child, &parent, r1->weights, r1->weights_size, d, &o, &r);
    CHECK(r.outcome == EVO_OK && r.seen == r1->seen + 5 * 16, "the lineage's images: %llu",
          (unsigned long long)r.seen);
    evo_result_free(&r);

    o.inherit = 0;
    evo_evaluate(&child, &parent, r1->weights, r1->weights_size, d, &o, &r);
    CHECK(r.outcome == EVO_OK && r.inherited.copied == 0 && r.inherited.initialised == 2 && r.seen == 5 * 16,
          "inherit=0 copies nothing");
    evo_result_free(&r);

    /* more filters in the conv: neither it nor the connected after it fit */
    evo_gene_set(&child.genes[0], "filters", "6");
    o.inherit = 1;
    evo_evaluate(&child, &parent, r1->weights, r1->weights_size, d, &o, &r);
    CHECK(r.outcome == EVO_OK && r.inherited.copied == 0 && r.inherited.initialised == 2, "resized: copied %d",
          r.inherited.copied);
    evo_result_free(&r);

    /* corrupt parent weights fail the child, not the process */
    evo_evaluate(&child, &parent, r1->weights, r1->weights_size - 8, d, &o, &r);
    CHECK(r.outcome == EVO_FAILED && strstr(r.reason, "parent weights"), "truncated parent weights: %s", r.reason);
    evo_result_free(&r);
    evo_genome_free(&child);
    evo_genome_free(&parent);
}

/* ------------------------------------------------------------ export */

static char *slurp(const char *path)
{
    char *t = NULL;
    return dn_read_file(path, &t, NULL) == DN_OK ? t : NULL;
}

/* Records one evaluated individual in the store as the search would. */
static void record(evo_store *st, int eval, int id, int parent, const evo_genome *g, const evo_result *r, int killed)
{
    char *text = NULL;
    evo_genome_emit(g, 1, &text);
    evo_individual ind = {.id = id, .parent = parent, .mutation = parent < 0 ? EVO_MUT_NONE : EVO_MUT_IDENTITY,
                          .eval = eval, .alive = r->outcome == EVO_OK, .outcome = r->outcome,
                          .accuracy = r->accuracy, .steps = r->steps, .params = r->params, .flops = r->flops};
    int ok = r->outcome == EVO_OK;
    CHECK_OK(evo_store_save_individual(st, id, text, ok ? r->weights : NULL, ok ? r->weights_size : 0));
    CHECK_OK(evo_store_append_event(st, &ind, r, &killed, killed >= 0, 1, eval));
    if (killed >= 0) CHECK_OK(evo_store_remove_weights(st, killed));
    free(text);
}

/* Test accuracy of the exported files computed here, from the generated pixels. */
static float independent_test_accuracy(const char *cfg, const char *weights)
{
    dn_parse_options po = {.batch = 1, .quiet = 1};
    dn_network *net = NULL;
    if (dn_network_parse_file(cfg, &po, &net) != DN_OK || dn_weights_load(net, weights) != DN_OK) return -1;
    float *X = malloc(sizeof(float) * NTEST * PIX);
    for (int i = 0; i < NTEST * PIX; ++i) X[i] = test_px[i / PIX][i % PIX] / 255.0f;
    int right = count_right(net, X, test_label, NTEST);
    free(X);
    dn_network_free(net);
    return (float)right / NTEST;
}

static float reported(const char *report, const char *key)
{
    const char *p = strstr(report, key);
    return p ? strtof(p + strlen(key), NULL) / 100.0f : -1;
}

static void check_exported(const char *prefix, const evo_result *r, const char *report)
{
    char p[4][600];
    const char *ext[4] = {"cfg", "weights", "labels", "data"};
    for (int i = 0; i < 4; ++i) snprintf(p[i], sizeof p[i], "%s.%s", prefix, ext[i]);
    char *cfg = slurp(p[0]), *labels = slurp(p[2]), *data = slurp(p[3]);
    CHECK(cfg && !strstr(cfg, "# evo") && strstr(cfg, "[convolutional]"), "plain cfg");
    CHECK(labels && !strcmp(labels, "alpha\nbravo\ncharlie\ndelta\n"), "labels: %s", labels ? labels : "-");
    char want[700];
    snprintf(want, sizeof want, "train=%s\n", tp("train-images-idx3-ubyte.gz"));
    CHECK(data && data[0] == '#' && strstr(data, "\nclasses=4\n") && strstr(data, want) && strstr(data, "\nvalid=/") &&
          strstr(data, "\nlabels=/") && strstr(data, "\nnames=/") && strstr(data, ".labels\n") &&
          strstr(data, "\ntop=1\n") && strstr(data, "\nbackup="), ".data: %s", data ? data : "-");
    dn_data_config dc;
    CHECK_OK(dn_data_config_read(p[3], &dc));
    CHECK(dc.nlabels == 4 && !strcmp(dc.label_names[3], "delta"), "the framework reads the .data");
    dn_data_config_free(&dc);
    char *w = NULL;
    size_t wn = 0;
    CHECK_OK(dn_read_file(p[1], &w, &wn));
    CHECK(w && wn == r->weights_size && !memcmp(w, r->weights, wn), "the trained weights");
    free(w);
    float indep = independent_test_accuracy(p[0], p[1]);
    float rep = reported(report, "test accuracy:");
    CHECK(indep > 0.6f && fabsf(rep - indep) <= 1.0f / NTEST + 1e-4f, "reported test accuracy %.4f vs %.4f", rep, indep);
    CHECK(fabsf(reported(report, "validation accuracy:") - r->accuracy) < 1e-4f, "validation accuracy reported");
    free(cfg);
    free(labels);
    free(data);
}

static char *run_export(const char *dir, int id, const char *prefix, dn_status *s)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    *s = evo_export(dir, id, prefix, f);
    fclose(f);
    return buf;
}

static void test_export(const evo_data *d, const evo_result *r1)
{
    const char *dir = tp("run");
    evo_options o;
    memset(&o, 0, sizeof o);
    o.data_path = data_path;
    o.seed_cfg_path = "seed.cfg";
    o.algo = "tournament";
    o.population = 3;
    o.holdout = 50;
    o.seed = 7;
    evo_store *st = NULL;
    CHECK_OK(evo_store_create(dir, &o, TINY("0.05", "4"), &st));
    if (!st) return;
    evo_genome g = genome(TINY("0.05", "4")), bad = genome(TINY("0.05", "3"));
    evo_eval_options eo = eval_opts(20, 0);
    evo_result r2, r3, r4;
    evo_evaluate(&bad, NULL, NULL, 0, d, &eo, &r2);
    evo_evaluate(&g, NULL, NULL, 0, d, &eo, &r3);
    eo.inherit = 1;
    eo.steps = 40;
    evo_evaluate(&g, &g, r1->weights, r1->weights_size, d, &eo, &r4);
    record(st, 1, 1, -1, &g, r1, -1);
    record(st, 2, 2, -1, &bad, &r2, -1);
    record(st, 3, 3, -1, &g, &r3, -1);
    record(st, 4, 4, 1, &g, &r4, 3);
    evo_store_close(st);
    const evo_result *best = r4.accuracy > r1->accuracy ? &r4 : r1;
    int best_id = best == &r4 ? 4 : 1;

    dn_status s;
    char *rep = run_export(dir, -1, NULL, &s);
    CHECK(s == DN_OK, "export: %s", evo_last_error());
    char head[64];
    snprintf(head, sizeof head, "individual %d ", best_id);
    CHECK(rep && strstr(rep, head) && strstr(rep, "test accuracy:") && strstr(rep, "params:") &&
          strstr(rep, "best/best.cfg"), "report: %s", rep ? rep : "-");
    CHECK(best_id == 1 || strstr(rep, "lineage length: 1 mutation from initial individual 1"), "lineage: %s", rep);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/best/best", dir);
    if (s == DN_OK) check_exported(prefix, best, rep);
    free(rep);

    rep = run_export(dir, 1, tp("out/sub/model"), &s);
    CHECK(s == DN_OK, "explicit id and prefix: %s", evo_last_error());
    if (s == DN_OK) check_exported(tp("out/sub/model"), r1, rep);
    free(rep);

    free(run_export(dir, 2, tp("x"), &s));
    CHECK(s != DN_OK && strstr(evo_last_error(), "individual 2 failed"), "failed: %s", evo_last_error());
    free(run_export(dir, 3, tp("x"), &s));
    CHECK(s != DN_OK && strstr(evo_last_error(), "individual 3 died at evaluation 4"), "dead: %s", evo_last_error());
    free(run_export(dir, 99, tp("x"), &s));
    CHECK(s != DN_OK && strstr(evo_last_error(), "no individual 99"), "unknown: %s", evo_last_error());
    free(run_export(tp("nowhere"), -1, NULL, &s));
    CHECK(s != DN_OK && strstr(evo_last_error(), "options.cfg"), "not a run folder: %s", evo_last_error());
    CHECK(access(tp("x.cfg"), F_OK) != 0, "nothing written on refusal");

    evo_result_free(&r2);
    evo_result_free(&r3);
    evo_result_free(&r4);
    evo_genome_free(&g);
    evo_genome_free(&bad);
}

/* Largest change of any weight between two .weights buffers of one network. */
static float max_change(const void *a, const void *b, size_t size)
{
    const float *x = (const float *)((const char *)a + 20), *y = (const float *)((const char *)b + 20);
    float m = 0;
    for (size_t i = 0; i < (size - 20) / sizeof(float); ++i) m = fabsf(x[i] - y[i]) > m ? fabsf(x[i] - y[i]) : m;
    return m;
}

static void test_schedule(const evo_data *d, const evo_result *r1)
{
    float lr = 0.1f;
    CHECK(fabsf(evo_cosine_rate(lr, 0, 200) - lr / 10) < 1e-7f, "warm-up starts at lr/10: %g", evo_cosine_rate(lr, 0, 200));
    CHECK(fabsf(evo_cosine_rate(lr, 10, 200) - lr) < 1e-6f, "the peak after n/20 steps: %g", evo_cosine_rate(lr, 10, 200));
    CHECK(fabsf(evo_cosine_rate(lr, 199, 200) - lr / 100) < 1e-6f, "ends at lr/100: %g", evo_cosine_rate(lr, 199, 200));
    int mono = 1;
    for (int i = 1; i < 10; ++i) mono &= evo_cosine_rate(lr, i, 200) > evo_cosine_rate(lr, i - 1, 200);
    for (int i = 11; i < 200; ++i) mono &= evo_cosine_rate(lr, i, 200) < evo_cosine_rate(lr, i - 1, 200);
    CHECK(mono, "rises through the warm-up, then falls");
    CHECK(evo_cosine_rate(lr, 0, 1) > 0 && evo_cosine_rate(lr, 0, 2) > 0, "one or two steps still train");

    /* the parent saw 80 batches; a poly schedule over 80 batches has nothing left for its children */
    evo_genome parent = genome(TINY("0.05", "4")), child = genome(TINY("0.05", "4"));
    evo_net_set(&child, "policy", "poly");
    evo_net_set(&child, "power", "4");
    evo_net_set(&child, "max_batches", "80");
    evo_eval_options o = eval_opts(5, 1);
    evo_result cfg, cosine;
    evo_evaluate(&child, &parent, r1->weights, r1->weights_size, d, &o, &cfg);
    o.schedule = EVO_SCHEDULE_COSINE;
    evo_evaluate(&child, &parent, r1->weights, r1->weights_size, d, &o, &cosine);
    CHECK(cfg.outcome == EVO_OK && cosine.outcome == EVO_OK, "both train: %s %s", cfg.reason, cosine.reason);
    if (cfg.outcome == EVO_OK && cosine.outcome == EVO_OK) {
        float a = max_change(cfg.weights, r1->weights, r1->weights_size);
        float b = max_change(cosine.weights, r1->weights, r1->weights_size);
        CHECK(b > 100 * a && b > 1e-4f, "cosine learns (largest change %g), the spent poly schedule does not (%g)", b, a);
    }
    evo_result_free(&cfg);
    evo_result_free(&cosine);

    o.val_images = 10;
    evo_evaluate(&parent, NULL, NULL, 0, d, &o, &cfg);
    float tenths = cfg.accuracy * 10;
    CHECK(cfg.outcome == EVO_OK && cfg.val_images == 10 && fabsf(tenths - roundf(tenths)) < 1e-5f,
          "scored on the first 10 holdout images: %d images, accuracy %g", cfg.val_images, cfg.accuracy);
    evo_result_free(&cfg);
    o.val_images = 0;
    evo_evaluate(&parent, NULL, NULL, 0, d, &o, &cfg);
    CHECK(cfg.val_images == d->holdout.n, "0: the whole holdout (%d)", cfg.val_images);
    evo_result_free(&cfg);
    evo_genome_free(&parent);
    evo_genome_free(&child);
}

/* -augment / -erase to the loader: the .data's keys win, erasing only with augmentation */
static void test_augment(const evo_data *d)
{
    dn_data_config dc;
    memset(&dc, 0, sizeof dc);
    dn_loader_options lo;
    memset(&lo, 0, sizeof lo);
    evo_augment(&lo, &dc, 1, 0.5f);
    CHECK(lo.flip == 1 && lo.crop_pad == 2 && lo.erase == 0.5f, "augment: flip, crop 2, erase 0.5 (%d %d %g)", lo.flip,
          lo.crop_pad, lo.erase);
    evo_augment(&lo, &dc, 0, 0.5f);
    CHECK(lo.flip == 0 && lo.crop_pad == 0 && lo.erase == 0, "no augment: nothing, -erase neither (%g)", lo.erase);
    dc.erase = 0.25f;
    dc.crop_pad = 4;
    evo_augment(&lo, &dc, 0, 0.5f);
    CHECK(lo.crop_pad == 4 && lo.erase == 0.25f, "the .data's crop_pad= and erase= apply always (%d %g)", lo.crop_pad, lo.erase);
    char buf[64];
    CHECK(!strcmp(evo_augment_text(1, 0.5f, buf, sizeof buf), "flip + crop + erasing 0.5") &&
          !strcmp(evo_augment_text(1, 0, buf, sizeof buf), "flip + crop") &&
          !strcmp(evo_augment_text(0, 0.5f, buf, sizeof buf), "no augmentation"), "the log's words");

    /* an evaluation with augmentation trains on erased images: other weights than without erasing, same seed */
    evo_genome g = genome(TINY("0.05", "4"));
    evo_eval_options o = eval_opts(5, 1);
    o.augment = 1;
    evo_result plain, again, erased;
    evo_evaluate(&g, NULL, NULL, 0, d, &o, &plain);
    evo_evaluate(&g, NULL, NULL, 0, d, &o, &again);
    o.erase = 1;
    evo_evaluate(&g, NULL, NULL, 0, d, &o, &erased);
    CHECK(plain.outcome == EVO_OK && again.outcome == EVO_OK && erased.outcome == EVO_OK, "all three train");
    if (plain.outcome == EVO_OK && again.outcome == EVO_OK && erased.outcome == EVO_OK)
        CHECK(max_change(plain.weights, again.weights, plain.weights_size) == 0 &&
              max_change(plain.weights, erased.weights, plain.weights_size) > 0,
              "same seed: the same weights, and other ones with -erase 1 (%g)",
              max_change(plain.weights, erased.weights, plain.weights_size));
    evo_result_free(&plain);
    evo_result_free(&again);
    evo_result_free(&erased);
    evo_genome_free(&g);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_evo_eval.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
    dn_set_warning_sink(quiet_sink, NULL);
    make_dataset();
    test_data_load();
    evo_data d;
    CHECK_OK(evo_data_load(data_path, 100, 3, 0, &d));
    evo_result r1;
    memset(&r1, 0, sizeof r1);
    test_evaluate_trains(&d, &r1);
    test_evaluate_failures(&d);
    if (r1.outcome == EVO_OK) {
        test_inheritance(&d, &r1);
        test_schedule(&d, &r1);
        test_augment(&d);
        test_export(&d, &r1);
    }
    evo_result_free(&r1);
    evo_data_free(&d);
    if (getenv("EVO_TEST_KEEP")) printf("kept %s\n", tmpdir);
    else tl_rm_tree(tmpdir);
    TEST_MAIN_END();
}
