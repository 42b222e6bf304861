/*
 * test_coop.c — darknet's cooperative CUDA kernels (those whose threads work
 * together: block reductions in shared memory, one warp per row) against
 * double-precision loops, at sizes the networks of tests/test_gpu.c do not
 * reach: channels of many more elements than a block has threads (each
 * thread loops) and of fewer (most threads add nothing), softmax and
 * average rows longer than a warp, loss sums over more blocks than
 * DN_CUDA_PARTIALS (grid-stride loops), a batch-norm channel of one value.
 * Built and run in both modes of the emulator (tests/test_gpu_emu.sh); with
 * real blocks (EMU_BLOCKS=full) this is where those kernels' barriers and
 * shuffles are exercised hardest. Relative tolerance 1e-4 (float sums in
 * another order). Prints "N passed, M failed".
 */
#include "gpu_kernels.h"
#include "gpu_layer_kernels.h"
#include "testlib.h"
#include <cuda_runtime_api.h>
#include <float.h>
#include <stdint.h>

#define TOL 1e-4f

static uint64_t seed = 88172645463325252ull;
static float rnd(void)   /* in [-1, 1) */
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return (float)((seed >> 40) / (double)(1ull << 24)) * 2.f - 1.f;
}

static float *up(const float *host, size_t n)
{
    float *d = NULL;
    if (cudaMalloc((void **)&d, n * sizeof *d + 1) != cudaSuccess) { fprintf(stderr, "cudaMalloc\n"); exit(1); }
    if (host) cudaMemcpy(d, host, n * sizeof *d, cudaMemcpyHostToDevice);
    return d;
}

static float *down(const float *dev, size_t n)
{
    float *h = malloc(n * sizeof *h + 1);
    cudaMemcpy(h, dev, n * sizeof *h, cudaMemcpyDeviceToHost);
    return h;
}

static float *randoms(size_t n, float scale, float offset)
{
    float *h = malloc(n * sizeof *h + 1);
    for (size_t i = 0; i < n; ++i) h[i] = rnd() * scale + offset;
    return h;
}

/* How many of got[0..n) differ from want[0..n) by more than TOL (the first shown). */
static int mismatches(const char *what, const float *got, const double *want, size_t n, float floor_)
{
    int bad = 0;
    for (size_t i = 0; i < n; ++i)
        if (!(tl_rel_diff(got[i], (float)want[i], floor_) <= TOL) && !bad++)
            fprintf(stderr, "%s[%zu]: %.7g, want %.7g\n", what, i, got[i], want[i]);
    return bad;
}

/* ------------------------------------------------------------ bias gradient */

static void test_backward_bias(int batch, int c, int spatial)
{
    size_t n = (size_t)batch * c * spatial;
    float *d = randoms(n, 1, 0.1f), *bu = randoms(c, 1, 0);
    float *d_d = up(d, n), *d_bu = up(bu, c);
    CHECK(dn_cuda_backward_bias(d_bu, d_d, batch, c, spatial) == 0, "launch");
    float *got = down(d_bu, c);
    double *want = malloc(c * sizeof *want);
    for (int ch = 0; ch < c; ++ch) {
        want[ch] = bu[ch];
        for (int b = 0; b < batch; ++b)
            for (int k = 0; k < spatial; ++k) want[ch] += d[((size_t)b * c + ch) * spatial + k];
    }
    CHECK(!mismatches("bias_updates", got, want, c, 1e-2f), "backward_bias batch %d c %d spatial %d", batch, c,
          spatial);
    cudaFree(d_d); cudaFree(d_bu);
    free(d); free(bu); free(got); free(want);
}

/* ------------------------------------------------------------ batch norm */

