/*
 * store.c — the run folder: one search = one folder holding everything
 * needed to resume, audit and export it.
 *
 *   DIR/options.cfg            the search options ("[evolve]" + key=value lines)
 *   DIR/seed.cfg               copy of the seed cfg
 *   DIR/events.jsonl           append-only, one JSON line per evaluation
 *   DIR/individuals/<id>.cfg   annotated cfg of every individual (failed ones too)
 *   DIR/weights/<id>.weights   trained weights of the living population, plus
 *                              the best ever, the baseline (see below) and,
 *                              with -objective costs, the archive (pareto.c)
 *   DIR/orphans/               files recovery could not explain, moved aside
 *
 * Durability: every file is written to a temporary file, fsync'd and renamed
 * (then the folder is fsync'd); an event is one write() of one line followed
 * by fsync. Per evaluation the order is: the individual's cfg and weights,
 * then its event line, then the deletion of the weights nothing keeps any
 * longer (the killed's, a dead best ever or archive member displaced).
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
 * of the log's dead (but those kept: the best ever's, the baseline's, the
 * archive's) are deleted, and
 * files of individuals no event records, and lost individuals' weights, are
 * moved to DIR/orphans/ — nothing the log does not explain is deleted. A
 * corrupt line before the last is an error naming the file and line.
 *
 * The store keeps a mirror of the replayed state so that every appended event
 * is checked exactly as a later replay would check it: the log never holds a
 * line that would make the folder impossible to resume.
 */
#include "evo_internal.h"
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


struct evo_store {
    char *dir;
    pthread_mutex_t mu;      /* the store may be shared by worker threads */
    evo_log log;             /* events.jsonl replayed (events.c), kept up to date */
    int fd;                  /* events.jsonl, appending; -1: not yet            */
    int lock_fd;             /* the folder itself, flock'd; -1: a reader        */
    evo_data_key key;        /* from options.cfg                                */
    int costs;               /* -objective: EVO_COST_* bits (the archive keeps weights) */
    /* Living in the log, but their files are missing or damaged: dead from
     * now on, recorded as "lost" in the next event. */
    int *lost, nlost;
};

/* ------------------------------------------------------------ errors and files */


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


/* ------------------------------------------------------------ options.cfg (format: options.c) */

/* A run folder has options.cfg (checked before anything else, the lock included). */
static dn_status check_run_folder(const char *dir)
{
    char *path = fmt_path("%s/options.cfg", dir);
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status st = evo_file_exists(path) ? DN_OK
        : evo_fail(DN_ERR_IO, "%s: missing: %s is not a run folder of darknet evolve (no options.cfg)", path, dir);
    free(path);
    return st;
}

static dn_status read_options(const char *dir, evo_options *o)
{
    char *path = fmt_path("%s/options.cfg", dir), *text = NULL;
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status st = dn_read_file(path, &text, NULL);
    if (st == DN_OK) st = evo_options_parse(text, path, o);
    if (st == DN_OK) {
        free(o->out_dir);
        o->out_dir = strdup(dir);
        if (!o->out_dir) st = evo_fail(DN_ERR_NOMEM, "out of memory");
    }
    free(text);
    free(path);
    return st;
}

/* ------------------------------------------------------------ the log (format and replay: events.c) */

