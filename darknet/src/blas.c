/*
 * blas.c — small vector kernels, activations, biases and batch normalisation
 * on the CPU. These are the reference every fast path is tested against.
 */
#include "internal.h"
#include <math.h>
#include <string.h>

void dn_fill(float *x, size_t n, float v) { for (size_t i = 0; i < n; ++i) x[i] = v; }
void dn_copy(float *dst, const float *src, size_t n) { if (n) memmove(dst, src, n * sizeof *dst); }
void dn_axpy(float *y, float a, const float *x, size_t n) { for (size_t i = 0; i < n; ++i) y[i] += a * x[i]; }
void dn_scal(float *x, float a, size_t n) { for (size_t i = 0; i < n; ++i) x[i] *= a; }

float dn_sum(const float *x, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; ++i) s += x[i];
    return s;
}

int dn_all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* ------------------------------------------------------------ activations */

static const char *const activation_names[DN_ACTIVATION_COUNT] = {
    [DN_LOGISTIC] = "logistic", [DN_RELU] = "relu", [DN_RELIE] = "relie",
    [DN_LINEAR] = "linear", [DN_RAMP] = "ramp", [DN_TANH] = "tanh",
    [DN_PLSE] = "plse", [DN_LEAKY] = "leaky", [DN_ELU] = "elu",
    [DN_LOGGY] = "loggy", [DN_STAIR] = "stair", [DN_HARDTAN] = "hardtan",
    [DN_LHTAN] = "lhtan", [DN_SELU] = "selu",
};

const char *dn_activation_name(dn_activation a)
{
    return (a >= 0 && a < DN_ACTIVATION_COUNT) ? activation_names[a] : "?";
}

dn_status dn_activation_from_name(const char *name, dn_activation *out)
{
    for (int i = 0; i < DN_ACTIVATION_COUNT; ++i)
        if (name && strcmp(name, activation_names[i]) == 0) { *out = (dn_activation)i; return DN_OK; }
    return dn_fail(DN_ERR_PARSE, "unknown activation '%s'", name ? name : "");
}

#define SELU_SCALE 1.0507f
#define SELU_ALPHA 1.6732f

float dn_activate(float x, dn_activation a)
{
    switch (a) {
    case DN_LOGISTIC: return 1.f / (1.f + expf(-x));
    case DN_RELU: return x * (x > 0);
    case DN_RELIE: return x > 0 ? x : .01f * x;
    case DN_LINEAR: return x;
    case DN_RAMP: return x * (x > 0) + .1f * x;
    case DN_TANH: return tanhf(x);
    case DN_PLSE:
        if (x < -4) return .01f * (x + 4);
        if (x > 4) return .01f * (x - 4) + 1;
        return .125f * x + .5f;
    case DN_LEAKY: return x > 0 ? x : .1f * x;
    case DN_ELU: return x >= 0 ? x : expf(x) - 1;
    case DN_LOGGY: return 2.f / (1.f + expf(-x)) - 1;
    case DN_STAIR: {
        int n = (int)floorf(x);
        if (n % 2 == 0) return floorf(x / 2);
        return (x - n) + floorf(x / 2);
    }
    case DN_HARDTAN: return x < -1 ? -1 : (x > 1 ? 1 : x);
    case DN_LHTAN:
        if (x < 0) return .001f * x;
        if (x > 1) return .001f * (x - 1) + 1;
        return x;
    case DN_SELU: return x >= 0 ? SELU_SCALE * x : SELU_SCALE * SELU_ALPHA * (expf(x) - 1);
    case DN_ACTIVATION_COUNT: break;
    }
    return x;
}

