"""`sandbox describe pod NAME`: a pod in `kubectl describe pod`'s layout, events included.

The text is built as kubectl builds it (`k8s.io/kubectl/pkg/describe/describe.go` describePod):
lines with tab-separated cells written at indent levels of two spaces, then aligned by Go's
text/tabwriter (minwidth 0, padding 2, padchar ' '). `describe_pod` is pure: the state dict as
`sandbox get` reads it (manifest, status, events) and the time to measure ages against.
"""

from __future__ import annotations

import argparse
import sys
import time

from sandbox.cli.get import (  # one list of the names kubectl accepts for each kind
    CONFIG_KINDS,
    POD_KINDS,
    deletion_timestamp,
    node_name,
)
from sandbox.status import qos_class  # one function for `describe` and the status the runtime writes

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Obj = dict[str, Any]

NONE = "<none>"
GO_ZERO_TIME = "Mon, 01 Jan 0001 00:00:00 +0000"  # a null metav1.Time, formatted
MAX_ANNOTATION_LEN = 140


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("describe", help="show a pod in detail, with its events")
    from sandbox.cli.common import add_kind_argument

    add_kind_argument(p, [*POD_KINDS, *CONFIG_KINDS],
                      f"what to describe: {', '.join([*POD_KINDS, *CONFIG_KINDS])}, or TYPE/NAME (pod/web)")
    p.add_argument("name", nargs="?", help="pod (ConfigMap, Secret) name; none: every pod of the namespace")
    from sandbox.cli.selector import add_option

    add_option(p)
    p.add_argument("-A", "--all-namespaces", action="store_true", help="without a name: pods of every namespace")
    p.set_defaults(handler=handle)




def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import split_resource
    from sandbox.cli.node import NODE_KINDS
    from sandbox.errors import UsageError

    split_resource(args, (*POD_KINDS, *CONFIG_KINDS, *NODE_KINDS))
    if args.kind in NODE_KINDS:
        from sandbox.cli.node import describe_node

        return describe_node(args)
    if args.kind in CONFIG_KINDS:
        if not args.name or args.selector is not None:
            raise UsageError(f"describe {args.kind}: give its name (-l selects pods only)")
        return _handle_config(args, CONFIG_KINDS[args.kind])
    if args.name and args.selector is not None:
        raise UsageError("name cannot be provided when a selector is specified")
    from sandbox.cli.common import pod_dir
    from sandbox.state.view import read_pod

    if args.name:
        state, _ = read_pod(pod_dir(args, args.name))
        sys.stdout.write(describe_pod(state, time.time()))
        return 0
    # `describe pods [-l SELECTOR]`: every pod (that matches), one description after the other
    from sandbox.cli.common import namespace
    from sandbox.cli.selector import selected_pods

    ns = None if args.all_namespaces else namespace(args)
    states = list(selected_pods(args, ns, args.selector or "").values())
    if not states:
        print(f"No resources found in {ns} namespace." if ns else "No resources found", file=sys.stderr)
        return 0
    now = time.time()
    sys.stdout.write("\n\n".join(describe_pod(state, now) for state in states))
    return 0


def describe_pod(state: Obj, now: float, node: str | None = None) -> str:
    """kubectl's describe text for a pod's state; `node` defaults to its spec.nodeName, else this
    machine's hostname."""
    import os

    manifest = state.get("manifest") or {}
    spec, meta = manifest.get("spec") or {}, manifest.get("metadata") or {}
    status = state.get("status") or {}
    w = _Writer()
    if node is None:
        node = node_name(state, os.uname().nodename)
    _header(w, state, spec, meta, status, node, now)
    if spec.get("resources") is not None:  # pod-level resources (KEP-2837), before the containers
        w.write(0, "Resources:\n")
        _resources(w, spec["resources"], 1)
    env = _runtime_env(state)
    if spec.get("initContainers"):
        _containers(w, "Init Containers", spec["initContainers"], status.get("initContainerStatuses"), env, state)
    _containers(w, "Containers", spec.get("containers") or [], status.get("containerStatuses"), env, state)
    _conditions(w, status.get("conditions") or [])
    _volumes(w, spec.get("volumes") or [])
    w.write(0, f"QoS Class:\t{status.get('qosClass') or qos_class(spec)}\n")
    _cgroup(w, state.get("cgroup"))
    _labels(w, "Node-Selectors", spec.get("nodeSelector") or {})
    _tolerations(w, spec.get("tolerations") or [])
    _events(w, state.get("events") or [], now)
    return w.text()


