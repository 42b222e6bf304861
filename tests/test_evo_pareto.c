/* test_evo_pareto.c — accuracy and cost together (pareto.c): -objective
 * parsing, dominance, NSGA-II's non-dominated rank and crowding distance on a
 * hand-made population with known fronts and against a brute-force peeling
 * of random populations, the archive against its definition (and how it
 * treats a promotion's new score), and selection
 * (tournament, aging, the worst for random search) in the multi-objective
 * order with the same draws from the RNG; and the plots of a large search
 * (plot.c) staying small. */
#include "evo_internal.h"
#include "testlib.h"
#include <math.h>

static evo_individual make(int id, float acc, double flops, size_t params)
{
    evo_individual v;
    memset(&v, 0, sizeof v);
    v.id = id;
    v.eval = id;
    v.accuracy = acc;
    v.flops = flops;
    v.params = params;
    v.alive = 1;
    return v;
}

static void test_parse(void)
{
    int c = -1;
    CHECK_OK(evo_objective_parse("acc", &c));
    CHECK(c == 0, "acc: %d", c);
    CHECK_OK(evo_objective_parse("acc,flops", &c));
    CHECK(c == EVO_COST_FLOPS, "acc,flops: %d", c);
    CHECK_OK(evo_objective_parse("flops", &c));
    CHECK(c == EVO_COST_FLOPS, "flops alone means acc,flops: %d", c);
    CHECK_OK(evo_objective_parse("latency,acc,params", &c));
    CHECK(c == (EVO_COST_PARAMS | EVO_COST_LATENCY), "latency,acc,params: %d", c);
    CHECK(!strcmp(evo_objective_name(c), "acc,params,latency"), "canonical name: %s", evo_objective_name(c));
    for (int bits = 0; bits < 8; ++bits) {
        int back = -1;
        CHECK(evo_objective_parse(evo_objective_name(bits), &back) == DN_OK && back == bits, "round trip of %d: %d",
              bits, back);
    }
    const char *bad[] = {"", "acc,size", "flops,flops", "acc,,", ",", "ACC"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        dn_status st = evo_objective_parse(bad[i], &c);
        CHECK(st == DN_ERR_ARG && strstr(dn_last_error(), "-objective"), "'%s' accepted or unclear: %s", bad[i],
              dn_last_error());
    }
    CHECK(evo_objective_parse(NULL, &c) == DN_ERR_ARG, "NULL accepted");
}

static void test_dominance(void)
{
    evo_individual a = make(1, .9f, 100, 10), b = make(2, .8f, 200, 10), c = make(3, .95f, 300, 10),
                   d = make(4, .9f, 100, 10);
    CHECK(evo_dominates(&a, &b, EVO_COST_FLOPS) && !evo_dominates(&b, &a, EVO_COST_FLOPS), "a dominates b");
    CHECK(!evo_dominates(&a, &c, EVO_COST_FLOPS) && !evo_dominates(&c, &a, EVO_COST_FLOPS), "a, c: neither");
    CHECK(evo_dominates(&c, &a, 0), "accuracy alone: c dominates a");
    CHECK(!evo_dominates(&a, &d, EVO_COST_FLOPS) && !evo_dominates(&d, &a, EVO_COST_FLOPS), "equals: neither");
    b.flops = 100;
    CHECK(evo_dominates(&a, &b, EVO_COST_FLOPS), "better in one, equal in the other: dominates");
    a.latency_ms = 2;
    b.latency_ms = 1;
    CHECK(!evo_dominates(&a, &b, EVO_COST_FLOPS | EVO_COST_LATENCY), "latency counts when asked for");
    CHECK(evo_dominates(&a, &b, EVO_COST_FLOPS), "... and not otherwise");
    double v[EVO_MAX_OBJECTIVES];
    int m = evo_objective_values(&a, EVO_COST_FLOPS | EVO_COST_PARAMS | EVO_COST_LATENCY, v);
    CHECK(m == 4 && fabs(v[0] - 0.1) < 1e-6 && v[1] == 100 && v[2] == 10 && v[3] == 2,
          "values: %d: %g %g %g %g", m, v[0], v[1], v[2], v[3]);
}

