"""The agent's settings: a KubeletConfiguration file (`--config`) with command-line flags over it.

The file is read as the kubelet reads its `--config`: one YAML or JSON object of apiVersion
`kubelet.config.k8s.io/v1beta1`, kind `KubeletConfiguration`, through the project's bounded YAML
loader (sandbox/spec/load.py: size, depth, aliases, duplicate keys, tags). Relative paths in the
file are taken from the file's directory (the kubelet's resolveRelativePaths), relative flag paths
from the working directory. Flags given on the command line win over the file: the kubelet parses
the flags a second time over the loaded file (kubeletConfigFlagPrecedence); a repeated
`--manifest-url-header` replaces the file's whole header map, as its flag type clears the map
on first use.

Field by field (nothing is silently ignored):
- honoured: staticPodPath, staticPodURL, staticPodURLHeader, fileCheckFrequency and
  httpCheckFrequency (kubelet default 20s each; a duration must be positive: the kubelet's tickers
  panic on 0), podPidsLimit (-1 unlimited; unset is the project's 4096, see pod/cgroups.py),
  containerLogMaxSize (10Mi), containerLogMaxFiles (5, at least 2).
- warned (one line each, the agent runs): the fields of the kubelet's own HTTPS server and API
  client (address, ports, TLS, authentication, authorization, debugging and profiling handlers,
  event/API QPS, node status and lease reporting, syncFrequency, logging, tracing). There is no
  kubelet server and no API server here, so leaving them unread protects nothing.
- refused (the file is refused with the field's path): every other field of the kubelet, above all
  the ones a user relies on for pods (clusterDNS, cgroupDriver, eviction thresholds, seccompDefault,
  allowedUnsafeSysctls, reserved resources, featureGates, ...), and unknown fields.
  `manifestURL`/`manifestURLHeader` are the names some tutorials use; the kubelet's fields are
  `staticPodURL`/`staticPodURLHeader` (its strict decoder rejects the others and its lenient
  fallback then drops them), so they are refused with that hint rather than read.
The node name is not a KubeletConfiguration field: it is the hostname lowercased unless
`--hostname-override` is given (the kubelet's nodeutil.GetHostname), see `node_name`.
"""

from __future__ import annotations

import os

from sandbox.errors import FieldError, SpecError, UsageError
from sandbox.record import Record
from sandbox.supervisor.run import DEFAULT_MAX_PODS  # one default for run and the agent

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

API_VERSION = "kubelet.config.k8s.io/v1beta1"
KIND = "KubeletConfiguration"
DEFAULT_CHECK_FREQUENCY = 20.0  # seconds: fileCheckFrequency and httpCheckFrequency
DEFAULT_LOG_MAX_SIZE = 10 * 1024 * 1024  # containerLogMaxSize 10Mi (logs/rotation.py)
DEFAULT_LOG_MAX_FILES = 5

Headers = tuple[tuple[str, tuple[str, ...]], ...]  # staticPodURLHeader, in the order written

