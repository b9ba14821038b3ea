"""Termination messages (`terminationMessagePath` / `terminationMessagePolicy`), as the kubelet
handles them in kuberuntime_container.go (`getTerminationMessage`,
`readLastStringFromContainerLogs`) and the status manager (`normalizeStatus`).

Before a container starts, the kubelet creates an empty, world-writable file for it under the pod
directory and bind-mounts it at `terminationMessagePath` (default /dev/termination-log), so a
non-root process can write it. After the container exits it keeps the last 4096 bytes; with
`FallbackToLogsOnError`, an empty file and a non-zero exit code fall back to the tail of the
container's log.
"""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.errors import SandboxError

FILE = "File"
FALLBACK_TO_LOGS_ON_ERROR = "FallbackToLogsOnError"
POLICIES = (FILE, FALLBACK_TO_LOGS_ON_ERROR)
MAX_MESSAGE_BYTES = 4096  # MaxContainerTerminationMessageLength
MAX_LOG_LINES = 80  # MaxContainerTerminationMessageLogLines
MAX_LOG_BYTES = 2048  # MaxContainerTerminationMessageLogLength
MAX_POD_MESSAGE_BYTES = 12 * 1024  # MaxPodTerminationMessageLogLength, shared by all containers


class TerminationMessageError(SandboxError):
    """The termination message file could not be created (maps to CreateContainerConfigError)."""

    def __init__(self, op: str, path: Path, error: OSError) -> None:
        self.op = op
        self.path = path
        super().__init__(f"{op} {str(path)!r}: {error.strerror or error}")


def prepare_message_file(pod_dir: Path, container: str) -> Path:
    """Create `<pod_dir>/containers/<container>/<8 hex>`, empty and mode 0666, and return it.

    A new random name per container instance, like the kubelet's `%08x` of rand.Uint32(), so a
    restarted container never sees its predecessor's message.
    """
    if not container or "/" in container or container in (".", ".."):
        raise ValueError(f"invalid container name {container!r}")
    directory = pod_dir / "containers" / container
    try:
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as e:
        raise TerminationMessageError("create directory", directory, e) from e
    while True:
        path = directory / os.urandom(4).hex()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            raise TerminationMessageError("create termination message file", path, e) from e
        try:
            os.fchmod(fd, 0o666)  # the umask must not take away the container's write access
        finally:
            os.close(fd)
        return path


def read_termination_message(path: Path, policy: str, exit_code: int, log_path: Path | None) -> str:
    """The message for a terminated container's status.

    `log_path` is the container instance's CRI log; pass None for a container that never ran
    (StartError / ContainerCannotRun), which the kubelet never falls back to logs for. Read
    errors become the message itself, as in the kubelet, rather than failing the status update.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown terminationMessagePolicy {policy!r}: expected File or FallbackToLogsOnError")
    fallback = policy == FALLBACK_TO_LOGS_ON_ERROR and exit_code != 0 and log_path is not None
    try:
        data = _read_tail(path, MAX_MESSAGE_BYTES)
    except FileNotFoundError:
        data = b""
    except OSError as e:
        return f"Error on reading termination log {path}: {e.strerror or e}"
    if data or not fallback or log_path is None:
        return data.decode("utf-8", errors="replace")
    return read_log_tail(log_path)


def read_log_tail(log_path: Path) -> str:
    """The last 80 lines of a CRI log, both streams as written, cut to the last 2048 bytes."""
    from collections import deque

    from sandbox.logs.cri import iter_log_lines

    try:
        lines = deque((line for _, line in iter_log_lines(log_path)), maxlen=MAX_LOG_LINES)
    except OSError as e:
        return f"Error on reading termination message from logs: {e.strerror or e}"
    tail = b"".join(lines)[-MAX_LOG_BYTES:]
    return tail.decode("utf-8", errors="replace")


def limit_for_pod(message: str, container_count: int) -> str:
    """The status manager's cut: 12 KiB split evenly over every container status of the pod
    (app, init and ephemeral), keeping the start of each message; counted in bytes."""
    per_container = MAX_POD_MESSAGE_BYTES // max(container_count, 1)
    data = message.encode()
    if len(data) <= per_container:
        return message
    # Go slices bytes; a character cut in half becomes U+FFFD when the status is serialised.
    return data[:per_container].decode("utf-8", errors="replace")


def _read_tail(path: Path, limit: int) -> bytes:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            f.seek(size - limit)
        return f.read(limit)
