/*
 * test_gpu.c — the CUDA backend against the CPU reference. For networks that
 * together hold every layer type: forward (every layer's output), backward
 * (every layer's delta and every parameter update) and one full training
 * step (parameters after the SGD update) on the GPU match the CPU within a
 * relative 1e-3; weights saved from the GPU network, loaded into a CPU
 * network, give the same predictions. Also: errors without a device.
 * Without a CUDA device it prints "skipped: no CUDA device" and passes; a
 * CPU build reports that it has no GPU support.
 */
#include "darknet.h"
#include "internal.h"
#include "testlib.h"

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
    dn_network_backward(gpu);
    CHECK_OK(dn_gpu_take_error());
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
#endif
    TEST_MAIN_END();
}
