"""Pod spec -> cgroup values, QoS class and oom_score_adj (sandbox/process/resources.py), with the
kubelet's own numbers; the API server's resource validation and the field table's rows for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import SpecError
from sandbox.process.resources import PodResources, host_hugepage_sizes, memory_capacity, pod_resources
from sandbox.spec import fields
from sandbox.spec.load import load_pod_text
from sandbox.status import qos_class

MI = 1 << 20
GI = 1 << 30
CAPACITY = 10 * GI


def pod(containers: str, spec: str = "", init: str = "") -> str:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
    text += spec
    if init:
        text += "  initContainers:\n" + init
    return text + "  containers:\n" + containers


def ctr(name: str, resources: str = "", extra: str = "") -> str:
    line = f"  - {{name: {name}, image: busybox{', resources: ' + resources if resources else ''}{extra}}}\n"
    return line


def resources(text: str, hugepage_sizes: tuple[str, ...] = ()) -> PodResources:
    return pod_resources(load_pod_text(text), pids_max=4096, memory_capacity=CAPACITY, hugepage_sizes=hugepage_sizes)


# --- the kubelet's conversions -------------------------------------------------------------------


def test_cpu_and_memory_like_the_kubelet() -> None:
    r = resources(pod(ctr("a", "{requests: {cpu: 100m, memory: 32Mi}, limits: {cpu: '2', memory: 64Mi}}")))
    a = r.containers["a"]
    assert (a.cpu_shares, a.cpu_quota, a.cpu_period) == (102, 200000, 100000)  # MilliCPUToShares/-Quota
    assert a.memory_limit == 64 * MI == 67108864 and a.memsw_limit == 64 * MI and a.swap_max == 0
    small = resources(pod(ctr("a", "{limits: {cpu: 100m}}"))).containers["a"]
    assert (small.cpu_shares, small.cpu_quota) == (102, 10000)  # the request defaulted from the limit


def test_best_effort_pod_gets_two_shares_and_a_score_of_1000() -> None:
    r = resources(pod(ctr("a") + ctr("b")))
    assert r.qos == "BestEffort"
    assert (r.pod.cpu_shares, r.pod.cpu_quota, r.pod.memory_limit, r.pod.pids_max) == (2, None, None, 4096)
    assert r.containers["a"].cpu_shares == 2 and r.oom_score_adj == {"a": 1000, "b": 1000}


def test_guaranteed_pod_scores_minus_997_and_limits_the_pod_cgroup() -> None:
    g = "{limits: {cpu: 500m, memory: 1Gi}}"
    r = resources(pod(ctr("a", g) + ctr("b", g)))
    assert r.qos == "Guaranteed" and r.oom_score_adj == {"a": -997, "b": -997}
    assert (r.pod.cpu_shares, r.pod.cpu_quota, r.pod.memory_limit) == (1024, 100000, 2 * GI)


def test_burstable_score_is_1000_minus_the_per_mille_of_memory_requested() -> None:
    r = resources(pod(ctr("a", "{requests: {memory: 1Gi}}") + ctr("b", "{requests: {cpu: 100m}}")
                      + ctr("c", f"{{requests: {{memory: {CAPACITY}}}}}")))
    assert r.qos == "Burstable"
    assert r.oom_score_adj == {"a": 900, "b": 999, "c": 3}
    assert r.pod.memory_limit is None and r.pod.cpu_quota is None  # not every container limits


def test_sidecars_and_init_containers() -> None:
    init = (ctr("setup", "{limits: {cpu: '1', memory: 512Mi}}")
            + ctr("side", "{requests: {memory: 100Mi}, limits: {cpu: 100m, memory: 100Mi}}", ", restartPolicy: Always"))
    app = ctr("app", "{requests: {memory: 1Gi}, limits: {cpu: 200m, memory: 2Gi}}")
    r = resources(pod(app, init=init))
    assert r.pod.memory_limit == 2 * GI + 100 * MI  # app + sidecar > setup alone
    assert r.pod.cpu_quota == 100000  # setup's 1 cpu > 200m + 100m
    # a sidecar never scores above the app container with the smallest request
    assert r.oom_score_adj["app"] == 900 and r.oom_score_adj["side"] == 900
    assert set(r.containers) == {"setup", "side", "app"}


# --- pod-level resources (KEP-2837) --------------------------------------------------------------


def test_pod_level_resources_decide_the_qos_and_the_pod_cgroup() -> None:
    spec = "  resources: {limits: {cpu: '2', memory: 1Gi}}\n"  # requests default to these limits
    r = resources(pod(ctr("a", "{limits: {cpu: 100m, memory: 64Mi}}") + ctr("b"), spec=spec))
    assert r.qos == "Guaranteed" and r.pod_level
    assert (r.pod.cpu_shares, r.pod.cpu_quota, r.pod.memory_limit) == (2048, 200000, GI)
    # a container without limits gets the pod's (and, having no cpu request, shares from it)
    b = r.containers["b"]
    assert (b.cpu_quota, b.memory_limit, b.cpu_shares) == (200000, GI, 2048)
    assert r.containers["a"].cpu_quota == 10000  # its own limit stays


def test_pod_level_requests_alone_make_a_burstable_pod_and_share_the_memory_request() -> None:
    spec = "  resources: {requests: {cpu: '1', memory: 2Gi}}\n"
    g = "{limits: {cpu: 100m, memory: 1Gi}}"  # Guaranteed containers, but the pod level decides
    r = resources(pod(ctr("a", g) + ctr("b", "{requests: {cpu: 100m}}"), spec=spec))
    assert r.qos == "Burstable"
    # (2Gi - 1Gi) / 2 containers = 512Mi more for each: 1000 - 1000 * 1.5Gi / 10Gi, 1000 - 1000 * 0.5Gi / 10Gi
    assert r.oom_score_adj == {"a": 850, "b": 950}
    assert r.pod.cpu_shares == 1024 and r.pod.memory_limit is None


def test_an_empty_pod_level_stanza_leaves_the_pod_to_its_containers() -> None:
    r = resources(pod(ctr("a", "{limits: {cpu: 100m, memory: 64Mi}}"), spec="  resources: {}\n"))
    assert r.qos == "Guaranteed" and not r.pod_level


def test_pod_pids_limit_lowers_the_runtime_limit_and_never_raises_it() -> None:
    low = resources(pod(ctr("a"), spec="  resources: {limits: {pids: '100'}}\n"))
    assert low.pod.pids_max == 100 and not low.pids_capped and low.pod_level
    assert low.qos == "BestEffort"  # pids is not a QoS resource
    high = resources(pod(ctr("a"), spec="  resources: {limits: {pids: '100000'}}\n"))
    assert high.pod.pids_max == 4096 and high.pids_capped


# --- huge pages and ephemeral storage ----------------------------------------------------------


def test_hugepages_limit_every_other_host_size_to_zero() -> None:
    huge = "{limits: {hugepages-2048Ki: 4Mi, memory: 64Mi}}"
    r = resources(pod(ctr("a", huge) + ctr("b", "{limits: {memory: 64Mi}}")), hugepage_sizes=("1GB", "2MB"))
    assert r.containers["a"].hugetlb == {"1GB": 0, "2MB": 4 * MI}
    assert r.containers["b"].hugetlb == {"1GB": 0, "2MB": 0}
    assert r.pod.hugetlb == {"1GB": 0, "2MB": 4 * MI}


def test_ephemeral_storage_limits_for_the_eviction_checks() -> None:
    """ephemeral-storage is the eviction manager's (supervisor/eviction.py reads it from the spec)."""
    from sandbox.supervisor import eviction

    spec = pod(ctr("a", "{limits: {ephemeral-storage: 1Gi}}") + ctr("b"),
               init=ctr("i", "{limits: {ephemeral-storage: 2Gi}}"))
    limits = eviction.storage_limits(load_pod_text(spec))
    assert {name: limit.milli // 1000 for name, limit in limits.containers.items()} == {"a": GI}
    assert limits.pod is not None and limits.pod.milli // 1000 == 2 * GI  # the init container's is the larger
    assert eviction.storage_limits(load_pod_text(pod(ctr("a")))).pod is None


def test_host_readers(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal:       16384 kB\nMemFree:         1 kB\n")
    assert memory_capacity(str(tmp_path / "meminfo")) == 16 * MI
    for name in ("hugepages-2048kB", "hugepages-1048576kB", "hugepages-64kB"):
        (tmp_path / name).mkdir()
    assert host_hugepage_sizes(str(tmp_path)) == ("1GB", "2MB", "64KB")
    assert host_hugepage_sizes(str(tmp_path / "absent")) == ()
    assert memory_capacity() > 0
    assert memory_capacity() == memory_capacity("/proc/./meminfo")  # sysconf's number is MemTotal's


# --- status.qosClass: the same rule from the recorded spec --------------------------------------


@pytest.mark.parametrize(("spec", "want"), [
    ({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}, "containers": [{"name": "a"}]}, "Guaranteed"),
    # pod-level limits default to the containers' when every one sets them (1.36), requests to limits
    ({"resources": {"requests": {"cpu": "1"}}, "containers": [
        {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]},
     "Guaranteed"),
    ({"resources": {"requests": {"cpu": "1"}}, "containers": [
        {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}},
        {"name": "b"}]}, "Burstable"),
    ({"resources": {}, "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}, "Burstable"),
    ({"resources": {"limits": {"pids": "10"}}, "containers": [{"name": "a"}]}, "BestEffort"),
])
def test_status_qos_class_with_pod_level_resources(spec: dict[str, object], want: str) -> None:
    assert qos_class(spec) == want


# --- validation (ValidateResourceRequirements, validatePodResources) -----------------------------


def errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_pod_text(text)
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(("text", "want"), [
    (pod(ctr("a", "{limits: {hugepages-2Mi: 4Mi}}")), "spec.containers[0].resources: Forbidden: HugePages require cpu or memory"),
    (pod(ctr("a", "{limits: {hugepages-2Mi: 3Mi, memory: 1Gi}}")),
     'spec.containers[0].resources.limits[hugepages-2Mi]: Invalid value: "3Mi": 3Mi is not positive integer multiple '
     "of hugepages-2Mi"),
    (pod(ctr("a", "{limits: {hugepages-2Mi: 4Mi, memory: 1Gi}, requests: {hugepages-2Mi: 2Mi}}")),
     'spec.containers[0].resources.requests: Invalid value: "2Mi": must be equal to hugepages-2Mi limit of 4Mi'),
    (pod(ctr("a", "{requests: {example.com/gpu: 1}}")),
     "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"),
    (pod(ctr("a", "{limits: {example.com/gpu: 1.5}}")),
     'spec.containers[0].resources.limits[example.com/gpu]: Invalid value: "1.5": must be an integer'),
    (pod(ctr("a", "{limits: {pids: 10}}")),
     'spec.containers[0].resources.limits[pids]: Invalid value: "pids": must be a standard resource for containers'),
    (pod(ctr("a", "{requests: {cpu: 1500m, memory: 6Gi}}"), spec="  resources: {requests: {cpu: '1', memory: 576Mi}}\n"),
     'spec.resources.requests[memory]: Invalid value: "576Mi": must be greater than or equal to aggregate container '
     "requests of 6Gi"),
    (pod(ctr("a", "{requests: {cpu: 1500m}}"), spec="  resources: {limits: {cpu: '1'}}\n"),  # the defaulted request
     'spec.resources.requests[cpu]: Invalid value: "1": must be greater than or equal to aggregate container requests '
     "of 1500m"),
    (pod(ctr("a", "{limits: {memory: 2Gi}, requests: {memory: 1Gi}}"), spec="  resources: {limits: {memory: 1Gi}}\n"),
     'spec.resources.containers[0][memory].limits: Invalid value: "2Gi": must be less than or equal to pod limits of 1Gi'),
    (pod(ctr("a"), spec="  resources: {limits: {ephemeral-storage: 1Gi}}\n"),
     'spec.resources.limits[ephemeral-storage]: Unsupported value: "ephemeral-storage": supported values: "cpu", '
     '"hugepages-", "memory", "pids"'),
])
def test_resource_validation_as_the_api_server_words_it(text: str, want: str) -> None:
    assert want in errors(text)


def test_sidecars_count_in_the_aggregate_the_pod_level_request_must_cover() -> None:
    init = ctr("side", "{requests: {cpu: 500m}}", ", restartPolicy: Always") + ctr("setup", "{requests: {cpu: '2'}}")
    text = pod(ctr("a", "{requests: {cpu: '1'}}"), spec="  resources: {requests: {cpu: 2500m}}\n", init=init)
    load_pod_text(text)  # max(1 + 0.5, 2 + 0.5) = 2.5
    assert 'spec.resources.requests[cpu]: Invalid value: "2": must be greater than or equal to aggregate container ' \
        "requests of 2500m" in errors(text.replace("2500m", "'2'"))


# --- the field table ------------------------------------------------------------------------------


def test_extended_resources_are_refused_by_name_and_the_others_honoured() -> None:
    found = fields.check_pod(load_pod_text(pod(ctr("a", "{limits: {cpu: '1', example.com/gpu: 1}}"))))
    reason = fields._reason(fields.TABLE["ResourceRequirements"]["limits"])
    assert [str(e) for e in found.errors] == [
        f"spec.containers[0].resources.limits[example.com/gpu]: Forbidden: {reason}",
        f"spec.containers[0].resources.requests[example.com/gpu]: Forbidden: {reason}"]
    honoured = "{limits: {cpu: '1', memory: 1Gi, ephemeral-storage: 1Gi, hugepages-2Mi: 2Mi}}"
    found = fields.check_pod(load_pod_text(pod(ctr("a", honoured), spec="  resources: {limits: {pids: '10'}}\n")))
    assert (found.errors, found.warnings) == ([], [])


def test_empty_dir_size_limit_is_honoured() -> None:
    text = pod(ctr("a"), spec="  volumes: [{name: v, emptyDir: {sizeLimit: 1Gi}}]\n")
    found = fields.check_pod(load_pod_text(text))
    assert (found.errors, found.warnings) == ([], [])
