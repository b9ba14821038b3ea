"""Per-container-start writable layers: `<lib>/containers/<container id>/{upper,work,merged}`.

The overlay itself is mounted inside the container's own mount namespace (stage 2), so it
disappears with the namespace, crash or not; only these directories need removing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sandbox.paths import under
from sandbox.record import record


@record
class ContainerLayer:
    path: Path

    @classmethod
    def create(cls, containers_root: Path, container_id: str) -> ContainerLayer:
        layer = cls(under(containers_root, container_id))
        containers_root.mkdir(mode=0o711, parents=True, exist_ok=True)
        layer.path.mkdir(mode=0o700)
        for sub in ("upper", "work", "merged"):
            (layer.path / sub).mkdir(mode=0o755)
        return layer

    @property
    def upper(self) -> Path:
        return self.path / "upper"

    @property
    def work(self) -> Path:
        return self.path / "work"

    @property
    def merged(self) -> Path:
        return self.path / "merged"

    def remove(self) -> None:
        """Idempotent: tolerates a layer that is already gone."""
        shutil.rmtree(self.path, ignore_errors=True)
