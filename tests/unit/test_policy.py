"""Restart policy decisions (kubelet ShouldContainerBeRestarted)."""

from __future__ import annotations

import pytest

from sandbox.supervisor.policy import RestartPolicy, should_restart

A, O, N = RestartPolicy.ALWAYS, RestartPolicy.ON_FAILURE, RestartPolicy.NEVER


@pytest.mark.parametrize(
    ("policy", "exit_code", "sidecar", "expected"),
    [
        (A, 0, False, True),
        (A, 1, False, True),
        (A, 137, False, True),
        (O, 0, False, False),
        (O, 1, False, True),
        (O, 143, False, True),
        (O, -1, False, True),
        (N, 0, False, False),
        (N, 1, False, False),
        (N, 137, False, False),
        # Sidecars restart on any exit whatever the pod policy.
        (A, 0, True, True),
        (O, 0, True, True),
        (N, 0, True, True),
        (N, 2, True, True),
    ],
)
def test_policy_table(policy: str, exit_code: int, sidecar: bool, expected: bool) -> None:
    assert should_restart(policy, exit_code, sidecar=sidecar) is expected


@pytest.mark.parametrize("policy", RestartPolicy.ALL)
@pytest.mark.parametrize("sidecar", [False, True])
@pytest.mark.parametrize("exit_code", [0, 1])
def test_nothing_restarts_while_terminating(policy: str, sidecar: bool, exit_code: int) -> None:
    assert should_restart(policy, exit_code, sidecar=sidecar, terminating=True) is False


def test_constants_are_the_api_strings() -> None:
    assert RestartPolicy.ALL == ("Always", "OnFailure", "Never")


@pytest.mark.parametrize("policy", ["always", "", "Sometimes"])
def test_unknown_policy_is_rejected(policy: str) -> None:
    with pytest.raises(ValueError, match="unknown restart policy"):
        should_restart(policy, 0)
