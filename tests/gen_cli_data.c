/*
 * gen_cli_data.c — writes the tiny image dataset tests/test_cli.sh trains on:
 * two trivially separable classes of noisy RGB PNGs, "bright" (pixels in
 * [0.6,1]) and "dark" (pixels in [0,0.4]), named <dir>/<i>_<class>.png so the
 * class is found in the path (upstream's substring rule), plus <dir>.list.
 * Built by the test script itself with `cc gen_cli_data.c -lz`; needs only
 * zlib (PNG = zlib stream of filter-0 scanlines, CRC32 chunks).
 * It also writes fake CIFAR-10 binary batches (random pixels, labels 0-9), and
 * one RGB PNG of a single colour (whose R, G and B planes may differ).
 *
 *   gen_cli_data <dir> <images per class> <size> <seed>
 *   gen_cli_data -cifar <file.bin> <records> <seed>
 *   gen_cli_data -rgb <file.png> <size> <r> <g> <b>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "png_write.h"

static int write_cifar(const char *path, int records)
{
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return 1; }
    unsigned char rec[3073];
    for (int r = 0; r < records; ++r) {
        rec[0] = (unsigned char)(r % 10);
        for (int p = 1; p < 3073; ++p) rec[p] = (unsigned char)(rand() & 255);
        if (fwrite(rec, 1, sizeof rec, f) != sizeof rec) { perror(path); fclose(f); return 1; }
    }
    return fclose(f) == 0 ? 0 : 1;
}

/* A size x size PNG whose every pixel is (r, g, b). */
static int write_solid(const char *path, int s, int r, int g, int b)
{
    if (s < 1 || s > 1024) { fprintf(stderr, "gen_cli_data: bad size\n"); return 2; }
    unsigned char *rgb = malloc((size_t)s * s * 3);
    if (!rgb) return 1;
    for (int p = 0; p < s * s; ++p) {
        rgb[3 * p] = (unsigned char)r;
        rgb[3 * p + 1] = (unsigned char)g;
        rgb[3 * p + 2] = (unsigned char)b;
    }
    int ok = png_write(path, rgb, s, s, 3);
    free(rgb);
    if (!ok) { perror(path); return 1; }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "-rgb") == 0)
        return write_solid(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
    if (argc == 5 && strcmp(argv[1], "-cifar") == 0) {
        srand((unsigned)atoi(argv[4]));
        return write_cifar(argv[2], atoi(argv[3]));
    }
    if (argc != 5) {
        fprintf(stderr, "usage: gen_cli_data <dir> <images per class> <size> <seed>\n"
                        "       gen_cli_data -cifar <file.bin> <records> <seed>\n"
                        "       gen_cli_data -rgb <file.png> <size> <r> <g> <b>\n");
        return 2;
    }
    const char *dir = argv[1];
    int per = atoi(argv[2]), s = atoi(argv[3]);
    srand((unsigned)atoi(argv[4]));
    if (per < 1 || s < 1 || s > 1024) { fprintf(stderr, "gen_cli_data: bad count or size\n"); return 2; }
    static const char *const names[2] = {"bright", "dark"};
    unsigned char *rgb = malloc((size_t)s * s * 3);
    char path[4096], list[4096];
    snprintf(list, sizeof list, "%s.list", dir);
    FILE *lf = fopen(list, "w");
    if (!rgb || !lf) { perror(list); return 1; }
    for (int i = 0; i < per; ++i)
        for (int k = 0; k < 2; ++k) {
            int lo = k == 0 ? 153 : 0;
            for (int p = 0; p < s * s * 3; ++p) rgb[p] = (unsigned char)(lo + rand() % 103);
            snprintf(path, sizeof path, "%s/%d_%s.png", dir, i, names[k]);
            if (!png_write(path, rgb, s, s, 3)) { perror(path); return 1; }
            fprintf(lf, "%s\n", path);
        }
    free(rgb);
    return fclose(lf) == 0 ? 0 : 1;
}
