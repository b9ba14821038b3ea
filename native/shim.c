/* shim.c: the per-pod parent (the role of conmon / containerd-shim), so a pod outlives every
 * Python process. `shim [--ready-fd N] DIR` detaches (double fork: init adopts it, no
 * PDEATHSIG), listens on DIR/shim.sock (AF_UNIX SOCK_SEQPACKET, 0600) and reports its pid on
 * the ready fd. Every process of the pod is spawned by it (sbx_spawn_start, so stage 2 is its
 * own child): it holds their exit statuses until a client ACKs them, and reads their output
 * pipes into CRI log files while no Python process is there. The protocol is in shim_proto.h
 * and docs/shim-protocol.md.
 *
 * One thread, one poll() loop over the listening socket, a signalfd for SIGCHLD, the clients and
 * the output pipes. A client never blocks it: replies and EXIT events are sent without waiting
 * (a client whose socket is full is disconnected; it reconnects and LISTs), OUTPUT events a
 * client cannot take are dropped and counted. Nothing a client sends can make it exit, except
 * SHUTDOWN (and then only once no child runs).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "shim_proto.h"

#define MAX_LINE 16384 /* containerd's max_container_log_line_size (sandbox/logs/cri.py) */
#define READ_CHUNK SHIM_OUTPUT_MAX
#define OUT_BUF (64 * 1024)
#define LOG_FLAGS (O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW)

/* One output pipe: its read end and the unfinished line (at most MAX_LINE bytes plus a '\r'
 * that may start a "\r\n"), cut as logs/cri.py's LineSplitter cuts it. */
struct stream {
        int fd; /* -1 once at EOF */
        size_t n;
        char *tail; /* MAX_LINE + 1 bytes, allocated with the child */
};

struct child {
        char id[SHIM_ID_MAX];
        pid_t pid;
        int running;
        int status;
        int64_t exit_ns;
        int delivered; /* its EXIT reached at least one client */
        int acked;
        char *log_path; /* NULL: no log, no pipes */
        int log_fd;
        struct stream out[2]; /* stdout, stderr */
};

struct client {
        int fd;
        int hello;
        int watch;
        uint64_t dropped; /* OUTPUT events not sent since the last one that was */
};

static struct child **children;
static size_t n_children;
static struct client *clients;
static size_t n_clients;
static int shutdown_asked;
static char out_buf[OUT_BUF];
static size_t out_len;

static void *xrealloc(void *p, size_t size)
{
        void *q = realloc(p, size);
        if (!q) {
                /* Out of memory in the pod's parent: dying would kill the pod (PDEATHSIG); wait
                 * and let the next round try again. */
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        return q;
}

static int64_t realtime_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- CRI log records ---------------------------------------------------------------------- */

/* `<RFC3339Nano local time> <stream> `, as logs/cri.py's record_prefix: the fraction without
 * trailing zeros, `Z` for offset 0. */
static size_t record_prefix(char *out, size_t size, int stream, int64_t ns)
{
        time_t secs = (time_t)(ns / 1000000000);
        long nanos = (long)(ns % 1000000000);
        struct tm tm;
        localtime_r(&secs, &tm);
        size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
        if (nanos) {
                n += (size_t)snprintf(out + n, size - n, ".%09ld", nanos);
                while (out[n - 1] == '0')
                        n--;
        }
        long off = tm.tm_gmtoff;
        if (off == 0) {
                out[n++] = 'Z';
        } else {
                char sign = off < 0 ? '-' : '+';
                off = (off < 0 ? -off : off) / 60;
                n += (size_t)snprintf(out + n, size - n, "%c%02ld:%02ld", sign, off / 60, off % 60);
        }
        n += (size_t)snprintf(out + n, size - n, " %s ", stream == 0 ? "stdout" : "stderr");
        return n;
}

static void flush_log(struct child *c)
{
        size_t done = 0;
        while (done < out_len && c->log_fd >= 0) {
                ssize_t rc = write(c->log_fd, out_buf + done, out_len - done);
                if (rc < 0 && errno == EINTR)
                        continue;
                if (rc <= 0)
                        break; /* a full disk loses output; the shim goes on */
                done += (size_t)rc;
        }
        out_len = 0;
}

static void emit(struct child *c, const char *prefix, size_t plen, char tag, const char *data, size_t len)
{
        if (out_len + plen + len + 3 > sizeof out_buf)
                flush_log(c);
        memcpy(out_buf + out_len, prefix, plen);
        out_len += plen;
        out_buf[out_len++] = tag;
        out_buf[out_len++] = ' ';
        memcpy(out_buf + out_len, data, len);
        out_len += len;
        out_buf[out_len++] = '\n';
}

/* A complete line: its "\r\n" ending dropped, then P chunks of MAX_LINE and an F with the rest. */
static void emit_line(struct child *c, const char *prefix, size_t plen, const char *line, size_t len, char final)
{
        if (len && line[len - 1] == '\r' && final == 'F')
                len--;
        while (len > MAX_LINE) {
                emit(c, prefix, plen, 'P', line, MAX_LINE);
                line += MAX_LINE;
                len -= MAX_LINE;
        }
        emit(c, prefix, plen, final, line, len);
}

/* Feed bytes read from one pipe: complete lines become records, an unfinished one waits in the
 * tail, cut into P records once it is longer than MAX_LINE (not counting a trailing '\r'). */
static void feed(struct child *c, int which, const char *data, size_t len, int64_t ns)
{
        struct stream *s = &c->out[which];
        char prefix[96];
        size_t plen = record_prefix(prefix, sizeof prefix, which, ns);
        while (len) {
                const char *nl = memchr(data, '\n', len);
                size_t take = nl ? (size_t)(nl - data) : len;
                if (nl && s->n == 0) {
                        emit_line(c, prefix, plen, data, take, 'F');
                } else {
                        const char *p = data;
                        size_t left = take;
                        while (left) {
                                if (s->n == MAX_LINE + 1) {
                                        /* full, and its '\r' is not the end of the line: cut */
                                        emit(c, prefix, plen, 'P', s->tail, MAX_LINE);
                                        memmove(s->tail, s->tail + MAX_LINE, s->n - MAX_LINE);
                                        s->n -= MAX_LINE;
                                }
                                size_t room = MAX_LINE + 1 - s->n;
                                size_t k = left < room ? left : room;
                                memcpy(s->tail + s->n, p, k);
                                s->n += k;
                                p += k;
                                left -= k;
                                size_t limit = s->n - (s->tail[s->n - 1] == '\r');
                                if (limit > MAX_LINE) {
                                        emit(c, prefix, plen, 'P', s->tail, MAX_LINE);
                                        memmove(s->tail, s->tail + MAX_LINE, s->n - MAX_LINE);
                                        s->n -= MAX_LINE;
                                }
                        }
                        if (nl) {
                                emit_line(c, prefix, plen, s->tail, s->n, 'F');
                                s->n = 0;
                        }
                }
                if (!nl)
                        break;
                data += take + 1;
                len -= take + 1;
        }
        flush_log(c);
}

/* At EOF (or when the shim ends): an unfinished line is written as P records. */
static void flush_tail(struct child *c, int which)
{
        struct stream *s = &c->out[which];
        if (!s->n)
                return;
        char prefix[96];
        size_t plen = record_prefix(prefix, sizeof prefix, which, realtime_ns());
        emit_line(c, prefix, plen, s->tail, s->n, 'P');
        s->n = 0;
        flush_log(c);
}

/* ---- clients ------------------------------------------------------------------------------ */

static int send_fds(int fd, uint32_t type, const void *body, size_t len, const void *extra, size_t extra_len,
                    const int *fds, int n_fds)
{
        struct shim_hdr h = { .type = type, .len = (uint32_t)(len + extra_len) };
        struct iovec iov[3] = { { &h, sizeof h }, { (void *)body, len }, { (void *)extra, extra_len } };
        union {
                char buf[CMSG_SPACE(sizeof(int) * 4)];
                struct cmsghdr align;
        } ctl;
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };
        if (n_fds > 0) {
                memset(&ctl, 0, sizeof ctl);
                msg.msg_control = ctl.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n_fds);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n_fds);
        }
        ssize_t rc;
        do
                rc = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        while (rc < 0 && errno == EINTR);
        return rc < 0 ? -1 : 0;
}

