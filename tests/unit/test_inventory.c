/* test_inventory.c - the seat map and the allocation rule (workers/inventory). */
#include "workers/inventory.h"
#include "workers/map.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

/* Two sections: A (position 0, 3 rows x 5 seats, 10000) and B (position 1,
 * 2 rows x 4 seats, 5000). Seat indices: A row r seat s = (r-1)*5 + s-1,
 * B row r seat s = 15 + (r-1)*4 + s-1. */
static void venue(wk_inv *inv)
{
    wk_inv_init(inv);
    ck_assert_int_eq(wk_inv_add_block(inv, 11, "A", 0, 3, 5, 10000), 0);
    ck_assert_int_eq(wk_inv_add_block(inv, 12, "B", 1, 2, 4, 5000), 1);
    ck_assert_int_eq(inv->nseats, 23);
    ck_assert_int_eq(inv->available, 23);
}

/* A venue of section A alone (id 1, position 0): rows x seats at price. */
static void section_a(wk_inv *inv, int rows, int seats, int64_t price)
{
    wk_inv_init(inv);
    ck_assert_int_eq(wk_inv_add_block(inv, 1, "A", 0, rows, seats, price), 0);
}

static int A(int row, int seat)
{
    return (row - 1) * 5 + seat - 1;
}
static int B(int row, int seat)
{
    return 15 + (row - 1) * 4 + seat - 1;
}

static void take(wk_inv *inv, int seat)
{
    wk_inv_set(inv, (uint32_t)seat, Q_SEAT_HELD);
}

static int find(wk_inv *inv, int qty, int section, int64_t max_price, int adjacent,
                enum wk_find_mode mode, uint32_t *out)
{
    wk_req r = {qty, section, max_price, adjacent};
    return wk_inv_find(inv, &r, mode, out);
}

/* The venue with seats 2 and 4 of row A1 held: row A1 has free seats 1, 3
 * and 5, no two together. */
static void gapped_venue(wk_inv *inv)
{
    venue(inv);
    take(inv, A(1, 2));
    take(inv, A(1, 4));
}

/* find(qty, any section, any price, adjacent, mode) finds n seats and, when
 * want is given, exactly want[0..n-1] in that order. */
static void finds(wk_inv *inv, int qty, int adjacent, enum wk_find_mode mode, int n,
                  const int *want)
{
    uint32_t s[Q_MAX_SEATS];
    ck_assert_int_eq(find(inv, qty, -1, 0, adjacent, mode, s), n);
    for (int i = 0; want && i < n; i++)
        ck_assert_int_eq(s[i], want[i]);
}
/* Seat freed becomes available; then qty free adjacent seats are found (any
 * section, any price), the first of them first. */
static void free_then_find(wk_inv *inv, int freed, int qty, int first)
{
    uint32_t s[Q_MAX_SEATS];
    wk_inv_set(inv, (uint32_t)freed, Q_SEAT_AVAILABLE);
    ck_assert_int_eq(find(inv, qty, -1, 0, 1, WK_FIND_FREE, s), qty);
    ck_assert_int_eq(s[0], first);
}
#define SEATS(...) ((const int[]){__VA_ARGS__})

START_TEST(best_seats_first)
{
    wk_inv inv;
    venue(&inv);
    uint32_t s[Q_MAX_SEATS];
    ck_assert_int_eq(find(&inv, 2, -1, 0, 1, WK_FIND_FREE, s), 2);
    ck_assert_int_eq(s[0], A(1, 1));
    ck_assert_int_eq(s[1], A(1, 2));
    for (int i = 0; i < 2; i++)
        take(&inv, (int)s[i]);
    ck_assert_int_eq(find(&inv, 1, -1, 0, 1, WK_FIND_FREE, s), 1);
    ck_assert_int_eq(s[0], A(1, 3));
    ck_assert_int_eq(inv.available, 21);
    ck_assert_int_eq(inv.held, 2);
    wk_inv_fini(&inv);
}
END_TEST

START_TEST(adjacent_needs_one_row_contiguous)
{
    wk_inv inv;
    gapped_venue(&inv);
    /* row 1 has free seats 1, 3, 5 but no two together */
    finds(&inv, 2, 1, WK_FIND_FREE, 2, SEATS(A(2, 1), A(2, 2)));
    /* more than a row can hold together: impossible even counting held */
    finds(&inv, 6, 1, WK_FIND_FREE, 0, NULL);
    finds(&inv, 6, 1, WK_FIND_UNSOLD, 0, NULL);
    wk_inv_fini(&inv);
}
END_TEST

