/*
 * test_data.c — the data section of darknet.h: images (load/save, resize,
 * letterbox, central crop), IDX and CIFAR-10 files, .data files, splits
 * (label matching by substring), the background loader (shapes, targets,
 * reproducibility, augmentation), and every bad input with its message,
 * FIFOs and devices included (refused at once, never read).
 * All files are generated in a mkdtemp directory; the real Fashion-MNIST
 * files are checked when present.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "darknet.h"
#include "testlib.h"
#include "testtmp.h"
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <stb/stb_image_write.h>

/* ------------------------------------------------------------ helpers */



static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (fwrite(data, 1, n, f) != n) { perror(path); exit(2); }
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile f = gzopen(path, "wb");
    if (!f || gzwrite(f, data, (unsigned)n) != (int)n) { fprintf(stderr, "%s: gz write failed\n", path); exit(2); }
    gzclose(f);
}

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = v >> 24; b[1] = v >> 16; b[2] = v >> 8; b[3] = v;
}

/* Fills buf with an IDX images file of n images (rows x cols); returns its size. */
static size_t idx_images(unsigned char *buf, uint32_t magic, int n, int rows, int cols)
{
    put_be32(buf, magic); put_be32(buf + 4, n); put_be32(buf + 8, rows); put_be32(buf + 12, cols);
    for (int i = 0; i < n * rows * cols; ++i) buf[16 + i] = (unsigned char)((i * 7 + 3) % 256);
    return 16 + (size_t)n * rows * cols;
}

static size_t idx_labels(unsigned char *buf, int n, int classes)
{
    put_be32(buf, 0x801); put_be32(buf + 4, n);
    for (int i = 0; i < n; ++i) buf[8 + i] = (unsigned char)(i % classes);
    return 8 + (size_t)n;
}

/* Warnings are collected here */
static char warnings[8192];
static int nwarnings;
static void sink(const char *msg, void *user)
{
    (void)user;
    ++nwarnings;
    size_t len = strlen(warnings);
    snprintf(warnings + len, sizeof warnings - len, "%s\n", msg);
}
static void clear_warnings(void) { warnings[0] = 0; nwarnings = 0; }

#define CHECK_ERR(expr, status, substr)                                                          \
    do {                                                                                          \
        dn_status te_s = (expr);                                                                  \
        CHECK(te_s == (status) && strstr(dn_last_error(), (substr)), "%s -> %s: '%s' (want %s with '%s')", \
              #expr, dn_status_name(te_s), dn_last_error(), dn_status_name(status), (substr));  \
    } while (0)


/* A w x h PNG with c channels whose pixel (x, y, k) is pix(seed, x, y, k). */
static unsigned char pix(int seed, int x, int y, int k) { return (unsigned char)((seed * 53 + x * 29 + y * 11 + k * 80) % 256); }

static void write_png(const char *path, int w, int h, int c, int seed)
{
    unsigned char px[64 * 64 * 3];
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int k = 0; k < c; ++k) px[(y * w + x) * c + k] = pix(seed, x, y, k);
    if (!stbi_write_png(path, w, h, c, px, w * c)) { fprintf(stderr, "%s: png write failed\n", path); exit(2); }
}

static int near(float a, float b) { return fabsf(a - b) < 1e-6f; }

/* ------------------------------------------------------------ images */

static void test_image_io(void)
{
    dn_image im;
    CHECK_OK(dn_image_make(3, 2, 3, &im));
    CHECK(im.w == 3 && im.h == 2 && im.c == 3 && im.data && im.data[17] == 0, "make");
    for (int i = 0; i < 18; ++i) im.data[i] = (i * 13 % 256) / 255.0f;
    CHECK_OK(dn_image_save_png(&im, tp("rt.png")));
    dn_image back;
    CHECK_OK(dn_image_load(tp("rt.png"), 0, &back));
    int same = back.w == 3 && back.h == 2 && back.c == 3;
    for (int i = 0; same && i < 18; ++i) same = back.data[i] == im.data[i];
    CHECK(same, "PNG round trip is exact on /255 values");
    dn_image_free(&back);
    CHECK_OK(dn_image_load(tp("rt.png"), 1, &back));
    CHECK(back.c == 1 && back.w == 3 && back.h == 2, "forced gray has 1 channel");
    dn_image_free(&back);
    dn_image_free(&im);
    CHECK(im.data == NULL, "free clears");
    dn_image_free(NULL);

    /* file layout (h, w, c) -> planes (c, h, w) */
    write_png(tp("p.png"), 5, 4, 3, 1);
    CHECK_OK(dn_image_load(tp("p.png"), 3, &im));
    CHECK(im.w == 5 && im.h == 4 && im.c == 3, "shape %dx%dx%d", im.w, im.h, im.c);
    CHECK(im.data[(2 * 4 + 3) * 5 + 1] == pix(1, 1, 3, 2) / 255.0f, "pixel (1,3) of channel 2");
    dn_image_free(&im);

    CHECK_ERR(dn_image_make(0, 2, 3, &im), DN_ERR_ARG, "invalid");
    CHECK_ERR(dn_image_load(tp("missing.png"), 3, &im), DN_ERR_IO, "missing.png: cannot open image: No such file");
    CHECK(im.data == NULL, "no image on failure");
    write_text(tp("bad.png"), "this is not an image at all");
    CHECK_ERR(dn_image_load(tp("bad.png"), 3, &im), DN_ERR_DATA, "bad.png: cannot decode image: ");
    /* a valid PNG cut short */
    char *png; size_t n;
    FILE *f = fopen(tp("p.png"), "rb");
    png = malloc(4096);
    n = fread(png, 1, 4096, f);
    fclose(f);
    write_file(tp("cut.png"), png, n / 2);
    free(png);
    CHECK_ERR(dn_image_load(tp("cut.png"), 3, &im), DN_ERR_DATA, "cut.png: cannot decode image");
    CHECK_ERR(dn_image_load(tp("p.png"), 7, &im), DN_ERR_ARG, "7 channels");

    /* fewer channels than the file: the first planes of RGB, as upstream (red, not luma) */
    write_png(tp("rgb.png"), 5, 4, 3, 2);
    CHECK_OK(dn_image_load(tp("rgb.png"), 1, &im));
    int red = im.c == 1 && im.w == 5 && im.h == 4;
    for (int y = 0; red && y < 4; ++y)
        for (int x = 0; x < 5; ++x) red &= im.data[y * 5 + x] == pix(2, x, y, 0) / 255.0f;
    CHECK(red, "1 channel from RGB is the red plane");
    dn_image_free(&im);
    CHECK_OK(dn_image_load(tp("rgb.png"), 2, &im));
    CHECK(im.c == 2 && im.data[20 + 6] == pix(2, 1, 1, 1) / 255.0f, "2 channels from RGB are R and G");
    dn_image_free(&im);
    write_png(tp("gray.png"), 5, 4, 1, 3);
    dn_image g3;
    CHECK_OK(dn_image_load(tp("gray.png"), 1, &im));
    CHECK_OK(dn_image_load(tp("gray.png"), 3, &g3));
    int gray = im.c == 1 && g3.c == 3;
    for (int i = 0; gray && i < 20; ++i)
        gray = im.data[i] == pix(3, i % 5, i / 5, 0) / 255.0f && g3.data[i] == im.data[i] && g3.data[20 + i] == im.data[i] &&
               g3.data[40 + i] == im.data[i];
    CHECK(gray, "a gray file: R = G = B = its values, and 1 channel keeps them");
    dn_image_free(&im);
    dn_image_free(&g3);
    CHECK_OK(dn_image_make(2, 2, 1, &im));
    CHECK_ERR(dn_image_save_png(&im, tp("nodir/x.png")), DN_ERR_IO, "nodir/x.png");
    dn_image_free(&im);
}

