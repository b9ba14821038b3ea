"""Re-adoption: a node agent that starts after another one died (SIGKILL, a crash, an upgrade of
the package) takes over every pod whose shim still answers, from the pod's record and what the
shim holds (docs/shim-protocol.md: LIST gives each child, running with a pidfd, or exited with its
wait status, not yet ACKed).

The supervisor is rebuilt as it was at its last save: statuses, events, conditions, volumes,
addresses, cgroups, pause; each running container gets its pidfd watched again and its probes
started afresh (the kubelet's probe results are in memory too: a restarted kubelet starts its
probe workers again); an exit during the gap goes through the same `_on_exit` as any exit (its
code, reason and termination message, then restartPolicy); a container waiting out its back-off
is started at once (the kubelet's back-off is in memory as well). The configMap, secret,
downwardAPI and projected volumes resync again (their directories from the record, the manifest
file's own ConfigMaps and Secrets from the file kept beside it: supervisor/run.CONFIG_FILE, which
also gives later pulls the pod's imagePullSecrets). Not resumed: a pull in flight (the container's
start asks again).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from sandbox import events as ev
from sandbox import poller
from sandbox import status as st
from sandbox.errors import SandboxError
from sandbox.log import get_logger
from sandbox.record import replace
from sandbox.state.proc import ProcessRef

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.process.shim import Shim, ShimChild
    from sandbox.supervisor.container import Slot
    from sandbox.supervisor.loop import PodSupervisor

log = get_logger(__name__)


class AdoptError(SandboxError):
    """The record and the shim do not describe a pod that can be taken over."""


def adopt(sup: PodSupervisor, state: dict[str, Any], shim: Shim) -> None:
    """Take over the pod `state` records, whose pause and containers are `shim`'s children."""
    from sandbox.process import launch
    from sandbox.process.downward import Addresses
    from sandbox.runtime.service import PodSandboxConfig

    ctx = sup.ctx
    children = shim.list()
    by_pid = {child.pid: child for child in children}
    by_id = {child.id: child for child in children}
    status = state.get("status") or {}
    sup.created_at = float(state.get("createdAt") or sup.created_at)
    sup.events = ctx.events = ev.EventRecorder.from_json(state.get("events") or [])
    sup.phase = str(status.get("phase") or sup.phase)
    sup.conditions = [st.condition_from_json(c) for c in status.get("conditions") or []]
    if sup.phase == st.PodPhase.FAILED:
        sup.failure_message = str(status.get("message") or "")
        sup.failure_reason = str(status.get("reason") or "")
    config = PodSandboxConfig(sup.pod, sup.uid, sup.hostname, sup.host, launch.pod_sysctls(sup.pod), sup.dirs,
                              sup.journal, sup.cgroup_plan, sup.network, sup.shim_dir, sup.terminal, ctx.log_policy)
    sandbox = sup.sandbox = ctx.sandbox = sup.runtime.adopt_pod_sandbox(config, shim)
    ctx.attempt = int(state.get("attempt") or 0)
    ctx.volume_paths = {str(k): Path(v) for k, v in (state.get("volumePaths") or {}).items()}
    ctx.read_only_volumes = set(state.get("readOnlyVolumes") or ())
    addresses = state.get("addresses")
    if isinstance(addresses, dict):
        ctx.addresses = sandbox.addresses = Addresses(tuple(addresses.get("podIPs") or ()),
                                                      tuple(addresses.get("hostIPs") or ()))
    _adopt_cgroups(sup, state)
    sup._watch_exits()
    sup._watch_shim_children()

    pause_ref = ProcessRef.from_json(state.get("pause"))
    pause = by_pid.pop(pause_ref.pid, None) if pause_ref is not None else None
    if pause is None or pause_ref is None:
        raise AdoptError("its pause process is not held by its shim")
    sandbox.pause, sandbox.pause_ref = pause, pause_ref
    if pause.pidfd >= 0:
        sup.selector.register(pause.pidfd, poller.EVENT_READ, ("pause", None))

    statuses = {cs.get("name"): cs for cs in [*(status.get("initContainerStatuses") or []),
                                               *(status.get("containerStatuses") or [])]}
    records = state.get("containers") or {}
    exited: list[Slot] = []
    running: list[Slot] = []
    for slot in sup.slots:
        cs = statuses.get(slot.name)
        if cs is None:
            continue
        slot.status = st.container_status_from_json(cs, sidecar=slot.sidecar)
        record = records.get(slot.name) or {}
        container_id = slot.status.container_id.removeprefix("sandbox://")
        slot.started_once = bool(container_id)
        if slot.started_once:
            slot.attempt = ctx.attempt
        slot.oom_kills = int(record.get("oomKills") or 0)
        child = by_id.pop(container_id, None) if container_id else None
        if child is not None:
            by_pid.pop(child.pid, None)
            _adopt_instance(sup, slot, child, record, container_id)
            (exited if child.exit is not None else running).append(slot)
        elif isinstance(slot.status.state, st.Running | st.Waiting) and slot.started_once \
                and not _waiting_to_start(slot.status.state):
            # Running (or starting) in the record, unknown to the shim: it ended and its exit was
            # acknowledged but never recorded (cannot happen: we ACK after saving) or its start
            # was cut short. Reported as the kubelet reports a container it lost.
            now = sup.wall()
            term = st.Terminated(137, st.CONTAINER_STATUS_UNKNOWN, 0.0, now,
                                 "The container could not be located when the pod was re-adopted",
                                 container_id=slot.status.container_id)
            slot.status = replace(slot.status, state=term, ready=False, started=False)
            sup._after_exit(slot, term)
        elif isinstance(slot.status.state, st.Waiting) and slot.started_once:
            # Waiting out a back-off (or for an image or a ConfigMap): tried again now.
            slot.restart_timer = sup.timers.add(sup.clock(), partial(sup._restart_due, slot))
    for stray in by_pid.values():  # started, but the agent died before recording it
        log.warning("pod %s/%s: killing pid %d (%s), not in the pod's record", sup.namespace, sup.name,
                    stray.pid, stray.id)
        stray.send_signal(9)
        stray.wait()
        sup.runtime.acknowledge_exit(sandbox, stray)
        stray.close()

    for slot in running:
        sup.lifecycle._mark_running(slot)  # probes afresh; started/ready as after a kubelet restart
    for slot in exited:
        sup._on_exit(slot)
    if pause.exit is not None or (pause.pidfd >= 0 and pause.poll() is not None):
        sup._on_pause_exit()
    deadline = sup.pod.spec.active_deadline_seconds
    if deadline:
        start = _start_time(status) or sup.created_at
        sup.timers.add(sup.clock() + max(0.0, start + deadline - sup.wall()), sup._deadline_exceeded)
    _adopt_projections(sup)
    sup._watch_storage()
    sup._rotate_logs_later()
    if (state.get("summary") or {}).get("deleting"):
        sup.stop()
    sup._advance()
    sup._save()


