/* httpc.c - the HTTP/1.1 client: the request writer and response parser
 * both drivers share, one blocking exchange, and the epoll pool; see
 * httpc.h. */
#include "common/httpc.h"
#include "common/clock.h"
#include "common/err.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define HEAD_SLACK 512 /* bytes of request head beyond the caller's strings */
#define MAX_EVENTS 256

/* ---- URLs ---------------------------------------------------------------------------- */

int ons_httpc_url_parse(const char *url, ons_httpc_url *out)
{
    memset(out, 0, sizeof *out);
    if (strncmp(url, "http://", 7) != 0)
        return ONS_EINVAL;
    const char *h = url + 7, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    const char *colon = memchr(h, ':', hl);
    size_t namel = colon ? (size_t)(colon - h) : hl;
    if (namel == 0 || namel >= sizeof out->host)
        return ONS_EINVAL;
    memcpy(out->host, h, namel);
    if (colon) {
        size_t pl = hl - namel - 1;
        if (pl == 0 || pl >= sizeof out->port)
            return ONS_EINVAL;
        memcpy(out->port, colon + 1, pl);
    } else {
        strcpy(out->port, "80");
    }
    if (slash) {
        size_t bl = strlen(slash);
        while (bl > 0 && slash[bl - 1] == '/')
            bl--;
        if (bl >= sizeof out->base)
            return ONS_EINVAL;
        memcpy(out->base, slash, bl);
    }
    return 0;
}

/* ---- the request writer ---------------------------------------------------------------- */

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

/* req as bytes on the wire, path prefixed by base, with "Connection: close"
 * when close. Returns a malloc'd buffer (*len bytes) or NULL with *rc
 * ONS_ENOMEM or ONS_EINVAL. */
static char *write_request(const char *base, const char *hostport, const ons_httpc_req *req,
                           int close, size_t *len, int *rc)
{
    size_t blen = slen(req->body);
    size_t cap = HEAD_SLACK + slen(req->method) + slen(base) + slen(req->path) + slen(hostport) +
                 slen(req->token) + slen(req->idem_key) + blen;
    for (const char *const *h = req->headers; h && *h; h++)
        cap += strlen(*h) + 2;
    char *d = malloc(cap);
    *rc = ONS_ENOMEM;
    if (!d)
        return NULL;
    size_t n = (size_t)snprintf(d, cap, "%s %s%s HTTP/1.1\r\nHost: %s\r\n", req->method, base,
                                req->path, hostport);
    if (close)
        n += (size_t)snprintf(d + n, cap - n, "Connection: close\r\n");
    if (req->token)
        n += (size_t)snprintf(d + n, cap - n, "Authorization: Bearer %s\r\n", req->token);
    if (req->idem_key)
        n += (size_t)snprintf(d + n, cap - n, "Idempotency-Key: %s\r\n", req->idem_key);
    for (const char *const *h = req->headers; h && *h; h++)
        n += (size_t)snprintf(d + n, cap - n, "%s\r\n", *h);
    if (req->body)
        n += (size_t)snprintf(d + n, cap - n, "Content-Type: application/json\r\n");
    n += (size_t)snprintf(d + n, cap - n, "Content-Length: %zu\r\n\r\n", blen);
    if (n + blen >= cap) { /* cannot happen: cap counts every byte */
        free(d);
        *rc = ONS_EINVAL;
        return NULL;
    }
    if (blen)
        memcpy(d + n, req->body, blen);
    *len = n + blen;
    *rc = 0;
    return d;
}

/* ---- the response parser --------------------------------------------------------------- */

/* What parse_answer found. */
typedef struct answer {
    int status;
    int keep; /* the connection may carry another request */
    int retry_after_s;
    char *body; /* inside the buffer, NUL-terminated */
    size_t body_len;
} answer;

/* Finds a header's value in [hdr, end) (case-insensitive name). Returns a
 * pointer to the value or NULL; *len gets its length. */