static void test_resize(void)
{
    dn_image a, b;
    CHECK_OK(dn_image_make(2, 1, 1, &a));
    a.data[0] = 0; a.data[1] = 1;
    CHECK_OK(dn_image_resize(&a, 3, 1, &b));
    CHECK(b.data[0] == 0 && b.data[1] == 0.5f && b.data[2] == 1, "2->3: %g %g %g", b.data[0], b.data[1], b.data[2]);
    dn_image_free(&b);
    dn_image_free(&a);

    CHECK_OK(dn_image_make(3, 1, 1, &a));
    a.data[0] = 0.25f; a.data[1] = 0.9f; a.data[2] = 0.75f;
    CHECK_OK(dn_image_resize(&a, 2, 1, &b));
    CHECK(b.data[0] == 0.25f && b.data[1] == 0.75f, "3->2 keeps the ends (corner aligned)");
    dn_image_free(&b);
    dn_image_free(&a);

    CHECK_OK(dn_image_make(2, 2, 2, &a));
    float v[8] = {0, 1, 0.5f, 0.25f, 0.1f, 0.1f, 0.1f, 0.1f};
    memcpy(a.data, v, sizeof v);
    CHECK_OK(dn_image_resize(&a, 3, 3, &b));
    CHECK(near(b.data[4], (0 + 1 + 0.5f + 0.25f) / 4), "centre of 2x2->3x3 is the mean: %g", b.data[4]);
    CHECK(b.data[0] == 0 && b.data[2] == 1 && b.data[6] == 0.5f && b.data[8] == 0.25f, "corners kept");
    int flat = 1;
    for (int i = 9; i < 18; ++i) flat &= near(b.data[i], 0.1f);
    CHECK(flat, "a constant channel stays constant");
    dn_image c;
    CHECK_OK(dn_image_resize(&b, 3, 3, &c));
    CHECK(memcmp(b.data, c.data, 18 * sizeof(float)) == 0, "equal-size resize is a copy");
    dn_image_free(&c);
    dn_image_free(&b);
    dn_image_free(&a);
    CHECK_ERR(dn_image_resize(NULL, 3, 3, &b), DN_ERR_ARG, "invalid input");
}

static void test_letterbox_crop(void)
{
    dn_image a, b;
    /* 4 wide, 2 tall, constant 0.2 -> 8x8: fits 8 x 4 at rows 2..5 */
    CHECK_OK(dn_image_make(4, 2, 3, &a));
    for (int i = 0; i < 24; ++i) a.data[i] = 0.2f;
    CHECK_OK(dn_image_letterbox(&a, 8, 8, &b));
    CHECK(b.w == 8 && b.h == 8 && b.c == 3, "letterbox shape");
    int ok = 1;
    for (int k = 0; k < 3; ++k)
        for (int y = 0; y < 8; ++y)
            for (int x = 0; x < 8; ++x) ok &= near(b.data[(k * 8 + y) * 8 + x], (y >= 2 && y < 6) ? 0.2f : 0.5f);
    CHECK(ok, "wide image: gray bands above and below, image in rows 2-5");
    dn_image_free(&b);
    dn_image_free(&a);
    /* 2 wide, 6 tall -> 6x6: 2 x 6 at columns 2..3 */
    CHECK_OK(dn_image_make(2, 6, 1, &a));
    for (int i = 0; i < 12; ++i) a.data[i] = 1;
    CHECK_OK(dn_image_letterbox(&a, 6, 6, &b));
    ok = 1;
    for (int y = 0; y < 6; ++y)
        for (int x = 0; x < 6; ++x) ok &= b.data[y * 6 + x] == ((x == 2 || x == 3) ? 1.0f : 0.5f);
    CHECK(ok, "tall image: gray bands left and right");
    dn_image_free(&b);
    dn_image_free(&a);

    /* 6 wide, 4 tall: the central 4x4 is columns 1..4 */
    CHECK_OK(dn_image_make(6, 4, 2, &a));
    for (int i = 0; i < 48; ++i) a.data[i] = (float)i / 48;
    CHECK_OK(dn_image_center_crop_resize(&a, 4, 4, &b));
    ok = 1;
    for (int k = 0; k < 2; ++k)
        for (int y = 0; y < 4; ++y)
            for (int x = 0; x < 4; ++x) ok &= b.data[(k * 4 + y) * 4 + x] == a.data[(k * 4 + y) * 6 + x + 1];
    CHECK(ok, "central square, same size: exact window");
    dn_image_free(&b);
    CHECK_OK(dn_image_center_crop_resize(&a, 2, 2, &b));
    CHECK(b.data[0] == a.data[1] && b.data[1] == a.data[4] && b.data[2] == a.data[19] && b.data[3] == a.data[22],
          "central square 4x4 -> 2x2 keeps its corners");
    dn_image_free(&b);
    dn_image_free(&a);
}

/* ------------------------------------------------------------ IDX */

static unsigned char big[1 << 16];

static void write_idx_pair(const char *img, const char *lab, int gz, int n, int classes)
{
    unsigned char lb[256];
    size_t ni = idx_images(big, 0x803, n, 2, 3), nl = idx_labels(lb, n, classes);
    if (gz) { write_gz(img, big, ni); write_gz(lab, lb, nl); }
    else { write_file(img, big, ni); write_file(lab, lb, nl); }
}

static void check_idx_values(const dn_dataset *d, int n)
{
    CHECK(d->rows == n && d->cols == 6 && d->w == 3 && d->h == 2 && d->c == 1 && d->classes == 3, "idx shape %d %d %dx%dx%d",
          d->rows, d->cols, d->w, d->h, d->c);
    int ok = 1;
    for (int i = 0; i < n * 6; ++i) ok &= d->X[i] == ((i * 7 + 3) % 256) / 255.0f;
    CHECK(ok, "idx pixels are bytes/255");
    ok = 1;
    for (int i = 0; i < n; ++i) {
        ok &= d->labels[i] == i % 3;
        for (int k = 0; k < 3; ++k) ok &= d->y[i * 3 + k] == (k == i % 3 ? 1.0f : 0.0f);
    }
    CHECK(ok, "idx labels and one-hot targets");
}

