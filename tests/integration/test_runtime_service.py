"""The runtime role alone, driven as a kubelet (or a CRI server) drives it: RunPodSandbox,
CreateContainer, StartContainer, StopContainer, RemoveContainer, RemovePodSandbox, with the
ImageService for the image; each step checked from outside (/proc, the cgroup tree, the store)."""

from __future__ import annotations

import os
import select
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Sandbox, ns_inode

pytestmark = pytest.mark.root

POD = """apiVersion: v1
kind: Pod
metadata: {name: cri, namespace: default, uid: 3b2f8a9e-0c1d-4e5f-8a9b-0c1d2e3f4a5b}
spec:
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "echo hello from main; exec sleep 600"]
    resources: {limits: {memory: 64Mi}}
"""


def drive(sbx: Sandbox) -> Any:
    """The pieces a kubelet has before RunPodSandbox: the pod, its directories and journal, its
    cgroup plan (under the test's own cgroup parent), the pod's files."""
    from sandbox.images.store import ImageStore
    from sandbox.paths import RootLayout
    from sandbox.pod import teardown
    from sandbox.pod.cgroups import CgroupConfig, plan
    from sandbox.pod.sandbox import HostNamespaces, SandboxDirs, pod_files_root, write_pod_files
    from sandbox.pod.volumes import volumes_root
    from sandbox.process import launch
    from sandbox.process.spawner import DirectSpawner
    from sandbox.runtime.images import ImageService
    from sandbox.runtime.service import PodSandboxConfig, RuntimeService
    from sandbox.spec.load import load_pod_text

    layout = RootLayout(sbx.root / "lib", sbx.root / "run", sbx.root / "log" / "pods")
    pod = load_pod_text(POD)
    uid = pod.metadata.uid or ""
    state_dir = layout.pods / "default_cri"
    state_dir.mkdir(parents=True, mode=0o700)
    layout.containers.mkdir(parents=True, exist_ok=True)
    journal = teardown.Journal(state_dir)
    files_root = pod_files_root(volumes_root(layout.lib, uid))
    journal.add(teardown.Directory(files_root.parent, files_root.parent.parent))
    journal.add(teardown.Mount(files_root))
    dirs = SandboxDirs(state_dir, files_root)
    host = HostNamespaces(network=False, pid=False, ipc=False)
    write_pod_files(dirs, pod, uid, "cri", host)
    config = PodSandboxConfig(pod, uid, "cri", host, launch.pod_sysctls(pod), dirs, journal,
                              plan(pod, CgroupConfig(parent=sbx.cgroup_parent)))
    import selectors

    runtime = RuntimeService(layout, DirectSpawner(), selectors.DefaultSelector())
    images = ImageService(ImageStore(layout.images))
    return runtime, images, config, layout


def test_a_pod_through_the_runtime_interface_alone(sbx: Sandbox) -> None:
    from sandbox.runtime.service import ContainerConfig

    runtime, images, config, layout = drive(sbx)
    image = images.image_status("busybox:1.36")
    assert image is not None and image in images.list_images()
    assert images.image_status("no-such-image:0") is None
    pod = config.pod
    spec = pod.spec.containers[0]
    sandbox = None
    try:
        sandbox = runtime.run_pod_sandbox(config)
        status = runtime.pod_sandbox_status(sandbox)
        assert status["state"] == "SANDBOX_READY" and status["id"] == config.uid
        pause = status["pid"]
        assert Path(f"/proc/{pause}/comm").read_text().strip() == "pause"
        assert ns_inode(pause, "net") != ns_inode(os.getpid(), "net")
        log_path = layout.pod_log_dir("default", "cri", config.uid) / "main" / "0.log"
        container_config = ContainerConfig(spec, image, ["sh", "-c", "echo hello from main; exec sleep 600"],
                                           ["PATH=/bin"], [], _identity(pod, spec, image), log_path)
        container = runtime.create_container(sandbox, container_config)
        assert container.layer is not None and container.layer.path.is_dir()
        assert container.cgroup is not None
        memory = container.cgroup.paths.get("memory")
        if memory is not None:
            assert (memory / "memory.limit_in_bytes").read_text().strip() == str(64 * 1024 * 1024)
        process = runtime.start_container(container)
        assert ns_inode(process.pid, "net") == ns_inode(pause, "net")  # joined the sandbox
        assert ns_inode(process.pid, "mnt") != ns_inode(pause, "mnt")
        assert str(process.pid) in _procs(container.cgroup)
        _wait_for_line(runtime, log_path, b"hello from main")
        runtime.stop_container(container, signal.SIGKILL)
        assert select.select([process.pidfd], [], [], 10)[0]
        assert process.poll() is not None and process.exit is not None and process.exit.signal == signal.SIGKILL
        layer = container.layer.path
        assert runtime.remove_container(container) == 0  # no OOM kill
        process.close()
        container.process = None
        assert not layer.exists() and container.cgroup is None
    finally:
        runtime.remove_pod_sandbox(sandbox, config.journal, layout.lib, [])
    assert not Path(f"/proc/{pause}").exists()
    assert runtime.sandboxes == {}
    _remove_record(config)


