/*
 * status.h - the Redis status store: the projection workers write after each
 * COMMIT and ingress reads to answer polls (key layout: docs/pipeline.md).
 *
 * One q_status owns one synchronous hiredis connection and must be used by
 * one thread at a time (give each thread its own). Every call has the
 * configured timeout; on a broken connection it reconnects on the next call.
 * Redis is a projection, never the truth: callers fall back to PostgreSQL on
 * ONS_EREDIS, and ONS_ENOTFOUND means "not in Redis", not "does not exist".
 */
#ifndef ONSALE_QUEUE_STATUS_H
#define ONSALE_QUEUE_STATUS_H

#include <stddef.h>
#include <stdint.h>

typedef struct q_status q_status;

typedef struct q_status_opts {
    const char *host;
    int port;
    const char *prefix; /* "onsale:" */
    int timeout_ms;
    int result_ttl_s; /* TTL of r:<seq> keys */
    /* After a call that waited out timeout_ms (a hung Redis), nothing is
     * sent for this long: the calls meanwhile fail at once (0: each call
     * tries, and waits, again). */
    int down_ms;
    /* DEBUG ONLY (debug.unversioned_results): a batch's results are plain
     * SETs, not compared with the stored version (the zombie test's
     * control). */
    int unversioned_results;
} q_status_opts;

/* Connects. *out is owned by the caller (q_status_free). The connection may
 * still be down: then calls return ONS_EREDIS until Redis is back. Returns 0
 * or ONS_ENOMEM. */
int q_status_new(const q_status_opts *o, q_status **out);
void q_status_free(q_status *s);

/* PING. 0 or ONS_EREDIS. */
int q_status_ping(q_status *s);

/* Commands s has sent to Redis so far (a script call is one; the scripts'
 * loading on each new connection is not counted): what a call costs
 * Redis, for tests and counters. */
unsigned long q_status_commands_sent(const q_status *s);

/* ---- worker side ---------------------------------------------------------- */

typedef struct q_status_result {
    int64_t intent_seq;
    int64_t event_id;
    int64_t user_id;
    const char *json; /* result document, docs/pipeline.md */
    int ended;        /* 1: terminal (or purchased): delete active:<event>:<user> */
    /* When ended: the key is deleted only while it names this intent, by
     * its public id (whose first 16 characters are hex16(intent_seq)) or by
     * its claim "pending:<accepted_ms>" (accepted_ms = the record's
     * sent_ms), never a later join's claim. */
    int64_t accepted_ms;
    /* The version of json (its last member, below): the write is compared
     * in Redis like a repair's (q_status_repair_results), so a deposed
     * owner's late write never replaces a newer state, nor lands once a
     * newer owner of the partition has written. */
    int64_t epoch, version;
} q_status_result;

typedef struct q_status_event {
    int64_t event_id;
    int64_t available, held, sold, waiting;
    int sold_out;
    /* Admission control (docs/fairness.md): holds now, and the caps (0 =
     * none). */
    int64_t holds_active, max_active_holds, admissions_per_minute;
    const char *status; /* the owner's sale status; NULL = leave as is */
    /* Free seats per section as "section_id:free,...", or NULL: the event
     * view's per-tier availability (q_status_event_view_get). */
    const char *sections;
} q_status_event;

