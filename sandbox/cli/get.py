"""`sandbox get pods` and `sandbox get pod NAME [-o json]`, read from the pods' records: running
pods, pods that ended (until deleted), and pods whose runtime is gone (state/view.py).
`sandbox get configmaps|secrets [NAME] [-o json|yaml]` read the node's store (config/store.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

    from sandbox.config.sources import ConfigObject

# The names kubectl accepts for each kind (get, delete and describe take the same).
CONFIG_KINDS = {"configmaps": "ConfigMap", "configmap": "ConfigMap", "cm": "ConfigMap",
                "secrets": "Secret", "secret": "Secret"}


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("get", help="show pods")
    p.add_argument("kind", choices=["pods", "pod", "po", *CONFIG_KINDS], help="what to show")
    p.add_argument("name", nargs="?", help="one pod, ConfigMap or Secret")
    p.add_argument("-o", "--output", choices=["json", "yaml", "wide", "name"], help="output format")
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
    if args.kind in CONFIG_KINDS:
        return handle_config(args, CONFIG_KINDS[args.kind])
    if args.output == "yaml":
        from sandbox.errors import UsageError

        raise UsageError("-o yaml: shown for configmaps and secrets; use -o json for pods")
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
        if not objects and args.output not in ("json", "yaml"):
            where = "any" if args.all_namespaces else namespace(args)
            print(f"No resources found in {where} namespace.", file=sys.stderr)
            return 0
    if args.output in ("json", "yaml"):
        items = [api_object(o) for o in objects]
        doc = items[0] if args.name else {"apiVersion": "v1", "items": items, "kind": "List",
                                          "metadata": {"resourceVersion": ""}}
        sys.stdout.write(json.dumps(doc, indent=4, sort_keys=True) + "\n" if args.output == "json" else to_yaml(doc))
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


# YAML 1.1 reads these plain scalars as booleans or null: a string that looks like one is quoted.
_YAML_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~", ""}


def to_yaml(value: Any, indent: int = 0) -> str:
    """A small block-style YAML writer for API objects (maps, lists, strings, numbers, booleans),
    shaped like kubectl's output: strings plain when that is unambiguous, multi-line text as a
    literal block, anything else double-quoted (JSON's escapes are YAML's)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}\n"
        lines = []
        for key, item in sorted(value.items()):  # kubectl prints a map's keys sorted
            if isinstance(item, (dict, list)) and item:
                inner = indent if isinstance(item, list) else indent + 2  # go-yaml: "- " under the key
                lines.append(f"{pad}{_yaml_scalar(str(key), indent)}:\n{to_yaml(item, inner)}")
            else:
                lines.append(f"{pad}{_yaml_scalar(str(key), indent)}: {to_yaml(item, indent + 2).lstrip()}")
        return "".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]\n"
        return "".join(f"{pad}- {to_yaml(item, indent + 2).lstrip()}" for item in value)
    if isinstance(value, bool):
        return "true\n" if value else "false\n"
    if value is None:
        return "null\n"
    if isinstance(value, (int, float)):
        return f"{value}\n"
    return _yaml_scalar(str(value), indent) + "\n"


def _yaml_scalar(text: str, indent: int) -> str:
    import re

    if re.fullmatch(r"[A-Za-z_/][\w./@+=-]*(?: [\w./@+=-]+)*", text) and text.lower() not in _YAML_WORDS:
        return text
    body = text[:-1] if text.endswith("\n") else text
    if ("\n" in body and not body.startswith(" ") and not body.endswith("\n")
            and all(ch == "\n" or " " <= ch <= "~" for ch in body)):
        pad = " " * indent
        block = "".join(f"{pad}{line}\n" if line else "\n" for line in body.split("\n"))
        return ("|\n" if text.endswith("\n") else "|-\n") + block.rstrip("\n")
    return json.dumps(text)
