/* test_evo_select.c — the tournament picks two distinct living individuals at
 * random, makes the better the parent and kills the worse only when the
 * population is full; aging (regularized evolution) makes the best of a
 * random sample the parent and kills the oldest, whatever its accuracy. */
#include "evo_internal.h"
#include "testlib.h"

static void add(evo_state *s, int id, float acc, int alive)
{
    evo_individual *ind = &s->ind[s->n++];
    memset(ind, 0, sizeof *ind);
    ind->id = id;
    ind->accuracy = acc;
    ind->alive = alive;
}

static const evo_individual *find(evo_state *s, int id) { return evo_state_find(s, id); }

/* Aging on ids 1..7 (evaluated in that order; id 3 dead; the oldest, id 1, is
 * the most accurate): the oldest living always dies, whatever its accuracy;
 * the parent is the best of the sample; samples are uniform. */
static void test_aging(void)
{
    evo_individual storage[8];
    evo_state s;
    memset(&s, 0, sizeof s);
    s.ind = storage;
    s.cap = 8;
    s.rng = 9;
    float acc[7] = {.95f, .4f, .99f, .6f, .3f, .6f, .1f};
    for (int i = 0; i < 7; ++i) {
        add(&s, i + 1, acc[i], i != 2);
        s.ind[i].eval = i + 1;
    }
    int parent, killed, bad = 0, parent_count[8] = {0};
    for (int t = 0; t < 3000; ++t) {
        CHECK_OK(evo_aging(&s, 6, 2, 0, &parent, &killed));
        const evo_individual *p = find(&s, parent);
        if (!p || !p->alive || killed != 1) ++bad;
        parent_count[parent > 0 && parent < 8 ? parent : 0]++;
    }
    CHECK(bad == 0, "%d aging draws: a dead parent, or the oldest living (1) not killed", bad);
    CHECK(parent_count[3] == 0, "the dead individual 3 was a parent");
    CHECK(parent_count[7] == 0, "the worst individual 7 won a sample of 2");
    /* sample 2 of 6 living: individual 1 (best) is the parent whenever drawn: 1 - C(5,2)/C(6,2) = 1/3 */
    CHECK(parent_count[1] > 850 && parent_count[1] < 1150, "best of sample 2: 1 parent %d of 3000, ~1000 expected",
          parent_count[1]);
    /* the tie 4 vs 6 (0.6): the younger, 6, wins when both are drawn */
    evo_individual *four = &s.ind[3], *six = &s.ind[5];
    for (int i = 0; i < 7; ++i) s.ind[i].alive = s.ind[i].id == 4 || s.ind[i].id == 6;
    CHECK_OK(evo_aging(&s, 2, 5, 0, &parent, &killed));
    CHECK(parent == 6 && killed == 4, "tie between 4 and 6: parent %d (want 6), killed %d (want the oldest, 4)",
          parent, killed);
    (void)four; (void)six;
    /* below the population size nobody dies; a sample larger than the living takes all */
    for (int i = 0; i < 7; ++i) s.ind[i].alive = 1;
    CHECK_OK(evo_aging(&s, 8, 100, 0, &parent, &killed));
    CHECK(killed == -1 && parent == 3, "7 alive < 8: killed %d, parent %d (want the best, 3)", killed, parent);
    /* the oldest is by evaluation, not id */
    s.ind[0].eval = 9;
    CHECK_OK(evo_aging(&s, 7, 1, 0, &parent, &killed));
    CHECK(killed == 2, "oldest by evaluation: killed %d, want 2", killed);
    CHECK(evo_aging(&s, 7, 0, 0, &parent, &killed) == DN_ERR_ARG, "sample 0 accepted");
    for (int i = 0; i < 7; ++i) s.ind[i].alive = 0;
    CHECK_OK(evo_aging(&s, 2, 3, 0, &parent, &killed));
    CHECK(parent == -1 && killed == -1, "none alive: parent %d killed %d", parent, killed);
}

