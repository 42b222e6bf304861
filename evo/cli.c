/*
 * cli.c — `darknet evolve`: start a search, resume one, export an individual,
 * show the state of a run folder. Flags are described once, in a table that
 * also prints the help (default, meaning, the paper's value). Returns an exit
 * code (0 ok, 1 runtime error, 2 usage error); only main() exits.
 *
 *   darknet evolve <data> <seed.cfg> -out DIR [flags]   start a search
 *   darknet evolve -resume DIR                          continue it
 *   darknet evolve export DIR [-id N] [-out PREFIX]     winner -> Darknet files
 *   darknet evolve finish DIR [-hours H | -epochs E]    final training of the winner (and the front)
 *   darknet evolve status DIR                           population, budget, best
 *   darknet evolve report DIR [-out FILE] [-id N,...]   HTML page: progress, lineage, diagrams
 */
#include "evo_internal.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


/* ------------------------------------------------------------ help */

/* The options come from one table (options.c); the defaults fit a search of
 * a few minutes on 2 CPU cores (`make demo`), the paper's values are in the help. */
static void usage(FILE *out)
{
    fprintf(out,
        "usage: darknet evolve <data> <seed.cfg> -out DIR [options]   start a search\n"
        "       darknet evolve -resume DIR [-evals N] [-hours H] [-threads N] [-gpus LIST] [-workers N]\n"
        "                                  [-patience SHARE] [-report-every S] [-final-front K]\n"
        "                                                            continue it (other options from DIR/options.cfg)\n"
        "       darknet evolve export DIR [-id N] [-out PREFIX]      write PREFIX.cfg/.weights/.data/.labels\n"
        "                                                            (default: the best ever, DIR/best/best)\n"
        "       darknet evolve export DIR -filters F -cells N        cell searches: the winner's cells at another\n"
        "                                                            width/depth, to train with darknet classifier train\n"
        "       darknet evolve export DIR -pareto [-out FOLDER]      -objective costs: every archived model, with its\n"
        "                                                            test accuracy, and pareto.tsv (default DIR/pareto/)\n"
        "       darknet evolve export DIR -max-flops F | -max-params P | -max-latency MS [-out PREFIX]\n"
        "                                                            the most accurate kept model within the budget\n"
        "       darknet evolve finish DIR [-id N | -front K | -max-flops F | -max-params P | -max-latency MS]\n"
        "                                [-hours H | -epochs E] [-lr R] [-decay D] [-from inherit|scratch]\n"
        "                                [-augment 0|1|auto] [-erase P] [-width K|auto | -filters F -cells N] [-again]\n"
        "                                                            final training of the winner (or N) on all\n"
        "                                                            training images into DIR/final/, then its test\n"
        "                                                            accuracy; export then writes that model; with\n"
        "                                                            -objective costs also K-1 cheaper models of the\n"
        "                                                            front, or the best within a budget\n"
        "       darknet evolve status DIR                            population, budget, best (read-only)\n"
        "       darknet evolve report DIR [-out FILE] [-id N,...]    HTML report (read-only; default\n"
        "                                                            DIR/report/index.html): progress plot, the\n"
        "                                                            best's lineage, architecture diagrams of it,\n"
        "                                                            a few ancestors and each -id, summary\n"
        "Evolutionary architecture search. A plain seed cfg grows by mutation (Real et al.,\n"
        "\"Large-Scale Evolution of Image Classifiers\", 2017; weight inheritance); a seed with\n"
        "[cell] sections is a NASNet template whose normal and reduction cells evolve (Real\n"
        "et al., \"Regularized Evolution for Image Classifier Architecture Search\", 2019).\n"
        "-algo: tournament (pairwise, the worse dies), aging (best of -sample S is the parent,\n"
        "the oldest dies) or random (fresh samples; the baseline). Either algorithm, either space.\n"
        "options (defaults fit a short run on 2 CPU cores; [paper] gives the paper's setting):\n");
    int nopt;
    const evo_option_spec *table = evo_option_table(&nopt);
    for (int i = 0; i < nopt; ++i) {
        const evo_option_spec *f = &table[i];
        if (!f->flag) continue;   /* the positional <data> and <seed.cfg> */
        char head[48];
        snprintf(head, sizeof head, "%s %s", f->flag, f->arg);
        fprintf(out, "  %-18s %s (", head, f->help);
        if (!f->key) {   /* -out: the one flag a search needs (not saved) */
            fprintf(out, "required");
        } else {
            fprintf(out, "default ");
            evo_option_print_default(out, f);
        }
        fprintf(out, ")%s%s%s\n", f->paper ? " [paper: " : "", f->paper ? f->paper : "", f->paper ? "]" : "");
    }
    fprintf(out,
        "  The paper's seed is the trivial model of cfg/evo-trivial.cfg: global average pool,\n"
        "  connected, softmax, learning rate 0.1 (evolved by alter_learning_rate).\n"
        "  A cell template: cfg/evo-nasnet.cfg (Regularized Evolution's paper: P 100, S 25,\n"
        "  20000 cycles, B 5, no weight inheritance).\n"
        "Run folder DIR: options.cfg, seed.cfg, events.jsonl (one JSON line per evaluation),\n"
        "  each individual's cfg and the weights of the living ones. A killed search loses\n"
        "  only the evaluation in flight: continue it with -resume. One search or resume\n"
        "  at a time writes a folder (others are refused); recovery moves files it cannot\n"
        "  explain to DIR/orphans/, never deletes them.\n"
        "Exit codes: 0 ok, 1 error, 2 usage.\n");
}

/* ------------------------------------------------------------ number parsing */

static int bad_value(const char *flag, const char *want, const char *v)
{
    fprintf(stderr, "darknet evolve: %s wants %s, not '%s'\n", flag, want, v);
    return -1;
}

static int parse_int(const char *flag, const char *v, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < INT_MIN || x > INT_MAX) return bad_value(flag, "an integer", v);
    *out = (int)x;
    return 0;
}

