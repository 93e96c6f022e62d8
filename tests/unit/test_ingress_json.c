/* test_ingress_json.c - ingress helpers that need no services: RFC 3339
 * times, Idempotency-Key rules, body hashes, the intent → event map and the
 * route table's shape. */
#include "common/err.h"
#include "ingress/client_addr.h"
#include "ingress/event_cache.h"
#include "ingress/ratelimit.h"
#include "ingress/json_io.h"
#include "ingress/server.h"

#include "tests/check_run.h"

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
    ck_assert_int_eq(ing_parse_rfc3339("9999-12-31T23:59:59.999Z", &ms), 0);
    ck_assert_int_eq(ms, ING_RFC3339_MAX_MS);
    ck_assert_int_eq(ing_parse_rfc3339("10000-01-01T00:00:00+23:59", &ms), ONS_EINVAL);
}
END_TEST

START_TEST(rfc3339_rejects)
{
    static const char *bad[] = {
        "", "2026-11-28", "2026-11-28 20:00:00Z", "2026-11-28T20:00:00", "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z", "2026-11-28T24:00:00Z", "2026-11-28T20:00:00+1:00",
        "2026-11-28T20:00:00.Z", "2026-11-28T20:00:00Zjunk", "1969-12-31T23:59:59Z",
        /* in range as written, not once the offset
         * is applied: years 10000 and 1969 in UTC */
        "9999-12-31T23:59:59-05:00", "1970-01-01T00:30:00+01:00", NULL};
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

START_TEST(client_addr_rightmost_untrusted)
{
    char a[ING_CLIENT_ADDR_MAX];
    const char *trusted = "127.0.0.1, 10.0.0.0/8,2001:db8::/32";
    ck_assert_int_eq(
        ing_client_addr_from("198.51.100.9, 203.0.113.7, 10.1.2.3", trusted, a, sizeof a), 0);
    ck_assert_str_eq(a, "203.0.113.7");
    ck_assert_int_eq(ing_client_addr_from(" 2001:DB9::1 ,2001:db8::5", trusted, a, sizeof a), 0);
    ck_assert_str_eq(a, "2001:db9::1");
    ck_assert_int_eq(ing_client_addr_from("203.0.113.7", "127.0.0.1", a, sizeof a), 0);
    ck_assert_str_eq(a, "203.0.113.7");
    /* Every entry is one of our proxies: unknown. */
    ck_assert_int_eq(ing_client_addr_from("10.0.0.1,127.0.0.1", trusted, a, sizeof a),
                     ONS_ENOTFOUND);
    ck_assert_str_eq(a, "");
    /* Junk right of the client ends the walk: nothing left of it is believed. */
    ck_assert_int_eq(ing_client_addr_from("203.0.113.7, bogus", trusted, a, sizeof a),
                     ONS_ENOTFOUND);
    ck_assert_int_eq(ing_client_addr_from("203.0.113.7,", trusted, a, sizeof a), ONS_ENOTFOUND);
    /* No trusted proxy: the header is never believed. */
    ck_assert_int_eq(ing_client_addr_from("203.0.113.7", "", a, sizeof a), ONS_ENOTFOUND);
    ck_assert_int_eq(ing_client_addr_from(NULL, trusted, a, sizeof a), ONS_ENOTFOUND);
    /* A CIDR edge: 10.0.0.0/8 does not contain 11.0.0.1. */
    ck_assert_int_eq(ing_client_addr_from("11.0.0.1", "10.0.0.0/8", a, sizeof a), 0);
    ck_assert_str_eq(a, "11.0.0.1");
    ck_assert_int_eq(ing_client_addr_from("10.255.255.255", "10.0.0.0/8", a, sizeof a),
                     ONS_ENOTFOUND);
}
END_TEST

START_TEST(client_addr_trusted_list_validated)
{
    ck_assert_int_eq(ing_client_addr_trusted_ok(""), 0);
    ck_assert_int_eq(ing_client_addr_trusted_ok("127.0.0.1, ::1, 10.0.0.0/8, fd00::/8"), 0);
    ck_assert_int_eq(ing_client_addr_trusted_ok("10.0.0.0/33"), -1);
    ck_assert_int_eq(ing_client_addr_trusted_ok("10.0.0.0/"), -1);
    ck_assert_int_eq(ing_client_addr_trusted_ok("proxy.local"), -1);
    ck_assert_int_eq(ing_client_addr_trusted_ok("127.0.0.1,,"), -1);
}
END_TEST

START_TEST(ratelimit_route_classes)
{
    static const struct {
        const char *route;
        ing_rl_class cls;
    } want[] = {{"join", ING_RL_JOIN},
                {"intent_get", ING_RL_POLL},
                {"checkout", ING_RL_CHECKOUT},
                {"events_list", ING_RL_CATALOG},
                {"session_create", ING_RL_LOGIN},
                {"healthz", ING_RL_NONE}};
    for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
        int seen = 0;
        for (size_t i = 0; i < ing_route_count; i++)
            if (strcmp(ing_routes[i].name, want[w].route) == 0) {
                ck_assert_int_eq(ing_ratelimit_class_of(&ing_routes[i]), want[w].cls);
                seen = 1;
            }
        ck_assert_msg(seen, "route %s exists", want[w].route);
    }
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"rfc3339_accepts", rfc3339_accepts},
        {"rfc3339_rejects", rfc3339_rejects},
        {"rfc3339_roundtrip", rfc3339_roundtrip},
        {"idem_keys", idem_keys},
        {"body_hash", body_hash},
        {"seqmap_remembers_and_forgets", seqmap_remembers_and_forgets},
        {"route_table_shape", route_table_shape},
        {"client_addr_rightmost_untrusted", client_addr_rightmost_untrusted},
        {"client_addr_trusted_list_validated", client_addr_trusted_list_validated},
        {"ratelimit_route_classes", ratelimit_route_classes},
    };
    return ons_check_run("ingress_json", cases, sizeof cases / sizeof *cases, 60);
}
