/*
 * threads.c — the library's own worker threads for the convolution kernels.
 *
 * dn_set_threads(n) sets how many workers a convolution splits its batch
 * over (n < 1, and before any call: the online CPUs, at most 8); the
 * workers are a pool of threads kept for the life of the process. Each
 * worker runs single-threaded GEMMs: OpenBLAS's own threads are set to 1
 * unless OPENBLAS_NUM_THREADS is in the environment (its threads spin on a
 * loaded machine, and each of our GEMMs covers only a cache-sized chunk of
 * the batch).
 */
#include "internal.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef DN_OPENBLAS
#include <cblas.h>
#endif

#define MAX_THREADS 64

static int threads_set;   /* 0: not chosen yet */

/* The online CPUs, at most 8. */
static int default_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : (cpus > 8 ? 8 : (int)cpus);
}

static void blas_single(void)
{
#ifdef DN_OPENBLAS
    if (!getenv("OPENBLAS_NUM_THREADS")) openblas_set_num_threads(1);
#endif
}

/* threads_set is read and written atomically: several evolve workers may set
 * or read it at once (with the same value). */
void dn_set_threads(int n)
{
    if (n < 1) n = default_threads();
    __atomic_store_n(&threads_set, n < MAX_THREADS ? n : MAX_THREADS, __ATOMIC_RELAXED);
    blas_single();
}

int dn_threads(void)
{
    int n = __atomic_load_n(&threads_set, __ATOMIC_RELAXED);
    if (!n) {
        n = default_threads();
        __atomic_store_n(&threads_set, n, __ATOMIC_RELAXED);
        blas_single();
    }
    return n;
}

/* ------------------------------------------------------------ the pool
 * Workers 1 .. n-1 are threads started on first use and kept for the life of
 * the process (so their GEMM packing buffers stay warm); worker 0 is the
 * caller. One job runs at a time: a dn_parallel call that finds the pool busy
 * (another thread of the program is in one) runs every worker's share itself,
 * which gives the same results since no result depends on who runs a share. */

typedef void (*job_fn)(void *ctx, int worker, int workers);

static struct {
    pthread_mutex_t busy;           /* held by the caller that owns the pool   */
    pthread_mutex_t lock;           /* guards everything below                 */
    pthread_cond_t start, done;
    job_fn fn;
    void *ctx;
    int workers;                    /* of the current job                     */
    unsigned long generation;       /* bumped per job: wakes the threads      */
    int pending;                    /* shares of the current job not finished */
    int started;                    /* pool threads running (workers 1 .. started) */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          NULL, NULL, 0, 0, 0, 0};

static void *pool_thread(void *arg)
{
    int me = (int)(intptr_t)arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.start, &pool.lock);
        seen = pool.generation;
        if (me >= pool.workers) continue;        /* not part of this job */
        job_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int workers = pool.workers;
        pthread_mutex_unlock(&pool.lock);
        fn(ctx, me, workers);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

/* Starts pool threads up to worker `workers - 1`; returns how many run. */
static int pool_grow(int workers)
{
    while (pool.started < workers - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&t, &attr, pool_thread, (void *)(intptr_t)(pool.started + 1)) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break;
        ++pool.started;
    }
    return pool.started + 1;
}

/* Runs fn(ctx, w, workers) for w = 0 .. workers-1, w = 0 on the calling
 * thread; shares no pool thread can take run on the caller too. */
void dn_parallel(void (*fn)(void *ctx, int worker, int workers), void *ctx, int workers)
{
    if (workers > MAX_THREADS) workers = MAX_THREADS;
    if (workers <= 1 || pthread_mutex_trylock(&pool.busy) != 0) {
        for (int w = 0; w < workers; ++w) fn(ctx, w, workers);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    int running = pool_grow(workers);           /* workers 0 .. running-1 exist */
    if (running > workers) running = workers;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.workers = running;
    pool.pending = running - 1;
    ++pool.generation;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.lock);
    fn(ctx, 0, workers);
    for (int w = running; w < workers; ++w) fn(ctx, w, workers);   /* threads that could not start */
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
}

/* ------------------------------------------------------------ zeroing */

typedef struct { float *x; size_t n; } zero_job;

#define ZERO_PARTS 8
#define ZERO_MIN ((size_t)1 << 20)   /* floats below which one thread zeroes */

static void zero_worker(void *arg, int w, int workers)
{
    const zero_job *j = arg;
    for (int p = w; p < ZERO_PARTS; p += workers) {
        size_t a = j->n * (size_t)p / ZERO_PARTS, b = j->n * (size_t)(p + 1) / ZERO_PARTS;
        memset(j->x + a, 0, (b - a) * sizeof(float));
    }
}

void dn_zero_parallel(float *x, size_t n)
{
    if (!x || !n) return;
    if (n < ZERO_MIN || dn_threads() < 2) {
        memset(x, 0, n * sizeof(float));
        return;
    }
    zero_job j = {x, n};
    dn_parallel(zero_worker, &j, dn_threads() < ZERO_PARTS ? dn_threads() : ZERO_PARTS);
}
