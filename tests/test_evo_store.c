/*
 * test_evo_store.c — the run folder (evo/store.c) and its JSON lines
 * (evo/json.c): options round trip, events appended then replayed, the event
 * fields, a torn last line, a corrupt middle line, missing or corrupt weights
 * of a living individual, orphans and temporary files left by a kill, the
 * baseline's weights, refusing to create over a search or under a file,
 * refusing events a resume could not replay, the writer lock.
 * Everything happens in a mkdtemp folder.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "evo_internal.h"
#include "testlib.h"
#include "testtmp.h"
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */



/* dir/name in one of 8 rotating buffers */
static const char *in(const char *dir, const char *name)
{
    static char buf[8][600];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, 600, "%s/%s", dir, name);
    return b;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static char *slurp(const char *path, size_t *n)
{
    char *t = NULL;
    if (dn_read_file(path, &t, n) != DN_OK) return NULL;
    return t;
}

static void write_text(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);
    if (!f || fputs(text, f) < 0) { perror(path); exit(2); }
    fclose(f);
}

static int count_lines(const char *path)
{
    size_t n;
    char *t = slurp(path, &n);
    int lines = 0;
    for (size_t i = 0; t && i < n; ++i) lines += t[i] == '\n';
    free(t);
    return lines;
}

/* Both error messages (evo's and darknet's) hold substr. */
#define CHECK_ERR(expr, substr)                                                                            \
    do {                                                                                                   \
        dn_status te_s = (expr);                                                                           \
        CHECK(te_s != DN_OK && strstr(evo_last_error(), (substr)) && strstr(dn_last_error(), (substr)),    \
              "%s -> %s: '%s' (want an error with '%s')", #expr, dn_status_name(te_s), evo_last_error(),  \
              (substr));                                                                                   \
    } while (0)

static char warnings[8192];
static void sink(const char *msg, void *user)
{
    (void)user;
    size_t len = strlen(warnings);
    snprintf(warnings + len, sizeof warnings - len, "%s\n", msg);
}


static int tmp_files_found;
static int find_tmp(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    if (strstr(path, ".tmp.") && !strstr(path, "notes.tmp.txt")) { ++tmp_files_found; fprintf(stderr, "left over: %s\n", path); }
    return 0;
}

static const char *TINY_CFG =
    "[net]\nbatch=1\nwidth=4\nheight=4\nchannels=1\n"
    "[convolutional]\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[connected]\noutput=3\nactivation=linear\n"
    "[softmax]\n";

/* Valid weights for TINY_CFG, different per id (seen = id). */
static void tiny_weights(int id, void **w, size_t *n)
{
    dn_parse_options po = {.batch = 1, .seed = (uint64_t)id + 1, .quiet = 1};
    dn_network *net = NULL;
    if (dn_network_parse_string(TINY_CFG, "tiny", &po, &net) != DN_OK) { fprintf(stderr, "%s\n", dn_last_error()); exit(2); }
    net->seen = (uint64_t)id;
    if (dn_weights_save_memory(net, w, n) != DN_OK) exit(2);
    dn_network_free(net);
}

static void fill_options(evo_options *o)
{
    memset(o, 0, sizeof *o);
    o->data_path = strdup("data/some path.data");
    o->seed_cfg_path = strdup("cfg/seed.cfg");
    o->algo = strdup("tournament");
    o->population = 3;
    o->evals = 100;
    o->hours = 1.5;
    o->steps = 10;
    o->batch = 8;
    o->holdout = 50;
    o->inherit = 1;
    o->sample = 7;
    o->blocks = 3;
    o->ops = strdup("sep3x3,identity");
    o->workers = 2;
    o->seed = UINT64_MAX;
    o->limits.max_layers = 12;
    o->limits.max_params = 1e6;
    o->limits.max_flops = 3.25e7;
    o->limits.max_memory = 1.0 / 3.0;
    o->max_train = 1000;
    o->threads = 3;
}

static void free_options(evo_options *o) { evo_options_free(o); }

/* ------------------------------------------------------------ a scripted search */

typedef struct { int id, parent; evo_mutation m; evo_outcome out; float acc; int killed; } step;

/* 3 initial individuals, a failed child, two children that kill. Baseline: 1. */
static const step SCRIPT[] = {
    {1, -1, EVO_MUT_NONE, EVO_OK, 0.5f, -1},
    {2, -1, EVO_MUT_NONE, EVO_OK, 0.625f, -1},
    {3, -1, EVO_MUT_NONE, EVO_OK, 0.375f, -1},
    {4, 2, EVO_MUT_INSERT_CONVOLUTION, EVO_FAILED, 0, -1},
    {5, 2, EVO_MUT_ALTER_LEARNING_RATE, EVO_OK, 0.75f, 3},
    {6, 5, EVO_MUT_ALTER_CHANNELS, EVO_OK, 0.8125f, 1},
};
#define NSCRIPT ((int)(sizeof SCRIPT / sizeof SCRIPT[0]))

static uint64_t rng_after(int eval) { return 0x9e3779b97f4a7c15ull * (uint64_t)eval; }

static void fill_step(const step *s, int eval, evo_individual *ind, evo_result *r)
{
    memset(ind, 0, sizeof *ind);
    memset(r, 0, sizeof *r);
    ind->id = s->id;
    ind->parent = s->parent;
    ind->mutation = s->m;
    ind->eval = eval;
    ind->outcome = s->out;
    ind->alive = s->out == EVO_OK;
    ind->accuracy = s->acc;
    ind->steps = 10;
    ind->params = 1234;
    ind->flops = 5678.5;
    r->outcome = s->out;
    r->accuracy = s->acc;
    r->loss = 1.25f;
    r->steps = 10;
    r->seen = 80 + (uint64_t)s->id;
    r->train_seconds = 0.5;
    r->eval_seconds = 0.25;
    r->build_seconds = 0.125;
    r->inherited.copied = s->parent >= 0 ? 2 : 0;
    if (s->out != EVO_OK) snprintf(r->reason, sizeof r->reason, "a \"quoted\" reason\nwith a newline");
}

