/*
 * parser.c — cfg sections -> network: [net] options, per-layer parsing and
 * shape inference over the whole cfg, then allocation and initialisation.
 * Nothing big is allocated until every layer's shape is known and valid.
 */
#include "internal.h"
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Largest tensor (floats per image) or parameter array a layer may have: 4 GiB.
 * Checked during shape inference, before anything is allocated, so that
 * absurd generated cfgs fail with a shape error instead of int overflow. */
#define MAX_FLOATS ((size_t)1 << 30)

dn_status dn_require_image(dn_layer *l, dn_parse_ctx *ctx)
{
    if (l->w < 1 || l->h < 1 || l->c < 1)
        return dn_opt_fail(ctx->opts, NULL, DN_ERR_SHAPE, "needs an image input, but the previous layer outputs %dx%dx%d",
                           l->w, l->h, l->c);
    return DN_OK;
}

dn_status dn_parse_common(dn_layer *l, dn_opts o)
{
    DN_TRY(dn_opt_float(o, "learning_rate", 1, &l->lr_mult));
    DN_TRY(dn_opt_int(o, "stopbackward", 0, &l->stopbackward));
    DN_TRY(dn_opt_int(o, "dontsave", 0, &l->dontsave));
    DN_TRY(dn_opt_int(o, "dontload", 0, &l->dontload));
    DN_TRY(dn_opt_int(o, "dontloadscales", 0, &l->dontloadscales));
    return DN_OK;
}

static dn_status parse_policy(dn_network *net, dn_opts o)
{
    static const char *const names[] = {"constant", "step", "steps", "exp", "poly", "sigmoid", "random"};
    const char *p = dn_opt_str(o, "policy", "constant");
    int found = -1;
    for (int i = 0; i < 7; ++i)
        if (strcmp(p, names[i]) == 0) found = i;
    if (found < 0)
        return dn_opt_fail(o, "policy", DN_ERR_PARSE,
                           "unknown policy '%s' (known: constant, step, steps, exp, poly, sigmoid, random)", p);
    net->policy = (dn_policy)found;
    DN_TRY(dn_opt_int(o, "step", 1, &net->step));
    DN_TRY(dn_opt_float(o, "scale", 1, &net->scale));
    DN_TRY(dn_opt_float(o, "gamma", 1, &net->gamma));
    DN_TRY(dn_opt_float(o, "power", 4, &net->power));
    DN_TRY(dn_opt_int(o, "max_batches", 0, &net->max_batches));
    DN_TRY(dn_opt_int(o, "burn_in", 0, &net->burn_in));
    if (net->burn_in < 0) return dn_opt_fail(o, "burn_in", DN_ERR_PARSE, "burn_in=%d must not be negative", net->burn_in);
    if (net->policy == DN_POLICY_STEP && net->step < 1)
        return dn_opt_fail(o, "step", DN_ERR_PARSE, "step=%d must be at least 1", net->step);
    if (net->policy != DN_POLICY_STEPS) return DN_OK;

    const char *steps = dn_opt_str(o, "steps", NULL), *scales = dn_opt_str(o, "scales", NULL);
    if (!steps || !scales) return dn_opt_fail(o, NULL, DN_ERR_PARSE, "policy=steps needs both steps= and scales=");
    int n = 1, ns = 1;
    for (const char *c = steps; *c; ++c) n += *c == ',';
    for (const char *c = scales; *c; ++c) ns += *c == ',';
    if (n != ns)
        return dn_opt_fail(o, "scales", DN_ERR_PARSE, "steps= has %d entries but scales= has %d", n, ns);
    net->steps = dn_calloc((size_t)n, sizeof(int));
    net->scales = dn_calloc((size_t)n, sizeof(float));
    if (!net->steps || !net->scales) return DN_ERR_NOMEM;
    net->num_steps = n;
    const char *a = steps, *b = scales;
    for (int i = 0; i < n; ++i) {
        char *ea, *eb;
        long sv = strtol(a, &ea, 10);
        float fv = strtof(b, &eb);
        if (ea == a || (*ea && *ea != ',')) return dn_opt_fail(o, "steps", DN_ERR_PARSE, "steps=%s is not a list of integers", steps);
        if (eb == b || (*eb && *eb != ',')) return dn_opt_fail(o, "scales", DN_ERR_PARSE, "scales=%s is not a list of numbers", scales);
        net->steps[i] = (int)sv;
        net->scales[i] = fv;
        a = *ea ? ea + 1 : ea;
        b = *eb ? eb + 1 : eb;
    }
    return DN_OK;
}

