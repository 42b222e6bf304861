/*
 * main.c — the darknet command line: dispatches to the subcommand families.
 * The only place in the project that decides to exit.
 */
#include "darknet.h"
#include <stdio.h>
#include <string.h>

int run_classifier(int argc, char **argv);

static void usage(FILE *f)
{
    fprintf(f, "usage: darknet <command> [args]\n"
               "commands:\n"
               "  classifier train|valid|predict <data> <cfg> [weights] [image]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    if (!strcmp(argv[1], "classifier")) return run_classifier(argc, argv);
    fprintf(stderr, "darknet: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
