"""The kubelet's admission of a pod to its node, GeneralPredicates (pkg/kubelet/lifecycle/
predicate.go) as far as one node has them: the pod's cpu and memory requests against the node's
allocatable less what its other active pods request (OutOfcpu / OutOfmemory; the other pods are
the live records of the same --root, so two foreground runs admitted at the same instant can both
fit, where the kubelet admits one pod at a time, as the node agent does on its loop), its
hostPorts against theirs (NodePorts), and its `nodeSelector` and required node affinity
(`affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`) against this node's
labels. The scheduler checks the same for pods it places; a pod given to the node directly (a
static pod, and every pod here) meets only this check. A pod that fails it is rejected before
anything of it exists: the kubelet marks it Failed, reason NodeAffinity, "Pod was rejected:
Predicate NodeAffinity failed".

The node's labels are the ones the kubelet puts on its own Node (kubelet_node_status.go
initialNode): kubernetes.io/hostname (the pod's spec.nodeName when it has one, as a static
pod's is the node's name, else this machine's hostname), kubernetes.io/os and kubernetes.io/arch,
and their beta.kubernetes.io twins. Preferred terms and pod (anti-)affinity are the scheduler's.
"""

from __future__ import annotations

import os

from sandbox.errors import SandboxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from pathlib import Path
    from typing import Any

    from sandbox.spec.model import Pod

NODE_AFFINITY = "NodeAffinity"
REJECTED = f"Pod was rejected: Predicate {NODE_AFFINITY} failed"
NODE_PORTS = "NodePorts"


class AdmissionError(SandboxError):
    """The kubelet's rejection of a pod at admission (exit 1: the pod fails, its manifest is valid)."""

    def __init__(self, pod: str, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"pod {pod}: {reason}: {message}")


