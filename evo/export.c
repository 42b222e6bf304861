/*
 * export.c — an individual of a run folder as ordinary Darknet files, and its
 * test accuracy.
 *
 *   PREFIX.cfg      the plain cfg (no "# evo" lines): what upstream Darknet reads
 *   PREFIX.weights  its trained weights, as the search stored them
 *   PREFIX.labels   the class names of the run's .data (class numbers when it has none)
 *   PREFIX.data     classes, train/valid as absolute paths, labels/names = PREFIX.labels,
 *                   backup, top: `darknet classifier valid|predict PREFIX.data
 *                   PREFIX.cfg PREFIX.weights` works from any folder
 *
 * The default prefix is DIR/best/best (DIR/export/N for individual N); a
 * folder as prefix gets best.* (N.*) in it. After writing, the exported files are
 * read back (cfg parsed, weights loaded, the .data read) and the network is
 * run on the valid= split of the .data — the test set, never seen by the
 * search — so the reported test accuracy is that of what was written.
 *
 * Cell searches can export the winner's cells in another outer stack: the
 * template with F filters in its first cell and N normal cells per stage
 * (evo_template_rescale). Those networks are new, so no weights are written:
 * the report says how to train them with `darknet classifier train`.
 *
 * Budgets (evo_export_within: -max-flops, -max-params, -max-latency): the
 * most accurate model within all of them (evo_ranks_above: level, then
 * accuracy) among those whose weights the search keeps: the living, the best
 * ever and, with -objective costs, the archive (pareto.c), which holds the
 * most accurate model within any budget of those costs. A model with a
 * finished final training (the winner's, DIR/final, or a cheaper model of
 * the front's, DIR/final/front/ID) is taken first when one is within the
 * budget, with its final weights; the search's rank decides among them
 * (the test set chooses nothing).
 *
 * -pareto (evo_export_pareto): every archived model into one folder, named
 * by its costs and accuracy (e.g. 1.79MFLOPs-acc91.20-id21), each with its
 * test accuracy, and pareto.tsv: the table of them, cheapest first.
 *
 * A measured test accuracy is also appended to DIR/tests.jsonl (one JSON
 * line: id, test_accuracy, images, out, time), where `darknet evolve report`
 * finds it; failing to record it is a warning, not an error.
 */
#include "evo_internal.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TEST_BATCH 100
#define LINEAGE_SHOWN 12   /* the lineage line lists at most this many steps */

/* ------------------------------------------------------------ small text buffer */

typedef struct { char *s; size_t n; int failed; } text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text *t, const char *fmt, ...)
{
    if (t->failed) return;
    va_list ap;
    va_start(ap, fmt);
    char *piece = NULL;
    int len = vasprintf(&piece, fmt, ap);
    va_end(ap);
    char *ns = len < 0 ? NULL : realloc(t->s, t->n + (size_t)len + 1);
    if (!ns) { free(piece); t->failed = 1; return; }
    memcpy(ns + t->n, piece, (size_t)len + 1);
    t->s = ns;
    t->n += (size_t)len;
    free(piece);
}

static dn_status write_text(const char *path, text *t)
{
    dn_status s = t->failed ? evo_fail(DN_ERR_NOMEM, "%s: out of memory", path)
                            : dn_write_file_atomic(path, t->s ? t->s : "", t->n);
    free(t->s);
    memset(t, 0, sizeof *t);
    return s;
}

/* ------------------------------------------------------------ paths */

/* Absolute form of p (resolved when it exists, else joined to the working folder). */
static char *absolute(const char *p)
{
    char *r = realpath(p, NULL);
    if (r || p[0] == '/') return r ? r : strdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return strdup(p);
    char *out = NULL;
    if (asprintf(&out, "%s/%s", cwd, p) < 0) return NULL;
    return out;
}

/* "key=" + each item of a comma list made absolute. */
static void add_abs_list(text *t, const char *key, const char *list)
{
    add(t, "%s=", key);
    char *copy = strdup(list);
    if (!copy) { t->failed = 1; return; }
    char *save = NULL;
    int first = 1;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *a = absolute(item);
        if (!a) t->failed = 1;
        else add(t, "%s%s", first ? "" : ",", a);
        free(a);
        first = 0;
    }
    add(t, "\n");
    free(copy);
}

/* ------------------------------------------------------------ choosing */

/* The individual to export: -id N, or the best ever (evo_state_best_ever)
 * among those not in skip[0..nskip). */
