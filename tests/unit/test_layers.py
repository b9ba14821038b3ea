"""The import direction of STYLE.md 2.2, checked by walking sandbox/ with ast: mechanism never
imports the spec, pure logic imports no third-party package, nothing imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sandbox"
PURE = ["sandbox/status.py", "sandbox/supervisor/policy.py", "sandbox/supervisor/backoff.py",
        "sandbox/rootfs/plan.py", "sandbox/logs/cri.py", "sandbox/spec/expand.py", "sandbox/record.py",
        "sandbox/images/reference.py", "sandbox/events.py", "sandbox/supervisor/snapshot.py",
        "sandbox/probing/worker.py", "sandbox/probing/outcome.py", "sandbox/process/capabilities.py",
        "sandbox/logs/rotation.py", "sandbox/process/request.py", "sandbox/spec/sysctls.py"]
MECHANISM = ["sandbox/native.py", "sandbox/images/store.py", "sandbox/rootfs/layers.py", "sandbox/state",
             "sandbox/logs/stream.py", "sandbox/logs/reader.py", "sandbox/process/spawner.py",
             "sandbox/process/leftovers.py", "sandbox/netns.py", "sandbox/probing", "sandbox/security"]
THIRD_PARTY = {"yaml", "cffi", "pyroute2", "prctl", "psutil"}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def files(spec: str) -> list[Path]:
    path = PACKAGE.parent / spec
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


@pytest.mark.parametrize("spec", PURE)
def test_pure_logic_imports_no_third_party_and_no_mechanism(spec: str) -> None:
    for path in files(spec):
        for name in imports_of(path):
            assert name.split(".")[0] not in THIRD_PARTY, (path, name)
            assert not name.startswith(("sandbox.native", "sandbox.state", "sandbox.supervisor.loop",
                                        "sandbox.cli", "sandbox._native")), (path, name)


@pytest.mark.parametrize("spec", MECHANISM)
def test_mechanism_never_imports_the_spec(spec: str) -> None:
    for path in files(spec):
        assert not any(n.startswith("sandbox.spec") for n in imports_of(path)), path


def test_nothing_imports_the_cli() -> None:
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.parts or path.name == "__main__.py":
            continue
        assert not any(n.startswith("sandbox.cli") for n in imports_of(path)), path


def test_errors_and_package_init_import_nothing_from_sandbox() -> None:
    for name in ("errors.py", "__init__.py", "log.py", "record.py", "names.py"):
        assert not any(n.startswith("sandbox") for n in imports_of(PACKAGE / name)), name


def test_yaml_only_in_the_loader() -> None:
    users = {p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*.py")
             if any(n.split(".")[0] == "yaml" for n in imports_of(p))}
    assert users <= {"sandbox/spec/load.py"}, users


def test_only_native_imports_the_compiled_core() -> None:
    users = {p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*.py")
             if any(n == "sandbox._native" or n.startswith("sandbox._native.") for n in imports_of(p))}
    assert users <= {"sandbox/native.py"}, users


def test_cffi_only_in_the_native_layer_and_the_libseccomp_binding() -> None:
    users = {p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*.py")
             if any(n.split(".")[0] == "cffi" for n in imports_of(p))}
    assert users <= {"sandbox/native.py", "sandbox/security/_libseccomp.py"}, users


def test_pyroute2_stays_out_of_the_runtime() -> None:
    """rtnetlink requests are sandbox/network/rtnl.py's: pyroute2's import (130-200 ms) would
    break the pod network's 5 ms budget on `sandbox run`'s path; tests use it from outside."""
    users = {p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*.py")
             if any(n.split(".")[0] == "pyroute2" for n in imports_of(p))}
    assert not users, users