/* One flag's value into o; -1 after printing what is wrong. */
static int set_flag(evo_options *o, const evo_option_spec *f, const char *v)
{
    if (evo_option_set(o, f, v) == 0) return 0;
    if (f->type == EVO_OPT_STR) { fprintf(stderr, "darknet evolve: out of memory\n"); return -1; }
    return bad_value(f->flag, evo_option_wants(f), v);
}

static int looks_like_flag(const char *a) { return a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9'); }

/* Flags of the table anywhere on the line; the rest are positionals, in
 * order. Returns 0, or -1 after printing the problem. */
static int parse_start_args(int argc, char **argv, evo_options *o, const char **pos, int *npos, int maxpos)
{
    *npos = 0;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (!looks_like_flag(a)) {
            if (*npos == maxpos) { fprintf(stderr, "darknet evolve: unexpected argument '%s'\n", a); return -1; }
            pos[(*npos)++] = a;
            continue;
        }
        const evo_option_spec *f = evo_option_by_flag(a);
        if (!f) { fprintf(stderr, "darknet evolve: unknown option '%s' (darknet evolve -h lists them)\n", a); return -1; }
        if (i + 1 >= argc) { fprintf(stderr, "darknet evolve: %s needs a value\n", a); return -1; }
        if (set_flag(o, f, argv[++i])) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ checks */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "darknet evolve: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return -1;
}

static int check_algo(const char *algo)
{
    if (algo && (!strcmp(algo, "tournament") || !strcmp(algo, "aging") || !strcmp(algo, "random"))) return 0;
    return usage_error("-algo '%s': unknown algorithm; use tournament, aging or random", algo ? algo : "");
}

static int check_limits(const evo_limits *l)
{
    if (l->max_layers < 0 || l->max_params < 0 || l->max_flops < 0 || l->max_memory < 0)
        return usage_error("the -max-* limits must be >= 0 (0: no limit)");
    return 0;
}

/* -gpus LIST: well formed, a GPU build, devices that exist. */
static int check_gpus(const char *list)
{
    int dev[EVO_MAX_GPUS], n;
    if (!list || !*list) return 0;
    if (dn_gpu_parse_list(list, dev, EVO_MAX_GPUS, &n) != DN_OK) return usage_error("%s", dn_last_error());
    if (!dn_gpu_built()) return usage_error("-gpus: this build has no GPU support (make GPU=1)");
    int have = dn_gpu_count();
    for (int i = 0; i < n; ++i)
        if (dev[i] >= have)
            return usage_error("-gpus %s: device %d does not exist (%d CUDA device%s)", list, dev[i], have,
                               have == 1 ? "" : "s");
    return 0;
}

static int one_of(const char *v, const char *a, const char *b, const char *c)
{
    return v && (!strcmp(v, a) || !strcmp(v, b) || (c && !strcmp(v, c)));
}

/* The schedule, the mutation set, the promotions and the final training. */
static int check_fidelity(const evo_options *o)
{
    evo_mutation_set set;
    if (!one_of(o->schedule, "cosine", "constant", "cfg"))
        return usage_error("-schedule '%s': use cosine, constant or cfg", o->schedule ? o->schedule : "");
    if (evo_mutation_set_from_name(o->mutations, &set) != DN_OK)
        return usage_error("-mutations '%s': use paper, morph or all", o->mutations ? o->mutations : "");
    if (o->rungs < 1 || o->rungs > 8) return usage_error("-rungs %d: must be 1 .. 8 (1: no promotions)", o->rungs);
    if (o->eta < 2 || o->eta > 16) return usage_error("-eta %d: must be 2 .. 16", o->eta);
    if (o->val_images < 0) return usage_error("-val-images %d: must be >= 0 (0: the whole holdout)", o->val_images);
    if (!(o->final_share >= 0 && o->final_share < 1))
        return usage_error("-final %g: the share of -hours for final training must be in [0, 1)", o->final_share);
    if (!(o->patience >= 0 && o->patience <= 1))
        return usage_error("-patience %g: the share of the search's time its best may stand must be in [0, 1] "
                           "(0: search to the end)", o->patience);
    if (!(o->final_epochs > 0)) return usage_error("-final-epochs %g: must be > 0", o->final_epochs);
    if (!one_of(o->final_from, "inherit", "scratch", NULL))
        return usage_error("-final-from '%s': use inherit or scratch", o->final_from ? o->final_from : "");
    if (evo_parse_width(o->final_width) == 0)
        return usage_error("-final-width '%s': use auto or a number from 1 to %d", o->final_width ? o->final_width : "",
                           EVO_MAX_WIDTH);
    if (!o->augment || (!one_of(o->augment, "none", "auto", "final") && strcmp(o->augment, "all") != 0))
        return usage_error("-augment '%s': use none, auto, final or all", o->augment ? o->augment : "");
    if (!(o->erase >= 0 && o->erase <= 1))
        return usage_error("-erase %g: random erasing's probability must be in [0, 1] (0: none)", o->erase);
    if (!(o->final_decay >= 0 && o->final_decay < 1))
        return usage_error("-final-decay %g: must be in [0, 1) (0: the winner's own decay)", o->final_decay);
    if (o->final_front < 1 || o->final_front > 8)
        return usage_error("-final-front %d: must be 1 .. 8 (1: the winner only)", o->final_front);
    int costs;
    if (evo_objective_parse(o->objective, &costs) != DN_OK) return usage_error("%s", evo_last_error());
    if (!(o->report_every >= 0)) return usage_error("-report-every %g: must be >= 0 seconds", o->report_every);
    if (o->latency_threads < 1 || o->latency_threads > 64)
        return usage_error("-latency-threads %d: must be 1 .. 64", o->latency_threads);
    return 0;
}

static int mpi_workers;   /* -mpi: the worker ranks (size - 1); 0 without MPI */

/* Unset -workers (0): one per listed GPU. On the CPU without MPI, with
 * -hours, one per CPU up to a quarter of the population: a worker's
 * single-threaded evaluation wastes less than one evaluation split over the
 * CPUs, and a time budget is not reproducible anyway. Else 1: -seed then
 * reproduces the search, and a measured latency has the CPUs to itself. */
static void default_workers(evo_options *o)
{
    int dev[EVO_MAX_GPUS], n = 0, costs = 0;
    if (o->workers != 0) return;
    if (o->gpus && *o->gpus && dn_gpu_parse_list(o->gpus, dev, EVO_MAX_GPUS, &n) != DN_OK) n = 0;
    if (evo_objective_parse(o->objective, &costs) != DN_OK) costs = 0;
    if (n == 0 && !mpi_workers && o->hours > 0 && !(costs & EVO_COST_LATENCY)) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN), most = o->population / 4 < 64 ? o->population / 4 : 64;
        n = (int)(cpus < most ? cpus : most);
    }
    o->workers = n > 0 ? n : 1;
}

