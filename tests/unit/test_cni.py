"""The CNI runtime side (sandbox/network/cni.py) without root: configuration loading and its
messages, and the plugin protocol against fake plugins (small Python scripts in tmp dirs that
record their environment and stdin and answer as their configuration tells them)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.network.cni import Attachment, CniConfig, CniError, CniNetwork, CniResult, load_network

FAKE = f"""#!{sys.executable}
import json, os, sys, time
conf = json.load(sys.stdin)
with open(conf["log"], "a") as f:
    env = {{k: v for k, v in os.environ.items() if k not in ("LC_CTYPE",)}}
    f.write(json.dumps({{"type": conf["type"], "env": env, "conf": conf}}) + "\\n")
cmd = os.environ["CNI_COMMAND"]
time.sleep(conf.get("sleep", 0))
if cmd in conf.get("fail", {{}}):
    out = conf["fail"][cmd]
    sys.stdout.write(out if isinstance(out, str) else json.dumps(out))
    sys.stderr.write("some noise\\nlast words\\n")
    sys.exit(1)
if cmd == "ADD":
    result = conf.get("prevResult") or conf.get("result")
    sys.stdout.write(conf["raw"] if "raw" in conf else json.dumps(result))
"""

RESULT = {"cniVersion": "1.0.0",
          "interfaces": [{"name": "br0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/proc/1/ns/net"}],
          "ips": [{"interface": 0, "address": "10.0.0.1/24"},
                  {"interface": 2, "address": "fd00::5/64"},
                  {"interface": 2, "address": "10.0.0.5/24", "gateway": "10.0.0.1"}]}


class Fake:
    def __init__(self, tmp: Path) -> None:
        self.conf_dir = tmp / "net.d"
        self.conf_dir.mkdir()
        self.bin_dir = tmp / "bin"
        self.bin_dir.mkdir()
        self.log = tmp / "calls.jsonl"
        self.config = CniConfig(conf_dir=self.conf_dir, bin_dirs=(tmp / "missing", self.bin_dir), timeout=5)

    def plugin(self, name: str) -> None:
        path = self.bin_dir / name
        path.write_text(FAKE)
        path.chmod(0o755)

    def write(self, plugins: list[dict[str, Any]], version: str = "1.0.0", **extra: Any) -> CniNetwork:
        for p in plugins:
            p.setdefault("log", str(self.log))
            self.plugin(p["type"])
        data = {"cniVersion": version, "name": "testnet", "plugins": plugins, **extra}
        (self.conf_dir / "10-test.conflist").write_text(json.dumps(data))
        return load_network(self.config)

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path)


ATT = Attachment("abc123", "/proc/1/ns/net", pod_namespace="default", pod_name="web", pod_uid="u-1",
                 port_mappings=({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},))


# --- loading ---------------------------------------------------------------------------------

def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(CniError, match=r"^CNI: configuration directory .*/nope does not exist$"):
        load_network(CniConfig(conf_dir=tmp_path / "nope"))


def test_no_configuration(fake: Fake) -> None:
    (fake.conf_dir / "README").write_text("x")
    (fake.conf_dir / "00.conflist").mkdir()  # a directory is not a configuration
    with pytest.raises(CniError, match=r"no network configuration \(\*\.conflist, \*\.conf, \*\.json\) in "):
        load_network(fake.config)


def test_first_file_by_name_wins(fake: Fake) -> None:
    fake.plugin("a")
    fake.plugin("b")
    (fake.conf_dir / "20-b.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "second", "plugins": [{"type": "b"}]}))
    (fake.conf_dir / "10-a.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "first", "type": "a"}))
    (fake.conf_dir / "00-ignored.txt").write_text("{")
    network = load_network(fake.config)
    assert (network.name, network.cni_version, network.source.name) == ("first", "0.4.0", "10-a.conf")
    assert network.plugins == [{"cniVersion": "0.4.0", "name": "first", "type": "a"}]  # a .conf is a list of one


@pytest.mark.parametrize(("text", "message"), [
    ('{"name": "x",', r"10-test.conflist: not valid JSON: .*line 1 column 14"),
    ("[1]", r"10-test.conflist: must be a JSON object"),
    ('{"cniVersion": "1.0.0", "plugins": [{"type": "a"}]}', r"name: must be letters, .* got None"),
    ('{"cniVersion": "1.0.0", "name": "-x", "plugins": [{"type": "a"}]}', r"name: .* got '-x'"),
    ('{"cniVersion": "1.0", "name": "x", "plugins": [{"type": "a"}]}', r"cniVersion: must be a version .* '1.0'"),
    ('{"name": "x", "plugins": [{"type": "a"}]}', r"cniVersion: .* got None"),
    ('{"cniVersion": "1.0.0", "name": "x", "plugins": []}', r"plugins: must be a non-empty list"),
    ('{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "a"}, 3]}', r"plugins\[1\]: must be a JSON object"),
    ('{"cniVersion": "1.0.0", "name": "x", "plugins": [{"bridge": "b"}]}', r"plugins\[0\]\.type: must name .* None"),
    ('{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "../a"}]}', r"plugins\[0\]\.type: .* '../a'"),
    ('{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "a", "capabilities": []}]}',
     r"plugins\[0\]\.capabilities: must be a JSON object"),
    ('{"cniVersion": "1.0.0", "name": "x", "disableCheck": "yes", "plugins": [{"type": "a"}]}',
     r"disableCheck: must be true or false"),
    ('{"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "a"}, {"type": "gone"}]}',
     r"plugins\[1\]\.type: plugin 'gone' not found in .*/missing, .*/bin$"),
])
def test_bad_configuration(fake: Fake, text: str, message: str) -> None:
    fake.plugin("a")
    (fake.conf_dir / "10-test.conflist").write_text(text)
    with pytest.raises(CniError, match=message) as caught:
        load_network(fake.config)
    assert str(caught.value).startswith(f"CNI configuration {fake.conf_dir}/10-test.conflist: ")


def test_single_plugin_conf_needs_a_type(fake: Fake) -> None:
    (fake.conf_dir / "10-x.json").write_text('{"cniVersion": "1.0.0", "name": "x"}')
    with pytest.raises(CniError, match=r"10-x.json: type: must name a plugin binary, got None"):
        load_network(fake.config)


def test_oversized_configuration(fake: Fake) -> None:
    (fake.conf_dir / "10-x.conf").write_text(" " * (2 << 20))
    with pytest.raises(CniError, match="larger than"):
        load_network(fake.config)


# --- the protocol ----------------------------------------------------------------------------

def test_add_chains_results_and_passes_the_spec_environment(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "x")  # the runtime's environment must not reach plugins
    network = fake.write([{"type": "main", "result": RESULT},
                          {"type": "ports", "capabilities": {"portMappings": True, "bandwidth": True}},
                          {"type": "tune"}])
    result = network.add(ATT)
    assert result.ips == ("10.0.0.5", "fd00::5")  # eth0's only (not the bridge's), IPv4 first
    assert result.raw == RESULT
    main, ports, tune = fake.calls()
    assert set(main["env"]) == {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS",
                                "CNI_PATH", "PATH"}
    assert main["env"]["CNI_COMMAND"] == "ADD" and main["env"]["CNI_NETNS"] == "/proc/1/ns/net"
    assert main["env"]["CNI_CONTAINERID"] == "abc123" and main["env"]["CNI_IFNAME"] == "eth0"
    assert main["env"]["CNI_PATH"] == f"{fake.config.bin_dirs[0]}:{fake.bin_dir}"
    assert main["env"]["CNI_ARGS"] == ("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
                                       "K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1")
    assert (main["conf"]["name"], main["conf"]["cniVersion"]) == ("testnet", "1.0.0")
    assert "prevResult" not in main["conf"] and "runtimeConfig" not in main["conf"]
    assert ports["conf"]["prevResult"] == RESULT
    assert ports["conf"]["runtimeConfig"] == {"portMappings": [dict(ATT.port_mappings[0])]}  # no bandwidth
    assert "runtimeConfig" not in tune["conf"]


def test_delete_runs_in_reverse_with_the_cached_result(fake: Fake) -> None:
    network = fake.write([{"type": "main"}, {"type": "ports", "capabilities": {"portMappings": True}}])
    network.delete(ATT, CniResult(("10.0.0.5",), RESULT))
    calls = fake.calls()
    assert [c["type"] for c in calls] == ["ports", "main"]
    assert all(c["env"]["CNI_COMMAND"] == "DEL" and c["conf"]["prevResult"] == RESULT for c in calls)
    assert calls[0]["conf"]["runtimeConfig"]["portMappings"][0]["hostPort"] == 8080


def test_delete_without_netns_or_result(fake: Fake) -> None:
    network = fake.write([{"type": "main"}])
    network.delete(Attachment("abc123", ""), None)
    (call,) = fake.calls()
    assert call["env"]["CNI_NETNS"] == "" and "prevResult" not in call["conf"]


def test_delete_before_0_4_0_gets_no_prev_result(fake: Fake) -> None:
    network = fake.write([{"type": "main"}], version="0.3.1")
    network.delete(ATT, CniResult(("10.0.0.5",), RESULT))
    assert "prevResult" not in fake.calls()[0]["conf"]


def test_delete_runs_every_plugin_and_reports_every_failure(fake: Fake) -> None:
    err = {"cniVersion": "1.0.0", "code": 11, "msg": "busy", "details": "try later"}
    network = fake.write([{"type": "a", "fail": {"DEL": err}}, {"type": "b"}, {"type": "c", "fail": {"DEL": err}}])
    with pytest.raises(CniError) as caught:
        network.delete(ATT, None)
    assert [c["type"] for c in fake.calls()] == ["c", "b", "a"]
    assert caught.value.plugin == "c" and caught.value.code == 11
    assert str(caught.value).endswith("plugin 'c' DEL: c: error 11: busy (try later); a: error 11: busy (try later)")


def test_plugin_error_object(fake: Fake) -> None:
    err = {"cniVersion": "1.0.0", "code": 7, "msg": "invalid network config", "details": "no bridge"}
    network = fake.write([{"type": "main", "result": RESULT}, {"type": "ports", "fail": {"ADD": err}}])
    with pytest.raises(CniError) as caught:
        network.add(ATT)
    e = caught.value
    assert (e.plugin, e.command, e.code, e.msg, e.details) == ("ports", "ADD", 7, "invalid network config", "no bridge")
    assert str(e) == (f"CNI configuration {fake.conf_dir}/10-test.conflist: plugin 'ports' ADD: "
                      "error 7: invalid network config (no bridge)")


def test_plugin_failure_without_error_object(fake: Fake) -> None:
    network = fake.write([{"type": "main", "fail": {"ADD": "panic: oops"}}])
    with pytest.raises(CniError, match=r"plugin 'main' ADD: exited with status 1 without an error object: last words$"):
        network.add(ATT)


def test_result_that_is_not_json(fake: Fake) -> None:
    network = fake.write([{"type": "main", "raw": "ok"}])
    with pytest.raises(CniError, match=r"plugin 'main' ADD: result is not JSON"):
        network.add(ATT)


@pytest.mark.parametrize(("result", "message"), [
    ({"ips": "10.0.0.5"}, "ips and interfaces must be lists"),
    ({"ips": [{"address": 5}]}, "bad ips entry"),
    ({"ips": [{"address": "10.0.0.300/24"}]}, "bad address '10.0.0.300/24'"),
])
def test_bad_result(fake: Fake, result: dict[str, Any], message: str) -> None:
    network = fake.write([{"type": "main", "result": result}])
    with pytest.raises(CniError, match=message):
        network.add(ATT)


def test_old_result_format(fake: Fake) -> None:
    network = fake.write([{"type": "main", "result": {"ip6": {"ip": "fd00::7/64"}, "ip4": {"ip": "10.1.0.7/16"}}}],
                         version="0.2.0")
    assert network.add(ATT).ips == ("10.1.0.7", "fd00::7")


def test_plugin_timeout(fake: Fake) -> None:
    network = fake.write([{"type": "main", "sleep": 30}])
    network.timeout = 0.5
    with pytest.raises(CniError, match=r"plugin 'main' ADD: timed out after 0.5 s \(killed\)"):
        network.add(ATT)


def test_plugin_removed_after_loading(fake: Fake) -> None:
    network = fake.write([{"type": "main"}])
    os.unlink(fake.bin_dir / "main")
    with pytest.raises(CniError, match=r"plugin 'main' DEL: not found in "):
        network.delete(ATT, None)


def test_check(fake: Fake) -> None:
    network = fake.write([{"type": "main"}, {"type": "ports"}])
    network.check(ATT, CniResult(("10.0.0.5",), RESULT))
    calls = fake.calls()
    assert [(c["type"], c["env"]["CNI_COMMAND"]) for c in calls] == [("main", "CHECK"), ("ports", "CHECK")]
    assert all(c["conf"]["prevResult"] == RESULT for c in calls)


def test_check_is_skipped_when_disabled(fake: Fake) -> None:
    network = fake.write([{"type": "main"}], disableCheck=True)
    network.check(ATT, CniResult((), RESULT))
    assert fake.calls() == []


def test_check_needs_0_4_0(fake: Fake) -> None:
    network = fake.write([{"type": "main"}], version="0.3.1")
    with pytest.raises(CniError, match=r"cniVersion 0.3.1 does not support CHECK"):
        network.check(ATT, CniResult((), RESULT))


@pytest.mark.parametrize(("attachment", "message"), [
    (Attachment("", "/x"), "container id ''"),
    (Attachment("a;b", "/x"), "container id 'a;b'"),
    (Attachment("abc", "/x", ifname="a" * 16), "interface name"),
    (Attachment("abc", "/x", ifname="a/b"), "interface name"),
    (Attachment("abc", "/x", pod_name="a;K8S_POD_UID=x"), "pod name .* cannot be passed in CNI_ARGS"),
    (Attachment("abc", ""), "ADD needs a network namespace path"),
])
def test_bad_attachment(fake: Fake, attachment: Attachment, message: str) -> None:
    network = fake.write([{"type": "main"}])
    with pytest.raises(CniError, match=message):
        network.add(attachment)
    assert fake.calls() == []


# --- the cache -------------------------------------------------------------------------------

def test_cache_round_trip(fake: Fake) -> None:
    network = fake.write([{"type": "main", "capabilities": {"portMappings": True}}], disableCheck=True)
    live = Attachment("abc123", "/proc/self/ns/net", pod_name="web", port_mappings=ATT.port_mappings)
    result = CniResult(("10.0.0.5",), RESULT)
    data = json.loads(json.dumps(network.to_cache(live, result)))
    network2, attachment2, result2 = CniNetwork.from_cache(data)
    assert (network2.name, network2.cni_version, network2.plugins, network2.source, network2.bin_dirs,
            network2.disable_check, network2.timeout) == (network.name, network.cni_version, network.plugins,
                                                          network.source, network.bin_dirs, True, 5.0)
    assert attachment2 == live and result2 == result


def test_cache_drops_a_netns_that_changed(fake: Fake) -> None:
    """A /proc/<pid>/ns/net path names another namespace once the pid is reused: DEL runs without it
    rather than deleting another pod's eth0."""
    network = fake.write([{"type": "main"}])
    data = network.to_cache(Attachment("abc123", "/proc/self/ns/net"), None)
    assert network.from_cache(data)[1].netns == "/proc/self/ns/net"
    data["attachment"]["netnsId"] = "1:2"
    assert network.from_cache(data)[1].netns == ""
    gone = network.to_cache(Attachment("abc123", "/proc/999999999/ns/net"), None)
    assert network.from_cache(gone)[1].netns == ""


def test_bad_cache(fake: Fake) -> None:
    with pytest.raises(CniError, match="bad cached network record: KeyError"):
        CniNetwork.from_cache({"network": {}})
