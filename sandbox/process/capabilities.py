"""Linux capabilities by name, and the set a container gets by default.

The default is containerd's `defaultUnixCaps` (Docker's list, kept at 14 since containerd
PR #10435 was retracted): a root container reads `CapEff: 00000000a80425fb`
(security-reliability.md 1.5). securityContext's add/drop edit this set as containerd's CRI
plugin does: `add: [ALL]` grants every capability, `drop: [ALL]` starts from none, then the named
additions and drops apply, drops last.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sandbox.spec.model import Container

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

ALL_MASK = mask(tuple(NUMBERS))


def for_container(container: Container) -> int:
    """The capability mask a container's processes keep (its main process, exec, probes, hooks).
    ValueError names an unknown capability."""
    sc = container.security_context
    caps = sc.capabilities if sc is not None else None
    if caps is None:
        return DEFAULT_MASK
    add = [name for name in caps.add if name.upper() != "ALL"]
    drop = [name for name in caps.drop if name.upper() != "ALL"]
    bits = ALL_MASK if len(add) < len(caps.add) else DEFAULT_MASK
    if len(drop) < len(caps.drop):
        bits = 0
    return (bits | mask(add)) & ~mask(drop)