/* Values that make no sense, and features of later issues. */
static int check_options(const evo_options *o)
{
    if (check_algo(o->algo)) return -1;
    if (o->workers < 1 || o->workers > 64) return usage_error("-workers %d: must be 1 .. 64 (0: automatic)", o->workers);
    if (o->population < 2) return usage_error("-population %d: needs at least 2 individuals", o->population);
    if (o->evals < 0) return usage_error("-evals %d: must be >= 0", o->evals);
    if (o->hours < 0) return usage_error("-hours %g: must be >= 0", o->hours);
    if (o->evals == 0 && o->hours == 0) return usage_error("no budget: give -evals N or -hours H");
    if (o->steps < 1) return usage_error("-steps %d: must be >= 1", o->steps);
    if (o->batch < 1) return usage_error("-batch %d: must be >= 1", o->batch);
    if (o->holdout < 1) return usage_error("-holdout %d: must be >= 1", o->holdout);
    if (o->inherit < -1 || o->inherit > 1) return usage_error("-inherit %d: must be 0 or 1", o->inherit);
    if (o->sample < 1) return usage_error("-sample %d: must be >= 1", o->sample);
    if (o->blocks < 0 || o->blocks > EVO_MAX_BLOCKS)
        return usage_error("-blocks %d: must be 1 .. %d (0: the template's)", o->blocks, EVO_MAX_BLOCKS);
    unsigned mask;
    if (evo_ops_parse(o->ops, &mask) != DN_OK) return usage_error("-ops: %s", evo_last_error());
    if (o->max_train < 0) return usage_error("-max-train %d: must be >= 0", o->max_train);
    if (o->max_train > 0 && o->max_train <= o->holdout)
        return usage_error("-max-train %d: must be larger than -holdout %d", o->max_train, o->holdout);
    if (o->threads < 0) return usage_error("-threads %d: must be >= 0", o->threads);
    if (check_gpus(o->gpus)) return -1;
    if (check_fidelity(o)) return -1;
    return check_limits(&o->limits);
}

/* "darknet evolve: WHAT: MSG", without WHAT when MSG names it already. */
static int runtime_error(const char *what, const char *msg)
{
    if (!msg || !*msg) msg = "failed";
    if (strstr(msg, what)) fprintf(stderr, "darknet evolve: %s\n", msg);
    else fprintf(stderr, "darknet evolve: %s: %s\n", what, msg);
    return DN_EXIT_ERROR;
}

/* The seed builds, fits the limits and has one output per class of the data. */
static int check_seed_net(const evo_genome *g, const evo_options *o, int classes, const char *path)
{
    evo_cost cost;
    if (evo_genome_check(g, &o->limits, &cost) != DN_OK) return runtime_error(path, evo_last_error());
    char *text = NULL;
    if (evo_genome_emit(g, 0, &text) != DN_OK) return runtime_error(path, evo_last_error());
    dn_parse_options po = { .batch = o->batch, .seed = 1, .quiet = 1, .shapes_only = 1 };
    dn_network *net = NULL;
    dn_status s = dn_network_parse_string(text, path, &po, &net);
    free(text);
    if (s != DN_OK) return runtime_error(path, dn_last_error());
    int outputs = net->outputs;
    dn_network_free(net);
    if (outputs != classes) {
        fprintf(stderr, "darknet evolve: %s outputs %d classes but %s has classes=%d\n", path, outputs,
                o->data_path, classes);
        return DN_EXIT_ERROR;
    }
    return DN_EXIT_OK;
}

/* A cell template: its errors with file:line, then one random architecture
 * expanded must build, fit the limits and match the classes. */
static int check_template(const char *text, const evo_options *o, int classes)
{
    evo_genome t, x;
    if (evo_template_parse(text, o->seed_cfg_path, &t) != DN_OK) return runtime_error("seed", evo_last_error());
    unsigned mask;
    evo_cells c;
    uint64_t rng = o->seed ? o->seed : 1;
    int rc = DN_EXIT_OK;
    if (evo_ops_parse(o->ops, &mask) != DN_OK) rc = usage_error("-ops: %s", evo_last_error());
    if (rc == DN_EXIT_OK) {
        evo_cells_random(&c, o->blocks > 0 ? o->blocks : evo_template_blocks(&t), mask, &rng);
        if (evo_cells_expand(&t, &c, &x) != DN_OK) rc = runtime_error(o->seed_cfg_path, evo_last_error());
        else {
            rc = check_seed_net(&x, o, classes, o->seed_cfg_path);
            evo_genome_free(&x);
        }
    }
    evo_genome_free(&t);
    return rc;
}

