"""The fast argument reader (sandbox/cli/fastargs.py) against argparse: the same values for every
command line it reads, None (argparse then reads it) for all others, and its tables in step with
the parsers."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

import pytest

from sandbox.cli import _fast_args, build_parser, fastargs, main
from sandbox.cli import exec as exec_verb

READ = [
    ["exec", "web"],
    ["exec", "web", "-c", "app"],
    ["exec", "-c", "app", "web"],
    ["exec", "web", "--container", "app"],
    ["exec", "web", "--container=app"],
    ["exec", "web", "-capp"],
    ["exec", "web", "-c", ""],
    ["exec", "-i", "-t", "web"],
    ["exec", "-it", "web"],
    ["exec", "-ti", "web"],
    ["exec", "web", "-it", "-c", "app"],
    ["exec", "web", "-itc", "app"],
    ["exec", "web", "-itcapp"],
    ["exec", "web", "-tic", "app"],
    ["exec", "--stdin", "--tty", "web"],
    ["exec", "-i", "-i", "web"],
    ["exec", "web", "-c", "a", "-c", "b"],
    ["exec", "web", "--trace"],
    ["exec", "web", "--trace=json"],
    ["exec", "--trace=json", "--trace", "web"],
    ["--root", "/r", "exec", "web"],
    ["--root=/r", "exec", "web"],
    ["-n", "ns", "exec", "web"],
    ["-nns", "exec", "web"],
    ["--namespace", "ns", "exec", "web"],
    ["--namespace=ns", "exec", "web"],
    ["-v", "--debug", "exec", "web"],
    ["--verbose", "exec", "web"],
    ["-vn", "ns", "exec", "web"],
    ["-n", "exec", "exec", "web"],
    ["--root", "/a", "--root", "/b", "-v", "-n", "x", "--debug", "exec", "-it", "web", "-c", "c", "--trace"],
    ["exec", "web.with.dots"],
    ["exec", "Bad_Name"],  # read as argparse reads it; check_arguments refuses it later
    ["exec", "a=b"],
]

LEFT_TO_ARGPARSE = [
    ["exec"],  # missing positional
    ["exec", "web", "extra"],
    ["exec", "-h"],
    ["exec", "web", "--help"],
    ["-h", "exec", "web"],
    ["exec", "web", "-ih"],
    ["exec", "web", "-c"],  # missing value
    ["exec", "web", "-c", "-i"],  # a value that looks like an option
    ["exec", "web", "-c=app"],
    ["exec", "web", "-ic=app"],
    ["exec", "web", "--container="],
    ["exec", "web", "--cont", "app"],  # an abbreviation argparse accepts
    ["exec", "web", "--std"],
    ["exec", "web", "--tty=yes"],
    ["exec", "web", "--trace=text"],
    ["exec", "web", "-x"],
    ["exec", "web", "-ix"],
    ["exec", "web", "-n", "ns"],  # a global option after the verb
    ["exec", "-5"],
    ["exec", "-"],
    ["--roo", "/r", "exec", "web"],
    ["--root", "exec", "web"],  # argparse takes "exec" as --root's value; the verb is then "web"
    ["--root"],
    ["get", "pods"],
    [],
]


def argparse_reads(argv: list[str], verb: str = "exec") -> dict[str, object] | str:
    """What argparse makes of argv: its namespace's values, or its exit (help or an error)."""
    try:
        return vars(build_parser(verb).parse_args(argv))
    except SystemExit as e:
        return f"exit {e.code}"


@pytest.mark.parametrize("argv", READ, ids=" ".join)
def test_fast_reader_reads_as_argparse(argv: list[str]) -> None:
    fast = fastargs.parse(argv, fastargs.GLOBAL, exec_verb.FAST)
    assert fast is not None
    assert vars(fast) == argparse_reads(argv)
    assert fast == argparse.Namespace(**vars(fast))


@pytest.mark.parametrize("argv", LEFT_TO_ARGPARSE, ids=lambda argv: " ".join(argv) or "(empty)")
def test_unusual_lines_are_left_to_argparse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert fastargs.parse(argv, fastargs.GLOBAL, exec_verb.FAST) is None
    argparse_reads(argv)  # it does not crash on any of them
    capsys.readouterr()