static dn_status pick(const char *dir, evo_state *s, int id, const int *skip, int nskip, const evo_individual **out)
{
    const evo_individual *best = NULL;
    for (int i = 0; i < s->n; ++i) {
        const evo_individual *v = &s->ind[i];
        int skipped = 0;
        for (int k = 0; k < nskip; ++k) skipped |= skip[k] == v->id;
        if (id >= 0 ? v->id == id : v->outcome == EVO_OK && !skipped && (!best || evo_ranks_above(v, best)))
            best = v;
    }
    if (!best && id < 0 && nskip > 0)
        return evo_fail(DN_ERR_DATA, "%s: no individual with intact files to export", dir);
    if (!best && id < 0)
        return evo_fail(DN_ERR_DATA, "%s: no individual to export (%d evaluations, all failed)", dir, s->evals);
    if (!best) return evo_fail(DN_ERR_ARG, "%s: there is no individual %d (ids below %d)", dir, id, s->next_id);
    if (best->outcome != EVO_OK)
        return evo_fail(DN_ERR_ARG, "%s: individual %d failed at evaluation %d: it has no weights to export",
                             dir, best->id, best->eval);
    *out = best;
    return DN_OK;
}

static int within(const evo_individual *v, const evo_budget *b)
{
    return (b->flops <= 0 || v->flops <= b->flops) && (b->params <= 0 || (double)v->params <= b->params) &&
           (b->latency <= 0 || (v->latency_ms > 0 && v->latency_ms <= b->latency));
}

/* Individual v has a finished final training that is not outdated. */
static int finished(const char *dir, const evo_state *s, const evo_individual *v)
{
    evo_final_info fi;
    return evo_final_read_of(dir, v->id, &fi, NULL) == DN_OK && fi.done && fi.evals >= s->evals;
}

dn_status evo_pick_within(const char *dir, const evo_options *o, evo_state *s, const evo_budget *b, const int *skip,
                          int nskip, int only_finished, const evo_individual **out)
{
    int costs = 0, b_ever = evo_state_best_ever(s), kept = 0;
    DN_TRY(evo_options_costs(o, &costs));
    const evo_individual *best = NULL;
    double least[3] = {INFINITY, INFINITY, INFINITY};   /* flops, params, latency of the kept */
    for (int i = 0; i < s->n; ++i) {
        const evo_individual *v = &s->ind[i];
        int skipped = 0;
        for (int k = 0; k < nskip; ++k) skipped |= skip[k] == v->id;
        if (v->outcome != EVO_OK || skipped ||
            !(v->alive || i == b_ever || (costs && evo_pareto_member(s, v->id))))
            continue;
        ++kept;
        if (v->flops < least[0]) least[0] = v->flops;
        if ((double)v->params < least[1]) least[1] = (double)v->params;
        if (v->latency_ms > 0 && v->latency_ms < least[2]) least[2] = v->latency_ms;
        if (within(v, b) && (!best || evo_ranks_above(v, best)) && (!only_finished || finished(dir, s, v))) best = v;
    }
    if (best) { *out = best; return DN_OK; }
    if (only_finished && kept) return evo_fail(DN_ERR_DATA, "%s: no final-trained model within the budget", dir);
    if (!kept) return evo_fail(DN_ERR_DATA, "%s: no model to export (%d evaluations, none kept)", dir, s->evals);
    if (b->latency > 0 && isinf(least[2]))
        return evo_fail(DN_ERR_ARG, "%s: this search measured no latency (run it with -objective acc,latency)", dir);
    char lat[48] = "";
    if (!isinf(least[2])) snprintf(lat, sizeof lat, ", %.3g ms", least[2]);
    return evo_fail(DN_ERR_ARG, "%s: no kept model is within the budget (the least of the kept: %.4g MFLOPs, %.0f "
                    "params%s); %s", dir, least[0] / 1e6, least[1], lat,
                    costs ? "the archive holds every trade-off the search found"
                          : "a search with -objective acc,flops (or params, latency) keeps a model for every budget");
}

/* v's cfg and weights, the weights checked against the cfg. Both files of an
 * individual are written once, atomically, and never changed, so what loads
 * is a consistent pair. */
static dn_status load_chosen(evo_store *st, const evo_individual *v, char **cfg, void **w, size_t *wn)
{
    dn_status s = evo_store_check_individual(st, v->id);
    if (s == DN_OK) s = evo_store_load_individual(st, v->id, cfg, w, wn);
    if (s == DN_OK) return DN_OK;
    char *wpath = NULL;
    struct stat sb;
    int gone = asprintf(&wpath, "%s/weights/%d.weights", evo_store_dir(st), v->id) >= 0 && stat(wpath, &sb) != 0;
    free(wpath);
    if (!v->alive && gone)
        return evo_fail(DN_ERR_ARG, "%s: individual %d died at evaluation %d and its weights were deleted "
                             "(only the living, the best ever, the first initial individual and, with -objective costs, the archive keep "
                             "weights)",
                             evo_store_dir(st), v->id, v->died_at);
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", evo_last_error());
    return evo_fail(s, "individual %d: %s", v->id, msg);
}

/* ------------------------------------------------------------ writing */

typedef struct { char *cfg, *weights, *labels, *data; } export_paths;

static void paths_free(export_paths *p)
{
    free(p->cfg);
    free(p->weights);
    free(p->labels);
    free(p->data);
}