int main(void)
{
    test_aging();
    evo_individual storage[8];
    evo_state s;
    memset(&s, 0, sizeof s);
    s.ind = storage;
    s.cap = 8;
    s.rng = 42;
    /* ids 1..6, accuracies distinct except 2 and 5 (tie); id 4 is dead */
    float acc[6] = {.5f, .7f, .2f, .9f, .7f, .1f};
    for (int i = 0; i < 6; ++i) add(&s, i + 1, acc[i], i != 3);

    int parent_count[7] = {0}, killed_count[7] = {0}, pair_seen[7][7] = {{0}};
    int bad = 0;
    for (int t = 0; t < 6000; ++t) {
        int parent, killed;
        CHECK_OK(evo_tournament(&s, 5, 0, &parent, &killed));
        const evo_individual *p = find(&s, parent), *k = find(&s, killed);
        if (!p || !k || !p->alive || !k->alive || parent == killed) { ++bad; continue; }
        /* the parent is the better; on a tie the younger (larger id) wins */
        if (p->accuracy < k->accuracy || (p->accuracy == k->accuracy && p->id < k->id)) ++bad;
        parent_count[parent]++;
        killed_count[killed]++;
        pair_seen[parent < killed ? parent : killed][parent < killed ? killed : parent]++;
    }
    CHECK(bad == 0, "%d draws broke the tournament rules", bad);
    CHECK(parent_count[4] == 0 && killed_count[4] == 0, "the dead individual 4 took part");
    CHECK(parent_count[6] == 0, "the worst individual 6 was a parent");
    /* the tie rule (older dies) is enforced per draw above; make sure the tie was drawn */
    CHECK(pair_seen[2][5] > 0, "the tied pair 2 vs 5 was never drawn");
    /* every pair of the 5 living ones is drawn about 6000/10 = 600 times */
    int alive_ids[5] = {1, 2, 3, 5, 6}, lo = 1 << 30, hi = 0;
    for (int i = 0; i < 5; ++i)
        for (int j = i + 1; j < 5; ++j) {
            int n = pair_seen[alive_ids[i]][alive_ids[j]];
            lo = n < lo ? n : lo;
            hi = n > hi ? n : hi;
        }
    CHECK(lo > 450 && hi < 750, "pairs not uniform: between %d and %d draws of 600 expected", lo, hi);

    /* below the population size nobody dies */
    int parent, killed;
    CHECK_OK(evo_tournament(&s, 6, 0, &parent, &killed));
    CHECK(killed == -1 && parent > 0, "population 5 alive < 6: killed %d", killed);
    /* one alive: it is the parent; none: -1 */
    for (int i = 0; i < s.n; ++i) s.ind[i].alive = s.ind[i].id == 3;
    CHECK_OK(evo_tournament(&s, 2, 0, &parent, &killed));
    CHECK(parent == 3 && killed == -1, "one alive: parent %d killed %d", parent, killed);
    s.ind[2].alive = 0;
    CHECK_OK(evo_tournament(&s, 2, 0, &parent, &killed));
    CHECK(parent == -1 && killed == -1, "none alive: parent %d killed %d", parent, killed);
    /* deterministic: the same rng gives the same draws */
    for (int i = 0; i < s.n; ++i) s.ind[i].alive = 1;
    uint64_t r0 = 7;
    int p1[20], p2[20], k1[20], k2[20];
    s.rng = r0;
    for (int i = 0; i < 20; ++i) evo_tournament(&s, 3, 0, &p1[i], &k1[i]);
    s.rng = r0;
    for (int i = 0; i < 20; ++i) evo_tournament(&s, 3, 0, &p2[i], &k2[i]);
    CHECK(!memcmp(p1, p2, sizeof p1) && !memcmp(k1, k2, sizeof k1), "same rng, different draws");
    TEST_MAIN_END();
}
