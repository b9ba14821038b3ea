"""`sandbox logs NAME [-c CONTAINER | --all-containers] [-p] [-f] [--tail N] [--since D |
--since-time T] [--timestamps] [--limit-bytes N] [--prefix]`: print container logs, as `kubectl
logs` does.

Logs outlive the pod (they stay under /var/log/pods), so this works after the pod has ended too:
the newest log directory of that namespace and name is read. A container's log is its newest
instance's files, rotated ones first; `-p` reads the previous instance (`lastState.terminated`).
The options are the kubelet's (kuberuntime/logs): `--tail` is taken before `--since` (the last N
lines, then those at or after the time), times are the records' own, and `--timestamps` prints
them as RFC3339NanoFixed. `--limit-bytes` is the kubelet's logWriter: it counts what the kubelet
sends for each container (the lines --tail and --since leave, each with its timestamp, not
kubectl's --prefix), cuts the line that reaches the limit there and ends the read (a follow too).
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from sandbox.logs.reader import LogLine
    from sandbox.state.proc import ProcessRef


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("logs", help="print a container's logs")
    p.add_argument("name", nargs="?", help="pod name (or -l SELECTOR)")
    p.add_argument("-c", "--container", help="container name")
    p.add_argument("-p", "--previous", action="store_true", help="the previous instance of the container")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new lines until the container instance stops running")
    p.add_argument("--tail", type=int, default=-1, help="only the last N lines (-1: all)")
    p.add_argument("--since", help="only lines newer than this duration (5s, 2m, 3h)")
    p.add_argument("--since-time", help="only lines at or after this RFC 3339 time")
    p.add_argument("--timestamps", action="store_true", help="begin each line with its time (RFC 3339)")
    p.add_argument("--limit-bytes", type=int, default=0, metavar="N",
                   help="at most N bytes of each container's log (timestamps included), the last line cut "
                        "there; a follow ends there too (0: no limit)")
    p.add_argument("--all-containers", action="store_true", help="every container of the pod, init ones first")
    p.add_argument("--prefix", action="store_true", help="begin each line with [pod/NAME/CONTAINER]")
    from sandbox.cli.selector import add_option

    add_option(p, "pods (their default container, or -c/--all-containers; --tail 10 unless given)")
    p.add_argument("--max-log-requests", type=int, default=5, metavar="N",
                   help="with -l and -f: at most N containers followed at once (default 5)")
    p.set_defaults(handler=handle)


class Options:
    """What each line goes through: the time filter, the tail, the prefixes."""

    def __init__(self, args: argparse.Namespace) -> None:
        import time

        from sandbox.cli.duration import parse_duration, parse_rfc3339
        from sandbox.errors import UsageError

        # kubectl leaves sinceSeconds out for a 0 duration (`--since 0s` shows everything)
        seconds = parse_duration(args.since, "--since") if args.since else 0.0
        if seconds and args.since_time:
            raise UsageError("at most one of `sinceTime` or `sinceSeconds` may be specified")
        if args.tail < -1:
            raise UsageError("--tail must be greater than or equal to -1")
        self.since: float | None = None
        if seconds:
            if seconds < 0:
                raise UsageError("--since must be greater than 0")
            # kubectl sends whole seconds, Duration.Round(time.Second) (half away from zero), and
            # the API server refuses 0; the kubelet counts back from its clock.
            whole = int(seconds + 0.5)
            if whole < 1:
                raise UsageError("sinceSeconds: Invalid value: 0: must be greater than 0")
            self.since = time.time() - whole
        elif args.since_time:
            self.since = parse_rfc3339(args.since_time, "--since-time")
        if args.limit_bytes < 0:  # kubectl leaves 0 out; the API server refuses the rest below 1
            raise UsageError(f"limitBytes: Invalid value: {args.limit_bytes}: must be greater than 0")
        self.limit_bytes: int | None = args.limit_bytes or None
        self.tail = args.tail
        self.timestamps = args.timestamps
        self.prefix = args.prefix

    def keep(self, line: LogLine) -> bool:
        if self.since is None:
            return True
        from sandbox.cli.duration import parse_rfc3339

        return parse_rfc3339(line.timestamp, "log record") >= self.since

    def render(self, line: LogLine, pod: str, container: str, budget: ByteBudget | None = None) -> bytes:
        from sandbox.logs.reader import fixed_nano

        content = line.content if line.content.endswith(b"\n") else line.content + b"\n"
        if self.timestamps:
            content = fixed_nano(line.timestamp).encode() + b" " + content
        if budget is not None:
            content = budget.take(content)
        if self.prefix:
            content = f"[pod/{pod}/{container}] ".encode() + content
        return content


class ByteBudget:
    """--limit-bytes for one container's log (kubectl asks the kubelet once per container, each
    with the limit): what is left of it; None, no limit."""

    def __init__(self, limit: int | None) -> None:
        self.remain = limit

    @property
    def spent(self) -> bool:
        return self.remain is not None and self.remain <= 0

    def take(self, data: bytes) -> bytes:
        """The part of `data` that still fits (all of it, a head of it, or nothing)."""
        if self.remain is None:
            return data
        data = data[: max(self.remain, 0)]
        self.remain -= len(data)
        return data


class _LimitReached(Exception):
    """A follow's --limit-bytes is spent: the kubelet's ReadLogs returns there."""


class PodLogs:
    """One pod's part of a `logs`: its record and log directories, the container instances read."""

    def __init__(self, pod: str, pod_state: Path, pod_log: Path, work: list[tuple[str, int]]) -> None:
        self.pod = pod
        self.pod_state = pod_state
        self.pod_log = pod_log
        self.work = work  # (container, instance)


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import check_pod_name, namespace
    from sandbox.errors import UsageError

    ns = namespace(args)
    if args.all_containers and args.container:
        raise UsageError(f"--all-containers=true should not be specified with container name {args.container}")
    if args.selector is None:
        if not args.name:
            raise UsageError("logs: give a pod name or -l SELECTOR")
        plans = [_plan(args, ns, check_pod_name(args.name))]
    else:
        if args.name:
            raise UsageError("only one of a pod name or -l (--selector) may be given")
        from sandbox.cli.selector import selected_pods

        names = [str(state.get("name")) for state in selected_pods(args, ns, args.selector).values()]
        if not names:
            print(f"No resources found in {ns} namespace.", file=sys.stderr)
            return 0
        if args.tail == -1:
            args.tail = 10  # kubectl's default for a selector's logs
        plans = [_plan(args, ns, name) for name in names]
    options = Options(args)
    if args.follow and not args.previous:
        streams = sum(len(plan.work) for plan in plans)
        if args.selector is not None and streams > args.max_log_requests:
            raise UsageError(f"you are attempting to follow {streams} log streams, but maximum allowed "
                             f"concurrency is {args.max_log_requests}, use --max-log-requests to increase the limit")
        _follow_all(plans, options)
        return 0
    out = sys.stdout.buffer
    for plan in plans:
        for container, instance in plan.work:
            budget = ByteBudget(options.limit_bytes)
            for line in _snapshot(plan.pod_log / container, instance, options):
                out.write(options.render(line, plan.pod, container, budget))
                if budget.spent:
                    break
            out.flush()
    return 0


