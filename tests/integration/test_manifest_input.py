"""What `sandbox run` reads (issue 7): a regular file or `-` (standard input, as `kubectl apply -f -`);
a FIFO is refused at once instead of waiting for a writer; input errors (no object, another kind,
an image reference outside the grammar, a huge number, NUL) exit 2 before anything is created (the
autouse leak check asserts the last part)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """apiVersion: v1
kind: Pod
metadata: {name: stdin-pod}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox, command: [sh, -c, "echo from-stdin"]}
"""


def test_run_reads_the_manifest_from_standard_input(sbx: Sandbox) -> None:
    result = subprocess.run(sbx.cmd("run", "-"), input=POD, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "from-stdin" in result.stdout
    assert "pod default/stdin-pod: Succeeded" in result.stderr
    # Again: the parsed-manifest cache answers, and standard input is still read only once.
    again = subprocess.run(sbx.cmd("run", "-"), input=POD, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "from-stdin" in again.stdout, again.stderr


def test_a_fifo_is_refused_at_once(sbx: Sandbox) -> None:
    fifo = sbx.tmp / "pod.yaml"
    os.mkfifo(fifo)
    start = time.monotonic()
    result = sbx.run("run", str(fifo), timeout=10)
    assert time.monotonic() - start < 5
    assert result.returncode == 2
    assert result.stderr == (f"error: {fifo}: <file>: Invalid value: a FIFO: only regular files are read as "
                             "manifests (or - for standard input)\n")


@pytest.mark.parametrize(("text", "message"), [
    ("# nothing but a comment\n", "kind: Required value: the input holds no document"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n", 'kind: Invalid value: "Deployment": '
                                                                      "sandbox runs Pods"),
    (POD.replace("image: busybox", "image: 'busybox:../../x'"),
     'spec.containers[0].image: Invalid value: "busybox:../../x": invalid reference format: tag "../../x"'),
    (POD.replace("restartPolicy: Never", "terminationGracePeriodSeconds: " + "9" * 5000), "line 5, column 34: "),
    (POD.replace("echo from-stdin", "echo \\0 cut"), 'spec.containers[0].command[2]: Invalid value: "echo '
                                                      '\\u0000 cut": must not contain a NUL character'),
])
def test_input_errors_start_nothing(sbx: Sandbox, text: str, message: str) -> None:
    result = sbx.run("run", str(sbx.manifest(text)))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not (sbx.root / "run" / "pods").exists() or not os.listdir(sbx.root / "run" / "pods")
