/*
 * gemm_fast.c — single-precision GEMM with AVX-512 register kernels, for
 * CPUs that have AVX-512F (checked at run time; elsewhere dn_gemm falls back
 * to OpenBLAS or the reference loops and dn_gemm_matrix declines).
 *
 * C (M,N) = alpha * A (M,K) * B (K,N) + beta * C over the operand layouts of
 * dn_matrix (internal.h): dense, transposed, images side by side, and the
 * unfolded images of a convolution (im2col, never stored). Three paths:
 *
 *   packed (any operands; Goto/BLIS blocking):
 *     for each NC-wide block of C's columns
 *       for each KC-deep slice of the sum
 *         pack B (KC, NC) into NR-wide panels       (stays in L2)
 *         for each MC-high block of rows
 *           pack A (MC, KC) into MR-high panels
 *           for each A panel (MR, KC), B panel (KC, NR): the MR x NR kernel
 *     Packing copies an operand into the layout the kernel walks with unit
 *     stride (transposes and unfolding happen there), zero-padded to whole
 *     panels; tiles on the edges of C go through a small buffer.
 *   direct (B = stride-1 unfolded images, C = images: convolution forward
 *     and input delta): images are copied a few at a time into zero-padded
 *     rows and the kernel loads B's vectors straight from them, writing C
 *     straight into the output images; B is never packed.
 *   padded weight gradient (B = transposed stride-1 unfolding): the packed
 *     path over groups of padded images, whose packing is then plain loads
 *     and 16 x 16 register transposes.
 *
 * One call runs on the calling thread only (the convolution layers give each
 * of their workers its own GEMMs); each thread keeps its buffers until it
 * exits. Results do not depend on the thread: the order of every sum is
 * fixed by the blocking.
 */
#include "internal.h"
#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

int dn_gemm_direct_enabled = 1;

#define MR 8       /* rows of C per register tile: 8 broadcasts of A per step   */
#define NR 48      /* columns per tile: 3 AVX-512 vectors of B per step         */
#define KC 256     /* depth of one slice: an A panel is MR*KC*4 = 8 KiB (L1)    */
#define NC 480     /* columns per B block: KC*NC*4 = 480 KiB (L2)               */
#define MC 128     /* rows per packed A block: MC*KC*4 = 128 KiB                */
#define KC_DIRECT 512   /* deepest slice of the direct path (its B is never packed) */
#define MAX_TAPS 49     /* the direct path takes kernels up to 7x7                  */

/* The register tile of both kernels: c<i><v> holds row i (of MR = 8) and
 * vector v (of 3, 16 columns each) of C; one step of the sum adds a[i] * b<v>. */
#define TILE_ACCUMULATORS                                                                    \
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00; \
    __m512 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;                 \
    __m512 c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;                 \
    __m512 c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00
#define TILE_ROW(a, i, b0, b1, b2)                          \
    do {                                                    \
        __m512 x_ = _mm512_set1_ps((a)[i]);                 \
        c##i##0 = _mm512_fmadd_ps(x_, b0, c##i##0);         \
        c##i##1 = _mm512_fmadd_ps(x_, b1, c##i##1);         \
        c##i##2 = _mm512_fmadd_ps(x_, b2, c##i##2);         \
    } while (0)
#define TILE_STEP(a, b0, b1, b2)                                                              \
    do {                                                                                      \
        TILE_ROW(a, 0, b0, b1, b2); TILE_ROW(a, 1, b0, b1, b2); TILE_ROW(a, 2, b0, b1, b2);   \
        TILE_ROW(a, 3, b0, b1, b2); TILE_ROW(a, 4, b0, b1, b2); TILE_ROW(a, 5, b0, b1, b2);   \
        TILE_ROW(a, 6, b0, b1, b2); TILE_ROW(a, 7, b0, b1, b2);                               \
    } while (0)

/* ------------------------------------------------------------ buffers */

typedef struct {
    float *a, *b;
    float *pad;          /* the direct path's padded images (grown on demand) */
    size_t pad_cap;
} pack_buffers;

static pthread_key_t buffers_key;
static pthread_once_t buffers_once = PTHREAD_ONCE_INIT;
static int buffers_key_ok;

static void free_buffers(void *p)
{
    pack_buffers *pb = p;
    free(pb->a);
    free(pb->b);
    free(pb->pad);
    free(pb);
}

static void make_key(void) { buffers_key_ok = pthread_key_create(&buffers_key, free_buffers) == 0; }

/* This thread's packing buffers (allocated on first use), NULL if out of memory. */
static pack_buffers *thread_buffers(void)
{
    pthread_once(&buffers_once, make_key);
    if (!buffers_key_ok) return NULL;
    pack_buffers *pb = pthread_getspecific(buffers_key);
    if (pb) return pb;
    pb = calloc(1, sizeof *pb);
    if (!pb) return NULL;
    pb->a = aligned_alloc(64, sizeof(float) * MC * KC_DIRECT);
    pb->b = aligned_alloc(64, sizeof(float) * KC * NC);
    if (!pb->a || !pb->b || pthread_setspecific(buffers_key, pb) != 0) {
        free_buffers(pb);
        return NULL;
    }
    return pb;
}

/* At least n floats of padding buffer (64-byte aligned); 0 if out of memory. */
static int reserve_pad(pack_buffers *pb, size_t n)
{
    if (pb->pad_cap >= n) return 1;
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) return 0;
    free(pb->pad);
    pb->pad = p;
    pb->pad_cap = n;
    return 1;
}

/* ------------------------------------------------------------ packing */

