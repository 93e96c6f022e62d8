/*
 * pgarr.h - builds PostgreSQL text array literals ("{1,NULL,\"a b\"}").
 *
 * The worker's batch writes send one array literal per column as a text
 * parameter and expand them with unnest(), so a batch costs a handful of
 * statements whatever its size. A wk_pgarr is one such literal being built:
 * append elements, then wk_pgarr_end() closes it and returns the text.
 *
 * Memory: a zeroed wk_pgarr is empty and ready; the buffer grows on the heap
 * and is owned by the wk_pgarr until wk_pgarrs_fini(). An allocation failure
 * sets oom, after which appends do nothing; check it (wk_pgarrs_params does)
 * before the text is used. Not thread-safe: one builder per thread.
 */
#ifndef ONSALE_WORKERS_PGARR_H
#define ONSALE_WORKERS_PGARR_H

#include <stddef.h>
#include <stdint.h>

typedef struct wk_pgarr {
    char *s; /* the literal so far, NUL-terminated (NULL until the first append) */
    size_t len, cap;
    int n;   /* elements appended */
    int oom; /* an allocation failed: the literal is incomplete */
} wk_pgarr;

/* Appends an integer element. */
void wk_pgarr_int(wk_pgarr *a, int64_t v);

/* Appends an integer element, or NULL when v is 0. */
void wk_pgarr_int0(wk_pgarr *a, int64_t v);

/* Appends a NULL element. */
void wk_pgarr_null(wk_pgarr *a);

/* Appends a quoted, escaped text element; s == NULL appends NULL. */
void wk_pgarr_text(wk_pgarr *a, const char *s);

/* Like wk_pgarr_text, but the empty string also appends NULL. */
void wk_pgarr_text0(wk_pgarr *a, const char *s);

/* Closes the literal ("{}" when empty) and returns its text, owned by a;
 * NULL or incomplete when a->oom. Append nothing after it until a reset. */
const char *wk_pgarr_end(wk_pgarr *a);

/* Empties the first n builders of a, keeping their buffers for reuse. */
void wk_pgarrs_reset(wk_pgarr *a, int n);

/* Closes the first n builders of a and points v[i] at each one's text.
 * Returns 0, or ONS_ENOMEM when any of them ran out of memory. The texts
 * stay owned by a and valid until its next reset or fini. */
int wk_pgarrs_params(wk_pgarr *a, int n, const char **v);

/* Frees the buffers of the first n builders of a (safe on zeroed ones). */
void wk_pgarrs_fini(wk_pgarr *a, int n);

#endif
