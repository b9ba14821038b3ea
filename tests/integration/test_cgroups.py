"""Pod cgroups on this machine's hierarchies (v1 controllers plus the cgroup2 `unified` one): the
tree, who is in it, pod pids.max, exec and probes inside the container's cgroup, and nothing left
after a normal end, a `delete`, or a SIGKILL of the runtime followed by `sandbox gc`. Everything
is checked from outside, through /proc/PID/cgroup and the cgroup files."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Sandbox, cgroup_children

pytestmark = pytest.mark.root

SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
  - name: side
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
"""

QUICK = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    command: ["true"]
"""


def memberships(pid: int) -> dict[str, str]:
    """/proc/PID/cgroup as seen from the host: hierarchy (controllers, or "" for cgroup2) -> path."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            out[controllers] = path
    return out


def pod_dirs(parent: str) -> list[str]:
    return cgroup_children(parent)


def stop_leaving_no_cgroup(sbx: Sandbox, proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C the pod: its whole cgroup tree is gone once `sandbox run` has returned."""
    sbx.stop(proc)
    assert pod_dirs(sbx.cgroup_parent) == []


def test_every_process_of_the_pod_runs_in_its_own_cgroup_below_the_pod_cgroup(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(SLEEPER % {"name": "tree"}), "-q")
    state = sbx.wait_running("tree", containers=2)
    uid = state["uid"]
    pod = f"/{sbx.cgroup_parent}/{uid}"
    pause = memberships(sbx.pause_pid("tree"))
    app = memberships(sbx.pid_of("tree", "app"))
    side = memberships(sbx.pid_of("tree", "side"))
    for hierarchy in ("memory", "cpu", "cpuacct", "freezer", "devices"):  # cgroups/v1.PER_INSTANCE
        assert pause[hierarchy] == f"{pod}/pause", (hierarchy, pause)
        assert app[hierarchy].startswith(pod + "/") and app[hierarchy] != pause[hierarchy]
        assert side[hierarchy].startswith(pod + "/") and side[hierarchy] != app[hierarchy]
    for hierarchy in ("pids", "blkio", "cpuset", ""):  # set for the whole pod: every process in the pod cgroup
        assert pause[hierarchy] == app[hierarchy] == side[hierarchy] == pod, (hierarchy, app)
    # the state names the directories (inspect, top and exec read them)
    assert state["cgroup"]["paths"]["memory"] == f"/sys/fs/cgroup/memory{pod}"
    assert state["containers"]["app"]["cgroup"]["memory"] == f"/sys/fs/cgroup/memory{app['memory']}"
    # the container's own view is its cgroup namespace: it sees itself at the root
    result = sbx.run("exec", "tree", "-c", "app", "--", "cat", "/proc/self/cgroup")
    assert result.returncode == 0, result.stderr
    assert all(line.endswith(":/") for line in result.stdout.splitlines() if "name=" not in line), result.stdout
    # the pod's pids.max is the default podPidsLimit
    assert Path(f"/sys/fs/cgroup/pids{pod}/pids.max").read_text().strip() == "4096"
    # pause gets containerd's sandbox shares (DefaultSandboxCPUshares), not the kernel's 1024
    assert Path(f"/sys/fs/cgroup/cpu{pod}/pause/cpu.shares").read_text().strip() == "2"
    stop_leaving_no_cgroup(sbx, proc)


def test_exec_and_exec_probes_run_in_the_containers_cgroup(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
    readinessProbe:
      exec: {command: ["sh", "-c", "cat /proc/self/cgroup > /tmp/probe-cgroup"]}
      periodSeconds: 1
""")
    proc = sbx.start(manifest, "-q", "--probe-scale", "0.2")
    sbx.wait_running("probed")
    main = memberships(sbx.pid_of("probed", "app"))
    # an exec'd process that stays behind: found in the container's cgroup from the host
    result = sbx.run("exec", "probed", "-c", "app", "--", "sh", "-c", "sleep 30 & echo $!")
    assert result.returncode == 0, result.stderr
    found = sbx.wait_for(lambda: [int(p) for p in _pids_in(f"/sys/fs/cgroup/memory{main['memory']}")
                                  if p != sbx.pid_of("probed", "app")], message="the exec'd sleep in the cgroup")
    assert found
    probe = sbx.wait_for(lambda: sbx.run("exec", "probed", "-c", "app", "--", "cat", "/tmp/probe-cgroup").stdout,
                         message="the probe's record")
    assert "memory:/" in probe  # the probe ran inside the container's cgroup namespace root
    stop_leaving_no_cgroup(sbx, proc)


