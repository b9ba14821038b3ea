"""A postStart exec hook whose command cannot be exec'd: the PostStartHookError message is the
kubelet's over containerd and runc (handlers.go's "error: %v, message: %q", the CRI client's gRPC
error of containerd's ExecSync with runc's exec.LookPath words), with an empty output."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

HOOK = """
apiVersion: v1
kind: Pod
metadata: {name: hook}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: ["sleep", "1000"]
    lifecycle:
      postStart:
        exec: {command: COMMAND}
"""


@pytest.mark.parametrize(("command", "why"), [
    ("nope", 'exec: "nope": executable file not found in $PATH'),
    ("/bin/nope", 'exec: "/bin/nope": stat /bin/nope: no such file or directory'),
    ("/etc/passwd", 'exec: "/etc/passwd": permission denied'),
])
def test_a_hook_that_cannot_be_execd(sbx: Sandbox, command: str, why: str) -> None:
    proc = sbx.start(sbx.manifest(HOOK.replace("COMMAND", f'["{command}", "arg"]')))

    def hook_failed() -> dict[str, Any] | None:
        s = sbx.state("hook")
        waiting = s and s["status"]["containerStatuses"][0]["state"].get("waiting") or {}
        return s if waiting.get("reason") == "PostStartHookError" else None

    state = sbx.wait_for(hook_failed, message="PostStartHookError")
    message = state["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    head = (f'Exec lifecycle hook ([{command} arg]) for Container "app" in Pod "hook_default({state["uid"]})" '
            "failed - error: rpc error: code = Unknown desc = failed to exec in container: failed to start exec ")
    tail = (": OCI runtime exec failed: exec failed: unable to start container process: "
            f'{why}: unknown, message: ""')
    assert message.startswith(head) and message.endswith(tail), message
    assert re.fullmatch(r'"[0-9a-f]{64}"', message[len(head):-len(tail)]), message  # the exec ID
    sbx.finish(proc)
