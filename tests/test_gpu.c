/*
 * test_gpu.c — the CUDA backend against the CPU reference. For networks that
 * together hold every layer type: forward (every layer's output), backward
 * (every layer's delta and every parameter update) and one full training
 * step (parameters after the SGD update) on the GPU match the CPU within a
 * relative 1e-3; weights saved from the GPU network, loaded into a CPU
 * network, give the same predictions. Also: a batch change on the GPU, then
 * training (every network); data-parallel training of two GPU replicas
 * (devices 0 and 1 when there are two) against one CPU network of twice the
 * batch; errors without a device. Under the host emulator (make EMU=1,
 * tests/gpu_emu) also: out of device memory at every allocation in turn is a
 * clean DN_ERR_NOMEM that leaves nothing on the device, and a failure in the
 * middle of forward, predict, backward or update is that call's status.
 * Without a CUDA device it prints "skipped: no CUDA device" and passes; a
 * CPU build reports that it has no GPU support.
 */
#include "darknet.h"
#include "internal.h"
#include "testlib.h"
#ifdef DN_GPU_EMU
#include "gpu_emu.h"   /* the emulator's fault injection and device memory counts */
#include "gpu_kernels.h"
#include <pthread.h>
#endif

#define TOL 1e-3f

static const char *const nets[] = {
    /* conv (bias and batch norm, groups, stride, 1x1), maxpool, avgpool, connected, softmax, cost */
    "[net]\nbatch=4\nwidth=12\nheight=12\nchannels=3\nmomentum=0.9\ndecay=0.0005\nlearning_rate=0.1\n"
    "[convolutional]\nfilters=8\nsize=3\nstride=1\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    "[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\ngroups=2\nactivation=logistic\n"
    "[convolutional]\nfilters=6\nsize=1\nstride=1\nactivation=tanh\nlearning_rate=0.5\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[avgpool]\n"
    "[connected]\noutput=5\nactivation=linear\n"
    "[softmax]\n[cost]\n",
    /* route, shortcut, activation layer, dropout, batchnorm, local avgpool, connected with batch norm */
    "[net]\nbatch=4\nwidth=8\nheight=8\nchannels=2\nmomentum=0.9\ndecay=0.0005\nlearning_rate=0.05\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=elu\n"
    "[shortcut]\nfrom=-2\nactivation=linear\n"
    "[route]\nlayers=-1,-3\n"
    "[activation]\nactivation=selu\n"
    "[batchnorm]\n"
    "[local_avgpool]\nsize=2\nstride=2\n"
    "[dropout]\nprobability=0.25\n"
    "[connected]\noutput=3\nbatch_normalize=1\nactivation=relie\n"
    "[softmax]\n[cost]\n",
    /* pooling on odd sizes: maxpool first (no previous delta) with overlapping windows, size 3 stride 1,
     * padding that leaves the last windows empty; local_avgpool with clipped border windows; softmax
     * with groups and a temperature; scaled sse cost after softmax */
    "[net]\nbatch=3\nwidth=9\nheight=9\nchannels=2\nmomentum=0.9\ndecay=0.0005\nlearning_rate=0.1\n"
    "[maxpool]\nsize=3\nstride=2\n"                           /* 5x5, window at -1 */
    "[convolutional]\nfilters=6\nsize=3\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=3\nstride=1\n"                           /* 5x5, padding 2 */
    "[maxpool]\nsize=2\nstride=2\npadding=3\n"                /* 4x4, last row / column empty */
    "[local_avgpool]\nsize=3\nstride=1\n"                     /* 4x4, padding 2 */
    "[local_avgpool]\nsize=2\nstride=2\npadding=2\n"          /* 3x3, windows of 1, 2, 1 cells */
    "[avgpool]\n"
    "[connected]\noutput=4\nactivation=linear\n"
    "[softmax]\ngroups=2\ntemperature=2\n"
    "[cost]\ntype=sse\nscale=0.5\n",
    /* shortcut between shapes (from larger, from smaller, alpha/beta), route of one layer and of several
     * (channel concatenation, one input twice), batchnorm, dropout; batch 1 */
    "[net]\nbatch=1\nwidth=8\nheight=8\nchannels=3\nmomentum=0.9\ndecay=0.0005\nlearning_rate=0.05\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"           /* 0: 8x8x4 */
    "[convolutional]\nfilters=6\nsize=3\nstride=2\npad=1\nactivation=relu\n"  /* 1: 4x4x6 */
    "[shortcut]\nfrom=-2\nalpha=0.5\nbeta=2\nactivation=leaky\n"             /* 2: 8x8x4 onto 4x4x6 */
    "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"                 /* 3: 4x4x2 */
    "[route]\nlayers=0\n"                                                     /* 4: 8x8x4 */
    "[shortcut]\nfrom=3\nbeta=0.7\nactivation=linear\n"                       /* 5: 4x4x2 onto 8x8x4 */
    "[maxpool]\nsize=2\nstride=2\n"                                           /* 6: 4x4x4 */
    "[route]\nlayers=-1,2,-4,2\n"                                             /* 7: 4x4x18 */
    "[batchnorm]\n"
    "[dropout]\nprobability=0.3\n"
    "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n"
    "[avgpool]\n"
    "[softmax]\n",
    /* batchnorm first (no previous delta), dropout, smooth cost on a linear output (both branches); batch 5 */
    "[net]\nbatch=5\nwidth=6\nheight=6\nchannels=2\nmomentum=0.9\ndecay=0.0005\nlearning_rate=0.05\n"
    "[batchnorm]\n"
    "[dropout]\nprobability=0.4\n"
    "[convolutional]\nfilters=3\nsize=3\npad=1\nactivation=tanh\n"
    "[avgpool]\n"
    "[connected]\noutput=4\nactivation=linear\n"
    "[cost]\ntype=smooth\nscale=0.5\n",
    /* dropout first, L1 cost; batch 2 */
    "[net]\nbatch=2\nwidth=5\nheight=5\nchannels=1\nmomentum=0.9\ndecay=0.0005\nlearning_rate=0.05\n"
    "[dropout]\nprobability=0.5\n"
    "[connected]\noutput=3\nactivation=logistic\n"
    "[cost]\ntype=L1\n",
};

#ifdef DN_GPU
static float max_rel(const float *a, const float *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; ++i) {
        float d = tl_rel_diff(a[i], b[i], 1e-2f);
        if (d > m || d != d) m = d != d ? 1e9f : d;
    }
    return m;
}

