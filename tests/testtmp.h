/*
 * testtmp.h — a temporary folder for a test binary: fill `tmpdir` with
 * mkdtemp, build paths in it with tp(name), remove it with tl_tmp_remove().
 */
#ifndef TESTTMP_H
#define TESTTMP_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static char tmpdir[256];

/* tmpdir/name in one of 8 rotating buffers */
static const char *tp(const char *name)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ & 7];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static int tl_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

/* rm -rf dir */
static inline void tl_rm_tree(const char *dir) { nftw(dir, tl_rm_one, 16, FTW_DEPTH | FTW_PHYS); }

#endif
