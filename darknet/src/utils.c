/*
 * utils.c — errors (thread-local last message), warnings, checked allocation,
 * file reading, random numbers and time.
 */

#include "internal.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ errors */

static _Thread_local char last_error[2048];

const char *dn_last_error(void) { return last_error; }
void dn_clear_error(void) { last_error[0] = 0; }

dn_status dn_set_error(dn_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

dn_status dn_fail_context(dn_status s, const char *fmt, ...)
{
    char prefix[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix - 2, fmt, ap);
    va_end(ap);
    strcat(prefix, ": ");
    size_t plen = strlen(prefix), olen = strlen(last_error);
    if (plen + olen >= sizeof last_error) olen = sizeof last_error - plen - 1;
    memmove(last_error + plen, last_error, olen);
    memcpy(last_error, prefix, plen);
    last_error[plen + olen] = 0;
    return s;
}

const char *dn_status_name(dn_status s)
{
    switch (s) {
    case DN_OK: return "ok";
    case DN_ERR_ARG: return "invalid argument";
    case DN_ERR_IO: return "i/o error";
    case DN_ERR_PARSE: return "parse error";
    case DN_ERR_SHAPE: return "shape error";
    case DN_ERR_NOMEM: return "out of memory";
    case DN_ERR_NUMERIC: return "numeric error";
    case DN_ERR_DATA: return "data error";
    case DN_ERR_WEIGHTS: return "weights error";
    case DN_ERR_GPU: return "GPU error";
    }
    return "unknown status";
}

/* ------------------------------------------------------------ warnings */

static void default_sink(const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "warning: %s\n", message);
}

static dn_log_fn warning_sink = default_sink;
static void *warning_user;

void dn_set_warning_sink(dn_log_fn fn, void *user)
{
    warning_sink = fn;
    warning_user = user;
}

void dn_warn(const char *fmt, ...)
{
    if (!warning_sink) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    warning_sink(buf, warning_user);
}

/* ------------------------------------------------------------ memory */

int dn_mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

void *dn_calloc(size_t count, size_t size)
{
    size_t total;
    if (!dn_mul_ok(count, size, &total)) {
        dn_fail(DN_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    if (total == 0) total = 1;
    void *p = calloc(1, total);
    if (!p) dn_fail(DN_ERR_NOMEM, "out of memory allocating %zu bytes", total);
    return p;
}

char *dn_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = dn_calloc(n, 1);
    if (p) memcpy(p, s, n);
    return p;
}

dn_status dn_read_file(const char *path, char **text, size_t *size)
{
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return dn_fail(DN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = dn_calloc(cap, 1);
    if (!buf) { fclose(f); return DN_ERR_NOMEM; }
    for (;;) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); fclose(f); return dn_fail(DN_ERR_NOMEM, "%s: out of memory reading file", path); }
            buf = nb; cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return dn_fail(DN_ERR_IO, "%s: read error", path); }
    buf[len] = 0;
    *text = buf;
    if (size) *size = len;
    return DN_OK;
}

/* ------------------------------------------------------------ random */

uint64_t dn_rand_u64(uint64_t *state)
{
    /* splitmix64: every seed, including 0, gives a good stream */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float dn_rand_uniform(uint64_t *state, float lo, float hi)
{
    double u = (double)(dn_rand_u64(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

float dn_rand_normal(uint64_t *state)
{
    /* Box-Muller; u1 in (0,1] so log is finite */
    double u1 = ((double)(dn_rand_u64(state) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(dn_rand_u64(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

double dn_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
