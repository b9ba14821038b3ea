"""A pod's process trees as /proc shows them (`sandbox inspect pod NAME --tree`): read-only.

From pause and from each container's main process down: the children each thread has
(/proc/PID/task/TID/children, proc(5)), every process's pid in each PID namespace it is in
(`NSpid` of /proc/PID/status: the host's first, the innermost last), its namespace inodes, and
where a root filesystem comes from (the mount at `/` in the process's own mountinfo: for a
container the overlay of the image's layers and its upper directory).

Identity: a process is its pid and its start time (ProcessRef). A child is kept only if its
parent pid is the node above it, and only if its start time is the same after everything about it
was read: a pid that exits and is reused while we read is left out, never shown as the pod's.
proc(5) warns that the children files are exact only while the processes are stopped: a child
forked during the read may be missed, which a one-shot view accepts.
"""

from __future__ import annotations

import os

from sandbox.process import inspect
from sandbox.record import Record, replace
from sandbox.state.proc import ProcessRef

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The namespaces a pod is made of, in the order the tree shows them (time is never unshared here).
NS_TYPES = ("pid", "net", "ipc", "uts", "mnt", "cgroup", "user")
COMMAND_BYTES = 4096  # a process's argv can be megabytes; the view needs its start
MAX_DEPTH = 64  # deeper chains are cut (a fork bomb's chain would otherwise exhaust Python's stack)
OTHER = "other"  # a namespace none of the pod's processes nor the host owns (made by `unshare` inside)


class Proc(Record):
    """One process and the live children found under it."""

    ref: ProcessRef
    ppid: int
    state: str  # stat field 3: R, S, D, Z (a zombie its parent has not reaped yet), ...
    nspid: tuple[int, ...]  # the pid in each PID namespace, host's first, innermost last
    namespaces: dict[str, int]  # NS_TYPES -> inode; a zombie has only pid and user (exit drops the rest)
    command: str  # argv joined by spaces; `[comm]` when argv is empty (a zombie, a kernel thread)
    children: tuple[Proc, ...] = ()
    cut: bool = False  # children not read: the node is MAX_DEPTH levels down

    @property
    def pid_inside(self) -> int:
        return self.nspid[-1]


class RootSource(Record):
    """The filesystem at a process's `/`: for an overlay, its layers top first as mountinfo names
    them, each one's id in the image store (`sha256:<hex>`, or the path when it is not a store
    layer), and the container's own upper directory."""

    fstype: str
    source: str
    options: str  # the mount's own flags (ro/rw, nosuid, ...)
    lower: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    upper: str = ""


def parse_stat(data: bytes) -> tuple[str, str, int, int]:
    """/proc/PID/stat -> (comm, state, ppid, start time in clock ticks). comm (field 2) may hold
    spaces and parentheses, so the fields after it are split after the last ")"."""
    close = data.rfind(b")")
    comm = data[data.find(b"(") + 1 : close].decode(errors="replace")
    fields = data[close + 2 :].split()
    return comm, fields[0].decode(), int(fields[1]), int(fields[19])


def parse_children(text: str) -> list[int]:
    """A task's children file: pids separated by spaces (a trailing space, no newline)."""
    return [int(p) for p in text.split()]


def _stat(pid: int, proc: str) -> tuple[str, str, int, int] | None:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            return parse_stat(f.read())
    except (FileNotFoundError, ProcessLookupError):
        return None


