"""`--trace`: one line per kernel step the runtime takes, with the real values, as it happens.

Each step is emitted where it is taken: the cgroup driver's file write, the netlink request, the
tear-down's undo, and the native stages, whose records come over the spawn channel that carries
their errors (native/sbx.h, struct sbx_trace) and are worded here with the request that was run.
Pause reports its reaping on a pipe it is given only while tracing (native/pause.c --trace).

Off by default and free when off: only `--trace` loads this module, and a trace point's one check
is whether it is loaded (`"sandbox.trace" in sys.modules`), then `emit` (or `active`, the tracer,
None when stopped); json and threading are loaded by a tracer that needs them. A tracer's sink
takes one event (a dict) per step: `stream_sink` writes it to a file descriptor as text
(`trace: ...`) or as a JSON object per line; the node agent can pass any callable, e.g. one that
forwards the events to its client, which prints them with `text_line` or `json_line`. One tracer
per process: the node agent, running several pods, makes the pod's active around its steps.
"""

from __future__ import annotations

import os
import time

from sandbox.process import request

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sandbox.process.request import SpawnRequest
    from sandbox.rootfs.plan import MountOp

    Event = dict[str, Any]

PREFIX = "trace: "


class Tracer:
    """Numbers and times the events and hands each to `sink`; safe from several threads (pause's
    reaping lines are read by one)."""

    def __init__(self, sink: Callable[[Event], None]) -> None:
        import threading

        self.sink = sink
        self.start = time.monotonic()
        self.seq = 0
        self.broken = False  # the sink failed once: no more events
        self._lock = threading.Lock()

    def emit(self, who: str, step: str, line: str, **values: Any) -> None:
        """One step: `who` took it (runtime, pause, a stage of a spawn), `step` names the call
        (clone, mount, cgroup ...), `line` says it with its values, `values` carries them for tools."""
        with self._lock:
            if self.broken:
                return
            self.seq += 1
            event = {"seq": self.seq, "ms": round((time.monotonic() - self.start) * 1000, 3), "who": who,
                     "step": step, "line": line, **values}
            try:
                self.sink(event)
            except OSError:  # a closed stderr or a gone client: the pod goes on untraced
                self.broken = True


active: Tracer | None = None


def emit(who: str, step: str, line: str, **values: Any) -> None:
    """`active.emit(...)` when a tracer is active (a loaded module may have none: a test's, or
    the node agent's between pods)."""
    if active is not None:
        active.emit(who, step, line, **values)


def start(sink: Callable[[Event], None]) -> Tracer:
    """Make a tracer with `sink` the active one."""
    global active
    active = Tracer(sink)
    return active


def stop() -> None:
    global active
    active = None


def text_line(event: Event) -> str:
    """`trace:    12.345ms pause[stage1] unshare(NEWNS|NEWNET)`."""
    return f"{PREFIX}{event['ms']:9.3f}ms {event['who']} {event['line']}"


def json_line(event: Event) -> str:
    import json

    return json.dumps(event, separators=(",", ":"), default=str)


def stream_sink(fd: int, mode: str) -> Callable[[Event], None]:
    """A sink writing each event as one line to `fd` in one write(2): lines of several threads or
    processes sharing the descriptor never mix."""
    render = json_line if mode == "json" else text_line

    def write(event: Event) -> None:
        os.write(fd, (render(event) + "\n").encode(errors="replace"))

    return write


# ---- the native stages' records -------------------------------------------------------------

_NAMESPACES = ((request.CLONE_NEWNS, "NEWNS", "mnt"), (request.CLONE_NEWUTS, "NEWUTS", "uts"),
               (request.CLONE_NEWIPC, "NEWIPC", "ipc"), (request.CLONE_NEWNET, "NEWNET", "net"),
               (request.CLONE_NEWPID, "NEWPID", "pid"), (request.CLONE_NEWCGROUP, "NEWCGROUP", "cgroup"))
