/*
 * loadgen: a single-threaded epoll load generator for twinsock's benchmarks.
 *
 * How this works: `echo` mode opens N TCP connections to HOST:PORT (at most
 * 256 connects in flight, so a small accept backlog is never overrun). Each
 * connection sends one line of L bytes (L-1 'x' bytes and "\n"), waits until
 * it has read L bytes back (the echoed line), and sends the next one: one
 * request in flight per connection, so the figure is requests per second at a
 * concurrency of N. After WARMUP seconds the counters and the latency
 * histogram (1 us buckets up to 1 s) are reset, then the run lasts DURATION
 * seconds and prints one JSON object on stdout. Everything is bounded by time:
 * the process always ends by itself.
 *
 * `idle` mode opens N connections, does one echo round trip on each (so the
 * server really holds a per-connection state), prints a JSON "ready" line,
 * then holds the connections, idle, until stdin reaches end of file or
 * DURATION seconds pass (used by the memory benchmark).
 *
 * `stream` mode connects once and sends BLOCK (L copies of a line of LINE
 * bytes, or raw 'x' bytes with LINE_LEN 0) until TOTAL bytes were sent or
 * DURATION passed, then closes (the sender for the line and recv_into
 * benchmarks). With a last argument `crlf` the lines end in "\r\n"
 * instead of "\n" (the same length).
 *
 * Usage:
 *   loadgen echo   HOST PORT CONNS LINE_LEN DURATION WARMUP [SERVER_PID]
 *
 * With SERVER_PID, echo mode also reports the server's CPU share during the
 * measured window (from /proc/PID/stat), so requests per server CPU-second can
 * be computed: a figure that other tenants of a shared machine disturb less
 * than requests per second. The share covers the server process and every
 * descendant (found through /proc/PID/task/TID/children), so a run_server
 * supervisor is counted with its forked workers; a share above 1.0 means more
 * than one core was busy.
 *   loadgen idle   HOST PORT CONNS DURATION
 *   loadgen stream HOST PORT LINE_LEN TOTAL_BYTES DURATION [crlf]   (LINE_LEN 0: raw bytes)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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

enum state { ST_CONNECTING, ST_SENDING, ST_READING, ST_IDLE, ST_DEAD };

struct conn {
    int fd;
    enum state st;
    size_t sent;   /* bytes of the current request sent */
    size_t got;    /* bytes of the current reply received */
    double t0;     /* when the current request started */
};

static uint32_t *hist;
static uint64_t hist_over;   /* latencies >= 1 s */
static uint64_t n_requests;
static uint64_t n_errors;
static char *line;
static size_t line_len;
static char rbuf[1 << 16];

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static double cpu_at_measure;
static int server_pid;              /* 0: unknown */
static double server_cpu_at_measure;

/* Clock ticks of one process from /proc/PID/stat: its own user + system time
 * (all threads) plus that of its children it has already reaped (cutime,
 * cstime), so a child that ends during the window keeps counting. -1 if gone. */
static long long proc_ticks(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long utime = 0, stime = 0;
    long long cutime = 0, cstime = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime cutime cstime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld",
               &utime, &stime, &cutime, &cstime) != 4)
        return -1;
    return (long long)(utime + stime) + cutime + cstime;
}

#define MAX_TREE 256 /* processes counted at most in one server's tree */

/* Ticks of PID and all its descendants (found through /proc/PID/task/TID/children):
 * the server CPU of a run_server supervisor and its forked workers. */
static long long tree_ticks(int pid, int depth, int *budget) {
    long long total = proc_ticks(pid);
    if (total < 0 || depth >= 8) return total;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *tasks = opendir(path);
    if (!tasks) return total;
    struct dirent *task;
    while ((task = readdir(tasks)) != NULL) {
        if (task->d_name[0] < '0' || task->d_name[0] > '9') continue;
        char cpath[96];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%d/children", pid, atoi(task->d_name));
        FILE *f = fopen(cpath, "r");
        if (!f) continue;
        int child;
        while (*budget > 0 && fscanf(f, "%d", &child) == 1) {
            (*budget)--;
            long long t = tree_ticks(child, depth + 1, budget);
            if (t > 0) total += t; /* a child gone since: its time moved to our cutime */
        }
        fclose(f);
    }
    closedir(tasks);
    return total;
}

