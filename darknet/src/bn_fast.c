/*
 * bn_fast.c — batch normalisation over (batch, c, spatial) in fused passes.
 * Same semantics as the reference in blas.c (unbiased variance, exact
 * backward); only the order of floating-point sums differs: reductions use
 * LANES independent partial sums so the compiler can vectorise them.
 *
 *   forward (train):  1 reading pass for mean and variance, 1 pass writing
 *                     x_norm and y = act(scale * x_norm + bias), the
 *                     activation applied per plane while it is in cache
 *   backward (train): the activation's gradient per plane, 1 reading pass for
 *                     the sums, 1 pass writing delta
 * Training keeps x_norm only (x - mean = x_norm * sqrt(var + eps)); l->x is
 * written in inference mode, where the reference backward reads it.
 */
#include "internal.h"
#include <math.h>

#define LANES 16

static float lanes_total(const float *acc)
{
    float s = 0;
    for (int j = 0; j < LANES; ++j) s += acc[j];
    return s;
}

/* Sums of (p - shift) and (p - shift)^2 over p[0..n), added to acc and acc2. */
static void plane_sums(const float *restrict p, int n, float shift, float *restrict acc, float *restrict acc2)
{
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int j = 0; j < LANES; ++j) {
            float d = p[k + j] - shift;
            acc[j] += d;
            acc2[j] += d * d;
        }
    for (; k < n; ++k) {
        float d = p[k] - shift;
        acc[k % LANES] += d;
        acc2[k % LANES] += d * d;
    }
}

/* Channel i's mean and unbiased variance over all images, in one pass: sums
 * of x - shift and its square, shifted by the channel's first value so the
 * variance does not come from the difference of two large numbers. */
static void channel_stats_fast(const float *x, int batch, int c, int spatial, int i, float *mean, float *var)
{
    float n = (float)batch * spatial, denom = n > 1 ? n - 1 : 1;
    float shift = x[(size_t)i * spatial];
    float acc[LANES] = {0}, acc2[LANES] = {0};
    for (int b = 0; b < batch; ++b) plane_sums(x + ((size_t)b * c + i) * spatial, spatial, shift, acc, acc2);
    double s1 = lanes_total(acc), s2 = lanes_total(acc2);
    double v = (s2 - s1 * s1 / n) / denom;
    *mean = (float)(shift + s1 / n);
    *var = (float)(v > 0 ? v : 0);
}

/* One plane: [x_keep = data,] x_norm = (data - mean) * inv, data = x_norm * scale + bias. */
static void normalize_plane(float *restrict data, float *restrict x_keep, float *restrict x_norm, int n, float mean,
                            float inv, float scale, float bias)
{
    if (x_keep) dn_copy(x_keep, data, (size_t)n);
    for (int k = 0; k < n; ++k) {
        float xn = (data[k] - mean) * inv;
        x_norm[k] = xn;
        data[k] = xn * scale + bias;
    }
}

/* Channels are independent: workers split them when the layer is large
 * enough to pay for starting a thread (results do not depend on the split). */
#define PARALLEL_MIN ((size_t)1 << 16)

typedef struct {
    dn_layer *l;
    float *data;
    int train;
    dn_activation act;
    const float *output;   /* backward: the activated output, for act's gradient */
} bn_job;

static void forward_channels(const bn_job *j, int c0, int c1);
static void backward_channels(const bn_job *j, int c0, int c1);

static void forward_worker(void *arg, int w, int workers)
{
    bn_job *j = arg;
    int c = j->l->out_c;
    forward_channels(j, (int)((long long)w * c / workers), (int)((long long)(w + 1) * c / workers));
}

static void backward_worker(void *arg, int w, int workers)
{
    bn_job *j = arg;
    int c = j->l->out_c;
    backward_channels(j, (int)((long long)w * c / workers), (int)((long long)(w + 1) * c / workers));
}

static int bn_workers(const dn_layer *l)
{
    if ((size_t)l->batch * l->outputs < PARALLEL_MIN) return 1;
    return dn_threads() < l->out_c ? dn_threads() : l->out_c;
}

void dn_batchnorm_forward_act(dn_layer *l, float *data, int train, dn_activation act)
{
    bn_job j = {l, data, train, act, NULL};
    dn_parallel(forward_worker, &j, bn_workers(l));
}

void dn_batchnorm_forward(dn_layer *l, float *data, int train) { dn_batchnorm_forward_act(l, data, train, DN_LINEAR); }

