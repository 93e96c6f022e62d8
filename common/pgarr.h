/*
 * pgarr.h - builds PostgreSQL text array literals ("{1,NULL,\"a b\"}").
 *
 * Set-based writes (the worker's batches, any process that writes many rows)
 * send one array literal per column as a text parameter and expand them with
 * unnest(), so a batch costs a handful of statements whatever its size. An
 * ons_pgarr is one such literal being built:
 * append elements, then ons_pgarr_end() closes it and returns the text.
 *
 * Memory: a zeroed ons_pgarr is empty and ready; the buffer grows on the heap
 * and is owned by the ons_pgarr until ons_pgarrs_fini(). An allocation failure
 * sets oom, after which appends do nothing; check it (ons_pgarrs_params does)
 * before the text is used. Not thread-safe: one builder per thread.
 */
#ifndef ONSALE_COMMON_PGARR_H
#define ONSALE_COMMON_PGARR_H

#include <stddef.h>
#include <stdint.h>

typedef struct ons_pgarr {
    char *s; /* the literal so far, NUL-terminated (NULL until the first append) */
    size_t len, cap;
    int n;   /* elements appended */
    int oom; /* an allocation failed: the literal is incomplete */
} ons_pgarr;

/* Appends an integer element. */
void ons_pgarr_int(ons_pgarr *a, int64_t v);

/* Appends an integer element, or NULL when v is 0. */
void ons_pgarr_int0(ons_pgarr *a, int64_t v);

/* Appends a NULL element. */
void ons_pgarr_null(ons_pgarr *a);

/* Appends a quoted, escaped text element; s == NULL appends NULL. */
void ons_pgarr_text(ons_pgarr *a, const char *s);

/* Like ons_pgarr_text, but the empty string also appends NULL. */
void ons_pgarr_text0(ons_pgarr *a, const char *s);

/* Closes the literal ("{}" when empty) and returns its text, owned by a;
 * NULL or incomplete when a->oom. Append nothing after it until a reset. */
const char *ons_pgarr_end(ons_pgarr *a);

/* Empties the first n builders of a, keeping their buffers for reuse. */
void ons_pgarrs_reset(ons_pgarr *a, int n);

/* Closes the first n builders of a and points v[i] at each one's text.
 * Returns 0, or ONS_ENOMEM when any of them ran out of memory. The texts
 * stay owned by a and valid until its next reset or fini. */
int ons_pgarrs_params(ons_pgarr *a, int n, const char **v);

/* Frees the buffers of the first n builders of a (safe on zeroed ones). */
void ons_pgarrs_fini(ons_pgarr *a, int n);

#endif
