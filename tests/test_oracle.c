/*
 * test_oracle.c — our framework against upstream Darknet (Debian's libdarknet,
 * pjreddie 2018-09-14), driven through tests/oracle/upstream_harness.c, which
 * is linked only against upstream. Every comparison starts from weights that
 * WE generate and save, so both sides compute from identical bits:
 *
 *   a. forward, layer by layer, in inference mode;
 *   b. SGD: every layer's delta after one training forward and backward, the
 *      loss, and the weights after training on the same rows (momentum,
 *      decay, per-layer learning_rate, subdivisions, burn_in and steps
 *      policy); the learning-rate schedule of every policy;
 *   c. .weights written by either side load in the other with identical
 *      arrays, plus crafted 32-bit-seen and transposed-connected files;
 *   d. the layer shape table of every classification cfg Debian ships whose
 *      layers we support;
 *   e. letterboxed predictions (top-1) on generated PNG images.
 *
 * Known, documented deviations that the tolerances account for:
 *   - batch norm: ours uses sqrt(var + 1e-5) everywhere; upstream's CPU forward
 *     divides by sqrt(var) + 1e-6. Variances are kept moderate (see
 *     randomize) so the difference stays a few 1e-6.
 *   - batch-norm backward: ours is the exact derivative of the unbiased-variance
 *     forward (1/(N-1)); upstream uses 1/N in the variance term. Arrays whose
 *     gradient flows through a training batch norm get a looser tolerance
 *     (it is O(1/N) of the variance term, N = batch x spatial per channel).
 *     In training, batch variances replace the rolling ones in the epsilon
 *     deviation above; the case with a standalone [batchnorm] after a
 *     plain convolution therefore compares everything at 1e-3.
 *   - a standalone [batchnorm] learns its scales here, not upstream: those
 *     scales are not compared (upstream's must stay as loaded), and cases
 *     with one run exactly one update.
 *   - a 1x1 convolution with stride 2 is garbage upstream: never used here.
 *   - upstream's 1x1 convolution, [batchnorm] and [activation] backward
 *     OVERWRITE the previous layer's delta instead of adding to it, so the
 *     cfgs never feed such a layer from a layer whose output is also routed
 *     or shortcut elsewhere.
 *   - policy=sigmoid: upstream computes batch_num - step in size_t, so before
 *     `step` its rate is 0 (ours follows the formula); compared from `step` on.
 *   - [shortcut] with alpha != 1 and a `from` of another shape: our backward is
 *     the exact derivative (alpha only where `from` was added), upstream
 *     scales the whole delta by alpha. SGD cases use alpha != 1 only with
 *     equal shapes; forward covers both.
 *   - [cost] type=smooth with |t - x| >= 1: upstream's delta has the wrong sign
 *     (test_smooth_far pins it down); the SGD case keeps |t - x| < 1.
 *   - dropout draws different random numbers: SGD cases use probability=0.
 *   - softmax loss: upstream adds -log(p) unweighted by the target; targets
 *     here are one-hot, where both agree.
 *   - [local_avgpool] does not exist upstream: not tested here.
 * Upstream bugs met on the way (ours is right; see the report in the cases):
 * a standalone [batchnorm] segfaults upstream on the CPU (buffers never
 * allocated; the harness allocates them), smooth-L1's far-branch sign and the
 * sigmoid policy's size_t underflow.
 *
 * Debugging: ORACLE_VERBOSE=1 prints every layer's and array's difference (and
 * keeps our deltas in grad.ours), ORACLE_CASE=<name> runs one forward/SGD case,
 * ORACLE_UPDATES=<n> overrides the number of updates, ORACLE_CFG=<file> runs
 * the forward and one-update SGD comparisons on a cfg of your own. On failure
 * the temporary directory (cfgs, weights, data, harness.log) is kept.
 */
#include "darknet.h"
#include "internal.h"
#include "testlib.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stb/stb_image_write.h>   /* implementation from -lstb */

#define CFG_DIR "/usr/share/darknet/cfg"

static char g_harness[1024];
static int g_verbose;          /* ORACLE_VERBOSE=1: print every array's difference */
static const char *g_only;     /* ORACLE_CASE=name: run only the forward/SGD case of that name */
static char g_dir[64];
static int g_keep;   /* keep the temporary directory (on failure) */

/* Largest differences observed, for the summary. */
static float g_max_forward, g_max_sgd, g_max_sgd_bn, g_max_rate, g_max_predict;

/* ------------------------------------------------------------ helpers */

/* snprintf whose truncation (never expected: names are short) is checked. */
static void fmt(char *buf, size_t size, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t size, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(buf, size, format, ap);
    va_end(ap);
    CHECK(n >= 0 && (size_t)n < size, "name too long: %s", buf);
}

static const char *tmp_path(const char *name)
{
    static char bufs[8][600];
    static int at;
    char *b = bufs[at++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, name);
    return b;
}

/* Run the harness with arguments; stderr goes to harness.log. Returns the exit code. */
static int harness(const char *format, ...) __attribute__((format(printf, 1, 2)));
static int harness(const char *format, ...)
{
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, format);
    vsnprintf(args, sizeof args, format, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s >>'%s/harness.out' 2>>'%s/harness.log'", g_harness, args, g_dir, g_dir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* Run the harness and return its stdout (malloc'd, NUL-terminated) or NULL. */
static char *harness_capture(const char *format, ...) __attribute__((format(printf, 1, 2)));
static char *harness_capture(const char *format, ...)
{
    char args[8192], cmd[16384];
    va_list ap;
    va_start(ap, format);
    vsnprintf(args, sizeof args, format, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>>'%s/harness.log'", g_harness, args, g_dir);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t got;
    while (s && (got = fread(s + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *bigger = realloc(s, cap *= 2);
            if (!bigger) { free(s); s = NULL; }
            s = bigger;
        }
    }
    int rc = pclose(p);
    if (!s) return NULL;
    s[len] = 0;
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0) { free(s); return NULL; }
    return s;
}

static int write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    char *text;
    if (dn_read_file(path, &text, n) != DN_OK) return NULL;
    return (unsigned char *)text;
}

static float *read_floats(const char *path, size_t *n)
{
    size_t bytes = 0;
    unsigned char *b = read_bytes(path, &bytes);
    *n = b ? bytes / sizeof(float) : 0;
    return (float *)b;
}

/* Largest |a-b| / max(|a|, |b|, floor) with floor = floor_frac * max|ref|. */
static float max_rel(const float *a, const float *ref, size_t n, float floor_frac, size_t *where)
{
    float m = 0, worst = 0;
    for (size_t i = 0; i < n; ++i) m = fmaxf(m, fabsf(ref[i]));
    float floor_ = fmaxf(floor_frac * m, 1e-30f);
    for (size_t i = 0; i < n; ++i) {
        float d = tl_rel_diff(a[i], ref[i], floor_);
        if (!(d <= worst)) { worst = d; if (where) *where = i; }   /* NaN counts as worst */
    }
    return worst;
}

static int write_cfg(const char *name, const char *text)
{
    return write_bytes(tmp_path(name), text, strlen(text));
}

static dn_network *parse_cfg_file(const char *path)
{
    dn_network *net = NULL;
    dn_parse_options opt = {.seed = 7, .quiet = 1};
    CHECK_OK(dn_network_parse_file(path, &opt, &net));
    return net;
}

/* Random parameters: weights as initialised times `gain`, biases, scales and
 * rolling statistics drawn in moderate ranges. The batch-norm epsilon
 * deviation is ~1e-5/(2 var): rolling variances are drawn in 1.5..3 and the
 * weights feeding a batch norm are 3x larger (which batch norm undoes), so
 * batch variances in training are large too. */
static void randomize(dn_network *net, uint64_t seed, float gain)
{
    uint64_t rng = seed;
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        int feeds_bn = l->batch_normalize || (i + 1 < net->n && net->layers[i + 1].type == DN_BATCHNORM);
        dn_layer_init_params(l, &rng);
        dn_param p[DN_MAX_PARAMS];
        int np = dn_layer_params(l, p);
        for (int k = 0; k < np; ++k) {
            float *d = p[k].data;
            for (size_t j = 0; j < p[k].n; ++j) {
                if (!strcmp(p[k].name, "weights")) d[j] *= gain * (feeds_bn ? 3 : 1);
                else if (!strcmp(p[k].name, "biases")) d[j] = dn_rand_uniform(&rng, -.2f, .2f);
                else if (!strcmp(p[k].name, "scales")) d[j] = dn_rand_uniform(&rng, .5f, 1.5f);
                else if (!strcmp(p[k].name, "rolling_mean")) d[j] = dn_rand_uniform(&rng, -.3f, .3f);
                else d[j] = dn_rand_uniform(&rng, 1.5f, 3);
            }
        }
    }
}

