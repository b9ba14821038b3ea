"""hostPort forwarding and outbound masquerading for the pod bridge, as CNI's portmap plugin does.

nftables rather than iptables: one table of our own holds two verdict-free maps, so a pod's
hostPorts are map elements added or deleted in one atomic batch (no rule list to rewrite or
search, no iptables-legacy/nft backend guessing, nothing in the host's own chains), and the
elements' comments record their owner in the kernel: no state file to leak or to go stale.

Layout of table `ip <table>` (created whole in one batch by the first call that needs it):
  map any_hostports     protocol . port             -> pod address . container port  (hostIP "")
  map hostip_hostports  host address . protocol . port -> pod address . container port
  prerouting / output   nat hooks at dstnat: `fib daddr type local` jumps to `hostports`, which
                        DNATs through the specific map first, then the any-address one
  postrouting           srcnat: masquerade what leaves through the bridge with a 127.0.0.0/8 source
                        (the host reaching 127.0.0.1:<hostPort>; the kernel drops loopback sources
                        on other links unless route_localnet is on, and the pod could not answer
                        them), and DNATed traffic from the subnet to the subnet (hairpin: the reply
                        has to come back through the host to be un-NATed)
  outbound              srcnat, only after set_masquerade(): the subnet leaving by any other link
"""

from __future__ import annotations

import _socket  # socket.py's enum conversions cost ~3 ms cold (-X importtime of a hostPort pod)

from sandbox.errors import SandboxError
from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from sandbox.network.nfnl import Nfnl
    from sandbox.network.nft import Nft

ANY_MAP = "any_hostports"
IP_MAP = "hostip_hostports"
OUTBOUND = "outbound"  # the chain set_masquerade() adds
COMMENT_MAX = 128  # nft refuses longer element comments ("128 characters maximum allowed")
_DSTNAT = -100  # nft 1.0.6 takes the `dstnat` name for prerouting but not for the output hook


class PortMapping(Record):
    """One container port with a hostPort."""

    protocol: str  # "TCP" or "UDP" (the spec refuses SCTP before this point)
    host_ip: str  # "" means every host address (kubelet: "" or 0.0.0.0)
    host_port: int
    container_port: int
    pod_ip: str  # the pod's IPv4 address


class HostPortError(SandboxError):
    """A hostPort the pod cannot have: used by another pod or by a host process."""


def describe(m: PortMapping) -> str:
    """`hostPort 8080/TCP on 0.0.0.0`: how every message names a mapping."""
    return f"hostPort {m.host_port}/{m.protocol} on {m.host_ip or '0.0.0.0'}"


def normalized(m: PortMapping) -> PortMapping:
    """The kubelet treats hostIP 0.0.0.0 as "" (every address)."""
    if m.host_ip == "0.0.0.0":
        return PortMapping(m.protocol, "", m.host_port, m.container_port, m.pod_ip)
    return m


def overlaps(a: PortMapping, b: PortMapping) -> bool:
    """Same protocol and port, and host addresses that meet: "" meets every address."""
    return (a.protocol == b.protocol and a.host_port == b.host_port
            and (not a.host_ip or not b.host_ip or a.host_ip == b.host_ip))


def comment_for(owner: str) -> str:
    """The element comment that records `owner`: nft's string syntax has no escapes, so quotes,
    backslashes and control characters become '?', and an owner longer than nft's limit keeps its
    head and its tail (where the lead's "(uid ...)" sits), so the result stays unique per pod."""
    text = "".join(c if c.isprintable() and c not in '"\\' else "?" for c in owner)
    if len(text) <= COMMENT_MAX:
        return text
    tail = COMMENT_MAX // 2
    return text[:COMMENT_MAX - tail - 3] + "..." + text[-tail:]


def check_mappings(owner: str, mappings: Sequence[PortMapping],
                   held: dict[str, list[PortMapping]]) -> None:
    """HostPortError for a bad mapping, two mappings of this pod on one port, or one that another
    owner (by comment) holds; the same owner's own earlier elements are replaced, not refused."""
    mine = comment_for(owner)
    for i, m in enumerate(mappings):
        _check_values(m)
        for other in mappings[:i]:
            if overlaps(m, other):
                raise HostPortError(f"{describe(m)} is given twice in this pod "
                                    f"(containerPorts {other.container_port} and {m.container_port})")
        for who, theirs in held.items():
            if who == mine:
                continue
            for other in theirs:
                if overlaps(m, other):
                    raise HostPortError(f"{describe(m)} is already used by pod {who or '(unknown)'}")


