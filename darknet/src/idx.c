/*
 * idx.c — MNIST / Fashion-MNIST IDX files, gzipped or not (zlib reads plain
 * files transparently).
 *
 * Images: magic 0x00000803 (unsigned bytes, 3 dims), then big-endian
 * uint32 N, rows, cols, then N*rows*cols pixel bytes.
 * Labels: magic 0x00000801 (unsigned bytes, 1 dim), then uint32 N, then N
 * label bytes. Every read and header field is checked; pixels become /255
 * floats, X (N, 1*rows*cols).
 */
#include "data_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u
#define IDX_MAX_SIDE 16384
#define IDX_MAX_COUNT (1u << 28)

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static dn_status open_gz(const char *path, gzFile *f)
{
    int fd;
    *f = NULL;
    DN_TRY(dn_open_regular(path, &fd, NULL));   /* never a FIFO or a device */
    errno = 0;
    *f = gzdopen(fd, "rb");
    if (!*f) {
        close(fd);
        return dn_fail(DN_ERR_IO, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    }
    gzbuffer(*f, 1 << 17);
    return DN_OK;
}

/* zlib's message without the "path: " prefix gzerror puts in front of it. */
static const char *zlib_reason(gzFile f, const char *path)
{
    int errnum;
    const char *msg = gzerror(f, &errnum);
    if (errnum == Z_ERRNO) return strerror(errno);
    if (errnum == Z_OK || !msg) return "";
    size_t len = strlen(path);
    if (!strncmp(msg, path, len) && msg[len] == ':' && msg[len + 1] == ' ') msg += len + 2;
    return msg;
}

/* Read up to n bytes of `what`; *got gets the count. A zlib error (corrupt stream) is an error. */
static dn_status read_some(gzFile f, const char *path, void *buf, size_t n, const char *what, size_t *got)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(f, (char *)buf + *got, (unsigned)want);
        if (r < 0) return dn_fail(DN_ERR_DATA, "%s: corrupt or unreadable %s: %s", path, what, zlib_reason(f, path));
        if (r == 0) break;
        *got += (size_t)r;
    }
    return DN_OK;
}

/* Read exactly n bytes of `what`; a short read is a truncation error. */
static dn_status read_exact(gzFile f, const char *path, void *buf, size_t n, const char *what)
{
    size_t got;
    DN_TRY(read_some(f, path, buf, n, what, &got));
    if (got < n) {
        const char *z = zlib_reason(f, path);
        return dn_fail(DN_ERR_DATA, "%s: truncated %s: expected %zu bytes, found %zu%s%s", path, what, n, got,
                       *z ? "; zlib: " : "", z);
    }
    return DN_OK;
}

/* Nothing may follow the last record when the whole file was read. */
static dn_status expect_end(gzFile f, const char *path, uint32_t count, const char *what)
{
    unsigned char extra[64];
    size_t got;
    DN_TRY(read_some(f, path, extra, sizeof extra, "data after the last record", &got));
    if (got) return dn_fail(DN_ERR_DATA, "%s: unexpected bytes after the %u %s the header announces", path, count, what);
    return DN_OK;
}

static const char *kind_name(uint32_t magic)
{
    return magic == IDX_IMAGES ? "images" : magic == IDX_LABELS ? "labels" : "IDX";
}

/* Magic and ndims big-endian dims. */
static dn_status read_header(gzFile f, const char *path, uint32_t magic, int ndims, uint32_t *dims)
{
    unsigned char b[16];
    DN_TRY(read_exact(f, path, b, 4, "header (magic number)"));
    uint32_t m = be32(b);
    if (m != magic) {
        const char *hint = m == IDX_IMAGES || m == IDX_LABELS ? " (this is an IDX " : "";
        return dn_fail(DN_ERR_DATA, "%s: magic number 0x%08x, expected 0x%08x for an IDX %s file%s%s%s", path, m,
                       magic, kind_name(magic), hint, *hint ? kind_name(m) : "", *hint ? " file)" : "");
    }
    DN_TRY(read_exact(f, path, b, 4 * (size_t)ndims, "header (dimensions)"));
    for (int i = 0; i < ndims; ++i) dims[i] = be32(b + 4 * i);
    if (dims[0] == 0 || dims[0] > IDX_MAX_COUNT)
        return dn_fail(DN_ERR_DATA, "%s: header announces %u %s (expected 1 to %u)", path, dims[0], kind_name(magic),
                       IDX_MAX_COUNT);
    for (int i = 1; i < ndims; ++i)
        if (dims[i] == 0 || dims[i] > IDX_MAX_SIDE)
            return dn_fail(DN_ERR_DATA, "%s: image dimension %d is %u (expected 1 to %d)", path, i, dims[i],
                           IDX_MAX_SIDE);
    return DN_OK;
}