/* How a partition's owner drains, as it publishes for the ETA
 * (docs/fairness.md "The ETA"). Two moments per batch: when the owner has
 * applied a batch's records in memory (applying = 1: the batch of intents
 * offsets [served, applying_end) and applying_ctl control records, applied
 * at served_at_ms, the owner's wall clock and those joins' left_queue_at,
 * is being committed), and after its commit and projection (applying = 0:
 * served is the cursor, served_at_ms the moment the batch that took it
 * there was applied, applying_ctl that batch's control records). Both
 * carry the owner's pace: a batch of n intents and c control records
 * takes batch_ms + n * record_ms + c * ctl_ms from its apply to the next
 * batch's (fitted over its recent batches; 0, 0 and 0 = not known yet),
 * the most records a batch takes (batch_max), and how long the next batch
 * collects records after its first when the last one was not full
 * (window_ms; 0 in a backlog), and how many control records the
 * partition's holds can still send (ctl_left: a checkout and a payment
 * result a hold, and as many for each intent its events' free seats may
 * still take; -1 unknown): the control lane goes first, but once an
 * event's seats are all held its checkouts run out, and the intents
 * behind them are applied at the intents' pace alone; and how many
 * control records were in the log, not yet applied, when it published
 * (ctl_queued; -1 unknown): the owner's next batches take them first, a
 * whole batch of them when there are as many (a crowd paying at once),
 * before any intent behind. Between batches (applying 0), when records
 * were waiting as it published, the owner polls its next batch at once:
 * that poll takes the intents up to applying_end (served when none were
 * waiting) and ends by polled_by_ms (its wall clock; 0 = no records were
 * waiting, the poll waits for the next one), and the batch polled takes
 * next_ms from its apply to the next (its forecast period); a record past
 * applying_end, once that poll is over, is in a batch after it. Stored as one value
 * ("drain" hash), so a
 * reader never pairs a cursor with another batch's moment. An older
 * owner's value has only the first six fields (applying -1: the ETA is
 * then counted from served_at_ms, q_status_drain_wait_ms), or eleven
 * (ctl_queued -1), or twelve (polled_by_ms 0). */
typedef struct q_status_drain {
    int64_t served, served_at_ms;
    double batch_ms, record_ms;
    int64_t batch_max;
    int64_t window_ms; /* the owner's last batch was not full: the next one collects this long */
    int64_t applying;  /* 1: a batch is being committed; 0: between batches; -1: not said */
    int64_t applying_end, applying_ctl;
    double ctl_ms;
    int64_t ctl_left;     /* control records still to come; -1 unknown */
    int64_t ctl_queued;   /* of them, in the log when published; -1 unknown */
    int64_t polled_by_ms; /* applying 0: the next batch's poll ends by then; 0 unknown */
    double next_ms;       /* applying 0: that batch's forecast period */
} q_status_drain;

/* The drain a reader has before any was published (served -1). */
#define Q_STATUS_DRAIN_UNKNOWN ((q_status_drain){-1, 0, 0, 0, 0, 0, -1, 0, 0, 0, -1, -1, 0, 0})

/* The wait, in ms from now_ms, until the owner reaches the intents
 * record at offset by its published drain d (docs/fairness.md "The
 * ETA"), or -1 when d does not say enough (no batch measured yet: the
 * caller estimates from the rate). Pure: the queued poll's hot path calls
 * it on a cached d. catch_up_ms bounds how long an owner that published
 * no moment of a batch (applying -1) is assumed to have kept draining. */
double q_status_drain_wait_ms(const q_status_drain *d, int64_t offset, int64_t now_ms,
                              int64_t catch_up_ms);

/* The cursors, rates and drains of n partitions (an owner's idle ones,
 * republished so they come back after a FLUSHALL) in one pipeline,
 * written out without waiting for the replies, as q_status_publish_nowait:
 * the caller waits at most for the previous pipeline's replies, not a
 * round trip per partition (a busy Redis made those the owner's
 * hiccup: its next batch waited for them). Returns 0 or ONS_EREDIS. */
int q_status_publish_cursors_nowait(q_status *s, size_t n, const int32_t *partitions,
                                    const int64_t *served, const double *rate,
                                    const q_status_drain *drains);

/* Publishes only the drain of partition (the moment a batch was applied,
 * before its commit), written out without waiting for the reply, like
 * q_status_publish_nowait. Returns 0 or ONS_EREDIS. */
int q_status_publish_drain_nowait(q_status *s, int32_t partition, const q_status_drain *drain);

