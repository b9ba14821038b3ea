"""Container log retention (issue 7): the kubelet's naming and retention rules as pure functions,
the size-rotating writer (never a record cut across files), instance pruning, and the readers
that read across rotated files, once or following a writer that keeps rotating."""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.logs.cri import format_record, parse_record
from sandbox.logs.reader import container_instances, follow, open_instance, read_instance
from sandbox.logs.rotation import (
    DEFAULT_MAX_FILES,
    DEFAULT_MAX_SIZE,
    RotationPolicy,
    excess_rotated,
    instance_files,
    instance_of,
    instances,
    parse_max_files,
    parse_max_size,
    rotated_files,
    rotated_name,
    stale_files,
)
from sandbox.logs.stream import ContainerLog, LogFile, prune_instances

T0 = 1795364682  # 2026-11-22T16:24:42Z


@pytest.fixture
def utc() -> Iterator[None]:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


# --- options -------------------------------------------------------------------------------------


def test_defaults_are_the_kubelets() -> None:
    assert (DEFAULT_MAX_SIZE, DEFAULT_MAX_FILES) == (10 * 1024 * 1024, 5)
    assert RotationPolicy() == RotationPolicy(10 * 1024 * 1024, 5)


@pytest.mark.parametrize("text, size", [
    ("10Mi", 10 * 2**20), ("1Ki", 1024), ("500k", 500_000), ("1M", 10**6), ("1e6", 10**6),
    ("1.5Ki", 1536), ("2048", 2048), ("1000m", 1), ("-1", -1), ("-10Mi", -10 * 2**20), (" 1Gi ", 2**30),
    ("16Ei", 2**63 - 1),  # capped as every quantity is (spec/quantity.py MAX_VALUE)
])
def test_max_size_is_a_quantity_of_bytes(text: str, size: int) -> None:
    assert parse_max_size(text) == size


@pytest.mark.parametrize("text, why", [
    ("ten", "is not a quantity"), ("10MB", "is not a quantity"), ("10 Mi", "is not a quantity"),
    ("10mi", "is not a quantity"), ("", "is not a quantity"), ("1500m", "whole number of bytes"),
    ("0.5", "whole number of bytes"), ("0", "must be positive"), ("0Mi", "must be positive"),
])
def test_max_size_errors_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_max_size(text)


def test_max_files_at_least_two() -> None:
    assert parse_max_files("2") == 2 and parse_max_files("5") == 5
    for bad, why in (("1", "at least 2"), ("0", "at least 2"), ("-3", "at least 2"), ("five", "not an integer")):
        with pytest.raises(ValueError, match=why):
            parse_max_files(bad)
    with pytest.raises(ValueError, match="at least 2"):
        RotationPolicy(1024, 1)


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, instance", [
    ("0.log", 0), ("12.log", 12), ("3.log.20261122-162442", 3), ("3.log.20261122-162442.gz", 3),
    ("3.log.20261122-162442.tmp", 3), ("3.logx", None), ("x.log", None), ("03.log", None), ("-1.log", None),
    ("3", None), ("log", None), (".log", None), ("٣.log", None),
])
def test_instance_of(name: str, instance: int | None) -> None:
    assert instance_of(name) == instance


def test_rotated_files_in_name_order_and_leftovers() -> None:
    names = ["2.log", "2.log.20261122-162450", "2.log.20261122-162442.gz", "2.log.20261122-162445",
             "2.log.20261122-162445.gz", "2.log.20261122-162446.tmp", "12.log.20261122-162440", "1.log"]
    in_use, unused = rotated_files("2.log", names)
    # an uncompressed file whose .gz exists is the leftover of an interrupted compression
    assert in_use == ["2.log.20261122-162442.gz", "2.log.20261122-162445.gz", "2.log.20261122-162450"]
    assert unused == ["2.log.20261122-162445", "2.log.20261122-162446.tmp"]
    assert instance_files(names, 2) == [*in_use, "2.log"]
    assert instance_files(names, 1) == ["1.log"]
    assert instance_files(["1.log.20261122-162442"], 1) == ["1.log.20261122-162442"]  # between rename and open
    assert instances(names) == [1, 2, 12]


def test_stale_files_keep_the_starting_and_the_previous_instance() -> None:
    names = ["0.log", "1.log", "1.log.20261122-162442", "2.log", "2.log.20261122-162442", "2.log.x.gz",
             "3.log", "notes.txt", "7.log"]
    assert stale_files(names, 3) == ["0.log", "1.log", "1.log.20261122-162442", "7.log"]
    assert stale_files(names, 0) == sorted(n for n in names if n not in ("0.log", "notes.txt"))
    assert stale_files([], 5) == []


