/*
 * morph.c — the weights of a function-preserving child (network morphisms:
 * Net2Net, Chen et al. 2016; NASH, Elsken et al. 2017). After evo_inherit has
 * copied every layer the child shares with its parent, evo_morph_init sets
 * the layers the morphism added or changed so that child(x) == parent(x):
 *
 *   deepen     the new conv (C -> C, k x k, stride 1, BN) is the identity:
 *              weights (C, C, k, k) 1 at the centre tap where filter == input
 *              channel, else 0; its batch norm takes the input's per-channel
 *              mean m and variance v measured on training images as training
 *              sees them (training-mode passes: batch statistics upstream):
 *              rolling_mean = biases = m, rolling_variance = v, scales =
 *              sqrt(v + eps), so y = scales (x - m) / sqrt(v + eps) + m = x
 *              exactly in inference, whatever m and v; training mode
 *              normalises with each batch's own statistics, close to m and
 *              v, so y ~ x. Its activation (relu or linear, mutate.c's rule)
 *              is the identity on its input. A CReLU deepen (C -> 2C, relu,
 *              on an input that may be negative) gives filter C + j the
 *              weight -1 and the batch norm of -x (mean -m), so it outputs
 *              relu(x) and relu(-x); its reader (R, through layers linear in
 *              it) gets R'[o][j] = R[o][j], R'[o][C + j] = -R[o][j] and reads
 *              relu(x) - relu(-x) = x.
 *   widen      conv L: f -> F filters. Filter j < f stays filter j; filter
 *              j >= f copies filter g(j) (g drawn at random) in every array
 *              (biases, scales, rolling statistics, weights). L's reader R,
 *              a conv (O, f, k, k) or a connected (O, f*h*w) (Darknet
 *              flattens (c, h, w), so channel-major too), gets
 *                  R'[o][j] = R[o][g(j)] * r[o][j]
 *              with the r of the copies of each channel random, positive and
 *              summing to 1: R's pre-activation sums are unchanged, while the
 *              copies receive different gradients (the symmetry breaks).
 *              The layers between L and R pass channels one for one.
 *              Where L's channels go further (routes concatenate them,
 *              shortcuts add them, several layers read them): the new
 *              filters keep their fresh weights and every [convolutional]
 *              or [connected] that reads a new channel (wherever it sits in
 *              its input: flow_build follows them) weighs it 0, its old
 *              channels the parent's weights. Exact whatever the new filters
 *              compute, provided no shortcut adds them onto an old channel
 *              or shifts which channels it adds (evo_widen_flow refuses
 *              those); the 0 weights get gradients at once.
 *   skip_zero  the branch's last conv (its only one, or a residual block's
 *              1x1 after a relu conv) has its batch norm start at scales 0,
 *              biases 0: it outputs exactly 0 and the [shortcut] adds
 *              nothing, while d loss / d scales = sum delta * x_norm is not
 *              0, so it learns (the zero-initialised last batch norm of a
 *              residual block: Goyal et al. 2017).
 *   flatten    the head's [connected] (O outputs) reads the C channel means
 *              of the global [avgpool]; it now reads the C x H x W map
 *              (channel-major, as Darknet flattens) with
 *                  W'[o][c*H*W + p] = W[o][c] / (H*W)
 *              at every position p, its other arrays (biases, batch norm)
 *              as they were: sum_p W[o][c] x[c][p] / (H*W) is the mean's
 *              term.
 *   deepen_head the new hidden [connected] H (relu, N units) before the
 *              classifier K (linear, O outputs, parent weights W (O, D),
 *              biases b): H's unit j < O gets row W[j] and bias b[j], unit
 *              O + j row -W[j] and bias -b[j], the others keep their fresh
 *              weights; K's weights (O, N) are 1 at [o][o], -1 at
 *              [o][O + o], else 0, biases 0: K reads relu(z) - relu(-z) = z,
 *              the parent's logits. The 0 weights on the fresh units still
 *              get gradients (delta_o * h_j), so K starts reading them.
 *
 * The host arrays are written: call it before dn_network_to_gpu.
 */
#include "evo_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The framework's batch-norm epsilon: y = scales (x - mean) / sqrt(var + eps) + biases. */
#define BN_EPSILON 1e-5f

/* Child index of the only gene of `type` whose id the parent lacks; -1 with a
 * message when there is not exactly one. */
static int new_gene(const evo_genome *cg, const evo_genome *pg, const char *type, const char *mut)
{
    int found = -1, count = 0;
    for (int i = 0; i < cg->n; ++i)
        if (strcmp(cg->genes[i].type, type) == 0 && evo_genome_find(pg, cg->genes[i].id) < 0) {
            found = i;
            ++count;
        }
    if (count != 1) {
        evo_fail(DN_ERR_ARG, "evo_morph_init: %s: the child has %d new [%s] layers, expected 1", mut, count, type);
        return -1;
    }
    return found;
}

