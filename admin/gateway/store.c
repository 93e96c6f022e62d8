/* store.c - in-memory charges, refunds and idempotency records; see
 * store.h. jansson objects serve as the hash maps: the records are JSON
 * anyway, and the ledger is rendered straight from them. */
#include "admin/gateway/store.h"
#include "common/err.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct gw_store {
    pthread_mutex_t mu; /* guards everything below */
    size_t max_records;
    json_t *idem;     /* key -> {"fp":s, "done":b, "status":i, "body":s} */
    json_t *charges;  /* array of charge objects, creation order */
    json_t *by_id;    /* charge id -> the same charge objects */
    json_t *refunds;  /* array of refund objects, creation order */
    uint64_t nonce;   /* per process, so ids of two runs differ */
    uint64_t next_id; /* ids are nonce-mixed counters: unique per run */
};

int gw_store_new(size_t max_records, gw_store **out)
{
    gw_store *s = calloc(1, sizeof *s);
    if (!s)
        return ONS_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->max_records = max_records;
    s->idem = json_object();
    s->charges = json_array();
    s->by_id = json_object();
    s->refunds = json_array();
    if (getrandom(&s->nonce, sizeof s->nonce, 0) != (ssize_t)sizeof s->nonce)
        s->nonce = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL;
    if (!s->idem || !s->charges || !s->by_id || !s->refunds) {
        gw_store_free(s);
        return ONS_ENOMEM;
    }
    *out = s;
    return 0;
}