START_TEST(split_takes_best_single_seats)
{
    wk_inv inv;
    gapped_venue(&inv);
    finds(&inv, 3, 0, WK_FIND_FREE, 3, SEATS(A(1, 1), A(1, 3), A(1, 5)));
    /* 6 split seats exist although no row has 6 */
    finds(&inv, 6, 0, WK_FIND_FREE, 6, NULL);
    wk_inv_fini(&inv);
}
END_TEST

START_TEST(orphan_avoided_when_choice_exists)
{
    wk_inv inv;
    venue(&inv);
    uint32_t s[Q_MAX_SEATS];
    /* Row 1 (5 free): 4 there would strand seat 5. Row 2 has 4 free (seat 5
     * taken): a perfect fit further back wins. */
    take(&inv, A(2, 5));
    ck_assert_int_eq(find(&inv, 4, 0, 0, 1, WK_FIND_FREE, s), 4);
    ck_assert_int_eq(s[0], A(2, 1));
    /* Without such a choice, the stranding placement is still made. */
    take(&inv, A(2, 1));
    take(&inv, A(3, 1));
    take(&inv, A(3, 5));
    ck_assert_int_eq(find(&inv, 4, 0, 0, 1, WK_FIND_FREE, s), 4);
    ck_assert_int_eq(s[0], A(1, 1));
    wk_inv_fini(&inv);
}
END_TEST

START_TEST(orphan_right_aligned_in_run)
{
    wk_inv inv;
    section_a(&inv, 1, 6, 100);
    uint32_t s[Q_MAX_SEATS];
    /* free: 2..6 (seat 1 taken). 2 at seats 2,3 leaves 4..6: fine. */
    take(&inv, 0);
    ck_assert_int_eq(find(&inv, 2, -1, 0, 1, WK_FIND_FREE, s), 2);
    ck_assert_int_eq(s[0], 1);
    /* free: 1 taken, 2 free, 3..6 free, seat 2 alone on the left if we take
     * 3,4: with run 2..6 (5 seats) and qty 4 left-aligned leaves seat 6
     * stranded, right-aligned leaves seat 2 stranded: fallback is left. */
    ck_assert_int_eq(find(&inv, 4, -1, 0, 1, WK_FIND_FREE, s), 4);
    ck_assert_int_eq(s[0], 1);
    /* A single seat fills a hole instead of splitting a pair. */
    take(&inv, 2);
    take(&inv, 3);
    /* free: 2, 5, 6 (indices 1, 4, 5) */
    ck_assert_int_eq(find(&inv, 1, -1, 0, 1, WK_FIND_FREE, s), 1);
    ck_assert_int_eq(s[0], 1);
    wk_inv_fini(&inv);
}
END_TEST

START_TEST(section_and_price_limits)
{
    wk_inv inv;
    venue(&inv);
    uint32_t s[Q_MAX_SEATS];
    int b = wk_inv_section_by_name(&inv, "B");
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(wk_inv_section_by_name(&inv, "Z"), -1);
    ck_assert_int_eq(find(&inv, 2, b, 0, 1, WK_FIND_FREE, s), 2);
    ck_assert_int_eq(s[0], B(1, 1));
    /* price ceiling below A's price lands in B */
    ck_assert_int_eq(find(&inv, 3, -1, 6000, 1, WK_FIND_FREE, s), 3);
    ck_assert_int_eq(s[0], B(1, 1));
    /* ceiling below every price: nothing, ever */
    ck_assert_int_eq(find(&inv, 1, -1, 100, 1, WK_FIND_FREE, s), 0);
    ck_assert_int_eq(find(&inv, 1, -1, 100, 1, WK_FIND_UNSOLD, s), 0);
    /* section B holds 8: 9 split seats can never come from it */
    ck_assert_int_eq(find(&inv, 9, b, 0, 0, WK_FIND_UNSOLD, s), 0);
    wk_inv_fini(&inv);
}
END_TEST