static const char *header(const char *hdr, const char *end, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *p = hdr;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            *len = (size_t)(eol - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Walks a chunked body b[0..len); decodes it in place when apply. Returns
 * the decoded length, -1 when incomplete, -2 when malformed. */
static long dechunk(char *b, size_t len, int apply)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(b + in, len - in, "\r\n", 2);
        if (!eol)
            return -1;
        char *end;
        unsigned long n = strtoul(b + in, &end, 16);
        if (end == b + in)
            return -2;
        in = (size_t)(eol - b) + 2;
        if (n == 0)
            return memmem(b + in, len - in, "\r\n", 2) ? (long)out : -1; /* trailers end */
        if (len - in < n + 2)
            return -1;
        if (apply)
            memmove(b + out, b + in, n);
        out += n;
        in += n + 2;
    }
}

/* Parses the answer in in[0..len), NUL-terminated. Returns 1 when it is
 * complete (a filled; a chunked body decoded in place), 0 when more bytes
 * are needed, -1 when it is malformed or declares more than max bytes.
 * eof: the peer closed, so a body without a length ends here. The reader
 * bounds what it buffers (reserve). */
static int parse_answer(char *in, size_t len, int eof, size_t max, answer *a)
{
    char *hend = len ? memmem(in, len, "\r\n\r\n", 4) : NULL;
    if (!hend)
        return eof ? -1 : 0;
    int status = 0;
    if (sscanf(in, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 599)
        return -1;
    const char *hs = memchr(in, '\n', (size_t)(hend - in));
    hs = hs ? hs + 1 : hend;
    size_t vl = 0, body_off = (size_t)(hend - in) + 4, blen = 0, have = len - body_off;
    const char *v;
    a->keep = 1;
    a->retry_after_s = -1;
    if ((v = header(hs, hend + 2, "Connection", &vl)) && vl >= 5 && strncasecmp(v, "close", 5) == 0)
        a->keep = 0;
    if ((v = header(hs, hend + 2, "Retry-After", &vl)))
        a->retry_after_s = atoi(v);
    char *body = in + body_off;
    if ((v = header(hs, hend + 2, "Transfer-Encoding", &vl)) && vl >= 7 &&
        strncasecmp(v, "chunked", 7) == 0) {
        long n = dechunk(body, have, 0);
        if (n == -1)
            return eof ? -1 : 0;
        if (n < 0)
            return -1;
        blen = (size_t)dechunk(body, have, 1);
    } else if ((v = header(hs, hend + 2, "Content-Length", &vl))) {
        blen = (size_t)strtoull(v, NULL, 10);
        if (body_off + blen > max)
            return -1;
        if (have < blen)
            return eof ? -1 : 0;
    } else if (status == 204 || status == 304 || status < 200) {
        blen = 0;
    } else {
        if (!eof)
            return 0;
        blen = have;
        a->keep = 0;
    }
    body[blen] = '\0';
    a->status = status;
    a->body = body;
    a->body_len = blen;
    return 1;
}

/* A read buffer of at most max + READ_CHUNK + 1 bytes: makes room for one
 * more READ_CHUNK and a NUL, doubling, or for what is left below the bound.
 * Returns 0 (at least one byte and the NUL fit), or -1 when the bound is
 * reached or memory runs out. */
static int reserve(char **buf, size_t *cap, size_t len, size_t max)
{
    size_t limit = max + READ_CHUNK + 1;
    if (*cap - len >= READ_CHUNK + 1)
        return 0;
    if (*cap >= limit)
        return *cap - len > 1 ? 0 : -1;
    size_t ncap = *cap ? *cap * 2 : READ_CHUNK * 2;
    if (ncap > limit)
        ncap = limit;
    char *n = realloc(*buf, ncap);
    if (!n)
        return -1;
    *buf = n;
    *cap = ncap;
    return ncap - len > 1 ? 0 : -1;
}

/* ---- one blocking exchange ---------------------------------------------------------------- */

/* Waits for events on fd until the deadline: 0, ONS_ETIMEDOUT or ONS_EIO. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - ons_mono_ms();
        if (left <= 0)
            return ONS_ETIMEDOUT;
        struct pollfd p = {fd, events, 0};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n == 0)
            return ONS_ETIMEDOUT;
        if (errno != EINTR)
            return ONS_EIO;
    }
}

/* Connects to the first of u's addresses that answers before the deadline. */
static int connect_to(const ons_httpc_url *u, int64_t deadline, int *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(u->host, u->port, &hints, &ai) != 0 || !ai)
        return ONS_EIO;
    int rc = ONS_EIO;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            *out = fd;
            rc = 0;
            break;
        }
        if (errno == EINPROGRESS) {
            rc = wait_fd(fd, POLLOUT, deadline);
            int err = 0;
            socklen_t el = sizeof err;
            if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0) {
                *out = fd;
                break;
            }
            if (rc == 0)
                rc = ONS_EIO;
        }
        close(fd);
        if (rc == ONS_ETIMEDOUT)
            break;
    }
    freeaddrinfo(ai);
    return rc;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc)
                return rc;
            continue;
        }
        return ONS_EIO;
    }
    return 0;
}