static void drop_client(size_t i)
{
        close(clients[i].fd);
        clients[i] = clients[--n_clients];
}

/* A reply or an EXIT the client cannot take now: it is disconnected (it can reconnect and LIST;
 * exits stay until ACKed). Returns -1 then. */
static int reply(struct client *cl, uint32_t type, const void *body, size_t len, const int *fds, int n_fds)
{
        if (send_fds(cl->fd, type, body, len, NULL, 0, fds, n_fds) == 0)
                return 0;
        shutdown(cl->fd, SHUT_RDWR);
        cl->hello = 0; /* no more events; the loop closes it at its hang-up */
        return -1;
}

static void reply_error(struct client *cl, int err, const char *op, const char *path)
{
        struct sbx_err e;
        memset(&e, 0, sizeof e);
        sbx_fail(&e, SBX_STAGE_PARENT, err, op, path);
        reply(cl, SHIM_R_ERROR, &e, sizeof e, NULL, 0);
}

static void child_info(const struct child *c, struct shim_child *info)
{
        memset(info, 0, sizeof *info);
        memcpy(info->id, c->id, sizeof info->id);
        info->pid = c->pid;
        info->state = c->running ? SHIM_RUNNING : SHIM_EXITED;
        info->status = c->status;
        info->exit_ns = c->exit_ns;
}

static void broadcast_exit(struct child *c)
{
        struct shim_child info;
        child_info(c, &info);
        for (size_t i = 0; i < n_clients; i++)
                if (clients[i].hello && reply(&clients[i], SHIM_E_EXIT, &info, sizeof info, NULL, 0) == 0)
                        c->delivered = 1;
}

static void broadcast_output(const struct child *c, int which, const char *data, size_t len)
{
        struct shim_output o;
        memset(&o, 0, sizeof o);
        memcpy(o.id, c->id, sizeof o.id);
        o.stream = which == 0 ? SHIM_STDOUT : SHIM_STDERR;
        o.len = (uint32_t)len;
        for (size_t i = 0; i < n_clients; i++) {
                struct client *cl = &clients[i];
                if (!cl->hello || !cl->watch)
                        continue;
                if (cl->dropped) {
                        struct shim_count n = { cl->dropped };
                        if (send_fds(cl->fd, SHIM_E_DROPPED, &n, sizeof n, NULL, 0, NULL, 0) < 0) {
                                cl->dropped++;
                                continue;
                        }
                        cl->dropped = 0;
                }
                if (send_fds(cl->fd, SHIM_E_OUTPUT, &o, sizeof o, data, len, NULL, 0) < 0)
                        cl->dropped++;
        }
}

/* ---- children ----------------------------------------------------------------------------- */

static struct child *find_id(const char *id)
{
        for (size_t i = 0; i < n_children; i++)
                if (!children[i]->acked && strncmp(children[i]->id, id, SHIM_ID_MAX) == 0)
                        return children[i];
        return NULL;
}

static struct child *find_pid(pid_t pid)
{
        for (size_t i = 0; i < n_children; i++)
                if (children[i]->pid == pid && !children[i]->acked)
                        return children[i];
        return NULL;
}

static void free_child(struct child *c)
{
        for (int k = 0; k < 2; k++) {
                if (c->out[k].fd >= 0)
                        close(c->out[k].fd);
                free(c->out[k].tail);
        }
        if (c->log_fd >= 0)
                close(c->log_fd);
        free(c->log_path);
        free(c);
}

/* An entry goes once its exit is acked and its pipes reached EOF (a grandchild may hold them). */
static void collect(void)
{
        for (size_t i = 0; i < n_children;) {
                struct child *c = children[i];
                if (c->acked && c->out[0].fd < 0 && c->out[1].fd < 0) {
                        free_child(c);
                        children[i] = children[--n_children];
                } else {
                        i++;
                }
        }
}

/* Read one pipe: when `drain`, everything it holds now (so an EXIT follows every line written
 * before it; only that much, so a grandchild that keeps writing cannot hold the loop), else one
 * chunk (the loop comes back). At EOF the unfinished line is written and the pipe closed. */
static void pump(struct child *c, int which, int drain)
{
        static char buf[READ_CHUNK];
        struct stream *s = &c->out[which];
        int left = 1; /* not draining: one read (the loop comes back) */
        if (drain && (s->fd < 0 || ioctl(s->fd, FIONREAD, &left) < 0 || left <= 0))
                left = 1; /* one read: it sees EOF or EAGAIN */
        while (s->fd >= 0 && left > 0) {
                ssize_t n = read(s->fd, buf, drain && (size_t)left < sizeof buf ? (size_t)left : sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        flush_tail(c, which);
                        close(s->fd);
                        s->fd = -1;
                        return;
                }
                feed(c, which, buf, (size_t)n, realtime_ns());
                broadcast_output(c, which, buf, (size_t)n);
                if (!drain)
                        return;
                left -= (int)n;
        }
}