START_TEST(unsold_counts_held_not_sold)
{
    wk_inv inv;
    section_a(&inv, 1, 4, 100);
    uint32_t s[Q_MAX_SEATS];
    for (int i = 0; i < 4; i++)
        take(&inv, i);
    ck_assert_int_eq(find(&inv, 2, -1, 0, 1, WK_FIND_FREE, s), 0);
    ck_assert_int_eq(find(&inv, 2, -1, 0, 1, WK_FIND_UNSOLD, s), 2);
    wk_inv_set(&inv, 0, Q_SEAT_SOLD);
    wk_inv_set(&inv, 2, Q_SEAT_SOLD);
    ck_assert_int_eq(find(&inv, 2, -1, 0, 1, WK_FIND_UNSOLD, s), 0);
    ck_assert_int_eq(find(&inv, 2, -1, 0, 0, WK_FIND_UNSOLD, s), 2);
    ck_assert_int_eq(inv.sold, 2);
    ck_assert_int_eq(inv.held, 2);
    ck_assert_int_eq(inv.available, 0);
    /* a release lowers the hint again */
    free_then_find(&inv, 3, 1, 3);
    wk_inv_fini(&inv);
}
END_TEST

START_TEST(hints_survive_fill_and_release)
{
    wk_inv inv;
    section_a(&inv, 100, 10, 100);
    uint32_t s[Q_MAX_SEATS];
    for (int i = 0; i < 500; i++) {
        ck_assert_int_eq(find(&inv, 2, -1, 0, 1, WK_FIND_FREE, s), 2);
        ck_assert_int_eq(s[0], (uint32_t)(2 * i));
        take(&inv, (int)s[0]);
        take(&inv, (int)s[1]);
    }
    ck_assert_int_eq(find(&inv, 2, -1, 0, 1, WK_FIND_FREE, s), 0);
    wk_inv_set(&inv, 501, Q_SEAT_AVAILABLE);
    free_then_find(&inv, 502, 2, 501);
    wk_inv_fini(&inv);
}
END_TEST

START_TEST(builder_rejects_disorder)
{
    wk_inv inv;
    wk_inv_init(&inv);
    ck_assert_int_lt(wk_inv_add_seat(&inv, 1, 1, 0, 1, 0), 0); /* no section */
    ck_assert_int_eq(wk_inv_add_section(&inv, 1, "A", 3), 0);
    ck_assert_int_lt(wk_inv_add_section(&inv, 2, "B", 3), 0);
    ck_assert_int_eq(wk_inv_add_seat(&inv, 2, 5, 0, 1, Q_SEAT_AVAILABLE), 0);
    ck_assert_int_lt(wk_inv_add_seat(&inv, 2, 5, 1, 1, Q_SEAT_AVAILABLE), 0);
    ck_assert_int_lt(wk_inv_add_seat(&inv, 1, 9, 1, 1, Q_SEAT_AVAILABLE), 0);
    ck_assert_int_lt(wk_inv_add_seat(&inv, 3, 1, 1, 1, 7), 0);
    ck_assert_int_eq(wk_inv_add_seat(&inv, 3, 1, 1, 1, Q_SEAT_SOLD), 1);
    ck_assert_int_eq(inv.nrows, 2);
    ck_assert_int_eq(inv.sold, 1);
    wk_inv_fini(&inv);
}
END_TEST

/* The longest unsold run of a row, capped, from its seats (the reference). */
static int brute_run(const wk_inv *inv, const wk_row *row)
{
    int best = 0, cur = 0;
    for (uint32_t i = row->first_seat; i < row->first_seat + row->nseats; i++) {
        cur = inv->state[i] == Q_SEAT_SOLD ? 0 : cur + 1;
        if (cur > best)
            best = cur;
    }
    return best < Q_MAX_SEATS ? best : Q_MAX_SEATS;
}

static void check_runs(const wk_inv *inv)
{
    for (size_t si = 0; si < inv->nsections; si++) {
        uint32_t by_run[Q_MAX_SEATS + 1] = {0};
        const wk_section *s = &inv->sections[si];
        for (uint32_t r = s->first_row; r < s->first_row + s->nrows; r++) {
            ck_assert_int_eq(inv->rows[r].run, brute_run(inv, &inv->rows[r]));
            by_run[inv->rows[r].run]++;
        }
        for (int k = 0; k <= Q_MAX_SEATS; k++)
            ck_assert_uint_eq(s->rows_by_run[k], by_run[k]);
    }
}

