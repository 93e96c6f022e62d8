/* test_supervisor.c - the worker's partition slots (workers/supervisor):
 * every state transition, the retry delays and the batch-failure backoff
 * schedule, against a fake store and consumer. No services. */
#include "tests/check_run.h"
#include "wk_fixture.h"
#include "common/err.h"
#include "workers/partition.h"
#include "queue/status.h"
#include "workers/supervisor.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

/* The fake store and consumer: what the database answers next, and what
 * the supervisor asked for. */
typedef struct fake {
    int claim_rc, recheck_rc, seek_rc, new_part_fails;
    int64_t db_epoch, db_next, db_ctl_next;
    int claims, rechecks, seeks, pauses, parts;
    int64_t recheck_epoch, seek_next, seek_ctl;
} fake;

static fake f;
static wk_sup sup;

static int no_event(void *ctx, wk_part *p, int64_t event_id)
{
    (void)ctx;
    (void)p;
    (void)event_id;
    return ONS_ENOTFOUND;
}

static int fake_claim(void *ctx, int32_t partition, int64_t *next, int64_t *ctl_next,
                      int64_t *epoch)
{
    (void)ctx;
    (void)partition;
    f.claims++;
    if (f.claim_rc)
        return f.claim_rc;
    *epoch = ++f.db_epoch;
    *next = f.db_next;
    *ctl_next = f.db_ctl_next;
    return 0;
}

static int fake_recheck(void *ctx, int32_t partition, int64_t epoch, int64_t *next,
                        int64_t *ctl_next)
{
    (void)ctx;
    (void)partition;
    f.rechecks++;
    f.recheck_epoch = epoch;
    if (f.recheck_rc)
        return f.recheck_rc;
    if (epoch != f.db_epoch)
        return ONS_EFENCED; /* as wk_store_recheck: a newer claim exists */
    *next = f.db_next;
    *ctl_next = f.db_ctl_next;
    return 0;
}

static wk_part *fake_new_part(void *ctx, int32_t partition, int64_t epoch, int64_t next,
                              int64_t ctl_next)
{
    (void)ctx;
    if (f.new_part_fails > 0) {
        f.new_part_fails--;
        return NULL;
    }
    wk_part_cfg cfg = {no_event, NULL, 0, 0, 0, 0, 0, NULL, 0, 0, 0};
    wk_part *p = wk_part_new(partition, epoch, next, &cfg);
    ck_assert_ptr_nonnull(p);
    p->ctl_next_offset = ctl_next;
    f.parts++;
    return p;
}

static int fake_seek(void *ctx, int32_t partition, int64_t next, int64_t ctl_next)
{
    (void)ctx;
    (void)partition;
    f.seeks++;
    f.seek_next = next;
    f.seek_ctl = ctl_next;
    return f.seek_rc;
}

static void fake_pause(void *ctx, int32_t partition)
{
    (void)ctx;
    (void)partition;
    f.pauses++;
}

static const wk_sup_ops ops = {fake_claim, fake_recheck, fake_new_part, fake_seek, fake_pause};

static void setup(void)
{
    memset(&f, 0, sizeof f);
    f.db_epoch = 4;
    f.db_next = 100;
    f.db_ctl_next = 7;
    ck_assert_int_eq(wk_sup_init(&sup, &ops, NULL, "test", NULL), 0);
}

static void teardown(void)
{
    wk_sup_fini(&sup);
}

