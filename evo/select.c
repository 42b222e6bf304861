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
 */
#include "evo_internal.h"
#include <stdlib.h>

/* 1 when a is worse than b. */
static int worse(const evo_individual *a, const evo_individual *b)
{
    if (a->accuracy != b->accuracy) return a->accuracy < b->accuracy;
    return a->id < b->id;
}

dn_status evo_tournament(evo_state *s, int population, int *parent, int *killed)
{
    *parent = -1;
    *killed = -1;
    int alive = 0;
    for (int i = 0; i < s->n; ++i) alive += s->ind[i].alive != 0;
    if (alive == 0) return DN_OK;
    int *idx = malloc((size_t)alive * sizeof *idx);      /* (alive) indexes into s->ind */
    if (!idx) return evo_fail(DN_ERR_NOMEM, "selection: out of memory");
    int k = 0;
    for (int i = 0; i < s->n; ++i)
        if (s->ind[i].alive) idx[k++] = i;
    if (alive == 1) {
        *parent = s->ind[idx[0]].id;
        free(idx);
        return DN_OK;
    }
    int a = (int)(dn_rand_u64(&s->rng) % (uint64_t)alive);
    int b = (int)(dn_rand_u64(&s->rng) % (uint64_t)(alive - 1));
    if (b >= a) ++b;                                      /* distinct from a */
    const evo_individual *x = &s->ind[idx[a]], *y = &s->ind[idx[b]];
    free(idx);
    const evo_individual *lo = worse(x, y) ? x : y, *hi = lo == x ? y : x;
    *parent = hi->id;
    if (alive >= population) *killed = lo->id;
    return DN_OK;
}

/* Indexes into s->ind of the living individuals (malloc'd), their count in *n. */
static dn_status living(const evo_state *s, int **idx, int *n)
{
    *n = 0;
    for (int i = 0; i < s->n; ++i) *n += s->ind[i].alive != 0;
    *idx = NULL;
    if (*n == 0) return DN_OK;
    *idx = malloc((size_t)*n * sizeof **idx);
    if (!*idx) return evo_fail(DN_ERR_NOMEM, "selection: out of memory");
    int k = 0;
    for (int i = 0; i < s->n; ++i)
        if (s->ind[i].alive) (*idx)[k++] = i;
    return DN_OK;
}

dn_status evo_aging(evo_state *s, int population, int sample, int *parent, int *killed)
{
    *parent = -1;
    *killed = -1;
    if (sample < 1) return evo_fail(DN_ERR_ARG, "aging selection: sample size %d must be at least 1", sample);
    int *idx, alive;
    dn_status st = living(s, &idx, &alive);
    if (st != DN_OK || alive == 0) return st;
    int take = sample < alive ? sample : alive;
    /* a partial Fisher-Yates shuffle: idx[0 .. take) is a uniform sample without replacement */
    const evo_individual *best = NULL;
    for (int i = 0; i < take; ++i) {
        int j = i + (int)(dn_rand_u64(&s->rng) % (uint64_t)(alive - i));
        int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        const evo_individual *x = &s->ind[idx[i]];
        if (!best || worse(best, x)) best = x;
    }
    *parent = best->id;
    if (alive >= population) {
        const evo_individual *oldest = NULL;
        for (int i = 0; i < alive; ++i) {
            const evo_individual *x = &s->ind[idx[i]];
            if (!oldest || x->eval < oldest->eval || (x->eval == oldest->eval && x->id < oldest->id)) oldest = x;
        }
        *killed = oldest->id;
    }
    free(idx);
    return DN_OK;
}
