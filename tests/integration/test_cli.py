"""The kubectl-like verbs against a running pod: get, exec, logs."""

from __future__ import annotations

import json
import re

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

WEB = r"""
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    workingDir: /srv/data
    env:
    - {name: GREETING, value: hello}
    - {name: MESSAGE, value: "$(GREETING) world, $$(GREETING) stays"}
    command: ["sh", "-c"]
    args: ["echo $(GREETING) from args; echo \"$MESSAGE\"; echo to-stderr >&2; exec sleep 1000"]
  - name: helper
    image: busybox
    command: ["sleep", "1000"]
"""


@pytest.fixture
def web(sbx: Sandbox):  # type: ignore[no-untyped-def]
    proc = sbx.start(sbx.manifest(WEB))
    sbx.wait_running("web", containers=2)
    yield sbx
    sbx.stop(proc)


def test_get_pod_json_is_a_pod_object_with_status(web: Sandbox) -> None:
    result = web.run("get", "pod", "web", "-o", "json")
    assert result.returncode == 0, result.stderr
    pod = json.loads(result.stdout)
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == "web" and pod["metadata"]["namespace"] == "default"
    assert pod["metadata"]["labels"] == {"app": "web"}
    assert re.fullmatch(r"[0-9a-f-]{36}", pod["metadata"]["uid"])
    assert pod["spec"]["restartPolicy"] == "Always"  # defaulted
    status = pod["status"]
    assert status["phase"] == "Running"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "True" and conditions["ContainersReady"] == "True"
    assert conditions["Initialized"] == "True" and conditions["PodScheduled"] == "True"
    names = [c["name"] for c in status["containerStatuses"]]
    assert names == ["app", "helper"]
    app = status["containerStatuses"][0]
    assert "startedAt" in app["state"]["running"]
    assert app["restartCount"] == 0 and app["ready"] is True
    assert re.fullmatch(r"sandbox://[0-9a-f]{64}", app["containerID"])
    assert app["lastState"] == {}


def test_get_pods_table(web: Sandbox) -> None:
    result = web.run("get", "pods")
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["web", "2/2", "Running", "0"]
    other = web.run("-n", "other", "get", "pods")
    assert other.stdout == "" and "No resources found in other namespace." in other.stderr


def test_exec_enters_the_container_and_returns_the_exit_code(web: Sandbox) -> None:
    result = web.run("exec", "web", "-c", "app", "--", "sh", "-c", "echo $GREETING; pwd; hostname; exit 7")
    assert result.returncode == 7
    assert result.stderr == "command terminated with exit code 7\n"  # kubectl's words
    assert result.stdout.splitlines() == ["hello", "/srv/data", "web"]
    ps = web.run("exec", "web", "--", "ps", "-o", "pid,args").stdout
    assert re.search(r"^\s*1 sleep 1000$", ps, re.MULTILINE), ps  # its own PID namespace, main is PID 1
    missing = web.run("exec", "web", "--", "no-such-command")
    assert missing.returncode == 127 and "no-such-command" in missing.stderr
    bad = web.run("exec", "web", "-c", "nope", "--", "true")
    assert bad.returncode == 2 and "choose one of: [app helper]" in bad.stderr


def test_env_and_command_expansion(web: Sandbox) -> None:
    out = web.run("exec", "web", "--", "sh", "-c", 'echo "$MESSAGE|$HOSTNAME|$PATH"').stdout.strip()
    assert out == "hello world, $(GREETING) stays|web|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_home_is_set_as_runc_sets_it(sbx: Sandbox) -> None:
    # runc exports HOME from the image's /etc/passwd for the uid when the env has none; an env
    # entry wins. The main process, exec and exec hooks all see it.
    proc = sbx.start(sbx.manifest(HOMES))
    sbx.wait_running("homes", containers=3)
    try:
        for name, home in (("root", "/root"), ("nobody", "/home"), ("own", "/data")):
            main = sbx.run("exec", "homes", "-c", name, "--", "sh", "-c", "tr '\\0' '\\n' </proc/1/environ")
            assert f"HOME={home}" in main.stdout.splitlines(), (name, main.stdout)
            assert sbx.run("exec", "homes", "-c", name, "--", "sh", "-c", "echo $HOME").stdout == f"{home}\n"
    finally:
        sbx.stop(proc)


HOMES = """
apiVersion: v1
kind: Pod
metadata: {name: homes}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: root, image: busybox, command: [sleep, "1000"]}
  - name: nobody
    image: busybox
    command: [sleep, "1000"]
    securityContext: {runAsUser: 65534}
  - name: own
    image: busybox
    command: [sleep, "1000"]
    env: [{name: HOME, value: /data}]
"""


