/*
 * lines.c — a text file as an array of lines (label files, image lists),
 * each trimmed of leading and trailing whitespace including '\r'. Blank lines
 * stay as "" so callers can report exact line numbers.
 */
#include "data_internal.h"
#include <stdlib.h>
#include <string.h>

void dn_lines_free(dn_lines *l)
{
    if (!l) return;
    for (int i = 0; i < l->n; ++i) free(l->line[i]);
    free(l->line);
    memset(l, 0, sizeof *l);
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

/* Count of lines in text: a final line without '\n' counts, an empty tail does not. */
static size_t count_lines(const char *text, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < size; ++i) n += text[i] == '\n';
    return n + (size > 0 && text[size - 1] != '\n');
}

dn_status dn_lines_read(const char *path, dn_lines *out)
{
    memset(out, 0, sizeof *out);
    char *text;
    size_t size;
    DN_TRY(dn_read_file(path, &text, &size));
    if (memchr(text, 0, size)) {
        free(text);
        return dn_fail(DN_ERR_DATA, "%s: not a text file (contains NUL bytes)", path);
    }
    size_t n = count_lines(text, size);
    if (n > 0x7fffffff) { free(text); return dn_fail(DN_ERR_DATA, "%s: too many lines", path); }
    out->line = dn_calloc(n ? n : 1, sizeof(char *));
    if (!out->line) { free(text); return dn_fail_context(DN_ERR_NOMEM, "%s", path); }
    char *p = text;
    for (size_t i = 0; i < n; ++i) {
        char *end = strchr(p, '\n');
        if (!end) end = p + strlen(p);
        char *next = *end ? end + 1 : end;
        while (p < end && is_space(*p)) ++p;
        while (end > p && is_space(end[-1])) --end;
        out->line[i] = dn_calloc((size_t)(end - p) + 1, 1);
        if (!out->line[i]) { free(text); dn_lines_free(out); return dn_fail_context(DN_ERR_NOMEM, "%s", path); }
        memcpy(out->line[i], p, (size_t)(end - p));
        out->n = (int)i + 1;
        p = next;
    }
    free(text);
    return DN_OK;
}
