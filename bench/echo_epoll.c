/*
 * echo_epoll: a tiny single-threaded C epoll line-echo server, the speed
 * ceiling the Python servers are compared against.
 *
 * How this works: non-blocking listener and connections, level-triggered
 * epoll. Each connection reads what is there into a buffer, writes back every
 * complete line (up to and including the last "\n"), and keeps the partial
 * rest for later; a reply that the kernel does not take at once waits for
 * EPOLLOUT. It prints "LISTENING <port>" once it listens (port 0 picks a free
 * one) and runs until killed.
 *
 * Usage: echo_epoll PORT [HOST]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_CAP 65536

struct conn {
    int fd;
    size_t in_len;   /* bytes in `in` not yet echoed (a partial line) */
    size_t out_off;  /* pending reply: out[out_off:out_len] */
    size_t out_len;
    char in[BUF_CAP];
    char out[BUF_CAP];
};

static void close_conn(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Flush the pending reply; returns -1 on error, 0 when done, 1 when blocked. */
static int flush_out(struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) { c->out_off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        return -1;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static int on_readable(int ep, struct conn *c) {
    for (;;) {
        if (c->out_len > 0) return 0; /* wait until the reply is out (EPOLLOUT) */
        if (c->in_len == BUF_CAP) return -1; /* a line longer than the buffer */
        ssize_t n = recv(c->fd, c->in + c->in_len, BUF_CAP - c->in_len, 0);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -1;
        }
        c->in_len += (size_t)n;
        char *last = memrchr(c->in, '\n', c->in_len);
        if (last == NULL) continue;
        size_t whole = (size_t)(last - c->in) + 1;
        memcpy(c->out, c->in, whole);
        c->out_len = whole;
        memmove(c->in, c->in + whole, c->in_len - whole);
        c->in_len -= whole;
        int r = flush_out(c);
        if (r < 0) return -1;
        if (r == 1) {
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            return 0;
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: echo_epoll PORT [HOST]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    inet_pton(AF_INET, argc > 2 ? argv[2] : "127.0.0.1", &addr.sin_addr);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) {
        perror("bind/listen");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    printf("LISTENING %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = malloc(sizeof *nc);
                    nc->fd = fd;
                    nc->in_len = nc->out_off = nc->out_len = 0;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                int r = flush_out(c);
                if (r < 0) { close_conn(ep, c); continue; }
                if (r == 1) continue;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
            if (on_readable(ep, c) < 0) close_conn(ep, c);
        }
    }
}