/* ------------------------------------------------------------ cfgs */

/* Every convolution option and the pooling variants (input 11 wide, 9 high). */
static const char *body_conv(float dropout)
{
    static char b[2048];
    snprintf(b, sizeof b,
             "[convolutional]\n"           /*  0: default activation (logistic), pad=1, batch norm */
             "batch_normalize=1\nfilters=8\nsize=3\npad=1\n"
             "[convolutional]\n"           /*  1: explicit padding, stride 2, groups, relu -> 6x5x6 */
             "filters=6\nsize=3\nstride=2\npadding=1\ngroups=2\nactivation=relu\n"
             "[conv]\n"                    /*  2: even kernel grows with pad=1; groups 3 -> 7x6x9 */
             "filters=9\nsize=2\npad=1\ngroups=3\nactivation=leaky\n"
             "[convolutional]\n"           /*  3: 1x1 stride 1 -> 7x6x7 */
             "filters=7\nsize=1\nstride=1\nactivation=ramp\n"
             "[maxpool]\n"                 /*  4: 2/2, ceil mode -> 4x3x7 */
             "size=2\nstride=2\n"
             "[convolutional]\n"           /*  5: 5x5 with explicit padding 2 -> 4x3x8 */
             "filters=8\nsize=5\nstride=1\npadding=2\nactivation=elu\n"
             "[max]\n"                     /*  6: size 3 stride 1, default padding 2 -> 4x3x8 */
             "size=3\nstride=1\n"
             "[maxpool]\n"                 /*  7: size 3 stride 2, padding 1 -> 2x1x8 */
             "size=3\nstride=2\npadding=1\n"
             "[maxpool]\n"                 /*  8: stride only (size=stride=1, padding 0) -> 2x1x8 */
             "stride=1\n"
             "[convolutional]\n"           /*  9: 3x3 pad 1 on 2x1 -> 2x1x10 */
             "filters=10\nsize=3\npad=1\nactivation=tanh\n"
             "[avgpool]\n"                 /* 10 */
             "[connected]\n"               /* 11 */
             "output=12\nactivation=selu\n"
             "[dropout]\n"                 /* 12 */
             "probability=%g\n"
             "[conn]\n"                    /* 13 */
             "output=5\nactivation=linear\n"
             "[softmax]\n",                /* 14 */
             dropout);
    return b;
}

/* Every activation, each on the same convolution output through a route,
 * then a 14-input route (input 6 wide, 5 high). */
static const char *body_activations(void)
{
    static char b[4096];
    static const char *acts[] = {"logistic", "relu", "relie", "linear", "ramp", "tanh", "plse",
                                 "leaky", "elu", "loggy", "stair", "hardtan", "lhtan", "selu"};
    int n = snprintf(b, sizeof b, "[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=linear\n");
    char list[256] = "";
    for (int i = 0; i < 14; ++i) {   /* route then activation: upstream's [activation] overwrites its input's delta */
        n += snprintf(b + n, sizeof b - n, "[route]\nlayers=0\n[activation]\nactivation=%s\n", acts[i]);
        size_t ll = strlen(list);
        snprintf(list + ll, sizeof list - ll, "%s%d", i ? "," : "", 2 * i + 2);
    }
    snprintf(b + n, sizeof b - n,
             "[route]\nlayers=%s\n"
             "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\nactivation=leaky\nlearning_rate=0.5\n"
             "[avgpool]\n[softmax]\n", list);
    return b;
}

/* Shortcuts (same shape, from larger, from smaller, alpha/beta), routes,
 * standalone batch norm, connected with batch norm, sse cost (input 8x8x3).
 * With bn=0 the batch norms are left out (for strict SGD). */
static const char *body_residual(int bn, float alpha)
{
    static char b[4096];
    const char *B = bn ? "batch_normalize=1\n" : "";
    snprintf(b, sizeof b,
             "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=leaky\n"                 /*  0  8x8x8  */
             "[convolutional]\n%sfilters=8\nsize=3\npad=1\nactivation=leaky\n"              /*  1  8x8x8  */
             "[shortcut]\nfrom=-2\nalpha=0.6\nbeta=1.2\nactivation=linear\n"                 /*  2  same   */
             "[convolutional]\nfilters=12\nsize=3\nstride=2\npad=1\nactivation=leaky\n"      /*  3  4x4x12 */
             "[shortcut]\nfrom=2\nalpha=%g\nbeta=1.3\nactivation=leaky\n"                   /*  4  from 8x8x8 */
             "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=relu\n"                  /*  5  4x4x6  */
             "[route]\nlayers=-1,-3\n"                                                       /*  6  4x4x18 */
             "%s"                                                                            /*  7  batchnorm / activation */
             "[route]\nlayers=2\n"                                                           /*  8  8x8x8  */
             "[shortcut]\nfrom=7\nactivation=logistic\n"                                     /*  9  from 4x4x18 */
             "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\nactivation=leaky\n"       /* 10  4x4x4  */
             "[connected]\n%soutput=10\nactivation=leaky\n"                                  /* 11 */
             "[connected]\noutput=4\nactivation=linear\n"                                    /* 12 */
             "[cost]\ntype=sse\n",                                                           /* 13 */
             B, alpha, bn ? "[batchnorm]\n" : "[activation]\nactivation=linear\n", B);
    return b;
}

