"""The v1 object tables: one line per Kubernetes type, `camelKey:kind` per field.

One table drives everything structural: the converter (`convert.py`) walks a decoded document with it
(unknown fields, wrong types, required fields, field paths) and `to_dict` renders a model back with
it. The tables follow `k8s.io/api/core/v1/types.go` (current v1, with its newer fields).

Field syntax: `key` then `!` if the OpenAPI schema marks it required, `:` and the kind:
  str int bool intstr qty any   scalars (`intstr` = IntOrString, `qty` = resource quantity,
                                `any` = any JSON value, kept read-only)
  [K]   list of K               {K}   map from string to K
  @Type an object of that table
A key's attribute is its snake_case name; `key+group` collects the value into the map attribute
`group` under its camelCase key (volume sources the node does not interpret).
Types whose class is None are checked but kept as read-only camelCase mappings.
"""

from __future__ import annotations

from sandbox.spec import model as m

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    Kind = tuple[Any, ...]  # ("str",) | ("list", Kind) | ("map", Kind) | ("obj", "Type")


class Field:
    __slots__ = ("attr", "group", "key", "kind", "required")

    def __init__(self, key: str, attr: str, kind: Kind, required: bool, group: str | None) -> None:
        self.key = key
        self.attr = attr
        self.kind = kind
        self.required = required
        self.group = group


class ObjectType:
    __slots__ = ("by_attr", "cls", "fields", "name")

    def __init__(self, name: str, cls: type | None, fields: dict[str, Field]) -> None:
        self.name = name
        self.cls = cls
        self.fields = fields
        self.by_attr = {f.attr: f for f in fields.values() if f.group is None}


_CONTAINER = """
name!:str image:str command:[str] args:[str] workingDir:str ports:[@ContainerPort]
envFrom:[@EnvFromSource] env:[@EnvVar] resources:@ResourceRequirements resizePolicy:[@ContainerResizePolicy]
restartPolicy:str restartPolicyRules:[@ContainerRestartRule] volumeMounts:[@VolumeMount]
volumeDevices:[@VolumeDevice] livenessProbe:@Probe readinessProbe:@Probe startupProbe:@Probe
lifecycle:@Lifecycle terminationMessagePath:str terminationMessagePolicy:str imagePullPolicy:str
securityContext:@SecurityContext stdin:bool stdinOnce:bool tty:bool
"""

_KEY_TO_PATH = "items:[@KeyToPath]"

