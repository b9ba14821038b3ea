"""`sandbox get pods` and `sandbox get pod NAME [-o json]`, read from the pods' records: running
pods, pods that ended (until deleted), and pods whose runtime is gone (state/view.py).
`sandbox get configmaps|secrets [NAME] [-o json|yaml]` read the node's store (config/store.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from sandbox.cli.yamlout import to_yaml

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

    from sandbox.config.sources import ConfigObject

# The names kubectl accepts for each kind (get, delete and describe take the same).
POD_KINDS = ("pod", "pods", "po")  # the names kubectl accepts for pods
EVENT_KINDS = ("events", "event", "ev")  # `get events`: the events verb's listing
CONFIG_KINDS = {"configmaps": "ConfigMap", "configmap": "ConfigMap", "cm": "ConfigMap",
                "secrets": "Secret", "secret": "Secret"}


# -o values printed without cli/printers.py (its PLAIN_FORMATS and none): the others are templates,
# whose module (and JSONPath's) loads only for them
PLAIN_OUTPUTS = (None, "json", "yaml", "wide", "name")


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("get", help="show pods")
    from sandbox.cli.common import add_kind_argument

    add_kind_argument(p, [*POD_KINDS, *CONFIG_KINDS],
                      f"what to show: {', '.join([*POD_KINDS, *CONFIG_KINDS])}, or TYPE/NAME (pod/web)")
    p.add_argument("name", nargs="?", help="one pod, ConfigMap or Secret")
    p.add_argument("-o", "--output", metavar="FORMAT",
                   help="json, yaml, wide, name, jsonpath=TEMPLATE (e.g. '{.items[*].metadata.name}'), "
                        "jsonpath-as-json=TEMPLATE, jsonpath-file=FILE or custom-columns=NAME:.metadata.name,...")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-w", "--watch", action="store_true",
                   help="after listing, print each change of a pod (until Ctrl-C)")
    p.add_argument("--watch-only", action="store_true", help="print only the changes, not the listing")
    from sandbox.cli.selector import add_option

    add_option(p, fields=True)
    p.add_argument("--show-labels", action="store_true", help="a LABELS column, last")
    p.add_argument("--no-headers", action="store_true", help="tables and custom-columns without their header")
    p.add_argument("--allow-missing-template-keys", nargs="?", const="true", default="true", metavar="BOOL",
                   help="false: a jsonpath template naming a field a pod lacks is an error (default true)")
    p.add_argument("--sort-by", metavar="JSONPATH",
                   help="list in the order of this field, e.g. .metadata.creationTimestamp or "
                        "'{.status.containerStatuses[0].restartCount}'")
    p.set_defaults(handler=handle)


def pod_object(state: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes Pod object: the manifest as defaulted, plus uid and live status."""
    from sandbox.status import rfc3339

    manifest = dict(state.get("manifest") or {})
    metadata = dict(manifest.get("metadata") or {})
    metadata.update(name=state.get("name"), namespace=state.get("namespace"), uid=state.get("uid"),
                    creationTimestamp=rfc3339(float(state.get("createdAt") or 0)))
    deletion = state.get("deletion")
    if isinstance(deletion, dict):  # stopped by Ctrl-C, SIGTERM or `sandbox delete`: the API server's marks
        metadata.update(deletionTimestamp=rfc3339(deletion_timestamp(deletion)),
                        deletionGracePeriodSeconds=int(deletion.get("graceSeconds") or 0))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": manifest.get("spec") or {},
            "status": state.get("status") or {}}


