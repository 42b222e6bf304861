/*
 * image_geometry.c — resampling: bilinear resize, letterbox (upstream
 * predict) and central-square crop + resize (upstream classifier valid).
 *
 * Bilinear is corner-aligned, as upstream's resize: output column x samples
 * source column x*(in_w-1)/(out_w-1), so the first and last columns of the
 * source and destination coincide and an equal-size resize is an exact copy.
 */
#include "data_internal.h"
#include <math.h>
#include <string.h>

/* Source coordinate of output index i (of n) inside a window [o, o+len). */
static void source_coord(int i, int n, int o, int len, int *i0, float *frac)
{
    double s = n > 1 ? (double)i * (len - 1) / (n - 1) : (len - 1) / 2.0;
    int f = (int)floor(s);
    double t = s - f;
    if (f >= len - 1) { f = len - 1; t = 0; }
    *i0 = o + f;
    *frac = (float)t;
}

void dn_image_resize_window(const dn_image *in, int x0, int y0, int ww, int wh, dn_image *out)
{
    for (int y = 0; y < out->h; ++y) {
        int iy; float fy;
        source_coord(y, out->h, y0, wh, &iy, &fy);
        int iy1 = fy > 0 ? iy + 1 : iy;
        for (int x = 0; x < out->w; ++x) {
            int ix; float fx;
            source_coord(x, out->w, x0, ww, &ix, &fx);
            int ix1 = fx > 0 ? ix + 1 : ix;
            for (int k = 0; k < out->c; ++k) {
                float top = (1 - fx) * dn_px(in, ix, iy, k) + fx * dn_px(in, ix1, iy, k);
                float bot = (1 - fx) * dn_px(in, ix, iy1, k) + fx * dn_px(in, ix1, iy1, k);
                out->data[((size_t)k * out->h + y) * out->w + x] = fy > 0 ? (1 - fy) * top + fy * bot : top;
            }
        }
    }
}

static dn_status check_in(const dn_image *in, const char *what)
{
    if (!in || !in->data || in->w < 1 || in->h < 1 || in->c < 1)
        return dn_fail(DN_ERR_ARG, "%s: invalid input image", what);
    return DN_OK;
}

dn_status dn_image_resize(const dn_image *in, int w, int h, dn_image *out)
{
    if (out) memset(out, 0, sizeof *out);
    DN_TRY(check_in(in, "dn_image_resize"));
    DN_TRY(dn_image_make(w, h, in->c, out));
    dn_image_resize_window(in, 0, 0, in->w, in->h, out);
    return DN_OK;
}

dn_status dn_image_letterbox(const dn_image *in, int w, int h, dn_image *out)
{
    if (out) memset(out, 0, sizeof *out);
    DN_TRY(check_in(in, "dn_image_letterbox"));
    /* fit the side with the smaller scale exactly; the other keeps the aspect */
    int nw = w, nh = h;
    if ((double)w / in->w < (double)h / in->h) nh = (int)((long long)in->h * w / in->w);
    else nw = (int)((long long)in->w * h / in->h);
    if (nw < 1) nw = 1;
    if (nh < 1) nh = 1;
    dn_image fit;
    DN_TRY(dn_image_resize(in, nw, nh, &fit));
    dn_status st = dn_image_make(w, h, in->c, out);
    if (st != DN_OK) { dn_image_free(&fit); return st; }
    size_t n = (size_t)w * h * in->c;
    for (size_t i = 0; i < n; ++i) out->data[i] = 0.5f;
    int ox = (w - nw) / 2, oy = (h - nh) / 2;   /* (c, h, w) paste at (ox, oy) */
    for (int k = 0; k < in->c; ++k)
        for (int y = 0; y < nh; ++y)
            memcpy(out->data + ((size_t)k * h + oy + y) * w + ox, fit.data + ((size_t)k * nh + y) * nw,
                   (size_t)nw * sizeof(float));
    dn_image_free(&fit);
    return DN_OK;
}

dn_status dn_image_center_crop_resize(const dn_image *in, int w, int h, dn_image *out)
{
    if (out) memset(out, 0, sizeof *out);
    DN_TRY(check_in(in, "dn_image_center_crop_resize"));
    int m = in->w < in->h ? in->w : in->h;
    DN_TRY(dn_image_make(w, h, in->c, out));
    dn_image_resize_window(in, (in->w - m) / 2, (in->h - m) / 2, m, m, out);
    return DN_OK;
}
