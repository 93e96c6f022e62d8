/* pgarr.c - PostgreSQL array literal builder; see pgarr.h. */
#include "common/pgarr.h"
#include "common/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends n bytes of s, growing the buffer (doubling, from 256 bytes) with
 * room for the closing brace and the NUL. */
static void put(ons_pgarr *a, const char *s, size_t n)
{
    if (a->oom)
        return;
    if (a->len + n + 2 > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (a->len + n + 2 > cap)
            cap *= 2;
        char *ns = realloc(a->s, cap);
        if (!ns) {
            a->oom = 1;
            return;
        }
        a->s = ns;
        a->cap = cap;
    }
    memcpy(a->s + a->len, s, n);
    a->len += n;
    a->s[a->len] = '\0';
}

/* Starts the next element: '{' before the first, ',' before the others. */
static void sep(ons_pgarr *a)
{
    put(a, a->n++ ? "," : "{", 1);
}

void ons_pgarr_int(ons_pgarr *a, int64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof b, "%" PRId64, v);
    sep(a);
    put(a, b, (size_t)n);
}

void ons_pgarr_int0(ons_pgarr *a, int64_t v)
{
    if (v)
        ons_pgarr_int(a, v);
    else
        ons_pgarr_null(a);
}

void ons_pgarr_null(ons_pgarr *a)
{
    sep(a);
    put(a, "NULL", 4);
}

void ons_pgarr_text(ons_pgarr *a, const char *s)
{
    if (!s) {
        ons_pgarr_null(a);
        return;
    }
    sep(a);
    put(a, "\"", 1);
    for (const char *c = s; *c; c++) {
        if (*c == '"' || *c == '\\')
            put(a, "\\", 1);
        put(a, c, 1);
    }
    put(a, "\"", 1);
}

void ons_pgarr_text0(ons_pgarr *a, const char *s)
{
    ons_pgarr_text(a, s && s[0] ? s : NULL);
}

const char *ons_pgarr_end(ons_pgarr *a)
{
    if (a->n == 0)
        put(a, "{", 1);
    put(a, "}", 1);
    return a->s;
}

void ons_pgarrs_reset(ons_pgarr *a, int n)
{
    for (int i = 0; i < n; i++) {
        a[i].len = 0;
        a[i].n = 0;
        if (a[i].s)
            a[i].s[0] = '\0';
    }
}

int ons_pgarrs_params(ons_pgarr *a, int n, const char **v)
{
    for (int i = 0; i < n; i++) {
        v[i] = ons_pgarr_end(&a[i]);
        if (a[i].oom)
            return ONS_ENOMEM;
    }
    return 0;
}

void ons_pgarrs_fini(ons_pgarr *a, int n)
{
    for (int i = 0; i < n; i++) {
        free(a[i].s);
        a[i].s = NULL;
        a[i].len = a[i].cap = 0;
    }
}
