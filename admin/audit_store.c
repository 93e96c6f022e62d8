/* audit_store.c - the audit's queries; see audit_store.h. The rules they
 * serve are in audit.c's header comment. */
#include "admin/audit_store.h"

#include "common/err.h"
#include "common/log.h"
#include "common/pgarr.h"
#include "queue/states.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the statements ---------------------------------------------------------------- */

static const char *const sql_seats_live =
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
    "      ) x";

static const char *const sql_seats_count =
    "SELECT count(*), count(*) FILTER (WHERE bad), "
    "  (array_to_string((array_agg('reservation ' || reservation_id || ' holds ' || n || "
    "   '/' || seat_count) FILTER (WHERE bad))[1:3], ', '))  "
    "FROM (SELECT r.reservation_id, r.seat_count, coalesce(c.n, 0) AS n, "
    "        CASE WHEN r.state = 'purchased' THEN coalesce(c.n, 0) > r.seat_count "
    "             ELSE coalesce(c.n, 0) <> r.seat_count END "
    "        OR (r.seat_nos IS NOT NULL AND NOT coalesce(c.nos, '{}') <@ r.seat_nos) "
    "        OR (r.seat_nos IS NOT NULL AND r.state <> 'purchased' "
    "            AND cardinality(r.seat_nos) <> r.seat_count) "
    "        OR cardinality(r.seat_nos) > r.seat_count AS bad "
    "      FROM reservations r LEFT JOIN "
    "        (SELECT reservation_id, count(*) AS n, array_agg(seat_no) AS nos FROM seats "
    "         WHERE reservation_id IS NOT NULL AND ($1::bigint IS NULL OR event_id = $1) "
    "         GROUP BY reservation_id) c ON c.reservation_id = r.reservation_id "
    "      WHERE r.state IN ('held', 'paying', 'purchased') "
    "        AND ($1::bigint IS NULL OR r.event_id = $1)) x";

static const char *const sql_tickets_unique =
    "SELECT (SELECT count(*) FROM tickets WHERE status = 'valid' "
    "        AND ($1::bigint IS NULL OR event_id = $1)), "
    "  (SELECT count(*) FROM (SELECT 1 FROM tickets WHERE status = 'valid' "
    "     AND ($1::bigint IS NULL OR event_id = $1) "
    "     GROUP BY event_id, seat_no HAVING count(*) > 1) d) + "
    "  (SELECT count(*) FROM tickets t JOIN seats s USING (event_id, seat_no) "
    "     WHERE t.status = 'valid' AND s.status <> 'sold' "
    "     AND ($1::bigint IS NULL OR t.event_id = $1)), "
    "  NULL";

static const char *const sql_capacity =
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
    "      WHERE $1::bigint IS NULL OR e.event_id = $1) x";

static const char *const sql_intents =
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
    "      WHERE $1::bigint IS NULL OR i.event_id = $1) x";

static const char *const sql_charges =
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
    "      WHERE $1::bigint IS NULL OR r.event_id = $1) x";

static const char *const sql_releases =
    "SELECT event_id, t FROM ("
    "  SELECT event_id, (extract(epoch FROM updated_at) * 1000000)::bigint AS t "
    "  FROM reservations WHERE state IN ('released', 'expired') "
    "  UNION ALL "
    "  SELECT r.event_id, (extract(epoch FROM o.updated_at) * 1000000)::bigint "
    "  FROM orders o JOIN reservations r ON r.reservation_id = o.reservation_id "
    "  WHERE o.state = 'refunded') x "
    "WHERE $1::bigint IS NULL OR event_id = $1 ORDER BY event_id, t";

static const char *const sql_fifo =
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
    "ORDER BY 1, 2, 3, 4, 5, 6";

static const char *const sql_offsets =
    "SELECT partition, next_offset, control_next_offset FROM partition_owner "
    "ORDER BY 1";

static const char *const sql_states = "SELECT intent_seq, state FROM intents "
                                      "WHERE intent_seq = ANY($1::bigint[])";

static const char *const sql_draw =
    "SELECT " Q_DRAW_PUBLISHED_COLUMNS " FROM events WHERE event_id = $1";

/* The counting queries, by enum adm_count_query. */
static const char *const count_sql[ADM_NCOUNT] = {
    [ADM_COUNT_SEATS_LIVE] = sql_seats_live,
    [ADM_COUNT_SEATS_COUNT] = sql_seats_count,
    [ADM_COUNT_TICKETS_UNIQUE] = sql_tickets_unique,
    [ADM_COUNT_CAPACITY] = sql_capacity,
    [ADM_COUNT_INTENTS] = sql_intents,
};

/* ---- connection -------------------------------------------------------------------- */

