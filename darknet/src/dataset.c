/*
 * dataset.c — in-memory datasets (IDX, CIFAR-10): allocation of the image
 * matrix X (rows, w*h*c), the one-hot targets y (rows, classes) and the class
 * indexes (rows), and their release.
 */
#include "data_internal.h"
#include <stdlib.h>
#include <string.h>

void dn_dataset_free(dn_dataset *d)
{
    if (!d) return;
    free(d->X);
    free(d->y);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

dn_status dn_dataset_alloc(dn_dataset *d, int rows, int w, int h, int c, int classes)
{
    memset(d, 0, sizeof *d);
    if (rows < 0 || w < 1 || h < 1 || c < 1 || classes < 1)
        return dn_fail(DN_ERR_ARG, "dataset shape %d x (%d x %d x %d), %d classes is invalid", rows, w, h, c, classes);
    size_t cols;
    if (!dn_mul_ok((size_t)w * h, (size_t)c, &cols) || cols > 0x7fffffff)
        return dn_fail(DN_ERR_ARG, "dataset image %d x %d x %d is too large", w, h, c);
    size_t nx, ny;
    if (!dn_mul_ok((size_t)rows, cols, &nx) || !dn_mul_ok((size_t)rows, (size_t)classes, &ny))
        return dn_fail(DN_ERR_NOMEM, "dataset of %d images is too large", rows);
    d->X = dn_calloc(nx, sizeof(float));
    d->y = d->X ? dn_calloc(ny, sizeof(float)) : NULL;
    d->labels = d->y ? dn_calloc((size_t)rows, sizeof(int)) : NULL;
    if (!d->labels) {
        dn_dataset_free(d);
        return dn_fail_context(DN_ERR_NOMEM, "dataset of %d images of %zu floats", rows, cols);
    }
    d->rows = rows;
    d->cols = (int)cols;
    d->w = w;
    d->h = h;
    d->c = c;
    d->classes = classes;
    return DN_OK;
}

void dn_dataset_set_label(dn_dataset *d, int i, int label)
{
    d->labels[i] = label;
    float *row = d->y + (size_t)i * d->classes;
    memset(row, 0, (size_t)d->classes * sizeof(float));
    if (label >= 0 && label < d->classes) row[label] = 1;
}
