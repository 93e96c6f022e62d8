/* inventory.c - seat map and best-available allocation; see inventory.h. */
#include "workers/inventory.h"
#include "common/err.h"
#include "common/vec.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void wk_inv_init(wk_inv *inv)
{
    memset(inv, 0, sizeof *inv);
}

void wk_inv_fini(wk_inv *inv)
{
    free(inv->sections);
    free(inv->rows);
    free(inv->state);
    free(inv->seat_no);
    free(inv->seat_in_row);
    free(inv->price);
    free(inv->row_of);
    memset(inv, 0, sizeof *inv);
}

/* The longest run of unsold seats in row, capped at Q_MAX_SEATS. */
static uint8_t row_run(const wk_inv *inv, const wk_row *row)
{
    uint32_t best = 0, cur = 0, end = row->first_seat + row->nseats;
    for (uint32_t i = row->first_seat; i < end && best < Q_MAX_SEATS; i++) {
        cur = inv->state[i] == Q_SEAT_SOLD ? 0 : cur + 1;
        if (cur > best)
            best = cur;
    }
    return (uint8_t)best;
}

static void set_row_run(wk_section *s, wk_row *row, uint8_t run)
{
    s->rows_by_run[row->run]--;
    s->rows_by_run[run]++;
    row->run = run;
}

/* The longest run of unsold seats in any row of s, capped at Q_MAX_SEATS. */
static int section_run(const wk_section *s)
{
    int k = Q_MAX_SEATS;
    while (k > 0 && s->rows_by_run[k] == 0)
        k--;
    return k;
}

/* Grows the five per-seat arrays to hold at least n seats. */
static int grow_seats(wk_inv *inv, size_t n)
{
    if (n <= inv->cap_seats)
        return 0;
    size_t cap = inv->cap_seats ? inv->cap_seats : 64;
    while (cap < n)
        cap *= 2;
    uint8_t *st = realloc(inv->state, cap * sizeof *st);
    if (!st)
        return ONS_ENOMEM;
    inv->state = st;
    int32_t *no = realloc(inv->seat_no, cap * sizeof *no);
    if (!no)
        return ONS_ENOMEM;
    inv->seat_no = no;
    uint16_t *sr = realloc(inv->seat_in_row, cap * sizeof *sr);
    if (!sr)
        return ONS_ENOMEM;
    inv->seat_in_row = sr;
    int64_t *pr = realloc(inv->price, cap * sizeof *pr);
    if (!pr)
        return ONS_ENOMEM;
    inv->price = pr;
    uint32_t *ro = realloc(inv->row_of, cap * sizeof *ro);
    if (!ro)
        return ONS_ENOMEM;
    inv->row_of = ro;
    inv->cap_seats = cap;
    return 0;
}

int wk_inv_reserve(wk_inv *inv, size_t nseats)
{
    return grow_seats(inv, nseats);
}

int wk_inv_add_section(wk_inv *inv, int64_t section_id, const char *name, int32_t position)
{
    if (strlen(name) > WK_SECTION_NAME_MAX)
        return ONS_EINVAL;
    if (inv->nsections > 0 && inv->sections[inv->nsections - 1].position >= position)
        return ONS_EINVAL;
    if (ONS_VEC_RESERVE(inv->sections, inv->cap_sections, inv->nsections + 1, 8))
        return ONS_ENOMEM;
    wk_section *s = &inv->sections[inv->nsections];
    memset(s, 0, sizeof *s);
    s->section_id = section_id;
    strcpy(s->name, name);
    s->position = position;
    s->first_row = (uint32_t)inv->nrows;
    s->min_price = INT64_MAX;
    return (int)inv->nsections++;
}

/* The row a seat (row_no, seat_in_row) is appended to: the section's last
 * row, or a new one. Seats come in (row, seat) order, at most UINT16_MAX a
 * row; NULL with *rc set when they do not or memory runs out. */
