"""ImageService: the CRI's image calls over the local store (sandbox/images/store.py) and
registries (sandbox/images/pull.py). The pull *policy* (IfNotPresent, Always, Never, the back-off)
is the kubelet's image manager and stays in the supervisor (supervisor/pulls.py); what it asks of
the runtime is only these calls, with the CRI's meanings: ImageStatus answers None for an image
the node does not have (not an error), PullImage returns the image it stored (by its manifest
digest, the CRI's image ref), RemoveImage of a missing image is not an error."""

from __future__ import annotations

from sandbox.errors import ImageError

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

    from sandbox.images.registry import RegistryClient
    from sandbox.images.store import Image, ImageStore, Lease


class ImageService:
    def __init__(self, store: ImageStore) -> None:
        self.store = store

    def list_images(self) -> list[Image]:
        """Every named image in the store (ListImages), by reference."""
        images = []
        for name in sorted(self.store.refs()):
            image = self.image_status(name)
            if image is not None:
                images.append(image)
        return images

    def image_status(self, reference: str) -> Image | None:
        """The stored image `reference` names, or None when the node does not have it."""
        try:
            return self.store.lookup(reference)
        except ImageError:
            return None

    def pull_image(self, reference: str, registry: RegistryClient, platform: Any = None,
                   lease: Lease | None = None) -> Image:
        """Pull `reference` through `registry` (its credentials: the pod's pull secrets, the
        node's) into the store; ImageError (its message the registry's or the store's) when it
        cannot. A reference whose digest is stored already costs only the manifest request.
        `lease`: the caller's (images/lease.py), which holds the image once it is pulled."""
        from sandbox.images.pull import pull

        return pull(self.store, reference, registry, platform, lease=lease)

    def remove_image(self, reference: str) -> None:
        """RemoveImage: the name goes; blobs no name needs go with `image prune`."""
        if self.image_status(reference) is not None:
            self.store.remove(reference)

    def image_size(self, image: Image) -> int:
        """What the kubelet's Pulled event reports: the image's blobs (manifest, config, layers)."""
        manifest = self.store.read_json(image.digest)
        digests = [image.digest, manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])]
        return sum(self.store.blob_path(d).stat().st_size for d in digests)
