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