/* Compare a host array of the CPU net with the device twin of the GPU net. */
static void compare_device(const char *what, int layer, const float *cpu, const float *gpu_dev, size_t n)
{
    float *h = calloc(n ? n : 1, sizeof(float));
    CHECK_OK(dn_gpu_pull(h, gpu_dev, n));
    float d = max_rel(cpu, h, n);
    CHECK(d <= TOL, "layer %d %s: max relative difference %g", layer, what, d);
    free(h);
}

static void fill_data(dn_network *net, float *X, float *Y, uint64_t seed)
{
    for (int i = 0; i < net->batch * net->inputs; ++i) X[i] = dn_rand_uniform(&seed, -1, 1);
    for (int b = 0; b < net->batch; ++b)
        for (int k = 0; k < net->truths; ++k) Y[b * net->truths + k] = k == b % net->truths;
}

static void compare_pass(dn_network *cpu, dn_network *gpu, int net_index)
{
    for (int i = 0; i < cpu->n; ++i) {
        dn_layer *c = &cpu->layers[i], *g = &gpu->layers[i];
        size_t n = (size_t)c->batch * c->outputs;
        compare_device("output", i, c->output, g->output_gpu, n);
        compare_device("delta", i, c->delta, g->delta_gpu, n);
    }
    CHECK(tl_rel_diff(cpu->cost, gpu->cost, 1e-3f) <= TOL, "net %d cost %g vs %g", net_index, cpu->cost, gpu->cost);
}

