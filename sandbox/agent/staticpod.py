"""A static pod's identity and decoding, as the kubelet's config/common.go applyDefaults and
its file and HTTP sources decode a manifest.

Identity, as common.go applyDefaults: name `<name>-<nodeName>`, namespace `default` when empty,
spec.nodeName set, a NoExecute toleration on file pods, and, unless metadata.uid is set, a UID that
hashes the defaulted pod with its source (`host:<node>file:<path>` or `url:<url>`): the bytes differ
from the kubelet's (md5 over our canonical JSON rather than its DeepHashObject dump), the rule is the
same: the same content from the same place keeps its UID, any change gives a new UID (the pod is
replaced). Annotations kubernetes.io/config.hash (the UID), config.source (file|http) and
config.seen (when this UID was first seen, RFC 3339) are set as the kubelet's config mux sets them.
Two pods with the same namespace/name: the first (files by path, then the URL's) runs, the other is
reported.
"""

from __future__ import annotations

from sandbox.errors import FieldError, SpecError
from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from sandbox.spec.accept import AcceptedPod

SOURCE_FILE = "file"
SOURCE_HTTP = "http"
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SEEN = "kubernetes.io/config.seen"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
WATCH_RETRY = 1.0  # file_linux.go retryPeriod: how often a missing path is looked for
URL_TIMEOUT = 10.0  # http.go: the client's timeout


class StaticPod(Record):
    """One pod a source wants running. `key` names where it comes from: the file's path, or
    `<url>#<namespace>/<name>` for a pod of the URL's body."""

    key: str
    uid: str
    name: str  # `<name>-<nodeName>`
    namespace: str
    source: str  # "file" | "http"
    manifest: dict[str, Any]  # the pod as a camelCase dict: defaulted, name suffixed, uid and annotations set
    pod: AcceptedPod  # the same pod validated and checked against the field table, ready to run


class Changes(Record):
    """The full desired set after a poll, and which keys changed. An updated key with a new `uid`
    is a new pod (stop the old one, start this one); with the same uid (metadata.uid fixed in the
    manifest) the kubelet updates the pod in place."""

    desired: dict[str, StaticPod]
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def is_static(annotations: Mapping[str, str]) -> bool:
    """kubetypes.IsStaticPod: the pod has a config.source annotation other than "api"."""
    source = annotations.get(CONFIG_SOURCE)
    return source is not None and source != "api"


def delete_message(name: str, origin: str) -> tuple[str, str]:
    """What `sandbox delete pod NAME` prints for a static pod, as the seed notes show: kubectl's
    own line (the API server deletes the mirror pod, and the kubelet recreates it at once; the pod's
    containers are not touched), then a note for stderr on how it really goes away."""
    return (f'pod "{name}" deleted',
            f'Warning: pod "{name}" is a static pod from {origin}: it comes back; '
            "remove its manifest to delete it")


