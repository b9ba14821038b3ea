"""hostPath type checks on temporary paths, subPath/subPathExpr rules, the Memory emptyDir size and
the bind ops a container gets (sandbox/pod/volumes.py); no root, no mounts."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from sandbox.errors import ContainerConfigError
from sandbox.pod import volumes
from sandbox.rootfs.plan import MS_NODEV, MS_NOSUID, MS_RDONLY, MS_SHARED, MS_SLAVE, MountOp, OpKind
from sandbox.spec.model import Container, HostPathVolumeSource, VolumeMount

MIB = 1 << 20


def check(path: Path | str, kind: str | None) -> str | None:
    return volumes.check_host_path(HostPathVolumeSource(path=str(path), type=kind))


@pytest.fixture
def kinds(tmp_path: Path) -> dict[str, Path]:
    """One host object of each kind the checks tell apart."""
    directory = tmp_path / "dir"
    directory.mkdir()
    file = tmp_path / "file"
    file.write_text("x")
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()  # the socket file stays
    return {"Directory": directory, "File": file, "Socket": sock_path, "CharDevice": Path("/dev/null")}


@pytest.mark.parametrize("kind", ["Directory", "File", "Socket", "CharDevice"])
def test_each_type_accepts_its_kind_and_refuses_the_others(kinds: dict[str, Path], kind: str) -> None:
    what = {"Directory": "a directory", "File": "a file", "Socket": "a socket file",
            "CharDevice": "a character device"}
    for other, path in kinds.items():
        expected = None if other == kind else f"hostPath type check failed: {path} is not {what[kind]}"
        assert check(path, kind) == expected, other


def test_block_device_check_refuses_a_char_device_with_the_kubelets_text() -> None:
    assert check("/dev/null", "BlockDevice") == "hostPath type check failed: /dev/null is not a block device"


def test_a_missing_path_fails_every_checking_type(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    for kind in ("Directory", "File", "Socket", "CharDevice", "BlockDevice"):
        assert check(missing, kind) is not None
    assert not missing.exists()


def test_unset_type_checks_nothing(tmp_path: Path) -> None:
    assert check(tmp_path / "missing", None) is None
    assert check(tmp_path / "missing", "") is None


def test_directory_or_create_makes_the_parents_0755(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert check(tmp_path / "a" / "b", "DirectoryOrCreate") is None
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    # an existing file is not a directory
    (tmp_path / "f").write_text("")
    assert check(tmp_path / "f", "DirectoryOrCreate") == f"hostPath type check failed: {tmp_path}/f is not a directory"


def test_file_or_create_makes_an_empty_0644_file_but_not_its_parent(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert check(tmp_path / "new", "FileOrCreate") is None
    finally:
        os.umask(old)
    assert (tmp_path / "new").read_bytes() == b""
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o644
    problem = check(tmp_path / "no" / "file", "FileOrCreate")
    assert problem == f"open {tmp_path}/no/file: no such file or directory"
    assert not (tmp_path / "no").exists()
    assert check(tmp_path, "FileOrCreate") == f"hostPath type check failed: {tmp_path} is not a file"


def test_symlinks_are_followed_as_the_kubelets_stat_does(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to("d")
    assert check(tmp_path / "link", "Directory") is None


# --- the Memory emptyDir's size -------------------------------------------------------------------


def test_memory_size_is_the_smallest_of_node_pod_limit_and_size_limit() -> None:
    node = 8192 * MIB
    assert volumes.memory_medium_size(None, None, node) == node
    assert volumes.memory_medium_size(None, 256 * MIB, node) == 256 * MIB
    assert volumes.memory_medium_size(64 * MIB, 256 * MIB, node) == 64 * MIB
    assert volumes.memory_medium_size(512 * MIB, 256 * MIB, node) == 256 * MIB
    assert volumes.memory_medium_size(0, None, node) == node  # sizeLimit 0: not set
    assert volumes.memory_medium_size(16384 * MIB, None, node) == node


# --- sub paths ----------------------------------------------------------------------------------


def mount(**kw: object) -> VolumeMount:
    return VolumeMount(name="v", mount_path="/data", **kw)  # type: ignore[arg-type]


def test_sub_path_expr_expands_only_the_containers_env() -> None:
    env = {"POD_NAME": "web-0", "NS": "prod"}
    assert volumes.container_sub_path(mount(sub_path_expr="logs/$(NS)/$(POD_NAME)"), env) == "logs/prod/web-0"
    assert volumes.container_sub_path(mount(sub_path_expr="a/$$(NS)"), env) == "a/$(NS)"  # $$ escapes


def test_sub_path_expr_with_a_missing_or_empty_variable_is_a_config_error() -> None:
    with pytest.raises(ContainerConfigError, match=r"missing value for EMPTY, NOPE") as info:
        volumes.container_sub_path(mount(sub_path_expr="$(NOPE)/$(EMPTY)"), {"EMPTY": ""}, "app")
    assert info.value.reason == "CreateContainerConfigError"


def test_an_expanded_sub_path_must_stay_relative_and_descending() -> None:
    with pytest.raises(ContainerConfigError, match="must not be an absolute path"):
        volumes.container_sub_path(mount(sub_path_expr="$(X)"), {"X": "/etc"})
    with pytest.raises(ContainerConfigError, match="must not contain '..'"):
        volumes.container_sub_path(mount(sub_path_expr="a/$(X)"), {"X": "../../etc"})


def test_plain_sub_path_and_none() -> None:
    assert volumes.container_sub_path(mount(sub_path="conf/app.ini"), {}) == "conf/app.ini"
    assert volumes.container_sub_path(mount(), {}) == ""


# --- the binds ------------------------------------------------------------------------------------


def test_mount_ops_bind_whole_volumes_and_sub_paths_beneath_them() -> None:
    container = Container(name="app", volume_mounts=(
        VolumeMount(name="v", mount_path="/data", read_only=True),
        VolumeMount(name="v", mount_path="/conf", sub_path="etc/conf"),
        VolumeMount(name="gone", mount_path="/x"),
    ))
    ops = volumes.mount_ops(container, {"v": Path("/lib/v")})
    base = MS_NOSUID | MS_NODEV
    assert ops == [
        MountOp(OpKind.BIND, "data", "/lib/v", flags=base | MS_RDONLY),
        MountOp(OpKind.BIND_BENEATH, "conf", "/lib/v", flags=base, data="etc/conf"),
    ]
    assert "beneath /lib/v" in ops[1].describe()


def write_mountinfo(tmp_path: Path, tags: str) -> Path:
    info = tmp_path / "mountinfo"
    info.write_text("27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
                    f"90 27 0:50 / /srv/my\\040dir rw,relatime {tags}- tmpfs tmpfs rw\n")
    return info


def test_propagation_needs_a_shared_or_slave_host_mount(tmp_path: Path) -> None:
    private = write_mountinfo(tmp_path, "")
    assert volumes.mount_of("/srv/my dir/sub", str(private)) == ("/srv/my dir", [])
    assert volumes.mount_of("/srv/other", str(private)) == ("/", ["shared:1"])
    with pytest.raises(ContainerConfigError, match="not a shared or slave mount") as info:
        volumes.check_propagation("/srv/my dir/sub", MS_SLAVE, "app", str(private))
    assert info.value.reason == "CreateContainerError"
    slave = write_mountinfo(tmp_path, "master:7 ")
    volumes.check_propagation("/srv/my dir/sub", MS_SLAVE, "app", str(slave))
    with pytest.raises(ContainerConfigError, match="not a shared mount"):
        volumes.check_propagation("/srv/my dir/sub", MS_SHARED, "app", str(slave))
    volumes.check_propagation("/srv/my dir/sub", MS_SHARED, "app", str(write_mountinfo(tmp_path, "shared:9 ")))


def test_the_new_op_kind_matches_the_native_core() -> None:
    native = pytest.importorskip("sandbox._native", reason="the native core is not built")
    assert int(OpKind.BIND_BENEATH) == native.lib.SBX_OP_BIND_BENEATH


def test_no_host_path_refuses_every_host_path_volume_by_its_field() -> None:
    from sandbox.errors import SpecError
    from sandbox.spec.model import EmptyDirVolumeSource, Pod, PodSpec, Volume
    from sandbox.supervisor.run import refuse_host_paths

    pod = Pod(spec=PodSpec(volumes=(Volume(name="a", empty_dir=EmptyDirVolumeSource()),
                                    Volume(name="b", host_path=HostPathVolumeSource(path="/etc")))))
    with pytest.raises(SpecError) as info:
        refuse_host_paths(pod)
    assert [e.path for e in info.value.errors] == ["spec.volumes[1].hostPath"]


# --- validation and the field table ------------------------------------------------------------

VALIDATED = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: app
    image: busybox
    volumeMounts:
    - {name: h, mountPath: /a, readOnly: true, recursiveReadOnly: Enabled, mountPropagation: HostToContainer}
    - {name: h, mountPath: /b, subPathExpr: "/$(X)"}
    - {name: m, mountPath: /c, subPath: "a/../b"}
  volumes:
  - {name: h, hostPath: {path: /srv/../etc, type: Directory}}
  - {name: m, emptyDir: {medium: Memory}}
"""


