"""configMap, secret, downwardAPI and projected volumes without a kernel: the kubelet's
AtomicWriter on temporary directories, the payload builders, validation and the field table."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sandbox.config.sources import CONFIG_MAP, SECRET, ConfigObject, Sources
from sandbox.errors import SpecError
from sandbox.pod.projection import (
    DATA_DIR,
    AtomicWriter,
    FileProjection,
    ProjectedVolumes,
    ProjectionError,
    check_path,
    key_payload,
    read_only_volumes,
    volume_payload,
)
from sandbox.process.downward import format_map
from sandbox.spec.fields import check_pod
from sandbox.spec.load import load_pod_text
from sandbox.spec.model import KeyToPath, Pod, Volume
from sandbox.spec.validate import validate_pod

TEXT = FileProjection(b"one", 0o644)


def files(target: Path) -> dict[str, bytes]:
    """What a container sees: every user-visible path, followed through the symlinks."""
    seen = {}
    for dirpath, _, names in os.walk(target, followlinks=True):
        rel = os.path.relpath(dirpath, target)
        if rel.split("/")[0].startswith(".."):
            continue
        for name in names:
            path = Path(dirpath) / name
            seen[os.path.normpath(os.path.join(rel, name))] = path.read_bytes()
    return seen


def data_dirs(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if p.name.startswith("..") and p.name != DATA_DIR)


def test_layout_is_the_kubelets(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    assert writer.write({"a": TEXT, "dir/b": FileProjection(b"two", 0o600)})
    (ts,) = data_dirs(tmp_path)
    assert ts.startswith("..20") and len(ts.split(".")) == 4  # ..YYYY_MM_DD_HH_MM_SS.<random>
    assert os.readlink(tmp_path / DATA_DIR) == ts
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "dir") == "..data/dir"
    assert stat.S_IMODE((tmp_path / ts).stat().st_mode) == 0o755
    assert files(tmp_path) == {"a": b"one", "dir/b": b"two"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DATA_DIR, ts, "a", "dir"])


def test_modes_are_exact_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        AtomicWriter(tmp_path).write({"x": FileProjection(b"", 0o755), "y": FileProjection(b"", 0o400)})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "x").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "y").st_mode) == 0o400
    assert stat.S_IMODE(os.stat(tmp_path / DATA_DIR).st_mode) == 0o755


def test_group_gets_read_and_setgid_directories(tmp_path: Path) -> None:
    gid = os.getgid()
    AtomicWriter(tmp_path, gid).write({"sub/f": FileProjection(b"x", 0o400)})
    f = os.stat(tmp_path / "sub" / "f")
    assert (f.st_gid, stat.S_IMODE(f.st_mode)) == (gid, 0o440)  # SetVolumeOwnership on a read-only volume
    d = os.stat(tmp_path / "sub")
    assert d.st_mode & stat.S_ISGID and d.st_gid == gid


def test_unchanged_payload_is_not_rewritten(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    assert writer.write({"a": TEXT})
    before = os.readlink(tmp_path / DATA_DIR)
    assert not writer.write({"a": FileProjection(b"one", 0o644)})
    assert os.readlink(tmp_path / DATA_DIR) == before


def test_update_swaps_data_and_removes_the_old_directory(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write({"a": TEXT})
    old = os.readlink(tmp_path / DATA_DIR)
    # a reader holding the old directory open keeps the old bytes; new opens get the new ones
    held = os.open(tmp_path / "a", os.O_RDONLY)
    try:
        assert writer.write({"a": FileProjection(b"changed", 0o644)})
        assert os.read(held, 100) == b"one"
    finally:
        os.close(held)
    new = os.readlink(tmp_path / DATA_DIR)
    assert new != old and data_dirs(tmp_path) == [new]
    assert (tmp_path / "a").read_bytes() == b"changed"


def test_mode_change_alone_is_an_update(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write({"a": TEXT})
    assert writer.write({"a": FileProjection(b"one", 0o600)})
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o600


def test_stale_entries_are_removed(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write({"a": TEXT, "gone": TEXT, "d/x": TEXT, "d/y": TEXT})
    assert writer.write({"a": TEXT, "d/x": TEXT})
    assert files(tmp_path) == {"a": b"one", "d/x": b"one"}
    assert not os.path.lexists(tmp_path / "gone")
    assert writer.write({})
    assert files(tmp_path) == {} and len(os.listdir(tmp_path)) == 2  # ..data and its directory


def test_left_over_tmp_link_does_not_block_a_write(tmp_path: Path) -> None:
    os.symlink("nowhere", tmp_path / "..data_tmp")
    assert AtomicWriter(tmp_path).write({"a": TEXT})
    assert not os.path.lexists(tmp_path / "..data_tmp")


@pytest.mark.parametrize("path", ["", "/abs", "a/../b", "..", "..data/x", "..hidden", "x" * 256, "a/" * 2100])
def test_writer_refuses_unsafe_paths(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError):
        AtomicWriter(tmp_path).write({path: TEXT})
    assert os.listdir(tmp_path) == []


def test_check_path_cleans() -> None:
    assert check_path("a//b/./c") == "a/b/c"
    assert check_path("a..b") == "a..b"


# --- payloads ---------------------------------------------------------------------------------

CM = ConfigObject(CONFIG_MAP, "default", "cm", {"k1": b"v1", "k2": b"v2"})


def test_all_keys_with_the_default_mode() -> None:
    payload = key_payload(CONFIG_MAP, "cm", CM, (), None, None)
    assert payload == {"k1": FileProjection(b"v1", 0o644), "k2": FileProjection(b"v2", 0o644)}


def test_items_map_keys_to_paths_with_their_modes() -> None:
    items = (KeyToPath("k1", "sub/one", 0o400), KeyToPath("k2", "two"))
    payload = key_payload(CONFIG_MAP, "cm", CM, items, 0o600, None)
    assert payload == {"sub/one": FileProjection(b"v1", 0o400), "two": FileProjection(b"v2", 0o600)}


def test_missing_object_or_key() -> None:
    with pytest.raises(ProjectionError, match='configmap "cm" not found'):
        key_payload(CONFIG_MAP, "cm", None, (), None, None)
    with pytest.raises(ProjectionError, match='secret "s" not found'):
        key_payload(SECRET, "s", None, (), None, False)
    assert key_payload(SECRET, "s", None, (), None, True) == {}
    with pytest.raises(ProjectionError, match="non-existent config key: nope"):
        key_payload(CONFIG_MAP, "cm", CM, (KeyToPath("nope", "p"),), None, None)
    assert key_payload(CONFIG_MAP, "cm", CM, (KeyToPath("nope", "p"), KeyToPath("k1", "q")), None, True) == {
        "q": FileProjection(b"v1", 0o644)}


POD = """
apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: ns
  labels: {zone: a, app: web}
  annotations: {note: "x\\ny", q: 'say "hi"'}