static void forward_channels(const bn_job *j, int c0, int c1)
{
    dn_layer *l = j->l;
    float *data = j->data;
    int train = j->train, c = l->out_c, spatial = l->out_w * l->out_h, batch = l->batch;
    for (int i = c0; i < c1; ++i) {
        const float *mean = l->rolling_mean, *var = l->rolling_variance;
        if (train) {
            channel_stats_fast(data, batch, c, spatial, i, &l->mean[i], &l->variance[i]);
            l->rolling_mean[i] = .99f * l->rolling_mean[i] + .01f * l->mean[i];
            l->rolling_variance[i] = .99f * l->rolling_variance[i] + .01f * l->variance[i];
            mean = l->mean;
            var = l->variance;
        }
        float inv = 1.f / sqrtf(var[i] + DN_BN_EPSILON);
        for (int b = 0; b < batch; ++b) {
            size_t off = ((size_t)b * c + i) * spatial;
            normalize_plane(data + off, train ? NULL : l->x + off, l->x_norm + off, spatial, mean[i], inv, l->scales[i],
                            l->biases[i]);
            dn_activate_array(data + off, (size_t)spatial, j->act);
        }
    }
}

/* Sums over one plane, added to acc (2 x LANES): delta, delta * x_norm. */
static void backward_sums(const float *restrict d, const float *restrict xn, int n, float *restrict acc)
{
    float *sd = acc, *sdn = acc + LANES;
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int j = 0; j < LANES; ++j) {
            sd[j] += d[k + j];
            sdn[j] += d[k + j] * xn[k + j];
        }
    for (; k < n; ++k) {
        sd[k % LANES] += d[k];
        sdn[k % LANES] += d[k] * xn[k];
    }
}

/* backward_sums after delta *= leaky'(y), in the same pass. */
static void leaky_backward_sums(float *restrict d, const float *restrict y, const float *restrict xn, int n,
                                float *restrict acc)
{
    float *sd = acc, *sdn = acc + LANES;
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int j = 0; j < LANES; ++j) {
            float v = d[k + j] * (y[k + j] > 0 ? 1.f : .1f);
            d[k + j] = v;
            sd[j] += v;
            sdn[j] += v * xn[k + j];
        }
    for (; k < n; ++k) {
        float v = d[k] * (y[k] > 0 ? 1.f : .1f);
        d[k] = v;
        sd[k % LANES] += v;
        sdn[k % LANES] += v * xn[k];
    }
}

/* delta = delta * a + x_norm * cn + c0 over one plane. */
static void backward_plane(float *restrict d, const float *restrict xn, int n, float a, float cn, float c0)
{
    for (int k = 0; k < n; ++k) d[k] = d[k] * a + xn[k] * cn + c0;
}

void dn_batchnorm_backward_act(dn_layer *l, float *delta, int train, dn_activation act, const float *output)
{
    if (!train) {
        if (output) dn_gradient_array(output, (size_t)l->batch * l->outputs, act, delta);
        dn_batchnorm_backward_ref(l, delta, train);
        return;
    }
    bn_job j = {l, delta, train, act, output};
    dn_parallel(backward_worker, &j, bn_workers(l));
}

void dn_batchnorm_backward(dn_layer *l, float *delta, int train)
{
    dn_batchnorm_backward_act(l, delta, train, DN_LINEAR, NULL);
}

static void backward_channels(const bn_job *j, int c0, int c1)
{
    dn_layer *l = j->l;
    float *delta = j->data;
    int c = l->out_c, spatial = l->out_w * l->out_h, batch = l->batch;
    float n = (float)batch * spatial, denom = n > 1 ? n - 1 : 1;
    for (int i = c0; i < c1; ++i) {
        float acc[2 * LANES] = {0};
        float inv = 1.f / sqrtf(l->variance[i] + DN_BN_EPSILON), scale = l->scales[i];
        for (int b = 0; b < batch; ++b) {
            size_t off = ((size_t)b * c + i) * spatial;
            if (j->output && j->act == DN_LEAKY)
                leaky_backward_sums(delta + off, j->output + off, l->x_norm + off, spatial, acc);
            else {
                if (j->output) dn_gradient_array(j->output + off, (size_t)spatial, j->act, delta + off);
                backward_sums(delta + off, l->x_norm + off, spatial, acc);
            }
        }
        /* sum of delta * (x - mean) = sum of delta * x_norm / inv */
        float sd = lanes_total(acc), sdn = lanes_total(acc + LANES), sdc = sdn / inv;
        l->bias_updates[i] += sd;
        if (l->scale_updates) l->scale_updates[i] += sdn;
        /* the reference scales delta by `scale` first, then reduces */
        float md = -inv * scale * sd, vd = -.5f * inv * inv * inv * scale * sdc;
        l->mean_delta[i] = md;
        l->variance_delta[i] = vd;
        for (int b = 0; b < batch; ++b) {
            size_t off = ((size_t)b * c + i) * spatial;
            backward_plane(delta + off, l->x_norm + off, spatial, scale * inv, vd * 2.f / denom / inv, md / n);
        }
    }
}
