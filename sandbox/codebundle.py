"""Every module of the package as byte-code in one file, for the start-up of the `sandbox` command.

The usual import of a module costs more than its code: the path finder's own Python (a stat, the
directory cache, path joins), then opening, reading and checking its `.pyc`. For the ~95 modules
of a `sandbox run` that is ~35 us each, 3.5 ms of every pod cycle (interleaved runs of an import of
those modules, one file against the `.pyc` files). `make install` writes the bundle
(requirements/launcher.py calls `build`), and the launcher calls `install` before its first
import of the package: a finder ahead of the path finder serves `sandbox.*` from the bundle.

Each module's entry carries its source's mtime and size, checked by a stat at import as a `.pyc`
is checked: an edited module (or a bundle from another interpreter or optimisation level) falls
through to the normal import, so the bundle is never stale, only slower once sources change.
"""

# No `from __future__ import annotations` here: this module is imported before the bundle's finder,
# the normal way, and that statement would load the __future__ module (the bundle's own modules
# have theirs compiled away, see _compile). Annotations of names only checkers import are quoted.
import marshal
import os
import sys

# importlib.machinery's ModuleSpec is this frozen module's: importing importlib (and with it
# warnings) costs ~0.4 ms of every command, _frozen_importlib is in sys.modules from the start.
from _frozen_importlib import ModuleSpec

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

PACKAGE = os.path.dirname(os.path.abspath(__file__))
FORMAT = 2
# The file: MAGIC, the index's length (4 bytes, little-endian), the marshalled index
# (FORMAT, sys.hexversion, {module: (source, is_package, mtime_ns, size, offset, length)}), then
# each module's marshalled code at its offset. Only the index is read at start-up; a module's
# code is read (pread) and unmarshalled when it is imported. Reading the whole 2.2 MB file
# (format 1) cost a command that imports a few modules ~2 ms, mostly page faults for the copy:
# `get pods` 31.0 -> 33.2 ms, more than the bundle saved it.
MAGIC = b"SBXCODE\0"


def bundle_path(optimize: int | None = None) -> str:
    level = sys.flags.optimize if optimize is None else optimize
    suffix = f".opt-{level}" if level else ""
    return os.path.join(PACKAGE, "__pycache__", f"bundle.{sys.implementation.cache_tag}{suffix}.marshal")


def build(optimize: int, target: str | None = None) -> str:
    """Compile every module of the package into the bundle for `optimize` (0, 1 or 2); returns
    its path (`target`, or bundle_path's). Written to a temporary name and renamed: a start-up
    never reads half a bundle."""
    index: dict[str, tuple[str, bool, int, int, int, int]] = {}
    codes: list[bytes] = []
    offset = 0
    for directory, subdirs, files in os.walk(PACKAGE):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__" and not d.startswith("."))
        relative = os.path.relpath(directory, os.path.dirname(PACKAGE))
        package = relative.replace(os.sep, ".")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            module = package if name == "__init__.py" else f"{package}.{name[:-3]}"
            st = os.stat(path)
            with open(path, "rb") as f:
                code = marshal.dumps(_compile(f.read(), path, optimize))
            index[module] = (path, name == "__init__.py", st.st_mtime_ns, st.st_size, offset, len(code))
            codes.append(code)
            offset += len(code)
    head = marshal.dumps((FORMAT, sys.hexversion, index))
    target = target or bundle_path(optimize)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(MAGIC + len(head).to_bytes(4, "little") + head)
        for code in codes:
            f.write(code)
    os.replace(tmp, target)
    return target


def _compile(source: bytes, path: str, optimize: int) -> "Any":
    """The module's code without its `from __future__ import ...` statements, their features
    given to the compiler instead. Such a statement is also a real import at run time: the first
    one loads the __future__ module from the standard library (~0.3 ms), each one after costs an
    import and a global (~100 modules of a `sandbox run` start with one)."""
    import __future__

    import ast

    tree = ast.parse(source, path)
    flags = 0
    body = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                flags |= getattr(__future__, alias.name).compiler_flag
        else:
            body.append(node)
    tree.body = body
    return compile(tree, path, "exec", flags=flags, dont_inherit=True, optimize=optimize)


class _Finder:
    """A meta path finder and loader over the bundle's index (importlib's protocol)."""

    def __init__(self, index: dict[str, tuple[str, bool, int, int, int, int]], fd: int, base: int, path: str) -> None:
        self.index = index
        self.fd = fd  # the bundle, open for the process's life (one pread per module)
        self.base = base  # the first module's code, from the start of the file
        self.path = path  # the bundle file: each module's __cached__

    def find_spec(self, name: str, path: "Any" = None, target: "Any" = None) -> "Any":
        entry = self.index.get(name)
        if entry is None:
            return None
        source, is_package, mtime_ns, size = entry[:4]
        try:
            st = os.stat(source)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            del self.index[name]  # edited since `make install`: the normal import reads it
            return None
        spec = ModuleSpec(name, self, origin=source, is_package=is_package)  # type: ignore[arg-type]  # a Loader by protocol (create_module, exec_module), not by importlib.abc
        spec.has_location = True  # __file__ is the source, as for a module imported from its .pyc
        # __cached__ is where the code came from: set here, importlib's default derives a .pyc name
        # from the source path (cache_from_source, ~8 us a module, ~0.8 ms of a `sandbox run`).
        spec.cached = self.path
        if is_package:
            spec.submodule_search_locations = [os.path.dirname(source)]
        return spec

    def create_module(self, spec: "Any") -> None:
        return None  # the default module object

    def exec_module(self, module: "ModuleType") -> None:
        offset, length = self.index.pop(module.__name__)[4:]
        exec(marshal.loads(os.pread(self.fd, length, self.base + offset)), module.__dict__)


def install(path: str | None = None) -> None:
    """Put the bundle's finder first on sys.meta_path, if a bundle for this interpreter and
    optimisation level is there (`path`: another bundle file); nothing otherwise (the normal
    import serves everything).

    The file is read with pread, the index at once and each module's code when it is imported.
    It was mapped before (format 2's first reader): `import mmap` is one more shared library
    loaded (~0.3-0.4 ms) and the mapped code came in by page faults (one per 4 KiB, 1-3 us each
    on this VM), where one pread per module copies it from the page cache."""
    path = path or bundle_path()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        head = os.pread(fd, len(MAGIC) + 4, 0)
        if len(head) != len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
            raise ValueError("not a bundle")
        start = len(head)
        length = int.from_bytes(head[len(MAGIC):], "little")
        version, hexversion, index = marshal.loads(os.pread(fd, length, start))
        if version != FORMAT or hexversion != sys.hexversion:
            raise ValueError("another format or interpreter")
    except (OSError, ValueError, EOFError, TypeError):
        os.close(fd)
        return
    sys.meta_path.insert(0, _Finder(index, fd, start + length, path))


if __name__ == "__main__":  # make install: python -m sandbox.codebundle LEVEL...
    for level in sys.argv[1:] or ["0"]:
        build(int(level))
