"""The API server's validation of a (defaulted) Pod, ConfigMap and Secret, with its messages.

Rules and texts follow `pkg/apis/core/validation/validation.go` and
`apimachinery/pkg/util/validation` (reference §3). Every check appends to one `Errors` list so a
user sees all problems at once. Structural problems (types, unknown and required fields) were
already reported by the converter.
"""

from __future__ import annotations

import re

from sandbox.errors import FieldError
from sandbox.images.reference import reference_problem
from sandbox.names import DNS_LABEL_MAX, DNS_LABEL_RE, DNS_SUBDOMAIN_MAX, DNS_SUBDOMAIN_RE
from sandbox.spec.convert import entry, format_value
from sandbox.spec.model import (
    ConfigMap,
    Container,
    ContainerPort,
    DownwardAPIVolumeFile,
    EnvFromSource,
    EnvVar,
    HTTPGetAction,
    Lifecycle,
    LifecycleHandler,
    ObjectMeta,
    Pod,
    PodDNSConfig,
    PodSecurityContext,
    PodSpec,
    Probe,
    Quantity,
    ResourceRequirements,
    Secret,
    SecurityContext,
    SecurityProfile,
    Volume,
    VolumeMount,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any


class Errors(list[FieldError]):
    """FieldErrors in the API server's `<type>: <value>: <detail>` wording."""

    def required(self, path: str, detail: str = "") -> None:
        self.append(FieldError(path, "Required value" + (f": {detail}" if detail else "")))

    def invalid(self, path: str, value: object, detail: str) -> None:
        self.append(FieldError(path, f"Invalid value: {format_value(value)}: {detail}"))

    def unsupported(self, path: str, value: object, supported: Iterable[str]) -> None:
        choices = ", ".join(f'"{s}"' for s in supported)
        self.append(FieldError(path, f"Unsupported value: {format_value(value)}: supported values: {choices}"))

    def duplicate(self, path: str, value: object) -> None:
        self.append(FieldError(path, f"Duplicate value: {format_value(value)}"))

    def not_found(self, path: str, value: object) -> None:
        self.append(FieldError(path, f"Not found: {format_value(value)}"))

    def forbidden(self, path: str, detail: str) -> None:
        self.append(FieldError(path, f"Forbidden: {detail}"))

    def too_long(self, path: str, limit: int) -> None:
        self.append(FieldError(path, f"Too long: may not be more than {limit} bytes"))

    def enum(self, path: str, value: str | None, supported: tuple[str, ...]) -> None:
        if value is not None and value not in supported:
            self.unsupported(path, value, supported)


# --- names (apimachinery/pkg/util/validation/validation.go) --------------------------------------

_LABEL_RE = DNS_LABEL_RE
_SUBDOMAIN_RE = DNS_SUBDOMAIN_RE
_QNAME_RE = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"


class _Pattern:
    """A regular expression compiled on first use: most manifests never reach most rules, and
    compiling them all would be paid on every start-up."""

    __slots__ = ("_compiled", "_source")

    def __init__(self, source: str) -> None:
        self._source = source
        self._compiled: re.Pattern[str] | None = None

    def _get(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self._source)
        return self._compiled

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self._get().fullmatch(text)

    def search(self, text: str) -> re.Match[str] | None:
        return self._get().search(text)

    def match(self, text: str) -> re.Match[str] | None:
        return self._get().match(text)


_LABEL = _Pattern(_LABEL_RE)
_SUBDOMAIN = _Pattern(_SUBDOMAIN_RE)
_QNAME = _Pattern(_QNAME_RE)
_CONFIG_KEY = _Pattern(r"[-._a-zA-Z0-9]+")
_IANA = _Pattern(r"[-a-z0-9]+")
_HAS_LETTER = _Pattern(r"[a-z]")
_HTTP_HEADER_NAME = _Pattern(r"[-A-Za-z0-9!#$%&'*+.^_`|~]+")
_HUGEPAGES = _Pattern(r"hugepages-[0-9]+[A-Za-z]*")

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    f"and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{_LABEL_RE}')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{_SUBDOMAIN_RE}')"
)
QNAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    f"alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{_QNAME_RE}')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    f"for validation is '({_QNAME_RE})?')"
)
CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
ENV_NAME_MSG = "a valid environment variable name must consist only of printable ASCII characters other than '='"


def dns_label(errs: Errors, path: str, value: str) -> None:
    if len(value) > DNS_LABEL_MAX:
        errs.invalid(path, value, f"must be no more than {DNS_LABEL_MAX} characters")
    if not _LABEL.fullmatch(value):
        errs.invalid(path, value, LABEL_MSG)


def dns_subdomain(errs: Errors, path: str, value: str) -> None:
    if len(value) > DNS_SUBDOMAIN_MAX:
        errs.invalid(path, value, f"must be no more than {DNS_SUBDOMAIN_MAX} characters")
    if not _SUBDOMAIN.fullmatch(value):
        errs.invalid(path, value, SUBDOMAIN_MSG)