_TABLES: dict[str, tuple[type | None, str]] = {
    "Pod": (m.Pod, "apiVersion:str kind:str metadata:@ObjectMeta spec:@PodSpec status+_status:any"),
    "ConfigMap": (None, "apiVersion:str kind:str metadata:@ObjectMeta data:{str} binaryData:{str} immutable:bool"),
    "Secret": (None, "apiVersion:str kind:str metadata:@ObjectMeta data:{str} stringData:{str} type:str immutable:bool"),
    "List": (None, "apiVersion:str kind:str metadata:any items:[any]"),
    "ObjectMeta": (m.ObjectMeta, """
        name:str generateName:str namespace:str uid:str labels:{str} annotations:{str}
        resourceVersion:str generation:int creationTimestamp:str deletionTimestamp:str
        deletionGracePeriodSeconds:int ownerReferences:[@OwnerReference] finalizers:[str]
        managedFields:[any] selfLink:str"""),
    "OwnerReference": (None, "apiVersion!:str kind!:str name!:str uid!:str controller:bool blockOwnerDeletion:bool"),
    "PodSpec": (m.PodSpec, """
        volumes:[@Volume] initContainers:[@Container] containers!:[@Container]
        ephemeralContainers:[@EphemeralContainer] restartPolicy:str terminationGracePeriodSeconds:int
        activeDeadlineSeconds:int dnsPolicy:str nodeSelector:{str} serviceAccountName:str
        serviceAccount:str automountServiceAccountToken:bool nodeName:str hostNetwork:bool hostPID:bool
        hostIPC:bool shareProcessNamespace:bool securityContext:@PodSecurityContext
        imagePullSecrets:[@LocalObjectReference] hostname:str hostnameOverride:str subdomain:str
        affinity:@Affinity schedulerName:str tolerations:[@Toleration] hostAliases:[@HostAlias]
        priorityClassName:str priority:int dnsConfig:@PodDNSConfig readinessGates:[@PodReadinessGate]
        runtimeClassName:str enableServiceLinks:bool preemptionPolicy:str overhead:{qty}
        topologySpreadConstraints:[@TopologySpreadConstraint] setHostnameAsFQDN:bool os:@PodOS
        hostUsers:bool schedulingGates:[@PodSchedulingGate] resourceClaims:[@PodResourceClaim]
        resources:@ResourceRequirements"""),
    "Container": (m.Container, _CONTAINER),
    "EphemeralContainer": (None, _CONTAINER + " targetContainerName:str"),
    "ContainerPort": (m.ContainerPort, "name:str hostPort:int containerPort!:int protocol:str hostIP:str"),
    "EnvFromSource": (m.EnvFromSource, "prefix:str configMapRef:@EnvFromRef secretRef:@EnvFromRef"),
    "EnvFromRef": (m.EnvFromRef, "name:str optional:bool"),
    "EnvVar": (m.EnvVar, "name!:str value:str valueFrom:@EnvVarSource"),
    "EnvVarSource": (m.EnvVarSource, """
        fieldRef:@ObjectFieldSelector resourceFieldRef:@ResourceFieldSelector
        configMapKeyRef:@KeySelector secretKeyRef:@KeySelector fileKeyRef:@FileKeySelector"""),
    "ObjectFieldSelector": (m.ObjectFieldSelector, "apiVersion:str fieldPath!:str"),
    "ResourceFieldSelector": (m.ResourceFieldSelector, "containerName:str resource!:str divisor:qty"),
    "KeySelector": (m.KeySelector, "name:str key!:str optional:bool"),
    "FileKeySelector": (None, "volumeName!:str path!:str key!:str optional:bool"),
    "ResourceRequirements": (m.ResourceRequirements, "limits:{qty} requests:{qty} claims:[@ResourceClaim]"),
    "ResourceClaim": (None, "name!:str request:str"),
    "ContainerResizePolicy": (None, "resourceName!:str restartPolicy!:str"),
    "ContainerRestartRule": (None, "action!:str exitCodes:@ContainerRestartRuleOnExitCodes"),
    "ContainerRestartRuleOnExitCodes": (None, "operator!:str values:[int]"),
    "VolumeMount": (m.VolumeMount, """
        name!:str readOnly:bool recursiveReadOnly:str mountPath!:str subPath:str
        mountPropagation:str subPathExpr:str"""),
    "VolumeDevice": (None, "name!:str devicePath!:str"),
    "Probe": (m.Probe, """
        exec:@ExecAction httpGet:@HTTPGetAction tcpSocket:@TCPSocketAction grpc:@GRPCAction
        initialDelaySeconds:int timeoutSeconds:int periodSeconds:int successThreshold:int
        failureThreshold:int terminationGracePeriodSeconds:int"""),
    "ExecAction": (m.ExecAction, "command:[str]"),
    "HTTPGetAction": (m.HTTPGetAction, "path:str port!:intstr host:str scheme:str httpHeaders:[@HTTPHeader]"),
    "HTTPHeader": (m.HTTPHeader, "name!:str value!:str"),
    "TCPSocketAction": (m.TCPSocketAction, "port!:intstr host:str"),
    "GRPCAction": (m.GRPCAction, "port!:int service:str"),
    "SleepAction": (m.SleepAction, "seconds!:int"),
    "LifecycleHandler": (m.LifecycleHandler, """
        exec:@ExecAction httpGet:@HTTPGetAction tcpSocket:@TCPSocketAction sleep:@SleepAction"""),
    "Lifecycle": (m.Lifecycle, "postStart:@LifecycleHandler preStop:@LifecycleHandler stopSignal:str"),
    "SecurityContext": (m.SecurityContext, """
        capabilities:@Capabilities privileged:bool seLinuxOptions:@SELinuxOptions
        windowsOptions:@WindowsSecurityContextOptions runAsUser:int runAsGroup:int runAsNonRoot:bool
        readOnlyRootFilesystem:bool allowPrivilegeEscalation:bool procMount:str
        seccompProfile:@SecurityProfile appArmorProfile:@SecurityProfile cgroupOptions:@CgroupOptions"""),
    "CgroupOptions": (None, "mountMode:str"),
    "Capabilities": (m.Capabilities, "add:[str] drop:[str]"),
    "SELinuxOptions": (m.SELinuxOptions, "user:str role:str type:str level:str"),
    "SecurityProfile": (m.SecurityProfile, "type!:str localhostProfile:str"),
    "WindowsSecurityContextOptions": (None, """
        gmsaCredentialSpecName:str gmsaCredentialSpec:str runAsUserName:str hostProcess:bool"""),
    "PodSecurityContext": (m.PodSecurityContext, """
        seLinuxOptions:@SELinuxOptions windowsOptions:@WindowsSecurityContextOptions runAsUser:int
        runAsGroup:int runAsNonRoot:bool supplementalGroups:[int] supplementalGroupsPolicy:str
        fsGroup:int sysctls:[@Sysctl] fsGroupChangePolicy:str seccompProfile:@SecurityProfile
        appArmorProfile:@SecurityProfile seLinuxChangePolicy:str"""),
    "Sysctl": (None, "name!:str value!:str"),
    "HostAlias": (m.HostAlias, "ip!:str hostnames:[str]"),
    "PodDNSConfig": (m.PodDNSConfig, "nameservers:[str] searches:[str] options:[@PodDNSConfigOption]"),
    "PodDNSConfigOption": (m.PodDNSConfigOption, "name:str value:str"),
    "LocalObjectReference": (m.LocalObjectReference, "name:str"),
    "Affinity": (None, "nodeAffinity:@NodeAffinity podAffinity:@PodAffinity podAntiAffinity:@PodAffinity"),
    "NodeAffinity": (None, """
        requiredDuringSchedulingIgnoredDuringExecution:@NodeSelector
        preferredDuringSchedulingIgnoredDuringExecution:[@PreferredSchedulingTerm]"""),
    "NodeSelector": (None, "nodeSelectorTerms!:[@NodeSelectorTerm]"),
    "NodeSelectorTerm": (None, "matchExpressions:[@SelectorRequirement] matchFields:[@SelectorRequirement]"),
    "SelectorRequirement": (None, "key!:str operator!:str values:[str]"),
    "PreferredSchedulingTerm": (None, "weight!:int preference!:@NodeSelectorTerm"),
    "PodAffinity": (None, """
        requiredDuringSchedulingIgnoredDuringExecution:[@PodAffinityTerm]
        preferredDuringSchedulingIgnoredDuringExecution:[@WeightedPodAffinityTerm]"""),
    "PodAffinityTerm": (None, """
        labelSelector:@LabelSelector namespaces:[str] topologyKey!:str namespaceSelector:@LabelSelector
        matchLabelKeys:[str] mismatchLabelKeys:[str]"""),
    "WeightedPodAffinityTerm": (None, "weight!:int podAffinityTerm!:@PodAffinityTerm"),
    "LabelSelector": (None, "matchLabels:{str} matchExpressions:[@SelectorRequirement]"),
    "Toleration": (None, "key:str operator:str value:str effect:str tolerationSeconds:int"),
    "TopologySpreadConstraint": (None, """
        maxSkew!:int topologyKey!:str whenUnsatisfiable!:str labelSelector:@LabelSelector
        minDomains:int nodeAffinityPolicy:str nodeTaintsPolicy:str matchLabelKeys:[str]"""),
    "PodReadinessGate": (None, "conditionType!:str"),
    "PodSchedulingGate": (None, "name!:str"),
    "PodResourceClaim": (None, "name!:str resourceClaimName:str resourceClaimTemplateName:str"),
    "PodOS": (None, "name!:str"),
    "Volume": (m.Volume, """
        name!:str hostPath:@HostPathVolumeSource emptyDir:@EmptyDirVolumeSource secret:@SecretVolumeSource
        configMap:@ConfigMapVolumeSource downwardAPI:@DownwardAPIVolumeSource
        persistentVolumeClaim+other_sources:@PersistentVolumeClaimVolumeSource
        projected+other_sources:@ProjectedVolumeSource image+other_sources:@ImageVolumeSource
        csi+other_sources:@CSIVolumeSource ephemeral+other_sources:@EphemeralVolumeSource
        gcePersistentDisk+other_sources:any awsElasticBlockStore+other_sources:any
        gitRepo+other_sources:any nfs+other_sources:any iscsi+other_sources:any
        glusterfs+other_sources:any rbd+other_sources:any flexVolume+other_sources:any
        cinder+other_sources:any cephfs+other_sources:any flocker+other_sources:any
        fc+other_sources:any azureFile+other_sources:any vsphereVolume+other_sources:any
        quobyte+other_sources:any azureDisk+other_sources:any photonPersistentDisk+other_sources:any
        portworxVolume+other_sources:any scaleIO+other_sources:any storageos+other_sources:any"""),
    "HostPathVolumeSource": (m.HostPathVolumeSource, "path!:str type:str"),
    "EmptyDirVolumeSource": (m.EmptyDirVolumeSource, "medium:str sizeLimit:qty mode:int"),
    "SecretVolumeSource": (m.SecretVolumeSource, f"secretName:str {_KEY_TO_PATH} defaultMode:int optional:bool"),
    "ConfigMapVolumeSource": (m.ConfigMapVolumeSource, f"name:str {_KEY_TO_PATH} defaultMode:int optional:bool"),
    "KeyToPath": (m.KeyToPath, "key!:str path!:str mode:int"),
    "DownwardAPIVolumeSource": (m.DownwardAPIVolumeSource, "items:[@DownwardAPIVolumeFile] defaultMode:int"),
    "DownwardAPIVolumeFile": (m.DownwardAPIVolumeFile, """
        path!:str fieldRef:@ObjectFieldSelector resourceFieldRef:@ResourceFieldSelector mode:int"""),
    "PersistentVolumeClaimVolumeSource": (None, "claimName!:str readOnly:bool"),
    "ImageVolumeSource": (None, "reference:str pullPolicy:str"),
    "CSIVolumeSource": (None, """
        driver!:str readOnly:bool fsType:str volumeAttributes:{str} nodePublishSecretRef:@LocalObjectReference"""),
    "EphemeralVolumeSource": (None, "volumeClaimTemplate:any"),
    "ProjectedVolumeSource": (None, "sources:[@VolumeProjection] defaultMode:int"),
    "VolumeProjection": (None, """
        secret:@SecretProjection downwardAPI:@DownwardAPIProjection configMap:@ConfigMapProjection
        serviceAccountToken:@ServiceAccountTokenProjection clusterTrustBundle:@ClusterTrustBundleProjection
        podCertificate:@PodCertificateProjection"""),
    "SecretProjection": (None, f"name:str {_KEY_TO_PATH} optional:bool"),
    "ConfigMapProjection": (None, f"name:str {_KEY_TO_PATH} optional:bool"),
    "DownwardAPIProjection": (None, "items:[@DownwardAPIVolumeFile]"),
    "ServiceAccountTokenProjection": (None, "audience:str expirationSeconds:int path!:str"),
    "ClusterTrustBundleProjection": (None, """
        name:str signerName:str labelSelector:@LabelSelector optional:bool path!:str"""),
    "PodCertificateProjection": (None, """
        signerName!:str keyType!:str maxExpirationSeconds:int credentialBundlePath:str keyPath:str
        certificateChainPath:str userAnnotations:{str}"""),
}

