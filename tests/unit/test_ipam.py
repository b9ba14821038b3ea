"""Pod address leases (sandbox/network/ipam.py): host-local's order and cursor, one owner one
address, exhaustion, release, the directory's removal with its last lease, and 50 processes
allocating at once without a duplicate. Plain files: no root needed."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from sandbox.network.ipam import OWNER_PREFIX, Ipam, IpamError


def test_addresses_start_after_the_gateway_and_follow_the_cursor(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path / "net", "10.9.0.0/29")
    assert ipam.gateway == "10.9.0.1"
    with ipam.locked():
        assert [ipam.allocate(f"pod{i}") for i in range(3)] == ["10.9.0.2", "10.9.0.3", "10.9.0.4"]
        assert ipam.release("pod1") == ["10.9.0.3"]
        # the released address is not handed out again at once (a peer's ARP cache may hold it)
        assert ipam.allocate("pod3") == "10.9.0.5"
        assert ipam.allocate("pod4") == "10.9.0.6"
        assert ipam.allocate("pod5") == "10.9.0.3"  # wrapped: the broadcast address .7 is skipped
        with pytest.raises(IpamError, match="every address is leased"):
            ipam.allocate("pod6")
        assert ipam.leases()["10.9.0.2"] == "pod0"


def test_an_owner_gets_its_lease_back(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path / "net", "10.9.0.0/24")
    with ipam.locked():
        first = ipam.allocate("uid-1 default/web")
        assert ipam.allocate("uid-1 default/web") == first
        assert len(ipam.leases()) == 1


def test_the_last_release_removes_the_directory_lock_included(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path / "net", "10.9.0.0/24")
    with ipam.locked():
        ipam.allocate("a")
        ipam.allocate("b")
        ipam.release("a")
        assert not ipam.remove_if_empty()
        ipam.release("b")
        assert ipam.remove_if_empty()
    assert not (tmp_path / "net").exists()
    with ipam.locked():  # and the next pod starts it over
        assert ipam.allocate("c") == "10.9.0.2"


def test_a_different_subnet_is_refused_while_leases_exist(tmp_path: Path) -> None:
    with Ipam(tmp_path / "net", "10.9.0.0/24").locked():
        Ipam(tmp_path / "net", "10.9.0.0/24").allocate("a")
    other = Ipam(tmp_path / "net", "10.10.0.0/24")
    with other.locked(), pytest.raises(IpamError, match="already uses subnet 10.9.0.0/24"):
        other.allocate("b")


def test_a_subnet_without_room_for_a_pod_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IpamError, match="too small"):
        Ipam(tmp_path, "10.9.0.0/31")


def _allocate(directory: str, owner: str, out: multiprocessing.Queue[tuple[str, str]]) -> None:
    ipam = Ipam(Path(directory), "10.9.0.0/24")
    with ipam.locked():
        address = ipam.allocate(owner)
    out.put((owner, address))
    if owner.endswith("7"):  # some release at once: a removed lock file must not split the lock
        with ipam.locked():
            ipam.release(owner)
            ipam.remove_if_empty()


def test_fifty_processes_at_once_never_share_an_address(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[tuple[str, str]] = ctx.Queue()
    procs = [ctx.Process(target=_allocate, args=(str(tmp_path / "net"), f"pod{i}", out)) for i in range(50)]
    for proc in procs:
        proc.start()
    results = dict(out.get(timeout=30) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    held = {owner: address for owner, address in results.items() if not owner.endswith("7")}
    assert len(set(held.values())) == len(held)
    ipam = Ipam(tmp_path / "net", "10.9.0.0/24")
    with ipam.locked():
        assert {v: k for k, v in held.items()} == ipam.leases()
    assert all(os.path.basename(a).startswith("10.9.0.") for a in results.values())


def test_each_lease_has_an_index_entry_that_goes_with_it(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path / "net", "10.9.0.0/24")
    owner = "0f6c1e9a-5b1d-4a57-9c3e-2d8f1c0b7a11 default/web"
    with ipam.locked():
        address = ipam.allocate(owner)
        entries = [p for p in (tmp_path / "net").iterdir() if p.name.startswith(OWNER_PREFIX)]
        assert [os.readlink(p) for p in entries] == [address]
        assert "/" not in entries[0].name.removeprefix(OWNER_PREFIX).replace("%2F", "")
        assert ipam.allocate(owner) == address  # found through the entry
        assert ipam.release(owner) == [address]
        assert not [p for p in (tmp_path / "net").iterdir() if p.name.startswith(OWNER_PREFIX)]
        assert ipam.remove_if_empty()


def test_an_entry_is_only_a_hint_the_lease_file_names_the_owner(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path / "net", "10.9.0.0/24")
    with ipam.locked():
        mine = ipam.allocate("a")
        theirs = ipam.allocate("b")
        entry = tmp_path / "net" / f"{OWNER_PREFIX}a"
        os.unlink(entry)
        os.symlink(theirs, entry)  # stale or forged: it names b's lease
        assert ipam.release("a") == [mine]  # found by reading every lease instead
        assert ipam.leases() == {theirs: "b"}


def test_a_directory_an_older_runtime_made_is_searched_by_reading_the_leases(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    directory.mkdir()
    (directory / "subnet").write_text("10.9.0.0/24\n")
    (directory / "10.9.0.7").write_text("old default/web\n")  # no index entry, no `indexed` file
    ipam = Ipam(directory, "10.9.0.0/24")
    with ipam.locked():
        assert ipam.allocate("old default/web") == "10.9.0.7"
        assert ipam.release("old default/web") == ["10.9.0.7"]


@pytest.mark.parametrize("text", ["10.89.0.0/16", "10.0.0.0/8", "192.168.1.0/24", "10.1.2.0/30", "0.0.0.0/0",
                                  "10.1.2.3/32", "10.89.0.1/16", "10.89.0.0/33", "10.89.0.0/",
                                  "10.89.0.0/x", "010.1.0.0/16", "fd00::/64", "10.89.0/16", "10.89.0.0/-1", ""])
def test_the_ipv4_subnet_reads_as_ipaddress_would(text: str) -> None:
    import ipaddress

    from sandbox.network.ipam import Subnet4

    try:
        expected = ipaddress.IPv4Network(text)
    except ValueError:
        with pytest.raises(ValueError):
            Subnet4(text)
        return
    subnet = Subnet4(text)
    assert str(subnet) == str(expected)
    assert subnet.size == expected.num_addresses and subnet.prefixlen == expected.prefixlen
    assert subnet.network == int(expected.network_address) and subnet.broadcast == int(expected.broadcast_address)


def test_a_subnet_names_its_prefix_length() -> None:
    """ipaddress reads a bare address as a /32; the runtime's subnets always come as `a.b.c.d/n`
    (the CLI writes --pod-cidr back in that form)."""
    from sandbox.network.ipam import Subnet4

    with pytest.raises(ValueError):
        Subnet4("10.89.0.0")


@pytest.mark.parametrize("text", ["10.89.0.2", "255.255.255.255", "0.0.0.0", "10.89.0.256", "10.089.0.1", "fd00::1",
                                  "10.89.0", "lock", "subnet", " 10.89.0.2", "1.2.3.4\n"])
def test_addresses_read_as_ipaddress_would(text: str) -> None:
    import ipaddress

    from sandbox.network.ipam import address_text, address_value

    try:
        expected = ipaddress.IPv4Address(text)
    except ValueError:
        with pytest.raises(ValueError):
            address_value(text)
        return
    assert address_value(text) == int(expected) and address_text(int(expected)) == str(expected)