/* A run of consecutive columns j of an image-shaped operand that stay in one
 * image b and one output row oy: columns [at, at+len) are ox = ox0 .. ox0+len-1. */
typedef struct { int at, len, b, oy, ox0; } run;

/* Split columns [j0, j0+count) of images with out_h x out_w positions into runs. */
static int split_runs(int j0, int count, int out_h, int out_w, run *runs)
{
    int n = out_h * out_w, nr = 0;
    for (int at = 0; at < count;) {
        int j = j0 + at, b = j / n, pos = j % n, oy = pos / out_w, ox = pos % out_w;
        int len = out_w - ox < count - at ? out_w - ox : count - at;
        runs[nr++] = (run){at, len, b, oy, ox};
        at += len;
    }
    return nr;
}

/* Row r = (ch, ky, kx) of an unfolded image: the source channel plane and offsets. */
static const float *unfold_row(const dn_matrix *m, int r, int *ky, int *kx)
{
    *kx = r % m->size;
    *ky = (r / m->size) % m->size;
    return m->data + (size_t)(r / m->size / m->size) * m->h * m->w;
}

/* dst[t*step] for t in [0, len): pixel row iy of plane (image b), columns
 * x = (ox0+t)*stride + kx - pad, zero outside the image. */
static void unfold_segment(const dn_matrix *m, const float *plane, const run *u, int ky, int kx, float *dst,
                           size_t step)
{
    int iy = u->oy * m->stride + ky - m->pad;
    if (iy < 0 || iy >= m->h) {
        for (int t = 0; t < u->len; ++t) dst[t * step] = 0;
        return;
    }
    const float *src = plane + (size_t)u->b * m->img + (size_t)iy * m->w;
    int x0 = u->ox0 * m->stride + kx - m->pad, s = m->stride, t = 0;
    for (; t < u->len && x0 + t * s < 0; ++t) dst[t * step] = 0;
    int hi = u->len;
    while (hi > t && x0 + (hi - 1) * s >= m->w) --hi;
    if (s == 1 && step == 1)
        for (; t < hi; ++t) dst[t] = src[x0 + t];
    else
        for (; t < hi; ++t) dst[t * step] = src[x0 + t * s];
    for (; t < u->len; ++t) dst[t * step] = 0;
}

/* ------------------------------------------------------------ vector unfolding
 * Stride-1 unfolding with AVX-512 masked loads (lanes outside the image read
 * nothing and give 0) and, for the transposed form, 16 x 16 register
 * transposes. Addresses left of a row are formed as integers, not pointers. */

/* Lanes t0 .. t0+15 of a run of len pixels starting at x0 that lie in [0, w). */
static unsigned lanes_inside(int t0, int len, int x0, int w)
{
    int lo = -x0 - t0, hi = (len < w - x0 ? len : w - x0) - t0;
    lo = lo < 0 ? 0 : (lo > 16 ? 16 : lo);
    hi = hi < 0 ? 0 : (hi > 16 ? 16 : hi);
    return hi <= lo ? 0 : ((1u << hi) - 1) & ~((1u << lo) - 1);
}

static unsigned lanes_below(int count) { return count >= 16 ? 0xffffu : (1u << count) - 1; }

/* 16 floats of row src at pixel x, lanes outside mask 0. */
__attribute__((target("avx512f"))) static __m512 load_lanes(const float *src, int x, unsigned mask)
{
    if (!mask) return _mm512_setzero_ps();
    return _mm512_maskz_loadu_ps((__mmask16)mask, (const float *)((uintptr_t)src + (intptr_t)x * (intptr_t)sizeof(float)));
}

/* Source row of an unfolded row (ky, kx) for run u at stride 1: NULL when the
 * pixel row is outside the image; *x0 the first pixel column. */
static const float *unfold_source(const dn_matrix *m, const float *plane, const run *u, int ky, int kx, int *x0)
{
    int iy = u->oy + ky - m->pad;
    *x0 = u->ox0 + kx - m->pad;
    return iy < 0 || iy >= m->h ? NULL : plane + (size_t)u->b * m->img + (size_t)iy * m->w;
}

/* dst[0 .. len) = the run's pixels (stride 1). */
__attribute__((target("avx512f"))) static void unfold_segment_v(const dn_matrix *m, const float *plane, const run *u,
                                                                int ky, int kx, float *dst)
{
    int x0;
    const float *src = unfold_source(m, plane, u, ky, kx, &x0);
    for (int t0 = 0; t0 < u->len; t0 += 16) {
        __m512 v = src ? load_lanes(src, x0 + t0, lanes_inside(t0, u->len, x0, m->w)) : _mm512_setzero_ps();
        _mm512_mask_storeu_ps(dst + t0, (__mmask16)lanes_below(u->len - t0), v);
    }
}

/* In-register transpose of r[0..15] (rows) into columns. */
__attribute__((target("avx512f"))) static void transpose16(__m512 r[16])
{
    __m512 t[16], u[16], v[8], w[8];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {   /* u[4i + x]: column 4L + x of rows 4i .. 4i+3 in lane L */
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int x = 0; x < 4; ++x) {
        v[x] = _mm512_shuffle_f32x4(u[x], u[4 + x], 0x88);
        v[4 + x] = _mm512_shuffle_f32x4(u[x], u[4 + x], 0xdd);
        w[x] = _mm512_shuffle_f32x4(u[8 + x], u[12 + x], 0x88);
        w[4 + x] = _mm512_shuffle_f32x4(u[8 + x], u[12 + x], 0xdd);
    }
    for (int x = 0; x < 4; ++x) {
        r[x] = _mm512_shuffle_f32x4(v[x], w[x], 0x88);
        r[8 + x] = _mm512_shuffle_f32x4(v[x], w[x], 0xdd);
        r[4 + x] = _mm512_shuffle_f32x4(v[4 + x], w[4 + x], 0x88);
        r[12 + x] = _mm512_shuffle_f32x4(v[4 + x], w[4 + x], 0xdd);
    }
}

