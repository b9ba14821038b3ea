"""Exception hierarchy. Only `sandbox.cli` catches these, prints one line and picks the exit code.

Input errors (a bad manifest or argument) exit 2; everything that goes wrong while running exits 1.
This module imports nothing from `sandbox`.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every error the runtime reports to a user."""

    exit_code = 1


class FieldError:
    """One problem in a manifest, in the API server's `<path>: <type>: <detail>` style.

    A plain slotted class: this module imports nothing, not even sandbox.record."""

    __slots__ = ("detail", "path")

    def __init__(self, path: str, detail: str) -> None:
        self.path = path  # "spec.containers[1].ports[0].containerPort"
        self.detail = detail  # "Invalid value: 70000: must be between 1 and 65535, inclusive"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldError):
            return NotImplemented
        return (self.path, self.detail) == (other.path, other.detail)

    def __hash__(self) -> int:
        return hash((self.path, self.detail))

    def __repr__(self) -> str:
        return f"FieldError(path={self.path!r}, detail={self.detail!r})"

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


class SpecError(SandboxError):
    """A manifest that cannot be run; carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, errors: list[FieldError], source: str = "") -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(f"{prefix}{e}" for e in self.errors)


class UsageError(SandboxError):
    """A bad command-line argument (unknown pod, bad duration, ...)."""

    exit_code = 2


class ImageError(SandboxError):
    """An image that is missing from the store or cannot be read."""


class PauseStartError(SandboxError):
    """Pause could not set its namespaces up: the pod's start fails (not a container's, which a
    ContainerStartError is). Worded as the ContainerStartError it carries."""

    def __init__(self, cause: SandboxError) -> None:
        self.cause = cause
        self.exit_code = cause.exit_code
        super().__init__(str(cause))


class ContainerStartError(SandboxError):
    """The native child could not set a container up or exec its command.

    `reason` is the Kubernetes waiting/terminated reason: CreateContainerError for a setup stage,
    ContainerCannotRun when execve itself failed.
    """

    def __init__(self, reason: str, op: str, errno_: int, path: str, container: str = "") -> None:
        self.reason = reason
        self.op = op
        self.errno = errno_
        self.path = path
        self.container = container
        super().__init__(self.describe())

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        import os

        where = f" {self.path!r}" if self.path else ""
        who = f"container {self.container!r}: " if self.container else ""
        code = _errno_name(self.errno)
        return f"{who}{self.reason}: {self.op}{where}: {os.strerror(self.errno)} ({code})"


# native/mounts.c's ops (sbx_fail) when it cannot make, open or clone a volume's subPath beneath it
# (making a missing one, the kubelet's SafeMakeDir, which its makeMounts words apart from the rest)
SUBPATH_CREATE_OPS = frozenset({"create subPath", "create subPath (open)", "create subPath (open parent)"})
SUBPATH_OPS = frozenset({"open subPath", "clone subPath"}) | SUBPATH_CREATE_OPS


class SubPathError(ContainerStartError):
    """A volume's subPath the native child could not open (or make) beneath its volume: a link out
    of it (EXDEV), a file where a directory is needed. `path` is the subPath or its failed prefix."""


def spawn_failure(exec_stage: bool, op: str, errno_: int, path: str) -> ContainerStartError:
    """A spawn stage's failure record (struct sbx_err, read from the spawn channel or relayed by
    a shim) as its error: ContainerCannotRun when execve failed, else CreateContainerError; a
    subPath's is a SubPathError, so that callers decide by type, not by the op's wording."""
    cls = SubPathError if op in SUBPATH_OPS else ContainerStartError
    return cls("ContainerCannotRun" if exec_stage else "CreateContainerError", op, errno_, path)


class ContainerConfigError(ContainerStartError):
    """The container's configuration cannot be built from the spec and its image (the kubelet's
    CreateContainerConfigError: the runAsNonRoot check; containerd's CreateContainerError: an
    image user that is not in the image's /etc/passwd). The message is the whole description."""

    def __init__(self, message: str, reason: str = "CreateContainerConfigError", container: str = "") -> None:
        self.message = message
        super().__init__(reason, message, 22, "", container)  # EINVAL

    def describe(self) -> str:
        return self.message


class ImagePullFailed(ContainerConfigError):
    """The container's image could not be pulled (the kubelet's ErrImagePull): the container
    waits and the pull is retried with a back-off (ImagePullBackOff)."""

    def __init__(self, image: str, message: str, container: str = "") -> None:
        self.image = image
        super().__init__(message, "ErrImagePull", container)


class StateError(SandboxError):
    """Runtime state under the state directory is missing, locked or unreadable."""


class NotFoundError(StateError):
    """No pod (or container) of that name."""


def _errno_name(code: int) -> str:
    import errno

    return errno.errorcode.get(code, str(code))