static const char *net_header(int batch, int subdivisions, int w, int h, int c, const char *extra)
{
    static char b[1024];
    snprintf(b, sizeof b, "[net]\nbatch=%d\nsubdivisions=%d\nwidth=%d\nheight=%d\nchannels=%d\n%s", batch,
             subdivisions, w, h, c, extra ? extra : "");
    return b;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* ------------------------------------------------------------ a. forward */

static void forward_case(const char *name, const char *cfg_text, float gain, uint64_t seed)
{
    if (g_only && strcmp(g_only, name)) return;
    char cfg_name[128], w_name[128], in_name[128], out_name[128];
    snprintf(cfg_name, sizeof cfg_name, "%s.cfg", name);
    snprintf(w_name, sizeof w_name, "%s.weights", name);
    snprintf(in_name, sizeof in_name, "%s.in", name);
    snprintf(out_name, sizeof out_name, "%s.out", name);
    CHECK(write_cfg(cfg_name, cfg_text), "write %s", cfg_name);
    dn_network *net = parse_cfg_file(tmp_path(cfg_name));
    if (!net) return;
    randomize(net, seed, gain);
    CHECK_OK(dn_weights_save(net, tmp_path(w_name)));
    size_t nin = (size_t)net->batch * net->inputs;
    float *x = malloc(nin * sizeof *x);
    uint64_t rng = seed ^ 0xabcdef;
    for (size_t i = 0; i < nin; ++i) x[i] = dn_rand_uniform(&rng, 0, 1);
    CHECK(write_bytes(tmp_path(in_name), x, nin * sizeof *x), "write input");
    int rc = harness("forward '%s' '%s' '%s' '%s'", tmp_path(cfg_name), tmp_path(w_name), tmp_path(in_name),
                     tmp_path(out_name));
    CHECK(rc == 0, "%s: upstream forward failed (rc %d)", name, rc);
    size_t nout = 0;
    float *up = rc == 0 ? read_floats(tmp_path(out_name), &nout) : NULL;
    CHECK_OK(dn_network_forward(net, x, NULL, 0));
    size_t total = 0;
    for (int i = 0; i < net->n; ++i) total += (size_t)net->layers[i].batch * net->layers[i].outputs;
    CHECK(up && nout == total, "%s: upstream wrote %zu floats, our layers hold %zu", name, nout, total);
    float worst = 0;
    if (up && nout == total) {
        size_t off = 0;
        for (int i = 0; i < net->n; ++i) {
            const dn_layer *l = &net->layers[i];
            size_t n = (size_t)l->batch * l->outputs, at = 0;
            if (l->type != DN_COST) {   /* a cost layer's output is only defined with a truth */
                float d = max_rel(l->output, up + off, n, 1e-2f, &at);
                CHECK(d <= 1e-4f, "%s: layer %d (%s) output differs: rel %g at %zu (ours %g, upstream %g)", name, i,
                      dn_layer_type_name(l->type), d, at, l->output[at], up[off + at]);
                if (d > worst) worst = d;
            }
            off += n;
        }
    }
    printf("forward %-12s %2d layers, batch %d: max rel diff %.3g\n", name, net->n, net->batch, worst);
    if (worst > g_max_forward) g_max_forward = worst;
    free(up);
    free(x);
    dn_network_free(net);
}

/* ------------------------------------------------------------ b. SGD */

typedef struct {
    const char *name;
    char *cfg;          /* full cfg text (owned) */
    int updates;        /* full batches of data (one update each) */
    uint64_t seen0;     /* images seen, written in the starting weights */
    float gain;         /* weight scale */
    int targets;        /* 1: one-hot (softmax), 0: uniform in [-2, 2], 2: uniform in [0, 1] */
    float tol_bn;       /* tolerance for arrays behind a training batch norm (backward deviation) */
    float tol;          /* tolerance for the others (0: 1e-4) */
} sgd_case;

/* Is layer j's array `name` downstream (in backward order) of a training batch norm? */
static int behind_batchnorm(const dn_network *net, int j, const char *name)
{
    for (int i = j; i < net->n; ++i) {
        const dn_layer *l = &net->layers[i];
        int bn = l->type == DN_BATCHNORM || ((l->type == DN_CONVOLUTIONAL || l->type == DN_CONNECTED) && l->batch_normalize);
        if (!bn) continue;
        if (i > j) return 1;
        if (!strcmp(name, "weights")) return 1;   /* the layer's own weights see the bn backward */
    }
    return 0;
}

/* Every layer's delta after one training forward and backward of the first
 * mini-batch. Dropout deltas are not compared (upstream's is the previous
 * layer's buffer). */
static float g_max_delta;
static void grad_compare(const char *name, const char *cfg_name, const char *w0, const float *X, const float *Y, float tol)
{
    dn_network *net = parse_cfg_file(tmp_path(cfg_name));
    if (!net) return;
    CHECK_OK(dn_weights_load(net, tmp_path(w0)));
    size_t nx = (size_t)net->batch * net->inputs, ny = (size_t)net->batch * net->truths;
    CHECK(write_bytes(tmp_path("grad.x"), X, nx * sizeof *X) && write_bytes(tmp_path("grad.y"), Y, ny * sizeof *Y),
          "write grad data");
    char *out = harness_capture("grad '%s' '%s' '%s' '%s' '%s'", tmp_path(cfg_name), tmp_path(w0), tmp_path("grad.x"),
                                tmp_path("grad.y"), tmp_path("grad.out"));
    CHECK(out != NULL, "%s: upstream grad failed", name);
    free(out);
    CHECK_OK(dn_network_forward(net, X, Y, 1));
    dn_network_backward(net);
    size_t n = 0, total = 0, off = 0;
    float *up = read_floats(tmp_path("grad.out"), &n);
    if (g_verbose) {   /* ours too, for inspection */
        FILE *f = fopen(tmp_path("grad.ours"), "wb");
        for (int i = 0; f && i < net->n; ++i)
            fwrite(net->layers[i].delta, sizeof(float), (size_t)net->layers[i].batch * net->layers[i].outputs, f);
        if (f) fclose(f);
    }
    for (int i = 0; i < net->n; ++i) total += (size_t)net->layers[i].batch * net->layers[i].outputs;
    CHECK(up && n == total, "%s: upstream wrote %zu deltas, we have %zu", name, n, total);
    float worst = 0;
    for (int i = 0; up && n == total && i < net->n; ++i) {
        const dn_layer *l = &net->layers[i];
        size_t m = (size_t)l->batch * l->outputs, at = 0;
        /* a shortcut with alpha != 1 rescales its own delta in place (scratch) */
        if (l->type != DN_DROPOUT && !(l->type == DN_SHORTCUT && l->alpha != 1)) {
            float d = max_rel(l->delta, up + off, m, 1e-2f, &at);
            if (g_verbose) {
                float mag = 0;
                for (size_t j = 0; j < m; ++j) mag = fmaxf(mag, fabsf(up[off + j]));
                printf("  %-12s layer %2d %-13s delta rel %.3g (max |delta| %.3g)\n", name, i, dn_layer_type_name(l->type),
                       d, mag);
            }
            if (!behind_batchnorm(net, i, "weights")) {   /* a batch norm's own delta too */
                CHECK(d <= tol, "%s: layer %d (%s) delta differs by rel %g at %zu: ours %g upstream %g", name, i,
                      dn_layer_type_name(l->type), d, at, l->delta[at], up[off + at]);
                worst = fmaxf(worst, d);
            }
        }
        off += m;
    }
    g_max_delta = fmaxf(g_max_delta, worst);
    free(up);
    dn_network_free(net);
}

static void sgd_run(const sgd_case *c, uint64_t seed)
{
    if (g_only && strcmp(g_only, c->name)) return;
    char cfg_name[128], w0[128], w1[128], xn[128], yn[128];
    snprintf(cfg_name, sizeof cfg_name, "sgd_%s.cfg", c->name);
    snprintf(w0, sizeof w0, "sgd_%s.start.weights", c->name);
    snprintf(w1, sizeof w1, "sgd_%s.upstream.weights", c->name);
    snprintf(xn, sizeof xn, "sgd_%s.x", c->name);
    snprintf(yn, sizeof yn, "sgd_%s.y", c->name);
    CHECK(write_cfg(cfg_name, c->cfg), "write %s", cfg_name);
    dn_network *start = parse_cfg_file(tmp_path(cfg_name));
    if (!start) return;
    randomize(start, seed, c->gain);
    start->seen = c->seen0;
    CHECK_OK(dn_weights_save(start, tmp_path(w0)));

    int updates = getenv("ORACLE_UPDATES") ? atoi(getenv("ORACLE_UPDATES")) : c->updates;   /* debugging */
    int rows = updates * start->batch * start->subdivisions;
    size_t nx = (size_t)rows * start->inputs, ny = (size_t)rows * start->truths;
    float *X = malloc(nx * sizeof *X), *Y = calloc(ny, sizeof *Y);
    uint64_t rng = seed * 31 + 1;
    for (size_t i = 0; i < nx; ++i) X[i] = dn_rand_uniform(&rng, 0, 1);
    for (int r = 0; r < rows; ++r) {
        float *y = Y + (size_t)r * start->truths;
        if (c->targets == 1) y[dn_rand_u64(&rng) % (uint64_t)start->truths] = 1;   /* exactly one 1 per row */
        else for (int k = 0; k < start->truths; ++k) y[k] = c->targets ? dn_rand_uniform(&rng, 0, 1) : dn_rand_uniform(&rng, -2, 2);
    }
    CHECK(write_bytes(tmp_path(xn), X, nx * sizeof *X) && write_bytes(tmp_path(yn), Y, ny * sizeof *Y), "write data");

    /* backward, layer by layer, on the first mini-batch (no update) */
    float tol_all = c->tol > 0 ? c->tol : 1e-4f;
    grad_compare(c->name, cfg_name, w0, X, Y, tol_all);

    /* upstream */
    char *out = harness_capture("sgd '%s' '%s' '%s' '%s' '%s'", tmp_path(cfg_name), tmp_path(w0), tmp_path(xn),
                                tmp_path(yn), tmp_path(w1));
    CHECK(out != NULL, "%s: upstream sgd failed", c->name);
    float up_loss = NAN;
    unsigned long long up_seen = 0;
    if (out) {
        char *p = strstr(out, "loss ");
        if (p) up_loss = strtof(p + 5, NULL);
        p = strstr(out, "seen ");
        if (p) up_seen = strtoull(p + 5, NULL, 10);
    }
    free(out);

    /* ours, from the same file */
    dn_network *net = parse_cfg_file(tmp_path(cfg_name)), *up = parse_cfg_file(tmp_path(cfg_name));
    if (!net || !up) { dn_network_free(start); dn_network_free(net); dn_network_free(up); free(X); free(Y); return; }
    CHECK_OK(dn_weights_load(net, tmp_path(w0)));
    float loss = NAN;
    CHECK_OK(dn_network_train(net, X, Y, rows, &loss));
    CHECK(tl_rel_diff(loss, up_loss, 1e-6f) <= 1e-4f, "%s: loss %.7g, upstream %.7g", c->name, loss, up_loss);
    CHECK(net->seen == up_seen, "%s: seen %llu, upstream %llu", c->name, (unsigned long long)net->seen, up_seen);

    /* c. upstream's file loads here and saves back byte for byte */
    CHECK_OK(dn_weights_load(up, tmp_path(w1)));
    size_t fsize = 0, msize = 0;
    unsigned char *fbytes = read_bytes(tmp_path(w1), &fsize);
    void *mbytes = NULL;
    CHECK_OK(dn_weights_save_memory(up, &mbytes, &msize));
    CHECK(fbytes && mbytes && fsize == msize && !memcmp(fbytes, mbytes, fsize),
          "%s: upstream's weights do not round-trip through ours byte for byte", c->name);
    free(fbytes);
    free(mbytes);

    float worst = 0, worst_bn = 0;
    for (int i = 0; i < net->n; ++i) {
        dn_param po[DN_MAX_PARAMS], pu[DN_MAX_PARAMS], p0[DN_MAX_PARAMS];
        int np = dn_layer_params(&net->layers[i], po);
        dn_layer_params(&up->layers[i], pu);
        dn_layer_params(&start->layers[i], p0);
        for (int k = 0; k < np; ++k) {
            size_t n = po[k].n, at = 0;
            if (net->layers[i].type == DN_BATCHNORM && !strcmp(po[k].name, "scales")) {
                /* deviation: upstream never updates a standalone batch norm */
                CHECK(!memcmp(pu[k].data, p0[k].data, n * sizeof(float)), "%s: upstream changed [batchnorm] scales",
                      c->name);
                continue;
            }
            float *dn_ = malloc(n * sizeof(float)), *du = malloc(n * sizeof(float));
            for (size_t j = 0; j < n; ++j) {
                dn_[j] = po[k].data[j] - p0[k].data[j];
                du[j] = pu[k].data[j] - p0[k].data[j];
            }
            int bn = behind_batchnorm(net, i, po[k].name);
            float tol = bn ? c->tol_bn : tol_all;
            /* the change made by training, relative to the largest change; the
             * floor also covers the rounding of the new values (ulp of |W|) */
            float mag = 0, wmax = 0;
            for (size_t j = 0; j < n; ++j) {
                mag = fmaxf(mag, fabsf(du[j]));
                wmax = fmaxf(wmax, fabsf(p0[k].data[j]));
            }
            float floor_frac = mag > 0 ? fmaxf(1e-2f, 1e-3f * wmax / mag) : 1;
            float d = max_rel(dn_, du, n, floor_frac, &at);
            CHECK(d <= tol, "%s: layer %d %s: change differs by rel %g (tol %g) at %zu: ours %g upstream %g", c->name,
                  i, po[k].name, d, tol, at, dn_[at], du[at]);
            CHECK(mag > 0 || po[k].updates == NULL || net->layers[i].stopbackward || net->layers[i].lr_mult == 0,
                  "%s: layer %d %s did not change", c->name, i, po[k].name);
            /* and the new values themselves */
            float dv = max_rel(po[k].data, pu[k].data, n, 1e-3f, NULL);
            CHECK(dv <= tol, "%s: layer %d %s: new values differ by rel %g", c->name, i, po[k].name, dv);
            if (g_verbose)
                printf("  %-12s layer %2d %-10s %-16s change rel %.3g (max |change| %.3g)%s\n", c->name, i,
                       dn_layer_type_name(net->layers[i].type), po[k].name, d, mag, bn ? " [behind bn]" : "");
            if (bn) worst_bn = fmaxf(worst_bn, d);
            else worst = fmaxf(worst, d);
            free(dn_);
            free(du);
        }
    }
    printf("sgd     %-12s %d update(s), rate %.4g: max rel diff of the change %.3g (behind batch norm %.3g), loss %.6g\n",
           c->name, updates, dn_network_rate(net), worst, worst_bn, loss);
    g_max_sgd = fmaxf(g_max_sgd, worst);
    g_max_sgd_bn = fmaxf(g_max_sgd_bn, worst_bn);
    dn_network_free(start);
    dn_network_free(net);
    dn_network_free(up);
    free(X);
    free(Y);
}

static void test_sgd(void)
{
    sgd_case cases[16];
    int n = 0;
    /* steps policy past its first step, subdivisions 2, momentum, decay; one batch norm at layer 0 */
    cases[n++] = (sgd_case){"conv", join(net_header(4, 2, 11, 9, 3,
                                                    "learning_rate=0.5\nmomentum=0.8\ndecay=0.01\npolicy=steps\n"
                                                    "steps=3,5\nscales=0.5,0.2\n"),
                                         body_conv(0)),
                            2, 8, 1, 1, 5e-3f, 0};
    /* burn_in with power 2, a per-layer learning_rate multiplier */
    cases[n++] = (sgd_case){"activations", join(net_header(3, 1, 6, 5, 2,
                                                           "learning_rate=2\nmomentum=0.9\ndecay=0.001\nburn_in=5\npower=2\n"),
                                                body_activations()),
                            2, 0, 3, 1, 1e-4f, 0};
    /* shortcuts and routes without batch norm, sse cost, subdivisions 3 */
    cases[n++] = (sgd_case){"residual", join(net_header(6, 3, 8, 8, 3, "learning_rate=0.3\nmomentum=0.7\ndecay=0.005\n"),
                                             body_residual(0, 1)),
                            2, 0, 1, 0, 1e-4f, 0};
    /* standalone [batchnorm] (its own scales are not compared) and a conv batch norm: one update */
    cases[n++] = (sgd_case){"batchnorm", join(net_header(4, 1, 12, 12, 3, "learning_rate=0.3\nmomentum=0.7\ndecay=0.005\n"),
                                              "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=leaky\n"
                                              "[batchnorm]\n"
                                              "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=2\npad=1\n"
                                              "activation=leaky\n"
                                              "[avgpool]\n[connected]\noutput=5\nactivation=linear\n[softmax]\n"),
                            1, 0, 1, 1, 5e-2f, 1e-3f};
    /* connected with batch norm right on the input: only its weights see the bn backward (one update) */
    cases[n++] = (sgd_case){"connected_bn", join(net_header(16, 1, 5, 4, 2, "learning_rate=0.2\nmomentum=0.9\ndecay=0.0005\n"),
                                                 "[connected]\nbatch_normalize=1\noutput=9\nactivation=leaky\n"
                                                 "[connected]\noutput=6\nactivation=logistic\n"
                                                 "[connected]\noutput=3\nactivation=linear\n[softmax]\n"),
                            1, 0, 1, 1, 0.2f, 0};
    /* every cost type; softmax followed by cost; scale; stopbackward */
    static const char *const costs[] = {"sse", "L1", "smooth"};
    for (int k = 0; k < 3; ++k) {
        char body[1024];
        snprintf(body, sizeof body,
                 "[convolutional]\nfilters=4\nsize=3\nstride=2\npad=1\nactivation=leaky\n%s"
                 "[connected]\noutput=5\nactivation=%s\n"
                 "[cost]\ntype=%s\nscale=%s\n",
                 k == 2 ? "stopbackward=1\n" : "", k == 1 ? "tanh" : k == 2 ? "logistic" : "linear", costs[k],
                 k == 1 ? "0.5" : "1");
        static const char *const names[] = {"cost_sse", "cost_L1", "cost_smooth"};
        /* smooth: logistic outputs and targets in [0, 1] keep |t - x| < 1, where upstream is right */
        cases[n++] = (sgd_case){names[k], join(net_header(5, 1, 6, 6, 2, "learning_rate=0.1\nmomentum=0.5\ndecay=0.002\n"), body),
                                2, 0, 1, k == 2 ? 2 : 0, 1e-4f, 0};
    }
    cases[n++] = (sgd_case){"softmax_cost", join(net_header(4, 1, 6, 6, 2, "learning_rate=0.2\n"),
                                                 "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
                                                 "[maxpool]\nsize=2\nstride=2\n"
                                                 "[connected]\noutput=6\nactivation=linear\n"
                                                 "[softmax]\ngroups=2\n[cost]\ntype=sse\n"),
                            2, 0, 1, 1, 1e-4f, 0};
    for (int i = 0; i < n; ++i) {
        sgd_run(&cases[i], 1000 + (uint64_t)i);
        free(cases[i].cfg);
    }
}

/* [cost] type=smooth where |t - x| >= 1: ours gives delta = sign(t - x) (the
 * negative gradient of 2|t - x| - 1, like sse's delta = t - x); upstream's CPU
 * code gives the opposite sign there, pushing the output away from its
 * target (an upstream bug). Checked explicitly so the deviation is known. */
static void test_smooth_far(void)
{
    const char *text = "[net]\nbatch=1\nwidth=1\nheight=1\nchannels=4\n"
                       "[connected]\noutput=4\nactivation=linear\n[cost]\ntype=smooth\n";
    CHECK(write_cfg("smooth.cfg", text), "write smooth.cfg");
    dn_network *net = parse_cfg_file(tmp_path("smooth.cfg"));
    if (!net) return;
    randomize(net, 5, 1);
    CHECK_OK(dn_weights_save(net, tmp_path("smooth.weights")));
    float x[4] = {.3f, -.2f, .8f, .5f}, y[4];
    CHECK_OK(dn_network_forward(net, x, NULL, 0));
    const float off[4] = {.5f, -.5f, 3, -3};
    for (int i = 0; i < 4; ++i) y[i] = net->layers[0].output[i] + off[i];
    CHECK(write_bytes(tmp_path("smooth.x"), x, sizeof x) && write_bytes(tmp_path("smooth.y"), y, sizeof y), "write");
    char *out = harness_capture("grad '%s' '%s' '%s' '%s' '%s'", tmp_path("smooth.cfg"), tmp_path("smooth.weights"),
                                tmp_path("smooth.x"), tmp_path("smooth.y"), tmp_path("smooth.out"));
    free(out);
    CHECK_OK(dn_network_forward(net, x, y, 1));
    size_t n = 0;
    float *up = read_floats(tmp_path("smooth.out"), &n);
    CHECK(up && n == 8, "upstream smooth grad: %zu floats", n);
    if (up && n == 8) {
        const float *ours = net->layers[1].delta, *theirs = up + 4;
        for (int i = 0; i < 2; ++i)
            CHECK(fabsf(ours[i] - off[i]) < 1e-5f && fabsf(theirs[i] - ours[i]) < 1e-5f, "smooth near %d: ours %g upstream %g",
                  i, ours[i], theirs[i]);
        for (int i = 2; i < 4; ++i) {
            CHECK(ours[i] == (off[i] > 0 ? 1 : -1), "smooth far %d: ours %g", i, ours[i]);
            CHECK(theirs[i] == -ours[i], "smooth far %d: upstream %g is no longer the opposite of ours %g (fixed?)", i,
                  theirs[i], ours[i]);
        }
        printf("smooth  |t-x|>=1: delta ours %+g %+g, upstream %+g %+g (upstream's sign is inverted there)\n", ours[2],
               ours[3], theirs[2], theirs[3]);
    }
    free(up);
    dn_network_free(net);
}

/* Learning rate of every policy (and burn_in) against get_current_rate. */
static void test_rates(void)
{
    static const char *const policies[] = {
        "policy=constant\nburn_in=4\npower=3\n",
        "policy=step\nstep=3\nscale=0.7\n",
        "policy=steps\nsteps=2,5,9\nscales=0.5,0.1,2\nburn_in=2\n",
        "policy=exp\ngamma=0.9\n",
        "policy=poly\nmax_batches=30\npower=3\nburn_in=3\n",
        "policy=sigmoid\ngamma=0.5\nstep=6\n",
    };
    float worst = 0;
    for (int p = 0; p < 6; ++p) {
        char extra[256];
        snprintf(extra, sizeof extra, "learning_rate=0.05\n%s", policies[p]);
        char *text = join(net_header(4, 2, 4, 4, 1, extra), "[connected]\noutput=2\n[softmax]\n");
        CHECK(write_cfg("rates.cfg", text), "write rates.cfg");
        free(text);
        dn_network *net = parse_cfg_file(tmp_path("rates.cfg"));
        if (!net) continue;
        char args[2048];
        int len = snprintf(args, sizeof args, "rates '%s'", tmp_path("rates.cfg"));
        int first = p == 5 ? 6 : 0;   /* sigmoid: upstream's size_t underflow before `step` */
        for (int b = first; b <= 25; ++b) len += snprintf(args + len, sizeof args - len, " %d", b * 8 + (b % 3));
        char *out = harness_capture("%s", args);
        CHECK(out != NULL, "upstream rates failed for policy %d", p);
        int count = 0;
        for (char *s = out; s && (s = strstr(s, "rate ")); ++count) {
            unsigned long long seen = strtoull(s + 5, &s, 10);
            float up = strtof(s, &s);
            net->seen = seen;
            float ours = dn_network_rate(net);
            float d = tl_rel_diff(ours, up, 1e-9f);
            CHECK(d <= 1e-5f, "policy %d at seen %llu: rate %.8g, upstream %.8g", p, seen, ours, up);
            worst = fmaxf(worst, d);
        }
        CHECK(count == 26 - first, "policy %d: %d rates from upstream", p, count);
        free(out);
        dn_network_free(net);
    }
    printf("rates   6 policies: max rel diff %.3g\n", worst);
    g_max_rate = worst;
}

/* ------------------------------------------------------------ c. weights files */

static void put_i32(unsigned char *p, int32_t v) { memcpy(p, &v, 4); }

static void test_weights_files(void)
{
    char *text = join(net_header(2, 1, 8, 8, 3, NULL), body_residual(1, 0.7f));
    CHECK(write_cfg("files.cfg", text), "write files.cfg");
    free(text);
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s", tmp_path("files.cfg"));
    dn_network *net = parse_cfg_file(cfg);
    if (!net) return;
    randomize(net, 77, 1);
    net->seen = 123456789012ull;
    CHECK_OK(dn_weights_save(net, tmp_path("ours.weights")));
    size_t n_ours = 0, n_re = 0;
    unsigned char *ours = read_bytes(tmp_path("ours.weights"), &n_ours);

    /* ours -> upstream -> file: identical bytes (arrays and 64-bit seen) */
    CHECK(harness("resave '%s' '%s' '%s'", cfg, tmp_path("ours.weights"), tmp_path("re.weights")) == 0, "resave");
    unsigned char *re = read_bytes(tmp_path("re.weights"), &n_re);
    CHECK(ours && re && n_ours == n_re && !memcmp(ours, re, n_ours), "upstream does not reproduce our file (%zu vs %zu bytes)",
          n_ours, n_re);

    /* crafted headers: 0.1 (32-bit seen), and major/minor > 1000 (32-bit seen, connected weights transposed) */
    size_t body = n_ours - 20;
    unsigned char *crafted = malloc(16 + body);
    for (int variant = 0; variant < 3 && ours; ++variant) {
        int32_t major = variant == 0 ? 0 : variant == 1 ? 1001 : 0;
        int32_t minor = variant == 0 ? 1 : variant == 1 ? 0 : 1001;
        put_i32(crafted, major);
        put_i32(crafted + 4, minor);
        put_i32(crafted + 8, 7);
        put_i32(crafted + 12, 424242);
        memcpy(crafted + 16, ours + 20, body);
        if (variant > 0) {   /* store every connected matrix as (inputs, outputs) */
            size_t at = 16;
            for (int i = 0; i < net->n; ++i) {
                dn_param p[DN_MAX_PARAMS];
                int np = dn_layer_params(&net->layers[i], p);
                for (int k = 0; k < np; ++k) {
                    if (p[k].rows) {
                        float *t = (float *)(crafted + at);   /* crafted is malloc'd, at is a multiple of 4 */
                        for (int r = 0; r < p[k].rows; ++r)
                            for (int cc = 0; cc < p[k].cols; ++cc) t[(size_t)cc * p[k].rows + r] = p[k].data[(size_t)r * p[k].cols + cc];
                    }
                    at += p[k].n * sizeof(float);
                }
            }
        }
        const char *cname = variant == 0 ? "v01.weights" : variant == 1 ? "major1001.weights" : "minor1001.weights";
        CHECK(write_bytes(tmp_path(cname), crafted, 16 + body), "write %s", cname);
        dn_network *other = parse_cfg_file(cfg);
        if (!other) continue;
        CHECK_OK(dn_weights_load(other, tmp_path(cname)));
        CHECK(other->seen == 424242, "%s: seen %llu", cname, (unsigned long long)other->seen);
        int same = 1;
        for (int i = 0; i < net->n; ++i) {
            dn_param a[DN_MAX_PARAMS], b[DN_MAX_PARAMS];
            int np = dn_layer_params(&net->layers[i], a);
            dn_layer_params(&other->layers[i], b);
            for (int k = 0; k < np; ++k) same &= !memcmp(a[k].data, b[k].data, a[k].n * sizeof(float));
        }
        CHECK(same, "%s: our arrays differ from the original", cname);
        /* upstream reads it the same way: its resave equals ours with seen=424242 */
        other->seen = 424242;
        void *mine = NULL;
        size_t nm = 0;
        CHECK_OK(dn_weights_save_memory(other, &mine, &nm));
        CHECK(harness("resave '%s' '%s' '%s'", cfg, tmp_path(cname), tmp_path("re2.weights")) == 0, "resave %s", cname);
        size_t n2 = 0;
        unsigned char *re2 = read_bytes(tmp_path("re2.weights"), &n2);
        CHECK(re2 && mine && n2 == nm && !memcmp(re2, mine, nm), "%s: upstream reads it differently", cname);
        free(re2);
        free(mine);
        dn_network_free(other);
    }
    printf("weights ours->upstream, upstream->ours (per SGD case), v0.1, major 1001, minor 1001: identical arrays\n");
    free(crafted);
    free(ours);
    free(re);
    dn_network_free(net);
}

/* ------------------------------------------------------------ d. shapes */

typedef struct { char file[128]; char why[256]; int run; } shape_cfg;

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Which Debian cfgs we compare, and why the others are skipped. */
static int list_shape_cfgs(shape_cfg *out, int max)
{
    DIR *d = opendir(CFG_DIR);
    if (!d) return 0;
    char *names[256];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 256) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".cfg")) names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_names);
    int n = 0;
    for (int i = 0; i < nn && n < max; ++i) {
        shape_cfg *s = &out[n++];
        memset(s, 0, sizeof *s);
        snprintf(s->file, sizeof s->file, "%s", names[i]);
        free(names[i]);
        char path[512];
        snprintf(path, sizeof path, "%s/%s", CFG_DIR, s->file);
        dn_cfg cfg;
        if (dn_cfg_lex_file(path, &cfg) != DN_OK) { snprintf(s->why, sizeof s->why, "lex: %s", dn_last_error()); continue; }
        for (int k = 1; k < cfg.nsections && !s->why[0]; ++k) {
            const dn_section *sec = &cfg.sections[k];
            if (!dn_layer_ops_for_section(sec->type)) {
                snprintf(s->why, sizeof s->why, "has %s (not supported)", sec->type);
                break;
            }
            for (int o = 0; o < sec->nopts; ++o) {
                const dn_option *opt = &sec->opts[o];
                if (!strcmp(sec->type, "[softmax]") && !strcmp(opt->key, "tree"))
                    snprintf(s->why, sizeof s->why, "hierarchical [softmax] tree= (not supported)");
                if (!strcmp(sec->type, "[cost]") && !strcmp(opt->key, "type") && opt->value &&
                    strcmp(opt->value, "sse") && strcmp(opt->value, "L1") && strcmp(opt->value, "smooth"))
                    snprintf(s->why, sizeof s->why, "[cost] type=%s (not supported)", opt->value);
            }
        }
        if (!s->why[0] && cfg.nsections > 1) {
            const char *last = cfg.sections[cfg.nsections - 1].type;
            if (strcmp(last, "[softmax]") && strcmp(last, "[soft]") && strcmp(last, "[cost]"))
                snprintf(s->why, sizeof s->why, "feature extractor, not a classifier: ends with %s", last);
        }
        s->run = !s->why[0];
        dn_cfg_free(&cfg);
    }
    return n;
}