/* ------------------------------------------------------------ deepen */

/* A batch-normalised C -> C (or, crelu, C -> 2C) convolution, stride 1, odd
 * kernel, same map size. */
static int identity_shaped(const dn_layer *l, int crelu)
{
    return l->type == DN_CONVOLUTIONAL && l->batch_normalize && l->scales && l->groups == 1 &&
           l->out_c == (crelu ? 2 : 1) * l->c && l->stride == 1 && l->size % 2 == 1 && l->pad == l->size / 2 &&
           l->out_w == l->w && l->out_h == l->h;
}

/* weights (F, C, k, k), F = C or 2C: filter f < C is +1 at [f][f][k/2][k/2],
 * filter C + f is -1 at [C + f][f][k/2][k/2]; else 0. */
static void identity_weights(dn_layer *l)
{
    int k = l->size, c = l->c;
    memset(l->weights, 0, l->nweights * sizeof(float));
    for (int f = 0; f < l->out_c; ++f)
        l->weights[(((size_t)f * c + f % c) * k + k / 2) * k + k / 2] = f < c ? 1.f : -1.f;
}

/* Running sums of one channel: values minus a shift (its first value), so
 * that the variance does not come from the difference of two large sums. */
typedef struct { double shift, s1, s2, n; } channel_sums;

/* Add the planes of `count` images (batch layout (count, c, spatial)). */
static void add_planes(channel_sums *cs, const float *x, int count, int c, size_t spatial)
{
    for (int b = 0; b < count; ++b)
        for (int ch = 0; ch < c; ++ch) {
            const float *p = x + ((size_t)b * c + ch) * spatial;
            if (cs[ch].n == 0) cs[ch].shift = p[0];
            for (size_t k = 0; k < spatial; ++k) {
                double d = p[k] - cs[ch].shift;
                cs[ch].s1 += d;
                cs[ch].s2 += d * d;
            }
            cs[ch].n += (double)spatial;
        }
}

/* The batch-norm rolling statistics of every layer (a training-mode pass
 * moves them) and the network's random state, to put back afterwards. */
typedef struct { float *saved; size_t n; uint64_t rng; } bn_state;

static void bn_state_visit(dn_network *net, bn_state *st, int restore)
{
    size_t at = 0;
    for (int i = 0; i < net->n; ++i) {
        dn_param p[DN_MAX_PARAMS];
        int np = dn_layer_params(&net->layers[i], p);
        for (int k = 0; k < np; ++k) {
            if (strncmp(p[k].name, "rolling_", 8) != 0) continue;
            if (st->saved && restore) memcpy(p[k].data, st->saved + at, p[k].n * sizeof(float));
            else if (st->saved) memcpy(st->saved + at, p[k].data, p[k].n * sizeof(float));
            at += p[k].n;
        }
    }
    st->n = at;
    if (restore) net->rng = st->rng;
}

static dn_status bn_state_save(dn_network *net, bn_state *st)
{
    memset(st, 0, sizeof *st);
    bn_state_visit(net, st, 0);   /* count */
    st->saved = malloc((st->n ? st->n : 1) * sizeof(float));
    if (!st->saved) return evo_fail(DN_ERR_NOMEM, "evo_morph_init: out of memory");
    st->rng = net->rng;
    bn_state_visit(net, st, 0);
    return DN_OK;
}

/* Layer i's input on X as training sees it: layer i-1's output from
 * training-mode passes of net (batch statistics in every batch norm; the
 * rolling statistics and random state are put back after), full batches
 * (a last partial one filled up from the start of X, only its own images
 * counted), added into cs. The images themselves when i == 0. */
static dn_status sum_inputs(dn_network *net, int i, const float *X, int n, channel_sums *cs)
{
    const dn_layer *l = &net->layers[i];
    size_t spatial = (size_t)l->w * l->h, in = (size_t)net->inputs;
    if (i == 0) { add_planes(cs, X, n, l->c, spatial); return DN_OK; }
    bn_state saved;
    DN_TRY(bn_state_save(net, &saved));
    float *buf = malloc((size_t)net->batch * in * sizeof(float));
    dn_status s = buf ? DN_OK : evo_fail(DN_ERR_NOMEM, "evo_morph_init: out of memory for a batch");
    for (int start = 0; s == DN_OK && start < n; start += net->batch) {
        int count = n - start < net->batch ? n - start : net->batch;
        for (int b = 0; b < net->batch; ++b)
            memcpy(buf + b * in, X + (size_t)((start + b) % n) * in, in * sizeof(float));
        s = dn_network_forward(net, buf, NULL, 1);
        if (s == DN_OK) add_planes(cs, net->layers[i - 1].output, count, l->c, spatial);
    }
    bn_state_visit(net, &saved, 1);
    free(saved.saved);
    free(buf);
    if (s != DN_OK && buf)
        return evo_fail(s, "evo_morph_init: deepen: measuring the new layer's input: %s", dn_last_error());
    return s;
}

