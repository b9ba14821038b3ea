"""`sandbox run` end to end: check everything that can be checked before anything is created,
take the pod's lock, supervise, and leave only the pod's record (its state, marked ended, and its
logs) afterwards."""

from __future__ import annotations

from sandbox.errors import ImageError, ImagePullFailed, StateError
from sandbox.images.store import Image, ImageStore
from sandbox.paths import RootLayout
from sandbox.record import Record, field
from sandbox.signals import signal
from sandbox.spec.model import Pod
from sandbox.supervisor.pulls import Puller

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from sandbox.config.sources import ConfigObject
    from sandbox.spec.accept import AcceptedPod

DEFAULT_MAX_PODS = 110  # the kubelet's maxPods


class PreparedPod(Record):
    pod: Pod
    manifest: dict[str, Any]
    images: dict[str, Image]
    layout: RootLayout
    warnings: tuple[str, ...] = ()  # fields the pod sets that are not enforced (spec/fields.py)
    config: tuple[ConfigObject, ...] = ()  # the manifest file's own ConfigMaps and Secrets
    volume_images: dict[str, Image] = field(default_factory=dict)  # `image` volume name -> its image
    puller: Puller | None = None  # ensures each container's image at each of its starts
    uid: str = ""  # a static pod's UID (derived from its manifest and source); "": a fresh one

    @property
    def namespace(self) -> str:
        return self.pod.metadata.namespace or "default"

    @property
    def name(self) -> str:
        return self.pod.metadata.name or ""


def prepare(path: str, layout: RootLayout, namespace: str | None, pull_options: Any = None, *,
            cache: bool = True, node_name: str = "", max_pods: int = DEFAULT_MAX_PODS) -> PreparedPod:
    """Accept the manifest as `sandbox validate` does (one shared path), then look the images up
    and resolve argv: every input error before any side effect on the pod. Containers' images are
    not pulled here: each start of a container ensures its image under its imagePullPolicy, in a
    worker of the pod's loop (supervisor/pulls.py); a container whose image is not stored yet
    starts with a stand-in (no layers) and its argv is checked once it has one. `image` volumes
    are pulled here, before the pod starts, as the kubelet mounts volumes before any container (a
    pulled image stays in the store, as with the kubelet). `cache`: use the parsed manifests'
    cache (spec/cache.py). `node_name`: the node the pod is given to (an agent's
    --hostname-override), its spec.nodeName unless it names one. `max_pods`: the node's maxPods,
    admission's pod count."""
    from sandbox.spec.accept import accept_pod_file

    accepted = accept_pod_file(path, layout.lib / "cache" / "manifests" if cache else None, namespace)
    if node_name and not accepted.pod.spec.node_name:
        from sandbox.record import replace

        pod = accepted.pod
        accepted = replace(accepted, pod=replace(pod, spec=replace(pod.spec, node_name=node_name)))
    return prepare_accepted(accepted, path, layout, pull_options, max_pods=max_pods)


