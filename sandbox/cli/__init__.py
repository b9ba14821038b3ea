"""The `sandbox` command: kubectl-like verbs over a local pod runtime.

Only this package prints to users and picks exit codes: 0 success, 1 a runtime failure, 2 bad
input. Each verb's module is imported only when that verb runs, so `sandbox exec` does not pay
for what `sandbox run` needs.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    import argparse
    from typing import Any

VERBS = {
    "run": "sandbox.cli.run",
    "get": "sandbox.cli.get",
    "exec": "sandbox.cli.exec",
    "cp": "sandbox.cli.cp",
    "port-forward": "sandbox.cli.portforward",
    "delete": "sandbox.cli.delete",
    "logs": "sandbox.cli.logs",
    "image": "sandbox.cli.image",
    "validate": "sandbox.cli.validate",
    "describe": "sandbox.cli.describe",
    "inspect": "sandbox.cli.inspect",
    "top": "sandbox.cli.top",
    "gc": "sandbox.cli.gc",
    "apply": "sandbox.cli.apply",
    "create": "sandbox.cli.create",
    "events": "sandbox.cli.events",
    "wait": "sandbox.cli.wait",
    "completion": "sandbox.cli.completion",
    "agent": "sandbox.cli.agent",
}
# Verbs whose module has FAST, a fastargs.FastVerb table: their plain command lines are read
# without argparse, ~10.6 ms of imports less (sandbox/cli/fastargs.py); image: `image pull` only.
FAST_VERBS = frozenset({"exec", "run", "image"})


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (`only`) one with just that verb: importing every verb's module to
    build sub-parsers nobody asked for costs start-up time on every command."""
    import argparse
    import importlib

    parser = argparse.ArgumentParser(prog="sandbox", description="Run Kubernetes Pods on this machine.")
    parser.add_argument("--root", help="keep images, state and logs under this directory "
                        "(default: /var/lib/sandbox, /run/sandbox, /var/log/pods; env SANDBOX_ROOT)")
    parser.add_argument("-n", "--namespace", help="the pod's namespace (default: default)")
    parser.add_argument("-v", "--verbose", action="store_true", help="say what the runtime does")
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, module in VERBS.items():
        if only is None or name == only:
            importlib.import_module(module).add_parser(verbs)
    return parser


def add_trace_option(p: Any) -> None:
    """`--trace` and `--trace=json` (run, exec, delete): every kernel step on stderr as it happens
    (sandbox/trace.py). `--trace=json` is its own option string: argparse matches a whole
    argument before splitting it at "=", and `--trace FILE` must leave FILE to the verb.
    fastargs.TRACE is the same pair for the fast reader."""
    import argparse

    p.add_argument("--trace", dest="trace", action="store_const", const="text",
                   help="print each kernel step (clone, setns, mounts, cgroup writes, netlink, capset, "
                        "seccomp, execve, the tear-down) on stderr as it happens, prefixed 'trace: '; "
                        "--trace=json: one JSON object per line instead")
    p.add_argument("--trace=json", dest="trace", action="store_const", const="json", help=argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> int:
    from sandbox.errors import SandboxError

    argv = sys.argv[1:] if argv is None else list(argv)
    # Everything after "--" is a command to run (exec), never options of ours: argparse's own
    # handling of "--" after a sub-command's positionals is unreliable.
    trailing: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, trailing = argv[:cut], argv[cut + 1 :]
    at = _verb_index(argv)
    verb = argv[at] if at is not None else None
    if at is not None:
        argv = _globals_first(argv, at)
    args = _fast_args(argv, verb) if verb in FAST_VERBS else None
    if args is None:
        args = build_parser(verb).parse_args(argv)
    args.trailing = trailing
    from sandbox import log

    log.configure(log.DEBUG if args.debug else log.INFO if args.verbose else log.WARNING)
    if getattr(args, "trace", None):
        from sandbox import trace

        trace.start(trace.stream_sink(sys.stderr.fileno(), args.trace))
    try:
        from sandbox.cli.common import check_arguments

        check_arguments(args)
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
    except Exception as e:
        if args.debug:
            raise
        print(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 1


def run() -> None:
    """The `sandbox` command: `main()`, then out without the interpreter's own tear-down.

    Finalising some 200 modules and their objects costs 15-35 ms after the work is done (measured
    on `sandbox run` of a one-container pod), a third of a pod cycle. Nothing of ours relies on it:
    files are written with `os.write` or closed by `with`/`write_text`, children are reaped, and
    what is buffered (stdout, stderr, logging's handlers) is flushed here first."""
    import os

    from sandbox.deferred import defer_pathlib_imports

    defer_pathlib_imports()  # pathlib, when a verb imports it, without re & co.: ~5 ms (sandbox/deferred.py)
    code = main()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # a reader that went away, or stdout closed
        code = code or 1
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.shutdown()
    try:
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(code)


def _fast_args(argv: list[str], verb: str) -> Any:
    """The verb's arguments read by its FastVerb table, or None: argparse reads them then."""
    from sandbox.cli import fastargs

    # __import__ rather than importlib.import_module: the fast path skips importing importlib.
    module = __import__(VERBS[verb], fromlist=("FAST",))
    return fastargs.parse(argv, fastargs.GLOBAL, module.FAST)


def _globals_first(argv: list[str], at: int) -> list[str]:
    """`-n/--namespace` given after the verb, moved before it: kubectl takes its global flags
    anywhere (`kubectl get pods -n team`), argparse only where the main parser reads them. No
    verb has a `-n` of its own; a value after "--" was cut off before. `at`: the verb's index."""
    moved: list[str] = []
    rest: list[str] = []
    i = at + 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("-n", "--namespace") and i + 1 < len(argv):
            moved += [arg, argv[i + 1]]
            i += 2
            continue
        if arg.startswith("--namespace=") or (arg.startswith("-n") and len(arg) > 2 and arg[2] != "-"):
            moved.append(arg)
        else:
            rest.append(arg)
        i += 1
    return argv[:at] + moved + [argv[at]] + rest if moved else argv


def _verb_of(argv: list[str]) -> str | None:
    """The verb, when it can be told without the parser (options before it take a value or not)."""
    at = _verb_index(argv)
    return argv[at] if at is not None else None


def _verb_index(argv: list[str]) -> int | None:
    """Where the verb is in `argv` (None: not told without the parser)."""
    takes_value = {"--root", "-n", "--namespace"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in takes_value:
            i += 2
            continue
        if arg.startswith("-"):
            if arg in ("-h", "--help"):
                return None
            i += 1
            continue
        return i if arg in VERBS else None
    return None
