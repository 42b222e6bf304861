/*
 * cell.c — the NASNet-style cell search space of "Regularized Evolution for
 * Image Classifier Architecture Search" (Real et al. 2019) on Darknet cfg
 * templates: cell architectures (evo_cells), their text form, uniform
 * sampling, the paper's two mutations, template checks, expansion of the
 * template's [cell] sections into plain Darknet layers, and rescaling a
 * template for export.
 *
 * Expansion of one [cell] (type, filters=F), every layer a plain section that
 * both our framework and pjreddie Darknet parse (except [local_avgpool]):
 *   inputs   h(k-1) -> [convolutional] 1x1 F, batch_normalize=1, relu;
 *            h(k-2) -> [route] to it, [maxpool] size=2 stride=2 once per
 *            halving it needs to match h(k-1) (never a strided 1x1 conv,
 *            which pjreddie computes wrongly), then the same 1x1 conv.
 *   ops      stride s = 2 on the two cell inputs of a reduction cell, else 1;
 *            an op that reads a state other than the layer right before it
 *            starts with a [route] to that state.
 *     identity  s=1: no layer; s=2: [maxpool] size=1 stride=2
 *     sepKxK    depthwise [convolutional] groups=F filters=F size=K pad=1
 *               stride=s, batch_normalize=1, linear; then a pointwise 1x1
 *               [convolutional] F, batch_normalize=1, relu
 *     max3x3    [maxpool] size=3 stride=s padding=2
 *     avg3x3    [local_avgpool] size=3 stride=s padding=2
 *     conv1x1   (s=2: [maxpool] size=1 stride=2 first) [convolutional] 1x1 F,
 *               batch_normalize=1, relu
 *     conv3x3   [convolutional] size=3 pad=1 stride=s F, batch_normalize=1, relu
 *   block    [shortcut] (activation=linear) adding the two op outputs (a
 *            [route] first when neither is the layer right before it)
 *   output   [route] of the block outputs no later block reads.
 * Sizes: a 3x3 pad-1 conv, a size-3 padding-2 pool, a size-1 stride-2 pool
 * and a size-2 stride-2 pool all map n to (n-1)/s+1 (28 -> 14 -> 7 -> 4), so
 * every [shortcut] adds equal shapes and every [route] joins equal sizes.
 */
#include "evo_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *const op_names[EVO_OP_COUNT] = {
    "identity", "sep3x3", "sep5x5", "sep7x7", "max3x3", "avg3x3", "conv1x1", "conv3x3",
};

const char *evo_op_name(evo_op op) { return (op >= 0 && op < EVO_OP_COUNT) ? op_names[op] : "unknown"; }

dn_status evo_op_from_name(const char *name, evo_op *out)
{
    if (!name || !out) return evo_fail(DN_ERR_ARG, "evo_op_from_name: no name or output");
    for (int i = 0; i < EVO_OP_COUNT; ++i)
        if (strcmp(name, op_names[i]) == 0) { *out = (evo_op)i; return DN_OK; }
    return evo_fail(DN_ERR_ARG, "unknown op '%s' (identity, sep3x3, sep5x5, sep7x7, max3x3, avg3x3, conv1x1, conv3x3)",
                    name);
}

/* ------------------------------------------------------------ architectures */

dn_status evo_ops_parse(const char *list, unsigned *mask)
{
    *mask = 0;
    if (!list || !*list || !strcmp(list, "all")) { *mask = EVO_OPS_ALL; return DN_OK; }
    if (!strcmp(list, "upstream")) { *mask = EVO_OPS_UPSTREAM; return DN_OK; }
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char name[32];
        if (len == 0 || len >= sizeof name) return evo_fail(DN_ERR_ARG, "'%s': an empty or too long op name", list);
        memcpy(name, p, len);
        name[len] = 0;
        evo_op op = EVO_OP_IDENTITY;
        if (evo_op_from_name(name, &op) != DN_OK)
            return evo_fail(DN_ERR_ARG, "'%s': unknown op '%s' (ops: identity sep3x3 sep5x5 sep7x7 max3x3 avg3x3 "
                            "conv1x1 conv3x3, or all, upstream)", list, name);
        *mask |= 1u << op;
        p += len + (e != NULL);
    }
    if (!*mask) return evo_fail(DN_ERR_ARG, "'%s': no op", list);
    return DN_OK;
}

static const char *cell_name(int reduction) { return reduction ? "reduction" : "normal"; }

static const evo_block *cell_blocks(const evo_cells *c, int reduction) { return reduction ? c->reduction : c->normal; }

dn_status evo_cells_check(const evo_cells *c)
{
    if (!c) return evo_fail(DN_ERR_ARG, "no cell architecture");
    if (c->blocks < 1 || c->blocks > EVO_MAX_BLOCKS)
        return evo_fail(DN_ERR_ARG, "cells: %d blocks, expected 1..%d", c->blocks, EVO_MAX_BLOCKS);
    for (int r = 0; r < 2; ++r)
        for (int j = 0; j < c->blocks; ++j)
            for (int s = 0; s < 2; ++s) {
                const evo_block *b = &cell_blocks(c, r)[j];
                if (b->in[s] < 0 || b->in[s] >= 2 + j)
                    return evo_fail(DN_ERR_ARG, "%s cell, block %d: input %d is not a hidden state before the block "
                                    "(0..%d)", cell_name(r), j, b->in[s], 1 + j);
                if (b->op[s] < 0 || b->op[s] >= EVO_OP_COUNT)
                    return evo_fail(DN_ERR_ARG, "%s cell, block %d: unknown op %d", cell_name(r), j, (int)b->op[s]);
            }
    return DN_OK;
}

