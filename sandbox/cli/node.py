"""`sandbox get nodes` and `sandbox describe node`: this machine as the kubelet would register it,
with what admission counts (pod/admission.py): capacity, allocatable (memory less the hard
eviction threshold), the pods of the --root that are running with their requests and limits, and
the sums as kubectl's describe node prints them ("Allocated resources"). The pod count is the
kubelet's default maxPods (110); a runtime given `--max-pods` admits by its own."""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NODE_KINDS = ("nodes", "node", "no")
_BINARY = (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


def cpu_text(milli: int) -> str:
    """A CPU quantity as resource.Quantity prints it: whole cores, else millicores."""
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def memory_text(size: int) -> str:
    """A byte quantity in the largest binary unit that divides it (Quantity's BinarySI form)."""
    for suffix, unit in _BINARY:
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def percent(part: int, whole: int) -> str:
    return f"({int(part / whole * 100) if whole else 0}%)"


def _check_name(args: argparse.Namespace, facts: dict[str, Any]) -> None:
    if getattr(args, "name", None) and args.name != facts["name"]:
        from sandbox.errors import NotFoundError

        raise NotFoundError(f'nodes "{args.name}" not found')


def node_facts() -> dict[str, Any]:
    from sandbox.agent.kubeletconfig import node_name
    from sandbox.pod.admission import EVICTION_HARD_MEMORY, node_labels
    from sandbox.process.resources import memory_capacity
    from sandbox.supervisor.run import DEFAULT_MAX_PODS

    name = node_name()
    cpus = (os.cpu_count() or 1) * 1000
    memory = memory_capacity()
    return {"name": name, "labels": node_labels(name), "cpu": cpus, "memory": memory,
            "allocatable_memory": max(memory - EVICTION_HARD_MEMORY, 0), "pods": DEFAULT_MAX_PODS}


def pod_usage(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The running pods of the --root with their requests and limits (resourcehelper's sums),
    oldest first, as describe node lists its non-terminated pods."""
    from sandbox.cgroups.resources import effective
    from sandbox.cli.common import layout
    from sandbox.pod.admission import _live_pods, pod_requests
    from sandbox.process.resources import container_resources

    out = []
    for owner, pod in _live_pods(layout(args).pods, ""):
        cpu, memory = pod_requests(pod)
        app = [container_resources(c) for c in pod.spec.containers]
        init = [container_resources(c, init=True) for c in pod.spec.init_containers]
        ns, _, name = owner.partition("/")
        out.append({"namespace": ns, "name": name, "cpu_requests": cpu, "memory_requests": memory,
                    "cpu_limits": effective(app, init, lambda c: c.cpu_limit_milli),
                    "memory_limits": effective(app, init, lambda c: c.memory_limit)})
    return out


def get_nodes(args: argparse.Namespace) -> int:
    from sandbox.cli.get import age, tab_lines

    facts = node_facts()
    _check_name(args, facts)
    with open("/proc/uptime", encoding="ascii") as f:  # the node's age: since this machine booted
        up = float(f.read().split()[0])
    rows = [["NAME", "STATUS", "ROLES", "AGE", "VERSION"], [facts["name"], "Ready", "<none>", age(up), _version()]]
    print("\n".join(tab_lines(rows)))
    return 0


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"sandbox-{version('sandbox')}"
    except Exception:  # noqa: BLE001 - an uninstalled tree
        return "sandbox"


def describe_node(args: argparse.Namespace) -> int:
    facts = node_facts()
    _check_name(args, facts)
    pods = pod_usage(args)
    labels = sorted(f"{k}={v}" for k, v in facts["labels"].items())
    out = [f"Name:               {facts['name']}", "Roles:              <none>",
           "Labels:             " + ("\n                    ".join(labels) or "<none>")]
    cpu, mem, alloc_mem = facts["cpu"], facts["memory"], facts["allocatable_memory"]
    out += ["Capacity:", f"  cpu:                {cpu_text(cpu)}", f"  memory:             {memory_text(mem)}",
            f"  pods:               {facts['pods']}",
            "Allocatable:", f"  cpu:                {cpu_text(cpu)}", f"  memory:             {memory_text(alloc_mem)}",
            f"  pods:               {facts['pods']}"]
    from sandbox.cli.get import tab_lines

    out.append(f"Non-terminated Pods:          ({len(pods)} in total)")
    table = [["Namespace", "Name", "CPU Requests", "CPU Limits", "Memory Requests", "Memory Limits"],
             ["---------", "----", "------------", "----------", "---------------", "-------------"]]
    for p in pods:
        table.append([p["namespace"], p["name"],
                      f"{cpu_text(p['cpu_requests'])} {percent(p['cpu_requests'], cpu)}",
                      f"{cpu_text(p['cpu_limits'])} {percent(p['cpu_limits'], cpu)}",
                      f"{memory_text(p['memory_requests'])} {percent(p['memory_requests'], alloc_mem)}",
                      f"{memory_text(p['memory_limits'])} {percent(p['memory_limits'], alloc_mem)}"])
    out += ["  " + line for line in tab_lines(table)]
    totals = {k: sum(p[k] for p in pods) for k in ("cpu_requests", "cpu_limits", "memory_requests", "memory_limits")}
    out += ["Allocated resources:", "  (Total limits may be over 100 percent, i.e., overcommitted.)"]
    allocated = [["Resource", "Requests", "Limits"], ["--------", "--------", "------"],
                 ["cpu", f"{cpu_text(totals['cpu_requests'])} {percent(totals['cpu_requests'], cpu)}",
                  f"{cpu_text(totals['cpu_limits'])} {percent(totals['cpu_limits'], cpu)}"],
                 ["memory", f"{memory_text(totals['memory_requests'])} {percent(totals['memory_requests'], alloc_mem)}",
                  f"{memory_text(totals['memory_limits'])} {percent(totals['memory_limits'], alloc_mem)}"]]
    out += ["  " + line for line in tab_lines(allocated)]
    sys.stdout.write("\n".join(out) + "\n")
    return 0
