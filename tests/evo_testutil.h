/*
 * evo_testutil.h — helpers shared by the evo tests: structural equality of
 * genomes (options in order, gene ids, types, references), reading a file,
 * and the layer shapes upstream Darknet builds from a cfg (the oracle harness).
 */
#ifndef EVO_TESTUTIL_H
#define EVO_TESTUTIL_H
#include "evo_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

static int kvs_equal(const evo_kv *a, int na, const evo_kv *b, int nb)
{
    if (na != nb) return 0;
    for (int i = 0; i < na; ++i)
        if (strcmp(a[i].key, b[i].key) || strcmp(a[i].value, b[i].value)) return 0;
    return 1;
}

static int gene_equal(const evo_gene *a, const evo_gene *b)
{
    if (a->id != b->id || strcmp(a->type, b->type) || a->nrefs != b->nrefs) return 0;
    for (int k = 0; k < a->nrefs; ++k)
        if (a->refs[k] != b->refs[k]) return 0;
    return kvs_equal(a->kv, a->nkv, b->kv, b->nkv);
}

static int genome_equal(const evo_genome *a, const evo_genome *b)
{
    if (a->n != b->n || a->body_end != b->body_end || a->next_id != b->next_id) return 0;
    if (!kvs_equal(a->net, a->nnet, b->net, b->nnet)) return 0;
    for (int i = 0; i < a->n; ++i)
        if (!gene_equal(&a->genes[i], &b->genes[i])) return 0;
    return 1;
}

/* A whole file as a NUL-terminated string (free it), or NULL. */
static inline char *read_text(const char *path)
{
    char *text;
    return dn_read_file(path, &text, NULL) == DN_OK ? text : NULL;
}

/* The oracle harness ($BUILD/tests/upstream_harness) into buf; 0 (after a
 * SKIP line) when it is not built, as without Debian's darknet. */
static inline int upstream_harness(char *buf, size_t n)
{
    const char *build = getenv("BUILD");
    snprintf(buf, n, "%s/tests/upstream_harness", build && *build ? build : "build");
    if (access(buf, X_OK) == 0) return 1;
    printf("SKIP upstream check: %s is missing (it needs Debian's darknet)\n", buf);
    return 0;
}

/* Upstream Darknet (Debian's libdarknet, through the oracle harness) loads
 * the cfg text to the same layer outputs as the framework. 1 when equal. */
static inline int upstream_same(const char *harness, const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0) { if (f) fclose(f); return 0; }
    fclose(f);
    dn_parse_options po = {.batch = 1, .quiet = 1, .shapes_only = 1};
    dn_network *net = NULL;
    if (dn_network_parse_string(text, path, &po, &net) != DN_OK) return 0;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' shapes '%s' 2>/dev/null", harness, path);
    FILE *p = popen(cmd, "r");
    int ok = p != NULL, lines = 0;
    char line[512];
    while (ok && fgets(line, sizeof line, p)) {
        int i, w, h, c, ow, oh, oc, in, out;
        char type[64];
        if (sscanf(line, "layer %d %63s %d %d %d %d %d %d %d %d", &i, type, &w, &h, &c, &ow, &oh, &oc, &in, &out) != 10)
            continue;
        const dn_layer *l = i >= 0 && i < net->n ? &net->layers[i] : NULL;
        /* upstream leaves out_w/h/c at 0 on [softmax] and [cost]: outputs only */
        int flat = ow == 0 && oh == 0 && oc == 0;
        ok = l && (flat || (l->out_w == ow && l->out_h == oh && l->out_c == oc)) && l->outputs == out;
        if (!ok) fprintf(stderr, "upstream layer %d %s: %dx%dx%d, ours %dx%dx%d\n", i, type, ow, oh, oc,
                         l ? l->out_w : -1, l ? l->out_h : -1, l ? l->out_c : -1);
        lines++;
    }
    if (p && pclose(p) != 0) ok = 0;
    ok = ok && lines == net->n;
    dn_network_free(net);
    remove(path);
    return ok;
}

#endif
