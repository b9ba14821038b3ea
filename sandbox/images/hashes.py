"""OpenSSL's SHA-2 for a pull's blobs without `import hashlib`: hashlib.py's import sets up every
algorithm's constructor and loads CPython's _blake2 for two of them (~1 ms on this VM, 2.7 ms
under -X importtime, taken on the pull's preload thread while the main thread waits for the
GIL); `_hashlib` is what it wraps for SHA-2 (SHA-NI: ~3x CPython's own _sha256 on a layer)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import hashlib


def new(algorithm: str) -> hashlib._Hash:
    """A hash object of `algorithm` ("sha256", "sha512")."""
    try:
        from _hashlib import new as openssl_new
    except ImportError:  # a Python built without OpenSSL
        from hashlib import new as hashlib_new

        return hashlib_new(algorithm)
    return openssl_new(algorithm)


def load() -> None:
    """Import OpenSSL's hashes now (the preload thread), so no layer thread waits for it."""
    try:
        import _hashlib  # noqa: F401
    except ImportError:
        import hashlib  # noqa: F401
