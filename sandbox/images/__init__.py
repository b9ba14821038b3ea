"""The local image store: root filesystems keyed by digest, names resolved through refs."""
