/*
 * upstream.c — benchmark driver for Debian's libdarknet (pjreddie Darknet):
 * trains a cfg on random data with upstream's train_network (or runs
 * inference with network_predict on the whole batch) and prints the speed,
 * in the same format as ours.c (flops is 0: ours.c reports them).
 *
 *   upstream <cfg> <batches> <warmup> [train|infer]
 *   -> "images_per_second <x> loss <mean loss of the last batch> batch <images per update>
 *       flops 0 maxrss_kb <peak resident set, KiB>"
 *
 * Same data as ours.c and torch_bench.py (xorshift64 from seed 12345).
 * Linked against /usr/lib/darknet/libdarknet.so only. Upstream prints its
 * layer table on stderr and exits on bad input.
 */
#include <darknet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t next(uint64_t *s)   /* xorshift64 */
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s <cfg> <batches> <warmup> [train|infer]\n", argv[0]);
        return 2;
    }
    int batches = atoi(argv[2]), warmup = atoi(argv[3]);
    int infer = argc == 5 && strcmp(argv[4], "infer") == 0;
    srand(12345);
    network *net = parse_network_cfg(argv[1]);
    int n = net->batch * net->subdivisions;
    data d = {0};
    d.X = make_matrix(n, net->inputs);
    d.y = make_matrix(n, net->truths);
    uint64_t rng = 12345;
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < net->inputs; ++j) d.X.vals[i][j] = (float)((next(&rng) >> 11) * (1.0 / 9007199254740992.0));
        d.y.vals[i][next(&rng) % (uint64_t)net->truths] = 1;
    }
    /* network_predict runs net->batch images from one contiguous buffer */
    float *flat = malloc(sizeof(float) * (size_t)net->batch * net->inputs);
    for (int i = 0; i < net->batch; ++i) memcpy(flat + (size_t)i * net->inputs, d.X.vals[i], sizeof(float) * net->inputs);
    int per = infer ? net->batch : n;
    float loss = 0;
    double t = 0;
    for (int i = 0; i < warmup + batches; ++i) {
        if (i == warmup) t = now();
        if (infer) network_predict(net, flat);
        else loss = train_network(net, d);
    }
    t = now() - t;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("images_per_second %.3f loss %.5f batch %d flops 0 maxrss_kb %ld\n",
           (double)batches * per / t, loss, n, ru.ru_maxrss);
    free(flat);
    free_data(d);
    free_network(net);
    return 0;
}
