"""The built-in network's settings, light enough for every `sandbox run` to import: the modules
that act on them (bridge.py, ipam.py, and the `socket` module they need) load only for pods that
use the bridge."""

from __future__ import annotations

import _socket  # socket.py's enum conversions cost ~1.3 ms at import; inet_pton needs none
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sandbox.network.ipam import Ipam

DEFAULT_BRIDGE = "sandbox0"
DEFAULT_SUBNET = "10.89.0.0/16"
NETWORKS_DIR = Path("/run/sandbox/networks")  # tmpfs: a lease means a live veth, a reboot ends both


def network_dir(bridge: str, base: Path = NETWORKS_DIR) -> Path:
    return base / bridge


def check_bridge_name(name: str) -> None:
    """A Linux interface name (IFNAMSIZ 16 with the NUL) that is also a safe path component."""
    if not 0 < len(name) <= 15 or "/" in name or name in (".", "..") or any(c.isspace() or c == ":" for c in name):
        raise SandboxError(f"bridge name must be 1-15 characters without '/', ':' or spaces, got {name!r}")


class BridgeConfig(Record):
    bridge: str = DEFAULT_BRIDGE
    subnet: str = DEFAULT_SUBNET
    masquerade: bool = False  # outbound NAT for the subnet (off: tests never leave the machine)
    keep_bridge: bool = False  # leave the bridge (and its directory) when the last pod goes
    base: Path = NETWORKS_DIR

    @property
    def directory(self) -> Path:
        return network_dir(self.bridge, self.base)

    @property
    def nft_table(self) -> str:
        return f"sandbox_{self.bridge}"

    def ipam(self) -> Ipam:
        from sandbox.network.ipam import Ipam

        return Ipam(self.directory, self.subnet)


# The pod network is IPv4 only; its few address sums are done on integers here (ipaddress costs
# ~1.2 ms to import, on every bridge pod's start).

def address_value(text: str) -> int:
    """A dotted-quad IPv4 address as an integer; ValueError for anything else (inet_pton's strict
    form, as ipaddress: four decimal parts, no leading zeros)."""
    try:
        return int.from_bytes(_socket.inet_pton(_socket.AF_INET, text), "big")
    except (OSError, TypeError):
        raise ValueError(f"not an IPv4 address: {text!r}") from None


def address_text(value: int) -> str:
    return _socket.inet_ntop(_socket.AF_INET, value.to_bytes(4, "big"))


class Subnet4:
    """An IPv4 subnet `a.b.c.d/n` without host bits (str() gives it back in that form)."""

    def __init__(self, text: str) -> None:
        address, slash, length = text.partition("/")
        if not slash or not length.isdigit() or not 0 <= int(length) <= 32:
            raise ValueError(f"not an IPv4 subnet: {text!r}")
        self.prefixlen = int(length)
        self.size = 1 << (32 - self.prefixlen)
        self.network = address_value(address)
        if self.network & (self.size - 1):
            raise ValueError(f"{text} has host bits set")
        self.broadcast = self.network + self.size - 1

    def __str__(self) -> str:
        return f"{address_text(self.network)}/{self.prefixlen}"
