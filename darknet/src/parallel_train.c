/*
 * parallel_train.c — data-parallel training over replicas of one network
 * (dn_network_train_parallel): one thread per replica runs forward and
 * backward on its share of the images (each replica on its own GPU, or all on
 * the CPU); then, on the host, the replicas' weight updates are summed into
 * replica 0, its SGD step is taken for the full batch, and its parameters are
 * copied to the others. This is exactly one network trained with n times the
 * batch (apart from batch-norm batch statistics, which stay per replica).
 *
 * Host staging keeps the code simple and device-agnostic: every step moves
 * the parameters and their updates over PCIe twice per replica (about 2 x 4
 * bytes per parameter each way), small next to the passes for the nets this
 * framework trains.
 */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

#define MAX_REPLICAS 64

typedef struct {
    dn_network *net;
    const float *X, *Y;     /* this replica's images of the step: (subdivisions*batch, inputs|truths) */
    float cost;             /* summed over its mini-batches */
    dn_status status;
    char error[512];
} replica_job;

/* Forward + backward over the replica's mini-batches, then pull its
 * parameters and updates to the host. */
static void *replica_passes(void *arg)
{
    replica_job *j = arg;
    dn_network *net = j->net;
    j->cost = 0;
    j->status = DN_OK;
    for (int s = 0; s < net->subdivisions && j->status == DN_OK; ++s) {
        j->status = dn_network_train_pass(net, j->X + (size_t)s * net->batch * net->inputs,
                                          j->Y + (size_t)s * net->batch * net->truths);
        j->cost += net->cost;
    }
    if (j->status == DN_OK) j->status = dn_network_pull(net);
    if (j->status != DN_OK) snprintf(j->error, sizeof j->error, "%s", dn_last_error());
    return NULL;
}

static void *replica_push(void *arg)
{
    replica_job *j = arg;
    j->status = dn_network_push(j->net);
    if (j->status != DN_OK) snprintf(j->error, sizeof j->error, "%s", dn_last_error());
    return NULL;
}

/* Run fn for every job on the framework's persistent worker pool (job 0 on
 * the caller): the same threads every step, so each keeps its cuBLAS/cuDNN
 * handles (per thread and device) instead of creating them again. */
typedef struct { replica_job *jobs; void *(*fn)(void *); } replica_run;

static void replica_share(void *ctx, int worker, int workers)
{
    (void)workers;
    replica_run *run = ctx;
    run->fn(&run->jobs[worker]);
}

static void run_all(replica_job *jobs, int n, void *(*fn)(void *))
{
    replica_run run = {jobs, fn};
    dn_parallel(replica_share, &run, n);
}

static dn_status first_failure(replica_job *jobs, int n)
{
    for (int r = 0; r < n; ++r)
        if (jobs[r].status != DN_OK) return dn_fail(jobs[r].status, "replica %d: %s", r, jobs[r].error);
    return DN_OK;
}

/* Sum the replicas' updates into replica 0 (the others restart from zero, so
 * momentum is counted once) and average the arrays nobody learns (rolling
 * batch-norm statistics). */
static void reduce_into_first(dn_network **nets, int n)
{
    for (int i = 0; i < nets[0]->n; ++i) {
        dn_param p0[DN_MAX_PARAMS];
        int np = dn_layer_params(&nets[0]->layers[i], p0);
        for (int r = 1; r < n; ++r) {
            dn_param pr[DN_MAX_PARAMS];
            dn_layer_params(&nets[r]->layers[i], pr);
            for (int k = 0; k < np; ++k) {
                if (p0[k].updates) {
                    dn_axpy(p0[k].updates, 1, pr[k].updates, p0[k].n);
                    dn_fill(pr[k].updates, pr[k].n, 0);
                } else {
                    dn_axpy(p0[k].data, 1, pr[k].data, p0[k].n);
                }
            }
        }
        for (int k = 0; k < np; ++k)
            if (!p0[k].updates) dn_scal(p0[k].data, 1.f / (float)n, p0[k].n);
    }
}

/* Replica 0's parameters into every other replica's host arrays. */
static void broadcast_first(dn_network **nets, int n)
{
    for (int i = 0; i < nets[0]->n; ++i) {
        dn_param p0[DN_MAX_PARAMS];
        int np = dn_layer_params(&nets[0]->layers[i], p0);
        for (int r = 1; r < n; ++r) {
            dn_param pr[DN_MAX_PARAMS];
            dn_layer_params(&nets[r]->layers[i], pr);
            for (int k = 0; k < np; ++k) dn_copy(pr[k].data, p0[k].data, p0[k].n);
        }
    }
}