/* Derivative expressed through the output y, as upstream. */
float dn_gradient(float y, dn_activation a)
{
    switch (a) {
    case DN_LOGISTIC: return y * (1 - y);
    case DN_RELU: return y > 0;
    case DN_RELIE: return y > 0 ? 1 : .01f;
    case DN_LINEAR: return 1;
    case DN_RAMP: return (y > 0) + .1f;
    case DN_TANH: return 1 - y * y;
    case DN_PLSE: return (y < 0 || y > 1) ? .01f : .125f;
    case DN_LEAKY: return y > 0 ? 1 : .1f;
    case DN_ELU: return y >= 0 ? 1 : y + 1;
    case DN_LOGGY: { float s = (y + 1) / 2; return 2 * (1 - s) * s; }
    case DN_STAIR: return floorf(y) == y ? 0 : 1;
    case DN_HARDTAN: return (y > -1 && y < 1);
    case DN_LHTAN: return (y > 0 && y < 1) ? 1 : .001f;
    case DN_SELU: return y >= 0 ? SELU_SCALE : y + SELU_SCALE * SELU_ALPHA;
    case DN_ACTIVATION_COUNT: break;
    }
    return 1;
}

void dn_activate_array(float *x, size_t n, dn_activation a)
{
    switch (a) {
    case DN_LINEAR: return;
    case DN_RELU: for (size_t i = 0; i < n; ++i) x[i] = x[i] > 0 ? x[i] : 0; return;
    case DN_LEAKY: for (size_t i = 0; i < n; ++i) x[i] = x[i] > 0 ? x[i] : .1f * x[i]; return;
    default: for (size_t i = 0; i < n; ++i) x[i] = dn_activate(x[i], a); return;
    }
}

void dn_gradient_array(const float *y, size_t n, dn_activation a, float *delta)
{
    switch (a) {
    case DN_LINEAR: return;
    case DN_RELU: for (size_t i = 0; i < n; ++i) delta[i] = y[i] > 0 ? delta[i] : 0; return;
    case DN_LEAKY: for (size_t i = 0; i < n; ++i) delta[i] *= y[i] > 0 ? 1 : .1f; return;
    default: for (size_t i = 0; i < n; ++i) delta[i] *= dn_gradient(y[i], a); return;
    }
}

/* ------------------------------------------------------------ biases */

void dn_add_bias(float *out, const float *biases, int batch, int c, int spatial)
{
    for (int b = 0; b < batch; ++b)
        for (int i = 0; i < c; ++i) {
            float *p = out + ((size_t)b * c + i) * spatial;
            for (int s = 0; s < spatial; ++s) p[s] += biases[i];
        }
}

void dn_backward_bias(float *bias_updates, const float *delta, int batch, int c, int spatial)
{
    for (int b = 0; b < batch; ++b)
        for (int i = 0; i < c; ++i)
            bias_updates[i] += dn_sum(delta + ((size_t)b * c + i) * spatial, (size_t)spatial);
}

/* ------------------------------------------------------------ batch norm */

/* Batch statistics: mean and unbiased variance (as upstream) per channel. */
static void channel_stats(const float *x, int batch, int c, int spatial, float *mean, float *var)
{
    float n = (float)batch * spatial;
    float denom = n > 1 ? n - 1 : 1;
    for (int i = 0; i < c; ++i) {
        float s = 0;
        for (int b = 0; b < batch; ++b) s += dn_sum(x + ((size_t)b * c + i) * spatial, (size_t)spatial);
        mean[i] = s / n;
        float v = 0;
        for (int b = 0; b < batch; ++b) {
            const float *p = x + ((size_t)b * c + i) * spatial;
            for (int k = 0; k < spatial; ++k) v += (p[k] - mean[i]) * (p[k] - mean[i]);
        }
        var[i] = v / denom;
    }
}

static void normalize(float *x, const float *mean, const float *var, int batch, int c, int spatial)
{
    for (int i = 0; i < c; ++i) {
        float inv = 1.f / sqrtf(var[i] + DN_BN_EPSILON);
        for (int b = 0; b < batch; ++b) {
            float *p = x + ((size_t)b * c + i) * spatial;
            for (int k = 0; k < spatial; ++k) p[k] = (p[k] - mean[i]) * inv;
        }
    }
}

static void scale_channels(float *x, const float *scales, int batch, int c, int spatial)
{
    for (int b = 0; b < batch; ++b)
        for (int i = 0; i < c; ++i) dn_scal(x + ((size_t)b * c + i) * spatial, scales[i], (size_t)spatial);
}

