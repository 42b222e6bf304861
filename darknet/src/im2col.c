/*
 * im2col.c — unfold an image (c, h, w) into columns (c*k*k, out_h*out_w) so a
 * convolution becomes one GEMM, and fold columns back (adding) for backward.
 * Row r = (channel, ky, kx) matches the weight layout (filters, c, k, k).
 *
 * The _ld variants write/read row r at col + r*ldc, so the columns of several
 * images can sit side by side in one (c*k*k, batch*out_h*out_w) matrix.
 * Inner loops split the padded border off so the interior is branch-free.
 */
#include "internal.h"

/* Output columns [*lo, *hi) whose input x = ox*stride + kx - pad lies in [0, w). */
static void valid_range(int out_w, int w, int stride, int off, int *lo, int *hi)
{
    int a = off < 0 ? (-off + stride - 1) / stride : 0;        /* first ox with x >= 0 */
    int b = w - off <= 0 ? 0 : (w - off - 1) / stride + 1;     /* first ox with x >= w */
    if (b > out_w) b = out_w;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

void dn_im2col_ld(const float *im, int c, int h, int w, int ksize, int stride, int pad,
                  int out_h, int out_w, float *col, size_t ldc)
{
    int rows = c * ksize * ksize;
    for (int r = 0; r < rows; ++r) {
        int kx = r % ksize, ky = (r / ksize) % ksize, ch = r / ksize / ksize;
        const float *src = im + (size_t)ch * h * w;
        float *dst = col + (size_t)r * ldc;
        int off = kx - pad, lo, hi;
        valid_range(out_w, w, stride, off, &lo, &hi);
        for (int oy = 0; oy < out_h; ++oy) {
            int iy = oy * stride + ky - pad;
            float *d = dst + (size_t)oy * out_w;
            if (iy < 0 || iy >= h) { dn_fill(d, (size_t)out_w, 0); continue; }
            const float *s = src + (size_t)iy * w;
            for (int ox = 0; ox < lo; ++ox) d[ox] = 0;
            if (stride == 1)
                for (int ox = lo; ox < hi; ++ox) d[ox] = s[ox + off];
            else
                for (int ox = lo; ox < hi; ++ox) d[ox] = s[ox * stride + off];
            for (int ox = hi; ox < out_w; ++ox) d[ox] = 0;
        }
    }
}

void dn_col2im_ld(const float *col, size_t ldc, int c, int h, int w, int ksize, int stride, int pad,
                  int out_h, int out_w, float *im)
{
    int rows = c * ksize * ksize;
    for (int r = 0; r < rows; ++r) {
        int kx = r % ksize, ky = (r / ksize) % ksize, ch = r / ksize / ksize;
        float *dst = im + (size_t)ch * h * w;
        const float *src = col + (size_t)r * ldc;
        int off = kx - pad, lo, hi;
        valid_range(out_w, w, stride, off, &lo, &hi);
        for (int oy = 0; oy < out_h; ++oy) {
            int iy = oy * stride + ky - pad;
            if (iy < 0 || iy >= h) continue;
            const float *s = src + (size_t)oy * out_w;
            float *d = dst + (size_t)iy * w;
            if (stride == 1)
                for (int ox = lo; ox < hi; ++ox) d[ox + off] += s[ox];
            else
                for (int ox = lo; ox < hi; ++ox) d[ox * stride + off] += s[ox];
        }
    }
}

void dn_im2col(const float *im, int c, int h, int w, int ksize, int stride, int pad,
               int out_h, int out_w, float *col)
{
    dn_im2col_ld(im, c, h, w, ksize, stride, pad, out_h, out_w, col, (size_t)out_h * out_w);
}

void dn_col2im(const float *col, int c, int h, int w, int ksize, int stride, int pad,
               int out_h, int out_w, float *im)
{
    dn_col2im_ld(col, (size_t)out_h * out_w, c, h, w, ksize, stride, pad, out_h, out_w, im);
}
