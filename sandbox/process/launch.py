"""Spec to spawn requests: the one place a Pod's container spec becomes what the native core runs
(runc's specconv plays this role). Mechanism modules never see the spec; each request is built
here in one call and never edited after.

Who a container runs as (`Identity`) is computed once per start from the pod and container
securityContext and the image, as containerd's CRI plugin computes the OCI process: user and
group (runAsUser/runAsGroup over the image's User, names looked up in the image's own
/etc/passwd and /etc/group), supplementary groups, capabilities, no_new_privs. `sandbox exec`,
exec probes and hooks run with the same identity (it is kept in the pod's state).
"""

from __future__ import annotations

from sandbox.config.sources import CONFIG_MAP, SECRET
from sandbox.config.sources import env_from as config_env_from
from sandbox.config.sources import env_value as config_value
from sandbox.errors import ContainerConfigError, ContainerStartError
from sandbox.process import capabilities
from sandbox.process.request import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    Identity,
    SpawnRequest,
)
from sandbox.rootfs.plan import DEVICE_NODES, POD_SHM_PATH, MountOp, OpKind, container_plan
from sandbox.signals import signal
from sandbox.spec.expand import container_argv, container_environment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from sandbox.config.sources import Sources
    from sandbox.images.store import Image
    from sandbox.process.downward import Addresses
    from sandbox.rootfs.layers import ContainerLayer
    from sandbox.rootfs.plan import ContainerFiles
    from sandbox.spec.model import Container, EnvVar, Pod

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# containerd's CRI sets these in every pod that has its own network namespace
# (EnableUnprivilegedPorts, EnableUnprivilegedICMP); the pod's own sysctls come after them.
DEFAULT_SYSCTLS = (("net.ipv4.ip_unprivileged_port_start", "0"), ("net.ipv4.ping_group_range", "0 2147483647"))


def _effective(pod: Pod, container: Container, key: str) -> Any:
    """A field of the container's securityContext, else of the pod's (container overrides pod)."""
    for sc in (container.security_context, pod.spec.security_context):
        value = getattr(sc, key, None) if sc is not None else None
        if value is not None:
            return value
    return None


def is_privileged(container: Container) -> bool:
    return bool(container.security_context is not None and container.security_context.privileged)


def identity(pod: Pod, container: Container, image: Image) -> Identity:
    """The container's user, groups, capabilities and no_new_privs; ContainerConfigError when the
    runAsNonRoot check fails or the image names a user or group its files do not have."""
    check_run_as_non_root(pod, container, image)
    uid, gid, name, home = _user(pod, container, image)
    psc = pod.spec.security_context
    groups = [gid]
    policy = psc.supplemental_groups_policy if psc is not None else None
    if policy != "Strict":  # Merge, the default: the image's /etc/group memberships of the user
        from sandbox.images import users

        groups += [g.id for g in users.groups(image.layers) if name and name in g.members]
    if psc is not None:
        groups += list(psc.supplemental_groups)
        if psc.fs_group is not None:
            groups.append(psc.fs_group)
    privileged = is_privileged(container)
    return Identity(
        uid=uid,
        gid=gid,
        groups=tuple(dict.fromkeys(groups)),
        caps=runtime_caps() if privileged else capabilities.for_container(container),
        no_new_privs=wants_no_new_privs(container),
        privileged=privileged,
        home=home,
    )


def wants_no_new_privs(container: Container) -> bool:
    """On unless allowPrivilegeEscalation: true or privileged: containerd's own default spec,
    stricter than the kubelet, which sets it only for an explicit `false`."""
    sc = container.security_context
    return not (is_privileged(container) or (sc is not None and bool(sc.allow_privilege_escalation)))


