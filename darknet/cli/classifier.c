/*
 * classifier.c — `darknet classifier train|valid|predict`: flag handling
 * (upstream's order: flags anywhere, removed before the positionals
 * <data> <cfg> [weights] [image] are read), usage, and the setup the three
 * subcommands share (read the .data, parse the cfg, load weights).
 * The work itself is in classifier_train.c and classifier_eval.c.
 */
#include "cli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: darknet classifier <command> <data> <cfg> [weights] [image] [options]\n"
        "commands:\n"
        "  train   <data> <cfg> [weights]   train on the .data train= split; saves to backup=\n"
        "  valid   <data> <cfg> [weights]   top-1 / top-k accuracy on the valid= split\n"
        "  predict <data> <cfg> <weights> [image]\n"
        "                                   top-k classes of one image (no image: read paths from stdin)\n"
        "options (anywhere on the line):\n"
        "  -t K             top-k for valid/predict (default: top= of the .data, else 1)\n"
        "  -clear           train: start from seen=0 after loading weights\n"
        "  -max_batches N   train: stop after N batches (overrides [net] max_batches; poly uses it too)\n"
        "  -max_rows N      use only the first N images of the split\n"
        "  -seed S          seed for weight initialisation and the batch loader (default 1)\n"
        "  -quiet           train: no per-batch lines (the progress line stays on stderr)\n"
        "  -verbose         valid: a running-accuracy line for every image (default: every\n"
        "                   1000 images and the last)\n"
        "  -gpus 0[,1..]    train on these CUDA devices (a GPU=1 build; a missing device is an\n"
        "                   error; a CPU build trains on the CPU). Several devices train data-\n"
        "                   parallel: each takes batch images per step and the gradients are\n"
        "                   summed, i.e. one network with n x batch; seen counts all images.\n"
        "                   Without -gpus or -i a GPU build trains on device 0 when there is\n"
        "                   one, else on the CPU (with a message), as upstream.\n"
        "  -i N             train on device N (upstream's global flag, also before 'classifier';\n"
        "                   -gpus wins)\n"
        "  -nogpu           train on the CPU (wins over -gpus and -i)\n"
        "                   train says on stderr where it trains; valid and predict run on the CPU.\n"
        "Saves (train): <backup>/<base>_<epoch>.weights when the epoch grows,\n"
        "  <backup>/<base>.backup every 100 batches (upstream: 1000), on SIGINT/SIGTERM and\n"
        "  when an image cannot be loaded mid-run (exit 1),\n"
        "  <backup>/<base>.weights at the end; <base> is the cfg name without directory\n"
        "  and without everything from its first '.'.\n"
        "Exit codes: 0 ok, 1 error, 2 usage, 130/143 interrupted (after saving the backup).\n");
}

int run_classifier(int argc, char **argv, int index, int nogpu)
{
    if (argc < 3) { usage(stderr); return DN_EXIT_USAGE; }
    if (cli_flag(&argc, argv, "-h") + cli_flag(&argc, argv, "--help")) { usage(stdout); return 0; }

    cli_classifier_args a;
    memset(&a, 0, sizeof a);
    int bad = 0;
    a.top = cli_int(&argc, argv, "-t", 0, &bad);
    a.clear = cli_flag(&argc, argv, "-clear");
    a.quiet = cli_flag(&argc, argv, "-quiet");
    a.verbose = cli_flag(&argc, argv, "-verbose");
    a.max_batches = cli_int(&argc, argv, "-max_batches", -1, &bad);
    a.max_rows = cli_int(&argc, argv, "-max_rows", 0, &bad);
    a.seed = (uint64_t)cli_llong(&argc, argv, "-seed", 1, &bad);
    const char *gpus = cli_str(&argc, argv, "-gpus", NULL, &bad);
    if (gpus && dn_gpu_parse_list(gpus, a.gpu_list, CLI_MAX_GPUS, &a.gpus) != DN_OK) {
        fprintf(stderr, "darknet: %s\n", dn_last_error());
        bad = 1;
    }
    a.index = gpus ? -1 : index;   /* -gpus wins */
    a.nogpu = nogpu;
    if (!gpus && index >= 0) { a.gpu_list[0] = index; a.gpus = 1; }   /* upstream's -i N: that device */
    a.gpu = a.gpu_list[0];
    (void)cli_int(&argc, argv, "-c", 0, &bad);   /* upstream's camera index: unused */
    if (a.top < 0 || a.max_rows < 0 || a.max_batches < -1) {
        fprintf(stderr, "darknet: -t, -max_rows and -max_batches must not be negative\n");
        bad = 1;
    }
    const char *left = cli_leftover_flag(argc, argv, 2);
    if (left) { fprintf(stderr, "darknet: unknown option '%s'\n", left); bad = 1; }
    if (bad) { usage(stderr); return DN_EXIT_USAGE; }

    const char *cmd = argv[2];
    a.data = argc > 3 ? argv[3] : NULL;
    a.cfg = argc > 4 ? argv[4] : NULL;
    a.weights = argc > 5 ? argv[5] : NULL;
    a.image = argc > 6 ? argv[6] : NULL;
    int (*fn)(const cli_classifier_args *) = NULL;
    int max_pos = 6;
    if (!strcmp(cmd, "train")) { fn = classifier_train; max_pos = 5; }
    else if (!strcmp(cmd, "valid")) { fn = classifier_valid; max_pos = 5; }
    else if (!strcmp(cmd, "predict")) fn = classifier_predict;
    if (!fn) {
        fprintf(stderr, "darknet classifier: unknown command '%s'\n", cmd);
        usage(stderr);
        return DN_EXIT_USAGE;
    }
    if (!a.data || !a.cfg) {
        fprintf(stderr, "darknet classifier %s: needs <data> and <cfg>\n", cmd);
        usage(stderr);
        return DN_EXIT_USAGE;
    }
    if (argc > max_pos + 1) {
        fprintf(stderr, "darknet classifier %s: unexpected argument '%s'\n", cmd, argv[max_pos + 1]);
        usage(stderr);
        return DN_EXIT_USAGE;
    }
    return fn(&a);
}

int classifier_open(const cli_classifier_args *a, int batch, int print_table,
                    dn_data_config *dc, dn_network **net)
{
    *net = NULL;
    if (dn_data_config_read(a->data, dc) != DN_OK) return cli_fail("reading the .data file");
    dn_parse_options po = {.batch = batch, .seed = a->seed, .quiet = 1};
    if (dn_network_parse_file(a->cfg, &po, net) != DN_OK) {
        dn_data_config_free(dc);
        return cli_fail("reading the cfg");
    }
    if (print_table) dn_network_print(*net, stderr);
    if ((*net)->outputs != dc->classes) {
        fprintf(stderr, "darknet: %s has classes=%d but %s outputs %d values\n", a->data, dc->classes, a->cfg,
                (*net)->outputs);
        goto fail;
    }
    if (a->weights) {
        fprintf(stderr, "Loading weights from %s...", a->weights);
        fflush(stderr);
        if (dn_weights_load(*net, a->weights) != DN_OK) {
            fprintf(stderr, "\n");
            cli_fail("loading weights");
            goto fail;
        }
        fprintf(stderr, "Done!\n");
        if (a->clear) (*net)->seen = 0;
    }
    return 0;
fail:
    dn_network_free(*net);
    *net = NULL;
    dn_data_config_free(dc);
    return DN_EXIT_ERROR;
}
