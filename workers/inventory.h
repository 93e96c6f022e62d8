/*
 * inventory.h - one event's seat map and the allocation rule.
 *
 * Seats are kept in allocation order: section position, then row, then seat
 * number, so "best available" is "lowest index that fits". Per seat the map
 * stores one state byte, the database seat_no, the seat number in its row, its
 * price and its row (19 bytes: a 1,000,000-seat event takes about 19 MB). Rows
 * and sections carry counters of free (available) and unsold (not sold) seats
 * so full rows are skipped without looking at their seats, and each section
 * remembers the first row that may still have a free / unsold seat.
 *
 * The module is pure (no I/O, no clock) and owned by one thread.
 *
 * Allocation (wk_inv_find), for a request of qty seats, an optional section and
 * an optional price ceiling:
 *   - adjacent: the best row holding qty contiguous matching seats; within the
 *     search, a placement that leaves a single free seat stranded between
 *     taken seats (an orphan) is passed over when a placement without one
 *     exists in the next WK_ORPHAN_LOOKAHEAD candidate rows of that section;
 *   - not adjacent: the qty best matching seats, wherever they are (this also
 *     fills the single seats that adjacent requests leave behind).
 * WK_FIND_UNSOLD asks the same question counting held and paying seats as
 * if they were free: "could this request ever be served?". wk_inv_could_fit
 * answers it from counters: each row keeps its longest run of unsold seats
 * (capped at Q_MAX_SEATS, as no request is longer) and each section how many
 * rows have each run length, so the answer costs O(sections) when every
 * section has one price (prices are per section tier), a search otherwise.
 * Only a sale can turn the answer from yes to no; inv->shrink_gen counts the
 * sales that may have (a section's longest run or its unsold seats, both
 * capped at Q_MAX_SEATS, went down), so the owner re-checks its waiting
 * intents only then.
 */
#ifndef ONSALE_WORKERS_INVENTORY_H
#define ONSALE_WORKERS_INVENTORY_H

#include "queue/states.h" /* Q_MAX_SEATS, enum q_seat_state */

#include <stddef.h>
#include <stdint.h>

#define WK_SECTION_NAME_MAX 64
#define WK_ORPHAN_LOOKAHEAD 8

enum wk_find_mode { WK_FIND_FREE, WK_FIND_UNSOLD };

typedef struct wk_section {
    int64_t section_id;
    char name[WK_SECTION_NAME_MAX + 1];
    int32_t position;
    uint32_t first_row, nrows;
    uint32_t hint_free, hint_unsold; /* relative rows below these have none */
    int64_t nfree, nunsold, nseats;
    int64_t min_price, max_price;
    uint32_t rows_by_run[Q_MAX_SEATS + 1]; /* rows by their wk_row.run */
} wk_section;

typedef struct wk_row {
    uint32_t first_seat;
    uint32_t section;
    int32_t row_no;
    uint16_t nseats, nfree, nunsold;
    uint8_t run; /* longest run of unsold seats, capped at Q_MAX_SEATS */
} wk_row;

typedef struct wk_inv {
    wk_section *sections;
    size_t nsections, cap_sections;
    wk_row *rows;
    size_t nrows, cap_rows;
    /* per seat, indexed by allocation order */
    uint8_t *state;
    int32_t *seat_no;
    uint16_t *seat_in_row;
    int64_t *price;
    uint32_t *row_of;
    size_t nseats, cap_seats;
    /* event-wide counters */
    int64_t available, held, sold; /* held counts held + paying */
    uint32_t shrink_gen;           /* sales that may have shrunk what could fit */
} wk_inv;

/* A request to allocate. section is a section index or -1 for any;
 * max_price 0 means no ceiling. */
typedef struct wk_req {
    int qty;
    int section;
    int64_t max_price;
    int adjacent;
} wk_req;

void wk_inv_init(wk_inv *inv);
void wk_inv_fini(wk_inv *inv);

/* Pre-sizes the seat arrays (a hint; the arrays grow anyway). 0 or ONS_ENOMEM. */
int wk_inv_reserve(wk_inv *inv, size_t nseats);

/* Appends a section; sections must come in ascending position. Returns the
 * section index (>= 0), ONS_EINVAL (out of order, name too long) or
 * ONS_ENOMEM. */
int wk_inv_add_section(wk_inv *inv, int64_t section_id, const char *name, int32_t position);

/* Appends a seat to the last section; seats must come in (row, seat) order
 * within it. state is an enum q_seat_state. Returns the seat index (>= 0),
 * ONS_EINVAL (out of order or bad state) or ONS_ENOMEM. */
int wk_inv_add_seat(wk_inv *inv, int32_t row_no, int32_t seat_in_row, int32_t seat_no,
                    int64_t price, int state);

/* Convenience for tests and tools: a section of rows x per_row seats at one
 * price, rows and seats numbered from 1, seat_no continuing from the last. */
int wk_inv_add_block(wk_inv *inv, int64_t section_id, const char *name, int32_t position, int rows,
                     int per_row, int64_t price);

/* Returns the index of the section with this exact name, or -1. */
int wk_inv_section_by_name(const wk_inv *inv, const char *name);

/* Finds seats for r, writing qty seat indices (ascending) into out. Returns
 * r->qty when found, 0 when not. Mutates only the search hints. */
int wk_inv_find(wk_inv *inv, const wk_req *r, enum wk_find_mode mode, uint32_t *out);

/* Could r ever be served, counting held and paying seats as free? The same
 * answer as wk_inv_find(inv, r, WK_FIND_UNSOLD, ...) != 0, from counters
 * (see above). Mutates only the search hints. */
int wk_inv_could_fit(wk_inv *inv, const wk_req *r);

/* Changes one seat's state, keeping every counter and hint right. */
void wk_inv_set(wk_inv *inv, uint32_t seat, int state);

#endif
