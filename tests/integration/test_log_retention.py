"""Container logs kept as the kubelet keeps them (issue 7), on real pods: a crash loop leaves the
current and the previous instance only; a flood of output is rotated by size between whole
records, within the file-count limit, and read back by `sandbox logs` (and `-f`) without a lost or
split line."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

ROTATED = re.compile(r"(\d+)\.log\.\d{8}-\d{6}")
LINE_BYTES = 100  # "%08d " + 90 x + "\n"


def container_dir(sbx: Sandbox, pod: str, container: str) -> Path:
    dirs = list(sbx.root.glob(f"log/pods/default_{pod}_*/{container}"))
    assert len(dirs) == 1, dirs
    return dirs[0]


def by_instance(names: list[str]) -> dict[int, list[str]]:
    """Every name is `<n>.log` or `<n>.log.<YYYYMMDD-hhmmss>`; grouped by n."""
    groups: dict[int, list[str]] = {}
    for name in names:
        m = re.fullmatch(r"(\d+)\.log", name) or ROTATED.fullmatch(name)
        assert m, f"unexpected file {name!r} in a container's log directory"
        groups.setdefault(int(m.group(1)), []).append(name)
    return groups


# --- instances under a crash loop ----------------------------------------------------------------

# Each instance prints 60 numbered lines (~3.6 KiB of records: more than the 1Ki x 3 an instance
# keeps, so every instance rotates too). /dev/shm is the pod's: the counter survives restarts and
# equals the instance's restart count.
CRASHER = """
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "n=$(cat /dev/shm/n 2>/dev/null || echo 0); echo $((n+1)) > /dev/shm/n; seq 1 60 | sed \\"s/^/run $n line /\\""]
"""


def test_crash_loop_keeps_the_current_and_previous_instance(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(CRASHER), "-q", "--backoff-initial", "10ms", "--backoff-max", "20ms",
                     "--container-log-max-size", "1Ki", "--container-log-max-files", "3")
    seen: dict[str, int] = {"polls": 0, "most_files": 0, "most_instances": 0}

    def restarts() -> int:
        s = sbx.state("crasher")
        return int(s["status"]["containerStatuses"][0]["restartCount"]) if s else 0

    def many_restarts() -> bool:
        # Every poll also checks the directory: the bound holds at every moment, not only at the end.
        dirs = list(sbx.root.glob("log/pods/default_crasher_*/c"))
        if dirs:
            try:
                groups = by_instance(os.listdir(dirs[0]))
            except FileNotFoundError:
                groups = {}
            seen["polls"] += 1
            seen["most_files"] = max(seen["most_files"], sum(map(len, groups.values())))
            seen["most_instances"] = max(seen["most_instances"], len(groups))
            assert all(len(files) <= 3 for files in groups.values()), groups
        return restarts() >= 60

    started = time.monotonic()
    sbx.wait_for(many_restarts, timeout=60, message="60 restarts")
    elapsed = time.monotonic() - started
    sbx.stop(proc)
    directory = container_dir(sbx, "crasher", "c")
    groups = by_instance(os.listdir(directory))
    last = max(groups)
    assert last >= 60
    assert sorted(groups) == [last - 1, last], sorted(groups)  # 60+ instances ran, two are kept
    assert all(len(files) <= 3 for files in groups.values()), groups  # each instance's files: max-files
    assert all((directory / n).stat().st_size <= 1024 for files in groups.values() for n in files)
    assert seen["most_files"] <= 2 * 3 and seen["most_instances"] <= 2, seen
    print(f"\n{last + 1} instances in {elapsed:.1f}s; most files seen at once: {seen['most_files']} "
          f"({seen['polls']} polls)")

    current = sbx.run("logs", "crasher")
    previous = sbx.run("logs", "--previous", "crasher", "-c", "c")
    assert current.returncode == 0 and previous.returncode == 0, (current.stderr, previous.stderr)

    def suffix_of_instance(text: str, n: int) -> list[int]:
        """The line numbers of instance n's output as read back: a contiguous run ending at 60."""
        lines = text.splitlines()
        numbers = []
        for line in lines:
            m = re.fullmatch(rf"run {n} line (\d+)", line)
            assert m, f"line {line!r} is not instance {n}'s"
            numbers.append(int(m.group(1)))
        assert numbers == list(range(numbers[0], 61)), numbers
        return numbers

    # 1Ki files hold ~17 of these records: three files keep the last ~40-50 lines of each instance.
    assert len(suffix_of_instance(current.stdout, last)) >= 30
    assert len(suffix_of_instance(previous.stdout, last - 1)) >= 30


