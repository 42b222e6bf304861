/*
 * events.c — the event log's format and its replay: one JSON line per
 * evaluation in DIR/events.jsonl (fields: README, "The run folder"), the rules
 * every line must keep (evo_event_check: sequential evaluation numbers, new
 * ids, earlier parents, only the living killed or lost), and the state they
 * rebuild (evo_state). The store (store.c) checks every event it appends with
 * the same rules, so the log never holds a line a resume could not replay.
 */
#include "evo_internal.h"
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ state */

void evo_state_free(evo_state *s)
{
    if (!s) return;
    free(s->ind);
    memset(s, 0, sizeof *s);
}

evo_individual *evo_state_find(evo_state *s, int id)
{
    if (!s) return NULL;
    for (int i = 0; i < s->n; ++i)
        if (s->ind[i].id == id) return &s->ind[i];
    return NULL;
}

int evo_ranks_above(const evo_individual *a, const evo_individual *b)
{
    if (a->rung != b->rung) return a->rung > b->rung;
    return a->accuracy > b->accuracy;
}

int evo_state_best_ever(const evo_state *s)
{
    int b = -1;
    for (int i = 0; s && i < s->n; ++i)
        if (s->ind[i].outcome == EVO_OK && (b < 0 || evo_ranks_above(&s->ind[i], &s->ind[b]))) b = i;
    return b;
}

