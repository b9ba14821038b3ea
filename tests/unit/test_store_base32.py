"""The image store's base32 (layer link names) matches RFC 4648 as the base64 module writes it."""

from __future__ import annotations

import base64

import pytest

from sandbox.images.store import base32


@pytest.mark.parametrize("data", [b"", b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar",
                                  bytes(range(32)), bytes.fromhex("ff" * 32), bytes(7)])
def test_base32_is_rfc4648_without_padding(data: bytes) -> None:
    assert base32(data) == base64.b32encode(data).decode().rstrip("=")


def test_base32_rfc4648_vectors() -> None:
    assert base32(b"foobar") == "MZXW6YTBOI"
    assert base32(b"fooba") == "MZXW6YTB"
