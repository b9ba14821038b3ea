"""`sandbox gc`: finish the tear-down of every pod whose runtime is gone (killed, crashed, a
reboot) and remove its record and logs, remove writable layers and volume directories that no
live pod records, remove pod networks (bridge, hostPort table) left without a lease, and the
pods' parent cgroup (`--cgroup-parent`, SANDBOX_CGROUP_PARENT) where no pod is left in it. Pods
that ended keep their records (until `sandbox delete`): an ended pod holds nothing but its state
file and its logs."""

from __future__ import annotations

import argparse
import os
import time

UNRECORDED_GRACE_SECONDS = 60.0

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("gc", help="clean up after pods whose runtime is gone")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout
    from sandbox.pod.cleanup import finish_dead_runtime
    from sandbox.rmtree import rmtree
    from sandbox.state.store import list_pod_dirs
    from sandbox.state.view import is_ended

    root = layout(args)
    live_layers: set[str] = set()
    live_volumes: set[str] = set()
    for pod_dir in list_pod_dirs(root.pods):
        if finish_dead_runtime(pod_dir, root.containers, root.logs):
            print(f"removed pod {pod_dir.path.name.replace('_', '/', 1)}")
            continue
        state = _read(pod_dir)  # its runtime is alive (keep what it records), or it ended
        if is_ended(state):
            continue
        live_layers |= {os.path.basename(str(c.get("layer"))) for c in (state.get("containers") or {}).values()
                        if isinstance(c, dict) and c.get("layer")}
        live_volumes.add(os.path.basename(str(state.get("volumesDir", ""))))
    # A live runtime creates a layer a moment before its state records it: only sweep what no
    # state records and is older than that moment can be.
    settled = time.time() - UNRECORDED_GRACE_SECONDS
    for base, live in ((root.containers, live_layers), (root.lib / "pods", live_volumes)):
        for name in sorted(os.listdir(base)) if base.is_dir() else []:
            if name not in live and (base / name).stat().st_mtime < settled:
                rmtree(base / name, ignore_errors=True)
                print(f"removed {base / name}")
    from sandbox.network.bridge import remove_unused

    for bridge in remove_unused():  # a network whose last pod's remover did not finish
        print(f"removed network {bridge}")
    for parent in _remove_empty_cgroup_parent():
        print(f"removed cgroup {parent}")
    return 0


def _remove_empty_cgroup_parent() -> list[str]:
    """The pods' parent cgroup in every hierarchy where it holds no pod (a runtime killed between
    its last pod's removal and the parent's, or an older sandbox, which kept it)."""
    from sandbox.cgroups.fs import CgroupError
    from sandbox.cgroups.reclaim import remove_parent
    from sandbox.errors import SandboxError
    from sandbox.pod.cgroups import CgroupConfig, open_driver

    try:
        pod = open_driver(CgroupConfig()).plan_pod("gc")  # where a pod's cgroup would be
        return [str(d.parent) for d in pod.dirs() if remove_parent(d)]
    except (CgroupError, SandboxError) as e:
        print(f"cgroup parent left: {e}")
        return []


def _read(pod_dir: Any) -> dict[str, Any]:
    try:
        state: dict[str, Any] = pod_dir.read()
    except Exception:  # noqa: BLE001 - a pod still writing its first state
        return {}
    return state
