"""Diagnostics on stderr through the standard `logging` module, imported only when a message is
actually emitted: `import logging` costs ~8 ms, paid by every `sandbox` command otherwise, while
most runs print no diagnostic at all.

Modules write `log = get_logger(__name__)` and call `log.info(...)` as with `logging`; the CLI sets
the level once (`-v` INFO, `--debug` DEBUG, WARNING by default).
"""

from __future__ import annotations

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_state = {"level": WARNING, "configured": False}


def configure(level: int) -> None:
    _state["level"] = level


def get_logger(name: str) -> Logger:
    return Logger(name)


class Logger:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def enabled(self, level: int) -> bool:
        return level >= _state["level"]

    def debug(self, msg: str, *args: object) -> None:
        self._log(DEBUG, msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._log(INFO, msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self._log(WARNING, msg, args)

    def error(self, msg: str, *args: object) -> None:
        self._log(ERROR, msg, args)

    def _log(self, level: int, msg: str, args: tuple[object, ...]) -> None:
        if level < _state["level"]:
            return
        import logging

        if not _state["configured"]:
            logging.basicConfig(level=_state["level"], format="sandbox: %(message)s")
            _state["configured"] = True
        logging.getLogger(self.name).log(level, msg, *args)
