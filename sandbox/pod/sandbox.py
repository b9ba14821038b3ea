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
from pathlib import Path

from sandbox.process.request import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    SpawnRequest,
)
from sandbox.process.spawner import ChildProcess, Spawner
from sandbox.record import record
from sandbox.rootfs.plan import ContainerFiles, pause_plan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PAUSE_UID = 65535
PAUSE_OOM_SCORE_ADJ = -998  # containerd defaultSandboxOOMAdj
HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
HOSTS_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
HOSTS_LOCAL = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def pause_binary() -> str:
    """Built next to the package by setup.py (importlib.resources would cost ~10 ms to import)."""
    import sandbox

    return os.path.join(os.path.dirname(sandbox.__file__), "_bin", "pause")


POD_FILES_SIZE = "1m"  # the bound on everything the pod's containers can write to their pod files


@record
class SandboxDirs:
    """Files of one pod: `root` is its state directory (pause's root mountpoint), `files_root`
    the bounded tmpfs under the pod's directory on disk (pod_files_root); both removed with it."""

    root: Path
    files_root: Path

    @property
    def pause_root(self) -> Path:
        return self.root / "pause-root"

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


@record
class HostNamespaces:
    """hostNetwork (with its UTS namespace), hostPID, hostIPC: the pod uses the host's."""

    network: bool = False
    pid: bool = False
    ipc: bool = False


def write_pod_files(dirs: SandboxDirs, hostname: str, host: HostNamespaces) -> None:
    """/etc/hosts as the kubelet writes it, /etc/hostname as containerd does, and the host's
    resolv.conf (dnsPolicy ClusterFirst with no cluster DNS falls back to the host's config).
    Call it once the pod's record names `dirs.files_root` (its tmpfs is mounted here)."""
    mount_pod_files(dirs.files_root)
    files = dirs.files
    if host.network:
        Path(files.hosts).write_text(HOSTS_HEADER_HOST_NETWORK + _read("/etc/hosts"))
    else:
        Path(files.hosts).write_text(HOSTS_HEADER + HOSTS_LOCAL)
    Path(files.hostname).write_text(hostname + "\n")
    Path(files.resolv_conf).write_text(_read("/etc/resolv.conf"))
    for path in (files.hosts, files.hostname, files.resolv_conf):
        os.chmod(path, 0o644)
    dirs.pause_root.mkdir(mode=0o755, exist_ok=True)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def start_pause(spawner: Spawner, dirs: SandboxDirs, hostname: str, host: HostNamespaces,
                sysctls: tuple[tuple[str, str], ...] = (), cgroup: dict[str, Any] | None = None) -> ChildProcess:
    """Pause in new namespaces, except those the pod takes from the host. `sysctls` (path under
    /proc/sys, value) are written in the new namespaces before pause starts; `cgroup`: the
    SpawnRequest fields that start it in its cgroup (cgroups.fs.membership)."""
    binary = os.open(pause_binary(), os.O_RDONLY | os.O_CLOEXEC)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        req = SpawnRequest(
            argv=["/pause"],
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
            stdio=(null, null, null),
            **(cgroup or {}),
        )
        return spawner.spawn(req)
    finally:
        os.close(binary)
        os.close(null)
