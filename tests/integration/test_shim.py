"""The per-pod parent (sandbox/_bin/shim) with real processes, checked from outside: children
outlive every client, exits wait for an ACK, output reaches the CRI log with no line lost or
doubled, and the shim's own memory stays small."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.errors import ContainerStartError
from sandbox.logs.cri import parse_record
from sandbox.native import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, SpawnRequest
from sandbox.process.shim import Shim, ShimChild, ShimError, ShimSpawner
from sandbox.record import replace
from sandbox.rootfs.plan import MountOp, OpKind

pytestmark = pytest.mark.root

APPLETS = ("sh", "sleep", "cat", "seq")


class Pod:
    """One test's shim directory, and every shim and child it saw, for the clean-up."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.shim_pids: set[int] = set()
        self.clients: list[Shim] = []

    def start(self) -> Shim:
        shim = Shim.start(str(self.dir))
        self.shim_pids.add(shim.pid)
        self.clients.append(shim)
        return shim

    def connect(self) -> Shim:
        shim = Shim.connect(str(self.dir))
        self.shim_pids.add(shim.pid)
        self.clients.append(shim)
        return shim

    def root(self, name: str) -> str:
        path = self.dir / "roots" / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)


def busybox_request(root: str, script: str, stdin: int, **fields: object) -> SpawnRequest:
    """A container in its own mount/pid/uts/ipc namespaces whose root is a tmpfs holding the
    host's static busybox (Debian's busybox-static, the test image's source)."""
    ops = [MountOp(OpKind.ROOT, root, "tmpfs", "tmpfs", 0, "mode=755,size=1m"),
           MountOp(OpKind.MKDIR, "bin", flags=0o755),
           MountOp(OpKind.BIND, "bin/busybox", "/bin/busybox")]
    ops += [MountOp(OpKind.SYMLINK, f"bin/{name}", "busybox") for name in APPLETS]
    args: dict[str, object] = {"argv": ["/bin/sh", "-c", script], "env": ["PATH=/bin"],
                               "new_ns": CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC, "ops": ops,
                               "pivot": True, "stdio": (stdin, -1, -1), "stage_name": "test", **fields}
    return SpawnRequest(**args)  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return False


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    except FileNotFoundError:
        pass
    return found


