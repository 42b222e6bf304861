/*
 * test_gradcheck.c — finite-difference checks of every layer's backward pass,
 * for the network input and for every learnable parameter.
 *
 * Each case is a tiny network built from cfg text:
 *
 *   layer 0            [activation] linear   (its delta is -dL/d(network input))
 *   layers 1..n-2      the layers under test
 *   layer n-1          [cost] (LOSS_LINEAR) or the case's own [softmax]/[cost] (LOSS_NET)
 *
 * LOSS_LINEAR: L = sum_i r_i * out_i over layer n-2's output, r fixed random;
 *   we set that layer's delta to -r (deltas are negative gradients) and run
 *   dn_network_backward. The trailing [cost] gets no truth, so it adds nothing.
 * LOSS_NET: L is the cost of the final [softmax]/[cost] given a truth; the
 *   analytic delta is expected to be -k * dL/dx (k = 1 for softmax and L1,
 *   1/2 for sse and smooth, times the cost's scale, as upstream).
 * Every parameter with updates != NULL must hold -dL/dw summed over the batch.
 *
 * The numeric side: the real forward pass, L summed in double, central
 * differences at steps h and h/2 combined by Richardson extrapolation. An
 * element passes when |analytic - numeric| is within 1% of
 * max(|analytic|, |numeric|, 1% of the tensor's largest gradient), after
 * allowing for the loss's float rounding (a few ulps of every term the step
 * changed, divided by the step). Doubtful elements are re-measured with h/10
 * (less truncation error, more rounding noise). The whole tensor must also
 * have a normalised error ||a - n|| / ||n|| below 3e-3.
 *
 * Kinks: inputs are drawn so that every pre-activation of a kinked activation
 * (and every maxpool window's top two) is at least 2e-2 (usually 5e-2) from
 * a kink, and steps stay well inside that margin; an element that still
 * fails is skipped only when its one-sided differences show a slope jump that
 * explains the mismatch, and skips are bounded at 10%.
 * The dropout mask repeats because net->rng is restored before every forward.
 *
 * GRADCHECK_VERBOSE=1 prints every tensor's errors; GRADCHECK_SEED=s reruns
 * every case with other random draws (the tolerances hold over 1000+ seeds).
 */
#include "darknet.h"
#include "internal.h"
#include "testlib.h"
#include <float.h>
#include <stdarg.h>

enum { LOSS_LINEAR, LOSS_NET };

typedef struct {
    const char *name;
    int batch, w, h, c;
    const char *body;      /* layer sections after the leading linear [activation] */
    int train;             /* forward mode for the whole check */
    int loss;              /* LOSS_LINEAR or LOSS_NET */
    double k;              /* LOSS_NET: expected delta = -k * dL/dx (0 means 1) */
    int kinks;             /* the net has kinks: draw inputs away from them */
    float lo, hi;          /* input range (0,0 means -1..1) */
    int distinct;          /* inputs are a shuffled grid with gaps of `gap` (maxpool ties) */
    float gap;
    int avoid_kinks_of;    /* 1 + activation: resample inputs near its kinks */
    float input_step;      /* finite-difference step for the input (0: as for parameters) */
    void (*corrupt)(dn_network *net, int undo);   /* meta-tests: break backward on purpose */
} gc_case;

/* ------------------------------------------------------------ helpers */

static int warnings;
static void count_warning(const char *m, void *u) { (void)u; ++warnings; fprintf(stderr, "warning: %s\n", m); }

static const char *cfg_text(const gc_case *c)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "[net]\nbatch=%d\nwidth=%d\nheight=%d\nchannels=%d\n"
             "[activation]\nactivation=linear\n%s%s",
             c->batch, c->w, c->h, c->c, c->body, c->loss == LOSS_LINEAR ? "[cost]\n" : "");
    return buf;
}

/* GRADCHECK_SEED=n reruns every case with other random draws. */
static uint64_t name_seed(const char *s)
{
    static const char *extra;
    if (!extra) extra = getenv("GRADCHECK_SEED") ? getenv("GRADCHECK_SEED") : "";
    uint64_t h = 1469598103934665603ull;
    for (const char *e = extra; *e; ++e) h = (h ^ (unsigned char)*e) * 1099511628211ull;
    for (; *s; ++s) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h | 1;
}

/* Distance from x to the nearest kink of activation a (HUGE_VAL if none). */
static double kink_distance(double x, dn_activation a)
{
    switch (a) {
    case DN_RELU: case DN_LEAKY: case DN_RAMP: case DN_RELIE: case DN_ELU: case DN_SELU:
        return fabs(x);
    case DN_PLSE: return fmin(fabs(x - 4), fabs(x + 4));
    case DN_HARDTAN: return fmin(fabs(x - 1), fabs(x + 1));
    case DN_LHTAN: return fmin(fabs(x), fabs(x - 1));
    case DN_STAIR: return fabs(x - round(x));
    default: return HUGE_VAL;
    }
}

static int near_kink(float x, dn_activation a, float d) { return kink_distance(x, a) < d; }

static int has_kinks(dn_activation a)
{
    return a != DN_LOGISTIC && a != DN_LINEAR && a != DN_TANH && a != DN_LOGGY;
}

/* Randomise biases, BN scales and rolling statistics so none is trivial. */
static void randomise_params(dn_network *net, uint64_t *rng)
{
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        int n = l->out_c;
        if (l->biases && l->type != DN_BATCHNORM)
            for (int j = 0; j < n; ++j) l->biases[j] = dn_rand_uniform(rng, -.5f, .5f);
        if (l->scales)
            for (int j = 0; j < n; ++j) l->scales[j] = dn_rand_uniform(rng, .5f, 1.5f);
        if (l->rolling_mean)
            for (int j = 0; j < n; ++j) {
                l->rolling_mean[j] = dn_rand_uniform(rng, -.5f, .5f);
                l->rolling_variance[j] = dn_rand_uniform(rng, .3f, 1.5f);
            }
    }
}

typedef struct {
    const gc_case *c;
    dn_network *net;
    float *x, *truth, *r;
    uint64_t rng0;
    double margin;      /* distance of the point from the nearest kink */
    double lmag;        /* sum of |terms| of the loss at the last evaluation */
    float *base;        /* layer n-2's output at the unperturbed point */
} gc_ctx;

/* The loss in double. For LOSS_NET it is computed from the cost layer's
 * input (the logits for softmax), which is the same function as the layer's
 * float cost without its rounding; the layer's own values must agree. */
