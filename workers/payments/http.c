/* http.c - blocking HTTP/1.1 client with a deadline; see http.h. */
#include "common/clock.h"
#include "workers/payments/http.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int pay_url_parse(const char *url, pay_url *out)
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

static int connect_to(const pay_url *u, int64_t deadline, int *out)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
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

/* Parses a complete response in buf (len bytes, NUL-terminated). Returns 1
 * (complete: resp filled), 0 (need more), ONS_EIO (malformed) or ONS_ENOMEM.
 * eof: the peer closed, so a body without Content-Length ends here. */
static int parse(const char *buf, size_t len, int eof, pay_http_resp *resp)
{
    const char *end = strstr(buf, "\r\n\r\n");
    if (!end)
        return eof ? ONS_EIO : 0;
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 599)
        return ONS_EIO;
    long long clen = -1;
    for (const char *l = strstr(buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
            clen = strtoll(l + 17, NULL, 10);
    }
    size_t hdr = (size_t)(end - buf) + 4;
    size_t have = len - hdr;
    if (clen < 0 && !eof)
        return 0;
    if (clen > PAY_HTTP_MAX_BODY)
        return ONS_EIO;
    if (clen >= 0 && have < (size_t)clen)
        return eof ? ONS_EIO : 0;
    size_t blen = clen >= 0 ? (size_t)clen : have;
    resp->body = malloc(blen + 1);
    if (!resp->body)
        return ONS_ENOMEM;
    memcpy(resp->body, buf + hdr, blen);
    resp->body[blen] = '\0';
    resp->len = blen;
    resp->status = status;
    return 1;
}

int pay_http_post(const pay_url *u, const char *path, const char *const *headers, const char *body,
                  int timeout_ms, pay_http_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    int64_t deadline = ons_mono_ms() + timeout_ms;
    int fd = -1, rc;
    size_t blen = strlen(body), cap = 4096 + blen, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return ONS_ENOMEM;
    int n = snprintf(buf, cap,
                     "POST %s%s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                     u->base, path, u->host, u->port, blen);
    for (const char *const *h = headers; h && *h && n > 0 && (size_t)n < cap; h++)
        n += snprintf(buf + n, cap - (size_t)n, "%s\r\n", *h);
    if (n < 0 || (size_t)n + blen + 3 > cap) {
        rc = ONS_EINVAL;
        goto out;
    }
    n += snprintf(buf + n, cap - (size_t)n, "\r\n");
    memcpy(buf + n, body, blen);
    if ((rc = connect_to(u, deadline, &fd)) != 0 ||
        (rc = send_all(fd, buf, (size_t)n + blen, deadline)) != 0)
        goto out;
    /* Read the answer into buf, reused. */
    for (;;) {
        if (len + 4097 > cap) {
            if (cap > PAY_HTTP_MAX_BODY * 2) {
                rc = ONS_EIO;
                goto out;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = ONS_ENOMEM;
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if ((rc = wait_fd(fd, POLLIN, deadline)) != 0)
                goto out;
            continue;
        }
        if (r < 0) {
            rc = ONS_EIO;
            goto out;
        }
        len += (size_t)r;
        buf[len] = '\0';
        int p = parse(buf, len, r == 0, resp);
        if (p == 1) {
            rc = 0;
            goto out;
        }
        if (p < 0) {
            rc = p;
            goto out;
        }
        if (r == 0) {
            rc = ONS_EIO;
            goto out;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}
