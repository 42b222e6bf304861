/*
 * threads.c — the library's own worker threads for the convolution kernels.
 *
 * dn_set_threads(n) sets how many workers a convolution splits its batch
 * over (default: the online CPUs, at most 8). Each worker runs single-threaded
 * GEMMs: OpenBLAS's own threads are set to 1 unless OPENBLAS_NUM_THREADS is
 * in the environment (its threads spin on a loaded machine, and each of our
 * GEMMs covers only a cache-sized chunk of the batch).
 */
#include "internal.h"
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef DN_OPENBLAS
#include <cblas.h>
#endif

#define MAX_THREADS 64

static int threads_set;   /* 0: not chosen yet */

static void blas_single(void)
{
#ifdef DN_OPENBLAS
    if (!getenv("OPENBLAS_NUM_THREADS")) openblas_set_num_threads(1);
#endif
}

void dn_set_threads(int n)
{
    if (n < 1) return;
    threads_set = n < MAX_THREADS ? n : MAX_THREADS;
    blas_single();
}

int dn_threads(void)
{
    if (!threads_set) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads_set = cpus < 1 ? 1 : (cpus > 8 ? 8 : (int)cpus);
        blas_single();
    }
    return threads_set;
}

typedef struct {
    void (*fn)(void *ctx, int worker, int workers);
    void *ctx;
    int worker, workers;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    j->fn(j->ctx, j->worker, j->workers);
    return NULL;
}

/* Runs fn(ctx, w, workers) for w = 0 .. workers-1, w = 0 on the calling
 * thread; a worker whose thread cannot be started runs on the caller too. */
void dn_parallel(void (*fn)(void *ctx, int worker, int workers), void *ctx, int workers)
{
    if (workers > MAX_THREADS) workers = MAX_THREADS;
    pthread_t tid[MAX_THREADS];
    job jobs[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int w = 1; w < workers; ++w) {
        jobs[w] = (job){fn, ctx, w, workers};
        started[w] = pthread_create(&tid[w], NULL, run_job, &jobs[w]) == 0;
    }
    fn(ctx, 0, workers);
    for (int w = 1; w < workers; ++w) {
        if (started[w]) pthread_join(tid[w], NULL);
        else fn(ctx, w, workers);
    }
}