/* (error, flops): A B C on the front, D E behind it, F behind them */
static void test_known_fronts(void)
{
    evo_individual p[6] = {make(1, .9f, 10, 1), make(2, .8f, 5, 1), make(3, .7f, 1, 1),
                           make(4, .8f, 10, 1), make(5, .7f, 6, 1), make(6, .65f, 11, 1)};
    const evo_individual *v[6];
    for (int i = 0; i < 6; ++i) v[i] = &p[i];
    int rank[6];
    double crowd[6];
    CHECK_OK(evo_pareto_rank(v, 6, EVO_COST_FLOPS, rank, crowd));
    int want[6] = {0, 0, 0, 1, 1, 2};
    for (int i = 0; i < 6; ++i) CHECK(rank[i] == want[i], "rank of %c: %d, want %d", 'A' + i, rank[i], want[i]);
    CHECK(isinf(crowd[0]) && isinf(crowd[2]), "the front's ends: %g %g", crowd[0], crowd[2]);
    CHECK(fabs(crowd[1] - 2.0) < 1e-5, "B between A and C in both objectives: 1 + 1 = %g", crowd[1]);
    CHECK(isinf(crowd[3]) && isinf(crowd[4]) && isinf(crowd[5]), "ranks of one or two: all ends");
    /* selection prefers the lower rank, then the less crowded, then the younger */
    CHECK(evo_pareto_better(&p[1], 0, 2.0, &p[3], 1, INFINITY), "rank before crowding");
    CHECK(evo_pareto_better(&p[0], 0, INFINITY, &p[1], 0, 2.0), "crowding within a rank");
    CHECK(evo_pareto_better(&p[2], 0, INFINITY, &p[0], 0, INFINITY), "ties: the younger");
}

/* Brute force: peel fronts; crowding straight from its definition. */
static int brute_front(const evo_individual *p, int n, const int *taken, int i, int costs)
{
    for (int j = 0; j < n; ++j)
        if (!taken[j] && j != i && evo_dominates(&p[j], &p[i], costs)) return 0;
    return 1;
}

static void test_random_populations(void)
{
    uint64_t r = 42;
    int bad_rank = 0, bad_crowd = 0, trials = 300;
    for (int t = 0; t < trials; ++t) {
        int n = 1 + (int)(dn_rand_u64(&r) % 40), costs = 1 + (int)(dn_rand_u64(&r) % 7);
        evo_individual p[40];
        const evo_individual *v[40];
        for (int i = 0; i < n; ++i) {   /* few distinct values: many ties and equal points */
            p[i] = make(i + 1, (float)(dn_rand_u64(&r) % 8) / 8, (double)(dn_rand_u64(&r) % 6),
                        (size_t)(dn_rand_u64(&r) % 5));
            p[i].latency_ms = (float)(dn_rand_u64(&r) % 4);
            v[i] = &p[i];
        }
        int rank[40], want[40], taken[40] = {0}, left = n;
        double crowd[40];
        CHECK_OK(evo_pareto_rank(v, n, costs, rank, crowd));
        for (int r0 = 0; left > 0; ++r0) {
            int now[40] = {0};
            for (int i = 0; i < n; ++i) now[i] = !taken[i] && brute_front(p, n, taken, i, costs);
            for (int i = 0; i < n; ++i)
                if (now[i]) { want[i] = r0; taken[i] = 1; --left; }
        }
        for (int i = 0; i < n; ++i) bad_rank += rank[i] != want[i];
        /* crowding: the sum over objectives of the neighbours' gap over the range, ends infinite; with
         * equal values the order among them is the sort's, so compare only points whose values are unique */
        for (int i = 0; i < n; ++i) {
            double vi[EVO_MAX_OBJECTIVES], vj[EVO_MAX_OBJECTIVES], d = 0;
            int m = evo_objective_values(&p[i], costs, vi), unique = 1, end = 0;
            for (int k = 0; k < m; ++k) {
                double lo = INFINITY, hi = -INFINITY, below = -INFINITY, above = INFINITY;
                for (int j = 0; j < n; ++j) {
                    if (rank[j] != rank[i]) continue;
                    evo_objective_values(&p[j], costs, vj);
                    if (j != i && vj[k] == vi[k]) unique = 0;
                    if (vj[k] < lo) lo = vj[k];
                    if (vj[k] > hi) hi = vj[k];
                    if (j != i && vj[k] < vi[k] && vj[k] > below) below = vj[k];
                    if (j != i && vj[k] > vi[k] && vj[k] < above) above = vj[k];
                }
                if (vi[k] == lo || vi[k] == hi) end = 1;
                else d += (above - below) / (hi - lo);
            }
            if (!unique) continue;
            if (end ? !isinf(crowd[i]) : fabs(crowd[i] - d) > 1e-9) {
                if (bad_crowd++ < 3) fprintf(stderr, "  crowding %g, want %s%g\n", crowd[i], end ? "inf, not " : "", d);
            }
        }
    }
    CHECK(bad_rank == 0, "%d ranks differ from peeling fronts by brute force (%d populations)", bad_rank, trials);
    CHECK(bad_crowd == 0, "%d crowding distances differ from the definition", bad_crowd);
}

