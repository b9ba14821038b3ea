"""The built-in pod network (issue 11): a pod IP on the `sandbox0` bridge, pods reaching each other
and the host reaching them by IP (TCP and UDP), the address in status, the downward API and
/etc/hosts, `--network none`, hostNetwork, 50 concurrent pods with 50 addresses, and a killed
runtime's lease. Everything is checked from outside: /proc/<pause>/ns/net through nsenter, the
links under /sys/class/net, the lease files; the fixture asserts that no link, lease directory or
nft table is left after each test."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import NETWORKS_DIR, Sandbox, wait_gone

pytestmark = pytest.mark.root

SUBNET = ipaddress.ip_network("10.89.0.0/16")
BRIDGE = "sandbox0"

def web_pod(name: str, web_ports: str = "", udp_ports: str = "") -> str:
    """A pod serving HTTP on 8080 ("hello from NAME") and UDP echo on 9000; `web_ports` and
    `udp_ports`: each container's `ports:` entries (flow style), if any."""
    web = f"\n    ports: [{web_ports}]" if web_ports else ""
    udp = f"\n    ports: [{udp_ports}]" if udp_ports else ""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /tmp/www && echo hello from {name} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]{web}
  - name: udp
    image: busybox
    command: ["sbx-udp", "serve", "9000"]{udp}
"""


def client_pod(script: str) -> str:
    """A one-shot pod `client` running `script` with busybox's sh."""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", {json.dumps(script)}]
