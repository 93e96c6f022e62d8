/* project.c - result documents and the post-COMMIT Redis pipeline; see project.h. */
#include "workers/project.h"
#include "common/err.h"
#include "common/jsonw.h"
#include "queue/intent_id.h"
#include "common/vec.h"
#include "common/log.h"
#include "common/utc.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct wk_project {
    q_status *st;
    char *secret;
    q_status_result *res;
    size_t cap_res;
    q_status_event *evs;
    size_t cap_evs;
    char *sections; /* every touched event's "section_id:free,..." list */
    size_t cap_sections;
    /* The results written (or tried) within resync_window_s before the
     * last projection Redis took, and every one since, with the document
     * written (the last keep_max of them): positions [head, base +
     * nrecent), recent[pos - base]. */
    wk_published *recent;
    size_t nrecent, cap_recent;
    uint64_t base, head;
    uint64_t doc_from;  /* the entries before it keep no document */
    size_t ndocs;       /* entries holding a document */
    size_t keep_max;    /* redis.republish_max */
    size_t entries_max; /* redis.repair_entries_max: the entries past it are forgotten */
    double window_s;    /* redis.resync_window_ms */
    int64_t version;    /* of the last projection's results (docs/pipeline.md) */
    /* A repair is owed (a projection failed, or a partition was taken
     * over): the entries [rp_at, rp_end) are still to be written again. */
    int resync;
    int stalled; /* its last step failed: Redis is not answering yet */
    /* Whole calls Redis refused in a row on a live connection (BUSY, a
     * script error, OOM), and when the refused chunk is tried again. */
    int refusals;
    double retry_at;
    int retries_max; /* redis.repair_retries: then the chunk counts as failed */
    double retry_s;  /* redis.repair_retry_ms: the first wait, doubled each time */
    uint64_t rp_at, rp_end;
    size_t round_forgotten; /* entries forgotten since the last repair ended */
    q_status_repair *rep;
    size_t cap_rep;
    wk_repair_stats stats;
    size_t round[5]; /* this repair's outcomes (q_status_repair.outcome) */
    ons_jw scratch;  /* a result document being built (result_doc) */
};

int wk_project_new(const q_status_opts *o, const char *secret, int64_t resync_window_ms,
                   int64_t republish_max, int64_t entries_max, wk_project **out)
{
    wk_project *pj = calloc(1, sizeof *pj);
    if (!pj)
        return ONS_ENOMEM;
    pj->retries_max = 8;
    pj->retry_s = 0.1;
    pj->window_s = (double)resync_window_ms / 1000.0;
    pj->keep_max = republish_max > 0 ? (size_t)republish_max : 0;
    pj->entries_max = entries_max > 0 ? (size_t)entries_max : 1;
    pj->secret = strdup(secret);
    if (!pj->secret || q_status_new(o, &pj->st) != 0) {
        free(pj->secret);
        free(pj);
        return ONS_ENOMEM;
    }
    *out = pj;
    return 0;
}

void wk_project_free(wk_project *pj)
{
    if (!pj)
        return;
    for (size_t i = 0; i < pj->nrecent; i++)
        free(pj->recent[i].doc);
    q_status_free(pj->st);
    free(pj->secret);
    free(pj->res);
    free(pj->evs);
    free(pj->sections);
    free(pj->recent);
    free(pj->rep);
    free(pj->scratch.s);
    free(pj);
}

