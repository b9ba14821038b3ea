/* spawn.c: fork, namespaces, the container's process set-up, and execve.
 *
 * Stages (each renames itself with PR_SET_NAME so `ps` shows where it is):
 *   parent  (the runtime, maybe multi-threaded): socketpair, block signals, fork stage 1; or
 *           (sbx_spawn_start_exec) posix_spawn the shim binary as stage 1 and send it the packed
 *           request, so nothing of the runtime's memory is copied or made copy-on-write.
 *   stage 1 joins the pod's namespaces with setns(pidfd) and unshares new ones. A PID namespace,
 *           joined or new, only applies to children, so stage 1 clones stage 2 with CLONE_PARENT:
 *           stage 2 becomes a direct child of the runtime, which can then supervise it with a
 *           pidfd. Stage 1 reports stage 2's pid and exits.
 *   stage 2 waits for "go" (the runtime's parent-side steps), runs the mount plan, pivot_root,
 *           credentials, cwd, stdio, signal reset, then execve.
 * Failures travel as one struct sbx_err record over a SOCK_SEQPACKET channel; the channel is
 * close-on-exec, so end-of-file after "go" means execve succeeded (CPython's _posixsubprocess
 * reports exec errors the same way).
 *
 * After the fork: no malloc, no stdio, no Python (async-signal-safe calls only).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

enum { MSG_PID = 1, MSG_ERR = 2, MSG_TRACE = 3 };

struct sbx_msg {
        int type;
        int pid;
        union {
                struct sbx_err err;
                struct sbx_trace trace;
        };
};

static const char DEFAULT_PATH[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

int sbx_copy(char *dst, size_t size, const char *src)
{
        size_t n = strlen(src);
        if (n >= size) {
                memcpy(dst, src, size - 1);
                dst[size - 1] = '\0';
                return -1;
        }
        memcpy(dst, src, n + 1);
        return 0;
}

int sbx_fail(struct sbx_err *e, int stage, int err, const char *op, const char *path)
{
        e->stage = stage;
        e->err = err;
        sbx_copy(e->op, sizeof e->op, op ? op : "");
        sbx_copy(e->path, sizeof e->path, path ? path : "");
        errno = err;
        return -1;
}

static void send_msg(int chan, const struct sbx_msg *m)
{
        ssize_t rc;
        do
                rc = send(chan, m, sizeof *m, MSG_NOSIGNAL);
        while (rc < 0 && errno == EINTR);
}

/* The spawn channel while this stage traces, else -1. Set only in the stages (each its own copy
 * of memory: clone without CLONE_VM), so the runtime's stays -1. */
static int trace_chan = -1;

void sbx_report(int stage, int step, long long a, long long b, const char *text)
{
        if (trace_chan < 0)
                return;
        struct sbx_msg m;
        memset(&m, 0, sizeof m);
        m.type = MSG_TRACE;
        m.trace.stage = stage;
        m.trace.step = step;
        m.trace.a = a;
        m.trace.b = b;
        sbx_copy(m.trace.text, sizeof m.trace.text, text ? text : "");
        send_msg(trace_chan, &m);
}

/* Stage 1's /proc/<pid>/ns while it traces, opened before any setns: once it has joined a
 * container's mount namespace, "/proc/self" there names no process of its PID namespace. */
static int ns_dir = -1;

/* The inode of this process's namespace of kind `flag` (CLONE_NEW*), as /proc/PID/ns/<kind> shows it;
 * a PID namespace is the one its children get (unshare and setns only change that). */
static long long ns_inode(int flag)
{
        const char *name = flag == CLONE_NEWNS    ? "mnt"
                           : flag == CLONE_NEWUTS ? "uts"
                           : flag == CLONE_NEWIPC ? "ipc"
                           : flag == CLONE_NEWNET ? "net"
                           : flag == CLONE_NEWPID ? "pid_for_children"
                                                  : "cgroup";
        char path[48] = "/proc/self/ns/";
        sbx_copy(path + 14, sizeof path - 14, name);
        struct stat st;
        int rc = ns_dir >= 0 ? fstatat(ns_dir, name, &st, 0) : stat(path, &st);
        return rc < 0 ? 0 : (long long)st.st_ino;
}

static const int NS_FLAGS[] = { CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWCGROUP };

/* One record per namespace in `flags`, with its inode: what setns or unshare just gave us. A new
 * PID namespace has no inode before its first process: the runtime reads it once stage 2 exists. */