static void test_idx(void)
{
    dn_dataset d;
    write_idx_pair(tp("a-images-idx3-ubyte.gz"), tp("a-labels-idx1-ubyte.gz"), 1, 5, 3);
    write_idx_pair(tp("b-images-idx3-ubyte"), tp("b-labels-idx1-ubyte"), 0, 5, 3);
    CHECK_OK(dn_load_idx(tp("a-images-idx3-ubyte.gz"), tp("a-labels-idx1-ubyte.gz"), 3, 0, &d));
    check_idx_values(&d, 5);
    dn_dataset_free(&d);
    CHECK_OK(dn_load_idx(tp("b-images-idx3-ubyte"), tp("b-labels-idx1-ubyte"), 3, 0, &d));
    check_idx_values(&d, 5);
    dn_dataset_free(&d);
    CHECK_OK(dn_load_idx(tp("a-images-idx3-ubyte.gz"), tp("b-labels-idx1-ubyte"), 3, 2, &d));
    check_idx_values(&d, 2);
    dn_dataset_free(&d);
    dn_dataset_free(NULL);

    char L[512];
    snprintf(L, sizeof L, "%s", tp("b-labels-idx1-ubyte"));
    CHECK_ERR(dn_load_idx(tp("nope.gz"), L, 3, 0, &d), DN_ERR_IO, "nope.gz: cannot open");
    CHECK(d.X == NULL && d.rows == 0, "nothing on failure");
    size_t ni = idx_images(big, 0x803, 5, 2, 3);
    write_file(tp("hdr"), big, 10);
    CHECK_ERR(dn_load_idx(tp("hdr"), L, 3, 0, &d), DN_ERR_DATA, "hdr: truncated header (dimensions): expected 12 bytes, found 6");
    write_file(tp("hdr2"), big, 2);
    CHECK_ERR(dn_load_idx(tp("hdr2"), L, 3, 0, &d), DN_ERR_DATA, "hdr2: truncated header (magic number)");
    write_gz(tp("body.gz"), big, ni - 4);
    CHECK_ERR(dn_load_idx(tp("body.gz"), L, 3, 0, &d), DN_ERR_DATA, "body.gz: truncated pixels of image 4 of 5: expected 6 bytes, found 2");
    write_file(tp("body"), big, ni - 7);
    CHECK_ERR(dn_load_idx(tp("body"), L, 3, 0, &d), DN_ERR_DATA, "body: truncated pixels of image 3 of 5");
    CHECK_ERR(dn_load_idx(L, L, 3, 0, &d), DN_ERR_DATA, "magic number 0x00000801, expected 0x00000803 for an IDX images file (this is an IDX labels file)");
    CHECK_ERR(dn_load_idx(tp("b-images-idx3-ubyte"), tp("b-images-idx3-ubyte"), 3, 0, &d), DN_ERR_DATA, "expected 0x00000801");
    idx_images(big, 0x0d03, 5, 2, 3);
    write_file(tp("magic"), big, ni);
    CHECK_ERR(dn_load_idx(tp("magic"), L, 3, 0, &d), DN_ERR_DATA, "magic: magic number 0x00000d03, expected 0x00000803");
    ni = idx_images(big, 0x803, 5, 0, 3);
    write_file(tp("dim0"), big, ni);
    CHECK_ERR(dn_load_idx(tp("dim0"), L, 3, 0, &d), DN_ERR_DATA, "dim0: image dimension 1 is 0");
    ni = idx_images(big, 0x803, 5, 2, 3);
    big[ni] = 9;
    write_file(tp("trail"), big, ni + 1);
    CHECK_ERR(dn_load_idx(tp("trail"), L, 3, 0, &d), DN_ERR_DATA, "trail: unexpected bytes after the 5 images");
    CHECK_OK(dn_load_idx(tp("trail"), L, 3, 4, &d));   /* a prefix is fine */
    dn_dataset_free(&d);
    unsigned char lb[64];
    write_file(tp("lab4"), lb, idx_labels(lb, 4, 3));
    CHECK_ERR(dn_load_idx(tp("b-images-idx3-ubyte"), tp("lab4"), 3, 0, &d), DN_ERR_DATA, "lab4 has 4 labels but");
    CHECK_ERR(dn_load_idx(tp("b-images-idx3-ubyte"), L, 2, 0, &d), DN_ERR_DATA, "label 2 of image 2 is not below classes=2");
    size_t nl = idx_labels(lb, 5, 3);
    write_file(tp("labcut"), lb, nl - 1);
    CHECK_ERR(dn_load_idx(tp("b-images-idx3-ubyte"), tp("labcut"), 3, 0, &d), DN_ERR_DATA, "labcut: truncated labels: expected 5 bytes, found 4");
    CHECK_ERR(dn_load_idx(tp("b-images-idx3-ubyte"), L, 0, 0, &d), DN_ERR_ARG, "classes=0");

    /* a gzip stream with a damaged body */
    gzFile g = gzopen(tp("corrupt.gz"), "wb");
    for (int i = 0; i < (int)sizeof big; ++i) big[i] = (unsigned char)(i * 2654435761u >> 13);
    idx_images(big, 0x803, 5, 2, 3);
    gzwrite(g, big, 16 + 30);
    gzclose(g);
    FILE *f = fopen(tp("corrupt.gz"), "r+b");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz - 6, SEEK_SET);   /* inside the CRC-32 */
    fputc(0x5a, f);
    fputc(0xa5, f);
    fclose(f);
    dn_status st = dn_load_idx(tp("corrupt.gz"), L, 3, 0, &d);
    CHECK(st == DN_ERR_DATA && strstr(dn_last_error(), "corrupt.gz"), "damaged gzip: %s: %s", dn_status_name(st), dn_last_error());
}

/* ------------------------------------------------------------ CIFAR-10 */

static void write_cifar(const char *path, int n, int first)
{
    unsigned char *b = malloc((size_t)n * 3073);
    for (int i = 0; i < n; ++i) {
        b[i * 3073] = (unsigned char)((first + i) % 10);
        for (int j = 0; j < 3072; ++j) b[i * 3073 + 1 + j] = (unsigned char)(((first + i) * 31 + j) % 256);
    }
    write_file(path, b, (size_t)n * 3073);
    free(b);
}

static void test_cifar(void)
{
    write_cifar(tp("c1.bin"), 3, 0);
    write_cifar(tp("c2.bin"), 2, 3);
    const char *paths[2] = {tp("c1.bin"), tp("c2.bin")};
    dn_dataset d;
    CHECK_OK(dn_load_cifar10(paths, 2, 0, &d));
    CHECK(d.rows == 5 && d.cols == 3072 && d.w == 32 && d.h == 32 && d.c == 3 && d.classes == 10, "cifar shape");
    int ok = 1;
    for (int i = 0; i < 5; ++i) {
        ok &= d.labels[i] == i % 10 && d.y[i * 10 + i] == 1;
        for (int j = 0; j < 3072; ++j) ok &= d.X[(size_t)i * 3072 + j] == ((i * 31 + j) % 256) / 255.0f;
    }
    CHECK(ok, "cifar pixels (R, G, B planes) and labels");
    dn_dataset_free(&d);
    CHECK_OK(dn_load_cifar10(paths, 2, 4, &d));
    CHECK(d.rows == 4 && d.labels[3] == 3, "cifar max_rows across files");
    dn_dataset_free(&d);

    unsigned char junk[3073 * 2 + 5] = {0};
    write_file(tp("odd.bin"), junk, sizeof junk);
    const char *odd[1] = {tp("odd.bin")};
    CHECK_ERR(dn_load_cifar10(odd, 1, 0, &d), DN_ERR_DATA, "odd.bin: size 6151 bytes is not a positive multiple of 3073");
    junk[3073] = 10;
    write_file(tp("lab.bin"), junk, 3073 * 2);
    const char *lab[1] = {tp("lab.bin")};
    CHECK_ERR(dn_load_cifar10(lab, 1, 0, &d), DN_ERR_DATA, "lab.bin: record 1 has label 10");
    const char *miss[2] = {tp("c1.bin"), tp("gone.bin")};
    CHECK_ERR(dn_load_cifar10(miss, 2, 0, &d), DN_ERR_IO, "gone.bin: cannot open");
    CHECK(d.X == NULL, "nothing on failure");
}

/* ------------------------------------------------------------ .data */

