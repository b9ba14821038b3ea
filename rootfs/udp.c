/* sbx-udp: the UDP half of the network tests, which busybox's nc (no -u in Debian's build) lacks.
 *
 *   sbx-udp serve PORT            echo every datagram back to its sender, forever
 *   sbx-udp send HOST PORT TEXT   send TEXT, print the reply (exit 0), or "timeout" (exit 1) after 2 s
 *
 * IPv4 only, static (musl-gcc), installed as /usr/bin/sbx-udp in the test image by
 * rootfs/build-busybox.sh.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int serve(int port)
{
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
        if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
                perror("bind");
                return 1;
        }
        for (;;) {
                char buf[2048];
                struct sockaddr_in peer;
                socklen_t len = sizeof peer;
                ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len);
                if (n >= 0)
                        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, len);
        }
}

static int send_one(const char *host, int port, const char *text)
{
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
        struct timeval tv = { .tv_sec = 2 };
        char buf[2048];
        if (fd < 0 || inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
                fprintf(stderr, "bad address %s\n", host);
                return 2;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (sendto(fd, text, strlen(text), 0, (struct sockaddr *)&addr, sizeof addr) < 0) {
                perror("sendto");
                return 1;
        }
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n < 0) {
                puts("timeout");
                return 1;
        }
        buf[n] = '\0';
        puts(buf);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc == 3 && strcmp(argv[1], "serve") == 0)
                return serve(atoi(argv[2]));
        if (argc == 5 && strcmp(argv[1], "send") == 0)
                return send_one(argv[2], atoi(argv[3]), argv[4]);
        fprintf(stderr, "usage: sbx-udp serve PORT | sbx-udp send HOST PORT TEXT\n");
        return 2;
}