/* Per-channel mean and unbiased variance of layer i's input over X (n images);
 * none given: mean 0, variance 1. */
static dn_status input_stats(dn_network *net, int i, const float *X, int n, float *mean, float *var)
{
    int c = net->layers[i].c;
    for (int ch = 0; ch < c; ++ch) { mean[ch] = 0; var[ch] = 1; }
    if (!X || n < 1) return DN_OK;
    channel_sums *cs = calloc((size_t)c, sizeof *cs);
    if (!cs) return evo_fail(DN_ERR_NOMEM, "evo_morph_init: out of memory");
    dn_status s = sum_inputs(net, i, X, n, cs);
    for (int ch = 0; s == DN_OK && ch < c; ++ch) {
        double m = cs[ch].s1 / cs[ch].n, v = (cs[ch].s2 - cs[ch].s1 * m) / (cs[ch].n > 1 ? cs[ch].n - 1 : 1);
        mean[ch] = (float)(cs[ch].shift + m);
        var[ch] = (float)(v > 0 ? v : 0);
    }
    free(cs);
    return s;
}

static dn_status crelu_reader(dn_layer *c, const dn_layer *p, int C);   /* with widen's reader split, below */

static dn_status init_deepen(dn_network *child, const evo_genome *cg, const dn_network *parent,
                             const evo_genome *pg, const float *X, int n)
{
    int i = new_gene(cg, pg, "convolutional", "deepen");
    if (i < 0) return DN_ERR_ARG;
    dn_layer *l = &child->layers[i];
    int crelu = l->out_c == 2 * l->c, rc = -1, rp = -1;
    if (!identity_shaped(l, crelu))
        return evo_fail(DN_ERR_ARG, "evo_morph_init: deepen: layer %d is not a batch-normalised %d -> %d (or %d) "
                        "convolution of stride 1 that keeps the map size", i, l->c, l->c, 2 * l->c);
    if (crelu ? l->activation != DN_RELU : l->activation != DN_RELU && l->activation != DN_LINEAR)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: deepen: layer %d's activation %s is not %s", i,
                        dn_activation_name(l->activation), crelu ? "relu (a CReLU)" : "relu or linear");
    if (crelu) {
        rc = evo_crelu_reader(cg, i);
        rp = rc < 0 ? -1 : evo_genome_find(pg, cg->genes[rc].id);
        if (rp < 0)
            return evo_fail(DN_ERR_ARG, "evo_morph_init: deepen: the CReLU (layer %d) has no single reader that "
                            "the parent has too", i);
    }
    float *mean = malloc(2 * (size_t)l->c * sizeof(float));
    if (!mean) return evo_fail(DN_ERR_NOMEM, "evo_morph_init: out of memory");
    float *var = mean + l->c;
    dn_status s = input_stats(child, i, X, n, mean, var);
    if (s == DN_OK) {   /* filter f: +-x (the sign of its weights), normalised back to +-x */
        identity_weights(l);
        for (int f = 0; f < l->out_c; ++f) {
            int ch = f % l->c;
            l->rolling_mean[f] = l->biases[f] = f < l->c ? mean[ch] : -mean[ch];
            l->rolling_variance[f] = var[ch];
            l->scales[f] = sqrtf(var[ch] + BN_EPSILON);
        }
    }
    free(mean);
    if (s == DN_OK && crelu) s = crelu_reader(&child->layers[rc], &parent->layers[rp], l->c);
    return s;
}

/* ------------------------------------------------------------ widen */

/* The one child layer of `type` that has `grown` from its parent twin:
 * indices into *ci, *pi; an error (mutation `mut`, layers `what`) when there
 * is not exactly one. */
static dn_status grown_pair(const dn_network *child, const evo_genome *cg, const dn_network *parent,
                            const evo_genome *pg, dn_layer_type type, int (*grown)(const dn_layer *, const dn_layer *),
                            const char *mut, const char *what, int *ci, int *pi)
{
    int count = 0;
    for (int i = 0; i < cg->n; ++i) {
        int j = evo_genome_find(pg, cg->genes[i].id);
        if (j < 0 || child->layers[i].type != type || parent->layers[j].type != type) continue;
        if (grown(&child->layers[i], &parent->layers[j])) { *ci = i; *pi = j; ++count; }
    }
    if (count != 1) return evo_fail(DN_ERR_ARG, "evo_morph_init: %s: %d %s, expected 1", mut, count, what);
    return DN_OK;
}

