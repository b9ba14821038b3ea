"""Linux capabilities by name, and the set a container gets by default.

The default is containerd's `defaultUnixCaps` (Docker's list, kept at 14 since containerd
PR #10435 was retracted): a root container reads `CapEff: 00000000a80425fb`
(security-reliability.md 1.5). securityContext's add/drop (a later issue) edits this set.
"""

from __future__ import annotations

# capabilities(7), the kernel's numbering
NUMBERS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}

DEFAULT = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
           "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")


def mask(names: tuple[str, ...] | list[str]) -> int:
    """Bit n set for capability n; names with or without the CAP_ prefix."""
    bits = 0
    for name in names:
        key = name.upper().removeprefix("CAP_")
        if key not in NUMBERS:
            raise ValueError(f"unknown capability {name!r}")
        bits |= 1 << NUMBERS[key]
    return bits


DEFAULT_MASK = 0xA80425FB  # == mask(DEFAULT), checked by a unit test
