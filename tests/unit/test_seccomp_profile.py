"""seccomp profiles without the kernel: which calls RuntimeDefault allows for which capabilities,
and what the compiled program answers. The program libseccomp exports is run here by a small
classic-BPF interpreter over seccomp_data (nr, arch, args), so a rule is checked per architecture
(x86_64, x86 through int 0x80, x32) exactly as the kernel would evaluate it."""

from __future__ import annotations

import json
import os
import platform
import struct
from pathlib import Path

import pytest

from sandbox.errors import ContainerStartError
from sandbox.process import capabilities, confinement
from sandbox.security import default_profile, seccomp
from sandbox.spec.model import Container, Pod, PodSecurityContext, PodSpec, SecurityContext
from sandbox.spec.model import SecurityProfile as Profile

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers below are x86_64's")

AUDIT_X86_64, AUDIT_I386 = 0xC000003E, 0x40000003
X32_BIT = 0x40000000
NR = {"keyctl": 250, "add_key": 248, "request_key": 249, "clone": 56, "clone3": 435, "unshare": 272,
      "mount": 165, "umount2": 166, "setns": 308, "io_uring_setup": 425, "io_uring_enter": 426,
      "io_uring_register": 427, "userfaultfd": 323, "kexec_load": 246, "kexec_file_load": 320,
      "swapon": 167, "swapoff": 168, "pivot_root": 155, "personality": 135, "socket": 41, "getpid": 39,
      "read": 0, "reboot": 169, "chroot": 161, "ptrace": 101, "open_by_handle_at": 304, "bpf": 321,
      "init_module": 175, "acct": 163, "settimeofday": 164, "iopl": 172}
NR_I386 = {"keyctl": 288, "getpid": 20, "mount": 21, "unshare": 310}
ALLOW, ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS = ERRNO | 1, ERRNO | 38
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x00020000, 17
SYS_ADMIN = 1 << capabilities.NUMBERS["SYS_ADMIN"]


