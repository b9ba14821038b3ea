"""The spec-to-request conversion (process/launch.py, the runtime's specconv), without the native
build: identity (uid, gid, groups, capabilities, no_new_privs), the runAsNonRoot check, the request
of a container (namespaces, plan, read-only root, privileged), pod sysctls, and the image's user
database read inside the image root."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import ContainerConfigError, ContainerStartError
from sandbox.images import users
from sandbox.images.store import Image, ImageConfig
from sandbox.process import capabilities, launch
from sandbox.process.request import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    DEFAULT_CAPS,
    Identity,
    SpawnRequest,
)
from sandbox.record import FrozenInstanceError
from sandbox.rootfs.layers import ContainerLayer
from sandbox.rootfs.plan import ContainerFiles, OpKind
from sandbox.spec.load import load_pod_text
from sandbox.spec.model import Pod

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1500:1600::/home:/bin/sh\nbroken line\n"
GROUP = "root:x:0:\napp:x:1600:\nextra:x:1700:app,other\nwheel:x:10:root\n"


def pod(spec: str = "", container: str = "") -> Pod:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns, uid: u1}\nspec:\n"
    text += "".join(f"  {line}\n" for line in spec.strip().splitlines())
    text += "  containers:\n  - name: c\n    image: busybox\n"
    text += "".join(f"    {line}\n" for line in container.strip().splitlines())
    return load_pod_text(text)


@pytest.fixture
def image(tmp_path: Path) -> Image:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return Image("busybox", "sha256:" + "0" * 64, (root,), ImageConfig(cmd=("sh",)))


def with_user(image: Image, user: str) -> Image:
    return Image(image.name, image.digest, image.layers, ImageConfig(cmd=("sh",), user=user))


def ident(spec: str = "", container: str = "", image: Image | None = None) -> Identity:
    assert image is not None
    p = pod(spec, container)
    return launch.identity(p, p.spec.containers[0], image)


def test_the_default_is_root_with_its_image_groups_and_containerds_set(image: Image) -> None:
    got = ident(image=image)
    assert (got.uid, got.gid, got.groups) == (0, 0, (0, 10))  # root is in wheel in the image
    assert got.caps == capabilities.DEFAULT_MASK == DEFAULT_CAPS
    assert got.no_new_privs and not got.privileged


def test_run_as_user_group_and_supplemental_groups(image: Image) -> None:
    got = ident("securityContext: {runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000], fsGroup: 2000}",
                image=image)
    assert (got.uid, got.gid, got.groups) == (1000, 3000, (3000, 4000, 2000))


def test_container_fields_override_the_pods(image: Image) -> None:
    got = ident("securityContext: {runAsUser: 1000, runAsGroup: 3000}", "securityContext: {runAsUser: 1500}",
                image=image)
    assert (got.uid, got.gid) == (1500, 3000)


def test_numeric_user_takes_its_primary_group_from_the_image(image: Image) -> None:
    got = ident("securityContext: {runAsUser: 1500}", image=image)
    assert (got.uid, got.gid, got.groups) == (1500, 1600, (1600, 1700))  # Merge: /etc/group memberships
    got = ident("securityContext: {runAsUser: 1500, supplementalGroupsPolicy: Strict}", image=image)
    assert got.groups == (1600,)
    got = ident("securityContext: {runAsUser: 4242}", image=image)
    assert (got.gid, got.groups) == (0, (0,))  # not in /etc/passwd: group 0


@pytest.mark.parametrize(("user", "expected"), [
    ("app", (1500, 1600)), ("app:extra", (1500, 1700)), ("1500:42", (1500, 42)), ("7", (7, 0)), ("", (0, 0)),
])
def test_the_image_user_in_every_form(image: Image, user: str, expected: tuple[int, int]) -> None:
    got = ident(image=with_user(image, user))
    assert (got.uid, got.gid) == expected


@pytest.mark.parametrize(("user", "message"), [
    ("nobody", "unable to find user nobody: no matching entries in passwd file"),
    ("app:nogroup", "unable to find group nogroup: no matching entries in group file"),
])
def test_unknown_image_names_are_create_container_errors(image: Image, user: str, message: str) -> None:
    with pytest.raises(ContainerConfigError) as e:
        ident(image=with_user(image, user))
    assert (e.value.reason, str(e.value)) == ("CreateContainerError", message)


@pytest.mark.parametrize(("spec", "container", "user", "message"), [
    ("securityContext: {runAsNonRoot: true}", "", "", "container has runAsNonRoot and image will run as root"),
    ("securityContext: {runAsNonRoot: true}", "", "0:5", "container has runAsNonRoot and image will run as root"),
    ("", "securityContext: {runAsNonRoot: true, runAsUser: 0}", "1000",
     "container's runAsUser breaks non-root policy"),
    ("securityContext: {runAsNonRoot: true}", "", "app",
     "container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root"),
])
def test_run_as_non_root_uses_the_kubelets_words(image: Image, spec: str, container: str, user: str,
                                                 message: str) -> None:
    with pytest.raises(ContainerConfigError) as e:
        ident(spec, container, with_user(image, user))
    assert e.value.reason == "CreateContainerConfigError"
    assert str(e.value) == f'{message} (pod: "p_ns(u1)", container: c)'


@pytest.mark.parametrize(("spec", "container", "user"), [
    ("securityContext: {runAsNonRoot: true}", "", "1000"),
    ("securityContext: {runAsNonRoot: true, runAsUser: 5}", "", ""),
    ("securityContext: {runAsNonRoot: true}", "securityContext: {runAsNonRoot: false}", ""),
])
def test_run_as_non_root_passes(image: Image, spec: str, container: str, user: str) -> None:
    ident(spec, container, with_user(image, user))


def test_capabilities_and_no_new_privs(image: Image) -> None:
    got = ident(container="securityContext: {capabilities: {add: [NET_ADMIN], drop: [MKNOD]}}", image=image)
    assert got.caps == (capabilities.DEFAULT_MASK | 1 << 12) & ~(1 << 27)
    assert ident(container="securityContext: {allowPrivilegeEscalation: true}", image=image).no_new_privs is False
    assert ident(container="securityContext: {allowPrivilegeEscalation: false}", image=image).no_new_privs is True


def test_privileged_gets_the_runtimes_capabilities_and_no_no_new_privs(image: Image) -> None:
    got = ident(container="securityContext: {privileged: true}", image=image)
    assert got.privileged and not got.no_new_privs
    assert got.caps == launch.runtime_caps()
    assert got.request_fields(b"\0" * 8)["seccomp_bpf"] is None  # never a filter for privileged


def test_identity_survives_the_pod_state() -> None:
    one = Identity(1000, 3000, (3000, 4000), 0x400, False, False)
    assert Identity.from_json(one.to_json()) == one
    assert Identity.from_json(None) == Identity()


def request(image: Image, tmp_path: Path, spec: str = "", container: str = "", **kw: object) -> SpawnRequest:
    p = pod(spec, container)
    c = p.spec.containers[0]
    layer = ContainerLayer(tmp_path / "layer")
    files = ContainerFiles(hosts="/h", hostname="/n", resolv_conf="/r")
    args: dict[str, object] = {"pause_pidfd": 5, "share_pid": False, "argv": ["sh"], "env": ["A=1"],
                               "stdout": 1, "stderr": 2, "stdin": 0}
    args.update(kw)
    return launch.container_request(p, c, image, layer, files, launch.identity(p, c, image), **args)  # type: ignore[arg-type]


def test_container_request(image: Image, tmp_path: Path) -> None:
    req = request(image, tmp_path, "securityContext: {runAsUser: 1000}", extra_ops=())
    assert req.join_pidfd == 5
    assert req.join_ns == CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    assert req.new_ns == CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWCGROUP
    assert (req.uid, req.gid, req.groups, req.caps, req.no_new_privs) == (1000, 0, (0,), DEFAULT_CAPS, True)
    assert req.stdio == (0, 1, 2) and req.argv == ("sh",) and req.env == ("A=1",)
    assert not req.readonly_root and req.pivot
    assert any(op.kind == OpKind.MASK for op in req.ops)
    with pytest.raises(FrozenInstanceError):
        req.uid = 0  # type: ignore[misc]


def test_shared_pid_joins_pause_and_read_only_root(image: Image, tmp_path: Path) -> None:
    req = request(image, tmp_path, container="securityContext: {readOnlyRootFilesystem: true}", share_pid=True)
    assert req.join_ns & CLONE_NEWPID and not req.new_ns & CLONE_NEWPID
    assert req.readonly_root


def test_privileged_request(image: Image, tmp_path: Path) -> None:
    req = request(image, tmp_path, container="securityContext: {privileged: true}", seccomp_bpf=b"\0" * 8)
    assert not req.new_ns & CLONE_NEWCGROUP
    assert req.seccomp_bpf is None and not req.no_new_privs
    assert not any(op.kind in (OpKind.MASK, OpKind.READONLY) for op in req.ops)
    sys_op = next(op for op in req.ops if op.target == "sys")
    assert not sys_op.flags & 1  # MS_RDONLY


def test_extra_ops_come_last(image: Image, tmp_path: Path) -> None:
    from sandbox.rootfs.plan import MountOp

    extra = MountOp(OpKind.BIND, "dev/termination-log", "/x")
    assert request(image, tmp_path, extra_ops=[extra]).ops[-1] == extra


def test_host_devices_for_privileged(tmp_path: Path) -> None:
    import os

    dev = tmp_path / "dev"
    (dev / "net").mkdir(parents=True)
    (dev / "pts").mkdir()
    for name in ("null", "ptmx", "loop0", "net/tun", "pts/0"):
        os.symlink("/dev/null", dev / name)  # symlinks are not device nodes: nothing from them
    assert launch.host_devices(str(dev)) == ()
    found = launch.host_devices("/dev")
    targets = {op.target for op in found if op.kind == OpKind.BIND}
    assert "dev/null" not in targets and "dev/ptmx" not in targets  # bound already / the container's own
    assert all(op.source == "/" + op.target for op in found if op.kind == OpKind.BIND)


def test_pod_sysctls_with_containerds_defaults() -> None:
    p = pod("securityContext: {sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: '80'}, "
            "{name: kernel.shm_rmid_forced, value: '1'}, {name: net/ipv4/conf/eth0.100/rp_filter, value: '2'}]}")
    assert launch.pod_sysctls(p) == (("net/ipv4/ip_unprivileged_port_start", "80"),
                                     ("net/ipv4/ping_group_range", "0 2147483647"),
                                     ("kernel/shm_rmid_forced", "1"),
                                     ("net/ipv4/conf/eth0.100/rp_filter", "2"))
    assert launch.pod_sysctls(pod("hostNetwork: true")) == ()


def test_image_files_are_read_inside_the_image_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.write_text("root:x:0:0:::\nleak:x:1:1:::\n")
    (root / "etc" / "passwd").symlink_to("../../../../../../" + str(outside))
    assert users.read_in_root(str(root), "/etc/passwd") is None  # resolved inside: no such file
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to(str(outside))  # absolute: inside the root too
    assert users.read_in_root(str(root), "/etc/passwd") is None
    (root / "real").write_text("a:x:5:6:::\n")
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to("/real")
    assert [e.id for e in users.passwd(str(root))] == [5]
    import os

    os.mkfifo(root / "etc" / "group")
    assert users.read_in_root(str(root), "/etc/group") is None  # never blocks on a FIFO
    (root / "loop").symlink_to("loop")
    assert users.read_in_root(str(root), "/loop") is None


def test_launch_needs_no_native_build() -> None:
    import ast

    tree = ast.parse(Path(launch.__file__).read_text())
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(name and name.startswith(("sandbox.native", "sandbox._native")) for name in names)


def test_nul_bytes_are_refused_before_the_core() -> None:
    native = pytest.importorskip("sandbox.native", reason="the native core is not built")
    keep = native._Keep()
    with pytest.raises(ContainerStartError) as e:
        keep.cstr("a\0b", "command[1]")
    assert "command[1] contains a NUL byte" in str(e.value)


@pytest.mark.parametrize(("env", "user", "expected"), [
    (["PATH=/bin"], "", ["PATH=/bin", "HOME=/root"]),  # root's entry in the image's /etc/passwd
    (["PATH=/bin"], "securityContext: {runAsUser: 1500}", ["PATH=/bin", "HOME=/home"]),
    (["PATH=/bin"], "securityContext: {runAsUser: 4242}", ["PATH=/bin", "HOME=/"]),  # no entry: runc's default
    (["HOME=/data", "PATH=/bin"], "", ["HOME=/data", "PATH=/bin"]),  # the pod's or the image's wins
    (["HOME=", "PATH=/bin"], "", ["PATH=/bin", "HOME=/root"]),  # empty counts as unset (os.Getenv)
])
def test_home_as_runc_sets_it(image: Image, env: list[str], user: str, expected: list[str]) -> None:
    # runc's setupUser exports HOME for the container process and every exec when none is set:
    # `echo $HOME` in a busybox pod prints /root under containerd.
    assert launch.with_home(env, ident(user, image=image).home) == expected


def test_home_of_a_user_the_image_names(image: Image) -> None:
    assert ident(image=with_user(image, "app")).home == "/home"
    assert ident(image=with_user(image, "app:root")).home == "/home"
