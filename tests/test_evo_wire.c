/*
 * test_evo_wire.c — the MPI messages (evo/wire.c) without MPI: every message
 * type round-trips field by field; every truncation of a valid message, a
 * wrong version, a foreign magic, a wrong length, trailing bytes and random
 * garbage are rejected with a clear error (and, under ASan, without reading
 * past the buffer).
 */
#include "evo_internal.h"
#include "testlib.h"
#include <stdlib.h>
#include <string.h>

static void make_task(evo_wire *w, evo_task_msg *t)
{
    memset(t, 0, sizeof *t);
    t->id = 4242;
    t->eval.seed = 0x123456789abcdefull;
    t->eval.steps = 200;
    t->eval.batch = 64;
    t->eval.inherit = 1;
    t->eval.schedule = EVO_SCHEDULE_COSINE;
    t->eval.val_images = 1000;
    t->eval.augment = 1;
    t->eval.mutation = EVO_MUT_WIDEN;
    t->eval.latency_threads = 3;
    t->eval.erase = 0.5f;
    t->child_cfg = "[net]\nbatch=1\n# evo id=3\n[convolutional]\nfilters=8\n";
    t->parent_cfg = "[net]\nbatch=1\n";
    static unsigned char weights[1000];
    for (size_t i = 0; i < sizeof weights; ++i) weights[i] = (unsigned char)(i * 7);
    t->parent_weights = weights;
    t->parent_weights_size = sizeof weights;
    CHECK_OK(evo_wire_task(w, t));
}

static void test_task_round_trip(void)
{
    evo_wire w;
    evo_task_msg t, u;
    make_task(&w, &t);
    evo_msg_type type = 0;
    evo_reader r;
    CHECK_OK(evo_wire_open(w.data, w.len, &type, &r));
    CHECK(type == EVO_MSG_TASK, "type %d", type);
    CHECK_OK(evo_unwire_task(&r, &u));
    CHECK(u.eval.schedule == EVO_SCHEDULE_COSINE && u.eval.val_images == 1000 && u.eval.augment == 1 &&
          u.eval.mutation == EVO_MUT_WIDEN && u.eval.latency_threads == 3 && u.eval.erase == 0.5f,
          "schedule, validation images, augmentation, mutation, latency threads and erase survive");
    CHECK(u.id == 4242 && u.eval.seed == t.eval.seed && u.eval.steps == 200 && u.eval.batch == 64 && u.eval.inherit == 1,
          "task fields");
    CHECK(u.child_cfg && !strcmp(u.child_cfg, t.child_cfg), "child cfg");
    CHECK(u.parent_cfg && !strcmp(u.parent_cfg, t.parent_cfg), "parent cfg");
    CHECK(u.parent_weights_size == 1000 && !memcmp(u.parent_weights, t.parent_weights, 1000), "parent weights");
    evo_task_msg_free(&u);
    /* every strict prefix is rejected, and says it is truncated */
    int rejected = 0, named = 0;
    for (size_t n = 0; n < w.len; ++n) {
        unsigned char *copy = malloc(n ? n : 1);   /* exactly n bytes: ASan catches any over-read */
        memcpy(copy, w.data, n);
        dn_status s = evo_wire_open(copy, n, &type, &r);
        if (s == DN_OK) s = evo_unwire_task(&r, &u);
        rejected += s == DN_ERR_PARSE;
        named += strstr(dn_last_error(), "truncated") != NULL;
        free(copy);
    }
    CHECK(rejected == (int)w.len, "%d of %zu truncations rejected", rejected, w.len);
    CHECK(named == (int)w.len, "%d of %zu truncations say 'truncated'", named, w.len);
    evo_wire_free(&w);
    /* a field out of range is refused, named */
    t.eval.erase = 2;   /* t's strings and weights are static */
    CHECK_OK(evo_wire_task(&w, &t));
    CHECK(evo_wire_open(w.data, w.len, &type, &r) == DN_OK && evo_unwire_task(&r, &u) == DN_ERR_PARSE &&
          strstr(dn_last_error(), "erase 2 out of range"), "erase 2: %s", dn_last_error());
    evo_wire_free(&w);
}

