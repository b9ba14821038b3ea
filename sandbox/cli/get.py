"""`sandbox get pods` and `sandbox get pod NAME [-o json]`, read from the pods' records: running
pods, pods that ended (until deleted), and pods whose runtime is gone (state/view.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("get", help="show pods")
    p.add_argument("kind", choices=["pods", "pod", "po"], help="what to show")
    p.add_argument("name", nargs="?", help="one pod")
    p.add_argument("-o", "--output", choices=["json", "wide", "name"], help="output format")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.set_defaults(handler=handle)


def pod_object(state: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes Pod object: the manifest as defaulted, plus uid and live status."""
    from sandbox.status import rfc3339

    manifest = dict(state.get("manifest") or {})
    metadata = dict(manifest.get("metadata") or {})
    metadata.update(name=state.get("name"), namespace=state.get("namespace"), uid=state.get("uid"),
                    creationTimestamp=rfc3339(float(state.get("createdAt") or 0)))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": manifest.get("spec") or {},
            "status": state.get("status") or {}}


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout, namespace, pod_dir
    from sandbox.state.store import list_pod_dirs
    from sandbox.state.view import read_pod

    if args.name:
        state, _ = read_pod(pod_dir(args, args.name))
        if args.output == "json":
            json.dump(pod_object(state), sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        states = [state]
    else:
        ns = None if args.all_namespaces else namespace(args)
        states = []
        for d in list_pod_dirs(layout(args).pods):
            try:
                state, _ = read_pod(d)
            except Exception:  # noqa: BLE001 - a pod starting or being removed right now
                continue
            if ns is None or state.get("namespace") == ns:
                states.append(state)
        if not states:
            print(f"No resources found in {ns or 'any'} namespace.", file=sys.stderr)
            return 0
    if args.output == "json":
        json.dump({"apiVersion": "v1", "kind": "List", "items": [pod_object(s) for s in states]},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print_table(states, all_namespaces=args.all_namespaces)
    return 0


def print_table(states: list[dict[str, Any]], *, all_namespaces: bool) -> None:
    rows = [["NAMESPACE"] if all_namespaces else []]
    rows[0] += ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    now = time.time()
    for s in states:
        summary = s.get("summary") or {}
        row = [str(s.get("namespace"))] if all_namespaces else []
        row += [str(s.get("name")), str(summary.get("ready", "0/0")), str(summary.get("status", "Unknown")),
                str(summary.get("restarts", 0)), age(now - float(s.get("createdAt") or now))]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


def age(seconds: float) -> str:
    """kubectl's short durations: 45s, 3m20s, 5h, 2d."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 3 * 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"