static double eval_loss(gc_ctx *g)
{
    dn_network *net = g->net;
    net->rng = g->rng0;
    dn_status st = dn_network_forward(net, g->x, g->truth, g->c->train);
    if (st != DN_OK) return NAN;
    const dn_layer *last = &net->layers[net->n - 1], *o = &net->layers[net->n - 2];
    size_t n = (size_t)o->batch * o->outputs;
    const float *base = g->base;
    double s = 0;
    /* lmag: sum of |terms| that differ from the unperturbed point (all of them
     * when there is none yet): the scale of the loss's rounding noise */
    g->lmag = 0;
    if (g->c->loss == LOSS_LINEAR) {
        for (size_t i = 0; i < n; ++i) {
            s += (double)g->r[i] * o->output[i];
            if (!base || base[i] != o->output[i]) g->lmag += fabs((double)g->r[i] * o->output[i]);
        }
        return s;
    }
    double worst = 0;   /* largest disagreement with the layer's own values */
    if (last->type == DN_SOFTMAX) {
        int per = last->inputs / last->softmax_groups;
        for (size_t g0 = 0; g0 < n; g0 += (size_t)per) {
            const float *x = o->output + g0;
            double mx = x[0], z = 0, mag = 0;
            int changed = !base;
            for (int i = 1; i < per; ++i) mx = fmax(mx, x[i]);
            for (int i = 0; i < per; ++i) z += exp((x[i] - mx) / last->temperature);
            for (int i = 0; i < per; ++i) {
                double logp = (x[i] - mx) / last->temperature - log(z);
                s -= g->truth[g0 + i] * logp;
                mag += fabs(g->truth[g0 + i] * logp) + fabs(x[i]);
                changed |= base && base[g0 + i] != x[i];
                worst = fmax(worst, fabs(exp(logp) - last->output[g0 + i]));
            }
            if (changed) g->lmag += mag;
        }
    } else {
        for (size_t i = 0; i < n; ++i) {
            double d = (double)g->truth[i] - o->output[i], a = fabs(d), e = 0;
            switch (last->cost_type) {
            case DN_COST_SSE: e = d * d; break;
            case DN_COST_L1: e = a; break;
            case DN_COST_SMOOTH: e = a < 1 ? d * d : 2 * a - 1; break;
            }
            s += e;
            if (!base || base[i] != o->output[i]) g->lmag += e + fabs(o->output[i]);
            worst = fmax(worst, fabs(e - last->output[i]) / fmax(1, e));
        }
    }
    if (!(worst <= 1e-5 && fabs(s - net->cost) <= 1e-4 * (fabs(s) + 1))) {
        fprintf(stderr, "  %s: the layer's values differ from the loss (by %g; cost %g, want %g)\n", g->c->name, worst,
                net->cost, s);
        return NAN;
    }
    return s;
}

/* Pre-activation values of every layer with a kinked activation, recomputed by
 * running that layer alone with a linear activation; returns the smallest
 * distance from any of them to a kink. Leaves every output as it was. */
static double kink_margin(gc_ctx *g)
{
    dn_network *net = g->net;
    net->rng = g->rng0;
    if (dn_network_forward(net, g->x, NULL, g->c->train) != DN_OK) return 0;
    double m = HUGE_VAL;
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        if (l->type == DN_MAXPOOL) {
            /* half the gap between each window's largest and second largest */
            const float *in = i ? net->layers[i - 1].output : net->input_buf;
            int off = -l->pad / 2;
            for (int b = 0; b < l->batch * l->c; ++b)
                for (int y = 0; y < l->out_h; ++y)
                    for (int x = 0; x < l->out_w; ++x) {
                        double best = -HUGE_VAL, second = -HUGE_VAL;
                        for (int v = y * l->stride + off; v < y * l->stride + off + l->size; ++v)
                            for (int u = x * l->stride + off; u < x * l->stride + off + l->size; ++u) {
                                if (v < 0 || v >= l->h || u < 0 || u >= l->w) continue;
                                double z = in[((size_t)b * l->h + v) * l->w + u];
                                if (z > best) { second = best; best = z; }
                                else if (z > second) second = z;
                            }
                        m = fmin(m, (best - second) / 2);
                    }
            continue;
        }
        if (l->type != DN_CONVOLUTIONAL && l->type != DN_CONNECTED && l->type != DN_SHORTCUT &&
            l->type != DN_ACTIVATION_LAYER)
            continue;
        dn_activation a = l->activation;
        if (!has_kinks(a)) continue;
        net->input = i ? net->layers[i - 1].output : net->input_buf;
        l->activation = DN_LINEAR;
        l->ops->forward(l, net);
        l->activation = a;
        for (size_t j = 0; j < (size_t)l->batch * l->outputs; ++j) m = fmin(m, kink_distance(l->output[j], a));
        l->ops->forward(l, net);
    }
    return m;
}

typedef struct {
    char name[96];
    float *data;       /* perturbed in place */
    float *analytic;   /* copy of the negative gradient after backward */
    size_t n;
} gc_tensor;

/* Derivative of L at *x. Central differences D(h) and D(h/2) combined by
 * Richardson, (4 D(h/2) - D(h)) / 3, so the truncation error is O(h^4).
 * *jump gets |forward - backward one-sided difference| at step h: a kink
 * inside the step shows as a jump twice the error it causes. */
static double numeric_grad(gc_ctx *g, float *x, double L0, float h, double *jump, double *lmag)
{
    float orig = *x, xs[4] = {orig + h, orig - h, orig + h / 2, orig - h / 2};
    double L[4];
    *lmag = 0;
    for (int i = 0; i < 4; ++i) {
        *x = xs[i];
        L[i] = eval_loss(g);
        *lmag = fmax(*lmag, g->lmag);
    }
    *x = orig;
    *jump = fabs((L[0] - L0) / ((double)xs[0] - orig) - (L0 - L[1]) / ((double)orig - xs[1]));
    double d1 = (L[0] - L[1]) / ((double)xs[0] - xs[1]), d2 = (L[2] - L[3]) / ((double)xs[2] - xs[3]);
    return (4 * d2 - d1) / 3;
}

/* |a - e| beyond the rounding allowance atol, relative to max(|a|, |e|, floor) */
static double rel_err(double a, double e, double floor_, double atol)
{
    double m = fabs(a) > fabs(e) ? fabs(a) : fabs(e);
    return fmax(0, fabs(a - e) - atol) / (m > floor_ ? m : floor_);
}

