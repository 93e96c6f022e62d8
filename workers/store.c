/* store.c - PostgreSQL access of the worker; see store.h.
 *
 * Batch writes send PostgreSQL array literals ("{1,2,3}") as text
 * parameters and expand them with unnest(), so a batch costs a handful of
 * statements whatever its size. Loads stream rows (COPY for seats, single-row
 * mode for intents) so a 1,000,000-seat event never sits in a PGresult. */
#include "common/clock.h"
#include "workers/store.h"
#include "queue/states.h"
#include "queue/draw.h"
#include "common/err.h"
#include "common/log.h"
#include "queue/intent_id.h"
#include "queue/producer.h"
#include "workers/checkout_store.h"
#include "common/pg.h"
#include "common/pgarr.h"
#include "common/vec.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Statements of the batch transaction sent in one pipeline (at most this many). */
#define WK_PL_MAX 16

struct wk_store {
    ons_pg pg;
    PGconn *conn; /* pg's live connection, set by ensure_conn() */
    char *owner;
    int skip_epoch_check, commit_delay_ms, claim_lock_timeout_ms;
    /* The open pipeline: what each sent statement is (for logs) and which
     * one is the fence (its row count decides the batch). */
    const char *pl_what[WK_PL_MAX];
    int pl_n, pl_fence;
    wk_copybuf copy; /* the batch's new intents (binary COPY), reused */
};

/* ---- connection ------------------------------------------------------------ */

int wk_store_new(const wk_store_opts *o, wk_store **out)
{
    wk_store *st = calloc(1, sizeof *st);
    if (!st)
        return ONS_ENOMEM;
    ons_pg_opts po;
    /* The default reconnect gate (at most 500 ms) stays under the consumer
     * loop's one-second retry of claims and reloads. */
    ons_pg_opts_default(&po, o->dsn, "onsale-worker");
    st->owner = strdup(o->owner);
    int rc = st->owner ? ons_pg_init(&st->pg, &po) : ONS_ENOMEM;
    if (rc) {
        wk_store_free(st);
        return rc == ONS_EINVAL ? ONS_EINVAL : ONS_ENOMEM;
    }
    st->skip_epoch_check = o->skip_epoch_check;
    st->commit_delay_ms = o->commit_delay_ms;
    st->claim_lock_timeout_ms = o->claim_lock_timeout_ms;
    /* The database may be down now: calls fail with ONS_EDB until it is back
     * (the failure is logged once). */
    ons_pg_connect(&st->pg);
    *out = st;
    return 0;
}

void wk_store_free(wk_store *st)
{
    if (!st)
        return;
    ons_pg_fini(&st->pg);
    free(st->copy.b);
    free(st->owner);
    free(st);
}

/* Points st->conn at a live connection, reconnecting when the last one
 * broke (ons_pg: gated by backoff, logged once per outage). 0 or ONS_EDB. */
static int ensure_conn(wk_store *st)
{
    st->conn = ons_pg_conn(&st->pg);
    return st->conn ? 0 : ONS_EDB;
}

static int simple(wk_store *st, const char *sql)
{
    return ons_pg_exec(st->conn, PGRES_COMMAND_OK, sql, sql, 0, NULL, NULL);
}

int wk_store_ping(wk_store *st)
{
    return ons_pg_query(&st->pg, PGRES_TUPLES_OK, "ping", "SELECT 1", 0, NULL, NULL);
}

/* ---- claim ------------------------------------------------------------------ */

/* Ends a bounded claim's transaction: COMMIT when ok, else ROLLBACK (its
 * SET LOCAL goes with it). 0 when committed; a connection the failure
 * broke is forgotten (reconnected at the next call). */
static int claim_end(wk_store *st, int ok)
{
    if (ok && simple(st, "COMMIT") == 0)
        return 0;
    if (simple(st, "ROLLBACK") != 0)
        ons_pg_check(&st->pg);
    return ONS_EDB;
}

/* The claim's upsert (RETURNING next_offset, epoch, control_next_offset).
 * A lock timeout (55P03: another session holds the row, a previous
 * owner's that died mid-COMMIT) is ONS_ETIMEDOUT and not logged here:
 * the supervisor retries the claim each second, and the worker logs the
 * wait once (main.c), not an error line a second. Else as ons_pg_exec. */
static int claim_upsert(wk_store *st, const char *const *v, PGresult **out)
{
    /* prev: the epoch before, for the log alone (read before the row's
     * lock: a claim committed meanwhile is not in it) */
    static const char sql[] =
        "WITH prev AS (SELECT epoch FROM partition_owner WHERE partition = $1) "
        "INSERT INTO partition_owner (partition, epoch, next_offset, owner, "
        "claimed_at) VALUES ($1, GREATEST(1, $3::bigint), 0, $2, now()) "
        "ON CONFLICT (partition) DO UPDATE SET "
        "epoch = GREATEST(partition_owner.epoch + 1, $3::bigint), "
        "owner = EXCLUDED.owner, claimed_at = now() "
        "RETURNING next_offset, epoch, control_next_offset, "
        "COALESCE((SELECT epoch FROM prev), 0)";
    if (st->claim_lock_timeout_ms <= 0)
        return ons_pg_exec(st->conn, PGRES_TUPLES_OK, "claim", sql, 3, v, out);
    PGresult *r = PQexecParams(st->conn, sql, 3, NULL, v, NULL, NULL, 0);
    *out = NULL;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK) {
        *out = r;
        return 0;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    int timed_out = state && strcmp(state, "55P03") == 0;
    if (!timed_out)
        ons_log_error("postgres claim: %s%s%s",
                      r ? PQresultErrorMessage(r) : PQerrorMessage(st->conn),
                      state ? " SQLSTATE " : "", state ? state : "");
    PQclear(r);
    return timed_out ? ONS_ETIMEDOUT : ONS_EDB;
}

int wk_store_claim(wk_store *st, int32_t partition, int64_t epoch_floor, int64_t *next_offset,
                   int64_t *ctl_next, int64_t *epoch)
{
    if (ensure_conn(st))
        return ONS_EDB;
    char p[16], floor[24];
    snprintf(p, sizeof p, "%d", (int)partition);
    snprintf(floor, sizeof floor, "%" PRId64, epoch_floor);
    const char *v[] = {p, st->owner, floor};
    /* A previous owner whose session died mid-COMMIT (a hung server, a cut
     * path) holds the row until the server drops the session: the claim
     * gives up after the bound and the supervisor retries it each second,
     * so the loop's turn never waits a whole worker.stuck_restart_ms on it. */
    int bounded = st->claim_lock_timeout_ms > 0;
    char lock_sql[64];
    snprintf(lock_sql, sizeof lock_sql, "SET LOCAL lock_timeout = %d", st->claim_lock_timeout_ms);
    if (bounded && (simple(st, "BEGIN") != 0 || simple(st, lock_sql) != 0)) {
        claim_end(st, 0);
        return ONS_EDB;
    }
    PGresult *r;
    int rc = claim_upsert(st, v, &r);
    if (bounded && claim_end(st, rc == 0) != 0 && rc == 0) {
        PQclear(r);
        rc = ONS_EDB;
    }
    if (rc)
        return rc;
    rc = ONS_EDB;
    if (PQntuples(r) == 1) {
        ons_pg_row rw = ons_pg_row_at(r, 0);
        int64_t next = ons_pg_row_i64(&rw, 0), ep = ons_pg_row_i64(&rw, 1),
                ctl = ons_pg_row_i64(&rw, 2), prev = ons_pg_row_i64(&rw, 3);
        if (ons_pg_row_done(&rw, "claim") == 0) {
            if (prev > 0 && ep > prev + 1)
                ons_log_warn("claimed partition %d at epoch %" PRId64 ", past PostgreSQL's %" PRId64
                             " + 1: Redis's results of it were written at epochs up to %" PRId64
                             " (PostgreSQL restored from an older backup under this Redis?); "
                             "this owner's results replace them",
                             (int)partition, ep, prev, epoch_floor - 1);
            *next_offset = next;
            *epoch = ep;
            *ctl_next = ctl;
            rc = 0;
        }
    }
    PQclear(r);
    return rc;
}

