"""seccomp filters: a profile (RuntimeDefault or a Localhost JSON file) compiled to classic BPF.

The runtime builds each filter with libseccomp (the library runc, crun and containerd use), exports
it as raw `struct sock_filter` bytes and hands those to the spawn request; the native child only
calls seccomp(2) with them just before execve (after no_new_privs). A compiled filter is cached
under `cache_dir`, keyed by everything it depends on (the profile's text or the code that makes
RuntimeDefault, the capabilities, the architecture, the kernel and libseccomp), so a start costs a
few stat() calls and one small read, never a compile. The entry is also what `sandbox exec` and
exec probes load later (the container's identity names it), so they get the same filter.

Profiles use Docker's JSON shape, which is also what the kubelet's Localhost profiles are and what
containerd loads: `defaultAction`/`defaultErrnoRet`, `architectures` or `archMap`, and `syscalls`
rules with `names`, `action`, `errnoRet`, `args` and `includes`/`excludes` (`caps`, `arches`,
`minKernel`). The containerd/Docker semantics are kept: a rule's `includes.caps` all have to be
held, any of `excludes.caps` held skips it; comparisons on the same argument are alternatives
(one rule each, as runc does), on different arguments all must hold; names libseccomp does not
know are skipped.

Binding: libseccomp through cffi's ABI mode (dlopen of libseccomp.so.2, Debian's libseccomp2).
cffi is already the project's FFI and locked; libseccomp's C API is the stable, maintained
interface. PyPI's pyseccomp (ctypes, last release 2021, several prototypes undeclared) would add
an unmaintained dependency for the fifteen functions declared below. The binding is loaded only
when a filter has to be compiled.
"""

from __future__ import annotations

import os
import sys

from sandbox.security.filterfile import ProfileError as ProfileError  # re-exported: raised by both
from sandbox.security.filterfile import read_filter

TYPE_CHECKING = False  # pathlib and typing cost milliseconds to import; checkers need them only
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

RUNTIME_DEFAULT, LOCALHOST, UNCONFINED = "RuntimeDefault", "Localhost", "Unconfined"
FORMAT = "sbx-seccomp-1"  # bump when the compiler below changes what it emits
MAX_PROFILE_BYTES = 1024 * 1024
BPF_MAXINSNS = 4096  # the kernel refuses longer classic BPF programs
_LIBSECCOMP = "libseccomp.so.2"
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64",
             "/lib")
_HERE = os.path.dirname(os.path.abspath(__file__))
# Docker's names in `includes.arches` are GOARCH's but for 32-bit x86, which it calls x86 (moby's
# goToNative); GOARCH itself comes from sandbox.images, loaded on every run already.
_PROFILE_ARCH_BY_GOARCH = {"386": "x86"}


def filter_for(profile_type: str, localhost_profile: str | None, caps_mask: int, profiles_root: Path,
               cache_dir: Path) -> bytes | None:
    """The BPF program (struct sock_filter array) a container's process loads, None for none.

    `profile_type` is the effective seccompProfile type (RuntimeDefault, Localhost, Unconfined);
    `localhost_profile` a path relative to `profiles_root` (the kubelet's `<root>/seccomp`);
    `caps_mask` the capability set the process keeps (bit n = capability n), which decides the
    capability-guarded calls. Raises ProfileError for a missing or bad Localhost profile."""
    path = filter_file_for(profile_type, localhost_profile, caps_mask, profiles_root, cache_dir)
    return None if path is None else read_filter(path)


def filter_file_for(profile_type: str, localhost_profile: str | None, caps_mask: int, profiles_root: Path,
                    cache_dir: Path) -> Path | None:
    """As filter_for, but the cache entry holding the program (compiled now if missing)."""
    if profile_type == UNCONFINED:
        return None
    if profile_type == LOCALHOST:
        path = localhost_path(profiles_root, localhost_profile or "")
        source = _read_profile(path)
        key_material = b"localhost\0" + source
    elif profile_type == RUNTIME_DEFAULT:
        path, source = None, None
        key_material = b"runtime-default\0"
    else:
        raise ProfileError(f"unknown profile type {profile_type!r}", 22, profile_type)
    cached = cache_dir / f"{_cache_key(key_material, caps_mask)}.bpf"
    if os.path.exists(cached):
        # sandbox/trace.py is loaded by --trace only: off costs this lookup
        if "sandbox.trace" in sys.modules and sys.modules["sandbox.trace"].active is not None:
            profile = _parse(source, path) if source is not None and path is not None else _default()
            _trace_filter(profile, caps_mask, str(path or RUNTIME_DEFAULT), cached, "cached")
        return cached
    profile = _parse(source, path) if source is not None and path is not None else _default()
    program = compile_profile(profile, caps_mask, where=str(path or RUNTIME_DEFAULT))
    _store(cached, program)
    if "sandbox.trace" in sys.modules and sys.modules["sandbox.trace"].active is not None:
        _trace_filter(profile, caps_mask, str(path or RUNTIME_DEFAULT), cached, "compiled now")
    return cached