/* Host arrays of every parameter (after pull) must match. */
static void compare_params(dn_network *cpu, dn_network *gpu, const char *when)
{
    CHECK_OK(dn_network_pull(gpu));
    for (int i = 0; i < cpu->n; ++i) {
        dn_param a[DN_MAX_PARAMS], b[DN_MAX_PARAMS];
        int na = dn_layer_params(&cpu->layers[i], a), nb = dn_layer_params(&gpu->layers[i], b);
        CHECK(na == nb, "layer %d params", i);
        for (int k = 0; k < na && k < nb; ++k) {
            float d = max_rel(a[k].data, b[k].data, a[k].n);
            CHECK(d <= TOL, "%s: layer %d %s: max relative difference %g", when, i, a[k].name, d);
            if (a[k].updates && b[k].updates) {
                d = max_rel(a[k].updates, b[k].updates, a[k].n);
                CHECK(d <= TOL, "%s: layer %d %s updates: max relative difference %g", when, i, a[k].name, d);
            }
        }
    }
}

static void test_net(int k)
{
    dn_parse_options po = {.seed = 7, .quiet = 1};
    dn_network *cpu = NULL, *gpu = NULL, *back = NULL;
    CHECK_OK(dn_network_parse_string(nets[k], "cpu", &po, &cpu));
    CHECK_OK(dn_network_parse_string(nets[k], "gpu", &po, &gpu));
    if (!cpu || !gpu) goto done;
    CHECK_OK(dn_network_to_gpu(gpu, 0));
    float *X = calloc((size_t)cpu->batch * cpu->inputs, sizeof(float));
    float *Y = calloc((size_t)cpu->batch * cpu->truths, sizeof(float));
    fill_data(cpu, X, Y, 11 + k);
    /* one pass: forward and backward, then the parameter updates */
    cpu->seen = gpu->seen = 0;
    CHECK_OK(dn_network_forward(cpu, X, Y, 1));
    CHECK_OK(dn_network_forward(gpu, X, Y, 1));
    dn_network_backward(cpu);
    CHECK_OK(dn_network_backward(gpu));
    compare_pass(cpu, gpu, k);
    compare_params(cpu, gpu, "after backward");
    /* a full training step each (forward, backward, update) */
    float lc, lg;
    CHECK_OK(dn_network_train(cpu, X, Y, cpu->batch, &lc));
    CHECK_OK(dn_network_train(gpu, X, Y, gpu->batch, &lg));
    CHECK(tl_rel_diff(lc, lg, 1e-3f) <= TOL, "net %d training loss %g vs %g", k, lc, lg);
    compare_params(cpu, gpu, "after a training step");
    /* GPU weights load on the CPU and predict the same */
    void *w = NULL;
    size_t ws = 0;
    CHECK_OK(dn_weights_save_memory(gpu, &w, &ws));
    CHECK_OK(dn_network_parse_string(nets[k], "back", &po, &back));
    if (back && w) CHECK_OK(dn_weights_load_memory(back, w, ws, "gpu weights"));
    float *pg = calloc((size_t)cpu->batch * cpu->outputs, sizeof(float));
    float *pc = calloc((size_t)cpu->batch * cpu->outputs, sizeof(float));
    CHECK_OK(dn_network_predict_batch(gpu, X, gpu->batch, pg));
    if (back) CHECK_OK(dn_network_predict_batch(back, X, back->batch, pc));
    float d = max_rel(pc, pg, (size_t)cpu->batch * cpu->outputs);
    CHECK(d <= TOL, "net %d: predictions of the reloaded weights differ by %g", k, d);
    free(w); free(pg); free(pc); free(X); free(Y);
done:
    dn_network_free(cpu);
    dn_network_free(gpu);
    dn_network_free(back);
}

/* dn_network_set_batch on a network on the GPU (to another batch and back),
 * training after each change: losses, every layer's output and delta, and
 * the parameters match the CPU network given the same changes. */
