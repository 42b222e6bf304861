/*
 * mpi.c — `darknet evolve ... -mpi` across machines with Open MPI: rank 0
 * owns the population, selection and the run folder (search.c, one thread
 * per worker rank); ranks 1..K-1 load the data once, then train and score
 * the children rank 0 sends them and send back the result and the trained
 * weights. Messages are evo/wire.c's self-describing byte messages on one
 * tag; a worker that sends anything malformed is dropped by rank 0.
 *
 * Liveness: every rank runs a heartbeat thread (workers beat to rank 0, rank
 * 0 to its active workers, once a second, on a tag of their own). Rank 0
 * gives up on a rank it has heard nothing from for DN_MPI_TIMEOUT seconds
 * (default 60): that rank died, its child is failed and lost, and the search
 * goes on with the others — when mpirun lets the job live on after a rank
 * dies (`mpirun --enable-recovery`; by default Open MPI aborts the whole job,
 * and -resume continues from the run folder). Workers likewise give up on a
 * silent rank 0. After a death nobody calls MPI_Finalize (it would wait for
 * the dead), which rank 0 tells the survivors in its STOP message.
 *
 * Rank 0's threads share MPI under one lock (MPI_THREAD_SERIALIZED) and
 * poll with short sleeps instead of blocking, so a thread waiting for a slow
 * worker never holds MPI away from the others and idle ranks do not spin.
 * Built only with `make MPI=1` (DN_MPI); otherwise the calls say so.
 */
#include "evo_internal.h"
#include <stdlib.h>
#include <string.h>

#ifdef DN_MPI
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define TAG 7                 /* evo/wire.c messages */
#define TAG_BEAT 8            /* heartbeats, consumed by the heartbeat threads */
#define POLL_NS 1000000L      /* 1 ms between polls */
#define HEARTBEAT_S 1
#define DEFAULT_TIMEOUT_S 60.0

static pthread_mutex_t mpi_lock = PTHREAD_MUTEX_INITIALIZER;   /* every MPI call (MPI_THREAD_SERIALIZED) */
static int my_rank, world_size;
static double timeout_s = DEFAULT_TIMEOUT_S;   /* silence after which a peer counts as dead */
static double *last_heard;     /* per rank: when its last heartbeat or message came (under mpi_lock) */
static int peer_lost;          /* a peer died: MPI_Finalize would wait for it, so it is skipped */

/* Rank 0's view of each worker rank. */
enum { RANK_ACTIVE, RANK_DROPPED, RANK_DEAD, RANK_STOPPED };
static unsigned char *rank_state;   /* world_size entries */
static int node_index, node_workers;   /* this rank among the worker ranks of its node, and their count */

int evo_mpi_built(void) { return 1; }

static void nap(void)
{
    struct timespec t = {0, POLL_NS};
    nanosleep(&t, NULL);
}

static dn_status mpi_error(int err, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, text, &len);
    return evo_fail(DN_ERR_IO, "MPI: %s: %.*s", call, len, text);
}

/* Worker ranks on this node and this rank's index among them (rank 0 does
 * not count: it only coordinates). Collective: every rank calls it. */
static dn_status node_layout(void)
{
    MPI_Comm node;
    int err = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, my_rank, MPI_INFO_NULL, &node);
    if (err != MPI_SUCCESS) return mpi_error(err, "MPI_Comm_split_type");
    int node_rank = 0, node_size = 1, is0 = my_rank == 0, has0 = 0;
    MPI_Comm_rank(node, &node_rank);
    MPI_Comm_size(node, &node_size);
    MPI_Allreduce(&is0, &has0, 1, MPI_INT, MPI_SUM, node);
    MPI_Comm_free(&node);
    node_index = node_rank - has0;   /* rank 0, when here, is node rank 0 (ordered by world rank) */
    node_workers = node_size - has0;
    return DN_OK;
}

/* ------------------------------------------------------------ heartbeats
 * One thread per rank: every HEARTBEAT_S seconds it sends an ALIVE message
 * on TAG_BEAT (workers to rank 0; rank 0 to every active worker) and takes
 * in the ones that arrived, noting when each peer was last heard of. The
 * main loops never see heartbeats; they only read last_heard. */