/* Publishes one committed batch in ONE pipeline: served cursor and rate of
 * the partition (rate: records per second over windows of a second, the
 * "rate" hash), its drain (NULL: not written), each result (written with
 * TTL by the repair's compare-and-set script, one call per 512 results:
 * left as it is when Redis holds a newer version of it or a newer owner
 * of the partition has written, q_status_results_refused; DEL of the
 * active key when ended), each event's counters. Returns 0 or ONS_EREDIS
 * (also when Redis refused a result alone: a repair then writes it). */
int q_status_publish(q_status *s, int32_t partition, int64_t served, double rate,
                     const q_status_drain *drain, const q_status_result *results, size_t nresults,
                     const q_status_event *events, size_t nevents);

/* Result writes of the batches published so far that Redis left alone
 * because it held a newer version of the result, or a newer owner of the
 * partition had written (this process lost the partition while its
 * writes were in flight): counted as their replies are read. */
unsigned long q_status_results_refused(const q_status *s);

/* Deletes the results r:<seq> of n intents (pipelined, one round trip):
 * a reader then answers them from PostgreSQL. The worker's repair after
 * Redis may have lost or missed its writes (workers/project.h). Returns 0
 * or ONS_EREDIS. */
int q_status_drop_results(q_status *s, const int64_t *seqs, size_t n);

/* A result document's version is its last member, ',"v":[epoch,version]}'
 * (docs/pipeline.md): the owner's epoch of the partition, then a number
 * that grows with each of its projections. A later state of an intent
 * always has a greater (epoch, version), compared in that order. */

/* One result in q_status_repair_results. */
typedef struct q_status_repair {
    int64_t intent_seq;
    int32_t partition;      /* the intent's (its owner's epoch is per partition) */
    int64_t epoch, version; /* the version of json (or of the state dropped) */
    const char *json;       /* the result to write again; NULL: drop the stored one */
    int outcome;            /* out: 1 written, 2 dropped, 3 nothing to drop, 0 left
                             * (Redis holds a newer one, or a newer owner of the
                             * partition has repaired), 4 failed (Redis refused
                             * it: a key of another type, over maxmemory), -1 not
                             * answered */
} q_status_repair;

/* The worker's repair after a failed projection (workers/project.h):
 * writes each item's result again, or drops it (NULL json), unless Redis
 * holds a newer version of it, compared in Redis (one script call per 512
 * items, a round trip each): a repair never puts back a state that is
 * over. A write whose epoch is older than the newest one any repair has
 * sent for its partition (kept in Redis, <prefix>repair_epoch) is refused
 * too, whatever the key holds: a newer owner's drop, or an expired or
 * evicted key, leaves no version to compare with. Items are handled in
 * order. Returns 0 when Redis answered every item (items it refused alone
 * say outcome 4: done, not retried), ONS_EUNAVAIL when Redis refused a
 * whole script call on a live connection (BUSY, a script error, OOM: its
 * items say -1, none of them done; to retry later) or ONS_EREDIS (the
 * connection failed: the items not answered say outcome -1). */
int q_status_repair_results(q_status *s, q_status_repair *items, size_t n);

/* The newest owner's epoch of partition any result write has sent
 * (<prefix>repair_epoch, above) into *epoch, -1 when none. A claim takes
 * an epoch past it (workers/store.h): the epochs PostgreSQL hands out only
 * grow, so a lower one means PostgreSQL was restored from an older backup
 * under this Redis, whose results would refuse every write of the new
 * owners. Returns 0 or ONS_EREDIS. */
int q_status_repair_epoch_get(q_status *s, int32_t partition, int64_t *epoch);

/* The same pipeline, written out to Redis (which applies it in order, as
 * soon as it reads it) without waiting for its replies: they are read by
 * the next call on s, so the caller's next work overlaps Redis's. Returns
 * 0 or ONS_EREDIS: this pipeline not sent (no connection, a failed write),
 * or the previous one's replies held an error (the caller counts one
 * failed projection either way). */
