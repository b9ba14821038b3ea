"""RuntimeDefault: the seccomp profile every container gets unless it asks otherwise.

The semantics of Docker's default profile (moby/profiles `seccomp/default.json`, which containerd's
`contrib/seccomp` follows), written in the Docker JSON shape that Localhost profiles use, so one
loader reads both: default ERRNO(EPERM); one allowlist; `clone` only without namespace flags and
`clone3` answered ENOSYS (libc then falls back to the filterable `clone`); `personality` only for
the harmless personas; `socket` for every address family but AF_ALG and AF_VSOCK; the calls a
capability guards allowed only when the container holds that capability. Never allowed whatever
the capabilities: keyctl, add_key, request_key (keyrings are not namespaced), kexec_load,
kexec_file_load, userfaultfd, swapon, swapoff, pivot_root, io_uring_* (security-reliability.md 1.7).

Names unknown to the installed libseccomp are skipped (its version is part of the cache key);
the filter then answers ENOSYS for them as for every call newer than the profile knows.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Allowed for every container, by topic.
_ALLOWED = """
    read write readv writev pread64 pwrite64 preadv preadv2 pwritev pwritev2 lseek _llseek
    sendfile sendfile64 splice tee vmsplice copy_file_range readahead fadvise64 fadvise64_64
    open openat openat2 creat close close_range dup dup2 dup3 fcntl fcntl64 flock pipe pipe2
    stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64 fstatfs
    fstatfs64 access faccessat faccessat2 readlink readlinkat getdents getdents64 getcwd chdir fchdir
    mkdir mkdirat mknod mknodat rmdir rename renameat renameat2 link linkat symlink symlinkat
    unlink unlinkat truncate truncate64 ftruncate ftruncate64 fallocate fsync fdatasync sync
    sync_file_range syncfs umask name_to_handle_at
    chmod fchmod fchmodat fchmodat2 chown chown32 fchown fchown32 fchownat lchown lchown32
    utime utimes utimensat utimensat_time64 futimesat
    getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat listxattr
    llistxattr flistxattr listxattrat removexattr lremovexattr fremovexattr removexattrat
    inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
    select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64 epoll_create epoll_create1
    epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait epoll_pwait2 eventfd eventfd2
    signalfd signalfd4 timerfd_create timerfd_settime timerfd_settime64 timerfd_gettime
    timerfd_gettime64
    io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
    ioctl ioprio_get ioprio_set
    brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall munlock
    munlockall remap_file_pages membarrier memfd_create memfd_secret map_shadow_stack mseal
    pkey_alloc pkey_free pkey_mprotect process_mrelease cachestat
    execve execveat exit exit_group fork vfork wait4 waitid waitpid
    getpid getppid gettid getpgid getpgrp setpgid getsid setsid set_tid_address
    getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32
    getresgid getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid
    setreuid32 setregid setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid
    setfsuid32 setfsgid setfsgid32 setgroups setgroups32 capget capset prctl seccomp
    landlock_create_ruleset landlock_add_rule landlock_restrict_self
    getrlimit ugetrlimit setrlimit prlimit64 getrusage getpriority setpriority times sysinfo uname
    sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr sched_getparam
    sched_setparam sched_getscheduler sched_setscheduler sched_get_priority_max
    sched_get_priority_min sched_rr_get_interval sched_rr_get_interval_time64 getcpu rseq
    futex futex_time64 futex_waitv futex_wait futex_wake futex_requeue get_robust_list
    set_robust_list get_thread_area set_thread_area restart_syscall
    kill tkill tgkill pidfd_open pidfd_send_signal pause rt_sigaction rt_sigprocmask
    rt_sigpending rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_sigqueueinfo
    rt_tgsigqueueinfo rt_sigreturn sigreturn sigaltstack sigprocmask alarm
    time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64 clock_nanosleep
    clock_nanosleep_time64 nanosleep clock_adjtime clock_adjtime64 adjtimex getitimer setitimer
    timer_create timer_delete timer_gettime timer_gettime64 timer_settime timer_settime64
    timer_getoverrun
    socketcall socketpair bind connect listen accept accept4 getsockname getpeername getsockopt
    setsockopt shutdown send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg recvmmsg_time64
    ipc msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64 semctl shmget shmat
    shmdt shmctl mq_open mq_unlink mq_timedsend mq_timedsend_time64 mq_timedreceive
    mq_timedreceive_time64 mq_notify mq_getsetattr
    statmount listmount uretprobe
