"""What sandbox does with every field of the v1 Pod model (and of ConfigMap and Secret): one table.

Each field a manifest can set is one of
  honoured  the runtime does what Kubernetes defines for it;
  refused   the pod is refused with the field's path (exit 2): sandbox cannot do what it asks;
  warned    the pod runs, and one line on stderr says what is not enforced;
  inert     it has no effect on one node, by nature (scheduler-only fields, API-server bookkeeping).
Anything a user relies on for protection (securityContext, privileged, host namespaces, ports that
publish on the host) is refused until honoured, never warned. A few fields are honoured only for
some values (`privileged: false` is what every container gets; `privileged: true` is refused).

The table is keyed by the type names of `sandbox.spec.schema`; the walk descends only into fields
that are honoured or warned, so the types below a refused or inert field need no rows. A unit test
walks the schema from Pod, ConfigMap and Secret and fails on any reachable field without a row, and
the README's field summary is generated from this table (`python -m sandbox.spec.fields`).
A field sandbox comes to honour moves from refused to honoured here.
"""

from __future__ import annotations

# collections.abc is _collections_abc re-exported, after the collections package (~1.5 ms of a
# `sandbox run` that nothing else on its path imports).
from _collections_abc import Mapping

from sandbox.errors import FieldError

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from sandbox.spec.model import Pod

HONOURED, REFUSED, WARNED, INERT = "honoured", "refused", "warned", "inert"
NOT_YET = "not supported by sandbox yet"


class Rule:
    """One field's support. `ok` (a predicate on the field's value) makes a refused or warned field
    honoured for the values it accepts; such a field is a leaf: the walk does not descend into it.
    `each` (a predicate on the keys of a map field) refuses the keys it rejects one by one, each
    with its own path (`limits[example.com/gpu]`)."""

    __slots__ = ("each", "ok", "reason", "support")

    def __init__(self, support: str, reason: str = "", ok: Callable[[Any], bool] | None = None,
                 each: Callable[[str], bool] | None = None) -> None:
        self.support = support
        self.reason = reason
        self.ok = ok
        self.each = each


H = Rule(HONOURED)


def honoured(note: str = "") -> Rule:
    return Rule(HONOURED, note)


def refused(reason: str, ok: Callable[[Any], bool] | None = None) -> Rule:
    return Rule(REFUSED, reason, ok)


def refused_keys(reason: str, each: Callable[[str], bool]) -> Rule:
    """A map field honoured for the keys `each` accepts; every other key is refused at `path[key]`."""
    return Rule(REFUSED, reason, lambda mapping: all(each(key) for key in mapping), each=each)


def warned(reason: str, ok: Callable[[Any], bool] | None = None) -> Rule:
    return Rule(WARNED, reason, ok)


def inert(reason: str) -> Rule:
    return Rule(INERT, reason)


def _is(*values: object) -> Callable[[Any], bool]:
    return lambda value: value in values


def _profile_unconfined(profile: Any) -> bool:
    return getattr(profile, "type", None) == "Unconfined"


# Reasons, written once.
_SCHEDULER = inert("read by the scheduler; one node runs every pod it is given")
_API_SERVER = inert("set by the API server")
_NO_API = inert("there is no API server on one node")
_WINDOWS = inert("applies to Windows nodes only")
# RuntimeDefault is what a container naming no profile gets (stricter than the kubelet's
# Unconfined); Localhost profiles are read from <lib>/seccomp (sandbox/security/seccomp.py).
_SECCOMP = honoured("RuntimeDefault for every container that names no profile; Localhost from <lib>/seccomp")
_SECCOMP_ANNOTATION = refused("seccomp profiles named by the deprecated annotations (set "
                              "securityContext.seccompProfile instead)", _profile_unconfined)
_APPARMOR = refused("apparmor", _profile_unconfined)  # reason computed per host: `_reason`
_SELINUX = refused("SELinux labels: sandbox applies no SELinux contexts")
# Requests and limits sandbox enforces: cpu and memory (pod and container cgroups), huge pages
# (hugetlb), ephemeral-storage (the eviction checks). Any other name that passes validation is an
# extended resource (`vendor.example/gpu`): only a device plugin advertises and allocates one, and
# a kubelet without it rejects the pod at admission (OutOf<name>, the node's capacity being 0), so
# running it without the device would be a lie. `pids` is valid at pod level only (PerPodPIDLimit):
# the pod cgroup's pids.max. Other unqualified names are invalid.
ENFORCED_RESOURCES = ("cpu", "memory", "ephemeral-storage", "pids")
_HUGEPAGES_PREFIX = "hugepages-"


