"""The one path from a manifest file to a Pod the runtime will run, shared by `validate` and `run`.

bytes -> (parsed-manifest cache | parse, defaults, validation) -> exactly one Pod -> `-n` applied ->
the field table (`fields.py`: refused fields are errors, warned ones are lines on stderr) ->
`generateName` expanded. `sandbox validate` stops here; `sandbox run` goes on with what only the
machine can answer (root, the images in the local store), so exit 0 from `validate` means `run`
accepts the input.
"""

from __future__ import annotations

from sandbox.errors import FieldError, SpecError
from sandbox.record import Record, replace

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from pathlib import Path

    from sandbox.spec.model import ConfigMap, Pod, Secret


class AcceptedPod(Record):
    pod: Pod
    warnings: tuple[str, ...]  # `field.path: not enforced: why`, one per warned field set
    # The file's ConfigMaps and Secrets (validated), for the pod's env and volumes to read first;
    # those without a namespace take the pod's, as `-n` gives kubectl's objects one.
    config: tuple[ConfigMap | Secret, ...] = ()


def accept_pod_file(path: str, cache_dir: Path | None, namespace: str | None = None) -> AcceptedPod:
    """The Pod in the file at `path` (`-`: standard input) as `sandbox run` would run it, or a
    SpecError naming the file and every field at fault. `cache_dir`: the parsed manifests'
    cache (None: none)."""
    from sandbox.spec.cache import load_cached

    loaded = load_cached(path, cache_dir)
    key = "" if namespace is None else f"-n {namespace}"  # the field checks see the pod after -n
    try:
        accepted = accept_pod(loaded.pod, path, namespace, loaded.config, checked=loaded.checks.get(key))
        loaded.remember(key, accepted.warnings)
    finally:  # a pod with a refused field is cached too (its parse, no checks): `validate` reads it again
        loaded.save()
    return accepted


def accept_pod(pod: Pod, source: str = "", namespace: str | None = None,
               config: tuple[ConfigMap | Secret, ...] = (), checked: list[str] | None = None) -> AcceptedPod:
    """`checked`: the field table's warnings for this pod from the manifest cache (its checks
    found no error when they ran; the cache's fingerprint covers the table)."""
    pod = _with_namespace(pod, namespace, source)
    if checked is None:
        from sandbox.spec.fields import check_pod

        found = check_pod(pod)
        errors, warnings = found.errors, tuple(found.warnings)
    else:
        errors, warnings = [], tuple(checked)
    errors = errors + _container_checks(pod)
    if errors:
        raise SpecError(errors, source)
    pod_namespace = pod.metadata.namespace or "default"
    config = tuple(obj if obj.metadata.namespace else replace(obj, metadata=replace(obj.metadata, namespace=pod_namespace))
                   for obj in config)
    return AcceptedPod(_with_generated_name(pod), warnings, config)


def _with_namespace(pod: Pod, namespace: str | None, source: str) -> Pod:
    """-n as kubectl: it fills in a manifest without namespace and must match one that has it."""
    if namespace is None or pod.metadata.namespace == namespace:
        return pod
    if pod.metadata.namespace not in (None, "", "default"):
        raise SpecError([FieldError("metadata.namespace", f'Invalid value: "{pod.metadata.namespace}": '
                                    f'does not match the namespace "{namespace}" given with -n')], source)
    return replace(pod, metadata=replace(pod.metadata, namespace=namespace))


# The API server's name generator: five characters from an alphabet without vowels or look-alikes.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _with_generated_name(pod: Pod) -> Pod:
    """`metadata.generateName` without `name`: the prefix plus five random characters, as the API
    server names such a pod (the prefix is cut so the name stays within 63 characters)."""
    meta = pod.metadata
    if meta.name or not meta.generate_name:
        return pod
    import os

    suffix = "".join(_ALPHABET[b % len(_ALPHABET)] for b in os.urandom(5))
    return replace(pod, metadata=replace(meta, name=meta.generate_name[:58] + suffix))


def _container_checks(pod: Pod) -> list[FieldError]:
    """What the table cannot say about an honoured field: capability names the kernel knows, and a
    stop signal this machine has (containerd fails the container on either; we refuse up front)."""
    from sandbox.process import capabilities

    errors = []
    groups = (("initContainers", pod.spec.init_containers), ("containers", pod.spec.containers))
    for group, containers in groups:
        for i, c in enumerate(containers):
            path = f"spec.{group}[{i}]"
            caps = c.security_context.capabilities if c.security_context else None
            for key, names in (("add", caps.add if caps else ()), ("drop", caps.drop if caps else ())):
                for j, name in enumerate(names):
                    if name.upper() == "ALL":
                        continue
                    try:
                        capabilities.mask((name,))  # the one place capability names are checked
                    except ValueError:
                        errors.append(FieldError(f"{path}.securityContext.capabilities.{key}[{j}]",
                                                 f'Unsupported value: "{name}": not a Linux capability'))
            stop = c.lifecycle.stop_signal if c.lifecycle else None
            if stop:
                # ~10 ms of imports (rootfs, expand, request): only for a pod that names a stop signal
                from sandbox.process import launch

                try:
                    launch.parse_signal(stop)
                except ValueError:
                    errors.append(FieldError(f"{path}.lifecycle.stopSignal",
                                             f'Unsupported value: "{stop}": not a signal that can stop a process'))
    return errors