def runtime_caps() -> int:
    """`privileged`: every capability the runtime itself holds, as containerd's
    WithAllCurrentCapabilities reads them from /proc/self/status. A host may withhold some even
    from root (this VM: SYS_RESOURCE), and asking for more than we hold makes capset fail; the
    kernel may also know more than python-prctl's names (CHECKPOINT_RESTORE)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return capabilities.DEFAULT_MASK


def _user(pod: Pod, container: Container, image: Image) -> tuple[int, int, str, str]:
    """(uid, gid, user name for the group lookup, home) as containerd's WithUser/WithUserID: a numeric
    user without a group takes its primary group from the image's /etc/passwd (0 if it has none);
    names are looked up in the image and must be there."""
    from sandbox.images import users

    run_as_user = _effective(pod, container, "run_as_user")
    run_as_group = _effective(pod, container, "run_as_group")
    user_text, _, group_text = image.config.user.partition(":")
    if run_as_user is not None:
        user_text, group_text = str(run_as_user), ""
    root = image.layers
    accounts = users.passwd(root)
    if user_text.isdigit() or not user_text:
        uid = int(user_text or 0)
        entry = next((e for e in accounts if e.id == uid), None)
    else:
        entry = next((e for e in accounts if e.name == user_text), None)
        if entry is None:
            raise ContainerConfigError(f"unable to find user {user_text}: no matching entries in passwd file",
                                       "CreateContainerError")
        uid = entry.id
    gid = entry.gid if entry is not None else 0
    if group_text.isdigit():
        gid = int(group_text)
    elif group_text:
        found = next((g for g in users.groups(root) if g.name == group_text), None)
        if found is None:
            raise ContainerConfigError(f"unable to find group {group_text}: no matching entries in group file",
                                       "CreateContainerError")
        gid = found.id
    if run_as_group is not None:
        gid = int(run_as_group)
    return uid, gid, entry.name if entry is not None else "", entry.home if entry is not None else "/"


def check_run_as_non_root(pod: Pod, container: Container, image: Image) -> None:
    """The kubelet's verifyRunAsNonRoot, word for word: a numeric check of runAsUser, else of the
    image's user (an image without a User runs as root)."""
    if not _effective(pod, container, "run_as_non_root"):
        return
    where = f'(pod: "{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid or ""})", container: {container.name})'
    run_as_user = _effective(pod, container, "run_as_user")
    if run_as_user is not None:
        if run_as_user == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    user = image.config.user.partition(":")[0]
    if not user or (user.isdigit() and int(user) == 0):
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {where}")
    if not user.isdigit():
        raise ContainerConfigError(f"container has runAsNonRoot and image has non-numeric user ({user}), "
                                   f"cannot verify user is non-root {where}")


def pod_sysctls(pod: Pod) -> tuple[tuple[str, str], ...]:
    """(path under /proc/sys, value) that pause's stage 1 writes in the pod's new namespaces:
    containerd's defaults when the pod has its own network, then `securityContext.sysctls`
    (validated before: namespaced, and of a namespace the pod owns)."""
    from sandbox.spec import sysctls

    values: dict[str, str] = {}
    if not pod.spec.host_network:
        values.update(DEFAULT_SYSCTLS)
    sc = pod.spec.security_context
    for item in sc.sysctls if sc is not None else ():
        values[str(item.get("name"))] = str(item.get("value", ""))
    return tuple((sysctls.proc_path(name), value) for name, value in values.items())


def pod_hostname(pod: Pod) -> str:
    """The pod's UTS hostname (also /etc/hostname and $HOSTNAME): spec.hostname, else metadata.name,
    cut to 63 characters; the FQDN under setHostnameAsFQDN; spec.hostnameOverride over both
    (dnsfiles.pod_names, after the kubelet's GeneratePodHostNameAndDomain and
    GetNodenameForKernel; raises dnsfiles.HostnameError for an FQDN over 64 characters). A
    hostNetwork pod sees the node's."""
    import os

    if pod.spec.host_network:
        return os.uname().nodename
    from sandbox.pod.dnsfiles import pod_names

    return pod_names(pod).kernel