static void reap(void)
{
        for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                if (pid < 0 && errno == EINTR)
                        continue;
                if (pid <= 0)
                        return;
                struct child *c = find_pid(pid);
                if (!c || !c->running)
                        continue; /* an orphan we adopted as subreaper */
                pump(c, 0, 1);
                pump(c, 1, 1);
                c->running = 0;
                c->status = status;
                c->exit_ns = realtime_ns();
                broadcast_exit(c);
        }
}

/* ---- requests ----------------------------------------------------------------------------- */

struct unpacked {
        char *buf;
        struct sbx_spawn_req req;
        const char **argv, **envp, **sysctls, **join_cgroups;
        struct sbx_mount_op *ops;
};

static void free_unpacked(struct unpacked *u)
{
        free(u->buf);
        free(u->argv);
        free(u->envp);
        free(u->sysctls);
        free(u->join_cgroups);
        free(u->ops);
}

static int str_at(const char *buf, uint32_t size, uint32_t off, const char **out)
{
        if (off == 0) {
                *out = NULL;
                return 0;
        }
        if (off < sizeof(struct shim_req) || off >= size)
                return -1;
        *out = buf + off;
        return 0;
}

static int array_at(uint32_t size, uint32_t off, uint32_t n, size_t elem, size_t align)
{
        if (n == 0)
                return 0;
        if (off < sizeof(struct shim_req) || off % align || n > size / elem || (uint64_t)off + (uint64_t)n * elem > size)
                return -1;
        return 0;
}

static int fd_at(int index, const int *fds, int n_fds)
{
        if (index < 0)
                return -1;
        return index >= 1 && index < n_fds ? fds[index] : -2;
}

/* NULL-terminated string vector from an array of offsets. */
static const char **strv_at(const char *buf, uint32_t size, uint32_t off, uint32_t n)
{
        if (array_at(size, off, n, sizeof(uint32_t), 4) < 0)
                return NULL;
        const char **v = calloc((size_t)n + 1, sizeof *v);
        for (uint32_t i = 0; v && i < n; i++) {
                uint32_t at;
                memcpy(&at, buf + off + 4 * i, 4);
                if (str_at(buf, size, at, &v[i]) < 0 || !v[i]) {
                        free(v);
                        return NULL;
                }
        }
        return v;
}

static int read_request(int memfd, struct unpacked *u)
{
        struct stat st;
        if (fstat(memfd, &st) < 0 || st.st_size < (off_t)sizeof(struct shim_req) || st.st_size > SHIM_REQ_MAX)
                return -1;
        size_t size = (size_t)st.st_size;
        u->buf = malloc(size);
        if (!u->buf)
                return -1;
        for (size_t done = 0; done < size;) {
                ssize_t n = pread(memfd, u->buf + done, size - done, (off_t)done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -1;
                done += (size_t)n;
        }
        return (int)size;
}

/* The packed request into a struct sbx_spawn_req whose pointers point into u->buf. */
static int unpack(int memfd, const int *fds, int n_fds, struct unpacked *u)
{
        int got = read_request(memfd, u);
        if (got < 0)
                return -1;
        uint32_t size = (uint32_t)got;
        const char *buf = u->buf;
        struct shim_req h;
        memcpy(&h, buf, sizeof h);
        if ((h.magic != SHIM_REQ_MAGIC && h.magic != SHIM_REQ_MAGIC2) || h.size != size || buf[size - 1] != '\0')
                return -1;
        struct shim_req_ext x = { .cgroup_root_fd = -1 };
        if (h.magic == SHIM_REQ_MAGIC2) {
                if (size < sizeof h + sizeof x)
                        return -1;
                memcpy(&x, buf + sizeof h, sizeof x);
        }
        struct sbx_spawn_req *r = &u->req;
        r->join_pidfd = fd_at(h.join_fd, fds, n_fds);
        r->exec_fd = fd_at(h.exec_fd, fds, n_fds);
        r->cgroup_fd = fd_at(h.cgroup_fd, fds, n_fds);
        r->cgroup_root_fd = fd_at(x.cgroup_root_fd, fds, n_fds);
        for (int i = 0; i < 3; i++)
                r->stdio[i] = fd_at(h.stdio[i], fds, n_fds);
        if (r->join_pidfd == -2 || r->exec_fd == -2 || r->cgroup_fd == -2 || r->cgroup_root_fd == -2 ||
            r->stdio[0] == -2 || r->stdio[1] == -2 || r->stdio[2] == -2)
                return -1;
        r->join_ns = h.join_ns;
        r->new_ns = h.new_ns;
        r->loopback_up = h.loopback_up;
        r->pivot = h.pivot;
        r->readonly_root = h.readonly_root;
        r->set_oom_score_adj = h.set_oom_score_adj;
        r->oom_score_adj = h.oom_score_adj;
        r->uid = h.uid;
        r->gid = h.gid;
        r->no_new_privs = h.no_new_privs;
        r->set_caps = h.set_caps;
        r->caps = h.caps;
        r->new_session = h.new_session;
        r->pdeathsig = h.pdeathsig;
        r->trace = h.trace != 0;
        if (str_at(buf, size, h.hostname, &r->hostname) < 0 || str_at(buf, size, h.pod_mount, &r->pod_mount) < 0 ||
            str_at(buf, size, h.stage_name, &r->stage_name) < 0 || str_at(buf, size, h.cwd, &r->cwd) < 0)
                return -1;
        u->argv = strv_at(buf, size, h.argv, h.n_argv);
        u->envp = strv_at(buf, size, h.envp, h.n_envp);
        u->sysctls = strv_at(buf, size, h.sysctls, h.n_sysctls);
        if (!u->argv || !u->envp || !u->sysctls || h.n_argv == 0)
                return -1;
        r->argv = u->argv;
        r->envp = u->envp;
        r->sysctls = h.n_sysctls ? u->sysctls : NULL;
        if (x.n_join_cgroups) {
                u->join_cgroups = strv_at(buf, size, x.join_cgroups, x.n_join_cgroups);
                if (!u->join_cgroups || r->cgroup_root_fd < 0)
                        return -1;
                r->join_cgroups = u->join_cgroups;
        }
        if (array_at(size, h.groups, h.n_groups, 4, 4) < 0 || array_at(size, h.seccomp, h.seccomp_len, 8, 8) < 0 ||
            array_at(size, h.ops, h.n_ops, sizeof(struct shim_req_op), 8) < 0)
                return -1;
        r->groups = h.n_groups ? (const unsigned int *)(const void *)(buf + h.groups) : NULL;
        r->n_groups = (int)h.n_groups;
        r->seccomp_filter = h.seccomp_len ? buf + h.seccomp : NULL;
        r->seccomp_len = (int)h.seccomp_len;
        u->ops = calloc((size_t)h.n_ops + 1, sizeof *u->ops);
        if (!u->ops)
                return -1;
        for (uint32_t i = 0; i < h.n_ops; i++) {
                struct shim_req_op op;
                memcpy(&op, buf + h.ops + i * sizeof op, sizeof op);
                struct sbx_mount_op *m = &u->ops[i];
                m->kind = (int)op.kind;
                m->flags = (unsigned long)op.flags;
                if (str_at(buf, size, op.source, &m->source) < 0 || str_at(buf, size, op.target, &m->target) < 0 ||
                    str_at(buf, size, op.fstype, &m->fstype) < 0 || str_at(buf, size, op.data, &m->data) < 0)
                        return -1;
        }
        r->ops = u->ops;
        r->n_ops = (int)h.n_ops;
        return 0;
}

static struct child *new_child(const char *id, const char *log_path, int log_len)
{
        struct child *c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        memcpy(c->id, id, SHIM_ID_MAX);
        c->id[SHIM_ID_MAX - 1] = '\0';
        c->log_fd = c->out[0].fd = c->out[1].fd = -1;
        if (log_len > 0) {
                c->log_path = strndup(log_path, (size_t)log_len);
                c->out[0].tail = malloc(MAX_LINE + 1);
                c->out[1].tail = malloc(MAX_LINE + 1);
                if (!c->log_path || !c->out[0].tail || !c->out[1].tail) {
                        free_child(c);
                        return NULL;
                }
        }
        return c;
}

/* The log file and the two pipes whose write ends replace the request's stdout and stderr. */
static int open_output(struct child *c, int write_ends[2], struct sbx_err *e)
{
        c->log_fd = open(c->log_path, LOG_FLAGS, 0640);
        if (c->log_fd < 0)
                return sbx_fail(e, SBX_STAGE_PARENT, errno, "open log", c->log_path);
        for (int k = 0; k < 2; k++) {
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0)
                        return sbx_fail(e, SBX_STAGE_PARENT, errno, "pipe", "");
                fcntl(p[0], F_SETFL, O_NONBLOCK);
                c->out[k].fd = p[0];
                write_ends[k] = p[1];
        }
        return 0;
}