int adm_store_open(adm_store *s, const char *dsn, const char *app, int64_t event_id)
{
    memset(s, 0, sizeof *s);
    if (event_id > 0) {
        snprintf(s->event_buf, sizeof s->event_buf, "%" PRId64, event_id);
        s->event_param = s->event_buf;
    }
    ons_pg_opts po;
    ons_pg_opts_default(&po, dsn, app);
    int rc = ons_pg_init(&s->pg, &po);
    if (rc == 0 && ons_pg_connect(&s->pg))
        rc = ONS_EDB;
    return rc;
}

void adm_store_close(adm_store *s)
{
    ons_pg_fini(&s->pg);
}

/* Runs sql with event (NULL: SQL NULL) as $1 (n = 1) or no parameter
 * (n = 0). */
static int run_on(adm_store *s, const char *event, const char *what, const char *sql, int n,
                  PGresult **r)
{
    const char *params[1] = {event};
    return ons_pg_exec(s->pg.conn, PGRES_TUPLES_OK, what, sql, n, params, r);
}

/* Runs sql with the scope's event as $1 (n = 1) or no parameter (n = 0). */
static int run(adm_store *s, const char *what, const char *sql, int n, PGresult **r)
{
    return run_on(s, s->event_param, what, sql, n, r);
}

/* Copies a text field into buf, cut to cap - 1 bytes ("" for SQL NULL): the
 * samples are for people, a long one is still worth its start. */
static void cut_text(const PGresult *r, int row, int col, char *buf, size_t cap)
{
    const char *v = ons_pg_get_str(r, row, col);
    snprintf(buf, cap, "%s", v ? v : "");
}

/* Reads every row of r (cleared here) into a new heap array: see
 * ons_pg_rows. */
static int read_rows(PGresult *r, size_t elem, ons_pg_row_fn read, void *out, size_t *n)
{
    int rc = ons_pg_rows(r, elem, -1, read, out, n);
    PQclear(r);
    return rc;
}

/* Runs sql with event as $1 (NULL: SQL NULL) and reads its rows. */
static int run_rows(adm_store *s, const char *event, const char *what, const char *sql, size_t elem,
                    ons_pg_row_fn read, void *out, size_t *n)
{
    PGresult *r = NULL;
    int rc = run_on(s, event, what, sql, 1, &r);
    int rrc = read_rows(r, elem, read, out, n); /* r NULL: no rows */
    return rc ? rc : rrc;
}

/* ---- counting queries -------------------------------------------------------------- */

/* Reads (checked, violations, sample) from row 0 of r. */
static int read_count(const PGresult *r, const char *what, adm_count *out)
{
    ons_pg_row rw = ons_pg_row_at(r, 0);
    out->checked = ons_pg_row_i64_or(&rw, 0, 0);
    out->violations = ons_pg_row_i64_or(&rw, 1, 0);
    if (ons_pg_row_done(&rw, what))
        return ONS_EDB;
    cut_text(r, 0, 2, out->sample, sizeof out->sample);
    return 0;
}

int adm_store_count(adm_store *s, int q, adm_count *out)
{
    if (q < 0 || q >= ADM_NCOUNT)
        return ONS_EINVAL;
    PGresult *r;
    if (run(s, "audit count", count_sql[q], 1, &r))
        return ONS_EDB;
    int rc = read_count(r, "audit count", out);
    PQclear(r);
    return rc;
}

int adm_store_charges(adm_store *s, adm_charges *out)
{
    PGresult *r;
    if (run(s, "audit charges", sql_charges, 1, &r))
        return ONS_EDB;
    int rc = read_count(r, "audit charges", &out->orders);
    ons_pg_row rw = ons_pg_row_at(r, 0);
    out->charged = ons_pg_row_i64(&rw, 3);
    out->ticketed = ons_pg_row_i64(&rw, 4);
    out->refunded = ons_pg_row_i64(&rw, 5);
    if (rc == 0 && ons_pg_row_done(&rw, "audit charges"))
        rc = ONS_EDB;
    PQclear(r);
    return rc;
}

/* ---- rows for the rules ------------------------------------------------------------ */

static int read_release(const PGresult *r, int i, void *item)
{
    adm_release *v = item;
    ons_pg_row rw = ons_pg_row_at(r, i);
    v->event_id = ons_pg_row_i64(&rw, 0);
    v->t = ons_pg_row_i64_or(&rw, 1, 0);
    return ons_pg_row_done(&rw, "audit releases") ? ONS_EDB : 0;
}

int adm_store_releases(adm_store *s, adm_release **out, size_t *n)
{
    return run_rows(s, s->event_param, "audit releases", sql_releases, sizeof **out, read_release,
                    out, n);
}

/* Columns of sql_fifo. */
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
    F_PRE,
    F_SEED,
    F_USER
};

