/*
 * test_kernels.c — the numeric kernels against naive double-precision loops:
 *   - dn_gemm (OpenBLAS when built with it) and dn_gemm_ref, all four
 *     transpose combinations, odd sizes, alpha/beta, padded lda/ldb/ldc;
 *   - dn_im2col against a direct unfolding, im2col+GEMM against a direct
 *     convolution, and col2im as the adjoint of im2col;
 *   - the convolutional and connected layers' forward passes against direct
 *     loops (groups, stride, padding, 1x1 stride 2);
 *   - the chunked convolution (forward and backward, with and without batch
 *     norm) against the per-image reference path, and the fused batch norm
 *     (bn_fast.c) against the reference in blas.c.
 */
#include "darknet.h"
#include "internal.h"
#include "testlib.h"

static uint64_t rng = 12345;
static float urand(void) { return dn_rand_uniform(&rng, -1, 1); }

/* ------------------------------------------------------------ gemm */

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);

#define SENTINEL 12345.f

/* Returns the number of wrong elements of C (including touched padding). */
static int check_gemm(gemm_fn fn, const char *name, int TA, int TB, int M, int N, int K, float alpha, float beta,
                      int pad, int nan_c)
{
    int lda = (TA ? M : K) + pad, ldb = (TB ? K : N) + pad, ldc = N + pad;
    int arows = TA ? K : M, brows = TB ? N : K;
    float *A = malloc(sizeof(float) * ((size_t)arows * lda + 1));
    float *B = malloc(sizeof(float) * ((size_t)brows * ldb + 1));
    float *C = malloc(sizeof(float) * ((size_t)M * ldc + 1));
    float *C0 = malloc(sizeof(float) * ((size_t)M * ldc + 1));
    for (int i = 0; i < arows * lda; ++i) A[i] = (i % lda) < (TA ? M : K) ? urand() : SENTINEL;
    for (int i = 0; i < brows * ldb; ++i) B[i] = (i % ldb) < (TB ? K : N) ? urand() : SENTINEL;
    for (int i = 0; i < M * ldc; ++i) C0[i] = (i % ldc) < N ? (nan_c ? NAN : urand()) : SENTINEL;
    dn_copy(C, C0, (size_t)M * ldc);
    fn(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    int bad = 0;
    double worst = 0;
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < ldc; ++j) {
            float got = C[(size_t)i * ldc + j];
            if (j >= N) { bad += got != SENTINEL; continue; }
            double s = 0, abs_s = 0;
            for (int k = 0; k < K; ++k) {
                double a = TA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = TB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
                abs_s += fabs(a * b);
            }
            double c0 = beta == 0 ? 0 : C0[(size_t)i * ldc + j];
            double want = alpha * s + beta * c0;
            double bound = 1e-6 * (K + 4) * (fabs(alpha) * abs_s + fabs(beta * c0)) + 1e-30;
            double err = fabs(got - want);
            if (!(err <= bound)) {
                ++bad;
                if (err / bound > worst) worst = err / bound;
            }
        }
    CHECK(bad == 0, "%s TA=%d TB=%d M=%d N=%d K=%d alpha=%g beta=%g pad=%d%s: %d wrong (worst %.3g x bound)", name, TA,
          TB, M, N, K, alpha, beta, pad, nan_c ? " (C was NaN)" : "", bad, worst);
    free(A); free(B); free(C); free(C0);
    return bad;
}

