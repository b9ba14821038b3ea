"""Env from ConfigMaps and Secrets on real pods: same-file objects, the node's store (`apply`,
`create`), a missing object keeping the container in CreateContainerConfigError until it is
applied from another terminal, and secret values kept out of every output (checked from outside:
`get -o json`, `describe`, events, and the store's file modes)."""

from __future__ import annotations

import json
import os
import stat
import uuid

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

SECRET_VALUE = "s3cr3t-" + uuid.uuid4().hex[:12]  # unique: any occurrence anywhere is a leak

SAME_FILE = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{mode: fast, "level.max": "9"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: {SECRET_VALUE}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: envpod}}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, 'echo started; sleep 3600']
    env:
    - name: MODE
      valueFrom: {{configMapKeyRef: {{name: settings, key: mode}}}}
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    - name: ABSENT
      valueFrom: {{configMapKeyRef: {{name: nowhere, key: k, optional: true}}}}
    - name: DERIVED
      value: "mode=$(MODE) cfg=$(CFG_level.max)"
    envFrom:
    - prefix: CFG_
      configMapRef: {{name: settings}}
"""


def printenv(sbx: Sandbox, pod: str, name: str) -> str:
    """The variable's value and a newline, as printenv prints it ("" when unset); read through
    `env` (the image's printenv is a shell stand-in that cannot name `CFG_level.max`)."""
    lines = sbx.run("exec", pod, "--", "env", check=True).stdout.splitlines()
    return next((line.partition("=")[2] + "\n" for line in lines if line.partition("=")[0] == name), "")


def test_env_from_same_file_objects_and_no_secret_in_any_output(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(SAME_FILE))
    sbx.wait_running("envpod")
    assert printenv(sbx, "envpod", "MODE") == "fast\n"
    assert printenv(sbx, "envpod", "PASSWORD") == f"{SECRET_VALUE}\n"
    assert printenv(sbx, "envpod", "CFG_mode") == "fast\n"
    assert printenv(sbx, "envpod", "CFG_level.max") == "9\n"
    assert printenv(sbx, "envpod", "DERIVED") == "mode=fast cfg=9\n"  # envFrom keys expand in env
    assert printenv(sbx, "envpod", "ABSENT") == ""  # optional and missing: left out
    outputs = [sbx.run("get", "pod", "envpod", "-o", "json", check=True).stdout,
               sbx.run("describe", "pod", "envpod", check=True).stdout]
    assert "<set to the key 'password' in secret 'creds'>" in outputs[1]
    state = sbx.state("envpod")
    assert state is not None
    outputs.append(json.dumps(state["events"]))
    for text in outputs:
        assert SECRET_VALUE not in text
    # The state file holds the env (for `sandbox exec`): root's alone.
    st = os.stat(sbx.root / "run" / "pods" / "default_envpod" / "state.json")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
    _, out, err = sbx.stop_now(proc)  # sh as PID 1 ignores SIGTERM
    assert SECRET_VALUE not in out + err


POD_NEEDS_STORE = """
apiVersion: v1
kind: Pod
metadata: {name: waiter}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, 'echo started; sleep 3600']
    env:
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: later, key: token}}
    envFrom:
    - configMapRef: {name: app-config}
"""

LATER_CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {COLOUR: blue}
"""


def waiting(sbx: Sandbox, pod: str) -> dict | None:
    state = sbx.state(pod)
    if not state:
        return None
    statuses = state["status"].get("containerStatuses") or []
    return statuses[0]["state"].get("waiting") if statuses else None


def test_missing_objects_wait_in_create_container_config_error_until_applied(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(POD_NEEDS_STORE), "--backoff-initial", "1s")
    sbx.wait_for(lambda: (waiting(sbx, "waiter") or {}).get("reason") == "CreateContainerConfigError",
                 message="CreateContainerConfigError")
    assert waiting(sbx, "waiter") == {"reason": "CreateContainerConfigError",
                                      "message": 'configmap "app-config" not found'}
    # no container was created yet: the kubelet names the image and leaves imageID empty
    status = json.loads(sbx.run("get", "pod", "waiter", "-o", "json", check=True).stdout)["status"]
    assert {k: status["containerStatuses"][0][k] for k in ("image", "imageID")} == {"image": "busybox:1.36",
                                                                                  "imageID": ""}
    applied = sbx.run("apply", "-f", str(sbx.manifest(LATER_CONFIG, "cm.yaml")))
    assert applied.stdout == "configmap/app-config created\n", applied
    sbx.wait_for(lambda: (waiting(sbx, "waiter") or {}).get("message") == 'secret "later" not found',
                 message="the next missing object")
    created = sbx.run("create", "secret", "generic", "later", f"--from-literal=token={SECRET_VALUE}")
    assert created.stdout == "secret/later created\n", created
    state = sbx.wait_running("waiter", timeout=10)
    assert state["status"]["containerStatuses"][0]["restartCount"] == 0
    assert state["status"]["containerStatuses"][0]["imageID"].startswith("docker.io/library/busybox@sha256:")
    assert printenv(sbx, "waiter", "COLOUR") == "blue\n"
    assert printenv(sbx, "waiter", "TOKEN") == f"{SECRET_VALUE}\n"
    events = [e for e in state["events"] if e["reason"] == "Failed"]
    assert events and events[0]["message"] == 'Error: configmap "app-config" not found'
    for verb in (("get", "secret", "later", "-o", "json"), ("get", "secret", "later", "-o", "yaml"),
                 ("describe", "secret", "later"), ("get", "pod", "waiter", "-o", "json"),
                 ("describe", "pod", "waiter")):
        result = sbx.run(*verb, check=True)
        assert SECRET_VALUE not in result.stdout, verb
    assert "token:  " in sbx.run("describe", "secret", "later").stdout  # the size only
    store = sbx.root / "lib" / "config"
    for path in [store, *store.rglob("*")]:
        st = os.lstat(path)
        expected = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, expected), path
    _, out, err = sbx.stop_now(proc)
    assert SECRET_VALUE not in out + err
    assert sbx.run("delete", "configmap", "app-config").stdout == 'configmap "app-config" deleted\n'
    assert sbx.run("delete", "secret", "later").returncode == 0
    assert not list(store.rglob("*.json"))


def test_apply_hands_a_pod_to_the_agent_and_get_lists_the_store(sbx: Sandbox) -> None:
    from tests.integration.test_agent import stop_agent

    path = str(sbx.manifest(SAME_FILE))
    try:
        result = sbx.run("apply", "-f", path)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "configmap/settings created\nsecret/creds created\npod/envpod created\n"
        assert printenv(sbx, "envpod", "MODE") == "fast\n"
        again = sbx.run("apply", "-f", path)
        assert again.stdout == ("configmap/settings unchanged\nsecret/creds unchanged\npod/envpod unchanged\n"), \
            again.stderr
    finally:
        stop_agent(sbx, force=True)
    sbx.run("delete", "envpod", check=True)
    applied = sbx.run("apply", "-f", str(sbx.manifest(LATER_CONFIG, "cm.yaml")), check=True)
    assert applied.stdout == "configmap/app-config created\n"
    again = sbx.run("apply", "-f", str(sbx.manifest(LATER_CONFIG, "cm.yaml")), check=True)
    assert again.stdout == "configmap/app-config unchanged\n"
    table = sbx.run("get", "configmaps", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert table[1].split()[:2] == ["app-config", "1"]


@pytest.mark.parametrize(("manifest", "expected"), [
    ("pods__pod-configmap-env-var-valueFrom.yaml", "very charm\n"),
    ("pods__pod-multiple-configmap-env-variable.yaml", None),
    ("pods__pod-single-configmap-env-variable.yaml", None),
    ("pods__pod-configmap-envFrom.yaml", "SPECIAL_TYPE=charm\n"),
])
def test_documentation_pods_with_env_from_configmaps(sbx: Sandbox, manifest: str, expected: str | None) -> None:
    """The task pages' pods, run unmodified after the page's `kubectl create configmap` commands."""
    from corpus import require_corpus

    sbx.run("create", "configmap", "special-config", "--from-literal=special.how=very",
            "--from-literal=SPECIAL_LEVEL=very", "--from-literal=SPECIAL_TYPE=charm", check=True)
    sbx.run("create", "configmap", "env-config", "--from-literal=log_level=INFO", check=True)
    result = sbx.run("run", str(require_corpus() / manifest), timeout=120)
    assert result.returncode == 0, result.stderr
    logs = sbx.run("logs", "dapi-test-pod", check=True).stdout
    if expected is not None:
        assert expected in logs
    sbx.run("delete", "dapi-test-pod", check=True)


ARGV_EXPANSION = """
apiVersion: v1
kind: Pod
metadata: {name: argv}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:1.36
    env: [{name: MINE, value: mine}]
    command: [sh, -c, 'echo "argv: $0|$1|$2"', "$(MINE)", "$(HOSTNAME)", "$(PATH)"]
"""


def test_command_expands_only_the_kubelets_variables_not_the_image_env_or_hostname(sbx: Sandbox) -> None:
    # The kubelet expands $(VAR) in command/args from its own list (env, envFrom); the image's
    # ENV (PATH here) and the runtime's HOSTNAME reach the process but are no sources: they stay.
    result = sbx.run("run", "--network", "none", str(sbx.manifest(ARGV_EXPANSION)))
    assert result.returncode == 0, result.stderr
    assert "[c] argv: mine|$(HOSTNAME)|$(PATH)\n" in result.stdout, result.stdout
