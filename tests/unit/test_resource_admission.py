"""The kubelet's admission of a pod's cpu and memory requests against the node's allocatable
(pod/admission.admit_requests): OutOfcpu / OutOfmemory in the kubelet's words."""

from __future__ import annotations

import pytest

from sandbox.errors import SandboxError
from sandbox.pod.admission import EVICTION_HARD_MEMORY, admit_requests
from sandbox.spec.load import load_pod_text

GI = 1 << 30
POD = """
apiVersion: v1
kind: Pod
metadata: {name: big}
spec:
  %(pod)s
  initContainers:
  - {name: init, image: busybox, resources: {requests: {cpu: "%(init)s"}}}
  containers:
  - {name: a, image: busybox, resources: {requests: {cpu: "%(a)s", memory: 1Gi}}}
  - {name: b, image: busybox, resources: {limits: {cpu: "%(b)s", memory: 2Gi}}}
"""


def pod(a: str = "1", b: str = "500m", init: str = "100m", level: str = "") -> object:
    return load_pod_text(POD % {"a": a, "b": b, "init": init, "pod": level or "restartPolicy: Always"})


def rejection(p: object, memory: int = 8 * GI, cpus: int = 2, used: tuple[int, int] = (0, 0)) -> str | None:
    try:
        admit_requests(p, memory, cpus, used)  # type: ignore[arg-type]
    except SandboxError as e:
        return str(e)
    return None


def test_requests_that_fit_the_node_are_admitted() -> None:
    assert rejection(pod()) is None  # 1 + 0.5 CPU of 2, 3Gi of 8Gi
    assert rejection(pod(a="1500m")) is None  # exactly the node's 2000m


def test_cpu_requests_summed_over_the_app_containers_are_refused_as_out_of_cpu() -> None:
    # b's request defaults from its limit; init containers run before and count by their largest
    assert rejection(pod(a="1600m")) == ("pod default/big: OutOfcpu: Pod was rejected: Node didn't have enough "
                                         "resource: cpu, requested: 2100, used: 0, capacity: 2000")
    assert "requested: 3000," in (rejection(pod(init="3")) or "")


def test_memory_against_the_capacity_less_the_hard_eviction_threshold() -> None:
    assert rejection(pod(), memory=3 * GI + EVICTION_HARD_MEMORY) is None
    text = rejection(pod(), memory=3 * GI + EVICTION_HARD_MEMORY - 1)
    assert text == ("pod default/big: OutOfmemory: Pod was rejected: Node didn't have enough resource: memory, "
                    f"requested: {3 * GI}, used: 0, capacity: {3 * GI - 1}")


def test_the_other_pods_requests_are_used_capacity() -> None:
    # 1.5 CPU and 3Gi asked: 0.5 CPU used leaves exactly enough, 0.5 CPU + 1m does not
    assert rejection(pod(), used=(500, 0)) is None
    assert rejection(pod(), used=(501, 0)) == ("pod default/big: OutOfcpu: Pod was rejected: Node didn't have "
                                               "enough resource: cpu, requested: 1500, used: 501, capacity: 2000")
    assert "memory, requested: 3221225472, used: 5368709121," in (rejection(pod(), used=(0, 5 * GI + 1)) or "")


def test_a_resource_the_pod_does_not_request_fits_a_full_node() -> None:
    # fitsRequest checks only what the pod asks for: no memory request, memory over-committed
    cpu_only = load_pod_text("""
apiVersion: v1
kind: Pod
metadata: {name: cpu-only}
spec:
  containers: [{name: c, image: busybox, resources: {requests: {cpu: 100m}}}]
""")
    assert rejection(cpu_only, used=(0, 100 * GI)) is None
    assert "OutOfcpu" in (rejection(cpu_only, used=(1901, 100 * GI)) or "")


def test_cpu_is_checked_before_memory() -> None:
    assert "OutOfcpu" in (rejection(pod(a="3"), memory=GI) or "")


def test_pod_level_requests_replace_the_containers_sum() -> None:
    level = "resources: {requests: {cpu: 1900m}, limits: {cpu: 3, memory: 4Gi}}"
    assert rejection(pod(level=level)) is None  # 1.9 CPU, memory 4Gi from the pod-level limit
    assert "OutOfmemory" in (rejection(pod(level=level), memory=4 * GI) or "")


@pytest.mark.parametrize("text", ["restartPolicy: Never"])
def test_a_pod_without_requests_is_never_refused(text: str) -> None:
    bare = load_pod_text(f"""
apiVersion: v1
kind: Pod
metadata: {{name: bare}}
spec:
  {text}
  containers: [{{name: c, image: busybox}}]
""")
    assert rejection(bare, memory=0, cpus=1) is None


def test_the_rejection_is_an_admission_error_with_the_kubelets_reason() -> None:
    from sandbox.pod.admission import AdmissionError

    with pytest.raises(AdmissionError) as caught:
        admit_requests(pod(a="5"), 8 * GI, 2)  # type: ignore[arg-type]
    assert caught.value.reason == "OutOfcpu"
