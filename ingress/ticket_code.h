/*
 * ticket_code.h - the rotating gate code of a ticket (docs/tickets.md) and
 * the scannable string and QR image that carry it.
 *
 * A code is TOTP-like: nothing per ticket is stored but code_version.
 *   secret(t, v) = HMAC-SHA256(tickets.secret, "onsale-ticket-v1:<t>:<v>")
 *   mac          = HMAC-SHA256(secret(t, v), step as 8 bytes big-endian)
 *   code         = RFC 4226 dynamic truncation of mac (offset = mac[31] &
 *                  15, 31 bits from there) mod 10^8, as 8 decimal digits
 * where t is the ticket id and v its code_version (bumped by ingress's claim
 * of each transfer or cancel and again by the owner's transfer, so a change
 * rotates the secret), step = floor(unix seconds / step_s).
 * The scannable string is "ONS1:<ticket_id>:<step>:<code>" (QR alphanumeric
 * characters only, so the symbol stays small).
 *
 * Pure functions, thread-safe; no state.
 */
#ifndef ONSALE_INGRESS_TICKET_CODE_H
#define ONSALE_INGRESS_TICKET_CODE_H

#include <stddef.h>
#include <stdint.h>

#define ING_TCODE_DIGITS 8
/* The public development default of tickets.secret (refused unless dev_mode). */
#define ING_TICKETS_SECRET_DEV "onsale-dev-tickets-secret-change-me"
/* Longest scannable string: "ONS1:" + 19 + ":" + 19 + ":" + 8. */
#define ING_TCODE_SCAN_MAX 64

/* Writes ticket_id's code for version and step into out (8 digits and a
 * NUL). Returns 0, or ONS_EINVAL (key empty, negative version or step). */
int ing_tcode_at(const char *key, int64_t ticket_id, int64_t version, int64_t step,
                 char out[ING_TCODE_DIGITS + 1]);

/* What a presented code is. */
enum ing_tcode_match {
    ING_TCODE_NONE = 0,    /* no version and step of the window produce it */
    ING_TCODE_CURRENT,     /* the current version, within grace steps of now */
    ING_TCODE_STALE,       /* the current version, at a step outside the grace */
    ING_TCODE_OLD_VERSION, /* an earlier version: shown before a transfer */
};

/* The bounds of a check. */
typedef struct ing_tcode_window {
    int64_t now_step;  /* the server's step now */
    int64_t step;      /* the step the scanner read with the code; -1: unknown */
    int grace;         /* steps either side of now_step still admitted */
    int versions_back; /* earlier versions recognised as "transferred" */
} ing_tcode_window;

/* Checks code against ticket_id at version. With a known step, only that
 * step is tried (its distance from now decides CURRENT or STALE); without,
 * the steps now_step - grace .. now_step + grace. Versions version-1 down to
 * version - versions_back (not below 0) are tried at the same steps.
 * Every candidate is computed and compared in constant time, whatever
 * matched. Returns the match (ING_TCODE_NONE also for a malformed code). */
enum ing_tcode_match ing_tcode_check(const char *key, int64_t ticket_id, int64_t version,
                                     const ing_tcode_window *win, const char *code);

/* Formats the scannable string into out (ING_TCODE_SCAN_MAX bytes). */
void ing_tcode_scan_format(int64_t ticket_id, int64_t step, const char *code,
                           char out[ING_TCODE_SCAN_MAX]);

/* Parses "ONS1:<ticket_id>:<step>:<code>". Returns 0, or ONS_EINVAL. */
int ing_tcode_scan_parse(const char *s, int64_t *ticket_id, int64_t *step,
                         char code[ING_TCODE_DIGITS + 1]);

/* Is s exactly ING_TCODE_DIGITS decimal digits? */
int ing_tcode_well_formed(const char *s);

/* Renders text as a QR code (libqrencode, error correction M) in SVG: one
 * black path of module-sized runs on a white square with a 4-module quiet
 * zone, scaled by the viewer (viewBox in modules). Heap string the caller
 * frees; NULL when out of memory or the text does not fit a QR symbol. */
char *ing_qr_svg(const char *text);

#endif