def _pids_in(cgroup_dir: str) -> list[str]:
    try:
        return Path(cgroup_dir, "cgroup.procs").read_text().split()
    except OSError:
        return []


def test_a_fork_bomb_is_held_at_the_pod_pids_limit_and_the_pod_alone_is_affected(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: bomb}
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: bomb
    image: busybox
    # the inner shell forks until refused (then dies); the main one execs: it needs no fork
    command: ["sh", "-c", "sh -c 'i=0; while [ $i -lt 300 ]; do sleep 100 & i=$((i+1)); done'; exec sleep 1000"]
""")
    proc = sbx.start(manifest, "-q", "--pod-pids-limit", "64")
    state = sbx.wait_running("bomb")
    pids = Path(state["cgroup"]["paths"]["pids"])
    sbx.wait_for(lambda: int((pids / "pids.current").read_text()) >= 60, message="the pod at its limit")
    time.sleep(0.5)
    assert int((pids / "pids.current").read_text()) <= 64
    assert int((pids / "pids.max").read_text()) == 64
    # forks were refused (v1 counts the event where the fork failed: the container's cgroup)
    refused = 0
    for events in glob.glob(f"{pids}/**/pids.events", recursive=True):
        refused += int(dict(line.split() for line in Path(events).read_text().splitlines())["max"])
    assert refused > 0
    # the host still forks
    assert os.system("true") == 0
    stop_leaving_no_cgroup(sbx, proc)


def test_a_killed_runtime_leaves_cgroups_that_gc_removes(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(SLEEPER % {"name": "crash"}), "-q")
    sbx.wait_running("crash", containers=2)
    assert pod_dirs(sbx.cgroup_parent), "the pod cgroup exists while it runs"
    proc.send_signal(signal.SIGKILL)
    sbx.finish(proc)
    # PDEATHSIG took the processes; the cgroups stay until gc
    sbx.wait_for(lambda: not any(_pids_in(d) for d in glob.glob(f"/sys/fs/cgroup/memory/{sbx.cgroup_parent}/*/*")),
                 message="the pod's processes gone")
    assert pod_dirs(sbx.cgroup_parent)
    result = sbx.run("gc")
    assert result.returncode == 0, result.stderr
    assert pod_dirs(sbx.cgroup_parent) == []
    assert glob.glob(f"/sys/fs/cgroup/*/{sbx.cgroup_parent}") == []  # the pods' parent too, at once


def test_the_parent_outlives_its_last_pod_by_a_grace(sbx: Sandbox) -> None:
    """The pods' parent stays for the next pod and goes once no pod used it for a grace
    (cgroups/reclaim.hand_over: the native remover, 1 s): in every hierarchy, with nothing left."""
    result = sbx.run("run", "-q", str(sbx.manifest(QUICK % {"name": "one"})))
    assert result.returncode == 0, result.stderr
    parents = glob.glob(f"/sys/fs/cgroup/*/{sbx.cgroup_parent}")
    assert pod_dirs(sbx.cgroup_parent) == [] and parents, "the pod gone, its parent kept"
    result = sbx.run("run", "-q", str(sbx.manifest(QUICK % {"name": "two"})))  # within the grace: kept
    assert result.returncode == 0, result.stderr
    sbx.wait_for(lambda: not glob.glob(f"/sys/fs/cgroup/*/{sbx.cgroup_parent}"), timeout=10,
                 message="the parent removed by its remover")


def test_gc_removes_an_empty_parent_an_older_sandbox_kept(sbx: Sandbox) -> None:
    """An empty parent (an older sandbox kept it; its remover was killed, or has not ended its
    grace): `gc` removes it at once where it holds nothing, and leaves it where a cgroup is
    still below it."""
    kept = [Path(h, sbx.cgroup_parent) for h in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory")]
    for d in kept:
        d.mkdir()
    busy = kept[0] / "someone"
    busy.mkdir()
    try:
        result = sbx.run("gc")
        assert result.returncode == 0, result.stderr
        assert f"removed cgroup {kept[1]}" in result.stdout and not kept[1].exists()
        assert kept[0].is_dir()  # not empty: kept
    finally:
        busy.rmdir()
    assert sbx.run("gc").returncode == 0 and not kept[0].exists()


def test_teardown_kills_through_the_cgroup_a_process_that_left_the_tree(sbx: Sandbox) -> None:
    """hostPID: a process that daemonizes is reparented to the host's init, out of the pod's
    process tree and PID namespace; the pod's end still kills it, through its cgroup."""
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: escapee}
spec:
  hostPID: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "setsid sh -c 'exec sleep 997' & trap 'exit 0' TERM; sleep 1000 & wait"]