/* Labels (n of count) into d, each checked against d->classes. */
static dn_status read_labels(gzFile f, const char *path, uint32_t count, dn_dataset *d)
{
    unsigned char *b = dn_calloc((size_t)d->rows, 1);
    if (!b) return dn_fail_context(DN_ERR_NOMEM, "%s", path);
    dn_status st = read_exact(f, path, b, (size_t)d->rows, "labels");
    for (int i = 0; st == DN_OK && i < d->rows; ++i) {
        if (b[i] >= d->classes)
            st = dn_fail(DN_ERR_DATA, "%s: label %d of image %d is not below classes=%d", path, b[i], i, d->classes);
        else dn_dataset_set_label(d, i, b[i]);
    }
    free(b);
    if (st == DN_OK && (uint32_t)d->rows == count) st = expect_end(f, path, count, "labels");
    return st;
}

/* Pixels of d->rows images into X, /255. */
static dn_status read_pixels(gzFile f, const char *path, uint32_t count, dn_dataset *d)
{
    size_t per = (size_t)d->cols;
    unsigned char *b = dn_calloc(per, 1);   /* one image (rows, cols) */
    if (!b) return dn_fail_context(DN_ERR_NOMEM, "%s", path);
    dn_status st = DN_OK;
    for (int i = 0; st == DN_OK && i < d->rows; ++i) {
        char what[64];
        snprintf(what, sizeof what, "pixels of image %d of %u", i, count);
        st = read_exact(f, path, b, per, what);
        float *x = d->X + (size_t)i * per;
        for (size_t j = 0; st == DN_OK && j < per; ++j) x[j] = b[j] / 255.0f;
    }
    free(b);
    if (st == DN_OK && (uint32_t)d->rows == count) st = expect_end(f, path, count, "images");
    return st;
}

dn_status dn_load_idx(const char *images_path, const char *labels_path, int classes, int max_rows, dn_dataset *out)
{
    if (!out) return dn_fail(DN_ERR_ARG, "dn_load_idx: no output dataset");
    memset(out, 0, sizeof *out);
    if (!images_path || !labels_path) return dn_fail(DN_ERR_ARG, "dn_load_idx: images and labels paths are required");
    if (classes < 1 || classes > 256)
        return dn_fail(DN_ERR_ARG, "%s: classes=%d (IDX labels are bytes: 1 to 256 classes)", labels_path, classes);
    gzFile fi = NULL, fl = NULL;
    uint32_t di[3] = {0}, dl[1] = {0};
    dn_status st = open_gz(images_path, &fi);
    if (st == DN_OK) st = read_header(fi, images_path, IDX_IMAGES, 3, di);
    if (st == DN_OK) st = open_gz(labels_path, &fl);
    if (st == DN_OK) st = read_header(fl, labels_path, IDX_LABELS, 1, dl);
    if (st == DN_OK && di[0] != dl[0])
        st = dn_fail(DN_ERR_DATA, "%s has %u labels but %s has %u images", labels_path, dl[0], images_path, di[0]);
    uint32_t n = di[0];
    if (st == DN_OK && max_rows > 0 && (uint32_t)max_rows < n) n = (uint32_t)max_rows;
    /* IDX dims are (N, rows, cols): width is cols, height is rows */
    if (st == DN_OK) st = dn_dataset_alloc(out, (int)n, (int)di[2], (int)di[1], 1, classes);
    if (st == DN_OK) st = read_labels(fl, labels_path, dl[0], out);
    if (st == DN_OK) st = read_pixels(fi, images_path, di[0], out);
    if (fi) gzclose(fi);
    if (fl) gzclose(fl);
    if (st != DN_OK) dn_dataset_free(out);
    return st;
}

int dn_idx_is_images(const char *path)
{
    gzFile f;
    if (open_gz(path, &f) != DN_OK) return 0;
    unsigned char b[4];
    int r = gzread(f, b, 4);
    gzclose(f);
    return r == 4 && be32(b) == IDX_IMAGES;
}
