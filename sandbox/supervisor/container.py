"""One container of the pod through the kubelet's steps, instance after instance:
start (writable layer, log, spawn, postStart), running (probes), stop (preStop, SIGTERM, SIGKILL
at the deadline) and exit (termination message, leftovers, clean-up).

The pod-level decisions (order of starts, restartPolicy and back-off, the pod's stop order, the
sandbox) stay with the supervisor in loop.py; this module reports back through two callbacks.
"""

from __future__ import annotations

import os

from sandbox import events as ev
from sandbox import poller
from sandbox import status as st
from sandbox.errors import ContainerStartError
from sandbox.log import get_logger
from sandbox.logs.stream import prune_instances
from sandbox.pod import volumes
from sandbox.process import confinement, launch
from sandbox.process.leftovers import command_of, kill_in_mount_ns, processes_in_mount_ns
from sandbox.process.request import Identity
from sandbox.record import Record, field, replace
from sandbox.rootfs.plan import MountOp, OpKind
from sandbox.runtime.service import membership
from sandbox.signals import signal
from sandbox.state.proc import ProcessRef
from sandbox.termination import limit_for_pod, prepare_message_file, read_termination_message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from sandbox.config.sources import Sources
    from sandbox.images.store import Image
    from sandbox.logs.rotation import RotationPolicy
    from sandbox.logs.stream import Terminal
    from sandbox.paths import RootLayout
    from sandbox.pod.sandbox import SandboxDirs
    from sandbox.pod.teardown import Journal, TornDown
    from sandbox.process.downward import Addresses
    from sandbox.process.exitwatch import ExitWatch
    from sandbox.process.spawner import ChildProcess, ExitInfo
    from sandbox.runtime.service import PodSandbox, RuntimeContainer, RuntimeService
    from sandbox.spec.model import Container, Pod
    from sandbox.supervisor.checks import CheckRun, CheckRunner
    from sandbox.supervisor.probes import CheckContext, ContainerProbes
    from sandbox.supervisor.timers import Timers

log = get_logger(__name__)

MIN_GRACE_SECONDS = 2.0  # the kubelet never gives a container less (minimumGracePeriodInSeconds)
PULL_SPOKEN_FOR = 86400.0  # a pull's placeholder restart timer: far past any pull (see _await_pull)


class Slot(Record, frozen=False):
    """Everything the supervisor knows about one container of the pod."""

    spec: Container
    image: Image
    init: bool  # an init container (plain, or a sidecar when `sidecar`)
    sidecar: bool
    status: st.ContainerStatus
    process: ChildProcess | None = None
    ref: ProcessRef | None = None
    runtime: RuntimeContainer | None = None  # the runtime's record of the current instance
    mnt_ns: str | None = None  # "mnt:[inode]" of the current instance's mount namespace
    mnt_ns_fd: int = -1  # held open so that inode is not reused while we still compare with it
    env: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    restart_timer: int | None = None
    previous_termination: st.Terminated | None = None  # lastState before the current one
    started_once: bool = False  # ever started (restartCount counts from the second start)
    attempt: int = -1  # the sandbox attempt it last started in
    stopping: bool = False  # the kubelet is stopping this instance (preStop, SIGTERM, SIGKILL)
    kill_timer: int | None = None
    signalled_at: float = 0.0  # monotonic: when the stopping instance was sent its stop signal
    hook_deadline_cut: bool = False  # its preStop runs on after a shortened grace signalled it
    hook: CheckRun | None = None  # postStart or preStop in flight
    # Inside the kubelet's startContainer, which holds the pod worker: from a start with a postStart
    # hook until the hook returned, or, when it failed, until the instance killed for it exited
    # (killContainer runs inside startContainer). No other container starts meanwhile.
    starting: bool = False
    held: bool = False  # a start that waits for another container's startContainer (loop._hold)
    probes: ContainerProbes | None = None
    message_file: Path | None = None
    started_at: float = 0.0  # wall clock of the current instance's exec
    log_path: Path | None = None
    identity: Identity = field(default_factory=Identity)  # the current instance's
    oom_kills: int = 0  # processes the OOM killer took, over every instance

    @property
    def name(self) -> str:
        return self.spec.name




