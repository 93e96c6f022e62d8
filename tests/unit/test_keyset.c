/* test_keyset.c - keyset pagination (ingress/keyset.h): the page shows at
 * most limit of the limit + 1 rows fetched, says whether a next page
 * exists, and its next_cursor is the cursor or null. */
#include "ingress/keyset.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdlib.h>

START_TEST(rows_and_more)
{
    int more = -1;
    ck_assert_int_eq(ing_keyset_rows(0, 20, &more), 0);
    ck_assert_int_eq(more, 0);
    ck_assert_int_eq(ing_keyset_rows(20, 20, &more), 20); /* exactly a page: the last one */
    ck_assert_int_eq(more, 0);
    ck_assert_int_eq(ing_keyset_rows(21, 20, &more), 20); /* the extra row: a next page */
    ck_assert_int_eq(more, 1);
    ck_assert_int_eq(ing_keyset_rows(1, 1, &more), 1);
    ck_assert_int_eq(more, 0);
    ck_assert_int_eq(ing_keyset_rows(2, 1, &more), 1);
    ck_assert_int_eq(more, 1);
}
END_TEST

START_TEST(next_cursor)
{
    json_t *body = json_pack("{s:o}", "next_cursor", ing_keyset_next("abc.1"));
    ck_assert_ptr_nonnull(body);
    ck_assert_str_eq(json_string_value(json_object_get(body, "next_cursor")), "abc.1");
    json_decref(body);
    body = json_pack("{s:o}", "next_cursor", ing_keyset_next(NULL));
    ck_assert_ptr_nonnull(body);
    ck_assert(json_is_null(json_object_get(body, "next_cursor")));
    json_decref(body);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"rows_and_more", rows_and_more},
        {"next_cursor", next_cursor},
    };
    return ons_check_run("keyset", cases, sizeof cases / sizeof *cases, 30);
}