def deletion_timestamp(deletion: dict[str, Any]) -> float:
    """metadata.deletionTimestamp of a pod being deleted: as the API server sets it (BeforeDelete),
    the moment its grace period ends, the delete's time plus deletionGracePeriodSeconds."""
    return float(deletion.get("at") or 0) + int(deletion.get("graceSeconds") or 0)


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import split_resource
    from sandbox.cli.node import NODE_KINDS

    split_resource(args, (*POD_KINDS, *CONFIG_KINDS, *EVENT_KINDS, *NODE_KINDS))
    if args.kind in EVENT_KINDS:
        return _events(args)
    if args.kind in NODE_KINDS:
        from sandbox.cli.node import get_nodes

        return get_nodes(args)
    allow_missing = True
    if args.output not in PLAIN_OUTPUTS or args.allow_missing_template_keys != "true":
        from sandbox.cli.printers import check_output, parse_bool

        check_output(args.output)  # a bad format or template is refused before anything is read
        allow_missing = parse_bool(args.allow_missing_template_keys)
    if args.kind in CONFIG_KINDS:
        if args.watch or args.watch_only or args.selector is not None or args.field_selector is not None:
            from sandbox.errors import UsageError

            raise UsageError("--watch, -l and --field-selector: shown for pods only")
        return handle_config(args, CONFIG_KINDS[args.kind])
    from sandbox.cli.common import namespace, pod_dir
    from sandbox.state.view import read_pod

    ns = None if args.all_namespaces else namespace(args)
    if args.selector is not None or args.field_selector is not None:
        from sandbox.cli.selector import PodFilter

        if args.name:
            from sandbox.errors import UsageError

            raise UsageError("name cannot be provided when a selector is specified")
        args.pod_filter = PodFilter(args.selector, args.field_selector)  # refused before anything is read
    if args.name:
        state, _ = read_pod(pod_dir(args, args.name))  # NotFoundError as kubectl's, watched or not
        states = [state]
    if args.watch or args.watch_only:
        return watch_pods(args, ns)
    if not args.name:
        states = list(read_pods(args, ns).values())
        if args.sort_by and states:
            from sandbox.cli.printers import sort_by

            states = [states[i] for i in sort_by([pod_object(s) for s in states], args.sort_by)]
    if not states and not generic_output(args.output):
        print(f"No resources found in {ns} namespace." if ns else "No resources found", file=sys.stderr)
        return 0
    write_objects(states, args.output, single=bool(args.name), all_namespaces=args.all_namespaces,
                  labels=args.show_labels, headers=not args.no_headers, allow_missing=allow_missing)
    return 0


def _events(args: argparse.Namespace) -> int:
    """`get events`: what `sandbox events` lists (kubectl's columns are the same), in its formats."""
    from sandbox.cli import events
    from sandbox.errors import UsageError

    if args.name or args.selector is not None or args.field_selector is not None:
        raise UsageError("get events: no name or selector here; `sandbox events --for pod/NAME` lists one pod's")
    if args.output not in (None, "json", "yaml"):
        raise UsageError("get events: -o json or yaml")
    return events.handle(argparse.Namespace(**{**vars(args), "for_object": None, "types": None}))


