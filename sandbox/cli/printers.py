"""`get -o jsonpath=TEMPLATE`, `-o jsonpath-as-json=TEMPLATE` and `-o custom-columns=SPEC`, as
kubectl's printers run them over the object `get -o json` prints.

jsonpath runs once over that object: the List for a listing, the object itself for one named
object. custom-columns prints a row for each object (a header first): each column's path (kubectl's
relaxed form: `.metadata.name`, `metadata.name`, `{.metadata.name}`) with every value it finds
joined by commas, `<none>` when it finds none. Missing fields are no error (kubectl's
--allow-missing-template-keys default)."""

from __future__ import annotations

import re

from sandbox.cli.jsonpath import JSONPathError, Template, go_value, parse
from sandbox.errors import SandboxError, UsageError
from sandbox.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PLAIN_FORMATS = ("json", "yaml", "wide", "name")
TEMPLATE_FORMATS = ("jsonpath", "jsonpath-as-json", "jsonpath-file", "custom-columns")
_RELAXED = re.compile(r"^\{?(\.?[^{}]*)\}?$")


class TemplatePrinter(Record):
    kind: str  # one of TEMPLATE_FORMATS
    template: Template | None  # jsonpath's
    columns: tuple[tuple[str, Template], ...] = ()  # custom-columns': (header, path)

    def document(self, doc: dict[str, Any], items: list[dict[str, Any]], *, allow_missing: bool = True) -> str:
        """The output for one listing: `doc` is what `-o json` prints, `items` its objects.
        `allow_missing` False (--allow-missing-template-keys=false): a jsonpath naming a field
        an object lacks is an error; custom-columns show <none> either way, as kubectl's."""
        if self.kind == "custom-columns":
            return self.rows(items, header=True)
        assert self.template is not None
        try:
            if self.kind == "jsonpath-as-json":
                return self.template.render_json(doc, allow_missing=allow_missing)
            return self.template.render(doc, allow_missing=allow_missing)
        except JSONPathError as e:
            raise SandboxError(f'error executing jsonpath "{self.template.source}": Error executing template: {e}') from None

    def rows(self, items: list[dict[str, Any]], *, header: bool) -> str:
        """custom-columns' table (kubectl's tabwriter), or for a watch's one object its row alone."""
        from sandbox.cli.get import tab_lines

        table = [[name for name, _ in self.columns]] if header else []
        for item in items:
            table.append([self._cell(item, path) for _, path in self.columns])
        return "".join(line + "\n" for line in tab_lines(table))

    def _cell(self, item: dict[str, Any], path: Template) -> str:
        try:
            values = [v for piece in path.results(item) for v in piece]
        except JSONPathError as e:
            raise SandboxError(f'error executing jsonpath "{path.source}": Error executing template: {e}') from None
        return ",".join(go_value(v) for v in values) if values else "<none>"


def check_output(output: str | None) -> TemplatePrinter | None:
    """The printer an -o value asks for (None: json, yaml, wide, name or the table); UsageError,
    naming the problem, for a format we lack or a template that does not parse."""
    if output is None or output in PLAIN_FORMATS:
        return None
    kind, _, template = output.partition("=")
    if kind not in TEMPLATE_FORMATS:
        allowed = ",".join(sorted((*PLAIN_FORMATS, *TEMPLATE_FORMATS)))
        raise UsageError(f'unable to match a printer suitable for the output format "{output}", '
                         f"allowed formats are: {allowed}")
    if kind == "custom-columns":
        return TemplatePrinter(kind, None, tuple(custom_columns(template)))
    if not template:
        raise UsageError("template format specified but no template given")
    if kind == "jsonpath-file":  # the template read from a file, as kubectl's --template file
        try:
            with open(template, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"error reading --template {template}, {e.strerror}") from None
        return TemplatePrinter("jsonpath", jsonpath_template(text))
    return TemplatePrinter(kind, jsonpath_template(template))


def custom_columns(spec: str) -> list[tuple[str, Template]]:
    """`NAME:.metadata.name,STATUS:.status.phase` as (header, path) pairs."""
    if not spec:
        raise UsageError("custom-columns format specified but no custom columns given")
    columns = []
    for part in spec.split(","):
        header, colon, path = part.partition(":")
        if not colon:
            raise UsageError(f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>")
        columns.append((header, jsonpath_template(relaxed_path(path))))
    return columns


def relaxed_path(path: str) -> str:
    """kubectl's RelaxedJSONPathExpression: `a.b`, `.a.b`, `{a.b}` and `{.a.b}` all as `{.a.b}`."""
    if not path:
        return path
    m = _RELAXED.match(path)
    if m is None:
        raise UsageError("unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' "
                         "or '{.name1.name2}'")
    inner = m.group(1)
    return "{" + (inner if inner.startswith(".") else "." + inner) + "}"


def jsonpath_template(template: str) -> Template:
    """The parsed template, or UsageError in kubectl's words."""
    try:
        return parse(template)
    except JSONPathError as e:
        raise UsageError(f"error parsing jsonpath {template}, {e}") from None


def sort_by(items: list[dict[str, Any]], expression: str) -> list[int]:
    """`get --sort-by`: the order of `items` (indexes) by the field `expression` names, as
    kubectl's RuntimeSort: numbers by value, strings in natural order (sortorder.NaturalLess:
    digit runs compare as numbers), an item without the field first; stable. SandboxError, in
    kubectl's words, when no item has the field."""
    path = relaxed_path(expression)
    template = jsonpath_template(path)
    keys: list[Any] = []
    for item in items:
        found = [value for piece in template.results(item) for value in piece]
        keys.append(found[0] if found else None)
    if items and all(k is None for k in keys):
        raise SandboxError(f'couldn\'t find any field with path "{path}" in the list of objects')
    return sorted(range(len(items)), key=lambda i: _sort_key(keys[i]))


def _sort_key(value: Any) -> tuple[Any, ...]:
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (2, value)
    if isinstance(value, str):
        return (3, tuple((0, int(run), len(run), "") if run.isdigit() else (1, 0, 0, run)
                         for run in _RUNS.findall(value)))
    return (4, go_value(value))


_RUNS = re.compile(r"\d+|\D+")


def parse_bool(text: str) -> bool:
    """strconv.ParseBool, as kubectl's boolean flags take a value (`--flag=false`)."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise UsageError(f'invalid argument "{text}": strconv.ParseBool: parsing "{text}": invalid syntax')
