/*
 * select.c — selection over the living population. evo_tournament is the
 * steady-state pairwise tournament of Large-Scale Evolution (Real et al.
 * 2017): two distinct living individuals drawn uniformly at random; the better
 * (higher validation accuracy) is the parent; when the population is full the
 * worse dies at once. Ties: the older (smaller id) counts as worse.
 */
#include "evo.h"
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