class Reporter:
    """Reports a message for a key once, until the key's message changes."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self._report = report
        self.current: dict[str, str] = {}

    def set(self, key: str, message: str | None) -> None:
        if message is None:
            self.current.pop(key, None)
        elif self.current.get(key) != message:
            self.current[key] = message
            self._report(message)




# --- decoding one manifest into a static pod ------------------------------------------------------


def file_pod(data: bytes, path: str, node: str, seen: Callable[[str], str]) -> tuple[StaticPod, list[str]]:
    """The static pod in a manifest file's bytes, and notes for the user (extra documents, warned
    fields). SpecError naming the file and every field at fault."""
    doc, notes = _first_document(data, path)
    pod = _static_pod(doc, path, f"host:{node}file:{path}", SOURCE_FILE, node, seen)
    return pod, notes + [f"{path}: {w}" for w in pod.pod.warnings]


def url_pods(data: bytes, url: str, node: str, seen: Callable[[str], str]) -> tuple[list[StaticPod], list[str]]:
    """The static pods in a manifest URL's body (one Pod, or every item of a v1 PodList: one bad
    item refuses the whole body, as http.go), and notes for the user. SpecError naming the URL and
    the fields at fault."""
    doc, notes = _first_document(data, url)
    if isinstance(doc, dict) and doc.get("kind") == "PodList":
        items = doc.get("items") or []
        if doc.get("apiVersion") != "v1" or not isinstance(items, list):
            raise SpecError([FieldError("<document>", 'Invalid value: a PodList needs apiVersion "v1" and a '
                                                      "list of items")], url)
        pods = [_static_pod({"apiVersion": "v1", "kind": "Pod", **item} if isinstance(item, dict) else item,
                            url, f"url:{url}", SOURCE_HTTP, node, seen, f"items[{i}].")
                for i, item in enumerate(items)]
    else:
        pods = [_static_pod(doc, url, f"url:{url}", SOURCE_HTTP, node, seen)]
    return pods, notes + [f"{url}: {p.name}: {w}" for p in pods for w in p.pod.warnings]


def _first_document(data: bytes, origin: str) -> tuple[object, list[str]]:
    """The first document, as the kubelet reads a manifest (utilyaml.ToJSON reads no further); a
    note when there are more, which are not read."""
    from sandbox.agent.kubeletconfig import decode_documents

    docs = decode_documents(data, origin)
    more = [f"{origin}: only the first of {len(docs)} YAML documents is read, as the kubelet reads a static "
            "pod manifest"] if len(docs) > 1 else []
    return docs[0], more


def _static_pod(doc: object, origin: str, salt: str, source: str, node: str, seen: Callable[[str], str],
                where: str = "") -> StaticPod:
    from sandbox.spec.accept import accept_pod
    from sandbox.spec.load import pod_to_dict

    doc = _with_identity(doc, origin, source, node, where)
    pod = _validated(doc, origin, where)
    errors = _api_references(doc.get("spec") or {})
    if errors:
        raise SpecError([FieldError(where + e.path, e.detail) for e in errors], origin)
    canonical = pod_to_dict(pod)
    meta = canonical["metadata"]
    uid = meta.get("uid") or _content_uid(canonical, salt)
    meta["uid"] = uid
    meta["annotations"] = {**meta.get("annotations", {}), CONFIG_HASH: uid, CONFIG_SOURCE: source,
                           CONFIG_SEEN: seen(uid)}
    accepted = accept_pod(_with_meta(pod, uid, meta["annotations"]), origin)
    key = origin if source == SOURCE_FILE else f"{origin}#{meta['namespace']}/{meta['name']}"
    return StaticPod(key, uid, meta["name"], meta["namespace"], source, canonical, accepted)


def _with_identity(doc: object, origin: str, source: str, node: str, where: str) -> dict[str, Any]:
    """A copy of the document with applyDefaults' name, namespace, nodeName and toleration."""
    import copy

    from sandbox.spec.convert import format_value

    if not isinstance(doc, dict):
        raise SpecError([FieldError(where.rstrip(".") or "<document>",
                                    f"Invalid value: {format_value(doc)}: must be a Pod object")], origin)
    if doc.get("kind") != "Pod":
        raise SpecError([FieldError(f"{where}kind", f"Unsupported value: {format_value(doc.get('kind'))}: a "
                                    'static pod manifest holds one "Pod"'
                                    + (' or a "PodList"' if source == SOURCE_HTTP else ""))], origin)
    meta, spec = doc.get("metadata"), doc.get("spec")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        raise SpecError([FieldError(f"{where}metadata.name", "Required value: a static pod needs a name")], origin)
    if spec is not None and not isinstance(spec, dict):
        return doc  # the validator names the bad spec
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = f"{name}-{node.lower()}"  # generatePodName
    if not doc["metadata"].get("namespace"):
        doc["metadata"]["namespace"] = "default"
    if doc.get("spec") is None:
        doc["spec"] = {}  # Go decodes a missing spec to its zero value
    doc["spec"]["nodeName"] = node
    if source == SOURCE_FILE:
        _tolerate_no_execute(doc["spec"])
    return doc


