/*
 * test_parallel_train.c — data-parallel training (dn_network_train_parallel)
 * on CPU replicas: n replicas of batch b train exactly like one network of
 * batch n*b (same weights and updates after several steps with momentum and
 * decay, with and without subdivisions); replicas stay bit-identical with
 * batch norm; rolling statistics are averaged; bad arguments and divergence
 * are clean errors. The GPU path runs the same code with pulls and pushes
 * (tests/test_gpu.c checks those against the CPU).
 */
#include "darknet.h"
#include "testlib.h"

/* conv (bias), maxpool, route, shortcut, connected, softmax, cost: no batch
 * norm or dropout, so the split of the batch cannot change the gradient */
static const char *plain_cfg =
    "[net]\nbatch=%d\nsubdivisions=%d\nwidth=8\nheight=8\nchannels=2\nmomentum=0.9\ndecay=0.001\n"
    "learning_rate=0.05\npolicy=%s\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n"
    "[shortcut]\nfrom=-2\nactivation=linear\n"
    "[route]\nlayers=-1,-3\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[connected]\noutput=3\nactivation=linear\n"
    "[softmax]\n[cost]\n";

static const char *bn_cfg =
    "[net]\nbatch=%d\nsubdivisions=%d\nwidth=8\nheight=8\nchannels=2\nmomentum=0.9\ndecay=0.001\n"
    "learning_rate=0.05\npolicy=%s\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    "[avgpool]\n[connected]\noutput=3\nactivation=linear\n[softmax]\n[cost]\n";

/* A network of mini-batch `batch` (the cfg's batch= is the full batch, as upstream). */
static dn_network *make_policy(const char *fmt, int batch, int subdivisions, const char *policy)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg, fmt, batch * subdivisions, subdivisions, policy);
    dn_parse_options po = {.seed = 3, .quiet = 1};
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string(cfg, "replica", &po, &net));
    return net;
}

static dn_network *make(const char *fmt, int batch, int subdivisions)
{
    return make_policy(fmt, batch, subdivisions, "constant");
}

static void fill(float *X, float *Y, int n, int inputs, int classes, uint64_t seed)
{
    for (int i = 0; i < n * inputs; ++i) X[i] = dn_rand_uniform(&seed, -1, 1);
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < classes; ++k) Y[i * classes + k] = k == (int)(dn_rand_u64(&seed) % classes);
}

/* Largest relative difference between the parameters (and updates) of a and b. */
static float param_diff(const dn_network *a, const dn_network *b, int updates)
{
    float m = 0;
    for (int i = 0; i < a->n; ++i) {
        dn_param pa[DN_MAX_PARAMS], pb[DN_MAX_PARAMS];
        int np = dn_layer_params(&a->layers[i], pa);
        dn_layer_params(&b->layers[i], pb);
        for (int k = 0; k < np; ++k)
            for (size_t j = 0; j < pa[k].n; ++j) {
                const float *x = updates ? pa[k].updates : pa[k].data, *y = updates ? pb[k].updates : pb[k].data;
                if (!x || !y) continue;
                float d = tl_rel_diff(x[j], y[j], 1e-2f);
                if (d > m) m = d;
            }
    }
    return m;
}