/* Uniform integer in [lo, hi]. */
static int rand_int(uint64_t *rng, int lo, int hi) { return lo + (int)(dn_rand_u64(rng) % (uint64_t)(hi - lo + 1)); }

/* The ops of mask other than `skip` (-1: none skipped), into ops; their count. */
static int mask_ops(unsigned mask, int skip, evo_op *ops)
{
    int n = 0;
    for (int i = 0; i < EVO_OP_COUNT; ++i)
        if ((mask >> i & 1u) && i != skip) ops[n++] = (evo_op)i;
    return n;
}

void evo_cells_random(evo_cells *c, int blocks, unsigned op_mask, uint64_t *rng)
{
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->blocks = blocks < 1 ? 1 : blocks > EVO_MAX_BLOCKS ? EVO_MAX_BLOCKS : blocks;
    evo_op ops[EVO_OP_COUNT];
    int nops = mask_ops(op_mask & EVO_OPS_ALL, -1, ops);
    if (nops == 0) nops = mask_ops(EVO_OPS_ALL, -1, ops);
    for (int r = 0; r < 2; ++r)
        for (int j = 0; j < c->blocks; ++j)
            for (int s = 0; s < 2; ++s) {
                evo_block *b = r ? &c->reduction[j] : &c->normal[j];
                b->in[s] = rand_int(rng, 0, 1 + j);
                b->op[s] = ops[rand_int(rng, 0, nops - 1)];
            }
}

/* The uniformly drawn cell, block and slot a mutation applies to. */
static evo_block *pick_slot(evo_cells *c, uint64_t *rng, int *reduction, int *block, int *slot)
{
    *reduction = rand_int(rng, 0, 1);
    *block = rand_int(rng, 0, c->blocks - 1);
    *slot = rand_int(rng, 0, 1);
    return *reduction ? &c->reduction[*block] : &c->normal[*block];
}

dn_status evo_cells_mutate_hidden(evo_cells *c, uint64_t *rng)
{
    if (evo_cells_check(c) != DN_OK)
        return evo_fail(DN_ERR_ARG, "hidden-state mutation does not apply: %s", evo_last_error());
    int r, j, s;
    evo_block *b = pick_slot(c, rng, &r, &j, &s);
    int states = 2 + j;   /* h(k-2), h(k-1) and the j earlier blocks */
    if (states < 2)
        return evo_fail(DN_ERR_ARG, "hidden-state mutation does not apply: %s block %d reads the only state there is",
                        cell_name(r), j);
    int v = rand_int(rng, 0, states - 2);
    b->in[s] = v >= b->in[s] ? v + 1 : v;
    return DN_OK;
}

dn_status evo_cells_mutate_op(evo_cells *c, unsigned op_mask, uint64_t *rng)
{
    if (evo_cells_check(c) != DN_OK) return evo_fail(DN_ERR_ARG, "op mutation does not apply: %s", evo_last_error());
    if ((op_mask & EVO_OPS_ALL) == 0)
        return evo_fail(DN_ERR_ARG, "op mutation does not apply: op_mask 0x%x allows no known op", op_mask);
    evo_cells trial = *c;
    int r, j, s;
    evo_block *b = pick_slot(&trial, rng, &r, &j, &s);
    evo_op ops[EVO_OP_COUNT];
    int n = mask_ops(op_mask & EVO_OPS_ALL, (int)b->op[s], ops);
    if (n == 0)
        return evo_fail(DN_ERR_ARG, "op mutation does not apply: op_mask allows no op other than %s (%s cell, "
                        "block %d)", evo_op_name(b->op[s]), cell_name(r), j);
    b->op[s] = ops[rand_int(rng, 0, n - 1)];
    *c = trial;
    return DN_OK;
}

const char *evo_forks_note(const char *cfg_text)
{
    /* [local_avgpool] is the one section we emit that pjreddie Darknet lacks */
    int ab_only = 0;
    for (const char *p = cfg_text; p && *p && !ab_only; p += strcspn(p, "\n"), p += *p == '\n') {
        p += strspn(p, " \t");
        ab_only = !strncmp(p, "[local_avgpool]", 15) || !strncmp(p, "[local_avg]", 11);
    }
    return ab_only ? "loads in: our darknet and AlexeyAB's Darknet; not in pjreddie Darknet (Debian's darknet), "
                     "which has no [local_avgpool] (the avg3x3 op; search with -ops upstream, the default, to avoid "
                     "it)"
                   : "loads in: our darknet, pjreddie Darknet (Debian's darknet) and AlexeyAB's Darknet";
}

const char *evo_cells_upstream_note(const evo_cells *c)
{
    if (!c) return NULL;
    int n = c->blocks < 0 ? 0 : c->blocks > EVO_MAX_BLOCKS ? EVO_MAX_BLOCKS : c->blocks;
    for (int r = 0; r < 2; ++r)
        for (int j = 0; j < n; ++j)
            for (int s = 0; s < 2; ++s)
                if (cell_blocks(c, r)[j].op[s] == EVO_OP_AVG3)
                    return "avg3x3 is a [local_avgpool], which AlexeyAB's Darknet loads but pjreddie Darknet (Debian's "
                           "darknet) does not";
    return NULL;
}

