"""The venv's `sandbox` command is requirements/launcher.py's: `python -S` with the venv's paths
(make install writes it after pip), and it finds everything site.py would have found."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LAUNCHER = os.path.join(os.path.dirname(sys.executable), "sandbox")


def test_the_command_skips_site_and_still_finds_the_venv() -> None:
    if sys.prefix == sys.base_prefix:
        pytest.skip("not running in the project's venv")
    with open(LAUNCHER) as f:
        first = f.readline()
    assert first == f"#!{sys.executable} -SOO\n", "make install writes the launcher (requirements/launcher.py)"
    done = subprocess.run([LAUNCHER, "--help"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("usage: sandbox")
    # the packages of site-packages (yaml with its C loader, cffi's backend) import under -S
    code = ("import sys; exec(open(sys.argv[1]).read().split('from sandbox.cli')[0]); "
            "import yaml, _cffi_backend, sandbox._native; print(sys.flags.no_site, yaml.__with_libyaml__)")
    probe = subprocess.run([sys.executable, "-S", "-c", code, LAUNCHER], capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["1", "True"]
