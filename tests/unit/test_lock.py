"""The locked install (requirements/): every pin hashed, the lock agreeing with pyproject.toml's
ranges, and this venv holding exactly the locked set (requirements/check.py, which `make install`
also runs)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def _check_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lockcheck", REPO / "requirements" / "check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _check_module()


def _requirement_blocks(path: Path) -> list[str]:
    """One string per requirement: its line and its `\\`-continued hash lines."""
    blocks: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("    --hash=") and blocks:
            blocks[-1] += line
        elif line and not line.startswith(("#", " ")):
            blocks.append(line)
    return blocks


@pytest.mark.parametrize("name", ["lock.txt", "build.txt"])
def test_every_requirement_is_pinned_with_a_hash(name: str) -> None:
    blocks = _requirement_blocks(REPO / "requirements" / name)
    assert blocks
    for block in blocks:
        assert re.match(r"^[A-Za-z0-9._-]+==[^\s\\]+ \\", block), block
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), block


def test_the_lock_satisfies_pyproject() -> None:
    """Each dependency, test and lint extra and build requirement of pyproject.toml is locked at
    a version its range allows: a range raised without `make lock` fails here."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    for extra in ("test", "lint"):
        wanted += project["project"]["optional-dependencies"][extra]
    pins = check.locked()
    for text in wanted:
        req = Requirement(text)
        name = check.canonical(req.name)
        assert name in pins, f"{req} is not in requirements/lock.txt: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} does not satisfy {req}"
    assert {"pip", "setuptools", "cffi", "pycparser"} <= pins.keys()  # the installer, the build


def test_differences_name_missing_extra_and_other_versions() -> None:
    pins = {"pytest": "9.2.0", "pyyaml": "6.0.4", "pip": "26.3"}
    venv = {"pytest": "9.2.0", "pyyaml": "6.0.3", "requests": "2.0", "pip": "26.3"}
    venv.pop("pip")
    assert check.differences(pins, venv) == ["missing: pip==26.3", "version: pyyaml==6.0.3 installed, 6.0.4 locked",
                                             "not in the lock: requests==2.0"]
    assert check.differences(pins, dict(pins)) == []
    assert check.canonical("PyYAML") == check.canonical("pyyaml") == "pyyaml"
    assert check.canonical("typing_extensions") == "typing-extensions"


@pytest.mark.skipif(Path(sys.prefix).resolve() != (REPO / ".venv").resolve(),
                    reason="only the repo's own venv is made from the lock")
def test_this_venv_is_exactly_the_locked_set() -> None:
    result = subprocess.run([sys.executable, str(REPO / "requirements" / "check.py")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
