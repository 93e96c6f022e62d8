/* test_pg_row.c - ingress/pg_row's column tables (ing_pg_read_cols) over a
 * result built with libpq's PQsetvalue(): text, bigint and int members
 * filled by offset, and the first number that does not parse refused. */
#include "tests/check_run.h"
#include "common/err.h"
#include "ingress/pg_row.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

typedef struct item {
    char name[4];
    int64_t id;
    int count;
} item;

#define COL(kind, col, member) ING_PG_COL(item, ING_PG_##kind, col, member)
static const ing_pg_col cols[] = {COL(I64, 0, id), COL(TEXT, 1, name), COL(INT, 2, count)};

/* Two rows: (7, "abcdef", 3) and (8, NULL, 3000000000). */
static PGresult *sample(void)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    ck_assert_ptr_nonnull(r);
    PGresAttDesc a[3];
    memset(a, 0, sizeof a);
    const char *names[3] = {"id", "name", "count"};
    for (int i = 0; i < 3; i++) {
        a[i].name = (char *)names[i];
        a[i].typlen = -1;
    }
    ck_assert(PQsetResultAttrs(r, 3, a));
    const char *rows[2][3] = {{"7", "abcdef", "3"}, {"8", NULL, "3000000000"}};
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 3; c++)
            ck_assert(
                PQsetvalue(r, i, c, (char *)rows[i][c], rows[i][c] ? (int)strlen(rows[i][c]) : -1));
    return r;
}

START_TEST(columns_fill_members_by_offset)
{
    PGresult *r = sample();
    item it;
    memset(&it, 0x55, sizeof it);
    ck_assert_int_eq(ing_pg_read_cols(r, 0, &it, cols, 3), 0);
    ck_assert_int_eq(it.id, 7);
    ck_assert_str_eq(it.name, "abc"); /* truncated to the member */
    ck_assert_int_eq(it.count, 3);
    ck_assert_int_eq(ing_pg_read_cols(r, 0, &it, cols, 0), 0);
    PQclear(r);
}
END_TEST

START_TEST(a_bad_number_is_refused)
{
    PGresult *r = sample();
    item it;
    memset(&it, 0, sizeof it);
    /* count 3000000000 is out of an int's range; a NULL text is "" */
    ck_assert_int_eq(ing_pg_read_cols(r, 1, &it, cols, 3), ONS_EPARSE);
    ck_assert_int_eq(it.id, 8);
    ck_assert_str_eq(it.name, "");
    /* a bigint column over a text cell */
    const ing_pg_col wrong[] = {COL(I64, 1, id)};
    ck_assert_int_eq(ing_pg_read_cols(r, 0, &it, wrong, 1), ONS_EPARSE);
    PQclear(r);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"columns_fill_members_by_offset", columns_fill_members_by_offset},
        {"a_bad_number_is_refused", a_bad_number_is_refused},
    };
    return ons_check_run("pg_row", cases, sizeof cases / sizeof *cases, 30);
}
