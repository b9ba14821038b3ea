"""A regular expression compiled on its first use instead of at import.

`re.compile` of a module-level pattern costs 0.1-0.4 ms each; the modules `sandbox run` imports
held several that a simple pod never uses (quantities, downward API subscripts, the schema's
camelCase splitter), ~1 ms of every start. `LazyPattern(...)` keeps the pattern where it is used.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    import re
    from collections.abc import Callable


class LazyPattern:
    __slots__ = ("_compiled", "_flags", "_pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._pattern, self._flags = pattern, flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            import re  # here, not at the top: a pod that matches nothing never imports re (1.6 ms)

            self._compiled = re.compile(self._pattern, self._flags)
        return self._compiled

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        return self.compiled.match(text, pos)

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self.compiled.fullmatch(text)

    def sub(self, repl: str | Callable[[re.Match[str]], str], text: str) -> str:
        return self.compiled.sub(repl, text)