def _wait(what: object, timeout: float = 10, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {message}")


def _wait_pidfd(pidfd: int, timeout: float = 10) -> None:
    assert select.select([pidfd], [], [], timeout)[0], "process did not exit in time"


def _kill_shim(pid: int) -> None:
    """SIGKILL a shim we started (after its children) and wait until it is gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "sbx-shim":
                return  # the pid was reused: not ours
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        select.select([fd], [], [], 10)
    except (ProcessLookupError, FileNotFoundError):
        pass
    finally:
        os.close(fd)


@pytest.fixture
def pod() -> Iterator[Pod]:
    directory = Path(tempfile.mkdtemp(prefix="sbx-shim-test-"))
    pod = Pod(directory)
    try:
        yield pod
    finally:
        for client in pod.clients:
            client.close()
        for pid in pod.shim_pids:
            for child in _children(pid):  # containers die with the shim (PDEATHSIG) anyway
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _kill_shim(pid)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def null() -> Iterator[int]:
    fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    yield fd
    os.close(fd)


def _log_lines(path: Path) -> list[tuple[str, str, bytes]]:
    """(stream, tag, content) of every record, each checked against the CRI format."""
    out = []
    for raw in path.read_bytes().split(b"\n")[:-1]:  # records end with "\n"; a lone "\r" is content
        _, stream, tag, content = parse_record(raw)
        out.append((stream, tag, content))
    return out


PRINTER = "i=0; while [ $i -lt {n} ]; do echo out $i; echo err $i >&2; i=$((i+1)); sleep 0.02; done; exit 7"


def _check_printer_log(path: Path, n: int) -> None:
    records = _log_lines(path)
    assert all(tag == "F" for _, tag, _ in records)
    assert [c for s, _, c in records if s == "stdout"] == [f"out {i}".encode() for i in range(n)]
    assert [c for s, _, c in records if s == "stderr"] == [f"err {i}".encode() for i in range(n)]


def test_exit_and_output_while_no_client_is_connected(pod: Pod, null: int) -> None:
    shim = pod.start()
    log = pod.dir / "c1.log"
    child = ShimSpawner(shim).spawn(busybox_request(pod.root("c1"), PRINTER.format(n=60), null),
                                    child_id="c1", log_path=str(log))
    pidfd = os.dup(child.pidfd)
    try:
        _wait(lambda: log.exists() and b"out 3" in log.read_bytes(), message="first lines")
        child.close()
        shim.close()  # no client from here on, while it prints and exits
        _wait_pidfd(pidfd)
    finally:
        os.close(pidfd)
    _wait(lambda: not _alive(child.pid), message="the shim's reap")
    again = pod.connect()
    held = again.list()
    assert [(c.id, c.pid) for c in held] == [("c1", child.pid)]
    assert held[0].exit is not None and held[0].exit.exit_code == 7
    assert held[0].info is not None and held[0].info.exit_ns > 0
    _check_printer_log(log, 60)
    again.ack(child.pid)
    assert again.list() == []


def test_a_killed_client_loses_nothing(pod: Pod) -> None:
    """The client process (which also started the shim) is SIGKILLed mid-output."""
    log = pod.dir / "c1.log"
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_shim import busybox_request
        from sandbox.process.shim import Shim, ShimSpawner
        shim = Shim.start({str(pod.dir)!r})
        null = os.open("/dev/null", os.O_RDWR)
        req = busybox_request({pod.root("c1")!r}, {PRINTER.format(n=80)!r}, null)
        child = ShimSpawner(shim).spawn(req, child_id="c1", log_path={str(log)!r})
        print(shim.pid, child.pid, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        shim_pid, pid = map(int, proc.stdout.readline().split())
        pod.shim_pids.add(shim_pid)
        _wait(lambda: log.exists() and b"out 5" in log.read_bytes(), message="first lines")
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert _alive(pid), "the container must outlive its client"
    pidfd = os.pidfd_open(pid)
    try:
        _wait_pidfd(pidfd)
    finally:
        os.close(pidfd)
    _wait(lambda: not _alive(pid), message="the shim's reap")
    shim = pod.connect()
    assert shim.pid == shim_pid
    held = shim.list()
    assert [(c.id, c.pid) for c in held] == [("c1", pid)]
    assert held[0].exit is not None and held[0].exit.exit_code == 7
    _check_printer_log(log, 80)


def test_exec_failure_leaves_nothing(pod: Pod, null: int) -> None:
    shim = pod.start()
    spawner = ShimSpawner(shim)
    with pytest.raises(ContainerStartError) as caught:
        spawner.spawn(busybox_request(pod.root("bad"), "", null, argv=["/bin/missing"]), child_id="bad")
    assert (caught.value.reason, caught.value.op, caught.value.path) == ("ContainerCannotRun", "execve", "/bin/missing")
    assert shim.list() == []
    assert _children(shim.pid) == []


def test_stage_one_failure_is_an_error_reply(pod: Pod, null: int) -> None:
    shim = pod.start()
    req = busybox_request(pod.root("bad"), "true", null, new_ns=CLONE_NEWNS | CLONE_NEWNET,
                          sysctls=(("net/no/such/sysctl", "1"),))
    with pytest.raises(ContainerStartError) as caught:
        ShimSpawner(shim).spawn(req, child_id="bad", log_path=str(pod.dir / "bad.log"))
    error = caught.value
    assert (error.reason, error.op, error.path) == ("CreateContainerError", "open sysctl", "net/no/such/sysctl")
    assert shim.list() == []
    assert _children(shim.pid) == []
    # A log directory that does not exist: the shim's own failure, with the path.
    with pytest.raises(ContainerStartError) as caught:
        ShimSpawner(shim).spawn(busybox_request(pod.root("c"), "true", null), child_id="c",
                                log_path=str(pod.dir / "missing" / "c.log"))
    assert (caught.value.op, caught.value.path) == ("open log", str(pod.dir / "missing" / "c.log"))
    assert _children(shim.pid) == []


def _ns(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_pause_and_a_container_in_its_namespaces(pod: Pod, null: int) -> None:
    from sandbox.pod.sandbox import HostNamespaces, start_pause

    shim = pod.start()
    spawner = ShimSpawner(shim)
    dirs = types.SimpleNamespace(pause_root=Path(pod.root("pause")))
    pause = start_pause(spawner, dirs, "shim-test", HostNamespaces())  # type: ignore[arg-type]
    assert isinstance(pause, ShimChild) and _alive(pause.pid)
    assert Path(f"/proc/{pause.pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(shim.pid)
    joined = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID
    req = busybox_request(pod.root("app"), "sleep 30", null, join_pidfd=pause.pidfd, join_ns=joined,
                          new_ns=CLONE_NEWNS)
    app = spawner.spawn(req, child_id="app")
    for kind in ("net", "ipc", "uts", "pid"):
        assert _ns(app.pid, kind) == _ns(pause.pid, kind) != _ns(os.getpid(), kind), kind
    assert _ns(app.pid, "mnt") != _ns(pause.pid, "mnt")
    assert sorted(_children(shim.pid)) == sorted([pause.pid, app.pid])
    for child in (app, pause):
        child.send_signal(signal.SIGKILL)
        assert child.wait().signal == signal.SIGKILL
        shim.ack(child.pid)
        child.close()
    assert shim.list() == []


def test_reopen_after_rename(pod: Pod, null: int) -> None:
    shim = pod.start()
    log = pod.dir / "c.log"
    script = "echo before; while [ ! -e /go ]; do sleep 0.01; done; echo after"
    child = ShimSpawner(shim).spawn(busybox_request(pod.root("c"), script, null), child_id="c", log_path=str(log))
    _wait(lambda: log.exists() and b"before" in log.read_bytes(), message="the first line")
    rotated = pod.dir / "c.log.1"
    os.rename(log, rotated)
    shim.reopen("c")
    Path(f"/proc/{child.pid}/root/go").touch()
    assert child.wait().exit_code == 0
    assert [c for _, _, c in _log_lines(rotated)] == [b"before"]
    assert [c for _, _, c in _log_lines(log)] == [b"after"]
    with pytest.raises(OSError):
        shim.reopen("nobody")
    shim.ack(child.pid)


def test_watch_gets_output(pod: Pod, null: int) -> None:
    shim = pod.start()
    shim.watch()
    child = ShimSpawner(shim).spawn(busybox_request(pod.root("c"), "echo hi; echo there >&2", null), child_id="c",
                                    log_path=str(pod.dir / "c.log"))
    child.wait()
    got: dict[str, bytes] = {}
    for event in shim.events():
        if hasattr(event, "data"):
            got[event.stream] = got.get(event.stream, b"") + event.data  # type: ignore[union-attr]
    assert got == {"stdout": b"hi\n", "stderr": b"there\n"}


def test_garbage_disconnects_the_client_not_the_shim(pod: Pod) -> None:
    import socket

    shim = pod.start()
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    raw.connect(str(pod.dir / "shim.sock"))
    raw.send(b"\xff" * 3)
    assert raw.recv(100) == b""  # hung up on
    raw.close()
    assert shim.list() == []  # the first client is still served


def test_shutdown_ends_the_shim(pod: Pod, null: int) -> None:
    shim = pod.start()
    shim_fd = os.pidfd_open(shim.pid)
    try:
        child = ShimSpawner(shim).spawn(busybox_request(pod.root("c"), "exit 3", null), child_id="c")
        assert child.wait().exit_code == 3
        shim.shutdown()
        _wait_pidfd(shim_fd)
    finally:
        os.close(shim_fd)
    shim.close()
    assert not (pod.dir / "shim.sock").exists()
    shutil.rmtree(pod.dir)
    assert not _alive(shim.pid) and not _alive(child.pid)
    with pytest.raises(ShimError, match="no shim answers"):
        Shim.connect(str(pod.dir))


def test_memory_of_a_shim_with_one_container(pod: Pod, null: int) -> None:
    shim = pod.start()
    log = pod.dir / "c.log"
    child = ShimSpawner(shim).spawn(busybox_request(pod.root("c"), "seq 1 2000; sleep 30", null), child_id="c",
                                    log_path=str(log))
    _wait(lambda: log.exists() and b" F 2000\n" in log.read_bytes(), message="the output")
    with open(f"/proc/{shim.pid}/smaps_rollup") as f:
        pss_kib = next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    print(f"\nshim PSS with one container: {pss_kib} KiB")
    assert pss_kib < 384, pss_kib  # the target is well under 512 KiB per pod
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_log_records_are_cut_as_the_python_writer_cuts_them(pod: Pod, null: int) -> None:
    """Long lines, "\\r\\n", a lone "\\r" and an unfinished last line, read in whatever chunks
    the pipe gives: the same records as logs/cri.py's LineSplitter over the whole output."""
    import random

    from sandbox.logs.cri import MAX_LINE, LineSplitter

    rng = random.Random(13)
    pieces = [b"short\n", b"dos\r\n", b"lone\rcarriage\n", b"\n", b"x" * MAX_LINE + b"\n",
              b"y" * MAX_LINE + b"\r\n", b"z" * (MAX_LINE + 1) + b"\n", b"w" * (3 * MAX_LINE + 5) + b"\r\n",
              b"v" * MAX_LINE + b"\r" + b"tail\n"]
    pieces += [bytes(rng.choice(b"ab\r\n") for _ in range(rng.randrange(1, 40000))) for _ in range(8)]
    data = b"".join(pieces) + b"unfinished"
    source = pod.dir / "data"
    source.write_bytes(data)
    splitter = LineSplitter()
    expected = [("stdout", tag, content) for tag, content in splitter.feed(data) + splitter.flush()]
    log = pod.dir / "c.log"
    req = busybox_request(pod.root("c"), "cat /data", null)
    req = SpawnRequest(**{**{f: getattr(req, f) for f in ("argv", "env", "new_ns", "pivot", "stdio", "stage_name")},
                          "ops": [*req.ops, MountOp(OpKind.BIND, "data", str(source))]})
    shim = pod.start()
    child = ShimSpawner(shim).spawn(req, child_id="c", log_path=str(log))
    assert child.wait().exit_code == 0
    _wait(lambda: _log_lines(log) == expected, timeout=5, message="every record in the log")


def test_start_failure_says_why(pod: Pod) -> None:
    with pytest.raises(ShimError, match=r"did not start: shim: .*/missing: No such file or directory"):
        Shim.start(str(pod.dir / "missing"))
    pod.start()
    with pytest.raises(ShimError, match="another shim is listening"):
        Shim.start(str(pod.dir))


def test_the_shim_keeps_no_fd_it_inherited(pod: Pod) -> None:
    """A caller's fd without close-on-exec (a test runner's flock, a pipe someone waits on for EOF)
    must not live as long as the pod: the shim closes everything but its ready pipe at start."""
    read_end, write_end = os.pipe()  # inheritable: no O_CLOEXEC
    os.set_inheritable(write_end, True)
    try:
        shim = pod.start()
        os.close(write_end)
        write_end = -1
        # every copy of the write end is gone: the read end sees EOF at once
        assert select.select([read_end], [], [], 5)[0] and os.read(read_end, 1) == b""
        targets = [os.readlink(f"/proc/{shim.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{shim.pid}/fd")]
        assert not [t for t in targets if t.startswith("pipe:") and t == f"pipe:[{os.fstat(read_end).st_ino}]"]
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_a_directory_longer_than_a_socket_address(pod: Pod, null: int) -> None:
    """sun_path holds 107 bytes; a pod's directory under a deep --root can be longer: the shim
    binds and the client connects through an fd of the directory."""
    deep = pod.dir / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    assert len(str(deep / "shim.sock")) > 108
    pod.dir, base = deep, pod.dir
    try:
        shim = pod.start()
        again = pod.connect()
        assert again.pid == shim.pid
        child = ShimSpawner(shim).spawn(busybox_request(pod.root("c"), "exit 4", null), child_id="c")
        assert child.wait().exit_code == 4
        assert (deep / "shim.sock").exists()
        shim_fd = os.pidfd_open(shim.pid)
        try:
            shim.shutdown()
            _wait_pidfd(shim_fd)
        finally:
            os.close(shim_fd)
        assert not (deep / "shim.sock").exists()  # removed at exit through the same fd
    finally:
        pod.dir = base


V1_HIERARCHIES = [Path("/sys/fs/cgroup", name) for name in ("pids", "memory")
                  if Path("/sys/fs/cgroup", name, "tasks").exists()]


@pytest.mark.skipif(not V1_HIERARCHIES, reason="needs cgroup v1 hierarchies (pids, memory)")
@pytest.mark.parametrize("version", [2, 1])
def test_a_child_is_in_its_v1_cgroups_before_it_runs(pod: Pod, null: int, version: int) -> None:
    """Protocol 2: stage 2 moves itself (0 into `tasks`, spawn.c join_cgroups); protocol 1, as a
    shim started by an older runtime speaks it: the runtime writes the pid into cgroup.procs."""
    shim = pod.start()
    assert shim.version == 2
    shim.version = version
    dirs = [h / f"sbx-shim-test-{os.getpid()}" for h in V1_HIERARCHIES]
    for d in dirs:
        d.mkdir()
    try:
        # the container's own view of its cgroup, read before anything else could move it
        req = busybox_request(pod.root("app"), "cat /proc/self/cgroup; sleep 30", null,
                              cgroups=tuple(str(d) for d in dirs), stdio=(null, -1, -1))
        req = replace(req, ops=[*req.ops, MountOp(OpKind.MKDIR, "proc", flags=0o555),
                                MountOp(OpKind.MOUNT, "proc", "proc", "proc", 0, "")])
        app = ShimSpawner(shim).spawn(req, child_id="app", log_path=str(pod.dir / "app.log"))
        try:
            for d in dirs:
                assert str(app.pid) in (d / "cgroup.procs").read_text().split(), d  # (with `cat`, a while)
            deadline = time.monotonic() + 5
            while "pids:" not in (pod.dir / "app.log").read_text() and time.monotonic() < deadline:
                time.sleep(0.02)
            lines = [parse_record(line)[3].decode() for line in (pod.dir / "app.log").read_bytes().splitlines()]
            for d in dirs:
                assert any(line.endswith(f":/{d.name}") and d.parent.name in line for line in lines), lines
        finally:
            app.send_signal(signal.SIGKILL)
            app.wait()
            shim.ack(app.pid)
            app.close()
    finally:
        for d in dirs:
            deadline = time.monotonic() + 5
            while True:
                try:
                    d.rmdir()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)


@pytest.mark.skipif(not V1_HIERARCHIES, reason="needs cgroup v1 hierarchies (pids, memory)")
def test_a_cgroup_stage_two_cannot_join_is_named_in_full(tmp_path: Path) -> None:
    """A v1 cgroup gone before the process starts: it never runs, and the error names the cgroup
    by its whole path (stage 2 resolves it beneath the runtime's directory fd)."""
    from sandbox.process.spawner import DirectSpawner

    present = V1_HIERARCHIES[0] / f"sbx-join-test-{os.getpid()}"
    gone = V1_HIERARCHIES[-1] / f"sbx-join-gone-{os.getpid()}"
    present.mkdir()
    try:
        marker = tmp_path / "ran"
        req = SpawnRequest(argv=["/bin/sh", "-c", f"touch {marker}"], env=["PATH=/bin:/usr/bin"],
                           cgroups=(str(present), str(gone)), stage_name="test")
        with pytest.raises(ContainerStartError) as caught:
            DirectSpawner().spawn(req)
        assert (caught.value.op, caught.value.path) == ("join cgroup", str(gone))
        assert not marker.exists()
    finally:
        present.rmdir()