static void test_result_round_trip(void)
{
    evo_result a, b;
    memset(&a, 0, sizeof a);
    a.outcome = EVO_OK;
    snprintf(a.reason, sizeof a.reason, "%s", "");
    a.accuracy = 0.8125f; a.loss = 0.5f; a.steps = 200; a.seen = 12800;
    a.train_seconds = 1.5; a.eval_seconds = 0.25; a.build_seconds = 0.125;
    a.inherited.copied = 3; a.inherited.initialised = 1; a.params = 123456; a.flops = 9.5e6;
    a.latency_ms = 0.375f; a.latency_batch_ms = 0.0625f;
    unsigned char wts[77] = {1, 2, 3};
    a.weights = wts; a.weights_size = sizeof wts;
    evo_wire w;
    CHECK_OK(evo_wire_result(&w, 17, &a, 2.75));
    evo_msg_type type;
    evo_reader r;
    int id = 0;
    double ws = 0;
    CHECK_OK(evo_wire_open(w.data, w.len, &type, &r));
    CHECK_OK(evo_unwire_result(&r, &id, &b, &ws));
    CHECK(type == EVO_MSG_RESULT && id == 17 && ws == 2.75, "result header fields");
    CHECK(b.outcome == EVO_OK && b.accuracy == 0.8125f && b.loss == 0.5f && b.steps == 200 && b.seen == 12800 &&
          b.train_seconds == 1.5 && b.eval_seconds == 0.25 && b.build_seconds == 0.125 && b.inherited.copied == 3 &&
          b.inherited.initialised == 1 && b.params == 123456 && b.flops == 9.5e6 && b.latency_ms == 0.375f &&
          b.latency_batch_ms == 0.0625f, "result fields");
    CHECK(b.weights_size == 77 && !memcmp(b.weights, wts, 77), "result weights");
    evo_result_free(&b);
    /* an accuracy outside [0,1] or an unknown outcome is garbage */
    evo_wire_free(&w);
    a.accuracy = 7;
    CHECK_OK(evo_wire_result(&w, 17, &a, 1));
    CHECK_OK(evo_wire_open(w.data, w.len, &type, &r));
    CHECK(evo_unwire_result(&r, &id, &b, &ws) == DN_ERR_PARSE && strstr(dn_last_error(), "accuracy"),
          "accuracy 7 rejected: %s", dn_last_error());
    evo_wire_free(&w);
    a.accuracy = 0.5f;
    a.latency_ms = -1;
    CHECK_OK(evo_wire_result(&w, 17, &a, 1));
    CHECK_OK(evo_wire_open(w.data, w.len, &type, &r));
    CHECK(evo_unwire_result(&r, &id, &b, &ws) == DN_ERR_PARSE && strstr(dn_last_error(), "latency"),
          "latency -1 rejected: %s", dn_last_error());
    evo_wire_free(&w);
    a.latency_ms = 0.375f;
    /* a failed result keeps its reason */
    a.accuracy = 0; a.outcome = EVO_FAILED; a.weights = NULL; a.weights_size = 0;
    snprintf(a.reason, sizeof a.reason, "%s", "training diverged: loss is NaN");
    a.diverged = 1;
    CHECK_OK(evo_wire_result(&w, 18, &a, 1));
    CHECK_OK(evo_wire_open(w.data, w.len, &type, &r));
    CHECK_OK(evo_unwire_result(&r, &id, &b, &ws));
    CHECK(b.outcome == EVO_FAILED && !strcmp(b.reason, a.reason) && !b.weights, "failed result");
    CHECK(b.diverged == 1, "a divergence stays one across the wire (the search retries it)");
    evo_result_free(&b);
    evo_wire_free(&w);
}

