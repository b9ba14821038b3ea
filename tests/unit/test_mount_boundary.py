"""The container's mount boundary as plan data (masked/read-only paths, nosuid,nodev on what it can
write) and the mountPath validation that keeps volumes off the runtime's own mounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import SpecError
from sandbox.pod.sandbox import SandboxDirs, pod_files_root
from sandbox.pod.volumes import mount_ops
from sandbox.rootfs.plan import (
    MASKED_PATHS,
    MS_NODEV,
    MS_NOSUID,
    MS_RDONLY,
    READONLY_PATHS,
    ContainerFiles,
    MountOp,
    OpKind,
    container_plan,
)
from sandbox.spec.load import load_pod_text

FILES = ContainerFiles("/p/files/etc-hosts", "/p/files/hostname", "/p/files/resolv.conf")


def test_default_plan_masks_and_protects_proc_and_sys() -> None:
    plan = container_plan("/m", "/l", "/u", "/w", FILES)
    masks = [op.target for op in plan if op.kind == OpKind.MASK]
    readonly = [op.target for op in plan if op.kind == OpKind.READONLY]
    # Kubernetes defaultMaskedPaths / readonlyPaths, exactly.
    assert masks == ["proc/asound", "proc/acpi", "proc/kcore", "proc/keys", "proc/latency_stats",
                     "proc/timer_list", "proc/timer_stats", "proc/sched_debug", "proc/scsi",
                     "sys/firmware", "sys/devices/virtual/powercap"] == list(MASKED_PATHS)
    assert readonly == ["proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"] == list(READONLY_PATHS)
    targets = [op.target for op in plan]
    # Masks go on after the filesystems they mask are mounted.
    assert targets.index("proc") < targets.index("proc/kcore") and targets.index("sys") < targets.index("sys/firmware")
    assert next(op for op in plan if op.target == "sys").flags & MS_RDONLY
    assert "mask /proc/kcore" in [op.describe() for op in plan]
    assert "read-only /proc/sys" in [op.describe() for op in plan]


def test_privileged_and_unmasked_plans() -> None:
    unmasked = container_plan("/m", "/l", "/u", "/w", FILES, masked=False)
    assert not [op for op in unmasked if op.kind in (OpKind.MASK, OpKind.READONLY)]
    assert next(op for op in unmasked if op.target == "sys").flags & MS_RDONLY  # procMount: /sys stays ro
    privileged = container_plan("/m", "/l", "/u", "/w", FILES, masked=False, sys_writable=True)
    assert not next(op for op in privileged if op.target == "sys").flags & MS_RDONLY


def test_everything_a_container_can_write_is_nosuid_nodev() -> None:
    plan = container_plan("/m", "/l", "/u", "/w", FILES)
    by_target = {op.target: op for op in plan}
    quiet = MS_NOSUID | MS_NODEV
    assert plan[0].kind == OpKind.ROOT and plan[0].flags & quiet == quiet
    for target in ("dev", "dev/mqueue", "etc/hosts", "etc/hostname", "etc/resolv.conf"):
        assert by_target[target].flags & quiet == quiet, target
    # The standard nodes are separate binds of the host's nodes: not nodev, so they still open.
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        assert by_target[f"dev/{node}"].flags & MS_NODEV == 0
    host_ipc = container_plan("/m", "/l", "/u", "/w", FILES, pod_shm=False)
    shm = next(op for op in host_ipc if op.target == "dev/shm")
    assert shm.flags & quiet == quiet


def test_volume_binds_are_nosuid_nodev() -> None:
    pod = load_pod_text("""
apiVersion: v1
kind: Pod
metadata: {name: v}
spec:
  volumes: [{name: a, emptyDir: {}}, {name: b, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    volumeMounts: [{name: a, mountPath: /a}, {name: b, mountPath: b, readOnly: true}]
""")
    ops = mount_ops(pod.spec.containers[0], {"a": Path("/v/a"), "b": Path("/v/b")})
    assert [(op.kind, op.target, op.source) for op in ops] == [(OpKind.BIND, "a", "/v/a"), (OpKind.BIND, "b", "/v/b")]
    assert all(op.flags & (MS_NOSUID | MS_NODEV) == MS_NOSUID | MS_NODEV for op in ops)
    assert ops[1].flags & MS_RDONLY and not ops[0].flags & MS_RDONLY


def test_pod_files_live_under_the_pods_directory_on_disk() -> None:
    dirs = SandboxDirs(Path("/run/sandbox/pods/default_x"), pod_files_root(Path("/var/lib/sandbox/pods/uid-1")))
    files = dirs.files
    assert files.hosts == "/var/lib/sandbox/pods/uid-1/files/etc-hosts"
    assert files.hostname.startswith("/var/lib/sandbox/pods/uid-1/files/")
    assert files.resolv_conf.startswith("/var/lib/sandbox/pods/uid-1/files/")
    assert dirs.pause_root == Path("/run/sandbox/pods/default_x")  # mounted on in pause's namespace only


POD = """
apiVersion: v1
kind: Pod
metadata: {{name: v}}
spec:
  volumes: [{{name: a, emptyDir: {{}}}}]
  containers:
  - name: c
    image: busybox
    {extra}
    volumeMounts: [{{name: a, mountPath: "{path}"}}]
"""


@pytest.mark.parametrize("path", ["/proc", "/proc/", "/sys", "/dev", "/dev/x", "/sys/fs/cgroup", "proc",
                                  "//proc", "/x/../proc/sys", "/etc/hosts", "/etc/hostname",
                                  "/etc/resolv.conf", "/dev/shm", "/dev/termination-log"])
def test_volumes_cannot_go_over_runtime_mounts(path: str) -> None:
    with pytest.raises(SpecError) as info:
        load_pod_text(POD.format(path=path, extra=""))
    messages = [str(e) for e in info.value.errors]
    assert len(messages) == 1
    assert messages[0].startswith(f'spec.containers[0].volumeMounts[0].mountPath: Invalid value: "{path}": must not be')


def test_the_termination_message_path_is_a_runtime_mount() -> None:
    with pytest.raises(SpecError) as info:
        load_pod_text(POD.format(path="/msg/end", extra="terminationMessagePath: /msg/end"))
    assert "a file the container runtime mounts" in str(info.value.errors[0])


@pytest.mark.parametrize("path", ["/data", "/procfs", "/device", "/system", "/etc", "/var/run/x", "/etc/hosts.d"])
def test_other_mount_paths_are_accepted(path: str) -> None:
    load_pod_text(POD.format(path=path, extra=""))


def test_volumes_and_pod_files_are_ordered_by_depth() -> None:
    """containerd sorts mounts by target depth: a volume at /etc goes under /etc/hosts, one at
    /etc/hosts.d/x over it; equal depths keep their order."""
    extra = [MountOp(OpKind.BIND, "etc/app/conf", "/v/c"), MountOp(OpKind.BIND, "etc", "/v/etc"),
             MountOp(OpKind.BIND, "dev/termination-log", "/p/files/msg")]
    plan = container_plan("/m", "/l", "/u", "/w", FILES, extra=extra)
    late = [op.target for op in plan[-6:]]
    assert late == ["etc", "etc/hosts", "etc/hostname", "etc/resolv.conf", "dev/termination-log", "etc/app/conf"]
    assert plan[0].kind == OpKind.ROOT and plan[1].target == "proc"