def _identity(pod: Any, spec: Any, image: Any) -> Any:
    from sandbox.process import launch

    return launch.identity(pod, spec, image)


def _procs(cgroup: Any) -> str:
    return next(iter(cgroup.paths.values())).joinpath("cgroup.procs").read_text()


def _wait_for_line(runtime: Any, path: Path, line: bytes) -> None:
    """Our own log pipes (no shim): the runtime reads them when its selector says so."""
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for key, _ in runtime.selector.select(0.1):
            runtime.on_log(key.fd)
        if path.exists() and line in path.read_bytes():
            return
    raise AssertionError(f"{line!r} not in {path}")


def _remove_record(config: Any) -> None:
    import shutil

    shutil.rmtree(config.dirs.root, ignore_errors=True)  # the pod's state directory (no record in it)


def test_a_sandbox_not_waited_for_is_ready_where_a_container_joins_it(sbx: Sandbox) -> None:
    """run_pod_sandbox(wait=False), as the pod's loop calls it: pause sets up while the caller goes
    on; pause_ready (start_container, pod_sandbox_status) waits for it."""
    runtime, _, config, layout = drive(sbx)
    sandbox = None
    try:
        sandbox = runtime.run_pod_sandbox(config, wait=False)
        assert sandbox.pause is not None and sandbox.pause_pending is not None
        pause = sandbox.pause.pid
        runtime.pause_ready(sandbox)
        assert sandbox.pause_pending is None
        assert Path(f"/proc/{pause}/comm").read_text().strip() == "pause"
        assert ns_inode(pause, "net") != ns_inode(os.getpid(), "net")
        assert runtime.pod_sandbox_status(sandbox)["state"] == "SANDBOX_READY"
    finally:
        runtime.remove_pod_sandbox(sandbox, config.journal, layout.lib, [])
    assert not Path(f"/proc/{pause}").exists()
    _remove_record(config)


def test_a_pause_that_cannot_set_up_fails_the_pod_where_a_container_would_join_it(sbx: Sandbox) -> None:
    """Its failure is the pod's (PauseStartError), not the container's (a ContainerStartError
    would put that container in back-off); nothing of the container or of pause is left."""
    from sandbox.errors import ContainerStartError, PauseStartError
    from sandbox.record import replace
    from sandbox.runtime.service import ContainerConfig

    runtime, images, config, layout = drive(sbx)
    missing = config.dirs.root / "missing"  # pause's root tmpfs cannot be mounted there (stage 2)
    config = replace(config, dirs=replace(config.dirs, root=missing))
    spec = config.pod.spec.containers[0]
    image = images.image_status("busybox:1.36")
    sandbox = None
    try:
        sandbox = runtime.run_pod_sandbox(config, wait=False)
        assert sandbox.pause is not None
        pause = sandbox.pause
        log_path = layout.pod_log_dir("default", "cri", config.uid) / "main" / "0.log"
        container = runtime.create_container(sandbox, ContainerConfig(
            spec, image, ["true"], ["PATH=/bin"], [], _identity(config.pod, spec, image), log_path))
        layer = container.layer.path if container.layer is not None else None
        with pytest.raises(PauseStartError) as failed:
            runtime.start_container(container)
        assert not isinstance(failed.value, ContainerStartError)
        assert str(missing) in str(failed.value)
        assert pause.exit is not None  # killed and reaped
        assert layer is not None and not layer.exists() and container.cgroup is None
    finally:
        runtime.remove_pod_sandbox(sandbox, config.journal, layout.lib, [])
    assert not Path(f"/proc/{pause.pid}").exists()
    _remove_record(replace(config, dirs=replace(config.dirs, root=missing.parent)))
