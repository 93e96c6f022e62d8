/* outbox_store.c - the outbox's statements; see outbox_store.h. */
#include "workers/payments/outbox_store.h"

#include "common/err.h"
#include "common/pgarr.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

/* Columns of the claim's RETURNING. */
enum {
    C_ID,
    C_KIND,
    C_ORDER,
    C_RESERVATION,
    C_EVENT,
    C_TICKET,
    C_AMOUNT,
    C_CURRENCY,
    C_PM,
    C_CHARGE,
    C_KEY,
    C_ATTEMPTS,
    C_USER
};

/* Copies a text field into buf, cut to fit (the columns' own limits keep
 * them shorter). */
static void cut_text(ons_pg_row *rw, int col, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", ons_pg_row_str(rw, col, 0));
}

/* Reads row i of the claim into w: 0 or ONS_EDB (logged). */
static int read_row(const PGresult *r, int i, pay_row *w)
{
    ons_pg_row rw = ons_pg_row_at(r, i);
    memset(w, 0, sizeof *w);
    w->id = ons_pg_row_i64(&rw, C_ID);
    w->is_refund = strcmp(ons_pg_row_str(&rw, C_KIND, 0), "refund") == 0;
    w->order_id = ons_pg_row_i64(&rw, C_ORDER);
    w->reservation_id = ons_pg_row_i64(&rw, C_RESERVATION);
    w->event_id = ons_pg_row_i64(&rw, C_EVENT);
    w->ticket_id = ons_pg_row_i64(&rw, C_TICKET);
    w->amount = ons_pg_row_i64(&rw, C_AMOUNT);
    cut_text(&rw, C_CURRENCY, w->currency, sizeof w->currency);
    cut_text(&rw, C_PM, w->pm, sizeof w->pm);
    cut_text(&rw, C_CHARGE, w->charge, sizeof w->charge);
    cut_text(&rw, C_KEY, w->key, sizeof w->key);
    w->attempts = ons_pg_row_i64(&rw, C_ATTEMPTS);
    w->user_id = ons_pg_row_i64(&rw, C_USER);
    return ons_pg_row_done(&rw, "outbox claim") ? ONS_EDB : 0;
}

/* Consumes every notification libpq holds; 1 when there was one. */
static int take_notifies(PGconn *c)
{
    int got = 0;
    PGnotify *nf;
    while ((nf = PQnotifies(c)) != NULL) {
        got = 1;
        PQfreemem(nf);
    }
    return got;
}

int pay_outbox_claim(ons_pg *pg, int64_t lease_ms, pay_row *rows, int max, int *n)
{
    char lease[24], lim[24];
    snprintf(lease, sizeof lease, "%" PRId64, lease_ms);
    snprintf(lim, sizeof lim, "%d", max);
    const char *v[] = {lease, lim};
    PGresult *r;
    *n = 0;
    /* The due rows' ids as an array, then the rows by their primary key:
     * as "outbox_id IN (SELECT ...)" the planner hashed the ids and read
     * the whole outbox, every row ever written, on every claim
     * (bench/NOTES.md "The control lane's foreign keys"). */
    int rc = ons_pg_query(
        pg, PGRES_TUPLES_OK, "outbox claim",
        "UPDATE outbox o SET lease_until = now() + make_interval(secs => $1::bigint / 1000.0), "
        "attempts = o.attempts + 1 WHERE o.outbox_id = ANY(ARRAY(SELECT outbox_id FROM outbox "
        "WHERE state = 'pending' AND next_attempt_at <= now() "
        "AND (lease_until IS NULL OR lease_until < now()) "
        "ORDER BY next_attempt_at, outbox_id LIMIT $2 FOR UPDATE SKIP LOCKED)) "
        "RETURNING outbox_id, kind, order_id, reservation_id, event_id, coalesce(ticket_id, 0), "
        "amount_cents, currency, coalesce(payment_method, ''), coalesce(charge_id, ''), "
        "idempotency_key, attempts, "
        "coalesce((SELECT user_id FROM orders WHERE order_id = o.order_id), 0)",
        2, v, &r);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        if (read_row(r, i, &rows[*n]) == 0)
            (*n)++;
    /* A claim that found rows is followed by another claim, not a wait:
     * the notifications libpq collected meanwhile are answered by it, and
     * a busy thread's list does not grow for the whole sale. */
    if (*n > 0 && pg->conn)
        take_notifies(pg->conn);
    PQclear(r);
    return 0;
}

int pay_outbox_reschedule(ons_pg *pg, const pay_row *w, int64_t delay_ms, const char *why)
{
    char id[24], d[24];
    snprintf(id, sizeof id, "%" PRId64, w->id);
    snprintf(d, sizeof d, "%" PRId64, delay_ms);
    const char *v[] = {id, d, why};
    return ons_pg_query(pg, PGRES_COMMAND_OK, "outbox reschedule",
                        "UPDATE outbox SET lease_until = NULL, last_error = $3, "
                        "next_attempt_at = now() + make_interval(secs => $2::bigint / 1000.0) "
                        "WHERE outbox_id = $1 AND state = 'pending'",
                        3, v, NULL);
}

static const char *const payment_state[] = {"succeeded", "declined", "failed"};