def prepare_accepted(accepted: AcceptedPod, path: str, layout: RootLayout, pull_options: Any = None, *,
                     max_pods: int = DEFAULT_MAX_PODS) -> PreparedPod:
    """prepare() of a pod already accepted (a static pod's, read by the node agent's sources)."""
    from sandbox.process import launch

    pod = accepted.pod
    # An FQDN too long for the kernel (setHostnameAsFQDN) fails the pod as the kubelet fails its
    # sandbox: raised here, before the pod's lock or any other trace of it exists.
    launch.pod_hostname(pod)
    admit_to_node(pod, layout, max_pods)
    store = ImageStore(layout.images)
    images: dict[str, Image] = {}
    problems: list[str] = []
    config: tuple[ConfigObject, ...] = ()
    if accepted.config:  # most manifests hold only their pod: config/store.py not imported
        from sandbox.config.store import from_spec

        config = tuple(from_spec(obj) for obj in accepted.config)
    puller = Puller(store, pod, config, layout, pull_options)
    groups = (("initContainers", pod.spec.init_containers), ("containers", pod.spec.containers))
    for kind, containers in groups:
        for i, c in enumerate(containers):
            image = puller.stored(c.image or "")
            images[c.name] = image if image is not None else Image.pending(c.image or "")
            if image is None:
                continue
            if not launch.resolve_argv(c, image, {}):  # only whether there is an argv at all
                problems.append(f"spec.{kind}[{i}]: CreateContainerError: no command specified "
                                f"(no command in the spec and no Entrypoint/Cmd in image {image.name})")
    from sandbox.spec.defaults import image_pull_policy  # the API server's default, for image volumes

    volume_images: dict[str, Image] = {}
    for i, volume in enumerate(pod.spec.volumes):
        source = volume.other_sources.get("image")
        if source is None:
            continue
        reference = str(source.get("reference") or "")
        policy = str(source.get("pullPolicy") or image_pull_policy(reference))
        try:
            volume_images[volume.name] = puller.pulled(reference, policy, f"volume {volume.name}")
        except ImagePullFailed as e:
            problems.append(f"spec.volumes[{i}].image.reference: ErrImagePull: {e.describe()}")
        except ImageError as e:
            problems.append(f"spec.volumes[{i}].image.reference: {e}")
    if problems:
        raise ImageError("\n".join(f"{path}: {p}" for p in problems))
    from sandbox.spec.convert import to_dict

    return PreparedPod(pod, to_dict(pod, "Pod"), images, layout, accepted.warnings, config, volume_images, puller)


def admit_to_node(pod: Pod, layout: RootLayout, max_pods: int = DEFAULT_MAX_PODS) -> None:
    """The kubelet's admission of `pod` against the node's other active pods (AdmissionError):
    their count, their requests and host ports, and the node rules. The agent calls it again on
    its loop, one pod after the other, as the kubelet admits: its worker prepares the next pod
    before the last one's record exists."""
    if pods_at_least(layout.pods, max_pods):  # one directory listing; the records only on a full node
        from sandbox.pod.admission import admit_pod_count

        admit_pod_count(pod, layout.pods, max_pods)
    if admission_applies(pod):  # the kubelet's admission: requests, host ports, node rules against this node
        from sandbox.pod.admission import admit

        admit(pod, layout.pods)


def pods_at_least(pods_dir: Path, count: int) -> bool:
    """Whether `pods_dir` holds `count` pod records or more, ended ones included: below that, no
    pod count can be over the node's maxPods, and no record needs reading."""
    import os

    try:
        entries = os.listdir(pods_dir)
    except FileNotFoundError:
        return False
    return sum(1 for e in entries if not e.startswith(".")) >= count


def admission_applies(pod: Pod) -> bool:
    """Whether pod/admission.py has anything to check: cpu or memory requests, a hostPort, a
    nodeSelector or an affinity. Most pods have none, and the module's import (~0.1 ms) stays off their start."""
    spec = pod.spec
    if spec.node_selector or spec.affinity:
        return True
    if any(p.host_port for c in (*spec.containers, *spec.init_containers) for p in c.ports):
        return True
    sets = [c.resources for c in (*spec.containers, *spec.init_containers)] + [spec.resources]
    return any(r is not None and ("cpu" in r.requests or "memory" in r.requests) for r in sets)


CONFIG_FILE = "config.json"  # an agent pod's own ConfigMaps and Secrets, beside its record


