"""Mount plans, image references, root layout: pure logic, no kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.images.reference import parse_image_ref
from sandbox.paths import RootLayout, under
from sandbox.rootfs.plan import (
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    ContainerFiles,
    OpKind,
    container_plan,
    overlay_options,
    pause_plan,
)

FILES = ContainerFiles("/run/p/etc-hosts", "/run/p/hostname", "/run/p/resolv.conf")


def test_container_plan_order_and_flags() -> None:
    plan = container_plan("/m", "/lower", "/up", "/work", FILES)
    assert plan[0].kind == OpKind.ROOT and plan[0].data == "lowerdir=/lower,upperdir=/up,workdir=/work,volatile"
    targets = [op.target for op in plan]
    # /dev is mounted before anything inside it, /proc before the /dev links that point into it.
    assert targets.index("dev") < targets.index("dev/null") < targets.index("dev/pts")
    assert targets.index("proc") < targets.index("dev/fd")
    by_target = {op.target: op for op in plan}
    assert by_target["proc"].flags == MS_NOSUID | MS_NODEV | MS_NOEXEC
    assert by_target["sys"].flags & MS_RDONLY
    assert by_target["dev/shm"].kind == OpKind.POD_MOUNT
    # containerd's /etc/hostname and /etc/resolv.conf: read-only only with readOnlyRootFilesystem
    assert not by_target["etc/resolv.conf"].flags & MS_RDONLY and not by_target["etc/hostname"].flags & MS_RDONLY
    assert not by_target["etc/hosts"].flags & MS_RDONLY
    assert by_target["dev/ptmx"].kind == OpKind.SYMLINK and by_target["dev/ptmx"].source == "pts/ptmx"
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        assert by_target[f"dev/{node}"].kind == OpKind.BIND and by_target[f"dev/{node}"].source == f"/dev/{node}"
    assert all(not op.target.startswith("/") for op in plan[1:])


def test_a_read_only_root_makes_hostname_and_resolv_conf_read_only_not_hosts() -> None:
    by_target = {op.target: op for op in container_plan("/m", "/l", "/u", "/w", FILES, read_only_root=True)}
    assert by_target["etc/resolv.conf"].flags & MS_RDONLY and by_target["etc/hostname"].flags & MS_RDONLY
    assert not by_target["etc/hosts"].flags & MS_RDONLY  # the kubelet's own mount, read-write always


def test_container_plan_for_host_ipc_binds_the_hosts_shm() -> None:
    plan = container_plan("/m", "/l", "/u", "/w", FILES, pod_shm=False)
    shm = next(op for op in plan if op.target == "dev/shm")
    assert shm.kind == OpKind.BIND and shm.source == "/dev/shm"


def test_pause_plan_is_a_tmpfs_with_the_pod_shm() -> None:
    plan = pause_plan("/run/p/pause-root")
    assert [(op.kind, op.target, op.fstype) for op in plan] == [
        (OpKind.ROOT, "/run/p/pause-root", "tmpfs"), (OpKind.MOUNT, "shm", "tmpfs")]


def test_overlay_options_refuse_separators() -> None:
    with pytest.raises(ValueError):
        overlay_options("/a,b", "/u", "/w")
    with pytest.raises(ValueError):
        overlay_options("/a", "/u:x", "/w")


def test_describe_for_traces() -> None:
    plan = container_plan("/m", "/l", "/u", "/w", FILES)
    lines = [op.describe() for op in plan]
    assert "mount proc on /proc (nosuid,nodev,noexec)" in lines
    assert "bind /dev/null on /dev/null" in lines
    assert "symlink /dev/ptmx -> pts/ptmx" in lines


@pytest.mark.parametrize("text,name", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("user/app:v1", "docker.io/user/app:v1"),
    ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("localhost/app:1", "localhost/app:1"),
    ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
])
def test_image_references(text: str, name: str) -> None:
    assert parse_image_ref(text).name == name


@pytest.mark.parametrize("text", ["", "Busybox", "busybox:", "busybox@sha256:abc", "a//b", "busybox:bad tag"])
def test_bad_image_references(text: str) -> None:
    with pytest.raises(ValueError):
        parse_image_ref(text)


def test_root_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_ROOT", raising=False)
    system = RootLayout.from_root()
    assert (system.lib, system.run, system.logs) == (Path("/var/lib/sandbox"), Path("/run/sandbox"), Path("/var/log/pods"))
    monkeypatch.setenv("SANDBOX_ROOT", "/tmp/x")
    moved = RootLayout.from_root()
    assert moved.lib == Path("/tmp/x/lib") and moved.run == Path("/tmp/x/run") and moved.logs == Path("/tmp/x/log/pods")
    assert RootLayout.from_root("/r").pod_state_dir("default", "web") == Path("/r/run/pods/default_web")
    assert RootLayout.from_root("/r").pod_log_dir("ns", "p", "u") == Path("/r/log/pods/ns_p_u")


@pytest.mark.parametrize("part", ["..", ".", "", "a/b", "x\0"])
def test_under_refuses_escapes(part: str) -> None:
    with pytest.raises(ValueError):
        under(Path("/base"), part)
