/*
 * accounts.h - what the account routes share across requests: the password
 * hashing limits, a dummy hash for unknown emails, and the gate that bounds
 * how many password hashes are queued or running at once.
 *
 * Hashing is deliberately slow (argon2id, ~50-100 ms of CPU and tens of MiB
 * per call). It runs only on job threads; the gate keeps a flood of logins
 * or sign-ups from occupying every job thread and starving joins and polls:
 * a request that finds the gate full is refused at once (503) instead of
 * queueing.
 */
#ifndef ONSALE_INGRESS_ACCOUNTS_H
#define ONSALE_INGRESS_ACCOUNTS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/metrics.h"
#include "common/password.h"

typedef struct ing_accounts {
    uint64_t hash_ops, hash_mem_kib;
    int hash_slots;
    atomic_int hashing; /* slots taken */
    /* A hash of a random password with the current limits: logins for an
     * email with no account verify against it, so they cost the same time
     * as a wrong password for an existing one. */
    char dummy_hash[ONS_PASSWORD_HASH_MAX];
    /* onsale_ingress_logins_total{result=...}: ok, failed (401), throttled
     * (429), busy (503 at the gate, sign-ups included); refresh-token reuse
     * detections. NULL when metrics are off. */
    ons_counter *logins_ok, *logins_failed, *logins_throttled, *hash_busy, *refresh_reuse;
} ing_accounts;

/* 1 when s is an email address as sign-up takes one (routes_accounts.c:
 * ASCII, dot-atom local part, a domain of two labels or more, at most
 * ING_EMAIL_MAX bytes), else 0. */
int ing_email_ok(const char *s);

/* Initialises libsodium, computes the dummy hash (takes one hash's time)
 * and registers the counters in metrics (may be NULL). *out is owned by the
 * caller (ing_accounts_free). Returns 0, ONS_EINVAL (limits out of bounds),
 * ONS_EIO or ONS_ENOMEM. */
int ing_accounts_new(uint64_t hash_ops, uint64_t hash_mem_kib, int hash_slots, ons_metrics *metrics,
                     ing_accounts **out);

/* Adds one to c unless it is NULL. Any thread. */
void ing_accounts_count(ons_counter *c);
void ing_accounts_free(ing_accounts *a);

/* Takes a hashing slot. Returns 1, or 0 when all are taken. Any thread. */
int ing_accounts_hash_acquire(ing_accounts *a);
/* Gives a slot back. Any thread. */
void ing_accounts_hash_release(ing_accounts *a);

#endif