/* Without promotions the archive kept as scores arrive is the set of
 * successful individuals that no other dominates (of equal ones the first). */
static void test_archive(void)
{
    uint64_t r = 7;
    int bad = 0, bad_member = 0, nonempty = 0;
    for (int t = 0; t < 200; ++t) {
        evo_individual p[60];
        evo_state s;
        memset(&s, 0, sizeof s);
        s.ind = p;
        s.cap = 60;
        s.costs = 1 + (int)(dn_rand_u64(&r) % 3);
        int n = 1 + (int)(dn_rand_u64(&r) % 60);
        for (int i = 0; i < n; ++i) {
            p[i] = make(i + 1, (float)(dn_rand_u64(&r) % 10) / 10, (double)(dn_rand_u64(&r) % 8),
                        (size_t)(dn_rand_u64(&r) % 8));
            p[i].alive = dn_rand_u64(&r) % 3 == 0;
            p[i].outcome = dn_rand_u64(&r) % 5 == 0 ? EVO_FAILED : EVO_OK;
            if (p[i].outcome == EVO_FAILED) p[i].accuracy = 1;   /* a failure never counts, however it scores */
            s.n = i + 1;
            evo_archive_update(&s, i);
        }
        int *idx = NULL, na = 0, in[60] = {0};
        CHECK_OK(evo_pareto_archive(&s, &idx, &na));
        for (int k = 0; k < na; ++k) in[idx[k]] = 1;
        for (int k = 1; k < na; ++k) bad += idx[k] <= idx[k - 1];   /* evaluation order */
        for (int i = 0; i < n; ++i) {
            int want = p[i].outcome == EVO_OK;
            for (int j = 0; j < n && want; ++j) {
                if (j == i || p[j].outcome != EVO_OK) continue;
                double a[EVO_MAX_OBJECTIVES], b[EVO_MAX_OBJECTIVES];
                int m = evo_objective_values(&p[j], s.costs, a), same = 1;
                evo_objective_values(&p[i], s.costs, b);
                for (int k = 0; k < m; ++k) same &= a[k] == b[k];
                if (evo_dominates(&p[j], &p[i], s.costs) || (same && j < i)) want = 0;
            }
            bad += in[i] != want;
            bad_member += evo_pareto_member(&s, p[i].id) != want;
        }
        nonempty += na > 1;
        free(idx);
    }
    CHECK(bad == 0, "%d archive memberships differ from the definition", bad);
    CHECK(bad_member == 0, "%d evo_pareto_member answers differ from the definition", bad_member);
    CHECK(nonempty > 100, "the random cases have fronts of several (%d of 200)", nonempty);
}

/* A promotion's new score (on more images) may be lower: the individual it
 * displaced stays out (its weights may be gone), the promoted one re-enters
 * only if nothing archived dominates it; a higher one drops what it now dominates. */