def field_problems(text: str) -> dict[str, str]:
    """Validation's errors, else the field table's refusals."""
    from sandbox.errors import SpecError
    from sandbox.spec import fields
    from sandbox.spec.load import load_pod_text

    try:
        pod = load_pod_text(text)
    except SpecError as e:
        return {err.path: err.detail for err in e.errors}
    return {err.path: err.detail for err in fields.check_pod(pod).errors}


def test_validation_refuses_backsteps_absolute_sub_paths_and_rro_with_propagation() -> None:
    problems = field_problems(VALIDATED)
    assert "must not contain '..'" in problems["spec.volumes[0].hostPath.path"]
    assert "must be a relative path" in problems["spec.containers[0].volumeMounts[1].subPathExpr"]
    assert "must not contain '..'" in problems["spec.containers[0].volumeMounts[2].subPath"]
    assert "mountPropagation is None" in problems["spec.containers[0].volumeMounts[0].recursiveReadOnly"]


def test_host_path_memory_sub_paths_and_propagation_are_honoured_hugepages_refused() -> None:
    ok = VALIDATED.replace("/srv/../etc", "/srv").replace('"/$(X)"', '"$(X)"').replace("a/../b", "a/b")
    ok = ok.replace(", mountPropagation: HostToContainer", "")
    assert field_problems(ok) == {}
    assert field_problems(ok.replace("- {name: h, mountPath: /b", "- {name: h, mountPropagation: HostToContainer, "
                                                                  "mountPath: /b")) == {}
    huge = field_problems(ok.replace("medium: Memory", "medium: HugePages-2Mi"))
    assert list(huge) == ["spec.volumes[1].emptyDir.medium"] and "hugepages" in huge["spec.volumes[1].emptyDir.medium"]
    assert "spec.containers[0].volumeDevices" in field_problems(
        ok.replace("    volumeMounts:", "    volumeDevices: [{name: h, devicePath: /dev/x}]\n    volumeMounts:", 1))


