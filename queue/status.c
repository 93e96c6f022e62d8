/*
 * status.c - the Redis status store (status.h; key layout in
 * docs/pipeline.md). Every reply is checked and freed here; callers only see
 * ONS_* codes.
 */
#include "queue/status.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <hiredis.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* The Lua scripts of the active and idempotency keys: each a
 * compare-and-something that must be atomic, loaded once per connection
 * (SCRIPT LOAD) and run by EVALSHA, so a pipelined call costs no extra
 * round trip. A claimer round's claims and a finisher batch's writes are
 * each ONE script call over all their keys: Redis's cost of a script call
 * (the call itself, TIME, its reply) is paid once per round, not per join
 * (bench/NOTES.md, "Join, eighth round"). */
enum {
    SCRIPT_CLAIM,
    SCRIPT_CAS,
    SCRIPT_CAS_MANY,
    SCRIPT_CAD,
    SCRIPT_CAD_MANY,
    SCRIPT_RATE,
    SCRIPT_RESULT_REPAIR,
    NSCRIPTS
};

/* clock(): Redis's own clock in ms (TIME), so every ingress node agrees.
 *
 * gcra(now, first, n, abase): GCRA (the generic cell rate algorithm, a
 * token bucket kept as one number per key: the theoretical arrival time
 * "tat" of the next request) over n keys KEYS[first..], with
 * ARGV[abase..] = period_ms, burst per key. A key admits a request while
 * tat + period - now <= burst * period. All keys are checked before any is
 * written, so a refused request costs nothing. Returns {1, key, 0, wait_ms}
 * when the first most-constraining key refuses, else {0, key, remaining,
 * reset_ms} for the key with the fewest requests left (reset_ms: until its
 * bucket is full again). It is gcra_plan (the reads and the verdict; on an
 * admit also the new tats) then gcra_charge (the writes, which cannot
 * fail), so a caller can put other reads between them.
 *
 * claim(k, cur, token, own, now_ms, stale_ms): sets k (holding cur, read
 * by the caller before any write) to token when it is absent, holds a
 * "pending:<ms>" claim older than stale_ms, or holds own (non-empty).
 * Returns 0, or the current value. */
#define GCRA_LUA                                                                                   \
    "local function clock()\n"                                                                     \
    "  local t = redis.call('TIME')\n"                                                             \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                         \
    "end\n"                                                                                        \
    "local function gcra_plan(now, first, n, abase)\n"                                             \
    "  local tats, deny, wait, pick, rem, reset = {}, 0, 0, 0, -1, 0\n"                            \
    "  for i = 1, n do\n"                                                                          \
    "    local period = tonumber(ARGV[abase + 2 * i - 2])\n"                                       \
    "    local burst = tonumber(ARGV[abase + 2 * i - 1])\n"                                        \
    "    local tat = tonumber(redis.call('GET', KEYS[first + i - 1]) or now)\n"                    \
    "    if tat < now then tat = now end\n"                                                        \
    "    local new = tat + period\n"                                                               \
    "    local over = new - now - burst * period\n"                                                \
    "    if over > wait then deny, wait = i, over end\n"                                           \
    "    tats[i] = new\n"                                                                          \
    "    local left = math.floor((burst * period - (new - now)) / period)\n"                       \
    "    if rem < 0 or left < rem then pick, rem, reset = i, left, new - now end\n"                \
    "  end\n"                                                                                      \
    "  if deny > 0 then return {1, deny, 0, wait} end\n"                                           \
    "  return {0, pick, rem, reset}, tats\n"                                                       \
    "end\n"                                                                                        \
    "local function gcra_charge(now, first, tats)\n"                                               \
    "  for i = 1, #tats do\n"                                                                      \
    "    redis.call('SET', KEYS[first + i - 1], string.format('%d', tats[i]), 'PX',\n"             \
    "                string.format('%d', tats[i] - now))\n"                                        \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function gcra(now, first, n, abase)\n"                                                  \
    "  local rl, tats = gcra_plan(now, first, n, abase)\n"                                         \
    "  if tats then gcra_charge(now, first, tats) end\n"                                           \
    "  return rl\n"                                                                                \
    "end\n"                                                                                        \
    "local function claim(k, cur, token, own, now_ms, stale_ms)\n"                                 \
    "  local take = true\n"                                                                        \
    "  if cur then\n"                                                                              \
    "    take = own ~= '' and cur == own\n"                                                        \
    "    local since = string.match(cur, '^pending:(%d+)')\n"                                      \
    "    if since and now_ms - tonumber(since) > stale_ms then take = true end\n"                  \
    "  end\n"                                                                                      \
    "  if take then redis.call('SET', k, token) return 0 end\n"                                    \
    "  return cur\n"                                                                               \
    "end\n"

static const char *const scripts[NSCRIPTS] = {
    /* CLAIM: the claims of a round, in order (a claim sees every earlier
     * one's writes: of two claims of one key the first wins). ARGV[1..2]:
     * now_ms, stale_ms; then per claim ARGV: nrate, token, own_old ("":
     * none), period_ms and burst per rate key; KEYS: its active key, then
     * its nrate rate keys. Returns one reply per claim: claim()'s, or with
     * rate keys gcra()'s, which on a refusal claims nothing and else gets
     * claim()'s appended as its 5th element; or an error reply when Redis
     * refused one of the claim's commands (a key of another type, a rate
     * key holding no number). The active key is first set if absent (SET
     * NX, the common case: one command, where GET then SET were two); only
     * when it is held is it read, for claim(). A claim's commands that can
     * fail (its rate keys' reads, the held key's read) all run before its
     * first write (SET NX succeeds only on an absent key, and nothing after
     * it can fail; the rate charge is written last), and each claim runs
     * under pcall: a refused claim wrote nothing, and the claims after it
     * still run (a script error would end the call with the earlier claims'
     * writes kept but the caller told none happened). */
    [SCRIPT_CLAIM] =
        GCRA_LUA "local now = clock()\n"
                 "local now_ms, stale_ms = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
                 "local function one(k, a, nrate)\n"
                 "  local rl, tats = nil, nil\n"
                 "  if nrate > 0 then rl, tats = gcra_plan(now, k + 1, nrate, a + 3) end\n"
                 "  if rl and rl[1] == 1 then return rl end\n"
                 "  local res = 0\n"
                 "  if not redis.call('SET', KEYS[k], ARGV[a + 1], 'NX') then\n"
                 "    res = claim(KEYS[k], redis.call('GET', KEYS[k]), ARGV[a + 1], "
                 "ARGV[a + 2], now_ms, stale_ms)\n"
                 "  end\n"
                 "  if tats then gcra_charge(now, k + 1, tats) end\n"
                 "  if rl then rl[5] = res return rl end\n"
                 "  return res\n"
                 "end\n"
                 "local out, k, a = {}, 1, 3\n"
                 "while a <= #ARGV do\n"
                 "  local nrate = tonumber(ARGV[a])\n"
                 "  local ok, res = pcall(one, k, a, nrate)\n"
                 "  if not ok then\n"
                 "    if type(res) == 'table' then res = res.err end\n"
                 "    res = {err = tostring(res)}\n"
                 "  end\n"
                 "  out[#out + 1] = res\n"
                 "  k, a = k + 1 + nrate, a + 3 + 2 * nrate\n"
                 "end\n"
                 "return out\n",
    /* CAS KEYS[1] ARGV: expected, value, ttl_s ("" none). Returns 1 when
     * the key held expected and now holds value, else 0. */
    [SCRIPT_CAS] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                   "if ARGV[3] ~= '' then\n"
                   "  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
                   "else\n"
                   "  redis.call('SET', KEYS[1], ARGV[2])\n"
                   "end\n"
                   "return 1\n",
    /* CAS_MANY KEYS[1..n] ARGV: mode, expected, value per key. Each key,
     * in order, is set to value when mode is "s" (unconditionally) or when
     * it holds expected (mode "c"; a later item sees an earlier one's
     * write). One MGET and one MSET for all, neither of which fails on a
     * key's type (MGET reads another type as nothing, MSET overwrites it):
     * an error can only come before the MSET, so an error reply means
     * nothing was written. Returns 1 or 0 per key. */
    [SCRIPT_CAS_MANY] = "local vals = redis.call('MGET', unpack(KEYS))\n"
                        "local cur, out, sets = {}, {}, {}\n"
                        "for i = 1, #KEYS do\n"
                        "  if cur[KEYS[i]] == nil then cur[KEYS[i]] = vals[i] end\n"
                        "  local mode, exp, val = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]\n"
                        "  if mode == 's' or cur[KEYS[i]] == exp then\n"
                        "    cur[KEYS[i]] = val\n"
                        "    sets[#sets + 1] = KEYS[i]\n"
                        "    sets[#sets + 1] = val\n"
                        "    out[i] = 1\n"
                        "  else\n"
                        "    out[i] = 0\n"
                        "  end\n"
                        "end\n"
                        "if #sets > 0 then redis.call('MSET', unpack(sets)) end\n"
                        "return out\n",
    /* CAD KEYS[1] ARGV: exact, seq_hex. Deletes the key when it holds
     * exact, or (seq_hex non-empty) an intent id whose first 16 characters
     * are seq_hex (hex16(intent_seq), queue/intent_id.h: the key is per
     * user, so the seq names the intent). Returns 1 (deleted) or 0. */
    [SCRIPT_CAD] = "local cur = redis.call('GET', KEYS[1])\n"
                   "if not cur then return 0 end\n"
                   "if cur == ARGV[1] or (ARGV[2] ~= '' and string.len(cur) == 32 and\n"
                   "                      string.sub(cur, 1, 16) == ARGV[2]) then\n"
                   "  redis.call('DEL', KEYS[1])\n"
                   "  return 1\n"
                   "end\n"
                   "return 0\n",
    /* CAD_MANY KEYS[1..n] ARGV: exact, seq_hex per key: CAD of each key,
     * in order (a later item sees an earlier one's delete). One MGET and
     * one DEL for all. Returns how many were deleted. */
    [SCRIPT_CAD_MANY] = "local vals = redis.call('MGET', unpack(KEYS))\n"
                        "local cur, dels = {}, {}\n"
                        "for i = 1, #KEYS do\n"
                        "  local k = KEYS[i]\n"
                        "  if cur[k] == nil then cur[k] = vals[i] end\n"
                        "  local v, exact, seq = cur[k], ARGV[2 * i - 1], ARGV[2 * i]\n"
                        "  if v and (v == exact or (seq ~= '' and string.len(v) == 32 and\n"
                        "                          string.sub(v, 1, 16) == seq)) then\n"
                        "    cur[k] = false\n"
                        "    dels[#dels + 1] = k\n"
                        "  end\n"
                        "end\n"
                        "if #dels > 0 then redis.call('DEL', unpack(dels)) end\n"
                        "return #dels\n",
    /* RATE KEYS: the rate keys, ARGV: period_ms, burst each (GCRA_LUA). */
    [SCRIPT_RATE] = GCRA_LUA "return gcra(clock(), 1, #KEYS, 1)\n",
    /* RESULT_REPAIR KEYS[1]: the repair_epoch hash (per partition, the
     * newest owner's epoch any repair call has seen), then r:<seq> each;
     * ARGV[1]: ttl_s, then per key partition, epoch, version, doc ("":
     * drop). A result document ends with its version,
     * ',"v":[epoch,version]}' (status.h, q_status_repair); a stored one
     * without it (an older worker's) counts as the oldest. Each key, in
     * order: a doc is SET (EX ttl) unless the stored result is newer or
     * the writer's epoch is older than its partition's newest seen; a
     * drop DELetes the stored result unless it is newer. Every item then
     * raises its partition's newest seen epoch to its own (and to the
     * stored result's). Why the partition's epoch and not only the key's
     * version: a drop leaves no version behind, nor does an expired or
     * evicted key, and "missing = oldest" let an older owner's write land
     * after a newer owner's drop (a stale "reserved" for the result's
     * TTL). Once a newer owner has repaired, an older owner's documents
     * are out of date whatever the key holds. A tombstone per dropped key
     * would cover drops only, not expiry or eviction. A write is one
     * SET ... GET (the old value back in the same command: a GET and a SET
     * were twice Redis's work a result, and the batches write every result
     * through here); when the old one was newer it is put back (KEEPTTL:
     * its TTL is then the new write's, a day from now, not what it had
     * left), atomically, so no reader ever sees the older one. The version
     * is looked for in a document's last 50 bytes (the member's longest).
     * A failing command (a key of another type, Redis over maxmemory)
     * fails that item only (redis.pcall). Returns per key 1 (set), 2 (deleted), 3 (a drop that
     * found nothing), 0 (left: newer, or an older owner's write) or 4
     * (failed). */
    [SCRIPT_RESULT_REPAIR] =
        "local out, newest, raised = {}, {}, {}\n"
        "local function failed(r) return type(r) == 'table' and r.err ~= nil end\n"
        "local function version(s)\n"
        "  local ce, cv = string.match(s, ',\"v\":%[(%-?%d+),(%-?%d+)%]}$', -50)\n"
        "  if ce then return tonumber(ce), tonumber(cv) end\n"
        "end\n"
        "local function newer(ce, cv, e, v) return ce > e or (ce == e and cv > v) end\n"
        "for i = 1, #KEYS - 1 do\n"
        "  local k, p = KEYS[i + 1], ARGV[4 * i - 2]\n"
        "  local e, v, doc = tonumber(ARGV[4 * i - 1]), tonumber(ARGV[4 * i]), ARGV[4 * i + 1]\n"
        "  if newest[p] == nil then\n"
        "    local h = redis.pcall('HGET', KEYS[1], p)\n"
        "    newest[p] = (not failed(h) and tonumber(h)) or -1\n"
        "  end\n"
        "  local top, cur, ce, cv = newest[p], nil, nil, nil\n"
        "  out[i] = 0\n"
        "  if doc ~= '' and e >= newest[p] then\n"
        "    cur = redis.pcall('SET', k, doc, 'EX', ARGV[1], 'GET')\n"
        "    out[i] = failed(cur) and 4 or 1\n"
        "    if out[i] == 1 and cur then ce, cv = version(cur) end\n"
        "    if ce and newer(ce, cv, e, v) then\n"
        "      redis.pcall('SET', k, cur, 'KEEPTTL')\n"
        "      out[i] = 0\n"
        "    end\n"
        "  elseif doc == '' then\n"
        "    cur = redis.pcall('GET', k)\n"
        "    if failed(cur) then\n"
        "      out[i] = 4\n"
        "    elseif not cur then\n"
        "      out[i] = 3\n"
        "    else\n"
        "      ce, cv = version(cur)\n"
        "      if not (ce and newer(ce, cv, e, v)) then\n"
        "        out[i] = failed(redis.pcall('DEL', k)) and 4 or 2\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "  if ce and ce > top then top = ce end\n"
        "  if e > top then top = e end\n"
        "  if top > newest[p] then newest[p], raised[p] = top, true end\n"
        "end\n"
        "for p in pairs(raised) do redis.pcall('HSET', KEYS[1], p, newest[p]) end\n"
        "return out\n",
};

