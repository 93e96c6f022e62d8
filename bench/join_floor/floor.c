/*
 * floor.c - the join's floor on this box (bench/NOTES.md, "Join floor,
 * seventeenth round"): the least a server can do for the wrk join script
 * of scripts/bench, step by step, so each step's cost is measured apart
 * from Onsale's ingress. Not a server to run anywhere else.
 *
 * Mode (argv[1]):
 *   a  a static 202 for every complete request (no parsing beyond the head
 *      and body length): the HTTP server alone, as nginx serves a file;
 *   b  + the bearer token verified (ons_auth_verify, as ingress does) and
 *      the fan's claim: every join read in one epoll round of a gate
 *      thread goes to Redis as ONE EVALSHA of Onsale's own claim script
 *      (q_status_claim_active_many: the active key "pending:<ms>" and the
 *      fan's join rate key rl:join:u:<user>, ratelimit.join.user_* 60/min
 *      burst 20), then each claimed join gets its 202;
 *   c  + each claimed join's real intent record (queue/msg.h, as ingress
 *      encodes it) sent with Onsale's producer (queue/producer.c: acks=all,
 *      idempotence, linger 1 ms, to the event's home partition), its 202
 *      sent from the delivery report (the producer's poll thread) with the
 *      intent's public id from partition and offset;
 *   (d is c with the stack's worker draining; run.py starts it.)
 * A claim refused (key held: 409; rate limit: 429) is answered at once.
 *
 * Configuration from the same ONSALE_* environment a Stack gives a binary
 * (tests/integration/harness.py env()), plus FLOOR_PORT and FLOOR_THREADS.
 * Stops on SIGTERM/SIGINT. Gate threads: one listening socket each
 * (SO_REUSEPORT), edge-triggered epoll, no re-arm per request.
 */
#define _GNU_SOURCE
#include "common/auth.h"
#include "common/err.h"
#include "queue/intent_id.h"
#include "queue/msg.h"
#include "queue/producer.h"
#include "queue/states.h"
#include "queue/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX 256
#define INBUF     4096

typedef struct conn {
    int fd;
    size_t len;
    char in[INBUF];
} conn;

typedef struct join {
    conn *c;
    int64_t event_id, user_id, sent_ms;
    int quantity;
    char token[32];
    char rl_name[48];
} join;

static char mode;
static int port, partitions;
static const char *auth_secret, *ids_secret;
static q_producer *producer;
static q_status_opts st_opts;
static volatile sig_atomic_t stopping;
static atomic_long n_202, n_other;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return; /* the client went away: wrk counts it */
        b += k;
        n -= (size_t)k;
    }
}

static void reply(int fd, int status, const char *body)
{
    char out[768];
    const char *why = status == 202 ? "Accepted" : status == 409 ? "Conflict" : "Error";
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     status, why, strlen(body), body);
    send_all(fd, out, (size_t)n);
    atomic_fetch_add_explicit(status == 202 ? &n_202 : &n_other, 1, memory_order_relaxed);
}

static const char STATIC_202[] =
    "{\"intent_id\":\"00000000000000000000000000000000\",\"event_id\":1,\"state\":\"queued\","
    "\"position\":42,\"eta_seconds\":3,\"poll_after_ms\":1000,"
    "\"status_url\":\"/v1/intents/00000000000000000000000000000000\"}";

/* The 202 of a durable join: its public id, as ingress names it. */
static void accepted(join *j, int32_t partition, int64_t offset)
{
    char id[Q_ID_LEN + 1], body[384];
    q_id_encode(ids_secret, Q_ID_INTENT, q_seq_make(partition, offset), j->user_id, id);
    snprintf(body, sizeof body,
             "{\"intent_id\":\"%s\",\"event_id\":%lld,\"state\":\"queued\",\"position\":%lld,"
             "\"eta_seconds\":3,\"poll_after_ms\":1000,\"status_url\":\"/v1/intents/%s\"}",
             id, (long long)j->event_id, (long long)offset, id);
    reply(j->c->fd, 202, body);
}

/* The delivery report, on the producer's poll thread. */
static void delivered(void *arg, int err, int32_t partition, int64_t offset)
{
    join *j = arg;
    if (err)
        reply(j->c->fd, 503, "{\"error\":\"queue_unavailable\"}");
    else
        accepted(j, partition, offset);
    free(j);
}