def _check_values(m: PortMapping) -> None:
    if m.protocol not in ("TCP", "UDP"):
        raise HostPortError(f"{describe(m)}: only TCP and UDP hostPorts are forwarded")
    if not (1 <= m.host_port <= 65535 and 1 <= m.container_port <= 65535):
        raise HostPortError(f"{describe(m)}: ports must be between 1 and 65535 "
                            f"(containerPort {m.container_port})")
    for label, address in (("hostIP", m.host_ip), ("pod IP", m.pod_ip)):
        if (address or label == "pod IP") and not _is_ipv4(address):
            raise HostPortError(f"{describe(m)}: {label} {address!r} is not an IPv4 address "
                                "(hostPorts are forwarded for IPv4 only)")


def _is_ipv4(text: str) -> bool:
    try:
        _socket.inet_pton(_socket.AF_INET, text)
    except OSError:
        return False
    return True


def check_free(mappings: Sequence[PortMapping]) -> None:
    """HostPortError if a host process holds one of the ports. Binds a socket of the mapping's
    protocol without SO_REUSEADDR and closes it; called before the pod starts. Advisory, as the
    kubelet's check: a process may bind the port later, and the DNAT then takes its traffic."""
    import errno

    for m in map(normalized, mappings):
        kind = _socket.SOCK_STREAM if m.protocol == "TCP" else _socket.SOCK_DGRAM
        probe = _socket.socket(_socket.AF_INET, kind | _socket.SOCK_CLOEXEC)
        try:
            probe.bind((m.host_ip or "0.0.0.0", m.host_port))
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                raise HostPortError(f"{describe(m)}: {m.host_ip} is not an address of this host") from None
            raise HostPortError(f"{describe(m)} is already in use on the host "
                                f"({(e.strerror or str(e)).lower()})") from None
        finally:
            probe.close()


def structure(table: str, bridge: str, subnet: str) -> str:
    """The nft commands that create the table, its maps and chains; run only when a listing found
    no table. One batch makes the table whole or not at all, so a table that exists is complete
    and its rules are never rewritten: replacing rules costs an RCU grace period (~11 ms here, paid
    when the netlink socket closes), adding elements does not."""
    t = f"ip {table}"
    lines = [
        f"add table {t}",
        f"add map {t} {ANY_MAP} {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}",
        f"add map {t} {IP_MAP} {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}",
        f"add chain {t} hostports",
        f"add chain {t} prerouting {{ type nat hook prerouting priority {_DSTNAT}; policy accept; }}",
        f"add chain {t} output {{ type nat hook output priority {_DSTNAT}; policy accept; }}",
        f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",
    ]
    lines += [
        f"add rule {t} hostports dnat ip to ip daddr . meta l4proto . th dport map @{IP_MAP}",
        f"add rule {t} hostports dnat ip to meta l4proto . th dport map @{ANY_MAP}",
        f"add rule {t} prerouting fib daddr type local jump hostports",
        f"add rule {t} output fib daddr type local jump hostports",
        f'add rule {t} postrouting oifname "{bridge}" ip saddr 127.0.0.0/8 masquerade',
        f'add rule {t} postrouting oifname "{bridge}" ip saddr {subnet} ip daddr {subnet} ct status dnat masquerade',
    ]
    return "\n".join(lines) + "\n"


def masquerade_commands(table: str, bridge: str, subnet: str) -> str:
    t = f"ip {table}"
    # The chain is `outbound`: `masquerade` is an nft keyword, refused as a bare chain name.
    return (f"add chain {t} {OUTBOUND} {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
            f'add rule {t} {OUTBOUND} ip saddr {subnet} oifname != "{bridge}" masquerade\n')


def element_key(m: PortMapping) -> str:
    proto_port = f"{m.protocol.lower()} . {m.host_port}"
    return f"{m.host_ip} . {proto_port}" if m.host_ip else proto_port


def chain_names(listing: dict[str, Any]) -> set[str]:
    return {entry["chain"]["name"] for entry in listing.get("nftables", []) if "chain" in entry}


