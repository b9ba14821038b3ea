"""`sandbox apply -f FILE|DIR`: put ConfigMaps and Secrets into the node's store, as `kubectl apply`
creates or updates them (`configmap/NAME created|configured|unchanged`).

Pods are not applied: a pod runs in the foreground of `sandbox run`, which also reads the
ConfigMaps and Secrets of its own file. A directory is read as kubectl reads one without
--recursive: its `.json`, `.yaml` and `.yml` files, by name. Every file is loaded and validated
before anything is written, so a bad file changes nothing.
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

    objects = [obj for name in args.filename for path in manifest_paths(name)
               for obj in load_objects(path, args.namespace)]
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
    return 1 if failed else 0


def manifest_paths(name: str) -> list[str]:
    from sandbox.errors import UsageError

    if name != "-" and os.path.isdir(name):
        found = sorted(os.path.join(name, e) for e in os.listdir(name) if e.endswith(EXTENSIONS))
        files = [p for p in found if os.path.isfile(p)]
        if not files:
            raise UsageError(f'error reading "{name}": no .json, .yaml or .yml file in the directory')
        return files
    return [name]


def load_objects(path: str, namespace: str | None) -> list[ConfigObject]:
    """The file's ConfigMaps and Secrets in the store's form; SpecError for a Pod or anything the
    API server would refuse (validation is the loader's, shared with `sandbox run`)."""
    from sandbox.config.store import from_spec
    from sandbox.errors import FieldError, SpecError
    from sandbox.spec.load import load_manifests
    from sandbox.spec.source import source_name

    manifests = load_manifests(path)
    if manifests.pods:
        names = ", ".join(f"Pod/{p.metadata.name or p.metadata.generate_name}" for p in manifests.pods)
        raise SpecError([FieldError("kind", f"Invalid value: {names}: `sandbox apply` stores ConfigMaps and "
                                            "Secrets; run a Pod with `sandbox run`")], source_name(path))
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
    return objects