/* One evaluation written as the search does: files, event, deaths. */
static dn_status record(evo_store *st, const step *s, int eval)
{
    evo_individual ind;
    evo_result r;
    fill_step(s, eval, &ind, &r);
    void *w = NULL;
    size_t wn = 0;
    if (s->out == EVO_OK) tiny_weights(s->id, &w, &wn);
    dn_status rc = evo_store_save_individual(st, s->id, TINY_CFG, w, wn);
    free(w);
    int nk = s->killed >= 0;
    if (rc == DN_OK) rc = evo_store_append_event(st, &ind, &r, &s->killed, nk, rng_after(eval), 10.0 * eval);
    if (rc == DN_OK && nk) rc = evo_store_remove_weights(st, s->killed);
    return rc;
}

/* A run folder at dir with the first n steps of the script. */
static void make_run(const char *dir, int n)
{
    evo_options o;
    fill_options(&o);
    evo_store *st = NULL;
    CHECK_OK(evo_store_create(dir, &o, TINY_CFG, &st));
    for (int i = 0; st && i < n; ++i) CHECK_OK(record(st, &SCRIPT[i], i + 1));
    evo_store_close(st);
    free_options(&o);
}

/* ------------------------------------------------------------ tests */

static void test_json(void)
{
    evo_json_writer w;
    evo_json_begin(&w);
    evo_json_str(&w, "s", "q\"b\\n\nt\t\x01 caf\xc3\xa9");
    evo_json_int(&w, "i", -42);
    evo_json_u64(&w, "u", UINT64_MAX);
    evo_json_num(&w, "x", 0.1);
    evo_json_num(&w, "nan", NAN);
    int arr[3] = {3, -1, 7};
    evo_json_ints(&w, "a", arr, 3);
    evo_json_ints(&w, "e", NULL, 0);
    char *line = NULL;
    size_t len = 0;
    CHECK_OK(evo_json_end(&w, &line, &len));
    CHECK(line && len == strlen(line) && line[len - 1] == '\n' && !memchr(line, '\n', len - 1),
          "one line ending in a newline: %s", line);
    evo_json_object o;
    CHECK_OK(evo_json_parse(line, len, &o));
    const evo_json_field *f = evo_json_get(&o, "s");
    CHECK(f && f->type == EVO_JSON_STRING && !strcmp(f->str, "q\"b\\n\nt\t\x01 caf\xc3\xa9"), "string round trip");
    f = evo_json_get(&o, "i");
    CHECK(f && f->type == EVO_JSON_NUMBER && f->is_int && f->num == -42, "int");
    f = evo_json_get(&o, "u");
    CHECK(f && f->is_int && f->u64 == UINT64_MAX, "u64 exact: %llu", f ? (unsigned long long)f->u64 : 0ull);
    f = evo_json_get(&o, "x");
    CHECK(f && f->num == 0.1, "0.1 round trip");
    f = evo_json_get(&o, "nan");
    CHECK(f && f->type == EVO_JSON_NULL, "NaN written as null");
    f = evo_json_get(&o, "a");
    CHECK(f && f->type == EVO_JSON_INTS && f->nints == 3 && f->ints[0] == 3 && f->ints[1] == -1 && f->ints[2] == 7,
          "int array");
    f = evo_json_get(&o, "e");
    CHECK(f && f->type == EVO_JSON_INTS && f->nints == 0, "empty array");
    CHECK(evo_json_get(&o, "missing") == NULL, "absent key");
    evo_json_object_free(&o);
    free(line);

    const char *u = "{\"k\":\"\\u00e9\\ud83d\\ude00\"}";
    CHECK_OK(evo_json_parse(u, strlen(u), &o));
    f = evo_json_get(&o, "k");
    CHECK(f && !strcmp(f->str, "\xc3\xa9\xf0\x9f\x98\x80"), "\\u escapes and a surrogate pair to UTF-8");
    evo_json_object_free(&o);

    const char *bad[] = {"", "{", "{\"a\":1,}", "{\"a\":1} x", "{\"a\":\"open}", "{\"a\":01}", "{\"a\":[1,2.5]}",
                         "{a:1}", "{\"a\":1,\"a\":2}", "{\"a\":\"\\q\"}", "{\"a\":-}", "[1]", "{\"a\":\"\\ud800\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        dn_status s = evo_json_parse(bad[i], strlen(bad[i]), &o);
        CHECK(s == DN_ERR_PARSE && strstr(evo_last_error(), "column"), "'%s' must be rejected with a column: %s", bad[i],
              evo_last_error());
    }
}