/* CPU seconds (user + system, all threads) of another process and its descendants,
 * from /proc; -1 if unknown. */
static double proc_cpu_seconds(int pid) {
    if (pid <= 0) return -1;
    int budget = MAX_TREE;
    long long ticks = tree_ticks(pid, 0, &budget);
    return ticks < 0 ? -1 : (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int start_connect(const struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void record(double t0, double t1) {
    double us = (t1 - t0) * 1e6;
    if (us < 0) us = 0;
    if (us >= HIST_MAX_US) hist_over++;
    else hist[(size_t)us]++;
    n_requests++;
}

static double percentile(double p) {
    uint64_t total = hist_over;
    for (size_t i = 0; i < HIST_MAX_US; i++) total += hist[i];
    if (total == 0) return 0.0;
    uint64_t rank = (uint64_t)(p * (double)total);
    if (rank >= total) rank = total - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_MAX_US; i++) {
        seen += hist[i];
        if (seen > rank) return (double)i;
    }
    return (double)HIST_MAX_US;
}

/* Try to send the rest of the current request; returns -1 on error. */
static int pump_send(struct conn *c) {
    while (c->sent < line_len) {
        ssize_t n = send(c->fd, line + c->sent, line_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) { c->sent += (size_t)n; continue; }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n < 0 && errno == EINTR) continue;
        return -1;
    }
    c->st = ST_READING;
    return 0;
}

/* Read what is there; returns 1 when the full reply arrived, 0 to wait, -1 on error. */
static int pump_recv(struct conn *c) {
    for (;;) {
        size_t want = line_len - c->got;
        if (want > sizeof rbuf) want = sizeof rbuf;
        ssize_t n = recv(c->fd, rbuf, want, 0);
        if (n > 0) {
            c->got += (size_t)n;
            if (c->got >= line_len) {
                if (rbuf[n - 1] != '\n') return -1; /* not an echo of our line */
                return 1;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n < 0 && errno == EINTR) continue;
        return -1; /* end of stream or error */
    }
}

static void kill_conn(int ep, struct conn *c) {
    if (c->st == ST_DEAD) return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->st = ST_DEAD;
    n_errors++;
}

static void begin_request(struct conn *c, double t) {
    c->sent = 0;
    c->got = 0;
    c->t0 = t;
    c->st = ST_SENDING;
}

/*
 * Drive N connections. In echo mode (`repeat` true) each completed reply
 * starts the next request; otherwise a connection goes idle after one reply.
 * Returns the number of connections alive at the end.
 */
static int run(const struct sockaddr_in *addr, int nconns, int repeat, double warmup,
               double duration, double *measured, int *connected_out) {
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[512];
    int next_to_open = 0, connecting = 0, connected = 0, idle = 0;
    double start = now();
    double deadline_setup = start + 60.0;
    int all_up = 0, measuring = 0;
    double warm_end = 0, end_at = 0;

    for (;;) {
        double t = now();
        /* open more connections, a bounded number at a time */
        while (next_to_open < nconns && connecting < MAX_CONNECTING) {
            struct conn *c = &conns[next_to_open];
            c->fd = start_connect(addr);
            if (c->fd < 0) { c->st = ST_DEAD; n_errors++; next_to_open++; continue; }
            c->st = ST_CONNECTING;
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)next_to_open};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            next_to_open++;
            connecting++;
        }
        if (!all_up && next_to_open == nconns && connecting == 0) {
            all_up = 1; /* the warm-up starts now */
            warm_end = t + warmup;
        }
        if (repeat && all_up && !measuring && t >= warm_end) {
            memset(hist, 0, sizeof(uint32_t) * HIST_MAX_US);
            hist_over = 0;
            n_requests = 0;
            measuring = 1;
            *measured = t;
            cpu_at_measure = cpu_seconds();
            server_cpu_at_measure = proc_cpu_seconds(server_pid);
            end_at = t + duration;
        }
        if (measuring && t >= end_at) break;
        if (!repeat && all_up && idle + (int)n_errors >= nconns) break;
        if (!all_up && t > deadline_setup) break;
        if (!repeat && t > deadline_setup) break;

        int timeout_ms = 50;
        int n = epoll_wait(ep, evs, 512, timeout_ms);
        t = now();
        for (int i = 0; i < n; i++) {
            struct conn *c = &conns[evs[i].data.u32];
            if (c->st == ST_DEAD) continue;
            if (c->st == ST_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                connecting--;
                if (err != 0) { kill_conn(ep, c); continue; }
                connected++;
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[i].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                begin_request(c, t);
                if (pump_send(c) < 0) { kill_conn(ep, c); continue; }
                if (c->st == ST_SENDING) {
                    ev.events = EPOLLIN | EPOLLOUT;
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
                continue;
            }
            if (c->st == ST_IDLE) {
                /* an idle connection should hear nothing; end of stream is an error */
                ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
                if (r == 0 || (r < 0 && errno != EAGAIN)) { kill_conn(ep, c); idle--; }
                continue;
            }
            if (c->st == ST_SENDING) {
                if (pump_send(c) < 0) { kill_conn(ep, c); continue; }
                if (c->st == ST_READING) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[i].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (c->st == ST_READING && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
                int r = pump_recv(c);
                if (r < 0) { kill_conn(ep, c); continue; }
                if (r == 1) {
                    record(c->t0, t);
                    if (!repeat) { c->st = ST_IDLE; idle++; continue; }
                    begin_request(c, t);
                    if (pump_send(c) < 0) { kill_conn(ep, c); continue; }
                    if (c->st == ST_SENDING) {
                        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = evs[i].data.u32};
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    }
                }
            }
        }
    }
    *connected_out = connected;
    if (!repeat) {
        /* hand the idle connections to the caller: keep them open */
        free(conns);
        return idle;
    }
    for (int i = 0; i < nconns; i++)
        if (conns[i].st != ST_DEAD) close(conns[i].fd);
    close(ep);
    free(conns);
    return connected;
}

static int parse_addr(const char *host, const char *port, struct sockaddr_in *addr) {
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)atoi(port));
    return inet_pton(AF_INET, host, &addr->sin_addr) == 1 ? 0 : -1;
}

