/*
 * options.c — the options of a search, in ONE table: the command-line flag,
 * the options.cfg key, the type, the default, the paper's value, the help
 * text and whether -resume may change it. The CLI parser, `darknet evolve -h`,
 * evo_options_defaults and the options.cfg file (written at the start,
 * read back by -resume) are all driven by it: adding an option is one line
 * here plus its field in evo_options.
 *
 * options.cfg:
 *   # darknet evolve: the options of this search, read back by -resume
 *   [evolve]
 *   data=/abs/path/fashion.data
 *   population=20
 *   ...
 * Values are written exactly (doubles with 17 digits), one key per line;
 * reading refuses unknown keys, duplicates and values of the wrong type,
 * naming the file and line. The two positional inputs (data, seed_cfg) must
 * be there. A legacy key gpu=1+DEVICE (0: the CPU) is read as -gpus DEVICE.
 */
#include "evo_internal.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB 1048576.0
#define OFF(field) offsetof(evo_options, field)

/*  flag            arg     options.cfg key  type          field                 default       paper   resume  help */
#define OPT(flag, arg, key, type, field, def, paper, resume, help) {flag, arg, key, type, OFF(field), def, paper, help, resume, NULL}
/* An option added later: folders whose options.cfg lacks it read `legacy`. */
#define NEW(flag, arg, key, type, field, def, paper, resume, legacy, help) \
    {flag, arg, key, type, OFF(field), def, paper, help, resume, legacy}