def prepare_record(state: dict[str, Any], layout: RootLayout, pull_options: Any = None,
                   pod_dir: Path | None = None) -> PreparedPod:
    """The PreparedPod of a pod a node agent re-adopts: its manifest from the record (already
    accepted once, with its UID), its manifest file's ConfigMaps and Secrets (CONFIG_FILE in
    `pod_dir`: its later pulls use the same imagePullSecrets), its images from the store as they
    are now."""
    from sandbox.config.store import read_objects
    from sandbox.errors import FieldError, SpecError
    from sandbox.spec.load import pod_of_document

    manifest = state.get("manifest")
    if not isinstance(manifest, dict):
        manifest = {}
    errors: list[FieldError] = []
    pod = pod_of_document(manifest, "record", errors) if manifest else None
    if pod is None:
        raise SpecError(errors or [FieldError("manifest", "Required: the record holds no manifest")])
    config = read_objects(pod_dir / CONFIG_FILE) if pod_dir is not None else ()
    puller = Puller(ImageStore(layout.images), pod, config, layout, pull_options)
    images = {c.name: puller.stored(c.image or "") or Image.pending(c.image or "")
              for c in (*pod.spec.init_containers, *pod.spec.containers)}
    volume_images: dict[str, Image] = {}
    for volume in pod.spec.volumes:
        source = volume.other_sources.get("image")
        image = puller.stored(str(source.get("reference") or "")) if source is not None else None
        if image is not None:
            volume_images[volume.name] = image
    return PreparedPod(pod, dict(manifest), images, layout, config=config, volume_images=volume_images,
                       puller=puller, uid=str(state.get("uid") or ""))


def run_pod(prepared: PreparedPod, *, backoff: Any, quiet: bool = False, probe_scale: float = 1.0,
            eviction_interval: float = 10.0,
            log_policy: Any = None, remove: bool = False, cgroups: Any = None,
            allow_host_path: bool = True, network: Any = None) -> dict[str, Any]:
    """Run the pod to its end; returns its final Pod status (phase, containerStatuses, ...).
    `log_policy`: container log rotation (a logs.rotation.RotationPolicy; None: the defaults).

    Every kernel object of the pod is released when it ends; its record (state marked ended, and
    its logs) stays for `get`, `describe` and `logs` until `sandbox delete` or the next run of the
    same name, which replaces it. `remove` (`sandbox run --rm`) removes both at exit. `cgroups`: the
    pod's checked cgroup plan (pod/cgroups.plan; None: planned here with the default options).
    `allow_host_path=False` (`--no-host-path`) refuses a pod with a hostPath volume before anything
    is created (SpecError naming each volume's field). `network`: a pod.network.NetworkOptions
    (None: the default, the built-in bridge)."""
    from sandbox.logs.stream import Terminal

    run = PodRun(prepared, RunOptions(backoff=backoff, probe_scale=probe_scale, eviction_interval=eviction_interval,
                                      log_policy=log_policy, cgroups=cgroups, allow_host_path=allow_host_path,
                                      network=network),
                 terminal=None if quiet else Terminal(), remove=remove)
    run.begin()
    ended = False
    try:
        # Once the pod runs, SIGINT and SIGTERM belong to the supervisor (stop, then force); after
        # its loop they must not cut short the final record and summary: the supervisor restores
        # this ignoring disposition, not Python's KeyboardInterrupt.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        run.supervisor.run(started=resume_collector)
        ended = True
    finally:
        run.end(ended)
    if run.supervisor.start_error is not None:
        raise run.supervisor.start_error
    return dict(run.supervisor.snapshot()["status"])


def resume_collector() -> None:
    """Turn the cyclic garbage collector back on once the pod runs (`sandbox run` turns it off
    while it starts the pod: cli/run.py). What the start made lives to the end: frozen, so the
    collector of a pod that runs for hours never scans it."""
    import gc

    if not gc.isenabled():
        gc.freeze()
        gc.enable()


class RunOptions(Record):
    """How the node runs a pod (`sandbox run`'s flags, or the node agent's settings)."""

    backoff: Any
    probe_scale: float = 1.0
    eviction_interval: float = 10.0
    log_policy: Any = None  # a logs.rotation.RotationPolicy; None: the defaults
    cgroups: Any = None  # the pod's checked plan (pod/cgroups.plan); None: planned with the defaults
    allow_host_path: bool = True
    network: Any = None  # a pod.network.NetworkOptions; None: the built-in bridge
    max_pods: int = DEFAULT_MAX_PODS  # the kubelet's maxPods: admission's OutOfpods past it


