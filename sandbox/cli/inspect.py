"""`sandbox inspect pod NAME [-c CONTAINER] [-o json] [--tree]`: the boundary of a running pod as
the kernel shows it, for pause and each container (process/inspect.py reads it from /proc), with
the cgroups the record names and the limits their files hold (cgroups/view.py); `--tree`: the
process trees from pause and each container's main process, the host's pid beside the pid inside,
whose namespaces each process is in, and where each root comes from (process/proctree.py).
Read-only."""

from __future__ import annotations

import argparse
import json
import sys

from sandbox.cli.get import POD_KINDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.process.proctree import Proc, RootSource


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("inspect", help="show a running pod's processes, namespaces, capabilities, "
                         "seccomp, mounts and cgroups")
    from sandbox.cli.common import add_kind_argument

    add_kind_argument(p, POD_KINDS, "what to inspect: pod NAME, or pod/NAME")
    p.add_argument("name", nargs="?", help="pod name")
    p.add_argument("-c", "--container", help="only this container (and pause)")
    p.add_argument("-o", "--output", choices=["json"], help="print JSON")
    p.add_argument("--tree", action="store_true",
                   help="the process tree as the host and as each container sees it, with namespaces and roots")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import namespace, pod_dir, split_resource
    from sandbox.errors import UsageError

    split_resource(args, POD_KINDS)
    if not args.name:
        raise UsageError("inspect: give the pod's name (inspect pod NAME)")
    state = pod_dir(args, args.name).read()
    records: dict[str, Any] = state.get("containers") or {}
    if args.container and args.container not in records:
        raise UsageError(f'container "{args.container}" is not valid for pod "{args.name}"; '
                         f"choose one of: [{' '.join(records)}]")
    gather, show = (collect_tree, render_tree) if args.tree else (collect, render)
    report = gather(state, args.name, namespace(args), args.container)
    if args.output == "json":
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(show(report))
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
            # The asked boundary beside the kernel's: a protection the manifest asks for that is
            # not in force shows as a gap instead of hiding behind the asked profile's name.
            asked = inspect.boundary_asked(manifest, container, names)
            entry["asked"] = asked
            entry["seccomp"]["asked"] = asked["seccomp"] if asked else ""
            entry["notInForce"] = inspect.boundary_gaps(asked, info, names) if asked else []
        entry["shared"] = inspect.sharing(info["namespaces"], pause_ns if kind != "pause" else None, host)
        processes.append(entry)
    ended = bool(state.get("ended")) or not any(p["running"] for p in processes)
    pause_ref = ProcessRef.from_json(state.get("pause"))
    return {"pod": name, "namespace": ns, "running": not ended, "hostNamespaces": host,
            "cgroup": pod_cgroup(state.get("cgroup")), "processes": processes,
            "network": network_view(state, pause_ref) if pause_ns is not None and pause_ref else None}


def network_view(state: dict[str, Any], pause_ref: Any) -> dict[str, Any] | None:
    """The pod's network from the kernel (network/view.py) beside the addresses its status gives;
    a hostNetwork pod's is the node's, not listed."""
    status = state.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if isinstance(p, dict) and p.get("ip")]
    spec = (state.get("manifest") or {}).get("spec") or {}
    if spec.get("hostNetwork"):
        return {"hostNetwork": True, "podIPs": ips}
    from sandbox.errors import SandboxError
    from sandbox.network.view import pod_network

    pidfd = pause_ref.open_pidfd()
    if pidfd is None:
        return None
    try:
        return {"hostNetwork": False, "podIPs": ips, **pod_network(pidfd)}
    except (OSError, SandboxError) as e:
        return {"hostNetwork": False, "podIPs": ips, "error": str(e)}
    finally:
        import os

        os.close(pidfd)


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
    out += render_network(report.get("network"))
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


def render_network(network: dict[str, Any] | None) -> list[str]:
    """The pod's network: its IPs, each link of pause's namespace (a veth with its host end and
    bridge), the default route."""
    if network is None:
        return []
    ips = ", ".join(network.get("podIPs") or []) or "none"
    if network.get("hostNetwork"):
        return [f"network: the node's (hostNetwork), pod IPs {ips}"]
    out = [f"network (pause's namespace): pod IPs {ips}"]
    if network.get("error"):
        return [*out, f"  not readable: {network['error']}"]
    for link in network.get("interfaces") or []:
        line = f"  {link['name']}: {'UP' if link['up'] else 'DOWN'}"
        if link.get("addresses"):
            line += " " + " ".join(link["addresses"])
        if link.get("mac") and link["mac"] != "00:00:00:00:00:00":
            line += f" mac {link['mac']}"
        if link.get("mtu"):
            line += f" mtu {link['mtu']}"
        side = link.get("hostSide")
        if side:
            line += f"; veth, host end {side['name']}" + (f" on bridge {side['bridge']}" if side.get("bridge") else "")
        out.append(line)
    route = network.get("defaultRoute")
    out.append(f"  default route via {route['via']} dev {route['dev']}" if route else "  no default route")
    return out


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
    wanted = p.get("asked")
    if wanted:
        lines.append(f"  asked:        seccomp {wanted['seccomp']}, no_new_privs {int(wanted['noNewPrivs'])}, "
                     f"capabilities {','.join(wanted['capabilities']) or '-'}")
        gaps = p.get("notInForce") or []
        lines += [f"  NOT IN FORCE: {gap}" for gap in gaps] or ["  in force:     all of it"]
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


