/*
 * cifar.c — CIFAR-10 binary batches: records of 1 label byte (0-9) then
 * 3072 pixel bytes (1024 R, 1024 G, 1024 B; each plane 32x32 row-major), no
 * header. That is already the CHW layout, so loading is bytes / 255.
 * X (rows, 3*32*32), 10 classes.
 */
#include "data_internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10

/* Number of records in path, checking its size. */
static dn_status count_records(const char *path, long long *records)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return dn_fail(DN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return dn_fail(DN_ERR_IO, "%s: cannot open: not a regular file", path);
    long long size = (long long)sb.st_size;
    if (size == 0 || size % CIFAR_RECORD != 0)
        return dn_fail(DN_ERR_DATA,
                       "%s: size %lld bytes is not a positive multiple of %d (CIFAR-10 records are 1 label byte + "
                       "3072 pixel bytes)", path, size, CIFAR_RECORD);
    *records = size / CIFAR_RECORD;
    return DN_OK;
}

/* Read n records of path into rows [first, first+n) of d. */
static dn_status read_records(const char *path, int first, int n, dn_dataset *d)
{
    FILE *f;
    DN_TRY(dn_fopen_regular(path, NULL, &f));
    unsigned char rec[CIFAR_RECORD];
    dn_status st = DN_OK;
    for (int i = 0; i < n && st == DN_OK; ++i) {
        if (fread(rec, 1, sizeof rec, f) != sizeof rec)
            st = dn_fail(DN_ERR_IO, "%s: short read at record %d: %s", path, i, ferror(f) ? strerror(errno) : "end of file");
        else if (rec[0] >= CIFAR_CLASSES)
            st = dn_fail(DN_ERR_DATA, "%s: record %d has label %d; CIFAR-10 labels are 0-9", path, i, rec[0]);
        if (st != DN_OK) break;
        dn_dataset_set_label(d, first + i, rec[0]);
        float *x = d->X + (size_t)(first + i) * CIFAR_PIXELS;
        for (int j = 0; j < CIFAR_PIXELS; ++j) x[j] = rec[1 + j] / 255.0f;
    }
    fclose(f);
    return st;
}

dn_status dn_load_cifar10(const char *const *paths, int npaths, int max_rows, dn_dataset *out)
{
    if (!out) return dn_fail(DN_ERR_ARG, "dn_load_cifar10: no output dataset");
    memset(out, 0, sizeof *out);
    if (!paths || npaths < 1) return dn_fail(DN_ERR_ARG, "dn_load_cifar10: no files given");
    long long total = 0;
    for (int i = 0; i < npaths; ++i) {
        long long r;
        if (!paths[i]) return dn_fail(DN_ERR_ARG, "dn_load_cifar10: path %d is NULL", i);
        DN_TRY(count_records(paths[i], &r));
        total += r;
    }
    if (max_rows > 0 && total > max_rows) total = max_rows;
    if (total > 0x7fffffff) return dn_fail(DN_ERR_DATA, "%s: too many CIFAR-10 records (%lld)", paths[0], total);
    DN_TRY(dn_dataset_alloc(out, (int)total, CIFAR_SIDE, CIFAR_SIDE, 3, CIFAR_CLASSES));
    int row = 0;
    for (int i = 0; i < npaths && row < total; ++i) {
        long long r;
        dn_status st = count_records(paths[i], &r);
        if (st == DN_OK) {
            int n = (int)(r < total - row ? r : total - row);
            st = read_records(paths[i], row, n, out);
            row += n;
        }
        if (st != DN_OK) { dn_dataset_free(out); return st; }
    }
    return DN_OK;
}

int dn_cifar_is_batch(const char *path)
{
    size_t len = strlen(path);
    if (len >= 4 && strcmp(path + len - 4, ".bin") == 0) return 1;
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0 || sb.st_size % CIFAR_RECORD != 0) return 0;
    FILE *f;
    if (dn_fopen_regular(path, NULL, &f) != DN_OK) return 0;
    int first = fgetc(f);
    fclose(f);
    return first >= 0 && first < CIFAR_CLASSES;
}