static int more_filters(const dn_layer *c, const dn_layer *p) { return c->out_c > p->out_c; }

/* Child layer c's arrays from parent layer p's by filter: block j of each
 * array (n/filters floats) is the parent's block src[j]; src NULL: the
 * first f blocks are the parent's, the others keep their fresh values. */
static dn_status copy_filters(dn_layer *c, const dn_layer *p, const int *src, int f, int F)
{
    dn_param cp[DN_MAX_PARAMS], pp[DN_MAX_PARAMS];
    int nc = dn_layer_params(c, cp), np = dn_layer_params(p, pp);
    if (nc != np)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: widen: the widened layer's arrays differ from its parent's");
    for (int k = 0; k < nc; ++k) {
        size_t per = pp[k].n / (size_t)f;
        if (strcmp(cp[k].name, pp[k].name) || pp[k].n != per * f || cp[k].n != per * F)
            return evo_fail(DN_ERR_ARG, "evo_morph_init: widen: %s of %zu floats does not widen %d -> %d filters "
                            "into %zu", pp[k].name, pp[k].n, f, F, cp[k].n);
        for (int j = 0; j < (src ? F : f); ++j)
            memcpy(cp[k].data + (size_t)j * per, pp[k].data + (size_t)(src ? src[j] : j) * per, per * sizeof(float));
    }
    return DN_OK;
}

/* r[j] for output o: random in [0.25, 1), normalised over the copies of each
 * channel (a channel without copies gets exactly 1). sum: f doubles. */
static void split_ratios(const int *src, int f, int F, uint64_t *rng, float *r, double *sum)
{
    for (int c = 0; c < f; ++c) sum[c] = 0;
    for (int j = 0; j < F; ++j) {
        r[j] = dn_rand_uniform(rng, 0.25f, 1.f);
        sum[src[j]] += r[j];
    }
    for (int j = 0; j < F; ++j) r[j] = (float)(r[j] / sum[src[j]]);
}

/* weights (O, F, per) from the parent's (O, f, per): [o][j] = [o][src[j]] *
 * r_o[j], r_o[j] = sign[j] when signs are given, else split_ratios's. */
static dn_status split_weights(dn_param *c, const dn_param *p, int O, const int *src, int f, int F, const float *sign,
                               uint64_t *rng)
{
    size_t per = p->n / ((size_t)O * f);
    if (p->n != per * O * f || c->n != per * O * F)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: the reader's weights (%zu floats, now %zu) do not take %d -> %d "
                        "input channels for %d outputs", p->n, c->n, f, F, O);
    float *r = malloc((size_t)F * sizeof *r);
    double *sum = malloc((size_t)f * sizeof *sum);
    if (!r || !sum) { free(r); free(sum); return evo_fail(DN_ERR_NOMEM, "evo_morph_init: out of memory"); }
    for (int o = 0; o < O; ++o) {
        if (sign) memcpy(r, sign, (size_t)F * sizeof *r);
        else split_ratios(src, f, F, rng, r, sum);
        for (int j = 0; j < F; ++j) {
            const float *from = p->data + ((size_t)o * f + src[j]) * per;
            float *to = c->data + ((size_t)o * F + j) * per;
            for (size_t e = 0; e < per; ++e) to[e] = from[e] * r[j];
        }
    }
    free(r);
    free(sum);
    return DN_OK;
}

/* Child layer c from its parent twin p when only its inputs changed: every
 * array but the weights copied (same size), the weights returned in *cw, *pw
 * for the caller to map. */
static dn_status same_but_weights(dn_layer *c, const dn_layer *p, dn_param *cw, dn_param *pw)
{
    dn_param cp[DN_MAX_PARAMS], pp[DN_MAX_PARAMS];
    int nc = dn_layer_params(c, cp), np = dn_layer_params(p, pp), found = 0;
    if (c->type != p->type || nc != np || c->out_c != p->out_c)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: layer differs from its parent's in more than its inputs");
    for (int k = 0; k < nc; ++k) {
        if (strcmp(cp[k].name, pp[k].name))
            return evo_fail(DN_ERR_ARG, "evo_morph_init: the layer's arrays differ from its parent's");
        if (strcmp(cp[k].name, "weights") == 0) { *cw = cp[k]; *pw = pp[k]; found = 1; }
        else if (cp[k].n == pp[k].n) memcpy(cp[k].data, pp[k].data, cp[k].n * sizeof(float));
        else return evo_fail(DN_ERR_ARG, "evo_morph_init: the layer's %s changed size", cp[k].name);
    }
    return found ? DN_OK : evo_fail(DN_ERR_ARG, "evo_morph_init: the layer has no weights");
}