def test_help_and_errors_are_argparse_own(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["exec", "-h"], ["exec", "web", "-c"], ["exec", "web", "--bogus"]):
        with pytest.raises(SystemExit) as through_main:
            main([*argv, "--", "true"])
        ours = capsys.readouterr()
        with pytest.raises(SystemExit) as plain:
            build_parser("exec").parse_args(argv)
        assert (through_main.value.code, ours) == (plain.value.code, capsys.readouterr())
        if argv[-1] == "-h":
            assert ours.out.startswith("usage: sandbox exec [-h] [-c CONTAINER] [-i] [-t] [--trace] name")
    assert "sandbox: error: unrecognized arguments: --bogus" in ours.err


def _table(parser: argparse.ArgumentParser) -> tuple[dict[str, str], list[str]]:
    options = {s: a.dest for a in parser._actions for s in a.option_strings if a.dest != "help"}
    positionals = [a.dest for a in parser._actions if not a.option_strings and a.dest != "verb"]
    return options, positionals


def test_tables_match_the_parsers() -> None:
    """An option added to a parser but not to its table would be refused by neither reader but
    read differently: the tables list exactly the parsers' option strings and dests."""
    parser = build_parser("exec")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["exec"]
    for table, p in ((fastargs.GLOBAL, parser), (exec_verb.FAST, sub)):
        options, positionals = _table(p)
        assert {s: entry[0] for s, entry in table.options.items()} == options
        assert list(table.positionals) == positionals


def test_fast_path_loads_neither_argparse_nor_pathlib(tmp_path: object) -> None:
    """The point of it all: a plain `sandbox exec` up to reading the pod's state imports none of
    argparse, pathlib, shutil, re, enum or json (the pod is missing here, so it stops at "not found")."""
    code = ("import sys; from sandbox.cli import main; code = main(['--root', sys.argv[1], 'exec', 'nopod', "
            "'--', 'true']); print(code, sorted({'argparse', 'pathlib', 'shutil', 'locale', 're', 'enum', 'json'} & set(sys.modules)))")
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_ROOT"}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                          check=True)
    assert done.stdout.split("\n")[0] == "1 []"
    assert 'pods "nopod" not found in namespace "default"' in done.stderr


def test_main_uses_the_fast_reader_for_exec() -> None:
    args = _fast_args(["-n", "ns", "exec", "-it", "web"], "exec")
    assert args is not None
    assert (args.namespace, args.name, args.stdin, args.tty, args.handler) == ("ns", "web", True, True,
                                                                              exec_verb.handle)


def test_append_and_converters() -> None:
    """What `run` needs beyond exec: APPEND options and converted values (argparse type=)."""
    verb = fastargs.FastVerb("run", {
        "--insecure-registry": ("insecure_registry", fastargs.APPEND, None),
        "--probe-scale": ("probe_scale", fastargs.VALUE, float),
        "-d": ("detach", fastargs.FLAG, True),
    }, {"insecure_registry": [], "probe_scale": 1.0, "detach": False}, positionals=("file",))
    args = fastargs.parse(["run", "p.yaml", "--insecure-registry", "a", "--insecure-registry=b",
                           "--probe-scale", "0.5"], fastargs.GLOBAL, verb)
    assert args is not None
    assert (args.insecure_registry, args.probe_scale, args.detach, args.file) == (["a", "b"], 0.5, False, "p.yaml")
    assert fastargs.parse(["run", "p.yaml", "--probe-scale", "fast"], fastargs.GLOBAL, verb) is None
    again = fastargs.parse(["run", "p.yaml"], fastargs.GLOBAL, verb)
    assert again is not None and again.insecure_registry == [] and again.insecure_registry is not args.insecure_registry


@pytest.mark.parametrize("root,env", [(None, None), (None, "/env/root"), ("/abs/root", "/env/root"), ("rel/root", None),
                                      ("", None), ("/a//b/./c", None)])
