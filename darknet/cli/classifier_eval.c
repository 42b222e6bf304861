/*
 * classifier_eval.c — `darknet classifier valid` and `predict`.
 *
 * valid: batched forward over the .data valid= split; inputs come from
 *   dn_split_eval_input (image files: upstream's central square resized).
 *   Prints upstream's running line "<i>: top 1: <acc>, top <k>: <acc>" every
 *   1000 images and for the last one (every image with -verbose), then a
 *   summary line "valid: <n> images, top 1: <acc>, top <k>: <acc>, ...".
 * predict: letterboxes one image to the network size and prints the top-k
 *   as "<p%5.2f>%: <name>" on stdout and "<file>: Predicted in <s> seconds."
 *   on stderr. Without an image it prompts "Enter Image Path: " until EOF.
 */
#include "cli.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALID_BATCH 100
#define VALID_PRINT_EVERY 1000

/* Indexes of the k largest of p[0..n) into idx, best first (ties: lower index). */
static void top_k(const float *p, int n, int k, int *idx)
{
    for (int j = 0; j < k; ++j) {
        int best = -1;
        for (int i = 0; i < n; ++i) {
            int taken = 0;
            for (int t = 0; t < j; ++t) taken |= idx[t] == i;
            if (!taken && (best < 0 || p[i] > p[best])) best = i;
        }
        idx[j] = best;
    }
}

/* 1 when the n outputs p are finite; else 0 with DN_ERR_NUMERIC as the last
 * error (NaN weights would otherwise print accuracies and "nan%"). */
static int outputs_finite(const cli_classifier_args *a, const float *p, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (!isfinite(p[i])) {
            dn_set_error(DN_ERR_NUMERIC, "%s: the network's outputs are not finite (%g): the weights hold NaN or "
                         "Inf, or the network overflows", a->weights ? a->weights : a->cfg, p[i]);
            return 0;
        }
    return 1;
}

static int topk_of(const cli_classifier_args *a, const dn_data_config *dc, int classes)
{
    int k = a->top ? a->top : dc->top;
    if (k < 1) k = 1;
    return k > classes ? classes : k;
}

int classifier_valid(const cli_classifier_args *a)
{
    dn_data_config dc;
    dn_network *net;
    int rc = classifier_open(a, VALID_BATCH, 1, &dc, &net);
    if (rc) return rc;
    if (!a->weights) fprintf(stderr, "darknet: warning: no weights given: validating an untrained network\n");
    int classes = net->outputs, k = topk_of(a, &dc, classes);
    dn_split split;
    memset(&split, 0, sizeof split);
    float *X = malloc(sizeof(float) * VALID_BATCH * net->inputs);
    float *P = malloc(sizeof(float) * VALID_BATCH * classes);
    int *idx = malloc(sizeof(int) * (size_t)k);
    rc = DN_EXIT_ERROR;
    if (!X || !P || !idx) { fprintf(stderr, "darknet: out of memory\n"); goto done; }
    if (dn_split_load(&dc, 1, a->max_rows, &split) != DN_OK) { cli_fail("loading the validation set"); goto done; }
    if (split.n < 1) { fprintf(stderr, "darknet: the validation set %s is empty\n", dc.valid); goto done; }
    if (split.n < VALID_BATCH && dn_network_set_batch(net, split.n) != DN_OK) { cli_fail("resizing"); goto done; }

    double t0 = dn_time_now();
    int right1 = 0, rightk = 0;
    for (int start = 0; start < split.n; start += net->batch) {
        int count = split.n - start < net->batch ? split.n - start : net->batch;
        for (int j = 0; j < count; ++j)
            if (dn_split_eval_input(&split, start + j, net->w, net->h, net->c, X + (size_t)j * net->inputs) != DN_OK) {
                cli_fail("reading a validation image");
                goto done;
            }
        if (dn_network_predict_batch(net, X, count, P) != DN_OK) { cli_fail("predicting"); goto done; }
        if (!outputs_finite(a, P, (size_t)count * classes)) { cli_fail("validating"); goto done; }
        for (int j = 0; j < count; ++j) {
            int i = start + j, label = split.labels[i];
            top_k(P + (size_t)j * classes, classes, k, idx);
            right1 += idx[0] == label;
            for (int t = 0; t < k; ++t) rightk += idx[t] == label;
            if (a->verbose || (i + 1) % VALID_PRINT_EVERY == 0 || i + 1 == split.n)
                printf("%d: top 1: %f, top %d: %f\n", i, (double)right1 / (i + 1), k, (double)rightk / (i + 1));
        }
    }
    double secs = dn_time_now() - t0;
    printf("valid: %d images, top 1: %.4f, top %d: %.4f, %.2f seconds (%.0f images/s)\n", split.n,
           (double)right1 / split.n, k, (double)rightk / split.n, secs, split.n / (secs + 1e-9));
    rc = 0;
done:
    fflush(stdout);
    free(X);
    free(P);
    free(idx);
    dn_split_free(&split);
    dn_network_free(net);
    dn_data_config_free(&dc);
    return rc;
}

