/*
 * mpi_rogue.c — a misbehaving worker rank for tests/test_evolve_mpi.sh, run
 * beside real ranks with MPMD: `mpirun -np 2 darknet evolve ... -mpi : -np 1
 * mpi_rogue MODE`. It answers setup like a worker, then answers its first
 * task with a bad message (MODE version: a result of another wire version;
 * truncated: a result cut short; garbage: random bytes), and waits to be
 * stopped. Rank 0 must drop it with a clear message and finish the search
 * with the other workers. It mirrors the collective calls of evo/mpi.c's
 * start-up (the node layout) so the job does not hang.
 */
#include "evo_internal.h"
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void send_bytes(const void *p, size_t n) { MPI_Send((void *)p, (int)n, MPI_BYTE, 0, 7, MPI_COMM_WORLD); }

static evo_msg_type receive(unsigned char **buf, int *n)
{
    MPI_Status st;
    MPI_Probe(0, 7, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_BYTE, n);
    *buf = malloc(*n > 0 ? (size_t)*n : 1);
    MPI_Recv(*buf, *n, MPI_BYTE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    return *n >= 12 ? (evo_msg_type)(*buf)[8] : 0;
}

static void bad_result(const char *mode)
{
    evo_result r;
    memset(&r, 0, sizeof r);
    evo_wire w;
    evo_wire_result(&w, 1, &r, 0);
    if (!strcmp(mode, "version")) {
        w.data[4] = EVO_WIRE_VERSION + 1;
        send_bytes(w.data, w.len);
    } else if (!strcmp(mode, "truncated")) {
        send_bytes(w.data, w.len - 9);
    } else {
        unsigned char junk[64];
        for (size_t i = 0; i < sizeof junk; ++i) junk[i] = (unsigned char)(i * 37 + 11);
        send_bytes(junk, sizeof junk);
    }
    evo_wire_free(&w);
}

int main(int argc, char **argv)
{
    int provided, rank;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *mode = argc > 1 ? argv[1] : "garbage";
    MPI_Comm node;   /* evo/mpi.c's node_layout: the same collectives */
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    int zero = 0, sum = 0;
    MPI_Allreduce(&zero, &sum, 1, MPI_INT, MPI_SUM, node);
    MPI_Comm_free(&node);
    for (int bad_sent = 0;;) {
        unsigned char *buf;
        int n;
        evo_msg_type t = receive(&buf, &n);
        free(buf);
        if (t == EVO_MSG_STOP) break;
        if (t == EVO_MSG_SETUP) {
            evo_wire w;
            evo_wire_ready(&w, DN_OK, "");
            send_bytes(w.data, w.len);
            evo_wire_free(&w);
        } else if (t == EVO_MSG_TASK && !bad_sent) {
            bad_result(mode);
            bad_sent = 1;
        }
    }
    fprintf(stderr, "mpi_rogue: rank %d stopped\n", rank);
    MPI_Finalize();
    return 0;
}
