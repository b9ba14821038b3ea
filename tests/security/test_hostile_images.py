"""Images built by the test with hostile layouts where the runtime mounts (security-reliability.md
1.2, 1.11): a FIFO at /etc/hosts, `/var/run -> /run`, symlinks pointing out of the root, /proc and
/dev as symlinks. Each is refused with its path, quickly, or contained inside the root; nothing on
the host is touched (the fixture also checks the host's mount table)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from integration_conftest import Sandbox

pytestmark = pytest.mark.root


def _rootfs(store: Path, reference: str) -> Path:
    from sandbox.images.store import ImageStore

    return ImageStore(store).lookup(reference).rootfs


def hostile_image(sbx: Sandbox, name: str, change: Callable[[Path], None], *, in_store: bool = False) -> str:
    """A copy of the busybox rootfs changed by `change`, imported as `name`:1 (Cmd ["sh"]).

    `in_store`: `change` is applied to the imported rootfs in the store instead (`image import`
    copies files, so it cannot carry a FIFO, socket or device node; a marker file keeps the image's
    digest apart from busybox's)."""
    store = sbx.root / "lib" / "images"
    tree = sbx.tmp / f"tree-{name}"
    shutil.copytree(_rootfs(store, "docker.io/library/busybox:latest"), tree, symlinks=True)
    (tree / f"hostile-{name}").write_text(name)
    if not in_store:
        change(tree)
    subprocess.run(sbx.cmd("image", "import", str(tree), f"{name}:1", "--cmd", "sh"), check=True,
                   capture_output=True)
    if in_store:
        change(_rootfs(store, f"docker.io/library/{name}:1"))
    return f"{name}:1"


def pod(image: str, command: str, mounts: str = "") -> str:
    volume = "\n  volumes: [{name: v, emptyDir: {}}]" if mounts else ""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: hostile}}
spec:
  restartPolicy: Never{volume}
  containers:
  - name: c
    image: "{image}"
    command: ["sh", "-c", {json.dumps(command)}]
    volumeMounts: [{mounts}]
"""


def run(sbx: Sandbox, manifest: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    result = sbx.run("run", str(sbx.manifest(manifest)), timeout=60)
    return result, time.monotonic() - start


def test_a_fifo_at_etc_hosts_is_refused_at_once(sbx: Sandbox) -> None:
    """The runtime never opens a mount target for I/O: a FIFO would block that open forever."""
    def fifo(tree: Path) -> None:
        (tree / "etc" / "hosts").unlink()
        os.mkfifo(tree / "etc" / "hosts")

    result, took = run(sbx, pod(hostile_image(sbx, "fifo", fifo, in_store=True), "echo started"))
    assert result.returncode == 1, result
    assert "CreateContainerError" in result.stderr + result.stdout
    assert "must be mounted on ordinary file '/etc/hosts'" in result.stderr, result.stderr
    assert "started" not in result.stdout
    assert took < 10


@pytest.mark.parametrize("kind", ["socket", "device"])
def test_a_socket_or_device_at_a_mount_target_is_refused(sbx: Sandbox, kind: str) -> None:
    import stat

    def plant(tree: Path) -> None:
        target = tree / "etc" / "hostname"
        target.unlink(missing_ok=True)
        if kind == "socket":
            os.mknod(target, 0o666 | stat.S_IFSOCK)  # the inode a bound AF_UNIX socket leaves
        else:
            os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))

    result, _ = run(sbx, pod(hostile_image(sbx, kind, plant, in_store=True), "echo started"))
    assert result.returncode == 1
    assert "must be mounted on ordinary file '/etc/hostname'" in result.stderr, result.stderr


def test_var_run_symlink_to_run_is_followed_inside_the_root(sbx: Sandbox) -> None:
    """Debian and Ubuntu images have /var/run -> /run: a volume at /var/run/x lands on /run/x."""
    def var_run(tree: Path) -> None:
        (tree / "run").mkdir(exist_ok=True)
        shutil.rmtree(tree / "var" / "run", ignore_errors=True)
        (tree / "var" / "run").symlink_to("/run")

    image = hostile_image(sbx, "varrun", var_run)
    result, _ = run(sbx, pod(image, "echo hi > /var/run/x/f && cat /run/x/f && grep -c ' /run/x ' /proc/self/mountinfo",
                             "{name: v, mountPath: /var/run/x}"))
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[:2] == ["[c] hi", "[c] 1"], result.stdout


def test_a_symlink_out_of_the_root_at_a_file_target_is_refused(sbx: Sandbox, tmp_path: Path) -> None:
    """/etc/hosts -> a host file: refused with its path; the host file is neither written nor
    mounted over."""
    host_file = tmp_path / "host-hosts"
    host_file.write_text("HOST\n")

    def link(tree: Path) -> None:
        (tree / "etc" / "hosts").unlink()
        (tree / "etc" / "hosts").symlink_to(host_file)

    result, _ = run(sbx, pod(hostile_image(sbx, "outfile", link), "echo started"))
    assert result.returncode == 1
    assert "must be mounted on ordinary file '/etc/hosts'" in result.stderr, result.stderr
    assert host_file.read_text() == "HOST\n"


def test_a_symlink_out_of_the_root_at_a_volume_target_is_refused(sbx: Sandbox, tmp_path: Path) -> None:
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()

    def link(tree: Path) -> None:
        (tree / "data").symlink_to(host_dir)

    result, _ = run(sbx, pod(hostile_image(sbx, "outdir", link), "echo started", "{name: v, mountPath: /data}"))
    assert result.returncode == 1
    assert "must be mounted on ordinary directory '/data'" in result.stderr, result.stderr
    assert os.listdir(host_dir) == []


def test_a_parent_symlink_out_of_the_root_stays_inside_it(sbx: Sandbox, tmp_path: Path) -> None:
    """/mnt -> a host directory: /mnt/vol resolves as if the root were "/", so the volume lands on
    <root>/<that path>/vol inside the container's own layer; the host directory stays empty."""
    host_dir = tmp_path / "host-parent"
    host_dir.mkdir()

    def link(tree: Path) -> None:
        shutil.rmtree(tree / "mnt", ignore_errors=True)
        (tree / "mnt").symlink_to(host_dir)

    image = hostile_image(sbx, "outparent", link)
    result, _ = run(sbx, pod(image, "echo hi > /mnt/vol/f && cat /mnt/vol/f", "{name: v, mountPath: /mnt/vol}"))
    assert result.returncode == 0, result
    assert "[c] hi" in result.stdout
    assert os.listdir(host_dir) == []


@pytest.mark.parametrize("special", ["proc", "dev", "sys"])
def test_special_directories_as_symlinks_are_refused(sbx: Sandbox, tmp_path: Path, special: str) -> None:
    """runc mounts.bats "[/proc is a symlink]": "must be mounted on ordinary directory"."""
    host_dir = tmp_path / "host-special"
    host_dir.mkdir()

    def link(tree: Path) -> None:
        shutil.rmtree(tree / special, ignore_errors=True)
        (tree / special).symlink_to(host_dir)

    result, took = run(sbx, pod(hostile_image(sbx, f"link{special}", link), "echo started"))
    assert result.returncode == 1
    assert f"must be mounted on ordinary directory '/{special}'" in result.stderr, result.stderr
    assert os.listdir(host_dir) == []
    assert took < 10