static const evo_option_spec TABLE[] = {
    OPT(NULL, "<data>", "data", EVO_OPT_STR, data_path, NULL, NULL, 0, "the .data file (absolute)"),
    OPT(NULL, "<seed.cfg>", "seed_cfg", EVO_OPT_STR, seed_cfg_path, NULL, NULL, 0, "the seed cfg as given (absolute)"),
    OPT("-out", "DIR", NULL, EVO_OPT_STR, out_dir, NULL, NULL, 0, "run folder to create (must not hold a search yet)"),
    OPT("-algo", "NAME", "algo", EVO_OPT_STR, algo, "tournament", NULL, 0,
        "tournament (Large-Scale Evolution), aging (Regularized Evolution) or random"),
    OPT("-population", "P", "population", EVO_OPT_INT, population, "20", "1000", 0, "individuals alive at once"),
    OPT("-evals", "N", "evals", EVO_OPT_INT, evals, "800", NULL, 1,
        "budget: evaluations in all, initial ones included (0: no limit)"),
    OPT("-hours", "H", "hours", EVO_OPT_DBL, hours, "0", NULL, 1,
        "budget: hours of search, summed over resumes (0: no limit)"),
    OPT("-steps", "T", "steps", EVO_OPT_INT, steps, "200", "25600", 0, "training steps (batches) per evaluation"),
    OPT("-batch", "B", "batch", EVO_OPT_INT, batch, "64", "50", 0, "images per training step (overrides the seed's batch=)"),
    OPT("-holdout", "N", "holdout", EVO_OPT_INT, holdout, "5000", "5000", 0,
        "validation images carved out of the training set"),
    OPT("-inherit", "0|1", "inherit", EVO_OPT_INT, inherit, "-1", "1 / 0", 0,
        "children start from their parent's trained weights (-1: yes when growing, no for cells)"),
    OPT("-sample", "S", "sample", EVO_OPT_INT, sample, "5", "25", 0,
        "aging: individuals sampled per cycle, the best is the parent"),
    OPT("-blocks", "B", "blocks", EVO_OPT_INT, blocks, "0", "5", 0,
        "cell searches: blocks per cell (0: the template's, else 5)"),
    OPT("-ops", "LIST", "ops", EVO_OPT_STR, ops, "upstream", "all", 0,
        "cell searches: upstream (every op pjreddie Darknet loads: all but avg3x3), all, or a list, e.g. "
        "sep3x3,max3x3,identity"),
    OPT("-workers", "N", "workers", EVO_OPT_INT, workers, "0", "250", 1,
        "evaluations in flight at once, sharing the population (0: one per -gpus device; else with -hours and "
        "no latency objective one per CPU, at most population / 4; else 1; threads per evaluation: CPUs / N)"),
    OPT("-seed", "S", "seed", EVO_OPT_U64, seed, "1", NULL, 0,
        "seed of everything random (selection, mutation, init, data order)"),
    OPT("-max-layers", "L", "max_layers", EVO_OPT_INT, limits.max_layers, "0", NULL, 0,
        "largest network in layers (0: no limit)"),
    OPT("-max-params", "P", "max_params", EVO_OPT_DBL, limits.max_params, "0", NULL, 0,
        "most learnable parameters (0: no limit)"),
    OPT("-max-flops", "F", "max_flops", EVO_OPT_DBL, limits.max_flops, "0", NULL, 0,
        "most forward FLOPs per image (0: no limit)"),
    OPT("-max-memory", "MB", "max_memory", EVO_OPT_MIB, limits.max_memory, "0", NULL, 0,
        "most training memory in MiB at -batch (0: no limit)"),
    OPT("-max-train", "N", "max_train", EVO_OPT_INT, max_train, "0", NULL, 0,
        "use only the first N training images (0: all)"),
    OPT("-threads", "N", "threads", EVO_OPT_INT, threads, "0", NULL, 1,
        "compute threads per evaluation (0: one per CPU, at most 8)"),
    OPT("-gpus", "LIST", "gpus", EVO_OPT_STR, gpus, NULL, NULL, 1,
        "train on these CUDA devices, e.g. 0,1: one worker per device unless -workers says otherwise (GPU=1 build)"),
    NEW("-schedule", "NAME", "schedule", EVO_OPT_STR, schedule, "cosine", "constant", 0, "cfg",
        "learning rate of each evaluation: cosine (warm-up, then cosine to 1/100 over the evaluation's own steps, "
        "from the genome's learning_rate), constant (that rate throughout) or cfg (the cfg's policy= on the "
        "lineage's seen count)"),
    NEW("-mutations", "SET", "mutations", EVO_OPT_STR, mutations, "all", "paper", 0, "paper",
        "growth searches: paper (the 11 of Large-Scale Evolution), morph (function-preserving deepen, widen, "
        "skip_zero, flatten, deepen_head, learning rate, identity) or all (both)"),
    NEW("-rungs", "R", "rungs", EVO_OPT_INT, rungs, "3", "1", 0, "1",
        "fidelity levels: children get -steps; the top 1/eta of a level are promoted (trained eta^k times longer "
        "in all, scored on the whole holdout); 1: no promotions"),
    NEW("-eta", "E", "eta", EVO_OPT_INT, eta, "3", NULL, 0, "3", "promotion ratio between levels (>= 2)"),
    NEW("-val-images", "N", "val_images", EVO_OPT_INT, val_images, "1000", NULL, 0, "0",
        "children are scored on the first N holdout images, promotions on all of them (0: all)"),
    NEW("-final", "SHARE", "final", EVO_OPT_DBL, final_share, "0.3", NULL, 0, "0",
        "final training of the winner after the search: the share of -hours kept for it (with -evals only: "
        "-final-epochs); 0: none"),
    NEW("-patience", "SHARE", "patience", EVO_OPT_DBL, patience, "0.25", NULL, 1, "0",
        "with -hours: the search ends early once its best individual has stood (no better one, no promotion) "
        "for this share of the search's time, and final training gets the time left; 0: search to the end"),
    NEW("-final-epochs", "E", "final_epochs", EVO_OPT_DBL, final_epochs, "10", NULL, 0, "10",
        "final training without -hours: epochs over all training images"),
    NEW("-final-from", "HOW", "final_from", EVO_OPT_STR, final_from, "inherit", NULL, 0, "inherit",
        "final training starts from the winner's weights (inherit) or from scratch"),
    NEW("-final-width", "K", "final_width", EVO_OPT_STR, final_width, "auto", NULL, 0, "1",
        "final training: every hidden layer's width (conv filters, hidden connected outputs) times K, trained "
        "from scratch (K in [1, 4]); auto: with -hours, the widest of 1, 2, 2.5, 3, 4 whose final "
        "training still gets 20 epochs in its time, measured on this machine (1: the winner as searched, "
        "from its weights as -final-from says)"),
    NEW("-final-front", "K", "final_front", EVO_OPT_INT, final_front, "3", NULL, 1, "1",
        "with -objective costs: final training of the winner and of up to K-1 cheaper models of the front (the "
        "most accurate within 1/sqrt(10), 1/10, ... of the winner's cost; the winner gets half the time, the "
        "others share the rest); 1: the winner only"),
    NEW("-augment", "WHEN", "augment", EVO_OPT_STR, augment, "auto", NULL, 0, "none",
        "random horizontal flip and 2-pixel pad-and-crop: none, auto (in final training when the winner overfits: "
        "its accuracy on training images exceeds its validation accuracy by 2 points or more), final (always in "
        "final training) or all (in the search too); the .data's flip= / crop_pad= apply everywhere when set"),
    NEW("-erase", "P", "erase", EVO_OPT_DBL, erase, "0", NULL, 0, "0",
        "random erasing (Zhong et al. 2017) wherever -augment applies flip + crop: with probability P an image gets "
        "one rectangle of noise (2-40% of it); 0: none"),
    NEW("-final-decay", "D", "final_decay", EVO_OPT_DBL, final_decay, "0", NULL, 0, "0",
        "final training's weight decay (0: the winner's own [net] decay=, which the search used)"),
    NEW("-objective", "LIST", "objective", EVO_OPT_STR, objective, "acc", NULL, 0, "acc",
        "what selection optimises: acc (validation accuracy) or accuracy together with costs, e.g. acc,flops or "
        "acc,params,latency (a Pareto front: NSGA-II's rank and crowding; the archive of non-dominated models)"),
    NEW("-report-every", "S", "report_every", EVO_OPT_DBL, report_every, "60", NULL, 1, "0",
        "rewrite DIR/report/index.html every S seconds while the search runs (the page reloads itself until the "
        "search ends); 0: only at the end"),
    NEW("-latency-threads", "N", "latency_threads", EVO_OPT_INT, latency_threads, "1", NULL, 0, "1",
        "-objective ...latency: compute threads the latency is measured with (those you will deploy with)"),
};
#undef OPT
#undef NEW