/* Tolerances (see the top of the file) */
#define STEP 2e-2f         /* finite-difference step for smooth cases          */
#define RTOL 1e-2          /* relative tolerance per element                    */
#define FLOOR 1e-2         /* ... relative to at least this much of the largest */
#define NTOL 3e-3          /* normalised error of a whole tensor                */
#define ULPS 2             /* rounding allowance: ulps of each changed loss term */

/* Compare one tensor; returns the number of wrong elements (plus one when
 * the normalised error is too large). */
static int check_tensor(gc_ctx *g, gc_tensor *t, double L0, int verbose)
{
    const gc_case *c = g->c;
    double k = c->k ? c->k : 1;
    /* in a kinked net a pre-activation moves by about step x gain (rarely
     * above 4 here): keep that well inside the kink margin */
    float h = c->kinks ? (float)fmin(STEP, g->margin / 4) : STEP;
    if (t->data == g->x && c->input_step) h = c->input_step;
    double *expect = malloc(t->n * sizeof *expect), *noise = malloc(t->n * sizeof *noise), jump;
    double scale = 0;
    for (size_t j = 0; j < t->n; ++j) {
        expect[j] = -k * numeric_grad(g, &t->data[j], L0, h, &jump, &noise[j]);
        if (fabs(expect[j]) > scale) scale = fabs(expect[j]);
        if (fabs(t->analytic[j]) > scale) scale = fabs(t->analytic[j]);
    }
    double floor_ = scale * FLOOR > 1e-6 ? scale * FLOOR : 1e-6;
    double atol_max = 0;
    int bad = 0, skipped = 0, retried = 0;
    size_t worst = 0;
    double maxerr = 0, d2 = 0, e2sum = 0;
    for (size_t j = 0; j < t->n; ++j) {
        /* the loss's float rounding (ULPS of each term the step changed) over
         * the step: a difference below that is noise, not error */
        double atol = ULPS * FLT_EPSILON * noise[j] / h, lm;
        atol_max = fmax(atol_max, atol);
        double a = t->analytic[j], err = rel_err(a, expect[j], floor_, atol);
        if (err > RTOL / 4) {
            /* doubtful: a smaller step has less truncation error (and
             * straddles fewer kinks) but more rounding noise */
            ++retried;
            double e2 = -k * numeric_grad(g, &t->data[j], L0, h / 10, &jump, &lm);
            double err2 = rel_err(a, e2, 5 * floor_, ULPS * FLT_EPSILON * lm / (h / 10));
            if (c->kinks && err > RTOL && err2 > RTOL && k * jump >= .5 * fabs(a - e2)) { ++skipped; continue; }
            if (err2 < err) { expect[j] = e2; err = err2; }
        }
        d2 += (a - expect[j]) * (a - expect[j]);
        e2sum += expect[j] * expect[j];
        if (err > maxerr) { maxerr = err; worst = j; }
        if (err > RTOL) ++bad;
    }
    double nerr = sqrt(d2 / fmax(e2sum, 1e-30));
    if (verbose || bad || nerr > NTOL)
        fprintf(stderr,
                "  %-28s %-34s n=%-4zu max err %.2e (at %zu: analytic %.6g numeric %.6g) norm err %.2e atol %.1e "
                "retried %d skipped %d%s\n",
                c->name, t->name, t->n, maxerr, worst, t->analytic[worst], expect[worst], nerr, atol_max, retried,
                skipped, (bad || nerr > NTOL) ? (c->corrupt ? "  caught (expected)" : "  FAIL") : "");
    if (!c->corrupt) {
        CHECK(bad == 0, "%s: %s: %d of %zu elements wrong, max err %.3g at %zu (analytic %g, numeric %g)", c->name,
              t->name, bad, t->n, maxerr, worst, t->analytic[worst], expect[worst]);
        CHECK(nerr <= NTOL, "%s: %s: normalised error %.3g", c->name, t->name, nerr);
        CHECK((size_t)skipped * 10 <= t->n + 9, "%s: %s: %d of %zu elements skipped at kinks", c->name, t->name,
              skipped, t->n);
        CHECK(scale > 1e-4, "%s: %s: gradient is all zero, the check means nothing", c->name, t->name);
    }
    free(expect);
    free(noise);
    return bad + (nerr > NTOL);
}

