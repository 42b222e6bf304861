/*
 * darknet.h — the whole public API of the darknet-evolve framework.
 *
 * A Darknet-compatible deep-learning framework: it reads upstream Darknet
 * .cfg, .weights and .data files and trains image classifiers on the CPU
 * (BLAS) and, in a GPU=1 build, on NVIDIA GPUs (CUDA, cuBLAS, cuDNN).
 * evo/ and the command line use nothing but this header.
 *
 * Quick tour:
 *
 *     dn_network *net = NULL;
 *     if (dn_network_parse_file("cfg/fashion-small.cfg", NULL, &net) != DN_OK) {
 *         fprintf(stderr, "%s\n", dn_last_error());   // "file:line: what was wrong"
 *         return 1;
 *     }
 *     dn_weights_load(net, "model.weights");           // optional
 *     float loss;
 *     dn_network_train(net, X, Y, net->batch * net->subdivisions, &loss);
 *     const float *p;
 *     dn_network_predict(net, image, &p);              // p: (outputs)
 *     dn_weights_save(net, "model.weights");
 *     dn_network_free(net);
 *
 * Conventions:
 *   - every call that can fail returns dn_status; DN_OK is 0. The message of
 *     the last failure on the calling thread is dn_last_error().
 *   - the library never exits, aborts or asserts on input.
 *   - tensors are float32, laid out (N, C, H, W): batch, channel, row, column.
 *   - deltas hold the NEGATIVE gradient of the loss, as upstream Darknet.
 */
#ifndef DARKNET_H
#define DARKNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

typedef enum {
    DN_OK = 0,
    DN_ERR_ARG,      /* a caller passed something invalid                 */
    DN_ERR_IO,       /* a file could not be opened, read or written      */
    DN_ERR_PARSE,    /* cfg / .data text is malformed                     */
    DN_ERR_SHAPE,    /* shapes do not fit together                        */
    DN_ERR_NOMEM,    /* an allocation failed or would be too large        */
    DN_ERR_NUMERIC,  /* training diverged: NaN or Inf                      */
    DN_ERR_DATA,     /* a dataset or image is corrupt or inconsistent     */
    DN_ERR_WEIGHTS,  /* a .weights file does not match the network        */
    DN_ERR_GPU       /* a CUDA / cuBLAS / cuDNN call failed, or no GPU      */
} dn_status;

/* Message of the last failure on this thread ("" if none). */
const char *dn_last_error(void);
/* Set this thread's last error message and return s (for code built on the
 * framework, e.g. evo/, so that one dn_last_error() serves both). */