static pthread_t beat_thread;
static int beat_running, beat_stop;
static pthread_mutex_t beat_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t beat_cond = PTHREAD_COND_INITIALIZER;

static void send_beat(int to, const evo_wire *w)
{
    MPI_Request req;
    if (MPI_Isend(w->data, (int)w->len, MPI_BYTE, to, TAG_BEAT, MPI_COMM_WORLD, &req) == MPI_SUCCESS)
        MPI_Request_free(&req);   /* fire and forget: a lost beat only looks like silence */
}

/* Called with mpi_lock held. */
static void beat_once(const evo_wire *w)
{
    if (my_rank == 0) {
        for (int r = 1; r < world_size; ++r)
            if (rank_state[r] == RANK_ACTIVE) send_beat(r, w);
    } else {
        send_beat(0, w);
    }
    for (;;) {
        int flag = 0, n = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_BEAT, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS || !flag) break;
        MPI_Get_count(&st, MPI_BYTE, &n);
        unsigned char buf[64];
        if (n < 0 || n > (int)sizeof buf) n = (int)sizeof buf;   /* not ours: MPI reports the truncation */
        MPI_Recv(buf, n, MPI_BYTE, st.MPI_SOURCE, TAG_BEAT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        last_heard[st.MPI_SOURCE] = dn_time_now();
    }
}

