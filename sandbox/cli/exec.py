"""`sandbox exec NAME [-c CONTAINER] [-i] [-t] -- CMD...`: returns CMD's exit code (a non-zero one
also in kubectl's words on stderr: "command terminated with exit code N").

As kubectl exec: no stdin unless `-i`, a terminal only with `-t`; stdout and stderr stay apart
without a terminal. The command never gets our own file descriptors (process/exec.py relays).
"""

from __future__ import annotations

import errno
import os
import sys

from sandbox.cli.fastargs import FLAG, TRACE, VALUE, FastVerb

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from sandbox.state.proc import ProcessRef


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("exec", help="run a command in a running container")
    p.add_argument("name", help="pod name")
    p.add_argument("-c", "--container", help="container name (default: the pod's first container)")
    p.add_argument("-i", "--stdin", action="store_true", help="pass our stdin to the command")
    p.add_argument("-t", "--tty", action="store_true",
                   help="with -i: give the command a terminal, ours in raw mode (as kubectl, none without -i)")
    from sandbox.cli import add_trace_option

    add_trace_option(p)
    p.epilog = "usage: sandbox exec POD [-c CONTAINER] [-i] [-t] -- CMD [ARG...]"
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import gc

    from sandbox.errors import UsageError

    command = args.trailing
    if not command:
        raise UsageError("exec: no command given (sandbox exec POD [-c CONTAINER] -- CMD...)")
    # The cyclic collector finds nothing in a command that imports, reads one file and spawns,
    # yet ran while these modules loaded (3 collections, ~0.2 ms; 1 before this point, 0.06 ms,
    # timed with gc.callbacks): off until the spawn, then what the imports made (it lives until
    # exit) frozen, so that turning it back on for the relay (`exec -it sh` may run for hours)
    # does not scan it all once.
    gc.disable()
    try:
        name, record, ref, pidfd = _running_container(args)
        from sandbox.errors import ContainerStartError
        from sandbox.process.exec import exec_in_container
        from sandbox.process.request import Identity
    except BaseException:
        gc.enable()
        raise
    gc.freeze()
    gc.enable()
    # kubectl's SetupTTY: no terminal without stdin (-t alone is dropped, silently)
    tty = args.tty and args.stdin
    if tty and not os.isatty(0):
        # kubectl's words and behaviour: go on without a terminal.
        print("Unable to use a TTY - input is not a terminal or the right kind of file", file=sys.stderr)
        tty = False
    try:
        code = exec_in_container(pidfd, command, list(record.get("env") or []), str(record.get("cwd") or "/"),
                                 Identity.from_json(record.get("identity")), stdin=args.stdin, tty=tty,
                                 main_pid=ref.pid, cgroup=_membership(record.get("cgroup")))
        if code != 0:
            # kubectl's words for a non-zero exit (the stream's CodeExitError), then that exit code
            print(f"command terminated with exit code {code}", file=sys.stderr)
        return code
    except ContainerStartError as e:
        # As a shell reports it: 127 for a command that is not there, 126 for one that cannot run.
        print(f"error: exec in container {name!r}: {e}", file=sys.stderr)
        return 127 if e.errno == errno.ENOENT else 126
    finally:
        os.close(pidfd)


def _running_container(args: argparse.Namespace) -> tuple[str, dict[str, Any], ProcessRef, int]:
    """The container to exec in: its name, its record in the pod's state, its main process and a
    pidfd of that process (UsageError, NotFoundError or StateError otherwise)."""
    from sandbox.cli.common import pod_state
    from sandbox.errors import StateError, UsageError
    from sandbox.state.proc import ProcessRef

    state = pod_state(args, args.name)
    phase = (state.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):  # kubectl's own check, before it picks a container
        raise StateError(f"cannot exec into a container in a completed pod; current phase is {phase}")
    containers: dict[str, Any] = state.get("containers") or {}
    name = args.container or _default_container(state)
    record = containers.get(name)
    if record is None:
        raise UsageError(f'container "{name}" is not valid for pod "{args.name}"; '
                         f"choose one of: [{' '.join(containers)}]")
    ref = ProcessRef.from_json(record.get("process"))
    pidfd = ref.open_pidfd() if ref else None
    if ref is None or pidfd is None:
        raise StateError(f'cannot exec in a container that is not running: container "{name}" of pod "{args.name}"')
    return name, record, ref, pidfd


# The parser above as a fastargs table (the unit test checks that both read the same).
FAST = FastVerb("exec", {
    "-c": ("container", VALUE, None),
    "--container": ("container", VALUE, None),
    "-i": ("stdin", FLAG, True),
    "--stdin": ("stdin", FLAG, True),
    "-t": ("tty", FLAG, True),
    "--tty": ("tty", FLAG, True),
    **TRACE,
}, {"container": None, "stdin": False, "tty": False, "trace": None, "handler": handle}, positionals=("name",))


def _default_container(state: dict[str, Any]) -> str:
    """kubectl's default: the annotation kubectl.kubernetes.io/default-container's, else the first
    app container, with kubectl's notice when there was a choice (KEP-2189)."""
    manifest = state.get("manifest") or {}
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    default = annotations.get("kubectl.kubernetes.io/default-container")
    if default:
        return str(default)
    spec = manifest.get("spec") or {}
    app = [str(c.get("name", "")) for c in spec.get("containers") or [{}]]
    init = [str(c.get("name")) for c in spec.get("initContainers") or []]
    if len(app) + len(init) > 1:  # only then is there a notice: cli.logs imports argparse (7.4 ms)
        from sandbox.cli.logs import announce_default

        announce_default(app[0], app, init)
    return app[0]


def _membership(paths: object) -> dict[str, object]:
    """Where the container's cgroups are, from its record (absent in a record from before cgroups):
    absolute paths only. From process/request.py, not the cgroups package (0.3 ms of imports,
    -X importtime min of 12 runs; nothing else on this path loads it since stage 2 joins its v1
    cgroups itself)."""
    from sandbox.process.request import membership

    if not isinstance(paths, dict):
        return {}
    return membership({k: p for k, p in paths.items() if isinstance(p, str) and p.startswith("/")})
