/*
 * conv_depthwise.c — direct kernels for depthwise convolutions
 * (groups == channels == filters: one size x size filter per channel), where
 * im2col + a GEMM with one row is the wrong tool.
 *
 *   in (batch, c, h, w)   weights (c, size, size)   out (batch, c, out_h, out_w)
 *
 * Every function handles channels [c0, c1) only, so workers can split the
 * channels without sharing any output (results do not depend on the split).
 */
#include "internal.h"

/* Output columns [*lo, *hi) whose input column ox*stride + off lies in [0, w). */
static void valid_cols(int out_w, int w, int stride, int off, int *lo, int *hi)
{
    int a = off < 0 ? (-off + stride - 1) / stride : 0;
    int b = w - off <= 0 ? 0 : (w - off - 1) / stride + 1;
    if (b > out_w) b = out_w;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

void dn_depthwise_forward(const dn_depthwise *p, const float *in, const float *wts, float *out, int c0, int c1)
{
    size_t in_hw = (size_t)p->h * p->w, out_hw = (size_t)p->out_h * p->out_w;
    for (int b = 0; b < p->batch; ++b)
        for (int ch = c0; ch < c1; ++ch) {
            const float *src = in + ((size_t)b * p->c + ch) * in_hw;
            float *dst = out + ((size_t)b * p->c + ch) * out_hw;
            dn_fill(dst, out_hw, 0);
            for (int ky = 0; ky < p->size; ++ky)
                for (int kx = 0; kx < p->size; ++kx) {
                    float wv = wts[((size_t)ch * p->size + ky) * p->size + kx];
                    int off = kx - p->pad, lo, hi;
                    valid_cols(p->out_w, p->w, p->stride, off, &lo, &hi);
                    for (int oy = 0; oy < p->out_h; ++oy) {
                        int iy = oy * p->stride + ky - p->pad;
                        if (iy < 0 || iy >= p->h) continue;
                        const float *s = src + (size_t)iy * p->w;
                        float *d = dst + (size_t)oy * p->out_w;
                        if (p->stride == 1)
                            for (int ox = lo; ox < hi; ++ox) d[ox] += wv * s[ox + off];
                        else
                            for (int ox = lo; ox < hi; ++ox) d[ox] += wv * s[ox * p->stride + off];
                    }
                }
        }
}

/* weight_updates (c, size, size) += sum over the batch of delta x input;
 * in_delta (when not NULL) += the input gradient. tmp: size*size*out_w floats
 * of per-column partial sums of the weight gradient (one row per tap). */
void dn_depthwise_backward(const dn_depthwise *p, const float *in, const float *wts, const float *delta,
                           float *weight_updates, float *in_delta, float *tmp, int c0, int c1)
{
    size_t in_hw = (size_t)p->h * p->w, out_hw = (size_t)p->out_h * p->out_w;
    int taps = p->size * p->size;
    for (int ch = c0; ch < c1; ++ch) {
        dn_fill(tmp, (size_t)taps * p->out_w, 0);
        for (int b = 0; b < p->batch; ++b) {
            const float *src = in + ((size_t)b * p->c + ch) * in_hw;
            const float *dl = delta + ((size_t)b * p->c + ch) * out_hw;
            float *di = in_delta ? in_delta + ((size_t)b * p->c + ch) * in_hw : NULL;
            for (int oy = 0; oy < p->out_h; ++oy) {
                const float *d = dl + (size_t)oy * p->out_w;
                for (int ky = 0; ky < p->size; ++ky) {
                    int iy = oy * p->stride + ky - p->pad;
                    if (iy < 0 || iy >= p->h) continue;
                    const float *s = src + (size_t)iy * p->w;
                    float *t = di ? di + (size_t)iy * p->w : NULL;
                    for (int kx = 0; kx < p->size; ++kx) {
                        int off = kx - p->pad, lo, hi;
                        valid_cols(p->out_w, p->w, p->stride, off, &lo, &hi);
                        float *acc = tmp + (size_t)(ky * p->size + kx) * p->out_w;
                        for (int ox = lo; ox < hi; ++ox) acc[ox] += d[ox] * s[ox * p->stride + off];
                        if (!t) continue;
                        float wv = wts[((size_t)ch * p->size + ky) * p->size + kx];
                        for (int ox = lo; ox < hi; ++ox) t[ox * p->stride + off] += wv * d[ox];
                    }
                }
            }
        }
        for (int k = 0; k < taps; ++k)
            weight_updates[(size_t)ch * taps + k] += dn_sum(tmp + (size_t)k * p->out_w, (size_t)p->out_w);
    }
}
