"""`sandbox inspect`'s network: the links of pause's namespace as the kernel reports them,
checked against `ip` run in that namespace from outside, and the veth's host end on the bridge."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: netp}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: c, image: busybox, command: ["sleep", "600"]}
"""


def ip_json(*args: str) -> list[dict[str, object]]:
    return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout)


@pytest.mark.parametrize("mode", ["bridge", "none"])
def test_inspect_shows_the_pods_links_and_route(sbx: Sandbox, mode: str) -> None:
    proc = sbx.start(sbx.manifest(POD), "--network", mode)
    try:
        state = sbx.wait_running("netp")
        report = json.loads(sbx.run("inspect", "pod", "netp", "-o", "json", check=True).stdout)
        network = report["network"]
        pause = str(state["pause"]["pid"])
        outside = subprocess.run(["nsenter", "-t", pause, "-n", "ip", "-j", "addr"], capture_output=True,
                                 text=True, check=True)
        seen = {link["ifname"]: link for link in json.loads(outside.stdout)}
        shown = {link["name"]: link for link in network["interfaces"]}
        assert set(shown) == set(seen)
        for name, link in shown.items():
            assert link["up"] == ("UP" in seen[name]["flags"])
            assert sorted(link["addresses"]) == sorted(f"{a['local']}/{a['prefixlen']}" for a in seen[name]["addr_info"])
        text = sbx.run("inspect", "pod", "netp", check=True).stdout
        if mode == "none":
            assert set(shown) == {"lo"} and network["defaultRoute"] is None and network["podIPs"] == []
            assert "no default route" in text
            return
        eth0 = shown["eth0"]
        assert network["podIPs"] and f"{network['podIPs'][0]}/16" in eth0["addresses"]
        host_end = eth0["hostSide"]["name"]
        (host_link,) = ip_json("link", "show", host_end)
        assert host_link.get("master") == eth0["hostSide"]["bridge"]
        routes = json.loads(subprocess.run(["nsenter", "-t", pause, "-n", "ip", "-j", "route", "show", "default"],
                                           capture_output=True, text=True, check=True).stdout)
        assert network["defaultRoute"] == {"via": routes[0]["gateway"], "dev": "eth0"}
        assert f"veth, host end {host_end} on bridge {eth0['hostSide']['bridge']}" in text
    finally:
        sbx.stop(proc)