static void report_namespaces(int step, int flags)
{
        if (trace_chan < 0)
                return;
        if (step == SBX_TRACE_NS)
                flags &= ~CLONE_NEWPID;
        for (size_t i = 0; i < sizeof NS_FLAGS / sizeof NS_FLAGS[0]; i++)
                if (flags & NS_FLAGS[i])
                        sbx_report(SBX_STAGE_NAMESPACES, step, NS_FLAGS[i], ns_inode(NS_FLAGS[i]), NULL);
}

static __attribute__((noreturn)) void child_fail(int chan, const struct sbx_err *e)
{
        struct sbx_msg m = { .type = MSG_ERR, .err = *e };
        send_msg(chan, &m);
        _exit(127);
}

static void set_stage_name(const char *prefix, const char *stage)
{
        char name[16];
        size_t n = 0;
        for (const char *p = prefix ? prefix : "sbx"; *p && n < 8; p++)
                name[n++] = *p;
        name[n++] = ':';
        for (const char *p = stage; *p && n < sizeof name - 1; p++)
                name[n++] = *p;
        name[n] = '\0';
        prctl(PR_SET_NAME, name, 0, 0, 0);
}

static void reset_signal_handlers(void)
{
        /* No Python handler may run in the child, and Python's SIG_IGN for SIGPIPE/SIGXFSZ would
         * otherwise survive execve into the container. */
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigemptyset(&dfl.sa_mask);
        for (int sig = 1; sig < NSIG; sig++)
                sigaction(sig, &dfl, NULL);
}

static int bring_up_loopback(struct sbx_err *e)
{
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return sbx_fail(e, SBX_STAGE_NAMESPACES, errno, "socket for loopback", "lo");
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        memcpy(ifr.ifr_name, "lo", 3);
        int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
        if (rc == 0) {
                ifr.ifr_flags |= IFF_UP;
                rc = ioctl(s, SIOCSIFFLAGS, &ifr);
        }
        int saved = errno;
        close(s);
        return rc < 0 ? sbx_fail(e, SBX_STAGE_NAMESPACES, saved, "bring up loopback", "lo") : 0;
}

/* Clone a mount of the pod's own mount namespace (pause's /shm tmpfs) as a detached tree that
 * stage 2 attaches in the container. A plain bind through /proc/PID/root would fail: bind mounts
 * only take sources from the caller's mount namespace. Returns the tree's fd. */
static int clone_pod_mount(const struct sbx_spawn_req *req, struct sbx_err *e)
{
        int self = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        if (self < 0)
                return sbx_fail(e, SBX_STAGE_NAMESPACES, errno, "open", "/proc/self/ns/mnt");
        if (setns(req->join_pidfd, CLONE_NEWNS) < 0) {
                close(self);
                return sbx_fail(e, SBX_STAGE_NAMESPACES, errno, "setns into pod mount namespace", "");
        }
        int fd = (int)syscall(SYS_open_tree, AT_FDCWD, req->pod_mount, OPEN_TREE_CLONE | O_CLOEXEC);
        int saved = errno;
        int back = setns(self, CLONE_NEWNS);
        int back_err = errno;
        close(self);
        if (back < 0)
                return sbx_fail(e, SBX_STAGE_NAMESPACES, back_err, "setns back to own mount namespace", "");
        if (fd < 0)
                return sbx_fail(e, SBX_STAGE_NAMESPACES, saved, "clone pod mount", req->pod_mount);
        return fd;
}

/* The pod's sysctls, written after unshare(): /proc/sys/net and the IPC entries show the writer's
 * own namespaces. Through a checked procfs fd and openat2 that neither follows symlinks nor leaves
 * /proc/sys (security-reliability.md 1.9: a procfs write never goes where a symlink points). */
