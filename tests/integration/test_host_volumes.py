"""hostPath volumes of every type (and each failing check), `--no-host-path`, read-only binds,
`emptyDir.medium: Memory` as a sized tmpfs, subPath binds opened beneath the volume (and the
symlink-swap race of CVE-2017-1002101), and HostToContainer propagation, all seen from inside the
container; the fixture checks that no tmpfs or bind is left on the host."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Sandbox

pytestmark = pytest.mark.root

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", %(script)s]
%(mounts)s
  volumes:
%(volumes)s
"""


def pod(name: str, script: str, mounts: str, volumes: str, extra: str = "") -> str:
    text = POD % {"name": name, "script": _quote(script), "mounts": _indent(mounts, 4), "volumes": _indent(volumes, 2)}
    return text + extra


def _quote(script: str) -> str:
    return '"' + script.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _indent(block: str, n: int) -> str:
    return "\n".join(" " * n + line for line in block.strip("\n").splitlines())


def run_to_end(sbx: Sandbox, text: str, *extra: str) -> tuple[int, str, str]:
    return sbx.finish(sbx.start(sbx.manifest(text), *extra))


# --- hostPath ----------------------------------------------------------------------------------


def test_every_host_path_type_binds_its_kind_and_read_only_writes_fail(sbx: Sandbox) -> None:
    host = sbx.tmp / "host"
    (host / "dir").mkdir(parents=True)
    (host / "dir" / "marker").write_text("from the host\n")
    (host / "file").write_text("a file\n")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(host / "sock"))
    script = ("set -e; cat /h/dir/marker; test -f /h/file; test -S /h/sock; test -c /h/null; "
              "echo made > /h/new-dir/x; test -f /h/new-file; echo written > /h/new-file; "
              "test -d /h/any; "
              "touch /h/ro/y 2>&1 || true; test -e /h/ro/y && echo WRITABLE; "
              "grep -q ' /h/dir .*nosuid,nodev' /proc/self/mountinfo && echo FLAGS-OK")
    mounts = """
volumeMounts:
- {name: dir, mountPath: /h/dir}
- {name: file, mountPath: /h/file}
- {name: sock, mountPath: /h/sock}
- {name: nulldev, mountPath: /h/null}
- {name: newdir, mountPath: /h/new-dir}
- {name: newfile, mountPath: /h/new-file}
- {name: any, mountPath: /h/any}
- {name: dir, mountPath: /h/ro, readOnly: true}
"""
    volumes = f"""
- {{name: dir, hostPath: {{path: {host}/dir, type: Directory}}}}
- {{name: file, hostPath: {{path: {host}/file, type: File}}}}
- {{name: sock, hostPath: {{path: {host}/sock, type: Socket}}}}
- {{name: nulldev, hostPath: {{path: /dev/null, type: CharDevice}}}}
- {{name: newdir, hostPath: {{path: {host}/made/below, type: DirectoryOrCreate}}}}
- {{name: newfile, hostPath: {{path: {host}/made-file, type: FileOrCreate}}}}
- {{name: any, hostPath: {{path: {host}/dir}}}}
"""
    try:
        code, out, err = run_to_end(sbx, pod("types", script, mounts, volumes))
    finally:
        sock.close()
    assert code == 0, err
    text = out
    assert "from the host" in text and "FLAGS-OK" in text, text
    assert "WRITABLE" not in text and "Read-only file system" in text, text
    assert (host / "made" / "below" / "x").read_text() == "made\n"
    assert (host / "made" / "below").stat().st_mode & 0o777 == 0o755
    assert (host / "made-file").read_text() == "written\n"
    assert not (host / "dir" / "y").exists()


@pytest.mark.parametrize(("kind", "path", "what"), [
    ("Directory", "file", "a directory"),
    ("DirectoryOrCreate", "file", "a directory"),
    ("File", "dir", "a file"),
    ("FileOrCreate", "dir", "a file"),
    ("Socket", "file", "a socket file"),
    ("CharDevice", "file", "a character device"),
    ("BlockDevice", "/dev/null", "a block device"),
    ("Directory", "missing", "a directory"),
])
def test_a_failed_type_check_stops_the_pod_with_the_kubelets_message(sbx: Sandbox, kind: str, path: str,
                                                                     what: str) -> None:
    host = sbx.tmp / "host"
    (host / "dir").mkdir(parents=True)
    (host / "file").write_text("")
    full = path if path.startswith("/") else f"{host}/{path}"
    volumes = f"- {{name: h, hostPath: {{path: {full}, type: {kind}}}}}"
    code, _, err = run_to_end(sbx, pod("badtype", "true", "volumeMounts: [{name: h, mountPath: /h}]", volumes), "-q")
    assert code == 1
    assert f'MountVolume.SetUp failed for volume "h" : hostPath type check failed: {full} is not {what}' \
        in err, err
    assert not (host / "missing").exists()


