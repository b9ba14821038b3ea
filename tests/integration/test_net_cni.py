"""CNI plugins run for real (sandbox/network/cni.py): Debian's containernetworking-plugins 1.1.1
(bridge + host-local + portmap) against network namespaces held by `unshare --net sleep`, checked
from outside with `nsenter ... ip -j addr`, TCP connections from the host and the nat ruleset.

Each test has its own bridge (`sbc` + 6 hex), a /24 under 10.251.0.0/16 that no host route
overlaps, and host-local's dataDir in tmp_path, so nothing lands in /var/lib/cni. Clean-up runs
even on failure: DEL, the netns holders, the bridge, and the shared chains portmap leaves (see
`nat_ruleset`)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.network.cni import Attachment, CniConfig, CniError, CniNetwork, CniResult, load_network

pytestmark = pytest.mark.root

BIN_DIR = Path("/usr/lib/cni")
if not (BIN_DIR / "bridge").exists():
    pytest.skip("containernetworking-plugins is not installed", allow_module_level=True)

# portmap's shared chains: created on first use, never removed by its DEL (every pod's rules hang
# below them). Everything else it makes is per container and must be gone after DEL.
PORTMAP_SHARED = [
    ("PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]),
    ("OUTPUT", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]),
    ("POSTROUTING", ["-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"]),
]
PORTMAP_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK")


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=30).stdout


def ruleset() -> str:
    return sh("nft", "-s", "list", "ruleset")  # -s: no counters, which move with traffic


def nat_rules() -> str:
    return sh("iptables-save", "-t", "nat") + sh("ip6tables-save", "-t", "nat")


@pytest.fixture
def nat_ruleset() -> Iterator[None]:
    """The host's nftables ruleset is the same after the test as before it. portmap's shared chains
    (and the nat tables iptables-nft creates for them) are removed here when the test made them."""
    before = ruleset()
    # each nat table as it was: a host that already has one (another tool's) gets only the base
    # chains iptables-nft adds for portmap's jumps, removed below if they were not there before
    nat_before = {family: sh("nft", "-s", "list", "table", family, "nat", check=False) for family in ("ip", "ip6")}
    try:
        yield
    finally:
        if "CNI-HOSTPORT-DNAT" not in before:
            for chain, rule in PORTMAP_SHARED:
                sh("iptables", "-t", "nat", "-D", chain, *rule, check=False)
            for chain in PORTMAP_CHAINS:
                sh("iptables", "-t", "nat", "-F", chain, check=False)
                sh("iptables", "-t", "nat", "-X", chain, check=False)
        for family in ("ip", "ip6"):
            if not nat_before[family]:
                sh("nft", "delete", "table", family, "nat", check=False)
                continue
            for chain in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"):
                if f"chain {chain} {{" not in nat_before[family]:  # deleting fails if it holds a rule
                    sh("nft", "delete", "chain", family, "nat", chain, check=False)
    assert ruleset() == before


@dataclass
class Net:
    bridge: str
    subnet: str  # "10.251.N.0/24"
    gateway: str  # the bridge's address
    conf_dir: Path
    data_dir: Path
    config: CniConfig

    def write(self, plugins: list[dict[str, Any]], name: str = "10-test.conflist", version: str = "1.0.0") -> Path:
        path = self.conf_dir / name
        path.write_text(json.dumps({"cniVersion": version, "name": "sbtest", "plugins": plugins}))
        return path

    def bridge_plugin(self) -> dict[str, Any]:
        return {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                         "dataDir": str(self.data_dir)}}

    def reserved(self) -> list[str]:
        """host-local's reservation files (one per address, named by it)."""
        directory = self.data_dir / "sbtest"
        return sorted(n for n in os.listdir(directory) if n[0].isdigit() and n.count(".") == 3) \
            if directory.exists() else []


def free_subnet() -> int:
    used = sh("ip", "-4", "route", "show", "table", "all")
    for _ in range(100):
        third = random.randint(1, 254)
        if f"10.251.{third}." not in used and "10.251.0.0/16" not in used:
            return third
    raise RuntimeError("no free 10.251.N.0/24 here")


@pytest.fixture
def net(tmp_path: Path, nat_ruleset: None) -> Iterator[Net]:
    third = free_subnet()
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    n = Net(f"sbc{uuid.uuid4().hex[:6]}", f"10.251.{third}.0/24", f"10.251.{third}.1", conf_dir,
            tmp_path / "ipam", CniConfig(conf_dir=conf_dir, bin_dirs=(BIN_DIR,)))
    try:
        yield n
    finally:
        sh("ip", "link", "del", n.bridge, check=False)  # the bridge plugin never removes its bridge