static dn_status make_paths(const char *prefix, export_paths *p)
{
    memset(p, 0, sizeof *p);
    if (asprintf(&p->cfg, "%s.cfg", prefix) < 0) p->cfg = NULL;
    if (asprintf(&p->weights, "%s.weights", prefix) < 0) p->weights = NULL;
    if (asprintf(&p->labels, "%s.labels", prefix) < 0) p->labels = NULL;
    if (asprintf(&p->data, "%s.data", prefix) < 0) p->data = NULL;
    if (p->cfg && p->weights && p->labels && p->data) return DN_OK;
    paths_free(p);
    return evo_fail(DN_ERR_NOMEM, "out of memory");
}

static dn_status write_plain_cfg(const char *annotated, int id, const char *path)
{
    char name[64];
    snprintf(name, sizeof name, "individual %d", id);
    evo_genome g;
    if (evo_genome_parse(annotated, name, &g) != DN_OK) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", evo_last_error());
        return evo_fail(DN_ERR_PARSE, "%s", msg);
    }
    char *plain = NULL;
    dn_status s = evo_genome_emit(&g, 0, &plain);
    evo_genome_free(&g);
    if (s != DN_OK) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", evo_last_error());
        return evo_fail(s, "%s", msg);
    }
    s = dn_write_file_atomic(path, plain, strlen(plain));
    free(plain);
    return s;
}

static dn_status write_labels(const dn_data_config *dc, const char *path)
{
    text t = {0};
    if (dc->nlabels > 0)
        for (int i = 0; i < dc->nlabels; ++i) add(&t, "%s\n", dc->label_names[i]);
    else
        for (int i = 0; i < dc->classes; ++i) add(&t, "%d\n", i);
    return write_text(path, &t);
}

static dn_status write_data(const dn_data_config *dc, const export_paths *p, int id, const char *dir)
{
    char *labels = absolute(p->labels);
    if (!labels) return evo_fail(DN_ERR_NOMEM, "out of memory");
    text t = {0};
    add(&t, "# written by darknet evolve export: individual %d of %s\n", id, dir);
    add(&t, "classes=%d\n", dc->classes);
    add_abs_list(&t, "train", dc->train);
    if (dc->valid) add_abs_list(&t, "valid", dc->valid);
    if (dc->train_labels) add_abs_list(&t, "train_labels", dc->train_labels);
    if (dc->valid_labels) add_abs_list(&t, "valid_labels", dc->valid_labels);
    add(&t, "labels=%s\nnames=%s\n", labels, labels);
    add(&t, "backup=%s\ntop=%d\n", dc->backup ? dc->backup : "backup/", dc->top);
    free(labels);
    return write_text(p->data, &t);
}

/* ------------------------------------------------------------ measuring */

typedef struct { int has_test; int n; float accuracy; char *valid; } test_result;

/* Reads the exported files back and runs the network on the test split. */
static dn_status measure(const export_paths *p, test_result *tr)
{
    memset(tr, 0, sizeof *tr);
    dn_data_config dc;
    if (dn_data_config_read(p->data, &dc) != DN_OK) return DN_ERR_PARSE;
    dn_parse_options po = {.batch = TEST_BATCH, .quiet = 1};
    dn_network *net = NULL;
    dn_split test;
    memset(&test, 0, sizeof test);
    dn_status s = dn_network_parse_file(p->cfg, &po, &net);
    if (s == DN_OK) s = dn_weights_load(net, p->weights);
    if (s != DN_OK) s = dn_fail_context(s, "reading the exported files back");
    if (s == DN_OK && dc.valid) {
        tr->has_test = 1;
        tr->valid = strdup(dc.valid);
        s = dn_split_load(&dc, 1, 0, &test);
        if (s != DN_OK) s = dn_fail_context(s, "the test set");
        if (s == DN_OK) { tr->n = test.n; s = evo_split_accuracy(net, &test, &tr->accuracy); }
    }
    dn_split_free(&test);
    dn_network_free(net);
    dn_data_config_free(&dc);
    return s;
}

/* ------------------------------------------------------------ report */

/* Mutations between v and its initial ancestor; *root gets that ancestor. */
static int lineage_length(evo_state *s, const evo_individual *v, int *root)
{
    int len = 0;
    *root = v->id;
    for (const evo_individual *a = v; a && a->parent >= 0 && len <= s->n; a = evo_state_find(s, a->parent)) {
        ++len;
        *root = a->parent;
    }
    return len;
}

static void print_lineage(FILE *f, evo_state *s, const evo_individual *v, int len)
{
    if (len == 0 || len > LINEAGE_SHOWN) return;
    const evo_individual *chain[LINEAGE_SHOWN + 1];
    int n = 0;
    for (const evo_individual *a = v; a && n <= len; a = a->parent >= 0 ? evo_state_find(s, a->parent) : NULL)
        chain[n++] = a;
    fprintf(f, "  lineage: %d", chain[n - 1]->id);
    for (int i = n - 2; i >= 0; --i) fprintf(f, " -> %d (%s)", chain[i]->id, evo_mutation_name(chain[i]->mutation));
    fputc('\n', f);
}