def test_file_or_create_does_not_create_the_parent(sbx: Sandbox) -> None:
    missing = sbx.tmp / "nope" / "file"
    volumes = f"- {{name: h, hostPath: {{path: {missing}, type: FileOrCreate}}}}"
    code, _, err = run_to_end(sbx, pod("noparent", "true", "volumeMounts: [{name: h, mountPath: /h}]", volumes), "-q")
    assert code == 1 and f"open {missing}: no such file or directory" in err, err
    assert not missing.parent.exists()


def test_no_host_path_refuses_the_pod_up_front_with_the_field(sbx: Sandbox) -> None:
    volumes = "- {name: ok, emptyDir: {}}\n- {name: h, hostPath: {path: /etc}}"
    result = sbx.run("run", "-q", "--no-host-path",
                     str(sbx.manifest(pod("nohp", "true", "volumeMounts: [{name: h, mountPath: /h}]", volumes))))
    assert result.returncode == 2
    assert "spec.volumes[1].hostPath" in result.stderr and "--no-host-path" in result.stderr, result.stderr
    assert sbx.state("nohp") is None


# --- emptyDir in memory ------------------------------------------------------------------------


def tmpfs_line(text: str, target: str) -> str:
    lines = [line for line in text.splitlines() if f" {target} " in line and " - tmpfs " in line]
    assert len(lines) == 1, text
    return lines[0]


def test_memory_empty_dir_is_a_tmpfs_sized_by_its_size_limit_or_the_pod_limit(sbx: Sandbox) -> None:
    script = "cat /proc/self/mountinfo; echo data > /cache/a; echo data > /small/b; cat /cache/a"
    mounts = "volumeMounts: [{name: cache, mountPath: /cache}, {name: small, mountPath: /small}]"
    volumes = """
- {name: cache, emptyDir: {medium: Memory}}
- {name: small, emptyDir: {medium: Memory, sizeLimit: 8Mi}}
"""
    extra = "    resources: {limits: {memory: 96Mi}}\n"
    text = pod("memory", script, mounts, volumes)
    text = text.replace("    command:", extra + "    command:", 1)
    code, out, err = run_to_end(sbx, text)
    assert code == 0, err
    info = out
    cache, small = tmpfs_line(info, "/cache"), tmpfs_line(info, "/small")
    assert "size=98304k" in cache and "nosuid" in cache and "nodev" in cache, cache
    assert "size=8192k" in small, small


def test_memory_empty_dir_is_mounted_on_the_host_while_the_pod_runs(sbx: Sandbox) -> None:
    mounts = "volumeMounts: [{name: cache, mountPath: /cache}]"
    text = pod("memhost", "echo hi > /cache/f; sleep 1000", mounts, "- {name: cache, emptyDir: {medium: Memory}}")
    proc = sbx.start(sbx.manifest(text), "-q")
    state = sbx.wait_running("memhost")
    target = Path(state["volumesDir"]) / "volumes" / "empty-dir" / "cache"
    sbx.wait_for(lambda: (target / "f").exists(), message="the file written inside")
    mounts_now = Path("/proc/self/mountinfo").read_text()
    assert f" {target} " in mounts_now and " - tmpfs " in tmpfs_line(mounts_now, str(target))
    sbx.stop(proc)
    assert f" {target} " not in Path("/proc/self/mountinfo").read_text()


# --- subPath -----------------------------------------------------------------------------------

SUB_PATH_POD = """
apiVersion: v1
kind: Pod
metadata: {name: sub}
spec:
  restartPolicy: Never
  initContainers:
  - name: fill
    image: busybox
    command: ["sh", "-c", "mkdir -p /v/conf && echo setting=1 > /v/conf/app.ini && echo d > /v/conf/d"]
    volumeMounts: [{name: v, mountPath: /v}]
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "cat /etc/app.ini; ls /conf; stat -c 'mode %a' /fresh; ls /v; \
touch /fresh/new && ls /v/made/here"]
    volumeMounts:
    - {name: v, mountPath: /etc/app.ini, subPath: conf/app.ini}
    - {name: v, mountPath: /conf, subPath: conf}
    - {name: v, mountPath: /fresh, subPath: made/here}
    - {name: v, mountPath: /v}
  volumes:
  - {name: v, emptyDir: {}}
"""


def test_sub_path_binds_a_file_and_a_directory_and_creates_a_missing_one(sbx: Sandbox) -> None:
    code, out, err = run_to_end(sbx, SUB_PATH_POD)
    assert code == 0, err
    text = out
    assert "setting=1" in text and "app.ini" in text and "mode 777" in text, text
    assert text.rstrip().endswith("new"), text


