/*
 * testlib.h — a tiny test harness: CHECK records a pass or a failure with
 * file:line and a message; TEST_MAIN_END prints "N passed, M failed" and
 * returns non-zero when anything failed.
 */
#ifndef TESTLIB_H
#define TESTLIB_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tl_passed, tl_failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) { ++tl_passed; }                                              \
        else {                                                                  \
            ++tl_failed;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
        }                                                                       \
    } while (0)

/* Status must be DN_OK; on failure shows dn_last_error(). */
#define CHECK_OK(expr)                                                          \
    do {                                                                        \
        dn_status tl_s = (expr);                                                \
        CHECK(tl_s == DN_OK, "%s -> %s: %s", #expr, dn_status_name(tl_s), dn_last_error()); \
    } while (0)

/* Relative difference scaled by max(|a|,|b|, floor). */
static inline float tl_rel_diff(float a, float b, float floor_)
{
    float m = fabsf(a) > fabsf(b) ? fabsf(a) : fabsf(b);
    if (m < floor_) m = floor_;
    return fabsf(a - b) / m;
}

#define TEST_MAIN_END()                                                         \
    do {                                                                        \
        printf("%s: %d passed, %d failed\n", __FILE__, tl_passed, tl_failed);   \
        return tl_failed ? 1 : 0;                                               \
    } while (0)

#endif
