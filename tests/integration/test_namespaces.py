"""The pod's namespaces, checked from outside through /proc/PID/ns/* inodes."""

from __future__ import annotations

import os

import pytest
from conftest import Sandbox, ns_inode

pytestmark = pytest.mark.root

TWO_SLEEPERS = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  shareProcessNamespace: {share}
  terminationGracePeriodSeconds: 2
  containers:
  - {{name: a, image: busybox, command: ["sleep", "1000"]}}
  - {{name: b, image: busybox, command: ["sleep", "1000"]}}
"""


def test_containers_share_net_ipc_uts_with_pause_and_own_mount_and_pid(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(TWO_SLEEPERS.format(name="ns-own", share="false")))
    sbx.wait_running("ns-own", containers=2)
    pause, a, b = sbx.pause_pid("ns-own"), sbx.pid_of("ns-own", "a"), sbx.pid_of("ns-own", "b")
    host = os.getpid()
    for ns in ("net", "ipc", "uts"):
        assert ns_inode(a, ns) == ns_inode(b, ns) == ns_inode(pause, ns) != ns_inode(host, ns), ns
    assert len({ns_inode(p, "mnt") for p in (host, pause, a, b)}) == 4
    # Kubernetes' default: each container's main process is PID 1 of a PID namespace of its own.
    assert len({ns_inode(p, "pid") for p in (host, pause, a, b)}) == 4
    for pid in (a, b):
        with open(f"/proc/{pid}/status") as f:
            nspid = next(line for line in f if line.startswith("NSpid:")).split()
        assert nspid[-1] == "1"
    sbx.stop(proc)


def test_share_process_namespace_puts_pause_at_pid_1(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(TWO_SLEEPERS.format(name="ns-shared", share="true")))
    sbx.wait_running("ns-shared", containers=2)
    pause, a, b = sbx.pause_pid("ns-shared"), sbx.pid_of("ns-shared", "a"), sbx.pid_of("ns-shared", "b")
    assert ns_inode(a, "pid") == ns_inode(b, "pid") == ns_inode(pause, "pid") != ns_inode(os.getpid(), "pid")
    result = sbx.run("exec", "ns-shared", "-c", "a", "--", "ps", "-o", "pid,args")
    assert result.returncode == 0, result.stderr
    lines = [line.split(None, 1) for line in result.stdout.strip().splitlines()[1:]]
    by_pid = {int(pid): args for pid, args in lines}
    assert by_pid[1].strip() == "/pause"
    assert sum(1 for args in by_pid.values() if args.strip() == "sleep 1000") == 2, by_pid
    sbx.stop(proc)


def test_hostname_and_loopback(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(TWO_SLEEPERS.format(name="host-name", share="false")))
    sbx.wait_running("host-name", containers=2)
    assert sbx.run("exec", "host-name", "--", "hostname").stdout.strip() == "host-name"
    ip = sbx.run("exec", "host-name", "--", "ip", "-o", "link", "show", "lo").stdout
    assert "UP" in ip and "LOOPBACK" in ip
    links = sbx.run("exec", "host-name", "--", "ls", "/sys/class/net").stdout.split()
    assert links == ["eth0", "lo"], links  # lo and the pod network's end of its veth, nothing of the host's
    sbx.stop(proc)


def test_network_none_gives_only_loopback(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(TWO_SLEEPERS.format(name="no-net", share="false")), "--network", "none")
    sbx.wait_running("no-net", containers=2)
    links = sbx.run("exec", "no-net", "--", "ip", "-o", "link").stdout.strip().splitlines()
    assert len(links) == 1 and "LOOPBACK" in links[0] and "UP" in links[0], links
    sbx.stop(proc)


def test_localhost_is_shared_between_containers(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: local}
spec:
  restartPolicy: Never
  containers:
  - name: server
    image: busybox
    command: ["sh", "-c", "echo pong | nc -l -p 9000"]
  - name: client
    image: busybox
    command: ["sh", "-c", "until out=$(nc 127.0.0.1 9000 </dev/null) && [ -n \\"$out\\" ]; do sleep 0.05; done; echo got:$out"]
""")
    code, out, err = sbx.finish(sbx.start(manifest), timeout=30)
    assert code == 0, err
    assert "[client] got:pong" in out
    assert "pod default/local: Succeeded" in err


