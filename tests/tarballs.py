"""Layer archives built in memory for the image tests (on the tests' pythonpath, as corpus.py)."""

from __future__ import annotations

import io
import os
import tarfile


def tar_of(files: dict[str, bytes]) -> bytes:
    """A PAX tar of regular files (0644, owned by the caller), in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, os.getuid(), os.getgid()
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
