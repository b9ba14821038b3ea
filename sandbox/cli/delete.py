"""`sandbox delete NAME`: delete a pod, as `kubectl delete pod` does: a running pod is stopped
gracefully first, then its record (state and logs) is removed.

A running pod's runtime gets SIGTERM (the same path as Ctrl-C: preStop and SIGTERM to every
container, SIGKILL after the grace period, tear-down) and delete waits until it has ended. A pod
that has ended, or whose runtime is gone (whose tear-down delete finishes), has only its record
left: delete removes it, and the pod's log directory with it, as the kubelet removes a deleted
pod's logs.
"""

from __future__ import annotations

import argparse
import os
import signal

from sandbox.cli.get import CONFIG_KINDS  # one list of the names kubectl accepts for each kind

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

    from sandbox.state.store import PodDir

EXTRA_WAIT_SECONDS = 15.0  # beyond the grace period: pause, tear-down, a slow machine


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("delete", help="delete a pod: stop it gracefully if it runs, remove its record and logs")
    p.add_argument("kind", nargs="?", choices=["pod", "pods", "po", *CONFIG_KINDS], help=argparse.SUPPRESS)
    p.add_argument("name", help="pod name (or: configmap|secret NAME)")
    p.add_argument("--timeout", type=float, help="seconds to wait for the pod to stop (default: grace + 15)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.kind in CONFIG_KINDS:
        return delete_config(args, CONFIG_KINDS[args.kind])
    from sandbox.cli.common import layout, pod_dir
    from sandbox.errors import StateError
    from sandbox.pod.cleanup import delete_record
    from sandbox.state.view import LIVE, read_pod

    target = pod_dir(args, args.name)
    state, kind = read_pod(target)
    if kind == LIVE:
        _stop(args, target, state)
    root = layout(args)
    if not delete_record(target, root.containers, root.logs, uid=state.get("uid")):
        raise StateError(f'pod "{args.name}" was not deleted: a new run of it holds it now')
    print(f'pod "{args.name}" deleted')
    return 0


def _stop(args: argparse.Namespace, target: PodDir, state: dict[str, Any]) -> None:
    """SIGTERM to the pod's runtime, then wait until it has exited (it has ended the pod then)."""
    from sandbox.errors import StateError
    from sandbox.state.proc import ProcessRef

    runtime = ProcessRef.from_json(state.get("runtime"))
    pidfd = runtime.open_pidfd() if runtime is not None else None
    if pidfd is None or runtime is None:
        return  # it exited a moment ago
    grace = float(((state.get("manifest") or {}).get("spec") or {}).get("terminationGracePeriodSeconds", 30))
    timeout = args.timeout if args.timeout is not None else max(grace, 2.0) + EXTRA_WAIT_SECONDS
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if not _wait_for_exit(pidfd, timeout):
            raise StateError(f'pod "{args.name}" did not stop within {timeout:g}s (runtime pid {runtime.pid})')
    finally:
        os.close(pidfd)


def _wait_for_exit(pidfd: int, timeout: float) -> bool:
    import select

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def delete_config(args: argparse.Namespace, kind: str) -> int:
    """`delete configmap|secret NAME`: pods that read it keep what they read (env is fixed at a
    container's start); a container still waiting for it keeps waiting."""
    from sandbox.cli.common import layout, namespace
    from sandbox.config.store import ConfigStore
    from sandbox.errors import NotFoundError

    ns = namespace(args)
    if not ConfigStore(layout(args).lib / "config").delete(kind, ns, args.name):
        plural = "configmaps" if kind == "ConfigMap" else "secrets"
        raise NotFoundError(f'{plural} "{args.name}" not found in namespace "{ns}"')
    print(f'{kind.lower()} "{args.name}" deleted')
    return 0