static void test_batch_change(int k)
{
    dn_parse_options po = {.seed = 3, .quiet = 1};
    dn_network *cpu = NULL, *gpu = NULL;
    CHECK_OK(dn_network_parse_string(nets[k], "cpu", &po, &cpu));
    CHECK_OK(dn_network_parse_string(nets[k], "gpu", &po, &gpu));
    if (!cpu || !gpu) goto done;
    CHECK_OK(dn_network_to_gpu(gpu, 0));
    int batches[2] = {cpu->batch == 1 ? 3 : 1, cpu->batch};
    for (int c = 0; c < 2; ++c) {
        int b = batches[c];
        CHECK_OK(dn_network_set_batch(cpu, b));
        CHECK_OK(dn_network_set_batch(gpu, b));
        float *X = calloc((size_t)b * cpu->inputs, sizeof(float)), *Y = calloc((size_t)b * cpu->truths, sizeof(float));
        fill_data(cpu, X, Y, 5 + c);
        for (int step = 0; step < 3; ++step) {
            float lc = 0, lg = 0;
            CHECK_OK(dn_network_train(cpu, X, Y, b, &lc));
            CHECK_OK(dn_network_train(gpu, X, Y, b, &lg));
            CHECK(tl_rel_diff(lc, lg, 1e-3f) <= TOL, "net %d batch %d step %d: loss %g vs %g", k, b, step, lc, lg);
        }
        compare_pass(cpu, gpu, k);
        compare_params(cpu, gpu, "after a batch change");
        free(X); free(Y);
    }
done:
    dn_network_free(cpu);
    dn_network_free(gpu);
}

/* No batch norm or dropout, so splitting the batch cannot change the gradient. */
static const char *parallel_cfg =
    "[net]\nbatch=%d\nsubdivisions=1\nwidth=8\nheight=8\nchannels=2\nmomentum=0.9\ndecay=0.001\n"
    "learning_rate=0.05\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=relu\n"
    "[shortcut]\nfrom=-2\nactivation=linear\n"
    "[route]\nlayers=-1,-3\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[connected]\noutput=3\nactivation=linear\n"
    "[softmax]\n[cost]\n";

static dn_network *parallel_net(int batch)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, parallel_cfg, batch);
    dn_parse_options po = {.seed = 3, .quiet = 1};
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string(cfg, "parallel", &po, &net));
    return net;
}

/* Largest relative difference between the host parameters of a and b. */
static float param_diff(const dn_network *a, const dn_network *b)
{
    float m = 0;
    for (int i = 0; i < a->n; ++i) {
        dn_param pa[DN_MAX_PARAMS], pb[DN_MAX_PARAMS];
        int np = dn_layer_params(&a->layers[i], pa);
        dn_layer_params(&b->layers[i], pb);
        for (int k = 0; k < np; ++k) {
            float d = max_rel(pa[k].data, pb[k].data, pa[k].n);
            if (d > m) m = d;
        }
    }
    return m;
}

/* dn_network_train_parallel over two GPU replicas of batch 4 (devices 0 and
 * 1, or both on 0 with one device) trains like one CPU network of batch 8
 * (tests/test_parallel_train.c checks the same on CPU replicas). */
