/*
 * test_cfg_errors.c — every bad cfg or .weights input gives a status and a
 * message that names the file (or "<string>") and the line and says what was
 * wrong; nothing crashes or leaks (the suite also runs under ASan+UBSan).
 *
 * Covers: lexing rules (CRLF, inline whitespace, duplicate keys, keys without
 * '=', empty values, unknown keys as warnings), [net] validation, every layer's
 * shape checks, route/shortcut indexes, policies, weights files (truncated,
 * trailing bytes, wrong cfg, unreadable), saving to bad paths, training
 * arguments and divergence, huge shapes, and a seeded fuzz loop over the cfg
 * parser (the search is a cfg generator).
 */
#include "darknet.h"
#include "internal.h"   /* dn_clear_error: lets the fuzz loop see that each failure sets a message */
#include "testlib.h"
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

/* Huge requests must come back as NULL (DN_ERR_NOMEM), not abort the sanitizer build. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* ------------------------------------------------------------ helpers */

/* Warnings captured through dn_set_warning_sink. */
static char warnings[16384];
static int nwarnings;

static void capture(const char *msg, void *user)
{
    (void)user;
    ++nwarnings;
    size_t len = strlen(warnings);
    if (len + strlen(msg) + 2 < sizeof warnings) {
        strcat(warnings, msg);
        strcat(warnings, "\n");
    }
}

static void start_capture(void)
{
    warnings[0] = 0;
    nwarnings = 0;
    dn_set_warning_sink(capture, NULL);
}

static void count_only(const char *msg, void *user) { (void)msg; ++*(int *)user; }

/* 1-based line of the first occurrence of marker in text (0 if absent). */
static int line_of(const char *text, const char *marker)
{
    const char *at = strstr(text, marker);
    if (!at) return 0;
    int line = 1;
    for (const char *p = text; p < at; ++p) line += *p == '\n';
    return line;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    static char bufs[4][4096];
    static int next;
    char *b = bufs[next++ % 4];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof bufs[0], f, ap);
    va_end(ap);
    return b;
}

/* Parse text (name "<string>", options opt) and expect status `want` with a
 * message naming "<string>", the line of `marker` (if given) and containing
 * `what`. The output pointer must stay NULL. */
static void expect_err_opt(int at, const char *text, const dn_parse_options *opt, dn_status want,
                           const char *marker, const char *what)
{
    dn_network *net = (dn_network *)&net;   /* must be reset to NULL */
    dn_status s = dn_network_parse_string(text, NULL, opt, &net);
    const char *msg = dn_last_error();
    CHECK(s == want, "(test line %d) status %s, want %s: %s", at, dn_status_name(s), dn_status_name(want), msg);
    CHECK(net == NULL, "(test line %d) output not NULL after an error", at);
    if (s == DN_OK) { dn_network_free(net); return; }
    CHECK(strstr(msg, "<string>") != NULL, "(test line %d) message does not name <string>: %s", at, msg);
    if (marker) {
        int line = line_of(text, marker);
        CHECK(line > 0, "(test line %d) marker '%s' not in the cfg", at, marker);
        CHECK(strstr(msg, fmt("<string>:%d:", line)) != NULL, "(test line %d) message lacks '<string>:%d:': %s", at,
              line, msg);
    }
    if (what) CHECK(strstr(msg, what) != NULL, "(test line %d) message lacks '%s': %s", at, what, msg);
}

#define EXPECT_ERR(text, want, marker, what) expect_err_opt(__LINE__, text, NULL, want, marker, what)

/* Parse and expect success; returns the network (caller frees) or NULL. */
static dn_network *expect_ok(int at, const char *text, const dn_parse_options *opt)
{
    dn_network *net = NULL;
    dn_status s = dn_network_parse_string(text, NULL, opt, &net);
    CHECK(s == DN_OK && net, "(test line %d) %s: %s", at, dn_status_name(s), dn_last_error());
    return s == DN_OK ? net : NULL;
}
#define EXPECT_OK(text) expect_ok(__LINE__, text, NULL)

#define NET "[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\n"
#define CONV "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
#define TAIL "[avgpool]\n[softmax]\n"

static char tmpdir[256];

/* A path in the test's temporary directory (a rotating buffer: copy it to keep it). */
static char *tmp_path(const char *name) { return fmt("%s/%s", tmpdir, name); }

static int write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* ------------------------------------------------------------ lexing */