int q_status_publish_nowait(q_status *s, int32_t partition, int64_t served, double rate,
                            const q_status_drain *drain, const q_status_result *results,
                            size_t nresults, const q_status_event *events, size_t nevents);

/* ---- ingress side ---------------------------------------------------------- */

/* Reads every partition's served cursor and rate in one round trip into
 * served[0..n) and rate[0..n), and when drain is not NULL its drain into
 * drain[0..n); partitions with no value get -1, 0 and an all-zero drain
 * (served -1). Returns 0 or ONS_EREDIS. */
int q_status_read_cursors(q_status *s, int64_t *served, double *rate, q_status_drain *drain, int n);

/* Reads r:<seq>. *json is a heap string the caller frees. Returns 0,
 * ONS_ENOTFOUND or ONS_EREDIS. */
int q_status_get_result(q_status *s, int64_t seq, char **json);
/* q_status_get_result of n intents in ONE pipelined round trip (one MGET):
 * json[i] is the document (heap, caller frees) or NULL when r:<seq[i]> is
 * missing. Returns 0, ONS_EREDIS (every json[i] NULL) or ONS_ENOMEM. */
int q_status_get_results(q_status *s, const int64_t *seqs, size_t n, char **json);

/* The active key active:<event>:<user> holds one live place per fan and
 * event: "pending:<ms>" while a join is being produced (ms = its record's
 * sent_ms), then the intent's public id. Every write is conditional, so a
 * late writer never resurrects a key the worker already ended.
 *
 * Claims it for a join in ONE round trip: sets token when the key is
 * absent, holds a "pending:" claim older than stale_ms, or holds own_old
 * (an earlier claim of this same request; NULL: none). Returns 0 (claimed),
 * ONS_EEXIST (current holds the value, NUL-terminated, truncated to cap) or
 * ONS_EREDIS. */
int q_status_claim_active(q_status *s, int64_t event_id, int64_t user_id, const char *token,
                          int64_t now_ms, int64_t stale_ms, const char *own_old, char *current,
                          size_t cap);
/* ---- rate limits (GCRA, shared by every ingress node) ----------------------- */

/* At most this many keys in one check. */
#define Q_RATE_KEYS_MAX 2

/* One bucket: name is the key without the prefix ("rl:join:u:42"); a
 * request is admitted while at most burst requests were admitted within
 * the last burst * period_ms (one request per period_ms sustained). */
typedef struct q_rate_key {
    const char *name;
    int64_t period_ms; /* > 0 */
    int64_t burst;     /* >= 1 */
} q_rate_key;

/* The outcome: refused (limited = 1; key = the index of the key that
 * refused, ms = how long until it admits one) or admitted (key = the index
 * with the fewest requests left, remaining = how many, ms = until that
 * bucket is full again). */
typedef struct q_rate_out {
    int limited;
    int key;
    int64_t remaining;
    int64_t ms;
} q_rate_out;

/* Checks and, when every key admits, charges the n keys (<=
 * Q_RATE_KEYS_MAX) in ONE round trip; a refused request charges none.
 * Returns 0 (*out filled), ONS_EINVAL (too many keys) or ONS_EREDIS. */
int q_status_rate_check(q_status *s, const q_rate_key *keys, size_t n, q_rate_out *out);

/* One request's keys in q_status_rate_check_many. */
typedef struct q_rate_check {
    const q_rate_key *keys;
    size_t n; /* <= Q_RATE_KEYS_MAX; 0: nothing to check (rc 0, admitted) */
    int rc;   /* out: 0 (out filled) or ONS_EREDIS */
    q_rate_out out;
} q_rate_check;

/* q_status_rate_check of n requests in ONE pipelined round trip (Redis
 * runs the scripts in order: a request's charge is seen by the next).
 * Returns 0, ONS_EINVAL (an item has too many keys: nothing sent) or
 * ONS_EREDIS (some item's rc says which). */
