"""`sandbox apply -f FILE|DIR`: put ConfigMaps and Secrets into the node's store, as `kubectl apply`
creates or updates them (`configmap/NAME created|configured|unchanged`), and hand each file's Pod
to the node agent (started if none runs), as `sandbox run -d` does (`pod/NAME created`, or
`unchanged` when the agent already runs that very manifest).

A directory is read as kubectl reads one without --recursive: its `.json`, `.yaml` and `.yml`
files, by name. Every file is loaded and validated before anything is written, so a bad file
changes nothing; ConfigMaps and Secrets are stored before any pod starts, so pods find them.
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sandbox.config.sources import ConfigObject
    from sandbox.spec.model import ConfigMap, Secret

EXTENSIONS = (".json", ".yaml", ".yml")


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("apply", help="store ConfigMaps and Secrets for pods to read (kubectl apply)")
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE|DIR",
                   help="a manifest file, a directory of them, or - for standard input (repeatable)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout
    from sandbox.config.store import ConfigStore, ImmutableError

    objects: list[ConfigObject] = []
    pod_files: list[str] = []
    for name in args.filename:
        for path in manifest_paths(name):
            found, has_pod = load_objects(path, args.namespace)
            objects += found
            if has_pod:
                pod_files.append(path)
    store = ConfigStore(layout(args).lib / "config")
    failed = 0
    for obj in objects:
        try:
            _, action = store.put(obj)
        except ImmutableError as e:
            print(f"Error from server (Invalid): error when applying: The {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{obj.kind.lower()}/{obj.name} {action}")
    if pod_files:
        from sandbox.cli.agent import run_detached

        failed = max(failed, run_detached(args, pod_files, apply=True))
    return 1 if failed == 1 else failed


def manifest_paths(name: str) -> list[str]:
    from sandbox.errors import UsageError

    if name != "-" and os.path.isdir(name):
        found = sorted(os.path.join(name, e) for e in os.listdir(name) if e.endswith(EXTENSIONS))
        files = [p for p in found if os.path.isfile(p)]
        if not files:
            raise UsageError(f'error reading "{name}": no .json, .yaml or .yml file in the directory')
        return files
    return [name]


def load_objects(path: str, namespace: str | None) -> tuple[list[ConfigObject], bool]:
    """The file's ConfigMaps and Secrets in the store's form, and whether it holds a Pod (checked
    as `sandbox run` checks it); SpecError for anything the API server would refuse."""
    from sandbox.config.store import from_spec
    from sandbox.errors import FieldError, SpecError
    from sandbox.spec.load import load_manifests
    from sandbox.spec.source import source_name

    manifests = load_manifests(path)
    if len(manifests.pods) > 1:
        raise SpecError([FieldError("kind", "Invalid value: one Pod per file (the node agent runs a file's "
                                            "Pod with the file's ConfigMaps and Secrets)")], source_name(path))
    if manifests.pods:
        from sandbox.spec.accept import accept_pod

        accept_pod(manifests.pods[0], path, namespace)  # the pod's own checks, before anything is stored
    errors = []
    objects = []
    found: list[ConfigMap | Secret] = [*manifests.config_maps, *manifests.secrets]
    for obj in found:
        meta = obj.metadata
        where = f"{obj.kind}/{meta.name or meta.generate_name}"
        if not meta.name:
            # kubectl apply finds the live object by name: generateName has none yet.
            errors.append(FieldError(f"{where}: metadata.name", "Required value: apply needs a name "
                                     "(generateName is for create)"))
        elif namespace and meta.namespace and meta.namespace != namespace:
            errors.append(FieldError(f"{where}: metadata.namespace",
                                     f'Invalid value: "{meta.namespace}": does not match the namespace '
                                     f'"{namespace}" given with -n'))
        else:
            objects.append(from_spec(obj, namespace))
    if errors:
        raise SpecError(errors, source_name(path))
    return objects, bool(manifests.pods)