/* Run one case; returns the number of wrong elements over all tensors. */
static int gradcheck(const gc_case *c)
{
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("GRADCHECK_VERBOSE") != NULL;
    dn_parse_options opt = {.seed = name_seed(c->name), .quiet = 1};
    dn_network *net = NULL;
    int w0 = warnings;
    dn_status st = dn_network_parse_string(cfg_text(c), c->name, &opt, &net);
    CHECK(st == DN_OK, "%s: parse: %s", c->name, dn_last_error());
    if (st != DN_OK) return 1;
    CHECK(warnings == w0, "%s: cfg produced warnings", c->name);
    CHECK(net->layers[0].type == DN_ACTIVATION_LAYER && net->layers[0].activation == DN_LINEAR,
          "%s: layer 0 must be a linear [activation]", c->name);

    uint64_t rng = name_seed(c->name) * 3 + 7;
    randomise_params(net, &rng);
    gc_ctx g = {.c = c, .net = net, .rng0 = net->rng, .margin = HUGE_VAL};
    size_t nin = (size_t)net->batch * net->inputs;
    g.x = malloc(nin * sizeof *g.x);
    float lo = c->lo, hi = c->hi;
    if (lo == 0 && hi == 0) { lo = -1; hi = 1; }
    if (c->distinct) {
        /* a shuffled grid: every pair of inputs differs by at least `gap` */
        for (size_t i = 0; i < nin; ++i) g.x[i] = ((float)i - (float)nin / 2) * c->gap;
        for (size_t i = nin - 1; i > 0; --i) {
            size_t j = dn_rand_u64(&rng) % (i + 1);
            float tmp = g.x[i]; g.x[i] = g.x[j]; g.x[j] = tmp;
        }
    } else {
        /* With kinks inside (kinked activations, maxpool windows), draw inputs
         * until every pre-activation is at least 5e-2 from a kink (keeping the
         * best draw; at least 2e-2 is required): steps well inside the margin
         * then never straddle a kink. */
        float *best = malloc(nin * sizeof *best);
        double margin = -1;
        int tries = 0;
        do {
            for (size_t i = 0; i < nin; ++i) {
                do g.x[i] = dn_rand_uniform(&rng, lo, hi);
                while (c->avoid_kinks_of && near_kink(g.x[i], (dn_activation)(c->avoid_kinks_of - 1), 3e-2f));
            }
            double m = c->kinks ? kink_margin(&g) : HUGE_VAL;
            if (m > margin) { margin = m; dn_copy(best, g.x, nin); }
        } while (margin < 5e-2 && ++tries < 2000);
        dn_copy(g.x, best, nin);
        free(best);
        g.margin = margin;
        CHECK(margin >= 2e-2, "%s: no input found with pre-activations away from kinks (margin %g)", c->name, margin);
        if (verbose && c->kinks) fprintf(stderr, "  %-28s kink margin %.3g after %d redraws\n", c->name, margin, tries);
    }
    const dn_layer *last = &net->layers[net->n - 1], *before = &net->layers[net->n - 2];
    size_t nout = (size_t)net->batch * before->outputs;
    if (c->loss == LOSS_LINEAR) {
        g.r = malloc(nout * sizeof *g.r);
        for (size_t i = 0; i < nout; ++i) g.r[i] = dn_rand_uniform(&rng, -1, 1);
    } else {
        size_t nt = (size_t)net->batch * net->truths;
        g.truth = calloc(nt, sizeof *g.truth);
        if (last->type == DN_SOFTMAX) {
            /* a distribution per softmax group (alternating one-hot and soft) */
            int per = last->inputs / last->softmax_groups;
            for (size_t s = 0; s < nt / (size_t)per; ++s) {
                float *t = g.truth + s * per, sum = 0;
                if (s % 2 == 0) t[dn_rand_u64(&rng) % (uint64_t)per] = 1;
                else {
                    for (int i = 0; i < per; ++i) sum += t[i] = dn_rand_uniform(&rng, .05f, 1);
                    for (int i = 0; i < per; ++i) t[i] /= sum;
                }
            }
        } else {
            /* truth = x + offset, |offset| in [.2,.8] or [1.2,2]: off the kinks at 0 and +-1 */
            net->rng = g.rng0;
            CHECK_OK(dn_network_forward(net, g.x, NULL, c->train));
            for (size_t i = 0; i < nt; ++i) {
                float off = (i % 2) ? dn_rand_uniform(&rng, .2f, .8f) : dn_rand_uniform(&rng, 1.2f, 2.f);
                g.truth[i] = before->output[i] + (dn_rand_u64(&rng) & 1 ? off : -off);
            }
        }
    }

    /* analytic pass */
    dn_param p[DN_MAX_PARAMS];
    for (int i = 0; i < net->n; ++i) {
        int np = dn_layer_params(&net->layers[i], p);
        for (int q = 0; q < np; ++q)
            if (p[q].updates) dn_fill(p[q].updates, p[q].n, 0);
    }
    net->rng = g.rng0;
    CHECK_OK(dn_network_forward(net, g.x, g.truth, c->train));
    if (c->loss == LOSS_LINEAR)
        for (size_t i = 0; i < nout; ++i) net->layers[net->n - 2].delta[i] = -g.r[i];
    if (c->corrupt) c->corrupt(net, 0);
    dn_network_backward(net);
    if (c->corrupt) c->corrupt(net, 1);

    gc_tensor t[1 + 16 * DN_MAX_PARAMS];
    int nt = 0;
    t[nt] = (gc_tensor){"input", g.x, NULL, nin};
    t[nt].analytic = malloc(nin * sizeof(float));
    dn_copy(t[nt].analytic, net->layers[0].delta, nin);
    ++nt;
    for (int i = 0; i < net->n && nt < (int)(sizeof t / sizeof *t); ++i) {
        int np = dn_layer_params(&net->layers[i], p);
        for (int q = 0; q < np && nt < (int)(sizeof t / sizeof *t); ++q) {
            if (!p[q].updates) continue;
            t[nt].data = p[q].data;
            t[nt].n = p[q].n;
            snprintf(t[nt].name, sizeof t[nt].name, "layer %d %s %s", i, dn_layer_type_name(net->layers[i].type),
                     p[q].name);
            t[nt].analytic = malloc(p[q].n * sizeof(float));
            dn_copy(t[nt].analytic, p[q].updates, p[q].n);
            ++nt;
        }
    }

    double L0 = eval_loss(&g);
    g.base = malloc(nout * sizeof *g.base);
    dn_copy(g.base, net->layers[net->n - 2].output, nout);
    CHECK(isfinite(L0), "%s: loss is %g", c->name, L0);
    int bad = 0;
    for (int i = 0; i < nt; ++i) {
        bad += check_tensor(&g, &t[i], L0, verbose);
        free(t[i].analytic);
    }
    free(g.x); free(g.r); free(g.truth); free(g.base);
    dn_network_free(net);
    return bad;
}

/* ------------------------------------------------------------ cases */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    static char bufs[8][2048];
    static int next;
    char *b = bufs[next++ % 8];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof bufs[0], f, ap);
    va_end(ap);
    return b;
}

