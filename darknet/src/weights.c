/*
 * weights.c — upstream Darknet's binary .weights format.
 *
 *   int32 major, minor, revision
 *   seen: uint64 when major*10+minor >= 2 and major, minor < 1000, else int32
 *   then, per layer in cfg order (skipping dontsave / dontload), the arrays of
 *   dn_layer_params() as float32.
 *   major or minor > 1000: connected weights are stored transposed.
 *
 * Loading validates the total size against the cfg before touching the
 * network, so a truncated or oversized file is an error that says expected vs
 * found bytes and leaves the network as it was. Saving writes a temporary
 * file, fsyncs it and renames it into place. Only regular files are read
 * (a FIFO or /dev/zero is refused before reading).
 */

#include "internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAJOR 0
#define MINOR 2
#define REVISION 0

/* Floats the file holds for layers [0, cutoff) on load (or save). */
static size_t body_floats(const dn_network *net, int cutoff, int saving)
{
    size_t total = 0;
    for (int i = 0; i < cutoff && i < net->n; ++i) {
        const dn_layer *l = &net->layers[i];
        if (saving ? l->dontsave : l->dontload) continue;
        dn_param p[DN_MAX_PARAMS];
        int np = dn_layer_params(l, p);
        for (int k = 0; k < np; ++k) {
            if (!saving && l->dontloadscales && strcmp(p[k].name, "weights") && strcmp(p[k].name, "biases")) continue;
            total += p[k].n;
        }
    }
    return total;
}

static void transpose_into(float *dst, const float *src, int rows, int cols)
{
    /* src is (cols, rows) in the file; dst (rows, cols) */
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) dst[(size_t)r * cols + c] = src[(size_t)c * rows + r];
}

dn_status dn_weights_load_memory_upto(dn_network *net, const void *buf, size_t size, const char *name, int cutoff)
{
    const unsigned char *p = buf;
    if (!net || !buf) return dn_fail(DN_ERR_ARG, "dn_weights_load: no network or buffer");
    if (size < 12) return dn_fail(DN_ERR_WEIGHTS, "%s: %zu bytes is too short for a .weights header (at least 16)", name, size);
    int32_t major, minor, revision;
    memcpy(&major, p, 4); memcpy(&minor, p + 4, 4); memcpy(&revision, p + 8, 4);
    size_t header = (major < 1000 && minor < 1000 && (long long)major * 10 + minor >= 2) ? 20 : 16;  /* no overflow */
    int transpose = major > 1000 || minor > 1000;
    if (size < header)
        return dn_fail(DN_ERR_WEIGHTS, "%s: truncated header: expected %zu bytes, found %zu", name, header, size);
    uint64_t seen;
    if (header == 20) memcpy(&seen, p + 12, 8);
    else { int32_t s32; memcpy(&s32, p + 12, 4); seen = (uint64_t)(uint32_t)s32; }
    if (cutoff > net->n || cutoff < 0) cutoff = net->n;
    size_t expected = header + body_floats(net, cutoff, 0) * sizeof(float);
    if (size < expected)
        return dn_fail(DN_ERR_WEIGHTS, "%s: file is truncated: the cfg needs %zu bytes (header %zu + %zu floats), found %zu",
                       name, expected, header, (expected - header) / sizeof(float), size);
    if (cutoff == net->n && size > expected)
        return dn_fail(DN_ERR_WEIGHTS, "%s: file does not match the cfg: the cfg needs %zu bytes, found %zu (%zu trailing bytes)",
                       name, expected, size, size - expected);
    /* all checks passed: copy */
    size_t at = 0;
    for (int i = 0; i < cutoff; ++i) {
        dn_layer *l = &net->layers[i];
        if (l->dontload) continue;
        dn_param prm[DN_MAX_PARAMS];
        int np = dn_layer_params(l, prm);
        for (int k = 0; k < np; ++k) {
            if (l->dontloadscales && strcmp(prm[k].name, "weights") && strcmp(prm[k].name, "biases")) continue;
            const unsigned char *from = p + header + at * sizeof(float);
            if (transpose && prm[k].rows) {
                float *tmp = dn_layer_alloc(prm[k].n);
                if (!tmp) return DN_ERR_NOMEM;
                memcpy(tmp, from, prm[k].n * sizeof(float));
                transpose_into(prm[k].data, tmp, prm[k].rows, prm[k].cols);
                free(tmp);
            } else {
                memcpy(prm[k].data, from, prm[k].n * sizeof(float));
            }
            at += prm[k].n;
        }
    }
    net->seen = seen;
    return dn_network_push(net);   /* a network on the GPU gets the new values */
}

dn_status dn_weights_load_memory(dn_network *net, const void *buf, size_t size, const char *name)
{
    return dn_weights_load_memory_upto(net, buf, size, name ? name : "<memory>", net ? net->n : 0);
}

dn_status dn_weights_load_upto(dn_network *net, const char *path, int cutoff)
{
    char *buf;
    size_t size;
    if (!net || !path) return dn_fail(DN_ERR_ARG, "dn_weights_load: no network or path");
    /* no text limit: the buffer is the size of the (regular) file */
    DN_TRY(dn_read_file_max(path, SIZE_MAX - 1, &buf, &size));
    dn_status st = dn_weights_load_memory_upto(net, buf, size, path, cutoff);
    free(buf);
    return st;
}

dn_status dn_weights_load(dn_network *net, const char *path)
{
    return dn_weights_load_upto(net, path, net ? net->n : 0);
}

dn_status dn_weights_save_memory(const dn_network *net, void **out, size_t *out_size)
{
    if (!net || !out || !out_size) return dn_fail(DN_ERR_ARG, "dn_weights_save_memory: bad arguments");
    DN_TRY(dn_network_pull(net));   /* parameters trained on the GPU */
    size_t size = 20 + body_floats(net, net->n, 1) * sizeof(float);
    unsigned char *buf = dn_calloc(size, 1);
    if (!buf) return DN_ERR_NOMEM;
    int32_t hdr[3] = {MAJOR, MINOR, REVISION};
    memcpy(buf, hdr, 12);
    memcpy(buf + 12, &net->seen, 8);
    size_t at = 20;
    for (int i = 0; i < net->n; ++i) {
        const dn_layer *l = &net->layers[i];
        if (l->dontsave) continue;
        dn_param p[DN_MAX_PARAMS];
        int np = dn_layer_params(l, p);
        for (int k = 0; k < np; ++k) {
            memcpy(buf + at, p[k].data, p[k].n * sizeof(float));
            at += p[k].n * sizeof(float);
        }
    }
    *out = buf;
    *out_size = size;
    return DN_OK;
}

dn_status dn_weights_save(const dn_network *net, const char *path)
{
    void *buf;
    size_t size;
    if (!path) return dn_fail(DN_ERR_ARG, "dn_weights_save: no path");
    DN_TRY(dn_weights_save_memory(net, &buf, &size));
    dn_status st = dn_write_file_atomic(path, buf, size);
    free(buf);
    return st;
}
