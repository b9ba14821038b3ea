"""Processes a container's main process left behind.

With `shareProcessNamespace: true` the main process is not PID 1 of its PID namespace, so when it
exits the kernel does not kill what it started in the background: those processes are re-parented
to pause and live on. The kubelet kills the rest of the container (its cgroup); we find them by
the container's own mount namespace, which every one of them inherited.
"""

from __future__ import annotations

import os


def mount_ns_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def processes_in_mount_ns(mnt_ns: str, exclude: int = 0) -> list[int]:
    """Pids whose mount namespace is `mnt_ns` (as read from /proc/PID/ns/mnt)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != exclude and mount_ns_of(int(entry)) == mnt_ns:
            found.append(int(entry))
    return found


def command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def kill_in_mount_ns(mnt_ns: str, sig: int) -> int:
    """Signal every process in `mnt_ns`; returns how many were signalled.

    Each is signalled through a pidfd opened *before* its namespace is checked again, so a pid
    recycled in between is never hit (the pidfd then names the new process, which fails the check).
    """
    import signal

    count = 0
    for pid in processes_in_mount_ns(mnt_ns):
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if mount_ns_of(pid) == mnt_ns:
                signal.pidfd_send_signal(fd, sig)
                count += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return count
