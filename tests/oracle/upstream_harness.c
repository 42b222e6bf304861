/*
 * upstream_harness.c — drives Debian's libdarknet (pjreddie Darknet, the
 * compatibility target) for the oracle tests in tests/test_oracle.c.
 *
 * Linked ONLY against /usr/lib/darknet/libdarknet.so, never against our
 * library (the two export clashing names). Upstream dies on bad input and
 * prints its layer table on stderr; callers keep inputs valid and read the
 * machine-readable results from stdout or from the files named.
 *
 *   shapes  <cfg>
 *       parse (with batch=1, subdivisions=1 forced) and print one line per
 *       layer: "layer <i> <type> <w> <h> <c> <out_w> <out_h> <out_c> <inputs> <outputs>"
 *   forward <cfg> <weights> <input.bin> <out.bin>
 *       inference on batch images (raw float32, batch*inputs); writes every
 *       layer's output (batch*outputs floats each), layer after layer
 *   sgd     <cfg> <weights> <input.bin> <truth.bin> <out.weights>
 *       train_network on all rows (a multiple of the mini-batch), save_weights;
 *       prints "loss <mean loss>" and "seen <images>"
 *   grad    <cfg> <weights> <input.bin> <truth.bin> <deltas.bin>
 *       one training forward and backward on one mini-batch (no update);
 *       writes every layer's delta (batch*outputs floats each); prints "cost <c>"
 *   resave  <cfg> <in.weights> <out.weights>
 *       load_weights then save_weights
 *   rates   <cfg> <seen>...
 *       print "rate <seen> <get_current_rate>" for each images-seen count
 *   predict <cfg> <weights> <prefix|-> <image>...
 *       load_image_color, letterbox_image to the network size, network_predict;
 *       prints "predict <top-1 index> <p0> <p1> ..." per image and, unless the
 *       prefix is "-", writes the letterboxed image i to <prefix><i>.bin
 *       (3*h*w floats, CHW)
 */
#include <darknet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *msg, const char *what)
{
    fprintf(stderr, "upstream_harness: %s %s\n", msg, what ? what : "");
    exit(2);
}

static float *read_floats(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size < 0 || size % 4) die("not a float32 file:", path);
    float *v = malloc(size ? (size_t)size : 4);
    if (!v || fread(v, 1, (size_t)size, f) != (size_t)size) die("cannot read", path);
    fclose(f);
    *count = (size_t)size / 4;
    return v;
}

static void write_floats(FILE *f, const float *v, size_t n, const char *path)
{
    if (n && fwrite(v, sizeof *v, n, f) != n) die("cannot write", path);
}

/* A copy of cfg with "batch=1" and "subdivisions=1" right after the first
 * section header: upstream's lookups take the first occurrence of a key, so
 * these win over the cfg's own values (big cfgs then fit in memory). */
static char *batch1_copy(const char *cfg)
{
    static char path[] = "/tmp/upstream_harness_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) die("cannot create a temporary cfg for", cfg);
    FILE *out = fdopen(fd, "w"), *in = fopen(cfg, "r");
    if (!out || !in) die("cannot open", cfg);
    char line[4096];
    int done = 0;
    while (fgets(line, sizeof line, in)) {
        fputs(line, out);
        if (!done && line[strspn(line, " \t")] == '[') {
            if (line[strlen(line) - 1] != '\n') fputc('\n', out);
            fputs("batch=1\nsubdivisions=1\n", out);
            done = 1;
        }
    }
    fclose(in);
    fclose(out);
    return path;
}

static const char *type_name(LAYER_TYPE t)
{
    switch (t) {
    case CONVOLUTIONAL: return "convolutional";
    case CONNECTED: return "connected";
    case MAXPOOL: return "maxpool";
    case AVGPOOL: return "avgpool";
    case DROPOUT: return "dropout";
    case SOFTMAX: return "softmax";
    case COST: return "cost";
    case ROUTE: return "route";
    case SHORTCUT: return "shortcut";
    case BATCHNORM: return "batchnorm";
    case ACTIVE: return "activation";
    default: return "other";
    }
}

static int cmd_shapes(int argc, char **argv)
{
    if (argc != 1) die("usage: shapes <cfg>", NULL);
    char *tmp = batch1_copy(argv[0]);
    network *net = parse_network_cfg(tmp);
    remove(tmp);
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        printf("layer %d %s %d %d %d %d %d %d %d %d\n", i, type_name(l->type), l->w, l->h, l->c, l->out_w, l->out_h,
               l->out_c, l->inputs, l->outputs);
    }
    free_network(net);
    return 0;
}

static network *load(const char *cfg, const char *weights)
{
    network *net = parse_network_cfg((char *)cfg);
    /* Upstream bug worked around: make_batchnorm_layer never allocates x,
     * x_norm, mean_delta and variance_delta on the CPU, so a standalone
     * [batchnorm] segfaults in its forward (and backward). Give them the sizes
     * upstream's forward and backward use. */
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (l->type != BATCHNORM) continue;
        if (!l->x) l->x = calloc((size_t)l->batch * l->outputs, sizeof(float));
        if (!l->x_norm) l->x_norm = calloc((size_t)l->batch * l->outputs, sizeof(float));
        if (!l->mean_delta) l->mean_delta = calloc((size_t)l->out_c, sizeof(float));
        if (!l->variance_delta) l->variance_delta = calloc((size_t)l->out_c, sizeof(float));
    }
    if (weights && *weights) load_weights(net, (char *)weights);
    return net;
}

