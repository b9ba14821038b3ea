"""The kubelet's admission of a pod to this node: a pod whose nodeSelector or required node
affinity rules this node out is rejected before anything of it exists."""

from __future__ import annotations

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  restartPolicy: Never
%(rules)s
  containers:
  - {name: c, image: busybox, command: ["true"]}
"""


def test_a_pod_for_another_node_is_rejected_and_leaves_nothing(sbx: Sandbox) -> None:
    manifest = sbx.manifest(POD % {"name": "win", "rules": "  nodeSelector: {kubernetes.io/os: windows}"})
    result = sbx.run("run", str(manifest))
    assert result.returncode == 1, result.stderr
    assert "pod default/win: NodeAffinity: Pod was rejected: Predicate NodeAffinity failed" in result.stderr
    assert sbx.state("win") is None
    assert not (sbx.root / "run" / "pods" / "default_win").exists()
    assert sbx.run("validate", str(manifest)).returncode == 0  # valid for the API server all the same


def test_a_pod_whose_rules_match_this_node_runs(sbx: Sandbox) -> None:
    rules = """  nodeSelector: {kubernetes.io/os: linux}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/arch, operator: Exists}]"""
    result = sbx.run("run", str(sbx.manifest(POD % {"name": "lin", "rules": rules})))
    assert result.returncode == 0, result.stderr
    assert "pod default/lin: Succeeded" in result.stderr
