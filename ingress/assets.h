/*
 * assets.h - the web pages of web/ (the fan's queue page and the ops
 * dashboard), embedded into the binary at build time and served from
 * memory: no file system access per request, so no path traversal and no
 * surprise when the files change under a running process.
 *
 * The build turns every web/ file into a byte array in a generated C file
 * (ingress/assets.cmake); this module names each one by an exact table
 * lookup, gives it its Content-Type, an ETag (content hash) and the
 * headers the pages need (Content-Security-Policy: same origin only), and
 * sends it gzipped (built in at build time, not per request) to a client
 * that accepts gzip.
 *
 * Threads: the route handlers reply at once on nng's thread (pure memory).
 */
#ifndef ONSALE_INGRESS_ASSETS_H
#define ONSALE_INGRESS_ASSETS_H

#include <stddef.h>

#include "ingress/server.h"

/* One embedded file. data is NUL-terminated (data[len] == 0) and static. */
typedef struct ing_asset {
    const char *name; /* file name inside web/, e.g. "fan.js" */
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted strong validator, e.g. "\"3f2a...\"" */
    /* The same file gzipped, or NULL when that would not save a tenth;
     * its ETag is etag's with "-gz" added inside the quotes. */
    const unsigned char *gz;
    size_t gz_len;
    const char *gz_etag;
} ing_asset;

/* The generated table (web_assets.c in the build tree), sorted by name. */
extern const ing_asset ing_assets[];
extern const size_t ing_asset_count;

/* The asset called exactly name, or NULL. Names are compared whole: no
 * normalisation, no directories. */
const ing_asset *ing_asset_find(const char *name);

/* The Content-Type for an asset's name (by extension; octet-stream when
 * unknown). */
const char *ing_asset_type(const char *name);

/* 1 when an Accept-Encoding header value v (NULL: none) accepts gzip. */
int ing_accepts_gzip(const char *v);

/* GET / and GET /q/{event_id}: the fan's queue page. */
void ing_route_web_fan(ing_req *r);
/* GET /ops/: the operators' dashboard. */
void ing_route_web_ops(ing_req *r);
/* GET /web/{name}: one asset by exact name; 404 otherwise. */
void ing_route_web_asset(ing_req *r);

#endif
