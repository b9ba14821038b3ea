"""RuntimeService: pod sandboxes and containers, as a CRI runtime provides them to the kubelet.

RunPodSandbox makes the pod's shared parts: the per-pod shim when pods must outlive their
supervisor, the pod cgroup with its limits, pause in new namespaces, the pod network.
CreateContainer makes an instance's writable layer, its cgroup (limits, device allow-list) and
its log, and builds the spawn request from the container's config (argv, env, mounts, identity:
the kubelet's ContainerConfig); StartContainer spawns it (stage 2 is placed in its cgroup and the
caller's `before_start` runs while it waits for "go", runc's create/start split). StopContainer
sends a signal, RemoveContainer releases the layer and the cgroup (returning the OOM kills seen),
ReopenContainerLog asks the shim to reopen a rotated file. RemovePodSandbox replays the pod's
tear-down journal (pod/teardown.py), which stops whatever still runs first (the CRI's
StopPodSandbox and RemovePodSandbox in one); the journal is shared with the kubelet role's
volumes: one per pod, so a crash anywhere leaves one complete record.

Every object is recorded in the pod's journal before it exists (a process right after); the
methods leave nothing behind when they fail.
"""

from __future__ import annotations

import os

from sandbox import poller
from sandbox.errors import SUBPATH_CREATE_OPS, ContainerStartError, PauseStartError, SubPathError
from sandbox.log import get_logger
from sandbox.pod import teardown
from sandbox.record import Record, field, replace
from sandbox.signals import signal
from sandbox.state.proc import ProcessRef

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from sandbox.cgroups.driver import Cgroup
    from sandbox.images.store import Image
    from sandbox.logs.rotation import RotationPolicy
    from sandbox.logs.stream import ContainerLog, Terminal
    from sandbox.paths import RootLayout
    from sandbox.pod.cgroups import CgroupPlan, PodCgroups
    from sandbox.pod.network import PodNetwork
    from sandbox.pod.sandbox import HostNamespaces, SandboxDirs
    from sandbox.process.downward import Addresses
    from sandbox.process.request import Identity
    from sandbox.process.resources import PodResources
    from sandbox.process.shim import Launch, ShimSpawner
    from sandbox.process.spawner import ChildProcess, PendingChild, Spawner
    from sandbox.rootfs.layers import ContainerLayer
    from sandbox.rootfs.plan import MountOp
    from sandbox.spec.model import Container, Pod

log = get_logger(__name__)


class PodSandboxConfig(Record, frozen=False):
    """What RunPodSandbox needs (the CRI's PodSandboxConfig: metadata, hostname, namespaces,
    sysctls, the cgroup parent and resources, port mappings through the network)."""

    pod: Pod
    uid: str
    hostname: str
    host: HostNamespaces  # namespaces taken from the host (hostNetwork, hostPID, hostIPC)
    sysctls: tuple[tuple[str, str], ...]
    dirs: SandboxDirs
    journal: teardown.Journal
    cgroup_plan: CgroupPlan | None = None  # None: no cgroups (a unit test's pod)
    network: PodNetwork | None = None  # None: the host's network or none at all
    shim_dir: Path | None = None  # pods outlive their supervisor through a shim there; None: our children
    terminal: Terminal | None = None  # where container output is also shown (`sandbox run`)
    log_policy: RotationPolicy | None = None


def subpath_error(spec: Container, path: str, created: bool = False) -> ContainerStartError:
    """A subPath that cannot be made or opened beneath its volume (a link out of it, a file where
    a directory is needed) as the kubelet's makeMounts reports it: CreateContainerConfigError,
    naming the volumeMount and the container, never the host paths ("could give information about
    host filesystem"). `path` is the subPath, or the prefix of it that failed; `created`: the
    failure was making the missing directory (SafeMakeDir), which the kubelet words apart."""
    from sandbox.errors import ContainerConfigError

    mounts = [m for m in spec.volume_mounts if m.sub_path or m.sub_path_expr]
    named = [m for m in mounts if m.sub_path and (m.sub_path == path or m.sub_path.startswith(path.rstrip("/") + "/"))]
    name = (named or mounts)[0].name if mounts else ""
    what = "create subPath directory" if created else "prepare subPath"
    return ContainerConfigError(f'failed to {what} for volumeMount "{name}" of container "{spec.name}"',
                                container=spec.name)


