/* netns.c: a socket created inside another process's network namespace, without the runtime
 * ever leaving its own.
 *
 * A socket belongs to the network namespace it was created in for its whole life, so a probe
 * can connect() to 127.0.0.1:port "inside the pod" from the runtime, as long as the socket
 * itself was created there. Only its creation needs the namespace switch, and setns() on the
 * runtime's own thread is out (STYLE 2.3: the runtime never calls setns on itself). pyroute2
 * forks a helper for this; forking a large, multi-threaded Python process copies its page
 * tables on every call, and the child of a threaded fork may only make async-signal-safe calls
 * anyway. So we do what glibc's posix_spawn does (sysdeps/unix/sysv/linux/spawni.c): clone a
 * short-lived task that shares our memory and waits in the kernel instead of copying.
 *
 *   clone(CLONE_VM | CLONE_VFORK | CLONE_FILES, exit signal 0), on a small private stack:
 *   CLONE_VM     nothing is copied, so the call costs about as much as a thread start.
 *   CLONE_VFORK  the calling thread sleeps until the child has exited, so the stack the child
 *                runs on (carved out of our own frame, above the suspended caller's deeper
 *                frames) and the result it writes stay valid, and we read the result only after
 *                the child is gone. Other threads of the runtime keep running, but the child
 *                touches nothing they use: only its stack and the `struct netns_call` below.
 *   CLONE_FILES  the fd table is shared, so the socket the child creates is already ours and
 *                needs no SCM_RIGHTS hand-over; it is created with SOCK_CLOEXEC.
 *   exit signal 0 makes it a "clone" child: waitpid(-1) and pidfd reapers elsewhere in the
 *                runtime cannot reap it by accident, and we reap it with __WCLONE ourselves.
 *
 * What the child may do: setns(pidfd, CLONE_NEWNET) (a net namespace, unlike mnt or user, may
 * be joined by a task that shares its memory and fs context), socket(), plain stores into the
 * shared struct, then return (glibc's clone then calls the exit syscall: no atexit handlers,
 * no stdio flush). What it may not do: malloc, stdio, locks, anything touching Python, or
 * unblocking signals. It shares our memory, so any lock it took would be taken for the whole
 * runtime, and a handler running on its stack would corrupt ours. Every signal is blocked
 * in the calling thread across clone() so the child starts (and dies) with all of them
 * blocked. It runs with the caller's TLS (no CLONE_SETTLS), so a failing syscall writes the
 * calling thread's errno; the child copies it into the struct at once.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

/* setns() and socket() need a few hundred bytes; leave room for the libc wrappers. */
#define CHILD_STACK_SIZE (16 * 1024)

struct netns_call {
        int pidfd;
        int domain;
        int type;
        int protocol;
        int fd; /* out: the socket, or -1 */
        int err; /* out: errno of the failed step */
        const char *op; /* out: the failed step (a string literal) */
};

/* Runs in the CLONE_VM child: syscalls and plain stores only (see the top of this file). */
static int netns_child(void *arg)
{
        struct netns_call *call = arg;
        if (setns(call->pidfd, CLONE_NEWNET) < 0) {
                call->err = errno;
                call->op = "setns into pod network namespace";
                return 1;
        }
        int fd = socket(call->domain, call->type | SOCK_CLOEXEC, call->protocol);
        if (fd < 0) {
                call->err = errno;
                call->op = "socket in pod network namespace";
                return 1;
        }
        call->fd = fd;
        return 0;
}

static int reap_clone_child(pid_t pid)
{
        int rc;
        do
                rc = waitpid(pid, NULL, __WCLONE);
        while (rc < 0 && errno == EINTR);
        return rc;
}

int sbx_socket_in_netns(int pidfd, int domain, int type, int protocol, struct sbx_err *err)
{
        struct netns_call call = {
                .pidfd = pidfd, .domain = domain, .type = type, .protocol = protocol, .fd = -1,
        };
        char stack[CHILD_STACK_SIZE] __attribute__((aligned(16)));
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        /* The stack grows down on every architecture we build for: pass its top. */
        pid_t pid = clone(netns_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_FILES, &call);
        int clone_err = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (pid < 0)
                return sbx_fail(err, SBX_STAGE_PARENT, clone_err, "clone netns helper", "");
        reap_clone_child(pid);
        if (call.fd >= 0)
                return call.fd;
        if (call.op == NULL) /* killed before it could report (SIGKILL cannot be blocked) */
                return sbx_fail(err, SBX_STAGE_PARENT, ECHILD, "netns helper died", "");
        return sbx_fail(err, SBX_STAGE_PARENT, call.err, call.op, "");
}