def test_logs_cri_files_and_logs_verb(web: Sandbox) -> None:
    files = list(web.root.glob("log/pods/default_web_*/app/0.log"))
    assert len(files) == 1
    web.wait_for(lambda: b"to-stderr" in files[0].read_bytes(), message="log lines")
    records = files[0].read_bytes().decode().splitlines()
    pattern = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) (stdout|stderr) F .*"
    assert all(re.fullmatch(pattern, r) for r in records), records
    assert any(r.endswith("stdout F hello from args") for r in records)
    assert any(r.endswith("stdout F hello world, $(GREETING) stays") for r in records)
    assert any(r.endswith("stderr F to-stderr") for r in records)
    result = web.run("logs", "web", "-c", "app")
    assert sorted(result.stdout.splitlines()) == ["hello from args", "hello world, $(GREETING) stays", "to-stderr"]
    defaulted = web.run("logs", "web")  # kubectl >= 1.21: the first container, and a notice
    assert defaulted.returncode == 0 and defaulted.stdout == result.stdout
    assert defaulted.stderr == 'Defaulted container "app" out of: app, helper\n'


def test_logs_stay_after_the_pod_ends(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: short}
spec:
  restartPolicy: Never
  containers:
  - {name: once, image: busybox, command: ["echo", "it ran"]}
""")
    assert sbx.run("run", str(manifest)).returncode == 0
    result = sbx.run("logs", "short")
    assert result.returncode == 0 and result.stdout == "it ran\n"
    assert "Completed" in sbx.run("get", "pod", "short").stdout  # listed until deleted (issue 7)


def test_a_terminal_that_does_not_read_never_stalls_the_pod(sbx: Sandbox) -> None:
    """The runtime's stdout is a pipe nobody reads: the pod still runs (its readiness probe keeps
    ticking), everything is in the CRI log, and the terminal is told what it missed."""
    import subprocess

    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: talker
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while [ $i -lt 20000 ]; do echo line $i is some text to fill the pipe; i=$((i+1)); done; echo done > /tmp/done; while true; do sleep 0.1; done"]
    readinessProbe:
      exec: {command: [test, -e, /tmp/done]}
      periodSeconds: 1
""")
    proc = subprocess.Popen(sbx.cmd("run", str(manifest)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    sbx.procs.append(proc)
    sbx.wait_for(lambda: (s := sbx.state("chatty")) and s["status"]["containerStatuses"][0]["ready"] and s,
                         timeout=30, message="ready while the terminal is full")
    log = sbx.run("logs", "chatty").stdout.splitlines()
    assert len(log) == 20000 and log[-1].startswith("line 19999")
    _, out, _ = sbx.stop(proc)
    shown = [line for line in out.splitlines() if line.startswith("[talker] line")]
    assert 0 < len(shown) < 20000 and all(line.endswith("fill the pipe") for line in shown)  # whole lines


def test_logs_follow_until_the_pod_ends(sbx: Sandbox) -> None:
    import subprocess

    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  restartPolicy: Never
  containers:
  - {name: t, image: busybox, command: ["sh", "-c", "for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done"]}
""")
    proc = sbx.start(manifest)
    sbx.wait_for(lambda: list(sbx.root.glob("log/pods/default_ticker_*/t/0.log")), message="the log file")
    follower = subprocess.run(sbx.cmd("logs", "-f", "ticker"), capture_output=True, text=True, timeout=20)
    assert follower.stdout.splitlines() == [f"tick {i}" for i in range(1, 6)]
    sbx.finish(proc)


def test_logs_follow_ends_with_the_instance_of_a_crash_looping_container(sbx: Sandbox) -> None:
    # kubectl logs -f returns when the container it reads exits, though the pod runs on.
    import subprocess
    import time

    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: looper}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: l, image: busybox, command: ["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.3; done; echo last; exit 1"]}
""")
    proc = sbx.start(manifest, "--backoff-initial", "2s")
    try:
        sbx.wait_for(lambda: list(sbx.root.glob("log/pods/default_looper_*/l/0.log")), message="the log file")
        begin = time.monotonic()
        follower = subprocess.run(sbx.cmd("logs", "-f", "looper"), capture_output=True, text=True, timeout=30)
        assert follower.returncode == 0, follower.stderr
        assert follower.stdout.splitlines() == ["tick 1", "tick 2", "tick 3", "last"]
        assert time.monotonic() - begin < 5  # not at the pod's end: it restarts for ever
        assert proc.poll() is None
    finally:
        sbx.stop(proc)


def test_state_is_private_and_logs_are_readable(web: Sandbox) -> None:
    import stat

    run = web.root / "run"
    for path in (run, run / "pods", run / "pods" / "default_web"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_IMODE((run / "pods" / "default_web" / "state.json").stat().st_mode) == 0o600
    log = next(web.root.glob("log/pods/default_web_*/app/0.log"))
    assert stat.S_IMODE(log.stat().st_mode) == 0o640
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o755
