/* httpd_gate.c - the accept gate in front of nng's HTTP server; see
 * httpd.h ("the accept gate") for what it enforces and why.
 *
 * How: nng 1.5.2 (libnng.so) calls accept(2), readv(2), shutdown(2),
 * close(2) and sendmsg(2) through the dynamic linker, and a definition in
 * the executable comes first in the lookup order, so the wrappers below see
 * every client socket nng accepts, every byte nng reads from one and every
 * shutdown and close; sendmsg tells which descriptor is which nng
 * connection (ons_httpd_conn_fd, httpd.h). The
 * real functions are found with dlsym(RTLD_NEXT) (libc, or the sanitizer's
 * interceptor when it is loaded). This object is linked only into the
 * executables that call ons_httpd_gate_start(); until then, and for every
 * descriptor that is not an admitted client, the wrappers only pass
 * through (one array bound check).
 *
 * Per client descriptor a slot holds the scanner of its request stream
 * (httpd_head.h), so each request head is judged before nng parses it:
 * nng drops a head over its 8 KiB buffer without an answer, closes the
 * connection without one on bytes it cannot parse, answers some heads with
 * HTML, misframes a "Content-Length :" header, and its 1.5.2 URI decoder
 * reads past the end of a path ending in a percent-escape
 * (nanomsg/nng#1594). A refused head gets its JSON answer written here and
 * nng is told the peer closed.
 *
 * With an answer hook (ons_httpd_gate_opts.answer, httpd.h), the whole
 * requests at the start of a read that begins between requests are
 * offered to the server and, when it answers them from memory, answered
 * here and never given to nng (answer_at_gate).
 *
 * Threads: accept runs on nng's poller or task threads; readv for one
 * descriptor runs on one thread at a time (nng serialises reads per
 * connection), so the scanner is that reader's; the sweeper thread reads
 * only the atomic fields. g.mu orders admission, close and the
 * sweeper's shutdown() so the sweeper never touches a descriptor that has
 * been closed and reused.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include "common/clock.h"
#include "common/err.h"
#include "common/httpd.h"
#include "common/httpd_head.h"
#include "common/log.h"
#include "common/recycle.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sched.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

typedef struct slot {
    atomic_int client; /* 1 while the descriptor is an admitted client */
    atomic_llong last_rx_ms;
    /* When the head being read began (the accept, for a connection's
     * first head): the header timeout counts from here, not from the last
     * byte, so a head sent a byte at a time cannot hold a connection
     * open past it (slowloris). Written by the reader, read by the sweeper. */
    atomic_llong head_start_ms;
    int killed;   /* shut down by the sweeper; guarded by g.mu */
    int answered; /* a refusal was written: every later read is end-of-file */
    /* A head refused behind whole requests in the same read: nng is given
     * those requests, and the refusal is written (and end-of-file read) at
     * nng's next read, once their answers are written. Reader's own. */
    const ons_http_refusal *refused;
    /* The start of a head that a read left unfinished at the end of nng's
     * buffer, held back from nng and given at its next read (readv).
     * Reader's own; freed at close. */
    unsigned char *held;
    size_t held_len, held_off;
    /* > 0: held starts with the body of this many bytes of the last head
     * nng was given (hold_body), for ons_httpd_take_body. Reader's own. */
    size_t held_body;
    atomic_int overflow; /* a head ran into the end of nng's buffer: 431 at close */
    atomic_int drain;    /* the gate answered: read what the client sent on before closing */
    /* The nng connection learned to own this descriptor (sendmsg), NULL
     * until then and from close. */
    _Atomic(nng_http_conn *) conn;
    /* The rest of an answer made at the gate that the socket took only in
     * part (answer_at_gate): sent before any byte nng writes (sendmsg),
     * by the sweeper, or at close. out_busy (0/1) guards out, out_len and
     * out_off; out_pending says out is set. */
    atomic_int out_busy, out_pending;
    char *out;
    size_t out_len, out_off;
    size_t out_counted; /* of out, what unsent_total holds; under out_busy */
    /* The bytes a write of nng's on the socket holds while the socket has
     * not taken it whole (owe: its largest offer), in unsent_total. */
    atomic_llong unsent;
    /* Budget reserved for answers on this connection that no send has
     * counted yet (ons_httpd_unsent_reserve), in unsent_total: released
     * as a fresh write's first send counts its bytes (note_sent), as the
     * gate sends an answer it made (send_answer), or at close. */
    atomic_llong reserved;
    /* When a send on the socket last made progress, or the connection
     * began to owe bytes (the send timeout counts from here). */
    atomic_llong last_tx_ms;
    /* The socket's kernel send queue at the sweeper's last look while
     * bytes were owed (sweeper's own): a queue that shrank is a client
     * reading, though nng had no reason to send since (send_progress). */
    long long outq_seen;
    /* The drain rate's window (send_min_rate, sweeper's own): when it
     * began (0: none, nothing owed) and the bytes the client had acked
     * then (tcpi_bytes_acked). */
    long long win_start_ms;
    unsigned long long win_acked;
    unsigned win_admit; /* admits when outq_seen and the window were the client's */
    /* The reservation's backstop (sweeper's own, reserve_backstop): since
     * when reserved has stood at res_seen while nothing was owed (0: not),
     * for the client of admission res_admit. */
    long long res_since_ms, res_seen;
    unsigned res_admit;
    atomic_uint admits; /* bumped as each client is admitted on the descriptor */
    /* Idle connections read on the gate's own threads (steal, below).
     * parked: the reader's last readv ended between requests with nothing
     * of nng's in flight (reader's own; read by nng's epoll_ctl on the
     * same thread). steal_busy (0/1) guards the rest against the gate's
     * threads, nng's epoll_ctl and close. */
    atomic_int parked;
    /* The gate's threads last gave this connection back having answered
     * nothing of a read (a join, a page): it stays with nng until a read
     * on nng's thread is answered at the gate again, so a client that
     * sends what the gate does not answer pays no extra hand-off. */
    atomic_int not_gated;
    atomic_int steal_busy;
    int stolen;   /* the gate's threads wait to read it; nng's arm is kept */
    unsigned gen; /* bumped at close: a gate thread's event for an older socket is dropped */
    int nng_epfd; /* nng's arm, given back with the connection */
    uint32_t nng_events;
    epoll_data_t nng_data;
    /* Bytes a gate thread read and did not answer: nng's next reads get
     * them before the socket's (readv). Written under steal_busy while
     * stolen, then the reader's. */
    unsigned char *pb;
    size_t pb_len, pb_off;
    /* A request taken at the gate whose answer comes later (a join,
     * ons_httpd_later): later_owed while its answer is not sent; nothing
     * of the connection is read meanwhile. later_waiting: its reader is
     * done and the connection waits for that answer, armed nowhere (stolen
     * set, nng's arm kept). later_waiting guarded by steal_busy. */
    atomic_int later_owed;
    int later_waiting;
    ons_http_head head; /* the request stream, judged by the reader */
} slot;

/* Where ons_httpd_conn_fd finds a connection's descriptor: a table indexed
 * by a hash of the connection's address, CONN_PROBES entries tried from
 * there, each holding a descriptor + 1 (0: none). An entry is only a hint:
 * the descriptor's slot must still name the connection, so a stale or
 * overwritten entry costs one answer through nng (which learns it again),
 * never a write to another client. */
#define CONN_TABLE  (1 << 16)
#define CONN_PROBES 4
static atomic_int conn_table[CONN_TABLE];

/* Answer bytes accepted but not yet written, over every gated socket
 * (ons_httpd_unsent_bytes): each slot's unsent and out_counted. */
static atomic_llong unsent_total;

long long ons_httpd_unsent_bytes(void)
{
    return atomic_load_explicit(&unsent_total, memory_order_relaxed);
}

/* Releases up to max bytes of s's reservation from unsent_total. */
static void unreserve(slot *s, long long max)
{
    long long r = atomic_load_explicit(&s->reserved, memory_order_relaxed);
    while (r > 0) {
        long long take = r < max ? r : max;
        if (atomic_compare_exchange_weak(&s->reserved, &r, r - take)) {
            atomic_fetch_sub_explicit(&unsent_total, take, memory_order_relaxed);
            return;
        }
    }
}

/* Sets s's count of nng's unsent bytes to v; progressed: the kernel took
 * some bytes of the socket's answers just now. The clock is read only
 * while something is owed, so a socket that takes every answer whole (the
 * common case) pays one relaxed load. */
static void unsent_set(slot *s, long long v, int progressed)
{
    long long old = atomic_load_explicit(&s->unsent, memory_order_relaxed);
    if (v == 0 && old == 0)
        return;
    atomic_store_explicit(&s->unsent, v, memory_order_relaxed);
    atomic_fetch_add_explicit(&unsent_total, v - old, memory_order_relaxed);
    if (progressed || old == 0)
        atomic_store_explicit(&s->last_tx_ms, ons_mono_ms(), memory_order_relaxed);
}

static struct {
    pthread_mutex_t mu;
    ons_httpd_gate_opts o;
    slot *slots;
    atomic_int nslots;    /* stored after slots */
    atomic_int listen_fd; /* -1: gate off */
    long long cap;        /* clients admitted at most: max_connections, or fewer when
                           * the open-file limit leaves less beside reserved_fds */
    int spare;            /* held for accepting-to-refuse when at EMFILE; -1 none */
    atomic_int open;
    atomic_llong crowded_until_ms;
    pthread_t sweeper;
    int sweeping;
    /* The descriptors with a kept answer rest, each armed once for
     * writability (EPOLLONESHOT), and the thread that sends on as their
     * clients read (flusher). -1: none. */
    int out_epfd;
    pthread_t flusher;
    int flushing;
    pthread_cond_t cv;
    int stop;
    /* The port a server is about to listen on (ons_httpd_gate_arm), until
     * the gate has started: its accepted clients wait on arm_cv. */
    atomic_int arm_port;
    pthread_cond_t arm_cv;
    ons_httpd_rid rid; /* X-Request-Id of the gate's own answers */
    /* The gate's reader threads (steal) and their epoll set; -1: none. */
    int steal_epfd;
    atomic_int steal_on;
    pthread_t stealers[ONS_HTTPD_GATE_THREADS_MAX];
    int nstealers;
    /* Connections given back to nng with bytes for it already read
     * (pb): nng's next event for each is made to include EPOLLIN
     * (epoll_wait). Guarded by kick_mu; nkicked also read without it. */
    pthread_mutex_t kick_mu;
    struct kick {
        int fd, epfd;
        void *ptr;
    } * kicked;
    int kick_cap;
    atomic_int nkicked;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .cv = PTHREAD_COND_INITIALIZER,
       .arm_cv = PTHREAD_COND_INITIALIZER,
       .kick_mu = PTHREAD_MUTEX_INITIALIZER,
       .listen_fd = -1,
       .spare = -1,
       .out_epfd = -1,
       .steal_epfd = -1};

typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef ssize_t (*readv_fn)(int, const struct iovec *, int);
typedef int (*close_fn)(int);
typedef int (*shutdown_fn)(int, int);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef int (*epoll_ctl_fn)(int, int, int, struct epoll_event *);
typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);

static void *real(const char *name, _Atomic(void *) *cache)
{
    void *f = atomic_load_explicit(cache, memory_order_acquire);
    if (!f) {
        f = dlsym(RTLD_NEXT, name);
        atomic_store_explicit(cache, f, memory_order_release);
    }
    return f;
}

