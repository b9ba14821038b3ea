"""seccomp and no_new_privs of a container (security-reliability.md 1.6, 1.7), in the shape of runc's
seccomp.bats: the test image's static probe (rootfs/probe.c, /usr/bin/sbx-probe) makes one call and
prints the errno it got, from the container's main process and through `sandbox exec`; the filter
mode and no_new_privs are read from outside, in /proc/PID/status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from integration_conftest import Sandbox

pytestmark = pytest.mark.root

# What a default container gets: EPERM from the filter (root in the container would get OK or
# EINVAL/EBADF/ENOENT from the kernel for most of these), ENOSYS for clone3.
DEFAULT_ANSWERS = {
    "keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM", "clone3": "ENOSYS",
    "fork": "OK", "clone-newns": "EPERM", "clone-newuser": "EPERM", "unshare-user": "EPERM",
    "unshare-mnt": "EPERM", "setns": "EPERM", "mount": "EPERM", "umount2": "EPERM", "io_uring_setup": "EPERM",
    "userfaultfd": "EPERM", "kexec_load": "EPERM", "swapon": "EPERM", "pivot_root": "EPERM", "bpf": "EPERM",
    "personality-query": "OK", "personality-norandom": "EPERM", "socket-vsock": "EPERM", "socket-alg": "EPERM",
    "socket-unix": "OK", "getpid": "OK", "getpid-int80": "OK", "keyctl-int80": "EPERM",
}
PROBES = " ".join(DEFAULT_ANSWERS)
NESTED = "unshare -mrpf sh -c 'mount -t proc none /proc' 2>/dev/null && echo nested: ok || echo nested: failed"


def pod(name: str, command: str, security: str = "", pod_security: str = "") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  securityContext: {{{pod_security}}}
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", {json.dumps(command)}]
    securityContext: {{{security}}}
"""


def probe_all(names: str) -> str:
    return f'for p in {names}; do echo "$p: $(sbx-probe $p)"; done'


def results(out: str) -> dict[str, str]:
    lines = [line.removeprefix("[c] ") for line in out.splitlines() if line.startswith("[c] ")]
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def run_pod(sbx: Sandbox, text: str) -> dict[str, str]:
    result = sbx.run("run", str(sbx.manifest(text)))
    assert result.returncode == 0, (result.stdout, result.stderr)
    return results(result.stdout)


def status_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


def running(sbx: Sandbox, text: str) -> tuple[object, dict[str, str]]:
    proc = sbx.start(sbx.manifest(text))
    sbx.wait_running("sc")
    return proc, status_of(sbx.pid_of("sc", "c"))


def test_a_default_container_is_filtered_with_no_new_privs(sbx: Sandbox) -> None:
    proc, status = running(sbx, pod("sc", "sleep 1000"))
    try:
        assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1", status
        assert status.get("Seccomp_filters", "1") == "1"
        # `sandbox exec` gets the same filter and no_new_privs as the main process
        exec_probe = sbx.run("exec", "sc", "-c", "c", "--", "sh", "-c", probe_all("keyctl clone3 unshare-user getpid"))
        assert exec_probe.returncode == 0, exec_probe
        assert dict(line.split(": ", 1) for line in exec_probe.stdout.splitlines()) == {
            "keyctl": "EPERM", "clone3": "ENOSYS", "unshare-user": "EPERM", "getpid": "OK"}
        exec_status = sbx.run("exec", "sc", "-c", "c", "--", "grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status")
        assert exec_status.stdout.split() == ["NoNewPrivs:", "1", "Seccomp:", "2"], exec_status
    finally:
        sbx.stop(proc)


def test_each_refused_call_gets_its_errno(sbx: Sandbox) -> None:
    found = run_pod(sbx, pod("sc", probe_all(PROBES) + "; " + NESTED))
    assert {k: found.get(k) for k in DEFAULT_ANSWERS} == DEFAULT_ANSWERS
    assert found["nested"] == "failed"  # no user namespace, so no private /proc mount either