/* The intent_seq (= reservation_id) range of partition's records, [lo, hi),
 * as decimal text: every id of a partition shares its high bits (q_seq). */
static void partition_seq_range(int32_t partition, char lo[24], char hi[24])
{
    snprintf(lo, 24, "%" PRId64, q_seq_make(partition, 0));
    snprintf(hi, 24, "%" PRId64, q_seq_make(partition + 1, 0));
}

int wk_store_last_changed(wk_store *st, int32_t partition, int64_t window_ms, int64_t **seqs,
                          size_t *n)
{
    *seqs = NULL;
    *n = 0;
    if (ensure_conn(st))
        return ONS_EDB;
    char lo[24], hi[24], w[32];
    partition_seq_range(partition, lo, hi);
    snprintf(w, sizeof w, "%lld", (long long)window_ms);
    const char *v[] = {lo, hi, w};
    PGresult *r;
    if (ons_pg_exec(st->conn, PGRES_TUPLES_OK, "last_changed",
                    "WITH p AS (SELECT intent_seq, updated_at FROM intents WHERE intent_seq "
                    ">= $1 AND intent_seq < $2) "
                    "SELECT intent_seq FROM p WHERE updated_at >= "
                    "(SELECT max(updated_at) FROM p) - $3::bigint * interval '1 millisecond'",
                    3, v, &r))
        return ONS_EDB;
    size_t rows = (size_t)PQntuples(r);
    int rc = 0;
    *seqs = rows ? malloc(rows * sizeof **seqs) : NULL;
    if (rows && !*seqs)
        rc = ONS_ENOMEM;
    for (size_t i = 0; i < rows && rc == 0; i++) {
        ons_pg_row rw = ons_pg_row_at(r, (int)i);
        (*seqs)[i] = ons_pg_row_i64(&rw, 0);
        if (ons_pg_row_done(&rw, "last_changed") != 0)
            rc = ONS_EDB;
    }
    PQclear(r);
    if (rc) {
        free(*seqs);
        *seqs = NULL;
        return rc;
    }
    *n = rows;
    return 0;
}

int wk_store_recheck(wk_store *st, int32_t partition, int64_t epoch, int64_t *next_offset,
                     int64_t *ctl_next)
{
    if (ensure_conn(st))
        return ONS_EDB;
    char p[16];
    snprintf(p, sizeof p, "%d", (int)partition);
    const char *v[] = {p};
    PGresult *r;
    if (ons_pg_exec(st->conn, PGRES_TUPLES_OK, "recheck",
                    "SELECT next_offset, epoch, control_next_offset FROM partition_owner "
                    "WHERE partition = $1",
                    1, v, &r))
        return ONS_EDB;
    int rc = ONS_EFENCED;
    if (PQntuples(r) == 1) {
        ons_pg_row rw = ons_pg_row_at(r, 0);
        int64_t next = ons_pg_row_i64(&rw, 0), ep = ons_pg_row_i64(&rw, 1),
                ctl = ons_pg_row_i64(&rw, 2);
        if (ons_pg_row_done(&rw, "recheck"))
            rc = ONS_EDB;
        else if (ep == epoch) {
            *next_offset = next;
            *ctl_next = ctl;
            rc = 0;
        }
    }
    PQclear(r);
    return rc;
}

/* Loads p's tombstones at or above its intents cursor (partition.h): a
 * cancel committed ahead of its intent must still win after a restart. */
int wk_store_load_tombstones(wk_store *st, wk_part *p)
{
    if (ensure_conn(st))
        return ONS_EDB;
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", (int)p->partition);
    snprintf(off, sizeof off, "%" PRId64, p->next_offset);
    const char *v[] = {part, off};
    PGresult *r;
    if (ons_pg_exec(st->conn, PGRES_TUPLES_OK, "tombstones",
                    "SELECT kafka_offset, user_id FROM intent_tombstones "
                    "WHERE partition = $1 AND kafka_offset >= $2",
                    2, v, &r))
        return ONS_EDB;
    int rc = 0, n = PQntuples(r);
    for (int i = 0; i < n && rc == 0; i++) {
        ons_pg_row rw = ons_pg_row_at(r, i);
        int64_t off = ons_pg_row_i64(&rw, 0), user = ons_pg_row_i64(&rw, 1);
        rc = ons_pg_row_done(&rw, "tombstones") ? ONS_EDB : wk_part_add_tombstone(p, off, user);
    }
    PQclear(r);
    if (n > 0)
        ons_log_info("partition %d: %d cancel(s) waiting for their intents", (int)p->partition, n);
    return rc;
}

/* ---- loading events ------------------------------------------------------------ *
 *
 * Events load in bulk: every query names all of them (event_id = ANY), so a
 * batch naming 1,000 events not in memory costs the same handful of round
 * trips as one event (bench/NOTES.md: 8 round trips per event before). */

typedef struct sec_row {
    int64_t id;
    int32_t position;
    char name[WK_SECTION_NAME_MAX + 1];
} sec_row;

/* One event being loaded. */
typedef struct load_ctx {
    wk_event *ev;
    int64_t seats_total;
    sec_row *secs;
    int nsecs, cap;
    int added; /* sections already added to the inventory */
    int cur;   /* index of the section seats are being added to, -1 none */
} load_ctx;

typedef struct load_set {
    load_ctx *c;
    size_t n;
    wk_map idx; /* event_id -> index + 1 */
} load_set;

static load_ctx *ctx_of(load_set *ls, int64_t event_id)
{
    uintptr_t i = (uintptr_t)wk_map_get(&ls->idx, event_id);
    return i ? &ls->c[i - 1] : NULL;
}

