/* test_pg.c - common/pg without a server: the backoff schedule and its gate
 * (against a port nothing listens on), the connection keywords (defaults,
 * and a DSN's own keywords winning), field parsing, and the typed getters
 * and row reader over results built with libpq's PQsetvalue(). */
#include "tests/check_run.h"
#include "common/err.h"
#include "common/pg.h"

#include <check.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static ons_pg_opts opts(int min_ms, int max_ms)
{
    ons_pg_opts o;
    ons_pg_opts_default(&o, "host=127.0.0.1 port=1", NULL);
    o.backoff_min_ms = min_ms;
    o.backoff_max_ms = max_ms;
    return o;
}

/* ---- backoff -------------------------------------------------------------------- */

START_TEST(backoff_doubles_to_the_cap)
{
    ons_pg_opts o = opts(100, 1000);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 0), 0);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 1), 100);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 2), 200);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 3), 400);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 4), 800);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 5), 1000);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 6), 1000);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 1 << 30), 1000); /* no overflow */
}
END_TEST

START_TEST(backoff_edges)
{
    ons_pg_opts o = opts(0, 1000); /* no gate */
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 5), 0);
    o = opts(1000, 1000); /* fixed period (ingress job threads) */
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 1), 1000);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 9), 1000);
    o = opts(300, 100); /* a cap below the start is the start */
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 1), 300);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, 4), 300);
    ck_assert_int_eq(ons_pg_backoff_ms(&o, -1), 0);
}
END_TEST

START_TEST(defaults_are_the_documented_ones)
{
    ons_pg_opts o;
    ons_pg_opts_default(&o, "dbname=x", "me");
    ck_assert_str_eq(o.dsn, "dbname=x");
    ck_assert_str_eq(o.app_name, "me");
    ck_assert_int_eq(o.connect_timeout_s, ONS_PG_CONNECT_TIMEOUT_S);
    ck_assert_int_eq(o.keepalives_idle_s, ONS_PG_KEEPALIVES_IDLE_S);
    ck_assert_int_eq(o.keepalives_interval_s, ONS_PG_KEEPALIVES_INTERVAL_S);
    ck_assert_int_eq(o.keepalives_count, ONS_PG_KEEPALIVES_COUNT);
    ck_assert_int_eq(o.statement_timeout_ms, 0);
    ck_assert_int_eq(o.idle_tx_timeout_ms, 0);
    ck_assert_int_lt(ons_pg_backoff_ms(&o, 100), 1000); /* under the processes' 1 s retry */
}
END_TEST

/* The value libpq settled on for keyword kw, from a connection that was only
 * started (to a port nothing listens on). */
static const char *effective(PGconn *c, const char *kw, char *out, size_t cap)
{
    out[0] = '\0';
    PQconninfoOption *opts = PQconninfo(c);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (!strcmp(o->keyword, kw) && o->val)
            snprintf(out, cap, "%s", o->val);
    PQconninfoFree(opts);
    return out;
}

START_TEST(defaults_apply_and_the_dsn_wins)
{
    ons_pg_opts o;
    ons_pg_params p;
    char v[64];
    ons_pg_opts_default(&o, "host=127.0.0.1 port=1 dbname=x", "onsale-test");
    ons_pg_params_fill(&o, &p);
    PGconn *c = PQconnectStartParams(p.kw, p.val, 1);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(effective(c, "connect_timeout", v, sizeof v), "5");
    ck_assert_str_eq(effective(c, "keepalives_idle", v, sizeof v), "30");
    ck_assert_str_eq(effective(c, "keepalives_interval", v, sizeof v), "10");
    ck_assert_str_eq(effective(c, "keepalives_count", v, sizeof v), "3");
    ck_assert_str_eq(effective(c, "fallback_application_name", v, sizeof v), "onsale-test");
    ck_assert_str_eq(effective(c, "dbname", v, sizeof v), "x");
    ck_assert_str_eq(effective(c, "port", v, sizeof v), "1");
    PQfinish(c);

    ons_pg_opts_default(&o,
                        "host=127.0.0.1 port=1 connect_timeout=2 keepalives_idle=7 "
                        "fallback_application_name=mine",
                        "onsale-test");
    ons_pg_params_fill(&o, &p);
    c = PQconnectStartParams(p.kw, p.val, 1);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(effective(c, "connect_timeout", v, sizeof v), "2");
    ck_assert_str_eq(effective(c, "keepalives_idle", v, sizeof v), "7");
    ck_assert_str_eq(effective(c, "keepalives_count", v, sizeof v), "3");
    ck_assert_str_eq(effective(c, "fallback_application_name", v, sizeof v), "mine");
    PQfinish(c);

    /* The client encoding is the one keyword the DSN cannot change. */
    ons_pg_opts_default(&o, "host=127.0.0.1 port=1 client_encoding=LATIN1", "onsale-test");
    ons_pg_params_fill(&o, &p);
    c = PQconnectStartParams(p.kw, p.val, 1);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(effective(c, "client_encoding", v, sizeof v), "UTF8");
    PQfinish(c);

    o.connect_timeout_s = 0; /* 0: not sent at all */
    o.app_name = NULL;
    ons_pg_params_fill(&o, &p);
    ck_assert_str_eq(p.kw[0], "keepalives_idle");
    ck_assert_str_eq(p.kw[3], "dbname");
    ck_assert_str_eq(p.kw[4], "client_encoding");
    ck_assert_ptr_null(p.kw[5]);
}
END_TEST

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Nothing listens on port 1: each connect fails at once (refused), so the
 * failure count shows which calls attempted one. */