/* ---- repair after Redis lost or missed writes ----------------------------------
 *
 * A failed projection leaves the results of its batch unwritten, and a
 * Redis that restarts may come back without the last writes it took
 * (appendfsync everysec loses up to about a second; a restart from an older
 * snapshot more): either way an older result of the same intent can be
 * left, and a poll would tell the fan a state that is over ("paying" after
 * the payment was declined, "reserved" after the hold was released). A
 * failure is always seen (a restart breaks the connection; every active
 * partition publishes at least every second), so after one the worker
 * writes again every result it wrote within redis.resync_window_ms before
 * the last projection Redis took, and every one since, from the documents
 * it keeps (the last redis.republish_max); the older ones, and those of a
 * partition just taken over (written by the previous owner), are deleted,
 * so readers answer them from PostgreSQL, which holds the committed truth.
 * Every write and delete of the repair is compared in Redis with the
 * version the stored result carries (q_status_repair_results): a later
 * state (a later batch's, or a newer owner's) is never replaced, so the
 * repair runs beside the batches, a bounded step per turn of the loop
 * (wk_project_repair), instead of before them. */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static wk_published *at(wk_project *pj, uint64_t pos)
{
    return &pj->recent[pos - pj->base];
}

static uint64_t end_pos(const wk_project *pj)
{
    return pj->base + pj->nrecent;
}

/* Room for n more recent results (the ones the window left behind, whose
 * documents are freed, dropped first). 0 or ONS_ENOMEM. */
static int recent_reserve(wk_project *pj, size_t n)
{
    size_t gone = (size_t)(pj->head - pj->base);
    if (gone > 0 && gone >= pj->nrecent / 2) {
        memmove(pj->recent, pj->recent + gone, (pj->nrecent - gone) * sizeof *pj->recent);
        pj->nrecent -= gone;
        pj->base = pj->head;
    }
    return ONS_VEC_RESERVE(pj->recent, pj->cap_recent, pj->nrecent + n, 256) ? ONS_ENOMEM : 0;
}

/* Frees the oldest documents past keep_max: their entries are dropped,
 * not written again, by a repair. */
static void keep_bound(wk_project *pj)
{
    while (pj->ndocs > pj->keep_max && pj->doc_from < end_pos(pj)) {
        wk_published *e = at(pj, pj->doc_from++);
        if (e->doc) {
            free(e->doc);
            e->doc = NULL;
            pj->ndocs--;
        }
    }
}

/* Forgets the oldest entries past entries_max (documents and all): while
 * every projection fails the window cannot move, and without a bound the
 * entries of a long outage grow without end (40-odd bytes a result). A
 * result forgotten is not repaired: Redis may keep an older state of it
 * until it changes again or expires; counted (stats.forgotten) and
 * logged. */
static void entries_bound(wk_project *pj)
{
    size_t live = (size_t)(end_pos(pj) - pj->head);
    if (live <= pj->entries_max)
        return;
    size_t k = live - pj->entries_max;
    if (pj->round_forgotten == 0)
        ons_log_warn("redis projection: more than redis.repair_entries_max (%zu) results owe "
                     "a repair; the oldest are forgotten (their Redis results may stay stale "
                     "until they change again)",
                     pj->entries_max);
    for (size_t i = 0; i < k; i++) {
        wk_published *e = at(pj, pj->head++);
        pj->ndocs -= e->doc != NULL;
        free(e->doc);
        e->doc = NULL;
    }
    pj->stats.forgotten += k;
    pj->round_forgotten += k;
    if (pj->doc_from < pj->head)
        pj->doc_from = pj->head;
    if (pj->rp_at < pj->head)
        pj->rp_at = pj->head;
    if (pj->rp_end < pj->rp_at)
        pj->rp_end = pj->rp_at; /* every entry still owed was forgotten */
}

/* Owes a repair of every entry from the window's start on (called again
 * on each failure: a step in flight may have been lost too). */
static void owe_all(wk_project *pj)
{
    pj->resync = 1;
    pj->rp_at = pj->head;
    pj->rp_end = end_pos(pj);
}

/* Keeps fx's results, taking their documents (res[i].json) over, for a
 * repair. 0, or ONS_ENOMEM (the documents are freed). */
static int note_published(wk_project *pj, const wk_fx *fx, const wk_part *p, double now)
{
    if (recent_reserve(pj, fx->nintents)) {
        for (size_t i = 0; i < fx->nintents; i++)
            free((char *)pj->res[i].json);
        return ONS_ENOMEM;
    }
    for (size_t i = 0; i < fx->nintents; i++) {
        char *doc = pj->keep_max > 0 ? (char *)pj->res[i].json : NULL;
        if (!doc)
            free((char *)pj->res[i].json);
        pj->recent[pj->nrecent++] =
            (wk_published){fx->intents[i].seq, p->partition, now, p->epoch, pj->version, doc};
        pj->ndocs += doc != NULL;
    }
    entries_bound(pj);
    return 0;
}