const evo_option_spec *evo_option_table(int *n)
{
    *n = (int)(sizeof TABLE / sizeof TABLE[0]);
    return TABLE;
}

const evo_option_spec *evo_option_by_flag(const char *flag)
{
    for (size_t i = 0; flag && i < sizeof TABLE / sizeof TABLE[0]; ++i)
        if (TABLE[i].flag && !strcmp(TABLE[i].flag, flag)) return &TABLE[i];
    return NULL;
}

static const evo_option_spec *by_key(const char *key)
{
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; ++i)
        if (TABLE[i].key && !strcmp(TABLE[i].key, key)) return &TABLE[i];
    return NULL;
}

static void *field(evo_options *o, const evo_option_spec *f) { return (char *)o + f->offset; }
static const void *cfield(const evo_options *o, const evo_option_spec *f) { return (const char *)o + f->offset; }

/* ------------------------------------------------------------ values */

const char *evo_option_wants(const evo_option_spec *f)
{
    return f->type == EVO_OPT_INT ? "an integer" : f->type == EVO_OPT_U64 ? "a non-negative integer" : "a number";
}

/* Text -> the field. A flag's -max-memory is in MiB (scaled); options.cfg
 * holds bytes. Returns 0, or -1 when v is not of the type (nothing set). */
static int set_value(evo_options *o, const evo_option_spec *f, const char *v, int from_flag)
{
    void *p = field(o, f);
    char *end = NULL;
    errno = 0;
    switch (f->type) {
    case EVO_OPT_STR: {
        char *s = strdup(v);
        if (!s) return -1;
        free(*(char **)p);
        *(char **)p = s;
        return 0;
    }
    case EVO_OPT_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < -2147483647L - 1 || x > 2147483647L) return -1;
        *(int *)p = (int)x;
        return 0;
    }
    case EVO_OPT_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (v[0] == '-' || v[0] == '+' || end == v || *end || errno) return -1;
        *(uint64_t *)p = (uint64_t)x;
        return 0;
    }
    case EVO_OPT_DBL:
    case EVO_OPT_MIB: {
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x)) return -1;
        *(double *)p = f->type == EVO_OPT_MIB && from_flag ? x * MIB : x;
        return 0;
    }
    }
    return -1;
}

int evo_option_set(evo_options *o, const evo_option_spec *f, const char *value)
{
    return set_value(o, f, value, 1);
}

void evo_option_print_default(FILE *out, const evo_option_spec *f)
{
    fprintf(out, "%s", f->def ? f->def : "none");
}

/* ------------------------------------------------------------ defaults */

void evo_options_defaults(evo_options *o)
{
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; ++i)
        if (TABLE[i].def) set_value(o, &TABLE[i], TABLE[i].def, 1);   /* the table's defaults are valid */
}

void evo_options_free(evo_options *o)
{
    if (!o) return;
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; ++i)
        if (TABLE[i].type == EVO_OPT_STR) free(*(char **)field(o, &TABLE[i]));
    memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------------ options.cfg */

