"""A container's image at each of its starts, as the kubelet's image manager ensures it
(pkg/kubelet/images/image_manager.go, EnsureImageExists): `Never` uses the stored image or waits
in ErrImageNeverPull; `IfNotPresent` pulls a missing image; `Always` asks the registry for the
reference's current manifest at every start, first and restarts alike: the same digest as stored
costs the manifest only (no blob is fetched twice), another digest is pulled and the name moved
to it, and a failure is ErrImagePull even with a copy in the store (the kubelet never falls back
on the cache).

Pulls run in worker threads, one per pull, so the pod's loop keeps serving probes, logs, the
other containers and Ctrl-C meanwhile; a worker hands its result back through a pipe that the
loop's selector watches. Nothing else runs in a worker: spawning stays on the loop's thread
(PR_SET_PDEATHSIG fires when the *thread* that forked a child ends). A worker still pulling when
the pod ends is a daemon thread, cut short by the runtime's exit: what it leaves is the store's
(a blob without a name, for `image prune`), never the pod's.
"""

from __future__ import annotations

import os

from sandbox.errors import ImageError, ImagePullFailed
from sandbox.images.store import Image, ImageStore, Lease
from sandbox.log import get_logger
from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sandbox import poller
    from sandbox.images.registry import RegistryClient
    from sandbox.paths import RootLayout
    from sandbox.spec.model import Container

log = get_logger(__name__)


class NeverPull(ImagePullFailed):
    """imagePullPolicy Never and no such image in the store: the container waits (the kubelet's
    ErrImageNeverPull) and the store is looked at again at the back-off's pace, so an image
    imported meanwhile starts it."""

    def __init__(self, image: str, container: str = "") -> None:
        from sandbox.events import never_pull_message

        super().__init__(image, never_pull_message(image), container)
        self.reason = "ErrImageNeverPull"


class PullResult(Record):
    container: str  # the key the pull was asked for: a container's name
    image: Image | None  # None: the pull failed
    error: str = ""  # why it failed (the registry's or the store's message)
    seconds: float = 0.0
    size: int = 0  # the image's blobs, as the kubelet's Pulled event reports them


