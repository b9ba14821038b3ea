"""pathlib without the modules it imports only for methods the runtime never calls.

`import pathlib` (Python 3.11) imports `re`, `fnmatch`, `ntpath` and `urllib.parse` (which
imports `ipaddress`) at its top, yet uses them only inside `glob`, `match`, `as_uri` and the
Windows flavour. Those four cost ~5 ms of every `sandbox run` (`import pathlib` after what the
runtime imports anyway: 5.4 ms, 3.5 ms of it `urllib.parse` and `ipaddress`; min of 25 fresh
interpreters), a tenth of a one-container pod cycle. `import_pathlib` imports pathlib with a
stand-in for each of them that is not imported yet (`defer_pathlib_imports`, called by the
command's entry point, makes the first `import pathlib` do so); a stand-in imports its module on
the first attribute read, so `Path.glob` or `Path.as_uri` still work, and it is in sys.modules only
while pathlib's own import runs: every other `import re` gets the real module.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any
else:
    ModuleType = type(sys)  # without importing types

_DEFERRED = ("re", "fnmatch", "ntpath", "urllib.parse", "functools", "operator", "warnings")


class OnFirstUse(ModuleType):
    """Stands in for module `__name__` until an attribute of it is read, then imports it."""

    def __getattr__(self, attribute: str) -> object:
        if attribute.startswith("__"):  # the import system's probes (__path__, ...) while stood in
            raise AttributeError(attribute)
        __import__(self.__name__)
        return getattr(sys.modules[self.__name__], attribute)


def _quote_from_bytes(*args: object, **kwargs: object) -> object:
    from urllib.parse import quote_from_bytes

    return quote_from_bytes(*args, **kwargs)  # type: ignore[arg-type]


def _stand_in() -> dict[str, OnFirstUse]:
    stand_ins = {}
    for name in _DEFERRED:
        if name not in sys.modules:
            stand_ins[name] = sys.modules[name] = OnFirstUse(name)
    parse = stand_ins.get("urllib.parse")
    if parse is not None:
        parse.__dict__["quote_from_bytes"] = _quote_from_bytes  # for pathlib's `from urllib.parse import ...`
    functools = stand_ins.get("functools")
    if functools is not None:
        functools.__dict__["lru_cache"] = _lru_cache  # pathlib caches its glob selectors
    operator = stand_ins.get("operator")
    if operator is not None:
        from _operator import attrgetter  # built in; operator.py's own attrgetter is this one

        operator.__dict__["attrgetter"] = attrgetter  # for pathlib's `from operator import attrgetter`
    return stand_ins


def _lru_cache(*args: Any, **kwargs: Any) -> Any:
    """functools.lru_cache(...) made on the decorated function's first call: pathlib decorates
    `_make_selector` (used only by glob) at its import."""

    def decorate(function: Any) -> Any:
        cached = None

        def call(*call_args: Any, **call_kwargs: Any) -> Any:
            nonlocal cached
            if cached is None:
                from functools import lru_cache

                cached = lru_cache(*args, **kwargs)(function)
            return cached(*call_args, **call_kwargs)

        return call

    return decorate


def _withdraw(stand_ins: dict[str, OnFirstUse]) -> None:
    for name, stand_in in stand_ins.items():
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]


def import_pathlib() -> None:
    """Import pathlib now, deferring the imports it needs only for globbing and URIs."""
    defer_pathlib_imports()
    import pathlib  # noqa: F401


def defer_pathlib_imports() -> None:
    """Have the first `import pathlib`, whoever makes it, run with the stand-ins: a command that
    never needs pathlib (`sandbox exec`) still does not import it."""
    if "pathlib" not in sys.modules and not any(isinstance(f, _PathlibFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PathlibFinder())


class _PathlibFinder:
    """A meta path finder for pathlib alone: its usual spec, with the loader wrapped."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "pathlib":
            return None
        sys.meta_path.remove(self)
        from _frozen_importlib_external import PathFinder  # importlib.machinery's, without importlib

        spec = PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _WithStandIns(spec.loader)  # type: ignore[assignment]  # a Loader by protocol
        return spec


class _WithStandIns:
    """pathlib's loader, running the module with the stand-ins in place."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, attribute: str) -> Any:  # get_source, get_code, ... as the loader has them
        return getattr(self.loader, attribute)

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        stand_ins = _stand_in()
        try:
            self.loader.exec_module(module)
        finally:
            _withdraw(stand_ins)