def qualified_name(errs: Errors, path: str, value: str) -> None:
    """A label or annotation key: optional DNS-subdomain prefix, `/`, then a name of at most 63."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix:
            errs.invalid(path, value, "prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errs.invalid(path, value, "prefix part must be no more than 253 characters")
            if not _SUBDOMAIN.fullmatch(prefix):
                errs.invalid(path, value, "prefix part " + SUBDOMAIN_MSG)
    if not name:
        errs.invalid(path, value, "name part must be non-empty")
        return
    if len(name) > 63:
        errs.invalid(path, value, "name part must be no more than 63 characters")
    if not _QNAME.fullmatch(name):
        errs.invalid(path, value, QNAME_MSG)


def label_value(errs: Errors, path: str, value: str) -> None:
    if len(value) > 63:
        errs.invalid(path, value, "must be no more than 63 characters")
    if value and not _QNAME.fullmatch(value):
        errs.invalid(path, value, LABEL_VALUE_MSG)


def port_name(errs: Errors, path: str, value: str) -> None:
    """IANA_SVC_NAME (RFC 6335): at most 15 of `a-z0-9-`, a letter, no `--`, no hyphen at either end."""
    if len(value) > 15:
        errs.invalid(path, value, "must be no more than 15 characters")
    if not _IANA.fullmatch(value):
        errs.invalid(path, value, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errs.invalid(path, value, "must not contain consecutive hyphens")
    if not _HAS_LETTER.search(value):
        errs.invalid(path, value, "must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        errs.invalid(path, value, "must not begin or end with a hyphen")


def config_key(errs: Errors, path: str, value: str) -> None:
    if len(value) > 253:
        errs.invalid(path, value, "must be no more than 253 characters")
    if not _CONFIG_KEY.fullmatch(value):
        errs.invalid(path, value, CONFIG_KEY_MSG)
    if value == ".":
        errs.invalid(path, value, "must not be '.'")
    elif value == "..":
        errs.invalid(path, value, "must not be '..'")
    elif value.startswith(".."):
        errs.invalid(path, value, "must not start with '..'")


def env_name(errs: Errors, path: str, value: str) -> None:
    # RelaxedEnvironmentVariableValidation (on by default since 1.34): printable ASCII except '='.
    if not value:
        errs.required(path)
    elif "=" in value or not all(" " <= ch <= "~" for ch in value):
        errs.invalid(path, value, ENV_NAME_MSG)


def in_range(errs: Errors, path: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        errs.invalid(path, value, f"must be between {low} and {high}, inclusive")


def non_negative(errs: Errors, path: str, value: int | None) -> None:
    if value is not None and value < 0:
        errs.invalid(path, value, "must be greater than or equal to 0")


def relative_path(errs: Errors, path: str, value: str) -> None:
    """`subPath`, item paths: relative, no `..` element (`validateLocalDescendingPath`)."""
    if value.startswith("/"):
        errs.invalid(path, value, "must be a relative path")
    if ".." in value.split("/"):
        errs.invalid(path, value, "must not contain '..'")


def _labels(errs: Errors, path: str, labels: Mapping[str, str]) -> None:
    for key, value in labels.items():
        qualified_name(errs, path, key)
        label_value(errs, entry(path, key), value)


def _annotations(errs: Errors, path: str, annotations: Mapping[str, str]) -> None:
    total = 0
    for key, value in annotations.items():
        qualified_name(errs, path, key.lower())
        total += len(key) + len(value)
    if total > 256 * 1024:
        errs.too_long(path, 256 * 1024)


def validate_meta(errs: Errors, meta: ObjectMeta, path: str = "metadata") -> None:
    if meta.name:
        dns_subdomain(errs, f"{path}.name", meta.name)
    elif not meta.generate_name:
        errs.required(f"{path}.name", "name or generateName is required")
    if meta.namespace:
        dns_label(errs, f"{path}.namespace", meta.namespace)
    _labels(errs, f"{path}.labels", meta.labels)
    _annotations(errs, f"{path}.annotations", meta.annotations)


# --- pod --------------------------------------------------------------------------------------

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
PROTOCOLS = ("TCP", "UDP", "SCTP")
PROPAGATIONS = ("None", "HostToContainer", "Bidirectional")
RECURSIVE_READ_ONLY = ("Disabled", "IfPossible", "Enabled")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
                   "BlockDevice")
SCHEMES = ("HTTP", "HTTPS")
PROFILE_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")
PROC_MOUNTS = ("Default", "Unmasked")
ENV_FIELD_PATHS = (
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
    "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
)
# A downwardAPI volume file's fieldRef (validDownwardAPIFieldPathExpressions): no node facts.
VOLUME_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels",
                      "metadata.annotations")
RESOURCE_FIELDS = ("limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
                   "requests.ephemeral-storage", "requests.memory")
_INT32_MAX = 2147483647


def validate_pod(pod: Pod) -> list[FieldError]:
    errs = Errors()
    if pod.api_version != "v1":
        errs.unsupported("apiVersion", pod.api_version, ("v1",))
    validate_meta(errs, pod.metadata)
    validate_pod_spec(errs, pod.spec, "spec")
    return errs


def validate_pod_spec(errs: Errors, spec: PodSpec, path: str) -> None:
    volumes = _volumes(errs, spec.volumes, f"{path}.volumes")
    if not spec.containers:
        errs.required(f"{path}.containers")
    names: set[str] = set()
    host_ports: set[str] = set()
    for key, containers in (("initContainers", spec.init_containers), ("containers", spec.containers)):
        for i, c in enumerate(containers):
            cpath = f"{path}.{key}[{i}]"
            if c.name in names:
                errs.duplicate(f"{cpath}.name", c.name)
            names.add(c.name)
            _container(errs, c, cpath, spec, volumes, init=key == "initContainers")
            _host_ports(errs, c.ports, f"{cpath}.ports", host_ports)
    for i, ephemeral in enumerate(spec.ephemeral_containers):
        name = ephemeral.get("name", "")
        if name in names:
            errs.duplicate(f"{path}.ephemeralContainers[{i}].name", name)
        names.add(name)
    errs.enum(f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES)
    errs.enum(f"{path}.dnsPolicy", spec.dns_policy, DNS_POLICIES)
    _dns(errs, spec, path)
    _hostname_override(errs, spec, path)
    non_negative(errs, f"{path}.terminationGracePeriodSeconds", spec.termination_grace_period_seconds)
    in_range(errs, f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds, 1, _INT32_MAX)
    for key, value in (("hostname", spec.hostname), ("subdomain", spec.subdomain)):
        if value is not None:
            dns_label(errs, f"{path}.{key}", value)
    if spec.share_process_namespace and spec.host_pid:
        errs.invalid(f"{path}.shareProcessNamespace", True,
                     "ShareProcessNamespace and HostPID cannot both be enabled")
    _labels(errs, f"{path}.nodeSelector", spec.node_selector)
    if spec.security_context is not None:
        _pod_security(errs, spec.security_context, f"{path}.securityContext")
        if spec.security_context.sysctls:
            from sandbox.spec import sysctls

            errs += sysctls.check(spec, f"{path}.securityContext")
    for i, alias in enumerate(spec.host_aliases):
        if not _is_ip(alias.ip):
            errs.invalid(f"{path}.hostAliases[{i}].ip", alias.ip, "must be valid IP address")
        for j, host in enumerate(alias.hostnames):
            dns_subdomain(errs, f"{path}.hostAliases[{i}].hostnames[{j}]", host)
    for i, ref in enumerate(spec.image_pull_secrets):
        if ref.name:
            dns_subdomain(errs, f"{path}.imagePullSecrets[{i}].name", ref.name)
    _pod_resources(errs, spec, f"{path}.resources")


def _volumes(errs: Errors, volumes: tuple[Volume, ...], path: str) -> set[str]:
    names: set[str] = set()
    for i, volume in enumerate(volumes):
        vpath = f"{path}[{i}]"
        if not volume.name:
            errs.required(f"{vpath}.name")
        else:
            dns_label(errs, f"{vpath}.name", volume.name)
            if volume.name in names:
                errs.duplicate(f"{vpath}.name", volume.name)
            names.add(volume.name)
        _volume_source(errs, volume, vpath)
    return names


def _volume_source(errs: Errors, volume: Volume, path: str) -> None:
    typed = [("emptyDir", volume.empty_dir), ("hostPath", volume.host_path), ("configMap", volume.config_map),
             ("secret", volume.secret), ("downwardAPI", volume.downward_api)]
    present = [key for key, value in typed if value is not None] + list(volume.other_sources)
    if not present:
        errs.required(path, "must specify a volume type")
    for key in present[1:]:
        errs.forbidden(f"{path}.{key}", "may not specify more than 1 volume type")
    if volume.host_path is not None:
        hp = f"{path}.hostPath"
        if not volume.host_path.path:  # validateHostPathVolumeSource stops there: no type check
            errs.required(f"{hp}.path")
        else:
            if ".." in volume.host_path.path.split("/"):  # validatePathNoBacksteps
                errs.invalid(f"{hp}.path", volume.host_path.path, "must not contain '..'")
            errs.enum(f"{hp}.type", volume.host_path.type, HOST_PATH_TYPES)
    if volume.empty_dir is not None and volume.empty_dir.size_limit is not None \
            and volume.empty_dir.size_limit.milli < 0:  # validateVolumeSource's own wording
        errs.forbidden(f"{path}.emptyDir.sizeLimit", "SizeLimit field must be a valid resource quantity")
    for key, source in (("configMap", volume.config_map), ("secret", volume.secret)):
        if source is None:
            continue
        _file_mode(errs, f"{path}.{key}.defaultMode", source.default_mode)
        for j, item in enumerate(source.items):
            ipath = f"{path}.{key}.items[{j}]"
            config_key(errs, f"{ipath}.key", item.key)
            item_path(errs, f"{ipath}.path", item.path)
            _file_mode(errs, f"{ipath}.mode", item.mode)
    if volume.downward_api is not None:
        _file_mode(errs, f"{path}.downwardAPI.defaultMode", volume.downward_api.default_mode)
        _downward_files(errs, f"{path}.downwardAPI.items", volume.downward_api.items)
    if "projected" in volume.other_sources:
        _projected(errs, volume.other_sources["projected"], f"{path}.projected")


def _file_mode(errs: Errors, path: str, mode: int | None) -> None:
    if mode is not None and not 0 <= mode <= 0o777:
        errs.invalid(path, mode, "must be a number between 0 and 0777 (octal), both inclusive")


def item_path(errs: Errors, path: str, value: str) -> None:
    """A file a volume projects (`ValidateLocalNonReservedPath`): relative, no `..` element, and
    not starting with `..`, the names of the kubelet's own `..data` and timestamped directories."""
    relative_path(errs, path, value)
    if value.startswith("..") and not value.startswith("../"):  # "../x" is reported once, above
        errs.invalid(path, value, "must not start with '..'")