struct q_status {
    redisContext *ctx;      /* NULL while disconnected */
    char sha[NSCRIPTS][41]; /* of scripts[], loaded on this connection */
    char *host;
    char *prefix;
    int port;
    int timeout_ms;
    int down_ms;           /* q_status_opts.down_ms */
    int64_t down_until_ms; /* no reconnect before this (ons_mono_ms) */
    int result_ttl_s;
    char *resp; /* a result's SET in RESP (append_result), reused */
    size_t resp_cap;
    size_t unread; /* replies a q_status_publish_nowait left on the connection */
    int late_err;  /* one of them was an error (reported by the next publish) */
    /* the last call was q_status_publish_cursors_nowait: its replies are
     * read before another such write, not left to pile up while idle */
    int cursors_unread;
    /* One command's arguments being built (args_add), reused: their text
     * back to back in text, each one's place in off and len. */
    struct {
        char *text;
        size_t used, cap;
        size_t *off, *len;
        const char **argv;
        size_t n, ncap;
        int oom;
    } args;
    unsigned long sent;    /* commands written to Redis (q_status_commands_sent) */
    int unversioned;       /* q_status_opts.unversioned_results (debug) */
    unsigned long refused; /* q_status_results_refused */
};

static struct timeval tv_ms(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static int conn_failed(q_status *s, const char *what);
static int read_replies(q_status *s, size_t queued, const char *what);

/* After a call on c failed with errno err_no: if it failed by waiting out
 * the timeout (a hung Redis: connect's ETIMEDOUT, a read's or write's
 * EAGAIN), nothing is sent on this q_status for down_ms, so the calls
 * behind it fail at once instead of each waiting timeout_ms again. A
 * refused or reset connection (Redis restarting) fails fast by itself and
 * is retried at once. */
static void note_failure(q_status *s, const redisContext *c, int err_no)
{
    int timed_out = c && c->err == REDIS_ERR_IO &&
                    (err_no == EAGAIN || err_no == EWOULDBLOCK || err_no == ETIMEDOUT);
    if (timed_out && s->down_ms > 0)
        s->down_until_ms = ons_mono_ms() + s->down_ms;
}

/* A new connection with its scripts loaded (their SHAs into s->sha), or
 * NULL (the failure noted). */
static redisContext *connect_loaded(q_status *s)
{
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv_ms(s->timeout_ms));
    if (!c)
        return NULL;
    if (c->err || redisSetTimeout(c, tv_ms(s->timeout_ms)) != REDIS_OK) {
        note_failure(s, c, errno);
        redisFree(c);
        return NULL;
    }
    for (int i = 0; i < NSCRIPTS; i++) {
        redisReply *r = redisCommand(c, "SCRIPT LOAD %s", scripts[i]);
        int ok = r && r->type == REDIS_REPLY_STRING && r->len == 40;
        if (ok)
            memcpy(s->sha[i], r->str, 41);
        if (r)
            freeReplyObject(r);
        if (!ok) {
            note_failure(s, c, errno);
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* Makes sure s->ctx is a live connection (with the scripts loaded), the
 * replies a q_status_publish_nowait left on it read first. Returns 0 or
 * ONS_EREDIS. */
static int ensure_conn(q_status *s)
{
    s->cursors_unread = 0;
    if (s->ctx && !s->ctx->err && s->unread > 0) {
        size_t n = s->unread;
        s->unread = 0;
        if (read_replies(s, n, "publish") != 0)
            s->late_err = 1;
    }
    if (s->ctx && !s->ctx->err)
        return 0;
    s->unread = 0; /* they went with the connection */
    if (s->ctx) {
        redisFree(s->ctx);
        s->ctx = NULL;
    }
    /* A failure here is this call's, reported now: an error read late
     * above is not reported again by the next call (the worker would owe
     * a second repair for the same failure). */
    if (ons_mono_ms() < s->down_until_ms) {
        s->late_err = 0;
        return ONS_EREDIS; /* it timed out just now: not asked again yet */
    }
    s->ctx = connect_loaded(s);
    if (!s->ctx)
        s->late_err = 0;
    return s->ctx ? 0 : ONS_EREDIS;
}

/* Appends one command to the pipeline, counted (q_status_commands_sent). */
static int append_argv(q_status *s, int argc, const char **argv, const size_t *lens)
{
    s->sent++;
    return redisAppendCommandArgv(s->ctx, argc, argv, lens);
}

/* Appends EVALSHA of script with one key and nargs arguments to the
 * pipeline. */
static int append_script(q_status *s, int script, const char *k, int nargs, const char **args)
{
    char nk[] = "1";
    const char *argv[8] = {"EVALSHA", s->sha[script], nk, k};
    for (int i = 0; i < nargs && i < 4; i++)
        argv[4 + i] = args[i];
    return append_argv(s, 4 + nargs, argv, NULL) == REDIS_OK ? 0 : ONS_EREDIS;
}

/* A NOSCRIPT reply means the script cache was flushed under a live
 * connection: drop it so the next call reconnects and loads them again. */
static int noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* The reply of a script just appended (appended: whether that worked), or
 * NULL after dropping the connection (a failed append or read, or a script
 * the server no longer knows: the reconnect loads them again). */
static redisReply *script_reply(q_status *s, int appended)
{
    redisReply *r = NULL;
    if (!appended || redisGetReply(s->ctx, (void **)&r) != REDIS_OK || !r) {
        conn_failed(s, "script");
        return NULL;
    }
    if (noscript(r)) {
        freeReplyObject(r);
        conn_failed(s, "script");
        return NULL;
    }
    return r;
}

/* Runs one script (one round trip). Returns the reply (caller frees) or
 * NULL after dropping the connection. */
static redisReply *run_script(q_status *s, int script, const char *k, int nargs, const char **args)
{
    if (ensure_conn(s))
        return NULL;
    return script_reply(s, append_script(s, script, k, nargs, args) == 0);
}

/* Deletes k when it holds exactly expected (SCRIPT_CAD, no intent-id
 * match). 0 whether or not it did, or ONS_EREDIS. */
static int compare_and_delete(q_status *s, const char *k, const char *expected)
{
    const char *args[] = {expected, ""};
    redisReply *r = run_script(s, SCRIPT_CAD, k, 2, args);
    if (!r)
        return ONS_EREDIS;
    int rc = r->type == REDIS_REPLY_INTEGER ? 0 : ONS_EREDIS;
    freeReplyObject(r);
    return rc;
}

/* One pipelined batch over n caller items (items: the caller's array; arg:
 * texts every command shares). append queues item i's command (0 or
 * ONS_EREDIS: the connection failed); queued (NULL: every item is) says
 * whether item i is in the pipeline, asked before its append and again
 * before its reply is read; parse stores item i's outcome from its reply
 * and returns the item's rc. */
typedef struct pipeline pipeline;
struct pipeline {
    const char *what; /* names the call in the log */
    void *items;
    size_t n;
    const char *arg[2];
    int (*append)(q_status *s, const pipeline *p, size_t i);
    int (*queued)(const pipeline *p, size_t i);
    int (*parse)(const pipeline *p, size_t i, const redisReply *r);
};

/* Runs p in ONE round trip: appends every queued item's command, then
 * reads their replies in order. An item says ONS_EREDIS until its reply
 * is parsed (the caller sets that up), so when the connection fails the
 * rest keep saying it, while items already answered keep their outcome (a
 * claim that was taken must be used or given back). Returns 0 (also for
 * n = 0, without connecting) or ONS_EREDIS (an item's reply said so, or
 * the connection failed). */
static int run_pipeline(q_status *s, const pipeline *p)
{
    if (p->n == 0)
        return 0;
    if (ensure_conn(s))
        return ONS_EREDIS;
    for (size_t i = 0; i < p->n; i++)
        if ((!p->queued || p->queued(p, i)) && p->append(s, p, i))
            return conn_failed(s, p->what);
    int rc = 0, lost = 0;
    for (size_t i = 0; i < p->n; i++) {
        redisReply *r = NULL;
        if (p->queued && !p->queued(p, i))
            continue;
        if (redisGetReply(s->ctx, (void **)&r) != REDIS_OK || !r)
            return conn_failed(s, p->what); /* the rest stay ONS_EREDIS */
        if (p->parse(p, i, r) == ONS_EREDIS)
            rc = ONS_EREDIS;
        lost |= noscript(r);
        freeReplyObject(r);
    }
    /* A lost script cache drops the connection so the next call loads the
     * scripts again (the item that met it already says ONS_EREDIS). */
    if (lost)
        conn_failed(s, p->what);
    return rc;
}

/* Drops the connection after a protocol or I/O error so the next call
 * reconnects instead of reading a stale reply. */
static int conn_failed(q_status *s, const char *what)
{
    note_failure(s, s->ctx, errno);
    ons_logk(ONS_LOG_WARN, "redis", what, "redis call failed: %s",
             s->ctx && s->ctx->errstr[0] ? s->ctx->errstr : "error reply");
    if (s->ctx) {
        redisFree(s->ctx);
        s->ctx = NULL;
    }
    s->unread = 0;
    return ONS_EREDIS;
}

int q_status_new(const q_status_opts *o, q_status **out)
{
    q_status *s = calloc(1, sizeof *s);
    if (!s)
        return ONS_ENOMEM;
    s->host = strdup(o->host);
    s->prefix = strdup(o->prefix ? o->prefix : "");
    if (!s->host || !s->prefix) {
        q_status_free(s);
        return ONS_ENOMEM;
    }
    s->port = o->port;
    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 500;
    s->down_ms = o->down_ms;
    s->result_ttl_s = o->result_ttl_s > 0 ? o->result_ttl_s : 86400;
    s->unversioned = o->unversioned_results;
    (void)ensure_conn(s); /* may fail now; retried on every call */
    *out = s;
    return 0;
}

void q_status_free(q_status *s)
{
    if (!s)
        return;
    if (s->ctx)
        redisFree(s->ctx);
    free(s->host);
    free(s->prefix);
    free(s->resp);
    free(s->args.text);
    free(s->args.off);
    free(s->args.len);
    free(s->args.argv);
    free(s);
}

/* Runs one command (argv form, so binary-safe and injection-free). Returns
 * the reply (caller frees) or NULL after dropping the connection. Error
 * replies are returned as replies; the caller decides. */
static redisReply *command(q_status *s, int argc, const char **argv, const size_t *lens)
{
    if (ensure_conn(s))
        return NULL;
    s->sent++;
    redisReply *r = redisCommandArgv(s->ctx, argc, argv, lens);
    if (!r)
        conn_failed(s, argv[0]);
    return r;
}

/* command() for a read that is safe to repeat: a connection found broken
 * (Redis restarted since its last use) is reopened and the read sent once
 * more, so the first read after a restart answers from Redis instead of
 * failing over to PostgreSQL. */
static redisReply *read_command(q_status *s, int argc, const char **argv)
{
    int was_open = s->ctx != NULL;
    redisReply *r = command(s, argc, argv, NULL);
    if (!r && was_open)
        r = command(s, argc, argv, NULL);
    return r;
}

int q_status_ping(q_status *s)
{
    const char *argv[] = {"PING"};
    redisReply *r = command(s, 1, argv, NULL);
    int rc = r && r->type == REDIS_REPLY_STATUS ? 0 : ONS_EREDIS;
    if (r)
        freeReplyObject(r);
    return rc;
}

/* Formats prefix + suffix into buf. */
static const char *key(q_status *s, char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const char *key(q_status *s, char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = (size_t)snprintf(buf, cap, "%s", s->prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
    return buf;
}

/* Writes n's decimal digits at o; returns the end. */
static char *put_uint(char *o, unsigned long long n)
{
    char d[24];
    int i = 0;
    do
        d[i++] = (char)('0' + n % 10);
    while ((n /= 10) != 0);
    while (i > 0)
        *o++ = d[--i];
    return o;
}

/* Writes one RESP bulk string ("$<n>\r\n<bytes>\r\n") at o; returns the end. */
static char *put_bulk(char *o, const char *p, size_t n)
{
    *o++ = '$';
    o = put_uint(o, n);
    *o++ = '\r', *o++ = '\n';
    memcpy(o, p, n);
    o += n;
    *o++ = '\r', *o++ = '\n';
    return o;
}

/* ---- one command over many keys: its arguments built in s->args --------------- */

static void args_reset(q_status *s)
{
    s->args.used = s->args.n = 0;
    s->args.oom = 0;
}

/* Makes room for one more argument of up to need bytes. 0 or -1 (no
 * memory: s->args.oom set, the command is not sent). */
static int args_room(q_status *s, size_t need)
{
    if (s->args.oom)
        return -1;
    if (s->args.n == s->args.ncap) {
        size_t nc = s->args.ncap ? 2 * s->args.ncap : 64;
        size_t *off = realloc(s->args.off, nc * sizeof *off);
        if (off)
            s->args.off = off;
        size_t *len = off ? realloc(s->args.len, nc * sizeof *len) : NULL;
        if (len)
            s->args.len = len;
        const char **argv = len ? realloc(s->args.argv, nc * sizeof *argv) : NULL;
        if (!argv) {
            s->args.oom = 1;
            return -1;
        }
        s->args.argv = argv;
        s->args.ncap = nc;
    }
    if (s->args.used + need > s->args.cap) {
        size_t nc = s->args.cap ? 2 * s->args.cap : 4096;
        while (nc < s->args.used + need)
            nc *= 2;
        char *t = realloc(s->args.text, nc);
        if (!t) {
            s->args.oom = 1;
            return -1;
        }
        s->args.text = t;
        s->args.cap = nc;
    }
    return 0;
}

/* Adds one argument: prefix (may be NULL) then fmt's text, at most 511
 * bytes in all (a key or a number; a longer one is cut, as key() cuts). */
static void args_add(q_status *s, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void args_add(q_status *s, const char *prefix, const char *fmt, ...)
{
    enum { MAX = 512 };
    if (args_room(s, MAX))
        return;
    char *o = s->args.text + s->args.used;
    size_t n = prefix ? (size_t)snprintf(o, MAX, "%s", prefix) : 0;
    if (n >= MAX)
        n = MAX - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(o + n, MAX - n, fmt, ap);
    va_end(ap);
    n += m < 0 ? 0 : (size_t)m < MAX - n ? (size_t)m : MAX - n - 1;
    s->args.off[s->args.n] = s->args.used;
    s->args.len[s->args.n++] = n;
    s->args.used += n;
}

/* The common arguments of the claimer's and finisher's scripts without
 * printf: prefix (may be NULL), then text (may be NULL), then nints
 * integers written as "%lld" writes them, joined by ':', cut at 511
 * bytes as args_add cuts. The same bytes as args_add(s, prefix,
 * "<text>%lld:%lld...", ...), without its two formatted prints (about a
 * thousand instructions an argument, ten arguments a join). */
static void args_key(q_status *s, const char *prefix, const char *text, const long long *ints,
                     size_t nints)
{
    enum { MAX = 512 };
    if (args_room(s, MAX))
        return;
    char *o = s->args.text + s->args.used;
    size_t n = 0;
    const char *parts[2] = {prefix, text};
    for (size_t p = 0; p < 2; p++) {
        size_t len = parts[p] ? strlen(parts[p]) : 0;
        if (len > MAX - 1 - n)
            len = MAX - 1 - n;
        memcpy(o + n, parts[p] ? parts[p] : "", len);
        n += len;
    }
    for (size_t i = 0; i < nints; i++) {
        char d[24];
        size_t k = 0;
        unsigned long long u =
            ints[i] < 0 ? 0ULL - (unsigned long long)ints[i] : (unsigned long long)ints[i];
        do
            d[k++] = (char)('0' + u % 10);
        while ((u /= 10) != 0);
        if (ints[i] < 0)
            d[k++] = '-';
        if (i > 0)
            d[k++] = ':'; /* written first: d is read backwards */
        while (k && n < MAX - 1)
            o[n++] = d[--k];
    }
    s->args.off[s->args.n] = s->args.used;
    s->args.len[s->args.n++] = n;
    s->args.used += n;
}

static void args_num(q_status *s, long long v)
{
    args_key(s, NULL, NULL, &v, 1);
}

/* Adds one argument taken as it is (binary-safe, any length). */
static void args_put(q_status *s, const char *p)
{
    size_t n = strlen(p);
    if (args_room(s, n))
        return;
    memcpy(s->args.text + s->args.used, p, n);
    s->args.off[s->args.n] = s->args.used;
    s->args.len[s->args.n++] = n;
    s->args.used += n;
}

/* Appends the command built in s->args to the pipeline. 0, or ONS_ENOMEM
 * (nothing appended) or ONS_EREDIS. */
static int args_append(q_status *s)
{
    if (s->args.oom)
        return ONS_ENOMEM;
    /* In RESP in s->resp (reused) and handed over in one piece, as
     * append_result_set does: hiredis's own formatting allocates the whole
     * command afresh each call, for a claimer round a size past malloc's
     * per-thread cache (bench/NOTES.md, "Join, fourteenth round"). */
    size_t need = 4 + 22 + s->args.used + s->args.n * (1 + 20 + 4);
    if (need > s->resp_cap) {
        char *nb = realloc(s->resp, need);
        if (nb) {
            s->resp = nb;
            s->resp_cap = need;
        }
    }
    if (need > s->resp_cap) { /* no memory: hiredis formats it */
        for (size_t i = 0; i < s->args.n; i++)
            s->args.argv[i] = s->args.text + s->args.off[i];
        if (append_argv(s, (int)s->args.n, s->args.argv, s->args.len) != REDIS_OK)
            return ONS_EREDIS;
        return 0;
    }
    char *o = s->resp;
    *o++ = '*';
    o = put_uint(o, s->args.n);
    *o++ = '\r', *o++ = '\n';
    for (size_t i = 0; i < s->args.n; i++)
        o = put_bulk(o, s->args.text + s->args.off[i], s->args.len[i]);
    s->sent++;
    return redisAppendFormattedCommand(s->ctx, s->resp, (size_t)(o - s->resp)) == REDIS_OK
               ? 0
               : ONS_EREDIS;
}

/* Starts EVALSHA of script over nkeys keys (added next, then its ARGV). */
static void args_script(q_status *s, int script, size_t nkeys)
{
    args_reset(s);
    args_put(s, "EVALSHA");
    args_put(s, s->sha[script]);
    args_num(s, (long long)nkeys);
}

/* One script call per chunk of up to per_call caller items, its reply one
 * element per item (as a pipeline is one command per item). add_args
 * builds the call for items [from, from + m) in s->args (args_script
 * first); parse stores item i's outcome from its element and returns the
 * item's rc. */
typedef struct script_batch script_batch;
struct script_batch {
    const char *what; /* names the call in the log */
    void *items;
    size_t n, per_call;
    int64_t arg[2]; /* numbers every call shares */
    void (*add_args)(q_status *s, const script_batch *b, size_t from, size_t m);
    int (*parse)(const script_batch *b, size_t i, const redisReply *e);
};

/* Runs b, a round trip per call. An item says ONS_EREDIS until its element
 * is parsed (the caller sets that up): when the connection fails or a
 * call's reply is not one element per item, the items not answered keep
 * saying it, and so does an item whose element is an error (Redis refused
 * that item alone; the script wrote nothing for it). Items answered keep
 * their outcome (a claim that was taken must be used or given back).
 * Returns 0 (also for n = 0, without connecting) or ONS_EREDIS (some item
 * says it). */
static int run_script_batch(q_status *s, const script_batch *b)
{
    int rc = 0;
    for (size_t from = 0; from < b->n; from += b->per_call) {
        size_t m = b->n - from < b->per_call ? b->n - from : b->per_call;
        if (ensure_conn(s))
            return ONS_EREDIS;
        b->add_args(s, b, from, m);
        int ap = args_append(s);
        if (ap == ONS_ENOMEM)
            return ONS_EREDIS; /* nothing sent */
        redisReply *r = script_reply(s, ap == 0);
        if (!r)
            return ONS_EREDIS;
        const char *refused = r->type == REDIS_REPLY_ERROR ? r->str : NULL;
        size_t nrefused = 0;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != m) {
            rc = ONS_EREDIS;
            nrefused = m;
        } else {
            for (size_t i = 0; i < m; i++) {
                const redisReply *e = r->element[i];
                if (e->type == REDIS_REPLY_ERROR) {
                    refused = refused ? refused : e->str;
                    nrefused++;
                    rc = ONS_EREDIS;
                } else if (b->parse(b, from + i, e) == ONS_EREDIS) {
                    rc = ONS_EREDIS;
                }
            }
        }
        if (nrefused)
            ons_logk(ONS_LOG_WARN, "redis", b->what, "%zu of %zu items failed: %s", nrefused, m,
                     refused ? refused : "an unexpected reply");
        freeReplyObject(r);
    }
    return rc;
}

unsigned long q_status_commands_sent(const q_status *s)
{
    return s->sent;
}

unsigned long q_status_results_refused(const q_status *s)
{
    return s->refused;
}

/* Appends SET <prefix>r:<seq> <json> EX <ttl>, formatted here in RESP and
 * handed over in one piece: hiredis's argv formatting (sdscatfmt per
 * argument, then a copy into its buffer) was about a tenth of the worker's
 * CPU per intent drained (bench/NOTES.md). Without memory for the buffer,
 * hiredis formats it as before. */
static void append_result_set(q_status *s, const q_status_result *r, const char *ttl)
{
    size_t plen = strlen(s->prefix), jlen = strlen(r->json), tlen = strlen(ttl);
    size_t need = 4 + 5 * 25 + 3 + plen + 22 + jlen + 2 + tlen; /* 5 bulks, 20-digit lengths */
    if (need > s->resp_cap) {
        char *nb = realloc(s->resp, need);
        if (nb) {
            s->resp = nb;
            s->resp_cap = need;
        }
    }
    if (need > s->resp_cap || r->intent_seq < 0) { /* no memory; no such seq in practice */
        char k[256];
        key(s, k, sizeof k, "r:%lld", (long long)r->intent_seq);
        const char *argv[] = {"SET", k, r->json, "EX", ttl};
        size_t lens[] = {3, strlen(k), jlen, 2, tlen};
        append_argv(s, 5, argv, lens);
        return;
    }
    char k[24] = "r:";
    char *kend = put_uint(k + 2, (unsigned long long)r->intent_seq);
    char *o = s->resp;
    memcpy(o, "*5\r\n", 4);
    o = put_bulk(o + 4, "SET", 3);
    /* The key: prefix then "r:<seq>", one bulk string. */
    size_t klen = plen + (size_t)(kend - k);
    *o++ = '$';
    o = put_uint(o, klen);
    *o++ = '\r', *o++ = '\n';
    memcpy(o, s->prefix, plen);
    memcpy(o + plen, k, (size_t)(kend - k));
    o += klen;
    *o++ = '\r', *o++ = '\n';
    o = put_bulk(o, r->json, jlen);
    o = put_bulk(o, "EX", 2);
    o = put_bulk(o, ttl, tlen);
    s->sent++;
    redisAppendFormattedCommand(s->ctx, s->resp, (size_t)(o - s->resp));
}

/* Active keys a SCRIPT_CAD_MANY call deletes at most: the script hands
 * its keys to MGET and DEL through Lua's unpack, which refuses ~8,000
 * values ("too many results to unpack"), and a sell-out's batch ends
 * batch.sold_out_rejects (8,000) intents at once. */
#define DELS_PER_CALL 1024

/* Appends ONE script call (SCRIPT_CAD_MANY) for the active keys of the
 * ended results in results[from..), at most DELS_PER_CALL of them; *next
 * gets where the next call starts. Each key is deleted only while it is
 * that intent's own: by its id (written by the finisher) or by its
 * still-pending claim, "pending:<sent_ms>" (the finisher has not caught
 * up), never a later join's. Returns the commands appended (0 when none
 * ended). */
static size_t append_active_delete_call(q_status *s, const q_status_result *results, size_t n,
                                        size_t from, size_t *next)
{
    size_t ended = 0, end = from;
    for (; end < n && ended < DELS_PER_CALL; end++)
        ended += results[end].ended != 0;
    *next = end;
    if (ended == 0)
        return 0;
    args_script(s, SCRIPT_CAD_MANY, ended);
    for (size_t i = from; i < end; i++)
        if (results[i].ended)
            args_add(s, s->prefix, "active:%lld:%lld", (long long)results[i].event_id,
                     (long long)results[i].user_id);
    for (size_t i = from; i < end; i++) {
        if (!results[i].ended)
            continue;
        args_add(s, NULL, "pending:%lld", (long long)results[i].accepted_ms);
        args_add(s, NULL, "%016llx", (unsigned long long)results[i].intent_seq);
    }
    int ap = args_append(s);
    if (ap != ONS_ENOMEM)
        return ap == 0; /* 0 on a failed append: the connection is marked failed */
    /* No memory for the call: one script per key, as before. */
    size_t queued = 0;
    for (size_t i = from; i < end; i++) {
        const q_status_result *r = &results[i];
        if (!r->ended)
            continue;
        char k[256], pend[40], seqhex[24];
        snprintf(pend, sizeof pend, "pending:%lld", (long long)r->accepted_ms);
        snprintf(seqhex, sizeof seqhex, "%016llx", (unsigned long long)r->intent_seq);
        key(s, k, sizeof k, "active:%lld:%lld", (long long)r->event_id, (long long)r->user_id);
        const char *args[] = {pend, seqhex};
        append_script(s, SCRIPT_CAD, k, 2, args);
        queued++;
    }
    return queued;
}

/* Appends the deletes of the ended results' active keys: one script call
 * per DELS_PER_CALL of them. Returns the commands appended. */
static size_t append_active_deletes(q_status *s, const q_status_result *results, size_t n)
{
    size_t queued = 0;
    for (size_t from = 0; from < n;)
        queued += append_active_delete_call(s, results, n, from, &from);
    return queued;
}

/* Results per script call: ARGV holds four values a key, well under
 * what a script call takes, and one call's work (a GET and a SET a key,
 * about 2 us each) stays a few ms of Redis's one thread. */
#define REPAIRS_PER_CALL 512

/* Appends the versioned writes of a batch's results: the repair's
 * compare-and-set script (SCRIPT_RESULT_REPAIR), one call per
 * REPAIRS_PER_CALL results, in the same pipeline as the rest of the
 * batch (no round trip of its own). A call that cannot be built (no
 * memory) is not sent: a plain SET would skip the compare, so the
 * projection counts as failed instead (s->late_err) and a repair writes
 * them. Returns the commands appended. */
static size_t append_result_writes(q_status *s, int32_t partition, const q_status_result *results,
                                   size_t n)
{
    size_t queued = 0;
    for (size_t from = 0; from < n; from += REPAIRS_PER_CALL) {
        size_t m = n - from < REPAIRS_PER_CALL ? n - from : REPAIRS_PER_CALL;
        const q_status_result *r = results + from;
        args_script(s, SCRIPT_RESULT_REPAIR, m + 1);
        args_add(s, s->prefix, "repair_epoch");
        for (size_t i = 0; i < m; i++) {
            long long seq = (long long)r[i].intent_seq;
            args_key(s, s->prefix, "r:", &seq, 1);
        }
        args_num(s, s->result_ttl_s);
        for (size_t i = 0; i < m; i++) {
            args_num(s, partition);
            args_num(s, (long long)r[i].epoch);
            args_num(s, (long long)r[i].version);
            args_put(s, r[i].json);
        }
        int ap = args_append(s);
        if (ap == ONS_ENOMEM)
            s->late_err = 1;
        queued += ap == 0;
    }
    return queued;
}

/* Appends the HSET of one event's counters (and status and sections when
 * given). One command. */
static size_t append_event(q_status *s, const q_status_event *e)
{
    char k[256], a[24], h[24], so[24], w[24], ha[24], mh[24], apm[24];
    snprintf(ha, sizeof ha, "%lld", (long long)e->holds_active);
    snprintf(mh, sizeof mh, "%lld", (long long)e->max_active_holds);
    snprintf(apm, sizeof apm, "%lld", (long long)e->admissions_per_minute);
    snprintf(a, sizeof a, "%lld", (long long)e->available);
    snprintf(h, sizeof h, "%lld", (long long)e->held);
    snprintf(so, sizeof so, "%lld", (long long)e->sold);
    snprintf(w, sizeof w, "%lld", (long long)e->waiting);
    key(s, k, sizeof k, "ev:%lld", (long long)e->event_id);
    const char *argv[24] = {"HSET",
                            k,
                            "available",
                            a,
                            "held",
                            h,
                            "sold",
                            so,
                            "waiting",
                            w,
                            "sold_out",
                            e->sold_out ? "1" : "0",
                            "holds_active",
                            ha,
                            "max_active_holds",
                            mh,
                            "admissions_per_minute",
                            apm};
    int argc = 18;
    if (e->status) {
        argv[argc++] = "status";
        argv[argc++] = e->status;
    }
    if (e->sections) {
        argv[argc++] = "sections";
        argv[argc++] = e->sections;
    }
    append_argv(s, argc, argv, NULL);
    return 1;
}

/* Appends HSET <hash> <partition> <value>. One command. */
static size_t append_partition_field(q_status *s, const char *hash, int32_t partition,
                                     const char *value)
{
    char k[256], f[32];
    snprintf(f, sizeof f, "%d", partition);
    key(s, k, sizeof k, "%s", hash);
    const char *argv[] = {"HSET", k, f, value};
    append_argv(s, 4, argv, NULL);
    return 1;
}

/* The outcomes of a batch's result writes (one RESULT_REPAIR call's reply,
 * the only array a pipeline of these gets back): 0 left alone (newer in
 * Redis: counted in s->refused), 1 written, anything else (4: Redis
 * refused that item) failed. Returns 0 or ONS_EREDIS. */
static int result_outcomes(q_status *s, const redisReply *r)
{
    int rc = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        long long o = e->type == REDIS_REPLY_INTEGER ? e->integer : -1;
        s->refused += o == 0;
        if (o != 0 && o != 1)
            rc = ONS_EREDIS;
    }
    return rc;
}

/* Reads the replies of queued pipelined commands: 0, ONS_EREDIS (a command
 * failed, or a result write did) or what conn_failed says (the connection
 * or a script is lost). */
static int read_replies(q_status *s, size_t queued, const char *what)
{
    int rc = 0, lost = 0;
    for (size_t i = 0; i < queued; i++) {
        redisReply *r = NULL;
        if (redisGetReply(s->ctx, (void **)&r) != REDIS_OK || !r)
            return conn_failed(s, what);
        if (r->type == REDIS_REPLY_ERROR ||
            (r->type == REDIS_REPLY_ARRAY && result_outcomes(s, r) != 0))
            rc = ONS_EREDIS;
        lost |= noscript(r);
        freeReplyObject(r);
    }
    return lost ? conn_failed(s, what) : rc;
}

/* Appends the HSET of partition's drain (its "drain" hash value: the
 * fields of q_status_drain in order, which parse_drain reads back; a reader
 * of the first six, eleven or twelve alone still understands them). Returns the
 * commands. */
static size_t append_drain(q_status *s, int32_t partition, const q_status_drain *d)
{
    char v[320];
    snprintf(v, sizeof v, "%lld %lld %.3f %.6f %lld %lld %lld %lld %lld %.6f %lld %lld %lld %.3f",
             (long long)d->served, (long long)d->served_at_ms, d->batch_ms, d->record_ms,
             (long long)d->batch_max, (long long)d->window_ms, (long long)d->applying,
             (long long)d->applying_end, (long long)d->applying_ctl, d->ctl_ms,
             (long long)d->ctl_left, (long long)d->ctl_queued, (long long)d->polled_by_ms,
             d->next_ms);
    return append_partition_field(s, "drain", partition, v);
}

/* Appends a batch's pipeline (q_status_publish); returns the commands. */
static size_t append_publish(q_status *s, int32_t partition, int64_t served, double rate,
                             const q_status_drain *drain, const q_status_result *results,
                             size_t nresults, const q_status_event *events, size_t nevents)
{
    char v[64], ttl[24];
    size_t queued = 0;
    snprintf(ttl, sizeof ttl, "%d", s->result_ttl_s);
    /* Results and events first, the cursor last: a reader that sees the new
     * cursor must also find the results it now points past. */
    if (s->unversioned) {
        for (size_t i = 0; i < nresults; i++)
            append_result_set(s, &results[i], ttl);
        queued += nresults;
    } else {
        queued += append_result_writes(s, partition, results, nresults);
    }
    queued += append_active_deletes(s, results, nresults);
    for (size_t i = 0; i < nevents; i++)
        queued += append_event(s, &events[i]);
    snprintf(v, sizeof v, "%lld", (long long)served);
    queued += append_partition_field(s, "served", partition, v);
    snprintf(v, sizeof v, "%.3f", rate);
    queued += append_partition_field(s, "rate", partition, v);
    if (drain)
        queued += append_drain(s, partition, drain);
    return queued;
}

/* An error reply read late (ensure_conn) is reported once, by the next
 * publish. */
static int take_late_err(q_status *s)
{
    int late = s->late_err;
    s->late_err = 0;
    return late ? ONS_EREDIS : 0;
}

int q_status_publish(q_status *s, int32_t partition, int64_t served, double rate,
                     const q_status_drain *drain, const q_status_result *results, size_t nresults,
                     const q_status_event *events, size_t nevents)
{
    if (ensure_conn(s))
        return ONS_EREDIS;
    size_t queued =
        append_publish(s, partition, served, rate, drain, results, nresults, events, nevents);
    int late = take_late_err(s); /* the replies read before, or a result call not built */
    int rc = read_replies(s, queued, "publish");
    return rc ? rc : late;
}

/* Writes out the queued commands without reading their replies (the next
 * call on s reads them, ensure_conn, with any still unread before them). */
static int write_nowait(q_status *s, size_t queued, int late)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(s->ctx, &done) != REDIS_OK)
            return conn_failed(s, "publish");
    s->unread += queued;
    return late;
}

int q_status_publish_nowait(q_status *s, int32_t partition, int64_t served, double rate,
                            const q_status_drain *drain, const q_status_result *results,
                            size_t nresults, const q_status_event *events, size_t nevents)
{
    if (ensure_conn(s))
        return ONS_EREDIS;
    size_t queued =
        append_publish(s, partition, served, rate, drain, results, nresults, events, nevents);
    int late = take_late_err(s); /* the replies read before, or a result call not built */
    return write_nowait(s, queued, late);
}

int q_status_publish_cursors_nowait(q_status *s, size_t n, const int32_t *partitions,
                                    const int64_t *served, const double *rate,
                                    const q_status_drain *drains)
{
    /* Appended behind a pipeline whose replies are still unread (the last
     * projection's), not after waiting for them: the next call reads them
     * all, in order (ensure_conn). Behind this call's own (an idle owner:
     * nothing else was sent since), they are read first: a second old,
     * they have arrived, and they do not pile up unread. */
    if ((s->cursors_unread || !s->ctx || s->ctx->err) && ensure_conn(s))
        return ONS_EREDIS;
    int late = take_late_err(s);
    size_t queued = 0;
    for (size_t i = 0; i < n; i++)
        queued +=
            append_publish(s, partitions[i], served[i], rate[i], &drains[i], NULL, 0, NULL, 0);
    int rc = write_nowait(s, queued, late);
    s->cursors_unread = s->unread > 0;
    return rc;
}

int q_status_publish_drain_nowait(q_status *s, int32_t partition, const q_status_drain *drain)
{
    if (ensure_conn(s))
        return ONS_EREDIS;
    int late = take_late_err(s);
    return write_nowait(s, append_drain(s, partition, drain), late);
}

/* The argv of one command over the result keys r:<seq> of up to cap
 * intents: argv[0] the command, argv[1..n] the keys (in keys). */
typedef struct result_argv {
    const char **argv;
    char (*keys)[128];
} result_argv;

static int result_argv_new(result_argv *ra, size_t cap)
{
    ra->keys = malloc(cap * sizeof *ra->keys);
    ra->argv = malloc((cap + 1) * sizeof *ra->argv);
    if (ra->keys && ra->argv)
        return 0;
    free(ra->keys);
    free(ra->argv);
    return ONS_ENOMEM;
}

static void result_argv_fill(q_status *s, result_argv *ra, const char *cmd, const int64_t *seqs,
                             size_t n)
{
    ra->argv[0] = cmd;
    for (size_t i = 0; i < n; i++)
        ra->argv[i + 1] = key(s, ra->keys[i], sizeof ra->keys[i], "r:%lld", (long long)seqs[i]);
}

static void result_argv_free(result_argv *ra)
{
    free(ra->keys);
    free(ra->argv);
}

int q_status_drop_results(q_status *s, const int64_t *seqs, size_t n)
{
    enum { CHUNK = 512 };
    result_argv ra;
    if (n == 0)
        return 0;
    if (ensure_conn(s))
        return ONS_EREDIS;
    if (result_argv_new(&ra, CHUNK))
        return ONS_ENOMEM;
    size_t queued = 0;
    for (size_t at = 0; at < n; at += CHUNK) {
        size_t m = n - at < CHUNK ? n - at : CHUNK;
        result_argv_fill(s, &ra, "DEL", seqs + at, m);
        append_argv(s, (int)m + 1, ra.argv, NULL);
        queued++;
    }
    result_argv_free(&ra);
    return read_replies(s, queued, "drop_results");
}

/* ONE RESULT_REPAIR call for items [from, from + m): the repair_epoch
 * hash, their keys, the TTL, then each one's partition, epoch, version and
 * document ("": drop). */
static void repair_args(q_status *s, const script_batch *b, size_t from, size_t m)
{
    const q_status_repair *a = (const q_status_repair *)b->items + from;
    args_script(s, SCRIPT_RESULT_REPAIR, m + 1);
    args_add(s, s->prefix, "repair_epoch");
    for (size_t i = 0; i < m; i++)
        args_add(s, s->prefix, "r:%lld", (long long)a[i].intent_seq);
    args_add(s, NULL, "%d", s->result_ttl_s);
    for (size_t i = 0; i < m; i++) {
        args_add(s, NULL, "%d", (int)a[i].partition);
        args_add(s, NULL, "%lld", (long long)a[i].epoch);
        args_add(s, NULL, "%lld", (long long)a[i].version);
        args_put(s, a[i].json ? a[i].json : "");
    }
}

static int parse_repair(const script_batch *b, size_t i, const redisReply *e)
{
    q_status_repair *a = (q_status_repair *)b->items + i;
    if (e->type != REDIS_REPLY_INTEGER)
        return a->outcome = -1, ONS_EREDIS;
    a->outcome = (int)e->integer;
    return 0;
}

int q_status_repair_results(q_status *s, q_status_repair *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        items[i].outcome = -1;
    script_batch b = {.what = "repair_results",
                      .items = items,
                      .n = n,
                      .per_call = REPAIRS_PER_CALL,
                      .add_args = repair_args,
                      .parse = parse_repair};
    int rc = run_script_batch(s, &b);
    if (rc == 0 || !s->ctx || s->ctx->err)
        return rc;
    /* Redis answered. An item it refused alone says 4 (the script's
     * pcall): failed, and done (a key of another type fails every time).
     * Items still unanswered were in a call Redis refused whole (BUSY
     * behind another script, a script error, OOM before the script ran):
     * nothing of them was done, and the same call may go through later. */
    for (size_t i = 0; i < n; i++)
        if (items[i].outcome < 0)
            return ONS_EUNAVAIL;
    return 0;
}

/* Parses a "drain" hash value (append_publish) into *d; a malformed one
 * leaves it unknown (served -1). */
static void parse_drain(const char *v, q_status_drain *d)
{
    long long served, at, max, window, applying = -1, end = 0, ctl = 0, left = -1, queued = -1;
    long long polled_by = 0;
    double batch_ms, record_ms, ctl_ms = 0, next = 0;
    int n = sscanf(v, "%lld %lld %lf %lf %lld %lld %lld %lld %lld %lf %lld %lld %lld %lf", &served,
                   &at, &batch_ms, &record_ms, &max, &window, &applying, &end, &ctl, &ctl_ms, &left,
                   &queued, &polled_by, &next);
    if (n != 6 && n != 11 && n != 12 && n != 14)
        return;
    if (n < 14) /* an older owner's: when its next poll ends not said */
        polled_by = 0, next = 0;
    if (n == 6) /* an older owner's: no moment of its batches but the cursor's */
        applying = -1, end = served, ctl = 0, ctl_ms = 0, left = -1;
    if (n < 12) /* an older owner's: the control lane's backlog not said */
        queued = -1;
    if (served >= 0 && at >= 0 && batch_ms >= 0 && record_ms >= 0 && max >= 0 && window >= 0 &&
        applying >= -1 && applying <= 1 && end >= served && ctl >= 0 && ctl_ms >= 0 && left >= -1 &&
        queued >= -1 && polled_by >= 0 && next >= 0)
        *d = (q_status_drain){served, at,  batch_ms, record_ms, max,    window,    applying,
                              end,    ctl, ctl_ms,   left,      queued, polled_by, next};
}

/* A batch of n intents and c control records, from its apply to the next
 * batch's, by d's fitted pace. */
static double drain_period_ms(const q_status_drain *d, double n, double c)
{
    return d->batch_ms + n * d->record_ms + c * d->ctl_ms;
}

/* The wait as an older owner's drain (no moment of its batches but the
 * cursor's) tells it: the batches from the one after served's to the
 * fan's, counted from served_at for at most catch_up_ms, plus the fan's
 * batch's collecting window. */
static double drain_wait_from_cursor(const q_status_drain *d, int64_t offset, int64_t since,
                                     int64_t catch_up_ms)
{
    double k = (double)(offset - d->served);
    double batches = floor(k / (double)d->batch_max) + 1;
    if (since > catch_up_ms)
        since = catch_up_ms;
    return batches * d->batch_ms + (k + 1) * d->record_ms + (double)d->window_ms - (double)since;
}

/* The batches the owner applies before reaching a record k intents
 * behind the next batch's first, once the control records in the log are
 * applied (further_batches_ms): each taking ctl control records first
 * (per_batch intents)
 * while the control records still to come (left, when known: >= 0) last,
 * and batch_max intents each after. */
static double paced_batches_ms(const q_status_drain *d, double k, double per_batch, double ctl,
                               double left)
{
    if (ctl <= 0 || left < 0)
        return floor(k / per_batch) * drain_period_ms(d, per_batch, ctl);
    double with_ctl = floor(left / ctl), covered = with_ctl * per_batch;
    if (k < covered)
        return floor(k / per_batch) * drain_period_ms(d, per_batch, ctl);
    double max = (double)d->batch_max;
    return with_ctl * drain_period_ms(d, per_batch, ctl) +
           floor((k - covered) / max) * drain_period_ms(d, max, 0);
}

/* The batches before the one that applies a record k intents behind the
 * next batch's first. The control lane goes first: the control records
 * in the log when the owner published (d->ctl_queued) fill the next
 * batches before any intent, whole batches of them when there are as
 * many (a crowd's checkouts and payment results at once), and the batch
 * that takes the last of them takes intents after; then paced_batches_ms
 * with what the holds can send beyond them. */
static double further_batches_ms(const q_status_drain *d, double k, double per_batch, double ctl)
{
    double left = d->ctl_left >= 0 ? (double)d->ctl_left : -1, ms = 0;
    if (d->ctl_queued > 0) {
        double max = (double)d->batch_max, q = (double)d->ctl_queued;
        double full = floor(q / max), rest = q - full * max, room = max - rest;
        ms = full * drain_period_ms(d, 0, max);
        if (k < room)
            return ms; /* in the batch that takes the last of them */
        ms += drain_period_ms(d, room, rest);
        k -= room;
        if (left >= 0)
            left = left > q ? left - q : 0;
    }
    return ms + paced_batches_ms(d, k, per_batch, ctl, left);
}

/* Between batches, until the fan's batch is applied. The next batch is
 * polled now and collects its window, when no record was waiting as the
 * owner published (the poll waits for the next one: this fan's). When
 * records were waiting, it was polled at once, took the intents up to
 * d->applying_end and ended by d->polled_by_ms: a record past them, once
 * that poll is over, is in a batch after it, the first applied when the
 * polled batch's forecast period ends (a quarter of it at least, as a
 * batch past its forecast); the node's cached drain is up to a refresh
 * old, longer than the collecting window. *k: the intents between the
 * fan and the batch it waits for first. */
static double between_batches_ms(const q_status_drain *d, int64_t offset, int64_t now_ms,
                                 int64_t *k, q_status_drain *after)
{
    *after = *d;
    *k = offset - d->served;
    if (d->polled_by_ms <= 0 || now_ms <= d->polled_by_ms || d->next_ms <= 0 ||
        offset < d->applying_end)
        return (double)d->window_ms;
    *k = offset - d->applying_end;
    /* The polled batch took the control records queued first, up to a
     * batch of them (the owner's forecast, workers/main.c note_next_poll):
     * the batches after it start from the rest, not from them all again. */
    int64_t took = d->ctl_queued < d->batch_max ? d->ctl_queued : d->batch_max;
    if (took > 0) {
        after->ctl_queued -= took;
        if (after->ctl_left >= 0)
            after->ctl_left = after->ctl_left > took ? after->ctl_left - took : 0;
    }
    double first = d->next_ms - (double)(now_ms - d->polled_by_ms);
    return first > d->next_ms / 4 ? first : d->next_ms / 4;
}

double q_status_drain_wait_ms(const q_status_drain *d, int64_t offset, int64_t now_ms,
                              int64_t catch_up_ms)
{
    if (d->served < 0 || d->served_at_ms <= 0 || d->batch_max < 1 ||
        d->batch_ms + d->record_ms + d->ctl_ms <= 0)
        return -1;
    if (offset < d->served)
        return 0; /* the owner has passed it */
    int64_t since = now_ms - d->served_at_ms;
    if (since < 0)
        since = 0;
    double wait;
    if (d->applying < 0) {
        wait = drain_wait_from_cursor(d, offset, since, catch_up_ms);
    } else {
        /* A join is applied at the start of a batch (its left_queue_at):
         * the first batch the owner polls once the record is in the log,
         * which takes every record there up to batch_max. So a fan behind
         * the batch being committed is in the next one, applied when that
         * batch's period ends; one further back waits a full batch per
         * batch_max records more, each with as many control records as the
         * last batch had (the control lane goes first; at most half) while
         * the control records still to come last (further_batches_ms). */
        double ctl = (double)d->applying_ctl, half = (double)d->batch_max / 2;
        if (ctl > half)
            ctl = half;
        double per_batch = (double)d->batch_max - ctl;
        double first;
        int64_t k;
        q_status_drain after = *d; /* what the batches after the first start from */
        if (d->applying > 0) {
            if (offset < d->applying_end)
                return 0; /* in the batch being committed: applied at served_at */
            k = offset - d->applying_end;
            double p =
                drain_period_ms(d, (double)(d->applying_end - d->served), (double)d->applying_ctl);
            /* A batch past its expected period is given a quarter more,
             * not none: a slow commit is not over, nor a stalled owner. */
            first = p - (double)since;
            if (first < p / 4)
                first = p / 4;
        } else {
            first = between_batches_ms(d, offset, now_ms, &k, &after);
        }
        wait = first + further_batches_ms(&after, (double)k, per_batch, ctl);
    }
    return wait > 0 ? ceil(wait) : 0;
}

int q_status_read_cursors(q_status *s, int64_t *served, double *rate, q_status_drain *drain, int n)
{
    for (int i = 0; i < n; i++) {
        served[i] = -1;
        rate[i] = 0;
        if (drain)
            drain[i] = Q_STATUS_DRAIN_UNKNOWN;
    }
    if (ensure_conn(s))
        return ONS_EREDIS;
    char ks[256], kr[256], kd[256];
    key(s, ks, sizeof ks, "served");
    key(s, kr, sizeof kr, "rate");
    key(s, kd, sizeof kd, "drain");
    s->sent += 2;
    redisAppendCommand(s->ctx, "HGETALL %s", ks);
    redisAppendCommand(s->ctx, "HGETALL %s", kr);
    int nread = 2;
    if (drain) {
        s->sent++;
        redisAppendCommand(s->ctx, "HGETALL %s", kd);
        nread = 3;
    }
    int rc = 0;
    for (int which = 0; which < nread; which++) {
        redisReply *r = NULL;
        if (redisGetReply(s->ctx, (void **)&r) != REDIS_OK || !r)
            return conn_failed(s, "read_cursors");
        if (r->type != REDIS_REPLY_ARRAY) {
            rc = ONS_EREDIS;
        } else {
            for (size_t i = 0; i + 1 < r->elements; i += 2) {
                long p = strtol(r->element[i]->str, NULL, 10);
                if (p < 0 || p >= n)
                    continue;
                if (which == 0)
                    served[p] = strtoll(r->element[i + 1]->str, NULL, 10);
                else if (which == 1)
                    rate[p] = strtod(r->element[i + 1]->str, NULL);
                else
                    parse_drain(r->element[i + 1]->str, &drain[p]);
            }
        }
        freeReplyObject(r);
    }
    return rc;
}

/* Runs cmd on the one key <prefix><name><id>: the reply, or NULL as command(). */
static redisReply *command_on_key(q_status *s, const char *cmd, const char *name, int64_t id)
{
    char k[256];
    key(s, k, sizeof k, "%s%lld", name, (long long)id);
    const char *argv[] = {cmd, k};
    return read_command(s, 2, argv);
}

int q_status_repair_epoch_get(q_status *s, int32_t partition, int64_t *epoch)
{
    char k[256], f[16];
    key(s, k, sizeof k, "repair_epoch");
    snprintf(f, sizeof f, "%d", (int)partition);
    const char *argv[] = {"HGET", k, f};
    redisReply *r = command(s, 3, argv, NULL);
    if (!r)
        return ONS_EREDIS;
    int rc = 0;
    *epoch = -1;
    if (r->type == REDIS_REPLY_STRING)
        *epoch = strtoll(r->str, NULL, 10);
    else if (r->type != REDIS_REPLY_NIL)
        rc = ONS_EREDIS; /* the hash is of another type: no floor */
    freeReplyObject(r);
    return rc;
}

int q_status_get_result(q_status *s, int64_t seq, char **json)
{
    redisReply *r = command_on_key(s, "GET", "r:", seq);
    if (!r)
        return ONS_EREDIS;
    int rc;
    if (r->type == REDIS_REPLY_NIL) {
        rc = ONS_ENOTFOUND;
    } else if (r->type == REDIS_REPLY_STRING) {
        *json = strdup(r->str);
        rc = *json ? 0 : ONS_ENOMEM;
    } else {
        rc = ONS_EREDIS;
    }
    freeReplyObject(r);
    return rc;
}

int q_status_get_results(q_status *s, const int64_t *seqs, size_t n, char **json)
{
    for (size_t i = 0; i < n; i++)
        json[i] = NULL;
    if (n == 0)
        return 0;
    result_argv ra;
    if (ensure_conn(s))
        return ONS_EREDIS;
    if (result_argv_new(&ra, n))
        return ONS_ENOMEM;
    result_argv_fill(s, &ra, "MGET", seqs, n);
    redisReply *r = read_command(s, (int)n + 1, ra.argv);
    result_argv_free(&ra);
    if (!r)
        return ONS_EREDIS;
    int rc = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        rc = ONS_EREDIS;
    } else {
        for (size_t i = 0; i < n && rc == 0; i++) {
            const redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_STRING && !(json[i] = strdup(e->str)))
                rc = ONS_ENOMEM;
        }
    }
    if (rc)
        for (size_t i = 0; i < n; i++) {
            free(json[i]);
            json[i] = NULL;
        }
    freeReplyObject(r);
    return rc;
}