/* Read the .data and the seed before anything is created. */
static int check_inputs(const evo_options *o, char **seed_text)
{
    dn_data_config dc;
    memset(&dc, 0, sizeof dc);
    if (dn_data_config_read(o->data_path, &dc) != DN_OK) return runtime_error(o->data_path, dn_last_error());
    int classes = dc.classes;
    dn_data_config_free(&dc);
    if (dn_read_file(o->seed_cfg_path, seed_text, NULL) != DN_OK) return runtime_error("seed", evo_last_error());
    evo_genome g;
    if (evo_genome_parse(*seed_text, o->seed_cfg_path, &g) != DN_OK)
        return runtime_error("seed", evo_last_error());
    if (!evo_genome_has_cells(&g)) {
        int rc = check_seed_net(&g, o, classes, o->seed_cfg_path);
        evo_genome_free(&g);
        return rc;
    }
    evo_genome_free(&g);
    return check_template(*seed_text, o, classes);
}

/* Absolute path of an existing file, so that -resume works from anywhere. */
static int absolutize(char **path)
{
    char *abs = realpath(*path, NULL);
    if (!abs) { fprintf(stderr, "darknet evolve: %s: %s\n", *path, strerror(errno)); return -1; }
    free(*path);
    *path = abs;
    return 0;
}

static int set_str(char **dst, const char *v)
{
    char *s = strdup(v);
    if (!s) return -1;
    free(*dst);
    *dst = s;
    return 0;
}

/* ------------------------------------------------------------ commands */

static int search_and_close(evo_store *st, evo_options *o, evo_state *state)
{
    o->mpi_workers = mpi_workers;
    dn_status s = evo_search_run(st, o, state, stdout);
    int rc = s == DN_OK ? DN_EXIT_OK : runtime_error("search", evo_last_error());
    evo_store_close(st);
    return rc;
}

static int cmd_start(int argc, char **argv)
{
    evo_options o;
    evo_options_defaults(&o);
    const char *pos[2];
    int npos, rc = DN_EXIT_USAGE;
    char *seed_text = NULL;
    if (parse_start_args(argc, argv, &o, pos, &npos, 2)) goto out;
    if (npos != 2) { fprintf(stderr, "darknet evolve: needs <data> and <seed.cfg> (darknet evolve -h)\n"); goto out; }
    default_workers(&o);
    if (!o.out_dir || !*o.out_dir) { fprintf(stderr, "darknet evolve: needs -out DIR, the run folder to create\n"); goto out; }
    if (check_options(&o)) goto out;
    if (set_str(&o.data_path, pos[0]) || set_str(&o.seed_cfg_path, pos[1])) {
        rc = runtime_error("options", "out of memory");
        goto out;
    }
    rc = check_inputs(&o, &seed_text);
    if (rc != DN_EXIT_OK) goto out;
    rc = DN_EXIT_ERROR;
    if (absolutize(&o.data_path) || absolutize(&o.seed_cfg_path)) goto out;
    evo_store *st = NULL;
    if (evo_store_create(o.out_dir, &o, seed_text, &st) != DN_OK) {
        rc = runtime_error(o.out_dir, evo_last_error());
        goto out;
    }
    evo_state state;
    memset(&state, 0, sizeof state);
    rc = search_and_close(st, &o, &state);
    evo_state_free(&state);
out:
    free(seed_text);
    evo_options_free(&o);
    return rc;
}

/* -resume DIR [flags the option table marks resume]: the other options come
 * from DIR/options.cfg; the budget, -patience, threads, devices, workers, the
 * live report's period and -final-front may be changed (and are saved). A new -gpus LIST without -workers gives one worker
 * per device. */
static int resume_overrides(int argc, char **argv, const char **dir, evo_options *o, int *changed)
{
    *dir = NULL;
    *changed = 0;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "-resume")) {
            if (i + 1 >= argc || *dir) return usage_error("-resume takes one run folder: darknet evolve -resume DIR");
            *dir = argv[++i];
            continue;
        }
        const evo_option_spec *f = evo_option_by_flag(argv[i]);
        if (!f || !f->resume || i + 1 >= argc) {
            char list[512] = "";
            int n;
            const evo_option_spec *t = evo_option_table(&n);
            for (int k = 0; k < n; ++k)
                if (t[k].resume && strlen(list) + 32 < sizeof list)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s %s", *list ? ", " : "", t[k].flag,
                             t[k].arg);
            return usage_error("-resume DIR accepts only %s (the other options come from DIR/options.cfg), not '%s'",
                               list, argv[i]);
        }
        if (set_flag(o, f, argv[i + 1])) return -1;
        ++i;
        *changed = 1;
    }
    return *dir ? 0 : usage_error("-resume needs the run folder");
}

/* A new budget below what the search has already spent is refused (it
 * would end the search at once and be saved). */
static int check_budget_not_spent(const evo_options *over, const evo_state *s)
{
    if (over->evals > 0 && over->evals < s->evals)
        return usage_error("-evals %d: the search has already done %d evaluations; give more (or 0 with -hours: no "
                           "limit on evaluations); nothing was changed", over->evals, s->evals);
    if (over->hours > 0 && over->hours * 3600.0 < s->elapsed)
        return usage_error("-hours %g: the search has already run %.3g hours; give more (or 0 with -evals: no time "
                           "limit); nothing was changed", over->hours, s->elapsed / 3600.0);
    return 0;
}