@pytest.fixture
def netns() -> Iterator[Callable[[], str]]:
    """Network namespaces, each held by a `sleep` in it; returns their /proc/<pid>/ns/net paths."""
    holders: list[subprocess.Popen[bytes]] = []
    own = os.readlink("/proc/self/ns/net")

    def make() -> str:
        proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        holders.append(proc)
        path = f"/proc/{proc.pid}/ns/net"
        for _ in range(500):
            if os.readlink(path) != own:  # unshare has run
                return path
            subprocess.run(["sleep", "0.01"], check=True)
        raise AssertionError("unshare --net did not take effect")

    try:
        yield make
    finally:
        for proc in holders:
            proc.kill()
            proc.wait()


@pytest.fixture
def attached() -> Iterator[list[tuple[CniNetwork, Attachment, CniResult | None]]]:
    """What a test ADDed; DELed at the end if the test did not get that far (as the journal would)."""
    done: list[tuple[CniNetwork, Attachment, CniResult | None]] = []
    yield done
    for network, attachment, result in reversed(done):
        network.delete(attachment, result)


def addresses_in(path: str) -> dict[str, list[str]]:
    links = json.loads(sh("nsenter", f"--net={path}", "ip", "-j", "addr"))
    return {link["ifname"]: [a["local"] for a in link.get("addr_info", [])] for link in links}


