"""sandbox/deferred.py: pathlib imported without re, fnmatch, ntpath and urllib.parse, and still whole."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import sys
from sandbox.deferred import OnFirstUse, import_pathlib

import_pathlib()
import pathlib
deferred = ("re", "fnmatch", "ntpath", "urllib.parse", "ipaddress")
print("before", sorted(name for name in deferred if name in sys.modules))
path = pathlib.Path("/tmp/x/y.txt")
assert path.match("*/y.txt") and not path.match("*.py")   # fnmatch and re, imported on use
assert path.as_uri() == "file:///tmp/x/y.txt"             # urllib.parse
assert str(pathlib.PureWindowsPath("c:/a") / "b") == "c:\\a\\b"  # ntpath
import re, urllib.parse
assert not isinstance(sys.modules["re"], OnFirstUse) and re.compile("a+").fullmatch("aa")
assert urllib.parse.quote("a b") == "a%20b" and sys.modules["urllib"].parse is urllib.parse
print("after", sorted(name for name in deferred if isinstance(sys.modules.get(name), OnFirstUse)))
"""


def test_pathlib_comes_without_the_modules_it_needs_only_for_globs_and_uris() -> None:
    out = subprocess.run([sys.executable, "-S", "-c", SCRIPT], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(p for p in sys.path if p)}).stdout
    assert out.splitlines() == ["before []", "after []"]


def test_nothing_is_deferred_once_pathlib_is_there() -> None:
    script = "import sys, pathlib\nfrom sandbox.deferred import import_pathlib\nimport_pathlib()\nprint('re' in sys.modules)"
    out = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(p for p in sys.path if p)}).stdout
    assert out.strip() == "True"


def test_the_first_import_of_pathlib_by_anyone_defers_them_once_asked_to() -> None:
    script = ("import sys\nfrom sandbox.deferred import defer_pathlib_imports\ndefer_pathlib_imports()\n"
              "print('pathlib' in sys.modules)\nfrom pathlib import Path\n"
              "print(sorted(m for m in ('re', 'fnmatch', 'ntpath', 'urllib.parse') if m in sys.modules))\n"
              "print(Path('/a/b.txt').match('*.txt'), type(sys.modules['pathlib'].__loader__).__name__ != '',\n"
              "      any(type(f).__name__ == '_PathlibFinder' for f in sys.meta_path))")
    out = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(p for p in sys.path if p)}).stdout
    assert out.splitlines() == ["False", "[]", "True True False"]
