"""The pieces of the pod network that are pure logic: the rtnetlink attribute encoding, veth names,
hostPort collection, the downward API's address fields and status's podIP/hostIP shapes, the
tear-down record's JSON round trip."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sandbox.errors import SpecError
from sandbox.network.bridge import veth_name
from sandbox.network.rtnl import (
    RTM_NEWADDR,
    RTM_NEWLINK,
    address_msg,
    attr,
    nested,
    up_msg,
)
from sandbox.pod.network import (
    HostPort,
    NetworkOptions,
    host_ports,
    network_record,
    refuse_unpublishable_ports,
)
from sandbox.pod.teardown import Network, from_json, to_json
from sandbox.process.downward import Addresses, field_value
from sandbox.spec.load import load_pod_text
from sandbox.status import PodPhase
from sandbox.supervisor.snapshot import status_json


def test_rtattr_lengths_and_padding() -> None:
    assert attr(3, b"eth0\0") == struct.pack("=HH", 9, 3) + b"eth0\0" + b"\0\0\0"
    assert attr(4, struct.pack("=I", 1500)) == struct.pack("=HHI", 8, 4, 1500)
    inner = attr(1, b"veth")
    assert nested(18, inner) == struct.pack("=HH", 4 + len(inner), 18 | 0x8000) + inner


def test_batched_messages_carry_what_the_single_requests_did() -> None:
    """Rtnl.batch's units: type, create/exclusive flags, fixed header and attributes."""
    kind, flags, payload = address_msg(7, "10.89.0.2", 16)
    assert (kind, flags) == (RTM_NEWADDR, 0x400 | 0x200)
    raw = bytes([10, 89, 0, 2])
    assert payload == struct.pack("=BBBBI", 2, 16, 0, 0, 7) + attr(2, raw) + attr(1, raw)
    assert up_msg(7) == (RTM_NEWLINK, 0, struct.pack("=BxHiII", 0, 0, 7, 1, 1))


def test_veth_names_fit_ifnamsiz_and_derive_from_the_uid() -> None:
    name = veth_name("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    assert name == "sbv0f1e2d3c4b5a" and len(name) <= 15


POD = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  initContainers:
  - name: init
    image: busybox
    ports: [{containerPort: 53, hostPort: 5353, protocol: UDP}]
  containers:
  - name: app
    image: busybox
    ports:
    - {containerPort: 80, hostPort: 8080}
    - {containerPort: 443, hostPort: 8443, hostIP: 127.0.0.1}
    - {containerPort: 9000, hostPort: 9000, hostIP: 0.0.0.0}
    - {containerPort: 81}
"""


def test_host_ports_of_every_container_with_the_any_address_as_empty() -> None:
    pod = load_pod_text(POD)
    assert host_ports(pod) == [
        HostPort("UDP", "", 5353, 53),
        HostPort("TCP", "", 8080, 80),
        HostPort("TCP", "127.0.0.1", 8443, 443),
        HostPort("TCP", "", 9000, 9000),
    ]


def test_downward_address_fields() -> None:
    pod = load_pod_text(POD)
    both = Addresses(("10.89.0.7", "fd00::7"), ("192.0.2.2",))
    assert field_value(pod, "status.podIP", both) == "10.89.0.7"
    assert field_value(pod, "status.podIPs", both) == "10.89.0.7,fd00::7"
    assert field_value(pod, "status.hostIP", both) == "192.0.2.2"
    assert field_value(pod, "status.hostIPs", both) == "192.0.2.2"
    assert field_value(pod, "status.podIP") == ""  # --network none


def test_status_carries_pod_and_host_ips_in_the_apis_order() -> None:
    status = status_json(PodPhase.RUNNING, [], 0.0, [], [], addresses=Addresses(("10.89.0.7",), ("192.0.2.2",)))
    assert list(status) == ["phase", "conditions", "hostIP", "hostIPs", "podIP", "podIPs", "startTime",
                            "containerStatuses"]
    assert status["podIPs"] == [{"ip": "10.89.0.7"}] and status["hostIPs"] == [{"ip": "192.0.2.2"}]
    assert "podIP" not in status_json(PodPhase.RUNNING, [], 0.0, [], [], addresses=Addresses())


def test_network_records_round_trip_through_the_journal_format() -> None:
    rec = network_record("lease", bridge="sandbox0", subnet="10.89.0.0/16", owner="u default/web")
    assert isinstance(rec, Network)
    data = to_json(rec)
    assert data == {"kind": "network", "what": "lease",
                    "spec": {"bridge": "sandbox0", "subnet": "10.89.0.0/16", "owner": "u default/web"}}
    assert from_json(data) == rec
    assert from_json({"kind": "network", "what": "lease", "spec": "not a mapping"}) is None


def test_host_ports_without_a_network_or_with_sctp_are_refused_by_field() -> None:
    pod = load_pod_text(POD)
    refuse_unpublishable_ports(pod, NetworkOptions())
    with pytest.raises(SpecError) as e:
        refuse_unpublishable_ports(pod, NetworkOptions("none"))
    assert [err.path for err in e.value.errors] == [
        "spec.initContainers[0].ports[0].hostPort", "spec.containers[0].ports[0].hostPort",
        "spec.containers[0].ports[1].hostPort", "spec.containers[0].ports[2].hostPort"]
    assert "(--network none)" in str(e.value)
    sctp = load_pod_text(POD.replace("protocol: UDP", "protocol: SCTP"))
    with pytest.raises(SpecError, match=r"spec.initContainers\[0\].ports\[0\].protocol: Unsupported value"):
        refuse_unpublishable_ports(sctp, NetworkOptions())
    host = load_pod_text(POD.replace("spec:\n", "spec:\n  hostNetwork: true\n", 1).replace("hostPort: 5353", "hostPort: 53")
                         .replace("hostPort: 8080", "hostPort: 80").replace("hostPort: 8443", "hostPort: 443"))
    refuse_unpublishable_ports(host, NetworkOptions("none"))


def test_network_records_sort_keys_at_every_level_without_importing_json() -> None:
    """Equal specs give equal text whatever their key order (records compare by it); the text is
    json.dumps(sort_keys=True)'s, compact; and a bridge pod's records do not import json (~1.3 ms)."""
    import json
    import subprocess
    import sys

    spec = {"b": 1, "a": {"d": [{"z": 1, "y": "é"}], "c": None}}
    text = network_record("cni", cache=spec).spec
    assert text == json.dumps({"cache": spec}, sort_keys=True, separators=(",", ":"))
    assert network_record("cni", cache={"a": spec["a"], "b": 1}) == network_record("cni", cache=spec)
    code = ("import sys; from sandbox.pod.network import network_record; "
            "network_record('lease', bridge='sandbox0', subnet='10.89.0.0/16', owner='u default/web'); "
            "print('json' in sys.modules)")
    repo = str(Path(__file__).resolve().parents[2])
    assert subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                          cwd=repo).stdout == "False\n"
