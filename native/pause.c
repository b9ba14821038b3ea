/* pause.c: PID 1 of a pod. It holds the pod's namespaces while it lives and reaps every process
 * re-parented to it. SIGINT and SIGTERM end it with status 0; every other signal is ignored, so
 * only SIGKILL can take the pod down by surprise. It allocates nothing and never exits on an
 * error that may pass: a dead PID 1 kills every process of the pod (pid_namespaces(7)).
 *
 * Signals are blocked and taken synchronously with sigwaitinfo (as tini does), so no handler ever
 * interrupts the reaping loop. Built static (musl when available) so it needs no files at all: the
 * runtime starts it from an empty read-only root.
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

static void reap_children(void)
{
        /* One SIGCHLD may stand for many exits; loop until no zombie is left. */
        for (;;) {
                pid_t pid = waitpid(-1, NULL, WNOHANG);
                if (pid > 0)
                        continue;
                if (pid < 0 && errno == EINTR)
                        continue;
                return;
        }
}

int main(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                if (strcasecmp(argv[i], "-v") == 0) {
                        say(1, VERSION "\n");
                        return 0;
                }
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
        reap_children();
        for (;;) {
                int sig = sigwaitinfo(&wanted, NULL);
                if (sig == SIGINT || sig == SIGTERM)
                        return 0;
                if (sig == SIGCHLD)
                        reap_children();
        }
}