/* dn_gemm with the AVX-512 GEMM switched off (OpenBLAS or the portable loops). */
static void gemm_blas(int TA, int TB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc)
{
    dn_gemm_fast_enabled = 0;
    dn_gemm(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    dn_gemm_fast_enabled = 1;
}

static void test_gemm(void)
{
    static const int sizes[][3] = {
        {1, 1, 1}, {1, 7, 3}, {5, 1, 4}, {3, 5, 7}, {8, 8, 8}, {17, 13, 11}, {33, 65, 31}, {64, 3, 129},
        {2, 100, 27}, {31, 2, 64}, {16, 49, 9},
    };
    static const float alphas[] = {1, -.75f, 2.5f}, betas[] = {0, 1, .5f};
    struct { gemm_fn fn; const char *name; } fns[] = {{dn_gemm, "dn_gemm"}, {dn_gemm_ref, "dn_gemm_ref"},
                                                       {dn_gemm_parallel, "dn_gemm_parallel"}, {gemm_blas, "dn_gemm (no AVX-512 path)"}};
    /* larger than every block of the AVX-512 GEMM (KC 256, NC 480, MC 128), and
     * large enough for dn_gemm_parallel to split */
    static const int big[][3] = {{130, 500, 300}, {200, 97, 520}, {9, 1000, 257}};
    for (int f = 0; f < 4; ++f)
        for (int TA = 0; TA < 2; ++TA)
            for (int TB = 0; TB < 2; ++TB)
                for (size_t s = 0; s < sizeof big / sizeof *big; ++s)
                    check_gemm(fns[f].fn, fns[f].name, TA, TB, big[s][0], big[s][1], big[s][2], -.75f, .5f, 3, 0);
    for (int f = 0; f < 2; ++f)
        for (int TA = 0; TA < 2; ++TA)
            for (int TB = 0; TB < 2; ++TB)
                for (size_t s = 0; s < sizeof sizes / sizeof *sizes; ++s)
                    for (int ai = 0; ai < 3; ++ai)
                        for (int bi = 0; bi < 3; ++bi)
                            for (int pad = 0; pad <= 3; pad += 3)
                                check_gemm(fns[f].fn, fns[f].name, TA, TB, sizes[s][0], sizes[s][1], sizes[s][2],
                                           alphas[ai], betas[bi], pad, 0);
    /* beta = 0 must overwrite C, even garbage (BLAS semantics) */
    for (int f = 0; f < 2; ++f)
        for (int TA = 0; TA < 2; ++TA)
            for (int TB = 0; TB < 2; ++TB) check_gemm(fns[f].fn, fns[f].name, TA, TB, 6, 9, 5, 1, 0, 2, 1);
    /* K = 0: C = beta*C */
    for (int f = 0; f < 2; ++f) {
        check_gemm(fns[f].fn, fns[f].name, 0, 0, 3, 4, 0, 1, .5f, 1, 0);
        check_gemm(fns[f].fn, fns[f].name, 1, 1, 3, 4, 0, 1, 0, 0, 0);
    }
    /* M = 0 or N = 0: nothing is touched */
    float C[4] = {1, 2, 3, 4}, A[4] = {1, 1, 1, 1};
    dn_gemm(0, 0, 0, 2, 2, 1, A, 2, A, 2, 0, C, 2);
    dn_gemm(0, 0, 2, 0, 2, 1, A, 2, A, 2, 0, C, 2);
    CHECK(C[0] == 1 && C[1] == 2 && C[2] == 3 && C[3] == 4, "dn_gemm with M or N = 0 wrote to C");
    /* the two implementations agree on a layer-sized product */
    int M = 32, N = 196, K = 75;
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    float *c1 = malloc(sizeof(float) * M * N), *c2 = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; ++i) a[i] = urand();
    for (int i = 0; i < K * N; ++i) b[i] = urand();
    dn_gemm(0, 0, M, N, K, 1, a, K, b, N, 0, c1, N);
    dn_gemm_ref(0, 0, M, N, K, 1, a, K, b, N, 0, c2, N);
    double maxd = 0;
    for (int i = 0; i < M * N; ++i) maxd = fmax(maxd, fabs(c1[i] - c2[i]));
    CHECK(maxd < 1e-4, "dn_gemm and dn_gemm_ref differ by %g", maxd);
    free(a); free(b); free(c1); free(c2);
}

/* ------------------------------------------------------------ im2col */

typedef struct { int c, h, w, k, stride, pad; } conv_shape;

static const conv_shape shapes[] = {
    {1, 5, 5, 3, 1, 1}, {3, 5, 5, 3, 1, 0}, {2, 7, 6, 3, 2, 1}, {2, 6, 7, 5, 1, 2}, {3, 8, 8, 5, 2, 0},
    {4, 4, 3, 1, 1, 0}, {3, 5, 5, 1, 2, 0}, {2, 3, 4, 1, 1, 1}, {2, 3, 3, 2, 1, 1}, {1, 9, 7, 3, 3, 1},
    {2, 5, 6, 2, 3, 0}, {1, 4, 4, 4, 1, 3}, {3, 1, 1, 3, 1, 1}, {5, 2, 9, 3, 2, 1},
};