@pytest.mark.parametrize("rotated, max_files, removed", [
    ([], 5, []),
    (["a", "b", "c"], 5, []),  # 3 rotated + the one about to be + the new current = 5
    (["a", "b", "c", "d"], 5, ["a"]),
    (["d", "a", "c", "b", "e"], 5, ["a", "b"]),
    (["a"], 2, ["a"]),  # two files: the current and the one rotated now
    (["a", "b"], 3, ["a"]),
])
def test_excess_rotated_leaves_room_for_the_rotation(rotated: list[str], max_files: int, removed: list[str]) -> None:
    assert excess_rotated(rotated, max_files) == removed


def test_rotated_name_is_the_kubelets_local_timestamp(utc: None) -> None:
    assert rotated_name("4.log", [], T0) == "4.log.20261122-162442"
    assert rotated_name("4.log", ["4.log.20261122-162441"], T0 + 0.5) == "4.log.20261122-162442"
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    assert rotated_name("4.log", [], T0) == "4.log.20261122-215442"


def test_rotated_name_never_collides_and_sorts_after_the_newest(utc: None) -> None:
    taken = ["4.log.20261122-162442"]
    assert rotated_name("4.log", taken, T0) == "4.log.20261122-162443"
    taken = ["4.log.20261122-162442.gz", "4.log.20261122-162459"]
    assert rotated_name("4.log", taken, T0) == "4.log.20261122-162500"
    assert rotated_name("4.log", ["4.log.20261231-235959"], T0) == "4.log.20270101-000000"
    assert rotated_name("4.log", ["4.log.20280228-235959"], T0) == "4.log.20280229-000000"  # leap year
    assert rotated_name("4.log", ["4.log.20270228-235959"], T0) == "4.log.20270301-000000"
    assert rotated_name("4.log", ["4.log.garbage"], T0) == "4.log.20261122-162442"  # foreign names ignored
    # the clock went back: still after the newest
    assert rotated_name("4.log", ["4.log.20261122-170000"], T0) == "4.log.20261122-170001"


# --- the writer ----------------------------------------------------------------------------------


def records(start: int, count: int, size: int = 40) -> list[bytes]:
    return [format_record("stdout", "F", f"{i:08d}".encode().ljust(size, b"."), T0 * 10**9) for i in range(start, start + count)]


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


def files_of(directory: Path, instance: int = 0) -> list[Path]:
    return [directory / n for n in instance_files(os.listdir(directory), instance)]


def test_rotates_before_crossing_the_limit_between_whole_records(tmp_path: Path, utc: None) -> None:
    clock = Clock()
    f = LogFile(tmp_path / "c" / "0.log", RotationPolicy(1000, 3), wall=clock)
    recs = records(0, 100)  # each record: 71 bytes
    size = len(recs[0])
    for i in range(0, 100, 7):
        f.write(recs[i : i + 7])
        clock.now += 0.3
    f.close()
    paths = files_of(tmp_path / "c")
    assert len(paths) == 3
    assert all(p.stat().st_size <= 1000 and p.stat().st_size % size == 0 for p in paths)
    assert all(p.stat().st_size == (1000 // size) * size for p in paths[:-1])  # as full as whole records allow
    data = b"".join(p.read_bytes() for p in paths)
    assert b"".join(recs).endswith(data) and data.endswith(recs[-1])
    assert paths[-1].name == "0.log" and all(p.name.startswith("0.log.2026") for p in paths[:-1])
    assert f.rotations == 100 * size // ((1000 // size) * size)


def test_one_record_larger_than_the_limit_gets_a_file_of_its_own(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "0.log", RotationPolicy(100, 5))
    small, big = records(0, 1)[0], records(1, 1, size=500)[0]
    f.write([small, big, small])
    f.close()
    assert [p.read_bytes() for p in files_of(tmp_path)] == [small, big, small]


def test_negative_size_never_rotates(tmp_path: Path) -> None:
    f = LogFile(tmp_path / "0.log", RotationPolicy(-1, 2))
    f.write(records(0, 1000))
    f.close()
    assert os.listdir(tmp_path) == ["0.log"]


def test_appends_to_a_file_left_by_a_previous_run_and_counts_its_size(tmp_path: Path) -> None:
    size = len(records(0, 1)[0])
    (tmp_path / "0.log").write_bytes(b"".join(records(0, 10)))
    f = LogFile(tmp_path / "0.log", RotationPolicy(11 * size, 5))
    assert f.size == 10 * size
    f.write(records(10, 2))
    f.close()
    assert [p.stat().st_size for p in files_of(tmp_path)] == [11 * size, size]


def test_rotation_removes_leftovers_and_old_files_oldest_first(tmp_path: Path, utc: None) -> None:
    for name in ("0.log.20200101-000000.gz", "0.log.20200101-000001", "0.log.20200101-000001.gz",
                 "0.log.20200101-000002.tmp", "0.log.20200101-000003"):
        (tmp_path / name).write_bytes(b"old\n")
    f = LogFile(tmp_path / "0.log", RotationPolicy(100, 3), wall=Clock())
    f.write(records(0, 2))
    f.close()
    assert sorted(os.listdir(tmp_path)) == ["0.log", "0.log.20200101-000003", "0.log.20261122-162442"]


def test_a_failing_rotation_keeps_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = LogFile(tmp_path / "0.log", RotationPolicy(100, 3))

    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "rename", refuse)
    f.write(records(0, 5))
    f.close()
    assert os.listdir(tmp_path) == ["0.log"] and (tmp_path / "0.log").stat().st_size == 5 * len(records(0, 1)[0])
    assert f.broken_rotation


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(st.integers(min_value=0, max_value=300), max_size=20), max_size=25),
       max_size=st.integers(min_value=1, max_value=2000), max_files=st.integers(min_value=2, max_value=6))