static void test_data_config(void)
{
    dn_data_config c;
    write_text(tp("names.txt"), "-cat\n  -dog \r\n-bird\n\n");
    write_text(tp("other.txt"), "x\ny\n");
    char text[2048];
    snprintf(text, sizeof text,
             "# a comment\n; another\nclasses = 3\ntrain  = %s/train.list\n valid=%s/valid.list\n"
             "labels=%s\nnames=%s\ntop=2\nflip=1\ncrop_pad=4\nerase=0.5\nclasses=7\nweird=1\nnovalue=\n",
             tmpdir, tmpdir, tp("other.txt"), tp("names.txt"));
    write_text(tp("a.data"), text);
    clear_warnings();
    CHECK_OK(dn_data_config_read(tp("a.data"), &c));
    CHECK(c.classes == 3, "first duplicate wins: %d", c.classes);
    CHECK(c.top == 2 && c.flip == 1 && c.crop_pad == 4 && c.erase == 0.5f, "ints and erase");
    CHECK(!strcmp(c.train, tp("train.list")) && !strcmp(c.valid, tp("valid.list")), "paths as written, spaces removed");
    CHECK(!strcmp(c.backup, "backup/"), "backup default is backup/");
    CHECK(c.nlabels == 3 && !strcmp(c.label_names[0], "-cat") && !strcmp(c.label_names[1], "-dog") &&
          !strcmp(c.label_names[2], "-bird"), "names= wins over labels=, trimmed, trailing blank ignored");
    CHECK(strstr(warnings, "a.data:13: unused field 'weird = 1'") != NULL, "unknown key warns: %s", warnings);
    CHECK(strstr(warnings, "a.data:14: 'novalue=' has no value") != NULL, "no value warns: %s", warnings);
    dn_data_config_free(&c);
    dn_data_config_free(&c);

    write_text(tp("b.data"), "train=x.list\n");
    CHECK_OK(dn_data_config_read(tp("b.data"), &c));
    CHECK(c.classes == 2 && c.top == 1 && c.valid == NULL && c.flip == 0 && c.crop_pad == 0 && c.erase == 0 && c.names == NULL &&
          !strcmp(c.labels, "data/labels.list") && !strcmp(c.backup, "backup/"), "defaults");
    dn_data_config_free(&c);

    snprintf(text, sizeof text, "labels=%s\nclasses=2\n", tp("other.txt"));
    write_text(tp("c.data"), text);
    CHECK_OK(dn_data_config_read(tp("c.data"), &c));
    CHECK(c.nlabels == 2 && !strcmp(c.label_names[1], "y"), "labels= when no names=");
    dn_data_config_free(&c);

    CHECK_ERR(dn_data_config_read(tp("none.data"), &c), DN_ERR_IO, "none.data: cannot open");
    write_text(tp("d.data"), "classes=3\nlabels=/no/such/labels.txt\n");
    CHECK_ERR(dn_data_config_read(tp("d.data"), &c), DN_ERR_IO, "d.data:2: labels=/no/such/labels.txt: /no/such/labels.txt: cannot open");
    write_text(tp("e.data"), "classes=abc\n");
    CHECK_ERR(dn_data_config_read(tp("e.data"), &c), DN_ERR_PARSE, "e.data:1: classes=abc is not an integer");
    write_text(tp("f.data"), "classes=0\n");
    CHECK_ERR(dn_data_config_read(tp("f.data"), &c), DN_ERR_PARSE, "classes=0 must be at least 1");
    write_text(tp("h.data"), "classes=3\nerase=1.5\n");
    CHECK_ERR(dn_data_config_read(tp("h.data"), &c), DN_ERR_PARSE, "h.data:2: [data] erase=1.5 must be a probability in [0, 1]");
    write_text(tp("gap.txt"), "a\n\nb\n");
    snprintf(text, sizeof text, "names=%s\n", tp("gap.txt"));
    write_text(tp("g.data"), text);
    CHECK_ERR(dn_data_config_read(tp("g.data"), &c), DN_ERR_DATA, "gap.txt:2: empty class name");
}

/* ------------------------------------------------------------ splits */

/* The image list of the split tests: 8x8 RGB PNGs named by class. */
static const char *list_files[] = {"0-cat.png", "1-dog.png", "2-bird.png", "3-cat.png", "4-none.png", "5-dog-cat.png"};

static void make_list(void)
{
    mkdir(tp("img"), 0755);
    char list[4096] = "";
    for (int i = 0; i < 6; ++i) {
        char name[64];
        snprintf(name, sizeof name, "img/%s", list_files[i]);
        write_png(tp(name), 8, 8, 3, i);
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s\n", i == 2 ? "\n  \n" : "", tp(name));
    }
    write_text(tp("train.list"), list);
    char text[1024];
    snprintf(text, sizeof text, "classes=3\ntrain=%s\nvalid=%s\nnames=%s\n", tp("train.list"), tp("train.list"),
             tp("names.txt"));
    write_text(tp("list.data"), text);
}

static void test_split_list(void)
{
    dn_data_config c;
    dn_split s;
    make_list();
    CHECK_OK(dn_data_config_read(tp("list.data"), &c));
    clear_warnings();
    CHECK_OK(dn_split_load(&c, 0, 0, &s));
    CHECK(s.n == 6 && s.is_list && s.classes == 3, "6 paths, blank lines skipped: %d", s.n);
    int want_train[6] = {0, 1, 2, 0, -1, -1};
    int ok = 1;
    for (int i = 0; i < 6; ++i) ok &= s.labels[i] == want_train[i];
    CHECK(ok, "train labels: exactly one match, else -1");
    CHECK(!strcmp(s.paths[1], tp("img/1-dog.png")), "path kept: %s", s.paths[1]);
    CHECK(nwarnings == 2, "two warnings: %s", warnings);
    char want[512];
    snprintf(want, sizeof want, "1 of 6 images match no label and are left out of training; first: %s", tp("img/4-none.png"));
    CHECK(strstr(warnings, want) != NULL, "none warning: %s", warnings);
    snprintf(want, sizeof want, "1 of 6 images match several labels and are left out of training; first: %s",
             tp("img/5-dog-cat.png"));
    CHECK(strstr(warnings, want) != NULL, "several warning: %s", warnings);

    dn_split t;
    CHECK_OK(dn_split_slice(&s, 1, 3, &t));
    CHECK(t.n == 3 && t.is_list && !strcmp(t.paths[0], s.paths[1]) && t.labels[2] == 0, "list slice");
    dn_split_free(&t);
    CHECK_ERR(dn_split_slice(&s, 4, 3, &t), DN_ERR_ARG, "outside the split's 6 images");

    /* evaluation input: central square of the 8x8 file, exact at the same size */
    float x[8 * 8 * 3];
    CHECK_OK(dn_split_eval_input(&s, 1, 8, 8, 3, x));
    CHECK(x[(2 * 8 + 5) * 8 + 3] == pix(1, 3, 5, 2) / 255.0f, "eval input pixel");
    CHECK_OK(dn_split_eval_input(&s, 1, 4, 4, 1, x));
    CHECK_ERR(dn_split_eval_input(&s, 6, 8, 8, 3, x), DN_ERR_ARG, "image 6 outside");
    CHECK_ERR(dn_split_eval_input(&s, 0, 8, 8, 2, x), DN_ERR_SHAPE, "0-cat.png: image files load as 1 or 3 channels, not 2");
    dn_split_free(&s);
    dn_split_free(&s);

    clear_warnings();
    CHECK_OK(dn_split_load(&c, 1, 0, &s));
    int want_valid[6] = {0, 1, 2, 0, -1, 0};
    ok = 1;
    for (int i = 0; i < 6; ++i) ok &= s.labels[i] == want_valid[i];
    CHECK(ok, "valid labels: the first name in label order wins (5-dog-cat -> -cat)");
    CHECK(strstr(warnings, "1 of 6 images match no label and count as wrong") &&
          strstr(warnings, "match several labels (the first in label order is used)"), "valid warnings: %s", warnings);
    dn_split_free(&s);

    CHECK_OK(dn_split_load(&c, 0, 2, &s));
    CHECK(s.n == 2, "max_rows on a list");
    dn_split_free(&s);

    /* valid= missing: train is used, with a warning */
    free(c.valid);
    c.valid = NULL;
    clear_warnings();
    CHECK_OK(dn_split_load(&c, 1, 0, &s));
    CHECK(s.n == 6 && strstr(warnings, "no valid= in the .data; validating on the train split"), "fallback: %s", warnings);
    dn_split_free(&s);

    /* bad lists */
    write_text(tp("empty.list"), "\n   \n");
    free(c.train);
    c.train = strdup(tp("empty.list"));
    CHECK_ERR(dn_split_load(&c, 0, 0, &s), DN_ERR_DATA, "train split: ");
    CHECK(strstr(dn_last_error(), "empty.list: empty image list") != NULL, "%s", dn_last_error());
    free(c.train);
    c.train = strdup(tp("absent.list"));
    CHECK_ERR(dn_split_load(&c, 0, 0, &s), DN_ERR_IO, "absent.list: cannot open");
    write_text(tp("nomatch.list"), "a/x.png\nb/y.png\n");
    free(c.train);
    c.train = strdup(tp("nomatch.list"));
    CHECK_ERR(dn_split_load(&c, 0, 0, &s), DN_ERR_DATA, "none of the 2 images has exactly one class name in its path (first: a/x.png)");
    CHECK_ERR(dn_split_load(&c, 1, 0, &s), DN_ERR_DATA, "none of the 2 images has a class name");
    CHECK(s.paths == NULL && s.n == 0, "nothing on failure");
    for (int i = 0; i < c.nlabels; ++i) free(c.label_names[i]);
    free(c.label_names);
    c.label_names = NULL;
    c.nlabels = 0;
    free(c.train);
    c.train = strdup(tp("train.list"));
    CHECK_ERR(dn_split_load(&c, 0, 0, &s), DN_ERR_DATA, "an image list needs class names");
    dn_data_config_free(&c);
}