/* `--trace`: stage 1 runs here, so its records are read by this process; each goes to the client
 * whose SPAWN it is, before the reply (stage 2's come to the client over the spawn channel). */
static void forward_trace(void *ctx, const struct sbx_trace *t)
{
        reply((struct client *)ctx, SHIM_R_TRACE, t, sizeof *t, NULL, 0);
}

static void handle_spawn(struct client *cl, const char *body, size_t len, const int *fds, int n_fds)
{
        struct shim_spawn sp;
        memcpy(&sp, body, sizeof sp);
        if (sp.log_len != len - sizeof sp || sp.log_len >= PATH_MAX || n_fds < 1 || !sp.id[0] ||
            memchr(sp.id, 0, SHIM_ID_MAX) == NULL) {
                reply_error(cl, EINVAL, "bad spawn message", "");
                return;
        }
        if (find_id(sp.id)) {
                reply_error(cl, EEXIST, "child id in use", sp.id);
                return;
        }
        struct unpacked u;
        memset(&u, 0, sizeof u);
        struct child *c = NULL;
        if (unpack(fds[0], fds, n_fds, &u) < 0) {
                free_unpacked(&u);
                reply_error(cl, EINVAL, "bad packed spawn request", sp.id);
                return;
        }
        c = new_child(sp.id, body + sizeof sp, (int)sp.log_len);
        struct child **grown = c ? xrealloc(children, (n_children + 1) * sizeof *children) : NULL;
        if (!grown) {
                free_unpacked(&u);
                if (c)
                        free_child(c);
                reply_error(cl, ENOMEM, "spawn", sp.id);
                return;
        }
        children = grown;
        struct sbx_spawn_res res;
        memset(&res, 0, sizeof res);
        int write_ends[2] = { -1, -1 };
        int rc = 0;
        if (c->log_path) {
                rc = open_output(c, write_ends, &res.err);
                u.req.stdio[1] = write_ends[0];
                u.req.stdio[2] = write_ends[1];
        }
        if (u.req.trace) {
                res.on_trace = forward_trace;
                res.trace_ctx = cl;
        }
        if (rc == 0)
                rc = sbx_spawn_start(&u.req, &res);
        for (int k = 0; k < 2; k++)
                if (write_ends[k] >= 0)
                        close(write_ends[k]); /* only the child's copies remain: EOF comes with its end */
        free_unpacked(&u);
        if (rc < 0) {
                free_child(c);
                reply(cl, SHIM_R_ERROR, &res.err, sizeof res.err, NULL, 0);
                return;
        }
        c->pid = res.pid;
        c->running = 1;
        children[n_children++] = c;
        /* Our own child until reaped, so this pidfd names it without a race. */
        int pidfd = (int)syscall(SYS_pidfd_open, res.pid, 0);
        struct shim_spawned out;
        memset(&out, 0, sizeof out);
        memcpy(out.id, c->id, sizeof out.id);
        out.pid = res.pid;
        int sent[2] = { res.chan, pidfd };
        if (pidfd < 0) {
                kill(res.pid, SIGKILL);
                reply_error(cl, errno, "pidfd_open", c->id);
        } else {
                reply(cl, SHIM_R_SPAWNED, &out, sizeof out, sent, 2);
        }
        /* The client holds the channel alone: if it goes away before "go", stage 2 reads EOF and
         * exits (its EXIT then tells every client). */
        close(res.chan);
        if (pidfd >= 0)
                close(pidfd);
}

static void handle_list(struct client *cl)
{
        uint64_t count = 0;
        for (size_t i = 0; i < n_children; i++) {
                struct child *c = children[i];
                if (c->acked)
                        continue;
                struct shim_child info;
                child_info(c, &info);
                int pidfd = c->running ? (int)syscall(SYS_pidfd_open, c->pid, 0) : -1;
                int rc = reply(cl, SHIM_R_LIST_ENTRY, &info, sizeof info, &pidfd, pidfd >= 0 ? 1 : 0);
                if (pidfd >= 0)
                        close(pidfd);
                if (rc < 0)
                        return;
                count++;
        }
        struct shim_count n = { count };
        reply(cl, SHIM_R_LIST_END, &n, sizeof n, NULL, 0);
}