def test_rotation_invariants(tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]], max_size: int,
                             max_files: int) -> None:
    """Whatever the batches: the files, read in order, are a suffix of what was written that starts
    on a record; at most max_files files; none past the limit unless it holds a single record."""
    directory = tmp_path_factory.mktemp("rot")
    clock = Clock()
    f = LogFile(directory / "0.log", RotationPolicy(max_size, max_files), wall=clock)
    written: list[bytes] = []
    n = 0
    for batch in batches:
        recs = [format_record("stderr", "P" if k % 3 else "F", f"{n + k}:".encode() + b"y" * k, 0) for k in batch]
        n += len(recs)
        written += recs
        f.write(recs)
        clock.now += 0.25
    f.close()
    paths = files_of(directory)
    assert len(paths) == len(os.listdir(directory)) <= max_files
    data = b"".join(p.read_bytes() for p in paths)
    everything = b"".join(written)
    assert everything.endswith(data)
    assert data == b"" or len(everything) == len(data) or everything[-len(data) - 1 : -len(data)] == b"\n"
    for p in paths:
        content = p.read_bytes()
        assert content == b"" or content.endswith(b"\n")
        assert len(content) <= max_size or content.count(b"\n") == 1
    assert [p.name for p in paths] == sorted(p.name for p in paths[:-1]) + ["0.log"]


def test_container_log_rotates_what_the_pipes_bring(tmp_path: Path) -> None:
    clog = ContainerLog("c", tmp_path / "c" / "0.log", None, RotationPolicy(2000, 4))
    out, err = clog.stdio
    lines = [f"line {i:05d}".encode() for i in range(300)]
    fds = clog.read_fds()
    for i, line in enumerate(lines):
        os.write(out if i % 2 else err, line + b"\n")
        for fd in fds:
            clog.on_readable(fd)
    clog.close()
    paths = files_of(tmp_path / "c")
    assert len(paths) == 4 and all(p.stat().st_size <= 2000 for p in paths)
    got = [line for _, line in read_instance(tmp_path / "c", 0)]
    assert got == [line + b"\n" for line in lines[-len(got) :]]
    assert {parse_record(r)[1] for p in paths for r in p.read_bytes().splitlines()} == {"stdout", "stderr"}


# --- instances -----------------------------------------------------------------------------------


