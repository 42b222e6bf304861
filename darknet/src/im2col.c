/*
 * im2col.c — unfold an image (c, h, w) into columns (c*k*k, out_h*out_w) so a
 * convolution becomes one GEMM, and fold columns back (adding) for backward.
 * Row r = (channel, ky, kx) matches the weight layout (filters, c, k, k).
 */
#include "internal.h"

void dn_im2col(const float *im, int c, int h, int w, int ksize, int stride, int pad,
               int out_h, int out_w, float *col)
{
    int rows = c * ksize * ksize;
    for (int r = 0; r < rows; ++r) {
        int kx = r % ksize, ky = (r / ksize) % ksize, ch = r / ksize / ksize;
        const float *src = im + (size_t)ch * h * w;
        float *dst = col + (size_t)r * out_h * out_w;
        for (int oy = 0; oy < out_h; ++oy) {
            int iy = oy * stride + ky - pad;
            float *d = dst + (size_t)oy * out_w;
            if (iy < 0 || iy >= h) { dn_fill(d, (size_t)out_w, 0); continue; }
            const float *s = src + (size_t)iy * w;
            for (int ox = 0; ox < out_w; ++ox) {
                int ix = ox * stride + kx - pad;
                d[ox] = (ix >= 0 && ix < w) ? s[ix] : 0;
            }
        }
    }
}

void dn_col2im(const float *col, int c, int h, int w, int ksize, int stride, int pad,
               int out_h, int out_w, float *im)
{
    int rows = c * ksize * ksize;
    for (int r = 0; r < rows; ++r) {
        int kx = r % ksize, ky = (r / ksize) % ksize, ch = r / ksize / ksize;
        float *dst = im + (size_t)ch * h * w;
        const float *src = col + (size_t)r * out_h * out_w;
        for (int oy = 0; oy < out_h; ++oy) {
            int iy = oy * stride + ky - pad;
            if (iy < 0 || iy >= h) continue;
            const float *s = src + (size_t)oy * out_w;
            float *d = dst + (size_t)iy * w;
            for (int ox = 0; ox < out_w; ++ox) {
                int ix = ox * stride + kx - pad;
                if (ix >= 0 && ix < w) d[ix] += s[ox];
            }
        }
    }
}
