/*
 * conv_cudnn.c — [convolutional] forward and backward through cuDNN 9
 * (make GPU=1 CUDNN=1). layer_convolutional.c's GPU half calls these for a
 * layer that is set up (dn_conv_cudnn_active) and runs im2col + cuBLAS
 * otherwise.
 *
 * Per layer (l->gpu_state, built by setup on every batch change, freed by
 * release), all NCHW float in darknet's own layouts:
 *   x  input            (batch, c, h, w)
 *   y  output and delta (batch, filters, out_h, out_w)
 *   w  weights          (filters, c/groups, size, size)   = cuDNN KCRS
 *   convolution: cross-correlation, padding l->pad on every side, stride
 *   l->stride, dilation 1, l->groups groups, FP32 compute, FMA math only
 *   (CUDNN_DEFAULT_MATH would allow TF32 tensor cores on Ampere and later,
 *   which misses the CPU reference by far more than 1e-3).
 *
 * Algorithm choice (forward, backward-filter, backward-data), once per
 * setup: cuDNN's heuristics (cudnnGet*Algorithm_v7), not measurement
 * (cudnnFind*AlgorithmEx). The heuristics cost microseconds and no device
 * memory, and give the same choice every run; measuring costs a timed run of
 * every algorithm per layer and direction, temporary buffers, and its choice
 * varies from run to run — too much for evolution, which builds thousands of
 * networks and re-sets them up on every batch change. From the candidates in
 * cuDNN's order (fastest expected first) we take the first that (1) the
 * heuristic reported without error, (2) is not a tensor-op (TF32/FP16)
 * variant, (3) needs at most WORKSPACE_CAP bytes of workspace (asked again
 * with cudnnGet*WorkspaceSize), preferring deterministic algorithms: the other
 * GPU kernels are deterministic, so a seed reproduces a run on one GPU.
 * Workspace: the most any of the three needs, reported in floats through the
 * ops' workspace_gpu (net->workspace_gpu is sized to the max over layers).
 *
 * API: in cuDNN 9 the whole legacy convolution API (filter and convolution
 * descriptors, the algorithm queries, cudnnConvolutionForward/Backward*) is
 * marked CUDNN_DEPRECATED (warnings only with CUDNN_WARN_DEPRECATED). Its
 * replacement, the graph (backend) API, needs operation graphs, engine
 * configurations, execution plans and variant packs for one convolution,
 * and its own handle attributes are deprecated again in 9.19. The legacy API
 * is still supported throughout cuDNN 9, so we use it and silence the
 * deprecation warnings for this file only (pragma below).
 *
 * Errors: every cuDNN call goes through DN_CUDNN_CALL (allocation failures
 * are DN_ERR_NOMEM). A layer whose descriptors or algorithms cannot be set
 * up falls back to im2col + cuBLAS (one warning per process) unless
 * dn_cudnn_enabled is 2 (tests: cuDNN required); out of memory is returned.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

/* 1: use cuDNN (DN_CUDNN=0 in the environment turns it off); 0: im2col +
 * cuBLAS; 2: cuDNN, and a layer that cannot be set up is an error. Read at
 * setup (dn_network_to_gpu, batch changes) and in every pass. */
int dn_cudnn_enabled = 1;

#ifdef DN_CUDNN
#include <cudnn.h>
#include <stdatomic.h>

/* The legacy convolution API is deprecated in cuDNN 9 (see the header). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define WORKSPACE_CAP ((size_t)256 << 20)   /* bytes one algorithm may use */
#define MAX_ALGOS 32                        /* heuristic results asked for */

typedef struct {
    cudnnHandle_t handle;                  /* of the device the layer was set up on */
    cudnnTensorDescriptor_t x, y;          /* (batch, c, h, w), (batch, filters, out_h, out_w) */
    cudnnFilterDescriptor_t w;             /* (filters, c/groups, size, size) */
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    size_t workspace;                      /* bytes: the most the three algorithms need */
} conv_state;

/* One heuristic result, whatever the direction. */
typedef struct {
    int algo;
    cudnnStatus_t status;
    size_t memory;
    cudnnDeterminism_t determinism;
    cudnnMathType_t math;
} candidate;

/* Workspace bytes of algorithm `algo` in one direction. */
typedef dn_status (*workspace_query)(const conv_state *s, int algo, size_t *bytes);