# --- sections ---------------------------------------------------------------------------------------


def _header(w: _Writer, state: Obj, spec: Obj, meta: Obj, status: Obj, node: str, now: float) -> None:
    w.write(0, f"Name:\t{state.get('name') or meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{state.get('namespace') or meta.get('namespace', 'default')}\n")
    # The API server's Priority admission sets 0 when no class applies.
    w.write(0, f"Priority:\t{spec.get('priority', 0)}\n")
    _write_if(w, 0, "Priority Class Name", spec.get("priorityClassName"))
    _write_if(w, 0, "Runtime Class Name", spec.get("runtimeClassName"))
    _write_if(w, 0, "Service Account", spec.get("serviceAccountName"))
    # kubectl prints spec.nodeName + "/" + status.hostIP (an empty host IP leaves the slash).
    w.write(0, f"Node:\t{node + '/' + status.get('hostIP', '') if node else NONE}\n")
    if status.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    _labels(w, "Labels", meta.get("labels") or {})
    _annotations(w, meta.get("annotations") or {})
    deletion = state.get("deletion")
    if isinstance(deletion, dict) and status.get("phase") not in ("Failed", "Succeeded"):
        # kubectl: a pod with a deletionTimestamp that has not ended, "lasts" the time since that
        # timestamp, which is the grace period's end: "<invalid>" until 2 s before it
        w.write(0, f"Status:\tTerminating (lasts {human_duration(now - deletion_timestamp(deletion))})\n")
        w.write(0, f"Termination Grace Period:\t{int(deletion.get('graceSeconds') or 0)}s\n")
    else:
        w.write(0, f"Status:\t{status.get('phase', '')}\n")
    _write_if(w, 0, "Reason", status.get("reason"))
    _write_if(w, 0, "Message", status.get("message"))
    seccomp = (spec.get("securityContext") or {}).get("seccompProfile")
    if seccomp:
        _seccomp(w, 0, seccomp)
    _pod_ips(w, status)


def _pod_ips(w: _Writer, status: Obj) -> None:
    """kubectl's IP line and describePodIPs: the pod IP kept in the status, also after the pod ended."""
    w.write(0, f"IP:\t{status.get('podIP', '')}\n")
    ips = [entry.get("ip", "") for entry in status.get("podIPs") or []]
    if not ips:
        w.write(0, f"IPs:\t{NONE}\n")
        return
    w.write(0, "IPs:\n")  # no cell: as kubectl's, the line ends the tabwriter block above it
    for ip in ips:
        w.write(1, f"IP:\t{ip}\n")


def _seccomp(w: _Writer, level: int, profile: Obj) -> None:
    w.write(level, f"SeccompProfile:\t{profile.get('type', '')}\n")
    if profile.get("type") == "Localhost":
        w.write(level + 1 if level else 0, f"LocalhostProfile:\t{profile.get('localhostProfile', '')}\n")


def _containers(w: _Writer, label: str, containers: list[Obj], statuses: list[Obj] | None,
                env: dict[str, dict[str, str]], state: Obj) -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    w.write(0, f"{label}:{' ' + NONE if not containers else ''}\n")
    for c in containers:
        cs = by_name.get(c.get("name"))
        _container_basics(w, c, cs)
        _command(w, c)
        if cs is not None:
            _describe_state(w, "State", cs.get("state") or {})
            if (cs.get("lastState") or {}).get("terminated"):
                _describe_state(w, "Last State", cs["lastState"])
            w.write(2, f"Ready:\t{'True' if cs.get('ready') else 'False'}\n")
            w.write(2, f"Restart Count:\t{cs.get('restartCount', 0)}\n")
            _oom_kills(w, (state.get("containers") or {}).get(c.get("name")))
        _resources(w, c.get("resources") or {})
        for key, title in (("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"), ("startupProbe", "Startup")):
            if c.get(key):
                w.write(2, f"{title}:\t{describe_probe(c[key])}\n")
        if c.get("envFrom"):
            _env_from(w, c["envFrom"])
        _env(w, c, env.get(c.get("name", ""), {}), state)
        _mounts(w, c.get("volumeMounts") or [])