/* n replicas of (batch, subdivisions) vs one network of batch n*batch*subdivisions. */
static void test_equivalence(int n, int batch, int subdivisions)
{
    int full = n * batch * subdivisions, steps = 4;
    dn_network *one = make(plain_cfg, full, 1), *reps[4] = {0};
    for (int r = 0; r < n; ++r) {
        reps[r] = make(plain_cfg, batch, subdivisions);
        if (one && reps[r]) CHECK_OK(dn_network_copy_params(reps[r], one));
    }
    if (!one || !reps[n - 1]) goto done;
    CHECK(param_diff(one, reps[n - 1], 0) == 0, "copied parameters are identical");
    float *X = calloc((size_t)full * steps * one->inputs, sizeof(float));
    float *Y = calloc((size_t)full * steps * one->truths, sizeof(float));
    fill(X, Y, full * steps, one->inputs, one->truths, 99);
    float l1 = 0, ln = 0;
    for (int s = 0; s < steps; ++s) {
        CHECK_OK(dn_network_train(one, X + (size_t)s * full * one->inputs, Y + (size_t)s * full * one->truths, full, &l1));
        CHECK_OK(dn_network_train_parallel(reps, n, X + (size_t)s * full * one->inputs,
                                           Y + (size_t)s * full * one->truths, full, &ln));
        CHECK(tl_rel_diff(l1, ln, 1e-3f) < 1e-4f, "n=%d b=%d sub=%d step %d: loss %g vs %g", n, batch,
              subdivisions, s, l1, ln);
    }
    float dw = param_diff(one, reps[0], 0), du = param_diff(one, reps[0], 1);
    CHECK(dw < 1e-4f, "n=%d b=%d sub=%d: weights after %d steps differ by %g", n, batch, subdivisions, steps, dw);
    CHECK(du < 1e-3f, "n=%d b=%d sub=%d: momentum (updates) differ by %g", n, batch, subdivisions, du);
    for (int r = 1; r < n; ++r)
        CHECK(param_diff(reps[0], reps[r], 0) == 0, "replica %d has replica 0's weights", r);
    CHECK(reps[0]->seen == one->seen && reps[n - 1]->seen == one->seen, "seen %llu vs %llu",
          (unsigned long long)reps[0]->seen, (unsigned long long)one->seen);
    free(X);
    free(Y);
done:
    dn_network_free(one);
    for (int r = 0; r < n; ++r) dn_network_free(reps[r]);
}

/* With batch norm the replicas stay identical; rolling means are averaged. */
static void test_batchnorm(void)
{
    dn_network *reps[2] = {make(bn_cfg, 4, 1), make(bn_cfg, 4, 1)};
    if (!reps[0] || !reps[1]) goto done;
    CHECK_OK(dn_network_copy_params(reps[1], reps[0]));
    float X[8 * 128], Y[8 * 3];
    fill(X, Y, 8, reps[0]->inputs, 3, 5);
    for (int i = 0; i < 4 * 128; ++i) X[i] += 2;   /* replica 0's share has another mean */
    float loss;
    CHECK_OK(dn_network_train_parallel(reps, 2, X, Y, 8, &loss));
    CHECK(param_diff(reps[0], reps[1], 0) == 0, "replicas identical after a step with batch norm");
    const dn_layer *l = &reps[0]->layers[0];
    /* rolling = .99 * 0 + .01 * batch mean, averaged over the replicas: compare with two single passes */
    dn_network *a = make(bn_cfg, 4, 1), *b = make(bn_cfg, 4, 1);
    if (a && b) {
        CHECK_OK(dn_network_copy_params(a, reps[1]));   /* any copy: only the pass's statistics matter */
        CHECK_OK(dn_network_copy_params(b, reps[1]));
        dn_network *fresh = make(bn_cfg, 4, 1);
        if (fresh) { CHECK_OK(dn_network_copy_params(a, fresh)); CHECK_OK(dn_network_copy_params(b, fresh)); }
        CHECK_OK(dn_network_forward(a, X, Y, 1));
        CHECK_OK(dn_network_forward(b, X + 4 * 128, Y + 12, 1));
        float worst = 0;
        for (int c = 0; c < l->out_c; ++c) {
            float want = (a->layers[0].rolling_mean[c] + b->layers[0].rolling_mean[c]) / 2;
            float d = tl_rel_diff(l->rolling_mean[c], want, 1e-3f);
            if (d > worst) worst = d;
        }
        CHECK(worst < 1e-4f, "rolling mean is the replicas' average (max rel diff %g)", worst);
        dn_network_free(fresh);
    }
    dn_network_free(a);
    dn_network_free(b);
done:
    dn_network_free(reps[0]);
    dn_network_free(reps[1]);
}

/* The schedule follows the images of all replicas (upstream's seen): a step
 * of 2 replicas counts 2 batches, so with steps=3 the rate halves after the
 * second step (batch 4), not the third. */
