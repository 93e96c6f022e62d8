/*
 * audit.c - the invariant audit (see audit.h for the list).
 *
 * Every check is a query (or a walk over query rows) that counts what it
 * examined and what broke the rule; one adm_check row each. The exact rules:
 *
 * seats_live: a seat whose status is not 'available' must name a reservation
 *   of the same event whose state matches: held -> 'held', paying ->
 *   'paying', sold -> 'purchased'. A seat pointing at an ended or foreign
 *   reservation is a seat held twice (or held by nobody).
 * seats_count: a 'held' or 'paying' reservation is pointed at by exactly
 *   seat_count seat rows; a 'purchased' one by at most seat_count (a cancelled
 *   ticket gives its seat back). Two live reservations sharing a seat make
 *   one of them short.
 * tickets_unique: no (event, seat) has two 'valid' tickets, and every valid
 *   ticket is on a 'sold' seat.
 * capacity: per event, seats sold <= seats_total, seats not available <=
 *   seats_total, valid tickets <= seats_total, and exactly seats_total seat
 *   rows.
 * intents_consistent: a processed intent in state reserved/paying/purchased/
 *   expired has a reservation in the same state; released has none or a
 *   released one; queued/waiting/rejected have none.
 * kafka_applied: for each partition of the intents topic and of the control
 *   topic (docs/pipeline.md "Two lanes"), partition_owner.next_offset and
 *   control_next_offset reach the topic's high watermark within wait_s (a
 *   backlog still draining is reported with its size). Skipped without
 *   brokers.
 * accepted_reached (sim log): every intent id the simulator logged (it got a
 *   202) has an intents row, and its state there is reachable from the last
 *   state the fan saw (queued -> anything; waiting -> not queued; reserved ->
 *   reserved/paying/purchased/expired/released; paying -> paying/purchased/
 *   released/expired; ended states -> the same). A missing row below the
 *   partition's next_offset is a lost intent; at or above it, unapplied.
 * positions (sim log): along each intent's lines, in file order, the
 *   reported position never increases.
 * fifo: within each event, intents are grouped by request class (quantity,
 *   section, max_price_cents, adjacent) and walked in intent_seq (= offset)
 *   order. Grant time is reservations.created_at; a release is a reservation
 *   that ended 'released' or 'expired' (at its updated_at) or a refunded
 *   order. Violations:
 *     (a) an intent is granted strictly before an earlier intent of its class;
 *     (b) an intent is granted while an earlier intent of its class is still
 *         queued or waiting;
 *     (c) an intent is granted at or before the time an earlier intent of
 *         its class was rejected insufficient_seats or sold_out;
 *     (d) for consecutive live grants P < B of a class with no release in
 *         [P's grant, B's grant] (seats only ever got taken in between):
 *         adjacent requests: B's best section position >= P's (the
 *         allocator takes the first section that fits; orphan avoidance
 *         only moves within a section, so no finer seat order is promised);
 *         non-adjacent requests: B's lowest seat_no > P's highest (both take
 *         the best free seats).
 * charges: per order (of the event's reservations), at most one succeeded
 *   charge, and succeeded charges = price of its valid tickets (order_items)
 *   + succeeded refunds. With no orders the check runs and reports 0.
 */
#include "admin/audit.h"
#include "common/hex.h"
#include "queue/draw.h"
#include "queue/intent_id.h"
#include "queue/msg.h"
#include "queue/states.h"
#include "common/err.h"
#include "common/pg.h"

#include <ctype.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK_IDS      10000 /* intent ids per ANY($1) query */
#define MAX_PARTITIONS 4096
#define KAFKA_TIMEOUT  5000 /* ms per metadata / watermark call */
#define LINE_MAX_LEN   512

typedef struct audit {
    const adm_audit_opts *o;
    adm_audit_result *res;
    FILE *out;
    ons_pg pg;
    char event_buf[24];
    const char *event_param; /* NULL: every event */
} audit;

/* ---- result rows ----------------------------------------------------------- */

static void add_check(audit *a, const char *name, enum adm_check_status st, long long checked,
                      long long violations, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void add_check(audit *a, const char *name, enum adm_check_status st, long long checked,
                      long long violations, const char *fmt, ...)
{
    static const char *label[] = {"ok", "FAIL", "skip"};
    if (a->res->nchecks >= ADM_AUDIT_MAX_CHECKS)
        return;
    adm_check *c = &a->res->checks[a->res->nchecks++];
    va_list ap;
    if (st == ADM_CHECK_OK && violations > 0)
        st = ADM_CHECK_FAIL;
    c->name = name;
    c->status = st;
    c->checked = checked;
    c->violations = violations;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
    a->res->violations += violations;
    if (a->out)
        fprintf(a->out, "  %-4s  %-19s %10lld checked %8lld violations  %s\n", label[st], name,
                checked, violations, c->detail);
}

/* ---- PostgreSQL helpers ---------------------------------------------------- */

/* Runs sql with text params; returns a TUPLES_OK result the caller PQclears,
 * or NULL after logging the error (common/pg). */
static PGresult *query(audit *a, const char *sql, int n, const char *const *params)
{
    PGresult *r;
    return ons_pg_exec(a->pg.conn, PGRES_TUPLES_OK, "audit", sql, n, params, &r) ? NULL : r;
}

/* The integer at (row, col), 0 for SQL NULL. A field that is not an integer
 * is reported on stderr and read as 0. */
static long long ll_at(const PGresult *r, int row, int col)
{
    int64_t v = 0;
    int rc = ons_pg_get_i64_or(r, row, col, 0, &v);
    if (rc)
        fprintf(stderr, "audit: row %d column %d: %s\n", row, col, ons_strerror(rc));
    return rc ? 0 : (long long)v;
}

/* Runs a query that answers one row of (checked, violations, detail text)
 * and records it as check name. */
static int count_check(audit *a, const char *name, const char *sql, const char *what)
{
    const char *params[1] = {a->event_param};
    PGresult *r = query(a, sql, 1, params);
    if (!r)
        return ONS_EDB;
    long long checked = ll_at(r, 0, 0), bad = ll_at(r, 0, 1);
    const char *sample = PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2);
    add_check(a, name, ADM_CHECK_OK, checked, bad, "%s%s%s", what, *sample ? "; e.g. " : "",
              sample);
    PQclear(r);
    return 0;
}

