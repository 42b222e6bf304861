/*
 * split.c — one split (train or valid) of a classifier .data file.
 *
 * The source is recognised by content: a comma list of files (when no file
 * has that whole name) or a CIFAR-10 batch (".bin", or a size that is a multiple of 3073 starting with a label
 * byte); an IDX images file, gzipped or not (labels from train_labels= /
 * valid_labels=, else the path with "images-idx3" replaced by "labels-idx1");
 * otherwise a text list of image paths, one per line, blank lines skipped.
 *
 * List images are labelled by upstream's rule: the class names that occur as
 * substrings of the path. Training keeps images with exactly one match; the
 * others get label -1, are left out of sampling and are reported in one
 * warning per kind. Validation takes the first match in class order (as
 * upstream); images with none keep -1 and count as wrong.
 */
#include "data_internal.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ arrays */

static dn_status arrays_to_split(dn_dataset *d, dn_split *out)
{
    out->labels = dn_calloc((size_t)d->rows, sizeof(int));
    if (!out->labels) { dn_dataset_free(d); return DN_ERR_NOMEM; }
    memcpy(out->labels, d->labels, (size_t)d->rows * sizeof(int));
    out->arrays = *d;
    out->n = d->rows;
    out->classes = d->classes;
    out->is_list = 0;
    return DN_OK;
}

static dn_status load_cifar(const dn_data_config *cfg, const char *src, int max_rows, dn_split *out)
{
    if (cfg->classes != 10)
        return dn_fail(DN_ERR_DATA, "%s: CIFAR-10 data has 10 classes but the .data says classes=%d", src, cfg->classes);
    char *copy = dn_strdup(src);
    int n = 1;
    for (const char *p = src; *p; ++p) n += *p == ',';
    const char **paths = dn_calloc((size_t)n, sizeof *paths);
    if (!copy || !paths) { free(copy); free(paths); return DN_ERR_NOMEM; }
    dn_status st = DN_OK;
    char *item = copy;
    for (int i = 0; i < n; ++i) {
        char *comma = strchr(item, ',');
        if (comma) *comma = 0;
        if (!*item) st = dn_fail(DN_ERR_PARSE, "%s: empty file name in the comma list", src);
        paths[i] = item;
        item = comma ? comma + 1 : item + strlen(item);
    }
    dn_dataset d;
    if (st == DN_OK) st = dn_load_cifar10(paths, n, max_rows, &d);
    if (st == DN_OK) st = arrays_to_split(&d, out);
    free(paths);
    free(copy);
    return st;
}

/* The labels file named by the .data, or src with images-idx3 -> labels-idx1. */
static dn_status idx_labels_path(const char *src, const char *given, const char *key, char **out)
{
    *out = dn_strdup(given ? given : src);
    if (!*out) return DN_ERR_NOMEM;
    if (given) return DN_OK;
    char *at = strstr(*out, "images-idx3");
    if (!at) {
        free(*out);
        *out = NULL;
        return dn_fail(DN_ERR_DATA, "%s: cannot infer the IDX labels file (no 'images-idx3' in the name); set %s_labels=",
                       src, key);
    }
    memcpy(at, "labels-idx1", 11);
    return DN_OK;
}

static dn_status load_idx(const dn_data_config *cfg, const char *src, const char *labels, const char *key,
                          int max_rows, dn_split *out)
{
    char *lp;
    DN_TRY(idx_labels_path(src, labels, key, &lp));
    dn_dataset d;
    dn_status st = dn_load_idx(src, lp, cfg->classes, max_rows, &d);
    free(lp);
    return st == DN_OK ? arrays_to_split(&d, out) : st;
}

/* ------------------------------------------------------------ image lists */

/* Index of the first class name inside path (-1: none); *count gets how many match. */
static int match_label(const char *path, char *const *names, int nnames, int *count)
{
    int first = -1;
    *count = 0;
    for (int k = 0; k < nnames; ++k)
        if (strstr(path, names[k])) {
            if (first < 0) first = k;
            ++*count;
        }
    return first;
}

typedef struct { int none, several; const char *first_none, *first_several; } match_stats;