static void test_archive_promotions(void)
{
    evo_individual p[4] = {make(1, .8f, 100, 1), make(2, .7f, 100, 1), make(3, .75f, 50, 1)};
    evo_state s;
    memset(&s, 0, sizeof s);
    s.ind = p;
    s.cap = 4;
    s.costs = EVO_COST_FLOPS;
    for (int i = 0; i < 3; ++i) { s.n = i + 1; evo_archive_update(&s, i); }
    CHECK(p[0].archived && !p[1].archived && p[2].archived, "before: 1 and 3 (2 is dominated by 1): %d %d %d",
          p[0].archived, p[1].archived, p[2].archived);
    p[0].accuracy = .6f;   /* 1 promoted, scored lower: 3 now dominates it */
    evo_archive_update(&s, 0);
    CHECK(!p[0].archived && !p[1].archived && p[2].archived, "1 scored lower: out; 2 does not return: %d %d %d",
          p[0].archived, p[1].archived, p[2].archived);
    p[1].accuracy = .9f;   /* 2 promoted, scored higher: in again, and 3 stays (cheaper) */
    evo_archive_update(&s, 1);
    CHECK(!p[0].archived && p[1].archived && p[2].archived, "2 scored higher: in: %d %d %d", p[0].archived,
          p[1].archived, p[2].archived);
    p[3] = make(4, .95f, 40, 1);   /* a child that dominates everything */
    s.n = 4;
    evo_archive_update(&s, 3);
    int *idx = NULL, n = 0;
    CHECK_OK(evo_pareto_archive(&s, &idx, &n));
    CHECK(n == 1 && idx[0] == 3, "a dominating child leaves itself alone: %d", n);
    free(idx);
    p[3].outcome = EVO_FAILED;   /* (a failed score never enters) */
    evo_archive_update(&s, 3);
    CHECK(!p[3].archived, "a failure is not archived");
}

static void test_selection(void)
{
    /* two alive: the dominating one is always the parent, the other dies when the population is full */
    evo_individual p[5] = {make(1, .9f, 100, 1), make(2, .95f, 50, 1)};
    evo_state s;
    memset(&s, 0, sizeof s);
    s.ind = p;
    s.n = 2;
    s.cap = 5;
    s.rng = 3;
    int parent, killed, bad = 0;
    for (int i = 0; i < 20; ++i) {
        CHECK_OK(evo_tournament(&s, 2, EVO_COST_FLOPS, &parent, &killed));
        bad += parent != 2 || killed != 1;
    }
    CHECK(bad == 0, "tournament: the dominating individual wins (%d of 20 did not)", bad);
    /* incomparable: a more accurate but costlier (1) against a cheaper one (2); accuracy alone picks 1 */
    p[0] = make(1, .95f, 100, 1);
    p[1] = make(2, .9f, 50, 1);
    p[2] = make(3, .85f, 120, 1);   /* dominated by both */
    s.n = 3;
    int worst = -1;
    CHECK_OK(evo_worst_alive(&s, EVO_COST_FLOPS, &worst));
    CHECK(worst == 3, "the worst for random search: the dominated one, %d", worst);
    CHECK_OK(evo_worst_alive(&s, 0, &worst));
    CHECK(worst == 3, "accuracy alone: the least accurate, %d", worst);
    /* aging with the whole population as its sample: the parent is of rank 0 with the larger crowding; the
     * front (1, 2) has two ends, both infinite: the younger, 2. Accuracy alone: 1. The draws are the same. */
    uint64_t r0 = 11;
    s.rng = r0;
    CHECK_OK(evo_aging(&s, 3, 3, EVO_COST_FLOPS, &parent, &killed));
    uint64_t after_mo = s.rng;
    CHECK(parent == 2 && killed == 1, "aging with costs: parent %d (want 2), killed %d (the oldest, 1)", parent, killed);
    s.rng = r0;
    CHECK_OK(evo_aging(&s, 3, 3, 0, &parent, &killed));
    CHECK(parent == 1 && killed == 1, "aging on accuracy: parent %d (want 1), killed %d", parent, killed);
    CHECK(s.rng == after_mo, "the objective changes no draw from the RNG");
    s.rng = r0;
    int pa[30], ka[30], pb[30], kb[30];
    for (int i = 0; i < 30; ++i) evo_tournament(&s, 3, EVO_COST_FLOPS, &pa[i], &ka[i]);
    uint64_t ra = s.rng;
    s.rng = r0;
    for (int i = 0; i < 30; ++i) evo_tournament(&s, 3, 0, &pb[i], &kb[i]);
    CHECK(s.rng == ra, "tournament: the same draws with and without costs");
    int differ = 0;
    for (int i = 0; i < 30; ++i) differ += pa[i] != pb[i];
    CHECK(differ > 0, "... but other parents when the costs change who is better (%d of 30)", differ);
}

