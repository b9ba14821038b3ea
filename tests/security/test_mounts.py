"""The mount boundary of a default container (security-reliability.md 1.3, 1.4, 1.8): masked and
read-only /proc and /sys paths, nosuid,nodev on every mount it can write, device nodes it makes
that cannot be opened. Each attempt is made from inside the container's main process; the mount
table is read from outside (/proc/PID/mountinfo), and the host is checked unchanged."""

from __future__ import annotations

import json
import os

import pytest
from integration_conftest import Sandbox

pytestmark = pytest.mark.root

# Each line prints `name: <result>`; a result is the shell's error message or what was read.
ATTEMPTS = r"""
try() { name=$1; shift; out=$( ("$@") 2>&1 ) && echo "$name: ok $out" || echo "$name: failed $out"; }
try core_pattern sh -c 'cat /proc/sys/kernel/core_pattern > /proc/sys/kernel/core_pattern'
try drop_caches sh -c 'echo 1 > /proc/sys/vm/drop_caches'
try panic sh -c 'echo 0 > /proc/sys/kernel/panic'
try sysrq sh -c 'echo h > /proc/sysrq-trigger'
try keys sh -c 'wc -c < /proc/keys'
try timer_list sh -c 'wc -c < /proc/timer_list'
try kcore sh -c 'wc -c < /proc/kcore'
try firmware sh -c 'ls -A /sys/firmware | wc -l'
try sys_write sh -c 'echo 1 > /sys/kernel/profiling'
try kcore_rm rm -f /proc/kcore
try timer_list_touch touch /proc/timer_list
try mknod_tmp sh -c 'rm -f /tmp/n; mknod /tmp/n c 1 3 && echo x > /tmp/n'
try mknod_dev sh -c 'rm -f /dev/n; mknod /dev/n c 1 3 && echo x > /dev/n'
try mknod_shm sh -c 'rm -f /dev/shm/n; mknod /dev/shm/n c 1 3 && echo x > /dev/shm/n'
try mknod_volume sh -c 'rm -f /data/n; mknod /data/n c 1 3 && echo x > /data/n'
try dev_null sh -c 'echo x > /dev/null && head -c 3 /dev/zero | wc -c'
try hosts sh -c 'echo "10.0.0.1 extra" >> /etc/hosts && tail -1 /etc/hosts'
echo done
"""

POD = """
apiVersion: v1
kind: Pod
metadata: {name: bounds}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: probe
    image: busybox
    command: ["sh", "-c", %s]
    volumeMounts: [{name: data, mountPath: /data}]
  - name: idle
    image: busybox
    command: ["sleep", "1000"]
    volumeMounts: [{name: data, mountPath: /data}]
"""


def _results(out: str) -> dict[str, str]:
    lines = [line.removeprefix("[probe] ") for line in out.splitlines() if line.startswith("[probe] ")]
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def _mountinfo(pid: int) -> dict[str, tuple[set[str], str, set[str]]]:
    """mount point -> (per-mount options, fstype, super options); the last mount at a point wins."""
    table = {}
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            table[fields[4]] = (set(fields[5].split(",")), tail[0], set(tail[2].split(",")))
    return table


def _present(**paths: str) -> list[str]:
    """The names of the checks whose path this kernel has (no /proc/kcore or /proc/sysrq-trigger
    without CONFIG_PROC_KCORE / CONFIG_MAGIC_SYSRQ)."""
    return [name for name, path in paths.items() if os.path.exists(path)]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def bounds(sbx: Sandbox) -> tuple[dict[str, str], dict[str, tuple[set[str], str, set[str]]]]:
    """Run the attempts in a default container; returns their results and the idle container's
    mount table, checking that the host's core_pattern did not change."""
    core_pattern = _read("/proc/sys/kernel/core_pattern")
    proc = sbx.start(sbx.manifest(POD % json.dumps(ATTEMPTS)))
    sbx.wait_for(lambda: (s := sbx.state("bounds")) and len(s["status"].get("containerStatuses", [])) == 2
                 and "terminated" in s["status"]["containerStatuses"][0]["state"]
                 and "running" in s["status"]["containerStatuses"][1]["state"], message="probe to finish")
    mounts = _mountinfo(sbx.pid_of("bounds", "idle"))
    # The same attempts through `sandbox exec`, which joins the container's mount namespace.
    execd = sbx.run("exec", "bounds", "-c", "idle", "--", "sh", "-c", ATTEMPTS)
    code, out, err = sbx.stop(proc)
    results = _results(out)
    assert _results("".join(f"[probe] {line}\n" for line in execd.stdout.splitlines())) == results, execd
    assert "done" in out, (out, err)
    assert _read("/proc/sys/kernel/core_pattern") == core_pattern
    return results, mounts


