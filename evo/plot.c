/*
 * plot.c — the progress plot of a search as SVG, written directly (no
 * plotting program at run time), after the papers' signature figure:
 *
 *   every evaluated individual is one dot, <circle class="ind alive|dead|failed"
 *     data-id data-eval>, with a tooltip (<title>); x is its evaluation number
 *     (or the search time when it was recorded), y its validation accuracy;
 *     failed individuals sit in a red band below the axis;
 *   the best validation accuracy so far is an orange step line;
 *   the lineage of the best individual (initial individual -> best) is a green
 *     line through its members, the best a star.
 *
 * Nothing else is drawn as a <circle> (legend dots are paths), so the number
 * of circles is the number of individuals. Colours are attributes, not CSS,
 * so the file looks the same alone and embedded in a page.
 *
 * Large searches: a circle with its tooltip is ~230 bytes and the page
 * embeds up to five plots, so beyond DETAIL_LIMIT individuals the dead and
 * failed ones outside the lineage and the archive are drawn together, as one
 * <path class="p-many ..."> of round dots, one per pixel they cover, with a
 * single tooltip; the living, the lineage and the archive stay circles. A
 * search of 10,000 evaluations then gives plots of tens of kilobytes, not
 * megabytes.
 */
#include "evo_internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Geometry (SVG user units). */
#define PW 860           /* width                          */
#define PH 410           /* height                         */
#define PX0 64           /* plot area: left, right, top, bottom */
#define PX1 836
#define PY0 40
#define PY1 316
#define FAIL_Y 334       /* centre of the failed band      */
#define TICK_Y 364       /* x tick labels                  */

#define C_ALIVE "#1f6fb4"
#define C_DEAD "#9a9a9a"
#define C_FAILED "#d62728"
#define C_BEST "#ff7f0e"
#define C_LINEAGE "#2ca02c"

typedef struct { double lo, hi, step; } axis;

/* Round limits and a 1-2-5 step giving about `ticks` intervals. */
static axis nice_axis(double lo, double hi, int ticks)
{
    if (!(hi > lo)) hi = lo + 1;
    double raw = (hi - lo) / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    axis a = {floor(lo / step + 1e-9) * step, ceil(hi / step - 1e-9) * step, step};
    if (!(a.hi > a.lo)) a.hi = a.lo + step;
    return a;
}

typedef struct {
    axis x, y;
    int over_time;
    double time_unit;    /* seconds per x unit (time plot)  */
    const char *unit;    /* its name                        */
} frame;

static double px(const frame *f, double x) { return PX0 + (x - f->x.lo) / (f->x.hi - f->x.lo) * (PX1 - PX0); }
static double y_px(const axis *a, double y) { return PY1 - (y - a->lo) / (a->hi - a->lo) * (PY1 - PY0); }
static double py(const frame *f, double y) { return y_px(&f->y, y); }

static double x_of(const frame *f, const evo_individual *v)
{
    return f->over_time ? v->elapsed / f->time_unit : (double)v->eval;
}

static double percent(const evo_individual *v) { return 100.0 * v->accuracy; }

/* The axes' ranges: x from 0 to the last evaluation (or time), y around the
 * accuracies of the individuals that trained. */
static frame make_frame(const evo_state *s, int over_time)
{
    frame f;
    memset(&f, 0, sizeof f);
    f.over_time = over_time;
    f.time_unit = 1;
    f.unit = "seconds";
    double xmax = 1, lo = 100, hi = 0, tmax = 0;
    for (int i = 0; i < s->n; ++i) {
        const evo_individual *v = &s->ind[i];
        if (v->eval > xmax) xmax = v->eval;
        if (v->elapsed > tmax) tmax = v->elapsed;
        if (v->outcome != EVO_OK) continue;
        if (percent(v) < lo) lo = percent(v);
        if (percent(v) > hi) hi = percent(v);
    }
    if (over_time) {
        if (tmax >= 7200) { f.time_unit = 3600; f.unit = "hours"; }
        else if (tmax >= 120) { f.time_unit = 60; f.unit = "minutes"; }
        xmax = tmax / f.time_unit > 0 ? tmax / f.time_unit : 1;
    }
    if (hi < lo) { lo = 0; hi = 100; }
    f.x = nice_axis(0, xmax, 8);
    if (!over_time && f.x.step < 1) f.x = (axis){0, ceil(xmax), 1};   /* evaluations are whole */
    f.y = nice_axis(lo, hi, 6);
    if (f.y.lo < 0) f.y.lo = 0;
    if (f.y.hi > 100 && lo < 100) f.y.hi = 100;
    return f;
}