static int cmd_resume(int argc, char **argv)
{
    const char *dir;
    int changed;
    evo_options over, o;
    memset(&o, 0, sizeof o);
    evo_options_defaults(&over);
    over.evals = -1; over.hours = -1; over.threads = -1; over.workers = -1;
    over.report_every = -1; over.final_front = -1; over.patience = -1;
    if (resume_overrides(argc, argv, &dir, &over, &changed)) { evo_options_free(&over); return DN_EXIT_USAGE; }
    evo_state state;
    memset(&state, 0, sizeof state);
    evo_store *st = NULL;
    int rc;
    if (evo_store_open(dir, &o, &state, &st) != DN_OK) {
        rc = runtime_error(dir, evo_last_error());
    } else {
        if (over.evals >= 0) o.evals = over.evals;
        if (over.hours >= 0) o.hours = over.hours;
        if (over.threads >= 0) o.threads = over.threads;
        if (over.gpus) {   /* "" (-gpus "") moves the search back to the CPU */
            free(o.gpus);
            o.gpus = over.gpus;
            over.gpus = NULL;
            if (over.workers < 0) o.workers = 0;
        }
        if (over.workers >= 0) o.workers = over.workers;
        if (over.report_every >= 0) o.report_every = over.report_every;
        if (over.final_front >= 0) o.final_front = over.final_front;
        if (over.patience >= 0) o.patience = over.patience;
        default_workers(&o);
        if (check_budget_not_spent(&over, &state)) { evo_store_close(st); rc = DN_EXIT_USAGE; }
        else if (check_options(&o)) { evo_store_close(st); rc = DN_EXIT_ERROR; }
        else if (changed && evo_store_save_options(st, &o) != DN_OK) {
            rc = runtime_error(dir, evo_last_error());
            evo_store_close(st);
        } else {
            rc = search_and_close(st, &o, &state);
        }
    }
    evo_state_free(&state);
    evo_options_free(&o);
    evo_options_free(&over);
    return rc;
}

/* ------------------------------------------------------------ finish */

/* A budget flag's value: a number > 0 (FLOPs and params may carry k, M, G). */
static int parse_budget(const char *flag, const char *v, double *out)
{
    char *end = NULL;
    double x = strtod(v, &end);
    double scale = end && *end == 'k' ? 1e3 : end && *end == 'M' ? 1e6 : end && *end == 'G' ? 1e9 : 1;
    if (end && scale != 1 && strcmp(flag, "-max-latency")) ++end;
    if (end == v || !end || *end || !isfinite(x) || !(x > 0))
        return usage_error("%s '%s': want a number above 0 (e.g. %s)", flag, v,
                           strcmp(flag, "-max-latency") ? "2.5M or 250000" : "0.5, in milliseconds");
    *out = x * scale;
    return 0;
}

static int budget_set(const evo_budget *b) { return b->flops > 0 || b->params > 0 || b->latency > 0; }

typedef struct {
    const char *dir;
    evo_finish_options fo;
    double hours;
    int again, from_set, aug_set, erase_set, width_set;
    int front;                 /* -front K; 0: the run's -final-front */
    evo_budget budget;         /* -max-flops/-max-params/-max-latency: the model within it */
} finish_args;

static int parse_finish_args(int argc, char **argv, finish_args *f)
{
    for (int i = 2; i < argc; ++i) {
        const char *a = argv[i];
        if (!strcmp(a, "-again")) { f->again = 1; continue; }
        if (!looks_like_flag(a)) {
            if (f->dir) return usage_error("finish: unexpected argument '%s'", a);
            f->dir = a;
            continue;
        }
        if (i + 1 >= argc) return usage_error("finish: %s needs a value", a);
        const char *v = argv[++i];
        double *limit = !strcmp(a, "-max-flops") ? &f->budget.flops : !strcmp(a, "-max-params") ? &f->budget.params
                      : !strcmp(a, "-max-latency") ? &f->budget.latency : NULL;
        if (limit) {
            if (parse_budget(a, v, limit)) return 1;
            continue;
        }
        char *end = NULL;
        double x = strtod(v, &end);
        int num = end != v && !*end && isfinite(x);
        evo_finish_options *fo = &f->fo;
        if (!strcmp(a, "-id") && num && x >= 0 && x == (int)x) fo->id = (int)x;
        else if (!strcmp(a, "-hours") && num && x > 0) f->hours = x;
        else if (!strcmp(a, "-epochs") && num && x > 0) fo->epochs = x;
        else if (!strcmp(a, "-lr") && num && x > 0 && x < 1e30) fo->lr = (float)x;
        else if (!strcmp(a, "-decay") && num && x > 0 && x < 1) fo->decay = x;
        else if (!strcmp(a, "-filters") && num && x >= 1 && x == (int)x) fo->filters = (int)x;
        else if (!strcmp(a, "-cells") && num && x >= 1 && x == (int)x) fo->cells = (int)x;
        else if (!strcmp(a, "-front") && num && x >= 1 && x <= 8 && x == (int)x) f->front = (int)x;
        else if (!strcmp(a, "-augment") && (!strcmp(v, "auto") || (num && (x == 0 || x == 1)))) {
            fo->augment = num ? (int)x : EVO_AUGMENT_AUTO;
            f->aug_set = 1;
        }
        else if (!strcmp(a, "-erase") && num && x >= 0 && x <= 1) {
            fo->erase = (float)x;
            f->erase_set = 1;
        }
        else if (!strcmp(a, "-width") && evo_parse_width(v) != 0) {
            fo->width = evo_parse_width(v);
            f->width_set = 1;
        }
        else if (!strcmp(a, "-from") && (!strcmp(v, "inherit") || !strcmp(v, "scratch"))) {
            fo->scratch = !strcmp(v, "scratch");
            f->from_set = 1;
        } else {
            return usage_error("finish: '%s %s' is not understood (-id N, -front K, -max-flops F, -max-params P, "
                               "-max-latency MS, -hours H, -epochs E, -lr R, -decay D (0..1), -from inherit|scratch, "
                               "-augment 0|1|auto, -erase P (0..1), -width K|auto, -filters F, -cells N, -again)", a, v);
        }
    }
    if (!f->dir) return usage_error("finish: needs the run folder: darknet evolve finish DIR");
    if (f->width_set && f->fo.width != 1 && (f->fo.filters > 0 || f->fo.cells > 0))
        return usage_error("finish: -width and -filters/-cells each set the model's size: give one of them");
    if (budget_set(&f->budget) + (f->fo.id >= 0) + (f->fo.filters > 0 || f->fo.cells > 0) + (f->front > 0) > 1)
        return usage_error("finish: -id, a budget (-max-flops/-max-params/-max-latency), -front and -filters/-cells "
                           "each choose what to train: give one of them");
    return 0;
}

