/*
 * conv_depthwise.c — direct kernels for depthwise convolutions
 * (groups == channels == filters: one size x size filter per channel), where
 * im2col + a GEMM with one row is the wrong tool.
 *
 *   in (batch, c, h, w)   weights (c, size, size)   out (batch, c, out_h, out_w)
 *
 * Each (image, channel) plane is first copied into zero-padded local planes,
 * split into stride x stride phases (phase (ry, rx) holds the padded input at
 * rows ry, ry + stride, ... and columns rx, rx + stride, ...). Every tap then
 * reads one phase at a fixed offset, and all planes share one row pitch qw, so
 * the kernels are branch-free loops over the flattened plane in blocks of
 * DW_BLOCK floats (the columns past out_w in each row are computed and dropped).
 * The input delta is the transposed operation: the same loops over the
 * zero-padded output delta with the flipped kernel of each phase.
 *
 * Every function handles channels [c0, c1) only, so workers can split the
 * channels without sharing any output (results do not depend on the split).
 */
#include "internal.h"
#include <string.h>

#define DW_BLOCK 16   /* floats per vector block of the flattened loops */

/* Local plane geometry (all counts in floats). */
typedef struct {
    int s, k;          /* stride; taps per phase along one axis, ceil(size / s) */
    int qh, qw;        /* phase plane rows and pitch: out_h + k - 1, out_w + k - 1 */
    size_t n, n_pad;   /* flattened output (out_h * qw) and its rounding up to DW_BLOCK */
    size_t g_pad;      /* a flattened phase plane (qh * qw) rounded up */
    size_t m;          /* largest tap offset, (k - 1) * qw + k - 1: the delta buffer's front margin */
    size_t plane;      /* floats per phase plane: every read of the kernels lies inside */
    size_t dlen;       /* floats of the delta (or forward accumulator) buffer */
} dw_geom;

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

static dw_geom geom(const dn_depthwise *p)
{
    dw_geom g;
    g.s = p->stride;
    g.k = (p->size + p->stride - 1) / p->stride;
    g.qh = p->out_h + g.k - 1;
    g.qw = p->out_w + g.k - 1;
    g.n = (size_t)p->out_h * g.qw;
    g.n_pad = round_up(g.n, DW_BLOCK);
    g.g_pad = round_up((size_t)g.qh * g.qw, DW_BLOCK);
    g.m = (size_t)(g.k - 1) * g.qw + (size_t)(g.k - 1);
    size_t reach = g.m + g.n_pad;   /* forward and weight-gradient reads: offset + n_pad */
    g.plane = round_up(reach > g.g_pad ? reach : g.g_pad, DW_BLOCK);
    g.dlen = round_up(g.m + g.g_pad, DW_BLOCK);
    return g;
}

/* Scratch: phase planes q (s*s*plane) | delta or accumulator buffer db (dlen) |
 * row buffer rb (s*qw, rounded up) | weight-gradient partials (c, size*size, DW_BLOCK). */
typedef struct { float *q, *db, *rb, *part; } dw_scratch;

static dw_scratch scratch_parts(const dw_geom *g, float *tmp)
{
    dw_scratch t;
    t.q = tmp;
    t.db = t.q + (size_t)g->s * g->s * g->plane;
    t.rb = t.db + g->dlen;
    t.part = t.rb + round_up((size_t)g->s * g->qw, DW_BLOCK);
    return t;
}

size_t dn_depthwise_scratch(const dn_depthwise *p)
{
    dw_geom g = geom(p);
    size_t planes = (size_t)g.s * g.s * g.plane + g.dlen + round_up((size_t)g.s * g.qw, DW_BLOCK);
    return planes + (size_t)p->c * p->size * p->size * DW_BLOCK;
}

/* One block: DW_BLOCK floats as a GCC/Clang vector (AVX-512 register with
 * -march=native, split into narrower ones otherwise); vload/vstore are unaligned. */
