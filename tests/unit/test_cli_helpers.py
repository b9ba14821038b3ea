"""CLI pieces that need no kernel: verb detection, kubectl's AGE, state descriptions, native
constants against the pure mount-plan module."""

from __future__ import annotations

import pytest

from sandbox.cli import _verb_of
from sandbox.cli.get import age
from sandbox.cli.run import describe_state


@pytest.mark.parametrize("argv,verb", [
    (["run", "pod.yaml"], "run"),
    (["--root", "/r", "-n", "ns", "exec", "p", "-c", "c"], "exec"),
    (["-v", "--debug", "get", "pods"], "get"),
    (["--help"], None),
    (["--root", "/r"], None),
    (["nonsense"], None),
])
def test_verb_of(argv: list[str], verb: str | None) -> None:
    assert _verb_of(argv) == verb


@pytest.mark.parametrize("seconds,text", [(5, "5s"), (119, "119s"), (125, "2m5s"), (180, "3m"), (3000, "50m"),
                                          (4 * 3600, "4h"), (3 * 86400, "3d")])
def test_age(seconds: float, text: str) -> None:
    assert age(seconds) == text


def test_describe_state() -> None:
    assert describe_state({"state": {"terminated": {"reason": "Error", "exitCode": 137}}}) == \
        "terminated (Error, exit code 137)"
    assert describe_state({"state": {"waiting": {"reason": "CrashLoopBackOff"}}}) == "waiting (CrashLoopBackOff)"
    assert describe_state({"state": {"running": {}}}) == "running"


def test_native_constants_match_the_plan() -> None:
    native = pytest.importorskip("sandbox._native", reason="the native core is not built")
    from sandbox.rootfs.plan import OpKind

    lib = native.lib
    kinds = {name: value for name, value in vars(OpKind).items() if name.isupper()}  # plain ints at run time
    assert {name: int(value) for name, value in kinds.items()} == {
        "ROOT": lib.SBX_OP_ROOT, "MOUNT": lib.SBX_OP_MOUNT, "BIND": lib.SBX_OP_BIND,
        "SYMLINK": lib.SBX_OP_SYMLINK, "MKDIR": lib.SBX_OP_MKDIR, "POD_MOUNT": lib.SBX_OP_POD_MOUNT,
            "MASK": lib.SBX_OP_MASK, "READONLY": lib.SBX_OP_READONLY, "BIND_BENEATH": lib.SBX_OP_BIND_BENEATH,
        "CHDIR": lib.SBX_OP_CHDIR}


def test_default_capability_mask_is_containerds() -> None:
    from sandbox.process import capabilities

    assert capabilities.mask(capabilities.DEFAULT) == capabilities.DEFAULT_MASK == 0xA80425FB
    assert capabilities.mask(["CAP_SYS_ADMIN"]) == 1 << 21
    with pytest.raises(ValueError):
        capabilities.mask(["NOPE"])


@pytest.mark.parametrize("value,label,subdomain", [
    ("web", True, True), ("web-1.example", False, True), ("Web", False, False), ("-web", False, False),
    ("a" * 63, True, True), ("a" * 64, False, True), (".".join(["a" * 63] * 4), False, False),
])
def test_dns_names(value: str, label: bool, subdomain: bool) -> None:
    from sandbox.names import is_dns_label, is_dns_subdomain

    assert (is_dns_label(value), is_dns_subdomain(value)) == (label, subdomain)