static void test_lexing(void)
{
    /* an option before the first section */
    EXPECT_ERR("batch=1\n" NET CONV TAIL, DN_ERR_PARSE, "batch=1", "before the first section");
    EXPECT_ERR("# comment\n\n  width = 3\n[net]\n", DN_ERR_PARSE, "width", "before the first section");
    /* first section not [net] */
    EXPECT_ERR("# a comment\n\n" CONV NET TAIL, DN_ERR_PARSE, "[convolutional]", "first section must be [net]");
    /* [net] in the middle */
    EXPECT_ERR(NET CONV "[net]\nbatch=1\n" TAIL, DN_ERR_PARSE, "[net]\nbatch=1", "[net] may only be the first section");
    EXPECT_ERR(NET CONV "[network]\n" TAIL, DN_ERR_PARSE, "[network]", "may only be the first section");
    /* empty cfg, comments only, [net] only */
    EXPECT_ERR("", DN_ERR_PARSE, NULL, "no sections");
    EXPECT_ERR("# nothing here\n;\n\n   \n", DN_ERR_PARSE, NULL, "no sections");
    EXPECT_ERR(NET, DN_ERR_PARSE, NULL, "no layers");
    /* unknown sections, including malformed brackets */
    EXPECT_ERR(NET CONV "[convolution]\n" TAIL, DN_ERR_PARSE, "[convolution]", "unknown section [convolution]");
    EXPECT_ERR(NET "[conv\nfilters=2\n" TAIL, DN_ERR_PARSE, "[conv\n", "unknown section");
    EXPECT_ERR(NET "[]\n" TAIL, DN_ERR_PARSE, "[]", "unknown section");
    EXPECT_ERR(NET "[yolo]\n" TAIL, DN_ERR_PARSE, "[yolo]", "unknown section");
    /* NULL text and output pointer */
    dn_network *net = NULL;
    CHECK(dn_network_parse_string(NULL, NULL, NULL, &net) == DN_ERR_ARG && !net, "NULL text: %s", dn_last_error());
    CHECK(dn_network_parse_string(NET CONV TAIL, NULL, NULL, NULL) == DN_ERR_ARG, "NULL out: %s", dn_last_error());

    /* CRLF line endings work (deviation: upstream breaks on them) */
    const char *crlf = "[net]\r\nbatch=2\r\nwidth=8\r\nheight=8\r\nchannels=3\r\nmax_batches=77\r\n\r\n"
                       "[convolutional]\r\nfilters=5\r\nsize=3\r\npad=1\r\nactivation=leaky\r\n"
                       "[avgpool]\r\n[softmax]\r\n";
    net = EXPECT_OK(crlf);
    if (net) {
        CHECK(net->n == 3 && net->layers[0].out_c == 5 && net->max_batches == 77 && net->layers[0].activation == DN_LEAKY,
              "CRLF cfg parsed wrongly: n=%d c=%d", net->n, net->layers[0].out_c);
        dn_network_free(net);
    }
    /* errors in a CRLF file report the right line */
    EXPECT_ERR("[net]\r\nbatch=2\r\nwidth=8\r\nheight=8\r\nchannels=3\r\n[convolutional]\r\nfilters=x\r\n" TAIL,
               DN_ERR_PARSE, "filters=x", "filters=x is not an integer");

    /* every space and tab is removed, as upstream: "max_batches = 5000" and even "fil ters" */
    const char *spaces = "  [net]  \n batch = 2\n\twidth\t=\t8 \nheight= 8\nchannels =3\nmax_batches = 5000\n"
                         "learning_rate = 0.25\npolicy = steps\nsteps = 10 , 20\nscales = .5, .1\n"
                         "[convolutional]\nfil ters = 6\nsize = 3\npad = 1\nactivation = relu\n[avgpool]\n[softmax]\n";
    net = EXPECT_OK(spaces);
    if (net) {
        CHECK(net->max_batches == 5000 && net->w == 8 && fabsf(net->learning_rate - .25f) < 1e-7f,
              "spaces: max_batches %d w %d lr %g", net->max_batches, net->w, net->learning_rate);
        CHECK(net->layers[0].filters == 6 && net->layers[0].activation == DN_RELU, "spaces: filters %d",
              net->layers[0].filters);
        CHECK(net->policy == DN_POLICY_STEPS && net->num_steps == 2 && net->steps[1] == 20 &&
                  fabsf(net->scales[1] - .1f) < 1e-7f, "spaces: steps policy parsed wrongly");
        dn_network_free(net);
    }

    /* comments: '#' and ';' lines; aliases */
    net = EXPECT_OK("# top\n[network]\n; c\nbatch=1\nwidth=4\nheight=4\nchannels=1\n#x=1\n[conv]\nfilters=2\n"
                    "activation=linear\n[soft]\n");
    if (net) { CHECK(net->n == 2 && net->layers[0].type == DN_CONVOLUTIONAL, "aliases"); dn_network_free(net); }

    /* duplicate keys: the first wins (upstream), the second is reported unused */
    start_capture();
    const char *dup = NET "[convolutional]\nfilters=4\nfilters=8\nsize=3\npad=1\nactivation=linear\n" TAIL;
    net = EXPECT_OK(dup);
    if (net) { CHECK(net->layers[0].out_c == 4, "duplicate keys: got %d filters, want the first (4)", net->layers[0].out_c); dn_network_free(net); }
    CHECK(strstr(warnings, fmt("<string>:%d:", line_of(dup, "filters=8"))) && strstr(warnings, "unused"),
          "duplicate key not reported: %s", warnings);

    /* unknown keys are warnings, not errors, and name file, line and key */
    start_capture();
    const char *unk = NET "colour=blue\n" CONV "wibble=3\n" TAIL;
    net = EXPECT_OK(unk);
    dn_network_free(net);
    CHECK(strstr(warnings, fmt("<string>:%d: unused field 'wibble = 3'", line_of(unk, "wibble"))) != NULL,
          "unknown layer key not warned: %s", warnings);
    CHECK(strstr(warnings, fmt("<string>:%d: unused field 'colour = blue'", line_of(unk, "colour"))) != NULL,
          "unknown [net] key not warned: %s", warnings);

    /* a key line without '=' and a key with an empty value are warnings; the defaults apply */
    start_capture();
    const char *noeq = NET "[convolutional]\nfilters=4\nsize=3\npad=1\nbatch_normalize\nactivation=\n" TAIL;
    net = EXPECT_OK(noeq);
    if (net) {
        CHECK(net->layers[0].batch_normalize == 0 && net->layers[0].activation == DN_LOGISTIC,
              "missing values must take the defaults (bn %d, act %s)", net->layers[0].batch_normalize,
              dn_activation_name(net->layers[0].activation));
        dn_network_free(net);
    }
    CHECK(strstr(warnings, fmt("<string>:%d:", line_of(noeq, "batch_normalize"))) && strstr(warnings, "batch_normalize"),
          "key without '=' not warned: %s", warnings);
    CHECK(strstr(warnings, fmt("<string>:%d:", line_of(noeq, "activation="))) && strstr(warnings, "no value"),
          "key with empty value not warned: %s", warnings);
    dn_set_warning_sink(NULL, NULL);

    /* strict numbers (deviation: upstream's atoi/atof read these as 0 or a prefix) */
    EXPECT_ERR(NET "[convolutional]\nfilters=abc\n" TAIL, DN_ERR_PARSE, "filters=abc", "filters=abc is not an integer");
    EXPECT_ERR(NET "[convolutional]\nfilters=16#x\n" TAIL, DN_ERR_PARSE, "filters=16#x", "is not an integer");
    EXPECT_ERR(NET "[convolutional]\nsize=1.5\n" TAIL, DN_ERR_PARSE, "size=1.5", "is not an integer");
    EXPECT_ERR(NET "[convolutional]\nstride=99999999999\n" TAIL, DN_ERR_PARSE, "stride=", "is not an integer");
    EXPECT_ERR("[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\nlearning_rate=0.1x\n" CONV TAIL, DN_ERR_PARSE,
               "learning_rate", "learning_rate=0.1x is not a number");
    EXPECT_ERR("[net]\nbatch=two\nwidth=8\nheight=8\nchannels=3\n" CONV TAIL, DN_ERR_PARSE, "batch=two", "not an integer");
    EXPECT_ERR(NET "[dropout]\nprobability=half\n" TAIL, DN_ERR_PARSE, "probability", "not a number");
    /* a shortcut whose size ratio is not a whole number (7x7 onto 4x4): upstream reads out of bounds */
    EXPECT_ERR("[net]\nbatch=2\nwidth=7\nheight=7\nchannels=1\n[convolutional]\nfilters=2\nsize=3\npad=1\n"
               "[maxpool]\nsize=2\nstride=2\n[shortcut]\nfrom=-2\n" TAIL, DN_ERR_SHAPE, "from=-2", "not a whole number");
    EXPECT_ERR("[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\nlearning_rate=inf\n" CONV TAIL, DN_ERR_PARSE,
               "learning_rate", "learning_rate=inf is not finite");
    EXPECT_ERR("[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\nmomentum=nan\n" CONV TAIL, DN_ERR_PARSE,
               "momentum", "momentum=nan is not finite");
    EXPECT_ERR(NET CONV "[route]\nlayers=-1,x\n" TAIL, DN_ERR_PARSE, "layers=", "is not a layer index");
    EXPECT_ERR(NET CONV "[route]\nlayers=-1,,0\n" TAIL, DN_ERR_PARSE, "layers=", "is not a layer index");
    EXPECT_ERR(NET CONV CONV "[shortcut]\nfrom=-2a\n" TAIL, DN_ERR_PARSE, "from=", "not an integer");
}

/* ------------------------------------------------------------ names */

static void test_names(void)
{
    EXPECT_ERR(NET "[convolutional]\nfilters=4\nactivation=leakyy\n" TAIL, DN_ERR_PARSE, "activation=", "unknown activation 'leakyy'");
    EXPECT_ERR(NET "[convolutional]\nactivation=leaky#x\n" TAIL, DN_ERR_PARSE, "activation=", "unknown activation");
    EXPECT_ERR(NET "[connected]\noutput=3\nactivation=swish\n[softmax]\n", DN_ERR_PARSE, "activation=", "unknown activation");
    EXPECT_ERR(NET CONV CONV "[shortcut]\nfrom=-2\nactivation=bogus\n" TAIL, DN_ERR_PARSE, "activation=bogus", "unknown activation");
    EXPECT_ERR(NET "[activation]\nactivation=nope\n" TAIL, DN_ERR_PARSE, "activation=", "unknown activation");
    EXPECT_ERR("[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\npolicy=cosine\n" CONV TAIL, DN_ERR_PARSE, "policy=",
               "unknown policy 'cosine'");
    EXPECT_ERR(NET CONV "[avgpool]\n[connected]\noutput=2\n[cost]\ntype=huber\n", DN_ERR_PARSE, "type=",
               "unknown cost type 'huber'");
    /* upstream's [cost] keys are known (no "unused" warning) */
    start_capture();
    dn_network *cn = EXPECT_OK(NET "[avgpool]\n[softmax]\n[cost]\ntype=sse\nscale=1\nratio=0\nnoobj=1\nthresh=0\n");
    dn_network_free(cn);
    CHECK(nwarnings == 0, "upstream [cost] keys warned: %s", warnings);
    dn_set_warning_sink(NULL, NULL);
    /* known names parse */
    dn_network *net = EXPECT_OK(NET CONV "[avgpool]\n[connected]\noutput=2\nactivation=linear\n[cost]\ntype=smooth\n");
    if (net) { CHECK(net->layers[3].cost_type == DN_COST_SMOOTH, "cost type"); dn_network_free(net); }
}