def run_bpf(program: bytes, nr: int, arch: int = AUDIT_X86_64, args: tuple[int, ...] = (),
            budget: int = 4096) -> int:
    """Evaluate a classic BPF seccomp program; returns its SECCOMP_RET_* value. Fails when the
    evaluation takes more than `budget` instructions."""
    full = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *full)
    insns = [struct.unpack_from("<HBBI", program, off) for off in range(0, len(program), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        budget -= 1
        assert budget >= 0, f"call {nr} takes too many instructions"
        cls = code & 0x07
        if cls == 0x00:  # BPF_LD
            a = struct.unpack_from("<I", data, k)[0] if code == 0x20 else k if code == 0x00 else mem[k]
        elif cls == 0x01:  # BPF_LDX
            x = k if code & 0xE0 == 0x00 else mem[k]
        elif cls == 0x02:  # BPF_ST
            mem[k] = a
        elif cls == 0x03:  # BPF_STX
            mem[k] = x
        elif cls == 0x04:  # BPF_ALU
            src = x if code & 0x08 else k
            op = code & 0xF0
            a = {0x00: a + src, 0x10: a - src, 0x20: a * src, 0x50: a & src, 0x40: a | src,
                 0x60: a << src, 0x70: a >> src, 0xA0: a ^ src}[op] & 0xFFFFFFFF
        elif cls == 0x05:  # BPF_JMP
            op = code & 0xF0
            src = x if code & 0x08 else k
            if op == 0x00:
                pc += k
                continue
            taken = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: a & src != 0}[op]
            pc += jt if taken else jf
        elif cls == 0x06:  # BPF_RET
            return int(k if code & 0x18 == 0x00 else a)
        elif cls == 0x07:  # BPF_MISC
            if code == 0x07:
                x = a
            else:
                a = x
        else:
            raise AssertionError(f"unknown BPF instruction {code:#x}")


@pytest.fixture(scope="module")
def default_filter(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    base = tmp_path_factory.mktemp("seccomp")
    program = seccomp.filter_for("RuntimeDefault", None, capabilities.DEFAULT_MASK, base / "profiles", base / "cache")
    assert program is not None
    return program


def compiled(caps: int) -> bytes:
    return seccomp.compile_profile(default_profile.profile(), caps)


@pytest.mark.parametrize("name", ["keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter",
                                  "io_uring_register", "userfaultfd", "kexec_load", "kexec_file_load", "swapon",
                                  "swapoff", "pivot_root", "mount", "umount2", "unshare", "setns", "reboot",
                                  "open_by_handle_at", "bpf", "init_module", "acct", "settimeofday", "iopl"])
def test_default_container_is_refused_with_eperm(default_filter: bytes, name: str) -> None:
    assert run_bpf(default_filter, NR[name]) == EPERM


@pytest.mark.parametrize("name", ["read", "getpid", "ptrace", "chroot"])
def test_ordinary_calls_are_allowed(default_filter: bytes, name: str) -> None:
    # chroot: SYS_CHROOT is among the default capabilities; ptrace: allowed on kernels >= 4.8
    assert run_bpf(default_filter, NR[name]) == ALLOW


def test_clone_without_namespace_flags_only_and_clone3_enosys(default_filter: bytes) -> None:
    assert run_bpf(default_filter, NR["clone"], args=(SIGCHLD,)) == ALLOW
    assert run_bpf(default_filter, NR["clone"], args=(SIGCHLD | CLONE_NEWUSER,)) == EPERM
    assert run_bpf(default_filter, NR["clone"], args=(CLONE_NEWNS,)) == EPERM
    assert run_bpf(default_filter, NR["clone3"]) == ENOSYS


def test_calls_newer_than_the_profile_are_enosys_not_eperm(default_filter: bytes) -> None:
    """runc's -ENOSYS stub: libc falls back on ENOSYS but not on EPERM."""
    for nr in (462, 1000, 0x3FFFFFFF):  # mseal (newer than this libseccomp knows), far future ones
        assert run_bpf(default_filter, nr) == ENOSYS, nr
    for nr in (1000, 0x3FFFFFFF):  # x32's own numbers run up to 547
        assert run_bpf(default_filter, X32_BIT | nr) == ENOSYS, nr
    assert run_bpf(default_filter, 1000, arch=AUDIT_I386) == ENOSYS
    assert run_bpf(default_filter, NR["keyctl"]) == EPERM  # known to the profile and refused


def test_every_call_is_decided_in_a_few_dozen_instructions(default_filter: bytes) -> None:
    """libseccomp's binary tree: a linear list would cost ~600 instructions for a late call."""
    for nr in range(0, 600):
        run_bpf(default_filter, nr, budget=64)
        run_bpf(default_filter, nr, arch=AUDIT_I386, budget=64)


def test_personality_only_the_allowed_personas(default_filter: bytes) -> None:
    for persona in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert run_bpf(default_filter, NR["personality"], args=(persona,)) == ALLOW
    assert run_bpf(default_filter, NR["personality"], args=(0x0040000,)) == EPERM  # ADDR_NO_RANDOMIZE


def test_socket_refuses_alg_and_vsock(default_filter: bytes) -> None:
    for family in (1, 2, 10, 16, 17, 39, 44):  # unix, inet, inet6, netlink, packet, nfc, xdp
        assert run_bpf(default_filter, NR["socket"], args=(family, 1)) == ALLOW, family
    for family in (38, 40):
        assert run_bpf(default_filter, NR["socket"], args=(family, 1)) == EPERM, family


def test_compat_architectures_are_filtered_too(default_filter: bytes) -> None:
    """int 0x80 (x86) and x32 calls meet the same list, so they are no way around it."""
    assert run_bpf(default_filter, NR_I386["keyctl"], arch=AUDIT_I386) == EPERM
    assert run_bpf(default_filter, NR_I386["unshare"], arch=AUDIT_I386) == EPERM
    assert run_bpf(default_filter, NR_I386["getpid"], arch=AUDIT_I386) == ALLOW
    assert run_bpf(default_filter, X32_BIT | NR["keyctl"]) == EPERM
    assert run_bpf(default_filter, X32_BIT | NR["getpid"]) == ALLOW


def test_sys_admin_adds_the_mount_family_and_namespace_clone() -> None:
    program = compiled(capabilities.DEFAULT_MASK | SYS_ADMIN)
    for name in ("mount", "umount2", "unshare", "setns", "bpf", "clone3"):
        assert run_bpf(program, NR[name]) == ALLOW, name
    assert run_bpf(program, NR["clone"], args=(SIGCHLD | CLONE_NEWUSER,)) == ALLOW
    for name in ("keyctl", "io_uring_setup", "pivot_root", "kexec_load", "userfaultfd", "swapon"):
        assert run_bpf(program, NR[name]) == EPERM, name  # never, whatever the capabilities


@pytest.mark.parametrize(("cap", "call"), [("SYS_BOOT", "reboot"), ("SYS_MODULE", "init_module"),
                                           ("SYS_PACCT", "acct"), ("SYS_TIME", "settimeofday"),
                                           ("SYS_RAWIO", "iopl"), ("DAC_READ_SEARCH", "open_by_handle_at"),
                                           ("BPF", "bpf")])
def test_each_capability_adds_its_calls(cap: str, call: str) -> None:
    assert run_bpf(compiled(capabilities.DEFAULT_MASK), NR[call]) == EPERM
    assert run_bpf(compiled(capabilities.DEFAULT_MASK | 1 << capabilities.NUMBERS[cap]), NR[call]) == ALLOW


def test_chroot_goes_with_sys_chroot() -> None:
    without = capabilities.DEFAULT_MASK & ~(1 << capabilities.NUMBERS["SYS_CHROOT"])
    assert run_bpf(compiled(without), NR["chroot"]) == EPERM


def test_rules_per_capability_without_compiling() -> None:
    rules = default_profile.profile()["syscalls"]
    mount_rules = [r for r in rules if "mount" in r["names"]]
    assert [r["includes"]["caps"] for r in mount_rules] == [["CAP_SYS_ADMIN"]]
    assert seccomp.rule_applies(mount_rules[0], SYS_ADMIN, "amd64")
    assert not seccomp.rule_applies(mount_rules[0], capabilities.DEFAULT_MASK, "amd64")
    clone3 = next(r for r in rules if r["names"] == ["clone3"] and r["action"] == "SCMP_ACT_ERRNO")
    assert seccomp.rule_applies(clone3, 0, "amd64") and not seccomp.rule_applies(clone3, SYS_ADMIN, "amd64")
    allowed = {n for r in rules if not r["includes"] and not r["excludes"] and not r["args"] for n in r["names"]}
    never = {"keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "userfaultfd", "swapon",
             "swapoff", "pivot_root", "io_uring_setup", "io_uring_enter", "io_uring_register", "mount", "clone3"}
    assert not allowed & never
    assert not any(n.startswith("io_uring") or n in never - {"mount", "clone3"}
                   for r in rules for n in r["names"])


def test_the_cache_is_keyed_by_capabilities_and_reused(tmp_path: Path) -> None:
    args = ("RuntimeDefault", None)
    first = seccomp.filter_for(*args, capabilities.DEFAULT_MASK, tmp_path / "p", tmp_path / "c")
    admin = seccomp.filter_for(*args, capabilities.DEFAULT_MASK | SYS_ADMIN, tmp_path / "p", tmp_path / "c")
    assert first != admin
    entries = sorted(os.listdir(tmp_path / "c"))
    assert len(entries) == 2 and all(e.endswith(".bpf") for e in entries)
    assert seccomp.filter_for(*args, capabilities.DEFAULT_MASK, tmp_path / "p", tmp_path / "c") == first
    assert sorted(os.listdir(tmp_path / "c")) == entries


def test_unconfined_has_no_filter(tmp_path: Path) -> None:
    assert seccomp.filter_for("Unconfined", None, 0, tmp_path, tmp_path) is None


def write_profile(root: Path, name: str, profile: dict[str, object]) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(profile))


def test_localhost_profile_in_docker_and_oci_shape(tmp_path: Path) -> None:
    profiles = tmp_path / "seccomp"
    write_profile(profiles, "deny-getpid.json", {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                     {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
                         {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]},
                     {"names": ["no_such_call_anywhere"], "action": "SCMP_ACT_KILL"}]})
    program = seccomp.filter_for("Localhost", "deny-getpid.json", 0, profiles, tmp_path / "cache")
    assert program is not None
    assert run_bpf(program, NR["getpid"]) == ERRNO | 13
    assert run_bpf(program, NR["keyctl"]) == ALLOW
    assert run_bpf(program, 62, args=(1, 9)) == EPERM  # kill(1, SIGKILL): either comparison
    assert run_bpf(program, 62, args=(1, 15)) == EPERM
    assert run_bpf(program, 62, args=(1, 10)) == ALLOW
    assert run_bpf(program, NR_I386["getpid"], arch=AUDIT_I386) == ERRNO | 13
    assert run_bpf(program, 1000) == ALLOW  # allow-by-default profiles get no ENOSYS stub