static int count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) ++n;
    return n;
}

/* The plots of a search of `n` evaluations (plot.c): up to 2000 individuals
 * each is a circle with a tooltip; beyond, the dead and failed outside the
 * lineage and the archive are drawn together, so 10,000 evaluations give
 * plots of tens of kilobytes, and every living, archived and lineage member
 * is still a circle. */
static void plots_of(int n, int *circles_progress, int *circles_pareto, int *want_progress, int *want_pareto,
                     size_t *bytes, int *many)
{
    evo_individual *p = calloc((size_t)n, sizeof *p);
    int lineage[40], nl = 0;
    evo_state s;
    memset(&s, 0, sizeof s);
    s.ind = p;
    s.cap = n;
    s.costs = EVO_COST_FLOPS;
    uint64_t r = 11;
    *want_progress = *want_pareto = 0;
    for (int i = 0; i < n; ++i) {
        p[i] = make(i + 1, 0.5f + 0.45f * (float)(dn_rand_u64(&r) % 1000) / 1000,
                    1e4 * pow(10, 3.0 * (double)(dn_rand_u64(&r) % 1000) / 1000), 100);
        p[i].outcome = dn_rand_u64(&r) % 20 == 0 ? EVO_FAILED : EVO_OK;
        p[i].alive = i >= n - 20 && p[i].outcome == EVO_OK;   /* a failure dies at once */
        p[i].died_at = p[i].alive ? 0 : i + 20;
        p[i].parent = i > 0 ? i : -1;
        p[i].elapsed = 0.5 * i;
        s.n = s.evals = i + 1;
        evo_archive_update(&s, i);
    }
    for (int i = 0; i < n && nl < 40; i += n / 40 + 1)
        if (p[i].outcome == EVO_OK) lineage[nl++] = p[i].id;
    for (int i = 0; i < n; ++i) {
        int in = 0;
        for (int k = 0; k < nl; ++k) in |= lineage[k] == p[i].id;
        *want_progress += n <= 2000 || p[i].alive || in;
        *want_pareto += p[i].outcome == EVO_OK && (n <= 2000 || p[i].alive || p[i].archived);
    }
    char *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(evo_plot_progress(&s, lineage, nl, 0, &a));
    CHECK_OK(evo_plot_progress(&s, lineage, nl, 1, &b));
    CHECK_OK(evo_plot_pareto(&s, EVO_COST_FLOPS, 1, &c));
    *circles_progress = a && b && count(a, "<circle class=\"ind") == count(b, "<circle class=\"ind")
                            ? count(a, "<circle class=\"ind") : -1;
    *circles_pareto = c ? count(c, "<circle class=\"ind") : -1;
    *bytes = (a ? strlen(a) : 0) + (b ? strlen(b) : 0) + (c ? strlen(c) : 0);
    *many = a && c ? count(a, "class=\"p-many dead") + count(a, "class=\"p-many failed") + count(c, "class=\"p-many dead") : -1;
    free(a);
    free(b);
    free(c);
    free(p);
}

static void test_large_plots(void)
{
    int cp, cq, wp, wq, many;
    size_t bytes;
    plots_of(1500, &cp, &cq, &wp, &wq, &bytes, &many);
    CHECK(cp == wp && cq == wq && many == 0, "1500 evaluations: every individual a circle (%d/%d, %d/%d, paths %d)", cp,
          wp, cq, wq, many);
    plots_of(10000, &cp, &cq, &wp, &wq, &bytes, &many);
    CHECK(cp == wp && cq == wq && many == 3, "10000 evaluations: circles for the living, lineage and archive only "
          "(%d/%d, %d/%d), the rest in 3 paths (%d)", cp, wp, cq, wq, many);
    CHECK(bytes < 600000, "10000 evaluations: the three plots take %zu bytes", bytes);
}

int main(void)
{
    test_parse();
    test_dominance();
    test_known_fronts();
    test_random_populations();
    test_archive();
    test_archive_promotions();
    test_selection();
    test_large_plots();
    TEST_MAIN_END();
}