/* ---- seats, tickets, capacity ---------------------------------------------- */

/* A check answered by one count_check query. */
typedef struct count_query {
    const char *name, *sql, *what;
} count_query;

/* Seats, tickets and capacity: every taken seat names a live reservation
 * in the matching state, each live reservation holds its seat count, one
 * valid ticket per sold seat, and no event sells past its capacity. */
static const count_query seat_checks[] = {
    {"seats_live",
     "SELECT count(*), count(*) FILTER (WHERE bad), "
     "  array_to_string((array_agg('event ' || event_id || ' seat ' || seat_no) FILTER (WHERE "
     "bad))[1:3], ', ') "
     "FROM (SELECT s.event_id, s.seat_no, "
     "        (r.reservation_id IS NULL OR r.event_id <> s.event_id OR NOT "
     "         ((s.status = 'held' AND r.state = 'held') OR "
     "          (s.status = 'paying' AND r.state = 'paying') OR "
     "          (s.status = 'sold' AND r.state = 'purchased'))) AS bad "
     "      FROM seats s LEFT JOIN reservations r ON r.reservation_id = s.reservation_id "
     "      WHERE s.status <> 'available' AND ($1::bigint IS NULL OR s.event_id = $1) "
     "      ) x",
     "taken seats naming a live reservation in the matching state"},
    {"seats_count",
     "SELECT count(*), count(*) FILTER (WHERE bad), "
     "  (array_to_string((array_agg('reservation ' || reservation_id || ' holds ' || n || "
     "   '/' || seat_count) FILTER (WHERE bad))[1:3], ', '))  "
     "FROM (SELECT r.reservation_id, r.seat_count, coalesce(c.n, 0) AS n, "
     "        CASE WHEN r.state = 'purchased' THEN coalesce(c.n, 0) > r.seat_count "
     "             ELSE coalesce(c.n, 0) <> r.seat_count END AS bad "
     "      FROM reservations r LEFT JOIN "
     "        (SELECT reservation_id, count(*) AS n FROM seats "
     "         WHERE reservation_id IS NOT NULL AND ($1::bigint IS NULL OR event_id = $1) "
     "         GROUP BY reservation_id) c ON c.reservation_id = r.reservation_id "
     "      WHERE r.state IN ('held', 'paying', 'purchased') "
     "        AND ($1::bigint IS NULL OR r.event_id = $1)) x",
     "live reservations holding exactly seat_count seats"},
    {"tickets_unique",
     "SELECT (SELECT count(*) FROM tickets WHERE status = 'valid' "
     "        AND ($1::bigint IS NULL OR event_id = $1)), "
     "  (SELECT count(*) FROM (SELECT 1 FROM tickets WHERE status = 'valid' "
     "     AND ($1::bigint IS NULL OR event_id = $1) "
     "     GROUP BY event_id, seat_no HAVING count(*) > 1) d) + "
     "  (SELECT count(*) FROM tickets t JOIN seats s USING (event_id, seat_no) "
     "     WHERE t.status = 'valid' AND s.status <> 'sold' "
     "     AND ($1::bigint IS NULL OR t.event_id = $1)), "
     "  NULL",
     "valid tickets, one per sold seat"},
    {"capacity",
     "SELECT count(*), count(*) FILTER (WHERE bad), "
     "  array_to_string((array_agg('event ' || event_id || ': ' || rows || ' rows, ' || "
     "    sold || ' sold, ' || taken || ' taken, ' || tickets || ' tickets of ' || "
     "    seats_total) FILTER (WHERE bad))[1:3], '; ') "
     "FROM (SELECT e.event_id, e.seats_total, coalesce(s.rows, 0) AS rows, "
     "        coalesce(s.sold, 0) AS sold, coalesce(s.taken, 0) AS taken, "
     "        coalesce(t.n, 0) AS tickets, "
     "        (coalesce(s.rows, 0) <> e.seats_total OR coalesce(s.sold, 0) > e.seats_total OR "
     "         coalesce(s.taken, 0) > e.seats_total OR coalesce(t.n, 0) > e.seats_total) AS bad "
     "      FROM events e "
     "      LEFT JOIN (SELECT event_id, count(*) AS rows, "
     "                   count(*) FILTER (WHERE status = 'sold') AS sold, "
     "                   count(*) FILTER (WHERE status <> 'available') AS taken "
     "                 FROM seats GROUP BY event_id) s ON s.event_id = e.event_id "
     "      LEFT JOIN (SELECT event_id, count(*) AS n FROM tickets WHERE status = 'valid' "
     "                 GROUP BY event_id) t ON t.event_id = e.event_id "
     "      WHERE $1::bigint IS NULL OR e.event_id = $1) x",
     "events with sold <= capacity"},
};

