"""The shim protocol's Python mirror (sandbox/process/shimproto.py) against native/shim_proto.h,
and the packed spawn request read back as the shim reads it."""

from __future__ import annotations

import errno
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from sandbox.errors import ContainerStartError
from sandbox.process import shimproto as proto
from sandbox.process.request import SpawnRequest, join_paths
from sandbox.record import replace
from sandbox.rootfs.plan import MountOp, OpKind

HEADER = Path(__file__).resolve().parents[2] / "native" / "shim_proto.h"

CONSTANTS = {
    "SHIM_PROTO_VERSION": proto.PROTO_VERSION, "SHIM_ID_MAX": proto.ID_MAX, "SHIM_MSG_MAX": proto.MSG_MAX,
    "SHIM_OUTPUT_MAX": proto.OUTPUT_MAX, "SHIM_MAX_FDS": proto.MAX_FDS, "SHIM_REQ_MAGIC": proto.REQ_MAGIC,
    "SHIM_REQ_MAGIC2": proto.REQ_MAGIC2,
    "SHIM_REQ_MAX": proto.REQ_MAX, "SHIM_HELLO": proto.HELLO, "SHIM_SPAWN": proto.SPAWN, "SHIM_ACK": proto.ACK,
    "SHIM_LIST": proto.LIST, "SHIM_WATCH": proto.WATCH, "SHIM_REOPEN": proto.REOPEN, "SHIM_SHUTDOWN": proto.SHUTDOWN,
    "SHIM_R_HELLO": proto.R_HELLO, "SHIM_R_OK": proto.R_OK, "SHIM_R_ERROR": proto.R_ERROR,
    "SHIM_R_SPAWNED": proto.R_SPAWNED, "SHIM_R_LIST_ENTRY": proto.R_LIST_ENTRY, "SHIM_R_LIST_END": proto.R_LIST_END,
    "SHIM_E_EXIT": proto.E_EXIT, "SHIM_E_OUTPUT": proto.E_OUTPUT, "SHIM_E_DROPPED": proto.E_DROPPED,
    "SHIM_RUNNING": proto.RUNNING, "SHIM_EXITED": proto.EXITED, "SHIM_STDOUT": 1, "SHIM_STDERR": 2,
}

SIZES = {
    "struct shim_hdr": proto.HDR, "struct shim_hello": proto.HELLO_BODY, "struct shim_hello_reply": proto.HELLO_REPLY,
    "struct shim_spawn": proto.SPAWN_BODY, "struct shim_spawned": proto.SPAWNED, "struct shim_pid": proto.PID,
    "struct shim_id": proto.ID, "struct shim_watch": proto.WATCH_BODY, "struct shim_child": proto.CHILD,
    "struct shim_output": proto.OUTPUT, "struct shim_count": proto.COUNT, "struct sbx_err": proto.ERR,
    "struct shim_req": proto.REQ, "struct shim_req_op": proto.REQ_OP, "struct shim_req_ext": proto.REQ_EXT,
}


def _c_value(text: str) -> int:
    text = text.strip().rstrip("u")
    shift = re.fullmatch(r"\((\d+)u? << (\d+)\)", text)
    if shift:
        return int(shift[1]) << int(shift[2])
    return int(text, 0)


def test_constants_match_the_header() -> None:
    header = HEADER.read_text()
    found = {name: _c_value(value) for name, value in re.findall(r"#define (SHIM_\w+) (\S+(?: << \d+\))?)", header)}
    found.update({name: int(value) for name, value in re.findall(r"\b(SHIM_\w+) = (\d+)", header)})
    assert {name: found.get(name) for name in CONSTANTS} == CONSTANTS


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_struct_sizes_match_the_compiler(tmp_path: Path) -> None:
    """The C compiler's sizeof of every struct equals the Python layout's size (no padding was
    assumed away)."""
    body = "".join(f'printf("%s %zu\\n", "{name}", sizeof({name}));' for name in SIZES)
    source = tmp_path / "sizes.c"
    source.write_text(f'#include <stdio.h>\n#include "shim_proto.h"\nint main(void) {{ {body} return 0; }}\n')
    binary = tmp_path / "sizes"
    subprocess.run(["cc", "-I", str(HEADER.parent), "-o", str(binary), str(source)], check=True)
    out = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    sizes = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in out.splitlines()}
    assert sizes == {name: layout.size for name, layout in SIZES.items()}


def _string(buf: bytes, offset: int) -> str | None:
    if offset == 0:
        return None
    return os.fsdecode(buf[offset : buf.index(b"\0", offset)])


