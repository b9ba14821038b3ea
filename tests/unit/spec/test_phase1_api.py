"""The API the runtime imports: load, defaults, messages, $(VAR) and argv."""

from __future__ import annotations

import pytest

from sandbox.errors import SpecError
from sandbox.spec.defaults import image_pull_policy
from sandbox.spec.expand import container_argv, container_environment, expand
from sandbox.spec.load import load_pod_file, load_pod_text, pod_to_dict
from sandbox.spec.model import Container, EnvVar, EnvVarSource, ObjectFieldSelector

BASE = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: busybox:1.36
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_pod_text(text)
    return [str(e) for e in info.value.errors]


def test_minimal_pod_is_defaulted() -> None:
    pod = load_pod_text(BASE)
    assert pod.metadata.name == "web"
    assert pod.metadata.namespace == "default"
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.dns_policy == "ClusterFirst"
    c = pod.spec.containers[0]
    assert c.image_pull_policy == "IfNotPresent"
    assert c.termination_message_path == "/dev/termination-log"
    assert c.termination_message_policy == "File"
    assert c.command == () and c.env == ()


def test_json_is_accepted() -> None:
    pod = load_pod_text('{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},'
                        '"spec":{"containers":[{"name":"c","image":"nginx"}]}}')
    assert pod.spec.containers[0].image_pull_policy == "Always"


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        ("registry:5000/busybox", "Always"),
        ("registry:5000/busybox:1.0", "IfNotPresent"),
        ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
        ("busybox:latest@sha256:" + "a" * 64, "Always"),
        ("busybox:1.0@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_image_pull_policy_rule(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_reference_messages() -> None:
    text = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  restartPolicy: Sometimes
  containers:
  - name: app
    ports: [{containerPort: 70000}]
  - name: app
    image: nginx
    foo: 1
"""
    assert errors_of(text) == [
        'spec.containers[1].foo: unknown field "foo"',
        "spec.containers[0].image: Required value",
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        'spec.containers[1].name: Duplicate value: "app"',
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
    ]


def test_wrong_type_names_path_and_type() -> None:
    (msg,) = errors_of(BASE + "    env: [{name: A, value: yes}]\n")
    assert msg == "spec.containers[0].env[0].value: Invalid value: true: must be of type string, not boolean"


def test_no_pod_and_two_pods_are_errors_naming_the_source() -> None:
    with pytest.raises(SpecError) as info:
        load_pod_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", source="x.yaml")
    assert str(info.value).startswith("x.yaml: kind: Required value: no Pod document")
    with pytest.raises(SpecError) as info:
        load_pod_text(BASE + "---\n" + BASE, source="two.yaml")
    assert "2 Pod documents" in str(info.value)


def test_load_pod_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pod.yaml"
    path.write_text(BASE)
    assert load_pod_file(str(path)).spec.containers[0].name == "app"
    with pytest.raises(SpecError) as info:
        load_pod_file(str(tmp_path / "missing.yaml"))
    assert str(tmp_path / "missing.yaml") in str(info.value)


def test_pod_to_dict_round_trips() -> None:
    pod = load_pod_text(BASE + "    resources: {limits: {cpu: 500m}}\n    ports: [{containerPort: 80}]\n")
    d = pod_to_dict(pod)
    assert d["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m"}, "requests": {"cpu": "500m"}}
    assert d["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert "stdin" not in d["spec"]["containers"][0]
    import json

    assert load_pod_text(json.dumps(d)) == pod


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "a"),
        ("x$(A)y$(B)", "xaybb"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$", "$"),
        ("a$", "a$"),
        ("$x", "$x"),
        ("$(A", "$(A"),
        ("$(A)$(", "a$("),
        ("$()", "$()"),
        ("no refs", "no refs"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "a", "B": "bb"}) == expected


def test_container_environment_sees_only_earlier_entries() -> None:
    c = Container(name="c", env=(
        EnvVar("B", "$(A)-b"),
        EnvVar("A", "a"),
        EnvVar("C", "$(A)-$(B)"),
        EnvVar("P", value_from=EnvVarSource(field_ref=ObjectFieldSelector("metadata.name"))),
        EnvVar("D", "$(P)"),
        EnvVar("E", ""),
    ))
    assert container_environment(c) == [("B", "$(A)-b"), ("A", "a"), ("C", "a-$(A)-b"), ("D", "$(P)"), ("E", "")]


@pytest.mark.parametrize(
    ("command", "args", "argv"),
    [
        ((), (), ["/ep", "ep-arg", "cmd"]),
        (("sh", "-c"), (), ["sh", "-c"]),
        ((), ("$(X)",), ["/ep", "ep-arg", "x"]),
        (("echo",), ("$(X)", "$$(X)"), ["echo", "x", "$(X)"]),
    ],
)
def test_container_argv_table(command: tuple[str, ...], args: tuple[str, ...], argv: list[str]) -> None:
    c = Container(name="c", command=command, args=args)
    assert container_argv(c, ["/ep", "ep-arg"], ["cmd"], {"X": "x"}) == argv
