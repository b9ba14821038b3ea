#!/usr/bin/env python3
"""TCP throughput benchmark: the host's loopback, two containers of one pod over localhost, two pods over
the bridge (issue 11's "Benchmark" check).

Every case runs rootfs/netbench.c (static; the image's /usr/bin/netbench, the host runs the same file):
`netbench server PORT COUNT` sinks data, `netbench client HOST PORT SECONDS BUFSIZE` sends
BUFSIZE-byte writes for SECONDS and prints one JSON line, its time running from connect to the
server's close (every byte counted was read).

  loopback    host: server and client processes on 127.0.0.1 (a free port)
  localhost   one pod, containers `server` and `client`, client to 127.0.0.1; the client's connect
              retries until the server listens (containers start together)
  pod-to-pod  a long-running server pod; one client pod per round to the server pod's status.podIP
              (skipped with a message when the pod record shows no podIP: no pod network yet)

The cases are interleaved over the rounds (the order rotates each round), since this VM's figures
drift over minutes; medians and their ratios to the loopback median are reported. Target (issue 11):
localhost >= 0.95 of loopback; the bridge ratio is reported.

Pods run with the venv's `sandbox --root R run` in a temporary directory (its own busybox image,
pod cgroups under a parent of the benchmark's own), as bench/pod_cycle.py does; whatever happens
(Ctrl-C, SIGTERM, an error) pods are deleted, processes stopped, the directory and cgroup parent
removed, and then checked gone. Results: a table on stdout, then one JSON line; the same JSON in
bench/results/net_throughput.json.

    sudo .venv/bin/python bench/net_throughput.py [--rounds 5] [--seconds 5] [--bufsize 131072]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pod_cycle  # noqa: E402  (the workspace, image and clean-up helpers: one copy of each)

REPO = pod_cycle.REPO
RESULTS = REPO / "bench" / "results" / "net_throughput.json"
POD_PORT = 5201  # inside pods: their own network namespaces, so a fixed port cannot clash
LOCAL_POD = "netbench-local"
SERVER_POD = "netbench-server"
CLIENT_POD = "netbench-client"
CASES = ("loopback", "localhost", "pod-to-pod")
TARGET = "localhost >= 0.95 of loopback (issue 11); pod-to-pod ratio reported"
RESULT_LINE = re.compile(r'\{"bytes":\d+,"seconds":[0-9.]+,"bits_per_second":\d+\}')


def pod_manifest(name: str, containers: list[tuple[str, list[str]]]) -> str:
    """A restartPolicy Never pod; grace 0: netbench as PID 1 ignores SIGTERM, a grace is waited out."""
    lines = ["apiVersion: v1", "kind: Pod", "metadata:", f"  name: {name}", "spec:",
             "  restartPolicy: Never", "  terminationGracePeriodSeconds: 0", "  containers:"]
    for cname, command in containers:
        lines += [f"  - name: {cname}", "    image: busybox:1.36", f"    command: {json.dumps(command)}"]
    return "\n".join(lines) + "\n"


def host_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


@dataclass
class Bench:
    """The workspace and what the benchmark started in it, for the runs and the clean-up."""

    sandbox: Path
    root: Path  # sandbox --root
    base: Path  # the temporary directory
    netbench: Path  # the image's static binary, run on the host too
    env: dict[str, str]
    seconds: int
    bufsize: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    links_before: set[str] = field(default_factory=host_links)  # a bridge or veth must not outlive us

    def sandbox_argv(self, *args: str) -> list[str]:
        return [str(self.sandbox), "--root", str(self.root), *args]

    def client_argv(self, host: str, port: int, program: str = "netbench") -> list[str]:
        return [program, "client", host, str(port), str(self.seconds), str(self.bufsize)]

    def write_manifest(self, name: str, containers: list[tuple[str, list[str]]]) -> Path:
        path = self.base / f"{name}.yaml"
        path.write_text(pod_manifest(name, containers))
        return path


def parse_result(output: str, what: str) -> float:
    """Bits per second from netbench's JSON line in `output`."""
    found = RESULT_LINE.findall(output)
    if len(found) != 1:
        raise RuntimeError(f"{what}: expected one netbench result line, output was:\n{output[-2000:]}")
    return float(json.loads(found[0])["bits_per_second"])


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM (the runtime then stops its pod), SIGKILL after `timeout` s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def spawn(bench: Bench, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start argv in its own session (a terminal's Ctrl-C reaches only us), remembered for clean-up."""
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=bench.env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    bench.processes.append(process)
    return process


def finish(process: subprocess.Popen[bytes], log: Path, what: str, timeout: float) -> str:
    """Wait for process; its output. Stopped on timeout or interrupt."""
    try:
        process.wait(timeout=timeout)
    finally:
        stop(process)
    output = log.read_text(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{what} exited {process.returncode}:\n{output[-2000:]}")
    return output


def free_port() -> int:
    """A port nothing on the host listens on now (the kernel's pick for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_loopback(bench: Bench) -> float:
    port = free_port()
    argv = [str(bench.netbench), "server", str(port), "1"]
    server = spawn(bench, argv, bench.base / "loopback-server.log")
    client = spawn(bench, bench.client_argv("127.0.0.1", port, str(bench.netbench)),
                   bench.base / "loopback-client.log")
    output = finish(client, bench.base / "loopback-client.log", "host netbench client",
                    bench.seconds + 30)
    finish(server, bench.base / "loopback-server.log", "host netbench server", 10)
    return parse_result(output, "loopback")


def run_pod(bench: Bench, manifest: Path, what: str) -> str:
    """`sandbox run --rm` in the foreground (streams container output); its output."""
    log = bench.base / f"{manifest.stem}.log"
    process = spawn(bench, bench.sandbox_argv("run", "--rm", str(manifest)), log)
    return finish(process, log, what, bench.seconds + 60)


def run_localhost(bench: Bench) -> float:
    manifest = bench.write_manifest(LOCAL_POD, [("server", ["netbench", "server", str(POD_PORT), "1"]),
                                                ("client", bench.client_argv("127.0.0.1", POD_PORT))])
    return parse_result(run_pod(bench, manifest, "localhost pod"), "localhost")


def run_pod_to_pod(bench: Bench, server_ip: str) -> float:
    manifest = bench.write_manifest(CLIENT_POD, [("client", bench.client_argv(server_ip, POD_PORT))])
    return parse_result(run_pod(bench, manifest, "client pod"), "pod-to-pod")


def get_pod(bench: Bench, name: str) -> dict[str, Any]:
    result = subprocess.run(bench.sandbox_argv("get", "pod", name, "-o", "json"), env=bench.env,
                            capture_output=True, text=True, check=False)
    try:
        pod: dict[str, Any] = json.loads(result.stdout) if result.returncode == 0 else {}
    except json.JSONDecodeError:
        pod = {}
    return pod


def wait_for_pod_ip(bench: Bench, runtime: subprocess.Popen[bytes], timeout: float = 30) -> str | None:
    """The server pod's status.podIP; None if the pod runs and 2 s later still shows none (the kubelet
    sets podIP with the sandbox, before any container starts: 2 s only covers a late status write)."""
    deadline = time.monotonic() + timeout
    running = False
    while time.monotonic() < deadline:
        if runtime.poll() is not None:
            log = (bench.base / "server-pod.log").read_text(errors="replace")
            raise RuntimeError(f"the server pod's sandbox run exited {runtime.returncode}:\n{log[-2000:]}")
        status = get_pod(bench, SERVER_POD).get("status", {})
        if status.get("podIP"):
            return str(status["podIP"])
        if status.get("phase") == "Running" and not running:
            running = True
            deadline = min(deadline, time.monotonic() + 2)
        time.sleep(0.05)
    if not running:
        raise RuntimeError(f"pod {SERVER_POD} not running after {timeout} s")
    return None


@contextmanager
def server_pod(bench: Bench) -> Iterator[str | None]:
    """The long-running server pod for the pod-to-pod case; yields its podIP (None: none appeared)."""
    manifest = bench.write_manifest(SERVER_POD, [("server", ["netbench", "server", str(POD_PORT)])])
    runtime = spawn(bench, bench.sandbox_argv("run", "-q", "--rm", str(manifest)),
                    bench.base / "server-pod.log")
    try:
        yield wait_for_pod_ip(bench, runtime)
    finally:
        delete_pod(bench, SERVER_POD)
        stop(runtime)


@pod_cycle.uninterruptible
def delete_pod(bench: Bench, name: str) -> None:
    subprocess.run(bench.sandbox_argv("delete", "--timeout", "20", name), env=bench.env,
                   capture_output=True, check=False, start_new_session=True)


@pod_cycle.uninterruptible
def clean_up(bench: Bench) -> None:
    """Stop what we started, then delete any pod record left in our private root."""
    for process in bench.processes:
        stop(process)
    names = subprocess.run(bench.sandbox_argv("get", "pods", "-o", "name"), env=bench.env,
                           capture_output=True, text=True, check=False).stdout.split()
    for name in names:
        delete_pod(bench, name.rsplit("/", 1)[-1])


# ---------------------------------------------------------------------------------------------
# Rounds and report


def measure(bench: Bench, rounds: int, server_ip: str | None) -> dict[str, list[float]]:
    cases = [c for c in CASES if c != "pod-to-pod" or server_ip]
    results: dict[str, list[float]] = {c: [] for c in cases}
    runners = {"loopback": lambda: run_loopback(bench), "localhost": lambda: run_localhost(bench),
               "pod-to-pod": lambda: run_pod_to_pod(bench, server_ip or "")}
    for index in range(rounds):
        order = cases[index % len(cases):] + cases[:index % len(cases)]
        for case in order:
            bps = runners[case]()
            results[case].append(bps)
            print(f"  round {index + 1}/{rounds} {case}: {bps / 1e9:.2f} Gbit/s", file=sys.stderr, flush=True)
    return results


def summarise(results: dict[str, list[float]]) -> list[dict[str, object]]:
    loopback = statistics.median(results["loopback"])
    return [{"case": case, "runs": len(bps), "median_gbit_s": round(statistics.median(bps) / 1e9, 3),
             "min_gbit_s": round(min(bps) / 1e9, 3), "max_gbit_s": round(max(bps) / 1e9, 3),
             "ratio_to_loopback": round(statistics.median(bps) / loopback, 3)}
            for case, bps in results.items()]


def verdicts(rows: list[dict[str, object]], skipped: str | None) -> list[str]:
    ratio = {str(r["case"]): float(str(r["ratio_to_loopback"])) for r in rows}
    found = [f"localhost {ratio['localhost']:.3f} of loopback: "
             f"{'met' if ratio['localhost'] >= 0.95 else 'MISSED'} (>= 0.95)"]
    found.append(f"pod-to-pod {ratio['pod-to-pod']:.3f} of loopback (reported)" if "pod-to-pod" in ratio
                 else f"pod-to-pod: skipped ({skipped})")
    return found


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| case | median Gbit/s | min | max | runs | ratio to loopback |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['case']} | {r['median_gbit_s']} | {r['min_gbit_s']} | {r['max_gbit_s']} | {r['runs']} | "
              f"{r['ratio_to_loopback']} |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Setting up


def prepare(sandbox: Path, stack: ExitStack, seconds: int, bufsize: int) -> Bench:
    base = Path(tempfile.mkdtemp(prefix="net-throughput-"))
    stack.callback(pod_cycle.remove_workspace, base)
    env = pod_cycle.child_env(base, pycache=True)
    env["SANDBOX_CGROUP_PARENT"] = pod_cycle.CGROUP_PARENT
    stack.callback(pod_cycle.remove_cgroup_parent)
    root = base / "sandbox"
    print(f"building busybox into {root}", file=sys.stderr, flush=True)
    rootfs = pod_cycle.build_image(sandbox, root, env)
    netbench = rootfs / "usr" / "bin" / "netbench"
    if not netbench.exists():
        raise RuntimeError(f"no /usr/bin/netbench in the image at {rootfs} (rootfs/build-busybox.sh)")
    bench = Bench(sandbox, root, base, netbench, env, seconds, bufsize)
    stack.callback(clean_up, bench)  # runs before remove_workspace
    return bench


def leftovers(bench: Bench) -> dict[str, object]:
    alive = [p.pid for p in bench.processes if p.poll() is None]
    return {"processes": alive, "links": sorted(host_links() - bench.links_before),
            "mounts": pod_cycle.mounts_under(bench.base),
            "pod_cgroups": pod_cycle.pod_cgroups(), "workspace_exists": bench.base.exists()}


def environment(args: argparse.Namespace) -> dict[str, object]:
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
            "kernel": platform.release(), "cpus": os.cpu_count(), "commit": commit, "rounds": args.rounds,
            "seconds": args.seconds, "bufsize": args.bufsize, "tool": "rootfs/netbench.c (static, musl)"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds; each runs every case once (default 5)")
    p.add_argument("--seconds", type=int, default=5, help="seconds each client sends (default 5)")
    p.add_argument("--bufsize", type=int, default=128 * 1024, help="bytes per write (default 131072)")
    p.add_argument("--sandbox", type=Path, default=REPO / ".venv" / "bin" / "sandbox")
    p.add_argument("--json", type=Path, default=RESULTS, help=f"where to write results (default {RESULTS})")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.seconds < 1 or not 1 <= args.bufsize <= 64 << 20:
        p.error("--rounds and --seconds must be >= 1, --bufsize in 1..67108864")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("net_throughput: needs root (pods)")
    if not args.sandbox.exists():
        sys.exit(f"net_throughput: missing {args.sandbox}")
    pod_cycle.install_stop_handlers()
    with ExitStack() as stack:
        bench = prepare(args.sandbox.absolute(), stack, args.seconds, args.bufsize)
        with server_pod(bench) as server_ip:
            skipped = None if server_ip else "the server pod shows no status.podIP (no pod network)"
            if skipped:
                print(f"pod-to-pod: skipped: {skipped}", file=sys.stderr, flush=True)
            results = measure(bench, args.rounds, server_ip)
    check = pod_cycle.settled(lambda: leftovers(bench))
    rows = summarise(results)
    found = verdicts(rows, skipped)
    print(table(rows))
    print()
    print("\n".join(f"- {v}" for v in found))
    report = {"environment": environment(args), "server_pod_ip": server_ip, "rows": rows,
              "bits_per_second": results, "target": TARGET, "verdicts": found}
    print(json.dumps(report, separators=(",", ":")))
    return pod_cycle.finish(check, report, args.json)


if __name__ == "__main__":
    pod_cycle.run_main(main, "net_throughput")