static int add_sections_until(load_ctx *lc, int upto)
{
    for (; lc->added < upto; lc->added++) {
        sec_row *s = &lc->secs[lc->added];
        int rc = wk_inv_add_section(&lc->ev->inv, s->id, s->name, s->position);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Makes the event of row i of load_meta's result. Returns 0 with *out (the
 * caller's), ONS_EDB (a field did not read: logged) or ONS_ENOMEM. */
static int event_from_row(const PGresult *r, int i, wk_event **out, int64_t *seats_total)
{
    ons_pg_row rw = ons_pg_row_at(r, i);
    wk_event *ev = wk_event_new(ons_pg_row_i64(&rw, 0));
    if (!ev)
        return ONS_ENOMEM;
    int status = q_event_status_parse(ons_pg_row_str(&rw, 1, 0));
    ev->status = status < 0 ? Q_EVENT_PAUSED : status;
    ev->onsale_at_ms = ons_pg_row_i64(&rw, 2);
    ev->hold_seconds = ons_pg_row_i32(&rw, 3);
    ev->max_per_user = ons_pg_row_i32(&rw, 4);
    ons_pg_row_text(&rw, 5, ev->currency, sizeof ev->currency, 0);
    *seats_total = ons_pg_row_i64(&rw, 6);
    ev->starts_at_ms = ons_pg_row_i64(&rw, 7);
    ev->prequeue_opens_at_ms = ons_pg_row_i64(&rw, 8);
    const char *seed = ons_pg_row_str(&rw, 9, 0);
    ev->max_active_holds = ons_pg_row_i64(&rw, 10);
    ev->admissions_per_minute = ons_pg_row_i64(&rw, 11);
    if (ons_pg_row_done(&rw, "load events")) {
        wk_event_free(ev);
        return ONS_EDB;
    }
    /* A pre-queue without a readable seed cannot be drawn: treat as none. */
    if (ev->prequeue_opens_at_ms > 0 && q_draw_seed_parse(seed, ev->draw_seed)) {
        ons_log_warn("event %" PRId64 ": pre-queue without a draw seed; none", ev->event_id);
        ev->prequeue_opens_at_ms = 0;
    }
    *out = ev;
    return 0;
}

/* Is row i's event (event_id column 0) homed on another partition than
 * p's (murmur2 of its id over events.partitions, column col; docs/scaling.md
 * "Growing the topics")? Then *fenced = 1, noted in p
 * (wk_part_set_home_elsewhere) and logged once: nothing of it is loaded
 * here and none of its records applied, so a record a producer placed on
 * the wrong partition never makes a second writer. */
static int home_elsewhere(wk_part *p, const PGresult *r, int i, int col, int *fenced)
{
    int64_t id = 0, parts = 0;
    if (ons_pg_get_i64(r, i, 0, &id) || ons_pg_get_i64(r, i, col, &parts) || parts < 1 ||
        parts > 65536) {
        ons_log_error("postgres load events: row %d has no event_id or partitions", i);
        return ONS_EDB;
    }
    int32_t home = q_partition_of_event(id, (int)parts);
    if (home == p->partition)
        return 0;
    *fenced = 1;
    if (wk_part_home_elsewhere(p, id) >= 0)
        return 0; /* noted and logged already */
    ons_log_warn("event %" PRId64 " is homed on partition %d (events.partitions %d), not %d: "
                 "its records here are not applied",
                 id, (int)home, (int)parts, (int)p->partition);
    return wk_part_set_home_elsewhere(p, id, home);
}

/* The events' rows: creates each found event in p (ls->c), except those
 * homed on another partition (home_elsewhere). */
static int load_meta(wk_store *st, wk_part *p, const char *ids, load_set *ls)
{
    const char *v[] = {ids};
    PGresult *r;
    if (ons_pg_exec(st->conn, PGRES_TUPLES_OK, "load events",
                    "SELECT event_id, status, "
                    "(extract(epoch FROM onsale_at) * 1000)::bigint, "
                    "hold_seconds, max_per_user, currency, seats_total, "
                    "(extract(epoch FROM starts_at) * 1000)::bigint, "
                    "coalesce((extract(epoch FROM prequeue_opens_at) * 1000)::bigint, 0), "
                    "coalesce(encode(draw_seed, 'hex'), ''), "
                    "coalesce(max_active_holds, 0), coalesce(admissions_per_minute, 0), "
                    "partitions FROM events WHERE event_id = ANY($1::bigint[])",
                    1, v, &r))
        return ONS_EDB;
    int n = PQntuples(r), rc = 0;
    ls->c = calloc((size_t)n + 1, sizeof *ls->c);
    if (!ls->c) {
        PQclear(r);
        return ONS_ENOMEM;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        wk_event *ev = NULL;
        int64_t seats_total = 0;
        int fenced = 0;
        if ((rc = home_elsewhere(p, r, i, 12, &fenced)) != 0 || fenced)
            continue;
        if ((rc = event_from_row(r, i, &ev, &seats_total)) != 0)
            break;
        /* From here on the event belongs to p: on failure p is dropped whole. */
        if ((rc = wk_part_add_event(p, ev)) != 0) {
            wk_event_free(ev);
            break;
        }
        load_ctx *lc = &ls->c[ls->n];
        lc->ev = ev;
        lc->seats_total = seats_total;
        lc->cur = -1;
        if ((rc = wk_map_put(&ls->idx, ev->event_id, (void *)(uintptr_t)(ls->n + 1))) != 0)
            break;
        ls->n++;
        if (seats_total > 0)
            rc = wk_inv_reserve(&ev->inv, (size_t)seats_total);
    }
    PQclear(r);
    return rc;
}

static int load_sections(wk_store *st, const char *ids, load_set *ls)
{
    const char *v[] = {ids};
    PGresult *r;
    if (ons_pg_exec(st->conn, PGRES_TUPLES_OK, "load sections",
                    "SELECT e.event_id, s.section_id, s.name, s.position FROM sections s "
                    "JOIN events e ON e.venue_id = s.venue_id "
                    "WHERE e.event_id = ANY($1::bigint[]) ORDER BY e.event_id, s.position",
                    1, v, &r))
        return ONS_EDB;
    int n = PQntuples(r), rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        ons_pg_row rw = ons_pg_row_at(r, i);
        load_ctx *lc = ctx_of(ls, ons_pg_row_i64(&rw, 0));
        int64_t id = ons_pg_row_i64(&rw, 1);
        const char *name = ons_pg_row_str(&rw, 2, 0);
        int32_t position = ons_pg_row_i32(&rw, 3);
        if (ons_pg_row_done(&rw, "load sections")) {
            rc = ONS_EDB;
            break;
        }
        if (!lc)
            continue;
        if (lc->nsecs == lc->cap) {
            int cap = lc->cap ? lc->cap * 2 : 8;
            sec_row *ns = realloc(lc->secs, (size_t)cap * sizeof *ns);
            if (!ns) {
                rc = ONS_ENOMEM;
                break;
            }
            lc->secs = ns;
            lc->cap = cap;
        }
        sec_row *sr = &lc->secs[lc->nsecs++];
        sr->id = id;
        /* (a name of 64 multi-byte characters is cut here, as it always was) */
        snprintf(sr->name, sizeof sr->name, "%s", name);
        sr->position = position;
    }
    PQclear(r);
    return rc;
}

static int section_index(const load_ctx *lc, const char *name)
{
    for (int i = 0; i < lc->nsecs; i++)
        if (strcmp(lc->secs[i].name, name) == 0)
            return i;
    return -1;
}

/* Adds the intent of one load_intents row (single-row mode) to its event in
 * p; a row of an event not being loaded is skipped. Returns 0, ONS_EDB (a
 * field did not read: logged) or ONS_ENOMEM. */
static int add_intent_row(wk_part *p, load_set *ls, const PGresult *r)
{
    ons_pg_row rw = ons_pg_row_at(r, 0);
    load_ctx *lc = ctx_of(ls, ons_pg_row_i64(&rw, 11));
    if (ons_pg_row_done(&rw, "load intents"))
        return ONS_EDB;
    if (!lc)
        return 0;
    wk_event *ev = lc->ev;
    wk_intent *in = calloc(1, sizeof *in);
    if (!in)
        return ONS_ENOMEM;
    in->seq = ons_pg_row_i64(&rw, 0);
    in->user_id = ons_pg_row_i64(&rw, 1);
    int istate = q_intent_state_parse(ons_pg_row_str(&rw, 2, 0));
    int32_t qty = ons_pg_row_i32(&rw, 3);
    const char *sec = ons_pg_row_str(&rw, 4, 0);
    in->max_price = ons_pg_row_i64(&rw, 5);
    in->adjacent = (uint8_t)ons_pg_row_bool(&rw, 6);
    in->accepted_ms = ons_pg_row_i64(&rw, 7);
    int rstate = q_res_state_parse(ons_pg_row_str(&rw, 8, 0));
    in->total_cents = ons_pg_row_i64(&rw, 9);
    in->expires_ms = ons_pg_row_i64(&rw, 10);
    if (ons_pg_row_done(&rw, "load intents")) {
        free(in);
        return ONS_EDB;
    }
    in->qty = (uint8_t)(qty < 1 || qty > Q_MAX_SEATS ? 0 : qty);
    in->section = (int16_t)(sec[0] ? section_index(lc, sec) : -1);
    in->state = (uint8_t)istate;
    in->res_state = (uint8_t)(rstate < 0 ? Q_RES_NONE : rstate);
    if (in->qty < 1 || in->qty > Q_MAX_SEATS || (sec[0] && in->section < 0) ||
        (istate != Q_INTENT_WAITING && in->res_state != Q_RES_HELD &&
         in->res_state != Q_RES_PAYING)) {
        /* Not a shape this worker could have written: keep the seats
         * it holds out of play, but never allocate for it. */
        ons_log_warn("event %" PRId64 ": intent %" PRId64 " has an unexpected shape", ev->event_id,
                     in->seq);
        if (in->qty < 1 || in->qty > Q_MAX_SEATS)
            in->qty = 1;
        if (istate == Q_INTENT_WAITING)
            in->section = -1;
    }
    return wk_part_add_loaded(p, ev, in);
}

/* Active intents (waiting / reserved / paying) per event in seq order, one
 * row at a time. */
static int load_intents(wk_store *st, wk_part *p, const char *ids, load_set *ls)
{
    const char *v[] = {ids};
    if (!PQsendQueryParams(st->conn,
                           "SELECT i.intent_seq, i.user_id, i.state, i.quantity, "
                           "coalesce(i.section, ''), coalesce(i.max_price_cents, 0), i.adjacent, "
                           "(extract(epoch FROM i.accepted_at) * 1000)::bigint, "
                           "coalesce(r.state, ''), coalesce(r.total_cents, 0), "
                           "coalesce((extract(epoch FROM r.expires_at) * 1000)::bigint, 0), "
                           "i.event_id FROM intents i LEFT JOIN reservations r "
                           "ON r.reservation_id = i.reservation_id "
                           "WHERE i.event_id = ANY($1::bigint[]) "
                           "AND i.state IN ('waiting', 'reserved', 'paying') "
                           "ORDER BY i.event_id, i.intent_seq",
                           1, NULL, v, NULL, NULL, 0) ||
        !PQsetSingleRowMode(st->conn)) {
        ons_log_error("postgres load intents: %s", PQerrorMessage(st->conn));
        return ONS_EDB;
    }
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(st->conn)) != NULL) {
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_SINGLE_TUPLE && rc == 0) {
            rc = add_intent_row(p, ls, r);
        } else if (s != PGRES_SINGLE_TUPLE && s != PGRES_TUPLES_OK) {
            ons_log_error("postgres load intents: %s", PQresultErrorMessage(r));
            rc = ONS_EDB;
        }
        PQclear(r);
    }
    return rc;
}