static int read_fifo_row(const PGresult *r, int i, void *item)
{
    adm_fifo_row *f = item;
    ons_pg_row rw = ons_pg_row_at(r, i);
    f->event_id = ons_pg_row_i64(&rw, F_EVENT);
    f->quantity = ons_pg_row_i64(&rw, F_QTY);
    cut_text(r, i, F_SECTION, f->section, sizeof f->section);
    f->max_price_cents = ons_pg_row_i64_or(&rw, F_PRICE, 0);
    f->adjacent = ons_pg_row_i64_or(&rw, F_ADJ, 0) != 0;
    f->seq = ons_pg_row_i64(&rw, F_SEQ);
    f->kind = ons_pg_row_str(&rw, F_KIND, 1)[0];
    f->t = ons_pg_row_i64_or(&rw, F_T, 0);
    f->live = ons_pg_row_i64_or(&rw, F_LIVE, 0) != 0;
    f->has_seats = ons_pg_isnull(r, i, F_MINSEAT) == 0;
    f->min_seat = ons_pg_row_i64_or(&rw, F_MINSEAT, 0);
    f->max_seat = ons_pg_row_i64_or(&rw, F_MAXSEAT, 0);
    f->min_section_pos = ons_pg_row_i64_or(&rw, F_MINPOS, 0);
    f->prequeued = ons_pg_row_i64_or(&rw, F_PRE, 0) != 0;
    cut_text(r, i, F_SEED, f->seed_hex, sizeof f->seed_hex);
    f->user_id = ons_pg_row_i64_or(&rw, F_USER, 0);
    return ons_pg_row_done(&rw, "audit fifo") ? ONS_EDB : 0;
}

int adm_store_fifo_rows(adm_store *s, adm_fifo_row **out, size_t *n)
{
    return run_rows(s, s->event_param, "audit fifo", sql_fifo, sizeof **out, read_fifo_row, out, n);
}

int adm_store_offsets(adm_store *s, adm_offsets *out)
{
    PGresult *r;
    out->n = 0;
    if (run(s, "audit offsets", sql_offsets, 0, &r))
        return ONS_EDB;
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r) && out->n < ADM_MAX_PARTITIONS; i++) {
        ons_pg_row rw = ons_pg_row_at(r, i);
        out->partition[out->n] = ons_pg_row_i32(&rw, 0);
        out->next[out->n][0] = ons_pg_row_i64_or(&rw, 1, 0);
        out->next[out->n][1] = ons_pg_row_i64_or(&rw, 2, 0);
        if (ons_pg_row_done(&rw, "audit offsets"))
            rc = ONS_EDB;
        else
            out->n++;
    }
    PQclear(r);
    return rc;
}

static int read_intent_state(const PGresult *r, int i, void *item)
{
    adm_intent_state *v = item;
    ons_pg_row rw = ons_pg_row_at(r, i);
    v->seq = ons_pg_row_i64(&rw, 0);
    cut_text(r, i, 1, v->text, sizeof v->text);
    v->state = q_intent_state_parse(v->text);
    return ons_pg_row_done(&rw, "audit intent states") ? ONS_EDB : 0;
}

int adm_store_intent_states(adm_store *s, const int64_t *seqs, size_t n, adm_intent_state **out,
                            size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (n > ADM_STATES_MAX)
        return ONS_EINVAL;
    ons_pgarr arr = {0};
    for (size_t i = 0; i < n; i++)
        ons_pgarr_int(&arr, seqs[i]);
    const char *params[1];
    PGresult *r = NULL;
    int rc = ons_pgarrs_params(&arr, 1, params);
    if (rc == 0 &&
        ons_pg_exec(s->pg.conn, PGRES_TUPLES_OK, "audit intent states", sql_states, 1, params, &r))
        rc = ONS_EDB;
    ons_pgarrs_fini(&arr, 1);
    return rc ? rc : read_rows(r, sizeof **out, read_intent_state, out, nout);
}

/* ---- verify-draw ------------------------------------------------------------------- */

int adm_store_draw(adm_store *s, int64_t event_id, q_draw_published *out)
{
    char ev[24];
    snprintf(ev, sizeof ev, "%" PRId64, event_id);
    PGresult *r;
    if (run_on(s, ev, "verify-draw", sql_draw, 1, &r))
        return ONS_EDB;
    int rc = ONS_ENOTFOUND;
    if (PQntuples(r) > 0) {
        cut_text(r, 0, 0, out->commitment, sizeof out->commitment);
        cut_text(r, 0, 1, out->seed_hex, sizeof out->seed_hex);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

static int read_prequeued(const PGresult *r, int i, void *item)
{
    q_draw_entrant *v = item;
    ons_pg_row rw = ons_pg_row_at(r, i);
    v->seq = ons_pg_row_i64(&rw, 0);
    v->user_id = ons_pg_row_i64(&rw, 1);
    return ons_pg_row_done(&rw, "verify-draw") ? ONS_EDB : 0;
}

int adm_store_prequeued(adm_store *s, int64_t event_id, q_draw_entrant **out, size_t *n)
{
    char ev[24];
    snprintf(ev, sizeof ev, "%" PRId64, event_id);
    return run_rows(s, ev, "verify-draw", Q_DRAW_ENTRANTS_SQL, sizeof **out, read_prequeued, out,
                    n);
}