def test_proc_sys_and_sysrq_are_read_only(bounds: tuple[dict[str, str], dict[str, tuple[set[str], str, set[str]]]]) -> None:
    results, mounts = bounds
    for name in ("core_pattern", "drop_caches", "panic", "sys_write", *_present(sysrq="/proc/sysrq-trigger",
                                                                                    kcore_rm="/proc/kcore")):
        assert results[name].startswith("failed") and "Read-only file system" in results[name], (name, results[name])
    for path in ("/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/fs", "/proc/irq"):
        if path in mounts:  # missing paths are skipped (/proc/bus without PCI)
            options = mounts[path][0]
            assert {"ro", "nosuid", "nodev", "noexec"} <= options, (path, options)
    assert "/proc/sys" in mounts
    assert ("/proc/sysrq-trigger" in mounts) == os.path.exists("/proc/sysrq-trigger")
    assert "ro" in mounts["/sys"][0]


def test_masked_paths_read_empty(bounds: tuple[dict[str, str], dict[str, tuple[set[str], str, set[str]]]]) -> None:
    results, mounts = bounds
    for name in ("keys", "timer_list", "firmware", *_present(kcore="/proc/kcore")):
        assert results[name] == "ok 0", (name, results[name])
    for name in ("timer_list_touch",):  # the host's /dev/null inode is not touched through a mask
        assert results[name].startswith("failed") and "Read-only file system" in results[name], (name, results[name])
    for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/scsi"):
        if os.path.exists(path):  # a path this kernel lacks is skipped
            assert path in mounts and mounts[path][1] in ("devtmpfs", "tmpfs"), (path, mounts.get(path))
        else:
            assert path not in mounts
    assert os.listdir("/sys/firmware"), "the host has firmware entries to hide"
    options, fstype, _ = mounts["/sys/firmware"]
    assert fstype == "tmpfs" and "ro" in options


def test_writable_mounts_are_nosuid_nodev(bounds: tuple[dict[str, str], dict[str, tuple[set[str], str, set[str]]]]) -> None:
    _, mounts = bounds
    for path in ("/", "/dev", "/dev/shm", "/data", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
                 "/dev/termination-log", "/dev/mqueue", "/proc"):
        options = mounts[path][0]
        assert {"nosuid", "nodev"} <= options, (path, options)
    assert mounts["/"][1] == "overlay"
    # containerd mounts /etc/hostname and /etc/resolv.conf read-only only with readOnlyRootFilesystem
    for path in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf"):
        assert "rw" in mounts[path][0], (path, mounts[path])


def test_device_nodes_made_inside_cannot_be_opened(bounds: tuple[dict[str, str], dict[str, tuple[set[str], str, set[str]]]]) -> None:
    """CAP_MKNOD is in the default set, so mknod succeeds; opening the node does not (nodev)."""
    results, mounts = bounds
    for name in ("mknod_tmp", "mknod_dev", "mknod_shm", "mknod_volume"):
        assert results[name].startswith("failed") and "Permission denied" in results[name], (name, results[name])
    # The standard nodes are bind mounts of the host's own, which still work.
    assert results["dev_null"] == "ok 3"
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        assert "nodev" not in mounts[f"/dev/{node}"][0], node


def test_pod_files_are_bounded_and_off_the_host_run(bounds: tuple[dict[str, str], dict[str, tuple[set[str], str, set[str]]]]) -> None:
    results, mounts = bounds
    assert results["hosts"] == "ok 10.0.0.1 extra"
    for path in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/termination-log"):
        _, fstype, super_options = mounts[path]
        assert fstype == "tmpfs" and "size=1024k" in super_options, (path, fstype, super_options)


def test_a_container_cannot_fill_the_host_through_its_pod_files(sbx: Sandbox) -> None:
    """Writing /etc/hosts without end stops at the pod's bound (ENOSPC), 1 MiB of the pod's own."""
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: filler}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "head -c 8388608 /dev/zero >> /etc/hosts; echo rc=$?; wc -c < /etc/hosts"]
""")
    result = sbx.run("run", str(manifest))
    assert "[c] rc=1" in result.stdout, result  # the write failed (busybox says "I/O error" for ENOSPC)
    sizes = [int(line.split()[-1]) for line in result.stdout.splitlines() if line.strip().split()[-1].isdigit()]
    assert sizes and 0 < sizes[-1] <= 1024 * 1024


def test_a_read_only_root_keeps_nosuid_nodev(sbx: Sandbox) -> None:
    """readOnlyRootFilesystem remounts the root read-only without dropping its other flags (a plain
    MS_REMOUNT|MS_BIND|MS_RDONLY would clear nosuid,nodev)."""
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: roroot}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    securityContext: {readOnlyRootFilesystem: true}
    command: ["sh", "-c", "touch /x; grep -E ' (/|/etc/hosts|/etc/hostname|/etc/resolv.conf) r[wo],' /proc/self/mountinfo"]
""")
    result = sbx.run("run", str(manifest))
    assert "Read-only file system" in result.stdout + result.stderr, result
    lines = {line.split()[5]: line for line in result.stdout.splitlines() if line.startswith("[c] ") and
             len(line.split()) > 6}
    line = lines["/"]
    assert {"ro", "nosuid", "nodev"} <= set(line.split()[6].split(",")), line
    # containerd's /etc/hostname and /etc/resolv.conf follow the root; the kubelet's /etc/hosts stays read-write
    for path, mode in (("/etc/hostname", "ro"), ("/etc/resolv.conf", "ro"), ("/etc/hosts", "rw")):
        assert mode in lines[path].split()[6].split(","), lines[path]
