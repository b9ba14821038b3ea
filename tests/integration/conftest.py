"""Fixtures for the root tier: a busybox image built once, a private --root per test, helpers to
drive `sandbox` as a subprocess (the pytest process never enters a namespace itself), and an
autouse check that every test leaves the machine as it found it."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sandbox.network.bridge import remove_unused

REPO = Path(__file__).resolve().parents[2]
SANDBOX = str(Path(sys.executable).parent / "sandbox")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates namespaces and mounts")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def image_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<base>/lib/images` with busybox:latest, built once per session by rootfs/."""
    base = tmp_path_factory.mktemp("images")
    env = dict(os.environ, SANDBOX_ROOT=str(base))
    subprocess.run([str(REPO / "rootfs" / "build-busybox.sh"), SANDBOX], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return base / "lib" / "images"


REGISTRY_CONFIG_ENV = "SANDBOX_REGISTRY_CONFIG"


@pytest.fixture(scope="session")
def store_mirror(image_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One loopback docker-registry for the session, serving every image of the session's store
    (busybox and its aliases) as the registry each name belongs to (docker.io, registry.k8s.io),
    and SANDBOX_REGISTRY_CONFIG pointing every `sandbox` the tests run at it: `image: busybox`
    defaults to imagePullPolicy Always, which asks the registry at every start. The registry's
    process and directories are gone when the session ends, on failure too. Yields a
    registry_fixture.Mirror (a test may give a hosts directory of its own through monkeypatch)."""
    if str(Path(__file__).parent) not in sys.path:  # loaded by path in the security tier
        sys.path.insert(0, str(Path(__file__).parent))
    from registry_fixture import mirror_store, running_registry

    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (make deps installs it): busybox pods pull from it")
    base = tmp_path_factory.mktemp("mirror")
    saved = os.environ.get(REGISTRY_CONFIG_ENV)
    try:
        with running_registry(base / "registry") as registry:
            mirror = mirror_store(registry, image_store, base / "certs.d")
            os.environ[REGISTRY_CONFIG_ENV] = str(mirror.hosts)
            yield mirror
    finally:
        if saved is None:
            os.environ.pop(REGISTRY_CONFIG_ENV, None)
        else:
            os.environ[REGISTRY_CONFIG_ENV] = saved
        shutil.rmtree(base, ignore_errors=True)


def _host_snapshot() -> dict[str, Any]:
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(line.split()[4] for line in f)
    netns = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    return {"mounts": mounts, "netns": netns, **network_snapshot()}


NETWORKS_DIR = Path("/run/sandbox/networks")


def settled_snapshot(before: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """The host's state once it equals `before`, or after `timeout`: the last pod's bridge is
    removed by a detached process ~0.1-0.2 s after its runtime exits, later while pods keep
    coming (network/remover.py: a grace, then the unregistration's RCU waits)."""
    deadline = time.monotonic() + timeout
    while True:
        now = _host_snapshot()
        if now == before or time.monotonic() > deadline:
            return now
        time.sleep(0.02)


def wait_gone(path: str | Path, timeout: float = 5.0) -> bool:
    """True once `path` does not exist (a bridge or a network directory being removed)."""
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def network_snapshot() -> dict[str, Any]:
    """What a pod network leaves on the host, read from outside: links (bridges, veth host ends),
    IPAM directories and leases, nftables tables."""
    # os.walk, not rglob: a bridge's detached remover may delete the directory while it is read
    leases = sorted(os.path.relpath(os.path.join(top, name), NETWORKS_DIR)
                    for top, dirs, files in os.walk(NETWORKS_DIR) for name in dirs + files)
    nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return {"links": sorted(os.listdir("/sys/class/net")), "ipam": leases,
            "nft": sorted(nft.stdout.split("\n")) if nft.returncode == 0 else nft.stderr}


def _pod_processes(since_pids: set[int]) -> list[str]:
    """New processes in a network namespace other than ours: pause or a container left behind."""
    own = os.readlink("/proc/self/ns/net")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in since_pids:
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/net") != own:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry}: {cmdline}")
        except OSError:
            continue
    return found


@dataclass
class Sandbox:
    """One test's private runtime root and ways to drive `sandbox` in it."""

    root: Path
    tmp: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    finished: set[int] = field(default_factory=set)  # pids of runs the test has waited for
    cgroup_parent: str = ""  # every pod cgroup of the test is created below it
    killed: bool = False  # a `run` timed out: subprocess killed that runtime (its pod needs a clean-up)

    def cmd(self, *args: str) -> list[str]:
        return [SANDBOX, "--root", str(self.root), *args]

    def run(self, *args: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout, check=check)
        except subprocess.TimeoutExpired:
            self.killed = True  # SIGKILLed by subprocess.run: its pod is left for a `delete`, as a user's
            raise

    def manifest(self, text: str, name: str = "pod.yaml") -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def start(self, manifest: Path, *extra: str) -> subprocess.Popen[bytes]:
        """`sandbox run` in the background (its own process group, so signals hit only it)."""
        proc = subprocess.Popen(self.cmd("run", *extra, str(manifest)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        self.procs.append(proc)
        return proc

    def state(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.root / "run" / "pods" / f"{namespace}_{name}" / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    def wait_for(self, what: Callable[[], Any], timeout: float = 20, message: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {message}")

    def wait_running(self, name: str, containers: int = 1, timeout: float = 20) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            s = self.state(name)
            if not s:
                return None
            statuses = s["status"].get("containerStatuses", [])
            running = [c for c in statuses if "running" in c.get("state", {})]
            return s if len(running) >= containers else None

        def ready_or_exited() -> dict[str, Any] | None:
            for proc in self.procs:
                if proc.pid not in self.finished and proc.poll() is not None:
                    _, err = proc.communicate()
                    raise AssertionError(f"sandbox run exited ({proc.returncode}): {err.decode()}")
            return ready()

        result: dict[str, Any] = self.wait_for(ready_or_exited, timeout, f"pod {name} running")
        return result

    def waiting(self, pod: str, container: int = 0) -> dict[str, Any]:
        """The `waiting` state (reason, message) of the pod's container number `container`, or {}."""
        state = self.state(pod) or {}
        statuses = state.get("status", {}).get("containerStatuses", [])
        return dict(statuses[container]["state"].get("waiting", {})) if len(statuses) > container else {}

    def pid_of(self, pod: str, container: str) -> int:
        state = self.state(pod)
        assert state is not None, f"pod {pod} has no state"
        return int(state["containers"][container]["process"]["pid"])

    def pause_pid(self, pod: str) -> int:
        state = self.state(pod)
        assert state is not None
        return int(state["pause"]["pid"])

    def finish(self, proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str, str]:
        out, err = proc.communicate(timeout=timeout)
        self.finished.add(proc.pid)
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 60) -> tuple[int, str, str]:
        proc.send_signal(sig)
        return self.finish(proc, timeout)

    def stop_now(self, proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
        """Ctrl-C twice: the second one kills at once (for pods whose PID 1 ignores SIGTERM). Two
        SIGINTs sent before the kernel has delivered the first are one pending signal (one Ctrl-C
        to the runtime), so the second waits until the first is no longer pending."""
        proc.send_signal(signal.SIGINT)
        self.wait_for(lambda: not signal_pending(proc.pid, signal.SIGINT), timeout=10,
                      message="the first SIGINT delivered")
        return self.stop(proc, signal.SIGINT)


def signal_pending(pid: int, signo: int) -> bool:
    """Whether `signo` waits to be delivered to the process (thread or process-wide queue)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return False  # gone: nothing is pending
    return any(int(fields[key], 16) & (1 << (signo - 1)) for key in ("SigPnd", "ShdPnd"))


@pytest.fixture
def sbx(image_store: Path, store_mirror: Any, tmp_path: Path) -> Iterator[Sandbox]:
    """A private runtime root sharing the session's image store (and its registry mirror);
    asserts nothing leaked."""
    root = tmp_path / f"root-{uuid.uuid4().hex[:8]}"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "images").symlink_to(image_store)
    before = _host_snapshot()
    pids_before = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    box = Sandbox(root, tmp_path)
    # A cgroup parent of the test's own (inherited by every `sandbox` it runs): what is left below
    # it after the test is this test's leak, whatever other runs do meanwhile.
    parent = CGROUP_PARENT_PREFIX + uuid.uuid4().hex[:10]
    saved_parent = os.environ.get(CGROUP_PARENT_ENV)
    os.environ[CGROUP_PARENT_ENV] = parent
    box.cgroup_parent = parent
    try:
        yield box
    finally:
        try:  # whatever fails while checking, the cgroup parent, the environment and the root go
            killed = box.killed
            for proc in box.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    killed = True
                proc.communicate(timeout=30)  # reaps it and closes its pipes
            if killed:  # a failed test's pod: finish its tear-down the way a user would
                pods_dir = root / "run" / "pods"
                for entry in os.listdir(pods_dir) if pods_dir.is_dir() else []:
                    ns, _, name = entry.partition("_")
                    subprocess.run(box.cmd("-n", ns, "delete", name), capture_output=True, timeout=60)
            # pause and containers die with a killed runtime (PR_SET_PDEATHSIG); give the kernel a moment.
            deadline = time.monotonic() + 5
            while _pod_processes(pids_before) and time.monotonic() < deadline:
                time.sleep(0.05)
            leaked = _pod_processes(pids_before)
            # A network the test's pods left without leases goes at once, as `sandbox gc` removes
            # it, instead of after the remover's grace (1 s: ~1.5 s per test); one with a lease
            # left is a leak and stays. test_pod_network.py checks the remover's own removal.
            remove_unused(skip={name.split("/", 1)[0] for name in before["ipam"]})
            after = settled_snapshot(before)
            pods = root / "run" / "pods"
            # An ended pod's record (a state file marked ended) stays by design until it is deleted.
            pods_left = sorted(p for p in os.listdir(pods) if not _ended_record(pods / p)) if pods.exists() else []
            layers_left = sorted(os.listdir(root / "lib" / "containers")) if (root / "lib" / "containers").exists() else []
            # The pods' parent outlives its last pod by its remover's grace (cgroups/reclaim.hand_over,
            # 1 s): removed here at once where no pod is left in it, as `sandbox gc` removes it;
            # test_cgroups.py checks the remover's own removal. A parent with a pod left is a leak.
            remove_empty_cgroup_parent(parent)
            cgroups_left = cgroups_of(parent)
            if after != before or pods_left:  # a leak, found above: still leave the host as it was
                for entry in os.listdir(pods) if pods.exists() else []:
                    ns, _, name = entry.partition("_")
                    subprocess.run(box.cmd("-n", ns, "delete", name), capture_output=True, timeout=60)
                unmount_under(root)
            mounts_left = mounts_under(root)
        finally:
            remove_cgroup_parent(parent)
            if saved_parent is None:
                os.environ.pop(CGROUP_PARENT_ENV, None)
            else:
                os.environ[CGROUP_PARENT_ENV] = saved_parent
            shutil.rmtree(root, ignore_errors=True)
        assert not mounts_left, f"mounts under the test's root even after delete and unmount: {mounts_left}"
        assert not leaked, f"processes left behind: {leaked}"
        assert after == before, "host mounts, network namespaces, links, IPAM records or nft tables changed"
        assert not pods_left, f"pod state left behind: {pods_left}"
        assert not layers_left, f"container layers left behind: {layers_left}"
        assert not cgroups_left, f"cgroups left behind: {cgroups_left}"


def mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as f:
        return sorted({line.split()[4] for line in f if line.split()[4].startswith(prefix)}, reverse=True)


def unmount_under(root: Path) -> None:
    """Last resort after a leak: detach every mount below the test's root (deepest first), so
    removing the root never strands a mount in pytest's garbage directories."""
    from sandbox.native import umount

    for point in mounts_under(root):
        try:
            umount(point)
        except OSError:
            pass


CGROUP_PARENT_ENV = "SANDBOX_CGROUP_PARENT"
CGROUP_PARENT_PREFIX = "sandbox-test-"


def cgroup_children(parent: str) -> list[str]:
    """Pod cgroups below a test's parent in any hierarchy."""
    return sorted(p for p in glob.glob(f"/sys/fs/cgroup/*/{parent}/*") if os.path.isdir(p))


def cgroups_of(parent: str) -> list[str]:
    """A test's parent cgroup and what is below it, in any hierarchy: after a test and
    remove_empty_cgroup_parent, anything here is a leak."""
    return sorted(p for p in glob.glob(f"/sys/fs/cgroup/*/{parent}") if os.path.isdir(p)) + cgroup_children(parent)


def remove_empty_cgroup_parent(parent: str) -> None:
    """The test's parent cgroup, in every hierarchy where no pod is left in it (`sandbox gc`'s
    rule), without waiting for its remover."""
    from sandbox.cgroups import fs

    for top in glob.glob(f"/sys/fs/cgroup/*/{parent}"):
        fs.remove_if_empty(top)


def remove_cgroup_parent(parent: str) -> None:
    """Kill what is left and remove the test's parent cgroup in every hierarchy, leaf first."""
    from sandbox.cgroups import fs
    from sandbox.cgroups.reclaim import kill_and_remove

    for pod in cgroup_children(parent):
        try:
            kill_and_remove(Path(pod))
        except OSError:
            pass
    for top in glob.glob(f"/sys/fs/cgroup/*/{parent}"):
        try:
            fs.rmdir_tree(Path(top), time.monotonic() + 2.0)
        except fs.CgroupError:
            pass


def _ended_record(pod_dir: Path) -> bool:
    try:
        return json.loads((pod_dir / "state.json").read_text()).get("ended") is True
    except (OSError, ValueError):
        return False


def ns_inode(pid: int, ns: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{ns}")


@pytest.fixture
def agent_sbx(sbx: Sandbox) -> Iterator[Sandbox]:
    """`sbx` for tests that hand pods to a node agent: afterwards the agent is stopped (every
    pod with it) and pods a killed agent left under their shims are torn down."""
    from tests.integration.test_agent import stop_agent, tear_down_orphans

    try:
        yield sbx
    finally:
        stop_agent(sbx, force=True)
        tear_down_orphans(sbx)