/* Issue 14 item 9: "could this request ever be served?" from counters gives
 * the search's answer, for every request shape, over random seat states;
 * section C mixes prices (the counters defer to the search there). */
START_TEST(could_fit_agrees_with_the_unsold_search)
{
    wk_inv inv;
    wk_inv_init(&inv);
    ck_assert_int_eq(wk_inv_add_block(&inv, 1, "A", 0, 6, 12, 9000), 0);
    ck_assert_int_eq(wk_inv_add_block(&inv, 2, "B", 1, 3, 4, 4000), 1);
    ck_assert_int_eq(wk_inv_add_section(&inv, 3, "C", 2), 2);
    for (int r = 1; r <= 4; r++)
        for (int k = 1; k <= 7; k++)
            ck_assert_int_ge(wk_inv_add_seat(&inv, r, k, (int32_t)inv.nseats, k % 2 ? 2000 : 6000,
                                             r == 4 && k == 4 ? Q_SEAT_SOLD : Q_SEAT_AVAILABLE),
                             0);
    check_runs(&inv);
    static const int64_t ceilings[] = {0, 1000, 2000, 4000, 6000, 9000};
    static const int weights[] = {Q_SEAT_AVAILABLE, Q_SEAT_HELD, Q_SEAT_PAYING,
                                  Q_SEAT_SOLD,      Q_SEAT_SOLD, Q_SEAT_SOLD};
    srand(14);
    for (int round = 0; round < 60; round++) {
        /* Sell more and more, with a few seats coming back. */
        for (int k = 0; k < 4; k++)
            wk_inv_set(&inv, (uint32_t)(rand() % (int)inv.nseats), weights[rand() % 6]);
        check_runs(&inv);
        for (int qty = 1; qty <= Q_MAX_SEATS; qty++)
            for (int sec = -1; sec < (int)inv.nsections; sec++)
                for (int adj = 0; adj <= 1; adj++)
                    for (size_t c = 0; c < sizeof ceilings / sizeof ceilings[0]; c++) {
                        wk_req r = {qty, sec, ceilings[c], adj};
                        uint32_t out[Q_MAX_SEATS];
                        int want = wk_inv_find(&inv, &r, WK_FIND_UNSOLD, out) != 0;
                        ck_assert_msg(wk_inv_could_fit(&inv, &r) == want,
                                      "round %d qty %d section %d adjacent %d ceiling %lld: "
                                      "search says %d",
                                      round, qty, sec, adj, (long long)ceilings[c], want);
                    }
    }
    ck_assert_int_gt(inv.sold, 0);
    wk_inv_fini(&inv);
}
END_TEST

/* The adjacent search as it was written before it skipped taken seats
 * with memchr and read a free run only as far as its answer needed
 * (bench/NOTES.md, sixteenth round): seat by seat, every run to its end,
 * every row from the section's first. The search must choose what this
 * chooses, for every request. */
static int ref_matches(const wk_inv *inv, uint32_t i, enum wk_find_mode mode, int64_t max_price)
{
    if (max_price > 0 && inv->price[i] > max_price)
        return 0;
    return mode == WK_FIND_FREE ? inv->state[i] == Q_SEAT_AVAILABLE : inv->state[i] != Q_SEAT_SOLD;
}

static int ref_free(const wk_inv *inv, uint32_t i)
{
    return inv->state[i] == Q_SEAT_AVAILABLE;
}

static int ref_orphan(const wk_inv *inv, const wk_row *row, uint32_t s, uint32_t q)
{
    uint32_t lo = row->first_seat, hi = row->first_seat + row->nseats, e = s + q;
    if (s > lo && ref_free(inv, s - 1) && (s - 1 == lo || !ref_free(inv, s - 2)))
        return 1;
    return e < hi && ref_free(inv, e) && (e + 1 == hi || !ref_free(inv, e + 1));
}

/* The run search of one row: 1 and *at when found; sets *fb (the first
 * orphaning run) once. */
