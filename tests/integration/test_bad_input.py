"""Bad input: one clear line naming the field or path, exit 2 (input) or 1 (runtime), nothing
left behind (the autouse leak check asserts the last part)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root


def pod(container: str, name: str = "bad") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - {container}
"""


def test_malformed_yaml(sbx: Sandbox) -> None:
    result = sbx.run("run", str(sbx.manifest("apiVersion: v1\nkind: Pod\nmetadata: {name: x\n")))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "line" in result.stderr and "column" in result.stderr


def test_missing_image_field(sbx: Sandbox) -> None:
    result = sbx.run("run", str(sbx.manifest(pod("{name: a, command: [true]}"))))
    assert result.returncode == 2
    assert "spec.containers[0].image: Required value" in result.stderr


def test_missing_container_name(sbx: Sandbox) -> None:
    result = sbx.run("run", str(sbx.manifest(pod("{image: busybox}"))))
    assert result.returncode == 2
    assert "spec.containers[0].name: Required value" in result.stderr


def test_image_not_in_store(sbx: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing image is pulled; a registry that cannot be reached (here: docker.io sent to a
    closed loopback port) leaves the container waiting in ErrImagePull, the pull retried."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    hosts = tmp_path / "certs.d" / "docker.io"
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(f'server = "http://127.0.0.1:{closed}"\n')
    monkeypatch.setenv("SANDBOX_REGISTRY_CONFIG", str(tmp_path / "certs.d"))
    proc = sbx.start(sbx.manifest(pod("{name: a, image: 'nosuch:1.0'}")))
    sbx.wait_for(lambda: sbx.waiting("bad").get("reason") in ("ErrImagePull", "ImagePullBackOff"), timeout=30,
                 message="the container waiting for its image")
    state = sbx.state("bad")
    assert state is not None and state["status"]["phase"] == "Pending"
    message = state["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert message.startswith("pull docker.io/library/nosuch:1.0: ") and f"127.0.0.1:{closed}" in message
    code, _, err = sbx.stop(proc)
    assert code == 1 and "Traceback" not in err


def test_command_not_found(sbx: Sandbox) -> None:
    result = sbx.run("run", str(sbx.manifest(pod("{name: a, image: busybox, command: [/no/such/binary]}"))))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "container 'a': ContainerCannotRun" in result.stderr
    assert "'/no/such/binary'" in result.stderr and "ENOENT" in result.stderr


def test_command_not_executable(sbx: Sandbox) -> None:
    result = sbx.run("run", str(sbx.manifest(pod("{name: a, image: busybox, command: [/etc/passwd]}"))))
    assert result.returncode == 1
    assert "EACCES" in result.stderr and "'/etc/passwd'" in result.stderr


def test_unknown_pod_for_verbs(sbx: Sandbox) -> None:
    for verb in (["get", "pod", "ghost"], ["exec", "ghost", "--", "true"], ["delete", "ghost"], ["logs", "ghost"]):
        result = sbx.run(*verb)
        assert result.returncode == 1, verb
        assert 'pods "ghost" not found in namespace "default"' in result.stderr
    bad_name = sbx.run("get", "pod", "../etc")
    assert bad_name.returncode == 2 and "invalid pod name" in bad_name.stderr


def test_bad_backoff_duration(sbx: Sandbox) -> None:
    result = sbx.run("run", "--backoff-initial", "soon", str(sbx.manifest(pod("{name: a, image: busybox}"))))
    assert result.returncode == 2 and "--backoff-initial" in result.stderr
