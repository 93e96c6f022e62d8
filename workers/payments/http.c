/* http.c - the gateway's URL; see http.h. */
#include "workers/payments/http.h"

int pay_url_parse(const char *url, pay_url *out)
{
    return ons_httpc_url_parse(url, out);
}
