/* assets.c - serving the embedded web/ files; see assets.h. */
#include "ingress/assets.h"
#include "ingress/json_io.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Extension -> Content-Type. Only what web/ holds; the rest is opaque. */
static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
};

/* Pages get a policy that allows only this origin: no inline script, no
 * third-party anything, not framed. Revalidated on every load (ETag), so a
 * new build is picked up at once while an unchanged one costs a 304. */
static const char *const page_headers[] = {
    "Cache-Control",
    "no-cache",
    "Content-Security-Policy",
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options",
    "nosniff",
    "Referrer-Policy",
    "no-referrer",
    "X-Frame-Options",
    "DENY",
    NULL,
};

static const char *const asset_headers[] = {
    "Cache-Control", "no-cache", "X-Content-Type-Options", "nosniff", NULL,
};

const ing_asset *ing_asset_find(const char *name)
{
    size_t lo = 0, hi = ing_asset_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, ing_assets[mid].name);
        if (c == 0)
            return &ing_assets[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *ing_asset_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Whether an Accept-Encoding value accepts gzip: a "gzip" (or "*")
 * element whose q is not zero (RFC 9110 12.5.3). An explicit gzip;q=0
 * wins over "*". */
int ing_accepts_gzip(const char *v)
{
    int star = 0;
    while (v && *v) {
        v += strspn(v, " \t,");
        size_t n = strcspn(v, " \t;,");
        const char *end = v + strcspn(v, ",");
        int gzip = n == 4 && strncasecmp(v, "gzip", 4) == 0;
        int any = n == 1 && *v == '*';
        double q = 1;
        const char *qp = v + n;
        while (qp < end && (*qp == ' ' || *qp == '\t' || *qp == ';'))
            qp++;
        if (qp + 1 < end && (*qp == 'q' || *qp == 'Q') && qp[1] == '=')
            q = strtod(qp + 2, NULL);
        if (gzip)
            return q > 0;
        if (any)
            star = q > 0;
        v = end;
    }
    return star;
}

/* The asset called name with headers, gzipped when it has a gzipped form
 * and the client takes it. Either way the answer says that it varies with
 * Accept-Encoding, so a shared cache keeps the two apart. */
static void serve(ing_req *r, const char *name, const char *const *headers)
{
    const ing_asset *a = ing_asset_find(name);
    if (!a) {
        ing_fail(r, NULL, ING_E_NOT_FOUND, NULL);
        return;
    }
    const char *h[2 * ING_STATIC_HEADERS_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; headers[i] && n + 6 < sizeof h / sizeof *h; i += 2) {
        h[n++] = headers[i];
        h[n++] = headers[i + 1];
    }
    int gz = a->gz && ing_accepts_gzip(ing_req_header(r, "Accept-Encoding"));
    if (a->gz) {
        h[n++] = "Vary";
        h[n++] = "Accept-Encoding";
    }
    if (gz) {
        h[n++] = "Content-Encoding";
        h[n++] = "gzip";
    }
    h[n] = NULL;
    if (gz)
        ing_reply_static(r, ing_asset_type(a->name), a->gz, a->gz_len, a->gz_etag, h);
    else
        ing_reply_static(r, ing_asset_type(a->name), a->data, a->len, a->etag, h);
}

void ing_route_web_fan(ing_req *r)
{
    serve(r, "fan.html", page_headers);
}

void ing_route_web_ops(ing_req *r)
{
    serve(r, "ops.html", page_headers);
}

void ing_route_web_asset(ing_req *r)
{
    const char *name = r->nparams == 1 ? r->params[0] : "";
    size_t n = strlen(name);
    int html = n > 5 && strcmp(name + n - 5, ".html") == 0;
    serve(r, name, html ? page_headers : asset_headers);
}