dn_status evo_state_copy(const evo_state *src, evo_state *dst)
{
    *dst = *src;
    dst->ind = NULL;
    dst->cap = src->n;
    if (src->n == 0) return DN_OK;
    dst->ind = malloc((size_t)src->n * sizeof *dst->ind);
    if (!dst->ind) { memset(dst, 0, sizeof *dst); return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    memcpy(dst->ind, src->ind, (size_t)src->n * sizeof *dst->ind);
    return DN_OK;
}

/* ------------------------------------------------------------ events: check and apply */


/* A promotion trains a living individual further: one level up, nobody dies. */
static dn_status check_promotion(const evo_state *s, const evo_event *e)
{
    const evo_individual *v = evo_state_find((evo_state *)s, e->id);
    if (!v || !v->alive) return evo_fail(DN_ERR_DATA, "promoted individual %d is not alive", e->id);
    if (e->rung != v->rung + 1)
        return evo_fail(DN_ERR_DATA, "individual %d is promoted to level %d from level %d", e->id, e->rung, v->rung);
    if (e->nkilled) return evo_fail(DN_ERR_DATA, "a promotion kills nobody");
    for (int k = 0; k < e->nlost; ++k)
        if (e->lost[k] == e->id) return evo_fail(DN_ERR_DATA, "promoted individual %d is also lost", e->id);
    return DN_OK;
}

/* Every rule a replay enforces; nothing is changed. */
dn_status evo_event_check(const evo_state *s, const evo_event *e)
{
    if (e->eval != s->evals + 1)
        return evo_fail(DN_ERR_DATA, "evaluation %d follows evaluation %d (expected %d)", e->eval, s->evals,
                             s->evals + 1);
    if (e->id < 0) return evo_fail(DN_ERR_DATA, "id %d is negative", e->id);
    if (e->promotion) DN_TRY(check_promotion(s, e));
    else if (evo_state_find((evo_state *)s, e->id))
        return evo_fail(DN_ERR_DATA, "id %d is already used by an earlier evaluation", e->id);
    if (!e->promotion && (e->parent < -1 || (e->parent >= 0 && !evo_state_find((evo_state *)s, e->parent))))
        return evo_fail(DN_ERR_DATA, "parent %d of individual %d is not an earlier individual", e->parent, e->id);
    for (int k = 0; k < e->nkilled; ++k) {
        if (e->killed[k] == e->id) continue;
        const evo_individual *v = evo_state_find((evo_state *)s, e->killed[k]);
        if (!v) return evo_fail(DN_ERR_DATA, "killed individual %d does not exist", e->killed[k]);
        if (!v->alive)
            return evo_fail(DN_ERR_DATA, "killed individual %d is not alive (%s at evaluation %d)", v->id,
                                 v->outcome == EVO_OK ? "died" : "failed", v->died_at);
    }
    for (int k = 0; k < e->nlost; ++k) {
        const evo_individual *v = evo_state_find((evo_state *)s, e->lost[k]);
        if (!v || !v->alive || e->lost[k] == e->id)
            return evo_fail(DN_ERR_DATA, "lost individual %d is not a living earlier individual", e->lost[k]);
        for (int j = 0; j < e->nkilled; ++j)
            if (e->killed[j] == e->lost[k])
                return evo_fail(DN_ERR_DATA, "individual %d is both killed and lost", e->lost[k]);
    }
    return DN_OK;
}

/* Room for one more individual. */
dn_status evo_state_reserve(evo_state *s)
{
    if (s->n < s->cap) return DN_OK;
    int cap = s->cap ? 2 * s->cap : 64;
    evo_individual *ni = realloc(s->ind, (size_t)cap * sizeof *ni);
    if (!ni) return evo_fail(DN_ERR_NOMEM, "out of memory for %d individuals", cap);
    s->ind = ni;
    s->cap = cap;
    return DN_OK;
}

/* Apply a checked event (room reserved with evo_state_reserve): the child
 * joins (alive when it trained), the killed and the lost die, the counters move. */
void evo_promotion_event(const evo_individual *v, int eval, const evo_result *r, uint64_t rng, double elapsed,
                         evo_event *e)
{
    memset(e, 0, sizeof *e);
    e->eval = eval;
    e->id = v->id;
    e->parent = v->parent;
    e->mutation = v->mutation;
    e->promotion = 1;
    e->rung = v->rung + 1;
    e->outcome = r->outcome;
    e->accuracy = r->outcome == EVO_OK ? r->accuracy : 0;
    e->val_images = r->val_images;
    e->steps = r->steps;
    e->seconds = r->build_seconds + r->train_seconds + r->eval_seconds;
    e->params = v->params;
    e->flops = v->flops;
    e->latency_ms = v->latency_ms;   /* the same network: its latency as measured at its birth */
    e->latency_batch_ms = v->latency_batch_ms;
    e->rng = rng;
    e->elapsed = elapsed;
    e->worker = v->worker;
    e->worker_busy = v->worker_busy;
}

/* A checked promotion: the individual's score and level move up, or (failed)
 * it stays as it was and is not promoted again. */
static void apply_promotion(evo_state *s, const evo_event *e)
{
    evo_individual *v = evo_state_find(s, e->id);
    v->steps += e->steps;
    v->seconds += e->seconds;
    if (e->outcome == EVO_OK) {
        v->accuracy = e->accuracy;
        v->rung = e->rung;
        v->val_images = e->val_images;
        v->ranked_at = e->elapsed;
        evo_archive_update(s, (int)(v - s->ind));
    } else {
        v->stalled = 1;
    }
    for (int k = 0; k < e->nlost; ++k) {
        evo_individual *x = evo_state_find(s, e->lost[k]);
        if (x && x->alive) { x->alive = 0; x->died_at = e->eval; }
    }
    s->evals = e->eval;
    s->rng = e->rng;
    s->elapsed = e->elapsed;
}

void evo_event_apply(evo_state *s, const evo_event *e, int *baseline)
{
    if (e->promotion) { apply_promotion(s, e); return; }
    evo_individual ind;
    memset(&ind, 0, sizeof ind);
    ind.id = e->id;
    ind.parent = e->parent;
    ind.mutation = e->mutation;
    ind.eval = e->eval;
    ind.outcome = e->outcome;
    ind.alive = e->outcome == EVO_OK;
    ind.died_at = ind.alive ? 0 : e->eval;
    ind.accuracy = ind.alive ? e->accuracy : 0;
    ind.steps = e->steps;
    ind.seconds = e->seconds;
    ind.params = e->params;
    ind.flops = e->flops;
    ind.latency_ms = e->latency_ms;
    ind.latency_batch_ms = e->latency_batch_ms;
    ind.elapsed = e->elapsed;
    ind.ranked_at = e->elapsed;
    ind.val_images = e->val_images;
    s->ind[s->n++] = ind;
    evo_archive_update(s, s->n - 1);
    for (int k = 0; k < e->nkilled + e->nlost; ++k) {
        evo_individual *v = evo_state_find(s, k < e->nkilled ? e->killed[k] : e->lost[k - e->nkilled]);
        if (v && v->alive) { v->alive = 0; v->died_at = e->eval; }
    }
    s->evals = e->eval;
    if (s->next_id <= e->id) s->next_id = e->id + 1;
    s->rng = e->rng;
    s->elapsed = e->elapsed;
    if (*baseline < 0 && e->parent < 0 && e->outcome == EVO_OK) *baseline = e->id;
}

/* ------------------------------------------------------------ events: JSON */

static void iso_time(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(buf, n, "unknown");
}

dn_status evo_event_line(const evo_event *e, const evo_result *r, char **line, size_t *len)
{
    char rng[24], when[32];
    snprintf(rng, sizeof rng, "%016" PRIx64, e->rng);
    iso_time(when, sizeof when);
    evo_json_writer w;
    evo_json_begin(&w);
    evo_json_int(&w, "eval", e->eval);
    if (e->promotion) evo_json_str(&w, "event", "promotion");
    evo_json_int(&w, "id", e->id);
    evo_json_int(&w, "parent", e->parent);
    evo_json_str(&w, "mutation", e->mutation == EVO_MUT_NONE ? "none" : evo_mutation_name(e->mutation));
    evo_json_str(&w, "outcome", e->outcome == EVO_OK ? "ok" : "failed");
    if (e->outcome != EVO_OK) evo_json_str(&w, "reason", r ? r->reason : "");
    if (r && r->retried[0]) evo_json_str(&w, "retried", r->retried);
    evo_json_num(&w, "accuracy", e->accuracy);
    evo_json_int(&w, "rung", e->rung);
    evo_json_int(&w, "val_images", e->val_images);
    evo_json_num(&w, "loss", r ? r->loss : 0);
    evo_json_int(&w, "steps", e->steps);
    evo_json_u64(&w, "seen", r ? r->seen : 0);
    evo_json_u64(&w, "params", e->params);
    evo_json_num(&w, "flops", e->flops);
    if (e->latency_ms > 0) {
        evo_json_num(&w, "latency_ms", e->latency_ms);
        evo_json_num(&w, "latency_batch_ms", e->latency_batch_ms);
    }
    evo_json_int(&w, "inherited", r ? r->inherited.copied : 0);
    evo_json_int(&w, "initialised", r ? r->inherited.initialised : 0);
    evo_json_ints(&w, "killed", e->killed, e->nkilled);
    if (e->nlost) evo_json_ints(&w, "lost", e->lost, e->nlost);
    if (e->key) {
        char seed[24];
        snprintf(seed, sizeof seed, "%" PRIu64, e->key->seed);
        evo_json_str(&w, "data", e->key->data);
        evo_json_int(&w, "holdout", e->key->holdout);
        evo_json_int(&w, "max_train", e->key->max_train);
        evo_json_str(&w, "seed", seed);
    }
    evo_json_str(&w, "rng", rng);
    evo_json_num(&w, "elapsed", e->elapsed);
    evo_json_num(&w, "train_seconds", r ? r->train_seconds : 0);
    evo_json_num(&w, "eval_seconds", r ? r->eval_seconds : 0);
    evo_json_num(&w, "build_seconds", r ? r->build_seconds : 0);
    evo_json_int(&w, "worker", e->worker);
    evo_json_num(&w, "worker_busy_seconds", e->worker_busy);
    evo_json_str(&w, "time", when);
    return evo_json_end(&w, line, len);
}

static dn_status need(const evo_json_object *o, const char *key, evo_json_type type, const evo_json_field **f)
{
    *f = evo_json_get(o, key);
    if (!*f) return evo_fail(DN_ERR_DATA, "field \"%s\" is missing", key);
    if ((*f)->type != type)
        return evo_fail(DN_ERR_DATA, "field \"%s\" is not %s", key,
                             type == EVO_JSON_NUMBER ? "a number" : type == EVO_JSON_STRING ? "a string" : "an array");
    return DN_OK;
}

static dn_status need_int(const evo_json_object *o, const char *key, int *out)
{
    const evo_json_field *f;
    DN_TRY(need(o, key, EVO_JSON_NUMBER, &f));
    if (!f->is_int || f->num < -2147483648.0 || f->num > 2147483647.0)
        return evo_fail(DN_ERR_DATA, "field \"%s\" is not an integer", key);
    *out = (int)f->num;
    return DN_OK;
}

/* An optional number; null and absent give def. */
static double opt_num(const evo_json_object *o, const char *key, double def)
{
    const evo_json_field *f = evo_json_get(o, key);
    return f && f->type == EVO_JSON_NUMBER ? f->num : def;
}

static dn_status decode_mutation(const evo_json_object *o, evo_mutation *m)
{
    const evo_json_field *f;
    DN_TRY(need(o, "mutation", EVO_JSON_STRING, &f));
    if (strcmp(f->str, "none") == 0) { *m = EVO_MUT_NONE; return DN_OK; }
    if (evo_mutation_from_name(f->str, m) != DN_OK)
        return evo_fail(DN_ERR_DATA, "unknown mutation \"%s\"", f->str);
    return DN_OK;
}

static dn_status decode_outcome_rng(const evo_json_object *o, evo_event *e)
{
    const evo_json_field *f;
    DN_TRY(need(o, "outcome", EVO_JSON_STRING, &f));
    if (strcmp(f->str, "ok") == 0) e->outcome = EVO_OK;
    else if (strcmp(f->str, "failed") == 0) e->outcome = EVO_FAILED;
    else return evo_fail(DN_ERR_DATA, "outcome \"%s\" is neither \"ok\" nor \"failed\"", f->str);
    DN_TRY(need(o, "rng", EVO_JSON_STRING, &f));
    const char *h = f->str + (strncmp(f->str, "0x", 2) == 0 ? 2 : 0);
    char *end;
    errno = 0;
    e->rng = strtoull(h, &end, 16);
    if (!*h || *end || errno || strlen(h) > 16 || *h == '-' || *h == '+')
        return evo_fail(DN_ERR_DATA, "rng \"%s\" is not a 64-bit hex number", f->str);
    return DN_OK;
}

static dn_status decode_event(const evo_json_object *o, evo_event *e)
{
    memset(e, 0, sizeof *e);
    const evo_json_field *f;
    DN_TRY(need_int(o, "eval", &e->eval));
    if ((f = evo_json_get(o, "event"))) {
        if (f->type != EVO_JSON_STRING || strcmp(f->str, "promotion"))
            return evo_fail(DN_ERR_DATA, "field \"event\" is not \"promotion\"");
        e->promotion = 1;
    }
    DN_TRY(need_int(o, "id", &e->id));
    DN_TRY(need_int(o, "parent", &e->parent));
    DN_TRY(decode_mutation(o, &e->mutation));
    DN_TRY(decode_outcome_rng(o, e));
    DN_TRY(need(o, "accuracy", EVO_JSON_NUMBER, &f));
    e->accuracy = (float)f->num;
    DN_TRY(need(o, "killed", EVO_JSON_INTS, &f));
    e->killed = f->ints;
    e->nkilled = f->nints;
    if ((f = evo_json_get(o, "lost"))) {
        if (f->type != EVO_JSON_INTS) return evo_fail(DN_ERR_DATA, "field \"lost\" is not an array");
        e->lost = f->ints;
        e->nlost = f->nints;
    }
    DN_TRY(need(o, "elapsed", EVO_JSON_NUMBER, &f));
    e->elapsed = f->num;
    e->steps = (int)opt_num(o, "steps", 0);
    e->rung = (int)opt_num(o, "rung", 0);
    e->val_images = (int)opt_num(o, "val_images", 0);
    if (e->rung < 0 || e->rung > 64 || (!e->promotion && e->rung != 0))
        return evo_fail(DN_ERR_DATA, "field \"rung\" is %d", e->rung);
    e->params = (size_t)opt_num(o, "params", 0);
    e->flops = opt_num(o, "flops", 0);
    e->latency_ms = (float)opt_num(o, "latency_ms", 0);
    e->latency_batch_ms = (float)opt_num(o, "latency_batch_ms", 0);
    if (!(e->latency_ms >= 0 && e->latency_batch_ms >= 0))
        return evo_fail(DN_ERR_DATA, "field \"latency_ms\" or \"latency_batch_ms\" is negative");
    e->seconds = opt_num(o, "train_seconds", 0) + opt_num(o, "eval_seconds", 0) + opt_num(o, "build_seconds", 0);
    return DN_OK;
}

/* The data key of evaluation 1 (absent in logs written before it was recorded). */
static dn_status decode_key(const evo_json_object *o, evo_log *log)
{
    const evo_json_field *data = evo_json_get(o, "data"), *seed = evo_json_get(o, "seed");
    if (!data) return DN_OK;
    evo_data_key k = {0};
    char *end = NULL;
    if (data->type != EVO_JSON_STRING || !seed || seed->type != EVO_JSON_STRING)
        return evo_fail(DN_ERR_DATA, "fields \"data\" and \"seed\" must be strings");
    errno = 0;
    k.seed = strtoull(seed->str, &end, 10);
    if (!*seed->str || *end || errno || *seed->str == '-')
        return evo_fail(DN_ERR_DATA, "seed \"%s\" is not a 64-bit number", seed->str);
    DN_TRY(need_int(o, "holdout", &k.holdout));
    DN_TRY(need_int(o, "max_train", &k.max_train));
    if (!(k.data = strdup(data->str))) return evo_fail(DN_ERR_NOMEM, "out of memory");
    free(log->key.data);
    log->key = k;
    log->has_key = 1;
    return DN_OK;
}

/* ------------------------------------------------------------ replay */

static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') return 0;
    return 1;
}

