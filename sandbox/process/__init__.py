"""Turning a container spec into a running process (the spec-to-request conversion, like runc's
specconv) and the one interface every spawn goes through."""
