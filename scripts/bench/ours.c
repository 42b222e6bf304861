/*
 * ours.c — benchmark driver for darknet-evolve: trains (or runs inference
 * with) a cfg on random data and prints the speed.
 *
 *   ours <cfg> <batches> <warmup> [train|infer]
 *   -> "images_per_second <x> loss <mean loss of the last batch> batch <images per update>
 *       flops <forward FLOPs per image> maxrss_kb <peak resident set, KiB>"
 *
 * The data is the same in all three drivers (ours.c, upstream.c,
 * torch_bench.py): xorshift64 from seed 12345; per image, its inputs as
 * uniform [0,1) (the top 53 bits / 2^53) then its class as next % classes.
 * infer runs dn_network_predict_batch on the whole batch (loss is 0 there).
 *
 * Linked against build/libdarknet-evolve.a only (never with libdarknet: the
 * two libraries export clashing names). scripts/bench/run builds and runs it.
 */
#include "darknet.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int fail(void)
{
    fprintf(stderr, "ours: %s\n", dn_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s <cfg> <batches> <warmup> [train|infer]\n", argv[0]);
        return 2;
    }
    int batches = atoi(argv[2]), warmup = atoi(argv[3]);
    int infer = argc == 5 && strcmp(argv[4], "infer") == 0;
    if (argc == 5 && !infer && strcmp(argv[4], "train") != 0) {
        fprintf(stderr, "ours: mode is train or infer, not %s\n", argv[4]);
        return 2;
    }
    dn_network *net = NULL;
    if (dn_network_parse_file(argv[1], NULL, &net) != DN_OK) return fail();
    int n = net->batch * net->subdivisions;   /* images per update, as upstream's train_network */
    float *X = malloc(sizeof(float) * (size_t)n * net->inputs);
    float *Y = calloc((size_t)n * net->truths, sizeof(float));
    float *out = malloc(sizeof(float) * (size_t)n * net->outputs);
    if (!X || !Y || !out) { fprintf(stderr, "ours: out of memory\n"); return 1; }
    uint64_t rng = 12345;
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < net->inputs; ++j)
            X[(size_t)i * net->inputs + j] = (float)((xorshift(&rng) >> 11) * (1.0 / 9007199254740992.0));
        Y[(size_t)i * net->truths + xorshift(&rng) % (uint64_t)net->truths] = 1;
    }

    float loss = 0;
    double t = 0;
    for (int i = 0; i < warmup + batches; ++i) {
        if (i == warmup) t = dn_time_now();
        if (infer) {
            if (dn_network_predict_batch(net, X, n, out) != DN_OK) return fail();
        } else if (dn_network_train(net, X, Y, n, &loss) != DN_OK) {
            return fail();
        }
    }
    t = dn_time_now() - t;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("images_per_second %.3f loss %.5f batch %d flops %.0f maxrss_kb %ld\n",
           (double)batches * n / t, loss, n, dn_network_flops(net), ru.ru_maxrss);
    free(X);
    free(Y);
    free(out);
    dn_network_free(net);
    return 0;
}