static void test_bn(int batch, int c, int spatial, int train)
{
    size_t n = (size_t)batch * c * spatial;
    float *data = randoms(n, 2, 0.5f), *delta = randoms(n, 1, 0.05f);
    float *scales = randoms(c, .5f, 1), *biases = randoms(c, 1, 0), *rm = randoms(c, .1f, 0),
          *rv = randoms(c, .1f, 1), *su = randoms(c, 1, 0), *bu = randoms(c, 1, 0);
    dn_cuda_bn p = {up(NULL, n), up(NULL, n), up(NULL, c), up(NULL, c), up(rm, c), up(rv, c), up(scales, c),
                    up(biases, c), up(su, c), up(bu, c), up(NULL, c), up(NULL, c), batch, c, spatial, 1e-5f};
    float *d_data = up(data, n), *d_delta = up(delta, n);
    CHECK(dn_cuda_bn_forward(&p, d_data, train) == 0, "launch");
    CHECK(dn_cuda_bn_backward(&p, d_delta, train) == 0, "launch");
    float *out = down(d_data, n), *x_norm = down(p.x_norm, n), *dout = down(d_delta, n);
    float *mean = down(p.mean, c), *var = down(p.variance, c), *rm2 = down(p.rolling_mean, c),
          *rv2 = down(p.rolling_variance, c), *su2 = down(p.scale_updates, c), *bu2 = down(p.bias_updates, c);
    double *w_out = malloc(n * sizeof *w_out), *w_xn = malloc(n * sizeof *w_xn), *w_dout = malloc(n * sizeof *w_dout);
    double *w_mean = malloc(c * sizeof(double)), *w_var = malloc(c * sizeof(double)), *w_rm = malloc(c * sizeof(double)),
           *w_rv = malloc(c * sizeof(double)), *w_su = malloc(c * sizeof(double)), *w_bu = malloc(c * sizeof(double));
    size_t count = (size_t)batch * spatial;
    double cn = (double)count, denom = count > 1 ? cn - 1 : 1;
#define AT(k) (((k) / spatial * (size_t)c + ch) * spatial + (k) % spatial)
    for (int ch = 0; ch < c; ++ch) {
        double m = 0, v = 0;
        for (size_t k = 0; k < count; ++k) m += data[AT(k)];
        m /= cn;
        for (size_t k = 0; k < count; ++k) v += (data[AT(k)] - m) * (data[AT(k)] - m);
        v /= denom;
        w_mean[ch] = m;
        w_var[ch] = v;
        w_rm[ch] = train ? .99 * rm[ch] + .01 * m : rm[ch];
        w_rv[ch] = train ? .99 * rv[ch] + .01 * v : rv[ch];
        if (!train) { m = rm[ch]; v = rv[ch]; }
        double inv = 1 / sqrt(v + 1e-5), sd = 0, sdxn = 0, sdxm = 0;
        for (size_t k = 0; k < count; ++k) {
            size_t at = AT(k);
            w_xn[at] = (data[at] - m) * inv;
            w_out[at] = w_xn[at] * scales[ch] + biases[ch];
            sd += delta[at];
            sdxn += delta[at] * w_xn[at];
            sdxm += delta[at] * (data[at] - m);
        }
        w_bu[ch] = bu[ch] + sd;
        w_su[ch] = su[ch] + sdxn;
        double md = -inv * scales[ch] * sd, vd = -.5 * inv * inv * inv * scales[ch] * sdxm;
        for (size_t k = 0; k < count; ++k) {
            size_t at = AT(k);
            w_dout[at] = train ? delta[at] * scales[ch] * inv + vd * 2 * (data[at] - m) / denom + md / cn
                               : delta[at] * scales[ch] * inv;
        }
    }
#undef AT
    int bad = mismatches("output", out, w_out, n, 1e-2f) + mismatches("x_norm", x_norm, w_xn, n, 1e-2f) +
              mismatches("delta", dout, w_dout, n, 1e-2f) + mismatches("rolling_mean", rm2, w_rm, c, 1e-2f) +
              mismatches("rolling_variance", rv2, w_rv, c, 1e-2f) + mismatches("scale_updates", su2, w_su, c, 1e-2f) +
              mismatches("bias_updates", bu2, w_bu, c, 1e-2f);
    if (train) bad += mismatches("mean", mean, w_mean, c, 1e-2f) + mismatches("variance", var, w_var, c, 1e-2f);
    CHECK(!bad, "batch norm %s, batch %d c %d spatial %d: %d values wrong", train ? "train" : "inference", batch, c,
          spatial, bad);
    float *all[] = {p.x, p.x_norm, p.mean, p.variance, p.rolling_mean, p.rolling_variance, p.scales, p.biases,
                    p.scale_updates, p.bias_updates, p.mean_delta, p.variance_delta, d_data, d_delta};
    for (size_t i = 0; i < sizeof all / sizeof *all; ++i) cudaFree(all[i]);
    float *host[] = {data, delta, scales, biases, rm, rv, su, bu, out, x_norm, dout, mean, var, rm2, rv2, su2, bu2};
    for (size_t i = 0; i < sizeof host / sizeof *host; ++i) free(host[i]);
    double *dh[] = {w_out, w_xn, w_dout, w_mean, w_var, w_rm, w_rv, w_su, w_bu};
    for (size_t i = 0; i < sizeof dh / sizeof *dh; ++i) free(dh[i]);
}

/* ------------------------------------------------------------ rows: avgpool, softmax */