static int wanted(void)
{
    const char *env = getenv("DN_CUDNN");
    return dn_cudnn_enabled && !(env && strcmp(env, "0") == 0);
}

/* ------------------------------------------------------------ descriptors */

void dn_conv_cudnn_release(dn_layer *l)
{
    conv_state *s = l->gpu_state;
    if (!s) return;
    /* Destroying a valid descriptor cannot fail; a NULL one was never created. */
    if (s->conv) cudnnDestroyConvolutionDescriptor(s->conv);
    if (s->w) cudnnDestroyFilterDescriptor(s->w);
    if (s->y) cudnnDestroyTensorDescriptor(s->y);
    if (s->x) cudnnDestroyTensorDescriptor(s->x);
    free(s);
    l->gpu_state = NULL;
}

/* Each descriptor stays NULL until its create succeeds (release relies on it). */
static dn_status create_descriptors(conv_state *s)
{
    cudnnTensorDescriptor_t x = NULL, y = NULL;
    cudnnFilterDescriptor_t w = NULL;
    cudnnConvolutionDescriptor_t conv = NULL;
    DN_TRY(DN_CUDNN_CALL(cudnnCreateTensorDescriptor(&x)));
    s->x = x;
    DN_TRY(DN_CUDNN_CALL(cudnnCreateTensorDescriptor(&y)));
    s->y = y;
    DN_TRY(DN_CUDNN_CALL(cudnnCreateFilterDescriptor(&w)));
    s->w = w;
    DN_TRY(DN_CUDNN_CALL(cudnnCreateConvolutionDescriptor(&conv)));
    s->conv = conv;
    return DN_OK;
}

/* Shapes of the layer at its current batch; cuDNN's output shape must be
 * the layer's ((in + 2*pad - size)/stride + 1, layer_convolutional.c). */
static dn_status set_descriptors(conv_state *s, const dn_layer *l)
{
    DN_TRY(DN_CUDNN_CALL(cudnnSetTensor4dDescriptor(s->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, l->batch, l->c, l->h,
                                                    l->w)));
    DN_TRY(DN_CUDNN_CALL(cudnnSetTensor4dDescriptor(s->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, l->batch, l->filters,
                                                    l->out_h, l->out_w)));
    DN_TRY(DN_CUDNN_CALL(cudnnSetFilter4dDescriptor(s->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, l->filters,
                                                    l->c / l->groups, l->size, l->size)));
    DN_TRY(DN_CUDNN_CALL(cudnnSetConvolution2dDescriptor(s->conv, l->pad, l->pad, l->stride, l->stride, 1, 1,
                                                         CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT)));
    DN_TRY(DN_CUDNN_CALL(cudnnSetConvolutionGroupCount(s->conv, l->groups)));
    DN_TRY(DN_CUDNN_CALL(cudnnSetConvolutionMathType(s->conv, CUDNN_FMA_MATH)));
    int n = 0, c = 0, h = 0, w = 0;
    DN_TRY(DN_CUDNN_CALL(cudnnGetConvolution2dForwardOutputDim(s->conv, s->x, s->w, &n, &c, &h, &w)));
    if (n != l->batch || c != l->filters || h != l->out_h || w != l->out_w)
        return dn_fail(DN_ERR_GPU, "cuDNN output %dx%dx%dx%d is not the layer's %dx%dx%dx%d", n, c, h, w, l->batch,
                       l->filters, l->out_h, l->out_w);
    return DN_OK;
}

/* ------------------------------------------------------------ algorithms */