class PodRun:
    """One run of a pod, from its record to its end: begin() takes the pod's lock, replaces an old
    record and builds the supervisor; the caller drives it (run(), or the agent's loop); end()
    writes the final record (or removes it) and releases the lock, whatever happened between."""

    def __init__(self, prepared: PreparedPod, options: RunOptions, *, terminal: Any = None, remove: bool = False,
                 selector: Any = None, owner: str = "") -> None:
        self.prepared, self.options, self.terminal, self.remove = prepared, options, terminal, remove
        self.owner = owner  # "agent": `sandbox delete` asks the node agent to stop the pod
        self.selector = selector  # the agent's shared selector (None: the supervisor's own)
        self.exit_watch: Any = None  # the agent's shared taskstats listener (None: the pod's own)
        self.on_save: Callable[[dict[str, Any]], None] | None = None  # the agent's hook: each state change
        self.supervisor: Any = None
        self.manifest: dict[str, Any] = {}

    def begin(self, adopting: dict[str, Any] | None = None) -> None:
        """`adopting`: the record of a pod a dead agent ran, whose shim still answers: its lock is
        taken and its supervisor built, nothing of the record is cleared (supervisor/adopt.py
        takes over from it)."""
        from sandbox.config.sources import NodeStore, Sources
        from sandbox.pod.cgroups import CgroupConfig, plan
        from sandbox.pod.cleanup import clear_record
        from sandbox.pod.network import NetworkOptions
        from sandbox.process.spawner import DirectSpawner
        from sandbox.record import replace
        from sandbox.state.store import PodDir, PodLock
        from sandbox.status import qos_class
        from sandbox.supervisor.loop import PodSupervisor

        prepared, options = self.prepared, self.options
        if not options.allow_host_path:
            refuse_host_paths(prepared.pod)
        layout = prepared.layout
        refuse_long_names(layout, prepared.namespace, prepared.name)
        self.pod_dir = pod_dir = PodDir(layout.pod_state_dir(prepared.namespace, prepared.name))
        self.lock = PodLock(pod_dir)
        # Live state is root's alone (security-reliability.md 1.13: /run/sandbox 0700, files 0600).
        layout.run.mkdir(mode=0o700, parents=True, exist_ok=True)
        from sandbox.topdir import mark_pod_parents

        # the directories every pod makes its own below, marked for ext4's allocator (topdir.py)
        mark_pod_parents((layout.pods, 0o700), (layout.containers, 0o711), (layout.lib / "pods", 0o755),
                         (layout.logs, 0o755))
        if not self.lock.acquire():
            raise StateError(f'pod "{prepared.name}" is already running in namespace "{prepared.namespace}"')
        try:
            if pod_dir.state_file.exists() and adopting is None:
                refuse_adoptable(pod_dir, prepared.name)
                # The pod this one replaces: an ended record, or one whose runtime is gone (whose
                # tear-down this finishes). Its logs go with it, as with `sandbox delete`.
                clear_record(pod_dir, layout.containers, layout.logs)
            # A fresh UID for every pod, as the API server gives one whatever the client sent: the
            # log directory, volumes, downward API and state all key on it.
            if self.owner == "agent" and prepared.config and adopting is None:  # for a re-adoption
                from sandbox.config.store import write_objects

                write_objects(pod_dir.path / CONFIG_FILE, prepared.config)
            uid = prepared.uid or random_uuid()
            pod = replace(prepared.pod, metadata=replace(prepared.pod.metadata, uid=uid))
            manifest = self.manifest = dict(prepared.manifest)
            manifest["metadata"] = {**(manifest.get("metadata") or {}), "uid": uid}

            def save(snapshot: dict[str, Any]) -> None:
                snapshot["manifest"] = manifest
                if self.owner:
                    snapshot["owner"] = self.owner
                pod_dir.write(snapshot)
                if self.on_save is not None:
                    self.on_save(snapshot)

            self.supervisor = PodSupervisor(
                pod, uid, prepared.images, layout, pod_dir.path, DirectSpawner(),
                backoff=options.backoff, terminal=self.terminal, save_state=save, probe_scale=options.probe_scale,
                eviction_interval=options.eviction_interval,
                log_policy=options.log_policy, qos_class=qos_class(manifest.get("spec") or {}),
                cgroups=options.cgroups if options.cgroups is not None else plan(prepared.pod, CgroupConfig()),
                allow_host_path=options.allow_host_path,
                sources=Sources(prepared.config, NodeStore(layout.lib / "config")),
                volume_images=prepared.volume_images, puller=prepared.puller,
                network=options.network if options.network is not None else NetworkOptions(),
                selector=self.selector, exit_watch=self.exit_watch,
                shim_dir=pod_dir.path / "shim" if self.owner == "agent" else None)
        except BaseException:
            self.lock.release()
            raise

    def end(self, ended: bool) -> None:
        """`ended`: the supervisor's loop ran to its end (its tear-down done)."""
        from sandbox.pod.cleanup import end_record, remove_logs, remove_pod_dir
        from sandbox.pod.teardown import Journal, pod_bases, undo_all

        supervisor, layout = self.supervisor, self.prepared.layout
        if self.prepared.puller is not None:  # a pull still running finishes into the store, reporting nowhere
            self.prepared.puller.close(self.selector)
        try:
            if ended and not self.remove:
                end_record(self.pod_dir, {**supervisor.snapshot(), "manifest": self.manifest})
            else:
                if ended:
                    remove_logs(supervisor.snapshot(), layout.logs)
                else:  # the supervisor's own tear-down may not have run (or finished): the one routine
                    undo_all(Journal(self.pod_dir.path), pod_bases(layout.lib, self.pod_dir.path))
                remove_pod_dir(self.pod_dir)
        finally:
            self.lock.release()