# <sched.h>, <linux/sched.h>: the flags stage 1 clones stage 2 with (spawn.c clone_stage2)
_CLONE_FLAGS = ((0x00008000, "CLONE_PARENT"), (0x200000000, "CLONE_INTO_CGROUP"))


def clone_flag_names(flags: int) -> str:
    """NEWNS|NEWNET ... as unshare(2) and setns(2) take them."""
    names = [name for bit, name, _ in _NAMESPACES if flags & bit]
    names += [name for bit, name in _CLONE_FLAGS if flags & bit]
    return "|".join(names) or "0"


def ns_name(flag: int) -> str:
    return next((kind for bit, _, kind in _NAMESPACES if bit == flag), hex(flag))


def ns_pid(pid: int) -> int | None:
    """The pid `pid` has in its own PID namespace (the last NSpid of /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def ns_inode(pid: int, kind: str) -> int | None:
    """The inode of a process's namespace (what /proc/PID/ns/KIND links to)."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def pidfd_pid(pidfd: int) -> int | None:
    """The pid a pidfd names (its fdinfo's Pid line)."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}") as f:
            for line in f:
                if line.startswith("Pid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def describe_mount(op: MountOp) -> str:
    """The op as the mount plan's own describe(), an overlay's lowerdir as its layer count."""
    from sandbox.record import replace
    from sandbox.rootfs.plan import MS_REMOUNT, OpKind

    if op.kind == OpKind.MOUNT and op.flags & MS_REMOUNT:  # no fstype: "mount  on /x (ro)"
        return "remount" + replace(op, flags=op.flags & ~MS_REMOUNT).describe().removeprefix("mount  on")
    if op.fstype == "overlay" and op.data:
        options = []
        for option in op.data.split(","):
            key, _, value = option.partition("=")
            options.append(f"lowerdir=<{len(value.split(':'))} layers>" if key == "lowerdir" else option)
        op = replace(op, data=",".join(options))
    return op.describe()


class SpawnTrace:
    """Words the records of one spawn's stages (their step names come from sbx.h's enum through
    cffi) with the request that was run: the stage sends only results (pids, inodes, counts)."""

    def __init__(self, tracer: Tracer, req: SpawnRequest, label: str) -> None:
        self.tracer = tracer
        self.req = req
        self.label = label
        self.join_pid = pidfd_pid(req.join_pidfd) if req.join_pidfd >= 0 else None

    def record(self, stage: int, step: str, a: int, b: int, text: str) -> None:
        line, values = self.describe(step, a, b, text)
        who = f"{self.label}[stage{min(stage, 2)}]" if stage else self.label
        self.tracer.emit(who, step.lower(), line, **values)

    def describe(self, step: str, a: int, b: int, text: str) -> tuple[str, dict[str, Any]]:
        """(line, values) of one record; `step` is the enum name without SBX_TRACE_."""
        return self._stage1(step, a, b, text) or self._stage2(step, a, b, text) or (f"{step} {a} {b} {text}", {})

    def _stage1(self, step: str, a: int, b: int, text: str) -> tuple[str, dict[str, Any]] | None:
        """The namespaces' steps, up to stage 2's clone."""
        if step == "SETNS":
            return (f"setns(pidfd of pid {self.join_pid}, {clone_flag_names(a)}) -> {ns_name(a)}:[{b}]",
                    {"ns": ns_name(a), "inode": b, "pid": self.join_pid})
        if step == "UNSHARE":
            return f"unshare({clone_flag_names(a)})", {"flags": clone_flag_names(a)}
        if step == "NS":
            return f"  new {ns_name(a)}:[{b}]", {"ns": ns_name(a), "inode": b}
        if step == "HOSTNAME":
            return f"sethostname({text!r})", {"hostname": text}
        if step == "LOOPBACK":
            return "ioctl(SIOCSIFFLAGS, lo, IFF_UP)", {"link": "lo"}
        if step == "SYSCTL":
            path, value = self.req.sysctls[a] if a < len(self.req.sysctls) else (text, "?")
            return f"write /proc/sys/{path} = {value}", {"path": f"/proc/sys/{path}", "value": value}
        if step == "CLONE":
            inner, inode = ns_pid(b), ns_inode(b, "pid")
            where = f" (pid {inner} in pid:[{inode}])" if inner is not None else ""
            return (f"clone({clone_flag_names(a)}) -> {self.label} pid {b}{where}",
                    {"pid": b, "nsPid": inner, "pidNs": inode})
        return None

    def _stage2(self, step: str, a: int, b: int, text: str) -> tuple[str, dict[str, Any]] | None:
        """Stage 2's set-up, up to execve."""
        req = self.req
        if step == "CGROUP":
            path = req.cgroups[a] if a < len(req.cgroups) else "?"
            return (f"cgroup tasks = 0 ({path}): stage 2 moved itself in",
                    {"path": f"{path}/tasks", "value": "0"})
        if step == "SETSID":
            return f"setsid() -> session {a}", {"sid": a}
        if step == "OOM_SCORE":
            result = "" if not b else f": {os.strerror(b)} (kept the runtime's)"
            return f"write /proc/self/oom_score_adj = {a}{result}", {"value": a, "errno": b}
        if step == "MOUNT":
            op = req.ops[a]
            skipped = " (not in the root: skipped)" if b else ""
            return describe_mount(op) + skipped, {"op": a, "target": op.target, "skipped": bool(b)}
        if step == "PIVOT":
            ro = ", then mount_setattr(/, RDONLY)" if a else ""
            return f"pivot_root(\".\", \".\"), umount2(old root, MNT_DETACH){ro}", {"readonly": bool(a)}
        if step == "CWD":
            return f"chdir {text}", {"cwd": text}
        if step == "BOUNDING":
            return f"prctl(PR_CAPBSET_DROP) x{a}: bounding set", {"dropped": a}
        if step == "IDS":
            groups = ",".join(str(g) for g in req.groups)
            return f"setgroups([{groups}]), setresgid({b}), setresuid({a})", {"uid": a, "gid": b}
        if step == "CAPSET":
            return f"capset(kept: {bin(a).count('1')})", {"caps": f"{a:016x}", "kept": bin(a).count("1")}
        if step == "NNP":
            return "prctl(PR_SET_NO_NEW_PRIVS, 1)", {}
        if step == "SECCOMP":
            return f"seccomp(SET_MODE_FILTER, {a} BPF instructions)", {"instructions": a}
        if step == "EXEC":
            if a:
                return f"execveat(fd of the binary, {text})", {"path": text}
            return f"execve {text}", {"path": text, "argv": list(req.argv)}
        return None


