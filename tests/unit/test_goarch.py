"""The one uname-machine -> GOARCH map (sandbox/images/__init__.py) and the names its users give
this machine: image platforms, imported images' configs, seccomp profiles' arches."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sandbox.images import GOARCH_BY_MACHINE, goarch
from sandbox.images.registry import Platform
from sandbox.security.seccomp import profile_arch


@pytest.mark.parametrize(("machine", "expected"), [
    ("x86_64", "amd64"), ("aarch64", "arm64"), ("armv7l", "arm"), ("armv6l", "arm"), ("i686", "386"),
    ("i386", "386"), ("ppc64le", "ppc64le"), ("s390x", "s390x"), ("riscv64", "riscv64"),
    ("loongarch64", "loong64"),
])
def test_machines_map_to_go_names(machine: str, expected: str) -> None:
    assert goarch(machine) == expected


def test_an_unknown_machine_keeps_its_name() -> None:
    assert goarch("mips64") == "mips64"


def test_this_machine_by_default() -> None:
    machine = os.uname().machine
    assert goarch() == GOARCH_BY_MACHINE.get(machine, machine)
    assert Platform().architecture == goarch()


def test_seccomp_profiles_call_32_bit_x86_x86() -> None:
    # Docker's profiles (moby's goToNative) name 386 "x86"; every other GOARCH as Go does
    assert profile_arch("i686") == profile_arch("i386") == "x86"
    assert profile_arch("x86_64") == "amd64" and profile_arch("aarch64") == "arm64"
    assert profile_arch("armv6l") == "arm"


def test_seccomp_reads_the_map_without_the_registry_client() -> None:
    script = ("import sys\nfrom sandbox.security.seccomp import profile_arch\nprofile_arch()\n"
              "print(sorted(m for m in sys.modules if m.startswith('sandbox.images')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["['sandbox.images']"]