def enforced_resource(name: str) -> bool:
    return name in ENFORCED_RESOURCES or name.startswith(_HUGEPAGES_PREFIX)


_EXTENDED_RESOURCES = refused_keys("extended resources need a device plugin to advertise and allocate them; "
                                   "without one the kubelet rejects the pod as OutOf<resource>", enforced_resource)

_CONTAINER: dict[str, Rule] = {
    "name": H, "image": H, "command": H, "args": H, "workingDir": H, "env": H,
    "ports": honoured("containerPort is informational, as in Kubernetes; named ports serve probes"),
    "envFrom": honoured("from the manifest file's ConfigMaps and Secrets, then the node's store (sandbox apply)"),
    "resources": H,  # cgroups (sandbox/process/resources.py), eviction, the downward API
    # In-place resize goes through the API server's `resize` subresource; nothing on one node
    # changes a running pod's resources, so the policy never applies.
    "resizePolicy": inert("in-place resize needs the API server's resize subresource; a running pod's "
                          "resources never change"),
    "restartPolicy": H,
    "restartPolicyRules": refused("container restart rules, alpha in Kubernetes, are not implemented"),
    "volumeMounts": H,
    "volumeDevices": refused("raw block devices need persistent volumes"),
    "livenessProbe": H, "readinessProbe": H, "startupProbe": H, "lifecycle": H,
    "terminationMessagePath": H, "terminationMessagePolicy": H,
    # As the kubelet's image manager, at every container start (supervisor/pulls.py): Always asks
    # the registry for the tag's current manifest (the stored digest costs that one request; a
    # moved tag is pulled; an unreachable registry is ErrImagePull even with the image stored),
    # IfNotPresent pulls a missing image, Never waits in ErrImageNeverPull until it is imported.
    # The test suite serves busybox from a loopback mirror; the demo and benches pin tags.
    "imagePullPolicy": honoured("Always resolves the tag at every start, IfNotPresent pulls a missing image, "
                                "Never waits for an imported one"),
    "securityContext": H,
    "stdin": refused("no stdin is attached: it is /dev/null", _is(False)),
    "stdinOnce": refused("no stdin is attached: it is /dev/null", _is(False)),
    "tty": refused("no terminal is allocated", _is(False)),
}

