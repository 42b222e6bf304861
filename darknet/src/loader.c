/*
 * loader.c — the background batch loader (double buffering).
 *
 * A pool of worker threads fills the loader's batch buffer (X (batch, w*h*c),
 * Y (batch, classes)) while the caller trains on the previous batch;
 * dn_loader_next waits for the buffer, copies it into the caller's arrays and
 * at once starts the next batch. Images are drawn with replacement from the
 * labelled images of the split.
 *
 * Reproducibility: the caller's thread draws, from the loader's own rng, the
 * image index and a private rng seed for every slot of a batch before the
 * workers start; each worker then augments its slot with that slot's rng.
 * The batches depend on the seed only, never on the thread count or timing.
 *
 * Errors: the first failure in a worker (an unreadable image) is copied,
 * message included, into the loader; dn_loader_next returns it, and every
 * later call returns it again (the loader stops producing batches).
 */
#include "data_internal.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64

struct dn_loader {
    dn_loader_options o;
    int inputs, classes;
    uint64_t rng;
    int *pool; int npool;          /* (npool) indexes of labelled images      */
    float *X, *Y;                  /* (batch, inputs), (batch, classes)       */
    int *index;                    /* (batch) image of each slot              */
    uint64_t *seed;                /* (batch) rng seed of each slot           */

    pthread_mutex_t mu;
    pthread_cond_t work, done;     /* workers wait on work, next() on done    */
    int next_slot, done_slots;     /* progress of the batch in preparation    */
    int stop;
    dn_status err;
    char errmsg[2048];

    pthread_t threads[MAX_THREADS];
    int nthreads;
};

/* ------------------------------------------------------------ one sample */

/* Image list: load, crop (random or central), flip with p 1/2, HSV jitter. */
static dn_status sample_image(const dn_loader *ld, int idx, uint64_t *rng, float *x)
{
    const dn_loader_options *o = &ld->o;
    dn_image im, crop = dn_image_view(x, o->w, o->h, o->c);
    DN_TRY(dn_image_load(o->split->paths[idx], o->c, &im));
    if (o->center) {
        int m = im.w < im.h ? im.w : im.h;
        dn_image_resize_window(&im, (im.w - m) / 2, (im.h - m) / 2, m, m, &crop);
    } else {
        dn_augment_random_crop(&im, o, rng, &crop);
    }
    dn_image_free(&im);
    if (dn_rand_u64(rng) & 1) dn_image_flip_x(&crop);
    dn_augment_hsv(&crop, o->hue, o->saturation, o->exposure, rng);
    return DN_OK;
}

/* Arrays: fit to the requested shape, then flip / pad-and-crop when asked. */
static dn_status sample_array(const dn_loader *ld, int idx, uint64_t *rng, float *x)
{
    const dn_loader_options *o = &ld->o;
    const dn_dataset *d = &o->split->arrays;
    dn_image src = dn_image_view(d->X + (size_t)idx * d->cols, d->w, d->h, d->c);
    if (!o->flip && o->crop_pad <= 0) return dn_image_fit_into(&src, o->w, o->h, o->c, x);
    float *tmp = dn_calloc((size_t)ld->inputs, sizeof(float));
    if (!tmp) return DN_ERR_NOMEM;
    dn_status st = dn_image_fit_into(&src, o->w, o->h, o->c, tmp);
    if (st == DN_OK) dn_augment_array(tmp, o->w, o->h, o->c, o->flip, o->crop_pad, rng, x);
    free(tmp);
    return st;
}

static dn_status make_sample(dn_loader *ld, int slot)
{
    uint64_t rng = ld->seed[slot];
    int idx = ld->index[slot];
    float *x = ld->X + (size_t)slot * ld->inputs;
    float *y = ld->Y + (size_t)slot * ld->classes;
    memset(y, 0, (size_t)ld->classes * sizeof(float));
    y[ld->o.split->labels[idx]] = 1;
    DN_TRY(ld->o.split->is_list ? sample_image(ld, idx, &rng, x) : sample_array(ld, idx, &rng, x));
    dn_augment_erase(x, ld->o.w, ld->o.h, ld->o.c, ld->o.erase, &rng);
    return DN_OK;
}

