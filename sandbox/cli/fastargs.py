"""A table-driven reader for plain command lines of the hot verbs (`exec`; `run` can use it too).

`import argparse` costs 7.4 ms here (re, enum, gettext), and building and running a parser
3.2 ms more (its help formatter pulls shutil, which pulls bz2/lzma/zlib; its messages pull
locale): -X importtime medians of `sandbox exec`, 2026-11-30. This module costs 0.2 ms. This reader covers the command lines people type and
answers None for anything else, so the caller falls back to argparse: help, every error message
and every rarer form (abbreviated long options, `-c=NAME`, values that start with "-") stay
exactly argparse's. The unit test compares both readers over a table of command lines.

What it reads: options of the main parser (GLOBAL) before the verb, then the verb's options and
positionals in any order; `--opt VALUE`, `--opt=VALUE`, `-o VALUE`, `-oVALUE`, and clusters of
short flags that may end in one value option (`-it`, `-ti`, `-itc NAME`), as argparse reads them.
The caller cuts everything after "--" off first.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Option = tuple[str, int, Any]

# What an option does (the second item of its table entry), and its third item:
FLAG = 0  # store the constant (argparse store_true / store_const)
VALUE = 1  # store the next argument, through the converter (None: the string itself)
APPEND = 2  # append the next argument, converted, to a list (argparse action="append")


class Args:
    """What argparse.Namespace holds, for the handlers (they read attributes only)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __eq__(self, other: object) -> bool:
        return vars(self) == vars(other) if hasattr(other, "__dict__") else NotImplemented

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"Args({inner})"

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...


class FastVerb:
    """One parser's table: its option strings (`"-c"` and `"--container"` each an entry) mapped to
    (dest, FLAG/VALUE/APPEND, constant or converter), its positionals (one argument each, in
    order) and the value of every dest before reading (argparse's defaults and set_defaults)."""

    __slots__ = ("defaults", "name", "options", "positionals")

    def __init__(self, name: str, options: dict[str, Option], defaults: dict[str, Any],
                 positionals: tuple[str, ...] = ()) -> None:
        self.name = name
        self.options = options
        self.defaults = defaults
        self.positionals = positionals

    def read(self, argv: list[str], values: dict[str, Any], stop_at_positional: bool) -> int:
        """Read options from argv into `values` (positionals too unless `stop_at_positional`).
        Returns the index where reading stopped, or -1 for anything this reader leaves to
        argparse."""
        given: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            if not arg.startswith("-"):
                if stop_at_positional:
                    break
                given.append(arg)
                i += 1
                continue
            used = self._option(argv, i, values)
            if used < 0:
                return -1
            i += used
        if not stop_at_positional:
            if len(given) != len(self.positionals):
                return -1
            values.update(zip(self.positionals, given, strict=True))
        return i

    def _option(self, argv: list[str], i: int, values: dict[str, Any]) -> int:
        """Read the option at argv[i]; how many arguments it took, or -1."""
        arg = argv[i]
        entry = self.options.get(arg)
        if entry is not None:  # an exact match first, as argparse (`--trace=json` is one option)
            return _store(entry, values, argv[i + 1] if i + 1 < len(argv) else None, 1)
        if arg.startswith("--"):
            name, eq, explicit = arg.partition("=")
            entry = self.options.get(name)
            if not eq or entry is None or entry[1] == FLAG or not explicit:
                return -1
            return _store(entry, values, explicit, 0)
        return self._cluster(argv, i, values)

    def _cluster(self, argv: list[str], i: int, values: dict[str, Any]) -> int:
        """`-it`, `-itc NAME`, `-cNAME`: short flags, the last may be a value option that takes
        the rest of the cluster or the next argument."""
        arg = argv[i]
        if "=" in arg or len(arg) < 3:  # argparse splits `-c=x` at "=" first: left to it
            return -1
        for k in range(1, len(arg)):
            entry = self.options.get("-" + arg[k])
            if entry is None:
                return -1
            if entry[1] == FLAG:
                values[entry[0]] = entry[2]
                continue
            rest = arg[k + 1 :]
            if rest:
                return _store(entry, values, rest, 0)
            return _store(entry, values, argv[i + 1] if i + 1 < len(argv) else None, 1)
        return 1


def _store(entry: Option, values: dict[str, Any], value: str | None, value_used: int) -> int:
    """Store one option; how many arguments it took (1 for itself, plus `value_used` when its
    value was the next one), or -1 when the value is missing, looks like an option (argparse
    refuses or reads those differently) or does not convert."""
    dest, kind, extra = entry
    if kind == FLAG:
        values[dest] = extra
        return 1
    if value is None or value.startswith("-"):
        return -1
    convert: Callable[[str], Any] | None = extra
    try:
        converted = convert(value) if convert is not None else value
    except (TypeError, ValueError):  # argparse's "invalid float value" message, through it
        return -1
    if kind == APPEND:
        values[dest] = [*(values.get(dest) or ()), converted]
    else:
        values[dest] = converted
    return 1 + value_used


def parse(argv: list[str], main: FastVerb, verb: FastVerb) -> Args | None:
    """The namespace argparse would give for `main`'s options, `verb`'s name (as `verb` the dest),
    then its options and positionals; None when argparse must read this command line."""
    values = {k: list(v) if isinstance(v, list) else v for k, v in main.defaults.items()}
    at = main.read(argv, values, stop_at_positional=True)
    if at < 0 or at >= len(argv) or argv[at] != verb.name:
        return None
    values["verb"] = verb.name
    values.update({k: list(v) if isinstance(v, list) else v for k, v in verb.defaults.items()})
    if verb.read(argv[at + 1 :], values, stop_at_positional=False) < 0:
        return None
    return Args(values)


# The main parser's options (sandbox/cli/__init__.py build_parser): readable before any verb.
GLOBAL = FastVerb("sandbox", {
    "--root": ("root", VALUE, None),
    "-n": ("namespace", VALUE, None),
    "--namespace": ("namespace", VALUE, None),
    "-v": ("verbose", FLAG, True),
    "--verbose": ("verbose", FLAG, True),
    "--debug": ("debug", FLAG, True),
}, {"root": None, "namespace": None, "verbose": False, "debug": False})

# add_trace_option's two option strings (sandbox/cli/__init__.py)
TRACE: dict[str, Option] = {"--trace": ("trace", FLAG, "text"), "--trace=json": ("trace", FLAG, "json")}