_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")


def snake(camel: str) -> str:
    """`hostPID` -> `host_pid`, `downwardAPI` -> `downward_api`, `setHostnameAsFQDN` -> `set_hostname_as_fqdn`.

    A `_` goes before an upper-case letter that follows a lower-case letter or digit, or that
    follows another upper-case letter and comes before a lower-case one (ASCII only). By hand, not
    a regular expression: the schema's ~100 names on every `sandbox run` paid its compile (~0.3 ms)."""
    out = []
    for i, ch in enumerate(camel):
        if i and ch in _UPPER:
            before = camel[i - 1]
            if before in _LOWER or (before in _UPPER and camel[i + 1 : i + 2] in _LOWER_LETTERS):
                out.append("_")
        out.append(ch)
    return "".join(out).lower()



def _kind(text: str) -> Kind:
    if text.startswith("["):
        return ("list", _kind(text[1:-1]))
    if text.startswith("{"):
        return ("map", _kind(text[1:-1]))
    if text.startswith("@"):
        return ("obj", text[1:])
    return (text,)


def _table(name: str, cls: type | None, spec: str) -> ObjectType:
    fields: dict[str, Field] = {}
    for item in spec.split():
        key, _, kind = item.partition(":")
        required = key.endswith("!")
        key = key.rstrip("!")
        key, _, group = key.partition("+")
        attr = snake(key) if cls is not None else key
        fields[key] = Field(key, attr, _kind(kind), required, group or None)
    return ObjectType(name, cls, fields)


class _Types(dict[str, ObjectType]):
    """name -> ObjectType, each table parsed when first looked up: parsing all ~80 at import cost
    ~2 ms of every `sandbox run`, whose pod usually enters a dozen. An unknown name raises
    KeyError as a plain dict does."""

    def __missing__(self, name: str) -> ObjectType:
        cls, spec = _TABLES[name]
        table = self[name] = _table(name, cls, spec)
        return table


TYPES: dict[str, ObjectType] = _Types()
