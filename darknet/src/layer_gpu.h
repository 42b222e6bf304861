/*
 * layer_gpu.h — what the GPU halves of the layer types share (layer_gpu.c),
 * GPU builds only. A layer file includes it under #ifdef DN_GPU, writes its
 * forward_gpu / backward_gpu from the kernels of gpu_kernels.h and
 * gpu_layer_kernels.h (both included here) and these helpers, and names
 * them in its ops with `.gpu = DN_GPU_OPS(...)`.
 */
#ifndef DN_LAYER_GPU_H
#define DN_LAYER_GPU_H
#include "internal.h"

#ifdef DN_GPU
#include "gpu_kernels.h"
#include "gpu_layer_kernels.h"

/* ---- batch norm, bias and activation (conv, connected, batchnorm) */

/* The layer's device batch-norm arrays over out_c channels of out_w*out_h. */
dn_cuda_bn dn_gpu_bn_params(dn_layer *l);
/* Forward tail of conv and connected: batch norm or bias, then the activation. */
dn_status dn_gpu_bias_bn_activate(dn_layer *l, dn_network *net);
/* Backward head of conv and connected: activation gradient, then batch norm
 * or bias backward (accumulating their updates). */
dn_status dn_gpu_activate_bn_bias_backward(dn_layer *l, dn_network *net);

/* ---- deltas and state */

/* net->delta_gpu += a * l->delta_gpu (batch*outputs) when there is a previous layer. */
dn_status dn_gpu_pass_delta(dn_layer *l, dn_network *net, float a);
/* l->gpu_state = n zeroed device floats, replacing any earlier state (a
 * setup_gpu), and its release_gpu. */
dn_status dn_gpu_state_alloc(dn_layer *l, size_t n);
void dn_gpu_state_release(dn_layer *l);

/* ---- pooling windows ([maxpool], [local_avgpool]) */

/* Planes (batch*c) of h x w -> out_h x out_w, the layer's window. */
dn_cuda_pool dn_gpu_pool_window(const dn_layer *l);

/* ---- losses ([softmax], [cost]) */

/* workspace_gpu of a loss: room for the kernels' per-block partial sums. */
size_t dn_gpu_loss_workspace(const dn_layer *l);
/* The truth the CPU layer reads is net->truth[0 .. batch*inputs); a layer
 * wider than the network's targets is a shape error on the device (where
 * reading past the buffer would poison the context). */
dn_status dn_gpu_loss_truth_fits(const dn_layer *l, const dn_network *net);
/* *out = the sum of the `parts` partial sums a loss kernel left in
 * net->workspace_gpu (pulled to the host). */
dn_status dn_gpu_loss_pull(dn_network *net, int parts, float *out);

#endif
#endif