/* Owes the entries from pos on, besides any still owed. */
static void owe_from(wk_project *pj, uint64_t pos)
{
    if (!pj->resync) {
        pj->resync = 1;
        pj->rp_at = pos;
    }
    pj->rp_end = end_pos(pj);
}

int wk_project_owe(wk_project *pj, int32_t partition, int64_t epoch, const int64_t *seqs, size_t n)
{
    wk_project_forget(pj, partition);
    if (n == 0)
        return 0;
    if (recent_reserve(pj, n))
        return ONS_ENOMEM;
    double now = mono_s();
    uint64_t from = end_pos(pj);
    /* Written by an owner before epoch: dropped unless this owner wrote
     * them since (any version of epoch is newer than (epoch, -1)). */
    for (size_t i = 0; i < n; i++)
        pj->recent[pj->nrecent++] = (wk_published){seqs[i], partition, now, epoch, -1, NULL};
    owe_from(pj, from);
    entries_bound(pj);
    return 0;
}

/* Where position old lands when the entries kept are moved down: to, if
 * old is the position pos being moved (else what was found so far). */
static uint64_t shifted(uint64_t old, uint64_t pos, uint64_t to, uint64_t was)
{
    return old == pos ? to : was;
}

/* Is the entry at pos owed by the repair in progress? */
static int owed(const wk_project *pj, uint64_t pos)
{
    return pj->resync && pos >= pj->rp_at && pos < pj->rp_end;
}

void wk_project_forget(wk_project *pj, int32_t partition)
{
    uint64_t end = end_pos(pj), to = pj->head;
    uint64_t rp_at = pj->rp_at, rp_end = pj->rp_end, doc_from = pj->doc_from;
    for (uint64_t pos = pj->head; pos < end; pos++) {
        rp_at = shifted(pj->rp_at, pos, to, rp_at);
        rp_end = shifted(pj->rp_end, pos, to, rp_end);
        doc_from = shifted(pj->doc_from, pos, to, doc_from);
        wk_published *e = at(pj, pos);
        if (e->partition == partition) {
            pj->ndocs -= e->doc != NULL;
            free(e->doc);
            e->doc = NULL;
            /* An owed one stays, a drop (at its own version: it deletes
             * no later state, and writes none): Redis may have lost it. */
            if (!owed(pj, pos))
                continue;
        }
        *at(pj, to++) = *e;
    }
    /* the positions at the end stay at the (new) end */
    rp_at = shifted(pj->rp_at, end, to, rp_at);
    rp_end = shifted(pj->rp_end, end, to, rp_end);
    doc_from = shifted(pj->doc_from, end, to, doc_from);
    pj->nrecent = (size_t)(to - pj->base);
    pj->rp_at = rp_at, pj->rp_end = rp_end, pj->doc_from = doc_from;
    if (pj->resync && pj->rp_at >= pj->rp_end)
        pj->resync = 0; /* nothing left owed */
}

/* After a projection: rc 0 moves the window on (never past a repair still
 * owed), anything else owes a repair. */
static int projected(wk_project *pj, int rc, double now)
{
    if (rc != 0) {
        owe_all(pj);
        return rc;
    }
    uint64_t stop = pj->resync ? pj->rp_at : end_pos(pj);
    while (pj->head < stop && at(pj, pj->head)->t < now - pj->window_s) {
        wk_published *e = at(pj, pj->head++);
        if (e->doc) {
            free(e->doc);
            e->doc = NULL;
            pj->ndocs--;
        }
    }
    if (pj->doc_from < pj->head)
        pj->doc_from = pj->head;
    return 0;
}

