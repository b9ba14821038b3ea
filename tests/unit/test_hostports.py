"""hostPort logic without a kernel: the nft text of the table, conflicts and their messages, owner
comments, the elements' netlink encoding (nfnl.py; checked against libnftables and the kernel in
tests/integration/test_net_hostports.py), and check_free against a socket this test holds."""

from __future__ import annotations

import socket
import struct

import pytest

from sandbox.network.hostports import (
    COMMENT_MAX,
    HostPortError,
    HostPorts,
    PortMapping,
    chain_names,
    check_free,
    check_mappings,
    comment_for,
    masquerade_commands,
    normalized,
    overlaps,
    structure,
)
from sandbox.network.nfnl import (
    NFT_MSG_DELSETELEM,
    NFT_MSG_NEWSETELEM,
    Nfnl,
    _decode_element,
    attrs_of,
    decode_comment,
    decode_key,
    decode_value,
    element,
    encode_comment,
    encode_key,
    encode_value,
)

WEB = "default/web (uid 0b3f6c2e-0000-4000-8000-000000000001)"
DB = "default/db (uid 0b3f6c2e-0000-4000-8000-000000000002)"


def pm(protocol: str = "TCP", host_ip: str = "", host_port: int = 8080, container_port: int = 80,
       pod_ip: str = "10.89.0.2") -> PortMapping:
    return PortMapping(protocol, host_ip, host_port, container_port, pod_ip)


def test_structure_has_both_maps_the_hooks_and_the_localhost_and_hairpin_masquerade() -> None:
    text = structure("sandbox_sandbox0", "sandbox0", "10.89.0.0/16")
    assert "add table ip sandbox_sandbox0\n" in text
    assert "type inet_proto . inet_service : ipv4_addr . inet_service" in text
    assert "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service" in text
    assert "dnat ip to ip daddr . meta l4proto . th dport map @hostip_hostports" in text
    assert "dnat ip to meta l4proto . th dport map @any_hostports" in text
    assert "prerouting fib daddr type local jump hostports" in text
    assert "output fib daddr type local jump hostports" in text
    assert 'oifname "sandbox0" ip saddr 127.0.0.0/8 masquerade' in text
    assert 'oifname "sandbox0" ip saddr 10.89.0.0/16 ip daddr 10.89.0.0/16 ct status dnat masquerade' in text
    # The specific-address map is consulted before the any-address one.
    assert text.index("@hostip_hostports") < text.index("@any_hostports")


def test_structure_creates_without_flushing_anything() -> None:
    # Built only for a missing table: a flush would replace rules, which costs an RCU grace period.
    text = structure("t", "b", "10.0.0.0/24")
    assert "flush" not in text and "delete" not in text
    assert [line.split()[0:2] for line in text.splitlines()][0] == ["add", "table"]


def test_masquerade_leaves_the_bridge_alone() -> None:
    text = masquerade_commands("t", "sandbox0", "10.89.0.0/16")
    assert text.startswith("add chain ip t outbound { type nat hook postrouting priority srcnat;")
    assert 'add rule ip t outbound ip saddr 10.89.0.0/16 oifname != "sandbox0" masquerade\n' in text


def test_element_keys_values_and_comments_have_the_kernels_layout() -> None:
    # Concatenations: each field in a 4-byte register slot; ports in network order.
    assert encode_key(("", "TCP", 8080)) == bytes((6, 0, 0, 0)) + struct.pack("!H", 8080) + b"\0\0"
    assert encode_key(("127.0.0.1", "UDP", 53)) == bytes((127, 0, 0, 1, 17, 0, 0, 0, 0, 53, 0, 0))
    assert encode_value(("10.89.0.2", 80)) == bytes((10, 89, 0, 2, 0, 80, 0, 0))
    # libnftnl's user data TLV: type 0 (comment), length with the NUL, the text, the NUL.
    assert encode_comment("ab") == b"\x00\x03ab\x00"
    for key in (("", "TCP", 1), ("", "UDP", 65535), ("10.0.0.1", "TCP", 443)):
        assert decode_key(encode_key(key)) == key
    assert decode_value(encode_value(("10.89.255.254", 65535))) == ("10.89.255.254", 65535)
    assert decode_comment(encode_comment(WEB)) == WEB
    assert decode_comment(b"\x01\x04\x00\x00\x00\x01" + encode_comment("x")) == "x"  # other TLVs skipped
    assert decode_comment(b"") == ""


