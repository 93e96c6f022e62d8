/*
 * event_view.h - the public event view (GET /v1/events/{id}) served from
 * memory.
 *
 * The fan page fetches the view every few seconds per waiting fan (every
 * refresh_after_ms: 5 s, stretched as the event's crowd grows so that it
 * asks at most event_view.views_per_s views a second in all). Counting
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
 * the previous body (stale by at most one refresh), except while a status
 * change is expected (ing_views_expect). Renders that do run at once (an
 * empty slot, a stuck refresh, an expectation) never put an older view
 * back: the one whose reads began last is kept. Thread-safe. The route
 * handler, ing_route_event_get (routes.h), lives in event_view.c.
 */
#ifndef ONSALE_INGRESS_EVENT_VIEW_H
#define ONSALE_INGRESS_EVENT_VIEW_H

#include <stddef.h>

#include <stdint.h>

typedef struct ing_views ing_views;

/* How often the fan page should fetch the view again (docs/http-edge.md
 * "The page's schedule"): every min_ms while the event is quiet, spread so
 * that the event's crowd (fans waiting plus fans holding seats, from the
 * owner's projection) asks at most views_per_s times a second in all, never
 * slower than max_ms. Sent as refresh_after_ms in the view. */
typedef struct ing_view_refresh {
    int64_t min_ms, max_ms, views_per_s;
} ing_view_refresh;

/* refresh_after_ms for a crowd of that many fans (negative = unknown):
 * crowd * 1000 / views_per_s clamped to [min_ms, max_ms], rounded up to a
 * whole second so the view's ETag changes only when the hint does. */
int64_t ing_view_refresh_ms(const ing_view_refresh *cfg, int64_t crowd);

/* A cache of ttl_ms with room for slots events (one per slot: a collision
 * evicts), whose views carry refresh hints per *refresh. Returns 0 or
 * ONS_ENOMEM; *out is freed with ing_views_free. */
int ing_views_new(int ttl_ms, size_t slots, const ing_view_refresh *refresh, ing_views **out);
void ing_views_free(ing_views *v);

/* A status change of event_id was sent through this node (to status, as
 * events.status will read once its owner applied it): until a render reads
 * that status (or for 10 s at most), the view of the status before is
 * served only while a render runs (one at a time, back to back), fresh or
 * not. So a fan who learnt of the
 * change (a refund, a release "cancelled") is not shown the event as it
 * was for up to ttl_ms more. Other nodes learn it within their ttl_ms. */
void ing_views_expect(ing_views *v, int64_t event_id, const char *status);

#endif