def refuse_adoptable(pod_dir: Any, name: str) -> None:
    """A node agent's pod that runs on under its shim while no agent runs is not replaced by a
    new run of the same name (that would kill it): the next agent re-adopts it."""
    from sandbox.pod.cleanup import read_or_empty, shim_runs_it

    if shim_runs_it(pod_dir, read_or_empty(pod_dir)):
        raise StateError(f'pod "{name}" is still running under its shim (its node agent is gone): '
                         f"start `sandbox agent` to re-adopt it, or `sandbox delete pod {name}`")


def refuse_long_names(layout: RootLayout, namespace: str, name: str) -> None:
    """The pod's log directory is the kubelet's `<namespace>_<name>_<uid>`: a namespace and name
    each valid but together longer than 217 characters make it longer than a file name may be,
    and the kubelet's sandbox creation fails (FailedCreatePodSandBox, kubernetes issue 104288).
    Refused in the kubelet's words before anything is made, not as an internal error from the
    first mkdir that meets it."""
    from sandbox.paths import POD_NAMES_MAX, pod_names_fit

    if not pod_names_fit(namespace, name):
        raise StateError(f"Failed to create pod sandbox: mkdir {layout.logs}/{namespace}_{name}_<uid>: "
                         f"file name too long (namespace and pod name together may have at most {POD_NAMES_MAX} "
                         f"characters; these have {len(namespace) + len(name)})")


def refuse_host_paths(pod: Any) -> None:
    """`sandbox run --no-host-path`: a pod with a hostPath volume is refused, each one by its field."""
    from sandbox.errors import FieldError, SpecError

    errors = [FieldError(f"spec.volumes[{i}].hostPath", "Forbidden: hostPath volumes are not allowed on this node "
                                                          "(--no-host-path)")
              for i, volume in enumerate(pod.spec.volumes) if volume.host_path is not None]
    if errors:
        raise SpecError(errors)


def random_uuid() -> str:
    """A version-4 UUID, as the API server gives a pod (the uuid module costs ~3 ms to import)."""
    import os

    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