/* ------------------------------------------------------------ threads */

static void *worker(void *arg)
{
    dn_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    while (!ld->stop) {
        if (ld->err != DN_OK || ld->next_slot >= ld->o.batch) {
            pthread_cond_wait(&ld->work, &ld->mu);
            continue;
        }
        int slot = ld->next_slot++;
        pthread_mutex_unlock(&ld->mu);
        dn_status st = make_sample(ld, slot);
        pthread_mutex_lock(&ld->mu);
        if (st != DN_OK && ld->err == DN_OK) {
            ld->err = st;
            snprintf(ld->errmsg, sizeof ld->errmsg, "%s", dn_last_error());
        }
        if (++ld->done_slots == ld->o.batch || st != DN_OK) pthread_cond_broadcast(&ld->done);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

/* Draw the images and seeds of the next batch and wake the workers. Holds mu. */
static void start_batch(dn_loader *ld)
{
    for (int i = 0; i < ld->o.batch; ++i) {
        ld->index[i] = ld->pool[dn_rand_u64(&ld->rng) % (uint64_t)ld->npool];
        ld->seed[i] = dn_rand_u64(&ld->rng);
    }
    ld->next_slot = 0;
    ld->done_slots = 0;
    pthread_cond_broadcast(&ld->work);
}

/* ------------------------------------------------------------ public */

void dn_loader_options_from_network(dn_loader_options *o, const dn_network *net)
{
    if (!o || !net) return;
    o->w = net->w;
    o->h = net->h;
    o->c = net->c;
    o->batch = net->batch * net->subdivisions;
    o->min_ratio = net->min_ratio;
    o->max_ratio = net->max_ratio;
    o->angle = net->angle;
    o->aspect = net->aspect;
    o->hue = net->hue;
    o->saturation = net->saturation;
    o->exposure = net->exposure;
    o->center = net->center;
}

static dn_status check_options(const dn_loader_options *o)
{
    const dn_split *s = o->split;
    if (!s || s->n < 1 || s->classes < 1 || !s->labels)
        return dn_fail(DN_ERR_ARG, "dn_loader_start: no split, or an empty one");
    if (o->batch < 1 || o->w < 1 || o->h < 1 || o->c < 1)
        return dn_fail(DN_ERR_ARG, "dn_loader_start: batch %d of %d x %d x %d is invalid", o->batch, o->w, o->h, o->c);
    if (s->is_list && o->c != 1 && o->c != 3)
        return dn_fail(DN_ERR_ARG, "dn_loader_start: image files load as 1 or 3 channels, not %d", o->c);
    if (!s->is_list && (s->arrays.w < 1 || !s->arrays.X))
        return dn_fail(DN_ERR_ARG, "dn_loader_start: the split has no arrays");
    if (!s->is_list && s->arrays.c != o->c && !(s->arrays.c == 1 && o->c == 3) && !(s->arrays.c == 3 && o->c == 1))
        return dn_fail(DN_ERR_SHAPE, "dn_loader_start: cannot feed %d-channel images to a %d-channel input",
                       s->arrays.c, o->c);
    if (o->crop_pad < 0) return dn_fail(DN_ERR_ARG, "dn_loader_start: crop_pad=%d is negative", o->crop_pad);
    if (!(o->erase >= 0 && o->erase <= 1))
        return dn_fail(DN_ERR_ARG, "dn_loader_start: erase=%g is not a probability in [0, 1]", o->erase);
    return DN_OK;
}

/* Indexes of the images with a label in [0, classes). */
static dn_status make_pool(dn_loader *ld)
{
    const dn_split *s = ld->o.split;
    ld->pool = dn_calloc((size_t)s->n, sizeof(int));
    if (!ld->pool) return DN_ERR_NOMEM;
    for (int i = 0; i < s->n; ++i)
        if (s->labels[i] >= 0 && s->labels[i] < s->classes) ld->pool[ld->npool++] = i;
    if (ld->npool == 0) return dn_fail(DN_ERR_DATA, "dn_loader_start: none of the %d images has a label", s->n);
    return DN_OK;
}

static dn_status alloc_buffers(dn_loader *ld)
{
    size_t b = (size_t)ld->o.batch;
    ld->X = dn_calloc(b * ld->inputs, sizeof(float));
    ld->Y = ld->X ? dn_calloc(b * ld->classes, sizeof(float)) : NULL;
    ld->index = ld->Y ? dn_calloc(b, sizeof(int)) : NULL;
    ld->seed = ld->index ? dn_calloc(b, sizeof(uint64_t)) : NULL;
    return ld->seed ? DN_OK : dn_fail_context(DN_ERR_NOMEM, "loader buffers for a batch of %d", ld->o.batch);
}

static dn_status start_threads(dn_loader *ld)
{
    int n = ld->o.threads > 0 ? ld->o.threads : 2;
    if (n > MAX_THREADS) n = MAX_THREADS;
    if (n > ld->o.batch) n = ld->o.batch;
    for (int i = 0; i < n; ++i) {
        if (pthread_create(&ld->threads[i], NULL, worker, ld) != 0)
            return dn_fail(DN_ERR_NOMEM, "dn_loader_start: cannot start loader thread %d of %d", i + 1, n);
        ld->nthreads++;
    }
    return DN_OK;
}

dn_status dn_loader_start(const dn_loader_options *o, dn_loader **out)
{
    if (!out) return dn_fail(DN_ERR_ARG, "dn_loader_start: no output");
    *out = NULL;
    if (!o) return dn_fail(DN_ERR_ARG, "dn_loader_start: no options");
    DN_TRY(check_options(o));
    dn_loader *ld = dn_calloc(1, sizeof *ld);
    if (!ld) return DN_ERR_NOMEM;
    ld->o = *o;
    ld->inputs = o->w * o->h * o->c;
    ld->classes = o->split->classes;
    ld->rng = o->seed;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->work, NULL);
    pthread_cond_init(&ld->done, NULL);
    dn_status st = make_pool(ld);
    if (st == DN_OK) st = alloc_buffers(ld);
    if (st == DN_OK) {
        pthread_mutex_lock(&ld->mu);
        start_batch(ld);
        pthread_mutex_unlock(&ld->mu);
        st = start_threads(ld);
    }
    if (st != DN_OK) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", dn_last_error());
        dn_loader_stop(ld);
        return dn_fail(st, "%s", msg);
    }
    *out = ld;
    return DN_OK;
}