/* A number on an axis: no trailing zeros. */
static void tick_text(char *buf, size_t n, double v, double step)
{
    int digits = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, n, "%.*f", digits, fabs(v) < 1e-12 ? 0.0 : v);
}

/* The white background, the title, and the grid group opened with the
 * accuracy axis's lines (the caller adds its x lines and closes it). */
static void begin_plot(evo_text *t, const char *title, const axis *y)
{
    evo_text_add(t, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", PW, PH);
    evo_text_add(t, "<text x=\"%d\" y=\"20\" font-size=\"14\" font-weight=\"bold\">", PX0);
    evo_text_html(t, title);
    evo_text_add(t, "</text>\n<g class=\"p-grid\" stroke=\"#e4e4e4\" stroke-width=\"1\">\n");
    for (double v = y->lo; v <= y->hi + y->step * 1e-6; v += y->step)
        evo_text_add(t, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>\n", PX0, PX1, y_px(y, v), y_px(y, v));
}

/* The accuracy axis's labels (percent) and name; inside the caller's label group. */
static void accuracy_labels(evo_text *t, const axis *y)
{
    char num[32];
    for (double v = y->lo; v <= y->hi + y->step * 1e-6; v += y->step) {
        tick_text(num, sizeof num, v, y->step);
        evo_text_add(t, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s%%</text>\n", PX0 - 6, y_px(y, v) + 4, num);
    }
    evo_text_add(t, "<text transform=\"translate(16 %d) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">"
                 "validation accuracy</text>\n", (PY0 + PY1) / 2);
}

static void draw_axes(evo_text *t, const frame *f, const char *title)
{
    begin_plot(t, title, &f->y);
    for (double x = f->x.lo; x <= f->x.hi + f->x.step * 1e-6; x += f->x.step)
        evo_text_add(t, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\"/>\n", px(f, x), px(f, x), PY0, PY1);
    evo_text_add(t, "</g>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n",
                 PX0, PY0, PX1 - PX0, PY1 - PY0);
    evo_text_add(t, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"16\" fill=\"#fbe3e3\"/>\n", PX0, FAIL_Y - 8,
                 PX1 - PX0);
    evo_text_add(t, "<g font-size=\"11\" fill=\"#333\">\n<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"%s\">"
                 "failed</text>\n", PX0 - 6, FAIL_Y + 4, C_FAILED);
    accuracy_labels(t, &f->y);
    char num[32];
    for (double x = f->x.lo; x <= f->x.hi + f->x.step * 1e-6; x += f->x.step) {
        tick_text(num, sizeof num, x, f->x.step);
        evo_text_add(t, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", px(f, x), TICK_Y, num);
    }
    evo_text_add(t, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">%s%s%s</text>\n",
                 (PX0 + PX1) / 2, TICK_Y + 24, f->over_time ? "search time (" : "evaluation",
                 f->over_time ? f->unit : "", f->over_time ? ")" : "");
    evo_text_add(t, "</g>\n");
}

/* ------------------------------------------------------------ dots */

#define DETAIL_LIMIT 2000   /* individuals drawn one by one, each a circle with a tooltip */

/* Dots drawn together: one zero-length, round-capped segment per pixel. */
typedef struct {
    evo_text d;              /* the path's data                          */
    unsigned char *seen;     /* (PH, PW) bits: a pixel already has a dot */
    int members;             /* individuals drawn in it                  */
} many;

static void many_add(many *m, double x, double y)
{
    ++m->members;
    long ix = lround(x), iy = lround(y);
    if (ix < 0 || iy < 0 || ix >= PW || iy >= PH) return;
    size_t bit = (size_t)iy * PW + (size_t)ix;
    if (!m->seen && !(m->seen = calloc((size_t)PW * PH / 8 + 1, 1))) { m->d.failed = 1; return; }
    if (m->seen[bit / 8] & (1u << (bit % 8))) return;
    m->seen[bit / 8] |= (unsigned char)(1u << (bit % 8));
    evo_text_add(&m->d, "M%ld %ldh0", ix, iy);
}

/* The path, when it has dots, into t; frees m. */
static void many_end(evo_text *t, many *m, const char *kind, const char *paint)
{
    if (m->d.n > 0 && !m->d.failed)
        evo_text_add(t, "<path class=\"p-many %s\" fill=\"none\" stroke-linecap=\"round\" %s d=\"%s\"><title>%d %s "
                     "individuals drawn together (a large search: the living, the lineage and the archive have "
                     "their details)</title></path>\n", kind, paint, m->d.s, m->members, kind);
    if (m->d.failed) t->failed = 1;
    evo_text_free(&m->d);
    free(m->seen);
    memset(m, 0, sizeof *m);
}

static int in_list(const int *ids, int n, int id)
{
    for (int k = 0; k < n; ++k)
        if (ids[k] == id) return 1;
    return 0;
}

static const char *kind_of(const evo_individual *v)
{
    return v->outcome != EVO_OK ? "failed" : v->alive ? "alive" : "dead";
}

static void dot_tooltip(evo_text *t, const evo_individual *v)
{
    evo_text_add(t, "<title>individual %d, evaluation %d: ", v->id, v->eval);
    if (v->outcome == EVO_OK) evo_text_add(t, "%.2f%%", percent(v));
    else evo_text_add(t, "failed");
    if (v->parent >= 0) evo_text_add(t, ", %s of %d", evo_mutation_name(v->mutation), v->parent);
    else evo_text_add(t, ", %s", v->mutation == EVO_MUT_RANDOM ? "random sample" : "initial");
    if (v->outcome == EVO_OK) {
        if (v->alive) evo_text_add(t, ", alive");
        else evo_text_add(t, ", died at evaluation %d", v->died_at);
    }
    evo_text_add(t, "</title>");
}

/* One kind at a time, so the living are drawn over the dead; in a large
 * search the dead and failed outside the lineage together (many). */
static void draw_dots(evo_text *t, const evo_state *s, const frame *f, const char *kind, const int *lineage,
                      int nlineage)
{
    many m = {0};
    int together = s->n > DETAIL_LIMIT && strcmp(kind, "alive") != 0;
    for (int i = 0; i < s->n; ++i) {
        const evo_individual *v = &s->ind[i];
        const char *k = kind_of(v);
        if (strcmp(k, kind) != 0) continue;
        double x = px(f, x_of(f, v));
        if (together && !in_list(lineage, nlineage, v->id)) {
            many_add(&m, x, !strcmp(k, "failed") ? FAIL_Y : py(f, percent(v)));
            continue;
        }
        if (!strcmp(k, "failed")) {
            evo_text_add(t, "<circle class=\"ind failed\" data-id=\"%d\" data-eval=\"%d\" cx=\"%.1f\" cy=\"%d\" r=\"3\" "
                         "fill=\"none\" stroke=\"%s\" stroke-width=\"1.3\">", v->id, v->eval, x, FAIL_Y, C_FAILED);
        } else {
            int alive = !strcmp(k, "alive");
            evo_text_add(t, "<circle class=\"ind %s\" data-id=\"%d\" data-eval=\"%d\" cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" "
                         "fill=\"%s\" fill-opacity=\"%s\">", k, v->id, v->eval, x, py(f, percent(v)),
                         alive ? "3.5" : "2.8", alive ? C_ALIVE : C_DEAD, alive ? "0.9" : "0.55");
        }
        dot_tooltip(t, v);
        evo_text_add(t, "</circle>\n");
    }
    if (!strcmp(kind, "failed")) many_end(t, &m, kind, "stroke=\"" C_FAILED "\" stroke-width=\"5\" stroke-opacity=\"0.6\"");
    else many_end(t, &m, kind, "stroke=\"" C_DEAD "\" stroke-width=\"5.6\" stroke-opacity=\"0.55\"");
}

/* ------------------------------------------------------------ lines */

/* The best accuracy so far, in event order, as a step line to the last event. */
static void draw_best_so_far(evo_text *t, const evo_state *s, const frame *f)
{
    double best = -1, last_x = 0;
    int started = 0;
    for (int i = 0; i < s->n; ++i) {
        const evo_individual *v = &s->ind[i];
        last_x = px(f, x_of(f, v));
        if (v->outcome != EVO_OK || percent(v) <= best) continue;
        double y = py(f, percent(v));
        if (!started) evo_text_add(t, "<path class=\"p-best\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" "
                                   "d=\"M%.1f %.1f", C_BEST, last_x, y);
        else evo_text_add(t, " H%.1f V%.1f", last_x, y);
        started = 1;
        best = percent(v);
    }
    if (started) evo_text_add(t, " H%.1f\"><title>best validation accuracy so far: %.2f%%</title></path>\n", last_x,
                              best);
}

/* A five-pointed star path centred at (x, y). */
static void star(evo_text *t, double x, double y, double r, const char *attrs)
{
    evo_text_add(t, "<path %s d=\"", attrs);
    for (int k = 0; k < 10; ++k) {
        double a = -M_PI / 2 + k * M_PI / 5, rr = k % 2 ? r * 0.45 : r;
        evo_text_add(t, "%s%.1f %.1f", k ? " L" : "M", x + rr * cos(a), y + rr * sin(a));
    }
    evo_text_add(t, " Z\"/>\n");
}

static void draw_lineage(evo_text *t, const evo_state *s, const frame *f, const int *lineage, int n)
{
    if (n <= 0) return;
    evo_text_add(t, "<polyline class=\"p-lineage\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"",
                 C_LINEAGE);
    const evo_individual *last = NULL;
    for (int k = 0; k < n; ++k) {
        const evo_individual *v = evo_state_find((evo_state *)s, lineage[k]);
        if (!v || v->outcome != EVO_OK) continue;
        evo_text_add(t, "%s%.1f,%.1f", last ? " " : "", px(f, x_of(f, v)), py(f, percent(v)));
        last = v;
    }
    evo_text_add(t, "\"><title>lineage of the best individual</title></polyline>\n");
    if (last) {
        char attrs[160];
        snprintf(attrs, sizeof attrs, "class=\"p-star\" fill=\"%s\" stroke=\"#333\" stroke-width=\"0.8\"", C_BEST);
        star(t, px(f, x_of(f, last)), py(f, percent(last)), 8, attrs);
    }
}

/* ------------------------------------------------------------ legend */

/* A dot drawn as a path (two arcs), so that only individuals are circles. */
static void legend_dot(evo_text *t, double x, double y, double r, const char *paint)
{
    evo_text_add(t, "<path d=\"M%.1f %.1f a%.1f %.1f 0 1 0 %.1f 0 a%.1f %.1f 0 1 0 %.1f 0\" %s/>\n", x - r, y, r, r,
                 2 * r, r, r, -2 * r, paint);
}

static void draw_legend(evo_text *t, int nlineage)
{
    double x = PX0 + 330, y = 16;
    evo_text_add(t, "<g class=\"p-legend\" font-size=\"11\" fill=\"#333\">\n");
    legend_dot(t, x, y, 3.5, "fill=\"" C_ALIVE "\"");
    evo_text_add(t, "<text x=\"%.1f\" y=\"%.1f\">alive</text>\n", x + 7, y + 4);
    x += 50;
    legend_dot(t, x, y, 2.8, "fill=\"" C_DEAD "\" fill-opacity=\"0.55\"");
    evo_text_add(t, "<text x=\"%.1f\" y=\"%.1f\">dead</text>\n", x + 7, y + 4);
    x += 46;
    legend_dot(t, x, y, 3, "fill=\"none\" stroke=\"" C_FAILED "\" stroke-width=\"1.3\"");
    evo_text_add(t, "<text x=\"%.1f\" y=\"%.1f\">failed</text>\n", x + 7, y + 4);
    x += 52;
    evo_text_add(t, "<path d=\"M%.1f %.1f h16\" stroke=\"%s\" stroke-width=\"1.8\"/>\n", x - 4, y, C_BEST);
    evo_text_add(t, "<text x=\"%.1f\" y=\"%.1f\">best so far</text>\n", x + 16, y + 4);
    if (nlineage > 0) {
        x += 86;
        evo_text_add(t, "<path d=\"M%.1f %.1f h16\" stroke=\"%s\" stroke-width=\"1.6\"/>\n", x - 4, y, C_LINEAGE);
        evo_text_add(t, "<text x=\"%.1f\" y=\"%.1f\">lineage of the best</text>\n", x + 16, y + 4);
    }
    evo_text_add(t, "</g>\n");
}

/* ------------------------------------------------------------ the plot */

dn_status evo_plot_progress(const evo_state *s, const int *lineage, int nlineage, int over_time, char **svg)
{
    *svg = NULL;
    if (!s || (nlineage > 0 && !lineage)) return evo_fail(DN_ERR_ARG, "evo_plot_progress: bad arguments");
    frame f = make_frame(s, over_time);
    evo_text t = {0};
    evo_text_add(&t, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"evo-progress\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\">\n", PW, PH, PW, PH);
    draw_axes(&t, &f, over_time ? "Every individual over search time" : "Every individual over evaluations");
    draw_legend(&t, nlineage);
    evo_text_add(&t, "<g class=\"p-dots\">\n");
    draw_dots(&t, s, &f, "dead", lineage, nlineage);
    draw_dots(&t, s, &f, "alive", lineage, nlineage);
    draw_dots(&t, s, &f, "failed", lineage, nlineage);
    evo_text_add(&t, "</g>\n");
    draw_best_so_far(&t, s, &f);
    draw_lineage(&t, s, &f, lineage, nlineage);
    if (s->n == 0)
        evo_text_add(&t, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#666\">no evaluation yet</text>\n",
                     (PX0 + PX1) / 2, (PY0 + PY1) / 2);
    evo_text_add(&t, "</svg>\n");
    if (t.failed) { evo_text_free(&t); return evo_fail(DN_ERR_NOMEM, "out of memory drawing the progress plot"); }
    *svg = t.s;
    return DN_OK;
}

/* ------------------------------------------------------------ the Pareto plot
 *
 * Validation accuracy against one cost (FLOPs, parameters or latency): every
 * successful individual with that cost known is a dot (<circle class="ind
 * alive|dead" data-id>, tooltip with its costs); members of the archive (the
 * run's objectives) are ringed; the front of accuracy against this cost is
 * a step line, with the fronts after 25%, 50% and 75% of the evaluations as
 * fainter ones (how it moved); the seed (the first initial individual that
 * trained) is a diamond. The cost axis is logarithmic when it spans more
 * than a factor of 30.
 */

#define C_FRONT "#ff7f0e"

typedef struct {
    double lo, hi;           /* the cost axis (log10 of it when logx) */
    int logx;
    axis y;
    int cost;
} pframe;

static double cost_x(const pframe *f, double c)
{
    double v = f->logx ? log10(c) : c;
    return PX0 + (v - f->lo) / (f->hi - f->lo) * (PX1 - PX0);
}

static double acc_y(const pframe *f, double percent_acc) { return y_px(&f->y, percent_acc); }

static int plotted(const evo_individual *v, int cost) { return v->outcome == EVO_OK && evo_cost_of(v, cost) > 0; }

static pframe make_pframe(const evo_state *s, int cost)
{
    pframe f = {.cost = cost};
    double cmin = INFINITY, cmax = 0, lo = 100, hi = 0;
    for (int i = 0; i < s->n; ++i) {
        const evo_individual *v = &s->ind[i];
        if (!plotted(v, cost)) continue;
        double c = evo_cost_of(v, cost);
        if (c < cmin) cmin = c;
        if (c > cmax) cmax = c;
        if (percent(v) < lo) lo = percent(v);
        if (percent(v) > hi) hi = percent(v);
    }
    if (!(cmax > 0)) { cmin = 1; cmax = 10; }
    if (hi < lo) { lo = 0; hi = 100; }
    f.logx = cmax / cmin > 30;
    if (f.logx) { f.lo = floor(log10(cmin)); f.hi = ceil(log10(cmax)); if (f.hi <= f.lo) f.hi = f.lo + 1; }
    else { axis a = nice_axis(cmin > cmax / 2 ? cmin * 0.9 : 0, cmax, 6); f.lo = a.lo; f.hi = a.hi; }
    f.y = nice_axis(lo, hi, 6);
    if (f.y.lo < 0) f.y.lo = 0;
    if (f.y.hi > 100 && lo < 100) f.y.hi = 100;
    return f;
}

static const char *cost_label(int cost)
{
    return cost == EVO_COST_FLOPS ? "forward FLOPs per image" : cost == EVO_COST_PARAMS ? "parameters"
                                                                                        : "latency (ms per image, batch 1)";
}

/* 12.3k, 4.5M, 0.052 */
static void cost_text(char *buf, size_t n, double c)
{
    if (c >= 1e9) snprintf(buf, n, "%.3gG", c / 1e9);
    else if (c >= 1e6) snprintf(buf, n, "%.3gM", c / 1e6);
    else if (c >= 1e3) snprintf(buf, n, "%.3gk", c / 1e3);
    else snprintf(buf, n, "%.3g", c);
}

static void draw_pareto_axes(evo_text *t, const pframe *f, const char *title)
{
    begin_plot(t, title, &f->y);
    double ticks[64];
    int nt = 0;
    if (f->logx) {
        for (double d = f->lo; d <= f->hi + 1e-9 && nt < 60; d += 1)
            for (int m = 1; m <= (f->hi - f->lo <= 3 ? 5 : 1) && nt < 60; m += m == 1 ? 1 : 3)
                if (d + log10(m) <= f->hi + 1e-9) ticks[nt++] = pow(10, d) * m;
    } else {
        axis a = nice_axis(f->lo, f->hi, 6);
        for (double x = a.lo; x <= a.hi + a.step * 1e-6 && nt < 60; x += a.step) ticks[nt++] = x;
    }
    for (int k = 0; k < nt; ++k)
        if (!f->logx || ticks[k] > 0)
            evo_text_add(t, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\"/>\n", cost_x(f, ticks[k]),
                         cost_x(f, ticks[k]), PY0, PY1);
    evo_text_add(t, "</g>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n",
                 PX0, PY0, PX1 - PX0, PY1 - PY0);
    evo_text_add(t, "<g font-size=\"11\" fill=\"#333\">\n");
    accuracy_labels(t, &f->y);
    char num[32];
    for (int k = 0; k < nt; ++k) {
        if (f->logx && ticks[k] <= 0) continue;
        cost_text(num, sizeof num, ticks[k]);
        evo_text_add(t, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", cost_x(f, ticks[k]),
                     PY1 + 18, num);
    }
    evo_text_add(t, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">%s%s</text>\n", (PX0 + PX1) / 2,
                 PY1 + 44, cost_label(f->cost), f->logx ? " (log scale)" : "");
    evo_text_add(t, "</g>\n");
}

static void pareto_tooltip(evo_text *t, const evo_individual *v, int archived)
{
    char fl[24], pa[24];
    cost_text(fl, sizeof fl, v->flops);
    cost_text(pa, sizeof pa, (double)v->params);
    evo_text_add(t, "<title>individual %d (evaluation %d, level %d): %.2f%%, %s FLOPs, %s params", v->id, v->eval,
                 v->rung, percent(v), fl, pa);
    if (v->latency_ms > 0) evo_text_add(t, ", %.3g ms (batch 1), %.3g ms per image at the batch", v->latency_ms,
                                        v->latency_batch_ms);
    evo_text_add(t, "%s%s</title>", v->alive ? ", alive" : ", dead", archived ? ", in the archive" : "");
}

/* qsort context: the plot's state and cost (qsort has no argument for it). */
static __thread const evo_state *by_cost_s;
static __thread int by_cost_c;

/* By cost, then the more accurate first. */
static int by_cost(const void *a, const void *b)
{
    const evo_individual *x = &by_cost_s->ind[*(const int *)a], *y = &by_cost_s->ind[*(const int *)b];
    double cx = evo_cost_of(x, by_cost_c), cy = evo_cost_of(y, by_cost_c);
    if (cx != cy) return cx < cy ? -1 : 1;
    return (x->accuracy < y->accuracy) - (x->accuracy > y->accuracy);
}

/* Indexes of the plotted individuals sorted by_cost (malloc'd; *n of them). */
static int *sorted_by_cost(const evo_state *s, int cost, int *n)
{
    int *idx = malloc(((size_t)s->n + 1) * sizeof *idx);
    *n = 0;
    if (!idx) return NULL;
    for (int i = 0; i < s->n; ++i)
        if (plotted(&s->ind[i], cost)) idx[(*n)++] = i;
    by_cost_s = s;
    by_cost_c = cost;
    qsort(idx, (size_t)*n, sizeof *idx, by_cost);
    return idx;
}

/* The front of accuracy against the cost among individuals of evaluations
 * <= upto, as a step line (cheapest first, each more accurate step up);
 * idx[0 .. n): the plotted individuals, sorted_by_cost. */
static void draw_front(evo_text *t, const evo_state *s, const pframe *f, const int *idx, int n, int upto,
                       const char *paint, const char *what)
{
    double best = -1;
    int started = 0;
    for (int k = 0; k < n; ++k) {
        const evo_individual *v = &s->ind[idx[k]];
        if (v->eval > upto || percent(v) <= best) continue;
        double x = cost_x(f, evo_cost_of(v, f->cost)), y = acc_y(f, percent(v));
        if (!started) evo_text_add(t, "<path class=\"p-front\" fill=\"none\" %s d=\"M%.1f %.1f", paint, x, y);
        else evo_text_add(t, " H%.1f V%.1f", x, y);
        started = 1;
        best = percent(v);
    }
    if (started) evo_text_add(t, " H%d\"><title>%s</title></path>\n", PX1, what);
}

dn_status evo_plot_pareto(const evo_state *s, int cost, int seed_id, char **svg)
{
    *svg = NULL;
    if (!s || !(cost == EVO_COST_FLOPS || cost == EVO_COST_PARAMS || cost == EVO_COST_LATENCY))
        return evo_fail(DN_ERR_ARG, "evo_plot_pareto: bad arguments");
    pframe f = make_pframe(s, cost);
    evo_text t = {0};
    char title[96];
    snprintf(title, sizeof title, "Accuracy against %s", cost == EVO_COST_FLOPS ? "FLOPs" : cost == EVO_COST_PARAMS
                                                                               ? "parameters" : "latency");
    evo_text_add(&t, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"evo-pareto\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\">\n", PW, PH, PW, PH);
    draw_pareto_axes(&t, &f, title);
    int drawn = 0, nsorted = 0, *sorted = sorted_by_cost(s, cost, &nsorted);
    if (!sorted) { evo_text_free(&t); return evo_fail(DN_ERR_NOMEM, "out of memory drawing the Pareto plot"); }
    for (int q = 1; q <= 3; ++q) {   /* how the front moved */
        char what[96], paint[96];
        int upto = s->evals * q / 4;
        snprintf(what, sizeof what, "the front after evaluation %d (%d%%)", upto, 25 * q);
        snprintf(paint, sizeof paint, "stroke=\"%s\" stroke-opacity=\"%.2f\" stroke-width=\"1.2\" stroke-dasharray=\"4 3\"",
                 C_FRONT, 0.2 + 0.15 * q);
        if (upto > 0) draw_front(&t, s, &f, sorted, nsorted, upto, paint, what);
    }
    evo_text_add(&t, "<g class=\"p-dots\">\n");
    many m = {0};
    for (int pass = 0; pass < 2; ++pass) {   /* the dead under the living */
        for (int i = 0; i < s->n; ++i) {
            const evo_individual *v = &s->ind[i];
            if (!plotted(v, cost) || v->alive != pass) continue;
            int archived = s->costs && v->archived;
            ++drawn;
            if (nsorted > DETAIL_LIMIT && !v->alive && !archived) {
                many_add(&m, cost_x(&f, evo_cost_of(v, cost)), acc_y(&f, percent(v)));
                continue;
            }
            evo_text_add(&t, "<circle class=\"ind %s%s\" data-id=\"%d\" cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\" "
                         "fill-opacity=\"%s\"%s>", v->alive ? "alive" : "dead", archived ? " archived" : "", v->id,
                         cost_x(&f, evo_cost_of(v, cost)), acc_y(&f, percent(v)), archived ? "4" : v->alive ? "3.5" : "2.8",
                         v->alive ? C_ALIVE : C_DEAD, v->alive ? "0.9" : "0.55",
                         archived ? " stroke=\"" C_FRONT "\" stroke-width=\"1.6\"" : "");
            pareto_tooltip(&t, v, archived);
            evo_text_add(&t, "</circle>\n");
        }
        if (pass == 0) many_end(&t, &m, "dead", "stroke=\"" C_DEAD "\" stroke-width=\"5.6\" stroke-opacity=\"0.55\"");
    }
    evo_text_add(&t, "</g>\n");
    char what[64];
    snprintf(what, sizeof what, "the front after all %d evaluations", s->evals);
    draw_front(&t, s, &f, sorted, nsorted, s->evals, "stroke=\"" C_FRONT "\" stroke-width=\"2\"", what);
    free(sorted);
    const evo_individual *seed = seed_id >= 0 ? evo_state_find((evo_state *)s, seed_id) : NULL;
    if (seed && plotted(seed, cost)) {
        double x = cost_x(&f, evo_cost_of(seed, cost)), y = acc_y(&f, percent(seed));
        evo_text_add(&t, "<path class=\"p-seed\" d=\"M%.1f %.1f l7 7 l-7 7 l-7 -7 Z\" fill=\"%s\" stroke=\"#333\">"
                     "<title>the seed (individual %d): %.2f%%</title></path>\n", x, y - 7, C_LINEAGE, seed->id,
                     percent(seed));
        evo_text_add(&t, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#333\">seed</text>\n", x + 9, y + 4);
    }
    evo_text_add(&t, "<g class=\"p-legend\" font-size=\"11\" fill=\"#333\">\n");
    legend_dot(&t, PX0 + 300, 16, 4, "fill=\"" C_DEAD "\" stroke=\"" C_FRONT "\" stroke-width=\"1.6\"");
    evo_text_add(&t, "<text x=\"%d\" y=\"20\">archive</text>\n", PX0 + 307);
    evo_text_add(&t, "<path d=\"M%d 16 h16\" stroke=\"%s\" stroke-width=\"2\"/><text x=\"%d\" y=\"20\">front</text>\n",
                 PX0 + 362, C_FRONT, PX0 + 382);
    evo_text_add(&t, "<path d=\"M%d 16 h16\" stroke=\"%s\" stroke-opacity=\"0.5\" stroke-dasharray=\"4 3\"/>"
                 "<text x=\"%d\" y=\"20\">front at 25/50/75%%</text>\n", PX0 + 420, C_FRONT, PX0 + 440);
    evo_text_add(&t, "</g>\n");
    if (!drawn)
        evo_text_add(&t, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#666\">no individual with this cost "
                     "measured yet</text>\n", (PX0 + PX1) / 2, (PY0 + PY1) / 2);
    evo_text_add(&t, "</svg>\n");
    if (t.failed) { evo_text_free(&t); return evo_fail(DN_ERR_NOMEM, "out of memory drawing the Pareto plot"); }
    *svg = t.s;
    return DN_OK;
}
