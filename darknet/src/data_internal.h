/*
 * data_internal.h — private helpers shared by the data files: image
 * plumbing (image.c, image_geometry.c), augmentation (augment.c), in-memory
 * datasets (dataset.c), file sniffing (idx.c, cifar.c) and text lines
 * (lines.c). Nothing here is part of the public API.
 */
#ifndef DN_DATA_INTERNAL_H
#define DN_DATA_INTERNAL_H

#include "internal.h"

/* ------------------------------------------------------------ images */

/* Largest side and channel count dn_image_make accepts. */
#define DN_IMAGE_MAX_SIDE 65536
#define DN_IMAGE_MAX_CHANNELS 4096

/* Pixel (x, y) of channel k; no bounds check. */
static inline float dn_px(const dn_image *im, int x, int y, int k)
{
    return im->data[((size_t)k * im->h + y) * im->w + x];
}

/* Copy of `in` with c channels: equal counts copy, 1 -> 3 replicates gray,
 * 3 -> 1 keeps the first (red) plane, as dn_image_load and upstream. Others:
 * DN_ERR_SHAPE. */
dn_status dn_image_to_channels(const dn_image *in, int c, dn_image *out);
/* Mirror left-right in place. */
void dn_image_flip_x(dn_image *im);
/* Clamp every value to [0,1] in place. */
void dn_image_clamp(dn_image *im);
/* Bilinear resize (corner-aligned, as upstream) of the window
 * [x0, x0+ww) x [y0, y0+wh) of `in` onto all of `out` (same c, allocated). */
void dn_image_resize_window(const dn_image *in, int x0, int y0, int ww, int wh, dn_image *out);
/* A view of a float array as an image (no copy; do not free). */
static inline dn_image dn_image_view(float *data, int w, int h, int c)
{
    dn_image im = {w, h, c, data};
    return im;
}
/* Write `in` into x (w*h*c floats) at the requested shape: as-is when the
 * shape matches, else channel conversion and bilinear resize. */
dn_status dn_image_fit_into(const dn_image *in, int w, int h, int c, float *x);

/* ------------------------------------------------------------ augmentation */

/* s >= 1: uniform in [1, s], inverted with probability 1/2 (range [1/s, s]).
 * s <= 0 counts as 1 (no jitter). */
float dn_rand_scale(uint64_t *rng, float s);
/* Uniform integer in [lo, hi] (inclusive). */
int dn_rand_int(uint64_t *rng, int lo, int hi);

/* Upstream classifier crop: random scale (shorter side a random integer in
 * [min_ratio*w, max_ratio*w]), rotation within +-angle degrees, aspect
 * jitter and a random w x h window, sampled bilinearly (0 outside the image).
 * out must be allocated (w, h, in->c). */
void dn_augment_random_crop(const dn_image *in, const dn_loader_options *o, uint64_t *rng, dn_image *out);
/* HSV jitter: hue shift uniform in +-hue (wrapped), saturation and exposure
 * factors dn_rand_scale(S); clamps to [0,1]. One-channel images get only the
 * exposure factor. */
void dn_augment_hsv(dn_image *im, float hue, float saturation, float exposure, uint64_t *rng);
/* Array augmentation: random horizontal flip (flip) and zero-pad by pad then a
 * random crop back to w x h. in, out: (c, h, w), distinct. */
void dn_augment_array(const float *in, int w, int h, int c, int flip, int pad, uint64_t *rng, float *out);
/* Random erasing (Zhong et al. 2017, "Random Erasing Data Augmentation"):
 * with probability p, one rectangle of x (c, h, w) covering 2%..40% of the
 * image, aspect ratio in [0.3, 1/0.3] (log-uniform), at a uniform position,
 * is filled with uniform [0,1) noise in every channel (up to 100 draws for a
 * rectangle that fits; none fitting: x unchanged). p <= 0 draws nothing. */
void dn_augment_erase(float *x, int w, int h, int c, float p, uint64_t *rng);

/* ------------------------------------------------------------ datasets */

/* Allocate X (rows, w*h*c), y (rows, classes) zeroed and labels (rows). */
dn_status dn_dataset_alloc(dn_dataset *d, int rows, int w, int h, int c, int classes);
/* labels[i] = label and the one-hot row of y. */
void dn_dataset_set_label(dn_dataset *d, int i, int label);

/* 1 when path opens (gzipped or not) and starts with the IDX images magic. */
int dn_idx_is_images(const char *path);
/* 1 when path looks like a CIFAR-10 batch: name ends in ".bin", or its size is
 * a positive multiple of 3073 and its first byte is a label (0-9). */
int dn_cifar_is_batch(const char *path);

/* ------------------------------------------------------------ text lines */

/* The lines of a text file with leading and trailing whitespace (including
 * '\r') removed; blank lines are kept as "" so line numbers stay exact. */
typedef struct { char **line; int n; } dn_lines;
dn_status dn_lines_read(const char *path, dn_lines *out);
void dn_lines_free(dn_lines *l);

#endif /* DN_DATA_INTERNAL_H */
