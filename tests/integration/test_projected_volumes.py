"""configMap, secret, downwardAPI and projected volumes seen from inside a running container:
contents, modes and group, read-only binds, secrets (and the other in-memory types) on a tmpfs
of their own, the ..data swap after `sandbox apply`, a subPath that keeps the old file, a pod
waiting for a missing ConfigMap, and nothing mounted or left after the pod."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

OBJECTS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {greeting: hello, other: x}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {token: sekrit}
"""

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s, labels: {app: web, tier: "1"}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {fsGroup: 2000}
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "trap 'exit 0' TERM; sleep 1000 & wait"]
    resources: {limits: {memory: 64Mi}}
    volumeMounts:
    - {name: cm, mountPath: /cm}
    - {name: cm, mountPath: /sub/greeting, subPath: greeting}
    - {name: sec, mountPath: /sec}
    - {name: info, mountPath: /info}
    - {name: all, mountPath: /all}
  volumes:
  - {name: cm, configMap: {name: cm, defaultMode: 0400}}
  - {name: sec, secret: {secretName: s, items: [{key: token, path: t/token, mode: 0600}]}}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: mem, resourceFieldRef: {containerName: c, resource: limits.memory, divisor: 1Mi}}
  - name: all
    projected:
      sources:
      - configMap: {name: cm, items: [{key: greeting, path: g/h}]}
      - secret: {name: s}
      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
"""

MOUNTED = ("cm", "sec", "info", "all")


def sh(sbx: Sandbox, pod: str, script: str) -> str:
    result = sbx.run("exec", pod, "-c", "c", "--", "sh", "-c", script)
    assert result.returncode == 0, (script, result.stdout, result.stderr)
    return result.stdout.strip()


def mountinfo(sbx: Sandbox, pod: str) -> dict[str, tuple[str, str]]:
    """The container's own mountinfo: mount point -> (per-mount options, file system type)."""
    found = {}
    for line in sh(sbx, pod, "cat /proc/self/mountinfo").splitlines():
        fields = line.split()
        sep = fields.index("-")
        found[fields[4]] = (fields[5], fields[sep + 1])
    return found


def host_volume(sbx: Sandbox, uid: str, plugin: str, name: str) -> Path:
    return sbx.root / "lib" / "pods" / uid / "volumes" / f"kubernetes.io~{plugin}" / name


def test_contents_modes_tmpfs_and_read_only(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(OBJECTS + "---" + POD % {"name": "vols"}), "-q")
    state = sbx.wait_running("vols")
    assert sh(sbx, "vols", "cat /cm/greeting; echo; cat /cm/other") == "hello\nx"
    assert sh(sbx, "vols", "readlink /cm/greeting; readlink /cm/..data").startswith("..data/greeting\n..20")
    # defaultMode 0400 plus the group read fsGroup adds (SetVolumeOwnership on a read-only volume)
    assert sh(sbx, "vols", "stat -L -c '%a %u %g' /cm/greeting /sec/t/token /info/labels") == \
        "440 0 2000\n640 0 2000\n644 0 2000"
    assert sh(sbx, "vols", "cat /sec/t/token") == "sekrit"
    assert sh(sbx, "vols", "cat /info/labels; echo; cat /info/mem") == 'app="web"\ntier="1"\n64'
    assert sh(sbx, "vols", "cat /all/g/h /all/token /all/name") == "hellosekritvols"
    mounts = mountinfo(sbx, "vols")
    for name in MOUNTED:
        options, fstype = mounts[f"/{name}"]
        assert options.split(",")[0] == "ro", (name, options)
        assert (fstype == "tmpfs") == (name != "cm"), (name, fstype)  # configMap: the kubelet's disk emptyDir
        out = sbx.run("exec", "vols", "-c", "c", "--", "sh", "-c", f"echo x > /{name}/new")
        assert out.returncode != 0 and "Read-only file system" in out.stderr, (name, out)
    assert mounts["/sub/greeting"][0].split(",")[0] == "ro"
    # outside: the in-memory volumes are mount points of the runtime's own
    uid = state["uid"]
    secret_dir = host_volume(sbx, uid, "secret", "sec")
    assert os.path.ismount(secret_dir) and os.path.ismount(host_volume(sbx, uid, "projected", "all"))
    assert not os.path.ismount(host_volume(sbx, uid, "configmap", "cm"))
    sbx.stop(proc)
    assert not secret_dir.exists()  # the sbx fixture checks that no mount is left


