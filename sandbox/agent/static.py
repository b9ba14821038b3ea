"""Static pods: the kubelet's file and HTTP pod sources (pkg/kubelet/config file.go,
file_linux.go, http.go, common.go), for the agent's loop.

The manifest path: sandbox/agent/manifest_dir.py; the manifest URL: sandbox/agent/manifest_url.py;
a static pod's identity and decoding: sandbox/agent/staticpod.py.
"""

from __future__ import annotations

import time

from sandbox.agent.manifest_dir import _PathSource
from sandbox.agent.manifest_url import _UrlSource, fetch
from sandbox.agent.staticpod import (
    CONFIG_HASH,
    CONFIG_MIRROR,
    CONFIG_SEEN,
    CONFIG_SOURCE,
    SOURCE_FILE,
    SOURCE_HTTP,
    Changes,
    Reporter,
    StaticPod,
    delete_message,
    file_pod,
    is_static,
    url_pods,
)

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.agent.kubeletconfig import AgentConfig

# --- both sources ---------------------------------------------------------------------------------


class StaticPods:
    """The static pods of the node: the manifest path and the manifest URL of `config`.

    The agent selects `fileno()` for reading next to its own fds, and calls `poll()` when it is
    readable or when `next_deadline()` (time.monotonic, or the injected clock) has passed; the
    first deadline is now, for the first listing. `report` gets one line per new problem (a file or
    the URL that fails, a duplicate pod name, warned fields), never twice in a row for the same."""

    def __init__(self, config: AgentConfig, node_name: str, report: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        import select

        self._clock = clock
        self._reporter = Reporter(report)
        self._seen: dict[str, str] = {}  # uid -> config.seen
        self._desired: dict[str, StaticPod] = {}
        self._epoll = select.epoll()
        now = clock()
        self._path = self._url = None
        try:
            if config.static_pod_path:
                self._path = _PathSource(config.static_pod_path, node_name, config.file_check_frequency,
                                         self._reporter, self._seen_at, now)
                if self._path.inotify is not None:
                    self._epoll.register(self._path.inotify.fd, select.EPOLLIN)
            if config.manifest_url:
                self._url = _UrlSource(config.manifest_url, config.manifest_url_header, node_name,
                                       config.http_check_frequency, self._reporter, self._seen_at, now)
                self._epoll.register(self._url.wake_r, select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        """An fd that turns readable when a source has news (inotify events, a finished fetch);
        -1 when neither source is configured."""
        return self._epoll.fileno() if self._path or self._url else -1

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self._path.next_deadline() if self._path else None,
                                 self._url.next_deadline() if self._url else None) if d is not None]
        return min(deadlines) if deadlines else None

    def poll(self) -> Changes | None:
        """Take the sources' news and due work; the new desired set if it differs from the last."""
        now = self._clock()
        if self._path:
            self._path.tick(now)
        if self._url:
            self._url.tick(now)
        desired = self._merge()
        old, self._desired = self._desired, desired
        for uid in set(self._seen) - {p.uid for p in desired.values()}:
            del self._seen[uid]
        added = tuple(k for k in desired if k not in old)
        updated = tuple(k for k in desired if k in old and old[k].manifest != desired[k].manifest)
        removed = tuple(k for k in old if k not in desired)
        if not (added or updated or removed):
            return None
        return Changes(dict(desired), added, updated, removed)

    def ready(self) -> bool:
        """Every source has given its whole set once (the kubelet's sourcesReady.AllReady): only
        then may a pod that no source wants be taken for one whose manifest went."""
        return all(source.listed for source in (self._path, self._url) if source is not None)

    def desired(self) -> dict[str, StaticPod]:
        """The desired set of the last poll."""
        return dict(self._desired)

    def problems(self) -> dict[str, str]:
        """What is wrong now, by file path or URL (what was last reported for it)."""
        return dict(self._reporter.current)

    def close(self) -> None:
        for source in (self._path, self._url):
            if source is not None:
                source.close()
        self._epoll.close()

    def _merge(self) -> dict[str, StaticPod]:
        """Files by path, then the URL's pods; a namespace/name already taken is reported, not run."""
        out: dict[str, StaticPod] = {}
        owners: dict[str, str] = {}
        pods = sorted(self._path.pods.values(), key=lambda p: p.key) if self._path else []
        pods += list(self._url.pods.values()) if self._url else []
        duplicates: set[str] = set()
        for pod in pods:
            full = f"{pod.namespace}/{pod.name}"
            if full in owners:
                duplicates.add(f"duplicate:{pod.key}")
                self._reporter.set(f"duplicate:{pod.key}", f"{pod.key}: pod {full} is already defined by "
                                                           f"{owners[full]}: ignored")
            else:
                owners[full] = pod.key
                out[pod.key] = pod
        for key in [k for k in self._reporter.current if k.startswith("duplicate:") and k not in duplicates]:
            self._reporter.set(key, None)
        return out

    def _seen_at(self, uid: str) -> str:
        """config.seen: when this UID was first seen (kubetypes.NewTimestamp, RFC 3339 with ns)."""
        stamp = self._seen.get(uid)
        if stamp is None:
            ns = time.time_ns()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"
            self._seen[uid] = stamp
        return stamp


__all__ = ["CONFIG_HASH", "CONFIG_MIRROR", "CONFIG_SEEN", "CONFIG_SOURCE", "Changes", "StaticPod", "StaticPods",
           "SOURCE_FILE", "SOURCE_HTTP", "delete_message", "fetch", "file_pod", "is_static", "url_pods"]
