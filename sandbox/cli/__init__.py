"""The `sandbox` command: kubectl-like verbs over a local pod runtime.

Only this package prints to users and picks exit codes: 0 success, 1 a runtime failure, 2 bad
input. Each verb's module is imported only when that verb runs, so `sandbox exec` does not pay
for what `sandbox run` needs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

VERBS = {
    "run": "sandbox.cli.run",
    "get": "sandbox.cli.get",
    "exec": "sandbox.cli.exec",
    "delete": "sandbox.cli.delete",
    "logs": "sandbox.cli.logs",
    "image": "sandbox.cli.image",
    "validate": "sandbox.cli.validate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sandbox", description="Run Kubernetes Pods on this machine.")
    parser.add_argument("--root", help="keep images, state and logs under this directory "
                        "(default: /var/lib/sandbox, /run/sandbox, /var/log/pods; env SANDBOX_ROOT)")
    parser.add_argument("-n", "--namespace", help="the pod's namespace (default: default)")
    parser.add_argument("-v", "--verbose", action="store_true", help="say what the runtime does")
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, module in VERBS.items():
        importlib.import_module(module).add_parser(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sandbox.errors import SandboxError

    argv = sys.argv[1:] if argv is None else list(argv)
    # Everything after "--" is a command to run (exec), never options of ours: argparse's own
    # handling of "--" after a sub-command's positionals is unreliable.
    trailing: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, trailing = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    args.trailing = trailing
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="sandbox: %(message)s")
    try:
        return int(args.handler(args))
    except SandboxError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
