/*
 * cli.h — declarations shared by the command-line files (darknet/cli/):
 * upstream-style flag handling (flags may appear anywhere and are removed
 * from argv before positionals are read) and the subcommand entry points.
 * Exit codes: 0 success, 1 runtime error, 2 usage error, 130/143 stopped by
 * SIGINT/SIGTERM (after saving a backup).
 */
#ifndef DN_CLI_H
#define DN_CLI_H

#include "darknet.h"
#include <stdint.h>

/* Exit codes: DN_EXIT_OK, DN_EXIT_ERROR, DN_EXIT_USAGE (darknet_toolkit.h). */

/* Each finder removes the flag (and its value) from argv and shrinks *argc.
 * The ones with a value return 0 and set *bad when the value is missing or
 * not a number; *bad is left alone otherwise. */
int cli_flag(int *argc, char **argv, const char *name);
int cli_int(int *argc, char **argv, const char *name, int def, int *bad);
long long cli_llong(int *argc, char **argv, const char *name, long long def, int *bad);
const char *cli_str(int *argc, char **argv, const char *name, const char *def, int *bad);
/* First argv entry (from index `from`) that still looks like a flag, or NULL. */
const char *cli_leftover_flag(int argc, char **argv, int from);

/* Print "darknet: <what>: <dn_last_error()>" on stderr; returns DN_EXIT_ERROR. */
int cli_fail(const char *what);

#define CLI_MAX_GPUS 16

/* The options every classifier subcommand shares, after flag removal. */
typedef struct {
    const char *data, *cfg, *weights, *image;   /* positionals (NULL if absent) */
    int top;            /* -t: top-k (0: the .data's top=)                 */
    int clear;          /* -clear: seen = 0 after loading weights          */
    int quiet;          /* -quiet: no per-batch lines                      */
    int verbose;        /* -verbose: valid prints a line per image         */
    int max_batches;    /* -max_batches: override [net] max_batches (-1: no) */
    int max_rows;       /* -max_rows: use only the first N images (0: all) */
    int gpus;           /* devices asked for: -gpus's count, 1 for -i N, 0: neither */
    int gpu;            /* the first device -gpus lists (or -i N)          */
    int gpu_list[CLI_MAX_GPUS];   /* every device -gpus lists, in order   */
    int index;          /* -i N (-1 when absent or -gpus is given: it wins) */
    int nogpu;          /* -nogpu: the CPU even in a GPU build (wins)      */
    uint64_t seed;      /* -seed                                          */
} cli_classifier_args;

/* argv[1] is "classifier"; index and nogpu are upstream's global -i N (-1:
 * not given) and -nogpu, which main reads from anywhere on the line. */
int run_classifier(int argc, char **argv, int index, int nogpu);
int classifier_train(const cli_classifier_args *a);
int classifier_valid(const cli_classifier_args *a);
int classifier_predict(const cli_classifier_args *a);

/* Shared setup: read the .data and parse the cfg (layer table on stderr when
 * print_table), optionally with a batch override; load weights if given.
 * Returns 0 or an exit code after printing the error. */
int classifier_open(const cli_classifier_args *a, int batch, int print_table,
                    dn_data_config *dc, dn_network **net);

#endif