/* SET key value [NX] [EX ttl]; on a NX miss, GETs the current value into
 * *current (heap, caller frees). Returns 0, ONS_EEXIST or ONS_EREDIS. */
static int set_nx(q_status *s, const char *k, const char *value, int ttl_s, char **current)
{
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *argv[] = {"SET", k, value, "NX", "EX", ttl};
    redisReply *r = command(s, ttl_s > 0 ? 6 : 4, argv, NULL);
    if (!r)
        return ONS_EREDIS;
    int rc;
    if (r->type == REDIS_REPLY_STATUS)
        rc = 0;
    else if (r->type == REDIS_REPLY_NIL)
        rc = ONS_EEXIST;
    else
        rc = ONS_EREDIS;
    freeReplyObject(r);
    if (rc != ONS_EEXIST || !current)
        return rc;
    const char *gargv[] = {"GET", k};
    r = command(s, 2, gargv, NULL);
    if (!r)
        return ONS_EREDIS;
    *current = r->type == REDIS_REPLY_STRING ? strdup(r->str) : strdup("");
    freeReplyObject(r);
    return *current ? ONS_EEXIST : ONS_ENOMEM;
}

/* Runs a command whose reply only needs to be "not an error". */
static int simple(q_status *s, int argc, const char **argv)
{
    redisReply *r = command(s, argc, argv, NULL);
    if (!r)
        return ONS_EREDIS;
    int rc = r->type == REDIS_REPLY_ERROR ? ONS_EREDIS : 0;
    freeReplyObject(r);
    return rc;
}

