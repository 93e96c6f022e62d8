/*
 * audit_store.h - the PostgreSQL side of the invariant audit and of
 * verify-draw (audit.c): one function per query, typed rows out, ONS_E...
 * codes (common/err.h). No PGresult leaves this module.
 *
 * An adm_store is one connection (common/pg) and the audit's scope: one
 * event, or every event. Every function returns 0 or ONS_EDB (the statement
 * failed or a field did not read; logged), ONS_ENOMEM, besides its own
 * codes. Blocking; one thread at a time.
 */
#ifndef ONSALE_ADMIN_AUDIT_STORE_H
#define ONSALE_ADMIN_AUDIT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "admin/audit.h"
#include "admin/audit_rules.h"
#include "common/pg.h"
#include "queue/draw.h"

typedef struct adm_store {
    ons_pg pg;
    char event_buf[24];
    const char *event_param; /* NULL: every event */
} adm_store;

/* Connects to dsn (app: the session's application_name) for event_id's
 * audit (0: every event). 0, ONS_EINVAL, ONS_ENOMEM or ONS_EDB (cannot
 * connect). adm_store_close() in every case. */
int adm_store_open(adm_store *s, const char *dsn, const char *app, int64_t event_id);
void adm_store_close(adm_store *s);

/* The invariants PostgreSQL counts by itself, one query each (audit.c's
 * header says what each counts). */
enum adm_count_query {
    ADM_COUNT_SEATS_LIVE,
    ADM_COUNT_SEATS_COUNT,
    ADM_COUNT_TICKETS_UNIQUE,
    ADM_COUNT_CAPACITY,
    ADM_COUNT_INTENTS,
    ADM_NCOUNT
};

/* What a counting query answers: rows examined, rows breaking the rule, and
 * up to three of them ("" none; cut to fit). */
typedef struct adm_count {
    long long checked, violations;
    char sample[ADM_AUDIT_DETAIL_MAX];
} adm_count;

/* Runs counting query q (enum adm_count_query). */
int adm_store_count(adm_store *s, int q, adm_count *out);

/* The charges invariant: per order, the succeeded charges against the valid
 * tickets' prices plus the succeeded refunds, and the sums over all orders
 * (cents). */
typedef struct adm_charges {
    adm_count orders;
    long long charged, ticketed, refunded;
} adm_charges;

int adm_store_charges(adm_store *s, adm_charges *out);

/* Every release of the scope's events, sorted by (event, t): *out is a heap
 * array the caller frees (NULL when none), *n its length. */
int adm_store_releases(adm_store *s, adm_release **out, size_t *n);

/* Every intent of the scope as the FIFO walk sees it: *out is a heap array
 * the caller frees (NULL when none), *n its length. */
int adm_store_fifo_rows(adm_store *s, adm_fifo_row **out, size_t *n);

/* The partition owners' cursors (partition_owner), in partition order. */
#define ADM_MAX_PARTITIONS 4096
typedef struct adm_offsets {
    int32_t partition[ADM_MAX_PARTITIONS];
    int64_t next[ADM_MAX_PARTITIONS][2]; /* [lane]: next_offset, control_next_offset */
    int n;
} adm_offsets;

/* Reads the cursors (the first ADM_MAX_PARTITIONS). */
int adm_store_offsets(adm_store *s, adm_offsets *out);

/* An intent's state by its seq; state is a queue/states.h intent state, -1
 * when the stored text is none of them (text keeps it). */
typedef struct adm_intent_state {
    int64_t seq;
    int state;
    char text[16];
} adm_intent_state;

/* The most seqs adm_store_intent_states() takes at once. */
#define ADM_STATES_MAX 10000

/* The states of the intents among seqs[0..n) that exist (n at most
 * ADM_STATES_MAX; any order): *out a heap array the caller frees (NULL
 * when none), *nout its length. ONS_EINVAL when n is too large. */
int adm_store_intent_states(adm_store *s, const int64_t *seqs, size_t n, adm_intent_state **out,
                            size_t *nout);

/* Reads event_id's draw. ONS_ENOTFOUND: no such event. */
int adm_store_draw(adm_store *s, int64_t event_id, q_draw_published *out);

/* event_id's pre-queued intents (Q_DRAW_ENTRANTS_SQL): *out a heap array
 * the caller frees (NULL when none), *n its length. */
int adm_store_prequeued(adm_store *s, int64_t event_id, q_draw_entrant **out, size_t *n);

#endif