/* Results a repair step sends in one script call (queue/status.c's
 * REPAIRS_PER_CALL). */
#define REPAIR_CHUNK 512

/* Sends the next chunk of the repair (one script call). 0 or ONS_EREDIS /
 * ONS_ENOMEM. */
static int repair_chunk(wk_project *pj)
{
    if (pj->rp_at >= pj->rp_end)
        return 0; /* nothing left owed (entries_bound may have forgotten it all) */
    size_t m = (size_t)(pj->rp_end - pj->rp_at);
    m = m < REPAIR_CHUNK ? m : REPAIR_CHUNK;
    if (ONS_VEC_RESERVE(pj->rep, pj->cap_rep, m, REPAIR_CHUNK))
        return ONS_ENOMEM;
    for (size_t i = 0; i < m; i++) {
        const wk_published *e = at(pj, pj->rp_at + i);
        pj->rep[i] = (q_status_repair){e->seq, e->partition, e->epoch, e->version, e->doc, -1};
    }
    int rc = q_status_repair_results(pj->st, pj->rep, m);
    for (size_t i = 0; i < m; i++) {
        int o = pj->rep[i].outcome;
        if (o < 0 || o > 4)
            continue;
        pj->round[o]++;
        *(o == 1   ? &pj->stats.republished
          : o == 2 ? &pj->stats.dropped
          : o == 3 ? &pj->stats.absent
          : o == 4 ? &pj->stats.failed
                   : &pj->stats.kept_newer) += 1;
    }
    /* 0: Redis answered every item; one it refused (a key of another
     * type, over maxmemory) failed and is done, so one bad key does not
     * restart the whole repair for good. ONS_EUNAVAIL: the call was
     * refused whole, nothing done (chunk_refused). */
    if (rc == 0)
        pj->rp_at += m;
    return rc;
}

void wk_project_retries(wk_project *pj, int64_t retries_max, int64_t first_ms)
{
    pj->retries_max = (int)retries_max;
    pj->retry_s = (double)first_ms / 1000.0;
}

/* Redis refused the chunk at rp_at whole, on a live connection: it stays
 * owed and is tried again after a wait (retry_s, doubled each time, at
 * most 64 times it), up to retries_max times; then its items count as
 * failed and the repair moves on (a script error would otherwise refuse
 * it for good). Nothing was lost, so the repair does not start over. */
static void chunk_refused(wk_project *pj)
{
    size_t m = (size_t)(pj->rp_end - pj->rp_at);
    m = m < REPAIR_CHUNK ? m : REPAIR_CHUNK;
    if (pj->refusals++ < pj->retries_max) {
        int k = pj->refusals - 1 < 6 ? pj->refusals - 1 : 6;
        pj->retry_at = mono_s() + pj->retry_s * (double)(1 << k);
        ons_log_warn("redis projection repair: Redis refused a call of %zu results (%d time(s) "
                     "in a row): owed still, tried again in %.1f s",
                     m, pj->refusals, pj->retry_s * (double)(1 << k));
        return;
    }
    ons_log_warn("redis projection repair: Redis refused a call of %zu results %d times: they "
                 "count as failed (redis.repair_retries)",
                 m, pj->refusals);
    pj->round[4] += m;
    pj->stats.failed += m;
    pj->rp_at += m;
    pj->refusals = 0;
}

int wk_project_repair(wk_project *pj, int64_t max_ms)
{
    if (!pj->resync || mono_s() < pj->retry_at)
        return 0;
    double until = mono_s() + (double)max_ms / 1000.0;
    do {
        int rc = repair_chunk(pj);
        if (rc == ONS_EUNAVAIL) {
            chunk_refused(pj);
            pj->stalled = 1; /* the loop waits as usual meanwhile */
            return 0;
        }
        pj->refusals = 0;
        pj->retry_at = 0;
        if (rc != 0) {
            pj->stalled = 1;
            owe_all(pj);
            return rc;
        }
    } while (pj->rp_at < pj->rp_end && mono_s() < until);
    pj->stalled = 0;
    if (pj->rp_at < pj->rp_end)
        return 0;
    pj->resync = 0;
    if (pj->round[0] + pj->round[1] + pj->round[2] + pj->round[4] + pj->round_forgotten > 0)
        ons_log_info("redis projection repaired: %zu recent results written again, %zu dropped "
                     "(read from PostgreSQL until written again), %zu already newer in Redis, "
                     "%zu failed (Redis refused them), %zu forgotten (past "
                     "redis.repair_entries_max)",
                     pj->round[1], pj->round[2], pj->round[0], pj->round[4], pj->round_forgotten);
    memset(pj->round, 0, sizeof pj->round);
    pj->round_forgotten = 0;
    return 0;
}

