"""`sandbox agent`: one process that owns every pod of the node, in one loop.

Each pod is a PodSupervisor (the same one a foreground `sandbox run` drives) sharing the agent's
selector: every key a pod registers carries the pod as its owner, so an event goes to its pod and
a fault in one pod stops that pod, never the agent. Manifests are read, checked and their images
pulled in a worker thread (a pull must not stall every other pod); processes are spawned on the
main thread only (PR_SET_PDEATHSIG follows the spawning thread).

Clients talk to it over `<run>/agent.sock` (agent/protocol.py, docs/agent-protocol.md).
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import sys
import threading
import time
from functools import partial

from sandbox import poller
from sandbox.agent import protocol
from sandbox.log import get_logger
from sandbox.record import Record
from sandbox.supervisor.timers import Timers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sandbox.agent.static import StaticPod, StaticPods
    from sandbox.paths import RootLayout
    from sandbox.supervisor.run import PodRun, PreparedPod, RunOptions

log = get_logger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
HELPER_REAP_INTERVAL = 0.5  # seconds between reaps of detached helpers still running
# A container waiting for one of these will not start without a change from outside (an image, a
# ConfigMap) or a back-off: `run -d` answers then rather than wait.
FAILED_WAITING = frozenset({
    "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CrashLoopBackOff",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PostStartHookError",
})


class NodeOptions(Record):
    """The node's settings (the kubelet's flags): every pod the agent runs gets them."""

    run: RunOptions  # its `cgroups` is None: planned per pod from `cgroup_config`
    cgroup_config: Any  # pod.cgroups.CgroupConfig
    pull_options: Any = None  # images.options.PullOptions
    argv: tuple[str, ...] = ()  # the node options as flags (a `run -d` compares its own with them)


class OwnedSelector:
    """One pod's view of the agent's selector: its keys' data become (pod, data)."""

    def __init__(self, shared: poller.Selector) -> None:
        self.shared = shared
        self.owner: Any = None
        self.fds: set[int] = set()

    def register(self, fd: Any, events: int, data: Any = None) -> poller.Key:
        key = self.shared.register(fd, events, (self.owner, data))
        self.fds.add(key.fd)
        return key

    def unregister(self, fd: Any) -> poller.Key:
        key = self.shared.unregister(fd)
        self.fds.discard(key.fd)
        return key

    def modify(self, fd: Any, events: int, data: Any = None) -> poller.Key:
        return self.shared.modify(fd, events, (self.owner, data))

    def get_key(self, fd: Any) -> poller.Key:
        return self.shared.get_key(fd)

    def select(self, timeout: float | None = None) -> list[tuple[poller.Key, int]]:
        raise RuntimeError("a pod of the agent never runs its own loop")

    def close(self) -> None:
        for fd in list(self.fds):
            try:
                self.shared.unregister(fd)
            except (KeyError, ValueError):
                pass
        self.fds.clear()


