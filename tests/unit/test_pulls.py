"""supervisor/pulls.py without a kernel or a registry: the worker threads hand results to the loop
through their pipe (and never write to it once closed), and each start's decision follows the
kubelet's pull policies (Never refuses a missing image with ErrImageNeverPull; Always and a missing
IfNotPresent image go to a worker, whose failure the next start reports as ErrImagePull)."""

from __future__ import annotations

import select
import socket
import threading
from pathlib import Path

import pytest

from sandbox.errors import ImagePullFailed
from sandbox.images.options import PullOptions
from sandbox.images.store import ImageStore
from sandbox.paths import RootLayout
from sandbox.spec.load import load_pod_text
from sandbox.supervisor.pulls import NeverPull, Puller, PullResult, PullWorkers


def wait_readable(fd: int, timeout: float = 10.0) -> None:
    readable, _, _ = select.select([fd], [], [], timeout)
    assert readable, "no wakeup from the pull worker"


def test_a_worker_result_wakes_the_loop_and_is_collected_once() -> None:
    workers = PullWorkers()
    try:
        workers.submit("c", lambda: PullResult("c", None, "no such image"))
        assert workers.running == {"c"}
        wait_readable(workers.fileno())
        results = workers.collect()
        assert [(r.container, r.error) for r in results] == [("c", "no such image")]
        assert workers.running == set() and workers.collect() == []
    finally:
        workers.close()


def test_an_unexpected_error_in_a_worker_still_reports() -> None:
    def broken() -> PullResult:
        raise RuntimeError("bug")

    workers = PullWorkers()
    try:
        workers.submit("c", broken)
        wait_readable(workers.fileno())
        (result,) = workers.collect()
        assert result.image is None and "internal error: bug" in result.error
    finally:
        workers.close()


def test_a_worker_finishing_after_close_writes_nowhere() -> None:
    release = threading.Event()

    def slow() -> PullResult:
        release.wait(10)
        return PullResult("c", None, "late")

    errors: list[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)  # type: ignore[assignment,misc]
    try:
        workers = PullWorkers()
        workers.submit("c", slow)
        workers.close()
        reused = socket.socketpair()  # may take the closed pipe's fd numbers
        release.set()
        for thread in threading.enumerate():
            if thread.name == "pull c":
                thread.join(10)
        reused[0].setblocking(False)
        with pytest.raises(BlockingIOError):
            reused[0].recv(1)  # nothing was written into the fds that replaced the pipe
        reused[0].close()
        reused[1].close()
    finally:
        threading.excepthook = previous
    assert errors == []


POD = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - {name: never, image: "busybox:1.36", imagePullPolicy: Never}
  - {name: always, image: busybox}
  - {name: late, image: "busybox:1.36"}
"""


def closed_port_hosts(tmp_path: Path) -> Path:
    """docker.io served only by a loopback port nothing listens on: every pull fails at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hosts = tmp_path / "certs.d"
    (hosts / "docker.io").mkdir(parents=True)
    (hosts / "docker.io" / "hosts.toml").write_text(f'server = "http://127.0.0.1:{port}"\n')
    return hosts


def test_each_start_follows_the_pull_policy(tmp_path: Path) -> None:
    pod = load_pod_text(POD)
    never, always, _ = pod.spec.containers
    layout = RootLayout.from_root(str(tmp_path / "root"))
    puller = Puller(ImageStore(tmp_path / "images"), pod, (), layout, PullOptions(hosts_dir=closed_port_hosts(tmp_path)))
    try:
        with pytest.raises(NeverPull) as refused:
            puller.begin(never)
        assert refused.value.reason == "ErrImageNeverPull"
        assert refused.value.describe() == 'Container image "busybox:1.36" is not present with pull policy of Never'
        assert puller.begin(always) is None  # a pull in a worker
        assert puller.pulling("always")
        # the kubelet starts a pod's containers in order, each after its own pull
        assert puller.behind_a_pull("late") and not puller.behind_a_pull("never")
        assert puller.workers is not None
        wait_readable(puller.workers.fileno())
        assert puller.collect() == ["always"]
        with pytest.raises(ImagePullFailed) as failed:
            puller.begin(always)  # the next start takes the worker's result
        assert failed.value.reason == "ErrImagePull" and "cannot reach 127.0.0.1" in failed.value.describe()
        assert not puller.pulling("always") and puller.finished == {} and not puller.behind_a_pull("late")
    finally:
        puller.close()


