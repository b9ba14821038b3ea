"""The field table on real pods: a protection that is not honoured refuses the pod before anything
starts; the fields it honours (capabilities add/drop, stopSignal) are seen from inside."""

from __future__ import annotations

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:1.36
    command: {command}
{extra}"""


def pod(sbx: Sandbox, name: str, command: str, extra: str = "") -> str:
    return str(sbx.manifest(POD.format(name=name, command=command, extra=extra), f"{name}.yaml"))


def cap_eff(text: str) -> int:
    line = next(line for line in text.splitlines() if line.startswith("CapEff:"))
    return int(line.split()[1], 16)


def test_a_refused_field_stops_everything_before_anything_starts(sbx: Sandbox) -> None:
    path = pod(sbx, "selinux", "[id]", "    securityContext: {seLinuxOptions: {type: spc_t}}\n")
    for verb in ("validate", "run"):
        result = sbx.run(verb, path)
        assert result.returncode == 2, result
        assert f"{path}: spec.containers[0].securityContext.seLinuxOptions: Forbidden: not supported by sandbox " \
            "yet: SELinux labels" in result.stderr
    assert not (sbx.root / "run" / "pods").exists() or not list((sbx.root / "run" / "pods").iterdir())
    assert not list(sbx.root.glob("log/pods/*")), "a refused pod wrote logs"


@pytest.mark.parametrize(("caps", "expected"), [
    ("", 0xA80425FB),  # containerd's default 14
    ("{drop: [ALL]}", 0),
    ("{drop: [ALL], add: [NET_ADMIN, CAP_KILL]}", (1 << 12) | (1 << 5)),
    ("{drop: [NET_RAW, MKNOD]}", 0xA80425FB & ~((1 << 13) | (1 << 27))),
    ("{add: [SYS_ADMIN], drop: [SYS_ADMIN]}", 0xA80425FB),
])
def test_capabilities_add_and_drop_as_containerd(sbx: Sandbox, caps: str, expected: int) -> None:
    extra = f"    securityContext: {{capabilities: {caps}}}\n" if caps else ""
    path = pod(sbx, "caps", "[sh, -c, 'cat /proc/self/status; sleep 30']", extra)
    proc = sbx.start(sbx.tmp / "caps.yaml")
    assert path
    sbx.wait_running("caps")
    main = sbx.wait_for(lambda: "CapEff" in sbx.run("logs", "caps").stdout and sbx.run("logs", "caps").stdout,
                        message="the status printout")
    assert cap_eff(main) == expected
    # `sandbox exec` keeps the container's set, not the default one
    assert cap_eff(sbx.run("exec", "caps", "--", "cat", "/proc/self/status").stdout) == expected
    sbx.stop_now(proc)


def test_stop_signal_replaces_sigterm(sbx: Sandbox) -> None:
    extra = "    lifecycle: {stopSignal: SIGUSR1}\n  os: {name: linux}\n"
    script = "trap 'echo got-usr1; exit 0' USR1; trap 'echo got-term; exit 0' TERM; echo ready; " \
             "while true; do sleep 0.1; done"
    pod(sbx, "stopsig", f"[sh, -c, \"{script}\"]", extra)
    proc = sbx.start(sbx.tmp / "stopsig.yaml")
    sbx.wait_running("stopsig")
    sbx.wait_for(lambda: "ready" in sbx.run("logs", "stopsig").stdout, message="the trap set")
    code, out, err = sbx.stop(proc)
    assert "got-usr1" in out and "got-term" not in out, (out, err)


def test_unknown_stop_signal_and_capability_are_refused(sbx: Sandbox) -> None:
    extra = "    lifecycle: {stopSignal: SIGNOPE}\n    securityContext: {capabilities: {add: [CAP_FLY]}}\n"
    result = sbx.run("validate", pod(sbx, "bad", "[\"true\"]", extra))
    assert result.returncode == 2
    assert "spec.containers[0].securityContext.capabilities.add[0]: Unsupported value: \"CAP_FLY\"" in result.stderr
    assert "spec.containers[0].lifecycle.stopSignal: Unsupported value: \"SIGNOPE\"" in result.stderr
