/*
 * pareto.c — accuracy and cost together (-objective): dominance, the
 * non-dominated rank and crowding distance of NSGA-II (Deb et al. 2002), and
 * the archive of the non-dominated individuals found so far.
 *
 * Objectives, all minimised: the validation error (1 - accuracy) and the
 * costs the user asked for, in the fixed order flops, params, latency:
 *
 *   -objective acc              error only (the default: the more accurate wins)
 *   -objective acc,flops        error and forward FLOPs per image
 *   -objective acc,params,latency ...
 *
 * a dominates b when a is no worse than b in every objective and better in
 * at least one. The rank of an individual within a set is 0 on the set's
 * front (dominated by none), 1 on the front of what is left, and so on. The
 * crowding distance within its rank is the sum over the objectives of the
 * gap between its two neighbours (sorted by that objective), divided by the
 * rank's range of it; the extremes of each objective get infinity, so a
 * front keeps its ends. Selection prefers the lower rank, then the larger
 * distance (the less crowded), then the younger.
 *
 * The archive (evo_individual.archived) is kept as the events arrive: a new
 * score (a child's, or a promoted individual's new one) enters unless an
 * archived model dominates or equals it, and removes the archived models it
 * dominates. So it is the front of the scores recorded, of equal ones the
 * first, except that a model once removed never returns, even if the score
 * that displaced it is later replaced by a promotion (a score on more images
 * may be lower): the store deletes a removed dead model's weights, and the
 * archive never names a model without them. It is a function of the event
 * log, so it survives -resume without a file of its own.
 */
#include "evo_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; int bit; } COSTS[] = {
    {"flops", EVO_COST_FLOPS}, {"params", EVO_COST_PARAMS}, {"latency", EVO_COST_LATENCY}};
#define NCOSTS (int)(sizeof COSTS / sizeof COSTS[0])

dn_status evo_objective_parse(const char *text, int *costs)
{
    *costs = 0;
    if (!text || !*text) return evo_fail(DN_ERR_ARG, "-objective: empty (use acc, or acc with flops, params, latency)");
    char *copy = strdup(text), *rest = copy;
    if (!copy) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status s = DN_OK;
    for (char *w = strsep(&rest, ","); w && s == DN_OK; w = strsep(&rest, ",")) {
        int bit = -1;
        if (!strcmp(w, "acc") || !strcmp(w, "accuracy")) bit = 0;
        for (int i = 0; i < NCOSTS; ++i)
            if (!strcmp(w, COSTS[i].name)) bit = COSTS[i].bit;
        if (bit < 0) s = evo_fail(DN_ERR_ARG, "-objective '%s': '%s' is not an objective (acc, flops, params, latency)", text, w);
        else if (bit && (*costs & bit)) s = evo_fail(DN_ERR_ARG, "-objective '%s': '%s' twice", text, w);
        else *costs |= bit;
    }
    free(copy);
    return s;
}

dn_status evo_options_costs(const evo_options *o, int *costs)
{
    *costs = 0;
    return o->objective && *o->objective ? evo_objective_parse(o->objective, costs) : DN_OK;
}

const char *evo_objective_name(int costs)
{
    static const char *names[8] = {"acc",          "acc,flops",         "acc,params",         "acc,flops,params",
                                   "acc,latency",  "acc,flops,latency", "acc,params,latency", "acc,flops,params,latency"};
    return names[costs & 7];
}

const char *evo_cost_name(int cost)
{
    for (int i = 0; i < NCOSTS; ++i)
        if (COSTS[i].bit == cost) return COSTS[i].name;
    return "accuracy";
}

double evo_cost_of(const evo_individual *v, int cost)
{
    switch (cost) {
    case EVO_COST_FLOPS: return v->flops;
    case EVO_COST_PARAMS: return (double)v->params;
    case EVO_COST_LATENCY: return v->latency_ms;
    default: return 0;
    }
}

int evo_objective_values(const evo_individual *v, int costs, double *out)
{
    int n = 0;
    out[n++] = 1.0 - v->accuracy;
    for (int i = 0; i < NCOSTS; ++i)
        if (costs & COSTS[i].bit) out[n++] = evo_cost_of(v, COSTS[i].bit);
    return n;
}

enum { NEITHER = 0, A_DOMINATES = 1, B_DOMINATES = -1, EQUAL = 2 };

static int compare(const evo_individual *a, const evo_individual *b, int costs)
{
    double x[EVO_MAX_OBJECTIVES], y[EVO_MAX_OBJECTIVES];
    int m = evo_objective_values(a, costs, x), a_better = 0, b_better = 0;
    evo_objective_values(b, costs, y);
    for (int k = 0; k < m; ++k) {
        a_better |= x[k] < y[k];
        b_better |= y[k] < x[k];
    }
    if (a_better != b_better) return a_better ? A_DOMINATES : B_DOMINATES;
    return a_better ? NEITHER : EQUAL;
}

int evo_dominates(const evo_individual *a, const evo_individual *b, int costs)
{
    return compare(a, b, costs) == A_DOMINATES;
}