/* Size of the network of cfg text (shape inference only); DN_OK when it builds. */
static dn_status cfg_cost(const char *text, const char *name, evo_cost *cost)
{
    evo_genome g;
    DN_TRY(evo_genome_parse(text, name, &g));
    dn_status s = evo_genome_check(&g, NULL, cost);
    evo_genome_free(&g);
    return s;
}

static void report_export(FILE *f, const char *dir, evo_state *s, const evo_individual *v, const export_paths *p,
                          const test_result *tr, const char *cfg_text)
{
    if (!f) return;
    int root, len = lineage_length(s, v, &root);
    fprintf(f, "export: individual %d of %s (evaluation %d, parent %d, %s)\n", v->id, dir, v->eval, v->parent,
            v->alive ? "alive" : "dead");
    fprintf(f, "  lineage length: %d mutation%s from initial individual %d\n", len, len == 1 ? "" : "s", root);
    print_lineage(f, s, v, len);
    fprintf(f, "  validation accuracy: %.2f%% (holdout of the training images, used for selection)\n",
            100.0 * v->accuracy);
    if (tr->has_test)
        fprintf(f, "  test accuracy:       %.2f%% (%d images of %s)\n", 100.0 * tr->accuracy, tr->n, tr->valid);
    else
        fprintf(f, "  test accuracy:       n/a (the .data has no valid= test set)\n");
    evo_cost cost;   /* of the model written: after -final-width, wider than the individual */
    if (cfg_cost(cfg_text, p->cfg, &cost) != DN_OK) cost = (evo_cost){.params = v->params, .flops = v->flops};
    fprintf(f, "  params: %zu, FLOPs: %.4g M per image\n", cost.params, cost.flops / 1e6);
    fprintf(f, "  wrote: %s %s %s %s\n", p->cfg, p->weights, p->data, p->labels);
    char q1[4200], q2[4200], q3[4200];
    fprintf(f, "  check: darknet classifier valid %s %s %s\n", evo_shell_quote(p->data, q1, sizeof q1),
            evo_shell_quote(p->cfg, q2, sizeof q2), evo_shell_quote(p->weights, q3, sizeof q3));
    fprintf(f, "  %s\n", evo_forks_note(cfg_text));
    if (strpbrk(p->data, " \t"))
        fprintf(f, "  note: upstream Darknet removes every space from .data lines, so it cannot read these paths; "
                   "export to a path without spaces for it\n");
    fflush(f);
}

/* ------------------------------------------------------------ recording the test accuracy */

