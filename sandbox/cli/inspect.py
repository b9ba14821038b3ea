"""`sandbox inspect pod NAME [-c CONTAINER] [-o json]`: the boundary of a running pod as the kernel
shows it, for pause and each container (process/inspect.py reads it from /proc), with the cgroups
the record names and the limits their files hold (cgroups/view.py). Read-only."""

from __future__ import annotations

import argparse
import json
import sys

from sandbox.cli.get import POD_KINDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("inspect", help="show a running pod's processes, namespaces, capabilities, "
                         "seccomp, mounts and cgroups")
    p.add_argument("kind", choices=POD_KINDS, help="what to inspect")
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
    wanted: list[tuple[str, str, Any, Any]] = [("pause", "", state.get("pause"), state.get("pauseCgroup"))]
    wanted += [("container", c, r.get("process"), r.get("cgroup"))
               for c, r in (state.get("containers") or {}).items() if only is None or c == only]
    processes: list[dict[str, Any]] = []
    pause_ns: dict[str, int] | None = None
    for kind, container, ref_json, cgroup_paths in wanted:
        entry: dict[str, Any] = {"kind": kind, "name": container or "pause", "cgroup": cgroup_view(cgroup_paths)}
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
    return {"pod": name, "namespace": ns, "running": not ended, "hostNamespaces": host,
            "cgroup": pod_cgroup(state.get("cgroup")), "processes": processes}


def cgroup_view(paths: object) -> dict[str, Any] | None:
    """A cgroup as the record names it (key -> directory) and the limits its files hold now;
    `missing` lists the keys whose directory is gone (the container stopped, the pod ended).
    None when the record has no cgroup (an older record, a pod started without cgroups)."""
    import os

    from sandbox.cgroups import view

    if not isinstance(paths, dict) or not paths:
        return None
    clean = {str(k): str(v) for k, v in paths.items()}
    return {"paths": clean, "missing": sorted(k for k, v in clean.items() if not os.path.isdir(v)),
            "limits": view.limits(clean)}


def pod_cgroup(record: object) -> dict[str, Any] | None:
    """The pod cgroup: the layout mode and driver the runtime used, its paths and limits."""
    if not isinstance(record, dict):
        return None
    found = cgroup_view(record.get("paths"))
    if found is None:
        return None
    return {"mode": str(record.get("mode", "")), "driver": str(record.get("driver", "")), **found}


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
    pod = report.get("cgroup")
    if pod is not None:
        out.append(f"pod cgroup ({pod['mode'] or '?'}, {pod['driver'] or '?'}):")
        out += render_cgroup(pod, "  ")
    for p in report["processes"]:
        title = "pause" if p["kind"] == "pause" else f"container {p['name']}"
        if not p["running"]:
            out.append(f"{title}: not running")
        else:
            out += _render_process(title, p)
        if p.get("cgroup") is not None:
            out.append("  cgroup:")
            out += render_cgroup(p["cgroup"], "    ")
    return "\n".join(out) + "\n"


def render_cgroup(cgroup: dict[str, Any], indent: str) -> list[str]:
    """Paths grouped by directory (co-mounted v1 controllers share one), then the limits; a
    multi-line value (devices.list) continues under its first line."""
    by_dir: dict[str, list[str]] = {}
    for key, path in cgroup["paths"].items():
        by_dir.setdefault(path, []).append(key)
    lines = []
    for path, keys in sorted(by_dir.items(), key=lambda item: sorted(item[1])):
        gone = "  (gone)" if set(keys) <= set(cgroup["missing"]) else ""
        lines.append(f"{indent}{','.join(sorted(keys)):<22} {path}{gone}")
    for name, value in cgroup["limits"].items():
        first, *rest = value.split("\n") or [""]
        lines.append(f"{indent}{name:<30} {first}")
        lines += [f"{indent}{'':<30} {line}" for line in rest]
    return lines


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
    lines += _render_membership(p.get("cgroups") or [])
    return lines


def _render_membership(table: list[dict[str, str]]) -> list[str]:
    """Where /proc/PID/cgroup puts the process, one line per distinct path (usually one)."""
    by_path: dict[str, list[str]] = {}
    for entry in table:
        by_path.setdefault(entry["path"], []).append(entry["controllers"] or "cgroup2")
    return [f"  in cgroup: {path} ({','.join(sorted(names))})" for path, names in by_path.items()]
