"""hostPorts through nftables on a real kernel: a test bridge, a pod network namespace held by a
child process (`unshare --net`), a veth into it, TCP and UDP listeners inside, and connections
from the host (the pytest process never enters a namespace). The fixture removes the table, the
bridge and the namespace even on failure and asserts none of them remains."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandbox.network.hostports import HostPortError, HostPorts, PortMapping, check_free

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]

POD_TCP_PORT = 8000
POD_UDP_PORT = 8001
POD_UDP_PORT_2 = 8002  # a second UDP listener, answering "udp2 ..."

# The pod's listeners: TCP answers "tcp <peer address>", UDP echoes "udp <peer address> <data>".
LISTENER = f"""
import socket, threading
tcp = socket.socket(); tcp.bind(("0.0.0.0", {POD_TCP_PORT})); tcp.listen(16)
udp = socket.socket(type=socket.SOCK_DGRAM); udp.bind(("0.0.0.0", {POD_UDP_PORT}))
def serve_udp():
    while True:
        data, peer = udp.recvfrom(512)
        udp.sendto(b"udp " + peer[0].encode() + b" " + data, peer)
threading.Thread(target=serve_udp, daemon=True).start()
udp2 = socket.socket(type=socket.SOCK_DGRAM); udp2.bind(("0.0.0.0", {POD_UDP_PORT_2}))
def serve_udp2():
    while True:
        data, peer = udp2.recvfrom(512)
        udp2.sendto(b"udp2 " + data, peer)
threading.Thread(target=serve_udp2, daemon=True).start()
print("ready", flush=True)
while True:
    conn, peer = tcp.accept()
    conn.sendall(b"tcp " + peer[0].encode())
    conn.close()
