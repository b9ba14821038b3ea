"""`sandbox create configmap NAME` and `sandbox create secret generic NAME`, with kubectl's
`--from-file=[key=]path`, `--from-literal=key=value` and `--from-env-file=path`.

The sources are read as kubectl reads them (create_configmap.go, create_secret.go, env_file.go),
the object is validated as the API server validates it (the same checks `apply` and `run` use),
and stored; an existing name is an error (`create` never overwrites: use `apply`).
`--dry-run=client -o yaml|json` prints the object instead, the usual way to write a manifest.
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENV_NAME_MSG = ("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or "
                "'.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', "
                "regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')")


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("create", help="create a ConfigMap or a Secret from files and literals (kubectl create)")
    kinds = p.add_subparsers(dest="create_kind", metavar="KIND", required=True)
    _add_sources(kinds.add_parser("configmap", aliases=["cm"], help="a ConfigMap"))
    secret = kinds.add_parser("secret", help="a Secret")
    secret_kinds = secret.add_subparsers(dest="secret_kind", metavar="TYPE", required=True)
    generic = secret_kinds.add_parser("generic", help="a Secret from files, directories or literal values")
    generic.add_argument("--type", default="Opaque", help="the Secret's type (default: Opaque)")
    _add_sources(generic)
    p.set_defaults(handler=handle)


def _add_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the object's name")
    p.add_argument("--from-file", action="append", default=[], metavar="[KEY=]PATH",
                   help="a file (key: its name) or a directory (each regular file in it)")
    p.add_argument("--from-literal", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--from-env-file", action="append", default=[], metavar="PATH",
                   help="KEY=VALUE lines (# comments; a KEY alone takes its value from the environment)")
    p.add_argument("--dry-run", choices=["none", "client"], default="none",
                   help="client: print the object (-o) instead of storing it")
    p.add_argument("-o", "--output", choices=["json", "yaml", "name"], help="print the object")


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout, namespace
    from sandbox.cli.get import api_object
    from sandbox.cli.yamlout import to_yaml
    from sandbox.config.store import AlreadyExistsError, ConfigStore

    kind = "Secret" if args.create_kind == "secret" else "ConfigMap"
    obj = build(kind, args.name, namespace(args), collect(args, kind), getattr(args, "type", ""))
    if args.dry_run == "none":
        try:
            obj, _ = ConfigStore(layout(args).lib / "config").put(obj, replace_existing=False)
        except AlreadyExistsError as e:
            raise AlreadyExistsError(f"failed to create {kind.lower()}: {e}") from None
    if args.output in ("json", "yaml"):
        # kubectl prints what it sent: a Secret created here holds the caller's own values.
        doc = api_object(obj, reveal=args.dry_run == "client")
        import json

        sys.stdout.write(json.dumps(doc, indent=4, sort_keys=True) + "\n" if args.output == "json" else to_yaml(doc))
    else:
        suffix = " (dry run)" if args.dry_run == "client" else ""
        print(f"{kind.lower()}/{obj.name}{'' if args.output == 'name' else ' created'}{suffix}")
    return 0


def collect(args: argparse.Namespace, kind: str) -> list[tuple[str, bytes]]:
    """Every key and value the flags name, in kubectl's order: env files, or literals then files."""
    from sandbox.errors import UsageError

    if args.from_env_file and (args.from_file or args.from_literal):
        raise UsageError("from-env-file cannot be combined with from-file or from-literal")
    pairs: list[tuple[str, bytes]] = []
    for path in args.from_env_file:
        pairs += [(k, v.encode()) for k, v in env_file(path)]
    for source in args.from_literal:
        key, value = parse_literal(source)
        pairs.append((key, value.encode()))
    for source in args.from_file:
        pairs += file_source(source)
    return pairs


def parse_literal(source: str) -> tuple[str, str]:
    """`key=value`, split at the first '=' (a value may hold more)."""
    from sandbox.errors import UsageError

    key, sep, value = source.partition("=")
    if not sep or not key:
        raise UsageError(f"invalid literal source {source}, expected key=value")
    return key, value


def parse_file_source(source: str) -> tuple[str, str]:
    """`path` (key: its base name) or `key=path`."""
    from sandbox.errors import UsageError

    count = source.count("=")
    if count == 0:
        return os.path.basename(source.rstrip("/")) or source, source
    if count > 1:
        raise UsageError("key names or file paths cannot contain '='")
    key, path = source.split("=")
    if not key:
        raise UsageError(f"key name for file path {path} missing")
    if not path:
        raise UsageError(f"file path for key name {key} missing")
    return key, path


def file_source(source: str) -> list[tuple[str, bytes]]:
    """One file, or each regular file of a directory (not descending; symlinks and others skipped)."""
    from sandbox.errors import UsageError

    key, path = parse_file_source(source)
    try:
        if os.path.isdir(path):
            if "=" in source:
                raise UsageError("cannot give a key name for a directory path")
            entries = sorted(os.scandir(path), key=lambda e: e.name)
            return [(e.name, _read(e.path)) for e in entries if e.is_file(follow_symlinks=False)]
        return [(key, _read(path))]
    except OSError as e:
        raise UsageError(f"error reading {path}: {e.strerror}") from None


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def env_file(path: str) -> list[tuple[str, str]]:
    """kubectl's env file: one KEY=VALUE a line, leading blanks and a first-line BOM dropped, blank
    lines and `#` comments skipped; a KEY with no '=' takes its value from kubectl's environment.
    Values are taken as written (no quotes removed, no expansion)."""
    import re

    from sandbox.errors import UsageError

    try:
        raw = _read(path)
    except OSError as e:
        raise UsageError(f"error reading {path}: {e.strerror}") from None
    pairs = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"env file {path} contains invalid utf8 bytes at line {number}") from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        text = text.rstrip("\r").lstrip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.partition("=")
        if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", key):
            raise UsageError(f'"{key}" is not a valid key name: {ENV_NAME_MSG}')
        pairs.append((key, value if sep else os.environ.get(key, "")))
    return pairs


def build(kind: str, name: str, namespace: str, pairs: list[tuple[str, bytes]], secret_type: str = "") -> Any:
    """The ConfigMap (text values in data, others in binaryData, as kubectl sorts them) or Secret,
    checked as the API server checks it; a key given twice is kubectl's error."""
    from types import MappingProxyType

    from sandbox.config.store import from_spec
    from sandbox.errors import SpecError, UsageError
    from sandbox.spec.model import ConfigMap, ObjectMeta, Secret
    from sandbox.spec.validate import validate_config_map, validate_secret

    seen: dict[str, bytes] = {}
    for key, value in pairs:
        if key in seen:
            raise UsageError(f'cannot add key "{key}", another key by that name already exists in Data for '
                             f'{kind} "{name}"')
        seen[key] = value
    meta = ObjectMeta(name=name, namespace=namespace)
    obj: ConfigMap | Secret
    if kind == "ConfigMap":
        text, binary = {}, {}
        for key, value in seen.items():
            try:
                text[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                binary[key] = value
        obj = ConfigMap(metadata=meta, data=MappingProxyType(text), binary_data=MappingProxyType(binary))
        errors = validate_config_map(obj)
    else:
        obj = Secret(metadata=meta, data=MappingProxyType(seen), type=secret_type or "Opaque")
        errors = validate_secret(obj)
    if errors:
        raise SpecError(errors, f"{kind}/{name}")
    return from_spec(obj, namespace)