static void test_options_round_trip(void)
{
    const char *dir = tp("opts/nested/run");
    evo_options o, back;
    fill_options(&o);
    evo_store *st = NULL;
    CHECK_OK(evo_store_create(dir, &o, TINY_CFG, &st));
    CHECK(st && !strcmp(evo_store_dir(st), dir), "store dir");
    evo_store_close(st);
    CHECK(exists(in(dir, "options.cfg")) && exists(in(dir, "seed.cfg")) && exists(in(dir, "events.jsonl")) &&
          exists(in(dir, "individuals")) && exists(in(dir, "weights")), "layout");
    char *seed = slurp(in(dir, "seed.cfg"), NULL);
    CHECK(seed && !strcmp(seed, TINY_CFG), "seed.cfg is a copy of the seed");
    free(seed);
    char *text = slurp(in(dir, "options.cfg"), NULL);
    CHECK(text && strstr(text, "\n[evolve]\n") && strstr(text, "population=3\n") && strstr(text, "data=data/some path.data\n"),
          "options.cfg: %s", text ? text : "(none)");
    free(text);

    evo_state s;
    CHECK_OK(evo_store_open(dir, &back, &s, &st));
    CHECK(back.data_path && !strcmp(back.data_path, o.data_path), "data");
    CHECK(back.seed_cfg_path && !strcmp(back.seed_cfg_path, o.seed_cfg_path), "seed_cfg");
    CHECK(back.algo && !strcmp(back.algo, "tournament"), "algo");
    CHECK(back.out_dir && !strcmp(back.out_dir, dir), "out_dir is the folder");
    CHECK(back.population == 3 && back.evals == 100 && back.steps == 10 && back.batch == 8 && back.holdout == 50 &&
          back.inherit == 1 && back.workers == 2 && back.max_train == 1000 && back.threads == 3, "ints");
    CHECK(back.sample == 7 && back.blocks == 3 && back.ops && !strcmp(back.ops, "sep3x3,identity"),
          "aging and cell options: sample %d blocks %d ops %s", back.sample, back.blocks, back.ops ? back.ops : "(null)");
    CHECK(back.hours == 1.5 && back.seed == UINT64_MAX, "hours, seed %llu", (unsigned long long)back.seed);
    CHECK(back.limits.max_layers == 12 && back.limits.max_params == 1e6 && back.limits.max_flops == 3.25e7 &&
          back.limits.max_memory == 1.0 / 3.0, "limits exact");
    CHECK(s.n == 0 && s.evals == 0 && s.next_id == 0, "no events yet");
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&back);

    /* a hand-edited options.cfg with a bad value names file and line */
    write_text(in(dir, "options.cfg"), "[evolve]\ndata=x\nseed_cfg=y\npopulation=lots\n", "w");
    CHECK_ERR(evo_store_open(dir, &back, &s, &st), "options.cfg:4: population=lots is not an integer");
    CHECK(st == NULL, "no store on failure");
    free_options(&back);
    write_text(in(dir, "options.cfg"), "[evolve]\ndata=x\nseed_cfg=y\ncolour=blue\n", "w");
    CHECK_ERR(evo_store_open(dir, &back, &s, &st), "options.cfg:4: unknown option 'colour'");
    free_options(&back);
    unlink(in(dir, "options.cfg"));
    CHECK_ERR(evo_store_open(dir, &back, &s, &st), "options.cfg: missing");
    free_options(&back);

    /* a newline in a string option cannot be stored */
    free(o.algo);
    o.algo = strdup("a\nb");
    CHECK_ERR(evo_store_create(tp("opts/newline"), &o, TINY_CFG, &st), "line break");
    free_options(&o);
}

static void check_event_line(const char *line, size_t len, int eval)
{
    evo_json_object o;
    CHECK_OK(evo_json_parse(line, len, &o));
    const step *s = &SCRIPT[eval - 1];
    const char *need[] = {"eval", "id", "parent", "mutation", "outcome", "accuracy", "loss", "steps", "seen",
                          "params", "flops", "inherited", "killed", "rng", "elapsed", "train_seconds",
                          "eval_seconds", "build_seconds", "time"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; ++i)
        CHECK(evo_json_get(&o, need[i]) != NULL, "event %d has \"%s\"", eval, need[i]);
    const evo_json_field *f = evo_json_get(&o, "eval");
    CHECK(f && f->num == eval, "eval");
    f = evo_json_get(&o, "id");
    CHECK(f && f->num == s->id, "id");
    f = evo_json_get(&o, "parent");
    CHECK(f && f->num == s->parent, "parent");
    f = evo_json_get(&o, "mutation");
    CHECK(f && f->str && !strcmp(f->str, s->m == EVO_MUT_NONE ? "none" : evo_mutation_name(s->m)), "mutation");
    f = evo_json_get(&o, "outcome");
    CHECK(f && f->str && !strcmp(f->str, s->out == EVO_OK ? "ok" : "failed"), "outcome");
    f = evo_json_get(&o, "reason");
    CHECK(s->out == EVO_OK ? !f : f && !strcmp(f->str, "a \"quoted\" reason\nwith a newline"), "reason of failures");
    f = evo_json_get(&o, "seen");
    CHECK(f && f->u64 == 80 + (uint64_t)s->id, "seen");
    f = evo_json_get(&o, "inherited");
    CHECK(f && f->num == (s->parent >= 0 ? 2 : 0), "inherited");
    f = evo_json_get(&o, "killed");
    CHECK(f && f->nints == (s->killed >= 0) && (s->killed < 0 || f->ints[0] == s->killed), "killed");
    char hex[24];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)rng_after(eval));
    f = evo_json_get(&o, "rng");
    CHECK(f && f->str && !strcmp(f->str, hex), "rng %s vs %s", f && f->str ? f->str : "-", hex);
    f = evo_json_get(&o, "time");
    CHECK(f && f->str && strlen(f->str) == 20 && f->str[10] == 'T' && f->str[19] == 'Z', "ISO time");
    evo_json_object_free(&o);
}