SECRET_POD = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  imagePullSecrets: [{name: regcred}]
  containers:
  - {name: c, image: "registry.example:5000/app:1"}
---
apiVersion: v1
kind: Secret
metadata: {name: regcred}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths": {"registry.example:5000": {"username": "u", "password": "p"}}}'
"""


def _registry_users(puller: Puller) -> list[str]:
    return [c.username for c in puller._secrets().for_registry("registry.example:5000")]


def test_a_readopted_pod_pulls_with_its_manifest_files_pull_secret(tmp_path: Path) -> None:
    """The imagePullSecrets a pod's own manifest file holds serve its pulls after a node agent
    re-adopts it: prepare_record reads them from the file kept beside the record."""
    from sandbox.config.store import write_objects
    from sandbox.spec.accept import accept_pod_file
    from sandbox.supervisor.run import CONFIG_FILE, prepare_accepted, prepare_record

    layout = RootLayout.from_root(str(tmp_path / "root"))
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(SECRET_POD)
    first = prepare_accepted(accept_pod_file(str(manifest), None), str(manifest), layout)
    assert first.puller is not None and _registry_users(first.puller) == ["u"]
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    write_objects(pod_dir / CONFIG_FILE, first.config)  # what the agent keeps beside the record
    adopted = prepare_record({"manifest": first.manifest, "uid": "u1"}, layout, pod_dir=pod_dir)
    assert adopted.puller is not None and _registry_users(adopted.puller) == ["u"]
    gone = prepare_record({"manifest": first.manifest, "uid": "u1"}, layout, pod_dir=tmp_path / "none")
    assert gone.puller is not None and _registry_users(gone.puller) == []


LATE_SECRET_POD = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  imagePullSecrets: [{name: absent}, {name: later}]
  containers:
  - {name: c, image: "registry.example:5000/app:1"}
"""

LATER_SECRET = """
apiVersion: v1
kind: Secret
metadata: {name: later}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths": {"registry.example:5000": {"username": "late", "password": "p"}}}'
"""


def test_pull_secrets_are_read_again_for_each_pull(tmp_path: Path) -> None:
    """The kubelet reads a pod's imagePullSecrets at every SyncPod (getPullSecretsForPod): a Secret
    added to the node's store while the pod waits in ImagePullBackOff serves its next pull, and the
    ones still missing are named for the FailedToRetrieveImagePullSecret event."""
    from sandbox.config.store import ConfigStore, from_spec
    from sandbox.spec.load import load_manifests_text

    pod = load_pod_text(LATE_SECRET_POD)
    layout = RootLayout.from_root(str(tmp_path / "root"))
    puller = Puller(ImageStore(tmp_path / "images"), pod, (), layout, PullOptions(hosts_dir=closed_port_hosts(tmp_path)))
    try:
        assert puller.begin(pod.spec.containers[0]) is None  # a pull in a worker
        assert puller.missing == ("absent", "later")
        assert puller.client is not None and puller.client.credentials.for_registry("registry.example:5000") == []
        (secret,) = load_manifests_text(LATER_SECRET).secrets
        ConfigStore(layout.lib / "config").put(from_spec(secret, "default"))
        assert puller.workers is not None
        wait_readable(puller.workers.fileno())
        puller.collect()
        with pytest.raises(ImagePullFailed):
            puller.begin(pod.spec.containers[0])  # the first pull's failure
        assert puller.begin(pod.spec.containers[0]) is None  # the next attempt, with the new Secret
        assert puller.missing == ("absent",)
        users = [c.username for c in puller.client.credentials.for_registry("registry.example:5000")]
        assert users == ["late"]
    finally:
        puller.close()
