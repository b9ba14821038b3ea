"""Which container log files exist and which must go: the kubelet's rules, as names (pure logic).

A container's log directory holds, per instance (restart count n), the current file `<n>.log` and
the files rotated out of it, `<n>.log.<YYYYMMDD-hhmmss>` (local time of the rotation, the kubelet's
container log manager's `20060102-150405`), and `.gz` when compressed by a kubelet-style manager
(this runtime does not compress; it reads them). As the kubelet keeps them:

- Instances: the current instance and the previous one (`kubectl logs --previous`); a new
  instance's start removes the files of every other one.
- Rotation: a current file that would exceed `containerLogMaxSize` (10Mi) is renamed to its
  timestamped name and a new one opened; at most `containerLogMaxFiles` (5) files per instance,
  the current one included, the oldest rotated ones removed first. Readers take the rotated files
  in name order, then the current one.

Differences from the kubelet, both on purpose: the kubelet checks sizes every 10 s and renames
under the runtime's feet; here the runtime writes the records itself and rotates before the write
that would cross the limit, always between two whole records, so no file exceeds the limit unless
one record alone does. Rotating that eagerly can rotate twice within one second, where the kubelet
(its rename would overwrite) never is: then the name takes the second after the newest rotated
file's, so names stay unique and in order.
"""

from __future__ import annotations

from sandbox.logs.cri import log_file_name
from sandbox.record import Record

DEFAULT_MAX_SIZE = 10 * 1024 * 1024  # kubelet containerLogMaxSize: 10Mi
DEFAULT_MAX_FILES = 5  # kubelet containerLogMaxFiles
COMPRESS_SUFFIX = ".gz"
TMP_SUFFIX = ".tmp"
_STAMP_LEN = len("20060102-150405")


class RotationPolicy(Record):
    """`max_size` in bytes (negative: never rotate, as the kubelet); `max_files` >= 2."""

    max_size: int = DEFAULT_MAX_SIZE
    max_files: int = DEFAULT_MAX_FILES

    def __post_init__(self) -> None:
        if self.max_files < 2:
            raise ValueError(f"max files must be at least 2 (the current file and one rotated), got {self.max_files}")
        if self.max_size == 0:
            raise ValueError("max size must not be 0")

    @property
    def rotates(self) -> bool:
        return self.max_size > 0


def parse_max_size(text: str) -> int:
    """`--container-log-max-size`: a Kubernetes quantity of bytes (`10Mi`, `500k`, `1e6`), as the
    kubelet parses containerLogMaxSize; negative turns rotation off. ValueError says why not."""
    from sandbox.spec.quantity import parse_quantity

    q = parse_quantity(text.strip())
    if q is None:
        raise ValueError(f"{text!r} is not a quantity (e.g. 10Mi, 500Ki, 1M, 1048576)")
    whole, rest = divmod(q.milli, 1000)
    if rest:
        raise ValueError(f"{text!r} is not a whole number of bytes")
    if whole == 0:
        raise ValueError(f"{text!r}: the size must be positive (or negative to turn rotation off)")
    return whole


def parse_max_files(text: str) -> int:
    """`--container-log-max-files`: an integer of at least 2 (the kubelet: `must be greater than 1`)."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if value < 2:
        raise ValueError(f"must be at least 2 (the current file and one rotated file), got {value}")
    return value


# --- names ---------------------------------------------------------------------------------------


def instance_of(name: str) -> int | None:
    """The instance (restart count) a file of a container's log directory belongs to: `<n>.log`
    and `<n>.log.<anything>`; None for a name that is neither."""
    head, sep, _ = name.partition(".log")
    if not sep or not head.isascii() or not head.isdigit() or head != str(int(head)):
        return None
    rest = name[len(head) + 4 :]
    if rest and not rest.startswith("."):
        return None
    return int(head)


def is_rotated_of(current: str, name: str) -> bool:
    return name.startswith(current + ".") and len(name) > len(current) + 1


def rotated_files(current: str, names: list[str]) -> tuple[list[str], list[str]]:
    """The files rotated out of `current` (e.g. `3.log`) among `names`, in read order (oldest
    first: names sort by their timestamp), and the leftovers to delete: `.tmp` files and
    uncompressed files whose `.gz` also exists (an interrupted compression; the kubelet's rule)."""
    rotated = [n for n in names if is_rotated_of(current, n)]
    present = set(rotated)
    in_use, unused = [], []
    for n in rotated:
        if n.endswith(TMP_SUFFIX) or n + COMPRESS_SUFFIX in present:
            unused.append(n)
        else:
            in_use.append(n)
    return sorted(in_use), sorted(unused)


def instance_files(names: list[str], instance: int) -> list[str]:
    """One instance's files in read order: rotated ones (oldest first), then the current one."""
    current = log_file_name(instance)
    files, _ = rotated_files(current, names)
    if current in names:
        files.append(current)
    return files


def instances(names: list[str]) -> list[int]:
    """The instances that have files, ascending."""
    return sorted({n for n in map(instance_of, names) if n is not None})


def stale_files(names: list[str], starting: int) -> list[str]:
    """When instance `starting` starts: the files of every instance but it and the one before."""
    keep = (starting, starting - 1)
    return sorted(n for n in names if (i := instance_of(n)) is not None and i not in keep)


def excess_rotated(rotated: list[str], max_files: int) -> list[str]:
    """Before the current file is rotated: the oldest rotated files to remove so that, with the
    file about to be rotated and the new current one, at most `max_files` remain."""
    keep = max(max_files - 2, 0)
    ordered = sorted(rotated)
    return ordered[: max(len(ordered) - keep, 0)]


def rotated_name(current: str, rotated: list[str], now: float) -> str:
    """The name `current` is rotated to at wall time `now`: `<current>.<YYYYMMDD-hhmmss>` in local
    time; the second after the newest rotated file's if that name would not sort after it."""
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    newest = max((s for n in rotated if _is_stamp(s := _stamp_of(current, n))), default=None)
    if newest is not None and stamp <= newest:
        stamp = _next_second(newest)
    return f"{current}.{stamp}"


def _stamp_of(current: str, name: str) -> str:
    return name[len(current) + 1 :][:_STAMP_LEN]


def _is_stamp(text: str) -> bool:
    return (len(text) == _STAMP_LEN and text[8] == "-" and text.isascii()
            and text[:8].isdigit() and text[9:].isdigit())


def _next_second(stamp: str) -> str:
    """`YYYYMMDD-hhmmss` plus one second, in plain calendar arithmetic (no zone, no DST)."""
    import time

    y, mo, d = int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8])
    h, mi, s = int(stamp[9:11]), int(stamp[11:13]), int(stamp[13:15])
    seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + 1
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(seconds))


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468
