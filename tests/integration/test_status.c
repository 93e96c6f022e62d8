/*
 * test_status.c - the Redis status store against a real Redis (from
 * scripts/stack; ONSALE_REDIS_HOST/PORT), under a unique key prefix.
 */
#include "common/clock.h"
#include "common/err.h"
#include "queue/status.h"

#include "tests/check_run.h"

#include <check.h>
#include <hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

static q_status *st;
static char prefix[64];

static void setup(void)
{
    /* pid and clock: a pid is reused (every case forks a child) and the
     * keys a case leaves outlive it, so a pid alone met an old case's keys */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(prefix, sizeof prefix, "test-status-%d-%lld%09ld:", (int)getpid(),
             (long long)now.tv_sec, now.tv_nsec);
    const char *h = getenv("ONSALE_REDIS_HOST"), *p = getenv("ONSALE_REDIS_PORT");
    q_status_opts o = {.host = h ? h : "127.0.0.1",
                       .port = p ? atoi(p) : 16379,
                       .prefix = prefix,
                       .timeout_ms = 1000,
                       .result_ttl_s = 60};
    ck_assert_int_eq(q_status_new(&o, &st), 0);
    ck_assert_int_eq(q_status_ping(st), 0);
}

static void teardown(void)
{
    q_status_free(st);
}

/* Runs one command on a connection of its own (keys the store would not
 * write, such as one of another type); its reply must not be an error. */
static void redis_raw(const char *fmt, ...)
{
    const char *h = getenv("ONSALE_REDIS_HOST"), *p = getenv("ONSALE_REDIS_PORT");
    redisContext *c = redisConnect(h ? h : "127.0.0.1", p ? atoi(p) : 16379);
    ck_assert(c && !c->err);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rr = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert(rr && rr->type != REDIS_REPLY_ERROR);
    freeReplyObject(rr);
    redisFree(c);
}

START_TEST(publish_then_read)
{
    q_status_result r[] = {{.intent_seq = 11,
                            .event_id = 5,
                            .user_id = 9,
                            .json = "{\"state\":\"reserved\"}",
                            .ended = 0},
                           {.intent_seq = 12,
                            .event_id = 5,
                            .user_id = 10,
                            .json = "{\"state\":\"rejected\"}",
                            .ended = 1,
                            .accepted_ms = 100},
                           {.intent_seq = 13,
                            .event_id = 5,
                            .user_id = 11,
                            .json = "{\"state\":\"rejected\"}",
                            .ended = 1,
                            .accepted_ms = 200},
                           {.intent_seq = 14,
                            .event_id = 5,
                            .user_id = 12,
                            .json = "{\"state\":\"rejected\"}",
                            .ended = 1,
                            .accepted_ms = 300}};
    q_status_event ev = {.event_id = 5, .available = 3, .held = 2, .sold = 1, .waiting = 4};
    char cur[64];
    /* user 10: the key names intent 12 by its id (hex16(12) || tag) */
    ck_assert_int_eq(q_status_claim_active(st, 5, 10, "000000000000000c0123456789abcdef", 0, 1000,
                                           NULL, NULL, 0),
                     0);
    /* user 11: the finisher has not caught up, the key is the claim */
    ck_assert_int_eq(q_status_claim_active(st, 5, 11, "pending:200", 0, 1000, NULL, NULL, 0), 0);
    /* user 12: a later join's claim, not intent 14's */
    ck_assert_int_eq(q_status_claim_active(st, 5, 12, "pending:999", 0, 1000, NULL, NULL, 0), 0);
    q_status_drain drain = {13, 1764400000123, 87.25, 0.0125, 8000,          20,   1, 13,
                            7,  0.375,         4242,  1717,   1764400000456, 321.5};
    unsigned long sent = q_status_commands_sent(st);
    ck_assert_int_eq(q_status_publish(st, 1, 13, 250.5, &drain, r, 4, &ev, 1), 0);
    /* ONE versioned write call for the 4 results, ONE call for the 3
     * ended intents' active keys, the event, cursor, rate and drain */
    ck_assert_uint_eq(q_status_commands_sent(st) - sent, 1 + 1 + 1 + 3);
    ck_assert_int_eq(q_status_claim_active(st, 5, 11, "y", 0, 1000, NULL, NULL, 0), 0);
    ck_assert_int_eq(q_status_claim_active(st, 5, 12, "y", 0, 1000, NULL, cur, sizeof cur),
                     ONS_EEXIST);
    ck_assert_str_eq(cur, "pending:999");

    int64_t served[4];
    double rate[4];
    q_status_drain drains[4];
    ck_assert_int_eq(q_status_read_cursors(st, served, rate, drains, 4), 0);
    ck_assert_int_eq(served[1], 13);
    ck_assert_int_eq(served[0], -1);
    ck_assert(rate[1] > 250.4 && rate[1] < 250.6);
    /* the drain comes back whole (one value), unknown where none was published */
    ck_assert_int_eq(drains[1].served, 13);
    ck_assert_int_eq(drains[1].served_at_ms, 1764400000123);
    ck_assert(drains[1].batch_ms > 87.2 && drains[1].batch_ms < 87.3);
    ck_assert(drains[1].record_ms > 0.0124 && drains[1].record_ms < 0.0126);
    ck_assert_int_eq(drains[1].batch_max, 8000);
    ck_assert_int_eq(drains[1].window_ms, 20);
    ck_assert_int_eq(drains[1].applying, 1);
    ck_assert_int_eq(drains[1].applying_end, 13);
    ck_assert_int_eq(drains[1].applying_ctl, 7);
    ck_assert(drains[1].ctl_ms > 0.3749 && drains[1].ctl_ms < 0.3751);
    ck_assert_int_eq(drains[1].ctl_left, 4242);
    ck_assert_int_eq(drains[1].ctl_queued, 1717);
    ck_assert_int_eq(drains[1].polled_by_ms, 1764400000456);
    ck_assert(drains[1].next_ms > 321.4 && drains[1].next_ms < 321.6);
    ck_assert_int_eq(drains[0].served, -1);
    ck_assert(drains[0].batch_ms == 0 && drains[0].record_ms == 0);

    char *json = NULL;
    ck_assert_int_eq(q_status_get_result(st, 11, &json), 0);
    ck_assert_str_eq(json, "{\"state\":\"reserved\"}");
    free(json);
    ck_assert_int_eq(q_status_get_result(st, 99, &json), ONS_ENOTFOUND);

    /* the ended intent's active key is gone: the user may join again */
    ck_assert_int_eq(q_status_claim_active(st, 5, 10, "y", 0, 1000, NULL, NULL, 0), 0);

    q_event_state es;
    ck_assert_int_eq(q_status_event_get(st, 5, &es), 0);
    ck_assert_int_eq(es.available, 3);
    ck_assert_int_eq(es.waiting, 4);
    ck_assert_int_eq(es.sold_out, 0);
    ck_assert_int_eq(q_status_event_set(st, 5, "paused", 1234, 6), 0);
    ck_assert_int_eq(q_status_event_get(st, 5, &es), 0);
    ck_assert_str_eq(es.status, "paused");
    ck_assert_int_eq(es.max_per_user, 6);
    ck_assert_int_eq(es.held, 2);
    ck_assert_int_eq(q_status_event_get(st, 6, &es), ONS_ENOTFOUND);

    /* The home's count is read plainly or not at all (0: from PostgreSQL):
     * a damaged field must not place a join on another partition. */
    ck_assert_int_eq(q_status_event_set_partitions(st, 5, 4), 0);
    ck_assert_int_eq(q_status_event_get(st, 5, &es), 0);
    ck_assert_int_eq(es.partitions, 4);
    const char *bad[] = {"7abc", "0", "-2", "+3", " 3", "65537", "99999999999999999999", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        redis_raw("HSET %sev:5 partitions %s", prefix, bad[i]);
        ck_assert_int_eq(q_status_event_get(st, 5, &es), 0);
        ck_assert_msg(es.partitions == 0, "'%s' read as %d", bad[i], es.partitions);
    }
    redis_raw("HSET %sev:5 partitions 65536", prefix);
    ck_assert_int_eq(q_status_event_get(st, 5, &es), 0);
    ck_assert_int_eq(es.partitions, 65536);
}
END_TEST