/* Splits a COPY text line into up to n tab-separated fields (in place). */
static int split_fields(char *line, char **f, int n)
{
    int k = 0;
    f[k++] = line;
    for (char *c = line; *c && k < n; c++)
        if (*c == '\t') {
            *c = '\0';
            f[k++] = c + 1;
        }
    char *nl = strchr(f[k - 1], '\n');
    if (nl)
        *nl = '\0';
    return k;
}

/* One seat row of COPY into its event's inventory; held seats go to their
 * intents. */
static int load_seat_row(wk_part *p, load_set *ls, char **f)
{
    /* Every field but the status (5) is an integer. */
    int64_t v[8] = {0};
    for (int i = 0; i < 8; i++) {
        if (i != 5 && ons_pg_parse_i64(f[i], &v[i])) {
            ons_log_error("postgres load seats: field %d is not an integer", i);
            return ONS_EDB;
        }
    }
    load_ctx *lc = ctx_of(ls, v[7]);
    if (!lc)
        return ONS_EDB;
    wk_event *ev = lc->ev;
    int rc = 0;
    int64_t sec_id = v[0];
    if (lc->cur < 0 || lc->secs[lc->cur].id != sec_id) {
        int k = lc->cur + 1;
        while (k < lc->nsecs && lc->secs[k].id != sec_id)
            k++;
        if (k == lc->nsecs)
            return ONS_EDB; /* seats of a section out of order */
        if ((rc = add_sections_until(lc, k + 1)) != 0)
            return rc;
        lc->cur = k;
    }
    int state = q_seat_state_parse(f[5]);
    int64_t rid = v[6];
    int idx = wk_inv_add_seat(&ev->inv, (int32_t)v[1], (int32_t)v[2], (int32_t)v[3], v[4],
                              state < 0 ? Q_SEAT_SOLD : state);
    if (idx < 0)
        return idx;
    if (rid >= 0 && state != Q_SEAT_SOLD) {
        wk_intent *in = wk_part_intent(p, rid);
        if (in && in->ev == ev && in->nseats < Q_MAX_SEATS)
            in->seats[in->nseats++] = (uint32_t)idx;
        else
            ons_log_warn("event %" PRId64 ": seat %s held by %" PRId64 " without a live intent",
                         ev->event_id, f[3], rid);
    }
    return 0;
}

/* Streams the events' seats in allocation order into their inventories. */
static int load_seats(wk_store *st, wk_part *p, const char *ids, load_set *ls)
{
    size_t cap = strlen(ids) + 512;
    char *sql = malloc(cap);
    if (!sql)
        return ONS_ENOMEM;
    /* ids is a bigint array literal built from int64s: no quoting needed. */
    snprintf(sql, cap,
             "COPY (SELECT s.section_id, s.row_no, s.seat_in_row, s.seat_no, s.price_cents, "
             "s.status, coalesce(s.reservation_id, -1), s.event_id FROM seats s "
             "JOIN sections c USING (section_id) WHERE s.event_id = ANY('%s'::bigint[]) "
             "ORDER BY s.event_id, c.position, s.row_no, s.seat_in_row) TO STDOUT",
             ids);
    PGresult *r = PQexec(st->conn, sql);
    free(sql);
    if (!r || PQresultStatus(r) != PGRES_COPY_OUT) {
        ons_log_error("postgres load seats: %s",
                      r ? PQresultErrorMessage(r) : PQerrorMessage(st->conn));
        PQclear(r);
        return ONS_EDB;
    }
    PQclear(r);
    int rc = 0;
    char *buf = NULL;
    int len;
    while ((len = PQgetCopyData(st->conn, &buf, 0)) > 0) {
        if (rc == 0) {
            char *f[8];
            rc = split_fields(buf, f, 8) == 8 ? load_seat_row(p, ls, f) : ONS_EDB;
        }
        PQfreemem(buf);
        buf = NULL;
    }
    if (len == -2) {
        ons_log_error("postgres load seats: %s", PQerrorMessage(st->conn));
        rc = ONS_EDB;
    }
    while ((r = PQgetResult(st->conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            ons_log_error("postgres load seats: %s", PQresultErrorMessage(r));
            rc = ONS_EDB;
        }
        PQclear(r);
    }
    for (size_t i = 0; i < ls->n && rc == 0; i++)
        rc = add_sections_until(&ls->c[i], ls->c[i].nsecs);
    return rc;
}

/* After load_meta: the sections, intents, seats and orders of the events it
 * created (ls; ids named n events, some of them perhaps not found or homed
 * elsewhere: then the rest read only the created ones). */
static int load_found(wk_store *st, wk_part *p, const char *ids, size_t n, load_set *ls)
{
    if (ls->n == 0)
        return 0;
    ons_pgarr mine = {0};
    if (ls->n < n) {
        for (size_t i = 0; i < ls->n; i++)
            ons_pgarr_int(&mine, ls->c[i].ev->event_id);
        ids = ons_pgarr_end(&mine);
    }
    int rc = mine.oom ? ONS_ENOMEM : 0;
    if (rc == 0 && (rc = load_sections(st, ids, ls)) == 0 &&
        (rc = load_intents(st, p, ids, ls)) == 0 && (rc = load_seats(st, p, ids, ls)) == 0)
        rc = wk_co_store_load_many(st->conn, p, ls->n, ids);
    ons_pgarrs_fini(&mine, 1);
    return rc;
}

/* The events of ids homed on p's partition, into here (*nhere of them);
 * the others are noted fenced (home_elsewhere): never stamped loaded (their
 * sellers may still edit them), never loaded here. */
static int ids_homed_here(wk_store *st, wk_part *p, const char *ids, ons_pgarr *here, size_t *nhere)
{
    const char *v[] = {ids};
    PGresult *r;
    if (ons_pg_exec(st->conn, PGRES_TUPLES_OK, "load events' homes",
                    "SELECT event_id, partitions FROM events WHERE event_id = ANY($1::bigint[])", 1,
                    v, &r))
        return ONS_EDB;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        int fenced = 0;
        int64_t id = 0;
        if ((rc = home_elsewhere(p, r, i, 1, &fenced)) == 0 && !fenced &&
            ons_pg_get_i64(r, i, 0, &id) == 0) {
            ons_pgarr_int(here, id);
            (*nhere)++;
        }
    }
    PQclear(r);
    return rc ? rc : here->oom ? ONS_ENOMEM : 0;
}