def _strings(buf: bytes, offset: int, count: int) -> list[str]:
    offsets = struct.unpack_from(f"={count}I", buf, offset) if count else ()
    assert offset % 4 == 0
    return [_string(buf, o) or "" for o in offsets]


def _unpack(buf: bytes) -> dict[str, object]:
    """The packed request read back as native/shim.c's unpack() reads it."""
    fields = proto.REQ.unpack_from(buf)
    magic, size, join_fd, join_ns, new_ns, loopback, pivot, ro_root, exec_fd, s0, s1, s2 = fields[:12]
    set_oom, oom, uid, gid, nnp, set_caps, caps, new_session, pdeathsig, cgroup_fd = fields[12:22]
    hostname, pod_mount, stage_name, cwd = fields[22:26]
    argv, n_argv, envp, n_envp, sysctls, n_sysctls, ops, n_ops, groups, n_groups, seccomp, n_seccomp, _ = fields[26:]
    assert (size, buf[-1]) == (len(buf), 0)
    joins: tuple[int, list[str]] = (-1, [])
    if magic == proto.REQ_MAGIC2:  # the extension right after the header
        root_fd, at, count, _ = proto.REQ_EXT.unpack_from(buf, proto.REQ.size)
        joins = (root_fd, _strings(buf, at, count))
    else:
        assert magic == proto.REQ_MAGIC
    unpacked_ops = []
    for i in range(n_ops):
        kind, src, target, fstype, data, _, flags = proto.REQ_OP.unpack_from(buf, ops + i * proto.REQ_OP.size)
        unpacked_ops.append((kind, _string(buf, src), _string(buf, target), _string(buf, fstype), _string(buf, data),
                             flags))
    assert ops % 8 == 0 and seccomp % 8 == 0
    return {
        "fds": (join_fd, exec_fd, (s0, s1, s2), cgroup_fd), "ns": (join_ns, new_ns), "flags": (loopback, pivot, ro_root),
        "ids": (set_oom, oom, uid, gid, nnp, set_caps, caps, new_session, pdeathsig),
        "strings": (_string(buf, hostname), _string(buf, pod_mount), _string(buf, stage_name), _string(buf, cwd)),
        "argv": _strings(buf, argv, n_argv), "env": _strings(buf, envp, n_envp),
        "sysctls": _strings(buf, sysctls, n_sysctls), "ops": unpacked_ops,
        "groups": list(struct.unpack_from(f"={n_groups}I", buf, groups)) if n_groups else [],
        "seccomp": buf[seccomp : seccomp + 8 * n_seccomp], "joins": joins,
    }


def test_pack_request_round_trip() -> None:
    req = SpawnRequest(
        argv=["/bin/sh", "-c", "echo é"], env=["PATH=/bin", "A="], join_pidfd=40, join_ns=0x40000000,
        new_ns=0x20000, hostname="pod", loopback_up=True, sysctls=(("net/x", "1"), ("kernel/y", "2")),
        ops=[MountOp(OpKind.ROOT, "/tmp/r", "tmpfs", "tmpfs", 6, "size=1m"), MountOp(OpKind.MKDIR, "bin", flags=0o755)],
        pivot=True, readonly_root=True, exec_fd=41, cwd="/w", stdio=(42, -1, 43), oom_score_adj=-998, uid=1000,
        gid=1000, groups=(1, 2), no_new_privs=True, caps=0xA80425FB, seccomp_bpf=b"\x06\x00\x00\x00\x00\x00\xff\x7f",
        pdeathsig=9, pod_mount="/shm", stage_name="sbx", cgroup_fd=44)
    data, fds = proto.pack_request(req)
    assert fds == [40, 41, 42, 43, 44]
    got = _unpack(data)
    assert got["fds"] == (1, 2, (3, -1, 4), 5)
    assert got["ns"] == (0x40000000, 0x20000) and got["flags"] == (1, 1, 1)
    assert got["ids"] == (1, -998, 1000, 1000, 1, 1, 0xA80425FB, 1, 9)
    assert got["strings"] == ("pod", "/shm", "sbx", "/w")
    assert got["argv"] == ["/bin/sh", "-c", "echo é"] and got["env"] == ["PATH=/bin", "A="]
    assert got["sysctls"] == ["net/x", "1", "kernel/y", "2"]
    assert got["ops"] == [(1, "tmpfs", "/tmp/r", "tmpfs", "size=1m", 6), (5, None, "bin", None, None, 0o755)]
    assert got["groups"] == [1, 2] and got["seccomp"] == req.seccomp_bpf