def _plan(args: argparse.Namespace, ns: str, name: str) -> PodLogs:
    """Which containers of pod `name` to read, and which instance of each."""
    from sandbox.cli.common import layout
    from sandbox.errors import NotFoundError, UsageError

    pod_log = _newest_pod_log_dir(layout(args).logs, ns, name)
    if pod_log is None:
        raise NotFoundError(f'pods "{name}" not found in namespace "{ns}" (no logs)')
    pod_state = layout(args).pod_state_dir(ns, name)
    state = _pod_state(pod_state)
    logged = sorted(p.name for p in pod_log.iterdir() if p.is_dir())
    order = _spec_order(state)
    if args.all_containers:
        chosen = [c for c in order if c in logged] + [c for c in logged if c not in order]
    elif args.container:
        if state is not None and args.container not in order:
            raise UsageError(f"container {args.container} is not valid for pod {name}")
        chosen = [args.container]
    else:
        chosen = [default_container(state, logged, name)]
    return PodLogs(name, pod_state, pod_log,
                   [(c, _instance(pod_log, c, state, name, previous=args.previous)) for c in chosen])


def default_container(state: dict[str, Any] | None, logged: list[str], pod: str) -> str:
    """The container `logs` reads without -c, as kubectl since 1.21 (KEP-2189): the
    kubectl.kubernetes.io/default-container annotation's, else the first app container, with
    kubectl's notice on stderr when there was a choice. Without a record (the pod was deleted,
    its logs stay) the log directories stand in for the spec."""
    from sandbox.errors import UsageError

    manifest = (state or {}).get("manifest") or {}
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    wanted = annotations.get("kubectl.kubernetes.io/default-container")
    spec = manifest.get("spec") or {}
    app = [str(c.get("name")) for c in spec.get("containers") or []] if state else logged
    init = [str(c.get("name")) for c in spec.get("initContainers") or []]
    if wanted and wanted in app + init:
        return str(wanted)
    if not app:
        raise UsageError(f"pod {pod} has no container logs")
    announce_default(app[0], app, init)
    return app[0]