static void test_convolutional(void)
{
    static const struct { const char *name; int w, h, c; const char *opts; } convs[] = {
        {"conv 3x3 pad s1", 5, 5, 3, "filters=4\nsize=3\nstride=1\npad=1\n"},
        {"conv 3x3 nopad s1", 6, 7, 2, "filters=3\nsize=3\nstride=1\npad=0\n"},
        {"conv 3x3 pad s2", 7, 6, 2, "filters=3\nsize=3\nstride=2\npad=1\n"},
        {"conv 5x5 pad s1", 5, 5, 2, "filters=2\nsize=5\nstride=1\npad=1\n"},
        {"conv 5x5 nopad s2", 7, 8, 2, "filters=3\nsize=5\nstride=2\n"},
        {"conv 1x1 s1", 4, 3, 3, "filters=4\nsize=1\nstride=1\n"},
        {"conv 1x1 s2", 5, 5, 3, "filters=2\nsize=1\nstride=2\n"},
        {"conv 1x1 padding=1", 3, 4, 2, "filters=2\nsize=1\nstride=1\npadding=1\n"},
        {"conv 2x2 pad s1 (grows)", 3, 3, 2, "filters=2\nsize=2\nstride=1\npad=1\n"},
        {"conv groups=2", 5, 4, 4, "filters=6\nsize=3\nstride=1\npad=1\ngroups=2\n"},
        {"conv depthwise s2", 6, 5, 3, "filters=3\nsize=3\nstride=2\npad=1\ngroups=3\n"},
        {"conv depthwise 1x1", 4, 4, 3, "filters=3\nsize=1\ngroups=3\n"},
        {"conv groups=2 1x1 s2", 5, 5, 4, "filters=2\nsize=1\nstride=2\ngroups=2\n"},
    };
    for (size_t i = 0; i < sizeof convs / sizeof *convs; ++i) {
        gc_case c = {.name = convs[i].name, .batch = 2, .w = convs[i].w, .h = convs[i].h, .c = convs[i].c,
                     .body = fmt("[convolutional]\n%sactivation=logistic\n", convs[i].opts), .train = 1};
        gradcheck(&c);
    }
    /* batch norm inside the conv: training (batch statistics) and inference (rolling) */
    static const char *bn_opts[] = {
        "filters=3\nsize=3\nstride=2\npad=1\n",            /* 2x2 output, batch 2: N=8 per channel */
        "filters=4\nsize=3\nstride=1\npad=1\ngroups=2\n",
        "filters=2\nsize=1\nstride=1\n",
    };
    for (int train = 1; train >= 0; --train)
        for (size_t i = 0; i < sizeof bn_opts / sizeof *bn_opts; ++i) {
            gc_case c = {.name = fmt("conv bn %s #%zu", train ? "train" : "infer", i), .batch = 2, .w = 4, .h = 4,
                         .c = 4, .body = fmt("[convolutional]\n%sbatch_normalize=1\nactivation=linear\n", bn_opts[i]),
                         .train = train};
            gradcheck(&c);
            c.name = fmt("conv bn %s tanh #%zu", train ? "train" : "infer", i);
            c.body = fmt("[convolutional]\n%sbatch_normalize=1\nactivation=tanh\n", bn_opts[i]);
            gradcheck(&c);
        }
    /* every activation after a convolution (kinks inside: explained skips allowed) */
    for (int a = 0; a < DN_ACTIVATION_COUNT; ++a) {
        gc_case c = {.name = fmt("conv act %s", dn_activation_name((dn_activation)a)), .batch = 2, .w = 4, .h = 4,
                     .c = 2, .body = fmt("[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=%s\n",
                                         dn_activation_name((dn_activation)a)),
                     .train = 1, .kinks = has_kinks((dn_activation)a),
                     .lo = -2, .hi = 2};
        gradcheck(&c);
        c.name = fmt("conv bn act %s", dn_activation_name((dn_activation)a));
        /* stride 2: 2x2 outputs, 12 per channel, so a weight step crosses few kinks */
        c.body = fmt("[convolutional]\nfilters=3\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=%s\n",
                     dn_activation_name((dn_activation)a));
        c.batch = 3;
        gradcheck(&c);
    }
}

static void test_connected(void)
{
    gc_case c = {.name = "connected logistic", .batch = 3, .w = 3, .h = 2, .c = 2,
                 .body = "[connected]\noutput=4\nactivation=logistic\n", .train = 1};
    gradcheck(&c);
    c = (gc_case){.name = "connected leaky", .batch = 2, .w = 2, .h = 2, .c = 3,
                  .body = "[connected]\noutput=5\nactivation=leaky\n", .train = 1, .kinks = 1};
    gradcheck(&c);
    /* batch 4: N=4 per unit, so a biased variance would be off by ~15% */
    for (int train = 1; train >= 0; --train) {
        c = (gc_case){.name = train ? "connected bn train" : "connected bn infer", .batch = 4, .w = 2, .h = 2, .c = 2,
                      .body = "[connected]\noutput=3\nbatch_normalize=1\nactivation=linear\n", .train = train};
        gradcheck(&c);
        c.name = train ? "connected bn train logistic" : "connected bn infer logistic";
        c.body = "[connected]\noutput=3\nbatch_normalize=1\nactivation=logistic\n";
        c.batch = 3;
        gradcheck(&c);
    }
    c = (gc_case){.name = "conv -> connected", .batch = 2, .w = 4, .h = 3, .c = 2,
                  .body = "[convolutional]\nfilters=2\nsize=3\nstride=2\npad=1\nactivation=tanh\n"
                          "[connected]\noutput=3\nactivation=tanh\n",
                  .train = 1};
    gradcheck(&c);
}

static void test_pooling(void)
{
    static const struct { const char *name; int w, h; const char *body; } pools[] = {
        {"maxpool 2/2", 5, 5, "[maxpool]\nsize=2\nstride=2\n"},
        {"maxpool 2/2 even", 6, 4, "[maxpool]\nsize=2\nstride=2\n"},
        {"maxpool 3/1", 4, 5, "[maxpool]\nsize=3\nstride=1\n"},
        {"maxpool 3/2 padding=0", 7, 7, "[maxpool]\nsize=3\nstride=2\npadding=0\n"},
        {"maxpool 3/2 padding=1", 6, 5, "[maxpool]\nsize=3\nstride=2\npadding=1\n"},
        {"maxpool 2/1 padding=0", 4, 4, "[maxpool]\nsize=2\nstride=1\npadding=0\n"},
        {"maxpool 2/1 default", 3, 4, "[maxpool]\nsize=2\nstride=1\n"},
        {"local_avgpool 3/1", 4, 5, "[local_avgpool]\nsize=3\nstride=1\n"},
        {"local_avgpool 2/2", 5, 5, "[local_avgpool]\nsize=2\nstride=2\n"},
        {"local_avgpool 3/2 padding=0", 7, 6, "[local_avgpool]\nsize=3\nstride=2\npadding=0\n"},
        {"local_avgpool 3/2 padding=3", 5, 5, "[local_avg]\nsize=3\nstride=2\npadding=3\n"},
        {"avgpool", 3, 4, "[avgpool]\n"},
    };
    for (size_t i = 0; i < sizeof pools / sizeof *pools; ++i) {
        gc_case c = {.name = pools[i].name, .batch = 2, .w = pools[i].w, .h = pools[i].h, .c = 2,
                     .body = pools[i].body, .train = 1, .distinct = 1, .gap = .05f};
        gradcheck(&c);
    }
    /* pooling inside a net with parameters */
    gc_case c = {.name = "conv -> maxpool -> conv", .batch = 2, .w = 4, .h = 4, .c = 2,
                 .body = "[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=linear\n"
                         "[maxpool]\nsize=2\nstride=2\n"
                         "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=linear\n",
                 .train = 1, .kinks = 1};
    gradcheck(&c);
}