"""


def ip(*args: str, netns_pid: int = 0) -> None:
    prefix = ["nsenter", f"--net=/proc/{netns_pid}/ns/net"] if netns_pid else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], check=True, capture_output=True, text=True).stdout


@dataclass
class Topology:
    bridge: str
    gateway: str  # the bridge's address
    pod_ip: str
    hostports: HostPorts
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def mapping(self, protocol: str, host_port: int, host_ip: str = "") -> PortMapping:
        port = POD_TCP_PORT if protocol == "TCP" else POD_UDP_PORT
        return PortMapping(protocol, host_ip, host_port, port, self.pod_ip)


def free_port(kind: int) -> int:
    """A port no host socket holds right now (both protocols, so one number serves either)."""
    while True:
        with socket.socket(type=kind) as probe:
            probe.bind(("0.0.0.0", 0))
            port: int = probe.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(type=other) as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
        return port


@pytest.fixture
def topo() -> Iterator[Topology]:
    suffix = uuid.uuid4().hex[:6]
    bridge, veth = f"sbt{suffix}", f"sbv{suffix}"
    net = f"10.250.{random.randint(1, 254)}"
    topology = Topology(bridge, f"{net}.1", f"{net}.2", HostPorts(f"sandbox_{bridge}", bridge, f"{net}.0/24"))
    holder = subprocess.Popen(["unshare", "--net", "sleep", "600"], text=True)
    topology.procs.append(holder)
    try:
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 5
        # until unshare(2) has run: a veth peer sent to the pid sooner lands in our namespace
        while os.readlink(f"/proc/{holder.pid}/ns/net") == own:
            assert time.monotonic() < deadline, "unshare --net did not take effect"
            time.sleep(0.005)
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"{topology.gateway}/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", str(holder.pid))
        ip("link", "set", veth, "master", bridge, "up")
        for args in (("link", "set", "lo", "up"), ("addr", "add", f"{topology.pod_ip}/24", "dev", "eth0"),
                     ("link", "set", "eth0", "up"), ("route", "add", "default", "via", topology.gateway)):
            ip(*args, netns_pid=holder.pid)
        listener = subprocess.Popen(["nsenter", f"--net=/proc/{holder.pid}/ns/net", sys.executable, "-c", LISTENER],
                                    stdout=subprocess.PIPE, text=True)
        topology.procs.append(listener)
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        yield topology
    finally:
        try:
            topology.hostports.remove_table()
        finally:
            for proc in reversed(topology.procs):
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=10)
            if link_exists(bridge):
                ip("link", "del", bridge)
            if link_exists(veth):  # normally gone with the namespace, which died with its holder
                ip("link", "del", veth)
        assert f"sandbox_{bridge}" not in nft_tables()
        assert not link_exists(bridge) and not link_exists(veth)
        assert all(proc.poll() is not None for proc in topology.procs)


def tcp_reply(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=5) as conn:
        return conn.recv(128).decode()


def udp_reply(address: str, port: int, data: bytes = b"ping") -> str:
    with socket.socket(type=socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(data, (address, port))
        return sock.recv(512).decode()


def test_tcp_and_udp_reach_the_pod_on_localhost_and_the_bridge_address(topo: Topology) -> None:
    tcp_port, udp_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    mappings = [topo.mapping("TCP", tcp_port), topo.mapping("UDP", udp_port, "0.0.0.0")]
    check_free(mappings)
    topo.hostports.reserve("default/web (uid 1)", mappings)
    with open(f"/proc/sys/net/ipv4/conf/{topo.bridge}/route_localnet") as f:
        assert f.read().strip() == "1"
    # From 127.0.0.1 the pod sees the bridge address (masqueraded), from the bridge address itself.
    assert tcp_reply("127.0.0.1", tcp_port) == f"tcp {topo.gateway}"
    assert tcp_reply(topo.gateway, tcp_port) == f"tcp {topo.gateway}"
    assert udp_reply("127.0.0.1", udp_port) == f"udp {topo.gateway} ping"
    assert udp_reply(topo.gateway, udp_port) == f"udp {topo.gateway} ping"
    assert topo.hostports.owners() == {"default/web (uid 1)": [topo.mapping("TCP", tcp_port),
                                                                topo.mapping("UDP", udp_port)]}


def test_a_udp_flow_follows_the_host_port_to_its_new_pod(topo: Topology) -> None:
    """A UDP client that keeps its source port (a resolver) talks to a hostPort; the port then
    goes to another pod (here another listener): its next datagram must reach the new one. Its
    conntrack entry, made while the port was the first pod's, kept the old DNAT until it timed out
    (30-120 s); reserve deletes such entries, as portmap does."""
    port = free_port(socket.SOCK_DGRAM)
    topo.hostports.reserve("default/old (uid 1)", [topo.mapping("UDP", port)])
    with socket.socket(type=socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.bind(("127.0.0.1", 0))
        client.sendto(b"one", ("127.0.0.1", port))
        assert client.recv(512).decode() == f"udp {topo.gateway} one"
        topo.hostports.release("default/old (uid 1)")
        topo.hostports.reserve("default/new (uid 2)", [PortMapping("UDP", "", port, POD_UDP_PORT_2, topo.pod_ip)])
        client.sendto(b"two", ("127.0.0.1", port))
        assert client.recv(512).decode() == "udp2 two"


def test_host_ip_is_honoured(topo: Topology) -> None:
    port = free_port(socket.SOCK_STREAM)
    topo.hostports.reserve("default/web (uid 1)", [topo.mapping("TCP", port, "127.0.0.1")])
    assert tcp_reply("127.0.0.1", port) == f"tcp {topo.gateway}"
    with pytest.raises(ConnectionRefusedError):  # nothing forwards it there: the host's own stack refuses
        tcp_reply(topo.gateway, port)


@pytest.mark.parametrize(("first_ip", "second_ip"), [("", "127.0.0.1"), ("127.0.0.1", ""), ("127.0.0.1", "127.0.0.1")])
def test_a_conflict_names_the_other_pod_and_adds_nothing(topo: Topology, first_ip: str, second_ip: str) -> None:
    port, spare = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    web = "default/web (uid 1)"
    topo.hostports.reserve(web, [topo.mapping("TCP", port, first_ip)])
    before = topo.hostports.owners()
    with pytest.raises(HostPortError) as e:
        topo.hostports.reserve("default/db (uid 2)", [topo.mapping("UDP", spare),
                                                      topo.mapping("TCP", port, second_ip)])
    assert str(e.value) == f"hostPort {port}/TCP on {second_ip or '0.0.0.0'} is already used by pod {web}"
    assert topo.hostports.owners() == before
    topo.hostports.reserve("default/db (uid 2)", [topo.mapping("UDP", port, second_ip)])  # other protocol


def test_check_free_sees_a_host_socket(topo: Topology) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        with pytest.raises(HostPortError, match=f"hostPort {port}/TCP on 127.0.0.1 is already in use on the host"):
            check_free([topo.mapping("TCP", port, "127.0.0.1")])


def test_release_removes_one_owner_and_remove_table_leaves_nothing(topo: Topology) -> None:
    a, b = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    topo.hostports.reserve("default/web (uid 1)", [topo.mapping("TCP", a)])
    topo.hostports.reserve("default/db (uid 2)", [topo.mapping("TCP", b, "127.0.0.1")])
    topo.hostports.set_masquerade()
    topo.hostports.set_masquerade()
    topo.hostports.release("default/web (uid 1)")
    topo.hostports.release("default/web (uid 1)")
    assert topo.hostports.owners() == {"default/db (uid 2)": [topo.mapping("TCP", b, "127.0.0.1")]}
    with pytest.raises(ConnectionRefusedError):
        tcp_reply("127.0.0.1", a)
    assert tcp_reply("127.0.0.1", b) == f"tcp {topo.gateway}"
    listing = subprocess.run(["nft", "list", "table", "ip", topo.hostports.table], check=True,
                             capture_output=True, text=True).stdout
    assert listing.count(" masquerade") == 3  # localhost, hairpin, outbound: once each
    topo.hostports.remove_table()
    topo.hostports.remove_table()
    assert topo.hostports.table not in nft_tables()
    assert topo.hostports.owners() == {}
    topo.hostports.release("default/db (uid 2)")  # no table: nothing to do


def nft_json_owners(table: str) -> dict[str, list[PortMapping]]:
    """The table's elements per owner comment as libnftables lists them (`nft -j`): the outside
    view of what hostports.py adds over netlink (nfnl.py)."""
    listing = json.loads(subprocess.run(["nft", "-j", "list", "table", "ip", table], check=True,
                                        capture_output=True, text=True).stdout)
    found: dict[str, list[PortMapping]] = {}
    for entry in listing["nftables"]:
        table_map = entry.get("map")
        if not table_map:
            continue
        for key, value in table_map.get("elem", []):
            comment = key["elem"].get("comment", "") if "elem" in key else ""
            parts = (key["elem"]["val"] if "elem" in key else key)["concat"]
            host_ip = parts[0] if len(parts) == 3 else ""
            found.setdefault(comment, []).append(PortMapping(parts[-2].upper(), host_ip, int(parts[-1]),
                                                             int(value["concat"][1]), value["concat"][0]))
    for mappings in found.values():
        mappings.sort(key=lambda m: (m.protocol, m.host_port, m.host_ip))
    return found


def test_elements_over_netlink_are_what_libnftables_reads_and_writes(topo: Topology) -> None:
    a, b = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    web = 'default/web (uid 1) "quoted"'  # comment_for's '?' for the quotes, as nft text needs
    topo.hostports.reserve(web, [topo.mapping("TCP", a), topo.mapping("UDP", b, "127.0.0.1")])
    expected = {"default/web (uid 1) ?quoted?": [topo.mapping("TCP", a), topo.mapping("UDP", b, "127.0.0.1")]}
    assert nft_json_owners(topo.hostports.table) == expected == topo.hostports.owners()
    # elements libnftables made from nft text (as hostports.py did before nfnl.py), one without a
    # comment: read back, refused as another pod's, and released by their owner's comment
    c = free_port(socket.SOCK_STREAM)
    subprocess.run(["nft", f"add element ip {topo.hostports.table} hostip_hostports "
                           f'{{ {topo.gateway} . tcp . {c} comment "default/db (uid 2)" : {topo.pod_ip} . 8000 }}; '
                           f"add element ip {topo.hostports.table} any_hostports "
                           f"{{ udp . {c} : {topo.pod_ip} . 8001 }}"], check=True, capture_output=True)
    expected["default/db (uid 2)"] = [topo.mapping("TCP", c, topo.gateway)]
    expected[""] = [topo.mapping("UDP", c)]
    assert topo.hostports.owners() == expected == nft_json_owners(topo.hostports.table)
    with pytest.raises(HostPortError, match=f"hostPort {c}/TCP on 0.0.0.0 is already used by pod default/db"):
        topo.hostports.reserve("default/other (uid 3)", [topo.mapping("TCP", c)])
    with pytest.raises(HostPortError, match=rf"hostPort {c}/UDP on 0.0.0.0 is already used by pod \(unknown\)"):
        topo.hostports.reserve("default/other (uid 3)", [topo.mapping("UDP", c)])
    assert tcp_reply(topo.gateway, c) == f"tcp {topo.gateway}"
    topo.hostports.release("default/db (uid 2)")
    topo.hostports.release(web)
    assert nft_json_owners(topo.hostports.table) == {"": [topo.mapping("UDP", c)]} == topo.hostports.owners()


def test_release_leaves_the_last_close_of_its_socket_to_a_detached_holder(topo: Topology) -> None:
    from sandbox.network import hostports
    from sandbox.process import detached

    port = free_port(socket.SOCK_STREAM)
    topo.hostports.reserve("default/web (uid 1)", [topo.mapping("TCP", port)])
    before = set(detached.children)
    topo.hostports.release("default/web (uid 1)")
    assert hostports._shared_netlink == []  # ours is closed: the exit has no nf_tables socket to wait for
    (holder,) = set(detached.children) - before
    try:
        assert Path(f"/proc/{holder}/cmdline").read_bytes() == b"/bin/sleep\x001\x00"
        assert os.readlink(f"/proc/{holder}/fd/3").startswith("socket:")
        assert {os.readlink(f"/proc/{holder}/fd/{fd}") for fd in (0, 1, 2)} == {"/dev/null"}
        assert os.getsid(holder) == holder  # its own session: no terminal's signals
    finally:
        os.waitpid(holder, 0)
        detached.children.remove(holder)
    assert topo.hostports.owners() == {}


# Hairpin needs IPv4 forwarding, a global switch on the host this test must not flip: the whole
# scene runs in a scratch "host" namespace of its own, where the switch is local. Every pod holder
# gets PR_SET_PDEATHSIG, so all of it dies with the scene's process.
HAIRPIN_SCENE = r"""
import ctypes, json, os, signal, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from sandbox.network.hostports import HostPorts, PortMapping

