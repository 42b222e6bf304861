/*
 * idx_to_png.c — writes the first N images of an IDX image file (MNIST /
 * Fashion-MNIST, gzipped or not) as 8-bit grayscale PNGs <dir>/<i>.png and
 * prints "<path> <label>" per image when a label file is given. Used by
 * tests/test_evolve.sh to feed test images to `darknet classifier predict`
 * (ours and Debian's upstream). Needs only zlib; built by the test script.
 *
 *   idx_to_png <images.idx[.gz]> <labels.idx[.gz]|-> <dir> <count>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "png_write.h"

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int read_exact(gzFile g, void *buf, unsigned n)
{
    return gzread(g, buf, n) == (int)n;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: idx_to_png <images.idx[.gz]> <labels.idx[.gz]|-> <dir> <count>\n");
        return 2;
    }
    int count = atoi(argv[4]);
    gzFile gi = gzopen(argv[1], "rb");
    gzFile gl = strcmp(argv[2], "-") ? gzopen(argv[2], "rb") : NULL;
    unsigned char hi[16], hl[8];
    if (!gi || !read_exact(gi, hi, 16) || get32(hi) != 0x803) { fprintf(stderr, "%s: not an IDX image file\n", argv[1]); return 1; }
    if (strcmp(argv[2], "-") && (!gl || !read_exact(gl, hl, 8) || get32(hl) != 0x801)) {
        fprintf(stderr, "%s: not an IDX label file\n", argv[2]);
        return 1;
    }
    int n = (int)get32(hi + 4), h = (int)get32(hi + 8), w = (int)get32(hi + 12);
    if (count > n) count = n;
    unsigned char *px = malloc((size_t)w * h);
    if (!px) return 1;
    for (int i = 0; i < count; ++i) {
        unsigned char label = 0;
        if (!read_exact(gi, px, (unsigned)(w * h)) || (gl && !read_exact(gl, &label, 1))) {
            fprintf(stderr, "truncated IDX file\n");
            return 1;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%d.png", argv[3], i);
        if (!png_write(path, px, w, h, 1)) { fprintf(stderr, "%s: cannot write\n", path); return 1; }
        if (gl) printf("%s %d\n", path, label);
    }
    free(px);
    gzclose(gi);
    if (gl) gzclose(gl);
    return 0;
}
