/* ticket_code.c - rotating ticket codes and their QR image; see
 * ticket_code.h. HMAC-SHA256 from OpenSSL, QR matrices from libqrencode. */
#include "ingress/ticket_code.h"
#include "common/err.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUIET 4 /* modules of white border the QR standard asks for */

static int hmac256(const void *key, size_t klen, const void *msg, size_t mlen,
                   unsigned char out[32])
{
    unsigned int n = 0;
    return HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &n) && n == 32 ? 0 : ONS_EINVAL;
}

int ing_tcode_at(const char *key, int64_t ticket_id, int64_t version, int64_t step,
                 char out[ING_TCODE_DIGITS + 1])
{
    out[0] = '\0';
    if (!key || !key[0] || version < 0 || step < 0)
        return ONS_EINVAL;
    char label[80];
    int len =
        snprintf(label, sizeof label, "onsale-ticket-v1:%" PRId64 ":%" PRId64, ticket_id, version);
    unsigned char secret[32], mac[32], msg[8];
    for (int i = 0; i < 8; i++)
        msg[i] = (unsigned char)((uint64_t)step >> (56 - 8 * i));
    if (hmac256(key, strlen(key), label, (size_t)len, secret) ||
        hmac256(secret, sizeof secret, msg, sizeof msg, mac)) {
        OPENSSL_cleanse(secret, sizeof secret);
        return ONS_EINVAL;
    }
    OPENSSL_cleanse(secret, sizeof secret);
    int off = mac[31] & 0x0f;
    uint32_t bin = (uint32_t)(mac[off] & 0x7f) << 24 | (uint32_t)mac[off + 1] << 16 |
                   (uint32_t)mac[off + 2] << 8 | (uint32_t)mac[off + 3];
    snprintf(out, ING_TCODE_DIGITS + 1, "%08" PRIu32, bin % 100000000u);
    return 0;
}

int ing_tcode_well_formed(const char *s)
{
    if (!s)
        return 0;
    for (int i = 0; i < ING_TCODE_DIGITS; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return s[ING_TCODE_DIGITS] == '\0';
}

/* 1 when the code of (ticket, version, step) equals code, compared in
 * constant time. */
static int same(const char *key, int64_t ticket_id, int64_t version, int64_t step, const char *code)
{
    char c[ING_TCODE_DIGITS + 1];
    if (ing_tcode_at(key, ticket_id, version, step, c))
        return 0;
    return CRYPTO_memcmp(c, code, ING_TCODE_DIGITS) == 0;
}

enum ing_tcode_match ing_tcode_check(const char *key, int64_t ticket_id, int64_t version,
                                     const ing_tcode_window *win, const char *code)
{
    if (!ing_tcode_well_formed(code) || version < 0)
        return ING_TCODE_NONE;
    int64_t lo = win->step >= 0 ? win->step : win->now_step - win->grace;
    int64_t hi = win->step >= 0 ? win->step : win->now_step + win->grace;
    if (lo < 0)
        lo = 0;
    int current = 0, old = 0;
    int64_t hit_step = -1;
    for (int64_t s = lo; s <= hi; s++) {
        if (same(key, ticket_id, version, s, code)) {
            current = 1;
            hit_step = s;
        }
        for (int64_t v = version - 1; v >= 0 && v >= version - win->versions_back; v--)
            old |= same(key, ticket_id, v, s, code);
    }
    if (current) {
        int64_t d = hit_step - win->now_step;
        return d >= -win->grace && d <= win->grace ? ING_TCODE_CURRENT : ING_TCODE_STALE;
    }
    return old ? ING_TCODE_OLD_VERSION : ING_TCODE_NONE;
}

void ing_tcode_scan_format(int64_t ticket_id, int64_t step, const char *code,
                           char out[ING_TCODE_SCAN_MAX])
{
    snprintf(out, ING_TCODE_SCAN_MAX, "ONS1:%" PRId64 ":%" PRId64 ":%s", ticket_id, step, code);
}

/* Parses a canonical positive decimal (no sign, no leading zero) up to
 * the next ':' or the end; advances *s. Returns 0 or ONS_EINVAL. */
static int parse_num(const char **s, int64_t *out, int allow_zero)
{
    const char *p = *s;
    uint64_t v = 0;
    int n = 0;
    for (; *p >= '0' && *p <= '9'; p++, n++) {
        if (n >= 19)
            return ONS_EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (n == 0 || (n > 1 && **s == '0') || (v == 0 && !allow_zero) || v > INT64_MAX)
        return ONS_EINVAL;
    *out = (int64_t)v;
    *s = p;
    return 0;
}

int ing_tcode_scan_parse(const char *s, int64_t *ticket_id, int64_t *step,
                         char code[ING_TCODE_DIGITS + 1])
{
    if (!s || strncmp(s, "ONS1:", 5) != 0)
        return ONS_EINVAL;
    s += 5;
    if (parse_num(&s, ticket_id, 0) || *s++ != ':' || parse_num(&s, step, 1) || *s++ != ':' ||
        !ing_tcode_well_formed(s))
        return ONS_EINVAL;
    memcpy(code, s, ING_TCODE_DIGITS + 1);
    return 0;
}

/* ---- QR as SVG ------------------------------------------------------------------------ */

char *ing_qr_svg(const char *text)
{
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr)
        return NULL;
    int w = qr->width, size = w + 2 * QUIET;
    /* Worst case: one run per dark module, "M999 999h999v1h-999z" each. */
    size_t cap = 256 + (size_t)w * (size_t)w * 24;
    char *out = malloc(cap);
    if (!out) {
        QRcode_free(qr);
        return NULL;
    }
    size_t n = (size_t)snprintf(out, cap,
                                "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                                "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" "
                                "fill=\"#fff\"/><path fill=\"#000\" d=\"",
                                size, size, size, size);
    for (int y = 0; y < w; y++) {
        for (int x = 0; x < w;) {
            if (!(qr->data[y * w + x] & 1)) {
                x++;
                continue;
            }
            int run = 1;
            while (x + run < w && (qr->data[y * w + x + run] & 1))
                run++;
            n += (size_t)snprintf(out + n, cap - n, "M%d %dh%dv1h-%dz", x + QUIET, y + QUIET, run,
                                  run);
            x += run;
        }
    }
    snprintf(out + n, cap - n, "\"/></svg>");
    QRcode_free(qr);
    return out;
}