def _downward_files(errs: Errors, path: str, files: tuple[DownwardAPIVolumeFile, ...],
                    seen: set[str] | None = None) -> None:
    """downwardAPI volume files: pod metadata (whole label and annotation maps allowed, no node
    facts) or a named container's resources."""
    for j, file in enumerate(files):
        fpath = f"{path}[{j}]"
        if not file.path:
            errs.required(f"{fpath}.path")
        item_path(errs, f"{fpath}.path", file.path)
        _projected_path(errs, f"{fpath}.path", file.path, seen)
        _file_mode(errs, f"{fpath}.mode", file.mode)
        if (file.field_ref is None) == (file.resource_field_ref is None):
            errs.invalid(fpath, "", "must specify exactly one of `fieldRef` or `resourceFieldRef`")
        if file.field_ref is not None:
            ref = file.field_ref
            if ref.field_path in VOLUME_FIELD_PATHS:
                if ref.api_version is not None and ref.api_version != "v1":
                    errs.unsupported(f"{fpath}.fieldRef.apiVersion", ref.api_version, ("v1",))
            elif ref.field_path in ENV_FIELD_PATHS:
                errs.unsupported(f"{fpath}.fieldRef.fieldPath", ref.field_path, VOLUME_FIELD_PATHS)
            else:
                _field_ref_path(errs, f"{fpath}.fieldRef", ref.field_path, ref.api_version)
        if file.resource_field_ref is not None:
            rref = file.resource_field_ref
            if not rref.container_name:  # a volume is the pod's: it must say which container
                errs.required(f"{fpath}.resourceFieldRef.containerName")
            if rref.resource not in RESOURCE_FIELDS and not rref.resource.startswith(
                    ("limits.hugepages-", "requests.hugepages-")):
                errs.unsupported(f"{fpath}.resourceFieldRef.resource", rref.resource, RESOURCE_FIELDS)


def _projected_path(errs: Errors, path: str, value: str, seen: set[str] | None) -> None:
    """Two sources of one projected volume may not write the same file."""
    if seen is None or not value:
        return
    if value in seen:
        errs.invalid(path, value, "conflicting duplicate paths")
    seen.add(value)


def _projected(errs: Errors, projected: Mapping[str, Any], path: str) -> None:
    """A projected volume: each source names exactly one type; configMap and secret sources a
    name; every file path unique across the sources. serviceAccountToken and the other
    API-server sources are refused by the field table."""
    default_mode = projected.get("defaultMode")
    _file_mode(errs, f"{path}.defaultMode", default_mode if isinstance(default_mode, int) else None)
    seen: set[str] = set()
    for i, source in enumerate(projected.get("sources") or ()):
        spath = f"{path}.sources[{i}]"
        kinds = [key for key, value in source.items() if value is not None]
        if len(kinds) > 1:
            for key in kinds[1:]:
                errs.forbidden(f"{spath}.{key}", "may not specify more than 1 volume type per source")
        elif not kinds:
            errs.required(spath, "must specify one source")
        for key in ("configMap", "secret"):
            ref = source.get(key)
            if ref is None:
                continue
            if not ref.get("name"):
                errs.required(f"{spath}.{key}.name")
            for j, item in enumerate(ref.get("items") or ()):
                ipath = f"{spath}.{key}.items[{j}]"
                config_key(errs, f"{ipath}.key", item.key)
                item_path(errs, f"{ipath}.path", item.path)
                _projected_path(errs, f"{ipath}.path", item.path, seen)
                _file_mode(errs, f"{ipath}.mode", item.mode)
        if source.get("downwardAPI") is not None:
            _downward_files(errs, f"{spath}.downwardAPI.items", source["downwardAPI"].get("items") or (), seen)