TABLE: dict[str, dict[str, Rule]] = {
    "Pod": {"apiVersion": H, "kind": H, "metadata": H, "spec": H,
            "status": inert("status is computed by the runtime; a manifest's status is ignored, as by the API server")},
    "ConfigMap": {"apiVersion": H, "kind": H, "metadata": H,
                  "data": honoured("kept for the pods of the same file"),
                  "binaryData": honoured("kept for the pods of the same file"), "immutable": H},
    "Secret": {"apiVersion": H, "kind": H, "metadata": H,
               "data": honoured("kept for the pods of the same file"),
               "stringData": honoured("merged into data, as the API server does"), "type": H, "immutable": H},
    "ObjectMeta": {
        "name": H, "generateName": H, "namespace": H, "labels": H, "annotations": H,
        "uid": inert("every pod the runtime creates gets a fresh UID, as the API server gives it"),
        "resourceVersion": _API_SERVER, "generation": _API_SERVER, "creationTimestamp": _API_SERVER,
        "deletionTimestamp": _API_SERVER, "deletionGracePeriodSeconds": _API_SERVER,
        "ownerReferences": inert("garbage collection of owned objects needs an API server"),
        "finalizers": _NO_API, "managedFields": _API_SERVER, "selfLink": _API_SERVER,
    },
    "PodSpec": {
        "volumes": H, "initContainers": H, "containers": H,
        "ephemeralContainers": refused("ephemeral containers are added to a running pod through the API"),
        "restartPolicy": H, "terminationGracePeriodSeconds": H, "activeDeadlineSeconds": H,
        # No cluster DNS on one node: ClusterFirst falls back to the node's resolv.conf with the
        # kubelet's MissingClusterDNS event (sandbox/pod/dnsfiles.py; cluster domain cluster.local).
        "dnsPolicy": honoured("ClusterFirst and ClusterFirstWithHostNet fall back to Default (the node's "
                              "resolv.conf) with a MissingClusterDNS event: there is no cluster DNS"),
        # The kubelet's admission checks what pins a pod to nodes against its own (pod/admission.py).
        "nodeSelector": honoured("checked against this node's labels (kubernetes.io/hostname, os, arch) at "
                                 "admission as the kubelet does: a mismatch is rejected (NodeAffinity)"),
        # A leaf (any `ok`): the walk does not go on into the scheduler's sub-fields.
        "affinity": Rule(HONOURED, "required node affinity is checked at admission as the kubelet does; preferred "
                                   "terms and pod (anti-)affinity are the scheduler's, and one node runs every pod",
                         lambda _value: True),
        "nodeName": _SCHEDULER, "schedulerName": _SCHEDULER,
        "tolerations": _SCHEDULER, "priorityClassName": _SCHEDULER, "priority": _SCHEDULER,
        "preemptionPolicy": _SCHEDULER, "topologySpreadConstraints": _SCHEDULER, "schedulingGates": _SCHEDULER,
        "serviceAccountName": inert("there is no API server: no service account token is mounted"),
        "serviceAccount": inert("there is no API server: no service account token is mounted"),
        "automountServiceAccountToken": inert("there is no API server: no service account token is mounted"),
        "hostNetwork": H, "hostPID": H, "hostIPC": H, "shareProcessNamespace": H,
        "securityContext": H,
        "imagePullSecrets": honoured("dockerconfigjson Secrets from the pod's file or the node's store"),
        "hostname": H,
        "hostnameOverride": H,  # beta, on by default since 1.35 (HostnameOverride)
        "subdomain": honoured("the FQDN <hostname>.<subdomain>.<namespace>.svc.cluster.local in /etc/hosts"),
        "setHostnameAsFQDN": H,
        "hostAliases": H,
        "dnsConfig": H,
        "readinessGates": refused("nothing sets custom pod conditions without an API server, so the pod "
                                  "could never be Ready"),
        "runtimeClassName": refused("runtime classes select another runtime handler"),
        "enableServiceLinks": inert("there are no Services on one node: no service environment variables"),
        "overhead": inert("set from a RuntimeClass by the API server"),
        "os": refused("sandbox runs Linux pods", lambda os_: os_.get("name") == "linux"),
        "hostUsers": refused("user namespaces: every container runs in the host's user namespace", _is(True)),
        "resourceClaims": refused("dynamic resource allocation needs an API server and drivers"),
        "resources": H,  # pod-level requests and limits (KEP-2837): the pod cgroup and the QoS class
    },
    "Container": _CONTAINER,
    "PodDNSConfig": {"nameservers": H, "searches": H, "options": H},
    "PodDNSConfigOption": {"name": H, "value": H},
    "HostAlias": {"ip": H, "hostnames": H},
    "LocalObjectReference": {"name": H},
    "ImageVolumeSource": {"reference": H, "pullPolicy": H},
    "ContainerPort": {
        "name": H, "containerPort": H, "protocol": H,
        "hostPort": honoured("DNAT through nftables from the host's addresses and 127.0.0.1 to the pod IP "
                             "(CNI: the configuration's portmap plugin); refused with --network none"),
        "hostIP": honoured("the host address the hostPort is published on"),
    },
    "EnvVar": {"name": H, "value": H, "valueFrom": H},
    "EnvVarSource": {
        "fieldRef": H, "resourceFieldRef": H,
        "configMapKeyRef": honoured("from the manifest file's ConfigMaps, then the node's store (sandbox apply)"),
        "secretKeyRef": honoured("from the manifest file's Secrets, then the node's store (sandbox apply)"),
        "fileKeyRef": refused("environment variables read from a file in a volume: EnvFiles, alpha in Kubernetes"),
    },
    "EnvFromSource": {"prefix": H, "configMapRef": H, "secretRef": H},
    "EnvFromRef": {"name": H, "optional": H},
    "KeySelector": {"name": H, "key": H, "optional": H},
    "ObjectFieldSelector": {"apiVersion": H, "fieldPath": H},
    "ResourceFieldSelector": {"containerName": H, "resource": H, "divisor": H},
    "ResourceRequirements": {
        "limits": _EXTENDED_RESOURCES, "requests": _EXTENDED_RESOURCES,
        "claims": refused("dynamic resource allocation needs an API server and drivers"),
    },
    "VolumeMount": {
        "name": H, "mountPath": H, "readOnly": H,
        # Every readOnly bind is read-only recursively (mount_setattr AT_RECURSIVE), so Enabled
        # and IfPossible hold, and Disabled gets more than Kubernetes promises.
        "recursiveReadOnly": honoured("every readOnly bind is read-only recursively, Disabled included"),
        # opened beneath the volume and bound by fd (native/mounts.c SBX_OP_BIND_BENEATH)
        "subPath": H, "subPathExpr": H,
        # rslave / rshared binds; the host mount must be shared (or slave), as containerd checks
        "mountPropagation": H,
    },
    "Probe": {key: H for key in ("exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "timeoutSeconds",
                                 "periodSeconds", "successThreshold", "failureThreshold",
                                 "terminationGracePeriodSeconds")},
    "ExecAction": {"command": H},
    "HTTPGetAction": {"path": H, "port": H, "host": H, "scheme": H, "httpHeaders": H},
    "HTTPHeader": {"name": H, "value": H},
    "TCPSocketAction": {"port": H, "host": H},
    "GRPCAction": {"port": H, "service": H},
    "SleepAction": {"seconds": H},
    "LifecycleHandler": {"exec": H, "httpGet": H, "tcpSocket": H, "sleep": H},
    "Lifecycle": {"postStart": H, "preStop": H, "stopSignal": H},
    "SecurityContext": {
        "capabilities": H,
        "privileged": H,
        "seLinuxOptions": _SELINUX,
        "windowsOptions": H,
        "runAsUser": H, "runAsGroup": H, "runAsNonRoot": H, "readOnlyRootFilesystem": H,
        # no_new_privs is on unless `true` (or privileged): containerd's default, stricter than the kubelet's
        "allowPrivilegeEscalation": H,
        # Default is the masked and read-only /proc every container gets; Kubernetes allows
        # Unmasked only in a user namespace (hostUsers: false), which sandbox does not make yet.
        "procMount": refused("procMount Unmasked needs a user namespace (hostUsers: false)", _is("Default")),
        "seccompProfile": _SECCOMP,
        "appArmorProfile": _APPARMOR,
        "cgroupOptions": refused("cgroup mount modes: each container's /sys/fs/cgroup is its own read-only view"),
    },
    "Capabilities": {"add": H, "drop": H},
    "SecurityProfile": {"type": H, "localhostProfile": H},  # seccompProfile's (appArmorProfile is a leaf)
    "Sysctl": {"name": H, "value": H},
    "WindowsSecurityContextOptions": {
        "gmsaCredentialSpecName": _WINDOWS, "gmsaCredentialSpec": _WINDOWS, "runAsUserName": _WINDOWS,
        "hostProcess": refused("host process containers run on Windows nodes only", _is(False)),
    },
    "PodSecurityContext": {
        "seLinuxOptions": _SELINUX,
        "windowsOptions": H,
        "runAsUser": H, "runAsGroup": H, "runAsNonRoot": H, "supplementalGroups": H,
        "supplementalGroupsPolicy": H,
        "fsGroup": H,  # a supplementary group of every process, and the group of every emptyDir
        "fsGroupChangePolicy": H,  # both policies give a fresh emptyDir the same ownership
        # namespaced sysctls of a namespace the pod owns (spec/sysctls.py); others are invalid
        "sysctls": honoured("namespaced sysctls of the pod's own network and IPC namespaces"),
        "seccompProfile": _SECCOMP,
        "appArmorProfile": _APPARMOR,
        "seLinuxChangePolicy": _SELINUX,
    },
    "Volume": {
        "name": H, "emptyDir": H,
        # the kubelet's type checks (sandbox/pod/volumes.py); `sandbox run --no-host-path` refuses it
        "hostPath": H,
        # Written by sandbox/pod/projection.py with the kubelet's ..data swap, refreshed every
        # resync; mounted read-only, as the kubelet does.
        "configMap": H, "secret": honoured("on a tmpfs of its own"), "downwardAPI": H, "projected": H,
        "persistentVolumeClaim": refused("persistent volume claims need an API server and a storage provisioner"),
        "image": honoured("the image's files, read-only (one layer bound, several as a read-only overlay); "
                          "pulled with its own pullPolicy"),
        "ephemeral": refused("generic ephemeral volumes need an API server and a storage provisioner"),
        "csi": refused("CSI volumes need a CSI driver"),
        **{key: refused("in-tree volume plugins need their storage systems") for key in (
            "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd",
            "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
            "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos")},
    },
    "HostPathVolumeSource": {"path": H, "type": H},
    "EmptyDirVolumeSource": {
        # "" (disk) and Memory (a tmpfs sized by sizeLimit or the pod's memory limit, charged to
        # the writer's memory cgroup) are honoured
        "medium": refused("hugepages-backed emptyDir media: sandbox mounts no hugetlbfs for pods", _is("", "Memory")),
        "sizeLimit": honoured("over the limit the pod is evicted, as the kubelet's eviction manager does"),
        "mode": refused("an emptyDir mode other than 0777, the mode the kubelet gives emptyDirs"),
    },
    # configMap, secret, downwardAPI and projected volumes (sandbox/pod/projection.py)
    "ConfigMapVolumeSource": {"name": H, "items": H, "defaultMode": H, "optional": H},
    "SecretVolumeSource": {"secretName": H, "items": H, "defaultMode": H, "optional": H},
    "KeyToPath": {"key": H, "path": H, "mode": H},
    "DownwardAPIVolumeSource": {"items": H, "defaultMode": H},
    "DownwardAPIVolumeFile": {"path": H, "fieldRef": H, "resourceFieldRef": H, "mode": H},
    "ProjectedVolumeSource": {"sources": H, "defaultMode": H},
    "VolumeProjection": {
        "configMap": H, "secret": H, "downwardAPI": H,
        "serviceAccountToken": refused("there is no API server to issue service account tokens"),
        "clusterTrustBundle": refused("there is no API server holding ClusterTrustBundles"),
        "podCertificate": refused("there is no API server to sign pod certificates"),
    },
    "ConfigMapProjection": {"name": H, "items": H, "optional": H},
    "SecretProjection": {"name": H, "items": H, "optional": H},
    "DownwardAPIProjection": {"items": H},
}


