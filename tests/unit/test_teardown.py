"""The tear-down registry (sandbox/pod/teardown.py): reverse order, idempotence, tolerance of what
is gone or was never made, replay of a killed runtime's journal, and path safety. No root: a
child process, temporary directories and a recording cgroup remover stand in for the kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.pod import teardown
from sandbox.pod.teardown import Cgroup, Directory, Journal, Mount, Process, undo_all
from sandbox.state.proc import ProcessRef


@pytest.fixture
def removed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Cgroup undo recorded instead of done, to observe the order."""
    seen: list[Path] = []

    def remover(path: Path) -> bool:
        seen.append(path)
        return True

    monkeypatch.setattr(teardown, "_cgroup_remover", remover)
    yield seen


def test_objects_are_undone_newest_first(tmp_path: Path, removed: list[Path]) -> None:
    journal = Journal(tmp_path)
    for name in ("pod", "pod/pause", "pod/c1", "pod/c2"):
        journal.add(Cgroup(Path("/sys/fs/cgroup/x") / name))
    journal.close()
    assert undo_all(journal) == []
    assert [p.name for p in removed] == ["c2", "c1", "pause", "pod"]


def test_a_directory_recorded_before_another_inside_it_is_removed_after_it(tmp_path: Path) -> None:
    base = tmp_path / "base"
    outer, inner = base / "pod", base / "pod" / "layer"
    journal = Journal(tmp_path)
    journal.add(Directory(outer, base))
    outer.mkdir(parents=True)
    journal.add(Directory(inner, base))
    inner.mkdir()
    (inner / "file").write_text("x")
    assert undo_all(journal) == []
    assert base.is_dir() and not outer.exists()