def succeeded(cs: st.ContainerStatus) -> bool:
    return isinstance(cs.state, st.Terminated) and cs.state.exit_code == 0


def pod_ip(addresses: Addresses | None) -> str:
    """The pod's first IP, the kubelet's default target of httpGet and tcpSocket handlers; ""
    without a pod network (they target 127.0.0.1 inside the pod's namespace then)."""
    return addresses.pod_ips[0] if addresses is not None and addresses.pod_ips else ""


class PodContext(Record, frozen=False):
    """What a container instance needs from its pod: the pod's own facts and the supervisor's
    shared machinery (one selector, one timer heap, one check runner, one event recorder)."""

    pod: Pod
    namespace: str
    name: str
    hostname: str
    layout: RootLayout
    dirs: SandboxDirs
    log_dir: Path
    terminal: Terminal | None
    runtime: RuntimeService  # the runtime role (sandbox/runtime/): every kernel object goes through it
    selector: poller.Selector
    timers: Timers
    runner: CheckRunner
    events: ev.EventRecorder
    clock: Callable[[], float]
    wall: Callable[[], float]
    probe_scale: float = 1.0
    sandbox: PodSandbox | None = None  # the runtime's pod sandbox, once RunPodSandbox made it
    volume_paths: dict[str, Path] = field(default_factory=dict)
    attempt: int = 0  # the sandbox attempt containers start in now
    log_policy: RotationPolicy | None = None  # log rotation; None: the kubelet's defaults
    journal: Journal | None = None  # the pod's tear-down registry (sandbox/pod/teardown.py)
    exit_watch: ExitWatch | None = None  # taskstats listener for the foreground rule (own PID namespaces)
    read_only_volumes: set[str] = field(default_factory=set)  # mounted read-only whatever the mount says
    sources: Sources | None = None  # ConfigMaps and Secrets for env (None: a unit test's pod, refs left out)
    addresses: Addresses | None = None  # the pod's and node's IPs (downward API, probe targets)
    volume_images: dict[str, Image] = field(default_factory=dict)  # `image` volume name -> its image
    puller: Any = None  # supervisor/pulls.Puller: each start's image, pulled in worker threads

    def record(self, obj: TornDown) -> None:
        """Record what the pod is about to create, for the one tear-down (pod/teardown.py)."""
        if self.journal is not None:
            self.journal.add(obj)

    @property
    def pause_pidfd(self) -> int:
        pause = self.sandbox.pause if self.sandbox is not None else None
        return pause.pidfd if pause is not None else -1

    @property
    def shared_pid(self) -> bool:
        """Containers are not PID 1 of a namespace of their own: leftovers outlive a main process."""
        return bool(self.pod.spec.share_process_namespace or self.pod.spec.host_pid)

    def grace(self) -> float:
        seconds = self.pod.spec.termination_grace_period_seconds
        return float(seconds if seconds is not None else 30)

    def event(self, slot: Slot | None, note: tuple[str, str, str]) -> None:
        obj = ev.field_path(slot.name, slot.init) if slot is not None else ""
        self.events.record(note[0], note[1], note[2], obj, self.wall())


