"""sandbox/rmtree.py: rm -r that never follows a symlink (the tear-down's, without shutil)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.rmtree import rmtree


def _tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("x")
    (root / "a" / "g").write_text("y")
    (root / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(root / "fifo")


def test_removes_a_nested_tree(tmp_path: Path) -> None:
    top = tmp_path / "top"
    _tree(top)
    rmtree(top)
    assert not top.exists() and list(tmp_path.iterdir()) == []


def test_a_symlink_inside_is_unlinked_and_what_it_points_to_kept(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("k")
    top = tmp_path / "top"
    top.mkdir()
    (top / "to-dir").symlink_to(outside)
    (top / "to-file").symlink_to(outside / "keep")
    rmtree(top)
    assert not top.exists()
    assert (outside / "keep").read_text() == "k"


def test_a_symlink_given_as_the_top_is_refused_and_left(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("k")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(OSError):
        rmtree(link)
    rmtree(link, ignore_errors=True)
    assert link.is_symlink() and (target / "keep").exists()


def test_missing_and_file_tops_raise_unless_ignored(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        rmtree(tmp_path / "missing")
    rmtree(tmp_path / "missing", ignore_errors=True)
    (tmp_path / "file").write_text("f")
    with pytest.raises(NotADirectoryError):
        rmtree(tmp_path / "file")
    assert (tmp_path / "file").exists()


def test_relative_to_a_directory_fd(tmp_path: Path) -> None:
    _tree(tmp_path / "top")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        rmtree("top", dir_fd=fd)
    finally:
        os.close(fd)
    assert not (tmp_path / "top").exists()


def test_the_tear_down_modules_do_not_import_shutil() -> None:
    """shutil brings bz2 and lzma with it (~2 ms of every `sandbox run`)."""
    code = ("import sys\n"
            "import sandbox.pod.teardown, sandbox.pod.cleanup, sandbox.rootfs.layers, sandbox.rmtree\n"
            "print('shutil' in sys.modules, 'bz2' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert out.stdout.split() == ["False", "False"]
