/* client_addr.c - the client's address from the proxy's header; see client_addr.h. */
#include "ingress/client_addr.h"

#include "ingress/app.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <openssl/crypto.h>
#include <string.h>

/* The proxy's token, compared in constant time (it is a secret). */
static int proxy_trusted(ing_req *r)
{
    const char *want = r->app->o.http_proxy_token;
    if (!want || !*want)
        return 1;
    const char *got = nng_http_req_get_header(r->hreq, ING_PROXY_TOKEN_HEADER);
    size_t n = strlen(want);
    return got && strlen(got) == n && CRYPTO_memcmp(got, want, n) == 0;
}

const char *ing_client_addr(ing_req *r, char out[ING_CLIENT_ADDR_MAX + 1])
{
    const char *name = r->app->o.accounts_client_addr_header;
    if (!name || !*name || !r->hreq || !proxy_trusted(r))
        return NULL;
    const char *v = nng_http_req_get_header(r->hreq, name);
    if (!v)
        return NULL;
    const char *last = strrchr(v, ',');
    last = last ? last + 1 : v;
    while (*last == ' ' || *last == '\t')
        last++;
    size_t n = strspn(last, "0123456789abcdefABCDEF.:");
    const char *rest = last + n;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (n < 2 || n > ING_CLIENT_ADDR_MAX || *rest != '\0')
        return NULL;
    memcpy(out, last, n);
    out[n] = '\0';
    return out;
}