dn_status dn_set_error(dn_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Name of a status code, e.g. "parse error". */
const char *dn_status_name(dn_status s);

/* Warnings (unknown cfg keys, skipped images, ...) go to this sink; the default
 * prints "warning: ..." to stderr. Pass NULL to silence. Per process. */
typedef void (*dn_log_fn)(const char *message, void *user);
void dn_set_warning_sink(dn_log_fn fn, void *user);
void dn_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------- enums */

typedef enum {
    DN_CONVOLUTIONAL, DN_CONNECTED, DN_MAXPOOL, DN_AVGPOOL, DN_LOCAL_AVGPOOL,
    DN_DROPOUT, DN_SOFTMAX, DN_COST, DN_ROUTE, DN_SHORTCUT, DN_BATCHNORM,
    DN_ACTIVATION_LAYER, DN_LAYER_TYPE_COUNT
} dn_layer_type;

typedef enum {
    DN_LOGISTIC, DN_RELU, DN_RELIE, DN_LINEAR, DN_RAMP, DN_TANH, DN_PLSE,
    DN_LEAKY, DN_ELU, DN_LOGGY, DN_STAIR, DN_HARDTAN, DN_LHTAN, DN_SELU,
    DN_ACTIVATION_COUNT
} dn_activation;

typedef enum {
    DN_POLICY_CONSTANT, DN_POLICY_STEP, DN_POLICY_STEPS, DN_POLICY_EXP,
    DN_POLICY_POLY, DN_POLICY_SIGMOID, DN_POLICY_RANDOM
} dn_policy;

typedef enum { DN_COST_SSE, DN_COST_L1, DN_COST_SMOOTH } dn_cost_type;

const char *dn_layer_type_name(dn_layer_type t);   /* "convolutional", ... */
const char *dn_activation_name(dn_activation a);   /* "leaky", ...         */
dn_status dn_activation_from_name(const char *name, dn_activation *out);

/* ------------------------------------------------------------- layers */

/* One learnable or saved array of a layer, in .weights file order. */
typedef struct {
    const char *name;  /* "biases", "scales", "rolling_mean", "rolling_variance", "weights" */
    float *data;       /* (n) */
    float *updates;    /* (n) accumulated negative gradient, NULL if not learned */
    size_t n;
    int decay;         /* 1 if weight decay applies (weights only)   */
    int rows, cols;    /* matrix shape for connected weights, else 0 */
} dn_param;

#define DN_MAX_PARAMS 5

typedef struct dn_layer dn_layer;
typedef struct dn_network dn_network;
struct dn_layer_ops;

struct dn_layer {
    dn_layer_type type;
    const struct dn_layer_ops *ops;
    int index;                 /* position in the network             */
    int line;                  /* cfg line of the section header       */

    int batch;                 /* mini-batch the buffers are sized for */
    int w, h, c;               /* input shape (per image)              */
    int out_w, out_h, out_c;   /* output shape (per image)             */
    int inputs, outputs;       /* w*h*c and out_w*out_h*out_c          */

    /* options shared by several layer types */
    int filters, size, stride, pad, groups, batch_normalize;
    dn_activation activation;
    float lr_mult;             /* per-layer learning_rate multiplier   */
    int stopbackward, dontsave, dontload, dontloadscales;
    float probability;         /* dropout                              */
    float dropout_scale;       /* 1/(1-p)                              */
    float temperature;         /* softmax                              */
    int softmax_groups;
    dn_cost_type cost_type;
    float cost_scale;
    int n_inputs;              /* route: number of inputs              */
    int *input_layers;         /* route: (n_inputs) absolute indexes   */
    int *input_sizes;          /* route: (n_inputs) outputs of each    */
    int from;                  /* shortcut: absolute index             */
    float alpha, beta;         /* shortcut: out = act(alpha*prev + beta*from) */
    int shortcut_w, shortcut_h, shortcut_c;  /* shape of the `from` layer */

    /* parameters (NULL when absent) */
    float *weights, *weight_updates;   /* conv: (filters, c/groups, size, size); connected: (outputs, inputs) */
    float *biases, *bias_updates;      /* (out_c) or (outputs)                     */
    float *scales, *scale_updates;     /* (out_c) batch-norm gamma                 */
    float *rolling_mean, *rolling_variance; /* (out_c)                             */
    size_t nweights;

    /* activations and scratch, sized for `batch` images */
    float *output;             /* (batch, outputs)                     */
    float *delta;              /* (batch, outputs)  negative gradient   */
    float *x, *x_norm;         /* (batch, outputs)  batch-norm inputs   */
    float *mean, *variance;    /* (out_c) batch statistics              */
    float *mean_delta, *variance_delta; /* (out_c)                      */
    int *indexes;              /* maxpool argmax (batch, outputs)       */
    float *rand;               /* dropout draws (batch, inputs)         */
    float cost;                /* loss of the last forward (cost layers) */
    int has_cost;
    size_t workspace_size;     /* floats of shared scratch it needs     */

    /* device twins (GPU builds, after dn_network_to_gpu; NULL otherwise).
     * Layers with a GPU kernel keep parameters here; the host arrays above
     * are current only after dn_network_pull. */
    float *weights_gpu, *weight_updates_gpu, *biases_gpu, *bias_updates_gpu;
    float *scales_gpu, *scale_updates_gpu, *rolling_mean_gpu, *rolling_variance_gpu;
    float *output_gpu, *delta_gpu, *x_gpu, *x_norm_gpu;
    float *mean_gpu, *variance_gpu, *mean_delta_gpu, *variance_delta_gpu;
    int gpu_native;            /* 1: runs GPU kernels; 0: CPU fallback, host params */
    void *gpu_state;           /* layer type's own device state (its GPU ops' setup/release) */
};

/* ------------------------------------------------------------- network */

struct dn_network {
    int n;                     /* number of layers                     */
    dn_layer *layers;          /* (n)                                   */
    char *source;              /* file name or "<string>"               */

    int batch;                 /* mini-batch = cfg batch / subdivisions */
    int subdivisions;
    int w, h, c, inputs;       /* input shape                           */
    int outputs;               /* outputs of the last non-cost layer    */
    int truths;                /* length of one target vector           */

    /* optimiser (see dn_network_rate) */
    float learning_rate, momentum, decay;
    dn_policy policy;
    int burn_in, max_batches, step, num_steps;
    float power, scale, gamma;
    int *steps; float *scales; /* (num_steps)                           */
    uint64_t seen;             /* images trained so far                 */

    /* augmentation options from [net], used by data loaders */
    int max_crop, min_crop, center;
    float max_ratio, min_ratio, angle, aspect, saturation, exposure, hue;

    /* state of the pass in progress */
    int train;                 /* 1 while training                      */
    float *input;              /* (batch, inputs) current layer input   */
    float *input_buf;          /* (batch, inputs) owned copy of input   */
    float *truth;              /* (batch, truths) or NULL               */
    float *truth_buf;
    float *delta;              /* delta of the previous layer or NULL   */
    float *workspace;          /* shared scratch (im2col)               */
    size_t workspace_size;
    float cost;                /* mean cost of the last forward         */
    uint64_t rng;              /* state of the network's random numbers */

    /* device state (GPU builds, after dn_network_to_gpu) */
    int on_gpu;                /* 1: passes run on device gpu_index     */
    int gpu_index;
    float *input_gpu;          /* current layer input on the device     */
    float *delta_gpu;          /* previous layer's delta on the device  */
    float *input_buf_gpu, *truth_buf_gpu;
    float *workspace_gpu;
    size_t workspace_gpu_size;
};

/* Options for parsing; pass NULL for the defaults. */
typedef struct {
    int batch;        /* > 0: override [net] batch and set subdivisions=1 */
    uint64_t seed;    /* weight initialisation and dropout (0: fixed default) */
    int quiet;        /* 1: no layer table on stderr (default 1 via NULL) */
    int shapes_only;  /* 1: shape inference only, nothing allocated; the network can be
                         inspected (shapes, dn_network_param_count, _flops, _memory_bytes)
                         but not run or loaded */
} dn_parse_options;

dn_status dn_network_parse_file(const char *path, const dn_parse_options *opt, dn_network **out);
dn_status dn_network_parse_string(const char *cfg_text, const char *name,
                                  const dn_parse_options *opt, dn_network **out);
void dn_network_free(dn_network *net);

/* Print the layer table ("layer filters size input output") to a FILE*. */
void dn_network_print(const dn_network *net, void *file);

/* Reallocate every buffer for a new mini-batch size. */
dn_status dn_network_set_batch(dn_network *net, int batch);

/* Learning rate the next update uses (policy, burn-in; see reference). */
float dn_network_rate(const dn_network *net);
/* Number of full batches trained so far: seen / (batch*subdivisions). */
size_t dn_network_batch_num(const dn_network *net);

/* Passes over the current mini-batch. `input` (batch, inputs); `truth`
 * (batch, truths) or NULL. Forward zeroes every layer's delta first; update
 * is the SGD step for a full batch (batch*subdivisions images). Each returns
 * the first failure of a layer (on a GPU: a CUDA / cuBLAS / cuDNN call). */
dn_status dn_network_forward(dn_network *net, const float *input, const float *truth, int train);
dn_status dn_network_backward(dn_network *net);
dn_status dn_network_update(dn_network *net);

/* Train on n images (a multiple of the mini-batch): forward, backward and an
 * update after every `subdivisions` mini-batches, exactly as upstream.
 * X (n, inputs), Y (n, truths). *loss gets the mean loss per image.
 * A NaN or Inf loss returns DN_ERR_NUMERIC. */
dn_status dn_network_train(dn_network *net, const float *X, const float *Y, int n, float *loss);

/* Data-parallel training (classifier train -gpus 0,1,..): n replicas of one
 * network (same cfg and starting weights; typically each on its own GPU)
 * train as one network with n times the batch. Every step takes
 * n*batch*subdivisions images: replica r trains on the r-th share, the weight
 * gradients are summed over the replicas and one SGD step (learning rate of
 * nets[0]'s schedule, full batch n*batch*subdivisions) is applied to all, so
 * the weights stay identical. Batch-norm batch statistics are per replica
 * (as upstream); the rolling averages are averaged. Every replica's `seen`
 * counts the images of all replicas, as upstream. `images` is a multiple of
 * n*batch*subdivisions; *loss gets the mean loss per image. */
dn_status dn_network_train_parallel(dn_network **nets, int n, const float *X, const float *Y, int images,
                                    float *loss);
/* Copy src's parameters (host arrays; pulled first if src is on a GPU) into
 * dst (pushed if dst is on a GPU): both must come from the same cfg. */
dn_status dn_network_copy_params(dn_network *dst, const dn_network *src);

/* Predict one image (inputs floats): *output gets the output (outputs
 * floats) of the last non-cost layer, owned by the network and valid until
 * its next pass (NULL on error). Uses the first slot of the current mini-batch. */
dn_status dn_network_predict(dn_network *net, const float *input, const float **output);
/* Predict n images; out gets (n, outputs). */
dn_status dn_network_predict_batch(dn_network *net, const float *X, int n, float *out);

/* Parameters of a layer in .weights file order; returns the count. */
int dn_layer_params(const dn_layer *l, dn_param out[DN_MAX_PARAMS]);
/* Count of learnable floats in the network, and forward FLOPs per image. */
size_t dn_network_param_count(const dn_network *net);
double dn_network_flops(const dn_network *net);
/* Bytes a fully allocated network needs at its mini-batch: parameters with
 * their updates, activations and deltas, batch-norm buffers, scratch. */
size_t dn_network_memory_bytes(const dn_network *net);

/* Re-initialise every parameter as a freshly parsed network would be. */
void dn_layer_init_params(dn_layer *l, uint64_t *rng);

/* ------------------------------------------------------------- GPU */

/* CUDA devices visible (0 in a CPU build or without a driver/device). */
int dn_gpu_count(void);
/* 1 when the library was built with GPU=1 (CUDNN=1 adds cuDNN). */
int dn_gpu_built(void);
/* Parse a device list "0" or "0,2,3" (-gpus) into out[0..*count): distinct
 * non-negative numbers, at most max. DN_ERR_ARG with a message otherwise.
 * Does not check that the devices exist (dn_gpu_use does). */
dn_status dn_gpu_parse_list(const char *list, int *out, int max, int *count);
/* Make device `index` current for the calling thread. DN_ERR_GPU with
 * "no CUDA device" (or "this build has no GPU support") when impossible. */
dn_status dn_gpu_use(int index);
/* Move a network to device `index`: parameters, their updates, batch-norm
 * state, outputs and deltas live there; train/predict run there. Layer types
 * without a GPU kernel run on the CPU with their input pulled and output
 * pushed (correct, slower). Out of device memory is DN_ERR_NOMEM. */
dn_status dn_network_to_gpu(dn_network *net, int index);
/* Copy device parameters to the host arrays (save, inspect) and back (after
 * changing host parameters of a network on the GPU). No-ops on the CPU. */
dn_status dn_network_pull(const dn_network *net);
dn_status dn_network_push(dn_network *net);

/* ------------------------------------------------------------- weights */

/* Upstream binary layout: int32 major, minor, revision; seen as uint64 when
 * major*10+minor >= 2 (and both < 1000), else int32; then every layer's arrays.
 * Loading checks every read: truncation and trailing bytes are errors. */
dn_status dn_weights_load(dn_network *net, const char *path);
dn_status dn_weights_load_upto(dn_network *net, const char *path, int cutoff);
dn_status dn_weights_save(const dn_network *net, const char *path);
/* The same, from/to memory (for in-process weight copies). */
dn_status dn_weights_load_memory(dn_network *net, const void *buf, size_t size, const char *name);
dn_status dn_weights_save_memory(const dn_network *net, void **buf, size_t *size);

/* ------------------------------------------------------------- data */

/* An image (c, h, w), floats in [0,1], channel-planar like the network input. */
typedef struct { int w, h, c; float *data; } dn_image;

dn_status dn_image_make(int w, int h, int c, dn_image *out);     /* zeroed */
/* Load PNG/JPEG/BMP/... through stb_image; channels 1-4 forces that count,
 * 0 keeps the file's. Fewer than 3 are the first planes of the RGB decode, as
 * upstream (a 1-channel network reads the red plane; gray files have R = G = B).
 * A corrupt or missing file, or one that is not a regular file, is an error naming it. */
dn_status dn_image_load(const char *path, int channels, dn_image *out);
dn_status dn_image_save_png(const dn_image *im, const char *path);
void dn_image_free(dn_image *im);
dn_status dn_image_resize(const dn_image *in, int w, int h, dn_image *out);     /* bilinear */
/* Fit inside w x h keeping the aspect ratio, pad with 0.5 gray (upstream predict). */
dn_status dn_image_letterbox(const dn_image *in, int w, int h, dn_image *out);
/* Central square, resized to w x h (upstream classifier valid). */
dn_status dn_image_center_crop_resize(const dn_image *in, int w, int h, dn_image *out);

/* Images and one-hot labels held in memory (IDX, CIFAR-10). */
typedef struct {
    int rows;          /* images                                */
    int cols;          /* floats per image: w*h*c               */
    int w, h, c;       /* image shape                           */
    int classes;
    float *X;          /* (rows, cols) CHW floats in [0,1]       */
    float *y;          /* (rows, classes) one-hot targets        */
    int *labels;       /* (rows) class index                     */
} dn_dataset;

void dn_dataset_free(dn_dataset *d);

/* IDX files (MNIST / Fashion-MNIST), gzipped or not: images (N,H,W) u8 and
 * labels (N) u8. max_rows > 0 limits the count. */
dn_status dn_load_idx(const char *images_path, const char *labels_path, int classes,
                      int max_rows, dn_dataset *out);
/* CIFAR-10 binary batch files (records of 1 label byte + 3072 pixel bytes). */
dn_status dn_load_cifar10(const char *const *paths, int npaths, int max_rows, dn_dataset *out);

/* A classifier .data file (key=value, upstream lexing). Missing keys take
 * upstream's defaults except backup, which defaults to "backup/". */
typedef struct {
    int classes;
    char *train, *valid, *labels, *names, *backup;
    int top;
    char *train_labels, *valid_labels;  /* IDX label files (inferred when absent) */
    int flip;                           /* array data: random horizontal flip (0) */
    int crop_pad;                       /* array data: pad by N and random-crop back (0) */
    float erase;                        /* random erasing: probability per image (0; our key) */
    char **label_names; int nlabels;    /* read from names= (or labels=) */
} dn_data_config;

dn_status dn_data_config_read(const char *path, dn_data_config *out);
void dn_data_config_free(dn_data_config *cfg);

/* One split (train or valid) of a .data file. The source is recognised by
 * content: an IDX file (gzipped or not), CIFAR-10 .bin files (a comma list),
 * or else a text list of image paths whose class is the label name found in
 * the path (upstream's substring rule). */
typedef struct {
    int n;                 /* images                                  */
    int classes;
    int is_list;           /* 1: image paths, 0: arrays in memory     */
    dn_dataset arrays;     /* when !is_list                           */
    char **paths;          /* (n) when is_list                        */
    int *labels;           /* (n) class index, -1 when none matched   */
} dn_split;

dn_status dn_split_load(const dn_data_config *cfg, int valid, int max_rows, dn_split *out);
void dn_split_free(dn_split *s);
/* New split holding rows [start, start+count) of s (copies). */
dn_status dn_split_slice(const dn_split *s, int start, int count, dn_split *out);
/* The evaluation input for image i at the network's w x h x c: arrays as
 * they are (resized if needed), image files as upstream's valid (central
 * square resized). x gets w*h*c floats. */
dn_status dn_split_eval_input(const dn_split *s, int i, int w, int h, int c, float *x);

/* Background batch loader: draws images with replacement (as upstream),
 * augments them and assembles (batch, w*h*c) inputs and (batch, classes)
 * one-hot targets while the network trains on the previous batch. */
typedef struct {
    const dn_split *split;
    int batch, w, h, c;
    /* image-list augmentation, upstream's classifier (from [net]) */
    float min_ratio, max_ratio, angle, aspect, hue, saturation, exposure;
    int center;
    /* array augmentation: random flip, pad-and-crop (paper style) */
    int flip, crop_pad;
    /* random erasing (Zhong et al. 2017), any data: with this probability an
     * image gets one rectangle of uniform noise (see dn_augment_erase) */
    float erase;
    uint64_t seed;
    int threads;           /* decode threads for image lists (0: 2)   */
} dn_loader_options;

typedef struct dn_loader dn_loader;

/* Fill the augmentation fields from a network's [net] options. */
void dn_loader_options_from_network(dn_loader_options *o, const dn_network *net);
dn_status dn_loader_start(const dn_loader_options *o, dn_loader **out);
/* Blocks until the next batch is ready; *waited (may be NULL) gets the seconds spent waiting. */
dn_status dn_loader_next(dn_loader *ld, float *X, float *Y, double *waited);
void dn_loader_stop(dn_loader *ld);

/* ------------------------------------------------------------- misc */

/* Deterministic random numbers (splitmix64 / xorshift). */
uint64_t dn_rand_u64(uint64_t *state);
float dn_rand_uniform(uint64_t *state, float lo, float hi);
float dn_rand_normal(uint64_t *state);

double dn_time_now(void);   /* seconds, monotonic */

/* Worker threads the convolutions split each batch over, process-wide;
 * n < 1 sets the default (the online CPUs, at most 8). OpenBLAS is then kept
 * to one thread per call unless OPENBLAS_NUM_THREADS is set. */
void dn_set_threads(int n);
/* The worker threads set now (the default once anything asked). */
int dn_threads(void);

#ifdef __cplusplus
}
#endif

/* files, folders, errors with context, the cfg lexer: the toolkit for code
 * built on the framework */
#include "darknet_toolkit.h"
#endif /* DARKNET_H */
