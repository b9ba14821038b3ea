"""Only the native build lives here: cffi has no pyproject-only configuration (python-cffi/cffi#55).

`build_ext` first builds the cffi extension `sandbox._native`, then compiles the pause program
(native/pause.c) into sandbox/_bin/pause and the per-pod parent (native/shim.c with the spawn
core) into sandbox/_bin/shim: static with musl-gcc when available (tiny RSS), else a static glibc
build, else a dynamic one.
"""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildWithPause(build_ext):
    def run(self) -> None:
        super().run()
        base = os.path.dirname(os.path.abspath(__file__))
        out_root = base if self.inplace else self.build_lib
        out_dir = os.path.join(out_root, "sandbox", "_bin")
        os.makedirs(out_dir, exist_ok=True)
        native = os.path.join(base, "native")
        build_pause(os.path.join(native, "pause.c"), os.path.join(out_dir, "pause"))
        build_shim(native, os.path.join(out_dir, "shim"), self.build_temp)


def build_pause(source: str, target: str) -> None:
    flags = ["-std=gnu11", "-D_GNU_SOURCE", "-Os", "-Wall", "-Wextra", "-Werror", "-s"]
    attempts = []
    if shutil.which("musl-gcc"):
        attempts.append(["musl-gcc", *flags, "-static"])
    cc = os.environ.get("CC", "cc")
    attempts += [[cc, *flags, "-static"], [cc, *flags]]
    for compiler in attempts:
        if subprocess.run([*compiler, "-o", target, source]).returncode == 0:
            return
    raise SystemExit("could not compile native/pause.c")


SHIM_SOURCES = ["shim.c", "spawn.c", "mounts.c", "caps.c"]


def build_shim(native: str, target: str, temp: str) -> None:
    """musl ships no kernel headers: the host's linux/, asm/ and asm-generic/ are linked into a
    private include directory, and <linux/mount.h> supplies struct mount_attr (glibc's
    <sys/mount.h> has it, musl's has not)."""
    flags = ["-std=gnu11", "-D_GNU_SOURCE", "-Os", "-Wall", "-Wextra", "-Werror", "-s", "-I", native]
    sources = [os.path.join(native, name) for name in SHIM_SOURCES]
    attempts = []
    if shutil.which("musl-gcc"):
        attempts.append(["musl-gcc", *flags, "-isystem", _kernel_headers(temp), "-include", "linux/mount.h", "-static"])
    cc = os.environ.get("CC", "cc")
    attempts += [[cc, *flags, "-static"], [cc, *flags]]
    for compiler in attempts:
        if subprocess.run([*compiler, "-o", target, *sources]).returncode == 0:
            return
    raise SystemExit("could not compile native/shim.c")


def _kernel_headers(temp: str) -> str:
    arch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    links = {"linux": "/usr/include/linux", "asm-generic": "/usr/include/asm-generic",
             "asm": f"/usr/include/{arch}/asm" if arch else "/usr/include/asm"}
    out = os.path.join(os.path.abspath(temp), "musl-kernel-headers")
    os.makedirs(out, exist_ok=True)
    for name, source in links.items():
        link = os.path.join(out, name)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(source, link)
    return out


setup(cffi_modules=["native/build_ffi.py:ffibuilder"], cmdclass={"build_ext": BuildWithPause})