static _Atomic(void *) real_accept, real_readv, real_close, real_shutdown, real_sendmsg,
    real_epoll_ctl, real_epoll_wait;

static ssize_t sys_readv(int fd, const struct iovec *iov, int iovcnt)
{
    return ((readv_fn)real("readv", &real_readv))(fd, iov, iovcnt);
}

static int sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    return ((epoll_ctl_fn)real("epoll_ctl", &real_epoll_ctl))(epfd, op, fd, ev);
}

static int sys_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    return ((epoll_wait_fn)real("epoll_wait", &real_epoll_wait))(epfd, ev, max, timeout);
}

static int sys_close(int fd)
{
    return ((close_fn)real("close", &real_close))(fd);
}

static int sys_shutdown(int fd, int how)
{
    return ((shutdown_fn)real("shutdown", &real_shutdown))(fd, how);
}

static void count(ons_counter *c)
{
    if (c)
        ons_counter_add(c, 1);
}

/* Sends buf[0..n) without blocking, as much as the socket takes now;
 * returns the bytes it took (errno says why it stopped short). */
static size_t send_some(int fd, const char *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t k = send(fd, buf + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    return off;
}

/* Sends the last bytes a connection gets (a refusal, or what is left of
 * an answer made at the gate when it closes) without blocking. When the
 * send buffer is full (answers before them that a slow client has not
 * read yet), the buffer is grown by their size once, so they queue behind
 * them; a client with more unread than the unprivileged limit allows
 * loses them. */
static void send_last(int fd, const char *buf, size_t n)
{
    size_t sent = send_some(fd, buf, n);
    if (sent < n && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        int cur = 0;
        socklen_t cl = sizeof cur;
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &cl) == 0 && cur > 0) {
            /* the kernel doubles what it is given */
            size_t rest = n - sent < 4096 ? 4096 : n - sent < (1u << 20) ? n - sent : 1u << 20;
            int want = cur / 2 + (int)rest;
            (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
            (void)send_some(fd, buf + sent, n - sent); /* the rest, in order */
        }
    }
}

/* Reservations for answers on connections whose descriptor is not known
 * yet (a fresh connection's answer through nng's response object): each
 * is released by the first fresh send, on a connection with no
 * reservation of its own, that offers the answer (len up to len + a
 * head's FLOAT_HEAD bytes: the write that carries it), or by the sweeper
 * once older than FLOAT_MAX_MS (an answer never written: its connection
 * ended first). Past FLOATS pending, the rest go into one overflow total,
 * released whole by the sweeper once its oldest is FLOAT_MAX_MS old: such
 * answers are counted up to that long after their sends counted them too
 * (over, never under), where refusing them would make the table's size a
 * second, hidden budget. */
#define FLOATS       64
#define FLOAT_HEAD   16384
#define FLOAT_MAX_MS 2000
static struct {
    pthread_mutex_t mu;
    atomic_int n; /* entries in use; read without mu first */
    long long len[FLOATS];
    int64_t at_ms[FLOATS];
    /* the smallest len pending (LLONG_MAX: none): a send shorter than it
     * (every join's and poll's answer) carries none, and skips mu */
    atomic_llong min_len;
    long long over;     /* the overflow total, in unsent_total */
    int64_t over_at_ms; /* when its oldest was added */
} floats = {.mu = PTHREAD_MUTEX_INITIALIZER, .min_len = LLONG_MAX};

static void float_add(long long len)
{
    int ok = 0;
    pthread_mutex_lock(&floats.mu);
    for (int i = 0; i < FLOATS && !ok; i++) {
        if (!floats.len[i]) {
            floats.len[i] = len;
            floats.at_ms[i] = ons_mono_ms();
            atomic_fetch_add(&floats.n, 1);
            if (len < atomic_load_explicit(&floats.min_len, memory_order_relaxed))
                atomic_store_explicit(&floats.min_len, len, memory_order_relaxed);
            ok = 1;
        }
    }
    if (!ok) {
        if (!floats.over) { /* one entry of n while it holds any: the sweeper looks */
            floats.over_at_ms = ons_mono_ms();
            atomic_fetch_add(&floats.n, 1);
        }
        floats.over += len;
    }
    pthread_mutex_unlock(&floats.mu);
}

/* Releases the oldest reservation a send of t bytes carries (t > 0), or
 * every one older than FLOAT_MAX_MS at now (t == 0). */
static void float_release(size_t t, int64_t now)
{
    if (!atomic_load_explicit(&floats.n, memory_order_relaxed) ||
        (t && (long long)t < atomic_load_explicit(&floats.min_len, memory_order_relaxed)))
        return;
    pthread_mutex_lock(&floats.mu);
    int pick = -1;
    for (int i = 0; i < FLOATS; i++) {
        if (!floats.len[i])
            continue;
        if (!t && now - floats.at_ms[i] >= FLOAT_MAX_MS) {
            atomic_fetch_sub_explicit(&unsent_total, floats.len[i], memory_order_relaxed);
            floats.len[i] = 0;
            atomic_fetch_sub(&floats.n, 1);
        } else if (t && (size_t)floats.len[i] <= t && t <= (size_t)floats.len[i] + FLOAT_HEAD &&
                   (pick < 0 || floats.at_ms[i] < floats.at_ms[pick])) {
            pick = i;
        }
    }
    if (pick >= 0) {
        atomic_fetch_sub_explicit(&unsent_total, floats.len[pick], memory_order_relaxed);
        floats.len[pick] = 0;
        atomic_fetch_sub(&floats.n, 1);
    }
    long long min = LLONG_MAX;
    for (int i = 0; i < FLOATS; i++)
        if (floats.len[i] && floats.len[i] < min)
            min = floats.len[i];
    atomic_store_explicit(&floats.min_len, min, memory_order_relaxed);
    if (!t && floats.over && now - floats.over_at_ms >= FLOAT_MAX_MS) {
        atomic_fetch_sub_explicit(&unsent_total, floats.over, memory_order_relaxed);
        floats.over = 0;
        atomic_fetch_sub(&floats.n, 1);
    }
    pthread_mutex_unlock(&floats.mu);
}

int ons_httpd_unsent_reserve(long long len, long long budget, int fd)
{
    long long cur = atomic_load_explicit(&unsent_total, memory_order_relaxed);
    do {
        /* one answer larger than the whole budget goes when nothing is owed */
        if (cur != 0 && cur + len > budget)
            return 0;
    } while (!atomic_compare_exchange_weak(&unsent_total, &cur, cur + len));
    /* floats need the gate's sends and its sweeper (set while it runs);
     * without the gate nothing is counted, so nothing may stay reserved */
    if (!atomic_load_explicit(&ons_httpd_conn_fd, memory_order_acquire))
        return 2;
    if (fd < 0 || fd >= g.nslots || !atomic_load(&g.slots[fd].client)) {
        float_add(len);
        return 1;
    }
    /* close clears client before it releases the slot's reservation: a
     * close between the check above and this add either finds len there
     * and releases it, or this finds client cleared and takes len back
     * (each release a compare-and-swap: never both) */
    atomic_fetch_add(&g.slots[fd].reserved, len);
    if (!atomic_load(&g.slots[fd].client))
        unreserve(&g.slots[fd], len);
    return 1;
}

void ons_httpd_unsent_release(long long len)
{
    atomic_fetch_sub_explicit(&unsent_total, len, memory_order_relaxed);
}

/* ---- the rest of an answer made at the gate ------------------------------------ */

static int out_trylock(slot *s)
{
    int z = 0;
    return atomic_compare_exchange_strong(&s->out_busy, &z, 1);
}

static void out_unlock(slot *s)
{
    atomic_store(&s->out_busy, 0);
}

/* Brings unsent_total up to date with s's pending answer bytes; the
 * caller holds out_busy. progressed: the socket just took some. */
static void out_count(slot *s, int progressed)
{
    size_t v = s->out ? s->out_len - s->out_off : 0;
    if (v == s->out_counted && !progressed)
        return;
    if (progressed || s->out_counted == 0)
        atomic_store_explicit(&s->last_tx_ms, ons_mono_ms(), memory_order_relaxed);
    atomic_fetch_add_explicit(&unsent_total, (long long)v - (long long)s->out_counted,
                              memory_order_relaxed);
    s->out_counted = v;
}

/* Drops s's pending answer bytes; the caller holds out_busy. */
static void out_clear(slot *s)
{
    free(s->out);
    s->out = NULL;
    s->out_len = s->out_off = 0;
    out_count(s, 0);
    atomic_store_explicit(&s->out_pending, 0, memory_order_release);
}

/* Sends what the socket takes of s's pending answer bytes; the caller
 * holds out_busy. A failed send (the peer left) drops them: nng then
 * meets the error itself. */
static void out_send(int fd, slot *s)
{
    size_t k = send_some(fd, s->out + s->out_off, s->out_len - s->out_off);
    int gone = s->out_off + k < s->out_len && errno != EAGAIN && errno != EWOULDBLOCK;
    s->out_off += k;
    if (s->out_off == s->out_len || gone)
        out_clear(s);
    else
        out_count(s, k > 0);
}

/* 1 when fd has no answer bytes of the gate left to send (after sending
 * what the socket takes now), else 0: nothing nng writes may go first. */
static int out_flushed(int fd, slot *s)
{
    if (!atomic_load_explicit(&s->out_pending, memory_order_acquire))
        return 1;
    if (!out_trylock(s))
        return 0;
    if (s->out)
        out_send(fd, s);
    int done = !s->out;
    out_unlock(s);
    return done;
}

/* When an answer made at the gate is not all sent on fd, buf[0..n) is
 * queued behind it (sent with its rest, at the latest at close): 1; else
 * 0 and the caller sends buf itself. */
static int queue_behind(int fd, const char *buf, size_t n)
{
    if (fd < 0 || fd >= g.nslots)
        return 0;
    slot *s = &g.slots[fd];
    if (!atomic_load_explicit(&s->out_pending, memory_order_acquire) || out_flushed(fd, s))
        return 0;
    while (!out_trylock(s))
        sched_yield();
    int queued = 0;
    if (s->out) {
        char *b = realloc(s->out, s->out_len + n);
        if (b) {
            memcpy(b + s->out_len, buf, n);
            s->out = b;
            s->out_len += n;
            out_count(s, 0);
        }
        queued = 1; /* out of memory: the refusal is lost, never sent ahead */
    }
    out_unlock(s);
    return queued;
}

/* Sends what is left of an answer made at the gate before the connection
 * is shut down or closed (growing the send buffer once, send_last). */
static void out_finish(int fd)
{
    slot *s = &g.slots[fd];
    if (!atomic_load(&s->out_pending))
        return;
    while (!out_trylock(s))
        sched_yield(); /* the sweeper may be sending some of it */
    if (s->out)
        send_last(fd, s->out + s->out_off, s->out_len - s->out_off);
    out_clear(s);
    out_unlock(s);
}

/* Writes a whole small JSON error response to fd without blocking and
 * says the connection closes. When the send buffer is full (answers before
 * it that a slow client has not read yet), the buffer is grown by the
 * answer's size once, so the refusal queues behind them; a client with
 * more unread than the unprivileged limit allows loses the refusal only. */
