"""`sandbox run NAME --image=IMAGE`: a pod made from flags as `kubectl run` makes it, run in the
foreground or by the agent, or printed with --dry-run=client to be saved and run as a file."""

from __future__ import annotations

import json

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root


def test_a_pod_from_flags_runs_as_kubectl_run_makes_it(sbx: Sandbox) -> None:
    done = sbx.run("run", "hello", "--image=busybox", "--restart=Never", "--env", "WHO=world", "--port", "8080",
                   "--labels", "app=hi,tier=demo", "--", "sh", "-c", 'echo "hi $WHO"')
    assert done.returncode == 0, done.stderr
    assert "hi world" in done.stdout + done.stderr
    pod = json.loads(sbx.run("get", "pod", "hello", "-o", "json", check=True).stdout)
    assert pod["metadata"]["labels"] == {"app": "hi", "tier": "demo"}
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["dnsPolicy"] == "ClusterFirst"
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "hello" and container["args"] == ["sh", "-c", 'echo "hi $WHO"']
    assert container["ports"][0]["containerPort"] == 8080
    assert pod["status"]["phase"] == "Succeeded"

    failed = sbx.run("run", "cmd", "--image=busybox", "--restart=Never", "--command", "--", "sh", "-c", "exit 3")
    assert failed.returncode == 1
    status = json.loads(sbx.run("get", "pod", "cmd", "-o", "json", check=True).stdout)["status"]
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert sbx.run("get", "pods", "-l", "run=cmd", "-o", "name").stdout.split() == ["pod/cmd"]


def test_dry_run_prints_the_pod_to_save_and_run(sbx: Sandbox) -> None:
    shown = sbx.run("run", "saved", "--image=busybox", "--restart=Never", "--dry-run=client", "-o", "yaml",
                    "--", "echo", "from a file")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    run: saved\n  name: saved\n")
    assert sbx.state("saved") is None  # nothing ran
    path = sbx.manifest(shown.stdout, "saved.yaml")
    ran = sbx.run("run", str(path))
    assert ran.returncode == 0 and "from a file" in ran.stdout + ran.stderr
    assert "warning" not in ran.stderr.lower()  # nothing in it is unhonoured


def test_a_pod_from_flags_goes_to_the_agent_with_d(agent_sbx: Sandbox) -> None:
    sbx = agent_sbx
    done = sbx.run("run", "-d", "--network", "none", "bg", "--image=busybox", "--", "sleep", "600")
    assert done.returncode == 0, done.stderr
    sbx.wait_running("bg")
    again = sbx.run("run", "-d", "--network", "none", "bg", "--image=busybox", "--", "sleep", "600")
    assert again.returncode != 0 and "/tmp/sandbox-run-" not in again.stderr
    assert sbx.run("delete", "bg", timeout=90).returncode == 0


@pytest.mark.parametrize(("argv", "words"), [
    (["run", "x", "--image=busybox", "--restart=Sometimes"], "--restart: invalid restart policy: Sometimes"),
    (["run", "Bad_Name", "--image=busybox"], 'pod/Bad_Name: metadata.name: Invalid value: "Bad_Name"'),
    (["run", "x", "--image=busybox", "--env", "NOEQUALS"], "--env: invalid value 'NOEQUALS'"),
    (["run", "pod.yaml", "--restart=Never"], "--restart: only with --image"),
])
def test_bad_flags_are_refused(sbx: Sandbox, argv: list[str], words: str) -> None:
    done = sbx.run(*argv)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert sbx.state("x") is None and sbx.state("Bad_Name") is None
