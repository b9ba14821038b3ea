"""Stage 1 exec'd rather than forked (native/sbx.h, sbx_spawn_start_exec): the runtime's memory
is never marked copy-on-write by a spawn, and the helper trusts nothing it is sent."""

from __future__ import annotations

import gc
import os
import resource
import socket

import pytest

from sandbox import native
from sandbox.native import SpawnRequest
from sandbox.process.spawner import DirectSpawner

pytestmark = pytest.mark.root

HELPER = native.stage1_helper()


def _faults_touching_every_object() -> int:
    """Minor faults while every object the collector tracks is read (a refcount write each)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in gc.get_objects():
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _spawn_true(spawner: DirectSpawner) -> None:
    process = spawner.spawn(SpawnRequest(argv=["/bin/true"], env=[], stage_name="test"))
    try:
        assert process.wait().exit_code == 0
    finally:
        process.close()


def test_the_shim_is_built_as_the_stage_one_helper() -> None:
    assert HELPER is not None and DirectSpawner().helper == HELPER


def test_an_exec_spawn_leaves_the_runtime_pages_alone() -> None:
    """A fork write-protects every page of this (large) process, and each later write faults; the
    exec'd stage 1 shares nothing, so touching everything costs (nearly) no faults afterwards."""
    _faults_touching_every_object()
    _spawn_true(DirectSpawner(exec_stage1=False))
    forked = _faults_touching_every_object()
    _spawn_true(DirectSpawner())
    exec_stage1 = _faults_touching_every_object()
    assert forked > 200, f"the fork path should have faulted: {forked}"
    assert exec_stage1 < forked / 10, (exec_stage1, forked)


def test_stage_two_is_the_caller_s_child() -> None:
    process = DirectSpawner().spawn(SpawnRequest(argv=["/bin/sleep", "5"], env=[], stage_name="test"))
    try:
        with open(f"/proc/{process.pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        assert ppid == os.getpid()
    finally:
        process.send_signal(9)
        process.wait()
        process.close()


@pytest.mark.parametrize("fds", [0, 1], ids=["no-request", "garbage-request"])
def test_a_bad_request_ends_the_helper_with_no_child(fds: int) -> None:
    children = f"/proc/{os.getpid()}/task/{os.getpid()}/children"
    with open(children) as f:
        before = f.read().split()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    memfd = os.memfd_create("garbage")
    os.write(memfd, b"\xff" * 4096)
    try:
        # as sbx_spawn_start_exec starts it: the channel at fd 3, nothing else
        pid = os.posix_spawn(HELPER or "", [HELPER or "", "--stage1"], {},
                             file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
        theirs.close()
        if fds:
            socket.send_fds(ours, [b"R"], [memfd])
        else:
            ours.send(b"R")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 127
        ours.settimeout(5)
        assert ours.recv(64) == b"", "the helper reported something (or a stage 2 holds the channel)"
    finally:
        ours.close()
        os.close(memfd)
    with open(children) as f:
        assert f.read().split() == before, "a stage 2 of the garbled request"
