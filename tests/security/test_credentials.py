"""Who a container runs as: runAsUser/runAsGroup/supplementalGroups, runAsNonRoot, capabilities
across the uid change, readOnlyRootFilesystem, pod sysctls and the cgroup namespace, checked from
outside through /proc/<pid>/status and the host's own files (security-reliability.md 1.1, 1.5,
1.6; runc's capabilities.bats and userns-free run.bats shapes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from integration_conftest import Sandbox, ns_inode

pytestmark = pytest.mark.root

SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 2
  securityContext: {pod_sc}
  containers:
  - name: c
    image: {image}
    command: [sleep, "1000"]
    securityContext: {container_sc}
"""


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def start(sbx: Sandbox, name: str, pod_sc: str = "{}", container_sc: str = "{}",
          image: str = "busybox") -> tuple[subprocess.Popen[bytes], int]:
    proc = sbx.start(sbx.manifest(SLEEPER.format(name=name, pod_sc=pod_sc, container_sc=container_sc, image=image),
                                  f"{name}.yaml"))
    sbx.wait_running(name)
    return proc, sbx.pid_of(name, "c")


def test_run_as_user_group_and_supplemental_groups(sbx: Sandbox) -> None:
    proc, pid = start(sbx, "creds", "{runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}")
    st = status(pid)
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["3000"] * 4
    assert st["Groups"].split() == ["3000", "4000"]
    # A non-root user ends with nothing after execve: no ambient set, as containerd.
    assert (st["CapPrm"], st["CapEff"], st["CapAmb"]) == ("0" * 16,) * 3
    assert st["CapBnd"] == "00000000a80425fb"
    assert st["NoNewPrivs"] == "1"
    result = sbx.run("exec", "creds", "--", "id")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["uid=1000", "gid=3000"], result.stdout
    assert "groups=3000,4000" in result.stdout
    # `sandbox exec` runs as the main process does, from outside too.
    shown = sbx.run("exec", "creds", "--", "sh", "-c", "grep -E '^(Uid|Groups|CapEff)' /proc/self/status")
    assert shown.stdout.split() == ["Uid:", *["1000"] * 4, "Groups:", "3000", "4000", "CapEff:", "0" * 16]
    sbx.stop(proc)


def test_container_run_as_user_overrides_the_pod(sbx: Sandbox) -> None:
    proc, pid = start(sbx, "override", "{runAsUser: 1000, supplementalGroupsPolicy: Strict}",
                      "{runAsUser: 2000}")
    st = status(pid)
    assert st["Uid"].split()[0] == "2000"
    assert st["Gid"].split()[0] == "0"  # no /etc/passwd entry for 2000 in the image: group 0, as containerd
    assert st["Groups"].split() == ["0"]
    sbx.stop(proc)


def test_root_container_keeps_the_default_set_and_no_host_groups(sbx: Sandbox) -> None:
    proc, pid = start(sbx, "rootc")
    st = status(pid)
    assert st["Uid"].split()[0] == "0"
    assert st["Groups"].split() == ["0"]  # the image's groups of root, never the runtime's
    assert st["CapEff"] == st["CapPrm"] == st["CapBnd"] == "00000000a80425fb"
    sbx.stop(proc)


def test_non_root_with_an_added_capability_has_none_effective_after_execve(sbx: Sandbox) -> None:
    """Capabilities are set after the uid change (PR_SET_KEEPCAPS): the spawn succeeds (it failed
    with EPERM while capset ran after setresuid), and execve then empties the sets."""
    proc, pid = start(sbx, "nbs", "{runAsUser: 1000}", "{capabilities: {add: [NET_BIND_SERVICE]}}")
    st = status(pid)
    assert st["CapBnd"] == "00000000a80425fb"
    assert (st["CapPrm"], st["CapEff"], st["CapInh"], st["CapAmb"]) == ("0" * 16,) * 4
    sbx.stop(proc)


