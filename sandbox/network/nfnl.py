"""The hostPort maps' elements over a NETLINK_NETFILTER socket of our own: list (one dump per map),
add and delete (one batch, applied whole or not at all), the messages libnftables sends for
`add element` / `delete element` / `list map`, without libnftables.

Why not libnftables for these: a pod with a hostPort listed the table as JSON, then ran the batch;
that cost the runtime `import ctypes` and the library's loading (~4 ms), `import json` (~2.5 ms;
re, enum), and each command's cache refresh (a generation, table, chain, set, flowtable and
object dump per command, ~1 ms a listing); in-process ~12 ms for a pod's reserve and ~2 ms for its
release, where these dumps and one batch take ~0.3 ms. The table's structure (chains, rules with
`fib`, `dnat` and `masquerade` expressions) is still written in nft syntax through libnftables
(nft.py): it is made once per bridge, and its rules are easier to read and check as text.

The layouts are the kernel's (<linux/netfilter/nf_tables.h>, <linux/netfilter/nfnetlink.h>): a
concatenation's fields each take a multiple of 4 bytes (NFT_REG32_SIZE), an inet_proto is one
byte, an inet_service two in network order, an ipv4_addr four; an element's comment is
libnftnl's user data, a TLV {type NFTNL_UDATA_SET_ELEM_COMMENT (0), length, the text and a NUL}.
The integration tests check both directions against libnftables (elements added here listed by
it, and elements it added read here).
"""

from __future__ import annotations

import _socket  # socket.py's enum conversions cost ~1.3 ms at import; raw netlink needs none
import os
import struct

# The framing (nlmsghdr, attributes) is rtnetlink's: one implementation for both sockets.
from sandbox.network.rtnl import attr, nested
from sandbox.network.rtnl import messages as netlink_messages

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

# <linux/netlink.h>, <linux/netfilter/nfnetlink.h>, <linux/netfilter/nf_tables.h>
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLA_F_NESTED = 0x8000
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM, NFT_MSG_DELSETELEM = 12, 13, 14
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_USERDATA = 1, 2, 6
NFTA_DATA_VALUE = 1
NFPROTO_IPV4 = 2
UDATA_ELEM_COMMENT = 0  # libnftnl's NFTNL_UDATA_SET_ELEM_COMMENT
IPPROTO = {"TCP": 6, "UDP": 17}
PROTO_NAME = {6: "TCP", 17: "UDP"}

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_NFGEN = struct.Struct("=BBH")  # nfgenmsg: family, version, res_id (network order)
_ATTR = struct.Struct("=HH")
ENOENT = 2
NETLINK_NETFILTER = 12  # <linux/netlink.h>; _socket does not name it

Key = tuple[str, str, int]  # (host address or "", protocol "TCP"/"UDP", host port)
Value = tuple[str, int]  # (pod address, container port)