""")
    proc = sbx.start(manifest, "-q")
    state = sbx.wait_running("escapee")
    cgroup = state["containers"]["app"]["cgroup"]["memory"]
    daemon = sbx.wait_for(lambda: [p for p in _pids_in(cgroup) if _cmdline(int(p)) == "sleep 997"],
                          message="the daemon in the container's cgroup")
    sbx.stop(proc)
    assert not os.path.exists(f"/proc/{daemon[0]}") or _cmdline(int(daemon[0])) != "sleep 997"
    assert pod_dirs(sbx.cgroup_parent) == []


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_bad_cgroup_options_are_refused_before_anything_is_created(sbx: Sandbox) -> None:
    manifest = sbx.manifest(SLEEPER % {"name": "opts"})
    for args, words in ((["--cgroup-driver", "bogus"], "--cgroup-driver"),
                        (["--cgroup-driver", "systemd"], "no systemd answers on D-Bus"),
                        (["--pod-pids-limit", "0"], "--pod-pids-limit"),
                        (["--cgroup-parent", "../x"], "--cgroup-parent")):
        result = sbx.run("run", *args, str(manifest), timeout=30)
        assert result.returncode != 0 and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert pod_dirs(sbx.cgroup_parent) == []


# one container that waits, with `extra` (a container field) set
ONE_CONTAINER = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    %(extra)s
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
"""


def _host_disk() -> tuple[int, int]:
    for entry in sorted(Path("/sys/block").iterdir(), key=lambda e: (not (e / "device").exists(), e.name)):
        major, minor = map(int, (entry / "dev").read_text().split(":"))
        return major, minor
    pytest.skip("no block device")


def test_a_container_with_cap_mknod_cannot_open_a_host_disk_and_the_allow_list_is_runcs(sbx: Sandbox) -> None:
    """Two layers: every mount a container can write to is nodev (EACCES), and behind it the
    devices cgroup allows only runc's default nodes (a process placed there is refused with
    EPERM: tests/cgroups/test_devices.py shows the list acting on real opens)."""
    major, minor = _host_disk()
    proc = sbx.start(sbx.manifest(ONE_CONTAINER % {"name": "dev", "extra": "securityContext: {privileged: false}"}), "-q")
    state = sbx.wait_running("dev")
    result = sbx.run("exec", "dev", "-c", "app", "--", "sh", "-c",
                     f"mknod /tmp/disk b {major} {minor} && echo made && dd if=/tmp/disk of=/dev/null bs=512 count=1")
    assert "made" in result.stdout, result.stderr  # CAP_MKNOD and the `b *:* m` rule: mknod works
    assert result.returncode != 0 and "Permission denied" in result.stderr, result.stderr
    listed = Path(state["containers"]["app"]["cgroup"]["devices"], "devices.list").read_text().split("\n")
    assert "a *:* rwm" not in listed
    for line in ("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm",
                 "c 136:* rwm", "b *:* m", "c *:* m"):
        assert line in listed, (line, listed)
    assert not any(line.startswith(f"b {major}:") for line in listed)
    sbx.stop(proc)

    proc = sbx.start(sbx.manifest(ONE_CONTAINER % {"name": "devp", "extra": "securityContext: {privileged: true}"}), "-q")
    state = sbx.wait_running("devp")
    listed = Path(state["containers"]["app"]["cgroup"]["devices"], "devices.list").read_text().split("\n")
    assert "a *:* rwm" in listed  # privileged: every device, as runc gives it
    sbx.stop(proc)