static void print_finished(const char *dir, const evo_final_info *fi)
{
    printf("finish: %s/final holds a finished model (individual %d, test %.2f%%); -again trains anew (the old one is "
           "kept)\n", dir, fi->id, 100.0 * fi->test_accuracy);
}

/* -id N or -filters/-cells: one model into DIR/final (a finished one only with -again). */
static int finish_one(const finish_args *f, evo_store *st, const evo_options *o, const evo_state *state)
{
    evo_final_info fi;
    if (evo_final_read(f->dir, &fi) != DN_OK) return runtime_error(f->dir, evo_last_error());
    if (fi.done && !f->again) {
        print_finished(f->dir, &fi);
        return DN_EXIT_OK;
    }
    if (fi.done && evo_final_set_aside(f->dir, stdout) != DN_OK) return runtime_error("finish", evo_last_error());
    return evo_finish(st, o, state, &f->fo, stdout) == DN_OK ? DN_EXIT_OK : runtime_error("finish", evo_last_error());
}

/* A budget: the top-ranked kept model within it, into DIR/final when it is
 * the best ever, else DIR/final/front/ID, where export -max-... finds it. */
static int finish_within(const finish_args *f, evo_store *st, const evo_options *o, evo_state *state)
{
    const evo_individual *v = NULL;
    if (evo_pick_within(f->dir, o, state, &f->budget, NULL, 0, 0, &v) != DN_OK) return runtime_error("finish", evo_last_error());
    evo_final_info fi;
    char *folder = NULL;
    if (evo_final_read_of(f->dir, v->id, &fi, &folder) != DN_OK) return runtime_error(f->dir, evo_last_error());
    int b = evo_state_best_ever(state), best = b >= 0 && state->ind[b].id == v->id;
    int rc = DN_EXIT_OK;
    evo_finish_options fo = f->fo;
    fo.id = v->id;
    fo.front = !best;
    fo.width = 1;   /* the model of a budget keeps the size that fits it */
    if (fi.done && fi.evals >= state->evals && !f->again)
        printf("finish: individual %d, the most accurate within the budget, has a finished final training in %s "
               "(test %.2f%%); -again trains anew (the old one is kept)\n", v->id, folder, 100.0 * fi.test_accuracy);
    else if (fi.done && (best ? evo_final_set_aside(f->dir, stdout) : evo_final_set_aside_folder(folder, stdout)) != DN_OK)
        rc = runtime_error("finish", evo_last_error());
    else if (evo_finish(st, o, state, &fo, stdout) != DN_OK)
        rc = runtime_error("finish", evo_last_error());
    free(folder);
    return rc;
}

/* The winner into DIR/final, then, with -objective costs, cheaper models of
 * the front (-front K, default the run's -final-front) that have none. */
static int finish_front(const finish_args *f, evo_store *st, const evo_options *o, const evo_state *state)
{
    evo_final_info fi;
    if (evo_final_read(f->dir, &fi) != DN_OK) return runtime_error(f->dir, evo_last_error());
    if (fi.done && f->again && evo_final_set_aside(f->dir, stdout) != DN_OK) return runtime_error("finish", evo_last_error());
    int trained = 0;
    dn_status s = evo_finish_all(st, o, state, &f->fo, f->front > 0 ? f->front : o->final_front, &trained, stdout);
    if (s != DN_OK) return runtime_error("finish", evo_last_error());
    if (trained == 0 && fi.done) print_finished(f->dir, &fi);
    return DN_EXIT_OK;
}

static int cmd_finish(int argc, char **argv)
{
    finish_args f = {.fo = {.id = -1}};
    if (parse_finish_args(argc, argv, &f)) return DN_EXIT_USAGE;
    evo_options o;
    evo_state state;
    evo_store *st = NULL;
    memset(&o, 0, sizeof o);
    memset(&state, 0, sizeof state);
    if (evo_store_open(f.dir, &o, &state, &st) != DN_OK) return runtime_error(f.dir, evo_last_error());
    evo_finish_options run;
    evo_finish_options_from(&o, &state, &run);
    if (!f.from_set) f.fo.scratch = run.scratch;
    if (!f.aug_set) f.fo.augment = run.augment;
    if (!f.erase_set) f.fo.erase = run.erase;
    if (f.fo.decay <= 0) f.fo.decay = run.decay;
    if (!f.width_set) f.fo.width = run.width;
    if (f.fo.epochs <= 0) f.fo.epochs = run.epochs;
    f.fo.seconds = f.hours * 3600.0;
    int rc = budget_set(&f.budget)                              ? finish_within(&f, st, &o, &state)
           : f.fo.id >= 0 || f.fo.filters > 0 || f.fo.cells > 0 ? finish_one(&f, st, &o, &state)
                                                                : finish_front(&f, st, &o, &state);
    evo_store_close(st);
    evo_state_free(&state);
    evo_options_free(&o);
    return rc;
}