static int acceptable(const candidate *c)
{
    return c->status == CUDNN_STATUS_SUCCESS && c->memory <= WORKSPACE_CAP && c->math != CUDNN_TENSOR_OP_MATH &&
           c->math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

/* The policy in the header: first pass deterministic candidates only, second
 * pass the others; the first whose workspace query succeeds within the cap. */
static dn_status pick(const conv_state *s, const candidate *c, int n, workspace_query query, const char *what,
                      int *algo, size_t *bytes)
{
    for (int pass = 0; pass < 2; ++pass)
        for (int i = 0; i < n; ++i) {
            int det = c[i].determinism == CUDNN_DETERMINISTIC;
            if (!acceptable(&c[i]) || det != (pass == 0)) continue;
            size_t need = 0;
            dn_status st = query(s, c[i].algo, &need);
            if (st == DN_ERR_NOMEM) return st;
            if (st != DN_OK || need > WORKSPACE_CAP) continue;
            *algo = c[i].algo;
            *bytes = need;
            return DN_OK;
        }
    return dn_fail(DN_ERR_GPU, "no cuDNN %s algorithm (of %d) runs in FP32 within %zu MiB of workspace", what, n,
                   WORKSPACE_CAP >> 20);
}

static int clamp_count(int n) { return n < 1 ? 1 : n > MAX_ALGOS ? MAX_ALGOS : n; }

static dn_status fwd_workspace(const conv_state *s, int algo, size_t *bytes)
{
    return DN_CUDNN_CALL(cudnnGetConvolutionForwardWorkspaceSize(s->handle, s->x, s->w, s->conv, s->y,
                                                                 (cudnnConvolutionFwdAlgo_t)algo, bytes));
}

static dn_status bwd_filter_workspace(const conv_state *s, int algo, size_t *bytes)
{
    return DN_CUDNN_CALL(cudnnGetConvolutionBackwardFilterWorkspaceSize(s->handle, s->x, s->y, s->conv, s->w,
                                                                        (cudnnConvolutionBwdFilterAlgo_t)algo, bytes));
}

static dn_status bwd_data_workspace(const conv_state *s, int algo, size_t *bytes)
{
    return DN_CUDNN_CALL(cudnnGetConvolutionBackwardDataWorkspaceSize(s->handle, s->w, s->y, s->conv, s->x,
                                                                      (cudnnConvolutionBwdDataAlgo_t)algo, bytes));
}

/* The three choosers: heuristic results (typed per direction) -> candidates -> pick. */
#define CANDIDATE(p) ((candidate){(int)(p).algo, (p).status, (p).memory, (p).determinism, (p).mathType})

static dn_status choose_forward(conv_state *s, size_t *bytes)
{
    cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
    candidate c[MAX_ALGOS];
    int max = 0, n = 0, algo = 0;
    DN_TRY(DN_CUDNN_CALL(cudnnGetConvolutionForwardAlgorithmMaxCount(s->handle, &max)));
    DN_TRY(DN_CUDNN_CALL(
        cudnnGetConvolutionForwardAlgorithm_v7(s->handle, s->x, s->w, s->conv, s->y, clamp_count(max), &n, perf)));
    for (int i = 0; i < n; ++i) c[i] = CANDIDATE(perf[i]);
    DN_TRY(pick(s, c, n, fwd_workspace, "forward", &algo, bytes));
    s->fwd = (cudnnConvolutionFwdAlgo_t)algo;
    return DN_OK;
}

static dn_status choose_backward_filter(conv_state *s, size_t *bytes)
{
    cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_ALGOS];
    candidate c[MAX_ALGOS];
    int max = 0, n = 0, algo = 0;
    DN_TRY(DN_CUDNN_CALL(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(s->handle, &max)));
    DN_TRY(DN_CUDNN_CALL(cudnnGetConvolutionBackwardFilterAlgorithm_v7(s->handle, s->x, s->y, s->conv, s->w,
                                                                       clamp_count(max), &n, perf)));
    for (int i = 0; i < n; ++i) c[i] = CANDIDATE(perf[i]);
    DN_TRY(pick(s, c, n, bwd_filter_workspace, "backward-filter", &algo, bytes));
    s->bwd_filter = (cudnnConvolutionBwdFilterAlgo_t)algo;
    return DN_OK;
}

static dn_status choose_backward_data(conv_state *s, size_t *bytes)
{
    cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_ALGOS];
    candidate c[MAX_ALGOS];
    int max = 0, n = 0, algo = 0;
    DN_TRY(DN_CUDNN_CALL(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(s->handle, &max)));
    DN_TRY(DN_CUDNN_CALL(cudnnGetConvolutionBackwardDataAlgorithm_v7(s->handle, s->w, s->y, s->conv, s->x,
                                                                     clamp_count(max), &n, perf)));
    for (int i = 0; i < n; ++i) c[i] = CANDIDATE(perf[i]);
    DN_TRY(pick(s, c, n, bwd_data_workspace, "backward-data", &algo, bytes));
    s->bwd_data = (cudnnConvolutionBwdDataAlgo_t)algo;
    return DN_OK;
}

/* ------------------------------------------------------------ setup */

/* Descriptors (created once per state, re-set every time) and algorithms
 * for the layer's current batch. On failure the state may be partial. */