static void test_split_arrays(void)
{
    dn_data_config c;
    dn_split s, t;
    char text[1024];
    /* IDX, labels inferred from the name */
    snprintf(text, sizeof text, "classes=3\ntrain=%s\nvalid=%s\nvalid_labels=%s\n", tp("a-images-idx3-ubyte.gz"),
             tp("b-images-idx3-ubyte"), tp("a-labels-idx1-ubyte.gz"));
    write_text(tp("idx.data"), text);
    CHECK_OK(dn_data_config_read(tp("idx.data"), &c));
    CHECK_OK(dn_split_load(&c, 0, 0, &s));
    CHECK(!s.is_list && s.n == 5 && s.classes == 3 && s.labels[4] == 1 && s.arrays.rows == 5, "idx split");
    check_idx_values(&s.arrays, 5);

    CHECK_OK(dn_split_slice(&s, 2, 2, &t));
    CHECK(t.n == 2 && t.arrays.rows == 2 && t.labels[0] == 2 && t.arrays.labels[1] == 0 && t.arrays.y[2] == 1 &&
          t.arrays.X[0] == s.arrays.X[12], "array slice copies rows");
    dn_split_free(&t);

    float x[6 * 4 * 3];
    CHECK_OK(dn_split_eval_input(&s, 1, 3, 2, 1, x));
    CHECK(memcmp(x, s.arrays.X + 6, 6 * sizeof(float)) == 0, "eval input as-is when the shape matches");
    CHECK_OK(dn_split_eval_input(&s, 1, 3, 2, 3, x));
    CHECK(memcmp(x + 12, s.arrays.X + 6, 6 * sizeof(float)) == 0, "gray -> RGB replicates");
    CHECK_OK(dn_split_eval_input(&s, 1, 5, 3, 1, x));
    CHECK(x[0] == s.arrays.X[6] && x[14] == s.arrays.X[11] && near(x[1], (s.arrays.X[6] + s.arrays.X[7]) / 2),
          "resized when the shape differs");
    CHECK_ERR(dn_split_eval_input(&s, 1, 3, 2, 2, x), DN_ERR_SHAPE, "1-channel image to 2 channels");
    dn_split_free(&s);

    CHECK_OK(dn_split_load(&c, 1, 3, &s));
    CHECK(s.n == 3 && s.labels[2] == 2, "idx valid with explicit labels and max_rows");
    dn_split_free(&s);
    dn_data_config_free(&c);

    snprintf(text, sizeof text, "classes=3\ntrain=%s\n", tp("body"));
    write_text(tp("idx2.data"), text);
    CHECK_OK(dn_data_config_read(tp("idx2.data"), &c));
    CHECK_ERR(dn_split_load(&c, 0, 0, &s), DN_ERR_DATA, "cannot infer the IDX labels file (no 'images-idx3' in the name); set train_labels=");
    dn_data_config_free(&c);

    /* CIFAR: a comma list, and a single file recognised by content */
    snprintf(text, sizeof text, "classes=10\ntrain=%s,%s\nvalid=%s\n", tp("c1.bin"), tp("c2.bin"), tp("c2.bin"));
    write_text(tp("cifar.data"), text);
    CHECK_OK(dn_data_config_read(tp("cifar.data"), &c));
    CHECK_OK(dn_split_load(&c, 0, 0, &s));
    CHECK(s.n == 5 && !s.is_list && s.arrays.c == 3 && s.labels[4] == 4, "cifar split");
    float *plane = malloc(sizeof(float) * 1024);
    CHECK_OK(dn_split_eval_input(&s, 2, 32, 32, 1, plane));
    CHECK(!memcmp(plane, s.arrays.X + 2 * 3072, 1024 * sizeof(float)), "RGB arrays to 1 channel: the red plane");
    free(plane);
    dn_split_free(&s);
    rename(tp("c2.bin"), tp("c2.batch"));
    free(c.valid);
    c.valid = strdup(tp("c2.batch"));
    CHECK_OK(dn_split_load(&c, 1, 0, &s));
    CHECK(s.n == 2 && s.labels[0] == 3, "cifar by content");
    dn_split_free(&s);
    rename(tp("c2.batch"), tp("c2.bin"));
    c.classes = 3;
    CHECK_ERR(dn_split_load(&c, 0, 0, &s), DN_ERR_DATA, "CIFAR-10 data has 10 classes but the .data says classes=3");
    c.classes = 10;
    free(c.train);
    c.train = strdup(tp("odd.bin"));
    CHECK_ERR(dn_split_load(&c, 0, 0, &s), DN_ERR_DATA, "train split: ");
    CHECK(strstr(dn_last_error(), "not a positive multiple of 3073") != NULL, "%s", dn_last_error());
    dn_data_config_free(&c);
}

/* ------------------------------------------------------------ loader */

/* Index of the dataset image equal to row x (or -1). */
static int find_row(const dn_dataset *d, const float *x)
{
    for (int i = 0; i < d->rows; ++i)
        if (!memcmp(d->X + (size_t)i * d->cols, x, (size_t)d->cols * sizeof(float))) return i;
    return -1;
}

static void mirror(const float *in, int w, int h, int c, float *out)
{
    for (int k = 0; k < c; ++k)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) out[(k * h + y) * w + x] = in[(k * h + y) * w + w - 1 - x];
}

static void shift(const float *in, int w, int h, int c, int dx, int dy, float *out)
{
    for (int k = 0; k < c; ++k)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                int sx = x + dx, sy = y + dy;
                out[(k * h + y) * w + x] = (sx >= 0 && sy >= 0 && sx < w && sy < h) ? in[(k * h + sy) * w + sx] : 0;
            }
}