/* One complete line: parse, check, apply. *torn is set for an unparsable last line. */
static dn_status replay_line(evo_log *log, const char *p, size_t len, int last, int *torn)
{
    evo_json_object o;
    if (evo_json_parse(p, len, &o) != DN_OK) {
        if (last) { *torn = 1; return DN_OK; }
        return DN_ERR_PARSE;
    }
    evo_event e;
    dn_status s = decode_event(&o, &e);
    if (s == DN_OK) s = evo_event_check(&log->state, &e);
    if (s == DN_OK && e.eval == 1) s = decode_key(&o, log);
    if (s == DN_OK) s = evo_state_reserve(&log->state);
    if (s == DN_OK) evo_event_apply(&log->state, &e, &log->baseline);
    evo_json_object_free(&o);
    return s;
}

dn_status evo_log_replay(evo_log *log, const char *path, const char *text, size_t size)
{
    const char *p = text, *end = text + size;
    for (int line = 1; p < end; ++line) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        int torn = !nl;
        if (nl && !blank(p, (size_t)(nl - p))) {
            dn_status s = replay_line(log, p, (size_t)(nl - p), nl + 1 == end, &torn);
            if (s != DN_OK) return evo_fail(s, "%s:%d: %s", path, line, evo_last_error());
        }
        if (torn) {
            dn_warn("%s:%d: ignoring a torn last line (the search was stopped while writing it); "
                    "it is cut away on the next write", path, line);
            log->torn = 1;
            return DN_OK;
        }
        p = nl + 1;
        log->good_end = (long)(p - text);
    }
    return DN_OK;
}

void evo_log_free(evo_log *log)
{
    if (!log) return;
    evo_state_free(&log->state);
    free(log->key.data);
    memset(log, 0, sizeof *log);
    log->baseline = -1;
}
