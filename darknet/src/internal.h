/*
 * internal.h — private declarations shared by the framework's source files:
 * error helpers, the cfg section model, the per-layer ops table and the
 * numeric kernels (blas, gemm, im2col, activations, batch norm).
 * Nothing here is part of the public API (see include/darknet.h).
 */
#ifndef DN_INTERNAL_H
#define DN_INTERNAL_H

#include "darknet.h"
#include <stdio.h>

/* ------------------------------------------------------------ errors */

/* Record the thread's last error message and return `s` (darknet.h's dn_set_error). */
#define dn_fail dn_set_error
void dn_clear_error(void);

/* Checked allocation: returns NULL and records DN_ERR_NOMEM on failure or on
 * a size that overflows. Memory is zeroed. */
void *dn_calloc(size_t count, size_t size);
/* count*size without overflow? */
int dn_mul_ok(size_t a, size_t b, size_t *out);
char *dn_strdup(const char *s);

/* DN_TRY (return on error) is public: darknet_toolkit.h. */

/* ------------------------------------------------------------ cfg text */

/* The cfg lexer and its types (dn_cfg, dn_section, dn_option) are public:
 * darknet_toolkit.h. */
/* The same rules for a text without section headers (.data): every option
 * goes into one section of type `section` (e.g. "[data]"). */
dn_status dn_cfg_lex_sectionless(const char *text, const char *name, const char *section, dn_cfg *out);
void dn_cfg_free(dn_cfg *cfg);
/* dn_read_file (darknet.h) with another size limit: weights pass SIZE_MAX - 1,
 * the buffer is then as large as the file. */
dn_status dn_read_file_max(const char *path, size_t max, char **text, size_t *size);
/* dn_open_regular whose messages say "cannot open <what>" (what may be NULL). */
dn_status dn_open_regular_as(const char *path, const char *what, int *fd, size_t *size);
/* The same as a FILE* ("rb"): only regular files, never blocks on a FIFO. */
dn_status dn_fopen_regular(const char *path, const char *what, FILE **f);

/* Option lookup within a section. Each returns DN_OK with the default when the
 * key is missing, and DN_ERR_PARSE (naming cfg name and line) when the value is
 * not a number. Lookups mark the key used. */
