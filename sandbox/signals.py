"""`signal` for the runtime's modules: the C module `_signal` at run time, signal.py for type
checkers. signal.py only adds IntEnum wrappers, and its `import enum` (functools, collections,
operator) costs ~1.9 ms of a `sandbox run` and ~4 ms of a `sandbox exec` when nothing else loads
it. Functions and constants are the same; handlers take and give plain numbers, which both accept.
Where a signal's name is needed, import signal.py there (process.launch.parse_signal reads names
without it)."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as signal
else:
    import _signal as signal

__all__ = ["signal"]
