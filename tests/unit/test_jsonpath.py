"""kubectl's JSONPath (sandbox/cli/jsonpath.py) against client-go's and kubectl's documented
examples, the printers over it (get -o jsonpath / jsonpath-as-json / custom-columns), and the
errors that name the template's problem."""

from __future__ import annotations

import json

import pytest

from sandbox.cli.jsonpath import JSONPathError, go_float, parse
from sandbox.cli.printers import check_output, relaxed_path
from sandbox.errors import SandboxError, UsageError
from tests.unit.test_cli_kubectl import Root, pod_state, root  # noqa: F401 - root is a fixture

# The object of kubectl's JSONPath reference page and client-go's TestKubernetes.
NODES = json.loads("""{
  "kind": "List",
  "items": [
    {"kind": "None",
     "metadata": {"name": "127.0.0.1", "labels": {"kubernetes.io/hostname": "127.0.0.1"}},
     "status": {"capacity": {"cpu": "4"}, "ready": true,
                "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.1"}]}},
    {"kind": "None",
     "metadata": {"name": "127.0.0.2", "labels": {"kubernetes.io/hostname": "127.0.0.2"}},
     "status": {"capacity": {"cpu": "8"}, "ready": false,
                "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.2"},
                              {"type": "another", "address": "127.0.0.3"}]}}
  ],
  "users": [
    {"name": "myself", "user": {}},
    {"name": "e2e", "user": {"username": "admin", "password": "secret"}}
  ]
}""")

STORE = {
    "Name": "jsonpath",
    "Book": [{"Category": "reference", "Author": "Nigel Rees", "Price": 8.95},
             {"Category": "fiction", "Author": "Evelyn Waugh", "Price": 12.99},
             {"Category": "fiction", "Author": "Herman Melville", "Price": 8.99}],
    "Bicycle": [{"Color": "red", "Price": 19.95, "IsNew": True}, {"Color": "green", "Price": 20.01, "IsNew": False}],
    "Labels": {"engieer": 10, "web/html": 15, "k8s-app": 20},
}

TYPES = {"bools": [True, False, True, False], "integers": [1, 2, 3, 4], "floats": [1.0, 2.2, 3.3, 4.0],
         "strings": ["one", "two", "three", "four"],
         "maps": [{"name": "one", "value": 1}, {"name": "two", "value": 2.02}, {"name": "three", "value": 3.03}]}


@pytest.mark.parametrize(("template", "expected"), [
    ("{.kind}", "List"),
    ("{['kind']}", "List"),
    ("{..name}", "127.0.0.1 127.0.0.2 myself e2e"),
    ("{.items[*].metadata.name}", "127.0.0.1 127.0.0.2"),
    ("{.users[0].name}", "myself"),
    ("{.users[-1].name}", "e2e"),
    ("{range .items[*]}{.metadata.name}, {end}{.kind}", "127.0.0.1, 127.0.0.2, List"),
    ('{range .items[*]}{.metadata.name}{"\\t"}{end}', "127.0.0.1\t127.0.0.2\t"),
    ('{range .items[*]}{.metadata.name}{"\\n"}{end}', "127.0.0.1\n127.0.0.2\n"),
    ("{.items[*].status.addresses[*].address}", "127.0.0.1 127.0.0.2 127.0.0.3"),
    ("{range .items[*]}{range .status.addresses[*]}{.address}, {end}{end}", "127.0.0.1, 127.0.0.2, 127.0.0.3, "),
    ("{.items[*]['metadata.name', 'status.capacity']}", '127.0.0.1 127.0.0.2 {"cpu":"4"} {"cpu":"8"}'),
    ("{range .items[*]}[{.metadata.name}, {.status.capacity}] {end}", '[127.0.0.1, {"cpu":"4"}] [127.0.0.2, {"cpu":"8"}] '),
    ('{.users[?(@.name=="e2e")].user.password}', "secret"),
    ("{.items[0].metadata.labels.kubernetes\\.io/hostname}", "127.0.0.1"),
    ('{.items[?(@.metadata.labels.kubernetes\\.io/hostname=="127.0.0.1")].kind}', "None"),
    ("{.items[?(@..ready==true)].metadata.name}", "127.0.0.1"),
    ("{.items[?(@.status.ready!=true)].metadata.name}", "127.0.0.2"),
    ("{$.kind} and {@.kind}", "List and List"),
    ("no action at all", "no action at all"),
    ("{.missing}{.items[0].missing}", ""),  # kubectl's --allow-missing-template-keys (on)
    ("{.items[5:5]}", ""),  # zero elements asked for: no bounds error
])
def test_kubectls_documented_examples(template: str, expected: str) -> None:
    assert parse(template).render(NODES) == expected