"""

# Allowed only with the capability that guards them (Docker's per-capability additions).
_BY_CAPABILITY = {
    "CAP_SYS_ADMIN": """bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
                        lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr
                        move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname
                        sethostname setns syslog umount umount2 unshare""",
    "CAP_DAC_READ_SEARCH": "open_by_handle_at",
    "CAP_SYS_BOOT": "reboot",
    "CAP_SYS_CHROOT": "chroot",
    "CAP_SYS_MODULE": "delete_module init_module finit_module",
    "CAP_SYS_PACCT": "acct",
    "CAP_SYS_PTRACE": "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    "CAP_SYS_RAWIO": "iopl ioperm",
    "CAP_SYS_TIME": "settimeofday stime clock_settime clock_settime64",
    "CAP_SYS_TTY_CONFIG": "vhangup",
    "CAP_SYS_NICE": "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    "CAP_SYSLOG": "syslog",
    "CAP_BPF": "bpf",
    "CAP_PERFMON": "perf_event_open",
}

# Per-architecture calls (Docker's names for the architectures: Go's GOARCH plus x32 and x86).
_BY_ARCH = (
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    (("ppc64le",), "sync_file_range2 swapcontext"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (("riscv64",), "riscv_flush_icache riscv_hwprobe"),
)

_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)  # PER_LINUX, UNAME26, LINUX32, both; query
# socket(2) address families refused: AF_ALG (the kernel crypto API, no use to a general
# container) and AF_VSOCK (host/guest channels, global across network namespaces by default).
_AF_ALG, _AF_VSOCK, _AF_MAX = 38, 40, 46
_ENOSYS = 38


def _rule(names: str, *, caps: tuple[str, ...] = (), not_caps: tuple[str, ...] = (),
          arches: tuple[str, ...] = (), not_arches: tuple[str, ...] = (), args: list[Any] | None = None,
          action: str = "SCMP_ACT_ALLOW", errno: int | None = None, min_kernel: str = "") -> dict[str, Any]:
    rule: dict[str, Any] = {"names": names.split(), "action": action, "args": args or [],
                            "includes": {}, "excludes": {}}
    if errno is not None:
        rule["errnoRet"] = errno
    for key, value in (("caps", caps), ("arches", arches), ("minKernel", min_kernel)):
        if value:
            rule["includes"][key] = list(value) if isinstance(value, tuple) else value
    for key, value in (("caps", not_caps), ("arches", not_arches)):
        if value:
            rule["excludes"][key] = list(value)
    return rule


def _arg(index: int, value: int, op: str = "SCMP_CMP_EQ", value_two: int = 0) -> dict[str, Any]:
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


def profile() -> dict[str, Any]:
    """The profile, as Docker's JSON would say it."""
    rules = [_rule(_ALLOWED)]
    # ptrace is safe on kernels >= 4.8 (seccomp is re-checked after a tracer changes a call).
    rules.append(_rule("process_vm_readv process_vm_writev ptrace", min_kernel="4.8"))
    families = [f for f in range(1, _AF_MAX) if f not in (_AF_ALG, _AF_VSOCK)]
    rules.append(_rule("socket", args=[_arg(0, _AF_ALG, "SCMP_CMP_LT")]))
    rules += [_rule("socket", args=[_arg(0, f)]) for f in families if f > _AF_ALG]
    rules += [_rule("personality", args=[_arg(0, p)]) for p in _PERSONAS]
    rules += [_rule(names, arches=arches) for arches, names in _BY_ARCH]
    rules += [_rule(names, caps=(cap,)) for cap, names in _BY_CAPABILITY.items()]
    # Without CAP_SYS_ADMIN: clone without namespace flags (s390 swaps clone's first two
    # arguments), clone3 answered ENOSYS since its flags sit behind a pointer seccomp cannot read.
    rules.append(_rule("clone", not_caps=("CAP_SYS_ADMIN",), not_arches=("s390", "s390x"),
                       args=[_arg(0, _NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ", 0)]))
    rules.append(_rule("clone", not_caps=("CAP_SYS_ADMIN",), arches=("s390", "s390x"),
                       args=[_arg(1, _NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ", 0)]))
    rules.append(_rule("clone3", not_caps=("CAP_SYS_ADMIN",), action="SCMP_ACT_ERRNO", errno=_ENOSYS))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,  # EPERM
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
            {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
            {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": []},
        ],
        "syscalls": rules,
    }
