"""The built-in pod network: a host bridge (`sandbox0`) holding the subnet's first address, one veth
pair per pod whose peer is `eth0` in pause's network namespace, an address leased from the
subnet (ipam.py) and a default route via the bridge, as CNI's bridge + host-local plugins set a pod
up (isGateway, no hairpin).

Life cycle: the first lease creates the network's directory and the bridge, under the network's
lock; the release of the last lease removes both (and the hostPort table, if a pod made one),
unless the bridge was configured to stay. The veth needs no lock: the pod's lease keeps the bridge
alive, and the pair dies with pause's namespace (the host end is still deleted explicitly, for a
pause that is somehow still alive at tear-down).
"""

from __future__ import annotations

import _socket  # socket.py's enum conversions cost ~1.3 ms at import; raw sockets need none
import os
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.network.config import NETWORKS_DIR, BridgeConfig, check_bridge_name
from sandbox.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.network.ipam import Ipam

POD_IFNAME = "eth0"
NFT_MARKER = "nft"  # in the network's directory: a pod made the hostPort/masquerade table
KEEP_MARKER = "keep"  # in the network's directory: --keep-bridge, the bridge stays without pods


class NetworkSetupError(SandboxError):
    """The pod's network could not be set up (the message names the step and the kernel's error)."""


@record
class Lease:
    """A pod's address on the bridge."""

    address: str
    prefixlen: int
    gateway: str


def veth_name(uid: str) -> str:
    """The host end of a pod's veth pair: 15 characters derived from the pod's uid."""
    return "sbv" + uid.replace("-", "")[:12]


def lease(config: BridgeConfig, owner: str, then: Callable[[Lease], None] | None = None) -> Lease:
    """Lease an address for `owner` and make sure the bridge exists with the gateway address, under
    the network's lock (a concurrent release of the last lease cannot remove it under us); `then`
    runs under the same lock (the pod's hostPorts, whose conflicts the lock serialises). On any
    error the lease is dropped again and the error raised."""
    ipam = config.ipam()
    with ipam.locked():
        address = ipam.allocate(owner)
        result = Lease(address, ipam.subnet.prefixlen, ipam.gateway)
        if config.keep_bridge:
            mark(config, KEEP_MARKER)
        try:
            try:
                _ensure_bridge(config.bridge, ipam.gateway, ipam.subnet.prefixlen)
            except OSError as e:
                raise NetworkSetupError(f"bridge {config.bridge}: {e.strerror}") from None
            if then is not None:
                then(result)
        except BaseException:
            ipam.release(owner)
            if not ipam.leases() and not config.keep_bridge:
                _remove_network(config, ipam)
            raise
    return result


def _ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    from sandbox.network.rtnl import Rtnl

    with Rtnl() as rtnl:
        index = rtnl.link_index(name)
        if index is None:
            rtnl.add_bridge(name, up=False)
            index = rtnl.link_index(name)
            if index is None:
                raise OSError(19, "bridge vanished after creation")
            _no_ipv6(name)
        try:
            rtnl.add_address(index, gateway, prefixlen)
        except OSError as e:
            if e.errno != 17:  # EEXIST: it has it already
                raise
        rtnl.set_up(index)