@pytest.mark.parametrize(("template", "data", "expected"), [
    ("{ .bools }", TYPES, "[true,false,true,false]"),
    ("{ .bools[-1] }", TYPES, "false"),
    ("{ .bools[:4:2] }", TYPES, "true true"),
    ("{ .integers[-2] }", TYPES, "3"),
    ("{ .floats }", TYPES, "[1,2.2,3.3,4]"),
    ("{ .floats[0] }", TYPES, "1"),
    ("{ .strings[0:2] }", TYPES, "one two"),
    ("{ .maps[1::2] }", TYPES, '{"name":"two","value":2.02}'),
    ("{..}", [1, 2, 3], "[1,2,3]"),
    ("{[?(@<5)]}", [2, 6, 3, 7], "2 3"),
    ('{"{"}', None, "{"),
    ("{[1,3,4]}", [0, 1, 2, 3, 4], "1 3 4"),
    ("hello {.Name}", STORE, "hello jsonpath"),
    ("{$.Labels.web/html}", STORE, "15"),
    ("{.Labels.k8s-app}", STORE, "20"),
    ("{.Labels.a=b(c)}", {"Labels": {"a=b(c)": 1}}, "1"),  # only client-go's terminators end a name
    ("{.Bicycle[*].Color}", STORE, "red green"),
    ('{range .Bicycle[*]}{ "{" }{ @.* }{ "} " }{end}', STORE, "{red 19.95 true} {green 20.01 false} "),
    ("{..Price}", STORE, "8.95 12.99 8.99 19.95 20.01"),
    ("{...Price}", STORE, "8.95 12.99 8.99 19.95 20.01"),
    ("{.Book[-1:].Author}", STORE, "Herman Melville"),
    ("{..Book[2].Author}", STORE, "Herman Melville"),
    ("{.Bicycle[?(@.IsNew==true)].Color}", STORE, "red"),
    ("{.Bicycle[?(@.Price>20)].Color}", STORE, "green"),
    ("{[?(@.z)].id}", [{"id": "i1"}, {"id": "i2", "z": 1}, {"id": "i5", "z": 1}], "i2 i5"),
    ("{[0]['id']}", [{"id": "i1"}], "i1"),
    ("{range .items[*]}{.metadata.name}{end}", {"items": []}, ""),
    ("{.a}", {"a": None}, "<nil>"),
    ('{"\\u00e9\\x41\\101"}', None, "\u00e9AA"),
])
def test_client_gos_cases(template: str, data: object, expected: str) -> None:
    assert parse(template).render(data) == expected


@pytest.mark.parametrize(("template", "message"), [
    ("{.x", "unclosed action"),
    ('{"abc}', "unterminated quoted string"),
    ("{.a[0}", "unterminated array"),
    ('{.a[?(@.b=="c")}', "unclosed array expect ]"),
    ('{.a[?(@.b=="c"}', "unterminated filter"),
    ('{"\\q"}', 'unquote string "\\q" error invalid syntax'),
    ("{.a[x]}", "invalid array index x"),
    ("{....Price}", "invalid multiple recursive descent"),
    ("{!x}", "unrecognized character in action: U+0021 '!'"),
])
def test_templates_that_do_not_parse(template: str, message: str) -> None:
    with pytest.raises(JSONPathError) as caught:
        parse(template)
    assert str(caught.value) == message


@pytest.mark.parametrize(("template", "message"), [
    ("{hello}", "unrecognized identifier hello"),
    ("{.Labels[0]}", "map[string]interface {} is not array or slice"),
    ("{.Book[?(@.Price<>10)]}", "unrecognized filter operator <>"),
    ("{range .Labels.*}{@}{end}{end}", "not in range, nothing to end"),
    ("{.Book[3]}", "array index out of bounds: index 3, length 3"),
    ("{.Book[1:9]}", "array index out of bounds: index 8, length 3"),
    ("{.Book[::0]}", "step must be > 0"),
    ("{.Labels[?(@>1)]}", "map[engieer:10 k8s-app:20 web/html:15] is not array or slice and cannot be filtered"),
])
def test_templates_that_fail_on_the_object(template: str, message: str) -> None:
    with pytest.raises(JSONPathError) as caught:
        parse(template).render(STORE)
    assert str(caught.value) == message


def test_missing_keys_fail_when_not_allowed() -> None:
    with pytest.raises(JSONPathError, match="hello is not found"):
        parse("{.hello}").render(STORE, allow_missing=False)


@pytest.mark.parametrize(("value", "text"), [(1e6, "1e+06"), (19.95, "19.95"), (100000.0, "100000"), (1.5e-05, "1.5e-05"),
                                             (0.0001, "0.0001"), (1234567.5, "1.2345675e+06"), (-2.5, "-2.5")])
def test_floats_print_as_gos_fmt(value: float, text: str) -> None:
    assert go_float(value) == text


def test_jsonpath_as_json_prints_each_actions_results_as_an_array() -> None:
    printed = parse("{.items[*].metadata.name}").render_json(NODES)
    assert json.loads(printed) == ["127.0.0.1", "127.0.0.2"]


@pytest.mark.parametrize(("path", "relaxed"), [(".a.b", "{.a.b}"), ("a.b", "{.a.b}"), ("{a.b}", "{.a.b}"),
                                               ("{.a.b}", "{.a.b}")])
