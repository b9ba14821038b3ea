"""The kubelet's admission of a pod to this node: nodeSelector and required node affinity against
the node's own labels (component-helpers' RequiredNodeAffinity, case by case)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.pod.admission import REJECTED, AdmissionError, admit, matches, node_labels
from sandbox.spec.load import load_pod_text

LABELS = {"kubernetes.io/hostname": "node-1", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
          "tier": "7"}


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {})}


# fmt: off
CASES = [
    ("no rules", {}, None, True),
    ("selector matches", {"kubernetes.io/os": "linux"}, None, True),
    ("selector on another os", {"kubernetes.io/os": "windows"}, None, False),
    ("selector on a missing label", {"disktype": "ssd"}, None, False),
    ("In", {}, required({"matchExpressions": [expr("kubernetes.io/arch", "In", "arm64", "amd64")]}), True),
    ("In, no value matches", {}, required({"matchExpressions": [expr("kubernetes.io/arch", "In", "arm64")]}), False),
    ("NotIn a missing label", {}, required({"matchExpressions": [expr("zone", "NotIn", "a")]}), True),
    ("NotIn", {}, required({"matchExpressions": [expr("kubernetes.io/os", "NotIn", "linux")]}), False),
    ("Exists", {}, required({"matchExpressions": [expr("tier", "Exists")]}), True),
    ("DoesNotExist", {}, required({"matchExpressions": [expr("tier", "DoesNotExist")]}), False),
    ("Gt", {}, required({"matchExpressions": [expr("tier", "Gt", "6")]}), True),
    ("Lt", {}, required({"matchExpressions": [expr("tier", "Lt", "6")]}), False),
    ("Gt of a label that is no number", {}, required({"matchExpressions": [expr("kubernetes.io/os", "Gt", "1")]}),
     False),
    ("terms are ORed", {}, required({"matchExpressions": [expr("zone", "In", "a")]},
                                    {"matchExpressions": [expr("tier", "Exists")]}), True),
    ("expressions in a term are ANDed", {}, required({"matchExpressions": [expr("tier", "Exists"),
                                                                           expr("zone", "In", "a")]}), False),
    ("an empty term matches nothing", {}, required({}), False),
    ("no terms match nothing", {}, required(), False),
    ("matchFields on the node's name", {}, required({"matchFields": [expr("metadata.name", "In", "node-1")]}), True),
    ("matchFields on another node", {}, required({"matchFields": [expr("metadata.name", "In", "node-2")]}), False),
    ("selector and affinity both apply", {"kubernetes.io/os": "linux"},
     required({"matchExpressions": [expr("kubernetes.io/hostname", "In", "node-2")]}), False),
    ("only preferred terms", {}, {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [expr("zone", "In", "a")]}}]}}, True),
    ("pod affinity is the scheduler's", {}, {"podAffinity": {}}, True),
]
# fmt: on


@pytest.mark.parametrize("selector, affinity, want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_node_selection(selector: dict[str, str], affinity: dict[str, Any] | None, want: bool) -> None:
    assert matches(selector, affinity, LABELS, "node-1") is want


def test_the_nodes_own_labels() -> None:
    labels = node_labels("node-1")
    assert labels["kubernetes.io/hostname"] == "node-1" and labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == labels["beta.kubernetes.io/arch"] and labels["kubernetes.io/arch"]


def test_a_windows_pod_is_rejected_with_the_kubelets_reason() -> None:
    pod = load_pod_text("""
apiVersion: v1
kind: Pod
metadata: {name: win}
spec:
  nodeSelector: {kubernetes.io/os: windows}
  containers: [{name: c, image: busybox}]
""")
    with pytest.raises(AdmissionError) as caught:
        admit(pod)
    assert caught.value.reason == "NodeAffinity"
    assert str(caught.value) == f"pod default/win: NodeAffinity: {REJECTED}"
    assert REJECTED == "Pod was rejected: Predicate NodeAffinity failed"


def test_the_hostname_label_is_the_pods_node_name_when_it_has_one() -> None:
    pod = load_pod_text("""
apiVersion: v1
kind: Pod
metadata: {name: pinned}
spec:
  nodeName: worker-7
  nodeSelector: {kubernetes.io/hostname: worker-7}
  containers: [{name: c, image: busybox}]
""")
    admit(pod)  # no error: a static pod's nodeName is the node's own name


def test_admission_is_skipped_only_for_pods_with_nothing_to_check() -> None:
    from sandbox.supervisor.run import admission_applies

    base = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
    plain = load_pod_text(base + "  containers: [{name: c, image: busybox}]\n")
    limits_only = load_pod_text(base + "  containers: [{name: c, image: busybox, resources: {limits: {cpu: 1}}}]\n")
    requests = load_pod_text(base + "  initContainers: [{name: i, image: busybox, resources: {requests: {memory: 1Mi}}}]\n"
                             "  containers: [{name: c, image: busybox}]\n")
    selector = load_pod_text(base + "  nodeSelector: {a: b}\n  containers: [{name: c, image: busybox}]\n")
    assert not admission_applies(plain)
    assert admission_applies(limits_only)  # requests default from limits
    assert admission_applies(requests) and admission_applies(selector)


def test_host_ports_are_the_app_containers_and_sidecars() -> None:
    from sandbox.pod.admission import host_ports

    pod = load_pod_text("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - {name: once, image: busybox, ports: [{containerPort: 81, hostPort: 8081}]}
  - {name: side, image: busybox, restartPolicy: Always, ports: [{containerPort: 82, hostPort: 8082, protocol: UDP}]}
  containers:
  - name: app
    image: busybox
    ports: [{containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1}, {containerPort: 90}]
""")
    assert sorted(host_ports(pod)) == [("0.0.0.0", "UDP", 8082), ("127.0.0.1", "TCP", 8080)]