def container_env(container: Container, image: Image, hostname: str, pod: Pod | None = None,
                  sources: Sources | None = None, skipped: list[str] | None = None,
                  kubelet_env: dict[str, str] | None = None, addresses: Addresses | None = None,
                  lib_dir: str | None = None) -> list[str]:
    """containerd's merge: image ENV first, the kubelet's list over it, plus HOSTNAME; a default
    PATH when neither has one. Kubernetes does not promise an order; we keep first-seen order.

    `sources`: where ConfigMaps and Secrets come from (None: entries that read them are left out,
    as for the up-front argv check); a missing one that is not optional raises MissingSourceError
    (config/sources.py). `skipped` collects the kubelet's InvalidEnvironmentVariableNames messages;
    `kubelet_env` receives the kubelet's own list (env and envFrom, without the image's ENV and
    HOSTNAME), from which a subPathExpr is expanded. `lib_dir`: the runtime's lib directory, whose
    filesystem's size an ephemeral-storage resourceFieldRef without a limit reads."""
    merged: dict[str, str] = {}
    for entry in image.config.env:
        name, _, value = entry.partition("=")
        merged[name] = value
    merged.setdefault("PATH", DEFAULT_PATH.partition("=")[2])
    merged["HOSTNAME"] = hostname
    if pod is None:
        return [f"{k}={v}" for k, v in {**merged, **dict(container_environment(container))}.items()]
    namespace = pod.metadata.namespace or "default"

    def resolve(var: EnvVar) -> str | None:
        return _env_value(pod, namespace, container, var, sources, addresses, lib_dir)

    pairs = _env_from(container, namespace, sources, skipped) if sources is not None else []
    for name, value in container_environment(container, resolve, pairs):
        merged[name] = value
        if kubelet_env is not None:
            kubelet_env[name] = value
    return [f"{k}={v}" for k, v in merged.items()]


def _env_value(pod: Pod, namespace: str, container: Container, var: EnvVar, sources: Sources | None,
               addresses: Addresses | None, lib_dir: str | None) -> str | None:
    from sandbox.process.downward import env_value

    source = var.value_from
    refs = ((CONFIG_MAP, source.config_map_key_ref), (SECRET, source.secret_key_ref)) if source else ()
    for kind, ref in refs:
        if ref is not None:
            if sources is None:
                return None
            return config_value(sources, namespace, kind, ref.name or "", ref.key, bool(ref.optional))
    return env_value(pod, container, var, addresses, lib_dir)


def _env_from(container: Container, namespace: str, sources: Sources,
              skipped: list[str] | None) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for source in container.env_from:
        kind, ref = (CONFIG_MAP, source.config_map_ref) if source.config_map_ref else (SECRET, source.secret_ref)
        if ref is None:
            continue
        found, invalid = config_env_from(sources, namespace, kind, ref.name or "", bool(ref.optional),
                                         source.prefix or "")
        pairs += found
        if invalid and skipped is not None:
            what = "configMap" if kind == CONFIG_MAP else "secret"
            skipped.append(f"Keys [{', '.join(invalid)}] from the EnvFrom {what} {namespace}/{ref.name} were "
                           "skipped since they are considered invalid environment variable names.")
    return pairs


def with_home(env: list[str], home: str) -> list[str]:
    """runc's setupUser: a process whose environment has no (or an empty) HOME gets `home`, its
    uid's home directory in the image's /etc/passwd ("/" without an entry; Identity.home).
    Added after the kubelet's $(VAR) expansion, which never sees it; exec, probes and hooks
    inherit the list."""
    if any(e.startswith("HOME=") and len(e) > len("HOME=") for e in env):
        return env
    return [*(e for e in env if not e.startswith("HOME=")), f"HOME={home or '/'}"]


def resolve_argv(container: Container, image: Image, kubelet_env: Mapping[str, str]) -> list[str]:
    """The argv to exec (reference 4.1: command replaces entrypoint and cmd, args replaces cmd),
    `$(VAR)`-expanded from the kubelet's own list (container_env's `kubelet_env`: env and envFrom),
    never from the image's ENV or the runtime's HOSTNAME, which the kubelet does not see."""
    return container_argv(container, image.config.entrypoint, image.config.cmd, kubelet_env)


def working_dir(container: Container, image: Image) -> str:
    return container.working_dir or image.config.working_dir or "/"