static const char *active_key(q_status *s, char *buf, size_t cap, int64_t event_id, int64_t user_id)
{
    return key(s, buf, cap, "active:%lld:%lld", (long long)event_id, (long long)user_id);
}

/* Key names and period/burst arguments of n rate keys, into the caller's
 * buffers (names[i] prefixed; args[2i], args[2i+1] as text). */
typedef struct rate_argv {
    char names[Q_RATE_KEYS_MAX][160];
    char nums[2 * Q_RATE_KEYS_MAX][24];
} rate_argv;

static void rate_fill(q_status *s, rate_argv *b, const q_rate_key *keys, size_t n, const char **kv,
                      const char **av)
{
    for (size_t i = 0; i < n; i++) {
        kv[i] = key(s, b->names[i], sizeof b->names[i], "%s", keys[i].name);
        snprintf(b->nums[2 * i], sizeof b->nums[2 * i], "%lld", (long long)keys[i].period_ms);
        snprintf(b->nums[2 * i + 1], sizeof b->nums[2 * i + 1], "%lld", (long long)keys[i].burst);
        av[2 * i] = b->nums[2 * i];
        av[2 * i + 1] = b->nums[2 * i + 1];
    }
}

/* Reads gcra's {limited, key, remaining, ms} into out. 0 or ONS_EREDIS. */
static int rate_parse(const redisReply *r, q_rate_out *out)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 4)
        return ONS_EREDIS;
    for (size_t i = 0; i < 4; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return ONS_EREDIS;
    out->limited = r->element[0]->integer == 1;
    out->key = (int)r->element[1]->integer - 1;
    out->remaining = r->element[2]->integer;
    out->ms = r->element[3]->integer;
    return 0;
}