def _children(pid: int, proc: str) -> list[int]:
    """Children of every thread: a child belongs to the thread that forked it."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"{proc}/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return found
    for tid in sorted(tasks, key=int):
        try:
            with open(f"{proc}/{pid}/task/{tid}/children") as f:
                found += [p for p in parse_children(f.read()) if p not in found]
        except (FileNotFoundError, ProcessLookupError):
            continue  # that thread ended meanwhile
    return found


def _command(pid: int, comm: str, proc: str) -> str:
    with open(f"{proc}/{pid}/cmdline", "rb") as f:
        argv = f.read(COMMAND_BYTES)
    if not argv:
        return f"[{comm}]"
    return argv.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def _read_one(pid: int, start: int | None, parent: int | None, proc: str) -> Proc | None:
    """One process without its children, if it is still `start` (when given) and the child of
    `parent` (when given)."""
    stat = _stat(pid, proc)
    if stat is None:
        return None
    comm, state, ppid, started = stat
    if (start is not None and started != start) or (parent is not None and ppid != parent):
        return None
    try:
        status = inspect.read_status(pid, proc)
        ns = inspect.namespaces(pid, proc)
        command = _command(pid, comm, proc)
    except (FileNotFoundError, ProcessLookupError, PermissionError):  # gone; or out of our reach, as inspect
        return None
    nspid = tuple(int(p) for p in status.get("NSpid", str(pid)).split()) or (pid,)
    return Proc(ProcessRef(pid, started), ppid, state, nspid,
                {t: ns[t] for t in NS_TYPES if t in ns}, command)


def read_tree(ref: ProcessRef, proc: str = "/proc") -> Proc | None:
    """The process `ref` names and its descendants, or None when that process is gone."""
    return _read_tree(ref.pid, ref.start_time, None, proc, 0)


def _read_tree(pid: int, start: int | None, parent: int | None, proc: str, depth: int) -> Proc | None:
    node = _read_one(pid, start, parent, proc)
    if node is None:
        return None
    kids: list[Proc] = []
    pids = _children(pid, proc)
    for child in pids if depth < MAX_DEPTH else []:
        found = _read_tree(child, None, pid, proc, depth + 1)
        if found is not None:
            kids.append(found)
    if (again := _stat(pid, proc)) is None or again[3] != node.ref.start_time:
        return None  # exited while we read: its pid (and the children read) may be another's now
    return replace(node, children=tuple(kids), cut=bool(pids) and depth >= MAX_DEPTH)


def owners(ns: dict[str, int], known: list[tuple[str, dict[str, int]]]) -> dict[str, str]:
    """Per namespace type, whose it is: the first of `known` (host, pause, then each container's
    main process) holding the same inode, or OTHER."""
    found = {}
    for kind, inode in ns.items():
        found[kind] = next((name for name, theirs in known if theirs.get(kind) == inode), OTHER)
    return found


def root_source(table: list[dict[str, Any]]) -> RootSource | None:
    """The mount at `/` in a mountinfo table (inspect.mounts): the last one mounted there is the
    one the process sees."""
    root = next((m for m in reversed(table) if m["target"] == "/"), None)
    if root is None:
        return None
    if root["fstype"] != "overlay":
        return RootSource(root["fstype"], root["source"], root["options"])
    options = overlay_options(root["superOptions"])
    lower = tuple(options.get("lowerdir", []))
    return RootSource(root["fstype"], root["source"], root["options"], lower,
                      tuple(layer_id(p) for p in lower), (options.get("upperdir") or [""])[0])


def overlay_options(super_options: str) -> dict[str, list[str]]:
    """overlayfs's options as mountinfo shows them: `lowerdir=` top first, split at ":" ("::"
    before data-only layers leaves an empty part, dropped), or repeated `lowerdir+=`; the kernel
    writes a ",", ":", "=", space or backslash inside a path as an octal escape."""
    found: dict[str, list[str]] = {}
    for option in super_options.split(","):
        key, _, value = option.partition("=")
        key = key.removesuffix("+")
        parts = value.split(":") if key in ("lowerdir", "datadir") else [value]
        found.setdefault(key, []).extend(_unoctal(p) for p in parts if p)
    return found


def _unoctal(text: str) -> str:
    """`\\ooo` escapes (seq_escape) back to the bytes they stand for."""
    if "\\" not in text:
        return text
    out, i, raw = bytearray(), 0, text.encode()
    while i < len(raw):
        if raw[i : i + 1] == b"\\" and len(raw) >= i + 4 and all(48 <= c <= 55 for c in raw[i + 1 : i + 4]):
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="replace")


def layer_id(path: str) -> str:
    """`sha256:<hex>` when `path` (a short link in the store's l/ or the layer itself) resolves to
    the image store's `layers/sha256/<hex>`; the path as given otherwise (a relative link name,
    a layer removed since)."""
    resolved = os.path.realpath(path) if os.path.isabs(path) else path
    head, name = os.path.split(resolved)
    if os.path.basename(head) == "sha256" and len(name) == 64 and all(c in "0123456789abcdef" for c in name):
        return f"sha256:{name}"
    return path


def read_root(ref: ProcessRef, proc: str = "/proc") -> RootSource | None:
    """Where `ref`'s root comes from, or None when it is gone (or its pid was reused)."""
    try:
        table = inspect.mounts(ref.pid, proc)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    stat = _stat(ref.pid, proc)
    return root_source(table) if stat is not None and stat[3] == ref.start_time else None


def to_json(node: Proc, known: list[tuple[str, dict[str, int]]]) -> dict[str, Any]:
    """A node for `-o json`: its ProcessRef, pids, state, command, namespaces with their owners."""
    return {
        **node.ref.to_json(),
        "ppid": node.ppid,
        "nspid": list(node.nspid),
        "pidInside": node.pid_inside,
        "state": node.state,
        "command": node.command,
        "namespaces": node.namespaces,
        "owners": owners(node.namespaces, known),
        "children": [to_json(child, known) for child in node.children],
        "childrenCut": node.cut,
    }


def root_json(root: RootSource | None, image: str) -> dict[str, Any] | None:
    if root is None:
        return None
    return {"fstype": root.fstype, "source": root.source, "options": root.options, "image": image,
            "lower": list(root.lower), "layers": list(root.layers), "upper": root.upper}