static void make_line(size_t len) {
    line_len = len;
    line = malloc(len);
    memset(line, 'x', len);
    line[len - 1] = '\n';
}

static int mode_echo(int argc, char **argv) {
    if (argc != 8 && argc != 9) return 2;
    if (argc == 9) server_pid = atoi(argv[8]);
    struct sockaddr_in addr;
    if (parse_addr(argv[2], argv[3], &addr) < 0) return 2;
    int nconns = atoi(argv[4]);
    size_t len = (size_t)atol(argv[5]);
    double duration = atof(argv[6]), warmup = atof(argv[7]);
    if (nconns < 1 || len < 1 || duration <= 0) return 2;
    make_line(len);
    hist = calloc(HIST_MAX_US, sizeof(uint32_t));
    double measured = now();
    int connected = 0;
    int alive = run(&addr, nconns, 1, warmup, duration, &measured, &connected);
    double elapsed = now() - measured;
    double cpu = cpu_seconds() - cpu_at_measure;
    double server_cpu = proc_cpu_seconds(server_pid);
    server_cpu = (server_cpu >= 0 && server_cpu_at_measure >= 0 && elapsed > 0)
                     ? (server_cpu - server_cpu_at_measure) / elapsed : -1;
    (void)alive;
    printf("{\"mode\": \"echo\", \"conns\": %d, \"connected\": %d, \"line_len\": %zu, "
           "\"duration_s\": %.3f, \"loadgen_cpu\": %.3f, \"server_cpu\": %.3f, \"requests\": %llu, "
           "\"requests_per_s\": %.1f, \"p50_us\": %.0f, \"p99_us\": %.0f, \"errors\": %llu}\n",
           nconns, connected, len, elapsed, elapsed > 0 ? cpu / elapsed : 0.0, server_cpu,
           (unsigned long long)n_requests,
           elapsed > 0 ? (double)n_requests / elapsed : 0.0, percentile(0.50), percentile(0.99),
           (unsigned long long)n_errors);
    return 0;
}