def _container_basics(w: _Writer, c: Obj, cs: Obj | None) -> None:
    w.write(1, f"{c.get('name', '')}:\n")
    if cs is not None:
        w.write(2, f"Container ID:\t{cs.get('containerID', '')}\n")
    w.write(2, f"Image:\t{c.get('image', '')}\n")
    if cs is not None:
        w.write(2, f"Image ID:\t{cs.get('imageID', '')}\n")
    ports = c.get("ports") or []
    container_ports = ", ".join(f"{p.get('containerPort', 0)}/{p.get('protocol', 'TCP')}" for p in ports)
    host_ports = ", ".join(f"{p.get('hostPort', 0)}/{p.get('protocol', 'TCP')}" for p in ports)
    w.write(2, f"Ports:\t{container_ports}\n" if "," in container_ports else f"Port:\t{container_ports or NONE}\n")
    w.write(2, f"Host Ports:\t{host_ports}\n" if "," in host_ports else f"Host Port:\t{host_ports or NONE}\n")
    seccomp = (c.get("securityContext") or {}).get("seccompProfile")
    if seccomp:
        _seccomp(w, 2, seccomp)


def _command(w: _Writer, c: Obj) -> None:
    for key, title in (("command", "Command"), ("args", "Args")):
        if c.get(key):
            w.write(2, f"{title}:\n")
            for arg in c[key]:
                for line in str(arg).split("\n"):
                    w.write(3, f"{line}\n")


def _describe_state(w: _Writer, title: str, state: Obj) -> None:
    if "running" in state:
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{rfc1123z((state['running'] or {}).get('startedAt'))}\n")
    elif "terminated" in state:
        t = state["terminated"] or {}
        w.write(2, f"{title}:\tTerminated\n")
        _write_if(w, 3, "Reason", t.get("reason"))
        _write_if(w, 3, "Message", t.get("message"))
        w.write(3, f"Exit Code:\t{t.get('exitCode', 0)}\n")
        _write_if(w, 3, "Signal", t.get("signal"))
        w.write(3, f"Started:\t{rfc1123z(t.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{rfc1123z(t.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")
        _write_if(w, 3, "Reason", (state.get("waiting") or {}).get("reason"))


def _oom_kills(w: _Writer, record: object) -> None:
    """Not in kubectl: the OOM kills the runtime counted from the cgroup's events over the pod's
    life (a restarted container's earlier instances too), shown only when there were any."""
    kills = record.get("oomKills") if isinstance(record, dict) else None
    if type(kills) is int and kills > 0:
        w.write(2, f"OOM Kills:\t{kills}\n")


def _cgroup(w: _Writer, record: object) -> None:
    """Not in kubectl (the node's business there): the pod cgroup, one directory per line (keys
    sharing a directory, co-mounted v1 controllers, on one), after the layout and driver."""
    if not isinstance(record, dict) or not isinstance(record.get("paths"), dict) or not record["paths"]:
        return
    by_dir: dict[str, list[str]] = {}
    for key, path in record["paths"].items():
        by_dir.setdefault(str(path), []).append(str(key))
    w.write(0, f"Cgroup:\t{record.get('mode') or '?'}, {record.get('driver') or '?'} driver\n")
    for path, keys in sorted(by_dir.items(), key=lambda item: sorted(item[1])):
        w.write(0, f"\t{path} ({','.join(sorted(keys))})\n")


def _resources(w: _Writer, resources: Obj, level: int = 2) -> None:
    """kubectl's describeResources: a container's at level 2, the pod's spec.resources at 1."""
    for key, title in (("limits", "Limits"), ("requests", "Requests")):
        values = resources.get(key) or {}
        if values:
            w.write(level, f"{title}:\n")
        for name in sorted(values):
            w.write(level + 1, f"{name}:\t{values[name]}\n")


