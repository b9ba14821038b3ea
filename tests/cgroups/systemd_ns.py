"""A real systemd (the host's /lib/systemd/systemd, PID 1 of its own PID namespace) with a system
bus (dbus-daemon, started by it), for the systemd cgroup driver's tests: what systemd-in-a-container
setups do, on a host whose PID 1 is not systemd.

Isolation, so nothing of the host changes: new PID, mount, cgroup, UTS, IPC and network
namespaces; /run is a fresh tmpfs (the host's /run/systemd, /run/dbus untouched); /proc/sys is
read-only (systemd would otherwise raise host-wide sysctls); the cgroup hierarchies are mounted
anew inside the cgroup namespace, whose root is `<hierarchy>/<name>` on the host, a cgroup made
for this instance in every hierarchy (name=systemd included) and removed with it. The unit set is
three files (a target, dbus.socket, dbus.service): nothing else of the host's units starts.

systemd checks a peer of its private socket by pid, and PIDs in a scope are pids of its namespace,
so the code under test runs inside the namespaces (`inside`, by nsenter), where its view of
/proc and /sys/fs/cgroup is the one systemd has. The host sees the same cgroups under
`<hierarchy>/<name>/...` (`host_path`). The system bus also answers from the host
(`address`): dbus-daemon authenticates by uid alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from sandbox.cgroups.detect import DEFAULT_ROOT

SYSTEMD = "/lib/systemd/systemd"
DBUS_DAEMON = "/usr/bin/dbus-daemon"

UNITS = {
    "sandbox-test.target": """[Unit]
Description=sandbox test: the system bus only
Wants=dbus.socket dbus.service
""",
    "dbus.socket": """[Unit]
Description=D-Bus System Message Bus Socket
DefaultDependencies=no
[Socket]
ListenStream=/run/dbus/system_bus_socket
""",
    "dbus.service": """[Unit]