/* Appends the rate script of check i (its keys, their period and burst).
 * 0 or ONS_EREDIS. */
static int append_rate(q_status *s, const pipeline *p, size_t i)
{
    const q_rate_check *c = (const q_rate_check *)p->items + i;
    enum { MAXV = 3 + 3 * Q_RATE_KEYS_MAX };
    const char *argv[MAXV];
    char nk[2] = {(char)('0' + c->n), '\0'}; /* n <= Q_RATE_KEYS_MAX */
    rate_argv b;
    int argc = 0;
    argv[argc++] = "EVALSHA";
    argv[argc++] = s->sha[SCRIPT_RATE];
    argv[argc++] = nk;
    rate_fill(s, &b, c->keys, c->n, argv + argc, argv + argc + c->n);
    argc += 3 * (int)c->n;
    return append_argv(s, argc, argv, NULL) == REDIS_OK ? 0 : ONS_EREDIS;
}

/* A check without keys sends nothing. */
static int rate_queued(const pipeline *p, size_t i)
{
    return ((const q_rate_check *)p->items)[i].n > 0;
}

static int parse_rate(const pipeline *p, size_t i, const redisReply *r)
{
    q_rate_check *c = (q_rate_check *)p->items + i;
    return c->rc = rate_parse(r, &c->out);
}