def test_update_reaches_running_container_but_not_subpath(sbx: Sandbox) -> None:
    objects = sbx.manifest(OBJECTS, "objects.yaml")
    assert sbx.run("apply", "-f", str(objects)).returncode == 0
    proc = sbx.start(sbx.manifest(POD % {"name": "upd"}), "-q")
    sbx.wait_running("upd")
    before = sh(sbx, "upd", "readlink /cm/..data")
    assert sh(sbx, "upd", "cat /cm/greeting /sub/greeting") == "hellohello"
    changed = sbx.manifest(OBJECTS.replace("greeting: hello, other: x", "greeting: changed"), "changed.yaml")
    assert sbx.run("apply", "-f", str(changed)).returncode == 0
    # the resync runs every 10 s (the kubelet's sync is about a minute)
    sbx.wait_for(lambda: sh(sbx, "upd", "cat /cm/greeting") == "changed", timeout=30, message="the ..data swap")
    assert sh(sbx, "upd", "readlink /cm/..data") != before
    assert sh(sbx, "upd", "ls /cm") == "greeting"  # `other` is gone: a stale entry removed
    assert sh(sbx, "upd", "cat /all/g/h") == "changed"
    assert sh(sbx, "upd", "cat /sub/greeting") == "hello"  # subPath binds one file: never updated
    sbx.stop(proc)


def test_missing_config_map_keeps_the_pod_waiting_until_it_exists(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: waits}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "trap 'exit 0' TERM; sleep 1000 & wait"]
    volumeMounts: [{name: cm, mountPath: /cm}]
  volumes:
  - {name: cm, configMap: {name: late}}
""")
    proc = sbx.start(manifest, "-q")

    def failed_mount() -> bool:
        described = sbx.run("describe", "pod", "waits").stdout
        return 'MountVolume.SetUp failed for volume "cm" : configmap "late" not found' in described

    sbx.wait_for(failed_mount, timeout=20, message="a FailedMount event")
    state = sbx.state("waits")
    assert state is not None
    assert state["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    late = sbx.manifest("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\ndata: {k: v}\n", "late.yaml")
    assert sbx.run("apply", "-f", str(late)).returncode == 0
    sbx.wait_running("waits", timeout=30)
    assert sh(sbx, "waits", "cat /cm/k") == "v"
    sbx.stop(proc)


def test_nothing_is_left_after_a_killed_runtime(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(OBJECTS + "---" + POD % {"name": "killed"}), "-q")
    uid = sbx.wait_running("killed")["uid"]
    secret_dir = host_volume(sbx, uid, "secret", "sec")
    assert os.path.ismount(secret_dir)
    proc.kill()
    sbx.finish(proc)
    result = sbx.run("delete", "killed")
    assert result.returncode == 0, result.stderr
    assert not secret_dir.exists()
    assert subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout.count(
        str(sbx.root)) == 0


EPHEMERAL_POD = """
apiVersion: v1
kind: Pod
metadata: {name: eph}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "echo env=$EPH vol=$(cat /d/eph)"]
    env:
    - {name: EPH, valueFrom: {resourceFieldRef: {resource: limits.ephemeral-storage, divisor: 1Mi}}}
    volumeMounts: [{name: d, mountPath: /d}]
  volumes:
  - name: d
    downwardAPI:
      items: [{path: eph, resourceFieldRef: {containerName: c, resource: limits.ephemeral-storage, divisor: 1Mi}}]
"""


def test_ephemeral_storage_without_a_limit_is_the_size_of_the_roots_own_filesystem(sbx: Sandbox) -> None:
    """The node's allocatable ephemeral storage (cadvisor's RootFsInfo of the kubelet's root
    directory) is the filesystem of `--root`'s lib directory, in env and in a downwardAPI file:
    here a 96 MiB tmpfs, not the system root's filesystem."""
    lib = sbx.root / "lib"
    images = os.readlink(lib / "images")
    (lib / "images").unlink()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m,mode=0755", "tmpfs", str(lib)], check=True)
    try:
        (lib / "images").symlink_to(images)
        code, out, err = sbx.finish(sbx.start(sbx.manifest(EPHEMERAL_POD)))
        assert code == 0, err
        assert "env=96 vol=96" in out, out
        assert not any((lib / "containers").iterdir()) if (lib / "containers").exists() else True
    finally:
        subprocess.run(["umount", str(lib)], check=True)
        (lib / "images").symlink_to(images)