@pytest.mark.parametrize("name", ["../escape.json", "/etc/passwd", "", "sub/../../escape.json"])
def test_localhost_profile_stays_under_its_directory(tmp_path: Path, name: str) -> None:
    (tmp_path / "seccomp").mkdir()
    (tmp_path / "escape.json").write_text("{}")
    with pytest.raises(seccomp.ProfileError):
        seccomp.filter_for("Localhost", name, 0, tmp_path / "seccomp", tmp_path / "cache")


def test_localhost_profile_missing_or_bad_is_a_create_error(tmp_path: Path) -> None:
    profiles = tmp_path / "seccomp"
    profiles.mkdir()
    (profiles / "bad.json").write_text("{not json")
    (profiles / "notify.json").write_text(json.dumps({"defaultAction": "SCMP_ACT_NOTIFY"}))
    for name, words in (("missing.json", "cannot read"), ("bad.json", "not valid JSON"),
                        ("notify.json", "listener")):
        with pytest.raises(ContainerStartError) as caught:
            seccomp.filter_for("Localhost", name, 0, profiles, tmp_path / "cache")
        assert caught.value.reason == "CreateContainerError"
        assert words in str(caught.value)


def pod_with(pod_profile: Profile | None, container_sc: SecurityContext | None) -> tuple[Pod, Container]:
    container = Container(name="c", image="busybox", security_context=container_sc)
    spec = PodSpec(containers=(container,), security_context=PodSecurityContext(seccomp_profile=pod_profile))
    return Pod(spec=spec), container