int64_t wk_project_epoch_seen(wk_project *pj, int32_t partition)
{
    int64_t e = -1;
    return q_status_repair_epoch_get(pj->st, partition, &e) == 0 ? e : -1;
}

int wk_project_repairing(const wk_project *pj)
{
    return pj->resync && !pj->stalled;
}

void wk_project_repair_stats(const wk_project *pj, wk_repair_stats *out)
{
    *out = pj->stats;
    out->refused = q_status_results_refused(pj->st);
    out->pending = pj->resync ? (size_t)(pj->rp_end - pj->rp_at) : 0;
}

int wk_result_ended(const wk_fx_intent *r)
{
    switch (r->state) {
    case Q_INTENT_REJECTED:
    case Q_INTENT_EXPIRED:
    case Q_INTENT_RELEASED:
    case Q_INTENT_PURCHASED:
        return 1;
    default:
        return 0;
    }
}

static void rfc3339(int64_t ms, char out[32])
{
    ons_format_utc(ms, 0, out);
}

/* ms as RFC 3339 UTC with milliseconds ("2026-11-29T06:01:02.345Z"). */
static void rfc3339_ms(int64_t ms, char out[32])
{
    ons_format_utc(ms, 1, out);
}

/* ---- result documents ----------------------------------------------------------
 *
 * Written straight into a buffer (one per intent of every batch: jansson's
 * pack + dump was half of the worker's CPU). Compact JSON, keys in the order
 * documented in docs/pipeline.md. */

static int reservation_json(ons_jw *b, const wk_fx_intent *r, const char *secret)
{
    char id[Q_ID_LEN + 1], exp[32];
    if (q_id_encode(secret, Q_ID_RESERVATION, r->seq, r->user_id, id) != 0)
        return ONS_ENOMEM;
    rfc3339(r->expires_ms, exp);
    ons_jw_lit(b, "{\"reservation_id\":");
    ons_jw_str(b, id);
    ons_jw_lit(b, ",\"seats\":[");
    const wk_inv *inv = &r->ev->inv;
    for (int i = 0; i < r->nseats; i++) {
        uint32_t s = r->seats[i];
        const wk_row *row = &inv->rows[inv->row_of[s]];
        ons_jw_lit(b, i ? ",{\"section\":" : "{\"section\":");
        ons_jw_str(b, inv->sections[row->section].name);
        ons_jw_lit(b, ",\"row\":");
        ons_jw_int(b, row->row_no);
        ons_jw_lit(b, ",\"seat\":");
        ons_jw_int(b, inv->seat_in_row[s]);
        ons_jw_lit(b, ",\"price_cents\":");
        ons_jw_int(b, inv->price[s]);
        ons_jw_lit(b, "}");
    }
    ons_jw_lit(b, "],\"total_cents\":");
    ons_jw_int(b, r->total_cents);
    ons_jw_lit(b, ",\"currency\":");
    ons_jw_str(b, r->ev->currency);
    ons_jw_lit(b, ",\"expires_at\":");
    ons_jw_str(b, exp);
    ons_jw_lit(b, "}");
    return 0;
}

/* Writes intent r's result document (the r:<seq> value), versioned (epoch,
 * version) as its last member (docs/pipeline.md), into b (appended; b->oom
 * says whether it is whole). */
