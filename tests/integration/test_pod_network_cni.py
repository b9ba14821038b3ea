"""`sandbox run --network cni`: pods networked by Debian's CNI plugins (bridge + host-local +
loopback, portmap for hostPort) from a test configuration directory. The pod IP comes from the
plugins' result; pods and the host reach it; host-local's reservation is released with the pod;
50 concurrent pods get 50 addresses; a broken configuration fails the pod before it starts.
The `net` fixture (test_net_cni.py) removes the bridge the bridge plugin never removes and
portmap's shared chains, and checks the nftables ruleset is as before."""

from __future__ import annotations

import ipaddress
import subprocess
import urllib.request

import pytest
from conftest import Sandbox
from test_net_cni import BIN_DIR, Net, nat_ruleset, net  # noqa: F401  (fixtures, requested by name)
from test_pod_network import client_pod, concurrent_pods, stop_all, web_pod

pytestmark = pytest.mark.root

def cni_args(net: Net) -> list[str]:
    return ["--network", "cni", "--cni-conf-dir", str(net.conf_dir), "--cni-bin-dir", str(BIN_DIR)]


def basic(net: Net) -> None:
    net.write([net.bridge_plugin(), {"type": "loopback"}])


def test_cni_pods_reach_each_other_and_the_host_reaches_them(sbx: Sandbox, net: Net) -> None:
    basic(net)
    sbx.start(sbx.manifest(web_pod("server"), "server.yaml"), *cni_args(net))
    state = sbx.wait_running("server")
    ip = state["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(net.subnet)
    assert net.reserved() == [ip]
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as response:
        assert response.read() == b"hello from server\n"
    hosts = sbx.run("exec", "server", "--", "cat", "/etc/hosts", check=True).stdout
    assert f"{ip}\tserver\n" in hosts  # written again once ADD gave the address
    client = sbx.manifest(client_pod(f"wget -qO- http://{ip}:8080/"), "client.yaml")
    result = sbx.run("run", *cni_args(net), str(client), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "hello from server" in result.stdout
    sbx.stop(sbx.procs[0])
    assert net.reserved() == [], "DEL released host-local's address"


def test_cni_host_port_through_portmap(sbx: Sandbox, net: Net) -> None:
    net.write([net.bridge_plugin(), {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}])
    sbx.start(sbx.manifest(web_pod("published", "{containerPort: 8080, hostPort: 18080}")), *cni_args(net))
    sbx.wait_running("published")
    with urllib.request.urlopen(f"http://{net.gateway}:18080/", timeout=5) as response:
        assert response.read() == b"hello from published\n"
    sbx.stop(sbx.procs[0])
    rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    assert "18080" not in rules, "portmap's DEL removed the pod's rules"


def test_fifty_concurrent_cni_pods_get_fifty_addresses(sbx: Sandbox, net: Net) -> None:
    basic(net)
    procs, ips = concurrent_pods(sbx, 50, *cni_args(net))
    assert len(set(ips)) == 50
    assert sorted(net.reserved()) == sorted(ips)
    stop_all(sbx, procs)
    assert net.reserved() == []


def test_a_missing_cni_configuration_fails_the_pod_before_it_starts(sbx: Sandbox, net: Net) -> None:
    manifest = sbx.manifest(web_pod("nocni"))
    result = sbx.run("run", *cni_args(net), str(manifest), timeout=60)
    assert result.returncode != 0
    assert "CNI" in result.stderr or "cni" in result.stderr
    assert "Traceback" not in result.stderr
    net.write([{"type": "no-such-plugin"}])
    result = sbx.run("run", *cni_args(net), str(manifest), timeout=60)
    assert result.returncode != 0 and "no-such-plugin" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_host_ports_without_portmap_in_the_configuration_are_refused(sbx: Sandbox, net: Net) -> None:
    basic(net)
    manifest = sbx.manifest(web_pod("unpublished", "{containerPort: 8080, hostPort: 18081}"))
    result = sbx.run("run", *cni_args(net), str(manifest), timeout=60)
    assert result.returncode != 0
    assert "no plugin takes portMappings" in result.stderr, result.stderr
    assert net.reserved() == []