int q_status_rate_check_many(q_status *s, q_rate_check *items, size_t n);

/* q_status_claim_active with the join's rate keys checked first in the
 * same round trip (n = 0: exactly q_status_claim_active). Returns as it
 * does, or ONS_EFULL: refused by a rate key, nothing claimed; *rate (may
 * be NULL) says which and for how long. */
int q_status_claim_active_rated(q_status *s, int64_t event_id, int64_t user_id, const char *token,
                                int64_t now_ms, int64_t stale_ms, const char *own_old,
                                char *current, size_t cap, const q_rate_key *keys, size_t n,
                                q_rate_out *rate);

/* One join's claim in q_status_claim_active_many. */
typedef struct q_active_claim {
    int64_t event_id;
    int64_t user_id;
    const char *token;           /* "pending:<sent_ms>" */
    const char *own_old;         /* an earlier claim of this same request; NULL: none */
    const q_rate_key *rate_keys; /* checked first, in the same script (may be NULL) */
    size_t nrate;                /* <= Q_RATE_KEYS_MAX */
    int rc;           /* out: 0, ONS_EEXIST (current set), ONS_EFULL (rate refused) or ONS_EREDIS */
    char current[64]; /* out on ONS_EEXIST: the key's value, truncated */
    q_rate_out rate;  /* out when nrate > 0 and the script answered */
} q_active_claim;

/* The claims of n joins in ONE round trip and ONE script call (up to 256
 * claims a call), each with the rules of q_status_claim_active_rated; the
 * script runs them in order, so of two claims of one key in the same call
 * the first wins and the second sees it. Returns 0, ONS_EINVAL (an item
 * with too many rate keys: nothing sent) or ONS_EREDIS (Redis failed:
 * every item without an answer says ONS_EREDIS; items answered keep their
 * outcome). A claim Redis refuses alone (one of its keys holds another
 * type) says ONS_EREDIS and wrote nothing, not even its rate charge; the
 * others in its call go on and say their own outcome. */
int q_status_claim_active_many(q_status *s, q_active_claim *items, size_t n, int64_t now_ms,
                               int64_t stale_ms);

/* Compare-and-set: value, only while the key holds expected. Returns 0,
 * ONS_ECONFLICT (it holds something else, or nothing) or ONS_EREDIS. */
int q_status_replace_active(q_status *s, int64_t event_id, int64_t user_id, const char *expected,
                            const char *value);
/* Deletes the key while it holds expected (NULL: unconditionally).
 * 0 (deleted or not held) or ONS_EREDIS. */
int q_status_clear_active(q_status *s, int64_t event_id, int64_t user_id, const char *expected);

/* One write of active:<event>:<user> in q_status_set_active_many. */
typedef struct q_active_set {
    int64_t event_id;
    int64_t user_id;
    const char *value;
    const char *expected; /* compare-and-set over this; NULL: overwrite */
    int rc;               /* out: 0, ONS_ECONFLICT (not held any more) or ONS_EREDIS */
} q_active_set;
/* Writes n active keys in ONE round trip and ONE script call (up to 256
 * keys a call), in order (a later write of a key sees an earlier one's);
 * each item's rc tells its outcome (ONS_EREDIS: not answered, the
 * connection failed; or refused by Redis, and not written). Returns 0
 * unless Redis failed (ONS_EREDIS). */
int q_status_set_active_many(q_status *s, q_active_set *items, size_t n);

/* Idempotency-Key records. begin: SET idem:<user>:<key>
 * {"h":hash,"s":0,"n":node,"t":t_ms} NX EX ttl: the in-flight record names
 * the node that owns it (its liveness token, q_status_node_beat; NULL or
 * "": no "n"/"t") and when it was claimed, so a retry can tell a request
 * still running from one whose node died. Returns 0 (this request owns the
 * key), ONS_EEXIST (*record is the stored JSON, caller frees) or
 * ONS_EREDIS. */