def test_a_namespace_and_name_too_long_for_the_log_directory_are_refused_as_the_kubelet_fails(tmp_path: Path) -> None:
    # <namespace>_<name>_<uid> is one file name: valid names over 217 characters together fail
    # the kubelet's sandbox creation (mkdir: file name too long), here before anything is made.
    from sandbox.errors import StateError
    from sandbox.paths import RootLayout
    from sandbox.supervisor.run import refuse_long_names

    layout = RootLayout.from_root(tmp_path)
    refuse_long_names(layout, "default", "a" * 209)  # 7 + 209 = 216: fits
    refuse_long_names(layout, "n" * 63, "a" * 154)  # 217: the longest that fits
    with pytest.raises(StateError, match=r"Failed to create pod sandbox: mkdir .*_<uid>: file name too long "
                                         r"\(namespace and pod name together may have at most 217 characters; "
                                         r"these have 218\)"):
        refuse_long_names(layout, "n" * 63, "a" * 155)
    assert not any(tmp_path.iterdir())  # nothing made


@pytest.mark.parametrize("length", range(214, 222))
def test_the_cli_finds_no_pod_exactly_where_run_refuses_its_names(tmp_path: Path, length: int) -> None:
    """One limit (paths.pod_names_fit) for both: what `sandbox run` accepts the CLI looks up."""
    from sandbox.errors import StateError
    from sandbox.paths import RootLayout, pod_names_fit
    from sandbox.supervisor.run import refuse_long_names

    namespace, name = "n" * 63, "a" * (length - 63)
    try:
        refuse_long_names(RootLayout.from_root(tmp_path), namespace, name)
        accepted = True
    except StateError:
        accepted = False
    assert accepted == pod_names_fit(namespace, name) == (length <= 217)