static dn_status parse_net(dn_network *net, dn_opts o, const dn_parse_options *opt)
{
    int batch;
    DN_TRY(dn_opt_int(o, "batch", 1, &batch));
    DN_TRY(dn_opt_int(o, "subdivisions", 1, &net->subdivisions));
    DN_TRY(dn_opt_int(o, "width", 0, &net->w));
    DN_TRY(dn_opt_int(o, "height", 0, &net->h));
    DN_TRY(dn_opt_int(o, "channels", 0, &net->c));
    if (net->w < 0 || net->h < 0 || net->c < 0)
        return dn_opt_fail(o, "width", DN_ERR_PARSE, "width, height and channels must not be negative");
    double whc = (double)net->w * net->h * net->c;   /* no int overflow */
    if (whc > (double)MAX_FLOATS)
        return dn_opt_fail(o, "width", DN_ERR_SHAPE, "input %dx%dx%d is too large (more than %zu floats)", net->w, net->h,
                           net->c, MAX_FLOATS);
    DN_TRY(dn_opt_int(o, "inputs", (int)whc, &net->inputs));
    if (net->inputs > 0 && (size_t)net->inputs > MAX_FLOATS)
        return dn_opt_fail(o, "inputs", DN_ERR_SHAPE, "inputs=%d is too large (more than %zu floats)", net->inputs, MAX_FLOATS);
    if (opt && opt->batch > 0) { batch = opt->batch; net->subdivisions = 1; }
    if (batch < 1) return dn_opt_fail(o, "batch", DN_ERR_PARSE, "batch=%d must be at least 1", batch);
    if (net->subdivisions < 1)
        return dn_opt_fail(o, "subdivisions", DN_ERR_PARSE, "subdivisions=%d must be at least 1", net->subdivisions);
    if (batch < net->subdivisions)
        return dn_opt_fail(o, "subdivisions", DN_ERR_PARSE, "subdivisions=%d is larger than batch=%d", net->subdivisions, batch);
    if (batch % net->subdivisions)
        dn_warn("%s:%d: batch=%d is not a multiple of subdivisions=%d; the mini-batch is %d", o.cfg->name,
                dn_opt_line(o, "subdivisions"), batch, net->subdivisions, batch / net->subdivisions);
    net->batch = batch / net->subdivisions;
    if (net->inputs < 1)
        return dn_opt_fail(o, NULL, DN_ERR_PARSE, "needs width, height and channels (or inputs)");
    if (net->w * net->h * net->c != net->inputs) { net->w = net->h = 1; net->c = net->inputs; }

    DN_TRY(dn_opt_float(o, "learning_rate", .001f, &net->learning_rate));
    DN_TRY(dn_opt_float(o, "momentum", .9f, &net->momentum));
    DN_TRY(dn_opt_float(o, "decay", .0001f, &net->decay));
    DN_TRY(parse_policy(net, o));

    DN_TRY(dn_opt_int(o, "max_crop", net->w > INT_MAX / 2 ? INT_MAX : net->w * 2, &net->max_crop));
    DN_TRY(dn_opt_int(o, "min_crop", net->w, &net->min_crop));
    DN_TRY(dn_opt_float(o, "max_ratio", net->w ? (float)net->max_crop / net->w : 1, &net->max_ratio));
    DN_TRY(dn_opt_float(o, "min_ratio", net->w ? (float)net->min_crop / net->w : 1, &net->min_ratio));
    DN_TRY(dn_opt_int(o, "center", 0, &net->center));
    DN_TRY(dn_opt_float(o, "angle", 0, &net->angle));
    DN_TRY(dn_opt_float(o, "aspect", 1, &net->aspect));
    DN_TRY(dn_opt_float(o, "saturation", 1, &net->saturation));
    DN_TRY(dn_opt_float(o, "exposure", 1, &net->exposure));
    DN_TRY(dn_opt_float(o, "hue", 0, &net->hue));

    /* read by upstream but without effect on a CPU classifier here */
    static const char *const accepted[] = {"time_steps", "random", "B1", "B2", "eps", "clip", "notruth", NULL};
    for (int i = 0; accepted[i]; ++i) (void)dn_opt_str(o, accepted[i], NULL);
    int adam;
    DN_TRY(dn_opt_int(o, "adam", 0, &adam));
    if (adam) dn_warn("%s: adam=1 is ignored on the CPU, as upstream; SGD with momentum is used", o.cfg->name);
    return DN_OK;
}