static int mode_idle(int argc, char **argv) {
    if (argc != 6) return 2;
    struct sockaddr_in addr;
    if (parse_addr(argv[2], argv[3], &addr) < 0) return 2;
    int nconns = atoi(argv[4]);
    double duration = atof(argv[5]);
    if (nconns < 1 || duration <= 0) return 2;
    make_line(16);
    hist = calloc(HIST_MAX_US, sizeof(uint32_t));
    double measured = now(), t0 = now();
    int connected = 0;
    int idle = run(&addr, nconns, 0, 0.0, duration, &measured, &connected);
    printf("{\"mode\": \"idle\", \"conns\": %d, \"connected\": %d, \"idle\": %d, "
           "\"errors\": %llu, \"setup_s\": %.3f}\n",
           nconns, connected, idle, (unsigned long long)n_errors, now() - t0);
    fflush(stdout);
    /* hold the connections until stdin closes or the duration passes */
    struct pollfd pfd = {.fd = 0, .events = POLLIN};
    double end_at = now() + duration;
    char tmp[256];
    while (now() < end_at) {
        int r = poll(&pfd, 1, 100);
        if (r > 0) {
            ssize_t n = read(0, tmp, sizeof tmp);
            if (n <= 0) break;
        }
    }
    return 0;
}

static int mode_stream(int argc, char **argv) {
    if (argc != 7 && argc != 8) return 2;
    int crlf = argc == 8 && strcmp(argv[7], "crlf") == 0;
    if (argc == 8 && !crlf) return 2;
    struct sockaddr_in addr;
    if (parse_addr(argv[2], argv[3], &addr) < 0) return 2;
    size_t llen = (size_t)atol(argv[4]);
    if (crlf && llen < 2) return 2;
    unsigned long long total = strtoull(argv[5], NULL, 10);
    double duration = atof(argv[6]);
    size_t block_len = 1 << 18;
    char *block = malloc(block_len);
    memset(block, 'x', block_len);
    if (llen > 0) {
        block_len = (block_len / llen) * llen; /* whole lines only */
        for (size_t i = llen - 1; i < block_len; i += llen) {
            block[i] = '\n';
            if (crlf) block[i - 1] = '\r';
        }
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("connect");
        return 1;
    }
    double t0 = now(), end_at = t0 + duration;
    unsigned long long sent = 0;
    size_t off = 0;
    int checks = 0;
    while (sent < total) {
        size_t want = block_len - off;
        if (total - sent < want) want = (size_t)(total - sent);
        ssize_t n = send(fd, block + off, want, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            break; /* the reader went away */
        }
        sent += (unsigned long long)n;
        off = (off + (size_t)n) % block_len;
        /* out of time: finish the current line, then stop */
        if (++checks % 16 == 0 && now() > end_at) {
            unsigned long long rest = llen ? (llen - off % llen) % llen : 0;
            if (sent + rest < total) total = sent + rest;
        }
    }
    shutdown(fd, SHUT_WR);
    /* wait for the reader to close, bounded */
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char tmp[256];
    double wait_end = now() + 5.0;
    while (now() < wait_end && poll(&pfd, 1, 100) >= 0) {
        if (pfd.revents && read(fd, tmp, sizeof tmp) <= 0) break;
    }
    close(fd);
    double elapsed = now() - t0;
    printf("{\"mode\": \"stream\", \"sent\": %llu, \"elapsed_s\": %.3f}\n", sent, elapsed);
    return 0;
}

int main(int argc, char **argv) {
    raise_nofile();
    int rc = 2;
    if (argc >= 2 && strcmp(argv[1], "echo") == 0) rc = mode_echo(argc, argv);
    else if (argc >= 2 && strcmp(argv[1], "idle") == 0) rc = mode_idle(argc, argv);
    else if (argc >= 2 && strcmp(argv[1], "stream") == 0) rc = mode_stream(argc, argv);
    if (rc == 2) {
        fprintf(stderr,
                "usage: loadgen echo HOST PORT CONNS LINE_LEN DURATION WARMUP [SERVER_PID]\n"
                "       loadgen idle HOST PORT CONNS DURATION\n"
                "       loadgen stream HOST PORT LINE_LEN TOTAL_BYTES DURATION [crlf]\n");
    }
    return rc;
}