def test_a_negative_size_limit_and_an_empty_host_path_are_reported_in_the_api_servers_words() -> None:
    text = VALIDATED.replace("{medium: Memory}", "{medium: Memory, sizeLimit: -1Mi}")
    text = text.replace("{path: /srv/../etc, type: Directory}", "{path: '', type: Bogus}")
    problems = field_problems(text)
    # validateVolumeSource: a Forbidden, not a quantity range error
    assert problems["spec.volumes[1].emptyDir.sizeLimit"] == "Forbidden: SizeLimit field must be a valid resource quantity"
    # validateHostPathVolumeSource returns after the missing path: the type is not checked
    assert problems["spec.volumes[0].hostPath.path"] == "Required value"
    assert "spec.volumes[0].hostPath.type" not in problems


def test_a_sub_path_that_cannot_be_opened_is_the_kubelets_config_error_naming_the_mount() -> None:
    from sandbox.runtime.service import subpath_error

    spec = Container(name="app", image="busybox", volume_mounts=(
        VolumeMount(name="plain", mount_path="/p"),
        VolumeMount(name="other", mount_path="/o", sub_path="x"),
        VolumeMount(name="deep", mount_path="/d", sub_path="a/b/c")))
    # makeMounts: CreateContainerConfigError, the volumeMount and container named, no host path
    error = subpath_error(spec, "a/b")  # a prefix of the subPath failed (mkdir_beneath)
    assert (error.reason, str(error)) == (
        "CreateContainerConfigError", 'failed to prepare subPath for volumeMount "deep" of container "app"')
    assert 'volumeMount "other"' in str(subpath_error(spec, "x"))
    # SafeMakeDir of a missing subPath failed: makeMounts' own words for it
    assert str(subpath_error(spec, "x", created=True)) == \
        'failed to create subPath directory for volumeMount "other" of container "app"'


def test_a_sub_path_failure_is_typed_where_the_native_record_is_read() -> None:
    """The runtime turns a SubPathError into CreateContainerConfigError by its type: both readers
    of a spawn stage's failure (the spawn channel's, a shim's relayed one) must give it that type
    for the ops native/mounts.c fails a subPath's opening with, and no other."""
    import errno
    import re

    from sandbox._native import ffi, lib

    from sandbox.errors import SUBPATH_OPS, ContainerStartError, SubPathError
    from sandbox.native import _error
    from sandbox.process import shimproto

    source = (Path(__file__).parents[2] / "native" / "mounts.c").read_text()
    failing = set(re.findall(r'sbx_fail\([^"]*"((?:open|create|clone) subPath[^"]*)"', source))
    assert failing and failing == SUBPATH_OPS
    for op, typed in [*((op, True) for op in SUBPATH_OPS), ("open volume", False), ("mount proc", False)]:
        err = ffi.new("struct sbx_err *")
        err.stage, err.err, err.op, err.path = lib.SBX_STAGE_SETUP, errno.EXDEV, op.encode(), b"a/b"
        body = shimproto.ERR.pack(lib.SBX_STAGE_SETUP, errno.EXDEV, op.encode(), b"a/b")
        for error in (_error(err), shimproto.parse_failure(body).start_error()):
            assert isinstance(error, ContainerStartError) and isinstance(error, SubPathError) is typed, op
            assert (error.reason, error.op, error.path) == ("CreateContainerError", op, "a/b")
