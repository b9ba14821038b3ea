"""Which processes a container's main process took with it: the foreground rule under a PID
namespace per container.

When PID 1 of a PID namespace exits, the kernel (kernel/exit.c do_exit -> exit_notify ->
find_child_reaper -> zap_pid_ns_processes) SIGKILLs every other process of the namespace and
waits until all are gone before the main process's own exit is reported: by the time its pidfd
turns readable there is nothing left to look at. What is left is the kernel's exit accounting.

Why taskstats and not the process-event connector: cn_proc's PROC_EVENT_EXIT is sent after
exit_notify, and zap_pid_ns_processes sets the dying PID 1's SIGCHLD to SIG_IGN first, so the
killed children are auto-reaped inside their own exit_notify and their exit events carry
parent_pid = parent_tgid = 0 (pid_alive() is false by then; seen on 6.18): nothing ties them to
the main process. taskstats (generic netlink "TASKSTATS", a listener registered per CPU) is sent
from taskstats_exit(), early in do_exit, before exit_notify: each record names the parent at
the moment the task began to exit (ac_ppid), its wait status (ac_exitcode, leaders only) and its
command (ac_comm). The order is exact, not a matter of timing:

- the main process's own record is queued before exit_notify, hence before the kernel sends a
  single SIGKILL: a record after it with status SIGKILL describes a process that was alive when
  the main process began to exit;
- each killed process's record is queued before it is released, and the main process is not
  reported (pidfd readable) until every one is released: when the supervisor sees the exit,
  every record is already on the socket;
- the top of every tree left behind is the main process's child (orphans are re-parented to
  PID 1 of the namespace); deeper processes name a killed parent, so the closure from the main
  pid finds them all.

A classic BPF filter in the kernel passes only records with status SIGKILL or whose parent is
the runtime (the main processes are its direct children): a busy host's other exits never wake
the supervisor. Left open: a record lost to a full socket buffer (ENOBUFS) means no warning; a
process SIGKILLed by someone else *after* the main process began to exit counts, rightly (it
was alive then); a killed process's pid, reused at once by an unrelated process whose own child
is SIGKILLed before the supervisor asks (a window of milliseconds), would add that child.
"""

from __future__ import annotations

import _struct as struct  # struct.py only re-exports _struct: one module less on every start
import errno
import os
import sys

from sandbox.log import get_logger
from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

log = get_logger(__name__)

# <linux/netlink.h>, <linux/genetlink.h>, <linux/taskstats.h>
NETLINK_GENERIC = 16
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 3, 1, 2
TASKSTATS_CMD_GET, TASKSTATS_CMD_NEW = 1, 2
TASKSTATS_TYPE_PID, TASKSTATS_TYPE_STATS, TASKSTATS_TYPE_AGGR_PID = 1, 3, 4
TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK = 3, 4
SIGKILL_STATUS = 9  # wait status of a process killed by SIGKILL (no core)

# struct taskstats offsets: UAPI, new fields are only appended (the rules in <linux/taskstats.h>)
TS_EXITCODE, TS_COMM, TS_PID, TS_PPID, TS_MIN_LEN = 4, 80, 128, 132, 136
TS_COMM_LEN = 32
# Where the first record's fields sit in a TASKSTATS_CMD_NEW message, for the BPF filter:
# nlmsghdr 16, genlmsghdr 4, AGGR_PID nest header 4, PID attribute 8, STATS attribute header 4.
MSG_AGGR_TYPE, MSG_STATS_TYPE, MSG_STATS = 22, 34, 36

MARKERS_KEPT = 64  # exits of the runtime's children remembered while nobody asked about them
KILLED_KEPT = 1024  # SIGKILL records remembered, newest last


class TaskExit(Record):
    """One task's taskstats record, as sent when it began to exit."""

    pid: int  # thread id in the initial PID namespace (the pid of a thread-group leader)
    ppid: int  # tgid of its parent at that moment
    status: int  # wait status (ac_exitcode): set for thread-group leaders, 0 for other threads
    comm: str


# --- pure parts: messages, the filter, the closure -------------------------------------------


