/*
 * main.c — the darknet command line: removes the global flags (-i N, -nogpu,
 * as upstream) and dispatches to the subcommand families.
 * The only place in the project that decides to exit: every subcommand
 * returns its exit code here.
 */
#include "cli.h"
#include "evo.h"
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: darknet [-i N | -nogpu] <command> [args]\n"
               "commands:\n"
               "  classifier train|valid|predict <data> <cfg> [weights] [image]\n"
               "             (darknet classifier -h for the options)\n"
               "  evolve <data> <seed.cfg> -out DIR | -resume DIR | export DIR | status DIR\n"
               "             evolutionary architecture search (darknet evolve -h)\n"
               "This is a CPU build: -i and -nogpu are accepted and ignored.\n");
}

int main(int argc, char **argv)
{
    int bad = 0;
    (void)cli_int(&argc, argv, "-i", 0, &bad);   /* GPU index: CPU build */
    (void)cli_flag(&argc, argv, "-nogpu");
    if (bad) { usage(stderr); return CLI_EXIT_USAGE; }
    if (argc < 2) { usage(stderr); return CLI_EXIT_USAGE; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) { usage(stdout); return 0; }
    if (!strcmp(cmd, "classifier")) return run_classifier(argc, argv);
    if (!strcmp(cmd, "evolve")) return evo_main(argc - 1, argv + 1);
    fprintf(stderr, "darknet: unknown command '%s'\n", cmd);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