/* Random erasing of row x, an image of d: the image it was made from, the
 * rectangle of noise (*bx, *by, *bw, *bh) outside which it is that image
 * exactly, every pixel inside changed in every channel, in [0, 1). Returns
 * the image's row, or -1 when x is no such erasing of any image. */
static int erased_row(const dn_dataset *d, const float *x, int *bx, int *by, int *bw, int *bh)
{
    int w = d->w, h = d->h, c = d->c;
    for (int r = 0; r < d->rows; ++r) {
        const float *im = d->X + (size_t)r * d->cols;
        int x0 = w, y0 = h, x1 = -1, y1 = -1, changed = 0;
        for (int k = 0; k < c; ++k)
            for (int y = 0; y < h; ++y)
                for (int i = 0; i < w; ++i) {
                    size_t at = ((size_t)k * h + y) * w + i;
                    if (x[at] == im[at]) continue;
                    ++changed;
                    if (i < x0) x0 = i;
                    if (i > x1) x1 = i;
                    if (y < y0) y0 = y;
                    if (y > y1) y1 = y;
                }
        if (changed == 0) continue;
        int ew = x1 - x0 + 1, eh = y1 - y0 + 1, ok = changed == ew * eh * c;
        for (int k = 0; ok && k < c; ++k)
            for (int y = y0; y <= y1; ++y)
                for (int i = x0; i <= x1; ++i) {
                    float v = x[((size_t)k * h + y) * w + i];
                    ok &= v >= 0 && v < 1;
                }
        /* noise differs from an image nearly everywhere: a row of another image changes far more */
        if (ok && ew * eh <= (int)(0.4f * w * h + w + h)) {
            *bx = x0; *by = y0; *bw = ew; *bh = eh;
            return r;
        }
    }
    return -1;
}

/* Run `batches` batches; fills X (batches*batch*inputs) and Y. */
static int run_loader(const dn_loader_options *o, int batches, float *X, float *Y)
{
    dn_loader *ld = NULL;
    dn_status st = dn_loader_start(o, &ld);
    CHECK(st == DN_OK, "loader start: %s", dn_last_error());
    if (st != DN_OK) return 0;
    int inputs = o->w * o->h * o->c, classes = o->split->classes;
    for (int b = 0; b < batches; ++b) {
        double waited = -1;
        st = dn_loader_next(ld, X + (size_t)b * o->batch * inputs, Y + (size_t)b * o->batch * classes, &waited);
        CHECK(st == DN_OK && waited >= 0, "loader next: %s", dn_last_error());
    }
    dn_loader_stop(ld);
    return st == DN_OK;
}

static void test_loader_arrays(void)
{
    dn_dataset d;
    const char *paths[2] = {tp("c1.bin"), tp("c2.bin")};
    CHECK_OK(dn_load_cifar10(paths, 2, 0, &d));
    dn_split s = {0};
    s.n = d.rows; s.classes = 10; s.arrays = d; s.labels = d.labels;
    dn_loader_options o;
    memset(&o, 0, sizeof o);
    o.split = &s; o.batch = 6; o.w = 32; o.h = 32; o.c = 3; o.seed = 42; o.threads = 3;
    enum { B = 4, N = 6 * B, IN = 3072 };
    float *X = malloc(sizeof(float) * N * IN), *X2 = malloc(sizeof(float) * N * IN), *tmp = malloc(sizeof(float) * IN);
    float Y[N * 10], Y2[N * 10];
    run_loader(&o, B, X, Y);
    int ok = 1, seen[5] = {0};
    for (int i = 0; i < N; ++i) {
        int r = find_row(&d, X + (size_t)i * IN);
        ok &= r >= 0;
        if (r < 0) continue;
        seen[r] = 1;
        for (int k = 0; k < 10; ++k) ok &= Y[i * 10 + k] == (k == d.labels[r] ? 1.0f : 0.0f);
    }
    CHECK(ok, "each row is a dataset image with its one-hot target");
    CHECK(seen[0] + seen[1] + seen[2] + seen[3] + seen[4] >= 4, "draws cover the images");
    o.threads = 1;
    run_loader(&o, B, X2, Y2);
    CHECK(!memcmp(X, X2, sizeof(float) * N * IN) && !memcmp(Y, Y2, sizeof Y), "same seed, other thread count: same batches");
    o.seed = 43;
    run_loader(&o, B, X2, Y2);
    CHECK(memcmp(X, X2, sizeof(float) * N * IN) != 0, "another seed: other batches");

    /* flip: every row is an image or its mirror, both occur */
    o.flip = 1;
    run_loader(&o, B, X, Y);
    int plain = 0, mirrored = 0;
    ok = 1;
    for (int i = 0; i < N; ++i) {
        float *x = X + (size_t)i * IN;
        mirror(x, 32, 32, 3, tmp);
        int a = find_row(&d, x), b = find_row(&d, tmp);
        plain += a >= 0;
        mirrored += b >= 0;
        ok &= (a >= 0 || b >= 0) && Y[i * 10 + d.labels[a >= 0 ? a : b]] == 1;
    }
    CHECK(ok && plain > 0 && mirrored > 0, "flip: %d plain, %d mirrored", plain, mirrored);

    /* crop_pad=2: every row is a shifted image (zeros shifted in) */
    o.flip = 0;
    o.crop_pad = 2;
    run_loader(&o, B, X, Y);
    int shifted = 0;
    ok = 1;
    for (int i = 0; i < N; ++i) {
        float *x = X + (size_t)i * IN;
        int found = 0;
        for (int r = 0; r < d.rows && !found; ++r)
            for (int dy = -2; dy <= 2 && !found; ++dy)
                for (int dx = -2; dx <= 2 && !found; ++dx) {
                    shift(d.X + (size_t)r * IN, 32, 32, 3, dx, dy, tmp);
                    if (!memcmp(tmp, x, sizeof(float) * IN)) { found = 1; shifted += dx || dy; }
                }
        ok &= found;
    }
    CHECK(ok && shifted > 0, "crop_pad: every row is a shift within +-2 (%d shifted)", shifted);

    /* erase=1: every row is an image with one rectangle of noise, 2%..40% of it, aspect within [0.3, 3.3] */
    o.crop_pad = 0;
    o.erase = 1;
    run_loader(&o, B, X, Y);
    ok = 1;
    int min_area = 1 << 30, max_area = 0, tall = 0, wide = 0;
    for (int i = 0; i < N; ++i) {
        int bx, by, bw, bh, r = erased_row(&d, X + (size_t)i * IN, &bx, &by, &bw, &bh);
        ok &= r >= 0 && Y[i * 10 + d.labels[r]] == 1;
        if (r < 0) continue;
        int area = bw * bh;
        min_area = area < min_area ? area : min_area;
        max_area = area > max_area ? area : max_area;
        tall += bh > bw;
        wide += bw > bh;
        ok &= bw < 32 && bh < 32 && bh <= 4 * bw && bw <= 4 * bh;
    }
    CHECK(ok && min_area >= 16 && max_area <= 440 && max_area > min_area && tall > 0 && wide > 0,
          "erase=1: each row one noise rectangle of its image (areas %d..%d of 1024; %d tall, %d wide)", min_area,
          max_area, tall, wide);
    o.threads = 3;
    run_loader(&o, B, X2, Y2);
    CHECK(!memcmp(X, X2, sizeof(float) * N * IN), "erase: the same rectangles with 3 loader threads");
    /* erase=0.5: some rows intact, some erased */
    o.erase = 0.5f;
    run_loader(&o, B, X, Y);
    int intact = 0, erased = 0;
    for (int i = 0; i < N; ++i) {
        int bx, by, bw, bh;
        intact += find_row(&d, X + (size_t)i * IN) >= 0;
        erased += erased_row(&d, X + (size_t)i * IN, &bx, &by, &bw, &bh) >= 0;
    }
    CHECK(intact + erased == N && intact >= 4 && erased >= 4, "erase=0.5: %d intact, %d erased of %d", intact, erased, N);
    o.erase = 1.5f;
    dn_loader *bad = NULL;
    CHECK_ERR(dn_loader_start(&o, &bad), DN_ERR_ARG, "erase=1.5 is not a probability");
    o.erase = 0;
    o.threads = 1;

    /* a 28x28 gray input from 32x32 RGB arrays: resized, red plane */
    o.crop_pad = 0; o.w = 28; o.h = 28; o.c = 1;
    run_loader(&o, 1, X, Y);
    float *want = tmp;
    for (int i = 0; i < 6; ++i) {
        int lab = -1;
        for (int k = 0; k < 10; ++k) if (Y[i * 10 + k] == 1) lab = k;
        CHECK_OK(dn_split_eval_input(&s, lab, 28, 28, 1, want));   /* label == row in this data */
        CHECK(!memcmp(want, X + i * 784, 784 * sizeof(float)), "loader fits arrays like eval input");
    }

    dn_loader *ld;
    o.c = 2;
    CHECK_ERR(dn_loader_start(&o, &ld), DN_ERR_SHAPE, "cannot feed 3-channel images to a 2-channel input");
    o.c = 3; o.batch = 0;
    CHECK_ERR(dn_loader_start(&o, &ld), DN_ERR_ARG, "batch 0");
    o.batch = 2;
    CHECK_OK(dn_loader_start(&o, &ld));
    dn_loader_stop(ld);   /* stop before any next */
    dn_loader_stop(NULL);
    free(X); free(X2); free(tmp);
    dn_dataset_free(&d);
}