/* Marks the events (ids, all homed here) loaded, once, committed before
 * the load's snapshot: from now on their prices and starts_at are held
 * here, and ingress no longer changes them (PATCH /v1/events/{id} locks the
 * row and checks owner_loaded_at, so this UPDATE waits for an edit in
 * flight, and the snapshot then reads what that edit wrote). */
static int stamp_loaded(wk_store *st, const char *ids)
{
    const char *v[] = {ids};
    return ons_pg_exec(st->conn, PGRES_COMMAND_OK, "mark events loaded",
                       "UPDATE events SET owner_loaded_at = now() "
                       "WHERE event_id = ANY($1::bigint[]) AND owner_loaded_at IS NULL",
                       1, v, NULL);
}

int wk_store_load_events(wk_store *st, wk_part *p, const int64_t *event_ids, size_t n)
{
    if (n == 0)
        return 0;
    if (ensure_conn(st))
        return ONS_EDB;
    double t0 = ons_mono_s();
    /* "{1,2,3}": the one parameter every query takes. */
    ons_pgarr ids_arr = {0};
    for (size_t i = 0; i < n; i++)
        ons_pgarr_int(&ids_arr, event_ids[i]);
    const char *ids = ons_pgarr_end(&ids_arr);
    if (ids_arr.oom) {
        ons_pgarrs_fini(&ids_arr, 1);
        return ONS_ENOMEM;
    }
    load_set ls = {0};
    ons_pgarr here = {0};
    size_t nhere = 0;
    int rc = ids_homed_here(st, p, ids, &here, &nhere);
    if (rc || nhere == 0)
        goto out;
    ids = ons_pgarr_end(&here);
    if ((rc = stamp_loaded(st, ids)) != 0)
        goto out;
    /* One snapshot for every read, so events, seats and intents agree. */
    rc = simple(st, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (rc)
        goto out;
    if ((rc = load_meta(st, p, ids, &ls)) == 0)
        rc = load_found(st, p, ids, nhere, &ls);
    if (rc) {
        PQclear(PQexec(st->conn, "ROLLBACK"));
        goto out;
    }
    if ((rc = simple(st, "COMMIT")) != 0)
        goto out;
    double dt = ons_mono_s() - t0;
    if (ls.n == 1) {
        wk_event *ev = ls.c[0].ev;
        ons_log_info("loaded event %" PRId64 ": %zu seats (%" PRId64 " available, %" PRId64
                     " held, %" PRId64 " sold), %" PRId64 " waiting, status %s, in %.3f s",
                     ev->event_id, ev->inv.nseats, ev->inv.available, ev->inv.held, ev->inv.sold,
                     ev->nwaiting, q_event_status_name(ev->status), dt);
    } else if (ls.n > 1) {
        ons_log_info("loaded %zu events of partition %d in %.3f s", ls.n, (int)p->partition, dt);
    }
out:
    for (size_t i = 0; i < ls.n; i++)
        free(ls.c[i].secs);
    free(ls.c);
    wk_map_fini(&ls.idx);
    ons_pgarrs_fini(&ids_arr, 1);
    ons_pgarrs_fini(&here, 1);
    return rc;
}

int wk_store_load_event(void *ctx, wk_part *p, int64_t event_id)
{
    int rc = wk_store_load_events(ctx, p, &event_id, 1);
    if (rc == 0 && !wk_part_event(p, event_id))
        rc = ONS_ENOTFOUND;
    return rc;
}

int wk_store_load_live(wk_store *st, wk_part *p)
{
    if (ensure_conn(st))
        return ONS_EDB;
    /* Reservations are named by their intent's place in the log, so the
     * partition's are one range of ids; reservations_live indexes the live
     * ones. */
    char lo[24], hi[24];
    partition_seq_range(p->partition, lo, hi);
    const char *v[] = {lo, hi};
    /* Also the events with pre-queued intents still waiting: their draw
     * is made by the clock, not by a record (docs/fairness.md). */
    PGresult *r;
    if (ons_pg_exec(st->conn, PGRES_TUPLES_OK, "events with live holds",
                    "SELECT event_id FROM ("
                    "SELECT event_id, min(expires_at) AS t FROM reservations "
                    "WHERE state IN ('held', 'paying') "
                    "AND reservation_id >= $1 AND reservation_id < $2 GROUP BY event_id "
                    "UNION ALL "
                    "SELECT e.event_id, e.onsale_at FROM events e "
                    "WHERE e.prequeue_opens_at IS NOT NULL "
                    "AND e.status IN ('scheduled', 'on_sale', 'sold_out') "
                    "AND EXISTS (SELECT 1 FROM intents i WHERE i.event_id = e.event_id "
                    "AND i.state = 'waiting' AND i.accepted_at < e.onsale_at "
                    "AND i.intent_seq >= $1 AND i.intent_seq < $2)"
                    ") x GROUP BY event_id ORDER BY min(t), event_id",
                    2, v, &r))
        return ONS_EDB;
    int n = PQntuples(r), rc = 0, loaded = 0;
    int64_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (!ids) {
        PQclear(r);
        return ONS_ENOMEM;
    }
    for (int i = 0; i < n && rc == 0; i++)
        if (ons_pg_get_i64(r, i, 0, &ids[i]))
            rc = ONS_EDB;
    PQclear(r);
    if (rc) {
        ons_log_error("postgres events with live holds: an event_id is not an integer");
        free(ids);
        return rc;
    }
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!wk_part_event(p, ids[i]))
            ids[k++] = ids[i];
    /* (an event deleted since is simply not found: nothing to expire) */
    size_t before = p->events.len;
    rc = wk_store_load_events(st, p, ids, (size_t)k);
    loaded = (int)(p->events.len - before);
    free(ids);
    if (rc == 0 && loaded > 0)
        ons_log_info("partition %d: loaded %d event(s) with live holds so they expire on time",
                     (int)p->partition, loaded);
    return rc;
}

/* ---- the pipeline ---------------------------------------------------------------- *
 *
 * The batch's statements are sent back to back in libpq pipeline mode and
 * their results read after one sync: one round trip for the whole batch
 * instead of one per statement, and the worker builds the next statement's
 * arrays while the server executes the previous one. The transaction is
 * explicit (BEGIN is the first statement), so an error aborts it and every
 * later statement of the pipeline; the caller then rolls back. */