static void test_events_replay(void)
{
    const char *dir = tp("run");
    make_run(dir, NSCRIPT);
    CHECK(count_lines(in(dir, "events.jsonl")) == NSCRIPT, "one line per evaluation");
    size_t n;
    char *text = slurp(in(dir, "events.jsonl"), &n);
    int eval = 0;
    for (char *p = text; p && *p; ++eval) {
        char *nl = strchr(p, '\n');
        check_event_line(p, (size_t)(nl - p), eval + 1);
        p = nl + 1;
    }
    free(text);

    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(s.n == NSCRIPT && s.evals == NSCRIPT && s.next_id == 7, "n %d evals %d next %d", s.n, s.evals, s.next_id);
    CHECK(s.rng == rng_after(NSCRIPT) && s.elapsed == 60.0, "rng and elapsed of the last event");
    const int alive[] = {0, 1, 0, 0, 1, 1}, died[] = {6, 0, 5, 4, 0, 0};
    for (int i = 0; i < NSCRIPT; ++i) {
        const evo_individual *v = evo_state_find(&s, SCRIPT[i].id);
        CHECK(v && v->parent == SCRIPT[i].parent && v->mutation == SCRIPT[i].m && v->eval == i + 1 &&
              v->outcome == SCRIPT[i].out && v->accuracy == SCRIPT[i].acc && v->alive == alive[i] &&
              v->died_at == died[i] && v->steps == 10 && v->params == 1234 && v->flops == 5678.5 &&
              v->seconds == 0.875, "individual %d replayed", SCRIPT[i].id);
    }
    CHECK(evo_state_find(&s, 99) == NULL, "unknown id");
    /* weights: the living, plus the baseline (first initial individual) although dead */
    CHECK(exists(in(dir, "weights/1.weights")), "baseline weights kept after its death");
    CHECK(!exists(in(dir, "weights/3.weights")), "dead individual's weights deleted");
    CHECK(!exists(in(dir, "weights/4.weights")) && exists(in(dir, "individuals/4.cfg")), "failed: cfg only");
    char *cfg = NULL;
    void *w = NULL;
    size_t wn = 0, tn = 0;
    CHECK_OK(evo_store_load_individual(st, 5, &cfg, &w, &wn));
    void *tw = NULL;
    tiny_weights(5, &tw, &tn);
    CHECK(cfg && !strcmp(cfg, TINY_CFG) && w && wn == tn && !memcmp(w, tw, tn), "individual 5 loads back");
    free(cfg); free(w); free(tw);
    CHECK_ERR(evo_store_load_individual(st, 3, NULL, &w, &wn), "weights/3.weights");

    /* appends a resume could not replay are refused, nothing is written */
    evo_individual ind;
    evo_result r;
    step bad = {7, 6, EVO_MUT_IDENTITY, EVO_OK, 0.5f, -1};
    fill_step(&bad, 9, &ind, &r);
    CHECK_ERR(evo_store_append_event(st, &ind, &r, NULL, 0, 1, 1), "evaluation 9 follows evaluation 6");
    ind.eval = 7;
    int ghost = 42, dead = 3;
    CHECK_ERR(evo_store_append_event(st, &ind, &r, &ghost, 1, 1, 1), "killed individual 42 does not exist");
    CHECK_ERR(evo_store_append_event(st, &ind, &r, &dead, 1, 1, 1), "killed individual 3 is not alive");
    ind.parent = 77;
    CHECK_ERR(evo_store_append_event(st, &ind, &r, NULL, 0, 1, 1), "parent 77");
    ind.parent = 6;
    ind.id = 5;
    CHECK_ERR(evo_store_append_event(st, &ind, &r, NULL, 0, 1, 1), "id 5 is already used");
    CHECK(count_lines(in(dir, "events.jsonl")) == NSCRIPT, "refused events are not written");

    /* a second writer on the same folder is refused at once, while the first
     * holds it; a reader is not */
    evo_options o2;
    evo_state s2;
    evo_store *st2 = NULL;
    CHECK_ERR(evo_store_open(dir, &o2, &s2, &st2), "in use: another darknet evolve");
    CHECK(st2 == NULL, "no second writer");
    CHECK_OK(evo_store_open_read(dir, &o2, &s2, &st2));
    CHECK(s2.evals == NSCRIPT, "a reader replays beside the writer");
    CHECK_ERR(evo_store_append_event(st2, &ind, &r, NULL, 0, 1, 1), "opened for reading only");
    CHECK_ERR(evo_store_save_individual(st2, 7, TINY_CFG, NULL, 0), "opened for reading only");
    evo_store_close(st2);
    evo_state_free(&s2);
    free_options(&o2);
    /* only the log's dead lose their weights */
    CHECK_ERR(evo_store_remove_weights(st, 5), "the log says it is alive");
    CHECK_ERR(evo_store_remove_weights(st, 42), "no event records it");
    CHECK(exists(in(dir, "weights/5.weights")), "5 keeps its weights");

    /* promotions: a living individual one level up, as an evaluation of its own */
    evo_individual p5 = *evo_state_find(&s, 5), stale;
    evo_result pr;
    memset(&pr, 0, sizeof pr);
    pr.outcome = EVO_OK;
    pr.accuracy = 0.25f;
    pr.steps = 20;
    pr.val_images = 300;
    evo_individual p3 = p5;
    p3.id = 3;
    CHECK_ERR(evo_store_append_promotion(st, &p3, NSCRIPT + 1, &pr, 7, 61), "promoted individual 3 is not alive");
    CHECK_OK(evo_store_append_promotion(st, &p5, NSCRIPT + 1, &pr, 7, 61));
    stale = p5;   /* still at level 0 in the caller's copy: the log has it at 1 */
    CHECK_ERR(evo_store_append_promotion(st, &stale, NSCRIPT + 2, &pr, 7, 62), "to level 1 from level 1");
    CHECK(count_lines(in(dir, "events.jsonl")) == NSCRIPT + 1, "one promotion line written");
    evo_state s3;
    CHECK_OK(evo_store_open_read(dir, &o2, &s3, &st2));
    const evo_individual *v5 = evo_state_find(&s3, 5);
    CHECK(s3.evals == NSCRIPT + 1 && s3.n == NSCRIPT && v5 && v5->rung == 1 && v5->accuracy == 0.25f &&
          v5->steps == 30 && v5->val_images == 300 && v5->alive, "the promotion replays: level 1, its score, 10 + 20 steps");
    int b = evo_state_best_ever(&s3);
    CHECK(b >= 0 && s3.ind[b].id == 5, "the best ever is of the highest level, whatever its score (%d)",
          b >= 0 ? s3.ind[b].id : -1);
    /* -patience: how long the best has stood counts from its promotion, not its birth */
    CHECK(v5->ranked_at == 61 && v5->elapsed < 61, "ranked at its promotion (%g), born at %g", v5->ranked_at, v5->elapsed);
    o2.hours = 1;
    o2.final_share = 0.5;   /* 1800 s of search: the best may stand 0.25 x 1800 = 450 s */
    o2.patience = 0.25;
    o2.population = NSCRIPT + 1;
    CHECK(evo_stood_for(&o2, &s3, 61 + 450) < 0, "the initial population is not complete: the search goes on");
    o2.population = NSCRIPT;
    CHECK(evo_stood_for(&o2, &s3, 61 + 449) < 0, "stood 449 s of 450: the search goes on");
    CHECK(evo_stood_for(&o2, &s3, 61 + 450) == 450, "stood 450 s: the search ends");
    o2.patience = 0;
    CHECK(evo_stood_for(&o2, &s3, 1e9) < 0, "-patience 0: never");
    o2.patience = 0.25;
    o2.hours = 0;
    CHECK(evo_stood_for(&o2, &s3, 1e9) < 0, "without -hours: never");
    evo_store_close(st2);
    evo_state_free(&s3);
    free_options(&o2);

    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
}