"""


def published(name: str, port: int, udp: int, host_ip: str = "") -> str:
    """web_pod with hostPort `port` for HTTP (on `host_ip` if given) and `udp` for the UDP echo."""
    on = f", hostIP: {host_ip}" if host_ip else ""
    return web_pod(name, f"{{containerPort: 8080, hostPort: {port}{on}}}",
                   f"{{containerPort: 9000, hostPort: {udp}, protocol: UDP}}")


def start_server(sbx: Sandbox, name: str = "server", *extra: str) -> str:
    """A pod serving HTTP on 8080 and UDP echo on 9000; returns its pod IP from its record."""
    sbx.start(sbx.manifest(web_pod(name), f"{name}.yaml"), *extra)
    state = sbx.wait_running(name, containers=2)
    return str(state["status"]["podIP"])


def netns_addresses(pid: int) -> dict[str, list[str]]:
    """Interface -> IPv4 addresses inside the network namespace of `pid`, read with iproute2."""
    out = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "addr"], capture_output=True,
                         text=True, check=True).stdout
    return {link["ifname"]: [a["local"] for a in link.get("addr_info", []) if a["family"] == "inet"]
            for link in json.loads(out)}


def test_a_pod_gets_an_address_on_the_bridge_as_eth0_in_its_namespace(sbx: Sandbox) -> None:
    ip = start_server(sbx)
    assert ipaddress.ip_address(ip) in SUBNET and ip != "10.89.0.1"
    state = sbx.state("server")
    assert state is not None
    status = state["status"]
    assert status["podIPs"] == [{"ip": ip}]
    assert status["hostIP"] and status["hostIPs"] == [{"ip": status["hostIP"]}]
    inside = netns_addresses(sbx.pause_pid("server"))
    assert inside == {"lo": ["127.0.0.1"], "eth0": [ip]}
    routes = subprocess.run(["nsenter", f"--net=/proc/{sbx.pause_pid('server')}/ns/net", "ip", "-j", "route"],
                            capture_output=True, text=True, check=True).stdout
    assert {"dst": "default", "gateway": "10.89.0.1"}.items() <= json.loads(routes)[0].items()
    # the host end: on the bridge, which holds the gateway address
    veths = [n for n in os.listdir("/sys/class/net") if os.path.exists(f"/sys/class/net/{n}/brport")
             and os.path.realpath(f"/sys/class/net/{n}/master").endswith("/" + BRIDGE)]
    assert len(veths) == 1 and veths[0].startswith("sbv")
    assert "10.89.0.1" in netns_addresses(os.getpid())[BRIDGE]
    # the lease, on disk, names the pod
    lease = (NETWORKS_DIR / BRIDGE / ip).read_text()
    assert lease.split()[0] == state["uid"] and lease.split()[1] == "default/server"
    # the files the container sees
    hosts = sbx.run("exec", "server", "-c", "web", "--", "cat", "/etc/hosts", check=True).stdout
    assert f"{ip}\tserver\n" in hosts
    sbx.stop(sbx.procs[0])
    # the pair goes with pause's namespace: the kernel's clean-up may still be on it just now
    assert wait_gone(f"/sys/class/net/{veths[0]}")
    assert wait_gone(NETWORKS_DIR / BRIDGE), "the last pod takes its network along"
    assert not os.path.exists(f"/sys/class/net/{BRIDGE}")


def test_a_pod_has_no_ipv6_link_local_and_its_bridge_port_is_in_hairpin_mode(sbx: Sandbox) -> None:
    start_server(sbx)
    pause = sbx.pause_pid("server")
    inside = subprocess.run(["nsenter", f"--net=/proc/{pause}/ns/net", "ip", "-j", "-d", "addr", "show", "eth0"],
                            capture_output=True, text=True, check=True).stdout
    eth0 = json.loads(inside)[0]
    assert [a["family"] for a in eth0["addr_info"]] == ["inet"]  # the network is IPv4 only
    assert eth0["operstate"] == "UP"
    port = next(n for n in os.listdir("/sys/class/net") if n.startswith("sbv")
                and os.path.realpath(f"/sys/class/net/{n}/master").endswith("/" + BRIDGE))
    assert Path(f"/sys/class/net/{port}/brport/hairpin_mode").read_text().strip() == "1"
    host_end = json.loads(subprocess.run(["ip", "-j", "addr", "show", port], capture_output=True, text=True,
                                         check=True).stdout)[0]
    assert host_end["addr_info"] == [] and host_end["operstate"] == "UP"
    sbx.stop(sbx.procs[0])


def test_a_pods_veth_is_deleted_when_something_still_holds_its_namespace(sbx: Sandbox) -> None:
    """At a pod's end the veth is left to die with pause's namespace, unless the namespace
    outlives the pod (a process joined it): then the runtime deletes the pair itself."""
    start_server(sbx)
    holder = subprocess.Popen(["nsenter", f"--net=/proc/{sbx.pause_pid('server')}/ns/net", "sleep", "60"])
    try:
        port = next(n for n in os.listdir("/sys/class/net") if n.startswith("sbv")
                    and os.path.realpath(f"/sys/class/net/{n}/master").endswith("/" + BRIDGE))
        sbx.stop(sbx.procs[0])
        assert not os.path.exists(f"/sys/class/net/{port}"), "deleted before the runtime exited"
        assert holder.poll() is None
        assert list(netns_addresses(holder.pid)) == ["lo"]  # its peer went with it
    finally:
        holder.kill()
        holder.wait()


def test_two_pods_and_the_host_reach_a_pod_by_its_ip_over_tcp_and_udp(sbx: Sandbox) -> None:
    server = start_server(sbx)
    client = sbx.manifest(client_pod(f"wget -qO- http://{server}:8080/ && sbx-udp send {server} 9000 ping-over-udp"),
                          "client.yaml")
    result = sbx.run("run", str(client), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "hello from server" in result.stdout
    assert "ping-over-udp" in result.stdout
    # from the host, by pod IP
    with urllib.request.urlopen(f"http://{server}:8080/", timeout=5) as response:
        assert response.read() == b"hello from server\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.sendto(b"from-host", (server, 9000))
        assert udp.recvfrom(100)[0] == b"from-host"
    sbx.stop(sbx.procs[0])


def test_the_downward_api_sees_the_pod_and_host_ips(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: downward}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "echo pod=$POD_IP pods=$POD_IPS host=$HOST_IP"]
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: POD_IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
""")
    result = sbx.run("run", str(manifest), timeout=60)
    assert result.returncode == 0, result.stderr
    status = sbx.run("get", "pod", "downward", "-o", "json", check=True).stdout
    pod = json.loads(status)["status"]
    expected = f"pod={pod['podIP']} pods={pod['podIP']} host={pod['hostIP']}"
    assert expected in result.stdout
    assert ipaddress.ip_address(pod["podIP"]) in SUBNET