static void test_setup_and_ready(void)
{
    evo_setup_msg m = {.data_path = "/data/fashion.data", .holdout = 2000, .max_train = 0, .threads = 3,
                       .seed = 99, .gpus = "0,1"}, n;
    evo_wire w;
    CHECK_OK(evo_wire_setup(&w, &m));
    evo_msg_type type;
    evo_reader r;
    CHECK_OK(evo_wire_open(w.data, w.len, &type, &r));
    CHECK_OK(evo_unwire_setup(&r, &n));
    CHECK(type == EVO_MSG_SETUP && !strcmp(n.data_path, m.data_path) && n.holdout == 2000 && n.threads == 3 &&
          n.seed == 99 && !strcmp(n.gpus, "0,1"), "setup fields");
    evo_setup_msg_free(&n);
    evo_wire_free(&w);
    CHECK_OK(evo_wire_ready(&w, DN_ERR_DATA, "cannot open /data/fashion.data"));
    uint32_t st = 0;
    char *err = NULL;
    CHECK_OK(evo_wire_open(w.data, w.len, &type, &r));
    CHECK_OK(evo_unwire_ready(&r, &st, &err));
    CHECK(type == EVO_MSG_READY && st == DN_ERR_DATA && err && !strcmp(err, "cannot open /data/fashion.data"), "ready");
    free(err);
    evo_wire_free(&w);
}

static void test_bad_headers(void)
{
    evo_wire w;
    evo_task_msg t;
    make_task(&w, &t);
    evo_msg_type type;
    evo_reader r;
    unsigned char *m = malloc(w.len + 1);
    memcpy(m, w.data, w.len);
    m[4] = EVO_WIRE_VERSION + 1;   /* version */
    char speaks[32];
    snprintf(speaks, sizeof speaks, "speaks version %d", EVO_WIRE_VERSION);
    CHECK(evo_wire_open(m, w.len, &type, &r) == DN_ERR_PARSE && strstr(dn_last_error(), speaks),
          "wrong version: %s", dn_last_error());
    m[4] = EVO_WIRE_VERSION;
    m[0] = 'X';
    CHECK(evo_wire_open(m, w.len, &type, &r) == DN_ERR_PARSE && strstr(dn_last_error(), "magic"), "magic: %s",
          dn_last_error());
    m[0] = 'D';
    m[8] = 99;   /* type */
    CHECK(evo_wire_open(m, w.len, &type, &r) == DN_ERR_PARSE && strstr(dn_last_error(), "type 99"), "type: %s",
          dn_last_error());
    m[8] = EVO_MSG_TASK;
    m[w.len] = 0;   /* one trailing byte the header does not count */
    CHECK(evo_wire_open(m, w.len + 1, &type, &r) == DN_ERR_PARSE && strstr(dn_last_error(), "trailing"),
          "trailing byte: %s", dn_last_error());
    /* a payload that claims more than it holds inside a string length */
    CHECK_OK(evo_wire_open(m, w.len, &type, &r));
    size_t cfg_len = 20 + 4 + 8 + 8 * 4 + 8;   /* header, id, seed, 8 u32 fields, erase: the child cfg's u64 length */
    m[cfg_len + 6] = 0xff;
    m[cfg_len + 7] = 0x7f;
    CHECK_OK(evo_wire_open(m, w.len, &type, &r));
    CHECK(evo_unwire_task(&r, &t) == DN_ERR_PARSE && strstr(dn_last_error(), "child cfg"), "huge length: %s",
          dn_last_error());
    free(m);
    evo_wire_free(&w);
    /* random garbage of many sizes: never accepted as a task, never a crash */
    uint64_t seed = 5;
    int accepted = 0;
    for (int k = 0; k < 2000; ++k) {
        size_t n = dn_rand_u64(&seed) % 96;
        unsigned char *g = malloc(n ? n : 1);
        for (size_t i = 0; i < n; ++i) g[i] = (unsigned char)dn_rand_u64(&seed);
        if (n >= 4 && k % 2) memcpy(g, "DNEV", 4);   /* half of them get past the magic */
        if (n >= 8 && k % 4 == 1) { g[4] = EVO_WIRE_VERSION; g[5] = g[6] = g[7] = 0; }
        if (evo_wire_open(g, n, &type, &r) == DN_OK && type == EVO_MSG_TASK && evo_unwire_task(&r, &t) == DN_OK) {
            ++accepted;
            evo_task_msg_free(&t);
        }
        free(g);
    }
    CHECK(accepted == 0, "%d random messages accepted as tasks", accepted);
}

int main(void)
{
    test_task_round_trip();
    test_result_round_trip();
    test_setup_and_ready();
    test_bad_headers();
    TEST_MAIN_END();
}
