"""The downward API for environment variables (`valueFrom.fieldRef` and `resourceFieldRef`), as
the kubelet resolves them (reference 4.3): pod fields by path, container resources in units of
the divisor with CPU rounded up, and the node's allocatable capacity when no limit is set.
Values that come from API objects (ConfigMaps, Secrets) arrive with the configuration issue;
the field table (sandbox/spec/fields.py) refuses them until then. downwardAPI volume files
(sandbox/pod/projection.py) use the same values, with labels and annotations as whole maps.
"""

from __future__ import annotations

import os

from sandbox.lazyre import LazyPattern
from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from sandbox.spec.model import Container, EnvVar, Pod, Quantity



class Addresses(Record):
    """The pod's and the node's addresses (status.podIPs, status.hostIPs), IPv4 first."""

    pod_ips: tuple[str, ...] = ()
    host_ips: tuple[str, ...] = ()


_SUBSCRIPT = LazyPattern(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: Pod, path: str, addresses: Addresses | None = None) -> str:
    """`fieldRef.fieldPath` (the paths the API server allows for env). The address fields come
    from the pod's network (empty with `--network none`); the plural ones are comma-separated,
    as the kubelet writes them."""
    meta = pod.metadata
    pod_ips = addresses.pod_ips if addresses is not None else ()
    host_ips = addresses.host_ips if addresses is not None else ()
    simple = {
        "metadata.name": meta.name or "", "metadata.namespace": meta.namespace or "default",
        # the node the pod is bound to (a static pod's, an agent's --hostname-override), else this machine
        "metadata.uid": meta.uid or "", "spec.nodeName": pod.spec.node_name or os.uname().nodename,
        "spec.serviceAccountName": pod.spec.service_account_name or "",
        "status.podIP": pod_ips[0] if pod_ips else "", "status.podIPs": ",".join(pod_ips),
        "status.hostIP": host_ips[0] if host_ips else "", "status.hostIPs": ",".join(host_ips),
    }
    if path in simple:
        return simple[path]
    match = _SUBSCRIPT.match(path)
    if match:
        mapping = meta.labels if match.group(1) == "labels" else meta.annotations
        return str(mapping.get(match.group(2), ""))
    return ""


def volume_field_value(pod: Pod, path: str) -> str:
    """A downwardAPI volume file's `fieldRef`: whole maps in the kubelet's `key="value"` format."""
    if path == "metadata.labels":
        return format_map(pod.metadata.labels)
    if path == "metadata.annotations":
        return format_map(pod.metadata.annotations)
    return field_value(pod, path)


def format_map(mapping: Mapping[str, str]) -> str:
    """fieldpath.FormatMap: one `key="value"` line per key, sorted, values quoted as Go's %q
    does, no newline after the last line."""
    return "\n".join(f"{key}={go_quote(mapping[key])}" for key in sorted(mapping))


def go_quote(text: str) -> str:
    """strconv.Quote (Go's %q of a string): backslash escapes for quotes, backslashes and control characters;
    printable Unicode stays as it is."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
            "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def resource_value(container: Container, resource: str, divisor: Quantity | None, lib_dir: str | None = None) -> str:
    """`resourceFieldRef`: e.g. limits.cpu with divisor 1 gives whole cores rounded up (125m -> 1),
    with divisor 1m millicores; memory in bytes. A limit not set (or 0) is the node's capacity
    (the kubelet's MergeContainerResourceLimits: cpu, memory, ephemeral-storage); a request not
    set is its limit if there is one (the API server's defaulting), else 0: requests are never
    filled from the node. `lib_dir`: the runtime's lib directory (the kubelet's root directory),
    whose filesystem is the node's ephemeral storage; None: the default root's or $SANDBOX_ROOT's."""
    kind, _, name = resource.partition(".")
    resources = container.resources
    limits = resources.limits if resources is not None else {}
    requests = resources.requests if resources is not None else {}
    limit = limits.get(name)
    if kind == "limits":
        milli = limit.milli if limit is not None and limit.milli else _node_capacity_milli(name, lib_dir)
    else:
        quantity = requests.get(name, limit)  # requests default to limits (reference 2)
        milli = quantity.milli if quantity is not None else 0
    unit = divisor.milli if divisor is not None and divisor.milli > 0 else 1000
    return str(-(-milli // unit))


def _node_capacity_milli(name: str, lib_dir: str | None) -> int:
    if name == "cpu":
        return (os.cpu_count() or 1) * 1000
    if name == "memory":
        from sandbox.process.resources import memory_capacity

        return memory_capacity() * 1000
    if name == "ephemeral-storage":
        return _root_fs_capacity(lib_dir) * 1000
    return 0


def _root_fs_capacity(lib_dir: str | None) -> int:
    """The size of the filesystem holding the runtime's lib directory, as cadvisor's RootFsInfo
    capacity of the kubelet's root directory (the nearest existing parent when it is not made
    yet)."""
    path = lib_dir
    if path is None:
        from sandbox.paths import RootLayout

        path = str(RootLayout.from_root().lib)
    while True:
        try:
            st = os.statvfs(path)
        except OSError:
            parent = os.path.dirname(path)
            if parent == path:
                return 0
            path = parent
            continue
        return st.f_blocks * st.f_frsize


def env_value(pod: Pod, container: Container, var: EnvVar, addresses: Addresses | None = None,
              lib_dir: str | None = None) -> str | None:
    """The value of a `valueFrom` entry this runtime can resolve, else None (`lib_dir` as for
    resource_value)."""
    source = var.value_from
    if source is None:
        return None
    if source.field_ref is not None:
        return field_value(pod, source.field_ref.field_path, addresses)
    if source.resource_field_ref is not None:
        ref = source.resource_field_ref
        return resource_value(container, ref.resource, ref.divisor, lib_dir)
    return None
