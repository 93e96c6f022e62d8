/* json_io.c - body validators and error replies; see json_io.h. */
#include "ingress/json_io.h"
#include "common/err.h"
#include "common/httpd.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *ing_req_job(ing_req *r, size_t size, void (*job_free)(void *))
{
    void *j = calloc(1, size);
    if (!j) {
        ing_fail(r, NULL, ING_E_OVERLOADED, NULL);
        return NULL;
    }
    r->job = j;
    r->job_free = job_free ? job_free : free;
    return j;
}

int ing_json_only(ing_req *r, json_t *o, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(k, allowed[i]) == 0)
                ok = 1;
        if (!ok) {
            char name[65];
            snprintf(name, sizeof name, "%s", k);
            for (char *c = name; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == '"')
                    *c = '?';
            ing_failf(r, NULL, ING_E_UNKNOWN_FIELD, name, "Unknown field '%s'.", name);
            return -1;
        }
    }
    return 0;
}

static int missing(ing_req *r, const char *key)
{
    ing_failf(r, NULL, ING_E_MISSING_FIELD, key, "Field '%s' is required.", key);
    return -1;
}

int ing_json_int(ing_req *r, json_t *o, const char *key, int required, int64_t min, int64_t max,
                 int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return required ? missing(r, key) : 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, key,
                  "Field '%s' must be an integer from %lld to %lld.", key, (long long)min,
                  (long long)max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

int ing_json_num(ing_req *r, json_t *o, const char *key, double min, double max, double *out,
                 int *present)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_number(v) || json_number_value(v) < min || json_number_value(v) > max) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, key, "Field '%s' must be a number from %g to %g.",
                  key, min, max);
        return -1;
    }
    *out = json_number_value(v);
    *present = 1;
    return 0;
}

int ing_json_str(ing_req *r, json_t *o, const char *key, int required, size_t minlen, size_t maxlen,
                 const char **out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return required ? missing(r, key) : 0;
    int ok =
        json_is_string(v) && json_string_length(v) >= minlen && json_string_length(v) <= maxlen;
    if (ok) {
        const char *s = json_string_value(v);
        for (size_t i = 0; i < json_string_length(v); i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                ok = 0;
    }
    if (!ok) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, key,
                  "Field '%s' must be a string of %zu to %zu bytes (UTF-8) without control "
                  "characters.",
                  key, minlen, maxlen);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int ing_json_bool(ing_req *r, json_t *o, const char *key, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, key, "Field '%s' must be true or false.", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

int ing_json_time(ing_req *r, json_t *o, const char *key, int required, int64_t *out_ms)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return required ? missing(r, key) : 0;
    if (!json_is_string(v) || ing_parse_rfc3339(json_string_value(v), out_ms)) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, key,
                  "Field '%s' must be an RFC 3339 time from 1970 to 9999 UTC such as "
                  "2026-12-01T20:00:00Z.",
                  key);
        return -1;
    }
    return 0;
}

int ing_json_objects(ing_req *r, json_t *o, const char *key, size_t max, json_t **out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return missing(r, key);
    int ok = json_is_array(v) && json_array_size(v) >= 1 && json_array_size(v) <= max;
    for (size_t i = 0; ok && i < json_array_size(v); i++)
        ok = json_is_object(json_array_get(v, i));
    if (!ok) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, key,
                  "Field '%s' must be an array of 1 to %zu objects.", key, max);
        return -1;
    }
    *out = v;
    return 0;
}

int ing_path_id(ing_req *r, const char *s, int64_t *out)
{
    if (ing_path_id_parse(s, out) == 0)
        return 0;
    ing_failf(r, NULL, ING_E_INVALID_ID, NULL, "The id in the path must be a positive integer.");
    return -1;
}

int ing_path_id_parse(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    int ok = n >= 1 && n <= 19 && s[0] != '0';
    int64_t v = 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10)
            ok = 0;
        else
            v = v * 10 + (s[i] - '0');
    }
    if (!ok)
        return -1;
    *out = v;
    return 0;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* The tail of an RFC 3339 time after the seconds: an optional fraction
 * (milliseconds kept) and the zone, "Z" or "+hh:mm" / "-hh:mm" (*off in
 * minutes east). 0 or ONS_EINVAL. */
static int fraction_and_zone(const char *p, int *ms, int *off)
{
    *ms = 0;
    *off = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 3)
                *ms = *ms * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0)
            return ONS_EINVAL;
        for (; nd < 3; nd++)
            *ms *= 10;
    }
    if (*p == 'Z' || *p == 'z')
        return p[1] ? ONS_EINVAL : 0;
    int oh, om;
    if ((*p != '+' && *p != '-') || strlen(p) != 6 || p[3] != ':' || digits(p + 1, 2, &oh) ||
        digits(p + 4, 2, &om) || oh > 23 || om > 59)
        return ONS_EINVAL;
    *off = (oh * 60 + om) * (*p == '+' ? 1 : -1);
    return 0;
}

int ing_parse_rfc3339(const char *s, int64_t *out_ms)
{
    int Y, M, D, h, m, sec, ms, off;
    size_t n = strlen(s);
    if (n < 20 || n > 40 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return ONS_EINVAL;
    if (digits(s, 4, &Y) || digits(s + 5, 2, &M) || digits(s + 8, 2, &D) || digits(s + 11, 2, &h) ||
        digits(s + 14, 2, &m) || digits(s + 17, 2, &sec))
        return ONS_EINVAL;
    if (Y < 1970 || Y > 9999 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return ONS_EINVAL;
    if (fraction_and_zone(s + 19, &ms, &off))
        return ONS_EINVAL;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return ONS_EINVAL;
    /* Reject days that normalised into the next month (2026-02-30). */
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != D)
        return ONS_EINVAL;
    /* The instant itself, not only its digits, within the format's years:
     * 9999-12-31T23:59:59-05:00 is in year 10000 in UTC, which no answer
     * could write back as RFC 3339 ("10000-01-01T04:59:59Z"). */
    int64_t at = ((int64_t)t - off * 60) * 1000 + ms;
    if (at < 0 || at > ING_RFC3339_MAX_MS)
        return ONS_EINVAL;
    *out_ms = at;
    return 0;
}

void ing_format_rfc3339(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int ing_idem_key_valid(const char *k)
{
    size_t n = strlen(k);
    if (n < 1 || n > ING_IDEM_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] < 0x20 || (unsigned char)k[i] > 0x7e)
            return 0;
    return 1;
}

void ing_sha256_hex(const void *a, size_t alen, const void *b, size_t blen, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) || !EVP_DigestUpdate(c, a, alen) ||
        !EVP_DigestUpdate(c, b, blen) || !EVP_DigestFinal_ex(c, md, &mdlen))
        mdlen = 0;
    EVP_MD_CTX_free(c);
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = i < mdlen ? hex[md[i] >> 4] : '0';
        out[2 * i + 1] = i < mdlen ? hex[md[i] & 15] : '0';
    }
    out[64] = '\0';
}