def test_the_plain_state_path_is_the_layouts(root: str | None, env: str | None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """exec's pathlib-free state path names the same file as RootLayout's (the string may keep
    "." and "//", which the kernel resolves as Path drops them)."""
    from sandbox.paths import RootLayout, pod_state_file
    from sandbox.state.store import STATE_FILE

    if env is None:
        monkeypatch.delenv("SANDBOX_ROOT", raising=False)
    else:
        monkeypatch.setenv("SANDBOX_ROOT", env)
    plain = pod_state_file(root, "ns", "web")
    assert os.path.normpath(plain) == str(RootLayout.from_root(root).pod_state_dir("ns", "web") / STATE_FILE)
    with pytest.raises(ValueError):
        pod_state_file(root, "ns", "a/../../b")


# --- `sandbox run`'s table (sandbox/cli/run.py FAST), and the node options `run -d` compares ---

run_verb = importlib.import_module("sandbox.cli.run")  # `from sandbox.cli import run` is cli's run()
agent_verb = importlib.import_module("sandbox.cli.agent")

RUN_READ = [
    ["run", "pod.yaml"],
    ["run", "-d", "pod.yaml"],
    ["run", "--detach", "pod.yaml"],
    ["run", "-q", "--rm", "pod.yaml"],
    ["run", "-dq", "pod.yaml"],
    ["run", "pod.yaml", "--network", "none"],
    ["run", "--network=none", "pod.yaml"],
    ["run", "--trace", "pod.yaml"],
    ["run", "--trace=json", "-q", "pod.yaml"],
    ["run", "pod.yaml", "--probe-scale", "0.1", "--backoff-initial", "1s", "--backoff-max=5s"],
    ["run", "pod.yaml", "--pod-pids-limit", "100", "--cgroup-parent", "x", "--cgroup-driver", "cgroupfs"],
    ["run", "pod.yaml", "--insecure-registry", "a:5000", "--insecure-registry=b", "--registry-config", "/d"],
    ["run", "pod.yaml", "--no-host-path", "--masquerade", "--keep-bridge", "--bridge", "br9", "--pod-cidr",
     "10.9.0.0/16"],
    ["run", "pod.yaml", "--cni-conf-dir", "/c", "--cni-bin-dir", "/a:/b", "--container-log-max-size", "1Mi",
     "--container-log-max-files", "3", "--eviction-interval", "1s", "--registry-credentials", "/f"],
    ["--root", "/r", "-n", "ns", "-v", "run", "-q", "pod.yaml"],
]

RUN_LEFT_TO_ARGPARSE = [
    ["run"],
    ["run", "a.yaml", "b.yaml"],
    ["run", "-h"],
    ["run", "pod.yaml", "--pod-pids-limit", "-1"],  # a value that looks like an option
    ["run", "pod.yaml", "--probe-scale", "fast"],  # argparse's own "invalid float value"
    ["run", "pod.yaml", "--netw", "none"],  # an abbreviation argparse accepts
    ["run", "pod.yaml", "--bogus"],
    ["run", "-"],
]


@pytest.mark.parametrize("argv", RUN_READ, ids=" ".join)
def test_run_lines_read_as_argparse_reads_them(argv: list[str]) -> None:
    fast = fastargs.parse(argv, fastargs.GLOBAL, run_verb.FAST)
    assert fast is not None
    assert vars(fast) == argparse_reads(argv, "run")


@pytest.mark.parametrize("argv", RUN_LEFT_TO_ARGPARSE, ids=lambda argv: " ".join(argv) or "(empty)")
def test_other_run_lines_are_left_to_argparse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert fastargs.parse(argv, fastargs.GLOBAL, run_verb.FAST) is None
    argparse_reads(argv, "run")
    capsys.readouterr()


def test_run_table_matches_its_parser() -> None:
    parser = build_parser("run")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    options = {s: a.dest for a in sub._actions for s in a.option_strings if a.dest != "help"}
    assert {s: entry[0] for s, entry in run_verb.FAST.options.items()} == options
    defaults = {a.dest: a.default for a in sub._actions if a.option_strings and a.dest != "help"}
    assert {dest: run_verb.FAST.defaults[dest] for dest in defaults} == defaults


def test_node_argv_lists_the_options_given_in_the_parser_order() -> None:
    args = fastargs.parse(["run", "-d", "p.yaml", "--network", "none", "--insecure-registry", "a",
                           "--insecure-registry", "b", "--no-host-path", "--backoff-max", "300s"],
                          fastargs.GLOBAL, run_verb.FAST)
    assert args is not None
    # --backoff-max 300s is the default: not an option given as far as the agent is concerned
    assert agent_verb._node_argv(args) == ["--no-host-path", "--network", "none", "--insecure-registry", "a",
                                           "--insecure-registry", "b"]
    assert agent_verb._node_argv(argparse.Namespace(**vars(args))) == agent_verb._node_argv(args)


def test_the_default_pod_subnet_is_what_the_pod_cidr_check_would_keep() -> None:
    """The default must be exactly what the --pod-cidr check (network.config.Subnet4, no
    ipaddress import on the hot path) accepts and normalises to."""
    import ipaddress

    from sandbox.network.config import DEFAULT_SUBNET

    subnet = ipaddress.ip_network(DEFAULT_SUBNET)
    assert str(subnet) == DEFAULT_SUBNET
    assert subnet.version == 4 and subnet.prefixlen <= 30


@pytest.mark.parametrize("cidr, message", [("10.9.0.1/16", "^--pod-cidr: "), ("fd00::/64", "IPv4 subnet"),
                                           ("10.9.0.0/31", "IPv4 subnet")])
def test_a_pod_cidr_other_than_the_default_is_still_checked(cidr: str, message: str) -> None:
    import argparse

    from sandbox.cli.run import _network_options
    from sandbox.errors import UsageError

    args = argparse.Namespace(network="bridge", bridge="", pod_cidr=cidr, masquerade=False, keep_bridge=False)
    with pytest.raises(UsageError, match=message):
        _network_options(args)


# --- `sandbox image pull`'s table (sandbox/cli/image.py FAST): the other image commands go to argparse ---

image_verb = importlib.import_module("sandbox.cli.image")

PULL_READ = [
    ["image", "pull", "busybox"],
    ["image", "pull", "127.0.0.1:5000/a/b:1"],
    ["--root", "/r", "image", "pull", "busybox"],
    ["image", "pull", "busybox", "--insecure-registry", "h:1", "--insecure-registry=h2"],
    ["image", "pull", "--registry-config", "/etc/x", "busybox", "--registry-credentials=/c.json"],
    ["-v", "image", "pull", "busybox@sha256:" + "a" * 64],
]

PULL_LEFT_TO_ARGPARSE = [
    ["image", "ls"],
    ["image", "rm", "busybox"],  # two words, as `pull REF`: never read as a pull
    ["image", "inspect", "busybox"],
    ["image", "tag", "a", "b"],
    ["image", "pull"],
    ["image", "pull", "a", "b"],
    ["image", "pull", "-h"],
    ["image", "pull", "busybox", "--insecure"],  # an abbreviation argparse accepts
    ["image", "--insecure-registry", "h", "pull", "busybox"],  # an option of pull before it
    ["image", "pull", "busybox", "--registry-config"],
    ["image"],
]


def test_image_pull_reads_as_argparse() -> None:
    for argv in PULL_READ:
        fast = _fast_args(argv, "image")
        assert fast is not None, argv
        assert vars(fast) == argparse_reads(argv, "image"), argv
    args = _fast_args(PULL_READ[0], "image")
    assert args is not None and args.handler is image_verb.handle_pull


def test_other_image_lines_are_left_to_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in PULL_LEFT_TO_ARGPARSE:
        assert _fast_args(argv, "image") is None, argv
        argparse_reads(argv, "image")
    capsys.readouterr()


def test_image_pull_table_matches_its_parser() -> None:
    parser = build_parser("image")
    image = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["image"]
    pull = next(a for a in image._actions if isinstance(a, argparse._SubParsersAction)).choices["pull"]
    options, positionals = _table(pull)
    assert {s: entry[0] for s, entry in image_verb.FAST.options.items()} == options
    assert list(image_verb.FAST.positionals) == positionals
