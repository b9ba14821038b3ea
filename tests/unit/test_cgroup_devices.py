"""sandbox.cgroups.devices without root: the default list (runc's AllowedDevices after containerd's
deny-all), the v1 lines, rule validation and the v1 emulation the eBPF program is built from."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cgroups import fs
from sandbox.cgroups.devices import DEFAULT_RULES, DeviceRule, apply_v1, attach_v2, reduce, v1_lines


def allow(type_: str, major: int, minor: int, access: str = "rwm") -> DeviceRule:
    return DeviceRule(type_, major, minor, access, True)


def deny(type_: str, major: int, minor: int, access: str = "rwm") -> DeviceRule:
    return DeviceRule(type_, major, minor, access, False)


def test_default_rules_as_v1_lines() -> None:
    assert v1_lines(DEFAULT_RULES) == [
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c *:* m"),
        ("devices.allow", "b *:* m"),
        ("devices.allow", "c 1:3 rwm"),
        ("devices.allow", "c 1:8 rwm"),
        ("devices.allow", "c 1:7 rwm"),
        ("devices.allow", "c 5:0 rwm"),
        ("devices.allow", "c 1:5 rwm"),
        ("devices.allow", "c 1:9 rwm"),
        ("devices.allow", "c 136:* rwm"),
        ("devices.allow", "c 5:2 rwm"),
        ("devices.allow", "c 10:200 rwm"),
    ]


def test_privileged_has_no_rules_and_writes_nothing(tmp_path: Path) -> None:
    assert v1_lines(()) == []
    apply_v1(tmp_path, ())  # no file is opened: the directory has none
    attach_v2(tmp_path / "missing", ())  # nothing to attach, so the cgroup is never opened
    assert list(tmp_path.iterdir()) == []


def test_apply_v1_writes_each_line_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[tuple[Path, str, str]] = []
    monkeypatch.setattr(fs, "write_each", lambda cgroup, name, values: written.extend((cgroup, name, v) for v in values))
    apply_v1(tmp_path, DEFAULT_RULES)
    assert written == [(tmp_path, name, line) for name, line in v1_lines(DEFAULT_RULES)]


def test_write_each_writes_one_value_per_write_on_one_open_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of devices.allow lines goes through one open file, one write(2) per rule (the kernel
    takes each write as one rule)."""
    import os

    target = tmp_path / "devices.allow"
    target.write_text("")
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *a: opened.append(str(path)) or real_open(path, *a))
    writes: list[bytes] = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(bytes(data)) or real_write(fd, data))
    fs.write_each(tmp_path, "devices.allow", ["c 1:3 rwm", "c 1:5 rwm"])
    assert opened == [str(target)] and writes == [b"c 1:3 rwm", b"c 1:5 rwm"]
    with pytest.raises(fs.CgroupError, match="c 1:9"):
        fs.write_each(tmp_path / "gone", "devices.allow", ["c 1:9 rwm"])


def test_reduce_default_rules_to_allow_exceptions() -> None:
    default_allow, exceptions = reduce(DEFAULT_RULES)
    assert default_allow is False
    assert [r.line for r in exceptions] == [
        "b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
        "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm",
    ]
    assert all(r.allow for r in exceptions)
    from sandbox.cgroups import devices

    assert DEFAULT_RULES in devices._CHECKED  # apply_v1 does not reduce it again per process


def test_reduce_without_rules_allows_everything() -> None:
    assert reduce(()) == (True, ())
    assert reduce([deny("a", -1, -1), allow("a", -1, -1)]) == (True, ())


def test_reduce_merges_and_removes_access() -> None:
    rules = [deny("a", -1, -1), allow("c", 1, 3, "r"), allow("c", 1, 3, "w"), deny("c", 1, 3, "r"),
             allow("c", 4, 1), deny("c", 4, 1)]
    assert reduce(rules) == (False, (allow("c", 1, 3, "w"),))


def test_reduce_blacklist_keeps_deny_exceptions() -> None:
    rules = [allow("a", -1, -1), deny("b", 8, -1), deny("c", 1, 1, "rw")]
    assert reduce(rules) == (True, (deny("c", 1, 1, "rw"), deny("b", 8, -1)))