static wk_slot *slot(int32_t p)
{
    wk_slot *s = wk_sup_slot(&sup, p, 0);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Partition p's slot is in state and holds no partition owner. */
static void holds_no_partition(int32_t p, int state)
{
    ck_assert_int_eq(slot(p)->state, state);
    ck_assert_ptr_null(slot(p)->part);
}

/* wk_sup_assign of partition p at now, when its control offset does not matter. */
static int64_t assign_at(int32_t p, double now)
{
    int64_t ctl = 0;
    return wk_sup_assign(&sup, p, now, &ctl);
}

/* Partition p assigned (claimed, active) at 0, then its batch failed at t. */
static void failed_after_assign(int32_t p, double t)
{
    assign_at(p, 0.0);
    wk_sup_fail(&sup, p, t, "test");
}

START_TEST(assign_claims_and_consumes_from_the_cursors)
{
    int64_t ctl = 0;
    ck_assert_int_eq(wk_sup_assign(&sup, 3, 10.0, &ctl), 100);
    ck_assert_int_eq(ctl, 7);
    wk_slot *s = slot(3);
    ck_assert_int_eq(s->state, WK_SLOT_ACTIVE);
    ck_assert_int_eq(s->epoch, 5);
    ck_assert_int_eq(s->load_live, 1);
    ck_assert_ptr_nonnull(s->part);
    ck_assert_ptr_eq(wk_sup_active(&sup, 3), s);
    ck_assert_int_ge(sup.nslots, 4);
    ck_assert_ptr_null(wk_sup_active(&sup, 2)); /* never assigned */
    ck_assert_ptr_null(wk_sup_slot(&sup, 9, 0));
    ck_assert_ptr_null(wk_sup_slot(&sup, -1, 1));
}
END_TEST

START_TEST(failed_claim_is_retried_after_the_retry_delay)
{
    f.claim_rc = ONS_EDB;
    int64_t ctl = 0;
    ck_assert_int_eq(wk_sup_assign(&sup, 0, 10.0, &ctl), -1);
    ck_assert_int_eq(ctl, -1);
    ck_assert_int_eq(slot(0)->state, WK_SLOT_CLAIM);
    ck_assert(slot(0)->retry_at == 10.0 + WK_SUP_RETRY_S);
    ck_assert_ptr_null(wk_sup_active(&sup, 0));

    wk_sup_retry_due(&sup, 10.5); /* not due */
    ck_assert_int_eq(f.claims, 1);
    wk_sup_retry_due(&sup, 11.0); /* due, database still down */
    ck_assert_int_eq(f.claims, 2);
    ck_assert_int_eq(slot(0)->state, WK_SLOT_CLAIM);
    ck_assert(slot(0)->retry_at == 11.0 + WK_SUP_RETRY_S);

    f.claim_rc = 0;
    wk_sup_retry_due(&sup, 12.0);
    ck_assert_int_eq(slot(0)->state, WK_SLOT_ACTIVE);
    ck_assert_int_eq(f.seeks, 1); /* the consumer moves to the claimed cursors */
    ck_assert_int_eq(f.seek_next, 100);
    ck_assert_int_eq(f.seek_ctl, 7);
}
END_TEST

/* A claim that succeeds but whose memory cannot be built (its tombstones
 * could not be read) holds the new epoch: the reload rechecks under it and
 * consumes, instead of fencing itself with the epoch before the claim. */
START_TEST(memory_failing_after_a_claim_reloads_under_the_new_epoch)
{
    f.new_part_fails = 1;
    ck_assert_int_eq(assign_at(1, 10.0), -1);
    ck_assert_int_eq(slot(1)->state, WK_SLOT_RELOAD);
    ck_assert(slot(1)->retry_at == 10.0 + WK_SUP_RETRY_S);
    wk_sup_retry_due(&sup, 11.0);
    ck_assert_int_eq(f.rechecks, 1);
    ck_assert_int_eq(f.recheck_epoch, 5);
    ck_assert_int_eq(slot(1)->state, WK_SLOT_ACTIVE);
    ck_assert_int_eq(f.seeks, 1);
}
END_TEST

START_TEST(failed_batch_reloads_with_backoff_and_a_commit_resets_it)
{
    assign_at(0, 0.0);
    double now = 100.0;
    double want[] = {0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        wk_sup_fail(&sup, 0, now, "test");
        wk_slot *s = slot(0);
        ck_assert_int_eq(s->state, WK_SLOT_RELOAD);
        ck_assert_ptr_null(s->part);
        ck_assert_int_eq(f.pauses, (int)i + 1);
        ck_assert_msg(s->retry_at > now + want[i] - 1e-9 && s->retry_at < now + want[i] + 1e-9,
                      "failure %zu: retry in %f, want %f", i + 1, s->retry_at - now, want[i]);
        wk_sup_retry_due(&sup, s->retry_at - 0.001); /* not yet */
        ck_assert_int_eq(s->state, WK_SLOT_RELOAD);
        wk_sup_retry_due(&sup, s->retry_at);
        ck_assert_int_eq(s->state, WK_SLOT_ACTIVE);
        ck_assert_int_eq(s->load_live, 1);
        now = s->retry_at + 1;
    }
    wk_sup_committed(&sup, 0);
    wk_sup_fail(&sup, 0, now, "test");
    ck_assert(slot(0)->retry_at == now); /* once more at once */
}
END_TEST

START_TEST(reload_that_fails_on_the_database_waits_the_retry_delay)
{
    failed_after_assign(0, 50.0);
    f.recheck_rc = ONS_EDB;
    wk_sup_retry_due(&sup, 50.0);
    ck_assert_int_eq(slot(0)->state, WK_SLOT_RELOAD);
    ck_assert(slot(0)->retry_at == 50.0 + WK_SUP_RETRY_S);
    f.recheck_rc = 0;
    wk_sup_retry_due(&sup, 51.0);
    ck_assert_int_eq(slot(0)->state, WK_SLOT_ACTIVE);
}
END_TEST

START_TEST(reload_that_finds_a_newer_owner_is_fenced_for_good)
{
    failed_after_assign(0, 50.0);
    f.db_epoch++; /* another worker claimed it meanwhile */
    wk_sup_retry_due(&sup, 50.0);
    ck_assert_int_eq(slot(0)->state, WK_SLOT_FENCED);
    ck_assert_int_eq(f.pauses, 2);
    ck_assert_int_eq(f.seeks, 0);
    wk_sup_retry_due(&sup, 1000.0);
    ck_assert_int_eq(f.rechecks, 1);
    ck_assert_int_eq(f.claims, 1);
}
END_TEST

START_TEST(fenced_commit_stops_consuming)
{
    assign_at(2, 0.0);
    wk_sup_fence(&sup, 2);
    holds_no_partition(2, WK_SLOT_FENCED);
    ck_assert_ptr_null(wk_sup_active(&sup, 2));
    ck_assert_int_eq(f.pauses, 1);
    /* a new assignment claims it again */
    ck_assert_int_eq(assign_at(2, 1.0), 100);
    ck_assert_int_eq(slot(2)->state, WK_SLOT_ACTIVE);
    ck_assert_int_eq(slot(2)->epoch, 6);
}
END_TEST

START_TEST(revoke_forgets_the_partition)
{
    assign_at(0, 0.0);
    wk_sup_revoke(&sup, 0);
    holds_no_partition(0, WK_SLOT_NONE);
    wk_sup_revoke(&sup, 8); /* never assigned: nothing */
    /* a pending retry of a revoked partition is dropped */
    f.claim_rc = ONS_EDB;
    assign_at(1, 0.0);
    wk_sup_revoke(&sup, 1);
    wk_sup_retry_due(&sup, 100.0);
    ck_assert_int_eq(f.claims, 2);
    ck_assert_int_eq(slot(1)->state, WK_SLOT_NONE);
}
END_TEST

START_TEST(failed_seek_reloads_later)
{
    failed_after_assign(0, 10.0);
    f.seek_rc = ONS_EKAFKA;
    wk_sup_retry_due(&sup, 10.0);
    holds_no_partition(0, WK_SLOT_RELOAD);
    ck_assert(slot(0)->retry_at == 10.0 + WK_SUP_RETRY_S);
    ck_assert_int_eq(f.pauses, 2);
    f.seek_rc = 0;
    wk_sup_retry_due(&sup, 11.0);
    ck_assert_int_eq(slot(0)->state, WK_SLOT_ACTIVE);
}
END_TEST

START_TEST(backoff_schedule_bounds)
{
    ck_assert(wk_sup_backoff_s(-1) == 0);
    ck_assert(wk_sup_backoff_s(0) == 0);
    ck_assert(wk_sup_backoff_s(1) == WK_SUP_BACKOFF_FIRST_S);
    double prev = 0;
    for (int i = 1; i < 1000; i++) {
        double d = wk_sup_backoff_s(i);
        ck_assert(d >= prev);
        ck_assert(d <= WK_SUP_BACKOFF_MAX_S);
        prev = d;
    }
    ck_assert(wk_sup_backoff_s(1 << 30) == WK_SUP_BACKOFF_MAX_S);
}
END_TEST

START_TEST(rate_is_averaged_per_window)
{
    wk_slot s;
    memset(&s, 0, sizeof s);
    wk_slot_rate(&s, 100, 10.0);
    ck_assert(s.rate == 0); /* the window has just started */
    wk_slot_rate(&s, 100, 11.0);
    ck_assert(s.rate == 200.0); /* 200 records in 1 s */
    wk_slot_rate(&s, 0, 13.0);
    ck_assert(s.rate == 100.0); /* half the old rate, half 0 */
}
END_TEST

/* The drain published for the ETA: a batch's time split into a cost per
 * batch and per record, each earlier batch weighing half per half-life. */
START_TEST(drain_fits_the_cost_per_batch_and_per_record)
{
    wk_slot s;
    memset(&s, 0, sizeof s);
    double b, r, c;
    wk_slot_drain_model(&s, &b, &r, &c);
    ck_assert(b == 0 && r == 0 && c == 0); /* nothing measured yet */
    /* batches of 100..1000 records, each 10 ms + 0.02 ms a record */
    for (int i = 0; i < 20; i++) {
        int n = 100 * (1 + i % 10);
        wk_slot_drain(&s, n, 0, 0.010 + 0.00002 * n, 16);
    }
    wk_slot_drain_model(&s, &b, &r, &c);
    ck_assert_msg(fabs(b - 10.0) < 0.01 && fabs(r - 0.02) < 0.0001, "%f %f", b, r);
    /* batches all of one size: the split cannot be seen, the batch takes it all */
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 5; i++)
        wk_slot_drain(&s, 500, 0, 0.040, 16);
    wk_slot_drain_model(&s, &b, &r, &c);
    ck_assert_msg(fabs(b - 40.0) < 0.01 && r == 0, "%f %f", b, r);
    /* a new pace takes over within a few half-lives: 80 batches of a
     * half-life of 4 leave the old ones 2^-20 of the weight */
    for (int i = 0; i < 80; i++)
        wk_slot_drain(&s, i % 2 ? 200 : 400, 0, i % 2 ? 0.025 : 0.045, 4);
    wk_slot_drain_model(&s, &b, &r, &c);
    ck_assert_msg(fabs(b - 5.0) < 0.1 && fabs(r - 0.1) < 0.001, "%f %f", b, r);
    /* nothing applied, or no time: no sample */
    double w = s.drain_w;
    wk_slot_drain(&s, 0, 0, 1.0, 4);
    wk_slot_drain(&s, 10, 0, 0, 4);
    ck_assert(s.drain_w == w);
}
END_TEST