static void test_torn_last_line(void)
{
    const char *dir = tp("torn");
    make_run(dir, 3);
    const char *ev = in(dir, "events.jsonl");
    write_text(ev, "{\"eval\":4,\"id\":4,\"par", "a");
    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    warnings[0] = 0;
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(s.evals == 3 && s.n == 3, "torn line ignored: evals %d", s.evals);
    CHECK(strstr(warnings, "events.jsonl:4: ignoring a torn last line"), "warning: %s", warnings);
    /* the next append cuts it away */
    CHECK_OK(record(st, &SCRIPT[3], 4));
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
    CHECK(count_lines(ev) == 4, "4 whole lines");
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(s.evals == 4 && evo_state_find(&s, 4) && evo_state_find(&s, 4)->outcome == EVO_FAILED, "replays after the cut");
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);

    /* a last line with its newline but not JSON (garbage after a crash) is torn too */
    write_text(ev, "\x01\x02garbage\n", "a");
    warnings[0] = 0;
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(s.evals == 4 && strstr(warnings, "events.jsonl:5"), "garbage last line ignored");
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
}

static void test_corrupt_middle(void)
{
    const char *dir = tp("corrupt");
    make_run(dir, 4);
    const char *ev = in(dir, "events.jsonl");
    size_t n;
    char *text = slurp(ev, &n);
    /* break line 2: drop its closing brace */
    char *l2 = strchr(text, '\n') + 1, *end2 = strchr(l2, '\n');
    end2[-1] = ' ';
    write_text(ev, text, "w");
    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    CHECK_ERR(evo_store_open(dir, &o, &s, &st), "events.jsonl:2: column");
    CHECK(st == NULL, "no store");
    free_options(&o);
    /* a line that is JSON but not a valid event: line 3 names an unknown parent */
    end2[-1] = '}';
    char *l3 = end2 + 1;
    char *par = strstr(l3, "\"parent\":-1");
    CHECK(par != NULL, "line 3 has parent -1");
    if (par) memcpy(par, "\"parent\":99", 11);
    write_text(ev, text, "w");
    CHECK_ERR(evo_store_open(dir, &o, &s, &st), "events.jsonl:3: parent 99");
    free_options(&o);
    free(text);
}

