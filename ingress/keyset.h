/*
 * keyset.h - keyset pagination as the catalog search and the ticket
 * history page it: a page query orders by a key and an id, starts strictly
 * after the cursor's (key, id), and fetches limit + 1 rows. The extra row
 * is never shown; it only says that a next page exists, whose cursor is
 * the (key, id) of the last row shown, in the route's own opaque form.
 */
#ifndef ONSALE_INGRESS_KEYSET_H
#define ONSALE_INGRESS_KEYSET_H

#include <jansson.h>
#include <stdint.h>

/* How many of the fetched rows (limit + 1 at most) the page shows; *more is
 * 1 when a next page exists. */
static inline int ing_keyset_rows(int fetched, int64_t limit, int *more)
{
    *more = fetched > limit;
    return *more ? (int)limit : fetched;
}

/* The page's "next_cursor" value: the cursor, or null on the last page
 * (cursor NULL). A new reference (NULL when out of memory, which
 * json_pack's "o" and json_object_set_new report as failures). */
static inline json_t *ing_keyset_next(const char *cursor)
{
    return cursor ? json_string(cursor) : json_null();
}

#endif