def test_undo_is_idempotent_and_tolerates_objects_never_made(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    journal = Journal(tmp_path)
    journal.add(Directory(base / "never-made", base))
    journal.add(Mount(tmp_path / "not-a-mount"))
    journal.add(Process(pid=2**22 + 1, start_time=1))  # beyond pid_max: no such process
    journal.add(Cgroup(tmp_path / "no-cgroup"))
    made = base / "made"
    journal.add(Directory(made, base))
    made.mkdir()
    assert undo_all(journal) == []
    assert not made.exists()
    assert undo_all(journal) == []  # the second run finds everything gone


def test_a_process_is_killed_only_while_its_start_time_matches(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ref = ProcessRef.of(child.pid)
        assert ref is not None
        journal = Journal(tmp_path)
        journal.add(Process(ref.pid, ref.start_time + 1))  # a reused pid: another process
        assert undo_all(journal) == []
        assert child.poll() is None
        journal.add(Process(ref.pid, ref.start_time))
        assert undo_all(journal) == []
        assert child.wait(timeout=5) == -9
    finally:
        child.kill()
        child.wait()


def test_a_journal_left_by_a_killed_runtime_is_replayed(tmp_path: Path) -> None:
    """The runtime dies between recording and creating, and after creating: a new Journal over
    the same directory (another process, e.g. `sandbox gc`) undoes what exists."""
    state_dir, base = tmp_path / "state", tmp_path / "lib"
    state_dir.mkdir()
    base.mkdir()
    journal = Journal(state_dir)
    journal.add(Directory(base / "layer-1", base))
    (base / "layer-1" / "upper").mkdir(parents=True)
    journal.add(Directory(base / "layer-2", base))  # killed before making it
    del journal  # no close: the fd dies with the runtime, every line is already written
    lines = (state_dir / teardown.JOURNAL_FILE).read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["directory", "directory"]
    assert undo_all(Journal(state_dir), [base, state_dir]) == []
    assert list(base.iterdir()) == []


def test_unreadable_lines_are_reported_and_the_rest_undone(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "d").mkdir(parents=True)
    journal = Journal(tmp_path)
    journal.add(Directory(base / "d", base))
    journal.close()
    with open(journal.path, "a") as f:
        f.write('{"kind": "directory", "path": "relative", "base": "/"}\n{not json\n')
    failures = undo_all(journal)
    assert len(failures) == 2 and all("unreadable record" in f for f in failures)
    assert not (base / "d").exists()


def test_a_symlink_in_place_of_a_directory_is_removed_not_followed(tmp_path: Path) -> None:
    base, outside = tmp_path / "base", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (outside / "keep").write_text("x")
    (base / "layer").symlink_to(outside)
    journal = Journal(tmp_path)
    journal.add(Directory(base / "layer", base))
    assert undo_all(journal) == []
    assert not (base / "layer").is_symlink() and (outside / "keep").exists()


def test_a_symlink_on_the_way_down_is_refused(tmp_path: Path) -> None:
    base, outside = tmp_path / "base", tmp_path / "outside"
    (outside / "victim").mkdir(parents=True)
    base.mkdir()
    (base / "pod").symlink_to(outside)
    journal = Journal(tmp_path)
    journal.add(Directory(base / "pod" / "victim", base))
    failures = undo_all(journal)
    assert len(failures) == 1 and "symlink" in failures[0]
    assert (outside / "victim").is_dir()


def test_a_symlink_inside_a_removed_tree_is_not_followed(tmp_path: Path) -> None:
    base, outside = tmp_path / "base", tmp_path / "outside"
    (base / "volume").mkdir(parents=True)
    outside.mkdir()
    (outside / "keep").write_text("x")
    (base / "volume" / "escape").symlink_to(outside)
    journal = Journal(tmp_path)
    journal.add(Directory(base / "volume", base))
    assert undo_all(journal) == []
    assert (outside / "keep").exists() and not (base / "volume").exists()


@pytest.mark.parametrize("path", ["{base}", "{base}/../other", "{tmp}/other"])
def test_a_directory_outside_or_at_its_base_is_refused(tmp_path: Path, path: str) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (tmp_path / "other").mkdir()
    journal = Journal(tmp_path)
    journal.add(Directory(Path(path.format(base=base, tmp=tmp_path)), base))
    assert len(undo_all(journal)) == 1
    assert base.is_dir() and (tmp_path / "other").is_dir()


def test_a_directory_under_a_base_the_caller_does_not_allow_is_left(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "d").mkdir(parents=True)
    journal = Journal(tmp_path)
    journal.add(Directory(base / "d", base))
    failures = undo_all(journal, [tmp_path / "elsewhere"])
    assert len(failures) == 1 and (base / "d").is_dir()


def test_a_recorded_cgroup_is_removed_leaves_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry's cgroup undo (reclaim.kill_and_remove) on a tree of plain directories shaped
    like a v2 host's `<root>/<parent>/<pod>`: children before parents; the parent kept, and
    handed to its remover (reclaim.hand_over) after each pod."""
    from sandbox.cgroups import reclaim

    pod = tmp_path / "sandbox" / "pod"
    for leaf in ("pause", "c1/inner", "c2"):
        (pod / leaf).mkdir(parents=True)
    other = pod.parent / "other"
    other.mkdir()
    order: list[str] = []
    real_rmdir = os.rmdir

    def rmdir(path: str) -> None:
        real_rmdir(path)  # fails (ENOTEMPTY) if a parent came before its children
        order.append(os.path.relpath(path, pod.parent))

    monkeypatch.setattr(os, "rmdir", rmdir)
    monkeypatch.setattr(teardown, "_cgroup_remover", lambda path: reclaim.kill_and_remove(path, root=tmp_path))
    handed: list[tuple[str, str]] = []
    monkeypatch.setattr(reclaim, "_hand_over", lambda parent, root: handed.append((parent, root)))
    journal = Journal(tmp_path)
    journal.add(Cgroup(pod))
    assert undo_all(journal) == []
    assert not pod.exists() and pod.parent.is_dir()
    assert order.index("pod/c1/inner") < order.index("pod/c1") < order.index("pod")
    assert order[-1] == "pod"
    assert reclaim.kill_and_remove(pod, root=tmp_path) is False  # already gone
    with pytest.raises(OSError):  # the parent cgroup every pod shares is never removed this way
        reclaim.kill_and_remove(pod.parent, root=tmp_path)
    assert reclaim.kill_and_remove(other, root=tmp_path) is True and pod.parent.is_dir()
    assert handed == [(str(pod.parent), str(tmp_path))] * 2


def test_a_failed_undo_is_reported_and_the_rest_still_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def stuck(path: Path) -> bool:
        raise OSError(16, "Device or resource busy", str(path))

    monkeypatch.setattr(teardown, "_cgroup_remover", stuck)
    base = tmp_path / "base"
    (base / "d").mkdir(parents=True)
    journal = Journal(tmp_path)
    journal.add(Directory(base / "d", base))
    journal.add(Cgroup(tmp_path / "cg"))
    failures = undo_all(journal)
    assert len(failures) == 1 and "busy" in failures[0]
    assert not (base / "d").exists()
