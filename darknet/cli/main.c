/*
 * main.c — the darknet command line: reads upstream's global flags (-i N,
 * -nogpu; anywhere on the line, as upstream) and dispatches to the
 * subcommand families; classifier gets the two flags, evolve refuses them
 * (it picks devices with -gpus LIST).
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
               "global flags (anywhere on the line, as upstream), for classifier train:\n"
               "  -i N       train on CUDA device N (classifier's -gpus LIST wins)\n"
               "  -nogpu     train on the CPU\n");
    if (dn_gpu_built())
        fprintf(f, "This is a GPU build: without these flags classifier train uses CUDA device 0\n"
                   "when there is one, else the CPU. valid and predict run on the CPU.\n");
    else
        fprintf(f, "This is a CPU build: everything runs on the CPU; -i, -nogpu and -gpus are\n"
                   "accepted (classifier train then says that it trains on the CPU).\n");
}

int main(int argc, char **argv)
{
    int bad = 0, before = argc;
    int index = cli_int(&argc, argv, "-i", 0, &bad);
    int index_given = argc < before;   /* cli_int removed "-i N" */
    int nogpu = cli_flag(&argc, argv, "-nogpu");
    if (!bad && index_given && index < 0) {
        fprintf(stderr, "darknet: -i %d: a device number is >= 0 (-nogpu for the CPU)\n", index);
        bad = 1;
    }
    if (bad) { usage(stderr); return DN_EXIT_USAGE; }
    if (argc < 2) { usage(stderr); return DN_EXIT_USAGE; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) { usage(stdout); return 0; }
    if (!strcmp(cmd, "classifier")) return run_classifier(argc, argv, index_given ? index : -1, nogpu);
    if (!strcmp(cmd, "evolve")) {
        if (index_given || nogpu) {
            fprintf(stderr, "darknet: -i and -nogpu are for classifier train; evolve runs on the CPU "
                            "unless -gpus LIST names devices\n");
            return DN_EXIT_USAGE;
        }
        return evo_main(argc - 1, argv + 1);
    }
    fprintf(stderr, "darknet: unknown command '%s'\n", cmd);
    usage(stderr);
    return DN_EXIT_USAGE;
}
