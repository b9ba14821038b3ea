"""Per-container-start writable layers: `<lib>/containers/<container id>/{upper,work}`.

The overlay itself is mounted inside the container's own mount namespace (stage 2), so it
disappears with the namespace, crash or not; only these directories need removing. Its mount
point is the layer's own directory (`merged`): covering upper and work there is allowed (only
the layers may not overlap), they are out of reach below the container's root anyway, and a
`merged` directory of its own would be one more inode made and freed per start, which costs here
(sandbox/topdir.py).
"""

from __future__ import annotations

from pathlib import Path

from sandbox.paths import under
from sandbox.record import Record


class ContainerLayer(Record):
    path: Path

    @classmethod
    def create(cls, containers_root: Path, container_id: str) -> ContainerLayer:
        layer = cls(under(containers_root, container_id))
        containers_root.mkdir(mode=0o711, parents=True, exist_ok=True)
        layer.path.mkdir(mode=0o700)
        for sub in ("upper", "work"):
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
        """The overlay's mount point, in the container's mount namespace only."""
        return self.path

    def remove(self) -> None:
        """Idempotent: tolerates a layer that is already gone."""
        from sandbox.rmtree import rmtree

        rmtree(self.path, ignore_errors=True)
