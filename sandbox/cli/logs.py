"""`sandbox logs NAME [-c CONTAINER] [-p]`: print a container's log, as `kubectl logs` does.

Logs outlive the pod (they stay under /var/log/pods), so this works after the pod has ended too:
the newest log directory of that namespace and name is read.
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
    import re

    from sandbox.cli.common import check_pod_name, layout, namespace
    from sandbox.errors import NotFoundError, UsageError
    from sandbox.logs.cri import iter_log_lines

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
    files = sorted((int(m.group(1)), p) for p in (pod_log / container).iterdir()
                   if (m := re.fullmatch(r"(\d+)\.log", p.name)))
    if args.previous:
        if len(files) < 2:
            raise NotFoundError(f'previous terminated container "{container}" in pod "{name}" not found')
        path = files[-2][1]
    else:
        path = files[-1][1]
    out = sys.stdout.buffer
    if args.follow and not args.previous:
        follow(path, layout(args).pod_state_dir(ns, name), out)
        return 0
    for _, line in iter_log_lines(path):
        out.write(line if line.endswith(b"\n") else line + b"\n")
    out.flush()
    return 0


FOLLOW_INTERVAL = 0.1  # a reader's pace: the runtime itself never polls


def follow(path: Path, pod_state: Path, out: Any) -> None:
    """Print the log and then what is appended to it, until the pod has ended (its state
    directory is gone) and nothing more is left to read. `P` records are joined per stream."""
    import time

    from sandbox.logs.cri import parse_record

    offset, partial = 0, {"stdout": b"", "stderr": b""}
    while True:
        alive = pod_state.exists()
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        offset += len(complete)
        for raw in complete.splitlines():
            try:
                _, stream, tag, content = parse_record(raw)
            except ValueError:
                continue
            partial[stream] = partial.get(stream, b"") + content
            if tag == "F":
                out.write(partial[stream] + b"\n")
                partial[stream] = b""
        out.flush()
        if not alive and not complete:
            return
        time.sleep(FOLLOW_INTERVAL)


def _newest_pod_log_dir(logs_root: Path, namespace: str, name: str) -> Path | None:
    prefix = f"{namespace}_{name}_"
    try:
        candidates = [logs_root / d for d in os.listdir(logs_root) if d.startswith(prefix)]
    except FileNotFoundError:
        return None
    # A pod name may itself contain "_"-free dots only, so the prefix cannot match another pod.
    candidates = [c for c in candidates if c.is_dir()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None