static void answer(int fd, int status, const char *code, const char *message)
{
    char body[256], buf[640], rid[24];
    ons_httpd_rid_next(&g.rid, "", rid, sizeof rid);
    int bl = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                      message);
    int n = snprintf(
        buf, sizeof buf,
        "HTTP/1.1 %d %s\r\nX-Request-Id: %s\r\nContent-Type: application/json\r\n"
        "Content-Length: %d\r\nCache-Control: no-store\r\n%sConnection: close\r\n\r\n%s",
        status, ons_httpd_reason(status), rid, bl, status == 503 ? "Retry-After: 1\r\n" : "", body);
    if (n <= 0 || (size_t)n >= sizeof buf)
        return;
    if (queue_behind(fd, buf, (size_t)n))
        return;
    send_last(fd, buf, (size_t)n);
}

/* Reads and drops what the client sent after the head the gate answered
 * (the rest of an oversized head, requests pipelined behind it), without
 * blocking and at most 256 KiB: a socket closed with unread input is reset
 * by the kernel, which throws away the answers still in its send queue. */
static void drain_input(int fd)
{
    char sink[16384];
    for (int i = 0; i < 16; i++)
        if (recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0)
            break;
}

static void refuse(int fd)
{
    answer(fd, 503, "overloaded", "Too many open connections; retry shortly.");
    sys_close(fd);
    count(g.o.refused);
    atomic_store(&g.crowded_until_ms, ons_mono_ms() + 1000);
}

/* ---- idle connections on the gate's threads -------------------------------------- */

/* nng 1.5.2 reads every connection on its one poller thread, so answers
 * at the gate (answer_at_gate) all ran there. A connection nng waits on
 * between requests, with nothing of its own in flight, is read by the
 * gate's threads instead: when nng arms its epoll for input only on a
 * connection whose last read ended so (parked), the gate keeps nng's arm
 * (epoll_ctl below) and arms the socket in its own epoll set. A gate
 * thread reads it, answers the whole requests at the start of the read
 * that the server answers at once, and arms it again; the first request
 * it does not answer and everything after it are kept (pb) and the
 * connection given back to nng: nng's arm is made with EPOLLOUT added and
 * its next event for it is given EPOLLIN (epoll_wait below), so nng
 * reads at once and gets the kept bytes first (readv). End of stream or
 * an error is given back as it is (nng's own arm reports it). nng
 * disarming or removing the socket (its close) takes the connection back
 * first. One reader at a time still: nng does not read a connection the
 * gate holds, and a gate thread reads only while it holds it. */

static void steal_lock(slot *s)
{
    int z = 0;
    while (!atomic_compare_exchange_weak(&s->steal_busy, &z, 1)) {
        z = 0;
        sched_yield();
    }
}

static void steal_unlock(slot *s)
{
    atomic_store(&s->steal_busy, 0);
}

/* fd's entry in the kicked list goes (its event came, or it closed). */
static void kick_remove_locked(int k)
{
    int n = atomic_load_explicit(&g.nkicked, memory_order_relaxed);
    g.kicked[k] = g.kicked[n - 1];
    atomic_store_explicit(&g.nkicked, n - 1, memory_order_release);
}

static void kick_forget(int fd)
{
    if (atomic_load_explicit(&g.nkicked, memory_order_acquire) == 0)
        return;
    pthread_mutex_lock(&g.kick_mu);
    for (int k = 0; k < atomic_load_explicit(&g.nkicked, memory_order_relaxed); k++)
        if (g.kicked[k].fd == fd) {
            kick_remove_locked(k);
            break;
        }
    pthread_mutex_unlock(&g.kick_mu);
}

/* nng's next event for fd (on epfd, its data ptr) is to include EPOLLIN.
 * 0, or -1 when out of memory. */
static int kick_add(int fd, int epfd, void *ptr)
{
    pthread_mutex_lock(&g.kick_mu);
    int n = atomic_load_explicit(&g.nkicked, memory_order_relaxed);
    for (int k = 0; k < n; k++)
        if (g.kicked[k].fd == fd) {
            pthread_mutex_unlock(&g.kick_mu);
            return 0;
        }
    if (n == g.kick_cap) {
        int cap = g.kick_cap ? 2 * g.kick_cap : 64;
        struct kick *k = realloc(g.kicked, (size_t)cap * sizeof *k);
        if (!k) {
            pthread_mutex_unlock(&g.kick_mu);
            return -1;
        }
        g.kicked = k;
        g.kick_cap = cap;
    }
    g.kicked[n] = (struct kick){.fd = fd, .epfd = epfd, .ptr = ptr};
    atomic_store_explicit(&g.nkicked, n + 1, memory_order_release);
    pthread_mutex_unlock(&g.kick_mu);
    return 0;
}

/* The socket in the gate's epoll set, for one event (EPOLLONESHOT). */
static int steal_arm(int fd, slot *s)
{
    struct epoll_event me = {.events = EPOLLIN | EPOLLONESHOT,
                             .data.u64 = (uint64_t)(unsigned)fd | ((uint64_t)s->gen << 32)};
    if (sys_epoll_ctl(g.steal_epfd, EPOLL_CTL_MOD, fd, &me) == 0)
        return 0;
    return errno == ENOENT ? sys_epoll_ctl(g.steal_epfd, EPOLL_CTL_ADD, fd, &me) : -1;
}

/* Gives a held connection back to nng, with its arm; when bytes were
 * kept for it, nng is woken for them (the socket may hold none). The
 * caller holds steal_busy. */
static void give_back(int fd, slot *s)
{
    s->stolen = 0;
    atomic_store_explicit(&s->parked, 0, memory_order_relaxed);
    struct epoll_event ev = {.events = s->nng_events, .data = s->nng_data};
    if (s->pb) {
        ev.events |= EPOLLOUT;
        if (kick_add(fd, s->nng_epfd, s->nng_data.ptr) != 0) {
            /* Out of memory: nng is not woken for them; end the connection
             * (nng reads the kept bytes, then the end of the stream). */
            sys_shutdown(fd, SHUT_RDWR);
        }
    }
    (void)sys_epoll_ctl(s->nng_epfd, EPOLL_CTL_MOD, fd, &ev);
}

static size_t answer_at_gate(int fd, slot *s, const char *p, size_t n, int *later);
static int keep_for_nng(int fd, slot *s, const char *p, size_t n);

/* A gate thread took a request for later (ons_httpd_later) from a held
 * connection: what came behind it in the read (p[0..n)) is kept for nng
 * and the connection waits, armed nowhere, for the answer (later_done
 * gives it on). 1 when it waits; 0 when the answer is sent already (the
 * caller goes on as after any read; that cannot be while it holds
 * steal_busy, but debug_later_unheld ends here too). The caller holds
 * steal_busy. */
static int wait_held_for_later(int fd, slot *s, const char *p, size_t n)
{
    if (!atomic_load_explicit(&s->later_owed, memory_order_acquire) || g.o.debug_later_unheld)
        return 0;
    (void)keep_for_nng(fd, s, p, n);
    s->later_waiting = 1; /* stolen stays set: nng's arm is kept */
    return 1;
}

/* The gate's read of a held connection, on a gate thread: one event of
 * the socket in the gate's epoll set. buf has room for STEAL_READ bytes. */
#define STEAL_READ 8192
static void serve_held(int fd, unsigned gen, char *buf)
{
    if (fd < 0 || fd >= g.nslots)
        return;
    slot *s = &g.slots[fd];
    steal_lock(s);
    if (!s->stolen || s->gen != gen) {
        steal_unlock(s);
        return;
    }
    struct iovec iov = {.iov_base = buf, .iov_len = STEAL_READ};
    ssize_t n = sys_readv(fd, &iov, 1);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (steal_arm(fd, s) != 0)
            give_back(fd, s);
        steal_unlock(s);
        return;
    }
    if (n > 0) {
        atomic_store_explicit(&s->last_rx_ms, ons_mono_ms(), memory_order_relaxed);
        int later = 0;
        size_t done = out_flushed(fd, s) ? answer_at_gate(fd, s, buf, (size_t)n, &later) : 0;
        if (later && wait_held_for_later(fd, s, buf + done, (size_t)n - done)) {
            steal_unlock(s);
            return;
        }
        if (done == (size_t)n && atomic_load(&g.steal_on) && steal_arm(fd, s) == 0) {
            steal_unlock(s);
            return;
        }
        if (done == 0)
            atomic_store_explicit(&s->not_gated, 1, memory_order_relaxed);
        (void)keep_for_nng(fd, s, buf + done, (size_t)n - done); /* lost: nng reads the end */
    }
    give_back(fd, s);
    steal_unlock(s);
}

static void *stealer(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "gate:read");
    char *buf = malloc(STEAL_READ);
    struct epoll_event ev[64];
    while (buf && atomic_load(&g.steal_on)) {
        int n = sys_epoll_wait(g.steal_epfd, ev, 64, 100);
        for (int i = 0; i < n; i++)
            serve_held((int)(ev[i].data.u64 & 0xffffffffu), (unsigned)(ev[i].data.u64 >> 32), buf);
    }
    free(buf);
    return NULL;
}

/* nng's read of a connection served from what a gate thread kept (pb). */
static ssize_t give_kept(slot *s, const struct iovec *iov, int iovcnt)
{
    size_t k = 0;
    for (int i = 0; i < iovcnt && s->pb_off < s->pb_len; i++) {
        size_t m = s->pb_len - s->pb_off;
        if (m > iov[i].iov_len)
            m = iov[i].iov_len;
        memcpy(iov[i].iov_base, s->pb + s->pb_off, m);
        s->pb_off += m;
        k += m;
    }
    if (s->pb_off == s->pb_len) {
        free(s->pb);
        s->pb = NULL;
    }
    return (ssize_t)k;
}

/* nng arms a connection for its next request while the answer of one
 * taken at the gate for later is owed (ons_httpd_later): its arm is kept
 * and the socket armed nowhere until the answer is sent (later_done), so
 * nothing behind that request is read before its answer. 1 when held.
 * The caller holds steal_busy. */
static int hold_for_later(int fd, slot *s, int epfd, int op, const struct epoll_event *ev)
{
    (void)fd;
    if (!atomic_load_explicit(&s->later_owed, memory_order_acquire) || op != EPOLL_CTL_MOD || !ev ||
        ev->events != (EPOLLIN | EPOLLONESHOT | EPOLLERR))
        return 0;
    s->nng_epfd = epfd;
    s->nng_events = ev->events;
    s->nng_data = ev->data;
    s->stolen = 1;
    s->later_waiting = 1;
    return 1;
}

/* nng (re)arms, disarms or removes a socket in its epoll set. A client
 * connection nng arms for input only, parked between requests, is held
 * by the gate instead (the socket in the gate's set, nng's arm kept).
 * Anything else nng asks of a held connection takes it back first. */