@pytest.fixture
def listener() -> Iterator[Callable[[str, int], None]]:
    """A TCP server in a netns that answers every connection with `pong`."""
    procs: list[subprocess.Popen[str]] = []
    code = ("import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.bind(('0.0.0.0',int(sys.argv[1])));s.listen(8);print('ready',flush=True)\n"
            "while True:\n c,_=s.accept();c.sendall(b'pong');c.close()\n")

    def start(path: str, port: int) -> None:
        proc = subprocess.Popen(["nsenter", f"--net={path}", sys.executable, "-c", code, str(port)],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    try:
        yield start
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()  # reaps it and closes its pipe


def fetch(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as s:
        return s.recv(16)


def test_add_check_del(net: Net, netns: Callable[[], str], listener: Callable[[str, int], None]) -> None:
    net.write([net.bridge_plugin()])
    network = load_network(net.config)
    path = netns()
    attachment = Attachment("sbtest" + uuid.uuid4().hex[:8], path, pod_namespace="default", pod_name="p",
                            pod_uid=str(uuid.uuid4()))
    result = network.add(attachment)
    try:
        (ip,) = result.ips
        assert ip.startswith(net.subnet.rsplit(".", 1)[0] + ".") and ip != net.gateway
        assert ip in addresses_in(path)["eth0"]
        host_veth = result.raw["interfaces"][1]["name"]
        assert os.path.exists(f"/sys/class/net/{host_veth}")
        assert net.reserved() == [ip]
        listener(path, 8080)
        assert fetch(ip, 8080) == b"pong"  # the host reaches the pod through the bridge
        network.check(attachment, result)
    finally:
        network.delete(attachment, result)
    assert not os.path.exists(f"/sys/class/net/{host_veth}")
    assert "eth0" not in addresses_in(path)
    assert net.reserved() == []
    network.delete(attachment, result)  # DEL twice is fine (the spec: DEL is idempotent)


def test_del_without_netns_releases_the_address(net: Net, netns: Callable[[], str]) -> None:
    """The pod is gone (netns ""): DEL still frees host-local's reservation (the journal's case)."""
    net.write([net.bridge_plugin()])
    network = load_network(net.config)
    attachment = Attachment("sbtest" + uuid.uuid4().hex[:8], netns())
    cache = network.to_cache(attachment, None)  # before ADD, as the journal records it
    result = network.add(attachment)
    assert net.reserved() == list(result.ips)
    cache["attachment"]["netnsId"] = "0:0"  # as if the pid had been reused by another namespace
    network2, attachment2, _ = CniNetwork.from_cache(json.loads(json.dumps(cache)))
    assert attachment2.netns == ""
    network2.delete(attachment2, None)
    assert net.reserved() == []
    network.delete(attachment, result)  # the veth (removed with the netns in real life)


def test_two_namespaces_get_two_addresses(net: Net, netns: Callable[[], str],
                                          attached: list[tuple[CniNetwork, Attachment, CniResult | None]]) -> None:
    net.write([net.bridge_plugin()])
    network = load_network(net.config)
    ips = []
    for _ in range(2):
        attachment = Attachment("sbtest" + uuid.uuid4().hex[:8], netns())
        attached.append((network, attachment, None))
        result = network.add(attachment)
        attached[-1] = (network, attachment, result)
        assert result.ips[0] in addresses_in(attachment.netns)["eth0"]
        ips.append(result.ips[0])
    assert len(set(ips)) == 2
    assert net.reserved() == sorted(ips)


def test_portmap_reaches_the_listener_and_leaves_no_rule(
        net: Net, netns: Callable[[], str], listener: Callable[[str, int], None]) -> None:
    net.write([net.bridge_plugin(), {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}])
    network = load_network(net.config)
    host_port = random.randint(30000, 32000)
    path = netns()
    container_id = "sbtest" + uuid.uuid4().hex[:8]
    attachment = Attachment(container_id, path, port_mappings=(
        {"hostPort": host_port, "containerPort": 8080, "protocol": "tcp"},))
    result = network.add(attachment)
    try:
        (ip,) = result.ips
        listener(path, 8080)
        assert fetch(net.gateway, host_port) == b"pong"  # DNAT on the host's bridge address
        assert fetch("127.0.0.1", host_port) == b"pong"  # snat: route_localnet and masquerade
        assert container_id in nat_rules()
    finally:
        network.delete(attachment, result)
    rules = nat_rules()
    # Nothing of this pod is left: its CNI-DN-* chain, its DNAT, its hostPort.
    assert "CNI-DN-" not in rules and container_id not in rules and ip not in rules
    assert str(host_port) not in rules


def test_portmap_check_fails_on_ipv4_only_pods_in_1_1_1(net: Net, netns: Callable[[], str]) -> None:
    """Debian's portmap 1.1.1 CHECK looks for ip6tables rules an IPv4-only pod never had
    (containernetworking/plugins#819); the plugin's error reaches the caller intact."""
    if not sh("dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins", check=False).startswith("1.1."):
        pytest.skip("the bug is pinned to Debian's 1.1.x plugins")
    net.write([net.bridge_plugin(), {"type": "portmap", "capabilities": {"portMappings": True}}])
    network = load_network(net.config)
    attachment = Attachment("sbtest" + uuid.uuid4().hex[:8], netns(),
                            port_mappings=({"hostPort": random.randint(30000, 32000), "containerPort": 80,
                                            "protocol": "tcp"},))
    result = network.add(attachment)
    try:
        with pytest.raises(CniError) as caught:
            network.check(attachment, result)
        assert caught.value.plugin == "portmap" and caught.value.command == "CHECK"
        assert "ipv6" in caught.value.msg
    finally:
        network.delete(attachment, result)


def test_plugin_error_object_reaches_the_caller(
        net: Net, netns: Callable[[], str],
        attached: list[tuple[CniNetwork, Attachment, CniResult | None]]) -> None:
    """A range of one address: the second ADD gets host-local's error (code/msg from stdout), and
    DEL of that partial ADD works (the spec: DEL tolerates what ADD did not finish)."""
    plugin = net.bridge_plugin()
    only = net.gateway.rsplit(".", 1)[0] + ".5"
    plugin["ipam"]["ranges"] = [[{"subnet": net.subnet, "rangeStart": only, "rangeEnd": only}]]
    source = net.write([plugin])
    network = load_network(net.config)
    first = Attachment("sbtest" + uuid.uuid4().hex[:8], netns())
    attached.append((network, first, None))
    assert network.add(first).ips == (only,)
    second = Attachment("sbtest" + uuid.uuid4().hex[:8], netns())
    attached.append((network, second, None))
    with pytest.raises(CniError) as caught:
        network.add(second)
    assert caught.value.plugin == "bridge" and caught.value.command == "ADD"
    assert caught.value.code != 0 and caught.value.msg and caught.value.msg in str(caught.value)
    assert str(source) in str(caught.value)
    network.delete(second, None)
    assert net.reserved() == [only]


def test_missing_plugin_and_bad_json_are_refused(net: Net) -> None:
    net.write([net.bridge_plugin(), {"type": "nosuchplugin"}])
    with pytest.raises(CniError, match=r"plugins\[1\]\.type: plugin 'nosuchplugin' not found in /usr/lib/cni"):
        load_network(net.config)
    (net.conf_dir / "10-test.conflist").write_text('{"cniVersion": "1.0.0", "name": "x", "plugins": [}')
    with pytest.raises(CniError, match=r"10-test.conflist: not valid JSON: .*line 1 column"):
        load_network(net.config)
