/*
 * utils.c — errors (thread-local last message), warnings, checked allocation,
 * file reading, random numbers and time.
 */

#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* ------------------------------------------------------------ files */

static const char *file_kind(mode_t m)
{
    return S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISDIR(m) ? "a directory" : S_ISSOCK(m) ? "a socket" : "not a plain file";
}

dn_status dn_open_regular_as(const char *path, const char *what, int *fd, size_t *size)
{
    const char *sep = what ? " " : "";
    what = what ? what : "";
    *fd = -1;
    /* O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever */
    int d = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (d < 0) return dn_fail(DN_ERR_IO, "%s: cannot open%s%s: %s", path, sep, what, strerror(errno));
    struct stat sb;
    if (fstat(d, &sb) != 0) {
        dn_status s = dn_fail(DN_ERR_IO, "%s: cannot open%s%s: %s", path, sep, what, strerror(errno));
        close(d);
        return s;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(d);
        return dn_fail(DN_ERR_IO, "%s: cannot open%s%s: not a regular file (%s)", path, sep, what,
                       file_kind(sb.st_mode));
    }
    int flags = fcntl(d, F_GETFL);
    if (flags < 0 || fcntl(d, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        dn_status s = dn_fail(DN_ERR_IO, "%s: cannot open%s%s: %s", path, sep, what, strerror(errno));
        close(d);
        return s;
    }
    if (size) *size = (uint64_t)sb.st_size > SIZE_MAX ? SIZE_MAX : (size_t)sb.st_size;
    *fd = d;
    return DN_OK;
}

dn_status dn_open_regular(const char *path, int *fd, size_t *size)
{
    return dn_open_regular_as(path, NULL, fd, size);
}

dn_status dn_fopen_regular(const char *path, const char *what, FILE **f)
{
    int fd;
    *f = NULL;
    DN_TRY(dn_open_regular_as(path, what, &fd, NULL));
    *f = fdopen(fd, "rb");
    if (!*f) {
        dn_status s = dn_fail(DN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return s;
    }
    return DN_OK;
}

/* Read up to n bytes; *got gets the count (less only at end of file). */
static dn_status read_all(int fd, const char *path, char *buf, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got > (1u << 30) ? (1u << 30) : n - *got;
        ssize_t r = read(fd, buf + *got, want);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return dn_fail(DN_ERR_IO, "%s: read error: %s", path, strerror(errno));
        if (r == 0) break;
        *got += (size_t)r;
    }
    return DN_OK;
}

dn_status dn_read_file_max(const char *path, size_t max, char **text, size_t *size)
{
    *text = NULL;
    int fd;
    size_t len;
    DN_TRY(dn_open_regular(path, &fd, &len));
    if (len > max || len == SIZE_MAX) {
        close(fd);
        return dn_fail(DN_ERR_IO, "%s: too large to read: %zu bytes (the limit is %zu)", path, len, max);
    }
    /* the buffer is the size the file has now; bytes appended meanwhile are not read */
    char *buf = dn_calloc(len + 1, 1);
    if (!buf) { close(fd); return dn_fail_context(DN_ERR_NOMEM, "%s", path); }
    size_t got;
    dn_status st = read_all(fd, path, buf, len, &got);
    close(fd);
    if (st != DN_OK) { free(buf); return st; }
    buf[got] = 0;
    *text = buf;
    if (size) *size = got;
    return DN_OK;
}

dn_status dn_read_file(const char *path, char **text, size_t *size)
{
    return dn_read_file_max(path, DN_READ_FILE_MAX, text, size);
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