/* The "lost" field of the last line of events.jsonl, as text ("" when absent). */
static void last_lost(const char *dir, char *out, size_t n)
{
    size_t len;
    char *t = slurp(in(dir, "events.jsonl"), &len);
    out[0] = 0;
    char *last = t ? t : NULL;
    for (char *p = t; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        if (*p) last = p;
    char *l = last ? strstr(last, "\"lost\":[") : NULL;
    if (l) snprintf(out, n, "%.*s", (int)(strchr(l, ']') - l + 1), l);
    free(t);
}

/* A missing or damaged file of a living individual costs that individual:
 * it is dead in the state, its damaged weights are moved aside on the first
 * write, and the next event records it as lost. */
static void test_missing_weights(void)
{
    const char *dir = tp("missing");
    make_run(dir, 5);   /* alive: 1 2 5 */
    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    size_t wn;
    char *w = slurp(in(dir, "weights/5.weights"), &wn);
    unlink(in(dir, "weights/5.weights"));
    warnings[0] = 0;
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(strstr(warnings, "weights/5.weights: missing") && strstr(warnings, "individual 5"), "warned: %s", warnings);
    const evo_individual *v = evo_state_find(&s, 5);
    CHECK(v && !v->alive && v->died_at == 6, "5 is dead in the state (died at the next evaluation)");
    CHECK(evo_state_find(&s, 2)->alive && evo_state_find(&s, 1)->alive, "the others live");
    evo_store_close(st);   /* nothing written: the next open finds the same */
    evo_state_free(&s);
    free_options(&o);
    CHECK(count_lines(in(dir, "events.jsonl")) == 5, "opening wrote nothing");

    /* truncated weights of 2: lost too, the file kept aside */
    FILE *f = fopen(in(dir, "weights/2.weights"), "r+b");
    CHECK(f && ftruncate(fileno(f), (off_t)wn - 4) == 0, "truncate 2");
    if (f) fclose(f);
    warnings[0] = 0;
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(strstr(warnings, "weights/2.weights: corrupt"), "truncation named: %s", warnings);
    CHECK(!evo_state_find(&s, 2)->alive && !evo_state_find(&s, 5)->alive, "2 and 5 lost");
    CHECK_OK(record(st, &SCRIPT[5], 6));   /* 6 kills 1 */
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
    char lost[64];
    last_lost(dir, lost, sizeof lost);
    CHECK(!strcmp(lost, "\"lost\":[2,5]"), "the next event records them: '%s'", lost);
    CHECK(exists(in(dir, "orphans/weights/2.weights")) && !exists(in(dir, "weights/2.weights")),
          "2's damaged weights moved aside, not deleted");
    CHECK(exists(in(dir, "individuals/2.cfg")) && exists(in(dir, "individuals/5.cfg")), "their cfgs stay");

    /* replayed: 2 and 5 died at evaluation 6; nothing is lost any more */
    warnings[0] = 0;
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(!evo_state_find(&s, 2)->alive && evo_state_find(&s, 2)->died_at == 6 && !evo_state_find(&s, 5)->alive,
          "replay: 2 and 5 dead");
    CHECK(evo_state_find(&s, 6)->alive && !strstr(warnings, "counts as dead"), "6 alive, no warning: %s", warnings);
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);

    /* a missing cfg of a living individual: the same */
    unlink(in(dir, "individuals/6.cfg"));
    warnings[0] = 0;
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(strstr(warnings, "individuals/6.cfg: missing") && !evo_state_find(&s, 6)->alive, "6 lost: %s", warnings);
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
    /* a reader checks nothing and sees the log */
    CHECK_OK(evo_store_open_read(dir, &o, &s, &st));
    CHECK(evo_state_find(&s, 6)->alive, "the log still says 6 lives");
    CHECK_ERR(evo_store_check_individual(st, 6), "individuals/6.cfg: missing");
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
    free(w);
}

/* The best ever keeps its weights after its death, through recovery too. */
static void test_best_kept(void)
{
    const char *dir = tp("bestkept");
    make_run(dir, NSCRIPT);
    /* 7 (best, 0.9) is killed by 8; recovery must not take its weights */
    static const step more[] = {{7, 6, EVO_MUT_IDENTITY, EVO_OK, 0.9f, 2}, {8, 6, EVO_MUT_IDENTITY, EVO_OK, 0.1f, 7}};
    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK_OK(record(st, &more[0], 7));
    /* the search keeps the dead best's weights: record() would delete them, so write 8 by hand */
    evo_individual ind;
    evo_result r;
    fill_step(&more[1], 8, &ind, &r);
    void *w = NULL;
    size_t wn = 0;
    tiny_weights(8, &w, &wn);
    CHECK_OK(evo_store_save_individual(st, 8, TINY_CFG, w, wn));
    CHECK_OK(evo_store_append_event(st, &ind, &r, &more[1].killed, 1, rng_after(8), 80));
    free(w);
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK_OK(record(st, &(step){9, 8, EVO_MUT_IDENTITY, EVO_OK, 0.2f, -1}, 9));   /* a write: recovery runs */
    int b = evo_state_best_ever(&s);
    CHECK(b >= 0 && s.ind[b].id == 7 && !s.ind[b].alive, "7 is the dead best");
    CHECK(exists(in(dir, "weights/7.weights")), "the dead best's weights survive recovery");
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
}

/* Evaluation 1 records the options that define the data; options.cfg
 * edited afterwards is refused naming the key; before any evaluation it may change. */
static void test_data_options_fixed(void)
{
    const char *dir = tp("datakey");
    make_run(dir, 0);
    const char *opt = in(dir, "options.cfg");
    size_t n;
    char *text = slurp(opt, &n), *edited = NULL;
    /* no evaluation yet: holdout may change */
    CHECK(asprintf(&edited, "%s", text) > 0, "copy");
    char *h = strstr(edited, "holdout=50");
    CHECK(h != NULL, "holdout in options.cfg");
    if (h) memcpy(h, "holdout=60", 10);
    write_text(opt, edited, "w");
    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(o.holdout == 60, "read back");
    CHECK_OK(record(st, &SCRIPT[0], 1));
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
    char *ev = slurp(in(dir, "events.jsonl"), NULL);
    CHECK(ev && strstr(ev, "\"data\":\"data/some path.data\",\"holdout\":60,\"max_train\":1000,"
                          "\"seed\":\"18446744073709551615\""), "evaluation 1 records the data key: %s", ev);
    free(ev);
    /* now each key is fixed */
    static const char *const edits[][2] = {{"holdout=60", "holdout=70"}, {"max_train=1000", "max_train=999"},
                                           {"seed=18446744073709551615", "seed=1"},
                                           {"data=data/some path.data", "data=data/other.data"}};
    for (int i = 0; i < 4; ++i) {
        char *e2 = strdup(edited), *at = strstr(e2, edits[i][0]);
        CHECK(at != NULL, "%s in options.cfg", edits[i][0]);
        if (!at) { free(e2); continue; }
        char *out = NULL;
        CHECK(asprintf(&out, "%.*s%s%s", (int)(at - e2), e2, edits[i][1], at + strlen(edits[i][0])) > 0, "edit");
        write_text(opt, out, "w");
        char key[32];
        snprintf(key, sizeof key, "%.*s", (int)(strchr(edits[i][1], '=') - edits[i][1]), edits[i][1]);
        char want[96];
        snprintf(want, sizeof want, "options.cfg: %s", edits[i][1]);
        CHECK_ERR(evo_store_open(dir, &o, &s, &st), want);
        CHECK(strstr(evo_last_error(), "cannot change during a search"), "explains: %s", evo_last_error());
        CHECK(st == NULL, "refused");
        free(out);
        free(e2);
    }
    write_text(opt, edited, "w");
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    evo_options changed = o;
    changed.holdout = 61;
    CHECK_ERR(evo_store_save_options(st, &changed), "holdout=61");
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
    free(edited);
    free(text);
}