static void test_data_parallel(void)
{
    enum { B = 4, STEPS = 4 };
    int second = dn_gpu_count() > 1 ? 1 : 0;
    dn_network *one = parallel_net(2 * B), *reps[2] = {parallel_net(B), parallel_net(B)};
    if (!one || !reps[0] || !reps[1]) goto done;
    CHECK_OK(dn_network_copy_params(reps[0], one));
    CHECK_OK(dn_network_copy_params(reps[1], one));
    CHECK_OK(dn_network_to_gpu(reps[0], 0));
    CHECK_OK(dn_network_to_gpu(reps[1], second));
#ifdef DN_GPU_EMU
    long launches = gpu_emu_launches(second);
#endif
    size_t in = (size_t)one->inputs, tr = (size_t)one->truths;
    float *X = calloc(STEPS * 2 * B * in, sizeof(float)), *Y = calloc(STEPS * 2 * B * tr, sizeof(float));
    uint64_t seed = 17;
    for (size_t i = 0; i < STEPS * 2 * B * in; ++i) X[i] = dn_rand_uniform(&seed, -1, 1);
    for (size_t i = 0; i < STEPS * 2 * B; ++i) Y[i * tr + dn_rand_u64(&seed) % tr] = 1;
    for (int s = 0; s < STEPS; ++s) {
        float l1 = 0, l2 = 0;
        const float *x = X + (size_t)s * 2 * B * in, *y = Y + (size_t)s * 2 * B * tr;
        CHECK_OK(dn_network_train(one, x, y, 2 * B, &l1));
        CHECK_OK(dn_network_train_parallel(reps, 2, x, y, 2 * B, &l2));
        CHECK(tl_rel_diff(l1, l2, 1e-3f) <= TOL, "data parallel step %d: loss %g vs %g", s, l1, l2);
    }
    CHECK_OK(dn_network_pull(reps[0]));
    CHECK_OK(dn_network_pull(reps[1]));
    float d = param_diff(one, reps[0]);
    CHECK(d <= TOL, "data parallel on GPUs 0 and %d: parameters after %d steps differ by %g", second, STEPS, d);
    CHECK(param_diff(reps[0], reps[1]) == 0, "the replicas hold the same parameters");
    CHECK(reps[1]->seen == one->seen, "seen %llu vs %llu", (unsigned long long)reps[1]->seen,
          (unsigned long long)one->seen);
#ifdef DN_GPU_EMU
    CHECK(gpu_emu_launches(second) > launches, "replica 1 ran its kernels on device %d", second);
#endif
    free(X); free(Y);
done:
    dn_network_free(one);
    dn_network_free(reps[0]);
    dn_network_free(reps[1]);
}

#ifdef DN_GPU_EMU
/* One training step of net (or one pass: `kind`) on the thread this runs
 * on (a new thread has no cuBLAS handle yet). */
typedef enum { JOB_TRAIN, JOB_FORWARD, JOB_BACKWARD, JOB_PREDICT } job_kind;
typedef struct {
    dn_network *net; const float *X, *Y; dn_status status; char error[512];
    job_kind kind;
    const float *output;   /* JOB_PREDICT */
} train_job;

static void *train_on_thread(void *arg)
{
    train_job *j = arg;
    float loss;
    switch (j->kind) {
    case JOB_TRAIN: j->status = dn_network_train(j->net, j->X, j->Y, j->net->batch, &loss); break;
    case JOB_FORWARD: j->status = dn_network_forward(j->net, j->X, j->Y, 1); break;
    case JOB_BACKWARD: j->status = dn_network_backward(j->net); break;
    case JOB_PREDICT: j->output = j->X; j->status = dn_network_predict(j->net, j->X, &j->output); break;
    }
    snprintf(j->error, sizeof j->error, "%s", j->status == DN_OK ? "" : dn_last_error());
    return NULL;
}

static void train_on_new_thread(train_job *j)
{
    pthread_t t;
    if (pthread_create(&t, NULL, train_on_thread, j) == 0) pthread_join(t, NULL);
    else { j->status = DN_ERR_ARG; snprintf(j->error, sizeof j->error, "cannot start a thread"); }
}

/* Out of device memory, under the emulator's fault injection: the n-th
 * device allocation of dn_network_to_gpu fails, for every n in turn; a
 * batch change that runs out; a cuBLAS handle that cannot be created.
 * Each is DN_ERR_NOMEM with a message, leaves no device buffer behind (and
 * LeakSanitizer sees none leaked), and the network goes on working: on the
 * CPU, or on the GPU once memory is back. */
