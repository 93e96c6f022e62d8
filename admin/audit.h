/*
 * audit.h - the invariant audit: checks Onsale's promises after (or during)
 * a sale from PostgreSQL, Kafka and a simulator log, and reports each with
 * counts. Used by `onsalectl audit` and at the end of every `onsale-sim` run.
 *
 * The invariants, each an adm_check row in the result (exact rules in
 * audit.c's header comment):
 *   seats_live        every taken seat names a live reservation in the
 *                     matching state (held/held, paying/paying, sold/purchased)
 *   seats_count       every held or paying reservation holds exactly
 *                     seat_count seats (a purchased one at most seat_count),
 *                     all of them among the seats it names (seat_nos)
 *   tickets_unique    no seat has two valid tickets; valid tickets sit on
 *                     sold seats
 *   capacity          per event: sold <= capacity, taken <= capacity, one
 *                     seat row per sellable seat
 *   intents_consistent every processed intent agrees with its reservation
 *   kafka_applied     every message in the topic was applied (next_offset
 *                     reached the high watermark), waiting up to wait_s
 *   accepted_reached  every intent the simulator saw accepted (202) exists in
 *                     PostgreSQL in a state reachable from the last one the
 *                     fan saw (sim log)
 *   positions         no fan's reported position ever increased (sim log)
 *   fifo              grants in offset order within each event and request
 *                     class (quantity, section, price ceiling, adjacency),
 *                     pre-queued intents first in draw order (queue/draw.h;
 *                     needs ids_secret, else the check fails)
 *   charges           per order: succeeded charges = valid tickets + refunds;
 *                     at most one succeeded charge
 *
 * The simulator log (sim_log) has one line per answer a fan got about its
 * intent - the 202 of its join and every poll:
 *     fan <TAB> intent_id <TAB> t_ms <TAB> state <TAB> position
 * with position "-" when the answer carried none; lines starting with '#'
 * are comments. intent_id is the 32-hex public id; its first 16 hex digits
 * are intent_seq (docs/pipeline.md).
 *
 * Blocking (libpq, librdkafka metadata calls); run it on its own thread or
 * process. Not thread-safe across calls sharing an adm_audit_result.
 */
#ifndef ONSALE_ADMIN_AUDIT_H
#define ONSALE_ADMIN_AUDIT_H

#include "queue/kconf.h"

#include <stdint.h>
#include <stdio.h>

#define ADM_AUDIT_MAX_CHECKS 16
#define ADM_AUDIT_DETAIL_MAX 256

typedef struct adm_audit_opts {
    const char *pg_dsn;        /* required */
    const char *kafka_brokers; /* NULL or "": skip the Kafka check */
    q_ksec kafka_sec;          /* TLS to the brokers */
    const char *kafka_topic;
    const char *kafka_control_topic; /* NULL or "": "<kafka_topic>.control" */
    int64_t event_id;                /* 0: every event */
    const char *sim_log;             /* NULL: skip the sim-log checks */
    int wait_s;                      /* how long kafka_applied waits for workers to catch up */
    long long max_log_intents;       /* bound on intents read from the sim log */
    const char *ids_secret;          /* names intents for the draw order (fifo); NULL: cannot */
} adm_audit_opts;

enum adm_check_status { ADM_CHECK_OK, ADM_CHECK_FAIL, ADM_CHECK_SKIP };

typedef struct adm_check {
    const char *name; /* static: "seats_live" */
    enum adm_check_status status;
    long long checked;    /* rows/intents/orders examined */
    long long violations; /* how many broke the rule */
    char detail[ADM_AUDIT_DETAIL_MAX];
} adm_check;

typedef struct adm_audit_result {
    adm_check checks[ADM_AUDIT_MAX_CHECKS];
    int nchecks;
    long long violations; /* sum over checks */
} adm_audit_result;

/* Runs every check, printing one line per invariant to out (NULL: silent),
 * and fills *res. Returns 0 when the audit ran (res->violations says whether
 * it passed), ONS_EDB (PostgreSQL unreachable or a query failed), ONS_EIO
 * (sim log unreadable), ONS_EPARSE (malformed sim log), ONS_EFULL (sim log
 * over max_log_intents) or ONS_ENOMEM. */
int adm_audit_run(const adm_audit_opts *o, FILE *out, adm_audit_result *res);

/* Writes res as a JSON array of {name, status, checked, violations, detail}
 * to out (no trailing newline). */
void adm_audit_write_json(const adm_audit_result *res, FILE *out);

/* onsalectl verify-draw: recomputes event_id's draw from PostgreSQL and
 * ids_secret: the seed matches the commitment (hex SHA-256), the draw order
 * (ascending hex HMAC-SHA256(seed, intent_id) over the pre-queued intents,
 * as GET /v1/events/{id}/draw lists them), and the event's audit (its fifo
 * check follows that order). Writes a report to out; *passed = 1 when all
 * hold. Returns 0, ONS_ENOTFOUND (no such event) or ONS_EDB/ONS_ENOMEM. */
int adm_verify_draw(const char *pg_dsn, const char *ids_secret, int64_t event_id, FILE *out,
                    int *passed);

#endif