void gw_store_free(gw_store *s)
{
    if (!s)
        return;
    json_decref(s->idem);
    json_decref(s->charges);
    json_decref(s->by_id);
    json_decref(s->refunds);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Writes a fresh id "<prefix>_<24 hex>" into out. Caller holds mu. */
static void new_id(gw_store *s, const char *prefix, char out[32])
{
    uint64_t seq = ++s->next_id;
    uint64_t x = s->nonce ^ (seq * 0x9E3779B97F4A7C15ULL);
    x ^= x >> 29;
    snprintf(out, 32, "%s_%016" PRIx64 "%08" PRIx32, prefix, x, (uint32_t)seq);
}

/* {"error":{"code","message","field"}} as compact text, or NULL. */
static char *error_text(const char *code, const char *message, const char *field)
{
    json_t *e = json_pack("{s:{s:s, s:s, s:s?}}", "error", "code", code, "message", message,
                          "field", field);
    char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    return text;
}

int gw_idem_begin(gw_store *s, const char *key, const char *fingerprint, enum gw_idem *state,
                  int *status, char **body)
{
    int rc = 0;
    *body = NULL;
    pthread_mutex_lock(&s->mu);
    json_t *rec = json_object_get(s->idem, key);
    if (rec) {
        const char *fp = json_string_value(json_object_get(rec, "fp"));
        if (!fp || strcmp(fp, fingerprint) != 0) {
            *state = GW_IDEM_MISMATCH;
        } else if (!json_is_true(json_object_get(rec, "done"))) {
            *state = GW_IDEM_IN_PROGRESS;
        } else {
            *state = GW_IDEM_REPLAY;
            *status = (int)json_integer_value(json_object_get(rec, "status"));
            *body = strdup(json_string_value(json_object_get(rec, "body")));
            if (!*body)
                rc = ONS_ENOMEM;
        }
        goto out;
    }
    if (json_object_size(s->idem) >= s->max_records) {
        rc = ONS_EFULL;
        goto out;
    }
    rec = json_pack("{s:s, s:b}", "fp", fingerprint, "done", 0);
    if (!rec || json_object_set_new(s->idem, key, rec) != 0) {
        rc = ONS_ENOMEM;
        goto out;
    }
    *state = GW_IDEM_NEW;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Completes key with status and body. Caller holds mu. On ONS_ENOMEM the
 * key is released instead. */
static int complete_locked(gw_store *s, const char *key, int status, const char *body)
{
    json_t *rec = json_object_get(s->idem, key);
    if (!rec)
        return ONS_ENOTFOUND;
    if (json_object_set_new(rec, "status", json_integer(status)) != 0 ||
        json_object_set_new(rec, "body", json_string(body)) != 0 ||
        json_object_set_new(rec, "done", json_true()) != 0) {
        json_object_del(s->idem, key);
        return ONS_ENOMEM;
    }
    return 0;
}

int gw_idem_complete(gw_store *s, const char *key, int status, const char *body)
{
    pthread_mutex_lock(&s->mu);
    int rc = complete_locked(s, key, status, body);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void gw_idem_release(gw_store *s, const char *key)
{
    pthread_mutex_lock(&s->mu);
    json_object_del(s->idem, key);
    pthread_mutex_unlock(&s->mu);
}

int gw_store_charge(gw_store *s, const char *key, json_t *params, char **body)
{
    int rc = ONS_ENOMEM;
    char id[32];
    char *text = NULL;
    json_t *ch = NULL;
    *body = NULL;
    pthread_mutex_lock(&s->mu);
    if (json_array_size(s->charges) >= s->max_records) {
        rc = ONS_EFULL;
        goto fail;
    }
    new_id(s, "ch", id);
    ch = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O, s:O, s:I, s:I}", "id", id, "status", "succeeded",
                   "amount_cents", json_object_get(params, "amount_cents"), "currency",
                   json_object_get(params, "currency"), "payment_method",
                   json_object_get(params, "payment_method"), "order_id",
                   json_object_get(params, "order_id"), "description",
                   json_object_get(params, "description"), "created", (json_int_t)time(NULL),
                   "refunded_cents", (json_int_t)0);
    if (!ch || !(text = json_dumps(ch, JSON_COMPACT)))
        goto fail;
    /* Mutations last, undone in reverse if one fails: all or nothing. */
    if (json_object_set(s->by_id, id, ch) != 0)
        goto fail;
    if (json_array_append(s->charges, ch) != 0) {
        json_object_del(s->by_id, id);
        goto fail;
    }
    if (complete_locked(s, key, 200, text) != 0) {
        json_array_remove(s->charges, json_array_size(s->charges) - 1);
        json_object_del(s->by_id, id);
        goto fail_released;
    }
    pthread_mutex_unlock(&s->mu);
    json_decref(ch);
    *body = text;
    return 0;
fail:
    json_object_del(s->idem, key);
fail_released:
    pthread_mutex_unlock(&s->mu);
    json_decref(ch);
    free(text);
    return rc;
}

/* Records a refund of amount on charge ch (refunded so far: refunded)
 * and its answer (*re, *text, for the caller to release). 0, or ONS_EFULL
 * or ONS_ENOMEM with the refund not recorded. */
static int add_refund_locked(gw_store *s, json_t *ch, const char *charge_id, json_int_t amount,
                             json_int_t refunded, json_t **re, char **text)
{
    char id[32];
    if (json_array_size(s->refunds) >= s->max_records)
        return ONS_EFULL;
    new_id(s, "re", id);
    *re = json_pack("{s:s, s:s, s:I, s:O, s:s, s:I}", "id", id, "charge", charge_id, "amount_cents",
                    amount, "currency", json_object_get(ch, "currency"), "status", "succeeded",
                    "created", (json_int_t)time(NULL));
    if (!*re || !(*text = json_dumps(*re, JSON_COMPACT)) || json_array_append(s->refunds, *re) != 0)
        return ONS_ENOMEM;
    if (json_object_set_new(ch, "refunded_cents", json_integer(refunded + amount)) != 0) {
        json_array_remove(s->refunds, json_array_size(s->refunds) - 1);
        return ONS_ENOMEM;
    }
    return 0;
}

/* Decides a refund of amount_cents (0: the rest) on charge ch (NULL: no
 * such charge): *status and the answer *text; rc as add_refund_locked. */
static int refund_locked(gw_store *s, json_t *ch, const char *charge_id, long long amount_cents,
                         int *status, json_t **re, char **text)
{
    char msg[160];
    if (!ch) {
        *status = 404;
        *text = error_text("charge_not_found", "No charge has this id.", "charge");
        return 0;
    }
    json_int_t charged = json_integer_value(json_object_get(ch, "amount_cents"));
    json_int_t refunded = json_integer_value(json_object_get(ch, "refunded_cents"));
    json_int_t amount = amount_cents > 0 ? (json_int_t)amount_cents : charged - refunded;
    if (amount <= 0 || amount > charged - refunded) {
        *status = 400;
        snprintf(msg, sizeof msg,
                 "Refund of %" JSON_INTEGER_FORMAT " exceeds the %" JSON_INTEGER_FORMAT
                 " cents not yet refunded.",
                 amount, charged - refunded);
        *text = error_text("amount_too_large", msg, "amount_cents");
        return 0;
    }
    int rc = add_refund_locked(s, ch, charge_id, amount, refunded, re, text);
    if (rc == 0)
        *status = 200;
    return rc;
}

int gw_store_refund(gw_store *s, const char *key, const char *charge_id, long long amount_cents,
                    int *status, char **body)
{
    char *text = NULL;
    json_t *re = NULL;
    *body = NULL;
    pthread_mutex_lock(&s->mu);
    json_t *ch = json_object_get(s->by_id, charge_id);
    json_int_t refunded_before = ch ? json_integer_value(json_object_get(ch, "refunded_cents")) : 0;
    int rc = refund_locked(s, ch, charge_id, amount_cents, status, &re, &text);
    if (rc == 0 && !text)
        rc = ONS_ENOMEM;
    if (rc)
        goto fail;
    if (complete_locked(s, key, *status, text) != 0) {
        rc = ONS_ENOMEM;
        if (re) {
            json_array_remove(s->refunds, json_array_size(s->refunds) - 1);
            json_object_set_new(ch, "refunded_cents", json_integer(refunded_before));
        }
        goto fail_released;
    }
    pthread_mutex_unlock(&s->mu);
    json_decref(re);
    *body = text;
    return 0;
fail:
    json_object_del(s->idem, key);
fail_released:
    pthread_mutex_unlock(&s->mu);
    json_decref(re);
    free(text);
    return rc;
}

int gw_store_charge_get(gw_store *s, const char *id, char **body)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    json_t *ch = json_object_get(s->by_id, id);
    if (!ch)
        rc = ONS_ENOTFOUND;
    else if (!(*body = json_dumps(ch, JSON_COMPACT)))
        rc = ONS_ENOMEM;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int gw_store_ledger(gw_store *s, char **body)
{
    pthread_mutex_lock(&s->mu);
    json_t *l = json_pack("{s:O, s:O}", "charges", s->charges, "refunds", s->refunds);
    *body = l ? json_dumps(l, JSON_COMPACT) : NULL;
    json_decref(l);
    pthread_mutex_unlock(&s->mu);
    return *body ? 0 : ONS_ENOMEM;
}

void gw_store_counts(gw_store *s, size_t *charges, size_t *refunds, size_t *keys)
{
    pthread_mutex_lock(&s->mu);
    *charges = json_array_size(s->charges);
    *refunds = json_array_size(s->refunds);
    *keys = json_object_size(s->idem);
    pthread_mutex_unlock(&s->mu);
}
