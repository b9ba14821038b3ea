"""The node agent: `run -d` hands pods to it (starting one on demand), `delete` stops them through
it, a fault in one pod does not touch the others, and a stopped agent leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Sandbox

pytestmark = pytest.mark.root


def sleeper(name: str, command: str = "echo started $HOSTNAME; exec sleep 600", policy: str = "Always") -> str:
    # `exec sleep`: SIGTERM ends it at once (a shell as PID 1 would ignore it for the grace period)
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: {policy}
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "{command}"]
"""


def agent_pid(sbx: Sandbox) -> int | None:
    from sandbox.agent.protocol import AgentUnavailable, Client

    try:
        client = Client.connect(str(sbx.root / "run" / "agent.sock"))
    except AgentUnavailable:
        return None
    try:
        return int(client.call("Version")["pid"])
    finally:
        client.close()


def stop_agent(sbx: Sandbox, timeout: float = 60, *, force: bool = False) -> None:
    """SIGTERM (every pod stopped gracefully; with `force` a second SIGTERM kills them at once),
    then wait for the agent to be gone."""
    import select

    from tests.integration.conftest import signal_pending

    pid = agent_pid(sbx)
    if pid is None:
        return
    pidfd = os.pidfd_open(pid)
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if force:
            sbx.wait_for(lambda: not signal_pending(pid, signal.SIGTERM), timeout=10,
                         message="the first SIGTERM delivered")
            time.sleep(0.1)  # handled by the loop (stopping), not only delivered
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if not select.select([pidfd], [], [], timeout)[0]:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            raise AssertionError(f"the agent did not stop within {timeout}s of SIGTERM")
    finally:
        os.close(pidfd)


def tear_down_orphans(sbx: Sandbox) -> None:
    """Pods a test's killed agent left running under their shims (none if a new agent adopted
    and stopped them): torn down as a failed re-adoption would."""
    from sandbox.pod.cleanup import finish_dead_runtime
    from sandbox.state.store import list_pod_dirs

    pods = sbx.root / "run" / "pods"
    for pod_dir in list_pod_dirs(pods) if pods.is_dir() else []:
        finish_dead_runtime(pod_dir, sbx.root / "lib" / "containers", sbx.root / "log" / "pods", keep_adoptable=False)


def ppid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("PPid:\t", 1)[1].split("\n", 1)[0])


def test_run_detached_starts_an_agent_and_returns_when_running(agent_sbx: Sandbox) -> None:
    sbx = agent_sbx
    path = sbx.manifest(sleeper("one"))
    started = time.monotonic()
    done = sbx.run("run", "-d", "--network", "none", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pod/one created"
    assert time.monotonic() - started < 15
    state = sbx.state("one")
    assert state is not None and state["owner"] == "agent"
    assert "running" in state["status"]["containerStatuses"][0]["state"]
    pid = agent_pid(sbx)
    assert pid is not None
    # the container is the child of the pod's shim (neither the CLI's, which has exited, nor
    # the agent's: it must outlive both), and the shim no child of the agent
    container = sbx.pid_of("one", "main")
    shim = ppid_of(container)
    assert Path(f"/proc/{shim}/comm").read_text().strip() == "sbx-shim"
    assert ppid_of(shim) != pid
    assert ppid_of(state["pause"]["pid"]) == shim
    assert (sbx.root / "run" / "agent.sock").stat().st_mode & 0o777 == 0o600
    sbx.wait_for(lambda: "started one" in sbx.run("logs", "one").stdout, message="the container's log line")
    listed = sbx.run("get", "pods")
    assert "one" in listed.stdout and "Running" in listed.stdout


def test_second_pod_goes_to_the_running_agent_and_delete_stops_it(agent_sbx: Sandbox) -> None:
    sbx = agent_sbx
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("a"), "a.yaml"))).returncode == 0
    pid = agent_pid(sbx)
    done = sbx.run("run", "-d", str(sbx.manifest(sleeper("b"), "b.yaml")))
    assert done.returncode == 0, done.stderr
    assert agent_pid(sbx) == pid  # the same agent took it
    container = sbx.pid_of("b", "main")
    deleted = sbx.run("delete", "pod", "b", timeout=30)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == 'pod "b" deleted'
    assert not Path(f"/proc/{container}").exists()
    assert sbx.state("b") is None
    assert "a" in sbx.run("get", "pods").stdout  # the other pod runs on


