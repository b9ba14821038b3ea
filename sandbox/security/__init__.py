"""The container boundary's kernel-side confinement: seccomp filters (built with libseccomp in the
runtime, loaded by the native child just before execve)."""