static int cmd_export(int argc, char **argv)
{
    const char *dir = NULL, *prefix = NULL;
    int id = -1, filters = 0, cells = 0, pareto = 0;
    evo_budget budget = {0};
    for (int i = 2; i < argc; ++i) {
        const char *a = argv[i];
        double *limit = !strcmp(a, "-max-flops") ? &budget.flops : !strcmp(a, "-max-params") ? &budget.params
                      : !strcmp(a, "-max-latency") ? &budget.latency : NULL;
        if (!strcmp(a, "-pareto")) {
            pareto = 1;
        } else if (limit) {
            if (i + 1 >= argc) { usage_error("%s needs a value", a); return DN_EXIT_USAGE; }
            if (parse_budget(a, argv[++i], limit)) return DN_EXIT_USAGE;
        } else if (!strcmp(a, "-id") || !strcmp(a, "-out") || !strcmp(a, "-filters") || !strcmp(a, "-cells")) {
            if (i + 1 >= argc) { fprintf(stderr, "darknet evolve: %s needs a value\n", a); return DN_EXIT_USAGE; }
            int *v = !strcmp(a, "-id") ? &id : !strcmp(a, "-filters") ? &filters : &cells;
            if (!strcmp(a, "-out")) prefix = argv[++i];
            else if (parse_int(a, argv[++i], v) || *v < (v == &id ? 0 : 1)) {
                if (*v < (v == &id ? 0 : 1)) fprintf(stderr, "darknet evolve: %s must be >= %d\n", a, v == &id ? 0 : 1);
                return DN_EXIT_USAGE;
            }
        } else if (looks_like_flag(a)) {
            fprintf(stderr, "darknet evolve: unknown option '%s' for export (-id N, -out PREFIX, -filters F, "
                            "-cells N, -pareto, -max-flops F, -max-params P, -max-latency MS)\n", a);
            return DN_EXIT_USAGE;
        } else if (!dir) {
            dir = a;
        } else {
            fprintf(stderr, "darknet evolve: unexpected argument '%s'\n", a);
            return DN_EXIT_USAGE;
        }
    }
    if (!dir) { fprintf(stderr, "darknet evolve: usage: darknet evolve export DIR [-id N] [-out PREFIX]\n"); return DN_EXIT_USAGE; }
    if (prefix && !*prefix) {   /* evo_export_scaled refuses it too; here it is a usage error */
        usage_error("export: -out wants a file prefix (e.g. -out models/winner), not ''");
        return DN_EXIT_USAGE;
    }
    int budgeted = budget_set(&budget);
    if (pareto + budgeted + (id >= 0) + (filters > 0 || cells > 0) > 1) {
        usage_error("export: -pareto, a budget (-max-flops/-max-params/-max-latency), -id and -filters/-cells "
                           "each choose what to export: give one of them");
        return DN_EXIT_USAGE;
    }
    dn_status s = pareto     ? evo_export_pareto(dir, prefix, stdout)
                : budgeted   ? evo_export_within(dir, &budget, prefix, stdout)
                             : evo_export_scaled(dir, id, prefix, filters, cells, stdout);
    return s == DN_OK ? DN_EXIT_OK : runtime_error("export", evo_last_error());
}

/* ------------------------------------------------------------ status */