static void handle_reopen(struct client *cl, const char *id)
{
        struct child *c = find_id(id);
        if (!c || !c->log_path) {
                reply_error(cl, c ? EINVAL : ESRCH, c ? "child has no log" : "no such child", id);
                return;
        }
        int fd = open(c->log_path, LOG_FLAGS, 0640);
        if (fd < 0) {
                reply_error(cl, errno, "reopen log", c->log_path);
                return;
        }
        if (c->log_fd >= 0)
                close(c->log_fd);
        c->log_fd = fd;
        reply(cl, SHIM_R_OK, NULL, 0, NULL, 0);
}

static void handle_ack(struct client *cl, pid_t pid)
{
        struct child *c = find_pid(pid);
        if (!c || c->running) {
                reply_error(cl, c ? EBUSY : ESRCH, c ? "child still runs" : "no such exit", "");
                return;
        }
        c->acked = 1;
        collect();
        reply(cl, SHIM_R_OK, NULL, 0, NULL, 0);
}

static void close_fds(const int *fds, int n)
{
        for (int i = 0; i < n; i++)
                close(fds[i]);
}

/* Expected body size per request type; -1: variable (SPAWN), -2: unknown. */
static long body_size(uint32_t type)
{
        switch (type) {
        case SHIM_HELLO:
                return sizeof(struct shim_hello);
        case SHIM_SPAWN:
                return -1;
        case SHIM_ACK:
                return sizeof(struct shim_pid);
        case SHIM_LIST:
        case SHIM_SHUTDOWN:
                return 0;
        case SHIM_WATCH:
                return sizeof(struct shim_watch);
        case SHIM_REOPEN:
                return sizeof(struct shim_id);
        default:
                return -2;
        }
}

static int dispatch(struct client *cl, uint32_t type, const char *body, size_t len, const int *fds, int n_fds)
{
        long want = body_size(type);
        if (want == -2 || (want >= 0 && (size_t)want != len) || (want == -1 && len < sizeof(struct shim_spawn)))
                return -1;
        if (n_fds && type != SHIM_SPAWN)
                return -1;
        if (!cl->hello && type != SHIM_HELLO)
                return -1;
        switch (type) {
        case SHIM_HELLO: {
                struct shim_hello h;
                memcpy(&h, body, sizeof h);
                if (h.version < 1 || h.version > SHIM_PROTO_VERSION) {
                        reply_error(cl, EPROTONOSUPPORT, "protocol version", "");
                        return -1;
                }
                cl->hello = 1;
                struct shim_hello_reply r = { SHIM_PROTO_VERSION, (int32_t)getpid() };
                reply(cl, SHIM_R_HELLO, &r, sizeof r, NULL, 0);
                return 0;
        }
        case SHIM_SPAWN:
                handle_spawn(cl, body, len, fds, n_fds);
                return 0;
        case SHIM_ACK: {
                struct shim_pid p;
                memcpy(&p, body, sizeof p);
                handle_ack(cl, p.pid);
                return 0;
        }
        case SHIM_LIST:
                handle_list(cl);
                return 0;
        case SHIM_WATCH: {
                struct shim_watch w;
                memcpy(&w, body, sizeof w);
                cl->watch = w.on != 0;
                reply(cl, SHIM_R_OK, NULL, 0, NULL, 0);
                return 0;
        }
        case SHIM_REOPEN: {
                struct shim_id r;
                memcpy(&r, body, sizeof r);
                r.id[SHIM_ID_MAX - 1] = '\0';
                handle_reopen(cl, r.id);
                return 0;
        }
        default: /* SHIM_SHUTDOWN */
                shutdown_asked = 1;
                reply(cl, SHIM_R_OK, NULL, 0, NULL, 0);
                return 0;
        }
}

/* One message from client i; returns -1 when the client must go (EOF, garbage, error). */
static int serve(size_t i)
{
        static char buf[SHIM_MSG_MAX];
        union {
                char ctl[CMSG_SPACE(sizeof(int) * SHIM_MAX_FDS)];
                struct cmsghdr align;
        } u;
        struct iovec iov = { buf, sizeof buf };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.ctl, .msg_controllen = sizeof u.ctl };
        ssize_t n = recvmsg(clients[i].fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -1;
        int fds[SHIM_MAX_FDS];
        int n_fds = 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (int j = 0; j < k; j++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(cm) + j * sizeof(int), sizeof fd);
                        if (n_fds < SHIM_MAX_FDS)
                                fds[n_fds++] = fd;
                        else
                                close(fd);
                }
        }
        struct shim_hdr h;
        int rc = -1;
        if (n > 0 && (size_t)n >= sizeof h && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
                memcpy(&h, buf, sizeof h);
                if (h.len == (size_t)n - sizeof h)
                        rc = dispatch(&clients[i], h.type, buf + sizeof h, h.len, fds, n_fds);
        }
        close_fds(fds, n_fds);
        return rc;
}

/* ---- start-up and the loop ---------------------------------------------------------------- */

static struct sockaddr_un addr = { .sun_family = AF_UNIX };

static int listen_at(const char *dir)
{
        /* The socket is named through a directory fd held for the shim's life: a pod's directory
         * can be longer than sun_path's 108 bytes (a deep --root, a long pod name). */
        int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0) {
                fprintf(stderr, "shim: %s: %s\n", dir, strerror(errno));
                return -1;
        }
        snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/shim.sock", dir_fd);
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -1;
        /* A socket file left by a dead shim is replaced; a live shim's is not (it answers). */
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
                fprintf(stderr, "shim: %s/shim.sock: another shim is listening\n", dir);
                close(fd);
                return -1;
        }
        close(fd);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        unlink(addr.sun_path);
        mode_t old = umask(0077);
        int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
        umask(old);
        if (rc < 0 || chmod(addr.sun_path, 0600) < 0 || listen(fd, 64) < 0) {
                fprintf(stderr, "shim: %s/shim.sock: %s\n", dir, strerror(errno));
                close(fd);
                return -1;
        }
        return fd;
}

/* Double fork: the shim's parent is init (or the nearest subreaper), never a Python process
 * whose death would otherwise take it along; the first process exits once it is on its way. */
static int detach(void)
{
        pid_t first = fork();
        if (first < 0)
                return -1;
        if (first > 0) {
                int status;
                while (waitpid(first, &status, 0) < 0 && errno == EINTR)
                        ;
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
        }
        setsid();
        pid_t second = fork();
        if (second < 0)
                _exit(1);
        if (second > 0)
                _exit(0);
        return 0;
}

