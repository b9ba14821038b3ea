/* netbench: a small TCP throughput tool for bench/net_throughput.py, static like busybox so the same
 * binary runs on the host and inside the test image (/usr/bin/netbench).
 *
 *   netbench server PORT [COUNT]               accept connections one after another and discard what
 *                                              they send; exit 0 after COUNT of them (default: never).
 *                                              Prints nothing.
 *   netbench client HOST PORT SECONDS [BUFSIZE]
 *                                              send BUFSIZE-byte writes (default 128 KiB) for SECONDS,
 *                                              then print one JSON line:
 *                                              {"bytes":N,"seconds":S,"bits_per_second":B}
 *
 * The client counts time from its connect to the server's close, after its own shutdown(SHUT_WR):
 * every byte counted has been read by the server, none is left in socket buffers. It retries a
 * refused or unreachable connect for up to CONNECT_WAIT_S seconds, so a client container may start
 * before the server container listens (a pod starts its containers together). HOST is an address or
 * a name from /etc/hosts (static musl reads no NSS modules).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BUFSIZE (128 * 1024)
#define MAX_BUFSIZE (64 * 1024 * 1024)
#define CONNECT_WAIT_S 10.0
#define CONNECT_RETRY_NS 20000000L

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *arg)
{
        fprintf(stderr, "netbench: %s %s: %s\n", what, arg, strerror(errno));
        return 1;
}

static int usage(void)
{
        fputs("usage: netbench server PORT [COUNT]\n"
              "       netbench client HOST PORT SECONDS [BUFSIZE]\n", stderr);
        return 2;
}

/* A whole decimal number in [min, max], or -1. */
static long parse_long(const char *text, long min, long max)
{
        char *end;
        errno = 0;
        long value = strtol(text, &end, 10);
        if (errno || end == text || *end || value < min || value > max)
                return -1;
        return value;
}

/* Dual-stack where the namespace has IPv6 (a pod's loopback may not), else IPv4 only. */
static int listen_on(int port)
{
        int one = 1, zero = 0;
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
                struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                           .sin6_addr = IN6ADDR_ANY_INIT };
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
                if (bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0 && listen(fd, 16) == 0)
                        return fd;
                close(fd);
        }
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr = { htonl(INADDR_ANY) } };
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&a4, sizeof a4) < 0 || listen(fd, 16) < 0) {
                int saved = errno;
                close(fd);
                errno = saved;
                return -1;
        }
        return fd;
}

/* Read until the peer's EOF; 0, or -1 with errno. */
static int drain(int fd, char *buf, size_t size)
{
        for (;;) {
                ssize_t n = read(fd, buf, size);
                if (n == 0)
                        return 0;
                if (n < 0 && errno != EINTR)
                        return -1;
        }
}

static int server(int argc, char **argv)
{
        long port = parse_long(argv[2], 1, 65535);
        long count = argc > 3 ? parse_long(argv[3], 1, 1000000) : 0;
        if (port < 0 || count < 0)
                return usage();
        char *buf = malloc(DEFAULT_BUFSIZE);
        if (!buf)
                return fail("malloc", "buffer");
        int lfd = listen_on((int)port);
        if (lfd < 0)
                return fail("listen on port", argv[2]);
        for (long served = 0; count == 0 || served < count;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        return fail("accept on port", argv[2]);
                }
                /* A reset client is its own failure to report; the server stays for the next. */
                if (drain(fd, buf, DEFAULT_BUFSIZE) < 0)
                        fprintf(stderr, "netbench: read: %s\n", strerror(errno));
                close(fd);
                served++;
        }
        return 0;
}

/* Connect to any address of host:port, retrying refusals until CONNECT_WAIT_S has passed. */
static int connect_to(const char *host, const char *port)
{
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        struct addrinfo *list;
        int rc = getaddrinfo(host, port, &hints, &list);
        if (rc != 0) {
                fprintf(stderr, "netbench: resolve %s: %s\n", host, gai_strerror(rc));
                return -1;
        }
        double deadline = now_s() + CONNECT_WAIT_S;
        struct timespec pause = { 0, CONNECT_RETRY_NS };
        int fd = -1;
        for (;;) {
                for (struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next) {
                        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
                        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                                int saved = errno;
                                close(fd);
                                fd = -1;
                                errno = saved;
                        }
                }
                int transient = errno == ECONNREFUSED || errno == ENETUNREACH || errno == EHOSTUNREACH ||
                                errno == EADDRNOTAVAIL;
                if (fd >= 0 || !transient || now_s() >= deadline)
                        break;
                nanosleep(&pause, NULL);
        }
        if (fd < 0)
                fprintf(stderr, "netbench: connect %s port %s: %s\n", host, port, strerror(errno));
        freeaddrinfo(list);
        return fd;
}

/* Write all of buf; 0, or -1 with errno. */
static int write_all(int fd, const char *buf, size_t size)
{
        while (size > 0) {
                ssize_t n = write(fd, buf, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                buf += n;
                size -= (size_t)n;
        }
        return 0;
}

static int client(int argc, char **argv)
{
        long seconds = parse_long(argv[4], 1, 3600);
        long bufsize = argc > 5 ? parse_long(argv[5], 1, MAX_BUFSIZE) : DEFAULT_BUFSIZE;
        if (parse_long(argv[3], 1, 65535) < 0 || seconds < 0 || bufsize < 0)
                return usage();
        char *buf = malloc((size_t)bufsize);
        if (!buf)
                return fail("malloc", "buffer");
        memset(buf, 0x5a, (size_t)bufsize); /* touch every page before the clock starts */
        int fd = connect_to(argv[2], argv[3]);
        if (fd < 0)
                return 1;
        unsigned long long sent = 0;
        double start = now_s(), deadline = start + (double)seconds;
        while (now_s() < deadline) {
                if (write_all(fd, buf, (size_t)bufsize) < 0)
                        return fail("write to", argv[2]);
                sent += (unsigned long long)bufsize;
        }
        /* Our FIN, then the server's: it has read every byte by the time it closes. */
        if (shutdown(fd, SHUT_WR) < 0)
                return fail("shutdown", argv[2]);
        if (drain(fd, buf, (size_t)bufsize) < 0)
                return fail("wait for the server's close", argv[2]);
        double elapsed = now_s() - start;
        close(fd);
        printf("{\"bytes\":%llu,\"seconds\":%.6f,\"bits_per_second\":%.0f}\n", sent, elapsed,
               (double)sent * 8 / elapsed);
        return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
        /* A write to a reset connection must come back as EPIPE, not kill us silently. */
        signal(SIGPIPE, SIG_IGN);
        if (argc >= 3 && argc <= 4 && strcmp(argv[1], "server") == 0)
                return server(argc, argv);
        if (argc >= 5 && argc <= 6 && strcmp(argv[1], "client") == 0)
                return client(argc, argv);
        return usage();
}