static int check_seats(audit *a)
{
    for (size_t i = 0; i < sizeof seat_checks / sizeof seat_checks[0]; i++) {
        const count_query *q = &seat_checks[i];
        int rc = count_check(a, q->name, q->sql, q->what);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_intents(audit *a)
{
    return count_check(
        a, "intents_consistent",
        "SELECT count(*), count(*) FILTER (WHERE bad), "
        "  array_to_string((array_agg('intent ' || intent_seq || ' ' || istate || '/' || "
        "    coalesce(rstate, 'none')) FILTER (WHERE bad))[1:3], ', ') "
        "FROM (SELECT i.intent_seq, i.state AS istate, r.state AS rstate, "
        "        NOT CASE i.state "
        "          WHEN 'reserved' THEN r.state IS NOT DISTINCT FROM 'held' "
        "          WHEN 'paying' THEN r.state IS NOT DISTINCT FROM 'paying' "
        "          WHEN 'purchased' THEN r.state IS NOT DISTINCT FROM 'purchased' "
        "          WHEN 'expired' THEN r.state IS NOT DISTINCT FROM 'expired' "
        "          WHEN 'released' THEN r.state IS NULL OR r.state = 'released' "
        "          ELSE r.state IS NULL END AS bad "
        "      FROM intents i LEFT JOIN reservations r ON r.reservation_id = i.intent_seq "
        "      WHERE $1::bigint IS NULL OR i.event_id = $1) x",
        "processed intents agreeing with their reservation");
}

static int check_charges(audit *a)
{
    const char *params[1] = {a->event_param};
    PGresult *r = query(
        a,
        "SELECT count(*), count(*) FILTER (WHERE bad), "
        "  array_to_string((array_agg('order ' || order_id || ': charged ' || charged || "
        "    ' (' || ncharges || 'x), tickets ' || ticketed || ', refunds ' || refunded) FILTER "
        "(WHERE bad))[1:3], '; '), "
        "  coalesce(sum(charged), 0), coalesce(sum(ticketed), 0), coalesce(sum(refunded), 0) "
        "FROM (SELECT o.order_id, c.charged, c.ncharges, c.refunded, "
        "        coalesce(t.ticketed, 0) AS ticketed, "
        "        (c.ncharges > 1 OR c.charged <> coalesce(t.ticketed, 0) + c.refunded) AS bad "
        "      FROM orders o JOIN reservations r ON r.reservation_id = o.reservation_id "
        "      CROSS JOIN LATERAL (SELECT "
        "          coalesce(sum(amount_cents) FILTER (WHERE kind = 'charge' "
        "                                              AND state = 'succeeded'), 0) AS charged, "
        "          count(*) FILTER (WHERE kind = 'charge' AND state = 'succeeded') AS ncharges, "
        "          coalesce(sum(amount_cents) FILTER (WHERE kind = 'refund' "
        "                                              AND state = 'succeeded'), 0) AS refunded "
        "          FROM payments p WHERE p.order_id = o.order_id) c "
        "      LEFT JOIN (SELECT t.order_id, sum(oi.price_cents) AS ticketed FROM tickets t "
        "                 JOIN order_items oi ON oi.order_id = t.order_id "
        "                   AND oi.event_id = t.event_id AND oi.seat_no = t.seat_no "
        "                 WHERE t.status = 'valid' GROUP BY t.order_id) t "
        "        ON t.order_id = o.order_id "
        "      WHERE $1::bigint IS NULL OR r.event_id = $1) x",
        1, params);
    if (!r)
        return ONS_EDB;
    long long n = ll_at(r, 0, 0), bad = ll_at(r, 0, 1);
    const char *sample = PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2);
    if (n == 0)
        add_check(a, "charges", ADM_CHECK_OK, 0, 0,
                  "0 orders (checkout not used): nothing charged, nothing to match");
    else
        add_check(a, "charges", ADM_CHECK_OK, n, bad,
                  "orders where charges = tickets + refunds (charged %lld = tickets %lld + "
                  "refunds %lld cents)%s%s",
                  ll_at(r, 0, 3), ll_at(r, 0, 4), ll_at(r, 0, 5), *sample ? "; e.g. " : "", sample);
    PQclear(r);
    return 0;
}

/* ---- FIFO ------------------------------------------------------------------ */

typedef struct release_list {
    int64_t *event; /* sorted by (event, t) */
    int64_t *t;
    size_t n;
} release_list;

static void release_list_fini(release_list *l)
{
    free(l->event);
    free(l->t);
}

static int load_releases(audit *a, release_list *l)
{
    const char *params[1] = {a->event_param};
    PGresult *r =
        query(a,
              "SELECT event_id, t FROM ("
              "  SELECT event_id, (extract(epoch FROM updated_at) * 1000000)::bigint AS t "
              "  FROM reservations WHERE state IN ('released', 'expired') "
              "  UNION ALL "
              "  SELECT r.event_id, (extract(epoch FROM o.updated_at) * 1000000)::bigint "
              "  FROM orders o JOIN reservations r ON r.reservation_id = o.reservation_id "
              "  WHERE o.state = 'refunded') x "
              "WHERE $1::bigint IS NULL OR event_id = $1 ORDER BY event_id, t",
              1, params);
    if (!r)
        return ONS_EDB;
    size_t n = (size_t)PQntuples(r);
    int rc = 0;
    l->event = malloc((n ? n : 1) * sizeof *l->event);
    l->t = malloc((n ? n : 1) * sizeof *l->t);
    if (!l->event || !l->t) {
        rc = ONS_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        l->event[i] = ll_at(r, (int)i, 0);
        l->t[i] = ll_at(r, (int)i, 1);
    }
    l->n = n;
done:
    PQclear(r);
    return rc;
}

/* Whether some release of event happened at a time in [from, to]. */
static int released_between(const release_list *l, int64_t event, int64_t from, int64_t to)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) { /* first index with (event, t) >= (event, from) */
        size_t mid = lo + (hi - lo) / 2;
        if (l->event[mid] < event || (l->event[mid] == event && l->t[mid] < from))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->event[lo] == event && l->t[lo] <= to;
}

/* Columns of the FIFO query. */
enum {
    F_EVENT,
    F_QTY,
    F_SECTION,
    F_PRICE,
    F_ADJ,
    F_SEQ,
    F_KIND,
    F_T,
    F_LIVE,
    F_MINSEAT,
    F_MAXSEAT,
    F_MINPOS,
    F_PRE,  /* 1: pre-queued (joined before onsale_at of an event with a pre-queue) */
    F_SEED, /* the event's draw seed, hex ("" none) */
    F_USER
};

/* The serving order of one FIFO row: a pre-queued intent by its draw key
 * (queue/draw.h; ahead of every other), the rest by seq. */
typedef struct fifo_row {
    int row;
    char key[Q_DRAW_HEX_LEN + 2];
} fifo_row;

static const PGresult *fifo_rows; /* for the comparator (one audit at a time) */

