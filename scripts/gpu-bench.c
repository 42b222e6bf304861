/*
 * gpu-bench.c — training throughput of one cfg on the CPU or a CUDA device
 * (built and run by scripts/gpu-check): random images and one-hot labels,
 * one warm-up step, then STEPS timed steps. Prints
 *   <cfg> <cpu|gpu> batch <B> <images/s> img/s <TFLOP/s> TFLOP/s
 * counting a training step as 3x the forward FLOPs.
 * usage: gpu-bench <cfg> <batch> <gpu index or -1> [steps]
 */
#include "darknet.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 4) { fprintf(stderr, "usage: gpu-bench <cfg> <batch> <gpu|-1> [steps]\n"); return 2; }
    int batch = atoi(argv[2]), gpu = atoi(argv[3]), steps = argc > 4 ? atoi(argv[4]) : 5;
    dn_parse_options po = {.batch = batch, .seed = 1, .quiet = 1};
    dn_network *net = NULL;
    if (dn_network_parse_file(argv[1], &po, &net) != DN_OK ||
        (gpu >= 0 && dn_network_to_gpu(net, gpu) != DN_OK)) {
        fprintf(stderr, "%s\n", dn_last_error());
        dn_network_free(net);
        return 1;
    }
    float *X = malloc(sizeof(float) * (size_t)batch * net->inputs), *Y = calloc((size_t)batch * net->truths, sizeof(float));
    uint64_t rng = 3;
    for (size_t i = 0; X && i < (size_t)batch * net->inputs; ++i) X[i] = dn_rand_uniform(&rng, 0, 1);
    for (int b = 0; Y && b < batch; ++b) Y[(size_t)b * net->truths + b % net->truths] = 1;
    float loss;
    int rc = X && Y && dn_network_train(net, X, Y, batch, &loss) == DN_OK ? 0 : 1;
    double t0 = dn_time_now();
    for (int s = 0; !rc && s < steps; ++s) rc = dn_network_train(net, X, Y, batch, &loss) != DN_OK;
    rc = rc || dn_network_pull(net) != DN_OK;   /* waits for the device */
    double dt = dn_time_now() - t0, ips = (double)steps * batch / dt;
    if (rc) fprintf(stderr, "%s\n", dn_last_error());
    else printf("%s %s batch %d %.1f img/s %.3f TFLOP/s\n", argv[1], gpu >= 0 ? "gpu" : "cpu", batch, ips,
                3.0 * dn_network_flops(net) * ips / 1e12);
    free(X); free(Y);
    dn_network_free(net);
    return rc;
}