/* The reader of f -> F channels: its weights split among the copies (see
 * split_weights), its other arrays copied. */
static dn_status split_reader(dn_layer *c, const dn_layer *p, const int *src, int f, int F, const float *sign,
                              uint64_t *rng)
{
    dn_param cw, pw;
    DN_TRY(same_but_weights(c, p, &cw, &pw));
    return split_weights(&cw, &pw, p->out_c, src, f, F, sign, rng);
}

/* The CReLU's reader: input channel C + j gets the negated weights of
 * channel j, so that it reads relu(x) - relu(-x) = x. */
static dn_status crelu_reader(dn_layer *c, const dn_layer *p, int C)
{
    int *src = malloc(2 * (size_t)C * sizeof *src);
    float *sign = malloc(2 * (size_t)C * sizeof *sign);
    dn_status s = src && sign ? DN_OK : evo_fail(DN_ERR_NOMEM, "evo_morph_init: out of memory");
    for (int j = 0; s == DN_OK && j < 2 * C; ++j) {
        src[j] = j % C;
        sign[j] = j < C ? 1.f : -1.f;
    }
    if (s == DN_OK) s = split_reader(c, p, src, C, 2 * C, sign, NULL);
    free(src);
    free(sign);
    return s;
}

/* ------------------------------------------------------------ widen: any reader */

/* Where the new channels of a widened layer go (evo_widen_flow): per layer,
 * which of its output channels carry them (ch[i]: out_c flags, NULL: none),
 * and which layers read them with weights (reader[i]: a [convolutional] or
 * [connected], whose weights for them start at 0). */
typedef struct {
    int n;
    unsigned char **ch;
    unsigned char *reader;
} widen_flow;

static void flow_free(widen_flow *w)
{
    for (int i = 0; w->ch && i < w->n; ++i) free(w->ch[i]);
    free(w->ch);
    free(w->reader);
    memset(w, 0, sizeof *w);
}

static int count_new(const unsigned char *flags, int n)
{
    int c = 0;
    for (int k = 0; flags && k < n; ++k) c += flags[k];
    return c;
}

/* A [route]'s flags: its inputs' concatenated (NULL when none has new ones). */
static dn_status route_flags(const dn_network *net, int i, widen_flow *w)
{
    const dn_layer *x = &net->layers[i];
    int any = 0;
    for (int k = 0; k < x->n_inputs; ++k) any |= w->ch[x->input_layers[k]] != NULL;
    if (!any) return DN_OK;
    if (!(w->ch[i] = calloc((size_t)x->out_c, 1))) return evo_fail(DN_ERR_NOMEM, "out of memory");
    for (int k = 0, at = 0; k < x->n_inputs; ++k) {
        const dn_layer *in = &net->layers[x->input_layers[k]];
        if (at + in->out_c > x->out_c) return evo_fail(DN_ERR_SHAPE, "widen: route %d's channels do not add up", i);
        if (w->ch[x->input_layers[k]]) memcpy(w->ch[i] + at, w->ch[x->input_layers[k]], (size_t)in->out_c);
        at += in->out_c;
    }
    return DN_OK;
}

/* A [shortcut] adds `from`'s channel j onto the previous layer's channel j
 * for j below both counts (upstream's rule). Every old output channel must
 * get what it got in the parent: the same old channel of `from` (by rank),
 * or nothing; new channels may get anything. */
static dn_status shortcut_flags(const dn_network *net, int i, widen_flow *w)
{
    const dn_layer *x = &net->layers[i];
    const unsigned char *p = w->ch[i - 1], *q = w->ch[x->from];
    if (!p && !q) return DN_OK;
    int cp = x->c, cf = x->shortcut_c, minc = cp < cf ? cp : cf;
    int old_p = cp - count_new(p, cp), old_f = cf - count_new(q, cf), pminc = old_p < old_f ? old_p : old_f;
    for (int j = 0, rp = 0, rq = 0; j < cp; ++j) {   /* rp, rq: old channels before j in prev and from */
        int new_p = p && p[j], new_q = j < cf && q && q[j];
        if (!new_p) {   /* an old channel: it must get what it got in the parent (a new one: its readers ignore it) */
            int child_adds = j < minc, parent_adds = rp < pminc;
            if (child_adds != parent_adds || (child_adds && (new_q || rq != rp)))
                return evo_fail(DN_ERR_ARG, "widen: the new channels would change what [shortcut] %d adds to "
                                "channel %d", i, j);
        }
        rp += !new_p;
        rq += j < cf && !new_q;
    }
    if (p && !(w->ch[i] = malloc((size_t)x->out_c))) return evo_fail(DN_ERR_NOMEM, "out of memory");
    if (p) memcpy(w->ch[i], p, (size_t)x->out_c);
    return DN_OK;
}

