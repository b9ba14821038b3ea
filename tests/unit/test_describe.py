"""`sandbox describe pod`: kubectl's layout, probe strings, ages, QoS and Go tabwriter alignment,
from a state dict like the one `sandbox run` writes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox import events as ev
from sandbox.cli.describe import describe_pod, describe_probe, human_duration, qos_class, tabwrite
from sandbox.events import EventRecorder

T0 = 1795364682.0  # 2026-11-22T16:24:42Z, a Sunday


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start times print in local time, as kubectl does: pin the zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def probe(handler: dict[str, Any], **timing: int) -> dict[str, Any]:
    return {**handler, "initialDelaySeconds": 0, "timeoutSeconds": 1, "periodSeconds": 10,
            "successThreshold": 1, "failureThreshold": 3, **timing}


def sample_state() -> dict[str, Any]:
    web = {
        "name": "web", "image": "busybox", "command": ["httpd", "-f"], "args": ["-p", "8080"],
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": "MODE", "value": "demo"},
                {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
        "livenessProbe": probe({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}},
                               initialDelaySeconds=3, periodSeconds=3),
        "readinessProbe": probe({"exec": {"command": ["cat", "/tmp/healthy"]}}, initialDelaySeconds=5),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    manifest = {"metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
                "spec": {"containers": [web], "restartPolicy": "Always",
                         "volumes": [{"name": "data", "emptyDir": {}}]}}
    rec = EventRecorder()
    rec.record(*ev.pulled("busybox"), obj="spec.containers{web}", now=T0 + 1)
    rec.record(*ev.created("web"), obj="spec.containers{web}", now=T0 + 1)
    rec.record(*ev.started("web"), obj="spec.containers{web}", now=T0 + 1)
    for i in range(4):
        rec.record(*ev.unhealthy("liveness", "HTTP probe failed with statuscode: 500"),
                   obj="spec.containers{web}", now=T0 + 10 + 3 * i)
    conditions = [{"type": t, "status": s} for t, s in [
        ("PodReadyToStartContainers", "True"), ("Initialized", "True"), ("Ready", "False"),
        ("ContainersReady", "False"), ("PodScheduled", "True")]]
    status = {"phase": "Running", "startTime": "2026-11-22T16:24:42Z", "conditions": conditions,
              "hostIP": "192.0.2.2", "podIP": "10.89.0.7", "podIPs": [{"ip": "10.89.0.7"}],
              "containerStatuses": [{
                  "name": "web", "state": {"running": {"startedAt": "2026-11-22T16:24:43Z"}}, "lastState": {},
                  "ready": False, "restartCount": 0, "image": "busybox", "imageID": "sha256:1234",
                  "containerID": "sandbox://abc", "started": True}]}
    return {"name": "p", "namespace": "default", "uid": "u-1", "createdAt": T0, "manifest": manifest,
            "status": status, "events": rec.to_json(), "containers": {"web": {"env": ["MODE=demo", "POD=p"]}}}


EXPECTED = """\
Name:         p
Namespace:    default
Priority:     0
Node:         node-1/192.0.2.2
Start Time:   Sun, 22 Nov 2026 16:24:42 +0000
Labels:       app=web
Annotations:  <none>
Status:       Running
IP:           10.89.0.7
IPs:
  IP:  10.89.0.7
Containers:
  web:
    Container ID:  sandbox://abc
    Image:         busybox
    Image ID:      sha256:1234
    Port:          8080/TCP
    Host Port:     0/TCP
    Command:
      httpd
      -f
    Args:
      -p
      8080
    State:          Running
      Started:      Sun, 22 Nov 2026 16:24:43 +0000
    Ready:          False
    Restart Count:  0
    Liveness:       http-get http://:8080/healthz delay=3s timeout=1s period=3s #success=1 #failure=3
    Readiness:      exec [cat /tmp/healthy] delay=5s timeout=1s period=10s #success=1 #failure=3
    Environment:
      MODE:  demo
      POD:   p (v1:metadata.name)
    Mounts:
      /data from data (rw)
Conditions:
  Type                        Status
  PodReadyToStartContainers   True $
  Initialized                 True $
  Ready                       False $
  ContainersReady             False $
  PodScheduled                True $
Volumes:
  data:
    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:      $
    SizeLimit:   <unset>
