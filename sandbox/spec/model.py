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

from collections.abc import Mapping
from types import MappingProxyType

from sandbox.record import field, record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

# A checked but uninterpreted object: camelCase keys, values made read-only (tuples, mappings).
if TYPE_CHECKING:
    Opaque = Mapping[str, Any]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    # dataclasses refuse unhashable defaults; one shared read-only empty map is safe to hand out.
    return _EMPTY


@record
class Quantity:
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


@record
class ObjectMeta:
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


@record
class ContainerPort:
    container_port: int = 0
    name: str | None = None
    host_port: int | None = None
    host_ip: str | None = None
    protocol: str = ""


@record
class ObjectFieldSelector:
    field_path: str = ""
    api_version: str | None = None


@record
class ResourceFieldSelector:
    resource: str = ""
    container_name: str | None = None
    divisor: Quantity | None = None


@record
class KeySelector:
    """`configMapKeyRef` / `secretKeyRef`."""

    key: str = ""
    name: str | None = None
    optional: bool | None = None


@record
class EnvVarSource:
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: KeySelector | None = None
    secret_key_ref: KeySelector | None = None
    file_key_ref: Opaque | None = None


@record
class EnvVar:
    name: str = ""
    value: str | None = None
    value_from: EnvVarSource | None = None


@record
class EnvFromRef:
    """`envFrom[].configMapRef` / `envFrom[].secretRef`."""

    name: str | None = None
    optional: bool | None = None


@record
class EnvFromSource:
    prefix: str | None = None
    config_map_ref: EnvFromRef | None = None
    secret_ref: EnvFromRef | None = None


@record
class ResourceRequirements:
    limits: Mapping[str, Quantity] = field(default_factory=_empty)
    requests: Mapping[str, Quantity] = field(default_factory=_empty)
    claims: tuple[Opaque, ...] = ()


@record
class VolumeMount:
    name: str = ""
    mount_path: str = ""
    read_only: bool | None = None
    recursive_read_only: str | None = None
    sub_path: str | None = None
    sub_path_expr: str | None = None
    mount_propagation: str | None = None


@record
class ExecAction:
    command: tuple[str, ...] = ()


@record
class HTTPHeader:
    name: str = ""
    value: str = ""


@record
class HTTPGetAction:
    port: int | str = 0
    path: str | None = None
    host: str | None = None
    scheme: str | None = None
    http_headers: tuple[HTTPHeader, ...] = ()


@record
class TCPSocketAction:
    port: int | str = 0
    host: str | None = None


@record
class GRPCAction:
    port: int = 0
    service: str | None = None


@record
class SleepAction:
    seconds: int = 0


@record
class Probe:
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


@record
class LifecycleHandler:
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    sleep: SleepAction | None = None


@record
class Lifecycle:
    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None
    stop_signal: str | None = None


@record
class Capabilities:
    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()


@record
class SELinuxOptions:
    user: str | None = None
    role: str | None = None
    type: str | None = None
    level: str | None = None


@record
class SecurityProfile:
    """`seccompProfile` / `appArmorProfile`: a type plus a profile name for `Localhost`."""

    type: str = ""
    localhost_profile: str | None = None


@record
class SecurityContext:
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


@record
class PodSecurityContext:
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


@record
class Container:
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


@record
class HostAlias:
    ip: str = ""
    hostnames: tuple[str, ...] = ()


@record
class PodDNSConfigOption:
    name: str | None = None
    value: str | None = None


@record
class PodDNSConfig:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[PodDNSConfigOption, ...] = ()


@record
class LocalObjectReference:
    name: str | None = None


@record
class KeyToPath:
    key: str = ""
    path: str = ""
    mode: int | None = None


@record
class EmptyDirVolumeSource:
    medium: str | None = None
    size_limit: Quantity | None = None
    mode: int | None = None


@record
class HostPathVolumeSource:
    path: str = ""
    type: str | None = None


@record
class ConfigMapVolumeSource:
    name: str | None = None
    items: tuple[KeyToPath, ...] = ()
    default_mode: int | None = None
    optional: bool | None = None


@record
class SecretVolumeSource:
    secret_name: str | None = None
    items: tuple[KeyToPath, ...] = ()
    default_mode: int | None = None
    optional: bool | None = None


@record
class DownwardAPIVolumeFile:
    path: str = ""
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    mode: int | None = None


@record
class DownwardAPIVolumeSource:
    items: tuple[DownwardAPIVolumeFile, ...] = ()
    default_mode: int | None = None


@record
class Volume:
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


@record
class PodSpec:
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


@record
class Pod:
    api_version: str = "v1"
    kind: str = "Pod"
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: PodSpec = field(default_factory=PodSpec)


@record
class ConfigMap:
    api_version: str = "v1"
    kind: str = "ConfigMap"
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    data: Mapping[str, str] = field(default_factory=_empty)
    binary_data: Mapping[str, bytes] = field(default_factory=_empty)
    immutable: bool | None = None


@record
class Secret:
    """`data` holds the decoded bytes of both `data` (base64) and `stringData` (merged over it, as
    the API server does on write)."""

    api_version: str = "v1"
    kind: str = "Secret"
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    data: Mapping[str, bytes] = field(default_factory=_empty)
    type: str = "Opaque"
    immutable: bool | None = None


@record
class Manifests:
    """Every Pod, ConfigMap and Secret of one file (a document of any other kind is an error)."""

    pods: tuple[Pod, ...] = ()
    config_maps: tuple[ConfigMap, ...] = ()
    secrets: tuple[Secret, ...] = ()
