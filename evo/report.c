/*
 * report.c — `darknet evolve report DIR [-out FILE]`: what a search did, as
 * one self-contained HTML page (every figure inline, no scripts, no external
 * references) plus the figures as files next to it:
 *
 *   index.html                   (default DIR/report/index.html) summary table, progress plots,
 *                                the best individual's lineage, architecture diagrams, failures
 *   progress.svg                 every individual over evaluations (plot.c)
 *   progress-time.svg            the same over search time
 *   arch-<id>.dot / .svg / .cfg  network diagram and cfg of the best individual and of up to
 *                                three ancestors evenly spaced along its lineage (and of -id N)
 *   cells-<id>-normal|reduction.dot / .svg   cell searches: the individual's two cells
 *
 * The run folder is only read (evo_store_read: options and the replayed
 * event log; individuals/<id>.cfg), so a report can be made while the search
 * runs: a partial last line of events.jsonl is skipped with a note. The test
 * accuracy is shown when `darknet evolve export` measured one (it appends it
 * to DIR/tests.jsonl). The diagrams are rendered by Graphviz `dot`; without
 * it the .dot files are still written and the page says how to render them.
 */
#include "evo_internal.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ANCESTORS_DRAWN 3    /* ancestors of the best with a diagram     */
#define FAILURES_LISTED 50   /* failures listed by name on the page       */

typedef struct { int id, images; double accuracy; char *out; } test_record;

/* An individual with diagrams on the page. */
typedef struct {
    int id;
    const char *role;        /* "the best", "ancestor", "asked for"        */
    int step;                /* its place in the lineage (0: the initial individual), -1: not in it */
    int rendered;            /* the SVGs were written                     */
    char *note;              /* why not, when dot was there               */
    char *cells;             /* cell searches: its cells as text          */
    int layers;
} figure;

typedef struct {
    const char *dir;
    FILE *log;
    evo_options o;
    evo_state s;
    char **reason;           /* (s.n) why each failed, NULL when not recorded */
    int retried, retried_ok; /* children that diverged, were trained again at half the rate; of them, ok */
    int torn;                /* events.jsonl ends in a partial line          */
    test_record *tests; int ntests;
    const evo_individual *best, *baseline;
    int *lineage; int nlineage;   /* ids, the initial individual first */
    figure *fig; int nfig;
    char *page, *folder;
    int has_dot;
    int cells;               /* a cell search (the seed is a template)    */
    evo_final_info final;    /* DIR/final/result.json (done 0: none)       */
    int costs;               /* -objective: EVO_COST_* bits (0: accuracy alone) */
    int refresh;             /* > 0: a live page, reloaded every refresh seconds */
} report;

static char *join(const char *a, const char *b)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", a, b) < 0) return NULL;
    return p;
}

static void report_free(report *r)
{
    for (int i = 0; r->reason && i < r->s.n; ++i) free(r->reason[i]);
    free(r->reason);
    for (int i = 0; i < r->ntests; ++i) free(r->tests[i].out);
    free(r->tests);
    for (int i = 0; i < r->nfig; ++i) { free(r->fig[i].note); free(r->fig[i].cells); }
    free(r->fig);
    free(r->lineage);
    free(r->page);
    free(r->folder);
    evo_state_free(&r->s);
    evo_options_free(&r->o);
}

static void note(const report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const report *r, const char *fmt, ...)
{
    if (!r->log) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(r->log, "report: ");
    vfprintf(r->log, fmt, ap);
    fputc('\n', r->log);
    va_end(ap);
}

/* ------------------------------------------------------------ reading the run */

static dn_status check_run_folder(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) return evo_fail(DN_ERR_IO, "%s: no such run folder: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return evo_fail(DN_ERR_IO, "%s: not a folder (a run folder of darknet evolve)", dir);
    char *opt = join(dir, "options.cfg"), *ev = join(dir, "events.jsonl");
    dn_status s = opt && ev ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
    if (s == DN_OK && stat(opt, &sb) != 0)
        s = evo_fail(DN_ERR_IO, "%s: missing: %s is not a run folder of darknet evolve", opt, dir);
    if (s == DN_OK && stat(ev, &sb) != 0)
        s = evo_fail(DN_ERR_IO, "%s: missing: the run folder has no event log", ev);
    free(opt);
    free(ev);
    return s;
}

static int index_of(const evo_state *s, int id)
{
    for (int i = 0; i < s->n; ++i)
        if (s->ind[i].id == id) return i;
    return -1;
}

/* The reason of every failed individual (the replayed state keeps none) and
 * the count of retried children. */
static void take_reason(report *r, const char *line, size_t len)
{
    evo_json_object o;
    if (evo_json_parse(line, len, &o) != DN_OK) return;
    const evo_json_field *id = evo_json_get(&o, "id"), *why = evo_json_get(&o, "reason");
    const evo_json_field *retried = evo_json_get(&o, "retried"), *outcome = evo_json_get(&o, "outcome");
    if (retried && retried->type == EVO_JSON_STRING) {
        r->retried++;
        r->retried_ok += outcome && outcome->type == EVO_JSON_STRING && !strcmp(outcome->str, "ok");
    }
    if (id && id->type == EVO_JSON_NUMBER && why && why->type == EVO_JSON_STRING) {
        int i = index_of(&r->s, (int)id->num);
        if (i >= 0 && !r->reason[i]) r->reason[i] = strdup(why->str);
    }
    evo_json_object_free(&o);
}

static dn_status read_reasons(report *r)
{
    r->reason = calloc((size_t)(r->s.n ? r->s.n : 1), sizeof *r->reason);
    char *path = join(r->dir, "events.jsonl"), *text = NULL;
    size_t size = 0;
    dn_status s = r->reason && path ? dn_read_file(path, &text, &size) : evo_fail(DN_ERR_NOMEM, "out of memory");
    for (const char *p = text; s == DN_OK && p < text + size;) {
        const char *nl = memchr(p, '\n', (size_t)(text + size - p));
        if (!nl) { r->torn = strspn(p, " \t\r") < (size_t)(text + size - p); break; }
        size_t n = (size_t)(nl - p);
        if (memmem(p, n, "\"failed\"", 8) || memmem(p, n, "\"retried\"", 9)) take_reason(r, p, n);
        p = nl + 1;
    }
    free(text);
    free(path);
    return s;
}