/* A batch's period split three ways: control records (checkouts, payment
 * results) cost the owner more than intents, and a batch of few intents
 * may carry many of them. */
START_TEST(drain_fits_the_cost_of_control_records)
{
    wk_slot s;
    memset(&s, 0, sizeof s);
    double b, r, c;
    /* 50 ms + 0.05 ms an intent + 0.4 ms a control record, sizes varying apart */
    for (int i = 0; i < 40; i++) {
        int64_t n = 100 * (1 + i % 7), ctl = 50 * (i % 5);
        wk_slot_drain(&s, n, ctl, (50 + 0.05 * (double)n + 0.4 * (double)ctl) / 1000.0, 16);
    }
    wk_slot_drain_model(&s, &b, &r, &c);
    ck_assert_msg(fabs(b - 50) < 0.01 && fabs(r - 0.05) < 1e-4 && fabs(c - 0.4) < 1e-4, "%f %f %f",
                  b, r, c);
    /* control records alone (a batch of checkouts) still time a batch */
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 10; i++)
        wk_slot_drain(&s, 0, 100 * (1 + i % 3), (10 + 0.5 * 100 * (1 + i % 3)) / 1000.0, 16);
    wk_slot_drain_model(&s, &b, &r, &c);
    ck_assert_msg(fabs(b - 10) < 0.01 && r == 0 && fabs(c - 0.5) < 1e-4, "%f %f %f", b, r, c);
    /* a count whose share comes out negative (noise) is left out */
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 20; i++) {
        int64_t n = 100 * (1 + i % 4), ctl = 10 * (i % 3);
        wk_slot_drain(&s, n, ctl, (20 + 0.1 * (double)n - 0.2 * (double)ctl) / 1000.0, 16);
    }
    wk_slot_drain_model(&s, &b, &r, &c);
    ck_assert_msg(c == 0 && r > 0 && b >= 0, "%f %f %f", b, r, c);
}
END_TEST

