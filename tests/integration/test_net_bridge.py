"""bridge._is_ready on a real kernel, in a scratch network namespace of its own (`unshare --net`):
the ioctl check that lets later pods skip re-configuring the bridge must say no to every state
the netlink path would have changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]

SCENE = r"""
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from sandbox.network.bridge import _ensure_bridge, _is_ready

def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)

seen = {}
seen["missing"] = _is_ready("br0", "10.252.0.1", 24)
ip("link", "add", "br0", "type", "bridge")
seen["down, no address"] = _is_ready("br0", "10.252.0.1", 24)
ip("link", "set", "br0", "up")
seen["up, no address"] = _is_ready("br0", "10.252.0.1", 24)
ip("addr", "add", "10.252.0.1/16", "dev", "br0")
seen["up, another prefix"] = _is_ready("br0", "10.252.0.1", 24)
ip("addr", "flush", "dev", "br0")
ip("addr", "add", "10.252.0.9/24", "dev", "br0")
seen["up, another address"] = _is_ready("br0", "10.252.0.1", 24)
ip("addr", "flush", "dev", "br0")
ip("addr", "add", "10.252.0.1/24", "dev", "br0")
seen["up, the gateway"] = _is_ready("br0", "10.252.0.1", 24)
ip("link", "set", "br0", "down")
seen["down, the gateway"] = _is_ready("br0", "10.252.0.1", 24)
_ensure_bridge("br0", "10.252.0.1", 24)  # the netlink path brings it up again
seen["after _ensure_bridge"] = _is_ready("br0", "10.252.0.1", 24)
print(json.dumps(seen))
"""


def test_is_ready_only_for_a_bridge_up_with_the_gateway_address() -> None:
    out = subprocess.run(["unshare", "--net", sys.executable, "-c", SCENE, str(REPO)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "missing": False, "down, no address": False, "up, no address": False, "up, another prefix": False,
        "up, another address": False, "up, the gateway": True, "down, the gateway": False,
        "after _ensure_bridge": True,
    }
