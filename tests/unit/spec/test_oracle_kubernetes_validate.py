"""The `kubernetes-validate` package (the API's OpenAPI schema, strict) as an oracle for the structural
rules it covers: types, unknown fields, required fields.

For every Pod in the corpus and in this project's manifests: when the schema rejects a Pod we must
reject it too, and when the schema accepts it we must report no structural error (semantic rules such
as port ranges are beyond the schema and are not compared).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from sandbox.errors import SpecError
from sandbox.spec.load import load_manifests_text

kv = pytest.importorskip("kubernetes_validate")

DATA = Path(__file__).parents[2] / "data" / "manifests"
CORPUS = Path(__file__).parents[4] / "shared" / "corpus" / "k8s-examples"
# Fields of the current v1 API that the schema bundled with kubernetes-validate does not know yet.
NEWER_THAN_ORACLE = ("'cgroupOptions' was unexpected",)
STRUCTURAL = ("unknown field", "must be of type")


class _Loader(yaml.SafeLoader):
    # As the runtime reads YAML: dates and a bare `=` stay strings.
    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = {
        first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":value", ":timestamp"))]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _pods() -> list[tuple[str, dict[str, Any]]]:
    files = sorted(DATA.glob("*/*.yaml")) + sorted(DATA.glob("*/*.json"))
    if CORPUS.is_dir():
        files += sorted(CORPUS.glob("*.yaml"))
    out = []
    for path in files:
        try:
            docs = list(yaml.load_all(path.read_text(), Loader=_Loader))
        except (yaml.YAMLError, ValueError):
            continue  # syntax errors and literals PyYAML cannot build (5,000 digits) are not the oracle's business
        for i, doc in enumerate(docs):
            if isinstance(doc, dict) and doc.get("kind") == "Pod" and doc.get("apiVersion") == "v1":
                out.append((f"{path.parent.name}/{path.name}#{i}", doc))
    return out


def _schema_verdict(doc: dict[str, Any]) -> str | None:
    try:
        kv.validate(doc, kv.latest_version(), strict=True)
    except kv.ValidationError as exc:
        message = str(exc).splitlines()[0]
        return None if any(m in message for m in NEWER_THAN_ORACLE) else message
    return None


def _our_structural_errors(doc: dict[str, Any]) -> list[str] | None:
    """None when we reject the Pod for any reason; else the structural errors (always [] then)."""
    try:
        load_manifests_text(json.dumps(doc))
    except SpecError as exc:
        found = [str(e) for e in exc.errors]
        structural = [e for e in found if any(s in e for s in STRUCTURAL)]
        return structural if structural else None
    return []


@pytest.mark.parametrize(("name", "doc"), _pods(), ids=[n for n, _ in _pods()])
def test_structural_verdict_matches_schema(name: str, doc: dict[str, Any]) -> None:
    theirs = _schema_verdict(doc)
    ours = _our_structural_errors(doc)
    if theirs is not None:
        assert ours != [], f"schema rejects ({theirs}) but we accept"
    else:
        assert not ours, f"schema accepts but we report structural errors: {ours}"
