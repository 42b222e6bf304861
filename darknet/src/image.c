/*
 * image.c — dn_image lifecycle: make, load through stb_image, save as PNG
 * through stb_image_write (written atomically), free; and the small helpers
 * the loaders share (channel conversion, flip, clamp).
 * Images are (c, h, w) float planes in [0,1]; files are (h, w, c) bytes.
 */
#include "data_internal.h"
#include <stdlib.h>
#include <string.h>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

dn_status dn_image_make(int w, int h, int c, dn_image *out)
{
    if (!out) return dn_fail(DN_ERR_ARG, "dn_image_make: no output image");
    memset(out, 0, sizeof *out);
    if (w < 1 || h < 1 || c < 1 || w > DN_IMAGE_MAX_SIDE || h > DN_IMAGE_MAX_SIDE || c > DN_IMAGE_MAX_CHANNELS)
        return dn_fail(DN_ERR_ARG, "image shape %d x %d x %d is invalid", w, h, c);
    out->data = dn_calloc((size_t)w * h * c, sizeof(float));
    if (!out->data) return dn_fail_context(DN_ERR_NOMEM, "image %d x %d x %d", w, h, c);
    out->w = w;
    out->h = h;
    out->c = c;
    return DN_OK;
}

void dn_image_free(dn_image *im)
{
    if (!im) return;
    free(im->data);
    memset(im, 0, sizeof *im);
}

dn_status dn_image_load(const char *path, int channels, dn_image *out)
{
    if (!out) return dn_fail(DN_ERR_ARG, "dn_image_load: no output image");
    memset(out, 0, sizeof *out);
    if (!path) return dn_fail(DN_ERR_ARG, "dn_image_load: no path");
    if (channels < 0 || channels > 4)
        return dn_fail(DN_ERR_ARG, "%s: cannot load with %d channels (0 keeps the file's, 1-4 force)", path,
                       channels);
    FILE *f;
    DN_TRY(dn_fopen_regular(path, "image", &f));
    /* Fewer than 3 channels: decode RGB and keep the first planes, as upstream
     * (it loads every classifier image as RGB; a 1-channel network reads the
     * red plane). A gray file has R = G = B, so its values are unchanged. */
    int req = channels == 1 || channels == 2 ? 3 : channels;
    int w = 0, h = 0, n = 0;
    unsigned char *px = stbi_load_from_file(f, &w, &h, &n, req);   /* (h, w, req or n) */
    fclose(f);
    if (!px) {
        const char *why = stbi_failure_reason();
        return dn_fail(DN_ERR_DATA, "%s: cannot decode image: %s", path, why ? why : "unknown reason");
    }
    int c = channels ? channels : n, stride = req ? req : n;
    dn_status st = dn_image_make(w, h, c, out);
    if (st != DN_OK) {
        stbi_image_free(px);
        return dn_fail_context(st, "%s", path);
    }
    for (int k = 0; k < c; ++k)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                out->data[((size_t)k * h + y) * w + x] = px[((size_t)y * w + x) * stride + k] / 255.0f;
    stbi_image_free(px);
    return DN_OK;
}

/* ------------------------------------------------------------ PNG output */

typedef struct { unsigned char *buf; size_t len, cap; int failed; } png_sink;

static void png_append(void *ctx, void *data, int size)
{
    png_sink *s = ctx;
    if (s->failed || size <= 0) return;
    if (s->len + (size_t)size > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + (size_t)size) cap *= 2;
        unsigned char *nb = realloc(s->buf, cap);
        if (!nb) { s->failed = 1; return; }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, (size_t)size);
    s->len += (size_t)size;
}

dn_status dn_image_save_png(const dn_image *im, const char *path)
{
    if (!path) return dn_fail(DN_ERR_ARG, "dn_image_save_png: no path");
    if (!im || !im->data || im->w < 1 || im->h < 1 || im->c < 1 || im->c > 4)
        return dn_fail(DN_ERR_ARG, "%s: cannot save an image of shape %d x %d x %d as PNG (1-4 channels)", path,
                       im ? im->w : 0, im ? im->h : 0, im ? im->c : 0);
    size_t n = (size_t)im->w * im->h * im->c;
    unsigned char *px = dn_calloc(n, 1);   /* (h, w, c) */
    if (!px) return dn_fail_context(DN_ERR_NOMEM, "%s", path);
    for (int k = 0; k < im->c; ++k)
        for (int y = 0; y < im->h; ++y)
            for (int x = 0; x < im->w; ++x) {
                float v = dn_px(im, x, y, k);
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                px[((size_t)y * im->w + x) * im->c + k] = (unsigned char)(v * 255.0f + 0.5f);
            }
    png_sink s = {0};
    int ok = stbi_write_png_to_func(png_append, &s, im->w, im->h, im->c, px, im->w * im->c);
    free(px);
    if (!ok || s.failed) {
        free(s.buf);
        return dn_fail(s.failed ? DN_ERR_NOMEM : DN_ERR_IO, "%s: cannot encode PNG", path);
    }
    dn_status st = dn_write_file_atomic(path, s.buf, s.len);
    free(s.buf);
    return st;
}

/* ------------------------------------------------------------ helpers */

dn_status dn_image_to_channels(const dn_image *in, int c, dn_image *out)
{
    int ok = in->c == c || (in->c == 1 && c == 3) || (in->c == 3 && c == 1);
    if (!ok) {
        memset(out, 0, sizeof *out);
        return dn_fail(DN_ERR_SHAPE, "cannot convert a %d-channel image to %d channels", in->c, c);
    }
    DN_TRY(dn_image_make(in->w, in->h, c, out));
    size_t plane = (size_t)in->w * in->h;
    if (in->c == c) {
        memcpy(out->data, in->data, plane * c * sizeof(float));
    } else if (c == 3) {
        for (int k = 0; k < 3; ++k) memcpy(out->data + k * plane, in->data, plane * sizeof(float));
    } else {
        memcpy(out->data, in->data, plane * sizeof(float));   /* the red plane, as dn_image_load */
    }
    return DN_OK;
}

void dn_image_flip_x(dn_image *im)
{
    for (int k = 0; k < im->c; ++k)
        for (int y = 0; y < im->h; ++y) {
            float *row = im->data + ((size_t)k * im->h + y) * im->w;
            for (int a = 0, b = im->w - 1; a < b; ++a, --b) {
                float t = row[a];
                row[a] = row[b];
                row[b] = t;
            }
        }
}

void dn_image_clamp(dn_image *im)
{
    size_t n = (size_t)im->w * im->h * im->c;
    for (size_t i = 0; i < n; ++i) im->data[i] = im->data[i] < 0 ? 0 : im->data[i] > 1 ? 1 : im->data[i];
}

dn_status dn_image_fit_into(const dn_image *in, int w, int h, int c, float *x)
{
    size_t n = (size_t)w * h * c;
    if (in->w == w && in->h == h && in->c == c) {
        memcpy(x, in->data, n * sizeof(float));
        return DN_OK;
    }
    dn_image conv;
    DN_TRY(dn_image_to_channels(in, c, &conv));
    dn_image out = dn_image_view(x, w, h, c);
    dn_image_resize_window(&conv, 0, 0, conv.w, conv.h, &out);
    dn_image_free(&conv);
    return DN_OK;
}
