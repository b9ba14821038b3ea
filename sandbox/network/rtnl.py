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
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR = 16, 17, 18, 20
IFLA_ADDRESS, IFLA_IFNAME, IFLA_LINK, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO = 1, 3, 5, 4, 10, 18
IFLA_AF_SPEC, IFLA_NET_NS_FD, IFLA_NUM_TX_QUEUES, IFLA_NUM_RX_QUEUES = 26, 28, 31, 32
IFLA_LINK_NETNSID, IFLA_TARGET_NETNSID = 37, 46
IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE = 8, 1
IFLA_BRPORT_MODE = 4  # <linux/if_link.h>: the bridge port's hairpin mode
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_DATA, VETH_INFO_PEER = 1, 2, 5, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
NLA_F_NESTED = 0x8000
IFF_UP = 0x1
RT_SCOPE_UNIVERSE = 0

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
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
            for mtype, mseq, body in messages(data):
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
        return [code for code, _replies in self.exchange(*requests)]

    def exchange(self, *requests: Message) -> list[tuple[int, list[tuple[int, bytes]]]]:
        """`batch`, with each request's replies before its ACK (an NLM_F_ECHO's copy)."""
        first = self.seq + 1
        packets = []
        for kind, flags, payload in requests:
            self.seq += 1
            packets.append(_HEADER.pack(_HEADER.size + len(payload), kind, NLM_F_REQUEST | NLM_F_ACK | flags,
                                        self.seq, 0) + payload)
        self.sock.send(b"".join(packets))
        codes: dict[int, int] = {}
        replies: dict[int, list[tuple[int, bytes]]] = {}
        while len(codes) < len(requests):
            for mtype, mseq, body in messages(self.sock.recv(65536)):
                if not first <= mseq <= self.seq:
                    continue
                if mtype == NLMSG_ERROR:
                    codes[mseq] = -struct.unpack_from("=i", body)[0]
                elif mtype != NLMSG_DONE:
                    replies.setdefault(mseq, []).append((mtype, body))
        return [(codes[seq], replies.get(seq, [])) for seq in range(first, self.seq + 1)]

    def run(self, *requests: Message) -> None:
        """`batch`, raising OSError for the first request the kernel refused."""
        for code in self.batch(*requests):
            if code:
                raise OSError(code, os.strerror(code))

    # --- links ---------------------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        """The index of the link called `name` in this socket's namespace; None if there is none."""
        body = self._get_link(name)
        return int(_IFINFO.unpack_from(body)[2]) if body is not None else None

    def _get_link(self, name: str) -> bytes | None:
        """RTM_GETLINK by name: the link's message body, None without such a link."""
        try:
            replies = self.request(RTM_GETLINK, 0, ifinfo() + name_attr(name))
        except OSError as e:
            if e.errno == 19:  # ENODEV
                return None
            raise
        return next((body for mtype, body in replies if mtype == RTM_NEWLINK), None)

    def add_bridge(self, name: str, up: bool = True) -> None:
        """A new bridge (EEXIST if a link of that name exists)."""
        info = nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"bridge"))
        flags = ifinfo(flags=IFF_UP, change=IFF_UP) if up else ifinfo()
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, flags + name_attr(name) + info)
        self._trace(f"RTM_NEWLINK bridge {name}", link=name)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, master: int, then: tuple[Message, ...] = ()
                 ) -> int | None:
        """A veth pair: `name` here, enslaved to the bridge `master`, down; `peer` created
        directly in the namespace `peer_netns_fd` names (one move fewer than creating it here),
        down: its side brings it up (veth_open refuses, ENOTCONN, a peer opened at creation,
        before the pair is linked). `then`: requests for `name` sent in the same round trip
        (they can name it only by IFLA_IFNAME: its index is not known yet), e.g. its settings
        and its up. Each end gets one queue pair instead of one per possible CPU: fewer sysfs
        queue objects to make (host side's set-up 1.14 -> 0.90 ms, medians of 60 pairs made
        into a scratch namespace, 2 CPUs; a veth without XDP queues nothing: its xmit hands
        the packet to the peer's per-CPU backlog whatever the count). Returns the peer's index in its namespace, read from the
        kernel's echo of the new link (NLM_F_ECHO, honoured by RTM_NEWLINK since Linux 6.2: its
        IFLA_LINK), or None without one: the pod's side then need not ask for it (one round trip
        in the pod's namespace fewer, ~0.15 ms measured). OSError for the first refusal."""
        queues = attr(IFLA_NUM_TX_QUEUES, struct.pack("=I", 1)) + attr(IFLA_NUM_RX_QUEUES, struct.pack("=I", 1))
        peer_msg = ifinfo() + name_attr(peer) + attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd)) + queues
        info = nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"veth"),
                      nested(IFLA_INFO_DATA, nested(VETH_INFO_PEER, peer_msg)))
        create = (RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
                  ifinfo() + name_attr(name) + queues + attr(IFLA_MASTER, struct.pack("=I", master)) + info)
        answers = self.exchange(create, *then)
        for code, _replies in answers:
            if code:
                raise OSError(code, os.strerror(code))
        if "sandbox.trace" in sys.modules and sys.modules["sandbox.trace"].active is not None:
            inode = os.fstat(peer_netns_fd).st_ino  # an nsfs file's inode is the namespace's
            settings = f", then {len(then)} setlink(s) of {name}" if then else ""
            self._trace(f"RTM_NEWLINK veth {name} <-> {peer} in net:[{inode}], {name} on link {master}{settings}",
                        link=name, peer=peer, peerNetns=inode, master=master, settings=len(then))
        for mtype, body in answers[0][1]:
            attrs = link_attrs(body) if mtype == RTM_NEWLINK else {}
            if attrs.get(IFLA_IFNAME) == name.encode() + b"\0" and len(attrs.get(IFLA_LINK, b"")) == 4:
                return int(struct.unpack("=I", attrs[IFLA_LINK])[0])
        return None

    def peer_netns_alive(self, name: str) -> bool | None:
        """Whether the namespace of the veth `name`'s peer still lives (None: no link `name`).
        A dying namespace (its last process gone, the kernel's cleanup_net not yet through its
        RCU waits) still lists the pair here for 10-20 ms, but lends no reference any more: a
        request that targets it by its id (IFLA_TARGET_NETNSID) is refused with EINVAL, as
        get_net_ns_by_id finds the namespace without a reference to take. One alive (something
        still holds it) answers with the peer."""
        body = self._get_link(name)
        if body is None:
            return None
        attrs = link_attrs(body)
        nsid = attrs.get(IFLA_LINK_NETNSID, b"")
        if len(nsid) != 4 or len(attrs.get(IFLA_LINK, b"")) != 4:
            return True  # its peer in this namespace (or not a veth): not ours to judge
        (netnsid,) = struct.unpack("=i", nsid)
        if netnsid < 0:  # NETNSA_NSID_NOT_ASSIGNED: no id handed out for a namespace on its way out
            return False
        (peer,) = struct.unpack("=I", attrs[IFLA_LINK])
        try:
            self.request(RTM_GETLINK, 0, ifinfo(peer) + attr(IFLA_TARGET_NETNSID, struct.pack("=i", netnsid)))
        except OSError as e:
            if e.errno in (22, 19):  # EINVAL: the namespace is dying; ENODEV: its peer is gone
                return False
            raise
        return True

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

    # --- addresses -----------------------------------------------------------------------------

    def trace_address(self, index: int, address: str, prefixlen: int) -> None:
        self._trace(f"RTM_NEWADDR {address}/{prefixlen} on link {index}", address=f"{address}/{prefixlen}",
                    index=index)


