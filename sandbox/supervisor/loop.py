"""The pod supervisor: one selector loop over pidfds, log pipes, a signal wakeup fd and a timer
heap. No polling and no sleeping: every exit is learnt the moment its pidfd turns readable.

It starts pause, then the init containers one at a time, then the app containers in order;
restarts them under restartPolicy with the kubelet's back-off; and on SIGINT/SIGTERM (or
`sandbox delete`) stops them as the kubelet deletes a pod: SIGTERM, SIGKILL after the grace
period, pause last, then tear-down.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path

from sandbox import events as ev
from sandbox import poller
from sandbox import status as st
from sandbox.config.sources import MissingSourceError
from sandbox.errors import ContainerStartError, ImagePullFailed
from sandbox.images.store import Image
from sandbox.log import get_logger
from sandbox.logs.stream import Terminal
from sandbox.paths import RootLayout
from sandbox.pod import teardown, volumes
from sandbox.pod.cgroups import paths_json
from sandbox.pod.sandbox import (
    HostNamespaces,
    SandboxDirs,
    pod_files_root,
    rewrite_hosts_file,
    write_pod_files,
)
from sandbox.process import launch
from sandbox.process.spawner import ChildProcess, Spawner
from sandbox.record import replace
from sandbox.runtime.service import RuntimeService
from sandbox.signals import signal
from sandbox.spec.model import Container, Pod
from sandbox.state.proc import ProcessRef
from sandbox.supervisor import snapshot
from sandbox.supervisor.backoff import BackoffConfig, CrashLoopBackOff, format_duration
from sandbox.supervisor.checks import CheckRunner
from sandbox.supervisor.container import ContainerLifecycle, PodContext, Slot, succeeded
from sandbox.supervisor.policy import should_restart
from sandbox.supervisor.timers import Timers

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sandbox.cgroups.driver import Cgroup
    from sandbox.config.sources import Sources
    from sandbox.logs.rotation import RotationPolicy
    from sandbox.pod.cgroups import CgroupPlan
    from sandbox.pod.network import NetworkOptions, PodNetwork
    from sandbox.pod.projection import ProjectedVolumes
    from sandbox.runtime.service import PodSandbox
    from sandbox.supervisor.eviction import Eviction

log = get_logger(__name__)

STOP_SIGNALS: dict[int, str] = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}  # and their names
LOG_ROTATION_PERIOD = 10.0  # seconds: the kubelet's container log monitor period
HELD_SPOKEN_FOR = 86400.0  # a held start's placeholder restart timer: far past any postStart (see _hold)


def _trace(step: str, line: str, **values: Any) -> None:
    """A `--trace` line of the kubelet role (sandbox/trace.py); one dictionary lookup when off."""
    if "sandbox.trace" in sys.modules:
        from sandbox.trace import emit

        emit("runtime", step, line, **values)



def shortened_deletion(deletion: tuple[float, int], grace: int, now: float) -> tuple[float, int] | None:
    """The deletion marks (the first delete's wall time, deletionGracePeriodSeconds) after another
    delete with `grace` (> 0), as the API server's BeforeDelete sets them, or None when it changes
    nothing: only a shorter period counts; deletionTimestamp (time + period) moves back by the
    difference but never into the past, where a period already over becomes 1 s from now."""
    at, period = deletion
    if grace >= period:
        return None
    if at + grace < now:
        return (now - 1, 1)
    return (at, grace)


def storage_limited(pod: Pod) -> bool:
    """Whether eviction.storage_limits(pod) may hold a limit, read without importing it (0.3 ms
    of every pod start): only an ephemeral-storage limit or an emptyDir's sizeLimit makes a pod
    measured. Never False for a pod that has one (a unit test compares)."""
    if any(v.empty_dir is not None and v.empty_dir.size_limit is not None for v in pod.spec.volumes):
        return True
    return any(c.resources is not None and "ephemeral-storage" in c.resources.limits
               for c in (*pod.spec.containers, *pod.spec.init_containers))

class PodSupervisor:
    def __init__(
        self,
        pod: Pod,
        uid: str,
        images: dict[str, Image],
        layout: RootLayout,
        state_dir: Path,
        spawner: Spawner,
        *,
        backoff: BackoffConfig,
        terminal: Terminal | None,
        probe_scale: float = 1.0,
        eviction_interval: float = 10.0,
        log_policy: RotationPolicy | None = None,
        qos_class: str = "",
        cgroups: CgroupPlan | None = None,
        allow_host_path: bool = True,
        sources: Sources | None = None,
        network: NetworkOptions | None = None,
        volume_images: dict[str, Image] | None = None,
        puller: Any = None,
        save_state: Callable[[dict[str, Any]], None],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        selector: poller.Selector | None = None,
        exit_watch: Any = None,
        shim_dir: Path | None = None,
    ) -> None:
        self.pod, self.uid, self.layout, self.spawner = pod, uid, layout, spawner
        self.namespace = pod.metadata.namespace or "default"
        self.name = pod.metadata.name or ""
        self.hostname = launch.pod_hostname(pod)
        self.host = HostNamespaces(network=bool(pod.spec.host_network), pid=bool(pod.spec.host_pid),
                                   ipc=bool(pod.spec.host_ipc))
        self.volumes_root = volumes.volumes_root(layout.lib, uid)
        self.dirs = SandboxDirs(state_dir, pod_files_root(self.volumes_root))
        self.log_dir = layout.pod_log_dir(self.namespace, self.name, uid)
        self.backoff = CrashLoopBackOff(backoff)
        self.probe_scale = probe_scale
        self.eviction_interval = eviction_interval  # the eviction manager's monitoring period
        self.terminal, self.save_state, self.clock, self.wall = terminal, save_state, clock, wall
        self.restart_policy = pod.spec.restart_policy or "Always"
        self.qos_class = qos_class  # status.qosClass, fixed for the pod's life
        self.cgroup_plan = cgroups  # None: no cgroups (a unit test's supervisor)
        self.allow_host_path = allow_host_path  # False: `sandbox run --no-host-path`
        self.projections: ProjectedVolumes | None = None  # configMap/secret/downwardAPI/projected volumes
        self.slots = [self._slot(c, images[c.name], init=True) for c in pod.spec.init_containers]
        self.slots += [self._slot(c, images[c.name], init=False) for c in pod.spec.containers]
        # Its own, or the node agent's one selector for every pod (agent/server.py: keys tagged by pod).
        self.selector = selector if selector is not None else poller.Selector()
        # The node agent's one taskstats listener for every pod (keyed by main pid; it drains it):
        # one per pod would copy every exit on the machine to each pod's socket.
        self.shared_exit_watch = exit_watch
        # The node agent's pods: pause and the containers are children of a per-pod shim in this
        # directory (process/shim.py), so they outlive the agent; None: our own children.
        self.shim_dir = shim_dir
        self.timers = Timers()
        self.runner = CheckRunner(self.selector, self.timers, clock)
        self.events = ev.EventRecorder()
        # The runtime role (sandbox/runtime/): the pod sandbox, container instances, their logs.
        self.runtime = RuntimeService(layout, spawner, self.selector)
        self.sandbox: PodSandbox | None = None
        self.deleting = False  # stopped from outside: Ctrl-C, SIGTERM, `sandbox delete`
        # (wall time, grace seconds) of that stop: the API server's deletionTimestamp and
        # deletionGracePeriodSeconds, which `get -o yaml` and `describe` show while it terminates
        self.deletion: tuple[float, int] | None = None
        self.stopping = False  # no container will be started again
        self.stop_deadline: float | None = None  # monotonic; the pod's grace period ends here
        self.start_error: ContainerStartError | None = None
        self.failure_message = ""
        self.failure_reason = ""  # status.reason of a failed pod, e.g. DeadlineExceeded
        self.created_at = wall()
        self.recreating = False  # the sandbox died: waiting for the containers to die too
        self._advancing = False
        self._advance_pending = False
        self._unsaved = False  # the status changed since the state file was last written
        self.runtime_ref = ProcessRef.of(os.getpid())
        self.conditions: list[st.PodCondition] = []
        self.phase = st.PodPhase.PENDING
        self.ctx = PodContext(pod, self.namespace, self.name, self.hostname, layout, self.dirs, self.log_dir,
                              terminal, self.runtime, self.selector, self.timers, self.runner, self.events, clock,
                              wall, probe_scale, log_policy=log_policy)
        self.journal = teardown.Journal(state_dir)
        self.ctx.journal = self.journal
        self.ctx.sources = sources  # ConfigMaps and Secrets env reads (config/sources.py)
        self.ctx.volume_images = dict(volume_images or {})  # `image` volumes: mounted read-only
        self.ctx.puller = puller
        self.image_backoff: dict[str, float] = {}  # container -> its current image pull back-off
        self.network: PodNetwork | None = None
        if network is not None:
            from sandbox.pod.network import PodNetwork

            self.network = PodNetwork(network, pod, uid, self.ctx.record, state_dir)
        self.lifecycle = ContainerLifecycle(self.ctx, changed=self._save, started=self._container_started,
                                            start_failed=self._start_failed,
                                            post_start_returned=lambda slot: self._advance())

    @property
    def pause(self) -> ChildProcess | None:
        return self.sandbox.pause if self.sandbox is not None else None

    @property
    def pause_ref(self) -> ProcessRef | None:
        return self.sandbox.pause_ref if self.sandbox is not None else None

    @property
    def pause_cgroup(self) -> Cgroup | None:
        return self.sandbox.pause_cgroup if self.sandbox is not None else None

    def _container_started(self, slot: Slot) -> None:
        if slot.sidecar:
            self._advance()  # the next init container may start once a sidecar has started

    def _slot(self, spec: Container, image: Image, *, init: bool) -> Slot:
        sidecar = init and spec.restart_policy == "Always"
        reason = st.default_waiting_reason(bool(self.pod.spec.init_containers))
        status = st.ContainerStatus(name=spec.name, image=spec.image or "", state=st.Waiting(reason), sidecar=sidecar,
                                    volume_mounts=st.volume_mount_statuses(spec.volume_mounts))
        return Slot(spec, image, init, sidecar, status)

    # --- running -------------------------------------------------------------------------------

    def run(self, started: Callable[[], None] | None = None) -> str:
        """Run the pod to its end; returns the final phase. Tears down whatever happens.
        `started` is called once the pod's start is done and flushed, before the loop first waits."""
        wakeup_r, wakeup_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        previous = self._install_signals(wakeup_r, wakeup_w)
        try:
            self.start()
            self.flush()
            if started is not None:
                started()
            while not self.done():
                self._wait_once(wakeup_r)
                if self.done():
                    # No write of the state now: the caller writes the ended record right after
                    # the tear-down (PodRun.end), and until then the runtime holds the pod's lock
                    # (a crash leaves the journal, which is what clean-up reads).
                    self._stop_pause_early()
                    break
                self.flush()
        finally:
            # Tear down while our handlers are still in place: a Ctrl-C now (the user's second or
            # third) only writes a byte to the wakeup pipe instead of interrupting the tear-down.
            try:
                self.finish()
            finally:
                self._restore_signals(previous)
                os.close(wakeup_r)
                os.close(wakeup_w)
        return self.phase

    # The steps of run(), for a loop that drives many pods (the node agent): start(), then
    # dispatch() for each of the pod's selector events and fire_timers() at its timers' deadline
    # until done(), flush() after each turn, then finish(), which always runs.

    def start(self) -> None:
        self._watch_exits()
        self._start_sandbox()
        self.timers.add(self.clock(), self._resync_projections)
        self._watch_storage()
        self._advance()
        if self.sandbox is not None:  # no container joined pause yet: its set-up is checked now
            self.runtime.pause_ready(self.sandbox)

    def stop(self, *, force: bool = False, grace: int | None = None) -> None:
        """Stop the pod from outside (Ctrl-C, a delete): a graceful stop, or with `force` SIGKILL
        now; `grace` (a delete's) replaces the pod's terminationGracePeriodSeconds. Again while
        deleting: a delete's grace only shortens what is left (as the API server takes a second
        delete), a stop without one (a second Ctrl-C) kills at once."""
        if self.deleting and grace and not force:
            self._shorten_grace(grace)
            return
        self._begin_stop(deleting=True, force=force or self.deleting or grace == 0, grace=grace)

    def finish(self) -> None:
        """Tear the pod down. The state file is not written here: both callers (run_pod, the node
        agent's end of a pod) write the ended record, or remove it, right after (PodRun.end)."""
        try:
            self._teardown()
        finally:
            shim = self.sandbox.shim if self.sandbox is not None else None
            if self.ctx.exit_watch is not None and shim is not None:
                self.ctx.exit_watch.remove_parent(shim.shim.pid)
            if self.ctx.exit_watch is not None and self.ctx.exit_watch is not self.shared_exit_watch:
                self.ctx.exit_watch.close()
            self.ctx.exit_watch = None

    def fire_timers(self) -> None:
        self.timers.fire_due(self.clock())

    def dispatch(self, kind: str, obj: Any, fd: int, mask: int) -> None:
        """One selector event of this pod (the key's data is (kind, obj))."""
        if kind == "log":
            self.runtime.on_log(fd)
        elif kind == "exit":
            self._on_exit(obj)
        elif kind == "pause":
            self._on_pause_exit()
        elif kind == "exitwatch":
            assert self.ctx.exit_watch is not None
            self.ctx.exit_watch.drain()
        elif kind == "check":
            self.runner.on_ready(obj, fd, mask)
        elif kind == "pulls":
            self._on_pulls()

    def _watch_exits(self) -> None:
        """With a PID namespace per container the kernel kills what a main process left behind as
        part of its exit: only a taskstats listener learns of them (process/exitwatch.py)."""
        if self.ctx.shared_pid:
            return  # the leftovers outlive the main process and are found directly
        if self.shared_exit_watch is not None:
            self.ctx.exit_watch = self.shared_exit_watch
            return
        from sandbox.process.exitwatch import ExitWatch

        self.ctx.exit_watch = ExitWatch.open()
        if self.ctx.exit_watch is not None:
            self.selector.register(self.ctx.exit_watch.fileno(), poller.EVENT_READ, ("exitwatch", None))

    def _install_signals(self, wakeup_r: int, wakeup_w: int) -> dict[int, Any]:
        """Signals arrive as bytes on a pipe (signal.set_wakeup_fd) and are handled in the loop."""
        self.selector.register(wakeup_r, poller.EVENT_READ, ("signal", None))
        previous: dict[int, Any] = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}
        previous[-1] = signal.set_wakeup_fd(wakeup_w, warn_on_full_buffer=False)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        signal.set_wakeup_fd(previous.pop(-1))
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _wait_once(self, wakeup_r: int) -> None:
        deadline = self.timers.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - self.clock())
        for key, mask in self.selector.select(timeout):
            kind, obj = key.data
            if kind == "signal":
                self._on_signals(wakeup_r)
            else:
                self.dispatch(kind, obj, key.fd, mask)
        self.fire_timers()

    # --- the sandbox -----------------------------------------------------------------------------

    def _start_sandbox(self) -> None:
        self._save()  # intent first: a crash from here on leaves a record to clean up after
        self.flush()
        # The tear-down registry, before each object exists: a crash leaves all of them recorded.
        if self.network is not None:
            self.network.record_first()
        self.ctx.record(teardown.Directory(self.volumes_root, self.volumes_root.parent))
        self.ctx.record(teardown.Mount(self.dirs.files_root))
        # The kubelet's part first: the pod's files (hosts, hostname, resolv.conf; the notes are
        # its DNS events: MissingClusterDNS, ...) and volumes, mounted under volumesDir. A Memory
        # emptyDir's tmpfs is recorded through ctx.record before it is mounted.
        for note in write_pod_files(self.dirs, self.pod, self.uid, self.hostname, self.host, ()):
            self.ctx.event(None, note)
        memory_limit = self.cgroup_plan.resources.pod.memory_limit if self.cgroup_plan is not None else None
        self.ctx.volume_paths = volumes.create_volumes(self.pod, self.volumes_root, record=self.ctx.record,
                                                       memory_limit=memory_limit,
                                                       allow_host_path=self.allow_host_path)
        self.projections = None
        if self.pod.spec.volumes:  # no volume, no projection: pod/projection.py not imported (0.4 ms)
            from sandbox.pod import projection

            self.projections = projection.create_projected_volumes(self.pod, self.volumes_root, self.ctx.sources,
                                                                   self.ctx.record, str(self.layout.lib))
        if self.projections is not None:
            self.ctx.volume_paths.update(self.projections.ready)
            self.ctx.read_only_volumes = projection.read_only_volumes(self.pod)
        # Then the runtime's RunPodSandbox: the shim, the pod cgroup, pause, the network.
        from sandbox.runtime.service import PodSandboxConfig

        config = PodSandboxConfig(self.pod, self.uid, self.hostname, self.host, launch.pod_sysctls(self.pod),
                                  self.dirs, self.journal, self.cgroup_plan, self.network, self.shim_dir,
                                  self.terminal, self.ctx.log_policy)
        try:
            self.runtime.run_pod_sandbox(config, wait=False)  # the first container's start waits
        finally:  # a sandbox that failed half-way is torn down by the end of the loop
            self.sandbox = self.ctx.sandbox = self.runtime.sandboxes.get(self.uid)
        if self.cgroup_plan is not None and self.cgroup_plan.resources.pids_capped:
            self.ctx.event(None, ev.pid_limit_capped(self.cgroup_plan.resources.pod.pids_max))
        self._sandbox_started()
        self._watch_shim_children()
        self._rotate_logs_later()
        deadline = self.pod.spec.active_deadline_seconds
        if deadline:
            self.timers.add(self.clock() + deadline, self._deadline_exceeded)
        self._save()

    def _sandbox_started(self) -> None:
        """Pause runs (first, or again in a re-created sandbox): watch it, and put the pod's IPs
        in its hosts file and downward API."""
        assert self.sandbox is not None and self.sandbox.pause is not None
        pause = self.sandbox.pause
        self.selector.register(pause.pidfd, poller.EVENT_READ, ("pause", None))
        log.info("pod %s/%s: pause is pid %d", self.namespace, self.name, pause.pid)
        addresses = self.sandbox.addresses
        if addresses is not None and addresses != self.ctx.addresses:
            self.ctx.addresses = addresses
            if addresses.pod_ips and not self.host.network:
                rewrite_hosts_file(self.dirs, self.pod, addresses.pod_ips)

    def _watch_shim_children(self) -> None:
        """The main processes are the shim's children: the taskstats listener must pass them."""
        shim = self.sandbox.shim if self.sandbox is not None else None
        if self.ctx.exit_watch is not None and shim is not None:
            self.ctx.exit_watch.add_parent(shim.shim.pid)

    def _rotate_logs_later(self) -> None:
        """A shim writes the logs; rotating them is ours (the kubelet's container log manager:
        a size check every 10 s, rename, then ReopenContainerLog)."""
        if self.sandbox is None or self.sandbox.shim is None:
            return
        policy = self.ctx.log_policy
        if policy is None:
            from sandbox.logs.rotation import RotationPolicy

            policy = self.ctx.log_policy = RotationPolicy()
        if policy.rotates:
            self.timers.add(self.clock() + LOG_ROTATION_PERIOD, self._rotate_logs)

    def _rotate_logs(self) -> None:
        from sandbox.logs.stream import rotate_file

        policy = self.ctx.log_policy
        if policy is None or self.stopping:
            return
        for slot in self._running():
            path = slot.log_path
            try:
                if path is None or slot.runtime is None or os.stat(path).st_size <= policy.max_size:
                    continue
                rotate_file(path, policy, self.wall())
                self.runtime.reopen_container_log(slot.runtime)
            except OSError as e:
                log.warning("pod %s/%s: cannot rotate the log of %s: %s", self.namespace, self.name, slot.name, e)
        self._rotate_logs_later()

    def _deadline_exceeded(self) -> None:
        """activeDeadlineSeconds: the kubelet fails the pod and kills its containers (with grace)."""
        if self.stopping:
            return
        log.warning("pod %s/%s: active longer than activeDeadlineSeconds (%ds), stopping it",
                    self.namespace, self.name, self.pod.spec.active_deadline_seconds)
        self.failure_reason = "DeadlineExceeded"
        self.ctx.event(None, ev.deadline_exceeded())
        self.failure_message = "Pod was active on the node longer than the specified deadline"
        self._begin_stop(deleting=False, force=False)

    def _resync_projections(self) -> None:
        """The kubelet's periodic volume sync for configMap, secret, downwardAPI and projected
        volumes (pod/projection.py): a changed object reaches the running pod through the ..data
        swap; a volume that could not be made (missing object or key) is retried, with a
        FailedMount event each time, and the pod's containers start once none is missing."""
        projections = getattr(self, "projections", None)  # set in _start_sandbox, if any volume
        if projections is None or self.stopping:
            return
        from sandbox.pod.projection import RESYNC_PERIOD, failed_mount

        was_waiting = bool(projections.waiting)
        result = projections.sync(self.pod)
        self.ctx.volume_paths.update(result.ready)
        for message in result.failed.values():
            self.ctx.event(None, failed_mount(message))
        if result.updated:
            log.info("pod %s/%s: volumes updated: %s", self.namespace, self.name, ", ".join(result.updated))
        if was_waiting and not projections.waiting:
            self._advance()
        elif result.failed:
            self._save()  # the events, for describe
        self.timers.add(self.clock() + getattr(self, "volume_resync", RESYNC_PERIOD), self._resync_projections)

    def _watch_storage(self) -> None:
        """The eviction manager's local storage checks (supervisor/eviction.py), once per
        `eviction_interval`; a pod without an ephemeral-storage limit or emptyDir sizeLimit gets
        no timer and is never measured."""
        if not storage_limited(self.pod):
            return
        from sandbox.supervisor import eviction

        limits = eviction.storage_limits(self.pod)
        if not limits.any:
            return

        def check() -> None:
            if self.stopping:
                return
            if not self.recreating:  # its containers are being killed with their sandbox
                usage = eviction.measure(self.slots, self.log_dir, self.ctx.volume_paths, limits,
                                         Path(self.dirs.files.hosts))
                found = eviction.verdict(usage, limits)
                if found is not None:
                    self._evict(found)
                    return
            self.timers.add(self.clock() + self.eviction_interval, check)

        self.timers.add(self.clock() + self.eviction_interval, check)

    def _evict(self, found: Eviction) -> None:
        """evictPod: a Warning event on the pod, the pod Failed with status.reason Evicted, and every
        container stopped with the eviction's 1 s grace (preStop within it, SIGKILL no sooner than
        killContainer's 2 s minimum) and never restarted, whatever the restartPolicy."""
        from sandbox.supervisor import eviction

        log.warning("pod %s/%s: evicted: %s", self.namespace, self.name, found.message.strip())
        self.ctx.event(None, ev.evicted(found.message))
        self.failure_reason, self.failure_message = found.reason, found.message
        self.stop_deadline = self.clock() + eviction.GRACE_SECONDS
        self._begin_stop(deleting=False, force=False)
        self._save()

    def _on_pause_exit(self) -> None:
        """A dead sandbox (pause killed, its namespaces gone): as the kubelet's computePodActions,
        kill every container, then make a new sandbox (attempt + 1) and run the pod again, init
        containers included, except under restartPolicy Never once containers have run."""
        assert self.sandbox is not None and self.pause is not None
        if self.pause.pidfd >= 0:  # a re-adopted pause that died while no agent ran has none
            self.selector.unregister(self.pause.pidfd)
        self.pause.poll()
        self.runtime.acknowledge_exit(self.sandbox, self.pause)
        if self.stopping or self.recreating:
            return
        log.warning("pod %s/%s: the pod sandbox (pause, pid %d) died; killing the containers and "
                    "re-creating it", self.namespace, self.name, self.pause.pid)
        self.ctx.event(None, ev.sandbox_changed())
        self.recreating = True
        for slot in self.slots:
            self.timers.cancel(slot.restart_timer)
            slot.restart_timer, slot.held = None, False
        self._kill_remaining()
        self._save()
        if not self._running():
            self._recreate_sandbox()

    def _recreate_sandbox(self) -> None:
        self.recreating = False
        assert self.pause is not None
        self.pause.close()
        if self.restart_policy == "Never" and any(s.started_once for s in self.slots):
            self.failure_message = "the pod sandbox died and restartPolicy is Never"
            self._begin_stop(deleting=False, force=True)
            return
        self.ctx.attempt += 1
        for slot in self.slots:
            # OnFailure: a container that already succeeded is not run again.
            if not slot.init and self.restart_policy == "OnFailure" and succeeded(slot.status):
                slot.attempt = self.ctx.attempt
        assert self.sandbox is not None
        self.runtime.start_pause(self.sandbox, wait=False)
        self._sandbox_started()
        self._advance()
        self.runtime.pause_ready(self.sandbox)  # as in start()
        self._save()

    # --- starting containers ---------------------------------------------------------------------

    def _advance(self) -> None:
        """Start whatever the pod's sequence allows now, then the starts held while a container
        was inside startContainer (the kubelet's SyncPod goes on with the containers it had to
        start; the next sync restarts the others). Re-entrant calls (a sidecar that starts at
        once asks for the next step from inside _start) are folded into one more pass."""
        if self._advancing:
            self._advance_pending = True
            return
        self._advancing = True
        try:
            self._advance_pending = True
            while self._advance_pending and not self.stopping:
                self._advance_pending = False
                self._advance_once()
                self._release_held()
        finally:
            self._advancing = False

    def _advance_once(self) -> None:
        """Init containers one at a time: a plain one must exit 0, a sidecar (restartPolicy Always)
        must be started (postStart done, startup probe passed); then every app container."""
        if self.projections is not None and self.projections.waiting:
            return  # the kubelet starts no container before every volume of the pod is mounted
        if self._busy():
            return  # advanced again once that start is over (postStart returned, or its instance exited)
        initialized = any(s.attempt == self.ctx.attempt for s in self.slots if not s.init)
        for slot in self.slots:
            if not slot.init or initialized:
                break
            if slot.attempt != self.ctx.attempt:
                self.lifecycle.start(slot)
                return
            if (slot.sidecar and slot.status.started) or (not slot.sidecar and succeeded(slot.status)):
                continue
            return  # still running, starting, or waiting to restart
        for slot in self.slots:
            if slot.init:
                continue
            if self._busy():
                # the kubelet's startContainer runs postStart synchronously: the containers after
                # one with a hook start once it has returned (post_start_returned advances again)
                return
            if slot.attempt != self.ctx.attempt and not self.stopping:
                self.lifecycle.start(slot)

    def _busy(self) -> bool:
        """A container is inside the kubelet's startContainer (its postStart hook runs, or the
        instance a failed hook killed has not exited): the pod worker starts nothing else."""
        return any(s.starting for s in self.slots)

    def _worker_busy(self) -> bool:
        """The kubelet's pod worker is inside a startContainer: a postStart (_busy), or an image
        pull, which EnsureImageExists does inside it too (our pulls run in worker threads; a later
        container's first start waits for an earlier one's pull through the puller's queue)."""
        puller = self.ctx.puller
        pulling = puller is not None and puller.workers is not None and bool(puller.workers.running)
        return pulling or self._busy()

    def _start(self, slot: Slot) -> None:
        """A restart (or a start a pull or back-off let through): now, or once no container is
        inside startContainer (_hold)."""
        if self._worker_busy():
            self._hold(slot)
        else:
            self.lifecycle.start(slot)

    def _hold(self, slot: Slot) -> None:
        """The start waits for the pod worker (_release_held, in the pod's order). A placeholder
        restart timer that never acts marks it as a start still to come, as a pull's does: the
        restartPolicy Never/OnFailure "every app container finished" check and the stop's
        "last state again" both count it."""
        log.info("pod %s/%s: start of %s waits for another container's start (postStart, pull)", self.namespace,
                 self.name, slot.name)
        _trace("hold", f"{slot.name}: start held while another container starts", container=slot.name)
        slot.held = True
        if isinstance(slot.status.state, st.Terminated):
            # exited and not restarted yet: the kubelet shows that exit as the state and the one
            # before it as lastState (the start makes the exit lastState again: _release_held)
            slot.status = replace(slot.status, last_state=slot.previous_termination)
        if slot.restart_timer is None:
            slot.restart_timer = self.timers.add(self.clock() + HELD_SPOKEN_FOR, lambda: None)

    def _release_held(self) -> None:
        """The starts held while a container was inside startContainer, in the pod's order, one
        at a time (each may hold the pod worker again)."""
        for slot in self.slots:
            if self._worker_busy() or self.stopping or self.recreating:
                return
            if not slot.held:
                continue
            slot.held = False
            self.timers.cancel(slot.restart_timer)
            slot.restart_timer = None
            if isinstance(slot.status.state, st.Terminated):
                slot.status = replace(slot.status, last_state=slot.status.state)
            self.lifecycle.start(slot)

    def _start_failed(self, slot: Slot, error: ContainerStartError, restart_count: int) -> None:
        """A container that cannot be started ends the pod: `sandbox run` reports it and exits 1
        rather than crash-looping in the foreground (decision recorded in the issue's note). Except
        a ConfigMap, Secret or key its env needs: that one waits for the object (`sandbox apply`)."""
        error.container = slot.name
        if isinstance(error, ImagePullFailed):
            self._wait_for_image(slot, error)
            return
        self.ctx.event(slot, ev.failed(error.describe()))
        if isinstance(error, MissingSourceError) or error.errno == errno.ETIMEDOUT:
            # A start past the spawn deadline (a hung filesystem under its workingDir or a volume)
            # is no fault of the spec: tried again as a failed create is, its siblings run on.
            self._retry_on_sync(slot, error, restart_count)
            return
        now = self.wall()
        if error.reason == "ContainerCannotRun":
            state: st.ContainerStatus | Any = st.Terminated(128, error.reason, now, now, error.describe())
        else:
            state = st.Waiting(error.reason, error.describe())
        slot.status = replace(slot.status, state=state, restart_count=restart_count, ready=False)
        slot.started_once, slot.attempt = True, self.ctx.attempt
        self.start_error = error
        self.failure_message = error.describe()
        self._begin_stop(deleting=False, force=True)

    def _wait_for_image(self, slot: Slot, error: ImagePullFailed) -> None:
        """The kubelet's image back-off: the container waits in ErrImagePull, then in
        ImagePullBackOff until the back-off (the crash-loop one's initial period, doubling to its
        cap) lets the pull be tried again; the pod stays Pending meanwhile, whatever its
        restartPolicy. ErrImageNeverPull (Never, no such image) has no pull to back off from: the
        store is looked at again at the pod worker's re-sync pace (our initial back-off)."""
        slot.status = replace(slot.status, state=st.Waiting(error.reason, error.describe()), ready=False)
        slot.attempt = self.ctx.attempt  # tried in this sandbox attempt: _advance leaves it to the timer
        if error.reason == "ErrImageNeverPull":
            self.ctx.event(slot, ev.never_pull(error.image))
            self.ctx.event(slot, ev.failed(error.reason))
            if not self.stopping:
                slot.restart_timer = self.timers.add(self.clock() + self.backoff.config.initial,
                                                     lambda: self._restart_due(slot))
            self._save()
            return
        self.ctx.event(slot, ev.image_pull_failed(error.image, error.describe()))
        self.ctx.event(slot, ev.failed("ErrImagePull"))
        delay = self.image_backoff.get(slot.name, self.backoff.config.initial)
        self.image_backoff[slot.name] = min(delay * 2, self.backoff.config.cap)
        if self.stopping:
            return

        def backing_off() -> None:
            if slot.restart_timer is None or self.stopping:
                return
            slot.status = replace(slot.status, state=st.Waiting(
                "ImagePullBackOff", f'Back-off pulling image "{error.image}": ErrImagePull: {error.describe()}'))
            self.ctx.event(slot, ev.image_back_off(error.image))
            self.ctx.event(slot, ev.failed("ImagePullBackOff"))
            self._save()

        self.timers.add(self.clock() + min(1.0, delay / 2), backing_off)
        slot.restart_timer = self.timers.add(self.clock() + delay, lambda: self._restart_due(slot))
        self._save()

    def _on_pulls(self) -> None:
        """Pulls that ended in their worker threads (supervisor/pulls.py): in the pod's order, each
        of those containers' start goes on (taking the pull's result: its image, or ErrImagePull),
        then each start that waited for an earlier container's pull (the kubelet starts a pod's
        containers one after another). While the sandbox is being re-created they wait for the
        new sandbox's starts."""
        puller = self.ctx.puller
        finished = set(puller.collect())
        for slot in self.slots:
            if slot.name not in finished and slot.name not in puller.queued:
                continue
            puller.queued.discard(slot.name)
            self.timers.cancel(slot.restart_timer)  # the placeholder of container._await_pull
            slot.restart_timer = None
            if not self.stopping and not self.recreating:
                self._start(slot)
        if not self.stopping and not self.recreating:
            self._advance()  # the starts held while the pulls ran

    def _retry_on_sync(self, slot: Slot, error: ContainerStartError, restart_count: int) -> None:
        """The kubelet's pod worker re-syncs a pod whose sync failed after its back-off period (10 s,
        our initial crash-loop back-off): the container stays Waiting in CreateContainerConfigError
        (or CreateContainerError after a start that timed out), with no restart counted, and starts
        on the first try that finds the object (or that does not hang)."""
        slot.status = replace(slot.status, state=st.Waiting(error.reason, error.describe()),
                              restart_count=restart_count, ready=False)
        slot.attempt = self.ctx.attempt  # tried in this sandbox attempt: _advance leaves it to the timer
        if not self.stopping:
            slot.restart_timer = self.timers.add(self.clock() + self.backoff.config.initial,
                                                 lambda: self._restart_due(slot))
        self._save()

    # --- exits -----------------------------------------------------------------------------------

    def _on_exit(self, slot: Slot) -> None:
        process = slot.process
        assert process is not None
        info = process.poll()
        if info is None:
            return
        _trace("exit", f"waitid(P_PIDFD, {slot.name} pid {process.pid}) -> exit code {info.exit_code}",
               container=slot.name, pid=process.pid, exitCode=info.exit_code)
        was_starting = slot.starting  # killed for a failed postStart: the pod worker is free again
        term = self.lifecycle.finish(slot, info)
        if was_starting and not self.stopping and not self.recreating:
            self._advance()
        if self.recreating:
            slot.status = replace(slot.status, last_state=term)
            if not self._running():
                self._recreate_sandbox()
        elif not self.stopping:
            self._after_exit(slot, term)
        elif self.stop_deadline is not None:
            self._stop_next()
        self._save()
        if self.sandbox is not None:
            if self.sandbox.shim is not None:  # recorded (written now): the shim may forget it
                self.flush()
            self.runtime.acknowledge_exit(self.sandbox, process)

    def _after_exit(self, slot: Slot, term: st.Terminated) -> None:
        if slot.init and not slot.sidecar and term.exit_code == 0:
            self._advance()
            return
        if not should_restart(self.restart_policy, term.exit_code, sidecar=slot.sidecar):
            if slot.init and not slot.sidecar:
                # Failed by the kubelet's getPhase alone (a failed init container under Never),
                # which writes no status.message for it
                self._begin_stop(deleting=False, force=False)
            elif self._apps_finished():
                self._begin_stop(deleting=False, force=False)
            return
        key = f"{self.uid}/{slot.name}"
        when = self.backoff.restart_at(key, self.clock())
        delay = when - self.clock()
        slot.previous_termination = slot.status.last_state
        slot.status = replace(slot.status, last_state=term)
        _trace("restart", f"{slot.name}: back-off {max(delay, 0.0):g}s, restart {slot.status.restart_count + 1}",
               container=slot.name, delay=max(delay, 0.0))
        if delay <= 0:
            self._start(slot)
            return
        message = (f"back-off {format_duration(self.backoff.delay(key))} restarting failed "
                   f"container={slot.name} pod={self.name}_{self.namespace}({self.uid})")
        slot.status = replace(slot.status, state=st.Waiting("CrashLoopBackOff", message))
        self.ctx.event(slot, ev.back_off(slot.name, self.name, self.namespace, self.uid))
        slot.restart_timer = self.timers.add(when, lambda: self._restart_due(slot))

    def _restart_due(self, slot: Slot) -> None:
        slot.restart_timer = None
        if not self.stopping:
            self._start(slot)

    def _apps_finished(self) -> bool:
        return all(s.process is None and s.restart_timer is None for s in self.slots if not s.init)

    # --- stopping --------------------------------------------------------------------------------

    def _on_signals(self, wakeup_r: int) -> None:
        try:
            data = os.read(wakeup_r, 64)
        except BlockingIOError:
            return
        for signo in data:
            if signo in STOP_SIGNALS:
                grace = self._requested_grace() if signo == signal.SIGTERM else None  # a `sandbox delete`'s
                log.info("pod %s/%s: got %s, stopping", self.namespace, self.name, STOP_SIGNALS[signo])
                self.stop(grace=grace)

    def _requested_grace(self) -> int | None:
        """The grace period `sandbox delete --grace-period/--now/--force` wrote beside the state
        file before its SIGTERM, taken once; None: the pod's own."""
        from sandbox.state.store import DELETE_GRACE_FILE

        path = self.dirs.root / DELETE_GRACE_FILE
        try:
            text = path.read_text()
            path.unlink()
            return max(int(text), 0)
        except (OSError, ValueError):
            return None

    def _begin_stop(self, *, deleting: bool, force: bool, grace: int | None = None) -> None:
        """Stop the pod: every container gets preStop and SIGTERM in the kubelet's order, SIGKILL
        at the grace deadline; forced (a second Ctrl-C, a start error) means SIGKILL now. `grace`:
        a delete's own grace period (the API server's deletionGracePeriodSeconds), else the pod's."""
        self.deleting = self.deleting or deleting
        self.stopping = True
        seconds = float(grace) if grace is not None and deleting else self.ctx.grace()
        if deleting and (self.deletion is None or (force and self.deletion[1])):
            # a second, forced stop (Ctrl-C again) shortens the grace to 0, as a forced delete does
            self.deletion = (self.wall(), 0 if force else int(seconds))
        for slot in self.slots:
            shown = slot.held and isinstance(slot.status.state, st.Terminated)  # already as _hold left it
            if slot.restart_timer is not None and slot.status.last_state is not None and not shown:
                # It will not be restarted: as the kubelet shows a container it no longer restarts,
                # its state is its last termination again, not CrashLoopBackOff.
                slot.status = replace(slot.status, state=slot.status.last_state,
                                      last_state=slot.previous_termination)
            self.timers.cancel(slot.restart_timer)
            slot.restart_timer, slot.held = None, False
            if self.deleting and slot.probes is not None:
                slot.probes.pod_deleting(self.clock())  # liveness/startup can no longer kill
        # Published now, not at the first exit: `get pods` shows Terminating (and the Killing
        # events) for the whole grace period, however long the containers take to die.
        self._save()
        if force:
            self._kill_remaining()
            return
        if self.stop_deadline is None:
            self.stop_deadline = self.clock() + seconds
        self._stop_next()

    def _shorten_grace(self, grace: int) -> None:
        """A delete of a pod already being deleted: the API server's new deletion marks
        (shortened_deletion), and the kubelet kills with the new period from now: each container
        still in its preStop gets its SIGTERM now, and every SIGKILL comes at the new end (never
        sooner than 2 s after that SIGTERM). A longer or equal one changes nothing."""
        wall_now = self.wall()
        marks = shortened_deletion(self.deletion or (wall_now, int(self.ctx.grace())), grace, wall_now)
        if marks is None:
            return
        self.deletion = marks
        # The kubelet restarts the kill with the new period; an end later than the one already
        # set is not taken (a shorter grace never makes a container live longer).
        end = self.clock() + marks[1]
        if self.stop_deadline is None or end < self.stop_deadline:
            self.stop_deadline = end
        for slot in self._running():
            self.lifecycle.shorten(slot, self.stop_deadline)
        self._save()

    def _stop_next(self) -> None:
        """The kubelet's order: every regular (and plain init) container at once; sidecars only
        after those have exited, one at a time in reverse declaration order. The time spent
        waiting for a turn comes out of the same grace period."""
        assert self.stop_deadline is not None
        running = self._running()
        first_wave = [s for s in running if not s.sidecar]
        wave = first_wave or [s for s in reversed(self.slots) if s.sidecar and s.process is not None][:1]
        for slot in wave:
            self.lifecycle.stop(slot, self.stop_deadline)

    def _kill_remaining(self) -> None:
        for slot in self._running():
            self.lifecycle.kill(slot)

    def _running(self) -> list[Slot]:
        return [s for s in self.slots if s.process is not None]

    def done(self) -> bool:
        return self.stopping and not self._running()

    # --- state and tear-down ---------------------------------------------------------------------

    def _stop_pause_early(self) -> None:
        """The pod is done: pause is killed now (the kubelet's StopPodSandbox), so the kernel tears
        its namespaces down on the other CPU while the last state is written and the tear-down
        begins; the journal's undo then finds it dead. Not with CNI, whose DEL wants the network
        namespace still there."""
        pause = self.pause
        if pause is None or pause.exit is not None or (self.network is not None and self.network.mode == "cni"):
            return
        if pause.pidfd >= 0:
            self.selector.unregister(pause.pidfd)  # its exit is no dead sandbox to re-create
        pause.send_signal(signal.SIGKILL)

    def _teardown(self) -> None:
        """The runtime's RemovePodSandbox: the pod's kernel objects through the one tear-down
        (pod/teardown.py: reverse order of creation, tolerant of what is already gone), then
        the processes reaped and every fd released."""
        self.runner.cancel_all()
        for slot in self.slots:
            if slot.probes is not None:
                slot.probes.stop()
            self.lifecycle.unpin(slot)
        containers = [slot.runtime for slot in self._running() if slot.runtime is not None]
        self.runtime.remove_pod_sandbox(self.sandbox, self.journal, self.layout.lib, containers)
        for slot in self.slots:
            slot.process = None
            slot.runtime = None
        self.selector.close()
        # What the pod ends with: a container that never started is terminated now, as the
        # kubelet's status manager ends it (TerminatePod), not left waiting in a finished pod.
        # Except the one whose start error ended it (runAsNonRoot, CreateContainerError): the
        # kubelet would leave that one waiting and retry; here it keeps the reason the pod failed.
        failed = self.start_error.container if self.start_error is not None else None
        init_slots, app_slots = self._slots_by_kind()
        init, app = st.terminate_statuses([s.status for s in init_slots], [s.status for s in app_slots])
        for slot, status in zip(init_slots + app_slots, init + app):
            if slot.name != failed:
                slot.status = status
        self._save()

    def _slots_by_kind(self) -> tuple[list[Slot], list[Slot]]:
        return [s for s in self.slots if s.init], [s for s in self.slots if not s.init]

    def statuses(self) -> tuple[list[st.ContainerStatus], list[st.ContainerStatus]]:
        init, app = self._slots_by_kind()
        return [s.status for s in init], [s.status for s in app]

    def _save(self) -> None:
        """A status changed: the phase and conditions follow now; the state file is written by
        the next `flush`, once per turn of the loop (a container's start changes the status
        three or four times in one turn; each write costs about 1 ms)."""
        init, app = self.statuses()
        self.phase = snapshot.next_phase(self.phase, self.restart_policy, init, app, deleting=self.deleting,
                                         done=self.done(), failed=bool(self.failure_message))
        sandbox_ready = self.sandbox is not None and self.sandbox.ready
        self.conditions = st.pod_conditions(self.phase, init, app, sandbox_ready=sandbox_ready,
                                            previous=self.conditions, now=self.wall())
        self._unsaved = True

    @property
    def unsaved(self) -> bool:
        """A status change waits for `flush` (the node agent skips the call otherwise)."""
        return self._unsaved

    def flush(self) -> None:
        """Write the state file if the status changed since the last write."""
        if self._unsaved:
            self._unsaved = False
            self.save_state(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """The state file: what `get`, `describe`, `exec`, `logs` and `delete` read, and what a
        later clean-up needs (processes by pid and start time, layers, volumes)."""
        init, app = self.statuses()
        return {
            "version": 1,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "createdAt": self.created_at,
            "logDir": str(self.log_dir),
            "volumesDir": str(self.volumes_root),
            "runtime": self.runtime_ref.to_json() if self.runtime_ref else None,
            "pause": self.pause_ref.to_json() if self.pause_ref and self.pause and self.pause.exit is None else None,
            "containers": {s.name: self._slot_record(s) for s in self.slots},
            "cgroup": self.sandbox.cgroups.to_json() if self.sandbox and self.sandbox.cgroups else None,
            "pauseCgroup": paths_json(self.pause_cgroup),
            "status": snapshot.status_json(self.phase, self.conditions, self.created_at, init, app,
                                           self.failure_message, self.failure_reason, self.qos_class,
                                           self.ctx.addresses),
            "summary": snapshot.summary(self.phase, self.conditions, init, app,
                                        deleting=self.deleting and not self.done()),
            "events": self.events.to_json(),
            "finished": self.done(),
            "deletion": {"at": self.deletion[0], "graceSeconds": self.deletion[1]} if self.deletion else None,
            # What a node agent needs to re-adopt the pod after a crash (supervisor/adopt.py).
            "attempt": self.ctx.attempt,
            "volumePaths": {name: str(path) for name, path in self.ctx.volume_paths.items()},
            "readOnlyVolumes": sorted(self.ctx.read_only_volumes),
            "addresses": ({"podIPs": list(self.ctx.addresses.pod_ips), "hostIPs": list(self.ctx.addresses.host_ips)}
                          if self.ctx.addresses is not None else None),
        }

    def _slot_record(self, slot: Slot) -> dict[str, Any]:
        running = slot.process is not None and slot.ref is not None
        return {
            "process": slot.ref.to_json() if running and slot.ref else None,
            "env": slot.env,
            "cwd": launch.working_dir(slot.spec, slot.image),
            "caps": slot.identity.caps,
            "identity": slot.identity.to_json(),  # what `sandbox exec` runs as
            "image": slot.image.name,
            "layer": str(slot.runtime.layer.path) if slot.runtime and slot.runtime.layer else None,
            "cgroup": paths_json(slot.runtime.cgroup if slot.runtime else None),
            "oomKills": slot.oom_kills,
            "messageFile": str(slot.message_file) if slot.message_file else None,
        }