int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (fd < 0 || fd >= g.nslots || epfd < 0 || epfd == g.steal_epfd || epfd == g.out_epfd ||
        !atomic_load_explicit(&g.slots[fd].client, memory_order_acquire) || (op == EPOLL_CTL_ADD) ||
        (g.steal_epfd < 0 && !g.o.answer_later))
        return sys_epoll_ctl(epfd, op, fd, ev);
    slot *s = &g.slots[fd];
    steal_lock(s);
    if (s->stolen) {
        s->stolen = 0;
        s->later_waiting = 0;
        struct epoll_event none = {0};
        if (g.steal_epfd >= 0)
            (void)sys_epoll_ctl(g.steal_epfd, EPOLL_CTL_DEL, fd, &none);
    }
    if (hold_for_later(fd, s, epfd, op, ev)) {
        steal_unlock(s);
        return 0;
    }
    if (op == EPOLL_CTL_MOD && ev && ev->events == (EPOLLIN | EPOLLONESHOT | EPOLLERR) && !s->pb &&
        (g.o.debug_hold_unparked || (atomic_load_explicit(&s->parked, memory_order_relaxed) &&
                                     !atomic_load_explicit(&s->not_gated, memory_order_relaxed))) &&
        atomic_load_explicit(&g.steal_on, memory_order_relaxed)) {
        s->nng_epfd = epfd;
        s->nng_events = ev->events;
        s->nng_data = ev->data;
        if (steal_arm(fd, s) == 0) {
            s->stolen = 1;
            steal_unlock(s);
            return 0;
        }
    }
    int rc;
    if (op == EPOLL_CTL_MOD && ev && s->pb) {
        /* bytes kept for nng and maybe none in the socket: wake nng */
        struct epoll_event e = *ev;
        e.events |= EPOLLOUT;
        s->nng_epfd = epfd;
        s->nng_data = ev->data;
        (void)kick_add(fd, epfd, ev->data.ptr);
        rc = sys_epoll_ctl(epfd, op, fd, &e);
    } else {
        rc = sys_epoll_ctl(epfd, op, fd, ev);
    }
    steal_unlock(s);
    return rc;
}

/* nng's poller: an event of a connection given back with kept bytes
 * (give_back) includes EPOLLIN, so nng reads them. */
int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    int n = sys_epoll_wait(epfd, ev, max, timeout);
    if (n <= 0 || atomic_load_explicit(&g.nkicked, memory_order_acquire) == 0)
        return n;
    pthread_mutex_lock(&g.kick_mu);
    for (int i = 0; i < n && atomic_load_explicit(&g.nkicked, memory_order_relaxed) > 0; i++)
        for (int k = 0; k < atomic_load_explicit(&g.nkicked, memory_order_relaxed); k++)
            if (g.kicked[k].epfd == epfd && g.kicked[k].ptr == ev[i].data.ptr) {
                ev[i].events |= EPOLLIN;
                kick_remove_locked(k);
                break;
            }
    pthread_mutex_unlock(&g.kick_mu);
    return n;
}

/* ---- the wrappers ------------------------------------------------------------ */

static void admit(int nfd);
static int listener_port(int fd);

/* A client just accepted on fd while a gate is armed: when fd listens on
 * the armed port, waits until the gate has started (or given up), so the
 * client is admitted (or refused) like any other. Startup only: the arm
 * is lifted when ons_httpd_gate_start returns. */