/* The lock is taken before anything is read: a writer that finds the folder
 * locked changes nothing (options, log, orphans); create likewise. */
static void test_lock_first(void)
{
    const char *dir = tp("locked");
    make_run(dir, 3);
    write_text(in(dir, "individuals/9.cfg"), TINY_CFG, "w");   /* an orphan recovery would move */
    char *before = slurp(in(dir, "options.cfg"), NULL);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "the test holds the folder's lock");
    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    CHECK_ERR(evo_store_open(dir, &o, &s, &st), "in use");
    CHECK(st == NULL, "no store");
    fill_options(&o);
    CHECK_ERR(evo_store_create(dir, &o, TINY_CFG, &st), "in use");
    CHECK_OK(evo_store_create(tp("locked_new"), &o, TINY_CFG, &st));   /* another folder: fine */
    evo_store_close(st);
    st = NULL;
    mkdir(tp("fresh_locked"), 0755);
    int fd2 = open(tp("fresh_locked"), O_RDONLY | O_DIRECTORY);
    CHECK(fd2 >= 0 && flock(fd2, LOCK_EX | LOCK_NB) == 0, "lock an empty folder");
    CHECK_ERR(evo_store_create(tp("fresh_locked"), &o, TINY_CFG, &st), "in use");
    CHECK(!exists(in(tp("fresh_locked"), "options.cfg")), "a refused create writes nothing");
    close(fd2);
    free_options(&o);
    char *after = slurp(in(dir, "options.cfg"), NULL);
    CHECK(before && after && !strcmp(before, after), "options.cfg untouched");
    CHECK(exists(in(dir, "individuals/9.cfg")), "no recovery under someone else's lock");
    close(fd);
    free(before);
    free(after);
    CHECK_OK(evo_store_open(dir, &o, &s, &st));   /* released: fine */
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
}

/* Two processes create the same new run folder at the same instant: exactly
 * one wins, each round. */
static void test_create_race(void)
{
    for (int round = 0; round < 8; ++round) {
        char name[32];
        snprintf(name, sizeof name, "race%d", round);
        const char *dir = tp(name);
        int go[2], done[2];
        CHECK(pipe(go) == 0 && pipe(done) == 0, "pipes");
        pid_t kids[2];
        for (int k = 0; k < 2; ++k) {
            kids[k] = fork();
            if (kids[k] == 0) {
                char c;
                if (read(go[0], &c, 1) != 1) _exit(3);
                evo_options o;
                fill_options(&o);
                evo_store *st = NULL;
                dn_status r = evo_store_create(dir, &o, TINY_CFG, &st);
                if (r == DN_OK) {
                    c = 1;   /* hold the folder until the parent has seen both */
                    if (write(done[1], &c, 1) != 1) _exit(3);
                    usleep(200 * 1000);
                }
                evo_store_close(st);
                _exit(r == DN_OK ? 0 : 1);
            }
        }
        CHECK(write(go[1], "gg", 2) == 2, "start both");
        int won = 0;
        for (int k = 0; k < 2; ++k) {
            int status = 0;
            waitpid(kids[k], &status, 0);
            won += WIFEXITED(status) && WEXITSTATUS(status) == 0;
        }
        CHECK(won == 1, "round %d: exactly one create wins (%d did)", round, won);
        close(go[0]); close(go[1]); close(done[0]); close(done[1]);
    }
}

/* A log with no evaluation beside individuals: refused, nothing changed. */
static void test_lost_log(void)
{
    const char *dir = tp("lostlog");
    make_run(dir, NSCRIPT);
    char *ev = slurp(in(dir, "events.jsonl"), NULL);
    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    for (int emptied = 0; emptied < 2; ++emptied) {
        if (emptied) write_text(in(dir, "events.jsonl"), "", "w");
        else unlink(in(dir, "events.jsonl"));
        CHECK_ERR(evo_store_open(dir, &o, &s, &st), emptied ? "holds no evaluation" : "missing");
        CHECK(strstr(evo_last_error(), "the log of this search is lost") && strstr(evo_last_error(), "Restore"),
              "says what happened and the way out: %s", evo_last_error());
        fill_options(&o);
        CHECK_ERR(evo_store_create(dir, &o, TINY_CFG, &st), "already holds individuals");
        free_options(&o);
        CHECK(exists(in(dir, "weights/6.weights")) && exists(in(dir, "individuals/6.cfg")) &&
              exists(in(dir, "individuals/1.cfg")), "every individual is still there");
    }
    write_text(in(dir, "events.jsonl"), ev, "w");   /* restored: resumes */
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(s.evals == NSCRIPT, "restored log replays");
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
    free(ev);
}