/* The head's header value of name (case-insensitive), or NULL; *vlen set. */
static const char *header(const char *head, size_t hlen, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memmem(head, hlen, "\r\n", 2), *end = head + hlen;
    while (p && p + 2 < end) {
        p += 2;
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl + 1 && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            *vlen = (size_t)(eol - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* One complete request at c->in: its length (head + body), 0 when not
 * all here yet. Fills *j in modes b and c (auth, path, quantity); sets
 * *bad to a status when the request is answered at once. */
static size_t parse(conn *c, join *j, int *bad)
{
    const char *e = memmem(c->in, c->len, "\r\n\r\n", 4);
    if (!e)
        return 0;
    size_t hlen = (size_t)(e - c->in) + 4, vlen = 0, blen = 0;
    const char *cl = header(c->in, hlen, "Content-Length", &vlen);
    if (cl)
        blen = strtoul(cl, NULL, 10);
    if (c->len < hlen + blen)
        return 0;
    *bad = 0;
    if (mode == 'a')
        return hlen + blen;
    char auth[ONS_AUTH_TOKEN_MAX + 16];
    const char *a = header(c->in, hlen, "Authorization", &vlen);
    ons_principal who;
    if (!a || vlen >= sizeof auth) {
        *bad = 401;
        return hlen + blen;
    }
    memcpy(auth, a, vlen);
    auth[vlen] = '\0';
    const char *q = memmem(c->in + hlen, blen, "\"quantity\":", 11);
    j->quantity = q ? atoi(q + 11) : 0;
    if (ons_auth_verify(auth_secret, auth, time(NULL), &who) ||
        sscanf(c->in, "POST /v1/events/%lld/intents ", (long long *)&j->event_id) != 1 ||
        j->quantity < 1 || j->quantity > 10) {
        *bad = 400;
        return hlen + blen;
    }
    j->user_id = who.user_id;
    j->c = c;
    return hlen + blen;
}

/* Claims the batch in one script call, then answers or produces each. */
static void run_batch(q_status *st, join *b, size_t n)
{
    if (n == 0)
        return;
    q_active_claim cl[BATCH_MAX];
    q_rate_key rk[BATCH_MAX];
    int64_t now = now_ms();
    for (size_t i = 0; i < n; i++) {
        b[i].sent_ms = now;
        snprintf(b[i].token, sizeof b[i].token, "pending:%lld", (long long)now);
        snprintf(b[i].rl_name, sizeof b[i].rl_name, "rl:join:u:%lld", (long long)b[i].user_id);
        rk[i] = (q_rate_key){b[i].rl_name, 1000, 20};
        cl[i] = (q_active_claim){.event_id = b[i].event_id,
                                 .user_id = b[i].user_id,
                                 .token = b[i].token,
                                 .rate_keys = &rk[i],
                                 .nrate = 1};
    }
    q_status_claim_active_many(st, cl, n, now, INT64_C(1) << 50);
    for (size_t i = 0; i < n; i++) {
        if (cl[i].rc) {
            reply(b[i].c->fd, cl[i].rc == ONS_EEXIST ? 409 : 429, "{\"error\":\"refused\"}");
            continue;
        }
        if (mode == 'b') {
            reply(b[i].c->fd, 202, STATIC_202);
            continue;
        }
        q_msg m;
        memset(&m, 0, sizeof m);
        m.type = Q_MSG_INTENT;
        m.event_id = b[i].event_id;
        m.user_id = b[i].user_id;
        m.sent_ms = b[i].sent_ms;
        m.quantity = b[i].quantity;
        m.adjacent = 1;
        char *buf = NULL;
        size_t len = 0;
        join *j = malloc(sizeof *j);
        *j = b[i];
        if (q_msg_encode(&m, &buf, &len) ||
            q_producer_send_at(producer, Q_TOPIC_INTENTS,
                               q_partition_of_event(m.event_id, partitions), m.event_id, buf, len,
                               NULL, delivered, j)) {
            reply(b[i].c->fd, 503, "{\"error\":\"queue_unavailable\"}");
            free(j);
        }
        free(buf);
    }
}

/* Reads what c has; each complete request is answered (mode a, or bad)
 * or appended to the batch. Returns -1 when c closed. */
static int on_readable(conn *c, join *batch, size_t *n)
{
    for (;;) {
        ssize_t k = read(c->fd, c->in + c->len, INBUF - c->len);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        if (k < 0 && errno == EAGAIN)
            break;
        if (k > 0)
            c->len += (size_t)k;
        size_t used;
        int bad;
        while (*n < BATCH_MAX && (used = parse(c, &batch[*n], &bad)) > 0) {
            if (mode == 'a')
                reply(c->fd, 202, STATIC_202);
            else if (bad)
                reply(c->fd, bad, "{\"error\":\"bad_request\"}");
            else
                (*n)++;
            memmove(c->in, c->in + used, c->len - used);
            c->len -= used;
        }
        if (c->len == INBUF)
            return -1;
    }
    return 0;
}

static int listen_on(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1024)) {
        perror("bind/listen");
        exit(1);
    }
    return fd;
}

static void accept_all(int ep, int lfd)
{
    int fd, one = 1;
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

static void *gate(void *arg)
{
    (void)arg;
    q_status *st = NULL;
    if (mode != 'a' && q_status_new(&st_opts, &st)) {
        fprintf(stderr, "floor: redis\n");
        exit(1);
    }
    int ep = epoll_create1(0), lfd = listen_on(port);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL}, evs[128];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    static _Thread_local join batch[BATCH_MAX];
    while (!stopping) {
        int k = epoll_wait(ep, evs, 128, 200);
        size_t n = 0;
        for (int i = 0; i < k; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                accept_all(ep, lfd);
            } else if (on_readable(c, batch, &n) < 0) {
                /* a join of c still in flight keeps c (wrk closes at the end only) */
                close(c->fd);
                c->fd = -1;
            }
            if (n == BATCH_MAX) {
                run_batch(st, batch, n);
                n = 0;
            }
        }
        run_batch(st, batch, n);
    }
    return NULL;
}

