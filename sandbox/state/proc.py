"""Process identity that survives pid reuse: a pid plus its start time (/proc/PID/stat field 22).

Anything that signals a process it did not just spawn (delete, exec, clean-up after a crash) checks
both first, as runc checks `init_process_start`.
"""

from __future__ import annotations

import os

from sandbox.record import Record


def start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[19])


class ProcessRef(Record):
    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        started = start_time(pid)
        return cls(pid, started) if started is not None else None

    def alive(self) -> bool:
        return start_time(self.pid) == self.start_time

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "startTime": self.start_time}

    @classmethod
    def from_json(cls, data: object) -> ProcessRef | None:
        if not isinstance(data, dict):
            return None
        pid, started = data.get("pid"), data.get("startTime")
        if isinstance(pid, int) and isinstance(started, int):
            return cls(pid, started)
        return None

    def open_pidfd(self) -> int | None:
        """A pidfd for this very process, or None if it is gone (or its pid was reused)."""
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return None
        if not self.alive():
            os.close(fd)
            return None
        return fd