/* ------------------------------------------------------------ [net] */

static void test_net_section(void)
{
    const char *L = CONV TAIL;
    char b[1024];
#define NETX(extra) (snprintf(b, sizeof b, "[net]\n%s\n%s", extra, L), b)
    EXPECT_ERR(NETX("batch=0\nwidth=8\nheight=8\nchannels=3"), DN_ERR_PARSE, "batch=0", "batch=0 must be at least 1");
    EXPECT_ERR(NETX("batch=-4\nwidth=8\nheight=8\nchannels=3"), DN_ERR_PARSE, "batch=-4", "must be at least 1");
    EXPECT_ERR(NETX("batch=4\nsubdivisions=0\nwidth=8\nheight=8\nchannels=3"), DN_ERR_PARSE, "subdivisions=0",
               "subdivisions=0 must be at least 1");
    EXPECT_ERR(NETX("batch=4\nsubdivisions=-1\nwidth=8\nheight=8\nchannels=3"), DN_ERR_PARSE, "subdivisions", "at least 1");
    EXPECT_ERR(NETX("batch=4\nsubdivisions=8\nwidth=8\nheight=8\nchannels=3"), DN_ERR_PARSE, "subdivisions=8",
               "subdivisions=8 is larger than batch=4");
    /* missing width / height / channels: error at the [net] line */
    EXPECT_ERR(NETX("batch=4\nheight=8\nchannels=3"), DN_ERR_PARSE, "[net]", "needs width, height and channels");
    EXPECT_ERR(NETX("batch=4\nwidth=8\nchannels=3"), DN_ERR_PARSE, "[net]", "needs width, height and channels");
    EXPECT_ERR(NETX("batch=4\nwidth=8\nheight=8"), DN_ERR_PARSE, "[net]", "needs width, height and channels");
    EXPECT_ERR(NETX("batch=4"), DN_ERR_PARSE, "[net]", "needs width");
    EXPECT_ERR(NETX("batch=4\nwidth=-8\nheight=8\nchannels=3"), DN_ERR_PARSE, "width", "must not be negative");
    EXPECT_ERR(NETX("batch=4\nwidth=8\nheight=8\nchannels=0"), DN_ERR_PARSE, "[net]", "needs width");
    /* policy=steps needs steps and scales of the same length */
    EXPECT_ERR(NETX("width=8\nheight=8\nchannels=3\npolicy=steps\nsteps=10,20\nscales=.1"), DN_ERR_PARSE, "scales=",
               "steps= has 2 entries but scales= has 1");
    EXPECT_ERR(NETX("width=8\nheight=8\nchannels=3\npolicy=steps\nsteps=10\nscales=.1,.1,.1"), DN_ERR_PARSE, "scales=",
               "has 1 entries but scales= has 3");
    EXPECT_ERR(NETX("width=8\nheight=8\nchannels=3\npolicy=steps\nscales=.1"), DN_ERR_PARSE, "[net]", "needs both steps= and scales=");
    EXPECT_ERR(NETX("width=8\nheight=8\nchannels=3\npolicy=steps\nsteps=100"), DN_ERR_PARSE, "[net]", "needs both");
    EXPECT_ERR(NETX("width=8\nheight=8\nchannels=3\npolicy=steps\nsteps=a,b\nscales=1,2"), DN_ERR_PARSE, "steps=a",
               "not a list of integers");
    EXPECT_ERR(NETX("width=8\nheight=8\nchannels=3\npolicy=steps\nsteps=1,2\nscales=1,"), DN_ERR_PARSE, "scales=",
               "not a list of numbers");
    EXPECT_ERR(NETX("width=8\nheight=8\nchannels=3\npolicy=step\nstep=0"), DN_ERR_PARSE, "step=0", "at least 1");
    EXPECT_ERR(NETX("width=8\nheight=8\nchannels=3\nburn_in=-5"), DN_ERR_PARSE, "burn_in", "burn_in=-5");
    /* the batch override replaces batch and subdivisions */
    dn_parse_options one = {.batch = 1, .quiet = 1};
    dn_network *net = expect_ok(__LINE__, NETX("batch=64\nsubdivisions=8\nwidth=8\nheight=8\nchannels=3"), &one);
    if (net) { CHECK(net->batch == 1 && net->subdivisions == 1, "override: %d/%d", net->batch, net->subdivisions); dn_network_free(net); }
    /* ... but does not hide bad values of other keys */
    expect_err_opt(__LINE__, NETX("batch=64\nwidth=8\nheight=8\nchannels=3\nmomentum=fast"), &one, DN_ERR_PARSE,
                   "momentum", "not a number");
    /* inputs= for non-image nets */
    net = EXPECT_OK("[net]\nbatch=2\ninputs=10\n[connected]\noutput=3\n[softmax]\n");
    if (net) { CHECK(net->inputs == 10 && net->c == 10, "inputs="); dn_network_free(net); }
    EXPECT_ERR("[net]\nbatch=2\ninputs=10\n[convolutional]\nsize=3\n[softmax]\n", DN_ERR_SHAPE, "size=3", "larger than");
#undef NETX
}

/* ------------------------------------------------------------ layers */

