/*
 * cfg.c — lexing Darknet .cfg / .data text into sections of key=value
 * options with upstream's rules, and typed option lookup with line numbers.
 *
 * Upstream rules kept: every space and tab is removed from a line (not just
 * the ends); '#' and ';' start comment lines; a line starting with '[' opens a
 * section; key=value splits at the first '='; the first of duplicate keys wins.
 * Deviations (on purpose): '\r' is stripped too, so CRLF files work; in
 * sectionless texts (.data files) the spaces inside a value are kept (only the
 * ends of the key and the value are trimmed), so that paths with spaces work
 * (upstream reads "train=/my data/x" as "/mydata/x", a path that fails); an option
 * before the first section is an error (upstream segfaults); numbers must be
 * numbers ("filters=abc" and "learning_rate=inf" are errors, upstream reads 0 / inf); a line without '='
 * is dropped with a warning, like "key=" (upstream keeps it as a key with no
 * value).
 */
#include "internal.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void dn_cfg_free(dn_cfg *cfg)
{
    if (!cfg) return;
    for (int i = 0; i < cfg->nsections; ++i) {
        dn_section *s = &cfg->sections[i];
        for (int j = 0; j < s->nopts; ++j) {
            free(s->opts[j].key);
            free(s->opts[j].value);
        }
        free(s->opts);
        free(s->type);
    }
    free(cfg->sections);
    for (int i = 0; i < cfg->nnotes; ++i) free(cfg->notes[i].text);
    free(cfg->notes);
    free(cfg->name);
    memset(cfg, 0, sizeof *cfg);
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

/* Copy line [p, end) without any whitespace into dst (capacity >= end-p+1). */
static void strip_copy(char *dst, const char *p, const char *end)
{
    while (p < end) {
        char ch = *p++;
        if (!is_space(ch)) *dst++ = ch;
    }
    *dst = 0;
}

/* A .data line [p, end) as "key=value" into dst: the key without any
 * whitespace, the value with its ends trimmed (spaces inside it kept); a line
 * without '=' is stripped like a cfg line. */
static void trim_copy(char *dst, const char *p, const char *end)
{
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (!eq) { strip_copy(dst, p, end); return; }
    strip_copy(dst, p, eq);
    size_t k = strlen(dst);
    dst[k++] = '=';
    const char *v = eq + 1, *ve = end;
    while (v < ve && is_space(*v)) ++v;
    while (ve > v && is_space(ve[-1])) --ve;
    memcpy(dst + k, v, (size_t)(ve - v));
    dst[k + (size_t)(ve - v)] = 0;
}

static dn_status add_section(dn_cfg *cfg, const char *type, int line)
{
    dn_section *ns = realloc(cfg->sections, (size_t)(cfg->nsections + 1) * sizeof *ns);
    if (!ns) return dn_fail(DN_ERR_NOMEM, "%s:%d: out of memory", cfg->name, line);
    cfg->sections = ns;
    dn_section *s = &ns[cfg->nsections];
    memset(s, 0, sizeof *s);
    s->type = dn_strdup(type);
    s->line = line;
    if (!s->type) return DN_ERR_NOMEM;
    cfg->nsections++;
    return DN_OK;
}

static dn_status add_note(dn_cfg *cfg, const char *stripped, int line)
{
    dn_annotation *nn = realloc(cfg->notes, (size_t)(cfg->nnotes + 1) * sizeof *nn);
    if (!nn) return dn_fail(DN_ERR_NOMEM, "%s:%d: out of memory", cfg->name, line);
    cfg->notes = nn;
    int sec = cfg->nsections - 1;
    nn[cfg->nnotes] = (dn_annotation){.text = dn_strdup(stripped), .line = line, .section = sec,
                                      .after_opts = sec >= 0 ? cfg->sections[sec].nopts : 0};
    if (!nn[cfg->nnotes].text) return DN_ERR_NOMEM;
    cfg->nnotes++;
    return DN_OK;
}

static dn_status add_option(dn_cfg *cfg, char *stripped, int line, int quiet)
{
    if (cfg->nsections == 0)
        return dn_fail(DN_ERR_PARSE, "%s:%d: option '%s' appears before the first section ([net])",
                       cfg->name, line, stripped);
    dn_section *s = &cfg->sections[cfg->nsections - 1];
    char *eq = strchr(stripped, '=');
    if (!eq) {
        if (!quiet) dn_warn("%s:%d: '%s' has no '=' (expected key=value); line ignored", cfg->name, line, stripped);
        return DN_OK;
    }
    if (eq[1] == 0) {
        if (!quiet) dn_warn("%s:%d: '%s' has no value; line ignored", cfg->name, line, stripped);
        return DN_OK;
    }
    dn_option *no = realloc(s->opts, (size_t)(s->nopts + 1) * sizeof *no);
    if (!no) return dn_fail(DN_ERR_NOMEM, "%s:%d: out of memory", cfg->name, line);
    s->opts = no;
    dn_option *o = &no[s->nopts];
    memset(o, 0, sizeof *o);
    o->line = line;
    *eq = 0;
    o->key = dn_strdup(stripped);
    o->value = dn_strdup(eq + 1);
    if (!o->key || !o->value) { free(o->key); free(o->value); return DN_ERR_NOMEM; }
    s->nopts++;
    return DN_OK;
}

/* The lexer; `implicit` names a section that holds every option of a text
 * without section headers (.data files), where '[' lines are not headers;
 * comment lines starting with `note` (stripped) are kept as annotations, and
 * then dropped lines are not warned about (the caller reads the text its own way). */
static dn_status lex(const char *text, const char *name, const char *implicit, const char *note, dn_cfg *out)
{
    memset(out, 0, sizeof *out);
    if (!text) return dn_fail(DN_ERR_ARG, "%s: no cfg text given", name ? name : "<string>");
    out->name = dn_strdup(name ? name : "<string>");
    if (!out->name) return DN_ERR_NOMEM;
    if (implicit && add_section(out, implicit, 0) != DN_OK) { dn_cfg_free(out); return DN_ERR_NOMEM; }
    size_t cap = 256;
    char *buf = malloc(cap);
    if (!buf) { dn_cfg_free(out); return dn_fail(DN_ERR_NOMEM, "out of memory"); }
    const char *p = text;
    int line = 0;
    dn_status st = DN_OK;
    while (*p && st == DN_OK) {
        const char *end = strchr(p, '\n');
        if (!end) end = p + strlen(p);
        ++line;
        size_t len = (size_t)(end - p);
        if (len + 1 > cap) {
            char *nb = realloc(buf, len + 1);
            if (!nb) { st = dn_fail(DN_ERR_NOMEM, "out of memory"); break; }
            buf = nb; cap = len + 1;
        }
        if (implicit) trim_copy(buf, p, end);
        else strip_copy(buf, p, end);
        p = *end ? end + 1 : end;
        if (note && *note && strncmp(buf, note, strlen(note)) == 0) st = add_note(out, buf, line);
        else if (buf[0] == 0 || buf[0] == '#' || buf[0] == ';') continue;
        else if (buf[0] == '[' && !implicit) st = add_section(out, buf, line);
        else st = add_option(out, buf, line, note != NULL);
    }
    free(buf);
    if (st != DN_OK) dn_cfg_free(out);
    return st;
}

dn_status dn_cfg_lex(const char *text, const char *name, dn_cfg *out) { return lex(text, name, NULL, NULL, out); }

dn_status dn_cfg_lex_annotated(const char *text, const char *name, const char *prefix, dn_cfg *out)
{
    return lex(text, name, NULL, prefix ? prefix : "", out);
}

dn_status dn_cfg_lex_sectionless(const char *text, const char *name, const char *section, dn_cfg *out)
{
    return lex(text, name, section, NULL, out);
}

const char *dn_section_canonical(const char *name)
{
    if (!name) return NULL;
    if (!strcmp(name, "net") || !strcmp(name, "network")) return "net";
    char bracketed[64];
    if (snprintf(bracketed, sizeof bracketed, "[%s]", name) >= (int)sizeof bracketed) return NULL;
    const dn_layer_ops *ops = dn_layer_ops_for_section(bracketed);
    return ops ? ops->names[0] : NULL;
}

dn_status dn_cfg_lex_file(const char *path, dn_cfg *out)
{
    char *text;
    memset(out, 0, sizeof *out);
    DN_TRY(dn_read_file(path, &text, NULL));
    dn_status st = dn_cfg_lex(text, path, out);
    free(text);
    return st;
}

/* ------------------------------------------------------------ options */

static dn_option *find(dn_opts o, const char *key)
{
    for (int i = 0; i < o.sec->nopts; ++i)
        if (strcmp(o.sec->opts[i].key, key) == 0) {
            o.sec->opts[i].used = 1;
            return &o.sec->opts[i];
        }
    return NULL;
}

int dn_opt_line(dn_opts o, const char *key)
{
    for (int i = 0; key && i < o.sec->nopts; ++i)
        if (strcmp(o.sec->opts[i].key, key) == 0) return o.sec->opts[i].line;
    return o.sec->line;
}

dn_status dn_opt_fail(dn_opts o, const char *key, dn_status s, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dn_fail(s, "%s:%d: %s %s", o.cfg->name, dn_opt_line(o, key), o.sec->type, msg);
}

dn_status dn_opt_int(dn_opts o, const char *key, int def, int *out)
{
    dn_option *opt = find(o, key);
    if (!opt || !opt->value) { *out = def; return DN_OK; }
    char *end;
    errno = 0;
    long v = strtol(opt->value, &end, 10);
    if (end == opt->value || *end || errno || v > 2147483647L || v < -2147483647L)
        return dn_fail(DN_ERR_PARSE, "%s:%d: %s=%s is not an integer", o.cfg->name, opt->line, key, opt->value);
    *out = (int)v;
    return DN_OK;
}

dn_status dn_opt_float(dn_opts o, const char *key, float def, float *out)
{
    dn_option *opt = find(o, key);
    if (!opt || !opt->value) { *out = def; return DN_OK; }
    char *end;
    errno = 0;
    float v = strtof(opt->value, &end);
    if (end == opt->value || *end || errno)
        return dn_fail(DN_ERR_PARSE, "%s:%d: %s=%s is not a number", o.cfg->name, opt->line, key, opt->value);
    if (!isfinite(v))
        return dn_fail(DN_ERR_PARSE, "%s:%d: %s=%s is not finite", o.cfg->name, opt->line, key, opt->value);
    *out = v;
    return DN_OK;
}

const char *dn_opt_str(dn_opts o, const char *key, const char *def)
{
    dn_option *opt = find(o, key);
    return (opt && opt->value) ? opt->value : def;
}

void dn_opts_warn_unused(dn_opts o)
{
    for (int i = 0; i < o.sec->nopts; ++i) {
        dn_option *opt = &o.sec->opts[i];
        if (!opt->used)
            dn_warn("%s:%d: unused field '%s = %s' in %s", o.cfg->name, opt->line, opt->key,
                    opt->value ? opt->value : "", o.sec->type);
    }
}