static void on_signal(int s)
{
    (void)s;
    stopping = 1;
}

static const char *env(const char *k, const char *dflt)
{
    const char *v = getenv(k);
    return v && *v ? v : dflt;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strchr("abc", argv[1][0])) {
        fprintf(stderr, "usage: floor a|b|c  (environment: ONSALE_*, FLOOR_PORT, FLOOR_THREADS)\n");
        return 2;
    }
    mode = argv[1][0];
    port = atoi(env("FLOOR_PORT", "18090"));
    partitions = atoi(env("ONSALE_KAFKA_PARTITIONS", "4"));
    auth_secret = env("ONSALE_AUTH_SECRET", "");
    ids_secret = env("ONSALE_IDS_SECRET", "");
    st_opts = (q_status_opts){.host = env("ONSALE_REDIS_HOST", "127.0.0.1"),
                              .port = atoi(env("ONSALE_REDIS_PORT", "6379")),
                              .prefix = env("ONSALE_REDIS_PREFIX", "onsale:"),
                              .timeout_ms = 2000,
                              .result_ttl_s = 3600};
    if (mode == 'c') {
        q_producer_opts po = {.brokers = env("ONSALE_KAFKA_BROKERS", "127.0.0.1:9092"),
                              .topic = env("ONSALE_KAFKA_TOPIC", "intents"),
                              .linger_ms = atoi(env("FLOOR_LINGER_MS", "1")),
                              .delivery_timeout_ms = 5000,
                              .max_inflight = 20000,
                              .control_topic = env("ONSALE_KAFKA_CONTROL_TOPIC", ""),
                              .request_timeout_ms = 30000};
        if (q_producer_new(&po, &producer)) {
            fprintf(stderr, "floor: producer\n");
            return 1;
        }
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    int nt = atoi(env("FLOOR_THREADS", "2"));
    pthread_t t[16];
    for (int i = 0; i < nt && i < 16; i++)
        pthread_create(&t[i], NULL, gate, NULL);
    fprintf(stderr, "floor: mode %c on 127.0.0.1:%d, %d threads\n", mode, port, nt);
    for (int i = 0; i < nt && i < 16; i++)
        pthread_join(t[i], NULL);
    if (producer)
        q_producer_free(producer, 5000);
    fprintf(stderr, "floor: %ld 202, %ld other\n", atomic_load(&n_202), atomic_load(&n_other));
    return 0;
}