def test_an_element_decodes_to_what_was_encoded() -> None:
    (kind, body), = attrs_of(element(("127.0.0.1", "UDP", 53), ("10.89.0.3", 5353), DB))
    assert kind == 1  # NFTA_LIST_ELEM
    assert _decode_element(body) == (("127.0.0.1", "UDP", 53), ("10.89.0.3", 5353), DB)
    (_kind, body), = attrs_of(element(("", "TCP", 8080)))  # a deletion's: the key alone
    assert _decode_element(body)[0] == ("", "TCP", 8080)


def test_additions_refuse_an_existing_key_and_deletions_name_only_keys() -> None:
    nfnl = Nfnl.__new__(Nfnl)  # the messages only: no socket
    kind, flags, body = nfnl.add_elements("t", "any_hostports", [(("", "TCP", 8080), ("10.89.0.2", 80), WEB)])
    assert kind == NFT_MSG_NEWSETELEM and flags & 0x200  # NLM_F_EXCL: a taken key fails the batch
    assert b"t\0" in body and b"any_hostports\0" in body and WEB.encode() + b"\0" in body
    kind, flags, body = nfnl.delete_elements("t", "hostip_hostports", [("127.0.0.1", "UDP", 53)])
    assert kind == NFT_MSG_DELSETELEM and not flags
    assert encode_key(("127.0.0.1", "UDP", 53)) in body and encode_value(("10.89.0.3", 5353)) not in body


def test_comment_is_safe_for_nft_and_stays_unique_when_shortened() -> None:
    assert comment_for(WEB) == WEB
    assert comment_for('a"b\\c\nd') == "a?b?c?d"
    long_a = "ns/" + "n" * 253 + " (uid 0b3f6c2e-0000-4000-8000-00000000000a)"
    long_b = long_a.replace("0a)", "0b)")
    assert len(comment_for(long_a)) == COMMENT_MAX
    assert comment_for(long_a) != comment_for(long_b)
    assert comment_for(long_a).endswith("0a)")


def test_zero_address_means_every_address() -> None:
    assert normalized(pm(host_ip="0.0.0.0")).host_ip == ""
    assert normalized(pm(host_ip="127.0.0.1")).host_ip == "127.0.0.1"


@pytest.mark.parametrize(("a", "b", "expected"), [
    (pm(), pm(), True),
    (pm(host_ip=""), pm(host_ip="127.0.0.1"), True),
    (pm(host_ip="127.0.0.1"), pm(host_ip=""), True),
    (pm(host_ip="127.0.0.1"), pm(host_ip="10.0.0.1"), False),
    (pm("TCP"), pm("UDP"), False),
    (pm(host_port=8080), pm(host_port=8081), False),
])
def test_overlaps(a: PortMapping, b: PortMapping, expected: bool) -> None:
    assert overlaps(a, b) is expected


def test_conflict_names_the_other_pod_and_the_port() -> None:
    held = {WEB: [pm()]}
    with pytest.raises(HostPortError) as e:
        check_mappings(DB, [pm(host_ip="127.0.0.1", pod_ip="10.89.0.3")], held)
    assert str(e.value) == f"hostPort 8080/TCP on 127.0.0.1 is already used by pod {WEB}"
    with pytest.raises(HostPortError, match=r"^hostPort 8080/TCP on 0\.0\.0\.0 is already used by pod default/db"):
        check_mappings(WEB, [pm()], {DB: [pm(host_ip="10.0.0.1")]})