static void test_out_of_memory(int k)
{
    dn_parse_options po = {.seed = 7, .quiet = 1};
    long base = gpu_emu_buffers(-1);
    int fails = 0;
    for (long n = 0;; ++n) {
        dn_network *net = NULL;
        CHECK_OK(dn_network_parse_string(nets[k], "oom", &po, &net));
        if (!net) return;
        float loss, *X = calloc((size_t)net->batch * net->inputs, sizeof(float));
        float *Y = calloc((size_t)net->batch * net->truths, sizeof(float));
        fill_data(net, X, Y, 3);
        gpu_emu_alloc_limit(n);
        dn_status s = dn_network_to_gpu(net, 0);
        gpu_emu_alloc_limit(-1);
        int done = s == DN_OK;
        if (!done) {
            ++fails;
            CHECK(s == DN_ERR_NOMEM && !net->on_gpu, "net %d, allocation %ld fails: %s, on_gpu %d", k, n + 1,
                  dn_status_name(s), net->on_gpu);
            const char *msg = dn_last_error();
            CHECK(strstr(msg, "cannot put the network on GPU 0") && strstr(msg, "out of memory"),
                  "net %d, allocation %ld fails: message '%s'", k, n + 1, msg);
            CHECK(gpu_emu_buffers(-1) == base, "net %d, allocation %ld fails: %ld device buffers left behind", k,
                  n + 1, gpu_emu_buffers(-1) - base);
            CHECK_OK(dn_network_train(net, X, Y, net->batch, &loss));   /* on the CPU */
            if (n % 8 == 0) {   /* and on the GPU once there is memory again */
                CHECK_OK(dn_network_to_gpu(net, 0));
                CHECK_OK(dn_network_train(net, X, Y, net->batch, &loss));
            }
        } else {
            /* a batch change that runs out of device memory, then recovery by moving the network again */
            gpu_emu_alloc_limit(1);
            s = dn_network_set_batch(net, net->batch + 1);
            gpu_emu_alloc_limit(-1);
            CHECK(s == DN_ERR_NOMEM, "net %d: batch change without device memory -> %s", k, dn_status_name(s));
            CHECK_OK(dn_network_to_gpu(net, 0));
            float *X2 = calloc((size_t)net->batch * net->inputs, sizeof(float));
            float *Y2 = calloc((size_t)net->batch * net->truths, sizeof(float));
            fill_data(net, X2, Y2, 4);
            CHECK_OK(dn_network_train(net, X2, Y2, net->batch, &loss));
            /* a new thread's first GEMM creates its cuBLAS handle: that allocation fails, then works */
            CHECK_OK(dn_network_set_batch(net, net->batch - 1));
            train_job j = {net, X, Y, DN_OK, "", JOB_TRAIN, NULL};
            gpu_emu_alloc_limit(0);
            train_on_new_thread(&j);
            gpu_emu_alloc_limit(-1);
            CHECK(j.status == DN_ERR_NOMEM && strstr(j.error, "cublasCreate"), "net %d: no memory for a cuBLAS "
                  "handle -> %s: %s", k, dn_status_name(j.status), j.error);
            train_on_new_thread(&j);
            CHECK(j.status == DN_OK, "net %d: training on a new thread: %s", k, j.error);
            free(X2); free(Y2);
        }
        free(X); free(Y);
        dn_network_free(net);
        CHECK(gpu_emu_buffers(-1) == base, "net %d: dn_network_free leaves %ld device buffers", k,
              gpu_emu_buffers(-1) - base);
        if (done) break;
    }
    CHECK(fails > 10, "net %d: only %d device allocations to fail", k, fails);
}

/* One pass of kind `kind` on a new thread whose cuBLAS handle cannot be
 * created (no device memory left): the status of the call, as the job saw it. */
static train_job starved_pass(dn_network *net, const float *X, const float *Y, job_kind kind)
{
    train_job j = {net, X, Y, DN_OK, "", kind, NULL};
    gpu_emu_alloc_limit(0);
    train_on_new_thread(&j);
    gpu_emu_alloc_limit(-1);
    return j;
}