/* Results' SETs are formatted in RESP by hand (append_result_set): every
 * length, a seq past 2^40 (partition << 40 | offset), a document bigger than
 * any before it and then smaller ones (the buffer grows and is reused), and
 * bytes that need no escaping in RESP (CR, LF, "$", "*") read back exactly. */
START_TEST(result_sets_read_back_exactly)
{
    static char big[70001];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = "ab\r\n$*0\x7f"[i % 8];
    big[sizeof big - 1] = '\0';
    const int64_t seqs[] = {0, 7, (INT64_C(3) << 40) | 123456789, INT64_MAX};
    const char *docs[] = {"{}", big, "{\"state\":\"waiting\"}", "x\r\n*1\r\n$3\r\nGET"};
    for (size_t i = 0; i < 4; i++) {
        q_status_result r = {.intent_seq = seqs[i], .event_id = 5, .user_id = 1, .json = docs[i]};
        ck_assert_int_eq(q_status_publish(st, 2, 1, 0, NULL, &r, 1, NULL, 0), 0);
    }
    for (size_t i = 0; i < 4; i++) {
        char *json = NULL;
        ck_assert_int_eq(q_status_get_result(st, seqs[i], &json), 0);
        ck_assert_msg(strcmp(json, docs[i]) == 0, "seq %lld: %zu bytes back, %zu sent",
                      (long long)seqs[i], strlen(json), strlen(docs[i]));
        free(json);
    }
}
END_TEST

/* The worker's repair (q_status_repair_results) writes a result again, or
 * drops it, only over an older version: the stored (epoch, version) is
 * compared in Redis, epoch first; a stored result without a version (an
 * older worker's) counts as the oldest. */
static void store_doc(int64_t seq, const char *doc)
{
    q_status_result r = {.intent_seq = seq, .event_id = 5, .user_id = 1, .json = doc};
    ck_assert_int_eq(q_status_publish(st, 2, 1, 0, NULL, &r, 1, NULL, 0), 0);
}

