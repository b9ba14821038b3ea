"""The shim's wire protocol, mirrored from native/shim_proto.h (docs/shim-protocol.md).

Pure data and bytes, no sockets and no cffi, so it is unit-tested without a build: message
bodies as `struct` layouts ("=": host byte order, no implicit padding, as the C structs are laid
out), the packed spawn request that travels in a memfd, and the parsed replies and events.
"""

from __future__ import annotations

import _struct as struct  # struct.py only re-exports _struct: one module less on every start
import errno
import os

from sandbox.errors import ContainerStartError, spawn_failure
from sandbox.process.request import join_paths
from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from sandbox.process.request import SpawnRequest

PROTO_VERSION = 2  # what this client speaks; 2: SBX2 requests (stage 2 joins its v1 cgroups)
HELLO_VERSION = 1  # what its HELLO says: the oldest it speaks, so a shim started by an older
# runtime (version 1 only) still answers; the answer's version tells which requests it takes
ID_MAX = 128  # a child's id, NUL-padded: at most ID_MAX - 1 bytes
MSG_MAX = 65536
OUTPUT_MAX = 16384
MAX_FDS = 8
REQ_MAGIC = 0x31584253
REQ_MAGIC2 = 0x32584253  # "SBX2": REQ_EXT follows the header
REQ_MAX = 64 << 20

# client -> shim
HELLO, SPAWN, ACK, LIST, WATCH, REOPEN, SHUTDOWN = 1, 2, 3, 4, 5, 6, 7
# shim -> client: replies, then events (every type from E_EXIT on is an event)
R_HELLO, R_OK, R_ERROR, R_SPAWNED, R_LIST_ENTRY, R_LIST_END, R_TRACE = 64, 65, 66, 67, 68, 69, 70
E_EXIT, E_OUTPUT, E_DROPPED = 128, 129, 130
RUNNING, EXITED = 1, 2
STREAMS = {1: "stdout", 2: "stderr"}
STAGE_EXEC = 3  # enum sbx_stage: execve itself failed

HDR = struct.Struct("=II")  # type, body length
HELLO_BODY = struct.Struct("=II")  # version, pad
HELLO_REPLY = struct.Struct("=Ii")  # version, shim pid
SPAWN_BODY = struct.Struct(f"={ID_MAX}sII")  # id, log path length, pad; the path follows
SPAWNED = struct.Struct(f"={ID_MAX}siI")  # id, pid, pad
PID = struct.Struct("=iI")
ID = struct.Struct(f"={ID_MAX}s")
WATCH_BODY = struct.Struct("=II")
CHILD = struct.Struct(f"={ID_MAX}siIiIq")  # id, pid, state, wait status, pad, exit time (ns)
OUTPUT = struct.Struct(f"={ID_MAX}sII")  # id, stream, length; the bytes follow
COUNT = struct.Struct("=Q")
ERR = struct.Struct("=ii48s200s")  # struct sbx_err: stage, errno, op, path
# struct shim_req: magic, size; join_fd..exec_fd (7); stdio (3); set_oom..set_caps (6); caps;
# new_session, pdeathsig, cgroup_fd; 4 string offsets; 6 (offset, count) pairs; trace
REQ = struct.Struct("=II7i3i6iQ3i4I12II")
REQ_EXT = struct.Struct("=i3I")  # cgroup_root_fd; join_cgroups offset and count; pad
REQ_OP = struct.Struct("=6IQ")  # kind, source, target, fstype, data, pad; flags


class ChildInfo(Record):
    """A LIST entry or an EXIT event: a child the shim holds."""

    id: str
    pid: int
    running: bool
    status: int  # the raw wait status once exited
    exit_ns: int  # CLOCK_REALTIME of the reap, 0 while running

    def exit_code(self) -> tuple[int, int]:
        """(exit code, signal) as Kubernetes reports them: 128 + signal for a signal death."""
        if os.WIFEXITED(self.status):
            return os.WEXITSTATUS(self.status), 0
        sig = os.WTERMSIG(self.status)
        return 128 + sig, sig


class Output(Record):
    """What a child wrote to one stream, as read (only to clients that asked with WATCH)."""

    id: str
    stream: str  # "stdout" | "stderr"
    data: bytes


class Dropped(Record):
    """OUTPUT events the shim dropped for this client (it did not read them in time)."""

    count: int


class Failure(Record):
    """An ERROR reply: struct sbx_err (a spawn stage's failure, or the shim's own)."""

    stage: int
    errno: int
    op: str
    path: str

    def start_error(self) -> ContainerStartError:
        return spawn_failure(self.stage == STAGE_EXEC, self.op, self.errno, self.path)

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.op}{where}: {os.strerror(self.errno) if self.errno else 'failed'}"


def message(type_: int, body: bytes = b"") -> bytes:
    return HDR.pack(type_, len(body)) + body


def split(packet: bytes) -> tuple[int, bytes]:
    """(type, body) of one packet; ValueError when its framing is wrong."""
    if len(packet) < HDR.size:
        raise ValueError(f"short packet of {len(packet)} bytes")
    type_, length = HDR.unpack_from(packet)
    if length != len(packet) - HDR.size:
        raise ValueError(f"packet of type {type_} says {length} body bytes, has {len(packet) - HDR.size}")
    return type_, packet[HDR.size :]


def encode_id(child_id: str) -> bytes:
    data = child_id.encode()
    if not data or len(data) >= ID_MAX or b"\0" in data:
        raise ValueError(f"child id {child_id!r} must be 1 to {ID_MAX - 1} bytes without NUL")
    return data


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def spawn_body(child_id: str, log_path: str | None) -> bytes:
    path = os.fsencode(log_path) if log_path is not None else b""
    if b"\0" in path or len(path) >= 4096:
        raise ValueError(f"log path {log_path!r} must be under 4096 bytes without NUL")
    return SPAWN_BODY.pack(encode_id(child_id), len(path), 0) + path