/* A batch of the sale's owner below: n intents and c control records
 * take this long from its apply to the next batch's (a checkout or a
 * payment result costs the owner ten intents). */
static double owner_period_ms(int64_t n, int64_t c, int64_t batch)
{
    /* and a commit takes up to 15 % more or less than the pace (a shared
     * PostgreSQL) */
    double noise = 1 + 0.15 * sin((double)batch * 2.399);
    return 20 + (30 + 0.05 * (double)n + 0.5 * (double)c) * noise;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median error of the ETA a fan is given at its join (as onsale-sim's
 * eta_error: |reached - promised| / the wait floored at 1 s) over a
 * simulated owner: joins every 0.5 ms for 6 s, checkouts and payment
 * results on the control lane from 1 s on (1,500 a second: fans that hold
 * seats pay while the crowd still joins), each batch taking every record
 * in the log at its poll (the control lane first, at most 8,000) and
 * lasting owner_period_ms. The ingress reads the drain published last:
 * with `applying`, the owner's two moments a batch (applied, then
 * committed at 80 % of its period) and its pace fitted on both counts;
 * without, as the owner before it published: only the committed cursor
 * (applying -1), and a pace fitted on the intents alone over each batch's
 * busy time. */
static double simulated_eta_error(int applying)
{
    enum { JOINS = 12000 };
    const double join_every = 0.5, ctl_rate = 1.5; /* per ms, from 1000 ms */
    const int64_t batch_max = 8000;
    static double err[JOINS];
    wk_slot s;
    memset(&s, 0, sizeof s);
    q_status_drain pub = Q_STATUS_DRAIN_UNKNOWN, next_pub = pub;
    double pub_at = 0, next_pub_at = -1;
    int64_t next_join = 0, ctl_taken = 0;
    double a = 1000.0, ctl_seen = 0; /* the owner's batches: apply times (ms of the sale) */
    int64_t served = 0, nerr = 0, nbatch = 0;
    const int64_t base_ms = 1764400000000;
    while (next_join < JOINS) {
        /* the batch applied at a takes what is in the log at its poll */
        double poll = a - 20;
        int64_t in_log = (int64_t)(poll / join_every) + 1;
        if (in_log > JOINS)
            in_log = JOINS;
        double ctl_avail = poll > 1000 ? (poll - 1000) * ctl_rate - ctl_seen : 0;
        int64_t c = (int64_t)ctl_avail;
        if (c > batch_max / 2)
            c = batch_max / 2;
        int64_t n = in_log - served;
        if (n > batch_max - c)
            n = batch_max - c;
        ctl_seen += (double)c;
        ctl_taken += c;
        double period = owner_period_ms(n, c, nbatch++);
        /* the fans who join before this batch's apply are estimated by what
         * was published before their join */
        for (; next_join < JOINS && (double)next_join * join_every < a + period; next_join++) {
            double t = (double)next_join * join_every;
            if (next_pub_at >= 0 && next_pub_at <= t) {
                pub = next_pub;
                pub_at = next_pub_at;
                next_pub_at = -1;
            }
            (void)pub_at;
            /* the batch the join is in: this one if it was in the log at
             * its poll, else a later one (applied at or after a + period) */
            if (next_join >= served + n)
                break;
            double w = q_status_drain_wait_ms(&pub, next_join, base_ms + (int64_t)t, 500);
            if (w < 0)
                continue; /* nothing measured yet: the rate's estimate */
            double wait = a - t;
            err[nerr++] = fabs(wait - w) / (wait > 1000 ? wait : 1000);
        }
        /* publications of this batch: applied (a), committed */
        double b_ms, r_ms, c_ms;
        wk_slot_drain_model(&s, &b_ms, &r_ms, &c_ms);
        q_status_drain at_apply = {served,    base_ms + (int64_t)a,
                                   b_ms,      r_ms,
                                   batch_max, 20,
                                   1,         served + n,
                                   c,         c_ms,
                                   -1,        -1,
                                   0,         0};
        q_status_drain at_commit = {served + n, base_ms + (int64_t)a,
                                    b_ms,       r_ms,
                                    batch_max,  20,
                                    0,          served + n,
                                    c,          c_ms,
                                    -1,         -1,
                                    0,          0};
        if (!applying)
            at_commit.applying = -1, at_commit.ctl_ms = 0, at_commit.applying_ctl = 0;
        if (applying && (next_pub_at < 0 || next_pub_at > a)) {
            pub = at_apply;
            pub_at = a;
        }
        (void)pub_at;
        next_pub = at_commit;
        next_pub_at = a + 0.8 * (period - 20);
        if (applying)
            wk_slot_drain(&s, n, c, period / 1000.0, 16);
        else
            wk_slot_drain(&s, n, 0, 0.8 * (period - 20) / 1000.0, 16);
        served += n;
        a += period;
    }
    ck_assert_int_gt(ctl_taken, 1000);
    ck_assert_int_gt(nerr, JOINS / 2);
    qsort(err, (size_t)nerr, sizeof *err, cmp_double);
    return err[nerr / 2];
}

