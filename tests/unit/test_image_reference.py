"""Image references: the kubelet's grammar (distribution/reference + go-digest) in the one parser
(sandbox/images/reference.py), used by manifest validation, the store and the CLI; nothing of a
reference becomes a path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from sandbox.errors import ImageError, SpecError
from sandbox.images import reference as _reference
from sandbox.images.reference import parse_image_ref, reference_problem
from sandbox.images.store import ImageConfig, ImageStore
from sandbox.spec.load import load_pod_text

HEX64 = "0123456789abcdef" * 4


@pytest.mark.parametrize(("text", "name"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("user/app:v1.0_rc-1", "docker.io/user/app:v1.0_rc-1"),
    ("registry.k8s.io/e2e-test-images/agnhost:2.39", "registry.k8s.io/e2e-test-images/agnhost:2.39"),
    ("gcr.io/google_containers/echoserver:1.4", "gcr.io/google_containers/echoserver:1.4"),
    ("a__b/c---d/e.f_g", "docker.io/a__b/c---d/e.f_g:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:V_1", "localhost:5000/app:V_1"),
    ("Registry.Example:443/app", "Registry.Example:443/app:latest"),  # a host may have upper case
    ("10.0.0.1:5000/app", "10.0.0.1:5000/app:latest"),
    ("[fe80::1]:5000/app", "[fe80::1]:5000/app:latest"),
    ("busybox@sha256:" + HEX64, "docker.io/library/busybox@sha256:" + HEX64),
    ("busybox:1.36@sha256:" + HEX64, "docker.io/library/busybox@sha256:" + HEX64),  # the digest wins
    ("busybox@sha512:" + HEX64 * 2, "docker.io/library/busybox@sha512:" + HEX64 * 2),
    ("busybox:" + "t" * 128, "docker.io/library/busybox:" + "t" * 128),
    ("a/" + "b" * 253, "docker.io/a/" + "b" * 253 + ":latest"),  # path of 255
])
def test_valid_references(text: str, name: str) -> None:
    assert reference_problem(text) is None
    assert parse_image_ref(text).name == name


@pytest.mark.parametrize(("text", "problem"), [
    ("", "at least one component"),
    ("busybox:../../x", 'tag "../../x"'),
    ("busybox:1.0/../x", 'tag "1.0/../x"'),
    ("../../../../etc/passwd", 'registry host ".."'),
    ("busybox/../x", 'name component ".."'),
    ("./busybox", 'registry host "."'),
    ("a//b", 'name component ""'),
    ("/busybox", 'name component ""'),
    ("busybox/", 'name component ""'),
    ("_busybox", 'name component "_busybox"'),
    ("busy___box", 'name component "busy___box"'),
    ("Busybox", "must be lowercase"),
    ("user/App", "must be lowercase"),
    ("busybox:", 'tag ""'),
    ("busybox:.hidden", 'tag ".hidden"'),
    ("busybox:-x", 'tag "-x"'),
    ("busybox:" + "t" * 129, "tag"),
    ("busybox:t\u00e4g", "tag"),  # \w is ASCII in Go
    ("b\u00fcsybox", "name component"),
    ("busybox\n", "name component"),
    ("busy box", "name component"),
    ("busybox\0", "name component"),
    ("busybox@sha256:abc", 'digest "sha256:abc"'),
    ("busybox@sha256:" + HEX64.upper(), "lowercase hex"),
    ("busybox@sha256:" + HEX64 + "00", "needs 64 hex digits, not 66"),
    ("busybox@sha512:" + HEX64, "needs 128 hex digits"),
    ("busybox@md5:" + "0" * 32, 'unsupported digest algorithm "md5"'),
    ("busybox@" + HEX64, "digest"),
    (HEX64, "64-byte hexadecimal"),
    ("a/" + "b" * 254, "not be more than 255 characters"),
    ("x" * 5000, "longer than 1024 characters"),
    ("local_host:5000/app", 'registry host "local_host:5000"'),
    ("localhost:abc/app", 'tag "abc/app"'),
])
def test_invalid_references(text: str, problem: str) -> None:
    found = reference_problem(text)
    assert found is not None and problem in found, found
    with pytest.raises(ValueError, match="invalid image reference"):
        parse_image_ref(text)


POD = """apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  initContainers: [{{name: i, image: {init}}}]
  containers: [{{name: c, image: {main}}}]
