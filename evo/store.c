/*
 * store.c — the run folder: one search = one folder holding everything
 * needed to resume, audit and export it.
 *
 *   DIR/options.cfg            the search options ("[evolve]" + key=value lines)
 *   DIR/seed.cfg               copy of the seed cfg
 *   DIR/events.jsonl           append-only, one JSON line per evaluation
 *   DIR/individuals/<id>.cfg   annotated cfg of every individual (failed ones too)
 *   DIR/weights/<id>.weights   trained weights of the living population, plus
 *                              the best ever and the baseline (see below)
 *   DIR/orphans/               files recovery could not explain, moved aside
 *
 * Durability: every file is written to a temporary file, fsync'd and renamed
 * (then the folder is fsync'd); an event is one write() of one line followed
 * by fsync. Per evaluation the order is: the individual's cfg and weights,
 * then its event line, then the deletion of the killed individuals' weights.
 * A kill -9 at any moment therefore loses at most the evaluation in flight.
 *
 * One writer: a new search or a resume takes an exclusive flock on the folder
 * itself before it reads anything, and holds it until evo_store_close (the
 * kernel drops it when the process dies). A second writer is refused before
 * it changes anything; two creations of one folder cannot both win. Readers
 * (status, export, report: evo_store_open_read) take no lock and check
 * nothing; they skip a torn last line.
 *
 * Opening for writing replays the log and checks it against the folder: a log
 * with no evaluation beside individuals (deleted, emptied) is refused; the
 * data options (data, seed, holdout, max_train; recorded with evaluation 1)
 * must not have changed; a living individual whose cfg or weights file is
 * missing or has the wrong size is lost: dead in the state handed to the
 * search, recorded in the "lost" field of the next event. Recovery runs on
 * the first write: a torn last line is cut, temporary files and the weights
 * of the log's dead (but the best ever's and the baseline's) are deleted, and
 * files of individuals no event records, and lost individuals' weights, are
 * moved to DIR/orphans/ — nothing the log does not explain is deleted. A
 * corrupt line before the last is an error naming the file and line.
 *
 * The store keeps a mirror of the replayed state so that every appended event
 * is checked exactly as a later replay would check it: the log never holds a
 * line that would make the folder impossible to resume.
 */
#include "evo.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* The options that define a search's training and validation images: the
 * holdout is carved out of the first max_train images of the data's train
 * split, shuffled with the seed. They cannot change once an evaluation has
 * been recorded (every recorded accuracy was measured on that holdout). */
typedef struct {
    char *data;
    uint64_t seed;
    int holdout, max_train;
} data_key;

struct evo_store {
    char *dir;
    pthread_mutex_t mu;      /* the store may be shared by worker threads */
    evo_state log;           /* the state as events.jsonl says it          */
    /* The baseline: the first initial individual that trained. Its weights are
     * kept for good, even after it dies, so that every later individual can be
     * compared with the unmutated seed architecture trained the same way. */
    int baseline;
    long good_end;           /* bytes of events.jsonl up to its last whole line */
    int torn;                /* a torn last line to cut on the first write      */
    int fd;                  /* events.jsonl, appending; -1: not yet            */
    int lock_fd;             /* the folder itself, flock'd; -1: a reader        */
    data_key key;            /* from options.cfg                                */
    data_key logged;         /* as the first event recorded it (has_logged)     */
    int has_logged;
    /* Living in the log, but their files are missing or damaged: dead from
     * now on, recorded as "lost" in the next event. */
    int *lost, nlost;
};

/* ------------------------------------------------------------ errors and files */


/* A darknet.h failure, with context, into both messages. */
static dn_status dn_failed(dn_status s, const char *context)
{
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", dn_last_error());
    if (context) return evo_fail(s, "%s: %s", context, msg);
    return evo_fail(s, "%s", msg);
}

static dn_status io_fail(const char *path, const char *what)
{
    return evo_fail(DN_ERR_IO, "%s: %s: %s", path, what, strerror(errno));
}

/* malloc'd printf; NULL when out of memory. */
static char *fmt_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_path(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* The framework's reader: regular files only (a FIFO or a device is refused
 * without blocking), at most DN_READ_FILE_MAX bytes. */
dn_status evo_read_file(const char *path, char **data, size_t *size)
{
    *data = NULL;
    return dn_read_file(path, data, size);
}

static int write_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size) {
        ssize_t w = write(fd, p, size);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        p += w;
        size -= (size_t)w;
    }
    return 1;
}

/* fsync the folder holding path, so that a rename or creation in it is durable. */
static void sync_parent(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { fsync(fd); close(fd); }
    free(copy);
}

dn_status evo_write_file_atomic(const char *path, const void *data, size_t size)
{
    static unsigned counter;   /* temp names unique across threads */
    unsigned k = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    char *tmp = fmt_path("%s.tmp.%ld.%u", path, (long)getpid(), k);
    if (!tmp) return evo_fail(DN_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) { dn_status s = io_fail(path, "cannot write"); free(tmp); return s; }
    int ok = write_all(fd, data, size) && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        dn_status s = io_fail(path, "write failed");
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    sync_parent(path);
    return DN_OK;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* mkdir -p; an existing directory is fine. */
static dn_status make_dirs(const char *path)
{
    char *p = strdup(path);
    if (!p) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status st = DN_OK;
    for (char *s = p + 1; st == DN_OK; ++s) {
        if (*s && *s != '/') continue;
        char c = *s;
        *s = 0;
        struct stat sb;
        if (mkdir(p, 0755) != 0 && !(errno == EEXIST && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))) {
            if (errno == EEXIST) errno = ENOTDIR;
            st = evo_fail(DN_ERR_IO, "%s: cannot create the folder %s: %s", path, p, strerror(errno));
        }
        *s = c;
        if (!c) break;
    }
    free(p);
    return st;
}

dn_status evo_make_dirs(const char *path) { return make_dirs(path); }

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

int evo_state_best_ever(const evo_state *s)
{
    int b = -1;
    for (int i = 0; s && i < s->n; ++i)
        if (s->ind[i].outcome == EVO_OK && (b < 0 || s->ind[i].accuracy > s->ind[b].accuracy)) b = i;
    return b;
}

static dn_status state_copy(const evo_state *src, evo_state *dst)
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

/* ------------------------------------------------------------ options.cfg */

typedef enum { OPT_STR, OPT_INT, OPT_DBL, OPT_U64 } opt_type;
typedef struct { const char *key; opt_type type; size_t offset; } opt_field;

