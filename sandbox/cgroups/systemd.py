"""The systemd cgroup driver: a transient slice per pod and a transient scope per container
instance (and pause), made through systemd's D-Bus Manager API, as runc's systemd driver and the
kubelet's systemd cgroup driver do on a host systemd runs.

Why it differs from cgroupfs in one place: systemd refuses a scope without a process ("Scope has
no PIDs"), so `create_container` only plans the scope, `apply`/`restrict_devices` keep its values,
and `add_process` (stage 2, still waiting for "go") starts it with `PIDs=[pid]` and `Delegate=yes`,
then writes the values: runc's Apply(pid) then Set. A caller must therefore place processes through
`add_process` (`places_processes`), never by cgroup.procs or CLONE_INTO_CGROUP.

Limits systemd has a property for (CPUShares/CPUWeight, CPUQuotaPerSecUSec, MemoryLimit/MemoryMax,
TasksMax) are set as unit properties, so systemd writes them again when it re-realises the unit
(daemon-reload) rather than resetting ours; every value is then written through the cgroupfs driver
as well, which also covers what systemd has no property for (v1 memsw, hugetlb, devices). systemd
does not manage every v1 controller (cpuset, freezer, devices, blkio, cpuacct here): in those
hierarchies the same path is made by mkdir and the process joined by cgroup.procs (runc's
joinCgroups for the "legacy" subsystems), and removed by rmdir after the unit stops.

The bus: the system bus (dbus-daemon forwards to systemd), else systemd's private socket
/run/systemd/private (root only, peer to peer: no Hello, no match rules). systemd checks a private
peer's credentials by its pid, so that socket only serves clients in systemd's own PID namespace.
A scope ends when its last process exits, and systemd then removes its directories within a few
milliseconds: counters read after the exit (`stats`) may be gone.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path

from sandbox.cgroups import fs
from sandbox.cgroups.driver import PARENT, UNIFIED, Cgroup, CgroupDriver, Stats, driver_for
from sandbox.cgroups.fs import CgroupError
from sandbox.errors import SandboxError
from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from sandbox.cgroups.detect import Layout
    from sandbox.cgroups.devices import DeviceRule
    from sandbox.cgroups.resources import CgroupLimits

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
PRIVATE_SOCKET = "/run/systemd/private"
BUS_ENV = "SANDBOX_SYSTEMD_BUS"  # a D-Bus address; tests point it at their own systemd
_DEST = "org.freedesktop.systemd1"
_PATH = "/org/freedesktop/systemd1"
_MANAGER = "org.freedesktop.systemd1.Manager"
_TIMEOUT = 10.0  # a job of ours takes ~2-15 ms; systemd busy with a boot can take seconds


class SystemdError(SandboxError):
    """A D-Bus error from systemd (name is the D-Bus error name), or a job that did not end "done"."""

    def __init__(self, what: str, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"systemd: {what}: {message} ({name})")


def default_address() -> str:
    """$SANDBOX_SYSTEMD_BUS, $DBUS_SYSTEM_BUS_ADDRESS, the system bus socket when it exists, else
    systemd's private socket (root, and only when no bus daemon runs)."""
    for name in (BUS_ENV, "DBUS_SYSTEM_BUS_ADDRESS"):
        if os.environ.get(name):
            return os.environ[name]
    if os.path.exists("/run/dbus/system_bus_socket"):
        return SYSTEM_BUS
    return "unix:path=" + PRIVATE_SOCKET


def _socket_path(address: str) -> str:
    """The first unix path or abstract name of a D-Bus address ("unix:path=/x;unix:abstract=y")."""
    for part in address.split(";"):
        kind, _, rest = part.partition(":")
        if kind != "unix":
            continue
        keys = dict(kv.split("=", 1) for kv in rest.split(",") if "=" in kv)
        if "path" in keys:
            return keys["path"]
        if "abstract" in keys:
            return "\0" + keys["abstract"]
    raise SystemdError("connect", "org.freedesktop.DBus.Error.BadAddress", f"no unix socket in {address!r}")