int q_status_idem_begin(q_status *s, int64_t user_id, const char *key, const char *body_hash,
                        const char *node, int64_t t_ms, int ttl_s, char **record);
/* One key in q_status_idem_begin_many. */
typedef struct q_idem_begin {
    int64_t user_id;
    const char *key, *body_hash;
    const char *node; /* as q_status_idem_begin's node and t_ms */
    int64_t t_ms;
    int rc; /* out: 0 (owned), ONS_EEXIST (taken: read it with q_status_idem_begin) or
               ONS_EREDIS */
} q_idem_begin;
/* q_status_idem_begin of n keys in ONE pipelined round trip, without
 * reading the records of keys already taken; each item's rc tells its
 * outcome. Returns 0 unless Redis failed (ONS_EREDIS). */
int q_status_idem_begin_many(q_status *s, q_idem_begin *items, size_t n, int ttl_s);
/* Stores the final response for the key (overwrites). 0 or ONS_EREDIS. */
int q_status_idem_finish(q_status *s, int64_t user_id, const char *key, const char *body_hash,
                         int http_status, const char *response_json, int ttl_s);
/* One final response in q_status_idem_finish_many. */
typedef struct q_idem_done {
    int64_t user_id;
    const char *key, *body_hash, *response_json;
    int http_status, ttl_s;
    int rc; /* out: 0, ONS_ENOMEM or ONS_EREDIS */
} q_idem_done;
/* q_status_idem_finish of n keys in ONE pipelined round trip; each item's
 * rc tells its outcome. Returns 0 unless one failed. */
int q_status_idem_finish_many(q_status *s, q_idem_done *items, size_t n);
/* Marks the key's outcome unknown (the record may be in the log):
 * {"h":hash,"s":-1,"p":partition,"t":sent_ms,"at":at_ms} EX ttl, so a retry
 * with the key looks for what was written instead of sending it again.
 * 0 or ONS_EREDIS. */
int q_status_idem_unknown(q_status *s, int64_t user_id, const char *key, const char *body_hash,
                          int32_t partition, int64_t sent_ms, int64_t at_ms, int ttl_s);
/* Takes the key back for a new attempt: while it still holds expected (an
 * unknown record, or an in-flight one of a dead node, read before), it
 * becomes in flight as q_status_idem_begin writes it, EX ttl. Returns 0,
 * ONS_ECONFLICT (another retry took it) or ONS_EREDIS. */
int q_status_idem_retake(q_status *s, int64_t user_id, const char *key, const char *expected,
                         const char *body_hash, const char *node, int64_t t_ms, int ttl_s);
/* A node's liveness key, node:<token>, set for ttl_ms (a per-node timer
 * beats it, never a request). 0 or ONS_EREDIS. */
int q_status_node_beat(q_status *s, const char *node, int ttl_ms);
/* 1 (node's liveness key lives), 0 (it lapsed: the node is gone) or
 * ONS_EREDIS. */
int q_status_node_alive(q_status *s, const char *node);
/* Removes the key (the request failed before anything was queued) while
 * it still holds this request's own in-flight record, as
 * q_status_idem_begin or q_status_idem_retake wrote it (same body_hash,
 * node and t_ms): a request refused after a retry took its key over (its
 * node's liveness key lapsed, or past its answer bound: a paused node)
 * leaves the retry's record, which may hold the stored 202, alone.
 * 0 (removed, or not its own) or ONS_EREDIS. */
int q_status_idem_abort(q_status *s, int64_t user_id, const char *key, const char *body_hash,
                        const char *node, int64_t t_ms);

