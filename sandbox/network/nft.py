"""libnftables (Debian's libnftables1) through ctypes: run an nft command buffer, get its output
(text or JSON) and its error text. Imported only by pods with hostPorts or the masquerade option,
so a pod without them never maps the library.

ctypes rather than cffi's ABI mode (the project's libseccomp binding): cffi parses its C
declarations with pycparser at import, ~24 ms measured here, where ctypes loads in ~2.5 ms; six
functions with plain pointer and integer types need no parser.

One buffer is one netlink batch: the kernel applies every command in it or none (nft(8),
"the whole ruleset is updated atomically"), which is what the hostPort elements rely on.
"""

from __future__ import annotations

from sandbox.errors import SandboxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

_NFT_CTX_DEFAULT = 0
_OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON
_ENOENT_TEXT = "No such file or directory"  # strerror(ENOENT): libnftables reports a missing object so


class NftError(SandboxError):
    """An nft command the kernel or the parser refused; carries libnftables' error text."""

    def __init__(self, what: str, detail: str) -> None:
        self.what = what
        self.detail = detail
        super().__init__(f"nftables: {what}: {detail}")

    @property
    def missing(self) -> bool:
        """The command named a table, chain or map that does not exist (ENOENT)."""
        return _ENOENT_TEXT in self.detail


def _load() -> Any:
    """The library with the prototypes of <nftables/libnftables.h> (LIBNFTABLES_1; the context
    stays an opaque pointer), loaded once per process by the first Nft: importing this module for
    NftError alone (hostports' netlink path, nfnl.py) loads neither ctypes nor the library."""
    if _lib:
        return _lib[0]
    import ctypes

    try:
        nft = ctypes.CDLL("libnftables.so.1")
    except OSError as e:
        raise NftError("dlopen libnftables.so.1 (Debian package libnftables1)", str(e)) from None
    ctx, uint, cstr = ctypes.c_void_p, ctypes.c_uint, ctypes.c_char_p
    for name, restype, argtypes in (
        ("nft_ctx_new", ctx, [ctypes.c_uint32]),
        ("nft_ctx_free", None, [ctx]),
        ("nft_ctx_output_get_flags", uint, [ctx]),
        ("nft_ctx_output_set_flags", None, [ctx, uint]),
        ("nft_ctx_buffer_output", ctypes.c_int, [ctx]),
        ("nft_ctx_get_output_buffer", cstr, [ctx]),
        ("nft_ctx_buffer_error", ctypes.c_int, [ctx]),
        ("nft_ctx_get_error_buffer", cstr, [ctx]),
        ("nft_run_cmd_from_buffer", ctypes.c_int, [ctx, cstr]),
    ):
        function = getattr(nft, name)
        function.restype, function.argtypes = restype, argtypes
    _lib.append(nft)
    return nft


_lib: list[Any] = []


class Nft:
    """One libnftables context with buffered output and errors, freed on exit from `with`."""

    def __init__(self) -> None:
        self.lib = lib = _load()
        self.ctx = lib.nft_ctx_new(_NFT_CTX_DEFAULT)
        if not self.ctx:
            raise NftError("nft_ctx_new", "out of memory")
        # Buffered: libnftables would otherwise print to our stdout/stderr.
        lib.nft_ctx_buffer_output(self.ctx)
        lib.nft_ctx_buffer_error(self.ctx)

    def __enter__(self) -> Nft:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.ctx:
            self.lib.nft_ctx_free(self.ctx)
            self.ctx = None

    def run(self, commands: str, what: str = "", json: bool = False) -> str:
        """Run `commands` (nft syntax, one batch) and return the output; NftError on failure."""
        lib = self.lib
        flags = lib.nft_ctx_output_get_flags(self.ctx)
        flags = flags | _OUTPUT_JSON if json else flags & ~_OUTPUT_JSON
        lib.nft_ctx_output_set_flags(self.ctx, flags)
        rc = lib.nft_run_cmd_from_buffer(self.ctx, commands.encode())
        out = _text(lib.nft_ctx_get_output_buffer(self.ctx))
        err = _text(lib.nft_ctx_get_error_buffer(self.ctx))  # read even on success: it resets the buffer
        if rc != 0:
            raise NftError(what or commands.splitlines()[0], err.strip() or f"failed ({rc})")
        return out


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode(errors="replace")
