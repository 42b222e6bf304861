/*
 * args.c — upstream-style command-line flags: a flag may appear anywhere;
 * finding it removes it (and its value) from argv, so that what is left are
 * the positional arguments in order.
 */
#include "cli.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void remove_args(int *argc, char **argv, int at, int count)
{
    for (int i = at; i + count <= *argc; ++i) argv[i] = argv[i + count];
    *argc -= count;
}

static int find(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; ++i)
        if (argv[i] && strcmp(argv[i], name) == 0) return i;
    return -1;
}

int cli_flag(int *argc, char **argv, const char *name)
{
    int i, found = 0;
    while ((i = find(*argc, argv, name)) >= 0) { remove_args(argc, argv, i, 1); found = 1; }
    return found;
}

const char *cli_str(int *argc, char **argv, const char *name, const char *def, int *bad)
{
    int i = find(*argc, argv, name);
    if (i < 0) return def;
    if (i + 1 >= *argc) {
        fprintf(stderr, "darknet: %s needs a value\n", name);
        *bad = 1;
        remove_args(argc, argv, i, 1);
        return def;
    }
    const char *v = argv[i + 1];
    remove_args(argc, argv, i, 2);
    return v;
}

long long cli_llong(int *argc, char **argv, const char *name, long long def, int *bad)
{
    int missing = 0;
    const char *v = cli_str(argc, argv, name, NULL, &missing);
    if (missing) { *bad = 1; return def; }
    if (!v) return def;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno) {
        fprintf(stderr, "darknet: %s wants an integer, not '%s'\n", name, v);
        *bad = 1;
        return def;
    }
    return x;
}

int cli_int(int *argc, char **argv, const char *name, int def, int *bad)
{
    long long x = cli_llong(argc, argv, name, def, bad);
    if (x < -2147483647LL || x > 2147483647LL) {
        fprintf(stderr, "darknet: %s value %lld is out of range\n", name, x);
        *bad = 1;
        return def;
    }
    return (int)x;
}

const char *cli_leftover_flag(int argc, char **argv, int from)
{
    for (int i = from; i < argc; ++i)
        if (argv[i][0] == '-' && argv[i][1] != 0) return argv[i];
    return NULL;
}

int cli_fail(const char *what)
{
    const char *msg = dn_last_error();
    fprintf(stderr, "darknet: %s: %s\n", what, msg && *msg ? msg : "failed");
    return DN_EXIT_ERROR;
}