START_TEST(eta_from_the_batch_being_committed_is_true_in_a_crowd_that_checks_out)
{
    double with = simulated_eta_error(1), without = simulated_eta_error(0);
    ck_assert_msg(with <= 0.10, "median error %.3f with the owner's moments", with);
    /* the control: the drain as the owner published it before */
    ck_assert_msg(without > 0.10, "median error %.3f from the cursor alone", without);
}
END_TEST

/* Behind a backlog: the control lane goes first, but only while the holds
 * can still send control records (ctl_left); the batches after carry
 * intents alone, at the intents' pace. */
START_TEST(eta_counts_control_records_only_while_the_holds_can_send_them)
{
    /* a batch of 4,000 intents and 4,000 control records is committing,
     * applied 1 s ago: 50 ms + 0.1 ms an intent + 1 ms a control record */
    const int64_t now = 1764400001000;
    q_status_drain d = {1000, now - 1000, 50, 0.1, 8000, 0, 1, 5000, 4000, 1.0, 4000, 0, 0, 0};
    double period = 50 + 0.1 * 4000 + 4000, left = period - 1000;
    /* right behind it: the rest of its period */
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 5000, now, 500), ceil(left), 1);
    /* 20,000 intents behind: one more batch with the last 4,000 control
     * records (4,000 intents), then two of 8,000 intents alone */
    double want = left + period + 2 * (50 + 0.1 * 8000);
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 25000, now, 500), ceil(want), 1);
    /* the control: not knowing what the holds can send, every batch
     * carries 4,000 control records (five more such batches) */
    d.ctl_left = -1;
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 25000, now, 500), ceil(left + 5 * period),
                            1);
    /* in the batch being committed, or passed: reached */
    ck_assert(q_status_drain_wait_ms(&d, 4999, now, 500) == 0);
    ck_assert(q_status_drain_wait_ms(&d, 999, now, 500) == 0);
}
END_TEST