static void *heartbeats(void *arg)
{
    (void)arg;
    evo_wire w;
    evo_wire_begin(&w, EVO_MSG_ALIVE);
    if (evo_wire_finish(&w) != DN_OK) return NULL;
    pthread_mutex_lock(&beat_lock);
    while (!beat_stop) {
        pthread_mutex_unlock(&beat_lock);
        pthread_mutex_lock(&mpi_lock);
        beat_once(&w);
        pthread_mutex_unlock(&mpi_lock);
        pthread_mutex_lock(&beat_lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += HEARTBEAT_S;
        if (!beat_stop) pthread_cond_timedwait(&beat_cond, &beat_lock, &until);
    }
    pthread_mutex_unlock(&beat_lock);
    evo_wire_free(&w);
    return NULL;
}

static void stop_heartbeats(void)
{
    if (!beat_running) return;
    pthread_mutex_lock(&beat_lock);
    beat_stop = 1;
    pthread_cond_signal(&beat_cond);
    pthread_mutex_unlock(&beat_lock);
    pthread_join(beat_thread, NULL);
    beat_running = 0;
}

/* ------------------------------------------------------------ start, end */

dn_status evo_mpi_init(int *argc, char ***argv, int *rank, int *size)
{
    int provided = 0;
    int err = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (err != MPI_SUCCESS) return mpi_error(err, "MPI_Init_thread");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    *rank = my_rank;
    *size = world_size;
    const char *t = getenv("DN_MPI_TIMEOUT");
    if (t && atof(t) > 0) timeout_s = atof(t);
    rank_state = calloc((size_t)world_size, 1);
    last_heard = calloc((size_t)world_size, sizeof *last_heard);
    if (!rank_state || !last_heard) return evo_fail(DN_ERR_NOMEM, "out of memory");
    if (provided < MPI_THREAD_SERIALIZED)
        return evo_fail(DN_ERR_IO, "MPI: the library offers thread level %d, darknet evolve needs MPI_THREAD_SERIALIZED",
                        provided);
    DN_TRY(node_layout());
    if (world_size > 1) beat_running = pthread_create(&beat_thread, NULL, heartbeats, NULL) == 0;
    return DN_OK;
}

void evo_mpi_finalize(void)
{
    stop_heartbeats();
    /* After a peer died, Open MPI's MPI_Finalize (under mpirun --enable-recovery)
     * can wait for it for ever; everything is on disk, so leave without it. */
    if (!peer_lost) MPI_Finalize();
    free(rank_state);
    free(last_heard);
    rank_state = NULL;
    last_heard = NULL;
}

/* ------------------------------------------------------------ transport */

/* Seconds since `peer` was last heard of, counting from `since` at most. */
static double silence(int peer, double since)
{
    double heard = last_heard[peer] > since ? last_heard[peer] : since;
    return dn_time_now() - heard;
}

static dn_status gone(int peer, double patience)
{
    return evo_fail(DN_ERR_IO, "no message from rank %d for %.0f s (DN_MPI_TIMEOUT): it is gone", peer, patience);
}

static dn_status send_msg(int to, const evo_wire *w)
{
    if (w->len > INT_MAX) return evo_fail(DN_ERR_ARG, "MPI: a message of %zu bytes is too large to send", w->len);
    MPI_Request req;
    pthread_mutex_lock(&mpi_lock);
    int err = MPI_Isend(w->data, (int)w->len, MPI_BYTE, to, TAG, MPI_COMM_WORLD, &req);
    pthread_mutex_unlock(&mpi_lock);
    if (err != MPI_SUCCESS) return mpi_error(err, "MPI_Isend");
    double start = dn_time_now();
    for (int done = 0; !done;) {
        pthread_mutex_lock(&mpi_lock);
        err = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        double quiet = silence(to, start);
        pthread_mutex_unlock(&mpi_lock);
        if (err != MPI_SUCCESS) return mpi_error(err, "MPI_Test");
        if (!done && quiet > timeout_s) return gone(to, timeout_s);
        if (!done) nap();
    }
    return DN_OK;
}

/* The next message from rank `from` (malloc'd; *n bytes); an error once the
 * peer has been silent (no message, no heartbeat) for `patience` seconds
 * (0: wait for ever). */
static dn_status recv_msg(int from, double patience, unsigned char **buf, int *n)
{
    *buf = NULL;
    *n = 0;
    double start = dn_time_now();
    for (;;) {
        int flag = 0, err;
        MPI_Status st;
        pthread_mutex_lock(&mpi_lock);
        err = MPI_Iprobe(from, TAG, MPI_COMM_WORLD, &flag, &st);
        if (err == MPI_SUCCESS && flag) {
            MPI_Get_count(&st, MPI_BYTE, n);
            *buf = malloc(*n > 0 ? (size_t)*n : 1);
            err = *buf ? MPI_Recv(*buf, *n, MPI_BYTE, from, TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE) : MPI_ERR_NO_MEM;
            last_heard[from] = dn_time_now();
        }
        double quiet = silence(from, start);
        pthread_mutex_unlock(&mpi_lock);
        if (err != MPI_SUCCESS) {
            free(*buf);
            *buf = NULL;
            return mpi_error(err, "receiving a message");
        }
        if (flag) return DN_OK;
        if (patience > 0 && quiet > patience) return gone(from, patience);
        nap();
    }
}

/* The next message from `from`, its header checked; the reader points into *buf. */
static dn_status recv_open(int from, double patience, unsigned char **buf, evo_msg_type *type, evo_reader *r)
{
    int n;
    DN_TRY(recv_msg(from, patience, buf, &n));
    dn_status s = evo_wire_open(*buf, (size_t)n, type, r);
    if (s != DN_OK) { free(*buf); *buf = NULL; }
    return s;
}

/* ------------------------------------------------------------ rank 0 */

/* Send w (built with status `built`; freed here) to rank, then receive its reply. */
static dn_status exchange(int rank, evo_wire *w, dn_status built, unsigned char **buf, evo_msg_type *type,
                          evo_reader *r)
{
    dn_status s = built == DN_OK ? send_msg(rank, w) : built;
    evo_wire_free(w);
    if (s == DN_OK) s = recv_open(rank, timeout_s, buf, type, r);
    pthread_mutex_lock(&mpi_lock);
    if (s == DN_ERR_IO) rank_state[rank] = RANK_DEAD, peer_lost = 1;   /* silent or unreachable: never again */
    else if (s != DN_OK) rank_state[rank] = RANK_DROPPED;              /* alive but talks garbage */
    pthread_mutex_unlock(&mpi_lock);
    return s;
}

dn_status evo_mpi_connect(int rank, const evo_setup_msg *m)
{
    evo_wire w;
    unsigned char *buf;
    evo_msg_type type;
    evo_reader r;
    DN_TRY(exchange(rank, &w, evo_wire_setup(&w, m), &buf, &type, &r));
    uint32_t status = 0;
    char *error = NULL;
    dn_status s = type == EVO_MSG_READY ? evo_unwire_ready(&r, &status, &error)
                              : evo_fail(DN_ERR_PARSE, "expected a ready message, got type %d", (int)type);
    free(buf);
    if (s == DN_OK && status != DN_OK) s = evo_fail((dn_status)status, "%s", error && *error ? error : "setup failed");
    free(error);
    return s;
}

dn_status evo_mpi_evaluate(int rank, const evo_task_msg *t, evo_result *r, double *worker_seconds)
{
    memset(r, 0, sizeof *r);
    evo_wire w;
    unsigned char *buf;
    evo_msg_type type;
    evo_reader rd;
    DN_TRY(exchange(rank, &w, evo_wire_task(&w, t), &buf, &type, &rd));
    int id = -1;
    dn_status s = type == EVO_MSG_RESULT ? evo_unwire_result(&rd, &id, r, worker_seconds)
                               : evo_fail(DN_ERR_PARSE, "expected a result message, got type %d", (int)type);
    free(buf);
    if (s == DN_OK && id != t->id) {
        evo_result_free(r);
        s = evo_fail(DN_ERR_PARSE, "result for individual %d, but it was sent individual %d", id, t->id);
    }
    return s;
}

/* STOP carries whether to call MPI_Finalize: not after a peer died. */
void evo_mpi_stop_workers(void)
{
    for (int rank = 1; rank < world_size; ++rank) {
        pthread_mutex_lock(&mpi_lock);   /* the heartbeat thread reads the states */
        int alive = rank_state[rank] == RANK_ACTIVE || rank_state[rank] == RANK_DROPPED;
        if (alive) rank_state[rank] = RANK_STOPPED;
        pthread_mutex_unlock(&mpi_lock);
        if (!alive) continue;
        evo_wire w;
        evo_wire_begin(&w, EVO_MSG_STOP);
        evo_wire_u32(&w, !peer_lost);
        if (evo_wire_finish(&w) == DN_OK) send_msg(rank, &w);
        evo_wire_free(&w);
    }
}

/* ------------------------------------------------------------ worker ranks */

typedef struct {
    evo_data data;
    int loaded;
    int threads, gpu;   /* for every evaluation of this rank */
} worker_state;

static dn_status worker_setup(worker_state *ws, evo_reader *r)
{
    evo_setup_msg m;
    DN_TRY(evo_unwire_setup(r, &m));
    if (ws->loaded) { evo_data_free(&ws->data); ws->loaded = 0; }
    dn_status s = evo_data_load(m.data_path, m.holdout, m.seed, m.max_train, &ws->data);
    if (s != DN_OK) s = evo_fail(s, "rank %d: loading %s: %s", my_rank, m.data_path, evo_last_error());
    ws->loaded = s == DN_OK;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = node_workers > 0 ? node_workers : 1;
    ws->threads = m.threads > 0 ? m.threads : (cpus > workers ? (int)(cpus / workers) : 1);   /* workers x threads = cores */
    ws->gpu = 0;
    int dev[EVO_MAX_GPUS], ndev = 0;
    if (s == DN_OK && m.gpus && *m.gpus) {
        s = dn_gpu_parse_list(m.gpus, dev, EVO_MAX_GPUS, &ndev);
        if (s == DN_OK) ws->gpu = 1 + dev[node_index % ndev];
        if (s == DN_OK && dn_gpu_use(ws->gpu - 1) != DN_OK)
            s = evo_fail(DN_ERR_GPU, "rank %d: %s", my_rank, dn_last_error());
    }
    evo_setup_msg_free(&m);
    return s;
}

/* Evaluate one task; the result message goes back to rank 0. */
static dn_status worker_task(worker_state *ws, evo_reader *rd)
{
    double t0 = dn_time_now();
    evo_task_msg t;
    DN_TRY(evo_unwire_task(rd, &t));
    evo_result r;
    memset(&r, 0, sizeof r);
    evo_genome child, parent;
    memset(&child, 0, sizeof child);
    memset(&parent, 0, sizeof parent);
    int have_parent = t.parent_cfg && *t.parent_cfg;
    dn_status s = ws->loaded ? evo_genome_parse(t.child_cfg, "child", &child)
                             : evo_fail(DN_ERR_ARG, "rank %d has no data (no setup)", my_rank);
    if (s == DN_OK && have_parent) s = evo_genome_parse(t.parent_cfg, "parent", &parent);
    if (s == DN_OK) {
        evo_eval_options eo = t.eval;
        eo.threads = ws->threads;
        eo.gpu = ws->gpu;
        evo_evaluate(&child, have_parent ? &parent : NULL, t.parent_weights, t.parent_weights_size, &ws->data, &eo, &r);
    } else {
        r.outcome = EVO_FAILED;
        snprintf(r.reason, sizeof r.reason, "rank %d: %s", my_rank, evo_last_error());
    }
    evo_wire w;
    s = evo_wire_result(&w, t.id, &r, dn_time_now() - t0);
    if (s == DN_OK) s = send_msg(0, &w);
    evo_wire_free(&w);
    evo_result_free(&r);
    evo_genome_free(&child);
    evo_genome_free(&parent);
    evo_task_msg_free(&t);
    return s;
}

int evo_mpi_worker(FILE *log)
{
    worker_state ws;
    memset(&ws, 0, sizeof ws);
    int rc = 0;
    for (int first = 1;; first = 0) {
        unsigned char *buf = NULL;
        evo_msg_type type;
        evo_reader r;
        /* the first message (setup) may wait for rank 0's own start-up; later ones come at once */
        dn_status s = recv_open(0, first ? 0 : timeout_s, &buf, &type, &r);
        if (s != DN_OK) {
            fprintf(log, "darknet evolve: rank %d: %s from rank 0: %s\n", my_rank,
                    s == DN_ERR_IO ? "nothing" : "a bad message", evo_last_error());
            if (s == DN_ERR_IO) peer_lost = 1;
            rc = 1;
            break;
        }
        if (type == EVO_MSG_STOP) {
            uint32_t finalize = 1;
            if (evo_read_u32(&r, "finalize", &finalize) == DN_OK && !finalize) peer_lost = 1;
            free(buf);
            break;
        }
        if (type == EVO_MSG_SETUP) {
            s = worker_setup(&ws, &r);
            evo_wire w;
            if (evo_wire_ready(&w, s, s == DN_OK ? "" : evo_last_error()) == DN_OK) send_msg(0, &w);
            evo_wire_free(&w);
            if (s != DN_OK) fprintf(log, "darknet evolve: %s\n", evo_last_error());
        } else if (type == EVO_MSG_TASK) {
            s = worker_task(&ws, &r);
            if (s != DN_OK) fprintf(log, "darknet evolve: rank %d: %s\n", my_rank, evo_last_error());
        } else {
            fprintf(log, "darknet evolve: rank %d: unexpected message type %d from rank 0\n", my_rank, (int)type);
        }
        free(buf);
    }
    if (ws.loaded) evo_data_free(&ws.data);
    return rc;
}

#else /* no MPI */

static dn_status no_mpi(void) { return evo_fail(DN_ERR_ARG, "this build has no MPI support (rebuild with make MPI=1)"); }
int evo_mpi_built(void) { return 0; }
dn_status evo_mpi_init(int *argc, char ***argv, int *rank, int *size)
{
    (void)argc; (void)argv;
    *rank = 0;
    *size = 1;
    return no_mpi();
}
void evo_mpi_finalize(void) {}
dn_status evo_mpi_connect(int rank, const evo_setup_msg *m) { (void)rank; (void)m; return no_mpi(); }
dn_status evo_mpi_evaluate(int rank, const evo_task_msg *t, evo_result *r, double *worker_seconds)
{
    (void)rank; (void)t; (void)worker_seconds;
    memset(r, 0, sizeof *r);
    return no_mpi();
}
void evo_mpi_stop_workers(void) {}
int evo_mpi_worker(FILE *log) { (void)log; return 1; }
#endif