/* The event's sale state as ingress needs it on a join. */
typedef struct q_event_state {
    char status[16]; /* "" when unknown */
    int64_t onsale_at_ms;
    int64_t prequeue_opens_at_ms; /* 0 = no pre-queue (docs/fairness.md) */
    int max_per_user;
    int sold_out;
    int64_t available, held, sold, waiting;                        /* -1 when unknown */
    int64_t holds_active, max_active_holds, admissions_per_minute; /* 0 when unknown */
    /* Leading zero bits a join's proof of work needs (0 = none; -1 when
     * the Redis hash lacks it: ask PostgreSQL). docs/fairness.md. */
    int pow_difficulty;
    /* The event's partition count (events.partitions), which names its home
     * partition (q_partition_of_event): a join reads it with the sale state,
     * so producing it needs no PostgreSQL. 0 when the hash lacks it (an
     * event created before it was written there: ask PostgreSQL). */
    int partitions;
} q_event_state;

/* HGETALL ev:<event>. Returns 0, ONS_ENOTFOUND (no key) or ONS_EREDIS;
 * *out is set in every case, a field the hash lacks (or all of them when
 * the read failed) left unknown: counts and pow_difficulty -1, the rest 0. */
int q_status_event_get(q_status *s, int64_t event_id, q_event_state *out);
/* Like q_status_event_get, and copies the owner's per-section free counts
 * ("section_id:free,..." as published) into sections (cap bytes, "" when
 * the owner has not published them). Returns 0, ONS_ENOTFOUND or
 * ONS_EREDIS. */
int q_status_event_view_get(q_status *s, int64_t event_id, q_event_state *out, char *sections,
                            size_t cap);
/* The names of the sections an event prices (its price tiers), fixed
 * when it is created (a price edit changes prices, never the set): ingress
 * writes them to ev:<id> field section_names at creation and when it
 * refills the hash from PostgreSQL, so a join naming a section the event
 * does not sell is refused at once, without a PostgreSQL read
 * (docs/pipeline.md). Encoded "<bytes>:<name>" per section, concatenated
 * (a name may hold any character but NUL). */
/* q_status_event_get, and the field's text into *names (heap, the
 * caller's; NULL when the hash lacks it or on error). */
int q_status_event_get_names(q_status *s, int64_t event_id, q_event_state *out, char **names);
/* HSET ev:<id> section_names (names as q_section_names_encode made it). */
int q_status_event_set_section_names(q_status *s, int64_t event_id, const char *names);
/* The n names encoded (heap, the caller's), or NULL out of memory. */
char *q_section_names_encode(const char *const *names, size_t n);
/* 1 when the encoded set names holds name, 0 when it does not, -1 when
 * names is not in q_section_names_encode's form (damaged, or written by a
 * later version): unknown, so a join is queued rather than refused. */
int q_section_names_has(const char *names, const char *name);
/* HSET of status, onsale_at_ms and max_per_user (ingress side). */
int q_status_event_set(q_status *s, int64_t event_id, const char *status, int64_t onsale_at_ms,
                       int max_per_user);
/* HSET of prequeue_opens_at_ms (0 = none) and the admission caps (0 =
 * none), written with the above (docs/fairness.md); the owner publishes
 * the caps again whenever they change. */
int q_status_event_set_fair(q_status *s, int64_t event_id, int64_t prequeue_opens_at_ms,
                            int64_t max_active_holds, int64_t admissions_per_minute);
/* HSET of pow_difficulty (ingress side: at creation, on a live change and
 * when the hash is refilled from PostgreSQL; the owner never writes it). */
int q_status_event_set_pow(q_status *s, int64_t event_id, int pow_difficulty);
/* HSET of partitions, the event's fixed partition count (ingress side: at
 * creation and when the hash is refilled from PostgreSQL). */
int q_status_event_set_partitions(q_status *s, int64_t event_id, int partitions);

/* Marks a proof-of-work solution (its challenge's tag) spent: SET
 * pow:<tag> NX with a ttl_ms expiry (the challenge's remaining life plus a
 * margin for clock skew between nodes). Returns 0 (first use), ONS_EEXIST
 * (spent before, on any node) or ONS_EREDIS. */
int q_status_pow_spend(q_status *s, const char *tag, int64_t ttl_ms);

#endif