static void result_json_to(ons_jw *b, const wk_fx_intent *r, const char *secret, int64_t epoch,
                           int64_t version)
{
    const char *reason = q_reason_name(r->reason);
    ons_jw_lit(b, "{\"state\":");
    ons_jw_str(b, q_intent_state_name(r->state));
    ons_jw_lit(b, ",\"event_id\":");
    ons_jw_int(b, r->event_id);
    ons_jw_lit(b, ",\"reason\":");
    if (reason)
        ons_jw_str(b, reason);
    else
        ons_jw_lit(b, "null");
    if (r->in_pre)
        ons_jw_lit(b, ",\"prequeued\":true");
    if (r->draw_rank > 0) {
        ons_jw_lit(b, ",\"draw_rank\":");
        ons_jw_int(b, r->draw_rank);
    }
    if (r->left_queue_ms > 0) {
        char at[32];
        rfc3339_ms(r->left_queue_ms, at);
        ons_jw_lit(b, ",\"left_queue_at\":");
        ons_jw_str(b, at);
    }
    ons_jw_lit(b, ",\"reservation\":");
    if (r->state == Q_INTENT_RESERVED || r->state == Q_INTENT_PAYING ||
        r->state == Q_INTENT_PURCHASED) {
        if (reservation_json(b, r, secret) != 0)
            b->oom = 1;
    } else {
        ons_jw_lit(b, "null");
    }
    /* Last, as q_status_repair_results reads it back in Redis. */
    ons_jw_lit(b, ",\"v\":[");
    ons_jw_int(b, epoch);
    ons_jw_lit(b, ",");
    ons_jw_int(b, version);
    ons_jw_lit(b, "]}");
}

/* The document built in the projection's scratch buffer, then copied to a
 * heap string of its own length: a repair keeps up to
 * redis.republish_max of them, and the builder's buffer (256 bytes,
 * doubling) was up to twice the text. 0 or ONS_ENOMEM. */
static int result_doc(wk_project *pj, const wk_fx_intent *r, int64_t epoch, char **out)
{
    pj->scratch.len = 0;
    pj->scratch.oom = 0;
    result_json_to(&pj->scratch, r, pj->secret, epoch, pj->version);
    char *doc = pj->scratch.oom ? NULL : malloc(pj->scratch.len + 1);
    if (!doc)
        return ONS_ENOMEM;
    memcpy(doc, pj->scratch.s, pj->scratch.len + 1);
    *out = doc;
    return 0;
}

/* Longest "section_id:free," entry: two int64 in decimal, ':' and ','. */
#define SECTION_ENTRY_MAX 42

/* Writes each touched event's free seats per section into pj->sections, one
 * NUL-terminated "section_id:free,..." list per event in fx->events order:
 * the event view reads per-tier availability from it instead of counting
 * seats in PostgreSQL. 0 or ONS_ENOMEM. */
static int format_sections(wk_project *pj, const wk_fx *fx)
{
    size_t need = 0;
    for (size_t i = 0; i < fx->nevents; i++)
        need += fx->events[i]->inv.nsections * SECTION_ENTRY_MAX + 1;
    if (need > pj->cap_sections) {
        char *n = realloc(pj->sections, need);
        if (!n)
            return ONS_ENOMEM;
        pj->sections = n;
        pj->cap_sections = need;
    }
    char *out = pj->sections;
    for (size_t i = 0; i < fx->nevents; i++) {
        const wk_inv *inv = &fx->events[i]->inv;
        char *p = out;
        for (size_t k = 0; k < inv->nsections; k++)
            p += snprintf(p, SECTION_ENTRY_MAX + 1, "%s%" PRId64 ":%" PRId64, k ? "," : "",
                          inv->sections[k].section_id, inv->sections[k].nfree);
        *p = '\0';
        out = p + 1;
    }
    return 0;
}

/* The touched events' counters and per-section availability, in
 * pj->evs (fx->events order). */
