"""Manifests written for this project (tests/data/manifests), the seed notes' Pod templates, and the
171 Kubernetes documentation examples (../shared/corpus/k8s-examples).

Invalid cases carry their expected errors: a YAML file ends with `# expect: <line>` comments (at the
end, so line numbers in syntax errors stay those of the manifest); other files have a `.expect` file
beside them. The expected lines are the exact, complete list: every mistake, each on its own line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus import corpus_params, require_corpus

from sandbox.errors import SpecError
from sandbox.spec.load import load_manifests, load_pod_file

DATA = Path(__file__).parents[2] / "data" / "manifests"
QUOTE_ESCAPE = "pods__inject__envars-file-container.yaml"  # `\'` in a double-quoted string (go-yaml's)
# Refused on purpose, with the error they must get: files that hold objects of other kinds beside
# their Pod (DRA's ResourceClaim/ResourceClaimTemplate: refused whole, rather than run with part of
# what they describe ignored), and a placeholder image the kubelet refuses too (InvalidImageName).
REFUSED = {
    "dra__dra-device-metadata-pod.yaml": 'kind: Invalid value: "ResourceClaim": sandbox runs Pods',
    "dra__dra-device-metadata-template-pod.yaml": 'kind: Invalid value: "ResourceClaimTemplate": sandbox runs Pods',
    "dra__driver-install__example__all.yaml": 'kind: Invalid value: "ResourceClaim": sandbox runs Pods',
    "pods__private-reg-pod.yaml": 'spec.containers[0].image: Invalid value: "<your-private-image>": invalid reference',
}


def _cases(kind: str) -> list[Path]:
    return sorted(p for p in (DATA / kind).iterdir() if p.suffix in (".yaml", ".json"))


def _expected(path: Path) -> list[str]:
    side = path.with_name(path.name + ".expect")
    if side.exists():
        return side.read_text().splitlines()
    marker = "# expect: "
    return [line[len(marker):] for line in path.read_text().splitlines() if line.startswith(marker)]


def _errors(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_pod_file(str(path))
    assert info.value.source == str(path)
    return [str(e) for e in info.value.errors]


_SYNTAX = "Invalid value: YAML syntax error"


def _behaviour(error: str) -> str:
    """An error with libyaml's own words left out: a syntax error is compared by its place, our
    wording and our hints (`(U+3000 ... is not white space in YAML)`), never by the library's text,
    which changes between releases."""
    head, found, rest = error.partition(_SYNTAX)
    if not found:
        return error
    hint = rest.find(" (U+")
    return head + _SYNTAX + (rest[hint:] if hint >= 0 else "")


@pytest.mark.parametrize("path", _cases("valid"), ids=lambda p: p.stem)
def test_valid_manifest(path: Path) -> None:
    pod = load_pod_file(str(path))
    assert pod.spec.containers


@pytest.mark.parametrize("path", _cases("invalid"), ids=lambda p: p.stem)
def test_invalid_manifest(path: Path) -> None:
    expected = _expected(path)
    assert expected, f"{path.name} names no expected error"
    assert [_behaviour(e) for e in _errors(path)] == [_behaviour(e) for e in expected]


def test_case_counts() -> None:
    assert len(_cases("valid")) + len(_cases("invalid")) >= 60


@pytest.mark.parametrize("path", _cases("seeds"), ids=lambda p: p.stem)
def test_seed_pod_template(path: Path) -> None:
    """Every mistake of the seed notes' templates is reported, each on its own line."""
    errors = _errors(path)
    assert [_behaviour(e) for e in errors] == [_behaviour(e) for e in _expected(path)]
    assert all("\n" not in e for e in errors)


def test_seed_000_mistakes_are_named() -> None:
    text = "\n".join(_errors(DATA / "seeds" / "seed-000-pod-template.yaml"))
    for needle in (
        "metadata.labels: Invalid value: [",  # labels written as a list
        "metadata.annotations: Invalid value: [",
        'ports[0].containerPort: Invalid value: "init": must be of type integer',
        'ports[0].hostPort: Invalid value: "in": must be of type integer',
        'livenessProbe.httpGet.securityContext: unknown field "securityContext"',  # misplaced
        'spec.containers[0].nodeSelector: unknown field "nodeSelector"',  # pod fields under the container
        'spec.containers[0].volumes: unknown field "volumes"',
    ):
        assert needle in text


def test_seed_001_points_at_the_ideographic_spaces() -> None:
    (error,) = _errors(DATA / "seeds" / "seed-001-pod-template.yaml")
    assert error.startswith("line 4, column 3: Invalid value: YAML syntax error")
    assert "U+3000 IDEOGRAPHIC SPACE" in error


def test_corpus_is_complete() -> None:
    assert len(list(require_corpus().glob("*.yaml"))) == 171


@pytest.mark.parametrize("path", corpus_params(), ids=lambda p: p.name)
def test_corpus_manifest(path: Path) -> None:
    require_corpus()
    if path.name in REFUSED:
        with pytest.raises(SpecError) as info:
            load_manifests(str(path))
        assert REFUSED[path.name] in str(info.value)
        return
    manifests = load_manifests(str(path))
    assert manifests.pods, path.name


def test_corpus_quote_escape_is_read_as_kubectl_reads_it() -> None:
    """`"...\\'address\\'..."`: go-yaml (kubectl) reads `\\'` in a double-quoted scalar as `'`."""
    (pod,) = load_manifests(str(require_corpus() / QUOTE_ESCAPE)).pods
    assert pod.spec.init_containers[0].command == (
        "sh", "-c", "echo \"DB_ADDRESS='address'\nREST_ENDPOINT='endpoint'\" > /data/config.env")
