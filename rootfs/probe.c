/* sbx-probe: make one named system call with harmless arguments and print how it ended, as runc's
 * seccomp.bats does with its small static test programs.
 *
 *   sbx-probe keyctl        -> "EPERM" (refused), "OK" (it ran), or another errno name
 *   sbx-probe-suid euid     -> "euid 0" when the setuid-root copy raised the effective uid
 *
 * The word is the whole output; the exit status is 0 whatever the call did (2: unknown probe), so
 * a test compares one line. Raw syscall(2) throughout: libc wrappers may retry with another call
 * (clone3 -> clone) and hide what the filter said. Built static with musl-gcc by
 * rootfs/build-busybox.sh and installed as /usr/bin/sbx-probe in the test image, with a setuid-root copy /usr/bin/sbx-probe-suid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_userfaultfd
#define SYS_userfaultfd 323
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#define KEYCTL_GET_KEYRING_ID 0
#define KEY_SPEC_SESSION_KEYRING (-3)

static long child_exits(long pid)
{
        if (pid == 0)
                _exit(0);
        if (pid > 0)
                waitpid((pid_t)pid, NULL, 0);
        return pid < 0 ? -1 : 0;
}

#ifdef __x86_64__
/* The 32-bit ABI through int 0x80 (IA32 emulation): the filter must check it too (its own
 * architecture and numbers: getpid 20, keyctl 288). */
static long int80(long nr, long a, long b, long c)
{
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
        if (ret < 0 && ret > -4096) {
                errno = (int)-ret;
                return -1;
        }
        return ret;
}
#endif

static long probe(const char *name)
{
        unsigned char zero[128];
        memset(zero, 0, sizeof zero);
        if (!strcmp(name, "euid")) { /* for the setuid copy: did execve raise the uid? */
                printf("euid %ld\n", (long)geteuid());
                return 0;
        }
        if (!strcmp(name, "getpid"))
                return syscall(SYS_getpid) > 0 ? 0 : -1;
        if (!strcmp(name, "keyctl"))
                return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
        if (!strcmp(name, "add_key"))
                return syscall(SYS_add_key, "user", "sbx-probe", "x", 1, KEY_SPEC_SESSION_KEYRING);
        if (!strcmp(name, "request_key"))
                return syscall(SYS_request_key, "user", "sbx-probe", NULL, KEY_SPEC_SESSION_KEYRING);
        if (!strcmp(name, "clone3"))
                return syscall(SYS_clone3, NULL, 0); /* EINVAL when it reaches the kernel */
        if (!strcmp(name, "fork")) /* clone without namespace flags: allowed */
                return child_exits(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
        if (!strcmp(name, "clone-newns"))
                return child_exits(syscall(SYS_clone, SIGCHLD | CLONE_NEWNS, 0, 0, 0, 0));
        if (!strcmp(name, "clone-newuser"))
                return child_exits(syscall(SYS_clone, SIGCHLD | CLONE_NEWUSER, 0, 0, 0, 0));
        if (!strcmp(name, "unshare-user"))
                return syscall(SYS_unshare, CLONE_NEWUSER);
        if (!strcmp(name, "unshare-mnt"))
                return syscall(SYS_unshare, CLONE_NEWNS);
        if (!strcmp(name, "setns"))
                return syscall(SYS_setns, -1, 0); /* EBADF when it reaches the kernel */
        if (!strcmp(name, "mount")) { /* a tmpfs on /tmp, unmounted again */
                long rc = syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL);
                if (rc == 0)
                        syscall(SYS_umount2, "/tmp", 0);
                return rc;
        }
        if (!strcmp(name, "umount2"))
                return syscall(SYS_umount2, "/sbx-probe-nonexistent", 0); /* ENOENT past the filter */
        if (!strcmp(name, "io_uring_setup"))
                return syscall(SYS_io_uring_setup, 1, zero);
        if (!strcmp(name, "userfaultfd"))
                return syscall(SYS_userfaultfd, 0);
        if (!strcmp(name, "kexec_load"))
                return syscall(SYS_kexec_load, 0, 0, NULL, 0);
        if (!strcmp(name, "swapon"))
                return syscall(SYS_swapon, "/sbx-probe-nonexistent", 0);
        if (!strcmp(name, "pivot_root"))
                return syscall(SYS_pivot_root, "/sbx-probe-nonexistent", "/sbx-probe-nonexistent");
        if (!strcmp(name, "bpf"))
                return syscall(SYS_bpf, -1, NULL, 0);
        if (!strcmp(name, "personality-query"))
                return syscall(SYS_personality, 0xffffffffUL) < 0 ? -1 : 0;
        if (!strcmp(name, "personality-norandom")) /* ADDR_NO_RANDOMIZE: not an allowed persona */
                return syscall(SYS_personality, 0x0040000UL) < 0 ? -1 : 0;
        if (!strcmp(name, "socket-vsock"))
                return syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0) < 0 ? -1 : 0;
        if (!strcmp(name, "socket-alg"))
                return syscall(SYS_socket, AF_ALG, SOCK_SEQPACKET, 0) < 0 ? -1 : 0;
        if (!strcmp(name, "socket-unix"))
                return syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0) < 0 ? -1 : 0;
#ifdef __x86_64__
        if (!strcmp(name, "getpid-int80"))
                return int80(20, 0, 0, 0) > 0 ? 0 : -1;
        if (!strcmp(name, "keyctl-int80"))
                return int80(288, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
#endif
        errno = 0;
        return -2;
}

/* The names the tests expect; musl has no strerrorname_np(). */
static const char *errno_name(int e)
{
        static const struct { int e; const char *name; } names[] = {
                { EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EBADF, "EBADF" }, { EACCES, "EACCES" },
                { EFAULT, "EFAULT" }, { EBUSY, "EBUSY" }, { EINVAL, "EINVAL" }, { ENOSYS, "ENOSYS" },
                { EAFNOSUPPORT, "EAFNOSUPPORT" }, { EROFS, "EROFS" }, { ENOTDIR, "ENOTDIR" },
                { ENOMEM, "ENOMEM" }, { EOPNOTSUPP, "EOPNOTSUPP" }, { ENOKEY, "ENOKEY" },
                { EDQUOT, "EDQUOT" }, { EEXIST, "EEXIST" }, { ENODEV, "ENODEV" },
        };
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                if (names[i].e == e)
                        return names[i].name;
        return NULL;
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fputs("usage: sbx-probe SYSCALL\n", stderr);
                return 2;
        }
        errno = 0;
        long rc = probe(argv[1]);
        if (rc == -2 && errno == 0) {
                fprintf(stderr, "sbx-probe: unknown probe %s\n", argv[1]);
                return 2;
        }
        if (rc < 0) {
                int e = errno;
                const char *word = errno_name(e);
                if (word)
                        puts(word);
                else
                        printf("errno %d\n", e);
        } else if (strcmp(argv[1], "euid")) {
                puts("OK");
        }
        return 0;
}