static pid_t start_upstream_shapes(const shape_cfg *cfgs, int n)
{
    /* one background shell running upstream on every cfg while we test the rest */
    size_t cap = 65536, len = 0;
    char *script = malloc(cap);
    len += snprintf(script + len, cap - len, "cd '%s' || exit 1;", g_dir);
    for (int i = 0; i < n; ++i)
        if (cfgs[i].run)
            len += snprintf(script + len, cap - len, " '%s' shapes '%s/%s' >'shapes_%s.txt' 2>>harness.log;", g_harness,
                            CFG_DIR, cfgs[i].file, cfgs[i].file);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    free(script);
    return pid;
}

/* Our layer tables, parsed (batch=1) in a child process while upstream and
 * the other tests run: one "cfg <file> <status>" line per cfg, then one
 * "layer i type w h c out_w out_h out_c inputs outputs from_w from_h from_c" line per layer. */
static pid_t start_our_shapes(const shape_cfg *cfgs, int n)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid != 0) return pid;
    FILE *f = fopen(tmp_path("shapes_ours.txt"), "w");
    for (int i = 0; f && i < n; ++i) {
        if (!cfgs[i].run) continue;
        char path[512];
        fmt(path, sizeof path, "%s/%s", CFG_DIR, cfgs[i].file);
        dn_network *net = NULL;
        dn_parse_options opt = {.batch = 1, .seed = 1, .quiet = 1};
        dn_status st = dn_network_parse_file(path, &opt, &net);
        fprintf(f, "cfg %s %d %s\n", cfgs[i].file, (int)st, st == DN_OK ? "" : dn_last_error());
        for (int k = 0; net && k < net->n; ++k) {
            const dn_layer *l = &net->layers[k];
            fprintf(f, "layer %d %s %d %d %d %d %d %d %d %d %d %d %d\n", k, dn_layer_type_name(l->type), l->w, l->h, l->c,
                    l->out_w, l->out_h, l->out_c, l->inputs, l->outputs, l->shortcut_w, l->shortcut_h, l->shortcut_c);
        }
        dn_network_free(net);
    }
    if (f) fclose(f);
    _exit(f ? 0 : 1);
}