def _trace_filter(profile: dict[str, Any], caps_mask: int, where: str, cached: Path, how: str) -> None:
    """--trace: the profile's rules that apply to this process (its capabilities, this
    architecture), and the filter file stage 2 will load."""
    from sandbox.trace import emit

    rules = [r for r in profile.get("syscalls") or () if isinstance(r, dict)
             and rule_applies(r, caps_mask, profile_arch())]
    calls = sum(len(r.get("names") or ()) + ("name" in r) for r in rules)
    emit("runtime", "seccomp", f"seccomp profile {where}: {len(rules)} rules naming {calls} syscalls apply "
         f"(caps {caps_mask:016x}) -> filter {cached} ({how})", profile=where, rules=len(rules), syscalls=calls,
         filter=str(cached))


def localhost_path(profiles_root: Path, name: str) -> str:
    """`localhostProfile` below the profiles directory; a name that would leave it (absolute, `..`,
    a symlink out) is refused, as the kubelet refuses one that is not a descendant of its root."""
    root = os.path.realpath(profiles_root)
    if not name or "\0" in name or name.startswith("/"):
        raise ProfileError("localhostProfile must be a relative path", 22, name)
    resolved = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, resolved]) != root or resolved == root:
        raise ProfileError(f"localhostProfile leaves the profiles directory {root}", 1, name)
    return resolved


