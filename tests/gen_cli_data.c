/*
 * gen_cli_data.c — writes the tiny image dataset tests/test_cli.sh trains on:
 * two trivially separable classes of noisy RGB PNGs, "bright" (pixels in
 * [0.6,1]) and "dark" (pixels in [0,0.4]), named <dir>/<i>_<class>.png so the
 * class is found in the path (upstream's substring rule), plus <dir>.list.
 * Built by the test script itself with `cc gen_cli_data.c -lz`; needs only
 * zlib (PNG = zlib stream of filter-0 scanlines, CRC32 chunks).
 * It also writes fake CIFAR-10 binary batches (random pixels, labels 0-9).
 *
 *   gen_cli_data <dir> <images per class> <size> <seed>
 *   gen_cli_data -cifar <file.bin> <records> <seed>
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

/* RGB 8-bit PNG of s x s pixels from rgb (s*s*3 bytes, interleaved). */
static int write_png(const char *path, const unsigned char *rgb, int s)
{
    size_t raw_n = (size_t)s * (1 + 3 * s);
    unsigned char *raw = malloc(raw_n);
    uLongf z_n = compressBound(raw_n);
    unsigned char *z = malloc(z_n);
    FILE *f = fopen(path, "wb");
    int ok = raw && z && f;
    if (ok) {
        for (int y = 0; y < s; ++y) {
            raw[(size_t)y * (1 + 3 * s)] = 0;
            memcpy(raw + (size_t)y * (1 + 3 * s) + 1, rgb + (size_t)y * 3 * s, 3 * (size_t)s);
        }
        ok = compress(z, &z_n, raw, raw_n) == Z_OK;
    }
    unsigned char ihdr[13] = {0};
    put32(ihdr, s);
    put32(ihdr + 4, s);
    ihdr[8] = 8;   /* bit depth */
    ihdr[9] = 2;   /* colour type RGB */
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ok = ok && fwrite(sig, 1, 8, f) == 8 && chunk(f, "IHDR", ihdr, 13) && chunk(f, "IDAT", z, (uint32_t)z_n) &&
         chunk(f, "IEND", NULL, 0);
    if (f && fclose(f) != 0) ok = 0;
    free(raw);
    free(z);
    return ok;
}

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

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "-cifar") == 0) {
        srand((unsigned)atoi(argv[4]));
        return write_cifar(argv[2], atoi(argv[3]));
    }
    if (argc != 5) {
        fprintf(stderr, "usage: gen_cli_data <dir> <images per class> <size> <seed>\n"
                        "       gen_cli_data -cifar <file.bin> <records> <seed>\n");
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
            if (!write_png(path, rgb, s)) { perror(path); return 1; }
            fprintf(lf, "%s\n", path);
        }
    free(rgb);
    return fclose(lf) == 0 ? 0 : 1;
}