def zombie_children(pid: int) -> list[int]:
    """The agent's children that have exited and wait to be reaped."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status and "\nState:\tZ" in status:
                found.append(int(entry.name))
    return found


def test_the_helpers_a_pods_end_leaves_are_reaped_while_the_agent_idles(agent_sbx: Sandbox) -> None:
    # The pod's end spawns the removers of its bridge and cgroup parent; they exit after their
    # grace (1-2 s), when no other pod's end comes to reap them: no zombie may stay behind.
    sbx = agent_sbx
    assert sbx.run("run", "-d", str(sbx.manifest(sleeper("z")))).returncode == 0
    pid = agent_pid(sbx)
    assert pid is not None
    assert sbx.run("delete", "pod", "z", timeout=30).returncode == 0
    sbx.wait_for(lambda: not [p for p in os.listdir("/proc") if p.isdigit() and ppid_is(int(p), pid)],
                 timeout=10, message="the removers to finish")
    assert zombie_children(pid) == []


def ppid_is(pid: int, parent: int) -> bool:
    try:
        return ppid_of(pid) == parent
    except OSError:
        return False


def test_node_options_with_a_running_agent_are_refused(agent_sbx: Sandbox) -> None:
    sbx = agent_sbx
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("a"), "a.yaml"))).returncode == 0
    same = sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("c"), "c.yaml")))
    assert same.returncode == 0, same.stderr  # the agent's own options: accepted
    refused = sbx.run("run", "-d", "--backoff-initial", "1s", str(sbx.manifest(sleeper("b"), "b.yaml")))
    assert refused.returncode == 2
    assert "--backoff-initial" in refused.stderr and "node agent" in refused.stderr
    assert sbx.state("b") is None


def test_bad_manifest_is_refused_by_field_and_the_agent_carries_on(agent_sbx: Sandbox) -> None:
    sbx = agent_sbx
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("a"), "a.yaml"))).returncode == 0
    bad = sbx.manifest(sleeper("bad").replace("image: busybox:1.36", "image: busybox:1.36\n    ports: "
                                              "[{containerPort: 70000}]"), "bad.yaml")
    refused = sbx.run("run", "-d", str(bad))
    assert refused.returncode == 2, refused.stderr
    assert "spec.containers[0].ports[0].containerPort" in refused.stderr
    # the file is named once, as given, as a foreground `run` names it
    assert refused.stderr.startswith(f"error: {bad}: spec.containers[0].ports[0].containerPort"), refused.stderr
    assert sbx.state("bad") is None
    again = sbx.run("run", "-d", str(sbx.manifest(sleeper("c"), "c.yaml")))
    assert again.returncode == 0, again.stderr


def test_a_failed_container_is_reported_and_exit_is_one(agent_sbx: Sandbox) -> None:
    sbx = agent_sbx
    path = sbx.manifest(sleeper("fails", policy="Never").replace('["sh", "-c", "echo started $HOSTNAME; exec sleep 600"]',
                                                                 '["/no/such/program"]'))
    done = sbx.run("run", "-d", "--network", "none", str(path))
    assert done.returncode == 1
    assert done.stdout.strip() == "pod/fails created"
    assert "container main: terminated" in done.stderr and "exit code 128" in done.stderr


def test_agent_stop_ends_every_pod_and_leaves_nothing(agent_sbx: Sandbox) -> None:
    sbx = agent_sbx
    for name in ("x", "y"):
        assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper(name), f"{name}.yaml"))).returncode == 0
    containers = [sbx.pid_of(name, "main") for name in ("x", "y")]
    stop_agent(sbx)
    assert not any(Path(f"/proc/{pid}").exists() for pid in containers)
    run_dir = sbx.root / "run"
    assert not (run_dir / "agent.sock").exists() and not (run_dir / "agent.lock").exists()
    for name in ("x", "y"):
        state = sbx.state(name)
        assert state is not None and state.get("ended") is True


def test_a_second_agent_is_refused(agent_sbx: Sandbox) -> None:
    sbx = agent_sbx
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("a"), "a.yaml"))).returncode == 0
    second = subprocess.run(sbx.cmd("agent"), capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert "already runs" in second.stderr


def test_agent_tells_systemd_it_is_ready_and_keeps_the_watchdog_fed(agent_sbx: Sandbox) -> None:
    import socket

    sbx = agent_sbx
    address = str(sbx.tmp / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(10)
    env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC="200000")
    agent = subprocess.Popen(sbx.cmd("agent", "--network", "none"), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        first = listener.recv(4096).decode()
        assert "READY=1" in first.split("\n")
        assert (sbx.root / "run" / "agent.sock").exists()  # ready means listening
        pings = [listener.recv(4096).decode() for _ in range(3)]
        assert all(p == "WATCHDOG=1" for p in pings)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.communicate(timeout=30)
        listener.close()
    assert agent.returncode == 0


def container_status(sbx: Sandbox, pod: str, container: str) -> dict[str, Any]:
    state = sbx.state(pod) or {}
    statuses = (state.get("status") or {}).get("containerStatuses") or []
    return next((cs for cs in statuses if cs["name"] == container), {})


def kill_agent(sbx: Sandbox) -> None:
    pid = agent_pid(sbx)
    assert pid is not None
    pidfd = os.pidfd_open(pid)
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        import select

        assert select.select([pidfd], [], [], 10)[0]
    finally:
        os.close(pidfd)


def logged_numbers(sbx: Sandbox, pod: str, container: str) -> list[int]:
    out = sbx.run("logs", pod, "-c", container).stdout
    return [int(line.split()[1]) for line in out.splitlines() if line.startswith("line ")]


def test_a_killed_agent_leaves_its_pods_running_and_the_next_agent_adopts_them(agent_sbx: Sandbox) -> None:
    """SIGKILL the agent while a container exits and another writes lines: the pod runs on under
    its shim; the next agent re-adopts it, reports the exit with its code, applies restartPolicy
    and the log holds every line, those written while no agent ran included."""
    sbx = agent_sbx
    manifest = """apiVersion: v1