def container_request(
    pod: Pod,
    container: Container,
    image: Image,
    layer: ContainerLayer,
    files: ContainerFiles,
    ident: Identity,
    *,
    pause_pidfd: int,
    share_pid: bool,
    argv: Sequence[str],
    env: Sequence[str],
    stdout: int,
    stderr: int,
    stdin: int,
    extra_ops: Sequence[MountOp] = (),
    cgroup_ops: Sequence[MountOp] = (),
    seccomp_bpf: bytes | None = None,
) -> SpawnRequest:
    """Join the pod's net/ipc/uts (and pid when shared); a new mount ns, and a new pid ns with the
    main process as PID 1 unless shareProcessNamespace (Kubernetes' CONTAINER pid mode). With
    hostPID, `share_pid` joins pause's PID namespace, which is then the host's.

    A cgroup namespace of its own for every container but a privileged one (containerd gives one
    on cgroup v2; we give it on v1 and hybrid hosts too, as runc does when asked: the kernel
    virtualises every hierarchy, and the host's cgroup paths stay hidden). `extra_ops` (volumes,
    the termination-message file) are mounted with the pod's /etc files, by target depth;
    `cgroup_ops` (plan.cgroup_mounts) right after /sys."""
    join = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | (CLONE_NEWPID if share_pid else 0)
    new = CLONE_NEWNS | (0 if share_pid else CLONE_NEWPID) | (0 if ident.privileged else CLONE_NEWCGROUP)
    sc = container.security_context
    read_only_root = bool(sc is not None and sc.read_only_root_filesystem)
    try:
        plan = container_plan(str(layer.merged), image.lowerdirs, str(layer.upper), str(layer.work), files,
                              pod_shm=not pod.spec.host_ipc, masked=not ident.privileged,
                              sys_writable=ident.privileged, read_only_root=read_only_root, extra=extra_ops,
                              cgroup=cgroup_ops)
    except ValueError as e:  # an overlay that cannot be mounted (its options over one page, > 500 layers)
        import errno

        raise ContainerStartError("CreateContainerError", f"plan image {image.name}", errno.E2BIG, str(e)) from None
    return SpawnRequest(
        argv=tuple(argv),
        env=tuple(env),
        join_pidfd=pause_pidfd,
        join_ns=join,
        new_ns=new,
        ops=(*plan, *(host_devices() if ident.privileged else ())),
        pivot=True,
        readonly_root=read_only_root,
        cwd=working_dir(container, image),
        stdio=(stdin, stdout, stderr),
        pod_mount=POD_SHM_PATH,
        **ident.request_fields(seccomp_bpf),
    )


def host_devices(dev: str = "/dev") -> tuple[MountOp, ...]:
    """`privileged`: every device node of the host, bound into the container's /dev as containerd
    adds them (WithDevices of the host's). The default nodes are bound already; ptmx stays the
    container's own devpts's."""
    import os
    import stat

    ops: list[MountOp] = []
    for dirpath, dirnames, filenames in os.walk(dev):
        rel = os.path.relpath(dirpath, dev)
        if rel != "." and (rel.split("/")[0] in ("pts", "shm", "mqueue") or os.path.ismount(dirpath)):
            dirnames.clear()
            continue
        nodes = []
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and not (rel == "." and name in (*DEVICE_NODES, "ptmx")):
                nodes.append(os.path.normpath(os.path.join("dev", rel, name)))
        if nodes and rel != ".":
            ops.append(MountOp(OpKind.MKDIR, os.path.normpath(os.path.join("dev", rel)), flags=0o755))
        ops += [MountOp(OpKind.BIND, node, "/" + node) for node in nodes]
    return tuple(ops)


def parse_signal(name: str) -> int:
    """`SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`, `SIGRTMAX-1` -> the signal number; ValueError otherwise."""
    text = name.strip().upper().removeprefix("SIG")
    if text.isdigit():
        number = int(text)
    elif text.startswith(("RTMIN+", "RTMAX-")) and text[6:].isdigit():
        number = signal.SIGRTMIN + int(text[6:]) if text.startswith("RTMIN") else signal.SIGRTMAX - int(text[6:])
    else:
        # signal.Signals' members: the module's SIG* constants, not SIG_DFL, SIG_IGN, SIG_BLOCK...
        value = getattr(signal, "SIG" + text, None) if text.isalnum() else None
        if not isinstance(value, int):
            raise ValueError(f"unknown signal {name!r}")
        return value
    if not 0 < number <= signal.SIGRTMAX or text in ("KILL", "STOP", "9", "19"):
        raise ValueError(f"unknown signal {name!r}")
    return number


def stop_signal(container: Container, image: Image) -> int:
    """What stops the container: `lifecycle.stopSignal`, else the image's StopSignal, else SIGTERM
    (containerd's order; an image's unreadable StopSignal falls back to SIGTERM)."""
    name = container.lifecycle.stop_signal if container.lifecycle else None
    if name:
        return parse_signal(name)
    try:
        return parse_signal(image.config.stop_signal) if image.config.stop_signal else int(signal.SIGTERM)
    except ValueError:
        return int(signal.SIGTERM)