static int fifo_cmp(const void *a, const void *b)
{
    const fifo_row *x = a, *y = b;
    for (int c = F_EVENT; c <= F_ADJ; c++) {
        int d = strcmp(PQgetvalue(fifo_rows, x->row, c), PQgetvalue(fifo_rows, y->row, c));
        if (d)
            return d; /* the query sorted classes; keep that order */
    }
    int d = strcmp(x->key, y->key);
    return d ? d : x->row - y->row;
}

/* Orders the rows of each class for the FIFO check. Returns the order
 * (caller frees) or NULL; *undrawn counts pre-queued rows that could not
 * be keyed (no ids.secret or no seed): they keep their seq order. */
static fifo_row *fifo_order(const audit *a, const PGresult *r, long long *undrawn)
{
    int n = PQntuples(r);
    fifo_row *o = malloc(((size_t)n + 1) * sizeof *o);
    if (!o)
        return NULL;
    *undrawn = 0;
    for (int i = 0; i < n; i++) {
        o[i].row = i;
        uint8_t seed[Q_DRAW_SEED_LEN];
        char id[Q_ID_LEN + 1];
        int64_t seq = ll_at(r, i, F_SEQ);
        if (ll_at(r, i, F_PRE)) {
            if (a->o->ids_secret && q_draw_seed_parse(PQgetvalue(r, i, F_SEED), seed) == 0 &&
                q_id_encode(a->o->ids_secret, Q_ID_INTENT, seq, ll_at(r, i, F_USER), id) == 0 &&
                q_draw_key(seed, id, o[i].key + 1) == 0) {
                o[i].key[0] = '0';
                continue;
            }
            (*undrawn)++;
        }
        snprintf(o[i].key, sizeof o[i].key, "1%016llx", (unsigned long long)seq);
    }
    fifo_rows = r;
    qsort(o, (size_t)n, sizeof *o, fifo_cmp);
    return o;
}

typedef struct grant {
    int have;
    int64_t seq, t, minseat, maxseat, minpos;
} grant;

static int same_class(const PGresult *r, int i, int j)
{
    for (int c = F_EVENT; c <= F_ADJ; c++)
        if (strcmp(PQgetvalue(r, i, c), PQgetvalue(r, j, c)) != 0)
            return 0;
    return 1;
}

/* The rows the FIFO check walks: every intent of the audited events with
 * its request class (F_EVENT..F_ADJ), outcome kind, decision time, the
 * seats it was granted and whether it was pre-queued; NULL on error. */
static PGresult *fifo_query(audit *a)
{
    const char *params[1] = {a->event_param};
    return query(
        a,
        "SELECT i.event_id, i.quantity, coalesce(i.section, ''), "
        "  coalesce(i.max_price_cents, 0), i.adjacent::int, i.intent_seq, "
        "  CASE WHEN r.reservation_id IS NOT NULL THEN 'g' "
        "       WHEN i.state IN ('queued', 'waiting') THEN 'w' "
        "       WHEN i.state = 'rejected' AND i.reason IN ('insufficient_seats', "
        "            'sold_out') THEN 'r' ELSE 'o' END, "
        "  (extract(epoch FROM coalesce(r.created_at, i.updated_at)) * 1000000)::bigint, "
        "  (r.state IN ('held', 'paying', 'purchased'))::int, "
        "  min(s.seat_no), max(s.seat_no), min(sec.position), "
        "  (e.prequeue_opens_at IS NOT NULL AND i.accepted_at >= e.prequeue_opens_at "
        "   AND i.accepted_at < e.onsale_at)::int, coalesce(encode(e.draw_seed, 'hex'), ''), "
        "  i.user_id "
        "FROM intents i JOIN events e ON e.event_id = i.event_id "
        "LEFT JOIN reservations r ON r.reservation_id = i.intent_seq "
        "LEFT JOIN seats s ON s.event_id = r.event_id AND s.reservation_id = r.reservation_id "
        "LEFT JOIN sections sec ON sec.section_id = s.section_id "
        "WHERE $1::bigint IS NULL OR i.event_id = $1 "
        "GROUP BY i.intent_seq, r.reservation_id, e.event_id "
        "ORDER BY 1, 2, 3, 4, 5, 6",
        1, params);
}

/* The FIFO check's walk: totals over all classes, and the state of the
 * class being walked (reset by fifo_new_class). */
typedef struct fifo_walk {
    long long grants, bad_order, bad_wait, bad_reject, bad_seat;
    char sample[160];
    grant prev_live;
    int waiting_before;
    int64_t max_reject_t, max_grant_t;
} fifo_walk;

static void fifo_new_class(fifo_walk *w)
{
    memset(&w->prev_live, 0, sizeof w->prev_live);
    w->waiting_before = 0;
    w->max_reject_t = w->max_grant_t = INT64_MIN;
}

static long long fifo_bad(const fifo_walk *w)
{
    return w->bad_order + w->bad_wait + w->bad_reject + w->bad_seat;
}

/* A grant at time t: (a) in order of the grants before it, (b) past no
 * waiting earlier intent, (c) after no earlier rejection, (d) with seats
 * no better than the earlier live grant's unless seats were released in
 * between. */
static void fifo_grant(fifo_walk *w, const PGresult *r, int i, int64_t seq, int64_t t,
                       const release_list *rel)
{
    w->grants++;
    if (t < w->max_grant_t)
        w->bad_order++; /* (a) */
    if (w->waiting_before)
        w->bad_wait++; /* (b) */
    if (t <= w->max_reject_t)
        w->bad_reject++; /* (c) */
    if (t > w->max_grant_t)
        w->max_grant_t = t;
    grant g = {1, seq, t, ll_at(r, i, F_MINSEAT), ll_at(r, i, F_MAXSEAT), ll_at(r, i, F_MINPOS)};
    if (!ll_at(r, i, F_LIVE) || PQgetisnull(r, i, F_MINSEAT))
        return;
    int64_t event = ll_at(r, i, F_EVENT);
    if (w->prev_live.have && !released_between(rel, event, w->prev_live.t, t)) {
        int adjacent = ll_at(r, i, F_ADJ) != 0;
        if (adjacent ? g.minpos < w->prev_live.minpos : g.minseat <= w->prev_live.maxseat)
            w->bad_seat++; /* (d) */
    }
    w->prev_live = g;
}