typedef float dw_vec __attribute__((vector_size(DW_BLOCK * sizeof(float))));
typedef float dw_uvec __attribute__((vector_size(DW_BLOCK * sizeof(float)), aligned(sizeof(float))));

/* (macros: a function returning a 64-byte vector warns of ABI changes without AVX-512) */
#define vload(p) (*(const dw_uvec *)(p))
#define vstore(p, v) (*(dw_uvec *)(p) = (v))

typedef float dw_uvec8 __attribute__((vector_size(8 * sizeof(float)), aligned(sizeof(float))));
typedef float dw_uvec4 __attribute__((vector_size(4 * sizeof(float)), aligned(sizeof(float))));

/* d[i] = s[i], i < n: short rows, copied without a library call (a plain loop
 * would become one). */
static inline void copy_floats(float *restrict d, const float *restrict s, int n)
{
    int i = 0;
    for (; i + DW_BLOCK <= n; i += DW_BLOCK) vstore(d + i, vload(s + i));
    if (n - i >= 8) *(dw_uvec8 *)(d + i) = *(const dw_uvec8 *)(s + i), i += 8;
    if (n - i >= 4) *(dw_uvec4 *)(d + i) = *(const dw_uvec4 *)(s + i), i += 4;
    if (n - i >= 2) d[i] = s[i], d[i + 1] = s[i + 1], i += 2;
    if (n - i >= 1) d[i] = s[i];
}

/* Taps of phase r along one axis: ky = r, r + s, ... below size. */
static int phase_taps(int size, int s, int r) { return r < size ? (size - r + s - 1) / s : 0; }

/* Input rows [0, *rows) and columns [0, *cols) that land inside the phase planes
 * (padded row y + pad below s*qh, padded column x + pad below s*qw). */
static void used_input(const dn_depthwise *p, const dw_geom *g, int *rows, int *cols)
{
    int r = g->s * g->qh - p->pad, c = g->s * g->qw - p->pad;
    *rows = r < 0 ? 0 : (r < p->h ? r : p->h);
    *cols = c < 0 ? 0 : (c < p->w ? c : p->w);
}

/* Eight (even, odd) float pairs as 64-bit lanes: the low half of a lane is the even float. */
typedef unsigned long long dw_u64x8 __attribute__((vector_size(64)));
typedef unsigned dw_u32x8 __attribute__((vector_size(32)));

/* a[i] = s[2i], b[i] = s[2i + 1], i < 8. */
static inline void deinterleave8(const float *s, float *a, float *b)
{
    dw_u64x8 x;
    memcpy(&x, s, sizeof x);
    dw_u32x8 lo = __builtin_convertvector(x, dw_u32x8), hi = __builtin_convertvector(x >> 32, dw_u32x8);
    memcpy(a, &lo, sizeof lo);
    memcpy(b, &hi, sizeof hi);
}

/* d[2i] += a[i], d[2i + 1] += b[i], i < 8. */
static inline void interleave_add8(float *d, const float *a, const float *b)
{
    dw_u32x8 lo, hi;
    memcpy(&lo, a, sizeof lo);
    memcpy(&hi, b, sizeof hi);
    dw_u64x8 x = __builtin_convertvector(lo, dw_u64x8) | __builtin_convertvector(hi, dw_u64x8) << 32;
    dw_vec v;
    memcpy(&v, &x, sizeof v);
    vstore(d, vload(d) + v);
}

/* Stride 2: input row pairs (x = 2i, 2i + 1) go to phase columns (j = i + ja, i + jb)
 * of the phases (pa, 1 - pa) of even input columns; cols: the row's used columns. */
typedef struct { int pa, ja, jb, pairs, odd; } dw_pairs;

static dw_pairs row_pairs(const dn_depthwise *p, int cols)
{
    dw_pairs r = {p->pad % 2, p->pad / 2, (p->pad + 1) / 2, cols / 2, cols % 2};
    return r;
}

/* One input row, read from `from` into row yy of phase planes (ry, *), or
 * (from NULL) those phase rows added into `to`. */
