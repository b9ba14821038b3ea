"""Live pod state under the state directory: atomic JSON, a liveness lock, process identities."""