class ContainerLifecycle:
    def __init__(self, ctx: PodContext, *, changed: Callable[[], None], started: Callable[[Slot], None],
                 start_failed: Callable[[Slot, ContainerStartError, int], None],
                 post_start_returned: Callable[[Slot], None] | None = None) -> None:
        """`changed`: a status changed (save the state); `started`: a container has started
        (postStart done, startup probe passed); `start_failed`: it could not be started;
        `post_start_returned`: its postStart hook is over (the kubelet starts the next one then,
        or after a failed hook once the instance killed for it exited: `Slot.starting`)."""
        self.ctx = ctx
        self.changed, self.started, self.start_failed = changed, started, start_failed
        self.post_start_returned = post_start_returned

    # --- start ---------------------------------------------------------------------------------

    def start(self, slot: Slot) -> None:
        ctx = self.ctx
        slot.restart_timer, slot.held = None, False
        restart_count = slot.status.restart_count + (1 if slot.started_once else 0)
        if not self._pull(slot, restart_count):
            return
        # The kubelet keeps one dead instance per container: the new one's start removes the rest.
        prune_instances(ctx.log_dir / slot.name, restart_count)
        log_path = ctx.log_dir / slot.name / f"{restart_count}.log"
        pulled = ctx.puller.pulls.pop(slot.name, None) if ctx.puller is not None else None
        if pulled is not None:  # pulled (or, for Always, resolved) for this start: Pulling came first
            ctx.event(slot, ev.pulled_now(slot.spec.image or "", *pulled))
        else:
            ctx.event(slot, ev.pulled(slot.spec.image or slot.image.name))
        try:
            container, process, mnt_ns = self._create_and_start(slot, log_path)
        except ContainerStartError as e:
            self.start_failed(slot, e, restart_count)
            return
        container_id = container.id
        ctx.selector.register(process.pidfd, poller.EVENT_READ, ("exit", slot))
        slot.process, slot.runtime, slot.started_once, slot.log_path = process, container, True, log_path
        slot.attempt, slot.ref, slot.mnt_ns, slot.started_at = ctx.attempt, ProcessRef.of(process.pid), mnt_ns, ctx.wall()
        ctx.event(slot, ev.created(slot.name))
        ctx.event(slot, ev.started(slot.name))
        # The kubelet reports a container Running only once its postStart hook has returned; until
        # then it shows the default waiting state (PodInitializing in a pod with init containers).
        waiting = st.Waiting(st.default_waiting_reason(bool(ctx.pod.spec.init_containers)))
        slot.status = replace(slot.status, state=waiting, restart_count=restart_count,
                              container_id=f"sandbox://{container_id}", ready=False, started=False)
        log.info("pod %s/%s: started container %s (pid %d)", ctx.namespace, ctx.name, slot.name, process.pid)
        post_start = slot.spec.lifecycle.post_start if slot.spec.lifecycle else None
        if post_start is None:
            self._mark_running(slot)
        else:
            slot.starting = True
            # Exec hooks have no timeout (handlers.go); an http hook gets the probe default (1 s);
            # sleep counts its own seconds.
            timeout = float("inf") if post_start.exec else 1.0
            from sandbox.supervisor.probes import checks_for

            run = ctx.runner.start(checks_for(post_start, self._check_context(slot), timeout, hook=True),
                                   lambda outcome: self._post_start_done(slot, outcome))
            if not run.finished:  # a hook that ended at once (a port no container has) left it done
                slot.hook = run
        self.changed()

    def _pull(self, slot: Slot, restart_count: int) -> bool:
        """Ensure the image for this start under its imagePullPolicy (supervisor/pulls.py): True to
        go on now; False while its pull runs in a worker thread (the loop's `_on_pulls` starts the
        container again when the pull ends) or when there is no image to start with (the slot then
        waits in ErrImagePull or ErrImageNeverPull, tried again at the loop's back-off)."""
        from sandbox.errors import ImagePullFailed

        ctx, puller = self.ctx, self.ctx.puller
        if puller is None:  # a unit test's pod: its images are given
            return True
        puller.queued.discard(slot.name)
        if puller.pulling(slot.name):  # asked again (a new sandbox) while its pull still runs
            self._await_pull(slot)
            return False
        if puller.behind_a_pull(slot.name):  # its turn comes when that pull ends (loop._on_pulls)
            puller.queued.add(slot.name)
            self._await_pull(slot)
            return False
        try:
            image = puller.begin(slot.spec)
        except ImagePullFailed as e:
            self.start_failed(slot, e, restart_count)
            return False
        if image is None:  # the kubelet's Pulling event comes as the pull begins
            if puller.missing:  # the pod's event, before the pull as SyncPod sends it
                ctx.event(None, ev.failed_pull_secrets(puller.missing))
            ctx.event(slot, ev.pulling(slot.spec.image or ""))
            self._await_pull(slot)
            self.changed()
            return False
        slot.image = image  # its imageID reaches the status once a container of it exists
        return True

    def _await_pull(self, slot: Slot) -> None:
        """The slot waits for a pull's worker (its own, or an earlier container's): tried in this
        sandbox attempt (the loop's _advance leaves it alone), and spoken for by a restart timer
        that never acts (the pull's end cancels it): the loop counts a slot with a restart timer as
        one that will still start (restartPolicy Never's "every app container finished", the
        stop's waiting states)."""
        ctx, workers = self.ctx, self.ctx.puller.workers
        if workers is not None:
            try:
                ctx.selector.get_key(workers.fileno())
            except KeyError:  # the pod's first pull
                ctx.selector.register(workers.fileno(), poller.EVENT_READ, ("pulls", None))
        slot.attempt = ctx.attempt
        if slot.restart_timer is None:
            slot.restart_timer = ctx.timers.add(ctx.clock() + PULL_SPOKEN_FOR, lambda: None)

    def _create_and_start(self, slot: Slot, log_path: Path) -> tuple[RuntimeContainer, ChildProcess, str | None]:
        """The kubelet's ContainerConfig (env, command, identity, the volume and termination-message
        mounts), then the runtime's CreateContainer and StartContainer."""
        from sandbox.runtime.service import ContainerConfig

        ctx = self.ctx
        assert ctx.sandbox is not None
        skipped: list[str] = []  # envFrom keys that are no env names: the kubelet's event on the pod
        kubelet_env: dict[str, str] = {}  # what a subPathExpr is expanded from
        slot.env = launch.container_env(slot.spec, slot.image, ctx.hostname, ctx.pod, ctx.sources, skipped,
                                        kubelet_env, ctx.addresses, str(ctx.layout.lib))
        for message in skipped:
            ctx.event(None, ev.invalid_env_names(message))
        slot.argv = launch.resolve_argv(slot.spec, slot.image, kubelet_env)
        ident = launch.identity(ctx.pod, slot.spec, slot.image)
        slot.env = launch.with_home(slot.env, ident.home)
        # exec, probes and hooks load the same compiled filter: the identity names its file
        slot.identity = replace(ident, seccomp=confinement.seccomp_filter(ctx.pod, slot.spec, ident.caps,
                                                                           ctx.layout.lib))
        # The kubelet's termination-message file, bound at terminationMessagePath (reference 5.6).
        slot.message_file = prepare_message_file(ctx.dirs.files_root, slot.name)
        target = (slot.spec.termination_message_path or "/dev/termination-log").lstrip("/")
        mounts = [*volumes.mount_ops(slot.spec, ctx.volume_paths, kubelet_env, read_only=ctx.read_only_volumes,
                                     images=ctx.volume_images),
                  MountOp(OpKind.BIND, target, str(slot.message_file))]
        config = ContainerConfig(slot.spec, slot.image, slot.argv, slot.env, mounts, slot.identity, log_path,
                                 share_pid=ctx.shared_pid)
        container = ctx.runtime.create_container(ctx.sandbox, config)
        # The kubelet's status takes imageID and user from the runtime's container: empty (the
        # image alone named) until one was created, then the latest instance's, through waits and
        # restarts. The user is the identity this instance is spawned with.
        ident = slot.identity
        user = st.LinuxUser(ident.uid, ident.gid, tuple(sorted(set(ident.groups))))
        slot.status = replace(slot.status, image_id=slot.image.image_id, user=user)

        # Stage 2 already sits in the container's new mount namespace while it waits: pin it now,
        # before a short-lived main process can exit and take /proc/PID/ns with it. The open fd
        # also keeps the namespace (and its inode number) alive: a freed namespace's inode is
        # reused by the next one, which would make another container look like this one's.
        def pin(pid: int) -> None:
            slot.mnt_ns_fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)

        try:
            process = ctx.runtime.start_container(container, before_start=pin)
        except BaseException:
            self.unpin(slot)
            raise
        return container, process, os.readlink(f"/proc/self/fd/{slot.mnt_ns_fd}") if slot.mnt_ns_fd >= 0 else None

    def unpin(self, slot: Slot) -> None:
        if slot.mnt_ns_fd >= 0:
            os.close(slot.mnt_ns_fd)
            slot.mnt_ns_fd = -1

    def _check_context(self, slot: Slot) -> CheckContext:
        from sandbox.supervisor.probes import CheckContext

        assert slot.process is not None
        ports = {p.name: p.container_port for p in slot.spec.ports if p.name}
        return CheckContext(self.ctx.runtime.exec_spawner, slot.process.pidfd, self.ctx.pause_pidfd, tuple(slot.env),
                            launch.working_dir(slot.spec, slot.image), ports, slot.identity,
                            membership(slot.runtime.cgroup if slot.runtime else None), pod_ip(self.ctx.addresses))

    def _post_start_done(self, slot: Slot, outcome: Any) -> None:
        slot.hook = None
        if slot.process is None or slot.stopping:
            return
        if outcome.ok:
            slot.starting = False
            self._mark_running(slot)
        else:
            log.warning("pod %s/%s: postStart hook of %s failed: %s", self.ctx.namespace, self.ctx.name, slot.name,
                        outcome.output)
            self.ctx.event(slot, ev.failed_post_start_hook())
            pod = f"{self.ctx.name}_{self.ctx.namespace}({self.ctx.pod.metadata.uid or ''})"
            # the output is capped by the check (10 KiB a stream), the message never cut inside its quotes
            message = ev.lifecycle_hook_failed(slot.spec.lifecycle.post_start if slot.spec.lifecycle else None,
                                               slot.name, pod, outcome.output, outcome.message or "")
            slot.status = replace(slot.status, state=st.Waiting("PostStartHookError", message))
            self.ctx.event(slot, ev.killing_after_post_start())
            self.stop(slot, self.ctx.clock() + self.ctx.grace(), announce=False)
        self.changed()
        if self.post_start_returned is not None:
            self.post_start_returned(slot)

    # --- running -------------------------------------------------------------------------------

    def _mark_running(self, slot: Slot) -> None:
        """postStart returned: Running; started unless a startup probe must pass first; ready
        unless a readiness probe must pass first (reference 7.2)."""
        assert slot.process is not None
        ctx = self.ctx
        spec = slot.spec
        probes = None
        if spec.startup_probe or spec.liveness_probe or spec.readiness_probe:
            # imported only for a container with probes: sandbox/probing costs ~1.5 ms to import
            from sandbox.supervisor.probes import ContainerProbes

            probes = ContainerProbes(spec, self._check_context(slot), ctx.runner, ctx.timers,
                                     lambda verdict: self._on_verdict(slot, verdict),
                                     started_at=ctx.clock(), now=ctx.clock(), scale=ctx.probe_scale)
        started = probes is None or not probes.has_startup
        readiness = probes is not None and probes.has_readiness
        slot.status = replace(slot.status, state=st.Running(slot.started_at), started=started,
                              ready=started and not readiness)
        if slot.init:  # a plain init container is not ready while it runs
            slot.status = replace(slot.status, ready=st.init_container_ready(slot.status, probe_ready=not readiness))
        if probes is not None:
            slot.probes = probes
            probes.start()
        self.changed()
        if started:
            self.started(slot)

    def _on_verdict(self, slot: Slot, verdict: Any) -> None:
        if verdict.event:
            self.ctx.event(slot, (ev.WARNING, verdict.event_reason, verdict.event))
        if slot.process is None or slot.stopping:
            return
        if verdict.started:
            slot.status = replace(slot.status, started=True, ready=not (slot.probes and slot.probes.has_readiness))
            if slot.probes is not None:
                slot.probes.mark_started(self.ctx.clock())
            self.started(slot)
        elif verdict.kind == "readiness" and verdict.changed:
            slot.status = replace(slot.status, ready=verdict.result == "Success" and slot.status.started)
        if verdict.kill:
            self.ctx.event(slot, ev.killing_after_probe(slot.name, verdict.kind))
            probe = slot.spec.liveness_probe if verdict.kind == "liveness" else slot.spec.startup_probe
            grace = probe.termination_grace_period_seconds if probe else None
            self.stop(slot, self.ctx.clock() + (grace if grace is not None else self.ctx.grace()), announce=False)
        self.changed()

    # --- stop ----------------------------------------------------------------------------------

    def stop(self, slot: Slot, deadline: float, *, announce: bool = True) -> None:
        """killContainer: preStop (within the grace), then SIGTERM, then SIGKILL at the deadline,
        never less than 2 s after the SIGTERM (minimumGracePeriodInSeconds)."""
        if slot.process is None or slot.stopping:
            return
        slot.stopping = True
        if announce:
            self.ctx.event(slot, ev.killing(slot.name))
        self.ctx.runner.cancel(slot.hook)  # a postStart still running is abandoned
        slot.hook = None
        pre_stop = slot.spec.lifecycle.pre_stop if slot.spec.lifecycle else None
        if pre_stop is None:
            self._terminate(slot, deadline)
            return
        from sandbox.supervisor.probes import checks_for

        check = checks_for(pre_stop, self._check_context(slot), max(deadline - self.ctx.clock(), 0.0), hook=True)
        slot.hook = self.ctx.runner.start(check, lambda outcome: self._pre_stop_done(slot, outcome, deadline))

    def shorten(self, slot: Slot, deadline: float) -> None:
        """The pod's grace period was cut (a second delete): a stopping instance still in its
        preStop is sent its stop signal now (its hook runs on, as the kubelet's goroutine does),
        and an instance already signalled gets its SIGKILL at `deadline` instead (never sooner
        than 2 s after the stop signal it had). One not stopping yet gets the new deadline when
        its turn comes (the pod's stop_deadline)."""
        if slot.process is None or not slot.stopping:
            return
        if slot.kill_timer is not None:  # signalled: its SIGKILL comes sooner
            self.ctx.timers.cancel(slot.kill_timer)
            kill_at = max(deadline, slot.signalled_at + MIN_GRACE_SECONDS)
            slot.kill_timer = self.ctx.timers.add(kill_at, lambda: self.kill(slot))
        elif slot.hook is not None and not slot.hook_deadline_cut:  # in its preStop: no signal sent yet
            slot.hook_deadline_cut = True
            self._terminate(slot, deadline)

    def _pre_stop_done(self, slot: Slot, outcome: Any, deadline: float) -> None:
        slot.hook = None
        if not outcome.ok:
            log.warning("pod %s/%s: preStop hook of %s failed: %s", self.ctx.namespace, self.ctx.name, slot.name,
                        outcome.output)
            self.ctx.event(slot, ev.failed_pre_stop_hook())
        if slot.hook_deadline_cut:  # signalled already when a second delete cut the grace
            slot.hook_deadline_cut = False
            return
        self._terminate(slot, deadline)

    def _terminate(self, slot: Slot, deadline: float) -> None:
        if slot.process is None:
            return
        sig = launch.stop_signal(slot.spec, slot.image)
        log.info("pod %s/%s: stopping container %s (signal %d: %s)", self.ctx.namespace, self.ctx.name, slot.name,
                 sig, signal.strsignal(sig))
        if slot.runtime is not None:
            self.ctx.runtime.stop_container(slot.runtime, sig)
        slot.signalled_at = self.ctx.clock()
        kill_at = max(deadline, slot.signalled_at + MIN_GRACE_SECONDS)
        slot.kill_timer = self.ctx.timers.add(kill_at, lambda: self.kill(slot))

    def kill(self, slot: Slot) -> None:
        """SIGKILL the container: its main process, and in a shared PID namespace everything
        else it started (in its own PID namespace the kernel takes care of that)."""
        slot.kill_timer = None
        if slot.process is None or slot.runtime is None:
            return
        self.ctx.runtime.stop_container(slot.runtime, signal.SIGKILL)
        if slot.mnt_ns is not None and self.ctx.shared_pid:
            kill_in_mount_ns(slot.mnt_ns, signal.SIGKILL)

    # --- exit ----------------------------------------------------------------------------------

    def finish(self, slot: Slot, info: ExitInfo) -> st.Terminated:
        """The instance exited: release everything it had; returns its terminated state."""
        assert slot.process is not None
        ctx = self.ctx
        if slot.process.pidfd >= 0:  # a re-adopted instance that exited while no agent ran has none
            ctx.selector.unregister(slot.process.pidfd)
        slot.process.close()
        slot.process = None
        self._reap_leftovers(slot)
        # RemoveContainer: its cgroup (and counters) and its layer. containerd's rule: a non-zero
        # exit of an instance the OOM killer hit is OOMKilled.
        kills = ctx.runtime.remove_container(slot.runtime) if slot.runtime is not None else 0
        slot.oom_kills += kills
        oom = kills > 0 and info.exit_code != 0
        self.unpin(slot)
        ctx.runner.cancel(slot.hook)
        slot.hook = None
        if slot.probes is not None:
            slot.probes.stop()
            slot.probes = None
        ctx.timers.cancel(slot.kill_timer)
        slot.kill_timer, slot.stopping, slot.starting, slot.hook_deadline_cut = None, False, False, False
        message = ""
        if slot.message_file is not None:
            message = read_termination_message(slot.message_file, slot.spec.termination_message_policy or "File",
                                               info.exit_code, slot.log_path)
            spec = ctx.pod.spec
            message = limit_for_pod(message, len(spec.containers) + len(spec.init_containers))
            # Read once into the status: removing the file keeps a long crash loop from filling the
            # pod's bounded files tmpfs with one file per instance.
            try:
                slot.message_file.unlink()
            except OSError as e:
                log.warning("pod %s/%s: cannot remove %s: %s", ctx.namespace, ctx.name, slot.message_file, e)
            slot.message_file = None
        term = st.Terminated(info.exit_code, st.terminated_reason(info.exit_code, oom), slot.started_at, ctx.wall(),
                             message=message, container_id=slot.status.container_id)
        slot.status = replace(slot.status, state=term, ready=False, started=False)
        if slot.init:  # a plain init container is ready once it exited 0
            slot.status = replace(slot.status, ready=st.init_container_ready(slot.status, probe_ready=False))
        log.info("pod %s/%s: container %s exited with %d", ctx.namespace, ctx.name, slot.name, info.exit_code)
        return term

    def _reap_leftovers(self, slot: Slot) -> None:
        """The foreground rule: a main process that backgrounded its work and exited leaves it
        running (shared PID namespace) or has it killed by the kernel (own PID namespace). Either
        way the container has exited; the kubelet kills what remains and applies restartPolicy."""
        if not self.ctx.shared_pid:
            self._report_killed(slot)
            return
        if slot.mnt_ns is None:
            return
        left = processes_in_mount_ns(slot.mnt_ns)
        if not left:
            return
        self._warn_foreground(slot, [(pid, command_of(pid)[:60]) for pid in left], None,
                              "Killing the leftovers.")
        kill_in_mount_ns(slot.mnt_ns, signal.SIGKILL)

    def _report_killed(self, slot: Slot) -> None:
        """Own PID namespace: the kernel killed whatever the main process left, as part of its
        exit; the pod's taskstats listener (process/exitwatch.py) saw each one die after it began
        to exit. Every record is queued before the exit is reported, so one drain sees them all."""
        watch, ref = self.ctx.exit_watch, slot.ref
        if watch is None or ref is None:
            return
        watch.drain()
        status, left = watch.exit_status(ref.pid), watch.outlived(ref.pid)
        watch.forget(ref.pid)
        # Only a main process that exited of its own accord broke the rule: one that the kubelet
        # stopped or a signal killed took its children along as any container's would be.
        if not left or slot.stopping or status is None or not os.WIFEXITED(status):
            return
        self._warn_foreground(slot, left, os.WEXITSTATUS(status),
                              "The kernel killed them with it (a PID namespace ends with its PID 1).")

    def _warn_foreground(self, slot: Slot, left: list[tuple[int, str]], exit_code: int | None, after: str) -> None:
        policy = self.ctx.pod.spec.restart_policy or "Always"
        log.warning(
            "pod %s/%s: container %s's main process exited but left %d process(es) running (%s). A "
            "container lives exactly as long as its main process: one that backgrounds its work "
            "(`nohup app &`, a daemon mode) makes the container exit, so restartPolicy %s %s. Keep "
            "the main process in the foreground (e.g. `exec app`). %s",
            self.ctx.namespace, self.ctx.name, slot.name, len(left), f"pid {left[0][0]}: {left[0][1]}",
            policy, ev.restart_consequence(policy, exit_code), after)
        self.ctx.event(slot, ev.background_process_killed(slot.name, [command for _, command in left], policy,
                                                          exit_code))
