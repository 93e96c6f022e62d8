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

/* The counts of an event whose sale is not over. */
typedef struct ing_event_counts {
    int64_t event_id;
    char status[16];
    int64_t available, held, sold, waiting;          /* from the committed rows */
    int64_t max_active_holds, admissions_per_minute; /* 0 = no cap */
    int64_t active_holds;
} ing_event_counts;

/* The newest limit events that are scheduled, on sale, paused or sold out,
 * event id descending. *out is heap (caller frees; NULL when *n is 0). */
int ing_live_event_counts(ing_worker *w, int limit, ing_event_counts **out, size_t *n);

#endif