def _waiting_to_start(state: st.State | None) -> bool:
    """A waiting state of a container between instances (a back-off, a missing image or
    ConfigMap), as opposed to one whose instance was starting (postStart) when the agent died."""
    return isinstance(state, st.Waiting) and state.reason not in (st.default_waiting_reason(True),
                                                                   st.default_waiting_reason(False))


def _adopt_instance(sup: PodSupervisor, slot: Slot, child: ShimChild, record: dict[str, Any],
                    container_id: str) -> None:
    from sandbox.cgroups.driver import Cgroup
    from sandbox.process.request import Identity
    from sandbox.rootfs.layers import ContainerLayer
    from sandbox.runtime.service import ContainerConfig, RuntimeContainer

    ctx = sup.ctx
    assert ctx.sandbox is not None
    slot.process = child
    slot.ref = ProcessRef.from_json(record.get("process")) or ProcessRef.of(child.pid)
    slot.env = [str(e) for e in record.get("env") or []]
    slot.identity = Identity.from_json(record.get("identity"))
    message_file = record.get("messageFile")
    slot.message_file = Path(message_file) if message_file else None
    slot.log_path = ctx.log_dir / slot.name / f"{slot.status.restart_count}.log"
    layer = record.get("layer")
    paths = record.get("cgroup") or {}
    config = ContainerConfig(slot.spec, slot.image, [], slot.env, [], slot.identity, slot.log_path,
                             share_pid=ctx.shared_pid)
    slot.runtime = RuntimeContainer(container_id, ctx.sandbox, config,
                                    layer=ContainerLayer(Path(layer)) if layer else None,
                                    cgroup=Cgroup(container_id, {k: Path(v) for k, v in paths.items()}) if paths else None,
                                    process=child)
    state = slot.status.state
    slot.started_at = state.started_at if isinstance(state, st.Running) else sup.wall()
    if child.exit is None:
        try:  # the pin a fresh start takes while stage 2 waits (container.py)
            slot.mnt_ns_fd = os.open(f"/proc/{child.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            slot.mnt_ns = os.readlink(f"/proc/self/fd/{slot.mnt_ns_fd}")
        except OSError:
            slot.mnt_ns = None
    if child.pidfd >= 0:
        sup.selector.register(child.pidfd, poller.EVENT_READ, ("exit", slot))


def _adopt_projections(sup: PodSupervisor) -> None:
    """The projected volumes made before, resynced from now on (no second mount: the ready ones
    are written through, a waiting one is made at its first success)."""
    from sandbox.pod import projection

    names = projection.read_only_volumes(sup.pod)
    if not names:
        return
    psc = sup.pod.spec.security_context
    volumes = projection.ProjectedVolumes(sup.volumes_root, sup.ctx.sources, sup.ctx.record,
                                          psc.fs_group if psc is not None else None, str(sup.layout.lib))
    volumes.ready = {name: path for name, path in sup.ctx.volume_paths.items() if name in names}
    sup.projections = volumes
    sup.timers.add(sup.clock(), sup._resync_projections)


def _adopt_cgroups(sup: PodSupervisor, state: dict[str, Any]) -> None:
    from sandbox.cgroups.driver import Cgroup
    from sandbox.pod.cgroups import PAUSE_CGROUP, PodCgroups

    plan, sandbox = sup.cgroup_plan, sup.sandbox
    if plan is None or sandbox is None or not state.get("cgroup"):
        return
    cgroups = PodCgroups(plan.driver, sup.uid, sup.ctx.record)
    cgroups.pod = plan.driver.plan_pod(sup.uid)
    sandbox.cgroups, sandbox.resources = cgroups, plan.resources
    paths = state.get("pauseCgroup") or {}
    sandbox.pause_cgroup = Cgroup(PAUSE_CGROUP, {k: Path(v) for k, v in paths.items()}) if paths else None


def _start_time(status: dict[str, Any]) -> float:
    text = status.get("startTime")
    return ev.parse_rfc3339(text) if isinstance(text, str) and text else 0.0