static int out_size(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

static float im_at(const float *im, int h, int w, int ch, int y, int x)
{
    return (y < 0 || y >= h || x < 0 || x >= w) ? 0 : im[((size_t)ch * h + y) * w + x];
}

static void test_im2col(void)
{
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; ++s) {
        conv_shape p = shapes[s];
        int oh = out_size(p.h, p.k, p.stride, p.pad), ow = out_size(p.w, p.k, p.stride, p.pad);
        size_t nim = (size_t)p.c * p.h * p.w, rows = (size_t)p.c * p.k * p.k, ncol = rows * oh * ow;
        float *im = malloc(nim * sizeof(float)), *col = malloc(ncol * sizeof(float));
        float *y = malloc(ncol * sizeof(float)), *back = malloc(nim * sizeof(float)), *z = malloc(nim * sizeof(float));
        for (size_t i = 0; i < nim; ++i) im[i] = urand();
        for (size_t i = 0; i < ncol; ++i) col[i] = NAN;   /* every cell must be written */
        dn_im2col(im, p.c, p.h, p.w, p.k, p.stride, p.pad, oh, ow, col);
        int bad = 0;
        for (int ch = 0; ch < p.c; ++ch)
            for (int ky = 0; ky < p.k; ++ky)
                for (int kx = 0; kx < p.k; ++kx)
                    for (int oy = 0; oy < oh; ++oy)
                        for (int ox = 0; ox < ow; ++ox) {
                            size_t r = ((size_t)ch * p.k + ky) * p.k + kx;
                            int iy = oy * p.stride + ky - p.pad, ix = ox * p.stride + kx - p.pad;
                            float want = im_at(im, p.h, p.w, ch, iy, ix);
                            bad += col[r * oh * ow + (size_t)oy * ow + ox] != want;
                        }
        CHECK(bad == 0, "im2col c=%d %dx%d k=%d s=%d p=%d: %d cells wrong", p.c, p.h, p.w, p.k, p.stride, p.pad, bad);

        /* adjoint: <im2col(x), y> == <x, col2im(y)> */
        for (size_t i = 0; i < ncol; ++i) y[i] = urand();
        for (size_t i = 0; i < nim; ++i) z[i] = urand();
        dn_copy(back, z, nim);
        dn_col2im(y, p.c, p.h, p.w, p.k, p.stride, p.pad, oh, ow, back);   /* adds onto z */
        double lhs = 0, rhs = 0, mag = 0;
        for (size_t i = 0; i < ncol; ++i) { lhs += (double)col[i] * y[i]; mag += fabs((double)col[i] * y[i]); }
        for (size_t i = 0; i < nim; ++i) rhs += (double)im[i] * ((double)back[i] - z[i]);
        CHECK(fabs(lhs - rhs) <= 1e-5 * (mag + 1),
              "col2im is not the adjoint of im2col (c=%d %dx%d k=%d s=%d p=%d): %g vs %g", p.c, p.h, p.w, p.k, p.stride,
              p.pad, lhs, rhs);
        /* and it adds: pixels no window reaches keep z exactly */
        int kept = 1;
        for (int ch = 0; ch < p.c; ++ch)
            for (int yy = 0; yy < p.h; ++yy)
                for (int xx = 0; xx < p.w; ++xx) {
                    int reached = 0;
                    for (int ky = 0; ky < p.k; ++ky)
                        for (int kx = 0; kx < p.k; ++kx) {
                            int ty = yy + p.pad - ky, tx = xx + p.pad - kx;
                            if (ty >= 0 && tx >= 0 && ty % p.stride == 0 && tx % p.stride == 0 && ty / p.stride < oh &&
                                tx / p.stride < ow)
                                reached = 1;
                        }
                    size_t i = ((size_t)ch * p.h + yy) * p.w + xx;
                    if (!reached && back[i] != z[i]) kept = 0;
                }
        CHECK(kept, "col2im touched pixels no window covers (c=%d %dx%d k=%d s=%d p=%d)", p.c, p.h, p.w, p.k, p.stride,
              p.pad);

        /* im2col + GEMM == direct convolution */
        int f = 3;
        float *wts = malloc(sizeof(float) * f * rows), *out = malloc(sizeof(float) * f * oh * ow);
        for (size_t i = 0; i < (size_t)f * rows; ++i) wts[i] = urand();
        dn_gemm(0, 0, f, oh * ow, (int)rows, 1, wts, (int)rows, col, oh * ow, 0, out, oh * ow);
        double maxerr = 0;
        for (int o = 0; o < f; ++o)
            for (int oy = 0; oy < oh; ++oy)
                for (int ox = 0; ox < ow; ++ox) {
                    double sum = 0;
                    for (int ch = 0; ch < p.c; ++ch)
                        for (int ky = 0; ky < p.k; ++ky)
                            for (int kx = 0; kx < p.k; ++kx)
                                sum += (double)wts[(((size_t)o * p.c + ch) * p.k + ky) * p.k + kx] *
                                       im_at(im, p.h, p.w, ch, oy * p.stride + ky - p.pad, ox * p.stride + kx - p.pad);
                    maxerr = fmax(maxerr, fabs(out[((size_t)o * oh + oy) * ow + ox] - sum));
                }
        CHECK(maxerr < 1e-5 * (double)rows, "im2col+gemm conv c=%d %dx%d k=%d s=%d p=%d: max error %g", p.c, p.h, p.w,
              p.k, p.stride, p.pad, maxerr);
        free(wts); free(out);
        free(im); free(col); free(y); free(back); free(z);
    }
}

/* ------------------------------------------------------------ layer forwards */