def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def _reason(rule: Rule) -> str:
    if rule is _APPARMOR:
        # The kubelet's admission reason on such a host; with AppArmor on, ours.
        if not _apparmor_enabled():
            return "Cannot enforce AppArmor: AppArmor is not enabled on the host"
        return f"{NOT_YET}: AppArmor profiles (sandbox loads none)"
    return f"{NOT_YET}: {rule.reason}"


def _present(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, tuple | Mapping):
        return len(value) > 0
    return True


class Findings:
    """What a walk found: refusals (FieldErrors) and warnings (`path: text` lines)."""

    __slots__ = ("errors", "last", "warnings")

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.warnings: list[str] = []
        self.last = ("", "")  # (parent path, reason) of the last warning

    def warn(self, parent: str, where: str, reason: str) -> None:
        """One line per warned field; siblings warned for one reason (limits, and the requests the
        API server defaulted from them) become one line about their parent."""
        if self.warnings and self.last == (parent, reason):
            self.warnings[-1] = f"{parent}: not enforced: {reason}"
        else:
            self.warnings.append(f"{where}: not enforced: {reason}")
        self.last = (parent, reason)


def check_pod(pod: Pod, prefix: str = "") -> Findings:
    """Every refused field set in `pod`, and a warning per warned one."""
    from sandbox.spec.schema import TYPES

    found = Findings()
    _walk(TYPES, "Pod", pod, prefix, found)
    _annotations(pod, prefix, found)
    return found