kind: Pod
metadata: {name: k}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.05; done"]
  - name: quitter
    image: busybox:1.36
    command: ["sh", "-c", "echo up; sleep 1.5; echo bye; exit 3"]
"""
    path = sbx.manifest(manifest, "k.yaml")
    assert sbx.run("run", "-d", "--network", "none", str(path)).returncode == 0
    main, quitter = sbx.pid_of("k", "main"), sbx.pid_of("k", "quitter")
    kill_agent(sbx)
    # No agent now: the quitter exits (its status held by the shim) and main keeps writing.
    sbx.wait_for(lambda: not Path(f"/proc/{quitter}").exists(), message="the quitter's exit during the gap")
    gap_lines = logged_numbers(sbx, "k", "main")
    time.sleep(0.5)
    during_gap = logged_numbers(sbx, "k", "main")
    assert len(during_gap) > len(gap_lines)  # the shim writes the log while no agent runs
    assert Path(f"/proc/{main}").exists()
    assert container_status(sbx, "k", "quitter")["restartCount"] == 0  # nobody has seen the exit yet
    # readers show the agent's last word, not a lost pod: its containers live on under the shim
    row = sbx.run("get", "pods", "k").stdout.splitlines()[1].split()
    assert row[1:3] == ["2/2", "Running"], row
    assert "RuntimeLost" not in sbx.run("describe", "pod", "k").stdout
    # `sandbox gc` while no agent runs leaves a pod whose shim answers alone
    gc = sbx.run("gc")
    assert gc.returncode == 0 and "removed pod default/k" not in gc.stdout
    # nor does a foreground run of the same name replace it
    refused = sbx.run("run", "--network", "none", str(path))
    assert refused.returncode == 1 and "still running under its shim" in refused.stderr, refused.stderr
    assert Path(f"/proc/{main}").exists()
    # the next agent (started on demand by another pod) re-adopts it
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("other"), "o.yaml"))).returncode == 0

    def restarted() -> dict[str, Any] | None:
        cs = container_status(sbx, "k", "quitter")
        return cs if cs.get("restartCount", 0) >= 1 else None

    cs = sbx.wait_for(restarted, message="the quitter's exit reported and the container restarted")
    first_exit = cs["lastState"]["terminated"] if cs["restartCount"] == 1 else None
    if first_exit is not None:
        assert first_exit["exitCode"] == 3 and first_exit["reason"] == "Error"
    events = [e for e in (sbx.state("k") or {}).get("events", []) if e["reason"] == "Started"]
    assert any(e["count"] >= 2 for e in events) or len(events) >= 2
    assert container_status(sbx, "k", "main")["restartCount"] == 0
    assert sbx.pid_of("k", "main") == main  # the same process, adopted, not restarted
    numbers = logged_numbers(sbx, "k", "main")
    assert numbers == list(range(1, len(numbers) + 1))  # no line lost
    assert "re-adopted pod default/k" in (sbx.root / "log" / "sandbox-agent.log").read_text()
    execd = sbx.run("exec", "k", "-c", "main", "--", "echo", "inside")  # exec into an adopted container
    assert execd.returncode == 0 and execd.stdout == "inside\n", execd.stderr
    # the adopted pod is stopped through the new agent like any other
    done = sbx.run("delete", "pod", "k")
    assert done.returncode == 0, done.stderr
    assert not Path(f"/proc/{main}").exists()


def test_delete_of_a_pod_no_agent_runs_is_refused_unless_forced(agent_sbx: Sandbox) -> None:
    """With its agent killed the pod runs on under its shim, and only an agent stops a pod
    gracefully (preStop, the grace period): delete says so and kills nothing; --force kills it
    and removes everything, as `kubectl delete --force --grace-period=0` drops a pod at once."""
    sbx = agent_sbx
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("orphan"), "orphan.yaml"))).returncode == 0
    main = sbx.pid_of("orphan", "main")
    kill_agent(sbx)
    refused = sbx.run("delete", "pod", "orphan")
    assert refused.returncode == 1, refused.stderr
    assert "runs on under its shim while no node agent runs" in refused.stderr and "--force" in refused.stderr
    assert Path(f"/proc/{main}").exists() and sbx.state("orphan") is not None
    forced = sbx.run("delete", "--force", "pod", "orphan")
    assert forced.returncode == 0, forced.stderr
    assert 'pod "orphan" deleted' in forced.stdout
    sbx.wait_for(lambda: not Path(f"/proc/{main}").exists(), timeout=10, message="the forced delete's kill")
    assert sbx.state("orphan") is None


def test_gc_and_the_next_agent_finish_pods_whose_shim_died_with_the_agent(agent_sbx: Sandbox) -> None:
    """Agent and shims killed: the pods' processes die with their shims; what they left (mounts,
    cgroups, layers, records) is finished by `sandbox gc`, or by the next agent's start."""
    sbx = agent_sbx
    for name in ("g", "h"):
        assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper(name), f"{name}.yaml"))).returncode == 0
    shims = {name: ppid_of(sbx.pid_of(name, "main")) for name in ("g", "h")}
    kill_agent(sbx)
    for shim in shims.values():
        os.kill(shim, signal.SIGKILL)
    sbx.wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in shims.values()), message="shims gone")
    assert sbx.run("get", "pods", "g").stdout.splitlines()[1].split()[2] == "Unknown"  # lost with its shim
    gc = sbx.run("gc")
    assert gc.returncode == 0 and "removed pod default/g" in gc.stdout and "removed pod default/h" in gc.stdout
    assert sbx.state("g") is None and sbx.state("h") is None
    # the same through the next agent's start
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("k2"), "k2.yaml"))).returncode == 0
    shim = ppid_of(sbx.pid_of("k2", "main"))
    kill_agent(sbx)
    os.kill(shim, signal.SIGKILL)
    sbx.wait_for(lambda: not Path(f"/proc/{shim}").exists(), message="the shim gone")
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("k3"), "k3.yaml"))).returncode == 0
    assert sbx.state("k2") is None
    assert "finished the tear-down of pod default/k2" in (sbx.root / "log" / "sandbox-agent.log").read_text()


