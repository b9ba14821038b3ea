"""`sandbox run` end to end: check everything that can be checked before anything is created,
take the pod's lock, supervise, and leave only the pod's record (its state, marked ended, and its
logs) afterwards."""

from __future__ import annotations

import signal

from sandbox.errors import ImageError, ImagePullFailed, StateError
from sandbox.images.store import Image, ImageStore
from sandbox.paths import RootLayout
from sandbox.record import field, record
from sandbox.spec.model import Pod

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

    from sandbox.config.sources import ConfigObject


@record
class PreparedPod:
    pod: Pod
    manifest: dict[str, Any]
    images: dict[str, Image]
    layout: RootLayout
    warnings: tuple[str, ...] = ()  # fields the pod sets that are not enforced (spec/fields.py)
    config: tuple[ConfigObject, ...] = ()  # the manifest file's own ConfigMaps and Secrets
    pulls: dict[str, tuple[float, int]] = field(default_factory=dict)  # container -> (seconds, bytes) pulled
    volume_images: dict[str, Image] = field(default_factory=dict)  # `image` volume name -> its image
    pending: dict[str, str] = field(default_factory=dict)  # container -> why its pull failed (retried)
    puller: Any = None  # _Puller: retries a failed pull from inside the pod's loop

    @property
    def namespace(self) -> str:
        return self.pod.metadata.namespace or "default"

    @property
    def name(self) -> str:
        return self.pod.metadata.name or ""


def prepare(path: str, layout: RootLayout, namespace: str | None, pull_options: Any = None) -> PreparedPod:
    """Accept the manifest as `sandbox validate` does (one shared path), then resolve images
    (pulling what is missing, unless its imagePullPolicy is Never) and argv: every input error
    before any side effect on the pod (a pulled image stays in the store, as with the kubelet)."""
    from sandbox.process import launch
    from sandbox.spec.accept import accept_pod_file

    accepted = accept_pod_file(path, layout.lib / "cache" / "manifests", namespace)
    pod = accepted.pod
    store = ImageStore(layout.images)
    images: dict[str, Image] = {}
    problems: list[str] = []
    pending: dict[str, str] = {}
    puller = _Puller(store, pod, accepted.config, layout, pull_options)
    groups = (("initContainers", pod.spec.init_containers), ("containers", pod.spec.containers))
    for kind, containers in groups:
        for i, c in enumerate(containers):
            try:
                images[c.name] = image = puller.image(c)
            except ImagePullFailed as e:  # the container waits in ErrImagePull; the pull is retried
                images[c.name] = Image.pending(c.image or "")
                pending[c.name] = e.describe()
                continue
            except ImageError as e:
                problems.append(f"spec.{kind}[{i}].image: {e}")
                continue
            env = launch.container_env(c, image, launch.pod_hostname(pod), pod)
            if not launch.resolve_argv(c, image, env):
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
    from sandbox.config.store import from_spec
    from sandbox.spec.convert import to_dict

    config = tuple(from_spec(obj) for obj in accepted.config)
    return PreparedPod(pod, to_dict(pod, "Pod"), images, layout, accepted.warnings, config, puller.pulls,
                       volume_images, pending, puller)


class _Puller:
    """A container's image from the store, pulled first when it is missing: IfNotPresent and
    Always alike (Always does not re-resolve a stored tag yet: the store is the source while it
    has the image), Never refuses with the kubelet's ErrImageNeverPull. The registry client is
    made once, with the pod's imagePullSecrets (same-file Secrets, then the node's store)."""

    def __init__(self, store: ImageStore, pod: Any, config: Any, layout: RootLayout, options: Any) -> None:
        self.store, self.pod, self.config, self.layout, self.options = store, pod, config, layout, options
        self.client: Any = None
        self.pulls: dict[str, tuple[float, int]] = {}  # container name -> (seconds, bytes) of its pull

    def image(self, container: Any) -> Image:
        return self.pulled(container.image or "", container.image_pull_policy, container.name)

    def pulled(self, reference: str, policy: str, key: str) -> Image:
        """The stored image, pulled first if missing: ImageError (ErrImageNeverPull) if `policy` is
        Never, ImagePullFailed if the pull fails. `key` names the pull in `pulls` (a container's
        name)."""
        try:
            return self.store.lookup(reference)
        except ImageError:
            if policy == "Never":
                raise ImageError(f'ErrImageNeverPull: Container image "{reference}" is not present with pull '
                                 "policy of Never") from None
        from sandbox.images.pull import PullOptions, pull

        if self.client is None:
            from sandbox.images.pull import client

            self.client = client(self.options or PullOptions(), self._secrets())
        import time

        started = time.monotonic()
        try:
            image = pull(self.store, reference, self.client)
        except ImageError as e:
            raise ImagePullFailed(reference, str(e), key) from None
        self.pulls[key] = (time.monotonic() - started, image_size(self.store, image))
        return image

    def _secrets(self) -> Any:
        from sandbox.config.sources import SECRET, Sources
        from sandbox.config.store import ConfigStore, from_spec
        from sandbox.images.auth import Credentials

        namespace = self.pod.metadata.namespace or "default"
        sources = Sources(tuple(from_spec(obj) for obj in self.config), ConfigStore(self.layout.lib / "config"))
        credentials = Credentials()
        for ref in self.pod.spec.image_pull_secrets:
            secret = sources.get(SECRET, namespace, ref.name or "")
            if secret is None:
                continue  # the kubelet goes on without it (and warns): the pull may still succeed
            credentials = credentials.then(Credentials.from_pull_secret(secret.data, f"secret/{namespace}/{ref.name}"))
        return credentials


