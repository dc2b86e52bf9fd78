/*
 * loadgen_tls: the echo load generator of loadgen.c, over TLS (OpenSSL).
 *
 * How this works: like `loadgen echo`, single-threaded and level-triggered
 * epoll: N non-blocking connections (at most 256 connecting at once), each
 * doing the TLS handshake (SSL_connect, driven by WANT_READ / WANT_WRITE),
 * then sending one line of L bytes (L-1 'x' and "\n") with SSL_write and
 * reading the L-byte echo with SSL_read before the next one. The server's
 * certificate is not verified (the benchmark starts its own server; TLS is
 * there for its cost, not its trust). Counters and the latency histogram are
 * reset after WARMUP seconds; after DURATION more seconds it prints one JSON
 * object and exits. It always ends by itself.
 *
 * Usage: loadgen_tls HOST PORT CONNS LINE_LEN DURATION WARMUP [SERVER_PID]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_MAX_US 1000000
#define MAX_CONNECTING 256

enum state { ST_CONNECTING, ST_HANDSHAKE, ST_SENDING, ST_READING, ST_DEAD };

struct conn {
    int fd;
    SSL *ssl;
    enum state st;
    size_t got;
    double t0;
    uint32_t events; /* current epoll interest */
};

static uint32_t *hist;
static uint64_t hist_over, n_requests, n_errors;
static char *line;
static size_t line_len;
static char rbuf[1 << 16];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static double proc_cpu_seconds(int pid) {
    if (pid <= 0) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double percentile(double p) {
    uint64_t total = hist_over;
    for (size_t i = 0; i < HIST_MAX_US; i++) total += hist[i];
    if (total == 0) return 0.0;
    uint64_t rank = (uint64_t)(p * (double)total), seen = 0;
    if (rank >= total) rank = total - 1;
    for (size_t i = 0; i < HIST_MAX_US; i++) {
        seen += hist[i];
        if (seen > rank) return (double)i;
    }
    return (double)HIST_MAX_US;
}

static void set_interest(int ep, struct conn *c, uint32_t idx, uint32_t events) {
    if (c->events == events) return;
    struct epoll_event ev = {.events = events, .data.u32 = idx};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static void kill_conn(int ep, struct conn *c) {
    if (c->st == ST_DEAD) return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl) SSL_free(c->ssl);
    close(c->fd);
    c->ssl = NULL;
    c->st = ST_DEAD;
    n_errors++;
}

/* Wait for what OpenSSL asks for; returns -1 when the error is fatal. */
static int want(int ep, struct conn *c, uint32_t idx, int ret) {
    int err = SSL_get_error(c->ssl, ret);
    if (err == SSL_ERROR_WANT_READ) { set_interest(ep, c, idx, EPOLLIN); return 0; }
    if (err == SSL_ERROR_WANT_WRITE) { set_interest(ep, c, idx, EPOLLIN | EPOLLOUT); return 0; }
    return -1;
}

/* Advance one connection as far as it goes without waiting. */
static void drive(int ep, struct conn *c, uint32_t idx, double t) {
    for (;;) {
        if (c->st == ST_HANDSHAKE) {
            int r = SSL_connect(c->ssl);
            if (r == 1) { c->st = ST_SENDING; c->got = 0; c->t0 = now(); continue; }
            if (want(ep, c, idx, r) < 0) kill_conn(ep, c);
            return;
        }
        if (c->st == ST_SENDING) {
            int r = SSL_write(c->ssl, line, (int)line_len);
            if (r > 0) { c->st = ST_READING; continue; }
            if (want(ep, c, idx, r) < 0) kill_conn(ep, c);
            return;
        }
        if (c->st == ST_READING) {
            size_t room = line_len - c->got;
            if (room > sizeof rbuf) room = sizeof rbuf;
            int r = SSL_read(c->ssl, rbuf, (int)room);
            if (r > 0) {
                c->got += (size_t)r;
                if (c->got >= line_len) {
                    if (rbuf[r - 1] != '\n') { kill_conn(ep, c); return; }
                    double t1 = now();
                    double us = (t1 - c->t0) * 1e6;
                    if (us >= HIST_MAX_US) hist_over++;
                    else hist[(size_t)(us < 0 ? 0 : us)]++;
                    n_requests++;
                    c->st = ST_SENDING;
                    c->got = 0;
                    c->t0 = t1;
                }
                continue;
            }
            if (want(ep, c, idx, r) < 0) kill_conn(ep, c);
            return;
        }
        (void)t;
        return;
    }
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: loadgen_tls HOST PORT CONNS LINE_LEN DURATION WARMUP [SERVER_PID]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) return 2;
    int nconns = atoi(argv[3]);
    line_len = (size_t)atol(argv[4]);
    double duration = atof(argv[5]), warmup = atof(argv[6]);
    int server_pid = argc == 8 ? atoi(argv[7]) : 0;
    if (nconns < 1 || line_len < 1 || duration <= 0) return 2;
    line = malloc(line_len);
    memset(line, 'x', line_len);
    line[line_len - 1] = '\n';
    hist = calloc(HIST_MAX_US, sizeof(uint32_t));

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);

    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[512];
    int next = 0, connecting = 0, handshaking = 0, all_up = 0, measuring = 0, connected = 0;
    double start = now(), warm_end = 0, end_at = 0, measured = 0, cpu0 = 0, scpu0 = -1;
    int one = 1;
    for (;;) {
        double t = now();
        while (next < nconns && connecting + handshaking < MAX_CONNECTING) {
            struct conn *c = &conns[next];
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
                close(c->fd); c->st = ST_DEAD; n_errors++; next++; continue;
            }
            c->st = ST_CONNECTING;
            c->events = EPOLLOUT;
            struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)next};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            next++;
            connecting++;
        }
        if (!all_up && next == nconns && connecting == 0 && handshaking == 0) {
            all_up = 1;
            warm_end = t + warmup;
        }
        if (all_up && !measuring && t >= warm_end) {
            memset(hist, 0, sizeof(uint32_t) * HIST_MAX_US);
            hist_over = n_requests = 0;
            measuring = 1;
            measured = t;
            end_at = t + duration;
            cpu0 = cpu_seconds();
            scpu0 = proc_cpu_seconds(server_pid);
        }
        if (measuring && t >= end_at) break;
        if (!all_up && t > start + 60.0) break;
        int n = epoll_wait(ep, evs, 512, 50);
        t = now();
        for (int i = 0; i < n; i++) {
            uint32_t idx = evs[i].data.u32;
            struct conn *c = &conns[idx];
            if (c->st == ST_DEAD) continue;
            if (c->st == ST_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                connecting--;
                if (err) { kill_conn(ep, c); continue; }
                c->ssl = SSL_new(ctx);
                SSL_set_fd(c->ssl, c->fd);
                c->st = ST_HANDSHAKE;
                handshaking++;
            }
            int was_handshaking = c->st == ST_HANDSHAKE;
            drive(ep, c, idx, t);
            if (was_handshaking && c->st != ST_HANDSHAKE) {
                handshaking--;
                if (c->st != ST_DEAD) connected++;
            }
        }
    }
    double elapsed = now() - measured;
    double cpu = cpu_seconds() - cpu0, scpu = proc_cpu_seconds(server_pid);
    double server_cpu = (scpu >= 0 && scpu0 >= 0 && elapsed > 0) ? (scpu - scpu0) / elapsed : -1;
    printf("{\"mode\": \"echo_tls\", \"conns\": %d, \"connected\": %d, \"line_len\": %zu, "
           "\"duration_s\": %.3f, \"loadgen_cpu\": %.3f, \"server_cpu\": %.3f, \"requests\": %llu, "
           "\"requests_per_s\": %.1f, \"p50_us\": %.0f, \"p99_us\": %.0f, \"errors\": %llu}\n",
           nconns, connected, line_len, measuring ? elapsed : 0.0,
           measuring && elapsed > 0 ? cpu / elapsed : 0.0, server_cpu,
           (unsigned long long)n_requests,
           measuring && elapsed > 0 ? (double)n_requests / elapsed : 0.0, percentile(0.50),
           percentile(0.99), (unsigned long long)n_errors);
    return 0;
}
