"""Write the venv's `sandbox` command as a launcher that skips site.py.

pip's console script starts the interpreter normally: site.py then finds the venv (pyvenv.cfg),
adds its site-packages and processes every .pth file, ~2.7 ms of each `sandbox` command (11.3 ->
8.6 ms for `python -c pass` here; `sandbox exec` is ~17 ms in all). This launcher runs `python -S -OO`
and puts on sys.path exactly what site.py would have added for this venv (its site-packages, then
the paths of its .pth files that are plain directories, such as the editable install of the
project), after the standard library as site.py puts them. `make install` runs it after pip;
a later `pip install` simply writes pip's script back (slower, not wrong).

    .venv/bin/python requirements/launcher.py      (the venv's own interpreter, normal start-up)
"""

from __future__ import annotations

import os
import site
import sys

SCRIPT = """\
#!{python} -SOO
# Written by requirements/launcher.py (make install): python -S skips site.py (~2.7 ms of every
# command); these are the paths it would have added for this venv, after the standard library.
# -OO: byte-code without docstrings (and asserts, which the project uses only to narrow types for
# mypy): 15% less code to unmarshal, ~2.5 ms of a `sandbox run` (marshal.loads of its 118 modules
# 7.5 -> 5.0 ms; CPU time of the pod cycle 109.9 -> 107.4 ms, interleaved runs).
import sys
sys.path += {paths!r}
from sandbox.codebundle import install
install()  # the package's byte-code from one file (sandbox/codebundle.py): ~2.8 ms of a `sandbox run`
from sandbox.cli import run
run()
"""


def site_paths() -> list[str]:
    """This venv's site-packages and the directories its .pth files add, in site.py's order."""
    paths: list[str] = []
    for packages in site.getsitepackages():
        paths.append(packages)
        for name in sorted(os.listdir(packages)):
            if not name.endswith(".pth"):
                continue
            with open(os.path.join(packages, name)) as f:
                for line in f:
                    line = line.strip()
                    if not line or line.startswith(("#", "import ", "import\t")):
                        continue  # code lines (import ...) are what -S saves; none is the project's
                    path = os.path.abspath(os.path.join(packages, line))
                    if os.path.isdir(path) and path not in paths:
                        paths.append(path)
    return paths


def compile_dependencies() -> None:
    """-OO byte-code (`.opt-2.pyc`) for the files of the project's runtime dependencies: pip
    writes only the plain `.pyc`, and an interpreter that may not write byte-code
    (PYTHONDONTWRITEBYTECODE) would compile yaml & co. from source at every start. `make install`
    compiles the project's own modules (compileall -o 0 -o 2)."""
    import compileall
    from importlib.metadata import PackageNotFoundError, distribution, requires

    for requirement in requires("sandbox") or ():
        if "extra ==" in requirement:
            continue  # test and lint tools run with the interpreter's default flags
        name = requirement.split(";")[0]
        for mark in "<>=!~[ ":
            name = name.split(mark)[0]
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        for file in dist.files or ():
            if file.suffix == ".py":
                compileall.compile_file(str(dist.locate_file(file)), quiet=2, optimize=2)


def main() -> int:
    if sys.prefix == sys.base_prefix:
        print("launcher.py: run it with the venv's interpreter", file=sys.stderr)
        return 1
    target = os.path.join(os.path.dirname(sys.executable), "sandbox")
    tmp = target + ".tmp"
    with open(tmp, "w") as f:
        f.write(SCRIPT.format(python=sys.executable, paths=site_paths()))
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    compile_dependencies()
    return 0


if __name__ == "__main__":
    sys.exit(main())