static wk_row *row_for_seat(wk_inv *inv, wk_section *s, int32_t row_no, int32_t seat_in_row,
                            int *rc)
{
    wk_row *last = s->nrows ? &inv->rows[inv->nrows - 1] : NULL;
    *rc = ONS_EINVAL;
    if (last && (row_no < last->row_no ||
                 (row_no == last->row_no &&
                  seat_in_row <= inv->seat_in_row[last->first_seat + last->nseats - 1])))
        return NULL;
    if (last && row_no == last->row_no && last->nseats == UINT16_MAX)
        return NULL;
    *rc = ONS_ENOMEM;
    if (grow_seats(inv, inv->nseats + 1) != 0)
        return NULL;
    if (last && row_no == last->row_no)
        return last;
    if (ONS_VEC_RESERVE(inv->rows, inv->cap_rows, inv->nrows + 1, 64))
        return NULL;
    last = &inv->rows[inv->nrows++];
    memset(last, 0, sizeof *last);
    last->first_seat = (uint32_t)inv->nseats;
    last->section = (uint32_t)(s - inv->sections);
    last->row_no = row_no;
    s->nrows++;
    s->rows_by_run[0]++;
    return last;
}

/* Counts the new seat i, in state, in its row, its section and the
 * inventory's totals. */
static void count_seat(wk_inv *inv, wk_section *s, wk_row *row, uint32_t i, int state)
{
    if (state == Q_SEAT_AVAILABLE) {
        row->nfree++;
        s->nfree++;
        inv->available++;
    } else if (state == Q_SEAT_SOLD) {
        inv->sold++;
    } else {
        inv->held++;
    }
    if (state == Q_SEAT_SOLD)
        return;
    row->nunsold++;
    s->nunsold++;
    /* The run ending at this seat, looking back at most Q_MAX_SEATS - 1
     * seats (runs are capped), unless the row has a capped run already. */
    uint32_t t = 1;
    while (row->run < Q_MAX_SEATS && t < Q_MAX_SEATS && t <= i - row->first_seat &&
           inv->state[i - t] != Q_SEAT_SOLD)
        t++;
    if (t > row->run)
        set_row_run(s, row, (uint8_t)t);
}

int wk_inv_add_seat(wk_inv *inv, int32_t row_no, int32_t seat_in_row, int32_t seat_no,
                    int64_t price, int state)
{
    if (inv->nsections == 0 || state < Q_SEAT_AVAILABLE || state > Q_SEAT_SOLD || seat_in_row < 1 ||
        seat_in_row > UINT16_MAX || inv->nseats >= UINT32_MAX / 2)
        return ONS_EINVAL;
    wk_section *s = &inv->sections[inv->nsections - 1];
    int rc;
    wk_row *row = row_for_seat(inv, s, row_no, seat_in_row, &rc);
    if (!row)
        return rc;
    uint32_t i = (uint32_t)inv->nseats++;
    inv->state[i] = (uint8_t)state;
    inv->seat_no[i] = seat_no;
    inv->seat_in_row[i] = (uint16_t)seat_in_row;
    inv->price[i] = price;
    inv->row_of[i] = (uint32_t)(inv->nrows - 1);
    row->nseats++;
    s->nseats++;
    if (price < s->min_price)
        s->min_price = price;
    if (price > s->max_price)
        s->max_price = price;
    count_seat(inv, s, row, i, state);
    return (int)i;
}

int wk_inv_add_block(wk_inv *inv, int64_t section_id, const char *name, int32_t position, int rows,
                     int per_row, int64_t price)
{
    int sec = wk_inv_add_section(inv, section_id, name, position);
    if (sec < 0)
        return sec;
    for (int r = 1; r <= rows; r++)
        for (int s = 1; s <= per_row; s++) {
            int rc = wk_inv_add_seat(inv, r, s, (int32_t)inv->nseats, price, Q_SEAT_AVAILABLE);
            if (rc < 0)
                return rc;
        }
    return sec;
}

