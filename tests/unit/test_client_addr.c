/* test_client_addr.c - ing_client_addr_resolve() / ing_client_addr(): the
 * client is the rightmost
 * forwarded-for entry that is not a trusted proxy, and the header is
 * believed only next to the proxy's token when http.proxy_token is set. */
#include "common/err.h"
#include "ingress/app.h"
#include "ingress/client_addr.h"
#include "ingress/server.h"

#include "tests/check_run.h"

#include <check.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <string.h>

static ing_app app;
static ing_req req;
static nng_http_req *hreq;
static char buf[ING_CLIENT_ADDR_MAX + 1];

static void setup(void)
{
    memset(&app, 0, sizeof app);
    memset(&req, 0, sizeof req);
    app.o.client_addr_header = "X-Forwarded-For";
    app.o.client_trusted_proxies = "127.0.0.1";
    app.o.http_proxy_token = "";
    ck_assert_int_eq(nng_http_req_alloc(&hreq, NULL), 0);
    req.app = &app;
    req.hreq = hreq;
}

/* What the server does before a handler, then what a handler reads. */
static int addr_of(void)
{
    ing_client_addr_resolve(&req);
    return ing_client_addr(&req, buf, sizeof buf);
}

static void teardown(void)
{
    nng_http_req_free(hreq);
}

START_TEST(rightmost_untrusted_entry)
{
    nng_http_req_set_header(hreq, "X-Forwarded-For", "10.9.9.9, 192.0.2.7");
    ck_assert_int_eq(addr_of(), 0);
    ck_assert_str_eq(buf, "192.0.2.7");
    nng_http_req_set_header(hreq, "X-Forwarded-For", "192.0.2.7, 127.0.0.1");
    ck_assert_int_eq(addr_of(), 0);
    ck_assert_str_eq(buf, "192.0.2.7");
    nng_http_req_set_header(hreq, "X-Forwarded-For", "not an address");
    ck_assert_int_eq(addr_of(), ONS_ENOTFOUND);
}
END_TEST

START_TEST(header_ignored_without_the_proxy_token)
{
    app.o.http_proxy_token = "s3cret-proxy-token";
    nng_http_req_set_header(hreq, "X-Forwarded-For", "192.0.2.7");
    /* straight to the node: not believed */
    ck_assert_int_eq(addr_of(), ONS_ENOTFOUND);
    nng_http_req_set_header(hreq, ING_PROXY_TOKEN_HEADER, "s3cret-proxy-tokeX");
    ck_assert_int_eq(addr_of(), ONS_ENOTFOUND);
    nng_http_req_set_header(hreq, ING_PROXY_TOKEN_HEADER, "s3cret-proxy-token-longer");
    ck_assert_int_eq(addr_of(), ONS_ENOTFOUND);
    nng_http_req_set_header(hreq, ING_PROXY_TOKEN_HEADER, "s3cret-proxy-token");
    ck_assert_int_eq(addr_of(), 0);
    ck_assert_str_eq(buf, "192.0.2.7");
}
END_TEST

START_TEST(no_trusted_proxy_no_address)
{
    app.o.client_trusted_proxies = "";
    nng_http_req_set_header(hreq, "X-Forwarded-For", "192.0.2.7");
    ck_assert_int_eq(addr_of(), ONS_ENOTFOUND);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"rightmost_untrusted_entry", rightmost_untrusted_entry},
        {"header_ignored_without_the_proxy_token", header_ignored_without_the_proxy_token},
        {"no_trusted_proxy_no_address", no_trusted_proxy_no_address},
    };
    return ons_check_run_fixture("client_addr", cases, sizeof cases / sizeof *cases, 60, setup,
                                 teardown);
}