/* Predict one image file and print its top-k; returns 0 or DN_EXIT_ERROR. */
static int predict_one(const cli_classifier_args *a, dn_network *net, const dn_data_config *dc, int k,
                       const char *path)
{
    dn_image im = {0}, boxed = {0};
    int channels = net->c == 1 || net->c == 3 ? net->c : 0;
    double t0 = dn_time_now();
    if (dn_image_load(path, channels, &im) != DN_OK) return cli_fail("loading the image");
    if (im.c != net->c) {
        fprintf(stderr, "darknet: %s has %d channels, the network wants %d\n", path, im.c, net->c);
        dn_image_free(&im);
        return DN_EXIT_ERROR;
    }
    dn_status st = dn_image_letterbox(&im, net->w, net->h, &boxed);
    dn_image_free(&im);
    if (st != DN_OK) return cli_fail("letterboxing the image");
    const float *p = NULL;
    st = dn_network_predict(net, boxed.data, &p);
    dn_image_free(&boxed);
    if (st != DN_OK) return cli_fail("predicting");
    if (!outputs_finite(a, p, (size_t)net->outputs)) return cli_fail("predicting");
    double secs = dn_time_now() - t0;
    int idx[64];
    if (k > 64) k = 64;
    top_k(p, net->outputs, k, idx);
    fprintf(stderr, "%s: Predicted in %f seconds.\n", path, secs);
    for (int t = 0; t < k; ++t) {
        int c = idx[t];
        if (c < dc->nlabels) printf("%5.2f%%: %s\n", p[c] * 100, dc->label_names[c]);
        else printf("%5.2f%%: %d\n", p[c] * 100, c);
    }
    fflush(stdout);
    return 0;
}

int classifier_predict(const cli_classifier_args *a)
{
    if (!a->weights) {
        fprintf(stderr, "darknet classifier predict: needs <data> <cfg> <weights> [image]\n");
        return DN_EXIT_USAGE;
    }
    dn_data_config dc;
    dn_network *net;
    int rc = classifier_open(a, 1, 0, &dc, &net);
    if (rc) return rc;
    if (dc.nlabels < net->outputs)
        fprintf(stderr, "darknet: warning: %d class names for %d classes; the rest print as numbers\n", dc.nlabels,
                net->outputs);
    int k = topk_of(a, &dc, net->outputs);
    if (a->image) {
        rc = predict_one(a, net, &dc, k, a->image);
    } else {
        char *line = NULL;
        size_t cap = 0;
        for (;;) {
            printf("Enter Image Path: ");
            fflush(stdout);
            ssize_t len = getline(&line, &cap, stdin);
            if (len < 0) { printf("\n"); break; }
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
            if (len == 0) continue;
            if (predict_one(a, net, &dc, k, line)) rc = DN_EXIT_ERROR;   /* report, keep reading */
        }
        free(line);
    }
    dn_network_free(net);
    dn_data_config_free(&dc);
    return rc;
}