static const opt_field opt_fields[] = {
    {"data", OPT_STR, offsetof(evo_options, data_path)},
    {"seed_cfg", OPT_STR, offsetof(evo_options, seed_cfg_path)},
    {"algo", OPT_STR, offsetof(evo_options, algo)},
    {"population", OPT_INT, offsetof(evo_options, population)},
    {"evals", OPT_INT, offsetof(evo_options, evals)},
    {"hours", OPT_DBL, offsetof(evo_options, hours)},
    {"steps", OPT_INT, offsetof(evo_options, steps)},
    {"batch", OPT_INT, offsetof(evo_options, batch)},
    {"holdout", OPT_INT, offsetof(evo_options, holdout)},
    {"inherit", OPT_INT, offsetof(evo_options, inherit)},
    {"sample", OPT_INT, offsetof(evo_options, sample)},
    {"blocks", OPT_INT, offsetof(evo_options, blocks)},
    {"ops", OPT_STR, offsetof(evo_options, ops)},
    {"workers", OPT_INT, offsetof(evo_options, workers)},
    {"seed", OPT_U64, offsetof(evo_options, seed)},
    {"max_layers", OPT_INT, offsetof(evo_options, limits.max_layers)},
    {"max_params", OPT_DBL, offsetof(evo_options, limits.max_params)},
    {"max_flops", OPT_DBL, offsetof(evo_options, limits.max_flops)},
    {"max_memory", OPT_DBL, offsetof(evo_options, limits.max_memory)},
    {"max_train", OPT_INT, offsetof(evo_options, max_train)},
    {"threads", OPT_INT, offsetof(evo_options, threads)},
    {"gpus", OPT_STR, offsetof(evo_options, gpus)},
};
#define NOPT_FIELDS ((int)(sizeof opt_fields / sizeof opt_fields[0]))

/* One field as "key=value\n" appended to b (len n, capacity cap). */
static dn_status format_option(const evo_options *o, const opt_field *f, char **b, size_t *n)
{
    const char *at = (const char *)o + f->offset;
    char *line = NULL;
    int len = -1;
    switch (f->type) {
    case OPT_STR: {
        const char *v = *(char *const *)at;
        if (v && strpbrk(v, "\r\n"))
            return evo_fail(DN_ERR_ARG, "option %s='%s' must not hold a line break", f->key, v);
        len = asprintf(&line, "%s=%s\n", f->key, v ? v : "");
        break;
    }
    case OPT_INT: len = asprintf(&line, "%s=%d\n", f->key, *(const int *)at); break;
    case OPT_DBL: len = asprintf(&line, "%s=%.17g\n", f->key, *(const double *)at); break;
    case OPT_U64: len = asprintf(&line, "%s=%" PRIu64 "\n", f->key, *(const uint64_t *)at); break;
    }
    char *nb = len < 0 ? NULL : realloc(*b, *n + (size_t)len + 1);
    if (!nb) { free(line); return evo_fail(DN_ERR_NOMEM, "out of memory writing options"); }
    memcpy(nb + *n, line, (size_t)len + 1);
    *b = nb;
    *n += (size_t)len;
    free(line);
    return DN_OK;
}

static dn_status options_text(const evo_options *o, char **out, size_t *n)
{
    static const char head[] = "# darknet evolve: the options of this search, read back by -resume\n[evolve]\n";
    char *b = strdup(head);
    if (!b) return evo_fail(DN_ERR_NOMEM, "out of memory writing options");
    *n = sizeof head - 1;
    for (int i = 0; i < NOPT_FIELDS; ++i) {
        dn_status st = format_option(o, &opt_fields[i], &b, n);
        if (st != DN_OK) { free(b); return st; }
    }
    *out = b;
    return DN_OK;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') ++s;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
    return s;
}

static const opt_field *find_field(const char *key)
{
    for (int i = 0; i < NOPT_FIELDS; ++i)
        if (strcmp(opt_fields[i].key, key) == 0) return &opt_fields[i];
    return NULL;
}

static dn_status set_option(evo_options *o, const opt_field *f, const char *v, const char *path, int line)
{
    char *at = (char *)o + f->offset, *end = NULL;
    errno = 0;
    if (f->type == OPT_STR) {
        char *copy = strdup(v);
        if (!copy) return evo_fail(DN_ERR_NOMEM, "out of memory");
        free(*(char **)at);
        *(char **)at = copy;
        return DN_OK;
    }
    if (f->type == OPT_INT) {
        long x = strtol(v, &end, 10);
        if (*v && !*end && !errno && x >= -2147483647L - 1 && x <= 2147483647L) { *(int *)at = (int)x; return DN_OK; }
    } else if (f->type == OPT_DBL) {
        double x = strtod(v, &end);
        if (*v && !*end && !errno) { *(double *)at = x; return DN_OK; }
    } else {
        unsigned long long x = strtoull(v, &end, 10);
        if (*v && *v != '-' && !*end && !errno) { *(uint64_t *)at = (uint64_t)x; return DN_OK; }
    }
    return evo_fail(DN_ERR_PARSE, "%s:%d: %s=%s is not %s", path, line, f->key, v,
                         f->type == OPT_DBL ? "a number" : "an integer");
}

/* Run folders written before -gpus took a list hold gpu=1+device (0: CPU). */
static dn_status legacy_gpu(evo_options *o, const char *v, const char *path, int line)
{
    char *end = NULL;
    long g = strtol(v, &end, 10);
    if (!*v || *end || g < 0 || g > 1024) return evo_fail(DN_ERR_PARSE, "%s:%d: gpu=%s is not a device", path, line, v);
    if (g == 0) return DN_OK;
    free(o->gpus);
    if (asprintf(&o->gpus, "%ld", g - 1) < 0) { o->gpus = NULL; return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    return DN_OK;
}

/* One line of options.cfg (already trimmed, not blank, not a comment). */
static dn_status option_line(evo_options *o, char *s, const char *path, int line, int *header, unsigned *seen)
{
    if (!*header) {
        if (strcmp(s, "[evolve]") != 0)
            return evo_fail(DN_ERR_PARSE, "%s:%d: expected the section [evolve], found '%s'", path, line, s);
        *header = 1;
        return DN_OK;
    }
    char *eq = strchr(s, '=');
    if (!eq) return evo_fail(DN_ERR_PARSE, "%s:%d: '%s' is not key=value", path, line, s);
    *eq = 0;
    char *key = trim(s), *value = trim(eq + 1);
    if (strcmp(key, "gpu") == 0) return legacy_gpu(o, value, path, line);
    const opt_field *f = find_field(key);
    if (!f) return evo_fail(DN_ERR_PARSE, "%s:%d: unknown option '%s'", path, line, key);
    unsigned bit = 1u << (f - opt_fields);
    if (*seen & bit) return evo_fail(DN_ERR_PARSE, "%s:%d: option '%s' is given twice", path, line, key);
    *seen |= bit;
    return set_option(o, f, value, path, line);
}

static dn_status parse_options(char *text, const char *path, evo_options *o)
{
    int header = 0, line = 0;
    unsigned seen = 0;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        ++line;
        char *s = trim(p);
        if (*s && *s != '#' && *s != ';') TRY(option_line(o, s, path, line, &header, &seen));
        p = nl ? nl + 1 : p + strlen(p);
    }
    if (!header) return evo_fail(DN_ERR_PARSE, "%s: no [evolve] section", path);
    for (int i = 0; i < 2; ++i)   /* data and seed_cfg */
        if (!(seen & (1u << i)))
            return evo_fail(DN_ERR_PARSE, "%s: the option '%s' is missing", path, opt_fields[i].key);
    return DN_OK;
}