static void test_conv_layer_forward(void)
{
    static const struct { int c, h, w, filters, size, stride, pad, groups, batch; } cases[] = {
        {3, 5, 5, 4, 3, 1, 1, 1, 2}, {2, 7, 6, 3, 3, 2, 1, 1, 2}, {2, 6, 7, 2, 5, 1, 2, 1, 1},
        {3, 4, 3, 4, 1, 1, 0, 1, 2}, {3, 5, 5, 2, 1, 2, 0, 1, 2}, {2, 3, 4, 2, 1, 1, 1, 1, 1},
        {4, 5, 4, 6, 3, 1, 1, 2, 2}, {3, 6, 5, 3, 3, 2, 1, 3, 2}, {4, 5, 5, 2, 1, 2, 0, 2, 3},
        {6, 4, 4, 6, 1, 1, 0, 3, 2}, {2, 3, 3, 2, 2, 1, 1, 1, 2},
    };
    for (size_t t = 0; t < sizeof cases / sizeof *cases; ++t) {
        char cfg[512];
        snprintf(cfg, sizeof cfg, "[net]\nbatch=%d\nwidth=%d\nheight=%d\nchannels=%d\n[convolutional]\nfilters=%d\n"
                 "size=%d\nstride=%d\npadding=%d\ngroups=%d\nactivation=linear\n[cost]\n",
                 cases[t].batch, cases[t].w, cases[t].h, cases[t].c, cases[t].filters, cases[t].size, cases[t].stride,
                 cases[t].pad, cases[t].groups);
        dn_network *net = NULL;
        CHECK_OK(dn_network_parse_string(cfg, "conv forward", NULL, &net));
        if (!net) continue;
        dn_layer *l = &net->layers[0];
        int C = cases[t].c, H = cases[t].h, W = cases[t].w, F = cases[t].filters;
        int K = cases[t].size, S = cases[t].stride;
        int P = cases[t].pad, G = cases[t].groups, Bn = cases[t].batch;
        int oh = out_size(H, K, S, P), ow = out_size(W, K, S, P), cg = C / G, fg = F / G;
        CHECK(l->out_h == oh && l->out_w == ow && l->out_c == F, "conv shape %dx%dx%d, want %dx%dx%d", l->out_w,
              l->out_h, l->out_c, ow, oh, F);
        for (int i = 0; i < F; ++i) l->biases[i] = urand();
        size_t nin = (size_t)Bn * C * H * W;
        float *x = malloc(nin * sizeof(float));
        for (size_t i = 0; i < nin; ++i) x[i] = urand();
        CHECK_OK(dn_network_forward(net, x, NULL, 0));
        double maxerr = 0;
        for (int b = 0; b < Bn; ++b)
            for (int o = 0; o < F; ++o)
                for (int oy = 0; oy < oh; ++oy)
                    for (int ox = 0; ox < ow; ++ox) {
                        int g = o / fg;
                        double sum = l->biases[o];
                        for (int cc = 0; cc < cg; ++cc)
                            for (int ky = 0; ky < K; ++ky)
                                for (int kx = 0; kx < K; ++kx)
                                    sum += (double)l->weights[(((size_t)o * cg + cc) * K + ky) * K + kx] *
                                           im_at(x + (size_t)b * C * H * W, H, W, g * cg + cc, oy * S + ky - P,
                                                 ox * S + kx - P);
                        maxerr = fmax(maxerr, fabs(l->output[(((size_t)b * F + o) * oh + oy) * ow + ox] - sum));
                    }
        CHECK(maxerr < 1e-5, "conv layer forward c=%d %dx%d f=%d k=%d s=%d p=%d g=%d: max error %g", C, H, W, F, K, S,
              P, G, maxerr);
        free(x);
        dn_network_free(net);
    }
}

static void test_connected_layer_forward(void)
{
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string("[net]\nbatch=3\nwidth=3\nheight=2\nchannels=2\n[connected]\noutput=5\n"
                                     "activation=linear\n[cost]\n", "connected forward", NULL, &net));
    if (!net) return;
    dn_layer *l = &net->layers[0];
    for (int i = 0; i < 5; ++i) l->biases[i] = urand();
    float x[36];
    for (int i = 0; i < 36; ++i) x[i] = urand();
    CHECK_OK(dn_network_forward(net, x, NULL, 0));
    double maxerr = 0;
    for (int b = 0; b < 3; ++b)
        for (int o = 0; o < 5; ++o) {
            double s = l->biases[o];
            for (int i = 0; i < 12; ++i) s += (double)l->weights[o * 12 + i] * x[b * 12 + i];
            maxerr = fmax(maxerr, fabs(l->output[b * 5 + o] - s));
        }
    CHECK(maxerr < 1e-5, "connected forward: max error %g", maxerr);
    dn_network_free(net);
}

/* ------------------------------------------------------------ fast paths against the reference */

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; ++i) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; ++i) m = fmax(m, fabs((double)a[i]));
    return m;
}

/* Result of one forward + backward of layer 0: output, weight/bias updates, input delta. */
typedef struct { float *out, *wu, *bu, *dx; } conv_run;

static conv_run run_conv(dn_network *net, const float *x, const float *dy, int reference)
{
    dn_layer *l = &net->layers[0];
    size_t nin = (size_t)l->batch * l->inputs, nout = (size_t)l->batch * l->outputs;
    conv_run r = {malloc(nout * sizeof(float)), malloc(l->nweights * sizeof(float)),
                  malloc((size_t)l->out_c * sizeof(float)), calloc(nin, sizeof(float))};
    float *in = malloc(nin * sizeof(float));
    dn_copy(in, x, nin);
    dn_conv_reference = reference;
    net->train = 1;
    net->input = in;
    net->delta = r.dx;
    l->ops->forward(l, net);
    dn_copy(r.out, l->output, nout);
    dn_fill(l->weight_updates, l->nweights, 0);
    dn_fill(l->bias_updates, (size_t)l->out_c, 0);
    dn_copy(l->delta, dy, nout);
    l->ops->backward(l, net);
    dn_copy(r.wu, l->weight_updates, l->nweights);
    dn_copy(r.bu, l->bias_updates, (size_t)l->out_c);
    dn_conv_reference = 0;
    net->input = NULL;
    net->delta = NULL;
    free(in);
    return r;
}

static void free_run(conv_run r) { free(r.out); free(r.wu); free(r.bu); free(r.dx); }

