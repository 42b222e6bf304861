/*
 * augment.c — training-time augmentation.
 *
 * Image lists follow upstream's classifier: a random window of the scaled,
 * rotated and aspect-jittered image (bilinear, black outside the image),
 * then HSV jitter. Arrays (IDX, CIFAR) get the papers' augmentation:
 * random horizontal flip and zero-pad + random crop. Any data may also get
 * random erasing (a rectangle of noise; Zhong et al. 2017).
 * Every random draw comes from the caller's rng, so a batch is reproducible.
 */
#include "data_internal.h"
#include <math.h>

float dn_rand_scale(uint64_t *rng, float s)
{
    if (s <= 0) s = 1;
    float f = dn_rand_uniform(rng, 1, s);
    return (dn_rand_u64(rng) & 1) ? f : 1.0f / f;
}

int dn_rand_int(uint64_t *rng, int lo, int hi)
{
    if (hi < lo) { int t = lo; lo = hi; hi = t; }
    uint64_t span = (uint64_t)((int64_t)hi - lo) + 1;
    return (int)((int64_t)lo + (int64_t)(dn_rand_u64(rng) % span));
}

/* Bilinear sample of channel k at (x, y), pixel centres on integers; the
 * four neighbours outside the image count as 0. */
static float sample_zero(const dn_image *im, int k, float x, float y)
{
    int x0 = (int)floorf(x), y0 = (int)floorf(y);
    float fx = x - x0, fy = y - y0, v = 0;
    for (int dy = 0; dy < 2; ++dy)
        for (int dx = 0; dx < 2; ++dx) {
            int xi = x0 + dx, yi = y0 + dy;
            if (xi < 0 || yi < 0 || xi >= im->w || yi >= im->h) continue;
            float wgt = (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
            v += wgt * dn_px(im, xi, yi, k);
        }
    return v;
}

void dn_augment_random_crop(const dn_image *in, const dn_loader_options *o, uint64_t *rng, dn_image *out)
{
    int w = out->w, h = out->h;
    float lo_r = o->min_ratio > 0 ? o->min_ratio : 1, hi_r = o->max_ratio > 0 ? o->max_ratio : 1;
    float a = dn_rand_scale(rng, o->aspect);                          /* width stretch */
    int r = dn_rand_int(rng, (int)(lo_r * w), (int)(hi_r * w));       /* shorter side after scaling */
    if (r < 1) r = 1;
    float shorter = in->w * a < in->h ? in->w * a : (float)in->h;
    float sy = r / shorter, sx = sy * a;                              /* scaled = in * (sx, sy) */
    float rad = dn_rand_uniform(rng, -o->angle, o->angle) * 3.14159265358979f / 180.0f;
    float mx = fabsf(in->w * sx - w) / 2, my = fabsf(in->h * sy - h) / 2;
    float dx = dn_rand_uniform(rng, -mx, mx), dy = dn_rand_uniform(rng, -my, my);
    float cs = cosf(rad), sn = sinf(rad);
    float icx = (in->w - 1) / 2.0f, icy = (in->h - 1) / 2.0f;
    float ocx = (w - 1) / 2.0f, ocy = (h - 1) / 2.0f;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            /* offset from the scaled image's centre, rotated, back to source pixels */
            float u = x - ocx + dx, v = y - ocy + dy;
            float su = (cs * u - sn * v) / sx, sv = (sn * u + cs * v) / sy;
            for (int k = 0; k < out->c; ++k)
                out->data[((size_t)k * h + y) * w + x] = sample_zero(in, k, icx + su, icy + sv);
        }
}

/* ------------------------------------------------------------ colour */

static void rgb_to_hsv(float r, float g, float b, float *h, float *s, float *v)
{
    float mx = fmaxf(r, fmaxf(g, b)), mn = fminf(r, fminf(g, b)), d = mx - mn;
    *v = mx;
    *s = mx > 0 ? d / mx : 0;
    if (d <= 0) { *h = 0; return; }
    float hh = mx == r ? (g - b) / d : mx == g ? 2 + (b - r) / d : 4 + (r - g) / d;
    hh /= 6;
    *h = hh < 0 ? hh + 1 : hh;
}