int wk_inv_section_by_name(const wk_inv *inv, const char *name)
{
    for (size_t i = 0; i < inv->nsections; i++)
        if (strcmp(inv->sections[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int seat_free(const wk_inv *inv, uint32_t i)
{
    return inv->state[i] == Q_SEAT_AVAILABLE;
}

static int seat_matches(const wk_inv *inv, uint32_t i, enum wk_find_mode mode, int64_t max_price)
{
    if (max_price > 0 && inv->price[i] > max_price)
        return 0;
    return mode == WK_FIND_FREE ? inv->state[i] == Q_SEAT_AVAILABLE : inv->state[i] != Q_SEAT_SOLD;
}

static uint16_t row_count(const wk_row *r, enum wk_find_mode mode)
{
    return mode == WK_FIND_FREE ? r->nfree : r->nunsold;
}

/* Would taking seats [s, s+q) of row leave a single free seat with no free
 * neighbour on either side of the block? */
static int leaves_orphan(const wk_inv *inv, const wk_row *row, uint32_t s, uint32_t q)
{
    uint32_t lo = row->first_seat, hi = row->first_seat + row->nseats; /* [lo, hi) */
    if (s > lo && seat_free(inv, s - 1) && (s - 1 == lo || !seat_free(inv, s - 2)))
        return 1;
    uint32_t e = s + q;
    if (e < hi && seat_free(inv, e) && (e + 1 == hi || !seat_free(inv, e + 1)))
        return 1;
    return 0;
}

/* Sections the request may use: one, or all. */
static void section_range(const wk_inv *inv, const wk_req *r, size_t *from, size_t *to)
{
    if (r->section >= 0) {
        *from = (size_t)r->section;
        *to = (size_t)r->section + 1;
    } else {
        *from = 0;
        *to = inv->nsections;
    }
}

/* Advances a section's hint past rows with nothing left for mode. */
static uint32_t first_candidate_row(wk_inv *inv, wk_section *s, enum wk_find_mode mode)
{
    uint32_t *hint = mode == WK_FIND_FREE ? &s->hint_free : &s->hint_unsold;
    while (*hint < s->nrows && row_count(&inv->rows[s->first_row + *hint], mode) == 0)
        (*hint)++;
    return *hint;
}

/* The first seat of [a, end) that matches (end if none). The common
 * search (free seats at any price) looks for the state's byte with memchr:
 * the seats already taken at a row's start are skipped a vector at a time. */
static uint32_t next_match(const wk_inv *inv, uint32_t a, uint32_t end, enum wk_find_mode mode,
                           int64_t max_price)
{
    if (a >= end)
        return end;
    if (mode == WK_FIND_FREE && max_price <= 0) {
        const uint8_t *p = memchr(inv->state + a, Q_SEAT_AVAILABLE, end - a);
        return p ? (uint32_t)(p - inv->state) : end;
    }
    while (a < end && !seat_matches(inv, a, mode, max_price))
        a++;
    return a;
}

/* The end of the run of matching seats that starts at a, read no further
 * than lim. */
static uint32_t run_end(const wk_inv *inv, uint32_t a, uint32_t lim, enum wk_find_mode mode,
                        int64_t max_price)
{
    while (a < lim && seat_matches(inv, a, mode, max_price))
        a++;
    return a;
}

static int find_adjacent(wk_inv *inv, const wk_req *r, enum wk_find_mode mode, uint32_t *out)
{
    uint32_t q = (uint32_t)r->qty;
    size_t from, to;
    section_range(inv, r, &from, &to);
    int have_fallback = 0;
    uint32_t fallback = 0;
    for (size_t si = from; si < to; si++) {
        wk_section *s = &inv->sections[si];
        int64_t cnt = mode == WK_FIND_FREE ? s->nfree : s->nunsold;
        if (cnt < (int64_t)q || (r->max_price > 0 && s->min_price > r->max_price))
            continue;
        int lookahead = 0;
        for (uint32_t ri = first_candidate_row(inv, s, mode); ri < s->nrows; ri++) {
            const wk_row *row = &inv->rows[s->first_row + ri];
            if (row_count(row, mode) < q)
                continue;
            if (have_fallback && ++lookahead > WK_ORPHAN_LOOKAHEAD)
                break;
            uint32_t end = row->first_seat + row->nseats;
            for (uint32_t a = next_match(inv, row->first_seat, end, mode, r->max_price); a < end;
                 a = next_match(inv, a, end, mode, r->max_price)) {
                /* The run [a, b) is read only as far as the answer needs:
                 * up to a + q while a itself may do (the common case: the
                 * row's first free seat, then a long free run), to its
                 * end only when taking a would leave an orphan. */
                uint32_t b = run_end(inv, a, end < a + q ? end : a + q, mode, r->max_price);
                if (b - a >= q) {
                    if (mode == WK_FIND_UNSOLD || !leaves_orphan(inv, row, a, q)) {
                        fallback = a;
                        goto found;
                    }
                    b = run_end(inv, b, end, mode, r->max_price);
                    if (!leaves_orphan(inv, row, b - q, q)) {
                        fallback = b - q;
                        goto found;
                    }
                    if (!have_fallback) {
                        have_fallback = 1;
                        fallback = a;
                    }
                }
                a = b;
            }
        }
        if (have_fallback)
            goto found; /* the look-ahead stays within the fallback's section */
    }
    if (!have_fallback)
        return 0;
found:
    for (uint32_t k = 0; k < q; k++)
        out[k] = fallback + k;
    return r->qty;
}

static int find_split(wk_inv *inv, const wk_req *r, enum wk_find_mode mode, uint32_t *out)
{
    int n = 0;
    size_t from, to;
    section_range(inv, r, &from, &to);
    for (size_t si = from; si < to && n < r->qty; si++) {
        wk_section *s = &inv->sections[si];
        if ((mode == WK_FIND_FREE ? s->nfree : s->nunsold) == 0 ||
            (r->max_price > 0 && s->min_price > r->max_price))
            continue;
        for (uint32_t ri = first_candidate_row(inv, s, mode); ri < s->nrows && n < r->qty; ri++) {
            const wk_row *row = &inv->rows[s->first_row + ri];
            if (row_count(row, mode) == 0)
                continue;
            uint32_t end = row->first_seat + row->nseats;
            for (uint32_t a = row->first_seat; a < end && n < r->qty; a++)
                if (seat_matches(inv, a, mode, r->max_price))
                    out[n++] = a;
        }
    }
    return n == r->qty ? n : 0;
}

int wk_inv_find(wk_inv *inv, const wk_req *r, enum wk_find_mode mode, uint32_t *out)
{
    assert(r->qty >= 1 && r->qty <= Q_MAX_SEATS);
    assert(r->section < (int)inv->nsections);
    if ((mode == WK_FIND_FREE ? inv->available : inv->available + inv->held) < r->qty)
        return 0;
    return r->adjacent ? find_adjacent(inv, r, mode, out) : find_split(inv, r, mode, out);
}

int wk_inv_could_fit(wk_inv *inv, const wk_req *r)
{
    assert(r->qty >= 1 && r->qty <= Q_MAX_SEATS);
    assert(r->section < (int)inv->nsections);
    if (inv->available + inv->held < r->qty)
        return 0;
    size_t from, to;
    section_range(inv, r, &from, &to);
    int64_t n = 0;
    for (size_t si = from; si < to; si++) {
        const wk_section *s = &inv->sections[si];
        if (s->nunsold == 0 || (r->max_price > 0 && s->min_price > r->max_price))
            continue;
        if (r->max_price > 0 && s->max_price > r->max_price) {
            /* Only some of the section's seats are within the ceiling: the
             * counters cannot tell which, the search can. */
            uint32_t out[Q_MAX_SEATS];
            return wk_inv_find(inv, r, WK_FIND_UNSOLD, out) != 0;
        }
        if (r->adjacent ? section_run(s) >= r->qty : (n += s->nunsold) >= r->qty)
            return 1;
    }
    return 0;
}

void wk_inv_set(wk_inv *inv, uint32_t seat, int state)
{
    assert(seat < inv->nseats);
    assert(state >= Q_SEAT_AVAILABLE && state <= Q_SEAT_SOLD);
    int old = inv->state[seat];
    if (old == state)
        return;
    wk_row *row = &inv->rows[inv->row_of[seat]];
    wk_section *s = &inv->sections[row->section];
    uint32_t rel = inv->row_of[seat] - s->first_row;
    inv->state[seat] = (uint8_t)state;

    if (old == Q_SEAT_AVAILABLE) {
        row->nfree--;
        s->nfree--;
        inv->available--;
    } else if (old == Q_SEAT_SOLD) {
        row->nunsold++;
        s->nunsold++;
        inv->sold--;
        if (rel < s->hint_unsold)
            s->hint_unsold = rel;
    } else {
        inv->held--;
    }

    if (state == Q_SEAT_AVAILABLE) {
        row->nfree++;
        s->nfree++;
        inv->available++;
        if (rel < s->hint_free)
            s->hint_free = rel;
    } else if (state == Q_SEAT_SOLD) {
        row->nunsold--;
        s->nunsold--;
        inv->sold++;
    } else {
        inv->held++;
    }

    if ((old == Q_SEAT_SOLD) != (state == Q_SEAT_SOLD)) {
        int before = section_run(s);
        set_row_run(s, row, row_run(inv, row));
        /* A section with several prices may shrink what a price-limited
         * request could get at any sale. */
        if (state == Q_SEAT_SOLD &&
            (section_run(s) < before || s->nunsold < Q_MAX_SEATS || s->min_price != s->max_price))
            inv->shrink_gen++;
    }
}