static int write_sysctls(const char *const *pairs, struct sbx_err *e)
{
        int dir = open("/proc/sys", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir < 0)
                return sbx_fail(e, SBX_STAGE_NAMESPACES, errno, "open", "/proc/sys");
        struct statfs fs;
        if (fstatfs(dir, &fs) < 0 || fs.f_type != PROC_SUPER_MAGIC) {
                close(dir);
                return sbx_fail(e, SBX_STAGE_NAMESPACES, EXDEV, "/proc/sys is not procfs", "/proc/sys");
        }
        struct open_how how = {
                .flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        long long index = 0;
        for (; pairs[0] && pairs[1]; pairs += 2) {
                int fd = (int)syscall(SYS_openat2, dir, pairs[0], &how, sizeof how);
                ssize_t rc = fd < 0 ? -1 : write(fd, pairs[1], strlen(pairs[1]));
                int saved = errno;
                if (fd >= 0)
                        close(fd);
                if (rc < 0) {
                        close(dir);
                        return sbx_fail(e, SBX_STAGE_NAMESPACES, saved, fd < 0 ? "open sysctl" : "write sysctl",
                                        pairs[0]);
                }
                sbx_report(SBX_STAGE_NAMESPACES, SBX_TRACE_SYSCTL, index++, 0, pairs[0]);
        }
        close(dir);
        return 0;
}

static int enter_namespaces(const struct sbx_spawn_req *req, int *pod_mount_fd, struct sbx_err *e)
{
        if (req->join_pidfd >= 0 && req->join_ns) {
                if (setns(req->join_pidfd, req->join_ns) < 0)
                        return sbx_fail(e, SBX_STAGE_NAMESPACES, errno, "setns into pod namespaces", "");
                report_namespaces(SBX_TRACE_SETNS, req->join_ns);
        }
        if (req->join_pidfd >= 0 && req->pod_mount) {
                *pod_mount_fd = clone_pod_mount(req, e);
                if (*pod_mount_fd < 0)
                        return -1;
        }
        int new_ns = req->new_ns & ~CLONE_NEWCGROUP; /* stage 2 unshares the cgroup namespace */
        if (new_ns) {
                if (unshare(new_ns) < 0)
                        return sbx_fail(e, SBX_STAGE_NAMESPACES, errno, "unshare namespaces", "");
                sbx_report(SBX_STAGE_NAMESPACES, SBX_TRACE_UNSHARE, new_ns, 0, NULL);
                report_namespaces(SBX_TRACE_NS, new_ns);
        }
        if (req->hostname) {
                if (sethostname(req->hostname, strlen(req->hostname)) < 0)
                        return sbx_fail(e, SBX_STAGE_NAMESPACES, errno, "sethostname", req->hostname);
                sbx_report(SBX_STAGE_NAMESPACES, SBX_TRACE_HOSTNAME, 0, 0, req->hostname);
        }
        if (req->loopback_up) {
                if (bring_up_loopback(e) < 0)
                        return -1;
                sbx_report(SBX_STAGE_NAMESPACES, SBX_TRACE_LOOPBACK, 0, 0, "lo");
        }
        if (req->sysctls && write_sysctls(req->sysctls, e) < 0)
                return -1;
        return 0;
}

static int write_oom_score_adj(int value, struct sbx_err *e)
{
        char buf[16];
        int n = 0;
        unsigned v = (unsigned)(value < 0 ? -value : value);
        char digits[12];
        int d = 0;
        do {
                digits[d++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        if (value < 0)
                buf[n++] = '-';
        while (d)
                buf[n++] = digits[--d];
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "open", "/proc/self/oom_score_adj");
        ssize_t rc = write(fd, buf, (size_t)n);
        int saved = errno;
        close(fd);
        sbx_report(SBX_STAGE_SETUP, SBX_TRACE_OOM_SCORE, value, rc < 0 ? saved : 0, NULL);
        return rc < 0 ? sbx_fail(e, SBX_STAGE_SETUP, saved, "write", "/proc/self/oom_score_adj") : 0;
}

/* runc's order (finalizeNamespace): bounding set, PR_SET_KEEPCAPS, groups/gid/uid, then the kept
 * capabilities, so a non-root user gets what it was given (leaving uid 0 would otherwise clear
 * permitted, and capset would fail with EPERM). Its permitted and effective sets are still emptied
 * by execve (no ambient set, as containerd). The ids change by raw syscalls: glibc's setresuid()
 * signals every thread it believes exists (setxid broadcast), and after a raw clone that list is
 * the runtime's, so it can wait forever. */
static int change_credentials(const struct sbx_spawn_req *req, struct sbx_err *e)
{
        int keep = req->set_caps && req->uid > 0;
        if (req->set_caps && sbx_drop_bounding(req->caps, e) < 0)
                return -1;
        if (keep && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "set keepcaps", "");
        if (req->gid >= 0) {
                if (syscall(SYS_setgroups, (size_t)req->n_groups, req->groups) < 0)
                        return sbx_fail(e, SBX_STAGE_SETUP, errno, "setgroups", "");
                if (syscall(SYS_setresgid, req->gid, req->gid, req->gid) < 0)
                        return sbx_fail(e, SBX_STAGE_SETUP, errno, "setresgid", "");
        }
        if (req->uid >= 0 && syscall(SYS_setresuid, req->uid, req->uid, req->uid) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "setresuid", "");
        if (req->uid >= 0 || req->gid >= 0)
                sbx_report(SBX_STAGE_SETUP, SBX_TRACE_IDS, req->uid, req->gid, NULL);
        if (keep && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "clear keepcaps", "");
        if (req->set_caps && sbx_apply_caps(req->caps, e) < 0)
                return -1;
        return 0;
}

static int load_seccomp(const struct sbx_spawn_req *req, struct sbx_err *e)
{
        struct sock_fprog prog = {
                .len = (unsigned short)req->seccomp_len,
                .filter = (struct sock_filter *)req->seccomp_filter,
        };
        /* Reported first: once loaded, the filter may deny what reporting needs (sendto). */
        sbx_report(SBX_STAGE_SETUP, SBX_TRACE_SECCOMP, req->seccomp_len, 0, NULL);
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "load seccomp filter", "");
        return 0;
}

static int setup_stdio(const struct sbx_spawn_req *req, struct sbx_err *e)
{
        for (int i = 0; i < 3; i++) {
                if (req->stdio[i] < 0)
                        continue;
                if (req->stdio[i] == i) {
                        /* dup2 onto itself keeps FD_CLOEXEC; clear it instead. */
                        if (fcntl(i, F_SETFD, 0) < 0)
                                return sbx_fail(e, SBX_STAGE_SETUP, errno, "set up stdio", "");
                } else if (dup2(req->stdio[i], i) < 0) {
                        return sbx_fail(e, SBX_STAGE_SETUP, errno, "set up stdio", "");
                }
        }
        /* exec -t: the terminal given as stdin (the container's own pty) becomes the new session's
         * controlling terminal, so its line discipline sends Ctrl-C and SIGWINCH to the command. */
        if (req->new_session && req->stdio[0] >= 0 && isatty(0) && ioctl(0, TIOCSCTTY, 0) < 0)
                return sbx_fail(e, SBX_STAGE_SETUP, errno, "set controlling terminal", "");
        return 0;
}

static void mark_fds_cloexec(void)
{
        /* Nothing of the runtime may leak into the container (runc CVE-2024-21626). close_range
         * needs Linux 5.11; on 5.10 walk the descriptor table up to the soft limit. */
        if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
                return;
        long max = sysconf(_SC_OPEN_MAX);
        for (int fd = 3; fd < (max > 0 ? max : 65536); fd++)
                fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static const char *env_path(const char *const *envp)
{
        for (; envp && *envp; envp++)
                if (strncmp(*envp, "PATH=", 5) == 0)
                        return *envp + 5;
        return DEFAULT_PATH;
}

/* execvpe() would search the runtime's PATH; the container's PATH comes from its own env. */
static int exec_command(const struct sbx_spawn_req *req, struct sbx_err *e)
{
        char *const *argv = (char *const *)req->argv;
        char *const *envp = (char *const *)req->envp;
        const char *file = argv[0];
        if (!file || !*file)
                return sbx_fail(e, SBX_STAGE_EXEC, ENOENT, "execve", "");
        if (strchr(file, '/')) {
                sbx_report(SBX_STAGE_EXEC, SBX_TRACE_EXEC, 0, 0, file);
                execve(file, argv, envp);
                return sbx_fail(e, SBX_STAGE_EXEC, errno, "execve", file);
        }
        int best = ENOENT;
        char candidate[PATH_MAX];
        for (const char *dir = env_path(req->envp); dir;) {
                const char *end = strchr(dir, ':');
                size_t dlen = end ? (size_t)(end - dir) : strlen(dir);
                size_t flen = strlen(file);
                if (dlen + 1 + flen < sizeof candidate) {
                        memcpy(candidate, dlen ? dir : ".", dlen ? dlen : 1);
                        size_t n = dlen ? dlen : 1;
                        candidate[n] = '/';
                        memcpy(candidate + n + 1, file, flen + 1);
                        /* Only the candidate that is there: the misses of the PATH search are no step. */
                        if (trace_chan >= 0 && access(candidate, X_OK) == 0)
                                sbx_report(SBX_STAGE_EXEC, SBX_TRACE_EXEC, 0, 0, candidate);
                        execve(candidate, argv, envp);
                        if (errno == EACCES)
                                best = EACCES;
                        else if (errno != ENOENT && errno != ENOTDIR)
                                return sbx_fail(e, SBX_STAGE_EXEC, errno, "execve", candidate);
                }
                dir = end ? end + 1 : NULL;
        }
        return sbx_fail(e, SBX_STAGE_EXEC, best, "executable file not found in $PATH", file);
}

static int wait_for_go(int chan, struct sbx_err *e)
{
        char go;
        ssize_t rc;
        do
                rc = recv(chan, &go, 1, 0);
        while (rc < 0 && errno == EINTR);
        if (rc != 1)
                return sbx_fail(e, SBX_STAGE_SETUP, rc < 0 ? errno : EPIPE, "wait for runtime", "");
        return 0;
}

/* Stage 2 moves itself into its cgroup v1 directories: `0` into each one's `tasks` moves the
 * calling thread, and the kernel migrates a lone current thread without taking the global
 * cgroup_threadgroup_rwsem for writing. The runtime writing the pid into cgroup.procs takes it,
 * and a cold take waits out an RCU grace period (7-16 ms measured on this project's hybrid VM,
 * every pod start and exec; 0.3-0.5 ms this way). Stage 2 is single-threaded (a raw clone), so
 * its one thread is the whole process. The files are reached from the runtime's directory fd,
 * beneath it and without symlinks: stage 2 may already be in a container's mount namespace
 * (exec), whose paths the container controls. */
static int join_cgroups(const struct sbx_spawn_req *req, struct sbx_err *e)
{
        struct open_how how = {
                .flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        char path[PATH_MAX];
        for (long long i = 0; req->join_cgroups[i]; i++) {
                const char *dir = req->join_cgroups[i];
                size_t len = strlen(dir);
                if (len + sizeof "/tasks" > sizeof path)
                        return sbx_fail(e, SBX_STAGE_SETUP, ENAMETOOLONG, "join cgroup", dir);
                memcpy(path, dir, len);
                memcpy(path + len, "/tasks", sizeof "/tasks");
                int fd = (int)syscall(SYS_openat2, req->cgroup_root_fd, path, &how, sizeof how);
                ssize_t rc = fd < 0 ? -1 : write(fd, "0", 1);
                int saved = errno;
                if (fd >= 0)
                        close(fd);
                if (rc != 1)
                        return sbx_fail(e, SBX_STAGE_SETUP, rc < 0 ? saved : EIO, "join cgroup", dir);
                sbx_report(SBX_STAGE_SETUP, SBX_TRACE_CGROUP, i, 0, NULL);
        }
        return 0;
}

static __attribute__((noreturn)) void run_stage2(const struct sbx_spawn_req *req, int chan, int pod_mount_fd)
{
        struct sbx_err e;
        memset(&e, 0, sizeof e);
        if (ns_dir >= 0) { /* stage 1's: its own are read from /proc/self, still the host's /proc */
                close(ns_dir);
                ns_dir = -1;
        }
        set_stage_name(req->stage_name, "stage2");
        /* Inherited from stage 1, set again to be plain: non-dumpable until execve (runc,
         * CVE-2016-9962), so nothing in the container can ptrace this stage or open its /proc. */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (req->pdeathsig)
                prctl(PR_SET_PDEATHSIG, req->pdeathsig, 0, 0, 0);
        if (wait_for_go(chan, &e) < 0)
                child_fail(chan, &e);
        /* First after "go": nothing else of the container runs before it is in its cgroups. */
        if (req->join_cgroups && join_cgroups(req, &e) < 0)
                child_fail(chan, &e);
        /* After the cgroup placement (the runtime's and the one above), so the namespace's root
         * is the container's own cgroup (runc unshares it last in nsexec for the same reason). */
        if ((req->new_ns & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0) {
                sbx_fail(&e, SBX_STAGE_SETUP, errno, "unshare cgroup namespace", "");
                child_fail(chan, &e);
        }
        if (req->new_ns & CLONE_NEWCGROUP) {
                sbx_report(SBX_STAGE_SETUP, SBX_TRACE_UNSHARE, CLONE_NEWCGROUP, 0, NULL);
                sbx_report(SBX_STAGE_SETUP, SBX_TRACE_NS, CLONE_NEWCGROUP, ns_inode(CLONE_NEWCGROUP), NULL);
        }
        if (req->new_session) {
                pid_t sid = setsid();
                if (sid < 0) {
                        sbx_fail(&e, SBX_STAGE_SETUP, errno, "setsid", "");
                        child_fail(chan, &e);
                }
                sbx_report(SBX_STAGE_SETUP, SBX_TRACE_SETSID, sid, 0, NULL);
        }
        /* Best effort: lowering the score needs CAP_SYS_RESOURCE, which some sandboxed hosts
         * withhold even from root; pause then keeps the runtime's score. */
        if (req->set_oom_score_adj)
                write_oom_score_adj(req->oom_score_adj, &e);
        if (req->n_ops > 0) {
                int rootfd = sbx_run_mount_plan(req, pod_mount_fd, &e);
                if (rootfd < 0)
                        child_fail(chan, &e);
                if (req->pivot && sbx_pivot(rootfd, req->readonly_root, &e) < 0)
                        child_fail(chan, &e);
                close(rootfd);
        }
        /* The working directory is created as root (runc's createCwd), entered again below as
         * the container's user so its permissions apply. */
        if ((req->cwd || req->pivot) && sbx_enter_cwd(req->cwd, &e) < 0)
                child_fail(chan, &e);
        if (req->cwd || req->pivot)
                sbx_report(SBX_STAGE_SETUP, SBX_TRACE_CWD, 0, 0, req->cwd ? req->cwd : "/");
        /* Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while still root,
         * as runc does (the profile allows the few set-up calls that follow). */
        if (req->seccomp_filter && !req->no_new_privs && load_seccomp(req, &e) < 0)
                child_fail(chan, &e);
        if (change_credentials(req, &e) < 0)
                child_fail(chan, &e);
        /* A changed uid or gid set the dumpable flag to fs.suid_dumpable (commit_creds), which a
         * host may set to 1: non-dumpable again, or a process of the pod with the container's
         * user could open this stage's fds and memory until execve. Changing credentials also
         * cleared the parent-death signal (prctl(2)): set it again. */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (req->pdeathsig)
                prctl(PR_SET_PDEATHSIG, req->pdeathsig, 0, 0, 0);
        if (req->cwd && req->uid > 0 && chdir(req->cwd) < 0) {
                sbx_fail(&e, SBX_STAGE_SETUP, errno, "chdir workingDir", req->cwd);
                child_fail(chan, &e);
        }
        if (setup_stdio(req, &e) < 0)
                child_fail(chan, &e);
        mark_fds_cloexec();
        if (req->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
                sbx_fail(&e, SBX_STAGE_SETUP, errno, "set no_new_privs", "");
                child_fail(chan, &e);
        }
        if (req->no_new_privs)
                sbx_report(SBX_STAGE_SETUP, SBX_TRACE_NNP, 0, 0, NULL);
        if (req->seccomp_filter && req->no_new_privs && load_seccomp(req, &e) < 0)
                child_fail(chan, &e);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (req->exec_fd >= 0) {
                sbx_report(SBX_STAGE_EXEC, SBX_TRACE_EXEC, 1, 0, req->argv[0]);
                syscall(SYS_execveat, req->exec_fd, "", req->argv, req->envp, AT_EMPTY_PATH);
                sbx_fail(&e, SBX_STAGE_EXEC, errno, "execveat", req->argv[0]);
        } else {
                exec_command(req, &e);
        }
        child_fail(chan, &e);
}

/* clone3's arguments up to `cgroup` (Linux 5.7), spelled out here: <linux/sched.h> and glibc's
 * <sched.h> both define the CLONE_* flags. */
struct sbx_clone_args {
        uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
                set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* Stage 2 as the runtime's child; with a cgroup2 directory fd, born inside that cgroup
 * (clone3 CLONE_INTO_CGROUP): no migration afterwards, and none of the RCU grace period a
 * cgroup.procs write waits for. */
static long clone_stage2(int cgroup_fd)
{
        if (cgroup_fd < 0)
                return syscall(SYS_clone, CLONE_PARENT, 0, 0, 0, 0);
        struct sbx_clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = CLONE_PARENT | CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
        return syscall(SYS_clone3, &args, sizeof args);
}

static __attribute__((noreturn)) void run_stage1(const struct sbx_spawn_req *req, int chan)
{
        struct sbx_err e;
        memset(&e, 0, sizeof e);
        reset_signal_handlers();
        set_stage_name(req->stage_name, "stage1");
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        /* Non-dumpable while it holds the runtime's memory image and joins the pod (CVE-2016-9962):
         * a process of the pod can neither ptrace it nor open /proc/<pid>/mem, exe or fds. */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (req->trace) {
                trace_chan = chan;
                ns_dir = open("/proc/self/ns", O_PATH | O_DIRECTORY | O_CLOEXEC);
        }
        int pod_mount_fd = -1;
        if (enter_namespaces(req, &pod_mount_fd, &e) < 0)
                child_fail(chan, &e);
        /* CLONE_PARENT: stage 2 is the runtime's child, not ours, so the runtime can wait for it
         * and hold its pidfd; its exit signal is ours (SIGCHLD). */
        long pid = clone_stage2(req->cgroup_fd);
        if (pid == 0)
                run_stage2(req, chan, pod_mount_fd);
        if (pid < 0) {
                sbx_fail(&e, SBX_STAGE_NAMESPACES, errno, "clone stage 2", "");
                child_fail(chan, &e);
        }
        sbx_report(SBX_STAGE_NAMESPACES, SBX_TRACE_CLONE,
                   CLONE_PARENT | (req->cgroup_fd >= 0 ? (long long)CLONE_INTO_CGROUP : 0), pid, NULL);
        struct sbx_msg m = { .type = MSG_PID, .pid = (int)pid };
        send_msg(chan, &m);
        _exit(0);
}

/* Wait at most `timeout_ms` for one message (or end-of-file) on the channel. Returns 1 with *m
 * filled, 0 at end-of-file, -1 on a short or failed read, RECV_TIMEOUT when nothing came in time,
 * RECV_INTERRUPTED when a signal arrived: the caller returns to Python, whose handler may raise
 * (Ctrl-C must be able to stop a stuck spawn), rather than waiting on regardless. */
enum { RECV_TIMEOUT = -2, RECV_INTERRUPTED = -3 };

static int recv_msg(int chan, struct sbx_msg *m, int timeout_ms)
{
        struct pollfd p = { .fd = chan, .events = POLLIN };
        int ready = poll(&p, 1, timeout_ms);
        if (ready < 0)
                return errno == EINTR ? RECV_INTERRUPTED : -1;
        if (ready == 0)
                return RECV_TIMEOUT;
        ssize_t rc = recv(chan, m, sizeof *m, MSG_DONTWAIT);
        if (rc < 0 && (errno == EINTR || errno == EAGAIN))
                return RECV_INTERRUPTED;
        if (rc == 0)
                return 0;
        if (rc != (ssize_t)sizeof *m)
                return -1;
        return 1;
}

static long long monotonic_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Stage 1 makes no call that blocks for long, but a wedged one must not freeze the runtime either:
 * the same deadline as stage 2's, waited out across signals (stage 1 is our direct child and dies
 * with SIGKILL below, so nothing is left to interrupt). */
static int recv_stage1(int chan, struct sbx_msg *m, const struct sbx_spawn_res *res)
{
        long long deadline = monotonic_ms() + SBX_SPAWN_TIMEOUT_MS;
        for (;;) {
                long long left = deadline - monotonic_ms();
                int got = recv_msg(chan, m, left > 0 ? (int)left : 0);
                if (got == 1 && m->type == MSG_TRACE) { /* a step, before the pid or the error */
                        if (res->on_trace)
                                res->on_trace(res->trace_ctx, &m->trace);
                        continue;
                }
                if (got != RECV_INTERRUPTED)
                        return got;
        }
}

static int collect_stage1(pid_t stage1, int chan, struct sbx_spawn_res *res);

/* A fresh result, keeping the caller's trace receiver. */
static void reset_result(struct sbx_spawn_res *res)
{
        void (*on_trace)(void *, const struct sbx_trace *) = res->on_trace;
        void *trace_ctx = res->trace_ctx;
        memset(res, 0, sizeof *res);
        res->on_trace = on_trace;
        res->trace_ctx = trace_ctx;
        res->pid = -1;
        res->chan = -1;
}

int sbx_spawn_start(const struct sbx_spawn_req *req, struct sbx_spawn_res *res)
{
        int sv[2];
        reset_result(res);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return sbx_fail(&res->err, SBX_STAGE_PARENT, errno, "socketpair", "");
        /* Block every signal across the fork so no handler of the runtime runs in the child
         * before stage 1 resets them (glibc's posix_spawn does the same). */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        long stage1 = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (stage1 == 0) {
                close(sv[0]);
                run_stage1(req, sv[1]);
        }
        int saved = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        close(sv[1]);
        if (stage1 < 0) {
                close(sv[0]);
                return sbx_fail(&res->err, SBX_STAGE_PARENT, saved, "fork", "");
        }
        return collect_stage1((pid_t)stage1, sv[0], res);
}

/* Stage 1's report (stage 2's pid, or its error) read from `chan`, and stage 1 reaped. */
static int collect_stage1(pid_t stage1, int chan, struct sbx_spawn_res *res)
{
        struct sbx_msg m;
        int got = recv_stage1(chan, &m, res);
        if (got == RECV_TIMEOUT)
                kill(stage1, SIGKILL);
        while (waitpid(stage1, NULL, 0) < 0 && errno == EINTR)
                ;
        if (got == 1 && m.type == MSG_PID) {
                res->pid = m.pid;
                res->chan = chan;
                return 0;
        }
        close(chan);
        if (got == 1 && m.type == MSG_ERR) {
                res->err = m.err;
                errno = m.err.err;
                return -1;
        }
        if (got == RECV_TIMEOUT)
                return sbx_fail(&res->err, SBX_STAGE_NAMESPACES, ETIMEDOUT, "spawn deadline (stage 1)", "");
        return sbx_fail(&res->err, SBX_STAGE_NAMESPACES, EPIPE, "stage 1 died", "");
}

int sbx_spawn_start_exec(const char *helper, int memfd, const int *fds, int n_fds, struct sbx_spawn_res *res)
{
        reset_result(res);
        if (n_fds < 0 || n_fds + 1 > SBX_STAGE1_MAX_FDS)
                return sbx_fail(&res->err, SBX_STAGE_PARENT, EINVAL, "spawn request fds", "");
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return sbx_fail(&res->err, SBX_STAGE_PARENT, errno, "socketpair", "");
        /* Every signal blocked in stage 1 and until stage 2 unblocks them, as across the fork. */
        posix_spawnattr_t attr;
        posix_spawn_file_actions_t actions;
        sigset_t all;
        sigfillset(&all);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setsigmask(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, sv[1], SBX_STAGE1_CHAN_FD);
        char *const argv[] = { (char *)"sbx-stage1", (char *)"--stage1", NULL };
        char *const envp[] = { NULL };
        pid_t stage1;
        int rc = posix_spawn(&stage1, helper, &actions, &attr, argv, envp);
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
        close(sv[1]);
        if (rc != 0) {
                close(sv[0]);
                return sbx_fail(&res->err, SBX_STAGE_PARENT, rc, "spawn stage 1", helper);
        }
        /* The request: its memfd first, then its fds, in one message (SCM_RIGHTS). */
        int all_fds[SBX_STAGE1_MAX_FDS];
        all_fds[0] = memfd;
        memcpy(all_fds + 1, fds, sizeof(int) * (size_t)n_fds);
        char byte = 'R';
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        union {
                char buf[CMSG_SPACE(sizeof(int) * SBX_STAGE1_MAX_FDS)];
                struct cmsghdr align;
        } ctl;
        memset(&ctl, 0, sizeof ctl);
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                              .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)(n_fds + 1)) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)(n_fds + 1));
        memcpy(CMSG_DATA(cm), all_fds, sizeof(int) * (size_t)(n_fds + 1));
        if (sendmsg(sv[0], &msg, MSG_NOSIGNAL) < 0) {
                int saved = errno;
                kill(stage1, SIGKILL);
                while (waitpid(stage1, NULL, 0) < 0 && errno == EINTR)
                        ;
                close(sv[0]);
                return sbx_fail(&res->err, SBX_STAGE_PARENT, saved, "send spawn request", "");
        }
        return collect_stage1(stage1, sv[0], res);
}

