/*
 * reply_stubs.h - ingress/server.c's reply functions in terms of the test's
 * own ing_reply_text and ing_reply_static (declared in ingress/server.h),
 * the request's release and ing_req_submit's batched twin, for test
 * programs that link ingress without its server (tests/fuzz/fuzz_request.c,
 * tests/unit/test_event_routes.c). Include it once; the program defines
 * those two.
 */
#ifndef ONSALE_TESTS_REPLY_STUBS_H
#define ONSALE_TESTS_REPLY_STUBS_H

#include "ingress/server.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Frees r the way server.c does once its reply is sent: its job state, its
 * body and the request itself. */
static void stub_req_free(ing_req *r)
{
    if (r->job && r->job_free)
        r->job_free(r->job);
    json_decref(r->body);
    free(r->raw);
    free(r);
}

void ing_reply_raw(ing_req *r, int status, const char *json_text)
{
    ing_reply_text(r, status, "application/json", json_text, json_text ? strlen(json_text) : 0);
}

/* headers are dropped: the programs read the status and the body. */
void ing_reply_json_headers(ing_req *r, int status, json_t *body, const char *const *headers)
{
    (void)headers;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    ing_reply_raw(r, status, text);
    free(text);
}

void ing_reply_json(ing_req *r, int status, json_t *body)
{
    ing_reply_json_headers(r, status, body, NULL);
}

void ing_reply_etag(ing_req *r, const char *content_type, const void *data, size_t len,
                    const char *etag, const char *const *headers)
{
    ing_reply_static(r, content_type, data, len, etag, headers);
}

/* The join claimer is not started in these programs (app.claimer NULL):
 * a join goes to the test's ing_req_submit either way. */
void ing_req_submit_batch(ing_req *r, ing_batcher *b)
{
    (void)b;
    ing_req_submit(r, NULL);
}

#endif
