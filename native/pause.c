/* pause.c: PID 1 of a pod. It holds the pod's namespaces while it lives and reaps every process
 * re-parented to it. SIGINT and SIGTERM end it with status 0; every other signal is ignored, so
 * only SIGKILL can take the pod down by surprise. It allocates nothing and never exits on an
 * error that may pass: a dead PID 1 kills every process of the pod (pid_namespaces(7)).
 *
 * Signals are blocked and taken synchronously with sigwaitinfo (as tini does), so no handler ever
 * interrupts the reaping loop. Built static (musl when available) so it needs no files at all: the
 * runtime starts it from an empty read-only root.
 *
 * `--trace` (`sandbox run --trace`): one line per reaped child on stderr, which the runtime then
 * gives as a pipe it reads; without it pause writes nothing, so tracing costs nothing when off.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "sandbox-pause 0.1"

static void say(int fd, const char *msg)
{
        ssize_t rc = write(fd, msg, strlen(msg));
        (void)rc;
}

static char *put_number(char *at, long value)
{
        char digits[24];
        int n = 0;
        unsigned long v = (unsigned long)(value < 0 ? -value : value);
        do {
                digits[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        if (value < 0)
                *at++ = '-';
        while (n)
                *at++ = digits[--n];
        return at;
}

static char *put_text(char *at, const char *text)
{
        size_t n = strlen(text);
        memcpy(at, text, n);
        return at + n;
}

/* "SIGCHLD: pid 7 exited 0" or "SIGCHLD: pid 7 killed by signal 9": one write, so a line stays whole. */
static void report_exit(pid_t pid, int status)
{
        char line[80];
        char *at = put_number(put_text(line, "SIGCHLD: pid "), pid);
        if (WIFSIGNALED(status))
                at = put_number(put_text(at, " killed by signal "), WTERMSIG(status));
        else
                at = put_number(put_text(at, " exited "), WEXITSTATUS(status));
        *at++ = '\n';
        ssize_t rc = write(2, line, (size_t)(at - line));
        (void)rc;
}

static void reap_children(int trace)
{
        /* One SIGCHLD may stand for many exits; loop until no zombie is left. */
        for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                if (pid > 0 && trace)
                        report_exit(pid, status);
                if (pid > 0)
                        continue;
                if (pid < 0 && errno == EINTR)
                        continue;
                return;
        }
}

int main(int argc, char **argv)
{
        int trace = 0;
        for (int i = 1; i < argc; i++) {
                if (strcasecmp(argv[i], "-v") == 0) {
                        say(1, VERSION "\n");
                        return 0;
                }
                if (strcmp(argv[i], "--trace") == 0)
                        trace = 1;
        }
        if (getpid() != 1)
                say(2, "Warning: pause should be the first process\n");
        /* execve made us dumpable again; a container sharing our PID namespace must not read
         * /proc/1/root, environ or mem (security-reliability.md 1.10). */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

        sigset_t wanted;
        sigemptyset(&wanted);
        sigaddset(&wanted, SIGCHLD);
        sigaddset(&wanted, SIGINT);
        sigaddset(&wanted, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &wanted, NULL) < 0)
                return 1;
        for (int sig = 1; sig < NSIG; sig++) {
                if (sig != SIGKILL && sig != SIGSTOP && !sigismember(&wanted, sig))
                        signal(sig, SIG_IGN);
        }
        reap_children(trace);
        for (;;) {
                int sig = sigwaitinfo(&wanted, NULL);
                if (sig == SIGINT || sig == SIGTERM)
                        return 0;
                if (sig == SIGCHLD)
                        reap_children(trace);
        }
}