def attach(config: BridgeConfig, uid: str, pod_lease: Lease, pause_pid: int, pause_pidfd: int) -> None:
    """The pod's veth: host end on the bridge, `eth0` in pause's network namespace with the leased
    address, up, and a default route via the gateway."""
    from sandbox import native
    from sandbox.network.rtnl import Rtnl

    try:
        nsfd = os.open(f"/proc/{pause_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetworkSetupError(f"pause's network namespace: {e.strerror}") from None
    try:
        import signal

        signal.pidfd_send_signal(pause_pidfd, 0)  # the namespace opened is pause's: it still lives
        delete_veth(veth_name(uid))  # a re-created sandbox: the old pair may not be freed yet
        with Rtnl() as host:
            master = host.link_index(config.bridge)
            if master is None:
                raise NetworkSetupError(f"bridge {config.bridge} is gone")
            host.add_veth(veth_name(uid), POD_IFNAME, nsfd, master)
        _hairpin(veth_name(uid))
        with Rtnl(native.socket_in_netns(pause_pidfd, _socket.AF_NETLINK, _socket.SOCK_RAW)) as pod:
            index = pod.link_index(POD_IFNAME)
            if index is None:
                raise NetworkSetupError(f"{POD_IFNAME} did not appear in the pod's namespace")
            pod.add_address(index, pod_lease.address, pod_lease.prefixlen)
            pod.set_up(index)
            pod.add_default_route(pod_lease.gateway)
    except OSError as e:
        raise NetworkSetupError(f"pod network on {config.bridge}: {e.strerror or e}") from None
    finally:
        os.close(nsfd)


def set_knob(path: str, value: bytes = b"1") -> None:
    """Write a kernel setting (a /proc/sys or /sys file) with one write(2)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value)
    finally:
        os.close(fd)


def mark(config: BridgeConfig, name: str) -> None:
    """An empty marker file in the network's directory (NFT_MARKER, KEEP_MARKER)."""
    os.close(os.open(config.directory / name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))


def _no_ipv6(link: str) -> None:
    """No IPv6 on the bridge (the network is IPv4 only): a fresh bridge coming up would otherwise
    start link-local addressing, DAD and MLD reports while the first pod starts (~5 ms measured)."""
    try:
        set_knob(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6")
    except FileNotFoundError:
        pass  # a kernel without IPv6


def _hairpin(port: str) -> None:
    """Hairpin mode on the pod's bridge port: a pod reaching its own hostPort through the host
    address gets the DNATed packet back out of the port it came in by (CNI bridge's hairpinMode)."""
    set_knob(f"/sys/class/net/{port}/brport/hairpin_mode")


def delete_veth(name: str) -> bool:
    """The host end of a pod's pair (its peer goes with it); False if it was gone already."""
    try:
        _socket.if_nametoindex(name)
    except OSError:
        return False  # no netlink socket for the usual case: the pair died with pause's namespace
    from sandbox.network.rtnl import Rtnl

    with Rtnl() as rtnl:
        return rtnl.delete_link(name)


def release(config: BridgeConfig, owner: str) -> bool:
    """Drop `owner`'s lease; the last one takes the bridge, the hostPort table and the network's
    directory along (unless config.keep_bridge). False if there was nothing to release."""
    ipam = config.ipam()
    if not ipam.dir.is_dir():
        return False
    with ipam.locked():
        released = ipam.release(owner)
        if not config.keep_bridge and not ipam.leases():
            _remove_network_detached(config, ipam)
    return bool(released)


def _remove_network_detached(config: BridgeConfig, ipam: Ipam) -> None:
    """Remove the network from a detached process that holds the network's lock (its inherited
    copy of the lock's open file) until done, so the runtime does not wait for it: unregistering
    the bridge waits for RCU grace periods, 31-55 ms here, more than everything else of a pod's
    network together. A runtime starting meanwhile waits for the lock and then finds the network
    gone (or re-creates it). If the process dies half-way, what is left is a network without
    leases, which the next release or `sandbox gc` (remove_unused) removes."""
    child = os.fork()
    if child != 0:
        # Forked twice so that init, not the runtime, reaps the remover: a long-lived runtime (the
        # node agent) would otherwise collect a zombie per removed network.
        os.waitpid(child, 0)
        return
    code = 1
    try:
        if os.fork() != 0:
            os._exit(0)
        os.setsid()  # out of the runtime's session: a Ctrl-C for it is not for us
        import sys

        if "sandbox.network.hostports" in sys.modules:  # its libnftables socket is the parent's
            sys.modules["sandbox.network.hostports"].drop_context()
        # Only the network's lock stays open: the runtime's other fds (the pod's own lock, log
        # pipes, pidfds) must close with the runtime, not with us.
        os.closerange(3, ipam.lock_fd)
        os.closerange(ipam.lock_fd + 1, os.sysconf("SC_OPEN_MAX"))
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # nobody waits on the runtime's pipes for us
        os.close(null)
        _remove_network(config, ipam)
        code = 0
    finally:
        os._exit(code)


def remove_unused(base: Path = NETWORKS_DIR) -> list[str]:
    """`sandbox gc`: remove every network left without leases (its remover died) unless it was
    made to stay; returns the bridges removed."""
    removed = []
    for directory in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            subnet = (directory / "subnet").read_text().strip()
            check_bridge_name(directory.name)
        except (OSError, SandboxError):
            continue
        config = BridgeConfig(directory.name, subnet, base=base)
        ipam = config.ipam()
        with ipam.locked():
            if ipam.leases() or (directory / KEEP_MARKER).exists() or not directory.exists():
                continue
            _remove_network(config, ipam)
        removed.append(directory.name)
    return removed


def _remove_network(config: BridgeConfig, ipam: Ipam) -> None:
    """The last lease went: the hostPort table (if a pod made one), the bridge, the directory."""
    if (ipam.dir / NFT_MARKER).exists():
        from sandbox.network.hostports import HostPorts

        HostPorts(config.nft_table, config.bridge, config.subnet).remove_table()
        os.unlink(ipam.dir / NFT_MARKER)
    from sandbox.network.rtnl import Rtnl

    with Rtnl() as rtnl:
        rtnl.delete_link(config.bridge)
    try:
        os.unlink(ipam.dir / KEEP_MARKER)
    except FileNotFoundError:
        pass
    ipam.remove_if_empty()


def host_ip(fallback: str) -> str:
    """The node's address as status.hostIP: the source the kernel picks for the default route (a
    UDP connect sends nothing), else `fallback`."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only a route lookup
        return str(s.getsockname()[0])
    except OSError:
        return fallback
    finally:
        s.close()
