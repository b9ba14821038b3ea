"""Restart policy: whether an exited container is started again (`ShouldContainerBeRestarted`)."""

from __future__ import annotations


class RestartPolicy:
    """The values of `spec.restartPolicy` (and of `initContainers[].restartPolicy` for sidecars)."""

    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"
    ALL = (ALWAYS, ON_FAILURE, NEVER)  # the API server's order in "supported values"


def should_restart(policy: str, exit_code: int, *, sidecar: bool = False, terminating: bool = False) -> bool:
    """Whether a container that exited with `exit_code` is restarted (after its back-off).

    One pod policy covers app and plain init containers; a sidecar (an init container with
    `restartPolicy: Always`) restarts on any exit whatever the pod policy. Nothing is restarted
    once the pod is being deleted or torn down (`terminating`): the kubelet checks the deletion
    timestamp first.
    """
    if policy not in RestartPolicy.ALL:
        raise ValueError(
            f"unknown restart policy {policy!r}: supported values: {', '.join(RestartPolicy.ALL)}"
        )
    if terminating:
        return False
    if sidecar or policy == RestartPolicy.ALWAYS:
        return True
    if policy == RestartPolicy.ON_FAILURE:
        return exit_code != 0
    return False