def test_dev_shm_is_shared_and_mounts_are_as_specified(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: shm}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: writer
    image: busybox
    command: ["sh", "-c", "echo hello > /dev/shm/token; sleep 1000"]
  - name: reader
    image: busybox
    command: ["sh", "-c", "until [ -s /dev/shm/token ]; do sleep 0.05; done; cat /dev/shm/token; cat /proc/self/mountinfo"]
""")
    proc = sbx.start(manifest)
    sbx.wait_for(lambda: (s := sbx.state("shm")) and "terminated" in
                 s["status"]["containerStatuses"][1]["state"], message="reader to finish")
    code, out, err = sbx.stop(proc)
    assert "[reader] hello" in out
    lines = [line.removeprefix("[reader] ") for line in out.splitlines()]
    mounts = {line.split(" - ")[0].split()[4]: line for line in lines if " - " in line}
    assert " - proc " in mounts["/proc"] and "nosuid" in mounts["/proc"] and "noexec" in mounts["/proc"]
    assert " ro," in mounts["/sys"] + "," and " - sysfs " in mounts["/sys"]
    assert " - devpts " in mounts["/dev/pts"]
    assert " - mqueue " in mounts["/dev/mqueue"]
    assert " - overlay " in mounts["/"]
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        assert f"/dev/{node}" in mounts
    assert not any("shared:" in line for line in mounts.values()), "container mounts must not propagate"


def test_a_symlink_in_the_image_cannot_redirect_a_mount(sbx: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An image whose /proc is a symlink to a host path is refused ("must be mounted on ordinary
    directory", runc mounts.bats), and nothing is mounted on the host."""
    import shutil
    import subprocess

    store = sbx.root / "lib" / "images"
    from sandbox.images.store import ImageStore

    tree = tmp_path / "evil"
    shutil.copytree(ImageStore(store).lookup("busybox").rootfs, tree, symlinks=True)
    (tree / "proc").rmdir()
    (tree / "proc").symlink_to("/tmp")
    subprocess.run(sbx.cmd("image", "import", str(tree), "evil:1", "--cmd", "true"), check=True, capture_output=True)
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: evil}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: "evil:1"}
""")
    result = sbx.run("run", str(manifest))
    assert result.returncode == 1
    assert "must be mounted on ordinary directory '/proc'" in result.stderr


def test_containers_get_the_default_capability_set(sbx: Sandbox) -> None:
    """A root container keeps containerd's 14 default capabilities, no more (CapEff a80425fb), in
    its main process and in `sandbox exec`; it cannot mount."""
    proc = sbx.start(sbx.manifest(TWO_SLEEPERS.format(name="caps", share="false")))
    sbx.wait_running("caps", containers=2)
    with open(f"/proc/{sbx.pid_of('caps', 'a')}/status") as f:
        status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    for field in ("CapPrm", "CapEff", "CapBnd"):
        assert status[field].strip() == "00000000a80425fb", (field, status[field])
    assert status["CapInh"].strip() == status["CapAmb"].strip() == "0000000000000000"
    inside = sbx.run("exec", "caps", "--", "sh", "-c", "grep CapEff /proc/self/status; mount -t tmpfs x /mnt")
    assert "00000000a80425fb" in inside.stdout and inside.returncode != 0
    sbx.stop(proc)


def test_host_network_pid_and_ipc(sbx: Sandbox) -> None:
    """hostNetwork (with the host's UTS namespace), hostPID and hostIPC put the containers in the
    host's namespaces; the mount namespace stays the container's own."""
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: on-host}
spec:
  hostNetwork: true
  hostPID: true
  hostIPC: true
  terminationGracePeriodSeconds: 2
  containers:
  - {name: a, image: busybox, command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]}
""")
    proc = sbx.start(manifest)
    sbx.wait_running("on-host")
    a, host = sbx.pid_of("on-host", "a"), os.getpid()
    for ns in ("net", "uts", "pid", "ipc"):
        assert ns_inode(a, ns) == ns_inode(host, ns), ns
    assert ns_inode(a, "mnt") != ns_inode(host, "mnt")
    out = sbx.run("exec", "on-host", "--", "sh", "-c", "hostname; head -1 /etc/hosts").stdout.splitlines()
    assert out == [os.uname().nodename, "# Kubernetes-managed hosts file (host network)."]
    sbx.stop(proc)
