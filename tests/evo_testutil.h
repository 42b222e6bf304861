/*
 * evo_testutil.h — helpers shared by the evo tests: structural equality of
 * genomes (options in order, gene ids, types, references) and reading a file.
 */
#ifndef EVO_TESTUTIL_H
#define EVO_TESTUTIL_H
#include "evo_internal.h"
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

#endif
