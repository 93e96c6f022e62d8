/* test_draw.c - queue/draw.c's q_draw_order: the one draw rule the owner,
 * GET /v1/events/{id}/draw and the audit's verify-draw share. */
#include "common/err.h"
#include "queue/draw.h"
#include "queue/intent_id.h"

#include "tests/check_run.h"

#include <check.h>
#include <string.h>

static const char *secret = "test-secret-0123456789";

static void test_seed(uint8_t seed[Q_DRAW_SEED_LEN])
{
    for (int i = 0; i < Q_DRAW_SEED_LEN; i++)
        seed[i] = (uint8_t)(7 * i + 1);
}

/* Every entrant once, with its own public id and key, keys ascending. */
START_TEST(entrants_in_ascending_key_order)
{
    enum { N = 200 };
    uint8_t seed[Q_DRAW_SEED_LEN];
    q_draw_entrant in[N];
    q_draw_entry out[N];
    int seen[N] = {0};
    test_seed(seed);
    for (int i = 0; i < N; i++)
        in[i] = (q_draw_entrant){q_seq_make(i % 3, 1000 + i), 1 + i * 31};
    ck_assert_int_eq(q_draw_order(seed, secret, in, N, out), 0);
    for (int i = 0; i < N; i++) {
        const q_draw_entry *e = &out[i];
        char id[Q_ID_LEN + 1], key[Q_DRAW_HEX_LEN + 1];
        ck_assert_uint_lt(e->at, N);
        ck_assert_int_eq(seen[e->at]++, 0);
        ck_assert_int_eq(e->seq, in[e->at].seq);
        ck_assert_int_eq(q_id_encode(secret, Q_ID_INTENT, in[e->at].seq, in[e->at].user_id, id), 0);
        ck_assert_str_eq(e->id, id);
        ck_assert_int_eq(q_draw_key(seed, id, key), 0);
        ck_assert_str_eq(e->key, key);
        if (i > 0)
            ck_assert_int_lt(strcmp(out[i - 1].key, e->key), 0);
    }
}
END_TEST

/* The order depends on the seed and the ids only, not on the input order. */
START_TEST(input_order_does_not_matter)
{
    enum { N = 50 };
    uint8_t seed[Q_DRAW_SEED_LEN];
    q_draw_entrant in[N], rev[N];
    q_draw_entry a[N], b[N];
    test_seed(seed);
    for (int i = 0; i < N; i++) {
        in[i] = (q_draw_entrant){q_seq_make(0, i), 100 + i};
        rev[N - 1 - i] = in[i];
    }
    ck_assert_int_eq(q_draw_order(seed, secret, in, N, a), 0);
    ck_assert_int_eq(q_draw_order(seed, secret, rev, N, b), 0);
    for (int i = 0; i < N; i++)
        ck_assert_str_eq(a[i].id, b[i].id);
    ck_assert_int_eq(q_draw_order(seed, secret, in, 0, a), 0); /* an empty draw */
}
END_TEST

START_TEST(an_id_that_cannot_be_made_is_einval)
{
    uint8_t seed[Q_DRAW_SEED_LEN];
    q_draw_entrant in[] = {{q_seq_make(0, 1), 5}, {q_seq_make(0, 2), 0}}; /* user 0 */
    q_draw_entry out[2];
    test_seed(seed);
    ck_assert_int_eq(q_draw_order(seed, secret, in, 2, out), ONS_EINVAL);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        ONS_CHECK_CASE(entrants_in_ascending_key_order),
        ONS_CHECK_CASE(input_order_does_not_matter),
        ONS_CHECK_CASE(an_id_that_cannot_be_made_is_einval),
    };
    return ons_check_run("draw", cases, sizeof cases / sizeof *cases, 60);
}