static dn_status read_options(const char *dir, evo_options *o)
{
    char *path = fmt_path("%s/options.cfg", dir), *text = NULL;
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status st = DN_OK;
    if (!file_exists(path))
        st = evo_fail(DN_ERR_IO, "%s: missing: %s is not a run folder of darknet evolve (no options.cfg)", path, dir);
    if (st == DN_OK) st = evo_read_file(path, &text, NULL);
    if (st == DN_OK) st = parse_options(text, path, o);
    if (st == DN_OK) {
        free(o->out_dir);
        o->out_dir = strdup(dir);
        if (!o->out_dir) st = evo_fail(DN_ERR_NOMEM, "out of memory");
    }
    free(text);
    free(path);
    return st;
}

/* ------------------------------------------------------------ events: check and apply */

typedef struct {
    int eval, id, parent;
    evo_mutation mutation;
    evo_outcome outcome;
    float accuracy;
    int steps;
    double seconds;
    size_t params;
    double flops;
    const int *killed; int nkilled;
    const int *lost; int nlost;     /* living individuals whose files were found damaged */
    const data_key *key;            /* written with evaluation 1 only */
    uint64_t rng;
    double elapsed;
    int worker;
    double worker_busy;
} event;

/* Every rule a replay enforces; nothing is changed. */
static dn_status check_event(const evo_state *s, const event *e)
{
    if (e->eval != s->evals + 1)
        return evo_fail(DN_ERR_DATA, "evaluation %d follows evaluation %d (expected %d)", e->eval, s->evals,
                             s->evals + 1);
    if (e->id < 0) return evo_fail(DN_ERR_DATA, "id %d is negative", e->id);
    if (evo_state_find((evo_state *)s, e->id))
        return evo_fail(DN_ERR_DATA, "id %d is already used by an earlier evaluation", e->id);
    if (e->parent < -1 || (e->parent >= 0 && !evo_state_find((evo_state *)s, e->parent)))
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
static dn_status reserve_one(evo_state *s)
{
    if (s->n < s->cap) return DN_OK;
    int cap = s->cap ? 2 * s->cap : 64;
    evo_individual *ni = realloc(s->ind, (size_t)cap * sizeof *ni);
    if (!ni) return evo_fail(DN_ERR_NOMEM, "out of memory for %d individuals", cap);
    s->ind = ni;
    s->cap = cap;
    return DN_OK;
}

/* Apply a checked event: the child joins (alive when it trained), the killed
 * die, the counters move. Fails only for memory, before changing anything
 * (never after reserve_one). */
static dn_status apply_event(evo_state *s, const event *e, int *baseline)
{
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
    ind.elapsed = e->elapsed;
    TRY(reserve_one(s));
    s->ind[s->n++] = ind;
    for (int k = 0; k < e->nkilled + e->nlost; ++k) {
        evo_individual *v = evo_state_find(s, k < e->nkilled ? e->killed[k] : e->lost[k - e->nkilled]);
        if (v && v->alive) { v->alive = 0; v->died_at = e->eval; }
    }
    s->evals = e->eval;
    if (s->next_id <= e->id) s->next_id = e->id + 1;
    s->rng = e->rng;
    s->elapsed = e->elapsed;
    if (*baseline < 0 && e->parent < 0 && e->outcome == EVO_OK) *baseline = e->id;
    return DN_OK;
}

/* ------------------------------------------------------------ events: JSON */

static void iso_time(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(buf, n, "unknown");
}

static dn_status event_line(const event *e, const evo_result *r, char **line, size_t *len)
{
    char rng[24], when[32];
    snprintf(rng, sizeof rng, "%016" PRIx64, e->rng);
    iso_time(when, sizeof when);
    evo_json_writer w;
    evo_json_begin(&w);
    evo_json_int(&w, "eval", e->eval);
    evo_json_int(&w, "id", e->id);
    evo_json_int(&w, "parent", e->parent);
    evo_json_str(&w, "mutation", e->mutation == EVO_MUT_NONE ? "none" : evo_mutation_name(e->mutation));
    evo_json_str(&w, "outcome", e->outcome == EVO_OK ? "ok" : "failed");
    if (e->outcome != EVO_OK) evo_json_str(&w, "reason", r ? r->reason : "");
    evo_json_num(&w, "accuracy", e->accuracy);
    evo_json_num(&w, "loss", r ? r->loss : 0);
    evo_json_int(&w, "steps", e->steps);
    evo_json_u64(&w, "seen", r ? r->seen : 0);
    evo_json_u64(&w, "params", e->params);
    evo_json_num(&w, "flops", e->flops);
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
    TRY(need(o, key, EVO_JSON_NUMBER, &f));
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
    TRY(need(o, "mutation", EVO_JSON_STRING, &f));
    if (strcmp(f->str, "none") == 0) { *m = EVO_MUT_NONE; return DN_OK; }
    if (evo_mutation_from_name(f->str, m) != DN_OK)
        return evo_fail(DN_ERR_DATA, "unknown mutation \"%s\"", f->str);
    return DN_OK;
}

static dn_status decode_outcome_rng(const evo_json_object *o, event *e)
{
    const evo_json_field *f;
    TRY(need(o, "outcome", EVO_JSON_STRING, &f));
    if (strcmp(f->str, "ok") == 0) e->outcome = EVO_OK;
    else if (strcmp(f->str, "failed") == 0) e->outcome = EVO_FAILED;
    else return evo_fail(DN_ERR_DATA, "outcome \"%s\" is neither \"ok\" nor \"failed\"", f->str);
    TRY(need(o, "rng", EVO_JSON_STRING, &f));
    const char *h = f->str + (strncmp(f->str, "0x", 2) == 0 ? 2 : 0);
    char *end;
    errno = 0;
    e->rng = strtoull(h, &end, 16);
    if (!*h || *end || errno || strlen(h) > 16 || *h == '-' || *h == '+')
        return evo_fail(DN_ERR_DATA, "rng \"%s\" is not a 64-bit hex number", f->str);
    return DN_OK;
}

static dn_status decode_event(const evo_json_object *o, event *e)
{
    memset(e, 0, sizeof *e);
    const evo_json_field *f;
    TRY(need_int(o, "eval", &e->eval));
    TRY(need_int(o, "id", &e->id));
    TRY(need_int(o, "parent", &e->parent));
    TRY(decode_mutation(o, &e->mutation));
    TRY(decode_outcome_rng(o, e));
    TRY(need(o, "accuracy", EVO_JSON_NUMBER, &f));
    e->accuracy = (float)f->num;
    TRY(need(o, "killed", EVO_JSON_INTS, &f));
    e->killed = f->ints;
    e->nkilled = f->nints;
    if ((f = evo_json_get(o, "lost"))) {
        if (f->type != EVO_JSON_INTS) return evo_fail(DN_ERR_DATA, "field \"lost\" is not an array");
        e->lost = f->ints;
        e->nlost = f->nints;
    }
    TRY(need(o, "elapsed", EVO_JSON_NUMBER, &f));
    e->elapsed = f->num;
    e->steps = (int)opt_num(o, "steps", 0);
    e->params = (size_t)opt_num(o, "params", 0);
    e->flops = opt_num(o, "flops", 0);
    e->seconds = opt_num(o, "train_seconds", 0) + opt_num(o, "eval_seconds", 0) + opt_num(o, "build_seconds", 0);
    return DN_OK;
}

/* The data key of evaluation 1 (absent in logs written before it was recorded). */
static dn_status decode_key(const evo_json_object *o, evo_store *st)
{
    const evo_json_field *data = evo_json_get(o, "data"), *seed = evo_json_get(o, "seed");
    if (!data) return DN_OK;
    data_key k = {0};
    char *end = NULL;
    if (data->type != EVO_JSON_STRING || !seed || seed->type != EVO_JSON_STRING)
        return evo_fail(DN_ERR_DATA, "fields \"data\" and \"seed\" must be strings");
    errno = 0;
    k.seed = strtoull(seed->str, &end, 10);
    if (!*seed->str || *end || errno || *seed->str == '-')
        return evo_fail(DN_ERR_DATA, "seed \"%s\" is not a 64-bit number", seed->str);
    TRY(need_int(o, "holdout", &k.holdout));
    TRY(need_int(o, "max_train", &k.max_train));
    if (!(k.data = strdup(data->str))) return evo_fail(DN_ERR_NOMEM, "out of memory");
    free(st->logged.data);
    st->logged = k;
    st->has_logged = 1;
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
static dn_status replay_line(evo_store *st, const char *p, size_t len, int last, int *torn)
{
    evo_json_object o;
    if (evo_json_parse(p, len, &o) != DN_OK) {
        if (last) { *torn = 1; return DN_OK; }
        return DN_ERR_PARSE;
    }
    event e;
    dn_status s = decode_event(&o, &e);
    if (s == DN_OK) s = check_event(&st->log, &e);
    if (s == DN_OK && e.eval == 1) s = decode_key(&o, st);
    if (s == DN_OK) s = apply_event(&st->log, &e, &st->baseline);
    evo_json_object_free(&o);
    return s;
}

static dn_status replay(evo_store *st, const char *path, const char *text, size_t size)
{
    const char *p = text, *end = text + size;
    for (int line = 1; p < end; ++line) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        int torn = !nl;
        if (nl && !blank(p, (size_t)(nl - p))) {
            dn_status s = replay_line(st, p, (size_t)(nl - p), nl + 1 == end, &torn);
            if (s != DN_OK) return evo_fail(s, "%s:%d: %s", path, line, evo_last_error());
        }
        if (torn) {
            dn_warn("%s:%d: ignoring a torn last line (the search was stopped while writing it); "
                    "it is cut away on the next write", path, line);
            st->torn = 1;
            return DN_OK;
        }
        p = nl + 1;
        st->good_end = (long)(p - text);
    }
    return DN_OK;
}

static dn_status read_events(evo_store *st)
{
    char *path = fmt_path("%s/events.jsonl", st->dir), *text = NULL;
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    size_t size = 0;
    dn_status s = DN_OK;
    if (file_exists(path)) s = evo_read_file(path, &text, &size);
    if (s == DN_OK && text) s = replay(st, path, text, size);
    free(text);
    free(path);
    return s;
}

/* ------------------------------------------------------------ checking files */

/* Bytes a .weights file for this cfg must have, given its first 12 bytes. */
static dn_status expected_weights_size(const char *cfg_text, const char *cfg_path, const unsigned char *hdr,
                                       size_t *bytes)
{
    dn_parse_options po = {.batch = 1, .quiet = 1, .shapes_only = 1};
    dn_network *net = NULL;
    if (dn_network_parse_string(cfg_text, cfg_path, &po, &net) != DN_OK) return dn_failed(DN_ERR_PARSE, NULL);
    size_t floats = 0;
    for (int i = 0; i < net->n; ++i) {
        if (net->layers[i].dontsave) continue;
        dn_param p[DN_MAX_PARAMS];
        int np = dn_layer_params(&net->layers[i], p);
        for (int k = 0; k < np; ++k) floats += p[k].n;
    }
    dn_network_free(net);
    int32_t major, minor;
    memcpy(&major, hdr, 4);
    memcpy(&minor, hdr + 4, 4);
    size_t header = (major >= 0 && minor >= 0 && major < 1000 && minor < 1000 && major * 10 + minor >= 2) ? 20 : 16;
    *bytes = header + floats * sizeof(float);
    return DN_OK;
}

/* The weights file at wpath fits the cfg text (DN_ERR_WEIGHTS when it does
 * not: truncated or foreign; DN_ERR_IO when it cannot be opened). */
static dn_status check_weights_file(const char *cfg_text, const char *cfg_path, const char *wpath, int id)
{
    int fd = open(wpath, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return evo_fail(DN_ERR_IO, "%s: the weights of individual %d cannot be read: %s", wpath, id,
                                strerror(errno));
    unsigned char hdr[12];
    struct stat sb;
    int ok = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && read(fd, hdr, sizeof hdr) == (ssize_t)sizeof hdr;
    close(fd);
    if (!ok) return evo_fail(DN_ERR_WEIGHTS, "%s: corrupt: too short for a .weights header (individual %d)", wpath, id);
    size_t want = 0;
    if (expected_weights_size(cfg_text, cfg_path, hdr, &want) != DN_OK)
        return evo_fail(DN_ERR_WEIGHTS, "%s (the cfg of individual %d)", evo_last_error(), id);
    if ((size_t)sb.st_size != want)
        return evo_fail(DN_ERR_WEIGHTS, "%s: corrupt: %lld bytes, but the cfg of individual %d needs %zu", wpath,
                        (long long)sb.st_size, id, want);
    return DN_OK;
}

/* Individual id's cfg is readable and its weights fit it. *damaged is set
 * when a file is missing or does not fit (the individual cannot go on); other
 * failures (permissions, I/O errors, memory) leave it 0. */
static dn_status check_files(const evo_store *st, int id, int *damaged)
{
    *damaged = 0;
    char *cpath = fmt_path("%s/individuals/%d.cfg", st->dir, id);
    char *wpath = fmt_path("%s/weights/%d.weights", st->dir, id);
    char *cfg = NULL;
    dn_status s = cpath && wpath ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
    const char *missing = NULL;
    if (s == DN_OK) missing = !file_exists(cpath) ? cpath : !file_exists(wpath) ? wpath : NULL;
    if (missing) {
        *damaged = 1;
        s = evo_fail(DN_ERR_IO, "%s: missing (individual %d)", missing, id);
    }
    if (s == DN_OK) s = evo_read_file(cpath, &cfg, NULL);
    if (s == DN_OK) {
        s = check_weights_file(cfg, cpath, wpath, id);
        *damaged = s == DN_ERR_WEIGHTS;
    }
    free(cfg);
    free(cpath);
    free(wpath);
    return s;
}

dn_status evo_store_check_individual(const evo_store *st, int id)
{
    if (!st || id < 0) return evo_fail(DN_ERR_ARG, "evo_store_check_individual: bad arguments (id %d)", id);
    int damaged;
    return check_files(st, id, &damaged);
}

/* Living individuals with a missing or damaged file become lost: dead in the
 * state handed to the search, recorded with the next event. */
static dn_status find_lost(evo_store *st)
{
    for (int i = 0; i < st->log.n; ++i) {
        const evo_individual *v = &st->log.ind[i];
        int damaged;
        if (!v->alive || check_files(st, v->id, &damaged) == DN_OK) continue;
        if (!damaged) return evo_fail(DN_ERR_IO, "%s (individual %d is alive)", evo_last_error(), v->id);
        dn_warn("%s: individual %d (alive, validation %.2f%%) counts as dead from now on; its weights are kept in "
                "%s/orphans/weights", evo_last_error(), v->id, 100.0 * v->accuracy, st->dir);
        int *nl = realloc(st->lost, (size_t)(st->nlost + 1) * sizeof *nl);
        if (!nl) return evo_fail(DN_ERR_NOMEM, "out of memory");
        st->lost = nl;
        st->lost[st->nlost++] = v->id;
    }
    return DN_OK;
}

/* ------------------------------------------------------------ the lock */

/* One writer per folder: an exclusive flock on the folder itself, taken
 * before anything is read and held until the store is closed. Nothing is
 * created for it, so nothing can be left behind or deleted by mistake. */
static dn_status lock_folder(evo_store *st)
{
    int fd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return io_fail(st->dir, "cannot open the run folder");
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        dn_status s = errno == EWOULDBLOCK
            ? evo_fail(DN_ERR_IO, "%s: in use: another darknet evolve is writing this run folder (a search or a "
                       "resume); nothing was changed. Wait for it to end (status, export and report may read the "
                       "folder meanwhile)", st->dir)
            : io_fail(st->dir, "cannot lock the run folder");
        close(fd);
        return s;
    }
    st->lock_fd = fd;
    return DN_OK;
}

/* ------------------------------------------------------------ recovery on the first write */

/* "<id><suffix>" exactly -> id; else -1. */
static int id_of(const char *name, const char *suffix)
{
    char *end;
    if (name[0] < '0' || name[0] > '9') return -1;
    long v = strtol(name, &end, 10);
    if (strcmp(end, suffix) != 0 || v > 2147483647L) return -1;
    return (int)v;
}

/* A temporary file of evo_write_file_atomic: NAME.tmp.PID.COUNTER */
static int temp_name(const char *name)
{
    const char *t = strstr(name, ".tmp.");
    if (!t || t == name) return 0;
    int dots = 0;
    for (const char *p = t + 5; *p; ++p) {
        if (*p == '.') { if (++dots > 1 || p[-1] == '.' || !p[1]) return 0; }
        else if (*p < '0' || *p > '9') return 0;
    }
    return dots == 1;
}

/* Count the files "<id><suffix>" in DIR/sub. */
static int count_ids(const char *dir, const char *sub, const char *suffix)
{
    char *path = fmt_path("%s/%s", dir, sub);
    DIR *d = path ? opendir(path) : NULL;
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += id_of(e->d_name, suffix) >= 0;
    if (d) closedir(d);
    free(path);
    return n;
}

/* DIR/sub/name -> DIR/orphans/sub/name (name.1, name.2, ... when taken). */
static dn_status move_aside(const evo_store *st, const char *sub, const char *name, const char *why)
{
    char *folder = fmt_path("%s/orphans/%s", st->dir, sub), *from = fmt_path("%s/%s/%s", st->dir, sub, name);
    char *to = NULL;
    dn_status s = folder && from ? make_dirs(folder) : evo_fail(DN_ERR_NOMEM, "out of memory");
    for (int k = 0; s == DN_OK && k < 1000 && (!to || file_exists(to)); ++k) {
        free(to);
        to = k ? fmt_path("%s/%s.%d", folder, name, k) : fmt_path("%s/%s", folder, name);
        if (!to) s = evo_fail(DN_ERR_NOMEM, "out of memory");
    }
    if (s == DN_OK && file_exists(to)) s = evo_fail(DN_ERR_IO, "%s: no free name in %s", from, folder);
    if (s == DN_OK && rename(from, to) != 0) s = io_fail(from, "cannot move it aside");
    if (s == DN_OK) {
        sync_parent(to);
        sync_parent(from);
        dn_warn("%s: %s: moved to %s", from, why, to);
    }
    free(folder);
    free(from);
    free(to);
    return s;
}

/* Weights the search keeps after a death: the baseline's and the best ever's. */
static int kept_when_dead(const evo_store *st, int id)
{
    int b = evo_state_best_ever(&st->log);
    return id == st->baseline || (b >= 0 && st->log.ind[b].id == id);
}

/* What recovery does with DIR/sub/name: temporary files of interrupted writes
 * go, the weights of the dead go (those the search keeps stay), files of
 * individuals without an event are moved aside, anything else stays. */
static dn_status tidy(const evo_store *st, const char *sub, const char *name)
{
    char *path = sub ? fmt_path("%s/%s/%s", st->dir, sub, name) : fmt_path("%s/%s", st->dir, name);
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    int weights = sub && !strcmp(sub, "weights");
    int id = sub ? id_of(name, weights ? ".weights" : ".cfg") : -1;
    const evo_individual *v = id >= 0 ? evo_state_find((evo_state *)&st->log, id) : NULL;
    dn_status s = DN_OK;
    if (temp_name(name) || (v && weights && !v->alive && !kept_when_dead(st, id))) {
        if (unlink(path) != 0 && errno != ENOENT) s = io_fail(path, "cannot delete");
    } else if (id >= 0 && !v) {
        s = move_aside(st, sub, name, "no event records this individual (the search stopped before recording it)");
    }
    free(path);
    return s;
}

static dn_status tidy_folder(const evo_store *st, const char *sub)
{
    char *path = sub ? fmt_path("%s/%s", st->dir, sub) : strdup(st->dir);
    DIR *d = path ? opendir(path) : NULL;
    dn_status s = path ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
    for (struct dirent *e; s == DN_OK && d && (e = readdir(d));)
        if (e->d_name[0] != '.') s = tidy(st, sub, e->d_name);
    if (d) closedir(d);
    free(path);
    return s;
}

/* The files of lost individuals' weights go aside (their cfgs stay: every
 * individual keeps its cfg). */
static dn_status set_lost_aside(const evo_store *st)
{
    for (int k = 0; k < st->nlost; ++k) {
        char name[32], *path = fmt_path("%s/weights/%d.weights", st->dir, st->lost[k]);
        snprintf(name, sizeof name, "%d.weights", st->lost[k]);
        dn_status s = path && file_exists(path) ? move_aside(st, "weights", name, "damaged weights of a lost individual")
                                                : DN_OK;
        free(path);
        TRY(s);
    }
    return DN_OK;
}

/* First write through the store (the lock is held since opening): cut a torn
 * line, open the log for appending, tidy the folders. */
static dn_status prepare_write(evo_store *st)
{
    if (st->fd >= 0) return DN_OK;
    if (st->lock_fd < 0) return evo_fail(DN_ERR_ARG, "%s: opened for reading only", st->dir);
    char *path = fmt_path("%s/events.jsonl", st->dir);
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    dn_status s = fd < 0 ? io_fail(path, "cannot open for writing") : DN_OK;
    if (s == DN_OK && st->torn && (ftruncate(fd, st->good_end) != 0 || fsync(fd) != 0))
        s = io_fail(path, "cannot cut the torn last line");
    free(path);
    if (s != DN_OK) { if (fd >= 0) close(fd); return s; }
    st->torn = 0;
    st->fd = fd;
    TRY(set_lost_aside(st));
    TRY(tidy_folder(st, NULL));
    TRY(tidy_folder(st, "individuals"));
    return tidy_folder(st, "weights");
}

/* ------------------------------------------------------------ create, open, close */

static dn_status store_new(const char *dir, evo_store **out)
{
    evo_store *st = calloc(1, sizeof *st);
    if (!st || !(st->dir = strdup(dir))) {
        free(st);
        return evo_fail(DN_ERR_NOMEM, "out of memory");
    }
    size_t n = strlen(st->dir);
    while (n > 1 && st->dir[n - 1] == '/') st->dir[--n] = 0;
    pthread_mutex_init(&st->mu, NULL);
    st->baseline = -1;
    st->fd = -1;
    st->lock_fd = -1;
    *out = st;
    return DN_OK;
}

void evo_store_close(evo_store *st)
{
    if (!st) return;
    if (st->fd >= 0) close(st->fd);
    if (st->lock_fd >= 0) close(st->lock_fd);   /* releases the lock */
    evo_state_free(&st->log);
    pthread_mutex_destroy(&st->mu);
    free(st->key.data);
    free(st->logged.data);
    free(st->lost);
    free(st->dir);
    free(st);
}

const char *evo_store_dir(const evo_store *st) { return st ? st->dir : NULL; }

static dn_status set_key(evo_store *st, const evo_options *o)
{
    free(st->key.data);
    st->key = (data_key){.seed = o->seed, .holdout = o->holdout, .max_train = o->max_train};
    st->key.data = strdup(o->data_path ? o->data_path : "");
    return st->key.data ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
}

/* The data options of o against those evaluation 1 recorded: a change is
 * refused, naming the key. */
static dn_status check_key(const evo_store *st, const evo_options *o)
{
    if (!st->has_logged) return DN_OK;
    const data_key *k = &st->logged;
    char was[64], now[64];
    const char *key = NULL, *w = was, *n = now;
    if (strcmp(k->data, o->data_path ? o->data_path : "") != 0) { key = "data"; w = k->data; n = o->data_path; }
    else if (k->seed != o->seed) {
        key = "seed";
        snprintf(was, sizeof was, "%" PRIu64, k->seed);
        snprintf(now, sizeof now, "%" PRIu64, o->seed);
    } else if (k->holdout != o->holdout) {
        key = "holdout";
        snprintf(was, sizeof was, "%d", k->holdout);
        snprintf(now, sizeof now, "%d", o->holdout);
    } else if (k->max_train != o->max_train) {
        key = "max_train";
        snprintf(was, sizeof was, "%d", k->max_train);
        snprintf(now, sizeof now, "%d", o->max_train);
    }
    if (!key) return DN_OK;
    return evo_fail(DN_ERR_ARG, "%s/options.cfg: %s=%s, but this search's evaluations were made with %s=%s "
                    "(events.jsonl, evaluation 1): data, seed, holdout and max_train define the training and "
                    "validation images and cannot change during a search. Put back %s=%s, or start a new search",
                    st->dir, key, n, key, w, key, w);
}

/* DIR/name atomically from text (creating it empty when text is ""). */
static dn_status write_in(const evo_store *st, const char *name, const char *text)
{
    char *path = fmt_path("%s/%s", st->dir, name);
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status s = evo_write_file_atomic(path, text, strlen(text));
    free(path);
    return s;
}

/* DIR must not hold a search (checked under the lock). A folder whose search
 * recorded no evaluation and saved no individual (it failed before its first
 * one: a typo in the .data, an impossible -holdout) holds no work: a new start
 * replaces its options and seed. */
static dn_status check_fresh(const evo_store *st)
{
    char *opt = fmt_path("%s/options.cfg", st->dir), *ev = fmt_path("%s/events.jsonl", st->dir);
    dn_status s = opt && ev ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
    struct stat sb;
    int individuals = count_ids(st->dir, "individuals", ".cfg") + count_ids(st->dir, "weights", ".weights");
    if (s == DN_OK && stat(ev, &sb) == 0 && sb.st_size > 0)
        s = evo_fail(DN_ERR_ARG, "%s already holds a search with events (%s): resume it (darknet evolve -resume %s), "
                     "or choose another folder", st->dir, ev, st->dir);
    else if (s == DN_OK && individuals > 0)
        s = evo_fail(DN_ERR_ARG, "%s already holds individuals of a search (%s/individuals): resume it (darknet "
                     "evolve -resume %s), or choose another folder", st->dir, st->dir, st->dir);
    else if (s == DN_OK && file_exists(opt))
        dn_warn("%s: the search created here recorded no evaluation: starting it anew with these options", st->dir);
    free(opt);
    free(ev);
    return s;
}

static dn_status create_files(evo_store *st, const evo_options *o, const char *seed_cfg_text)
{
    char *opts = NULL, *sub = NULL;
    size_t n;
    TRY(check_fresh(st));
    TRY(options_text(o, &opts, &n));
    dn_status s = DN_OK;
    for (int i = 0; i < 2 && s == DN_OK; ++i) {
        sub = fmt_path("%s/%s", st->dir, i ? "weights" : "individuals");
        s = sub ? make_dirs(sub) : evo_fail(DN_ERR_NOMEM, "out of memory");
        free(sub);
    }
    if (s == DN_OK) s = write_in(st, "seed.cfg", seed_cfg_text);
    if (s == DN_OK) s = write_in(st, "events.jsonl", "");
    if (s == DN_OK) s = write_in(st, "options.cfg", opts);   /* last: it marks a complete folder */
    free(opts);
    return s;
}

dn_status evo_store_save_options(evo_store *st, const evo_options *o)
{
    if (!st || !o) return evo_fail(DN_ERR_ARG, "evo_store_save_options: bad arguments");
    if (st->lock_fd < 0) return evo_fail(DN_ERR_ARG, "%s: opened for reading only", st->dir);
    TRY(check_key(st, o));
    char *opts = NULL;
    size_t n;
    TRY(options_text(o, &opts, &n));
    dn_status s = write_in(st, "options.cfg", opts);
    free(opts);
    if (s == DN_OK) s = set_key(st, o);
    return s;
}

dn_status evo_store_create(const char *dir, const evo_options *o, const char *seed_cfg_text, evo_store **out)
{
    if (out) *out = NULL;
    if (!dir || !*dir || !o || !seed_cfg_text || !out)
        return evo_fail(DN_ERR_ARG, "evo_store_create: missing folder, options, seed cfg or output");
    evo_store *st;
    TRY(store_new(dir, &st));
    dn_status s = make_dirs(st->dir);   /* an existing folder is fine: the lock decides */
    if (s == DN_OK) s = lock_folder(st);
    if (s == DN_OK) s = create_files(st, o, seed_cfg_text);
    if (s == DN_OK) s = set_key(st, o);
    if (s == DN_OK) s = prepare_write(st);
    if (s != DN_OK) { evo_store_close(st); return s; }
    *out = st;
    return DN_OK;
}

/* A log with no evaluation beside individuals: the log was lost (deleted,
 * emptied). Resuming would start the search again over them. */
static dn_status check_log_usable(const evo_store *st)
{
    if (st->log.evals > 0) return DN_OK;
    int n = count_ids(st->dir, "individuals", ".cfg"), w = count_ids(st->dir, "weights", ".weights");
    if (n + w == 0) return DN_OK;
    char *ev = fmt_path("%s/events.jsonl", st->dir);
    dn_status s = evo_fail(DN_ERR_DATA, "%s: %s, but the folder holds %d individual cfgs and %d weights files: the "
                           "log of this search is lost and resuming would start the search over them; nothing was "
                           "changed. Restore events.jsonl (from a backup), or leave this folder as it is and start "
                           "a new search in another one (individuals/N.cfg with weights/N.weights is an ordinary "
                           "Darknet model)", ev ? ev : st->dir, ev && file_exists(ev) ? "holds no evaluation" : "missing",
                           n, w);
    free(ev);
    return s;
}

/* Options and replayed events of a run folder. A writer locks the folder
 * first and checks the log against the folder and the options. */
static dn_status load_store(const char *dir, int writer, evo_options *o, evo_state *state, evo_store **out)
{
    *out = NULL;
    memset(state, 0, sizeof *state);
    memset(o, 0, sizeof *o);
    evo_store *st;
    TRY(store_new(dir, &st));
    dn_status s = DN_OK;
    if (writer) {   /* no lock is taken on a folder that is not a run folder */
        char *opt = fmt_path("%s/options.cfg", st->dir);
        if (!opt) s = evo_fail(DN_ERR_NOMEM, "out of memory");
        else if (!file_exists(opt))
            s = evo_fail(DN_ERR_IO, "%s: missing: %s is not a run folder of darknet evolve (no options.cfg)", opt, dir);
        free(opt);
        if (s == DN_OK) s = lock_folder(st);
    }
    if (s == DN_OK) s = read_options(st->dir, o);
    if (s == DN_OK) s = read_events(st);
    if (s == DN_OK && writer) s = check_log_usable(st);
    if (s == DN_OK && writer) s = check_key(st, o);
    if (s == DN_OK && writer) s = set_key(st, o);
    if (s == DN_OK && writer) s = find_lost(st);
    if (s == DN_OK) s = state_copy(&st->log, state);
    for (int k = 0; s == DN_OK && k < st->nlost; ++k) {
        evo_individual *v = evo_state_find(state, st->lost[k]);
        v->alive = 0;
        v->died_at = state->evals + 1;   /* the evaluation whose event records it */
    }
    if (s != DN_OK) {
        evo_store_close(st);
        evo_options_free(o);
        evo_state_free(state);
        return s;
    }
    *out = st;
    return DN_OK;
}

dn_status evo_store_open(const char *dir, evo_options *o, evo_state *state, evo_store **out)
{
    if (out) *out = NULL;
    if (!dir || !*dir || !o || !state || !out)
        return evo_fail(DN_ERR_ARG, "evo_store_open: missing folder, options, state or output");
    return load_store(dir, 1, o, state, out);
}

dn_status evo_store_open_read(const char *dir, evo_options *o, evo_state *state, evo_store **out)
{
    if (out) *out = NULL;
    if (!dir || !*dir || !o || !state || !out)
        return evo_fail(DN_ERR_ARG, "evo_store_open_read: missing folder, options, state or output");
    return load_store(dir, 0, o, state, out);
}

dn_status evo_store_read(const char *dir, evo_options *o, evo_state *state)
{
    if (!dir || !*dir || !o || !state) return evo_fail(DN_ERR_ARG, "evo_store_read: missing folder, options or state");
    evo_store *st;
    TRY(load_store(dir, 0, o, state, &st));
    evo_store_close(st);
    return DN_OK;
}

/* ------------------------------------------------------------ individuals */

static dn_status save_locked(evo_store *st, int id, const char *cfg_text, const void *weights, size_t size)
{
    TRY(prepare_write(st));
    char *cpath = fmt_path("%s/individuals/%d.cfg", st->dir, id);
    char *wpath = fmt_path("%s/weights/%d.weights", st->dir, id);
    dn_status s = cpath && wpath ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
    if (s == DN_OK) s = evo_write_file_atomic(cpath, cfg_text, strlen(cfg_text));
    if (s == DN_OK && weights) s = evo_write_file_atomic(wpath, weights, size);
    free(cpath);
    free(wpath);
    return s;
}

dn_status evo_store_save_individual(evo_store *st, int id, const char *cfg_text, const void *weights, size_t size)
{
    if (!st || id < 0 || !cfg_text)
        return evo_fail(DN_ERR_ARG, "evo_store_save_individual: bad arguments (id %d)", id);
    pthread_mutex_lock(&st->mu);
    dn_status s = save_locked(st, id, cfg_text, weights, size);
    pthread_mutex_unlock(&st->mu);
    return s;
}

dn_status evo_store_load_individual(evo_store *st, int id, char **cfg_text, void **weights, size_t *size)
{
    if (cfg_text) *cfg_text = NULL;
    if (weights) *weights = NULL;
    if (!st || id < 0) return evo_fail(DN_ERR_ARG, "evo_store_load_individual: bad arguments (id %d)", id);
    char *cpath = fmt_path("%s/individuals/%d.cfg", st->dir, id);
    char *wpath = fmt_path("%s/weights/%d.weights", st->dir, id);
    dn_status s = cpath && wpath ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
    if (s == DN_OK && cfg_text) s = evo_read_file(cpath, cfg_text, NULL);
    if (s == DN_OK && weights) s = evo_read_file(wpath, (char **)weights, size);
    if (s != DN_OK && cfg_text) { free(*cfg_text); *cfg_text = NULL; }
    free(cpath);
    free(wpath);
    return s;
}

dn_status evo_store_load_seed(evo_store *st, evo_genome *seed)
{
    if (!st || !seed) return evo_fail(DN_ERR_ARG, "evo_store_load_seed: bad arguments");
    char *path = fmt_path("%s/seed.cfg", st->dir), *text = NULL;
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status s = evo_read_file(path, &text, NULL);
    if (s == DN_OK) s = evo_genome_parse(text, path, seed);
    free(text);
    free(path);
    return s;
}

dn_status evo_store_remove_weights(evo_store *st, int id)
{
    if (!st || id < 0) return evo_fail(DN_ERR_ARG, "evo_store_remove_weights: bad arguments (id %d)", id);
    pthread_mutex_lock(&st->mu);
    dn_status s = prepare_write(st);
    const evo_individual *v = evo_state_find(&st->log, id);
    if (s == DN_OK && (!v || v->alive))   /* only the log's dead lose their weights */
        s = evo_fail(DN_ERR_ARG, "%s: refusing to delete the weights of individual %d: %s", st->dir, id,
                     v ? "the log says it is alive" : "no event records it");
    if (s == DN_OK && id != st->baseline) {   /* the baseline's weights stay (see struct evo_store) */
        char *path = fmt_path("%s/weights/%d.weights", st->dir, id);
        if (!path) s = evo_fail(DN_ERR_NOMEM, "out of memory");
        else if (unlink(path) != 0 && errno != ENOENT) s = io_fail(path, "cannot delete");
        free(path);
    }
    pthread_mutex_unlock(&st->mu);
    return s;
}

/* ------------------------------------------------------------ appending events */

static void event_from(const evo_individual *c, const int *killed, int nkilled, uint64_t rng, double elapsed,
                       const evo_result *r, event *e)
{
    memset(e, 0, sizeof *e);
    e->eval = c->eval;
    e->id = c->id;
    e->parent = c->parent;
    e->mutation = c->mutation;
    e->outcome = c->outcome;
    e->accuracy = c->outcome == EVO_OK ? c->accuracy : 0;
    e->steps = c->steps;
    e->seconds = r ? r->build_seconds + r->train_seconds + r->eval_seconds : c->seconds;
    e->params = c->params;
    e->flops = c->flops;
    e->killed = killed;
    e->nkilled = killed ? nkilled : 0;
    e->rng = rng;
    e->elapsed = elapsed;
    e->worker = c->worker;
    e->worker_busy = c->worker_busy;
}

/* One write() of the whole line, then fsync; on failure the file is cut back. */
static dn_status write_line(evo_store *st, const char *line, size_t len)
{
    ssize_t w = write(st->fd, line, len);
    if (w == (ssize_t)len && fsync(st->fd) == 0) {
        st->good_end += (long)len;
        return DN_OK;
    }
    dn_status s = evo_fail(DN_ERR_IO, "%s/events.jsonl: cannot append the event: %s", st->dir,
                                w < 0 || w == (ssize_t)len ? strerror(errno) : "short write");
    if (w > 0 && ftruncate(st->fd, st->good_end) != 0) {
        /* a part of the line may remain: cut it before the next write */
        close(st->fd);
        st->fd = -1;
        st->torn = 1;
    }
    return s;
}

static dn_status append_locked(evo_store *st, const event *e, const evo_result *r)
{
    TRY(prepare_write(st));
    event with = *e;   /* the lost found on opening, the data key with evaluation 1 */
    with.lost = st->lost;
    with.nlost = st->nlost;
    with.key = e->eval == 1 ? &st->key : NULL;
    e = &with;
    dn_status s = check_event(&st->log, e);
    if (s != DN_OK)
        return evo_fail(s, "%s/events.jsonl: refusing an event that a resume could not replay: %s", st->dir,
                             evo_last_error());
    TRY(reserve_one(&st->log));   /* so that the apply below cannot fail */
    char *line;
    size_t len;
    TRY(event_line(e, r, &line, &len));
    s = write_line(st, line, len);
    free(line);
    if (s == DN_OK) s = apply_event(&st->log, e, &st->baseline);
    if (s == DN_OK) st->nlost = 0;
    if (s == DN_OK && e->key && !st->has_logged) {
        st->logged = st->key;
        st->logged.data = strdup(st->key.data);
        st->has_logged = st->logged.data != NULL;
    }
    return s;
}

dn_status evo_store_append_event(evo_store *st, const evo_individual *child, const evo_result *r,
                                 const int *killed, int nkilled, uint64_t rng_after, double elapsed)
{
    if (!st || !child || nkilled < 0 || (nkilled > 0 && !killed))
        return evo_fail(DN_ERR_ARG, "evo_store_append_event: bad arguments");
    event e;
    event_from(child, killed, nkilled, rng_after, elapsed, r, &e);
    pthread_mutex_lock(&st->mu);
    dn_status s = append_locked(st, &e, r);
    pthread_mutex_unlock(&st->mu);
    return s;
}
