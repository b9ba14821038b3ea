"""The kubelet's admission of a pod to this node: a pod whose nodeSelector or required node
affinity rules this node out is rejected before anything of it exists."""

from __future__ import annotations

import os

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  restartPolicy: Never
%(rules)s
  containers:
  - {name: c, image: busybox, command: ["true"]}
"""


def test_a_pod_for_another_node_is_rejected_and_leaves_nothing(sbx: Sandbox) -> None:
    manifest = sbx.manifest(POD % {"name": "win", "rules": "  nodeSelector: {kubernetes.io/os: windows}"})
    result = sbx.run("run", str(manifest))
    assert result.returncode == 1, result.stderr
    assert "pod default/win: NodeAffinity: Pod was rejected: Predicate NodeAffinity failed" in result.stderr
    assert sbx.state("win") is None
    assert not (sbx.root / "run" / "pods" / "default_win").exists()
    assert sbx.run("validate", str(manifest)).returncode == 0  # valid for the API server all the same


def test_a_pod_whose_rules_match_this_node_runs(sbx: Sandbox) -> None:
    rules = """  nodeSelector: {kubernetes.io/os: linux}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/arch, operator: Exists}]"""
    result = sbx.run("run", str(sbx.manifest(POD % {"name": "lin", "rules": rules})))
    assert result.returncode == 0, result.stderr
    assert "pod default/lin: Succeeded" in result.stderr


HOST_NETWORK = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: busybox
    command: ["sleep", "600"]
    ports: [{containerPort: %(port)d, hostPort: %(port)d%(ip)s}]
"""


def test_a_host_port_a_running_pod_holds_rejects_the_next_pod_at_admission(sbx: Sandbox) -> None:
    """NodePorts: a hostPort is the node's; a second pod asking for one a running pod holds (here
    hostNetwork pods, whose processes would otherwise fail to bind) is rejected before anything of
    it exists, also for a specific hostIP against 0.0.0.0; another port, or the first pod ended,
    is admitted."""
    first = sbx.start(sbx.manifest(HOST_NETWORK % {"name": "first", "port": 18090, "ip": ""}, "first.yaml"))
    sbx.wait_running("first")
    for name, ip in (("second", ""), ("third", ", hostIP: 127.0.0.1")):
        manifest = sbx.manifest(HOST_NETWORK % {"name": name, "port": 18090, "ip": ip}, f"{name}.yaml")
        result = sbx.run("run", str(manifest))
        assert result.returncode == 1, result.stderr
        assert f"pod default/{name}: NodePorts: Pod was rejected: Predicate NodePorts failed" in result.stderr
        assert "held by pod default/first" in result.stderr and "Traceback" not in result.stderr
        assert not (sbx.root / "run" / "pods" / f"default_{name}").exists()
    other = sbx.start(sbx.manifest(HOST_NETWORK % {"name": "other", "port": 18091, "ip": ""}, "other.yaml"))
    sbx.wait_running("other")
    sbx.stop(other)
    sbx.stop(first)
    again = sbx.start(sbx.manifest(HOST_NETWORK % {"name": "second", "port": 18090, "ip": ""}, "second.yaml"))
    sbx.wait_running("second")
    sbx.stop(again)


REQUESTING = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: busybox
    command: ["sleep", "600"]
