/*
 * fuzz_msg_decode.c - libFuzzer target for the Kafka record codec
 * (queue/msg.c q_msg_decode): a worker must skip a poison record, never crash
 * on it.
 *
 * Input: the record's value bytes, as a partition owner reads them.
 * Oracle, besides ASan/UBSan/LSan: a record that decodes is one the encoder
 * accepts (decode never yields a message that violates the schema); its
 * encoding decodes again to the same message (nothing the worker reads was
 * lost or changed on the way: a cancel of kind "intent" may carry a
 * reservation_id, which the encoder drops and the worker ignores) and
 * re-encodes to the same bytes.
 */
#include "common/err.h"
#include "queue/msg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, const char *a, const char *b)
{
    fprintf(stderr, "fuzz_msg_decode: %s\n  first:  %s\n  second: %s\n", what, a ? a : "-",
            b ? b : "-");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    q_msg m;
    char why[160];
    if (q_msg_decode(data, size, &m, why, sizeof why) != 0)
        return 0;
    char *enc = NULL, *enc2 = NULL;
    size_t len = 0, len2 = 0;
    if (q_msg_encode(&m, &enc, &len) != 0)
        fail("a decoded record does not encode", NULL, NULL);
    q_msg m2;
    if (q_msg_decode(enc, len, &m2, why, sizeof why) != 0)
        fail("an encoded record does not decode", enc, why);
    if (q_msg_encode(&m2, &enc2, &len2) != 0)
        fail("a re-decoded record does not encode", enc, NULL);
    /* decode_obj() zeroes the whole struct first, padding included. */
    q_msg a, b;
    memcpy(&a, &m, sizeof a);
    memcpy(&b, &m2, sizeof b);
    if (a.type == Q_MSG_CANCEL && a.cancel_kind == Q_CANCEL_INTENT)
        a.reservation_id = b.reservation_id = 0;
    if (memcmp(&a, &b, sizeof a) != 0)
        fail("the record does not survive encode + decode", enc, NULL);
    if (len != len2 || memcmp(enc, enc2, len) != 0)
        fail("encoding is not a fixed point", enc, enc2);
    free(enc);
    free(enc2);
    return 0;
}