static void hsv_to_rgb(float h, float s, float v, float *r, float *g, float *b)
{
    float h6 = h * 6;
    int sector = (int)floorf(h6);
    float f = h6 - sector;
    float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    switch (((sector % 6) + 6) % 6) {
    case 0: *r = v; *g = t; *b = p; break;
    case 1: *r = q; *g = v; *b = p; break;
    case 2: *r = p; *g = v; *b = t; break;
    case 3: *r = p; *g = q; *b = v; break;
    case 4: *r = t; *g = p; *b = v; break;
    default: *r = v; *g = p; *b = q; break;
    }
}

void dn_augment_hsv(dn_image *im, float hue, float saturation, float exposure, uint64_t *rng)
{
    float dh = dn_rand_uniform(rng, -hue, hue);
    float ds = dn_rand_scale(rng, saturation);
    float de = dn_rand_scale(rng, exposure);
    if (dh == 0 && ds == 1 && de == 1) return;
    size_t plane = (size_t)im->w * im->h;
    if (im->c != 3) {
        for (size_t i = 0; i < plane * im->c; ++i) im->data[i] *= de;
        dn_image_clamp(im);
        return;
    }
    float *R = im->data, *G = R + plane, *B = G + plane;
    for (size_t i = 0; i < plane; ++i) {
        float h, s, v;
        rgb_to_hsv(R[i], G[i], B[i], &h, &s, &v);
        h += dh;
        h -= floorf(h);   /* wrap into [0,1) */
        hsv_to_rgb(h, s * ds, v * de, &R[i], &G[i], &B[i]);
    }
    dn_image_clamp(im);
}

/* ------------------------------------------------------------ arrays */

void dn_augment_array(const float *in, int w, int h, int c, int flip, int pad, uint64_t *rng, float *out)
{
    int ox = pad > 0 ? dn_rand_int(rng, -pad, pad) : 0;
    int oy = pad > 0 ? dn_rand_int(rng, -pad, pad) : 0;
    int mirror = flip ? (int)(dn_rand_u64(rng) & 1) : 0;
    for (int k = 0; k < c; ++k)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                /* source column: mirrored (or not), then shifted by the crop offset; 0 in the padding */
                int sx = (mirror ? w - 1 - x : x) + ox, sy = y + oy;
                float v = 0;
                if (sx >= 0 && sy >= 0 && sx < w && sy < h) v = in[((size_t)k * h + sy) * w + sx];
                out[((size_t)k * h + y) * w + x] = v;
            }
}

/* ------------------------------------------------------------ erasing */

#define ERASE_MIN_AREA 0.02f    /* the paper's s_l, s_h: the rectangle's share of the image */
#define ERASE_MAX_AREA 0.4f
#define ERASE_MIN_ASPECT 0.3f   /* the paper's r_1 (r_2 = 1/r_1): height / width */
#define ERASE_DRAWS 100

void dn_augment_erase(float *x, int w, int h, int c, float p, uint64_t *rng)
{
    if (!(p > 0) || w < 1 || h < 1 || c < 1) return;
    if (dn_rand_uniform(rng, 0, 1) >= p) return;
    float log_r = logf(ERASE_MIN_ASPECT);
    for (int t = 0; t < ERASE_DRAWS; ++t) {
        float area = dn_rand_uniform(rng, ERASE_MIN_AREA, ERASE_MAX_AREA) * (float)w * (float)h;
        float aspect = expf(dn_rand_uniform(rng, log_r, -log_r));
        int eh = (int)lroundf(sqrtf(area * aspect)), ew = (int)lroundf(sqrtf(area / aspect));
        if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
        int x0 = dn_rand_int(rng, 0, w - ew), y0 = dn_rand_int(rng, 0, h - eh);
        for (int k = 0; k < c; ++k)
            for (int y = y0; y < y0 + eh; ++y)
                for (int i = x0; i < x0 + ew; ++i) x[((size_t)k * h + y) * w + i] = dn_rand_uniform(rng, 0, 1);
        return;
    }
}