/* ------------------------------------------------------------ text form */

dn_status evo_cells_format(const evo_cells *c, char **text)
{
    if (!text) return evo_fail(DN_ERR_ARG, "evo_cells_format: no output");
    *text = NULL;
    DN_TRY(evo_cells_check(c));
    size_t cap = 64 + (size_t)c->blocks * 2 * 48, len = 0;
    char *s = malloc(cap);
    if (!s) return evo_fail(DN_ERR_NOMEM, "out of memory");
    for (int r = 0; r < 2; ++r) {
        len += (size_t)snprintf(s + len, cap - len, "%s%s=", r ? ";" : "", cell_name(r));
        for (int j = 0; j < c->blocks; ++j) {
            const evo_block *b = &cell_blocks(c, r)[j];
            len += (size_t)snprintf(s + len, cap - len, "%s%s(%d)+%s(%d)", j ? "," : "", evo_op_name(b->op[0]),
                                    b->in[0], evo_op_name(b->op[1]), b->in[1]);
        }
    }
    *text = s;
    return DN_OK;
}

/* A cursor over the text with whitespace removed; errors quote the rest. */
typedef struct { const char *p, *all; } cursor;

static dn_status syntax(const cursor *cu, const char *what)
{
    return evo_fail(DN_ERR_PARSE, "cells text '%.200s': expected %s at '%.40s'", cu->all, what,
                    *cu->p ? cu->p : "(end)");
}

static int accept(cursor *cu, char ch)
{
    if (*cu->p != ch) return 0;
    cu->p++;
    return 1;
}

/* op "(" index ")" */
static dn_status parse_slot(cursor *cu, int block, int *in, evo_op *op)
{
    size_t len = strspn(cu->p, "abcdefghijklmnopqrstuvwxyz0123456789");
    char name[16];
    if (len == 0 || len >= sizeof name) return syntax(cu, "an op name");
    memcpy(name, cu->p, len);
    name[len] = 0;
    if (evo_op_from_name(name, op) != DN_OK) return syntax(cu, "an op (identity, sep3x3, sep5x5, sep7x7, max3x3, "
                                                           "avg3x3, conv1x1, conv3x3)");
    cu->p += len;
    if (!accept(cu, '(')) return syntax(cu, "'(' and a hidden state index");
    if (*cu->p < '0' || *cu->p > '9') return syntax(cu, "a hidden state index");
    char *end;
    long v = strtol(cu->p, &end, 10);
    if (v > 1 + block || end - cu->p > 3)
        return evo_fail(DN_ERR_PARSE, "cells text '%.200s': block %d reads hidden state %.*s, but only 0..%d come "
                        "before it", cu->all, block, (int)(end - cu->p), cu->p, 1 + block);
    cu->p = end;
    *in = (int)v;
    if (!accept(cu, ')')) return syntax(cu, "')'");
    return DN_OK;
}

/* name "=" block ("," block)*; block = slot "+" slot */
static dn_status parse_cell(cursor *cu, evo_block *blocks, int *count, int *reduction)
{
    if (strncmp(cu->p, "normal=", 7) == 0) { *reduction = 0; cu->p += 7; }
    else if (strncmp(cu->p, "reduction=", 10) == 0) { *reduction = 1; cu->p += 10; }
    else return syntax(cu, "'normal=' or 'reduction='");
    int n = 0;
    do {
        if (n == EVO_MAX_BLOCKS) return syntax(cu, "at most 16 blocks, not more");
        DN_TRY(parse_slot(cu, n, &blocks[n].in[0], &blocks[n].op[0]));
        if (!accept(cu, '+')) return syntax(cu, "'+' and the block's second op");
        DN_TRY(parse_slot(cu, n, &blocks[n].in[1], &blocks[n].op[1]));
        n++;
    } while (accept(cu, ','));
    *count = n;
    return DN_OK;
}

static dn_status parse_stripped(cursor *cu, evo_cells *out)
{
    evo_block blocks[2][EVO_MAX_BLOCKS];
    int count[2] = {0, 0}, seen[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
        if (k && !accept(cu, ';')) return syntax(cu, "';' and the other cell");
        evo_block tmp[EVO_MAX_BLOCKS];
        int n = 0, r = 0;
        DN_TRY(parse_cell(cu, tmp, &n, &r));
        if (seen[r]) return evo_fail(DN_ERR_PARSE, "cells text '%.200s': the %s cell is given twice", cu->all, cell_name(r));
        seen[r] = 1;
        count[r] = n;
        memcpy(blocks[r], tmp, sizeof tmp);
    }
    if (*cu->p) return syntax(cu, "the end of the text");
    if (count[0] != count[1])
        return evo_fail(DN_ERR_PARSE, "cells text '%.200s': the normal cell has %d blocks, the reduction cell %d; "
                        "both must have the same number", cu->all, count[0], count[1]);
    memset(out, 0, sizeof *out);
    out->blocks = count[0];
    memcpy(out->normal, blocks[0], (size_t)count[0] * sizeof blocks[0][0]);
    memcpy(out->reduction, blocks[1], (size_t)count[1] * sizeof blocks[1][0]);
    return DN_OK;
}