int q_status_rate_check_many(q_status *s, q_rate_check *items, size_t n)
{
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&items[i].out, 0, sizeof items[i].out);
        items[i].out.key = -1;
        items[i].rc = items[i].n ? ONS_EREDIS : 0;
        if (items[i].n > Q_RATE_KEYS_MAX)
            return ONS_EINVAL;
        sent += items[i].n > 0;
    }
    pipeline p = {"rate_check", items, sent ? n : 0, {0}, append_rate, rate_queued, parse_rate};
    return run_pipeline(s, &p);
}

int q_status_rate_check(q_status *s, const q_rate_key *keys, size_t n, q_rate_out *out)
{
    q_rate_check c = {keys, n, 0, {0}};
    int rc = q_status_rate_check_many(s, &c, 1);
    *out = c.out;
    return rc ? rc : c.rc;
}

/* Reads one claim's element of the script's reply into it (rc, current,
 * rate). */
static int parse_claim(const script_batch *b, size_t i, const redisReply *r)
{
    q_active_claim *c = (q_active_claim *)b->items + i;
    const redisReply *res = r;
    if (c->nrate > 0) {
        if (rate_parse(r, &c->rate))
            return c->rc;
        if (c->rate.limited)
            return c->rc = ONS_EFULL;
        if (r->elements < 5)
            return c->rc;
        res = r->element[4];
    }
    if (res->type == REDIS_REPLY_INTEGER) {
        c->rc = 0;
    } else if (res->type == REDIS_REPLY_STRING) {
        c->rc = ONS_EEXIST;
        snprintf(c->current, sizeof c->current, "%s", res->str);
    }
    return c->rc;
}