/* The roles of dn_layer_ops, as predicates for dn_layer_type_list. */
static int is_loss(const dn_layer_ops *ops) { return ops->loss; }
static int is_beyond_output(const dn_layer_ops *ops) { return ops->beyond_output; }

/* After the first loss layer (index `loss`, or -1) only beyond_output layers
 * may come: the targets are read against the network's output. */
static dn_status check_role(const dn_cfg *cfg, const dn_section *sec, const dn_layer_ops *ops, int loss)
{
    if (loss < 0 || ops->beyond_output) return DN_OK;
    char after[128], losses[128];
    return dn_fail(DN_ERR_SHAPE, "%s:%d: %s cannot follow %s (line %d): only %s layers may come after %s", cfg->name,
                   sec->line, sec->type, cfg->sections[loss + 1].type, cfg->sections[loss + 1].line,
                   dn_layer_type_list(is_beyond_output, after, sizeof after),
                   dn_layer_type_list(is_loss, losses, sizeof losses));
}

static dn_status parse_layers(dn_cfg *cfg, dn_network *net)
{
    int w = net->w, h = net->h, c = net->c;
    int loss = -1;   /* the first loss layer: it reads the targets (check_role) */
    for (int i = 0; i < net->n; ++i) {
        dn_section *sec = &cfg->sections[i + 1];
        dn_opts o = {cfg, sec};
        const dn_layer_ops *ops = dn_layer_ops_for_section(sec->type);
        if (!ops) {
            if (strcmp(sec->type, "[net]") == 0 || strcmp(sec->type, "[network]") == 0)
                return dn_fail(DN_ERR_PARSE, "%s:%d: %s may only be the first section", cfg->name, sec->line, sec->type);
            return dn_fail(DN_ERR_PARSE, "%s:%d: unknown section %s", cfg->name, sec->line, sec->type);
        }
        DN_TRY(check_role(cfg, sec, ops, loss));
        if (loss < 0 && ops->loss) loss = i;
        dn_layer *l = &net->layers[i];
        l->type = ops->type;
        l->ops = ops;
        l->index = i;
        l->line = sec->line;
        l->batch = net->batch;
        l->w = w; l->h = h; l->c = c;
        l->inputs = w * h * c;
        dn_parse_ctx ctx = {o, net, i, w, h, c};
        DN_TRY(dn_parse_common(l, o));
        DN_TRY(ops->parse(l, &ctx));
        if (l->out_w < 1 || l->out_h < 1 || l->out_c < 1)
            return dn_opt_fail(o, NULL, DN_ERR_SHAPE, "output would be %dx%dx%d", l->out_w, l->out_h, l->out_c);
        size_t outputs = (size_t)l->out_w * l->out_h * l->out_c;
        if (outputs > MAX_FLOATS)
            return dn_opt_fail(o, NULL, DN_ERR_SHAPE, "output %dx%dx%d is too large", l->out_w, l->out_h, l->out_c);
        if (l->nweights > MAX_FLOATS || l->workspace_size > MAX_FLOATS)
            return dn_opt_fail(o, NULL, DN_ERR_SHAPE, "too large: %zu weights, %zu floats of scratch (limit %zu)",
                               l->nweights, l->workspace_size, MAX_FLOATS);
        l->outputs = (int)outputs;
        dn_opts_warn_unused(o);
        w = l->out_w; h = l->out_h; c = l->out_c;
    }
    dn_layer *last = &net->layers[net->n - 1];
    char losses[128];
    if (!last->ops->loss)
        return dn_fail(DN_ERR_SHAPE, "%s:%d: the network must end with %s, not %s", cfg->name, last->line,
                       dn_layer_type_list(is_loss, losses, sizeof losses), cfg->sections[net->n].type);
    net->outputs = dn_network_output_layer(net)->outputs;
    net->truths = net->outputs;
    return DN_OK;
}

