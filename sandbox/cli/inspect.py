"""`sandbox inspect pod NAME [-c CONTAINER] [-o json]`: the boundary of a running pod as the kernel
shows it, for pause and each container (process/inspect.py reads it from /proc). Read-only."""

from __future__ import annotations

import argparse
import json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("inspect", help="show a running pod's processes, namespaces, capabilities, "
                         "seccomp and mounts")
    p.add_argument("kind", choices=["pod", "pods", "po"], help="what to inspect")
    p.add_argument("name", help="pod name")
    p.add_argument("-c", "--container", help="only this container (and pause)")
    p.add_argument("-o", "--output", choices=["json"], help="print JSON")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import namespace, pod_dir
    from sandbox.errors import UsageError

    state = pod_dir(args, args.name).read()
    records: dict[str, Any] = state.get("containers") or {}
    if args.container and args.container not in records:
        raise UsageError(f'container "{args.container}" is not valid for pod "{args.name}"; '
                         f"choose one of: [{' '.join(records)}]")
    report = collect(state, args.name, namespace(args), args.container)
    if args.output == "json":
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(render(report))
    return 0


def collect(state: dict[str, Any], name: str, ns: str, only: str | None) -> dict[str, Any]:
    """The report: one entry per process that is alive now (pid and start time both match)."""
    from sandbox.process import inspect
    from sandbox.state.proc import ProcessRef

    names = inspect.capability_names()
    host = inspect.host_namespaces()
    manifest = state.get("manifest") or {}
    wanted: list[tuple[str, str, Any]] = [("pause", "", state.get("pause"))]
    wanted += [("container", c, r.get("process")) for c, r in (state.get("containers") or {}).items()
               if only is None or c == only]
    processes: list[dict[str, Any]] = []
    pause_ns: dict[str, int] | None = None
    for kind, container, ref_json in wanted:
        entry: dict[str, Any] = {"kind": kind, "name": container or "pause"}
        ref = ProcessRef.from_json(ref_json)
        info = _read_alive(ref, names) if ref else None
        if info is None:
            entry["running"] = False
            processes.append(entry)
            continue
        entry["running"] = True
        entry.update(info)
        if kind == "pause":
            pause_ns = info["namespaces"]
        else:
            entry["seccomp"]["asked"] = inspect.seccomp_asked(manifest, container)
        entry["shared"] = inspect.sharing(info["namespaces"], pause_ns if kind != "pause" else None, host)
        processes.append(entry)
    ended = bool(state.get("ended")) or not any(p["running"] for p in processes)
    return {"pod": name, "namespace": ns, "running": not ended, "hostNamespaces": host, "processes": processes}


def _read_alive(ref: Any, names: dict[int, str]) -> dict[str, Any] | None:
    from sandbox.process import inspect

    if not ref.alive():
        return None
    try:
        info = inspect.inspect_process(ref.pid, names)
    except (ProcessLookupError, PermissionError):
        return None
    return info if ref.alive() else None  # the pid was not reused while we read


def render(report: dict[str, Any]) -> str:
    out = [f"Pod {report['namespace']}/{report['pod']}: "
           f"{'running' if report['running'] else 'ended, no processes'}"]
    for p in report["processes"]:
        title = "pause" if p["kind"] == "pause" else f"container {p['name']}"
        if not p["running"]:
            out.append(f"{title}: not running")
            continue
        out += _render_process(title, p)
    return "\n".join(out) + "\n"


def _render_process(title: str, p: dict[str, Any]) -> list[str]:
    inner = p["nspid"][-1]
    lines = [f"{title}: pid {p['pid']} (pid {inner} inside)",
             "  namespaces:"]
    for ns, inode in p["namespaces"].items():
        lines.append(f"    {ns:<18} {inode}  {p['shared'].get(ns, '')}")
    lines.append(f"  uid_map: {'; '.join(p['uidMap'])}   gid_map: {'; '.join(p['gidMap'])}")
    lines.append(f"  uid/gid: {' '.join(p['uids'])} / {' '.join(p['gids'])}   groups: {' '.join(p['groups']) or '-'}")
    for label, caps in p["capabilities"].items():
        lines.append(f"  {label + ':':<13} {','.join(caps) or '-'}")
    seccomp = p["seccomp"]
    asked = f", asked: {seccomp['asked']}" if seccomp.get("asked") else ""
    lines.append(f"  no_new_privs: {int(p['noNewPrivs'])}   seccomp: {seccomp['mode']} "
                 f"({seccomp['filters']} filters{asked})")
    for key, label in (("maskedPaths", "masked paths"), ("readonlyPaths", "read-only paths")):
        lines.append(f"  {label}:")
        lines += [f"    {e['path']:<30} {e['state']:<10} {e['by']}" for e in p[key]]
    lines.append("  mounts:")
    lines += [f"    {m['target']:<30} {m['fstype']:<8} {m['options']}  ({m['source']})" for m in p["mounts"]]
    return lines
