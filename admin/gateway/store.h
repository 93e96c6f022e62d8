/*
 * store.h - the gateway simulator's memory: charges, refunds and
 * idempotency records.
 *
 * This is the gateway's own truth (what GET /v1/ledger reports): every
 * charge it ever made succeed, with how much of it was refunded, and every
 * refund. It lives in memory only - a restart forgets everything, as a
 * simulator may - and one mutex guards all of it, so each function below is
 * atomic with respect to the others. Every store is bounded by max_records
 * (ONS_EFULL beyond it); nothing expires.
 *
 * Idempotency follows Stripe: a key is reserved "in flight" by the first
 * request that carries it, then either completed with the exact response
 * (status and body text) that request produced - successes, declines and
 * business errors alike - or released when the request ended without a
 * result (a simulated 5xx, or a hang before charging), so a retry starts
 * afresh. A key is bound to a fingerprint of its request (method, path and
 * canonical body); a different request under the same key is a mismatch.
 *
 * Strings returned through char ** are heap copies the caller frees.
 */
#ifndef ONSALE_ADMIN_GATEWAY_STORE_H
#define ONSALE_ADMIN_GATEWAY_STORE_H

#include <jansson.h>
#include <stddef.h>

typedef struct gw_store gw_store;

enum gw_idem {
    GW_IDEM_NEW,         /* key was free: now reserved in flight for the caller */
    GW_IDEM_REPLAY,      /* completed earlier with the same fingerprint: *status, *body */
    GW_IDEM_IN_PROGRESS, /* same fingerprint, first attempt still in flight */
    GW_IDEM_MISMATCH,    /* the key was used for a different request */
};

/* Returns 0 or ONS_ENOMEM. max_records bounds each of the three stores. */
int gw_store_new(size_t max_records, gw_store **out);
void gw_store_free(gw_store *s);

/* Looks key up and, when it is free, reserves it for fingerprint. On
 * GW_IDEM_REPLAY *status and *body hold the stored response. Returns 0,
 * ONS_EFULL (no room for another key) or ONS_ENOMEM. */
int gw_idem_begin(gw_store *s, const char *key, const char *fingerprint, enum gw_idem *state,
                  int *status, char **body);

/* Completes a key the caller reserved with the response it sent (or would
 * have sent). Returns 0 or ONS_ENOMEM (the key is then released). */
int gw_idem_complete(gw_store *s, const char *key, int status, const char *body);

/* Frees a key the caller reserved, without a result. */
void gw_idem_release(gw_store *s, const char *key);

/* Creates a succeeded charge from params (amount_cents, currency,
 * payment_method, order_id or null, description or null; borrowed) and
 * completes key with status 200 and the charge as body, in one step.
 * Returns 0 with *body set, ONS_EFULL (ledger full; key released) or
 * ONS_ENOMEM (key released). */
int gw_store_charge(gw_store *s, const char *key, json_t *params, char **body);

/* Refunds amount_cents (<= 0: everything not yet refunded) of charge_id and
 * completes key with the outcome, in one step: 200 and the refund, 404
 * unknown charge, 400 more than remains. *status and *body hold the
 * response. Returns 0, ONS_EFULL (refund store full; key released) or
 * ONS_ENOMEM (key released). */
int gw_store_refund(gw_store *s, const char *key, const char *charge_id, long long amount_cents,
                    int *status, char **body);

/* The charge as JSON text (with refunded_cents). Returns 0,
 * ONS_ENOTFOUND or ONS_ENOMEM. */
int gw_store_charge_get(gw_store *s, const char *id, char **body);

/* {"charges":[...],"refunds":[...]} in creation order. Returns 0 or
 * ONS_ENOMEM. */
int gw_store_ledger(gw_store *s, char **body);

/* Counts, for gauges. */
void gw_store_counts(gw_store *s, size_t *charges, size_t *refunds, size_t *keys);

#endif