static void test_layers(void)
{
    /* the end of the network */
    EXPECT_ERR(NET CONV "[avgpool]\n", DN_ERR_SHAPE, "[avgpool]", "must end with [softmax] or [cost]");
    EXPECT_ERR(NET CONV, DN_ERR_SHAPE, "[convolutional]", "must end with [softmax] or [cost], not [convolutional]");
    /* the loss layers read the targets: only [cost] may follow them */
    EXPECT_ERR(NET "[softmax]\n[dropout]\n", DN_ERR_SHAPE, "[dropout]", "[dropout] cannot follow [softmax] (line 6)");
    EXPECT_ERR(NET "[softmax]\n[connected]\noutput=2\n[softmax]\n", DN_ERR_SHAPE, "[connected]", "cannot follow [softmax]");
    EXPECT_ERR(NET "[avgpool]\n[cost]\n[softmax]\n", DN_ERR_SHAPE, "[softmax]", "[softmax] cannot follow [cost]");
    dn_network *net = EXPECT_OK(NET "[avgpool]\n[softmax]\n[cost]\n[cost]\ntype=L1\n");
    if (net) { CHECK(net->outputs == 3 && net->truths == 3, "softmax+cost outputs"); dn_network_free(net); }

    /* convolutional */
    EXPECT_ERR(NET "[convolutional]\nfilters=0\n" TAIL, DN_ERR_SHAPE, "filters=0", "filters=0 must be at least 1");
    EXPECT_ERR(NET "[convolutional]\nfilters=-3\n" TAIL, DN_ERR_SHAPE, "filters=-3", "must be at least 1");
    EXPECT_ERR(NET "[convolutional]\nsize=0\n" TAIL, DN_ERR_SHAPE, "size=0", "size=0 must be at least 1");
    EXPECT_ERR(NET "[convolutional]\nsize=-3\npad=1\n" TAIL, DN_ERR_SHAPE, "size=-3", "must be at least 1");
    EXPECT_ERR(NET "[convolutional]\nstride=0\n" TAIL, DN_ERR_SHAPE, "stride=0", "stride=0 must be at least 1");
    EXPECT_ERR(NET "[convolutional]\nstride=-2\n" TAIL, DN_ERR_SHAPE, "stride=-2", "must be at least 1");
    EXPECT_ERR(NET "[convolutional]\npadding=-1\n" TAIL, DN_ERR_SHAPE, "padding=-1", "must not be negative");
    EXPECT_ERR(NET "[convolutional]\nfilters=4\nsize=9\n" TAIL, DN_ERR_SHAPE, "size=9", "kernel size 9 is larger");
    EXPECT_ERR(NET CONV "[maxpool]\nsize=2\nstride=2\n[maxpool]\nsize=2\nstride=2\n[convolutional]\nsize=3\n" TAIL,
               DN_ERR_SHAPE, "size=3\n[avg", "larger than its padded input 2x2");
    EXPECT_ERR(NET "[convolutional]\nfilters=4\ngroups=2\n" TAIL, DN_ERR_SHAPE, "groups=2", "must divide both the input channels (3)");
    EXPECT_ERR(NET "[convolutional]\nfilters=3\ngroups=3\n[convolutional]\nfilters=5\ngroups=3\n" TAIL, DN_ERR_SHAPE,
               "groups=3\n[avg", "filters (5)");
    EXPECT_ERR(NET "[convolutional]\ngroups=0\n" TAIL, DN_ERR_SHAPE, "groups=0", "at least 1");
    EXPECT_ERR(NET "[convolutional]\nbinary=1\n" TAIL, DN_ERR_PARSE, "binary", "not supported");
    /* conv after a non-image layer */
    EXPECT_ERR(NET "[connected]\noutput=4\n[convolutional]\nsize=3\n" TAIL, DN_ERR_SHAPE, "size=3", "larger than");
    /* a 1x1 input and a kernel of 1: fine */
    net = EXPECT_OK(NET "[connected]\noutput=4\n[convolutional]\nfilters=2\n" TAIL);
    dn_network_free(net);

    /* connected */
    EXPECT_ERR(NET "[connected]\noutput=0\n[softmax]\n", DN_ERR_SHAPE, "output=0", "output=0 must be at least 1");
    EXPECT_ERR(NET "[connected]\noutput=-7\n[softmax]\n", DN_ERR_SHAPE, "output=-7", "must be at least 1");

    /* pools */
    EXPECT_ERR(NET "[maxpool]\nsize=0\n" TAIL, DN_ERR_SHAPE, "size=0", "size=0 must be at least 1");
    EXPECT_ERR(NET "[maxpool]\nstride=0\n" TAIL, DN_ERR_SHAPE, "stride=0", "stride=0 must be at least 1");
    EXPECT_ERR(NET "[maxpool]\nsize=2\nstride=-1\n" TAIL, DN_ERR_SHAPE, "stride=-1", "at least 1");
    EXPECT_ERR(NET "[maxpool]\nsize=20\npadding=0\n" TAIL, DN_ERR_SHAPE, "size=20", "larger than its padded input");
    EXPECT_ERR(NET "[local_avgpool]\nsize=3\npadding=-2\n" TAIL, DN_ERR_SHAPE, "padding=-2", "must not be negative");

    /* softmax and dropout options */
    EXPECT_ERR(NET "[avgpool]\n[softmax]\ngroups=2\n", DN_ERR_SHAPE, "groups=2", "must divide the 3 inputs");
    EXPECT_ERR(NET "[avgpool]\n[softmax]\ngroups=0\n", DN_ERR_SHAPE, "groups=0", "must divide");
    EXPECT_ERR(NET "[avgpool]\n[softmax]\ntemperature=0\n", DN_ERR_PARSE, "temperature", "must be positive");
    EXPECT_ERR(NET "[dropout]\nprobability=1\n" TAIL, DN_ERR_PARSE, "probability=1", "must be in [0, 1)");
    EXPECT_ERR(NET "[dropout]\nprobability=-0.5\n" TAIL, DN_ERR_PARSE, "probability", "must be in");

    /* route */
    EXPECT_ERR(NET CONV "[route]\n" TAIL, DN_ERR_PARSE, "[route]", "needs layers=");
    EXPECT_ERR(NET CONV "[route]\nlayers=\n" TAIL, DN_ERR_PARSE, "[route]", "needs layers=");
    EXPECT_ERR(NET CONV "[route]\nlayers=-2\n" TAIL, DN_ERR_SHAPE, "layers=-2", "index -2 points to layer -1");
    EXPECT_ERR(NET CONV "[route]\nlayers=-100\n" TAIL, DN_ERR_SHAPE, "layers=", "only layers 0..0 come before it");
    EXPECT_ERR(NET CONV "[route]\nlayers=7\n" TAIL, DN_ERR_SHAPE, "layers=7", "points to layer 7");       /* forward */
    EXPECT_ERR(NET CONV "[route]\nlayers=0,2\n" TAIL, DN_ERR_SHAPE, "layers=0,2", "points to layer 2");   /* after */
    EXPECT_ERR(NET CONV "[route]\nlayers=1\n" TAIL, DN_ERR_SHAPE, "layers=1", "points to layer 1");      /* itself */
    EXPECT_ERR(NET "[route]\nlayers=0\n" TAIL, DN_ERR_SHAPE, "layers=0", "points to layer 0");           /* first layer */
    EXPECT_ERR(NET CONV "[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n" TAIL, DN_ERR_SHAPE, "layers=-1,-2",
               "inputs differ in size");
    net = EXPECT_OK(NET CONV "[maxpool]\nsize=2\nstride=2\n" CONV "[route]\nlayers=-1,-2\n" TAIL);
    if (net) { CHECK(net->layers[3].out_c == 8 && net->layers[3].out_w == 4, "route shape"); dn_network_free(net); }

    /* shortcut */
    EXPECT_ERR(NET CONV CONV "[shortcut]\n" TAIL, DN_ERR_PARSE, "[shortcut]", "needs from=");
    EXPECT_ERR(NET CONV CONV "[shortcut]\nfrom=-9\n" TAIL, DN_ERR_SHAPE, "from=-9", "from=-9 points to layer -7");
    EXPECT_ERR(NET CONV CONV "[shortcut]\nfrom=2\n" TAIL, DN_ERR_SHAPE, "from=2", "only layers 0..1 come before it");  /* itself */
    EXPECT_ERR(NET CONV CONV "[shortcut]\nfrom=5\n" TAIL, DN_ERR_SHAPE, "from=5", "points to layer 5");  /* forward */
    EXPECT_ERR(NET "[shortcut]\nfrom=-1\n" TAIL, DN_ERR_SHAPE, "from=-1", "points to layer -1");
    net = EXPECT_OK(NET CONV CONV "[shortcut]\nfrom=-2\nactivation=linear\n" TAIL);
    dn_network_free(net);
}

/* ------------------------------------------------------------ files */