def test_reduce_refuses_a_hole_in_a_wildcard() -> None:
    with pytest.raises(ValueError, match=r"c 136:3 r would punch a hole in the wildcard rule c 136:\* rwm"):
        reduce([deny("a", -1, -1), allow("c", 136, -1), deny("c", 136, 3, "r")])
    # no overlap in access: fine
    assert reduce([deny("a", -1, -1), allow("c", -1, -1, "m"), deny("c", 1, 3, "r")]) == (
        False, (allow("c", -1, -1, "m"),))


@pytest.mark.parametrize(("args", "message"), [
    (("x", 1, 3, "rwm", True), "type must be a, b or c"),
    (("a", 1, -1, "rwm", True), "'a' device rule takes no major:minor"),
    (("c", -2, 3, "rwm", True), "major must be -1 or 0..4095"),
    (("c", 4096, 3, "rwm", True), "major must be -1 or 0..4095"),
    (("c", True, 3, "rwm", True), "major must be"),
    (("c", 1, 1 << 20, "rwm", True), "minor must be -1 or 0..1048575"),
    (("c", 1, "3", "rwm", True), "minor must be"),
    (("c", 1, 3, "", True), "subset of 'rwm'"),
    (("c", 1, 3, "rwx", True), "subset of 'rwm'"),
    (("c", 1, 3, "rr", True), "subset of 'rwm'"),
])
def test_rule_validation(args: tuple[str, int, int, str, bool], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeviceRule(*args)


def test_rule_line_and_equality() -> None:
    assert DeviceRule("b", 254, 0, "mr", False).line == "b 254:0 mr"
    assert allow("c", 1, 3) == DeviceRule("c", 1, 3, "rwm", True)
    assert hash(allow("c", 1, 3)) == hash(allow("c", 1, 3))


def test_v1_default_device_writes_are_the_default_rules() -> None:
    """V1Driver.restrict_default_devices writes constants: they must stay apply_v1's writes of
    DEFAULT_RULES (the same files, lines and order)."""
    from sandbox.cgroups.v1 import DEFAULT_DEVICE_WRITES

    assert [(name, line) for name, lines in DEFAULT_DEVICE_WRITES for line in lines] == v1_lines(DEFAULT_RULES)


def test_default_devices_marker_goes_through_the_driver(tmp_path: Path) -> None:
    """PodCgroups.child: DEFAULT_DEVICES goes to the driver's restrict_default_devices, a rule
    list to restrict_devices, None (privileged) to neither."""
    from sandbox.cgroups.driver import Cgroup
    from sandbox.pod.cgroups import DEFAULT_DEVICES, PodCgroups

    calls: list[tuple[str, object]] = []

    class Driver:
        def create_container(self, pod: Cgroup, name: str) -> Cgroup:
            return Cgroup(name, {"devices": tmp_path})

        def restrict_devices(self, cgroup: Cgroup, rules: object) -> None:
            calls.append(("rules", rules))

        def restrict_default_devices(self, cgroup: Cgroup) -> None:
            calls.append(("default", cgroup.name))

    cgroups = PodCgroups(Driver(), "uid", lambda _: None)  # type: ignore[arg-type]
    cgroups.pod = Cgroup("uid", {})
    cgroups.child("c", devices=DEFAULT_DEVICES)
    cgroups.child("p")  # None: every device, nothing restricted
    cgroups.child("r", devices=DEFAULT_RULES[:2])
    assert calls == [("default", "c"), ("rules", DEFAULT_RULES[:2])]


def test_v2_and_systemd_default_devices_are_the_default_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drivers without constants restrict to DEFAULT_RULES themselves: v2 through its device
    program, systemd through restrict_devices (which keeps them for a pending scope)."""
    import sandbox.cgroups.devices as devices
    from sandbox.cgroups.driver import Cgroup
    from sandbox.cgroups.systemd import SystemdDriver
    from sandbox.cgroups.v2 import V2Driver

    seen: list[object] = []
    monkeypatch.setattr(devices, "attach_v2", lambda path, rules: seen.append((path, rules)))
    V2Driver.__new__(V2Driver).restrict_default_devices(Cgroup("c", {"unified": tmp_path}))
    monkeypatch.setattr(SystemdDriver, "restrict_devices", lambda self, cgroup, rules: seen.append(rules))
    SystemdDriver.__new__(SystemdDriver).restrict_default_devices(Cgroup("c", {}))
    assert seen == [(tmp_path, DEFAULT_RULES), DEFAULT_RULES]