/* Layer i reads the previous layer's flagged channels `in`. */
static dn_status read_flags(const dn_network *net, int i, const unsigned char *in, widen_flow *w)
{
    const dn_layer *x = &net->layers[i];
    switch (x->type) {
    case DN_CONVOLUTIONAL:
        if (x->groups != 1)
            return evo_fail(DN_ERR_ARG, "widen: the new channels reach [convolutional] %d of %d groups", i, x->groups);
        w->reader[i] = 1;
        return DN_OK;
    case DN_CONNECTED: w->reader[i] = 1; return DN_OK;
    case DN_MAXPOOL: case DN_AVGPOOL: case DN_LOCAL_AVGPOOL: case DN_DROPOUT: case DN_ACTIVATION_LAYER:
        if (x->out_c != x->c) return evo_fail(DN_ERR_SHAPE, "widen: layer %d changes its channel count", i);
        if (!(w->ch[i] = malloc((size_t)x->out_c))) return evo_fail(DN_ERR_NOMEM, "out of memory");
        memcpy(w->ch[i], in, (size_t)x->out_c);
        return DN_OK;
    default:
        return evo_fail(DN_ERR_ARG, "widen: the new channels would reach [%s] %d, which has no weights to ignore them",
                        dn_layer_type_name(x->type), i);
    }
}

/* The flow of layer L's new output channels f..out_c-1 through `net` (the
 * child; shapes are enough). An error when widening L could not keep the
 * function: the new channels reach a layer other than one-for-one layers,
 * routes, shortcuts and the convolutions (groups 1) and connected layers
 * that read them, or a shortcut would add them onto old channels (or shift
 * what it adds). */
static dn_status flow_build(const dn_network *net, int L, int f, widen_flow *w)
{
    memset(w, 0, sizeof *w);
    if (!net || L < 0 || L >= net->n || net->layers[L].type != DN_CONVOLUTIONAL || f < 1 || f >= net->layers[L].out_c)
        return evo_fail(DN_ERR_ARG, "widen: layer %d is no [convolutional] grown from %d filters", L, f);
    w->n = net->n;
    w->ch = calloc((size_t)net->n, sizeof *w->ch);
    w->reader = calloc((size_t)net->n, 1);
    if (!w->ch || !w->reader || !(w->ch[L] = calloc((size_t)net->layers[L].out_c, 1))) {
        flow_free(w);
        return evo_fail(DN_ERR_NOMEM, "out of memory");
    }
    memset(w->ch[L] + f, 1, (size_t)(net->layers[L].out_c - f));
    dn_status s = DN_OK;
    for (int i = L + 1; s == DN_OK && i < net->n; ++i) {
        const dn_layer *x = &net->layers[i];
        if (x->type == DN_ROUTE) s = route_flags(net, i, w);
        else if (x->type == DN_SHORTCUT) s = shortcut_flags(net, i, w);
        else if (w->ch[i - 1]) s = read_flags(net, i, w->ch[i - 1], w);
    }
    if (s != DN_OK) flow_free(w);
    return s;
}

dn_status evo_widen_flow(const dn_network *net, int layer, int old_filters)
{
    widen_flow w;
    DN_TRY(flow_build(net, layer, old_filters, &w));
    flow_free(&w);
    return DN_OK;
}

/* A reader of flagged input channels: old channel j gets the parent's
 * weights of its rank, a new one weight 0. */
static dn_status zero_reader(dn_layer *c, const dn_layer *p, const unsigned char *flags, int C)
{
    int f = C - count_new(flags, C), *src = malloc((size_t)C * sizeof *src);
    float *keep = malloc((size_t)C * sizeof *keep);
    dn_status s = src && keep ? DN_OK : evo_fail(DN_ERR_NOMEM, "evo_morph_init: out of memory");
    for (int j = 0, r = 0; s == DN_OK && j < C; ++j) {
        src[j] = flags[j] ? 0 : r++;
        keep[j] = flags[j] ? 0.f : 1.f;
    }
    if (s == DN_OK) s = split_reader(c, p, src, f, C, keep, NULL);
    free(src);
    free(keep);
    return s;
}

