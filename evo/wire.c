/*
 * wire.c — the messages between the MPI controller (rank 0) and its worker
 * ranks, as bytes: a 20-byte header (magic "DNEV", version, type, payload
 * length; little-endian) and a payload of fixed-width fields and
 * length-prefixed byte strings. Decoding checks every length against what
 * arrived, so a truncated, oversized, foreign or wrong-version message is a
 * clear error, never a crash or a read past the buffer. No MPI here: the
 * transport is evo/mpi.c; this file is unit-tested without it.
 */
#include "evo_internal.h"
#include <stdlib.h>
#include <string.h>

#define HEADER 20
static const unsigned char MAGIC[4] = {'D', 'N', 'E', 'V'};

/* ------------------------------------------------------------ writing */

static void put_raw(evo_wire *w, const void *p, size_t n)
{
    if (w->failed) return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) cap *= 2;
        unsigned char *d = realloc(w->data, cap);
        if (!d) { w->failed = 1; return; }
        w->data = d;
        w->cap = cap;
    }
    memcpy(w->data + w->len, p, n);
    w->len += n;
}

static void put_le(evo_wire *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; ++i) b[i] = (unsigned char)(v >> (8 * i));
    put_raw(w, b, (size_t)bytes);
}

void evo_wire_u32(evo_wire *w, uint32_t v) { put_le(w, v, 4); }
void evo_wire_u64(evo_wire *w, uint64_t v) { put_le(w, v, 8); }

void evo_wire_f64(evo_wire *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    put_le(w, u, 8);
}

void evo_wire_bytes(evo_wire *w, const void *p, size_t n)
{
    evo_wire_u64(w, n);
    if (n) put_raw(w, p, n);
}

void evo_wire_str(evo_wire *w, const char *s) { evo_wire_bytes(w, s ? s : "", s ? strlen(s) : 0); }

void evo_wire_begin(evo_wire *w, evo_msg_type type)
{
    memset(w, 0, sizeof *w);
    put_raw(w, MAGIC, 4);
    evo_wire_u32(w, EVO_WIRE_VERSION);
    evo_wire_u32(w, (uint32_t)type);
    evo_wire_u64(w, 0);   /* payload length, set by evo_wire_finish */
}

dn_status evo_wire_finish(evo_wire *w)
{
    if (w->failed || w->len < HEADER) return evo_fail(DN_ERR_NOMEM, "out of memory building a message");
    uint64_t payload = w->len - HEADER;
    for (int i = 0; i < 8; ++i) w->data[12 + i] = (unsigned char)(payload >> (8 * i));
    return DN_OK;
}

