/*
 * data_config.c — classifier .data files: key=value lines with upstream's
 * lexing (every whitespace character removed, '#' and ';' comment lines,
 * split at the first '=', the first of duplicate keys wins), no sections.
 *
 * Keys: classes (2), train ("data/train.list"), valid (none: the split loader
 * falls back to train, as upstream), labels ("data/labels.list"), names, backup
 * ("backup/", upstream's "/backup/" would write to the root), top (1), tree
 * (ignored), train_labels, valid_labels, flip (0), crop_pad (0), and erase (0: our
 * key, random erasing's probability; upstream ignores it).
 * Class names come from names= or else labels=, one per line. A file named
 * by the .data must be readable; the default labels file is read only when
 * it exists. Paths are used as written (relative to the working directory).
 */
#include "data_internal.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TRAIN "data/train.list"
#define DEFAULT_LABELS "data/labels.list"
#define DEFAULT_BACKUP "backup/"

/* Class names from path, one per line; trailing blank lines are ignored, a
 * blank line before a name is an error (it would match every path). */
static dn_status read_label_names(const char *path, dn_data_config *out)
{
    dn_lines l;
    DN_TRY(dn_lines_read(path, &l));
    int n = l.n;
    while (n > 0 && !l.line[n - 1][0]) --n;
    for (int i = 0; i < n; ++i)
        if (!l.line[i][0]) {
            dn_lines_free(&l);
            return dn_fail(DN_ERR_DATA, "%s:%d: empty class name (one name per line)", path, i + 1);
        }
    if (n == 0) { dn_lines_free(&l); return dn_fail(DN_ERR_DATA, "%s: no class names", path); }
    for (int i = n; i < l.n; ++i) free(l.line[i]);
    out->label_names = l.line;
    out->nlabels = n;
    return DN_OK;
}

static dn_status dup_opt(dn_opts o, const char *key, const char *def, char **out)
{
    const char *v = dn_opt_str(o, key, def);
    *out = NULL;
    if (!v) return DN_OK;
    *out = dn_strdup(v);
    return *out ? DN_OK : DN_ERR_NOMEM;
}

static dn_status read_keys(dn_opts o, dn_data_config *out)
{
    DN_TRY(dn_opt_int(o, "classes", 2, &out->classes));
    DN_TRY(dn_opt_int(o, "top", 1, &out->top));
    DN_TRY(dn_opt_int(o, "flip", 0, &out->flip));
    DN_TRY(dn_opt_int(o, "crop_pad", 0, &out->crop_pad));
    DN_TRY(dn_opt_float(o, "erase", 0, &out->erase));
    if (out->classes < 1) return dn_opt_fail(o, "classes", DN_ERR_PARSE, "classes=%d must be at least 1", out->classes);
    if (out->top < 1) return dn_opt_fail(o, "top", DN_ERR_PARSE, "top=%d must be at least 1", out->top);
    if (out->flip != 0 && out->flip != 1) return dn_opt_fail(o, "flip", DN_ERR_PARSE, "flip=%d must be 0 or 1", out->flip);
    if (out->crop_pad < 0) return dn_opt_fail(o, "crop_pad", DN_ERR_PARSE, "crop_pad=%d must not be negative", out->crop_pad);
    if (!(out->erase >= 0 && out->erase <= 1))
        return dn_opt_fail(o, "erase", DN_ERR_PARSE, "erase=%g must be a probability in [0, 1]", out->erase);
    if (out->top > out->classes) {
        dn_warn("%s:%d: top=%d is more than classes=%d; using %d", o.cfg->name, dn_opt_line(o, "top"), out->top,
                out->classes, out->classes);
        out->top = out->classes;
    }
    DN_TRY(dup_opt(o, "train", DEFAULT_TRAIN, &out->train));
    DN_TRY(dup_opt(o, "valid", NULL, &out->valid));
    DN_TRY(dup_opt(o, "labels", DEFAULT_LABELS, &out->labels));
    DN_TRY(dup_opt(o, "names", NULL, &out->names));
    DN_TRY(dup_opt(o, "backup", DEFAULT_BACKUP, &out->backup));
    DN_TRY(dup_opt(o, "train_labels", NULL, &out->train_labels));
    DN_TRY(dup_opt(o, "valid_labels", NULL, &out->valid_labels));
    if (dn_opt_str(o, "tree", NULL))
        dn_warn("%s:%d: tree= (hierarchical softmax) is not supported; ignored", o.cfg->name, dn_opt_line(o, "tree"));
    return DN_OK;
}

/* names= if given, else labels= if given, else the default labels file if it exists. */
static dn_status read_names(dn_opts o, dn_data_config *out)
{
    const char *key = out->names ? "names" : "labels";
    int given = out->names || dn_opt_str(o, "labels", NULL);
    const char *path = out->names ? out->names : out->labels;
    if (!given && access(path, R_OK) != 0) return DN_OK;
    dn_status st = read_label_names(path, out);
    if (st != DN_OK)
        return given ? dn_fail_context(st, "%s:%d: %s=%s", o.cfg->name, dn_opt_line(o, key), key, path)
                     : dn_fail_context(st, "%s: default labels file", o.cfg->name);
    if (out->nlabels != out->classes)
        dn_warn("%s: %s has %d class names but classes=%d", o.cfg->name, path, out->nlabels, out->classes);
    return DN_OK;
}

dn_status dn_data_config_read(const char *path, dn_data_config *out)
{
    if (!out) return dn_fail(DN_ERR_ARG, "dn_data_config_read: no output");
    memset(out, 0, sizeof *out);
    if (!path) return dn_fail(DN_ERR_ARG, "dn_data_config_read: no path");
    char *text;
    DN_TRY(dn_read_file(path, &text, NULL));
    dn_cfg cfg;
    dn_status st = dn_cfg_lex_sectionless(text, path, "[data]", &cfg);
    free(text);
    if (st != DN_OK) return st;
    dn_opts o = {&cfg, &cfg.sections[0]};
    st = read_keys(o, out);
    if (st == DN_OK) st = read_names(o, out);
    if (st == DN_OK) dn_opts_warn_unused(o);
    dn_cfg_free(&cfg);
    if (st != DN_OK) dn_data_config_free(out);
    return st;
}

void dn_data_config_free(dn_data_config *cfg)
{
    if (!cfg) return;
    free(cfg->train);
    free(cfg->valid);
    free(cfg->labels);
    free(cfg->names);
    free(cfg->backup);
    free(cfg->train_labels);
    free(cfg->valid_labels);
    for (int i = 0; i < cfg->nlabels; ++i) free(cfg->label_names[i]);
    free(cfg->label_names);
    memset(cfg, 0, sizeof *cfg);
}