static dn_status alloc_network(dn_network *net)
{
    size_t ws = 0;
    for (int i = 0; i < net->n; ++i) {
        dn_layer *l = &net->layers[i];
        if (l->ops->alloc_params) DN_TRY(l->ops->alloc_params(l));
        dn_layer_init_params(l, &net->rng);
        DN_TRY(l->ops->alloc_buffers(l));
        if (l->workspace_size > ws) ws = l->workspace_size;
    }
    net->workspace_size = ws;
    net->workspace = dn_layer_alloc(ws);
    net->input_buf = dn_layer_alloc((size_t)net->batch * net->inputs);
    net->truth_buf = dn_layer_alloc((size_t)net->batch * net->truths);
    if (!net->workspace || !net->input_buf || !net->truth_buf) return DN_ERR_NOMEM;
    return DN_OK;
}

dn_status dn_network_build(dn_cfg *cfg, const dn_parse_options *opt, dn_network **out)
{
    *out = NULL;
    if (cfg->nsections == 0) return dn_fail(DN_ERR_PARSE, "%s: no sections; a cfg starts with [net]", cfg->name);
    dn_section *first = &cfg->sections[0];
    if (strcmp(first->type, "[net]") != 0 && strcmp(first->type, "[network]") != 0)
        return dn_fail(DN_ERR_PARSE, "%s:%d: the first section must be [net] or [network], not %s", cfg->name,
                       first->line, first->type);
    if (cfg->nsections < 2) return dn_fail(DN_ERR_PARSE, "%s: the cfg has no layers after [net]", cfg->name);
    dn_network *net = dn_calloc(1, sizeof *net);
    if (!net) return DN_ERR_NOMEM;
    net->source = dn_strdup(cfg->name);
    net->rng = opt && opt->seed ? opt->seed : 0x5eed;
    net->n = cfg->nsections - 1;
    net->layers = dn_calloc((size_t)net->n, sizeof *net->layers);
    dn_status st = (!net->source || !net->layers) ? DN_ERR_NOMEM : DN_OK;
    dn_opts o = {cfg, first};
    if (st == DN_OK) st = parse_net(net, o, opt);
    if (st == DN_OK) dn_opts_warn_unused(o);
    if (st == DN_OK) st = parse_layers(cfg, net);
    if (st == DN_OK && !(opt && opt->shapes_only)) st = alloc_network(net);
    if (st != DN_OK) { dn_network_free(net); return st; }
    *out = net;
    return DN_OK;
}

dn_status dn_network_parse_string(const char *text, const char *name, const dn_parse_options *opt, dn_network **out)
{
    dn_cfg cfg;
    if (out) *out = NULL;
    if (!out) return dn_fail(DN_ERR_ARG, "dn_network_parse_string: no output pointer");
    DN_TRY(dn_cfg_lex(text, name ? name : "<string>", &cfg));
    dn_status st = dn_network_build(&cfg, opt, out);
    dn_cfg_free(&cfg);
    return st;
}

dn_status dn_network_parse_file(const char *path, const dn_parse_options *opt, dn_network **out)
{
    dn_cfg cfg;
    if (out) *out = NULL;
    if (!out || !path) return dn_fail(DN_ERR_ARG, "dn_network_parse_file: no path or output pointer");
    DN_TRY(dn_cfg_lex_file(path, &cfg));
    dn_status st = dn_network_build(&cfg, opt, out);
    dn_cfg_free(&cfg);
    return st;
}

void dn_describe_row(const dn_layer *l, FILE *f, int window, int flops)
{
    if (window) fprintf(f, "%4d %2d x%2d /%2d ", l->filters, l->size, l->size, l->stride);
    else fprintf(f, "%18s", "");
    fprintf(f, "%4d x%4d x%4d   ->  %4d x%4d x%4d", l->w, l->h, l->c, l->out_w, l->out_h, l->out_c);
    if (flops) fprintf(f, "  %.3f BFLOPs", l->ops->flops(l) / 1e9);
    fprintf(f, "\n");
}

void dn_network_print(const dn_network *net, void *file)
{
    FILE *f = file ? file : stderr;
    fprintf(f, "layer     filters    size              input                output\n");
    for (int i = 0; i < net->n; ++i) {
        const dn_layer *l = &net->layers[i];
        fprintf(f, "%5d %-10s", i, dn_layer_type_name(l->type));
        if (l->ops->describe) l->ops->describe(l, f);
        else dn_describe_row(l, f, 0, 0);
    }
}
