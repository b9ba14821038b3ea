"""`sandbox run FILE`: run a Pod in the foreground until it ends (or Ctrl-C / SIGTERM);
`sandbox run NAME --image=IMAGE`: the same with a pod made from flags, as `kubectl run` makes it
(cli/generate.py)."""

from __future__ import annotations

import sys

from sandbox.cli.fastargs import APPEND, FLAG, TRACE, VALUE, FastVerb

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from sandbox.cli.fastargs import Option


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("run", help="run a Pod manifest in the foreground (-d: hand it to the node agent)")
    p.add_argument("file", help="Pod manifest (YAML or JSON); with --image, the new pod's name (kubectl run)")
    p.add_argument("-d", "--detach", action="store_true",
                   help="hand the pod to the node agent (started if none runs) and return once every "
                        "container is running or has failed; the node options are then the agent's")
    add_node_options(p)
    from sandbox.cli.generate import add_generator_options

    add_generator_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="do not stream container output")
    p.add_argument("--rm", action="store_true", help="delete the pod (its record and logs) when it ends")
    from sandbox.cli import add_trace_option

    add_trace_option(p)
    p.set_defaults(handler=handle)


def add_node_options(p: Any) -> None:
    """How this node runs pods: `sandbox run`'s options, and the node agent's."""
    p.add_argument("--backoff-initial", default="10s", metavar="DURATION",
                   help="crash-loop back-off after the second exit (default 10s)")
    p.add_argument("--backoff-max", default="300s", metavar="DURATION",
                   help="crash-loop back-off cap (default 300s)")
    p.add_argument("--probe-scale", type=float, default=1.0, metavar="FACTOR",
                   help="multiply every probe's initialDelaySeconds, periodSeconds and timeoutSeconds "
                        "(e.g. 0.1: ten times faster; for tests and demos)")
    p.add_argument("--eviction-interval", default="10s", metavar="DURATION",
                   help="how often a pod with an ephemeral-storage limit or emptyDir sizeLimit is measured "
                        "for eviction (default 10s, the kubelet's evictionMonitoringPeriod)")
    p.add_argument("--container-log-max-size", metavar="QUANTITY",
                   help="rotate a container's log file before it grows past this size (a quantity, "
                        "default 10Mi as the kubelet's containerLogMaxSize; negative: never rotate)")
    p.add_argument("--container-log-max-files", metavar="N",
                   help="log files kept per container instance, the current one included (at least 2, "
                        "default 5 as the kubelet's containerLogMaxFiles)")
    p.add_argument("--cgroup-driver", default="auto", metavar="DRIVER",
                   help="auto (default), cgroupfs or systemd: how pod cgroups are managed")
    p.add_argument("--cgroup-parent", default="", metavar="NAME",
                   help="the cgroup every pod's cgroup is created under, in each hierarchy, made "
                        "with the first pod and removed with the last (default: "
                        "$SANDBOX_CGROUP_PARENT, else sandbox)")
    p.add_argument("--pod-pids-limit", type=int, default=None, metavar="N",
                   help="at most N processes in a pod (the kubelet's podPidsLimit; default 4096, "
                        "-1: unlimited)")
    p.add_argument("--max-pods", type=int, default=None, metavar="N",
                   help="pods this node runs at once, counted over the --root (the kubelet's maxPods, default "
                        "110): one more is rejected at admission (OutOfpods)")
    p.add_argument("--no-host-path", action="store_true",
                   help="refuse any pod with a hostPath volume (it exposes the host's files)")
    p.add_argument("--network", default="bridge", metavar="MODE",
                   help="the pod network: bridge (default: a host bridge, one address per pod), cni (the "
                        "first network configuration in --cni-conf-dir, run by its plugins) or none (only lo)")
    p.add_argument("--bridge", default="", metavar="NAME",
                   help="the bridge of the built-in network (default: $SANDBOX_BRIDGE, else sandbox0)")
    p.add_argument("--pod-cidr", default="", metavar="CIDR",
                   help="the bridge network's IPv4 subnet (default: $SANDBOX_POD_CIDR, else 10.89.0.0/16)")
    p.add_argument("--masquerade", action="store_true",
                   help="NAT the pods' outbound traffic to the host's addresses (off: pods reach only "
                        "the host and each other)")
    p.add_argument("--keep-bridge", action="store_true",
                   help="leave the bridge in place when the last pod on it ends")
    p.add_argument("--cni-conf-dir", default="/etc/cni/net.d", metavar="DIR",
                   help="where --network cni finds its network configuration (default /etc/cni/net.d)")
    p.add_argument("--cni-bin-dir", default="/opt/cni/bin:/usr/lib/cni", metavar="DIRS",
                   help="where --network cni finds its plugins, colon-separated "
                        "(default /opt/cni/bin:/usr/lib/cni)")
    from sandbox.cli.image import add_registry_options

    add_registry_options(p)