dn_status evo_cells_parse(const char *text, evo_cells *out)
{
    if (!text || !out) return evo_fail(DN_ERR_ARG, "evo_cells_parse: no text or output");
    char *s = malloc(strlen(text) + 1), *d = s;
    if (!s) return evo_fail(DN_ERR_NOMEM, "out of memory");
    for (const char *p = text; *p; ++p)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n' && *p != '\v' && *p != '\f') *d++ = *p;
    *d = 0;
    cursor cu = {s, s};
    evo_cells c;
    dn_status st = parse_stripped(&cu, &c);
    free(s);
    if (st == DN_OK) *out = c;
    return st;
}

/* ------------------------------------------------------------ genes */

/* Append an empty gene of `type` with `id` to g; *out points at it. */
static dn_status push_gene(evo_genome *g, int id, const char *type, evo_gene **out)
{
    evo_gene *ng = realloc(g->genes, (size_t)(g->n + 1) * sizeof *ng);
    if (!ng) return evo_fail(DN_ERR_NOMEM, "out of memory");
    g->genes = ng;
    evo_gene *gene = &ng[g->n];
    memset(gene, 0, sizeof *gene);
    gene->id = id;
    gene->type = strdup(type);
    if (!gene->type) return evo_fail(DN_ERR_NOMEM, "out of memory");
    g->n++;
    *out = gene;
    return DN_OK;
}

static dn_status set_refs(evo_gene *gene, const int *ids, int n)
{
    gene->refs = malloc((size_t)n * sizeof *gene->refs);
    if (!gene->refs) return evo_fail(DN_ERR_NOMEM, "out of memory");
    memcpy(gene->refs, ids, (size_t)n * sizeof *ids);
    gene->nrefs = n;
    return DN_OK;
}

/* Append a copy of src (same id, options, refs) to g. */
static dn_status push_copy(evo_genome *g, const evo_gene *src)
{
    evo_gene *gene = NULL;
    DN_TRY(push_gene(g, src->id, src->type, &gene));
    for (int i = 0; i < src->nkv; ++i) DN_TRY(evo_gene_set(gene, src->kv[i].key, src->kv[i].value));
    if (src->nrefs > 0) DN_TRY(set_refs(gene, src->refs, src->nrefs));
    return DN_OK;
}

/* Whole-string integer option; 0 when present and an int, else -1. */
static int gene_int(const evo_gene *g, const char *key, int *out)
{
    return evo_gene_get(g, key) ? evo_gene_int(g, key, 0, out) : -1;
}

static int is_cell(const evo_gene *g) { return strcmp(g->type, "cell") == 0; }

int evo_genome_has_cells(const evo_genome *g)
{
    for (int i = 0; g && i < g->n; ++i)
        if (is_cell(&g->genes[i])) return 1;
    return 0;
}

/* ------------------------------------------------------------ template checks */

/* Where a template gene came from: "name:line" with line numbers, else "template: layer i". */
typedef struct { const char *name; const int *lines; } origin;

static const char *where(const origin *o, int i, char *buf, size_t size)
{
    if (o->lines) snprintf(buf, size, "%s:%d", o->name, o->lines[i]);
    else snprintf(buf, size, "%s: layer %d", o->name, i);
    return buf;
}

/* Layers that belong to the classifier head: no cell may follow them. */
static int ends_body(const char *type)
{
    return !strcmp(type, "avgpool") || !strcmp(type, "connected") || !strcmp(type, "softmax") ||
           !strcmp(type, "cost");
}

/* One [cell]: only type=normal|reduction, filters >= 1, blocks in 1..16. */
static dn_status check_cell_gene(const evo_gene *g, const char *at, int *reduction, int *filters, int *blocks)
{
    for (int k = 0; k < g->nkv; ++k)
        if (strcmp(g->kv[k].key, "type") && strcmp(g->kv[k].key, "filters") && strcmp(g->kv[k].key, "blocks"))
            return evo_fail(DN_ERR_PARSE, "%s: [cell] has no option '%s' (type, filters, blocks)", at, g->kv[k].key);
    const char *type = evo_gene_get(g, "type");
    if (!type) return evo_fail(DN_ERR_PARSE, "%s: [cell] needs type=normal or type=reduction", at);
    if (strcmp(type, "normal") && strcmp(type, "reduction"))
        return evo_fail(DN_ERR_PARSE, "%s: unknown cell type '%s' (normal or reduction)", at, type);
    *reduction = strcmp(type, "reduction") == 0;
    if (!evo_gene_get(g, "filters")) return evo_fail(DN_ERR_PARSE, "%s: [cell] needs filters=F (F >= 1)", at);
    if (gene_int(g, "filters", filters) || *filters < 1 || *filters > 65536)
        return evo_fail(DN_ERR_PARSE, "%s: [cell] filters=%s must be an integer in 1..65536", at,
                        evo_gene_get(g, "filters"));
    *blocks = 0;
    if (evo_gene_get(g, "blocks") &&
        (gene_int(g, "blocks", blocks) || *blocks < 1 || *blocks > EVO_MAX_BLOCKS))
        return evo_fail(DN_ERR_PARSE, "%s: [cell] blocks=%s must be an integer in 1..%d", at,
                        evo_gene_get(g, "blocks"), EVO_MAX_BLOCKS);
    return DN_OK;
}

