"""Does the venv hold exactly the locked set? `pip freeze --all` (less the editable project) must
list the pins of requirements/build.txt and requirements/lock.txt, no more, no fewer, no other
version. `make install` runs this after installing (with --sync), a unit test runs it again, so
drift (a `pip install` by hand, a stale venv after `make lock`) is caught.

    python requirements/check.py           report the differences, exit 1 if there are any
    python requirements/check.py --sync    first uninstall what the lock does not name

Runs with the venv's own interpreter (`sys.executable`); stdlib only.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCKS = (HERE / "build.txt", HERE / "lock.txt")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def canonical(name: str) -> str:
    """PEP 503 normalisation: `PyYAML`, `pyyaml` and `py_yaml` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(paths: tuple[Path, ...] = LOCKS) -> dict[str, str]:
    """Every `name==version` line of the lock files; a package pinned twice must agree."""
    pins: dict[str, str] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            match = _PIN.match(line)
            if not match:
                continue
            name, version = canonical(match[1]), match[2]
            if pins.setdefault(name, version) != version:
                raise SystemExit(f"{path.name}: {name}=={version}, but {pins[name]} elsewhere")
    return pins


def installed(python: str = sys.executable) -> dict[str, str]:
    """The venv as `pip freeze --all --exclude-editable` lists it (pip, setuptools included)."""
    out = subprocess.run([python, "-m", "pip", "freeze", "--all", "--exclude-editable",
                          "--disable-pip-version-check"], capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = _PIN.match(line)
        # `name @ url` (a direct install) never equals a pin: keep the whole line as its version
        name, version = (canonical(match[1]), match[2]) if match else (canonical(re.split(r"[\s@=]", line)[0]), line)
        found[name] = version
    return found


def differences(pins: dict[str, str], venv: dict[str, str]) -> list[str]:
    problems = []
    for name in sorted(pins.keys() | venv.keys()):
        want, have = pins.get(name), venv.get(name)
        if have is None:
            problems.append(f"missing: {name}=={want}")
        elif want is None:
            problems.append(f"not in the lock: {name}=={have}")
        elif want != have:
            problems.append(f"version: {name}=={have} installed, {want} locked")
    return problems


def main(argv: list[str]) -> int:
    pins = locked()
    venv = installed()
    if "--sync" in argv:
        extra = sorted(name for name in venv if name not in pins)
        if extra:
            print(f"removing what the lock does not name: {' '.join(extra)}")
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", *extra], check=True)
            venv = installed()
    problems = differences(pins, venv)
    for problem in problems:
        print(f"requirements/check.py: {problem}", file=sys.stderr)
    if problems:
        print("the venv differs from requirements/*.txt: `rm .stamps/venv; make install` installs the"
              " locked set and removes the rest", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
