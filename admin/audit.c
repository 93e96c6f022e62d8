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
 *   one of them short. Every seat pointing at a reservation that names
 *   its seats (seat_nos, migration 0018: the poll from PostgreSQL reads
 *   them) is one it names, and a held or paying one names seat_count (a
 *   purchase backfilled by 0018 after a ticket's cancel names fewer).
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
#include "admin/audit_rules.h"
#include "admin/audit_store.h"
#include "common/hex.h"
#include "queue/draw.h"
#include "queue/intent_id.h"
#include "queue/msg.h"
#include "queue/states.h"
#include "common/err.h"

#include <ctype.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK_IDS     ADM_STATES_MAX /* intent ids per query */
#define KAFKA_TIMEOUT 5000           /* ms per metadata / watermark call */
#define LINE_MAX_LEN  512

typedef struct audit {
    const adm_audit_opts *o;
    adm_audit_result *res;
    FILE *out;
    adm_store st;
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

/* ---- counted by PostgreSQL -------------------------------------------------- */

/* A check PostgreSQL counts by itself (audit_store.h's adm_count_query). */
typedef struct count_check {
    int query; /* enum adm_count_query */
    const char *name, *what;
} count_check;

/* Seats, tickets and capacity: every taken seat names a live reservation
 * in the matching state, each live reservation holds its seat count, one
 * valid ticket per sold seat, and no event sells past its capacity; then
 * every processed intent agrees with its reservation. */
static const count_check seat_checks[] = {
    {ADM_COUNT_SEATS_LIVE, "seats_live",
     "taken seats naming a live reservation in the matching state"},
    {ADM_COUNT_SEATS_COUNT, "seats_count",
     "live reservations holding exactly seat_count seats, the ones they name"},
    {ADM_COUNT_TICKETS_UNIQUE, "tickets_unique", "valid tickets, one per sold seat"},
    {ADM_COUNT_CAPACITY, "capacity", "events with sold <= capacity"},
};
static const count_check intent_check = {ADM_COUNT_INTENTS, "intents_consistent",
                                         "processed intents agreeing with their reservation"};

/* Runs one counting query and records it. */
static int run_count(audit *a, const count_check *q)
{
    adm_count c;
    int rc = adm_store_count(&a->st, q->query, &c);
    if (rc)
        return rc;
    add_check(a, q->name, ADM_CHECK_OK, c.checked, c.violations, "%s%s%s", q->what,
              c.sample[0] ? "; e.g. " : "", c.sample);
    return 0;
}

static int check_seats(audit *a)
{
    for (size_t i = 0; i < sizeof seat_checks / sizeof seat_checks[0]; i++) {
        int rc = run_count(a, &seat_checks[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_intents(audit *a)
{
    return run_count(a, &intent_check);
}

static int check_charges(audit *a)
{
    adm_charges c;
    int rc = adm_store_charges(&a->st, &c);
    if (rc)
        return rc;
    if (c.orders.checked == 0)
        add_check(a, "charges", ADM_CHECK_OK, 0, 0,
                  "0 orders (checkout not used): nothing charged, nothing to match");
    else
        add_check(a, "charges", ADM_CHECK_OK, c.orders.checked, c.orders.violations,
                  "orders where charges = tickets + refunds (charged %lld = tickets %lld + "
                  "refunds %lld cents)%s%s",
                  c.charged, c.ticketed, c.refunded, c.orders.sample[0] ? "; e.g. " : "",
                  c.orders.sample);
    return 0;
}

/* ---- FIFO ------------------------------------------------------------------ */

static int check_fifo(audit *a)
{
    adm_release *rel = NULL;
    adm_fifo_row *rows = NULL;
    size_t nrel = 0, n = 0;
    adm_fifo_result w;
    int rc;
    if ((rc = adm_store_releases(&a->st, &rel, &nrel)) != 0 ||
        (rc = adm_store_fifo_rows(&a->st, &rows, &n)) != 0 ||
        (rc = adm_fifo_walk(rows, n, rel, nrel, a->o->ids_secret, &w)) != 0)
        goto done;
    add_check(a, "fifo", ADM_CHECK_OK, w.grants, adm_fifo_violations(&w) + w.undrawn,
              "grants in draw order, then offset order, per request class: %lld out of order, "
              "%lld past a waiting earlier, %lld after an earlier rejection, %lld with better "
              "seats than an earlier; %lld pre-queued not keyed (ids.secret)%s",
              w.bad_order, w.bad_wait, w.bad_reject, w.bad_seat, w.undrawn, w.sample);
done:
    free(rows);
    free(rel);
    return rc;
}

/* ---- Kafka ------------------------------------------------------------------ */

/* next_offset (lane 0) or control_next_offset (lane 1) of partition p; 0
 * when it has no row (never claimed). */
static int64_t lane_offset_of(const adm_offsets *off, int32_t p, int lane)
{
    for (int i = 0; i < off->n; i++)
        if (off->partition[i] == p)
            return off->next[i][lane];
    return 0;
}

static int64_t next_offset_of(const adm_offsets *off, int32_t p)
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
    adm_offsets off;
    memset(lag, 0, sizeof *lag);
    int rc = adm_store_offsets(&a->st, &off);
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

/* Looks up the logged intents seqs[0..n) in PostgreSQL: marks the ones
 * found, counts those in a state the fan could not reach from the one it
 * saw, and keeps the first as sample. */
static int match_chunk(audit *a, idmap *m, const int64_t *seqs, size_t n, long long *unreachable,
                       char *sample, size_t cap)
{
    adm_intent_state *rows = NULL;
    size_t nrows = 0;
    int rc = adm_store_intent_states(&a->st, seqs, n, &rows, &nrows);
    for (size_t k = 0; rc == 0 && k < nrows; k++) {
        int dummy = 0;
        entry *e = idmap_get(m, rows[k].seq, 0, 0, &dummy);
        if (!e)
            continue;
        e->found = 1;
        if (rows[k].state < 0 || !adm_state_reachable(e->last_state, rows[k].state)) {
            (*unreachable)++;
            if (!sample[0])
                snprintf(sample, cap, "; e.g. intent %" PRId64 " seen %s, now %s", e->seq,
                         q_intent_state_name(e->last_state), rows[k].text);
        }
    }
    free(rows);
    return rc;
}

/* Looks up every logged intent in PostgreSQL (chunks of CHUNK_IDS). */
static int match_intents(audit *a, idmap *m, long long *unreachable, char *sample, size_t cap)
{
    int64_t *seqs = malloc(CHUNK_IDS * sizeof *seqs);
    int rc = seqs ? 0 : ONS_ENOMEM;
    size_t i = 0;
    while (rc == 0 && i < m->cap) {
        size_t count = 0;
        for (; i < m->cap && count < CHUNK_IDS; i++)
            if (m->slots[i].seq >= 0)
                seqs[count++] = m->slots[i].seq;
        if (!count)
            break;
        rc = match_chunk(a, m, seqs, count, unreachable, sample, cap);
    }
    free(seqs);
    return rc;
}

static int check_sim_log(audit *a)
{
    idmap m = {0};
    adm_offsets off;
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
    if ((rc = adm_store_offsets(&a->st, &off)) != 0)
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
    if ((rc = adm_store_open(&a.st, o->pg_dsn, "onsale-audit", o->event_id)) != 0)
        goto done;
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
    adm_store_close(&a.st);
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

/* Prints whether event ev's published commitment is sha256 of its seed
 * (into seed). 0 with *ok cleared when it does not match; ONS_ENOTFOUND
 * without the event; 1 when it has no seed (reported as FAIL). */
static int verify_commitment(adm_store *st, int64_t event_id, FILE *out, uint8_t *seed, int *ok)
{
    q_draw_published d;
    int rc = adm_store_draw(st, event_id, &d);
    if (rc)
        return rc;
    if (q_draw_seed_parse(d.seed_hex, seed)) {
        fprintf(out, "FAIL  event %" PRId64 " has no draw seed\n", event_id);
        return 1;
    }
    char commitment[Q_DRAW_HEX_LEN + 1];
    q_draw_commitment(seed, commitment);
    int commit_ok = strcmp(commitment, d.commitment) == 0;
    *ok &= commit_ok;
    fprintf(out, "%-4s  commitment %s = sha256(seed %s)\n", commit_ok ? "ok" : "FAIL", d.commitment,
            d.seed_hex);
    return 0;
}

/* Keys event ev's pre-queued intents by the draw (seed) and prints the
 * first of them in draw order. */
static int print_draw(adm_store *st, int64_t event_id, const char *ids_secret, const uint8_t *seed,
                      FILE *out)
{
    q_draw_entrant *rows = NULL;
    size_t n = 0;
    int rc = adm_store_prequeued(st, event_id, &rows, &n);
    if (rc)
        return rc;
    q_draw_entry *v = malloc((n + 1) * sizeof *v);
    if (!v)
        rc = ONS_ENOMEM;
    else if (q_draw_order(seed, ids_secret, rows, n, v))
        rc = ONS_EINVAL;
    if (rc == 0) {
        fprintf(out,
                "ok    draw of %zu pre-queued intents, by ascending hex HMAC-SHA256(seed, id):", n);
        for (size_t i = 0; i < n && i < 5; i++)
            fprintf(out, " %s", v[i].id);
        fprintf(out, "%s\n", n > 5 ? " ..." : "");
    }
    free(v);
    free(rows);
    return rc;
}

int adm_verify_draw(const char *pg_dsn, const char *ids_secret, int64_t event_id, FILE *out,
                    int *passed)
{
    int rc, ok = 1;
    *passed = 0;
    adm_store st;
    uint8_t seed[Q_DRAW_SEED_LEN];
    if ((rc = adm_store_open(&st, pg_dsn, "onsale-verify-draw", event_id)) != 0 ||
        (rc = verify_commitment(&st, event_id, out, seed, &ok)) != 0 ||
        (rc = print_draw(&st, event_id, ids_secret, seed, out)) != 0)
        goto done;
    adm_audit_opts ao = {.pg_dsn = pg_dsn, .event_id = event_id, .ids_secret = ids_secret};
    adm_audit_result res;
    if ((rc = adm_audit_run(&ao, out, &res)) != 0)
        goto done;
    ok &= res.violations == 0;
    *passed = ok;
    fprintf(out, "verify-draw %s\n", ok ? "pass" : "fail");
done:
    adm_store_close(&st);
    return rc == 1 ? 0 : rc; /* 1: no seed, reported as a failure */
}