/* Everything about the template that needs no shapes. */
static dn_status check_structure(const evo_genome *t, const origin *o)
{
    char at[512], at2[512];
    int cells = 0, head = -1, blocks = 0, blocks_at = -1;
    for (int i = 0; i < t->n; ++i) {
        const evo_gene *g = &t->genes[i];
        if (!is_cell(g)) {
            if (head < 0 && ends_body(g->type)) head = i;
            continue;
        }
        int r = 0, f = 0, b = 0;
        DN_TRY(check_cell_gene(g, where(o, i, at, sizeof at), &r, &f, &b));
        if (i == 0)
            return evo_fail(DN_ERR_PARSE, "%s: a [cell] needs a layer before it (a stem such as a [convolutional]): "
                            "its input is the layer right before it", at);
        if (head >= 0)
            return evo_fail(DN_ERR_PARSE, "%s: [cell] in the classifier head (after the [%s] at %s); cells go before "
                            "the head", at, t->genes[head].type, where(o, head, at2, sizeof at2));
        if (b && blocks && b != blocks)
            return evo_fail(DN_ERR_PARSE, "%s: [cell] blocks=%d, but the [cell] at %s has blocks=%d (one cell "
                            "architecture serves every cell)", at, b, where(o, blocks_at, at2, sizeof at2), blocks);
        if (b && !blocks) { blocks = b; blocks_at = i; }
        cells++;
    }
    if (cells == 0) return evo_fail(DN_ERR_PARSE, "%s: the template has no [cell] section", o->name);
    return DN_OK;
}

int evo_template_blocks(const evo_genome *tmpl)
{
    for (int i = 0; tmpl && i < tmpl->n; ++i) {
        int b;
        if (is_cell(&tmpl->genes[i]) && !gene_int(&tmpl->genes[i], "blocks", &b) && b >= 1 && b <= EVO_MAX_BLOCKS)
            return b;
    }
    return EVO_DEFAULT_BLOCKS;
}

/* ------------------------------------------------------------ expansion */

/* Roles of a cell's layers (id = cell base + role). */
enum {
    ROLE_P1_CONV = 0, ROLE_P0_ROUTE = 1, ROLE_P0_POOL = 2, ROLE_P0_CONV = 6,   /* up to 4 halvings of h(k-2) */
    ROLE_BLOCKS = 8, ROLE_BLOCK_STRIDE = 20, ROLE_SLOT_STRIDE = 8,
    /* within a slot */
    SLOT_ROUTE = 0, SLOT_SUB = 1, SLOT_DW = 2, SLOT_PW = 3, SLOT_MAX = 4, SLOT_AVG = 5, SLOT_CONV1 = 6, SLOT_CONV3 = 7,
    /* within a block, after the two slots */
    BLOCK_ROUTE = 16, BLOCK_SHORTCUT = 17,
    ROLE_OUTPUT = ROLE_BLOCKS + EVO_MAX_BLOCKS * ROLE_BLOCK_STRIDE,
    MAX_HALVINGS = ROLE_P0_CONV - ROLE_P0_POOL,
};
_Static_assert(ROLE_OUTPUT < EVO_CELL_ID_STRIDE, "cell roles must fit in EVO_CELL_ID_STRIDE");

/* The cell being written. */
typedef struct {
    evo_genome *out;
    int base;              /* id of role 0 */
    int filters;
} builder;

static int last_id(const builder *b) { return b->out->genes[b->out->n - 1].id; }

/* Append a gene of `type` with key/value pairs (NULL-terminated). */
static dn_status add_layer(builder *b, int role, const char *type, const char *const *kv, evo_gene **out)
{
    evo_gene *g = NULL;
    DN_TRY(push_gene(b->out, b->base + role, type, &g));
    for (int i = 0; kv && kv[i]; i += 2) DN_TRY(evo_gene_set(g, kv[i], kv[i + 1]));
    if (out) *out = g;
    return DN_OK;
}

/* Make `state` the input of the next layer: a [route] unless it is the last layer. */
static dn_status read_state(builder *b, int role, int state)
{
    if (last_id(b) == state) return DN_OK;
    evo_gene *g = NULL;
    DN_TRY(add_layer(b, role, "route", NULL, &g));
    return set_refs(g, &state, 1);
}

/* [convolutional] F filters, batch norm; groups > 1: depthwise. */
static dn_status add_conv(builder *b, int role, int size, int stride, int groups, const char *activation)
{
    evo_gene *g = NULL;
    DN_TRY(add_layer(b, role, "convolutional", (const char *const[]){"batch_normalize", "1", NULL}, &g));
    DN_TRY(evo_gene_set_int(g, "filters", b->filters));
    DN_TRY(evo_gene_set_int(g, "size", size));
    DN_TRY(evo_gene_set_int(g, "stride", stride));
    if (size > 1) DN_TRY(evo_gene_set(g, "pad", "1"));
    if (groups > 1) DN_TRY(evo_gene_set_int(g, "groups", groups));
    return evo_gene_set(g, "activation", activation);
}

static dn_status add_pool(builder *b, int role, const char *type, int size, int stride)
{
    evo_gene *g = NULL;
    DN_TRY(add_layer(b, role, type, NULL, &g));
    DN_TRY(evo_gene_set_int(g, "size", size));
    DN_TRY(evo_gene_set_int(g, "stride", stride));
    return evo_gene_set_int(g, "padding", size - 1);
}

