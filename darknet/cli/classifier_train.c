/*
 * classifier_train.c — `darknet classifier train <data> <cfg> [weights]`.
 *
 * Prints what upstream's `classifier train` prints: on stdout the cfg base name,
 * the device count, "Learning Rate: .., Momentum: .., Decay: ..", the number
 * of training images and the crop bounds; the layer table on stderr; then per
 * full batch (batch*subdivisions images from the background loader)
 *   Loaded: <s> seconds
 *   <batch>, <epoch>: <loss>, <avg> avg, <rate> rate, <s> seconds, <seen> images
 * plus, every few seconds, a progress line for people on stderr.
 * Saves into the .data's backup dir: <base>_<epoch>.weights when the integer
 * epoch grows, <base>.backup every 100 batches (upstream: 1000) and when
 * stopped by SIGINT/SIGTERM or when an image cannot be loaded mid-run,
 * <base>.weights at the end.
 */
#include "cli.h"
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BACKUP_EVERY 100      /* batches between <base>.backup saves */
#define PROGRESS_EVERY 5.0    /* seconds between progress lines */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

/* "cfg/fashion-small.cfg" -> "fashion-small" (upstream: cut at the first '.') */
static void cfg_base(const char *cfg, char *out, size_t size)
{
    const char *slash = strrchr(cfg, '/');
    snprintf(out, size, "%s", slash ? slash + 1 : cfg);
    char *dot = strchr(out, '.');
    if (dot) *dot = 0;
}

static void backup_path(const char *dir, const char *base, const char *suffix, char *path, size_t size)
{
    size_t n = strlen(dir);
    snprintf(path, size, "%s%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", base, suffix);
}

static int save(const dn_network *net, const char *dir, const char *base, const char *suffix)
{
    char path[4096];
    backup_path(dir, base, suffix, path, sizeof path);
    fprintf(stderr, "Saving weights to %s\n", path);
    if (dn_weights_save(net, path) != DN_OK) return cli_fail("saving weights");
    return 0;
}

static void fmt_duration(double s, char *out, size_t size)
{
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(out, size, "%ldm%02lds", t / 60, t % 60);
}

typedef struct {
    double start, last_time;
    uint64_t last_seen;
} progress;

static void print_progress(progress *p, const dn_network *net, int n, float avg, int final)
{
    double now = dn_time_now();
    if (!final && now - p->last_time < PROGRESS_EVERY) return;
    double ips = (double)(net->seen - p->last_seen) / (now - p->last_time + 1e-9);
    size_t b = dn_network_batch_num(net);
    char elapsed[32], left[48] = "";
    fmt_duration(now - p->start, elapsed, sizeof elapsed);
    if (net->max_batches > 0 && b < (size_t)net->max_batches && ips > 0) {
        char d[32];
        double remaining = (double)(net->max_batches - b) * net->batch * net->subdivisions / ips;
        fmt_duration(remaining, d, sizeof d);
        snprintf(left, sizeof left, ", ~%s left", d);
    }
    char limit[32] = "";
    if (net->max_batches > 0) snprintf(limit, sizeof limit, "/%d", net->max_batches);
    fprintf(stderr, "[train] epoch %.2f, batch %zu%s, loss %.4f avg, %.0f images/s, %s elapsed%s\n",
            (double)net->seen / n, b, limit, avg, ips, elapsed, left);
    p->last_time = now;
    p->last_seen = net->seen;
}

/* The loader failed mid-run (an image went missing or became unreadable):
 * when this run has trained at least one step, keep that work in
 * <base>.backup, the file the periodic backup writes. Returns the exit code. */
static int loader_failed(const dn_network *net, const char *backup, const char *base, int steps)
{
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", dn_last_error());
    fflush(stdout);
    fprintf(stderr, "darknet: loading a batch: %s\n", msg);
    if (steps == 0) return DN_EXIT_ERROR;
    char path[4096];
    backup_path(backup, base, ".backup", path, sizeof path);
    if (save(net, backup, base, ".backup") == 0)
        fprintf(stderr, "darknet: stopped at batch %zu; saved the weights trained so far to %s\n",
                dn_network_batch_num(net), path);
    return DN_EXIT_ERROR;
}

