/* test_httpd_sole_int.c - ons_httpd_body_sole_int, the join body's common
 * shape read without jansson, against the path it stands in for: jansson
 * (ons_httpd_body_parse: one object, duplicate keys rejected) and the join
 * handler's checks (ing_json_only with one allowed member, ing_json_int).
 * Whatever the hand parser accepts, that path accepts with the same value;
 * the common shapes it must accept, it does. A table of tricky inputs, then
 * random mutations of the common body compared the same way. */
#include "common/httpd.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(c, ...)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* The old path: 1 with *out when data is one JSON object whose only member
 * is "quantity" holding an integer (what the body parse and the join's
 * field checks let through, before the range). */
static int jansson_sole_int(const char *data, size_t len, int64_t *out)
{
    json_t *o = NULL;
    ons_httpd_err e;
    int ok = ons_httpd_body_parse(data, len, &o, &e) == 0 && json_object_size(o) == 1 &&
             json_is_integer(json_object_get(o, "quantity"));
    if (ok)
        *out = json_integer_value(json_object_get(o, "quantity"));
    json_decref(o);
    return ok;
}

/* The hand parser may decline what jansson takes, never the reverse, and
 * never with another value. want: -1 do not care, 0 must decline, 1 must
 * accept with value v. */
static void compare(const char *data, size_t len, int want, int64_t v)
{
    int64_t fast = -1, slow = -1;
    int f = ons_httpd_body_sole_int(data, len, "quantity", &fast);
    int s = jansson_sole_int(data, len, &slow);
    CHECK(!f || (s && fast == slow),
          "accepted what jansson did not, or another value: [%.*s] %d/%d %" PRId64 "/%" PRId64,
          (int)len, data, f, s, fast, slow);
    if (want >= 0)
        CHECK(f == want && (!f || fast == v), "[%.*s]: %d (%" PRId64 "), want %d (%" PRId64 ")",
              (int)len, data, f, fast, want, v);
}

static void table(void)
{
    static const struct {
        const char *body;
        int accept;
        int64_t value;
    } rows[] = {
        {"{\"quantity\":1}", 1, 1},
        {"{\"quantity\":4}", 1, 4},
        {" \t\r\n{ \"quantity\" : 2 }\n", 1, 2},
        {"{\"quantity\":123456789012345678}", 1, INT64_C(123456789012345678)},
        {"{\"quantity\":1234567890123456789}", 0, 0},  /* 19 digits: jansson's to read */
        {"{\"quantity\":99999999999999999999}", 0, 0}, /* too big for jansson too */
        {"{\"quantity\":01}", 0, 0},
        {"{\"quantity\":0}", 0, 0},
        {"{\"quantity\":-0}", 0, 0},
        {"{\"quantity\":-1}", 0, 0},
        {"{\"quantity\":1.0}", 0, 0},
        {"{\"quantity\":1e0}", 0, 0},
        {"{\"quantity\":1E0}", 0, 0},
        {"{\"quantity\":\"1\"}", 0, 0},
        {"{\"quantity\":true}", 0, 0},
        {"{\"quantity\":null}", 0, 0},
        {"{\"quantity\":[1]}", 0, 0},
        {"{\"quantity\":1,\"quantity\":1}", 0, 0}, /* duplicate: jansson refuses it */
        {"{\"quantity\":1,}", 0, 0},
        {"{\"quantity\":1,\"section\":\"A\"}", 0, 0},
        {"{\"quantit\\u0079\":1}", 0, 0}, /* the same key escaped: jansson takes it */
        {"{\"\\u0071uantity\":1}", 0, 0},
        {"{\"Quantity\":1}", 0, 0},
        {"{\"quantity \":1}", 0, 0},
        {"{'quantity':1}", 0, 0},
        {"{quantity:1}", 0, 0},
        {"{\"quantity\"1}", 0, 0},
        {"{\"quantity\":1", 0, 0},
        {"{\"quantity\":1}}", 0, 0},
        {"{\"quantity\":1} x", 0, 0},
        {"{\"quantity\":1}{}", 0, 0},
        {"[{\"quantity\":1}]", 0, 0},
        {"\xef\xbb\xbf{\"quantity\":1}", 0, 0}, /* a BOM */
        {"{\"quantity\":\v1}", 0, 0},           /* not JSON whitespace */
        {"{\"quantity\":\xc2\xa0"
         "1}",
         0, 0}, /* nor is U+00A0 */
        {"{}", 0, 0},
        {"", 0, 0},
        {"{", 0, 0},
        {"{\"", 0, 0},
        {"{\"quantity", 0, 0},
        {"{\"quantity\"", 0, 0},
        {"{\"quantity\":", 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        compare(rows[i].body, strlen(rows[i].body), rows[i].accept, rows[i].value);
    /* a NUL inside the declared length, and the bytes past it not read */
    compare("{\"quantity\":1}\0", 15, 0, 0);
    compare("{\"quantity\":1\0}", 15, 0, 0);
    compare("{\"quantity\":12}", 14, 0, 0); /* cut before its '}' */
    int64_t v = 0;
    CHECK(!ons_httpd_body_sole_int(NULL, 0, "quantity", &v), "NULL body accepted");
}

/* Random edits of the common body (bytes from JSON's own alphabet and a
 * few others) compared with jansson: the differential check over shapes no
 * table lists. */
static void mutations(void)
{
    static const char alphabet[] = "{}[]\":,.-+eE0123456789 \t\r\nquantity\\u\x00\xff";
    const char *seed = "{\"quantity\":1}";
    unsigned x = 12345;
    int accepted = 0;
    for (int n = 0; n < 200000; n++) {
        char buf[64];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int edits = 1 + n % 4;
        for (int k = 0; k < edits; k++) {
            x = x * 1103515245u + 12345u;
            size_t at = (x >> 8) % (len + 1);
            char c = alphabet[(x >> 20) % (sizeof alphabet - 1)];
            int op = (x >> 28) % 3;
            if (op == 0 && len < sizeof buf - 1) { /* insert */
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = c;
                len++;
            } else if (op == 1 && at < len) { /* replace */
                buf[at] = c;
            } else if (at < len) { /* delete */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            }
        }
        int64_t v;
        accepted += ons_httpd_body_sole_int(buf, len, "quantity", &v);
        compare(buf, len, -1, 0);
    }
    /* the mutations do reach the accepting side (whitespace, other digits) */
    CHECK(accepted > 1000, "only %d mutations accepted: the comparison saw little", accepted);
}

int main(void)
{
    table();
    mutations();
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