/* An integer field in [0, INT_MAX], else -1. */
static int json_count(const evo_json_field *f)
{
    return f && f->type == EVO_JSON_NUMBER && f->is_int && f->num >= 0 && f->num <= 2147483647.0 ? (int)f->num : -1;
}

/* DIR/tests.jsonl: the test accuracies `darknet evolve export` measured
 * (lines that do not read are passed over: the page only shows them). */
static void read_tests(report *r)
{
    char *path = join(r->dir, "tests.jsonl"), *text = NULL;
    size_t size = 0;
    struct stat sb;
    if (!path || stat(path, &sb) != 0 || dn_read_file(path, &text, &size) != DN_OK) { free(path); return; }
    for (char *p = text, *nl; p < text + size && (nl = memchr(p, '\n', (size_t)(text + size - p))); p = nl + 1) {
        evo_json_object o;
        if (evo_json_parse(p, (size_t)(nl - p), &o) != DN_OK) continue;
        const evo_json_field *id = evo_json_get(&o, "id"), *acc = evo_json_get(&o, "test_accuracy");
        const evo_json_field *n = evo_json_get(&o, "images"), *out = evo_json_get(&o, "out");
        test_record *nt = json_count(id) >= 0 && acc && acc->type == EVO_JSON_NUMBER
                              ? realloc(r->tests, (size_t)(r->ntests + 1) * sizeof *nt) : NULL;
        if (nt) {
            r->tests = nt;
            nt[r->ntests++] = (test_record){json_count(id), json_count(n), acc->num,
                                            out && out->type == EVO_JSON_STRING ? strdup(out->str) : NULL};
        }
        evo_json_object_free(&o);
    }
    free(text);
    free(path);
}

/* The latest test measurement of individual id, or NULL. */
static const test_record *test_of(const report *r, int id)
{
    for (int i = r->ntests - 1; i >= 0; --i)
        if (r->tests[i].id == id) return &r->tests[i];
    return NULL;
}

/* The best individual ever evaluated (ties: the older), as export picks it,
 * and the baseline: the first initial individual that trained. */
static void find_best(report *r)
{
    for (int i = 0; i < r->s.n; ++i) {
        const evo_individual *v = &r->s.ind[i];
        if (v->outcome != EVO_OK) continue;
        if (!r->best || evo_ranks_above(v, r->best)) r->best = v;   /* ties: the earlier, as evo_state_best_ever */
        if (v->parent < 0 && (!r->baseline || v->eval < r->baseline->eval)) r->baseline = v;
    }
}

/* Ancestors of the best back to its initial individual (parent -1). */
static dn_status build_lineage(report *r)
{
    if (!r->best) return DN_OK;
    r->lineage = malloc((size_t)(r->s.n + 1) * sizeof *r->lineage);
    if (!r->lineage) return evo_fail(DN_ERR_NOMEM, "out of memory");
    const evo_individual *v = r->best;
    while (v && r->nlineage <= r->s.n) {
        r->lineage[r->nlineage++] = v->id;
        v = v->parent >= 0 ? evo_state_find(&r->s, v->parent) : NULL;
    }
    for (int i = 0, j = r->nlineage - 1; i < j; ++i, --j) {
        int x = r->lineage[i];
        r->lineage[i] = r->lineage[j];
        r->lineage[j] = x;
    }
    return DN_OK;
}

/* DIR/seed.cfg has [cell] sections (0 when it cannot be read). */
static int seed_has_cells(const char *dir)
{
    char *path = join(dir, "seed.cfg"), *text = NULL;
    evo_genome g;
    int cells = 0;
    if (path && dn_read_file(path, &text, NULL) == DN_OK && evo_genome_parse(text, path, &g) == DN_OK) {
        cells = evo_genome_has_cells(&g);
        evo_genome_free(&g);
    }
    free(text);
    free(path);
    return cells;
}

static dn_status read_run(report *r)
{
    if (evo_final_read(r->dir, &r->final) != DN_OK) {
        note(r, "%s/final/result.json cannot be read: %s", r->dir, evo_last_error());
        memset(&r->final, 0, sizeof r->final);
    }
    DN_TRY(check_run_folder(r->dir));
    DN_TRY(evo_store_read(r->dir, &r->o, &r->s));
    DN_TRY(evo_options_costs(&r->o, &r->costs));
    DN_TRY(read_reasons(r));   /* a partial last line: the store has warned, the page says so */
    read_tests(r);
    r->cells = seed_has_cells(r->dir);
    find_best(r);
    return build_lineage(r);
}

/* ------------------------------------------------------------ choosing the figures */

static dn_status add_figure(report *r, int id, const char *role, int step)
{
    for (int i = 0; i < r->nfig; ++i)
        if (r->fig[i].id == id) return DN_OK;
    figure *nf = realloc(r->fig, (size_t)(r->nfig + 1) * sizeof *nf);
    if (!nf) return evo_fail(DN_ERR_NOMEM, "out of memory");
    r->fig = nf;
    nf[r->nfig++] = (figure){.id = id, .role = role, .step = step};
    return DN_OK;
}

/* The best, up to ANCESTORS_DRAWN ancestors evenly spaced along its lineage
 * (the initial individual first of them), then the ones asked for. */
static dn_status choose_figures(report *r, const evo_report_options *ro)
{
    int last = r->nlineage - 1;
    if (last >= 0) DN_TRY(add_figure(r, r->lineage[last], "the best", last));
    int m = last < ANCESTORS_DRAWN ? last : ANCESTORS_DRAWN;
    for (int k = m - 1; k >= 0; --k) {
        int step = (int)((double)k * last / m + 0.5);
        DN_TRY(add_figure(r, r->lineage[step], "ancestor", step));
    }
    for (int i = 0; ro && i < ro->nids; ++i) {
        if (!evo_state_find(&r->s, ro->ids[i]))
            return evo_fail(DN_ERR_ARG, "%s: there is no individual %d (%d evaluations, ids below %d)", r->dir,
                            ro->ids[i], r->s.evals, r->s.next_id);
        int step = -1;
        for (int k = 0; k < r->nlineage; ++k)
            if (r->lineage[k] == ro->ids[i]) step = k;
        DN_TRY(add_figure(r, ro->ids[i], "asked for", step));
    }
    return DN_OK;
}

