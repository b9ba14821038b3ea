"""Only the native build lives here: cffi has no pyproject-only configuration (python-cffi/cffi#55).

`build_ext` first builds the cffi extension `sandbox._native`, then compiles the pause program
(native/pause.c) into sandbox/_bin/pause: static with musl-gcc when available (tiny RSS), else a
static glibc build, else a dynamic one.
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
        build_pause(os.path.join(base, "native", "pause.c"), os.path.join(out_dir, "pause"))


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


setup(cffi_modules=["native/build_ffi.py:ffibuilder"], cmdclass={"build_ext": BuildWithPause})
