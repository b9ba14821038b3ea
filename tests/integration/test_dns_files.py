"""/etc/hosts, /etc/resolv.conf and the hostname a container sees, per dnsPolicy, hostAliases,
subdomain, setHostnameAsFQDN and hostnameOverride, read from inside the container with `sandbox
exec` (and the pod's events from its record). The expected text is written out here from the
kubelet's and containerd's formats, not computed by the module under test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s, namespace: %(namespace)s}
spec:
  terminationGracePeriodSeconds: 2
%(spec)s
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
"""
LOCALHOST = (
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def node_resolv_lines() -> list[str]:
    """What containerd writes from the node's resolv.conf: its search, nameserver and options lines
    (the last search/options line wins, comments dropped)."""
    servers, search, options = [], "", ""
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        words = line.split()
        if words and words[0] == "nameserver" and len(words) > 1:
            servers.append(f"nameserver {words[1]}")
        elif words and words[0] == "search":
            search = " ".join(["search", *(w.rstrip(".") for w in words[1:])])
        elif words and words[0] == "options":
            options = line.strip()
    return [line for line in [search, *servers, options] if line]


def start(sbx: Sandbox, name: str, spec: str, namespace: str = "default") -> Any:
    indented = "".join(f"  {line}\n" for line in spec.strip().splitlines())
    proc = sbx.start(sbx.manifest(POD % {"name": name, "namespace": namespace, "spec": indented.rstrip()}), "-q")
    sbx.wait_for(lambda: _running(sbx, name, namespace), message=f"pod {name} running")
    return proc


def _running(sbx: Sandbox, name: str, namespace: str) -> bool:
    state = sbx.state(name, namespace)
    return bool(state and any("running" in c.get("state", {})
                              for c in state["status"].get("containerStatuses", [])))


def inside(sbx: Sandbox, name: str, script: str, namespace: str = "default") -> str:
    result = sbx.run("-n", namespace, "exec", name, "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cluster_first_pod_with_subdomain_fqdn_and_aliases(sbx: Sandbox) -> None:
    proc = start(sbx, "web", """
hostname: web
subdomain: sub
setHostnameAsFQDN: true
hostAliases:
- {ip: 10.1.2.3, hostnames: [foo.local, bar.local]}
""", namespace="team")
    fqdn = "web.sub.team.svc.cluster.local"
    started = sbx.state("web", "team")
    assert started is not None
    ip = started["status"]["podIP"]  # the pod network's address: its FQDN and hostname
    assert inside(sbx, "web", "cat /etc/hosts", "team") == (
        LOCALHOST + f"{ip}\t{fqdn}\tweb\n"
        + "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n")
    assert inside(sbx, "web", "hostname; cat /etc/hostname; echo $HOSTNAME", "team").split() == [fqdn] * 3
    # No cluster DNS: the node's config, and the kubelet's warning on the pod.
    assert inside(sbx, "web", "cat /etc/resolv.conf", "team").splitlines() == node_resolv_lines()
    state = sbx.state("web", "team")
    assert state is not None
    missing = [e for e in state["events"] if e["reason"] == "MissingClusterDNS"]
    assert len(missing) == 1 and missing[0]["type"] == "Warning"
    assert missing[0]["message"].startswith(f'pod: "web_team({state["uid"]})". kubelet does not have ClusterDNS IP')
    sbx.stop(proc)


def test_dns_policy_none_writes_only_the_dns_config(sbx: Sandbox) -> None:
    proc = start(sbx, "none", """
dnsPolicy: None
dnsConfig:
  nameservers: [192.0.2.53, 2001:db8::53]
  searches: [a.example, b.example.]
  options: [{name: ndots, value: "2"}, {name: edns0}]
""")
    assert inside(sbx, "none", "cat /etc/resolv.conf") == (
        "search a.example b.example.\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:2 edns0\n")
    assert inside(sbx, "none", "hostname") == "none\n"
    state = sbx.state("none")
    assert state is not None and not [e for e in state["events"] if e["reason"] == "MissingClusterDNS"]
    sbx.stop(proc)


def test_default_policy_appends_dns_config_and_trims_nameservers(sbx: Sandbox) -> None:
    proc = start(sbx, "dflt", """
dnsPolicy: Default
dnsConfig:
  nameservers: [192.0.2.1, 192.0.2.2, 192.0.2.3]
  searches: [extra.example]
  options: [{name: timeout, value: "1"}]
""")
    node = node_resolv_lines()
    node_servers = [line.split()[1] for line in node if line.startswith("nameserver ")]
    servers = (node_servers + ["192.0.2.1", "192.0.2.2", "192.0.2.3"])[:3]
    lines = inside(sbx, "dflt", "cat /etc/resolv.conf").splitlines()
    assert [line for line in lines if line.startswith("nameserver ")] == [f"nameserver {s}" for s in servers]
    node_search = [line.split()[1:] for line in node if line.startswith("search ")]
    assert lines[0] == " ".join(["search", *(node_search[0] if node_search else []), "extra.example"])
    assert lines[-1].startswith("options ") and lines[-1].endswith("timeout:1")
    state = sbx.state("dflt")
    assert state is not None
    forming = [e for e in state["events"] if e["reason"] == "DNSConfigForming"]
    assert len(forming) == 1 and forming[0]["message"].endswith(" ".join(servers))
    sbx.stop(proc)


def test_host_network_pod_gets_the_nodes_hosts_file_and_aliases(sbx: Sandbox) -> None:
    proc = start(sbx, "onhost", """
hostNetwork: true
hostAliases:
- {ip: 10.9.9.9, hostnames: [alias.local]}
""")
    node_hosts = Path("/etc/hosts").read_text()
    assert inside(sbx, "onhost", "cat /etc/hosts") == (
        "# Kubernetes-managed hosts file (host network).\n" + node_hosts
        + "\n# Entries added by HostAliases.\n10.9.9.9\talias.local\n")
    assert inside(sbx, "onhost", "hostname") == os.uname().nodename + "\n"
    # ClusterFirst on the host network is Default: the node's file, no MissingClusterDNS.
    assert inside(sbx, "onhost", "cat /etc/resolv.conf").splitlines() == node_resolv_lines()
    state = sbx.state("onhost")
    assert state is not None and not [e for e in state["events"] if e["reason"] == "MissingClusterDNS"]
    sbx.stop(proc)


def test_hostname_override_is_the_hostname(sbx: Sandbox) -> None:
    proc = start(sbx, "over", "hostname: web\nsubdomain: sub\nhostnameOverride: www.example.com")
    assert inside(sbx, "over", "hostname; cat /etc/hostname").split() == ["www.example.com"] * 2
    state = sbx.state("over")
    assert state is not None
    # hostnameOverride replaces the hostname and the subdomain's FQDN in the pod IP's line
    assert inside(sbx, "over", "cat /etc/hosts") == LOCALHOST + f"{state['status']['podIP']}\twww.example.com\n"
    sbx.stop(proc)


def test_an_fqdn_too_long_for_the_kernel_is_refused_before_the_pod_starts(sbx: Sandbox) -> None:
    manifest = sbx.manifest(POD % {"name": "long", "namespace": "default",
                                   "spec": f"  hostname: {'h' * 40}\n  subdomain: sub\n  setHostnameAsFQDN: true"})
    result = sbx.run("run", str(manifest))
    assert result.returncode == 1, result.stderr
    assert "is too long (64 characters is the max, 70 characters requested)" in result.stderr
    assert sbx.state("long") is None