%(resources)s
"""


def test_the_requests_of_running_pods_count_against_the_next_pods(sbx: Sandbox) -> None:
    """noderesources fit: the node's other active pods' requests are used capacity. With 1 CPU of
    the node requested by a running pod, a pod asking for the rest plus 1m is rejected (OutOfcpu,
    `used: 1000`), one asking for the rest, or for no cpu at all, is admitted; once the first
    pod ended its CPU is free again."""
    cpus = os.cpu_count() or 1
    if cpus < 2:
        pytest.skip("needs two CPUs: one requested by a running pod, one left")
    capacity = cpus * 1000
    def manifest(name: str, cpu: int | None) -> str:
        resources = f"    resources: {{requests: {{cpu: {cpu}m}}}}" if cpu is not None else ""
        return str(sbx.manifest(REQUESTING % {"name": name, "resources": resources}, f"{name}.yaml"))
    first = sbx.start(manifest("first", 1000))
    sbx.wait_running("first")
    node = sbx.run("describe", "node")  # what admission counts, as kubectl describe node shows it
    assert node.returncode == 0, node.stderr
    assert "Non-terminated Pods:          (1 in total)" in node.stdout
    assert f"1 ({100000 // capacity}%)" in node.stdout.split("Allocated resources:")[1]
    assert sbx.run("get", "nodes").stdout.split()[5:7] == [os.uname().nodename.lower(), "Ready"]
    result = sbx.run("run", manifest("greedy", capacity - 1000 + 1))
    assert result.returncode == 1, result.stderr
    assert (f"pod default/greedy: OutOfcpu: Pod was rejected: Node didn't have enough resource: cpu, "
            f"requested: {capacity - 1000 + 1}, used: 1000, capacity: {capacity}") in result.stderr
    assert not (sbx.root / "run" / "pods" / "default_greedy").exists() and sbx.state("greedy") is None
    fits = [sbx.start(manifest("rest", capacity - 1000)), sbx.start(manifest("besteffort", None))]
    sbx.wait_running("rest")
    sbx.wait_running("besteffort")
    for proc in fits:
        sbx.stop(proc)
    sbx.stop(first)
    again = sbx.start(manifest("greedy", capacity - 1000 + 1))
    sbx.wait_running("greedy")
    sbx.stop(again)


def test_max_pods_counts_the_running_pods(sbx: Sandbox) -> None:
    """noderesources fitsRequest's pod count: with --max-pods 2 and two pods running, a third is
    rejected (OutOfpods, used 2 of 2) before anything of it exists; a pod that ended is not
    counted, and once one of the two ended the third is admitted."""
    def manifest(name: str) -> str:
        return str(sbx.manifest(REQUESTING % {"name": name, "resources": ""}, f"{name}.yaml"))
    done = sbx.run("run", "--max-pods", "2", str(sbx.manifest(POD % {"name": "ended", "rules": ""}, "ended.yaml")))
    assert done.returncode == 0, done.stderr  # its record stays, ended: not an active pod
    running = [sbx.start(manifest(name), "--max-pods", "2") for name in ("one", "two")]
    for name in ("one", "two"):
        sbx.wait_running(name)
    third = sbx.run("run", "--max-pods", "2", manifest("three"))
    assert third.returncode == 1, third.stderr
    assert ("pod default/three: OutOfpods: Pod was rejected: Node didn't have enough resource: pods, "
            "requested: 1, used: 2, capacity: 2") in third.stderr
    assert sbx.state("three") is None
    assert sbx.run("run", "--max-pods", "0", manifest("three")).returncode == 2
    sbx.stop(running.pop())
    admitted = sbx.start(manifest("three"), "--max-pods", "2")
    sbx.wait_running("three")
    for proc in (*running, admitted):
        sbx.stop(proc)


def test_the_agent_admits_one_pod_after_the_other(agent_sbx: Sandbox) -> None:
    """Two RunPod requests at once, each asking for 60% of the node's CPU: the agent's worker
    prepares the second while the loop starts the first, before the first has a record; the
    loop's own admission, one pod after the other as the kubelet's, rejects the second."""
    from sandbox.agent.protocol import Client, encode, socket_path_of

    sbx = agent_sbx
    capacity = (os.cpu_count() or 1) * 1000

    def manifest(name: str, cpu: int) -> str:
        resources = f"    resources: {{requests: {{cpu: {cpu}m}}}}"
        return str(sbx.manifest(REQUESTING % {"name": name, "resources": resources}, f"{name}.yaml"))

    warm = sbx.run("run", "-d", manifest("warm", 1))  # the agent is up before the race
    assert warm.returncode == 0, warm.stderr
    for attempt in range(4):  # a race: without the loop's admission, the two most often both ran
        names = (f"one-{attempt}", f"two-{attempt}")
        paths = [manifest(name, capacity * 6 // 10) for name in names]
        clients = [Client.connect(socket_path_of(str(sbx.root))) for _ in paths]
        try:
            for client, path in zip(clients, paths):
                client.sock.sendall(encode({"op": "RunPod", "path": path}))
            answers = [client.receive() for client in clients]
        finally:
            for client in clients:
                client.close()
        assert sorted(bool(a.get("ok")) for a in answers) == [False, True], (attempt, answers)
        refused = next(a for a in answers if not a.get("ok"))
        assert "OutOfcpu: Pod was rejected" in str(refused.get("error")), refused
        assert f"used: {capacity * 6 // 10 + 1}" in str(refused.get("error")), refused
        deleted = sbx.run("delete", "pods", *names, "--grace-period=0", "--force")
        assert deleted.returncode in (0, 1), deleted.stderr  # the refused one does not exist