_WARNED = frozenset((
    "address", "port", "readOnlyPort", "healthzPort", "healthzBindAddress", "enableServer",
    "tlsCertFile", "tlsPrivateKeyFile", "tlsCipherSuites", "tlsMinVersion", "rotateCertificates",
    "serverTLSBootstrap", "authentication", "authorization", "enableDebuggingHandlers",
    "enableContentionProfiling", "enableProfilingHandler", "enableDebugFlagsHandler",
    "enableSystemLogHandler", "enableSystemLogQuery", "streamingConnectionIdleTimeout",
    "eventRecordQPS", "eventBurst", "kubeAPIQPS", "kubeAPIBurst", "contentType",
    "nodeStatusUpdateFrequency", "nodeStatusReportFrequency", "nodeLeaseDurationSeconds",
    "nodeStatusMaxImages", "registerNode", "registerWithTaints", "providerID", "syncFrequency",
    "logging", "tracing", "showHiddenMetricsForVersion", "volumeStatsAggPeriod",
    "enableControllerAttachDetach", "configMapAndSecretChangeDetectionStrategy",
))
# The rest of v1beta1's fields: known to the kubelet, not built here (refused, named as such).
_KUBELET_FIELDS = frozenset((
    "podLogsDir", "registryPullQPS", "registryBurst", "imagePullCredentialsVerificationPolicy",
    "preloadedImagesVerificationAllowlist", "oomScoreAdj", "clusterDomain", "clusterDNS",
    "imageMinimumGCAge", "imageMaximumGCAge", "imageGCHighThresholdPercent", "imageGCLowThresholdPercent",
    "kubeletCgroups", "systemCgroups", "cgroupRoot", "cgroupsPerQOS", "cgroupDriver", "cpuManagerPolicy",
    "singleProcessOOMKill", "cpuManagerPolicyOptions", "cpuManagerReconcilePeriod", "memoryManagerPolicy",
    "topologyManagerPolicy", "topologyManagerScope", "topologyManagerPolicyOptions", "qosReserved",
    "runtimeRequestTimeout", "hairpinMode", "podCIDR", "resolvConf", "runOnce", "cpuCFSQuota",
    "cpuCFSQuotaPeriod", "maxOpenFiles", "serializeImagePulls", "maxParallelImagePulls", "evictionHard",
    "evictionSoft", "evictionSoftGracePeriod", "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod", "evictionMinimumReclaim", "mergeDefaultEvictionSettings", "podsPerCore",
    "protectKernelDefaults", "makeIPTablesUtilChains", "iptablesMasqueradeBit", "iptablesDropBit",
    "featureGates", "failSwapOn", "memorySwap", "containerLogMaxWorkers", "containerLogMonitorInterval",
    "systemReserved", "kubeReserved", "reservedSystemCPUs", "systemReservedCgroup", "kubeReservedCgroup",
    "enforceNodeAllocatable", "allowedUnsafeSysctls", "volumePluginDir", "kernelMemcgNotification",
    "shutdownGracePeriod", "shutdownGracePeriodCriticalPods", "shutdownGracePeriodByPodPriority",
    "crashLoopBackOff", "reservedMemory", "seccompDefault", "memoryThrottlingFactor",
    "localStorageCapacityIsolation", "containerRuntimeEndpoint", "imageServiceEndpoint", "failCgroupV1",
    "userNamespaces",
))
_RENAMED = {"manifestURL": "staticPodURL", "manifestURLHeader": "staticPodURLHeader",
            "podManifestPath": "staticPodPath"}


class AgentConfig(Record):
    """The settings the static pod sources and the agent's pods run with."""

    static_pod_path: str = ""  # "": no manifest directory (absolute once merged)
    manifest_url: str = ""  # "": no manifest URL
    manifest_url_header: Headers = ()
    file_check_frequency: float = DEFAULT_CHECK_FREQUENCY
    http_check_frequency: float = DEFAULT_CHECK_FREQUENCY
    pod_pids_limit: int | None = 4096  # None: unlimited (-1); pod/cgroups.DEFAULT_POD_PIDS_LIMIT
    container_log_max_size: int = DEFAULT_LOG_MAX_SIZE  # bytes; negative: never rotate
    container_log_max_files: int = DEFAULT_LOG_MAX_FILES
    max_pods: int = DEFAULT_MAX_PODS
    hostname_override: str = ""
    warnings: tuple[str, ...] = ()  # `<file>: <field>: not read: why`, one per warned field set


class AgentFlags(Record):
    """`sandbox agent`'s flags as given: None when absent (the file's value, else the default, stays).
    Values are the flag strings, so a bad one is reported with the flag's name."""

    config: str | None = None  # --config
    pod_manifest_path: str | None = None  # --pod-manifest-path
    manifest_url: str | None = None  # --manifest-url
    manifest_url_header: tuple[str, ...] | None = None  # each --manifest-url-header 'a:x,b:y'
    file_check_frequency: str | None = None
    http_check_frequency: str | None = None
    pod_pids_limit: str | None = None
    container_log_max_size: str | None = None
    container_log_max_files: str | None = None
    max_pods: str | None = None
    hostname_override: str | None = None