/* A GPU failure in the middle of a pass comes back as the status of the
 * call that met it, not after the fact: forward, predict and backward on a
 * thread whose first GEMM cannot create its cuBLAS handle are
 * DN_ERR_NOMEM naming cublasCreate (predict's output pointer NULL); an
 * update whose SGD kernel is given host memory is DN_ERR_GPU naming the
 * kernel. The network trains again afterwards. */
static void test_pass_errors(int k)
{
    dn_parse_options po = {.seed = 5, .quiet = 1};
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string(nets[k], "pass errors", &po, &net));
    if (!net) return;
    CHECK_OK(dn_network_to_gpu(net, 0));
    float loss, *X = calloc((size_t)net->batch * net->inputs, sizeof(float));
    float *Y = calloc((size_t)net->batch * net->truths, sizeof(float));
    fill_data(net, X, Y, 8);
    CHECK_OK(dn_network_train(net, X, Y, net->batch, &loss));   /* this thread's handle exists */

    train_job j = starved_pass(net, X, Y, JOB_FORWARD);
    CHECK(j.status == DN_ERR_NOMEM && strstr(j.error, "cublasCreate"), "net %d: forward -> %s: %s", k,
          dn_status_name(j.status), j.error);
    j = starved_pass(net, X, NULL, JOB_PREDICT);
    CHECK(j.status == DN_ERR_NOMEM && strstr(j.error, "cublasCreate") && j.output == NULL,
          "net %d: predict -> %s: %s (output %p)", k, dn_status_name(j.status), j.error, (const void *)j.output);
    CHECK_OK(dn_network_forward(net, X, Y, 1));
    j = starved_pass(net, X, Y, JOB_BACKWARD);
    CHECK(j.status == DN_ERR_NOMEM && strstr(j.error, "cublasCreate"), "net %d: backward -> %s: %s", k,
          dn_status_name(j.status), j.error);

    /* the first layer with device weights gets host memory for them, for one update */
    dn_layer *l = NULL;
    for (int i = 0; i < net->n && !l; ++i)
        if (net->layers[i].gpu_native && net->layers[i].weights_gpu) l = &net->layers[i];
    float *host = l ? calloc(l->nweights, sizeof(float)) : NULL;
    if (l && host) {
        float *device = l->weights_gpu;
        l->weights_gpu = host;
        fprintf(stderr, "test_gpu: one gpu_emu complaint expected:\n");
        dn_status s = dn_network_update(net);
        l->weights_gpu = device;
        CHECK(s == DN_ERR_GPU && strstr(dn_last_error(), "dn_cuda_sgd"), "net %d: update -> %s: %s", k,
              dn_status_name(s), dn_last_error());
    }
    CHECK(l && host, "net %d has a layer with device weights", k);
    CHECK_OK(dn_network_train(net, X, Y, net->batch, &loss));
    free(host); free(X); free(Y);
    dn_network_free(net);
}

/* The emulator itself rejects what a device would (so the passes above mean
 * something): host memory given as device memory, to a copy, a kernel and
 * a GEMM, and a kernel given memory of another device. */
static void test_emulator_checks(void)
{
    fprintf(stderr, "test_gpu: four gpu_emu complaints expected:\n");
    float host[4] = {0}, *dev = NULL;
    dn_gpu_alloc(4, &dev);
    CHECK(dn_gpu_push(host, dev, 4) == DN_ERR_GPU, "a push into host memory fails");
    CHECK(DN_CUDA(dn_cuda_fill(host, 4, 1)) == DN_ERR_GPU && host[0] == 0, "a kernel on host memory fails");
    CHECK(dn_gpu_gemm(0, 0, 2, 2, 2, 1, host, 2, dev, 2, 0, dev, 2) == DN_ERR_GPU, "a GEMM of host memory fails");
    if (dn_gpu_count() > 1) {
        CHECK_OK(dn_gpu_use(1));
        float *other = NULL;
        dn_gpu_alloc(4, &other);
        CHECK_OK(dn_gpu_use(0));
        CHECK(DN_CUDA(dn_cuda_fill(other, 4, 1)) == DN_ERR_GPU, "a kernel on device 0 with memory of device 1 fails");
        dn_gpu_free(other);
    }
    dn_gpu_free(dev);
}
#endif
#endif