class PullWorkers:
    """One daemon thread per pull; results queue here and a byte on a pipe wakes the loop."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._results: list[PullResult] = []
        self._read, self._write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._closed = False
        self.running: set[str] = set()  # containers whose pull is in flight (the loop's view)

    def fileno(self) -> int:
        return self._read

    def submit(self, container: str, pull: Callable[[], PullResult]) -> None:
        import threading

        self.running.add(container)
        threading.Thread(target=self._work, args=(container, pull), name=f"pull {container}", daemon=True).start()

    def _work(self, container: str, pull: Callable[[], PullResult]) -> None:
        try:
            result = pull()
        except Exception as e:  # a worker must answer, or its container would wait for ever
            log.error("pull for container %s failed unexpectedly: %r", container, e)
            result = PullResult(container, None, f"internal error: {e}")
        with self._lock:
            if self._closed:  # the pod has ended: its fds are closed (their numbers maybe reused)
                return
            self._results.append(result)
            try:
                os.write(self._write, b"\0")
            except BlockingIOError:
                pass  # a full pipe already wakes the loop

    def collect(self) -> list[PullResult]:
        """The results finished since the last call (the loop calls it when the pipe is readable)."""
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            results, self._results = self._results, []
        for result in results:
            self.running.discard(result.container)
        return results

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._read)
                os.close(self._write)


class Puller:
    """The pod's images (the kubelet's image manager): looked up, pulled in the foreground for
    `image` volumes (before the pod starts), pulled in workers for containers, all through the
    runtime's ImageService (sandbox/runtime/images.py). The pod's imagePullSecrets (same-file
    Secrets, then the node's store) are read again for every pull, on the loop's thread, as the
    kubelet's SyncPod reads them (getPullSecretsForPod): a Secret `sandbox apply` adds serves the
    next attempt; the registry client is made again only when they changed. `missing` names the
    Secrets the last read did not find (the kubelet's FailedToRetrieveImagePullSecret event).
    `config`: the manifest file's ConfigMaps and Secrets, as the config store's objects."""

    def __init__(self, store: ImageStore, pod: Any, config: Any, layout: RootLayout, options: Any) -> None:
        from sandbox.runtime.images import ImageService

        self.images = ImageService(store)
        # every image the pod resolves stays out of `image prune`'s reach until the pod ends: a
        # container resolves it well before its overlay is mounted (a later container, a restart)
        self.lease = Lease(store.root)
        self.pod, self.config, self.layout, self.options = pod, config, layout, options
        self.client: RegistryClient | None = None
        self.client_secrets: Any = None  # the Credentials `client` was made with
        self.missing: tuple[str, ...] = ()  # imagePullSecrets the last pull did not find
        self.pulls: dict[str, tuple[float, int]] = {}  # key -> (seconds, bytes) of a pull not yet reported
        self.workers: PullWorkers | None = None
        self.finished: dict[str, PullResult] = {}  # container -> its pull's result, until its start takes it
        self.order = [c.name for c in (*pod.spec.init_containers, *pod.spec.containers)]
        self.queued: set[str] = set()  # containers whose start waits for an earlier one's pull

    def stored(self, reference: str) -> Image | None:
        return self.lease.keep(lambda: self.images.image_status(reference))

    def pulled(self, reference: str, policy: str, key: str) -> Image:
        """The image under `policy`, pulled here and now if the policy asks (an `image` volume):
        ImageError (ErrImageNeverPull) for Never without it, ImagePullFailed if the pull fails."""
        if policy != "Always":
            image = self.stored(reference)
            if image is not None:
                return image
            if policy == "Never":
                from sandbox.events import never_pull_message

                raise ImageError(f"ErrImageNeverPull: {never_pull_message(reference)}")
        result = self.pull(reference, key, self._client)
        if result.image is None:
            raise ImagePullFailed(reference, result.error, key)
        return result.image

    def pull(self, reference: str, key: str, registry: Callable[[], RegistryClient]) -> PullResult:
        """One pull (or, for a stored digest, one manifest resolution) through the client
        `registry` gives; never raises ImageError."""
        import time

        started = time.monotonic()
        try:
            image = self.images.pull_image(reference, registry(), lease=self.lease)
            size = self.images.image_size(image)
        except ImageError as e:
            return PullResult(key, None, str(e))
        return PullResult(key, image, "", time.monotonic() - started, size)

    # --- a container's start (the pod's loop) -----------------------------------------------------

    def pulling(self, container: str) -> bool:
        return self.workers is not None and container in self.workers.running

    def behind_a_pull(self, container: str) -> bool:
        """The kubelet starts a pod's containers one after another, each once its own image is
        ensured (kuberuntime_manager.go SyncPod; the pull is synchronous for its start): a start
        waits while a container before it in the pod's order is pulling."""
        for name in self.order:
            if name == container:
                return False
            if self.pulling(name):
                return True
        return False

    def begin(self, container: Container) -> Image | None:
        """The image to start `container` with now, or None when a pull was just started in a
        worker (its result comes back through `workers`; the loop then starts the container
        again and this returns the pulled image). ImagePullFailed when a pull failed, NeverPull
        when the policy forbids pulling a missing image."""
        name, reference = container.name, container.image or ""
        done = self.finished.pop(name, None)
        if done is not None:
            if done.image is None:
                raise ImagePullFailed(reference, done.error, name)
            self.pulls[name] = (done.seconds, done.size)
            return done.image
        policy = container.image_pull_policy
        if policy != "Always":
            image = self.stored(reference)
            if image is not None:
                return image
            if policy == "Never":
                raise NeverPull(reference, name)
        if self.workers is None:
            self.workers = PullWorkers()
        registry = self._client_now()  # the pull secrets as they are now, read on the loop's thread
        self.workers.submit(name, lambda: self.pull(reference, name, registry))
        return None

    def collect(self) -> list[str]:
        """Containers whose pull has finished (kept in `finished` for their start to take)."""
        if self.workers is None:
            return []
        results = self.workers.collect()
        for result in results:
            self.finished[result.container] = result
        return [result.container for result in results]

    def close(self, selector: poller.Selector | None = None) -> None:
        """After the pod's loop: the workers' pipe leaves `selector` (a shared one outlives the
        pod) and is closed; a pull still running finishes into the store and reports nowhere.
        The pod's lease goes: its images are the store's to prune once no container runs them."""
        self.lease.release()
        if self.workers is None:
            return
        if selector is not None:
            try:
                selector.unregister(self.workers.fileno())
            except (KeyError, ValueError, RuntimeError):
                pass  # never registered, or the selector is closed already
        self.workers.close()

    def _client_now(self) -> Callable[[], RegistryClient]:
        """`_client` called now, its client (or its ImageError: a pull secret the kubelet's
        keyring cannot read fails the pull) given to the worker later."""
        try:
            registry = self._client()
        except ImageError as e:
            error = e

            def failed() -> RegistryClient:
                raise error

            return failed
        return lambda: registry

    def _client(self) -> RegistryClient:
        """The registry client for a pull starting now, with the pull secrets as stored now."""
        secrets = self._secrets()
        if self.client is None or secrets != self.client_secrets:
            from sandbox.images.options import PullOptions
            from sandbox.images.pull import client

            self.client = client(self.options or PullOptions(), secrets)
            self.client_secrets = secrets
        return self.client

    def _secrets(self) -> Any:
        from sandbox.config.sources import SECRET, Sources
        from sandbox.config.store import ConfigStore
        from sandbox.images.auth import Credentials

        namespace = self.pod.metadata.namespace or "default"
        sources = Sources(tuple(self.config), ConfigStore(self.layout.lib / "config"))
        credentials, missing = Credentials(), []
        for ref in self.pod.spec.image_pull_secrets:
            if not ref.name:
                continue  # the kubelet skips an empty name
            secret = sources.get(SECRET, namespace, ref.name)
            if secret is None:
                missing.append(ref.name)  # the kubelet goes on without it (and warns): the pull may still succeed
                continue
            credentials = credentials.then(Credentials.from_pull_secret(secret.data, f"secret/{namespace}/{ref.name}"))
        self.missing = tuple(missing)
        return credentials