static void record_test(const char *dir, const evo_individual *v, const char *prefix, const test_result *tr)
{
    if (!tr->has_test) return;
    char when[32], *path = NULL, *line = NULL;
    size_t len = 0;
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(when, sizeof when, "?");
    evo_json_writer w;
    evo_json_begin(&w);
    evo_json_int(&w, "id", v->id);
    evo_json_num(&w, "test_accuracy", tr->accuracy);
    evo_json_int(&w, "images", tr->n);
    evo_json_num(&w, "accuracy", v->accuracy);
    evo_json_str(&w, "out", prefix);
    evo_json_str(&w, "time", when);
    if (evo_json_end(&w, &line, &len) != DN_OK || asprintf(&path, "%s/tests.jsonl", dir) < 0) {
        free(line);
        dn_warn("%s/tests.jsonl: cannot record the test accuracy: out of memory", dir);
        return;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    int ok = fd >= 0 && write(fd, line, len) == (ssize_t)len && fsync(fd) == 0;
    if (!ok) dn_warn("%s: cannot record the test accuracy: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    free(line);
    free(path);
}

/* ------------------------------------------------------------ export */

typedef struct { char *cfg; void *w; size_t wn; } loaded;

static dn_status write_all(evo_store *st, const evo_options *o, const evo_individual *v, const loaded *in,
                           const export_paths *p)
{
    const char *cfg = in->cfg;
    const void *w = in->w;
    size_t wn = in->wn;
    dn_data_config dc;
    memset(&dc, 0, sizeof dc);
    dn_status s = write_plain_cfg(cfg, v->id, p->cfg);
    if (s == DN_OK) s = dn_write_file_atomic(p->weights, w, wn);
    if (s == DN_OK && dn_data_config_read(o->data_path, &dc) != DN_OK)
        s = dn_fail_context(DN_ERR_PARSE, "the search's .data (paths in a .data are relative to the working folder: "
                                    "export from the folder the search ran in)");
    if (s == DN_OK) s = write_labels(&dc, p->labels);
    if (s == DN_OK) s = write_data(&dc, p, v->id, evo_store_dir(st));
    dn_data_config_free(&dc);
    return s;
}

/* ------------------------------------------------------------ another width or depth */

/* The run's template (DIR/seed.cfg) rescaled and expanded with v's cells. */
static dn_status scaled_cfg(evo_store *st, const evo_individual *v, int filters, int cells, char **plain,
                            const char **note)
{
    char *cfg = NULL;
    evo_genome tmpl, scaled, ind, out;
    memset(&tmpl, 0, sizeof tmpl); memset(&scaled, 0, sizeof scaled);
    memset(&ind, 0, sizeof ind); memset(&out, 0, sizeof out);
    evo_cells c;
    dn_status s = evo_store_load_seed(st, &tmpl);
    if (s == DN_OK && !evo_genome_has_cells(&tmpl))
        s = evo_fail(DN_ERR_ARG, "%s: -filters / -cells need a cell search (its seed has no [cell] sections)",
                     evo_store_dir(st));
    if (s == DN_OK) s = evo_store_load_individual(st, v->id, &cfg, NULL, NULL);
    if (s == DN_OK) s = evo_genome_parse(cfg, "individual", &ind);
    if (s == DN_OK && !ind.cells) s = evo_fail(DN_ERR_PARSE, "individual %d has no '# evo cells' line", v->id);
    if (s == DN_OK) s = evo_cells_parse(ind.cells, &c);
    if (s == DN_OK) s = evo_template_rescale(&tmpl, filters, cells, &scaled);
    if (s == DN_OK) s = evo_cells_expand(&scaled, &c, &out);
    if (s == DN_OK) s = evo_genome_check(&out, NULL, NULL);
    if (s == DN_OK) s = evo_genome_emit(&out, 0, plain);
    if (s == DN_OK) *note = evo_forks_note(*plain);
    evo_genome_free(&tmpl); evo_genome_free(&scaled); evo_genome_free(&ind); evo_genome_free(&out);
    free(cfg);
    return s;
}

dn_status evo_scaled_cfg(evo_store *st, int id, int filters, int cells, char **plain)
{
    evo_individual v = {.id = id};
    const char *note = NULL;
    return scaled_cfg(st, &v, filters, cells, plain, &note);
}

static dn_status export_scaled(evo_store *st, const evo_options *o, const evo_individual *v, int filters, int cells,
                               const char *prefix, FILE *report)
{
    export_paths p;
    DN_TRY(make_paths(prefix, &p));
    char *plain = NULL;
    const char *note = NULL;
    dn_data_config dc;
    memset(&dc, 0, sizeof dc);
    dn_status s = scaled_cfg(st, v, filters, cells, &plain, &note);
    if (s == DN_OK) s = dn_make_parent_dirs(prefix);
    if (s == DN_OK) s = dn_write_file_atomic(p.cfg, plain, strlen(plain));
    if (s == DN_OK && dn_data_config_read(o->data_path, &dc) != DN_OK)
        s = dn_fail_context(DN_ERR_PARSE, "the search's .data (export from the folder the search ran in)");
    if (s == DN_OK) s = write_labels(&dc, p.labels);
    if (s == DN_OK) s = write_data(&dc, &p, v->id, evo_store_dir(st));
    evo_cost cost = {0};
    if (s == DN_OK && cfg_cost(plain, p.cfg, &cost) != DN_OK) cost = (evo_cost){0};
    if (s == DN_OK && report) {
        fprintf(report, "export: the cells of individual %d of %s (validation %.2f%%) in the template", v->id,
                evo_store_dir(st), 100.0 * v->accuracy);
        if (filters > 0) fprintf(report, " with %d filters", filters);
        if (cells > 0) fprintf(report, ", %d normal cell%s per stage", cells, cells == 1 ? "" : "s");
        fprintf(report, "\n  params: %zu, FLOPs: %.4g M per image, %d layers\n", cost.params, cost.flops / 1e6,
                cost.layers);
        fprintf(report, "  wrote: %s %s %s (no weights: a new network, to train from scratch)\n", p.cfg, p.data,
                p.labels);
        char q1[4200], q2[4200];
        fprintf(report, "  train: darknet classifier train %s %s\n", evo_shell_quote(p.data, q1, sizeof q1),
                evo_shell_quote(p.cfg, q2, sizeof q2));
        if (note) fprintf(report, "  %s\n", note);
        fflush(report);
    }
    dn_data_config_free(&dc);
    free(plain);
    paths_free(&p);
    return s;
}

/* Write v's files, read them back and measure the test accuracy (into
 * *test, -1 without a test set, when test is not NULL). */
static dn_status export_loaded(evo_store *st, const evo_options *o, evo_state *s, const evo_individual *v,
                               const loaded *in, const char *prefix, FILE *report, float *test)
{
    DN_TRY(dn_make_parent_dirs(prefix));
    export_paths p;
    DN_TRY(make_paths(prefix, &p));
    test_result tr = {0};
    dn_status r = write_all(st, o, v, in, &p);
    if (r == DN_OK) r = measure(&p, &tr);
    if (r == DN_OK) report_export(report, evo_store_dir(st), s, v, &p, &tr, in->cfg);
    if (r == DN_OK) record_test(evo_store_dir(st), v, prefix, &tr);
    if (test) *test = tr.has_test ? tr.accuracy : -1;
    free(tr.valid);
    paths_free(&p);
    return r;
}

/* The finished final training of individual v (DIR/final, or DIR/final/front/ID
 * for a cheaper model of the front): its model and weights; 0 when there is
 * none, or one a later evaluation outdated, or one that cannot be read (both
 * with a warning: the search's weights are exported instead). */
static int load_final_of(const char *dir, const evo_state *s, const evo_individual *v, loaded *in, evo_final_info *fi)
{
    char *fdir = NULL, *cpath = NULL, *wpath = NULL;
    if (evo_final_read_of(dir, v->id, fi, &fdir) != DN_OK || !fi->done) { free(fdir); return 0; }
    if (fi->evals < s->evals) {
        dn_warn("%s: the final model of individual %d was trained after evaluation %d, the search has since done %d; "
                "exporting its search weights (darknet evolve -resume or finish -again trains it anew)", fdir, v->id,
                fi->evals, s->evals);
        free(fdir);
        return 0;
    }
    int ok = asprintf(&cpath, "%s/model.cfg", fdir) >= 0 && asprintf(&wpath, "%s/final.weights", fdir) >= 0 &&
             dn_read_file(cpath, &in->cfg, NULL) == DN_OK && dn_read_file(wpath, (char **)&in->w, &in->wn) == DN_OK;
    if (!ok) {
        dn_warn("%s: the finished model cannot be read (%s); exporting the search's weights of individual %d instead",
                fdir, evo_last_error(), v->id);
        free(in->cfg); free(in->w);
        memset(in, 0, sizeof *in);
    }
    free(fdir);
    free(cpath);
    free(wpath);
    return ok;
}

/* The winner's finished final training (DIR/final/) and the individual it
 * trained; 0 when there is none. */
static int load_final(const char *dir, evo_state *s, const evo_individual **v, loaded *in, evo_final_info *fi)
{
    if (evo_final_read(dir, fi) != DN_OK || !fi->done || !(*v = evo_state_find(s, fi->id))) return 0;
    return load_final_of(dir, s, *v, in, fi);
}

/* One try: read the log, choose, load, write. A chosen individual whose
 * files fail is tried once more with the log read again (failed_id), since a
 * running search may have replaced it: it records the new best, then deletes
 * the old one's weights, so a log read after the deletion names the new one. */
typedef struct {
    int id, filters, cells;
    const evo_budget *budget;    /* not NULL: the most accurate kept model within it */
    const char *prefix;
    FILE *report;
    int *skip, nskip;            /* damaged: not taken as the best */
    int failed_id;
} export_job;

static dn_status try_export(const char *dir, export_job *j, int *retry)
{
    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    *retry = 0;
    DN_TRY(evo_store_open_read(dir, &o, &s, &st));
    const evo_individual *v = NULL;
    loaded in = {0};
    evo_final_info fi;
    dn_status r = DN_OK;
    if (j->budget) {
        /* a final-trained model within the budget first: trained longer, on every training image */
        const evo_individual *top = NULL;
        r = evo_pick_within(dir, &o, &s, j->budget, j->skip, j->nskip, 0, &top);
        if (r == DN_OK && evo_pick_within(dir, &o, &s, j->budget, j->skip, j->nskip, 1, &v) != DN_OK) v = top;
        if (r == DN_OK && j->report && v != top)
            fprintf(j->report, "export: individual %d ranks above it in the search (val %.2f%%) but has no final "
                    "training: darknet evolve finish DIR with the same budget trains it\n", top->id, 100.0 * top->accuracy);
        if (r == DN_OK && load_final_of(dir, &s, v, &in, &fi)) {
            if (j->report) fprintf(j->report, "export: the final model of individual %d (after final training)\n", v->id);
            r = export_loaded(st, &o, &s, v, &in, j->prefix, j->report, NULL);
            goto done;
        }
        if (r != DN_OK) goto done;
    } else if (j->id < 0 && j->filters <= 0 && j->cells <= 0 && load_final(dir, &s, &v, &in, &fi)) {
        char aug[64];
        if (j->report)
            fprintf(j->report, "export: the final model of %s: individual %d after final training (%d steps, %.0f s, "
                    "%s, %s)\n", dir, v->id, fi.steps, fi.seconds, fi.scratch ? "from scratch" : "from its weights",
                    evo_augment_text(fi.augment, fi.erase, aug, sizeof aug));
        r = export_loaded(st, &o, &s, v, &in, j->prefix, j->report, NULL);
        goto done;
    }
    if (!j->budget) r = pick(dir, &s, j->id, j->skip, j->nskip, &v);
    if (r == DN_OK && (j->filters > 0 || j->cells > 0)) {
        r = export_scaled(st, &o, v, j->filters, j->cells, j->prefix, j->report);
    } else if (r == DN_OK) {
        r = load_chosen(st, v, &in.cfg, &in.w, &in.wn);
        if (r == DN_OK) {
            r = export_loaded(st, &o, &s, v, &in, j->prefix, j->report, NULL);
        } else if (j->failed_id != v->id) {
            j->failed_id = v->id;   /* read the log again */
            *retry = 1;
        } else if (j->id < 0) {   /* damaged files of the best: the next best */
            dn_warn("%s: cannot export individual %d (validation %.2f%%): %s; taking the next best", dir, v->id,
                    100.0 * v->accuracy, evo_last_error());
            int *ns = realloc(j->skip, (size_t)(j->nskip + 1) * sizeof *ns);
            if (ns) { j->skip = ns; j->skip[j->nskip++] = v->id; *retry = 1; }
        }
    }
done:
    free(in.cfg);
    free(in.w);
    evo_store_close(st);
    evo_state_free(&s);
    evo_options_free(&o);
    return r;
}

dn_status evo_export(const char *dir, int id, const char *prefix, FILE *report)
{
    return evo_export_scaled(dir, id, prefix, 0, 0, report);
}

static dn_status run_job(const char *dir, export_job *j)
{
    dn_status r = DN_OK;
    int retry = 1;
    for (int tries = 0; retry && tries < 100; ++tries) {
        if (tries > 0) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        r = try_export(dir, j, &retry);
    }
    free(j->skip);
    j->skip = NULL;
    return r;
}

/* Export reads the log without the lock, beside a running search that may
 * delete a dead individual's weights once a better one is the best ever:
 * when the chosen individual's files fail, the log is read again. Files that
 * fail twice are damaged: -id N fails, the default takes the next best with
 * a warning. */
/* The files' prefix: as given; a folder (ending in '/' or an existing one)
 * gets "best" or the id as file name; none: DIR/best/best for the best and
 * DIR/export/N for individual N, so that exporting one individual never
 * overwrites the best's export. *out is malloc'd. */
static dn_status resolve_prefix(const char *dir, const char *prefix, int id, char **out)
{
    char name[32] = "best";
    if (id >= 0) snprintf(name, sizeof name, "%d", id);
    size_t len = prefix ? strlen(prefix) : 0;
    struct stat sb;
    int w;
    if (prefix && !len) return evo_fail(DN_ERR_ARG, "export: an empty prefix (e.g. models/winner)");
    if (!prefix) w = asprintf(out, "%s/%s/%s", dir, id >= 0 ? "export" : "best", name);
    else if (prefix[len - 1] == '/' || (stat(prefix, &sb) == 0 && S_ISDIR(sb.st_mode)))
        w = asprintf(out, "%s%s%s", prefix, prefix[len - 1] == '/' ? "" : "/", name);
    else w = asprintf(out, "%s", prefix);
    if (w < 0) { *out = NULL; return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    return DN_OK;
}

dn_status evo_export_scaled(const char *dir, int id, const char *prefix, int filters, int cells, FILE *report)
{
    if (!dir) return evo_fail(DN_ERR_ARG, "evo_export: no run folder");
    char *path = NULL;
    DN_TRY(resolve_prefix(dir, prefix, id, &path));
    export_job j = {.id = id, .filters = filters, .cells = cells, .prefix = path, .report = report,
                    .failed_id = -1};
    dn_status r = run_job(dir, &j);
    free(path);
    return r;
}

dn_status evo_export_within(const char *dir, const evo_budget *budget, const char *prefix, FILE *report)
{
    if (!dir || !budget) return evo_fail(DN_ERR_ARG, "evo_export_within: no run folder or budget");
    if (!(budget->flops > 0 || budget->params > 0 || budget->latency > 0))
        return evo_fail(DN_ERR_ARG, "export: a budget needs -max-flops, -max-params or -max-latency above 0");
    char *path = NULL;
    DN_TRY(resolve_prefix(dir, prefix, -1, &path));
    export_job j = {.id = -1, .budget = budget, .prefix = path, .report = report, .failed_id = -1};
    dn_status r = run_job(dir, &j);
    free(path);
    return r;
}

/* ------------------------------------------------------------ the archive */

/* "1.79MFLOPs-4580params-0.213ms-acc91.20-id21": the run's costs, then accuracy and id. */
static void pareto_name(const evo_individual *v, int costs, char *buf, size_t n)
{
    size_t k = 0;
    if (costs & EVO_COST_FLOPS) k += (size_t)snprintf(buf + k, n - k, "%.3gMFLOPs-", v->flops / 1e6);
    if (k < n && (costs & EVO_COST_PARAMS)) k += (size_t)snprintf(buf + k, n - k, "%zuparams-", v->params);
    if (k < n && (costs & EVO_COST_LATENCY)) k += (size_t)snprintf(buf + k, n - k, "%.3gms-", v->latency_ms);
    if (k < n) snprintf(buf + k, n - k, "acc%.2f-id%d", 100.0 * v->accuracy, v->id);
}

/* The archive's indexes, cheapest first in the run's first cost (accuracy alone: the best). */
static dn_status archive_sorted(evo_state *s, int costs, int **idx, int *n)
{
    DN_TRY(evo_pareto_archive(s, idx, n));
    int c = evo_first_cost(costs);
    for (int i = 1; i < *n; ++i)   /* insertion sort: archives are small */
        for (int j = i; j > 0 && evo_cost_of(&s->ind[(*idx)[j]], c) < evo_cost_of(&s->ind[(*idx)[j - 1]], c); --j) {
            int t = (*idx)[j]; (*idx)[j] = (*idx)[j - 1]; (*idx)[j - 1] = t;
        }
    return DN_OK;
}

/* One archived model into folder/name.*: its final model when final
 * training trained it (the winner, or a cheaper model of the front), else
 * its search weights. Adds its row to tsv. */
static dn_status export_member(evo_store *st, const evo_options *o, evo_state *s, const evo_individual *v,
                               const char *folder, int costs, evo_text *tsv, FILE *report)
{
    char name[160], *prefix = NULL;
    pareto_name(v, costs, name, sizeof name);
    if (asprintf(&prefix, "%s/%s", folder, name) < 0) return evo_fail(DN_ERR_NOMEM, "out of memory");
    loaded in = {0};
    evo_final_info fi;
    int final = load_final_of(evo_store_dir(st), s, v, &in, &fi);
    dn_status r = final ? DN_OK : load_chosen(st, v, &in.cfg, &in.w, &in.wn);
    float test = -1;
    if (r == DN_OK) r = export_loaded(st, o, s, v, &in, prefix, NULL, &test);
    if (r == DN_OK) {
        evo_text_add(tsv, "%d\t%d\t%.4f\t", v->id, v->rung, v->accuracy);
        if (test >= 0) evo_text_add(tsv, "%.4f", test);
        evo_text_add(tsv, "\t%zu\t%.0f\t%.4g\t%.4g\t%s\t%s\n", v->params, v->flops, v->latency_ms,
                     v->latency_batch_ms, final ? "final" : "search", name);
        if (report) {
            fprintf(report, "  %6d %6.2f%% ", v->id, 100.0 * v->accuracy);
            if (test >= 0) fprintf(report, "%6.2f%% ", 100.0 * test); else fprintf(report, "%7s ", "n/a");
            fprintf(report, "%10zu %10.4g %8.3g  %-6s %s\n", v->params, v->flops / 1e6, v->latency_ms,
                    final ? "final" : "search", name);
            fflush(report);
        }
    }
    free(in.cfg);
    free(in.w);
    free(prefix);
    return r;
}

dn_status evo_export_pareto(const char *dir, const char *folder, FILE *report)
{
    if (!dir) return evo_fail(DN_ERR_ARG, "evo_export_pareto: no run folder");
    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    DN_TRY(evo_store_open_read(dir, &o, &s, &st));
    int costs = 0, *idx = NULL, n = 0, written = 0;
    char *out = folder ? strdup(folder) : NULL, *tsv_path = NULL;
    if (!folder && asprintf(&out, "%s/pareto", dir) < 0) out = NULL;
    evo_text tsv = {0};
    dn_status r = out ? evo_options_costs(&o, &costs) : evo_fail(DN_ERR_NOMEM, "out of memory");
    if (r == DN_OK) r = archive_sorted(&s, costs, &idx, &n);
    if (r == DN_OK && n == 0) r = evo_fail(DN_ERR_DATA, "%s: no model to export (%d evaluations, all failed)", dir, s.evals);
    if (r == DN_OK) r = dn_make_dirs(out);
    if (r == DN_OK && report) {
        fprintf(report, "export: the archive of %s (objective %s): %d model%s, cheapest first, into %s/\n", dir,
                evo_objective_name(costs), n, n == 1 ? "" : "s", out);
        if (!costs) fprintf(report, "  (a search on accuracy alone keeps one: -objective acc,flops keeps a front)\n");
        fprintf(report, "  %6s %7s %7s %10s %10s %8s  %-6s %s\n", "id", "val", "test", "params", "MFLOPs", "ms",
                "model", "files");
    }
    evo_text_add(&tsv, "# the archive of %s (objective %s): non-dominated models, cheapest first\n"
                 "# id\tlevel\tval_accuracy\ttest_accuracy\tparams\tflops\tlatency_ms\tlatency_batch_ms\t"
                 "weights\tfiles\n", dir, evo_objective_name(costs));
    for (int k = 0; r == DN_OK && k < n; ++k) {
        dn_status e = export_member(st, &o, &s, &s.ind[idx[k]], out, costs, &tsv, report);
        if (e == DN_OK) ++written;
        else dn_warn("%s: individual %d not exported: %s", dir, s.ind[idx[k]].id, evo_last_error());
    }
    if (r == DN_OK && written == 0) r = evo_fail(DN_ERR_DATA, "%s: none of the %d archived models could be exported", dir, n);
    if (r == DN_OK && asprintf(&tsv_path, "%s/pareto.tsv", out) < 0) r = evo_fail(DN_ERR_NOMEM, "out of memory");
    if (r == DN_OK) r = evo_text_write(&tsv, tsv_path);
    if (r == DN_OK && report) fprintf(report, "  table: %s\n", tsv_path);
    evo_text_free(&tsv);
    free(tsv_path);
    free(out);
    free(idx);
    evo_store_close(st);
    evo_state_free(&s);
    evo_options_free(&o);
    return r;
}