static void report_ready(int ready_fd)
{
        if (ready_fd < 0)
                return;
        char text[24];
        int n = snprintf(text, sizeof text, "%d\n", (int)getpid());
        ssize_t rc = write(ready_fd, text, (size_t)n);
        (void)rc;
        close(ready_fd);
}

static void quiet_stdio(void)
{
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0)
                return;
        for (int fd = 0; fd < 3; fd++)
                dup2(null, fd);
        if (null > 2)
                close(null);
}

static int all_done(void)
{
        for (size_t i = 0; i < n_children; i++) {
                const struct child *c = children[i];
                if (c->running || (!c->acked && !c->delivered))
                        return 0;
        }
        return 1;
}

/* At the end: what the pipes hold now goes to the logs, unfinished lines as P records. */
static void final_drain(void)
{
        for (size_t i = 0; i < n_children; i++) {
                for (int k = 0; k < 2; k++) {
                        pump(children[i], k, 1);
                        flush_tail(children[i], k);
                }
        }
}

static void accept_clients(int lfd)
{
        for (;;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0)
                        return;
                struct client *grown = xrealloc(clients, (n_clients + 1) * sizeof *clients);
                if (!grown) {
                        close(fd);
                        return;
                }
                clients = grown;
                clients[n_clients++] = (struct client){ .fd = fd };
        }
}

/* Where each pollfd came from: the listener, the signalfd, client i, or child i's stream k. */
enum { SRC_LISTEN, SRC_SIGNAL, SRC_CLIENT, SRC_PIPE };
struct source {
        int kind;
        size_t index;
        int stream;
};

static int run(int lfd, int sfd)
{
        struct pollfd *pfds = NULL;
        struct source *srcs = NULL;
        size_t cap = 0;
        while (!(shutdown_asked && all_done())) {
                size_t want = 2 + n_clients + 2 * n_children;
                if (want > cap) {
                        struct pollfd *p = xrealloc(pfds, want * sizeof *pfds);
                        if (p)
                                pfds = p;
                        struct source *s = xrealloc(srcs, want * sizeof *srcs);
                        if (s)
                                srcs = s;
                        if (!p || !s)
                                continue;
                        cap = want;
                }
                size_t n = 0;
                pfds[n] = (struct pollfd){ .fd = lfd, .events = POLLIN };
                srcs[n++] = (struct source){ SRC_LISTEN, 0, 0 };
                pfds[n] = (struct pollfd){ .fd = sfd, .events = POLLIN };
                srcs[n++] = (struct source){ SRC_SIGNAL, 0, 0 };
                for (size_t i = 0; i < n_clients; i++) {
                        pfds[n] = (struct pollfd){ .fd = clients[i].fd, .events = POLLIN };
                        srcs[n++] = (struct source){ SRC_CLIENT, i, 0 };
                }
                for (size_t i = 0; i < n_children; i++)
                        for (int k = 0; k < 2; k++)
                                if (children[i]->out[k].fd >= 0) {
                                        pfds[n] = (struct pollfd){ .fd = children[i]->out[k].fd, .events = POLLIN };
                                        srcs[n++] = (struct source){ SRC_PIPE, i, k };
                                }
                if (poll(pfds, n, -1) < 0)
                        continue;
                /* Pipes first, then exits (which drain their own), then clients: a client's
                 * request may change the tables, so it is served last and the round ends. */
                for (size_t j = 0; j < n; j++)
                        if (srcs[j].kind == SRC_PIPE && pfds[j].revents)
                                pump(children[srcs[j].index], srcs[j].stream, 0);
                if (pfds[1].revents) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof si) > 0)
                                ;
                        reap();
                }
                collect();
                if (pfds[0].revents)
                        accept_clients(lfd);
                for (size_t j = n; j-- > 0;) {
                        if (srcs[j].kind != SRC_CLIENT || !pfds[j].revents)
                                continue;
                        size_t i = srcs[j].index;
                        if (serve(i) < 0 || (pfds[j].revents & (POLLHUP | POLLERR) && !(pfds[j].revents & POLLIN)))
                                drop_client(i);
                }
        }
        return 0;
}

/* `shim --stage1`: stage 1 of a spawn by the runtime itself (sbx_spawn_start_exec), exec'd rather
 * than forked from it. Fd 3 is the spawn channel; its first message is the packed request (a
 * memfd) with the request's fds, as SPAWN brings them. The channel goes on to stage 2, whose
 * execve must close it: close-on-exec again (posix_spawn's dup2 cleared it). Anything wrong with
 * the request ends this process without a report: the runtime reads "stage 1 died". */
static int stage1_main(void)
{
        int chan = SBX_STAGE1_CHAN_FD;
        if (fcntl(chan, F_SETFD, FD_CLOEXEC) < 0)
                return 127;
        char byte;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        union {
                char buf[CMSG_SPACE(sizeof(int) * SHIM_MAX_FDS)];
                struct cmsghdr align;
        } ctl;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
        ssize_t n;
        do
                n = recvmsg(chan, &msg, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        int fds[SHIM_MAX_FDS];
        int n_fds = 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); n > 0 && cm; cm = CMSG_NXTHDR(&msg, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t k = 0; k < count && n_fds < SHIM_MAX_FDS; k++)
                        memcpy(&fds[n_fds++], CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
        }
        if (n != 1 || (msg.msg_flags & MSG_CTRUNC) || n_fds < 1)
                return 127;
        struct unpacked u;
        memset(&u, 0, sizeof u);
        if (unpack(fds[0], fds, n_fds, &u) < 0)
                return 127;
        close(fds[0]);
        sbx_stage1(&u.req, chan);
}

/* `shim --network-remover DIR STAMP GRACE_MS LINGER_MS PYTHON ARGS...`: the waiting half of the
 * bridge's remover (sandbox/network/remover.py has the rule and the protocol). A Python
 * remover's interpreter start cost ~15 ms of CPU beside the next pod on this 2-core host, per
 * hand-over; this binary starts in ~0.5 ms. It sleeps GRACE_MS, then under the network's lock
 * (DIR/lock, flock, re-checked against deletion as ipam.py does) looks once: a keep marker, or
 * a lease once LINGER_MS have passed, ends it (dropping DIR/remover if it names this pid); a
 * lease within LINGER_MS, or a directory mtime other than STAMP, re-arms with the new mtime;
 * otherwise (no pod used the network for a grace) it execs PYTHON ARGS... STAMP now, the Python
 * remover, which looks again under the lock at once and removes the network. Whatever it does
 * not know (the directory half-removed) goes to that remover too. */