def _tolerate_no_execute(spec: dict[str, Any]) -> None:
    """helper.AddOrUpdateTolerationInPod(Exists, NoExecute): so node problems never evict it."""
    wanted = {"operator": "Exists", "effect": "NoExecute"}
    tolerations = spec.get("tolerations")
    if tolerations is None:
        spec["tolerations"] = [wanted]
    elif isinstance(tolerations, list) and not any(
            isinstance(t, dict) and not t.get("key") and t.get("operator") == "Exists" and not t.get("value")
            and t.get("effect") == "NoExecute" for t in tolerations):
        tolerations.append(wanted)


def _validated(doc: dict[str, Any], origin: str, where: str) -> Any:
    """The Pod model of a decoded document: the defaults and validation `sandbox validate` runs."""
    from sandbox.spec import load

    errors: list[FieldError] = []
    pod = load.pod_of_document(doc, where, errors)
    if pod is None:
        raise SpecError(errors or [FieldError(f"{where}kind", "Required value: no Pod")], origin)
    return pod


def _with_meta(pod: Any, uid: str, annotations: dict[str, str]) -> Any:
    from types import MappingProxyType

    from sandbox.record import replace

    return replace(pod, metadata=replace(pod.metadata, uid=uid, annotations=MappingProxyType(annotations)))


def _content_uid(canonical: dict[str, Any], salt: str) -> str:
    import hashlib
    import json

    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5((text + salt).encode(), usedforsecurity=False).hexdigest()


def _api_references(spec: dict[str, Any]) -> list[FieldError]:
    """podutil.HasAPIObjectReference: the first reference to an API object, which a static pod may
    not hold (there is no API server to read it from, and none to let the node read it)."""
    found = _service_account(spec) or _pull_secrets(spec) or _env_references(spec) or _volume_references(spec)
    if found is None and spec.get("resourceClaims"):
        found = ("spec.resourceClaims", "resourceclaims")
    if found is None:
        return []
    path, what = found
    return [FieldError(path, f"Forbidden: static pods may not reference {what}")]


def _service_account(spec: dict[str, Any]) -> tuple[str, str] | None:
    for key in ("serviceAccountName", "serviceAccount"):
        if spec.get(key):
            return f"spec.{key}", "serviceaccounts"
    return None


def _pull_secrets(spec: dict[str, Any]) -> tuple[str, str] | None:
    return ("spec.imagePullSecrets", "secrets") if spec.get("imagePullSecrets") else None


def _env_references(spec: dict[str, Any]) -> tuple[str, str] | None:
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(group) or ()):
            path = f"spec.{group}[{i}]"
            for j, var in enumerate(c.get("env") or ()):
                source = var.get("valueFrom") or {}
                for key, what in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
                    if source.get(key):
                        return f"{path}.env[{j}].valueFrom.{key}", what
            for j, src in enumerate(c.get("envFrom") or ()):
                for key, what in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
                    if src.get(key):
                        return f"{path}.envFrom[{j}].{key}", what
    return None


_VOLUME_REFERENCES = {"configMap": "configmaps (via configmap volumes)", "secret": "secrets (via secret volumes)",
                      "csi": "csidrivers (via CSI volumes)", "glusterfs": "endpoints (via glusterFS volumes)",
                      "persistentVolumeClaim": "persistentvolumeclaims",
                      "ephemeral": "persistentvolumeclaims (via ephemeral volumes)",
                      "azureFile": "secrets (via azureFile volumes)"}
_PROJECTED_REFERENCES = {"configMap": "configmaps (via projected volumes)",
                         "secret": "secrets (via projected volumes)",
                         "serviceAccountToken": "serviceaccounts (via projected volumes)",
                         "clusterTrustBundle": "clustertrustbundles", "podCertificate": "podcertificates"}


def _volume_references(spec: dict[str, Any]) -> tuple[str, str] | None:
    for i, volume in enumerate(spec.get("volumes") or ()):
        for key, what in _VOLUME_REFERENCES.items():
            if volume.get(key) is not None:
                return f"spec.volumes[{i}].{key}", what
        for j, source in enumerate((volume.get("projected") or {}).get("sources") or ()):
            for key, what in _PROJECTED_REFERENCES.items():
                if source.get(key) is not None:
                    return f"spec.volumes[{i}].projected.sources[{j}].{key}", what
    return None


