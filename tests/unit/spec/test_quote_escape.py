"""Where libyaml and kubectl's reader (sigs.k8s.io/yaml over go-yaml) disagree on real files: go-yaml
accepts `\\'` inside a double-quoted scalar and reads it as `'` (libyaml refuses the escape). Only that:
the same characters elsewhere keep their YAML meaning, every other unknown escape stays an error, and
errors after a rewritten escape still point at the input as written."""

from __future__ import annotations

import pytest

from sandbox.errors import SpecError
from sandbox.spec.load import load_manifests_text

POD = """apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations:
    a: {a}
spec:
  containers: [{{name: c, image: busybox}}]
"""


def _annotation(value: str) -> str:
    (pod,) = load_manifests_text(POD.format(a=value)).pods
    return pod.metadata.annotations["a"]


@pytest.mark.parametrize(("written", "read"), [
    (r'"it\'s"', "it's"),
    (r'"\'\'"', "''"),
    (r'"x\\\'"', "x\\'"),  # an escaped backslash, then \' : backslash, quote
    (r'"x\\"', "x\\"),  # an escaped backslash only: nothing to rewrite
    (r'"\x27 \u0027"', "' '"),
    (r"'it\''s'", "it\\'s"),  # single-quoted: a backslash is a backslash, '' a quote
    (r"it\'s", "it\\'s"),  # plain
    ('|-\n      it\\\'s', "it\\'s"),  # literal block
    ('"one\\\'\n      two\\\'"', "one' two'"),  # folded over two lines
])
def test_quote_escape_is_read_as_go_yaml_reads_it(written: str, read: str) -> None:
    assert _annotation(written) == read


def test_every_such_scalar_in_a_file_is_read() -> None:
    quote = "\\'"  # backslash, quote
    more = "".join(f'    k{i}: "{quote}{i}{quote}"\n' for i in range(50))
    (pod,) = load_manifests_text(POD.format(a=r'"\'"').replace("spec:", more + "spec:")).pods
    assert [pod.metadata.annotations[f"k{i}"] for i in range(50)] == [f"'{i}'" for i in range(50)]


@pytest.mark.parametrize("escape", [r"\q", r"\%", r"\z", r"\u12"])
def test_other_unknown_escapes_stay_errors(escape: str) -> None:
    with pytest.raises(SpecError) as info:
        load_manifests_text(POD.format(a=f'"{escape}"'))
    (error,) = info.value.errors
    assert str(error).startswith("line 6, column ")


@pytest.mark.parametrize("value", [r'["\'\'\'", "\'\q"]', r'["\'\'", "\'", ]]', r'"\'" "\'"',
                                   r'{x: "\'\'", y: "\'", z}}'])
def test_positions_after_a_rewritten_escape_are_those_of_the_input(value: str) -> None:
    """Each rewrite makes the line libyaml reads 2 characters longer; errors still give the column
    of the input as written: the one libyaml gives for the same text with `\\"` (also 2 characters,
    an escape it knows) in place of each `\\'`."""
    def where(text: str) -> list[str]:
        with pytest.raises(SpecError) as info:
            load_manifests_text(POD.format(a=text))
        return [str(e).partition(": ")[0] for e in info.value.errors]

    assert where(value) == where(value.replace("\\'", '\\"'))
    assert where(value)[0].startswith("line 6, column ")


@pytest.mark.parametrize("text", ['- "\\\'"\n' * 1_400_000, ("- a\n" * 2_500 + '- "\\\'"\n') * 100])
def test_rewrites_are_bounded(text: str) -> None:
    """Each rewrite costs a re-read; past a bounded amount of that work the escape is reported where
    it is, as libyaml reports it, within about a second for any input under the size cap."""
    import time

    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_manifests_text(text)
    assert time.perf_counter() - start < 3.0
    assert str(info.value.errors[0]).startswith("line ")