static void test_files(void)
{
    dn_network *net = NULL;
    char missing[512], path[512];
    snprintf(missing, sizeof missing, "%s", tmp_path("no-such.cfg"));
    CHECK(dn_network_parse_file(missing, NULL, &net) == DN_ERR_IO && !net, "missing cfg: %s", dn_last_error());
    CHECK(strstr(dn_last_error(), missing) != NULL, "missing cfg message lacks the path: %s", dn_last_error());
    CHECK(dn_network_parse_file(tmpdir, NULL, &net) != DN_OK && !net, "a directory as cfg must fail");
    CHECK(strstr(dn_last_error(), tmpdir) != NULL, "directory message lacks the path: %s", dn_last_error());

    /* errors in files name the path and the line */
    snprintf(path, sizeof path, "%s", tmp_path("bad.cfg"));
    const char *text = NET CONV "[convolutional]\nfilters=3\nsize=3\nstride=0\n" TAIL;
    CHECK(write_bytes(path, text, strlen(text)), "cannot write %s", path);
    CHECK(dn_network_parse_file(path, NULL, &net) == DN_ERR_SHAPE && !net, "bad.cfg: %s", dn_last_error());
    CHECK(strstr(dn_last_error(), fmt("%s:%d:", path, line_of(text, "stride=0"))) != NULL, "bad.cfg message: %s",
          dn_last_error());
    const char *text2 = "\n\n[net]\nwidth=2\nheight=2\nchannels=1\n[bogus]\n[softmax]\n";
    CHECK(write_bytes(path, text2, strlen(text2)), "cannot write %s", path);
    CHECK(dn_network_parse_file(path, NULL, &net) == DN_ERR_PARSE, "bogus section: %s", dn_last_error());
    CHECK(strstr(dn_last_error(), fmt("%s:7: unknown section [bogus]", path)) != NULL, "bogus message: %s", dn_last_error());
    CHECK(write_bytes(path, "", 0), "cannot write %s", path);
    CHECK(dn_network_parse_file(path, NULL, &net) == DN_ERR_PARSE && strstr(dn_last_error(), path), "empty file: %s",
          dn_last_error());
    unlink(path);
}

/* ------------------------------------------------------------ weights */

static const char *WCFG = "[net]\nbatch=2\nwidth=6\nheight=6\nchannels=2\n"
                          "[convolutional]\nfilters=3\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
                          "[maxpool]\nsize=2\nstride=2\n[connected]\noutput=4\nactivation=linear\n[softmax]\n";

/* Same parameters (the .weights body; seen is compared separately). */
static int same_params(const dn_network *a, const dn_network *b)
{
    void *ba, *bb;
    size_t na, nb;
    if (dn_weights_save_memory(a, &ba, &na) != DN_OK) return 0;
    if (dn_weights_save_memory(b, &bb, &nb) != DN_OK) { free(ba); return 0; }
    int same = na == nb && na >= 20 && memcmp((char *)ba + 20, (char *)bb + 20, na - 20) == 0;   /* body only */
    free(ba);
    free(bb);
    return same;
}

static void test_weights(void)
{
    dn_parse_options s1 = {.seed = 1, .quiet = 1}, s2 = {.seed = 2, .quiet = 1};
    dn_network *a = expect_ok(__LINE__, WCFG, &s1), *b = expect_ok(__LINE__, WCFG, &s2);
    if (!a || !b) { dn_network_free(a); dn_network_free(b); return; }
    CHECK(!same_params(a, b), "two seeds gave the same weights");
    a->seen = 1234;
    char good[512];
    snprintf(good, sizeof good, "%s", tmp_path("a.weights"));
    CHECK_OK(dn_weights_save(a, good));
    /* header 20 + conv (3 + 3*3 + 3*2*9) + connected (4 + 4*27) floats */
    long size = file_size(good);
    long expected = 20 + 4 * (3 + 9 + 54 + 4 + 108);
    CHECK(size == expected, "weights file is %ld bytes, want %ld", size, expected);
    char *buf = NULL;
    size_t n = 0;
    CHECK_OK(dn_read_file(good, &buf, &n));
    if (!buf || (long)n != expected) { free(buf); dn_network_free(a); dn_network_free(b); return; }

    struct { const char *name; size_t len; dn_status want; const char *what1, *what2; } cases[] = {
        {"trunc.weights", n - 4, DN_ERR_WEIGHTS, "truncated", NULL},
        {"half.weights", n / 2, DN_ERR_WEIGHTS, "truncated", NULL},
        {"header.weights", 20, DN_ERR_WEIGHTS, "truncated", "found 20"},
        {"short.weights", 14, DN_ERR_WEIGHTS, "header", NULL},
        {"empty.weights", 0, DN_ERR_WEIGHTS, "0 bytes", NULL},
        {"trailing.weights", n + 3, DN_ERR_WEIGHTS, "3 trailing bytes", NULL},
    };
    char *big = calloc(1, n + 8);
    if (big) memcpy(big, buf, n);
    for (size_t i = 0; big && i < sizeof cases / sizeof *cases; ++i) {
        char p[512];
        snprintf(p, sizeof p, "%s", tmp_path(cases[i].name));
        CHECK(write_bytes(p, big, cases[i].len), "cannot write %s", p);
        uint64_t seen = b->seen;
        dn_status st = dn_weights_load(b, p);
        const char *msg = dn_last_error();
        CHECK(st == cases[i].want, "%s: %s (%s)", cases[i].name, dn_status_name(st), msg);
        CHECK(strstr(msg, p) != NULL, "%s: message lacks the path: %s", cases[i].name, msg);
        CHECK(strstr(msg, cases[i].what1) != NULL, "%s: message lacks '%s': %s", cases[i].name, cases[i].what1, msg);
        if (cases[i].what2) CHECK(strstr(msg, cases[i].what2) != NULL, "%s: message lacks '%s': %s", cases[i].name, cases[i].what2, msg);
        /* expected vs found bytes */
        if (cases[i].len >= 20)
            CHECK(strstr(msg, fmt("%zu", n)) && strstr(msg, fmt("found %zu", cases[i].len)), "%s: message lacks sizes %zu/%zu: %s",
                  cases[i].name, n, cases[i].len, msg);
        CHECK(!same_params(a, b) && b->seen == seen, "%s: the network changed after a failed load", cases[i].name);
        /* the same from memory */
        CHECK(dn_weights_load_memory(b, big, cases[i].len, "mem") == cases[i].want, "%s from memory", cases[i].name);
        unlink(p);
    }
    free(big);

    /* a header with absurd version numbers is just another mismatch, not undefined behaviour */
    int32_t hdr[8] = {0x7fffffff, 0x7fffffff, 0, 0, 0, 0, 0, 0};
    CHECK(dn_weights_load_memory(b, hdr, sizeof hdr, "odd") == DN_ERR_WEIGHTS, "odd header: %s", dn_last_error());
    hdr[0] = -2147483647 - 1; hdr[1] = -5;
    CHECK(dn_weights_load_memory(b, hdr, sizeof hdr, "odd") == DN_ERR_WEIGHTS, "negative header: %s", dn_last_error());
    CHECK(!same_params(a, b), "odd headers changed the network");

    /* a directory and a missing file */
    CHECK(dn_weights_load(b, tmpdir) != DN_OK && strstr(dn_last_error(), tmpdir), "directory as weights: %s", dn_last_error());
    const char *nofile = tmp_path("missing.weights");
    CHECK(dn_weights_load(b, nofile) == DN_ERR_IO && strstr(dn_last_error(), nofile), "missing weights: %s", dn_last_error());
    CHECK(dn_weights_load(NULL, good) == DN_ERR_ARG, "NULL network");

    /* a file for a different cfg */
    dn_network *c = EXPECT_OK("[net]\nbatch=2\nwidth=6\nheight=6\nchannels=2\n"
                              "[convolutional]\nfilters=5\nsize=3\npad=1\nactivation=leaky\n[avgpool]\n[softmax]\n");
    if (c) {
        CHECK(dn_weights_load(c, good) == DN_ERR_WEIGHTS, "weights of another cfg loaded: %s", dn_last_error());
        CHECK(strstr(dn_last_error(), good) && strstr(dn_last_error(), "does not match"), "other cfg: %s", dn_last_error());
        dn_network_free(c);
    }

    /* the good file loads, and gives the same parameters and seen */
    CHECK_OK(dn_weights_load(b, good));
    CHECK(same_params(a, b) && b->seen == 1234, "loaded weights differ from the saved ones");
    /* an old 0.1 file with a 32-bit seen loads too */
    unsigned char *old = malloc(n - 4);
    if (old) {
        int32_t h[4] = {0, 1, 0, 77};
        memcpy(old, h, 16);
        memcpy(old + 16, buf + 20, n - 20);
        CHECK_OK(dn_weights_load_memory(b, old, n - 4, "old"));
        CHECK(same_params(a, b) && b->seen == 77, "old-format load");
        free(old);
    }
    free(buf);

    /* saving to an unwritable place */
    const char *nodir = tmp_path("no/such/dir/a.weights");
    CHECK(dn_weights_save(a, nodir) == DN_ERR_IO, "save into a missing directory: %s", dn_last_error());
    CHECK(strstr(dn_last_error(), nodir) != NULL, "save message lacks the path: %s", dn_last_error());
    const char *isdir = tmp_path("adir");
    mkdir(isdir, 0700);
    CHECK(dn_weights_save(a, isdir) == DN_ERR_IO && strstr(dn_last_error(), isdir), "save onto a directory: %s",
          dn_last_error());
    CHECK(file_size(fmt("%s.tmp.%ld", isdir, (long)getpid())) < 0, "temporary file left behind");
    rmdir(isdir);
    CHECK(dn_weights_save(a, NULL) == DN_ERR_ARG, "NULL path");
    unlink(good);
    dn_network_free(a);
    dn_network_free(b);
}

