"""`sandbox delete NAME`: stop a pod run elsewhere, gracefully, and wait until it is gone.

The pod's runtime gets SIGTERM (the same path as Ctrl-C: SIGTERM to every container, SIGKILL after
the grace period, tear-down). If that runtime is gone, delete finishes the tear-down itself.
"""

from __future__ import annotations

import argparse
import os
import signal

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

EXTRA_WAIT_SECONDS = 15.0  # beyond the grace period: pause, tear-down, a slow machine


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("delete", help="stop a running pod gracefully")
    p.add_argument("kind", nargs="?", choices=["pod", "pods", "po"], help=argparse.SUPPRESS)
    p.add_argument("name", help="pod name")
    p.add_argument("--timeout", type=float, help="seconds to wait for the pod to go (default: grace + 15)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout, pod_dir
    from sandbox.errors import StateError
    from sandbox.pod.cleanup import finish_dead_runtime
    from sandbox.state.proc import ProcessRef

    target = pod_dir(args, args.name)
    state = target.read()
    runtime = ProcessRef.from_json(state.get("runtime"))
    pidfd = runtime.open_pidfd() if runtime and target.owner_alive() else None
    if pidfd is None or runtime is None:
        finish_dead_runtime(target, layout(args).containers)
        print(f'pod "{args.name}" deleted')
        return 0
    grace = float(((state.get("manifest") or {}).get("spec") or {}).get("terminationGracePeriodSeconds", 30))
    timeout = args.timeout if args.timeout is not None else max(grace, 2.0) + EXTRA_WAIT_SECONDS
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if not _wait_for_exit(pidfd, timeout):
            raise StateError(f'pod "{args.name}" did not stop within {timeout:g}s (runtime pid {runtime.pid})')
    finally:
        os.close(pidfd)
    # The runtime removes the pod's directory before it exits, so the pod is gone now.
    print(f'pod "{args.name}" deleted')
    return 0


def _wait_for_exit(pidfd: int, timeout: float) -> bool:
    import select

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))