def test_a_re_adopted_pod_keeps_its_configmaps_in_sync(agent_sbx: Sandbox) -> None:
    """The projected volumes resync after a re-adoption: a ConfigMap of the pod's own manifest file
    still resolves (kept beside the record), and an applied ConfigMap's change reaches the files."""
    sbx = agent_sbx
    live = """apiVersion: v1
kind: ConfigMap
metadata: {{name: live}}
data: {{key: {value}}}
"""
    assert sbx.run("apply", "-f", str(sbx.manifest(live.format(value="one"), "live.yaml"))).returncode == 0
    pod = """apiVersion: v1
kind: ConfigMap
metadata: {name: own}
data: {greeting: hello}
---
apiVersion: v1
kind: Pod
metadata: {name: cfg}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox:1.36
    command: ["sleep", "600"]
    volumeMounts:
    - {name: own, mountPath: /etc/own}
    - {name: live, mountPath: /etc/live}
  volumes:
  - {name: own, configMap: {name: own}}
  - {name: live, configMap: {name: live}}
"""
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(pod, "cfg.yaml"))).returncode == 0
    kill_agent(sbx)
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("other"), "o.yaml"))).returncode == 0
    assert sbx.run("apply", "-f", str(sbx.manifest(live.format(value="two"), "live.yaml"))).returncode == 0

    def read(path: str) -> str:
        done = sbx.run("exec", "cfg", "--", "cat", path)
        return done.stdout if done.returncode == 0 else ""

    sbx.wait_for(lambda: read("/etc/live/key") == "two", timeout=30, message="the applied change in the file")
    assert read("/etc/own/greeting") == "hello"
    events = [e["reason"] for e in (sbx.state("cfg") or {}).get("events", [])]
    assert "FailedMount" not in events


