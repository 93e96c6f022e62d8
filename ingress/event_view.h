/*
 * event_view.h - the public event view (GET /v1/events/{id}) served from
 * memory.
 *
 * The fan page fetches the view every few seconds per waiting fan. Counting
 * seats in PostgreSQL on each call cost 66 ms for a 100,000-seat event, so a
 * crowd on the page stopped the view loading for everyone. Here a view is
 * built at most once per event_view.ttl_ms per ingress node, on a job
 * thread: the event, venue and price tiers from PostgreSQL (indexed lookups
 * by id), availability from the partition owner's projection in Redis
 * (ev:<id>: totals and free seats per section). Only when the owner has not
 * published the event yet (never touched since Redis was flushed) are seats
 * counted in PostgreSQL, still once per ttl. The rendered JSON is kept with
 * its ETag and served from the nng thread while fresh: availability is at
 * most ttl_ms older than the owner's last commit.
 *
 * One refresh per event runs at a time: while it runs, other requests get
 * the previous body (stale by at most one refresh). Thread-safe. The route
 * handler, ing_route_event_get (routes.h), lives in event_view.c.
 */
#ifndef ONSALE_INGRESS_EVENT_VIEW_H
#define ONSALE_INGRESS_EVENT_VIEW_H

#include <stddef.h>

#include <stdint.h>

typedef struct ing_views ing_views;

/* A cache of ttl_ms with room for slots events (one per slot: a collision
 * evicts). Returns 0 or ONS_ENOMEM; *out is freed with ing_views_free. */
int ing_views_new(int ttl_ms, size_t slots, ing_views **out);
void ing_views_free(ing_views *v);

#endif