static void test_dropout(void)
{
    gc_case c = {.name = "dropout train", .batch = 3, .w = 4, .h = 3, .c = 2,
                 .body = "[dropout]\nprobability=0.3\n", .train = 1};
    gradcheck(&c);
    c.name = "dropout infer";
    c.train = 0;
    gradcheck(&c);
    c = (gc_case){.name = "conv -> dropout -> conv", .batch = 2, .w = 4, .h = 4, .c = 2,
                  .body = "[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=tanh\n[dropout]\nprobability=0.5\n"
                          "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n",
                  .train = 1};
    gradcheck(&c);

    /* the mask really drops and scales, and repeats when the rng is restored */
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string("[net]\nbatch=2\nwidth=10\nheight=10\nchannels=1\n[dropout]\nprobability=0.3\n"
                                     "[cost]\n", "dropout", NULL, &net));
    if (!net) return;
    float x[200], out1[200];
    for (int i = 0; i < 200; ++i) x[i] = 1 + i * .01f;
    uint64_t s = net->rng;
    CHECK_OK(dn_network_forward(net, x, NULL, 1));
    int zero = 0, scaled = 0;
    for (int i = 0; i < 200; ++i) {
        out1[i] = net->layers[0].output[i];
        if (out1[i] == 0) ++zero;
        else if (fabsf(out1[i] - x[i] / .7f) < 1e-5f * x[i]) ++scaled;
    }
    CHECK(zero + scaled == 200 && zero > 30 && zero < 90, "dropout: %d dropped, %d scaled of 200", zero, scaled);
    net->rng = s;
    CHECK_OK(dn_network_forward(net, x, NULL, 1));
    CHECK(memcmp(out1, net->layers[0].output, sizeof out1) == 0, "dropout: same rng, different mask");
    CHECK_OK(dn_network_forward(net, x, NULL, 0));
    CHECK(memcmp(x, net->layers[0].output, sizeof x) == 0, "dropout: inference is not the identity");
    dn_network_free(net);
}

static void test_softmax_cost(void)
{
    gc_case c = {.name = "softmax", .batch = 3, .w = 5, .h = 1, .c = 1, .body = "[softmax]\n", .train = 1,
                 .loss = LOSS_NET, .lo = -2, .hi = 2};
    gradcheck(&c);
    c.name = "softmax groups=3";
    c.w = 2; c.h = 2; c.c = 3;     /* 12 inputs, 3 groups of 4 */
    c.body = "[softmax]\ngroups=3\n";
    gradcheck(&c);
    c = (gc_case){.name = "connected -> softmax", .batch = 4, .w = 3, .h = 3, .c = 2,
                  .body = "[connected]\noutput=5\nactivation=linear\n[softmax]\n", .train = 1, .loss = LOSS_NET};
    gradcheck(&c);
    c = (gc_case){.name = "conv bn -> avgpool -> softmax", .batch = 3, .w = 4, .h = 4, .c = 2,
                  .body = "[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\nactivation=tanh\n"
                          "[avgpool]\n[softmax]\n",
                  .train = 1, .loss = LOSS_NET};
    gradcheck(&c);

    /* [cost]: sse and smooth apply half the gradient of the reported cost (upstream) */
    static const struct { const char *type; double k; } costs[] = {
        {"sse", .5}, {"L1", 1}, {"smooth", .5},
    };
    for (size_t i = 0; i < sizeof costs / sizeof *costs; ++i) {
        c = (gc_case){.name = fmt("cost %s", costs[i].type), .batch = 2, .w = 3, .h = 2, .c = 2,
                      .body = fmt("[cost]\ntype=%s\n", costs[i].type), .train = 1, .loss = LOSS_NET, .k = costs[i].k};
        gradcheck(&c);
        c.name = fmt("cost %s scale=2.5", costs[i].type);
        c.body = fmt("[cost]\ntype=%s\nscale=2.5\n", costs[i].type);
        c.k = costs[i].k * 2.5;
        gradcheck(&c);
    }
    c = (gc_case){.name = "connected -> cost sse", .batch = 3, .w = 2, .h = 2, .c = 2,
                  .body = "[connected]\noutput=3\nactivation=linear\n[cost]\n", .train = 1, .loss = LOSS_NET, .k = .5};
    gradcheck(&c);
}

static void test_route(void)
{
    gc_case c = {.name = "route two inputs", .batch = 2, .w = 5, .h = 5, .c = 2,
                 .body = "[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=logistic\n"
                         "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n"
                         "[route]\nlayers=-1,-2\n"
                         "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=linear\n",
                 .train = 1};
    gradcheck(&c);
    /* three inputs, one of them the input itself; layer 1 feeds two routes */
    c = (gc_case){.name = "route three inputs, reuse", .batch = 2, .w = 4, .h = 5, .c = 2,
                  .body = "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n"          /* 1 */
                          "[convolutional]\nfilters=3\nsize=1\nactivation=logistic\n"            /* 2 */
                          "[route]\nlayers=0,-1,1\n"                                              /* 3 */
                          "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=linear\n"        /* 4 */
                          "[route]\nlayers=1,-1,0\n",                                             /* 5 */
                  .train = 1};
    gradcheck(&c);
    c = (gc_case){.name = "route single earlier layer", .batch = 3, .w = 3, .h = 3, .c = 2,
                  .body = "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n"
                          "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n"
                          "[route]\nlayers=-2\n"
                          "[shortcut]\nfrom=2\n",
                  .train = 1};
    gradcheck(&c);
}

