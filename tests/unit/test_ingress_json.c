/* test_ingress_json.c - ingress helpers that need no services: RFC 3339
 * times, Idempotency-Key rules, body hashes, the intent → event map and the
 * route table's shape. */
#include "common/err.h"
#include "ingress/event_cache.h"
#include "ingress/json_io.h"
#include "ingress/server.h"

#include <check.h>
#include <string.h>

START_TEST(rfc3339_accepts)
{
    int64_t ms;
    ck_assert_int_eq(ing_parse_rfc3339("1970-01-01T00:00:00Z", &ms), 0);
    ck_assert_int_eq(ms, 0);
    ck_assert_int_eq(ing_parse_rfc3339("2026-11-28T20:00:00Z", &ms), 0);
    ck_assert_int_eq(ms, INT64_C(1795896000000));
    ck_assert_int_eq(ing_parse_rfc3339("2026-11-28T21:00:00+01:00", &ms), 0);
    ck_assert_int_eq(ms, INT64_C(1795896000000));
    ck_assert_int_eq(ing_parse_rfc3339("2026-11-28T20:00:00.250Z", &ms), 0);
    ck_assert_int_eq(ms, INT64_C(1795896000250));
    ck_assert_int_eq(ing_parse_rfc3339("2026-11-28t20:00:00.5z", &ms), 0);
    ck_assert_int_eq(ms, INT64_C(1795896000500));
}
END_TEST

START_TEST(rfc3339_rejects)
{
    static const char *bad[] = {"",
                                "2026-11-28",
                                "2026-11-28 20:00:00Z",
                                "2026-11-28T20:00:00",
                                "2026-13-01T00:00:00Z",
                                "2026-02-30T00:00:00Z",
                                "2026-11-28T24:00:00Z",
                                "2026-11-28T20:00:00+1:00",
                                "2026-11-28T20:00:00.Z",
                                "2026-11-28T20:00:00Zjunk",
                                "1969-12-31T23:59:59Z",
                                NULL};
    int64_t ms;
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(ing_parse_rfc3339(bad[i], &ms) == ONS_EINVAL, "accepted '%s'", bad[i]);
}
END_TEST

START_TEST(rfc3339_roundtrip)
{
    char out[32];
    ing_format_rfc3339(INT64_C(1795896000250), out);
    ck_assert_str_eq(out, "2026-11-28T20:00:00Z");
}
END_TEST

START_TEST(idem_keys)
{
    char k[200];
    ck_assert(ing_idem_key_valid("a"));
    ck_assert(ing_idem_key_valid("order 42/retry-1"));
    ck_assert(!ing_idem_key_valid(""));
    ck_assert(!ing_idem_key_valid("tab\there"));
    ck_assert(!ing_idem_key_valid("caf\xc3\xa9"));
    memset(k, 'x', 128);
    k[128] = '\0';
    ck_assert(ing_idem_key_valid(k));
    k[128] = 'x';
    k[129] = '\0';
    ck_assert(!ing_idem_key_valid(k));
}
END_TEST

START_TEST(body_hash)
{
    char h[65];
    ing_sha256_hex("ab", 2, "c", 1, h);
    /* sha256("abc") */
    ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char h2[65];
    ing_sha256_hex("a", 1, "bc", 2, h2);
    ck_assert_str_eq(h, h2);
}
END_TEST

START_TEST(seqmap_remembers_and_forgets)
{
    ing_seqmap *m;
    ck_assert_int_eq(ing_seqmap_new(1024, &m), 0);
    int64_t ev = 0;
    ck_assert_int_eq(ing_seqmap_get(m, 0, &ev), ONS_ENOTFOUND);
    ing_seqmap_put(m, 0, 7);
    ck_assert_int_eq(ing_seqmap_get(m, 0, &ev), 0);
    ck_assert_int_eq(ev, 7);
    for (int64_t s = 1; s < 100000; s++)
        ing_seqmap_put(m, s, s * 3);
    /* Recent entries win their slot; a lookup never returns another seq's event. */
    ck_assert_int_eq(ing_seqmap_get(m, 99999, &ev), 0);
    ck_assert_int_eq(ev, 99999 * 3);
    int hits = 0;
    for (int64_t s = 0; s < 100000; s++) {
        if (ing_seqmap_get(m, s, &ev) == 0) {
            ck_assert_int_eq(ev, s == 0 ? 7 : s * 3);
            hits++;
        }
    }
    ck_assert_int_le(hits, 1024);
    ing_seqmap_free(m);
}
END_TEST

START_TEST(route_table_shape)
{
    for (size_t i = 0; i < ing_route_count; i++) {
        const ing_route *a = &ing_routes[i];
        ck_assert(a->pattern[0] == '/');
        ck_assert(a->handler != NULL);
        /* Bodies come with POST and PATCH, and with DELETE /v1/sessions
         * (the refresh token to revoke). */
        ck_assert(!a->body || strcmp(a->method, "POST") == 0 || strcmp(a->method, "PATCH") == 0 ||
                  strcmp(a->method, "DELETE") == 0);
        for (size_t j = i + 1; j < ing_route_count; j++) {
            const ing_route *b = &ing_routes[j];
            ck_assert_msg(strcmp(a->name, b->name) != 0, "route name %s twice", a->name);
            ck_assert_msg(strcmp(a->method, b->method) || strcmp(a->pattern, b->pattern),
                          "%s %s twice", a->method, a->pattern);
        }
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ingress_json");
    TCase *t = tcase_create("rfc3339");
    tcase_add_test(t, rfc3339_accepts);
    tcase_add_test(t, rfc3339_rejects);
    tcase_add_test(t, rfc3339_roundtrip);
    suite_add_tcase(s, t);
    t = tcase_create("idempotency");
    tcase_add_test(t, idem_keys);
    tcase_add_test(t, body_hash);
    suite_add_tcase(s, t);
    t = tcase_create("seqmap");
    tcase_add_test(t, seqmap_remembers_and_forgets);
    suite_add_tcase(s, t);
    t = tcase_create("routes");
    tcase_add_test(t, route_table_shape);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