/* Crowding distance of the members of one rank (idx[0 .. n), indexes into v). */
static dn_status crowd(const evo_individual *const *v, const int *idx, int n, int costs, double *crowding)
{
    int *order = malloc((size_t)n * sizeof *order);
    double *val = malloc((size_t)n * EVO_MAX_OBJECTIVES * sizeof *val);   /* (n, objectives) */
    if (!order || !val) { free(order); free(val); return evo_fail(DN_ERR_NOMEM, "selection: out of memory"); }
    int m = 0;
    for (int i = 0; i < n; ++i) {
        m = evo_objective_values(v[idx[i]], costs, &val[(size_t)i * EVO_MAX_OBJECTIVES]);
        crowding[idx[i]] = 0;
    }
    for (int k = 0; k < m; ++k) {
        for (int i = 0; i < n; ++i) order[i] = i;
        for (int i = 1; i < n; ++i) {   /* insertion sort by objective k: ranks are small */
            int t = order[i], j = i;
            for (; j > 0 && val[(size_t)order[j - 1] * EVO_MAX_OBJECTIVES + k] > val[(size_t)t * EVO_MAX_OBJECTIVES + k]; --j)
                order[j] = order[j - 1];
            order[j] = t;
        }
        double lo = val[(size_t)order[0] * EVO_MAX_OBJECTIVES + k], hi = val[(size_t)order[n - 1] * EVO_MAX_OBJECTIVES + k];
        crowding[idx[order[0]]] = crowding[idx[order[n - 1]]] = INFINITY;
        if (hi <= lo) continue;
        for (int i = 1; i + 1 < n; ++i)
            crowding[idx[order[i]]] += (val[(size_t)order[i + 1] * EVO_MAX_OBJECTIVES + k] -
                                        val[(size_t)order[i - 1] * EVO_MAX_OBJECTIVES + k]) / (hi - lo);
    }
    free(order);
    free(val);
    return DN_OK;
}

dn_status evo_pareto_rank(const evo_individual *const *v, int n, int costs, int *rank, double *crowding)
{
    if (n <= 0) return DN_OK;
    /* Deb's fast non-dominated sort: O(objectives x n^2) */
    int *count = calloc((size_t)n, sizeof *count);          /* how many dominate i */
    int *front = malloc((size_t)n * sizeof *front), *next = malloc((size_t)n * sizeof *next);
    char *dom = malloc((size_t)n * n);                       /* dom[i * n + j]: i dominates j */
    dn_status s = count && front && next && dom ? DN_OK : evo_fail(DN_ERR_NOMEM, "selection: out of memory");
    for (int i = 0; s == DN_OK && i < n; ++i) {
        dom[(size_t)i * n + i] = 0;
        for (int j = i + 1; j < n; ++j) {
            int c = compare(v[i], v[j], costs);
            dom[(size_t)i * n + j] = c == A_DOMINATES;
            dom[(size_t)j * n + i] = c == B_DOMINATES;
            count[j] += c == A_DOMINATES;
            count[i] += c == B_DOMINATES;
        }
    }
    int nf = 0;
    for (int i = 0; s == DN_OK && i < n; ++i)
        if (count[i] == 0) front[nf++] = i;
    for (int r = 0; s == DN_OK && nf > 0; ++r) {
        int nn = 0;
        for (int a = 0; a < nf; ++a) {
            int i = front[a];
            rank[i] = r;
            for (int j = 0; j < n; ++j)
                if (dom[(size_t)i * n + j] && --count[j] == 0) next[nn++] = j;
        }
        if (crowding) s = crowd(v, front, nf, costs, crowding);
        memcpy(front, next, (size_t)nn * sizeof *front);
        nf = nn;
    }
    free(count);
    free(front);
    free(next);
    free(dom);
    return s;
}

int evo_pareto_better(const evo_individual *a, int rank_a, double crowd_a, const evo_individual *b, int rank_b,
                      double crowd_b)
{
    if (rank_a != rank_b) return rank_a < rank_b;
    if (crowd_a != crowd_b) return crowd_a > crowd_b;
    return a->id > b->id;   /* the younger, as the accuracy comparison's ties */
}

void evo_archive_update(evo_state *s, int i)
{
    evo_individual *v = &s->ind[i];
    v->archived = 0;
    if (v->outcome != EVO_OK) return;
    for (int k = 0; k < s->n; ++k) {
        if (k == i || !s->ind[k].archived) continue;
        int c = compare(&s->ind[k], v, s->costs);
        if (c == A_DOMINATES || c == EQUAL) return;
    }
    for (int k = 0; k < s->n; ++k)
        if (k != i && s->ind[k].archived && evo_dominates(v, &s->ind[k], s->costs)) s->ind[k].archived = 0;
    v->archived = 1;
}

dn_status evo_pareto_archive(const evo_state *s, int **idx, int *n)
{
    *idx = NULL;
    *n = 0;
    int *a = malloc(((size_t)s->n + 1) * sizeof *a), na = 0;
    if (!a) return evo_fail(DN_ERR_NOMEM, "archive: out of memory");
    for (int i = 0; i < s->n; ++i)
        if (s->ind[i].archived) a[na++] = i;
    *idx = a;
    *n = na;
    return DN_OK;
}

int evo_first_cost(int costs)
{
    for (int i = 0; i < NCOSTS; ++i)
        if (costs & COSTS[i].bit) return COSTS[i].bit;
    return 0;
}

int evo_pareto_member(const evo_state *s, int id)
{
    const evo_individual *v = evo_state_find((evo_state *)s, id);
    return v && v->archived;
}