/* Enters pipeline mode; 0 or ONS_EDB. */
static int pl_begin(wk_store *st)
{
    st->pl_n = 0;
    st->pl_fence = -1;
    if (!PQenterPipelineMode(st->conn)) {
        ons_log_error("postgres pipeline: %s", PQerrorMessage(st->conn));
        return ONS_EDB;
    }
    return 0;
}

/* Queues one statement; 0 or ONS_EDB. libpq copies the parameters. */
static int pl_send(wk_store *st, const char *what, const char *sql, int n, const char *const *vals)
{
    if (st->pl_n == WK_PL_MAX || !PQsendQueryParams(st->conn, sql, n, NULL, vals, NULL, NULL, 0)) {
        ons_log_error("postgres %s: %s", what,
                      st->pl_n == WK_PL_MAX ? "too many statements" : PQerrorMessage(st->conn));
        return ONS_EDB;
    }
    st->pl_what[st->pl_n++] = what;
    return 0;
}

/* Syncs, reads every queued statement's result and leaves pipeline mode.
 * Returns 0, ONS_EFENCED (the fence touched no row: a newer owner exists)
 * or ONS_EDB (the first failing statement is logged). Safe after a failed
 * pl_send: it always drains and leaves pipeline mode. */
static int pl_end(wk_store *st)
{
    int rc = 0;
    double t0 = ons_mono_s();
    if (!PQpipelineSync(st->conn)) {
        ons_log_error("postgres pipeline sync: %s", PQerrorMessage(st->conn));
        rc = ONS_EDB;
    }
    int synced = rc != 0;
    for (int i = 0; !synced;) {
        PGresult *r = PQgetResult(st->conn);
        if (!r) {
            if (PQstatus(st->conn) != CONNECTION_OK) {
                ons_log_error("postgres pipeline: %s", PQerrorMessage(st->conn));
                rc = ONS_EDB;
                break;
            }
            i++; /* end of one statement's results */
            continue;
        }
        ExecStatusType s = PQresultStatus(r);
        const char *what = i < st->pl_n ? st->pl_what[i] : "pipeline";
        if (s == PGRES_PIPELINE_SYNC) {
            synced = 1;
        } else if (s == PGRES_COMMAND_OK) {
            if (i == st->pl_fence && atoi(PQcmdTuples(r)) != 1 && rc == 0)
                rc = ONS_EFENCED;
            ons_log_debug("%s: %s rows", what, PQcmdTuples(r));
        } else if (s != PGRES_PIPELINE_ABORTED && rc != ONS_EDB) {
            ons_log_error("postgres %s: %s", what, PQresultErrorMessage(r));
            rc = ONS_EDB;
        }
        PQclear(r);
    }
    if (!PQexitPipelineMode(st->conn)) {
        ons_log_error("postgres pipeline exit: %s", PQerrorMessage(st->conn));
        rc = ONS_EDB;
    }
    ons_log_debug("pipeline: %d statements in %.1f ms", st->pl_n, (ons_mono_s() - t0) * 1000);
    return rc;
}

/* Queues sql with the n arrays as parameters; 0 or ONS_EDB / ONS_ENOMEM. */
static int exec_arrays(wk_store *st, const char *what, const char *sql, ons_pgarr *a, int n)
{
    const char *v[16];
    int rc = ons_pgarrs_params(a, n, v);
    return rc ? rc : pl_send(st, what, sql, n, v);
}

/* ---- the batch transaction ------------------------------------------------------ */

/* Appends seq to arr when the intent has a reservation (res_state), else
 * NULL: a reservation is named by its intent's seq. */
static void put_reservation_id(ons_pgarr *arr, const wk_fx_intent *r)
{
    if (r->res_state != Q_RES_NONE)
        ons_pgarr_int(arr, r->seq);
    else
        ons_pgarr_null(arr);
}

/* Moves the intents of earlier batches this batch changed. */
static int update_intents(wk_store *st, const wk_fx *fx, ons_pgarr *a)
{
    int any = 0;
    ons_pgarrs_reset(a, 4);
    for (size_t i = 0; i < fx->nintents; i++) {
        const wk_fx_intent *r = &fx->intents[i];
        if (r->is_new)
            continue;
        any = 1;
        ons_pgarr_int(&a[0], r->seq);
        ons_pgarr_text(&a[1], q_intent_state_name(r->state));
        ons_pgarr_text(&a[2], q_reason_name(r->reason));
        put_reservation_id(&a[3], r);
    }
    return any ? exec_arrays(st, "update intents",
                             "UPDATE intents i SET state = u.state, reason = u.reason, "
                             "reservation_id = u.rid, updated_at = now() "
                             "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) "
                             "AS u(seq, state, reason, rid) WHERE i.intent_seq = u.seq",
                             a, 4)
               : 0;
}

/* ---- new intents: binary COPY ------------------------------------------------------ *
 *
 * Nine in ten intents of a stampede are new rows (most of them waiting), so
 * the intents insert is the batch's largest write. It goes as one binary
 * COPY: no array literal to print here and to parse in the server, no
 * unnest() materialised, and the server fills whole pages at a time (one
 * heap WAL record per page instead of one per row). Measured: 8,000 rows in
 * about half the server time of INSERT ... SELECT FROM unnest
 * (bench/NOTES.md). COPY cannot run in a libpq pipeline, so a batch with new
 * intents sends its transaction as pipeline, COPY, pipeline (three round
 * trips instead of one) on the one connection, in the one transaction. */

/* The COPY's columns, in the order cb_intent writes them. */
#define INTENT_COPY_SQL                                                                            \
    "COPY intents (intent_seq, event_id, user_id, partition, kafka_offset, quantity, section, "    \
    "max_price_cents, adjacent, state, reason, reservation_id, accepted_at) "                      \
    "FROM STDIN (FORMAT binary)"
#define INTENT_COPY_NCOLS 13

/* PostgreSQL's timestamp epoch (2000-01-01T00:00:00Z) in Unix milliseconds. */
#define PG_EPOCH_UNIX_MS 946684800000LL

static void cb_put(wk_copybuf *c, const void *p, size_t n)
{
    if (c->oom)
        return;
    if (ONS_VEC_RESERVE(c->b, c->cap, c->len + n, 65536)) {
        c->oom = 1;
        return;
    }
    memcpy(c->b + c->len, p, n);
    c->len += n;
}

static void cb_be(wk_copybuf *c, uint64_t v, int bytes)
{
    unsigned char t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    cb_put(c, t, (size_t)bytes);
}

/* Field writers: a 4-byte length (-1 = NULL), then the value in network order. */
static void cb_null(wk_copybuf *c)
{
    cb_be(c, 0xffffffffu, 4);
}

static void cb_i64(wk_copybuf *c, int64_t v)
{
    cb_be(c, 8, 4);
    cb_be(c, (uint64_t)v, 8);
}

static void cb_i32(wk_copybuf *c, int32_t v)
{
    cb_be(c, 4, 4);
    cb_be(c, (uint32_t)v, 4);
}

static void cb_bool(wk_copybuf *c, int v)
{
    cb_be(c, 1, 4);
    cb_be(c, v ? 1 : 0, 1);
}

/* Text (UTF-8 as received); NULL and, with empty_null, "" are NULL. */
static void cb_text(wk_copybuf *c, const char *s, int empty_null)
{
    if (!s || (empty_null && !s[0])) {
        cb_null(c);
        return;
    }
    size_t n = strlen(s);
    cb_be(c, (uint32_t)n, 4);
    cb_put(c, s, n);
}

/* One new intent as a COPY tuple: the columns of INTENT_COPY_SQL, the
 * values the INSERT ... unnest() it replaces wrote. */
