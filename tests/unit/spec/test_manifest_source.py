"""The one manifest reader (sandbox/spec/source.py): regular files and `-` (standard input) are read,
under the 10 MiB cap; a FIFO, a directory, a device or a socket is refused at once, never waited on."""

from __future__ import annotations

import io
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.errors import SpecError
from sandbox.spec.cache import load_pod_cached
from sandbox.spec.load import load_manifests, load_pod_file
from sandbox.spec.source import MAX_BYTES, read_manifest

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n"


def _at_once(call: Callable[[], object], seconds: float = 5.0) -> BaseException | None:
    """Run `call` in a thread; fail if it has not returned within `seconds` (a blocked open/read)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still blocked after {seconds} s"
    return outcome[0]


def _refusal(path: str) -> str:
    error = _at_once(lambda: load_manifests(path))
    assert isinstance(error, SpecError), error
    (field_error,) = error.errors
    assert error.source == path
    return str(field_error)


def test_a_fifo_nobody_writes_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pod.yaml"
    os.mkfifo(fifo)
    assert _refusal(str(fifo)) == ("<file>: Invalid value: a FIFO: only regular files are read as manifests "
                                   "(or - for standard input)")


def test_directories_devices_and_sockets_are_refused(tmp_path: Path) -> None:
    assert "Invalid value: a directory:" in _refusal(str(tmp_path))
    assert "Invalid value: a character device:" in _refusal("/dev/null")
    assert "Invalid value: a character device:" in _refusal("/dev/zero")  # would never end
    path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        assert "Invalid value: a socket:" in _refusal(str(path))


def test_missing_and_impossible_names(tmp_path: Path) -> None:
    assert _refusal(str(tmp_path / "missing.yaml")) == "<file>: cannot read: No such file or directory"
    assert "NUL" in _refusal("pod\0.yaml")
    assert "cannot read" in _refusal("x" * 5000)  # ENAMETOOLONG


def test_a_regular_file_through_a_symlink_is_read(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    (tmp_path / "link.yaml").symlink_to(tmp_path / "pod.yaml")
    assert load_pod_file(str(tmp_path / "link.yaml")).metadata.name == "p"


def test_the_cap_reads_one_byte_more_than_allowed(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(3 * MAX_BYTES)
    assert len(read_manifest(str(big))) == MAX_BYTES + 1
    assert len(read_manifest(str(big), limit=10)) == 11


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> Callable[[bytes], None]:
    def feed(data: bytes) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    return feed


def test_dash_reads_standard_input(stdin: Callable[[bytes], None]) -> None:
    stdin(POD.encode())
    assert load_pod_file("-").metadata.name == "p"


def test_errors_in_standard_input_name_it(stdin: Callable[[bytes], None]) -> None:
    stdin(POD.replace("image: busybox", "image: ''").encode())
    with pytest.raises(SpecError) as info:
        load_pod_file("-")
    assert str(info.value) == "<stdin>: spec.containers[0].image: Required value"


def test_run_reads_standard_input_once_through_the_cache(stdin: Callable[[bytes], None], tmp_path: Path) -> None:
    """`sandbox run -` goes through the parsed-manifest cache: the input is read once, then a miss
    parses those bytes (a second read would find standard input empty) and a hit skips the parse."""
    for _ in range(2):
        stdin(POD.encode())
        assert load_pod_cached("-", tmp_path / "cache").metadata.name == "p"
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1


def test_the_cache_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pod.yaml"
    os.mkfifo(fifo)
    error = _at_once(lambda: load_pod_cached(str(fifo), tmp_path / "cache"))
    assert isinstance(error, SpecError) and "a FIFO" in str(error)


def test_standard_input_over_the_cap_is_refused(stdin: Callable[[bytes], None]) -> None:
    stdin(b"#" * (MAX_BYTES + 5))
    with pytest.raises(SpecError) as info:
        load_manifests("-")
    assert f"at most {MAX_BYTES} bytes" in str(info.value)
