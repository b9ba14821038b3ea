"""The learner's guide (docs/guide.md, docs/guide.zh.md) and its examples/: every example passes
`sandbox validate` (the same acceptance path as `sandbox run`), every command names only example
files that exist, and the Chinese guide runs exactly the English guide's commands and shows
exactly its output, so the one integration run (tests/integration/test_examples.py) covers both.
The guide's parser and the output comparison are tested here.

The parser and the comparison live here because both tiers need them: a section (## or ###) is a scene; its
```console blocks hold `$ command` lines, each followed by the output the guide shows. A block
opened as ```console terminal=N runs in a terminal of its own (in the background) until the end
of its scene; the commands after its first one run once it has stopped."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
GUIDES = (REPO / "docs" / "guide.md", REPO / "docs" / "guide.zh.md")
# the heading every guide ends with; its commands are the lead's to add (issue 14's --trace and
# inspect --tree), so for now it holds none
LAST_HEADING = "Watching every step: --trace and inspect --tree"


@dataclass
class Command:
    line: str  # as the reader types it, without the "$ " prompt
    expected: list[str] = field(default_factory=list)  # the output the guide shows, one line each


@dataclass
class Block:
    terminal: str  # "" for the reader's main terminal, else the name after terminal=
    commands: list[Command] = field(default_factory=list)


@dataclass
class Scene:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def commands(self) -> list[Command]:
        return [c for b in self.blocks for c in b.commands]


_FENCE = re.compile(r"^```console(?:\s+terminal=(\S+))?\s*$")


def parse_guide(text: str) -> list[Scene]:
    """Scenes in order; headings (## and ###) start a scene, a top-level # title is not one."""
    scenes: list[Scene] = []
    block: Block | None = None
    for line in text.splitlines():
        if block is not None:
            if line.startswith("```"):
                block = None
            elif line.startswith("$ "):
                block.commands.append(Command(line[2:].strip()))
            elif block.commands:
                block.commands[-1].expected.append(line.rstrip())
            continue
        fence = _FENCE.match(line)
        if line.startswith(("## ", "### ")):
            scenes.append(Scene(line.lstrip("#").strip()))
        elif fence and scenes:
            block = Block(fence.group(1) or "")
            scenes[-1].blocks.append(block)
    return scenes


# Comparing a command's output with the guide's: numbers, UUIDs and long hex strings (PIDs, inodes,
# ages, counts, IDs) match any value, runs of spaces any width, a `...` line any lines; an exit code
# stays exact.
_TOKEN = re.compile(r"(?P<uuid>[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})|(?P<hex>[0-9a-f]{12,})"
                    r"|(?<!exit code )(?<!\d)(?P<num>\d+)|(?P<space> +)")
_PATTERN = {"uuid": r"[0-9a-f-]{36}", "hex": r"[0-9a-f]+", "num": r"\d+", "space": r" +"}
# The foreground-rule message names the left-behind process by its command at the main process's
# exit: often still the forked shell (`sh`), sometimes already `nohup` or `sleep`.
_LEFT_BEHIND = re.compile(r"(\(pid \d+: |running \()(nohup|sleep)\)")


def line_pattern(line: str) -> str:
    parts, pos = [], 0
    for m in _TOKEN.finditer(line):
        parts += [re.escape(line[pos:m.start()]), _PATTERN[m.lastgroup or ""]]
        pos = m.end()
    return "".join(parts) + re.escape(line[pos:])


def expected_lines(command: Command) -> list[str]:
    lines = [line for line in command.expected if line != "^C"]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def actual_lines(output: str) -> list[str]:
    lines = [_LEFT_BEHIND.sub(r"\1sh)", line.rstrip()) for line in output.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """In order, or (output of concurrent writers) each expected line a distinct actual line."""
    ordered = "".join(r"(?:[^\n]*\n)*?" if line == "..." else line_pattern(line) + r"\n" for line in expected)
    if re.fullmatch(ordered, "".join(line + "\n" for line in actual)):
        return True
    unused = list(actual)
    for line in (x for x in expected if x != "..."):
        hit = next((a for a in unused if re.fullmatch(line_pattern(line), a)), None)
        if hit is None:
            return False
        unused.remove(hit)
    return not unused or "..." in expected


def guide_scenes(path: Path) -> list[Scene]:
    return parse_guide(path.read_text())


def _example_names(command: str) -> list[str]:
    return re.findall(r"examples/[\w.-]+", command)


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_accepted_as_sandbox_validate_accepts_it(example: Path, tmp_path: Path) -> None:
    from sandbox.spec.accept import accept_pod_file

    accepted = accept_pod_file(str(example), tmp_path / "cache", "default")
    assert accepted.warnings == (), f"{example.name}: {accepted.warnings}"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_command_names_only_examples_that_exist(guide: Path) -> None:
    named = [name for scene in guide_scenes(guide) for c in scene.commands() for name in _example_names(c.line)]
    assert named, f"{guide.name} runs no example"
    missing = sorted({name for name in named if not (REPO / name).is_file()})
    assert not missing, f"{guide.name} names examples that do not exist: {missing}"


def test_every_numbered_example_is_run_by_the_guide() -> None:
    named = {name for scene in guide_scenes(GUIDES[0]) for c in scene.commands() for name in _example_names(c.line)}
    numbered = {f"examples/{p.name}" for p in EXAMPLES.glob("[0-9][0-9]-*.yaml")}
    assert numbered <= named, f"examples no guide command runs: {sorted(numbered - named)}"


def test_both_guides_run_the_same_commands_and_show_the_same_output() -> None:
    english, chinese = (guide_scenes(path) for path in GUIDES)
    assert len(english) == len(chinese), "the guides have different sections"
    for en, zh in zip(english, chinese, strict=True):
        assert [(b.terminal, [(c.line, c.expected) for c in b.commands]) for b in en.blocks] == \
            [(b.terminal, [(c.line, c.expected) for c in b.commands]) for b in zh.blocks], \
            f"section {en.title!r} differs from {zh.title!r}"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_the_guide_ends_with_the_trace_and_tree_section(guide: Path) -> None:
    scenes = guide_scenes(guide)
    assert LAST_HEADING in scenes[-3].title and not scenes[-3].commands()  # its introduction
    assert [s.title.split()[0] for s in scenes[-2:]] == ["9.1", "9.2"]
    assert any("--trace" in c.line for c in scenes[-2].commands())
    assert any("--tree" in c.line for c in scenes[-1].commands())


def test_the_parser_reads_terminals_prompts_and_outputs() -> None:
    text = """# Title
## One
text
```console terminal=1
$ sandbox run examples/x.yaml
[app] up
^C
$ sandbox delete x
pod "x" deleted
```
```console
$ sandbox get pods
NAME
```
### Two
```yaml
$ not a command
```
"""
    [one, two] = parse_guide(text)
    assert one.title == "One" and two.title == "Two" and two.blocks == []
    assert one.blocks[0].terminal == "1" and one.blocks[1].terminal == ""
    assert [(c.line, c.expected) for c in one.commands()] == [
        ("sandbox run examples/x.yaml", ["[app] up", "^C"]),
        ("sandbox delete x", ['pod "x" deleted']),
        ("sandbox get pods", ["NAME"])]


def test_numbers_ids_and_column_widths_match_any_value_but_words_and_exit_codes_do_not() -> None:
    shown = ["pause-demo   1/1     Running   1 (0s ago)   1s",
             'pod: "x_default(3f4d45c6-dcaf-4c44-8a2f-b6a89edce990)" id sandbox://72b1b9c6f29ef97ca9240ad3',
             "  app: terminated (Error, exit code 137), restarts 0"]
    assert matches(shown, ["pause-demo   1/1     Running   12 (10s ago)   31s",
                           'pod: "x_default(493ec470-f055-429f-bf18-c12ba7dfeea7)" id sandbox://0123456789abcdef01',
                           "  app: terminated (Error, exit code 137), restarts 2"])
    assert not matches(shown[:1], ["pause-demo   0/1     CrashLoopBackOff   1 (0s ago)   1s"])
    assert not matches(shown[2:], ["  app: terminated (Error, exit code 143), restarts 0"])


def test_an_ellipsis_stands_for_any_lines_and_concurrent_output_may_come_in_any_order() -> None:
    assert matches(["Events:", "...", "  BackOff 2s"], ["Events:", "  Pulled 1s", "  Started 1s", "  BackOff 9s"])
    assert matches(["[web] answered", "[client] got it"], ["[client] got it", "[web] answered"])
    assert not matches(["[web] answered", "[client] got it"], ["[client] got it"])
    assert not matches(["a"], ["a", "b"]), "an extra line needs an ellipsis"


def test_outputs_drop_the_shown_ctrl_c_trailing_blanks_and_the_left_behind_command() -> None:
    assert expected_lines(Command("sandbox run x.yaml", ["[app] up", "^C", "pod default/x: Succeeded", ""])) == \
        ["[app] up", "pod default/x: Succeeded"]
    assert actual_lines("left 1 process(es) running (pid 17: nohup). \nrunning (sleep); they\n\n") == \
        ["left 1 process(es) running (pid 17: sh).", "running (sh); they"]