static int cmd_forward(int argc, char **argv)
{
    if (argc != 4) die("usage: forward <cfg> <weights> <input.bin> <out.bin>", NULL);
    network *net = load(argv[0], argv[1]);
    size_t n;
    float *x = read_floats(argv[2], &n);
    if (n != (size_t)net->batch * net->inputs) die("input size does not match batch*inputs:", argv[2]);
    network_predict(net, x);
    FILE *f = fopen(argv[3], "wb");
    if (!f) die("cannot write", argv[3]);
    for (int i = 0; i < net->n; ++i)
        write_floats(f, net->layers[i].output, (size_t)net->layers[i].batch * net->layers[i].outputs, argv[3]);
    fclose(f);
    free(x);
    free_network(net);
    return 0;
}

static int cmd_sgd(int argc, char **argv)
{
    if (argc != 5) die("usage: sgd <cfg> <weights> <input.bin> <truth.bin> <out.weights>", NULL);
    network *net = load(argv[0], argv[1]);
    size_t nx, ny;
    float *x = read_floats(argv[2], &nx), *y = read_floats(argv[3], &ny);
    size_t rows = nx / net->inputs;
    if (rows * net->inputs != nx || rows * net->truths != ny || rows % net->batch)
        die("data does not fit the network:", argv[2]);
    data d = {0};
    d.X = make_matrix((int)rows, net->inputs);
    d.y = make_matrix((int)rows, net->truths);
    for (size_t r = 0; r < rows; ++r) {
        memcpy(d.X.vals[r], x + r * net->inputs, sizeof(float) * net->inputs);
        memcpy(d.y.vals[r], y + r * net->truths, sizeof(float) * net->truths);
    }
    float loss = train_network(net, d);
    printf("loss %.9g\nseen %zu\n", loss, *net->seen);
    save_weights(net, argv[4]);
    free_data(d);
    free(x);
    free(y);
    free_network(net);
    return 0;
}

static int cmd_grad(int argc, char **argv)
{
    if (argc != 5) die("usage: grad <cfg> <weights> <input.bin> <truth.bin> <out.bin>", NULL);
    network *net = load(argv[0], argv[1]);
    size_t nx, ny;
    float *x = read_floats(argv[2], &nx), *y = read_floats(argv[3], &ny);
    if (nx != (size_t)net->batch * net->inputs || ny != (size_t)net->batch * net->truths)
        die("data does not fit one mini-batch:", argv[2]);
    memcpy(net->input, x, nx * sizeof *x);
    memcpy(net->truth, y, ny * sizeof *y);
    net->train = 1;
    forward_network(net);
    backward_network(net);
    FILE *f = fopen(argv[4], "wb");
    if (!f) die("cannot write", argv[4]);
    for (int i = 0; i < net->n; ++i)
        write_floats(f, net->layers[i].delta, (size_t)net->layers[i].batch * net->layers[i].outputs, argv[4]);
    fclose(f);
    printf("cost %.9g\n", *net->cost);
    free(x);
    free(y);
    free_network(net);
    return 0;
}

static int cmd_resave(int argc, char **argv)
{
    if (argc != 3) die("usage: resave <cfg> <in.weights> <out.weights>", NULL);
    network *net = load(argv[0], argv[1]);
    save_weights(net, argv[2]);
    free_network(net);
    return 0;
}

static int cmd_rates(int argc, char **argv)
{
    if (argc < 1) die("usage: rates <cfg> <seen>...", NULL);
    network *net = load(argv[0], NULL);
    for (int i = 1; i < argc; ++i) {
        *net->seen = (size_t)strtoull(argv[i], NULL, 10);
        printf("rate %s %.9g\n", argv[i], get_current_rate(net));
    }
    free_network(net);
    return 0;
}

static int cmd_predict(int argc, char **argv)
{
    if (argc < 3) die("usage: predict <cfg> <weights> <prefix|-> <image>...", NULL);
    network *net = load(argv[0], argv[1]);
    set_batch_network(net, 1);
    for (int i = 3; i < argc; ++i) {
        image im = load_image_color(argv[i], 0, 0);
        image r = letterbox_image(im, net->w, net->h);
        if (strcmp(argv[2], "-")) {
            char path[4096];
            snprintf(path, sizeof path, "%s%d.bin", argv[2], i - 3);
            FILE *f = fopen(path, "wb");
            if (!f) die("cannot write", path);
            write_floats(f, r.data, (size_t)r.w * r.h * r.c, path);
            fclose(f);
        }
        float *p = network_predict(net, r.data);
        printf("predict %d", max_index(p, net->outputs));
        for (int k = 0; k < net->outputs; ++k) printf(" %.9g", p[k]);
        printf("\n");
        free_image(r);
        free_image(im);
    }
    free_network(net);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) die("usage: upstream_harness shapes|forward|grad|sgd|resave|rates|predict ...", NULL);
    const char *cmd = argv[1];
    argc -= 2;
    argv += 2;
    if (!strcmp(cmd, "shapes")) return cmd_shapes(argc, argv);
    if (!strcmp(cmd, "forward")) return cmd_forward(argc, argv);
    if (!strcmp(cmd, "sgd")) return cmd_sgd(argc, argv);
    if (!strcmp(cmd, "grad")) return cmd_grad(argc, argv);
    if (!strcmp(cmd, "resave")) return cmd_resave(argc, argv);
    if (!strcmp(cmd, "rates")) return cmd_rates(argc, argv);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc, argv);
    die("unknown command", cmd);
    return 2;
}