static void test_shortcut(void)
{
    static const struct { const char *name; int w, h, c; const char *body; int kinks; } cases[] = {
        {"shortcut same shape", 5, 5, 3,
         "[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=logistic\n"
         "[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=-2\n", 0},
        {"shortcut from input", 4, 4, 2,
         "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=0\n", 0},
        {"shortcut from previous", 4, 4, 2,
         "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=-1\nalpha=0.5\nbeta=2\n", 0},
        {"shortcut from larger s2", 6, 6, 2,
         "[convolutional]\nfilters=3\nsize=3\nstride=2\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=0\n", 0},
        {"shortcut from larger more ch", 6, 6, 3,
         "[convolutional]\nfilters=2\nsize=3\nstride=2\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=0\n", 0},
        {"shortcut from smaller", 6, 6, 3,
         "[convolutional]\nfilters=2\nsize=3\nstride=2\npad=1\nactivation=tanh\n"
         "[route]\nlayers=0\n"
         "[shortcut]\nfrom=1\n", 0},
        {"shortcut more channels", 5, 5, 2,
         "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=tanh\n"
         "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=1\n", 0},
        {"shortcut fewer channels", 5, 5, 2,
         "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=0\n", 0},
        {"shortcut alpha beta", 4, 5, 3,
         "[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=0\nalpha=0.6\nbeta=-1.4\n", 0},
        {"shortcut alpha beta larger", 6, 6, 2,
         "[convolutional]\nfilters=3\nsize=3\nstride=2\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=0\nalpha=1.7\nbeta=0.3\n", 0},
        {"shortcut alpha beta smaller", 6, 6, 3,
         "[convolutional]\nfilters=2\nsize=3\nstride=2\npad=1\nactivation=tanh\n"
         "[route]\nlayers=0\n"
         "[shortcut]\nfrom=1\nalpha=0.6\nbeta=-1.4\n", 0},
        {"shortcut alpha beta fewer ch", 5, 5, 2,
         "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=0\nalpha=0.5\nbeta=1.5\n", 0},
        {"shortcut logistic", 5, 4, 2,
         "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=linear\n"
         "[shortcut]\nfrom=0\nactivation=logistic\n", 0},
        {"shortcut leaky", 5, 4, 2,
         "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=linear\n"
         "[shortcut]\nfrom=0\nactivation=leaky\nalpha=0.8\n", 1},
        {"shortcut chain", 4, 4, 2,
         "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=0\n"
         "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n"
         "[shortcut]\nfrom=-2\nactivation=tanh\n", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
        gc_case c = {.name = cases[i].name, .batch = 2, .w = cases[i].w, .h = cases[i].h, .c = cases[i].c,
                     .body = cases[i].body, .train = 1, .kinks = cases[i].kinks};
        gradcheck(&c);
    }
}

static void test_batchnorm(void)
{
    for (int train = 1; train >= 0; --train) {
        gc_case c = {.name = train ? "batchnorm train" : "batchnorm infer", .batch = 2, .w = 3, .h = 3, .c = 2,
                     .body = "[batchnorm]\n", .train = train};
        gradcheck(&c);
        c.name = train ? "batchnorm train b3 2x2" : "batchnorm infer b3 2x2";
        c.batch = 3; c.w = 2; c.h = 2; c.c = 3;
        gradcheck(&c);
        c.name = train ? "batchnorm train 1x1" : "batchnorm infer 1x1";
        c.batch = 4; c.w = 1; c.h = 1; c.c = 3;
        gradcheck(&c);
        c.name = train ? "conv -> batchnorm train" : "conv -> batchnorm infer";
        c.batch = 2; c.w = 4; c.h = 3; c.c = 2;
        c.body = "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n[batchnorm]\n";
        gradcheck(&c);
    }
    /* a variance near epsilon: the 1e-5 inside the square root matters here */
    gc_case c = {.name = "batchnorm train tiny variance", .batch = 2, .w = 2, .h = 2, .c = 2,
                 .body = "[batchnorm]\n", .train = 1, .lo = -4e-3f, .hi = 4e-3f, .input_step = 1e-4f};
    gradcheck(&c);
}

/* Forward values of batch norm: unbiased batch variance, eps 1e-5 inside the
 * square root, rolling statistics 0.99/0.01, inference with rolling stats. */
static void test_batchnorm_forward_values(void)
{
    const int B = 3, C = 2, S = 4;
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string("[net]\nbatch=3\nwidth=2\nheight=2\nchannels=2\n[batchnorm]\n[cost]\n",
                                     "bn values", NULL, &net));
    if (!net) return;
    dn_layer *l = &net->layers[0];
    float x[3 * 2 * 4];
    uint64_t rng = 99;
    for (int i = 0; i < B * C * S; ++i) {
        int ch = (i / S) % C;
        /* channel 1 has a variance of ~1e-5, so eps placement is visible */
        x[i] = ch == 0 ? dn_rand_uniform(&rng, -2, 2) : .3f + dn_rand_uniform(&rng, -5e-3f, 5e-3f);
    }
    float scale[2] = {1.5f, .7f}, bias[2] = {.2f, -.4f}, rm[2] = {.1f, .3f}, rv[2] = {.8f, 2e-5f};
    for (int k = 0; k < C; ++k) {
        l->scales[k] = scale[k]; l->biases[k] = bias[k];
        l->rolling_mean[k] = rm[k]; l->rolling_variance[k] = rv[k];
    }
    CHECK_OK(dn_network_forward(net, x, NULL, 1));
    double maxerr = 0;
    for (int k = 0; k < C; ++k) {
        double m = 0, v = 0;
        for (int b = 0; b < B; ++b)
            for (int s = 0; s < S; ++s) m += x[(b * C + k) * S + s];
        m /= B * S;
        for (int b = 0; b < B; ++b)
            for (int s = 0; s < S; ++s) v += (x[(b * C + k) * S + s] - m) * (x[(b * C + k) * S + s] - m);
        v /= B * S - 1;
        for (int b = 0; b < B; ++b)
            for (int s = 0; s < S; ++s) {
                int i = (b * C + k) * S + s;
                double want = scale[k] * (x[i] - m) / sqrt(v + 1e-5) + bias[k];
                double err = fabs(l->output[i] - want) / (fabs(want) > 1 ? fabs(want) : 1);
                if (err > maxerr) maxerr = err;
            }
        CHECK(fabs(l->rolling_mean[k] - (.99 * rm[k] + .01 * m)) < 1e-5, "bn rolling mean %d: %g, want %g", k,
              l->rolling_mean[k], .99 * rm[k] + .01 * m);
        CHECK(fabs(l->rolling_variance[k] - (.99 * rv[k] + .01 * v)) < 1e-5 * (rv[k] + v) + 1e-9,
              "bn rolling variance %d: %g, want %g (unbiased batch variance %g)", k, l->rolling_variance[k],
              .99 * rv[k] + .01 * v, v);
    }
    CHECK(maxerr < 2e-4, "bn training forward: max error %g", maxerr);

    for (int k = 0; k < C; ++k) { l->rolling_mean[k] = rm[k]; l->rolling_variance[k] = rv[k]; }
    CHECK_OK(dn_network_forward(net, x, NULL, 0));
    maxerr = 0;
    for (int i = 0; i < B * C * S; ++i) {
        int k = (i / S) % C;
        double want = scale[k] * (x[i] - rm[k]) / sqrt(rv[k] + 1e-5) + bias[k];
        double err = fabs(l->output[i] - want) / (fabs(want) > 1 ? fabs(want) : 1);
        if (err > maxerr) maxerr = err;
    }
    CHECK(maxerr < 1e-5, "bn inference forward: max error %g", maxerr);
    CHECK(l->rolling_mean[0] == rm[0] && l->rolling_variance[1] == rv[1], "bn inference changed the rolling stats");
    dn_network_free(net);
}