def test_a_container_sees_its_own_cgroups_read_only_at_sys_fs_cgroup(sbx: Sandbox) -> None:
    proc = sbx.start(sbx.manifest(ONE_CONTAINER % {"name": "view", "extra": ""}), "-q")
    sbx.wait_running("view")
    result = sbx.run("exec", "view", "-c", "app", "--", "sh", "-c",
                     "cat /sys/fs/cgroup/pids/cgroup.procs | wc -l; mkdir /sys/fs/cgroup/pids/x; "
                     "touch /sys/fs/cgroup/y; ls /sys/fs/cgroup")
    lines = result.stdout.split()
    assert 2 <= int(lines[0]) < 10  # its own processes (main, sleep, the exec'd shell), not the host's
    assert result.stderr.count("Read-only file system") == 2, result.stderr
    for hierarchy in ("memory", "pids", "cpu", "devices", "unified"):
        assert hierarchy in lines
    sbx.stop(proc)


def _has_cap(cap: int) -> bool:
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(eff & (1 << cap))


CAP_SYS_RESOURCE = 24


def test_a_container_over_its_memory_limit_is_oomkilled_and_restarted_per_policy(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 1
  containers:
  - name: hog
    image: busybox
    resources:
      limits: {memory: 32Mi}
    # 64 MiB held in the shell's memory: over the limit, the kernel's OOM killer takes it
    command: ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; x=$(head -c 67108864 /dev/zero | tr '\\\\0' a); echo survived"]
""")
    proc = sbx.start(manifest, "-q", "--backoff-initial", "0.2s")

    def restarted() -> dict | None:
        state = sbx.state("hog")
        if not state:
            return None
        cs = state["status"]["containerStatuses"][0]
        return state if cs.get("restartCount", 0) >= 1 and "terminated" in cs.get("lastState", {}) else None

    state = sbx.wait_for(restarted, timeout=30, message="an OOM kill and a restart")
    cs = state["status"]["containerStatuses"][0]
    last = cs["lastState"]["terminated"]
    assert last["reason"] == "OOMKilled" and last["exitCode"] == 137, last
    assert state["containers"]["hog"]["oomKills"] >= 1
    assert state["status"]["qosClass"] == "Burstable"
    described = sbx.run("describe", "pod", "hog").stdout
    assert "OOMKilled" in described and "OOM Kills:" in described
    logs = sbx.run("logs", "hog", "--previous").stdout
    assert str(32 * 1024 * 1024) in logs and "survived" not in logs  # the limit, seen from inside
    stop_leaving_no_cgroup(sbx, proc)


def _cpu_seconds(cgroup: str) -> float:
    return int(Path(cgroup, "cpuacct.usage").read_text()) / 1e9


def test_a_spin_loop_with_a_250m_cpu_limit_uses_at_most_a_quarter_of_a_cpu(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: spin}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: limited
    image: busybox
    resources:
      limits: {cpu: 250m}
    command: ["sh", "-c", "while :; do :; done"]
  - name: free
    image: busybox
    command: ["sh", "-c", "while :; do :; done"]
""")
    proc = sbx.start(manifest, "-q")
    state = sbx.wait_running("spin", containers=2)
    limited = state["containers"]["limited"]["cgroup"]["cpuacct"]
    free = state["containers"]["free"]["cgroup"]["cpuacct"]
    assert Path(state["containers"]["limited"]["cgroup"]["cpu"], "cpu.cfs_quota_us").read_text().strip() == "25000"
    assert Path(state["containers"]["limited"]["cgroup"]["cpu"], "cpu.cfs_period_us").read_text().strip() == "100000"
    a0, b0, t0 = _cpu_seconds(limited), _cpu_seconds(free), time.monotonic()
    time.sleep(2.0)
    a1, b1, t1 = _cpu_seconds(limited), _cpu_seconds(free), time.monotonic()
    limited_share = (a1 - a0) / (t1 - t0)
    free_share = (b1 - b0) / (t1 - t0)
    assert 0.10 < limited_share <= 0.28, limited_share  # CFS enforces per 100 ms period
    assert free_share > 0.5, free_share  # the same loop unlimited: the limit is what holds it
    stop_leaving_no_cgroup(sbx, proc)


