/*
 * diagram.c — architecture diagrams as Graphviz dot text, and rendering them
 * with the `dot` program when it is installed.
 *
 * A network (an individual's cfg): an input node, then one box per layer,
 * top to bottom, labelled with what the layer is (type, filters, kernel
 * size/stride, groups, batch norm, activation), its output w x h x c from the
 * framework's shape inference (dn_network_parse_string, shapes only) and its
 * gene id. Edges: the flow from the previous layer, a route's inputs, a
 * shortcut's second input (dashed: a skip connection). When the cfg does not
 * infer (e.g. a failed individual), the boxes show the options as written.
 *
 * A cell (Regularized Evolution): the inputs h(k-2) and h(k-1), each block's
 * two ops and their sum, and the concatenation of the blocks no later block
 * reads; in a reduction cell the ops on the cell inputs have stride 2.
 */
#include "evo_internal.h"
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;


/* A dot string literal's content: quotes and backslashes escaped, "\n" kept
 * as dot's line break. */
static void dot_escape(evo_text *t, const char *s)
{
    for (const char *p = s ? s : ""; *p; ++p) {
        if (*p == '"' || *p == '\\') evo_text_put(t, "\\", 1);
        if (*p == '\n') { evo_text_put(t, "\\n", 2); continue; }
        evo_text_put(t, p, 1);
    }
}

/* id (may be NULL) prefixes the ids of the SVG's elements, unique in a page. */
static void graph_head(evo_text *t, const char *name, const char *id, const char *title)
{
    evo_text_add(t, "digraph \"");
    dot_escape(t, name);
    evo_text_add(t, "\" {\n");
    if (id) {
        evo_text_add(t, "  graph [id=\"");
        dot_escape(t, id);
        evo_text_add(t, "\"];\n");
    }
    evo_text_add(t, "  graph [rankdir=TB, labelloc=t, fontname=\"Helvetica\", fontsize=12, nodesep=0.25, "
                 "ranksep=0.28, label=\"");
    dot_escape(t, title);
    evo_text_add(t, "\"];\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=9, "
                 "fillcolor=\"#eeeeee\", margin=\"0.08,0.03\"];\n  edge [arrowsize=0.6, color=\"#555555\", fontname=\"Helvetica\"];\n");
}

static dn_status take(evo_text *t, char **out, const char *what)
{
    if (t->failed) { evo_text_free(t); return evo_fail(DN_ERR_NOMEM, "out of memory drawing %s", what); }
    *out = t->s;
    return DN_OK;
}

/* ------------------------------------------------------------ networks */

static const char *fill_of(const char *type)
{
    static const char *const colors[][2] = {
        {"convolutional", "#cfe2ff"}, {"maxpool", "#d1e7dd"}, {"local_avgpool", "#d1e7dd"}, {"avgpool", "#d1e7dd"},
        {"connected", "#fff3cd"}, {"route", "#e2d9f3"}, {"shortcut", "#f8d7da"}, {"softmax", "#e9ecef"},
        {"cost", "#e9ecef"}, {"dropout", "#f3f3f3"},
    };
    for (size_t i = 0; i < sizeof colors / sizeof colors[0]; ++i)
        if (!strcmp(type, colors[i][0])) return colors[i][1];
    return "#f3f3f3";
}

/* What a layer is, from the parsed layer (so defaults are the framework's). */
static void describe_layer(evo_text *t, const dn_layer *l)
{
    const char *act = dn_activation_name(l->activation);
    switch (l->type) {
    case DN_CONVOLUTIONAL:
        evo_text_add(t, "conv %d  %dx%d/%d", l->filters, l->size, l->size, l->stride);
        if (l->groups > 1) evo_text_add(t, "  groups %d", l->groups);
        evo_text_add(t, "\n%s%s", l->batch_normalize ? "bn, " : "", act);
        break;
    case DN_CONNECTED: evo_text_add(t, "connected %d\n%s", l->outputs, act); break;
    case DN_MAXPOOL: evo_text_add(t, "maxpool %dx%d/%d", l->size, l->size, l->stride); break;
    case DN_LOCAL_AVGPOOL: evo_text_add(t, "avgpool %dx%d/%d", l->size, l->size, l->stride); break;
    case DN_AVGPOOL: evo_text_add(t, "global avgpool"); break;
    case DN_DROPOUT: evo_text_add(t, "dropout %.2g", l->probability); break;
    case DN_SOFTMAX: evo_text_add(t, "softmax"); break;
    case DN_COST: evo_text_add(t, "cost"); break;
    case DN_ROUTE: evo_text_add(t, "%s", l->n_inputs > 1 ? "route (concat)" : "route"); break;
    case DN_SHORTCUT: evo_text_add(t, "shortcut (+)\n%s", act); break;
    case DN_BATCHNORM: evo_text_add(t, "batchnorm"); break;
    case DN_ACTIVATION_LAYER: evo_text_add(t, "activation\n%s", act); break;
    default: evo_text_add(t, "%s", dn_layer_type_name(l->type)); break;
    }
    evo_text_add(t, "\n%dx%dx%d", l->out_w, l->out_h, l->out_c);
}

