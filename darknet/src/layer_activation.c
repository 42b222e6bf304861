/*
 * layer_activation.c — [activation]: an activation function on its own.
 *
 *   input (batch, inputs) -> output (batch, inputs) = act(input)
 */
#include "internal.h"

static dn_status activation_parse(dn_layer *l, dn_parse_ctx *ctx)
{
    const char *act = dn_opt_str(ctx->opts, "activation", "linear");
    if (dn_activation_from_name(act, &l->activation) != DN_OK)
        return dn_opt_fail(ctx->opts, "activation", DN_ERR_PARSE, "unknown activation '%s'", act);
    l->out_w = l->w; l->out_h = l->h; l->out_c = l->c;
    return DN_OK;
}

static void activation_forward(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->outputs;
    dn_copy(l->output, net->input, n);
    dn_activate_array(l->output, n, l->activation);
}

static void activation_backward(dn_layer *l, dn_network *net)
{
    size_t n = (size_t)l->batch * l->outputs;
    dn_gradient_array(l->output, n, l->activation, l->delta);
    if (net->delta) dn_axpy(net->delta, 1, l->delta, n);
}

static double activation_flops(const dn_layer *l) { return (double)l->outputs; }

const dn_layer_ops dn_activation_layer_ops = {
    DN_ACTIVATION_LAYER, {"activation", NULL, NULL},
    activation_parse, NULL, NULL, dn_alloc_output_delta,
    activation_forward, activation_backward, NULL, dn_free_common, activation_flops,
};