__attribute__((noreturn)) void sbx_stage1(const struct sbx_spawn_req *req, int chan)
{
        run_stage1(req, chan);
}

int sbx_spawn_finish(struct sbx_spawn_res *res, int timeout_ms)
{
        int chan = res->chan;
        if (chan < 0)
                return sbx_fail(&res->err, SBX_STAGE_PARENT, EBADF, "spawn channel", "");
        if (!res->released) {
                char go = 'G';
                /* A failed send means stage 2 is already gone; its record (if any) is still readable. */
                send(chan, &go, 1, MSG_NOSIGNAL);
                res->released = 1;
        }
        /* Trace records come before the end (EOF, an error): each is handed on, within the deadline. */
        struct sbx_msg m;
        long long deadline = monotonic_ms() + timeout_ms;
        int got;
        for (;;) {
                long long left = deadline - monotonic_ms();
                got = recv_msg(chan, &m, left > 0 ? (int)left : 0);
                if (got != 1 || m.type != MSG_TRACE)
                        break;
                if (res->on_trace)
                        res->on_trace(res->trace_ctx, &m.trace);
        }
        if (got == RECV_INTERRUPTED) /* the channel stays open: call again to go on waiting */
                return sbx_fail(&res->err, SBX_STAGE_PARENT, EINTR, "wait for stage 2", "");
        res->chan = -1;
        close(chan);
        if (got == 0)
                return 0;
        if (got == 1 && m.type == MSG_ERR) {
                res->err = m.err;
                errno = m.err.err;
                return -1;
        }
        if (got == RECV_TIMEOUT) {
                /* Stuck (a blocking open, a hung filesystem): kill it so the pod goes on; the caller
                 * reaps it, as after any failure. */
                kill(res->pid, SIGKILL);
                return sbx_fail(&res->err, SBX_STAGE_SETUP, ETIMEDOUT, "spawn deadline (stage 2)", "");
        }
        return sbx_fail(&res->err, SBX_STAGE_SETUP, EPIPE, "read spawn channel", "");
}