/* Records one row's payment and marks it done on c. 0, ONS_EINVAL or ONS_EDB. */
static int finish_one(PGconn *c, const pay_row *w, const pay_answer *ans)
{
    if (ans->cls < PAY_SUCCEEDED || ans->cls > PAY_FAILED)
        return ONS_EINVAL;
    char id[24], oid[24], amt[24], att[24];
    snprintf(id, sizeof id, "%" PRId64, w->id);
    snprintf(oid, sizeof oid, "%" PRId64, w->order_id);
    snprintf(amt, sizeof amt, "%" PRId64, ans->amount > 0 ? ans->amount : w->amount);
    snprintf(att, sizeof att, "%" PRId64, w->attempts);
    const char *v[] = {oid,
                       w->is_refund ? "refund" : "charge",
                       payment_state[ans->cls],
                       amt,
                       w->currency,
                       ans->charge[0] ? ans->charge : NULL,
                       att,
                       id,
                       ans->why[0] ? ans->why : NULL};
    return ons_pg_exec(c, PGRES_COMMAND_OK, "outbox finish",
                       "WITH p AS (INSERT INTO payments (order_id, kind, state, amount_cents, "
                       "currency, gateway_ref, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                       "ON CONFLICT DO NOTHING) "
                       "UPDATE outbox SET state = 'done', outcome = $3, done_at = now(), "
                       "lease_until = NULL, last_error = $9 WHERE outbox_id = $8",
                       9, v, NULL);
}

#define FINISH_NCOLS 9

/* The n rows' payments and done marks as one statement on c, the rows as
 * arrays (what finish_one writes for one row, unnest()ed): one parse, one
 * plan, one round trip and one commit for the batch, not one of each per
 * row. A payment recorded before (or twice in the batch: a repeated
 * answer) is left alone, as finish_one's ON CONFLICT does. 0, ONS_ENOMEM
 * or ONS_EDB. */
static int finish_many(PGconn *c, const pay_done *done, size_t n)
{
    ons_pgarr a[FINISH_NCOLS];
    const char *v[FINISH_NCOLS];
    memset(a, 0, sizeof a);
    for (size_t i = 0; i < n; i++) {
        const pay_row *w = done[i].row;
        const pay_answer *ans = done[i].ans;
        ons_pgarr_int(&a[0], w->id);
        ons_pgarr_int(&a[1], w->order_id);
        ons_pgarr_text(&a[2], w->is_refund ? "refund" : "charge");
        ons_pgarr_text(&a[3], payment_state[ans->cls]);
        ons_pgarr_int(&a[4], ans->amount > 0 ? ans->amount : w->amount);
        ons_pgarr_text(&a[5], w->currency);
        ons_pgarr_text0(&a[6], ans->charge);
        ons_pgarr_int(&a[7], w->attempts);
        ons_pgarr_text0(&a[8], ans->why);
    }
    int rc = ons_pgarrs_params(a, FINISH_NCOLS, v);
    if (rc == 0)
        rc = ons_pg_command(
            c, "outbox finish",
            "WITH d AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], "
            "$5::bigint[], $6::text[], $7::text[], $8::int[], $9::text[]) "
            "AS d(id, oid, kind, st, amt, cur, ch, att, why)), "
            "p AS (INSERT INTO payments (order_id, kind, state, amount_cents, currency, "
            "gateway_ref, attempts) SELECT oid, kind, st, amt, cur, ch, att FROM d "
            "ON CONFLICT DO NOTHING) "
            "UPDATE outbox o SET state = 'done', outcome = d.st, done_at = now(), "
            "lease_until = NULL, last_error = d.why FROM d WHERE o.outbox_id = d.id",
            FINISH_NCOLS, v);
    ons_pgarrs_fini(a, FINISH_NCOLS);
    return rc;
}

int pay_outbox_finish(ons_pg *pg, const pay_done *done, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (done[i].ans->cls < PAY_SUCCEEDED || done[i].ans->cls > PAY_FAILED)
            return ONS_EINVAL;
    if (n == 0)
        return 0;
    PGconn *c = ons_pg_conn(pg);
    if (!c)
        return ONS_EUNAVAIL;
    int rc = n > 1 ? finish_many(c, done, n) : finish_one(c, done[0].row, done[0].ans);
    if (rc && n > 1 && PQstatus(c) == CONNECTION_OK) {
        /* One row's values took the batch with it: the rows go alone, so
         * a row that cannot be finished holds back only itself. */
        rc = 0;
        for (size_t i = 0; i < n; i++) {
            int one = finish_one(c, done[i].row, done[i].ans);
            rc = rc ? rc : one;
        }
    }
    if (rc)
        ons_pg_check(pg);
    return rc;
}

/* ---- the writers' notification (migration 0015) ------------------------------------- */

int pay_outbox_listen(ons_pg *pg, pay_listen *l)
{
    if (pg->conn && l->session == pg->connects)
        return 0;
    l->session = 0;
    int rc = ons_pg_query(pg, PGRES_COMMAND_OK, "outbox listen", "LISTEN " PAY_OUTBOX_CHANNEL, 0,
                          NULL, NULL);
    if (rc)
        return rc;
    l->session = pg->connects;
    return 1;
}

int pay_outbox_wait(ons_pg *pg, int wait_ms)
{
    PGconn *c = pg->conn;
    if (!c)
        return ONS_EUNAVAIL;
    if (take_notifies(c))
        return 1;
    struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
    int r = poll(&p, 1, wait_ms);
    if (r < 0)
        return errno == EINTR ? 0 : ONS_EIO;
    if (r == 0)
        return 0;
    if (!PQconsumeInput(c)) {
        ons_pg_check(pg);
        return ONS_EIO;
    }
    return take_notifies(c);
}