static void wait_for_gate(int fd)
{
    int port = atomic_load_explicit(&g.arm_port, memory_order_acquire);
    if (port <= 0 || listener_port(fd) != port)
        return;
    pthread_mutex_lock(&g.mu);
    while (atomic_load(&g.arm_port) == port)
        pthread_cond_wait(&g.arm_cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
}

void ons_httpd_gate_arm(int port)
{
    pthread_mutex_lock(&g.mu);
    atomic_store(&g.arm_port, port > 0 ? port : 0);
    pthread_cond_broadcast(&g.arm_cv);
    pthread_mutex_unlock(&g.mu);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    accept_fn f = (accept_fn)real("accept", &real_accept);
    int nfd = f(fd, addr, len);
    if (nfd >= 0 && atomic_load_explicit(&g.arm_port, memory_order_acquire) > 0)
        wait_for_gate(fd);
    if (fd < 0 || fd != atomic_load_explicit(&g.listen_fd, memory_order_acquire))
        return nfd;
    if (nfd < 0 && (errno == EMFILE || errno == ENFILE)) {
        /* Out of descriptors: nng would retry at once, forever. Free the
         * spare, take the waiting client, refuse it, take the spare back. */
        pthread_mutex_lock(&g.mu);
        if (g.spare >= 0) {
            sys_close(g.spare);
            g.spare = -1;
            nfd = f(fd, addr, len);
            if (nfd >= 0)
                refuse(nfd);
            g.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        int have_spare = g.spare >= 0;
        pthread_mutex_unlock(&g.mu);
        if (nfd >= 0) {
            errno = ECONNABORTED; /* nng skips it and accepts the next */
            return -1;
        }
        if (!have_spare)
            usleep(10000); /* nothing to refuse with: slow the retry down */
        errno = EAGAIN;
        return -1;
    }
    if (nfd < 0)
        return nfd;
    if (nfd >= g.nslots || atomic_load(&g.open) >= g.cap) {
        refuse(nfd);
        pthread_mutex_lock(&g.mu);
        pthread_cond_signal(&g.cv); /* sweep now */
        pthread_mutex_unlock(&g.mu);
        errno = ECONNABORTED;
        return -1;
    }
    admit(nfd);
    return nfd;
}

/* nfd, a new client's descriptor, gets a fresh slot: nothing of the
 * connection that had the descriptor before is left. */
static void admit(int nfd)
{
    slot *s = &g.slots[nfd];
    if (g.o.send_buffer > 0) {
        int v = (int)g.o.send_buffer;
        (void)setsockopt(nfd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
    pthread_mutex_lock(&g.mu);
    s->killed = s->answered = 0;
    s->refused = NULL;
    atomic_store(&s->conn, NULL);
    free(s->held);
    s->held = NULL;
    s->held_body = 0;
    atomic_store(&s->overflow, 0);
    atomic_store(&s->drain, 0);
    atomic_store(&s->parked, 0);
    atomic_store(&s->not_gated, 0);
    steal_lock(s);
    s->stolen = 0;
    free(s->pb);
    s->pb = NULL;
    atomic_store(&s->later_owed, 0);
    s->later_waiting = 0;
    steal_unlock(s);
    ons_http_head_init(&s->head);
    atomic_store(&s->last_rx_ms, ons_mono_ms());
    atomic_store(&s->head_start_ms, atomic_load(&s->last_rx_ms));
    unreserve(s, LLONG_MAX); /* a reservation made as the last client closed */
    atomic_fetch_add_explicit(&s->admits, 1, memory_order_relaxed);
    atomic_store_explicit(&s->client, 1, memory_order_release);
    atomic_fetch_add(&g.open, 1);
    pthread_mutex_unlock(&g.mu);
}

/* The 431 of a head that ran into the end of nng's buffer (see readv),
 * once, as nng shuts the connection down: its answers to the requests
 * before that head are written by then. */
static void answer_overflow(int fd)
{
    if (fd < 0 || fd >= g.nslots ||
        !atomic_load_explicit(&g.slots[fd].client, memory_order_acquire))
        return;
    if (atomic_exchange(&g.slots[fd].overflow, 0)) {
        atomic_store(&g.slots[fd].drain, 1);
        answer(fd, 431, "headers_too_large",
               "The request head does not fit behind the requests pipelined before it; send "
               "it on a new connection.");
        count(g.o.bad_heads);
    }
}

int shutdown(int fd, int how)
{
    answer_overflow(fd);
    if (fd >= 0 && fd < g.nslots &&
        atomic_load_explicit(&g.slots[fd].client, memory_order_acquire)) {
        /* nng shuts a connection's socket down as it closes it, then frees
         * its nng_http_conn, and closes the descriptor later on its reaper
         * thread. The slot stops naming the conn here: a new connection
         * whose conn gets the freed address would otherwise be found on
         * this socket (gate_conn_fd) until its close, and its direct
         * answer sent here (EPIPE: the new client closed unanswered).
         * nng's sendmsg and readv of a connection (which learn it) and
         * its shutdown hold the connection's lock, and none follow the
         * shutdown. */
        if (!g.o.debug_conn_kept_at_shutdown)
            atomic_store_explicit(&g.slots[fd].conn, NULL, memory_order_release);
        out_finish(fd);
    }
    return sys_shutdown(fd, how);
}

int close(int fd)
{
    if (fd >= 0 && fd < g.nslots &&
        atomic_load_explicit(&g.slots[fd].client, memory_order_acquire)) {
        answer_overflow(fd);
        out_finish(fd); /* before the FIN */
        atomic_store(&g.slots[fd].conn, NULL);
        /* No gate thread reads it from here on (the socket leaves the
         * gate's epoll set with the close; an event already taken is
         * for an older generation). */
        steal_lock(&g.slots[fd]);
        g.slots[fd].stolen = 0;
        g.slots[fd].gen++;
        atomic_store(&g.slots[fd].later_owed, 0); /* its answer is dropped (later_done) */
        g.slots[fd].later_waiting = 0;
        free(g.slots[fd].pb);
        g.slots[fd].pb = NULL;
        atomic_store(&g.slots[fd].parked, 0);
        steal_unlock(&g.slots[fd]);
        kick_forget(fd);
        if (atomic_exchange(&g.slots[fd].drain, 0))
            drain_input(fd);
        free(g.slots[fd].held);
        g.slots[fd].held = NULL;
        unsent_set(&g.slots[fd], 0, 0); /* nng's write ended with the socket */
        pthread_mutex_lock(&g.mu);
        if (atomic_exchange(&g.slots[fd].client, 0))
            atomic_fetch_sub(&g.open, 1);
        pthread_mutex_unlock(&g.mu);
        /* After the client is cleared: a reserve racing this close either
         * sees no client and takes its bytes back, or is released here. */
        unreserve(&g.slots[fd], LLONG_MAX);
    }
    return sys_close(fd);
}

static size_t conn_hash(const nng_http_conn *conn)
{
    uint64_t x = (uint64_t)(uintptr_t)conn * 0x9E3779B97F4A7C15ULL;
    return (size_t)(x >> 48) & (CONN_TABLE - 1);
}

/* The admitted client descriptor that fd + 1 in a table entry names, when
 * its slot names conn; else -1. */
static int conn_entry(int e, const nng_http_conn *conn)
{
    int fd = e - 1;
    if (fd < 0 || fd >= atomic_load_explicit(&g.nslots, memory_order_relaxed))
        return -1;
    slot *s = &g.slots[fd];
    if (!atomic_load_explicit(&s->client, memory_order_acquire) ||
        atomic_load_explicit(&s->conn, memory_order_acquire) != conn)
        return -1;
    return fd;
}

/* ons_httpd_conn_fd while the gate runs. */
static int gate_conn_fd(nng_http_conn *conn)
{
    size_t i = conn_hash(conn);
    for (int k = 0; k < CONN_PROBES; k++) {
        int e = atomic_load_explicit(&conn_table[(i + k) & (CONN_TABLE - 1)], memory_order_relaxed);
        int fd = conn_entry(e, conn);
        if (fd >= 0)
            return fd;
    }
    return -1;
}

/* fd (an admitted client) is conn's: its slot names conn, and the table an
 * entry for it (a free or stale one of conn's probes, else the first). */
static void learn_conn(int fd, nng_http_conn *conn)
{
    if (fd < 0 || fd >= g.nslots ||
        !atomic_load_explicit(&g.slots[fd].client, memory_order_acquire))
        return;
    atomic_store_explicit(&g.slots[fd].conn, conn, memory_order_release);
    size_t i = conn_hash(conn), at = i;
    for (int k = 0; k < CONN_PROBES; k++) {
        size_t j = (i + k) & (CONN_TABLE - 1);
        int e = atomic_load_explicit(&conn_table[j], memory_order_relaxed);
        if (e == fd + 1)
            return;
        int owner = e - 1;
        if (e == 0 || owner >= g.nslots ||
            !atomic_load_explicit(&g.slots[owner].client, memory_order_relaxed) ||
            atomic_load_explicit(&g.slots[owner].conn, memory_order_relaxed) == NULL) {
            at = j;
            break;
        }
    }
    atomic_store_explicit(&conn_table[at], fd + 1, memory_order_relaxed);
}

/* The bytes msg's iovecs hold. */
static size_t msg_bytes(const struct msghdr *msg)
{
    size_t t = 0;
    for (size_t i = 0; i < (size_t)msg->msg_iovlen; i++)
        t += msg->msg_iov[i].iov_len;
    return t;
}

/* A write of nng's on s's socket offered t bytes and the socket took
 * sent (0 when it took none): until the write is whole, nng holds the
 * whole buffer it began with (a response object keeps its head and body;
 * a direct answer's buffer its rest), so the slot counts the largest
 * offer since it last owed nothing, not what is left of it. */
static void owe(slot *s, size_t t, size_t sent)
{
    if (sent >= t) {
        unsent_set(s, 0, sent > 0);
        return;
    }
    long long old = atomic_load_explicit(&s->unsent, memory_order_relaxed);
    unsent_set(s, old >= (long long)t ? old : (long long)t, sent > 0);
}

/* A sendmsg of n (or -1) bytes of msg on s's socket (see owe). An error
 * other than a full socket ends the write: nothing is owed. A send of
 * ons_httpd_finish_direct's own (ons_httpd_uncounted) is not counted:
 * what it leaves is copied into a write of nng's, whose sendmsg is. */
static void note_sent(slot *s, const struct msghdr *msg, ssize_t n)
{
    int e = errno;
    /* a write that begins while nothing is owed is the next answer's: its
     * reservation is released once the count below holds what it owes
     * (a moment's double count, never a gap) */
    int fresh = atomic_load_explicit(&s->unsent, memory_order_relaxed) == 0;
    size_t t = msg_bytes(msg);
    if (ons_httpd_uncounted) {
        /* what the kernel took: whole, no write of nng's follows; in part,
         * nng's write of the rest releases the rest (its fresh send) */
        if (n > 0 && atomic_load_explicit(&s->reserved, memory_order_relaxed))
            unreserve(s, (long long)n);
        errno = e;
        return;
    }
    if (n < 0 && e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
        unsent_set(s, 0, 0);
    else
        owe(s, t, n > 0 ? (size_t)n : 0);
    if (fresh && atomic_load_explicit(&s->reserved, memory_order_relaxed))
        unreserve(s, (long long)t);
    else if (fresh && t)
        float_release(t, 0);
    errno = e;
}

/* nng's sendmsg of a connection's write. Under a direct answer's write
 * through nng (ons_httpd_io set on this thread), the first sendmsg is
 * that connection's (httpd.h): its descriptor is noted. */
ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    slot *s =
        fd >= 0 && fd < g.nslots && atomic_load_explicit(&g.slots[fd].client, memory_order_acquire)
            ? &g.slots[fd]
            : NULL;
    if (s && atomic_load_explicit(&s->out_pending, memory_order_acquire) && !out_flushed(fd, s)) {
        /* An answer made at the gate is not all sent: nng's bytes wait
         * (nng waits for the socket to take more, then calls again). A
         * direct answer's own send (ons_httpd_uncounted, a handler's
         * thread outside nng's lock) is not counted here either: what it
         * leaves goes into a write of nng's, which is. */
        if (!ons_httpd_uncounted) {
            int fresh = atomic_load_explicit(&s->unsent, memory_order_relaxed) == 0;
            owe(s, msg_bytes(msg), 0);
            if (fresh && atomic_load_explicit(&s->reserved, memory_order_relaxed))
                unreserve(s, (long long)msg_bytes(msg));
            else if (fresh && msg_bytes(msg))
                float_release(msg_bytes(msg), 0);
        }
        errno = EAGAIN;
        return -1;
    }
    ssize_t n = ((sendmsg_fn)real("sendmsg", &real_sendmsg))(fd, msg, flags);
    if (s)
        note_sent(s, msg, n);
    nng_http_conn *conn = ons_httpd_io;
    if (conn) {
        ons_httpd_io = NULL;
        learn_conn(fd, conn);
    }
    return n;
}

/* Keeps bytes [from, n) of what a read put in iov for nng's next read.
 * Returns 0 when out of memory (the caller falls back to the 431). */
static int hold_back(slot *s, const struct iovec *iov, int iovcnt, size_t from, size_t n)
{
    unsigned char *b = malloc(n - from);
    if (!b)
        return 0;
    size_t at = 0, w = 0;
    for (int i = 0; i < iovcnt && at < n; i++) {
        size_t len = iov[i].iov_len < n - at ? iov[i].iov_len : n - at;
        if (at + len > from) {
            size_t skip = from > at ? from - at : 0;
            memcpy(b + w, (const unsigned char *)iov[i].iov_base + skip, len - skip);
            w += len - skip;
        }
        at += len;
    }
    s->held = b;
    s->held_len = w;
    s->held_off = 0;
    s->held_body = 0;
    return 1;
}

/* A read served from what hold_back kept (already judged). */
static ssize_t give_held(slot *s, const struct iovec *iov, int iovcnt)
{
    size_t k = 0;
    s->held_body = 0;
    for (int i = 0; i < iovcnt && s->held_off < s->held_len; i++) {
        size_t m = s->held_len - s->held_off;
        if (m > iov[i].iov_len)
            m = iov[i].iov_len;
        memcpy(iov[i].iov_base, s->held + s->held_off, m);
        s->held_off += m;
        k += m;
    }
    if (s->held_off == s->held_len) {
        free(s->held);
        s->held = NULL;
    }
    return (ssize_t)k;
}

/* Feeds a read's n bytes in iov to s's head scanner (start: the stream
 * offset where they begin). Returns -1 when every head is fine, else what
 * readv returns: the length of the whole requests before a refused head
 * (the refusal is written at nng's next read), or 0 after writing it. */
static ssize_t judge_read(int fd, slot *s, const struct iovec *iov, int iovcnt, size_t n,
                          unsigned long long start)
{
    size_t left = n;
    for (int i = 0; i < iovcnt && left > 0; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        const ons_http_refusal *r = ons_http_head_feed(
            &s->head, iov[i].iov_base, k, (unsigned)g.o.max_request_line, (unsigned)g.o.max_head);
        if (r) {
            count(g.o.bad_heads);
            atomic_store(&s->drain, 1);
            /* Whole requests before the refused head in this read are
             * nng's to answer first; the bytes from the head on are
             * dropped (the connection closes after the refusal). */
            if (s->head.head_from > start) {
                s->refused = r;
                return (ssize_t)(s->head.head_from - start);
            }
            answer(fd, r->status, r->code, r->message);
            s->answered = 1;
            return 0;
        }
        left -= k;
    }
    return -1;
}

/* judge_read, noting when a head that is unfinished at the end of the
 * read began: at this read when it is a new one (the first head keeps
 * the accept's time, set by admit). */
static ssize_t judge_timed(int fd, slot *s, const struct iovec *iov, int iovcnt, size_t n,
                           unsigned long long start)
{
    int was_in = atomic_load_explicit(&s->head.phase, memory_order_relaxed) == ONS_HEAD_IN;
    unsigned long long from = s->head.head_from;
    int first = atomic_load_explicit(&s->head.requests, memory_order_relaxed) == 0;
    ssize_t judged = judge_read(fd, s, iov, iovcnt, n, start);
    if (atomic_load_explicit(&s->head.phase, memory_order_relaxed) == ONS_HEAD_IN &&
        (!was_in || s->head.head_from != from) &&
        !(first && atomic_load_explicit(&s->head.requests, memory_order_relaxed) == 0))
        atomic_store_explicit(&s->head_start_ms, ons_mono_ms(), memory_order_relaxed);
    return judged;
}

/* nng 1.5.2 reads a head into a fixed 8 KiB buffer that it empties only
 * once everything in it is parsed, so a head pipelined behind others (or
 * sent in pieces that never end on a line) can run into its end; nng then
 * answers the requests before it and closes the connection without a
 * word. So a head a read leaves unfinished behind whole requests is held
 * back (hold_back): nng parses those, empties its buffer, and gets the
 * head's start at its next read with the whole buffer free. That is done
 * whether or not the read filled the space nng offered: when part of the
 * read was answered at the gate or came from bytes a gate thread kept,
 * the room left behind the head is only what the gate took out (the rest
 * of a poll's head did not fit, and the client lost every answer to the
 * 431's reset). A read that fills the space while a head that began in an
 * earlier one is unfinished is the 431, written when nng closes, after the
 * answers before it. (A body read into the server's own buffer never ends
 * inside a head.) Returns how many of the n bytes nng gets now. */
static ssize_t fit_nng_buffer(slot *s, const struct iovec *iov, int iovcnt, size_t n,
                              unsigned long long start)
{
    if (atomic_load_explicit(&s->head.phase, memory_order_relaxed) != ONS_HEAD_IN)
        return (ssize_t)n;
    if (s->head.head_from > start && hold_back(s, iov, iovcnt, s->head.head_from - start, n))
        return (ssize_t)(s->head.head_from - start);
    size_t offered = 0;
    for (int i = 0; i < iovcnt; i++)
        offered += iov[i].iov_len;
    if (n == offered)
        atomic_store(&s->overflow, 1);
    return (ssize_t)n;
}

/* Bodies at most this long are held for the server when they come whole
 * with their head (hold_body). */
#define HELD_BODY_MAX 4096

/* A small body that came whole in this read right behind its head, the
 * first such in the read, every request in the read whole: nng is given
 * the bytes up to that head's end and the rest is held (hold_back), so
 * the server takes the body from the gate as it gets the head
 * (ons_httpd_take_body): no read of it through nng and no thread hand-off
 * to its callback. When the server does not take it, nng's body read is
 * given the same bytes from the hold. Returns the bytes nng gets now, or
 * -1 (nothing held). */
static ssize_t hold_body(slot *s, const struct iovec *iov, int iovcnt, size_t n,
                         unsigned long long start)
{
    unsigned long long at = s->head.body_at, len = s->head.body_len;
    if (!at || at <= start || len == 0 || len > HELD_BODY_MAX || at + len > start + n ||
        atomic_load_explicit(&s->head.phase, memory_order_relaxed) != ONS_HEAD_IDLE ||
        !hold_back(s, iov, iovcnt, (size_t)(at - start), n))
        return -1;
    s->held_body = (size_t)len;
    return (ssize_t)(at - start);
}

/* ons_httpd_take_body while the gate runs. Runs on nng's handler thread
 * while nng reads nothing from the connection (it reads the body, or the
 * next request, only when asked), so the hold is not the reader's then. */
static ssize_t gate_take_body(nng_http_conn *conn, void *buf, size_t len)
{
    int fd = gate_conn_fd(conn);
    if (fd < 0)
        return -1;
    slot *s = &g.slots[fd];
    if (!s->held || s->held_off != 0 || s->held_body != len || s->held_len < len)
        return -1;
    memcpy(buf, s->held, len);
    s->held_body = 0;
    s->held_off = len;
    if (s->held_off == s->held_len) {
        free(s->held);
        s->held = NULL;
    }
    return (ssize_t)len;
}

/* ---- answers at the gate ------------------------------------------------------- */

/* The longest head offered to ons_httpd_gate_opts.answer, and the bytes of
 * an answer written on the stack (a longer one is put on the heap). */
#define GATE_HEAD_MAX   4096
#define GATE_ANSWER_BUF 8192

/* The length of the head at p[0..n) up to and including its empty line,
 * or 0 when it does not end there. */
static size_t head_length(const char *p, size_t n)
{
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))) != NULL; q++) {
        size_t at = (size_t)(q - p) + 1;
        if (at >= 2 && p[at - 2] == '\n')
            return at;
        if (at >= 3 && p[at - 2] == '\r' && p[at - 3] == '\n')
            return at;
    }
    return 0;
}