/* ------------------------------------------------------------ training */

static void fill_data(float *X, float *Y, int n, int inputs, int classes, uint64_t seed)
{
    for (int i = 0; i < n * inputs; ++i) X[i] = dn_rand_uniform(&seed, 0, 1);
    for (int i = 0; i < n * classes; ++i) Y[i] = 0;
    for (int i = 0; i < n; ++i) Y[i * classes + (int)(dn_rand_u64(&seed) % (uint64_t)classes)] = 1;
}

/* The passes and predict report misuse like every other call: a status and
 * a message, the output pointer NULL; predict's output is predict_batch's. */
static void test_pass_misuse(const char *cfg, dn_network *net, const float *X, const float *Y)
{
    const float *p = X;
    CHECK(dn_network_predict(net, NULL, &p) == DN_ERR_ARG && p == NULL, "predict without input");
    CHECK(strstr(dn_last_error(), "dn_network_predict") != NULL, "message: %s", dn_last_error());
    CHECK(dn_network_predict(NULL, X, &p) == DN_ERR_ARG && p == NULL, "predict without a network");
    CHECK(dn_network_predict(net, X, NULL) == DN_ERR_ARG, "predict without an output pointer");
    CHECK(dn_network_backward(NULL) == DN_ERR_ARG && dn_network_update(NULL) == DN_ERR_ARG, "passes without a network");
    float one[3] = {0}, batch[3] = {0};
    CHECK_OK(dn_network_predict(net, X, &p));
    if (p) memcpy(one, p, sizeof one);
    CHECK_OK(dn_network_predict_batch(net, X, 1, batch));
    CHECK(p && fabsf(one[0] - batch[0]) + fabsf(one[1] - batch[1]) + fabsf(one[2] - batch[2]) < 1e-6f,
          "predict %g %g %g, predict_batch %g %g %g", one[0], one[1], one[2], batch[0], batch[1], batch[2]);
    CHECK_OK(dn_network_forward(net, X, Y, 1));
    CHECK_OK(dn_network_backward(net));
    CHECK_OK(dn_network_update(net));

    dn_parse_options so = {.shapes_only = 1};
    dn_network *shapes = NULL;
    CHECK_OK(dn_network_parse_string(cfg, "shapes", &so, &shapes));
    if (!shapes) return;
    p = X;
    CHECK(dn_network_predict(shapes, X, &p) == DN_ERR_ARG && p == NULL, "predict on shapes only");
    CHECK(strstr(dn_last_error(), "shapes only") != NULL, "message: %s", dn_last_error());
    CHECK(dn_network_predict_batch(shapes, X, 1, one) == DN_ERR_ARG, "predict_batch on shapes only");
    CHECK(dn_network_backward(shapes) == DN_ERR_ARG && dn_network_update(shapes) == DN_ERR_ARG,
          "backward and update on shapes only");
    dn_network_free(shapes);
}

static void test_training(void)
{
    const char *cfg = "[net]\nbatch=4\nwidth=6\nheight=6\nchannels=1\nlearning_rate=0.1\n"
                      "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
                      "[connected]\noutput=3\nactivation=linear\n[softmax]\n";
    dn_network *net = EXPECT_OK(cfg);
    if (!net) return;
    float X[8 * 36], Y[8 * 3];
    fill_data(X, Y, 8, 36, 3, 5);
    float loss = -1;
    CHECK(dn_network_train(net, X, Y, 6, &loss) == DN_ERR_ARG, "n=6 with batch 4: %s", dn_last_error());
    CHECK(strstr(dn_last_error(), "6") && strstr(dn_last_error(), "4"), "message: %s", dn_last_error());
    CHECK(dn_network_train(net, X, Y, 0, &loss) == DN_ERR_ARG, "n=0");
    CHECK(dn_network_train(net, X, Y, -4, &loss) == DN_ERR_ARG, "n=-4");
    CHECK(dn_network_train(net, X, Y, 3, &loss) == DN_ERR_ARG, "n=3");
    CHECK(dn_network_train(net, NULL, Y, 4, &loss) == DN_ERR_ARG, "NULL X");
    CHECK(net->seen == 0, "failed calls must not count images (seen %llu)", (unsigned long long)net->seen);
    CHECK_OK(dn_network_train(net, X, Y, 8, &loss));
    CHECK(isfinite(loss) && loss > 0, "loss %g", loss);
    test_pass_misuse(cfg, net, X, Y);

    /* NaN in the inputs: the softmax loss is NaN and training says so */
    X[5] = NAN;
    dn_status st = dn_network_train(net, X, Y, 4, &loss);
    CHECK(st == DN_ERR_NUMERIC, "NaN input: %s: %s", dn_status_name(st), dn_last_error());
    CHECK(strstr(dn_last_error(), "NaN") || strstr(dn_last_error(), "Inf"), "NaN message: %s", dn_last_error());
    dn_network_free(net);

    /* the same with an SSE cost */
    net = EXPECT_OK("[net]\nbatch=4\nwidth=6\nheight=6\nchannels=1\n[connected]\noutput=3\nactivation=linear\n[cost]\n");
    if (net) {
        X[5] = INFINITY;
        st = dn_network_train(net, X, Y, 4, &loss);
        CHECK(st == DN_ERR_NUMERIC && *dn_last_error(), "Inf input with [cost]: %s: %s", dn_status_name(st), dn_last_error());
        dn_network_free(net);
    }

    /* a huge learning rate diverges: DN_ERR_NUMERIC within a few batches, never a crash */
    net = EXPECT_OK("[net]\nbatch=4\nwidth=6\nheight=6\nchannels=1\nlearning_rate=1e30\nmomentum=0.9\n"
                    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=linear\n"
                    "[connected]\noutput=3\nactivation=linear\n[softmax]\n");
    if (net) {
        fill_data(X, Y, 8, 36, 3, 9);
        st = DN_OK;
        int it;
        for (it = 0; it < 100 && st == DN_OK; ++it) st = dn_network_train(net, X, Y, 8, &loss);
        CHECK(st == DN_ERR_NUMERIC, "lr=1e30 after %d steps: %s (loss %g)", it, dn_status_name(st), loss);
        CHECK(strstr(dn_last_error(), "diverged") != NULL, "divergence message: %s", dn_last_error());
        dn_network_free(net);
    }
}

/* ------------------------------------------------------------ huge shapes */

