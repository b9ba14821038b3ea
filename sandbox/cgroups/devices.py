"""A container's device allow-list, as runc applies it: the v1 devices controller's files, or on
cgroup2 an eBPF device program (native/devices.c).

The default list is what a non-privileged Kubernetes container gets from containerd and runc:
containerd's default spec denies every device (pkg/oci/spec.go populateDefaultUnixSpec:
`Resources.Devices = [{Allow: false, Access: "rwm"}]`, CRI adds nothing for a container without
`devices`), and runc appends its built-in AllowedDevices after the spec's rules
(libcontainer/specconv/spec_linux.go, CreateCgroupConfig): mknod of any char and block device,
null, random, full, tty, zero, urandom, /dev/pts/*, ptmx, and /dev/net/tun (removed in runc 1.2.0,
re-added in 1.2.4: runc#4555). /dev/console (5:1) is not in it: runc gives the console through a
pts device. A privileged container gets no rules at all (containerd's WithAllDevicesAllowed).

`reduce` is runc's devices emulator (libcontainer/cgroups/devices/devices_emulator.go): the v1
kernel's semantics folded into a default verdict and a set of exceptions, so both hierarchies
behave alike for the same rules, including the refusal to punch a hole into a wildcard rule (v1
would silently ignore it).
"""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.cgroups import fs
from sandbox.cgroups.fs import CgroupError
from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

_ACCESS = "rwm"
_MAX_MAJOR = (1 << 12) - 1  # the kernel's dev_t: 12 bits of major, 20 of minor
_MAX_MINOR = (1 << 20) - 1


class DeviceRule(Record):
    """One devices.allow/devices.deny line: `c 1:3 rwm`; -1 is `*` (any)."""

    type: str  # "a" (every device), "b" (block) or "c" (char)
    major: int
    minor: int
    access: str  # a non-empty subset of "rwm"
    allow: bool

    def __post_init__(self) -> None:
        if self.type not in ("a", "b", "c"):
            raise ValueError(f"device rule type must be a, b or c, got {self.type!r}")
        if self.type == "a" and (self.major, self.minor) != (-1, -1):
            raise ValueError(f"an 'a' device rule takes no major:minor, got {self.major}:{self.minor}")
        if type(self.major) is not int or not -1 <= self.major <= _MAX_MAJOR:
            raise ValueError(f"device major must be -1 or 0..{_MAX_MAJOR}, got {self.major!r}")
        if type(self.minor) is not int or not -1 <= self.minor <= _MAX_MINOR:
            raise ValueError(f"device minor must be -1 or 0..{_MAX_MINOR}, got {self.minor!r}")
        if not self.access or len(set(self.access)) != len(self.access) or set(self.access) - set(_ACCESS):
            raise ValueError(f"device access must be a subset of 'rwm', got {self.access!r}")

    @property
    def line(self) -> str:
        """As the kernel reads it: `c 136:* rwm`, `a *:* rwm`."""
        major = "*" if self.major < 0 else str(self.major)
        minor = "*" if self.minor < 0 else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def _allow(type_: str, major: int, minor: int, access: str = "rwm") -> DeviceRule:
    return DeviceRule(type_, major, minor, access, True)


DEFAULT_RULES: tuple[DeviceRule, ...] = (
    DeviceRule("a", -1, -1, "rwm", False),  # containerd: deny all first
    _allow("c", -1, -1, "m"),  # runc AllowedDevices from here: mknod of any device ...
    _allow("b", -1, -1, "m"),  # ... (opening it still needs a rule below)
    _allow("c", 1, 3),  # /dev/null
    _allow("c", 1, 8),  # /dev/random
    _allow("c", 1, 7),  # /dev/full
    _allow("c", 5, 0),  # /dev/tty
    _allow("c", 1, 5),  # /dev/zero
    _allow("c", 1, 9),  # /dev/urandom
    _allow("c", 136, -1),  # /dev/pts/*
    _allow("c", 5, 2),  # /dev/ptmx
    _allow("c", 10, 200),  # /dev/net/tun
)


def v1_lines(rules: Sequence[DeviceRule]) -> list[tuple[str, str]]:
    """(file, line) pairs in order: allow rules to devices.allow, deny rules to devices.deny. The
    kernel folds them itself (an `a` line resets the list); no rules, nothing written."""
    return [("devices.allow" if r.allow else "devices.deny", r.line) for r in rules]