def attrs_of(data: bytes, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            return
        yield kind & ~NLA_F_NESTED, data[offset + _ATTR.size:offset + length]
        offset += (length + 3) & ~3


def encode_key(key: Key) -> bytes:
    """A map key as the kernel holds it: [host address .] protocol . port, 4-byte fields."""
    host_ip, protocol, port = key
    proto_port = bytes((IPPROTO[protocol], 0, 0, 0)) + struct.pack("!H2x", port)
    return (_socket.inet_aton(host_ip) if host_ip else b"") + proto_port


def decode_key(raw: bytes) -> Key:
    host_ip = _socket.inet_ntoa(raw[:4]) if len(raw) == 12 else ""
    protocol, (port,) = raw[-8], struct.unpack_from("!H", raw, len(raw) - 4)
    return host_ip, PROTO_NAME.get(protocol, str(protocol)), port


def encode_value(value: Value) -> bytes:
    return _socket.inet_aton(value[0]) + struct.pack("!H2x", value[1])


def decode_value(raw: bytes) -> Value:
    return _socket.inet_ntoa(raw[:4]), struct.unpack_from("!H", raw, 4)[0]


def encode_comment(text: str) -> bytes:
    data = text.encode() + b"\0"
    return bytes((UDATA_ELEM_COMMENT, len(data))) + data


def decode_comment(udata: bytes) -> str:
    offset = 0
    while offset + 2 <= len(udata):
        kind, length = udata[offset], udata[offset + 1]
        if kind == UDATA_ELEM_COMMENT:
            return udata[offset + 2:offset + 2 + length].split(b"\0", 1)[0].decode(errors="replace")
        offset += 2 + length
    return ""


def element(key: Key, value: Value | None = None, comment: str | None = None) -> bytes:
    parts = [nested(NFTA_SET_ELEM_KEY, attr(NFTA_DATA_VALUE, encode_key(key)))]
    if value is not None:
        parts.append(nested(NFTA_SET_ELEM_DATA, attr(NFTA_DATA_VALUE, encode_value(value))))
    if comment is not None:
        parts.append(attr(NFTA_SET_ELEM_USERDATA, encode_comment(comment)))
    return nested(NFTA_LIST_ELEM, *parts)


def _list_header(table: str, set_name: str) -> bytes:
    return (_NFGEN.pack(NFPROTO_IPV4, 0, 0) + attr(NFTA_SET_ELEM_LIST_TABLE, table.encode() + b"\0")
            + attr(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0"))


class Nfnl:
    """One NETLINK_NETFILTER socket, requests one at a time. Left open by its user (hostports'
    shared context): closing a socket that sent a batch which deleted elements waits for the
    kernel's deferred free of them (an RCU grace period, 7-15 ms here)."""

    def __init__(self) -> None:
        self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                                   NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, kind: int, flags: int, payload: bytes) -> bytes:
        self.seq += 1
        return _HEADER.pack(_HEADER.size + len(payload), kind, NLM_F_REQUEST | flags, self.seq, 0) + payload

    def elements(self, table: str, set_name: str) -> list[tuple[Key, Value, str]]:
        """Every element of the map `set_name`: (key, value, comment). OSError (ENOENT) without
        the table or the map."""
        self.sock.send(self._send((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM, NLM_F_DUMP,
                                  _list_header(table, set_name)))
        seq = self.seq
        found: list[tuple[Key, Value, str]] = []
        while True:
            for mtype, mseq, body in netlink_messages(self.sock.recv(65536)):
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", body)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return found
                if mtype == NLMSG_DONE:
                    return found
                for kind, value in attrs_of(body, _NFGEN.size):
                    if kind == NFTA_SET_ELEM_LIST_ELEMENTS:
                        found.extend(_decode_element(item) for _kind, item in attrs_of(value))

    def batch(self, messages: Iterable[tuple[int, int, bytes]]) -> None:
        """One transaction (NFNL_MSG_BATCH_BEGIN .. END): each (NFT_MSG_ type, flags, payload)
        with an ACK; the kernel applies all or none. OSError with the first refusal's errno."""
        begin = _NFGEN.pack(0, 0, _socket.htons(NFNL_SUBSYS_NFTABLES))
        packets = [self._send(NFNL_MSG_BATCH_BEGIN, 0, begin)]
        first = self.seq  # the batch header's: the kernel refuses a batch as a whole (ENOMEM) there
        for kind, flags, payload in messages:
            packets.append(self._send((NFNL_SUBSYS_NFTABLES << 8) | kind, NLM_F_ACK | flags, payload))
        last = self.seq
        packets.append(self._send(NFNL_MSG_BATCH_END, 0, begin))
        self.sock.send(b"".join(packets))
        acked: set[int] = set()
        while len(acked) < last - first:  # every message but the header answers (NLM_F_ACK)
            for mtype, mseq, body in netlink_messages(self.sock.recv(65536)):
                if mtype == NLMSG_ERROR and first <= mseq <= last:
                    (code,) = struct.unpack_from("=i", body)
                    if code:  # the kernel applied nothing; later answers are read by no one
                        raise OSError(-code, os.strerror(-code))
                    acked.add(mseq)

    def add_elements(self, table: str, set_name: str, items: Iterable[tuple[Key, Value, str]]) -> tuple[int, int, bytes]:
        """The message adding `items` (none may exist already: NLM_F_EXCL), for `batch`."""
        body = _list_header(table, set_name) + nested(NFTA_SET_ELEM_LIST_ELEMENTS,
                                                      *(element(k, v, c) for k, v, c in items))
        return NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL, body

    def delete_elements(self, table: str, set_name: str, keys: Iterable[Key]) -> tuple[int, int, bytes]:
        body = _list_header(table, set_name) + nested(NFTA_SET_ELEM_LIST_ELEMENTS, *(element(k) for k in keys))
        return NFT_MSG_DELSETELEM, 0, body


def _decode_element(data: bytes) -> tuple[Key, Value, str]:
    """(key, value, comment) of one NFTA_LIST_ELEM; a key alone (a deletion's) has the value
    ("0.0.0.0", 0): a map's elements always carry one."""
    key, value, comment = b"", b"", ""
    for kind, item in attrs_of(data):
        if kind in (NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA):
            raw = next((v for k, v in attrs_of(item) if k == NFTA_DATA_VALUE), b"")
            if kind == NFTA_SET_ELEM_KEY:
                key = raw
            else:
                value = raw
        elif kind == NFTA_SET_ELEM_USERDATA:
            comment = decode_comment(item)
    return decode_key(key), decode_value(value) if value else ("0.0.0.0", 0), comment