def _read_profile(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as e:
        raise ProfileError(f"cannot read: {e.strerror}", e.errno or 5, str(path)) from None
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(f"larger than {MAX_PROFILE_BYTES} bytes", 27, str(path))
    return data


def _code_stats() -> list[str]:
    """The code a compiled filter depends on: this compiler, the binding and the default profile,
    compared by stat (size, mtime, inode) like the manifest cache's fingerprint."""
    parts = [FORMAT]
    for name in ("seccomp.py", "_libseccomp.py", "default_profile.py"):
        path = os.path.join(_HERE, name)
        st = os.stat(path)
        parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
    return parts


def _libseccomp_stat() -> str:
    for directory in _LIB_DIRS:
        try:
            st = os.stat(os.path.join(directory, _LIBSECCOMP))
        except OSError:
            continue
        return f"{directory}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    return "libseccomp:?"


def _cache_key(material: bytes, caps_mask: int) -> str:
    from _blake2 import blake2b  # hashlib's own blake2b; `import hashlib` costs ~3 ms (OpenSSL)

    uname = os.uname()
    code = ";".join(_code_stats())
    context = f"{code};{uname.machine};{uname.release};caps={caps_mask:x};{_libseccomp_stat()}\0"
    return blake2b(context.encode() + material, digest_size=20).hexdigest()


def _store(path: Path, program: bytes) -> None:
    """Write the entry atomically (a concurrent start reads no entry or the whole file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(program)
        os.replace(tmp, path)
    except OSError as e:
        raise ProfileError(f"cannot store the compiled filter: {e.strerror}", e.errno or 5, str(path)) from None


def _default() -> dict[str, Any]:
    from sandbox.security import default_profile

    return default_profile.profile()


def _parse(source: bytes, path: str) -> dict[str, Any]:
    import json

    try:
        profile = json.loads(source)
    except (ValueError, RecursionError) as e:
        raise ProfileError(f"not valid JSON: {e}", 22, str(path)) from None
    if not isinstance(profile, dict) or not isinstance(profile.get("syscalls", []), list):
        raise ProfileError("not a seccomp profile (a JSON object with a `syscalls` list)", 22, str(path))
    return profile


# ---- the compiler ----------------------------------------------------------------------------

_ACTIONS = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
            "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000,
            "SCMP_ACT_TRACE": 0x7FF00000, "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000}
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_EPERM = 1


def action_value(name: object, errno_ret: object, where: str) -> int:
    """SCMP_ACT_* by name; ERRNO and TRACE carry `errnoRet` (EPERM when unset, as runc)."""
    if name == "SCMP_ACT_NOTIFY":
        raise ProfileError("SCMP_ACT_NOTIFY needs a listener, which sandbox does not run", 95, where)
    if not isinstance(name, str) or name not in _ACTIONS:
        raise ProfileError(f"unknown action {name!r}", 22, where)
    value = _ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        ret = _EPERM if errno_ret is None else errno_ret
        if type(ret) is not int or not 0 <= ret <= 0xFFFF:
            raise ProfileError(f"errnoRet must be between 0 and 65535, got {ret!r}", 22, where)
        value |= ret
    return value


def _capability(name: str) -> int:
    from sandbox.process.capabilities import NUMBERS

    return NUMBERS.get(name.upper().removeprefix("CAP_"), -1)


def _kernel_at_least(version: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        out = []
        for part in text.split(".")[:3]:
            digits = "".join(ch for ch in part if ch.isdigit()) or "0"
            out.append(int(digits))
        return tuple(out)

    return numbers(os.uname().release.split("-")[0]) >= numbers(version)


def rule_applies(rule: dict[str, Any], caps_mask: int, goarch: str) -> bool:
    """Docker's includes/excludes: every included capability held, the architecture listed, the
    kernel recent enough; no excluded capability held, the architecture not excluded."""
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    for cap in includes.get("caps") or ():
        number = _capability(str(cap))
        if number < 0 or not caps_mask >> number & 1:
            return False
    if includes.get("arches") and goarch not in includes["arches"]:
        return False
    if includes.get("minKernel") and not _kernel_at_least(str(includes["minKernel"])):
        return False
    for cap in excludes.get("caps") or ():
        number = _capability(str(cap))
        if number >= 0 and caps_mask >> number & 1:
            return False
    return goarch not in (excludes.get("arches") or ())


def _arg_sets(args: list[dict[str, Any]], where: str) -> list[list[tuple[int, int, int, int]]]:
    """The comparisons of one rule: all in one rule, or one rule each when an argument is
    compared more than once (runc's reading: those are alternatives, not a conjunction)."""
    cmps = []
    for arg in args:
        op = _OPS.get(str(arg.get("op")))
        index, value, value_two = arg.get("index"), arg.get("value", 0), arg.get("valueTwo", 0)
        if op is None or type(index) is not int or not 0 <= index < 6:
            raise ProfileError(f"bad argument comparison {arg!r}", 22, where)
        if any(type(v) is not int or not 0 <= v < 1 << 64 for v in (value, value_two)):
            raise ProfileError(f"argument values must be 64-bit unsigned integers: {arg!r}", 22, where)
        cmps.append((index, op, value, value_two))
    indexes = [c[0] for c in cmps]
    if len(set(indexes)) < len(indexes):
        return [[c] for c in cmps]
    return [cmps]


def _arches(profile: dict[str, Any], native: str) -> list[str]:
    """libseccomp arch names to add: the native one's entry of `archMap` with its
    sub-architectures, else `architectures`, else the native one alone."""
    def plain(name: object) -> str:
        return str(name).lower().removeprefix("scmp_arch_")

    for entry in profile.get("archMap") or ():
        if plain(entry.get("architecture")) == native:
            return [native] + [plain(a) for a in entry.get("subArchitectures") or ()]
    listed = [plain(a) for a in profile.get("architectures") or ()]
    return listed or [native]


def profile_arch(machine: str | None = None) -> str:
    """The name a profile's `includes.arches`/`excludes.arches` give `machine` (this one by default)."""
    from sandbox.images import goarch

    name = goarch(machine)
    return _PROFILE_ARCH_BY_GOARCH.get(name, name)


def compile_profile(profile: dict[str, Any], caps_mask: int, where: str = "") -> bytes:
    """The profile as a BPF program for this machine, for a process holding `caps_mask`."""
    from sandbox.security import _libseccomp

    native = os.uname().machine
    goarch = profile_arch(native)
    default = action_value(profile.get("defaultAction"), profile.get("defaultErrnoRet"), where)
    with _libseccomp.Filter(default) as flt:
        for arch in _arches(profile, native):
            flt.add_arch(arch, where)
        for rule in profile.get("syscalls") or ():
            if not isinstance(rule, dict) or not rule_applies(rule, caps_mask, goarch):
                continue
            action = action_value(rule.get("action"), rule.get("errnoRet"), where)
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default action
            for arg_set in _arg_sets(rule.get("args") or [], where):
                for name in rule.get("names") or ([rule["name"]] if "name" in rule else []):
                    flt.add_rule(action, str(name), arg_set, where)
        program = flt.export_bpf(where)
    if default >> 16 not in _ALLOWING:
        arches = [(arch, _libseccomp.arch_token(arch)) for arch in _arches(profile, native)]
        highest = {arch: (token, max([_libseccomp.syscall_number(token, n) for n in _names(profile)] + [-1]))
                   for arch, token in arches if token}
        program = enosys_stub(highest) + program
    if len(program) // 8 > BPF_MAXINSNS:
        raise ProfileError(f"compiles to {len(program) // 8} instructions, more than the kernel's "
                           f"{BPF_MAXINSNS}", 7, where)
    return program


# ---- ENOSYS for calls newer than the profile ---------------------------------------------------
# A call the profile does not know (newer than it, or than the installed libseccomp) must look
# unimplemented, not forbidden: libc falls back on ENOSYS (clone3 -> clone, fchmodat2 -> fchmodat,
# statx -> fstatat) but gives up on EPERM. runc prepends the same kind of stub (patchbpf.go): per
# architecture, a number above the highest one the profile names returns ENOSYS; anything else
# goes on to libseccomp's program, which checks the architecture itself. Not for profiles that
# allow by default (their unknown calls are allowed already).

_ALLOWING = (0x7FFF, 0x7FFC, 0x7FF0)  # ALLOW, LOG, TRACE (action >> 16)
_X32_BIT = 0x40000000
_LD_ABS, _JEQ, _JGT, _JGE, _JA, _RET = 0x20, 0x15, 0x25, 0x35, 0x05, 0x06
_NR, _ARCH = 0, 4  # offsets in struct seccomp_data


def _names(profile: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for rule in profile.get("syscalls") or ():
        if isinstance(rule, dict):
            found.update(str(n) for n in rule.get("names") or ())
            if "name" in rule:
                found.add(str(rule["name"]))
    return found


def enosys_stub(highest: dict[str, tuple[int, int]]) -> bytes:
    """BPF that answers ERRNO(ENOSYS) for a call numbered above the highest one on that
    architecture and falls through to what follows it otherwise. `highest` maps libseccomp's
    architecture name to (its token, which is the kernel's AUDIT_ARCH_* value, and the highest
    number). x32 calls arrive as x86_64 with bit 30 set in the number, so they are checked inside
    the x86_64 block."""
    import struct

    blocks: list[list[tuple[int, int, int, int | str]]] = []
    for arch, (audit, top) in highest.items():
        if top < 0 or arch == "x32":
            continue
        top_x32 = highest.get("x32", (0, -1))[1] if arch == "x86_64" else -1
        # jump offsets count from the next instruction; "end" is patched below
        blocks.append([
            (_JEQ, 0, 6, audit),                                  # 0: not this arch -> next block
            (_LD_ABS, 0, 0, _NR),                                 # 1
            (_JGE, 0, 1, _X32_BIT),                               # 2: x32 number -> 3, else -> 4
            (_JGT, 2, 1, top_x32 if top_x32 >= 0 else 0xFFFFFFFF),  # 3: -> 6 ENOSYS / 5
            (_JGT, 1, 0, top),                                    # 4: -> 6 ENOSYS / 5
            (_JA, 0, 0, "end"),                                   # 5: on to the filter
            (_RET, 0, 0, 0x00050000 | 38),                        # 6: ERRNO(ENOSYS)
        ])
    if not blocks:
        return b""
    insns: list[tuple[int, int, int, int | str]] = [(_LD_ABS, 0, 0, _ARCH)]
    for block in blocks:
        insns += block
    out = bytearray()
    for i, (code, jt, jf, k) in enumerate(insns):
        out += struct.pack("<HBBI", code, jt, jf, len(insns) - i - 1 if k == "end" else k)
    return bytes(out)
