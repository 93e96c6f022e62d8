/*
 * node_live.h - this ingress process's liveness key (docs/pipeline.md
 * "A node's death mid-join").
 *
 * A process names itself with a random token at start (a restart is a new
 * name) and keeps node:<token> in Redis alive for idem.node_ttl_ms, set
 * again every third of it by one thread of its own: a per-node timer, no
 * write per request. Idempotency-Key records in flight carry the token
 * (idem.c), so a retry that meets one can ask whether its node still
 * lives: a lapsed key means the node died (or lost Redis for a whole TTL),
 * and the retry looks for what that request wrote instead of waiting out
 * idem.inflight_ttl_s.
 */
#ifndef ONSALE_INGRESS_NODE_LIVE_H
#define ONSALE_INGRESS_NODE_LIVE_H

#include "queue/status.h"

typedef struct ing_node_live ing_node_live;

/* Draws the token, sets the key once (a failure is logged; the thread
 * keeps trying) and starts the thread. 0, ONS_ENOMEM or ONS_EIO (no random bytes). */
int ing_node_live_new(const q_status_opts *redis, int ttl_ms, ing_node_live **out);

/* The token (16 hex digits), for the life of n; "" when n is NULL. */
const char *ing_node_live_token(const ing_node_live *n);

/* Stops the thread and frees n (the key lapses by itself: a request the
 * stop cut short is then taken over like a dead node's). NULL is a no-op. */
void ing_node_live_free(ing_node_live *n);

#endif