def test_no_conflict_with_own_elements_other_protocols_or_other_addresses() -> None:
    held = {WEB: [pm()], DB: [pm("UDP", host_port=8080), pm(host_ip="10.0.0.1", host_port=9090)]}
    check_mappings(WEB, [pm()], held)
    check_mappings("other", [pm(host_ip="10.0.0.2", host_port=9090)], held)


def test_a_port_given_twice_in_one_pod_is_refused() -> None:
    with pytest.raises(HostPortError, match=r"hostPort 8080/TCP on 127\.0\.0\.1 is given twice in this pod "
                                            r"\(containerPorts 80 and 81\)"):
        check_mappings(WEB, [pm(), pm(host_ip="127.0.0.1", container_port=81)], {})


@pytest.mark.parametrize(("mapping", "message"), [
    (pm("SCTP"), "only TCP and UDP"),
    (pm(host_port=0), "ports must be between 1 and 65535"),
    (pm(container_port=70000), "ports must be between 1 and 65535"),
    (pm(host_ip="::1"), "hostIP '::1' is not an IPv4 address"),
    (pm(pod_ip=""), "pod IP '' is not an IPv4 address"),
    (pm(pod_ip="fd00::2"), "pod IP 'fd00::2' is not an IPv4 address"),
])
def test_bad_values_are_refused_with_the_port_named(mapping: PortMapping, message: str) -> None:
    with pytest.raises(HostPortError, match=message) as e:
        check_mappings(WEB, [mapping], {})
    assert str(e.value).startswith(f"hostPort {mapping.host_port}/{mapping.protocol} on ")


def test_chain_names_reads_the_libnftables_json_listing() -> None:
    assert chain_names({"nftables": [{"chain": {"name": "outbound"}}, {"table": {"name": "t"}}]}) == {"outbound"}
    assert chain_names({"nftables": []}) == set()


@pytest.mark.parametrize(("protocol", "kind"), [("TCP", socket.SOCK_STREAM), ("UDP", socket.SOCK_DGRAM)])
def test_check_free_refuses_a_port_a_host_process_holds(protocol: str, kind: int) -> None:
    with socket.socket(socket.AF_INET, kind) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        for host_ip in ("127.0.0.1", "", "0.0.0.0"):
            with pytest.raises(HostPortError) as e:
                check_free([pm(protocol, host_ip, port)])
            assert str(e.value) == (f"hostPort {port}/{protocol} on {host_ip or '0.0.0.0'} is already in use "
                                    "on the host (address already in use)")
    check_free([pm(protocol, "127.0.0.1", port)])  # closed: free again


def test_check_free_names_a_host_ip_the_host_does_not_have() -> None:
    with pytest.raises(HostPortError, match=r"hostPort 8080/TCP on 192\.0\.2\.1: 192\.0\.2\.1 is not an address "
                                            "of this host"):
        check_free([pm(host_ip="192.0.2.1")])


@pytest.mark.parametrize(("table", "bridge", "subnet"), [
    ('t"; flush ruleset', "sandbox0", "10.89.0.0/16"),
    ("sandbox_sandbox0", 'br" accept', "10.89.0.0/16"),
    ("sandbox_sandbox0", "a-very-long-bridge-name", "10.89.0.0/16"),
    ("sandbox_sandbox0", "sandbox0", "10.89.0.0/16; flush ruleset"),
    ("sandbox_sandbox0", "sandbox0", "fd00::/64"),
])
def test_names_spliced_into_nft_commands_are_checked(table: str, bridge: str, subnet: str) -> None:
    with pytest.raises(ValueError):
        HostPorts(table, bridge, subnet)
    HostPorts("sandbox_sandbox0", "sandbox0", "10.89.0.0/16")
