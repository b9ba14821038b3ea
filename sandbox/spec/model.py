"""Typed model of the parts of a `v1` Pod (plus ConfigMap and Secret) that a node reads.

Every class is a frozen, slotted dataclass with snake_case attributes; lists are tuples and maps are
read-only `Mapping`s, so a loaded Pod can be shared between threads and never changes under the
runtime. `None` means "absent in the manifest". Objects that only a scheduler or an API server reads
(affinity, tolerations, topologySpreadConstraints, ...) are still checked field by field by the loader,
but kept as read-only camelCase mappings (`Opaque`) instead of classes: each class costs import time
(dataclass creation compiles code), and the runtime's start-up time is a feature.

Objects returned by `sandbox.spec.load` are always defaulted (`defaults.py` is the one place that knows
Kubernetes' defaults): fields annotated without `| None` (`restart_policy`, `image_pull_policy`,
`termination_grace_period_seconds`, probe timings, ...) then hold the value the API server would
store. The class defaults themselves are neutral zero values for building objects in code.
"""

from __future__ import annotations

from sandbox.record import Record, field

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Mapping  # the collections package costs ~1.5 ms to import
    from types import MappingProxyType
    from typing import Any
else:
    MappingProxyType = type(type.__dict__)  # types.MappingProxyType is this; `import types`: ~0.3 ms

# A checked but uninterpreted object: camelCase keys, values made read-only (tuples, mappings).
if TYPE_CHECKING:
    Opaque = Mapping[str, Any]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    # dataclasses refuse unhashable defaults; one shared read-only empty map is safe to hand out.
    return _EMPTY