/* The same from the cfg's options as written (no shapes). */
static void describe_gene(evo_text *t, const evo_gene *g)
{
    evo_text_add(t, "%s", g->type);
    for (int k = 0; k < g->nkv && k < 6; ++k) evo_text_add(t, "\n%s=%s", g->kv[k].key, g->kv[k].value);
}

static void layer_node(evo_text *t, const evo_gene *g, const dn_layer *l, int i)
{
    evo_text label = {0};
    if (l) describe_layer(&label, l);
    else describe_gene(&label, g);
    evo_text_add(&label, "   [id %d]", g->id);
    evo_text_add(t, "  L%d [label=\"", i);
    dot_escape(t, label.failed ? g->type : label.s);
    evo_text_add(t, "\", fillcolor=\"%s\"];\n", fill_of(g->type));
    t->failed |= label.failed;
    evo_text_free(&label);
}

static void node_name(char *buf, size_t n, int index) { if (index < 0) snprintf(buf, n, "input"); else snprintf(buf, n, "L%d", index); }

/* Edges into layer i: a route from its inputs, a shortcut from the previous
 * layer and (dashed) from its `from`, anything else from the previous layer. */
static void layer_edges(evo_text *t, const evo_genome *g, int i)
{
    const evo_gene *gene = &g->genes[i];
    char a[16], b[16];
    node_name(b, sizeof b, i);
    int is_route = !strcmp(gene->type, "route"), is_shortcut = !strcmp(gene->type, "shortcut");
    if (!is_route) {
        node_name(a, sizeof a, i - 1);
        evo_text_add(t, "  %s -> %s;\n", a, b);
    }
    for (int k = 0; (is_route || is_shortcut) && k < gene->nrefs; ++k) {
        int from = evo_genome_find(g, gene->refs[k]);
        if (from < 0) continue;
        node_name(a, sizeof a, from);
        if (is_route) evo_text_add(t, "  %s -> %s [color=\"#6a3d9a\"];\n", a, b);
        else evo_text_add(t, "  %s -> %s [style=dashed, color=\"#c04000\", label=\" skip\", fontsize=8, "
                          "fontcolor=\"#c04000\"];\n", a, b);
    }
}

/* Shapes of the cfg, or NULL (why in *why) when it does not infer. */
static dn_network *infer(const char *cfg_text, const char *name, char *why, size_t n)
{
    dn_parse_options po = {.batch = 1, .quiet = 1, .shapes_only = 1};
    dn_network *net = NULL;
    if (dn_network_parse_string(cfg_text, name, &po, &net) != DN_OK) {
        snprintf(why, n, "%s", dn_last_error());
        return NULL;
    }
    return net;
}

dn_status evo_diagram_network(const char *cfg_text, const char *name, const char *id, const char *title, char **dot)
{
    *dot = NULL;
    if (!cfg_text || !name) return evo_fail(DN_ERR_ARG, "evo_diagram_network: no cfg");
    evo_genome g;
    DN_TRY(evo_genome_parse(cfg_text, name, &g));
    char why[1024] = "";
    dn_network *net = infer(cfg_text, name, why, sizeof why);
    if (net && net->n != g.n) {
        snprintf(why, sizeof why, "%d layers parsed for %d sections", net->n, g.n);
        dn_network_free(net);
        net = NULL;
    }
    evo_text t = {0};
    graph_head(&t, name, id, title ? title : name);
    const char *w = evo_net_get(&g, "width"), *h = evo_net_get(&g, "height"), *c = evo_net_get(&g, "channels");
    if (net) evo_text_add(&t, "  input [label=\"input\\n%dx%dx%d\", fillcolor=\"#ffffff\"];\n", net->w, net->h, net->c);
    else evo_text_add(&t, "  input [label=\"input\\n%sx%sx%s\", fillcolor=\"#ffffff\"];\n", w ? w : "?", h ? h : "?",
                      c ? c : "?");
    for (int i = 0; i < g.n; ++i) layer_node(&t, &g.genes[i], net ? &net->layers[i] : NULL, i);
    for (int i = 0; i < g.n; ++i) layer_edges(&t, &g, i);
    if (!net) {
        evo_text_add(&t, "  note [shape=note, fillcolor=\"#fff8e1\", label=\"shapes not inferred: ");
        dot_escape(&t, why);
        evo_text_add(&t, "\"];\n");
    }
    evo_text_add(&t, "}\n");
    dn_network_free(net);
    evo_genome_free(&g);
    return take(&t, dot, "a network");
}