def test_a_keep_pods_agent_leaves_its_pods_on_sigterm_and_the_next_one_adopts_them(agent_sbx: Sandbox) -> None:
    """`sandbox agent --keep-pods` (the systemd unit's): SIGTERM ends the agent alone, as a kubelet
    restart leaves its containers running; its socket and lock are gone, the pod's processes are
    the same ones afterwards and the next agent re-adopts the pod and can stop it."""
    sbx = agent_sbx
    agent = subprocess.Popen([*sbx.cmd("agent", "--keep-pods", "--network", "none"), "--ready-fd", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == str(agent.pid)
        assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("kept"), "k.yaml"))).returncode == 0
        main = sbx.pid_of("kept", "main")
        shim = ppid_of(main)
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, err
    assert not (sbx.root / "run" / "agent.sock").exists() and not (sbx.root / "run" / "agent.lock").exists()
    assert Path(f"/proc/{main}").exists() and Path(f"/proc/{shim}").exists()  # nothing was stopped
    row = sbx.run("get", "pods", "kept").stdout.splitlines()[1].split()
    assert row[1:3] == ["1/1", "Running"], row
    # the next agent (started on demand) re-adopts the same processes, and stops them on delete
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("other"), "o.yaml"))).returncode == 0
    assert "re-adopted pod default/kept" in (sbx.root / "log" / "sandbox-agent.log").read_text()
    assert sbx.pid_of("kept", "main") == main
    done = sbx.run("delete", "pod", "kept")
    assert done.returncode == 0, done.stderr
    assert not Path(f"/proc/{main}").exists()


def test_hostname_override_names_the_node_of_every_pod_given_to_the_agent(agent_sbx: Sandbox) -> None:
    """A pod handed to an agent run with --hostname-override is bound to that node, as a pod a
    kubelet runs carries its node's name: spec.nodeName (and the downward API's), NODE in `get -o
    wide`, the kubernetes.io/hostname label its nodeSelector is admitted against."""
    sbx = agent_sbx
    agent = subprocess.Popen([*sbx.cmd("agent", "--hostname-override", "Node1", "--network", "none"),
                              "--ready-fd", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == str(agent.pid)
        check_bound_pods(sbx)
    finally:
        stop_agent(sbx, force=True)
        agent.communicate(timeout=60)


def check_bound_pods(sbx: Sandbox) -> None:
    manifest = """apiVersion: v1
kind: Pod
metadata: {name: bound}
spec:
  nodeSelector: {kubernetes.io/hostname: node1}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "echo node=$NODE; exec sleep 600"]
    env:
    - name: NODE
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
"""
    assert sbx.run("run", "-d", str(sbx.manifest(manifest, "b.yaml"))).returncode == 0
    sbx.wait_for(lambda: "node=node1" in sbx.run("logs", "bound").stdout, message="the downward API's node name")
    assert (sbx.state("bound") or {})["manifest"]["spec"]["nodeName"] == "node1"
    assert sbx.run("get", "pods", "bound", "-o", "wide").stdout.splitlines()[1].split()[6] == "node1"
    elsewhere = manifest.replace("name: bound", "name: elsewhere").replace("hostname: node1", "hostname: node2")
    refused = sbx.run("run", "-d", str(sbx.manifest(elsewhere, "e.yaml")))
    assert refused.returncode == 1 and "NodeAffinity" in refused.stderr, refused.stderr


def test_an_agent_restart_re_adopts_twenty_pods(agent_sbx: Sandbox) -> None:
    sbx = agent_sbx
    names = [f"p{i}" for i in range(20)]
    for name in names:
        done = sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper(name), f"{name}.yaml")))
        assert done.returncode == 0, done.stderr
    pids = {name: sbx.pid_of(name, "main") for name in names}
    kill_agent(sbx)
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("extra"), "x.yaml"))).returncode == 0
    from sandbox.agent.protocol import Client

    client = Client.connect(str(sbx.root / "run" / "agent.sock"))
    try:
        listed = {p["name"]: p["phase"] for p in client.call("ListPods")["pods"]}
    finally:
        client.close()
    assert all(listed.get(name) == "Running" for name in names), listed
    assert {name: sbx.pid_of(name, "main") for name in names} == pids
    assert all(Path(f"/proc/{pid}").exists() for pid in pids.values())