/* Reads until the answer in *buf is complete. 0 with a filled, or an error. */
static int read_answer(int fd, char **buf, size_t *cap, size_t max, int64_t deadline, answer *a)
{
    size_t len = 0;
    for (;;) {
        if (reserve(buf, cap, len, max))
            return ONS_EIO;
        ssize_t r = recv(fd, *buf + len, *cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLIN, deadline);
            if (rc)
                return rc;
            continue;
        }
        if (r < 0)
            return ONS_EIO;
        len += (size_t)r;
        (*buf)[len] = '\0';
        int p = parse_answer(*buf, len, r == 0, max, a);
        if (p == 1)
            return 0;
        if (p < 0 || r == 0)
            return ONS_EIO;
    }
}

int ons_httpc_call(const ons_httpc_url *u, const ons_httpc_req *req, int timeout_ms,
                   size_t max_response, ons_httpc_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->retry_after_s = -1;
    resp->body = "";
    int64_t t0 = ons_mono_ns(), deadline = ons_mono_ms() + timeout_ms;
    char hostport[300];
    snprintf(hostport, sizeof hostport, "%s:%s", u->host, u->port);
    size_t len = 0, cap = 0;
    int rc, fd = -1;
    char *out = write_request(u->base, hostport, req, 1, &len, &rc), *in = NULL;
    answer a;
    if (!out)
        return rc;
    if ((rc = connect_to(u, deadline, &fd)) == 0 && (rc = send_all(fd, out, len, deadline)) == 0)
        rc = read_answer(fd, &in, &cap, max_response, deadline, &a);
    if (fd >= 0)
        close(fd);
    free(out);
    if (rc) {
        free(in);
        return rc;
    }
    memmove(in, a.body, a.body_len + 1); /* the body, NUL included, owns the buffer */
    resp->status = a.status;
    resp->retry_after_s = a.retry_after_s;
    resp->body = in;
    resp->body_len = a.body_len;
    resp->latency_ms = (double)(ons_mono_ns() - t0) / 1e6;
    return 0;
}

/* ---- the pool ----------------------------------------------------------------------------- */

typedef struct req_q {
    struct req_q *next;
    char *data; /* serialized request */
    size_t len;
    ons_httpc_cb cb;
    void *arg;
    int retried;
} req_q;

enum conn_state { C_CLOSED, C_CONNECTING, C_IDLE, C_BUSY };

typedef struct conn {
    int fd;
    enum conn_state state;
    int reused; /* carried a complete exchange before */
    req_q *r;
    size_t woff;
    char *in;
    size_t inlen, incap;
    int64_t t_start_ns, deadline_ns;
} conn;

struct ons_httpc {
    ons_httpc_opts o;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char hostport[300];
    int ep;
    conn *conns;
    req_q *head, *tail;
    size_t queued, active;
    long long connects;
};

