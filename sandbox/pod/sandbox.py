"""The pod sandbox: pause as PID 1 of new net, ipc, uts, pid and mount namespaces.

Pause is started from an empty read-only tmpfs root (its binary runs through an fd opened before
pivot_root), as uid/gid 65535 with no capabilities and no_new_privs (the Kubernetes pause image's
user; security-reliability.md 1.10). Its mount namespace also holds the pod's /dev/shm tmpfs, which
each container attaches, so IPC through /dev/shm works across the pod without any mount in the
host's namespace. The network namespace gets only `lo`, brought up by the native child: a pod
without a pod network never imports pyroute2.

The files a container can write (/etc/hosts, /etc/hostname, the termination-message files; and
/etc/resolv.conf, bound read-only) live under the pod's directory on disk, `<lib>/pods/<uid>/files`
(the kubelet's /var/lib/kubelet/pods/<uid>/etc-hosts and containers/<name>/<id>), on a small
tmpfs of the pod's own mounted there: `size=` bounds what all its containers can write together
(a container filling /etc/hosts fills 1 MiB, not the host's /run or /var/lib), with no loop device
to set up or leak. It is mounted after the pod's record names the directory and unmounted with
the pod's volumes by its tear-down registry (sandbox/pod/teardown.py), also when a dead
runtime's pod is cleaned up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sandbox.log import get_logger
from sandbox.process.request import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    SpawnRequest,
)
from sandbox.process.spawner import ChildProcess, PendingChild, Spawner
from sandbox.record import Record
from sandbox.rootfs.plan import ContainerFiles, pause_plan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from sandbox.events import Note
    from sandbox.spec.model import Pod

log = get_logger(__name__)

PAUSE_UID = 65535
PAUSE_OOM_SCORE_ADJ = -998  # containerd defaultSandboxOOMAdj


def pause_binary() -> str:
    """Built next to the package by setup.py (importlib.resources would cost ~10 ms to import)."""
    import sandbox

    return os.path.join(os.path.dirname(sandbox.__file__), "_bin", "pause")


POD_FILES_SIZE = "1m"  # the bound on everything the pod's containers can write to their pod files


class SandboxDirs(Record):
    """Files of one pod: `root` is its state directory (pause's root mountpoint), `files_root`
    the bounded tmpfs under the pod's directory on disk (pod_files_root); both removed with it."""

    root: Path
    files_root: Path

    @property
    def pause_root(self) -> Path:
        """Where pause's root tmpfs is mounted in pause's own mount namespace: the state directory
        itself, hidden there only (the mount never reaches the host's table). No directory of
        its own: each inode made and freed per pod costs here (sandbox/topdir.py)."""
        return self.root

    @property
    def files(self) -> ContainerFiles:
        return ContainerFiles(
            hosts=str(self.files_root / "etc-hosts"),
            hostname=str(self.files_root / "hostname"),
            resolv_conf=str(self.files_root / "resolv.conf"),
        )


def pod_files_root(pod_root: Path) -> Path:
    """`<lib>/pods/<uid>/files`, given `<lib>/pods/<uid>` (volumes.volumes_root)."""
    return pod_root / "files"


def mount_pod_files(files_root: Path) -> None:
    """The pod files' own tmpfs (nosuid,nodev,noexec, `size=` bounded); idempotent."""
    from sandbox.native import mount_tmpfs
    from sandbox.rootfs.plan import MS_NODEV, MS_NOEXEC, MS_NOSUID

    files_root.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not os.path.ismount(files_root):
        mount_tmpfs(str(files_root), MS_NOSUID | MS_NODEV | MS_NOEXEC, f"mode=755,size={POD_FILES_SIZE}")


class HostNamespaces(Record):
    """hostNetwork (with its UTS namespace), hostPID, hostIPC: the pod uses the host's."""

    network: bool = False
    pid: bool = False
    ipc: bool = False


def write_pod_files(dirs: SandboxDirs, pod: Pod, uid: str, hostname: str, host: HostNamespaces,
                    pod_ips: Sequence[str] = ()) -> list[Note]:
    """/etc/hosts and /etc/resolv.conf as the kubelet and containerd write them (dnsfiles), and
    /etc/hostname (`hostname`: the UTS name, launch.pod_hostname) as containerd does. `pod_ips`:
    the pod network's addresses, each a hosts line. Returns the kubelet's events (MissingClusterDNS,
    DNSConfigForming) for the caller to record; the fallback to the node's resolv.conf is logged.
    Call it once the pod's record names `dirs.files_root` (its tmpfs is mounted here)."""
    from sandbox.pod import dnsfiles

    mount_pod_files(dirs.files_root)
    files = dirs.files
    aliases = pod.spec.host_aliases
    if host.network:
        hosts = dnsfiles.host_network_hosts_file(_read("/etc/hosts"), aliases)
    else:
        hosts = dnsfiles.hosts_file(dnsfiles.pod_names(pod), pod_ips, aliases)
    node_resolv = _read("/etc/resolv.conf")
    pod_ref = f"{pod.metadata.name}_{pod.metadata.namespace or 'default'}({uid})"
    dns, notes = dnsfiles.pod_dns(pod, dnsfiles.parse_resolv_conf(node_resolv), pod_ref)
    for _, reason, message in notes:
        log.info("pod %s: %s: %s", pod_ref, reason, message)
    Path(files.hosts).write_text(hosts)
    Path(files.hostname).write_text(hostname + "\n")
    Path(files.resolv_conf).write_text(dnsfiles.resolv_conf(dns, node_resolv))
    for path in (files.hosts, files.hostname, files.resolv_conf):
        os.chmod(path, 0o644)
    return notes


def rewrite_hosts_file(dirs: SandboxDirs, pod: Pod, pod_ips: Sequence[str]) -> None:
    """/etc/hosts again once the pod's IPs are known after pause started (CNI's ADD), in place:
    its inode stays the one containers bind."""
    from sandbox.pod import dnsfiles

    text = dnsfiles.hosts_file(dnsfiles.pod_names(pod), pod_ips, pod.spec.host_aliases)
    fd = os.open(dirs.files.hosts, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def start_pause(spawner: Spawner, dirs: SandboxDirs, hostname: str, host: HostNamespaces,
                sysctls: tuple[tuple[str, str], ...] = (), cgroup: dict[str, Any] | None = None,
                before_start: Any = None) -> ChildProcess:
    """Pause in new namespaces, except those the pod takes from the host. `sysctls` (path under
    /proc/sys, value) are written in the new namespaces before pause starts; `cgroup`: the
    SpawnRequest fields that start it in its cgroup (process.request.membership)."""
    return start_pause_pending(spawner, dirs, hostname, host, sysctls, cgroup, before_start, wait=True).process


def start_pause_pending(spawner: Spawner, dirs: SandboxDirs, hostname: str, host: HostNamespaces,
                        sysctls: tuple[tuple[str, str], ...] = (), cgroup: dict[str, Any] | None = None,
                        before_start: Any = None, *, wait: bool = False) -> PendingChild:
    """start_pause, returning while pause may still set its namespaces up (`wait`: once it runs;
    always so under --trace, whose records of pause's set-up are read here)."""
    binary = os.open(pause_binary(), os.O_RDONLY | os.O_CLOEXEC)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    # --trace: pause's stderr is a pipe it reports each reaped child on (native/pause.c); the
    # trace module is loaded by --trace only, so off costs one lookup
    tracer = sys.modules["sandbox.trace"].active if "sandbox.trace" in sys.modules else None
    reports, report_end = os.pipe2(os.O_CLOEXEC) if tracer is not None else (-1, null)
    try:
        req = SpawnRequest(
            argv=["/pause", "--trace"] if reports >= 0 else ["/pause"],
            env=[],
            new_ns=CLONE_NEWNS | (0 if host.network else CLONE_NEWNET | CLONE_NEWUTS)
            | (0 if host.ipc else CLONE_NEWIPC) | (0 if host.pid else CLONE_NEWPID),
            hostname=None if host.network else hostname,
            loopback_up=not host.network,
            sysctls=sysctls,
            ops=pause_plan(str(dirs.pause_root)),
            pivot=True,
            readonly_root=True,
            exec_fd=binary,
            oom_score_adj=PAUSE_OOM_SCORE_ADJ,
            uid=PAUSE_UID,
            gid=PAUSE_UID,
            no_new_privs=True,
            stdio=(null, null, report_end),
            **(cgroup or {}),
        )
        if wait or tracer is not None:
            pause = PendingChild(spawner.spawn(req, before_start=before_start))
        else:
            pause = spawner.start(req, before_start=before_start)  # stage 2 holds its own fds: ours close below
        if tracer is not None and reports >= 0:
            from sandbox.trace import read_pause

            read_pause(reports, tracer)
            reports = -1
        return pause
    finally:
        os.close(binary)
        os.close(null)
        if reports >= 0:
            os.close(reports)
            os.close(report_end)
        elif report_end != null:
            os.close(report_end)