@pytest.mark.parametrize(("pod_profile", "container_sc", "expected"), [
    (None, None, ("RuntimeDefault", None)),
    (Profile("Unconfined"), None, ("Unconfined", None)),
    (Profile("Unconfined"), SecurityContext(seccomp_profile=Profile("RuntimeDefault")), ("RuntimeDefault", None)),
    (Profile("Localhost", "a.json"), None, ("Localhost", "a.json")),
    (None, SecurityContext(seccomp_profile=Profile("Localhost", "b.json")), ("Localhost", "b.json")),
    (Profile("RuntimeDefault"), SecurityContext(privileged=True), ("Unconfined", None)),
])
def test_container_profile_over_pod_profile(pod_profile: Profile | None, container_sc: SecurityContext | None,
                                            expected: tuple[str, str | None]) -> None:
    pod, container = pod_with(pod_profile, container_sc)
    assert confinement.seccomp_profile(pod, container) == expected


def test_identity_names_the_filter_for_exec_and_never_spawns_without_it(tmp_path: Path) -> None:
    """The main process, `sandbox exec`, probes and hooks load one compiled file; a missing file
    fails the spawn instead of running the process unfiltered."""
    from sandbox.process.request import Identity

    path = confinement.seccomp_filter(*pod_with(None, None), capabilities.DEFAULT_MASK, tmp_path)
    assert path is not None and path.startswith(str(tmp_path / "cache" / "seccomp"))
    ident = Identity.from_json(Identity(seccomp=path).to_json())
    assert ident.seccomp == path
    assert ident.request_fields()["seccomp_bpf"] == Path(path).read_bytes()
    assert Identity(seccomp=path, privileged=True).request_fields()["seccomp_bpf"] is None
    assert Identity().request_fields()["seccomp_bpf"] is None
    os.unlink(path)
    with pytest.raises(ContainerStartError):
        ident.request_fields()