/* Widened layer ci (parent pi) whose new channels reach several readers (or
 * one through routes and shortcuts): the new filters keep their fresh
 * weights, every reader weighs them 0 (the zero-initialised outgoing weights
 * of a network morphism: exact whatever the new filters compute, and each
 * reader's weights for them get gradients at once). */
static dn_status widen_zero_readers(dn_network *child, const evo_genome *cg, const dn_network *parent,
                                    const evo_genome *pg, int ci, int pi)
{
    int f = parent->layers[pi].out_c, F = child->layers[ci].out_c;
    widen_flow w;
    dn_status s = flow_build(child, ci, f, &w);
    if (s != DN_OK) return evo_fail(s, "evo_morph_init: widen of layer %d: %s", ci, evo_last_error());
    s = copy_filters(&child->layers[ci], &parent->layers[pi], NULL, f, F);
    for (int i = ci + 1; s == DN_OK && i < child->n; ++i) {
        if (!w.reader[i]) continue;
        int j = evo_genome_find(pg, cg->genes[i].id);
        if (j < 0) s = evo_fail(DN_ERR_ARG, "evo_morph_init: widen: reader %d is not in the parent", i);
        else s = zero_reader(&child->layers[i], &parent->layers[j], w.ch[i - 1], child->layers[i - 1].out_c);
    }
    flow_free(&w);
    return s == DN_OK ? DN_OK : evo_fail(s, "evo_morph_init: widen of layer %d: %s", ci, evo_last_error());
}

static dn_status init_widen(dn_network *child, const evo_genome *cg, const dn_network *parent, const evo_genome *pg,
                            uint64_t seed)
{
    int ci = -1, pi = -1;
    DN_TRY(grown_pair(child, cg, parent, pg, DN_CONVOLUTIONAL, more_filters,
                      "widen", "convolutions have more filters than in the parent", &ci, &pi));
    int rc = evo_widen_reader(cg, ci), rp = evo_widen_reader(pg, pi);
    if (rc < 0 && rp < 0) return widen_zero_readers(child, cg, parent, pg, ci, pi);
    if (rc < 0 || rp < 0 || cg->genes[rc].id != pg->genes[rp].id)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: widen: layer %d's output does not reach the same single "
                        "[convolutional] or [connected] in parent and child", ci);
    int f = parent->layers[pi].out_c, F = child->layers[ci].out_c;
    int *src = malloc((size_t)F * sizeof *src);
    if (!src) return evo_fail(DN_ERR_NOMEM, "evo_morph_init: out of memory");
    uint64_t rng = seed;
    for (int j = 0; j < F; ++j) src[j] = j < f ? j : (int)(dn_rand_u64(&rng) % (uint64_t)f);
    dn_status s = copy_filters(&child->layers[ci], &parent->layers[pi], src, f, F);
    if (s == DN_OK) s = split_reader(&child->layers[rc], &parent->layers[rp], src, f, F, NULL, &rng);
    free(src);
    return s;
}

/* ------------------------------------------------------------ skip_zero */

/* The branch's last conv: the one right before the new [shortcut] (a
 * residual block's first conv keeps its fresh weights). */
static dn_status init_skip_zero(dn_network *child, const evo_genome *cg, const evo_genome *pg)
{
    int sc = new_gene(cg, pg, "shortcut", "skip_zero"), i = sc - 1;
    if (sc < 0) return DN_ERR_ARG;
    if (i < 0 || strcmp(cg->genes[i].type, "convolutional") || evo_genome_find(pg, cg->genes[i].id) >= 0)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: skip_zero: no new [convolutional] right before the new "
                        "[shortcut] (layer %d)", sc);
    dn_layer *l = &child->layers[i];
    if (l->type != DN_CONVOLUTIONAL || !l->batch_normalize || !l->scales)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: skip_zero: the branch convolution (layer %d) has no batch "
                        "norm", i);
    if (l->activation != DN_LINEAR && l->activation != DN_RELU && l->activation != DN_LEAKY)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: skip_zero: the branch's activation %s is not 0 at 0",
                        dn_activation_name(l->activation));
    memset(l->scales, 0, (size_t)l->out_c * sizeof(float));
    memset(l->biases, 0, (size_t)l->out_c * sizeof(float));
    return DN_OK;
}

/* ------------------------------------------------------------ flatten */

static int more_inputs(const dn_layer *c, const dn_layer *p) { return c->inputs > p->inputs; }

/* The [connected] whose parent twin read fewer inputs: each parent weight
 * spread over the H*W positions of its channel. */
