"""Label selectors (`-l`) on the verbs that take them in kubectl, against real pods: `get`,
`wait`, `logs`, `describe` and `delete` act on the matching pods only; `get --show-labels` and
`--no-headers`."""

from __future__ import annotations

import time

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s, labels: {app: %(app)s}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo %(name)s-$i; done; exec sleep 600"]
"""


def test_selectors_pick_the_matching_pods(sbx: Sandbox) -> None:
    procs = {name: sbx.start(sbx.manifest(POD % {"name": name, "app": app}, f"{name}.yaml"))
             for name, app in (("web-1", "web"), ("web-2", "web"), ("db", "db"))}
    try:
        deadline = time.monotonic() + 20
        while any(sbx.state(name) is None for name in procs) and time.monotonic() < deadline:
            time.sleep(0.05)  # the records exist (as the API objects would after an apply)
        waited = sbx.run("wait", "pod", "-l", "app=web", "--for=condition=Ready", "--timeout=30s")
        assert waited.returncode == 0, waited.stderr
        assert waited.stdout.splitlines() == ["pod/web-1 condition met", "pod/web-2 condition met"]
        sbx.wait_running("db")

        # a selector's logs: every matching pod, the last 10 lines of each unless --tail says
        logs = sbx.run("logs", "-l", "app=web")
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout.splitlines() == [f"web-{n}-{i}" for n in (1, 2) for i in range(3, 13)]
        tail = sbx.run("logs", "-l", "app in (web, db)", "--tail=1", "--prefix")
        assert tail.stdout.splitlines() == ["[pod/db/c] db-12", "[pod/web-1/c] web-1-12", "[pod/web-2/c] web-2-12"]
        follow = sbx.run("logs", "-l", "app=web", "-f", "--max-log-requests=1")
        assert follow.returncode != 0 and "follow 2 log streams" in follow.stderr
        none = sbx.run("logs", "-l", "app=cache")
        assert none.returncode == 0 and none.stdout == "" and "No resources found" in none.stderr

        got = sbx.run("get", "pods", "-l", "app=web", "--show-labels")
        assert got.returncode == 0, got.stderr
        lines = got.stdout.splitlines()
        assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"]
        assert [(line.split()[0], line.split()[-1]) for line in lines[1:]] == [("web-1", "app=web"), ("web-2", "app=web")]
        bare = sbx.run("get", "pods", "-l", "!app,x", "--no-headers")
        assert bare.returncode == 0 and bare.stdout == "" and "No resources found" in bare.stderr
        names = sbx.run("get", "pods", "-l", "app notin (web)", "--no-headers", "-o", "custom-columns=N:.metadata.name")
        assert names.stdout.split() == ["db"]
        assert sbx.run("get", "pods", "--no-headers").stdout.split()[0::5] == ["db", "web-1", "web-2"]
        running = sbx.run("get", "pods", "--field-selector", "status.phase=Running,metadata.name!=db", "-o", "name")
        assert running.stdout.split() == ["pod/web-1", "pod/web-2"]
        unknown = sbx.run("get", "pods", "--field-selector", "status.hostIP=10.0.0.1")
        assert unknown.returncode == 1 and "field label not supported: status.hostIP" in unknown.stderr
        # kubectl's TYPE/NAME form
        assert sbx.run("get", "pod/web-1", "-o", "name").stdout == "pod/web-1\n"
        assert sbx.run("logs", "pod/web-1", "--tail=1").stdout == "web-1-12\n"
        assert sbx.run("exec", "pod/web-1", "--", "true").returncode == 0
        assert "Name:         db" in sbx.run("describe", "pod/db").stdout
        described = sbx.run("describe", "pods", "-l", "app!=web")
        assert [line.split()[1] for line in described.stdout.splitlines() if line.startswith("Name:")] == ["db"]
        bad = sbx.run("describe", "pods", "-l", "app=web x")
        assert bad.returncode == 1 and "couldn't parse the selector string" in bad.stderr
        assert "Traceback" not in bad.stderr

        deleted = sbx.run("delete", "pods", "-l", "app=web", timeout=90)
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stdout.splitlines() == ['pod "web-1" deleted', 'pod "web-2" deleted']
        for name in ("web-1", "web-2"):
            procs.pop(name).wait(timeout=30)
            assert sbx.state(name) is None
        assert sbx.state("db") is not None  # not selected: still running
        gone = sbx.run("wait", "pod", "-l", "app=web", "--for=delete")
        assert gone.returncode == 0 and gone.stdout == ""
        unmatched = sbx.run("wait", "pod", "-l", "app=web", "--for=condition=Ready", "--timeout=1s")
        assert unmatched.returncode == 1 and "no matching resources found" in unmatched.stderr
    finally:
        for proc in procs.values():
            sbx.stop(proc)


DONE = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox, command: ["sh", "-c", "exit %(code)d"]}
"""


def test_delete_the_pods_that_ended_by_field_selector(sbx: Sandbox) -> None:
    """The clean-up kubectl users script: delete every Succeeded pod, keep the failed and running ones."""
    for name, code in (("ok-1", 0), ("ok-2", 0), ("bad", 3)):
        sbx.run("run", str(sbx.manifest(DONE % {"name": name, "code": code}, f"{name}.yaml")))
    proc = sbx.start(sbx.manifest(POD % {"name": "live", "app": "web"}, "live.yaml"))
    try:
        sbx.wait_running("live")
        deleted = sbx.run("delete", "pods", "--field-selector", "status.phase==Succeeded")
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stdout.splitlines() == ['pod "ok-1" deleted', 'pod "ok-2" deleted']
        left = sbx.run("get", "pods", "--no-headers", "-o", "custom-columns=N:.metadata.name,P:.status.phase")
        assert [line.split() for line in left.stdout.splitlines()] == [["bad", "Failed"], ["live", "Running"]]
    finally:
        sbx.stop(proc)


def test_wait_all_and_all_namespaces(sbx: Sandbox) -> None:
    """kubectl wait's --all (every pod of the namespace) and -A (with --all or -l, every
    namespace's pods), each pod said once; -A with a name is refused."""
    spaced = POD.replace("metadata: {", "metadata: {namespace: %(ns)s, ")
    procs = [sbx.start(sbx.manifest(spaced % {"name": name, "app": "web", "ns": ns}, f"{ns}-{name}.yaml"))
             for ns, name in (("default", "web-1"), ("team", "web-2"))]
    try:
        sbx.wait_running("web-1")
        sbx.wait_for(lambda: sbx.state("web-2", "team"), message="team/web-2's record")
        every = sbx.run("wait", "pod", "--all", "--for=condition=Ready", "--timeout=30s")
        assert every.returncode == 0, every.stderr
        assert every.stdout.splitlines() == ["pod/web-1 condition met"]
        across = sbx.run("wait", "pod", "-A", "-l", "app=web", "--for=condition=Ready", "--timeout=30s")
        assert across.returncode == 0, across.stderr
        assert across.stdout.splitlines() == ["pod/web-1 condition met", "pod/web-2 condition met"]
        assert sbx.run("wait", "pod", "-A", "--all", "--for=create").stdout.count("condition met") == 2
        named = sbx.run("wait", "-A", "pod/web-1", "--for=create")
        assert named.returncode == 2 and "cannot be retrieved by name across all namespaces" in named.stderr
        none = sbx.run("-n", "empty", "wait", "pod", "--all", "--for=condition=Ready")
        assert none.returncode == 1 and "no matching resources found" in none.stderr
    finally:
        for proc in procs:
            sbx.stop(proc)