def image_size(store: ImageStore, image: Image) -> int:
    """What the kubelet's Pulled event reports: the image's blobs (manifest, config, layers)."""
    manifest = store.read_json(image.digest)
    digests = [image.digest, manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])]
    return sum(store.blob_path(d).stat().st_size for d in digests)


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
    from sandbox.config.sources import Sources
    from sandbox.config.store import ConfigStore
    from sandbox.logs.stream import Terminal
    from sandbox.pod.cgroups import CgroupConfig, plan
    from sandbox.pod.cleanup import clear_record, end_record, remove_logs, remove_pod_dir
    from sandbox.pod.network import NetworkOptions
    from sandbox.pod.teardown import Journal, pod_bases, undo_all
    from sandbox.process.spawner import DirectSpawner
    from sandbox.record import replace
    from sandbox.state.store import PodDir, PodLock
    from sandbox.status import qos_class
    from sandbox.supervisor.loop import PodSupervisor

    if not allow_host_path:
        refuse_host_paths(prepared.pod)
    layout = prepared.layout
    pod_dir = PodDir(layout.pod_state_dir(prepared.namespace, prepared.name))
    lock = PodLock(pod_dir)
    # Live state is root's alone (security-reliability.md 1.13: /run/sandbox 0700, files 0600).
    for directory in (layout.run, layout.pods):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not lock.acquire():
        raise StateError(f'pod "{prepared.name}" is already running in namespace "{prepared.namespace}"')
    ended = False
    try:
        if pod_dir.state_file.exists():
            # The pod this one replaces: an ended record, or one whose runtime is gone (whose
            # tear-down this finishes). Its logs go with it, as with `sandbox delete`.
            clear_record(pod_dir, layout.containers, layout.logs)
        # A fresh UID for every pod, as the API server gives one whatever the client sent: the
        # log directory, volumes, downward API and state all key on it.
        uid = random_uuid()
        pod = replace(prepared.pod, metadata=replace(prepared.pod.metadata, uid=uid))
        manifest = dict(prepared.manifest)
        manifest["metadata"] = {**(manifest.get("metadata") or {}), "uid": uid}

        def save(snapshot: dict[str, Any]) -> None:
            snapshot["manifest"] = manifest
            pod_dir.write(snapshot)

        supervisor = PodSupervisor(
            pod, uid, prepared.images, layout, pod_dir.path, DirectSpawner(),
            backoff=backoff, terminal=None if quiet else Terminal(), save_state=save, probe_scale=probe_scale,
            eviction_interval=eviction_interval,
            log_policy=log_policy, qos_class=qos_class(manifest.get("spec") or {}),
            cgroups=cgroups if cgroups is not None else plan(prepared.pod, CgroupConfig()),
            allow_host_path=allow_host_path,
            sources=Sources(prepared.config, ConfigStore(layout.lib / "config")), pulls=prepared.pulls,
            volume_images=prepared.volume_images,
            pending_pulls=prepared.pending, puller=prepared.puller,
            network=network if network is not None else NetworkOptions())
        # Once the pod runs, SIGINT and SIGTERM belong to the supervisor (stop, then force); after
        # its loop they must not cut short the final record and summary: the supervisor restores
        # this ignoring disposition, not Python's KeyboardInterrupt.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        supervisor.run()
        ended = True
    finally:
        if ended and not remove:
            end_record(pod_dir, {**supervisor.snapshot(), "manifest": manifest})
        else:
            if ended:
                remove_logs(supervisor.snapshot(), layout.logs)
            else:  # the supervisor's own tear-down may not have run (or finished): the one routine
                undo_all(Journal(pod_dir.path), pod_bases(layout.lib, pod_dir.path))
            remove_pod_dir(pod_dir)
        lock.release()
    if supervisor.start_error is not None:
        raise supervisor.start_error
    return dict(supervisor.snapshot()["status"])


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