static int ref_row(const wk_inv *inv, const wk_row *row, const wk_req *r, enum wk_find_mode mode,
                   int *have_fb, uint32_t *fb, uint32_t *at)
{
    uint32_t q = (uint32_t)r->qty, end = row->first_seat + row->nseats;
    for (uint32_t a = row->first_seat; a < end;) {
        if (!ref_matches(inv, a, mode, r->max_price)) {
            a++;
            continue;
        }
        uint32_t b = a;
        while (b < end && ref_matches(inv, b, mode, r->max_price))
            b++;
        if (b - a >= q) {
            if (mode == WK_FIND_UNSOLD || !ref_orphan(inv, row, a, q))
                return *at = a, 1;
            if (!ref_orphan(inv, row, b - q, q))
                return *at = b - q, 1;
            if (!*have_fb)
                *have_fb = 1, *fb = a;
        }
        a = b;
    }
    return 0;
}

static int ref_find_adjacent(const wk_inv *inv, const wk_req *r, enum wk_find_mode mode,
                             uint32_t *first)
{
    uint32_t q = (uint32_t)r->qty;
    if ((mode == WK_FIND_FREE ? inv->available : inv->available + inv->held) < r->qty)
        return 0;
    int have_fb = 0;
    uint32_t fb = 0;
    size_t from = r->section >= 0 ? (size_t)r->section : 0;
    size_t to = r->section >= 0 ? (size_t)r->section + 1 : inv->nsections;
    for (size_t si = from; si < to; si++) {
        const wk_section *s = &inv->sections[si];
        if ((mode == WK_FIND_FREE ? s->nfree : s->nunsold) < (int64_t)q ||
            (r->max_price > 0 && s->min_price > r->max_price))
            continue;
        int look = 0;
        for (uint32_t ri = 0; ri < s->nrows; ri++) {
            const wk_row *row = &inv->rows[s->first_row + ri];
            if ((mode == WK_FIND_FREE ? row->nfree : row->nunsold) < q)
                continue;
            if (have_fb && ++look > WK_ORPHAN_LOOKAHEAD)
                break;
            if (ref_row(inv, row, r, mode, &have_fb, &fb, first))
                return 1;
        }
        if (have_fb)
            break;
    }
    return have_fb ? (*first = fb, 1) : 0;
}

/* The adjacent search chooses the seats the seat-by-seat search above
 * chooses: every request shape and mode, over random seat states (mixed
 * prices in section C, long rows in A for the memchr path). */
START_TEST(adjacent_search_chooses_as_before)
{
    wk_inv inv;
    wk_inv_init(&inv);
    ck_assert_int_eq(wk_inv_add_block(&inv, 1, "A", 0, 5, 70, 9000), 0);
    ck_assert_int_eq(wk_inv_add_block(&inv, 2, "B", 1, 3, 9, 4000), 1);
    ck_assert_int_eq(wk_inv_add_section(&inv, 3, "C", 2), 2);
    for (int r = 1; r <= 4; r++)
        for (int k = 1; k <= 23; k++)
            ck_assert_int_ge(wk_inv_add_seat(&inv, r, k, (int32_t)inv.nseats, k % 3 ? 2000 : 6000,
                                             Q_SEAT_AVAILABLE),
                             0);
    static const int64_t ceilings[] = {0, 1000, 2000, 4000, 6000, 9000};
    static const int states[] = {Q_SEAT_AVAILABLE, Q_SEAT_AVAILABLE, Q_SEAT_HELD,
                                 Q_SEAT_PAYING,    Q_SEAT_SOLD,      Q_SEAT_HELD};
    srand(16);
    long found = 0, compared = 0;
    for (int round = 0; round < 400; round++) {
        for (int k = 0; k < 6; k++)
            wk_inv_set(&inv, (uint32_t)(rand() % (int)inv.nseats), states[rand() % 6]);
        for (int qty = 1; qty <= Q_MAX_SEATS; qty++)
            for (int sec = -1; sec < (int)inv.nsections; sec++)
                for (int mode = WK_FIND_FREE; mode <= WK_FIND_UNSOLD; mode++)
                    for (size_t c = 0; c < sizeof ceilings / sizeof ceilings[0]; c++) {
                        wk_req r = {qty, sec, ceilings[c], 1};
                        uint32_t out[Q_MAX_SEATS], first = 0;
                        int want = ref_find_adjacent(&inv, &r, (enum wk_find_mode)mode, &first);
                        int got = wk_inv_find(&inv, &r, (enum wk_find_mode)mode, out);
                        ck_assert_msg(got == (want ? qty : 0) && (!want || out[0] == first),
                                      "round %d qty %d section %d mode %d ceiling %lld: "
                                      "got %d at %u, want %d at %u",
                                      round, qty, sec, mode, (long long)ceilings[c], got,
                                      got ? out[0] : 0, want, first);
                        found += want;
                        compared++;
                    }
    }
    /* both outcomes were exercised, many times */
    ck_assert_int_gt(found, compared / 10);
    ck_assert_int_lt(found, compared - compared / 10);
    wk_inv_fini(&inv);
}
END_TEST

