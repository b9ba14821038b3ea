"""pathlib without the modules it imports only for methods the runtime never calls.

`import pathlib` (Python 3.11) imports `re`, `fnmatch`, `ntpath` and `urllib.parse` (which
imports `ipaddress`) at its top, yet uses them only inside `glob`, `match`, `as_uri` and the
Windows flavour. Those four cost ~5 ms of every `sandbox run` (`import pathlib` after what the
runtime imports anyway: 5.4 ms, 3.5 ms of it `urllib.parse` and `ipaddress`; min of 25 fresh
interpreters), a tenth of a one-container pod cycle. `import_pathlib` imports pathlib with a
stand-in for each of them that is not imported yet; a stand-in imports its module on the first
attribute read, so `Path.glob` or `Path.as_uri` still work, and it is in sys.modules only while
pathlib's own import runs: every other `import re` gets the real module.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
else:
    ModuleType = type(sys)  # without importing types

_DEFERRED = ("re", "fnmatch", "ntpath", "urllib.parse")


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


def import_pathlib() -> None:
    """Import pathlib now, deferring the imports it needs only for globbing and URIs."""
    if "pathlib" in sys.modules:
        return
    stand_ins = {}
    for name in _DEFERRED:
        if name not in sys.modules:
            stand_ins[name] = sys.modules[name] = OnFirstUse(name)
    parse = stand_ins.get("urllib.parse")
    if parse is not None:
        parse.__dict__["quote_from_bytes"] = _quote_from_bytes  # for pathlib's `from urllib.parse import ...`
    try:
        import pathlib  # noqa: F401
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