def test_unconfined_and_privilege_escalation_lift_both(sbx: Sandbox) -> None:
    text = pod("sc", "sleep 1000", "seccompProfile: {type: Unconfined}, allowPrivilegeEscalation: true")
    proc, status = running(sbx, text)
    try:
        assert status["Seccomp"] == "0" and status["NoNewPrivs"] == "0", status
        found = sbx.run("exec", "sc", "-c", "c", "--", "sh", "-c", probe_all("keyctl clone3 keyctl-int80"))
        # root in the container: the kernel answers (keyctl works, clone3 sees a bad argument)
        assert found.stdout.split("\n")[:3] == ["keyctl: OK", "clone3: EINVAL", "keyctl-int80: OK"], found
    finally:
        sbx.stop(proc)


def test_pod_level_unconfined_is_overridden_by_the_container(sbx: Sandbox) -> None:
    found = run_pod(sbx, pod("sc", probe_all("keyctl"), "seccompProfile: {type: RuntimeDefault}",
                             "seccompProfile: {type: Unconfined}"))
    assert found["keyctl"] == "EPERM"
    found = run_pod(sbx, pod("sc", probe_all("keyctl"), "", "seccompProfile: {type: Unconfined}"))
    assert found["keyctl"] == "OK"


@pytest.mark.parametrize(("security", "nnp"), [("allowPrivilegeEscalation: false", "1"),
                                              ("allowPrivilegeEscalation: true", "0"),
                                              ("allowPrivilegeEscalation: true, runAsUser: 1000", "0")])
def test_allow_privilege_escalation_decides_no_new_privs_only(sbx: Sandbox, security: str, nnp: str) -> None:
    """Without no_new_privs the filter is loaded while the spawn still holds CAP_SYS_ADMIN (the
    kernel refuses it to a process with neither), also for a container that runs as non-root."""
    proc, status = running(sbx, pod("sc", "sleep 1000", security))
    try:
        assert status["NoNewPrivs"] == nnp and status["Seccomp"] == "2", status
        found = sbx.run("exec", "sc", "-c", "c", "--", "sbx-probe", "keyctl")
        assert found.stdout == "EPERM\n", found
    finally:
        sbx.stop(proc)


def test_a_setuid_binary_gains_nothing(sbx: Sandbox) -> None:
    """The image's setuid-root copy of the probe, run as uid 1000, stays uid 1000."""
    found = run_pod(sbx, pod("sc", "sbx-probe-suid euid | sed 's/^/suid: /'", "runAsUser: 1000"))
    assert found["suid"] == "euid 1000"


def test_sys_admin_adds_mount_to_the_filter(sbx: Sandbox) -> None:
    found = run_pod(sbx, pod("sc", probe_all("mount unshare-mnt clone3 keyctl io_uring_setup"),
                             "capabilities: {add: [SYS_ADMIN]}"))
    assert found == {"mount": "OK", "unshare-mnt": "OK", "clone3": "EINVAL", "keyctl": "EPERM",
                     "io_uring_setup": "EPERM"}


def write_profile(sbx: Sandbox, name: str, profile: dict[str, object]) -> Path:
    path = sbx.root / "lib" / "seccomp" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile))
    return path


def test_localhost_profile_is_loaded_and_enforced(sbx: Sandbox) -> None:
    write_profile(sbx, "profiles/no-keys.json", {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["keyctl", "add_key"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    })
    found = run_pod(sbx, pod("sc", probe_all("keyctl add_key clone3 getpid"),
                             "seccompProfile: {type: Localhost, localhostProfile: profiles/no-keys.json}"))
    assert found == {"keyctl": "EACCES", "add_key": "EACCES", "clone3": "EINVAL", "getpid": "OK"}


def test_a_missing_localhost_profile_is_a_create_error(sbx: Sandbox) -> None:
    text = pod("sc", "true", "seccompProfile: {type: Localhost, localhostProfile: missing.json}")
    result = sbx.run("run", str(sbx.manifest(text)))
    assert result.returncode != 0
    assert "CreateContainerError" in result.stdout + result.stderr
    assert "missing.json" in result.stdout + result.stderr