/* The chunked whole-batch convolution and the direct depthwise kernel
 * (forward, weight, bias and input gradients) against the per-image reference
 * path, for shapes whose batch splits into several chunks with a short last one. */
static void test_conv_chunked_vs_reference(void)
{
    static const struct { int c, h, w, filters, size, stride, pad, groups, batch; const char *act; } cases[] = {
        {8, 32, 32, 8, 3, 1, 1, 1, 5, "leaky"},      /* 3 images per chunk: 3 + 2 */
        {3, 17, 15, 4, 3, 2, 1, 1, 7, "linear"},    /* stride 2, odd sizes */
        {6, 20, 20, 6, 3, 1, 1, 6, 9, "relu"},      /* depthwise */
        {5, 13, 11, 5, 5, 2, 2, 5, 3, "leaky"},     /* strided 5x5 depthwise (direct kernel) */
        {3, 7, 8, 3, 2, 3, 1, 3, 2, "linear"},      /* depthwise, even kernel, stride 3 */
        {8, 21, 19, 16, 3, 2, 1, 8, 4, "leaky"},    /* 2 filters per group: not depthwise */
        {8, 16, 16, 12, 1, 1, 0, 1, 6, "linear"},   /* pointwise */
        {4, 12, 12, 6, 3, 1, 1, 2, 3, "leaky"},     /* 2 groups */
        {5, 33, 33, 7, 5, 2, 2, 1, 4, "logistic"},  /* 5x5, pad 2, stride 2 */
        {4, 9, 9, 4, 1, 2, 0, 1, 3, "linear"},      /* 1x1 stride 2 */
        {2, 40, 40, 3, 2, 1, 0, 1, 2, "leaky"},     /* even kernel, no padding */
        {64, 30, 30, 64, 3, 1, 1, 1, 3, "linear"},  /* more scratch than one chunk: 1 image per chunk */
        {64, 40, 40, 64, 3, 1, 1, 64, 16, "leaky"}, /* depthwise large enough for the workers */
        {4, 9, 10, 4, 3, 1, 0, 4, 2, "linear"},     /* depthwise, no padding */
        {3, 8, 7, 3, 3, 1, 3, 3, 2, "leaky"},       /* depthwise, padding above size / 2 */
        {5, 15, 13, 5, 3, 2, 1, 5, 3, "leaky"},     /* depthwise stride 2, odd sizes */
        {4, 11, 21, 4, 3, 2, 0, 4, 2, "linear"},    /* depthwise stride 2, no padding, odd width */
        {3, 6, 5, 3, 3, 2, 2, 3, 2, "linear"},      /* depthwise stride 2, large padding */
        {4, 10, 35, 4, 3, 2, 1, 4, 2, "leaky"},     /* depthwise stride 2, rows of 17 pairs + 1 */
        {3, 12, 12, 3, 4, 2, 2, 3, 2, "linear"},    /* depthwise stride 2, even kernel */
        {6, 19, 37, 6, 3, 1, 1, 6, 2, "leaky"},     /* depthwise, width not a multiple of 16 */
        {4, 7, 9, 4, 1, 1, 0, 4, 3, "linear"},      /* depthwise 1x1 */
        {4, 7, 9, 4, 1, 2, 0, 4, 3, "linear"},      /* depthwise 1x1 stride 2: phases without taps */
        {3, 17, 16, 3, 5, 3, 2, 3, 2, "leaky"},     /* depthwise 5x5 stride 3 */
        {8, 13, 13, 8, 3, 2, 1, 8, 1, "leaky"},     /* depthwise, batch 1 */
        {32, 16, 16, 32, 3, 1, 1, 32, 8, "leaky"},  /* separable.cfg depthwise shapes */
        {64, 16, 16, 64, 3, 2, 1, 64, 8, "leaky"},
        /* rows in whole vectors of 16 (the AVX-512 direct path), one short */
        {5, 16, 32, 9, 3, 1, 1, 1, 4, "leaky"},     /* 9 filters: a partial register tile */
        {3, 15, 15, 8, 3, 1, 1, 1, 3, "linear"},    /* 15 of 16 lanes */
        {7, 20, 30, 6, 5, 1, 2, 1, 2, "relu"},      /* 5x5: 30 = 16 + 14 */
        {4, 18, 18, 10, 3, 1, 0, 1, 3, "leaky"},    /* no padding: 16 outputs */
        {6, 16, 16, 12, 1, 1, 0, 3, 5, "linear"},   /* pointwise, 3 groups */
        {16, 32, 32, 20, 3, 1, 1, 2, 7, "leaky"},   /* 2 groups, several image groups */
        {3, 48, 48, 4, 7, 1, 3, 1, 2, "linear"},    /* 7x7 */
        {2, 16, 16, 3, 4, 1, 2, 1, 2, "leaky"},     /* even kernel, 17 outputs */
        /* rows of 7 or 8: two output rows per vector */
        {6, 8, 8, 10, 3, 1, 1, 1, 3, "leaky"},      /* 8x8 */
        {5, 9, 7, 9, 3, 1, 1, 1, 2, "linear"},      /* 7 wide, 9 rows: a last single row */
        {4, 13, 8, 6, 1, 1, 0, 2, 3, "relu"},       /* pointwise, 13 rows, 2 groups */
        {3, 11, 11, 5, 5, 1, 0, 1, 2, "leaky"},     /* 5x5 unpadded: 7x7 */
    };
    /* mode 0: every fast path; 1: the packed GEMM only (no direct paths);
     * 2: no AVX-512 GEMM (OpenBLAS or the portable one under the chunked path) */
    for (int mode = 0; mode < 3; ++mode)
    for (size_t t = 0; t < sizeof cases / sizeof *cases; ++t)
        for (int bn = 0; bn < 2; ++bn) {
            dn_gemm_direct_enabled = mode == 0;
            dn_gemm_fast_enabled = mode < 2;
            char cfg[512];
            snprintf(cfg, sizeof cfg, "[net]\nbatch=%d\nwidth=%d\nheight=%d\nchannels=%d\n[convolutional]\n"
                     "filters=%d\nsize=%d\nstride=%d\npadding=%d\ngroups=%d\nbatch_normalize=%d\nactivation=%s\n[cost]\n",
                     cases[t].batch, cases[t].w, cases[t].h, cases[t].c, cases[t].filters, cases[t].size,
                     cases[t].stride, cases[t].pad, cases[t].groups, bn, cases[t].act);
            dn_network *net = NULL;
            CHECK_OK(dn_network_parse_string(cfg, "conv chunked", NULL, &net));
            if (!net) continue;
            dn_layer *l = &net->layers[0];
            for (int i = 0; i < l->out_c; ++i) l->biases[i] = urand();
            size_t nin = (size_t)l->batch * l->inputs, nout = (size_t)l->batch * l->outputs;
            float *x = malloc(nin * sizeof(float)), *dy = malloc(nout * sizeof(float));
            for (size_t i = 0; i < nin; ++i) x[i] = urand();
            for (size_t i = 0; i < nout; ++i) dy[i] = urand();
            float *rm = malloc((size_t)l->out_c * sizeof(float)), *rv = malloc((size_t)l->out_c * sizeof(float));
            if (bn) { dn_copy(rm, l->rolling_mean, (size_t)l->out_c); dn_copy(rv, l->rolling_variance, (size_t)l->out_c); }
            conv_run fast = run_conv(net, x, dy, 0);
            if (bn) { dn_copy(l->rolling_mean, rm, (size_t)l->out_c); dn_copy(l->rolling_variance, rv, (size_t)l->out_c); }
            conv_run ref = run_conv(net, x, dy, 1);
            double e_out = max_abs_diff(fast.out, ref.out, nout) / (1 + max_abs(ref.out, nout));
            double e_wu = max_abs_diff(fast.wu, ref.wu, l->nweights) / (1 + max_abs(ref.wu, l->nweights));
            double e_bu = max_abs_diff(fast.bu, ref.bu, (size_t)l->out_c) / (1 + max_abs(ref.bu, (size_t)l->out_c));
            double e_dx = max_abs_diff(fast.dx, ref.dx, nin) / (1 + max_abs(ref.dx, nin));
            CHECK(e_out < 1e-5 && e_wu < 1e-5 && e_bu < 1e-5 && e_dx < 1e-5,
                  "conv fast (mode %d) vs reference c=%d %dx%d f=%d k=%d s=%d p=%d g=%d b=%d bn=%d: relative errors out %g, "
                  "weights %g, biases %g, input delta %g", mode, cases[t].c, cases[t].h, cases[t].w, cases[t].filters,
                  cases[t].size, cases[t].stride, cases[t].pad, cases[t].groups, cases[t].batch, bn, e_out, e_wu, e_bu,
                  e_dx);
            free_run(fast); free_run(ref);
            free(x); free(dy); free(rm); free(rv);
            dn_network_free(net);
        }
    dn_gemm_direct_enabled = 1;
    dn_gemm_fast_enabled = 1;
}

