/*
 * admin_store.h - the PostgreSQL reads of the operators' queue view
 * (GET /v1/admin/queues, routes_ops.c): partition owners and per-event
 * seat and intent counts. Typed rows, ONS_E... codes; no PGresult leaves
 * this module. Job threads only; besides ONS_ENOMEM each may return
 * ONS_EUNAVAIL (no connection) or ONS_EDB (failed or unparsable; logged).
 */
#ifndef ONSALE_INGRESS_ADMIN_STORE_H
#define ONSALE_INGRESS_ADMIN_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ingress/pool.h"

/* A row of partition_owner. */
typedef struct ing_partition_owner {
    int partition;
    int has_owner;
    char owner[128];
    int64_t epoch, next_offset;
} ing_partition_owner;

/* Every row of partition_owner, by partition. *out is heap (caller frees;
 * NULL when *n is 0). */
int ing_partition_owners(ing_worker *w, ing_partition_owner **out, size_t *n);

/* An event whose sale is not over, and its counts. */
typedef struct ing_event_counts {
    int64_t event_id;
    char status[16];
    int64_t available, held, sold, waiting;          /* -1 until counted */
    int64_t max_active_holds, admissions_per_minute; /* 0 = no cap */
    int64_t active_holds;                            /* -1 until counted */
} ing_event_counts;

/* The newest limit events that are scheduled, on sale, paused or sold out,
 * event id descending, with their caps and every count -1: one read of
 * events, nothing counted (a count over a big event's seats takes seconds,
 * and the owner publishes its counters). *out is heap (caller frees; NULL
 * when *n is 0). */
int ing_live_events(ing_worker *w, int limit, ing_event_counts **out, size_t *n);

/* Counts the committed rows of the n events in ev whose available is -1:
 * seats by status, waiting intents, intents holding seats. One statement
 * for all of them; the others are left as they are. */
int ing_event_counts_fill(ing_worker *w, ing_event_counts *ev, size_t n);

#endif
