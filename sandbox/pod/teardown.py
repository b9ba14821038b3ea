"""The tear-down registry: everything a pod creates, recorded as it is created and undone in
reverse by one routine (crun's and runc's single ordered clean-up list).

Each object is one JSON line appended to `<pod state dir>/teardown.jsonl` *before* it is created
(a process, whose pid exists only once it is made, right after: it dies with its runtime anyway,
by PDEATHSIG). Recording intent first means a runtime killed at any instant leaves a complete
record; the price is that undo must tolerate objects that were never made, which every undo here
does (ENOENT, ESRCH, "not a mount point" are success). One `write()` with O_APPEND per object: a
SIGKILL cannot cut a write to a regular file in half, and there is no fsync for the same reason
state.json has none (live state of running processes, meaningless after a power loss: a reboot
kills the processes and the mounts itself, and `sandbox gc` sweeps layers and volumes no live
pod records).

`undo_all` walks the journal backwards: kill processes (pid + start time, never by name) and
wait for them, detach mounts, remove directories (never through a symlink, never outside their
recorded base, whose own allowance the caller can restrict), kill through and remove cgroups
(sandbox/cgroups/reclaim.py). It is idempotent (a second run finds everything gone and does nothing)
and returns what it could not undo. The normal end, `sandbox delete`, `sandbox gc`, a re-run over
a stale record and every error path call it.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

from sandbox import fastjson
from sandbox.log import get_logger
from sandbox.record import Record
from sandbox.signals import signal
from sandbox.state.proc import ProcessRef

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

log = get_logger(__name__)

JOURNAL_FILE = "teardown.jsonl"
KILL_WAIT_SECONDS = 10.0  # SIGKILL cannot be caught: only an uninterruptible sleep delays it


class Process(Record):
    """A process of the pod: killed only while pid and start time both still match."""

    pid: int
    start_time: int

    def undo(self) -> bool:
        fd = ProcessRef(self.pid, self.start_time).open_pidfd()
        if fd is None:
            return False
        try:
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except ProcessLookupError:
                return False
            # Wait for the exit (a pidfd turns readable then, also for a process that is not our
            # child): what comes next (its layer, its mounts) must not be removed under it.
            import select  # only at tear-down: not on `sandbox run`'s start-up path

            if not select.select([fd], [], [], KILL_WAIT_SECONDS)[0]:
                raise OSError(errno.ETIMEDOUT, f"pid {self.pid} still alive after SIGKILL")
        finally:
            os.close(fd)
        return True


class Mount(Record):
    """A mount in the runtime's (the host's) mount namespace, detached (MNT_DETACH)."""

    path: Path

    def undo(self) -> bool:
        if self.path.is_symlink() or not os.path.ismount(self.path):
            return False
        from sandbox.native import umount

        umount(str(self.path))
        return True


class Directory(Record):
    """A directory tree the pod made at `path`, strictly below `base`; removed without following
    a symlink anywhere (each step opened O_NOFOLLOW, then sandbox.rmtree's fd-based walk)."""

    path: Path
    base: Path

    def undo(self) -> bool:
        parts = _relative_parts(self.path, self.base)
        try:
            parent = os.open(self.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            for depth, part in enumerate(parts[:-1], 1):
                try:
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
                except FileNotFoundError:
                    return False
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    if os.path.islink(os.path.join(self.base, *parts[:depth])):
                        raise OSError(errno.ELOOP, "a symlink on the path", str(self.path)) from None
                    return False  # a file where a directory was: what we made is not there
                os.close(parent)
                parent = child
            return _remove_entry(parent, parts[-1])
        finally:
            os.close(parent)


def _relative_parts(path: Path, base: Path) -> list[str]:
    try:
        parts = list(path.relative_to(base).parts)
    except ValueError:
        raise OSError(errno.EPERM, f"outside its base {base}", str(path)) from None
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise OSError(errno.EPERM, f"not strictly below its base {base}", str(path))
    return parts


def _remove_entry(parent: int, name: str) -> bool:
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        from sandbox.rmtree import rmtree

        rmtree(name, dir_fd=parent)
    else:  # a symlink or a file put in its place: removed itself, never what it points to
        os.unlink(name, dir_fd=parent)
    return True


def kill_and_remove_cgroup(path: Path) -> bool:
    """A recorded cgroup directory: kill what still runs in it and below (`cgroup.kill`, freeze and
    kill on v1), then rmdir it leaf first (sandbox/cgroups/reclaim.py). Works from the path alone,
    as `gc` needs after a runtime crash."""
    if path.name.endswith((".slice", ".scope")):  # made through systemd: its unit is stopped too
        from sandbox.cgroups.systemd import remove_unit_at

        return remove_unit_at(path)
    from sandbox.cgroups.reclaim import kill_and_remove  # only at tear-down: not on the start-up path

    return kill_and_remove(path)


_cgroup_remover: Callable[[Path], bool] = kill_and_remove_cgroup  # tests replace it


class Cgroup(Record):
    """A cgroup directory (any hierarchy): the pod cgroup, whose undo takes its children along."""

    path: Path

    def undo(self) -> bool:
        return _cgroup_remover(self.path)


class Shim(Record):
    """The pod's per-pod parent (native/shim.c), recorded before pause (its first child) so it is
    undone once every process it parents is dead: asked to exit (its held exits ACKed, so it drains and closes the
    logs), SIGKILLed if it does not within a few seconds. Only while pid and start time match."""

    pid: int
    start_time: int
    directory: Path

    def undo(self) -> bool:
        from sandbox.process.shim import stop_shim  # only at tear-down

        return stop_shim(ProcessRef(self.pid, self.start_time), str(self.directory))


class Network(Record):
    """A network object of the pod (sandbox/pod/network.py): `what` is lease, hostports, veth or
    cni, `spec` the JSON text of what its undo needs."""

    what: str
    spec: str

    def undo(self) -> bool:
        from sandbox.errors import SandboxError
        from sandbox.pod.network import undo  # only at tear-down

        try:
            return undo(self.what, fastjson.loads(self.spec))
        except (SandboxError, KeyError, TypeError, ValueError) as e:
            raise OSError(errno.EINVAL, f"network {self.what}: {e}") from None


def network_spec(spec: dict[str, Any]) -> str:
    """Network.spec for `spec`: JSON with every object's keys sorted (equal specs, equal text),
    through fastjson: json.dumps(sort_keys=True) imported json on every bridge pod's start, ~1.3 ms
    of the pod network's 5 ms budget (4.5-4.9 ms on this 2-core VM under load, -X importtime
    showed json and its submodules as the only modules a bridge pod imports besides the
    network's own)."""
    return fastjson.dumps(_sorted(spec))


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


if TYPE_CHECKING:
    TornDown = Process | Mount | Directory | Cgroup | Network | Shim


def to_json(obj: TornDown) -> dict[str, object]:
    if isinstance(obj, Process):
        return {"kind": "process", "pid": obj.pid, "startTime": obj.start_time}
    if isinstance(obj, Directory):
        return {"kind": "directory", "path": str(obj.path), "base": str(obj.base)}
    if isinstance(obj, Network):
        return {"kind": "network", "what": obj.what, "spec": fastjson.loads(obj.spec)}
    if isinstance(obj, Shim):
        return {"kind": "shim", "pid": obj.pid, "startTime": obj.start_time, "path": str(obj.directory)}
    kind = "mount" if isinstance(obj, Mount) else "cgroup"
    return {"kind": kind, "path": str(obj.path)}


def from_json(data: object) -> TornDown | None:
    if not isinstance(data, dict):
        return None
    kind, path = data.get("kind"), data.get("path")
    if kind == "process":
        pid, started = data.get("pid"), data.get("startTime")
        return Process(pid, started) if isinstance(pid, int) and isinstance(started, int) else None
    if kind == "network":
        what, spec = data.get("what"), data.get("spec")
        return Network(what, network_spec(spec)) if isinstance(what, str) and isinstance(spec, dict) else None
    if not isinstance(path, str) or not os.path.isabs(path):
        return None
    if kind == "directory":
        base = data.get("base")
        return Directory(Path(path), Path(base)) if isinstance(base, str) and os.path.isabs(base) else None
    if kind == "mount":
        return Mount(Path(path))
    if kind == "shim":
        pid, started = data.get("pid"), data.get("startTime")
        return Shim(pid, started, Path(path)) if isinstance(pid, int) and isinstance(started, int) else None
    if kind == "cgroup":
        return Cgroup(Path(path))
    return None


def pod_bases(lib: Path, state_dir: Path) -> list[Path]:
    """Where a pod's recorded directories may be: its layers (`<lib>/containers`), its own
    directory of volumes and pod files (`<lib>/pods`), its state directory."""
    return [lib / "containers", lib / "pods", state_dir]


class Journal:
    """The pod's append-only record of what it created, in `<state dir>/teardown.jsonl`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / JOURNAL_FILE
        self.fd = -1

    def add(self, obj: TornDown) -> None:
        """Record `obj`: call it before creating the object (a process: as soon as it exists)."""
        if self.fd < 0:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                              0o600)
        os.write(self.fd, fastjson.dumps(to_json(obj)).encode() + b"\n")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def read(self) -> tuple[list[TornDown], list[str]]:
        """The recorded objects in creation order, and the lines it could not read."""
        try:
            with open(self.path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return [], []
        objects: list[TornDown] = []
        bad: list[str] = []
        for line in lines:
            try:
                obj = from_json(fastjson.loads(line))
            except ValueError:
                obj = None
            if obj is None:
                bad.append(f"{self.path}: unreadable record {line[:200]!r}")
            else:
                objects.append(obj)
        return objects, bad


def undo_all(journal: Journal, allowed_bases: Iterable[Path] | None = None) -> list[str]:
    """Undo everything `journal` records, newest first; returns what could not be undone (each
    also logged). `allowed_bases`: directories whose recorded base is not one of these are left
    alone (a record is trusted no further than the layout the caller knows)."""
    objects, failures = journal.read()
    allowed = None if allowed_bases is None else set(allowed_bases)
    for obj in reversed(objects):
        if isinstance(obj, Directory) and allowed is not None and obj.base not in allowed:
            failures.append(f"not removing {obj.path}: its base {obj.base} is not one of the pod's")
            continue
        try:
            if obj.undo():
                log.debug("undid %s", obj)
                if "sandbox.trace" in sys.modules:  # loaded by --trace only: off costs this lookup
                    from sandbox.trace import emit, undo_line

                    line, values = undo_line(to_json(obj))
                    emit("teardown", "undo", line, **values)
        except OSError as e:
            failures.append(f"could not undo {obj}: {e}")
    for failure in failures:
        log.warning("tear-down: %s", failure)
    return failures