typedef struct { char type[32]; int w, h, c, ow, oh, oc, in, out, sw, sh, sc; } shape_row;

/* Rows of one cfg's table from upstream's file (10 fields) or ours (13). */
static int read_rows(char **cursor, int ours, shape_row *rows, int max)
{
    int n = 0;
    char *line;
    while ((line = *cursor) && *line) {
        char *nl = strchr(line, '\n');
        if (!strncmp(line, "cfg ", 4) && n > 0) break;   /* the next cfg (ours) */
        *cursor = nl ? nl + 1 : line + strlen(line);
        if (strncmp(line, "layer ", 6)) continue;
        shape_row r = {0};
        int idx, got = sscanf(line, "layer %d %31s %d %d %d %d %d %d %d %d %d %d %d", &idx, r.type, &r.w, &r.h, &r.c, &r.ow,
                              &r.oh, &r.oc, &r.in, &r.out, &r.sw, &r.sh, &r.sc);
        if (got != (ours ? 13 : 10) || idx != n || n >= max) return -1;
        rows[n++] = r;
    }
    return n;
}

static void test_shapes(const shape_cfg *cfgs, int n, pid_t upstream, pid_t ours)
{
    int status = 0;
    if (upstream > 0) waitpid(upstream, &status, 0);
    if (ours > 0) waitpid(ours, &status, 0);
    CHECK(ours > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "our shape parser child failed");
    size_t sz = 0;
    char *mine = (char *)read_bytes(tmp_path("shapes_ours.txt"), &sz), *mc = mine;
    static shape_row a[512], b[512];
    int compared = 0;
    for (int i = 0; i < n; ++i) {
        const shape_cfg *s = &cfgs[i];
        if (!s->run) { printf("shapes  %-24s skipped: %s\n", s->file, s->why); continue; }
        /* ours */
        char head[160];
        fmt(head, sizeof head, "cfg %s ", s->file);
        char *at = mc ? strstr(mc, head) : NULL;
        CHECK(at != NULL, "%s: no table of ours", s->file);
        if (!at) continue;
        int st = atoi(at + strlen(head));
        CHECK(st == 0, "%s: we cannot parse it: %.200s", s->file, strchr(at + strlen(head), ' '));
        mc = strchr(at, '\n');
        mc = mc ? mc + 1 : at + strlen(at);
        int nb = read_rows(&mc, 1, b, 512);
        /* upstream's */
        char out[160];
        fmt(out, sizeof out, "shapes_%s.txt", s->file);
        char *text = (char *)read_bytes(tmp_path(out), &sz), *uc = text;
        int na = text ? read_rows(&uc, 0, a, 512) : -1;
        free(text);
        CHECK(na > 0 && na == nb, "%s: %d upstream layers, %d ours", s->file, na, nb);
        int bad = na <= 0 || na != nb;
        for (int k = 0; !bad && k < na; ++k) {
            const shape_row *u = &a[k], *o = &b[k];
            int ok = !strcmp(u->type, o->type) && u->in == o->in && u->out == o->out;
            /* upstream leaves some of these 0 (softmax, cost, route, dropout after connected) */
            if (u->ow || u->oh || u->oc) ok &= u->ow == o->ow && u->oh == o->oh && u->oc == o->oc;
            /* upstream's connected keeps w,h,c = 1,1,inputs and its shortcut holds the `from` shape */
            if (!strcmp(o->type, "shortcut")) ok &= u->w == o->sw && u->h == o->sh && u->c == o->sc;
            else if (strcmp(o->type, "connected") && (u->w || u->h || u->c)) ok &= u->w == o->w && u->h == o->h && u->c == o->c;
            CHECK(ok, "%s layer %d: upstream %s %d %d %d -> %d %d %d (%d -> %d), ours %s %d %d %d -> %d %d %d (%d -> %d)",
                  s->file, k, u->type, u->w, u->h, u->c, u->ow, u->oh, u->oc, u->in, u->out, o->type, o->w, o->h, o->c,
                  o->ow, o->oh, o->oc, o->in, o->out);
            bad |= !ok;
        }
        printf("shapes  %-24s %3d layers %s\n", s->file, nb, bad ? "DIFFER" : "match");
        compared++;
    }
    free(mine);
    CHECK(compared >= 15, "only %d Debian cfgs compared", compared);
}

