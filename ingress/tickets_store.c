/* tickets_store.c - gate reads and the one admitting UPDATE; see
 * tickets_store.h. */
#include "ingress/tickets_store.h"
#include "ingress/pg_row.h"
#include "ingress/scanner_store.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The admitting UPDATE's test that scanner $4 is assigned to the venue of
 * the ticket's event or to the event: an unassign committed before the
 * UPDATE stops it. */
#define SCANNER_ASSIGNED_SQL                                                                       \
    ING_SCANNER_ASSIGNED_SQL("(SELECT e.venue_id FROM events e WHERE e.event_id = t.event_id)",    \
                             "t.event_id", "$4")

/* The gate read of ticket $1: claim bound $2 s, scanner $3 (read_gate's
 * columns). */
// clang-format off
#define GATE_SQL                                                                                   \
    "SELECT t.event_id, t.owner_id, t.code_version, t.status, "                                    \
    "coalesce(" ING_PG_RFC3339("t.admitted_at") ", ''), e.name, "                                  \
    "s.name || ' row ' || st.row_no || ' seat ' || st.seat_in_row, "                               \
    "coalesce(t.change_claimed_at > now() - make_interval(secs => $2::bigint), false), "           \
    "coalesce((extract(epoch FROM now() - t.change_claimed_at) * 1000)::bigint, -1), "             \
    ING_SCANNER_ASSIGNED_SQL("e.venue_id", "t.event_id", "$3") " "                                               \
    "FROM tickets t JOIN events e ON e.event_id = t.event_id "                                     \
    "JOIN seats st ON st.event_id = t.event_id AND st.seat_no = t.seat_no "                        \
    "JOIN sections s ON s.section_id = st.section_id WHERE t.ticket_id = $1"
// clang-format on

/* PGresult of a statement that returns rows, or NULL (logged) when it
 * failed; the caller PQclears. */
static PGresult *rows(ing_worker *w, const char *what, const char *sql, int n, const char *const *v)
{
    PGresult *res = ing_worker_query(w, sql, n, v);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
        return res;
    if (res)
        ons_log_warn("%s: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return NULL;
}

static int read_gate(const PGresult *res, int64_t ticket_id, ing_ticket_gate *out)
{
    memset(out, 0, sizeof *out);
    out->ticket_id = ticket_id;
    /* A row that does not parse is answered like a failed statement. */
    if (ing_pg_i64(res, 0, 0, &out->event_id) || ing_pg_i64(res, 0, 1, &out->owner_id) ||
        ing_pg_i64(res, 0, 2, &out->code_version))
        return ONS_EUNAVAIL;
    snprintf(out->status, sizeof out->status, "%s", PQgetvalue(res, 0, 3));
    snprintf(out->admitted_at, sizeof out->admitted_at, "%s", PQgetvalue(res, 0, 4));
    snprintf(out->event_name, sizeof out->event_name, "%s", PQgetvalue(res, 0, 5));
    snprintf(out->seat, sizeof out->seat, "%s", PQgetvalue(res, 0, 6));
    out->change_pending = PQgetvalue(res, 0, 7)[0] == 't';
    out->scanner_assigned = PQgetvalue(res, 0, 9)[0] == 't';
    return ing_pg_i64(res, 0, 8, &out->change_claim_age_ms) ? ONS_EUNAVAIL : 0;
}

int ing_tickets_gate(ing_worker *w, int64_t ticket_id, int64_t claim_timeout_s, int64_t scanner,
                     ing_ticket_gate *out)
{
    char tid[24], timeout[24], who[24];
    snprintf(tid, sizeof tid, "%" PRId64, ticket_id);
    snprintf(timeout, sizeof timeout, "%" PRId64, claim_timeout_s);
    snprintf(who, sizeof who, "%" PRId64, scanner);
    const char *v[] = {tid, timeout, who};
    PGresult *res = rows(w, "ticket gate", GATE_SQL, 3, v);
    if (!res)
        return ONS_EUNAVAIL;
    int rc = PQntuples(res) != 1 ? ONS_ENOTFOUND : read_gate(res, ticket_id, out);
    PQclear(res);
    return rc;
}

int ing_tickets_admit(ing_worker *w, int64_t ticket_id, int64_t code_version,
                      int64_t claim_timeout_s, int64_t scanner, int unchecked, char admitted_at[32])
{
    char tid[24], timeout[24], ver[24], who[24];
    snprintf(tid, sizeof tid, "%" PRId64, ticket_id);
    snprintf(timeout, sizeof timeout, "%" PRId64, claim_timeout_s);
    snprintf(ver, sizeof ver, "%" PRId64, code_version);
    snprintf(who, sizeof who, "%" PRId64, scanner);
    const char *v[] = {tid, timeout, ver, who};
    PGresult *res =
        unchecked ? rows(w, "admit ticket (unchecked)",
                         "UPDATE tickets t SET admitted_at = now(), admitted_by = $4 "
                         "WHERE ticket_id = $1 AND $2::bigint IS NOT NULL AND $3::int IS NOT NULL "
                         "AND " SCANNER_ASSIGNED_SQL " RETURNING " ING_PG_RFC3339("admitted_at"),
                         4, v)
                  : rows(w, "admit ticket",
                         "UPDATE tickets t SET admitted_at = now(), admitted_by = $4 "
                         "WHERE ticket_id = $1 AND code_version = $3 AND status = 'valid' "
                         "AND admitted_at IS NULL AND (change_claimed_at IS NULL "
                         "OR change_claimed_at <= now() - make_interval(secs => $2::bigint)) "
                         "AND " SCANNER_ASSIGNED_SQL " RETURNING " ING_PG_RFC3339("admitted_at"),
                         4, v);
    if (!res)
        return ONS_EUNAVAIL;
    int rc = PQntuples(res) == 1 ? 0 : ONS_ECONFLICT;
    snprintf(admitted_at, 32, "%s", rc == 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return rc;
}
