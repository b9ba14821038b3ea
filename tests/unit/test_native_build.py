"""The native helpers as setup.py builds them: with musl-gcc present (the Makefile installs
musl-tools), pause and the shim are small static musl programs.

setup.py falls back to a static glibc build when the musl attempt fails to compile, and does so
without failing the install. That fallback once hid a regression: a constant musl's headers lack
made the shim an 875 KB static glibc program, which took 4-10 ms instead of 0.7 ms to start
(every pod starts one) and more memory per pod."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import sandbox

BIN = Path(sandbox.__file__).parent / "_bin"
# musl builds here: pause ~17 KB, the shim ~96 KB; static glibc ones are 800 KB and more
MUSL_SIZE_MAX = 300 * 1024


def _is_static(path: Path) -> bool:
    """No PT_INTERP program header: the kernel runs it without a dynamic loader."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, f"{path}: not a 64-bit ELF file"
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    types = [int.from_bytes(data[phoff + i * phentsize: phoff + i * phentsize + 4], "little") for i in range(phnum)]
    return 3 not in types  # PT_INTERP


@pytest.mark.parametrize("name", ["pause", "shim"])
def test_helpers_are_static(name: str) -> None:
    assert _is_static(BIN / name)


@pytest.mark.skipif(shutil.which("musl-gcc") is None, reason="musl-gcc not installed: glibc builds are expected")
@pytest.mark.parametrize("name", ["pause", "shim"])
def test_helpers_are_musl_builds_when_musl_is_installed(name: str) -> None:
    size = (BIN / name).stat().st_size
    assert size < MUSL_SIZE_MAX, f"{name} is {size} bytes: setup.py's musl build failed and fell back to glibc"