class SystemdBus:
    """One blocking connection to systemd's Manager, with the JobRemoved signals it has seen.
    jeepney builds and parses the messages (pure Python, no libdbus); this class only moves them."""

    def __init__(self, address: str | None = None, timeout: float = _TIMEOUT) -> None:
        from jeepney.auth import BEGIN, Authenticator
        from jeepney.low_level import Parser

        self.address = address or default_address()
        self.timeout = timeout
        path = _socket_path(self.address)
        # peer to peer with systemd itself: no bus daemon to say Hello to or to route signals
        self.private = path.endswith("/systemd/private")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
            auth = Authenticator()
            for request in auth:
                self._sock.sendall(request)
                data = self._sock.recv(1024)
                if not data:
                    raise ConnectionResetError("closed during authentication")
                auth.feed(data)
            self._sock.sendall(BEGIN)
        except (OSError, ValueError) as e:
            self._sock.close()
            raise SystemdError("connect", "org.freedesktop.DBus.Error.NoServer", f"{self.address}: {e}") from None
        self._parser = Parser()
        self._serial = 0
        self._jobs: dict[str, str] = {}  # job object path -> result, from JobRemoved
        if not self.private:
            self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello")
            rule = (f"type='signal',sender='{_DEST}',path='{_PATH}',interface='{_MANAGER}',member='JobRemoved'")
            self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
                       (rule,))
        # systemd sends its signals only to subscribed clients
        self.manager("Subscribe")

    def close(self) -> None:
        self._sock.close()

    def manager(self, method: str, signature: str | None = None, body: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        return self._call(_DEST, _PATH, _MANAGER, method, signature, body)

    def _call(self, dest: str, path: str, interface: str, method: str, signature: str | None = None,
              body: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        from jeepney.low_level import HeaderFields, MessageType
        from jeepney.wrappers import DBusAddress, new_method_call

        msg = new_method_call(DBusAddress(path, bus_name=dest, interface=interface), method, signature, body)
        if self.private:  # peer to peer: sd-bus refuses a destination it does not own (EBADR)
            del msg.header.fields[HeaderFields.destination]
        self._serial += 1
        serial = self._serial
        deadline = time.monotonic() + self.timeout
        self._send(msg.serialise(serial=serial))
        nudge = self.private and serial == 1
        while True:
            try:
                reply = self._receive(min(deadline, time.monotonic() + 0.005) if nudge else deadline)
            except SystemdError:
                if not nudge:
                    raise
                # systemd 252 leaves a message that came in one read with BEGIN unparsed until more
                # bytes arrive on a private connection: a Ping makes it read again (its reply is dropped)
                nudge = False
                ping = new_method_call(DBusAddress(path, bus_name=dest, interface="org.freedesktop.DBus.Peer"), "Ping")
                del ping.header.fields[HeaderFields.destination]
                self._serial += 1
                self._send(ping.serialise(serial=self._serial))
                continue
            fields = reply.header.fields
            if fields.get(HeaderFields.reply_serial) != serial:
                continue  # a signal (kept by _receive) or a late reply
            if reply.header.message_type == MessageType.error:
                text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
                raise SystemdError(f"{method}{body[:1]!r}", str(fields.get(HeaderFields.error_name)), text)
            return tuple(reply.body)

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise SystemdError("send", "org.freedesktop.DBus.Error.Disconnected", str(e)) from None

    def _receive(self, deadline: float) -> Any:
        from jeepney.low_level import HeaderFields, MessageType

        while True:
            msg = self._parser.get_next_message()
            if msg is not None:
                fields = msg.header.fields
                if (msg.header.message_type == MessageType.signal and fields.get(HeaderFields.member) == "JobRemoved"
                        and len(msg.body) == 4):
                    _, job, _, result = msg.body
                    self._jobs[job] = result
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemdError("receive", "org.freedesktop.DBus.Error.Timeout", "no answer from systemd")
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as e:
                raise SystemdError("receive", "org.freedesktop.DBus.Error.Disconnected", str(e)) from None
            if not data:
                raise SystemdError("receive", "org.freedesktop.DBus.Error.Disconnected", "systemd closed the bus")
            self._parser.add_data(data)

    def wait_job(self, job: str, what: str) -> None:
        """Until systemd's JobRemoved for `job` (go-systemd's way: the method returns when the job
        is queued, the signal says how it ended); anything but "done" raises."""
        deadline = time.monotonic() + self.timeout
        while job not in self._jobs:
            self._receive(deadline)
        result = self._jobs.pop(job)
        if result != "done":
            raise SystemdError(what, "org.freedesktop.systemd1.JobFailed", f"job {result}")

    def start_transient(self, unit: str, properties: list[tuple[str, tuple[str, Any]]]) -> None:
        (job,) = self.manager("StartTransientUnit", "ssa(sv)a(sa(sv))", (unit, "fail", properties, []))
        self.wait_job(job, f"start {unit}")

    def stop(self, unit: str) -> bool:
        """Stop `unit` and wait; False when systemd has no such unit (already gone)."""
        try:
            (job,) = self.manager("StopUnit", "ss", (unit, "fail"))
        except SystemdError as e:
            if e.name == "org.freedesktop.systemd1.NoSuchUnit":
                return False
            raise
        try:
            self.wait_job(job, f"stop {unit}")
        except SystemdError:
            self.reset_failed(unit)
            raise
        return True

    def reset_failed(self, unit: str) -> None:
        """A failed transient unit stays loaded until reset (runc resets after every stop)."""
        try:
            self.manager("ResetFailedUnit", "s", (unit,))
        except SystemdError:
            pass

    def set_properties(self, unit: str, properties: list[tuple[str, tuple[str, Any]]]) -> None:
        self.manager("SetUnitProperties", "sba(sv)", (unit, True, properties))

    def unit_state(self, unit: str) -> str | None:
        """ActiveState of a loaded unit, None when systemd has none of that name."""
        try:
            (path,) = self.manager("GetUnit", "s", (unit,))
        except SystemdError as e:
            if e.name == "org.freedesktop.systemd1.NoSuchUnit":
                return None
            raise
        (value,) = self._call(_DEST, path, "org.freedesktop.DBus.Properties", "Get", "ss",
                              ("org.freedesktop.systemd1.Unit", "ActiveState"))
        return str(value[1])

    def root_cgroup(self) -> str:
        """The cgroup systemd manages from ("" when it owns the hierarchy's root): unit paths
        below it are the ones this process sees, if both share a cgroup namespace."""
        (value,) = self._call(_DEST, _PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
                              (_MANAGER, "ControlGroup"))
        return str(value[1]).rstrip("/")


def escape(part: str) -> str:
    """One unit-name component: '-' separates slice levels, so it becomes '_' (the kubelet does
    this to pod UIDs); other characters outside [A-Za-z0-9:_.] are \\xNN as systemd-escape does."""
    out = []
    for i, ch in enumerate(part):
        if ch == "-":
            out.append("_")
        elif (ch.isascii() and ch.isalnum()) or ch in ":_" or (ch == "." and i > 0):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    if not out:
        raise CgroupError("unit name", repr(part), "empty")
    return "".join(out)


def slice_path(name: str) -> list[str]:
    """The cgroup path components of a slice: "a-b-c.slice" is a.slice/a-b.slice/a-b-c.slice."""
    if not name.endswith(".slice") or name == "-.slice":
        raise CgroupError("slice", name, "not a slice name")
    stem = name[: -len(".slice")]
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise CgroupError("slice", name, "not a valid slice name")
    words = stem.split("-")
    return ["-".join(words[: i + 1]) + ".slice" for i in range(len(words))]


def limit_properties(limits: CgroupLimits, v2: bool) -> list[tuple[str, tuple[str, Any]]]:
    """The unit properties for the limits systemd knows (runc's genV1/genV2ResourcesProperties)."""
    props: list[tuple[str, tuple[str, Any]]] = []
    if v2 and limits.cpu_weight is not None:
        props.append(("CPUWeight", ("t", limits.cpu_weight)))
    if not v2 and limits.cpu_shares is not None:
        props.append(("CPUShares", ("t", limits.cpu_shares)))
    if limits.cpu_quota is not None and limits.cpu_quota > 0:
        # systemd takes the quota per second; it rounds to 10 ms like runc does, so round up here
        # to never give less than asked (the cgroupfs write after this sets the exact value)
        per_sec = limits.cpu_quota * 1_000_000 // limits.cpu_period
        per_sec = -(-per_sec // 10_000) * 10_000
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
        props.append(("CPUQuotaPeriodUSec", ("t", limits.cpu_period)))
    if limits.memory_limit is not None:
        props.append(("MemoryMax" if v2 else "MemoryLimit", ("t", limits.memory_limit)))
    if limits.pids_max is not None:
        props.append(("TasksMax", ("t", limits.pids_max)))
    return props


class _Pending(Record):
    """A scope planned by create_container, started by add_process with its first pid."""

    slice: str
    limits: Any = None  # CgroupLimits
    devices: Any = None  # Sequence[DeviceRule]


class SystemdDriver:
    """CgroupDriver through systemd; the cgroupfs driver of the same layout (`files`) does every
    file read and write, on the directories systemd made. The bus is opened at first use."""

    places_processes = True  # stage 2 joins through add_process (a scope needs its first pid)

    def __init__(self, layout: Layout, parent: str = PARENT, address: str | None = None) -> None:
        self.layout = layout
        self.parent = parent
        self.address = address
        # a scope lives in every hierarchy (systemd makes it in the ones it manages): the cgroupfs
        # driver's instances must not be told to share the pod's directories (v1.PER_INSTANCE)
        self.files: CgroupDriver = driver_for(layout, fs.check_name(parent), every_hierarchy=True)
        self._bus: SystemdBus | None = None
        self._root: list[str] | None = None  # systemd's own cgroup, as components
        self._pending: dict[str, _Pending] = {}  # scope name -> what add_process starts it with

    def bus(self) -> SystemdBus:
        if self._bus is None:
            self._bus = SystemdBus(self.address)
        return self._bus

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    # --- names and paths --------------------------------------------------------------------------

    def parent_slice(self) -> str:
        return self.parent if self.parent.endswith(".slice") else escape(self.parent) + ".slice"

    def pod_slice(self, pod_uid: str) -> str:
        return self.parent_slice()[: -len(".slice")] + "-" + escape(pod_uid) + ".slice"

    def scope(self, pod_slice: str, name: str) -> str:
        return pod_slice[: -len(".slice")] + "-" + escape(name) + ".scope"

    def _paths(self, parts: list[str]) -> dict[str, Path]:
        if self._root is None:
            self._root = [p for p in self.bus().root_cgroup().split("/") if p]
        parts = [*self._root, *parts]
        paths = {c: fs.under(p, *parts) for c, p in self.files.v1_hierarchies().items()}
        if self.layout.unified is not None and self.layout.mode != "v1":
            paths[UNIFIED] = fs.under(self.layout.unified, *parts)
        return paths

    @staticmethod
    def unit(cgroup: Cgroup) -> str:
        """The unit a cgroup of this driver belongs to: the last component of its path."""
        return next(iter(cgroup.paths.values())).name

    # --- CgroupDriver -----------------------------------------------------------------------------

    def can_limit(self, controller: str) -> bool:
        return bool(self.files.can_limit(controller))

    def v1_hierarchies(self) -> dict[str, Path]:
        return dict(self.files.v1_hierarchies())

    def plan_pod(self, pod_uid: str) -> Cgroup:
        return Cgroup(pod_uid, self._paths(slice_path(self.pod_slice(pod_uid))))

    def create_pod(self, pod_uid: str, planned: Cgroup | None = None) -> Cgroup:
        """The pod's slice, with accounting on so systemd makes its directory in the cpu, memory
        and pids hierarchies too; the other hierarchies by mkdir."""
        name = self.pod_slice(pod_uid)
        cgroup = planned or self.plan_pod(pod_uid)
        props: list[tuple[str, tuple[str, Any]]] = [
            ("Description", ("s", f"sandbox pod {pod_uid}")),
            ("Wants", ("as", [self.parent_slice()])),
            ("DefaultDependencies", ("b", False)),
            *_ACCOUNTING,
        ]
        try:
            self.bus().start_transient(name, props)
        except SystemdError as e:
            if e.name == "org.freedesktop.systemd1.UnitExists":
                raise CgroupError("create", name, "exists already") from None
            raise CgroupError("create", name, str(e)) from None
        try:
            self._make_missing(cgroup, None)
        except BaseException:
            self.remove(cgroup, timeout=0.5)
            raise
        return cgroup

    def create_container(self, pod: Cgroup, name: str) -> Cgroup:
        """Planned only: systemd starts a scope with its first process (add_process)."""
        pod_slice = self.unit(pod)
        unit = self.scope(pod_slice, name)
        paths = {key: fs.under(path, unit) for key, path in pod.paths.items()}
        for path in paths.values():
            if path.exists():
                raise CgroupError("create", path, "exists already")
        self._pending[unit] = _Pending(pod_slice)
        return Cgroup(name, paths)

    def apply(self, cgroup: Cgroup, limits: CgroupLimits) -> None:
        unit = self.unit(cgroup)
        pending = self._pending.get(unit)
        if pending is not None:
            self._pending[unit] = _Pending(pending.slice, limits, pending.devices)
            return
        props = limit_properties(limits, self.layout.mode == "v2")
        if props:
            try:
                self.bus().set_properties(unit, props)
            except SystemdError as e:
                raise CgroupError("set properties", unit, str(e)) from None
        self.files.apply(cgroup, limits)

    def restrict_devices(self, cgroup: Cgroup, rules: Sequence[DeviceRule]) -> None:
        unit = self.unit(cgroup)
        pending = self._pending.get(unit)
        if pending is not None:
            self._pending[unit] = _Pending(pending.slice, pending.limits, list(rules))
            return
        self.files.restrict_devices(cgroup, rules)

    def restrict_default_devices(self, cgroup: Cgroup) -> None:
        from sandbox.cgroups.devices import DEFAULT_RULES  # a pending scope keeps the rules themselves

        self.restrict_devices(cgroup, DEFAULT_RULES)

    def add_process(self, cgroup: Cgroup, pid: int) -> None:
        """A planned scope starts here with `pid` in it (Delegate=yes: its subtree is ours to write),
        then gets its limits; in an existing cgroup the pid joins by cgroup.procs."""
        unit = self.unit(cgroup)
        pending = self._pending.pop(unit, None)
        if pending is None:
            self.files.add_process(cgroup, pid)
            return
        props: list[tuple[str, tuple[str, Any]]] = [
            ("Description", ("s", f"sandbox container {cgroup.name}")),
            ("Slice", ("s", pending.slice)),
            ("DefaultDependencies", ("b", False)),
            ("Delegate", ("b", True)),
            ("PIDs", ("au", [pid])),
            *_ACCOUNTING,
        ]
        if pending.limits is not None:
            props += limit_properties(pending.limits, self.layout.mode == "v2")
        try:
            self.bus().start_transient(unit, props)
        except SystemdError as e:
            raise CgroupError("create", unit, str(e)) from None
        try:
            self._make_missing(cgroup, pid)
            if pending.limits is not None:
                self.files.apply(cgroup, pending.limits)
            if pending.devices is not None:
                self.files.restrict_devices(cgroup, pending.devices)
        except BaseException:
            self.kill(cgroup, timeout=0.5)
            self.remove(cgroup, timeout=0.5)
            raise

    def _make_missing(self, cgroup: Cgroup, pid: int | None) -> None:
        """The unit's path in each hierarchy systemd left alone (mkdir, parents included; cpuset
        filled from its parent), and `pid` moved there."""
        from sandbox.cgroups.v1 import _cpuset_init

        hierarchies = self.files.v1_hierarchies()
        done: set[Path] = set()
        for key, path in cgroup.paths.items():
            if path in done:
                continue
            done.add(path)
            if not path.is_dir():
                top = hierarchies.get(key, self.layout.unified)
                assert top is not None
                for level in [*reversed(path.relative_to(top).parents[:-1]), path.relative_to(top)]:
                    here = top / level
                    if fs.make(here) and key == "cpuset":
                        _cpuset_init(here)
                if pid is not None:
                    fs.write(path, "cgroup.procs", str(pid))

    def procs(self, cgroup: Cgroup) -> list[int]:
        return list(self.files.procs(cgroup))

    def kill(self, cgroup: Cgroup, timeout: float = 2.0) -> None:
        """As cgroupfs kills; but systemd removes a scope's directories (in the hierarchies it
        manages) as soon as the scope empties, so one vanishing midway means those are empty: go
        on with the directories that are left (the ones made by mkdir)."""
        for _ in range(3):
            try:
                self.files.kill(cgroup, timeout)
                return
            except CgroupError as e:
                if e.errno not in (errno.ENOENT, errno.ENODEV):  # ENODEV: read while being removed
                    raise
            cgroup = Cgroup(cgroup.name, {key: path for key, path in cgroup.paths.items() if path.is_dir()})
            if not cgroup.paths:
                return
        self.files.kill(cgroup, timeout)

    def remove(self, cgroup: Cgroup, timeout: float = 1.0) -> None:
        """Stop the unit (a slice stops its scopes too), then rmdir what systemd did not make."""
        deadline = time.monotonic() + timeout
        unit = self.unit(cgroup)
        if self._pending.pop(unit, None) is None:
            try:
                self.bus().stop(unit)
            except SystemdError as e:
                raise CgroupError("remove", unit, str(e)) from None
        fs.rmdir_trees(cgroup.dirs(), deadline)

    def stats(self, cgroup: Cgroup) -> Stats:
        return self.files.stats(cgroup)


_ACCOUNTING: list[tuple[str, tuple[str, Any]]] = [
    ("CPUAccounting", ("b", True)),
    ("MemoryAccounting", ("b", True)),
    ("TasksAccounting", ("b", True)),
]


_STOPPED: set[str] = set()  # units remove_unit_at has stopped in this process


def remove_unit_at(path: Path, address: str | None = None) -> bool:
    """The tear-down registry's undo for one directory of a systemd-made pod cgroup (named
    `*.slice`/`*.scope`; the registry holds one per hierarchy): kill what runs there and rmdir it
    as for cgroupfs, then, once per unit, stop the unit, so systemd keeps no slice whose cgroup is
    gone (on a hybrid host it would never see a scope empty once its cgroup2 directory is removed,
    and the scope would stay "running"). Works from the path alone, as `gc` needs."""
    from sandbox.cgroups.reclaim import kill_and_remove

    removed = kill_and_remove(path)
    unit = path.name
    if unit.endswith((".slice", ".scope")) and unit not in _STOPPED:
        bus = SystemdBus(address)
        try:
            if bus.stop(unit):
                removed = True
        except SystemdError as e:
            raise OSError(errno.EIO, str(e), str(path)) from None
        finally:
            bus.close()
        _STOPPED.add(unit)
    return removed