QoS Class:       BestEffort
Node-Selectors:  <none>
Tolerations:     <none>
Events:
  Type     Reason     Age                From     Message
  ----     ------     ----               ----     -------
  Normal   Pulled     29s                kubelet  Container image "busybox" already present on machine
  Normal   Created    29s                kubelet  Created container: web
  Normal   Started    29s                kubelet  Started container web
  Warning  Unhealthy  11s (x4 over 20s)  kubelet  Liveness probe failed: HTTP probe failed with statuscode: 500
""".replace("$\n", "\n")  # $ marks trailing blanks, as tabwriter pads


def test_describe_matches_kubectl_layout() -> None:
    # Alignment as kubectl's tabwriter gives it: "QoS Class", "Node-Selectors" and "Tolerations"
    # share a block with the volume lines above them; the events table is aligned on its own.
    assert describe_pod(sample_state(), T0 + 30, node="node-1") == EXPECTED


def test_containers_without_status_show_the_spec_only() -> None:
    state = sample_state()
    state["status"] = {"phase": "Pending"}
    state["events"] = []
    text = describe_pod(state, T0, node="")
    assert "Container ID" not in text and "Restart Count" not in text and "State:" not in text
    assert "Node:         <none>\n" in text
    assert "IP:           \nIPs:          <none>\n" in text
    assert "Conditions:" not in text
    assert "Start Time" not in text
    assert text.endswith("Events:          <none>\n")


def test_an_ended_pod_still_shows_the_ip_its_status_keeps() -> None:
    # kubectl prints status.podIP and status.podIPs whatever the phase; `get -o wide` shows the same IP.
    state = sample_state()
    state["status"]["phase"] = "Succeeded"
    text = describe_pod(state, T0 + 30, node="node-1")
    assert "\nIP:           10.89.0.7\nIPs:\n  IP:  10.89.0.7\nContainers:\n" in text


def test_a_pod_being_deleted_is_terminating_with_its_grace_period() -> None:
    # kubectl: a deletionTimestamp on a pod that has not ended replaces the phase
    state = sample_state()
    state["deletion"] = {"at": T0 + 25, "graceSeconds": 30}
    # "lasts" is kubectl's time since the deletionTimestamp, the grace period's end (T0 + 55):
    # within it more than 1 s ahead, HumanDuration's "<invalid>"; after it, the time past it
    text = describe_pod(state, T0 + 30, node="node-1")
    assert "\nStatus:                    Terminating (lasts <invalid>)\nTermination Grace Period:  30s\n" in text
    assert "Terminating (lasts 0s)\n" in describe_pod(state, T0 + 54, node="node-1")
    assert "Terminating (lasts 5s)\n" in describe_pod(state, T0 + 60, node="node-1")
    state["status"]["phase"] = "Succeeded"  # ended: the phase again
    assert "\nStatus:       Succeeded\n" in describe_pod(state, T0 + 30, node="node-1")


def test_the_deletion_marks_in_the_pod_object() -> None:
    from sandbox.cli.get import pod_object

    state = sample_state()
    assert "deletionTimestamp" not in pod_object(state)["metadata"]
    state["deletion"] = {"at": 1764576000.25, "graceSeconds": 0}
    meta = pod_object(state)["metadata"]
    assert meta["deletionTimestamp"] == "2025-12-01T08:00:00Z" and meta["deletionGracePeriodSeconds"] == 0
    # The API server's deletionTimestamp is when the grace period ends, not when the delete came
    state["deletion"] = {"at": 1764576000.25, "graceSeconds": 30}
    meta = pod_object(state)["metadata"]
    assert meta["deletionTimestamp"] == "2025-12-01T08:00:30Z" and meta["deletionGracePeriodSeconds"] == 30


def test_a_second_delete_moves_the_deletion_marks_as_the_api_server_does() -> None:
    from sandbox.supervisor.loop import shortened_deletion

    first = (1000.0, 120)  # deleted at 1000 with 120 s: deletionTimestamp 1120
    assert shortened_deletion(first, 120, 1010.0) is None  # equal: nothing changes
    assert shortened_deletion(first, 300, 1010.0) is None  # longer: nothing changes
    assert shortened_deletion(first, 60, 1010.0) == (1000.0, 60)  # back by 60 s: 1060
    # 60 s after the first delete would be in the past: now, and the period 1 s
    assert shortened_deletion(first, 60, 1090.0) == (1089.0, 1)


def test_the_node_is_the_pods_spec_node_name_as_kubectl_shows_it() -> None:
    # a static pod of `sandbox agent --hostname-override qanode` has spec.nodeName qanode
    from sandbox.cli.get import pod_row

    state = sample_state()
    state["manifest"]["spec"]["nodeName"] = "qanode"
    assert "\nNode:         qanode/" in describe_pod(state, T0 + 30)
    assert "qanode" in pod_row(state, now=T0 + 30, node="vm", wide=True)
    del state["manifest"]["spec"]["nodeName"]
    assert "\nNode:         vm/" in describe_pod(state, T0 + 30, node="vm")
    assert "vm" in pod_row(state, now=T0 + 30, node="vm", wide=True)


def test_waiting_and_terminated_states() -> None:
    state = sample_state()
    cs = state["status"]["containerStatuses"][0]
    cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}
    cs["lastState"] = {"terminated": {"exitCode": 137, "reason": "Error", "message": "oops",
                                      "startedAt": "2026-11-22T16:24:43Z", "finishedAt": None}}
    cs["restartCount"] = 3
    text = describe_pod(state, T0 + 30, node="n")
    assert "    State:          Waiting\n      Reason:       CrashLoopBackOff\n" in text
    assert ("    Last State:     Terminated\n      Reason:       Error\n      Message:      oops\n"
            "      Exit Code:    137\n      Started:      Sun, 22 Nov 2026 16:24:43 +0000\n"
            "      Finished:     Mon, 01 Jan 0001 00:00:00 +0000\n") in text
    assert "    Restart Count:  3\n" in text


def test_init_containers_section_and_pod_message() -> None:
    state = sample_state()
    spec = state["manifest"]["spec"]
    spec["initContainers"] = [{"name": "init", "image": "busybox", "command": ["true"]}]
    state["status"]["phase"] = "Failed"
    state["status"]["message"] = "Pod was active on the node longer than the specified deadline"
    state["status"]["initContainerStatuses"] = [{"name": "init", "state": {"terminated": {
        "exitCode": 0, "reason": "Completed", "startedAt": "2026-11-22T16:24:42Z",
        "finishedAt": "2026-11-22T16:24:42Z"}}, "ready": True, "restartCount": 0}]
    text = describe_pod(state, T0, node="n")
    assert text.index("Init Containers:\n  init:\n") < text.index("Containers:\n  web:\n")
    assert "Message:      Pod was active on the node longer than the specified deadline\n" in text


def test_labels_annotations_tolerations_node_selectors() -> None:
    state = sample_state()
    meta, spec = state["manifest"]["metadata"], state["manifest"]["spec"]
    meta["labels"] = {"tier": "front", "app": "web"}
    meta["annotations"] = {"b": "two", "a": "x" * 150, "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    spec["nodeSelector"] = {"disk": "ssd"}
    spec["tolerations"] = [{"operator": "Exists"},
                           {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                            "tolerationSeconds": 300},
                           {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    text = describe_pod(state, T0, node="n")
    assert "Labels:       app=web\n              tier=front\n" in text
    assert "Annotations:  a:\n                " + "x" * 138 + "...\n              b: two\n" in text
    assert "last-applied" not in text
    assert "Node-Selectors:  disk=ssd\n" in text
    assert ("Tolerations:     op=Exists\n                 dedicated=gpu:NoSchedule\n"
            "                 node.kubernetes.io/unreachable:NoExecute op=Exists for 300s\n") in text


def test_environment_sources_and_mounts() -> None:
    state = sample_state()
    web = state["manifest"]["spec"]["containers"][0]
    web["envFrom"] = [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "sec", "optional": True}, "prefix": "S_"}]
    web["env"] = [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                  {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k", "optional": True}}},
                  {"name": "LINES", "value": "one\ntwo"}]
    web["volumeMounts"] = [{"name": "b", "mountPath": "/z", "readOnly": True, "subPath": "sub"},
                           {"name": "a", "mountPath": "/a"}]
    text = describe_pod(state, T0, node="n")
    assert ("    Environment Variables from:\n      cm   ConfigMap                Optional: false\n"
            "      sec  Secret with prefix 'S_'  Optional: true\n") in text
    assert ("      K:      <set to the key 'k' in secret 's'>      Optional: false\n"
            "      C:      <set to the key 'k' of config map 'c'>  Optional: true\n"
            "      LINES:  one\n              two\n") in text
    assert "    Mounts:\n      /a from a (rw)\n      /z from b (ro,path=\"sub\")\n" in text


@pytest.mark.parametrize("handler, want", [
    ({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}}, "http-get http://:8080/healthz"),
    ({"httpGet": {"path": "/a b", "port": "http", "host": "10.0.0.1", "scheme": "HTTPS"}},
     "http-get https://10.0.0.1:http/a%20b"),
    ({"httpGet": {"path": "/", "port": 80, "host": "::1", "scheme": "HTTP"}}, "http-get http://[::1]:80/"),
    ({"exec": {"command": ["cat", "/tmp/healthy"]}}, "exec [cat /tmp/healthy]"),
    ({"tcpSocket": {"port": 8080}}, "tcp-socket :8080"),
    ({"grpc": {"port": 2379, "service": ""}}, "grpc <pod>:2379 "),
    ({"grpc": {"port": 2379, "service": "etcd"}}, "grpc <pod>:2379 etcd"),
])
def test_probe_lines(handler: dict[str, Any], want: str) -> None:
    assert describe_probe(probe(handler)) == f"{want} delay=0s timeout=1s period=10s #success=1 #failure=3"


@pytest.mark.parametrize("seconds, want", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (125, "2m5s"), (599, "9m59s"),
    (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"),
    (47 * 3600, "47h"), (48 * 3600, "2d"), (50 * 3600, "2d2h"), (8 * 86400, "8d"), (2 * 365 * 86400, "2y"),
    (2 * 365 * 86400 + 86400, "2y1d"), (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds: float, want: str) -> None:
    assert human_duration(seconds) == want


def containers(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}


@pytest.mark.parametrize("spec, want", [
    (containers({}), "BestEffort"),
    (containers({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}),
     "Guaranteed"),
    (containers({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}),
     "Burstable"),
    (containers({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}), "Burstable"),
    (containers({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}, {}),
     "Burstable"),
    (containers({"requests": {"ephemeral-storage": "1Gi"}}), "BestEffort"),
    (containers({"requests": {"cpu": "0"}}), "BestEffort"),
])
def test_qos_class(spec: dict[str, Any], want: str) -> None:
    assert qos_class(spec) == want


def test_tabwrite_aligns_blocks_of_consecutive_lines_like_go() -> None:
    text = "a:\t1\nlonger:\t2\nbreak\nx:\tyy\tz\nxx:\ty\n"
    assert tabwrite(text) == "a:       1\nlonger:  2\nbreak\nx:   yy  z\nxx:  y\n"


def test_tabwrite_nested_columns_only_span_lines_that_have_them() -> None:
    text = "k\tv\tlong-third\tend\nk2\tv2\tend\nk3\tv3\n"
    assert tabwrite(text) == ("k   v   long-third  end\n"
                              "k2  v2  end\n"
                              "k3  v3\n")


def test_volume_kinds() -> None:
    state = sample_state()
    state["manifest"]["spec"]["volumes"] = [
        {"name": "h", "hostPath": {"path": "/var/log"}},
        {"name": "s", "secret": {"secretName": "tls", "optional": True}},
        {"name": "c", "configMap": {"name": "cfg"}},
        {"name": "d", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607}},
                                                {"configMap": {"name": "kube-root-ca.crt"}}, {"downwardAPI": {}}]}},
        {"name": "x", "nfs": {"server": "n", "path": "/"}},
    ]
    text = describe_pod(state, T0, node="n")
    volumes = text[text.index("Volumes:\n"):text.index("QoS Class")]
    # Each volume's lines form their own tabwriter block: the "  name:" lines have no tab.
    assert volumes == (
        "Volumes:\n"
        "  h:\n"
        "    Type:          HostPath (bare host directory volume)\n"
        "    Path:          /var/log\n"
        "    HostPathType:  <none>\n"
        "  s:\n"
        "    Type:        Secret (a volume populated by a Secret)\n"
        "    SecretName:  tls\n"
        "    Optional:    true\n"
        "  c:\n"
        "    Type:      ConfigMap (a volume populated by a ConfigMap)\n"
        "    Name:      cfg\n"
        "    Optional:  false\n"
        "  d:\n"
        "    Type:  DownwardAPI (a volume populated by information about the pod)\n"
        "    Items:\n"
        "      metadata.labels -> labels\n"
        "  p:\n"
        "    Type:                    Projected (a volume that contains injected data from multiple sources)\n"
        "    TokenExpirationSeconds:  3607\n"
        "    ConfigMapName:           kube-root-ca.crt\n"
        "    Optional:                false\n"
        "    DownwardAPI:             true\n"
        "  x:\n"
        "  <unknown>\n"
    )


def test_oom_kills_line_after_restart_count_only_when_there_were_any() -> None:
    state = sample_state()
    state["containers"]["web"]["oomKills"] = 2
    text = describe_pod(state, T0 + 30, node="node-1")
    assert "    Restart Count:  0\n    OOM Kills:      2\n    Liveness:" in text
    for record in ({"oomKills": 0}, {}, {"oomKills": "3"}, None):
        state["containers"]["web"] = record
        assert "OOM Kills" not in describe_pod(state, T0 + 30, node="node-1")
    del state["containers"]
    assert "OOM Kills" not in describe_pod(state, T0 + 30, node="node-1")


def test_pod_cgroup_lines_after_qos_one_per_directory() -> None:
    state = sample_state()
    state["cgroup"] = {"mode": "hybrid", "driver": "cgroupfs", "paths": {
        "memory": "/sys/fs/cgroup/memory/sandbox/u-1", "cpu": "/sys/fs/cgroup/cpu,cpuacct/sandbox/u-1",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/sandbox/u-1", "unified": "/sys/fs/cgroup/unified/sandbox/u-1"}}
    text = describe_pod(state, T0 + 30, node="node-1")
    assert ("QoS Class:       BestEffort\n"
            "Cgroup:          hybrid, cgroupfs driver\n"
            "                 /sys/fs/cgroup/cpu,cpuacct/sandbox/u-1 (cpu,cpuacct)\n"
            "                 /sys/fs/cgroup/memory/sandbox/u-1 (memory)\n"
            "                 /sys/fs/cgroup/unified/sandbox/u-1 (unified)\n"
            "Node-Selectors:  <none>\n") in text


def test_no_cgroup_lines_for_a_record_without_one() -> None:
    records: list[object] = [None, {}, {"mode": "v1"}, {"paths": {}}, {"paths": "x"}, "garbage"]
    for record in records:
        state = sample_state()
        if record is not None:
            state["cgroup"] = record
        assert describe_pod(state, T0 + 30, node="node-1") == EXPECTED


def test_resource_field_env_values_as_kubectl_computes_them_from_the_spec() -> None:
    # kubectl's describe: ExtractContainerResourceValue on the container, "node allocatable" for a
    # 0 limits.cpu/limits.memory; never the node value the process got (it is not in the spec).
    state = sample_state()
    web = state["manifest"]["spec"]["containers"][0]
    web["resources"] = {"limits": {"memory": "64Mi"}, "requests": {"cpu": "125m"}}
    web["env"] = [{"name": n, "valueFrom": {"resourceFieldRef": {"resource": r, **({"divisor": d} if d else {})}}}
                  for n, r, d in [("CL", "limits.cpu", None), ("ML", "limits.memory", "1Mi"),
                                  ("CR", "requests.cpu", "1m"), ("MR", "requests.memory", None),
                                  ("EL", "limits.ephemeral-storage", None)]]
    text = describe_pod(state, T0, node="n")
    assert ("      CL:  node allocatable (limits.cpu)\n"
            "      ML:  64 (limits.memory)\n"
            "      CR:  125 (requests.cpu)\n"
            f"      MR:  {64 * 1024 * 1024} (requests.memory)\n"
            "      EL:  0 (limits.ephemeral-storage)\n") in text


def test_pod_level_resources_before_the_containers_as_kubectl_describes_them() -> None:
    state = sample_state()
    state["manifest"]["spec"]["resources"] = {"limits": {"memory": "200Mi", "cpu": "1"},
                                              "requests": {"cpu": "300m", "memory": "100Mi"}}
    text = describe_pod(state, T0 + 30, node="node-1")
    # describePod: "Resources:" after the IPs, describeResources one level in, names sorted
    assert ("  IP:  10.89.0.7\nResources:\n  Limits:\n    cpu:     1\n    memory:  200Mi\n"
            "  Requests:\n    cpu:     300m\n    memory:  100Mi\nContainers:\n") in text
    assert "Resources:" not in describe_pod(sample_state(), T0 + 30, node="node-1")