/* ------------------------------------------------------------ e. predict */

static void test_predict(void)
{
    const int sizes[][2] = {{40, 30}, {13, 37}, {64, 64}, {7, 5}, {31, 24}, {100, 20}};
    const int nimg = 6;
    char paths[6][600];
    for (int i = 0; i < nimg; ++i) {
        int w = sizes[i][0], h = sizes[i][1];
        unsigned char *px = malloc((size_t)w * h * 3);
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                unsigned char *p = px + ((size_t)y * w + x) * 3;
                /* a different colour gradient per image, plus a little noise */
                uint64_t r = (uint64_t)(i * 100003 + y * 1009 + x);
                unsigned char noise = (unsigned char)(dn_rand_u64(&r) % 40);
                p[0] = (unsigned char)((x * 215 / (w > 1 ? w - 1 : 1) + 70 * i) % 216 + noise);
                p[1] = (unsigned char)(((y * 215 / (h > 1 ? h - 1 : 1)) ^ (i * 37)) % 216 + noise);
                p[2] = (unsigned char)(((x + 2 * y + 13 * i) % 9) * 24 + noise);
            }
        char name[32];
        snprintf(name, sizeof name, "img%d.png", i);
        snprintf(paths[i], sizeof paths[i], "%s", tmp_path(name));
        CHECK(stbi_write_png(paths[i], w, h, 3, px, w * 3), "write %s", paths[i]);
        free(px);
    }
    const char *body =
        "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\nactivation=leaky\nbatch_normalize=1\n"
        "[maxpool]\nsize=2\nstride=2\n"
        "[connected]\noutput=6\nactivation=linear\n[softmax]\n";
    char *text = join(net_header(1, 1, 24, 20, 3, NULL), body);
    CHECK(write_cfg("predict.cfg", text), "write predict.cfg");
    free(text);
    dn_network *net = parse_cfg_file(tmp_path("predict.cfg"));
    if (!net) return;
    /* our letterboxed inputs */
    dn_image lb[6];
    memset(lb, 0, sizeof lb);
    for (int i = 0; i < nimg; ++i) {
        dn_image im = {0};
        CHECK_OK(dn_image_load(paths[i], 3, &im));
        if (im.data) CHECK_OK(dn_image_letterbox(&im, net->w, net->h, &lb[i]));
        dn_image_free(&im);
        if (!lb[i].data) { for (int k = 0; k < i; ++k) dn_image_free(&lb[k]); dn_network_free(net); return; }
    }
    /* weights under which the images get at least 3 different classes, each
     * with a clear margin (a fixed search: the same weights every run) */
    int ours[6];
    uint64_t seed = 4242;
    for (int tries = 0; tries < 100; ++tries, ++seed) {
        randomize(net, seed, 1);
        int seen = 0, clear = 1;
        for (int i = 0; i < nimg; ++i) {
            const float *p = NULL;
            dn_network_predict(net, lb[i].data, &p);
            int best = 0, second = -1;
            for (int k = 1; k < net->outputs; ++k)
                if (p[k] > p[best]) { second = best; best = k; }
                else if (second < 0 || p[k] > p[second]) second = k;
            clear &= p[best] - p[second] > 1e-2f;
            ours[i] = best;
            seen |= 1 << best;
        }
        if (clear && __builtin_popcount((unsigned)seen) >= 3) break;
    }
    CHECK_OK(dn_weights_save(net, tmp_path("predict.weights")));
    char *out = harness_capture("predict '%s' '%s' '%s' '%s' '%s' '%s' '%s' '%s' '%s'", tmp_path("predict.cfg"),
                                tmp_path("predict.weights"), tmp_path("lb"), paths[0], paths[1], paths[2], paths[3],
                                paths[4], paths[5]);
    CHECK(out != NULL, "upstream predict failed");
    char *s = out;
    int agree = 0;
    float worst = 0, worst_lb = 0;
    for (int i = 0; i < nimg && s; ++i) {
        s = strstr(s, "predict ");
        if (!s) break;
        int top = (int)strtol(s + 8, &s, 10);
        float probs[64];
        for (int k = 0; k < net->outputs && k < 64; ++k) probs[k] = strtof(s, &s);
        /* the letterboxed image itself */
        char lbname[32];
        snprintf(lbname, sizeof lbname, "lb%d.bin", i);
        {
            size_t n = 0, want = (size_t)lb[i].w * lb[i].h * lb[i].c;
            float *ulb = read_floats(tmp_path(lbname), &n);
            CHECK(ulb && n == want, "letterbox %d: %zu floats, ours %zu", i, n, want);
            if (ulb && n == want) worst_lb = fmaxf(worst_lb, max_rel(lb[i].data, ulb, n, 1e-2f, NULL));
            free(ulb);
        }
        const float *p = NULL;
        dn_network_predict(net, lb[i].data, &p);
        CHECK(ours[i] == top, "image %d: top-1 %d, upstream %d", i, ours[i], top);
        agree += ours[i] == top;
        if (g_verbose)
            printf("  image %d (%dx%d): top-1 %d (p %.3f), upstream %d\n", i, sizes[i][0], sizes[i][1], ours[i], p[ours[i]], top);
        worst = fmaxf(worst, max_rel(p, probs, (size_t)net->outputs, 1e-3f, NULL));
    }
    CHECK(worst <= 1e-4f, "probabilities differ from upstream's by rel %g", worst);
    CHECK(worst_lb <= 1e-4f, "letterboxed pixels differ from upstream's by rel %g", worst_lb);
    CHECK(agree == nimg, "top-1 agrees on %d of %d images", agree, nimg);
    int distinct = 0;
    for (int i = 0; i < nimg; ++i) {
        int dup = 0;
        for (int k = 0; k < i; ++k) dup |= ours[k] == ours[i];
        distinct += !dup;
    }
    printf("predict %d images (%d classes predicted): top-1 agrees on %d; max rel diff: probabilities %.3g, "
           "letterboxed pixels %.3g\n", nimg, distinct, agree, worst, worst_lb);
    for (int i = 0; i < nimg; ++i) dn_image_free(&lb[i]);
    g_max_predict = worst;
    free(out);
    dn_network_free(net);
}