/* A crowd paying at once: the control records in the log when the owner
 * published (ctl_queued) fill its next batches before any intent behind,
 * whole batches of them when there are as many. */
START_TEST(eta_waits_for_the_control_records_already_in_the_log)
{
    /* a batch of 4,000 intents and 4,000 control records is committing,
     * applied 1 s ago, 18,000 control records in the log behind it */
    const int64_t now = 1764400001000;
    q_status_drain d = {1000, now - 1000, 50, 0.1, 8000, 0, 1, 5000, 4000, 1.0, 30000, 18000, 0, 0};
    double period = 50 + 0.1 * 4000 + 4000, left = period - 1000;
    double ctl_batch = 50 + 8000 * 1.0; /* a batch of control records alone */
    /* right behind it: two batches of control records alone, then the
     * batch that takes the last 2,000 and 6,000 intents */
    double want = left + 2 * ctl_batch;
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 5000, now, 500), ceil(want), 1);
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 10999, now, 500), ceil(want), 1);
    /* 6,000 further back: that batch too; the fan is in the one after */
    want += 50 + 0.1 * 6000 + 2000;
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 11000, now, 500), ceil(want), 1);
    /* the control: the backlog not known (an older owner's drain), the
     * fan right behind is promised the next batch */
    d.ctl_queued = -1;
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 5000, now, 500), ceil(left), 1);
    d.ctl_queued = 0;
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 5000, now, 500), ceil(left), 1);
}
END_TEST

/* The owner's first batch is cold (first statements, caches): not a
 * sample of its pace, but its period is the pace until a batch is timed,
 * so the fans behind the second batch are not told the assumed rate's. */
START_TEST(drain_before_a_batch_is_timed_is_the_first_batchs_period)
{
    wk_slot s;
    memset(&s, 0, sizeof s);
    const int64_t t = 1764400000000;
    double b, r, c;
    s.served_at_ms = t;
    wk_slot_batch_pend(&s, 256, 0, 0.110);
    wk_slot_drain_model(&s, &b, &r, &c);
    ck_assert(b == 0 && r == 0 && c == 0); /* nothing measured yet */
    wk_slot_batch_end(&s, t + 220, 0, 0.020, 16);
    wk_slot_drain_model(&s, &b, &r, &c);
    ck_assert_msg(fabs(b - 220) < 1e-6 && r == 0 && c == 0, "%f %f %f", b, r, c);
    ck_assert(s.drain_w == 0); /* not a sample */
    /* the second batch is: the cold one is no longer the pace */
    s.served_at_ms = t + 220;
    wk_slot_batch_pend(&s, 3200, 0, 0.190);
    wk_slot_batch_end(&s, t + 420, 0, 0.020, 16);
    wk_slot_drain_model(&s, &b, &r, &c);
    ck_assert_msg(s.drain_w == 1 && fabs(b - 200) < 1e-6 && r == 0, "%f %f", b, r);
}
END_TEST