static dn_status read_events(evo_store *st)
{
    char *path = fmt_path("%s/events.jsonl", st->dir), *text = NULL;
    if (!path) return evo_fail(DN_ERR_NOMEM, "out of memory");
    size_t size = 0;
    dn_status s = DN_OK;
    if (evo_file_exists(path)) s = dn_read_file(path, &text, &size);
    if (s == DN_OK && text) s = evo_log_replay(&st->log, path, text, size);
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
    if (dn_network_parse_string(cfg_text, cfg_path, &po, &net) != DN_OK) return DN_ERR_PARSE;
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
    if (s == DN_OK) missing = !evo_file_exists(cpath) ? cpath : !evo_file_exists(wpath) ? wpath : NULL;
    if (missing) {
        *damaged = 1;
        s = evo_fail(DN_ERR_IO, "%s: missing (individual %d)", missing, id);
    }
    if (s == DN_OK) s = dn_read_file(cpath, &cfg, NULL);
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
    for (int i = 0; i < st->log.state.n; ++i) {
        const evo_individual *v = &st->log.state.ind[i];
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

/* A temporary file of dn_write_file_atomic: NAME.tmp.PID.COUNTER */
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
    dn_status s = folder && from ? dn_make_dirs(folder) : evo_fail(DN_ERR_NOMEM, "out of memory");
    for (int k = 0; s == DN_OK && k < 1000 && (!to || evo_file_exists(to)); ++k) {
        free(to);
        to = k ? fmt_path("%s/%s.%d", folder, name, k) : fmt_path("%s/%s", folder, name);
        if (!to) s = evo_fail(DN_ERR_NOMEM, "out of memory");
    }
    if (s == DN_OK && evo_file_exists(to)) s = evo_fail(DN_ERR_IO, "%s: no free name in %s", from, folder);
    if (s == DN_OK) s = dn_rename_durable(from, to);
    if (s == DN_OK) dn_warn("%s: %s: moved to %s", from, why, to);
    free(folder);
    free(from);
    free(to);
    return s;
}

/* Weights the search keeps after a death: the baseline's, the best ever's
 * and, with costs (-objective), the archive's. */
static int kept_when_dead(const evo_store *st, int id)
{
    int b = evo_state_best_ever(&st->log.state);
    return id == st->log.baseline || (b >= 0 && st->log.state.ind[b].id == id) ||
           (st->costs && evo_pareto_member(&st->log.state, id));
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
    const evo_individual *v = id >= 0 ? evo_state_find((evo_state *)&st->log.state, id) : NULL;
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
        dn_status s = path && evo_file_exists(path) ? move_aside(st, "weights", name, "damaged weights of a lost individual")
                                                : DN_OK;
        free(path);
        DN_TRY(s);
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
    if (s == DN_OK && st->log.torn && (ftruncate(fd, st->log.good_end) != 0 || fsync(fd) != 0))
        s = io_fail(path, "cannot cut the torn last line");
    free(path);
    if (s != DN_OK) { if (fd >= 0) close(fd); return s; }
    st->log.torn = 0;
    st->fd = fd;
    DN_TRY(set_lost_aside(st));
    DN_TRY(tidy_folder(st, NULL));
    DN_TRY(tidy_folder(st, "individuals"));
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
    st->log.baseline = -1;
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
    evo_log_free(&st->log);
    pthread_mutex_destroy(&st->mu);
    free(st->key.data);
    free(st->lost);
    free(st->dir);
    free(st);
}

const char *evo_store_dir(const evo_store *st) { return st ? st->dir : NULL; }

static dn_status set_key(evo_store *st, const evo_options *o)
{
    free(st->key.data);
    st->key = (evo_data_key){.seed = o->seed, .holdout = o->holdout, .max_train = o->max_train};
    st->key.data = strdup(o->data_path ? o->data_path : "");
    return st->key.data ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
}

/* The data options of o against those evaluation 1 recorded: a change is
 * refused, naming the key. */
static dn_status check_key(const evo_store *st, const evo_options *o)
{
    if (!st->log.has_key) return DN_OK;
    const evo_data_key *k = &st->log.key;
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
    dn_status s = dn_write_file_atomic(path, text, strlen(text));
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
    else if (s == DN_OK && evo_file_exists(opt))
        dn_warn("%s: the search created here recorded no evaluation: starting it anew with these options", st->dir);
    free(opt);
    free(ev);
    return s;
}

static dn_status create_files(evo_store *st, const evo_options *o, const char *seed_cfg_text)
{
    char *opts = NULL, *sub = NULL;
    DN_TRY(check_fresh(st));
    DN_TRY(evo_options_text(o, &opts));
    dn_status s = DN_OK;
    for (int i = 0; i < 2 && s == DN_OK; ++i) {
        sub = fmt_path("%s/%s", st->dir, i ? "weights" : "individuals");
        s = sub ? dn_make_dirs(sub) : evo_fail(DN_ERR_NOMEM, "out of memory");
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
    DN_TRY(check_key(st, o));
    char *opts = NULL;
    DN_TRY(evo_options_text(o, &opts));
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
    DN_TRY(store_new(dir, &st));
    dn_status s = dn_make_dirs(st->dir);   /* an existing folder is fine: the lock decides */
    if (s == DN_OK) s = lock_folder(st);
    if (s == DN_OK) s = create_files(st, o, seed_cfg_text);
    if (s == DN_OK) s = set_key(st, o);
    if (s == DN_OK) s = evo_options_costs(o, &st->costs);
    st->log.state.costs = st->costs;
    if (s == DN_OK) s = prepare_write(st);
    if (s != DN_OK) { evo_store_close(st); return s; }
    *out = st;
    return DN_OK;
}

/* A log with no evaluation beside individuals: the log was lost (deleted,
 * emptied). Resuming would start the search again over them. */
static dn_status check_log_usable(const evo_store *st)
{
    if (st->log.state.evals > 0) return DN_OK;
    int n = count_ids(st->dir, "individuals", ".cfg"), w = count_ids(st->dir, "weights", ".weights");
    if (n + w == 0) return DN_OK;
    char *ev = fmt_path("%s/events.jsonl", st->dir);
    dn_status s = evo_fail(DN_ERR_DATA, "%s: %s, but the folder holds %d individual cfgs and %d weights files: the "
                           "log of this search is lost and resuming would start the search over them; nothing was "
                           "changed. Restore events.jsonl (from a backup), or leave this folder as it is and start "
                           "a new search in another one (individuals/N.cfg with weights/N.weights is an ordinary "
                           "Darknet model)", ev ? ev : st->dir, ev && evo_file_exists(ev) ? "holds no evaluation" : "missing",
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
    DN_TRY(store_new(dir, &st));
    dn_status s = check_run_folder(st->dir);   /* no lock is taken on a folder that is not a run folder */
    if (s == DN_OK && writer) s = lock_folder(st);
    if (s == DN_OK) s = read_options(st->dir, o);
    if (s == DN_OK) s = evo_options_costs(o, &st->costs);
    st->log.state.costs = st->costs;   /* the archive is kept by the replay */
    if (s == DN_OK) s = read_events(st);
    if (s == DN_OK && writer) s = check_log_usable(st);
    if (s == DN_OK && writer) s = check_key(st, o);
    if (s == DN_OK && writer) s = set_key(st, o);
    if (s == DN_OK && writer) s = find_lost(st);
    if (s == DN_OK) s = evo_state_copy(&st->log.state, state);
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
    DN_TRY(load_store(dir, 0, o, state, &st));
    evo_store_close(st);
    return DN_OK;
}

/* ------------------------------------------------------------ individuals */

static dn_status save_locked(evo_store *st, int id, const char *cfg_text, const void *weights, size_t size)
{
    DN_TRY(prepare_write(st));
    char *cpath = fmt_path("%s/individuals/%d.cfg", st->dir, id);
    char *wpath = fmt_path("%s/weights/%d.weights", st->dir, id);
    dn_status s = cpath && wpath ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
    if (s == DN_OK) s = dn_write_file_atomic(cpath, cfg_text, strlen(cfg_text));
    if (s == DN_OK && weights) s = dn_write_file_atomic(wpath, weights, size);
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
    if (s == DN_OK && cfg_text) s = dn_read_file(cpath, cfg_text, NULL);
    if (s == DN_OK && weights) s = dn_read_file(wpath, (char **)weights, size);
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
    dn_status s = dn_read_file(path, &text, NULL);
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
    const evo_individual *v = evo_state_find(&st->log.state, id);
    if (s == DN_OK && (!v || v->alive))   /* only the log's dead lose their weights */
        s = evo_fail(DN_ERR_ARG, "%s: refusing to delete the weights of individual %d: %s", st->dir, id,
                     v ? "the log says it is alive" : "no event records it");
    if (s == DN_OK && id != st->log.baseline) {   /* the baseline's weights stay (see struct evo_store) */
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
                       const evo_result *r, evo_event *e)
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
    e->latency_ms = c->latency_ms;
    e->latency_batch_ms = c->latency_batch_ms;
    e->killed = killed;
    e->nkilled = killed ? nkilled : 0;
    e->rng = rng;
    e->elapsed = elapsed;
    e->worker = c->worker;
    e->worker_busy = c->worker_busy;
    e->val_images = c->val_images;
}

/* One write() of the whole line, then fsync; on failure the file is cut back. */
static dn_status write_line(evo_store *st, const char *line, size_t len)
{
    ssize_t w = write(st->fd, line, len);
    if (w == (ssize_t)len && fsync(st->fd) == 0) {
        st->log.good_end += (long)len;
        return DN_OK;
    }
    dn_status s = evo_fail(DN_ERR_IO, "%s/events.jsonl: cannot append the event: %s", st->dir,
                                w < 0 || w == (ssize_t)len ? strerror(errno) : "short write");
    if (w > 0 && ftruncate(st->fd, st->log.good_end) != 0) {
        /* a part of the line may remain: cut it before the next write */
        close(st->fd);
        st->fd = -1;
        st->log.torn = 1;
    }
    return s;
}

static dn_status append_checked(evo_store *st, const evo_event *e, const evo_result *r)
{
    DN_TRY(prepare_write(st));
    evo_event with = *e;   /* the lost found on opening, the data key with evaluation 1 */
    with.lost = st->lost;
    with.nlost = st->nlost;
    with.key = e->eval == 1 ? &st->key : NULL;
    e = &with;
    dn_status s = evo_event_check(&st->log.state, e);
    if (s != DN_OK)
        return evo_fail(s, "%s/events.jsonl: refusing an event that a resume could not replay: %s", st->dir,
                             evo_last_error());
    DN_TRY(evo_state_reserve(&st->log.state));   /* so that the apply below cannot fail */
    char *line;
    size_t len;
    DN_TRY(evo_event_line(e, r, &line, &len));
    s = write_line(st, line, len);
    free(line);
    if (s == DN_OK) evo_event_apply(&st->log.state, e, &st->log.baseline);
    if (s == DN_OK) st->nlost = 0;
    if (s == DN_OK && e->key && !st->log.has_key) {
        st->log.key = st->key;
        st->log.key.data = strdup(st->key.data);
        st->log.has_key = st->log.key.data != NULL;
    }
    return s;
}

/* Ids whose weights the search keeps now (the best ever, the archive), so
 * that those an event makes unkept can go: (n) malloc'd into *ids. */
static dn_status kept_now(const evo_store *st, int **ids, int *n)
{
    int *idx = NULL, na = 0;
    *ids = NULL;
    *n = 0;
    if (st->costs) DN_TRY(evo_pareto_archive(&st->log.state, &idx, &na));
    int *out = malloc(((size_t)na + 1) * sizeof *out), b = evo_state_best_ever(&st->log.state);
    if (!out) { free(idx); return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    for (int k = 0; k < na; ++k) out[k] = st->log.state.ind[idx[k]].id;
    if (b >= 0) out[na++] = st->log.state.ind[b].id;
    free(idx);
    *ids = out;
    *n = na;
    return DN_OK;
}

/* After an event: the dead among ids (and those it killed) whose weights
 * nothing keeps any longer lose them. */
static dn_status drop_unkept(evo_store *st, const int *ids, int n, const evo_event *e)
{
    dn_status s = DN_OK;
    for (int k = 0; s == DN_OK && k < n + e->nkilled; ++k) {
        int id = k < n ? ids[k] : e->killed[k - n];
        const evo_individual *v = evo_state_find(&st->log.state, id);
        if (!v || v->alive || kept_when_dead(st, id)) continue;
        char *path = fmt_path("%s/weights/%d.weights", st->dir, id);
        if (!path) s = evo_fail(DN_ERR_NOMEM, "out of memory");
        else if (unlink(path) != 0 && errno != ENOENT) s = io_fail(path, "cannot delete");
        free(path);
    }
    return s;
}

/* Check, write and apply one event; then the weights nothing keeps go. */
static dn_status append_locked(evo_store *st, const evo_event *e, const evo_result *r)
{
    int *kept = NULL, nkept = 0;
    DN_TRY(kept_now(st, &kept, &nkept));
    dn_status s = append_checked(st, e, r);
    if (s == DN_OK) s = drop_unkept(st, kept, nkept, e);
    free(kept);
    return s;
}

dn_status evo_store_append_event(evo_store *st, const evo_individual *child, const evo_result *r,
                                 const int *killed, int nkilled, uint64_t rng_after, double elapsed)
{
    if (!st || !child || nkilled < 0 || (nkilled > 0 && !killed))
        return evo_fail(DN_ERR_ARG, "evo_store_append_event: bad arguments");
    evo_event e;
    event_from(child, killed, nkilled, rng_after, elapsed, r, &e);
    pthread_mutex_lock(&st->mu);
    dn_status s = append_locked(st, &e, r);
    pthread_mutex_unlock(&st->mu);
    return s;
}

dn_status evo_store_append_promotion(evo_store *st, const evo_individual *ind, int eval, const evo_result *r,
                                     uint64_t rng_after, double elapsed)
{
    if (!st || !ind || !r) return evo_fail(DN_ERR_ARG, "evo_store_append_promotion: bad arguments");
    evo_event e;
    evo_promotion_event(ind, eval, r, rng_after, elapsed, &e);
    pthread_mutex_lock(&st->mu);
    dn_status s = append_locked(st, &e, r);
    pthread_mutex_unlock(&st->mu);
    return s;
}
