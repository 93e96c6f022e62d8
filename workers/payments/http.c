/* http.c - the gateway call over the common HTTP client; see http.h. */
#include "workers/payments/http.h"

#include <string.h>

int pay_url_parse(const char *url, pay_url *out)
{
    return ons_httpc_url_parse(url, out);
}

int pay_http_post(const pay_url *u, const char *path, const char *const *headers, const char *body,
                  int timeout_ms, pay_http_resp *resp)
{
    ons_httpc_req req = {.method = "POST", .path = path, .headers = headers, .body = body};
    ons_httpc_resp r;
    memset(resp, 0, sizeof *resp);
    /* The head of an answer is small; a body past PAY_HTTP_MAX_BODY is not
     * the gateway's. */
    int rc = ons_httpc_call(u, &req, timeout_ms, 2 * PAY_HTTP_MAX_BODY, &r);
    if (rc)
        return rc;
    resp->status = r.status;
    resp->body = (char *)r.body;
    resp->len = r.body_len;
    return 0;
}