/* Op on hidden state `state` (gene id) with stride; *result = its output's id. */
static dn_status add_op(builder *b, evo_op op, int state, int stride, int role, int *result)
{
    if (op == EVO_OP_IDENTITY && stride == 1) { *result = state; return DN_OK; }
    DN_TRY(read_state(b, role + SLOT_ROUTE, state));
    switch (op) {
    case EVO_OP_IDENTITY: DN_TRY(add_pool(b, role + SLOT_SUB, "maxpool", 1, 2)); break;
    case EVO_OP_SEP3: case EVO_OP_SEP5: case EVO_OP_SEP7:
        DN_TRY(add_conv(b, role + SLOT_DW, op == EVO_OP_SEP3 ? 3 : op == EVO_OP_SEP5 ? 5 : 7, stride, b->filters, "linear"));
        DN_TRY(add_conv(b, role + SLOT_PW, 1, 1, 1, "relu"));
        break;
    case EVO_OP_MAX3: DN_TRY(add_pool(b, role + SLOT_MAX, "maxpool", 3, stride)); break;
    case EVO_OP_AVG3: DN_TRY(add_pool(b, role + SLOT_AVG, "local_avgpool", 3, stride)); break;
    case EVO_OP_CONV1:
        if (stride > 1) DN_TRY(add_pool(b, role + SLOT_SUB, "maxpool", 1, stride));
        DN_TRY(add_conv(b, role + SLOT_CONV1, 1, 1, 1, "relu"));
        break;
    case EVO_OP_CONV3: DN_TRY(add_conv(b, role + SLOT_CONV3, 3, stride, 1, "relu")); break;
    default: return evo_fail(DN_ERR_ARG, "unknown op %d", (int)op);
    }
    *result = last_id(b);
    return DN_OK;
}

/* Block j: both ops, then the [shortcut] adding them; *result = its id. */
static dn_status add_block(builder *b, const evo_block *blk, int j, const int *states, int reduction, int *result)
{
    int role = ROLE_BLOCKS + j * ROLE_BLOCK_STRIDE, out[2];
    for (int s = 0; s < 2; ++s) {
        int stride = reduction && blk->in[s] < 2 ? 2 : 1;
        DN_TRY(add_op(b, blk->op[s], states[blk->in[s]], stride, role + s * ROLE_SLOT_STRIDE, &out[s]));
    }
    int from = out[0];
    if (last_id(b) == out[0]) from = out[1];
    else if (last_id(b) != out[1]) DN_TRY(read_state(b, role + BLOCK_ROUTE, out[1]));
    evo_gene *g = NULL;
    DN_TRY(add_layer(b, role + BLOCK_SHORTCUT, "shortcut", (const char *const[]){"activation", "linear", NULL}, &g));
    DN_TRY(set_refs(g, &from, 1));
    *result = g->id;
    return DN_OK;
}

/* Spatial sizes of layers i0 and i1 of g (shape inference of g as it is,
 * closed with a [softmax] since the framework wants a classifier's end). */
static dn_status layer_sizes(const evo_genome *g, int i0, int i1, int size0[2], int size1[2])
{
    char *text;
    DN_TRY(evo_genome_emit(g, 0, &text));
    size_t len = strlen(text);
    char *closed = realloc(text, len + sizeof "\n[softmax]\n");
    if (!closed) { free(text); return evo_fail(DN_ERR_NOMEM, "out of memory"); }
    memcpy(closed + len, "\n[softmax]\n", sizeof "\n[softmax]\n");
    dn_parse_options po = {.batch = 1, .quiet = 1, .shapes_only = 1};
    dn_network *net = NULL;
    dn_status st = dn_network_parse_string(closed, "<expanded template>", &po, &net);
    free(closed);
    if (st != DN_OK) return evo_fail(st, "the layers before it do not build: %s", evo_last_error());
    size0[0] = net->layers[i0].out_w; size0[1] = net->layers[i0].out_h;
    size1[0] = net->layers[i1].out_w; size1[1] = net->layers[i1].out_h;
    dn_network_free(net);
    return DN_OK;
}

/* How many stride-2 halvings bring h(k-2) down to h(k-1)'s size, or -1. */
static int halvings(const int s0[2], const int s1[2])
{
    int w = s0[0], h = s0[1];
    for (int n = 0; n <= MAX_HALVINGS; ++n) {
        if (w == s1[0] && h == s1[1]) return n;
        if (w <= s1[0] && h <= s1[1]) return -1;
        w = (w - 1) / 2 + 1;
        h = (h - 1) / 2 + 1;
    }
    return -1;
}

/* The two preprocessed inputs: states[0] = h(k-2)', states[1] = h(k-1)'. */
static dn_status add_inputs(builder *b, int h0, const char *at, int states[2])
{
    evo_genome *g = b->out;
    int s0[2] = {0, 0}, s1[2] = {0, 0};
    dn_status st = layer_sizes(g, evo_genome_find(g, h0), g->n - 1, s0, s1);
    if (st != DN_OK) return evo_fail(st, "%s: [cell]: %s", at, evo_last_error());
    if (s1[0] < 1 || s1[1] < 1)
        return evo_fail(DN_ERR_SHAPE, "%s: [cell]: the layer before it has no image output (%dx%d)", at, s1[0], s1[1]);
    int n = halvings(s0, s1);
    if (n < 0)
        return evo_fail(DN_ERR_SHAPE, "%s: [cell]: input sizes do not line up: h(k-2) is %dx%d, h(k-1) is %dx%d; "
                        "h(k-2) must equal h(k-1) or halve down to it (at most %d times)", at, s0[0], s0[1], s1[0],
                        s1[1], MAX_HALVINGS);
    DN_TRY(add_conv(b, ROLE_P1_CONV, 1, 1, 1, "relu"));
    states[1] = last_id(b);
    DN_TRY(read_state(b, ROLE_P0_ROUTE, h0));
    for (int k = 0; k < n; ++k) DN_TRY(add_pool(b, ROLE_P0_POOL + k, "maxpool", 2, 2));
    DN_TRY(add_conv(b, ROLE_P0_CONV, 1, 1, 1, "relu"));
    states[0] = last_id(b);
    return DN_OK;
}