dn_status dn_loader_next(dn_loader *ld, float *X, float *Y, double *waited)
{
    if (waited) *waited = 0;
    if (!ld || !X) return dn_fail(DN_ERR_ARG, "dn_loader_next: no loader or no output");
    double t0 = dn_time_now();
    pthread_mutex_lock(&ld->mu);
    while (ld->err == DN_OK && ld->done_slots < ld->o.batch) pthread_cond_wait(&ld->done, &ld->mu);
    if (waited) *waited = dn_time_now() - t0;
    if (ld->err != DN_OK) {
        dn_status st = dn_fail(ld->err, "%s", ld->errmsg);
        pthread_mutex_unlock(&ld->mu);
        return st;
    }
    memcpy(X, ld->X, (size_t)ld->o.batch * ld->inputs * sizeof(float));
    if (Y) memcpy(Y, ld->Y, (size_t)ld->o.batch * ld->classes * sizeof(float));
    start_batch(ld);
    pthread_mutex_unlock(&ld->mu);
    return DN_OK;
}

void dn_loader_stop(dn_loader *ld)
{
    if (!ld) return;
    pthread_mutex_lock(&ld->mu);
    ld->stop = 1;
    pthread_cond_broadcast(&ld->work);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->nthreads; ++i) pthread_join(ld->threads[i], NULL);
    pthread_cond_destroy(&ld->work);
    pthread_cond_destroy(&ld->done);
    pthread_mutex_destroy(&ld->mu);
    free(ld->pool);
    free(ld->X);
    free(ld->Y);
    free(ld->index);
    free(ld->seed);
    free(ld);
}