def _env_from(w: _Writer, sources: list[Obj]) -> None:
    w.write(2, "Environment Variables from:\n")
    for source in sources:
        kind, ref = ("ConfigMap", source["configMapRef"]) if source.get("configMapRef") else \
            ("Secret", source.get("secretRef") or {})
        optional = _go_bool(ref.get("optional"))
        prefix = source.get("prefix")
        what = f"{kind} with prefix '{prefix}'" if prefix else kind
        w.write(3, f"{ref.get('name', '')}\t{what}\tOptional: {optional}\n")


def _env(w: _Writer, c: Obj, runtime_env: dict[str, str], state: Obj) -> None:
    entries = c.get("env") or []
    w.write(2, f"Environment:{'' if entries else chr(9) + NONE}\n")
    for e in entries:
        name, source = e.get("name", ""), e.get("valueFrom")
        if not source:
            for i, line in enumerate(str(e.get("value", "")).split("\n")):
                w.write(3, f"{name}:\t{line}\n" if i == 0 else f"\t{line}\n")
        elif source.get("fieldRef"):
            ref = source["fieldRef"]
            value = runtime_env.get(name, _field_value(state, ref.get("fieldPath", "")))
            w.write(3, f"{name}:\t{value} ({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath', '')})\n")
        elif source.get("resourceFieldRef"):
            ref = source["resourceFieldRef"]
            w.write(3, f"{name}:\t{_resource_field_value(c, ref)} ({ref.get('resource', '')})\n")
        elif source.get("secretKeyRef"):
            ref = source["secretKeyRef"]
            w.write(3, f"{name}:\t<set to the key '{ref.get('key', '')}' in secret '{ref.get('name', '')}'>"
                       f"\tOptional: {_go_bool(ref.get('optional'))}\n")
        elif source.get("configMapKeyRef"):
            ref = source["configMapKeyRef"]
            w.write(3, f"{name}:\t<set to the key '{ref.get('key', '')}' of config map '{ref.get('name', '')}'>"
                       f"\tOptional: {_go_bool(ref.get('optional'))}\n")