def test_prune_keeps_the_new_instance_and_the_previous_one(tmp_path: Path) -> None:
    names = ["0.log", "0.log.20261122-162442", "1.log", "1.log.20261122-162442", "1.log.20261122-162443",
             "2.log", "5.log", "other"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    assert prune_instances(tmp_path, 2) == ["0.log", "0.log.20261122-162442", "5.log"]
    assert sorted(os.listdir(tmp_path)) == ["1.log", "1.log.20261122-162442", "1.log.20261122-162443", "2.log", "other"]
    assert container_instances(tmp_path) == [1, 2]
    assert prune_instances(tmp_path / "missing", 3) == [] and container_instances(tmp_path / "missing") == []


def test_a_crash_loop_leaves_two_instances(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    for n in range(50):
        prune_instances(directory, n)
        f = LogFile(directory / f"{n}.log", RotationPolicy(200, 3))
        f.write(records(n, 7))
        f.close()
    assert container_instances(directory) == [48, 49]
    assert len(os.listdir(directory)) <= 2 * 3


# --- readers -------------------------------------------------------------------------------------


def test_read_joins_a_line_across_files_and_reads_gz(tmp_path: Path) -> None:
    rec = lambda tag, text: format_record("stdout", tag, text.encode(), T0 * 10**9)  # noqa: E731
    (tmp_path / "0.log.20261122-162440.gz").write_bytes(gzip.compress(rec("F", "one") + rec("P", "tw")))
    (tmp_path / "0.log.20261122-162441").write_bytes(rec("P", "o-") + rec("F", "halves"))
    (tmp_path / "0.log").write_bytes(rec("F", "three") + rec("P", "unfinished") + b"2026-11-22T16:24:42Z std")
    assert [line for _, line in read_instance(tmp_path, 0)] == [b"one\n", b"two-halves\n", b"three\n", b"unfinished"]


def test_open_instance_retries_when_a_rotation_comes_between_listing_and_opening(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "0.log").write_bytes(b"a\n")
    real_listdir = os.listdir
    calls = []

    def listdir(path: object) -> list[str]:
        names = real_listdir(path)  # type: ignore[call-overload]
        calls.append(names)
        if len(calls) == 1:  # a rotation right after our first look
            os.rename(tmp_path / "0.log", tmp_path / "0.log.20261122-162442")
            (tmp_path / "0.log").write_bytes(b"b\n")
        return list(names)

    monkeypatch.setattr(os, "listdir", listdir)
    files = open_instance(tmp_path, 0)
    assert [f.read() for f in files] == [b"a\n", b"b\n"]
    for f in files:
        f.close()


def test_follow_reads_across_rotations_and_removals(tmp_path: Path) -> None:
    """A writer that rotates (and removes its oldest files) between the follower's polls, several
    times per poll and while the follower is behind: every line once, in order, none lost that
    was still on disk when the follower got to it."""
    directory = tmp_path / "c"
    clock = Clock()
    writer = LogFile(directory / "0.log", RotationPolicy(500, 5), wall=clock)
    # records per poll: 20 is a few rotations (13 records a file); 100 is more than 5 files hold
    plan = [3, 0, 20, 1, 0, 0, 9, 100, 2, 0]
    written = iter(range(10**6))
    out: list[bytes] = []
    polls = iter(plan)
    ended = False

    def sleep(_: float) -> None:
        nonlocal ended
        count = next(polls, None)
        if count is None:
            ended = True
            writer.close()
            return
        writer.write([format_record("stdout", "F", f"{next(written):06d}".encode(), 0) for _ in range(count)])
        clock.now += 0.1

    writer.write([format_record("stdout", "F", f"{next(written):06d}".encode(), 0) for _ in range(5)])
    follow(directory, 0, lambda: not ended, out.append, sleep=sleep)
    total = 5 + sum(plan)
    numbers = [int(line) for line in out]
    # The burst rotated files away before the follower looked: what it had open it finishes; it
    # resumes at the oldest file still there. Nothing is repeated, nothing else is missed.
    assert numbers == sorted(set(numbers)) and numbers[-1] == total - 1
    before_burst = 5 + 3 + 20 + 1 + 9
    assert numbers[:before_burst] == list(range(before_burst))
    assert set(range(total - 50, total)) <= set(numbers) and len(numbers) < total


def test_the_next_file_is_found_even_when_a_rotation_comes_while_looking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The follower holds `0.log`; two rotations happen between its listing and its stat: the
    name it listed is a new file now. The file after its own is the first of the two rotated."""
    from sandbox.logs.reader import _successor

    writer = LogFile(tmp_path / "0.log", RotationPolicy(100, 10), wall=Clock())
    rec = records(0, 3)
    writer.write(rec[:1])
    current = open(tmp_path / "0.log", "rb")  # noqa: SIM115
    assert current.read() == rec[0]
    real_stat = os.stat
    rotated: list[bool] = []

    def stat(path: str, *args: object, **kwargs: object) -> os.stat_result:
        if not rotated:
            rotated.append(True)
            writer.write(rec[1:])  # each record alone past 100 bytes with the one before: 2 rotations
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)
    successor = _successor(tmp_path, 0, current)
    monkeypatch.undo()
    assert rotated and successor is not None
    assert successor.read() == rec[1]
    successor.close()
    current.close()
    writer.close()


def test_follow_of_a_finished_log_prints_it_and_returns(tmp_path: Path) -> None:
    rec = lambda tag, text: format_record("stdout", tag, text.encode(), 0)  # noqa: E731
    (tmp_path / "1.log.20261122-162442").write_bytes(rec("F", "a"))
    (tmp_path / "1.log").write_bytes(rec("F", "b") + rec("P", "c"))
    out: list[bytes] = []
    follow(tmp_path, 1, lambda: False, out.append, sleep=lambda _: pytest.fail("must not wait"))
    assert out == [b"a\n", b"b\n", b"c\n"]


# --- which instance `logs --previous` reads --------------------------------------------------------


@pytest.mark.parametrize("found, status, expected", [
    ([3, 4], None, 3),  # the pod has ended: the instance before the newest
    ([0], None, None),  # never restarted
    ([3, 4], {"state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1}}}, 3),
    # CrashLoopBackOff: lastState.terminated is the instance that just exited, the newest
    ([3, 4], {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}}, 4),
    ([0], {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}}, 0),
    ([0], {"state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}}, None),
    ([0], {"state": {"terminated": {"exitCode": 0}}, "lastState": {}}, None),
    ([5, 7], None, None),  # a gap: no file of the instance before
])
def test_previous_instance_is_the_kubelets_last_terminated(found: list[int], status: dict[str, object] | None,
                                                           expected: int | None) -> None:
    from sandbox.cli.logs import previous_instance

    assert previous_instance(found, status) == expected


# --- how long `logs -f` follows -----------------------------------------------------------------------


def running_status(count: int, state: dict[str, object], pid: dict[str, int] | None) -> dict[str, object]:
    return {"containers": {"app": {"process": pid}},
            "status": {"containerStatuses": [{"name": "app", "restartCount": count, "state": state}]}}


@pytest.mark.parametrize("count, state, expected", [
    (2, {"running": {}}, "ref"),  # the instance followed runs
    (2, {"terminated": {"exitCode": 1}}, False),
    (2, {"waiting": {"reason": "CrashLoopBackOff"}}, False),  # it exited, the next waits for its back-off
    (3, {"running": {}}, False),  # a later instance runs
    (1, {"waiting": {"reason": "CrashLoopBackOff"}}, True),  # its log is there, its start not yet recorded
    (2, {"waiting": {"reason": "ContainerCreating"}}, True),
])
def test_which_instance_the_record_shows_running(count: int, state: dict[str, object], expected: object) -> None:
    from sandbox.cli.logs import instance_process
    from sandbox.state.proc import ProcessRef

    pid = {"pid": 42, "startTime": 7}
    found = instance_process(running_status(count, state, pid), "app", 2)
    assert found == (ProcessRef(42, 7) if expected == "ref" else expected)
    assert instance_process(None, "app", 2) is False  # the pod's record is gone


def test_follow_ends_with_the_instance_not_the_pod() -> None:
    # kubectl logs -f returns once the container it reads stops running (the kubelet's waitLogs),
    # also while the pod's runtime lives on and restarts it; the runtime's exit ends it too.
    import subprocess

    from sandbox.cli.logs import LINGER, instance_running
    from sandbox.state.proc import ProcessRef

    child = subprocess.Popen(["sleep", "60"])
    ref = ProcessRef.of(child.pid)
    assert ref is not None
    records = [running_status(0, {"waiting": {"reason": "ContainerCreating"}}, None),
               running_status(0, {"running": {}}, ref.to_json())]
    owner = [True]
    clock = [100.0]
    try:
        alive = instance_running(lambda: records.pop(0), "app", 0, lambda: owner[0], clock=lambda: clock[0])
        assert alive()  # not started yet: waits
        assert alive() and alive()  # running: the record is not read again
        owner[0] = False
        assert not alive()  # the runtime let go of the pod
        owner[0] = True
        child.kill()
        child.wait()
        assert alive()  # just exited: read on a little for what the runtime still writes
        clock[0] += LINGER + 0.01
        assert not alive()
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize(("status", "want"), [
    ({"state": {"waiting": {"reason": "PodInitializing"}}}, 'is waiting to start: PodInitializing'),
    ({"state": {"waiting": {"reason": "ContainerCreating"}}}, 'is waiting to start: ContainerCreating'),
    ({"state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}},
     "is waiting to start: trying and failing to pull image"),
    ({"state": {"waiting": {"reason": "ErrImagePull"}}}, "is waiting to start: image can't be pulled"),
    ({"state": {"terminated": {"exitCode": 128, "reason": "StartError"}}}, "is terminated"),
    (None, "is waiting to start - no logs yet"),
])
def test_a_container_without_logs_is_worded_as_the_kubelet_words_it(status: dict | None, want: str) -> None:
    from sandbox.cli.logs import not_started

    assert not_started("app", "web", status) == f'container "app" in pod "web" {want}'
