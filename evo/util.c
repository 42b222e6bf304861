/*
 * util.c — evo's error helper: evo_fail formats a message into the framework's
 * thread-local last error (dn_set_error), so one dn_last_error() serves both.
 */
#include "evo.h"
#include <stdarg.h>
#include <stdio.h>

dn_status evo_fail(dn_status s, const char *fmt, ...)
{
    char msg[2048];   /* fmt may take the current message as an argument */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dn_set_error(s, "%s", msg);
}