static dn_status build(dn_layer *l)
{
    conv_state *s = l->gpu_state;
    if (!s) {
        if (!(s = dn_calloc(1, sizeof *s))) return DN_ERR_NOMEM;
        l->gpu_state = s;
        DN_TRY(create_descriptors(s));
    }
    DN_TRY(dn_gpu_cudnn_handle(&s->handle));
    DN_TRY(set_descriptors(s, l));
    size_t fwd = 0, filter = 0, data = 0;
    DN_TRY(choose_forward(s, &fwd));
    DN_TRY(choose_backward_filter(s, &filter));
    DN_TRY(choose_backward_data(s, &data));
    s->workspace = fwd > filter ? fwd : filter;
    if (data > s->workspace) s->workspace = data;
    return DN_OK;
}

dn_status dn_conv_cudnn_setup(dn_layer *l)
{
    if (!wanted()) { dn_conv_cudnn_release(l); return DN_OK; }
    dn_status s = build(l);
    if (s == DN_OK) return DN_OK;
    dn_conv_cudnn_release(l);
    if (s == DN_ERR_NOMEM || dn_cudnn_enabled == 2)
        return dn_fail_context(s, "layer %d (convolutional): cuDNN setup", l->index);
    static atomic_int warned;
    if (!atomic_exchange(&warned, 1))
        fprintf(stderr, "warning: layer %d (convolutional): cuDNN cannot run it (%s); using im2col + cuBLAS "
                "(further layers that fall back are not reported)\n", l->index, dn_last_error());
    return DN_OK;
}

int dn_conv_cudnn_active(const dn_layer *l) { return dn_cudnn_enabled && l->gpu_state; }

size_t dn_conv_cudnn_workspace(const dn_layer *l)
{
    const conv_state *s = l->gpu_state;
    return s ? (s->workspace + sizeof(float) - 1) / sizeof(float) : 0;
}

/* ------------------------------------------------------------ passes */

/* net->workspace_gpu holds net->workspace_gpu_size floats (dn_gpu_set_batch). */
static dn_status check_workspace(const conv_state *s, const dn_layer *l, const dn_network *net)
{
    if (s->workspace <= net->workspace_gpu_size * sizeof(float)) return DN_OK;
    return dn_fail(DN_ERR_GPU, "layer %d: cuDNN needs %zu bytes of workspace, the network has %zu", l->index,
                   s->workspace, net->workspace_gpu_size * sizeof(float));
}

/* y = conv(x, w): net->input_gpu -> l->output_gpu (overwritten). */
dn_status dn_conv_cudnn_forward(dn_layer *l, dn_network *net)
{
    const conv_state *s = l->gpu_state;
    const float one = 1, zero = 0;
    cudnnHandle_t h;   /* the calling thread's: passes may run on another thread than the setup */
    DN_TRY(check_workspace(s, l, net));
    DN_TRY(dn_gpu_cudnn_handle(&h));
    return DN_CUDNN_CALL(cudnnConvolutionForward(h, &one, s->x, net->input_gpu, s->w, l->weights_gpu, s->conv,
                                                 s->fwd, net->workspace_gpu, s->workspace, &zero, s->y,
                                                 l->output_gpu));
}

/* After the activation / batch-norm / bias backward (l->delta_gpu is the
 * delta of y): weight_updates += dW (accumulated over the batch as on the
 * CPU); net->delta_gpu += dX when there is a previous layer. */
dn_status dn_conv_cudnn_backward(dn_layer *l, dn_network *net)
{
    const conv_state *s = l->gpu_state;
    const float one = 1;
    cudnnHandle_t h;
    DN_TRY(check_workspace(s, l, net));
    DN_TRY(dn_gpu_cudnn_handle(&h));
    DN_TRY(DN_CUDNN_CALL(cudnnConvolutionBackwardFilter(h, &one, s->x, net->input_gpu, s->y, l->delta_gpu,
                                                        s->conv, s->bwd_filter, net->workspace_gpu, s->workspace,
                                                        &one, s->w, l->weight_updates_gpu)));
    if (!net->delta_gpu) return DN_OK;
    return DN_CUDNN_CALL(cudnnConvolutionBackwardData(h, &one, s->w, l->weights_gpu, s->y, l->delta_gpu,
                                                      s->conv, s->bwd_data, net->workspace_gpu, s->workspace, &one,
                                                      s->x, net->delta_gpu));
}

#pragma GCC diagnostic pop
#endif /* DN_CUDNN */