def import_user_image(sbx: Sandbox) -> str:
    """busybox with an `appuser` (1500:1600) that /etc/group also puts in group 1700."""
    tree = sbx.tmp / "userimg"
    src = sbx.root / "lib" / "images"
    busybox = next(p for p in src.glob("layers/sha256/*") if (p / "bin" / "busybox").exists())
    shutil.copytree(busybox, tree, symlinks=True)
    (tree / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nappuser:x:1500:1600::/home:/bin/sh\n")
    (tree / "etc" / "group").write_text("root:x:0:\napp:x:1600:\nextra:x:1700:appuser,other\n")
    result = sbx.run("image", "import", str(tree), "userimg:1", "--cmd", "sh", "--user", "appuser")
    assert result.returncode == 0, result.stderr
    return "userimg:1"


def test_image_user_names_are_resolved_in_the_image(sbx: Sandbox) -> None:
    import_user_image(sbx)
    proc, pid = start(sbx, "named", image="userimg:1")
    st = status(pid)
    assert st["Uid"].split()[0] == "1500"
    assert st["Gid"].split()[0] == "1600"
    assert st["Groups"].split() == ["1600", "1700"]  # Merge: the image's /etc/group memberships
    sbx.stop(proc)
    proc, pid = start(sbx, "strict", "{supplementalGroupsPolicy: Strict, supplementalGroups: [42]}",
                      image="userimg:1")
    assert status(pid)["Groups"].split() == ["42", "1600"]
    sbx.stop(proc)


def test_the_status_reports_the_identity_the_process_runs_with(sbx: Sandbox) -> None:
    """containerStatuses[].user.linux (1.33+): the first process's uid, gid and groups, the
    image's /etc/group memberships included (Merge), as the process has them."""
    image = import_user_image(sbx)
    proc, pid = start(sbx, "who", "{supplementalGroups: [4000, 1600], fsGroup: 2000}", image=image)
    st = status(pid)
    shown = json.loads(sbx.run("get", "pod", "who", "-o", "json", check=True).stdout)
    user = shown["status"]["containerStatuses"][0]["user"]
    assert user == {"linux": {"uid": int(st["Uid"].split()[0]), "gid": int(st["Gid"].split()[0]),
                              "supplementalGroups": sorted(int(g) for g in st["Groups"].split())}}
    assert user["linux"] == {"uid": 1500, "gid": 1600, "supplementalGroups": [1600, 1700, 2000, 4000]}
    sbx.stop(proc)


@pytest.mark.parametrize(("pod_sc", "container_sc", "message"), [
    ("{runAsNonRoot: true}", "{}", "container has runAsNonRoot and image will run as root"),
    ("{runAsNonRoot: true}", "{runAsUser: 0}", "container's runAsUser breaks non-root policy"),
])
def test_run_as_non_root_refuses_a_root_image_with_the_kubelets_message(
        sbx: Sandbox, pod_sc: str, container_sc: str, message: str) -> None:
    manifest = sbx.manifest(SLEEPER.format(name="nonroot", pod_sc=pod_sc, container_sc=container_sc, image="busybox"))
    proc = sbx.start(manifest)
    code, _, err = sbx.finish(proc)
    assert code != 0
    assert f'{message} (pod: "nonroot_default(' in err, err
    assert "container: c)" in err
    got = sbx.run("get", "pod", "nonroot", "-o", "json")
    assert "CreateContainerConfigError" in got.stdout, got.stdout


def test_run_as_non_root_passes_with_a_non_root_user(sbx: Sandbox) -> None:
    proc, pid = start(sbx, "nonroot-ok", "{runAsNonRoot: true, runAsUser: 1000}")
    assert status(pid)["Uid"].split()[0] == "1000"
    sbx.stop(proc)


def test_read_only_root_filesystem_keeps_volumes_writable(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: rofs}
spec:
  terminationGracePeriodSeconds: 2
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    command: [sleep, "1000"]
    securityContext: {readOnlyRootFilesystem: true}
    volumeMounts: [{name: scratch, mountPath: /tmp}]
""")
    proc = sbx.start(manifest)
    sbx.wait_running("rofs")
    denied = sbx.run("exec", "rofs", "--", "touch", "/x")
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr, denied.stderr
    assert sbx.run("exec", "rofs", "--", "touch", "/tmp/ok").returncode == 0
    assert sbx.run("exec", "rofs", "--", "sh", "-c", "echo hi > /dev/termination-log").returncode == 0
    with open(f"/proc/{sbx.pid_of('rofs', 'c')}/mountinfo") as f:
        root = next(line.split() for line in f if line.split()[4] == "/")
    assert "ro" in root[5].split(",") and {"nosuid", "nodev"} <= set(root[5].split(","))
    sbx.stop(proc)


def test_pod_sysctls_are_set_in_the_pod_and_the_host_is_unchanged(sbx: Sandbox) -> None:
    def host(name: str) -> str:
        with open(f"/proc/sys/{name.replace('.', '/')}") as f:
            return f.read().strip()

    before = {n: host(n) for n in ("net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_port_range",
                                   "kernel.shm_rmid_forced")}
    sysctls = ("[{name: net.ipv4.ip_unprivileged_port_start, value: '80'}, "
               "{name: net.ipv4.ip_local_port_range, value: '20000 30000'}, {name: kernel.shm_rmid_forced, value: '1'}]")
    proc, pid = start(sbx, "sysctls", f"{{sysctls: {sysctls}}}")
    got = sbx.run("exec", "sysctls", "--", "sysctl", "net.ipv4.ip_unprivileged_port_start",
                  "net.ipv4.ip_local_port_range", "kernel.shm_rmid_forced")
    assert got.returncode == 0, got.stderr
    assert got.stdout.split("\n")[:3] == ["net.ipv4.ip_unprivileged_port_start = 80",
                                          "net.ipv4.ip_local_port_range = 20000\t30000",
                                          "kernel.shm_rmid_forced = 1"], got.stdout
    assert {n: host(n) for n in before} == before
    sbx.stop(proc)


def test_containerd_default_sysctls_without_pod_sysctls(sbx: Sandbox) -> None:
    proc, pid = start(sbx, "defsysctl", "{runAsUser: 1000}")
    got = sbx.run("exec", "defsysctl", "--", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start",
                  "/proc/sys/net/ipv4/ping_group_range")
    assert got.stdout.split() == ["0", "0", "2147483647"], got.stdout
    sbx.stop(proc)


@pytest.mark.parametrize(("sysctl", "extra", "detail"), [
    ("vm.swappiness", "", 'Forbidden: "vm.swappiness" is not a namespaced sysctl'),
    ("net.core.somaxconn", "hostNetwork: true", "may not be specified when 'hostNetwork' is true"),
    ("kernel.msgmax", "hostIPC: true", "may not be specified when 'hostIPC' is true"),
    ("Net.Bad!", "", "must have at most 253 characters and match regex"),
])
def test_unsafe_sysctls_are_field_errors(sbx: Sandbox, sysctl: str, extra: str, detail: str) -> None:
    manifest = sbx.manifest(f"""
apiVersion: v1
kind: Pod
metadata: {{name: bad-sysctl}}
spec:
  {extra or "restartPolicy: Never"}
  securityContext: {{sysctls: [{{name: "{sysctl}", value: "1"}}]}}
  containers: [{{name: c, image: busybox}}]
""")
    result = sbx.run("run", str(manifest))
    assert result.returncode == 2
    assert "spec.securityContext.sysctls[0].name: " in result.stderr and detail in result.stderr, result.stderr


def test_each_container_has_its_own_cgroup_namespace(sbx: Sandbox) -> None:
    proc, pid = start(sbx, "cgns")
    assert ns_inode(pid, "cgroup") != ns_inode(os.getpid(), "cgroup")
    assert ns_inode(pid, "cgroup") != ns_inode(sbx.pause_pid("cgns"), "cgroup")
    shown = sbx.run("exec", "cgns", "--", "cat", "/proc/self/cgroup").stdout.split()
    assert shown and all(line.endswith(":/") for line in shown), shown  # its own root, every hierarchy
    sbx.stop(proc)


def test_hooks_and_probes_run_as_the_container_user(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: hookid}
spec:
  terminationGracePeriodSeconds: 2
  securityContext: {runAsUser: 1000, runAsGroup: 3000}
  containers:
  - name: c
    image: busybox
    command: [sleep, "1000"]
    lifecycle:
      postStart: {exec: {command: [sh, -c, "id > /tmp/hook-id"]}}
    readinessProbe:
      periodSeconds: 1
      exec: {command: [sh, -c, "id > /tmp/probe-id"]}
""")
    proc = sbx.start(manifest)
    sbx.wait_running("hookid")
    root = f"/proc/{sbx.pid_of('hookid', 'c')}/root/tmp"

    def written(name: str) -> list[str]:
        try:
            with open(f"{root}/{name}") as f:
                return f.read().split()[:2]
        except FileNotFoundError:
            return []

    for name in ("hook-id", "probe-id"):
        sbx.wait_for(lambda: len(written(name)) == 2, message=f"{name} written")  # noqa: B023
        assert written(name) == ["uid=1000", "gid=3000"], name
    sbx.stop(proc)


FS_GROUP = """
apiVersion: v1
kind: Pod
metadata: {name: fsgroup}
spec:
  terminationGracePeriodSeconds: 2
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, fsGroupChangePolicy: OnRootMismatch}
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    command: [sleep, "1000"]
    volumeMounts: [{name: data, mountPath: /data}]
"""


def test_fs_group_owns_empty_dirs_and_joins_the_groups(sbx: Sandbox) -> None:
    """The kubelet's SetVolumeOwnership on a fresh emptyDir: group fsGroup, setgid, group-writable;
    every process has fsGroup among its groups, so a non-root user writes there and its files
    belong to fsGroup."""
    proc = sbx.start(sbx.manifest(FS_GROUP, "fsgroup.yaml"))
    sbx.wait_running("fsgroup")
    pid = sbx.pid_of("fsgroup", "c")
    assert "2000" in status(pid)["Groups"].split()
    result = sbx.run("exec", "fsgroup", "--", "sh", "-c",
                     "stat -c '%g %a' /data && touch /data/f && stat -c '%u %g' /data/f")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["2000 2777", "1000 2000"]
    sbx.stop(proc)