/* A target nng and the server see the same way: a path of name
 * characters, no query, no "//" and no "/." (nng's decoder is not asked to
 * do anything). */
static int plain_target(const char *t)
{
    if (t[0] != '/')
        return 0;
    for (size_t i = 0; t[i]; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '-' || c == '_' || c == '.'))
            return 0;
        if (i > 0 && t[i - 1] == '/' && (c == '/' || c == '.'))
            return 0;
    }
    return 1;
}

/* A header of a POST offered at the gate (post_header): Content-Length
 * into v->body_len (-1: not one plain number in range), or -1 for one
 * whose request goes to nng (Transfer-Encoding, Expect), else 0. */
static int post_header(const char *name, const char *val, ons_httpd_view *v, int *cl_seen)
{
    if (strcasecmp(name, "Transfer-Encoding") == 0 || strcasecmp(name, "Expect") == 0)
        return -1;
    if (strcasecmp(name, "Content-Length") != 0)
        return 0;
    size_t len = 0, i = 0;
    for (; val[i] >= '0' && val[i] <= '9' && i < 5; i++)
        len = len * 10 + (size_t)(val[i] - '0');
    if (i == 0 || val[i] || len == 0 || len > ONS_HTTPD_LATER_BODY_MAX)
        return -1;
    v->body_len = len;
    *cl_seen = 1;
    return 0;
}

/* Splits the head in b (NUL-terminated, the scanner has passed it) into v:
 * 1 when it is one ons_httpd_view describes (httpd.h), else 0. post: a
 * POST with a Content-Length body (post_header) rather than a GET. */
static int view_of(char *b, ons_httpd_view *v, int post)
{
    char *line = b, *next;
    int cl_seen = 0;
    v->nhdrs = 0;
    v->body = NULL;
    v->body_len = 0;
    for (int first = 1; *line; line = next, first = 0) {
        char *nl = strchr(line, '\n');
        if (!nl)
            return 0;
        next = nl + 1;
        if (nl > line && nl[-1] == '\r')
            nl--;
        *nl = '\0';
        if (first) {
            char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
            if (!sp2)
                return 0;
            *sp1 = *sp2 = '\0';
            v->method = line;
            v->target = sp1 + 1;
            if (strcmp(line, post ? "POST" : "GET") != 0 || strcmp(sp2 + 1, "HTTP/1.1") != 0 ||
                !plain_target(v->target))
                return 0;
            continue;
        }
        if (*line == '\0')
            return *next == '\0' && cl_seen == post; /* the empty line ends the head */
        char *colon = strchr(line, ':');
        if (!colon || v->nhdrs == sizeof v->names / sizeof *v->names)
            return 0;
        *colon = '\0';
        char *val = colon + 1;
        while (*val == ' ')
            val++;
        size_t vl = strlen(val);
        if (vl > 0 && val[vl - 1] == ' ')
            return 0; /* nng's trimming is not ours to copy */
        if (post ? post_header(line, val, v, &cl_seen) != 0
                 : strcasecmp(line, "Content-Length") == 0 ||
                       strcasecmp(line, "Transfer-Encoding") == 0)
            return 0;
        if (strcasecmp(line, "Connection") == 0)
            for (const char *c = val; *c; c++)
                if (strncasecmp(c, "close", 5) == 0)
                    return 0; /* nng closes after the answer */
        for (size_t i = 0; i < v->nhdrs; i++)
            if (strcasecmp(v->names[i], line) == 0)
                return 0; /* nng joins repeated headers */
        v->names[v->nhdrs] = line;
        v->values[v->nhdrs++] = val;
    }
    return 0;
}

/* Asks the flusher to send on fd's kept answer rest once the socket can
 * take more: nng, which only waits to read, would not write again before
 * the client's next request, and the sweeper's tick is 250 ms. Without the
 * flusher (it could not start) the sweeper and nng's next write still
 * send it. */
static void arm_out(int fd)
{
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLONESHOT, .data.fd = fd};
    if (g.out_epfd >= 0 && sys_epoll_ctl(g.out_epfd, EPOLL_CTL_MOD, fd, &ev) != 0 &&
        errno == ENOENT)
        (void)sys_epoll_ctl(g.out_epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Sends an answer made at the gate: what the socket does not take now is
 * kept in s and sent before anything nng writes (sendmsg), as the client
 * reads (arm_out). */
static void send_answer(int fd, slot *s, const char *buf, size_t n)
{
    size_t sent = send_some(fd, buf, n);
    if (sent == n || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        unreserve(s, (long long)n); /* nothing kept; a left peer: nng meets it */
        return;
    }
    char *rest = malloc(n - sent);
    if (!rest) {
        sys_shutdown(fd, SHUT_RDWR); /* half an answer: nng sees the peer gone */
        return;
    }
    memcpy(rest, buf + sent, n - sent);
    while (!out_trylock(s))
        sched_yield();
    s->out = rest;
    s->out_len = n - sent;
    s->out_off = 0;
    out_count(s, 0);
    atomic_store_explicit(&s->out_pending, 1, memory_order_release);
    out_unlock(s);
    unreserve(s, (long long)n); /* the kept rest is counted now */
    arm_out(fd);
}

/* The request the answer hook is running for on this thread (offer_one),
 * else NULL: a request taken for later and answered before the hook
 * returned (a full queue's 503) is answered as an answer made at once
 * (later_done_now). */
static _Thread_local ons_httpd_sink *offering;

/* Offers the request at p[0..n) (a read's bytes from a request's start)
 * to the server's answer hook: a whole GET, or with answer_later a POST
 * whose body came whole too. It is judged by the scanner first, as any
 * head, and answered on the socket, or taken for later (*later set).
 * Returns its length (its bytes never reach nng), or 0 when it was not
 * answered (nng gets it). */
static size_t offer_one(int fd, slot *s, const char *p, size_t n, int *later)
{
    int post = g.o.answer_later && n >= 5 && memcmp(p, "POST ", 5) == 0;
    if (!post && (n < 4 || memcmp(p, "GET ", 4) != 0))
        return 0; /* not scanned twice: nng's read judges it */
    size_t hl = head_length(p, n < GATE_HEAD_MAX ? n : GATE_HEAD_MAX);
    if (hl == 0)
        return 0;
    char b[GATE_HEAD_MAX + 1];
    memcpy(b, p, hl);
    b[hl] = '\0';
    ons_httpd_view v;
    if (!view_of(b, &v, post) || v.body_len > n - hl)
        return 0;
    size_t len = hl + v.body_len;
    v.body = post ? p + hl : NULL;
    /* The scanner judges the request first, on a copy kept only when it
     * is answered here (else nng's read judges it as ever). */
    ons_http_head h;
    memcpy(&h, &s->head, sizeof h);
    if (ons_http_head_feed(&h, (const unsigned char *)p, len, (unsigned)g.o.max_request_line,
                           (unsigned)g.o.max_head) ||
        atomic_load_explicit(&h.phase, memory_order_relaxed) != ONS_HEAD_IDLE)
        return 0;
    char abuf[GATE_ANSWER_BUF];
    ons_httpd_sink k = {
        .view = &v, .buf = abuf, .cap = sizeof abuf, .fd = fd, .gen = s->gen, .may_later = post};
    int (*answer)(void *, ons_httpd_sink *) = g.o.answer;
    offering = &k;
    int answered = answer && answer(g.o.answer_arg, &k);
    offering = NULL;
    if (!answered) {
        free(k.heap);
        return 0;
    }
    memcpy(&s->head, &h, sizeof h);
    count(k.taken ? g.o.taken : g.o.answered);
    *later = k.taken;
    if (k.len)
        send_answer(fd, s, k.buf, k.len);
    else if (!k.taken)
        sys_shutdown(fd, SHUT_RDWR); /* no answer could be made: close */
    free(k.heap);
    return len;
}

/* Offers the whole requests at the start of a read (p[0..n), which began
 * between requests while nng had none unanswered) to the server's answer
 * hook, in order (offer_one), until one is declined or does not end in
 * the read. Returns how many bytes were answered: they never reach nng.
 * Stops after an answer the socket took only in part (nng's answers then
 * queue behind its rest), and after a request taken for later (*later:
 * what follows waits for its answer). */
static size_t answer_at_gate(int fd, slot *s, const char *p, size_t n, int *later)
{
    size_t done = 0;
    *later = 0;
    while (done < n && !*later && !atomic_load_explicit(&s->out_pending, memory_order_relaxed)) {
        size_t used = offer_one(fd, s, p + done, n - done, later);
        if (used == 0)
            break;
        done += used;
    }
    return done;
}

/* nng's read took a request for later (ons_httpd_later): what came
 * behind it (p[0..n)) is kept for nng's next read, and nng is told to
 * wait (EAGAIN); its arm is then kept, armed nowhere, until the answer is
 * sent (hold_for_later, later_done). When the answer went out already,
 * nng's arm goes through as after any read: kept bytes wake it, none
 * park it. */
static ssize_t wait_read_for_later(int fd, slot *s, const char *p, size_t n)
{
    steal_lock(s);
    int kept = keep_for_nng(fd, s, p, n);
    atomic_store_explicit(&s->parked, !kept, memory_order_relaxed);
    steal_unlock(s);
    errno = EAGAIN;
    return -1;
}

/* Offers the n bytes nng's read put in iov[0] to answer_at_gate. Returns
 * what is left for nng, moved to the buffer's start, or -1 with errno
 * EAGAIN when the gate answered all of it (nng waits for the next bytes,
 * parked). */
static ssize_t answer_read_at_gate(int fd, slot *s, const struct iovec *iov, ssize_t n)
{
    char *p = iov[0].iov_base;
    int later = 0;
    size_t done = answer_at_gate(fd, s, p, (size_t)n, &later);
    if (done)
        atomic_store_explicit(&s->not_gated, 0, memory_order_relaxed);
    if (later && !g.o.debug_later_unheld)
        return wait_read_for_later(fd, s, p + done, (size_t)n - done);
    if (done == (size_t)n) {
        atomic_store_explicit(&s->parked, 1, memory_order_relaxed);
        errno = EAGAIN;
        return -1;
    }
    if (done)
        memmove(p, p + done, (size_t)n - done);
    return n - (ssize_t)done;
}

/* ---- answers made later (a join taken at the gate) ------------------------------ */

/* Keeps p[0..n) (bytes a read took behind a request answered at the
 * gate, not judged yet) for nng's next reads (pb, give_kept). 1 when
 * kept, 0 when n is 0 or out of memory (then the connection is shut
 * down: nng reads its end). The caller holds steal_busy. */
static int keep_for_nng(int fd, slot *s, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    s->pb = malloc(n);
    if (!s->pb) {
        sys_shutdown(fd, SHUT_RDWR);
        return 0;
    }
    memcpy(s->pb, p, n);
    s->pb_len = n;
    s->pb_off = 0;
    return 1;
}

ons_httpd_sink *ons_httpd_later(ons_httpd_sink *out)
{
    if (!out->may_later || out->taken || out->fd < 0 || out->fd >= g.nslots)
        return NULL;
    /* the answer is written here: a 202's head and body fit, a larger one
     * goes to the heap (to_sink) */
    enum { LATER_BUF = 1024 };
    /* made on this gate thread, freed on the one that answers: recycled */
    ons_httpd_sink *k = ons_recycle_alloc(ONS_RECYCLE_LATER_SINK, sizeof *k + LATER_BUF);
    if (!k)
        return NULL;
    *k = (ons_httpd_sink){
        .buf = (char *)(k + 1), .cap = LATER_BUF, .fd = out->fd, .gen = out->gen, .is_later = 1};
    atomic_store_explicit(&g.slots[out->fd].later_owed, 1, memory_order_release);
    out->taken = 1;
    return k;
}

/* The connection's answer is sent: what came behind the request is read
 * on. Kept bytes (pb) go to nng, woken for them (give_back); else the
 * gate's threads read the next request (the connection is parked between
 * requests), or nng when they do not run. The caller holds steal_busy. */
static void later_resume(int fd, slot *s)
{
    s->later_waiting = 0;
    if (!s->pb && atomic_load(&g.steal_on) && steal_arm(fd, s) == 0)
        return; /* stolen stays set */
    give_back(fd, s);
}

/* A request taken for later answered inside the answer hook that took it
 * (k's answer moves to the hook's sink, now, and goes out as an answer
 * made at once): this thread may hold the connection's steal_busy (a gate
 * thread's read), and nothing is held yet. 1 when it was so. */
static int later_done_now(ons_httpd_sink *k)
{
    ons_httpd_sink *now = offering;
    if (!now || !now->taken || now->fd != k->fd || now->gen != k->gen)
        return 0;
    if (k->len <= now->cap) {
        memcpy(now->buf, k->buf, k->len);
    } else {
        now->heap = now->buf = k->heap; /* the hook's sink had none: it was taken */
        k->heap = NULL;
    }
    now->len = k->len;
    now->taken = 0;
    atomic_store_explicit(&g.slots[k->fd].later_owed, 0, memory_order_release);
    free(k->heap);
    ons_recycle_free(k);
    return 1;
}

void ons_httpd_later_done(ons_httpd_sink *k)
{
    if (later_done_now(k))
        return;
    slot *s = &g.slots[k->fd];
    steal_lock(s);
    /* the generation is bumped under steal_busy at close, before the
     * descriptor is closed: a match means it is still this connection */
    if (atomic_load(&s->client) && s->gen == k->gen &&
        atomic_load_explicit(&s->later_owed, memory_order_acquire)) {
        if (k->len)
            send_answer(k->fd, s, k->buf, k->len);
        else
            sys_shutdown(k->fd, SHUT_RDWR); /* no answer could be made: close */
        atomic_store_explicit(&s->later_owed, 0, memory_order_release);
        if (s->later_waiting)
            later_resume(k->fd, s);
    }
    steal_unlock(s);
    free(k->heap);
    ons_recycle_free(k);
}

ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    slot *s = NULL;
    if (fd >= 0 && fd < g.nslots && atomic_load_explicit(&g.slots[fd].client, memory_order_acquire))
        s = &g.slots[fd];
    int body_read = ons_httpd_io != NULL;
    if (s && ons_httpd_io) {
        /* nng's read of a body on the server's own thread (httpd.h) */
        learn_conn(fd, ons_httpd_io);
        ons_httpd_io = NULL;
    }
    if (s)
        atomic_store_explicit(&s->parked, 0, memory_order_relaxed);
    if (s && s->held)
        return give_held(s, iov, iovcnt);
    if (s && s->refused) {
        /* nng has parsed and answered the requests before the refused
         * head (it reads again only once the last answer is written). */
        const ons_http_refusal *r = s->refused;
        s->refused = NULL;
        answer(fd, r->status, r->code, r->message);
        s->answered = 1;
    }
    if (s && s->answered)
        return 0; /* already answered: the peer is "gone" */
    /* nng reads a head only once it has answered the request before it,
     * and a read that starts between requests (nothing held, no body
     * under way) holds only new requests: the gate may answer them. */
    int at_gate = s && g.o.answer && iovcnt >= 1 && !body_read &&
                  atomic_load_explicit(&s->head.phase, memory_order_relaxed) == ONS_HEAD_IDLE &&
                  out_flushed(fd, s);
    ssize_t n;
    if (s && s->pb) {
        /* a gate thread read these and left them to nng (serve_held):
         * they come before the socket's, and were offered already */
        n = give_kept(s, iov, iovcnt);
        at_gate = 0;
    } else {
        n = sys_readv(fd, iov, iovcnt);
    }
    if (!s || n == 0)
        return n;
    if (n < 0) {
        if (at_gate && (errno == EAGAIN || errno == EWOULDBLOCK))
            atomic_store_explicit(&s->parked, 1, memory_order_relaxed);
        return n;
    }
    atomic_store_explicit(&s->last_rx_ms, ons_mono_ms(), memory_order_relaxed);
    if (at_gate && (size_t)n <= iov[0].iov_len && (n = answer_read_at_gate(fd, s, iov, n)) < 0)
        return -1;
    unsigned long long start = s->head.fed;
    s->head.body_at = 0;
    ssize_t judged = judge_timed(fd, s, iov, iovcnt, (size_t)n, start);
    if (judged >= 0)
        return judged;
    ssize_t held = hold_body(s, iov, iovcnt, (size_t)n, start);
    return held >= 0 ? held : fit_nng_buffer(s, iov, iovcnt, (size_t)n, start);
}

