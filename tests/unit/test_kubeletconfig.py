"""The agent's KubeletConfiguration file and flags (sandbox/agent/kubeletconfig.py): the fields read,
the kubelet's defaults, refusals and warnings naming the field, durations, and flags over the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.agent.kubeletconfig import (
    AgentConfig,
    AgentFlags,
    agent_config,
    node_name,
    parse_header_flags,
)
from sandbox.errors import SpecError, UsageError

HEAD = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


def write(tmp_path: Path, body: str, name: str = "kubelet.yaml") -> str:
    path = tmp_path / name
    path.write_text(HEAD + body)
    return str(path)


def from_file(tmp_path: Path, body: str) -> AgentConfig:
    return agent_config(AgentFlags(config=write(tmp_path, body)))


def refusal(tmp_path: Path, body: str) -> str:
    with pytest.raises(SpecError) as info:
        from_file(tmp_path, body)
    return str(info.value)


def test_defaults_are_the_kubelets() -> None:
    config = agent_config(AgentFlags())
    assert config.file_check_frequency == 20.0 and config.http_check_frequency == 20.0
    assert config.container_log_max_size == 10 * 1024 * 1024 and config.container_log_max_files == 5
    assert config.pod_pids_limit == 4096  # the project's default (pod/cgroups.py), not the kubelet's -1
    assert config.max_pods == 110
    assert config.static_pod_path == "" and config.manifest_url == "" and config.manifest_url_header == ()


def test_every_honoured_field_is_read(tmp_path: Path) -> None:
    config = from_file(tmp_path, """\
staticPodPath: /etc/kubernetes/manifests
staticPodURL: https://example.test/pods.yaml
staticPodURLHeader:
  Authorization: ["Bearer abc"]
  X-Multi: [one, two]
fileCheckFrequency: 1m30s
httpCheckFrequency: 500ms
podPidsLimit: 1024
containerLogMaxSize: 5Mi
containerLogMaxFiles: 3
maxPods: 20
""")
    assert config.static_pod_path == "/etc/kubernetes/manifests"
    assert config.manifest_url == "https://example.test/pods.yaml"
    assert config.manifest_url_header == (("Authorization", ("Bearer abc",)), ("X-Multi", ("one", "two")))
    assert config.file_check_frequency == 90.0 and config.http_check_frequency == 0.5
    assert config.pod_pids_limit == 1024
    assert config.container_log_max_size == 5 * 1024 * 1024 and config.container_log_max_files == 3
    assert config.max_pods == 20
    assert config.warnings == ()


def test_empty_static_pod_sources_are_unset(tmp_path: Path) -> None:
    """The kubelet's defaults are "" (no source), so a file may spell them out, as --manifest-url ""."""
    config = from_file(tmp_path, 'staticPodPath: ""\nstaticPodURL: ""\n')
    assert config.static_pod_path == "" and config.manifest_url == ""


def test_json_file_and_unlimited_pids(tmp_path: Path) -> None:
    path = tmp_path / "kubelet.json"
    path.write_text('{"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", '
                    '"podPidsLimit": -1, "staticPodPath": "manifests"}')
    config = agent_config(AgentFlags(config=str(path)))
    assert config.pod_pids_limit is None
    # a relative path in the file is relative to the file's directory (the kubelet's resolveRelativePaths)
    assert config.static_pod_path == str(tmp_path / "manifests")


@pytest.mark.parametrize(("body", "expected"), [
    ("fileCheckFrequency: abc\n", 'fileCheckFrequency: invalid duration "abc"'),
    ("httpCheckFrequency: 20\n", "httpCheckFrequency: Invalid value: 20: must be a string"),
    ("fileCheckFrequency: 0s\n", 'fileCheckFrequency: invalid duration "0s": must be above zero'),
    ("fileCheckFrequency: 10x\n", 'fileCheckFrequency: invalid duration "10x"'),
    ("podPidsLimit: 0\n", "podPidsLimit: Invalid value: 0: must be a positive number or -1"),
    ("podPidsLimit: '5'\n", 'podPidsLimit: Invalid value: "5": must be an integer'),
    ("containerLogMaxFiles: 1\n", "containerLogMaxFiles: Invalid value: 1: must be at least 2"),
    ("maxPods: 0\n", "maxPods: Invalid value: 0: must be at least 1"),
    ("maxPods: '5'\n", 'maxPods: Invalid value: "5": must be an integer'),
    ("containerLogMaxSize: lots\n", 'containerLogMaxSize: Invalid value: "lots"'),
    ("staticPodURL: file:///etc/passwd\n", "staticPodURL: Invalid value: \"file:///etc/passwd\": must be an "
                                           "http:// or https:// URL"),
    ("staticPodURLHeader: {X-A: one}\n", 'staticPodURLHeader: Invalid value: "one": header "X-A" must have a list'),
    ("staticPodURLHeader: {'X A': [one]}\n", 'staticPodURLHeader: Invalid value: "X A": not a valid HTTP header'),
    ('staticPodURLHeader: {X-A: ["a\\r\\nInjected: 1"]}\n', "holds a line break or NUL"),
])
def test_bad_values_name_the_field(tmp_path: Path, body: str, expected: str) -> None:
    message = refusal(tmp_path, body)
    assert expected in message
    assert message.startswith(str(tmp_path / "kubelet.yaml") + ": ")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    message = refusal(tmp_path, "fileCheckFrequency: abc\npodPidsLimit: 0\nclusterDNS: [10.0.0.10]\n")
    assert len(message.splitlines()) == 3