static void test_create_refusals(void)
{
    const char *dir = tp("run");   /* holds the search of test_events_replay */
    char *before = slurp(in(dir, "options.cfg"), NULL);
    evo_options o;
    fill_options(&o);
    o.population = 99;
    evo_store *st = NULL;
    CHECK_ERR(evo_store_create(dir, &o, TINY_CFG, &st), "already holds a search");
    CHECK(st == NULL, "no store");
    char *after = slurp(in(dir, "options.cfg"), NULL);
    CHECK(before && after && !strcmp(before, after), "the previous search is untouched");
    free(before);
    free(after);
    /* events without options.cfg: still refused */
    const char *dir2 = tp("events_only");
    mkdir(dir2, 0755);
    write_text(in(dir2, "events.jsonl"), "{}\n", "w");
    CHECK_ERR(evo_store_create(dir2, &o, TINY_CFG, &st), "already holds a search with events");
    /* a path under a regular file */
    write_text(tp("plainfile"), "x", "w");
    CHECK_ERR(evo_store_create(tp("plainfile/run"), &o, TINY_CFG, &st), "cannot create the folder");
    CHECK(st == NULL, "no store");
    /* an existing empty folder is fine */
    mkdir(tp("empty"), 0755);
    CHECK_OK(evo_store_create(tp("empty"), &o, TINY_CFG, &st));
    evo_store_close(st);
    /* a search that recorded nothing (it failed before its first evaluation)
     * may be started again, with other options */
    o.holdout = 77;
    warnings[0] = 0;
    CHECK_OK(evo_store_create(tp("empty"), &o, TINY_CFG, &st));
    CHECK(strstr(warnings, "recorded no evaluation: starting it anew"), "says so: %s", warnings);
    evo_store_close(st);
    evo_state s;
    evo_options back;
    CHECK_OK(evo_store_open(tp("empty"), &back, &s, &st));
    CHECK(back.holdout == 77, "the new options");
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&back);
    free_options(&o);
}

static void test_orphans(void)
{
    const char *dir = tp("orphans");
    make_run(dir, 5);
    /* a kill after saving 6 but before its event; a kill after event 5 before deleting 3's weights;
     * temporary files of interrupted writes */
    void *w;
    size_t wn;
    tiny_weights(6, &w, &wn);
    FILE *f = fopen(in(dir, "weights/6.weights"), "wb");
    fwrite(w, 1, wn, f);
    fclose(f);
    f = fopen(in(dir, "weights/3.weights"), "wb");
    fwrite(w, 1, wn, f);
    fclose(f);
    free(w);
    write_text(in(dir, "individuals/6.cfg"), TINY_CFG, "w");
    write_text(in(dir, "weights/2.weights.tmp.123.0"), "partial", "w");
    write_text(in(dir, "options.cfg.tmp.9.9"), "partial", "w");
    write_text(in(dir, "weights/notes.txt"), "keep me", "w");
    write_text(in(dir, "weights/notes.tmp.txt"), "keep me too", "w");
    mkdir(in(dir, "orphans"), 0755);
    mkdir(in(dir, "orphans/individuals"), 0755);
    write_text(in(dir, "orphans/individuals/6.cfg"), "an older orphan", "w");
    evo_options o;
    evo_state s;
    evo_store *st = NULL;
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(s.evals == 5 && !evo_state_find(&s, 6), "6 has no event");
    CHECK(exists(in(dir, "weights/6.weights")), "opening alone changes nothing");
    warnings[0] = 0;
    CHECK_OK(record(st, &SCRIPT[5], 6));   /* id 6 again, for real */
    CHECK(strstr(warnings, "weights/6.weights: no event records this individual") &&
          strstr(warnings, "moved to"), "orphan warned: %s", warnings);
    void *w6 = NULL;
    size_t w6n = 0;
    tiny_weights(6, &w6, &w6n);
    size_t on = 0;
    char *orphan = slurp(in(dir, "orphans/weights/6.weights"), &on);
    CHECK(orphan && on == w6n && !memcmp(orphan, w6, on), "the orphan's weights are kept aside, whole");
    char *older = slurp(in(dir, "orphans/individuals/6.cfg"), NULL), *newer = slurp(in(dir, "orphans/individuals/6.cfg.1"), NULL);
    CHECK(older && !strcmp(older, "an older orphan") && newer && !strcmp(newer, TINY_CFG),
          "a taken name gets a suffix, nothing is overwritten");
    free(orphan); free(older); free(newer); free(w6);
    CHECK(!exists(in(dir, "weights/3.weights")), "dead weights cleaned");
    CHECK(exists(in(dir, "weights/1.weights")), "6 killed 1, but 1 is the baseline: its weights stay");
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
    CHECK(exists(in(dir, "weights/notes.txt")) && exists(in(dir, "weights/notes.tmp.txt")),
          "foreign files are left alone");
    CHECK(exists(in(dir, "weights/6.weights")) && exists(in(dir, "weights/2.weights")), "the living keep theirs");
    CHECK_OK(evo_store_open(dir, &o, &s, &st));
    CHECK(s.evals == 6, "resumes");
    evo_store_close(st);
    evo_state_free(&s);
    free_options(&o);
}

static void test_no_temp_files(void)
{
    tmp_files_found = 0;
    nftw(tp("run"), find_tmp, 16, FTW_PHYS);
    nftw(tp("torn"), find_tmp, 16, FTW_PHYS);
    nftw(tp("orphans"), find_tmp, 16, FTW_PHYS);
    CHECK(tmp_files_found == 0, "%d temporary files left", tmp_files_found);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_evo_store.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
    dn_set_warning_sink(sink, NULL);
    test_json();
    test_options_round_trip();
    test_events_replay();
    test_torn_last_line();
    test_corrupt_middle();
    test_missing_weights();
    test_best_kept();
    test_data_options_fixed();
    test_lock_first();
    test_create_race();
    test_lost_log();
    test_create_refusals();
    test_orphans();
    test_no_temp_files();
    if (getenv("EVO_TEST_KEEP")) printf("kept %s\n", tmpdir);   /* for a look at the folders */
    else tl_rm_tree(tmpdir);
    TEST_MAIN_END();
}