# add_node_options as a fastargs table (sandbox/cli/fastargs.py): `sandbox run FILE` and `run -d`
# without argparse (~10 ms of imports). tests/unit/test_cli_fastargs.py checks that both parsers
# read the same namespace; an option missing here only sends its command line to argparse.
NODE_OPTIONS: dict[str, Option] = {
    "--backoff-initial": ("backoff_initial", VALUE, None),
    "--backoff-max": ("backoff_max", VALUE, None),
    "--probe-scale": ("probe_scale", VALUE, float),
    "--eviction-interval": ("eviction_interval", VALUE, None),
    "--container-log-max-size": ("container_log_max_size", VALUE, None),
    "--container-log-max-files": ("container_log_max_files", VALUE, None),
    "--cgroup-driver": ("cgroup_driver", VALUE, None),
    "--cgroup-parent": ("cgroup_parent", VALUE, None),
    "--pod-pids-limit": ("pod_pids_limit", VALUE, int),
    "--max-pods": ("max_pods", VALUE, int),
    "--no-host-path": ("no_host_path", FLAG, True),
    "--network": ("network", VALUE, None),
    "--bridge": ("bridge", VALUE, None),
    "--pod-cidr": ("pod_cidr", VALUE, None),
    "--masquerade": ("masquerade", FLAG, True),
    "--keep-bridge": ("keep_bridge", FLAG, True),
    "--cni-conf-dir": ("cni_conf_dir", VALUE, None),
    "--cni-bin-dir": ("cni_bin_dir", VALUE, None),
    "--registry-config": ("registry_config", VALUE, None),
    "--insecure-registry": ("insecure_registry", APPEND, None),
    "--registry-credentials": ("registry_credentials", VALUE, None),
}
NODE_DEFAULTS: dict[str, Any] = {
    "backoff_initial": "10s", "backoff_max": "300s", "probe_scale": 1.0, "eviction_interval": "10s",
    "container_log_max_size": None, "container_log_max_files": None, "cgroup_driver": "auto",
    "cgroup_parent": "", "pod_pids_limit": None, "max_pods": None, "no_host_path": False, "network": "bridge", "bridge": "",
    "pod_cidr": "", "masquerade": False, "keep_bridge": False, "cni_conf_dir": "/etc/cni/net.d",
    "cni_bin_dir": "/opt/cni/bin:/usr/lib/cni", "registry_config": None, "insecure_registry": [],
    "registry_credentials": None,
}


def handle(args: argparse.Namespace) -> int:
    if args.image is not None or args.dry_run is not None:
        from sandbox.cli.generate import run_generated

        return run_generated(args, run_file)
    if any(getattr(args, dest) not in (None, False) for dest in GENERATOR_DEFAULTS):
        from sandbox.cli.generate import check_generator_flags

        check_generator_flags(args)
    return run_file(args)


