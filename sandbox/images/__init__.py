"""The local image store: root filesystems keyed by digest, names resolved through refs.

Also this machine's architecture in Go's names (GOARCH), the one map from `uname -m`: image
platforms and imported images' configs, seccomp profiles' `arches` and the node's
kubernetes.io/arch label all spell it so. It lives here, not in a module of its own, because this
package is loaded on every `sandbox run` already (the image store is): seccomp's compiler reads it
without adding a module to the start path, nor the registry client."""

from __future__ import annotations

import os

# uname -m -> GOARCH (the names OCI image indexes and Docker's seccomp profiles use)
GOARCH_BY_MACHINE = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
                     "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
                     "loongarch64": "loong64"}


def goarch(machine: str | None = None) -> str:
    """GOARCH of `machine` (this machine's by default); a machine not in the map keeps its own name."""
    if machine is None:
        machine = os.uname().machine
    return GOARCH_BY_MACHINE.get(machine, machine)