def test_previous_in_back_off_is_the_instance_that_just_exited(sbx: Sandbox) -> None:
    """As the kubelet reads `lastState.terminated`: while the container waits in CrashLoopBackOff,
    `logs` and `logs -p` both show the instance that just exited; once the pod has ended, `-p` is
    the one before the last."""
    proc = sbx.start(sbx.manifest(CRASHER), "-q", "--backoff-initial", "30s")

    def backing_off() -> bool:
        s = sbx.state("crasher")
        cs = s["status"]["containerStatuses"][0] if s else {}
        return bool(cs) and cs["restartCount"] == 1 and "waiting" in cs["state"]

    sbx.wait_for(backing_off, message="CrashLoopBackOff after the second run")
    run1 = "".join(f"run 1 line {i}\n" for i in range(1, 61))
    assert sbx.run("logs", "crasher").stdout == run1
    assert sbx.run("logs", "-p", "crasher").stdout == run1
    sbx.stop(proc)
    assert sbx.run("logs", "crasher").stdout == run1
    assert sbx.run("logs", "-p", "crasher").stdout == run1.replace("run 1", "run 0")


def test_previous_without_a_previous_instance_is_a_clear_error(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers:
  - {name: only, image: busybox, command: ["echo", "the only run"]}
""")
    assert sbx.run("run", "-q", str(manifest)).returncode == 0
    assert sbx.run("logs", "once").stdout == "the only run\n"
    result = sbx.run("logs", "-p", "once")
    assert result.returncode == 1
    assert 'previous terminated container "only" in pod "once" not found' in result.stderr


@pytest.mark.parametrize("flags, problem", [
    (["--container-log-max-files", "1"], "--container-log-max-files: must be at least 2"),
    (["--container-log-max-files", "many"], "--container-log-max-files: 'many' is not an integer"),
    (["--container-log-max-size", "10MB"], "--container-log-max-size: '10MB' is not a quantity"),
    (["--container-log-max-size", "0"], "--container-log-max-size: '0': the size must be positive"),
    (["--container-log-max-size", "0.5"], "--container-log-max-size: '0.5' is not a whole number of bytes"),
])
def test_rotation_options_are_checked_before_anything_starts(sbx: Sandbox, flags: list[str], problem: str) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: never-started}
spec:
  containers:
  - {name: c, image: busybox, command: ["true"]}
""")
    result = sbx.run("run", *flags, str(manifest))
    assert result.returncode == 2 and problem in result.stderr, result.stderr
    assert not list(sbx.root.glob("log/pods/*"))


# --- rotation under a flood ------------------------------------------------------------------------

MIB = 1024 * 1024


def flood_pod(name: str, lines: int, *, pause_every: int = 0) -> str:
    """`lines` numbered lines of exactly LINE_BYTES bytes from busybox awk (optionally resting
    20 ms every `pause_every` lines, so a follower reads while it writes)."""
    rest = f'if (i % {pause_every} == 0) {{ fflush(); system(\\"usleep 20000\\") }}' if pause_every else ""
    program = (f'BEGIN {{ pad = sprintf(\\"%90s\\", \\"\\"); gsub(/ /, \\"x\\", pad); '
               f'for (i = 1; i <= {lines}; i++) {{ printf \\"%08d %s\\\\n\\", i, pad; {rest} }} }}')
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: w
    image: busybox
    command: ["awk", "{program}"]
