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

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int chunk(FILE *f, const char *type, const unsigned char *data, uint32_t n)
{
    unsigned char head[8], tail[4];
    put32(head, n);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0, head + 4, 4);
    if (n) crc = crc32(crc, data, n);
    put32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (!n || fwrite(data, 1, n, f) == n) && fwrite(tail, 1, 4, f) == 4;
}

/* Gray 8-bit PNG of w x h pixels. */
static int write_png(const char *path, const unsigned char *px, int w, int h)
{
    size_t raw_n = (size_t)h * (1 + (size_t)w);
    unsigned char *raw = malloc(raw_n);
    uLongf z_n = compressBound(raw_n);
    unsigned char *z = malloc(z_n);
    FILE *f = fopen(path, "wb");
    int ok = raw && z && f;
    if (ok) {
        for (int y = 0; y < h; ++y) {
            raw[(size_t)y * (1 + w)] = 0;
            memcpy(raw + (size_t)y * (1 + w) + 1, px + (size_t)y * w, (size_t)w);
        }
        ok = compress(z, &z_n, raw, raw_n) == Z_OK;
    }
    unsigned char ihdr[13] = {0};
    put32(ihdr, (uint32_t)w);
    put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;   /* bit depth */
    ihdr[9] = 0;   /* colour type gray */
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ok = ok && fwrite(sig, 1, 8, f) == 8 && chunk(f, "IHDR", ihdr, 13) && chunk(f, "IDAT", z, (uint32_t)z_n) &&
         chunk(f, "IEND", NULL, 0);
    if (f && fclose(f) != 0) ok = 0;
    free(raw);
    free(z);
    return ok;
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
        if (!write_png(path, px, w, h)) { fprintf(stderr, "%s: cannot write\n", path); return 1; }
        if (gl) printf("%s %d\n", path, label);
    }
    free(px);
    gzclose(gi);
    if (gl) gzclose(gl);
    return 0;
}