libc = ctypes.CDLL(None, use_errno=True)
def die_with_parent():
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)

sh("ip", "link", "set", "lo", "up")
with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
    f.write("1")  # this namespace's own switch
sh("ip", "link", "add", "br0", "type", "bridge")
sh("ip", "addr", "add", "10.251.0.1/24", "dev", "br0")
sh("ip", "link", "set", "br0", "up")
pods = {}
for n in (2, 3):
    holder = subprocess.Popen(["unshare", "--net", "sleep", "600"], preexec_fn=die_with_parent)
    ns = f"--net=/proc/{holder.pid}/ns/net"
    # `unshare` makes its namespace after it starts: a veth peer sent to its pid before that lands
    # in ours (this raced once in CI)
    own = os.readlink("/proc/self/ns/net")
    for _ in range(500):
        if os.readlink(f"/proc/{holder.pid}/ns/net") != own:
            break
        time.sleep(0.01)
    sh("ip", "link", "add", f"v{n}", "type", "veth", "peer", "name", "eth0", "netns", str(holder.pid))
    sh("ip", "link", "set", f"v{n}", "master", "br0", "up")
    # With br_netfilter loaded, a pod's packet DNATed back to itself is bridged out of the port it
    # came in by: the bridge drops that unless the port is in hairpin mode (CNI bridge's hairpinMode).
    sh("ip", "link", "set", f"v{n}", "type", "bridge_slave", "hairpin", "on")
    for args in (["link", "set", "lo", "up"], ["addr", "add", f"10.251.0.{n}/24", "dev", "eth0"],
                 ["link", "set", "eth0", "up"], ["route", "add", "default", "via", "10.251.0.1"]):
        sh("nsenter", ns, "ip", *args)
    pods[n] = ns