static int cmp_by_accuracy(const void *a, const void *b)
{
    const evo_individual *x = *(const evo_individual *const *)a, *y = *(const evo_individual *const *)b;
    if (x->accuracy != y->accuracy) return x->accuracy < y->accuracy ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

static void fmt_hms(double sec, char *buf, size_t n)
{
    long s = sec > 0 ? (long)(sec + 0.5) : 0;
    snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

static void print_budget(const evo_options *o, const evo_state *s)
{
    char el[32];
    fmt_hms(s->elapsed, el, sizeof el);
    printf("evaluations: %d", s->evals);
    if (o->evals > 0) printf(" / %d", o->evals);
    printf("   elapsed: %s", el);
    if (o->hours > 0) printf(" / %.3g hours", o->hours);
    int fails = 0;
    for (int i = 0; i < s->n; ++i) fails += s->ind[i].outcome != EVO_OK;
    printf("   failed: %d\n", fails);
}

static int print_population(const evo_state *s)
{
    int alive = 0;
    for (int i = 0; i < s->n; ++i) alive += s->ind[i].alive != 0;
    const evo_individual **v = malloc((size_t)(alive ? alive : 1) * sizeof *v);
    if (!v) return runtime_error("status", "out of memory");
    int k = 0;
    for (int i = 0; i < s->n; ++i) if (s->ind[i].alive) v[k++] = &s->ind[i];
    qsort(v, (size_t)alive, sizeof *v, cmp_by_accuracy);
    if (alive) printf("best: individual %d, validation accuracy %.2f%%\n", v[0]->id, 100.0 * v[0]->accuracy);
    printf("population: %d alive\n", alive);
    printf("%6s %6s  %-22s %8s %5s %10s %10s %5s\n", "id", "parent", "mutation", "val", "level", "params", "MFLOPs",
           "eval");
    for (int i = 0; i < alive; ++i)
        printf("%6d %6d  %-22s %7.2f%% %5d %10zu %10.3f %5d\n", v[i]->id, v[i]->parent,
               evo_mutation_name(v[i]->mutation), 100.0 * v[i]->accuracy, v[i]->rung, v[i]->params,
               v[i]->flops / 1e6, v[i]->eval);
    free(v);
    return DN_EXIT_OK;
}

static int cmd_status(int argc, char **argv)
{
    if (argc != 3 || looks_like_flag(argv[2])) {
        fprintf(stderr, "darknet evolve: usage: darknet evolve status DIR\n");
        return DN_EXIT_USAGE;
    }
    evo_options o;
    memset(&o, 0, sizeof o);
    evo_state state;
    memset(&state, 0, sizeof state);
    evo_store *st = NULL;
    int rc = DN_EXIT_OK;
    if (evo_store_open_read(argv[2], &o, &state, &st) != DN_OK) {
        rc = runtime_error(argv[2], evo_last_error());
    } else {
        printf("run: %s  (algo %s, population %d, %d steps x batch %d, seed %llu)\n", argv[2],
               o.algo ? o.algo : "?", o.population, o.steps, o.batch, (unsigned long long)o.seed);
        print_budget(&o, &state);
        int b = evo_state_best_ever(&state);
        if (b >= 0)
            printf("best ever: individual %d, validation %.2f%% (level %d)%s\n", state.ind[b].id,
                   100.0 * state.ind[b].accuracy, state.ind[b].rung, state.ind[b].alive ? "" : ", dead (weights kept)");
        if (state.costs) {
            int na = 0;
            for (int i = 0; i < state.n; ++i) na += state.ind[i].archived != 0;
            printf("archive: %d non-dominated model%s (objective %s): darknet evolve export DIR -pareto\n", na,
                   na == 1 ? "" : "s", evo_objective_name(state.costs));
        }
        evo_final_info fi;
        if (evo_final_read(argv[2], &fi) == DN_OK && fi.done) {
            char wide[96] = "";
            if (fi.width > 1)
                snprintf(wide, sizeof wide, " at width x%g (%zu params, %.4g MFLOPs)", fi.width, fi.params, fi.flops / 1e6);
            printf("final: individual %d%s trained %d steps in %.0f s; test accuracy %.2f%% on %d images\n", fi.id, wide,
                   fi.steps, fi.seconds, 100.0 * fi.test_accuracy, fi.images);
        } else if (o.final_share > 0)
            printf("final: not finished (the search runs, or -resume / darknet evolve finish continues it)\n");
        for (int i = 0; i < state.n; ++i) {   /* the other models final training took (front, budgets) */
            evo_final_info ff;
            const evo_individual *v = &state.ind[i];
            if (!(v->archived || v->alive) || (fi.done && fi.id == v->id) || evo_final_read_of(argv[2], v->id, &ff, NULL) != DN_OK ||
                !ff.done)
                continue;
            printf("final (front): individual %d (%.4g MFLOPs, %zu params) trained %d steps in %.0f s; test accuracy "
                   "%.2f%%\n", v->id, v->flops / 1e6, v->params, ff.steps, ff.seconds, 100.0 * ff.test_accuracy);
        }
        rc = print_population(&state);
        evo_store_close(st);
    }
    evo_state_free(&state);
    evo_options_free(&o);
    return rc;
}

/* ------------------------------------------------------------ report */

/* -id N or -id N,M,...; appended to ids (at most max). 0 or -1 (printed). */
static int parse_ids(const char *v, int *ids, int *n, int max)
{
    char *copy = strdup(v), *save = NULL;
    if (!copy) { fprintf(stderr, "darknet evolve: out of memory\n"); return -1; }
    int rc = 0;
    for (char *item = strtok_r(copy, ",", &save); item && !rc; item = strtok_r(NULL, ",", &save)) {
        int id;
        if (parse_int("-id", item, &id)) rc = -1;
        else if (id < 0) rc = usage_error("-id %d: ids are >= 0", id);
        else if (*n == max) rc = usage_error("-id: at most %d individuals", max);
        else ids[(*n)++] = id;
    }
    if (!rc && *n == 0) rc = usage_error("-id wants ids, e.g. -id 3,17");
    free(copy);
    return rc;
}

static int cmd_report(int argc, char **argv)
{
    static const char use[] = "darknet evolve: usage: darknet evolve report DIR [-out FILE] [-id N,...]\n";
    const char *dir = NULL;
    int ids[64], nids = 0;
    evo_report_options ro = {0};
    for (int i = 2; i < argc; ++i) {
        const char *a = argv[i];
        if (!strcmp(a, "-out") || !strcmp(a, "-id")) {
            if (i + 1 >= argc) { fprintf(stderr, "darknet evolve: %s needs a value\n", a); return DN_EXIT_USAGE; }
            if (!strcmp(a, "-out")) ro.out = argv[++i];
            else if (parse_ids(argv[++i], ids, &nids, 64)) return DN_EXIT_USAGE;
        } else if (looks_like_flag(a)) {
            fprintf(stderr, "darknet evolve: unknown option '%s' for report (-out FILE, -id N,...)\n", a);
            return DN_EXIT_USAGE;
        } else if (!dir) {
            dir = a;
        } else {
            fprintf(stderr, "darknet evolve: unexpected argument '%s'\n%s", a, use);
            return DN_EXIT_USAGE;
        }
    }
    if (!dir) { fputs(use, stderr); return DN_EXIT_USAGE; }
    ro.ids = ids;
    ro.nids = nids;
    char *path = NULL;
    if (evo_report(dir, &ro, stderr, &path) != DN_OK) return runtime_error("report", evo_last_error());
    printf("report: %s\n", path);
    free(path);
    return DN_EXIT_OK;
}

/* ------------------------------------------------------------ entry */

static int has_arg(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; ++i)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

/* mpirun -np K darknet evolve ... -mpi: rank 0 starts or resumes the search
 * with ranks 1..K-1 as its workers; they serve until rank 0 stops them. */
static int run_mpi(int argc, char **argv)
{
    int n = 0;
    for (int i = 0; i < argc; ++i)
        if (strcmp(argv[i], "-mpi") != 0) argv[n++] = argv[i];
    argc = n;
    argv[argc] = NULL;
    if (!evo_mpi_built()) { usage_error("-mpi: this build has no MPI support (make MPI=1)"); return DN_EXIT_USAGE; }
    int rank = 0, size = 1, rc;
    if (evo_mpi_init(&argc, &argv, &rank, &size) != DN_OK) {
        rc = runtime_error("MPI", evo_last_error());
    } else if (size < 2) {
        usage_error("-mpi needs at least 2 ranks: mpirun -np K (K >= 2; rank 0 keeps the population, ranks 1..K-1 "
                    "train)");
        rc = DN_EXIT_USAGE;
    } else if (rank > 0) {
        rc = evo_mpi_worker(stderr);
    } else {
        mpi_workers = size - 1;
        rc = has_arg(argc, argv, "-resume") ? cmd_resume(argc, argv) : cmd_start(argc, argv);
        evo_mpi_stop_workers();
    }
    evo_mpi_finalize();
    return rc;
}

int evo_main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return DN_EXIT_USAGE; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || has_arg(argc, argv, "-h") || has_arg(argc, argv, "--help")) {
        usage(stdout);
        return DN_EXIT_OK;
    }
    if (!strcmp(cmd, "export")) return cmd_export(argc, argv);
    if (!strcmp(cmd, "finish")) return cmd_finish(argc, argv);
    if (!strcmp(cmd, "status")) return cmd_status(argc, argv);
    if (!strcmp(cmd, "report")) return cmd_report(argc, argv);
    if (has_arg(argc, argv, "-mpi")) return run_mpi(argc, argv);
    if (has_arg(argc, argv, "-resume")) return cmd_resume(argc, argv);
    return cmd_start(argc, argv);
}