static void label_paths(const dn_data_config *cfg, int valid, dn_split *s, match_stats *m)
{
    memset(m, 0, sizeof *m);
    for (int i = 0; i < s->n; ++i) {
        int count, first = match_label(s->paths[i], cfg->label_names, cfg->nlabels, &count);
        s->labels[i] = (count == 1 || (valid && count > 1)) ? first : -1;
        if (count == 0 && m->none++ == 0) m->first_none = s->paths[i];
        if (count > 1 && m->several++ == 0) m->first_several = s->paths[i];
    }
}

static dn_status report_matches(const char *src, int valid, const dn_split *s, const match_stats *m)
{
    int usable = s->n - m->none - (valid ? 0 : m->several);
    if (usable == 0)
        return dn_fail(DN_ERR_DATA, "%s: none of the %d images has %s class name in its path (first: %s)", src, s->n,
                       valid ? "a" : "exactly one", s->paths[0]);
    if (m->none)
        dn_warn("%s: %d of %d images match no label%s; first: %s", src, m->none, s->n,
                valid ? " and count as wrong" : " and are left out of training", m->first_none);
    if (m->several)
        dn_warn("%s: %d of %d images match several labels%s; first: %s", src, m->several, s->n,
                valid ? " (the first in label order is used)" : " and are left out of training", m->first_several);
    return DN_OK;
}

static dn_status load_list(const dn_data_config *cfg, const char *src, int valid, int max_rows, dn_split *out)
{
    if (cfg->nlabels < 1)
        return dn_fail(DN_ERR_DATA, "%s: an image list needs class names: set labels= (or names=) in the .data, "
                       "one name per line", src);
    if (cfg->nlabels > cfg->classes)
        return dn_fail(DN_ERR_DATA, "%s: %d class names but classes=%d", src, cfg->nlabels, cfg->classes);
    dn_lines l;
    DN_TRY(dn_lines_read(src, &l));
    int n = 0;
    for (int i = 0; i < l.n; ++i) n += l.line[i][0] != 0;
    if (n == 0) { dn_lines_free(&l); return dn_fail(DN_ERR_DATA, "%s: empty image list", src); }
    if (max_rows > 0 && n > max_rows) n = max_rows;
    out->paths = dn_calloc((size_t)n, sizeof(char *));
    out->labels = dn_calloc((size_t)n, sizeof(int));
    if (!out->paths || !out->labels) { dn_lines_free(&l); return DN_ERR_NOMEM; }
    for (int i = 0, j = 0; i < l.n && j < n; ++i)
        if (l.line[i][0]) { out->paths[j++] = l.line[i]; l.line[i] = NULL; }
    dn_lines_free(&l);
    out->n = n;
    out->classes = cfg->classes;
    out->is_list = 1;
    match_stats m;
    label_paths(cfg, valid, out, &m);
    return report_matches(src, valid, out, &m);
}

/* ------------------------------------------------------------ public */

static dn_status load_source(const dn_data_config *cfg, const char *src, const char *labels, const char *key,
                             int valid, int max_rows, dn_split *out)
{
    int comma_list = strchr(src, ',') && access(src, F_OK) != 0;
    if (comma_list || dn_cifar_is_batch(src)) return load_cifar(cfg, src, max_rows, out);
    if (dn_idx_is_images(src)) return load_idx(cfg, src, labels, key, max_rows, out);
    return load_list(cfg, src, valid, max_rows, out);
}

dn_status dn_split_load(const dn_data_config *cfg, int valid, int max_rows, dn_split *out)
{
    if (!out) return dn_fail(DN_ERR_ARG, "dn_split_load: no output split");
    memset(out, 0, sizeof *out);
    if (!cfg) return dn_fail(DN_ERR_ARG, "dn_split_load: no .data config");
    const char *key = valid ? "valid" : "train";
    const char *src = valid ? cfg->valid : cfg->train;
    const char *labels = valid ? cfg->valid_labels : cfg->train_labels;
    if (valid && !src) {
        dn_warn("no valid= in the .data; validating on the train split %s (as upstream)",
                cfg->train ? cfg->train : "(none)");
        key = "train";
        src = cfg->train;
        labels = cfg->train_labels;
    }
    if (!src || !*src) return dn_fail(DN_ERR_ARG, "%s split: no %s= in the .data", key, key);
    dn_status st = load_source(cfg, src, labels, key, valid, max_rows, out);
    if (st != DN_OK) {
        dn_split_free(out);
        return dn_fail_context(st, "%s split", valid ? "valid" : "train");
    }
    return DN_OK;
}

