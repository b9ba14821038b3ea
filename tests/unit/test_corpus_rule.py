"""tests/corpus.py: a missing documentation corpus skips on a developer's machine and fails in CI."""

from __future__ import annotations

from pathlib import Path

import corpus
import pytest


def test_missing_corpus_skips_outside_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "CORPUS", tmp_path / "absent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        corpus.require_corpus()
    assert corpus.corpus_files() == []


def test_missing_corpus_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "CORPUS", tmp_path / "absent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        corpus.require_corpus()


def test_present_corpus_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text("kind: Pod\n")
    monkeypatch.setattr(corpus, "CORPUS", tmp_path)
    monkeypatch.setenv("CI", "true")
    assert corpus.require_corpus() == tmp_path and corpus.corpus_files() == [tmp_path / "a.yaml"]


def test_parameters_keep_a_placeholder_when_the_corpus_is_missing(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "CORPUS", tmp_path / "absent")
    (param,) = corpus.corpus_params()
    assert param.id == "corpus-missing"
