/* api_error.c - the API error table and the error finish path; see
 * api_error.h. */
#include "ingress/api_error.h"
#include "ingress/idem.h"
#include "ingress/server.h"

#include <assert.h>
#include <stdarg.h>

const ing_api_error ing_api_errors[ING_E_COUNT] = {
#define ING_API_ERR_ROW(id, status, code, retry, message)                                          \
    [id] = {#id, status, code, retry, message},
    ING_API_ERRORS(ING_API_ERR_ROW)
#undef ING_API_ERR_ROW
};

const ing_api_error *ing_api_error_row(ing_api_err e)
{
    assert(e >= 0 && e < ING_E_COUNT);
    return &ing_api_errors[e];
}

/* The finish path behind ing_fail, ing_failf and ing_fail_httpd. headers:
 * name/value pairs, NULL-terminated, or NULL. */
static void finish_error(ing_req *r, ing_worker *w, int status, const char *code, int retry_s,
                         const char *field, const char *const *headers, const char *fmt, va_list ap)
{
    assert(w || !r->idem_owned);
    ing_idem_release(r, w);
    if (retry_s == 0)
        r->retry_after = 0;
    else if (r->retry_after <= 0)
        r->retry_after = retry_s;
    ing_reply_json_headers(r, status, ons_httpd_error_body(code, field, fmt, ap), headers);
}

/* finish_error with its message as variadic arguments. */
static void finish_va(ing_req *r, ing_worker *w, int status, const char *code, int retry_s,
                      const char *field, const char *const *headers, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    finish_error(r, w, status, code, retry_s, field, headers, fmt, ap);
    va_end(ap);
}

void ing_fail(ing_req *r, ing_worker *w, ing_api_err e, const char *field)
{
    const ing_api_error *row = ing_api_error_row(e);
    finish_va(r, w, row->status, row->code, row->retry_after_s, field, NULL, "%s", row->message);
}

void ing_failf(ing_req *r, ing_worker *w, ing_api_err e, const char *field, const char *fmt, ...)
{
    const ing_api_error *row = ing_api_error_row(e);
    va_list ap;
    va_start(ap, fmt);
    finish_error(r, w, row->status, row->code, row->retry_after_s, field, NULL, fmt, ap);
    va_end(ap);
}

void ing_fail_httpd(ing_req *r, const ons_httpd_err *e)
{
    /* A 405 names the methods the resource has (RFC 9110, 15.5.6). */
    const char *allow[] = {"Allow", e->allow, NULL};
    finish_va(r, NULL, e->status, e->code, 0, NULL, e->allow[0] ? allow : NULL, "%s", e->message);
}