def _resource_field_value(c: Obj, ref: Obj) -> str:
    """kubectl's value for a resourceFieldRef: from the container's spec alone (its
    ExtractContainerResourceValue, never the node's allocatable the kubelet gives the process),
    "node allocatable" where that is 0 for limits.cpu or limits.memory. The spec is the API
    server's: a request not written is its limit."""
    from sandbox.spec.model import Quantity
    from sandbox.spec.quantity import parse_quantity

    def quantity(value: object) -> Quantity | None:
        return parse_quantity(str(value)) if value is not None else None

    resource = str(ref.get("resource", ""))
    kind, _, res_name = resource.partition(".")
    resources = c.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if kind not in ("limits", "requests"):
        return ""
    amount = quantity(limits.get(res_name) if kind == "limits" else requests.get(res_name, limits.get(res_name)))
    divisor = quantity(ref.get("divisor"))
    unit = divisor.milli if divisor is not None and divisor.milli > 0 else 1000
    text = str(-(-(amount.milli if amount is not None else 0) // unit))
    if text == "0" and resource in ("limits.cpu", "limits.memory"):
        return "node allocatable"
    return text


def _mounts(w: _Writer, mounts: list[Obj]) -> None:
    w.write(2, f"Mounts:{'' if mounts else chr(9) + NONE}\n")
    for m in sorted(mounts, key=lambda m: str(m.get("mountPath", ""))):
        flags = ["ro" if m.get("readOnly") else "rw"]
        if m.get("subPath"):
            flags.append(f'path="{m["subPath"]}"')
        w.write(3, f"{m.get('mountPath', '')} from {m.get('name', '')} ({','.join(flags)})\n")


def _conditions(w: _Writer, conditions: list[Obj]) -> None:
    if not conditions:
        return
    w.write(0, "Conditions:\n  Type\tStatus\n")
    for c in conditions:
        w.write(1, f"{c.get('type', '')} \t{c.get('status', '')} \n")


def _volumes(w: _Writer, volumes: list[Obj]) -> None:
    if not volumes:
        w.write(0, f"Volumes:\t{NONE}\n")
        return
    w.write(0, "Volumes:\n")
    for v in volumes:
        w.write(1, f"{v.get('name', '')}:\n")
        _volume_source(w, v)


# kubectl's print<Kind>VolumeSource for the kinds a local pod can have: the Type line, then fields.
_VOLUME_KINDS: dict[str, tuple[str, Callable[[Obj], list[tuple[str, object]]]]] = {
    "hostPath": ("HostPath (bare host directory volume)",
                 lambda s: [("Path", s.get("path", "")), ("HostPathType", s.get("type") or NONE)]),
    "emptyDir": ("EmptyDir (a temporary directory that shares a pod's lifetime)",
                 lambda s: [("Medium", s.get("medium", "")), ("SizeLimit", s.get("sizeLimit") or "<unset>")]),
    "secret": ("Secret (a volume populated by a Secret)",
               lambda s: [("SecretName", s.get("secretName", "")), ("Optional", _go_bool(s.get("optional")))]),
    "configMap": ("ConfigMap (a volume populated by a ConfigMap)",
                  lambda s: [("Name", s.get("name", "")), ("Optional", _go_bool(s.get("optional")))]),
}


def _volume_source(w: _Writer, v: Obj) -> None:
    kind = next((k for k in _VOLUME_KINDS if k in v), None)
    if kind is not None:
        title, fields = _VOLUME_KINDS[kind]
        w.write(2, f"Type:\t{title}\n" + "".join(f"    {k}:\t{value}\n" for k, value in fields(v[kind] or {})))
    elif "downwardAPI" in v:
        w.write(2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n")
        for item in (v["downwardAPI"] or {}).get("items") or []:
            ref = item.get("fieldRef") or {}
            res = item.get("resourceFieldRef") or {}
            source = ref.get("fieldPath") or res.get("resource", "")
            w.write(3, f"{source} -> {item.get('path', '')}\n")
    elif "projected" in v:
        _projected(w, v["projected"] or {})
    else:
        w.write(1, "<unknown>\n")


def _projected(w: _Writer, projected: Obj) -> None:
    w.write(2, "Type:\tProjected (a volume that contains injected data from multiple sources)\n")
    for source in projected.get("sources") or []:
        if source.get("secret") is not None:
            ref = source["secret"]
            w.write(2, f"SecretName:\t{ref.get('name', '')}\n    Optional:\t{_go_bool(ref.get('optional'))}\n")
        elif source.get("downwardAPI") is not None:
            w.write(2, "DownwardAPI:\ttrue\n")
        elif source.get("configMap") is not None:
            ref = source["configMap"]
            w.write(2, f"ConfigMapName:\t{ref.get('name', '')}\n    Optional:\t{_go_bool(ref.get('optional'))}\n")
        elif source.get("serviceAccountToken") is not None:
            w.write(2, f"TokenExpirationSeconds:\t{source['serviceAccountToken'].get('expirationSeconds', 3600)}\n")


def _labels(w: _Writer, title: str, labels: dict[str, str]) -> None:
    w.write(0, f"{title}:\t")
    if not labels:
        w.write(0, f"{NONE}\n")
        return
    for i, key in enumerate(sorted(labels)):
        w.write(0, f"{'' if i == 0 else chr(9)}{key}={labels[key]}\n")


def _annotations(w: _Writer, annotations: dict[str, str]) -> None:
    w.write(0, "Annotations:\t")
    keys = sorted(k for k in annotations if k != "kubectl.kubernetes.io/last-applied-configuration")
    if not keys:
        w.write(0, f"{NONE}\n")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = str(annotations[key]).removesuffix("\n")
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for line in value.split("\n"):
                w.write(0, f"\t  {_shorten(line, MAX_ANNOTATION_LEN - 2)}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def _tolerations(w: _Writer, tolerations: list[Obj]) -> None:
    w.write(0, "Tolerations:\t")
    if not tolerations:
        w.write(0, f"{NONE}\n")
        return
    for i, t in enumerate(sorted(tolerations, key=lambda t: str(t.get("key", "")))):
        text = str(t.get("key", ""))
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists" if t.get("key") or t.get("effect") else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        w.write(0, f"{'' if i == 0 else chr(9)}{text}\n")


def _events(w: _Writer, data: list[Obj], now: float) -> None:
    from sandbox.events import Event

    events = []
    for item in data:
        try:
            events.append(Event.from_json(item))
        except ValueError:
            continue  # one damaged entry must not hide the others
    if not events:
        w.write(0, f"Events:\t{NONE}\n")
        return
    w.flush()  # as kubectl: the table is aligned on its own
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in sorted(events, key=lambda e: e.last_timestamp):
        first = human_duration(now - e.first_timestamp)
        age = f"{human_duration(now - e.last_timestamp)} (x{e.count} over {first})" if e.count > 1 else first
        w.write(1, f"{e.type}\t{e.reason}\t{age}\tkubelet\t{e.message.strip()}\n")


# --- formatting helpers ---------------------------------------------------------------------------


def describe_probe(probe: Obj) -> str:
    """kubectl's DescribeProbe: handler, then delay/timeout/period/thresholds."""
    attrs = (f"delay={probe.get('initialDelaySeconds', 0)}s timeout={probe.get('timeoutSeconds', 1)}s "
             f"period={probe.get('periodSeconds', 10)}s #success={probe.get('successThreshold', 1)} "
             f"#failure={probe.get('failureThreshold', 3)}")
    if probe.get("exec") is not None:
        return f"exec [{' '.join(str(a) for a in probe['exec'].get('command') or [])}] {attrs}"
    if probe.get("httpGet") is not None:
        return f"http-get {_probe_url(probe['httpGet'])} {attrs}"
    if probe.get("tcpSocket") is not None:
        tcp = probe["tcpSocket"]
        return f"tcp-socket {tcp.get('host', '')}:{tcp.get('port', '')} {attrs}"
    if probe.get("grpc") is not None:
        grpc = probe["grpc"]
        return f"grpc <pod>:{grpc.get('port', '')} {grpc.get('service') or ''} {attrs}"
    return f"unknown {attrs}"


def _probe_url(get: Obj) -> str:
    """Go's url.URL{Scheme, Host: JoinHostPort(host, port), Path}.String()."""
    from urllib.parse import quote

    host, port = str(get.get("host", "")), str(get.get("port", ""))
    if port:
        host = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    path = quote(str(get.get("path", "")), safe="$&+,/:;=@")
    if path and not path.startswith("/"):
        path = "/" + path
    return f"{str(get.get('scheme', 'HTTP')).lower()}://{host}{path}"


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration (the Age column of describe): the CLI's one copy."""
    from sandbox.cli.duration import human

    return human(seconds)


def rfc1123z(value: str | None) -> str:
    """An API timestamp in Go's time.RFC1123Z, local time, as kubectl prints it."""
    from sandbox.events import parse_rfc3339

    if not value:
        return GO_ZERO_TIME
    return time.strftime("%a, %d %b %Y %H:%M:%S %z", time.localtime(parse_rfc3339(value)))


def _write_if(w: _Writer, level: int, title: str, value: object) -> None:
    """kubectl leaves out optional fields that are empty (or zero, for a signal)."""
    if value:
        w.write(level, f"{title}:\t{value}\n")


def _go_bool(value: object) -> str:
    return "true" if value is True else "false"


def _shorten(text: str, limit: int) -> str:
    return text[:limit] + "..." if len(text) > limit else text


def _runtime_env(state: Obj) -> dict[str, dict[str, str]]:
    """What each container really got (`NAME=value` in the state), for downward-API values."""
    out: dict[str, dict[str, str]] = {}
    for name, record in (state.get("containers") or {}).items():
        pairs = (item.partition("=") for item in (record or {}).get("env") or [] if isinstance(item, str))
        out[name] = {key: value for key, _, value in pairs}
    return out


def _field_value(state: Obj, path: str) -> str:
    """A downward-API fieldRef from the pod itself, for containers that have not run yet."""
    meta = (state.get("manifest") or {}).get("metadata") or {}
    simple = {"metadata.name": state.get("name"), "metadata.namespace": state.get("namespace"),
              "metadata.uid": state.get("uid")}
    if path in simple:
        return str(simple[path] or "")
    for field in ("labels", "annotations"):
        prefix = f"metadata.{field}['"
        if path.startswith(prefix) and path.endswith("']"):
            return str((meta.get(field) or {}).get(path[len(prefix):-2], ""))
    return ""


class _Writer:
    """kubectl's PrefixWriter over a tabwriter: text at two spaces per level; `flush` ends an
    alignment block early, as tabwriter.Flush does."""

    def __init__(self) -> None:
        self._done: list[str] = []
        self._pending: list[str] = []

    def write(self, level: int, text: str) -> None:
        self._pending.append("  " * level + text)

    def flush(self) -> None:
        self._done.append(tabwrite("".join(self._pending)))
        self._pending = []

    def text(self) -> str:
        self.flush()
        return "".join(self._done)


def tabwrite(text: str, padding: int = 2) -> str:
    """Go's text/tabwriter with minwidth 0, padchar ' ' and no flags.

    Cells are tab-terminated; the text after a line's last tab is not part of any column. A
    column block is a run of consecutive lines that all have a cell in that column; its width is
    the widest cell plus padding, and blocks nest column by column (tabwriter's format()).
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format(lines, [], 0, len(lines), padding, out)
    return "\n".join(out)


def _format(lines: list[list[str]], widths: list[int], line0: int, line1: int, padding: int,
            out: list[str]) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write_lines(lines, widths, line0, this, out)
        line0 = this
        width = 0
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _format(lines, [*widths, width], line0, this, padding, out)
        line0 = this
    _write_lines(lines, widths, line0, line1, out)


def _write_lines(lines: list[list[str]], widths: list[int], line0: int, line1: int, out: list[str]) -> None:
    for cells in lines[line0:line1]:
        out.append("".join(cell.ljust(widths[j]) if j < len(widths) else cell for j, cell in enumerate(cells)))


# --- ConfigMaps and Secrets ------------------------------------------------------------------------


def _handle_config(args: argparse.Namespace, kind: str) -> int:
    from sandbox.cli.common import layout, namespace
    from sandbox.config.store import ConfigStore
    from sandbox.errors import NotFoundError

    obj = ConfigStore(layout(args).lib / "config").get(kind, namespace(args), args.name)
    if obj is None:
        plural = "configmaps" if kind == "ConfigMap" else "secrets"
        raise NotFoundError(f'{plural} "{args.name}" not found in namespace "{namespace(args)}"')
    sys.stdout.write(describe_config(obj))
    return 0


def describe_config(obj: Any) -> str:
    """kubectl's describeConfigMap / describeSecret (keys sorted: Go's map order is random). A
    Secret shows each value's size, never the value."""
    w = _Writer()
    w.write(0, f"Name:\t{obj.name}\n")
    w.write(0, f"Namespace:\t{obj.namespace}\n")
    _labels(w, "Labels", dict(obj.labels))
    _annotations(w, dict(obj.annotations))
    if obj.kind == "Secret":
        w.write(0, f"\nType:\t{obj.type}\n")
        w.write(0, "\nData\n====\n")
        for key in sorted(obj.data):
            w.write(0, f"{key}:\t{len(obj.data[key])} bytes\n")
        return w.text()
    w.write(0, "\nData\n====\n")
    for key in sorted(k for k in obj.data if k not in obj.binary_keys):
        w.write(0, f"{key}:\n----\n{obj.data[key].decode()}\n\n")
    w.write(0, "\nBinaryData\n====\n")
    for key in sorted(obj.binary_keys):
        w.write(0, f"{key}: {len(obj.data[key])} bytes\n")
    w.write(0, f"\nEvents:\t{NONE}\n")
    return w.text()