def read_pods(args: argparse.Namespace, ns: str | None, name: str | None = None,
              only: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Each pod's record as readers show it (state/view.py), by its directory name
    (`<namespace>_<name>`, sorted: kubectl lists by name); `ns` None is every namespace; `only`
    limits the read to those directories (what a watch was told changed)."""
    from sandbox.cli.common import layout
    from sandbox.state.store import PodDir
    from sandbox.state.view import read_pod

    pods = layout(args).pods
    try:
        entries = sorted(os.listdir(pods)) if only is None else sorted(only)
    except FileNotFoundError:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.startswith(".") or (ns is not None and not entry.startswith(f"{ns}_")):
            continue
        try:
            state, _ = read_pod(PodDir(pods / entry))
        except Exception:  # noqa: BLE001 - a pod starting or being removed right now
            continue
        if (ns is None or state.get("namespace") == ns) and (name is None or state.get("name") == name) \
                and _selected(args, state):
            out[entry] = state
    return out


def _selected(args: argparse.Namespace, state: dict[str, Any]) -> bool:
    """Whether the pod matches `get -l/--field-selector` (parsed by handle; other verbs' reads:
    every pod)."""
    chosen = getattr(args, "pod_filter", None)
    return chosen is None or chosen.admits(state)


def generic_output(output: str | None) -> bool:
    """Formats kubectl prints the (maybe empty) List in, with no "No resources found"."""
    return output is not None and output not in ("wide", "name")


def write_objects(states: list[dict[str, Any]], output: str | None, *, single: bool,
                  all_namespaces: bool = False, labels: bool = False, headers: bool = True,
                  allow_missing: bool = True) -> None:
    """One listing in kubectl's output formats: a table (wide), names, a Pod / List object, or
    a template (jsonpath, custom-columns) over that object."""
    if generic_output(output):
        items = [pod_object(s) for s in states]
        write_document(items, output, single=single, headers=headers, allow_missing=allow_missing)
    elif output == "name":
        for s in states:
            print(f"pod/{s.get('name')}")
    else:
        wide = output == "wide"
        rows = [pod_header(wide=wide, all_namespaces=all_namespaces, labels=labels)] if headers else []
        now, node = time.time(), os.uname().nodename
        rows += [pod_row(s, now=now, node=node, wide=wide, all_namespaces=all_namespaces, labels=labels)
                 for s in states]
        print("\n".join(tab_lines(rows)))


def write_document(items: list[dict[str, Any]], output: str | None, *, single: bool, sort_keys: bool = False,
                   headers: bool = True, allow_missing: bool = True) -> None:
    """json, yaml or a template over the object kubectl prints: the one named object, else a List."""
    doc = items[0] if single else {"apiVersion": "v1", "items": items, "kind": "List",
                                   "metadata": {"resourceVersion": ""}}
    if output == "json":
        sys.stdout.write(json.dumps(doc, indent=4, sort_keys=sort_keys) + "\n")
    elif output == "yaml":
        sys.stdout.write(to_yaml(doc))
    else:
        from sandbox.cli.printers import check_output

        printer = check_output(output)
        assert printer is not None
        if not headers and printer.kind == "custom-columns":
            sys.stdout.write(printer.rows(items, header=False))
        else:
            sys.stdout.write(printer.document(doc, items, allow_missing=allow_missing))


def pod_header(*, wide: bool, all_namespaces: bool, labels: bool = False) -> list[str]:
    """kubectl's pod columns (-o wide adds the node's, --show-labels LABELS last)."""
    header = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    return header + (["IP", "NODE", "NOMINATED NODE", "READINESS GATES"] if wide else []) + (["LABELS"] if labels else [])


def node_name(state: dict[str, Any], default: str) -> str:
    """The pod's node as kubectl shows it: its spec.nodeName (the agent's --hostname-override
    sets it on static pods), else `default` (this machine's hostname)."""
    spec = (state.get("manifest") or {}).get("spec") or {}
    return str(spec.get("nodeName") or default)


def pod_row(state: dict[str, Any], *, now: float, node: str, wide: bool = False,
            all_namespaces: bool = False, labels: bool = False) -> list[str]:
    summary = state.get("summary") or {}
    status = state.get("status") or {}
    row = [str(state.get("namespace"))] if all_namespaces else []
    row += [str(state.get("name")), str(summary.get("ready", "0/0")), str(summary.get("status", "Unknown")),
            restarts_cell(summary, status, now),
            age(now - float(state.get("createdAt") or now))]
    if wide:
        gates = ((state.get("manifest") or {}).get("spec") or {}).get("readinessGates") or []
        true = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
        gate_cell = f"{sum(1 for g in gates if g.get('conditionType') in true)}/{len(gates)}" if gates else NONE
        row += [str(status.get("podIP") or NONE), node_name(state, node), NONE, gate_cell]
    if labels:  # labels.FormatLabels: key=value by key, comma-separated
        from sandbox.cli.selector import pod_labels

        pairs = sorted(pod_labels(state).items())
        row.append(",".join(f"{k}={v}" for k, v in pairs) or NONE)
    return row


NONE = "<none>"


def restarts_cell(summary: dict[str, Any], status: dict[str, Any], now: float) -> str:
    """`3 (2m ago)`: the count and, when known, how long ago the newest counted restart's instance
    ended, as kubectl's pod printer shows them. The runtime's summary names that moment
    (`lastRestart`, over the containers printPod counts); a record written before it did is read
    as it was then (the newest lastState.terminated.finishedAt of every container)."""
    from sandbox.events import parse_rfc3339

    restarts = int(summary.get("restarts") or 0)
    stamps = [summary["lastRestart"]] if "lastRestart" in summary else [
        ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]]
    newest = 0.0
    for finished in stamps:
        if finished:
            try:
                newest = max(newest, parse_rfc3339(str(finished)))
            except ValueError:
                continue
    if restarts and newest:
        return f"{restarts} ({age(now - newest)} ago)"
    return str(restarts)