def test_a_sub_path_symlink_out_of_the_volume_is_refused(sbx: Sandbox) -> None:
    outside = sbx.tmp / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    text = SUB_PATH_POD.replace(
        "echo d > /v/conf/d", f"echo d > /v/conf/d && ln -s {outside} /v/abs && ln -s ../../../../../../../../{outside} /v/rel"
    ).replace("subPath: conf/app.ini", "subPath: abs")
    code, out, err = run_to_end(sbx, text)
    assert code == 1 and "host secret" not in out
    assert "open subPath" in err and "EXDEV" in err, err  # the runtime's log line
    # the container's waiting state as the kubelet's makeMounts words it (no host path in it)
    waiting = sbx.waiting("sub")
    assert waiting == {"reason": "CreateContainerConfigError",
                       "message": 'failed to prepare subPath for volumeMount "v" of container "app"'}, waiting
    code, out, err = run_to_end(sbx, text.replace("subPath: abs", "subPath: rel"))
    assert code == 1 and "host secret" not in out and "EXDEV" in err, err


RACE_POD = """
apiVersion: v1
kind: Pod
metadata: {name: race}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
  - name: swapper
    image: busybox
    command: ["sh", "-c", "mkdir -p /vol/inside && echo inside > /vol/inside/inside-marker; \
while true; do rmdir /vol/link 2>/dev/null; ln -sfn inside /vol/link; ln -sfn %(outside)s /vol/link; \
ln -sfn inside /vol/link; ln -sfn ../../../../../../../..%(outside)s /vol/link; done"]
    volumeMounts: [{name: vol, mountPath: /vol}]
  - name: victim
    image: busybox
    command: ["sh", "-c", "if [ -e /mnt/outside-marker ]; then echo ESCAPED; fi; ls /mnt; exit 0"]
    volumeMounts: [{name: vol, mountPath: /mnt, subPath: link}]
  volumes:
  - {name: vol, emptyDir: {}}
"""


def test_a_symlink_swapped_in_a_loop_never_binds_the_host_path_outside(sbx: Sandbox) -> None:
    """CVE-2017-1002101: the swapper flips `link` between a directory inside the volume and a host
    directory outside it (absolute, and `..` up to it) while the runtime starts the victim again
    and again. The subPath is opened beneath the volume and that fd is bound: the victim sees the
    inside directory, an empty one made while the link was missing, or does not start (EXDEV),
    never the host's marker."""
    outside = sbx.tmp / "outside"
    outside.mkdir()
    (outside / "outside-marker").write_text("host\n")
    manifest = sbx.manifest(RACE_POD % {"outside": outside})
    deadline = time.monotonic() + 20
    runs, starts, refused = 0, 0, 0
    while time.monotonic() < deadline and runs < 30:
        proc = sbx.start(manifest, "--backoff-initial", "10ms", "--backoff-max", "20ms")
        try:
            _, out, err = sbx.finish(proc, timeout=4)
        except subprocess.TimeoutExpired:
            _, out, err = sbx.stop(proc)
        runs += 1
        assert "ESCAPED" not in out and "outside-marker" not in out, out
        starts += out.count("inside-marker")
        refused += err.count("EXDEV")
        sbx.run("delete", "race")
    assert runs > 0 and starts + refused > 0, (runs, starts, refused)


# --- mountPropagation --------------------------------------------------------------------------


def test_host_to_container_shows_a_mount_the_host_makes_later(sbx: Sandbox) -> None:
    shared = sbx.tmp / "shared"
    shared.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "hostvol-test", str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        (shared / "later").mkdir()
        script = "while [ ! -e /h/later/marker ]; do sleep 0.05; done; cat /h/later/marker; " \
                 "while [ -e /p/later/marker ]; do echo LEAKED; exit 1; done; echo private-ok"
        mounts = """
volumeMounts:
- {name: h, mountPath: /h, mountPropagation: HostToContainer}
- {name: h, mountPath: /p}
"""
        volumes = f"- {{name: h, hostPath: {{path: {shared}, type: Directory}}}}"
        proc = sbx.start(sbx.manifest(pod("prop", script, mounts, volumes)))
        sbx.wait_running("prop")
        later = shared / "later"
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "hostvol-later", str(later)], check=True)
        try:
            (later / "marker").write_text("mounted later\n")
            code, out, err = sbx.finish(proc, timeout=20)
        finally:
            subprocess.run(["umount", str(later)], check=True)
        assert code == 0, err
        assert "mounted later" in out and "private-ok" in out, out
    finally:
        subprocess.run(["umount", str(shared)], check=True)


