/* http.c - the simulator's epoll HTTP/1.1 client; see http.h. */
#include "common/clock.h"
#include "admin/sim/http.h"
#include "common/err.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS  256
#define READ_CHUNK  16384
#define HEADERS_MAX 8192 /* bytes of request headers we build */

typedef struct req {
    struct req *next;
    char *data; /* serialized request */
    size_t len;
    sim_http_cb cb;
    void *arg;
    int retried;
} req;

enum conn_state { C_CLOSED, C_CONNECTING, C_IDLE, C_BUSY };

typedef struct conn {
    int fd;
    enum conn_state state;
    int reused; /* carried a complete exchange before */
    req *r;
    size_t woff;
    char *in;
    size_t inlen, incap;
    int64_t t_start_ns, deadline_ns;
} conn;

struct sim_http {
    sim_http_opts o;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char hostport[300];
    int ep;
    conn *conns;
    req *head, *tail;
    size_t queued, active;
    long long connects;
};

int sim_http_new(const sim_http_opts *o, sim_http **out)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    sim_http *h = NULL;
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

static void req_free(req *r)
{
    if (r) {
        free(r->data);
        free(r);
    }
}

static void conn_close(sim_http *h, conn *c)
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

void sim_http_free(sim_http *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->o.conns; i++) {
        conn_close(h, &h->conns[i]);
        req_free(h->conns[i].r);
        free(h->conns[i].in);
    }
    while (h->head) {
        req *r = h->head;
        h->head = r->next;
        req_free(r);
    }
    if (h->ep >= 0)
        close(h->ep);
    free(h->conns);
    free(h);
}

size_t sim_http_pending(const sim_http *h)
{
    return h->queued + h->active;
}

long long sim_http_connects(const sim_http *h)
{
    return h->connects;
}

int sim_http_request(sim_http *h, const char *method, const char *path, const char *token,
                     const char *idem_key, const char *body, sim_http_cb cb, void *arg)
{
    return sim_http_request_hdr(h, method, path, token, idem_key, NULL, NULL, body, cb, arg);
}

int sim_http_request_hdr(sim_http *h, const char *method, const char *path, const char *token,
                         const char *idem_key, const char *hname, const char *hvalue,
                         const char *body, sim_http_cb cb, void *arg)
{
    if (h->queued >= h->o.max_queue)
        return ONS_EFULL;
    size_t blen = body ? strlen(body) : 0;
    size_t cap = HEADERS_MAX + strlen(path) + (token ? strlen(token) : 0) +
                 (idem_key ? strlen(idem_key) : 0) +
                 (hname && hvalue ? strlen(hname) + strlen(hvalue) + 4 : 0) + blen;
    req *r = calloc(1, sizeof *r);
    char *d = malloc(cap);
    if (!r || !d) {
        free(r);
        free(d);
        return ONS_ENOMEM;
    }
    int n = snprintf(d, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, h->hostport);
    if (token)
        n += snprintf(d + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", token);
    if (idem_key)
        n += snprintf(d + n, cap - (size_t)n, "Idempotency-Key: %s\r\n", idem_key);
    if (hname && hvalue)
        n += snprintf(d + n, cap - (size_t)n, "%s: %s\r\n", hname, hvalue);
    if (body)
        n += snprintf(d + n, cap - (size_t)n, "Content-Type: application/json\r\n");
    n += snprintf(d + n, cap - (size_t)n, "Content-Length: %zu\r\n\r\n", blen);
    if (body)
        memcpy(d + n, body, blen);
    r->data = d;
    r->len = (size_t)n + blen;
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
static void finish(sim_http *h, conn *c, sim_http_resp *resp)
{
    req *r = c->r;
    c->r = NULL;
    h->active--;
    resp->latency_ms = (double)(ons_mono_ns() - c->t_start_ns) / 1e6;
    r->cb(r->arg, resp);
    req_free(r);
}

/* Fails c's request (or requeues it once after a stale keep-alive) and
 * closes the connection. */
static void fail_conn(sim_http *h, conn *c)
{
    req *r = c->r;
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
        sim_http_resp resp = {.status = 0, .retry_after_s = -1, .body = "", .body_len = 0};
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

static int conn_open(sim_http *h, conn *c)
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
static void dispatch(sim_http *h)
{
    for (int i = 0; i < h->o.conns && h->head; i++) {
        conn *c = &h->conns[i];
        if (c->state == C_BUSY || c->state == C_CONNECTING)
            continue;
        req *r = h->head;
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
                sim_http_resp resp = {.status = 0, .retry_after_s = -1, .body = ""};
                finish(h, c, &resp);
            }
            continue; /* written once connected */
        }
        c->state = C_BUSY;
        if (conn_write(c) < 0)
            fail_conn(h, c);
    }
}

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

/* Decodes a chunked body in place. Returns the decoded length, -1 when
 * incomplete, -2 when malformed. *consumed gets the bytes used. */
static long dechunk(char *b, size_t len, size_t *consumed)
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
        if (n == 0) {
            char *fin = memmem(b + in, len - in, "\r\n", 2); /* trailers end */
            if (!fin)
                return -1;
            *consumed = (size_t)(fin - b) + 2;
            return (long)out;
        }
        if (len - in < n + 2)
            return -1;
        memmove(b + out, b + in, n);
        out += n;
        in += n + 2;
    }
}

