"""`sandbox events [-A] [--for pod/NAME] [-w] [-o json|yaml]`: the kubelet's events of the pods,
as `kubectl events` lists them: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, oldest first.

The events are those each pod's runtime records in its state (events.py: folded with a count
as client-go's correlator folds them); they go with the pod's record when it is deleted. Each is
shown as the core/v1 Event the kubelet would have sent the API server.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from sandbox.cli.get import POD_KINDS, tab_lines

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

    Obj = dict[str, Any]



def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("events", help="list the pods' events")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("--for", dest="for_object", metavar="pod/NAME", help="only the events of this pod")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, print new events (until Ctrl-C)")
    p.add_argument("--types", metavar="TYPES", help="only events of these types, comma-separated (Normal, Warning)")
    p.add_argument("-o", "--output", choices=["json", "yaml"], help="output format")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import namespace

    ns = None if args.all_namespaces else namespace(args)
    pod = for_pod(args.for_object)
    args.types = event_types(getattr(args, "types", None))
    if args.watch:
        return watch_events(args, ns, pod)
    items = sort_events(list_events(args, ns, pod))
    if args.output:
        write_list(items, args.output)
        return 0
    if not items:
        print(f"No events found in {ns} namespace." if ns else "No events found.", file=sys.stderr)
        return 0
    rows = [header(all_namespaces=args.all_namespaces)]
    now = time.time()
    rows += [row(e, now, all_namespaces=args.all_namespaces) for e in items]
    print("\n".join(tab_lines(rows)))
    return 0


def event_types(text: str | None) -> frozenset[str] | None:
    """`--types Warning,Normal` (any case), as kubectl events validates it; None: every type."""
    if not text:
        return None
    types = {t.strip().lower() for t in text.split(",") if t.strip()}
    if not types <= {"normal", "warning"}:
        from sandbox.errors import UsageError

        raise UsageError("valid --types are Normal or Warning")
    return frozenset(types)


def for_pod(text: str | None) -> str | None:
    """`--for pod/NAME`: the pod's name (pods are the only objects with events here)."""
    if text is None:
        return None
    from sandbox.cli.common import check_pod_name
    from sandbox.errors import UsageError

    kind, slash, name = text.partition("/")
    if not slash:
        raise UsageError("--for must be in resource/name form")
    if "/" in name:
        raise UsageError("arguments in resource/name form may not have more than one slash")
    if kind.lower() not in POD_KINDS:
        raise UsageError(f'the server doesn\'t have a resource type "{kind}" (only pods have events here)')
    return check_pod_name(name)


def list_events(args: argparse.Namespace, ns: str | None, pod: str | None,
                only: set[str] | None = None) -> list[Obj]:
    """Every event of the pods in `ns` (None: all), of the one pod `pod` if given, as core/v1
    Event objects, in each pod's record order."""
    import os

    from sandbox.cli.get import read_pods

    node = os.uname().nodename
    out: list[Obj] = []
    types = getattr(args, "types", None)
    for state in read_pods(args, ns, pod, only=only).values():
        out += [e for e in pod_events(state, node) if types is None or str(e.get("type")).lower() in types]
    return out


def pod_events(state: Obj, node: str) -> list[Obj]:
    """The pod's recorded events (sandbox.events.Event.to_json) as core/v1 Events."""
    import zlib

    from sandbox.events import parse_rfc3339

    pod, ns, uid = str(state.get("name") or ""), str(state.get("namespace") or ""), str(state.get("uid") or "")
    out = []
    for e in state.get("events") or []:
        if not isinstance(e, dict):
            continue
        involved: Obj = {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": ns, "uid": uid}
        path = (e.get("involvedObject") or {}).get("fieldPath")
        if path:
            involved["fieldPath"] = path
        first = str(e.get("firstTimestamp") or "")
        try:
            first_s = int(parse_rfc3339(first))
        except ValueError:
            first_s = 0
        # The kubelet names an event `<pod>.<first time in ns, hex>`; the record keeps whole
        # seconds, so the nanoseconds carry a hash of the event to keep names apart.
        key = "\0".join([str(e.get("type")), str(e.get("reason")), str(path), str(e.get("message"))])
        out.append({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pod}.{first_s * 10**9 + zlib.crc32(key.encode()) % 10**9:x}",
                         "namespace": ns, "creationTimestamp": first},
            "involvedObject": involved,
            "reason": e.get("reason", ""), "message": e.get("message", ""),
            "source": {"component": "kubelet", "host": node},
            "firstTimestamp": first, "lastTimestamp": e.get("lastTimestamp", first),
            "count": int(e.get("count") or 1), "type": e.get("type", ""),
            "eventTime": None, "reportingComponent": "kubelet", "reportingInstance": node,
        })
    return out


