"""How the runtime reaches registries (mirrors directory, insecure hosts, credentials file): the
options every pull takes. Apart from sandbox/images/pull.py so that `sandbox run` builds them
without importing the pull machinery (threading, json, the HTTP client) for an image it has."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.record import Record, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_HOSTS_DIR = Path("/etc/sandbox/certs.d")
HOSTS_DIR_ENV = "SANDBOX_REGISTRY_CONFIG"
INSECURE_ENV = "SANDBOX_INSECURE_REGISTRIES"  # comma-separated HOST[:PORT]


class PullOptions(Record):
    hosts_dir: Path | None = None  # None: $SANDBOX_REGISTRY_CONFIG, else DEFAULT_HOSTS_DIR
    insecure: frozenset[str] = field(default_factory=frozenset)
    credentials_file: Path | None = None  # None: $DOCKER_CONFIG/config.json, else ~/.docker/config.json

    def resolved_hosts_dir(self) -> Path:
        return self.hosts_dir or Path(os.environ.get(HOSTS_DIR_ENV) or DEFAULT_HOSTS_DIR)

    def resolved_insecure(self) -> frozenset[str]:
        extra = {h.strip() for h in os.environ.get(INSECURE_ENV, "").split(",") if h.strip()}
        return frozenset(self.insecure | extra)

    def resolved_credentials_file(self) -> Path:
        if self.credentials_file is not None:
            return self.credentials_file
        base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
        return Path(base) / "config.json"


def from_args(args: Any) -> PullOptions:
    """The options of a command's registry flags (cli/image.py add_registry_options). Here, not
    in cli/image.py, so that `sandbox run` does not import the image commands (config/sources.py
    NodeStore gives the figure)."""
    return PullOptions(Path(args.registry_config) if args.registry_config else None,
                       frozenset(args.insecure_registry),
                       Path(args.registry_credentials) if args.registry_credentials else None)