def announce_default(chosen: str, app: list[str], init: list[str]) -> None:
    """kubectl's `Defaulted container "X" out of: a, b, i (init)` when the pod has several."""
    if len(app) + len(init) > 1:
        names = ", ".join([*app, *(f"{name} (init)" for name in init)])
        print(f'Defaulted container "{chosen}" out of: {names}', file=sys.stderr)


def _spec_order(state: dict[str, Any] | None) -> list[str]:
    """kubectl --all-containers' order: init containers, then the app containers."""
    spec = ((state or {}).get("manifest") or {}).get("spec") or {}
    return [str(c.get("name")) for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]]


def _instance(pod_log: Path, container: str, state: dict[str, Any] | None, pod: str, *, previous: bool) -> int:
    """The instance (restart count) to read: the newest, or with -p the previous one."""
    from sandbox.errors import NotFoundError
    from sandbox.logs.reader import container_instances

    # The runtime keeps the current instance of a container and the one before it (issue 7).
    found = container_instances(pod_log / container)
    if not previous:
        if not found:
            raise NotFoundError(not_started(container, pod, _container_status(state, container)))
        return found[-1]
    instance = previous_instance(found, _container_status(state, container)) if found else None
    if instance is None:
        raise NotFoundError(f'previous terminated container "{container}" in pod "{pod}" not found')
    return instance


# The kubelet's words for the commonest reasons a container has not started (validateContainerLogStatus).
_WAITING_WORDS = {"ErrImagePull": "image can't be pulled", "ImagePullBackOff": "trying and failing to pull image"}


def not_started(container: str, pod: str, status: dict[str, Any] | None) -> str:
    """Why a container has no logs yet, as the kubelet answers a log request for it: waiting to
    start, with its waiting reason (PodInitializing, ContainerCreating, ...); terminated without
    ever running (a start error); "no logs yet" when neither is known (the record is gone)."""
    state = (status or {}).get("state") or {}
    if "terminated" in state:
        return f'container "{container}" in pod "{pod}" is terminated'
    reason = str((state.get("waiting") or {}).get("reason") or "")
    if reason:
        return f'container "{container}" in pod "{pod}" is waiting to start: {_WAITING_WORDS.get(reason, reason)}'
    return f'container "{container}" in pod "{pod}" is waiting to start - no logs yet'


def _snapshot(directory: Path, instance: int, options: Options) -> list[LogLine]:
    from sandbox.logs.reader import read_lines

    lines = list(read_lines(directory, instance))
    if options.tail >= 0:
        lines = lines[len(lines) - options.tail:] if options.tail else []
    return [line for line in lines if options.keep(line)]