static void cb_intent(wk_copybuf *c, const wk_fx_intent *r)
{
    cb_be(c, INTENT_COPY_NCOLS, 2);
    cb_i64(c, r->seq);
    cb_i64(c, r->event_id);
    cb_i64(c, r->user_id);
    cb_i32(c, r->partition);
    cb_i64(c, r->offset);
    cb_i32(c, r->qty);
    cb_text(c, r->section, 1);
    if (r->max_price)
        cb_i64(c, r->max_price);
    else
        cb_null(c);
    cb_bool(c, r->adjacent);
    cb_text(c, q_intent_state_name(r->state), 0);
    cb_text(c, q_reason_name(r->reason), 0);
    if (r->res_state != Q_RES_NONE)
        cb_i64(c, r->seq); /* a reservation is named by its intent's seq */
    else
        cb_null(c);
    /* timestamptz: microseconds since PostgreSQL's epoch; a millisecond is
     * exact in it, as it was through to_timestamp(ms / 1000.0). */
    cb_i64(c, (r->accepted_ms - PG_EPOCH_UNIX_MS) * 1000);
}

int wk_store_intents_copy(const wk_fx *fx, wk_copybuf *c)
{
    static const unsigned char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
    int n = 0;
    c->len = 0;
    c->oom = 0;
    cb_put(c, sig, sizeof sig);
    cb_be(c, 0, 4); /* flags */
    cb_be(c, 0, 4); /* header extension length */
    for (size_t i = 0; i < fx->nintents; i++) {
        if (!fx->intents[i].is_new)
            continue;
        cb_intent(c, &fx->intents[i]);
        n++;
    }
    cb_be(c, 0xffff, 2); /* trailer: a field count of -1 */
    return c->oom ? ONS_ENOMEM : n;
}

/* Sends c as the COPY of the new intents and waits for its outcome: 0, or
 * ONS_EDB (logged; the transaction is then aborted). */
static int copy_intents(wk_store *st, const wk_copybuf *c)
{
    PGresult *r = PQexec(st->conn, INTENT_COPY_SQL);
    if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
        ons_log_error("postgres copy intents: %s",
                      r ? PQresultErrorMessage(r) : PQerrorMessage(st->conn));
        PQclear(r);
        return ONS_EDB;
    }
    PQclear(r);
    int rc = 0;
    /* In 64 KiB pieces: libpq copies what it cannot send at once. */
    for (size_t off = 0; off < c->len && rc == 0; off += 65536) {
        size_t n = c->len - off < 65536 ? c->len - off : 65536;
        if (PQputCopyData(st->conn, (const char *)c->b + off, (int)n) != 1)
            rc = ONS_EDB;
    }
    if (PQputCopyEnd(st->conn, rc ? "sending the rows failed" : NULL) != 1)
        rc = ONS_EDB;
    if (rc)
        ons_log_error("postgres copy intents: %s", PQerrorMessage(st->conn));
    while ((r = PQgetResult(st->conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0) {
            ons_log_error("postgres copy intents: %s", PQresultErrorMessage(r));
            rc = ONS_EDB;
        }
        PQclear(r);
    }
    return rc;
}

/* The database seat numbers of r's seats (its inventory slots mapped
 * through the event's inventory) as an int[] literal ("{12,13}"), for
 * reservations.seat_nos (migration 0018): the poll that reads a
 * reservation from PostgreSQL finds its seats by the primary key. */
static void seat_nos_literal(const wk_fx_intent *r, char *buf, size_t cap)
{
    size_t len = 0;
    buf[len++] = '{';
    for (int k = 0; k < r->nseats && len + 13 < cap; k++)
        len += (size_t)snprintf(buf + len, cap - len, k ? ",%" PRId32 : "%" PRId32,
                                r->ev->inv.seat_no[r->seats[k]]);
    snprintf(buf + len, cap - len, "}");
}

static int write_reservations(wk_store *st, const wk_fx *fx, ons_pgarr *a)
{
    int rc, any = 0;
    char nos[Q_MAX_SEATS * 12 + 3];
    ons_pgarrs_reset(a, 9);
    for (size_t i = 0; i < fx->nintents; i++) {
        const wk_fx_intent *r = &fx->intents[i];
        if (!r->res_new)
            continue;
        any = 1;
        ons_pgarr_int(&a[0], r->seq);
        ons_pgarr_int(&a[1], r->event_id);
        ons_pgarr_int(&a[2], r->user_id);
        ons_pgarr_text(&a[3], q_res_state_name(r->res_state));
        ons_pgarr_int(&a[4], r->nseats);
        ons_pgarr_int(&a[5], r->total_cents);
        ons_pgarr_text(&a[6], r->ev->currency);
        ons_pgarr_int(&a[7], r->expires_ms);
        seat_nos_literal(r, nos, sizeof nos);
        ons_pgarr_text(&a[8], nos);
    }
    if (any &&
        (rc = exec_arrays(st, "insert reservations",
                          "INSERT INTO reservations (reservation_id, event_id, user_id, state, "
                          "seat_count, total_cents, currency, expires_at, seat_nos) "
                          "SELECT u.rid, u.ev, u.usr, u.state, u.n, u.total, u.cur, "
                          "to_timestamp(u.exp / 1000.0), u.nos::int[] FROM unnest($1::bigint[], "
                          "$2::bigint[], $3::bigint[], $4::text[], $5::int[], $6::bigint[], "
                          "$7::text[], $8::bigint[], $9::text[]) "
                          "AS u(rid, ev, usr, state, n, total, cur, exp, nos)",
                          a, 9)) != 0)
        return rc;

    any = 0;
    ons_pgarrs_reset(a, 2);
    for (size_t i = 0; i < fx->nintents; i++) {
        const wk_fx_intent *r = &fx->intents[i];
        if (r->res_new || !r->res_changed || r->res_state == Q_RES_NONE)
            continue;
        any = 1;
        ons_pgarr_int(&a[0], r->seq);
        ons_pgarr_text(&a[1], q_res_state_name(r->res_state));
    }
    if (any && (rc = exec_arrays(st, "update reservations",
                                 "UPDATE reservations r SET state = u.state, updated_at = now() "
                                 "FROM unnest($1::bigint[], $2::text[]) AS u(rid, state) "
                                 "WHERE r.reservation_id = u.rid",
                                 a, 2)) != 0)
        return rc;
    return 0;
}

static int seat_cmp(const void *a, const void *b)
{
    const wk_fx_seat *x = *(const wk_fx_seat *const *)a, *y = *(const wk_fx_seat *const *)b;
    if (x->event_id != y->event_id)
        return x->event_id < y->event_id ? -1 : 1;
    return (x->seat_no > y->seat_no) - (x->seat_no < y->seat_no);
}

/* Writes the seats this batch changed, in key order: neighbouring seats
 * share index and heap pages. */
static int write_seats(wk_store *st, const wk_fx *fx, ons_pgarr *a)
{
    if (fx->nseats == 0)
        return 0;
    const wk_fx_seat **order = malloc(fx->nseats * sizeof *order);
    if (!order)
        return ONS_ENOMEM;
    for (size_t i = 0; i < fx->nseats; i++)
        order[i] = &fx->seats[i];
    qsort(order, fx->nseats, sizeof *order, seat_cmp);
    ons_pgarrs_reset(a, 4);
    for (size_t i = 0; i < fx->nseats; i++) {
        const wk_fx_seat *s = order[i];
        ons_pgarr_int(&a[0], s->event_id);
        ons_pgarr_int(&a[1], s->seat_no);
        ons_pgarr_text(&a[2], q_seat_state_name(s->state));
        if (s->reservation_id >= 0)
            ons_pgarr_int(&a[3], s->reservation_id);
        else
            ons_pgarr_null(&a[3]);
    }
    free(order);
    return exec_arrays(st, "update seats",
                       "UPDATE seats s SET status = u.st, reservation_id = u.rid "
                       "FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[]) "
                       "AS u(ev, no, st, rid) WHERE s.event_id = u.ev AND s.seat_no = u.no",
                       a, 4);
}

