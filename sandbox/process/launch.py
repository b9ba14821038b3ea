"""Spec to spawn requests: the one place a Pod's container spec becomes what the native core runs
(runc's specconv plays this role). Mechanism modules never see the spec.
"""

from __future__ import annotations

from sandbox.images.store import Image
from sandbox.native import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, SpawnRequest
from sandbox.process import capabilities
from sandbox.rootfs.layers import ContainerLayer
from sandbox.rootfs.plan import POD_SHM_PATH, ContainerFiles, container_plan
from sandbox.spec.expand import container_argv, container_environment
from sandbox.spec.model import Container, Pod

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOSTNAME_MAX = 63


def pod_hostname(pod: Pod) -> str:
    """spec.hostname, else metadata.name cut to 63 characters without a trailing '-' or '.'
    (kubelet GeneratePodHostNameAndDomain / truncatePodHostnameIfNeeded); a hostNetwork pod
    sees the node's."""
    if pod.spec.host_network:
        import os

        return os.uname().nodename
    name = pod.spec.hostname or pod.metadata.name or "pod"
    return name[:HOSTNAME_MAX].rstrip("-.")


def container_env(container: Container, image: Image, hostname: str, pod: Pod | None = None) -> list[str]:
    """containerd's merge: image ENV first, the kubelet's list over it, plus HOSTNAME; a default
    PATH when neither has one. Kubernetes does not promise an order; we keep first-seen order."""
    merged: dict[str, str] = {}
    for entry in image.config.env:
        name, _, value = entry.partition("=")
        merged[name] = value
    merged.setdefault("PATH", DEFAULT_PATH.partition("=")[2])
    merged["HOSTNAME"] = hostname
    from sandbox.process.downward import env_value

    resolve = (lambda var: env_value(pod, container, var)) if pod is not None else None
    for name, value in container_environment(container, resolve):
        merged[name] = value
    return [f"{k}={v}" for k, v in merged.items()]


def resolve_argv(container: Container, image: Image, env: list[str]) -> list[str]:
    """The argv to exec (reference 4.1: command replaces entrypoint and cmd, args replaces cmd)."""
    lookup = dict(e.partition("=")[::2] for e in env)
    return container_argv(container, image.config.entrypoint, image.config.cmd, lookup)


def working_dir(container: Container, image: Image) -> str:
    return container.working_dir or image.config.working_dir or "/"


def container_request(
    container: Container,
    image: Image,
    layer: ContainerLayer,
    files: ContainerFiles,
    *,
    pause_pidfd: int,
    share_pid: bool,
    host_ipc: bool = False,
    argv: list[str],
    env: list[str],
    stdout: int,
    stderr: int,
    stdin: int,
) -> SpawnRequest:
    """Join the pod's net/ipc/uts (and pid when shared); a new mount ns, and a new pid ns with the
    main process as PID 1 unless shareProcessNamespace (Kubernetes' CONTAINER pid mode). With
    hostPID, `share_pid` joins pause's PID namespace, which is then the host's."""
    join = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | (CLONE_NEWPID if share_pid else 0)
    new = CLONE_NEWNS | (0 if share_pid else CLONE_NEWPID)
    plan = container_plan(str(layer.merged), str(image.rootfs), str(layer.upper), str(layer.work), files,
                          pod_shm=not host_ipc)
    return SpawnRequest(
        argv=argv,
        env=env,
        join_pidfd=pause_pidfd,
        join_ns=join,
        new_ns=new,
        ops=plan,
        pivot=True,
        cwd=working_dir(container, image),
        stdio=(stdin, stdout, stderr),
        pod_mount=POD_SHM_PATH,
        caps=capabilities.for_container(container),
    )


def parse_signal(name: str) -> int:
    """`SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`, `SIGRTMAX-1` -> the signal number; ValueError otherwise."""
    import signal

    text = name.strip().upper().removeprefix("SIG")
    if text.isdigit():
        number = int(text)
    elif text.startswith(("RTMIN+", "RTMAX-")) and text[6:].isdigit():
        number = signal.SIGRTMIN + int(text[6:]) if text.startswith("RTMIN") else signal.SIGRTMAX - int(text[6:])
    else:
        try:
            return int(signal.Signals["SIG" + text])
        except KeyError:
            raise ValueError(f"unknown signal {name!r}") from None
    if not 0 < number <= signal.SIGRTMAX or text in ("KILL", "STOP", "9", "19"):
        raise ValueError(f"unknown signal {name!r}")
    return number


def stop_signal(container: Container, image: Image) -> int:
    """What stops the container: `lifecycle.stopSignal`, else the image's StopSignal, else SIGTERM
    (containerd's order; an image's unreadable StopSignal falls back to SIGTERM)."""
    import signal

    name = container.lifecycle.stop_signal if container.lifecycle else None
    if name:
        return parse_signal(name)
    try:
        return parse_signal(image.config.stop_signal) if image.config.stop_signal else int(signal.SIGTERM)
    except ValueError:
        return int(signal.SIGTERM)