def run_file(args: argparse.Namespace) -> int:
    """`sandbox run FILE`."""
    if args.detach:
        from sandbox.cli.agent import run_detached

        return run_detached(args, [args.file], shown=getattr(args, "shown", ""))
    import gc

    # The cyclic collector finds nothing while the runtime imports and starts a pod, yet it ran 26
    # times in a one-container pod's cycle (5.2 ms, timed with gc.callbacks): off until the pod
    # runs (supervisor.run.resume_collector turns it back on, with what the start made frozen).
    gc.disable()
    from sandbox.cli.common import layout
    from sandbox.errors import SandboxError

    options, cgroup_config = node_options(args)
    import os

    from sandbox.images.options import from_args as pull_options
    from sandbox.supervisor.run import prepare, run_pod

    # input errors first, even as non-root; a missing image is pulled (IfNotPresent, Always)
    prepared = prepare(args.file, layout(args), args.namespace, pull_options(args), max_pods=options.max_pods)
    if prepared.warnings:
        from sandbox.cli.validate import print_warnings

        print_warnings(args.file, prepared.warnings)
    if os.geteuid() != 0:
        raise SandboxError("sandbox run needs root: it creates namespaces, mounts and a pod's processes")
    from sandbox.pod.cgroups import plan

    cgroups = plan(prepared.pod, cgroup_config)  # every limit checked against the host first
    from sandbox.pod.network import refuse_unpublishable_ports

    refuse_unpublishable_ports(prepared.pod, options.network)
    status = run_pod(prepared, backoff=options.backoff, quiet=args.quiet, probe_scale=options.probe_scale,
                     eviction_interval=options.eviction_interval,
                     log_policy=options.log_policy, remove=args.rm, cgroups=cgroups,
                     allow_host_path=options.allow_host_path, network=options.network)
    phase = status.get("phase")
    print(f"pod {prepared.namespace}/{prepared.name}: {phase}", file=sys.stderr)
    for cs in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
        print(f"  {cs['name']}: {describe_state(cs)}, restarts {cs.get('restartCount', 0)}", file=sys.stderr)
    return 0 if phase == "Succeeded" else 1


def node_options(args: argparse.Namespace) -> tuple[Any, Any]:
    """The node options, checked: (supervisor.run.RunOptions without a cgroup plan, CgroupConfig)."""
    from sandbox.errors import UsageError
    from sandbox.supervisor.backoff import BackoffConfig, parse_duration
    from sandbox.supervisor.run import DEFAULT_MAX_PODS, RunOptions

    try:
        backoff = BackoffConfig(initial=parse_duration(args.backoff_initial),
                                cap=parse_duration(args.backoff_max))
    except ValueError as e:
        raise UsageError(f"--backoff-initial/--backoff-max: {e}") from None
    try:
        eviction_interval = parse_duration(args.eviction_interval)
    except ValueError as e:
        raise UsageError(f"--eviction-interval: {e}") from None
    if eviction_interval <= 0:
        raise UsageError(f"--eviction-interval: must be positive, got {args.eviction_interval!r}")
    if not 0 < args.probe_scale <= 1000:
        raise UsageError(f"--probe-scale: must be a positive factor, got {args.probe_scale}")
    max_pods = DEFAULT_MAX_PODS if args.max_pods is None else args.max_pods
    if max_pods < 1:
        raise UsageError(f"--max-pods: must be at least 1, got {max_pods}")
    options = RunOptions(backoff=backoff, probe_scale=args.probe_scale, eviction_interval=eviction_interval,
                         log_policy=_log_policy(args), allow_host_path=not args.no_host_path,
                         network=_network_options(args), max_pods=max_pods)
    return options, _cgroup_config(args)


def _cgroup_config(args: argparse.Namespace) -> Any:
    from sandbox.cgroups.fs import check_name
    from sandbox.errors import SandboxError, UsageError
    from sandbox.pod.cgroups import DEFAULT_POD_PIDS_LIMIT, DRIVERS, CgroupConfig

    if args.cgroup_driver not in DRIVERS:
        raise UsageError(f"--cgroup-driver: must be one of {', '.join(DRIVERS)}, got {args.cgroup_driver!r}")
    limit = DEFAULT_POD_PIDS_LIMIT if args.pod_pids_limit is None else args.pod_pids_limit
    if limit == 0 or limit < -1:
        raise UsageError(f"--pod-pids-limit: must be a positive number or -1 (unlimited), got {limit}")
    config = CgroupConfig(args.cgroup_driver, args.cgroup_parent, None if limit == -1 else limit)
    try:
        check_name(config.parent_name())
    except SandboxError:
        raise UsageError(f"--cgroup-parent: must be one path component, got {config.parent_name()!r}") from None
    return config


