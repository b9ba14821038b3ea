"""`sandbox agent`: the node agent in the foreground; and the client side of `run -d`/`apply`.

The agent owns every pod handed to it (`sandbox run -d`, `sandbox apply -f` with pods) and runs
them under the node options it was started with, as a kubelet runs every pod under its flags.
`run -d` starts an agent when none answers, with the node options given to that `run -d`.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from sandbox.agent.protocol import Client

START_TIMEOUT = 15.0  # seconds an agent started on demand gets to listen


def add_parser(verbs: Any) -> None:
    from sandbox.cli.run import add_node_options

    p = verbs.add_parser("agent", help="run the node agent in the foreground: it owns the pods handed to it "
                                       "with `run -d` and `apply -f`")
    add_node_options(p)
    p.add_argument("--config", metavar="FILE",
                   help="a KubeletConfiguration file (staticPodPath, staticPodURL, staticPodURLHeader, "
                        "fileCheckFrequency, httpCheckFrequency, podPidsLimit, containerLogMaxSize, "
                        "containerLogMaxFiles); flags given win over it")
    p.add_argument("--pod-manifest-path", metavar="PATH",
                   help="run a static pod for each manifest in this directory (or this one file), "
                        "following changes as the kubelet does")
    p.add_argument("--manifest-url", metavar="URL", help="run the static pods this URL serves (a Pod or a PodList)")
    p.add_argument("--manifest-url-header", action="append", metavar="'NAME:VALUE'",
                   help="a header for --manifest-url requests (repeatable; 'a:x,b:y' gives several)")
    p.add_argument("--file-check-frequency", metavar="DURATION", help="re-list of the manifest path (default 20s)")
    p.add_argument("--http-check-frequency", metavar="DURATION", help="poll of the manifest URL (default 20s)")
    p.add_argument("--hostname-override", metavar="NAME",
                   help="the node name static pods are suffixed with (default: the hostname, lowercased)")
    p.add_argument("--keep-pods", action="store_true",
                   help="on SIGTERM or SIGINT, exit and leave every pod running under its shim, as a kubelet's "
                        "restart leaves its containers; the next agent re-adopts them (default: stop every pod "
                        "gracefully first). `sandbox delete --all -A` stops them")
    import argparse

    p.add_argument("--ready-fd", type=int, default=-1, help=argparse.SUPPRESS)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from sandbox.agent.server import Agent, NodeOptions
    from sandbox.cli.common import layout
    from sandbox.cli.run import node_options
    from sandbox.errors import SandboxError
    from sandbox.images.options import from_args as pull_options
    from sandbox.log import get_logger

    if os.geteuid() != 0:
        raise SandboxError("sandbox agent needs root: it creates namespaces, mounts and pods' processes")
    log = get_logger("sandbox.agent")
    argv = tuple(_node_argv(args))  # as given: a `run -d` compares its own flags with these
    config = _agent_config(args)
    for warning in config.warnings:
        log.warning("%s", warning)
    from sandbox.agent.kubeletconfig import node_name

    # --hostname-override names the node for every pod given to the agent, as a pod bound to a
    # kubelet's node carries its name: spec.nodeName, the downward API's, the hostname label
    # admission matches nodeSelector against (without it: this machine's hostname, as before)
    assigned = node_name(config.hostname_override) if config.hostname_override else ""
    static = None
    if config.static_pod_path or config.manifest_url:
        from sandbox.agent.static import StaticPods

        static = StaticPods(config, assigned or node_name(), lambda text: log.warning("%s", text))
    options, cgroup_config = node_options(args)
    agent = Agent(layout(args), NodeOptions(options, cgroup_config, pull_options(args), argv),
                  static=static, keep_pods=args.keep_pods, node_name=assigned)
    agent.listen()
    return agent.serve(args.ready_fd)


def _agent_config(args: argparse.Namespace) -> Any:
    """The KubeletConfiguration (file and flags); its pod-wide settings become the node options
    where no flag gave them."""
    from sandbox.agent.kubeletconfig import AgentFlags, agent_config

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    config = agent_config(AgentFlags(
        config=args.config, pod_manifest_path=args.pod_manifest_path, manifest_url=args.manifest_url,
        manifest_url_header=tuple(args.manifest_url_header) if args.manifest_url_header else None,
        file_check_frequency=args.file_check_frequency, http_check_frequency=args.http_check_frequency,
        pod_pids_limit=text(args.pod_pids_limit), container_log_max_size=args.container_log_max_size,
        container_log_max_files=args.container_log_max_files, max_pods=text(args.max_pods),
        hostname_override=args.hostname_override))
    if args.pod_pids_limit is None:
        args.pod_pids_limit = -1 if config.pod_pids_limit is None else config.pod_pids_limit
    if args.container_log_max_size is None:
        args.container_log_max_size = str(config.container_log_max_size)
    if args.container_log_max_files is None:
        args.container_log_max_files = str(config.container_log_max_files)
    if args.max_pods is None:
        args.max_pods = config.max_pods
    return config


def without_path(message: str, sent: str) -> str:
    """An agent's refusal without the manifest's absolute path it starts with (a manifest error
    names the file it was given, which is the path the CLI prints first, as the user wrote it)."""
    prefix = f"{sent}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def run_detached(args: argparse.Namespace, files: list[str], *, apply: bool = False, shown: str = "") -> int:
    """Hand each manifest to the agent and print the pods' names once every container of each is
    running or has failed (1 then: the failure is printed). `shown`: what errors name instead of
    the file (`run NAME --image`'s pod/NAME: the user gave no file)."""
    from sandbox.agent.protocol import AgentError

    client = connect_or_start(args)
    failed = 0
    mode = getattr(args, "trace", None)  # `run -d --trace`: the agent sends each step of the start
    extra: dict[str, Any] = {}
    if mode:
        from sandbox.trace import stream_sink

        extra = {"trace": mode, "on_trace": stream_sink(sys.stderr.fileno(), mode)}
    try:
        for path in files:
            try:
                answer = client.call("RunPod", path=os.path.abspath(path), namespace=args.namespace, apply=apply,
                                     **extra)
            except AgentError as e:
                print(f"error: {shown or path}: {without_path(str(e), os.path.abspath(path))}", file=sys.stderr)
                failed = max(failed, e.code)
                continue
            print(f"pod/{answer['name']} {'unchanged' if answer.get('unchanged') else 'created'}")
            if answer.get("phase") == "Failed":
                why = ": ".join(part for part in (answer.get("reason"), answer.get("message")) if part)
                print(f"pod/{answer['name']}: Failed{': ' + why if why else ''}", file=sys.stderr)
                failed = max(failed, 1)
            for message in answer.get("mountFailures") or []:
                print(f"pod/{answer['name']}: FailedMount: {message}", file=sys.stderr)
            for c in answer.get("containers") or []:
                if c["state"] == "running" or (c["state"] == "terminated" and c.get("exitCode") == 0):
                    continue
                detail = c.get("reason") or c["state"]
                if c.get("exitCode") is not None:
                    detail += f", exit code {c['exitCode']}"
                print(f"pod/{answer['name']}: container {c['name']}: {c['state']} ({detail})", file=sys.stderr)
                failed = max(failed, 1)
    finally:
        client.close()
    return failed


def connect_or_start(args: argparse.Namespace) -> Client:
    """The running agent (refusing node options it was not started with), or a new one."""
    from sandbox.agent.protocol import AgentUnavailable, Client, socket_path_of

    path = socket_path_of(args.root)
    try:
        client = Client.connect(path)
    except AgentUnavailable:
        _start_agent(args)
        return Client.connect(path)
    given = _node_argv(args)
    if given:
        answer = client.call("Version")
        if given != answer.get("nodeOptions"):
            client.close()
            from sandbox.errors import UsageError

            raise UsageError(f"{' '.join(given)}: the node agent (pid {answer.get('pid')}) runs every pod with its "
                             f"own node options ({' '.join(answer.get('nodeOptions') or []) or 'the defaults'}); "
                             "omit them, or stop the agent and start it with them")
    return client


def _node_argv(args: argparse.Namespace) -> list[str]:
    """The node options given, as flags in add_node_options' order: `run -d` compares its own with
    the running agent's. Read from cli/run.py's fastargs table, so `run -d` never builds a parser."""
    from sandbox.cli.fastargs import FLAG
    from sandbox.cli.run import NODE_DEFAULTS, NODE_OPTIONS

    argv: list[str] = []
    for flag, (dest, kind, _) in NODE_OPTIONS.items():
        default = NODE_DEFAULTS[dest]
        value = getattr(args, dest, default)
        if value == default:
            continue
        if kind == FLAG:
            argv.append(flag)
        elif isinstance(value, list):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    return argv


def _start_agent(args: argparse.Namespace) -> None:
    """An agent in its own session, its output in <log>/sandbox-agent.log; returns once it listens."""
    import select
    import subprocess

    from sandbox.cli.common import layout
    from sandbox.errors import SandboxError

    root = layout(args)
    log_path = root.logs.parent / "sandbox-agent.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "sandbox"]
    if args.root:
        argv += ["--root", args.root]
    if args.verbose:
        argv.append("-v")
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    argv += ["agent", *_node_argv(args), "--ready-fd", str(ready_w)]
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
                                 pass_fds=(ready_w,), start_new_session=True, close_fds=True)
    finally:
        os.close(log_fd)
        os.close(ready_w)
    try:
        ready, _, _ = select.select([ready_r], [], [], START_TIMEOUT)
        line = os.read(ready_r, 64) if ready else b""
    finally:
        os.close(ready_r)
    if not line.strip():
        child.poll()
        raise SandboxError(f"the node agent did not start (see {log_path})")
    # It stays running in its own session; a Popen object never waits for it.
    child.returncode = 0
