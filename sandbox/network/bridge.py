"""The built-in pod network: a host bridge (`sandbox0`) holding the subnet's first address, one veth
pair per pod whose peer is `eth0` in pause's network namespace, an address leased from the
subnet (ipam.py) and a default route via the bridge, as CNI's bridge + host-local plugins set a pod
up (isGateway, hairpinMode); IPv4 only: no IPv6 link-local address on either end of the pair.

Life cycle: the first lease creates the network's directory and the bridge, under the network's
lock; the release of the last lease has both removed (and the hostPort table, if a pod made one)
by a detached process (remover.py), unless the bridge was configured to stay. The veth needs no
lock: the pod's lease keeps the bridge alive, and the pair dies with pause's namespace (delete_veth: deleted explicitly only when that
namespace outlives the pod, e.g. a process joined it).
"""

from __future__ import annotations

import _socket  # socket.py's enum conversions cost ~1.3 ms at import; raw sockets need none
import os
import sys
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.network.config import NETWORKS_DIR, BridgeConfig, check_bridge_name
from sandbox.record import Record
from sandbox.signals import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from sandbox.network.ipam import Ipam
    from sandbox.network.rtnl import Rtnl

POD_IFNAME = "eth0"
NFT_MARKER = "nft"  # in the network's directory: a pod made the hostPort/masquerade table
KEEP_MARKER = "keep"  # in the network's directory: --keep-bridge, the bridge stays without pods
REMOVER_FILE = "remover"  # in the network's directory: the pid of the pending remover (remover.py)


class NetworkSetupError(SandboxError):
    """The pod's network could not be set up (the message names the step and the kernel's error)."""


class Lease(Record):
    """A pod's address on the bridge."""

    address: str
    prefixlen: int
    gateway: str
    master: int = 0  # the bridge's link index (0: look it up); the lease keeps the bridge alive


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
        if config.keep_bridge:
            mark(config, KEEP_MARKER)
        try:
            try:
                master = _ensure_bridge(config.bridge, ipam.gateway, ipam.subnet.prefixlen)
                result = Lease(address, ipam.subnet.prefixlen, ipam.gateway, master)
            except OSError as e:
                raise NetworkSetupError(f"bridge {config.bridge}: {e.strerror}") from None
            if then is not None:
                then(result)
        except BaseException:
            ipam.release(owner)
            if not ipam.any_lease() and not config.keep_bridge:
                remove_network(config, ipam)
            raise
    return result


def _ensure_bridge(name: str, gateway: str, prefixlen: int) -> int:
    """The bridge `name`, made if missing, with the gateway address and up; returns its index."""
    try:  # an ioctl, not a netlink round trip (RTM_GETLINK's answer carries every attribute;
        # 0.09 ms median for the round trip, in-process)
        index: int | None = _socket.if_nametoindex(name)
    except OSError:
        index = None
    if index is not None and _is_ready(name, gateway, prefixlen):
        if "sandbox.trace" in sys.modules:  # loaded by --trace only
            from sandbox.trace import emit

            emit("runtime", "ioctl", f"SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFNETMASK: bridge {name} up with "
                 f"{gateway}/{prefixlen}", link=name, address=f"{gateway}/{prefixlen}")
        return index
    from sandbox.network.rtnl import Rtnl, address_msg, up_msg

    with Rtnl() as rtnl:
        if index is None:
            rtnl.add_bridge(name, up=False)
            index = rtnl.link_index(name)
            if index is None:
                raise OSError(19, "bridge vanished after creation")
            _no_ipv6(name)
        # one round trip for both; an existing bridge has its address already (EEXIST)
        added, up = rtnl.batch(address_msg(index, gateway, prefixlen), up_msg(index))
        if added not in (0, 17) or up:
            code = added if added not in (0, 17) else up
            raise OSError(code, os.strerror(code))
        if not added:
            rtnl.trace_address(index, gateway, prefixlen)
        rtnl.trace_up(index)
    return index


def _is_ready(name: str, gateway: str, prefixlen: int) -> bool:
    """Whether the link `name` is up with `gateway`/`prefixlen` as its IPv4 address: the state
    the first pod left the bridge in, which every later pod finds. Three ioctls on a datagram
    socket instead of a netlink socket and a round trip that re-adds the address (EEXIST) and
    sets it up again: _ensure_bridge 0.13-0.19 -> 0.08-0.09 ms in a pod's start (medians of 24
    pod starts, two interleaved sets). Any other state (down, no address, another one first)
    takes the netlink path, as before."""
    import fcntl
    import struct

    from sandbox.network.rtnl import IFF_UP

    request = name.encode().ljust(16, b"\0") + bytes(24)
    mask = ((1 << 32) - (1 << (32 - prefixlen))) if prefixlen else 0
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        flags = struct.unpack_from("=H", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, request), 16)[0]
        address = fcntl.ioctl(s.fileno(), SIOCGIFADDR, request)[20:24]
        netmask = fcntl.ioctl(s.fileno(), SIOCGIFNETMASK, request)[20:24]
    except OSError:  # EADDRNOTAVAIL: no IPv4 address
        return False
    finally:
        s.close()
    return bool(flags & IFF_UP) and address == _socket.inet_aton(gateway) and netmask == mask.to_bytes(4, "big")