/* Fused batch norm (bn_fast.c) against the reference (blas.c), forward in
 * training and inference mode and backward, including the saved x, x_norm,
 * batch statistics, rolling statistics and scale/bias updates. */
static void test_batchnorm_fast_vs_reference(void)
{
    static const struct { int c, h, w, batch; } cases[] = {
        {3, 5, 5, 4}, {16, 8, 8, 7}, {1, 1, 1, 2}, {7, 3, 11, 3}, {32, 16, 16, 2}, {5, 1, 1, 9},
        {17, 32, 32, 5},   /* large enough for the workers to split the channels */
    };
    for (size_t t = 0; t < sizeof cases / sizeof *cases; ++t)
        for (int train = 0; train < 2; ++train) {
            char cfg[256];
            snprintf(cfg, sizeof cfg, "[net]\nbatch=%d\nwidth=%d\nheight=%d\nchannels=%d\n[batchnorm]\n[cost]\n",
                     cases[t].batch, cases[t].w, cases[t].h, cases[t].c);
            dn_network *net = NULL;
            CHECK_OK(dn_network_parse_string(cfg, "batchnorm fast", NULL, &net));
            if (!net) continue;
            dn_layer *l = &net->layers[0];
            int c = l->out_c;
            size_t n = (size_t)l->batch * l->outputs;
            for (int i = 0; i < c; ++i) {
                l->scales[i] = 1 + urand() / 2;
                l->biases[i] = urand();
                l->rolling_mean[i] = urand() / 4;
                l->rolling_variance[i] = 1 + urand() / 2;
            }
            float *x = malloc(n * sizeof(float)), *dy = malloc(n * sizeof(float));
            for (size_t i = 0; i < n; ++i) x[i] = 3 * urand() + 1;
            for (size_t i = 0; i < n; ++i) dy[i] = urand();
            /* state saved so both versions start alike: rolling stats, updates */
            float *st = malloc(4 * (size_t)c * sizeof(float));
            dn_copy(st, l->rolling_mean, (size_t)c);
            dn_copy(st + c, l->rolling_variance, (size_t)c);
            float *res[2][8];
            for (int v = 0; v < 2; ++v) {
                dn_copy(l->rolling_mean, st, (size_t)c);
                dn_copy(l->rolling_variance, st + c, (size_t)c);
                dn_fill(l->scale_updates, (size_t)c, 0);
                dn_fill(l->bias_updates, (size_t)c, 0);
                float *y = malloc(n * sizeof(float)), *d = malloc(n * sizeof(float));
                dn_copy(y, x, n);
                dn_copy(d, dy, n);
                if (v) dn_batchnorm_forward_ref(l, y, train); else dn_batchnorm_forward(l, y, train);
                if (v) dn_batchnorm_backward_ref(l, d, train); else dn_batchnorm_backward(l, d, train);
                float *keep[6] = {l->x, l->x_norm, l->rolling_mean, l->rolling_variance, l->scale_updates, l->bias_updates};
                size_t len[6] = {n, n, (size_t)c, (size_t)c, (size_t)c, (size_t)c};
                res[v][0] = y;
                res[v][1] = d;
                for (int k = 0; k < 6; ++k) {
                    res[v][k + 2] = malloc(len[k] * sizeof(float));
                    dn_copy(res[v][k + 2], keep[k], len[k]);
                }
            }
            static const char *const what[8] = {"y", "delta", "x", "x_norm", "rolling_mean", "rolling_variance",
                                                "scale_updates", "bias_updates"};
            for (int k = 0; k < 8; ++k) {
                if (k == 2 && train) continue;   /* training keeps x_norm only */
                size_t len = k < 4 ? n : (size_t)c;
                double e = max_abs_diff(res[0][k], res[1][k], len) / (1 + max_abs(res[1][k], len));
                CHECK(e < 1e-5, "batchnorm fast vs reference %dx%dx%d batch %d %s: %s relative error %g", cases[t].c,
                      cases[t].h, cases[t].w, cases[t].batch, train ? "train" : "inference", what[k], e);
            }
            for (int v = 0; v < 2; ++v)
                for (int k = 0; k < 8; ++k) free(res[v][k]);
            free(x); free(dy); free(st);
            dn_network_free(net);
        }
}