# --tree ------------------------------------------------------------------------------------------

def collect_tree(state: dict[str, Any], name: str, ns: str, only: str | None) -> dict[str, Any]:
    """The trees under pause and each container's main process (all of them with `only` None),
    every process by its ProcessRef, and the namespace table that says whose each inode is."""
    from sandbox.process import inspect, proctree
    from sandbox.state.proc import ProcessRef

    everything = inspect.host_namespaces()
    host = {t: everything[t] for t in proctree.NS_TYPES if t in everything}
    records: dict[str, Any] = state.get("containers") or {}
    wanted = [("pause", "pause", state.get("pause"), "")]
    wanted += [("container", c, r.get("process"), str(r.get("image") or "")) for c, r in records.items()]
    read = []
    for kind, label, ref_json, image in wanted:
        ref = ProcessRef.from_json(ref_json)
        tree = proctree.read_tree(ref) if ref is not None else None
        root = proctree.read_root(ref) if ref is not None and tree is not None else None
        read.append((kind, label, image, tree, root))
    # Every container counts as an owner, also under -c: an orphan pause adopted from another
    # container is still named by where it came from.
    known = [("host", host)] + [(owner_label(kind, label), tree.namespaces)
                                for kind, label, _, tree, _ in read if tree is not None]
    trees = [_tree_json(kind, label, image, tree, root, known) for kind, label, image, tree, root in read
             if kind == "pause" or only is None or label == only]
    spec = (state.get("manifest") or {}).get("spec") or {}
    ended = bool(state.get("ended")) or not any(t["running"] for t in trees)
    return {"pod": name, "namespace": ns, "running": not ended,
            "shareProcessNamespace": bool(spec.get("shareProcessNamespace")),
            "hostPID": bool(spec.get("hostPID")),
            "namespaces": {label: inodes for label, inodes in known}, "trees": trees}


def owner_label(kind: str, name: str) -> str:
    """How namespaces name their owner: `host`, `pause`, or the container's name (prefixed when a
    container is itself called `host`, `pause` or `other`, so the labels stay unambiguous)."""
    from sandbox.process.proctree import OTHER

    if kind == "pause" or name not in ("host", "pause", OTHER):
        return name
    return f"container/{name}"


def _tree_json(kind: str, label: str, image: str, tree: Proc | None, root: RootSource | None,
               known: list[tuple[str, dict[str, int]]]) -> dict[str, Any]:
    from sandbox.process import proctree

    entry: dict[str, Any] = {"kind": kind, "name": label, "owner": owner_label(kind, label),
                             "running": tree is not None}
    if kind == "container":
        entry["image"] = image
    entry["root"] = proctree.root_json(root, image)
    entry["process"] = proctree.to_json(tree, known) if tree is not None else None
    return entry


TREE_HOST_WIDTH = 46  # the host column of the tree; commands are cut to fit it
SHOWN_LAYERS = 20  # a deep image's layers beyond this are counted, not listed (-o json lists all)


def render_tree(report: dict[str, Any]) -> str:
    out = [f"Pod {report['namespace']}/{report['pod']}: "
           f"{'running' if report['running'] else 'ended, no processes'}", _pid_mode(report), ""]
    out += _render_namespaces(report["namespaces"])
    out += ["", f"{'HOST  pid  command':<{TREE_HOST_WIDTH}} | INSIDE  pid  (whose PID namespace)"]
    for tree in report["trees"]:
        title = "pause" if tree["kind"] == "pause" else f"container {tree['name']} ({tree['image']})"
        if tree["process"] is None:
            out.append(f"{title}: not running")
            continue
        out.append(title)
        _render_node(tree["process"], "  ", None, out, adopter=tree["kind"] == "pause")
    out += ["", "Roots (the mount at / as each one sees it):"]
    for tree in report["trees"]:
        out += _render_root(tree)
    return "\n".join(out) + "\n"


