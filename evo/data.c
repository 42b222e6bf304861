/*
 * data.c — the data of a search, loaded once per process and shared by every
 * evaluation: the .data config, the training images minus a validation
 * holdout, and the holdout itself.
 *
 * Only the train= split is read. Its images are shuffled with the search seed
 * (Fisher-Yates, rows swapped in place); the last `holdout` images of that
 * order are copied out as the validation split and the rest stays as the
 * training split (the arrays keep their allocation, only the count shrinks),
 * so the peak memory is the training set plus the holdout. The test set
 * (valid=) is never loaded here: it is used once, by export.
 */
#include "evo_internal.h"
#include <stdlib.h>
#include <string.h>

static void swap_bytes(void *a, void *b, void *tmp, size_t n)
{
    memcpy(tmp, a, n);
    memcpy(a, b, n);
    memcpy(b, tmp, n);
}

/* Swap images i and j of the split (row of X, row of y, label, path). */
static void swap_rows(dn_split *s, int i, int j, void *tmp)
{
    int l = s->labels[i];
    s->labels[i] = s->labels[j];
    s->labels[j] = l;
    if (s->is_list) {
        char *p = s->paths[i];
        s->paths[i] = s->paths[j];
        s->paths[j] = p;
        return;
    }
    dn_dataset *d = &s->arrays;
    swap_bytes(d->X + (size_t)i * d->cols, d->X + (size_t)j * d->cols, tmp, (size_t)d->cols * sizeof(float));
    swap_bytes(d->y + (size_t)i * d->classes, d->y + (size_t)j * d->classes, tmp, (size_t)d->classes * sizeof(float));
    l = d->labels[i];
    d->labels[i] = d->labels[j];
    d->labels[j] = l;
}

static dn_status shuffle(dn_split *s, uint64_t seed)
{
    size_t row = s->is_list ? 1 : (size_t)(s->arrays.cols > s->arrays.classes ? s->arrays.cols : s->arrays.classes);
    void *tmp = malloc(row * sizeof(float));
    if (!tmp) return evo_fail(DN_ERR_NOMEM, "out of memory shuffling the training set");
    uint64_t rng = seed;
    for (int i = s->n - 1; i > 0; --i) {
        int j = (int)(dn_rand_u64(&rng) % (uint64_t)(i + 1));
        if (j != i) swap_rows(s, i, j, tmp);
    }
    free(tmp);
    return DN_OK;
}

/* Keep only the first n images of s (in place). */
static void shrink(dn_split *s, int n)
{
    if (s->is_list)
        for (int i = n; i < s->n; ++i) { free(s->paths[i]); s->paths[i] = NULL; }
    else
        s->arrays.rows = n;
    s->n = n;
}

static dn_status check_holdout(const char *data_path, int holdout, int n)
{
    if (holdout < 1)
        return evo_fail(DN_ERR_ARG, "%s: the validation holdout must be at least 1 image, not %d", data_path,
                             holdout);
    if (holdout >= n)
        return evo_fail(DN_ERR_ARG, "%s: a holdout of %d images leaves nothing to train on: the train split has "
                             "%d images (the holdout must be fewer)", data_path, holdout, n);
    return DN_OK;
}

static dn_status load(const char *data_path, int holdout, uint64_t seed, int max_train, evo_data *out)
{
    if (holdout < 1) return check_holdout(data_path, holdout, 0);
    dn_status s = dn_data_config_read(data_path, &out->config);
    if (s != DN_OK) return s;
    out->classes = out->config.classes;
    s = dn_split_load(&out->config, 0, max_train > 0 ? max_train : 0, &out->train);
    if (s != DN_OK) return dn_fail_context(s, "%s", data_path);
    if (out->train.classes != out->classes)
        return evo_fail(DN_ERR_DATA, "%s: the train split has %d classes but classes=%d", data_path,
                             out->train.classes, out->classes);
    int n = out->train.n;
    if ((s = check_holdout(data_path, holdout, n)) != DN_OK) return s;
    if ((s = shuffle(&out->train, seed)) != DN_OK) return s;
    if (dn_split_slice(&out->train, n - holdout, holdout, &out->holdout) != DN_OK)
        return dn_fail_context(DN_ERR_NOMEM, "carving the validation holdout");
    shrink(&out->train, n - holdout);
    return DN_OK;
}

dn_status evo_data_load(const char *data_path, int holdout, uint64_t seed, int max_train, evo_data *out)
{
    if (!out) return evo_fail(DN_ERR_ARG, "evo_data_load: no output");
    memset(out, 0, sizeof *out);
    if (!data_path) return evo_fail(DN_ERR_ARG, "evo_data_load: no .data path");
    dn_status s = load(data_path, holdout, seed, max_train, out);
    if (s != DN_OK) evo_data_free(out);
    return s;
}

void evo_data_free(evo_data *d)
{
    if (!d) return;
    dn_split_free(&d->train);
    dn_split_free(&d->holdout);
    dn_data_config_free(&d->config);
    memset(d, 0, sizeof *d);
}