def test_limits_past_the_api_servers_cap_run_at_the_largest_the_kernel_takes(sbx: Sandbox) -> None:
    # The API server accepts 1e40 and caps it at 2^63-1; the kernel's largest CFS quota is
    # 2^44-1 µs: the pod runs with those, it is neither refused nor failed by a cgroup write.
    # (Small requests: defaulted from such limits they would not fit the node, OutOfcpu.)
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: huge}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: "1e40", memory: 1e40}
    command: ["sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/memory/memory.limit_in_bytes"]
""")
    result = sbx.run("run", str(manifest))
    assert result.returncode == 0, result.stderr
    quota, memory = [line.removeprefix("[main] ") for line in result.stdout.splitlines()[:2]]
    assert quota == str(2**44 - 1)
    assert int(memory) >= 2**63 - 4096  # the kernel rounds 2^63-1 down to a page


def test_a_pod_whose_requests_exceed_the_node_is_rejected_as_the_kubelets_admission_does(sbx: Sandbox) -> None:
    manifest = sbx.manifest(ONE_CONTAINER % {"name": "toobig", "extra": "resources: {requests: {cpu: \"1000\"}}"})
    result = sbx.run("run", str(manifest))
    assert result.returncode == 1
    assert "OutOfcpu: Pod was rejected: Node didn't have enough resource: cpu, requested: 1000000, used: 0, " \
           f"capacity: {(os.cpu_count() or 1) * 1000}" in result.stderr, result.stderr
    assert pod_dirs(sbx.cgroup_parent) == [] and sbx.state("toobig") is None


@pytest.mark.parametrize(("name", "resources", "qos"), [
    ("guaranteed", "{limits: {cpu: 500m, memory: 64Mi}}", "Guaranteed"),
    ("burstable", "{requests: {cpu: 100m, memory: 1Gi}}", "Burstable"),
    ("besteffort", "{}", "BestEffort"),
])
def test_qos_class_cgroup_values_and_oom_score_adj_as_the_kubelet_computes_them(
        sbx: Sandbox, name: str, resources: str, qos: str) -> None:
    proc = sbx.start(sbx.manifest(ONE_CONTAINER % {"name": name, "extra": f"resources: {resources}"}), "-q")
    state = sbx.wait_running(name)
    assert state["status"]["qosClass"] == qos
    cg = state["containers"]["app"]["cgroup"]
    pod = state["cgroup"]["paths"]
    shares = int(Path(cg["cpu"], "cpu.shares").read_text())
    memory = int(Path(cg["memory"], "memory.limit_in_bytes").read_text())
    adj = int(Path(f"/proc/{sbx.pid_of(name, 'app')}/oom_score_adj").read_text())
    if qos == "Guaranteed":
        assert shares == 512 and memory == 64 * 1024 * 1024
        assert int(Path(pod["memory"], "memory.limit_in_bytes").read_text()) == 64 * 1024 * 1024
        assert Path(pod["cpu"], "cpu.cfs_quota_us").read_text().strip() == "50000"
        # lowering a score needs CAP_SYS_RESOURCE, which this VM withholds even from root
        assert adj == (-997 if _has_cap(CAP_SYS_RESOURCE) else 0)
    elif qos == "Burstable":
        assert shares == 102 and memory > 2**62  # no limit
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        capacity = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemTotal:"))
        expected = 1000 - (1000 * 1024**3) // capacity
        assert adj == max(3, min(999, expected))
    else:
        assert shares == 2 and memory > 2**62
        assert adj == 1000
    sbx.stop(proc)


def test_a_whole_pod_on_the_v2_driver_over_this_hosts_cgroup2_hierarchy(
        sbx: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """SANDBOX_CGROUP_ROOT at the `unified` cgroup2 mount: the layout a pure v2 host has (without
    its controllers, which this host binds to v1): membership, the cgroup namespace, cgroup.kill
    at the end, /sys/fs/cgroup as cgroup2 inside; a limit it cannot enforce refuses the pod."""
    monkeypatch.setenv("SANDBOX_CGROUP_ROOT", "/sys/fs/cgroup/unified")
    refused = sbx.run("run", str(sbx.manifest(ONE_CONTAINER % {"name": "v2", "extra": ""}, "v2.yaml")))
    assert refused.returncode != 0 and "pids.max: the pids cgroup controller is not available" in refused.stderr
    limited = sbx.manifest(ONE_CONTAINER % {"name": "v2mem", "extra": "resources: {limits: {memory: 64Mi}}"})
    refused = sbx.run("run", "--pod-pids-limit", "-1", str(limited))
    assert refused.returncode != 0 and "memory.max: the memory cgroup controller" in refused.stderr
    assert pod_dirs(sbx.cgroup_parent) == []

    proc = sbx.start(sbx.tmp / "v2.yaml", "-q", "--pod-pids-limit", "-1")
    state = sbx.wait_running("v2")
    assert state["cgroup"]["mode"] == "v2" and list(state["cgroup"]["paths"]) == ["unified"]
    uid = state["uid"]
    assert memberships(sbx.pause_pid("v2"))[""] == f"/{sbx.cgroup_parent}/{uid}/pause"
    app = memberships(sbx.pid_of("v2", "app"))[""]
    assert app.startswith(f"/{sbx.cgroup_parent}/{uid}/") and not app.endswith("/pause")
    inside = sbx.run("exec", "v2", "-c", "app", "--", "sh", "-c", "grep ^0:: /proc/self/cgroup; "
                     "grep ' /sys/fs/cgroup ' /proc/self/mountinfo")
    assert "0::/\n" in inside.stdout and " - cgroup2 " in inside.stdout and " ro," in inside.stdout, inside.stdout
    stop_leaving_no_cgroup(sbx, proc)


def test_pod_level_resources_limit_the_pod_cgroup_and_bound_containers_without_their_own(sbx: Sandbox) -> None:
    manifest = sbx.manifest("""