static void test_loader_list(void)
{
    dn_data_config c;
    dn_split s;
    CHECK_OK(dn_data_config_read(tp("list.data"), &c));
    clear_warnings();
    CHECK_OK(dn_split_load(&c, 0, 0, &s));
    /* the 6 files as arrays, to compare with */
    float img[6][192], mir[192];
    for (int i = 0; i < 6; ++i) {
        dn_image im;
        CHECK_OK(dn_image_load(s.paths[i], 3, &im));
        memcpy(img[i], im.data, sizeof img[i]);
        dn_image_free(&im);
    }
    dn_loader_options o;
    memset(&o, 0, sizeof o);
    o.split = &s; o.batch = 8; o.w = 8; o.h = 8; o.c = 3; o.seed = 7; o.threads = 4;
    o.min_ratio = 1; o.max_ratio = 1; o.aspect = 1; o.saturation = 1; o.exposure = 1;
    enum { B = 5, N = 8 * B };
    float X[N * 192], Y[N * 3], X2[N * 192], Y2[N * 3];
    run_loader(&o, B, X, Y);
    int ok = 1, plain = 0, mirrored = 0;
    for (int i = 0; i < N; ++i) {
        const float *x = X + i * 192;
        int found = -1;
        for (int r = 0; r < 6 && found < 0; ++r) {
            mirror(img[r], 8, 8, 3, mir);
            if (!memcmp(x, img[r], sizeof mir)) { found = r; plain++; }
            else if (!memcmp(x, mir, sizeof mir)) { found = r; mirrored++; }
        }
        ok &= found >= 0 && found < 4 && Y[i * 3 + s.labels[found]] == 1;
    }
    CHECK(ok, "no-jitter crop is the image or its mirror, with its target; unlabelled images never drawn");
    CHECK(plain > 0 && mirrored > 0, "flip with p 1/2: %d plain, %d mirrored", plain, mirrored);

    /* full augmentation: values in [0,1], reproducible, different from the plain crops */
    o.angle = 15; o.aspect = 1.3f; o.min_ratio = 1; o.max_ratio = 2; o.hue = 0.1f; o.saturation = 1.5f; o.exposure = 1.5f;
    run_loader(&o, B, X, Y);
    o.threads = 1;
    run_loader(&o, B, X2, Y2);
    CHECK(!memcmp(X, X2, sizeof X) && !memcmp(Y, Y2, sizeof Y), "augmented batches reproducible");
    ok = 1;
    for (int i = 0; i < N * 192; ++i) ok &= X[i] >= 0 && X[i] <= 1;
    CHECK(ok, "augmented values in [0,1]");

    /* center: no random window (angle and ratios ignored), still flipped */
    o.center = 1; o.hue = 0; o.saturation = 1; o.exposure = 1;
    run_loader(&o, 2, X, Y);
    ok = 1;
    for (int i = 0; i < 16; ++i) {
        int found = 0;
        for (int r = 0; r < 4 && !found; ++r) {
            mirror(img[r], 8, 8, 3, mir);
            found = !memcmp(X + i * 192, img[r], sizeof mir) || !memcmp(X + i * 192, mir, sizeof mir);
        }
        ok &= found;
    }
    CHECK(ok, "center: every row is a whole image or its mirror");
    o.c = 1;
    run_loader(&o, 2, X, Y);
    ok = 1;
    for (int i = 0; i < 16; ++i) {
        int found = 0;
        for (int r = 0; r < 4 && !found; ++r) {
            mirror(img[r], 8, 8, 1, mir);   /* plane 0 of img[r]: red */
            found = !memcmp(X + i * 64, img[r], 64 * sizeof(float)) || !memcmp(X + i * 64, mir, 64 * sizeof(float));
        }
        ok &= found;
    }
    CHECK(ok, "1-channel centre crops are the red planes of the images (or their mirrors)");

    /* an image that cannot be read surfaces from dn_loader_next with its path */
    char text[512];
    snprintf(text, sizeof text, "%s/gone-cat.png\n", tmpdir);
    write_text(tp("gone.list"), text);
    free(c.train);
    c.train = strdup(tp("gone.list"));
    dn_split g;
    CHECK_OK(dn_split_load(&c, 0, 0, &g));
    o.split = &g; o.center = 0; o.c = 3;
    dn_loader *ld;
    CHECK_OK(dn_loader_start(&o, &ld));
    CHECK_ERR(dn_loader_next(ld, X, Y, NULL), DN_ERR_IO, "gone-cat.png: cannot open image: No such file");
    CHECK_ERR(dn_loader_next(ld, X, Y, NULL), DN_ERR_IO, "gone-cat.png");
    dn_loader_stop(ld);
    dn_split_free(&g);
    o.split = &s;
    o.c = 4;
    CHECK_ERR(dn_loader_start(&o, &ld), DN_ERR_ARG, "1 or 3 channels");

    dn_split_free(&s);
    dn_data_config_free(&c);
}

static void test_options_from_network(void)
{
    const char *cfg = "[net]\nbatch=8\nsubdivisions=2\nwidth=10\nheight=12\nchannels=3\nangle=7\naspect=1.5\n"
                      "hue=.1\nsaturation=1.25\nexposure=1.75\ncenter=1\nmin_crop=10\nmax_crop=30\n"
                      "[connected]\noutput=3\n[softmax]\n";
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string(cfg, NULL, NULL, &net));
    if (!net) return;
    dn_loader_options o;
    memset(&o, 0, sizeof o);
    o.seed = 5;
    dn_loader_options_from_network(&o, net);
    CHECK(o.w == 10 && o.h == 12 && o.c == 3 && o.batch == 8, "shape and full batch: %d %d %d %d", o.w, o.h, o.c, o.batch);
    CHECK(o.angle == 7 && o.aspect == 1.5f && near(o.hue, 0.1f) && o.saturation == 1.25f && o.exposure == 1.75f &&
          o.center == 1 && o.seed == 5, "augmentation fields");
    CHECK(near(o.min_ratio, 1) && near(o.max_ratio, 3), "ratios from min/max_crop: %g %g", o.min_ratio, o.max_ratio);
    dn_network_free(net);
}