static dn_status init_flatten(dn_network *child, const evo_genome *cg, const dn_network *parent, const evo_genome *pg)
{
    int ci = -1, pi = -1;
    DN_TRY(grown_pair(child, cg, parent, pg, DN_CONNECTED, more_inputs,
                      "flatten", "[connected] layers read more inputs than in the parent", &ci, &pi));
    dn_layer *c = &child->layers[ci];
    const dn_layer *p = &parent->layers[pi];
    int C = p->inputs, hw = C > 0 ? c->inputs / C : 0;
    if (hw < 1 || c->inputs != hw * C)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: flatten: layer %d reads %d inputs, not H*W times the parent's "
                        "%d", ci, c->inputs, C);
    dn_param cw, pw;
    DN_TRY(same_but_weights(c, p, &cw, &pw));
    for (int o = 0; o < c->out_c; ++o)   /* weights (O, C*H*W) from the parent's (O, C) */
        for (int ch = 0; ch < C; ++ch) {
            float w = pw.data[(size_t)o * C + ch] / (float)hw, *to = cw.data + (size_t)o * c->inputs + (size_t)ch * hw;
            for (int q = 0; q < hw; ++q) to[q] = w;
        }
    return DN_OK;
}

/* ------------------------------------------------------------ deepen_head */

static dn_status init_deepen_head(dn_network *child, const evo_genome *cg, const dn_network *parent,
                                  const evo_genome *pg)
{
    int h = new_gene(cg, pg, "connected", "deepen_head"), k = h + 1;
    if (h < 0) return DN_ERR_ARG;
    int pk = k < cg->n ? evo_genome_find(pg, cg->genes[k].id) : -1;
    if (pk < 0 || child->layers[k].type != DN_CONNECTED || parent->layers[pk].type != DN_CONNECTED)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: deepen_head: the new [connected] (layer %d) is not read by the "
                        "parent's classifier", h);
    dn_layer *hid = &child->layers[h], *cls = &child->layers[k];
    const dn_layer *old = &parent->layers[pk];
    int O = old->out_c, D = old->inputs, N = hid->out_c;
    if (cls->batch_normalize || old->batch_normalize || hid->batch_normalize || cls->activation != DN_LINEAR ||
        hid->activation != DN_RELU || N < 2 * O || hid->inputs != D || cls->inputs != N || cls->out_c != O)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: deepen_head: want a relu hidden layer of >= %d units on the "
                        "classifier's %d inputs and a linear classifier without batch norm (got %d units on %d "
                        "inputs)", 2 * O, D, N, hid->inputs);
    for (int j = 0; j < O; ++j) {
        for (int d = 0; d < D; ++d) {
            float w = old->weights[(size_t)j * D + d];
            hid->weights[(size_t)j * D + d] = w;
            hid->weights[(size_t)(O + j) * D + d] = -w;
        }
        hid->biases[j] = old->biases[j];
        hid->biases[O + j] = -old->biases[j];
    }
    memset(cls->weights, 0, cls->nweights * sizeof(float));
    memset(cls->biases, 0, (size_t)O * sizeof(float));
    for (int o = 0; o < O; ++o) {
        cls->weights[(size_t)o * N + o] = 1.f;
        cls->weights[(size_t)o * N + O + o] = -1.f;
    }
    return DN_OK;
}

/* ------------------------------------------------------------ entry */

dn_status evo_morph_init(dn_network *child, const evo_genome *child_genome, const dn_network *parent,
                         const evo_genome *parent_genome, evo_mutation m, const float *X, int n, uint64_t seed)
{
    if (!child || !child_genome || !parent || !parent_genome)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: missing child or parent network or genome");
    if (!evo_mutation_is_morph(m)) return DN_OK;   /* evo_inherit did everything */
    if (child->n != child_genome->n || parent->n != parent_genome->n)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: networks and genomes differ in layer count (child %d vs %d, "
                        "parent %d vs %d)", child->n, child_genome->n, parent->n, parent_genome->n);
    if (child->on_gpu)
        return evo_fail(DN_ERR_ARG, "evo_morph_init: the child is on a GPU; initialise it before dn_network_to_gpu");
    if (parent->on_gpu && dn_network_pull(parent) != DN_OK)
        return evo_fail(DN_ERR_GPU, "evo_morph_init: reading the parent's weights from the GPU: %s", dn_last_error());
    switch (m) {
    case EVO_MUT_DEEPEN: return init_deepen(child, child_genome, parent, parent_genome, X, n);
    case EVO_MUT_WIDEN: return init_widen(child, child_genome, parent, parent_genome, seed);
    case EVO_MUT_FLATTEN: return init_flatten(child, child_genome, parent, parent_genome);
    case EVO_MUT_DEEPEN_HEAD: return init_deepen_head(child, child_genome, parent, parent_genome);
    default: return init_skip_zero(child, child_genome, parent_genome);
    }
}
