/*
 * log.h - one-line JSON logs on stderr.
 *
 * Each call writes exactly one line, e.g.
 *   {"ts":"2026-11-28T00:00:00.123Z","level":"info","proc":"worker",
 *    "intent_id":"...","msg":"claimed partition 3"}
 * so that logs of many processes can be merged and filtered with jq. The
 * optional key/value pair carries the request or intent id the line is about.
 * Thread-safe: a line is formatted into a local buffer and written with one
 * write(2).
 */
#ifndef ONSALE_COMMON_LOG_H
#define ONSALE_COMMON_LOG_H

enum ons_log_level { ONS_LOG_DEBUG, ONS_LOG_INFO, ONS_LOG_WARN, ONS_LOG_ERROR };

/* Sets the process name written in every line and the minimum level.
 * Call once at start, before any thread logs. level is "debug", "info",
 * "warn" or "error"; unknown names keep the default (info). */
void ons_log_init(const char *proc, const char *level);

/* Logs one line. key/val may be NULL (no context field). */
void ons_logk(enum ons_log_level level, const char *key, const char *val, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Logs one line with two context fields (either may be NULL), e.g. the
 * intent id and the request id that made it. */
void ons_logk2(enum ons_log_level level, const char *k1, const char *v1, const char *k2,
               const char *v2, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define ons_log_debug(...) ons_logk(ONS_LOG_DEBUG, NULL, NULL, __VA_ARGS__)
#define ons_log_info(...)  ons_logk(ONS_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define ons_log_warn(...)  ons_logk(ONS_LOG_WARN, NULL, NULL, __VA_ARGS__)
#define ons_log_error(...) ons_logk(ONS_LOG_ERROR, NULL, NULL, __VA_ARGS__)

#endif