spec:
  containers:
  - name: c
    image: busybox
    resources: {limits: {cpu: 250m, memory: 64Mi}}
  volumes:
  - name: cm
    configMap: {name: cm, defaultMode: 0400}
  - name: sec
    secret: {secretName: s, items: [{key: token, path: t, mode: 0600}]}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: app, fieldRef: {fieldPath: "metadata.labels['app']"}}
      - {path: mem, resourceFieldRef: {containerName: c, resource: limits.memory, divisor: 1Mi}}
      - {path: cpu, resourceFieldRef: {containerName: c, resource: limits.cpu, divisor: 1m}, mode: 0600}
  - name: all
    projected:
      defaultMode: 0440
      sources:
      - configMap: {name: cm, items: [{key: k1, path: cfg/one}]}
      - secret: {name: s}
      - secret: {name: absent, optional: true}
      - downwardAPI: {items: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}
"""

SOURCES = Sources([CM, ConfigObject(SECRET, "ns", "s", {"token": b"sekrit"}),
                   ConfigObject(CONFIG_MAP, "ns", "cm", {"k1": b"v1"})])


def volume(pod_text: str, name: str) -> tuple[Pod, Volume]:
    pod = load_pod_text(pod_text)
    return pod, next(v for v in pod.spec.volumes if v.name == name)


def test_labels_format() -> None:
    assert format_map({"b": 'say "hi"', "a": "x\ny", "c": "é"}) == 'a="x\\ny"\nb="say \\"hi\\""\nc="é"'
    assert format_map({}) == ""


def test_volume_payloads() -> None:
    pod, cm = volume(POD, "cm")
    assert volume_payload(pod, cm, SOURCES) == {"k1": FileProjection(b"v1", 0o400)}  # ns's cm, not default's
    pod, sec = volume(POD, "sec")
    assert volume_payload(pod, sec, SOURCES) == {"t": FileProjection(b"sekrit", 0o600)}
    pod, info = volume(POD, "info")
    got = volume_payload(pod, info, SOURCES)
    assert got["labels"].data == b'app="web"\nzone="a"'
    assert got["annotations"].data == b'note="x\\ny"\nq="say \\"hi\\""'
    assert got["name"].data == b"p" and got["app"].data == b"web"
    assert got["mem"] == FileProjection(b"64", 0o644)
    assert got["cpu"] == FileProjection(b"250", 0o600)
    pod, proj = volume(POD, "all")
    got = volume_payload(pod, proj, SOURCES)
    assert got == {"cfg/one": FileProjection(b"v1", 0o440), "token": FileProjection(b"sekrit", 0o440),
                   "ns": FileProjection(b"ns", 0o440)}


def test_missing_object_in_a_projection_fails() -> None:
    pod, proj = volume(POD, "all")
    with pytest.raises(ProjectionError, match='secret "s" not found'):
        volume_payload(pod, proj, Sources([ConfigObject(CONFIG_MAP, "ns", "cm", {"k1": b"v1"})]))


def test_read_only_volumes() -> None:
    assert read_only_volumes(load_pod_text(POD)) == {"cm", "sec", "info", "all"}


def test_sync_waits_then_recovers(tmp_path: Path) -> None:
    """A configMap volume on disk (no tmpfs in a unit test): missing object, then present."""
    text = POD.split("  - name: sec")[0]
    pod = load_pod_text(text)
    store: dict[tuple[str, str, str], ConfigObject] = {}

    class Store:
        def get(self, kind: str, namespace: str, name: str) -> ConfigObject | None:
            return store.get((kind, namespace, name))

    volumes = ProjectedVolumes(tmp_path, Sources(store=Store()), lambda obj: None)
    first = volumes.sync(pod)
    assert first.ready == {} and volumes.waiting == ["cm"]
    assert first.failed["cm"] == 'MountVolume.SetUp failed for volume "cm" : configmap "cm" not found'
    store[(CONFIG_MAP, "ns", "cm")] = ConfigObject(CONFIG_MAP, "ns", "cm", {"k": b"1"})
    second = volumes.sync(pod)
    target = tmp_path / "volumes" / "kubernetes.io~configmap" / "cm"
    assert second.ready == {"cm": target} and second.updated == ["cm"] and volumes.waiting == []
    assert (target / "k").read_bytes() == b"1" and stat.S_IMODE(target.stat().st_mode) == 0o777
    assert volumes.sync(pod).updated == []
    store[(CONFIG_MAP, "ns", "cm")] = ConfigObject(CONFIG_MAP, "ns", "cm", {"k": b"2"})
    assert volumes.sync(pod).updated == ["cm"] and (target / "k").read_bytes() == b"2"
    del store[(CONFIG_MAP, "ns", "cm")]  # a failed update keeps the last files
    third = volumes.sync(pod)
    assert "cm" in third.failed and volumes.waiting == [] and (target / "k").read_bytes() == b"2"


# --- validation and the field table ------------------------------------------------------------

def errors_of(volumes_yaml: str) -> list[str]:
    text = f"""
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  containers: [{{name: c, image: busybox}}]
  volumes:
{volumes_yaml}
"""
    try:
        pod = load_pod_text(text)
    except SpecError as e:
        return [str(err) for err in e.errors]
    return [str(err) for err in validate_pod(pod)] + [str(err) for err in check_pod(pod).errors]


@pytest.mark.parametrize("path, detail", [
    ("/etc/x", "must be a relative path"), ("a/../b", "must not contain '..'"), ("..data", "must not start with '..'"),
])
def test_item_paths_refused(path: str, detail: str) -> None:
    for source in (f"configMap: {{name: cm, items: [{{key: k, path: '{path}'}}]}}",
                   f"secret: {{secretName: s, items: [{{key: k, path: '{path}'}}]}}",
                   f"downwardAPI: {{items: [{{path: '{path}', fieldRef: {{fieldPath: metadata.name}}}}]}}",
                   f"projected: {{sources: [{{configMap: {{name: cm, items: [{{key: k, path: '{path}'}}]}}}}]}}"):
        errors = errors_of(f"  - name: v\n    {source}\n")
        assert any(detail in e and "path" in e for e in errors), (source, errors)


def test_projected_validation() -> None:
    errors = errors_of("""  - name: v
    projected:
      sources:
      - configMap: {name: cm, items: [{key: k, path: same}]}
      - secret: {items: [{key: k, path: same}]}
      - downwardAPI: {items: [{path: n, fieldRef: {fieldPath: spec.nodeName}},
                              {path: m, resourceFieldRef: {resource: limits.memory}}]}