void dn_split_free(dn_split *s)
{
    if (!s) return;
    if (s->paths)
        for (int i = 0; i < s->n; ++i) free(s->paths[i]);
    free(s->paths);
    free(s->labels);
    dn_dataset_free(&s->arrays);
    memset(s, 0, sizeof *s);
}

static dn_status slice_arrays(const dn_dataset *d, int start, int count, dn_dataset *out)
{
    DN_TRY(dn_dataset_alloc(out, count, d->w, d->h, d->c, d->classes));
    memcpy(out->X, d->X + (size_t)start * d->cols, (size_t)count * d->cols * sizeof(float));
    memcpy(out->y, d->y + (size_t)start * d->classes, (size_t)count * d->classes * sizeof(float));
    memcpy(out->labels, d->labels + start, (size_t)count * sizeof(int));
    return DN_OK;
}

dn_status dn_split_slice(const dn_split *s, int start, int count, dn_split *out)
{
    if (!out) return dn_fail(DN_ERR_ARG, "dn_split_slice: no output split");
    memset(out, 0, sizeof *out);
    if (!s) return dn_fail(DN_ERR_ARG, "dn_split_slice: no split");
    if (start < 0 || count < 0 || start > s->n || count > s->n - start)
        return dn_fail(DN_ERR_ARG, "dn_split_slice: rows [%d, %d+%d) are outside the split's %d images", start, start,
                       count, s->n);
    out->n = count;
    out->classes = s->classes;
    out->is_list = s->is_list;
    out->labels = dn_calloc((size_t)count, sizeof(int));
    dn_status st = out->labels ? DN_OK : DN_ERR_NOMEM;
    if (st == DN_OK) memcpy(out->labels, s->labels + start, (size_t)count * sizeof(int));
    if (st == DN_OK && s->is_list) {
        out->paths = dn_calloc((size_t)count, sizeof(char *));
        st = out->paths ? DN_OK : DN_ERR_NOMEM;
        for (int i = 0; st == DN_OK && i < count; ++i)
            if (!(out->paths[i] = dn_strdup(s->paths[start + i]))) st = DN_ERR_NOMEM;
    } else if (st == DN_OK) {
        st = slice_arrays(&s->arrays, start, count, &out->arrays);
    }
    if (st != DN_OK) dn_split_free(out);
    return st;
}

dn_status dn_split_eval_input(const dn_split *s, int i, int w, int h, int c, float *x)
{
    if (!s || !x) return dn_fail(DN_ERR_ARG, "dn_split_eval_input: no split or output");
    if (i < 0 || i >= s->n) return dn_fail(DN_ERR_ARG, "dn_split_eval_input: image %d outside [0, %d)", i, s->n);
    if (w < 1 || h < 1 || c < 1) return dn_fail(DN_ERR_ARG, "dn_split_eval_input: shape %d x %d x %d", w, h, c);
    if (!s->is_list) {
        const dn_dataset *d = &s->arrays;
        dn_image src = dn_image_view(d->X + (size_t)i * d->cols, d->w, d->h, d->c);
        dn_status st = dn_image_fit_into(&src, w, h, c, x);
        return st == DN_OK ? st : dn_fail_context(st, "image %d", i);
    }
    if (c != 1 && c != 3)
        return dn_fail(DN_ERR_SHAPE, "%s: image files load as 1 or 3 channels, not %d", s->paths[i], c);
    dn_image im;
    DN_TRY(dn_image_load(s->paths[i], c, &im));
    int m = im.w < im.h ? im.w : im.h;
    dn_image out = dn_image_view(x, w, h, c);
    dn_image_resize_window(&im, (im.w - m) / 2, (im.h - m) / 2, m, m, &out);
    dn_image_free(&im);
    return DN_OK;
}