static void pairs_row(const dw_geom *g, const dw_pairs *r, const float *from, float *to, float *q, int ry, int yy)
{
    float *e = q + (size_t)ry * 2 * g->plane + (size_t)yy * g->qw;
    float *a = e + (size_t)r->pa * g->plane + r->ja, *b = e + (size_t)(1 - r->pa) * g->plane + r->jb;
    int n = r->pairs, i = 0;
    if (!from) {
        for (; i + 8 <= n; i += 8) interleave_add8(to + 2 * i, a + i, b + i);
        for (; i < n; ++i) to[2 * i] += a[i], to[2 * i + 1] += b[i];
        if (r->odd) to[2 * n] += a[n];
    } else {
        for (; i + 8 <= n; i += 8) deinterleave8(from + 2 * i, a + i, b + i);
        for (; i < n; ++i) a[i] = from[2 * i], b[i] = from[2 * i + 1];
        if (r->odd) a[n] = from[2 * n];
    }
}

/* Input row y, any stride, as pairs_row (from, or from NULL: to), through the
 * padded row buffer rb (s*qw floats whose padding columns are zero). */
static void strided_row(const dn_depthwise *p, const dw_geom *g, const float *from, float *to, int cols, float *q,
                        int y, float *rb)
{
    int s = g->s, ry = (y + p->pad) % s, yy = (y + p->pad) / s, qw = g->qw;
    if (from) copy_floats(rb + p->pad, from, cols);
    for (int rx = 0; rx < s; ++rx) {
        float *pl = q + (size_t)(ry * s + rx) * g->plane + (size_t)yy * qw;
        if (from)
            for (int j = 0; j < qw; ++j) pl[j] = rb[s * j + rx];
        else
            for (int j = 0; j < qw; ++j) rb[s * j + rx] = pl[j];
    }
    if (!from)
        for (int x = 0; x < cols; ++x) to[x] += rb[p->pad + x];
}

/* q: stride*stride phase planes of `plane` floats, each qh x qw (pitch qw) then
 * zeros: q[ry][rx][yy][j] = src[s*yy + ry - pad][s*j + rx - pad], 0 outside (h, w).
 * rb: s*qw floats of row buffer (strides above 2). */
static void load_phases(const dn_depthwise *p, const dw_geom *g, const float *src, float *q, float *rb)
{
    int rows, cols, s = g->s;
    used_input(p, g, &rows, &cols);
    memset(q, 0, (size_t)s * s * g->plane * sizeof(float));
    dw_pairs r = row_pairs(p, cols);
    if (s > 2) memset(rb, 0, (size_t)s * g->qw * sizeof(float));   /* its padding columns stay zero */
    for (int y = 0; y < rows; ++y) {
        const float *row = src + (size_t)y * p->w;
        if (s == 1) copy_floats(q + (size_t)(y + p->pad) * g->qw + p->pad, row, cols);
        else if (s == 2) pairs_row(g, &r, row, NULL, q, (y + p->pad) % 2, (y + p->pad) / 2);
        else strided_row(p, g, row, NULL, cols, q, y, rb);
    }
}

/* in_delta plane dst (h, w) += the phase planes in q (the layout of load_phases). */
static void store_phases(const dn_depthwise *p, const dw_geom *g, float *q, float *dst, float *rb)
{
    int rows, cols, s = g->s;
    used_input(p, g, &rows, &cols);
    dw_pairs r = row_pairs(p, cols);
    for (int y = 0; y < rows; ++y) {
        float *d = dst + (size_t)y * p->w;
        if (s == 1) {
            const float *row = q + (size_t)(y + p->pad) * g->qw + p->pad;
            for (int x = 0; x < cols; ++x) d[x] += row[x];
        } else if (s == 2) pairs_row(g, &r, NULL, d, q, (y + p->pad) % 2, (y + p->pad) / 2);
        else strided_row(p, g, NULL, d, cols, q, y, rb);
    }
}

/* buf (dlen): zeros, then the delta plane (out_h, out_w) from m on at pitch
 * qw, the columns past out_w zero. */