/* shrink_gen moves on a sale that may shrink what could fit, and only then:
 * not for holds and releases, not for a sale that leaves every section's
 * longest run and unsold count at Q_MAX_SEATS or more. */
START_TEST(shrink_gen_counts_sales_that_may_matter)
{
    wk_inv inv;
    wk_inv_init(&inv);
    ck_assert_int_eq(wk_inv_add_block(&inv, 1, "A", 0, 3, 12, 100), 0);
    ck_assert_int_eq(wk_inv_add_block(&inv, 2, "B", 1, 1, 4, 100), 1);
    uint32_t g = inv.shrink_gen;
    wk_inv_set(&inv, 0, Q_SEAT_HELD);
    wk_inv_set(&inv, 0, Q_SEAT_PAYING);
    wk_inv_set(&inv, 1, Q_SEAT_HELD);
    wk_inv_set(&inv, 1, Q_SEAT_AVAILABLE);
    ck_assert_uint_eq(inv.shrink_gen, g);
    /* row 1 of A keeps 11 unsold together; A keeps rows of 12 */
    wk_inv_set(&inv, 0, Q_SEAT_SOLD);
    ck_assert_uint_eq(inv.shrink_gen, g);
    /* B has 4 seats: any sale there may matter */
    wk_inv_set(&inv, 36 + 1, Q_SEAT_SOLD);
    ck_assert_uint_eq(inv.shrink_gen, g + 1);
    ck_assert_int_eq(inv.rows[3].run, 2);
    /* cut every row of A below 10 together: the last cut shrinks A's longest run */
    wk_inv_set(&inv, 12 + 6, Q_SEAT_SOLD);
    ck_assert_uint_eq(inv.shrink_gen, g + 1);
    wk_inv_set(&inv, 6, Q_SEAT_SOLD);
    ck_assert_uint_eq(inv.shrink_gen, g + 1);
    wk_inv_set(&inv, 24 + 6, Q_SEAT_SOLD);
    ck_assert_uint_eq(inv.shrink_gen, g + 2);
    /* a cancelled ticket gives a seat back: never a shrink */
    wk_inv_set(&inv, 6, Q_SEAT_AVAILABLE);
    ck_assert_uint_eq(inv.shrink_gen, g + 2);
    check_runs(&inv);
    wk_inv_fini(&inv);
}
END_TEST

START_TEST(map_put_get_del)
{
    wk_map m;
    wk_map_init(&m);
    static int vals[5000];
    for (int i = 0; i < 5000; i++)
        ck_assert_int_eq(wk_map_put(&m, (int64_t)i * 7919, &vals[i]), 0);
    ck_assert_int_eq(m.len, 5000);
    for (int i = 0; i < 5000; i += 2)
        ck_assert_ptr_eq(wk_map_del(&m, (int64_t)i * 7919), &vals[i]);
    for (int i = 0; i < 5000; i++)
        ck_assert_ptr_eq(wk_map_get(&m, (int64_t)i * 7919), i % 2 ? &vals[i] : NULL);
    ck_assert_ptr_null(wk_map_del(&m, -1));
    ck_assert_int_eq(m.len, 2500);
    wk_map_fini(&m);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"best_seats_first", best_seats_first},
        {"adjacent", adjacent_needs_one_row_contiguous},
        {"split", split_takes_best_single_seats},
        {"orphan", orphan_avoided_when_choice_exists},
        {"orphan_run", orphan_right_aligned_in_run},
        {"limits", section_and_price_limits},
        {"unsold", unsold_counts_held_not_sold},
        {"hints", hints_survive_fill_and_release},
        {"builder", builder_rejects_disorder},
        {"map", map_put_get_del},
        {"could_fit", could_fit_agrees_with_the_unsold_search},
        {"shrink_gen", shrink_gen_counts_sales_that_may_matter},
        {"adjacent_as_before", adjacent_search_chooses_as_before},
    };
    return ons_check_run("inventory", cases, sizeof cases / sizeof *cases, 60);
}
