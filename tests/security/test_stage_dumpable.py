"""The spawn stages are non-dumpable until execve (runc CVE-2016-9962), checked from outside.

A container's stage 2 is held at a known point by a filesystem that never answers (tests/hangfs.py):
its workingDir lies on it, so stage 2 sleeps in the kernel where it enters that directory, either
as root with every capability before the credentials change (sbx_enter_cwd) or as the container's
user after they changed (the chdir before execve). Meanwhile a sibling container sharing the pod's
PID namespace tries what a dumpable stage would allow it: read its environ, list and open its fds,
follow its exe, root and cwd links, open its memory (/proc/PID/mem's open is ptrace's own attach
check, PTRACE_MODE_ATTACH). From the host, /proc/PID/* of a non-dumpable process belongs to root
whatever its uid (proc_pid_make_inode: task_dump_owner).

Found by it: with fs.suid_dumpable=1 the setresuid to the container's user made stage 2 dumpable
again (commit_creds), and a sibling running as that user could open its memory, root, cwd and the
runtime's fds until execve; spawn.c now clears the flag again after the credentials change. This
kernel lets root without CAP_SYS_PTRACE read a non-dumpable root process's environ (not its memory
or fds): stage 2's is empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hangfs import HangFS
from integration_conftest import Sandbox

pytestmark = pytest.mark.root

# One line per access: its name, then "ok" and what it read, or "failed" and the error. Opening
# is the check (`: <` reads nothing): /proc/PID/mem's open is ptrace's attach check itself
# (PTRACE_MODE_ATTACH), an fd's open through /proc/PID/fd is how a leaked runtime fd is reached.
PROBE = r"""
try() { name=$1; shift; if out=$("$@" 2>&1); then echo "$name: ok $(echo "$out" | tr '\0\n' '  ' | head -c 200)";
        else echo "$name: failed $(echo "$out" | head -n 1)"; fi; }
pid=$1; shift
try environ cat /proc/$pid/environ
try mem sh -c ": < /proc/$pid/mem"
for link in exe root cwd; do try $link ls -L /proc/$pid/$link; done
for fd in "$@"; do try fd$fd sh -c ": < /proc/$pid/fd/$fd"; done
"""

# A sibling that looks as strong as a container gets without SYS_PTRACE: no seccomp filter, no
# no_new_privs, and (as root) every other capability; the held container runs as the same user.
POD = """
apiVersion: v1
kind: Pod
metadata: {name: nosy}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: UID, runAsGroup: UID}
  containers:
  - name: nosy
    image: busybox
    command: [sleep, "1000"]
    securityContext:
      seccompProfile: {type: Unconfined}
      allowPrivilegeEscalation: true
      capabilities: {add: [ALL], drop: [SYS_PTRACE, SYS_RESOURCE]}  # this VM withholds SYS_RESOURCE
  - name: held
    image: busybox
    command: [sleep, "1000"]
    workingDir: /hang/dir
    env: [{name: SECRET_TOKEN, value: do-not-read}]
    securityContext:
      capabilities: {drop: [ALL]}
    volumeMounts: [{name: hang, mountPath: /hang}]
  volumes:
  - name: hang
    hostPath: {path: MOUNTPOINT}
"""


@pytest.fixture
def suid_dumpable(request: pytest.FixtureRequest) -> Iterator[str]:
    """fs.suid_dumpable for the test, restored after: 1 (a host set up for debugging) makes a
    process dumpable again when its uid changes (commit_creds), unless it says otherwise."""
    path = Path("/proc/sys/fs/suid_dumpable")
    saved = path.read_text().strip()
    wanted = getattr(request, "param", saved)
    path.write_text(wanted)
    try:
        yield wanted
    finally:
        path.write_text(saved)


def _probe(sbx: Sandbox, pid_inside: int, fds: list[str]) -> dict[str, str]:
    result = sbx.run("exec", "nosy", "-c", "nosy", "--", "sh", "-c", PROBE, "probe", str(pid_inside), *fds)
    assert result.returncode == 0, result.stderr
    return dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)}


@pytest.mark.parametrize("uid", [pytest.param(0, id="root-before-credentials"),
                                 pytest.param(1000, id="user-after-credentials")])
@pytest.mark.parametrize("suid_dumpable", ["0", "1"], indirect=True)
def test_a_waiting_stage_2_is_out_of_a_siblings_reach(sbx: Sandbox, tmp_path: Path, uid: int,
                                                      suid_dumpable: str) -> None:
    mountpoint = tmp_path / "hang"
    mountpoint.mkdir()
    fs = HangFS(mountpoint, hold_uids={uid})
    proc = None
    try:
        proc = sbx.start(sbx.manifest(POD.replace("UID", str(uid)).replace("MOUNTPOINT", str(mountpoint))))
        try:
            stage2 = fs.wait_held()
        except AssertionError:
            raise AssertionError(sbx.run("describe", "pod", "nosy").stdout) from None
        sbx.wait_running("nosy")
        status = _status(stage2)
        assert status["Name"].endswith("stage2"), status["Name"]
        assert status["Uid"].split()[1] == str(uid)  # held where the test meant: before or after setresuid
        if uid:
            assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0  # the container's (none)
        pid_inside = int(status["NSpid"].split()[-1])
        fds = sorted(os.listdir(f"/proc/{stage2}/fd"), key=int)
        seen = _probe(sbx, pid_inside, fds)
        for what in ("mem", "exe", "root", "cwd", *(f"fd{fd}" for fd in fds)):
            assert seen[what].startswith("failed"), (what, seen)
        # Where this kernel lets root read a non-dumpable root process's environ, there is none:
        # stage 1 is the helper exec'd with an empty environment, the container's is not yet set.
        assert seen["environ"].startswith("failed") or "=" not in seen["environ"], seen
        for entry in ("environ", "fd", "mem", "status"):  # root's whatever its uid: not dumpable
            assert os.stat(f"/proc/{stage2}/{entry}").st_uid == 0, entry
        # the same probe reaches the sibling's own main process: the accesses are possible at all
        own_pid = int(_status(sbx.pid_of("nosy", "nosy"))["NSpid"].split()[-1])
        own = _probe(sbx, own_pid, ["0"])
        assert all(own[what].startswith("ok") for what in ("environ", "mem", "exe", "root", "fd0")), own
        assert "PATH=" in own["environ"]
    finally:
        if proc is not None:
            sbx.stop(proc)
        fs.close()