/* Max pooling (clipped, branch-free windows, planes split over workers)
 * against a bounds-checked scan, on layers large enough to use the workers. */
static void test_maxpool_forward(void)
{
    static const struct { int c, h, w, size, stride, padding, batch; } cases[] = {
        {16, 32, 32, 2, 2, 1, 9}, {5, 33, 31, 3, 2, 2, 20}, {7, 20, 20, 3, 1, 2, 30}, {3, 9, 9, 2, 2, 1, 2},
    };
    for (size_t t = 0; t < sizeof cases / sizeof *cases; ++t) {
        char cfg[256];
        snprintf(cfg, sizeof cfg, "[net]\nbatch=%d\nwidth=%d\nheight=%d\nchannels=%d\n[maxpool]\nsize=%d\nstride=%d\n"
                 "padding=%d\n[cost]\n", cases[t].batch, cases[t].w, cases[t].h, cases[t].c, cases[t].size,
                 cases[t].stride, cases[t].padding);
        dn_network *net = NULL;
        CHECK_OK(dn_network_parse_string(cfg, "maxpool forward", NULL, &net));
        if (!net) continue;
        dn_layer *l = &net->layers[0];
        size_t nin = (size_t)l->batch * l->inputs;
        float *x = malloc(nin * sizeof(float));
        for (size_t i = 0; i < nin; ++i) x[i] = (float)(int)(urand() * 4);   /* ties */
        CHECK_OK(dn_network_forward(net, x, NULL, 0));
        int bad = 0, off = -l->pad / 2;
        for (int p = 0; p < l->batch * l->c; ++p)
            for (int i = 0; i < l->out_h; ++i)
                for (int j = 0; j < l->out_w; ++j) {
                    float best = 0;
                    int at = -1;
                    for (int y = i * l->stride + off; y < i * l->stride + off + l->size; ++y)
                        for (int xx = j * l->stride + off; xx < j * l->stride + off + l->size; ++xx) {
                            if (y < 0 || y >= l->h || xx < 0 || xx >= l->w) continue;
                            float v = x[(size_t)p * l->h * l->w + y * l->w + xx];
                            if (at < 0 || v > best) { best = v; at = p * l->h * l->w + y * l->w + xx; }
                        }
                    size_t o = ((size_t)p * l->out_h + i) * l->out_w + j;
                    bad += l->output[o] != (at < 0 ? 0 : best) || l->indexes[o] != at;
                }
        CHECK(bad == 0, "maxpool forward c=%d %dx%d size %d stride %d padding %d batch %d: %d outputs wrong", cases[t].c,
              cases[t].h, cases[t].w, cases[t].size, cases[t].stride, cases[t].padding, cases[t].batch, bad);
        free(x);
        dn_network_free(net);
    }
}