def _pid_mode(report: dict[str, Any]) -> str:
    if report.get("hostPID"):
        return "PID namespace: the host's (hostPID: true): pause and every container see the host's processes"
    if report.get("shareProcessNamespace"):
        return ("PID namespace: one for the pod, pause's (shareProcessNamespace: true): pause is PID 1, "
                "every container's processes are in it, pause adopts their orphans")
    return ("PID namespaces: one per container (shareProcessNamespace: false): each main process is PID 1 "
            "of its own and adopts its orphans; pause is PID 1 of a namespace of its own")


def _render_namespaces(table: dict[str, dict[str, int]]) -> list[str]:
    """One row per owner (host, pause, each container): its inode per type, or `= X` where it is
    X's (the first owner above with that inode)."""
    from sandbox.process.proctree import NS_TYPES

    width = max([5, *(len(label) for label in table)])
    lines = ['Namespaces (inode; "= X": the one X has):',
             f"  {'':<{width}}  " + "".join(f"{t:<13}" for t in NS_TYPES).rstrip()]
    seen: list[tuple[str, dict[str, int]]] = []
    for label, inodes in table.items():
        cells = []
        for t in NS_TYPES:
            same = next((other for other, theirs in seen if t in inodes and theirs.get(t) == inodes[t]), None)
            cells.append(f"= {same}" if same else str(inodes.get(t, "-")))
        lines.append(f"  {label:<{width}}  " + "".join(f"{c:<13}" for c in cells).rstrip())
        seen.append((label, inodes))
    return lines


def _render_node(node: dict[str, Any], lead: str, last: bool | None, out: list[str], *,
                 parent: dict[str, str] | None = None, adopted: bool = False, adopter: bool = False) -> None:
    """One process and, below it, its children: `last` is None for the top of a tree; `adopter`:
    the node is pause, which never forks, so each of its children is an orphan it `adopted`;
    `parent`: the parent's namespace owners."""
    branch = "" if last is None else ("└─ " if last else "├─ ")
    left = f"{lead}{branch}{node['pid']}  {node['command']}"
    if len(left) > TREE_HOST_WIDTH:
        left = left[: TREE_HOST_WIDTH - 3] + "..."
    right = f"{node['pidInside']:>5}  ({node['owners'].get('pid', '?')})"
    notes = _node_notes(node, parent, adopted)
    out.append(f"{left:<{TREE_HOST_WIDTH}} | {right:<18}{'  ' + notes if notes else ''}".rstrip())
    child_lead = lead + ("" if last is None else ("   " if last else "│  "))
    children = node["children"]
    for i, child in enumerate(children):
        _render_node(child, child_lead, i == len(children) - 1, out, parent=node["owners"], adopted=adopter)


def _node_notes(node: dict[str, Any], parent: dict[str, str] | None, adopted: bool) -> str:
    """What sets a process apart from its parent: adopted by pause, a zombie not reaped yet,
    namespaces other than its parent's."""
    from sandbox.process.proctree import OTHER

    owners: dict[str, str] = node["owners"]
    notes = []
    if adopted:  # its mount namespace says which container it came from
        origin = owners.get("mnt", OTHER)
        notes.append("orphan adopted by pause" + (f", from {origin}" if origin not in ("pause", "host", OTHER) else ""))
    if node["state"] == "Z":
        notes.append("zombie: exited, not reaped yet")
    if node.get("childrenCut"):
        notes.append("its children are not shown (too deep)")
    if parent is not None:
        differ: dict[str, list[str]] = {}
        for t, owner in owners.items():
            if parent.get(t) != owner:
                differ.setdefault(owner, []).append(t)
        notes += [f"{','.join(types)}: {owner}'s" for owner, types in differ.items()]
    return "; ".join(notes)


def _render_root(tree: dict[str, Any]) -> list[str]:
    root = tree["root"]
    label = "pause" if tree["kind"] == "pause" else tree["name"]
    if root is None:
        return [f"  {label}: not running"]
    if root["fstype"] != "overlay":
        return [f"  {label}: {root['fstype']} {root['source']} ({root['options']})"]
    count = len(root["layers"])
    lines = [f"  {label}: overlay of image {root['image'] or '?'} ({root['options']}), "
             f"{count} layer{'s' if count != 1 else ''}, top first:"]
    for layer, path in list(zip(root["layers"], root["lower"], strict=True))[:SHOWN_LAYERS]:
        short = layer[:19] if layer.startswith("sha256:") else layer
        lines.append(f"      {short}" + (f"  via {path}" if path != layer else ""))
    if count > SHOWN_LAYERS:
        lines.append(f"      ... and {count - SHOWN_LAYERS} more (-o json lists every one)")
    lines.append(f"    upper (the container's writes): {root['upper'] or '-'}")
    return lines