apiVersion: v1
kind: Pod
metadata: {name: podlevel}
spec:
  terminationGracePeriodSeconds: 1
  resources:
    limits: {cpu: 500m, memory: 128Mi}
  containers:
  - name: bounded
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
  - name: own
    image: busybox
    resources:
      limits: {cpu: 100m, memory: 32Mi}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
""")
    proc = sbx.start(manifest, "-q")
    state = sbx.wait_running("podlevel", containers=2)
    assert state["status"]["qosClass"] == "Guaranteed"  # pod-level requests default to its limits
    pod = state["cgroup"]["paths"]
    mib = 1024 * 1024
    assert int(Path(pod["memory"], "memory.limit_in_bytes").read_text()) == 128 * mib
    assert Path(pod["cpu"], "cpu.cfs_quota_us").read_text().strip() == "50000"
    bounded = state["containers"]["bounded"]["cgroup"]
    own = state["containers"]["own"]["cgroup"]
    assert int(Path(bounded["memory"], "memory.limit_in_bytes").read_text()) == 128 * mib  # the pod's
    assert int(Path(own["memory"], "memory.limit_in_bytes").read_text()) == 32 * mib
    assert Path(own["cpu"], "cpu.cfs_quota_us").read_text().strip() == "10000"
    stop_leaving_no_cgroup(sbx, proc)