/* Tries to parse a complete response from c->in. Returns 1 when one was
 * delivered, 0 when more bytes are needed, -1 when malformed. eof: the peer
 * closed (a body without length ends here). */
static int try_complete(sim_http *h, conn *c, int eof)
{
    char *hend = c->inlen ? memmem(c->in, c->inlen, "\r\n\r\n", 4) : NULL;
    if (!hend)
        return eof ? -1 : 0;
    int status = 0;
    if (sscanf(c->in, "HTTP/1.%*d %d", &status) != 1 || status < 100)
        return -1;
    const char *hs = memchr(c->in, '\n', (size_t)(hend - c->in));
    hs = hs ? hs + 1 : hend;
    size_t vl = 0, body_off = (size_t)(hend - c->in) + 4, blen = 0;
    int keep = 1, retry_after = -1;
    const char *v;
    if ((v = header(hs, hend + 2, "Connection", &vl)) && vl >= 5 && strncasecmp(v, "close", 5) == 0)
        keep = 0;
    if ((v = header(hs, hend + 2, "Retry-After", &vl)))
        retry_after = atoi(v);
    char *body = c->in + body_off;
    if ((v = header(hs, hend + 2, "Transfer-Encoding", &vl)) && vl >= 7 &&
        strncasecmp(v, "chunked", 7) == 0) {
        size_t used = 0;
        /* decode a copy so an incomplete body stays intact for the next read */
        size_t avail = c->inlen - body_off;
        char *tmp = malloc(avail + 1);
        if (!tmp)
            return -1;
        memcpy(tmp, body, avail);
        long n = dechunk(tmp, avail, &used);
        if (n == -1) {
            free(tmp);
            return eof ? -1 : 0;
        }
        if (n < 0) {
            free(tmp);
            return -1;
        }
        memcpy(body, tmp, (size_t)n);
        free(tmp);
        blen = (size_t)n;
    } else if ((v = header(hs, hend + 2, "Content-Length", &vl))) {
        blen = (size_t)strtoull(v, NULL, 10);
        if (body_off + blen > h->o.max_response)
            return -1;
        if (c->inlen - body_off < blen)
            return eof ? -1 : 0;
    } else if (status == 204 || status == 304 || status < 200) {
        blen = 0;
    } else {
        if (!eof)
            return 0;
        blen = c->inlen - body_off;
        keep = 0;
    }
    body[blen] = '\0'; /* in has one spare byte beyond every read */
    sim_http_resp resp = {
        .status = status, .retry_after_s = retry_after, .body = body, .body_len = blen};
    c->inlen = 0;
    c->reused = 1;
    c->state = keep && !eof ? C_IDLE : C_BUSY; /* BUSY until closed below */
    finish(h, c, &resp);
    if (!keep || eof)
        conn_close(h, c);
    return 1;
}

/* Reads what is there; completes the response when whole. */
static void conn_read(sim_http *h, conn *c, int hup)
{
    int eof = 0;
    for (;;) {
        if (c->incap - c->inlen < READ_CHUNK + 1) {
            size_t cap = c->incap ? c->incap * 2 : READ_CHUNK * 2;
            if (cap > h->o.max_response + READ_CHUNK + 1) {
                fail_conn(h, c);
                return;
            }
            char *n = realloc(c->in, cap);
            if (!n) {
                fail_conn(h, c);
                return;
            }
            c->in = n;
            c->incap = cap;
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

static void on_event(sim_http *h, conn *c, uint32_t events)
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

int sim_http_poll(sim_http *h, int timeout_ms)
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
