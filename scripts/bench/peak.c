/*
 * peak.c — the machine's fp32 peak, measured: a register-blocked FMA loop
 * (12 independent vector accumulators per thread, AVX-512 or AVX2 as
 * -march=native allows) on 1 and on 2 threads, and a large cblas_sgemm
 * through OpenBLAS (its default thread count).
 *
 *   peak [seconds per measurement, default 0.5] [gemm size, default 2048]
 *   -> lines "fma_1t <GFLOP/s>", "fma_2t <GFLOP/s>", "sgemm_<n> <GFLOP/s>"
 *
 * Build: cc -O2 -march=native peak.c -lopenblas -pthread
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#if defined(__AVX512F__)
typedef __m512 vec;
#define VLEN 16
#define VSET(x) _mm512_set1_ps(x)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUM(a) _mm512_reduce_add_ps(a)
#define ISA "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vec;
#define VLEN 8
#define VSET(x) _mm256_set1_ps(x)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
static float VSUM(__m256 a)
{
    float f[8];
    _mm256_storeu_ps(f, a);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}
#define ISA "avx2"
#else
#error "peak.c needs AVX2+FMA or AVX-512 (-march=native)"
#endif

#define NACC 12
#define INNER 4096L

struct job { double seconds; double flops; double wall; float sink; };

static void *fma_loop(void *arg)
{
    struct job *j = arg;
    /* NACC = 12 independent chains, named so that they stay in registers:
     * enough to cover the FMA latency (4 cycles) on 2 FMA ports */
    vec c0 = VSET(0.f), c1 = VSET(.1f), c2 = VSET(.2f), c3 = VSET(.3f), c4 = VSET(.4f), c5 = VSET(.5f);
    vec c6 = VSET(.6f), c7 = VSET(.7f), c8 = VSET(.8f), c9 = VSET(.9f), c10 = VSET(1.f), c11 = VSET(1.1f);
    const vec a = VSET(0.999999f), b = VSET(1e-7f);
    long iters = 0;
    double t0 = now(), t;
    do {
        for (long i = 0; i < INNER; ++i) {
            c0 = VFMA(c0, a, b); c1 = VFMA(c1, a, b); c2 = VFMA(c2, a, b); c3 = VFMA(c3, a, b);
            c4 = VFMA(c4, a, b); c5 = VFMA(c5, a, b); c6 = VFMA(c6, a, b); c7 = VFMA(c7, a, b);
            c8 = VFMA(c8, a, b); c9 = VFMA(c9, a, b); c10 = VFMA(c10, a, b); c11 = VFMA(c11, a, b);
            __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5),
                                  "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));
        }
        iters += INNER;
        t = now() - t0;
    } while (t < j->seconds);
    vec s = VADD(VADD(VADD(c0, c1), VADD(c2, c3)), VADD(VADD(c4, c5), VADD(c6, c7)));
    s = VADD(s, VADD(VADD(c8, c9), VADD(c10, c11)));
    j->sink = VSUM(s);
    j->flops = 2.0 * VLEN * NACC * (double)iters;
    j->wall = t;
    return NULL;
}

static double fma_peak(int threads, double seconds)
{
    pthread_t tid[64];
    struct job jobs[64];
    double total = 0, wall = 0;
    for (int i = 0; i < threads; ++i) {
        jobs[i].seconds = seconds;
        pthread_create(&tid[i], NULL, fma_loop, &jobs[i]);
    }
    for (int i = 0; i < threads; ++i) {
        pthread_join(tid[i], NULL);
        total += jobs[i].flops;
        if (jobs[i].wall > wall) wall = jobs[i].wall;
        if (jobs[i].sink == 12345.678f) puts("");   /* keep the result alive */
    }
    return total / wall * 1e-9;
}

static double sgemm_peak(int n, double seconds)
{
    float *A = malloc(sizeof(float) * n * n), *B = malloc(sizeof(float) * n * n), *C = malloc(sizeof(float) * n * n);
    if (!A || !B || !C) return 0;
    for (long i = 0; i < (long)n * n; ++i) { A[i] = (float)(i % 7) * 0.1f; B[i] = (float)(i % 5) * 0.1f; C[i] = 0; }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n, B, n, 0, C, n);   /* warm-up */
    int reps = 0;
    double t0 = now(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n, B, n, 0, C, n);
        ++reps;
        t = now() - t0;
    } while (t < seconds);
    free(A); free(B); free(C);
    return 2.0 * n * (double)n * n * reps / t * 1e-9;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    int n = argc > 2 ? atoi(argv[2]) : 2048;
    printf("isa %s\n", ISA);
    printf("fma_1t %.1f\n", fma_peak(1, seconds));
    printf("fma_2t %.1f\n", fma_peak(2, seconds));
    printf("sgemm_%d %.1f\n", n, sgemm_peak(n, seconds));
    return 0;
}