/* Transposed unfolding (stride 1) of unfolded rows [j, j + count), count <= 16,
 * over the runs of positions: d[(at + t)*NR + jj] for jj < 16 (0 past count). */
__attribute__((target("avx512f"))) static void unfold_transposed_v(const dn_matrix *m, int j, int count, const run *runs,
                                                                   int nruns, float *d)
{
    const float *plane[16];
    int ky[16], kx[16];
    for (int jj = 0; jj < count; ++jj) plane[jj] = unfold_row(m, j + jj, &ky[jj], &kx[jj]);
    for (int u = 0; u < nruns; ++u) {
        const float *src[16];
        int x0[16];
        for (int jj = 0; jj < count; ++jj) src[jj] = unfold_source(m, plane[jj], &runs[u], ky[jj], kx[jj], &x0[jj]);
        for (int t0 = 0; t0 < runs[u].len; t0 += 16) {
            __m512 r[16];
            for (int jj = 0; jj < 16; ++jj)
                r[jj] = jj < count && src[jj] ? load_lanes(src[jj], x0[jj] + t0, lanes_inside(t0, runs[u].len, x0[jj], m->w))
                                             : _mm512_setzero_ps();
            transpose16(r);
            int rows = runs[u].len - t0 < 16 ? runs[u].len - t0 : 16;
            float *dst = d + (size_t)(runs[u].at + t0) * NR;
            for (int t = 0; t < rows; ++t) _mm512_storeu_ps(dst + (size_t)t * NR, r[t]);
        }
    }
}

/* The transposed unfolding of padded images (PADDED_T: no bounds, rows wide
 * enough for whole vectors) for unfolded rows [j, j + count), count <= 16:
 * d[(at + t)*NR + jj] over the runs of positions. */
__attribute__((target("avx512f"))) static void padded_transposed_v(const dn_matrix *m, int j, int count,
                                                                   const run *runs, int nruns, float *d)
{
    size_t off[16];
    int taps = m->size * m->size;
    for (int jj = 0; jj < 16; ++jj) {
        int r = j + (jj < count ? jj : 0), t = r % taps;
        off[jj] = (size_t)(r / taps) * m->h * m->w + (size_t)(t / m->size) * m->w + t % m->size;
    }
    for (int u = 0; u < nruns; ++u) {
        const float *base = m->data + (size_t)runs[u].b * m->img + (size_t)runs[u].oy * m->w + runs[u].ox0;
        for (int t0 = 0; t0 < runs[u].len; t0 += 16) {
            __m512 r[16];
            for (int jj = 0; jj < 16; ++jj) r[jj] = _mm512_loadu_ps(base + off[jj] + t0);
            transpose16(r);
            int rows = runs[u].len - t0 < 16 ? runs[u].len - t0 : 16;
            float *dst = d + (size_t)(runs[u].at + t0) * NR;
            for (int t = 0; t < rows; ++t) _mm512_storeu_ps(dst + (size_t)t * NR, r[t]);
        }
    }
}

/* MR (8) rows of len floats (row stride ld) -> d[t*MR + i]: per 16 positions
 * an 8 x 16 register transpose into 8 vectors, each two positions' 8 rows. */