int ons_httpc_new(const ons_httpc_opts *o, ons_httpc **out)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    ons_httpc *h = NULL;
    int rc = ONS_EINVAL;

    *out = NULL;
    if (!o->host || o->port <= 0 || o->port > 65535 || o->conns <= 0 || o->max_response < 1024)
        return ONS_EINVAL;
    snprintf(port, sizeof port, "%d", o->port);
    if (getaddrinfo(o->host, port, &hints, &ai) != 0 || !ai)
        goto fail;
    rc = ONS_ENOMEM;
    if (!(h = calloc(1, sizeof *h)) || !(h->conns = calloc((size_t)o->conns, sizeof *h->conns)))
        goto fail;
    h->o = *o;
    memcpy(&h->addr, ai->ai_addr, ai->ai_addrlen);
    h->addrlen = ai->ai_addrlen;
    snprintf(h->hostport, sizeof h->hostport, "%s:%d", o->host, o->port);
    h->ep = epoll_create1(EPOLL_CLOEXEC);
    if (h->ep < 0) {
        rc = ONS_EIO;
        goto fail;
    }
    for (int i = 0; i < o->conns; i++)
        h->conns[i].fd = -1;
    freeaddrinfo(ai);
    *out = h;
    return 0;
fail:
    if (ai)
        freeaddrinfo(ai);
    if (h) {
        free(h->conns);
        free(h);
    }
    return rc;
}

static void req_q_free(req_q *r)
{
    if (r) {
        free(r->data);
        free(r);
    }
}

static void conn_close(ons_httpc *h, conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(h->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_CLOSED;
    c->reused = 0;
    c->inlen = 0;
}

void ons_httpc_free(ons_httpc *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->o.conns; i++) {
        conn_close(h, &h->conns[i]);
        req_q_free(h->conns[i].r);
        free(h->conns[i].in);
    }
    while (h->head) {
        req_q *r = h->head;
        h->head = r->next;
        req_q_free(r);
    }
    if (h->ep >= 0)
        close(h->ep);
    free(h->conns);
    free(h);
}

size_t ons_httpc_pending(const ons_httpc *h)
{
    return h->queued + h->active;
}

long long ons_httpc_connects(const ons_httpc *h)
{
    return h->connects;
}

int ons_httpc_request(ons_httpc *h, const ons_httpc_req *req, ons_httpc_cb cb, void *arg)
{
    if (h->queued >= h->o.max_queue)
        return ONS_EFULL;
    int rc;
    req_q *r = calloc(1, sizeof *r);
    if (!r)
        return ONS_ENOMEM;
    r->data = write_request("", h->hostport, req, 0, &r->len, &rc);
    if (!r->data) {
        free(r);
        return rc;
    }
    r->cb = cb;
    r->arg = arg;
    if (h->tail)
        h->tail->next = r;
    else
        h->head = r;
    h->tail = r;
    h->queued++;
    return 0;
}

/* Completes c's request with resp and frees it. */
static void finish(ons_httpc *h, conn *c, ons_httpc_resp *resp)
{
    req_q *r = c->r;
    c->r = NULL;
    h->active--;
    resp->latency_ms = (double)(ons_mono_ns() - c->t_start_ns) / 1e6;
    r->cb(r->arg, resp);
    req_q_free(r);
}

/* Fails c's request (or requeues it once after a stale keep-alive) and
 * closes the connection. */
static void fail_conn(ons_httpc *h, conn *c)
{
    req_q *r = c->r;
    int stale = c->reused && c->inlen == 0;
    if (r && stale && !r->retried) {
        r->retried = 1;
        r->next = h->head;
        h->head = r;
        if (!h->tail)
            h->tail = r;
        h->queued++;
        h->active--;
        c->r = NULL;
    }
    conn_close(h, c);
    if (c->r) {
        ons_httpc_resp resp = {.status = 0, .retry_after_s = -1, .body = "", .body_len = 0};
        finish(h, c, &resp);
    }
}