static void load_delta(const dn_depthwise *p, const dw_geom *g, const float *delta, float *buf)
{
    memset(buf, 0, g->dlen * sizeof(float));
    for (int oy = 0; oy < p->out_h; ++oy)
        copy_floats(buf + g->m + (size_t)oy * g->qw, delta + (size_t)oy * p->out_w, p->out_w);
}

/* out[i] (= or +=) sum over my < kh, mx < kw of w[my*wy + mx*wx] * src[i + my*pitch + mx],
 * for i < n (a multiple of DW_BLOCK): two blocks of sums stay in registers across the taps. */
static void correlate(float *restrict out, const float *restrict src, size_t pitch, const float *w, ptrdiff_t wy,
                      ptrdiff_t wx, int kh, int kw, size_t n, int add)
{
    size_t i = 0;
    for (; i + 2 * DW_BLOCK <= n; i += 2 * DW_BLOCK) {
        dw_vec v0 = {0}, v1 = {0};
        if (add) v0 = vload(out + i), v1 = vload(out + i + DW_BLOCK);
        for (int my = 0; my < kh; ++my) {
            const float *s = src + i + (size_t)my * pitch;
            for (int mx = 0; mx < kw; ++mx) {
                float wt = w[my * wy + mx * wx];
                v0 += wt * vload(s + mx);
                v1 += wt * vload(s + mx + DW_BLOCK);
            }
        }
        vstore(out + i, v0);
        vstore(out + i + DW_BLOCK, v1);
    }
    if (i == n) return;
    dw_vec v = {0};
    if (add) v = vload(out + i);
    for (int my = 0; my < kh; ++my)
        for (int mx = 0; mx < kw; ++mx) v += w[my * wy + mx * wx] * vload(src + i + (size_t)my * pitch + mx);
    vstore(out + i, v);
}

/* part[DW_BLOCK] += lane-wise partial sums of a[i] * b[i], i < n (a multiple of DW_BLOCK). */
static void dot_lanes(float *restrict part, const float *restrict a, const float *restrict b, size_t n)
{
    dw_vec v0 = vload(part), v1 = {0};
    size_t i = 0;
    for (; i + 2 * DW_BLOCK <= n; i += 2 * DW_BLOCK) {
        v0 += vload(a + i) * vload(b + i);
        v1 += vload(a + i + DW_BLOCK) * vload(b + i + DW_BLOCK);
    }
    if (i < n) v0 += vload(a + i) * vload(b + i);
    vstore(part, v0 + v1);
}

/* tmp: dn_depthwise_scratch(p) floats. */
void dn_depthwise_forward(const dn_depthwise *p, const float *in, const float *wts, float *out, float *tmp,
                          int c0, int c1)
{
    dw_geom g = geom(p);
    dw_scratch t = scratch_parts(&g, tmp);
    float *q = t.q, *acc = t.db, *rb = t.rb;
    size_t in_hw = (size_t)p->h * p->w, out_hw = (size_t)p->out_h * p->out_w;
    for (int b = 0; b < p->batch; ++b)
        for (int ch = c0; ch < c1; ++ch) {
            load_phases(p, &g, in + ((size_t)b * p->c + ch) * in_hw, q, rb);
            const float *wc = wts + (size_t)ch * p->size * p->size;
            for (int ry = 0; ry < g.s; ++ry)
                for (int rx = 0; rx < g.s; ++rx) {
                    int kh = phase_taps(p->size, g.s, ry), kw = phase_taps(p->size, g.s, rx);
                    if (!kh || !kw) continue;
                    correlate(acc, q + (size_t)(ry * g.s + rx) * g.plane, (size_t)g.qw, wc + ry * p->size + rx,
                              (ptrdiff_t)g.s * p->size, g.s, kh, kw, g.n_pad, ry || rx);
                }
            float *dst = out + ((size_t)b * p->c + ch) * out_hw;
            for (int oy = 0; oy < p->out_h; ++oy)
                copy_floats(dst + (size_t)oy * p->out_w, acc + (size_t)oy * g.qw, p->out_w);
        }
}

