"""Conntrack entries of UDP hostPorts, deleted when a pod takes the port, as the portmap plugin
does after it adds its rules: a UDP "connection" is only a conntrack entry, and one made while the
port went to an earlier pod keeps its DNAT to that pod's address until it times out (30 s without
a reply, 120 s once answered), so a client that keeps its source port (a DNS resolver, a game
client) would keep sending into the void. TCP needs nothing: a new connection gets a new entry.

Over ctnetlink (NFNL_SUBSYS_CTNETLINK on a NETLINK_NETFILTER socket of our own; the kernel loads
nf_conntrack_netlink on first use): one IPv4 dump, then one IPCTNL_MSG_CT_DELETE per entry whose
original direction is UDP to one of the ports, naming it by that original tuple. Layouts are
<linux/netfilter/nfnetlink_conntrack.h>'s.
"""

from __future__ import annotations

import _socket
import os
import struct

from sandbox.network.nfnl import (
    _HEADER,
    _NFGEN,
    NETLINK_NETFILTER,
    NFPROTO_IPV4,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    attrs_of,
)
from sandbox.network.rtnl import messages as netlink_messages

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_DELETE = 1, 2
CTA_TUPLE_ORIG, CTA_ZONE = 1, 18
CTA_TUPLE_PROTO = 2
CTA_PROTO_NUM, CTA_PROTO_DST_PORT = 1, 3
IPPROTO_UDP = 17
_ERRNO_GONE = (2, 3)  # ENOENT, ESRCH: the entry ended meanwhile


def udp_entries_to(ports: Iterable[int], sock: _socket.socket) -> list[bytes]:
    """The CTA_TUPLE_ORIG (and CTA_ZONE) attributes, as the kernel sent them, of every IPv4
    entry whose original direction is UDP to one of `ports`."""
    wanted = set(ports)
    sock.send(_HEADER.pack(_HEADER.size + _NFGEN.size, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
                           NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + _NFGEN.pack(NFPROTO_IPV4, 0, 0))
    found: list[bytes] = []
    while True:
        for mtype, _seq, body in netlink_messages(sock.recv(1 << 16)):
            if mtype == NLMSG_DONE:
                return found
            if mtype == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", body)
                if code:
                    raise OSError(-code, os.strerror(-code))
                return found
            identity = b""
            port = proto = 0
            for kind, value in attrs_of(body, _NFGEN.size):
                if kind == CTA_TUPLE_ORIG:
                    identity += _attr(CTA_TUPLE_ORIG | 0x8000, value)
                    for sub, inner in attrs_of(value):
                        if sub == CTA_TUPLE_PROTO:
                            for field, raw in attrs_of(inner):
                                if field == CTA_PROTO_NUM:
                                    proto = raw[0]
                                elif field == CTA_PROTO_DST_PORT:
                                    (port,) = struct.unpack("!H", raw[:2])
                elif kind == CTA_ZONE:
                    identity += _attr(CTA_ZONE, value)
            if proto == IPPROTO_UDP and port in wanted:
                found.append(identity)


def _attr(kind: int, value: bytes) -> bytes:
    header = struct.pack("=HH", 4 + len(value), kind)
    return header + value + b"\0" * (-(4 + len(value)) % 4)


def delete_udp_entries(ports: Iterable[int]) -> int:
    """Delete the conntrack entries of UDP traffic to `ports` (host ports just given to a pod);
    returns how many went. OSError when ctnetlink cannot be used at all."""
    ports = list(ports)
    if not ports:
        return 0
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    try:
        sock.bind((0, 0))
        deleted = 0
        for seq, identity in enumerate(udp_entries_to(ports, sock), start=2):
            payload = _NFGEN.pack(NFPROTO_IPV4, 0, 0) + identity
            sock.send(_HEADER.pack(_HEADER.size + len(payload), (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
                                   NLM_F_REQUEST | NLM_F_ACK, seq, 0) + payload)
            code = _ack(sock, seq)
            if code == 0:
                deleted += 1
            elif code not in _ERRNO_GONE:
                raise OSError(code, os.strerror(code))
        return deleted
    finally:
        sock.close()


def _ack(sock: _socket.socket, seq: int) -> int:
    while True:
        for mtype, mseq, body in netlink_messages(sock.recv(1 << 16)):
            if mtype == NLMSG_ERROR and mseq == seq:
                (code,) = struct.unpack_from("=i", body)
                return int(-code)