def test_unsupported_and_unknown_fields_are_refused(tmp_path: Path) -> None:
    assert "clusterDNS: Forbidden: not supported by the sandbox agent" in refusal(tmp_path, "clusterDNS: [1.2.3.4]\n")
    assert "seccompDefault: Forbidden" in refusal(tmp_path, "seccompDefault: true\n")
    assert 'staticPodPathx: Forbidden: unknown field "staticPodPathx"' in refusal(tmp_path, "staticPodPathx: /x\n")


def test_tutorial_names_are_refused_with_the_kubelets_name(tmp_path: Path) -> None:
    # The seed notes write manifestURL/manifestURLHeader; the kubelet's fields are staticPodURL/Header.
    message = refusal(tmp_path, "manifestURL: http://example.test/\nmanifestURLHeader: {A: [b]}\n")
    assert "manifestURL: Forbidden: not a KubeletConfiguration field: the kubelet's field is staticPodURL" in message
    assert "--manifest-url is the command-line flag" in message
    assert "manifestURLHeader: Forbidden" in message and "staticPodURLHeader" in message


def test_server_fields_are_warned_not_refused(tmp_path: Path) -> None:
    config = from_file(tmp_path, "address: 0.0.0.0\nauthentication: {anonymous: {enabled: false}}\n"
                                 "syncFrequency: 1m\n")
    assert [w.split(": ")[1] for w in config.warnings] == ["address", "authentication", "syncFrequency"]
    assert all("not read" in w for w in config.warnings)


@pytest.mark.parametrize(("text", "expected"), [
    ("kind: KubeletConfiguration\n", "apiVersion: Required value"),
    ("apiVersion: kubelet.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n",
     'apiVersion: Unsupported value: "kubelet.config.k8s.io/v1alpha1"'),
    ("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: Pod\n", 'kind: Unsupported value: "Pod"'),
    ("- a\n- b\n", "must be a KubeletConfiguration object"),
    (HEAD + "---\n" + HEAD, "2 YAML documents: expected exactly one"),
    (HEAD + "podPidsLimit: 1\npodPidsLimit: 2\n", "Duplicate value"),
    ("", "Required value: the input holds no document"),
])
def test_the_document_itself(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=expected):
        agent_config(AgentFlags(config=str(path)))


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="nope.yaml: <file>: cannot read"):
        agent_config(AgentFlags(config=str(tmp_path / "nope.yaml")))


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "staticPodPath: /from/file\nfileCheckFrequency: 1m\nhttpCheckFrequency: 2m\n"
                           "staticPodURL: http://file.test/\nstaticPodURLHeader: {A: [file], B: [file]}\n"
                           "podPidsLimit: 100\nmaxPods: 50\n")
    config = agent_config(AgentFlags(config=path, pod_manifest_path="rel/dir", file_check_frequency="5s",
                                     manifest_url_header=("A:flag",), pod_pids_limit="-1", max_pods="7"))
    assert config.max_pods == 7
    assert config.static_pod_path == os.path.abspath("rel/dir")  # a flag's relative path: from the cwd
    assert config.file_check_frequency == 5.0 and config.http_check_frequency == 120.0
    assert config.manifest_url == "http://file.test/"
    assert config.manifest_url_header == (("A", ("flag",)),)  # the flag replaces the file's whole map
    assert config.pod_pids_limit is None


@pytest.mark.parametrize(("flags", "expected"), [
    (AgentFlags(file_check_frequency="abc"), '--file-check-frequency: invalid duration "abc"'),
    (AgentFlags(http_check_frequency="-1s"), '--http-check-frequency: invalid duration "-1s"'),
    (AgentFlags(pod_pids_limit="many"), "--pod-pids-limit: Invalid value: 'many': must be an integer"),
    (AgentFlags(container_log_max_files="1"), "--container-log-max-files: Invalid value: 1"),
    (AgentFlags(max_pods="-3"), "--max-pods: Invalid value: -3: must be at least 1"),
    (AgentFlags(container_log_max_size="0"), "--container-log-max-size: "),
    (AgentFlags(manifest_url="ftp://x/"), "--manifest-url: Invalid value"),
    (AgentFlags(manifest_url_header=("novalue",)), "malformed pair, expect string:string"),
    (AgentFlags(manifest_url_header=("bad name:v",)), "not a valid HTTP header name"),
])
def test_bad_flags_name_the_flag(flags: AgentFlags, expected: str) -> None:
    with pytest.raises(UsageError) as info:
        agent_config(flags)
    assert expected in str(info.value)


def test_header_flags_as_the_kubelet_parses_them() -> None:
    # cliflag.ColonSeparatedMultimapStringString: commas split pairs, the first colon splits a pair
    assert parse_header_flags(("a:hello,b:again,c:world", "b:beautiful", " d : x:y ")) == (
        ("a", ("hello",)), ("b", ("again", "beautiful")), ("c", ("world",)), ("d", ("x:y",)))
    assert parse_header_flags(("",)) == ()


def test_node_name_is_the_lowercased_hostname_unless_overridden() -> None:
    assert node_name() == os.uname().nodename.strip().lower()
    assert node_name("  Node-1.Example ") == "node-1.example"
    with pytest.raises(UsageError, match="empty hostname"):
        node_name("   ")