/* Reference max pooling of one output (i, j) of plane p: bounds-checked scan
 * in row order, first valid cell seeds, only strictly greater replaces. */
static int maxpool_ref_at(const dn_layer *l, const float *x, int p, int i, int j, float *best)
{
    int at = -1, off = -l->pad / 2;
    *best = 0;
    for (int y = i * l->stride + off; y < i * l->stride + off + l->size; ++y)
        for (int xx = j * l->stride + off; xx < j * l->stride + off + l->size; ++xx) {
            if (y < 0 || y >= l->h || xx < 0 || xx >= l->w) continue;
            int k = (p * l->h + y) * l->w + xx;
            if (at < 0 || x[k] > *best) { *best = x[k]; at = k; }
        }
    return at;
}

/* Every maxpool path (interior spans, clipped border rows, columns and
 * corners, one flat span for stride 1) against maxpool_ref_at, forward
 * (bit for bit, first of equal maxima wins) and backward (serial scatter
 * onto a nonzero input delta), for sizes 1-5, strides 1-3, every padding. */
static void test_maxpool_paths(void)
{
    static const int sizes[] = {1, 2, 3, 5}, dims[][4] = {{1, 7, 9, 1}, {2, 8, 8, 3}, {3, 6, 11, 2}, {8, 37, 33, 9}};
    static const float vals[] = {-0.0f, 0.0f, -1, -1, 2, 2, -3, 0.5f};   /* ties, negatives, signed zeros */
    int bad_cases = 0;
    for (size_t d = 0; d < sizeof dims / sizeof *dims; ++d)
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; ++si)
            for (int stride = 1; stride <= 3; ++stride)
                for (int pad = 0; pad <= sizes[si]; ++pad) {
                    int c = dims[d][0], h = dims[d][1], w = dims[d][2], batch = dims[d][3], size = sizes[si];
                    if (d == 3 && (pad != size - 1 || size == 5)) continue;   /* the large case: workers */
                    char cfg[256];
                    snprintf(cfg, sizeof cfg, "[net]\nbatch=%d\nwidth=%d\nheight=%d\nchannels=%d\n[maxpool]\nsize=%d\n"
                             "stride=%d\npadding=%d\n[cost]\n", batch, w, h, c, size, stride, pad);
                    dn_network *net = NULL;
                    CHECK_OK(dn_network_parse_string(cfg, "maxpool paths", NULL, &net));
                    if (!net) continue;
                    dn_layer *l = &net->layers[0];
                    size_t nin = (size_t)l->batch * l->inputs, nout = (size_t)l->batch * l->outputs;
                    float *x = malloc(nin * sizeof(float)), *dx = malloc(nin * sizeof(float));
                    float *ref = malloc(nin * sizeof(float));
                    for (size_t i = 0; i < nin; ++i) {
                        float u = urand();
                        x[i] = size == 2 ? vals[(int)((u + 1) * 4) & 7] : (float)(int)(u * 3) - 0.25f * (u < 0);
                        dx[i] = ref[i] = (float)(i % 5) - 2;
                    }
                    CHECK_OK(dn_network_forward(net, x, NULL, 0));
                    for (size_t o = 0; o < nout; ++o) l->delta[o] = urand();
                    int bad = 0;
                    for (int p = 0; p < l->batch * l->c; ++p)
                        for (int i = 0; i < l->out_h; ++i)
                            for (int j = 0; j < l->out_w; ++j) {
                                float best;
                                int at = maxpool_ref_at(l, x, p, i, j, &best);
                                size_t o = ((size_t)p * l->out_h + i) * l->out_w + j;
                                bad += memcmp(&l->output[o], &best, sizeof best) != 0 || l->indexes[o] != at;
                                if (at >= 0) ref[at] += l->delta[o];
                            }
                    net->delta = dx;
                    l->ops->backward(l, net);
                    net->delta = NULL;
                    bad += memcmp(dx, ref, nin * sizeof(float)) != 0;
                    bad_cases += bad != 0;
                    CHECK(bad == 0, "maxpool c=%d %dx%d size %d stride %d padding %d batch %d: %d wrong", c, h, w, size,
                          stride, pad, batch, bad);
                    free(x); free(dx); free(ref);
                    dn_network_free(net);
                }
    CHECK(bad_cases == 0, "maxpool paths: %d cases wrong", bad_cases);
}

int main(void)
{
    test_gemm();
    test_im2col();
    test_conv_layer_forward();
    test_connected_layer_forward();
    test_conv_chunked_vs_reference();
    test_batchnorm_fast_vs_reference();
    test_maxpool_forward();
    test_maxpool_paths();
    TEST_MAIN_END();
}