static void test_activation_layer(void)
{
    for (int a = 0; a < DN_ACTIVATION_COUNT; ++a) {
        const char *nm = dn_activation_name((dn_activation)a);
        gc_case c = {.name = fmt("activation %s", nm), .batch = 2, .w = 5, .h = 4, .c = 2,
                     .body = fmt("[activation]\nactivation=%s\n", nm), .train = 1, .lo = -5, .hi = 5,
                     .avoid_kinks_of = a + 1};
        gradcheck(&c);
        /* and around the interesting region of each */
        c.name = fmt("activation %s narrow", nm);
        c.lo = -1.5f; c.hi = 1.5f;
        gradcheck(&c);
    }
    /* stair: slope 0 on [2k, 2k+1), slope 1 on [2k+1, 2k+2); the gradient from
     * y must be exactly that away from the integers */
    for (int i = -6; i < 6; ++i) {
        float x = i + .5f, y = dn_activate(x, DN_STAIR), g = dn_gradient(y, DN_STAIR);
        float want = ((i % 2) + 2) % 2 ? 1.f : 0.f;
        CHECK(g == want && isfinite(y), "stair at %g: y %g gradient %g, want %g", x, y, g, want);
        CHECK(fabsf(dn_activate(x + 1e-3f, DN_STAIR) - y - want * 1e-3f) < 1e-5f, "stair slope at %g", x);
    }
    /* every activation's forward and f'(y) agree with a derivative of f away from kinks */
    for (int a = 0; a < DN_ACTIVATION_COUNT; ++a) {
        int bad = 0;
        for (int i = 0; i <= 400; ++i) {
            float x = -5 + i * .025f;
            if (near_kink(x, (dn_activation)a, 2e-2f)) continue;
            double num = ((double)dn_activate(x + 1e-3f, (dn_activation)a) - dn_activate(x - 1e-3f, (dn_activation)a)) /
                         ((double)(x + 1e-3f) - (x - 1e-3f));
            double g = dn_gradient(dn_activate(x, (dn_activation)a), (dn_activation)a);
            if (fabs(num - g) > 2e-3 * (fabs(g) > 1 ? fabs(g) : 1)) {
                if (!bad) fprintf(stderr, "  %s at %g: f'(y) %g numeric %g\n", dn_activation_name(a), x, g, num);
                ++bad;
            }
        }
        CHECK(bad == 0, "activation %s: %d points where f'(y) differs from the numeric derivative",
              dn_activation_name((dn_activation)a), bad);
    }
}

/* Accumulation: two backward passes without zeroing give twice the updates. */
static void test_accumulation(void)
{
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string("[net]\nbatch=2\nwidth=4\nheight=4\nchannels=2\n"
                                     "[convolutional]\nfilters=3\nsize=3\npad=1\nbatch_normalize=1\nactivation=tanh\n"
                                     "[connected]\noutput=3\nactivation=linear\n[softmax]\n", "accum", NULL, &net));
    if (!net) return;
    float x[64], y[6] = {1, 0, 0, 0, 0, 1};
    uint64_t rng = 5;
    for (int i = 0; i < 64; ++i) x[i] = dn_rand_uniform(&rng, -1, 1);
    CHECK_OK(dn_network_forward(net, x, y, 1));
    dn_network_backward(net);
    float once[27 * 2];
    size_t nw = net->layers[0].nweights;
    CHECK(nw <= 54, "unexpected weight count %zu", nw);
    dn_copy(once, net->layers[0].weight_updates, nw);
    float b1 = net->layers[1].bias_updates[2];
    CHECK_OK(dn_network_forward(net, x, y, 1));
    dn_network_backward(net);
    double maxerr = 0, maxabs = 0;
    for (size_t i = 0; i < nw; ++i) {
        double e = fabs(net->layers[0].weight_updates[i] - 2 * once[i]);
        if (e > maxerr) maxerr = e;
        if (fabs(once[i]) > maxabs) maxabs = fabs(once[i]);
    }
    CHECK(maxabs > 1e-4 && maxerr <= 1e-5 * maxabs, "updates do not accumulate: max err %g of %g", maxerr, maxabs);
    CHECK(fabsf(net->layers[1].bias_updates[2] - 2 * b1) <= 1e-6f * fabsf(b1) + 1e-9f,
          "bias updates do not accumulate");
    dn_network_free(net);
}

/* The checker itself must catch a wrong backward pass. */
static void corrupt_activation(dn_network *net, int undo)
{
    net->layers[1].activation = undo ? DN_LOGISTIC : DN_LINEAR;
}
static void corrupt_bn_variance(dn_network *net, int undo)
{
    /* as if backward used the biased variance (divided by N, not N-1) */
    dn_layer *l = &net->layers[1];
    float n = (float)l->batch * l->out_w * l->out_h;
    if (!undo)
        for (int k = 0; k < l->out_c; ++k) l->variance[k] *= (n - 1) / n;
}
static void corrupt_shortcut_beta(dn_network *net, int undo) { net->layers[2].beta = undo ? 1 : 1.05f; }

static void test_checker_catches_bugs(void)
{
    gc_case c = {.name = "meta: wrong activation gradient", .batch = 2, .w = 4, .h = 4, .c = 2,
                 .body = "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=logistic\n", .train = 1,
                 .corrupt = corrupt_activation};
    CHECK(gradcheck(&c) > 0, "the checker missed a wrong activation gradient");
    c = (gc_case){.name = "meta: biased bn variance", .batch = 2, .w = 4, .h = 4, .c = 2,
                  .body = "[convolutional]\nfilters=2\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=linear\n",
                  .train = 1, .corrupt = corrupt_bn_variance};
    CHECK(gradcheck(&c) > 0, "the checker missed a biased batch-norm variance in backward");
    c = (gc_case){.name = "meta: shortcut beta off by 5%", .batch = 2, .w = 4, .h = 4, .c = 2,
                  .body = "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=tanh\n[shortcut]\nfrom=0\n",
                  .train = 1, .corrupt = corrupt_shortcut_beta};
    CHECK(gradcheck(&c) > 0, "the checker missed a 5%% error in shortcut beta");
}

int main(void)
{
    dn_set_warning_sink(count_warning, NULL);
    test_checker_catches_bugs();
    test_convolutional();
    test_connected();
    test_pooling();
    test_dropout();
    test_softmax_cost();
    test_route();
    test_shortcut();
    test_batchnorm();
    test_batchnorm_forward_values();
    test_activation_layer();
    test_accumulation();
    TEST_MAIN_END();
}