static void fill_events(wk_project *pj, const wk_fx *fx)
{
    /* Without memory for the lists the counters are still worth publishing. */
    int with_sections = format_sections(pj, fx) == 0;
    for (size_t i = 0, at = 0; i < fx->nevents; i++) {
        const wk_event *ev = fx->events[i];
        q_status_event *e = &pj->evs[i];
        e->sections = with_sections ? pj->sections + at : NULL;
        at += with_sections ? strlen(pj->sections + at) + 1 : 0;
        e->event_id = ev->event_id;
        e->available = ev->inv.available;
        e->held = ev->inv.held;
        e->sold = ev->inv.sold;
        e->waiting = ev->nwaiting + (int64_t)ev->npre;
        e->holds_active = ev->nholds;
        e->max_active_holds = ev->max_active_holds;
        e->admissions_per_minute = ev->admissions_per_minute;
        e->sold_out = ev->inv.available == 0 && ev->inv.held == 0;
        /* The owner is the only writer of the sale status (PostgreSQL and
         * this projection): ingress reads it here on a join. */
        e->status = q_event_status_name(ev->status);
    }
}

int wk_project_batch(wk_project *pj, const wk_part *p, double rate, const q_status_drain *drain)
{
    const wk_fx *fx = &p->fx;
    if (ONS_VEC_RESERVE(pj->res, pj->cap_res, fx->nintents, 64) ||
        ONS_VEC_RESERVE(pj->evs, pj->cap_evs, fx->nevents, 16))
        return ONS_ENOMEM;
    size_t nres = 0;
    int rc = 0;
    pj->version++;
    for (size_t i = 0; i < fx->nintents && rc == 0; i++) {
        const wk_fx_intent *r = &fx->intents[i];
        char *json = NULL;
        if ((rc = result_doc(pj, r, p->epoch, &json)) != 0)
            break;
        q_status_result *o = &pj->res[nres++];
        o->intent_seq = r->seq;
        o->event_id = r->event_id;
        o->user_id = r->user_id;
        o->json = json;
        o->ended = wk_result_ended(r);
        o->accepted_ms = r->accepted_ms; /* names the intent's pending claim */
        o->epoch = p->epoch;             /* compared in Redis: a later state wins */
        o->version = pj->version;
    }
    if (rc != 0) {
        for (size_t i = 0; i < nres; i++)
            free((char *)pj->res[i].json);
        owe_all(pj); /* this batch's results are not written: older ones may stay */
        return rc;
    }
    fill_events(pj, fx);
    double now = mono_s();
    /* Written out, not waited for: Redis applies it while this worker polls
     * and applies its next batch (the replies are read by the next call,
     * and an error there counts as a failed projection then). */
    rc = q_status_publish_nowait(pj->st, p->partition, p->next_offset, rate, drain, pj->res, nres,
                                 pj->evs, fx->nevents);
    /* kept (documents and all) for a repair, whether this write went out
     * or not: a failure owes every result since the window's start */
    int nrc = note_published(pj, fx, p, now);
    rc = projected(pj, rc ? rc : nrc, now);
    keep_bound(pj);
    return rc;
}

int wk_project_cursor(wk_project *pj, int32_t partition, int64_t served, double rate,
                      const q_status_drain *drain)
{
    double now = mono_s();
    int rc = q_status_publish(pj->st, partition, served, rate, drain, NULL, 0, NULL, 0);
    return projected(pj, rc, now);
}

int wk_project_cursors(wk_project *pj, size_t n, const int32_t *partitions, const int64_t *served,
                       const double *rate, const q_status_drain *drains)
{
    double now = mono_s();
    int rc = q_status_publish_cursors_nowait(pj->st, n, partitions, served, rate, drains);
    return projected(pj, rc, now);
}

int wk_project_drain(wk_project *pj, int32_t partition, const q_status_drain *drain)
{
    /* Written out, not waited for; its call reads the last projection's
     * replies first, so an error there is counted here (and repaired as
     * after any failed projection). */
    return projected(pj, q_status_publish_drain_nowait(pj->st, partition, drain), mono_s());
}