def test_pack_minimal_request_has_no_fds_or_arrays() -> None:
    data, fds = proto.pack_request(SpawnRequest(argv=["/bin/true"], env=[]))
    got = _unpack(data)
    assert fds == [] and got["fds"] == (-1, -1, (-1, -1, -1), -1)
    assert got["env"] == [] and got["ops"] == [] and got["groups"] == [] and got["seccomp"] == b""
    assert got["ids"][0] == 0 and got["ids"][5] == 0  # no oom_score_adj, capabilities unchanged


def test_a_self_joining_request_is_sbx2_with_the_cgroups_beneath_its_root_fd() -> None:
    cgroups = ("/sys/fs/cgroup/cpu/sandbox/p/c", "/sys/fs/cgroup/pids/sandbox/p/c")
    plain = SpawnRequest(argv=["/bin/true"], env=[], cgroups=cgroups, stdio=(7, -1, -1))
    data, fds = proto.pack_request(plain)  # no root fd: the runtime joins (a protocol-1 shim)
    assert data[:4] == struct.pack("=I", proto.REQ_MAGIC) and _unpack(data)["joins"] == (-1, [])
    joining = replace(plain, cgroup_root="/sys/fs/cgroup", cgroup_root_fd=50)
    data, fds = proto.pack_request(joining)
    assert fds == [7, 50]
    got = _unpack(data)
    assert got["joins"] == (2, ["cpu/sandbox/p/c", "pids/sandbox/p/c"]) and got["fds"] == (-1, -1, (1, -1, -1), -1)
    # the strings start past the extension: the shim's offset checks hold for both layouts
    assert min(o for o in struct.unpack_from("=2I", data, proto.REQ_EXT.unpack_from(data, proto.REQ.size)[1])) >= \
        proto.REQ.size + proto.REQ_EXT.size


def test_join_paths_are_relative_to_the_root_and_never_outside_it() -> None:
    req = SpawnRequest(argv=["/bin/true"], env=[], cgroups=("/c/pids/a", "/c/pids/a/b"), cgroup_root="/c/pids/a")
    assert join_paths(req) == [".", "b"]
    with pytest.raises(ValueError, match="not beneath"):
        join_paths(replace(req, cgroups=("/c/pids/ab",)))


def test_nul_in_a_string_is_refused_with_the_field() -> None:
    with pytest.raises(ContainerStartError) as caught:
        proto.pack_request(SpawnRequest(argv=["/bin/true"], env=["A=x\0y"]))
    assert caught.value.op == "env[0] contains a NUL byte" and caught.value.errno == errno.EINVAL


def test_bad_seccomp_length_is_refused() -> None:
    with pytest.raises(ValueError, match="sock_filter"):
        proto.pack_request(SpawnRequest(argv=["/bin/true"], env=[], seccomp_bpf=b"\0" * 7))


def test_ids_and_log_paths_are_bounded() -> None:
    assert proto.spawn_body("c1", "/x.log")[-6:] == b"/x.log"
    for bad in ("", "x" * proto.ID_MAX, "a\0b"):
        with pytest.raises(ValueError):
            proto.encode_id(bad)
    with pytest.raises(ValueError):
        proto.spawn_body("c", "/a\0b")


def test_messages_split_and_parse() -> None:
    assert proto.split(proto.message(proto.R_OK)) == (proto.R_OK, b"")
    with pytest.raises(ValueError):
        proto.split(proto.HDR.pack(proto.R_OK, 4))
    exited = proto.parse_child(proto.CHILD.pack(b"c1", 7, proto.EXITED, 7 << 8, 0, 123))
    assert exited == proto.ChildInfo("c1", 7, False, 7 << 8, 123) and exited.exit_code() == (7, 0)
    killed = proto.parse_child(proto.CHILD.pack(b"p", 8, proto.EXITED, 9, 0, 1))
    assert killed.exit_code() == (137, 9)
    out = proto.parse_output(proto.OUTPUT.pack(b"c1", 2, 3) + b"hi\n")
    assert out == proto.Output("c1", "stderr", b"hi\n")
    failure = proto.parse_failure(proto.ERR.pack(3, errno.ENOENT, b"execve", b"/bin/x"))
    error = failure.start_error()
    assert (error.reason, error.op, error.errno, error.path) == ("ContainerCannotRun", "execve", errno.ENOENT, "/bin/x")
    assert proto.parse_failure(proto.ERR.pack(1, 1, b"setns", b"")).start_error().reason == "CreateContainerError"
