"""Times as kubectl reads and writes them: Go duration strings (`--since 5m`, `--timeout 30s`),
RFC 3339 times (`--since-time`), and the apimachinery HumanDuration of the AGE and LAST SEEN
columns."""

from __future__ import annotations

import re

from sandbox.errors import UsageError


def parse_duration(text: str, flag: str) -> float:
    """Seconds in a Go duration (`300ms`, `1.5h`, `2h45m`, `-1s`; a bare `0` too), as
    time.ParseDuration accepts it; UsageError naming `flag` otherwise. The sign is the caller's
    to judge (kubectl: a negative --timeout means a week, a negative --since is refused)."""
    from sandbox.supervisor.backoff import parse_duration as unsigned

    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    try:
        return sign * unsigned(body[1:] if body[:1] in ("-", "+") else body)
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "{flag}" flag: time: invalid duration "{text}"') from None


def parse_rfc3339(text: str, flag: str) -> float:
    """Epoch seconds of an RFC 3339 time (`2026-11-30T05:09:26Z`, fractions and offsets allowed),
    as Go's time.RFC3339 parses it: a zone is required."""
    from datetime import datetime

    if not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", text.strip()):
        raise UsageError(f"{flag}: {text!r} is not an RFC 3339 time (e.g. 2026-11-30T05:09:26Z)")
    body = text.strip().upper()
    # datetime.fromisoformat (3.11) takes at most microseconds: Go's nanoseconds are cut to them.
    body = re.sub(r"(\.\d{6})\d+", r"\1", body)
    try:
        return datetime.fromisoformat(body).timestamp()
    except ValueError as e:
        raise UsageError(f"{flag}: {text!r} is not a valid time: {e}") from None


def human(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: `45s`, `3m20s`, `50m`, `4h30m`, `20h`, `3d4h`, `30d`,
    `2y40d`; up to 2 s in the future is "now" (clock skew), more is `<invalid>`."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"