def agent_config(flags: AgentFlags) -> AgentConfig:
    """The file named by `--config` (if any), then every flag given over it. SpecError naming the
    file and field for a bad file; UsageError naming the flag for a bad flag."""
    settings: dict[str, Any] = {}
    warnings: tuple[str, ...] = ()
    if flags.config is not None:
        settings, warnings = read_config_file(flags.config)
    settings.update(_flag_settings(flags))
    return AgentConfig(**settings, warnings=warnings)


def node_name(hostname_override: str = "") -> str:
    """The kubelet's node name: `--hostname-override` if given, else the kernel's hostname; trimmed
    and lowercased (nodeutil.GetHostname). UsageError when it ends up empty."""
    name = (hostname_override or os.uname().nodename).strip().lower()
    if not name:
        raise UsageError("--hostname-override: empty hostname is invalid")
    return name


# --- the file -------------------------------------------------------------------------------------


def read_config_file(path: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The AgentConfig fields a KubeletConfiguration file sets, and its warnings."""
    from sandbox.spec.source import read_manifest

    docs = decode_documents(read_manifest(path), path)
    if len(docs) > 1:
        raise SpecError([FieldError("<input>", f"Invalid value: {len(docs)} YAML documents: expected exactly one")],
                        path)
    doc = docs[0]
    errors: list[FieldError] = []
    if not isinstance(doc, dict):
        raise SpecError([FieldError("<document>", "Invalid value: must be a KubeletConfiguration object")], path)
    _check_type_meta(doc, errors)
    settings: dict[str, Any] = {}
    warnings: list[str] = []
    base = os.path.dirname(os.path.abspath(path))
    for key, value in doc.items():
        if key in ("apiVersion", "kind"):
            continue
        reader = _READERS.get(key)
        if reader is not None:
            try:
                name, parsed = reader(value)
            except ValueError as e:
                errors.append(FieldError(key, str(e)))
                continue
            if name == "static_pod_path" and parsed:
                parsed = os.path.join(base, parsed)
            settings[name] = parsed
        elif key in _WARNED:
            warnings.append(f"{path}: {key}: not read: sandbox serves no kubelet API and reports to no "
                            "API server")
        else:
            errors.append(FieldError(key, _refusal(key)))
    if errors:
        raise SpecError(errors, path)
    return settings, tuple(warnings)


def decode_documents(data: bytes, source: str) -> list[object]:
    """The YAML/JSON documents of `data` (at least one), read by the project's bounded loader.
    SpecError (prefixed with `source`) on any problem."""
    from sandbox.spec import load

    errors: list[FieldError] = []
    docs: list[object] = load.decode_documents(data, errors)
    if not errors and not docs:
        errors.append(FieldError("<input>", "Required value: the input holds no document"))
    if errors:
        raise SpecError(errors, source)
    return docs


def _check_type_meta(doc: dict[str, Any], errors: list[FieldError]) -> None:
    from sandbox.spec.convert import format_value

    for key, want in (("apiVersion", API_VERSION), ("kind", KIND)):
        got = doc.get(key)
        if got is None:
            errors.append(FieldError(key, "Required value"))
        elif got != want:
            errors.append(FieldError(key, f'Unsupported value: {format_value(got)}: supported values: "{want}"'))


def _refusal(key: str) -> str:
    if key in _RENAMED:
        return (f"Forbidden: not a KubeletConfiguration field: the kubelet's field is {_RENAMED[key]} "
                f"(--{_flag_of(key)} is the command-line flag)")
    if key in _KUBELET_FIELDS:
        return "Forbidden: not supported by the sandbox agent"
    return f'Forbidden: unknown field "{key}"'


def _flag_of(key: str) -> str:
    return {"manifestURL": "manifest-url", "manifestURLHeader": "manifest-url-header",
            "podManifestPath": "pod-manifest-path"}[key]


# Each reader: the file's value -> (AgentConfig field, parsed value); ValueError says why not.


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"Invalid value: {_shown(value)}: must be a string")
    return value


def _read_path(value: object) -> tuple[str, Any]:
    return "static_pod_path", _string(value)


def _read_url(value: object) -> tuple[str, Any]:
    url = _string(value)
    return "manifest_url", check_url(url) if url else ""  # "" is the kubelet's default: no URL source


def _read_headers(value: object) -> tuple[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"Invalid value: {_shown(value)}: must be a map of header names to lists of values")
    headers = []
    for name, values in value.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"Invalid value: {_shown(values)}: header {_shown(name)} must have a list of "
                             "string values")
        headers.append((check_header(str(name), "", values), tuple(values)))
    return "manifest_url_header", tuple(headers)


def _reader_duration(field: str) -> Any:
    def read(value: object) -> tuple[str, Any]:
        return field, parse_frequency(_string(value))
    return read


def _read_pids(value: object) -> tuple[str, Any]:
    if type(value) is not int:
        raise ValueError(f"Invalid value: {_shown(value)}: must be an integer")
    return "pod_pids_limit", pids_limit(value)


def _read_log_size(value: object) -> tuple[str, Any]:
    from sandbox.logs.rotation import parse_max_size

    try:
        return "container_log_max_size", parse_max_size(_string(value))
    except ValueError as e:
        raise ValueError(f"Invalid value: {_shown(value)}: {e}") from None


def _read_log_files(value: object) -> tuple[str, Any]:
    if type(value) is not int:
        raise ValueError(f"Invalid value: {_shown(value)}: must be an integer")
    return "container_log_max_files", log_max_files(value)


def _read_max_pods(value: object) -> tuple[str, Any]:
    if type(value) is not int:
        raise ValueError(f"Invalid value: {_shown(value)}: must be an integer")
    return "max_pods", max_pods(value)


_READERS = {
    "staticPodPath": _read_path, "staticPodURL": _read_url, "staticPodURLHeader": _read_headers,
    "fileCheckFrequency": _reader_duration("file_check_frequency"),
    "httpCheckFrequency": _reader_duration("http_check_frequency"),
    "podPidsLimit": _read_pids, "containerLogMaxSize": _read_log_size, "containerLogMaxFiles": _read_log_files,
    "maxPods": _read_max_pods,
}


def _shown(value: object) -> str:
    from sandbox.spec.convert import format_value

    return format_value(value)


# --- values shared by the file and the flags ------------------------------------------------------


def parse_frequency(text: str) -> float:
    """A check period: a Go duration (`20s`, `1m30s`, `500ms`) above zero, in seconds."""
    from sandbox.supervisor.backoff import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ValueError(f'invalid duration "{text}" (e.g. 20s, 500ms, 1m30s)') from None
    if seconds <= 0:
        raise ValueError(f'invalid duration "{text}": must be above zero')
    return seconds


def pids_limit(value: int) -> int | None:
    """podPidsLimit: -1 is unlimited (None); 0 or below -1 is refused as `sandbox run` refuses it."""
    if value == 0 or value < -1:
        raise ValueError(f"Invalid value: {value}: must be a positive number or -1 (unlimited)")
    return None if value == -1 else value


def max_pods(value: int) -> int:
    """maxPods: at least one pod (the kubelet's validation refuses a negative value; 0 would
    admit nothing)."""
    if value < 1:
        raise ValueError(f"Invalid value: {value}: must be at least 1")
    return value


def log_max_files(value: int) -> int:
    if value < 2:
        raise ValueError(f"Invalid value: {value}: must be at least 2 (the current file and one rotated file)")
    return value


def check_url(url: str) -> str:
    """A manifest URL: http or https with a host. (Go's client would try any URL; urllib would even
    open file: URLs. Only the two schemes the kubelet's client can fetch are taken.)"""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as e:
        raise ValueError(f"Invalid value: {_shown(url)}: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Invalid value: {_shown(url)}: must be an http:// or https:// URL with a host")
    if any(c in url for c in "\r\n\t ") or not url.isprintable():
        raise ValueError(f"Invalid value: {_shown(url)}: must not contain white space or control characters")
    return url


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_header(name: str, flag: str, values: list[str]) -> str:
    """A header name is an HTTP token; a value holds no line break or NUL (it would split the
    request). `flag` is empty for the file's map."""
    where = f"{flag}: " if flag else ""
    if not name or not set(name) <= _TOKEN:
        raise ValueError(f"{where}Invalid value: {_shown(name)}: not a valid HTTP header name")
    for v in values:
        if any(c in v for c in "\r\n\0"):
            raise ValueError(f"{where}Invalid value: {_shown(v)}: header {name} holds a line break or NUL")
    return name


def parse_header_flags(values: tuple[str, ...]) -> Headers:
    """`--manifest-url-header 'a:hello,b:again' --manifest-url-header 'b:beautiful'` as the
    kubelet's ColonSeparatedMultimapStringString: pairs split at commas, each at its first colon,
    both sides trimmed; values of one name kept in the order given."""
    merged: dict[str, list[str]] = {}
    for value in values:
        for pair in value.split(","):
            if not pair:
                continue
            name, colon, header_value = pair.partition(":")
            if not colon:
                raise UsageError(f"--manifest-url-header: {pair!r}: malformed pair, expect string:string")
            merged.setdefault(name.strip(), []).append(header_value.strip())
    try:
        return tuple((check_header(n, "--manifest-url-header", vs), tuple(vs)) for n, vs in merged.items())
    except ValueError as e:
        raise UsageError(str(e)) from None


def _flag_settings(flags: AgentFlags) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        _flag_values(flags, out)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if flags.manifest_url_header is not None:
        out["manifest_url_header"] = parse_header_flags(flags.manifest_url_header)
    return out


def _flag_values(flags: AgentFlags, out: dict[str, Any]) -> None:
    if flags.pod_manifest_path is not None:
        out["static_pod_path"] = os.path.abspath(flags.pod_manifest_path) if flags.pod_manifest_path else ""
    if flags.manifest_url is not None:
        out["manifest_url"] = _flagged("--manifest-url", check_url, flags.manifest_url) if flags.manifest_url else ""
    for name, flag in (("file_check_frequency", "--file-check-frequency"),
                       ("http_check_frequency", "--http-check-frequency")):
        text = getattr(flags, name)
        if text is not None:
            out[name] = _flagged(flag, parse_frequency, text)
    if flags.pod_pids_limit is not None:
        out["pod_pids_limit"] = _flagged("--pod-pids-limit", lambda t: pids_limit(_integer(t)), flags.pod_pids_limit)
    if flags.container_log_max_size is not None:
        from sandbox.logs.rotation import parse_max_size

        out["container_log_max_size"] = _flagged("--container-log-max-size", parse_max_size,
                                                 flags.container_log_max_size)
    if flags.container_log_max_files is not None:
        out["container_log_max_files"] = _flagged("--container-log-max-files",
                                                  lambda t: log_max_files(_integer(t)), flags.container_log_max_files)
    if flags.max_pods is not None:
        out["max_pods"] = _flagged("--max-pods", lambda t: max_pods(_integer(t)), flags.max_pods)
    if flags.hostname_override is not None:
        out["hostname_override"] = flags.hostname_override


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"Invalid value: {text!r}: must be an integer") from None


def _flagged(flag: str, parse: Any, text: str) -> Any:
    try:
        return parse(text)
    except ValueError as e:
        raise ValueError(f"{flag}: {e}") from None


__all__ = ["API_VERSION", "KIND", "AgentConfig", "AgentFlags", "agent_config", "check_url", "decode_documents",
           "node_name", "parse_frequency", "parse_header_flags", "read_config_file"]