def parse_child(body: bytes) -> ChildInfo:
    raw_id, pid, state, status, _, exit_ns = CHILD.unpack(body)
    return ChildInfo(_text(raw_id), pid, state == RUNNING, status, exit_ns)


def parse_output(body: bytes) -> Output:
    raw_id, stream, length = OUTPUT.unpack_from(body)
    data = body[OUTPUT.size :]
    if len(data) != length:
        raise ValueError(f"OUTPUT says {length} bytes, has {len(data)}")
    return Output(_text(raw_id), STREAMS.get(stream, "stdout"), data)


def parse_failure(body: bytes) -> Failure:
    stage, err, op, path = ERR.unpack(body)
    return Failure(stage, err, _text(op), _text(path))


def parse_spawned(body: bytes) -> tuple[str, int]:
    raw_id, pid, _ = SPAWNED.unpack(body)
    return _text(raw_id), pid


class _Packer:
    """Builds the packed request: header first, then each piece appended at an aligned offset."""

    def __init__(self, head: int) -> None:
        self.buf = bytearray(head)

    def put(self, data: bytes, align: int = 1) -> int:
        self.buf += bytes(-len(self.buf) % align)
        offset = len(self.buf)
        self.buf += data
        return offset

    def string(self, value: str | None, what: str) -> int:
        """A NUL-terminated string's offset, 0 for None. A NUL inside would cut it: refused."""
        if value is None:
            return 0
        data = os.fsencode(value)
        if b"\0" in data:
            raise ContainerStartError("CreateContainerError", f"{what} contains a NUL byte", errno.EINVAL,
                                      value.replace("\0", "\\0")[:100])
        return self.put(data + b"\0")

    def strings(self, values: list[str], what: str) -> tuple[int, int]:
        offsets = [self.string(v, f"{what}[{i}]") for i, v in enumerate(values)]
        if not offsets:
            return 0, 0
        return self.put(struct.pack(f"={len(offsets)}I", *offsets), 4), len(offsets)


def pack_request(req: SpawnRequest, trace: bool = False) -> tuple[bytes, list[int]]:
    """The memfd content for `req` and the fds that travel with it (in this order after the
    memfd: the packed fd fields are their indexes, counting the memfd as 0). `trace`: the stages
    send trace records (`--trace`)."""
    fds: list[int] = []

    def fd_index(fd: int) -> int:
        if fd < 0:
            return -1
        fds.append(fd)
        return len(fds)

    ext = req.cgroup_root_fd >= 0  # SBX2: only sent to a shim that answered version 2
    p = _Packer(REQ.size + (REQ_EXT.size if ext else 0))
    argv = p.strings(list(req.argv), "command")
    envp = p.strings(list(req.env), "env")
    sysctls = p.strings([text for pair in req.sysctls for text in pair], "sysctls")
    ops = _pack_ops(p, req)
    groups = (p.put(struct.pack(f"={len(req.groups)}I", *req.groups), 4), len(req.groups)) if req.groups else (0, 0)
    seccomp = (0, 0)
    if req.seccomp_bpf is not None:
        if not req.seccomp_bpf or len(req.seccomp_bpf) % 8:
            raise ValueError(f"seccomp filter of {len(req.seccomp_bpf)} bytes is not a struct sock_filter array")
        seccomp = (p.put(req.seccomp_bpf, 8), len(req.seccomp_bpf) // 8)
    strings = (p.string(req.hostname, "hostname"), p.string(req.pod_mount, "pod mount"),
               p.string(req.stage_name, "stage name"), p.string(req.cwd, "workingDir"))
    joins = p.strings(join_paths(req), "cgroups") if ext else (0, 0)
    p.put(b"\0")  # the last byte is NUL: every string offset is terminated inside the buffer
    head = (
        fd_index(req.join_pidfd), req.join_ns, req.new_ns, int(req.loopback_up), int(req.pivot),
        int(req.readonly_root), fd_index(req.exec_fd), *(fd_index(fd) for fd in req.stdio),
        int(req.oom_score_adj is not None), req.oom_score_adj or 0, req.uid, req.gid, int(req.no_new_privs),
        int(req.caps is not None), req.caps or 0, int(req.new_session), req.pdeathsig, fd_index(req.cgroup_fd),
        *strings, *argv, *envp, *sysctls, *ops, *groups, *seccomp, int(trace),
    )
    if ext:
        REQ_EXT.pack_into(p.buf, REQ.size, fd_index(req.cgroup_root_fd), *joins, 0)
    REQ.pack_into(p.buf, 0, REQ_MAGIC2 if ext else REQ_MAGIC, len(p.buf), *head)
    if len(p.buf) > REQ_MAX or len(fds) + 1 > MAX_FDS:
        raise ValueError(f"spawn request too large: {len(p.buf)} bytes, {len(fds)} fds")
    return bytes(p.buf), fds


def _pack_ops(p: _Packer, req: SpawnRequest) -> tuple[int, int]:
    if not req.ops:
        return 0, 0
    packed = bytearray()
    for op in req.ops:
        what = f"mount {op.target}"
        packed += REQ_OP.pack(int(op.kind), p.string(op.source or None, what), p.string(op.target, what),
                              p.string(op.fstype or None, what), p.string(op.data or None, what), 0, op.flags)
    return p.put(bytes(packed), 8), len(req.ops)