static void expect_fail_cleanly(int at, const char *text, const dn_parse_options *opt)
{
    dn_network *net = NULL;
    dn_status s = dn_network_parse_string(text, NULL, opt, &net);
    CHECK((s == DN_ERR_NOMEM || s == DN_ERR_SHAPE) && !net && *dn_last_error(), "(test line %d) %s: %s", at,
          dn_status_name(s), dn_last_error());
    dn_network_free(net);
}

static void test_huge(void)
{
    dn_parse_options one = {.batch = 1, .quiet = 1};
    expect_fail_cleanly(__LINE__, "[net]\nwidth=100000\nheight=100000\nchannels=3\n" CONV TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=100000\nheight=100000\nchannels=1\n" CONV TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=2147483647\nheight=2147483647\nchannels=2147483647\n" CONV TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=2147483647\nheight=1\nchannels=1\n" CONV TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\ninputs=2147483647\n[connected]\noutput=2\n[softmax]\n", &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=1000\nheight=1000\nchannels=3\n[convolutional]\nfilters=100000\n" TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\npadding=2000000000\nsize=3\n" TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\npadding=1000000000\nsize=2000000000\n" TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=8\nheight=8\nchannels=3\n[maxpool]\npadding=2147483647\nsize=2\n" TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=8\nheight=8\nchannels=3\n[maxpool]\npadding=2147483647\nsize=2147483647\n" TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=8\nheight=8\nchannels=3\n[local_avgpool]\npadding=2000000000\nsize=3\nstride=1\n" TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=512\nheight=512\nchannels=3\n[connected]\noutput=1000000000\n[softmax]\n", &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=64\nheight=64\nchannels=64\n[convolutional]\nfilters=65536\nsize=64\n" TAIL, &one);
    expect_fail_cleanly(__LINE__, "[net]\nwidth=1\nheight=1\nchannels=1\n[connected]\noutput=1073741824\n"
                                  "[route]\nlayers=-1,-1,-1,-1\n[softmax]\n", &one);
    /* a huge batch is an allocation failure, reported, not a crash */
    dn_network *net = NULL;
    dn_status s = dn_network_parse_string("[net]\nbatch=2000000000\nwidth=256\nheight=256\nchannels=3\n" CONV TAIL, NULL,
                                          NULL, &net);
    CHECK(s == DN_OK || (s == DN_ERR_NOMEM && *dn_last_error()), "huge batch: %s: %s", dn_status_name(s), dn_last_error());
    dn_network_free(net);
}

/* ------------------------------------------------------------ fuzz */

static const char *const seeds[] = {
    "[net]\nbatch=4\nsubdivisions=2\nwidth=12\nheight=12\nchannels=1\nlearning_rate=0.1\nmomentum=0.9\ndecay=0.0005\n"
    "policy=steps\nsteps=10,20\nscales=.1,.1\nmax_batches=30\n\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n"
    "[maxpool]\nsize=2\nstride=2\n\n[dropout]\nprobability=.2\n\n"
    "[connected]\noutput=5\nactivation=linear\n\n[softmax]\ngroups=1\n",

    "[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\npolicy=poly\npower=4\nburn_in=3\n"
    "[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=relu\n"
    "[convolutional]\nfilters=8\ngroups=8\nsize=3\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    "[convolutional]\nfilters=6\nsize=1\nstride=2\nactivation=linear\n"
    "[local_avgpool]\nsize=2\nstride=1\n[avgpool]\n[softmax]\n",

    "[net]\nbatch=2\nwidth=8\nheight=8\nchannels=2\npolicy=step\nstep=5\nscale=.5\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=tanh\n"
    "[shortcut]\nfrom=-2\nactivation=linear\n"
    "[maxpool]\nsize=2\nstride=2\n"
    "[convolutional]\nfilters=2\nsize=1\nactivation=elu\n"
    "[route]\nlayers=-1,-2\n"
    "[batchnorm]\n[activation]\nactivation=logistic\n"
    "[connected]\noutput=3\nactivation=linear\n[softmax]\n[cost]\ntype=sse\n",

    "[network]\nbatch=2\ninputs=10\n[conn]\noutput=6\nactivation=selu\n[dropout]\n[connected]\noutput=2\n"
    "activation=linear\n[cost]\ntype=L1\nscale=2\n",
};

static const char *const numbers[] = {"0", "-1", "1", "2", "3", "7", "-2", "1000", "65536", "2147483647",
                                      "-2147483648", "99999999999", "1e3", "nan", "inf", "0.5", ""};
/* whole lines a generator might emit, inserted at line starts */
static const char *const snippets[] = {
    "[convolutional]\nfilters=3\nsize=3\npad=1\n", "[maxpool]\nsize=2\nstride=2\n", "[avgpool]\n",
    "[local_avgpool]\nsize=3\nstride=2\n", "[route]\nlayers=-1,-3\n", "[route]\nlayers=-2\n",
    "[shortcut]\nfrom=-3\n", "[batchnorm]\n", "[dropout]\nprobability=0.3\n", "[activation]\nactivation=relu\n",
    "[connected]\noutput=4\n", "[softmax]\n", "[cost]\n", "groups=2\n", "groups=4\n", "stride=2\n", "size=5\n",
    "pad=1\n", "padding=3\n", "batch_normalize=1\n", "activation=relie\n", "filters=1\n", "layers=-1\n", "from=-1\n",
    "temperature=2\n", "type=smooth\n", "dontsave=1\n", "dontload=1\n", "dontloadscales=1\n", "stopbackward=1\n",
    "alpha=0.5\n", "beta=2\n", "[net]\n", "subdivisions=3\n",
};
static const char alphabet[] = "0123456789-=,[]#;.\n\r\t abcdelnrsx";

typedef struct { char *s; size_t len, cap; } sbuf;

static void sb_reserve(sbuf *b, size_t need)
{
    if (need + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1) cap *= 2;
    b->s = realloc(b->s, cap);
    b->cap = cap;
}
static void sb_insert(sbuf *b, size_t at, const char *src, size_t n)
{
    sb_reserve(b, b->len + n);
    memmove(b->s + at + n, b->s + at, b->len - at);
    memcpy(b->s + at, src, n);
    b->len += n;
    b->s[b->len] = 0;
}
static void sb_erase(sbuf *b, size_t at, size_t n)
{
    memmove(b->s + at, b->s + at + n, b->len - at - n);
    b->len -= n;
    b->s[b->len] = 0;
}
/* [start, end) of the line containing byte `at` (end includes the '\n') */
static void line_span(const sbuf *b, size_t at, size_t *start, size_t *end)
{
    size_t s = at, e = at;
    while (s > 0 && b->s[s - 1] != '\n') --s;
    while (e < b->len && b->s[e] != '\n') ++e;
    if (e < b->len) ++e;
    *start = s;
    *end = e;
}