/* One [cell] (h0: id of h(k-2)); *result = the id of its output [route]. */
static dn_status add_cell(builder *b, const evo_cells *c, int reduction, int h0, const char *at, int *result)
{
    int states[2 + EVO_MAX_BLOCKS], used[2 + EVO_MAX_BLOCKS] = {0};
    DN_TRY(add_inputs(b, h0, at, states));
    const evo_block *blocks = cell_blocks(c, reduction);
    for (int j = 0; j < c->blocks; ++j) {
        DN_TRY(add_block(b, &blocks[j], j, states, reduction, &states[2 + j]));
        used[blocks[j].in[0]] = used[blocks[j].in[1]] = 1;
    }
    int outs[EVO_MAX_BLOCKS], n = 0;
    for (int j = 0; j < c->blocks; ++j)
        if (!used[2 + j]) outs[n++] = states[2 + j];
    evo_gene *g = NULL;
    DN_TRY(add_layer(b, ROLE_OUTPUT, "route", NULL, &g));
    DN_TRY(set_refs(g, outs, n));
    *result = g->id;
    return DN_OK;
}

/* Template ids of [cell]s -> ids of their output routes, for refs of later layers. */
typedef struct { int *from, *to; int n; } id_map;

static int map_id(const id_map *m, int id)
{
    for (int i = 0; i < m->n; ++i)
        if (m->from[i] == id) return m->to[i];
    return id;
}

/* A non-cell template gene, its refs to cells redirected to their outputs. */
static dn_status copy_layer(evo_genome *out, const evo_gene *src, const id_map *m)
{
    DN_TRY(push_copy(out, src));
    evo_gene *g = &out->genes[out->n - 1];
    for (int k = 0; k < g->nrefs; ++k) g->refs[k] = map_id(m, g->refs[k]);
    return DN_OK;
}

static dn_status expand_genes(const evo_genome *t, const evo_cells *c, const origin *o, evo_genome *out, id_map *m)
{
    char at[512];
    int h0 = 0, k = 0;   /* h0: the previous cell's h(k-1) (0: no cell yet) */
    for (int i = 0; i < t->n; ++i) {
        const evo_gene *src = &t->genes[i];
        if (i == t->body_end) out->body_end = out->n;
        if (!is_cell(src)) { DN_TRY(copy_layer(out, src, m)); continue; }
        int r = 0, f = 0, blocks = 0;
        DN_TRY(check_cell_gene(src, where(o, i, at, sizeof at), &r, &f, &blocks));
        if (blocks && blocks != c->blocks)
            return evo_fail(DN_ERR_ARG, "%s: [cell] blocks=%d, but the cell architecture has %d blocks", at, blocks,
                            c->blocks);
        int h1 = out->genes[out->n - 1].id;
        builder b = {out, t->next_id + k * EVO_CELL_ID_STRIDE, f};
        m->from[m->n] = src->id;
        DN_TRY(add_cell(&b, c, r, h0 ? h0 : h1, at, &m->to[m->n]));
        m->n++;
        h0 = h1;
        k++;
    }
    if (t->body_end >= t->n) out->body_end = out->n;
    out->next_id = t->next_id + k * EVO_CELL_ID_STRIDE;
    return DN_OK;
}

static dn_status expand(const evo_genome *t, const evo_cells *c, const origin *o, evo_genome *out)
{
    memset(out, 0, sizeof *out);
    DN_TRY(evo_cells_check(c));
    DN_TRY(check_structure(t, o));
    if ((long long)t->next_id + (long long)t->n * EVO_CELL_ID_STRIDE > 1000000000LL)
        return evo_fail(DN_ERR_ARG, "%s: gene ids would pass 10^9 (next_id %d)", o->name, t->next_id);
    id_map m = {calloc((size_t)t->n, sizeof(int)), calloc((size_t)t->n, sizeof(int)), 0};
    dn_status st = m.from && m.to ? DN_OK : evo_fail(DN_ERR_NOMEM, "out of memory");
    for (int i = 0; st == DN_OK && i < t->nnet; ++i) st = evo_net_set(out, t->net[i].key, t->net[i].value);
    if (st == DN_OK) st = expand_genes(t, c, o, out, &m);
    if (st == DN_OK) st = evo_cells_format(c, &out->cells);
    free(m.from);
    free(m.to);
    if (st != DN_OK) evo_genome_free(out);
    return st;
}

dn_status evo_cells_expand(const evo_genome *tmpl, const evo_cells *c, evo_genome *out)
{
    if (!tmpl || !c || !out) return evo_fail(DN_ERR_ARG, "evo_cells_expand: no template, cells or output");
    origin o = {"template", NULL};
    return expand(tmpl, c, &o, out);
}

/* ------------------------------------------------------------ template check */

/* Expand with a probe architecture (every block: sep3x3 on both inputs) and
 * run shape inference over the whole result. */
