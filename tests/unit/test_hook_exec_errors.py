"""A hook whose process could not start: the CRI client's error as the kubelet gets it from
containerd and runc (process/exec_check.cri_exec_error), built from the spawn's failure record."""

from __future__ import annotations

import errno

import pytest

from sandbox.errors import spawn_failure
from sandbox.process.exec_check import NOT_FOUND_OP, cri_exec_error, runc_start_error

EXEC_ID = "0123456789abcdef" * 4


@pytest.mark.parametrize(("op", "code", "path", "words"), [
    (NOT_FOUND_OP, errno.ENOENT, "nope", 'exec: "nope": executable file not found in $PATH'),
    ("execve", errno.ENOENT, "/bin/nope", 'exec: "/bin/nope": stat /bin/nope: no such file or directory'),
    ("execve", errno.EACCES, "/etc/passwd", 'exec: "/etc/passwd": permission denied'),
    ("execve", errno.ENOEXEC, "/bin/odd", "exec /bin/odd: exec format error"),
])
def test_runc_words_for_a_command_that_does_not_start(op: str, code: int, path: str, words: str) -> None:
    assert runc_start_error(spawn_failure(True, op, code, path)) == words


def test_a_set_up_step_keeps_its_op_in_go_words() -> None:
    failed = spawn_failure(False, "chdir workingDir", errno.ENOENT, "/work")
    assert runc_start_error(failed) == "chdir workingDir /work: no such file or directory"
    assert runc_start_error(spawn_failure(False, "setns", errno.EPERM, "")) == "setns: operation not permitted"


def test_the_cri_frame() -> None:
    text = cri_exec_error(spawn_failure(True, NOT_FOUND_OP, errno.ENOENT, "nope"), EXEC_ID)
    assert text == ("rpc error: code = Unknown desc = failed to exec in container: failed to start exec "
                    f'"{EXEC_ID}": OCI runtime exec failed: exec failed: unable to start container process: '
                    'exec: "nope": executable file not found in $PATH: unknown')
