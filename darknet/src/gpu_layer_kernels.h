/*
 * gpu_layer_kernels.h — C entry points of the CUDA kernels of the pooling,
 * route, shortcut, softmax, cost and dropout layers (gpu_layer_kernels.cu;
 * their GPU halves are in layer_<type>.c), GPU builds only.
 * Same conventions as gpu_kernels.h: default stream, device pointers, the
 * cudaError_t of the launch returned as an int (0: queued). Each kernel is
 * the twin of the CPU code named in its comment and follows its semantics.
 */
#ifndef DN_GPU_LAYER_KERNELS_H
#define DN_GPU_LAYER_KERNELS_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Partial sums a loss kernel writes (one per block): the caller's buffer
 * holds this many floats; it pulls *parts of them and adds them up. */
#define DN_CUDA_PARTIALS 256

/* A pooling window over planes (batch*c of them) of h x w: out_h x out_w
 * outputs, window `size` at stride `stride`, starting at -pad/2 (layer_maxpool.c). */
typedef struct { int planes, h, w, out_h, out_w, size, stride, pad; } dn_cuda_pool;

/* [maxpool] (layer_maxpool.c): out (planes, out_h, out_w) is the maximum of
 * the window clipped to the input (first cell in row order wins ties; an
 * empty window gives 0 and index -1); idx the winner's flat input index. */
int dn_cuda_maxpool_forward(const dn_cuda_pool *p, const float *in, float *out, int *idx);
/* in_delta[idx[o]] += delta[o] for every output o (gathered, no atomics). */
int dn_cuda_maxpool_backward(const dn_cuda_pool *p, const float *delta, const int *idx, float *in_delta);

/* [local_avgpool] (layer_local_avgpool.c): mean of the in-image window cells. */
int dn_cuda_local_avgpool_forward(const dn_cuda_pool *p, const float *in, float *out);
/* Every cell of a window gets delta / (its cell count), added to in_delta. */
int dn_cuda_local_avgpool_backward(const dn_cuda_pool *p, const float *delta, float *in_delta);

/* [avgpool] (layer_avgpool.c): out[r] = mean of row r (rows x len). */
int dn_cuda_row_mean(const float *in, size_t rows, int len, float *out);
/* in_delta[r*len + k] += delta[r] / len */
int dn_cuda_row_mean_backward(const float *delta, size_t rows, int len, float *in_delta);

/* [route] (layer_route.c): rows of len floats, dst[r*dst_ld + k] = (add:
 * dst + ) src[r*src_ld + k] for r < rows, k < len. */
int dn_cuda_copy_rows(float *dst, size_t dst_ld, const float *src, size_t src_ld, size_t rows, size_t len, int add);

/* [shortcut] (layer_shortcut.c's shortcut_add): out (batch, c2, h2, w2) =
 * s1*out + s2*add (batch, c1, h1, w1) at upstream's strided / spread
 * positions over the smaller channel count; add == NULL: out = s1*out there. */
typedef struct { int batch, w1, h1, c1, w2, h2, c2; } dn_cuda_shortcut;
int dn_cuda_shortcut_add(const dn_cuda_shortcut *p, const float *add, float s1, float s2, float *out);

/* [softmax] (layer_softmax.c): softmax of x / temp over each of `rows`
 * slices of len floats. */
int dn_cuda_softmax(const float *in, size_t rows, int len, float temp, float *out);
/* delta = truth - p; partials[0..*parts) sum -t*log(max(p, FLT_MIN)) over t != 0. */
int dn_cuda_softmax_cost(const float *p, const float *truth, size_t n, float *delta, float *partials, int *parts);

/* [cost] (layer_cost.c): per-element error into out and its delta (type:
 * dn_cost_type, 0 sse, 1 L1, 2 smooth); partials sum out. */
int dn_cuda_cost(const float *in, const float *truth, size_t n, int type, float *out, float *delta, float *partials,
                 int *parts);

/* [dropout] (layer_dropout.c), training: out = rand < prob ? 0 : in*scale;
 * backward: in_delta += delta*scale where rand >= prob. */
int dn_cuda_dropout(const float *in, const float *rand, size_t n, float prob, float scale, float *out);
int dn_cuda_dropout_backward(const float *delta, const float *rand, size_t n, float prob, float scale,
                             float *in_delta);

#ifdef __cplusplus
}
#endif
#endif
