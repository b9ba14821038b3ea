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
import sys

from sandbox.cli.get import CONFIG_KINDS, POD_KINDS  # one list of the names kubectl accepts for each kind

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

    from sandbox.spec.model import ConfigMap, Pod, Secret
    from sandbox.state.store import PodDir

EXTRA_WAIT_SECONDS = 15.0  # beyond the grace period: pause, tear-down, a slow machine


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("delete", help="delete pods: stop each gracefully if it runs, remove its record and logs")
    p.add_argument("words", nargs="*", metavar="NAME",
                   help="pod names (or: pod NAME..., configmap|secret NAME)")
    p.add_argument("-f", "--filename", action="append", metavar="FILE|DIR",
                   help="delete the objects a manifest file (or a directory of them) names (repeatable)")
    p.add_argument("--all", action="store_true", help="every pod of the namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="with --all or -l: of every namespace")
    from sandbox.cli.selector import add_option

    add_option(p, fields=True)
    p.add_argument("--timeout", type=float, help="seconds to wait for a pod to stop (default: grace + 15)")
    p.add_argument("--grace-period", type=int, default=-1, metavar="SECONDS",
                   help="seconds each pod is given to stop gracefully (preStop, SIGTERM, then SIGKILL, never "
                        "sooner than 2 s after the SIGTERM), in place of its terminationGracePeriodSeconds; "
                        "ignored if negative; 1 for immediate shutdown; 0 only with --force")
    p.add_argument("--now", action="store_true", help="the same as --grace-period=1")
    p.add_argument("--force", action="store_true",
                   help="kill the pods now, without preStop or grace period (--grace-period=0, its default "
                        "with --force; a greater one is refused); also the only way to delete a node "
                        "agent's pod that runs on under its shim while no agent runs")
    from sandbox.cli import add_trace_option

    add_trace_option(p)
    p.set_defaults(handler=handle)




def handle(args: argparse.Namespace) -> int:
    from sandbox.errors import SandboxError, UsageError

    args.grace_period = grace_period(args.grace_period, now=args.now, force=args.force)
    words = list(args.words)
    kind = words.pop(0) if words and words[0] in (*POD_KINDS, *CONFIG_KINDS) else "pod"
    if any("/" in w for w in words):  # kubectl's TYPE/NAME form: `delete pod/a pod/b`
        from sandbox.cli.common import pod_of_resource

        if args.words[0] in (*POD_KINDS, *CONFIG_KINDS):
            raise UsageError("there is no need to specify a resource type as a separate argument when passing "
                             "arguments in resource/name form")
        words = [pod_of_resource(w) if "/" in w else w for w in words]
    targets: list[tuple[str, str, str]] = []  # (kind, namespace or "", name)
    if args.filename:
        if words or args.all or args.selector is not None or args.field_selector is not None:
            raise UsageError("-f: give either names, --all, -l or files")
        targets = _from_files(args)
    elif args.all and (args.selector or args.field_selector):
        # kubectl's Validate: --all with a selector is a contradiction, not the selector's pods
        flag = "--selector" if args.selector else "--field-selector"
        raise UsageError(f"cannot set --all and {flag} at the same time")
    elif args.selector is not None or args.field_selector is not None:
        if words:
            raise UsageError("name cannot be provided when a selector is specified")
        if kind in CONFIG_KINDS:
            raise UsageError("-l: selects pods only")
        targets = _selected_pods(args)
        if not targets:
            print("No resources found", file=sys.stderr)
            return 0
    elif args.all:
        if words or kind in CONFIG_KINDS:
            raise UsageError("--all: deletes every pod; give no names")
        targets = _all_pods(args)
    elif not words:
        raise UsageError("delete: give a pod name, -f FILE, -l SELECTOR or --all")
    else:
        default_ns = args.namespace or ""
        targets = [(CONFIG_KINDS[kind] if kind in CONFIG_KINDS else "Pod", default_ns, name) for name in words]
    failed = 0
    for what, ns, name in targets:
        scoped = argparse.Namespace(**{**vars(args), "namespace": ns or args.namespace})
        try:
            if what == "Pod":
                delete_pod(scoped, name)
            else:
                delete_config(scoped, what, name)
        except SandboxError as e:
            if len(targets) == 1:
                raise
            print(f"Error: {e}", file=sys.stderr)
            failed = 1
    return failed


def grace_period(given: int, *, now: bool, force: bool) -> int | None:
    """The delete's grace period in seconds, by kubectl's rules (its delete command's Complete and
    Validate): --now is 1, 0 without --force becomes 1, --force alone is 0, --force with more than
    0 is refused; None (a negative value): each pod's own terminationGracePeriodSeconds."""
    from sandbox.errors import UsageError

    if now:
        if given != -1:
            raise UsageError("--now and --grace-period cannot be specified together")
        given = 1
    if given == 0 and not force:
        given = 1  # kubectl's guard against an accidental --grace-period=0
    if force and given < 0:
        given = 0
    if force and given > 0:
        raise UsageError("--force and --grace-period greater than 0 cannot be specified together")
    if force:
        print("Warning: Immediate deletion does not wait for confirmation that the running resource has been "
              "terminated. The resource may continue to run on the cluster indefinitely.", file=sys.stderr)
    return given if given >= 0 else None


def delete_pod(args: argparse.Namespace, name: str) -> None:
    from sandbox.cli.common import layout, pod_dir
    from sandbox.errors import StateError
    from sandbox.pod.cleanup import DELETE_LOCK_WAIT, delete_record
    from sandbox.state.view import LIVE, read_pod

    target = pod_dir(args, name)
    state, kind = read_pod(target)
    annotations = ((state.get("manifest") or {}).get("metadata") or {}).get("annotations") or {}
    if kind == LIVE and state.get("owner") == "agent" and _static(annotations):
        # A mirror pod's delete (the seed notes): the kubelet brings it straight back; only
        # removing its manifest deletes a static pod.
        from sandbox.agent.static import CONFIG_SOURCE, delete_message

        out, err = delete_message(name, annotations.get(CONFIG_SOURCE, "file"))
        print(out)
        print(err, file=sys.stderr)
        return
    if kind == LIVE:
        _stop(args, target, state)
    root = layout(args)
    if not delete_record(target, root.containers, root.logs, uid=state.get("uid"), wait=DELETE_LOCK_WAIT):
        raise StateError(f'pod "{name}" was not deleted: a new run of it holds it now')
    print(f'pod "{name}" deleted')


def _static(annotations: dict[str, Any]) -> bool:
    from sandbox.agent.static import is_static

    return is_static(annotations)


def _all_pods(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    from sandbox.cli.common import layout, namespace
    from sandbox.state.store import list_pod_dirs

    wanted = None if args.all_namespaces else namespace(args)
    found = []
    for pod in list_pod_dirs(layout(args).pods):
        ns, _, name = pod.path.name.partition("_")
        if wanted is None or ns == wanted:
            found.append(("Pod", ns, name))
    return found


def _selected_pods(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    from sandbox.cli.common import namespace
    from sandbox.cli.selector import selected_pods

    states = selected_pods(args, None if args.all_namespaces else namespace(args), args.selector, args.field_selector)
    return [("Pod", str(state.get("namespace") or ""), str(state.get("name") or "")) for state in states.values()]


def _from_files(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """Every object the files name, in file order, validated first (a bad file deletes nothing)."""
    from sandbox.cli.apply import manifest_paths
    from sandbox.spec.load import load_manifests

    found = []
    for name in args.filename:
        for path in manifest_paths(name):
            manifests = load_manifests(path)
            objects: list[ConfigMap | Secret | Pod] = [*manifests.config_maps, *manifests.secrets, *manifests.pods]
            for obj in objects:
                meta = obj.metadata
                found.append((obj.kind, meta.namespace or "", meta.name or ""))
    return found


def _stop(args: argparse.Namespace, target: PodDir, state: dict[str, Any]) -> None:
    """SIGTERM to the pod's runtime, then wait until it has exited (it has ended the pod then); a
    pod of the node agent is stopped by the agent, which answers once the pod has ended."""
    from sandbox.errors import StateError

    if state.get("owner") == "agent":
        _stop_by_agent(args, state)
        return
    from sandbox.state.proc import ProcessRef

    runtime = ProcessRef.from_json(state.get("runtime"))
    pidfd = runtime.open_pidfd() if runtime is not None else None
    if pidfd is None or runtime is None:
        return  # it exited a moment ago
    grace = _grace(args, state)
    timeout = args.timeout if args.timeout is not None else max(grace, 2.0) + EXTRA_WAIT_SECONDS
    tracer = sys.modules["sandbox.trace"].active if "sandbox.trace" in sys.modules else None  # --trace
    try:
        # always written: it tells the runtime this SIGTERM is a delete (a second one only
        # shortens the grace, as the API server takes it) and not a bare signal (a second kills)
        _request_grace(target, int(grace))
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if tracer is not None:
            tracer.emit("delete", "signal", f"pidfd_send_signal(runtime pid {runtime.pid}, SIGTERM): its "
                              "tear-down runs there (its own --trace shows it)", pid=runtime.pid)
        if not _wait_for_exit(pidfd, timeout):
            raise StateError(f'pod "{state.get("name")}" did not stop within {timeout:g}s (runtime pid {runtime.pid})')
        if tracer is not None:
            tracer.emit("delete", "exit", f"runtime pid {runtime.pid} exited (its pidfd turned readable)",
                              pid=runtime.pid)
    finally:
        os.close(pidfd)


def _grace(args: argparse.Namespace, state: dict[str, Any]) -> float:
    """The grace period this delete gives the pod: --grace-period's, else the pod's own."""
    if args.grace_period is not None:
        return float(args.grace_period)
    spec = (state.get("manifest") or {}).get("spec") or {}
    seconds = spec.get("terminationGracePeriodSeconds")
    return float(seconds if seconds is not None else 30)


def _request_grace(target: PodDir, seconds: int) -> None:
    """The foreground runtime's SIGTERM carries no value: the grace period goes beside its state
    file first, and the runtime takes it when the signal arrives (supervisor/loop.py)."""
    from sandbox.state.store import DELETE_GRACE_FILE

    fd = os.open(target.path / DELETE_GRACE_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, str(seconds).encode())
    finally:
        os.close(fd)


def _stop_by_agent(args: argparse.Namespace, state: dict[str, Any]) -> None:
    from sandbox.agent.protocol import AgentError, AgentUnavailable, Client, socket_path
    from sandbox.cli.common import layout

    try:
        client = Client.connect(socket_path(layout(args)))
    except AgentUnavailable:
        _refuse_orphan_stop(args, state)
        return  # --force, or the pod ended with its shim meanwhile: the record is finished below
    try:
        client.sock.settimeout(args.timeout)
        # the pod's own grace when none was given: a second delete then shortens, never kills
        client.call("StopPod", namespace=state.get("namespace"), name=state.get("name"),
                    gracePeriodSeconds=int(_grace(args, state)))
    except AgentError:
        pass  # no longer the agent's pod (it ended a moment ago)
    finally:
        client.close()


def _refuse_orphan_stop(args: argparse.Namespace, state: dict[str, Any]) -> None:
    """No agent runs, yet the pod's shim still runs its containers (the next agent re-adopts
    them): only an agent stops a pod gracefully (preStop, SIGTERM, the grace period), so the
    delete is refused unless --force asks for the kill. Kubernetes keeps such a pod Terminating
    until its kubelet is back; `kubectl delete --force --grace-period=0` drops it at once."""
    from sandbox.cli.common import pod_dir
    from sandbox.errors import StateError
    from sandbox.pod.cleanup import shim_runs_it

    name = str(state.get("name"))
    if args.force or not shim_runs_it(pod_dir(args, name), state):
        return
    raise StateError(f'pod "{name}" runs on under its shim while no node agent runs: start `sandbox agent` '
                     "(it re-adopts the pod) and delete it again to stop it gracefully, or delete it with "
                     "--force to kill it now")


def _wait_for_exit(pidfd: int, timeout: float) -> bool:
    import select

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def delete_config(args: argparse.Namespace, kind: str, name: str) -> int:
    """`delete configmap|secret NAME`: pods that read it keep what they read (env is fixed at a
    container's start); a container still waiting for it keeps waiting."""
    from sandbox.cli.common import layout, namespace
    from sandbox.config.store import ConfigStore
    from sandbox.errors import NotFoundError

    ns = namespace(args)
    if not ConfigStore(layout(args).lib / "config").delete(kind, ns, name):
        plural = "configmaps" if kind == "ConfigMap" else "secrets"
        raise NotFoundError(f'{plural} "{name}" not found in namespace "{ns}"')
    print(f'{kind.lower()} "{name}" deleted')
    return 0