_NO_GROUP: Mapping[str, Any] = {}


def _walk(types: Any, type_name: str, obj: Any, path: str, found: Findings) -> None:
    table = TABLE[type_name]
    object_type = types[type_name]
    for key, f in object_type.fields.items():
        if object_type.cls is None:
            value = obj.get(key) if isinstance(obj, Mapping) else None
        elif f.group is not None:  # a map attribute collecting several keys (`_status` is dropped)
            value = getattr(obj, f.group, _NO_GROUP).get(key)
        else:
            value = getattr(obj, f.attr)
        if not _present(value):
            continue
        where = f"{path}.{key}" if path else key
        rule = table[key]
        if rule.support == INERT:
            continue
        if rule.support in (REFUSED, WARNED):
            if rule.ok is not None and rule.ok(value):
                continue
            if rule.support == REFUSED:
                if rule.each is not None and isinstance(value, Mapping):
                    from sandbox.spec.convert import entry

                    found.errors += [FieldError(entry(where, key), f"Forbidden: {_reason(rule)}")
                                     for key in value if not rule.each(key)]
                else:
                    found.errors.append(FieldError(where, f"Forbidden: {_reason(rule)}"))
                continue
            found.warn(path, where, rule.reason)
        if rule.ok is not None:  # a leaf (an honoured one too): its sub-fields are not walked
            continue
        kind = f.kind
        if kind[0] == "obj":
            _walk(types, kind[1], value, where, found)
        elif kind[0] == "list" and kind[1][0] == "obj" and value is not None:
            for i, item in enumerate(value):
                _walk(types, kind[1][1], item, f"{where}[{i}]", found)