def tab_lines(rows: list[list[str]]) -> list[str]:
    """Rows as kubectl's tabwriter aligns them (printers.GetNewTabWriter: minimum cell width 6,
    padding 3); the last column is not padded."""
    if not rows:
        return []
    widths = [max(max(len(r[i]) for r in rows) + 3, 6) for i in range(len(rows[0]) - 1)]
    return ["".join(cell.ljust(w) for cell, w in zip(r, widths)) + r[-1] for r in rows]


def age(seconds: float) -> str:
    """kubectl's AGE: apimachinery's HumanDuration (45s, 3m20s, 5h, 2d)."""
    from sandbox.cli.duration import human

    return human(seconds)


# --- watching ------------------------------------------------------------------------------------


def watch_pods(args: argparse.Namespace, ns: str | None) -> int:
    """`get -w`: the listing (unless --watch-only), then one line (or object) per change of a pod,
    as kubectl prints a watch's events: each line aligned on its own (kubectl flushes its
    tabwriter per event), the header once before the first line. A pod whose record is deleted
    is printed once more, as it was last seen. Ctrl-C ends it with exit code 0."""
    from sandbox.cli.common import layout
    from sandbox.cli.watch import PodWatch

    printer = _WatchPrinter(args.output, all_namespaces=args.all_namespaces, labels=args.show_labels,
                            headers=not args.no_headers)
    try:
        with PodWatch(layout(args).pods) as watch:
            # The watch is armed before the first read: no change after that read is missed.
            states = read_pods(args, ns, args.name)
            if not args.watch_only:
                printer.listing(list(states.values()))
            shown = {key: printer.key(s) for key, s in states.items()}
            while True:
                changed = watch.wait()
                current = read_pods(args, ns, args.name, only=changed)
                for key in sorted(set(shown) | set(current) if changed is None else changed):
                    state = current.get(key)
                    if state is None:
                        if key in states:  # deleted: kubectl prints the object once more
                            printer.one(states.pop(key))
                            shown.pop(key, None)
                        continue
                    states[key] = state
                    if printer.key(state) != shown.get(key):
                        shown[key] = printer.key(state)
                        printer.one(state)
    except KeyboardInterrupt:
        return 0


class _WatchPrinter:
    def __init__(self, output: str | None, *, all_namespaces: bool, labels: bool = False, headers: bool = True) -> None:
        self.output = output
        self.all_namespaces = all_namespaces
        self.labels = labels
        self.wide = output == "wide"
        self.header_shown = not headers  # --no-headers: as if shown already
        self.count = 0
        self.node = os.uname().nodename
        self.template = None  # jsonpath or custom-columns: each object on its own
        if output not in PLAIN_OUTPUTS:
            from sandbox.cli.printers import check_output

            self.template = check_output(output)

    def key(self, state: dict[str, Any]) -> str:
        """What counts as a change: the row's cells but the clock's (AGE and the restarts' "(2m
        ago)"), or the status when whole objects are printed."""
        if self.output in ("json", "yaml") or self.template is not None:
            return json.dumps([state.get("status"), state.get("summary")], sort_keys=True)
        cells = self.row(state, 0.0)
        first = 1 if self.all_namespaces else 0
        restarts, age_at = first + 3, first + 4
        cells[restarts] = cells[restarts].split(" ", 1)[0]
        del cells[age_at]
        return "\t".join(cells)

    def row(self, state: dict[str, Any], now: float) -> list[str]:
        return pod_row(state, now=now, node=self.node, wide=self.wide, all_namespaces=self.all_namespaces,
                       labels=self.labels)

    def listing(self, states: list[dict[str, Any]]) -> None:
        if not states:
            return
        if self.output in ("json", "yaml", "name") or self.template is not None:
            for s in states:
                self.one(s)
            return
        now = time.time()
        rows = [] if self.header_shown else [pod_header(wide=self.wide, all_namespaces=self.all_namespaces,
                                                        labels=self.labels)]
        rows += [self.row(s, now) for s in states]
        self.header_shown = True
        self._write("\n".join(tab_lines(rows)) + "\n")

    def one(self, state: dict[str, Any]) -> None:
        self.count += 1
        if self.template is not None:
            obj = pod_object(state)
            if self.template.kind == "custom-columns":
                self._write(self.template.rows([obj], header=not self.header_shown))
                self.header_shown = True
            else:
                self._write(self.template.document(obj, [obj]))
        elif self.output == "json":
            self._write(json.dumps(pod_object(state), indent=4) + "\n")
        elif self.output == "yaml":
            self._write(("---\n" if self.count > 1 else "") + to_yaml(pod_object(state)))
        elif self.output == "name":
            self._write(f"pod/{state.get('name')}\n")
        else:
            rows = [] if self.header_shown else [pod_header(wide=self.wide, all_namespaces=self.all_namespaces,
                                                            labels=self.labels)]
            self.header_shown = True
            rows.append(self.row(state, time.time()))
            self._write("\n".join(tab_lines(rows)) + "\n")

    def _write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


