/*
 * inherit.c — weight inheritance (Real et al. 2017, section 3.2): a child
 * keeps the trained weights of every layer it shares with its parent.
 *
 * Layer i of a network is gene i of its genome; layers are matched by gene
 * id. A child layer takes the parent's arrays (biases, scales, rolling
 * statistics, weights: everything dn_layer_params lists, bit for bit) when
 * the layer types match and every array has the same size; otherwise it keeps
 * the initialisation the framework gave it. Layers without parameters
 * (pooling, route, shortcut, activation, softmax, ...) count as neither.
 * Momentum buffers are not copied: the child starts its own optimisation.
 */
#include "evo_internal.h"
#include <string.h>

/* 1 when every array of a matches b in name and size (and both exist). */
static int params_match(const dn_param *a, int na, const dn_param *b, int nb)
{
    if (na != nb) return 0;
    for (int k = 0; k < na; ++k)
        if (a[k].n != b[k].n || strcmp(a[k].name, b[k].name) != 0 || !a[k].data || !b[k].data) return 0;
    return 1;
}

/* Copy parent layer p's arrays into child layer c when they match; returns 1
 * when copied. */
static int inherit_layer(dn_layer *c, const dn_layer *p)
{
    dn_param cp[DN_MAX_PARAMS], pp[DN_MAX_PARAMS];
    int nc = dn_layer_params(c, cp), np = dn_layer_params(p, pp);
    if (c->type != p->type || !params_match(cp, nc, pp, np)) return 0;
    for (int k = 0; k < nc; ++k) memcpy(cp[k].data, pp[k].data, cp[k].n * sizeof(float));
    return 1;
}

dn_status evo_inherit(dn_network *child, const evo_genome *child_genome, const dn_network *parent,
                      const evo_genome *parent_genome, evo_inherit_stats *stats)
{
    if (stats) memset(stats, 0, sizeof *stats);
    if (!child || !child_genome || !parent || !parent_genome)
        return evo_fail(DN_ERR_ARG, "evo_inherit: missing child or parent network or genome");
    if (child->n != child_genome->n || parent->n != parent_genome->n)
        return evo_fail(DN_ERR_ARG, "evo_inherit: networks and genomes differ in layer count (child %d vs %d, "
                        "parent %d vs %d)", child->n, child_genome->n, parent->n, parent_genome->n);
    evo_inherit_stats s = {0, 0};
    for (int i = 0; i < child->n; ++i) {
        dn_layer *c = &child->layers[i];
        dn_param cp[DN_MAX_PARAMS];
        if (dn_layer_params(c, cp) == 0) continue;   /* nothing to inherit */
        int j = evo_genome_find(parent_genome, child_genome->genes[i].id);
        if (j >= 0 && inherit_layer(c, &parent->layers[j])) s.copied++;
        else s.initialised++;
    }
    child->seen = parent->seen;
    if (stats) *stats = s;
    return DN_OK;
}
