"""Where the Kubernetes documentation corpus lies (../shared/corpus/k8s-examples, beside the repo),
and the one rule for its absence: a developer's run skips the tests that read it, a CI run
(CI=true, which .ci/run exports) fails them, so a missing checkout can never turn CI green by
skipping. On sys.path through pyproject's `pythonpath = ["tests"]`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "k8s-examples"


def under_ci() -> bool:
    return os.environ.get("CI") == "true"


def require_corpus() -> Path:
    """The corpus directory; skips the calling test when it is absent, fails it under CI."""
    if not CORPUS.is_dir():
        message = f"corpus not found at {CORPUS} (shared/ beside the repo)"
        if under_ci():
            pytest.fail(f"{message}; CI=true, so this fails instead of skipping", pytrace=False)
        pytest.skip(message)
    return CORPUS


def corpus_files() -> list[Path]:
    """The corpus manifests ([] when absent)."""
    return sorted(CORPUS.glob("*.yaml")) if CORPUS.is_dir() else []


def corpus_params() -> list[Any]:
    """corpus_files() for parametrize, or one placeholder when absent: the test then runs, and its
    require_corpus() skips or fails it (an empty parameter set could only ever skip)."""
    return list(corpus_files()) or [pytest.param(CORPUS / "missing", id="corpus-missing")]