def _network_options(args: argparse.Namespace) -> Any:
    """--network and its settings, checked before anything is created."""
    import os

    from sandbox.errors import SandboxError, UsageError
    from sandbox.pod.network import MODES, NetworkOptions

    if args.network not in MODES:
        raise UsageError(f"--network: must be one of {', '.join(MODES)}, got {args.network!r}")
    if args.network == "cni":
        from pathlib import Path

        from sandbox.network.cni import CniConfig

        dirs = tuple(Path(d) for d in args.cni_bin_dir.split(":") if d)
        return NetworkOptions("cni", cni=CniConfig(Path(args.cni_conf_dir), dirs))
    from sandbox.network.config import (
        DEFAULT_BRIDGE,
        DEFAULT_SUBNET,
        BridgeConfig,
        Subnet4,
        check_bridge_name,
    )

    name = args.bridge or os.environ.get("SANDBOX_BRIDGE") or DEFAULT_BRIDGE
    cidr = args.pod_cidr or os.environ.get("SANDBOX_POD_CIDR") or DEFAULT_SUBNET
    try:
        check_bridge_name(name)
    except SandboxError as e:
        raise UsageError(f"--bridge: {e}") from None
    try:
        subnet = Subnet4(cidr)  # integers, not ipaddress (1.2 ms of imports)
    except ValueError as e:
        raise UsageError(f"--pod-cidr: must be an IPv4 subnet of at least 4 addresses (/30), got {cidr!r}: {e}") from None
    if subnet.prefixlen > 30:
        raise UsageError(f"--pod-cidr: must be an IPv4 subnet of at least 4 addresses (/30), got {cidr!r}")
    cidr = str(subnet)
    return NetworkOptions(args.network, BridgeConfig(name, cidr, args.masquerade, args.keep_bridge))


def _log_policy(args: argparse.Namespace) -> Any:
    """The log rotation options, checked (None: both defaults, nothing to parse)."""
    if args.container_log_max_size is None and args.container_log_max_files is None:
        return None
    from sandbox.errors import UsageError
    from sandbox.logs import rotation

    size, files = rotation.DEFAULT_MAX_SIZE, rotation.DEFAULT_MAX_FILES
    try:
        if args.container_log_max_size is not None:
            size = rotation.parse_max_size(args.container_log_max_size)
    except ValueError as e:
        raise UsageError(f"--container-log-max-size: {e}") from None
    try:
        if args.container_log_max_files is not None:
            files = rotation.parse_max_files(args.container_log_max_files)
    except ValueError as e:
        raise UsageError(f"--container-log-max-files: {e}") from None
    return rotation.RotationPolicy(size, files)


def describe_state(cs: dict[str, Any]) -> str:
    """`terminated (Error, exit code 137)` / `waiting (CrashLoopBackOff)` / `running`."""
    state = cs.get("state") or {}
    if "terminated" in state:
        t = state["terminated"]
        return f"terminated ({t.get('reason', '')}, exit code {t.get('exitCode')})"
    if "waiting" in state:
        return f"waiting ({state['waiting'].get('reason', '')})"
    return "running" if "running" in state else "unknown"


# cli/generate.py's options (kubectl run's), in the fast table too: a FILE takes none of them
GENERATOR_OPTIONS: dict[str, Option] = {
    "--image": ("image", VALUE, None), "--restart": ("restart", VALUE, None), "--env": ("env", APPEND, None),
    "--port": ("port", VALUE, None), "--labels": ("labels", VALUE, None),
    "--annotations": ("annotations", APPEND, None), "--command": ("command", FLAG, True),
    "--image-pull-policy": ("image_pull_policy", VALUE, None), "--dry-run": ("dry_run", VALUE, None),
    "-o": ("output", VALUE, None), "--output": ("output", VALUE, None),
}
GENERATOR_DEFAULTS: dict[str, Any] = {"restart": None, "env": None, "port": None, "labels": None,
                                      "annotations": None, "command": False, "image_pull_policy": None,
                                      "dry_run": None, "output": None}

FAST = FastVerb("run", {
    "-d": ("detach", FLAG, True),
    "--detach": ("detach", FLAG, True),
    "-q": ("quiet", FLAG, True),
    "--quiet": ("quiet", FLAG, True),
    "--rm": ("rm", FLAG, True),
    **NODE_OPTIONS,
    **GENERATOR_OPTIONS,
    **TRACE,
}, {"detach": False, "quiet": False, "rm": False, "trace": None, "image": None, **GENERATOR_DEFAULTS,
    **NODE_DEFAULTS, "handler": handle},
    positionals=("file",))