START_TEST(failed_connect_closes_the_gate_until_the_backoff)
{
    ons_pg pg;
    ons_pg_opts o = opts(300, 1000);
    ck_assert_int_eq(ons_pg_init(&pg, &o), 0);
    ck_assert_ptr_null(ons_pg_conn(&pg));
    ck_assert_int_eq(pg.failures, 1);
    ck_assert_ptr_null(ons_pg_conn(&pg)); /* gated: no attempt */
    ck_assert_int_eq(pg.failures, 1);
    ck_assert_int_eq(ons_pg_query(&pg, PGRES_TUPLES_OK, "x", "SELECT 1", 0, NULL, NULL),
                     ONS_EUNAVAIL);
    ck_assert_int_eq(pg.failures, 1);
    sleep_ms(350);
    ck_assert_ptr_null(ons_pg_conn(&pg)); /* open again: one more attempt */
    ck_assert_int_eq(pg.failures, 2);
    ck_assert_ptr_null(ons_pg_conn(&pg)); /* now 600 ms */
    ck_assert_int_eq(pg.failures, 2);
    sleep_ms(350);
    ck_assert_ptr_null(ons_pg_conn(&pg)); /* still inside 600 ms */
    ck_assert_int_eq(pg.failures, 2);
    /* ons_pg_connect ignores the gate (start-up, tools). */
    ck_assert_int_eq(ons_pg_connect(&pg), ONS_EUNAVAIL);
    ck_assert_int_eq(pg.failures, 3);
    ons_pg_fini(&pg);
    ons_pg_fini(&pg); /* twice is harmless */
}
END_TEST

START_TEST(init_needs_a_dsn)
{
    ons_pg pg;
    ons_pg_opts o = opts(0, 0);
    o.dsn = NULL;
    ck_assert_int_eq(ons_pg_init(&pg, &o), ONS_EINVAL);
    ons_pg_fini(&pg);
    ons_pg zero = {0};
    ons_pg_fini(&zero);
}
END_TEST

/* ---- parsing ---------------------------------------------------------------------- */

