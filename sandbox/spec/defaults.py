"""Kubernetes defaulting, in exactly one place (`pkg/apis/core/v1/defaults.go`, reference §2).

The API server defaults the decoded object before it validates it; we do the same on the decoded
document, before conversion, filling in keys that are absent. Every step looks before it touches:
the document may be ill-typed (the converter reports that), so a value of the wrong type is left
alone rather than defaulted.
"""

from __future__ import annotations

from sandbox.spec.quantity import parse_quantity

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

RESTART_POLICY = "Always"
TERMINATION_GRACE_PERIOD_SECONDS = 30
DNS_POLICY = "ClusterFirst"
SCHEDULER_NAME = "default-scheduler"
NAMESPACE = "default"  # static/standalone pods (`pkg/kubelet/config/common.go`)
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
TERMINATION_MESSAGE_POLICY = "File"
PORT_PROTOCOL = "TCP"
VOLUME_DEFAULT_MODE = 0o644
# Probe timings: a 0 (or an absent value) becomes the default (`SetDefaults_Probe`).
PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}

_CONTAINER_LISTS = ("initContainers", "containers")
_HANDLER_OWNERS = ("livenessProbe", "readinessProbe", "startupProbe")


def image_pull_policy(image: str) -> str:
    """`Always` when the reference's tag is `latest` (written, or implied by no tag and no digest)."""
    return "Always" if image_tag(image) == "latest" else "IfNotPresent"


def image_tag(image: str) -> str:
    """The tag of an image reference as `parsers.ParseImageName` sees it.

    `busybox` -> `latest`; `busybox:1.36` -> `1.36`; `busybox@sha256:...` -> `` (digest only);
    `busybox:latest@sha256:...` -> `latest`; a registry port (`host:5000/app`) is not a tag.
    """
    name, at, _digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[colon + 1 :]
    return "" if at else "latest"


def default_pod(doc: dict[str, Any]) -> None:
    """Fill in a decoded Pod document's defaults, in place."""
    meta = doc.get("metadata")
    if meta is None:
        meta = doc["metadata"] = {}
    if isinstance(meta, dict):
        _set_absent(meta, "namespace", NAMESPACE)
    spec = doc.get("spec")
    if spec is None:
        spec = doc["spec"] = {}  # Go decodes a missing spec to its zero value, which is then defaulted
    if isinstance(spec, dict):
        default_pod_spec(spec)


def default_pod_spec(spec: dict[str, Any]) -> None:
    _set_absent(spec, "restartPolicy", RESTART_POLICY)
    _set_absent(spec, "terminationGracePeriodSeconds", TERMINATION_GRACE_PERIOD_SECONDS)
    _set_absent(spec, "dnsPolicy", DNS_POLICY)
    _set_absent(spec, "schedulerName", SCHEDULER_NAME)
    _set_absent(spec, "securityContext", {})
    _set_absent(spec, "enableServiceLinks", True)
    host_network = spec.get("hostNetwork") is True
    for key in _CONTAINER_LISTS:
        for container in _dicts(spec.get(key)):
            default_container(container, host_network)
    for volume in _dicts(spec.get("volumes")):
        default_volume(volume)


def default_container(container: dict[str, Any], host_network: bool) -> None:
    image = container.get("image")
    if container.get("imagePullPolicy") is None:
        # No usable image: `ParseImageName` fails, the tag is "" and the policy IfNotPresent.
        container["imagePullPolicy"] = image_pull_policy(image) if isinstance(image, str) and image else "IfNotPresent"
    _set_absent(container, "terminationMessagePath", TERMINATION_MESSAGE_PATH)
    _set_absent(container, "terminationMessagePolicy", TERMINATION_MESSAGE_POLICY)
    for port in _dicts(container.get("ports")):
        _set_absent(port, "protocol", PORT_PROTOCOL)
        # Under hostNetwork the container port *is* a host port (`SetDefaults_Pod`).
        if host_network and port.get("hostPort") is None and port.get("containerPort") is not None:
            port["hostPort"] = port["containerPort"]
    for key in _HANDLER_OWNERS:
        probe = container.get(key)
        if isinstance(probe, dict):
            default_probe(probe)
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            handler = lifecycle.get(hook)
            if isinstance(handler, dict):
                _default_http_get(handler)
    resources = container.get("resources")
    if isinstance(resources, dict):
        default_requests(resources)
    for env in _dicts(container.get("env")):
        source = env.get("valueFrom")
        if isinstance(source, dict):
            _default_field_ref(source.get("fieldRef"))


def default_probe(probe: dict[str, Any]) -> None:
    for key, value in PROBE_DEFAULTS.items():
        current = probe.get(key)
        if current is None or (type(current) is int and current == 0):
            probe[key] = value
    _set_absent(probe, "initialDelaySeconds", 0)
    _default_http_get(probe)
    grpc = probe.get("grpc")
    if isinstance(grpc, dict):
        _set_absent(grpc, "service", "")


def default_requests(resources: dict[str, Any]) -> None:
    """Requests default to limits, per resource (`SetDefaults_ResourceList` on app and init)."""
    limits = resources.get("limits")
    if not isinstance(limits, dict) or not limits:
        return
    requests = resources.get("requests")
    if requests is None:
        requests = resources["requests"] = {}
    if isinstance(requests, dict):
        for name, value in limits.items():
            # An unparseable limit is reported once, where it was written, not again as a request.
            if name not in requests and _is_quantity(value):
                requests[name] = value


def default_volume(volume: dict[str, Any]) -> None:
    sources = [k for k, v in volume.items() if k != "name" and v is not None]
    if not sources:
        volume["emptyDir"] = {}  # a volume with no source is an emptyDir (`SetDefaults_Volume`)
    for key in ("configMap", "secret", "downwardAPI", "projected"):
        source = volume.get(key)
        if isinstance(source, dict):
            _set_absent(source, "defaultMode", VOLUME_DEFAULT_MODE)
    downward = volume.get("downwardAPI")
    if isinstance(downward, dict):
        for item in _dicts(downward.get("items")):
            _default_field_ref(item.get("fieldRef"))
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict):
        _set_absent(host_path, "type", "")


def default_secret(doc: dict[str, Any]) -> None:
    _set_absent(doc, "type", "Opaque")


def _default_http_get(handler: dict[str, Any]) -> None:
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        _set_absent(http_get, "path", "/")
        _set_absent(http_get, "scheme", "HTTP")


def _default_field_ref(field_ref: object) -> None:
    if isinstance(field_ref, dict):
        _set_absent(field_ref, "apiVersion", "v1")


def _is_quantity(value: object) -> bool:
    if isinstance(value, str):
        return parse_quantity(value) is not None
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _set_absent(obj: dict[str, Any], key: str, value: object) -> None:
    if obj.get(key) is None:
        obj[key] = value


def _dicts(items: object) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
