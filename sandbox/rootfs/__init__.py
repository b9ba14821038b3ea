"""Container root filesystems: the mount plan (pure) and the writable layers on disk."""
