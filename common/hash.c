/* hash.c - see hash.h. */
#include "common/hash.h"

#include <string.h>

#define MUL 0x517cc1b727220a95ULL

static uint64_t mix(uint64_t h, uint64_t w)
{
    return ((h << 5 | h >> 59) ^ w) * MUL;
}

uint64_t ons_hash64(uint64_t seed, const void *data, size_t len)
{
    const unsigned char *s = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL), w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        h = mix(h, w);
    }
    if (i < len) {
        w = 0;
        memcpy(&w, s + i, len - i);
        h = mix(h, w);
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

void ons_etag(const void *data, size_t len, char out[ONS_ETAG_SIZE])
{
    static const char digits[] = "0123456789abcdef";
    uint64_t h = ons_hash64(0, data, len);
    out[0] = '"';
    for (int i = 0; i < 16; i++)
        out[1 + i] = digits[(h >> (60 - 4 * i)) & 15];
    out[17] = '"';
    out[18] = '\0';
}