def _attrs(data: bytes, start: int, end: int) -> Iterable[tuple[int, int, int]]:
    """(type, payload start, payload end) of each netlink attribute in data[start:end]."""
    while start + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, start)
        if length < 4 or start + length > end:
            return
        yield kind & 0x3FFF, start + 4, start + length  # without NLA_F_NESTED / NET_BYTEORDER
        start += (length + 3) & ~3


def _messages(data: bytes) -> Iterable[tuple[int, int, int]]:
    """(type, payload start, end) of each netlink message in one datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16 or offset + length > len(data):
            return
        yield kind, offset + 16, offset + length
        offset += (length + 3) & ~3


def parse_exits(data: bytes, family: int) -> list[TaskExit]:
    """The per-task records (TASKSTATS_TYPE_AGGR_PID) of the TASKSTATS_CMD_NEW messages in one
    datagram; anything else (acks, per-group AGGR_TGID totals, short or foreign messages) is
    skipped."""
    found = []
    for kind, start, end in _messages(data):
        if kind != family or end - start < 4 or data[start] != TASKSTATS_CMD_NEW:
            continue
        for nest, nstart, nend in _attrs(data, start + 4, end):
            if nest != TASKSTATS_TYPE_AGGR_PID:
                continue
            for attr, astart, aend in _attrs(data, nstart, nend):
                if attr == TASKSTATS_TYPE_STATS and aend - astart >= TS_MIN_LEN:
                    status = struct.unpack_from("=I", data, astart + TS_EXITCODE)[0]
                    pid, ppid = struct.unpack_from("=II", data, astart + TS_PID)
                    comm = data[astart + TS_COMM:astart + TS_COMM + TS_COMM_LEN].split(b"\0", 1)[0]
                    found.append(TaskExit(pid, ppid, status, comm.decode(errors="replace")))
    return found


def _be(value: int, size: int) -> int:
    """A host-order field as a BPF absolute load sees it (loads are big-endian)."""
    return int.from_bytes(value.to_bytes(size, sys.byteorder), "big")


# classic BPF opcodes (<linux/filter.h>)
BPF_LD_H_ABS, BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x28, 0x20, 0x15, 0x06


def filter_program(family: int, parents: int | Iterable[int]) -> list[tuple[int, int, int, int]]:
    """Keep a record only if the task was SIGKILLed or is a child of one of `parents` (the
    runtime, or the node agent's pod shims); keep every message that is not a record laid out as
    expected (acks, another layout): Python decides. Instructions are (code, jt, jf, k); a jump
    skips that many instructions."""
    pids = [parents] if isinstance(parents, int) else sorted(parents)
    n = len(pids)
    accept = 10 + n  # the index of the last instruction
    return [
        (BPF_LD_H_ABS, 0, 0, 4),  # nlmsg_type
        (BPF_JEQ_K, 0, accept - 2, _be(family, 2)),  # not a taskstats message -> accept
        (BPF_LD_H_ABS, 0, 0, MSG_AGGR_TYPE),
        (BPF_JEQ_K, 0, accept - 4, _be(TASKSTATS_TYPE_AGGR_PID, 2)),  # -> accept
        (BPF_LD_H_ABS, 0, 0, MSG_STATS_TYPE),
        (BPF_JEQ_K, 0, accept - 6, _be(TASKSTATS_TYPE_STATS, 2)),  # padded or another layout -> accept
        (BPF_LD_W_ABS, 0, 0, MSG_STATS + TS_EXITCODE),
        (BPF_JEQ_K, accept - 8, 0, _be(SIGKILL_STATUS, 4)),  # killed -> accept
        (BPF_LD_W_ABS, 0, 0, MSG_STATS + TS_PPID),
        *((BPF_JEQ_K, n - j, 0, _be(pid, 4)) for j, pid in enumerate(pids)),  # a parent's child -> accept
        (BPF_RET_K, 0, 0, 0),  # drop
        (BPF_RET_K, 0, 0, 0xFFFFFFFF),  # accept, whole message
    ]


def killed_after(main: int, marker: int, killed: Iterable[tuple[int, TaskExit]]) -> list[TaskExit]:
    """The SIGKILLed processes of the tree below `main` whose records came after `marker` (the
    sequence number of the main process's own record), in arrival order. A parent's record may
    come after its child's (they die in any order), hence the fixed point."""
    candidates = [(seq, rec) for seq, rec in killed if seq > marker and rec.status == SIGKILL_STATUS]
    parents, found = {main}, {}
    grown = True
    while grown:
        grown = False
        for seq, rec in candidates:
            if rec.pid not in found and rec.ppid in parents:
                found[rec.pid] = (seq, rec)
                parents.add(rec.pid)
                grown = True
    return [rec for _, rec in sorted(found.values(), key=lambda item: item[0])]


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _request(kind: int, cmd: int, attrs: bytes, seq: int, flags: int = NLM_F_REQUEST) -> bytes:
    body = struct.pack("=BBH", cmd, 1, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def family_id(data: bytes) -> int:
    """The generic netlink family id in a CTRL_CMD_GETFAMILY reply; raises OSError on an error
    reply (ENOENT: the kernel has no taskstats)."""
    for kind, start, end in _messages(data):
        if kind == NLMSG_ERROR:
            raise OSError(-struct.unpack_from("=i", data, start)[0], "resolving the TASKSTATS family")
        for attr, astart, _ in _attrs(data, start + 4, end):
            if attr == CTRL_ATTR_FAMILY_ID:
                return int(struct.unpack_from("=H", data, astart)[0])
    raise OSError(0, "no family id in the TASKSTATS family reply")


def ack_error(data: bytes, seq: int) -> int | None:
    """The errno of the kernel's ack to request `seq` in this datagram (0: done), None if absent."""
    for kind, start, _ in _messages(data):
        if kind == NLMSG_ERROR and struct.unpack_from("=I", data, start + 4 + 8)[0] == seq:
            return int(-struct.unpack_from("=i", data, start)[0])
    return None


class ExitWatch:
    """The runtime's taskstats listener: opened once per pod (`open`), read by the supervisor's
    selector (`fileno`, `drain`), asked once per exited main process (`outlived`, `forget`)."""

    def __init__(self, sock: Any, family: int, runtime_pid: int, cpus: bytes) -> None:
        self._sock, self._family, self._runtime_pid, self._cpus = sock, family, runtime_pid, cpus
        self._parents = {runtime_pid}  # whose children are main processes (the runtime, pod shims)
        self._seq = 0  # arrival number of the next record
        self._markers: dict[int, tuple[int, int]] = {}  # child of the runtime -> (arrival, status)
        self._watched: set[int] = set()
        self._killed: list[tuple[int, TaskExit]] = []
        self.lost = False  # the socket overflowed once: records are missing

    @classmethod
    def open(cls, runtime_pid: int | None = None) -> ExitWatch | None:
        """A registered listener, or None (logged once) where taskstats cannot be had: no
        CONFIG_TASKSTATS, not root, not in the initial user and PID namespaces."""
        import _socket

        pid = os.getpid() if runtime_pid is None else runtime_pid
        try:
            with open("/sys/devices/system/cpu/possible", "rb") as f:
                cpus = f.read().strip()
            sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_GENERIC)
        except OSError as e:
            log.info("foreground rule: no taskstats listener (%s); a main process that leaves "
                     "background work behind is not reported", e)
            return None
        try:
            sock.bind((0, 0))
            try:
                sock.setsockopt(_socket.SOL_SOCKET, 32, 1 << 20)  # SO_RCVBUFFORCE: 1 MiB for bursts
            except PermissionError:
                pass  # the default buffer; an overflow is noted (`lost`)
            sock.send(_request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, _attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0"), 1))
            family = family_id(sock.recv(8192, _socket.MSG_DONTWAIT))
            _attach_filter(sock, filter_program(family, pid))
            watch = cls(sock, family, pid, cpus)
            watch._register(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK)
        except OSError as e:
            sock.close()
            log.info("foreground rule: no taskstats listener (%s); a main process that leaves "
                     "background work behind is not reported", e)
            return None
        sock.setblocking(False)
        return watch

    def _register(self, attr: int) -> None:
        """(De)register this socket as the listener on every possible CPU (records are sent to
        the listeners of the CPU the task exits on) and wait for the kernel's ack."""
        import _socket

        self._sock.send(_request(self._family, TASKSTATS_CMD_GET, _attr(attr, self._cpus + b"\0"), 2,
                                 NLM_F_REQUEST | NLM_F_ACK))
        while True:  # the kernel acks within send(); records may be queued before the ack
            data = self._sock.recv(65536, _socket.MSG_DONTWAIT)
            error = ack_error(data, 2)
            if error is None:
                self._take(data)
                continue
            if error:
                raise OSError(error, os.strerror(error))
            return

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def add_parent(self, pid: int) -> None:
        """Main processes may also be children of `pid` (a pod's shim, whose stage 2 clones them
        with CLONE_PARENT): the kernel filter is replaced to pass their records too."""
        if pid not in self._parents:
            self._parents.add(pid)
            _attach_filter(self._sock, filter_program(self._family, self._parents))

    def remove_parent(self, pid: int) -> None:
        if pid in self._parents and pid != self._runtime_pid:
            self._parents.discard(pid)
            try:
                _attach_filter(self._sock, filter_program(self._family, self._parents))
            except OSError as e:  # a wider filter only wakes us more often
                log.debug("foreground rule: cannot narrow the filter: %s", e)

    def watch(self, main_pid: int) -> None:
        """Keep `main_pid`'s exit until `forget`, however many other children exit meanwhile
        (optional: the last MARKERS_KEPT exits of the runtime's children are kept anyway)."""
        self._watched.add(main_pid)

    def forget(self, main_pid: int) -> None:
        self._watched.discard(main_pid)
        self._markers.pop(main_pid, None)
        oldest = min((seq for seq, _ in self._markers.values()), default=self._seq)
        self._killed = [item for item in self._killed if item[0] > oldest]

    def drain(self) -> None:
        """Read every queued record (never blocks)."""
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno != errno.ENOBUFS:  # the receive buffer overflowed: go on reading
                    raise
                if not self.lost:
                    log.info("foreground rule: taskstats records were lost (receive buffer full)")
                self.lost = True
                continue
            self._take(data)

    def _take(self, data: bytes) -> None:
        for rec in parse_exits(data, self._family):
            if rec.ppid in self._parents:
                # A main process is the runtime's direct child (CLONE_PARENT); the record whose
                # pid is the main pid is its thread-group leader's, the one with the status.
                self._markers[rec.pid] = (self._seq, rec.status)
            elif rec.status == SIGKILL_STATUS and self._markers:
                self._killed.append((self._seq, rec))
            self._seq += 1
        self._trim()

    def _trim(self) -> None:
        unwatched = [pid for pid in self._markers if pid not in self._watched]
        for pid in unwatched[:max(0, len(unwatched) - MARKERS_KEPT)]:
            del self._markers[pid]
        del self._killed[:max(0, len(self._killed) - KILLED_KEPT)]

    def exit_status(self, main_pid: int) -> int | None:
        """The main process's wait status as its record gave it; None if no record was seen."""
        marker = self._markers.get(main_pid)
        return None if marker is None else marker[1]

    def outlived(self, main_pid: int) -> list[tuple[int, str]]:
        """(pid, command) of the processes still alive when `main_pid` began to exit, which the
        kernel then killed; empty if its record was not seen. Call `drain` first."""
        marker = self._markers.get(main_pid)
        if marker is None:
            return []
        return [(rec.pid, rec.comm) for rec in killed_after(main_pid, marker[0], self._killed)]

    def close(self) -> None:
        try:
            self._register(TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK)
        except OSError:
            pass  # the kernel drops a closed socket's registration at the next exit anyway
        self._sock.close()


def _attach_filter(sock: Any, program: list[tuple[int, int, int, int]]) -> None:
    """SO_ATTACH_FILTER takes a struct sock_fprog {len; pointer}: cffi (loaded for the native
    core anyway) gives the instructions' address, without ctypes (~3 ms to import) or array (one
    more extension module); the kernel copies them during the call."""
    import _socket

    from sandbox.native import address_of

    keep, address = address_of(b"".join(struct.pack("=HBBI", *insn) for insn in program))
    sock.setsockopt(_socket.SOL_SOCKET, 26, struct.pack("@HP", len(program), address))
    del keep  # the kernel has copied the instructions
