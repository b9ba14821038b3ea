"""What `privileged: true` gives back (security-reliability.md 2): every capability the runtime
holds, no seccomp, no_new_privs off, no masked paths, /sys read-write, the host's device nodes
and the host's cgroup namespace; the pod's namespaces and its own mount namespace stay. Checked
from outside through /proc/<pid>, for the main process and through `sandbox exec`. Nothing here
writes to /sys or a device: only mount flags and open() of a node for reading are checked."""

from __future__ import annotations

import os
import stat

import pytest
from integration_conftest import Sandbox, ns_inode

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: busybox
    command: [sleep, "1000"]
    securityContext: {sc}
"""


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def runtime_caps() -> str:
    return status(os.getpid())["CapEff"]


def mounts(pid: int) -> dict[str, list[str]]:
    """mount point -> its per-mount options"""
    with open(f"/proc/{pid}/mountinfo") as f:
        return {line.split()[4]: line.split()[5].split(",") for line in f}


def host_device() -> str:
    """A block or char device of the host that the default container does not get."""
    for name in sorted(os.listdir("/dev")):
        mode = os.lstat(f"/dev/{name}").st_mode
        if (stat.S_ISBLK(mode) or stat.S_ISCHR(mode)) and name.startswith(("loop", "kvm", "vda", "sda", "tty1")):
            return name
    pytest.skip("no host device node to compare")


def test_privileged_gets_everything_the_runtime_holds(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(POD.format(name="priv", sc="{privileged: true}")))
    sbx.wait_running("priv")
    pid = sbx.pid_of("priv", "c")
    st = status(pid)
    assert st["CapEff"] == st["CapPrm"] == st["CapBnd"] == runtime_caps()
    assert (st["NoNewPrivs"], st["Seccomp"]) == ("0", "0")
    table = mounts(pid)
    assert "ro" not in table["/sys"]
    assert "/proc/kcore" not in table and "/proc/sys" not in table  # no masks, no read-only /proc parts
    device = host_device()
    assert os.path.exists(f"/proc/{pid}/root/dev/{device}")
    # the host's cgroup namespace (containerd gives a privileged container none of its own)
    assert ns_inode(pid, "cgroup") == ns_inode(os.getpid(), "cgroup")
    # its own mount namespace and the pod's network namespace stay
    assert ns_inode(pid, "mnt") != ns_inode(os.getpid(), "mnt")
    assert ns_inode(pid, "net") == ns_inode(sbx.pause_pid("priv"), "net")
    shown = sbx.run("exec", "priv", "--", "sh", "-c",
                    f"grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; head -c 0 < /dev/{device} && echo opened")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["CapEff:", runtime_caps(), "NoNewPrivs:", "0", "Seccomp:", "0", "opened"]
    sbx.stop(proc)


def test_default_container_gets_none_of_it(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(POD.format(name="plain", sc="{}")))
    sbx.wait_running("plain")
    pid = sbx.pid_of("plain", "c")
    st = status(pid)
    assert st["CapEff"] == "00000000a80425fb"
    assert st["NoNewPrivs"] == "1"
    assert "ro" in mounts(pid)["/sys"]
    assert not os.path.exists(f"/proc/{pid}/root/dev/{host_device()}")
    assert ns_inode(pid, "cgroup") != ns_inode(os.getpid(), "cgroup")
    shown = sbx.run("exec", "plain", "--", "sh", "-c", "grep -E '^(CapEff|NoNewPrivs):' /proc/self/status")
    assert shown.stdout.split() == ["CapEff:", "00000000a80425fb", "NoNewPrivs:", "1"]
    sbx.stop(proc)


def test_allow_privilege_escalation_true_lifts_no_new_privs_only(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(POD.format(name="escalate", sc="{allowPrivilegeEscalation: true}")))
    sbx.wait_running("escalate")
    st = status(sbx.pid_of("escalate", "c"))
    assert st["NoNewPrivs"] == "0"
    assert st["CapEff"] == "00000000a80425fb"
    sbx.stop(proc)


def test_sethostname_in_a_privileged_container_changes_only_the_pod(sbx: Sandbox) -> None:
    before = os.uname().nodename
    proc = sbx.start(sbx.manifest(POD.format(name="privhost", sc="{privileged: true}")))
    sbx.wait_running("privhost")
    result = sbx.run("exec", "privhost", "--", "hostname", "changed-in-pod")
    assert result.returncode == 0, result.stderr
    assert sbx.run("exec", "privhost", "--", "hostname").stdout.strip() == "changed-in-pod"
    assert os.uname().nodename == before
    sbx.stop(proc)
