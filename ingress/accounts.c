/* accounts.c - shared state of the account routes; see accounts.h. */
#include "ingress/accounts.h"
#include "common/err.h"

#include <stdlib.h>

int ing_accounts_new(uint64_t hash_ops, uint64_t hash_mem_kib, int hash_slots, ons_metrics *metrics,
                     ing_accounts **out)
{
    *out = NULL;
    if (hash_slots < 1)
        return ONS_EINVAL;
    int rc = ons_password_init();
    if (rc)
        return rc;
    ing_accounts *a = malloc(sizeof *a);
    if (!a)
        return ONS_ENOMEM;
    *a = (ing_accounts){
        .hash_ops = hash_ops, .hash_mem_kib = hash_mem_kib, .hash_slots = hash_slots};
    atomic_init(&a->hashing, 0);
    char pw[ONS_B64URL_LEN(32) + 1];
    ons_random_token(32, pw, sizeof pw);
    rc = ons_password_hash(pw, sizeof pw - 1, hash_ops, hash_mem_kib, a->dummy_hash);
    if (rc) {
        free(a);
        return rc;
    }
    if (metrics) {
        static const char name[] = "onsale_ingress_logins_total";
        static const char help[] = "Logins by result (busy: refused at the hashing gate).";
        a->logins_ok = ons_metrics_counter(metrics, name, help, "result=\"ok\"");
        a->logins_failed = ons_metrics_counter(metrics, name, help, "result=\"failed\"");
        a->logins_throttled = ons_metrics_counter(metrics, name, help, "result=\"throttled\"");
        a->hash_busy = ons_metrics_counter(metrics, name, help, "result=\"busy\"");
        a->refresh_reuse =
            ons_metrics_counter(metrics, "onsale_ingress_refresh_reuse_total",
                                "Rotated refresh tokens presented again (sessions revoked).", "");
    }
    *out = a;
    return 0;
}

void ing_accounts_count(ons_counter *c)
{
    if (c)
        ons_counter_add(c, 1);
}

void ing_accounts_free(ing_accounts *a)
{
    free(a);
}

int ing_accounts_hash_acquire(ing_accounts *a)
{
    int n = atomic_fetch_add(&a->hashing, 1);
    if (n < a->hash_slots)
        return 1;
    atomic_fetch_sub(&a->hashing, 1);
    return 0;
}

void ing_accounts_hash_release(ing_accounts *a)
{
    atomic_fetch_sub(&a->hashing, 1);
}