/* ONE claim script call for claims [from, from + m): their keys, then now,
 * stale and each claim's arguments (b->arg: now_ms and stale_ms). */
static void claim_args(q_status *s, const script_batch *b, size_t from, size_t m)
{
    const q_active_claim *items = (const q_active_claim *)b->items + from;
    size_t nkeys = 0;
    for (size_t i = 0; i < m; i++)
        nkeys += 1 + items[i].nrate;
    args_script(s, SCRIPT_CLAIM, nkeys);
    for (size_t i = 0; i < m; i++) {
        const q_active_claim *c = &items[i];
        args_key(s, s->prefix, "active:", (long long[]){c->event_id, c->user_id}, 2);
        for (size_t k = 0; k < c->nrate; k++)
            args_key(s, s->prefix, c->rate_keys[k].name, NULL, 0);
    }
    args_num(s, (long long)b->arg[0]);
    args_num(s, (long long)b->arg[1]);
    for (size_t i = 0; i < m; i++) {
        const q_active_claim *c = &items[i];
        args_num(s, (long long)c->nrate);
        args_put(s, c->token);
        args_put(s, c->own_old ? c->own_old : "");
        for (size_t k = 0; k < c->nrate; k++) {
            args_num(s, (long long)c->rate_keys[k].period_ms);
            args_num(s, (long long)c->rate_keys[k].burst);
        }
    }
}

/* Claims per script call: bounds one call's arguments (a claimer round is
 * at most 256 joins, ingress/pool.h). */
#define CLAIMS_PER_CALL 256

int q_status_claim_active_many(q_status *s, q_active_claim *items, size_t n, int64_t now_ms,
                               int64_t stale_ms)
{
    for (size_t i = 0; i < n; i++) {
        items[i].rc = ONS_EREDIS;
        items[i].current[0] = '\0';
        memset(&items[i].rate, 0, sizeof items[i].rate);
        items[i].rate.key = -1;
        if (items[i].nrate > Q_RATE_KEYS_MAX)
            return ONS_EINVAL;
    }
    script_batch b = {.what = "claim_active",
                      .items = items,
                      .n = n,
                      .per_call = CLAIMS_PER_CALL,
                      .arg = {now_ms, stale_ms},
                      .add_args = claim_args,
                      .parse = parse_claim};
    return run_script_batch(s, &b);
}

int q_status_claim_active_rated(q_status *s, int64_t event_id, int64_t user_id, const char *token,
                                int64_t now_ms, int64_t stale_ms, const char *own_old,
                                char *current, size_t cap, const q_rate_key *keys, size_t n,
                                q_rate_out *rate)
{
    if (n > Q_RATE_KEYS_MAX)
        return ONS_EINVAL;
    q_active_claim c = {.event_id = event_id,
                        .user_id = user_id,
                        .token = token,
                        .own_old = own_old,
                        .rate_keys = keys,
                        .nrate = n};
    q_status_claim_active_many(s, &c, 1, now_ms, stale_ms);
    if (rate)
        *rate = c.rate;
    if (c.rc == ONS_EEXIST && current && cap)
        snprintf(current, cap, "%s", c.current);
    return c.rc;
}

int q_status_claim_active(q_status *s, int64_t event_id, int64_t user_id, const char *token,
                          int64_t now_ms, int64_t stale_ms, const char *own_old, char *current,
                          size_t cap)
{
    return q_status_claim_active_rated(s, event_id, user_id, token, now_ms, stale_ms, own_old,
                                       current, cap, NULL, 0, NULL);
}

/* SCRIPT_CAS on key k with args {expected, value, ttl}: 0, ONS_ECONFLICT
 * (k did not hold expected) or ONS_EREDIS. */
static int cas(q_status *s, const char *k, const char **args)
{
    redisReply *r = run_script(s, SCRIPT_CAS, k, 3, args);
    if (!r)
        return ONS_EREDIS;
    int rc = r->type != REDIS_REPLY_INTEGER ? ONS_EREDIS : r->integer == 1 ? 0 : ONS_ECONFLICT;
    freeReplyObject(r);
    return rc;
}

int q_status_replace_active(q_status *s, int64_t event_id, int64_t user_id, const char *expected,
                            const char *value)
{
    char k[256];
    active_key(s, k, sizeof k, event_id, user_id);
    const char *args[] = {expected, value, ""};
    return cas(s, k, args);
}

/* ONE CAS_MANY call for writes [from, from + m): their keys, then each
 * one's mode, expected and value. */
static void set_args(q_status *s, const script_batch *b, size_t from, size_t m)
{
    const q_active_set *a = (const q_active_set *)b->items + from;
    args_script(s, SCRIPT_CAS_MANY, m);
    for (size_t i = 0; i < m; i++)
        args_key(s, s->prefix, "active:", (long long[]){a[i].event_id, a[i].user_id}, 2);
    for (size_t i = 0; i < m; i++) {
        args_put(s, a[i].expected ? "c" : "s");
        args_put(s, a[i].expected ? a[i].expected : "");
        args_put(s, a[i].value);
    }
}

static int parse_set(const script_batch *b, size_t i, const redisReply *e)
{
    q_active_set *a = (q_active_set *)b->items + i;
    return a->rc = e->type != REDIS_REPLY_INTEGER ? ONS_EREDIS
                   : e->integer == 1              ? 0
                                                  : ONS_ECONFLICT;
}

/* Writes per script call, as claims. */
#define SETS_PER_CALL 256

int q_status_set_active_many(q_status *s, q_active_set *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        items[i].rc = ONS_EREDIS;
    script_batch b = {.what = "set_active",
                      .items = items,
                      .n = n,
                      .per_call = SETS_PER_CALL,
                      .add_args = set_args,
                      .parse = parse_set};
    return run_script_batch(s, &b);
}

int q_status_clear_active(q_status *s, int64_t event_id, int64_t user_id, const char *expected)
{
    char k[256];
    active_key(s, k, sizeof k, event_id, user_id);
    if (!expected) {
        const char *argv[] = {"DEL", k};
        return simple(s, 2, argv);
    }
    return compare_and_delete(s, k, expected);
}

/* idem:<user>:<key>. The Idempotency-Key is printable ASCII up to 128 chars
 * (validated by ingress) and passed binary-safe via argv. */
static const char *idem_key(q_status *s, char *buf, size_t cap, int64_t user_id, const char *k)
{
    return key(s, buf, cap, "idem:%lld:%s", (long long)user_id, k);
}

/* An in-flight record's value (q_status_idem_begin): at most 64 + 32 + 20
 * bytes of fields in 40 of text. Written by hand, not by snprintf: it is
 * on every keyed join's claim, and snprintf of its fields cost ~1,700
 * instructions more than the value without a node (callgrind). */
#define IDEM_INFLIGHT_CAP 192
static char *put_str(char *o, const char *p, size_t max)
{
    size_t n = strnlen(p, max);
    memcpy(o, p, n);
    return o + n;
}

static void idem_inflight(char v[IDEM_INFLIGHT_CAP], const char *body_hash, const char *node,
                          int64_t t_ms)
{
    char *o = put_str(v, "{\"h\":\"", 8);
    o = put_str(o, body_hash, 64);
    o = put_str(o, "\",\"s\":0", 16);
    if (node && node[0]) {
        o = put_str(o, ",\"n\":\"", 8);
        o = put_str(o, node, 32);
        o = put_str(o, "\",\"t\":", 8);
        if (t_ms < 0)
            *o++ = '-';
        o = put_uint(o, t_ms < 0 ? 0ULL - (unsigned long long)t_ms : (unsigned long long)t_ms);
    }
    *o++ = '}';
    *o = '\0';
}

int q_status_idem_begin(q_status *s, int64_t user_id, const char *idem, const char *body_hash,
                        const char *node, int64_t t_ms, int ttl_s, char **record)
{
    char k[512], v[IDEM_INFLIGHT_CAP];
    idem_key(s, k, sizeof k, user_id, idem);
    idem_inflight(v, body_hash, node, t_ms);
    return set_nx(s, k, v, ttl_s, record);
}

/* Appends key i's SET NX, with EX p->arg[0] unless that is NULL. 0 or
 * ONS_EREDIS. */
static int append_idem_begin(q_status *s, const pipeline *p, size_t i)
{
    const q_idem_begin *b = (const q_idem_begin *)p->items + i;
    char k[512], v[IDEM_INFLIGHT_CAP];
    idem_key(s, k, sizeof k, b->user_id, b->key);
    idem_inflight(v, b->body_hash, b->node, b->t_ms);
    const char *argv[] = {"SET", k, v, "NX", "EX", p->arg[0]};
    return append_argv(s, p->arg[0] ? 6 : 4, argv, NULL) == REDIS_OK ? 0 : ONS_EREDIS;
}

static int parse_idem_begin(const pipeline *p, size_t i, const redisReply *r)
{
    q_idem_begin *b = (q_idem_begin *)p->items + i;
    b->rc = r->type == REDIS_REPLY_STATUS ? 0
            : r->type == REDIS_REPLY_NIL  ? ONS_EEXIST
                                          : ONS_EREDIS;
    return b->rc;
}

int q_status_idem_begin_many(q_status *s, q_idem_begin *items, size_t n, int ttl_s)
{
    for (size_t i = 0; i < n; i++)
        items[i].rc = ONS_EREDIS;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    pipeline p = {"idem_begin_many", items, n, {ttl_s > 0 ? ttl : NULL}, append_idem_begin, NULL,
                  parse_idem_begin};
    return run_pipeline(s, &p);
}

int q_status_idem_finish(q_status *s, int64_t user_id, const char *idem, const char *body_hash,
                         int http_status, const char *response_json, int ttl_s)
{
    q_idem_done d = {user_id, idem, body_hash, response_json, http_status, ttl_s, 0};
    int rc = q_status_idem_finish_many(s, &d, 1);
    return rc ? d.rc : 0;
}

