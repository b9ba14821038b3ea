"""The few rtnetlink requests a pod's network needs, over a NETLINK_ROUTE socket: a bridge, a veth
pair whose peer is created inside the pod's network namespace, addresses, a default route,
link deletion.

Why not pyroute2, the design card's netlink library: importing it costs 130-200 ms here (its
package `__init__` loads ndb, ipdb and conntrack, and any submodule runs it), and even its bare
message classes cost ~27 ms, against the issue's 5 ms budget for a pod's network on `sandbox
run`'s start-up path. The messages below are the fixed-layout structs of <linux/rtnetlink.h>
and <linux/if_link.h>; each request asks for an ACK and raises OSError with the kernel's errno.
pyroute2 stays the tests' outside view of links and addresses.

A socket for another network namespace comes from `sandbox.netns` (created there by the native
core; netlink sockets keep the namespace they were created in), so the runtime never calls setns.
"""

from __future__ import annotations

import _socket  # socket.py's enum conversions cost ~1.3 ms at import; raw netlink needs none
import os
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    Message = tuple[int, int, bytes]  # (nlmsg type, extra NLM_F_ flags, payload): Rtnl.batch's unit

# <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/if.h>
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_ECHO, NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x8, 0x100, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 18, 20, 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_LINK, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 5, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_GATEWAY = 1, 5
NLA_F_NESTED = 0x8000
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RTN_UNICAST = 254, 3, 0, 253, 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_ATTR = struct.Struct("=HH")