/* ------------------------------------------------------------ cells */

static void state_node(char *buf, size_t n, int state)
{
    if (state < 2) snprintf(buf, n, "h%d", state);
    else snprintf(buf, n, "b%d", state - 2);
}

static int block_is_read(const evo_block *b, int blocks, int j)
{
    for (int k = j + 1; k < blocks; ++k)
        if (b[k].in[0] == 2 + j || b[k].in[1] == 2 + j) return 1;
    return 0;
}

static void cell_block(evo_text *t, const evo_block *b, int j, int reduction)
{
    char from[16];
    for (int s = 0; s < 2; ++s) {
        evo_text_add(t, "  o%d_%d [label=\"%s\", fillcolor=\"%s\"];\n", j, s, evo_op_name(b->op[s]),
                     b->op[s] == EVO_OP_IDENTITY ? "#f3f3f3" : b->op[s] == EVO_OP_MAX3 || b->op[s] == EVO_OP_AVG3
                                                                    ? "#d1e7dd" : "#cfe2ff");
        state_node(from, sizeof from, b->in[s]);
        evo_text_add(t, "  %s -> o%d_%d%s;\n", from, j, s,
                     reduction && b->in[s] < 2 ? " [label=\" stride 2\", fontsize=8]" : "");
        evo_text_add(t, "  o%d_%d -> b%d;\n", j, s, j);
    }
    evo_text_add(t, "  b%d [label=\"+\\nblock %d\", shape=ellipse, fillcolor=\"#f8d7da\"];\n", j, j);
}

dn_status evo_diagram_cell(const evo_cells *c, int reduction, const char *id, const char *title, char **dot)
{
    *dot = NULL;
    if (!c) return evo_fail(DN_ERR_ARG, "evo_diagram_cell: no cells");
    DN_TRY(evo_cells_check(c));
    const evo_block *b = reduction ? c->reduction : c->normal;
    evo_text t = {0};
    graph_head(&t, reduction ? "reduction cell" : "normal cell", id, title ? title : "");
    evo_text_add(&t, "  h0 [label=\"h(k-2)\", shape=ellipse, fillcolor=\"#ffffff\"];\n"
                     "  h1 [label=\"h(k-1)\", shape=ellipse, fillcolor=\"#ffffff\"];\n"
                     "  { rank=same; h0 -> h1 [style=invis]; }\n");
    for (int j = 0; j < c->blocks; ++j) cell_block(&t, &b[j], j, reduction);
    evo_text_add(&t, "  out [label=\"concat\\n(cell output)\", fillcolor=\"#e2d9f3\"];\n");
    for (int j = 0; j < c->blocks; ++j)
        if (!block_is_read(b, c->blocks, j)) evo_text_add(&t, "  b%d -> out;\n", j);
    evo_text_add(&t, "}\n");
    return take(&t, dot, "a cell");
}

/* ------------------------------------------------------------ rendering */

int evo_dot_available(void)
{
    const char *path = getenv("PATH");
    char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    int found = 0;
    char *save = NULL;
    for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d && !found; d = strtok_r(NULL, ":", &save)) {
        char exe[4096];
        snprintf(exe, sizeof exe, "%s/dot", *d ? d : ".");
        found = access(exe, X_OK) == 0;
    }
    free(copy);
    return found;
}

static dn_status run_dot(const char *dot_path, const char *out_path)
{
    char *argv[] = {"dot", "-Tsvg", "-o", (char *)out_path, (char *)dot_path, NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, "dot", NULL, NULL, argv, environ);
    if (e != 0) return evo_fail(DN_ERR_IO, "cannot run Graphviz dot: %s", strerror(e));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return evo_fail(DN_ERR_IO, "dot -Tsvg %s: %s", dot_path, strerror(errno));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return evo_fail(DN_ERR_IO, "dot -Tsvg %s failed (%s %d)", dot_path,
                        WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return DN_OK;
}

dn_status evo_dot_render(const char *dot_path, const char *svg_path)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp.%ld", svg_path, (long)getpid()) < 0) return evo_fail(DN_ERR_NOMEM, "out of memory");
    dn_status s = run_dot(dot_path, tmp);
    if (s == DN_OK) s = dn_rename_durable(tmp, svg_path);   /* dot wrote tmp: it becomes the page's file whole */
    if (s != DN_OK) unlink(tmp);
    free(tmp);
    return s;
}