class Quantity(Record):
    """A resource quantity: the text as written (`"100m"`, `"128Mi"`) and its value in thousandths.

    `milli` is rounded up to milli precision, as the API server does when it defaults (`0.1m` -> 1).
    """

    text: str
    milli: int

    @property
    def value(self) -> int:
        """Whole units, rounded up (`100m` -> 1, `128Mi` -> 134217728)."""
        return -(-self.milli // 1000)

    def __str__(self) -> str:
        return self.text


class ObjectMeta(Record):
    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    labels: Mapping[str, str] = field(default_factory=_empty)
    annotations: Mapping[str, str] = field(default_factory=_empty)
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    owner_references: tuple[Opaque, ...] = ()
    finalizers: tuple[str, ...] = ()
    managed_fields: tuple[Opaque, ...] = ()
    self_link: str | None = None


class ContainerPort(Record):
    container_port: int = 0
    name: str | None = None
    host_port: int | None = None
    host_ip: str | None = None
    protocol: str = ""


class ObjectFieldSelector(Record):
    field_path: str = ""
    api_version: str | None = None


class ResourceFieldSelector(Record):
    resource: str = ""
    container_name: str | None = None
    divisor: Quantity | None = None


class KeySelector(Record):
    """`configMapKeyRef` / `secretKeyRef`."""

    key: str = ""
    name: str | None = None
    optional: bool | None = None


class EnvVarSource(Record):
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: KeySelector | None = None
    secret_key_ref: KeySelector | None = None
    file_key_ref: Opaque | None = None


class EnvVar(Record):
    name: str = ""
    value: str | None = None
    value_from: EnvVarSource | None = None


class EnvFromRef(Record):
    """`envFrom[].configMapRef` / `envFrom[].secretRef`."""

    name: str | None = None
    optional: bool | None = None


class EnvFromSource(Record):
    prefix: str | None = None
    config_map_ref: EnvFromRef | None = None
    secret_ref: EnvFromRef | None = None


class ResourceRequirements(Record):
    limits: Mapping[str, Quantity] = field(default_factory=_empty)
    requests: Mapping[str, Quantity] = field(default_factory=_empty)
    claims: tuple[Opaque, ...] = ()


class VolumeMount(Record):
    name: str = ""
    mount_path: str = ""
    read_only: bool | None = None
    recursive_read_only: str | None = None
    sub_path: str | None = None
    sub_path_expr: str | None = None
    mount_propagation: str | None = None


class ExecAction(Record):
    command: tuple[str, ...] = ()


class HTTPHeader(Record):
    name: str = ""
    value: str = ""


class HTTPGetAction(Record):
    port: int | str = 0
    path: str | None = None
    host: str | None = None
    scheme: str | None = None
    http_headers: tuple[HTTPHeader, ...] = ()


class TCPSocketAction(Record):
    port: int | str = 0
    host: str | None = None


class GRPCAction(Record):
    port: int = 0
    service: str | None = None


class SleepAction(Record):
    seconds: int = 0


class Probe(Record):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initial_delay_seconds: int = 0
    timeout_seconds: int = 0
    period_seconds: int = 0
    success_threshold: int = 0
    failure_threshold: int = 0
    termination_grace_period_seconds: int | None = None


class LifecycleHandler(Record):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    sleep: SleepAction | None = None


class Lifecycle(Record):
    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None
    stop_signal: str | None = None


class Capabilities(Record):
    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()


class SELinuxOptions(Record):
    user: str | None = None
    role: str | None = None
    type: str | None = None
    level: str | None = None


class SecurityProfile(Record):
    """`seccompProfile` / `appArmorProfile`: a type plus a profile name for `Localhost`."""

    type: str = ""
    localhost_profile: str | None = None


class SecurityContext(Record):
    capabilities: Capabilities | None = None
    privileged: bool | None = None
    se_linux_options: SELinuxOptions | None = None
    windows_options: Opaque | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None
    proc_mount: str | None = None
    seccomp_profile: SecurityProfile | None = None
    app_armor_profile: SecurityProfile | None = None
    cgroup_options: Opaque | None = None


class PodSecurityContext(Record):
    se_linux_options: SELinuxOptions | None = None
    windows_options: Opaque | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    supplemental_groups: tuple[int, ...] = ()
    supplemental_groups_policy: str | None = None
    fs_group: int | None = None
    sysctls: tuple[Opaque, ...] = ()
    fs_group_change_policy: str | None = None
    seccomp_profile: SecurityProfile | None = None
    app_armor_profile: SecurityProfile | None = None
    se_linux_change_policy: str | None = None


class Container(Record):
    name: str = ""
    image: str | None = None
    image_pull_policy: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str | None = None
    ports: tuple[ContainerPort, ...] = ()
    env_from: tuple[EnvFromSource, ...] = ()
    env: tuple[EnvVar, ...] = ()
    resources: ResourceRequirements | None = None
    resize_policy: tuple[Opaque, ...] = ()
    restart_policy: str | None = None  # init containers only: "Always" makes a sidecar
    restart_policy_rules: tuple[Opaque, ...] = ()
    volume_mounts: tuple[VolumeMount, ...] = ()
    volume_devices: tuple[Opaque, ...] = ()
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: Lifecycle | None = None
    termination_message_path: str = ""
    termination_message_policy: str = ""
    security_context: SecurityContext | None = None
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False


class HostAlias(Record):
    ip: str = ""
    hostnames: tuple[str, ...] = ()


class PodDNSConfigOption(Record):
    name: str | None = None
    value: str | None = None


class PodDNSConfig(Record):
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[PodDNSConfigOption, ...] = ()


class LocalObjectReference(Record):
    name: str | None = None


class KeyToPath(Record):
    key: str = ""
    path: str = ""
    mode: int | None = None


class EmptyDirVolumeSource(Record):
    medium: str | None = None
    size_limit: Quantity | None = None
    mode: int | None = None


class HostPathVolumeSource(Record):
    path: str = ""
    type: str | None = None


class ConfigMapVolumeSource(Record):
    name: str | None = None
    items: tuple[KeyToPath, ...] = ()
    default_mode: int | None = None
    optional: bool | None = None


class SecretVolumeSource(Record):
    secret_name: str | None = None
    items: tuple[KeyToPath, ...] = ()
    default_mode: int | None = None
    optional: bool | None = None


class DownwardAPIVolumeFile(Record):
    path: str = ""
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    mode: int | None = None


class DownwardAPIVolumeSource(Record):
    items: tuple[DownwardAPIVolumeFile, ...] = ()
    default_mode: int | None = None


class Volume(Record):
    """A pod volume. The typed sources are the ones a node sets up itself; the others (image,
    persistentVolumeClaim, projected, network file systems, ...) are kept checked but opaque in
    `other_sources` under their camelCase name."""

    name: str = ""
    empty_dir: EmptyDirVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    downward_api: DownwardAPIVolumeSource | None = None
    other_sources: Mapping[str, Opaque] = field(default_factory=_empty)


class PodSpec(Record):
    containers: tuple[Container, ...] = ()
    init_containers: tuple[Container, ...] = ()
    ephemeral_containers: tuple[Opaque, ...] = ()
    volumes: tuple[Volume, ...] = ()
    restart_policy: str = ""
    termination_grace_period_seconds: int = 0
    active_deadline_seconds: int | None = None
    dns_policy: str = ""
    dns_config: PodDNSConfig | None = None
    node_selector: Mapping[str, str] = field(default_factory=_empty)
    service_account_name: str | None = None
    service_account: str | None = None
    automount_service_account_token: bool | None = None
    node_name: str | None = None
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    host_users: bool | None = None
    share_process_namespace: bool = False
    security_context: PodSecurityContext | None = None
    image_pull_secrets: tuple[LocalObjectReference, ...] = ()
    hostname: str | None = None
    hostname_override: str | None = None
    subdomain: str | None = None
    set_hostname_as_fqdn: bool | None = None
    host_aliases: tuple[HostAlias, ...] = ()
    scheduler_name: str | None = None
    priority_class_name: str | None = None
    priority: int | None = None
    preemption_policy: str | None = None
    runtime_class_name: str | None = None
    enable_service_links: bool | None = None
    overhead: Mapping[str, Quantity] = field(default_factory=_empty)
    resources: ResourceRequirements | None = None
    affinity: Opaque | None = None
    tolerations: tuple[Opaque, ...] = ()
    topology_spread_constraints: tuple[Opaque, ...] = ()
    readiness_gates: tuple[Opaque, ...] = ()
    scheduling_gates: tuple[Opaque, ...] = ()
    resource_claims: tuple[Opaque, ...] = ()
    os: Opaque | None = None


class Pod(Record):
    api_version: str = "v1"
    kind: str = "Pod"
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: PodSpec = field(default_factory=PodSpec)


class ConfigMap(Record):
    api_version: str = "v1"
    kind: str = "ConfigMap"
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    data: Mapping[str, str] = field(default_factory=_empty)
    binary_data: Mapping[str, bytes] = field(default_factory=_empty)
    immutable: bool | None = None


class Secret(Record):
    """`data` holds the decoded bytes of both `data` (base64) and `stringData` (merged over it, as
    the API server does on write)."""

    api_version: str = "v1"
    kind: str = "Secret"
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    data: Mapping[str, bytes] = field(default_factory=_empty)
    type: str = "Opaque"
    immutable: bool | None = None


class Manifests(Record):
    """Every Pod, ConfigMap and Secret of one file (a document of any other kind is an error)."""

    pods: tuple[Pod, ...] = ()
    config_maps: tuple[ConfigMap, ...] = ()
    secrets: tuple[Secret, ...] = ()