# Rule lists reduce() has accepted. DEFAULT_RULES is in from the start: reduce() of it cost every
# `sandbox run` 0.09-0.18 ms (once per process, 6 fresh processes) for a constant list, which
# tests/unit/test_cgroup_devices.py reduces instead (and checks that it is here).
_CHECKED: set[tuple[DeviceRule, ...]] = {DEFAULT_RULES}


def apply_v1(devices_dir: Path, rules: Sequence[DeviceRule]) -> None:
    """Write `rules` to a v1 devices cgroup. It must have no child cgroup yet: the kernel refuses
    an `a` line in a cgroup with children (EINVAL)."""
    key = tuple(rules)
    if key not in _CHECKED:  # the same list for every container: checked once per process
        reduce(rules)  # refuse what v2 would refuse, although v1 would take it silently
        _CHECKED.add(key)
    lines = v1_lines(rules)
    start = 0
    while start < len(lines):  # each run of lines for one file through one open file
        name = lines[start][0]
        end = start
        while end < len(lines) and lines[end][0] == name:
            end += 1
        fs.write_each(devices_dir, name, [line for _, line in lines[start:end]])
        start = end


def attach_v2(cgroup_dir: Path, rules: Sequence[DeviceRule]) -> None:
    """Attach an eBPF device program for `rules` to a cgroup2 directory; it stays until the cgroup
    is removed. Rules that leave every device allowed (none, or `a` allowed) attach nothing."""
    default_allow, exceptions = reduce(rules)
    if default_allow and not exceptions:
        return
    program = (DeviceRule("a", -1, -1, "rwm", True), *exceptions) if default_allow else exceptions
    from sandbox import native  # the cffi core: only when a program is attached

    try:
        fd = os.open(cgroup_dir, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError("open", cgroup_dir, e) from e
    try:
        native.device_filter_attach(fd, [(r.type, r.major, r.minor, r.access, r.allow) for r in program])
    except OSError as e:
        raise CgroupError("attach device program to", cgroup_dir, e) from e
    finally:
        os.close(fd)


def reduce(rules: Sequence[DeviceRule]) -> tuple[bool, tuple[DeviceRule, ...]]:
    """(default allow?, exceptions): what a new v1 devices cgroup under an unrestricted parent
    holds after `rules` are written in order. Exceptions carry the opposite verdict of the
    default, are merged per (type, major, minor), and come sorted, so their order is moot.
    Raises ValueError where a rule would take access from part of a wildcard exception."""
    default_allow = True
    table: dict[tuple[str, int, int], str] = {}
    for rule in rules:
        if rule.type == "a":  # the kernel resets the list, whatever the access says
            default_allow, table = rule.allow, {}
            continue
        key = (rule.type, rule.major, rule.minor)
        if rule.allow != default_allow:  # adds an exception
            table[key] = _union(table.get(key, ""), rule.access)
        else:  # takes access away from an exception
            _check_no_hole(table, rule)
            left = "".join(c for c in table.get(key, "") if c not in rule.access)
            if left:
                table[key] = left
            else:
                table.pop(key, None)
    exceptions = tuple(DeviceRule(t, major, minor, access, not default_allow)
                       for (t, major, minor), access in sorted(table.items(), key=lambda i: (i[0][1], i[0][2], i[0][0])))
    return default_allow, exceptions


def _union(a: str, b: str) -> str:
    return "".join(c for c in _ACCESS if c in a or c in b)


def _check_no_hole(table: dict[tuple[str, int, int], str], rule: DeviceRule) -> None:
    """v1 removes only an exception with the same major:minor; one that covers `rule` through a
    wildcard would go on granting what `rule` takes away, so runc refuses that, and so do we."""
    key = (rule.type, rule.major, rule.minor)
    for wider in ((rule.type, -1, rule.minor), (rule.type, rule.major, -1), (rule.type, -1, -1)):
        if wider != key and set(table.get(wider, "")) & set(rule.access):
            shown = DeviceRule(*wider, table[wider], not rule.allow).line
            raise ValueError(f"device rule {rule.line} would punch a hole in the wildcard rule {shown}")