/* Visits row i (in serving order) of its class. */
static void fifo_visit(fifo_walk *w, const PGresult *r, int i, const release_list *rel)
{
    char kind = PQgetvalue(r, i, F_KIND)[0];
    int64_t seq = ll_at(r, i, F_SEQ), t = ll_at(r, i, F_T);
    long long before = fifo_bad(w);
    if (kind == 'w') {
        w->waiting_before = 1;
    } else if (kind == 'r') {
        if (t > w->max_reject_t)
            w->max_reject_t = t;
    } else if (kind == 'g') {
        fifo_grant(w, r, i, seq, t, rel);
    }
    if (fifo_bad(w) > before && !w->sample[0])
        snprintf(w->sample, sizeof w->sample, "; first at intent %" PRId64 " (event %s, qty %s)",
                 seq, PQgetvalue(r, i, F_EVENT), PQgetvalue(r, i, F_QTY));
}

static int check_fifo(audit *a)
{
    release_list rel = {0};
    PGresult *r = NULL;
    fifo_row *ord = NULL;
    long long undrawn = 0;
    fifo_walk w = {0};
    int rc = load_releases(a, &rel);
    if (rc)
        goto done;
    rc = ONS_EDB;
    if (!(r = fifo_query(a)))
        goto done;
    rc = ONS_ENOMEM;
    if (!(ord = fifo_order(a, r, &undrawn)))
        goto done;
    rc = 0;
    for (int k = 0; k < PQntuples(r); k++) {
        if (k == 0 || !same_class(r, ord[k].row, ord[k - 1].row))
            fifo_new_class(&w);
        fifo_visit(&w, r, ord[k].row, &rel);
    }
    add_check(a, "fifo", ADM_CHECK_OK, w.grants, fifo_bad(&w) + undrawn,
              "grants in draw order, then offset order, per request class: %lld out of order, "
              "%lld past a waiting earlier, %lld after an earlier rejection, %lld with better "
              "seats than an earlier; %lld pre-queued not keyed (ids.secret)%s",
              w.bad_order, w.bad_wait, w.bad_reject, w.bad_seat, undrawn, w.sample);
done:
    free(ord);
    PQclear(r);
    release_list_fini(&rel);
    return rc;
}

/* ---- Kafka ------------------------------------------------------------------ */

typedef struct offsets {
    int32_t partition[MAX_PARTITIONS];
    int64_t next[MAX_PARTITIONS][2]; /* [lane]: intents, control */
    int n;
} offsets;

static int load_offsets(audit *a, offsets *off)
{
    PGresult *r = query(a,
                        "SELECT partition, next_offset, control_next_offset FROM partition_owner "
                        "ORDER BY 1",
                        0, NULL);
    if (!r)
        return ONS_EDB;
    off->n = 0;
    for (int i = 0; i < PQntuples(r) && off->n < MAX_PARTITIONS; i++) {
        off->partition[off->n] = (int32_t)ll_at(r, i, 0);
        off->next[off->n][0] = ll_at(r, i, 1);
        off->next[off->n++][1] = ll_at(r, i, 2);
    }
    PQclear(r);
    return 0;
}

/* next_offset (lane 0) or control_next_offset (lane 1) of partition p; 0
 * when it has no row (never claimed). */
static int64_t lane_offset_of(const offsets *off, int32_t p, int lane)
{
    for (int i = 0; i < off->n; i++)
        if (off->partition[i] == p)
            return off->next[i][lane];
    return 0;
}

static int64_t next_offset_of(const offsets *off, int32_t p)
{
    return lane_offset_of(off, p, 0);
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk, (void)level, (void)fac, (void)buf;
}

/* A quiet Kafka client for watermark queries, or NULL after recording
 * kafka_applied as skipped. */
static rd_kafka_t *kafka_client(audit *a)
{
    const adm_audit_opts *o = a->o;
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (q_kconf_security(conf, "audit", &o->kafka_sec)) {
        rd_kafka_conf_destroy(conf);
        add_check(a, "kafka_applied", ADM_CHECK_SKIP, 0, 0,
                  "bad kafka.security_protocol / kafka.ssl_ca_location");
        return NULL;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->kafka_brokers, err, sizeof err) ||
        rd_kafka_conf_set(conf, "socket.timeout.ms", "5000", err, sizeof err)) {
        rd_kafka_conf_destroy(conf);
        add_check(a, "kafka_applied", ADM_CHECK_SKIP, 0, 0, "bad kafka config: %s", err);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err); /* takes conf */
    if (!rk)
        add_check(a, "kafka_applied", ADM_CHECK_SKIP, 0, 0, "kafka client: %s", err);
    return rk;
}

/* How far the partition owners' cursors are from the two lanes' ends. */
typedef struct kafka_lag {
    long long total, backlog, ahead, unreadable;
} kafka_lag;

/* Measures the lag of both lanes' nparts partitions once. */
static int measure_lag(audit *a, rd_kafka_t *rk, const char *const topics[2], int nparts,
                       kafka_lag *lag)
{
    offsets off;
    memset(lag, 0, sizeof *lag);
    int rc = load_offsets(a, &off);
    if (rc)
        return rc;
    for (int lane = 0; lane < 2; lane++)
        for (int p = 0; p < nparts; p++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(rk, topics[lane], p, &lo, &hi, KAFKA_TIMEOUT)) {
                lag->unreadable++;
                continue;
            }
            int64_t next = lane_offset_of(&off, p, lane);
            lag->total += hi;
            if (next < hi)
                lag->backlog += hi - next;
            else if (next > hi)
                lag->ahead++;
        }
    return 0;
}