static dn_status check_template(const evo_genome *t, const origin *o)
{
    evo_cells probe;
    memset(&probe, 0, sizeof probe);
    probe.blocks = evo_template_blocks(t);
    for (int j = 0; j < probe.blocks; ++j)
        for (int s = 0; s < 2; ++s) {
            probe.normal[j].in[s] = probe.reduction[j].in[s] = s;
            probe.normal[j].op[s] = probe.reduction[j].op[s] = EVO_OP_SEP3;
        }
    evo_genome g;
    DN_TRY(expand(t, &probe, o, &g));
    dn_status st = evo_genome_check(&g, NULL, NULL);
    evo_genome_free(&g);
    if (st != DN_OK)
        return evo_fail(st, "%s: the template does not build once its cells are expanded: %s", o->name,
                        evo_last_error());
    return DN_OK;
}

dn_status evo_template_check(const evo_genome *tmpl)
{
    if (!tmpl) return evo_fail(DN_ERR_ARG, "evo_template_check: no template");
    origin o = {"template", NULL};
    return check_template(tmpl, &o);
}

/* Header line of every layer section of cfg text (the framework's lexer, as
 * the genome parser reads it: the first section is [net]); NULL on failure. */
static int *section_lines(const char *text, int n)
{
    dn_cfg cfg;
    if (dn_cfg_lex_annotated(text, "template", "#evo", &cfg) != DN_OK) return NULL;
    int *lines = calloc((size_t)(n > 0 ? n : 1), sizeof *lines);
    for (int k = 0; lines && k < n && k + 1 < cfg.nsections; ++k) lines[k] = cfg.sections[k + 1].line;
    dn_cfg_free(&cfg);
    return lines;
}

dn_status evo_template_parse(const char *cfg_text, const char *name, evo_genome *out)
{
    if (!out) return evo_fail(DN_ERR_ARG, "evo_template_parse: no output genome");
    if (!name) name = "<string>";
    DN_TRY(evo_genome_parse(cfg_text, name, out));
    origin o = {name, section_lines(cfg_text, out->n)};
    dn_status st = o.lines ? check_template(out, &o) : evo_fail(DN_ERR_NOMEM, "out of memory");
    free((void *)o.lines);
    if (st != DN_OK) evo_genome_free(out);
    return st;
}

/* ------------------------------------------------------------ rescale */

static int is_normal_cell(const evo_gene *g)
{
    const char *t = evo_gene_get(g, "type");
    return is_cell(g) && t && strcmp(t, "normal") == 0;
}

static dn_status scale_filters(evo_genome *g, int filters)
{
    int first = 0;
    for (int i = 0; i < g->n; ++i) {
        int f;
        if (!is_cell(&g->genes[i])) continue;
        if (gene_int(&g->genes[i], "filters", &f) || f < 1)
            return evo_fail(DN_ERR_PARSE, "template: layer %d: [cell] needs filters=F (F >= 1)", i);
        if (!first) first = f;
        long nf = ((long)f * filters + first / 2) / first;
        DN_TRY(evo_gene_set_int(&g->genes[i], "filters", nf < 1 ? 1 : (int)nf));
    }
    return DN_OK;
}

static int is_read(const evo_genome *g, int id)
{
    for (int i = 0; i < g->n; ++i)
        for (int k = 0; k < g->genes[i].nrefs; ++k)
            if (g->genes[i].refs[k] == id) return 1;
    return 0;
}

/* Genes of t into out, each run of normal cells made `len` long. */
static dn_status resize_runs(const evo_genome *t, int len, evo_genome *out)
{
    for (int i = 0; i < t->n;) {
        if (i == t->body_end) out->body_end = out->n;
        if (!is_normal_cell(&t->genes[i])) { DN_TRY(push_copy(out, &t->genes[i])); i++; continue; }
        int end = i;
        while (end < t->n && end != t->body_end && is_normal_cell(&t->genes[end])) end++;
        for (int k = i + len; k < end; ++k)
            if (is_read(t, t->genes[k].id))
                return evo_fail(DN_ERR_ARG, "template: layer %d: cannot drop this [cell]: a later layer reads it", k);
        for (int k = 0; k < len; ++k) {
            DN_TRY(push_copy(out, &t->genes[i + k < end ? i + k : end - 1]));
            if (i + k >= end) out->genes[out->n - 1].id = out->next_id++;
        }
        i = end;
    }
    if (t->body_end >= t->n) out->body_end = out->n;
    return DN_OK;
}

static dn_status rescale(const evo_genome *t, int filters, int normal_cells, evo_genome *out)
{
    origin o = {"template", NULL};
    DN_TRY(check_structure(t, &o));
    if (normal_cells <= 0) DN_TRY(evo_genome_copy(t, out));
    else {
        for (int i = 0; i < t->nnet; ++i) DN_TRY(evo_net_set(out, t->net[i].key, t->net[i].value));
        out->next_id = t->next_id;
        DN_TRY(resize_runs(t, normal_cells, out));
    }
    if (filters > 0) DN_TRY(scale_filters(out, filters));
    return DN_OK;
}

dn_status evo_template_rescale(const evo_genome *tmpl, int filters, int normal_cells, evo_genome *out)
{
    if (!tmpl || !out) return evo_fail(DN_ERR_ARG, "evo_template_rescale: no template or output");
    memset(out, 0, sizeof *out);
    dn_status st = rescale(tmpl, filters, normal_cells, out);
    if (st != DN_OK) evo_genome_free(out);
    return st;
}
