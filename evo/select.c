/*
 * select.c — selection over the living population. evo_tournament is the
 * steady-state pairwise tournament of Large-Scale Evolution (Real et al.
 * 2017): two distinct living individuals drawn uniformly at random; the better
 * (higher validation accuracy) is the parent; when the population is full the
 * worse dies at once. Ties: the older (smaller id) counts as worse.
 *
 * evo_aging is the regularized evolution of Real et al. (2019): S distinct
 * living individuals drawn uniformly at random; the best of them is the
 * parent; when the population is full the oldest living individual (the
 * first evaluated) dies, whatever its accuracy.
 *
 * With costs (-objective acc,flops ...), "better" is pareto.c's order over
 * the living population: lower non-dominated rank, then larger crowding
 * distance (NSGA-II), then the younger. The draws from the RNG are the same.
 */
#include "evo_internal.h"
#include <stdlib.h>
#include <string.h>

/* The living individuals and, with costs, their order (pareto.c). */
typedef struct {
    const evo_state *s;
    int costs;
    int *idx, n;              /* (n) indexes into s->ind */
    int *rank;                /* (n), with costs */
    double *crowding;         /* (n), with costs */
} living;

static void living_free(living *l)
{
    free(l->idx);
    free(l->rank);
    free(l->crowding);
}

static dn_status living_of(const evo_state *s, int costs, living *l)
{
    memset(l, 0, sizeof *l);
    l->s = s;
    l->costs = costs;
    for (int i = 0; i < s->n; ++i) l->n += s->ind[i].alive != 0;
    if (l->n == 0) return DN_OK;
    l->idx = malloc((size_t)l->n * sizeof *l->idx);
    const evo_individual **v = costs ? malloc((size_t)l->n * sizeof *v) : NULL;
    if (costs) {
        l->rank = malloc((size_t)l->n * sizeof *l->rank);
        l->crowding = malloc((size_t)l->n * sizeof *l->crowding);
    }
    if (!l->idx || (costs && (!v || !l->rank || !l->crowding))) {
        free(v);
        living_free(l);
        return evo_fail(DN_ERR_NOMEM, "selection: out of memory");
    }
    int k = 0;
    for (int i = 0; i < s->n; ++i)
        if (s->ind[i].alive) {
            if (v) v[k] = &s->ind[i];
            l->idx[k++] = i;
        }
    dn_status st = costs ? evo_pareto_rank(v, l->n, costs, l->rank, l->crowding) : DN_OK;
    free(v);
    if (st != DN_OK) living_free(l);
    return st;
}

/* 1 when the living individual at position a (of l->idx) is better than the one at b. */
static int better(const living *l, int a, int b)
{
    const evo_individual *x = &l->s->ind[l->idx[a]], *y = &l->s->ind[l->idx[b]];
    if (l->costs) return evo_pareto_better(x, l->rank[a], l->crowding[a], y, l->rank[b], l->crowding[b]);
    if (x->accuracy != y->accuracy) return x->accuracy > y->accuracy;
    return x->id > y->id;   /* ties: the younger */
}

dn_status evo_tournament(evo_state *s, int population, int costs, int *parent, int *killed)
{
    *parent = -1;
    *killed = -1;
    living l;
    DN_TRY(living_of(s, costs, &l));
    if (l.n <= 1) {
        if (l.n == 1) *parent = s->ind[l.idx[0]].id;
        living_free(&l);
        return DN_OK;
    }
    int a = (int)(dn_rand_u64(&s->rng) % (uint64_t)l.n);
    int b = (int)(dn_rand_u64(&s->rng) % (uint64_t)(l.n - 1));
    if (b >= a) ++b;                                      /* distinct from a */
    int hi = better(&l, a, b) ? a : b, lo = hi == a ? b : a;
    *parent = s->ind[l.idx[hi]].id;
    if (l.n >= population) *killed = s->ind[l.idx[lo]].id;
    living_free(&l);
    return DN_OK;
}

dn_status evo_worst_alive(const evo_state *s, int costs, int *id)
{
    *id = -1;
    living l;
    DN_TRY(living_of(s, costs, &l));
    int w = -1;
    for (int i = 0; i < l.n; ++i)
        if (w < 0 || better(&l, w, i)) w = i;
    if (w >= 0) *id = s->ind[l.idx[w]].id;
    living_free(&l);
    return DN_OK;
}

/* Swap positions i and j of the living (with their rank and crowding). */
static void swap(living *l, int i, int j)
{
    int t = l->idx[i]; l->idx[i] = l->idx[j]; l->idx[j] = t;
    if (!l->costs) return;
    t = l->rank[i]; l->rank[i] = l->rank[j]; l->rank[j] = t;
    double c = l->crowding[i]; l->crowding[i] = l->crowding[j]; l->crowding[j] = c;
}

dn_status evo_aging(evo_state *s, int population, int sample, int costs, int *parent, int *killed)
{
    *parent = -1;
    *killed = -1;
    if (sample < 1) return evo_fail(DN_ERR_ARG, "aging selection: sample size %d must be at least 1", sample);
    living l;
    DN_TRY(living_of(s, costs, &l));
    if (l.n == 0) return DN_OK;
    int take = sample < l.n ? sample : l.n, best = -1;
    /* a partial Fisher-Yates shuffle: positions [0, take) are a uniform sample without replacement */
    for (int i = 0; i < take; ++i) {
        swap(&l, i, i + (int)(dn_rand_u64(&s->rng) % (uint64_t)(l.n - i)));
        if (best < 0 || better(&l, i, best)) best = i;
    }
    *parent = s->ind[l.idx[best]].id;
    if (l.n >= population) {
        const evo_individual *oldest = NULL;
        for (int i = 0; i < l.n; ++i) {
            const evo_individual *x = &s->ind[l.idx[i]];
            if (!oldest || x->eval < oldest->eval || (x->eval == oldest->eval && x->id < oldest->id)) oldest = x;
        }
        *killed = oldest->id;
    }
    living_free(&l);
    return DN_OK;
}
