"""Write the venv's `sandbox` command as a launcher that skips site.py.

pip's console script starts the interpreter normally: site.py then finds the venv (pyvenv.cfg),
adds its site-packages and processes every .pth file, ~2.7 ms of each `sandbox` command (11.3 ->
8.6 ms for `python -c pass` here; `sandbox exec` is ~17 ms in all). This launcher runs `python -S`
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
#!{python} -S
# Written by requirements/launcher.py (make install): python -S skips site.py (~2.7 ms of every
# command); these are the paths it would have added for this venv, after the standard library.
import sys
sys.path += {paths!r}
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
