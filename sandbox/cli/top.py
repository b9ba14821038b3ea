"""`sandbox top pod [NAME] [--containers] [-A]`: CPU and memory per pod or container, read from the
containers' cgroups, printed as `kubectl top pod` prints them.

The figures are the ones metrics-server serves: CPU is a rate, the cgroup's CPU time used over a
short window (two readings, `--window` apart) in nanocores, printed as millicores rounded up
(resource.Quantity.MilliValue); memory is cAdvisor's working set (usage minus inactive file
cache), printed in whole Mi rounded down. A pod's figure is the sum of its running containers
(pause is not a container and is not counted), as kubectl adds up the containers' metrics.
Read-only: only the records and cgroup files are read.
"""

from __future__ import annotations

import argparse
import sys

from sandbox.cli.get import POD_KINDS
from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_WINDOW = 60.0


class Target(Record):
    """One running container whose cgroup can be read."""

    namespace: str
    pod: str
    container: str
    paths: dict[str, str]


class Usage(Record):
    nanocores: int
    memory: int  # working set, bytes


class PodUsage(Record):
    namespace: str
    name: str
    containers: dict[str, Usage]  # container name -> usage

    def total(self) -> Usage:
        return Usage(sum(u.nanocores for u in self.containers.values()),
                     sum(u.memory for u in self.containers.values()))


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("top", help="show CPU and memory of running pods (from their cgroups)")
    from sandbox.cli.common import add_kind_argument

    add_kind_argument(p, POD_KINDS, "what to show: pod [NAME], or pod/NAME")
    p.add_argument("name", nargs="?", help="one pod")
    p.add_argument("--containers", action="store_true", help="one line per container")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("--sort-by", choices=["cpu", "memory"], help="largest first (default: by name)")
    p.add_argument("--window", type=float, default=0.5, metavar="SECONDS",
                   help="time between the two CPU readings (default 0.5)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import time

    from sandbox.cli.common import split_resource
    from sandbox.errors import SandboxError, UsageError

    split_resource(args, POD_KINDS)
    if not 0 < args.window <= MAX_WINDOW:
        raise UsageError(f"--window must be more than 0 and at most {MAX_WINDOW:g} seconds")
    if args.name:
        targets = _named_pod(args)
    else:
        found = _listed_pods(args)
        if found is None:
            return 0
        targets = found
    pods = measure(targets, args.window, time.monotonic, time.sleep)
    if not pods:
        # kubectl's wording when pods exist but none has metrics yet
        raise SandboxError("metrics not available yet" if not args.name else
                           f'metrics not available yet for pod "{args.name}": no cgroup of a running '
                           "container could be read")
    sys.stdout.write(render(pods, containers=args.containers, all_namespaces=bool(args.all_namespaces),
                            sort_by=args.sort_by))
    return 0


def _named_pod(args: argparse.Namespace) -> list[Target]:
    from sandbox.cli.common import namespace, pod_dir
    from sandbox.errors import SandboxError
    from sandbox.state.view import LIVE, read_pod

    state, kind = read_pod(pod_dir(args, args.name))
    if kind != LIVE:
        phase = (state.get("status") or {}).get("phase") or kind
        raise SandboxError(f'pod "{args.name}" is not running ({phase}): no metrics')
    found = targets_of(state, namespace(args))
    if not found:
        raise SandboxError(f'metrics not available for pod "{args.name}": its record names no cgroup '
                           "of a running container")
    return found


def _listed_pods(args: argparse.Namespace) -> list[Target] | None:
    """The targets of every running pod (of the namespace, or all with -A); None after telling
    the user there is no pod at all. Pods that ended (records kept until `delete`) have no
    metrics; when they are all there is, that is an error (kubectl: "metrics not available yet")."""
    from sandbox.cli.common import layout, namespace
    from sandbox.errors import SandboxError
    from sandbox.state.store import list_pod_dirs
    from sandbox.state.view import LIVE, read_pod

    ns = None if args.all_namespaces else namespace(args)
    seen = live = 0
    found: list[Target] = []
    for d in list_pod_dirs(layout(args).pods):
        try:
            state, kind = read_pod(d)
        except Exception:  # noqa: BLE001 - a pod starting or being removed right now
            continue
        if ns is not None and state.get("namespace") != ns:
            continue
        seen += 1
        if kind == LIVE:
            live += 1
            found += targets_of(state, str(state.get("namespace")))
    if not seen:
        print("No resources found" if ns is None else f"No resources found in {ns} namespace.", file=sys.stderr)
        return None
    if not live:
        where = "" if ns is None else f" in namespace {ns!r}"
        raise SandboxError(f"metrics not available: no pod is running{where} ({seen} ended or lost)")
    return found


def targets_of(state: dict[str, Any], ns: str) -> list[Target]:
    """The pod's containers that run now (pid and start time match) and have a cgroup on record."""
    from sandbox.state.proc import ProcessRef

    found = []
    for name, rec in (state.get("containers") or {}).items():
        if not isinstance(rec, dict):
            continue
        paths = rec.get("cgroup")
        ref = ProcessRef.from_json(rec.get("process"))
        if isinstance(paths, dict) and paths and ref is not None and ref.alive():
            found.append(Target(ns, str(state.get("name")), str(name), {str(k): str(v) for k, v in paths.items()}))
    return found


def measure(targets: list[Target], window: float, clock: Callable[[], float],
            sleep: Callable[[float], None]) -> list[PodUsage]:
    """Read every target's CPU time, wait `window`, read again; each reading is timed on its own
    so a slow read of one cgroup does not skew another's rate. A container whose files vanished
    (it restarted or stopped meanwhile) or whose counter went back is left out, as metrics-server
    leaves out a container without two good readings."""
    from sandbox.cgroups import view

    first = [(view.cpu_usage_ns(t.paths), clock()) for t in targets]
    sleep(window)
    pods: dict[tuple[str, str], PodUsage] = {}
    for t, (cpu0, at0) in zip(targets, first):
        cpu1, at1 = view.cpu_usage_ns(t.paths), clock()
        memory = view.working_set(t.paths)
        if cpu0 is None or cpu1 is None or memory is None or cpu1 < cpu0 or at1 <= at0:
            continue
        pod = pods.setdefault((t.namespace, t.pod), PodUsage(t.namespace, t.pod, {}))
        pod.containers[t.container] = Usage(nanocores(cpu1 - cpu0, at1 - at0), memory)
    return list(pods.values())


def nanocores(cpu_ns: int, seconds: float) -> int:
    return int(cpu_ns / seconds)


def millicores(n: int) -> str:
    """resource.Quantity.MilliValue rounds up: 1 nanocore shows as 1m."""
    return f"{-(-n // 1_000_000)}m"


def mebibytes(n: int) -> str:
    return f"{n // (1024 * 1024)}Mi"


def render(pods: list[PodUsage], *, containers: bool, all_namespaces: bool, sort_by: str | None) -> str:
    """kubectl's metrics printer: every cell tab-terminated (so the last column is padded too),
    through its tabwriter (padding 3; its minwidth 6 never binds: each column has a header of at
    least 3 characters)."""
    from sandbox.cli.describe import tabwrite

    header = (["NAMESPACE"] if all_namespaces else []) + (["POD"] if containers else [])
    lines = [header + ["NAME", "CPU(cores)", "MEMORY(bytes)"]]
    for pod in sorted(pods, key=lambda p: _order(p.total(), sort_by, (p.namespace if all_namespaces else "", p.name))):
        lead = [pod.namespace] if all_namespaces else []
        if not containers:
            lines.append(lead + [pod.name, *_cells(pod.total())])
            continue
        for name, usage in sorted(pod.containers.items(), key=lambda c: _order(c[1], sort_by, (c[0],))):
            lines.append(lead + [pod.name, name, *_cells(usage)])
    return tabwrite("".join("".join(cell + "\t" for cell in line) + "\n" for line in lines), padding=3)


def _cells(usage: Usage) -> list[str]:
    return [millicores(usage.nanocores), mebibytes(usage.memory)]


def _order(usage: Usage, sort_by: str | None, names: tuple[str, ...]) -> tuple[Any, ...]:
    """kubectl's sorters: by name, or the larger usage first."""
    if sort_by == "cpu":
        return (-usage.nanocores, *names)
    if sort_by == "memory":
        return (-usage.memory, *names)
    return names