def test_a_killed_shim_ends_its_pod_and_no_other(agent_sbx: Sandbox) -> None:
    """The shim holds the pod's processes: SIGKILL it and they die with it (PDEATHSIG). The agent
    sees pause and the containers gone, reports them killed (137), cannot re-create the sandbox
    without a shim and ends the pod, tearing everything down; the other pod runs on."""
    sbx = agent_sbx
    for name in ("victim", "bystander"):
        assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper(name), f"{name}.yaml"))).returncode == 0
    main, other = sbx.pid_of("victim", "main"), sbx.pid_of("bystander", "main")
    shim = ppid_of(main)
    os.kill(shim, signal.SIGKILL)
    sbx.wait_for(lambda: (sbx.state("victim") or {}).get("finished"), message="the victim pod ended")
    cs = container_status(sbx, "victim", "main")
    terminated = cs["state"].get("terminated") or cs["lastState"].get("terminated")
    assert terminated["exitCode"] == 137
    sbx.wait_for(lambda: not Path(f"/proc/{main}").exists(), message="the container reaped (by init)")
    assert Path(f"/proc/{other}").exists() and agent_pid(sbx) is not None
    assert container_status(sbx, "bystander", "main")["restartCount"] == 0


def test_run_detached_trace_streams_the_agents_steps(agent_sbx: Sandbox) -> None:
    """`run -d --trace=json`: the agent sends its client each step of the pod's start as it takes
    it, stage 1's forwarded by the pod's shim (where stage 1 runs), until the pod runs; another
    pod of the same agent is not traced."""
    import json

    sbx = agent_sbx
    assert sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("quiet"), "q.yaml"))).returncode == 0
    done = sbx.run("run", "-d", "--network", "none", "--trace=json", str(sbx.manifest(sleeper("traced"), "t.yaml")))
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    state = sbx.state("traced")
    assert state is not None
    pause = state["pause"]["pid"]
    (clone,) = [e for e in events if e["who"] == "pause[stage1]" and e["step"] == "clone"]
    assert clone["pid"] == pause and clone["nsPid"] == 1  # stage 1 ran in the shim: forwarded
    main = sbx.pid_of("traced", "main")
    joined = {e["ns"]: e["inode"] for e in events if e["who"] == "sh[stage1]" and e["step"] == "setns"}
    assert joined["net"] == os.stat(f"/proc/{main}/ns/net").st_ino
    assert [e for e in events if e["who"] == "sh[stage2]" and e["step"] == "exec"]
    joins = [e["path"] for e in events if e["who"] == "sh[stage2]" and e["step"] == "cgroup"]
    assert joins and all(str(main) in Path(path).read_text().split() for path in joins)  # moved itself in
    quiet = sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("later"), "l.yaml")))
    assert quiet.returncode == 0 and "trace" not in quiet.stderr


def test_the_shared_exit_watch_reports_each_pods_killed_background_process(agent_sbx: Sandbox) -> None:
    """One taskstats listener serves every agent pod (keyed by main pid): the seed notes' `nohup &`
    mistake is reported for the pod that made it, in two pods at once, and not for a third."""
    sbx = agent_sbx
    mistake = "nohup sleep 1000 > /dev/null 2>&1 & echo started"
    for name in ("n1", "n2"):
        path = sbx.manifest(sleeper(name, command=mistake), f"{name}.yaml")
        assert sbx.run("run", "-d", "--network", "none", "--backoff-initial", "50ms", "--backoff-max", "100ms",
                       str(path)).returncode == 0
    clean = sbx.run("run", "-d", "--network", "none", "--backoff-initial", "50ms", "--backoff-max", "100ms",
                    str(sbx.manifest(sleeper("quiet"), "quiet.yaml")))
    assert clean.returncode == 0, clean.stderr

    def reported(name: str) -> list[dict[str, Any]]:
        return [e for e in (sbx.state(name) or {}).get("events", []) if e["reason"] == "BackgroundProcessKilled"]

    for name in ("n1", "n2"):
        event = sbx.wait_for(lambda n=name: reported(n), message=f"{name}'s BackgroundProcessKilled")[0]
        assert event["involvedObject"]["fieldPath"] == "spec.containers{main}"
    assert not reported("quiet")


