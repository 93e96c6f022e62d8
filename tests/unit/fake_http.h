/*
 * fake_http.h - a scripted HTTP server for the client's unit tests: it
 * listens on 127.0.0.1 (a free port), reads each request (head and
 * Content-Length body) and answers it with the next step of its script:
 * bytes to write, then keep the connection, close it, or stay silent.
 * One thread; header-only so each test can include it.
 */
#ifndef ONSALE_TESTS_FAKE_HTTP_H
#define ONSALE_TESTS_FAKE_HTTP_H

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct fake_step {
    const char *answer; /* written as is; NULL: write nothing */
    int close_after;    /* close the connection after the answer */
    int silent_ms;      /* before answering, wait this long */
} fake_step;

typedef struct fake_http {
    int lfd, port;
    const fake_step *steps;
    int nsteps;
    atomic_int served, accepted, stop;
    char last_request[8192]; /* the last request read, head and body */
    pthread_t thread;
} fake_http;

/* Reads one request from fd into f->last_request. 1 read, 0 peer closed. */
static int fake_read_request(fake_http *f, int fd)
{
    size_t len = 0;
    char *buf = f->last_request;
    size_t cap = sizeof f->last_request - 1;
    for (;;) {
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            size_t head = (size_t)(end - buf) + 4, cl = 0;
            const char *h = strcasestr(buf, "\r\nContent-Length:");
            if (h && h < end)
                cl = (size_t)strtoull(h + 17, NULL, 10);
            if (len >= head + cl)
                return 1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) == 0) {
            if (atomic_load(&f->stop))
                return 0;
            continue;
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
    }
}

static void *fake_run(void *arg)
{
    fake_http *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {f->lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&f->accepted, 1);
        while (!atomic_load(&f->stop) && fake_read_request(f, fd)) {
            int i = atomic_fetch_add(&f->served, 1);
            const fake_step *s = &f->steps[i < f->nsteps ? i : f->nsteps - 1];
            for (int waited = 0; waited < s->silent_ms && !atomic_load(&f->stop); waited += 10)
                usleep(10000);
            if (s->answer)
                (void)send(fd, s->answer, strlen(s->answer), MSG_NOSIGNAL);
            if (s->close_after)
                break;
        }
        close(fd);
    }
    return NULL;
}

static void fake_start(fake_http *f, const fake_step *steps, int nsteps)
{
    memset(f, 0, sizeof *f);
    f->steps = steps;
    f->nsteps = nsteps;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof a) || listen(f->lfd, 16) ||
        getsockname(f->lfd, (struct sockaddr *)&a, &al))
        abort();
    f->port = ntohs(a.sin_port);
    if (pthread_create(&f->thread, NULL, fake_run, f))
        abort();
}

static void fake_stop(fake_http *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

#endif