/* Appends response i's SET; 0 (or nothing appended when its value cannot
 * be built: its rc says ONS_ENOMEM) or ONS_EREDIS. */
static int append_idem_finish(q_status *s, const pipeline *p, size_t i)
{
    q_idem_done *item = (q_idem_done *)p->items + i;
    char k[512], ttl[24];
    idem_key(s, k, sizeof k, item->user_id, item->key);
    size_t cap = strlen(item->response_json) + strlen(item->body_hash) + 64;
    char *v = malloc(cap);
    if (!v) {
        item->rc = ONS_ENOMEM;
        return 0;
    }
    snprintf(v, cap, "{\"h\":\"%s\",\"s\":%d,\"b\":%s}", item->body_hash, item->http_status,
             item->response_json);
    snprintf(ttl, sizeof ttl, "%d", item->ttl_s);
    const char *argv[] = {"SET", k, v, "EX", ttl};
    int rc = append_argv(s, 5, argv, NULL) == REDIS_OK ? 0 : ONS_EREDIS;
    free(v);
    return rc;
}

/* A response whose value could not be built is not sent. */
static int idem_finish_queued(const pipeline *p, size_t i)
{
    return ((const q_idem_done *)p->items)[i].rc != ONS_ENOMEM;
}

static int parse_idem_finish(const pipeline *p, size_t i, const redisReply *r)
{
    q_idem_done *item = (q_idem_done *)p->items + i;
    return item->rc = r->type == REDIS_REPLY_STATUS ? 0 : ONS_EREDIS;
}

int q_status_idem_finish_many(q_status *s, q_idem_done *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        items[i].rc = ONS_EREDIS;
    pipeline p = {"idem_finish_many", items, n, {0}, append_idem_finish, idem_finish_queued,
                  parse_idem_finish};
    int rc = run_pipeline(s, &p);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = items[i].rc; /* ONS_ENOMEM: a value that could not be built */
    return rc;
}

int q_status_idem_unknown(q_status *s, int64_t user_id, const char *idem, const char *body_hash,
                          int32_t partition, int64_t sent_ms, int64_t at_ms, int ttl_s)
{
    char k[512], v[256], ttl[24];
    idem_key(s, k, sizeof k, user_id, idem);
    snprintf(v, sizeof v, "{\"h\":\"%s\",\"s\":-1,\"p\":%d,\"t\":%lld,\"at\":%lld}", body_hash,
             (int)partition, (long long)sent_ms, (long long)at_ms);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *argv[] = {"SET", k, v, "EX", ttl};
    return simple(s, 5, argv);
}

int q_status_idem_retake(q_status *s, int64_t user_id, const char *idem, const char *expected,
                         const char *body_hash, const char *node, int64_t t_ms, int ttl_s)
{
    char k[512], v[IDEM_INFLIGHT_CAP], ttl[24];
    idem_key(s, k, sizeof k, user_id, idem);
    idem_inflight(v, body_hash, node, t_ms);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *args[] = {expected, v, ttl};
    return cas(s, k, args);
}

int q_status_node_beat(q_status *s, const char *node, int ttl_ms)
{
    char k[256], ttl[24];
    key(s, k, sizeof k, "node:%.32s", node);
    snprintf(ttl, sizeof ttl, "%d", ttl_ms);
    const char *argv[] = {"SET", k, "1", "PX", ttl};
    return simple(s, 5, argv);
}

int q_status_node_alive(q_status *s, const char *node)
{
    char k[256];
    key(s, k, sizeof k, "node:%.32s", node);
    const char *argv[] = {"EXISTS", k};
    redisReply *r = read_command(s, 2, argv);
    if (!r)
        return ONS_EREDIS;
    int rc = r->type == REDIS_REPLY_INTEGER ? (r->integer > 0) : ONS_EREDIS;
    freeReplyObject(r);
    return rc;
}

int q_status_idem_abort(q_status *s, int64_t user_id, const char *idem, const char *body_hash,
                        const char *node, int64_t t_ms)
{
    char k[512], v[IDEM_INFLIGHT_CAP];
    idem_key(s, k, sizeof k, user_id, idem);
    idem_inflight(v, body_hash, node, t_ms);
    return compare_and_delete(s, k, v);
}

/* The int64_t fields of an event's hash (ev:<event>), by name. */
static const struct {
    const char *name;
    size_t off; /* in q_event_state */
} event_int64_fields[] = {
    {"onsale_at_ms", offsetof(q_event_state, onsale_at_ms)},
    {"prequeue_opens_at_ms", offsetof(q_event_state, prequeue_opens_at_ms)},
    {"holds_active", offsetof(q_event_state, holds_active)},
    {"max_active_holds", offsetof(q_event_state, max_active_holds)},
    {"admissions_per_minute", offsetof(q_event_state, admissions_per_minute)},
    {"available", offsetof(q_event_state, available)},
    {"held", offsetof(q_event_state, held)},
    {"sold", offsetof(q_event_state, sold)},
    {"waiting", offsetof(q_event_state, waiting)},
};

/* Reads field f of an event's hash, valued v, into out (sections: into
 * sections, when given); unknown fields are passed over. */
/* The event's partition count as stored, or 0 (unknown: the reader takes
 * it from PostgreSQL) unless it is plainly 1..65536: a join is produced to
 * the home this names, so a damaged field must not name another one. */
static int partitions_of(const char *v)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || v[0] < '1' || v[0] > '9' || n > 65536)
        return 0;
    return (int)n;
}

static void event_field(q_event_state *out, const char *f, const char *v, char *sections,
                        size_t cap, char **names)
{
    if (names && strcmp(f, "section_names") == 0) {
        free(*names);
        *names = strdup(v); /* out of memory: NULL, read as "not known" */
        return;
    }
    for (size_t i = 0; i < sizeof event_int64_fields / sizeof *event_int64_fields; i++)
        if (strcmp(f, event_int64_fields[i].name) == 0) {
            *(int64_t *)((char *)out + event_int64_fields[i].off) = strtoll(v, NULL, 10);
            return;
        }
    if (strcmp(f, "status") == 0)
        snprintf(out->status, sizeof out->status, "%s", v);
    else if (strcmp(f, "max_per_user") == 0)
        out->max_per_user = (int)strtol(v, NULL, 10);
    else if (strcmp(f, "pow_difficulty") == 0)
        out->pow_difficulty = (int)strtol(v, NULL, 10);
    else if (strcmp(f, "partitions") == 0)
        out->partitions = partitions_of(v);
    else if (strcmp(f, "sold_out") == 0)
        out->sold_out = strcmp(v, "1") == 0;
    else if (strcmp(f, "sections") == 0 && sections && cap)
        snprintf(sections, cap, "%s", v);
}

/* HGETALL ev:<event> into out, and the optional fields asked for. */
static int event_get(q_status *s, int64_t event_id, q_event_state *out, char *sections, size_t cap,
                     char **names)
{
    if (sections && cap)
        sections[0] = '\0';
    /* "Unknown" first, so a failed read leaves it too: the event view
     * renders from PostgreSQL then and reads the crowd from *out. */
    *out = (q_event_state){
        .available = -1, .held = -1, .sold = -1, .waiting = -1, .pow_difficulty = -1};
    if (names)
        *names = NULL;
    redisReply *r = command_on_key(s, "HGETALL", "ev:", event_id);
    if (!r)
        return ONS_EREDIS;
    int rc = 0;
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = ONS_EREDIS;
    } else if (r->elements == 0) {
        rc = ONS_ENOTFOUND;
    } else {
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
            if (f && v)
                event_field(out, f, v, sections, cap, names);
        }
    }
    freeReplyObject(r);
    return rc;
}

int q_status_event_get(q_status *s, int64_t event_id, q_event_state *out)
{
    return event_get(s, event_id, out, NULL, 0, NULL);
}

int q_status_event_view_get(q_status *s, int64_t event_id, q_event_state *out, char *sections,
                            size_t cap)
{
    return event_get(s, event_id, out, sections, cap, NULL);
}

int q_status_event_get_names(q_status *s, int64_t event_id, q_event_state *out, char **names)
{
    int rc = event_get(s, event_id, out, NULL, 0, names);
    if (rc) {
        free(*names);
        *names = NULL;
    }
    return rc;
}

int q_status_event_set_section_names(q_status *s, int64_t event_id, const char *names)
{
    char k[256];
    key(s, k, sizeof k, "ev:%lld", (long long)event_id);
    const char *argv[] = {"HSET", k, "section_names", names};
    return simple(s, 4, argv);
}

char *q_section_names_encode(const char *const *names, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 24;
    char *out = malloc(len), *at = out;
    if (!out)
        return NULL;
    *at = '\0';
    for (size_t i = 0; i < n; i++)
        at += snprintf(at, len - (size_t)(at - out), "%zu:%s", strlen(names[i]), names[i]);
    return out;
}

int q_section_names_has(const char *names, const char *name)
{
    size_t want = strlen(name);
    for (const char *at = names; *at;) {
        char *end;
        unsigned long long len = strtoull(at, &end, 10);
        if (end == at || *end != ':' || strnlen(end + 1, (size_t)len) < len)
            return -1; /* not this encoding (damaged, or a later form): unknown */
        if (len == want && memcmp(end + 1, name, want) == 0)
            return 1;
        at = end + 1 + len;
    }
    return 0;
}

int q_status_event_set(q_status *s, int64_t event_id, const char *status, int64_t onsale_at_ms,
                       int max_per_user)
{
    char k[256], at[24], mpu[16];
    key(s, k, sizeof k, "ev:%lld", (long long)event_id);
    snprintf(at, sizeof at, "%lld", (long long)onsale_at_ms);
    snprintf(mpu, sizeof mpu, "%d", max_per_user);
    const char *argv[] = {"HSET", k, "status", status, "onsale_at_ms", at, "max_per_user", mpu};
    return simple(s, 8, argv);
}

int q_status_event_set_fair(q_status *s, int64_t event_id, int64_t prequeue_opens_at_ms,
                            int64_t max_active_holds, int64_t admissions_per_minute)
{
    char k[256], at[24], mh[24], apm[24];
    key(s, k, sizeof k, "ev:%lld", (long long)event_id);
    snprintf(at, sizeof at, "%lld", (long long)prequeue_opens_at_ms);
    snprintf(mh, sizeof mh, "%lld", (long long)max_active_holds);
    snprintf(apm, sizeof apm, "%lld", (long long)admissions_per_minute);
    const char *argv[] = {
        "HSET", k, "prequeue_opens_at_ms", at, "max_active_holds", mh, "admissions_per_minute",
        apm};
    return simple(s, 8, argv);
}

int q_status_pow_spend(q_status *s, const char *tag, int64_t ttl_ms)
{
    char k[256], ttl[24];
    key(s, k, sizeof k, "pow:%s", tag);
    snprintf(ttl, sizeof ttl, "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    const char *argv[] = {"SET", k, "1", "NX", "PX", ttl};
    redisReply *r = command(s, 6, argv, NULL);
    if (!r)
        return ONS_EREDIS;
    int rc = r->type == REDIS_REPLY_STATUS ? 0
             : r->type == REDIS_REPLY_NIL  ? ONS_EEXIST
                                           : ONS_EREDIS;
    freeReplyObject(r);
    return rc;
}

/* One integer field of the event's state hash. */
static int event_set_int(q_status *s, int64_t event_id, const char *field, int v)
{
    char k[256], d[16];
    key(s, k, sizeof k, "ev:%lld", (long long)event_id);
    snprintf(d, sizeof d, "%d", v);
    const char *argv[] = {"HSET", k, field, d};
    return simple(s, 4, argv);
}

int q_status_event_set_pow(q_status *s, int64_t event_id, int pow_difficulty)
{
    return event_set_int(s, event_id, "pow_difficulty", pow_difficulty);
}

int q_status_event_set_partitions(q_status *s, int64_t event_id, int partitions)
{
    return event_set_int(s, event_id, "partitions", partitions);
}