def attach(config: BridgeConfig, uid: str, pod_lease: Lease, pause_pid: int, pause_pidfd: int) -> None:
    """The pod's veth: host end on the bridge, `eth0` in pause's network namespace with the leased
    address, up, and a default route via the gateway."""
    from sandbox import native
    from sandbox.network.rtnl import Rtnl, hairpin_msg, no_ipv6_ll_msg, up_by_name_msg

    try:
        nsfd = os.open(f"/proc/{pause_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetworkSetupError(f"pause's network namespace: {e.strerror}") from None
    try:
        signal.pidfd_send_signal(pause_pidfd, 0)  # the namespace opened is pause's: it still lives
        host_end = veth_name(uid)
        delete_veth(host_end, wait_for_dying=True)  # a re-created sandbox: the old pair may not be freed yet
        with Rtnl() as host:
            master = pod_lease.master or host.link_index(config.bridge)
            if master is None:
                raise NetworkSetupError(f"bridge {config.bridge} is gone")
            # one round trip: the pair, then (by name) hairpin mode (CNI bridge's hairpinMode: a
            # pod reaching its own hostPort through the host's address gets the DNATed packet
            # back out of the port it came in by; was a sysfs write, 0.05 ms), no IPv6
            # link-local, up
            host.add_veth(host_end, POD_IFNAME, nsfd, master,
                          then=(hairpin_msg(host_end), no_ipv6_ll_msg(name=host_end), up_by_name_msg(host_end)))
        _configure_pod_side(native.socket_in_netns(pause_pidfd, _socket.AF_INET, _socket.SOCK_DGRAM), pod_lease)
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


# ioctl requests (<linux/sockios.h>) and struct rtentry (<net/route.h>, native layout)
SIOCADDRT, SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCSIFADDR, SIOCSIFNETMASK = 0x890B, 0x8913, 0x8914, 0x8916, 0x891C
SIOCGIFADDR, SIOCGIFNETMASK = 0x8915, 0x891B
RTF_UP, RTF_GATEWAY = 0x1, 0x2
_RTENTRY = "@L16s16s16sHhLPhPLLH0L"  # 120 bytes on x86_64 (0L: its tail padding); pad1, dst, gateway, genmask, flags, pad2, pad3, pad4, metric, dev, mtu, window, irtt


def _configure_pod_side(fd: int, lease: Lease) -> None:
    """`eth0` in the pod's namespace: the leased address and its mask, up, the default route via
    the gateway; by ioctl on `fd`, a datagram socket made in that namespace, closed here.

    Not netlink: a netlink socket is freed only after RCU grace periods (netlink_release's
    call_rcu, 15-20 ms here), and it holds the namespace as long, so at the end of a short pod
    the tear-down found the pair still there and waited for the namespace to die (up to 8 ms;
    delete_veth). An unbound datagram socket is freed at close. IPv6 link-local is off for every
    link made in the namespace (PodNetwork.pause_sysctls: addr_gen_mode in stage 1)."""
    import fcntl
    import struct

    from sandbox.network.rtnl import IFF_UP

    name = POD_IFNAME.encode().ljust(16, b"\0")

    def sockaddr(address: str) -> bytes:
        return struct.pack("=HH4s8x", _socket.AF_INET, 0, _socket.inet_aton(address))

    mask = ((1 << 32) - (1 << (32 - lease.prefixlen))) if lease.prefixlen else 0
    try:
        fcntl.ioctl(fd, SIOCSIFADDR, name + sockaddr(lease.address) + bytes(8))
        fcntl.ioctl(fd, SIOCSIFNETMASK, name + sockaddr(_socket.inet_ntoa(mask.to_bytes(4, "big"))) + bytes(8))
        flags = struct.unpack_from("=h", fcntl.ioctl(fd, SIOCGIFFLAGS, name + bytes(24)), 16)[0]
        fcntl.ioctl(fd, SIOCSIFFLAGS, name + struct.pack("=h", flags | IFF_UP) + bytes(22))
        # the default route via the gateway, its device found by the kernel (rt_dev NULL)
        fcntl.ioctl(fd, SIOCADDRT, struct.pack(_RTENTRY, 0, sockaddr("0.0.0.0"), sockaddr(lease.gateway),
                                               sockaddr("0.0.0.0"), RTF_UP | RTF_GATEWAY, 0, 0, 0, 0, 0, 0, 0, 0))
    finally:
        os.close(fd)
    if "sandbox.trace" in sys.modules:  # loaded by --trace only
        from sandbox.trace import emit

        emit("runtime", "ioctl", f"ioctl SIOCSIFADDR {lease.address}/{lease.prefixlen}, SIOCSIFFLAGS up on "
             f"{POD_IFNAME}, SIOCADDRT default via {lease.gateway} (in the pod's netns)",
             netns="pod", address=f"{lease.address}/{lease.prefixlen}", gateway=lease.gateway)


def delete_veth(name: str, wait_for_dying: bool = False) -> bool:
    """The host end of a pod's pair (its peer goes with it); False if it was gone already.

    A pair whose peer's namespace is dying (pause and the containers gone, nothing holding it)
    is left to the kernel, which removes it with the namespace, unless `wait_for_dying` (a new
    pair of the same name is to be made). Why: at a pod's end the pair was still listed in
    about half of the tear-downs (the namespace's cleanup runs after RCU grace periods), and an
    RTM_DELLINK then cost 10-25 ms (its own unregistration waits for RCU under the RTNL lock),
    against ~0.1 ms for the look. At the look the namespace was often still held for another
    1-5 ms, by our own netlink socket made in it at attach: a closed netlink socket drops its
    namespace reference only after RCU grace periods (netlink_release's call_rcu; measured
    15-20 ms in a scratch namespace). So a namespace still alive is looked at again for up to
    DYING_WAIT_S before the pair is deleted: one held longer (a process that joined it) gets
    the old, explicit deletion."""
    try:
        _socket.if_nametoindex(name)
    except OSError:
        return False  # no netlink socket for the usual case: the pair died with pause's namespace
    from sandbox.network.rtnl import Rtnl

    with Rtnl() as rtnl:
        if not wait_for_dying and _namespace_dies(rtnl, name):
            return True
        return rtnl.delete_link(name)


DYING_WAIT_S = 0.02


def _namespace_dies(rtnl: Rtnl, name: str) -> bool:
    """Whether the veth `name`'s peer namespace is on its way out (or the pair is gone), looking
    again every 0.5 ms for up to DYING_WAIT_S while something still holds it."""
    import time

    deadline = time.monotonic() + DYING_WAIT_S
    while rtnl.peer_netns_alive(name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def release(config: BridgeConfig, owner: str) -> bool:
    """Drop `owner`'s lease; after the last one the network (bridge, hostPort table, directory)
    goes too, unless config.keep_bridge: removed by a detached process (remover.py) that first
    waits a little for a next pod. False if there was nothing to release."""
    ipam = config.ipam()
    if not ipam.dir.is_dir():
        return False
    with ipam.locked():
        released = ipam.release(owner)
        if not config.keep_bridge and not ipam.any_lease():
            # this pod's wish is the newest: a keep marker left now would be a newer pod's
            _unlink(ipam.dir / KEEP_MARKER)
            # pods back to back find one pending and skip importing remover.py (~0.5 ms, -X importtime)
            if pending_remover(ipam) is None:
                from sandbox.network.remover import hand_over

                hand_over(config, ipam)
    return bool(released)


def pending_remover(ipam: Ipam) -> int | None:
    """The pid of this network's remover (remover.py) if one is still running (its cmdline names
    that module: a stale file's pid may have been reused); else None."""
    try:
        pid = int(_read(ipam.dir / REMOVER_FILE))
        alive = b"sandbox.network.remover" in _read(f"/proc/{pid}/cmdline")
    except (OSError, ValueError):
        return None
    return pid if alive else None


def _read(path: str | Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def remove_unused(base: Path = NETWORKS_DIR, skip: Collection[str] = ()) -> list[str]:
    """`sandbox gc`: remove every network left without leases (its remover died, or has not
    ended its grace yet) unless it was made to stay or is named in `skip`; returns the bridges
    removed."""
    removed = []
    for directory in sorted(base.iterdir()) if base.is_dir() else []:
        if directory.name in skip:
            continue
        try:
            subnet = (directory / "subnet").read_text().strip()
            check_bridge_name(directory.name)
        except (OSError, SandboxError):
            continue
        config = BridgeConfig(directory.name, subnet, base=base)
        ipam = config.ipam()
        with ipam.locked():
            if ipam.any_lease() or (directory / KEEP_MARKER).exists() or not directory.exists():
                continue
            remove_network(config, ipam)
        removed.append(directory.name)
    return removed


def remove_network(config: BridgeConfig, ipam: Ipam, delete_link: Callable[[str], object] | None = None) -> None:
    """The last lease went: the hostPort table (if a pod made one), the bridge (through
    `delete_link`, by default at once), the directory. Call under the network's lock."""
    if (ipam.dir / NFT_MARKER).exists():
        from sandbox.network.hostports import HostPorts

        HostPorts(config.nft_table, config.bridge, config.subnet).remove_table()
        os.unlink(ipam.dir / NFT_MARKER)
    (delete_link or _delete_link)(config.bridge)
    _unlink(ipam.dir / KEEP_MARKER)
    _unlink(ipam.dir / REMOVER_FILE)
    ipam.remove_if_empty()


def _delete_link(name: str) -> None:
    from sandbox.network.rtnl import Rtnl

    with Rtnl() as rtnl:
        rtnl.delete_link(name)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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
