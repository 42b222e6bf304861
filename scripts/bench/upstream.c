/*
 * upstream.c — benchmark driver for Debian's libdarknet (pjreddie Darknet):
 * trains a cfg on random data (uniform inputs, random one-hot targets) with
 * upstream's train_network and prints the training speed, in the same format
 * as ours.c.
 *
 *   upstream <cfg> <batches> <warmup>
 *   -> "images_per_second <x> loss <mean loss of the last batch> batch <images per update>"
 *
 * Linked against /usr/lib/darknet/libdarknet.so only. Upstream prints its
 * layer table on stderr and exits on bad input.
 */
#include <darknet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
    if (argc != 4) {
        fprintf(stderr, "usage: %s <cfg> <batches> <warmup>\n", argv[0]);
        return 2;
    }
    int batches = atoi(argv[2]), warmup = atoi(argv[3]);
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
    float loss = 0;
    for (int i = 0; i < warmup; ++i) loss = train_network(net, d);
    double t0 = now();
    for (int i = 0; i < batches; ++i) loss = train_network(net, d);
    double t = now() - t0;
    printf("images_per_second %.3f loss %.5f batch %d\n", (double)batches * n / t, loss, n);
    free_data(d);
    free_network(net);
    return 0;
}