/* part (size*size, DW_BLOCK) += lane partial sums of the weight gradient of one plane:
 * tap (ky, kx) = (s*my + ry, s*mx + rx) reads phase (ry, rx) at offset my*qw + mx. */
static void weight_partials(const dn_depthwise *p, const dw_geom *g, const float *q, const float *d, float *part)
{
    for (int ry = 0; ry < g->s; ++ry)
        for (int rx = 0; rx < g->s; ++rx) {
            const float *pl = q + (size_t)(ry * g->s + rx) * g->plane;
            int kh = phase_taps(p->size, g->s, ry), kw = phase_taps(p->size, g->s, rx);
            for (int my = 0; my < kh; ++my)
                for (int mx = 0; mx < kw; ++mx) {
                    int t = (g->s * my + ry) * p->size + g->s * mx + rx;
                    dot_lanes(part + (size_t)t * DW_BLOCK, d, pl + (size_t)my * g->qw + (size_t)mx, g->n_pad);
                }
        }
}

/* q: the input-delta phase planes of one plane, from the delta buffer db (load_delta):
 * phase (ry, rx) at i is the sum over its taps of w * delta at i - (my*qw + mx). */
static void input_delta_phases(const dn_depthwise *p, const dw_geom *g, const float *db, const float *wc, float *q)
{
    for (int ry = 0; ry < g->s; ++ry)
        for (int rx = 0; rx < g->s; ++rx) {
            float *pl = q + (size_t)(ry * g->s + rx) * g->plane;
            int kh = phase_taps(p->size, g->s, ry), kw = phase_taps(p->size, g->s, rx);
            if (!kh || !kw) {
                memset(pl, 0, g->g_pad * sizeof(float));
                continue;
            }
            ptrdiff_t wy = (ptrdiff_t)g->s * p->size, wx = g->s;
            const float *w_last = wc + ry * p->size + rx + (kh - 1) * wy + (kw - 1) * wx;   /* flipped kernel */
            const float *src = db + g->m - ((size_t)(kh - 1) * g->qw + (size_t)(kw - 1));
            correlate(pl, src, (size_t)g->qw, w_last, -wy, -wx, kh, kw, g->g_pad, 0);
        }
}

/* weight_updates (c, size, size) += sum over the batch of delta x input;
 * in_delta (when not NULL) += the input gradient. tmp: dn_depthwise_scratch(p) floats. */
void dn_depthwise_backward(const dn_depthwise *p, const float *in, const float *wts, const float *delta,
                           float *weight_updates, float *in_delta, float *tmp, int c0, int c1)
{
    dw_geom g = geom(p);
    int taps = p->size * p->size;
    dw_scratch t = scratch_parts(&g, tmp);
    size_t in_hw = (size_t)p->h * p->w, out_hw = (size_t)p->out_h * p->out_w, per_ch = (size_t)taps * DW_BLOCK;
    memset(t.part, 0, (size_t)(c1 - c0) * per_ch * sizeof(float));
    for (int b = 0; b < p->batch; ++b)   /* images outer: the planes are read in memory order */
        for (int ch = c0; ch < c1; ++ch) {
            size_t plane_in = ((size_t)b * p->c + ch) * in_hw;
            load_phases(p, &g, in + plane_in, t.q, t.rb);
            load_delta(p, &g, delta + ((size_t)b * p->c + ch) * out_hw, t.db);
            weight_partials(p, &g, t.q, t.db + g.m, t.part + (size_t)(ch - c0) * per_ch);
            if (!in_delta) continue;
            input_delta_phases(p, &g, t.db, wts + (size_t)ch * taps, t.q);
            store_phases(p, &g, t.q, in_delta + plane_in, t.rb);
        }
    for (int ch = c0; ch < c1; ++ch)
        for (int k = 0; k < taps; ++k)
            weight_updates[(size_t)ch * taps + k] += dn_sum(t.part + (size_t)(ch - c0) * per_ch + (size_t)k * DW_BLOCK, DW_BLOCK);
}
