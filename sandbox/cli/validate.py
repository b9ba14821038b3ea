"""`sandbox validate FILE...`: `FILE: valid` or every error, one per line; exit 0 or 2.

The same path from bytes to an accepted pod as `sandbox run` (sandbox/spec/accept.py): exit 0 means
`run` accepts the input; warnings (fields that are not enforced) go to stderr as `run` prints them."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    import argparse
    from typing import Any


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("validate", help="check Pod manifests as the API server and `sandbox run` would")
    p.add_argument("files", nargs="+", metavar="FILE", help="a manifest file, or - for standard input")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout
    from sandbox.errors import SpecError, UsageError
    from sandbox.spec.accept import accept_pod_file
    from sandbox.spec.source import STDIN, source_name

    if args.files.count(STDIN) > 1:
        raise UsageError("standard input (-) can be read only once")
    cache = layout(args).lib / "cache" / "manifests"
    status = 0
    for path in args.files:
        try:
            accepted = accept_pod_file(path, cache, args.namespace)
        except SpecError as e:
            status = 2
            for error in e.errors:
                print(f"{source_name(path)}: {error}", file=sys.stderr)
            continue
        print_warnings(path, accepted.warnings)
        print(f"{source_name(path)}: valid")
    return status


def print_warnings(path: str, warnings: tuple[str, ...]) -> None:
    from sandbox.spec.source import source_name

    for warning in warnings:
        print(f"{source_name(path)}: warning: {warning}", file=sys.stderr)