void dn_batchnorm_forward_ref(dn_layer *l, float *data, int train)
{
    int c = l->out_c, spatial = l->out_w * l->out_h, batch = l->batch;
    size_t n = (size_t)batch * l->outputs;
    dn_copy(l->x, data, n);
    if (train) {
        channel_stats(data, batch, c, spatial, l->mean, l->variance);
        for (int i = 0; i < c; ++i) {
            l->rolling_mean[i] = .99f * l->rolling_mean[i] + .01f * l->mean[i];
            l->rolling_variance[i] = .99f * l->rolling_variance[i] + .01f * l->variance[i];
        }
        normalize(data, l->mean, l->variance, batch, c, spatial);
    } else {
        normalize(data, l->rolling_mean, l->rolling_variance, batch, c, spatial);
    }
    dn_copy(l->x_norm, data, n);
    scale_channels(data, l->scales, batch, c, spatial);
    dn_add_bias(data, l->biases, batch, c, spatial);
}

static void batchnorm_backward_frozen(dn_layer *l, float *delta);

/* Exact derivative of dn_batchnorm_forward (including the unbiased variance's
 * 1/(N-1)); when the forward used the rolling statistics they are constants. */
void dn_batchnorm_backward_ref(dn_layer *l, float *delta, int train)
{
    if (!train) { batchnorm_backward_frozen(l, delta); return; }
    int c = l->out_c, spatial = l->out_w * l->out_h, batch = l->batch;
    dn_backward_bias(l->bias_updates, delta, batch, c, spatial);
    if (l->scale_updates)
        for (int b = 0; b < batch; ++b)
            for (int i = 0; i < c; ++i) {
                size_t off = ((size_t)b * c + i) * spatial;
                float s = 0;
                for (int k = 0; k < spatial; ++k) s += delta[off + k] * l->x_norm[off + k];
                l->scale_updates[i] += s;
            }
    scale_channels(delta, l->scales, batch, c, spatial);

    float n = (float)batch * spatial;
    float denom = n > 1 ? n - 1 : 1;
    const float *mean = l->mean, *var = l->variance;
    for (int i = 0; i < c; ++i) {
        float inv = 1.f / sqrtf(var[i] + DN_BN_EPSILON);
        float md = 0, vd = 0;
        for (int b = 0; b < batch; ++b) {
            size_t off = ((size_t)b * c + i) * spatial;
            for (int k = 0; k < spatial; ++k) {
                md += delta[off + k];
                vd += delta[off + k] * (l->x[off + k] - mean[i]);
            }
        }
        md *= -inv;
        vd *= -.5f * inv * inv * inv;
        l->mean_delta[i] = md;
        l->variance_delta[i] = vd;
        for (int b = 0; b < batch; ++b) {
            size_t off = ((size_t)b * c + i) * spatial;
            for (int k = 0; k < spatial; ++k)
                delta[off + k] = delta[off + k] * inv + vd * 2.f * (l->x[off + k] - mean[i]) / denom + md / n;
        }
    }
}

/* Backward through batch norm when its statistics were the rolling ones
 * (inference-mode forward): y = scale*(x-m)/sqrt(v+eps) + b. */
static void batchnorm_backward_frozen(dn_layer *l, float *delta)
{
    int c = l->out_c, spatial = l->out_w * l->out_h, batch = l->batch;
    dn_backward_bias(l->bias_updates, delta, batch, c, spatial);
    for (int b = 0; b < batch; ++b)
        for (int i = 0; i < c; ++i) {
            size_t off = ((size_t)b * c + i) * spatial;
            float s = 0;
            for (int k = 0; k < spatial; ++k) s += delta[off + k] * l->x_norm[off + k];
            if (l->scale_updates) l->scale_updates[i] += s;
            dn_scal(delta + off, l->scales[i] / sqrtf(l->rolling_variance[i] + DN_BN_EPSILON), (size_t)spatial);
        }
}
