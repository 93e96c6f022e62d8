/*
 * metrics_check.h - what the metric tests share: a check that a registry's
 * text exposition holds the lines a test expects. Header-only.
 */
#ifndef ONSALE_TESTS_METRICS_CHECK_H
#define ONSALE_TESTS_METRICS_CHECK_H

#include "common/metrics.h"

#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Renders m and checks that the text holds each string that follows (a
 * NULL ends them), each at least once, anywhere. */
static inline void ons_check_rendered(ons_metrics *m, ...)
{
    char *text = ons_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    va_list ap;
    va_start(ap, m);
    for (const char *want; (want = va_arg(ap, const char *)) != NULL;)
        ck_assert_msg(strstr(text, want) != NULL, "not rendered: %s", want);
    va_end(ap);
    free(text);
}

#endif