/* Measures the lag until none is left or wait_s has passed. */
static int wait_applied(audit *a, rd_kafka_t *rk, const char *const topics[2], int nparts,
                        kafka_lag *lag)
{
    time_t deadline = time(NULL) + (a->o->wait_s > 0 ? a->o->wait_s : 0);
    for (;;) {
        int rc = measure_lag(a, rk, topics, nparts, lag);
        if (rc || (lag->backlog == 0 && lag->unreadable == 0) || time(NULL) >= deadline)
            return rc;
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int check_kafka(audit *a)
{
    const adm_audit_opts *o = a->o;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = NULL;
    if (!o->kafka_brokers || !o->kafka_brokers[0] || !o->kafka_topic) {
        add_check(a, "kafka_applied", ADM_CHECK_SKIP, 0, 0, "no kafka.brokers configured");
        return 0;
    }
    rd_kafka_t *rk = kafka_client(a);
    if (!rk)
        return 0;
    int rc = 0;
    rkt = rd_kafka_topic_new(rk, o->kafka_topic, NULL);
    if (!rkt || rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_TIMEOUT) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1 || md->topics[0].err) {
        add_check(a, "kafka_applied", ADM_CHECK_SKIP, 0, 0,
                  "topic %s not readable at %s (not checked)", o->kafka_topic, o->kafka_brokers);
        goto done;
    }
    int nparts = md->topics[0].partition_cnt;
    char ctl_topic[256];
    (void)q_topic_control_name(o->kafka_topic, o->kafka_control_topic, ctl_topic,
                               sizeof ctl_topic); /* a name too long fails the watermark calls */
    const char *topics[2] = {o->kafka_topic, ctl_topic};
    kafka_lag lag;
    if ((rc = wait_applied(a, rk, topics, nparts, &lag)) != 0)
        goto done;
    if (lag.unreadable)
        add_check(a, "kafka_applied", ADM_CHECK_SKIP, lag.total, 0,
                  "%lld of %d partitions' watermarks of %s and %s unreadable (not checked)",
                  lag.unreadable, nparts, o->kafka_topic, ctl_topic);
    else
        add_check(a, "kafka_applied", ADM_CHECK_OK, lag.total, lag.backlog + lag.ahead,
                  "messages in %s and %s applied by their partition owner (%d partitions "
                  "each; %lld unapplied after %ds, %lld partitions ahead of the log)",
                  o->kafka_topic, ctl_topic, nparts, lag.backlog, o->wait_s, lag.ahead);
done:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- the simulator log ------------------------------------------------------ */

/* Whether a fan that last saw state `seen` may find its intent in `now`. */
static int reachable(int seen, int now)
{
    switch (seen) {
    case Q_INTENT_QUEUED:
        return 1;
    case Q_INTENT_WAITING:
        return now != Q_INTENT_QUEUED;
    case Q_INTENT_RESERVED:
        return now == Q_INTENT_RESERVED || now == Q_INTENT_PAYING || now == Q_INTENT_PURCHASED ||
               now == Q_INTENT_EXPIRED || now == Q_INTENT_RELEASED;
    case Q_INTENT_PAYING:
        return now == Q_INTENT_PAYING || now == Q_INTENT_PURCHASED || now == Q_INTENT_EXPIRED ||
               now == Q_INTENT_RELEASED;
    default:
        return now == seen;
    }
}

typedef struct entry {
    int64_t seq; /* -1: empty slot */
    int64_t last_pos;
    int8_t last_state;
    uint8_t increased, found;
} entry;

typedef struct idmap {
    entry *slots;
    size_t cap, n;
} idmap;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static int idmap_grow(idmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1 << 14;
    entry *s = malloc(cap * sizeof *s);
    if (!s)
        return ONS_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        s[i].seq = -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].seq < 0)
            continue;
        size_t j = mix((uint64_t)m->slots[i].seq) & (cap - 1);
        while (s[j].seq >= 0)
            j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

/* Finds seq's entry, inserting an empty one if insert. NULL when absent (or
 * on allocation failure / over the bound: *err says which). */
static entry *idmap_get(idmap *m, int64_t seq, int insert, long long bound, int *err)
{
    if (insert && (m->n + 1) * 2 > m->cap) {
        if ((long long)m->n >= bound) {
            *err = ONS_EFULL;
            return NULL;
        }
        if ((*err = idmap_grow(m)) != 0)
            return NULL;
    }
    if (!m->cap)
        return NULL;
    size_t j = mix((uint64_t)seq) & (m->cap - 1);
    while (m->slots[j].seq >= 0) {
        if (m->slots[j].seq == seq)
            return &m->slots[j];
        j = (j + 1) & (m->cap - 1);
    }
    if (!insert)
        return NULL;
    m->slots[j] = (entry){.seq = seq, .last_pos = -1, .last_state = -1};
    m->n++;
    return &m->slots[j];
}

/* intent_seq from a 32-hex public id; -1 when malformed. */
static int64_t id_seq(const char *id)
{
    uint64_t v = 0;
    for (int i = 0; i < 32; i++)
        if (ons_hex_digit_lower((unsigned char)id[i]) < 0)
            return -1;
    if (id[32] != '\0')
        return -1;
    for (int i = 0; i < 16; i++)
        v = v << 4 | (uint64_t)ons_hex_digit_lower((unsigned char)id[i]);
    return v > INT64_MAX ? -1 : (int64_t)v;
}

/* Reads the sim log into m (positions checked on the way). */
static int read_sim_log(audit *a, idmap *m, long long *lines)
{
    FILE *f = fopen(a->o->sim_log, "r");
    char line[LINE_MAX_LEN];
    long long lineno = 0;
    int rc = 0;
    if (!f) {
        fprintf(stderr, "audit: cannot read sim log %s\n", a->o->sim_log);
        return ONS_EIO;
    }
    while (fgets(line, sizeof line, f)) {
        char fan[32], id[40], tms[32], state[32], pos[32];
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (sscanf(line, "%31s %39s %31s %31s %31s", fan, id, tms, state, pos) != 5) {
            fprintf(stderr, "audit: %s:%lld: expected 5 fields\n", a->o->sim_log, lineno);
            rc = ONS_EPARSE;
            goto done;
        }
        int64_t seq = id_seq(id);
        int st = q_intent_state_parse(state);
        if (seq < 0 || st < 0) {
            fprintf(stderr, "audit: %s:%lld: bad intent id or state\n", a->o->sim_log, lineno);
            rc = ONS_EPARSE;
            goto done;
        }
        entry *e = idmap_get(m, seq, 1, a->o->max_log_intents, &rc);
        if (!e) {
            if (rc == ONS_EFULL)
                fprintf(stderr, "audit: sim log has more than %lld intents\n",
                        a->o->max_log_intents);
            goto done;
        }
        if (strcmp(pos, "-") != 0) {
            int64_t p = strtoll(pos, NULL, 10);
            if (e->last_pos >= 0 && p > e->last_pos)
                e->increased = 1;
            e->last_pos = p;
        }
        e->last_state = (int8_t)st;
        (*lines)++;
    }
    if (ferror(f))
        rc = ONS_EIO;
done:
    fclose(f);
    return rc;
}

/* Looks up every logged intent in PostgreSQL (chunks of CHUNK_IDS). */
static int match_intents(audit *a, idmap *m, long long *unreachable, char *sample, size_t cap)
{
    size_t bufcap = (size_t)CHUNK_IDS * 21 + 4;
    char *buf = malloc(bufcap);
    int rc = 0;
    if (!buf)
        return ONS_ENOMEM;
    size_t i = 0;
    while (i < m->cap) {
        size_t len = 0;
        int count = 0;
        buf[len++] = '{';
        for (; i < m->cap && count < CHUNK_IDS; i++) {
            if (m->slots[i].seq < 0)
                continue;
            len += (size_t)snprintf(buf + len, bufcap - len, "%s%" PRId64, count ? "," : "",
                                    m->slots[i].seq);
            count++;
        }
        buf[len++] = '}';
        buf[len] = '\0';
        if (!count)
            break;
        const char *params[1] = {buf};
        PGresult *r = query(a,
                            "SELECT intent_seq, state FROM intents "
                            "WHERE intent_seq = ANY($1::bigint[])",
                            1, params);
        if (!r) {
            rc = ONS_EDB;
            goto done;
        }
        for (int row = 0; row < PQntuples(r); row++) {
            int dummy = 0;
            entry *e = idmap_get(m, ll_at(r, row, 0), 0, 0, &dummy);
            int st = q_intent_state_parse(PQgetvalue(r, row, 1));
            if (!e)
                continue;
            e->found = 1;
            if (st < 0 || !reachable(e->last_state, st)) {
                (*unreachable)++;
                if (!sample[0])
                    snprintf(sample, cap, "; e.g. intent %" PRId64 " seen %s, now %s", e->seq,
                             q_intent_state_name(e->last_state), PQgetvalue(r, row, 1));
            }
        }
        PQclear(r);
    }
done:
    free(buf);
    return rc;
}

static int check_sim_log(audit *a)
{
    idmap m = {0};
    offsets off;
    long long lines = 0, unreachable = 0, lost = 0, unapplied = 0, increased = 0;
    long long ended = 0;
    char sample[160] = "";
    int rc;

    if (!a->o->sim_log) {
        add_check(a, "accepted_reached", ADM_CHECK_SKIP, 0, 0, "no --sim-log given");
        add_check(a, "positions", ADM_CHECK_SKIP, 0, 0, "no --sim-log given");
        return 0;
    }
    if ((rc = read_sim_log(a, &m, &lines)) != 0)
        goto done;
    if ((rc = match_intents(a, &m, &unreachable, sample, sizeof sample)) != 0)
        goto done;
    if ((rc = load_offsets(a, &off)) != 0)
        goto done;
    for (size_t i = 0; i < m.cap; i++) {
        entry *e = &m.slots[i];
        if (e->seq < 0)
            continue;
        increased += e->increased;
        if (q_intent_state_final(e->last_state))
            ended++;
        if (e->found)
            continue;
        int64_t part = q_seq_partition(e->seq), offset = q_seq_offset(e->seq);
        if (offset < next_offset_of(&off, (int32_t)part))
            lost++;
        else
            unapplied++;
    }
    add_check(a, "accepted_reached", ADM_CHECK_OK, (long long)m.n, lost + unapplied + unreachable,
              "accepted intents in a state reachable from what the fan last saw (%lld ended when "
              "last seen; %lld lost, %lld not yet applied, %lld inconsistent)%s",
              ended, lost, unapplied, unreachable, sample);
    add_check(a, "positions", ADM_CHECK_OK, (long long)m.n, increased,
              "fans whose reported position never increased (%lld log lines)", lines);
done:
    free(m.slots);
    return rc;
}

/* ---- entry points ------------------------------------------------------------ */

int adm_audit_run(const adm_audit_opts *o, FILE *out, adm_audit_result *res)
{
    audit a = {.o = o, .res = res, .out = out};
    int rc = 0;
    memset(res, 0, sizeof *res);
    if (o->event_id > 0) {
        snprintf(a.event_buf, sizeof a.event_buf, "%" PRId64, o->event_id);
        a.event_param = a.event_buf;
    }
    ons_pg_opts po;
    ons_pg_opts_default(&po, o->pg_dsn, "onsale-audit");
    if ((rc = ons_pg_init(&a.pg, &po)) != 0)
        goto done;
    if (ons_pg_connect(&a.pg)) {
        rc = ONS_EDB;
        goto done;
    }
    if (out) {
        if (o->event_id > 0)
            fprintf(out, "audit of event %" PRId64 "%s%s\n", o->event_id,
                    o->sim_log ? ", sim log " : "", o->sim_log ? o->sim_log : "");
        else
            fprintf(out, "audit of every event%s%s\n", o->sim_log ? ", sim log " : "",
                    o->sim_log ? o->sim_log : "");
    }
    if ((rc = check_kafka(&a)) != 0 || (rc = check_seats(&a)) != 0 ||
        (rc = check_intents(&a)) != 0 || (rc = check_sim_log(&a)) != 0 ||
        (rc = check_fifo(&a)) != 0 || (rc = check_charges(&a)) != 0)
        goto done;
    if (out)
        fprintf(out, "audit %s: %d invariants, %lld violations\n",
                res->violations ? "FAILED" : "passed", res->nchecks, res->violations);
done:
    ons_pg_fini(&a.pg);
    return rc;
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

void adm_audit_write_json(const adm_audit_result *res, FILE *out)
{
    static const char *st[] = {"ok", "fail", "skip"};
    fputc('[', out);
    for (int i = 0; i < res->nchecks; i++) {
        const adm_check *c = &res->checks[i];
        fprintf(out,
                "%s{\"name\":\"%s\",\"status\":\"%s\",\"checked\":%lld,\"violations\":%lld,"
                "\"detail\":",
                i ? "," : "", c->name, st[c->status], c->checked, c->violations);
        json_str(out, c->detail);
        fputc('}', out);
    }
    fputc(']', out);
}

/* ---- verify-draw ----------------------------------------------------------------- */

typedef struct vd_entry {
    char key[Q_DRAW_HEX_LEN + 1];
    char id[Q_ID_LEN + 1];
} vd_entry;

static int vd_cmp(const void *a, const void *b)
{
    return strcmp(((const vd_entry *)a)->key, ((const vd_entry *)b)->key);
}

/* Prints whether event ev's published commitment is sha256 of its seed
 * (into seed). 0 with *ok cleared when it does not match; ONS_ENOTFOUND
 * without the event; 1 when it has no seed (reported as FAIL). */
static int verify_commitment(ons_pg *pg, const char *ev, FILE *out, uint8_t *seed, int *ok)
{
    const char *p[] = {ev};
    PGresult *e = NULL;
    if (ons_pg_exec(pg->conn, PGRES_TUPLES_OK, "verify-draw",
                    "SELECT coalesce(draw_commitment, ''), coalesce(encode(draw_seed, 'hex'), ''), "
                    "prequeue_opens_at IS NOT NULL FROM events WHERE event_id = $1",
                    1, p, &e))
        return ONS_EDB;
    int rc = 0;
    char commitment[Q_DRAW_HEX_LEN + 1];
    if (PQntuples(e) == 0) {
        rc = ONS_ENOTFOUND;
    } else if (q_draw_seed_parse(PQgetvalue(e, 0, 1), seed)) {
        fprintf(out, "FAIL  event %s has no draw seed\n", ev);
        rc = 1;
    } else {
        q_draw_commitment(seed, commitment);
        int commit_ok = strcmp(commitment, PQgetvalue(e, 0, 0)) == 0;
        *ok &= commit_ok;
        fprintf(out, "%-4s  commitment %s = sha256(seed %s)\n", commit_ok ? "ok" : "FAIL",
                PQgetvalue(e, 0, 0), PQgetvalue(e, 0, 1));
    }
    PQclear(e);
    return rc;
}

/* Keys event ev's pre-queued intents by the draw (seed) and prints the
 * first of them in draw order. */
static int print_draw(ons_pg *pg, const char *ids_secret, const char *ev, const uint8_t *seed,
                      FILE *out)
{
    const char *p[] = {ev};
    PGresult *rows = NULL;
    if (ons_pg_exec(pg->conn, PGRES_TUPLES_OK, "verify-draw",
                    "SELECT i.intent_seq, i.user_id FROM intents i "
                    "JOIN events e USING (event_id) WHERE i.event_id = $1 "
                    "AND e.prequeue_opens_at IS NOT NULL "
                    "AND i.accepted_at >= e.prequeue_opens_at AND i.accepted_at < e.onsale_at "
                    "AND NOT (i.state = 'rejected' AND i.reason = 'duplicate')",
                    1, p, &rows))
        return ONS_EDB;
    int n = PQntuples(rows), rc = 0;
    vd_entry *v = malloc(((size_t)n + 1) * sizeof *v);
    if (!v)
        rc = ONS_ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        int64_t seq, user;
        if (ons_pg_get_i64(rows, i, 0, &seq) || ons_pg_get_i64(rows, i, 1, &user))
            rc = ONS_EDB;
        else if (q_id_encode(ids_secret, Q_ID_INTENT, seq, user, v[i].id) ||
                 q_draw_key(seed, v[i].id, v[i].key))
            rc = ONS_EINVAL;
    }
    if (rc == 0) {
        qsort(v, (size_t)n, sizeof *v, vd_cmp);
        fprintf(out,
                "ok    draw of %d pre-queued intents, by ascending hex HMAC-SHA256(seed, id):", n);
        for (int i = 0; i < n && i < 5; i++)
            fprintf(out, " %s", v[i].id);
        fprintf(out, "%s\n", n > 5 ? " ..." : "");
    }
    free(v);
    PQclear(rows);
    return rc;
}

int adm_verify_draw(const char *pg_dsn, const char *ids_secret, int64_t event_id, FILE *out,
                    int *passed)
{
    char ev[24];
    snprintf(ev, sizeof ev, "%" PRId64, event_id);
    int rc, ok = 1;
    *passed = 0;
    ons_pg pg;
    ons_pg_opts po;
    ons_pg_opts_default(&po, pg_dsn, "onsale-verify-draw");
    if ((rc = ons_pg_init(&pg, &po)) != 0)
        goto done;
    uint8_t seed[Q_DRAW_SEED_LEN];
    rc = ONS_EDB;
    if (ons_pg_connect(&pg) || (rc = verify_commitment(&pg, ev, out, seed, &ok)) != 0 ||
        (rc = print_draw(&pg, ids_secret, ev, seed, out)) != 0)
        goto done;
    adm_audit_opts ao = {.pg_dsn = pg_dsn, .event_id = event_id, .ids_secret = ids_secret};
    adm_audit_result res;
    if ((rc = adm_audit_run(&ao, out, &res)) != 0)
        goto done;
    ok &= res.violations == 0;
    *passed = ok;
    fprintf(out, "verify-draw %s\n", ok ? "pass" : "fail");
done:
    ons_pg_fini(&pg);
    return rc == 1 ? 0 : rc; /* 1: no seed, reported as a failure */
}