listener = subprocess.Popen(["nsenter", pods[2], sys.executable, "-c", sys.argv[2]], stdout=subprocess.PIPE,
                            text=True, preexec_fn=die_with_parent)
assert listener.stdout.readline().strip() == "ready"
hp = HostPorts("sandbox_br0", "br0", "10.251.0.0/24")
hp.reserve("default/web (uid 1)", [PortMapping("TCP", "", 7000, 8000, "10.251.0.2")])
client = "import socket; print(socket.create_connection(('10.251.0.1', 7000), timeout=5).recv(64).decode())"
replies = {n: subprocess.run(["nsenter", pods[n], sys.executable, "-c", client], capture_output=True,
                             text=True, timeout=20).stdout.strip() for n in (2, 3)}
print(json.dumps(replies), flush=True)
"""


def test_hairpin_a_pod_reaches_its_own_and_another_pods_host_port() -> None:
    scene = subprocess.Popen(["unshare", "--net", sys.executable, "-c", HAIRPIN_SCENE, str(REPO), LISTENER],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = scene.communicate(timeout=60)
    finally:
        if scene.poll() is None:
            scene.kill()
            scene.communicate()
    assert scene.returncode == 0, err
    # Both replies come from the bridge address: the DNATed hairpin traffic was masqueraded, so the
    # replies went back through the host to be un-NATed.
    assert json.loads(out) == {"2": "tcp 10.251.0.1", "3": "tcp 10.251.0.1"}
