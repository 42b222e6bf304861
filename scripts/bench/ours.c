/*
 * ours.c — benchmark driver for darknet-evolve: trains a cfg on random data
 * (uniform inputs, random one-hot targets) and prints the training speed.
 *
 *   ours <cfg> <batches> <warmup>
 *   -> "images_per_second <x> loss <mean loss of the last batch> batch <images per update>"
 *
 * Linked against build/libdarknet-evolve.a only (never with libdarknet: the
 * two libraries export clashing names). scripts/bench/run builds and runs it.
 */
#include "darknet.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s <cfg> <batches> <warmup>\n", argv[0]);
        return 2;
    }
    int batches = atoi(argv[2]), warmup = atoi(argv[3]);
    dn_network *net = NULL;
    if (dn_network_parse_file(argv[1], NULL, &net) != DN_OK) {
        fprintf(stderr, "ours: %s\n", dn_last_error());
        return 1;
    }
    int n = net->batch * net->subdivisions;   /* images per update, as upstream's train_network */
    float *X = malloc(sizeof(float) * (size_t)n * net->inputs);
    float *Y = calloc((size_t)n * net->truths, sizeof(float));
    if (!X || !Y) { fprintf(stderr, "ours: out of memory\n"); return 1; }
    uint64_t rng = 12345;
    for (size_t i = 0; i < (size_t)n * net->inputs; ++i) X[i] = dn_rand_uniform(&rng, 0, 1);
    for (int i = 0; i < n; ++i) Y[(size_t)i * net->truths + dn_rand_u64(&rng) % (uint64_t)net->truths] = 1;

    float loss = 0;
    for (int i = 0; i < warmup; ++i)
        if (dn_network_train(net, X, Y, n, &loss) != DN_OK) { fprintf(stderr, "ours: %s\n", dn_last_error()); return 1; }
    double t0 = dn_time_now();
    for (int i = 0; i < batches; ++i)
        if (dn_network_train(net, X, Y, n, &loss) != DN_OK) { fprintf(stderr, "ours: %s\n", dn_last_error()); return 1; }
    double t = dn_time_now() - t0;
    printf("images_per_second %.3f loss %.5f batch %d\n", (double)batches * n / t, loss, n);
    free(X);
    free(Y);
    dn_network_free(net);
    return 0;
}