Description=D-Bus System Message Bus
DefaultDependencies=no
Requires=dbus.socket
After=dbus.socket
[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only
""",
}

# Runs as PID 1 of the new namespaces until it execs systemd. $1: the unit directory.
_INIT = r"""
set -eu
mount -t tmpfs -o mode=755,size=16m tmpfs /run
mount --bind -o ro /proc/sys /proc/sys
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
for spec in $HIERARCHIES; do
    dir=${spec%%=*} opts=${spec#*=}
    mkdir /sys/fs/cgroup/$dir
    if [ "$opts" = cgroup2 ]; then mount -t cgroup2 cgroup2 /sys/fs/cgroup/$dir
    else mount -t cgroup -o "$opts" cgroup /sys/fs/cgroup/$dir; fi
done
export container=sandbox-test SYSTEMD_UNIT_PATH="$1"
exec /lib/systemd/systemd --system --unit=sandbox-test.target --log-target=console --log-level=warning
"""


def missing() -> str | None:
    """Why no namespaced systemd can run here (the tests' skip reason), or None."""
    for binary in (SYSTEMD, DBUS_DAEMON):
        if not os.access(binary, os.X_OK):
            return f"{binary} is not installed (Debian packages systemd, dbus-daemon)"
    if not all(shutil.which(tool) for tool in ("unshare", "nsenter", "setpriv")):
        return "unshare/nsenter/setpriv (util-linux) missing"
    return None


def _hierarchies(root: Path = DEFAULT_ROOT) -> dict[str, str]:
    """Directory name under /sys/fs/cgroup -> mount options, from this host's mounts."""
    out = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        point = Path(left.split()[4])
        fstype, _, supers = right.split()[:3]
        if point.parent != root:
            continue
        if fstype == "cgroup2":
            out[point.name] = "cgroup2"
        elif fstype == "cgroup":
            opts = [o for o in supers.split(",") if o not in ("rw", "ro") and not o.startswith("release_agent")]
            if any(o.startswith("name=") for o in opts):
                opts.insert(0, "none")
            out[point.name] = ",".join(opts)
    return out


class NamespacedSystemd:
    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name  # the cgroup, in every hierarchy, that is the namespace's cgroup root
        self.workdir = workdir
        self.hierarchies = _hierarchies()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0  # systemd, as the host sees it
        self.pidns = ""

    # --- views ------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"unix:path=/proc/{self.pid}/root/run/dbus/system_bus_socket"

    def host_path(self, inside: str | Path) -> Path:
        """A cgroup directory as the code inside names it -> the same directory on the host."""
        rel = Path(inside).relative_to(DEFAULT_ROOT)
        return DEFAULT_ROOT / rel.parts[0] / self.name / Path(*rel.parts[1:])

    def host_dirs(self) -> list[Path]:
        return [DEFAULT_ROOT / h / self.name for h in self.hierarchies]

    def inside(self, *argv: str, **kw: object) -> subprocess.Popen[str]:
        """A command in systemd's PID, mount and cgroup namespaces (host network: the pods' own
        namespaces are made below it anyway)."""
        cmd = ["nsenter", "-t", str(self.pid), "-p", "-m", "-C", "--", *argv]
        return subprocess.Popen(cmd, text=True, **kw)  # type: ignore[call-overload, no-any-return]

    # --- life ---------------------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> None:
        units = self.workdir / "units"
        units.mkdir()
        for name, text in UNITS.items():
            (units / name).write_text(text)
        for top in self.host_dirs():
            os.mkdir(top)
            if (top / "cpuset.cpus").exists():  # a v1 cpuset cgroup starts empty: no task may join
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (top / f).write_text((top.parent / f).read_text())
        join = "; ".join(f"echo $$ > {top}/cgroup.procs" for top in self.host_dirs())
        specs = " ".join(f"{d}={o}" for d, o in sorted(self.hierarchies.items()))
        # a test run killed before its finaliser must not leave systemd running: unshare dies with
        # its parent (setpriv --pdeathsig), and takes the namespace's PID 1 along (--kill-child)
        script = (f"{join}; exec setpriv --pdeathsig KILL unshare --pid --kill-child=SIGKILL --mount --cgroup "
                  f"--uts --ipc --net --propagation private --mount-proc /bin/sh -c '{_INIT}' init {units}")
        log = open(self.workdir / "systemd.log", "wb")
        self.proc = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "HIERARCHIES": specs})
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd exited {self.proc.returncode}: {self.log()}")
            if not self.pid:
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
                kids = children.read_text().split() if children.exists() else []
                if kids and Path(f"/proc/{kids[0]}/exe").resolve() == Path(SYSTEMD).resolve():
                    self.pid = int(kids[0])
                    self.pidns = os.readlink(f"/proc/{self.pid}/ns/pid")
            if self.pid and self._ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"systemd not ready within {timeout} s: {self.log()}")
            time.sleep(0.02)

    def _ready(self) -> bool:
        from sandbox.cgroups.systemd import SystemdBus, SystemdError

        if not os.path.exists(f"/proc/{self.pid}/root/run/dbus/system_bus_socket"):
            return False
        try:
            bus = SystemdBus(self.address, timeout=2.0)
        except SystemdError:
            return False
        try:
            return bus.unit_state("dbus.service") == "active"
        finally:
            bus.close()

    def log(self) -> str:
        return (self.workdir / "systemd.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        """SIGKILL to the namespace's PID 1 kills every process of the namespace; the mount
        namespace goes with its last process. The cgroups are the caller's to remove."""
        if self.proc is None:
            return
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def processes(self) -> list[int]:
        """Host pids still in the namespace (none after stop)."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/pid") == self.pidns:
                        found.append(int(entry))
                except OSError:
                    pass
        return found


def remove_stale(pattern: str) -> None:
    """Empty cgroups of an earlier run that was killed (its systemd died with it, its cgroups
    stay): removed when nothing runs in them; one in use is left alone."""
    import glob

    from sandbox.cgroups import fs

    for top in glob.glob(str(DEFAULT_ROOT / "*" / pattern)):
        try:
            fs.rmdir_tree(Path(top), time.monotonic())
        except fs.CgroupError:
            pass


def running(name: str, workdir: Path) -> Iterator[NamespacedSystemd]:
    """Start, yield, stop (the body of a fixture; cgroups are scrubbed by the `parent` fixture)."""
    sd = NamespacedSystemd(name, workdir)
    try:
        sd.start()
        yield sd
    finally:
        sd.stop()
        if sd.pidns:
            deadline = time.monotonic() + 5
            while sd.processes() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert sd.processes() == [], "processes of the test systemd left"