# --- messages, for Rtnl.request and Rtnl.batch ----------------------------------------------------

def up_msg(index: int) -> Message:
    return RTM_NEWLINK, 0, ifinfo(index, IFF_UP, IFF_UP)


def no_ipv6_ll_msg(index: int = 0, name: str = "") -> Message:
    """No IPv6 link-local address on the link (`index`, or by `name`) when it comes up
    (addrgenmode none): no address, so no DAD, no router solicitation, no MLD report for its
    solicited-node group, and nothing of it to undo at the end (with one queue pair, the host
    side's set-up 0.90 -> 0.76 ms, medians of 60 in a scratch namespace). Must precede the link's up
    (setlink applies flags before IFLA_AF_SPEC, so not in the same message), and cannot come
    with the creation (inet6 validates IFLA_AF_SPEC against a registered device: EAFNOSUPPORT)."""
    spec = nested(IFLA_AF_SPEC, nested(_socket.AF_INET6, attr(IFLA_INET6_ADDR_GEN_MODE,
                                                               bytes((IN6_ADDR_GEN_MODE_NONE,)))))
    return RTM_NEWLINK, 0, ifinfo(index) + (name_attr(name) if name else b"") + spec


def up_by_name_msg(name: str) -> Message:
    return RTM_NEWLINK, 0, ifinfo(0, IFF_UP, IFF_UP) + name_attr(name)


def hairpin_msg(name: str) -> Message:
    """Hairpin mode on the bridge port `name` (its master's slave data, as `ip link set NAME type
    bridge_slave hairpin on` sends it): a message in the creation's round trip instead of a
    sysfs write."""
    info = nested(IFLA_LINKINFO, nested(IFLA_INFO_SLAVE_DATA, attr(IFLA_BRPORT_MODE, b"\x01")))
    return RTM_NEWLINK, 0, ifinfo() + name_attr(name) + info


def address_msg(index: int, address: str, prefixlen: int) -> Message:
    family, raw = _family(address)
    attrs = attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
    # IFA_F_NODAD for IPv6: the address is ours alone on a fresh link; DAD would delay it ~1 s
    flags = 0x02 if family == _socket.AF_INET6 else 0
    return (RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
            _IFADDR.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index) + attrs)


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


def messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, sequence number, payload) of each netlink message in `data` (one recv's worth)."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, mtype, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        yield mtype, seq, data[offset + _HEADER.size:offset + length]
        offset += (length + 3) & ~3