/* Between batches: when records were waiting as the owner published,
 * its next poll took them at once and ended by polled_by_ms; a fan whose
 * record came after is in the batch after (the node's cached drain is up
 * to a refresh old, longer than the collecting window). */
START_TEST(eta_between_batches_counts_the_batch_already_polled)
{
    const int64_t now = 1764400001000;
    /* committed at served 5000 with 100 intents waiting, its next poll
     * took them and ended 100 ms ago, that batch forecast to take 400 ms */
    q_status_drain d = {5000, now - 600, 50,  0.1, 8000, 20,        0,
                        5100, 100,       1.0, 0,   0,    now - 100, 400};
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 5100, now, 500), 300, 1);
    /* later than its forecast: a quarter of it */
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 5100, now + 1000, 500), 100, 1);
    /* in the log before the poll: in the batch polled, its window */
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 5099, now, 500), 20, 1);
    /* a backlog: the batch polled took a full batch, a fan 10,000 past it
     * waits for that batch and one more full one */
    q_status_drain b = {5000, now - 600, 50, 0.1, 8000, 0, 0, 13000, 0, 1.0, 0, 0, now - 100, 850};
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&b, 23000, now, 500), 750 + 850, 1);
    /* control records queued as the owner polled: the polled batch took
     * them (40) with 60 intents; a fan 60 past it is in the next batch,
     * which has none of them left to take first (they were counted twice:
     * a batch of 60 intents and 40 of them more, 166 ms) */
    q_status_drain c = {5000, now - 600, 50, 0.1, 100, 20, 0, 5060, 0, 0.5, 40, 40, now - 10, 100};
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&c, 5120, now, 500), 90, 1);
    /* the poll not over yet: in it, its window */
    d.polled_by_ms = now + 10;
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 5100, now, 500), 20, 1);
    /* the control: no record waiting (or an older owner's drain), the
     * next poll waits for this fan's record: its window */
    d.polled_by_ms = 0;
    ck_assert_double_eq_tol(q_status_drain_wait_ms(&d, 5100, now, 500), 20, 1);
}
END_TEST

/* A worker owning two partitions: p's batches every 40-60 ms, q with a
 * few records in one worker batch of ten. q's batch ends when the worker
 * applies its next batch (a record of q's that came meanwhile would be
 * applied then), not at q's own next apply, ten worker batches later. */
START_TEST(drain_of_a_quiet_partition_is_the_workers_period)
{
    wk_slot busy, quiet, old;
    memset(&busy, 0, sizeof busy);
    memset(&quiet, 0, sizeof quiet);
    memset(&old, 0, sizeof old);
    int64_t t = 1764400000000;
    for (int k = 0; k < 300; k++) {
        int has_q = k % 10 == 0;
        /* the worker applies batch k: the pending batches end */
        wk_slot_batch_end(&busy, t, 0, 0.020, 16);
        wk_slot_batch_end(&quiet, t, 0, 0.020, 16);
        if (has_q) /* the control: timed at q's own next apply, as before */
            wk_slot_batch_end(&old, t, 0, 0.020, 16);
        busy.served_at_ms = t;
        wk_slot_batch_pend(&busy, 400 + 100 * (k % 4), 0, 0.030);
        if (has_q) {
            quiet.served_at_ms = old.served_at_ms = t;
            wk_slot_batch_pend(&quiet, 5 + k % 7, 0, 0.002);
            wk_slot_batch_pend(&old, 5 + k % 7, 0, 0.002);
        }
        t += 40 + 10 * (k % 3);
    }
    double b, r, c;
    wk_slot_drain_model(&quiet, &b, &r, &c);
    double q_ms = b + 8 * r + c;
    ck_assert_msg(q_ms > 35 && q_ms < 65, "a quiet batch of 8 takes %.1f ms", q_ms);
    wk_slot_drain_model(&old, &b, &r, &c);
    double old_ms = b + 8 * r + c;
    ck_assert_msg(old_ms > 300, "the control: %.1f ms (ten worker batches)", old_ms);
    /* the owner waited for records before the next batch: the busy time
     * and a collecting window, as for a partition alone */
    wk_slot_batch_pend(&quiet, 10, 0, 0.002);
    double w = quiet.drain_w;
    wk_slot_batch_end(&quiet, t + 5000, 1, 0.020, 16);
    ck_assert(quiet.drain_w > w && quiet.drain_pend == 0);
    /* nothing pending: nothing added */
    w = quiet.drain_w;
    wk_slot_batch_end(&quiet, t + 6000, 0, 0.020, 16);
    ck_assert(quiet.drain_w == w);
}
END_TEST