"""


def check_rotated_files(directory: Path, max_size: int, max_files: int) -> int:
    """The instance's files obey the limits, each holds whole records only; returns the bytes."""
    from sandbox.logs.cri import parse_record

    names = os.listdir(directory)
    groups = by_instance(names)
    assert list(groups) == [0] and len(names) <= max_files, names
    total = 0
    for name in names:
        data = (directory / name).read_bytes()
        total += len(data)
        assert len(data) <= max_size, (name, len(data))
        assert data.endswith(b"\n"), f"{name} ends inside a record"
        first, last = data[: data.index(b"\n")], data[data.rindex(b"\n", 0, len(data) - 1) + 1 :]
        for record in (first, last):  # a record cut across files would not parse at either end
            ts, stream, tag, content = parse_record(record)
            assert (stream, tag) == ("stdout", "F") and re.fullmatch(rb"\d{8} x{90}", content), record
    return total


def check_suffix(text: str, last: int) -> list[int]:
    """What `sandbox logs` printed: whole lines, numbered contiguously, ending at the last written."""
    lines = text.split("\n")
    assert lines[-1] == "", "output ends with a newline"
    numbers = []
    for line in lines[:-1]:
        assert len(line) == LINE_BYTES - 1 and line[8:] == " " + "x" * 90, f"split or foreign line {line[:40]!r}"
        numbers.append(int(line[:8]))
    assert numbers and numbers[-1] == last
    assert numbers == list(range(numbers[0], last + 1)), "a line lost or repeated"
    return numbers


@pytest.mark.slow
@pytest.mark.parametrize("max_size, max_files, flags", [
    (1 * MIB, 5, ["--container-log-max-size", "1Mi", "--container-log-max-files", "5"]),
    (10 * MIB, 5, []),  # the kubelet's defaults
], ids=["1Mi-x5", "defaults-10Mi-x5"])
def test_fifty_mib_rotated_without_a_lost_or_split_line(sbx: Sandbox, max_size: int, max_files: int,
                                                        flags: list[str]) -> None:
    lines = 50 * MIB // LINE_BYTES
    started = time.monotonic()
    result = sbx.run("run", "-q", *flags, str(sbx.manifest(flood_pod("flood", lines))), timeout=300)
    ran = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    directory = container_dir(sbx, "flood", "w")
    kept = check_rotated_files(directory, max_size, max_files)
    # Rotation removes only what the limit forces out: the rotated files are as full as whole
    # records allow, so the instance keeps at least (max_files - 1) x max_size minus a record each.
    assert kept >= (max_files - 1) * (max_size - 200)
    started = time.monotonic()
    logs = subprocess.run(sbx.cmd("logs", "flood"), capture_output=True, timeout=120)
    read = time.monotonic() - started
    assert logs.returncode == 0, logs.stderr
    numbers = check_suffix(logs.stdout.decode(), lines)
    print(f"\n{lines} lines ({lines * LINE_BYTES / MIB:.0f} MiB) in {ran:.2f}s; kept "
          f"{len(os.listdir(directory))} files, {kept / MIB:.1f} MiB, lines {numbers[0]}..{numbers[-1]}; "
          f"`logs` read them in {read:.2f}s")


def test_follow_reads_across_many_rotations(sbx: Sandbox) -> None:
    """`logs -f` started while the container writes in bursts through ~40 rotations (64Ki files,
    all of them kept): every line, once, in order, unsplit."""
    lines = 20000
    proc = sbx.start(sbx.manifest(flood_pod("burst", lines, pause_every=1000)), "-q",
                     "--container-log-max-size", "64Ki", "--container-log-max-files", "100")
    sbx.wait_for(lambda: list(sbx.root.glob("log/pods/default_burst_*/w/0.log")), message="the log file")
    follower = subprocess.run(sbx.cmd("logs", "-f", "burst"), capture_output=True, timeout=120)
    code, _, err = sbx.finish(proc)
    assert code == 0, err
    assert follower.returncode == 0, follower.stderr
    numbers = check_suffix(follower.stdout.decode(), lines)
    assert numbers[0] == 1
    rotated = [n for n in os.listdir(container_dir(sbx, "burst", "w")) if ROTATED.fullmatch(n)]
    assert len(rotated) >= 30, len(rotated)
