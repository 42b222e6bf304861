/*
 * data_config.c — classifier .data files: key=value lines with upstream's
 * lexing (every whitespace character removed, '#' and ';' comment lines,
 * split at the first '=', the first of duplicate keys wins), no sections.
 *
 * Keys: classes (2), train ("data/train.list"), valid (none: the split loader
 * falls back to train, as upstream), labels ("data/labels.list"), names, backup
 * ("backup/", upstream's "/backup/" would write to the root), top (1), tree
 * (ignored), train_labels, valid_labels, flip (0), crop_pad (0).
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

/* Copy of line [p, end) with every whitespace character removed. */
static char *strip_dup(const char *p, const char *end)
{
    char *s = dn_calloc((size_t)(end - p) + 1, 1), *d = s;
    if (!s) return NULL;
    for (; p < end; ++p)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n' && *p != '\v' && *p != '\f') *d++ = *p;
    return s;
}

static dn_status add_option(dn_section *sec, char *key, char *value, int line)
{
    dn_option *no = realloc(sec->opts, (size_t)(sec->nopts + 1) * sizeof *no);
    if (!no) return dn_fail(DN_ERR_NOMEM, "out of memory");
    sec->opts = no;
    dn_option *o = &no[sec->nopts++];
    memset(o, 0, sizeof *o);
    o->key = dn_strdup(key);
    o->value = dn_strdup(value);
    o->line = line;
    if (!o->key || !o->value) return DN_ERR_NOMEM;
    return DN_OK;
}

/* One stripped, non-comment line into the section. */
static dn_status lex_line(const char *name, dn_section *sec, char *s, int line)
{
    char *eq = strchr(s, '=');
    if (!eq) {
        dn_warn("%s:%d: '%s' is not key=value; line ignored", name, line, s);
        return DN_OK;
    }
    if (eq[1] == 0) {
        dn_warn("%s:%d: '%s' has no value; line ignored", name, line, s);
        return DN_OK;
    }
    *eq = 0;
    return add_option(sec, s, eq + 1, line);
}

/* The whole .data text as one section "[data]" so the cfg option lookups apply. */
static dn_status lex_data(const char *text, const char *name, dn_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->name = dn_strdup(name);
    cfg->sections = dn_calloc(1, sizeof *cfg->sections);
    if (!cfg->name || !cfg->sections) { dn_cfg_free(cfg); return DN_ERR_NOMEM; }
    cfg->nsections = 1;
    cfg->sections[0].type = dn_strdup("[data]");
    if (!cfg->sections[0].type) { dn_cfg_free(cfg); return DN_ERR_NOMEM; }
    dn_status st = DN_OK;
    int line = 0;
    for (const char *p = text; *p && st == DN_OK;) {
        const char *end = strchr(p, '\n');
        if (!end) end = p + strlen(p);
        ++line;
        char *s = strip_dup(p, end);
        if (!s) st = DN_ERR_NOMEM;
        else if (s[0] && s[0] != '#' && s[0] != ';') st = lex_line(name, &cfg->sections[0], s, line);
        free(s);
        p = *end ? end + 1 : end;
    }
    if (st != DN_OK) dn_cfg_free(cfg);
    return st;
}

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
    if (out->classes < 1) return dn_opt_fail(o, "classes", DN_ERR_PARSE, "classes=%d must be at least 1", out->classes);
    if (out->top < 1) return dn_opt_fail(o, "top", DN_ERR_PARSE, "top=%d must be at least 1", out->top);
    if (out->flip != 0 && out->flip != 1) return dn_opt_fail(o, "flip", DN_ERR_PARSE, "flip=%d must be 0 or 1", out->flip);
    if (out->crop_pad < 0) return dn_opt_fail(o, "crop_pad", DN_ERR_PARSE, "crop_pad=%d must not be negative", out->crop_pad);
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
    dn_status st = lex_data(text, path, &cfg);
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
