"""What the kernel says about a pod's processes: the boundary as it is, not as it was asked for.

Read-only, from /proc only (psutil's way): pids (NSpid), namespace inodes and which are shared
with pause and with the host (PID 1), uid/gid maps, capability sets by name (python-prctl's
names), no_new_privs, seccomp, the masked and read-only paths (containerd's defaults) as the
container's mount table shows them, and every mount with its flags. `sandbox inspect` prints it;
tests compare it with /proc read directly.
"""

from __future__ import annotations

import os

from sandbox.rootfs.plan import MASKED_PATHS, READONLY_PATHS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts")
CAP_SETS = (("CapInh", "inheritable"), ("CapPrm", "permitted"), ("CapEff", "effective"),
            ("CapBnd", "bounding"), ("CapAmb", "ambient"))
SECCOMP_MODES = {"0": "disabled", "1": "strict", "2": "filter"}
# Masking replaces the path with a mount of something else (a read-only tmpfs, /dev/null);
# a read-only path is the same filesystem bound over itself read-only.
KERNEL_FILESYSTEMS = ("proc", "sysfs")


def capability_names() -> dict[int, str]:
    """Bit number -> name as Kubernetes writes it (`NET_ADMIN`): python-prctl's table, then ours
    for any capability the installed prctl does not know."""
    import prctl  # type: ignore[import-untyped]

    from sandbox.process.capabilities import NUMBERS

    names = {number: name for name, number in NUMBERS.items()}
    for name in prctl.ALL_CAP_NAMES:
        number = getattr(prctl, f"CAP_{name.upper()}", None)
        if isinstance(number, int) and name != "last_cap":
            names[number] = name.upper()
    return names


def decode_caps(mask: int, names: dict[int, str]) -> list[str]:
    return [names.get(bit, f"CAP_{bit}") for bit in range(64) if mask >> bit & 1]


def read_status(pid: int, proc: str = "/proc") -> dict[str, str]:
    with open(f"{proc}/{pid}/status") as f:
        return {key: value.strip() for key, _, value in (line.partition(":") for line in f)}


def namespaces(pid: int, proc: str = "/proc") -> dict[str, int]:
    """Namespace type -> inode (`net:[4026531840]` -> 4026531840); types the kernel lacks are left out."""
    found = {}
    for name in NAMESPACES:
        try:
            link = os.readlink(f"{proc}/{pid}/ns/{name}")
        except FileNotFoundError:
            continue
        found[name] = int(link[link.index("[") + 1 : -1])
    return found


def host_namespaces(proc: str = "/proc") -> dict[str, int]:
    """The host's namespaces: PID 1's, or ours where PID 1 is out of reach (this runtime itself
    running in a container, where root may not ptrace-read the outer PID 1)."""
    try:
        return namespaces(1, proc)
    except PermissionError:
        return namespaces(os.getpid(), proc)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")


def mounts(pid: int, proc: str = "/proc") -> list[dict[str, Any]]:
    """/proc/PID/mountinfo (proc(5)) in mount order, as seen from inside: target, fstype, source,
    the mount's own flags (rw/ro, nosuid, nodev, noexec, atime) and the superblock's options."""
    table = []
    with open(f"{proc}/{pid}/mountinfo") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            fields, tail = left.split(), right.split()
            table.append({
                "target": _unescape(fields[4]), "fstype": tail[0], "source": _unescape(tail[1]),
                "root": _unescape(fields[3]), "options": fields[5],
                "superOptions": tail[2] if len(tail) > 2 else "",
                "propagation": " ".join(fields[6:]) or "private",
            })
    return table


def _covering(table: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    """The mount `path` lives on: the longest mount point above it, the last one mounted there."""
    best = None
    for mount in table:
        target = mount["target"]
        if path == target or path.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) >= len(best["target"]):
                best = mount
    return best


def path_state(pid: int, table: list[dict[str, Any]], path: str, proc: str = "/proc") -> dict[str, str]:
    """How one of the default masked/read-only paths looks in the container: `masked` (something
    else mounted over it), `read-only`, `writable`, or `absent` (not on this kernel)."""
    mount = _covering(table, path)
    if mount is not None and mount["target"] == path and mount["fstype"] not in KERNEL_FILESYSTEMS:
        return {"path": path, "state": "masked", "by": f"{mount['fstype']} {mount['root']} ({mount['options']})"}
    try:
        os.lstat(f"{proc}/{pid}/root{path}")
    except FileNotFoundError:
        return {"path": path, "state": "absent", "by": ""}
    except OSError:
        pass
    if mount is None:
        return {"path": path, "state": "unknown", "by": ""}
    readonly = "ro" in mount["options"].split(",")
    return {"path": path, "state": "read-only" if readonly else "writable",
            "by": f"{mount['fstype']} on {mount['target']} ({mount['options']})"}