class HostPorts:
    """The hostPort table of one bridge. Callers serialise calls across processes (their flock)."""

    def __init__(self, table: str, bridge: str, subnet: str) -> None:
        # All three are spliced into nft commands: refuse what could end a token or a string.
        address, _, prefix = subnet.partition("/")
        if not (table.replace("_", "").isalnum() and table.isascii() and len(table) < 256):
            raise ValueError(f"nft table name {table!r}: letters, digits and '_' only")
        if not (0 < len(bridge) < 16 and bridge.isascii() and all(c.isalnum() or c in "-_." for c in bridge)):
            raise ValueError(f"bridge name {bridge!r} is not an interface name")
        if not (_is_ipv4(address) and prefix.isdigit() and int(prefix) <= 32):
            raise ValueError(f"subnet {subnet!r} is not an IPv4 prefix")
        self.table = table  # "sandbox_sandbox0"
        self.bridge = bridge
        self.subnet = subnet  # "10.89.0.0/16"

    def reserve(self, owner: str, mappings: Sequence[PortMapping]) -> None:
        """Forward `mappings` to their pod, all or none; HostPortError names a conflicting owner."""
        wanted = [normalized(m) for m in mappings]
        held = self._held()
        if held is None:  # no table yet: made whole first, by libnftables from nft text
            from sandbox.network.nft import Nft

            # a context of its own, closed at once (0.04 ms: nothing of ours awaits a free yet);
            # left open, it closed at the exit, which then waited for release()'s deletion
            with Nft() as nft:
                nft.run(structure(self.table, self.bridge, self.subnet), f"add table {self.table}")
            held = {}
        check_mappings(owner, wanted, held)
        self._route_localnet()
        keys = {element_key(w) for w in wanted}
        mine = [m for m in held.get(comment_for(owner), []) if element_key(m) in keys]
        nfnl = _netlink()
        messages = self._deletions(nfnl, mine)
        comment = comment_for(owner)
        for name in (ANY_MAP, IP_MAP):
            items = [((m.host_ip, m.protocol, m.host_port), (m.pod_ip, m.container_port), comment)
                     for m in wanted if bool(m.host_ip) == (name == IP_MAP)]
            if items:
                messages.append(nfnl.add_elements(self.table, name, items))
        self._batch(messages, f"add hostPorts of pod {owner}")
        udp = sorted({w.host_port for w in wanted if w.protocol == "UDP"})
        if udp:  # after the new elements, as portmap: no entry made meanwhile keeps the old DNAT
            _forget_udp_flows(udp, owner)

    def release(self, owner: str) -> None:
        """Delete exactly `owner`'s elements; nothing to do is not an error."""
        held = self._held()
        mine = held.get(comment_for(owner), []) if held else []
        if mine:
            self._batch(self._deletions(_netlink(), mine), f"delete hostPorts of pod {owner}")
            _close_elsewhere()

    def set_masquerade(self) -> None:
        """Masquerade the subnet leaving by any link but the bridge; a no-op once it is there."""
        from sandbox.network.nft import Nft

        with Nft() as nft:  # closed at once, as reserve()'s: the exit must not hold an nf_tables socket
            listing = self._listing(nft)
            if listing and OUTBOUND in chain_names(listing):
                return
            nft.run(self._structure_if(listing) + masquerade_commands(self.table, self.bridge, self.subnet),
                    "add masquerade")

    def remove_table(self) -> None:
        from sandbox.network.nft import NftError

        try:
            _context().run(f"delete table ip {self.table}\n", f"delete table {self.table}")
        except NftError as e:
            if not e.missing:
                raise

    def owners(self) -> dict[str, list[PortMapping]]:
        """What the kernel holds, per owner comment: for gc and tests."""
        return self._held() or {}

    def _held(self) -> dict[str, list[PortMapping]] | None:
        """The mappings per owner comment ("" for an element without one), each owner's sorted by
        protocol, port and address; None when there is no table. Two dumps over netlink
        (nfnl.py): libnftables' JSON listing cost `import json` and a cache refresh."""
        nfnl = _netlink()
        found: dict[str, list[PortMapping]] = {}
        try:
            for name in (ANY_MAP, IP_MAP):
                for (host_ip, protocol, host_port), (pod_ip, container_port), comment in nfnl.elements(self.table, name):
                    found.setdefault(comment, []).append(PortMapping(protocol, host_ip, host_port, container_port, pod_ip))
        except OSError as e:
            if e.errno == 2:  # ENOENT: no table (or a map of it: never made apart from its table)
                return None
            from sandbox.network.nft import NftError

            raise NftError(f"list table {self.table}", e.strerror or str(e)) from None
        for mappings in found.values():  # the kernel lists a hash's elements in no stable order
            mappings.sort(key=lambda m: (m.protocol, m.host_port, m.host_ip))
        return found

    def _deletions(self, nfnl: Nfnl, mappings: Sequence[PortMapping]) -> list[tuple[int, int, bytes]]:
        return [nfnl.delete_elements(self.table, name, [(m.host_ip, m.protocol, m.host_port) for m in mappings
                                                        if bool(m.host_ip) == (name == IP_MAP)])
                for name in (ANY_MAP, IP_MAP) if any(bool(m.host_ip) == (name == IP_MAP) for m in mappings)]

    def _batch(self, messages: list[tuple[int, int, bytes]], what: str) -> None:
        """One transaction; NftError (as libnftables' were) with the kernel's refusal."""
        try:
            _netlink().batch(messages)
        except OSError as e:
            from sandbox.network.nft import NftError

            raise NftError(what, e.strerror or str(e)) from None

    def _listing(self, nft: Nft) -> dict[str, Any] | None:
        """The table as libnftables' JSON, None when there is no table (set_masquerade only)."""
        import json

        from sandbox.network.nft import NftError

        try:
            out = nft.run(f"list table ip {self.table}\n", f"list table {self.table}", json=True)
        except NftError as e:
            if e.missing:
                return None
            raise
        listing: dict[str, Any] = json.loads(out)
        return listing

    def _structure_if(self, listing: dict[str, Any] | None) -> str:
        return structure(self.table, self.bridge, self.subnet) if listing is None else ""

    def _route_localnet(self) -> None:
        """Lets the host's 127.0.0.1 traffic, DNATed to a pod, leave through the bridge (the kernel
        drops loopback sources on other links otherwise). Per link: gone with the bridge."""
        from sandbox.network.bridge import set_knob

        try:
            set_knob(f"/proc/sys/net/ipv4/conf/{self.bridge}/route_localnet")
        except OSError as e:
            raise HostPortError(f"hostPorts need bridge {self.bridge}: cannot set route_localnet "
                                f"({e.strerror})") from None