START_TEST(parse_i64_is_strict)
{
    int64_t v = 7;
    ck_assert_int_eq(ons_pg_parse_i64("0", &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(ons_pg_parse_i64("-12", &v), 0);
    ck_assert_int_eq(v, -12);
    ck_assert_int_eq(ons_pg_parse_i64("9223372036854775807", &v), 0);
    ck_assert(v == INT64_MAX);
    ck_assert_int_eq(ons_pg_parse_i64("-9223372036854775808", &v), 0);
    ck_assert(v == INT64_MIN);
    v = 7;
    ck_assert_int_eq(ons_pg_parse_i64("9223372036854775808", &v), ONS_ERANGE);
    ck_assert_int_eq(ons_pg_parse_i64("-9223372036854775809", &v), ONS_ERANGE);
    const char *bad[] = {"", "-", "+1", " 1", "1 ", "12a", "1.5", "0x10", "1e3", "t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(ons_pg_parse_i64(bad[i], &v) == ONS_EPARSE, "'%s'", bad[i]);
    ck_assert_int_eq(ons_pg_parse_i64(NULL, &v), ONS_EPARSE);
    ck_assert_int_eq(v, 7); /* untouched on error */
}
END_TEST

START_TEST(parse_bool_and_f64)
{
    int b = -1;
    ck_assert_int_eq(ons_pg_parse_bool("t", &b), 0);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(ons_pg_parse_bool("f", &b), 0);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(ons_pg_parse_bool("true", &b), 0);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(ons_pg_parse_bool("", &b), ONS_EPARSE);
    ck_assert_int_eq(ons_pg_parse_bool("1", &b), ONS_EPARSE);
    ck_assert_int_eq(ons_pg_parse_bool("tx", &b), ONS_EPARSE);
    double d = 0;
    ck_assert_int_eq(ons_pg_parse_f64("1.5", &d), 0);
    ck_assert_double_eq(d, 1.5);
    ck_assert_int_eq(ons_pg_parse_f64("1e9", &d), 0);
    ck_assert_double_eq(d, 1e9);
    ck_assert_int_eq(ons_pg_parse_f64("", &d), ONS_EPARSE);
    ck_assert_int_eq(ons_pg_parse_f64("1.5s", &d), ONS_EPARSE);
    ck_assert_int_eq(ons_pg_parse_f64(" 1", &d), ONS_EPARSE);
}
END_TEST

/* ---- getters over a built result --------------------------------------------------- */

enum { C_I64, C_I32, C_BOOL, C_TEXT, C_NULL, NCOLS };

/* Two rows: (42, 3000000000, t, "USD", NULL) and ("x", -7, "maybe", "", NULL). */
static PGresult *sample(void)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    ck_assert_ptr_nonnull(r);
    PGresAttDesc a[NCOLS];
    memset(a, 0, sizeof a);
    const char *names[NCOLS] = {"i64", "i32", "b", "t", "n"};
    for (int i = 0; i < NCOLS; i++) {
        a[i].name = (char *)names[i];
        a[i].typlen = -1;
    }
    ck_assert(PQsetResultAttrs(r, NCOLS, a));
    const char *rows[2][NCOLS] = {{"42", "3000000000", "t", "USD", NULL},
                                  {"x", "-7", "maybe", "", NULL}};
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < NCOLS; c++)
            ck_assert(
                PQsetvalue(r, i, c, (char *)rows[i][c], rows[i][c] ? (int)strlen(rows[i][c]) : -1));
    return r;
}

START_TEST(getters_check_type_null_and_range)
{
    PGresult *r = sample();
    int64_t v = 0;
    int32_t v32 = 0;
    int b = 0;
    ck_assert_int_eq(ons_pg_get_i64(r, 0, C_I64, &v), 0);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(ons_pg_get_i64(r, 0, C_I32, &v), 0);
    ck_assert_int_eq(v, 3000000000LL);
    ck_assert_int_eq(ons_pg_get_i32(r, 0, C_I32, &v32), ONS_ERANGE);
    ck_assert_int_eq(ons_pg_get_i32(r, 1, C_I32, &v32), 0);
    ck_assert_int_eq(v32, -7);
    ck_assert_int_eq(ons_pg_get_i64(r, 1, C_I64, &v), ONS_EPARSE);
    ck_assert_int_eq(ons_pg_get_i64(r, 0, C_NULL, &v), ONS_ENOTFOUND);
    ck_assert_int_eq(ons_pg_get_i64_or(r, 0, C_NULL, -1, &v), 0);
    ck_assert_int_eq(v, -1);
    ck_assert_int_eq(ons_pg_get_i64_or(r, 1, C_I64, -1, &v), ONS_EPARSE);
    ck_assert_int_eq(ons_pg_get_bool(r, 0, C_BOOL, &b), 0);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(ons_pg_get_bool(r, 1, C_BOOL, &b), ONS_EPARSE);
    /* no such row or column */
    ck_assert_int_eq(ons_pg_get_i64(r, 2, C_I64, &v), ONS_EINVAL);
    ck_assert_int_eq(ons_pg_get_i64(r, -1, C_I64, &v), ONS_EINVAL);
    ck_assert_int_eq(ons_pg_get_i64(r, 0, NCOLS, &v), ONS_EINVAL);
    ck_assert_int_eq(ons_pg_get_i64(NULL, 0, 0, &v), ONS_EINVAL);
    ck_assert_int_eq(ons_pg_isnull(r, 0, C_NULL), 1);
    ck_assert_int_eq(ons_pg_isnull(r, 0, C_TEXT), 0);
    ck_assert_int_eq(ons_pg_isnull(r, 5, 0), ONS_EINVAL);
    PQclear(r);
}
END_TEST

START_TEST(text_getters_copy_or_refuse)
{
    PGresult *r = sample();
    char buf[4] = "zzz";
    ck_assert_int_eq(ons_pg_get_text(r, 0, C_TEXT, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "USD");
    char small[3] = "zz";
    ck_assert_int_eq(ons_pg_get_text(r, 0, C_TEXT, small, sizeof small), ONS_ERANGE);
    ck_assert_str_eq(small, ""); /* never a cut value */
    ck_assert_int_eq(ons_pg_get_text(r, 1, C_TEXT, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(ons_pg_get_text(r, 0, C_NULL, buf, sizeof buf), ONS_ENOTFOUND);
    ck_assert_str_eq(ons_pg_get_str(r, 0, C_TEXT), "USD");
    ck_assert_ptr_null(ons_pg_get_str(r, 0, C_NULL));
    ck_assert_ptr_null(ons_pg_get_str(r, 0, 99));
    PQclear(r);
}
END_TEST

START_TEST(row_reader_keeps_the_first_error)
{
    PGresult *r = sample();
    ons_pg_row rw = ons_pg_row_at(r, 0);
    ck_assert_int_eq(ons_pg_row_i64(&rw, C_I64), 42);
    ck_assert(ons_pg_row_bool(&rw, C_BOOL));
    ck_assert_str_eq(ons_pg_row_str(&rw, C_TEXT, 0), "USD");
    ck_assert_str_eq(ons_pg_row_str(&rw, C_NULL, 1), ""); /* nullable */
    ck_assert_int_eq(ons_pg_row_i64_or(&rw, C_NULL, 5), 5);
    ck_assert_int_eq(ons_pg_row_done(&rw, "sample"), 0);

    ck_assert_int_eq(ons_pg_row_i32(&rw, C_I32), 0); /* 3000000000: out of int32 */
    ck_assert_int_eq(rw.err, ONS_ERANGE);
    ck_assert_int_eq(rw.col, C_I32);
    ck_assert_str_eq(ons_pg_row_str(&rw, C_NULL, 0), ""); /* a second error ... */
    ck_assert_int_eq(ons_pg_row_i64(&rw, C_I64), 42);     /* ... and a good read */
    ck_assert_int_eq(rw.err, ONS_ERANGE);                 /* keep the first */
    ck_assert_int_eq(rw.col, C_I32);
    ck_assert_int_eq(ons_pg_row_done(&rw, "sample"), ONS_ERANGE);

    ons_pg_row rw2 = ons_pg_row_at(r, 1);
    char cur[4];
    ons_pg_row_text(&rw2, C_NULL, cur, sizeof cur, 1);
    ck_assert_int_eq(rw2.err, 0);
    ons_pg_row_text(&rw2, C_NULL, cur, sizeof cur, 0);
    ck_assert_int_eq(rw2.err, ONS_ENOTFOUND);
    PQclear(r);
}
END_TEST

/* ---- every row into an array ------------------------------------------------------- */

typedef struct sample_row {
    int64_t i64;
    char text[8];
} sample_row;

static int read_sample(const PGresult *r, int i, void *item)
{
    sample_row *v = item;
    ons_pg_row rw = ons_pg_row_at(r, i);
    v->i64 = ons_pg_row_i64(&rw, C_I64);
    ons_pg_row_text(&rw, C_TEXT, v->text, sizeof v->text, 0);
    return ons_pg_row_done(&rw, "sample");
}

START_TEST(rows_fill_an_array_or_nothing)
{
    PGresult *r = sample();
    sample_row *rows = (sample_row *)&rows; /* garbage: must be overwritten */
    size_t n = 99;
    ck_assert_int_eq(ons_pg_rows(r, sizeof *rows, 1, read_sample, &rows, &n), 0);
    ck_assert_uint_eq(n, 1); /* max 1 */
    ck_assert_int_eq(rows[0].i64, 42);
    ck_assert_str_eq(rows[0].text, "USD");
    ons_pg_rows_free(&rows, &n);
    ck_assert_ptr_null(rows);
    ck_assert_uint_eq(n, 0);

    n = 99; /* row 1 ("x") does not read: nothing is kept */
    ck_assert_int_eq(ons_pg_rows(r, sizeof *rows, -1, read_sample, &rows, &n), ONS_EDB);
    ck_assert_ptr_null(rows);
    ck_assert_uint_eq(n, 0);

    n = 99; /* no rows (or no result): NULL and 0 */
    ck_assert_int_eq(ons_pg_rows(r, sizeof *rows, 0, read_sample, &rows, &n), 0);
    ck_assert_ptr_null(rows);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(ons_pg_rows(NULL, sizeof *rows, -1, read_sample, &rows, &n), 0);
    ck_assert_ptr_null(rows);
    PQclear(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("backoff");
    tcase_add_test(tc, backoff_doubles_to_the_cap);
    tcase_add_test(tc, backoff_edges);
    tcase_add_test(tc, defaults_are_the_documented_ones);
    tcase_add_test(tc, failed_connect_closes_the_gate_until_the_backoff);
    tcase_add_test(tc, init_needs_a_dsn);
    suite_add_tcase(s, tc);
    tc = tcase_create("conninfo");
    tcase_add_test(tc, defaults_apply_and_the_dsn_wins);
    suite_add_tcase(s, tc);
    tc = tcase_create("parse");
    tcase_add_test(tc, parse_i64_is_strict);
    tcase_add_test(tc, parse_bool_and_f64);
    suite_add_tcase(s, tc);
    tc = tcase_create("getters");
    tcase_add_test(tc, getters_check_type_null_and_range);
    tcase_add_test(tc, text_getters_copy_or_refuse);
    tcase_add_test(tc, row_reader_keeps_the_first_error);
    tcase_add_test(tc, rows_fill_an_array_or_nothing);
    suite_add_tcase(s, tc);
    return ons_check_run_suite(s);
}