typedef struct { const dn_cfg *cfg; dn_section *sec; } dn_opts;
dn_status dn_opt_int(dn_opts o, const char *key, int def, int *out);
dn_status dn_opt_float(dn_opts o, const char *key, float def, float *out);
const char *dn_opt_str(dn_opts o, const char *key, const char *def);
int dn_opt_line(dn_opts o, const char *key);   /* line of key or of the section */
/* Error at the line of `key` (or the section header). */
dn_status dn_opt_fail(dn_opts o, const char *key, dn_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Warn about keys never looked up ("Unused field"). */
void dn_opts_warn_unused(dn_opts o);

/* ------------------------------------------------------------ layer ops */

/* Everything a layer's parse function may look at. */
typedef struct {
    dn_opts opts;
    dn_network *net;     /* layers [0, index) are parsed and shaped */
    int index;           /* this layer's position */
    int w, h, c;         /* shape of the previous layer's output (or the input) */
} dn_parse_ctx;

/* The GPU half of a layer type (GPU builds): kernels that run the layer on
 * a device with its buffers and parameters there (network_gpu.c). A type
 * whose ops have no `gpu` runs its CPU forward/backward on a GPU network
 * with its inputs pulled and results pushed, keeping its parameters on the
 * host. Every hook returns the first failure of a CUDA / cuBLAS / cuDNN call. */
typedef struct dn_layer_gpu_ops {
    dn_status (*forward_gpu)(dn_layer *l, dn_network *net);   /* net->input_gpu -> l->output_gpu */
    dn_status (*backward_gpu)(dn_layer *l, dn_network *net);  /* l->delta_gpu -> net->delta_gpu (may be NULL) */
    /* Optional (NULL: none). workspace_gpu: floats of net->workspace_gpu it
     * needs. setup_gpu: allocate or resize the type's own device state
     * (l->gpu_state) after the batch twins exist; called again on every
     * batch change, before workspace_gpu. release_gpu: free it. */
    size_t (*workspace_gpu)(const dn_layer *l);
    dn_status (*setup_gpu)(dn_layer *l);
    void (*release_gpu)(dn_layer *l);
} dn_layer_gpu_ops;

/* `.gpu = DN_GPU_OPS(foo_gpu)` in an ops table: the GPU half where the build
 * has one (the name only exists in GPU builds), NULL in a CPU build. */
#ifdef DN_GPU
#define DN_GPU_OPS(gpu_ops) (&(gpu_ops))
#else
#define DN_GPU_OPS(gpu_ops) NULL
#endif

/* A layer type. One file, layer_<type>.c, holds all of it (parsing, memory,
 * the CPU passes and, under DN_GPU, the GPU passes) and ends with its ops,
 * filled with designated initializers; layer.c's table lists the ops under
 * their dn_layer_type. The framework never branches on l->type: whatever
 * differs between types is a hook or a flag here. Optional hooks may be NULL
 * and say what NULL means. */
typedef struct dn_layer_ops {
    dn_layer_type type;
    const char *names[3];        /* section names without brackets; [0] canonical */

    /* Role in the network (checked by parser.c). A `loss` layer reads the
     * targets (net->truth): a network must end with one, and after the first
     * only `beyond_output` types may follow. A `beyond_output` layer scores
     * the output without being part of it: the network's output is its last
     * layer of another type ([cost] after [softmax]). */
    int loss, beyond_output;

    /* ---- shape (parser.c): read options into l and compute the output
     * shape; allocate nothing big. Required. */
    dn_status (*parse)(dn_layer *l, dn_parse_ctx *ctx);
    /* Optional: the layers whose outputs forward reads (-1: the network
     * input), at most max of them; returns the count. NULL: the previous one. */
    int (*sources)(const dn_layer *l, int *out, int max);
    /* Optional: the layer's row of dn_network_print after its name, through
     * dn_describe_row. NULL: dn_describe_row(l, f, 0, 0), the shapes only. */
    void (*describe)(const dn_layer *l, FILE *f);

    /* ---- memory */
    dn_status (*alloc_params)(dn_layer *l);           /* optional: parameters, once */
    void (*init_params)(dn_layer *l, uint64_t *rng);  /* optional: as upstream initialises them */
    /* Required: activation buffers for l->batch images (called again on a
     * batch change); dn_alloc_output_delta when output and delta are all. */
    dn_status (*alloc_buffers)(dn_layer *l);
    /* Optional: floats per image alloc_buffers allocates, counted by
     * dn_network_memory_bytes. NULL: output and delta, 2 * outputs. */
    size_t (*buffer_floats)(const dn_layer *l);
    /* Optional: release everything the layer owns (not the dn_layer itself).
     * NULL: dn_free_common; a type with arrays of its own frees them, then
     * calls dn_free_common. */
    void (*free)(dn_layer *l);

    /* ---- passes over the mini-batch (network.c). Required. forward:
     * net->input -> l->output; backward: l->delta -> parameter updates and
     * net->delta (NULL for the first layer). DN_OK, or the status of what
     * failed; the CPU passes cannot fail and return DN_OK. */
    dn_status (*forward)(dn_layer *l, dn_network *net);
    dn_status (*backward)(dn_layer *l, dn_network *net);

    /* Optional: the arrays saved in .weights, in file order; NULL: none. */
    int (*params)(const dn_layer *l, dn_param out[DN_MAX_PARAMS]);
    /* Required: forward FLOPs per image (multiply-adds * 2). */
    double (*flops)(const dn_layer *l);

    /* Optional: the GPU half (DN_GPU_OPS); NULL: the CPU fallback. */
    const dn_layer_gpu_ops *gpu;
} dn_layer_ops;

/* The table of every layer type (layer.c), and lookup by section name ("[conv]"). */
const dn_layer_ops *dn_layer_ops_for_type(dn_layer_type t);
const dn_layer_ops *dn_layer_ops_for_section(const char *bracketed);
/* "[a], [b] or [c]": the section names of the types whose ops pass keep(), in
 * table order, into buf (always NUL-terminated); returns buf. */
const char *dn_layer_type_list(int (*keep)(const dn_layer_ops *ops), char *buf, size_t size);
/* The hooks with their defaults: sources (out[0] = l->index - 1 when NULL)
 * and buffer_floats (2 * outputs when NULL). */
int dn_layer_sources(const dn_layer *l, int *out, int max);
size_t dn_layer_buffer_floats(const dn_layer *l);
/* One row of the layer table after the type name: with `window` the
 * "filters size x size / stride" column (else blanks), the input and output
 * shapes, with `flops` the BFLOPs; then a newline (parser.c). */
void dn_describe_row(const dn_layer *l, FILE *f, int window, int flops);

/* Generic helpers layers share */
dn_status dn_alloc_output_delta(dn_layer *l);   /* output, delta (batch*outputs) */
/* Frees the arrays several types share (parameters, output, delta, batch-norm
 * state) and sets them to NULL; a type's own arrays are its free hook's. */
void dn_free_common(dn_layer *l);
float *dn_layer_alloc(size_t n);                /* dn_calloc of floats */
/* Batch-norm state of conv/connected/batchnorm layers over c channels */
dn_status dn_alloc_batchnorm_params(dn_layer *l, int c);  /* scales, rolling stats, batch stats */
void dn_init_batchnorm_params(dn_layer *l, int c);        /* scales 1, mean 0, variance 1 */
dn_status dn_alloc_batchnorm_buffers(dn_layer *l);        /* x, x_norm (batch*outputs) */
/* buffer_floats of a layer with optional batch norm: output, delta [, x, x_norm] */
size_t dn_batchnorm_buffer_floats(const dn_layer *l);
int dn_batchnorm_param_list(const dn_layer *l, int c, dn_param *out);  /* 3 entries */
dn_param dn_make_param(const char *name, float *data, float *updates, size_t n, int decay);
/* Shared parse of per-layer keys (learning_rate, stopbackward, dontsave, ...) */
dn_status dn_parse_common(dn_layer *l, dn_opts o);
/* Input must be an image (w, h, c >= 1) */
dn_status dn_require_image(dn_layer *l, dn_parse_ctx *ctx);
/* Window keys (stride, size, padding) and output shape of [maxpool] and
 * [local_avgpool] (layer_maxpool.c). */
dn_status dn_parse_pool_window(dn_layer *l, dn_parse_ctx *ctx);

/* ------------------------------------------------------------ kernels */

/* Level-1 helpers (x, y of length n, unit stride) */
void dn_fill(float *x, size_t n, float v);
void dn_copy(float *dst, const float *src, size_t n);
void dn_axpy(float *y, float a, const float *x, size_t n);  /* y += a*x */
void dn_scal(float *x, float a, size_t n);
float dn_sum(const float *x, size_t n);
int dn_all_finite(const float *x, size_t n);

/* C (M,N) = alpha * op(A) op(B) + beta * C, row-major, lda/ldb/ldc as in BLAS. */
void dn_gemm(int TA, int TB, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);
/* dn_gemm with C's columns split in fixed blocks over the workers (threads.c)
 * when the product is large enough; the same results for any worker count. */
void dn_gemm_parallel(int TA, int TB, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc);
/* Portable reference GEMM (always available; used by tests and OPENBLAS=0). */
void dn_gemm_ref(int TA, int TB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

/* A matrix operand of the packed GEMM (gemm_fast.c), in one of its layouts:
 *   DENSE     element (r, c) at data[r*ld + c]
 *   DENSE_T   element (r, c) at data[c*ld + r]
 *   IMAGES    columns of several images side by side: element (r, j),
 *             j = b*n + pos, at data[b*img + r*n + pos]
 *   IM2COL    the unfolded images (im2col, never stored): element (r, j),
 *             r = (ch*size + ky)*size + kx, j = b*out_h*out_w + oy*out_w + ox,
 *             is pixel (oy*stride + ky - pad, ox*stride + kx - pad) of channel
 *             ch (h x w) of image b (at data + b*img), 0 outside the image
 *   IM2COL_T  its transpose: element (j, r)
 * A takes DENSE, DENSE_T, IMAGES; B DENSE, DENSE_T, IM2COL, IM2COL_T;
 * C DENSE, IMAGES (written through data). */
typedef enum { DN_MAT_DENSE, DN_MAT_DENSE_T, DN_MAT_IMAGES, DN_MAT_IM2COL, DN_MAT_IM2COL_T,
               DN_MAT_PADDED_T /* gemm_fast.c's own: IM2COL_T of padded images, no bounds */ } dn_mat_kind;
typedef struct {
    dn_mat_kind kind;
    const float *data;
    size_t ld, img;
    int n;
    int h, w, size, stride, pad, out_h, out_w;
} dn_matrix;
/* C (M,N) = alpha * A (M,K) B (K,N) + beta * C with the packed AVX-512 GEMM;
 * returns 0 without touching C when it cannot run (no AVX-512F, disabled,
 * K <= 0, no memory for its buffers): the caller then takes another path. */
int dn_gemm_matrix(int M, int N, int K, float alpha, const dn_matrix *A, const dn_matrix *B, float beta,
                   const dn_matrix *C);
/* 0: dn_gemm_matrix packs every B (tests compare with the direct path that
 * reads stride-1 unfolded images in place). */
extern int dn_gemm_direct_enabled;
/* dn_gemm's contract through dn_gemm_matrix (0: could not run). */
int dn_gemm_fast(int TA, int TB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);
int dn_gemm_fast_available(void);
/* 0: dn_gemm skips the fast GEMM (tests and benchmarks compare the paths). */
extern int dn_gemm_fast_enabled;

/* im (c, h, w) -> col (c*ksize*ksize, out_h*out_w) and back (col2im adds). */
void dn_im2col(const float *im, int c, int h, int w, int ksize, int stride, int pad,
               int out_h, int out_w, float *col);
void dn_col2im(const float *col, int c, int h, int w, int ksize, int stride, int pad,
               int out_h, int out_w, float *im);
/* The same with row r of col at col + r*ldc (several images side by side). */
void dn_im2col_ld(const float *im, int c, int h, int w, int ksize, int stride, int pad,
                  int out_h, int out_w, float *col, size_t ldc);
void dn_col2im_ld(const float *col, size_t ldc, int c, int h, int w, int ksize, int stride, int pad,
                  int out_h, int out_w, float *im);
/* fn(ctx, w, workers) run for each w, w = 0 on the caller (threads.c); the
 * workers the kernels use: dn_threads() (darknet.h). */
void dn_parallel(void (*fn)(void *ctx, int worker, int workers), void *ctx, int workers);
/* x[0..n) = 0, large arrays split over the workers. */
void dn_zero_parallel(float *x, size_t n);
/* Depthwise convolution (groups == c == filters) kernels over channels
 * [c0, c1) (conv_depthwise.c); tmp holds dn_depthwise_scratch(p) floats. */
typedef struct { int batch, c, h, w, size, stride, pad, out_h, out_w; } dn_depthwise;
size_t dn_depthwise_scratch(const dn_depthwise *p);
void dn_depthwise_forward(const dn_depthwise *p, const float *in, const float *wts, float *out, float *tmp,
                          int c0, int c1);
void dn_depthwise_backward(const dn_depthwise *p, const float *in, const float *wts, const float *delta,
                           float *weight_updates, float *in_delta, float *tmp, int c0, int c1);
/* 1: convolutions take the per-image reference path (tests compare the two). */
extern int dn_conv_reference;

/* Activations: apply in place; gradient multiplies delta by f'(y) where y is
 * the activated output (upstream computes every derivative from y). */
float dn_activate(float x, dn_activation a);
float dn_gradient(float y, dn_activation a);
void dn_activate_array(float *x, size_t n, dn_activation a);
void dn_gradient_array(const float *y, size_t n, dn_activation a, float *delta);

/* Batch norm over (batch, c, spatial). One epsilon everywhere: */
#define DN_BN_EPSILON 1e-5f
/* forward: x -> y using batch stats (train) or rolling stats; stores x and
 * x_norm for backward; updates rolling stats when training. */
void dn_batchnorm_forward(dn_layer *l, float *data, int train);
/* The same, then the activation act applied (per plane, while in cache). */
void dn_batchnorm_forward_act(dn_layer *l, float *data, int train, dn_activation act);
/* backward: data holds delta of y; accumulates scale/bias updates and
 * rewrites data with the delta of x. */
void dn_batchnorm_backward(dn_layer *l, float *data, int train);
/* The same after multiplying delta by act's gradient at the activated output. */
void dn_batchnorm_backward_act(dn_layer *l, float *data, int train, dn_activation act, const float *output);
/* The same computed in fused, vectorisable passes (bn_fast.c); the _ref
 * versions (blas.c) are the straightforward reference the tests compare with. */
void dn_batchnorm_forward_ref(dn_layer *l, float *data, int train);
void dn_batchnorm_backward_ref(dn_layer *l, float *data, int train);
/* Add per-channel bias / accumulate its gradient over (batch, c, spatial). */
void dn_add_bias(float *out, const float *biases, int batch, int c, int spatial);
void dn_backward_bias(float *bias_updates, const float *delta, int batch, int c, int spatial);

/* ------------------------------------------------------------ files */

dn_status dn_weights_load_memory_upto(dn_network *net, const void *buf, size_t size, const char *name, int cutoff);

/* ------------------------------------------------------------ network */

dn_status dn_network_build(dn_cfg *cfg, const dn_parse_options *opt, dn_network **out);
/* One mini-batch forward + backward (train mode), with the divergence check. */
dn_status dn_network_train_pass(dn_network *net, const float *X, const float *Y);
/* The SGD step for a full batch of B images; host: 1 applies it to the host
 * arrays of every layer even on a GPU network (data-parallel reduction). */
dn_status dn_network_update_batch(dn_network *net, float B, int host);
/* The layer whose output is the network's: the last one that is not
 * beyond_output (the [cost] layers after it score it). */
const dn_layer *dn_network_output_layer(const dn_network *net);

/* ------------------------------------------------------------ GPU backend
 * (gpu.c, network_gpu.c, the GPU halves of layer_*.c with their shared
 * helpers in layer_gpu.c, *.cu). Declared in every build; in a CPU build the
 * network calls are stubs (never reached, since no network can be put on a
 * device there). Every failure of a CUDA / cuBLAS / cuDNN call is a status
 * returned up the call chain: a pass stops at the first one. */

/* network.c's GPU path: forward over the mini-batch already in
 * net->input_buf / net->truth (pulls the output layer's output to the host),
 * backward, one layer's SGD step (device params), batch change, freeing. */
dn_status dn_gpu_forward(dn_network *net);
dn_status dn_gpu_backward(dn_network *net);
dn_status dn_gpu_update_layer(dn_layer *l, float lr, float B, float decay, float momentum);
dn_status dn_gpu_set_batch(dn_network *net);
void dn_gpu_network_free(dn_network *net);
/* Convolutions through cuDNN in GPU=1 CUDNN=1 builds (conv_cudnn.c): 1 (the
 * default) uses cuDNN, 0 the im2col + cuBLAS path, 2 requires cuDNN (a layer
 * it cannot set up fails instead of falling back; tests). DN_CUDNN=0 in the
 * environment turns it off. Read at setup and in every pass. */
extern int dn_cudnn_enabled;

#ifdef DN_GPU
/* Status of a CUDA / cuBLAS / cuDNN return code; the message names the call
 * and where it was made. cudaErrorMemoryAllocation is DN_ERR_NOMEM. */
dn_status dn_gpu_cuda_status(int err, const char *call, const char *file, int line);
dn_status dn_gpu_cublas_status(int err, const char *call, const char *file, int line);
dn_status dn_gpu_cudnn_status(int err, const char *call, const char *file, int line);
#define DN_CUDA(call) dn_gpu_cuda_status((int)(call), #call, __FILE__, __LINE__)
#define DN_CUBLAS(call) dn_gpu_cublas_status((int)(call), #call, __FILE__, __LINE__)
#define DN_CUDNN_CALL(call) dn_gpu_cudnn_status((int)(call), #call, __FILE__, __LINE__)

/* A device buffer of n zeroed floats into *out (NULL on failure: out of
 * device memory is DN_ERR_NOMEM). */
dn_status dn_gpu_alloc(size_t n, float **out);
void dn_gpu_free(float *p);
dn_status dn_gpu_push(float *dst_gpu, const float *src, size_t n);
dn_status dn_gpu_pull(float *dst, const float *src_gpu, size_t n);
dn_status dn_gpu_copy(float *dst_gpu, const float *src_gpu, size_t n);
dn_status dn_gpu_sync(void);
/* dn_gemm on device pointers through cuBLAS (row-major, same arguments). */
dn_status dn_gpu_gemm(int TA, int TB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc);

#ifdef DN_CUDNN
/* The cuDNN handle of the current device, created on first use (gpu.c). */
struct cudnnContext;
dn_status dn_gpu_cudnn_handle(struct cudnnContext **out);
/* [convolutional] through cuDNN (conv_cudnn.c), for layer_convolutional.c's GPU half:
 * setup / release are its setup_gpu / release_gpu (a layer cuDNN cannot run
 * is left without state and takes im2col + cuBLAS); active: set up and
 * enabled; workspace: floats of net->workspace_gpu it needs (0 if none);
 * forward writes l->output_gpu, backward accumulates weight updates and
 * net->delta_gpu (when not NULL). */
dn_status dn_conv_cudnn_setup(dn_layer *l);
void dn_conv_cudnn_release(dn_layer *l);
int dn_conv_cudnn_active(const dn_layer *l);
size_t dn_conv_cudnn_workspace(const dn_layer *l);
dn_status dn_conv_cudnn_forward(dn_layer *l, dn_network *net);
dn_status dn_conv_cudnn_backward(dn_layer *l, dn_network *net);
#endif
#endif

#endif /* DN_INTERNAL_H */