/* Same cfg: same layer count, parameter sizes, batch and subdivisions. */
static dn_status check_replicas(dn_network **nets, int n)
{
    if (!nets || n < 1 || n > MAX_REPLICAS) return dn_fail(DN_ERR_ARG, "data parallel: %d replicas (1 .. %d)", n, MAX_REPLICAS);
    for (int r = 0; r < n; ++r) {
        if (!nets[r] || !nets[r]->input_buf) return dn_fail(DN_ERR_ARG, "data parallel: replica %d is not a trainable network", r);
        if (nets[r]->n != nets[0]->n || nets[r]->batch != nets[0]->batch ||
            nets[r]->subdivisions != nets[0]->subdivisions || nets[r]->inputs != nets[0]->inputs ||
            nets[r]->truths != nets[0]->truths)
            return dn_fail(DN_ERR_ARG, "data parallel: replica %d differs from replica 0 (layers, batch or shapes)", r);
        for (int i = 0; i < nets[0]->n; ++i) {
            dn_param a[DN_MAX_PARAMS], b[DN_MAX_PARAMS];
            int na = dn_layer_params(&nets[0]->layers[i], a), nb = dn_layer_params(&nets[r]->layers[i], b);
            if (na != nb) return dn_fail(DN_ERR_ARG, "data parallel: replica %d layer %d differs", r, i);
            for (int k = 0; k < na; ++k)
                if (a[k].n != b[k].n || !a[k].updates != !b[k].updates)
                    return dn_fail(DN_ERR_ARG, "data parallel: replica %d layer %d %s differs", r, i, a[k].name);
        }
    }
    return DN_OK;
}

dn_status dn_network_train_parallel(dn_network **nets, int n, const float *X, const float *Y, int images,
                                    float *loss)
{
    DN_TRY(check_replicas(nets, n));
    if (!X || !Y) return dn_fail(DN_ERR_ARG, "dn_network_train_parallel: no data");
    dn_network *n0 = nets[0];
    int share = n0->batch * n0->subdivisions, step = share * n;
    if (images < step || images % step)
        return dn_fail(DN_ERR_ARG, "dn_network_train_parallel: %d images is not a multiple of %d replicas x %d",
                       images, n, share);
    replica_job jobs[MAX_REPLICAS];
    float sum = 0;
    for (int first = 0; first < images; first += step) {
        for (int r = 0; r < n; ++r) {
            size_t row = (size_t)first + (size_t)r * share;
            jobs[r] = (replica_job){.net = nets[r], .X = X + row * n0->inputs, .Y = Y + row * n0->truths};
        }
        run_all(jobs, n, replica_passes);
        DN_TRY(first_failure(jobs, n));
        for (int r = 0; r < n; ++r) nets[r]->seen += (uint64_t)step;
        reduce_into_first(nets, n);
        DN_TRY(dn_network_update_batch(n0, (float)step, 1));
        broadcast_first(nets, n);
        run_all(jobs, n, replica_push);
        DN_TRY(first_failure(jobs, n));
        for (int r = 0; r < n; ++r) sum += jobs[r].cost;
    }
    if (loss) *loss = sum / (float)images;
    for (int r = 0; r < n; ++r) nets[r]->cost = sum / (float)images * n0->batch;
    return DN_OK;
}

dn_status dn_network_copy_params(dn_network *dst, const dn_network *src)
{
    if (!dst || !src) return dn_fail(DN_ERR_ARG, "dn_network_copy_params: no network");
    dn_network *pair[2] = {(dn_network *)src, dst};
    if (src->n != dst->n) return dn_fail(DN_ERR_ARG, "dn_network_copy_params: %d layers vs %d", src->n, dst->n);
    for (int i = 0; i < src->n; ++i) {
        dn_param a[DN_MAX_PARAMS], b[DN_MAX_PARAMS];
        int na = dn_layer_params(&src->layers[i], a), nb = dn_layer_params(&dst->layers[i], b);
        if (na != nb) return dn_fail(DN_ERR_ARG, "dn_network_copy_params: layer %d differs", i);
        for (int k = 0; k < na; ++k)
            if (a[k].n != b[k].n) return dn_fail(DN_ERR_ARG, "dn_network_copy_params: layer %d %s differs", i, a[k].name);
    }
    DN_TRY(dn_network_pull(src));
    broadcast_first(pair, 2);
    return dn_network_push(dst);
}