#define STEPS "steps\nsteps=3\nscales=.5"
static void test_schedule(void)
{
    dn_network *reps[2] = {make_policy(plain_cfg, 2, 1, STEPS), make_policy(plain_cfg, 2, 1, STEPS)};
    if (!reps[0] || !reps[1]) goto done;
    float X[4 * 128], Y[4 * 3], loss;
    fill(X, Y, 4, reps[0]->inputs, 3, 8);
    CHECK(dn_network_rate(reps[0]) == 0.05f, "rate before: %g", dn_network_rate(reps[0]));
    CHECK_OK(dn_network_train_parallel(reps, 2, X, Y, 4, &loss));
    CHECK(reps[0]->seen == 4 && dn_network_batch_num(reps[0]) == 2, "one step of 2 replicas is 2 batches (%zu)",
          dn_network_batch_num(reps[0]));
    CHECK(dn_network_rate(reps[0]) == 0.05f, "rate at batch 2: %g", dn_network_rate(reps[0]));
    CHECK_OK(dn_network_train_parallel(reps, 2, X, Y, 4, &loss));
    CHECK(dn_network_rate(reps[1]) == 0.025f, "rate at batch 4 (past steps=3): %g", dn_network_rate(reps[1]));
done:
    dn_network_free(reps[0]);
    dn_network_free(reps[1]);
}

static void test_errors(void)
{
    dn_network *a = make(plain_cfg, 4, 1), *b = make(plain_cfg, 2, 1), *c = make(bn_cfg, 4, 1);
    float X[16 * 128] = {0}, Y[16 * 3] = {0}, loss;
    dn_network *mixed[2] = {a, b}, *other[2] = {a, c}, *same[2] = {a, a};
    CHECK(dn_network_train_parallel(mixed, 2, X, Y, 8, &loss) == DN_ERR_ARG, "different batches rejected");
    CHECK(strstr(dn_last_error(), "replica 1") != NULL, "message names the replica: %s", dn_last_error());
    CHECK(dn_network_train_parallel(other, 2, X, Y, 8, &loss) == DN_ERR_ARG, "different cfgs rejected");
    CHECK(dn_network_train_parallel(same, 2, X, Y, 12, &loss) == DN_ERR_ARG, "12 images for 2 x 4 rejected");
    CHECK(strstr(dn_last_error(), "multiple") != NULL, "message: %s", dn_last_error());
    CHECK(dn_network_train_parallel(same, 0, X, Y, 8, &loss) == DN_ERR_ARG, "0 replicas rejected");
    CHECK(dn_network_train_parallel(NULL, 2, X, Y, 8, &loss) == DN_ERR_ARG, "NULL rejected");
    CHECK(dn_network_copy_params(a, c) == DN_ERR_ARG, "copy between different cfgs rejected");
    /* divergence in a replica is DN_ERR_NUMERIC naming the replica */
    dn_network *d = make(plain_cfg, 4, 1);
    if (a && d) {
        CHECK_OK(dn_network_copy_params(d, a));
        dn_network *two[2] = {a, d};
        for (int i = 0; i < 4 * a->inputs; ++i) X[4 * a->inputs + i] = NAN;
        for (int i = 0; i < 8; ++i) Y[i * 3] = 1;
        CHECK(dn_network_train_parallel(two, 2, X, Y, 8, &loss) == DN_ERR_NUMERIC, "NaN input diverges");
        CHECK(strstr(dn_last_error(), "replica 1") && strstr(dn_last_error(), "diverged"), "message: %s",
              dn_last_error());
    }
    dn_network_free(a); dn_network_free(b); dn_network_free(c); dn_network_free(d);
}

int main(void)
{
    test_equivalence(2, 4, 1);
    test_equivalence(2, 2, 2);
    test_equivalence(3, 2, 1);
    test_equivalence(1, 4, 2);
    test_batchnorm();
    test_schedule();
    test_errors();
    TEST_MAIN_END();
}
