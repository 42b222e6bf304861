/*
 * scale.c — a genome at another width, for the final training of a winner.
 *
 * The search ranks architectures after minutes of training, so it favours
 * models that learn fast, which on a CPU means small ones: the trivial seed's
 * winners have 17k-19k parameters. Final training has half an hour or more;
 * AmoebaNet (Real et al. 2018) and NASNet retrain their winners with more
 * filters than the search used. evo_genome_widen multiplies the width of
 * every hidden layer:
 *
 *   [convolutional] filters=f  ->  filters=max(1, round(f * k))
 *   [connected]     output=n   ->  output=max(1, round(n * k))
 *
 * except the last of these layers, which produces the class scores. A
 * grouped convolution whose groups equal its filters (depthwise) keeps
 * groups = filters; other groups stay. Routes and shortcuts follow (a
 * shortcut of two different channel counts adds the common ones, upstream's
 * rule). The FLOPs of a conv between two widened ones grow by about k^2.
 *
 * The result is a new network: it trains from scratch.
 */
#include "evo_internal.h"
#include <math.h>
#include <string.h>

static int weighted(const evo_gene *g)
{
    return !strcmp(g->type, "convolutional") || !strcmp(g->type, "connected");
}

static const char *width_key(const evo_gene *g)
{
    return !strcmp(g->type, "convolutional") ? "filters" : "output";
}

dn_status evo_genome_widen(const evo_genome *g, double k, evo_genome *out)
{
    memset(out, 0, sizeof *out);
    if (!g) return evo_fail(DN_ERR_ARG, "evo_genome_widen: no genome");
    if (!(k >= 1 && k <= EVO_MAX_WIDTH))
        return evo_fail(DN_ERR_ARG, "width %g: must be in [1, %d]", k, EVO_MAX_WIDTH);
    DN_TRY(evo_genome_copy(g, out));
    int last = -1;
    for (int i = 0; i < out->n; ++i)
        if (weighted(&out->genes[i])) last = i;
    dn_status s = DN_OK;
    for (int i = 0; s == DN_OK && i < last; ++i) {
        evo_gene *e = &out->genes[i];
        if (!weighted(e)) continue;
        const char *key = width_key(e);
        int f, groups;
        if (evo_gene_int(e, key, 1, &f) || evo_gene_int(e, "groups", 1, &groups) || f < 1)
            continue;   /* left for the shape check to report */
        double scaled = floor(f * k + 0.5);
        int nf = scaled < 1 ? 1 : scaled > 1e6 ? 1000000 : (int)scaled;
        s = evo_gene_set_int(e, key, nf);
        if (s == DN_OK && groups > 1 && groups == f) s = evo_gene_set_int(e, "groups", nf);
    }
    if (s != DN_OK) evo_genome_free(out);
    return s;
}