/* Writes the sale statuses this batch changed. */
static int write_event_statuses(wk_store *st, const wk_fx *fx, ons_pgarr *a)
{
    int any = 0;
    ons_pgarrs_reset(a, 2);
    for (size_t i = 0; i < fx->nevents; i++) {
        const wk_event *ev = fx->events[i];
        if (!ev->status_dirty)
            continue;
        any = 1;
        ons_pgarr_int(&a[0], ev->event_id);
        ons_pgarr_text(&a[1], q_event_status_name(ev->status));
    }
    return any ? exec_arrays(st, "update events",
                             "UPDATE events e SET status = u.st FROM unnest($1::bigint[], "
                             "$2::text[]) AS u(ev, st) WHERE e.event_id = u.ev",
                             a, 2)
               : 0;
}

/* Writes the admission caps a record changed (docs/fairness.md); 0 = none. */
static int write_admission(wk_store *st, const wk_fx *fx, ons_pgarr *a)
{
    int any = 0;
    ons_pgarrs_reset(a, 3);
    for (size_t i = 0; i < fx->nevents; i++) {
        const wk_event *ev = fx->events[i];
        if (!ev->admission_dirty)
            continue;
        any = 1;
        ons_pgarr_int(&a[0], ev->event_id);
        ons_pgarr_int(&a[1], ev->max_active_holds);
        ons_pgarr_int(&a[2], ev->admissions_per_minute);
    }
    return any ? exec_arrays(st, "update admission",
                             "UPDATE events e SET max_active_holds = nullif(u.mh, 0), "
                             "admissions_per_minute = nullif(u.apm, 0) "
                             "FROM unnest($1::bigint[], $2::int[], $3::int[]) "
                             "AS u(ev, mh, apm) WHERE e.event_id = u.ev",
                             a, 3)
               : 0;
}

static int write_seats_events(wk_store *st, const wk_fx *fx, ons_pgarr *a)
{
    int rc;
    if ((rc = write_seats(st, fx, a)) != 0 || (rc = write_event_statuses(st, fx, a)) != 0)
        return rc;
    return write_admission(st, fx, a);
}

/* Tombstones: new ones inserted, spent ones (below the intents cursor)
 * deleted, both only when the batch has any. */
static int write_tombstones(wk_store *st, const wk_part *p, ons_pgarr *a)
{
    int rc;
    const wk_fx *fx = &p->fx;
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", (int)p->partition);
    snprintf(off, sizeof off, "%" PRId64, p->next_offset);
    if (fx->ntombs > 0) {
        ons_pgarrs_reset(a, 3);
        for (size_t i = 0; i < fx->ntombs; i++) {
            ons_pgarr_int(&a[0], p->partition);
            ons_pgarr_int(&a[1], fx->tombs[i].offset);
            ons_pgarr_int(&a[2], fx->tombs[i].user_id);
        }
        if ((rc = exec_arrays(st, "insert tombstones",
                              "INSERT INTO intent_tombstones (partition, kafka_offset, user_id) "
                              "SELECT * FROM unnest($1::int[], $2::bigint[], $3::bigint[]) "
                              "ON CONFLICT (partition, kafka_offset) DO UPDATE "
                              "SET user_id = EXCLUDED.user_id",
                              a, 3)) != 0)
            return rc;
    }
    if (fx->tombs_spent) {
        const char *v[] = {part, off};
        if ((rc = pl_send(st, "delete tombstones",
                          "DELETE FROM intent_tombstones WHERE partition = $1 "
                          "AND kafka_offset < $2",
                          2, v)) != 0)
            return rc;
    }
    return 0;
}

/* Queues the fence over both lanes' cursors; pl_end checks it touched
 * exactly one row. One UPDATE, one transaction: the two cursors move
 * together with the effects or not at all. */
static int write_fence(wk_store *st, const wk_part *p)
{
    char part[16], off[24], ep[24], coff[24];
    snprintf(part, sizeof part, "%d", (int)p->partition);
    snprintf(off, sizeof off, "%" PRId64, p->next_offset);
    snprintf(ep, sizeof ep, "%" PRId64, p->epoch);
    snprintf(coff, sizeof coff, "%" PRId64, p->ctl_next_offset);
    const char *v[] = {part, off, coff, ep};
    st->pl_fence = st->pl_n;
    return st->skip_epoch_check
               ? pl_send(st, "fence (epoch check OFF)",
                         "UPDATE partition_owner SET next_offset = $2, control_next_offset = $3 "
                         "WHERE partition = $1",
                         3, v)
               : pl_send(st, "fence",
                         "UPDATE partition_owner SET next_offset = $2, control_next_offset = $3 "
                         "WHERE partition = $1 AND epoch = $4",
                         4, v);
}

int wk_store_commit(wk_store *st, wk_part *p, double *latency_s)
{
    if (st->commit_delay_ms > 0) {
        ons_log_info("debug: delaying commit of partition %d by %d ms", (int)p->partition,
                     st->commit_delay_ms);
        struct timespec d = {st->commit_delay_ms / 1000,
                             (long)(st->commit_delay_ms % 1000) * 1000000};
        while (nanosleep(&d, &d) != 0)
            ;
    }
    double t0 = ons_mono_s();
    *latency_s = 0;
    if (ensure_conn(st))
        return ONS_EDB;
    ons_pgarr a[13];
    memset(a, 0, sizeof a);
    /* The new intents go as one binary COPY (above), built before the
     * transaction opens. */
    int nnew = wk_store_intents_copy(&p->fx, &st->copy);
    if (nnew < 0)
        return nnew;
    /* Every statement joins a small unnest() against a big table by its
     * primary key: index nested loops. Fresh tables have no statistics and
     * the planner would hash the whole seats table instead (measured: 600 ms
     * vs 30 ms for 5,000 seats of a 1,000,000-seat event). */
    int rc = pl_begin(st);
    if (rc)
        goto out;
    /* Existing intents are updated before the new ones are copied: one
     * that ends here frees its user for a new active intent
     * (intents_one_active). */
    if ((rc = pl_send(st, "begin", "BEGIN", 0, NULL)) != 0 ||
        (rc = pl_send(st, "set", "SET LOCAL enable_hashjoin = off", 0, NULL)) != 0 ||
        (rc = pl_send(st, "set", "SET LOCAL enable_mergejoin = off", 0, NULL)) != 0 ||
        (rc = update_intents(st, &p->fx, a)) != 0 ||
        (nnew > 0 && ((rc = pl_end(st)) != 0 || (rc = copy_intents(st, &st->copy)) != 0 ||
                      (rc = pl_begin(st)) != 0)) ||
        (rc = write_reservations(st, &p->fx, a)) != 0 ||
        (rc = write_seats_events(st, &p->fx, a)) != 0 || (rc = write_tombstones(st, p, a)) != 0 ||
        (rc = write_fence(st, p)) != 0) {
        if (PQpipelineStatus(st->conn) != PQ_PIPELINE_OFF)
            pl_end(st);
        PQclear(PQexec(st->conn, "ROLLBACK"));
        goto out;
    }
    if ((rc = pl_end(st)) != 0 || (rc = wk_co_store_write(st->conn, p)) != 0) {
        PQclear(PQexec(st->conn, "ROLLBACK"));
        goto out;
    }
    rc = simple(st, "COMMIT");
out:
    ons_pgarrs_fini(a, 13);
    *latency_s = ons_mono_s() - t0;
    return rc;
}