static void assert_doc(int64_t seq, const char *want)
{
    char *json = NULL;
    int rc = q_status_get_result(st, seq, &json);
    if (!want) {
        ck_assert_int_eq(rc, ONS_ENOTFOUND);
        return;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(strcmp(json, want) == 0, "seq %lld holds %s, want %s", (long long)seq, json,
                  want);
    free(json);
}

START_TEST(a_repair_never_replaces_a_later_state)
{
    const char *paying = "{\"state\":\"paying\",\"v\":[3,9]}";
    const char *reserved = "{\"state\":\"reserved\",\"v\":[3,7]}";
    const char *released = "{\"state\":\"released\",\"v\":[3,12]}";
    const char *other = "{\"state\":\"released\",\"v\":[4,1]}";
    const char *old = "{\"state\":\"reserved\"}";
    store_doc(1, paying); /* newer than the repair's document: kept */
    store_doc(2, paying); /* older: replaced */
    store_doc(3, old);    /* no version: replaced */
    store_doc(4, paying); /* dropped: its version is not newer than the drop's */
    store_doc(5, other);  /* a newer epoch's: neither replaced nor dropped */
    store_doc(6, other);
    /* 7: absent, written; 8: absent, nothing to drop (3) */
    /* 5 and 6 in partition 3 (their stored epoch 4 raises its newest) */
    q_status_repair items[] = {
        {1, 2, 3, 7, reserved, 0}, {2, 2, 3, 12, released, 0}, {3, 2, 3, 7, reserved, 0},
        {4, 2, 3, 9, NULL, 0},     {5, 3, 3, 12, released, 0}, {6, 3, 3, -1, NULL, 0},
        {7, 2, 3, 7, reserved, 0}, {8, 2, 3, 7, NULL, 0},
    };
    size_t n = sizeof items / sizeof *items;
    ck_assert_int_eq(q_status_repair_results(st, items, n), 0);
    const int want[] = {0, 1, 1, 2, 0, 0, 1, 3};
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(items[i].outcome == want[i], "item %zu: outcome %d, want %d", i,
                      items[i].outcome, want[i]);
    assert_doc(1, paying);
    assert_doc(2, released);
    assert_doc(3, reserved);
    assert_doc(4, NULL);
    assert_doc(5, other);
    assert_doc(6, other);
    assert_doc(7, reserved);
    assert_doc(8, NULL);
    /* in order: the later of two versions of one result wins either way */
    q_status_repair two[] = {{9, 2, 3, 12, released, 0}, {9, 2, 3, 7, reserved, 0}};
    ck_assert_int_eq(q_status_repair_results(st, two, 2), 0);
    ck_assert_int_eq(two[1].outcome, 0);
    assert_doc(9, released);
}
END_TEST

/* A drop leaves no version behind: partition 7 moved from epoch 5 to 6,
 * the new owner's repair dropped the result it had written at (6,3) (no
 * document kept); the old owner's repair, later, must not write its
 * "reserved" at (5,10) onto the missing key (it would be answered for the
 * result's TTL while PostgreSQL says released). The new owner's own later
 * write lands; an epoch-5 write in a partition no newer owner repaired
 * lands too (the control: the refusal is the partition's epoch). */
/* One repair item (json NULL: a drop); returns its outcome. */
static int repair_one(int64_t seq, int32_t partition, int64_t epoch, int64_t version,
                      const char *json)
{
    q_status_repair it = {seq, partition, epoch, version, json, -1};
    ck_assert_int_eq(q_status_repair_results(st, &it, 1), 0);
    return it.outcome;
}

START_TEST(an_older_owner_never_writes_after_a_newer_drop)
{
    const char *released = "{\"state\":\"released\",\"v\":[6,3]}";
    const char *stale = "{\"state\":\"reserved\",\"v\":[5,10]}";
    const char *later = "{\"state\":\"waiting\",\"v\":[6,4]}";
    store_doc(42, released);
    ck_assert_int_eq(repair_one(42, 7, 6, 3, NULL), 2);
    assert_doc(42, NULL);
    ck_assert_int_eq(repair_one(42, 7, 5, 10, stale), 0);
    assert_doc(42, NULL);
    /* a drop that found nothing raises the epoch too */
    q_status_repair none[] = {{43, 8, 6, -1, NULL, 0}, {43, 8, 5, 10, stale, 0}};
    ck_assert_int_eq(q_status_repair_results(st, none, 2), 0);
    ck_assert_int_eq(none[0].outcome, 3);
    ck_assert_int_eq(none[1].outcome, 0);
    assert_doc(43, NULL);
    ck_assert_int_eq(repair_one(42, 7, 6, 4, later), 1);
    assert_doc(42, later);
    ck_assert_int_eq(repair_one(44, 9, 5, 10, stale), 1);
    assert_doc(44, stale);
}
END_TEST

/* A batch's result writes are compared like a repair's: a deposed
 * owner's late write (partition 4 moved from epoch 1 to 2) never replaces
 * the newer owner's state, nor lands on a key the newer owner wrote and
 * that has gone since (dropped, expired, evicted), nor on a result of the
 * partition the newer owner never wrote; the newer owner's later state
 * lands; each refusal is counted, and publish still succeeds. A result
 * Redis refuses alone fails the publish (a repair is owed). The control:
 * with debug.unversioned_results the stale write lands (the race is real). */
static int publish_one(q_status *s, int64_t seq, const char *doc, int64_t epoch, int64_t version)
{
    q_status_result r = {.intent_seq = seq,
                         .event_id = 5,
                         .user_id = 1,
                         .json = doc,
                         .epoch = epoch,
                         .version = version};
    return q_status_publish(s, 4, 1, 0, NULL, &r, 1, NULL, 0);
}

START_TEST(a_late_batch_result_never_replaces_a_newer_owners)
{
    const char *newer = "{\"state\":\"released\",\"v\":[2,5]}";
    const char *stale = "{\"state\":\"reserved\",\"v\":[1,9]}";
    const char *later = "{\"state\":\"waiting\",\"v\":[2,6]}";
    ck_assert_int_eq(publish_one(st, 70, newer, 2, 5), 0);
    unsigned long refused = q_status_results_refused(st);
    ck_assert_int_eq(publish_one(st, 70, stale, 1, 9), 0);
    assert_doc(70, newer);
    redis_raw("DEL %sr:70", prefix);
    ck_assert_int_eq(publish_one(st, 70, stale, 1, 9), 0);
    assert_doc(70, NULL);
    ck_assert_int_eq(publish_one(st, 71, stale, 1, 9), 0);
    assert_doc(71, NULL);
    ck_assert_uint_eq(q_status_results_refused(st) - refused, 3);
    ck_assert_int_eq(publish_one(st, 70, later, 2, 6), 0);
    assert_doc(70, later);
    ck_assert_int_eq(publish_one(st, 70, later, 2, 6), 0); /* the same again lands */
    assert_doc(70, later);
    redis_raw("HSET %sr:72 a b", prefix);
    ck_assert_int_eq(publish_one(st, 72, later, 2, 7), ONS_EREDIS);
    /* control: plain SETs put the stale state back */
    const char *h = getenv("ONSALE_REDIS_HOST"), *p = getenv("ONSALE_REDIS_PORT");
    q_status_opts o = {.host = h ? h : "127.0.0.1",
                       .port = p ? atoi(p) : 16379,
                       .prefix = prefix,
                       .timeout_ms = 1000,
                       .result_ttl_s = 60,
                       .unversioned_results = 1};
    q_status *plain = NULL;
    ck_assert_int_eq(q_status_new(&o, &plain), 0);
    ck_assert_int_eq(publish_one(plain, 70, stale, 1, 9), 0);
    q_status_free(plain);
    assert_doc(70, stale);
}
END_TEST

/* An item Redis refuses (its key holds a hash) fails alone and is done:
 * the items after it in the call are handled, and the call returns 0 (the
 * worker's repair moves on instead of starting over for good). */
START_TEST(a_refused_repair_item_fails_alone)
{
    const char *doc = "{\"state\":\"waiting\",\"v\":[1,1]}";
    redis_raw("HSET %sr:60 a b", prefix);
    q_status_repair items[] = {
        {60, 1, 1, 1, doc, 0}, {61, 1, 1, 1, doc, 0}, {60, 1, 1, 2, NULL, 0}};
    ck_assert_int_eq(q_status_repair_results(st, items, 3), 0);
    ck_assert_int_eq(items[0].outcome, 4);
    ck_assert_int_eq(items[1].outcome, 1);
    ck_assert_int_eq(items[2].outcome, 4);
    assert_doc(61, doc);
}
END_TEST

/* More than one script call's worth (512 a call): every item answered. */
START_TEST(a_repair_past_one_call)
{
    enum { N = 1300 };
    static q_status_repair items[N];
    static char docs[N][48];
    for (int i = 0; i < N; i++) {
        snprintf(docs[i], sizeof docs[i], "{\"n\":%d,\"v\":[1,%d]}", i, i);
        items[i] = (q_status_repair){100 + i, 1, 1, i, docs[i], 0};
    }
    ck_assert_int_eq(q_status_repair_results(st, items, N), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(items[i].outcome, 1);
    assert_doc(100 + N - 1, docs[N - 1]);
}
END_TEST

/* q_status_publish_nowait: written out without waiting, applied by Redis
 * in order (the next call on s reads the replies first); an error reply
 * is reported by the next publish, once. */
START_TEST(publish_nowait_applies_and_reports_errors_late)
{
    q_status_result r = {.intent_seq = 21, .event_id = 5, .user_id = 1, .json = "{\"a\":1}"};
    ck_assert_int_eq(q_status_publish_nowait(st, 3, 22, 1.5, NULL, &r, 1, NULL, 0), 0);
    char *json = NULL;
    ck_assert_int_eq(q_status_get_result(st, 21, &json), 0);
    ck_assert_str_eq(json, "{\"a\":1}");
    free(json);
    /* An event key that is not a hash: that pipeline's HSET fails. */
    redis_raw("SET %sev:77 notahash EX 60", prefix);
    q_status_event ev = {.event_id = 77, .available = 1};
    ck_assert_int_eq(q_status_publish_nowait(st, 3, 23, 1.5, NULL, NULL, 0, &ev, 1), 0);
    r.intent_seq = 24;
    ck_assert_int_eq(q_status_publish_nowait(st, 3, 25, 1.5, NULL, &r, 1, NULL, 0), ONS_EREDIS);
    ck_assert_int_eq(q_status_publish_nowait(st, 3, 26, 1.5, NULL, &r, 1, NULL, 0), 0);
    int64_t served[4];
    double rate[4];
    ck_assert_int_eq(q_status_read_cursors(st, served, rate, NULL, 4), 0);
    ck_assert_int_eq(served[3], 26);
    ck_assert_int_eq(q_status_publish(st, 3, 27, 1.5, NULL, NULL, 0, NULL, 0), 0);
}
END_TEST

/* q_status_publish_cursors_nowait: several partitions' cursors and
 * drains in one pipeline, appended behind a projection whose replies are
 * still unread (not waited for: the next call reads them all, an error
 * among them reported once); one behind another (an idle owner) reads the
 * first's replies before writing, and every value lands in order. */
START_TEST(publish_cursors_nowait_behind_unread_replies)
{
    /* a projection whose pipeline fails (an event key that is not a hash) */
    redis_raw("SET %sev:78 notahash EX 60", prefix);
    q_status_event ev = {.event_id = 78, .available = 1};
    ck_assert_int_eq(q_status_publish_nowait(st, 3, 40, 1.5, NULL, NULL, 0, &ev, 1), 0);
    const int32_t parts[3] = {0, 1, 2};
    const int64_t at[3] = {10, 11, 12};
    const double rates[3] = {1, 2, 3};
    q_status_drain d[3];
    for (int i = 0; i < 3; i++)
        d[i] = (q_status_drain){
            at[i], 1764400000000 + i, 50, 0.1, 8000, 20, 0, at[i], 0, 0, -1, -1, 0, 0};
    /* written behind the unread replies: the error is not read yet */
    ck_assert_int_eq(q_status_publish_cursors_nowait(st, 3, parts, at, rates, d), 0);
    const int64_t later[3] = {13, 14, 15};
    for (int i = 0; i < 3; i++)
        d[i].served = d[i].applying_end = later[i];
    /* behind its own: reads them first, so the error is reported now */
    ck_assert_int_eq(q_status_publish_cursors_nowait(st, 3, parts, later, rates, d), ONS_EREDIS);
    ck_assert_int_eq(q_status_publish_cursors_nowait(st, 3, parts, later, rates, d), 0);
    int64_t served[4];
    double rate[4];
    q_status_drain got[4];
    ck_assert_int_eq(q_status_read_cursors(st, served, rate, got, 4), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(served[i], later[i]);
        ck_assert_double_eq_tol(rate[i], rates[i], 1e-9);
        ck_assert_int_eq(got[i].served, later[i]);
        ck_assert_int_eq(got[i].served_at_ms, 1764400000000 + i);
    }
    ck_assert_int_eq(served[3], 40);
    ck_assert_int_eq(q_status_publish(st, 3, 41, 1.5, NULL, NULL, 0, NULL, 0), 0);
}
END_TEST

START_TEST(active_and_idempotency_keys)
{
    char cur[64];
    ck_assert_int_eq(
        q_status_claim_active(st, 1, 2, "pending:1000", 1000, 50, NULL, cur, sizeof cur), 0);
    ck_assert_int_eq(
        q_status_claim_active(st, 1, 2, "pending:1040", 1040, 50, NULL, cur, sizeof cur),
        ONS_EEXIST);
    ck_assert_str_eq(cur, "pending:1000");
    /* a stale pending claim is taken over; so is the request's own old one */
    ck_assert_int_eq(
        q_status_claim_active(st, 1, 2, "pending:1051", 1051, 50, NULL, cur, sizeof cur), 0);
    ck_assert_int_eq(
        q_status_claim_active(st, 1, 2, "pending:1052", 1052, 50, "pending:1051", cur, sizeof cur),
        0);
    /* compare-and-set over the own claim only */
    ck_assert_int_eq(q_status_replace_active(st, 1, 2, "pending:1051", "abc"), ONS_ECONFLICT);
    ck_assert_int_eq(q_status_replace_active(st, 1, 2, "pending:1052", "abc"), 0);
    ck_assert_int_eq(
        q_status_claim_active(st, 1, 2, "pending:9999", 9999, 50, NULL, cur, sizeof cur),
        ONS_EEXIST);
    ck_assert_str_eq(cur, "abc");
    q_active_set items[] = {{1, 2, "def", "zzz", 0}, {1, 3, "ghi", NULL, 0}};
    ck_assert_int_eq(q_status_set_active_many(st, items, 2), 0);
    ck_assert_int_eq(items[0].rc, ONS_ECONFLICT);
    ck_assert_int_eq(items[1].rc, 0);
    /* compare-and-delete */
    ck_assert_int_eq(q_status_clear_active(st, 1, 2, "zzz"), 0);
    ck_assert_int_eq(q_status_claim_active(st, 1, 2, "again", 9999, 50, NULL, cur, sizeof cur),
                     ONS_EEXIST);
    ck_assert_int_eq(q_status_clear_active(st, 1, 2, "abc"), 0);
    ck_assert_int_eq(q_status_claim_active(st, 1, 2, "again", 9999, 50, NULL, cur, sizeof cur), 0);

    char *rec = NULL;
    ck_assert_int_eq(q_status_idem_begin(st, 2, "key 1", "h1", NULL, 0, 60, &rec), 0);
    ck_assert_int_eq(q_status_idem_begin(st, 2, "key 1", "h1", NULL, 0, 60, &rec), ONS_EEXIST);
    ck_assert_str_eq(rec, "{\"h\":\"h1\",\"s\":0}");
    free(rec);
    ck_assert_int_eq(q_status_idem_finish(st, 2, "key 1", "h1", 202, "{\"a\":1}", 60), 0);
    ck_assert_int_eq(q_status_idem_begin(st, 2, "key 1", "h2", NULL, 0, 60, &rec), ONS_EEXIST);
    ck_assert_str_eq(rec, "{\"h\":\"h1\",\"s\":202,\"b\":{\"a\":1}}");
    free(rec);
    /* abort removes only the request's own in-flight record: not a stored
     * answer, nor another attempt's claim (another node or claim time) */
    ck_assert_int_eq(q_status_idem_abort(st, 2, "key 1", "h1", NULL, 0), 0);
    ck_assert_int_eq(q_status_idem_begin(st, 2, "key 1", "h2", NULL, 0, 60, &rec), ONS_EEXIST);
    free(rec);
    ck_assert_int_eq(q_status_idem_abort(st, 2, "key 2", "h1", "n1", 5), 0); /* absent */
    ck_assert_int_eq(q_status_idem_begin(st, 2, "key 2", "h1", "n1", 5, 60, &rec), 0);
    ck_assert_int_eq(q_status_idem_abort(st, 2, "key 2", "h1", "n1", 6), 0);
    ck_assert_int_eq(q_status_idem_abort(st, 2, "key 2", "h1", "n2", 5), 0);
    ck_assert_int_eq(q_status_idem_begin(st, 2, "key 2", "h1", "n1", 5, 60, &rec), ONS_EEXIST);
    free(rec);
    ck_assert_int_eq(q_status_idem_abort(st, 2, "key 2", "h1", "n1", 5), 0);
    ck_assert_int_eq(q_status_idem_begin(st, 2, "key 2", "h1", "n1", 5, 60, &rec), 0);
    ck_assert_int_eq(q_status_idem_abort(st, 2, "key 1", "h1", NULL, 0), 0);
    redis_raw("DEL %sidem:2:%s", prefix, "key 1"); /* the stored answer, by hand */
    ck_assert_int_eq(q_status_idem_begin(st, 2, "key 1", "h2", NULL, 0, 60, &rec), 0);
    /* an unknown outcome is kept; a retry takes it back by compare-and-set */
    ck_assert_int_eq(q_status_idem_unknown(st, 2, "key 1", "h2", 3, 1234, 5678, 60), 0);
    ck_assert_int_eq(q_status_idem_begin(st, 2, "key 1", "h2", NULL, 0, 60, &rec), ONS_EEXIST);
    ck_assert_str_eq(rec, "{\"h\":\"h2\",\"s\":-1,\"p\":3,\"t\":1234,\"at\":5678}");
    ck_assert_int_eq(q_status_idem_retake(st, 2, "key 1", "other", "h2", NULL, 0, 60),
                     ONS_ECONFLICT);
    ck_assert_int_eq(q_status_idem_retake(st, 2, "key 1", rec, "h2", NULL, 0, 60), 0);
    ck_assert_int_eq(q_status_idem_retake(st, 2, "key 1", rec, "h2", NULL, 0, 60), ONS_ECONFLICT);
    free(rec);
}
END_TEST

/* The claims of one claimer round in one pipeline keep the rules of the
 * single claim: the first claim of a key wins and its twin sees it; a
 * stale pending claim and a request's own old claim are taken over; a key
 * that names an intent is not; an item's rate keys refuse that item alone
 * and charge nothing for it. */
START_TEST(claims_in_one_pipeline)
{
    ck_assert_int_eq(q_status_claim_active(st, 7, 4, "pending:100", 100, 50, NULL, NULL, 0), 0);
    ck_assert_int_eq(q_status_claim_active(st, 7, 5, "pending:100", 100, 50, NULL, NULL, 0), 0);
    ck_assert_int_eq(
        q_status_claim_active(st, 7, 6, "000000000000000c0123456789abcdef", 100, 50, NULL, NULL, 0),
        0);
    /* user 8's bucket: one request a minute, burst 1, spent by this check */
    q_rate_key rk[] = {{"rl:join:u:8", 60000, 1}};
    q_rate_out ro;
    ck_assert_int_eq(q_status_rate_check(st, rk, 1, &ro), 0);
    ck_assert_int_eq(ro.limited, 0);
    q_rate_key rk9[] = {{"rl:join:u:9", 60000, 1}};
    q_active_claim c[] = {
        {.event_id = 7, .user_id = 1, .token = "pending:200"},
        {.event_id = 7, .user_id = 1, .token = "pending:200"}, /* the twin */
        {.event_id = 7, .user_id = 2, .token = "pending:200"},
        {.event_id = 7, .user_id = 4, .token = "pending:200"}, /* 100 ms old, stale after 150 */
        {.event_id = 7, .user_id = 5, .token = "pending:200", .own_old = "pending:100"},
        {.event_id = 7, .user_id = 6, .token = "pending:200"},
        {.event_id = 7, .user_id = 8, .token = "pending:200", .rate_keys = rk, .nrate = 1},
        {.event_id = 7, .user_id = 9, .token = "pending:200", .rate_keys = rk9, .nrate = 1},
    };
    unsigned long sent = q_status_commands_sent(st);
    ck_assert_int_eq(q_status_claim_active_many(st, c, 8, 200, 150), 0);
    /* the whole round is one command: one script call for every claim */
    ck_assert_uint_eq(q_status_commands_sent(st) - sent, 1);
    ck_assert_int_eq(c[0].rc, 0);
    ck_assert_int_eq(c[1].rc, ONS_EEXIST);
    ck_assert_str_eq(c[1].current, "pending:200");
    ck_assert_int_eq(c[2].rc, 0);
    ck_assert_int_eq(c[3].rc, ONS_EEXIST);
    ck_assert_str_eq(c[3].current, "pending:100");
    ck_assert_int_eq(c[4].rc, 0);
    ck_assert_int_eq(c[5].rc, ONS_EEXIST);
    ck_assert_str_eq(c[5].current, "000000000000000c0123456789abcdef");
    ck_assert_int_eq(c[6].rc, ONS_EFULL); /* refused: nothing claimed */
    ck_assert_int_eq(c[6].rate.limited, 1);
    ck_assert_int_gt(c[6].rate.ms, 0);
    ck_assert_int_eq(c[7].rc, 0);
    ck_assert_int_eq(c[7].rate.limited, 0);
    ck_assert_int_eq(c[7].rate.remaining, 0);
    char cur[64] = "";
    ck_assert_int_eq(
        q_status_claim_active(st, 7, 8, "pending:300", 300, 150, NULL, cur, sizeof cur), 0);
    /* later, user 4's claim has gone stale and is taken over */
    q_active_claim later = {.event_id = 7, .user_id = 4, .token = "pending:300"};
    ck_assert_int_eq(q_status_claim_active_many(st, &later, 1, 300, 150), 0);
    ck_assert_int_eq(later.rc, 0);
    ck_assert_int_eq(q_status_claim_active_many(st, NULL, 0, 300, 150), 0);
}
END_TEST

/* The keys of one claimer round in one pipeline: each free key is owned
 * by its request (and then taken for the single begin too), a taken one
 * is told apart without its record being read, a twin in the same round
 * loses to the first. */
/* A finisher batch's active keys in one script call: each a
 * compare-and-set over its own claim (or a plain write), in order, so a
 * later write of the same key sees an earlier one's. */
START_TEST(active_writes_in_one_call)
{
    ck_assert_int_eq(q_status_claim_active(st, 9, 1, "pending:1", 1, 50, NULL, NULL, 0), 0);
    ck_assert_int_eq(q_status_claim_active(st, 9, 2, "pending:1", 1, 50, NULL, NULL, 0), 0);
    q_active_set w[] = {
        {9, 1, "id-1", "pending:1", -1}, /* its own claim: written */
        {9, 2, "id-2", "pending:0", -1}, /* not its claim: left alone */
        {9, 3, "id-3", "pending:1", -1}, /* no key (the worker deleted it): not resurrected */
        {9, 1, "id-1b", "id-1", -1},     /* sees the first write */
        {9, 4, "id-4", NULL, -1},        /* unconditional */
    };
    unsigned long sent = q_status_commands_sent(st);
    ck_assert_int_eq(q_status_set_active_many(st, w, 5), 0);
    ck_assert_uint_eq(q_status_commands_sent(st) - sent, 1);
    ck_assert_int_eq(w[0].rc, 0);
    ck_assert_int_eq(w[1].rc, ONS_ECONFLICT);
    ck_assert_int_eq(w[2].rc, ONS_ECONFLICT);
    ck_assert_int_eq(w[3].rc, 0);
    ck_assert_int_eq(w[4].rc, 0);
    char cur[64] = "";
    const char *want[] = {"id-1b", "pending:1", NULL, "id-4"};
    for (int u = 1; u <= 4; u++) {
        int rc = q_status_claim_active(st, 9, u, "x", 2, 1LL << 50, NULL, cur, sizeof cur);
        if (want[u - 1]) {
            ck_assert_int_eq(rc, ONS_EEXIST);
            ck_assert_str_eq(cur, want[u - 1]);
        } else {
            ck_assert_int_eq(rc, 0);
        }
    }
    ck_assert_int_eq(q_status_set_active_many(st, NULL, 0), 0);
}
END_TEST

/* A claim Redis refuses (its active or rate key holds another type, or a
 * rate key no number) fails alone and writes nothing, not even its rate
 * charge; the claims around it in the same script call are taken and say
 * so (they were reported failed while their keys stayed written). */
START_TEST(a_refused_claim_fails_alone)
{
    redis_raw("HSET %sactive:31:2 f v", prefix);
    redis_raw("HSET %srl:join:u:31:4 f v", prefix);
    redis_raw("SET %srl:join:u:31:5 notanumber", prefix);
    redis_raw("HSET %sactive:31:6 f v", prefix);
    q_rate_key rk4[] = {{"rl:join:u:31:4", 60000, 1}}, rk5[] = {{"rl:join:u:31:5", 60000, 1}},
               rk6[] = {{"rl:join:u:31:6", 60000, 1}};
    q_active_claim c[] = {
        {.event_id = 31, .user_id = 1, .token = "pending:5"},
        {.event_id = 31, .user_id = 2, .token = "pending:5"}, /* a hash */
        {.event_id = 31, .user_id = 3, .token = "pending:5"},
        {.event_id = 31, .user_id = 4, .token = "pending:5", .rate_keys = rk4, .nrate = 1},
        {.event_id = 31, .user_id = 5, .token = "pending:5", .rate_keys = rk5, .nrate = 1},
        {.event_id = 31, .user_id = 6, .token = "pending:5", .rate_keys = rk6, .nrate = 1},
        {.event_id = 31, .user_id = 7, .token = "pending:5"},
    };
    ck_assert_int_eq(q_status_claim_active_many(st, c, 7, 5, 1000), ONS_EREDIS);
    const int want[] = {0, ONS_EREDIS, 0, ONS_EREDIS, ONS_EREDIS, ONS_EREDIS, 0};
    char cur[64];
    for (int i = 0; i < 7; i++) {
        ck_assert_int_eq(c[i].rc, want[i]);
        if (want[i] == 0) { /* taken: the key holds the claim */
            ck_assert_int_eq(
                q_status_claim_active(st, 31, i + 1, "x", 6, 1000, NULL, cur, sizeof cur),
                ONS_EEXIST);
            ck_assert_str_eq(cur, "pending:5");
        }
    }
    /* users 4 and 5: no claim written; user 6: its rate key not charged */
    ck_assert_int_eq(q_status_claim_active(st, 31, 4, "x", 6, 1000, NULL, NULL, 0), 0);
    ck_assert_int_eq(q_status_claim_active(st, 31, 5, "x", 6, 1000, NULL, NULL, 0), 0);
    q_rate_out ro;
    ck_assert_int_eq(q_status_rate_check(st, rk6, 1, &ro), 0);
    ck_assert_int_eq(ro.limited, 0);
    /* The finisher's writes read with one MGET (another type reads as
     * nothing) and write with one MSET (which overwrites any type): no
     * item can fail partway. A compare-and-set over a hash finds no claim;
     * a plain write replaces it. */
    redis_raw("HSET %sactive:31:8 f v", prefix);
    q_active_set w[] = {{31, 2, "id-2", "pending:5", -1},
                        {31, 1, "id-1", "pending:5", -1},
                        {31, 8, "id-8", NULL, -1}};
    ck_assert_int_eq(q_status_set_active_many(st, w, 3), 0);
    ck_assert_int_eq(w[0].rc, ONS_ECONFLICT);
    ck_assert_int_eq(w[1].rc, 0);
    ck_assert_int_eq(w[2].rc, 0);
    ck_assert_int_eq(q_status_claim_active(st, 31, 8, "x", 6, 1000, NULL, cur, sizeof cur),
                     ONS_EEXIST);
    ck_assert_str_eq(cur, "id-8");
}
END_TEST

/* The commands Redis runs on a claimer round's keys, counted from MONITOR
 * (which lists a script's commands too) on a connection of its own: each
 * line naming a key of this test's prefix is counted by its command. The
 * round ends with a marker GET on the watch connection, so every line
 * before it is the round's. Other clients of the shared Redis use other
 * prefixes. */
typedef struct key_commands {
    int get, set, other;
} key_commands;

static key_commands round_commands(q_active_claim *c, size_t n)
{
    const char *h = getenv("ONSALE_REDIS_HOST"), *p = getenv("ONSALE_REDIS_PORT");
    redisContext *mon = redisConnect(h ? h : "127.0.0.1", p ? atoi(p) : 16379);
    redisContext *mark = redisConnect(h ? h : "127.0.0.1", p ? atoi(p) : 16379);
    ck_assert(mon && !mon->err && mark && !mark->err);
    redisReply *r = redisCommand(mon, "MONITOR");
    ck_assert(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    ck_assert_int_eq(q_status_claim_active_many(st, c, n, 500, 1000), 0);
    char marker[96];
    snprintf(marker, sizeof marker, "%smonitor-end", prefix);
    freeReplyObject(redisCommand(mark, "GET %s", marker));
    key_commands k = {0, 0, 0};
    for (;;) {
        ck_assert_int_eq(redisGetReply(mon, (void **)&r), REDIS_OK);
        ck_assert(r->type == REDIS_REPLY_STATUS);
        int end = strstr(r->str, marker) != NULL;
        if (!end && strstr(r->str, prefix)) {
            const char *cmd = strstr(r->str, "] \"");
            ck_assert_ptr_nonnull(cmd);
            cmd += 3;
            if (strncmp(cmd, "GET\"", 4) == 0)
                k.get++;
            else if (strncmp(cmd, "SET\"", 4) == 0)
                k.set++;
            else if (strncmp(cmd, "TIME", 4) != 0 && strncmp(cmd, "EVALSHA", 7) != 0)
                k.other++;
        }
        freeReplyObject(r);
        if (end)
            break;
    }
    redisFree(mon);
    redisFree(mark);
    return k;
}

/* A fresh claim (the stampede's common case: the fan holds no active key)
 * costs Redis one command for its active key, SET NX, where it was a GET
 * and a SET; its rate key one read and one write as before. 8 fresh claims
 * with a rate key each: 8 GETs (the rate keys) and 16 SETs; the old script
 * ran 16 GETs. A held key is still read (GET) and told apart. */
START_TEST(a_fresh_claim_is_one_command)
{
    q_rate_key rk[8][1];
    char names[8][32];
    q_active_claim c[9];
    for (int i = 0; i < 8; i++) {
        snprintf(names[i], sizeof names[i], "rl:join:u:41:%d", i);
        rk[i][0] = (q_rate_key){names[i], 60000, 5};
        c[i] = (q_active_claim){
            .event_id = 41, .user_id = i, .token = "pending:500", .rate_keys = rk[i], .nrate = 1};
    }
    key_commands k = round_commands(c, 8);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(c[i].rc, 0);
        ck_assert_int_eq(c[i].rate.limited, 0);
        ck_assert_int_eq(c[i].rate.remaining, 4);
    }
    ck_assert_int_eq(k.get, 8);
    ck_assert_int_eq(k.set, 16);
    ck_assert_int_eq(k.other, 0);
    /* held (by the round above): SET NX fails, the key is read, claim()
     * refuses; the rate charge is still written (as before) */
    c[8] = (q_active_claim){
        .event_id = 41, .user_id = 3, .token = "pending:600", .rate_keys = rk[3], .nrate = 1};
    k = round_commands(&c[8], 1);
    ck_assert_int_eq(c[8].rc, ONS_EEXIST);
    ck_assert_str_eq(c[8].current, "pending:500");
    ck_assert_int_eq(c[8].rate.remaining, 3);
    ck_assert_int_eq(k.get, 2);
    ck_assert_int_eq(k.set, 2);
}
END_TEST

/* A sell-out's batch ends batch.sold_out_rejects (8,000) intents at once,
 * more than one script can hand to MGET and DEL (Lua's unpack refuses
 * ~8,000 values): the publish splits the deletes, and every ended fan's
 * active key goes, so each may join again. Fails with one call for all
 * (the script's error fails the publish and leaves the keys). */
START_TEST(a_sell_outs_ended_intents_all_free_their_keys)
{
    enum { N = 9000 };
    static q_status_result r[N];
    static q_active_claim c[256];
    static char tokens[256][32];
    for (size_t i = 0; i < N; i++)
        r[i] = (q_status_result){.intent_seq = (int64_t)i + 1,
                                 .event_id = 21,
                                 .user_id = (int64_t)i,
                                 .json = "{\"state\":\"sold_out\"}",
                                 .ended = 1,
                                 .accepted_ms = 7};
    for (size_t base = 0; base < N; base += 256) {
        size_t m = N - base < 256 ? N - base : 256;
        for (size_t i = 0; i < m; i++) {
            snprintf(tokens[i], sizeof tokens[i], "pending:7");
            c[i] = (q_active_claim){
                .event_id = 21, .user_id = (int64_t)(base + i), .token = tokens[i]};
        }
        ck_assert_int_eq(q_status_claim_active_many(st, c, m, 8, 1LL << 40), 0);
    }
    ck_assert_int_eq(q_status_publish(st, 2, N, 1.0, NULL, r, N, NULL, 0), 0);
    for (int u = 0; u < N; u += 999)
        ck_assert_int_eq(q_status_claim_active(st, 21, u, "again", 9, 1LL << 40, NULL, NULL, 0), 0);
    ck_assert_int_eq(q_status_claim_active(st, 21, N - 1, "again", 9, 1LL << 40, NULL, NULL, 0), 0);
}
END_TEST

/* An in-flight record names its node and claim time; the node's liveness
 * key lapses by itself; a retake names the retaker. */
START_TEST(in_flight_records_name_their_node)
{
    char *rec = NULL;
    ck_assert_int_eq(q_status_node_alive(st, "n1"), 0);
    ck_assert_int_eq(q_status_node_beat(st, "n1", 300), 0);
    ck_assert_int_eq(q_status_node_alive(st, "n1"), 1);
    ck_assert_int_eq(q_status_idem_begin(st, 6, "k", "h", "n1", 1234, 60, &rec), 0);
    ck_assert_int_eq(q_status_idem_begin(st, 6, "k", "h", "n2", 99, 60, &rec), ONS_EEXIST);
    ck_assert_str_eq(rec, "{\"h\":\"h\",\"s\":0,\"n\":\"n1\",\"t\":1234}");
    ck_assert_int_eq(q_status_idem_retake(st, 6, "k", rec, "h", "n2", 99, 60), 0);
    free(rec);
    rec = NULL;
    ck_assert_int_eq(q_status_idem_begin(st, 6, "k", "h", "n3", 5, 60, &rec), ONS_EEXIST);
    ck_assert_str_eq(rec, "{\"h\":\"h\",\"s\":0,\"n\":\"n2\",\"t\":99}");
    free(rec);
    usleep(450 * 1000);
    ck_assert_int_eq(q_status_node_alive(st, "n1"), 0);
}
END_TEST

START_TEST(idempotency_keys_in_one_pipeline)
{
    char *rec = NULL;
    ck_assert_int_eq(q_status_idem_begin(st, 3, "taken", "h0", NULL, 0, 60, &rec), 0);
    q_idem_begin b[] = {
        {.user_id = 3, .key = "fresh", .body_hash = "h1"},
        {.user_id = 3, .key = "taken", .body_hash = "h0"},
        {.user_id = 4, .key = "fresh", .body_hash = "h1"}, /* another user's key */
        {.user_id = 3, .key = "fresh", .body_hash = "h1"}, /* the twin */
    };
    ck_assert_int_eq(q_status_idem_begin_many(st, b, 4, 60), 0);
    ck_assert_int_eq(b[0].rc, 0);
    ck_assert_int_eq(b[1].rc, ONS_EEXIST);
    ck_assert_int_eq(b[2].rc, 0);
    ck_assert_int_eq(b[3].rc, ONS_EEXIST);
    ck_assert_int_eq(q_status_idem_begin(st, 3, "fresh", "h1", NULL, 0, 60, &rec), ONS_EEXIST);
    ck_assert_str_eq(rec, "{\"h\":\"h1\",\"s\":0}");
    free(rec);
    ck_assert_int_eq(q_status_idem_begin_many(st, NULL, 0, 60), 0);
}
END_TEST

/* Rate checks of one round in one pipeline: a check without keys is
 * admitted without being sent, each check's charge is seen by the next. */
START_TEST(rate_checks_in_one_pipeline)
{
    q_rate_key rk[] = {{"rl:batch:u:1", 60000, 1}};
    q_rate_check c[] = {{.keys = rk, .n = 1}, {.keys = NULL, .n = 0}, {.keys = rk, .n = 1}};
    ck_assert_int_eq(q_status_rate_check_many(st, c, 3), 0);
    ck_assert_int_eq(c[0].rc, 0);
    ck_assert_int_eq(c[0].out.limited, 0);
    ck_assert_int_eq(c[1].rc, 0);
    ck_assert_int_eq(c[1].out.key, -1);
    ck_assert_int_eq(c[2].rc, 0);
    ck_assert_int_eq(c[2].out.limited, 1);
    ck_assert_int_eq(c[2].out.key, 0);
    q_rate_check none = {.keys = NULL, .n = 0};
    ck_assert_int_eq(q_status_rate_check_many(st, &none, 1), 0);
    ck_assert_int_eq(q_status_rate_check_many(st, NULL, 0), 0);
}
END_TEST

/* The final responses of one finisher round in one pipeline: each key's
 * record reads back whole. */
START_TEST(responses_in_one_pipeline)
{
    char *rec = NULL;
    q_idem_done d[] = {{5, "one", "h1", "{\"a\":1}", 202, 60, 0},
                       {5, "two", "h2", "{\"b\":2}", 409, 60, 0}};
    ck_assert_int_eq(q_status_idem_finish_many(st, d, 2), 0);
    ck_assert_int_eq(d[0].rc, 0);
    ck_assert_int_eq(d[1].rc, 0);
    ck_assert_int_eq(q_status_idem_begin(st, 5, "two", "h2", NULL, 0, 60, &rec), ONS_EEXIST);
    ck_assert_str_eq(rec, "{\"h\":\"h2\",\"s\":409,\"b\":{\"b\":2}}");
    free(rec);
    ck_assert_int_eq(q_status_idem_finish_many(st, NULL, 0), 0);
}
END_TEST

START_TEST(unreachable_redis_is_an_error_not_a_crash)
{
    q_status *down;
    q_status_opts o = {.host = "127.0.0.1", .port = 1, .prefix = "x:", .timeout_ms = 200};
    ck_assert_int_eq(q_status_new(&o, &down), 0);
    ck_assert_int_eq(q_status_ping(down), ONS_EREDIS);
    int64_t served[2];
    double rate[2];
    ck_assert_int_eq(q_status_read_cursors(down, served, rate, NULL, 2), ONS_EREDIS);
    ck_assert_int_eq(served[0], -1);
    char *json;
    ck_assert_int_eq(q_status_get_result(down, 1, &json), ONS_EREDIS);
    q_active_claim c[2] = {{.event_id = 1, .user_id = 1, .token = "pending:1"},
                           {.event_id = 1, .user_id = 2, .token = "pending:1"}};
    ck_assert_int_eq(q_status_claim_active_many(down, c, 2, 1, 1), ONS_EREDIS);
    ck_assert_int_eq(c[0].rc, ONS_EREDIS);
    ck_assert_int_eq(c[1].rc, ONS_EREDIS);
    q_idem_begin b = {.user_id = 1, .key = "k", .body_hash = "h"};
    ck_assert_int_eq(q_status_idem_begin_many(down, &b, 1, 60), ONS_EREDIS);
    ck_assert_int_eq(b.rc, ONS_EREDIS);
    q_rate_key rk[] = {{"rl:x", 1000, 1}};
    q_rate_check rc = {.keys = rk, .n = 1};
    ck_assert_int_eq(q_status_rate_check_many(down, &rc, 1), ONS_EREDIS);
    ck_assert_int_eq(rc.rc, ONS_EREDIS);
    q_idem_done d = {1, "k", "h", "{}", 200, 60, 0};
    ck_assert_int_eq(q_status_idem_finish_many(down, &d, 1), ONS_EREDIS);
    ck_assert_int_eq(d.rc, ONS_EREDIS);
    /* A failed read still leaves the "unknown" state: the event view
     * renders from PostgreSQL then, and took its crowd (waiting,
     * holds_active) from whatever the caller's stack held (its
     * refresh_after_ms 60 s under a hung Redis). */
    q_event_state es;
    memset(&es, 0x55, sizeof es);
    char sections[8] = "junk";
    ck_assert_int_eq(q_status_event_view_get(down, 1, &es, sections, sizeof sections), ONS_EREDIS);
    ck_assert_int_eq(es.waiting, -1);
    ck_assert_int_eq(es.holds_active, 0);
    ck_assert_int_eq(es.available, -1);
    ck_assert_int_eq(es.sold_out, 0);
    ck_assert_str_eq(sections, "");
    q_status_free(down);
}
END_TEST

/* A port that accepts connections (the kernel's backlog) and never answers:
 * what a stopped (SIGSTOP) Redis looks like. Returns the listening socket;
 * *port gets its port. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Milliseconds one PING takes on s, which must fail. */
static int64_t failed_ping_ms(q_status *s)
{
    int64_t t0 = ons_mono_ms();
    ck_assert_int_eq(q_status_ping(s), ONS_EREDIS);
    return ons_mono_ms() - t0;
}

/* A hung Redis: the call that timed out holds the calls behind it for
 * down_ms (they fail at once), then one tries again and waits again. The
 * control (down_ms 0) shows each call waiting out its own timeout. */
START_TEST(a_timed_out_redis_is_not_asked_again_for_down_ms)
{
    int port, fd = silent_listener(&port);
    q_status *hung, *control;
    q_status_opts o = {
        .host = "127.0.0.1", .port = port, .prefix = "x:", .timeout_ms = 200, .down_ms = 1000};
    ck_assert_int_eq(q_status_new(&o, &hung), 0); /* its first connect timed out */
    for (int i = 0; i < 5; i++)
        ck_assert_int_lt(failed_ping_ms(hung), 100);
    usleep(1100 * 1000);
    ck_assert_int_ge(failed_ping_ms(hung), 150); /* asked again, waited again */
    ck_assert_int_lt(failed_ping_ms(hung), 100);
    o.down_ms = 0;
    ck_assert_int_eq(q_status_new(&o, &control), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_ge(failed_ping_ms(control), 150);
    q_status_free(hung);
    q_status_free(control);
    close(fd);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"publish_then_read", publish_then_read},
        {"result_sets", result_sets_read_back_exactly},
        {"a_repair_never_replaces_a_later_state", a_repair_never_replaces_a_later_state},
        {"a_repair_past_one_call", a_repair_past_one_call},
        {"an_older_owner_never_writes_after_a_newer_drop",
         an_older_owner_never_writes_after_a_newer_drop},
        {"a_refused_repair_item_fails_alone", a_refused_repair_item_fails_alone},
        {"a_late_batch_result_never_replaces_a_newer_owners",
         a_late_batch_result_never_replaces_a_newer_owners},
        {"publish_nowait", publish_nowait_applies_and_reports_errors_late},
        {"publish_cursors_nowait", publish_cursors_nowait_behind_unread_replies},
        {"active_and_idempotency_keys", active_and_idempotency_keys},
        {"claims_in_one_pipeline", claims_in_one_pipeline},
        {"active_writes_in_one_call", active_writes_in_one_call},
        {"a_refused_claim_fails_alone", a_refused_claim_fails_alone},
        {"a_fresh_claim_is_one_command", a_fresh_claim_is_one_command},
        {"sell_out_frees_every_key", a_sell_outs_ended_intents_all_free_their_keys},
        {"idempotency_keys_in_one_pipeline", idempotency_keys_in_one_pipeline},
        {"in_flight_records_name_their_node", in_flight_records_name_their_node},
        {"rate_checks_in_one_pipeline", rate_checks_in_one_pipeline},
        {"responses_in_one_pipeline", responses_in_one_pipeline},
        {"unreachable_redis_is_an_error_not_a_crash", unreachable_redis_is_an_error_not_a_crash},
        {"a_timed_out_redis_is_not_asked_again", a_timed_out_redis_is_not_asked_again_for_down_ms},
    };
    return ons_check_run_fixture("status", cases, sizeof cases / sizeof *cases, 60, setup,
                                 teardown);
}