# --- ConfigMaps and Secrets ------------------------------------------------------------------------


def handle_config(args: argparse.Namespace, kind: str) -> int:
    from sandbox.cli.common import layout, namespace
    from sandbox.config.store import ConfigStore
    from sandbox.errors import NotFoundError

    store = ConfigStore(layout(args).lib / "config")
    plural = "configmaps" if kind == "ConfigMap" else "secrets"
    if args.name:
        found = store.get(kind, namespace(args), args.name)
        if found is None:
            raise NotFoundError(f'{plural} "{args.name}" not found in namespace "{namespace(args)}"')
        objects = [found]
    else:
        objects = store.list(kind, None if args.all_namespaces else namespace(args))
        if not objects and not generic_output(args.output):
            where = "any" if args.all_namespaces else namespace(args)
            print(f"No resources found in {where} namespace.", file=sys.stderr)
            return 0
    if generic_output(args.output):
        # keys sorted in JSON, as the API server's objects are (api_object)
        write_document([api_object(o) for o in objects], args.output, single=bool(args.name), sort_keys=True)
    elif args.output == "name":
        for o in objects:
            print(f"{kind.lower()}/{o.name}")
    else:
        print_config_table(objects, kind, all_namespaces=args.all_namespaces)
    return 0


def api_object(obj: ConfigObject, *, reveal: bool = False) -> dict[str, Any]:
    """The object as the API server returns it (keys sorted, as kubectl prints them), except that a
    Secret's values are never shown unless `reveal` (`create --dry-run`, the user's own input):
    each is replaced by its size, as `kubectl describe` shows it, in text that is not base64 so no
    tool mistakes it for the value."""
    import base64

    from sandbox.status import rfc3339

    meta: dict[str, Any] = {"name": obj.name, "namespace": obj.namespace}
    if obj.version:
        meta.update(resourceVersion=str(obj.version), creationTimestamp=rfc3339(obj.created))
    if obj.labels:
        meta["labels"] = dict(obj.labels)
    if obj.annotations:
        meta["annotations"] = dict(obj.annotations)
    out: dict[str, Any] = {"apiVersion": "v1", "kind": obj.kind, "metadata": meta}
    if obj.immutable:
        out["immutable"] = True
    if obj.kind == "ConfigMap":
        text = {k: v.decode() for k, v in obj.data.items() if k not in obj.binary_keys}
        binary = {k: base64.b64encode(v).decode() for k, v in obj.data.items() if k in obj.binary_keys}
        out.update({"data": text} if text else {}, **({"binaryData": binary} if binary else {}))
    else:
        out["type"] = obj.type
        if obj.data:
            out["data"] = {k: base64.b64encode(v).decode() if reveal else f"<hidden: {len(v)} bytes>"
                           for k, v in obj.data.items()}
    return out


def print_config_table(objects: list[ConfigObject], kind: str, *, all_namespaces: bool) -> None:
    """kubectl's columns: NAME DATA AGE (Secrets: NAME TYPE DATA AGE)."""
    header = (["NAMESPACE"] if all_namespaces else []) + ["NAME"] + (["TYPE"] if kind == "Secret" else [])
    rows = [header + ["DATA", "AGE"]]
    now = time.time()
    for o in objects:
        row = ([o.namespace] if all_namespaces else []) + [o.name] + ([o.type] if kind == "Secret" else [])
        rows.append(row + [str(len(o.data)), age(now - o.created)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
