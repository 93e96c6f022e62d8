/*
 * fuzz_http_gate.c - libFuzzer target for the accept gate's framing of one
 * connection (common/httpd_gate.c): what its readv gives nng, holds back,
 * answers itself (the answer hook) or refuses, as the stream comes in
 * pieces.
 *
 * The gate runs for real in this process (its accept, readv, sendmsg and
 * close wrappers, on a loopback connection); nng is played by a small
 * reader with nng 1.5.2's discipline: one 8 KiB buffer that it empties
 * only once everything in it is parsed, a read only when the buffer holds
 * no whole request, a body read apart for exactly its missing bytes, an
 * answer written before the next request is read, a close when the buffer
 * is full without a whole head. Each request it parses is answered
 * "N <target>\n"; the answer hook answers the GETs whose target starts
 * with "/g" as "G <target>\n".
 *
 * Input: byte 0 picks the write size (0: all at once, else 1..63 bytes a
 * write), byte 1 bit 0 turns the answer hook on; the rest is the stream
 * (a half close follows it).
 * Oracle, besides ASan/UBSan: the client reads, in order, one answer per
 * whole request of the stream before the first head the gate's scanner
 * refuses (the scanner run over the whole stream at once), with that
 * request's target (no request lost, repeated or reordered, whoever
 * answered it), then, when the scanner refuses a head, the gate's JSON
 * refusal with the scanner's status, and nothing else.
 */
#include "common/httpd.h"
#include "common/httpd_head.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_LINE 4096
#define MAX_HEAD 8000
#define NNG_BUF  8192

static int listener = -1;

static int hook(void *arg, ons_httpd_sink *k)
{
    (void)arg;
    if (strncmp(k->view->target, "/g", 2) != 0)
        return 0;
    int n = snprintf(k->buf, k->cap, "G %s\n", k->view->target);
    if (n < 0 || (size_t)n >= k->cap)
        return 0;
    k->len = (size_t)n;
    return 1;
}

static int hook_on;

static int maybe_hook(void *arg, ons_httpd_sink *k)
{
    return hook_on ? hook(arg, k) : 0;
}

static void setup(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) || listen(listener, 16) ||
        getsockname(listener, (struct sockaddr *)&a, &al))
        abort();
    ons_httpd_gate_opts o = {.max_connections = 64,
                             .reserved_fds = 64,
                             .max_request_line = MAX_LINE,
                             .max_head = MAX_HEAD,
                             .header_timeout_ms = 600000,
                             .idle_timeout_ms = 600000,
                             .crowded_timeout_ms = 600000,
                             .answer = maybe_hook};
    if (ons_httpd_gate_start(&o, ntohs(a.sin_port)))
        abort();
}

/* ---- the reference: the scanner over the whole stream -------------------- */

typedef struct expect {
    char answers[16384];
    size_t len;
    int refused, status;
} expect;

/* The target of the head at p (its request line's second word). */
static void target_of(const unsigned char *p, size_t n, char *out, size_t cap)
{
    const unsigned char *sp = memchr(p, ' ', n);
    size_t k = 0;
    if (sp)
        for (const unsigned char *q = sp + 1; q < p + n && *q != ' ' && *q != '\r' && *q != '\n';
             q++)
            if (k + 1 < cap)
                out[k++] = (char)*q;
    out[k] = '\0';
}

static void reference(const unsigned char *p, size_t n, expect *e)
{
    ons_http_head h;
    ons_http_head_init(&h);
    memset(e, 0, sizeof *e);
    int done = 0;
    for (size_t i = 0; i < n; i++) {
        const ons_http_refusal *r = ons_http_head_feed(&h, p + i, 1, MAX_LINE, MAX_HEAD);
        if (r) {
            e->refused = 1;
            e->status = r->status;
            break;
        }
        int req = atomic_load(&h.requests);
        if (req > done) {
            /* a head ended on byte i: its request is whole once its body is */
            done = req;
            unsigned long long from = h.head_from, body = h.cl;
            if (body > n - (i + 1))
                break;
            char t[MAX_LINE + 1];
            target_of(p + from, i + 1 - from, t, sizeof t);
            int k = snprintf(e->answers + e->len, sizeof e->answers - e->len, "? %s\n", t);
            if (k > 0 && (size_t)k < sizeof e->answers - e->len)
                e->len += (size_t)k;
        }
    }
}