/* Writes as much of the request as the socket takes. 0, or -1 on error. */
static int conn_write(conn *c)
{
    while (c->woff < c->r->len) {
        ssize_t n = send(c->fd, c->r->data + c->woff, c->r->len - c->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->woff += (size_t)n;
    }
    return 0;
}

static int conn_open(ons_httpc *h, conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&h->addr, h->addrlen) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u32 = (uint32_t)(c - h->conns)};
    if (epoll_ctl(h->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    c->reused = 0;
    c->inlen = 0;
    h->connects++;
    return 0;
}

/* Hands queued requests to free connections. */
static void dispatch(ons_httpc *h)
{
    for (int i = 0; i < h->o.conns && h->head; i++) {
        conn *c = &h->conns[i];
        if (c->state == C_BUSY || c->state == C_CONNECTING)
            continue;
        req_q *r = h->head;
        h->head = r->next;
        if (!h->head)
            h->tail = NULL;
        r->next = NULL;
        h->queued--;
        h->active++;
        c->r = r;
        c->woff = 0;
        c->inlen = 0;
        c->t_start_ns = ons_mono_ns();
        c->deadline_ns = c->t_start_ns + (int64_t)h->o.timeout_ms * 1000000;
        if (c->state == C_CLOSED) {
            if (conn_open(h, c) < 0) {
                ons_httpc_resp resp = {.status = 0, .retry_after_s = -1, .body = ""};
                finish(h, c, &resp);
            }
            continue; /* written once connected */
        }
        c->state = C_BUSY;
        if (conn_write(c) < 0)
            fail_conn(h, c);
    }
}

/* Completes c's request when its answer is whole. Returns 1 when one was
 * delivered, 0 when more bytes are needed, -1 when malformed. eof: the peer
 * closed (a body without length ends here). */
static int try_complete(ons_httpc *h, conn *c, int eof)
{
    answer a;
    c->in[c->inlen] = '\0';
    int p = parse_answer(c->in, c->inlen, eof, h->o.max_response, &a);
    if (p <= 0)
        return p;
    ons_httpc_resp resp = {.status = a.status,
                           .retry_after_s = a.retry_after_s,
                           .body = a.body,
                           .body_len = a.body_len};
    c->inlen = 0;
    c->reused = 1;
    c->state = a.keep && !eof ? C_IDLE : C_BUSY; /* BUSY until closed below */
    finish(h, c, &resp);
    if (!a.keep || eof)
        conn_close(h, c);
    return 1;
}

/* Reads what is there; completes the response when whole. */
static void conn_read(ons_httpc *h, conn *c, int hup)
{
    int eof = 0;
    for (;;) {
        if (reserve(&c->in, &c->incap, c->inlen, h->o.max_response)) {
            fail_conn(h, c);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen - 1, 0);
        if (n > 0) {
            c->inlen += (size_t)n;
            continue;
        }
        if (n == 0) {
            eof = 1;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        fail_conn(h, c);
        return;
    }
    if (!c->r) { /* idle connection closed by the server, or stray bytes */
        if (eof || hup || c->inlen)
            conn_close(h, c);
        return;
    }
    int done = try_complete(h, c, eof);
    if (done < 0 || (done == 0 && eof))
        fail_conn(h, c);
}

static void on_event(ons_httpc *h, conn *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            fail_conn(h, c);
            return;
        }
        c->state = C_BUSY;
    }
    if (c->state == C_BUSY && c->r && c->woff < c->r->len && (events & EPOLLOUT)) {
        if (conn_write(c) < 0) {
            fail_conn(h, c);
            return;
        }
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        conn_read(h, c, (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
}

int ons_httpc_poll(ons_httpc *h, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    dispatch(h);
    int n = epoll_wait(h->ep, evs, MAX_EVENTS, timeout_ms);
    if (n < 0 && errno != EINTR)
        return ONS_EIO;
    for (int i = 0; i < n; i++) {
        conn *c = &h->conns[evs[i].data.u32];
        if (c->fd >= 0)
            on_event(h, c, evs[i].events);
    }
    int64_t now = ons_mono_ns();
    for (int i = 0; i < h->o.conns; i++) {
        conn *c = &h->conns[i];
        if (c->r && now > c->deadline_ns) {
            c->reused = 0; /* a timeout is not a stale connection: no retry */
            fail_conn(h, c);
        }
    }
    dispatch(h);
    return 0;
}