/* ---- the sweeper --------------------------------------------------------------------- */

/* Shuts down connections silent for too long: nng 1.5.2 has no timeouts of
 * its own. A connection that has not finished a request head (a new one
 * included) gets header_timeout_ms, one between requests idle_timeout_ms;
 * while crowded (a client was just refused, or 90% of the cap is open)
 * heads and new connections get crowded_timeout_ms. nng sees the shutdown
 * as the peer leaving and closes the connection. */
/* Shuts fd's connection down (nng then sees the peer gone and closes it),
 * once, counting it in c. g.mu: the descriptor is not closed meanwhile. */
static void kill_conn(int fd, slot *s, ons_counter *c)
{
    pthread_mutex_lock(&g.mu);
    if (atomic_load(&s->client) && !s->killed) {
        s->killed = 1;
        sys_shutdown(fd, SHUT_RDWR);
        count(c);
    }
    pthread_mutex_unlock(&g.mu);
}

/* 1 when s owes its client answer bytes (nng's or the gate's) and no
 * send on it made progress for send_timeout_ms: a client that stopped
 * reading holds that memory (and counts against the server's budget of
 * unsent bytes) until this cuts it. */
static int send_stalled(slot *s, int64_t now)
{
    if (g.o.send_timeout_ms <= 0 || (!atomic_load_explicit(&s->unsent, memory_order_relaxed) &&
                                     !atomic_load_explicit(&s->out_pending, memory_order_relaxed)))
        return 0;
    return now - atomic_load_explicit(&s->last_tx_ms, memory_order_relaxed) >= g.o.send_timeout_ms;
}

/* 1 when s's client drained (TCP acked) fewer than send_min_rate bytes a
 * second over a whole window of send_timeout_ms during which it owed
 * answer bytes; a new window starts after each one passed. Any shrink of
 * the send queue resets the stall clock (send_progress), so without this
 * a client acking a segment per window held its answer for ever. acked:
 * the socket's tcpi_bytes_acked now. */
static int drain_too_slow(slot *s, unsigned long long acked, int64_t now)
{
    if (g.o.send_min_rate <= 0)
        return 0;
    if (!s->win_start_ms) {
        s->win_start_ms = now;
        s->win_acked = acked;
        return 0;
    }
    int64_t span = now - s->win_start_ms;
    if (span < g.o.send_timeout_ms)
        return 0;
    if ((long double)(acked - s->win_acked) * 1000 < (long double)g.o.send_min_rate * span)
        return 1;
    s->win_start_ms = now;
    s->win_acked = acked;
    return 0;
}

/* Whether a TCP_INFO of tl bytes holds tcpi_bytes_acked (Linux 4.1 on);
 * says once when it does not (http.send_min_rate is not applied then). */
static int tcp_info_has_acked(socklen_t tl)
{
    static atomic_int said;
    if (tl >= offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(uint64_t))
        return 1;
    if (!atomic_exchange(&said, 1))
        ons_log_warn("http: TCP_INFO of %u bytes has no tcpi_bytes_acked: "
                     "http.send_min_rate is not applied",
                     (unsigned)tl);
    return 0;
}

/* Counts a shrinking kernel send queue as progress. Linux wakes nng's
 * write (EPOLLOUT) only once about a third of the send buffer drained, so
 * a client reading steadily but slower than that per send_timeout_ms made
 * no send "progress" and was cut mid-answer. One ioctl (and, with
 * send_min_rate, one TCP_INFO) per owing connection per sweep; under
 * g.mu, so the descriptor is still s's. Returns 1 when the client drains
 * too slowly (drain_too_slow). */
static int send_progress(int fd, slot *s, int64_t now)
{
    if (g.o.send_timeout_ms <= 0 ||
        (!atomic_load_explicit(&s->unsent, memory_order_relaxed) &&
         !atomic_load_explicit(&s->out_pending, memory_order_relaxed))) {
        s->outq_seen = 0; /* a later answer, or the descriptor's next client, starts afresh */
        s->win_start_ms = 0;
        return 0;
    }
    int q = 0;
    struct tcp_info ti = {0};
    socklen_t tl = sizeof ti;
    pthread_mutex_lock(&g.mu);
    /* a descriptor closed and admitted again between sweeps: the new
     * socket is not measured against the old one's queue or acked bytes */
    unsigned a = atomic_load_explicit(&s->admits, memory_order_relaxed);
    if (a != s->win_admit) {
        s->win_admit = a;
        s->outq_seen = 0;
        s->win_start_ms = 0;
    }
    int ok = atomic_load(&s->client) && ioctl(fd, SIOCOUTQ, &q) == 0;
    /* Owing: nng's unsent bytes, or an answer made at the gate whose rest
     * waits in s->out (counted in the budget, not in s->unsent). */
    int rated = ok && g.o.send_min_rate > 0 &&
                (atomic_load_explicit(&s->out_pending, memory_order_relaxed) ||
                 atomic_load_explicit(&s->unsent, memory_order_relaxed) >= g.o.send_min_owed) &&
                getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && tcp_info_has_acked(tl);
    pthread_mutex_unlock(&g.mu);
    if (!ok)
        return 0;
    if (!rated)
        s->win_start_ms = 0; /* owing little (or not measurable): a new window when it owes more */
    if (q < s->outq_seen)
        atomic_store_explicit(&s->last_tx_ms, now, memory_order_relaxed);
    s->outq_seen = q;
    return rated && drain_too_slow(s, ti.tcpi_bytes_acked, now);
}