/* ---- nng, played -------------------------------------------------------------- */

typedef struct sim {
    int srv, cli, closed;
    unsigned char buf[NNG_BUF];
    size_t get, put;
    unsigned long long body_left; /* of the request parsed last */
    char target[MAX_LINE + 1];    /* its target */
    char got[32768];              /* what the client read */
    size_t got_len;
} sim;

static void client_read(sim *m)
{
    for (;;) {
        ssize_t k = recv(m->cli, m->got + m->got_len, sizeof m->got - m->got_len, MSG_DONTWAIT);
        if (k <= 0)
            return;
        m->got_len += (size_t)k;
    }
}

/* nng's write of an answer, through the gate's sendmsg (which makes it
 * wait behind the rest of an answer of the gate's). */
static void sim_write(sim *m, const char *s, size_t n)
{
    size_t off = 0;
    for (int tries = 0; off < n && tries < 100000; tries++) {
        struct iovec iov = {.iov_base = (char *)s + off, .iov_len = n - off};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t k = sendmsg(m->srv, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0)
            off += (size_t)k;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return;
        client_read(m);
    }
}

static void sim_close(sim *m)
{
    if (!m->closed)
        close(m->srv);
    m->closed = 1;
}

/* The end of the head at p[0..n) (after its blank line), or 0. */
static size_t head_end(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n' &&
            ((i >= 1 && p[i - 1] == '\n') || (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n')))
            return i + 1;
    return 0;
}

static unsigned long long content_length(const unsigned char *p, size_t n)
{
    static const char cl[] = "\ncontent-length:";
    for (size_t i = 0; i + sizeof cl - 1 < n; i++)
        if (strncasecmp((const char *)p + i, cl, sizeof cl - 1) == 0)
            return strtoull((const char *)p + i + sizeof cl - 1, NULL, 10);
    return 0;
}

/* Parses the head at the buffer's start when it is whole: its target
 * noted, the bytes of its body the buffer holds taken. 1 when it was. */
static int parse_head(sim *m)
{
    size_t e = head_end(m->buf + m->get, m->put - m->get);
    if (!e)
        return 0;
    unsigned char *h = m->buf + m->get;
    unsigned long long cl = content_length(h, e);
    target_of(h, e, m->target, sizeof m->target);
    m->get += e;
    size_t have = m->put - m->get < cl ? m->put - m->get : (size_t)cl;
    m->get += have;
    if (m->get == m->put)
        m->get = m->put = 0;
    m->body_left = cl - have;
    return 1;
}

static void answer(sim *m)
{
    char line[MAX_LINE + 8];
    int n = snprintf(line, sizeof line, "N %s\n", m->target);
    sim_write(m, line, (size_t)n);
}

/* nng's reading until it waits for bytes or the connection ended: a
 * body read apart for exactly its missing bytes, else a head from the
 * buffer, else a read into the buffer's free end. */
static void pump(sim *m)
{
    unsigned char tmp[4096];
    while (!m->closed) {
        client_read(m);
        struct iovec iov;
        if (m->body_left) {
            iov.iov_base = tmp;
            iov.iov_len = m->body_left < sizeof tmp ? (size_t)m->body_left : sizeof tmp;
        } else if (parse_head(m)) {
            if (!m->body_left)
                answer(m);
            continue;
        } else if (m->put == NNG_BUF) {
            sim_close(m); /* a head over the buffer: nng gives up */
            return;
        } else {
            iov.iov_base = m->buf + m->put;
            iov.iov_len = NNG_BUF - m->put;
        }
        ssize_t k = readv(m->srv, &iov, 1);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (k <= 0) {
            sim_close(m);
            return;
        }
        if (iov.iov_base != tmp) {
            m->put += (size_t)k;
        } else if ((m->body_left -= (unsigned long long)k) == 0) {
            answer(m);
        }
    }
}

/* The client's bytes as the reference writes them: every answer line
 * with its first letter made '?' (who answered is free). Returns where
 * the answer lines end. */
static size_t answers_end(sim *m)
{
    size_t i = 0;
    while (i + 2 < m->got_len && (m->got[i] == 'N' || m->got[i] == 'G') && m->got[i + 1] == ' ') {
        char *nl = memchr(m->got + i, '\n', m->got_len - i);
        if (!nl)
            break;
        m->got[i] = '?';
        i = (size_t)(nl - m->got) + 1;
    }
    return i;
}

static void check(sim *m, const expect *e)
{
    size_t end = answers_end(m);
    if (end != e->len || memcmp(m->got, e->answers, end) != 0) {
        fprintf(stderr, "fuzz_http_gate: answers differ\n got: %.*s\nwant: %.*s\n", (int)end,
                m->got, (int)e->len, e->answers);
        abort();
    }
    const char *rest = m->got + end;
    size_t rn = m->got_len - end;
    if (!e->refused) {
        if (rn != 0) {
            fprintf(stderr, "fuzz_http_gate: unexpected bytes: %.*s\n", (int)rn, rest);
            abort();
        }
        return;
    }
    char want[32];
    int wn = snprintf(want, sizeof want, "HTTP/1.1 %d ", e->status);
    if (rn < (size_t)wn || memcmp(rest, want, (size_t)wn) != 0 ||
        !memmem(rest, rn, "\r\n\r\n{\"error\":{\"code\":", 19)) {
        fprintf(stderr, "fuzz_http_gate: want the %d refusal, got: %.*s\n", e->status, (int)rn,
                rest);
        abort();
    }
}

static int connect_once(sim *m);

/* A loopback connection through the gate's accept; retried a while (a
 * port of an earlier connection may still be in TIME_WAIT). */
static int connect_pair(sim *m)
{
    for (int i = 0; i < 200; i++) {
        if (connect_once(m) == 0)
            return 0;
        usleep(1000);
    }
    return -1;
}

static int connect_once(sim *m)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    if (getsockname(listener, (struct sockaddr *)&a, &al))
        return -1;
    m->cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m->cli < 0 || connect(m->cli, (struct sockaddr *)&a, sizeof a)) {
        close(m->cli);
        return -1;
    }
    m->srv = accept(listener, NULL, NULL); /* the gate's: the slot is fresh */
    if (m->srv < 0) {
        fprintf(stderr, "fuzz_http_gate: accept: %s (open %d)\n", strerror(errno),
                ons_httpd_gate_open());
        close(m->cli);
        return -1;
    }
    fcntl(m->srv, F_SETFL, fcntl(m->srv, F_GETFL) | O_NONBLOCK);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 16384)
        return 0;
    if (listener < 0)
        setup();
    size_t piece = data[0] % 64 ? data[0] % 64 : size;
    hook_on = data[1] & 1;
    const unsigned char *p = data + 2;
    size_t n = size - 2;
    static expect e;
    reference(p, n, &e);
    static sim m;
    memset(&m, 0, sizeof m);
    if (connect_pair(&m)) {
        perror("fuzz_http_gate: no loopback connection");
        abort();
    }
    for (size_t i = 0; i < n && !m.closed; i += piece) {
        size_t k = n - i < piece ? n - i : piece;
        if (send(m.cli, p + i, k, MSG_NOSIGNAL) != (ssize_t)k)
            break;
        pump(&m);
    }
    shutdown(m.cli, SHUT_WR);
    for (int i = 0; i < 1000 && !m.closed; i++)
        pump(&m);
    sim_close(&m);
    for (int i = 0; i < 1000; i++) { /* the gate's last bytes, then the end */
        ssize_t k = recv(m.cli, m.got + m.got_len, sizeof m.got - m.got_len, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            break;
        if (k > 0)
            m.got_len += (size_t)k;
        else
            usleep(100);
    }
    /* A reset once everything is read: no TIME_WAIT left behind (a
     * thousand connections a second would fill the box's ports). */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(m.cli, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(m.cli);
    check(&m, &e);
    return 0;
}