def node_labels(node_name: str) -> dict[str, str]:
    from sandbox.images import goarch  # the machine's GOARCH, as image pulls choose by it

    arch = goarch()
    return {"kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch}


def admit(pod: Pod, pods_dir: Path | None = None) -> None:
    """AdmissionError when the pod does not fit this node (its requests), a hostPort it asks for
    is another running pod's of `pods_dir` (the runtime's records), or its node selection rules
    this node out."""
    cpu, memory = pod_requests(pod)
    others: list[tuple[str, Pod]] | None = None
    if pods_dir is not None and (cpu or memory or host_ports(pod)):  # most pods: no record read
        others = list(_live_pods(pods_dir, _owner(pod)))
    admit_requests(pod, used=_requested(others or ()), requests=(cpu, memory))
    if others:
        admit_host_ports(pod, others)
    if not pod.spec.node_selector and not pod.spec.affinity:
        return  # most pods: nothing to check, nothing imported
    node = pod.spec.node_name or os.uname().nodename.strip().lower()
    if not matches(pod.spec.node_selector, pod.spec.affinity, node_labels(node), node):
        raise AdmissionError(_owner(pod), NODE_AFFINITY, REJECTED)


def matches(node_selector: Mapping[str, str], affinity: Mapping[str, Any] | None, labels: Mapping[str, str],
            node_name: str) -> bool:
    """component-helpers' RequiredNodeAffinity.Match: every nodeSelector label equal, and, when
    required node affinity is given, at least one of its terms matching (terms are ORed; an empty
    term matches nothing; within a term every expression and field must match)."""
    if any(labels.get(key) != value for key, value in node_selector.items()):
        return False
    node_affinity = (affinity or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    fields = {"metadata.name": node_name}
    return any(_term(term, labels, fields) for term in required.get("nodeSelectorTerms") or ())


def _term(term: Mapping[str, Any], labels: Mapping[str, str], fields: Mapping[str, str]) -> bool:
    expressions = term.get("matchExpressions") or ()
    field_rules = term.get("matchFields") or ()
    if not expressions and not field_rules:
        return False
    return (all(_requirement(r, labels) for r in expressions)
            and all(_requirement(r, fields) for r in field_rules))


def _requirement(rule: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = str(rule.get("key", "")), str(rule.get("operator", ""))
    values: Sequence[str] = [str(v) for v in rule.get("values") or ()]
    present = key in labels
    value = labels.get(key, "")
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        # both sides whole numbers (the API server checks the rule's one value; a label that is
        # none does not match)
        if len(values) != 1 or not (_is_int(value) and _is_int(values[0])):
            return False
        have, want = int(value), int(values[0])
        return have > want if operator == "Gt" else have < want
    return False


def _is_int(text: str) -> bool:
    # strconv.ParseInt's syntax (no spaces or underscores, which Python's int() would take)
    digits = text[1:] if text[:1] in "+-" else text
    return digits.isascii() and digits.isdigit()


# The kubelet's default evictionHard memory.available: the node's allocatable memory is its
# capacity less this (no kube-reserved or system-reserved by default).
EVICTION_HARD_MEMORY = 100 * 1024 * 1024


def admit_pod_count(pod: Pod, pods_dir: Path, max_pods: int) -> None:
    """noderesources fitsRequest's first check: the node's active pods and this one must not be
    more than maxPods (OutOfpods; the pod's own earlier run is not counted)."""
    used = sum(1 for _ in _live_pods(pods_dir, _owner(pod)))
    if used + 1 > max_pods:
        raise AdmissionError(_owner(pod), "OutOfpods", "Pod was rejected: Node didn't have enough resource: pods, "
                                                      f"requested: 1, used: {used}, capacity: {max_pods}")


def pod_requests(pod: Pod) -> tuple[int, int]:
    """(millicpu, memory bytes) the pod requests as resourcehelper.PodRequests sums them: init
    containers, sidecars and pod-level resources included."""
    from sandbox.cgroups.resources import default_pod_level, effective
    from sandbox.process.resources import container_resources, pod_level_resources

    app = [container_resources(c) for c in pod.spec.containers]
    init = [container_resources(c, init=True) for c in pod.spec.init_containers]
    plv = pod_level_resources(pod.spec)
    level = default_pod_level(plv, app, init) if plv is not None else None
    cpu = (level.cpu_request_milli if level is not None else None) or effective(app, init, lambda c: c.cpu_request_milli)
    memory = (level.memory_request if level is not None else None) or effective(app, init, lambda c: c.memory_request)
    return cpu, memory


def admit_requests(pod: Pod, memory_capacity: int | None = None, cpus: int | None = None,
                   used: tuple[int, int] = (0, 0), requests: tuple[int, int] | None = None) -> None:
    """The kubelet's admission of the pod's cpu and memory requests (GeneralPredicates'
    noderesources fitsRequest): a resource the pod requests must fit in the node's allocatable
    (every CPU, and MemTotal less the hard eviction threshold) less what the node's other active
    pods request (`used`: (millicpu, bytes)). A pod that cannot fit is rejected before anything of
    it exists, in the kubelet's words (reason OutOfcpu / OutOfmemory, the first one found).
    `requests`: the pod's own, when the caller has summed them already."""
    from sandbox.process.resources import memory_capacity as node_memory

    if memory_capacity is None:
        memory_capacity = node_memory()
    cpu, memory = requests if requests is not None else pod_requests(pod)
    for name, requested, in_use, allocatable in (
            ("cpu", cpu, used[0], (cpus if cpus is not None else os.cpu_count() or 1) * 1000),
            ("memory", memory, used[1], max(memory_capacity - EVICTION_HARD_MEMORY, 0))):
        # fitsRequest checks only what the pod asks for: a pod requesting no cpu fits a full node
        if requested > 0 and requested > allocatable - in_use:
            raise AdmissionError(_owner(pod), f"OutOf{name}",
                                 f"Pod was rejected: Node didn't have enough resource: {name}, requested: "
                                 f"{requested}, used: {in_use}, capacity: {allocatable}")


def _requested(others: Iterable[tuple[str, Pod]]) -> tuple[int, int]:
    """What the node's other active pods request, summed as the scheduler's NodeInfo.Requested."""
    cpu = memory = 0
    for _, other in others:
        c, m = pod_requests(other)
        cpu, memory = cpu + c, memory + m
    return cpu, memory


def _owner(pod: Pod) -> str:
    return f"{pod.metadata.namespace or 'default'}/{pod.metadata.name}"


def host_ports(pod: Pod) -> list[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) of every port of the pod with a hostPort, as the NodePorts
    check collects them: app containers' and restartable init containers' (sidecars run beside
    them); hostIP "" is 0.0.0.0, protocol "" is TCP."""
    spec = pod.spec
    containers = [*spec.containers, *(c for c in spec.init_containers if c.restart_policy == "Always")]
    return [(p.host_ip or "0.0.0.0", p.protocol or "TCP", p.host_port)
            for c in containers for p in c.ports if p.host_port]


def admit_host_ports(pod: Pod, others: Iterable[tuple[str, Pod]]) -> None:
    """The kubelet's NodePorts admission: a hostPort is the node's, so a pod asking for one a
    running pod holds is rejected before anything of it exists; hostNetwork pods included, whose
    processes would otherwise fail to bind. The conflict rule and the wording are the hostPort
    forwarding's own (network/hostports.py: same protocol and port, either address 0.0.0.0 or
    both the same). `others`: (namespace/name, Pod) of the node's other active pods."""
    wanted = host_ports(pod)
    if not wanted:
        return
    from sandbox.network.hostports import describe, overlaps

    mine = [_mapping(*port) for port in wanted]
    for owner, other in others:
        theirs = [_mapping(*port) for port in host_ports(other)]
        for m in mine:
            if any(overlaps(m, held) for held in theirs):
                raise AdmissionError(_owner(pod), NODE_PORTS, f"Pod was rejected: Predicate {NODE_PORTS} failed "
                                                              f"({describe(m)} is held by pod {owner})")


def _mapping(host_ip: str, protocol: str, host_port: int) -> Any:
    from sandbox.network.hostports import PortMapping

    return PortMapping(protocol, "" if host_ip == "0.0.0.0" else host_ip, host_port, 0, "")


def _live_pods(pods_dir: Path, me: str) -> Iterator[tuple[str, Pod]]:
    """(namespace/name, Pod) of every pod a runtime of `pods_dir` runs now but `me` (an earlier
    run of the pod itself), from its record's manifest: the kubelet's active pods (ended and lost
    pods hold no port and request nothing: their processes are gone)."""
    from sandbox.spec.load import pod_of_document
    from sandbox.state.store import list_pod_dirs
    from sandbox.state.view import LIVE, read_pod

    for pod_dir in list_pod_dirs(pods_dir):
        try:
            state, kind = read_pod(pod_dir)
        except SandboxError:  # no record yet, or an unreadable one: nothing it runs is known
            continue
        if kind != LIVE or ((state.get("status") or {}).get("phase") or "") in ("Succeeded", "Failed"):
            continue
        manifest = state.get("manifest")
        other = pod_of_document(manifest, "record", []) if isinstance(manifest, dict) else None
        owner = f"{state.get('namespace') or 'default'}/{state.get('name')}"
        if other is not None and owner != me:
            yield owner, other