def _container(errs: Errors, c: Container, path: str, spec: PodSpec, volumes: set[str], init: bool) -> None:
    if not c.name:
        errs.required(f"{path}.name")
    else:
        dns_label(errs, f"{path}.name", c.name)
    if not c.image:
        errs.required(f"{path}.image")
    elif c.image.strip() != c.image:
        errs.invalid(f"{path}.image", c.image, "must not have leading or trailing whitespace")
    else:
        # The API server stops at whitespace; the kubelet then refuses the pod (InvalidImageName)
        # with the same grammar. Refused here, with the field, before anything starts.
        problem = reference_problem(c.image)
        if problem is not None:
            errs.invalid(f"{path}.image", c.image, problem)
    errs.enum(f"{path}.imagePullPolicy", c.image_pull_policy, PULL_POLICIES)
    errs.enum(f"{path}.terminationMessagePolicy", c.termination_message_policy, MESSAGE_POLICIES)
    if not c.termination_message_path:
        errs.required(f"{path}.terminationMessagePath")
    _ports(errs, c.ports, f"{path}.ports", spec.host_network)
    _env(errs, c.env, f"{path}.env")
    _env_from(errs, c.env_from, f"{path}.envFrom")
    _mounts(errs, c.volume_mounts, f"{path}.volumeMounts", volumes, c.security_context, c.termination_message_path)
    if c.resources is not None:
        _resources(errs, c.resources, f"{path}.resources")
    _resize_policy(errs, c.resize_policy, f"{path}.resizePolicy", spec.restart_policy)
    if c.security_context is not None:
        _container_security(errs, c.security_context, f"{path}.securityContext")
    sidecar = init and c.restart_policy == "Always"
    _restart_policy(errs, c, path, init)
    probes = (("livenessProbe", c.liveness_probe), ("readinessProbe", c.readiness_probe),
              ("startupProbe", c.startup_probe))
    for key, probe in probes:
        if probe is None:
            continue
        if init and not sidecar:
            errs.forbidden(f"{path}.{key}", "may not be set for init containers without restartPolicy=Always")
            continue
        _probe(errs, probe, f"{path}.{key}", key)
    if c.lifecycle is not None:
        if init and not sidecar:
            errs.forbidden(f"{path}.lifecycle", "may not be set for init containers without restartPolicy=Always")
        else:
            _lifecycle(errs, c.lifecycle, f"{path}.lifecycle", spec.termination_grace_period_seconds)


RESIZE_RESOURCES = ("cpu", "memory")
RESIZE_POLICIES = ("NotRequired", "RestartContainer")


def _resize_policy(errs: Errors, policies: tuple[Mapping[str, Any], ...], path: str, pod_restart: str | None) -> None:
    """validateResizePolicy: each resource once, cpu or memory, NotRequired or RestartContainer,
    only NotRequired in a restartPolicy Never pod (the errors name the list, not the item, as the
    API server's do; the field stays inert here: nothing resizes a running pod)."""
    seen: set[str] = set()
    for i, policy in enumerate(policies):
        name = policy.get("resourceName") or ""
        restart = policy.get("restartPolicy") or ""
        if name in seen:
            errs.duplicate(f"{path}[{i}]", name)
        seen.add(name)
        if not name:
            errs.required(path)
        elif name not in RESIZE_RESOURCES:
            errs.unsupported(path, name, RESIZE_RESOURCES)
        if not restart:
            errs.required(path)
        elif restart not in RESIZE_POLICIES:
            errs.unsupported(path, restart, RESIZE_POLICIES)
        if pod_restart == "Never" and restart != "NotRequired":
            errs.invalid(path, restart, "must be 'NotRequired' when `restartPolicy` is 'Never'")


def _restart_policy(errs: Errors, c: Container, path: str, init: bool) -> None:
    if c.restart_policy is None:
        if c.restart_policy_rules:
            errs.required(f"{path}.restartPolicy", "must specify restartPolicy when restartPolicyRules are used")
        return
    if init:
        # Init containers: `Always` makes a sidecar; the other values need ContainerRestartRules.
        supported: tuple[str, ...] = ("Always", "OnFailure", "Never") if c.restart_policy_rules else ("Always",)
        errs.enum(f"{path}.restartPolicy", c.restart_policy, supported)
    elif not c.restart_policy_rules:
        errs.forbidden(f"{path}.restartPolicy", "may not be set for non-init containers")


