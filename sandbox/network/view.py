"""A pod's network as the kernel shows it, for `sandbox inspect`: the links of pause's network
namespace with their state and addresses, its default route, and for a veth the host end of the
pair and the bridge that end is on. Read-only, over NETLINK_ROUTE dumps: the socket is made in
pause's namespace by the native helper (netns.py; the runtime never enters it), the host end is
looked up by index on a host socket."""

from __future__ import annotations

import _socket
import struct

from sandbox.network.nfnl import attrs_of
from sandbox.network.rtnl import (
    _IFADDR,
    _IFINFO,
    IFA_ADDRESS,
    IFA_LOCAL,
    IFF_UP,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_LINK,
    IFLA_LINK_NETNSID,
    IFLA_MASTER,
    IFLA_MTU,
    RTM_GETLINK,
    Rtnl,
    ifinfo,
    link_attrs,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NLM_F_DUMP = 0x300
RTM_GETADDR, RTM_GETROUTE, RTM_NEWROUTE = 22, 26, 24
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN = 254
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags


def _attrs(body: bytes, offset: int) -> dict[int, bytes]:
    return dict(attrs_of(body, offset))


def _name(raw: bytes | None) -> str:
    return (raw or b"").split(b"\0", 1)[0].decode(errors="replace")


def _address(family: int, raw: bytes) -> str:
    return _socket.inet_ntop(family, raw)


def pod_network(pidfd: int) -> dict[str, Any]:
    """{"interfaces": [...], "defaultRoute": {...} or None} of the network namespace of the
    process `pidfd` names (pause)."""
    from sandbox.netns import socket_in_netns

    sock = socket_in_netns(pidfd, _socket.AF_NETLINK, _socket.SOCK_RAW)
    fd = sock.detach()
    with Rtnl(fd) as rtnl:
        links = rtnl.request(RTM_GETLINK, NLM_F_DUMP, ifinfo())
        addrs = rtnl.request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(0, 0, 0, 0, 0))
        routes = rtnl.request(RTM_GETROUTE, NLM_F_DUMP, _RTMSG.pack(_socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0))
    by_index: dict[int, dict[str, Any]] = {}
    peers: dict[int, int] = {}  # pod link index -> the peer's index in another namespace
    for _, body in links:
        _family, _type, index, flags, _change = _IFINFO.unpack_from(body)
        found = link_attrs(body)
        mac = found.get(IFLA_ADDRESS, b"")
        entry: dict[str, Any] = {"name": _name(found.get(IFLA_IFNAME)), "index": index, "up": bool(flags & IFF_UP),
                                 "mtu": struct.unpack("=I", found[IFLA_MTU])[0] if IFLA_MTU in found else 0,
                                 "mac": ":".join(f"{b:02x}" for b in mac) if len(mac) == 6 else "",
                                 "addresses": []}
        if IFLA_LINK in found and IFLA_LINK_NETNSID in found:  # one end of a pair whose peer is elsewhere
            peers[index] = struct.unpack("=i", found[IFLA_LINK])[0]
        by_index[index] = entry
    for _, body in addrs:
        family, prefixlen, _flags, _scope, index = _IFADDR.unpack_from(body)
        found = _attrs(body, _IFADDR.size)
        raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
        if index in by_index and raw and family in (_socket.AF_INET, _socket.AF_INET6):
            by_index[index]["addresses"].append(f"{_address(family, raw)}/{prefixlen}")
    default = None
    for mtype, body in routes:
        family, dst_len, _src, _tos, table, _proto, _scope, _rtype, _flags = _RTMSG.unpack_from(body)
        found = _attrs(body, _RTMSG.size)
        table = struct.unpack("=I", found[RTA_TABLE])[0] if RTA_TABLE in found else table
        if mtype == RTM_NEWROUTE and dst_len == 0 and table == RT_TABLE_MAIN and RTA_GATEWAY in found:
            oif = struct.unpack("=i", found[RTA_OIF])[0] if RTA_OIF in found else 0
            default = {"via": _address(family, found[RTA_GATEWAY]), "dev": by_index.get(oif, {}).get("name", "")}
    if peers:
        _host_ends(by_index, peers)
    return {"interfaces": [by_index[i] for i in sorted(by_index)], "defaultRoute": default}


def _host_ends(by_index: dict[int, dict[str, Any]], peers: dict[int, int]) -> None:
    """For each pod link with a peer: the host link of that index, if it is the pod link's own
    peer (its IFLA_LINK names the pod link back), and the bridge it is enslaved to."""
    with Rtnl() as host:
        for index, peer in peers.items():
            try:
                replies = host.request(RTM_GETLINK, 0, ifinfo(peer))
            except OSError:
                continue  # not in the host's namespace (another pod's, a CNI plugin's)
            for _, body in replies:
                found = link_attrs(body)
                back = struct.unpack("=i", found[IFLA_LINK])[0] if IFLA_LINK in found else 0
                if back != index:
                    continue
                hostside: dict[str, Any] = {"name": _name(found.get(IFLA_IFNAME))}
                if IFLA_MASTER in found:
                    master = struct.unpack("=I", found[IFLA_MASTER])[0]
                    try:
                        for _, mbody in host.request(RTM_GETLINK, 0, ifinfo(master)):
                            hostside["bridge"] = _name(link_attrs(mbody).get(IFLA_IFNAME))
                    except OSError:
                        pass
                by_index[index]["hostSide"] = hostside