def _follow_all(plans: list[PodLogs], options: Options) -> None:
    """-f: every chosen container of every pod followed at once (one thread each, as kubectl's
    parallel requests), whole lines written one at a time, each until its instance stops running."""
    import threading

    from sandbox.state.store import PodDir

    lock = threading.Lock()
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        with lock:
            out.write(data)
            out.flush()

    def running(plan: PodLogs, item: tuple[str, int]) -> Callable[[], bool]:
        return instance_running(lambda: _pod_state(plan.pod_state), *item, PodDir(plan.pod_state).owner_alive)

    jobs = [(plan.pod_log, item, plan.pod, options, running(plan, item), write) for plan in plans for item in plan.work]
    if len(jobs) == 1:
        _follow_one(*jobs[0])
        return
    threads = [threading.Thread(target=_follow_one, args=job, daemon=True) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)  # a bounded join: Ctrl-C reaches the main thread meanwhile


LINGER = 0.5  # seconds a follow reads on after its instance's exit: the runtime may still be writing its last output


def instance_process(state: dict[str, Any] | None, container: str, instance: int) -> ProcessRef | bool:
    """Instance `instance` (its restart count) of the container, as the pod's record shows it: its
    main process while it runs, True while it has yet to start, False once it has ended."""
    from sandbox.state.proc import ProcessRef

    status = _container_status(state, container)
    if status is None:
        return False
    count = int(status.get("restartCount") or 0)
    current = status.get("state") or {}
    if count > instance or (count == instance and (
            "terminated" in current or (current.get("waiting") or {}).get("reason") == "CrashLoopBackOff")):
        return False
    if count == instance and "running" in current:
        record = ((state or {}).get("containers") or {}).get(container) or {}
        return ProcessRef.from_json(record.get("process")) or True  # none yet: the record is being written
    return True


def instance_running(read_state: Callable[[], dict[str, Any] | None], container: str, instance: int,
                     owner_alive: Callable[[], bool], clock: Callable[[], float] | None = None) -> Callable[[], bool]:
    """Whether the followed instance still runs: the kubelet's follow ends once the container it
    reads is no longer running (waitLogs), so `-f` on a crash-looping container returns at the
    instance's exit, not at the pod's end. A runtime that lets go of the pod ends every follow.
    The pod's record is read until it names the instance's main process (or shows it ended);
    after the end, LINGER more seconds of reading."""
    import time

    now = clock or time.monotonic
    ref: ProcessRef | None = None
    exited_at: float | None = None

    def alive() -> bool:
        nonlocal ref, exited_at
        if not owner_alive():
            return False
        if exited_at is None:
            if ref is None:
                found = instance_process(read_state(), container, instance)
                if found is True:
                    return True
                ref = found or None
            if ref is not None and ref.alive():
                return True
            exited_at = now()
        return now() - exited_at < LINGER

    return alive


def _follow_one(pod_log: Path, item: tuple[str, int], pod: str, options: Options, alive: Callable[[], bool],
                write: Callable[[bytes], None]) -> None:
    from sandbox.logs.reader import follow_lines, read_lines

    container, instance = item
    directory = pod_log / container
    # --tail counts back from the lines there are now; later ones are all new.
    skip = max(0, sum(1 for _ in read_lines(directory, instance)) - options.tail) if options.tail >= 0 else 0
    budget = ByteBudget(options.limit_bytes)

    def emit(line: LogLine) -> None:
        nonlocal skip
        if skip:
            skip -= 1
        elif options.keep(line):
            write(options.render(line, pod, container, budget))
            if budget.spent:
                raise _LimitReached

    try:
        follow_lines(directory, instance, alive, emit)
    except _LimitReached:
        pass


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


def _pod_state(pod_state: Path) -> dict[str, Any] | None:
    """The pod's record while it exists (running or ended); None once deleted."""
    from sandbox.errors import SandboxError
    from sandbox.state.store import PodDir

    try:
        return PodDir(pod_state).read()
    except SandboxError:
        return None


def _container_status(state: dict[str, Any] | None, container: str) -> dict[str, Any] | None:
    """The container's status while the pod's record exists; None once it was deleted."""
    if state is None:
        return None
    status = state.get("status") or {}
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