def _ports(errs: Errors, ports: tuple[ContainerPort, ...], path: str, host_network: bool) -> None:
    names: set[str] = set()
    for i, port in enumerate(ports):
        ppath = f"{path}[{i}]"
        if port.name is not None:
            port_name(errs, f"{ppath}.name", port.name)
            if port.name in names:
                errs.duplicate(f"{ppath}.name", port.name)
            names.add(port.name)
        if port.container_port == 0:
            errs.required(f"{ppath}.containerPort")
        else:
            in_range(errs, f"{ppath}.containerPort", port.container_port, 1, 65535)
        if port.host_port:
            in_range(errs, f"{ppath}.hostPort", port.host_port, 1, 65535)
            if host_network and port.host_port != port.container_port:
                errs.invalid(f"{ppath}.hostPort", port.host_port, "must match `containerPort` when `hostNetwork` is true")
        if not port.protocol:
            errs.required(f"{ppath}.protocol")
        else:
            errs.enum(f"{ppath}.protocol", port.protocol, PROTOCOLS)
        if port.host_ip is not None and port.host_ip and not _is_ip(port.host_ip):
            errs.invalid(f"{ppath}.hostIP", port.host_ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")


def _host_ports(errs: Errors, ports: tuple[ContainerPort, ...], path: str, seen: set[str]) -> None:
    for i, port in enumerate(ports):
        if not port.host_port:
            continue
        key = f"{port.protocol}/{port.host_ip or ''}/{port.host_port}"
        if key in seen:
            errs.duplicate(f"{path}[{i}].hostPort", key)
        seen.add(key)


def _env(errs: Errors, env: tuple[EnvVar, ...], path: str) -> None:
    for i, var in enumerate(env):
        epath = f"{path}[{i}]"
        env_name(errs, f"{epath}.name", var.name)
        source = var.value_from
        if source is None:
            continue
        spath = f"{epath}.valueFrom"
        if var.value:
            errs.invalid(spath, "", "may not be specified when `value` is not empty")
        present = [k for k, v in (("fieldRef", source.field_ref), ("resourceFieldRef", source.resource_field_ref),
                                  ("configMapKeyRef", source.config_map_key_ref),
                                  ("secretKeyRef", source.secret_key_ref), ("fileKeyRef", source.file_key_ref))
                   if v is not None]
        if not present:
            errs.invalid(spath, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                                    "`secretKeyRef`")
        elif len(present) > 1:
            errs.invalid(spath, "", "may not have more than one field specified at a time")
        if source.field_ref is not None:
            _field_ref_path(errs, f"{spath}.fieldRef", source.field_ref.field_path, source.field_ref.api_version)
        if source.resource_field_ref is not None:
            rpath = f"{spath}.resourceFieldRef.resource"
            resource = source.resource_field_ref.resource
            if resource not in RESOURCE_FIELDS and not resource.startswith(("limits.hugepages-", "requests.hugepages-")):
                errs.unsupported(rpath, resource, RESOURCE_FIELDS)
        for key, ref in (("configMapKeyRef", source.config_map_key_ref), ("secretKeyRef", source.secret_key_ref)):
            if ref is None:
                continue
            dns_subdomain(errs, f"{spath}.{key}.name", ref.name or "")
            if not ref.key:
                errs.required(f"{spath}.{key}.key")
            else:
                config_key(errs, f"{spath}.{key}.key", ref.key)


_LABEL_REF = _Pattern(r"metadata\.(labels|annotations)\['(.*)'\]\Z")


def _field_ref_path(errs: Errors, path: str, field_path: str, api_version: str | None) -> None:
    if api_version is not None and api_version != "v1":
        errs.unsupported(f"{path}.apiVersion", api_version, ("v1",))
    m = _LABEL_REF.match(field_path)
    if m is not None:
        qualified_name(errs, f"{path}.fieldPath", m.group(2) if m.group(1) == "labels" else m.group(2).lower())
    elif field_path not in ENV_FIELD_PATHS:
        errs.unsupported(f"{path}.fieldPath", field_path,
                         ENV_FIELD_PATHS[:3] + ("metadata.labels['<KEY>']", "metadata.annotations['<KEY>']")
                         + ENV_FIELD_PATHS[3:])


def _env_from(errs: Errors, sources: tuple[EnvFromSource, ...], path: str) -> None:
    for i, source in enumerate(sources):
        spath = f"{path}[{i}]"
        if source.prefix:
            env_name(errs, f"{spath}.prefix", source.prefix)
        refs = [(k, r) for k, r in (("configMapRef", source.config_map_ref), ("secretRef", source.secret_ref))
                if r is not None]
        if not refs:
            errs.invalid(spath, "", "must specify one of: `configMapRef` or `secretRef`")
        elif len(refs) > 1:
            errs.invalid(spath, "", "may not have more than one field specified at a time")
        for key, ref in refs:
            if not ref.name:
                errs.required(f"{spath}.{key}.name")
            else:
                dns_subdomain(errs, f"{spath}.{key}.name", ref.name)


# The runtime's own filesystems (security-reliability.md 1.9: runc's checkProcMount) and the files it
# binds into every container: a volume there would hide or replace them.
RUNTIME_FILESYSTEMS = ("/proc", "/sys", "/dev")
RUNTIME_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/shm")


def _runtime_mount_problem(mount_path: str, termination_path: str) -> str | None:
    """Why a volume cannot be mounted at `mount_path` (relative ones get a "/", as the kubelet
    does), or None."""
    import posixpath

    def absolute(path: str) -> str:  # "//x" stays "//x" to normpath (POSIX): one leading "/" here
        return "/" + posixpath.normpath("/" + path).lstrip("/")

    target = absolute(mount_path)
    for top in RUNTIME_FILESYSTEMS:
        if target == top or target.startswith(top + "/"):
            return f"must not be {top} or under it: the container runtime mounts its own {top} there"
    if target in RUNTIME_FILES or (termination_path and target == absolute(termination_path)):
        return "must not be a file the container runtime mounts (the pod's /etc files, /dev/shm, " \
               "the termination message path)"
    return None


def _mounts(errs: Errors, mounts: tuple[VolumeMount, ...], path: str, volumes: set[str],
            security: SecurityContext | None, termination_path: str = "") -> None:
    paths: set[str] = set()
    for i, mount in enumerate(mounts):
        mpath = f"{path}[{i}]"
        if not mount.name:
            errs.required(f"{mpath}.name")
        elif mount.name not in volumes:
            errs.not_found(f"{mpath}.name", mount.name)
        if not mount.mount_path:
            errs.required(f"{mpath}.mountPath")
        elif mount.mount_path in paths:
            errs.invalid(f"{mpath}.mountPath", mount.mount_path, "must be unique")
        elif (problem := _runtime_mount_problem(mount.mount_path, termination_path)) is not None:
            errs.invalid(f"{mpath}.mountPath", mount.mount_path, problem)
        paths.add(mount.mount_path)
        if mount.sub_path:
            relative_path(errs, f"{mpath}.subPath", mount.sub_path)
        if mount.sub_path_expr:
            if mount.sub_path:
                errs.invalid(f"{mpath}.subPathExpr", mount.sub_path_expr, "subPathExpr and subPath are mutually exclusive")
            relative_path(errs, f"{mpath}.subPathExpr", mount.sub_path_expr)
        errs.enum(f"{mpath}.mountPropagation", mount.mount_propagation, PROPAGATIONS)
        if mount.mount_propagation == "Bidirectional" and not (security is not None and security.privileged):
            errs.forbidden(f"{mpath}.mountPropagation", "Bidirectional mount propagation is available only to "
                                                        "privileged containers")
        errs.enum(f"{mpath}.recursiveReadOnly", mount.recursive_read_only, RECURSIVE_READ_ONLY)
        if mount.recursive_read_only not in (None, "Disabled"):
            if not mount.read_only:
                errs.forbidden(f"{mpath}.recursiveReadOnly", "may only be specified when readOnly is true")
            if mount.mount_propagation not in (None, "None"):
                errs.forbidden(f"{mpath}.recursiveReadOnly",
                               "may only be specified when mountPropagation is None or not specified")


# --- resources (ValidateResourceRequirements, validatePodResources) -------------------------------

# helper.standardResources: the unqualified names validateResourceName accepts (quota names too).
_STANDARD_RESOURCES = frozenset((
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage",
    "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods", "resourcequotas", "services",
    "replicationcontrollers", "secrets", "configmaps", "persistentvolumeclaims", "storage",
    "requests.storage", "services.nodeports", "services.loadbalancers"))
_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")  # and hugepages-<size>
# IsSupportedPodLevelResource, as the API lists them; `pids` with PerPodPIDLimit (alpha in 1.37:
# spec.resources.limits.pids), which the Kubernetes documentation's examples use
_POD_LEVEL_RESOURCES = ("cpu", "hugepages-", "memory", "pids")
_QOS_RESOURCES = ("cpu", "memory")


def _resources(errs: Errors, resources: ResourceRequirements, path: str, *, pod_level: bool = False) -> None:
    """ValidateResourceRequirements: names (container or pod-level ones), non-negative quantities,
    whole numbers of extended resources, huge pages in whole pages and only next to cpu or memory,
    requests within limits, and equal to them where overcommit is not allowed (huge pages, extended
    resources)."""
    compute = huge = False
    for key, values in (("limits", resources.limits), ("requests", resources.requests)):
        for name, quantity in values.items():
            where = entry(f"{path}.{key}", name)
            _resource_name(errs, where, name, pod_level)
            _quantity_non_negative(errs, where, quantity)
            if _extended_resource(name) and quantity.milli % 1000:
                errs.invalid(where, quantity.text, "must be an integer")
            if name.startswith("hugepages-"):
                huge = True
                _hugepage_value(errs, where, name, quantity)
            compute = compute or name in _QOS_RESOURCES
    for name, request in resources.requests.items():
        limit = resources.limits.get(name)
        if limit is None:
            if not _overcommit_allowed(name):
                errs.required(f"{path}.limits", "Limit must be set for non overcommitable resources")
        elif request.milli != limit.milli and not _overcommit_allowed(name):
            errs.invalid(f"{path}.requests", request.text, f"must be equal to {name} limit of {limit.text}")
        elif request.milli > limit.milli:
            errs.invalid(f"{path}.requests", request.text,
                         f"must be less than or equal to {name} limit of {limit.text}")
    if huge and not compute:
        errs.forbidden(path, "HugePages require cpu or memory")


def _resource_name(errs: Errors, path: str, name: str, pod_level: bool) -> None:
    """validateContainerResourceName / validatePodResourceName (after validateResourceName)."""
    before = len(errs)
    qualified_name(errs, path, name)
    unqualified = "/" not in name
    standard = name in _STANDARD_RESOURCES or name.startswith(("hugepages-", "requests.hugepages-"))
    # validateResourceName stops at a malformed name; the container rule below still applies
    if len(errs) == before and unqualified and not standard and not (pod_level and name == "pids"):
        errs.invalid(path, name, "must be a standard resource type or fully qualified")
        if pod_level:
            return
    if pod_level:
        if name not in (*_QOS_RESOURCES, "pids") and not name.startswith("hugepages-"):
            errs.unsupported(path, name, _POD_LEVEL_RESOURCES)
    elif unqualified:
        if name not in _CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            errs.invalid(path, name, "must be a standard resource for containers")
    elif not _native_resource(name) and not _extended_resource(name):
        errs.invalid(path, name, "doesn't follow extended resource name standard")


def _native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _extended_resource(name: str) -> bool:
    """IsExtendedResourceName: a fully qualified name outside kubernetes.io that quota can track
    as `requests.<name>`."""
    if _native_resource(name) or name.startswith("requests."):
        return False
    probe = Errors()
    qualified_name(probe, "", "requests." + name)
    return not probe


def _overcommit_allowed(name: str) -> bool:
    return _native_resource(name) and not name.startswith("hugepages-")


def _hugepage_value(errs: Errors, path: str, name: str, quantity: Quantity) -> None:
    """IsHugePageResourceValueDivisible: a whole number of pages of the name's size."""
    from sandbox.spec.quantity import parse_quantity

    page = parse_quantity(name.removeprefix("hugepages-"))
    if page is None or page.milli <= 0 or page.milli % 1000 or quantity.value % page.value:
        errs.invalid(path, quantity.text, f"{quantity.text} is not positive integer multiple of {name}")


def _pod_resources(errs: Errors, spec: PodSpec, path: str) -> None:
    """validatePodResources: pod-level requests and limits (KEP-2837), then their consistency with
    the containers' (validatePodResourceConsistency)."""
    resources = spec.resources
    if resources is None:
        return
    if spec.os is not None and spec.os.get("name") == "windows":
        errs.forbidden(path, "may not be set for a windows pod")
        return
    _resources(errs, resources, path, pod_level=True)
    # checked against the defaulted requests: a cpu or memory request left out is the pod-level
    # limit (defaultPodRequests), so containers asking for more than that limit are refused too
    requests = {**{n: q for n, q in resources.limits.items() if n in _QOS_RESOURCES}, **resources.requests}
    for name, request in requests.items():
        total, written = _aggregate(spec, name, "requests")
        if written is not None and total > request.milli:
            errs.invalid(entry(f"{path}.requests", name), request.text,
                         f"must be greater than or equal to aggregate container requests of {_canonical(total, written)}")
    for name, limit in resources.limits.items():
        total, written = _aggregate(spec, name, "limits")
        if name.startswith("hugepages-") and written is not None and total > limit.milli:
            errs.invalid(entry(f"{path}.limits", name), limit.text,
                         f"must be greater than or equal to aggregate container limits of {_canonical(total, written)}")
    for i, c in enumerate(spec.containers):
        for name, own in (c.resources.limits if c.resources is not None else {}).items():
            pod_limit = resources.limits.get(name)
            if pod_limit is not None and own.milli > pod_limit.milli:
                # the API server builds this path from the pod-level one: spec.resources.containers[0][cpu].limits
                errs.invalid(f"{entry(f'{path}.containers[{i}]', name)}.limits", own.text,
                             f"must be less than or equal to pod limits of {pod_limit.text}")


def _aggregate(spec: PodSpec, name: str, kind: str) -> tuple[int, Quantity | None]:
    """The containers' effective request or limit of `name` in thousandths (PodRequests/PodLimits
    without the pod level: app containers and sidecars summed, or the largest init container with
    the sidecars before it), and the first quantity written for it (its format prints the sum)."""
    written = [q for c in (*spec.containers, *spec.init_containers) if (q := _requirement(c, kind, name)) is not None]

    def milli(c: Container) -> int:
        q = _requirement(c, kind, name)
        return q.milli if q is not None else 0

    # the formula of cgroups.resources.effective, on the spec (the parse imports no mechanism)
    total = sum(milli(c) for c in spec.containers)
    sidecars = init_max = 0
    for c in spec.init_containers:
        if c.restart_policy == "Always":
            sidecars += milli(c)
            init_max = max(init_max, sidecars)
        else:
            init_max = max(init_max, milli(c) + sidecars)
    return max(total + sidecars, init_max), (written[0] if written else None)


def _requirement(c: Container, kind: str, name: str) -> Quantity | None:
    values: Mapping[str, Quantity] = getattr(c.resources, kind) if c.resources is not None else {}
    return values.get(name)


def _canonical(milli: int, like: Quantity) -> str:
    """A sum as Quantity.String() prints it in the format of the quantity it started from: binary
    suffixes for a value written with one (1.5Gi -> 1536Mi), else decimal ones (1500m, 4, 2M)."""
    if like.text.endswith(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")) and milli % 1000 == 0 and milli >= 1024 * 1000:
        value, unit = milli // 1000, 0
        while value % 1024 == 0 and unit < 6:
            value, unit = value // 1024, unit + 1
        return f"{value}{('', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei')[unit]}"
    if milli % 1000:
        return f"{milli}m"
    value, unit = milli // 1000, 0
    while value and value % 1000 == 0 and unit < 6:
        value, unit = value // 1000, unit + 1
    return f"{value}{('', 'k', 'M', 'G', 'T', 'P', 'E')[unit]}"


def _quantity_non_negative(errs: Errors, path: str, quantity: Quantity) -> None:
    if quantity.milli < 0:
        errs.invalid(path, quantity.text, "must be greater than or equal to 0")


def _probe(errs: Errors, probe: Probe, path: str, kind: str) -> None:
    _handlers(errs, path, (("exec", probe.exec), ("httpGet", probe.http_get), ("tcpSocket", probe.tcp_socket),
                           ("grpc", probe.grpc)))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        non_negative(errs, f"{path}.{key}", getattr(probe, _SNAKE_TIMING[key]))
    if kind != "readinessProbe" and probe.success_threshold != 1:
        errs.invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1")
    if probe.termination_grace_period_seconds is not None:
        if kind == "readinessProbe":
            errs.invalid(f"{path}.terminationGracePeriodSeconds", probe.termination_grace_period_seconds,
                         "must not be set for readinessProbes")
        elif probe.termination_grace_period_seconds <= 0:
            errs.invalid(f"{path}.terminationGracePeriodSeconds", probe.termination_grace_period_seconds,
                         "must be greater than 0")
    if probe.exec is not None and not probe.exec.command:
        errs.required(f"{path}.exec.command")
    if probe.http_get is not None:
        _http_get(errs, probe.http_get, f"{path}.httpGet")
    if probe.tcp_socket is not None:
        _port_ref(errs, f"{path}.tcpSocket.port", probe.tcp_socket.port)
    if probe.grpc is not None:
        in_range(errs, f"{path}.grpc.port", probe.grpc.port, 1, 65535)


_SNAKE_TIMING = {"initialDelaySeconds": "initial_delay_seconds", "timeoutSeconds": "timeout_seconds",
                 "periodSeconds": "period_seconds", "successThreshold": "success_threshold",
                 "failureThreshold": "failure_threshold"}


def _handlers(errs: Errors, path: str, handlers: tuple[tuple[str, object], ...]) -> None:
    present = [key for key, value in handlers if value is not None]
    if not present:
        errs.required(path, "must specify a handler type")
    for key in present[1:]:
        errs.forbidden(f"{path}.{key}", "may not specify more than 1 handler type")


def _http_get(errs: Errors, action: HTTPGetAction, path: str) -> None:
    if not action.path:
        errs.required(f"{path}.path")
    _port_ref(errs, f"{path}.port", action.port)
    errs.enum(f"{path}.scheme", action.scheme, SCHEMES)
    for i, header in enumerate(action.http_headers):
        if not _HTTP_HEADER_NAME.fullmatch(header.name):
            errs.invalid(f"{path}.httpHeaders[{i}].name", header.name, "a valid HTTP header must consist of "
                         "alphanumeric characters, '-', '_' or '.'")


def _port_ref(errs: Errors, path: str, port: int | str) -> None:
    if isinstance(port, int):
        in_range(errs, path, port, 1, 65535)
    else:
        port_name(errs, path, port)


def _lifecycle(errs: Errors, lifecycle: Lifecycle, path: str, grace: int) -> None:
    for key, handler in (("postStart", lifecycle.post_start), ("preStop", lifecycle.pre_stop)):
        if handler is not None:
            _lifecycle_handler(errs, handler, f"{path}.{key}", grace)


def _lifecycle_handler(errs: Errors, handler: LifecycleHandler, path: str, grace: int) -> None:
    _handlers(errs, path, (("exec", handler.exec), ("httpGet", handler.http_get),
                           ("tcpSocket", handler.tcp_socket), ("sleep", handler.sleep)))
    if handler.exec is not None and not handler.exec.command:
        errs.required(f"{path}.exec.command")
    if handler.http_get is not None:
        _http_get(errs, handler.http_get, f"{path}.httpGet")
    if handler.sleep is not None and not 0 <= handler.sleep.seconds <= max(grace, 0):
        # validateSleepAction (PodLifecycleSleepActionAllowZero, GA in 1.34): at most the pod's
        # terminationGracePeriodSeconds (as defaulted); the error is on `sleep`, not `seconds`
        errs.invalid(f"{path}.sleep", handler.sleep.seconds,
                     f"must be non-negative and less than terminationGracePeriodSeconds ({grace})")


def _profile(errs: Errors, profile: SecurityProfile | None, path: str) -> None:
    if profile is None:
        return
    errs.enum(f"{path}.type", profile.type, PROFILE_TYPES)
    if profile.type == "Localhost" and not profile.localhost_profile:
        errs.required(f"{path}.localhostProfile", "must be set when profile type is \"Localhost\"")
    elif profile.type != "Localhost" and profile.localhost_profile is not None:
        errs.invalid(f"{path}.localhostProfile", profile.localhost_profile,
                     "can only be set when profile type is \"Localhost\"")


def _seccomp_profile(errs: Errors, profile: SecurityProfile | None, path: str) -> None:
    """A seccomp Localhost profile is a path below the kubelet's seccomp directory."""
    _profile(errs, profile, path)
    if profile is not None and profile.type == "Localhost" and profile.localhost_profile:
        relative_path(errs, f"{path}.localhostProfile", profile.localhost_profile)


def _ids(errs: Errors, path: str, pairs: tuple[tuple[str, int | None], ...]) -> None:
    for key, value in pairs:
        in_range(errs, f"{path}.{key}", value, 0, _INT32_MAX)


def _container_security(errs: Errors, sc: SecurityContext, path: str) -> None:
    _ids(errs, path, (("runAsUser", sc.run_as_user), ("runAsGroup", sc.run_as_group)))
    errs.enum(f"{path}.procMount", sc.proc_mount, PROC_MOUNTS)
    _seccomp_profile(errs, sc.seccomp_profile, f"{path}.seccompProfile")
    _profile(errs, sc.app_armor_profile, f"{path}.appArmorProfile")
    if sc.allow_privilege_escalation is False:
        # The API server's rule, to the letter: only the spelling `CAP_SYS_ADMIN` is refused
        # (ValidateSecurityContext compares the string), so `SYS_ADMIN` passes it as it does there.
        if sc.privileged:
            errs.invalid(path, "", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true")
        if sc.capabilities is not None and "CAP_SYS_ADMIN" in sc.capabilities.add:
            errs.invalid(path, "", "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` "
                         "CAP_SYS_ADMIN")


def _pod_security(errs: Errors, sc: PodSecurityContext, path: str) -> None:
    _ids(errs, path, (("runAsUser", sc.run_as_user), ("runAsGroup", sc.run_as_group), ("fsGroup", sc.fs_group)))
    for i, group in enumerate(sc.supplemental_groups):
        in_range(errs, f"{path}.supplementalGroups[{i}]", group, 0, _INT32_MAX)
    errs.enum(f"{path}.supplementalGroupsPolicy", sc.supplemental_groups_policy, ("Merge", "Strict"))
    errs.enum(f"{path}.fsGroupChangePolicy", sc.fs_group_change_policy, ("OnRootMismatch", "Always"))
    _seccomp_profile(errs, sc.seccomp_profile, f"{path}.seccompProfile")
    _profile(errs, sc.app_armor_profile, f"{path}.appArmorProfile")


def _dns(errs: Errors, spec: PodSpec, path: str) -> None:
    """validatePodDNSConfig (the ExpandedDNSConfig limits: 32 search paths, 2048 characters)."""
    config: PodDNSConfig | None = spec.dns_config
    cpath = f"{path}.dnsConfig"
    if spec.dns_policy == "None":
        if config is None:
            errs.required(cpath, "must provide `dnsConfig` when `dnsPolicy` is None")
            return
        if not config.nameservers:
            errs.required(f"{cpath}.nameservers", "must provide at least one DNS nameserver when `dnsPolicy` is None")
            return
    if config is None:
        return
    if len(config.nameservers) > 3:
        errs.invalid(f"{cpath}.nameservers", list(config.nameservers), "must not have more than 3 nameservers")
    for i, server in enumerate(config.nameservers):
        if not _is_ip(server):
            errs.invalid(f"{cpath}.nameservers[{i}]", server, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
    if len(config.searches) > 32:
        errs.invalid(f"{cpath}.searches", list(config.searches), "must not have more than 32 search paths")
    if len(" ".join(config.searches)) > 2048:
        errs.invalid(f"{cpath}.searches", list(config.searches),
                     "must not have more than 2048 characters (including spaces) in the search list")
    for i, search in enumerate(config.searches):
        dns_subdomain(errs, f"{cpath}.searches[{i}]", search.removesuffix("."))  # a trailing dot is fine
    for i, option in enumerate(config.options):
        if not option.name:
            errs.required(f"{cpath}.options[{i}]", "must not be empty")


def _hostname_override(errs: Errors, spec: PodSpec, path: str) -> None:
    """hostnameOverride (HostnameOverride, beta in 1.35): a DNS subdomain of at most 64 characters
    (the kernel's nodename), never with setHostnameAsFQDN or hostNetwork (per the field's API doc)."""
    value = spec.hostname_override
    if value is None:
        return
    opath = f"{path}.hostnameOverride"
    if len(value) > 64:
        errs.invalid(opath, value, "must be no more than 64 characters")
    dns_subdomain(errs, opath, value)
    if spec.set_hostname_as_fqdn:
        errs.invalid(opath, value, "cannot be set when setHostnameAsFQDN is true")
    if spec.host_network:
        errs.invalid(opath, value, "cannot be set when hostNetwork is true")


def _is_ip(text: str) -> bool:
    import ipaddress  # only pods that name addresses pay for it

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- ConfigMap and Secret -------------------------------------------------------------------------

_DATA_LIMIT = 1024 * 1024  # `MaxSecretSize`, and the same for ConfigMaps


def validate_config_map(cm: ConfigMap) -> list[FieldError]:
    errs = Errors()
    validate_meta(errs, cm.metadata)
    size = 0
    for key, value in cm.data.items():
        config_key(errs, entry("data", key), key)
        size += len(value)
    for key, blob in cm.binary_data.items():
        config_key(errs, entry("binaryData", key), key)
        if key in cm.data:
            errs.invalid(entry("binaryData", key), key, "duplicate of key present in data")
        size += len(blob)
    if size > _DATA_LIMIT:
        errs.too_long("", _DATA_LIMIT)
    return errs


def validate_secret(secret: Secret) -> list[FieldError]:
    errs = Errors()
    validate_meta(errs, secret.metadata)
    size = 0
    for key, blob in secret.data.items():
        config_key(errs, entry("data", key), key)
        size += len(blob)
    if size > _DATA_LIMIT:
        errs.too_long("data", _DATA_LIMIT)
    return errs