class Conn:
    """A client connection: requests in, answers out (a small answer is written at once)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = protocol.Decoder()
        self.closed = False
        self.lock = threading.Lock()  # `--trace`: pause's reaping lines come from a thread

    def answer(self, message: dict[str, Any]) -> None:
        with self.lock:
            if self.closed:
                return
            try:
                self.sock.sendall(protocol.encode(message))
            except OSError:
                self.closed = True  # the client went away; its pod runs on

    def fail(self, error: str, code: int = 1) -> None:
        self.answer({"ok": False, "error": error, "code": code})


class AgentPod:
    """A pod the agent runs: its run (record, lock, supervisor) and who waits on it."""

    def __init__(self, run: PodRun, selector: OwnedSelector) -> None:
        self.run = run
        self.selector = selector
        self.started_waiters: list[Conn] = []  # RunPod: until every container runs or has failed
        self.stopped_waiters: list[Conn] = []  # StopPod: until the pod has ended
        self.ended = False
        self.tracer: Any = None  # `run -d --trace`: this pod's steps go to its client until it answers

    @property
    def key(self) -> tuple[str, str]:
        return self.run.prepared.namespace, self.run.prepared.name


class Agent:
    def __init__(self, layout: RootLayout, options: NodeOptions, *, static: StaticPods | None = None,
                 keep_pods: bool = False, node_name: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.layout, self.options, self.clock = layout, options, clock
        self.node_name = node_name  # --hostname-override's: set as spec.nodeName of pods without one
        # `sandbox agent --keep-pods`: a stop signal ends the agent and leaves every pod running
        # under its shim for the next agent to re-adopt, as a kubelet's restart leaves its
        # containers to containerd's shims (the systemd unit's restarts and upgrades).
        self.keep_pods = keep_pods
        self.leaving = False  # keep_pods and a stop signal came: the loop ends, the pods stay
        self.static = static  # the static pod sources (a manifest directory, a URL), or None
        self.static_pods: dict[tuple[str, str], StaticPod] = {}  # pod key -> the static pod it runs
        self.static_waiting: dict[tuple[str, str], StaticPod] = {}  # to start once the old pod ended
        self.static_ready = False  # every static pod source has listed once
        self.selector = poller.Selector()
        self.timers = Timers()  # the agent's own (watchdog, helper reaping); each pod keeps its own
        self.reap_pending = False  # a timer will reap the detached helpers still running
        self.pods: dict[tuple[str, str], AgentPod] = {}
        self.preparing: set[tuple[str, str]] = set()
        self.done_work: list[tuple[Conn, Any, Any]] = []  # (client, request, PreparedPod | exception)
        self.done_lock = threading.Lock()
        self.stopping = False
        self.listener: socket.socket | None = None
        self.exit_watch: Any = None
        self.worker: threading.Thread | None = None
        self.lock_fd = -1

    # --- start and stop --------------------------------------------------------------------------

    def listen(self) -> None:
        """Take the node's agent lock and bind the socket (root-only: 0700 directory, 0600 socket)."""
        from sandbox.errors import StateError

        self.layout.run.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.layout.run / "agent.lock"
        while True:  # the lock file goes with the agent: retry if it was removed while we waited
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StateError(f"a node agent already runs for {self.layout.run}") from None
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.lock_fd = fd
        self._finish_crashed()
        path = protocol.socket_path(self.layout)
        try:
            os.unlink(path)  # a crashed agent's: we hold the lock, so nobody listens on it
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        old_umask = os.umask(0o177)
        try:
            listener.bind(path)
        finally:
            os.umask(old_umask)
        listener.listen(64)
        self.listener = listener
        self.selector.register(listener, poller.EVENT_READ, (None, ("listen", None)))

    def _finish_crashed(self) -> None:
        """What a dead agent (or any killed runtime) left: a pod of the agent whose shim still
        answers runs on and is re-adopted (supervisor/adopt.py); any other pod whose record does
        not say ended died with its runtime: its tear-down is finished from its journal and its
        record removed, as `sandbox gc` does."""
        from sandbox.pod.cleanup import finish_dead_runtime
        from sandbox.state.store import list_pod_dirs

        started = time.monotonic()
        for pod_dir in list_pod_dirs(self.layout.pods):
            try:
                if self._adopt(pod_dir):
                    continue
                if finish_dead_runtime(pod_dir, self.layout.containers, self.layout.logs, keep_adoptable=False):
                    log.warning("agent: finished the tear-down of pod %s (its runtime was gone)",
                                pod_dir.path.name.replace("_", "/", 1))
            except Exception as e:  # noqa: BLE001 - one bad record must not keep the node down
                log.error("agent: pod %s: %s: %s", pod_dir.path.name, type(e).__name__, e)
        if self.pods:
            log.info("agent: re-adopted %d pods in %.1f ms", len(self.pods), (time.monotonic() - started) * 1000)

    def _adopt(self, pod_dir: Any) -> bool:
        """Re-adopt the pod at `pod_dir` if a dead agent ran it and its shim answers: True then
        (or if it could not be taken over and was torn down instead)."""
        from sandbox.pod.cgroups import plan
        from sandbox.pod.cleanup import adoptable_shim
        from sandbox.record import replace
        from sandbox.supervisor.adopt import adopt
        from sandbox.supervisor.run import PodRun, prepare_record

        found = adoptable_shim(pod_dir)
        if found is None:
            return False
        state, shim = found
        selector = OwnedSelector(self.selector)
        pod: AgentPod | None = None
        try:
            prepared = prepare_record(state, self.layout, self.options.pull_options, pod_dir.path)
            options = replace(self.options.run, cgroups=plan(prepared.pod, self.options.cgroup_config))
            run = PodRun(prepared, options, selector=selector, owner="agent")
            run.exit_watch = self._exit_watch()
            pod = AgentPod(run, selector)
            selector.owner = pod
            run.on_save = partial(self._on_save, pod)
            run.begin(adopting=state)
            self.pods[pod.key] = pod
            adopt(run.supervisor, state, shim)
            run.supervisor.flush()
        except Exception as e:  # noqa: BLE001 - a pod that cannot be taken over is stopped, not the agent
            log.error("agent: pod %s could not be re-adopted (%s: %s); tearing it down",
                      pod_dir.path.name.replace("_", "/", 1), type(e).__name__, e)
            shim.close()
            if pod is not None and pod.key in self.pods:
                self._end(pod, force=True)
            return False  # finish_dead_runtime takes what is left
        log.warning("agent: re-adopted pod %s/%s (its previous agent was gone)", *pod.key)
        if run.supervisor.done():  # it ended while no agent ran: no event or timer of its own would
            self._end(pod)         # wake the loop to tear it down (network, IP, pause, cgroups)
        return True

    def serve(self, ready_fd: int = -1) -> int:
        """Run until a stop signal has ended every pod; 0 then."""
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.wake_w = wake_w
        self.selector.register(wake_r, poller.EVENT_READ, (None, ("wake", None)))
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}
        previous_fd = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        try:
            notify = SystemdNotifier.from_environment()
            if notify is not None:
                notify.send("READY=1\nSTATUS=serving")
                self._keep_watchdog(notify)
            if self.static is not None and self.static.fileno() >= 0:
                self.selector.register(self.static.fileno(), poller.EVENT_READ, (None, ("static", None)))
            if self.static is not None:
                self._poll_static()  # the directory's pods start now, not at the first re-list
            if ready_fd >= 0:
                os.write(ready_fd, b"%d\n" % os.getpid())
                os.close(ready_fd)
            log.info("agent %d: serving on %s", os.getpid(), protocol.socket_path(self.layout))
            while not (self.stopping and not self.pods) and not self.leaving:
                self._wait_once(wake_r)
            if self.leaving:
                self._leave()
        finally:
            for pod in [] if self.leaving else list(self.pods.values()):  # only after a fault in the loop itself
                self._end(pod, force=True)
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.static is not None:
                self.static.close()
            if self.exit_watch is not None:
                self.exit_watch.close()
            self._close(wake_r, wake_w)
        return 0

    def _leave(self) -> None:
        """The end of a --keep-pods agent: each pod's last state saved (what the next agent
        re-adopts from, as after a SIGKILL but with nothing unsaved), nothing of it stopped."""
        for pod in list(self.pods.values()):
            if not pod.ended and pod.run.supervisor.unsaved:
                self._guarded(pod, pod.run.supervisor.flush)

    def _close(self, wake_r: int, wake_w: int) -> None:
        if self.listener is not None:
            try:
                os.unlink(protocol.socket_path(self.layout))
            except FileNotFoundError:
                pass
            self.listener.close()
        os.close(wake_r)
        os.close(wake_w)
        self.selector.close()
        if self.lock_fd >= 0:
            try:
                os.unlink(self.layout.run / "agent.lock")  # still ours: we hold it
            except FileNotFoundError:
                pass
            os.close(self.lock_fd)

    def _keep_watchdog(self, notify: SystemdNotifier) -> None:
        if notify.watchdog_interval <= 0:
            return

        def ping() -> None:
            notify.send("WATCHDOG=1")
            self.timers.add(self.clock() + notify.watchdog_interval / 2, ping)

        ping()

    # --- the loop --------------------------------------------------------------------------------

    def _next_timeout(self) -> float | None:
        static_deadline = self.static.next_deadline() if self.static is not None and not self.stopping else None
        deadlines = [d for d in (self.timers.next_deadline(), static_deadline,
                                 *(p.run.supervisor.timers.next_deadline() for p in self.pods.values()))
                     if d is not None]
        return max(0.0, min(deadlines) - self.clock()) if deadlines else None

    def _wait_once(self, wake_r: int) -> None:
        for key, mask in self.selector.select(self._next_timeout()):
            owner, (kind, obj) = key.data
            if owner is None:
                self._on_agent_event(kind, obj, wake_r)
            elif isinstance(owner, AgentPod) and not owner.ended:
                self._guarded(owner, partial(owner.run.supervisor.dispatch, kind, obj, key.fd, mask))
        self.timers.fire_due(self.clock())
        if self.static is not None and not self.stopping:
            deadline = self.static.next_deadline()
            if deadline is not None and deadline <= self.clock():
                self._poll_static()
        # Every pod, on every wake: a quiet pod (no timer due, nothing unsaved) costs two
        # attribute checks here instead of two guarded calls (~20 us per pod per wake, 2-3 wakes
        # per `run -d`: ~1 ms with 20 pods).
        now = self.clock()
        for pod in list(self.pods.values()):
            supervisor = pod.run.supervisor
            if not pod.ended:
                deadline = supervisor.timers.next_deadline()
                if deadline is not None and deadline <= now:
                    self._guarded(pod, supervisor.fire_timers)
            if not pod.ended and supervisor.done():
                self._end(pod)
            elif not pod.ended and supervisor.unsaved:
                self._guarded(pod, supervisor.flush)

    def _guarded(self, pod: AgentPod, step: Callable[[], None]) -> None:
        """A fault in one pod's step stops that pod (forced), never the agent."""
        self._traced(pod, partial(self._guarded_step, pod, step))

    def _traced(self, pod: AgentPod, step: Callable[[], None]) -> None:
        """Run `step`; under `run -d --trace` with the process's one tracer this pod's meanwhile."""
        if pod.tracer is None:
            step()
            return
        from sandbox import trace

        previous, trace.active = trace.active, pod.tracer
        try:
            step()
        finally:
            trace.active = previous

    def _guarded_step(self, pod: AgentPod, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - the agent outlives any one pod's fault
            log.error("pod %s/%s: %s: %s; stopping it", *pod.key, type(e).__name__, e)
            try:
                pod.run.supervisor.stop(force=True)
            except Exception:  # noqa: BLE001
                self._end(pod, force=True)

    def _on_agent_event(self, kind: str, obj: Any, wake_r: int) -> None:
        if kind == "listen":
            self._accept()
        elif kind == "conn":
            self._on_conn(obj)
        elif kind == "wake":
            self._on_wake(wake_r)
        elif kind == "exitwatch":
            assert self.exit_watch is not None
            self.exit_watch.drain()
        elif kind == "static" and not self.stopping:
            self._poll_static()

    def _on_wake(self, wake_r: int) -> None:
        try:
            data = os.read(wake_r, 256)
        except BlockingIOError:
            data = b""
        for signo in data:
            if signo in STOP_SIGNALS and self.keep_pods:
                log.info("agent: got %s, leaving %d pods to their shims", signal.Signals(signo).name, len(self.pods))
                self.leaving = True
            elif signo in STOP_SIGNALS:
                force = self.stopping
                log.info("agent: got %s, stopping %d pods", signal.Signals(signo).name, len(self.pods))
                self.stopping = True
                for pod in list(self.pods.values()):
                    self._guarded(pod, partial(pod.run.supervisor.stop, force=force))
        with self.done_lock:
            work, self.done_work = self.done_work, []
        for conn, request, result in work:
            self._start_prepared(conn, request, result)

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            uid = int.from_bytes(creds[4:8], "little")
            if uid != 0:  # the socket is 0600 already; a root-owned fd passed on is not enough
                sock.close()
                continue
            sock.setblocking(True)
            sock.settimeout(5.0)  # an answer write never stalls the loop for long
            conn = Conn(sock)
            self.selector.register(sock, poller.EVENT_READ, (None, ("conn", conn)))

    def _on_conn(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        try:
            requests = conn.decoder.feed(data)
        except ValueError as e:
            conn.fail(f"bad request: {e}", 2)
            self._drop(conn)
            return
        for request in requests:
            self._handle(conn, request)

    def _drop(self, conn: Conn) -> None:
        conn.closed = True
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    # --- requests --------------------------------------------------------------------------------

    def _handle(self, conn: Conn, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "Version":
            conn.answer({"ok": True, "version": protocol.VERSION, "pid": os.getpid(),
                         "nodeOptions": list(self.options.argv)})
        elif op == "RunPod":
            self._run_pod(conn, request)
        elif op == "StopPod":
            self._stop_pod(conn, request)
        elif op == "ListPods":
            conn.answer({"ok": True, "pods": [{"namespace": ns, "name": name, "phase": p.run.supervisor.phase}
                                              for (ns, name), p in sorted(self.pods.items())]})
        else:
            conn.fail(f"unknown op {op!r}", 2)

    def _run_pod(self, conn: Conn, request: dict[str, Any]) -> None:
        if self.stopping:
            conn.fail("the node agent is stopping")
            return
        path = request.get("path")
        if not isinstance(path, str) or not path:
            conn.fail("RunPod: path must be a manifest file's path", 2)
            return
        self._submit(partial(self._prepare, conn, request))

    def _submit(self, work: Callable[[], None]) -> None:
        """To the one preparing thread (started with the first pod): one thread rather than one per
        request keeps glibc from making a malloc arena per thread (megabytes of the agent's PSS)."""
        if self.worker is None:
            import queue

            self.work_queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
            self.worker = threading.Thread(target=self._work, daemon=True, name="prepare")
            self.worker.start()
        self.work_queue.put(work)

    def _work(self) -> None:
        while True:
            self.work_queue.get()()

    def _prepare(self, conn: Conn, request: dict[str, Any]) -> None:
        from sandbox.supervisor.run import prepare

        self._prepared(conn, request, lambda: prepare(request["path"], self.layout, request.get("namespace"),
                                                      self.options.pull_options, cache=False,
                                                      node_name=self.node_name, max_pods=self.options.run.max_pods))

    def _prepared(self, conn: Any, request: dict[str, Any], read: Callable[[], PreparedPod]) -> None:
        """Worker thread: read, check and plan; the loop starts the result (main thread)."""
        from sandbox.pod.cgroups import plan
        from sandbox.pod.network import NetworkOptions, refuse_unpublishable_ports
        from sandbox.record import replace

        result: Any
        try:
            prepared = read()
            cgroups = plan(prepared.pod, self.options.cgroup_config)
            refuse_unpublishable_ports(prepared.pod, self.options.run.network or NetworkOptions())
            result = (prepared, replace(self.options.run, cgroups=cgroups))
        except BaseException as e:  # noqa: BLE001 - handed to the loop, answered there
            result = e
        with self.done_lock:
            self.done_work.append((conn, request, result))
        try:
            os.write(self.wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the loop wakes anyway

    def _start_prepared(self, conn: Conn, request: dict[str, Any], result: Any) -> None:
        from sandbox.errors import SandboxError
        from sandbox.supervisor.run import admit_to_node

        if isinstance(result, BaseException):
            if "static" in request:
                log.warning("static pod: %s", result)
            conn.fail(*failure(result))
            return
        prepared, run_options = result
        key = (prepared.namespace, prepared.name)
        if "static" in request and (key not in self.static_pods or self.static_pods[key].uid != request["static"]):
            return  # its manifest changed or went while it was read: the newer one is on its way
        running = self.pods.get(key)
        if running is not None and request.get("apply") and same_manifest(running.run.manifest, prepared.manifest):
            conn.answer({"ok": True, "unchanged": True, **pod_summary(running.run.supervisor.snapshot())})
            return
        if running is not None or self.stopping:
            conn.fail(f'pod "{prepared.name}" is already running in namespace "{prepared.namespace}"'
                      if not self.stopping else "the node agent is stopping")
            return
        try:  # again, here: the worker admitted it before the pods started since had records
            admit_to_node(prepared.pod, self.layout, self.options.run.max_pods)
        except SandboxError as e:
            if "static" in request:
                log.warning("static pod: %s", e)
            conn.fail(*failure(e))
            return
        pod = self._begin(prepared, run_options, conn, request)
        if pod is None:
            return
        if request.get("trace") in ("text", "json"):
            from sandbox import trace

            pod.tracer = trace.Tracer(lambda event: conn.answer({"trace": event}))
        try:
            self._traced(pod, partial(self._start_pod, pod))
        except Exception as e:  # noqa: BLE001 - as a foreground run: the pod is undone, the client told
            self._start_failed(pod, e)
            return
        if pod.run.supervisor.done() and not pod.ended:
            self._end(pod)

    @staticmethod
    def _start_pod(pod: AgentPod) -> None:
        pod.run.supervisor.start()
        pod.run.supervisor.flush()

    def _start_failed(self, pod: AgentPod, error: Exception) -> None:
        """The pod could not be started (a hostPort taken, a volume that cannot be made...): as
        `sandbox run` does, everything it made is undone and its record removed; the client gets
        the error (a bad input's code 2, else 1)."""
        log.warning("pod %s/%s: could not start: %s", *pod.key, error)
        waiters, pod.started_waiters = pod.started_waiters, []  # the tear-down's saves answer nobody
        self._end(pod, force=True, keep_record=False)
        for conn in waiters:
            conn.fail(*failure(error))

    def _begin(self, prepared: PreparedPod, run_options: RunOptions, conn: Conn,
               request: dict[str, Any]) -> AgentPod | None:
        from sandbox.errors import SandboxError
        from sandbox.supervisor.run import PodRun

        selector = OwnedSelector(self.selector)
        run = PodRun(prepared, run_options, selector=selector, owner="agent")
        run.exit_watch = self._exit_watch()
        pod = AgentPod(run, selector)
        selector.owner = pod
        run.on_save = lambda snapshot: self._on_save(pod, snapshot)
        try:
            run.begin()
        except SandboxError as e:
            conn.fail(str(e), 1)
            return None
        pod.started_waiters.append(conn)
        self.pods[pod.key] = pod
        return pod

    def _exit_watch(self) -> Any:
        """The one taskstats listener of every pod (opened with the first pod that runs)."""
        if self.exit_watch is None:
            from sandbox.process.exitwatch import ExitWatch

            self.exit_watch = ExitWatch.open()
            if self.exit_watch is not None:
                self.selector.register(self.exit_watch.fileno(), poller.EVENT_READ, (None, ("exitwatch", None)))
        return self.exit_watch

    def _on_save(self, pod: AgentPod, snapshot: dict[str, Any]) -> None:
        if pod.started_waiters and settled(snapshot):
            waiters, pod.started_waiters = pod.started_waiters, []
            answer = {"ok": True, **pod_summary(snapshot)}
            for conn in waiters:
                conn.answer(answer)
            pod.tracer = None  # the traced `run -d` has its answer

    # --- static pods ------------------------------------------------------------------------------

    def _poll_static(self) -> None:
        """Make the running static pods what the sources want: a removed manifest's pod is deleted
        (record and logs, as the kubelet deletes it), a changed one (a new UID) replaced once the
        old one has ended, a new one started."""
        assert self.static is not None
        changes = self.static.poll()
        ready = self.static.ready()
        # Re-adopted static pods are checked against the sources once every source has given its
        # whole set (the kubelet's sourcesReady), even when that set did not change: a manifest
        # removed while no agent ran leaves an empty directory as empty as the first poll saw it.
        if changes is None and (self.static_ready or not ready):
            return
        desired = changes.desired if changes is not None else self.static.desired()
        wanted = {(sp.namespace, sp.name): sp for sp in desired.values()}
        if ready:
            self.static_ready = True
            self._drop_adopted_static(wanted)
        for key, running in list(self.static_pods.items()):
            if wanted.get(key) is None or wanted[key].uid != running.uid:
                pod = self.pods.get(key)
                if pod is not None and not pod.ended:
                    log.info("static pod %s/%s: %s", *key, "removed" if key not in wanted else "changed: replacing")
                    pod.run.remove = True  # its record and logs go with it
                    self._guarded(pod, pod.run.supervisor.stop)
                elif self._delete_ended_record(key, running.uid):  # the kubelet deletes its mirror pod
                    log.info("static pod %s/%s: removed (it had ended)", *key)
                del self.static_pods[key]
        for key, sp in wanted.items():
            if key in self.static_pods:
                continue
            adopted = self.pods.get(key)
            if adopted is not None and adopted.run.prepared.uid == sp.uid:  # re-adopted after a restart
                self.static_pods[key] = sp
                continue
            if key not in self.pods and self._ended_record_uid(key) == sp.uid:
                # It ran to its end under an earlier agent: a terminal pod is not started again
                # (the kubelet's computePodActions creates no sandbox for it after a restart).
                self.static_pods[key] = sp
                continue
            if key in self.pods or key in self.static_waiting:
                self.static_waiting[key] = sp  # started once the pod holding the name has ended
                continue
            self._start_static(sp)
        for key in list(self.static_waiting):
            if key not in wanted:
                del self.static_waiting[key]

    def _ended_record_uid(self, key: tuple[str, str]) -> str | None:
        """The UID of the ended record that holds the pod name `key`, if any."""
        from sandbox.errors import SandboxError
        from sandbox.state.store import PodDir
        from sandbox.state.view import is_ended

        pod_dir = PodDir(self.layout.pod_state_dir(*key))
        try:
            state = pod_dir.read()
        except (OSError, ValueError, SandboxError):  # none, or unreadable: nothing ended to keep
            return None
        return str(state.get("uid") or "") if is_ended(state) else None

    def _delete_ended_record(self, key: tuple[str, str], uid: str) -> bool:
        """Remove the ended record of the static pod `uid` (and its logs), not a later pod's."""
        if self._ended_record_uid(key) != uid:
            return False
        from sandbox.pod.cleanup import delete_record
        from sandbox.state.store import PodDir

        layout = self.layout
        return delete_record(PodDir(layout.pod_state_dir(*key)), layout.containers, layout.logs, uid=uid)

    def _drop_adopted_static(self, wanted: dict[tuple[str, str], StaticPod]) -> None:
        """A re-adopted static pod whose manifest went (or changed) while no agent ran: as a
        removed manifest's pod, it is deleted (a changed one is then started anew)."""
        from sandbox.agent.staticpod import is_static

        for key, pod in list(self.pods.items()):
            if key in self.static_pods or pod.ended or pod.run.remove:
                continue
            annotations = pod.run.prepared.pod.metadata.annotations or {}
            if is_static(annotations) and (key not in wanted or wanted[key].uid != pod.run.prepared.uid):
                log.info("static pod %s/%s: its manifest changed while no agent ran: removing it", *key)
                pod.run.remove = True
                self._guarded(pod, pod.run.supervisor.stop)

    def _start_static(self, sp: StaticPod) -> None:
        key = (sp.namespace, sp.name)
        self.static_pods[key] = sp
        self._submit(partial(self._prepare_static, sp))

    def _prepare_static(self, sp: StaticPod) -> None:
        from sandbox.record import replace
        from sandbox.supervisor.run import prepare_accepted

        def read() -> PreparedPod:
            prepared = prepare_accepted(sp.pod, sp.key, self.layout, self.options.pull_options,
                                        max_pods=self.options.run.max_pods)
            return replace(prepared, uid=sp.uid, manifest=dict(sp.manifest))

        self._prepared(_NoClient((sp.namespace, sp.name)), {"static": sp.uid}, read)

    def _stop_pod(self, conn: Conn, request: dict[str, Any]) -> None:
        key = (str(request.get("namespace") or "default"), str(request.get("name") or ""))
        pod = self.pods.get(key)
        if pod is None:
            conn.fail(f'pod "{key[1]}" is not run by the node agent in namespace "{key[0]}"', 1)
            return
        pod.stopped_waiters.append(conn)
        grace = request.get("gracePeriodSeconds")  # `delete --grace-period/--now`: an int >= 0, else the pod's own
        grace = grace if isinstance(grace, int) and not isinstance(grace, bool) and grace >= 0 else None
        self._guarded(pod, lambda: pod.run.supervisor.stop(force=bool(request.get("force")), grace=grace))

    def _end(self, pod: AgentPod, *, force: bool = False, keep_record: bool = True) -> None:
        """The pod's loop is over (or the agent gives up on it): tear down, write the final record
        (or, `keep_record` False, remove it as a pod that never started), answer whoever waits."""
        if pod.ended:
            return
        # a traced `run -d` still waiting sees the tear-down too
        self._traced(pod, partial(self._end_now, pod, force, keep_record))

    def _end_now(self, pod: AgentPod, force: bool, keep_record: bool) -> None:
        pod.ended = True
        supervisor = pod.run.supervisor
        ended = keep_record
        try:
            if force and not supervisor.done():
                supervisor.stop(force=True)
            supervisor.finish()
        except Exception as e:  # noqa: BLE001 - the journal's undo in end() finishes the job
            log.error("pod %s/%s: tear-down: %s: %s", *pod.key, type(e).__name__, e)
            ended = False
        try:
            pod.run.end(ended)
        except Exception as e:  # noqa: BLE001
            log.error("pod %s/%s: final record: %s: %s", *pod.key, type(e).__name__, e)
        pod.selector.close()
        del self.pods[pod.key]
        self._reap_helpers()
        snapshot = supervisor.snapshot()
        error = supervisor.start_error
        for conn in pod.started_waiters:
            if error is not None:
                conn.fail(str(error), 1)
            else:
                conn.answer({"ok": True, **pod_summary(snapshot)})
        for conn in pod.stopped_waiters:
            conn.answer({"ok": True, **pod_summary(snapshot)})
        pod.started_waiters, pod.stopped_waiters = [], []
        waiting = self.static_waiting.pop(pod.key, None)
        if waiting is not None and not self.stopping:
            self._start_static(waiting)

    def _reap_helpers(self) -> None:
        """No zombie per bridge or cgroup parent removed: their removers (and hostports' socket
        holder) are the agent's children and outlive the pod by their grace (1-2 s), so what is
        not finished at the pod's end is collected by a timer, not at some later pod's end."""
        detached = sys.modules.get("sandbox.process.detached")
        if detached is None:
            return
        detached.reap()  # never blocks
        if detached.children and not self.reap_pending:
            self.reap_pending = True

            def again() -> None:
                self.reap_pending = False
                self._reap_helpers()

            self.timers.add(self.clock() + HELPER_REAP_INTERVAL, again)


def failure(error: BaseException) -> tuple[str, int]:
    """A refused or failed request's answer: the error's text and the CLI's exit code for it."""
    from sandbox.errors import SandboxError

    message = str(error) if isinstance(error, SandboxError) else f"{type(error).__name__}: {error}"
    return message, int(getattr(error, "exit_code", 1))


class _NoClient:
    """Where a static pod's answers go: nobody asked, so a failure is only logged."""

    closed = False

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key

    def answer(self, message: dict[str, Any]) -> None:
        pass

    def fail(self, error: str, code: int = 1) -> None:
        log.warning("static pod %s/%s: %s", *self.key, error)


def same_manifest(running: dict[str, Any], given: dict[str, Any]) -> bool:
    """`apply` of the manifest a pod runs: the same but for the UID the agent gave it."""
    def without_uid(manifest: dict[str, Any]) -> dict[str, Any]:
        metadata = {k: v for k, v in (manifest.get("metadata") or {}).items() if k != "uid"}
        return {**manifest, "metadata": metadata}

    return without_uid(running) == without_uid(given)


def settled(snapshot: dict[str, Any]) -> bool:
    """Every container is running or has failed (or the pod is over): `run -d` answers then."""
    if snapshot.get("finished") or _mount_failures(snapshot):
        return True  # FailedMount: nothing starts until a volume's ConfigMap or Secret is applied
    status = snapshot.get("status") or {}
    for cs in status.get("initContainerStatuses") or []:
        if _failed(cs):
            return True
    app = status.get("containerStatuses") or []
    return bool(app) and all("running" in (cs.get("state") or {}) or _failed(cs) for cs in app)


def _mount_failures(snapshot: dict[str, Any]) -> list[str]:
    """The FailedMount events' messages (a volume whose ConfigMap or Secret is missing)."""
    return [str(e.get("message", "")) for e in snapshot.get("events") or [] if e.get("reason") == "FailedMount"]


def _failed(cs: dict[str, Any]) -> bool:
    state = cs.get("state") or {}
    if "terminated" in state:
        return True
    return (state.get("waiting") or {}).get("reason") in FAILED_WAITING


def pod_summary(snapshot: dict[str, Any]) -> dict[str, Any]:
    status = snapshot.get("status") or {}
    containers = []
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = cs.get("state") or {}
        kind = next(iter(state), "unknown")
        detail = state.get(kind) or {}
        containers.append({"name": cs.get("name"), "state": kind, "reason": detail.get("reason", ""),
                           "message": detail.get("message", ""), "exitCode": detail.get("exitCode")})
    return {"namespace": snapshot.get("namespace"), "name": snapshot.get("name"), "uid": snapshot.get("uid"),
            "phase": status.get("phase"), "reason": status.get("reason", ""), "message": status.get("message", ""),
            "containers": containers, "mountFailures": _mount_failures(snapshot)}


class SystemdNotifier:
    """sd_notify(3) without libsystemd: datagrams to $NOTIFY_SOCKET (Type=notify, WatchdogSec)."""

    def __init__(self, address: str, watchdog_interval: float) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval = watchdog_interval
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls) -> SystemdNotifier | None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        if not address:
            return None
        interval = 0.0
        usec, pid = os.environ.get("WATCHDOG_USEC", ""), os.environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and (not pid or pid == str(os.getpid())):
            interval = int(usec) / 1e6
        return cls(address, interval)

    def send(self, state: str) -> None:
        try:
            self.sock.sendto(state.encode(), self.address)
        except OSError as e:
            if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                log.warning("agent: sd_notify: %s", os.strerror(e.errno or 0))
