/*
 * png_write.h — a minimal 8-bit PNG writer for the test tools (gen_cli_data.c,
 * idx_to_png.c): one zlib stream of filter-0 scanlines, CRC32 chunks. Needs
 * only zlib. Header-only: each tool is a single file built by its test script.
 */
#ifndef PNG_WRITE_H
#define PNG_WRITE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void png_put32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static int png_chunk(FILE *f, const char *type, const unsigned char *data, uint32_t n)
{
    unsigned char head[8], tail[4];
    png_put32(head, n);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0, head + 4, 4);
    if (n) crc = crc32(crc, data, n);
    png_put32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (!n || fwrite(data, 1, n, f) == n) && fwrite(tail, 1, 4, f) == 4;
}

/* w x h pixels of `channels` bytes each (1: gray, 3: interleaved RGB) -> path; 1 on success. */
static int png_write(const char *path, const unsigned char *px, int w, int h, int channels)
{
    size_t row = (size_t)w * channels, raw_n = (size_t)h * (1 + row);
    unsigned char *raw = malloc(raw_n);
    uLongf z_n = compressBound(raw_n);
    unsigned char *z = malloc(z_n);
    FILE *f = fopen(path, "wb");
    int ok = raw && z && f;
    if (ok) {
        for (int y = 0; y < h; ++y) {
            raw[(size_t)y * (1 + row)] = 0;
            memcpy(raw + (size_t)y * (1 + row) + 1, px + (size_t)y * row, row);
        }
        ok = compress(z, &z_n, raw, raw_n) == Z_OK;
    }
    unsigned char ihdr[13] = {0};
    png_put32(ihdr, (uint32_t)w);
    png_put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;                          /* bit depth */
    ihdr[9] = channels == 3 ? 2 : 0;      /* colour type: RGB or gray */
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ok = ok && fwrite(sig, 1, 8, f) == 8 && png_chunk(f, "IHDR", ihdr, 13) &&
         png_chunk(f, "IDAT", z, (uint32_t)z_n) && png_chunk(f, "IEND", NULL, 0);
    if (f && fclose(f) != 0) ok = 0;
    free(raw);
    free(z);
    return ok;
}

#endif