def test_a_pod_that_cannot_start_is_undone_and_reported(agent_sbx: Sandbox) -> None:
    """As `sandbox run`: a hostPath that fails its type check fails the pod before any container
    runs; `run -d` says why (exit 1) and nothing of the pod stays, its record included."""
    sbx = agent_sbx
    missing = sbx.tmp / "no-such-dir"
    text = sleeper("novol").replace("    command:", "    volumeMounts: [{name: data, mountPath: /data}]\n    command:")
    text += f"  volumes:\n  - name: data\n    hostPath: {{path: {missing}, type: Directory}}\n"
    done = sbx.run("run", "-d", "--network", "none", str(sbx.manifest(text, "novol.yaml")))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "pod/novol created" not in done.stdout and str(missing) in done.stderr, done.stderr
    assert 'MountVolume.SetUp failed for volume "data"' in done.stderr
    assert sbx.state("novol") is None
    again = sbx.run("run", "-d", "--network", "none", str(sbx.manifest(sleeper("fine"), "fine.yaml")))
    assert again.returncode == 0, again.stderr  # the agent carries on


def test_a_pod_that_ended_while_no_agent_ran_is_torn_down_at_adoption(agent_sbx: Sandbox) -> None:
    """Its last container exits during the gap; the next agent, woken by nothing else, tears the
    pod down at once (pause, shim, cgroups; with CNI the address), as the kubelet kills the
    sandbox of a pod in a terminal phase."""
    sbx = agent_sbx
    path = sbx.manifest(sleeper("brief", "sleep 1", policy="Never"), "brief.yaml")
    assert sbx.run("run", "-d", "--network", "none", str(path)).returncode == 0
    pause, main = sbx.pause_pid("brief"), sbx.pid_of("brief", "main")
    kill_agent(sbx)
    sbx.wait_for(lambda: not Path(f"/proc/{main}").exists(), message="the container's exit during the gap")
    (sbx.root / "run" / "agent.sock").unlink(missing_ok=True)  # the killed agent's
    log = open(sbx.tmp / "agent.log", "ab")
    sbx.procs.append(subprocess.Popen(sbx.cmd("agent", "--network", "none"), stdout=log, stderr=log,
                                      start_new_session=True))  # no request of ours wakes its loop
    log.close()
    sbx.wait_for(lambda: not Path(f"/proc/{pause}").exists(), timeout=5, message="the ended pod torn down")
    state = sbx.state("brief")
    assert state is not None and state["status"]["phase"] == "Succeeded"


def test_run_detached_answers_when_a_volume_waits_for_its_secret(agent_sbx: Sandbox) -> None:
    # A missing Secret keeps the pod in ContainerCreating (FailedMount) until it is applied; run -d
    # says so and returns, as it does for CreateContainerConfigError, instead of waiting forever.
    sbx = agent_sbx
    manifest = sbx.manifest(sleeper("mounts").replace(
        '    command: ["sh", "-c", "echo started $HOSTNAME; exec sleep 600"]\n',
        '    command: ["sh", "-c", "echo started $HOSTNAME; exec sleep 600"]\n'
        "    volumeMounts: [{name: s, mountPath: /s}]\n"
        "  volumes: [{name: s, secret: {secretName: later}}]\n"), "mounts.yaml")
    result = sbx.run("run", "-d", "--network", "none", str(manifest), timeout=30)
    assert result.returncode == 1, result.stderr
    assert ('pod/mounts: FailedMount: MountVolume.SetUp failed for volume "s" : secret "later" not found'
            in result.stderr), result.stderr
    assert "pod/mounts: container main: waiting (ContainerCreating)" in result.stderr
    assert sbx.run("delete", "pod", "mounts").returncode == 0