def cgroups(pid: int, proc: str = "/proc") -> list[dict[str, str]]:
    """/proc/PID/cgroup (cgroups(7)): one entry per hierarchy, `hierarchy-ID:controllers:path`;
    the path is relative to the hierarchy's root as the reader's cgroup namespace shows it (ours:
    the host's). The cgroup2 hierarchy has ID 0 and no controllers. Empty when the file is absent."""
    try:
        with open(f"{proc}/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    table = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        table.append({"hierarchy": hierarchy, "controllers": controllers, "path": path})
    return table


def inspect_process(pid: int, names: dict[int, str], proc: str = "/proc") -> dict[str, Any]:
    """Everything above for one process; raises OSError (ProcessLookupError) if it is gone."""
    try:
        status = read_status(pid, proc)
        ns = namespaces(pid, proc)
        maps = {}
        for kind in ("uid_map", "gid_map"):
            with open(f"{proc}/{pid}/{kind}") as f:
                maps[kind] = [" ".join(line.split()) for line in f]
        table = mounts(pid, proc)
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    caps = {label: decode_caps(int(status.get(key, "0"), 16), names) for key, label in CAP_SETS}
    return {
        "pid": pid,
        "nspid": [int(p) for p in status.get("NSpid", str(pid)).split()],
        "namespaces": ns,
        "uidMap": maps["uid_map"],
        "gidMap": maps["gid_map"],
        "uids": status.get("Uid", "").split(),
        "gids": status.get("Gid", "").split(),
        "groups": status.get("Groups", "").split(),
        "capabilities": caps,
        "capabilitiesHex": {key: status.get(key, "") for key, _ in CAP_SETS},
        "noNewPrivs": status.get("NoNewPrivs") == "1",
        "seccomp": {"mode": SECCOMP_MODES.get(status.get("Seccomp", ""), status.get("Seccomp", "unknown")),
                    "filters": int(status.get("Seccomp_filters", "0"))},
        "maskedPaths": [path_state(pid, table, "/" + p, proc) for p in MASKED_PATHS],
        "readonlyPaths": [path_state(pid, table, "/" + p, proc) for p in READONLY_PATHS],
        "mounts": table,
        "cgroups": cgroups(pid, proc),
    }


def sharing(ns: dict[str, int], pause: dict[str, int] | None, host: dict[str, int]) -> dict[str, str]:
    """Per namespace: `pause` (the pod's), `host`, or `own`."""
    shared = {}
    for name, inode in ns.items():
        if pause is not None and pause.get(name) == inode:
            shared[name] = "pause" if host.get(name) != inode else "host"
        elif host.get(name) == inode:
            shared[name] = "host"
        else:
            shared[name] = "own"
    return shared


def boundary_asked(manifest: dict[str, Any], container: str, names: dict[int, str]) -> dict[str, Any] | None:
    """What the record's manifest asks for `container`, through the rules its start applies
    (confinement.seccomp_profile: RuntimeDefault when nothing is said, Unconfined when
    privileged; launch.wants_no_new_privs; the capability set): the seccomp profile,
    no_new_privs and the capabilities by name and as a mask. None when the manifest is no valid
    Pod or has no such container."""
    from sandbox.process import capabilities, confinement, launch
    from sandbox.spec.load import pod_of_document

    errors: list[Any] = []
    pod = pod_of_document(manifest, "record", errors) if manifest else None
    if pod is None:
        return None
    found = [c for c in (*pod.spec.init_containers, *pod.spec.containers) if c.name == container]
    if not found:
        return None
    spec = found[0]
    kind, localhost = confinement.seccomp_profile(pod, spec)
    privileged = launch.is_privileged(spec)
    try:
        caps = launch.runtime_caps() if privileged else capabilities.for_container(spec)
    except ValueError:
        return None
    profile = f"Localhost {localhost}" if kind == "Localhost" else kind + (" (privileged)" if privileged else "")
    return {"seccomp": profile, "seccompType": kind, "noNewPrivs": launch.wants_no_new_privs(spec),
            "capabilities": decode_caps(caps, names), "capabilitiesHex": f"{caps:016x}"}


def boundary_gaps(asked: dict[str, Any], seen: dict[str, Any], names: dict[int, str]) -> list[str]:
    """What the manifest asks for that the kernel does not show in force for the process: a
    seccomp profile with no filter loaded, no_new_privs off, a capability held (permitted,
    effective or bounding) beyond the asked set. More protection than asked is no gap."""
    gaps = []
    if asked["seccompType"] != "Unconfined" and (seen["seccomp"]["mode"] != "filter" or seen["seccomp"]["filters"] < 1):
        gaps.append(f"seccomp {asked['seccomp']} asked, the kernel shows {seen['seccomp']['mode']} "
                    f"({seen['seccomp']['filters']} filters)")
    if asked["noNewPrivs"] and not seen["noNewPrivs"]:
        gaps.append("no_new_privs asked, the kernel shows 0")
    allowed = int(asked["capabilitiesHex"], 16)
    for key, label in (("CapPrm", "permitted"), ("CapEff", "effective"), ("CapBnd", "bounding")):
        extra = int(seen["capabilitiesHex"].get(key) or "0", 16) & ~allowed
        if extra:
            gaps.append(f"{label} capabilities beyond the asked set: {','.join(decode_caps(extra, names))}")
    return gaps
