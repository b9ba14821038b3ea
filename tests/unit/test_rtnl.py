"""rtnl.py's message building and parsing, without a kernel: the layouts of <linux/rtnetlink.h>."""

from __future__ import annotations

import struct

from sandbox.network import rtnl


def test_link_attrs_reads_the_top_level_attributes_of_a_link_message() -> None:
    body = (rtnl.ifinfo(7) + rtnl.name_attr("sbv0123") + rtnl.attr(rtnl.IFLA_LINK, struct.pack("=I", 2))
            + rtnl.nested(rtnl.IFLA_LINKINFO, rtnl.attr(rtnl.IFLA_INFO_KIND, b"veth")))
    attrs = rtnl.link_attrs(body)
    assert attrs[rtnl.IFLA_IFNAME] == b"sbv0123\0"
    assert struct.unpack("=I", attrs[rtnl.IFLA_LINK]) == (2,)
    assert rtnl.IFLA_LINKINFO in attrs  # the nested flag is masked off


def test_link_attrs_stops_at_a_truncated_attribute() -> None:
    body = rtnl.ifinfo() + rtnl.name_attr("a") + b"\x02\x00"
    assert rtnl.link_attrs(body) == {rtnl.IFLA_IFNAME: b"a\0"}



def _attrs(data: bytes) -> dict[int, bytes]:
    found = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        found[kind & ~rtnl.NLA_F_NESTED] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def test_no_ipv6_link_local_is_addrgenmode_none_in_the_inet6_af_spec() -> None:
    kind, flags, payload = rtnl.no_ipv6_ll_msg(7)
    assert (kind, flags) == (rtnl.RTM_NEWLINK, 0)
    assert struct.unpack_from("=BxHiII", payload) == (0, 0, 7, 0, 0)  # no flag change: not up here
    spec = rtnl.link_attrs(payload)[rtnl.IFLA_AF_SPEC]
    inet6 = _attrs(spec)[10]  # AF_INET6
    assert _attrs(inet6) == {rtnl.IFLA_INET6_ADDR_GEN_MODE: bytes([rtnl.IN6_ADDR_GEN_MODE_NONE])}
    by_name = rtnl.link_attrs(rtnl.no_ipv6_ll_msg(name="sbv0123")[2])
    assert by_name[rtnl.IFLA_IFNAME] == b"sbv0123\0"


def test_hairpin_is_the_bridge_ports_mode_in_its_slave_data_by_name() -> None:
    kind, _flags, payload = rtnl.hairpin_msg("sbv0123")
    attrs = rtnl.link_attrs(payload)
    assert kind == rtnl.RTM_NEWLINK
    assert attrs[rtnl.IFLA_IFNAME] == b"sbv0123\0"
    slave = _attrs(attrs[rtnl.IFLA_LINKINFO])[rtnl.IFLA_INFO_SLAVE_DATA]
    assert _attrs(slave) == {rtnl.IFLA_BRPORT_MODE: b"\x01"}


def test_up_by_name_sets_only_the_up_flag() -> None:
    _kind, _flags, payload = rtnl.up_by_name_msg("sbv0123")
    assert struct.unpack_from("=BxHiII", payload) == (0, 0, 0, rtnl.IFF_UP, rtnl.IFF_UP)
    assert rtnl.link_attrs(payload) == {rtnl.IFLA_IFNAME: b"sbv0123\0"}