/* ------------------------------------------------------------ files */

static int is_folder(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The page: DIR/report/index.html, FOLDER/index.html, or the file given. */
static dn_status page_paths(report *r, const char *out)
{
    size_t n = out ? strlen(out) : 0;
    if (!out) r->page = join(r->dir, "report/index.html");
    else if (out[n - 1] == '/' || is_folder(out)) r->page = join(out, "index.html");
    else r->page = strdup(out);
    if (!r->page) return evo_fail(DN_ERR_NOMEM, "out of memory");
    size_t len = strlen(r->page);
    struct stat sb;
    int html = (len > 5 && !strcmp(r->page + len - 5, ".html")) || (len > 4 && !strcmp(r->page + len - 4, ".htm"));
    if (stat(r->page, &sb) == 0 && !html)
        return evo_fail(DN_ERR_ARG, "%s exists and is not an .html file: refusing to overwrite it with the report",
                        r->page);
    char *slash = strrchr(r->page, '/');
    if (!slash) r->folder = strdup(".");
    else r->folder = strndup(r->page, slash == r->page ? 1 : (size_t)(slash - r->page));   /* "/x.html": "/" */
    if (!r->folder) return evo_fail(DN_ERR_NOMEM, "out of memory");
    return dn_make_dirs(r->folder);
}

/* FOLDER/name from text. */
static dn_status write_beside(const report *r, const char *name, const char *text)
{
    char *path = join(r->folder, name);
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status s = dn_write_file_atomic(path, text, strlen(text));
    free(path);
    return s;
}

static const int COSTS[] = {EVO_COST_FLOPS, EVO_COST_PARAMS, EVO_COST_LATENCY};

static void pareto_file(int cost, char *buf, size_t n)
{
    snprintf(buf, n, "pareto-%s.svg", evo_cost_name(cost));
}

static dn_status write_plots(report *r)
{
    for (int over_time = 0; over_time < 2; ++over_time) {
        char *svg = NULL;
        DN_TRY(evo_plot_progress(&r->s, r->lineage, r->nlineage, over_time, &svg));
        dn_status s = write_beside(r, over_time ? "progress-time.svg" : "progress.svg", svg);
        free(svg);
        DN_TRY(s);
    }
    for (int k = 0; k < 3; ++k) {
        if (!(r->costs & COSTS[k])) continue;
        char *svg = NULL, name[48];
        pareto_file(COSTS[k], name, sizeof name);
        DN_TRY(evo_plot_pareto(&r->s, COSTS[k], r->baseline ? r->baseline->id : -1, &svg));
        dn_status s = write_beside(r, name, svg);
        free(svg);
        DN_TRY(s);
    }
    return DN_OK;
}

/* NAME.dot written, and rendered to NAME.svg when dot is there. */
/* 1 when path holds exactly text (an unchanged diagram need not be rendered again). */
static int same_file(const char *path, const char *text)
{
    char *old = NULL;
    size_t n = 0;
    int same = path && dn_read_file(path, &old, &n) == DN_OK && n == strlen(text) && !memcmp(old, text, n);
    free(old);
    return same;
}

static dn_status write_diagram(report *r, figure *f, const char *name, const char *dot)
{
    char file[128];
    snprintf(file, sizeof file, "%s.dot", name);
    char *dot_path = join(r->folder, file), *svg_path = NULL;
    snprintf(file, sizeof file, "%s.svg", name);
    svg_path = join(r->folder, file);
    struct stat sb;
    int cached = r->has_dot && same_file(dot_path, dot) && svg_path && stat(svg_path, &sb) == 0 && sb.st_size > 0;
    snprintf(file, sizeof file, "%s.dot", name);
    dn_status s = cached ? DN_OK : write_beside(r, file, dot);
    if (s != DN_OK || !r->has_dot || cached) {   /* a live report rewrites the page often: dot runs once per diagram */
        free(dot_path);
        free(svg_path);
        return s;
    }
    s = dot_path && svg_path ? evo_dot_render(dot_path, svg_path) : evo_fail(DN_ERR_NOMEM, "out of memory");
    if (s != DN_OK && !f->note) {
        f->note = strdup(evo_last_error());
        note(r, "%s", evo_last_error());
    }
    if (s != DN_OK) f->rendered = 0;
    free(dot_path);
    free(svg_path);
    return DN_OK;   /* a figure that does not render is noted, not fatal */
}

static void figure_title(const report *r, const figure *f, char *buf, size_t n)
{
    const evo_individual *v = evo_state_find((evo_state *)&r->s, f->id);
    if (v->outcome == EVO_OK)
        snprintf(buf, n, "individual %d (%s): validation %.2f%%, %zu params, %.3g MFLOPs", v->id, f->role,
                 100.0 * v->accuracy, v->params, v->flops / 1e6);
    else
        snprintf(buf, n, "individual %d (%s): failed", v->id, f->role);
}

static dn_status write_cells(report *r, figure *f, const char *cells_text)
{
    evo_cells c;
    DN_TRY(evo_cells_parse(cells_text, &c));
    f->cells = strdup(cells_text);
    for (int red = 0; red < 2; ++red) {
        char name[64], title[96], *dot = NULL;
        snprintf(name, sizeof name, "cells-%d-%s", f->id, red ? "reduction" : "normal");
        snprintf(title, sizeof title, "%s cell of individual %d", red ? "reduction" : "normal", f->id);
        DN_TRY(evo_diagram_cell(&c, red, name, title, &dot));
        dn_status s = write_diagram(r, f, name, dot);
        free(dot);
        DN_TRY(s);
    }
    return DN_OK;
}

/* arch-<id>.cfg / .dot / .svg, and the cells of a cell search. */
static dn_status figure_files(report *r, figure *f, const char *cfg, const char *cfg_path)
{
    char name[64], title[512], *dot = NULL;
    snprintf(name, sizeof name, "arch-%d.cfg", f->id);
    DN_TRY(write_beside(r, name, cfg));
    evo_genome g;
    DN_TRY(evo_genome_parse(cfg, cfg_path, &g));
    f->layers = g.n;
    dn_status s = g.cells ? write_cells(r, f, g.cells) : DN_OK;
    evo_genome_free(&g);
    DN_TRY(s);
    figure_title(r, f, title, sizeof title);
    snprintf(name, sizeof name, "arch-%d", f->id);
    DN_TRY(evo_diagram_network(cfg, cfg_path, name, title, &dot));
    s = write_diagram(r, f, name, dot);
    free(dot);
    return s;
}

static dn_status write_figure(report *r, figure *f)
{
    char rel[64];
    snprintf(rel, sizeof rel, "individuals/%d.cfg", f->id);
    char *path = join(r->dir, rel), *cfg = NULL;
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    f->rendered = r->has_dot;
    dn_status s = dn_read_file(path, &cfg, NULL);
    if (s == DN_OK) s = figure_files(r, f, cfg, path);
    free(cfg);
    free(path);
    return s;
}

/* ------------------------------------------------------------ the page: pieces */

/* Seconds as "12.3 s" under a minute, else h:mm:ss. */
static void fmt_time(double sec, char *buf, size_t n)
{
    if (sec < 59.95) { snprintf(buf, n, "%.1f s", sec > 0 ? sec : 0.0); return; }
    long s = (long)(sec + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

/* An SVG file of the page's folder, inline (anything before <svg dropped). */
static void inline_svg(evo_text *t, const report *r, const char *name)
{
    char *path = join(r->folder, name), *svg = NULL;
    if (path && dn_read_file(path, &svg, NULL) == DN_OK && strstr(svg, "<svg")) {
        evo_text_add(t, "%s", strstr(svg, "<svg"));
    } else {
        evo_text_add(t, "<p class=\"note\">");
        evo_text_html(t, name);
        evo_text_add(t, " could not be read</p>\n");
    }
    free(svg);
    free(path);
}

static void add_link(evo_text *t, const char *file, const char *text)
{
    evo_text_add(t, "<a href=\"");
    evo_text_html(t, file);
    evo_text_add(t, "\">");
    evo_text_html(t, text);
    evo_text_add(t, "</a>");
}

static void row(evo_text *t, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void row(evo_text *t, const char *key, const char *fmt, ...)
{
    char value[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    evo_text_add(t, "<tr><th>");
    evo_text_html(t, key);
    evo_text_add(t, "</th><td>");
    evo_text_html(t, value);
    evo_text_add(t, "</td></tr>\n");
}

static const char *page_css =
    "body{font-family:Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}"
    "h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}"
    "h3{font-size:15px;margin-bottom:4px}table{border-collapse:collapse;font-size:13px}"
    "th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}"
    "table.summary th{color:#555;font-weight:normal;width:16em}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;font-size:13px}"
    ".diagram{overflow:auto;max-height:1100px;border:1px solid #eee;padding:6px;margin:6px 0}"
    ".diagram svg,.plot svg{max-width:100%;height:auto}.cells{display:flex;flex-wrap:wrap;gap:12px}"
    ".cells figure{margin:0}figcaption{font-size:12px;color:#555}code{font-size:12px;word-break:break-all}"
    "tr.best td{font-weight:bold}.files{font-size:12px;color:#555}";

static void page_head(evo_text *t, const report *r)
{
    evo_text_add(t, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>darknet evolve "
                    "report: ");
    evo_text_html(t, r->dir);
    evo_text_add(t, "</title>\n");
    if (r->refresh > 0) evo_text_add(t, "<meta http-equiv=\"refresh\" content=\"%d\">\n", r->refresh);
    evo_text_add(t, "<style>%s</style>\n</head>\n<body>\n<h1>darknet evolve: ", page_css);
    evo_text_html(t, r->dir);
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm)) snprintf(when, sizeof when, "?");
    evo_text_add(t, "</h1>\n<p>Report written %s from the run folder after %d evaluation%s.", when, r->s.evals,
                 r->s.evals == 1 ? "" : "s");
    if (r->torn) evo_text_add(t, " The event log ends in a partial line (being written, or left by a kill); it is "
                                 "left out.");
    evo_text_add(t, "</p>\n");
    if (r->refresh > 0)
        evo_text_add(t, "<p class=\"note live\">The search is running: it rewrites this page as it goes, and the page "
                        "reloads itself every %d s until the search ends.</p>\n", r->refresh);
}

/* ------------------------------------------------------------ the page: summary */

static int count_failed(const evo_state *s)
{
    int n = 0;
    for (int i = 0; i < s->n; ++i) n += s->ind[i].outcome != EVO_OK;
    return n;
}

static int count_alive(const evo_state *s)
{
    int n = 0;
    for (int i = 0; i < s->n; ++i) n += s->ind[i].alive != 0;
    return n;
}

static void summary_search(evo_text *t, const report *r)
{
    const evo_options *o = &r->o;
    char sample[32] = "";
    if (o->algo && !strcmp(o->algo, "aging")) snprintf(sample, sizeof sample, ", sample %d", o->sample);
    row(t, "search", "%s, %s; population %d%s, %d steps x batch %d per evaluation, seed %llu",
        o->algo ? o->algo : "tournament", r->cells ? "cells of a template (Regularized Evolution)"
                                                   : "growth from the seed (Large-Scale Evolution)",
        o->population, sample, o->steps, o->batch, (unsigned long long)o->seed);
    row(t, "seed cfg", "%s", o->seed_cfg_path ? o->seed_cfg_path : "?");
    char el[32];
    fmt_time(r->s.elapsed, el, sizeof el);
    if (o->evals > 0)
        row(t, "evaluations", "%d of %d%s", r->s.evals, o->evals,
            r->s.evals < o->evals ? " (budget not reached: the search runs, or -resume continues it)" : "");
    else row(t, "evaluations", "%d", r->s.evals);
    int failed = count_failed(&r->s);
    row(t, "failures", "%d (%.1f%%)", failed, r->s.evals ? 100.0 * failed / r->s.evals : 0.0);
    row(t, "alive", "%d individuals", count_alive(&r->s));
    row(t, "search time", "%s%s (%.0f evaluations per hour)", el, o->hours > 0 ? " of the hours budget" : "",
        r->s.elapsed > 0 ? 3600.0 * r->s.evals / r->s.elapsed : 0.0);
    double stood = evo_stood_for(o, &r->s, r->s.elapsed);
    if (stood >= 0) {
        char st[32], all[32];
        fmt_time(stood, st, sizeof st);
        fmt_time(evo_search_seconds(o), all, sizeof all);
        row(t, "ended early", "its best had stood for %s, -patience %g of the search's %s%s", st, o->patience, all,
            o->final_share > 0 ? ": the time left went to final training" : "");
    }
    int children = r->s.n, levels[9] = {0};
    for (int i = 0; i < r->s.n; ++i)
        if (r->s.ind[i].outcome == EVO_OK) levels[r->s.ind[i].rung < 8 ? r->s.ind[i].rung : 8]++;
    row(t, "training", "%s schedule, %s mutations; %d children, %d promotions", o->schedule ? o->schedule : "cfg",
        o->mutations ? o->mutations : "paper", children, r->s.evals - children);
    if (o->rungs > 1) {
        evo_text lv = {0};
        for (int k = 1; k < o->rungs && k < 9; ++k) evo_text_add(&lv, "%s%d at level %d", k > 1 ? ", " : "", levels[k], k);
        row(t, "fidelity levels", "%d (eta %d; children scored on %d holdout images, promotions on all %d): %s",
            o->rungs, o->eta, o->val_images > 0 && o->val_images < o->holdout ? o->val_images : o->holdout, o->holdout,
            lv.s ? lv.s : "");
        evo_text_free(&lv);
    }
}

static void summary_best(evo_text *t, const report *r)
{
    const evo_individual *b = r->best;
    if (!b) { row(t, "best individual", "none yet (no individual trained)"); return; }
    row(t, "best individual", "%d (evaluation %d, %s)", b->id, b->eval, b->alive ? "alive" : "dead");
    row(t, "best validation accuracy", "%.2f%% (level %d, on %d holdout images)", 100.0 * b->accuracy, b->rung,
        b->val_images);
    const test_record *tr = test_of(r, b->id);
    if (tr) row(t, "test accuracy of the best", "%.2f%% (%d test images, measured by export to %s)",
                100.0 * tr->accuracy, tr->images, tr->out ? tr->out : "?");
    else row(t, "test accuracy of the best", "not measured (run darknet evolve export %s)", r->dir);
    row(t, "parameters", "%zu", b->params);
    row(t, "FLOPs per image", "%.4g M", b->flops / 1e6);
    row(t, "lineage", "%d mutation%s from initial individual %d", r->nlineage - 1, r->nlineage == 2 ? "" : "s",
        r->lineage[0]);
    if (r->baseline) {
        const test_record *bt = test_of(r, r->baseline->id);
        char test[96] = "";
        if (bt) snprintf(test, sizeof test, ", test %.2f%%", 100.0 * bt->accuracy);
        row(t, "seed baseline", "individual %d: validation %.2f%%%s", r->baseline->id, 100.0 * r->baseline->accuracy,
            test);
    }
}

static void summary_final(evo_text *t, const report *r)
{
    const evo_final_info *f = &r->final;
    if (!f->done) {
        row(t, "final training", "%s", r->o.final_share > 0 ? "not finished yet (the search runs, or -resume / "
                                                             "darknet evolve finish continues it)"
                                                           : "off (-final 0): darknet evolve finish DIR runs it");
        return;
    }
    const evo_individual *v = evo_state_find((evo_state *)&r->s, f->id);
    char aug[64];
    row(t, "final training", "individual %d, %d steps in %.0f s on all training images, %s, %s", f->id, f->steps,
        f->seconds, f->scratch ? "from scratch" : "from its search weights",
        evo_augment_text(f->augment, f->erase, aug, sizeof aug));
    if (f->width > 1)
        row(t, "final model", "every hidden layer %g times as wide as the winner (-final-width): %zu "
            "parameters, %.4g MFLOPs (the winner: %zu, %.4g)", f->width, f->params, f->flops / 1e6,
            v ? v->params : 0, v ? v->flops / 1e6 : 0);
    if (f->lr_scale < 1)
        row(t, "final learning rate", "the genome's peak rate times %g: the training diverged at higher rates", f->lr_scale);
    if (f->decay > 0)
        row(t, "final weight decay", "%g (-final-decay or finish -decay; the genome's own is in its cfg)", f->decay);
    if (f->images > 0 && v)
        row(t, "final test accuracy", "%.2f%% on %d test images (its search validation %.2f%%: a gap of %+.2f "
            "points, the optimism of selection plus the extra training)", 100.0 * f->test_accuracy, f->images,
            100.0 * v->accuracy, 100.0 * (v->accuracy - f->test_accuracy));
}

static void page_summary(evo_text *t, const report *r)
{
    evo_text_add(t, "<h2>Summary</h2>\n<table class=\"summary\">\n");
    summary_search(t, r);
    summary_best(t, r);
    summary_final(t, r);
    evo_text_add(t, "</table>\n");
}

/* ------------------------------------------------------------ the page: promotions, final training */

static int by_level_then_accuracy(const void *a, const void *b)
{
    const evo_individual *x = *(const evo_individual *const *)a, *y = *(const evo_individual *const *)b;
    return evo_ranks_above(x, y) ? -1 : evo_ranks_above(y, x) ? 1 : 0;
}

static void page_promotions(evo_text *t, const report *r)
{
    const evo_individual **v = malloc((size_t)(r->s.n + 1) * sizeof *v);
    int n = 0;
    for (int i = 0; v && i < r->s.n; ++i)
        if (r->s.ind[i].rung > 0) v[n++] = &r->s.ind[i];
    if (n > 0) {
        qsort(v, (size_t)n, sizeof *v, by_level_then_accuracy);
        evo_text_add(t, "<h2>Promotions</h2>\n<p>Individuals trained beyond a child's steps (the best of each level "
                        "are promoted to the next and scored on the whole holdout), best first.</p>\n"
                        "<table class=\"lineage\">\n<tr><th>individual</th><th>level</th><th>validation</th>"
                        "<th>images</th><th>steps in all</th><th>params</th><th>fate</th></tr>\n");
        for (int i = 0; i < n && i < 30; ++i)
            evo_text_add(t, "<tr><td class=\"num\">%d</td><td class=\"num\">%d</td><td class=\"num\">%.2f%%</td>"
                            "<td class=\"num\">%d</td><td class=\"num\">%d</td><td class=\"num\">%zu</td><td>%s</td>"
                            "</tr>\n", v[i]->id, v[i]->rung, 100.0 * v[i]->accuracy, v[i]->val_images, v[i]->steps,
                         v[i]->params, v[i]->alive ? "alive" : "dead");
        evo_text_add(t, "</table>\n");
    }
    free(v);
}

/* The final training's loss curve (DIR/final/curve.tsv) as an inline SVG polyline. */
static void page_final(evo_text *t, const report *r)
{
    int st[EVO_CURVE_POINTS];
    float loss[EVO_CURVE_POINTS], hi = 0;
    int n = evo_final_curve(r->dir, st, loss, EVO_CURVE_POINTS);
    for (int i = 0; i < n; ++i) hi = loss[i] > hi ? loss[i] : hi;
    if (n < 2 || hi <= 0) return;
    evo_text_add(t, "<h2>Final training</h2>\n<p>Mean training loss against the step (%d to %d)%s.</p>\n"
                    "<svg width=\"640\" height=\"200\" viewBox=\"0 0 640 200\"><rect x=\"40\" y=\"10\" width=\"590\" "
                    "height=\"170\" fill=\"none\" stroke=\"#999\"/><polyline fill=\"none\" stroke=\"#d62728\" "
                    "stroke-width=\"2\" points=\"", st[0], st[n - 1], r->final.done ? "" : " &mdash; in progress");
    for (int i = 0; i < n; ++i)
        evo_text_add(t, "%.1f,%.1f ", 40 + 590.0 * (st[i] - st[0]) / (st[n - 1] - st[0] ? st[n - 1] - st[0] : 1),
                     180 - 170.0 * loss[i] / hi);
    evo_text_add(t, "\"/><text x=\"36\" y=\"18\" text-anchor=\"end\" font-size=\"11\">%.3g</text>"
                    "<text x=\"36\" y=\"180\" text-anchor=\"end\" font-size=\"11\">0</text></svg>\n", hi);
}

/* ------------------------------------------------------------ the page: accuracy and cost */

static void archive_row(evo_text *t, const report *r, const evo_individual *v)
{
    const test_record *tr = test_of(r, v->id);
    evo_final_info fi;
    char test[48] = "";
    if (evo_final_read_of(r->dir, v->id, &fi, NULL) == DN_OK && fi.done && fi.evals >= r->s.evals && fi.images > 0)
        snprintf(test, sizeof test, "<b>%.2f%%</b> (final)", 100.0 * fi.test_accuracy);
    else if (tr)
        snprintf(test, sizeof test, "%.2f%%", 100.0 * tr->accuracy);
    evo_text_add(t, "<tr><td class=\"num\">%d</td><td class=\"num\">%d</td><td class=\"num\">%.2f%%</td>"
                 "<td class=\"num\">%s</td><td class=\"num\">%zu</td><td class=\"num\">%.4g</td>", v->id, v->rung,
                 100.0 * v->accuracy, test, v->params, v->flops / 1e6);
    if (v->latency_ms > 0)
        evo_text_add(t, "<td class=\"num\">%.3g</td><td class=\"num\">%.3g</td>", v->latency_ms, v->latency_batch_ms);
    else
        evo_text_add(t, "<td></td><td></td>");
    evo_text_add(t, "<td>%s</td></tr>\n", v->alive ? "alive" : "dead (weights kept)");
}

static void page_pareto(evo_text *t, const report *r)
{
    if (!r->costs) return;
    int *idx = NULL, n = 0;
    if (evo_pareto_archive(&r->s, &idx, &n) != DN_OK) {
        evo_text_add(t, "<p class=\"note\">The archive could not be computed: out of memory.</p>\n");
        return;
    }
    evo_text_add(t, "<h2>Accuracy and cost</h2>\n<p>Objective <code>%s</code>: selection compares individuals by "
                    "Pareto dominance (NSGA-II's rank, then crowding distance). Every dot is an individual (hover for "
                    "details); ringed ones are in the archive, the non-dominated models found so far, whose weights "
                    "are kept. The solid line is the front of accuracy against that cost, the dashed ones where it "
                    "was after 25, 50 and 75%% of the evaluations; the diamond is the seed.</p>\n",
                 evo_objective_name(r->costs));
    for (int k = 0; k < 3; ++k) {
        if (!(r->costs & COSTS[k])) continue;
        char name[48];
        pareto_file(COSTS[k], name, sizeof name);
        evo_text_add(t, "<div class=\"plot\">");
        inline_svg(t, r, name);
        evo_text_add(t, "</div>\n");
    }
    evo_text_add(t, "<h3>The archive (%d model%s, in evaluation order)</h3>\n<table>\n<tr><th>id</th><th>level</th>"
                    "<th>validation</th><th>test</th><th>params</th><th>MFLOPs</th><th>ms (batch 1)</th>"
                    "<th>ms per image (batch)</th><th></th></tr>\n", n, n == 1 ? "" : "s");
    for (int k = 0; k < n; ++k) archive_row(t, r, &r->s.ind[idx[k]]);
    evo_text_add(t, "</table>\n<p class=\"files\">Test: of the model after final training (final: the winner and "
                    "cheaper models of the front, <code>-final-front</code>), else as export measured the search's "
                    "weights. <code>darknet evolve export DIR -pareto</code> writes them all with their test accuracy; "
                    "<code>-max-flops F</code>, <code>-max-params P</code> or <code>-max-latency MS</code> the most "
                    "accurate within a budget (a final-trained one first; <code>darknet evolve finish DIR -max-flops "
                    "F</code> trains the best within it).</p>\n");
    free(idx);
}

static void page_progress(evo_text *t, const report *r)
{
    evo_text_add(t, "<h2>Progress</h2>\n<p>Every dot is one evaluated individual (hover for details): blue ones are "
                    "alive, grey ones were killed, red rings in the band below failed. The orange line is the best "
                    "validation accuracy so far, the green line the lineage of the best individual (the star).</p>\n"
                    "<div class=\"plot\">");
    inline_svg(t, r, "progress.svg");
    evo_text_add(t, "</div>\n<div class=\"plot\">");
    inline_svg(t, r, "progress-time.svg");
    evo_text_add(t, "</div>\n<p class=\"files\">files: ");
    add_link(t, "progress.svg", "progress.svg");
    evo_text_add(t, " ");
    add_link(t, "progress-time.svg", "progress-time.svg");
    evo_text_add(t, "</p>\n");
}

/* ------------------------------------------------------------ the page: lineage */

static void lineage_row(evo_text *t, const report *r, int step)
{
    const evo_individual *v = evo_state_find((evo_state *)&r->s, r->lineage[step]);
    const evo_individual *p = v->parent >= 0 ? evo_state_find((evo_state *)&r->s, v->parent) : NULL;
    char el[32], change[32] = "", fate[48], test[32] = "";
    fmt_time(v->elapsed, el, sizeof el);
    if (p) snprintf(change, sizeof change, "%+.2f", 100.0 * (v->accuracy - p->accuracy));
    if (v->alive) snprintf(fate, sizeof fate, "alive");
    else snprintf(fate, sizeof fate, "died at %d", v->died_at);
    const test_record *tr = test_of(r, v->id);
    if (tr) snprintf(test, sizeof test, "%.2f%%", 100.0 * tr->accuracy);
    evo_text_add(t, "<tr data-id=\"%d\" data-parent=\"%d\"%s><td class=\"num\">%d</td><td class=\"num\">%d</td>"
                    "<td class=\"num\">%d</td><td>%s</td><td class=\"num\">%.2f%%</td><td class=\"num\">%s</td>"
                    "<td class=\"num\">%d</td><td class=\"num\">%s</td><td class=\"num\">%zu</td>"
                    "<td class=\"num\">%.3g</td><td>%s</td><td class=\"num\">%s</td></tr>\n",
                 v->id, v->parent, v == r->best ? " class=\"best\"" : "", step, v->id, v->parent,
                 v->parent < 0 ? (v->mutation == EVO_MUT_RANDOM ? "random sample" : "initial")
                               : evo_mutation_name(v->mutation),
                 100.0 * v->accuracy, change, v->eval, el, v->params, v->flops / 1e6, fate, test);
}

static void page_lineage(evo_text *t, const report *r)
{
    evo_text_add(t, "<h2>Lineage of the best individual</h2>\n");
    if (!r->best) { evo_text_add(t, "<p>No individual has trained yet.</p>\n"); return; }
    evo_text_add(t, "<p>From the initial individual (step 0, parent &minus;1) to the best, one mutation per step; "
                    "&Delta; is the change in validation accuracy from the parent (points).</p>\n"
                    "<table class=\"lineage\">\n<tr><th>step</th><th>individual</th><th>parent</th><th>mutation</th>"
                    "<th>validation</th><th>&Delta;</th><th>evaluation</th><th>search time</th><th>params</th>"
                    "<th>MFLOPs</th><th>fate</th><th>test</th></tr>\n");
    for (int k = 0; k < r->nlineage; ++k) lineage_row(t, r, k);
    evo_text_add(t, "</table>\n");
}

/* ------------------------------------------------------------ the page: architectures */

static void figure_links(evo_text *t, const figure *f)
{
    char file[64];
    evo_text_add(t, "<p class=\"files\">files:");
    const char *kinds[] = {"arch-%d.svg", "arch-%d.dot", "arch-%d.cfg"};
    for (int k = 0; k < 3; ++k) {
        if (k == 0 && !f->rendered) continue;
        snprintf(file, sizeof file, kinds[k], f->id);
        evo_text_add(t, " ");
        add_link(t, file, file);
    }
    for (int red = 0; f->cells && red < 2; ++red)
        for (int k = f->rendered ? 0 : 1; k < 2; ++k) {
            snprintf(file, sizeof file, "cells-%d-%s.%s", f->id, red ? "reduction" : "normal", k ? "dot" : "svg");
            evo_text_add(t, " ");
            add_link(t, file, file);
        }
    evo_text_add(t, "</p>\n");
}

static void figure_heading(evo_text *t, const report *r, const figure *f)
{
    const evo_individual *v = evo_state_find((evo_state *)&r->s, f->id);
    evo_text_add(t, "<section class=\"arch\" data-id=\"%d\" id=\"individual-%d\">\n<h3>Individual %d: %s", f->id,
                 f->id, f->id, f->role);
    if (f->step >= 0) evo_text_add(t, ", lineage step %d of %d", f->step, r->nlineage - 1);
    evo_text_add(t, "</h3>\n<p>");
    if (v->outcome == EVO_OK) evo_text_add(t, "validation %.2f%%, ", 100.0 * v->accuracy);
    else evo_text_add(t, "failed, ");
    evo_text_add(t, "evaluation %d, %s", v->eval, v->parent < 0 ? "initial" : evo_mutation_name(v->mutation));
    if (v->parent >= 0) evo_text_add(t, " of %d", v->parent);
    evo_text_add(t, "; %d layers, %zu params, %.3g MFLOPs.</p>\n", f->layers, v->params, v->flops / 1e6);
}

static void figure_body(evo_text *t, const report *r, const figure *f)
{
    char file[64];
    if (f->note) {
        evo_text_add(t, "<p class=\"note\">not rendered: ");
        evo_text_html(t, f->note);
        evo_text_add(t, "</p>\n");
    }
    if (f->cells) {
        evo_text_add(t, "<p>cells: <code>");
        evo_text_html(t, f->cells);
        evo_text_add(t, "</code></p>\n");
    }
    if (f->cells && f->rendered) {
        evo_text_add(t, "<div class=\"cells\">\n");
        for (int red = 0; red < 2; ++red) {
            snprintf(file, sizeof file, "cells-%d-%s.svg", f->id, red ? "reduction" : "normal");
            evo_text_add(t, "<figure><figcaption>%s cell</figcaption>", red ? "reduction" : "normal");
            inline_svg(t, r, file);
            evo_text_add(t, "</figure>\n");
        }
        evo_text_add(t, "</div>\n");
    }
    if (f->rendered) {
        snprintf(file, sizeof file, "arch-%d.svg", f->id);
        if (f->cells) evo_text_add(t, "<details><summary>the whole network (%d layers)</summary>\n", f->layers);
        evo_text_add(t, "<div class=\"diagram\">");
        inline_svg(t, r, file);
        evo_text_add(t, "</div>\n%s", f->cells ? "</details>\n" : "");
    }
    figure_links(t, f);
    evo_text_add(t, "</section>\n");
}

static void page_architectures(evo_text *t, const report *r)
{
    evo_text_add(t, "<h2>Architectures</h2>\n");
    if (r->nfig == 0) { evo_text_add(t, "<p>No individual has trained yet.</p>\n"); return; }
    evo_text_add(t, "<p>The best individual and ancestors evenly spaced along its lineage. Boxes are layers "
                    "(type, filters, kernel size/stride, output width x height x channels, gene id: a layer keeps "
                    "its id, and its inherited weights, across mutations); dashed edges are skip connections "
                    "(shortcuts), purple ones the inputs of routes.</p>\n");
    if (!r->has_dot)
        evo_text_add(t, "<p class=\"note\">Graphviz <code>dot</code> was not found, so the diagrams are only written "
                        "as .dot files next to this page. Install Graphviz (Debian: <code>apt-get install graphviz</code>, "
                        "or <code>scripts/setup</code>) and run <code>darknet evolve report</code> again, or render "
                        "one with <code>dot -Tsvg arch-ID.dot -o arch-ID.svg</code>.</p>\n");
    for (int i = 0; i < r->nfig; ++i) {
        figure_heading(t, r, &r->fig[i]);
        figure_body(t, r, &r->fig[i]);
    }
}

/* ------------------------------------------------------------ the page: failures */

static void page_failures(evo_text *t, const report *r)
{
    int failed = count_failed(&r->s), shown = 0;
    evo_text_add(t, "<h2>Failures</h2>\n");
    if (r->retried)
        evo_text_add(t, "<p>%d child%s diverged at %s genome's learning rate and trained again at half of it: "
                        "%d then trained, %d failed again.</p>\n", r->retried, r->retried == 1 ? "" : "ren",
                     r->retried == 1 ? "its" : "their", r->retried_ok, r->retried - r->retried_ok);
    if (failed == 0) { evo_text_add(t, "<p>No individual failed.</p>\n"); return; }
    evo_text_add(t, "<p>%d individual%s failed (diverged, out of memory, or no valid child); each died at once and "
                    "the search went on.</p>\n<table class=\"failures\">\n<tr><th>individual</th><th>parent</th>"
                    "<th>mutation</th><th>evaluation</th><th>reason</th></tr>\n", failed, failed == 1 ? "" : "s");
    for (int i = 0; i < r->s.n && shown < FAILURES_LISTED; ++i) {
        const evo_individual *v = &r->s.ind[i];
        if (v->outcome == EVO_OK) continue;
        evo_text_add(t, "<tr><td class=\"num\">%d</td><td class=\"num\">%d</td><td>%s</td><td class=\"num\">%d</td>"
                        "<td>", v->id, v->parent, evo_mutation_name(v->mutation), v->eval);
        evo_text_html(t, r->reason[i] ? r->reason[i] : "");
        evo_text_add(t, "</td></tr>\n");
        ++shown;
    }
    evo_text_add(t, "</table>\n");
    if (failed > shown)
        evo_text_add(t, "<p>&hellip; and %d more (see events.jsonl in the run folder).</p>\n", failed - shown);
}

static dn_status write_page(report *r)
{
    evo_text t = {0};
    page_head(&t, r);
    page_summary(&t, r);
    page_progress(&t, r);
    page_pareto(&t, r);
    page_final(&t, r);
    page_promotions(&t, r);
    page_lineage(&t, r);
    page_architectures(&t, r);
    page_failures(&t, r);
    evo_text_add(&t, "<p class=\"files\">Written by <code>darknet evolve report</code>.</p>\n</body>\n</html>\n");
    return evo_text_write(&t, r->page);
}

/* ------------------------------------------------------------ entry points */

static dn_status make_report(report *r, const evo_report_options *ro)
{
    DN_TRY(read_run(r));
    DN_TRY(choose_figures(r, ro));
    DN_TRY(page_paths(r, ro ? ro->out : NULL));
    r->has_dot = evo_dot_available();
    if (!r->has_dot && r->nfig > 0)
        note(r, "Graphviz dot is not installed: writing the diagrams as .dot files only (apt-get install graphviz)");
    DN_TRY(write_plots(r));
    for (int i = 0; i < r->nfig; ++i) DN_TRY(write_figure(r, &r->fig[i]));
    return write_page(r);
}

dn_status evo_report(const char *dir, const evo_report_options *ro, FILE *log, char **path)
{
    if (path) *path = NULL;
    if (!dir || !*dir) return evo_fail(DN_ERR_ARG, "evo_report: no run folder");
    if (ro && ro->out && !*ro->out) return evo_fail(DN_ERR_ARG, "evo_report: an empty -out");
    report r;
    memset(&r, 0, sizeof r);
    r.dir = dir;
    r.log = log;
    r.refresh = ro ? ro->refresh : 0;
    dn_status s = make_report(&r, ro);
    if (s == DN_OK && path) {
        *path = r.page;
        r.page = NULL;
    }
    report_free(&r);
    return s;
}

void evo_report_after_search(const char *dir, FILE *log)
{
    if (!log) return;
    char *path = NULL;
    if (evo_report(dir, NULL, log, &path) == DN_OK) fprintf(log, "report: %s\n", path);
    else fprintf(log, "evolve: warning: the report was not written: %s\n", evo_last_error());
    free(path);
    fflush(log);
}