def spawn_label(req: SpawnRequest) -> str:
    """What a spawn is, for its lines: its command's name (pause's is pause), after `exec:` or
    `probe:` for those."""
    command = os.path.basename(req.argv[0]) if req.argv else "?"
    return command if req.stage_name == "sbx" else f"{req.stage_name}:{command}"


# ---- pause's reaping ------------------------------------------------------------------------

def read_pause(fd: int, tracer: Tracer) -> None:
    """Read pause's reaping lines from the pipe `fd` (closed here at its end) on a daemon thread."""
    import threading

    threading.Thread(target=_pause_lines, args=(fd, tracer), name="trace-pause", daemon=True).start()


def _pause_lines(fd: int, tracer: Tracer) -> None:
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(4096):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                tracer.emit("pause", "sigchld", f"{text} (an orphan reaped by pause)", report=text)


def undo_line(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A tear-down journal record's undo as a line (sandbox/pod/teardown.py to_json)."""
    data = dict(record)
    kind = str(data.pop("kind"))
    words = {"process": "kill -9 pid {pid}, wait for its exit", "mount": "umount2({path}, MNT_DETACH)",
             "directory": "rm -r {path}", "cgroup": "kill and rmdir cgroup {path}",
             "network": "remove network {what}", "shim": "stop shim pid {pid}"}
    template = words.get(kind, kind)
    try:
        line = template.format(**data)
    except (KeyError, IndexError):
        line = kind
    return f"undo {line}", {"kind": kind, **{k: v for k, v in data.items() if k != "spec"}}
