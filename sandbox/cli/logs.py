"""`sandbox logs NAME [-c CONTAINER] [-p] [-f]`: print a container's log, as `kubectl logs` does.

Logs outlive the pod (they stay under /var/log/pods), so this works after the pod has ended too:
the newest log directory of that namespace and name is read. A container's log is its newest
instance's files, rotated ones first; `-p` reads the previous instance (`lastState.terminated`).
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any



def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("logs", help="print a container's logs")
    p.add_argument("name", help="pod name")
    p.add_argument("-c", "--container", help="container name")
    p.add_argument("-p", "--previous", action="store_true", help="the previous instance of the container")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the pod ends")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import check_pod_name, layout, namespace
    from sandbox.errors import NotFoundError, UsageError
    from sandbox.logs.reader import container_instances, follow, read_instance

    name, ns = check_pod_name(args.name), namespace(args)
    pod_log = _newest_pod_log_dir(layout(args).logs, ns, name)
    if pod_log is None:
        raise NotFoundError(f'pods "{name}" not found in namespace "{ns}" (no logs)')
    containers = sorted(p.name for p in pod_log.iterdir() if p.is_dir())
    container = args.container
    if container is None:
        if len(containers) != 1:
            raise UsageError(f"a container name must be specified for pod {name}, choose one of: "
                             f"[{' '.join(containers)}]")
        container = containers[0]
    if container not in containers:
        raise NotFoundError(f'container "{container}" in pod "{name}" has no logs')
    # The runtime keeps the current instance of a container and the one before it (issue 7).
    directory = pod_log / container
    found = container_instances(directory)
    if not found:
        raise NotFoundError(f'container "{container}" in pod "{name}" has no logs')
    if args.previous:
        status = _live_status(layout(args).pod_state_dir(ns, name), container)
        instance = previous_instance(found, status)
        if instance is None:
            raise NotFoundError(f'previous terminated container "{container}" in pod "{name}" not found')
    else:
        instance = found[-1]
    out = sys.stdout.buffer
    if args.follow and not args.previous:
        pod_state = layout(args).pod_state_dir(ns, name)

        def write(line: bytes) -> None:
            out.write(line)
            out.flush()

        from sandbox.state.store import PodDir

        # Until the runtime lets go of the pod (its record stays after it ended).
        follow(directory, instance, PodDir(pod_state).owner_alive, write)
        return 0
    for _, line in read_instance(directory, instance):
        out.write(line if line.endswith(b"\n") else line + b"\n")
    out.flush()
    return 0


def previous_instance(found: list[int], status: dict[str, Any] | None) -> int | None:
    """The instance `--previous` reads: the kubelet's `lastState.terminated` container. While the
    container waits to be restarted (CrashLoopBackOff) that is the newest instance, the one that
    just exited; otherwise (running, or the pod has ended) the one before the newest. None: there
    is none (the container never restarted)."""
    if status is not None and "waiting" in (status.get("state") or {}):
        if not (status.get("lastState") or {}).get("terminated"):
            return None
        return found[-1]
    wanted = found[-1] - 1
    return wanted if wanted in found else None


def _live_status(pod_state: Path, container: str) -> dict[str, Any] | None:
    """The container's status while its pod runs; None once the pod has ended."""
    from sandbox.errors import SandboxError
    from sandbox.state.store import PodDir

    try:
        status = PodDir(pod_state).read().get("status") or {}
    except SandboxError:
        return None
    for cs in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
        if cs.get("name") == container:
            return dict(cs)
    return None


def _newest_pod_log_dir(logs_root: Path, namespace: str, name: str) -> Path | None:
    prefix = f"{namespace}_{name}_"
    try:
        candidates = [logs_root / d for d in os.listdir(logs_root) if d.startswith(prefix)]
    except FileNotFoundError:
        return None
    # A pod name may itself contain "_"-free dots only, so the prefix cannot match another pod.
    candidates = [c for c in candidates if c.is_dir()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None