static int64_t mtime_ns(int dfd)
{
        struct stat st;
        if (fstat(dfd, &st) < 0)
                return -1;
        return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

static int is_address(const char *name)
{
        unsigned char buf[16];
        return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static int any_lease(int dfd)
{
        int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd < 0 ? NULL : fdopendir(fd);
        if (!d) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        struct dirent *e;
        int found = 0;
        while (!found && (e = readdir(d)))
                found = is_address(e->d_name);
        closedir(d);
        return found;
}

/* The network's lock, as Ipam.__enter__ takes it; -1 when the directory is gone. */
static int network_lock(int dfd)
{
        for (;;) {
                int fd = openat(dfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return -1;
                struct stat held, named;
                if (flock(fd, LOCK_EX) == 0 && fstat(fd, &held) == 0 && fstatat(dfd, "lock", &named, 0) == 0 &&
                    held.st_ino == named.st_ino)
                        return fd;
                close(fd);
                if (fstatat(dfd, ".", &named, 0) < 0 || named.st_nlink == 0)
                        return -1;
        }
}

static void set_policy(int policy)
{
        struct sched_param param = {0};
        sched_setscheduler(0, policy, &param);
}

static int network_remover_main(int argc, char **argv)
{
        if (argc < 7) {
                fprintf(stderr, "usage: shim --network-remover DIR STAMP GRACE_MS LINGER_MS PYTHON ARGS...\n");
                return 2;
        }
        syscall(SYS_close_range, 3, ~0U, 0); /* nothing of the runtime's (its pod lock, pipes) */
        int dfd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return 0; /* removed already (`sandbox gc`) */
        int64_t stamp = strtoll(argv[3], NULL, 10);
        long grace_ms = atol(argv[4]), linger_ms = atol(argv[5]);
        struct timespec start, now, grace = {grace_ms / 1000, (grace_ms % 1000) * 1000000};
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                while (nanosleep(&grace, &grace) < 0 && errno == EINTR)
                        ;
                grace = (struct timespec){grace_ms / 1000, (grace_ms % 1000) * 1000000};
                set_policy(SCHED_OTHER); /* a runtime may wait for the lock we take */
                int lock = network_lock(dfd);
                if (lock < 0)
                        return 0;
                struct stat st;
                if (fstatat(dfd, "subnet", &st, 0) < 0)
                        break; /* removed before we locked: the Python remover tidies up */
                clock_gettime(CLOCK_MONOTONIC, &now);
                int linger = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < linger_ms;
                int keep = fstatat(dfd, "keep", &st, AT_SYMLINK_NOFOLLOW) == 0;
                int leased = any_lease(dfd);
                if (leased < 0)
                        return 0;
                if (leased && linger && !keep) {
                        stamp = mtime_ns(dfd); /* still pending: the pod's release spawns no other */
                } else if (leased || keep) {
                        char buf[24] = {0};
                        int fd = openat(dfd, "remover", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                        if (fd >= 0) {
                                ssize_t n = read(fd, buf, sizeof buf - 1);
                                close(fd);
                                if (n > 0 && atol(buf) == (long)getpid())
                                        unlinkat(dfd, "remover", 0);
                        }
                        return 0;
                } else {
                        int64_t moved = mtime_ns(dfd);
                        if (moved == stamp)
                                break; /* no pod for a grace: remove */
                        stamp = moved;
                }
                close(lock);
                set_policy(SCHED_IDLE);
        }
        /* The lock is dropped by exec (O_CLOEXEC); the remover takes it again and looks at once. */
        static char stamp_arg[24];
        snprintf(stamp_arg, sizeof stamp_arg, "%lld", (long long)stamp);
        char **args = calloc(argc - 6 + 3, sizeof *args);
        if (!args)
                return 1;
        int n = 0;
        for (int i = 6; i < argc; i++)
                args[n++] = argv[i];
        args[n++] = stamp_arg;
        args[n++] = "now";
        set_policy(SCHED_IDLE); /* the interpreter's start, as when the runtime spawned it directly */
        execv(args[0], args);
        return 127;
}

/* `shim --cgroup-remover ROOT PARENT GRACE_MS`: the pods' parent cgroup (`--cgroup-parent`), kept
 * between pods and removed once no pod used it for a grace (sandbox/cgroups/reclaim.py has the
 * rule and the protocol). fd 3, when open, is the runtime's token: an abstract AF_UNIX socket
 * bound to a name per ROOT and PARENT, whose bind fails (EADDRINUSE) while this process lives, so
 * a runtime whose last pod ends finds a remover pending with one failed bind. The parent is
 * ROOT/PARENT and ROOT/H/PARENT for each cgroup hierarchy H mounted directly below ROOT (v1 and
 * hybrid: one per controller plus `unified`). Every GRACE_MS it looks at each one (exists,
 * subdirectories from st_nlink, inode, mtime: kernfs moves a directory's mtime at each child's
 * mkdir and rmdir once its attributes exist, so each new parent's are touched once); a pod in
 * any of them, or a look that differs from the last, waits again; two equal looks without a
 * pod remove every parent (rmdir: EBUSY, a pod that came meanwhile, stops it; that pod's
 * runtime finds the parent gone, ENOENT, and makes it again). It never leaves while a parent
 * exists: a runtime that found it pending relies on it. After the removal it drops the token,
 * then looks once more: a parent made meanwhile with no pod in it (a pod being created) gets
 * the token back (bind again) and the loop goes on; a pod in it will hand over at its own end,
 * which comes after this look. */
#define CG_MAX_HIER 32
static char cg_paths[CG_MAX_HIER][PATH_MAX];
static ino_t cg_ino[CG_MAX_HIER];
static int cg_count;

static int is_cgroup_fs(const char *path)
{
        struct statfs fs;
        return statfs(path, &fs) == 0 && (fs.f_type == 0x63677270 /* CGROUP2_SUPER_MAGIC */ ||
                                          fs.f_type == 0x27e0eb /* CGROUP_SUPER_MAGIC */);
}

static int cmp_names(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ROOT/PARENT, then ROOT/H/PARENT for every cgroup mount H directly below ROOT, sorted by H (the
 * order the driver makes them in). */
static int cg_collect(const char *root, const char *parent)
{
        struct stat rst, st;
        if (stat(root, &rst) < 0)
                return -1;
        snprintf(cg_paths[cg_count++], PATH_MAX, "%s/%s", root, parent);
        DIR *d = opendir(root);
        if (!d)
                return 0;
        char *names[CG_MAX_HIER];
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)) && n < CG_MAX_HIER - 1) {
                if (e->d_type != DT_DIR || e->d_name[0] == '.')
                        continue;
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/%s", root, e->d_name);
                if (lstat(path, &st) < 0 || st.st_dev == rst.st_dev || !is_cgroup_fs(path))
                        continue; /* not a mount, or not a cgroup hierarchy */
                if ((names[n] = strdup(e->d_name)))
                        n++;
        }
        closedir(d);
        qsort(names, n, sizeof *names, cmp_names);
        for (int i = 0; i < n && cg_count < CG_MAX_HIER; i++) {
                snprintf(cg_paths[cg_count++], PATH_MAX, "%s/%s/%s", root, names[i], parent);
                free(names[i]);
        }
        return 0;
}

struct cg_look {
        int exists, pods;
        uint64_t sig;
};

static struct cg_look cg_look(void)
{
        struct cg_look l = {0, 0, 1469598103934665603ULL};
        for (int i = 0; i < cg_count; i++) {
                struct stat st;
                if (lstat(cg_paths[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
                        cg_ino[i] = 0;
                        l.sig = (l.sig ^ (uint64_t)i) * 1099511628211ULL;
                        continue;
                }
                if (st.st_ino != cg_ino[i]) { /* a new parent: its attributes made, so mkdir/rmdir move its mtime */
                        cg_ino[i] = st.st_ino;
                        utimensat(AT_FDCWD, cg_paths[i], NULL, AT_SYMLINK_NOFOLLOW);
                        lstat(cg_paths[i], &st);
                }
                l.exists = 1;
                if (st.st_nlink > 2)
                        l.pods = 1;
                uint64_t parts[3] = {(uint64_t)st.st_ino, (uint64_t)st.st_nlink,
                                     (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec};
                for (int k = 0; k < 3; k++)
                        l.sig = (l.sig ^ parts[k]) * 1099511628211ULL;
        }
        return l;
}

static int bind_token(const struct sockaddr_un *name, socklen_t len)
{
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && bind(fd, (const struct sockaddr *)name, len) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static int cgroup_remover_main(int argc, char **argv)
{
        if (argc != 5 || !argv[3][0] || strchr(argv[3], '/') || !strcmp(argv[3], ".") || !strcmp(argv[3], "..")) {
                fprintf(stderr, "usage: shim --cgroup-remover ROOT PARENT GRACE_MS (fd 3: the token)\n");
                return 2;
        }
        syscall(SYS_close_range, 4, ~0U, 0); /* nothing of the runtime's but the token */
        struct sockaddr_un name;
        socklen_t name_len = sizeof name;
        int token = 3;
        if (getsockname(token, (struct sockaddr *)&name, &name_len) < 0 || name.sun_family != AF_UNIX ||
            name_len <= sizeof(sa_family_t) + 1 || name.sun_path[0] != '\0')
                token = -1, name_len = 0; /* no token: a runtime will not find us pending, harmless */
        if (cg_collect(argv[2], argv[3]) < 0)
                return 0;
        long grace_ms = atol(argv[4]);
        struct cg_look last = cg_look();
        for (;;) {
                struct timespec grace = {grace_ms / 1000, (grace_ms % 1000) * 1000000};
                while (nanosleep(&grace, &grace) < 0 && errno == EINTR)
                        ;
                set_policy(SCHED_OTHER); /* rmdir takes the cgroup mutex a starting pod's mkdir waits for */
                struct cg_look now = cg_look();
                int removed = 0;
                if (!now.exists) {
                        removed = 1; /* gone already (`sandbox gc`) */
                } else if (!now.pods && now.sig == last.sig) {
                        removed = 1;
                        for (int i = 0; i < cg_count && removed; i++)
                                if (rmdir(cg_paths[i]) < 0 && errno != ENOENT)
                                        removed = 0; /* EBUSY: a pod came; the rest stays for now */
                        if (!removed)
                                now = cg_look();
                }
                if (removed) {
                        if (token >= 0)
                                close(token);
                        token = -1;
                        now = cg_look();
                        if (!now.exists || now.pods || name_len == 0)
                                return 0;
                        token = bind_token(&name, name_len);
                        if (token < 0)
                                return 0; /* another remover is pending */
                }
                last = now;
                set_policy(SCHED_IDLE);
        }
}

int main(int argc, char **argv)
{
        if (argc >= 2 && strcmp(argv[1], "--cgroup-remover") == 0)
                return cgroup_remover_main(argc, argv);
        if (argc >= 2 && strcmp(argv[1], "--network-remover") == 0)
                return network_remover_main(argc, argv);
        if (argc == 2 && strcmp(argv[1], "--stage1") == 0)
                return stage1_main();
        int ready_fd = -1;
        const char *dir = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--ready-fd") == 0 && i + 1 < argc)
                        ready_fd = atoi(argv[++i]);
                else if (!dir && argv[i][0] != '-')
                        dir = argv[i];
                else
                        dir = NULL, i = argc;
        }
        static char abs_dir[PATH_MAX];
        if (!dir) {
                fprintf(stderr, "usage: shim [--ready-fd N] DIR\n");
                return 2;
        }
        if (!realpath(dir, abs_dir)) {
                fprintf(stderr, "shim: %s: %s\n", dir, strerror(errno));
                return 1;
        }
        dir = abs_dir; /* it runs from / */
        /* A daemon keeps only what it was given: an inherited fd (a caller's flock, a pipe its
         * caller waits on for EOF) would otherwise live as long as the pod. */
        if (ready_fd > 3)
                syscall(SYS_close_range, 3, ready_fd - 1, 0);
        syscall(SYS_close_range, ready_fd >= 3 ? ready_fd + 1 : 3, ~0U, 0);
        if (ready_fd >= 0)
                fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
        int lfd = listen_at(dir);
        if (lfd < 0)
                return 1;
        if (detach() < 0)
                return 1;
        prctl(PR_SET_NAME, "sbx-shim", 0, 0, 0);
        /* Orphans of the pod (a hostPID container's daemons) are re-parented here and reaped. */
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        if (chdir("/") < 0)
                return 1;
        quiet_stdio();
        signal(SIGPIPE, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        sigprocmask(SIG_BLOCK, &chld, NULL);
        int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
        if (sfd < 0)
                return 1;
        report_ready(ready_fd);
        run(lfd, sfd);
        final_drain();
        unlink(addr.sun_path);
        return 0;
}
