/*
 * json_io.h - strict request-body validation and the API's error replies.
 *
 * Errors have one shape everywhere (docs/api.md):
 *   {"error":{"code":"snake_case","message":"human sentence","field":"x"}}
 * Every validator below either succeeds (returns 0) or FINISHES the request
 * with a 400 naming the field (ing_fail, api_error.h) and returns -1: r is
 * then freed, and the caller must return at once without touching r, its
 * body or any pointer into the body. They run before an Idempotency-Key is
 * claimed (r holds none).
 */
#ifndef ONSALE_INGRESS_JSON_IO_H
#define ONSALE_INGRESS_JSON_IO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ingress/api_error.h"
#include "ingress/server.h"

/* Gives r a zeroed job of size bytes, freed with the request by job_free
 * (NULL: free). Returns the job, or NULL when out of memory: r was then
 * FINISHED with 503 overloaded and must not be touched. */
void *ing_req_job(ing_req *r, size_t size, void (*job_free)(void *));

/* 400 unknown_field unless every key of o is in allowed (NULL-terminated). */
int ing_json_only(ing_req *r, json_t *o, const char *const *allowed);

/* Integer field in [min, max]. Absent and !required: 0, *out untouched. */
int ing_json_int(ing_req *r, json_t *o, const char *key, int required, int64_t min, int64_t max,
                 int64_t *out);
/* Number (integer or real) in [min, max]; *present set to 1 when given. */
int ing_json_num(ing_req *r, json_t *o, const char *key, double min, double max, double *out,
                 int *present);
/* String of minlen..maxlen bytes (valid UTF-8 by jansson), no control
 * characters. The limits count bytes, not characters (docs/api.md
 * "Requests"): the stores' fixed buffers are sized in bytes. Absent and !required: 0, *out
 * untouched. *out points into o. */
int ing_json_str(ing_req *r, json_t *o, const char *key, int required, size_t minlen, size_t maxlen,
                 const char **out);
/* Boolean. Absent: 0, *out untouched. */
int ing_json_bool(ing_req *r, json_t *o, const char *key, int *out);
/* RFC 3339 timestamp string into ms since epoch. */
int ing_json_time(ing_req *r, json_t *o, const char *key, int required, int64_t *out_ms);
/* Array of 1..max elements, each a JSON object. */
int ing_json_objects(ing_req *r, json_t *o, const char *key, size_t max, json_t **out);

/* Path id: a positive decimal int64 without sign or leading zero; replies
 * 400 invalid_id otherwise. */
int ing_path_id(ing_req *r, const char *s, int64_t *out);
/* The same test without a reply: 0 with *out, or -1. */
int ing_path_id_parse(const char *s, int64_t *out);

/* The last instant an answer can write as RFC 3339: 9999-12-31T23:59:59.999Z. */
#define ING_RFC3339_MAX_MS INT64_C(253402300799999)
/* Parses an RFC 3339 time ("2026-11-28T20:00:00Z", "...+01:00", fractions
 * allowed) of an instant from 1970-01-01T00:00:00Z to ING_RFC3339_MAX_MS
 * (the offset applied). Returns 0 or ONS_EINVAL. */
int ing_parse_rfc3339(const char *s, int64_t *out_ms);
/* Formats ms since epoch as "YYYY-MM-DDTHH:MM:SSZ" (UTC) into out[32]. */
void ing_format_rfc3339(int64_t ms, char out[32]);

/* 1..128 printable ASCII characters (0x20..0x7e). */
int ing_idem_key_valid(const char *k);

/* Lowercase hex SHA-256 of the parts, concatenated. */
void ing_sha256_hex(const void *a, size_t alen, const void *b, size_t blen, char out[65]);

#endif