class PodSandbox(Record, frozen=False):
    """The runtime's state of one sandbox; its ID is the pod UID."""

    id: str
    config: PodSandboxConfig
    spawner: Spawner  # pause and the containers are spawned through it (the shim's, or ours)
    shim: ShimSpawner | None = None
    cgroups: PodCgroups | None = None
    resources: PodResources | None = None  # every container's cgroup values and oom_score_adj
    pause: ChildProcess | None = None
    pause_pending: PendingChild | None = None  # pause's set-up not waited for yet (pause_ready)
    pause_ref: ProcessRef | None = None
    pause_cgroup: Cgroup | None = None
    addresses: Addresses | None = None  # the pod's IPs (PodSandboxStatus.network)
    devnull: int = -1

    def record(self, obj: teardown.TornDown) -> None:
        self.config.journal.add(obj)

    @property
    def ready(self) -> bool:
        """SANDBOX_READY: its pause runs."""
        return self.pause is not None and self.pause.exit is None


class ContainerConfig(Record, frozen=False):
    """What CreateContainer needs (the CRI's ContainerConfig): the resolved command and env,
    the mounts the kubelet made (volumes, the termination-message file), the identity and
    confinement the security context asked for, the log path."""

    spec: Container
    image: Image
    argv: list[str]
    env: list[str]
    mounts: list[MountOp]
    identity: Identity
    log_path: Path
    share_pid: bool = False  # the pod shares one PID namespace (pause's)


class RuntimeContainer(Record, frozen=False):
    """The runtime's record of one container instance; its ID is 64 hex digits."""

    id: str
    sandbox: PodSandbox
    config: ContainerConfig
    layer: ContainerLayer | None = None
    cgroup: Cgroup | None = None
    log: ContainerLog | None = None  # our own log pipes (no shim)
    request: Any = None  # the built SpawnRequest, until StartContainer
    process: ChildProcess | None = None
    oom_kills: int = 0  # set by RemoveContainer
    log_fds: list[int] = field(default_factory=list)


def membership(cgroup: Cgroup | None) -> dict[str, Any]:
    """The SpawnRequest fields that start a process inside `cgroup` (none: outside any of ours)."""
    from sandbox.process.request import membership as fields

    return fields(cgroup.paths if cgroup is not None else None)