"""


def test_validation_names_the_field_and_the_value() -> None:
    with pytest.raises(SpecError) as info:
        load_pod_text(POD.format(init="'busybox:../../x'", main="../../../../etc/passwd"), "pod.yaml")
    assert [str(e) for e in info.value.errors] == [
        'spec.initContainers[0].image: Invalid value: "busybox:../../x": invalid reference format: tag '
        '"../../x": a tag is 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -',
        'spec.containers[0].image: Invalid value: "../../../../etc/passwd": invalid reference format: registry '
        'host ".." is not a host name or [IPv6 address], with an optional :port',
    ]
    assert str(info.value).startswith("pod.yaml: spec.initContainers[0].image")


def test_whitespace_is_reported_once() -> None:
    with pytest.raises(SpecError) as info:
        load_pod_text(POD.format(init="busybox", main="'busybox '"))
    assert [str(e) for e in info.value.errors] == [
        'spec.containers[0].image: Invalid value: "busybox ": must not have leading or trailing whitespace']


def _store(tmp_path: Path) -> tuple[ImageStore, str]:
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    store = ImageStore(tmp_path / "images")
    image = store.import_directory(rootfs, "busybox:latest", ImageConfig(cmd=("sh",)))
    return store, image.digest


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_the_store_refuses_rather_than_cleans_up(tmp_path: Path) -> None:
    store, digest = _store(tmp_path)
    before = _tree(tmp_path)
    for name in ("../../../etc/x", "docker.io/library/../x:latest", "busybox", "busybox@" + digest,
                 "docker.io/library/busybox:../x", "docker.io/library/Busybox:latest"):
        with pytest.raises(ImageError):
            store.tag(digest, name)  # only canonical names without a digest
    for digest_text in ("sha256:../../x", "sha512:" + HEX64 * 2, "sha256:" + HEX64.upper()):
        with pytest.raises(ImageError):
            store.tag(digest_text, "docker.io/library/x:latest")
    for reference in ("../../../etc/passwd", "busybox:../../x", "busybox@sha512:" + HEX64 * 2):
        with pytest.raises(ImageError):
            store.lookup(reference)
        with pytest.raises(ImageError):
            store.import_directory(tmp_path / "rootfs", reference, ImageConfig())
    assert _tree(tmp_path) == before
    assert json.loads(store.refs_file.read_text()) == {"docker.io/library/busybox:latest": digest}


def test_the_store_tags_canonical_names(tmp_path: Path) -> None:
    store, digest = _store(tmp_path)
    store.tag(digest, parse_image_ref("registry.k8s.io/busybox:1.27.2").name)
    assert store.lookup("registry.k8s.io/busybox:1.27.2").digest == digest
    assert store.lookup("busybox@" + digest).name == "docker.io/library/busybox@" + digest


def test_a_remembered_lookup_follows_a_retag_and_a_removal(tmp_path: Path) -> None:
    store, first = _store(tmp_path)
    assert store.lookup("busybox").digest == first
    other = tmp_path / "other"
    (other / "etc").mkdir(parents=True)
    second = store.import_directory(other, "docker.io/library/other:1", ImageConfig()).digest
    assert second != first
    assert store.lookup("busybox").digest == first  # refs.json gained a name: looked up again, same image
    store.tag(second, "docker.io/library/busybox:latest")
    assert store.lookup("busybox").digest == second  # its bytes changed: looked up again
    store.remove("busybox")
    with pytest.raises(ImageError):
        store.lookup("busybox")


# --- the string-operations fast path agrees with the grammar's patterns -------------------------

_PIECES = ["a", "b", "z", "0", "9", "A", "Z", ".", "_", "__", "-", "--", ":", "/", "@", "[", "]",
           "localhost", "docker.io", "index.docker.io", "library", "5000", "é", "sha256:", " "]


def _by_patterns(text: str) -> object:
    saved = _reference._parse_simple
    _reference._parse_simple = lambda _text: None  # type: ignore[assignment]
    try:
        return _reference._parse(text)
    finally:
        _reference._parse_simple = saved


@settings(max_examples=3000, deadline=None)
@given(hs.lists(hs.sampled_from(_PIECES), min_size=1, max_size=14).map("".join))
def test_fast_path_never_disagrees_with_the_patterns(text: str) -> None:
    simple = _reference._parse_simple(text)
    if simple is not None:
        assert simple == _by_patterns(text), text


@pytest.mark.parametrize("text", ["busybox", "busybox:1.36", "docker.io/library/busybox:latest",
                                  "my-registry.local:5000/team/app:v2", "localhost/x", "a__b/c-d.e:TAG_1.0-x",
                                  "Registry.IO:443/a/b"])
def test_fast_path_takes_the_common_shapes(text: str) -> None:
    simple = _reference._parse_simple(text)
    assert simple is not None and simple == _by_patterns(text)
