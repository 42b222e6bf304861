/*
 * util.c — evo's small helpers: evo_fail formats a message into the
 * framework's thread-local last error (dn_set_error), so one dn_last_error()
 * serves both; evo_text is a growing text buffer (HTML escaping included) for
 * the files evo writes.
 */
#include "evo_internal.h"
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dn_status evo_fail(dn_status s, const char *fmt, ...)
{
    char msg[2048];   /* fmt may take the current message as an argument */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dn_set_error(s, "%s", msg);
}

/* ------------------------------------------------------------ evo_text */

void evo_text_put(evo_text *t, const char *s, size_t n)
{
    if (t->failed) return;
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->n + n + 1) cap *= 2;
        char *ns = realloc(t->s, cap);
        if (!ns) { t->failed = 1; return; }
        t->s = ns;
        t->cap = cap;
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = 0;
}

void evo_text_add(evo_text *t, const char *fmt, ...)
{
    if (t->failed) return;
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0) { t->failed = 1; return; }
    if ((size_t)len < sizeof small) { evo_text_put(t, small, (size_t)len); return; }
    char *big = malloc((size_t)len + 1);
    if (!big) { t->failed = 1; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)len + 1, fmt, ap);
    va_end(ap);
    evo_text_put(t, big, (size_t)len);
    free(big);
}

void evo_text_html(evo_text *t, const char *s)
{
    for (const char *p = s ? s : ""; *p; ++p) {
        switch (*p) {
        case '&': evo_text_put(t, "&amp;", 5); break;
        case '<': evo_text_put(t, "&lt;", 4); break;
        case '>': evo_text_put(t, "&gt;", 4); break;
        case '"': evo_text_put(t, "&quot;", 6); break;
        case '\'': evo_text_put(t, "&#39;", 5); break;
        default: evo_text_put(t, p, 1);
        }
    }
}

void evo_text_free(evo_text *t)
{
    free(t->s);
    memset(t, 0, sizeof *t);
}

dn_status evo_text_write(evo_text *t, const char *path)
{
    dn_status s = t->failed ? evo_fail(DN_ERR_NOMEM, "%s: out of memory", path)
                            : dn_write_file_atomic(path, t->s ? t->s : "", t->n);
    evo_text_free(t);
    return s;
}

/* ------------------------------------------------------------ shell quoting */

const char *evo_shell_quote(const char *s, char *buf, size_t n)
{
    if (!s) return "";
    int plain = *s != 0;
    for (const char *p = s; *p && plain; ++p)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("/._-+,:@%=", *p) != NULL;
    if (plain) return s;
    size_t k = 0;
    if (n < 3) return s;
    buf[k++] = '\'';
    for (const char *p = s; *p && k + 6 < n; ++p) {
        if (*p == '\'') { memcpy(buf + k, "'\\''", 4); k += 4; }
        else buf[k++] = *p;
    }
    buf[k++] = '\'';
    buf[k] = 0;
    return buf;
}

int evo_file_exists(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0;
}
