/* utc.c - RFC 3339 UTC text from Unix milliseconds; see utc.h. */
#include "common/utc.h"

#include <stdio.h>
#include <time.h>

void ons_format_utc_strftime(int64_t ms, int with_ms, char out[32])
{
    char sec[24];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(sec, sizeof sec, "%Y-%m-%dT%H:%M:%S", &tm);
    if (with_ms)
        snprintf(out, 32, "%s.%03dZ", sec, (int)(ms % 1000));
    else
        snprintf(out, 32, "%sZ", sec);
}

static char *put_digits(char *o, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        o[i] = (char)('0' + v % 10);
    return o + width;
}

/* gmtime_r, strftime and snprintf were a tenth of the worker's CPU per
 * intent drained (bench/NOTES.md), so the civil date is computed here (days
 * to year/month/day as in Howard Hinnant's days_from_civil inverse). Same
 * output as ons_format_utc_strftime, which test_utc checks over random instants. */
void ons_format_utc(int64_t ms, int with_ms, char out[32])
{
    if (ms < 0 || ms >= INT64_C(253402300800000)) { /* 10000-01-01T00:00:00Z */
        ons_format_utc_strftime(ms, with_ms, out);
        return;
    }
    int64_t secs = ms / 1000;
    unsigned sod = (unsigned)(secs % 86400);
    int64_t z = secs / 86400 + 719468; /* days since 0000-03-01 */
    int64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    unsigned y = (unsigned)(yoe + era * 400) + (m <= 2);
    char *o = put_digits(out, y, 4);
    *o++ = '-';
    o = put_digits(o, m, 2);
    *o++ = '-';
    o = put_digits(o, d, 2);
    *o++ = 'T';
    o = put_digits(o, sod / 3600, 2);
    *o++ = ':';
    o = put_digits(o, sod / 60 % 60, 2);
    *o++ = ':';
    o = put_digits(o, sod % 60, 2);
    if (with_ms) {
        *o++ = '.';
        o = put_digits(o, (unsigned)(ms % 1000), 3);
    }
    *o++ = 'Z';
    *o = '\0';
}
