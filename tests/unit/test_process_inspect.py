"""process/inspect.py against a fake /proc: parsing, sharing, path states, capability names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sandbox.process import inspect
from sandbox.process.capabilities import DEFAULT_MASK, NUMBERS

MOUNTINFO = """\
30 29 0:40 / / rw,nosuid,nodev,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
31 30 0:41 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
32 31 0:42 / /proc/acpi ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs ro
33 31 0:6 /null /proc/keys rw,relatime - devtmpfs devtmpfs rw
34 31 0:41 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw
35 30 0:43 / /with\\040space rw,relatime shared:5 - tmpfs my\\040src rw
"""

STATUS = """\
Name:\tsleep
NSpid:\t4242\t1
Uid:\t0\t0\t0\t0
Gid:\t0\t0\t0\t0
Groups:\t0
CapInh:\t0000000000000000
CapPrm:\t00000000a80425fb
CapEff:\t00000000a80425fb
CapBnd:\t00000000a80425fb
CapAmb:\t0000000000000000
NoNewPrivs:\t1
Seccomp:\t2
Seccomp_filters:\t1
"""


def _fake_proc(tmp_path: Path, pid: int = 4242) -> str:
    base = tmp_path / "proc" / str(pid)
    (base / "ns").mkdir(parents=True)
    for name, inode in (("net", 11), ("ipc", 12), ("uts", 13), ("mnt", 14), ("pid", 15), ("user", 1)):
        os.symlink(f"{name}:[{inode}]", base / "ns" / name)
    (base / "status").write_text(STATUS)
    (base / "uid_map").write_text("         0          0 4294967295\n")
    (base / "gid_map").write_text("         0          0 4294967295\n")
    (base / "mountinfo").write_text(MOUNTINFO)
    for path in ("proc/acpi", "proc/keys", "proc/sys", "proc/fs", "sys/firmware"):
        (base / "root" / path).mkdir(parents=True)
    return str(tmp_path / "proc")


def test_inspect_process_reads_status_maps_and_mounts(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path)
    info = inspect.inspect_process(4242, inspect.capability_names(), proc)
    assert info["nspid"] == [4242, 1]
    assert info["namespaces"] == {"ipc": 12, "mnt": 14, "net": 11, "pid": 15, "user": 1, "uts": 13}
    assert info["uidMap"] == ["0 0 4294967295"]
    assert info["noNewPrivs"] is True and info["seccomp"] == {"mode": "filter", "filters": 1}
    effective = info["capabilities"]["effective"]
    assert sum(1 << NUMBERS[name] for name in effective) == DEFAULT_MASK
    assert info["capabilities"]["ambient"] == []
    last = info["mounts"][-1]
    assert last["target"] == "/with space" and last["source"] == "my src" and last["propagation"] == "shared:5"
    assert info["mounts"][0]["superOptions"].startswith("rw,lowerdir=")


def test_path_states(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path)
    table = inspect.mounts(4242, proc)
    state = {p: inspect.path_state(4242, table, p, proc)["state"]
             for p in ("/proc/acpi", "/proc/keys", "/proc/sys", "/proc/fs", "/proc/kcore")}
    assert state == {"/proc/acpi": "masked", "/proc/keys": "masked", "/proc/sys": "read-only",
                     "/proc/fs": "writable", "/proc/kcore": "absent"}


def test_sharing() -> None:
    host = {"net": 1, "user": 9, "mnt": 2}
    pause = {"net": 5, "user": 9, "mnt": 6}
    assert inspect.sharing({"net": 5, "user": 9, "mnt": 7}, pause, host) == {"net": "pause", "user": "host", "mnt": "own"}
    assert inspect.sharing({"net": 1}, None, host) == {"net": "host"}


def test_capability_names_cover_our_table() -> None:
    names = inspect.capability_names()
    for name, number in NUMBERS.items():
        assert names[number] == name
    assert inspect.decode_caps(1 << 63, names) == ["CAP_63"]


def _pod(spec: dict[str, Any]) -> dict[str, Any]:
    containers = [{"image": "busybox", **c} for c in spec["containers"]]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {**spec, "containers": containers}}


def test_boundary_asked() -> None:
    names = inspect.capability_names()
    manifest = _pod({"securityContext": {"seccompProfile": {"type": "Unconfined"}},
                     "containers": [{"name": "a"},
                                    {"name": "b", "securityContext": {
                                        "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
                                        "allowPrivilegeEscalation": True,
                                        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}},
                                    {"name": "c", "securityContext": {"privileged": True}}]})
    a = inspect.boundary_asked(manifest, "a", names)
    b = inspect.boundary_asked(manifest, "b", names)
    c = inspect.boundary_asked(manifest, "c", names)
    assert a is not None and b is not None and c is not None
    assert (a["seccomp"], a["noNewPrivs"], int(a["capabilitiesHex"], 16)) == ("Unconfined", True, DEFAULT_MASK)
    assert (b["seccomp"], b["noNewPrivs"], b["capabilities"]) == ("Localhost p.json", False, ["NET_ADMIN"])
    assert (c["seccomp"], c["seccompType"], c["noNewPrivs"]) == ("Unconfined (privileged)", "Unconfined", False)
    plain = inspect.boundary_asked(_pod({"containers": [{"name": "a"}]}), "a", names)
    assert plain is not None and plain["seccomp"] == "RuntimeDefault"
    assert inspect.boundary_asked(manifest, "nope", names) is None
    assert inspect.boundary_asked({"spec": {}}, "a", names) is None  # no valid Pod


def _seen(mode: str, filters: int, nnp: bool, caps: int) -> dict[str, Any]:
    return {"seccomp": {"mode": mode, "filters": filters}, "noNewPrivs": nnp,
            "capabilitiesHex": {key: f"{caps:016x}" for key in ("CapPrm", "CapEff", "CapBnd")}}


def test_boundary_gaps_name_what_is_not_in_force() -> None:
    names = inspect.capability_names()
    asked = inspect.boundary_asked(_pod({"containers": [{"name": "a"}]}), "a", names)
    assert asked is not None
    assert inspect.boundary_gaps(asked, _seen("filter", 1, True, DEFAULT_MASK), names) == []
    # more protection than asked is no gap
    assert inspect.boundary_gaps(asked, _seen("filter", 2, True, 0), names) == []
    gaps = inspect.boundary_gaps(asked, _seen("disabled", 0, False, DEFAULT_MASK | 1 << NUMBERS["SYS_ADMIN"]), names)
    assert gaps == ["seccomp RuntimeDefault asked, the kernel shows disabled (0 filters)",
                    "no_new_privs asked, the kernel shows 0",
                    "permitted capabilities beyond the asked set: SYS_ADMIN",
                    "effective capabilities beyond the asked set: SYS_ADMIN",
                    "bounding capabilities beyond the asked set: SYS_ADMIN"]
    unconfined = {**asked, "seccomp": "Unconfined", "seccompType": "Unconfined", "noNewPrivs": False}
    assert inspect.boundary_gaps(unconfined, _seen("disabled", 0, False, DEFAULT_MASK), names) == []