_shared: list[Nft] = []
_shared_netlink: list[Nfnl] = []


def _context() -> Nft:
    """One libnftables context per process for remove_table (the remover's, `sandbox gc`'s, a
    failed first lease's), left open: closing its netlink socket right after deleting a table
    waits for the kernel's deferred clean-up (an RCU grace period, ~15 ms); left open, the
    clean-up runs in the background and the socket closes with the process. Containers never
    inherit it: the spawner marks every descriptor close-on-exec (native/spawn.c)."""
    if not _shared:
        from sandbox.network.nft import Nft

        _shared.append(Nft())
    return _shared[0]



def _netlink() -> Nfnl:
    """One NETLINK_NETFILTER socket per process for the elements (see _close_elsewhere)."""
    if not _shared_netlink:
        from sandbox.network.nfnl import Nfnl

        _shared_netlink.append(Nfnl())
    return _shared_netlink[0]


HOLDER = ("/bin/sleep", "1")  # coreutils


def _close_elsewhere() -> None:
    """After a batch that deleted elements: hand the elements' socket to a detached `sleep 1`
    and close ours, so that the socket's last close is that process's, a second later.

    Why: the last close of any nf_tables netlink socket waits for the kernel's deferred free of
    what the last transactions removed (nft_rcv_nl_event flushes the destroy work, whose
    synchronize_rcu() takes 7-15 ms here, longer on a loaded VM). Kept open, the socket closed at
    the runtime's exit, and `sandbox run` of a hostPort pod was reaped a median 3.4 ms later
    than a bridge pod's (12 pairs; the tear-down after release() takes ~4 ms, less than the
    grace period). Closed on a thread right after the deletion it gained nothing measurable, for
    the same reason. The spawn costs the runtime ~0.2 ms. If it fails the socket stays open and
    the exit waits, as before."""
    from sandbox.process import detached

    if not _shared_netlink:
        return
    nfnl = _shared_netlink.pop()
    try:  # stdio on /dev/null (a caller's pipe must not wait a second for its EOF); the socket as fd 3
        detached.spawn(HOLDER, fds={3: nfnl.sock.fileno()}, env={}, idle=False)
    except OSError:
        _shared_netlink.append(nfnl)
        return
    nfnl.close()


def _forget_udp_flows(ports: list[int], owner: str) -> None:
    """Delete the conntrack entries of UDP traffic to `ports` (network/conntrack.py): a flow an
    earlier pod answered would keep going to it. A failure leaves the pod's ports working for new
    flows: it is logged, not raised (portmap logs it too)."""
    from sandbox.network.conntrack import delete_udp_entries

    try:
        delete_udp_entries(ports)
    except OSError as e:
        from sandbox.log import get_logger

        get_logger("sandbox.network").warning("hostPorts of pod %s: stale UDP conntrack entries for ports %s "
                                              "not deleted: %s", owner, ports, e.strerror or e)
