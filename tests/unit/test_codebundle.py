"""The launcher's byte-code bundle (sandbox/codebundle.py): modules come from it while their
sources are unchanged, and from the normal import as soon as one is edited."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox import codebundle

REPO = Path(codebundle.__file__).resolve().parents[1]

# Imports sandbox.names with the bundle at argv[1] installed, prints the loader's class name and a
# call's result (the module works, whoever loaded it).
PROBE = """
import sys
sys.path.insert(0, sys.argv[2])
from sandbox.codebundle import install
install(sys.argv[1])
import sandbox.names as names
print(type(names.__spec__.loader).__name__, names.__file__ == names.__spec__.origin, names.is_dns_label("web-1"),
      names.__cached__ == sys.argv[1], "__future__" not in sys.modules,
      names.is_dns_label.__annotations__.get("return") == "bool")
"""


def probe(bundle: Path, *flags: str) -> list[str]:
    done = subprocess.run([sys.executable, "-S", *flags, "-c", PROBE, str(bundle), str(REPO)],
                          capture_output=True, text=True, check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return done.stdout.split()


def rewrite_index(bundle: Path, change: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> None:
    """The bundle with its header (format, hexversion, index) replaced by change(header)."""
    data = bundle.read_bytes()
    start = len(codebundle.MAGIC) + 4
    end = start + int.from_bytes(data[len(codebundle.MAGIC) : start], "little")
    head = marshal.dumps(change(marshal.loads(data[start:end])))
    bundle.write_bytes(codebundle.MAGIC + len(head).to_bytes(4, "little") + head + data[end:])


def test_modules_come_from_the_bundle(tmp_path: Path) -> None:
    bundle = Path(codebundle.build(2, str(tmp_path / "bundle.marshal")))
    # __cached__ names the bundle: importlib's derived .pyc name is not computed for each module
    # its `from __future__ import annotations` compiled away: the __future__ module is not loaded,
    # the annotations stay postponed (strings)
    assert probe(bundle, "-OO") == ["_Finder", "True", "True", "True", "True", "True"]


def test_an_edited_source_falls_through_to_the_normal_import(tmp_path: Path) -> None:
    bundle = Path(codebundle.build(2, str(tmp_path / "bundle.marshal")))

    def edited(header: tuple[Any, ...]) -> tuple[Any, ...]:
        version, hexversion, index = header
        path, is_package, mtime_ns, *rest = index["sandbox.names"]
        index["sandbox.names"] = (path, is_package, mtime_ns - 1, *rest)  # as if edited since the build
        return version, hexversion, index

    rewrite_index(bundle, edited)
    assert probe(bundle, "-OO") == ["SourceFileLoader", "True", "True", "False", "False", "True"]


def test_a_bundle_of_another_interpreter_is_ignored(tmp_path: Path) -> None:
    bundle = Path(codebundle.build(2, str(tmp_path / "bundle.marshal")))
    rewrite_index(bundle, lambda header: (header[0], header[1] + 1, header[2]))
    assert probe(bundle, "-OO")[0] == "SourceFileLoader"
    for garbage in (b"not a bundle", b"", codebundle.MAGIC + b"\xff\xff\x00\x00"):
        bundle.write_bytes(garbage)
        assert probe(bundle, "-OO")[0] == "SourceFileLoader"


def test_each_optimisation_level_has_its_own_bundle() -> None:
    assert len({codebundle.bundle_path(level) for level in (0, 1, 2)}) == 3