""")
    assert any("sources[1].secret.items[0].path" in e and "conflicting duplicate paths" in e for e in errors)
    assert any("sources[1].secret.name" in e and "Required" in e for e in errors)
    assert any("sources[2].downwardAPI.items[0].fieldRef.fieldPath" in e and "Unsupported" in e for e in errors)
    assert any("items[1].resourceFieldRef.containerName" in e and "Required" in e for e in errors)


def test_valid_volumes_pass() -> None:
    assert errors_of("""  - name: a
    configMap: {name: cm, items: [{key: k, path: x/y}], defaultMode: 0400, optional: true}
  - name: b
    secret: {secretName: s}
  - name: c
    downwardAPI: {items: [{path: l, fieldRef: {fieldPath: metadata.labels}},
                          {path: a, fieldRef: {fieldPath: "metadata.annotations['x']"}}]}
  - name: d
    projected: {sources: [{configMap: {name: cm}}, {secret: {name: s}},
                          {downwardAPI: {items: [{path: u, fieldRef: {fieldPath: metadata.uid}}]}}]}
""") == []


def test_service_account_token_refused() -> None:
    errors = errors_of("""  - name: t
    projected: {sources: [{serviceAccountToken: {path: token}}]}
""")
    assert errors == ["spec.volumes[0].projected.sources[0].serviceAccountToken: Forbidden: not supported by sandbox "
                      "yet: there is no API server to issue service account tokens"]