def test_network_none_leaves_the_pod_only_lo(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: isolated}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "ls /sys/class/net; echo ip=[$POD_IP]"]
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
""")
    links_before = sorted(os.listdir("/sys/class/net"))
    result = sbx.run("run", "--network", "none", str(manifest), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "[c] lo\n" in result.stdout and "eth0" not in result.stdout
    assert "ip=[]" in result.stdout
    assert sorted(os.listdir("/sys/class/net")) == links_before
    state = sbx.state("isolated")
    assert state is not None and "podIP" not in state["status"]


def test_a_host_network_pod_sees_the_hosts_interfaces_and_has_its_ip(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ["ls", "/sys/class/net"]
""")
    result = sbx.run("run", str(manifest), timeout=60)
    assert result.returncode == 0, result.stderr
    seen = {line.removeprefix("[c] ") for line in result.stdout.splitlines()}
    assert set(os.listdir("/sys/class/net")) <= seen
    state = sbx.state("hostnet")
    assert state is not None
    assert state["status"]["podIP"] == state["status"]["hostIP"]
    assert not (NETWORKS_DIR / BRIDGE).exists()


SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {name: p%d}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
"""


def concurrent_pods(sbx: Sandbox, count: int, *args: str) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """`count` pods started at once (each its own `sandbox run`); their processes and pod IPs."""
    procs = [sbx.start(sbx.manifest(SLEEPER % i, f"p{i}.yaml"), "-q", *args) for i in range(count)]
    return procs, [sbx.wait_running(f"p{i}", timeout=180)["status"]["podIP"] for i in range(count)]


def stop_all(sbx: Sandbox, procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every runtime at once; each must end its pod cleanly."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        code, _, err = sbx.finish(proc, timeout=180)
        assert code == 0, err


def test_fifty_concurrent_pods_get_fifty_distinct_addresses(sbx: Sandbox) -> None:
    procs, ips = concurrent_pods(sbx, 50)
    assert len(set(ips)) == 50, ips
    assert all(ipaddress.ip_address(ip) in SUBNET for ip in ips)
    leases = {p.name for p in (NETWORKS_DIR / BRIDGE).iterdir() if p.name[0].isdigit() and "." in p.name
              and p.name != "last_reserved_ip"}
    assert leases == set(ips)
    stop_all(sbx, procs)
    assert wait_gone(NETWORKS_DIR / BRIDGE)


def test_a_killed_runtimes_lease_is_kept_until_its_pod_is_deleted(sbx: Sandbox) -> None:
    first = start_server(sbx, "first")
    proc = sbx.procs[0]
    os.killpg(proc.pid, signal.SIGKILL)  # the runtime and nothing else: pause dies by PDEATHSIG
    proc.wait()
    sbx.finished.add(proc.pid)
    assert (NETWORKS_DIR / BRIDGE / first).exists(), "a lease outlives its runtime: its record owns it"
    second = start_server(sbx, "second")
    assert second != first
    deleted = sbx.run("delete", "first", timeout=60)
    assert deleted.returncode == 0, deleted.stderr
    assert not (NETWORKS_DIR / BRIDGE / first).exists()
    assert os.path.exists(f"/sys/class/net/{BRIDGE}"), "the second pod still uses the bridge"
    sbx.stop(sbx.procs[1])
    assert wait_gone(f"/sys/class/net/{BRIDGE}")


def bridge_address() -> Any:
    return netns_addresses(os.getpid()).get(BRIDGE)


def test_pod_cidr_and_bridge_options(sbx: Sandbox) -> None:
    ip = start_server(sbx, "custom", "--bridge", "sbtest1", "--pod-cidr", "10.123.4.0/24")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.123.4.0/24")
    assert netns_addresses(os.getpid())["sbtest1"] == ["10.123.4.1"]
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as response:
        assert response.read() == b"hello from custom\n"
    sbx.stop(sbx.procs[0])
    assert wait_gone("/sys/class/net/sbtest1")


@pytest.mark.parametrize("args, message", [
    (["--network", "flannel"], "--network: must be one of bridge, cni, none"),
    (["--pod-cidr", "10.0.0.0/31"], "--pod-cidr: must be an IPv4 subnet"),
    (["--pod-cidr", "fd00::/64"], "--pod-cidr: must be an IPv4 subnet"),
    (["--bridge", "a-name-far-too-long"], "--bridge: bridge name must be 1-15 characters"),
])
def test_bad_network_options_are_refused_before_anything_starts(sbx: Sandbox, args: list[str], message: str) -> None:
    manifest = sbx.manifest(web_pod("x"))
    result = sbx.run("run", *args, str(manifest), timeout=30)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert sbx.state("x") is None


def test_a_subnet_change_while_pods_use_the_bridge_is_refused(sbx: Sandbox) -> None:
    start_server(sbx, "first")
    manifest = sbx.manifest(web_pod("second"), "second.yaml")
    result = sbx.run("run", "--pod-cidr", "10.90.0.0/16", str(manifest), timeout=60)
    assert result.returncode != 0
    assert "already uses subnet 10.89.0.0/16" in result.stderr
    assert "Traceback" not in result.stderr
    sbx.stop(sbx.procs[0])


def fetch(host: str, port: int) -> bytes:
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as response:
        return bytes(response.read())


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout


def test_host_ports_reach_the_pod_from_localhost_the_bridge_and_the_host_address(sbx: Sandbox) -> None:
    sbx.start(sbx.manifest(published("pub", 18080, 19000)))
    state = sbx.wait_running("pub", containers=2)
    host_ip = state["status"]["hostIP"]
    for address in ("127.0.0.1", "10.89.0.1", host_ip):
        assert fetch(address, 18080) == b"hello from pub\n", address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.sendto(b"udp-via-hostport", ("127.0.0.1", 19000))
        assert udp.recvfrom(100)[0] == b"udp-via-hostport"
    assert f"table ip sandbox_{BRIDGE}" in nft_tables()
    # another pod reaches it through the host address (DNAT back onto the bridge)
    client = sbx.manifest(client_pod(f"wget -qO- http://{host_ip}:18080/"), "client.yaml")
    result = sbx.run("run", "-q", str(client), timeout=60)
    assert result.returncode == 0, result.stderr
    sbx.stop(sbx.procs[0])
    assert wait_gone(NETWORKS_DIR / BRIDGE)
    assert "sandbox_" not in nft_tables(), "the table goes with the bridge's last pod"
    with pytest.raises(OSError):
        fetch("127.0.0.1", 18080)


def test_a_host_ip_limits_the_port_to_that_address(sbx: Sandbox) -> None:
    sbx.start(sbx.manifest(published("local", 18081, 19001, "127.0.0.1")))
    sbx.wait_running("local", containers=2)
    assert fetch("127.0.0.1", 18081) == b"hello from local\n"
    with pytest.raises(OSError):
        fetch("10.89.0.1", 18081)
    sbx.stop(sbx.procs[0])


def test_a_host_port_taken_by_another_pod_fails_the_second_before_it_starts(sbx: Sandbox) -> None:
    sbx.start(sbx.manifest(published("first", 18082, 19002), "first.yaml"))
    first = sbx.wait_running("first", containers=2)
    second = sbx.manifest(published("second", 18082, 19003, "127.0.0.1"), "second.yaml")
    result = sbx.run("run", str(second), timeout=60)
    assert result.returncode == 1  # the kubelet's NodePorts admission, before any network set-up
    assert "NodePorts" in result.stderr and "hostPort 18082/TCP on 127.0.0.1 is held by pod default/first" \
        in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    leases = [p.name for p in (NETWORKS_DIR / BRIDGE).iterdir() if p.name.startswith("10.")]
    assert leases == [first["status"]["podIP"]], "the refused pod's lease was dropped"
    assert fetch("127.0.0.1", 18082) == b"hello from first\n"
    sbx.stop(sbx.procs[0])


def test_a_host_port_a_host_process_holds_is_refused(sbx: Sandbox) -> None:
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 18083))
        holder.listen()
        manifest = sbx.manifest(published("taken", 18083, 19004))
        result = sbx.run("run", str(manifest), timeout=60)
    assert result.returncode != 0
    assert "18083/TCP" in result.stderr and "already in use on the host" in result.stderr, result.stderr
    assert not (NETWORKS_DIR / BRIDGE).exists()


def test_a_host_port_with_network_none_is_refused_by_its_field(sbx: Sandbox) -> None:
    manifest = sbx.manifest(published("nonet", 18084, 19005))
    result = sbx.run("run", "--network", "none", str(manifest), timeout=60)
    assert result.returncode == 2
    assert "spec.containers[0].ports[0].hostPort: Forbidden: the pod has no network" in result.stderr
    assert sbx.state("nonet") is None


def test_masquerade_is_an_option_and_off_by_default(sbx: Sandbox) -> None:
    forwarding = Path("/proc/sys/net/ipv4/ip_forward")
    saved = forwarding.read_text()
    try:
        start_server(sbx, "plain")
        assert "sandbox_" not in nft_tables(), "no hostPort, no masquerade: no table at all"
        start_server(sbx, "masq", "--masquerade")
        ruleset = subprocess.run(["nft", "list", "table", "ip", f"sandbox_{BRIDGE}"], capture_output=True,
                                 text=True, check=True).stdout
        assert f'ip saddr 10.89.0.0/16 oifname != "{BRIDGE}" masquerade' in ruleset
        assert forwarding.read_text().strip() == "1"
        for proc in list(sbx.procs):
            sbx.stop(proc)
        assert wait_gone(NETWORKS_DIR / BRIDGE)
        assert "sandbox_" not in nft_tables()
    finally:
        forwarding.write_text(saved)


def test_gc_releases_a_killed_runtimes_address_ports_and_bridge(sbx: Sandbox) -> None:
    sbx.start(sbx.manifest(published("orphan", 18085, 19006)))
    ip = sbx.wait_running("orphan", containers=2)["status"]["podIP"]
    proc = sbx.procs[0]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    sbx.finished.add(proc.pid)
    assert (NETWORKS_DIR / BRIDGE / ip).exists() and "sandbox_" in nft_tables()
    result = sbx.run("gc", timeout=60)
    assert result.returncode == 0, result.stderr
    assert wait_gone(NETWORKS_DIR / BRIDGE)
    assert not os.path.exists(f"/sys/class/net/{BRIDGE}")
    assert "sandbox_" not in nft_tables()


def test_gc_removes_a_network_whose_remover_died(sbx: Sandbox) -> None:
    """The last pod's network is removed by a detached process; if that dies half-way, the
    network is left without leases, and `sandbox gc` removes it (a --keep-bridge one stays)."""
    from sandbox.network.bridge import lease
    from sandbox.network.config import BridgeConfig

    config = BridgeConfig("sbtest2", "10.124.0.0/24")
    lease(config, "someone")  # the bridge and the directory, as a pod's start makes them
    (config.directory / "10.124.0.2").unlink()  # its lease released, the removal never done
    assert os.path.exists("/sys/class/net/sbtest2")
    result = sbx.run("gc", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "removed network sbtest2" in result.stdout
    assert not os.path.exists("/sys/class/net/sbtest2") and not config.directory.exists()
    kept = BridgeConfig("sbtest2", "10.124.0.0/24", keep_bridge=True)
    lease(kept, "someone")
    (kept.directory / "10.124.0.2").unlink()
    try:
        assert "sbtest2" not in sbx.run("gc", timeout=60).stdout
        assert os.path.exists("/sys/class/net/sbtest2")
    finally:
        from sandbox.network.bridge import remove_network

        with kept.ipam().locked():
            remove_network(kept, kept.ipam())


def test_a_pod_arriving_within_the_removers_grace_keeps_the_bridge(sbx: Sandbox) -> None:
    """The last release hands the network to a detached remover that first waits GRACE_S: a lease
    taken meanwhile keeps the same bridge (no removal and re-creation between pods run back to
    back); pods that come and go meanwhile make it wait again (one remover, not one per pod);
    then it removes the network."""
    from sandbox.network.bridge import REMOVER_FILE, lease, release
    from sandbox.network.config import BridgeConfig
    from sandbox.process.detached import reap

    config = BridgeConfig("sbtest3", "10.125.0.0/24")
    lease(config, "first")
    index = socket.if_nametoindex("sbtest3")
    assert release(config, "first")
    lease(config, "second")  # at once: well within the grace
    reap(block=True)  # the remover has woken, found the lease, lingered (LINGER_S) and given up
    assert socket.if_nametoindex("sbtest3") == index, "the same bridge, never removed"
    assert release(config, "second")
    pending = (config.directory / REMOVER_FILE).read_text()
    lease(config, "third")  # a pod that comes and goes within the grace: the pending remover
    assert release(config, "third")  # re-arms instead of a second one being spawned
    assert (config.directory / REMOVER_FILE).read_text() == pending
    reap(block=True)
    assert not config.directory.exists() and not os.path.exists("/sys/class/net/sbtest3")


def test_the_same_pod_runs_again_at_once_after_the_last_pod_left_the_bridge(sbx: Sandbox) -> None:
    """The bridge's detached remover holds the network's lock and nothing else of the runtime's
    (it once kept the pod's own lock: the next run of the pod was refused as still running)."""
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: again}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox, command: ["/bin/true"]}
""")
    for _ in range(5):
        result = sbx.run("run", "-q", str(manifest), timeout=60)
        assert result.returncode == 0, result.stderr


TRUE_POD = """
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox, command: ["/bin/true"]}
"""


def test_the_last_pods_bridge_waits_in_the_native_shim_and_goes_after_the_grace(sbx: Sandbox) -> None:
    """The pending remover is the static shim (no interpreter started beside the next pod): the
    bridge is there after the last pod's run, and gone GRACE_S (plus at most one more grace and
    the unregistration) later without `sandbox gc`."""
    from sandbox.network.bridge import REMOVER_FILE
    from sandbox.network.remover import GRACE_S
    from sandbox.process.shim import shim_binary

    result = sbx.run("run", "-q", "--bridge", "sbtest4", "--pod-cidr", "10.128.0.0/24", str(sbx.manifest(TRUE_POD)),
                     timeout=60)
    assert result.returncode == 0, result.stderr
    ended = time.monotonic()
    directory = NETWORKS_DIR / "sbtest4"
    pid = int((directory / REMOVER_FILE).read_text())
    assert os.readlink(f"/proc/{pid}/exe") == os.path.realpath(shim_binary())
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE  # it waits on idle time only
    assert os.path.exists("/sys/class/net/sbtest4") and time.monotonic() - ended < GRACE_S
    assert wait_gone(directory, timeout=2 * GRACE_S + 5) and not os.path.exists("/sys/class/net/sbtest4")
    assert time.monotonic() - ended >= GRACE_S * 0.9  # not before its grace (monotonic vs the shim's clock)
    assert wait_gone(f"/proc/{pid}")  # the remover (by then the Python one the shim exec'd) ended


def test_gc_removes_a_bridge_in_its_grace_at_once_and_the_remover_then_leaves(sbx: Sandbox) -> None:
    """`sandbox gc` does not wait for the grace: the network goes at once, and the pending
    remover, finding it gone, exits without touching a network made again meanwhile."""
    from sandbox.network.bridge import REMOVER_FILE

    manifest = str(sbx.manifest(TRUE_POD))
    args = ("run", "-q", "--bridge", "sbtest5", "--pod-cidr", "10.129.0.0/24", manifest)
    result = sbx.run(*args, timeout=60)
    assert result.returncode == 0, result.stderr
    directory = NETWORKS_DIR / "sbtest5"
    pid = int((directory / REMOVER_FILE).read_text())
    result = sbx.run("gc", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "removed network sbtest5" in result.stdout
    assert not directory.exists() and not os.path.exists("/sys/class/net/sbtest5")
    assert os.path.exists(f"/proc/{pid}")  # still in its grace
    # a new network of the same name: the old remover's directory is gone, so it leaves this one
    result = sbx.run("run", "-q", "--keep-bridge", "--bridge", "sbtest5", "--pod-cidr", "10.129.0.0/24", manifest,
                     timeout=60)
    assert result.returncode == 0, result.stderr
    assert wait_gone(f"/proc/{pid}")
    assert os.path.exists("/sys/class/net/sbtest5") and directory.exists()
    result = sbx.run(*args, timeout=60)  # the last pod without --keep-bridge takes it along
    assert result.returncode == 0, result.stderr
    assert wait_gone(directory) and not os.path.exists("/sys/class/net/sbtest5")
