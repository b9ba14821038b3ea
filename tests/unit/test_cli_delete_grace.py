"""`delete --grace-period/--now/--force`: kubectl's rules for the grace period a delete gives
(its delete command's Complete and Validate), and the refusals before anything is looked up."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cli import main
from sandbox.cli.delete import grace_period
from sandbox.errors import UsageError


@pytest.mark.parametrize(("given", "now", "force", "expected"), [
    (-1, False, False, None),  # not given: each pod's own terminationGracePeriodSeconds
    (-5, False, False, None),  # negative: ignored
    (7, False, False, 7),
    (1, False, False, 1),
    (0, False, False, 1),  # 0 without --force: kubectl's guard makes it 1
    (-1, True, False, 1),  # --now
    (-1, False, True, 0),  # --force alone: immediate
    (0, False, True, 0),
])
def test_the_grace_period_a_delete_gives(given: int, now: bool, force: bool, expected: int | None) -> None:
    assert grace_period(given, now=now, force=force) == expected


@pytest.mark.parametrize(("given", "now", "force", "message"), [
    (5, True, False, "--now and --grace-period cannot be specified together"),
    (0, True, False, "--now and --grace-period cannot be specified together"),
    (3, False, True, "--force and --grace-period greater than 0 cannot be specified together"),
    (-1, True, True, "--force and --grace-period greater than 0 cannot be specified together"),
])
def test_contradicting_options_are_refused(given: int, now: bool, force: bool, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        grace_period(given, now=now, force=force)


def test_force_warns_that_it_does_not_wait(capsys: pytest.CaptureFixture[str]) -> None:
    grace_period(-1, now=False, force=True)
    assert "Immediate deletion does not wait" in capsys.readouterr().err


def test_refused_before_any_pod_is_looked_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--root", str(tmp_path), "delete", "pod", "nothere", "--now", "--grace-period=2"])
    assert code == 2
    assert "--now and --grace-period cannot be specified together" in capsys.readouterr().err
