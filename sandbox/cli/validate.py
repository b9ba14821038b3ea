"""`sandbox validate FILE...`: `FILE: valid` or every error, one per line; exit 0 or 2."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("validate", help="check Pod manifests as the API server would")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sandbox.errors import SpecError
    from sandbox.spec.load import load_manifests

    status = 0
    for path in args.files:
        try:
            load_manifests(path)
        except SpecError as e:
            status = 2
            for error in e.errors:
                print(f"{path}: {error}", file=sys.stderr)
            continue
        print(f"{path}: valid")
    return status