void evo_wire_free(evo_wire *w)
{
    free(w->data);
    memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------------ reading */

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static const char *type_name(uint32_t t)
{
    switch (t) {
    case EVO_MSG_SETUP: return "setup";
    case EVO_MSG_READY: return "ready";
    case EVO_MSG_TASK: return "task";
    case EVO_MSG_RESULT: return "result";
    case EVO_MSG_STOP: return "stop";
    case EVO_MSG_ALIVE: return "alive";
    default: return "unknown";
    }
}

dn_status evo_wire_open(const void *msg, size_t size, evo_msg_type *type, evo_reader *r)
{
    const unsigned char *p = msg;
    memset(r, 0, sizeof *r);
    if (!p || size < HEADER)
        return evo_fail(DN_ERR_PARSE, "truncated message: %zu bytes, shorter than the %d-byte header", size, HEADER);
    if (memcmp(p, MAGIC, 4) != 0) return evo_fail(DN_ERR_PARSE, "not a darknet evolve message (bad magic)");
    uint32_t version = (uint32_t)get_le(p + 4, 4), t = (uint32_t)get_le(p + 8, 4);
    uint64_t payload = get_le(p + 12, 8);
    if (version != EVO_WIRE_VERSION)
        return evo_fail(DN_ERR_PARSE, "message version %u, this build speaks version %d (mixed builds of darknet?)",
                        version, EVO_WIRE_VERSION);
    if (t < EVO_MSG_SETUP || t > EVO_MSG_ALIVE) return evo_fail(DN_ERR_PARSE, "unknown message type %u", t);
    if (payload != size - HEADER)
        return evo_fail(DN_ERR_PARSE, "%s message: its header announces %llu payload bytes, %zu arrived (%s)",
                        type_name(t), (unsigned long long)payload, size - HEADER,
                        payload > size - HEADER ? "truncated" : "trailing bytes");
    *type = (evo_msg_type)t;
    r->p = p + HEADER;
    r->left = size - HEADER;
    r->what = type_name(t);
    return DN_OK;
}

static dn_status need(evo_reader *r, size_t n, const char *field)
{
    if (r->failed) return DN_ERR_PARSE;
    if (n <= r->left) return DN_OK;
    r->failed = 1;
    return evo_fail(DN_ERR_PARSE, "truncated %s message: %s needs %zu bytes, %zu left", r->what, field, n, r->left);
}

dn_status evo_read_u32(evo_reader *r, const char *field, uint32_t *v)
{
    if (need(r, 4, field) != DN_OK) return DN_ERR_PARSE;
    *v = (uint32_t)get_le(r->p, 4);
    r->p += 4; r->left -= 4;
    return DN_OK;
}

dn_status evo_read_u64(evo_reader *r, const char *field, uint64_t *v)
{
    if (need(r, 8, field) != DN_OK) return DN_ERR_PARSE;
    *v = get_le(r->p, 8);
    r->p += 8; r->left -= 8;
    return DN_OK;
}

dn_status evo_read_f64(evo_reader *r, const char *field, double *v)
{
    uint64_t u;
    if (evo_read_u64(r, field, &u) != DN_OK) return DN_ERR_PARSE;
    memcpy(v, &u, sizeof *v);
    return DN_OK;
}

/* A byte string. Text (n NULL): a malloc'd C string, "" when empty. Binary
 * (n given): a malloc'd copy and its length, NULL when empty. */
dn_status evo_read_bytes(evo_reader *r, const char *field, void **out, size_t *n)
{
    uint64_t len;
    *out = NULL;
    if (n) *n = 0;
    if (evo_read_u64(r, field, &len) != DN_OK) return DN_ERR_PARSE;
    if (need(r, len, field) != DN_OK) return DN_ERR_PARSE;
    if (len == 0 && n) return DN_OK;
    char *b = malloc((size_t)len + 1);
    if (!b) { r->failed = 1; return evo_fail(DN_ERR_NOMEM, "out of memory reading %s (%llu bytes)", field, (unsigned long long)len); }
    memcpy(b, r->p, (size_t)len);
    b[len] = 0;
    r->p += len; r->left -= (size_t)len;
    *out = b;
    if (n) *n = (size_t)len;
    return DN_OK;
}

dn_status evo_read_end(evo_reader *r)
{
    if (r->failed) return DN_ERR_PARSE;
    if (r->left) return evo_fail(DN_ERR_PARSE, "%s message has %zu unexpected bytes at its end", r->what, r->left);
    return DN_OK;
}

/* ------------------------------------------------------------ the messages */

dn_status evo_wire_setup(evo_wire *w, const evo_setup_msg *m)
{
    evo_wire_begin(w, EVO_MSG_SETUP);
    evo_wire_str(w, m->data_path);
    evo_wire_u32(w, (uint32_t)m->holdout);
    evo_wire_u64(w, m->seed);
    evo_wire_u32(w, (uint32_t)m->max_train);
    evo_wire_u32(w, (uint32_t)m->threads);
    evo_wire_str(w, m->gpus);
    return evo_wire_finish(w);
}

dn_status evo_unwire_setup(evo_reader *r, evo_setup_msg *m)
{
    uint32_t holdout = 0, max_train = 0, threads = 0;
    memset(m, 0, sizeof *m);
    evo_read_bytes(r, "data path", (void **)&m->data_path, NULL);
    evo_read_u32(r, "holdout", &holdout);
    evo_read_u64(r, "seed", &m->seed);
    evo_read_u32(r, "max_train", &max_train);
    evo_read_u32(r, "threads", &threads);
    evo_read_bytes(r, "gpus", (void **)&m->gpus, NULL);
    m->holdout = (int)holdout; m->max_train = (int)max_train; m->threads = (int)threads;
    dn_status s = evo_read_end(r);
    if (s != DN_OK) evo_setup_msg_free(m);
    return s;
}

void evo_setup_msg_free(evo_setup_msg *m)
{
    free(m->data_path);
    free(m->gpus);
    memset(m, 0, sizeof *m);
}

dn_status evo_wire_ready(evo_wire *w, dn_status status, const char *error)
{
    evo_wire_begin(w, EVO_MSG_READY);
    evo_wire_u32(w, (uint32_t)status);
    evo_wire_str(w, error);
    return evo_wire_finish(w);
}

dn_status evo_unwire_ready(evo_reader *r, uint32_t *status, char **error)
{
    evo_read_u32(r, "status", status);
    evo_read_bytes(r, "error", (void **)error, NULL);
    dn_status s = evo_read_end(r);
    if (s != DN_OK) { free(*error); *error = NULL; }
    return s;
}

dn_status evo_wire_task(evo_wire *w, const evo_task_msg *m)
{
    evo_wire_begin(w, EVO_MSG_TASK);
    evo_wire_u32(w, (uint32_t)m->id);
    evo_wire_u64(w, m->eval.seed);
    evo_wire_u32(w, (uint32_t)m->eval.steps);
    evo_wire_u32(w, (uint32_t)m->eval.batch);
    evo_wire_u32(w, (uint32_t)m->eval.inherit);
    evo_wire_u32(w, (uint32_t)m->eval.schedule);
    evo_wire_u32(w, (uint32_t)m->eval.val_images);
    evo_wire_u32(w, (uint32_t)m->eval.augment);
    evo_wire_u32(w, (uint32_t)(m->eval.mutation + 1));   /* EVO_MUT_NONE is -1 */
    evo_wire_u32(w, (uint32_t)m->eval.latency_threads);
    evo_wire_f64(w, m->eval.erase);
    evo_wire_str(w, m->child_cfg);
    evo_wire_str(w, m->parent_cfg);
    evo_wire_bytes(w, m->parent_weights, m->parent_weights_size);
    return evo_wire_finish(w);
}

dn_status evo_unwire_task(evo_reader *r, evo_task_msg *m)
{
    uint32_t id = 0, steps = 0, batch = 0, inherit = 0, schedule = 0, val_images = 0, augment = 0, mutation = 0,
             latency_threads = 0;
    double erase = 0;
    memset(m, 0, sizeof *m);
    evo_read_u32(r, "id", &id);
    evo_read_u64(r, "seed", &m->eval.seed);
    evo_read_u32(r, "steps", &steps);
    evo_read_u32(r, "batch", &batch);
    evo_read_u32(r, "inherit", &inherit);
    evo_read_u32(r, "schedule", &schedule);
    evo_read_u32(r, "validation images", &val_images);
    evo_read_u32(r, "augment", &augment);
    evo_read_u32(r, "mutation", &mutation);
    evo_read_u32(r, "latency threads", &latency_threads);
    evo_read_f64(r, "erase", &erase);
    evo_read_bytes(r, "child cfg", (void **)&m->child_cfg, NULL);
    evo_read_bytes(r, "parent cfg", (void **)&m->parent_cfg, NULL);
    evo_read_bytes(r, "parent weights", &m->parent_weights, &m->parent_weights_size);
    m->id = (int)id; m->eval.steps = (int)steps; m->eval.batch = (int)batch; m->eval.inherit = (int)inherit;
    m->eval.schedule = (int)schedule; m->eval.val_images = (int)val_images; m->eval.augment = (int)augment;
    m->eval.mutation = (evo_mutation)((int)mutation - 1);
    m->eval.latency_threads = (int)latency_threads;
    m->eval.erase = (float)erase;
    dn_status s = evo_read_end(r);
    if (s == DN_OK && (schedule > EVO_SCHEDULE_COSINE || val_images > 100000000u || augment > 1 ||
                       latency_threads > 1024 || !(erase >= 0 && erase <= 1)))
        s = evo_fail(DN_ERR_PARSE, "task message: schedule %u, validation images %u, augment %u, latency "
                     "threads %u or erase %g out of range", schedule, val_images, augment, latency_threads, erase);
    if (s != DN_OK) evo_task_msg_free(m);
    return s;
}

void evo_task_msg_free(evo_task_msg *m)
{
    free(m->child_cfg);
    free(m->parent_cfg);
    free(m->parent_weights);
    memset(m, 0, sizeof *m);
}

dn_status evo_wire_result(evo_wire *w, int id, const evo_result *r, double worker_seconds)
{
    evo_wire_begin(w, EVO_MSG_RESULT);
    evo_wire_u32(w, (uint32_t)id);
    evo_wire_u32(w, (uint32_t)r->outcome);
    evo_wire_str(w, r->reason);
    evo_wire_u32(w, (uint32_t)r->diverged);
    evo_wire_f64(w, r->accuracy);
    evo_wire_u32(w, (uint32_t)r->val_images);
    evo_wire_f64(w, r->loss);
    evo_wire_u32(w, (uint32_t)r->steps);
    evo_wire_u64(w, r->seen);
    evo_wire_f64(w, r->train_seconds);
    evo_wire_f64(w, r->eval_seconds);
    evo_wire_f64(w, r->build_seconds);
    evo_wire_u32(w, (uint32_t)r->inherited.copied);
    evo_wire_u32(w, (uint32_t)r->inherited.initialised);
    evo_wire_u64(w, r->params);
    evo_wire_f64(w, r->flops);
    evo_wire_f64(w, r->latency_ms);
    evo_wire_f64(w, r->latency_batch_ms);
    evo_wire_f64(w, worker_seconds);
    evo_wire_bytes(w, r->weights, r->weights_size);
    return evo_wire_finish(w);
}

dn_status evo_unwire_result(evo_reader *r, int *id, evo_result *res, double *worker_seconds)
{
    uint32_t uid = 0, outcome = 0, diverged = 0, steps = 0, copied = 0, initialised = 0, val_images = 0;
    uint64_t params = 0;
    double acc = 0, loss = 0, latency = 0, latency_batch = 0;
    char *reason = NULL;
    memset(res, 0, sizeof *res);
    evo_read_u32(r, "id", &uid);
    evo_read_u32(r, "outcome", &outcome);
    evo_read_bytes(r, "reason", (void **)&reason, NULL);
    evo_read_u32(r, "diverged", &diverged);
    evo_read_f64(r, "accuracy", &acc);
    evo_read_u32(r, "validation images", &val_images);
    evo_read_f64(r, "loss", &loss);
    evo_read_u32(r, "steps", &steps);
    evo_read_u64(r, "seen", &res->seen);
    evo_read_f64(r, "train seconds", &res->train_seconds);
    evo_read_f64(r, "eval seconds", &res->eval_seconds);
    evo_read_f64(r, "build seconds", &res->build_seconds);
    evo_read_u32(r, "inherited", &copied);
    evo_read_u32(r, "initialised", &initialised);
    evo_read_u64(r, "params", &params);
    evo_read_f64(r, "flops", &res->flops);
    evo_read_f64(r, "latency", &latency);
    evo_read_f64(r, "latency at the batch", &latency_batch);
    evo_read_f64(r, "worker seconds", worker_seconds);
    evo_read_bytes(r, "weights", &res->weights, &res->weights_size);
    dn_status s = evo_read_end(r);
    if (s == DN_OK && outcome != EVO_OK && outcome != EVO_FAILED)
        s = evo_fail(DN_ERR_PARSE, "result message: outcome %u is neither ok nor failed", outcome);
    if (s == DN_OK && !(acc >= 0 && acc <= 1))
        s = evo_fail(DN_ERR_PARSE, "result message: accuracy %g is not in [0, 1]", acc);
    if (s == DN_OK && !(latency >= 0 && latency < 1e9 && latency_batch >= 0 && latency_batch < 1e9))
        s = evo_fail(DN_ERR_PARSE, "result message: latency %g / %g ms out of range", latency, latency_batch);
    if (s != DN_OK) {
        free(reason);
        evo_result_free(res);
        return s;
    }
    *id = (int)uid;
    res->outcome = (evo_outcome)outcome;
    snprintf(res->reason, sizeof res->reason, "%s", reason ? reason : "");
    free(reason);
    res->diverged = diverged != 0;
    res->accuracy = (float)acc;
    res->val_images = (int)val_images;
    res->loss = (float)loss;
    res->steps = (int)steps;
    res->inherited.copied = (int)copied;
    res->inherited.initialised = (int)initialised;
    res->params = (size_t)params;
    res->latency_ms = (float)latency;
    res->latency_batch_ms = (float)latency_batch;
    return DN_OK;
}