def test_custom_columns_take_kubectls_relaxed_paths(path: str, relaxed: str) -> None:
    assert relaxed_path(path) == relaxed


@pytest.mark.parametrize(("output", "message"), [
    ("jsonpath={.x", "error parsing jsonpath {.x, unclosed action"),
    ("jsonpath=", "template format specified but no template given"),
    ("custom-columns=", "custom-columns format specified but no custom columns given"),
    ("custom-columns=NAME", "unexpected custom-columns spec: NAME, expected <header>:<json-path-expr>"),
    ("custom-columns=N:{.a}}", "unexpected path string"),
    ("go-template={{.x}}", 'unable to match a printer suitable for the output format "go-template={{.x}}"'),
])
def test_bad_formats_are_refused_naming_the_problem(output: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("{", "\\{").replace("}", "\\}").replace(".", "\\.")):
        check_output(output)


def test_custom_columns_rows() -> None:
    printer = check_output("custom-columns=NAME:.metadata.name,CPU:.status.capacity.cpu,ADDR:.status.addresses[*].address,X:.nope")
    assert printer is not None
    assert printer.document(NODES, NODES["items"]).splitlines() == [
        "NAME        CPU   ADDR                  X",
        "127.0.0.1   4     127.0.0.1             <none>",
        "127.0.0.2   8     127.0.0.2,127.0.0.3   <none>",
    ]


def test_an_execution_error_names_the_template() -> None:
    printer = check_output("jsonpath={.items[7]}")
    assert printer is not None
    with pytest.raises(SandboxError, match=r'error executing jsonpath "\{.items\[7\]\}": Error executing template: '
                                           r"array index out of bounds: index 7, length 2"):
        printer.document(NODES, NODES["items"])


def test_get_with_templates(root: Root) -> None:  # noqa: F811 - the fixture
    root.write(pod_state("web"))
    root.write(pod_state("db"))
    names = root.run("get", "pods", "-o", "jsonpath={range .items[*]}{.metadata.name}:{.status.phase}{\"\\n\"}{end}")
    assert names.returncode == 0, names.stderr
    assert names.stdout == "db:Running\nweb:Running\n"
    one = root.run("get", "pod", "web", "-o=jsonpath={.metadata.name} {.spec.containers[0].name}")
    assert one.stdout == "web app"  # one named pod: the Pod itself, as kubectl
    table = root.run("get", "pods", "-o", "custom-columns=NAME:.metadata.name,IP:status.podIP,C:{.spec.containers[*].name}")
    assert table.stdout.splitlines() == ["NAME   IP          C", "db     10.89.0.7   app", "web    10.89.0.7   app"]
    as_json = root.run("get", "pods", "-o", "jsonpath-as-json={.items[*].metadata.name}")
    assert json.loads(as_json.stdout) == ["db", "web"]
    bad = root.run("get", "pods", "-o", "jsonpath={.items[0].metadata.name")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr == "error: error parsing jsonpath {.items[0].metadata.name, unclosed action\n"
    out_of_range = root.run("get", "pods", "-o", "jsonpath={.items[5].metadata.name}")
    assert out_of_range.returncode == 1 and "array index out of bounds: index 5, length 2" in out_of_range.stderr
    empty = root.run("-n", "none", "get", "pods", "-o", "jsonpath={.items[*].metadata.name}")
    assert empty.returncode == 0 and empty.stdout == "" and empty.stderr == ""


def test_allow_missing_template_keys_false_makes_a_missing_field_an_error() -> None:
    from sandbox.cli.printers import parse_bool

    printer = check_output("jsonpath={.metadata.nope}")
    assert printer is not None
    doc = {"metadata": {"name": "web"}}
    assert printer.document(doc, [doc]) == ""
    with pytest.raises(SandboxError, match=r'error executing jsonpath "\{\.metadata\.nope\}": Error executing '
                                           r"template: nope is not found"):
        printer.document(doc, [doc], allow_missing=False)
    columns = check_output("custom-columns=N:.metadata.nope")
    assert columns is not None and "<none>" in columns.document(doc, [doc], allow_missing=False)
    assert (parse_bool("false"), parse_bool("T"), parse_bool("1")) == (False, True, True)
    with pytest.raises(UsageError, match='strconv.ParseBool: parsing "maybe": invalid syntax'):
        parse_bool("maybe")


def test_jsonpath_file_reads_the_template_from_a_file(tmp_path: object) -> None:
    from pathlib import Path

    template = Path(str(tmp_path)) / "names.jsonpath"
    template.write_text('{range .items[*]}{.metadata.name}{"\\n"}{end}')
    printer = check_output(f"jsonpath-file={template}")
    assert printer is not None and printer.kind == "jsonpath"
    doc = {"items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}
    assert printer.document(doc, doc["items"]) == "a\nb\n"
    with pytest.raises(UsageError, match="error reading --template .*nope, No such file or directory"):
        check_output(f"jsonpath-file={template.parent / 'nope'}")