static void test_rows(size_t rows, int len, float temp)
{
    size_t n = rows * (size_t)len;
    float *in = randoms(n, 4, 0);
    float *d_in = up(in, n), *d_mean = up(NULL, rows), *d_soft = up(NULL, n);
    CHECK(dn_cuda_row_mean(d_in, rows, len, d_mean) == 0, "launch");
    CHECK(dn_cuda_softmax(d_in, rows, len, temp, d_soft) == 0, "launch");
    float *mean = down(d_mean, rows), *soft = down(d_soft, n);
    double *w_mean = malloc(rows * sizeof *w_mean), *w_soft = malloc(n * sizeof *w_soft);
    for (size_t r = 0; r < rows; ++r) {
        const float *x = in + r * len;
        double s = 0, largest = -FLT_MAX, sum = 0;
        for (int k = 0; k < len; ++k) {
            s += x[k];
            if (x[k] > largest) largest = x[k];
        }
        w_mean[r] = s / len;
        for (int k = 0; k < len; ++k) sum += w_soft[r * len + k] = exp((x[k] - largest) / temp);
        for (int k = 0; k < len; ++k) w_soft[r * len + k] /= sum;
    }
    CHECK(!mismatches("row mean", mean, w_mean, rows, 1e-2f), "row_mean %zu rows of %d", rows, len);
    CHECK(!mismatches("softmax", soft, w_soft, n, 1e-6f), "softmax %zu rows of %d, temperature %g", rows, len, temp);
    cudaFree(d_in); cudaFree(d_mean); cudaFree(d_soft);
    free(in); free(mean); free(soft); free(w_mean); free(w_soft);
}

/* ------------------------------------------------------------ losses */

static double partial_sum(const float *d_partials, int parts)
{
    float *h = down(d_partials, DN_CUDA_PARTIALS);
    double s = 0;
    for (int i = 0; i < parts; ++i) s += h[i];
    free(h);
    return s;
}

static void test_losses(size_t n)
{
    float *p = randoms(n, .5f, .5f), *truth = malloc(n * sizeof *truth + 1), *in = randoms(n, 2, 0);
    for (size_t i = 0; i < n; ++i) truth[i] = i % 7 == 0 ? 1.f : i % 11 == 0 ? .5f : 0.f;
    float *d_p = up(p, n), *d_t = up(truth, n), *d_in = up(in, n), *d_delta = up(NULL, n), *d_out = up(NULL, n);
    float *d_part = up(NULL, DN_CUDA_PARTIALS);
    int parts = -1;
    CHECK(dn_cuda_softmax_cost(d_p, d_t, n, d_delta, d_part, &parts) == 0, "launch");
    double want = 0;
    for (size_t i = 0; i < n; ++i)
        if (truth[i] != 0) want += -truth[i] * log(p[i] < FLT_MIN ? FLT_MIN : p[i]);
    double got = partial_sum(d_part, parts);
    CHECK(parts >= 1 && parts <= DN_CUDA_PARTIALS && tl_rel_diff((float)got, (float)want, 1) <= TOL,
          "softmax cost over %zu values: %.7g from %d partial sums, want %.7g", n, got, parts, want);
    for (int type = 0; type < 3; ++type) {
        CHECK(dn_cuda_cost(d_in, d_t, n, type, d_out, d_delta, d_part, &parts) == 0, "launch");
        want = 0;
        for (size_t i = 0; i < n; ++i) {
            double diff = truth[i] - in[i], a = fabs(diff);
            want += type == 0 || (type == 2 && a < 1) ? diff * diff : type == 1 ? a : 2 * a - 1;
        }
        got = partial_sum(d_part, parts);
        CHECK(tl_rel_diff((float)got, (float)want, 1) <= TOL, "cost type %d over %zu values: %.7g, want %.7g", type, n,
              got, want);
    }
    cudaFree(d_p); cudaFree(d_t); cudaFree(d_in); cudaFree(d_delta); cudaFree(d_out); cudaFree(d_part);
    free(p); free(truth); free(in);
}

int main(void)
{
    if (cudaSetDevice(0) != cudaSuccess) { printf("no emulated device\n"); return 1; }
    test_backward_bias(3, 4, 700);    /* each thread loops */
    test_backward_bias(2, 5, 7);      /* most threads add 0 */
    for (int train = 0; train < 2; ++train) {
        test_bn(3, 3, 200, train);    /* 600 values a channel */
        test_bn(2, 4, 9, train);      /* 18 */
        test_bn(1, 2, 1, train);      /* one value: denominator 1 */
    }
    test_rows(37, 100, 1);            /* rows longer than a warp */
    test_rows(50, 3, 1.5f);           /* shorter: most lanes idle */
    test_rows(3, 1000, 0.5f);
    test_losses(300000);              /* 256 partial sums of grid-stride loops */
    test_losses(1000);
    TEST_MAIN_END();
}
