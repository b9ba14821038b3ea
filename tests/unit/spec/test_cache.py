"""The parsed-manifest cache: exact-content hits that skip PyYAML, misses on any change, and the
to_dict/convert round trip it relies on (over the documentation corpus)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from corpus import require_corpus

from sandbox.errors import SpecError
from sandbox.spec.cache import load_pod_cached
from sandbox.spec.convert import Converter, to_dict
from sandbox.spec.load import load_manifests, load_pod_file

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n"


def test_round_trip_of_every_corpus_pod() -> None:
    count = 0
    for path in sorted(require_corpus().glob("*.yaml")):
        try:
            pods = load_manifests(str(path)).pods
        except SpecError:
            continue
        for pod in pods:
            conv = Converter()
            assert conv.convert_object(to_dict(pod, "Pod"), "Pod", "") == pod and not conv.errors, path
            count += 1
    assert count >= 168  # every Pod but those of the files refused on purpose (test_manifest_corpus.REFUSED)


def test_hit_equals_a_fresh_load_and_misses_on_change(tmp_path: Path) -> None:
    manifest, cache = tmp_path / "pod.yaml", tmp_path / "cache"
    manifest.write_text(POD)
    first = load_pod_cached(str(manifest), cache)
    assert len(list(cache.glob("*.json"))) == 1
    assert load_pod_cached(str(manifest), cache) == first == load_pod_file(str(manifest))
    manifest.write_text(POD.replace("name: p", "name: q"))
    assert load_pod_cached(str(manifest), cache).metadata.name == "q"
    assert len(list(cache.glob("*.json"))) == 2


def test_invalid_manifests_are_never_cached(tmp_path: Path) -> None:
    manifest, cache = tmp_path / "bad.yaml", tmp_path / "cache"
    manifest.write_text(POD.replace("image: busybox", "image: ''"))
    for _ in range(2):
        with pytest.raises(SpecError):
            load_pod_cached(str(manifest), cache)
    assert not list(cache.glob("*.json")) if cache.exists() else True


# A hit in a fresh interpreter: `load_pod_cached` imports no PyYAML; `accept_pod_file` (the checks
# in the entry too) no field table either.
@pytest.mark.parametrize(("call", "unwanted"), [
    ("__import__('sandbox.spec.cache').spec.cache.load_pod_cached(M, C).metadata.name", "yaml"),
    ("__import__('sandbox.spec.accept').spec.accept.accept_pod_file(M, C).pod.metadata.name", "sandbox.spec.fields"),
])
def test_a_hit_does_not_import(tmp_path: Path, call: str, unwanted: str) -> None:
    from sandbox.spec.accept import accept_pod_file

    manifest, cache = tmp_path / "pod.yaml", tmp_path / "cache"
    manifest.write_text(POD)
    accept_pod_file(str(manifest), cache)  # the entry, with its checks
    code = (f"import sys; from pathlib import Path; M, C = {str(manifest)!r}, Path({str(cache)!r}); "
            f"assert {call} == 'p'; assert {unwanted!r} not in sys.modules, '{unwanted} imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# The field table's checks are part of an entry (spec/accept.py): a hit skips spec/fields.py.

def test_a_hit_reuses_the_field_checks_per_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.spec import fields
    from sandbox.spec.accept import accept_pod_file

    manifest, cache = tmp_path / "pod.yaml", tmp_path / "cache"
    manifest.write_text(POD)
    calls: list[str | None] = []

    def check_pod(pod: object, prefix: str = "") -> fields.Findings:
        calls.append(getattr(getattr(pod, "metadata", None), "namespace", None))
        found = fields.Findings()
        found.warnings.append("spec.x: not enforced: a warning the cache must keep")
        return found

    monkeypatch.setattr(fields, "check_pod", check_pod)
    first = accept_pod_file(str(manifest), cache)
    again = accept_pod_file(str(manifest), cache)
    assert calls == ["default"]  # the second acceptance read the checks from the entry
    assert first.warnings == again.warnings == ("spec.x: not enforced: a warning the cache must keep",)
    other = accept_pod_file(str(manifest), cache, "other")  # -n changes the checked pod: its own checks
    assert calls == ["default", "other"] and other.pod.metadata.namespace == "other"
    accept_pod_file(str(manifest), cache, "other")
    accept_pod_file(str(manifest), cache)
    assert calls == ["default", "other"]
    assert len(list(cache.glob("*.json"))) == 1


def test_a_refused_field_is_refused_on_every_run(tmp_path: Path) -> None:
    from sandbox.spec.accept import accept_pod_file

    manifest, cache = tmp_path / "pod.yaml", tmp_path / "cache"
    manifest.write_text(POD + "  securityContext: {seLinuxOptions: {level: 's0:c123,c456'}}\n")
    for _ in range(3):
        with pytest.raises(SpecError):
            accept_pod_file(str(manifest), cache)
    assert len(list(cache.glob("*.json"))) == 1  # the parse is cached, the refusal is not