def test_bidirectional_shows_a_mount_the_privileged_container_makes_on_the_host(sbx: Sandbox) -> None:
    shared = sbx.tmp / "shared"
    shared.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "hostvol-test", str(shared)], check=True)
    inner = shared / "inner"
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        inner.mkdir()
        script = "mount -t tmpfs -o size=1m from-container /h/inner && echo hi > /h/inner/f && sleep 1000"
        text = pod("bidi", script, "volumeMounts: [{name: h, mountPath: /h, mountPropagation: Bidirectional}]",
                   f"- {{name: h, hostPath: {{path: {shared}}}}}")
        text = text.replace("    command:", "    securityContext: {privileged: true}\n    command:", 1)
        proc = sbx.start(sbx.manifest(text), "-q")
        sbx.wait_for(lambda: (inner / "f").exists(), message="the container's mount seen on the host")
        assert f" {inner} " in Path("/proc/self/mountinfo").read_text()
        sbx.stop(proc)
    finally:
        # the kubelet leaves a Bidirectional mount the container made to whoever made it, too
        if f" {inner} " in Path("/proc/self/mountinfo").read_text():
            subprocess.run(["umount", str(inner)], check=True)
        subprocess.run(["umount", str(shared)], check=True)


def test_host_to_container_on_a_private_host_mount_is_refused(sbx: Sandbox) -> None:
    host = sbx.tmp / "private"
    host.mkdir()
    volumes = f"- {{name: h, hostPath: {{path: {host}}}}}"
    mounts = "volumeMounts: [{name: h, mountPath: /h, mountPropagation: HostToContainer}]"
    code, _, err = run_to_end(sbx, pod("privprop", "true", mounts, volumes), "-q")
    assert code == 1 and "is not a shared or slave mount" in err, err


OOM_POD = """
apiVersion: v1
kind: Pod
metadata: {name: charged}
spec:
  restartPolicy: Never
  containers:
  - name: writer
    image: busybox
    command: ["sh", "-c", "dd if=/dev/zero of=/cache/fill bs=1M count=100 && echo WROTE"]
    resources: {limits: {memory: 32Mi}}
    volumeMounts: [{name: cache, mountPath: /cache}]
  - name: big
    image: busybox
    command: ["true"]
    resources: {limits: {memory: 256Mi}}
  volumes:
  - {name: cache, emptyDir: {medium: Memory}}
"""


def test_memory_empty_dir_pages_count_against_the_writers_memory_limit(sbx: Sandbox) -> None:
    """The tmpfs is sized by the pod's limit (288Mi), but the pages are charged to the writer's
    memory cgroup: 100Mi written under a 32Mi limit is an OOM kill, not a full volume."""
    code, out, err = run_to_end(sbx, OOM_POD)
    assert code == 1 and "WROTE" not in out, (out, err)
    assert "writer: terminated (OOMKilled, exit code 137)" in err, err


def test_sub_path_expr_expands_the_containers_env_including_the_downward_api(sbx: Sandbox) -> None:
    """subPathExpr: $(VAR) from the container's env as the kubelet computes it (here the pod's
    name through the downward API), one directory per pod in a shared volume."""
    code, out, err = run_to_end(sbx, """
apiVersion: v1
kind: Pod
metadata: {name: expr}
spec:
  restartPolicy: Never
  initContainers:
  - name: seed
    image: busybox
    command: ["sh", "-c", "mkdir -p /v/logs/expr && echo seeded > /v/logs/expr/marker"]
    volumeMounts: [{name: v, mountPath: /v}]
  containers:
  - name: app
    image: busybox
    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    command: ["sh", "-c", "cat /logs/marker"]
    volumeMounts: [{name: v, mountPath: /logs, subPathExpr: "logs/$(POD_NAME)"}]
  volumes:
  - {name: v, emptyDir: {}}
""")
    assert code == 0, err
    assert "seeded" in out, out


def test_a_sub_path_that_cannot_be_made_is_the_kubelets_create_error(sbx: Sandbox) -> None:
    """A missing subPath is made beneath its volume (SafeMakeDir); when that fails (here the
    volume is a read-only filesystem) the container waits with makeMounts' own words for it,
    "failed to create subPath directory", not the "prepare" ones of a subPath that exists."""
    volume = sbx.tmp / "ro"
    volume.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(volume)], check=True)
    try:
        code, _, err = run_to_end(sbx, f"""
apiVersion: v1
kind: Pod
metadata: {{name: sub}}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    command: ["true"]
    volumeMounts: [{{name: v, mountPath: /v, subPath: missing/dir}}]
  volumes:
  - {{name: v, hostPath: {{path: {volume}, type: Directory}}}}
""")
    finally:
        subprocess.run(["umount", str(volume)], check=True)
    assert code == 1 and "create subPath" in err and "EROFS" in err, err  # the runtime's log line
    assert sbx.waiting("sub") == {
        "reason": "CreateContainerConfigError",
        "message": 'failed to create subPath directory for volumeMount "v" of container "app"'}
