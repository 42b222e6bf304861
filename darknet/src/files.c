/*
 * files.c — writing whole files atomically and making folders (the toolkit's
 * half that writes; reading is dn_read_file in utils.c).
 *
 * dn_write_file_atomic: the data goes to PATH.tmp.PID.N (O_EXCL, so two
 * writers never share a temporary file), is fsync'd and renamed over PATH,
 * then the folder is fsync'd so that the rename itself survives a power cut.
 */
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size) {
        ssize_t w = write(fd, p, size);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        p += w;
        size -= (size_t)w;
    }
    return 1;
}

/* fsync the folder holding path, so that a rename or creation in it is durable. */
static void sync_parent(const char *path)
{
    char *copy = dn_strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { fsync(fd); close(fd); }
    free(copy);
}

dn_status dn_write_file_atomic(const char *path, const void *data, size_t size)
{
    static unsigned counter;   /* temporary names unique across threads */
    if (!path || !*path || (size && !data)) return dn_fail(DN_ERR_ARG, "dn_write_file_atomic: bad arguments");
    unsigned k = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    size_t n = strlen(path) + 48;
    char *tmp = dn_calloc(n, 1);
    if (!tmp) return DN_ERR_NOMEM;
    snprintf(tmp, n, "%s.tmp.%ld.%u", path, (long)getpid(), k);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        dn_status s = dn_fail(DN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        free(tmp);
        return s;
    }
    int ok = write_all(fd, data, size) && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        dn_status s = dn_fail(DN_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    sync_parent(path);
    return DN_OK;
}

dn_status dn_rename_durable(const char *from, const char *to)
{
    if (!from || !to) return dn_fail(DN_ERR_ARG, "dn_rename_durable: bad arguments");
    if (rename(from, to) != 0) return dn_fail(DN_ERR_IO, "%s: cannot move it to %s: %s", from, to, strerror(errno));
    sync_parent(to);
    sync_parent(from);
    return DN_OK;
}

dn_status dn_make_dirs(const char *path)
{
    if (!path || !*path) return dn_fail(DN_ERR_ARG, "dn_make_dirs: no folder");
    char *p = dn_strdup(path);
    if (!p) return DN_ERR_NOMEM;
    dn_status st = DN_OK;
    for (char *s = p + 1; st == DN_OK; ++s) {   /* each prefix ending at a '/' or the end */
        if (*s && *s != '/') continue;
        char c = *s;
        *s = 0;
        struct stat sb;
        if (mkdir(p, 0755) != 0 && !(errno == EEXIST && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))) {
            if (errno == EEXIST) errno = ENOTDIR;
            st = dn_fail(DN_ERR_IO, "%s: cannot create the folder %s: %s", path, p, strerror(errno));
        }
        *s = c;
        if (!c) break;
    }
    free(p);
    return st;
}

dn_status dn_make_parent_dirs(const char *file)
{
    if (!file || !*file) return dn_fail(DN_ERR_ARG, "dn_make_parent_dirs: no path");
    const char *slash = strrchr(file, '/');
    if (!slash || slash == file) return DN_OK;   /* the working folder or / */
    char *dir = dn_calloc((size_t)(slash - file) + 1, 1);
    if (!dir) return DN_ERR_NOMEM;
    memcpy(dir, file, (size_t)(slash - file));
    dn_status s = dn_make_dirs(dir);
    free(dir);
    return s;
}
