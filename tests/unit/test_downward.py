"""The downward API for environment variables: pod fields and container resources."""

from __future__ import annotations

import os

from sandbox.process.downward import field_value, resource_value
from sandbox.spec.load import load_pod_text

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: ns
  labels: {app: web}
  annotations: {note: hi}
spec:
  serviceAccountName: robot
  containers:
  - name: c
    image: busybox
    resources:
      requests: {cpu: 125m}
      limits: {cpu: 250m, memory: 64Mi}
"""


def test_field_paths() -> None:
    pod = load_pod_text(POD)
    assert field_value(pod, "metadata.name") == "p" and field_value(pod, "metadata.namespace") == "ns"
    assert field_value(pod, "metadata.labels['app']") == "web"
    assert field_value(pod, "metadata.annotations['note']") == "hi"
    assert field_value(pod, "spec.nodeName") == os.uname().nodename
    assert field_value(pod, "spec.serviceAccountName") == "robot"
    assert field_value(pod, "status.podIP") == ""


def test_node_name_is_the_node_the_pod_is_bound_to() -> None:
    """spec.nodeName reads the pod's own (a static pod's node, an agent's --hostname-override),
    this machine's hostname only when the pod names none."""
    from sandbox.record import replace

    pod = load_pod_text(POD)
    bound = replace(pod, spec=replace(pod.spec, node_name="node1"))
    assert field_value(bound, "spec.nodeName") == "node1"


def test_resources_with_divisors_and_defaults() -> None:
    from sandbox.spec.model import Quantity

    c = load_pod_text(POD).spec.containers[0]
    assert resource_value(c, "limits.cpu", None) == "1"  # 250m rounds up to one core
    assert resource_value(c, "limits.cpu", Quantity("1m", 1)) == "250"
    assert resource_value(c, "requests.cpu", Quantity("1m", 1)) == "125"
    assert resource_value(c, "limits.memory", None) == str(64 * 1024 * 1024)
    assert resource_value(c, "limits.memory", Quantity("1Mi", 1024 * 1024 * 1000)) == "64"
    assert resource_value(c, "requests.memory", None) == str(64 * 1024 * 1024)  # defaults to the limit
    assert int(resource_value(c, "requests.ephemeral-storage", None)) == 0
    no_limits = load_pod_text(POD.replace("limits: {cpu: 250m, memory: 64Mi}", "limits: {}")).spec.containers[0]
    assert resource_value(no_limits, "limits.cpu", None) == str(os.cpu_count())  # node allocatable


def test_a_container_without_resources_gets_node_capacity_as_limits_and_no_requests() -> None:
    """The kubelet merges the node's allocatable into the limits only (MergeContainerResourceLimits:
    cpu, memory, ephemeral-storage); a request neither set nor defaulted from a limit reads 0."""
    c = load_pod_text(POD.replace("""    resources:
      requests: {cpu: 125m}
      limits: {cpu: 250m, memory: 64Mi}
""", "")).spec.containers[0]
    assert resource_value(c, "limits.cpu", None) == str(os.cpu_count())
    assert resource_value(c, "requests.cpu", None) == "0"
    assert resource_value(c, "requests.memory", None) == "0"
    assert resource_value(c, "requests.ephemeral-storage", None) == "0"
    assert int(resource_value(c, "limits.ephemeral-storage", None)) > 0  # the node filesystem's size


def test_a_zero_limit_is_the_node_capacity_too() -> None:
    c = load_pod_text(POD.replace("limits: {cpu: 250m, memory: 64Mi}", "limits: {cpu: 0}")
                      .replace("requests: {cpu: 125m}", "requests: {cpu: 0}")).spec.containers[0]
    assert resource_value(c, "limits.cpu", None) == str(os.cpu_count())
    assert resource_value(c, "requests.cpu", None) == "0"