static void add_line(evo_text *t, const evo_options *o, const evo_option_spec *f)
{
    const void *p = cfield(o, f);
    switch (f->type) {
    case EVO_OPT_STR: evo_text_add(t, "%s=%s\n", f->key, *(char *const *)p ? *(char *const *)p : ""); break;
    case EVO_OPT_INT: evo_text_add(t, "%s=%d\n", f->key, *(const int *)p); break;
    case EVO_OPT_U64: evo_text_add(t, "%s=%" PRIu64 "\n", f->key, *(const uint64_t *)p); break;
    case EVO_OPT_DBL:
    case EVO_OPT_MIB: evo_text_add(t, "%s=%.17g\n", f->key, *(const double *)p); break;
    }
}

dn_status evo_options_text(const evo_options *o, char **text)
{
    evo_text t = {0};
    evo_text_add(&t, "# darknet evolve: the options of this search, read back by -resume\n[evolve]\n");
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; ++i) {
        const evo_option_spec *f = &TABLE[i];
        if (!f->key) continue;
        const char *v = f->type == EVO_OPT_STR ? *(char *const *)cfield(o, f) : NULL;
        if (v && strpbrk(v, "\r\n")) {
            evo_text_free(&t);
            return evo_fail(DN_ERR_ARG, "option %s='%s' must not hold a line break", f->key, v);
        }
        add_line(&t, o, f);
    }
    if (t.failed) { evo_text_free(&t); return evo_fail(DN_ERR_NOMEM, "out of memory writing options"); }
    *text = t.s;
    return DN_OK;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') ++s;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
    return s;
}

/* Run folders written before -gpus took a list hold gpu=1+device (0: CPU). */
static dn_status legacy_gpu(evo_options *o, const char *v, const char *path, int line)
{
    char *end = NULL;
    long g = strtol(v, &end, 10);
    if (!*v || *end || g < 0 || g > 1024) return evo_fail(DN_ERR_PARSE, "%s:%d: gpu=%s is not a device", path, line, v);
    if (g == 0) return DN_OK;
    free(o->gpus);
    if (asprintf(&o->gpus, "%ld", g - 1) < 0) { o->gpus = NULL; return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    return DN_OK;
}

/* One line of options.cfg (trimmed, not blank, not a comment); seen: keys read. */
static dn_status option_line(evo_options *o, char *s, const char *path, int line, int *header, char *seen)
{
    if (!*header) {
        if (strcmp(s, "[evolve]") != 0)
            return evo_fail(DN_ERR_PARSE, "%s:%d: expected the section [evolve], found '%s'", path, line, s);
        *header = 1;
        return DN_OK;
    }
    char *eq = strchr(s, '=');
    if (!eq) return evo_fail(DN_ERR_PARSE, "%s:%d: '%s' is not key=value", path, line, s);
    *eq = 0;
    char *key = trim(s), *value = trim(eq + 1);
    if (strcmp(key, "gpu") == 0) return legacy_gpu(o, value, path, line);
    const evo_option_spec *f = by_key(key);
    if (!f) return evo_fail(DN_ERR_PARSE, "%s:%d: unknown option '%s'", path, line, key);
    if (seen[f - TABLE]) return evo_fail(DN_ERR_PARSE, "%s:%d: option '%s' is given twice", path, line, key);
    seen[f - TABLE] = 1;
    if (set_value(o, f, value, 0) == 0) return DN_OK;
    if (f->type == EVO_OPT_STR) return evo_fail(DN_ERR_NOMEM, "out of memory");
    return evo_fail(DN_ERR_PARSE, "%s:%d: %s=%s is not %s", path, line, key, value,
                    f->type == EVO_OPT_INT || f->type == EVO_OPT_U64 ? "an integer" : "a number");
}

dn_status evo_options_parse(char *text, const char *path, evo_options *o)
{
    int header = 0, line = 0;
    char seen[sizeof TABLE / sizeof TABLE[0]] = {0};
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        ++line;
        char *s = trim(p);
        if (*s && *s != '#' && *s != ';') DN_TRY(option_line(o, s, path, line, &header, seen));
        p = nl ? nl + 1 : p + strlen(p);
    }
    if (!header) return evo_fail(DN_ERR_PARSE, "%s: no [evolve] section", path);
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; ++i)   /* options added after the folder was made */
        if (TABLE[i].key && TABLE[i].legacy && !seen[i]) set_value(o, &TABLE[i], TABLE[i].legacy, 0);
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; ++i)   /* the positional inputs */
        if (!TABLE[i].flag && TABLE[i].key && !seen[i])
            return evo_fail(DN_ERR_PARSE, "%s: the option '%s' is missing", path, TABLE[i].key);
    return DN_OK;
}