def _when(event: Obj, key: str) -> float:
    from sandbox.events import parse_rfc3339

    try:
        return parse_rfc3339(str(event.get(key) or ""))
    except ValueError:
        return 0.0


def sort_events(events: list[Obj]) -> list[Obj]:
    """kubectl events' order: by last occurrence (stable: a record's own order breaks ties)."""
    return sorted(events, key=lambda e: _when(e, "lastTimestamp"))


def header(*, all_namespaces: bool) -> list[str]:
    return (["NAMESPACE"] if all_namespaces else []) + ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]


def row(event: Obj, now: float, *, all_namespaces: bool) -> list[str]:
    """One line of `kubectl events`: `5m (x3 over 10m)` for a repeated event."""
    from sandbox.cli.duration import human

    since_first = human(now - _when(event, "firstTimestamp"))
    count = int(event.get("count") or 1)
    seen = f"{human(now - _when(event, 'lastTimestamp'))} (x{count} over {since_first})" if count > 1 else since_first
    involved = event.get("involvedObject") or {}
    cells = [str(involved.get("namespace") or "")] if all_namespaces else []
    return cells + [seen, str(event.get("type")), str(event.get("reason")),
                    f"{involved.get('kind')}/{involved.get('name')}", str(event.get("message") or "").strip()]


def write_list(items: list[Obj], output: str) -> None:
    from sandbox.cli.yamlout import to_yaml

    doc = {"apiVersion": "v1", "items": items, "kind": "EventList", "metadata": {"resourceVersion": ""}}
    sys.stdout.write(json.dumps(doc, indent=4) + "\n" if output == "json" else to_yaml(doc))


def watch_events(args: argparse.Namespace, ns: str | None, pod: str | None) -> int:
    """-w: the events there are, then each new event or new occurrence (its count grew) as it
    is recorded; the header once, before the first line. Ctrl-C ends it with exit code 0."""
    from sandbox.cli.common import layout
    from sandbox.cli.watch import PodWatch
    from sandbox.cli.yamlout import to_yaml

    seen: dict[str, tuple[object, ...]] = {}
    printed = 0

    def show(events: list[Obj]) -> None:
        nonlocal printed
        fresh = []
        for e in sort_events(events):
            name = e["metadata"]["name"]
            mark = (e.get("count"), e.get("lastTimestamp"))
            if seen.get(name) != mark:
                seen[name] = mark
                fresh.append(e)
        if not fresh:
            return
        if args.output == "json":
            text = "".join(json.dumps(e, indent=4) + "\n" for e in fresh)
        elif args.output == "yaml":
            text = "".join(("---\n" if printed + i else "") + to_yaml(e) for i, e in enumerate(fresh))
        else:
            now = time.time()
            rows = [] if printed else [header(all_namespaces=args.all_namespaces)]
            rows += [row(e, now, all_namespaces=args.all_namespaces) for e in fresh]
            text = "\n".join(tab_lines(rows)) + "\n"
        printed += len(fresh)
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        with PodWatch(layout(args).pods) as watch:
            show(list_events(args, ns, pod))
            while True:
                changed = watch.wait()
                show(list_events(args, ns, pod, only=changed))
    except KeyboardInterrupt:
        return 0