/* ------------------------------------------------------------ Fashion-MNIST */

static void check_fashion(const char *dir, const char *set, int expect, int max_rows)
{
    char img[512], lab[512];
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, set);
    snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte.gz", dir, set);
    if (access(img, R_OK) != 0 || access(lab, R_OK) != 0) {
        printf("skipping Fashion-MNIST %s: not installed\n", set);
        return;
    }
    dn_dataset d;
    CHECK_OK(dn_load_idx(img, lab, 10, max_rows, &d));
    int n = max_rows > 0 && max_rows < expect ? max_rows : expect;
    CHECK(d.rows == n && d.w == 28 && d.h == 28 && d.c == 1 && d.cols == 784, "fashion %s: %d rows", set, d.rows);
    int count[10] = {0}, ok = 1;
    double sum = 0;
    for (int i = 0; i < d.rows; ++i) {
        ok &= d.labels[i] >= 0 && d.labels[i] < 10;
        if (ok) count[d.labels[i]]++;
    }
    for (size_t i = 0; i < (size_t)d.rows * 784; ++i) {
        ok &= d.X[i] >= 0 && d.X[i] <= 1;
        sum += d.X[i];
    }
    double mean = sum / ((double)d.rows * 784);
    CHECK(ok && mean > 0.25 && mean < 0.32, "fashion %s: values in [0,1], mean %g", set, mean);
    if (n == expect) {
        ok = 1;
        for (int k = 0; k < 10; ++k) ok &= count[k] == expect / 10;
        CHECK(ok, "fashion %s: %d images per class", set, expect / 10);
    }
    dn_dataset_free(&d);
}

static void test_fashion(void)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    check_fashion(dir, "t10k", 10000, 0);
    check_fashion(dir, "train", 60000, 0);
    char text[512];
    snprintf(text, sizeof text, "classes=10\ntrain=%s/train-images-idx3-ubyte.gz\nvalid=%s/t10k-images-idx3-ubyte.gz\n",
             dir, dir);
    write_text(tp("fashion.data"), text);
    if (access("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", R_OK) != 0) return;
    dn_data_config c;
    dn_split s;
    CHECK_OK(dn_data_config_read(tp("fashion.data"), &c));
    CHECK_OK(dn_split_load(&c, 1, 500, &s));
    CHECK(s.n == 500 && !s.is_list && s.arrays.w == 28, "fashion valid split with inferred labels");
    dn_split_free(&s);
    dn_data_config_free(&c);
}

/* ------------------------------------------------------------ non-regular files */

/* FIFOs (which block in a plain open), devices and directories are refused
 * before anything is read, by every reader; text files have a size limit. */
static void test_non_regular(void)
{
    char fifo[512], bin[512];   /* copies: tp() reuses its buffers */
    snprintf(fifo, sizeof fifo, "%s", tp("fifo"));
    snprintf(bin, sizeof bin, "%s", tp("fifo.bin"));
    CHECK(mkfifo(fifo, 0600) == 0 && mkfifo(bin, 0600) == 0, "mkfifo");
    char *text = NULL;
    size_t size = 1;
    CHECK_ERR(dn_read_file(fifo, &text, &size), DN_ERR_IO, "fifo: cannot open: not a regular file (a FIFO)");
    CHECK(text == NULL, "no buffer on failure");
    CHECK_ERR(dn_read_file("/dev/zero", &text, NULL), DN_ERR_IO, "/dev/zero: cannot open: not a regular file (a character device)");
    CHECK_ERR(dn_read_file(tmpdir, &text, NULL), DN_ERR_IO, "not a regular file (a directory)");
    int fd = -1;
    CHECK_ERR(dn_open_regular(fifo, &fd, NULL), DN_ERR_IO, "not a regular file (a FIFO)");
    CHECK(fd == -1, "no descriptor on failure");

    write_text(tp("small.txt"), "abc\n");
    CHECK_OK(dn_open_regular(tp("small.txt"), &fd, &size));
    char b[8] = {0};
    CHECK(fd >= 0 && size == 4 && read(fd, b, sizeof b) == 4 && !strcmp(b, "abc\n"), "a regular file opens, size %zu", size);
    if (fd >= 0) close(fd);
    CHECK_OK(dn_read_file(tp("small.txt"), &text, &size));
    CHECK(text && size == 4 && !strcmp(text, "abc\n"), "dn_read_file reads it whole");
    free(text);

    /* over the limit: refused from its size, nothing allocated or read (a sparse file) */
    FILE *f = fopen(tp("huge.txt"), "wb");
    CHECK(f && ftruncate(fileno(f), (off_t)DN_READ_FILE_MAX + 1) == 0, "sparse file");
    if (f) fclose(f);
    CHECK_ERR(dn_read_file(tp("huge.txt"), &text, NULL), DN_ERR_IO, "huge.txt: too large to read: 1073741825 bytes");
    remove(tp("huge.txt"));

    dn_image im;
    CHECK_ERR(dn_image_load(fifo, 3, &im), DN_ERR_IO, "fifo: cannot open image: not a regular file");
    dn_dataset d;
    CHECK_ERR(dn_load_idx(tp("a-images-idx3-ubyte.gz"), fifo, 3, 0, &d), DN_ERR_IO, "fifo: cannot open: not a regular file");
    CHECK_ERR(dn_load_idx(fifo, tp("a-labels-idx1-ubyte.gz"), 3, 0, &d), DN_ERR_IO, "fifo: cannot open: not a regular file");
    const char *paths[1] = {bin};
    CHECK_ERR(dn_load_cifar10(paths, 1, 0, &d), DN_ERR_IO, "fifo.bin: cannot open: not a regular file");
    dn_data_config c;
    CHECK_ERR(dn_data_config_read(fifo, &c), DN_ERR_IO, "not a regular file");
    dn_network *net = NULL;
    CHECK_ERR(dn_network_parse_file(fifo, NULL, &net), DN_ERR_IO, "not a regular file");
    CHECK_OK(dn_network_parse_string("[net]\nwidth=2\nheight=2\nchannels=1\n[connected]\noutput=2\n[softmax]\n", NULL,
                                     NULL, &net));
    CHECK_ERR(dn_weights_load(net, "/dev/zero"), DN_ERR_IO, "/dev/zero: cannot open: not a regular file");
    CHECK_ERR(dn_weights_load(net, fifo), DN_ERR_IO, "fifo: cannot open: not a regular file");
    dn_network_free(net);

    /* a list whose source is a FIFO: not taken for IDX or CIFAR, refused by the list reader */
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "classes=3\ntrain=%s\nnames=%s\n", fifo, tp("names.txt"));
    write_text(tp("fifo.data"), cfg);
    dn_split s;
    CHECK_OK(dn_data_config_read(tp("fifo.data"), &c));
    CHECK_ERR(dn_split_load(&c, 0, 0, &s), DN_ERR_IO, "fifo: cannot open: not a regular file");
    dn_data_config_free(&c);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dn_test_data_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
    dn_set_warning_sink(sink, NULL);
    test_image_io();
    test_resize();
    test_letterbox_crop();
    test_idx();
    test_cifar();
    test_data_config();
    test_split_list();
    test_split_arrays();
    test_loader_arrays();
    test_loader_list();
    test_options_from_network();
    test_fashion();
    test_non_regular();
    tl_rm_tree(tmpdir);
    TEST_MAIN_END();
}