# The annotations that asked for AppArmor and seccomp before the fields existed; the kubelet still
# reads the AppArmor ones. Anything but unconfined asks for a protection sandbox does not give.
_APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
_SECCOMP_KEYS = ("seccomp.security.alpha.kubernetes.io/pod", "container.seccomp.security.alpha.kubernetes.io/")


def _annotations(pod: Pod, prefix: str, found: Findings) -> None:
    for key, value in pod.metadata.annotations.items():
        where = f"{prefix}metadata.annotations[{key}]"
        if key.startswith(_APPARMOR_PREFIX) and value != "unconfined":
            found.errors.append(FieldError(where, f"Forbidden: {_reason(_APPARMOR)}"))
        elif key.startswith(_SECCOMP_KEYS) and value != "unconfined":
            found.errors.append(FieldError(where, f"Forbidden: {_reason(_SECCOMP_ANNOTATION)}"))


def reachable_types(start: tuple[str, ...] = ("Pod", "ConfigMap", "Secret")) -> dict[str, set[str]]:
    """Type name -> its field keys, for every type the walk can enter from `start`."""
    from sandbox.spec.schema import TYPES

    seen: dict[str, set[str]] = {}
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = set(TYPES[name].fields)
        for key, f in TYPES[name].fields.items():
            rule = TABLE.get(name, {}).get(key)
            descends = rule is not None and rule.ok is None and rule.support in (HONOURED, WARNED)
            kind = f.kind[1] if f.kind[0] == "list" else f.kind
            if descends and kind[0] == "obj":
                todo.append(kind[1])
    return seen


def markdown() -> str:
    """The README's field summary: every field that is not simply honoured, grouped by reason."""
    groups: dict[str, dict[str, list[str]]] = {REFUSED: {}, WARNED: {}, INERT: {}}
    for type_name in sorted(reachable_types()):
        for key, rule in TABLE[type_name].items():
            if rule.support == HONOURED:
                continue
            if rule is _APPARMOR:
                reason = "the kubelet's reason on a host without AppArmor; with AppArmor on, sandbox loads no profile"
            else:
                reason = rule.reason
            groups[rule.support].setdefault(reason, []).append(f"`{type_name}.{key}`")
    titles = {REFUSED: "Refused with the field's path (exit 2), except for the values every container gets "
                       "(`privileged: false`, `seccompProfile: Unconfined`, ...)",
              WARNED: "Warned: the pod runs, and one line on stderr says what is not enforced",
              INERT: "Inert on one node"}
    lines = []
    for support, by_reason in groups.items():
        lines.append(f"{titles[support]}:")
        lines += [f"- {', '.join(keys)} ({reason})" for reason, keys in sorted(by_reason.items())]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