static void mutate(sbuf *b, uint64_t *rng)
{
    if (b->len == 0) { sb_insert(b, 0, "[", 1); return; }
    size_t at = (size_t)(dn_rand_u64(rng) % b->len);
    size_t s, e;
    switch (dn_rand_u64(rng) % 11) {
    case 0: b->s[at] = alphabet[dn_rand_u64(rng) % (sizeof alphabet - 1)]; break;
    case 1: b->s[at] = (char)(1 + dn_rand_u64(rng) % 255); break;
    case 2: { char ch = alphabet[dn_rand_u64(rng) % (sizeof alphabet - 1)]; sb_insert(b, at, &ch, 1); break; }
    case 3: sb_erase(b, at, 1); break;
    case 4: line_span(b, at, &s, &e); sb_erase(b, s, e - s); break;                  /* delete a line */
    case 5: {                                                                         /* duplicate a line */
        line_span(b, at, &s, &e);
        size_t n = e - s;
        char *copy = malloc(n + 1);
        memcpy(copy, b->s + s, n);
        size_t to = (size_t)(dn_rand_u64(rng) % b->len), ts, te;
        line_span(b, to, &ts, &te);
        sb_insert(b, ts, copy, n);
        free(copy);
        break;
    }
    case 6: {                                                                         /* move a line */
        line_span(b, at, &s, &e);
        size_t n = e - s;
        char *copy = malloc(n + 1);
        memcpy(copy, b->s + s, n);
        sb_erase(b, s, n);
        size_t to = b->len ? (size_t)(dn_rand_u64(rng) % b->len) : 0;
        size_t ts, te;
        if (b->len) line_span(b, to, &ts, &te); else ts = 0;
        sb_insert(b, ts, copy, n);
        free(copy);
        break;
    }
    case 7: case 8: {                                                                 /* insert a snippet */
        line_span(b, at, &s, &e);
        const char *sn = snippets[dn_rand_u64(rng) % (sizeof snippets / sizeof *snippets)];
        sb_insert(b, s, sn, strlen(sn));
        break;
    }
    default: {                                                                        /* replace a number */
        size_t i = at;
        while (i < b->len && !(b->s[i] >= '0' && b->s[i] <= '9')) ++i;
        if (i == b->len) break;
        size_t j = i;
        while (j < b->len && ((b->s[j] >= '0' && b->s[j] <= '9') || b->s[j] == '.')) ++j;
        if (i > 0 && b->s[i - 1] == '-') --i;
        sb_erase(b, i, j - i);
        const char *num = numbers[dn_rand_u64(rng) % (sizeof numbers / sizeof *numbers)];
        sb_insert(b, i, num, strlen(num));
        break;
    }
    }
}

static void test_fuzz(void)
{
    /* DN_FUZZ_ITERS / DN_FUZZ_SEED run longer or other campaigns by hand */
    int iterations = getenv("DN_FUZZ_ITERS") ? atoi(getenv("DN_FUZZ_ITERS")) : 6000;
    uint64_t rng = getenv("DN_FUZZ_SEED") ? strtoull(getenv("DN_FUZZ_SEED"), NULL, 10) : 20240611;
    int ok = 0, failed = 0, trained = 0, silent = 0;
    int by_status[16] = {0};
    int nwarn = 0;
    dn_parse_options one = {.batch = 1, .seed = 7, .quiet = 1};
    dn_parse_options shapes = {.batch = 1, .seed = 7, .quiet = 1, .shapes_only = 1};
    float *X = NULL, *Y = NULL;
    size_t xcap = 0, ycap = 0;
    sbuf b = {0};
    dn_set_warning_sink(count_only, &nwarn);
    double t0 = dn_time_now();
    for (int it = 0; it < iterations; ++it) {
        const char *seed = seeds[dn_rand_u64(&rng) % (sizeof seeds / sizeof *seeds)];
        b.len = 0;
        sb_insert(&b, 0, seed, strlen(seed));
        int muts = 1 + (int)(dn_rand_u64(&rng) % 4);
        for (int m = 0; m < muts; ++m) mutate(&b, &rng);
        /* shape inference alone must agree with a full parse */
        dn_network *shaped = NULL;
        dn_status ss = dn_network_parse_string(b.s, "fuzz.cfg", &shapes, &shaped);
        dn_clear_error();
        dn_network *net = (dn_network *)&net;
        dn_status s = dn_network_parse_string(b.s, "fuzz.cfg", &one, &net);
        by_status[s & 15]++;
        CHECK(ss == s || s == DN_ERR_NOMEM, "fuzz case %d: shapes-only parse gave %s, full parse %s", it,
              dn_status_name(ss), dn_status_name(s));
        if (ss == DN_OK && s == DN_OK)
            CHECK(shaped->outputs == net->outputs && shaped->n == net->n &&
                      dn_network_param_count(shaped) == dn_network_param_count(net),
                  "fuzz case %d: shapes-only network differs", it);
        dn_network_free(shaped);
        if (s != DN_OK) {
            ++failed;
            const char *msg = dn_last_error();
            if (!*msg || (s != DN_ERR_NOMEM && !strstr(msg, "fuzz.cfg")) || net) {
                ++silent;
                CHECK(*msg && (s == DN_ERR_NOMEM || strstr(msg, "fuzz.cfg")) && !net,
                      "fuzz case %d: %s with message '%s' for cfg:\n%s", it, dn_status_name(s), msg, b.s);
            }
            continue;
        }
        ++ok;
        /* a network that parsed must also run: one training step, a prediction and a weights round trip */
        if (dn_network_flops(net) < 2e7 && dn_network_param_count(net) < 2000000) {
            size_t nx = (size_t)net->batch * net->inputs, ny = (size_t)net->batch * net->truths;
            if (nx > xcap) { free(X); X = malloc(nx * sizeof *X); xcap = nx; }
            if (ny > ycap) { free(Y); Y = malloc(ny * sizeof *Y); ycap = ny; }
            uint64_t r = (uint64_t)it;
            for (size_t i = 0; i < nx; ++i) X[i] = dn_rand_uniform(&r, 0, 1);
            for (size_t i = 0; i < ny; ++i) Y[i] = 0;
            Y[dn_rand_u64(&r) % (uint64_t)net->truths] = 1;
            float loss;
            dn_status ts = dn_network_train(net, X, Y, net->batch, &loss);
            CHECK(ts == DN_OK || ts == DN_ERR_NUMERIC, "fuzz case %d: train: %s: %s\n%s", it, dn_status_name(ts),
                  dn_last_error(), b.s);
            const float *p = NULL;
            CHECK(dn_network_predict(net, X, &p) == DN_OK && p != NULL, "fuzz case %d: predict", it);
            void *w;
            size_t wn;
            int asymmetric = 0;   /* dontsave / dontload / dontloadscales make save and load differ, as upstream */
            for (int i = 0; i < net->n; ++i)
                asymmetric |= net->layers[i].dontsave | net->layers[i].dontload | net->layers[i].dontloadscales;
            if (dn_weights_save_memory(net, &w, &wn) == DN_OK) {
                dn_status ws = dn_weights_load_memory(net, w, wn, "fuzz");
                CHECK(ws == DN_OK || (asymmetric && ws == DN_ERR_WEIGHTS), "fuzz case %d: weights round trip: %s", it,
                      dn_last_error());
                if (wn > 24 && !asymmetric)
                    CHECK(dn_weights_load_memory(net, w, wn - 4, "fuzz") == DN_ERR_WEIGHTS, "fuzz case %d: truncated", it);
                free(w);
            }
            ++trained;
        }
        dn_network_free(net);
    }
    dn_set_warning_sink(NULL, NULL);
    free(b.s);
    free(X);
    free(Y);
    CHECK(silent == 0, "%d failures without a proper message", silent);
    CHECK(ok > iterations / 20 && failed > iterations / 20, "fuzz mix is degenerate: %d ok, %d failed", ok, failed);
    printf("fuzz: %d cases in %.1f s: %d parsed (%d trained), %d rejected (parse %d, shape %d, nomem %d), %d warnings\n",
           iterations, dn_time_now() - t0, ok, trained, failed, by_status[DN_ERR_PARSE], by_status[DN_ERR_SHAPE],
           by_status[DN_ERR_NOMEM], nwarn);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dn_cfg_errors_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    dn_set_warning_sink(NULL, NULL);   /* tests capture warnings where they check them */
    test_lexing();
    test_names();
    test_net_section();
    test_layers();
    test_files();
    test_weights();
    test_training();
    test_huge();
    test_fuzz();
    rmdir(tmpdir);
    TEST_MAIN_END();
}