/* Without a device (or GPU support) the calls fail cleanly. */
static void test_no_device(const char *expect)
{
    dn_status s = dn_gpu_use(0);
    CHECK(s == DN_ERR_GPU, "dn_gpu_use(0) -> %s", dn_status_name(s));
    CHECK(strstr(dn_last_error(), expect) != NULL, "message '%s' names '%s'", dn_last_error(), expect);
    dn_network *net = NULL;
    dn_parse_options po = {.quiet = 1};
    CHECK_OK(dn_network_parse_string(nets[0], "net", &po, &net));
    if (!net) return;
    s = dn_network_to_gpu(net, 0);
    CHECK(s == DN_ERR_GPU && !net->on_gpu, "dn_network_to_gpu without a device -> %s", dn_status_name(s));
    float loss, *X = calloc((size_t)net->batch * net->inputs, sizeof(float));
    float *Y = calloc((size_t)net->batch * net->truths, sizeof(float));
    CHECK_OK(dn_network_train(net, X, Y, net->batch, &loss));   /* still trains on the CPU */
    CHECK_OK(dn_network_pull(net));
    free(X); free(Y);
    dn_network_free(net);
}

/* The test networks themselves parse and train on the CPU. */
static void test_nets_parse(void)
{
    for (size_t k = 0; k < sizeof nets / sizeof *nets; ++k) {
        dn_network *net = NULL;
        dn_parse_options po = {.quiet = 1};
        CHECK_OK(dn_network_parse_string(nets[k], "net", &po, &net));
        if (!net) continue;
        float loss, *X = calloc((size_t)net->batch * net->inputs, sizeof(float));
        float *Y = calloc((size_t)net->batch * net->truths, sizeof(float));
        CHECK_OK(dn_network_train(net, X, Y, net->batch, &loss));
        free(X); free(Y);
        dn_network_free(net);
    }
}

int main(void)
{
    CHECK(dn_gpu_count() >= 0, "count");
    test_nets_parse();
    if (!dn_gpu_built()) {
        test_no_device("no GPU support");
        printf("skipped: this build has no GPU support (make GPU=1)\n");
        TEST_MAIN_END();
    }
    if (dn_gpu_count() == 0) {
        test_no_device("no CUDA device");
        printf("skipped: no CUDA device\n");
        TEST_MAIN_END();
    }
#ifdef DN_GPU
    CHECK(dn_gpu_use(dn_gpu_count()) == DN_ERR_GPU, "a device index past the count fails");
#ifdef DN_CUDNN
    /* Both convolution paths against the CPU: cuDNN (2: required, so a layer
     * it cannot set up fails here instead of quietly taking im2col), then
     * im2col + cuBLAS. DN_CUDNN=0 in the environment runs im2col twice. */
    static const struct { int mode; const char *name; } paths[] = {{2, "cuDNN"}, {0, "im2col + cuBLAS"}};
    for (size_t p = 0; p < sizeof paths / sizeof *paths; ++p) {
        dn_cudnn_enabled = paths[p].mode;
        fprintf(stderr, "test_gpu: convolutions through %s\n", paths[p].name);
        for (size_t k = 0; k < sizeof nets / sizeof *nets; ++k) test_net((int)k);
    }
    dn_cudnn_enabled = 1;
#else
    for (size_t k = 0; k < sizeof nets / sizeof *nets; ++k) test_net((int)k);
#endif
    for (size_t k = 0; k < sizeof nets / sizeof *nets; ++k) test_batch_change((int)k);
    test_data_parallel();
#ifdef DN_GPU_EMU
    test_emulator_checks();
    test_out_of_memory(0);
    test_out_of_memory(1);
    test_pass_errors(0);
    test_pass_errors(1);
#endif
#endif
    TEST_MAIN_END();
}