class RuntimeService:
    """One pod loop's runtime: spawns on the loop's thread (PR_SET_PDEATHSIG follows the
    spawning thread), registers log pipes in the loop's selector (`on_log` reads them)."""

    def __init__(self, layout: RootLayout, spawner: Spawner, selector: poller.Selector) -> None:
        self.layout, self.spawner, self.selector = layout, spawner, selector
        self.logs: dict[int, ContainerLog] = {}  # log pipe fd -> the log it feeds
        self.sandboxes: dict[str, PodSandbox] = {}  # by ID, from RunPodSandbox to RemovePodSandbox

    # --- pod sandboxes -----------------------------------------------------------------------

    def run_pod_sandbox(self, config: PodSandboxConfig, *, wait: bool = True) -> PodSandbox:
        """The shim (if any), the pod cgroup, pause, the network; the caller tears down with
        remove_pod_sandbox whatever happens (everything made is in the journal). `wait` False:
        pause may still be setting up on return (pause_ready waits; start_container does)."""
        sandbox = self.sandboxes[config.uid] = PodSandbox(config.uid, config, self.spawner)
        sandbox.devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        launch = self._launch_shim(sandbox, config.shim_dir) if config.shim_dir is not None else None
        try:  # while the shim comes up (1-2 ms of process start-ups), the pod's cgroups are made
            if config.network is not None:  # the lease and hostPorts: a taken port fails the pod here
                config.network.before_pause()
                sandbox.addresses = config.network.addresses
            self._create_cgroups(sandbox)
        finally:
            if launch is not None:  # recorded whatever happened above, so the tear-down ends it
                self._connect_shim(sandbox, launch)
        self.start_pause(sandbox, wait=wait)
        return sandbox

    def _launch_shim(self, sandbox: PodSandbox, directory: Path) -> Launch:
        """The pod's parent, started first (its directory is undone last; the shim itself right
        after pause, the last of its children to be undone)."""
        from sandbox.process.shim import Launch

        sandbox.record(teardown.Directory(directory, sandbox.config.dirs.root))
        directory.mkdir(mode=0o700, exist_ok=True)
        return Launch(str(directory))

    def _connect_shim(self, sandbox: PodSandbox, launch: Launch) -> None:
        from pathlib import Path

        from sandbox.process.shim import ShimSpawner

        ref = ProcessRef.of(launch.wait())
        if ref is not None:  # recorded before anything else can fail: the tear-down stops it
            sandbox.record(teardown.Shim(ref.pid, ref.start_time, Path(launch.directory)))
        shim = launch.connect()
        sandbox.shim = ShimSpawner(shim)
        sandbox.spawner = sandbox.shim

    def adopt_pod_sandbox(self, config: PodSandboxConfig, shim: Any) -> PodSandbox:
        """A sandbox a previous supervisor made, whose shim still runs it (supervisor/adopt.py)."""
        from sandbox.process.shim import ShimSpawner

        sandbox = self.sandboxes[config.uid] = PodSandbox(config.uid, config, self.spawner)
        sandbox.devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        sandbox.shim = ShimSpawner(shim)
        sandbox.spawner = sandbox.shim
        return sandbox

    def _create_cgroups(self, sandbox: PodSandbox) -> None:
        """The pod cgroup with its limits (pods.max included), before any process of the pod."""
        plan = sandbox.config.cgroup_plan
        if plan is None:
            return
        from sandbox.pod.cgroups import PAUSE_CGROUP, PodCgroups, pause_limits

        cgroups = PodCgroups(plan.driver, sandbox.id, sandbox.record)
        cgroups.create(plan.resources.pod)
        sandbox.cgroups, sandbox.resources = cgroups, plan.resources
        sandbox.pause_cgroup = cgroups.child(PAUSE_CGROUP, pause_limits(plan.driver))

    def start_pause(self, sandbox: PodSandbox, *, wait: bool = True) -> ChildProcess:
        """Pause in new namespaces (again, for a sandbox re-created after its pause died: the
        kubelet's new sandbox attempt, keeping the pod's cgroup and lease), then the network into
        its namespace."""
        from sandbox.pod.sandbox import start_pause_pending

        config = sandbox.config
        cgroups = sandbox.cgroups
        sysctls = config.sysctls if config.network is None else (*config.network.pause_sysctls(), *config.sysctls)
        # Not waited for (and there is no network to move into its namespace): pause's set-up is
        # waited for only where a container is about to join it, while the pod goes on preparing.
        pending = start_pause_pending(sandbox.spawner, config.dirs, config.hostname, config.host, sysctls,
                                      cgroups.spawn_fields(sandbox.pause_cgroup) if cgroups else {},
                                      before_start=cgroups.joiner(sandbox.pause_cgroup) if cgroups else None,
                                      wait=wait or config.network is not None)
        if sandbox.pause_pending is not None:  # a re-created sandbox's earlier pause, never waited for
            sandbox.pause_pending.abandon()
        sandbox.pause = pending.process
        sandbox.pause_pending = None if pending.done else pending
        sandbox.pause_ref = ProcessRef.of(sandbox.pause.pid)
        if sandbox.pause_ref is not None:
            sandbox.record(teardown.Process(sandbox.pause_ref.pid, sandbox.pause_ref.start_time))
        network = config.network
        if network is not None:  # the veth (or CNI's ADD) into pause's network namespace
            network.after_pause(sandbox.pause.pid, sandbox.pause.pidfd)
            sandbox.addresses = network.addresses
        return sandbox.pause

    def pause_ready(self, sandbox: PodSandbox) -> None:
        """Wait for pause to run in its namespaces, before anything joins them. Its failure is
        the pod's (PauseStartError), not the container's that happened to ask first."""
        pending, sandbox.pause_pending = sandbox.pause_pending, None
        if pending is not None:
            try:
                pending.ready()
            except ContainerStartError as e:
                raise PauseStartError(e) from e

    def pod_sandbox_status(self, sandbox: PodSandbox) -> dict[str, Any]:
        self.pause_ready(sandbox)
        addresses = sandbox.addresses
        return {"id": sandbox.id, "state": "SANDBOX_READY" if sandbox.ready else "SANDBOX_NOTREADY",
                "network": {"ips": list(addresses.pod_ips) if addresses is not None else []},
                "pid": sandbox.pause.pid if sandbox.pause is not None else 0}

    def remove_pod_sandbox(self, sandbox: PodSandbox | None, journal: teardown.Journal, lib_root: Path,
                           containers: list[RuntimeContainer]) -> None:
        """Everything the pod's journal records, undone newest first (the shim last); then the
        processes reaped, the logs drained and every fd released."""
        journal.close()
        teardown.undo_all(journal, teardown.pod_bases(lib_root, journal.path.parent))
        for container in containers:
            if container.process is not None:
                container.process.send_signal(signal.SIGKILL)  # one the journal never saw (it died at once)
                container.process.wait()
                container.process.close()
                container.process = None
            container.layer = None
        for clog in set(self.logs.values()):
            clog.close()
        self.logs.clear()
        if sandbox is None:
            return
        self.sandboxes.pop(sandbox.id, None)
        if sandbox.pause_pending is not None:  # never waited for: its channel closes, it was killed above
            sandbox.pause_pending.abandon()
            sandbox.pause_pending = None
        if sandbox.pause is not None:
            sandbox.pause.send_signal(signal.SIGKILL)
            sandbox.pause.wait()
            sandbox.pause.close()
        if sandbox.devnull >= 0:
            os.close(sandbox.devnull)
            sandbox.devnull = -1
        if sandbox.shim is not None:  # the shim itself was stopped by its journal record
            sandbox.shim.shim.close()

    def acknowledge_exit(self, sandbox: PodSandbox, process: ChildProcess) -> None:
        """The caller recorded `process`'s exit: a shim may forget it (a restarted supervisor
        must not see it again)."""
        if sandbox.shim is not None:
            sandbox.shim.release(process)

    # --- containers ----------------------------------------------------------------------------

    def create_container(self, sandbox: PodSandbox, config: ContainerConfig) -> RuntimeContainer:
        """The instance's layer, cgroup and log, and its spawn request; ContainerStartError
        (CreateContainerError) with nothing left when one cannot be made."""
        from sandbox.process import launch
        from sandbox.rootfs.layers import ContainerLayer

        container_id = os.urandom(32).hex()
        sandbox.record(teardown.Directory(self.layout.containers / container_id, self.layout.containers))
        container = RuntimeContainer(container_id, sandbox, config)
        container.layer = ContainerLayer.create(self.layout.containers, container_id)
        try:
            if sandbox.shim is None:
                from sandbox.logs.stream import ContainerLog

                container.log = ContainerLog(config.spec.name, config.log_path, sandbox.config.terminal,
                                             sandbox.config.log_policy)
                stdout, stderr = container.log.stdio
            else:  # the shim opens the file itself (it must not find its directory missing)
                config.log_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                stdout = stderr = sandbox.devnull  # the shim's pipes replace them
            container.cgroup = self._create_cgroup(sandbox, config, container_id)
            req = launch.container_request(
                sandbox.config.pod, config.spec, config.image, container.layer, sandbox.config.dirs.files,
                config.identity, pause_pidfd=sandbox.pause.pidfd if sandbox.pause is not None else -1,
                share_pid=config.share_pid, argv=config.argv, env=config.env, stdout=stdout, stderr=stderr,
                stdin=sandbox.devnull, extra_ops=config.mounts,
                cgroup_ops=self._cgroup_mounts(sandbox, config.identity.privileged))
            oom_score_adj = sandbox.resources.oom_score_adj.get(config.spec.name) if sandbox.resources else None
            fields = sandbox.cgroups.spawn_fields(container.cgroup) if sandbox.cgroups else {}
            container.request = replace(req, **fields, oom_score_adj=oom_score_adj)
        except BaseException:
            self.remove_container(container)
            raise
        return container

    def _create_cgroup(self, sandbox: PodSandbox, config: ContainerConfig, container_id: str) -> Cgroup | None:
        """Its limits and device allow-list set before anything runs in it; a failure is the
        kubelet's CreateContainerError (the container is not started)."""
        if sandbox.cgroups is None:
            return None
        from sandbox.cgroups.fs import CgroupError
        from sandbox.pod.cgroups import DEFAULT_DEVICES  # runc's default allow-list

        limits = sandbox.resources.containers.get(config.spec.name) if sandbox.resources is not None else None
        try:
            return sandbox.cgroups.child(container_id, limits,
                                         devices=None if config.identity.privileged else DEFAULT_DEVICES)
        except CgroupError as e:
            raise ContainerStartError("CreateContainerError", e.op, e.errno or 0, e.path, config.spec.name) from e

    def _cgroup_mounts(self, sandbox: PodSandbox, writable: bool) -> list[MountOp]:
        """A container's /sys/fs/cgroup (read-write for a privileged one, as containerd mounts it)."""
        if sandbox.cgroups is None:
            return []
        from sandbox.rootfs.plan import cgroup_mounts

        return cgroup_mounts(sandbox.cgroups.mount_hierarchies(), writable=writable)

    def start_container(self, container: RuntimeContainer,
                        before_start: Callable[[int], None] | None = None) -> ChildProcess:
        """Spawn the instance; on failure it is removed (RemoveContainer) and the error raised."""
        sandbox = container.sandbox
        if sandbox.cgroups is not None:
            before_start = sandbox.cgroups.joiner(container.cgroup, before_start)
        try:
            self.pause_ready(sandbox)  # the instance joins pause's namespaces
            if sandbox.shim is not None:
                process: ChildProcess = sandbox.shim.spawn(container.request, before_start=before_start,
                                                           child_id=container.id,
                                                           log_path=str(container.config.log_path))
            else:
                process = sandbox.spawner.spawn(container.request, before_start=before_start)
        except SubPathError as e:
            self.remove_container(container)
            error = subpath_error(container.config.spec, e.path, created=e.op in SUBPATH_CREATE_OPS)
            # the detail goes to the runtime's log only, as the kubelet's klog line
            log.warning("%s: %s", error, e.describe().split(": ", 1)[-1])  # "open subPath 'x': ... (EXDEV)"
            raise error from e
        except BaseException:
            self.remove_container(container)
            raise
        container.process, container.request = process, None
        ref = ProcessRef.of(process.pid)
        if ref is not None:
            sandbox.record(teardown.Process(ref.pid, ref.start_time))
        if container.log is not None:
            container.log.close_child_ends()
            for fd in container.log.read_fds():
                self.logs[fd] = container.log
                self.selector.register(fd, poller.EVENT_READ, ("log", None))
        return process

    def stop_container(self, container: RuntimeContainer, sig: int = signal.SIGKILL) -> None:
        """Signal the instance's main process (the caller's timer escalates to SIGKILL)."""
        if container.process is not None:
            container.process.send_signal(sig)

    def remove_container(self, container: RuntimeContainer) -> int:
        """Release an instance that has exited (or never started): its cgroup (what still runs
        there is killed; its OOM kill count is returned and kept), its layer, a log that never
        got a reader. Its pidfd is the caller's to close."""
        sandbox = container.sandbox
        kills = 0
        if container.cgroup is not None and sandbox.cgroups is not None:
            stats = sandbox.cgroups.release(container.cgroup)
            kills = stats.oom_kills if stats is not None else 0
        container.cgroup = None
        container.oom_kills = kills
        if container.layer is not None:
            container.layer.remove()
            container.layer = None
        if container.log is not None and container.process is None:  # never started: nobody reads it
            container.log.close()
            container.log = None
        return kills

    def reopen_container_log(self, container: RuntimeContainer) -> None:
        """ReopenContainerLog: the caller renamed the file; the writer opens the path anew."""
        sandbox = container.sandbox
        if sandbox.shim is not None:
            sandbox.shim.shim.reopen(container.id)

    def on_log(self, fd: int) -> None:
        """A container's log pipe is readable (our own pipes: no shim)."""
        clog = self.logs.get(fd)
        if clog is None:  # closed earlier in the same batch of events
            return
        if not clog.on_readable(fd):
            self.selector.unregister(fd)
            del self.logs[fd]
            if clog.finished:
                clog.close()

    @property
    def exec_spawner(self) -> Spawner:
        """Probes, hooks and exec: the runtime's own children (they need not outlive it)."""
        return self.spawner