def attr(kind: int, value: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = _ATTR.size + len(value)
    return _ATTR.pack(length, kind) + value + b"\0" * (-length & 3)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def name_attr(name: str) -> bytes:
    return attr(IFLA_IFNAME, name.encode() + b"\0")


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(_socket.AF_UNSPEC, 0, index, flags, change)


def _family(address: str) -> tuple[int, bytes]:
    family = _socket.AF_INET6 if ":" in address else _socket.AF_INET
    return family, _socket.inet_pton(family, address)


class Rtnl:
    """One NETLINK_ROUTE socket (the host's, or `fd`: one made in a pod's namespace); requests
    are synchronous, one at a time."""

    def __init__(self, fd: int | None = None) -> None:
        if fd is None:
            self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                                       _socket.NETLINK_ROUTE)
        else:
            self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, _socket.NETLINK_ROUTE, fd)
        self.sock.bind((0, 0))
        self.seq = 0
        self.where = "host" if fd is None else "pod"  # whose network namespace, for --trace

    def _trace(self, line: str, **values: object) -> None:
        if "sandbox.trace" in sys.modules:  # loaded by --trace only: off costs this lookup
            from sandbox.trace import emit

            emit("runtime", "netlink", f"{line} (in the {self.where}'s netns)", netns=self.where, **values)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, kind: int, flags: int, payload: bytes) -> list[tuple[int, bytes]]:
        """Send one request with NLM_F_ACK; returns the replies before the ACK as (type, body).
        OSError with the kernel's errno when it refuses."""
        self.seq += 1
        seq = self.seq
        self.sock.send(_HEADER.pack(_HEADER.size + len(payload), kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0)
                       + payload)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(65536)
            for mtype, mseq, body in _messages(data):
                if mseq != seq:
                    continue  # a late answer to an earlier request that was interrupted
                if mtype == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", body)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return replies
                if mtype == NLMSG_DONE:
                    return replies
                replies.append((mtype, body))

    def batch(self, *requests: Message) -> list[int]:
        """Send several requests (each with NLM_F_ACK) in one sendmsg and read their ACKs; the
        kernel runs them in order, each on its own (a refusal does not stop the next one).
        Returns each request's errno (0: done). One system call each way instead of two per
        request: a pod's address and route cost one round trip."""
        first = self.seq + 1
        packets = []
        for kind, flags, payload in requests:
            self.seq += 1
            packets.append(_HEADER.pack(_HEADER.size + len(payload), kind, NLM_F_REQUEST | NLM_F_ACK | flags,
                                        self.seq, 0) + payload)
        self.sock.send(b"".join(packets))
        codes: dict[int, int] = {}
        while len(codes) < len(requests):
            for mtype, mseq, body in _messages(self.sock.recv(65536)):
                if mtype == NLMSG_ERROR and first <= mseq <= self.seq:
                    codes[mseq] = -struct.unpack_from("=i", body)[0]
        return [codes[seq] for seq in range(first, self.seq + 1)]

    def run(self, *requests: Message) -> None:
        """`batch`, raising OSError for the first request the kernel refused."""
        for code in self.batch(*requests):
            if code:
                raise OSError(code, os.strerror(code))

    # --- links ---------------------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        """The index of the link called `name` in this socket's namespace; None if there is none."""
        try:
            replies = self.request(RTM_GETLINK, 0, ifinfo() + name_attr(name))
        except OSError as e:
            if e.errno == 19:  # ENODEV
                return None
            raise
        for mtype, body in replies:
            if mtype == RTM_NEWLINK:
                return int(_IFINFO.unpack_from(body)[2])
        return None

    def add_bridge(self, name: str, up: bool = True) -> None:
        """A new bridge (EEXIST if a link of that name exists)."""
        info = nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"bridge"))
        flags = ifinfo(flags=IFF_UP, change=IFF_UP) if up else ifinfo()
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, flags + name_attr(name) + info)
        self._trace(f"RTM_NEWLINK bridge {name}", link=name)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, master: int, mtu: int = 0) -> int | None:
        """A veth pair: `name` here, enslaved to the bridge `master` and up; `peer` created
        directly in the namespace `peer_netns_fd` names (one move fewer than creating it here),
        down: its side brings it up (veth_open refuses, ENOTCONN, a peer opened at creation,
        before the pair is linked). Returns the peer's index in its namespace, read from the
        kernel's echo of the new link (NLM_F_ECHO, honoured by RTM_NEWLINK since Linux 6.2: its
        IFLA_LINK), or None without one: the pod's side then need not ask for it (one round trip
        in the pod's namespace fewer, ~0.15 ms measured)."""
        peer_msg = ifinfo() + name_attr(peer) + attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
        if mtu:
            peer_msg += attr(IFLA_MTU, struct.pack("=I", mtu))
        info = nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"veth"),
                      nested(IFLA_INFO_DATA, nested(VETH_INFO_PEER, peer_msg)))
        extra = attr(IFLA_MTU, struct.pack("=I", mtu)) if mtu else b""
        replies = self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
                               ifinfo(flags=IFF_UP, change=IFF_UP) + name_attr(name) + extra
                               + attr(IFLA_MASTER, struct.pack("=I", master)) + info)
        if "sandbox.trace" in sys.modules and sys.modules["sandbox.trace"].active is not None:
            inode = os.fstat(peer_netns_fd).st_ino  # an nsfs file's inode is the namespace's
            self._trace(f"RTM_NEWLINK veth {name} <-> {peer} in net:[{inode}], {name} up on link {master}",
                        link=name, peer=peer, peerNetns=inode, master=master)
        for mtype, body in replies:
            attrs = link_attrs(body) if mtype == RTM_NEWLINK else {}
            if attrs.get(IFLA_IFNAME) == name.encode() + b"\0" and len(attrs.get(IFLA_LINK, b"")) == 4:
                return int(struct.unpack("=I", attrs[IFLA_LINK])[0])
        return None

    def set_up(self, index: int) -> None:
        self.request(*up_msg(index))
        self.trace_up(index)

    def trace_up(self, index: int) -> None:
        self._trace(f"RTM_NEWLINK link {index} up", index=index)

    def delete_link(self, name: str) -> bool:
        """Delete the link `name` (a veth takes its peer along); False if there was none."""
        try:
            self.request(RTM_DELLINK, 0, ifinfo() + name_attr(name))
        except OSError as e:
            if e.errno == 19:  # ENODEV
                return False
            raise
        self._trace(f"RTM_DELLINK {name}", link=name)
        return True

    # --- addresses and routes ------------------------------------------------------------------

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        self.request(*address_msg(index, address, prefixlen))
        self.trace_address(index, address, prefixlen)

    def trace_address(self, index: int, address: str, prefixlen: int) -> None:
        self._trace(f"RTM_NEWADDR {address}/{prefixlen} on link {index}", address=f"{address}/{prefixlen}",
                    index=index)

    def add_default_route(self, gateway: str) -> None:
        self.request(*default_route_msg(gateway))
        self.trace_route(gateway)

    def trace_route(self, gateway: str) -> None:
        self._trace(f"RTM_NEWROUTE default via {gateway}", gateway=gateway)


# --- messages, for Rtnl.request and Rtnl.batch ----------------------------------------------------

def up_msg(index: int) -> Message:
    return RTM_NEWLINK, 0, ifinfo(index, IFF_UP, IFF_UP)


def address_msg(index: int, address: str, prefixlen: int) -> Message:
    family, raw = _family(address)
    attrs = attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
    # IFA_F_NODAD for IPv6: the address is ours alone on a fresh link; DAD would delay it ~1 s
    flags = 0x02 if family == _socket.AF_INET6 else 0
    return (RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
            _IFADDR.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index) + attrs)


def default_route_msg(gateway: str) -> Message:
    family, raw = _family(gateway)
    msg = _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, msg + attr(RTA_GATEWAY, raw)


def link_attrs(body: bytes) -> dict[int, bytes]:
    """The top-level attributes of an RTM_NEWLINK message's body (ifinfomsg, then rtattrs)."""
    found = {}
    offset = _IFINFO.size
    while offset + _ATTR.size <= len(body):
        length, kind = _ATTR.unpack_from(body, offset)
        if length < _ATTR.size:
            break
        found[kind & ~NLA_F_NESTED] = body[offset + _ATTR.size:offset + length]
        offset += (length + 3) & ~3
    return found


def _messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, mtype, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        yield mtype, seq, data[offset + _HEADER.size:offset + length]
        offset += (length + 3) & ~3
