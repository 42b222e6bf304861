/*
 * darknet_toolkit.h — the framework's small public toolkit for the code built
 * on it (evo/, the CLI, a user's plugin): whole files in and out, folders,
 * errors with context, and the cfg lexer. Included by darknet.h.
 *
 *     char *text;
 *     if (dn_read_file("seed.cfg", &text, NULL) != DN_OK) return dn_last_error();
 *     dn_cfg cfg;
 *     if (dn_cfg_lex(text, "seed.cfg", &cfg) == DN_OK) {
 *         for (int i = 0; i < cfg.nsections; ++i)      // "[convolutional]", line 7, ...
 *             printf("%s at line %d\n", cfg.sections[i].type, cfg.sections[i].line);
 *         dn_cfg_free(&cfg);
 *     }
 *     dn_make_dirs("runs/a/best");
 *     dn_write_file_atomic("runs/a/best/notes.txt", text, strlen(text));
 */
#ifndef DARKNET_TOOLKIT_H
#define DARKNET_TOOLKIT_H

#include "darknet.h"
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- files */

/* Largest file dn_read_file reads: cfg, .data and list files are text. */
#define DN_READ_FILE_MAX ((size_t)1 << 30)   /* 1 GiB */
/* Open path read-only, refusing (without blocking, as a FIFO would in open)
 * anything but a regular file: "path: cannot open: not a regular file (a FIFO)".
 * On DN_OK *fd is a blocking descriptor the caller closes; *size (may be NULL)
 * gets the file's size. */
dn_status dn_open_regular(const char *path, int *fd, size_t *size);
/* Reads a whole regular file into a NUL-terminated malloc'ed buffer (*size, may
 * be NULL: its bytes without the NUL); refuses FIFOs and devices, and files over
 * DN_READ_FILE_MAX. */
dn_status dn_read_file(const char *path, char **text, size_t *size);
/* Replace path atomically: write PATH.tmp.PID.N (unique per call, also across
 * threads), fsync, rename over path, fsync the folder. A reader sees the old
 * file or the new one, never a part; after a crash, at most the temporary
 * file is left. */
dn_status dn_write_file_atomic(const char *path, const void *data, size_t size);
/* rename(from, to), then fsync both folders so that the move is durable. */
dn_status dn_rename_durable(const char *from, const char *to);
/* mkdir -p: path and its missing parents (0755); an existing folder is fine,
 * a file in the way is an error naming it. */
dn_status dn_make_dirs(const char *path);
/* mkdir -p of the folder part of a file path or prefix ("a/b/best" -> a/b). */
dn_status dn_make_parent_dirs(const char *file);

/* ---------------------------------------------------------------- errors */

/* Return the status of expr from the calling function unless it is DN_OK: the
 * one return-on-error macro of the framework and the code built on it. */
#define DN_TRY(expr) do { dn_status dn_try_s_ = (expr); if (dn_try_s_ != DN_OK) return dn_try_s_; } while (0)
/* Exit codes of every command (darknet classifier, darknet evolve): only main
 * exits, with one of these. */
enum { DN_EXIT_OK = 0, DN_EXIT_ERROR = 1, DN_EXIT_USAGE = 2 };

/* Prefix the calling thread's last error with "context: " and return s, to
 * add what the caller was doing: return dn_fail_context(s, "%s", path). */
dn_status dn_fail_context(dn_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- cfg text */

typedef struct {
    char *key;
    char *value;     /* never NULL: lines without '=' or value are dropped with a warning */
    int line;
    int used;        /* set by the framework's lookups; unused keys are warned about */
} dn_option;

typedef struct {
    char *type;      /* "[convolutional]" with brackets, as written */
    int line;
    dn_option *opts; int nopts;
} dn_section;

/* A comment line that starts with the lexer's annotation prefix ("# evo ...":
 * whitespace removed, so "#evo..."), kept with where it stands. */
typedef struct {
    char *text;      /* the stripped line, prefix included */
    int line;
    int section;     /* index of the section it follows (-1: before the first) */
    int after_opts;  /* options of that section before it */
} dn_annotation;

typedef struct {
    char *name;      /* file name or "<string>" */
    dn_section *sections; int nsections;
    dn_annotation *notes; int nnotes;   /* only with dn_cfg_lex_annotated */
} dn_cfg;

/* Lex cfg text with upstream's rules: all whitespace removed from a line, '#'
 * and ';' start comments, "[name]" opens a section, key=value splits at the
 * first '=', the first of duplicate keys wins on lookup. Errors name `name`
 * and the line. */
dn_status dn_cfg_lex(const char *text, const char *name, dn_cfg *out);
dn_status dn_cfg_lex_file(const char *path, dn_cfg *out);
/* The same, keeping the comment lines that start with `prefix` (stripped,
 * e.g. "#evo") as annotations, and without warnings for dropped lines. */
dn_status dn_cfg_lex_annotated(const char *text, const char *name, const char *prefix, dn_cfg *out);
void dn_cfg_free(dn_cfg *cfg);
/* The canonical name of a section ("conv" -> "convolutional", "network" ->
 * "net"; without brackets), or NULL when no layer type has that name. */
const char *dn_section_canonical(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* DARKNET_TOOLKIT_H */