/* The loop over nets[0..replicas) (one per GPU; data parallel when more
 * than one); returns the exit code. X, Y hold one step: replicas full batches. */
static int train_loop(const cli_classifier_args *a, dn_network **nets, int replicas, dn_loader *ld, int n,
                      const char *backup, const char *base, float *X, float *Y)
{
    dn_network *net = nets[0];
    int full = net->batch * net->subdivisions * replicas;
    uint64_t epoch = net->seen / (uint64_t)n;
    float avg = -1;
    int steps = 0;   /* taken by this run */
    progress p = {dn_time_now(), dn_time_now(), net->seen};
    while ((net->max_batches == 0 || dn_network_batch_num(net) < (size_t)net->max_batches) && !stop_signal) {
        double waited = 0;
        if (dn_loader_next(ld, X, Y, &waited) != DN_OK) return loader_failed(net, backup, base, steps);
        if (!a->quiet) printf("Loaded: %lf seconds\n", waited);
        double t0 = dn_time_now();
        float loss = 0;
        dn_status st = replicas > 1 ? dn_network_train_parallel(nets, replicas, X, Y, full, &loss)
                                    : dn_network_train(net, X, Y, full, &loss);
        if (st == DN_ERR_NUMERIC) {
            fflush(stdout);
            fprintf(stderr, "darknet: %s\ndarknet: stopped; nothing was saved after the last good batch "
                            "(try a lower learning_rate or a burn_in)\n", dn_last_error());
            return DN_EXIT_ERROR;
        }
        if (st != DN_OK) return cli_fail("training");
        ++steps;
        avg = avg < 0 ? loss : avg * .9f + loss * .1f;
        size_t b = dn_network_batch_num(net);
        if (!a->quiet) {
            printf("%zu, %.3f: %f, %f avg, %f rate, %lf seconds, %" PRIu64 " images\n", b, (double)net->seen / n,
                   loss, avg, dn_network_rate(net), dn_time_now() - t0, net->seen);
            fflush(stdout);
        }
        print_progress(&p, net, n, avg, 0);
        if (net->seen / (uint64_t)n > epoch) {
            char suffix[64];
            epoch = net->seen / (uint64_t)n;
            snprintf(suffix, sizeof suffix, "_%" PRIu64 ".weights", epoch);
            if (save(net, backup, base, suffix)) return DN_EXIT_ERROR;
        }
        if (b % BACKUP_EVERY == 0 && save(net, backup, base, ".backup")) return DN_EXIT_ERROR;
    }
    print_progress(&p, net, n, avg < 0 ? 0 : avg, 1);
    if (stop_signal) {
        int sig = stop_signal;
        fprintf(stderr, "darknet: stopped by %s at batch %zu\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                dn_network_batch_num(net));
        if (save(net, backup, base, ".backup")) return DN_EXIT_ERROR;
        return 128 + sig;
    }
    return save(net, backup, base, ".weights") ? DN_EXIT_ERROR : 0;
}

/* Put nets[0] on the devices -gpus (or -i) lists: replicas 1.. are parsed
 * from the same cfg and start from nets[0]'s parameters. Says on stderr where
 * it trains, except for a CPU build asked nothing. Returns the replica count
 * (1: CPU or one GPU) or -1 after a message. */
static int place_on_gpus(const cli_classifier_args *a, dn_network **nets)
{
    const char *flag = a->index >= 0 ? "-i" : "-gpus";   /* what asked for devices */
    if (!dn_gpu_built()) {
        if (a->gpus) fprintf(stderr, "darknet: %s given, but this is a CPU build: training on the CPU\n", flag);
        else if (a->nogpu) fprintf(stderr, "darknet: -nogpu: training on the CPU\n");
        return 1;
    }
    if (a->nogpu) {
        fprintf(stderr, "darknet: -nogpu: training on the CPU\n");
        return 1;
    }
    if (!a->gpus && dn_gpu_count() == 0) {
        fprintf(stderr, "darknet: no CUDA device: training on the CPU\n");   /* -gpus would insist */
        return 1;
    }
    int n = a->gpus > 1 ? a->gpus : 1;
    for (int r = 1; r < n; ++r) {
        dn_parse_options po = {.seed = a->seed, .quiet = 1};
        if (dn_network_parse_file(a->cfg, &po, &nets[r]) != DN_OK) { cli_fail("reading the cfg"); return -1; }
        if (dn_network_copy_params(nets[r], nets[0]) != DN_OK) { cli_fail("copying the weights"); return -1; }
        nets[r]->seen = nets[0]->seen;
    }
    for (int r = 0; r < n; ++r)
        if (dn_network_to_gpu(nets[r], a->gpu_list[r]) != DN_OK) { cli_fail(flag); return -1; }
    if (n == 1) fprintf(stderr, "darknet: training on GPU %d\n", a->gpu_list[0]);
    else fprintf(stderr, "darknet: training data-parallel on %d GPUs (gradients summed), %d images per step\n", n,
                 nets[0]->batch * nets[0]->subdivisions * n);
    return n;
}

int classifier_train(const cli_classifier_args *a)
{
    char base[256];
    cfg_base(a->cfg, base, sizeof base);
    printf("%s\n%d\n", base, a->gpus > 1 ? a->gpus : 1);

    dn_data_config dc;
    dn_network *nets[CLI_MAX_GPUS] = {0};
    int rc = classifier_open(a, 0, 1, &dc, &nets[0]);
    if (rc) return rc;
    dn_network *net = nets[0];
    if (a->max_batches >= 0) net->max_batches = a->max_batches;
    printf("Learning Rate: %g, Momentum: %g, Decay: %g\n", net->learning_rate, net->momentum, net->decay);

    dn_split split;
    dn_loader *ld = NULL;
    float *X = NULL, *Y = NULL;
    memset(&split, 0, sizeof split);
    rc = DN_EXIT_ERROR;
    int replicas = place_on_gpus(a, nets);
    if (replicas < 1) goto done;
    if (dn_split_load(&dc, 0, a->max_rows, &split) != DN_OK) { cli_fail("loading the training set"); goto done; }
    if (split.n < 1) { fprintf(stderr, "darknet: the training set %s is empty\n", dc.train); goto done; }
    printf("%d\n", split.n);
    printf("%d %d\n", (int)(net->min_ratio * net->w), (int)(net->max_ratio * net->w));
    fflush(stdout);

    int full = net->batch * net->subdivisions * replicas;
    dn_loader_options o;
    memset(&o, 0, sizeof o);
    o.split = &split;
    dn_loader_options_from_network(&o, net);
    o.batch = full;   /* after: the network's own batch is one replica's share */
    o.flip = dc.flip;
    o.crop_pad = dc.crop_pad;
    o.erase = dc.erase;
    o.seed = a->seed;
    X = malloc(sizeof(float) * (size_t)full * net->inputs);
    Y = malloc(sizeof(float) * (size_t)full * dc.classes);
    if (!X || !Y) { fprintf(stderr, "darknet: out of memory for a batch of %d images\n", full); goto done; }
    if (dn_make_dirs(dc.backup) != DN_OK) { cli_fail("the backup folder"); goto done; }
    if (dn_loader_start(&o, &ld) != DN_OK) { cli_fail("starting the batch loader"); goto done; }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;   /* a second Ctrl-C kills at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = train_loop(a, nets, replicas, ld, split.n, dc.backup, base, X, Y);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
done:
    fflush(stdout);
    if (ld) dn_loader_stop(ld);
    free(X);
    free(Y);
    dn_split_free(&split);
    for (int r = 0; r < CLI_MAX_GPUS; ++r) dn_network_free(nets[r]);
    dn_data_config_free(&dc);
    return rc;
}