__attribute__((target("avx512f"))) static void pack_images_rows(const float *src, size_t ld, int len, float *d)
{
    /* lanes 0-3 and 4-7 of a's and b's 128-bit lane L, L+1 (for L = 0 and 2) */
    const __m512i lo = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
    const __m512i hi = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
    for (int t0 = 0; t0 < len; t0 += 16) {
        __mmask16 m = (__mmask16)lanes_below(len - t0);
        __m512 r[8], t[8], u[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm512_maskz_loadu_ps(m, src + (size_t)i * ld + t0);
        for (int i = 0; i < 4; ++i) {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (int h = 0; h < 2; ++h) {   /* u[4h + x]: rows 4h .. 4h+3 at position 4L + x in lane L */
            __m512d a = _mm512_castps_pd(t[4 * h]), b = _mm512_castps_pd(t[4 * h + 1]);
            __m512d c = _mm512_castps_pd(t[4 * h + 2]), e = _mm512_castps_pd(t[4 * h + 3]);
            u[4 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
            u[4 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
            u[4 * h + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, e));
            u[4 * h + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, e));
        }
        int n = len - t0 < 16 ? len - t0 : 16;
        for (int x = 0; x < 4; x += 2)
            for (int half = 0; half < 2; ++half) {     /* lanes L = 2*half, 2*half + 1 */
                __m512i idx = half ? hi : lo;
                __m512 A = _mm512_permutex2var_ps(u[x], idx, u[4 + x]);          /* position x     */
                __m512 B = _mm512_permutex2var_ps(u[x + 1], idx, u[5 + x]);      /* position x + 1 */
                /* o[k] holds positions 4*(2*half + k) + x and the next */
                __m512 o[2] = {_mm512_shuffle_f32x4(A, B, 0x44), _mm512_shuffle_f32x4(A, B, 0xEE)};
                for (int k = 0; k < 2; ++k) {
                    int pos = 4 * (2 * half + k) + x;
                    if (pos + 1 < n) _mm512_storeu_ps(d + (size_t)(t0 + pos) * MR, o[k]);
                    else if (pos < n) _mm512_mask_storeu_ps(d + (size_t)(t0 + pos) * MR, 0x00ff, o[k]);
                }
            }
    }
}

/* A rows [i0, i0+mc), depth [p0, p0+kc) -> panels of MR rows:
 * panel r holds element (i, p) at r*kc + p*MR + i, rows past mc are 0. */
static void pack_a(const dn_matrix *A, int i0, int mc, int p0, int kc, float *dst)
{
    for (int r = 0; r < mc; r += MR) {
        int rows = mc - r < MR ? mc - r : MR;
        float *d = dst + (size_t)r * kc;
        if (rows < MR) memset(d, 0, sizeof(float) * MR * kc);
        if (A->kind == DN_MAT_DENSE_T) {          /* element (i, p) at p*ld + i */
            for (int p = 0; p < kc; ++p) {
                const float *s = A->data + (size_t)(p0 + p) * A->ld + i0 + r;
                for (int i = 0; i < rows; ++i) d[p * MR + i] = s[i];
            }
        } else if (A->kind == DN_MAT_IMAGES) {    /* element (i, p = b*n + pos) at b*img + i*n + pos */
            for (int p = 0; p < kc;) {
                int b = (p0 + p) / A->n, pos = (p0 + p) % A->n, len = A->n - pos < kc - p ? A->n - pos : kc - p;
                if (rows == MR) {
                    pack_images_rows(A->data + (size_t)b * A->img + (size_t)(i0 + r) * A->n + pos, (size_t)A->n, len,
                                     d + (size_t)p * MR);
                    p += len;
                    continue;
                }
                for (int i = 0; i < rows; ++i) {
                    const float *s = A->data + (size_t)b * A->img + (size_t)(i0 + r + i) * A->n + pos;
                    for (int t = 0; t < len; ++t) d[(p + t) * MR + i] = s[t];
                }
                p += len;
            }
        } else {                                  /* DENSE: element (i, p) at i*ld + p */
            for (int i = 0; i < rows; ++i) {
                const float *s = A->data + (size_t)(i0 + r + i) * A->ld + p0;
                for (int p = 0; p < kc; ++p) d[p * MR + i] = s[p];
            }
        }
    }
}

/* B depth [p0, p0+kc), columns [j0, j0+nc) -> panels of NR columns:
 * panel q holds element (p, j) at q*kc + p*NR + j, columns past nc are 0. */
static void pack_b(const dn_matrix *B, int p0, int kc, int j0, int nc, float *dst)
{
    run runs[KC + NR + 1];
    int nruns = 0;
    if (B->kind == DN_MAT_IM2COL_T || B->kind == DN_MAT_PADDED_T) nruns = split_runs(p0, kc, B->out_h, B->out_w, runs);
    for (int q = 0; q < nc; q += NR) {
        int cols = nc - q < NR ? nc - q : NR;
        float *d = dst + (size_t)q * kc;
        if (cols < NR) memset(d, 0, sizeof(float) * NR * kc);
        switch (B->kind) {
        case DN_MAT_DENSE:      /* element (p, j) at p*ld + j */
            for (int p = 0; p < kc; ++p)
                memcpy(d + (size_t)p * NR, B->data + (size_t)(p0 + p) * B->ld + j0 + q, sizeof(float) * cols);
            break;
        case DN_MAT_DENSE_T:    /* element (p, j) at j*ld + p */
            for (int j = 0; j < cols; ++j) {
                const float *s = B->data + (size_t)(j0 + q + j) * B->ld + p0;
                for (int p = 0; p < kc; ++p) d[(size_t)p * NR + j] = s[p];
            }
            break;
        case DN_MAT_IM2COL: {   /* row p of the unfolded images, columns j0+q .. */
            run cr[NR];
            int ncr = split_runs(j0 + q, cols, B->out_h, B->out_w, cr);
            int ky, kx;
            const float *plane = unfold_row(B, p0, &ky, &kx);
            size_t hw = (size_t)B->h * B->w;
            for (int p = 0; p < kc; ++p) {
                if (p) {            /* next (ch, ky, kx) without dividing */
                    if (++kx == B->size) {
                        kx = 0;
                        if (++ky == B->size) ky = 0, plane += hw;
                    }
                }
                for (int u = 0; u < ncr; ++u) {
                    if (B->stride == 1) unfold_segment_v(B, plane, &cr[u], ky, kx, d + (size_t)p * NR + cr[u].at);
                    else unfold_segment(B, plane, &cr[u], ky, kx, d + (size_t)p * NR + cr[u].at, 1);
                }
            }
            break;
        }
        case DN_MAT_PADDED_T:   /* the same from padded images; jj past cols hold garbage, never read */
            for (int j = 0; j < cols; j += 16)
                padded_transposed_v(B, j0 + q + j, cols - j < 16 ? cols - j : 16, runs, nruns, d + j);
            break;
        case DN_MAT_IM2COL_T:   /* element (p, j) = unfolded row j, column p */
            if (B->stride == 1) {
                for (int j = 0; j < cols; j += 16)
                    unfold_transposed_v(B, j0 + q + j, cols - j < 16 ? cols - j : 16, runs, nruns, d + j);
                break;
            }
            for (int j = 0; j < cols; ++j) {
                int ky, kx;
                const float *plane = unfold_row(B, j0 + q + j, &ky, &kx);
                for (int u = 0; u < nruns; ++u)
                    unfold_segment(B, plane, &runs[u], ky, kx, d + (size_t)runs[u].at * NR + j, NR);
            }
            break;
        default: break;
        }
    }
}

/* ------------------------------------------------------------ kernel */

/* c (MR, NR) with row stride ldc = alpha * a_panel * b_panel + beta * c
 * (beta 0: c is not read). a: kc steps of MR, b: kc steps of NR. */
__attribute__((target("avx512f"))) static void kernel(int kc, const float *a, const float *b, float *c,
                                                      size_t ldc, float alpha, float beta)
{
    TILE_ACCUMULATORS;
    for (int p = 0; p < kc; ++p, a += MR, b += NR) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), b2 = _mm512_load_ps(b + 32);
        TILE_STEP(a, b0, b1, b2);
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#define STORE(i)                                                                                   \
    do {                                                                                           \
        float *r = c + (size_t)(i) * ldc;                                                          \
        if (beta == 0) {                                                                           \
            _mm512_storeu_ps(r, _mm512_mul_ps(va, c##i##0));                                       \
            _mm512_storeu_ps(r + 16, _mm512_mul_ps(va, c##i##1));                                  \
            _mm512_storeu_ps(r + 32, _mm512_mul_ps(va, c##i##2));                                  \
        } else {                                                                                   \
            _mm512_storeu_ps(r, _mm512_fmadd_ps(va, c##i##0, _mm512_mul_ps(vb, _mm512_loadu_ps(r)))); \
            _mm512_storeu_ps(r + 16, _mm512_fmadd_ps(va, c##i##1, _mm512_mul_ps(vb, _mm512_loadu_ps(r + 16)))); \
            _mm512_storeu_ps(r + 32, _mm512_fmadd_ps(va, c##i##2, _mm512_mul_ps(vb, _mm512_loadu_ps(r + 32)))); \
        }                                                                                          \
    } while (0)
    STORE(0); STORE(1); STORE(2); STORE(3); STORE(4); STORE(5); STORE(6); STORE(7);
#undef STORE
}

/* C's element (i, j) and how many columns from j on are contiguous with it. */
static float *c_at(const dn_matrix *C, int i, int j, int *run_len, size_t *ldc)
{
    if (C->kind == DN_MAT_IMAGES) {
        int b = j / C->n, pos = j % C->n;
        *run_len = C->n - pos;
        *ldc = (size_t)C->n;
        return (float *)C->data + (size_t)b * C->img + (size_t)i * C->n + pos;
    }
    *run_len = 1 << 30;
    *ldc = C->ld;
    return (float *)C->data + (size_t)i * C->ld + j;
}

/* The tile of C at (i, j) with rows x cols valid: straight into C when whole
 * and contiguous, otherwise through a buffer so nothing outside C is touched. */
static void tile(int kc, const float *a, const float *b, const dn_matrix *C, int i, int j, int rows, int cols,
                 float alpha, float beta)
{
    int contiguous;
    size_t ldc;
    float *c = c_at(C, i, j, &contiguous, &ldc);
    if (rows == MR && cols == NR && contiguous >= NR) {
        kernel(kc, a, b, c, ldc, alpha, beta);
        return;
    }
    float t[MR * NR] __attribute__((aligned(64)));
    kernel(kc, a, b, t, NR, 1, 0);
    for (int jj = 0; jj < cols; jj += contiguous) {
        c = c_at(C, i, j + jj, &contiguous, &ldc);
        if (contiguous > cols - jj) contiguous = cols - jj;
        for (int ii = 0; ii < rows; ++ii) {
            float *r = c + (size_t)ii * ldc;
            const float *s = t + ii * NR + jj;
            if (beta == 0) for (int x = 0; x < contiguous; ++x) r[x] = alpha * s[x];
            else for (int x = 0; x < contiguous; ++x) r[x] = alpha * s[x] + beta * r[x];
        }
    }
}

/* ------------------------------------------------------------ direct path
 * For stride-1 unfolded images written into images (convolution forward and
 * the stride-1 input delta), B is never packed. The images are copied, a few
 * at a time, into a zero-padded buffer (rows wide enough for whole vectors),
 * and the kernel loads its three vectors of 16 output positions straight from
 * the padded rows, writing C rows straight into the output images. N is
 * walked in segments: up to 16 positions of one output row; a tile is 3. */

/* A segment: len positions from ox0 of output row oy of image b; in pair mode
 * (rows of at most 8) lanes 0-7 hold row oy and lanes 8-15 row oy+1 when two. */
typedef struct { int b, oy, ox0, len, two; } segment;

#define SEG 16
#define PAD_FLOATS ((size_t)1 << 20)   /* padded images per group: about 4 MiB */

static int segments_per_row(int out_w) { return (out_w + SEG - 1) / SEG; }

/* The direct path pays when rows split into segments with little waste. */
static int direct_eligible(const dn_matrix *B, const dn_matrix *C, int N, int K)
{
    if (B->kind != DN_MAT_IM2COL || C->kind != DN_MAT_IMAGES || B->stride != 1 || B->size * B->size > MAX_TAPS ||
        K % (B->size * B->size))
        return 0;
    int n = B->out_h * B->out_w, padded = segments_per_row(B->out_w) * SEG;
    if (C->n != n || N % n) return 0;
    if (B->out_w <= SEG / 2) return B->out_w * 16 >= 7 * SEG;   /* pairs of rows of 7 or 8 */
    return (padded - B->out_w) * 8 <= padded;    /* at most 1/8 of the lanes idle */
}

/* Images as the direct kernel reads them: zero-padded, rows of pw floats. */
typedef struct {
    const float *data;
    size_t img, plane;      /* floats per image and per channel */
    int pw;                 /* padded row width */
    int out_h, out_w, size;
    int pairs;              /* rows of at most 8: a vector holds two output rows */
} padded_images;

/* The padded layout of B's images (channels x h x w each): padded by B->pad
 * on each side and on the right up to whole vectors; data is the group buffer. */
static padded_images padded_layout(const dn_matrix *B, int channels, float *data)
{
    int pairs = B->out_w <= SEG / 2;
    int ph = B->h + 2 * B->pad, pw = (pairs ? SEG / 2 : segments_per_row(B->out_w) * SEG) + B->size - 1;
    if (pw < B->w + 2 * B->pad) pw = B->w + 2 * B->pad;
    return (padded_images){data, (size_t)channels * ph * pw, (size_t)ph * pw, pw, B->out_h, B->out_w, B->size, pairs};
}

/* Copies images [b0, b0+nb) of B into p->data in the layout p. */
static void pad_images(const dn_matrix *B, const padded_images *p, int b0, int nb)
{
    int pw = p->pw, ph = (int)(p->plane / (size_t)pw), channels = (int)(p->img / p->plane);
    for (int b = 0; b < nb; ++b)
        for (int c = 0; c < channels; ++c) {
            const float *src = B->data + (size_t)(b0 + b) * B->img + (size_t)c * B->h * B->w;
            float *d = (float *)p->data + b * p->img + c * p->plane;
            memset(d, 0, sizeof(float) * pw * B->pad);
            for (int y = 0; y < B->h; ++y) {
                float *row = d + (size_t)(y + B->pad) * pw;
                memset(row, 0, sizeof(float) * B->pad);
                memcpy(row + B->pad, src + (size_t)y * B->w, sizeof(float) * B->w);
                memset(row + B->pad + B->w, 0, sizeof(float) * (pw - B->pad - B->w));
            }
            memset(d + (size_t)(B->h + B->pad) * pw, 0, sizeof(float) * pw * (ph - B->h - B->pad));
        }
}

/* Images per group (1 .. images) so that a group's padded copy stays near
 * `budget` floats; points p at this thread's buffer, grown to fit. 0 when the
 * buffer cannot be had. */
static int pad_group(pack_buffers *pb, padded_images *p, size_t budget, int images)
{
    int group = (int)(budget / p->img);
    if (group < 1) group = 1;
    if (group > images) group = images;
    if (!reserve_pad(pb, p->img * group + SEG)) return 0;
    p->data = pb->pad;
    return group;
}

/* Segments per image. */
static int image_segments(const padded_images *p)
{
    return p->pairs ? (p->out_h + 1) / 2 : p->out_h * segments_per_row(p->out_w);
}

/* Segment s of the padded images: (b*out_h + oy)*per_row + x, or in pair mode
 * b*(out_h+1)/2 + oy/2. */
static segment segment_at(const padded_images *p, long long s)
{
    int per_image = image_segments(p), b = (int)(s / per_image), k = (int)(s % per_image);
    if (p->pairs) return (segment){b, 2 * k, 0, p->out_w, 2 * k + 1 < p->out_h};
    int per_row = segments_per_row(p->out_w), ox0 = (k % per_row) * SEG;
    return (segment){b, k / per_row, ox0, p->out_w - ox0 < SEG ? p->out_w - ox0 : SEG, 0};
}

/* Address as an integer (may lie left of an array; only masked-in lanes are touched). */
static const float *shifted(const float *p, long long floats)
{
    return (const float *)((uintptr_t)p + (intptr_t)floats * (intptr_t)sizeof(float));
}

/* C rows i0 .. i0+rows-1 at the tile's segments = alpha * a_panel * unfold + beta * C;
 * c_img: C's images from the group's first. */
__attribute__((target("avx512f"), always_inline)) static inline void
direct_kernel_body(const padded_images *pi, const int *off, const segment *sg, int nseg, int p0, int kc, const float *a,
                   const dn_matrix *C, const float *c_img, int i0, int rows, float alpha, float beta, const int pairs)
{
    TILE_ACCUMULATORS;
    int taps = pi->size * pi->size, t = p0 % taps;
    const float *s0 = pi->data + (size_t)sg[0].b * pi->img + (size_t)sg[0].oy * pi->pw + sg[0].ox0;
    const float *s1 = nseg > 1 ? pi->data + (size_t)sg[1].b * pi->img + (size_t)sg[1].oy * pi->pw + sg[1].ox0 : s0;
    const float *s2 = nseg > 2 ? pi->data + (size_t)sg[2].b * pi->img + (size_t)sg[2].oy * pi->pw + sg[2].ox0 : s0;
    /* pair mode: lanes 8-15 from the next padded row (only where the segment has two rows) */
    const float *h0 = shifted(s0, pi->pw - SEG / 2), *h1 = shifted(s1, pi->pw - SEG / 2), *h2 = shifted(s2, pi->pw - SEG / 2);
    __mmask16 m0 = sg[0].two ? 0xff00 : 0, m1 = nseg > 1 && sg[1].two ? 0xff00 : 0, m2 = nseg > 2 && sg[2].two ? 0xff00 : 0;
    size_t ch = (size_t)(p0 / taps) * pi->plane;
    for (int p = 0; p < kc; ++p, a += MR) {
        size_t o = ch + (size_t)off[t];
        __m512 b0 = _mm512_loadu_ps(s0 + o), b1 = _mm512_loadu_ps(s1 + o), b2 = _mm512_loadu_ps(s2 + o);
        if (pairs) {
            b0 = _mm512_mask_loadu_ps(b0, m0, shifted(h0, (long long)o));
            b1 = _mm512_mask_loadu_ps(b1, m1, shifted(h1, (long long)o));
            b2 = _mm512_mask_loadu_ps(b2, m2, shifted(h2, (long long)o));
        }
        TILE_STEP(a, b0, b1, b2);
        if (++t == taps) t = 0, ch += pi->plane;
    }
    float tl[MR * 3 * SEG] __attribute__((aligned(64)));   /* the tile, row i at i*48 */
#define SAVE(i)                                  \
    _mm512_store_ps(tl + (i) * 48, c##i##0);      \
    _mm512_store_ps(tl + (i) * 48 + 16, c##i##1); \
    _mm512_store_ps(tl + (i) * 48 + 32, c##i##2)
    SAVE(0); SAVE(1); SAVE(2); SAVE(3); SAVE(4); SAVE(5); SAVE(6); SAVE(7);
#undef SAVE
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int v = 0; v < nseg; ++v) {
        /* lanes to row oy at col; pair mode: lanes 8.. to row oy+1 at col + out_w - 8 */
        __mmask16 m = (__mmask16)lanes_below(sg[v].len), mh = sg[v].two ? (__mmask16)(m << SEG / 2) : 0;
        float *col = (float *)c_img + (size_t)sg[v].b * C->img + (size_t)sg[v].oy * pi->out_w + sg[v].ox0;
        for (int i = 0; i < rows; ++i) {
            float *r = col + (size_t)(i0 + i) * C->n, *rh = (float *)shifted(r, pi->out_w - SEG / 2);
            __m512 y = _mm512_mul_ps(va, _mm512_load_ps(tl + i * 48 + v * SEG));
            if (beta != 0) {
                __m512 old = _mm512_maskz_loadu_ps(m, r);
                if (pairs) old = _mm512_mask_loadu_ps(old, mh, rh);
                y = _mm512_fmadd_ps(vb, old, y);
            }
            _mm512_mask_storeu_ps(r, m, y);
            if (pairs) _mm512_mask_storeu_ps(rh, mh, y);
        }
    }
}

__attribute__((target("avx512f"), noinline)) static void direct_kernel(const padded_images *pi, const int *off,
                                                                        const segment *sg, int nseg, int p0, int kc,
                                                                        const float *a, const dn_matrix *C,
                                                                        const float *c_img, int i0, int rows,
                                                                        float alpha, float beta)
{
    if (pi->pairs) direct_kernel_body(pi, off, sg, nseg, p0, kc, a, C, c_img, i0, rows, alpha, beta, 1);
    else direct_kernel_body(pi, off, sg, nseg, p0, kc, a, C, c_img, i0, rows, alpha, beta, 0);
}

/* One group of padded images: every K slice, A block and tile. */
static void direct_group(int M, int K, float alpha, const dn_matrix *A, const padded_images *pi, int nb, float beta,
                         const dn_matrix *C, const float *c_img, float *apack)
{
    int taps = pi->size * pi->size, off[MAX_TAPS];
    for (int t = 0; t < taps; ++t) off[t] = (t / pi->size) * pi->pw + t % pi->size;
    long long nsegs = (long long)nb * image_segments(pi);
    int slices = (K + KC_DIRECT - 1) / KC_DIRECT, step = (K + slices - 1) / slices;
    for (int p0 = 0; p0 < K; p0 += step) {
        int kc = K - p0 < step ? K - p0 : step;
        float b_scale = p0 == 0 ? beta : 1;
        for (int i0 = 0; i0 < M; i0 += MC) {
            int mc = M - i0 < MC ? M - i0 : MC;
            pack_a(A, i0, mc, p0, kc, apack);
            for (long long s0 = 0; s0 < nsegs; s0 += 3) {
                segment sg[3];
                int nseg = nsegs - s0 < 3 ? (int)(nsegs - s0) : 3;
                for (int v = 0; v < nseg; ++v) sg[v] = segment_at(pi, s0 + v);
                for (int r = 0; r < mc; r += MR)
                    direct_kernel(pi, off, sg, nseg, p0, kc, apack + (size_t)r * kc, C, c_img, i0 + r,
                                  mc - r < MR ? mc - r : MR, alpha, b_scale);
            }
        }
    }
}

/* C = alpha * A * unfold(B) + beta * C on the direct path, a group of images
 * at a time; 0 when the padding buffer cannot be had. */
static int gemm_direct(int M, int N, int K, float alpha, const dn_matrix *A, const dn_matrix *B, float beta,
                       const dn_matrix *C, pack_buffers *pb)
{
    int taps = B->size * B->size, images = N / (B->out_h * B->out_w);
    padded_images pi = padded_layout(B, K / taps, NULL);
    int group = pad_group(pb, &pi, PAD_FLOATS, images);
    if (!group) return 0;
    for (int b0 = 0; b0 < images; b0 += group) {
        int nb = images - b0 < group ? images - b0 : group;
        pad_images(B, &pi, b0, nb);
        direct_group(M, K, alpha, A, &pi, nb, beta, C, C->data + (size_t)b0 * C->img, pb->a);
    }
    return 1;
}

/* ------------------------------------------------------------ weight gradient
 * C (M, N) += alpha * delta (M, K) * unfold(B)^T (K, N) for stride-1 unfolded
 * images (the convolution's weight gradient) stays a packed GEMM, but over
 * groups of zero-padded images: packing the transposed unfolding is then
 * 16 x 16 register transposes of plain loads, with no bounds to check. */

#define WGRAD_PAD_FLOATS ((size_t)1 << 17)   /* about 512 KiB of padded images per group */

static int wgrad_eligible(const dn_matrix *A, const dn_matrix *B, const dn_matrix *C, int N, int K)
{
    if (A->kind != DN_MAT_IMAGES || B->kind != DN_MAT_IM2COL_T || C->kind != DN_MAT_DENSE || B->stride != 1 ||
        N % (B->size * B->size))
        return 0;
    int n = B->out_h * B->out_w;
    return A->n == n && K % n == 0;
}

static void gemm_packed(int M, int N, int K, float alpha, const dn_matrix *A, const dn_matrix *B, float beta,
                        const dn_matrix *C, pack_buffers *pb);

static int gemm_padded_wgrad(int M, int N, int K, float alpha, const dn_matrix *A, const dn_matrix *B, float beta,
                             const dn_matrix *C, pack_buffers *pb)
{
    int n = B->out_h * B->out_w, images = K / n;
    padded_images pi = padded_layout(B, N / (B->size * B->size), NULL);
    int group = pad_group(pb, &pi, WGRAD_PAD_FLOATS, images);
    if (!group) return 0;
    for (int b0 = 0; b0 < images; b0 += group) {
        int nb = images - b0 < group ? images - b0 : group;
        pad_images(B, &pi, b0, nb);
        dn_matrix pb_t = {.kind = DN_MAT_PADDED_T, .data = pi.data, .img = pi.img, .h = (int)(pi.plane / pi.pw),
                          .w = pi.pw, .size = B->size, .stride = 1, .pad = 0, .out_h = B->out_h, .out_w = B->out_w};
        dn_matrix a = *A;
        a.data = A->data + (size_t)b0 * A->img;
        gemm_packed(M, N, nb * n, alpha, &a, &pb_t, b0 == 0 ? beta : 1, C, pb);
    }
    return 1;
}

int dn_gemm_fast_available(void)
{
    static int known = -1;   /* read and written atomically: any thread may ask first */
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (k < 0) {
        __builtin_cpu_init();
        k = __builtin_cpu_supports("avx512f") ? 1 : 0;
        __atomic_store_n(&known, k, __ATOMIC_RELAXED);
    }
    return k;
}

int dn_gemm_matrix(int M, int N, int K, float alpha, const dn_matrix *A, const dn_matrix *B, float beta,
                   const dn_matrix *C)
{
    if (!dn_gemm_fast_enabled || !dn_gemm_fast_available() || K <= 0) return 0;
    pack_buffers *pb = thread_buffers();
    if (!pb) return 0;
    if (dn_gemm_direct_enabled && direct_eligible(B, C, N, K) &&
        gemm_direct(M, N, K, alpha, A, B, beta, C, pb))
        return 1;
    if (dn_gemm_direct_enabled && wgrad_eligible(A, B, C, N, K) && gemm_padded_wgrad(M, N, K, alpha, A, B, beta, C, pb))
        return 1;
    gemm_packed(M, N, K, alpha, A, B, beta, C, pb);
    return 1;
}

/* The packed GEMM: blocks of B and A packed, the register kernel over tiles. */
static void gemm_packed(int M, int N, int K, float alpha, const dn_matrix *A, const dn_matrix *B, float beta,
                        const dn_matrix *C, pack_buffers *pb)
{
    for (int j0 = 0; j0 < N; j0 += NC) {
        int nc = N - j0 < NC ? N - j0 : NC;
        for (int p0 = 0; p0 < K; p0 += KC) {
            int kc = K - p0 < KC ? K - p0 : KC;
            float b_scale = p0 == 0 ? beta : 1;   /* later slices add to C */
            pack_b(B, p0, kc, j0, nc, pb->b);
            for (int i0 = 0; i0 < M; i0 += MC) {
                int mc = M - i0 < MC ? M - i0 : MC;
                pack_a(A, i0, mc, p0, kc, pb->a);
                for (int r = 0; r < mc; r += MR)
                    for (int q = 0; q < nc; q += NR)
                        tile(kc, pb->a + (size_t)r * kc, pb->b + (size_t)q * kc, C, i0 + r, j0 + q,
                             mc - r < MR ? mc - r : MR, nc - q < NR ? nc - q : NR, alpha, b_scale);
            }
        }
    }
}

int dn_gemm_fast(int TA, int TB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    dn_matrix a = {.kind = TA ? DN_MAT_DENSE_T : DN_MAT_DENSE, .data = A, .ld = (size_t)lda};
    dn_matrix b = {.kind = TB ? DN_MAT_DENSE_T : DN_MAT_DENSE, .data = B, .ld = (size_t)ldb};
    dn_matrix c = {.kind = DN_MAT_DENSE, .data = C, .ld = (size_t)ldc};
    return dn_gemm_matrix(M, N, K, alpha, &a, &b, beta, &c);
}

#else   /* not x86-64 with GCC/Clang: no fast path */

int dn_gemm_direct_enabled = 1;

int dn_gemm_fast_available(void) { return 0; }

int dn_gemm_matrix(int M, int N, int K, float alpha, const dn_matrix *A, const dn_matrix *B, float beta,
                   const dn_matrix *C)
{
    (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)B, (void)beta, (void)C;
    return 0;
}

int dn_gemm_fast(int TA, int TB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    (void)TA, (void)TB, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb;
    (void)beta, (void)C, (void)ldc;
    return 0;
}

#endif
