/* log.c - one-line JSON logger; see log.h for the line format. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *proc_name = "onsale";
static enum ons_log_level min_level = ONS_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void ons_log_init(const char *proc, const char *level)
{
    proc_name = proc;
    for (int i = 0; level && i < 4; i++)
        if (strcmp(level, level_names[i]) == 0)
            min_level = (enum ons_log_level)i;
}

/* Appends s to buf[*len..cap) as JSON string content (no quotes), escaping
 * quotes, backslashes and control characters. Truncates silently. */
static void append_escaped(char *buf, size_t *len, size_t cap, const char *s)
{
    for (; *s && *len + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[(*len)++] = '\\';
            buf[(*len)++] = (char)c;
        } else if (c < 0x20) {
            *len += (size_t)snprintf(buf + *len, cap - *len, "\\u%04x", c);
        } else {
            buf[(*len)++] = (char)c;
        }
    }
}

static void append_raw(char *buf, size_t *len, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        n = cap - *len - 1;
    memcpy(buf + *len, s, n);
    *len += n;
}

/* Formats and writes one line with n key/value context fields (NULL keys or
 * values are left out). */
static void vlog(enum ons_log_level level, const char *const *keys, const char *const *vals, int n,
                 const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[40];
    size_t sl = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + sl, sizeof stamp - sl, ".%03ldZ", ts.tv_nsec / 1000000);

    char line[4096];
    size_t len = 0, cap = sizeof line - 2;
    append_raw(line, &len, cap, "{\"ts\":\"");
    append_raw(line, &len, cap, stamp);
    append_raw(line, &len, cap, "\",\"level\":\"");
    append_raw(line, &len, cap, level_names[level]);
    append_raw(line, &len, cap, "\",\"proc\":\"");
    append_escaped(line, &len, cap, proc_name);
    for (int i = 0; i < n; i++) {
        if (!keys[i] || !vals[i])
            continue;
        append_raw(line, &len, cap, "\",\"");
        append_escaped(line, &len, cap, keys[i]);
        append_raw(line, &len, cap, "\":\"");
        append_escaped(line, &len, cap, vals[i]);
    }
    append_raw(line, &len, cap, "\",\"msg\":\"");
    append_escaped(line, &len, cap, msg);
    append_raw(line, &len, cap, "\"}\n");
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void ons_logk(enum ons_log_level level, const char *key, const char *val, const char *fmt, ...)
{
    if (level < min_level)
        return;
    const char *k[] = {key}, *v[] = {val};
    va_list ap;
    va_start(ap, fmt);
    vlog(level, k, v, 1, fmt, ap);
    va_end(ap);
}

void ons_logk2(enum ons_log_level level, const char *k1, const char *v1, const char *k2,
               const char *v2, const char *fmt, ...)
{
    if (level < min_level)
        return;
    const char *k[] = {k1, k2}, *v[] = {v1, v2};
    va_list ap;
    va_start(ap, fmt);
    vlog(level, k, v, 2, fmt, ap);
    va_end(ap);
}