/* ------------------------------------------------------------ main */

static void remove_dir(void)
{
    DIR *d = opendir(g_dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tmp_path(e->d_name));
    closedir(d);
    rmdir(g_dir);
}

int main(void)
{
    const char *build = getenv("BUILD");
    snprintf(g_harness, sizeof g_harness, "%s/tests/upstream_harness", build && *build ? build : "build");
    if (g_harness[0] != '/') {   /* absolute, since the shape jobs run in the temporary directory */
        char cwd[256];
        if (getcwd(cwd, sizeof cwd)) {
            char rel[1024];
            fmt(rel, sizeof rel, "%s", g_harness);
            fmt(g_harness, sizeof g_harness, "%s/%s", cwd, rel);
        }
    }
    if (access(g_harness, X_OK) != 0) {
        printf("SKIP: %s is missing (it needs Debian's darknet package)\n", g_harness);
        TEST_MAIN_END();
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/dn_oracle_XXXXXX");
    if (!mkdtemp(g_dir)) { CHECK(0, "mkdtemp failed"); TEST_MAIN_END(); }
    dn_set_warning_sink(NULL, NULL);
    g_verbose = getenv("ORACLE_VERBOSE") && atoi(getenv("ORACLE_VERBOSE"));
    g_only = getenv("ORACLE_CASE") && *getenv("ORACLE_CASE") ? getenv("ORACLE_CASE") : NULL;

    if (getenv("ORACLE_CFG")) {   /* debugging: one SGD comparison on a cfg file of your own */
        size_t len = 0;
        char *text = (char *)read_bytes(getenv("ORACLE_CFG"), &len);
        if (text) {
            int soft = strstr(text, "[softmax]") != NULL ? 1 : 0;
            sgd_case c = {"custom", text, 1, 0, 1, soft, 1e-4f, 0};
            g_verbose = 1;
            forward_case("custom_forward", text, 1, 99);
            sgd_run(&c, 99);
            free(text);
        }
        TEST_MAIN_END();
    }
    static shape_cfg cfgs[128];
    int ncfg = list_shape_cfgs(cfgs, 128);
    CHECK(ncfg > 0, "no cfgs in %s", CFG_DIR);
    pid_t bg = start_upstream_shapes(cfgs, ncfg), bg_ours = start_our_shapes(cfgs, ncfg);

    double t0 = dn_time_now();
    /* a. forward */
    char *t;
    forward_case("conv", t = join(net_header(3, 1, 11, 9, 3, NULL), body_conv(0.3f)), 1, 11); free(t);
    forward_case("activations", t = join(net_header(2, 1, 6, 5, 2, NULL), body_activations()), 4, 12); free(t);
    forward_case("residual", t = join(net_header(3, 1, 8, 8, 3, NULL), body_residual(1, 0.7f)), 1, 13); free(t);
    forward_case("softmax", t = join(net_header(2, 1, 4, 3, 2, NULL),
                                     "[connected]\noutput=12\nactivation=hardtan\n[softmax]\ngroups=3\ntemperature=0.7\n"), 3, 14);
    free(t);

    double t1 = dn_time_now();
    /* b. SGD and the rate schedule (c. upstream-written weights load here, inside) */
    test_sgd();
    test_smooth_far();
    test_rates();
    double t2 = dn_time_now();
    /* c. weights files */
    test_weights_files();
    /* e. predict */
    test_predict();
    double t3 = dn_time_now();
    /* d. shapes (upstream ran in the background meanwhile) */
    test_shapes(cfgs, ncfg, bg, bg_ours);
    double t4 = dn_time_now();
    printf("seconds: forward %.1f, sgd %.1f, files+predict %.1f, shapes %.1f\n", t1 - t0, t2 - t1, t3 - t2, t4 - t3);

    printf("max rel diffs: forward %.3g, deltas %.3g, sgd %.3g (behind batch norm %.3g), rates %.3g, predict %.3g\n",
           g_max_forward, g_max_delta, g_max_sgd, g_max_sgd_bn, g_max_rate, g_max_predict);
    g_keep = tl_failed > 0;
    if (g_keep) printf("kept %s for inspection (harness.log holds upstream's stderr)\n", g_dir);
    else remove_dir();
    TEST_MAIN_END();
}