/* A reservation is released by the sends of its answer; one that some
 * path missed would hold budget until the connection closed, and enough of
 * them refuse every large answer. So the sweeper releases a reservation
 * that stood unchanged for over RESERVE_IDLE_MS while the connection owed
 * nothing: its answer, made right after the reservation, has long been
 * offered by then (a reservation that changed starts a new wait). */
#define RESERVE_IDLE_MS 2000
static void reserve_backstop(slot *s, int64_t now)
{
    long long r = atomic_load_explicit(&s->reserved, memory_order_relaxed);
    if (!r || atomic_load_explicit(&s->unsent, memory_order_relaxed) ||
        atomic_load_explicit(&s->out_pending, memory_order_relaxed)) {
        s->res_since_ms = 0;
        return;
    }
    unsigned a = atomic_load_explicit(&s->admits, memory_order_relaxed);
    if (!s->res_since_ms || r != s->res_seen || a != s->res_admit) {
        s->res_since_ms = now;
        s->res_seen = r;
        s->res_admit = a;
    } else if (now - s->res_since_ms > RESERVE_IDLE_MS) {
        /* only the reservation seen: one a new client of a reused
         * descriptor made meanwhile is that client's, released by its send */
        if (atomic_compare_exchange_strong(&s->reserved, &r, 0))
            atomic_fetch_sub_explicit(&unsent_total, r, memory_order_relaxed);
        s->res_since_ms = 0;
    }
}

static void sweep(void)
{
    int64_t now = ons_mono_ms();
    float_release(0, now);
    int crowded =
        now < atomic_load(&g.crowded_until_ms) || atomic_load(&g.open) * 10LL >= g.cap * 9;
    for (int fd = 0; fd < g.nslots; fd++) {
        slot *s = &g.slots[fd];
        if (!atomic_load_explicit(&s->client, memory_order_relaxed))
            continue;
        int ph = atomic_load_explicit(&s->head.phase, memory_order_relaxed);
        int between = ph == ONS_HEAD_IDLE && atomic_load(&s->head.requests) > 0;
        int64_t limit = between ? g.o.idle_timeout_ms : g.o.header_timeout_ms;
        if (crowded && !between && g.o.crowded_timeout_ms < limit)
            limit = g.o.crowded_timeout_ms;
        if (atomic_load_explicit(&s->out_pending, memory_order_acquire)) {
            /* The rest of an answer made at the gate, when no write of
             * nng's came to send it. g.mu: the descriptor is not closed
             * meanwhile (close clears client under it first). */
            pthread_mutex_lock(&g.mu);
            if (atomic_load(&s->client))
                (void)out_flushed(fd, s);
            pthread_mutex_unlock(&g.mu);
        }
        /* progress first (it moves the stall clock); a client that took
         * nothing for the timeout is a stall, whatever its rate */
        int slow = send_progress(fd, s, now), stalled = send_stalled(s, now);
        if (slow || stalled) {
            kill_conn(fd, s, stalled ? g.o.stalled : g.o.slow_drain);
            continue;
        }
        reserve_backstop(s, now);
        /* a head: from its start; between requests, or a body (the
         * server's own body timeout ends that): from the last byte,
         * received or (between requests) taken by the socket: a slow
         * reader of a large answer is not idle while it progresses (a
         * stall is send_stalled's) */
        int64_t since = ph == ONS_HEAD_IN || (ph == ONS_HEAD_IDLE && !between)
                            ? atomic_load_explicit(&s->head_start_ms, memory_order_relaxed)
                            : atomic_load_explicit(&s->last_rx_ms, memory_order_relaxed);
        int64_t tx = atomic_load_explicit(&s->last_tx_ms, memory_order_relaxed);
        if (between && tx > since)
            since = tx;
        if (now - since >= limit)
            kill_conn(fd, s, g.o.timed_out);
    }
}

static void *sweeper(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.mu);
    while (!g.stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g.cv, &g.mu, &ts);
        if (g.stop)
            break;
        pthread_mutex_unlock(&g.mu);
        sweep();
        pthread_mutex_lock(&g.mu);
    }
    pthread_mutex_unlock(&g.mu);
    return NULL;
}

/* Sends on the kept answer rests as their sockets drain (arm_out). g.mu:
 * the descriptor is not closed meanwhile (close clears client under it
 * first); a descriptor closed and reused since its event has no rest of
 * the old connection (close sent or dropped it). */
static void *flusher(void *arg)
{
    (void)arg;
    struct epoll_event ev[64];
    for (;;) {
        int n = sys_epoll_wait(g.out_epfd, ev, 64, 100);
        pthread_mutex_lock(&g.mu);
        int stop = g.stop;
        for (int i = 0; i < n && !stop; i++) {
            int fd = ev[i].data.fd;
            slot *s = fd >= 0 && fd < g.nslots ? &g.slots[fd] : NULL;
            if (s && atomic_load(&s->client) && !out_flushed(fd, s))
                arm_out(fd);
        }
        pthread_mutex_unlock(&g.mu);
        if (stop)
            return NULL;
    }
}

/* ---- start and stop -------------------------------------------------------------------- */

/* The listening TCP socket bound to port, or -1. */
/* The port fd listens on, or -1 when it is not a listening socket. */
static int listener_port(int fd)
{
    int on = 0;
    socklen_t ol = sizeof on;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) || !on ||
        getsockname(fd, (struct sockaddr *)&ss, &sl))
        return -1;
    return ss.ss_family == AF_INET    ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
           : ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                      : -1;
}

static int find_listener(int port, int limit)
{
    for (int fd = 0; fd < limit; fd++)
        if (listener_port(fd) == port)
            return fd;
    return -1;
}

/* Starts the gate's reader threads (at most ONS_HTTPD_GATE_THREADS_MAX),
 * and their epoll set; none when threads is 0 or nothing could start (nng's
 * poller thread alone reads then, as before). */
static void start_readers(int threads)
{
    if (threads > ONS_HTTPD_GATE_THREADS_MAX)
        threads = ONS_HTTPD_GATE_THREADS_MAX;
    if (threads <= 0 || (g.steal_epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        return;
    atomic_store(&g.steal_on, 1);
    for (g.nstealers = 0; g.nstealers < threads; g.nstealers++)
        if (pthread_create(&g.stealers[g.nstealers], NULL, stealer, NULL))
            break;
    if (g.nstealers == 0) {
        atomic_store(&g.steal_on, 0);
        close(g.steal_epfd);
        g.steal_epfd = -1;
    }
}

static int gate_start(const ons_httpd_gate_opts *o, int port);

int ons_httpd_gate_start(const ons_httpd_gate_opts *o, int port)
{
    int rc = gate_start(o, port);
    ons_httpd_gate_arm(0); /* the clients waiting in accept go on, gated */
    return rc;
}

static int gate_start(const ons_httpd_gate_opts *o, int port)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return ONS_EIO;
    long long limit = rl.rlim_cur == RLIM_INFINITY ? 1 << 20 : (long long)rl.rlim_cur;
    if (limit > (1 << 22))
        limit = 1 << 22;
    if (limit <= o->reserved_fds + 16) {
        ons_log_error("http: the open-file limit %lld leaves no room beside %lld reserved", limit,
                      o->reserved_fds);
        return ONS_EINVAL;
    }
    pthread_mutex_lock(&g.mu);
    if (!g.slots) {
        g.slots = calloc((size_t)limit, sizeof *g.slots);
        if (!g.slots) {
            pthread_mutex_unlock(&g.mu);
            return ONS_ENOMEM;
        }
        g.nslots = (int)limit;
    }
    g.o = *o;
    ons_httpd_rid_init(&g.rid);
    /* The reserve is counted, not placed: clients at most cap leave
     * reserved_fds descriptors for the process's own, wherever they are.
     * (Keeping the top of the range instead forgot the descriptors open
     * below every client's, and admitted no client under a small cap.) */
    g.cap =
        o->max_connections < limit - o->reserved_fds ? o->max_connections : limit - o->reserved_fds;
    g.stop = 0;
    if (g.spare < 0)
        g.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pthread_mutex_unlock(&g.mu);

    int lfd = find_listener(port, g.nslots);
    if (lfd < 0) {
        ons_log_error("http: no listening socket on port %d to gate", port);
        return ONS_EIO;
    }
    if (pthread_create(&g.sweeper, NULL, sweeper, NULL))
        return ONS_ENOMEM;
    g.sweeping = 1;
    g.out_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g.out_epfd >= 0 && pthread_create(&g.flusher, NULL, flusher, NULL) == 0) {
        g.flushing = 1;
    } else if (g.out_epfd >= 0) {
        close(g.out_epfd);
        g.out_epfd = -1;
    }
    start_readers(o->answer ? o->answer_threads : 0);
    atomic_store_explicit(&ons_httpd_conn_fd, gate_conn_fd, memory_order_release);
    atomic_store_explicit(&ons_httpd_held_body, gate_take_body, memory_order_release);
    atomic_store_explicit(&g.listen_fd, lfd, memory_order_release);
    ons_log_info("http: at most %lld client connections (%lld of the open-file limit %lld kept "
                 "for dependencies)",
                 g.cap, o->reserved_fds, limit);
    return 0;
}

void ons_httpd_gate_stop(void)
{
    atomic_store(&g.listen_fd, -1);
    atomic_store(&ons_httpd_conn_fd, NULL);
    atomic_store(&ons_httpd_held_body, NULL);
    pthread_mutex_lock(&g.mu);
    g.stop = 1;
    pthread_cond_signal(&g.cv);
    pthread_mutex_unlock(&g.mu);
    if (g.sweeping)
        pthread_join(g.sweeper, NULL);
    g.sweeping = 0;
    /* The gate's readers stop first (each sees steal_on within its 100 ms
     * wait): an answer one sends in part arms out_epfd, which must still
     * be open then. A connection they still hold goes back to nng. */
    atomic_store(&g.steal_on, 0);
    for (int i = 0; i < g.nstealers; i++)
        pthread_join(g.stealers[i], NULL);
    if (g.nstealers)
        for (int fd = 0; fd < g.nslots; fd++) {
            slot *s = &g.slots[fd];
            steal_lock(s);
            if (s->stolen && atomic_load(&s->client))
                give_back(fd, s);
            s->stolen = 0;
            steal_unlock(s);
        }
    g.nstealers = 0;
    if (g.steal_epfd >= 0)
        close(g.steal_epfd);
    g.steal_epfd = -1;
    if (g.flushing)
        pthread_join(g.flusher, NULL); /* it sees stop within its 100 ms wait */
    g.flushing = 0;
    if (g.out_epfd >= 0)
        close(g.out_epfd);
    g.out_epfd = -1;
    /* The counters belong to the caller's metrics, which may be freed next. */
    pthread_mutex_lock(&g.mu);
    g.o.refused = g.o.timed_out = g.o.bad_heads = g.o.answered = g.o.taken = NULL;
    g.o.answer = NULL;
    pthread_mutex_unlock(&g.mu);
}

int ons_httpd_gate_open(void)
{
    return atomic_load(&g.open);
}