#define CTL_EV 7

/* Event CTL_EV: 100 seats in one section. */
static int load_100(void *ctx, wk_part *p, int64_t event_id)
{
    (void)ctx;
    if (event_id != CTL_EV)
        return ONS_ENOTFOUND;
    wk_event *ev = wk_test_event(event_id, 60);
    ck_assert_int_eq(wk_inv_add_block(&ev->inv, 1, "A", 0, 10, 10, 5000), 0);
    return wk_part_add_event(p, ev);
}

/* The control records still to come count the free seats of the events
 * of recent batches, not only of the batch in memory: between batches
 * (the idle republish) the batch's effects are cleared. */
START_TEST(ctl_left_counts_the_recent_batches_events_between_batches)
{
    wk_slot s;
    memset(&s, 0, sizeof s);
    s.part = wk_part_new(0, 1, 0, &(wk_part_cfg){.load = load_100});
    ck_assert_ptr_nonnull(s.part);
    const int64_t now = 1000000;
    for (int64_t u = 1; u <= 10; u++) { /* ten fans hold 2 seats each */
        q_msg m = wk_test_msg(Q_MSG_INTENT, CTL_EV, u, now);
        m.quantity = 2;
        ck_assert_int_eq(wk_part_apply(s.part, &m, u - 1, now, now), 0);
    }
    /* 10 holds, 80 free seats: 40 more holds of 2 seats */
    ck_assert_int_eq(wk_slot_ctl_left(&s), 2 * (10 + 40));
    wk_part_batch_done(s.part);
    ck_assert_int_eq((int)s.part->fx.nevents, 0); /* the control: the batch's events are gone */
    ck_assert_int_eq(wk_slot_ctl_left(&s), 2 * (10 + 40));
    ck_assert_int_eq(s.nctl_events, 1); /* remembered once */
    /* the event held out: the holds alone are left */
    for (int64_t u = 11; u <= 50; u++) {
        q_msg m = wk_test_msg(Q_MSG_INTENT, CTL_EV, u, now);
        m.quantity = 2;
        ck_assert_int_eq(wk_part_apply(s.part, &m, u - 1, now, now), 0);
    }
    wk_part_batch_done(s.part);
    ck_assert_int_eq(wk_slot_ctl_left(&s), 2 * 50);
    wk_part_free(s.part);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"assign", assign_claims_and_consumes_from_the_cursors},
        {"drain_model", drain_fits_the_cost_per_batch_and_per_record},
        {"drain_model_control", drain_fits_the_cost_of_control_records},
        {"eta_checkouts", eta_from_the_batch_being_committed_is_true_in_a_crowd_that_checks_out},
        {"eta_ctl_left", eta_counts_control_records_only_while_the_holds_can_send_them},
        {"eta_ctl_queued", eta_waits_for_the_control_records_already_in_the_log},
        {"eta_between_batches", eta_between_batches_counts_the_batch_already_polled},
        {"drain_cold", drain_before_a_batch_is_timed_is_the_first_batchs_period},
        {"drain_quiet_partition", drain_of_a_quiet_partition_is_the_workers_period},
        {"ctl_left_between_batches", ctl_left_counts_the_recent_batches_events_between_batches},
        {"claim_retry", failed_claim_is_retried_after_the_retry_delay},
        {"claim_then_no_memory", memory_failing_after_a_claim_reloads_under_the_new_epoch},
        {"batch_backoff", failed_batch_reloads_with_backoff_and_a_commit_resets_it},
        {"reload_db_down", reload_that_fails_on_the_database_waits_the_retry_delay},
        {"reload_fenced", reload_that_finds_a_newer_owner_is_fenced_for_good},
        {"fence", fenced_commit_stops_consuming},
        {"revoke", revoke_forgets_the_partition},
        {"seek_fails", failed_seek_reloads_later},
        {"backoff_bounds", backoff_schedule_bounds},
        {"rate", rate_is_averaged_per_window},
    };
    return ons_check_run_fixture("supervisor", cases, sizeof cases / sizeof *cases, 60, setup,
                                 teardown);
}
