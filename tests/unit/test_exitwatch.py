"""The foreground rule's taskstats listener without a kernel: messages built by hand, the socket
filter run by a small classic-BPF interpreter, and the order rule (a SIGKILL after the main
process's own record) on a fake socket."""

from __future__ import annotations

import errno
import struct
import sys

import pytest

from sandbox import events
from sandbox.process import exitwatch as xw
from sandbox.process.exitwatch import (
    ExitWatch,
    TaskExit,
    family_id,
    filter_program,
    killed_after,
    parse_exits,
)

FAMILY = 31
RUNTIME = 4000
KILLED = 9  # wait status of a SIGKILLed process
EXITED_0 = 0
EXITED_3 = 3 << 8


def attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def stats(pid: int, ppid: int, status: int, comm: bytes = b"sleep", size: int = 560) -> bytes:
    """A struct taskstats (version 16 is 560 bytes) with the fields the watcher reads."""
    body = bytearray(size)
    struct.pack_into("=HxxI", body, 0, 16, status)
    body[80:80 + len(comm)] = comm
    struct.pack_into("=II", body, 128, pid, ppid)
    return bytes(body)


def nlmsg(kind: int, payload: bytes, seq: int = 0) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, 0, seq, 0) + payload


def record_msg(pid: int, ppid: int, status: int, comm: bytes = b"sleep", *, group: bool = False) -> bytes:
    """TASKSTATS_CMD_NEW as taskstats_exit() builds it: AGGR_PID {PID, STATS}, and for the last
    thread of a multi-threaded group AGGR_TGID {TGID, STATS} too."""
    body = attr(4, attr(1, struct.pack("=I", pid)) + attr(3, stats(pid, ppid, status, comm)))
    if group:
        body += attr(5, attr(2, struct.pack("=I", pid)) + attr(3, stats(pid, ppid, 0, comm)))
    return nlmsg(FAMILY, struct.pack("=BBH", 2, 1, 0) + body)


def ack(seq: int, error: int = 0) -> bytes:
    return nlmsg(2, struct.pack("=i", -error) + struct.pack("=IHHII", 36, FAMILY, 5, seq, 0), seq)


# --- parsing -------------------------------------------------------------------------------------


def test_a_record_gives_pid_parent_status_and_command() -> None:
    assert parse_exits(record_msg(101, 100, KILLED, b"sleep"), FAMILY) == [TaskExit(101, 100, KILLED, "sleep")]


def test_the_group_total_of_a_threaded_process_is_not_a_second_record() -> None:
    assert parse_exits(record_msg(101, 100, EXITED_0, b"java", group=True), FAMILY) == [
        TaskExit(101, 100, EXITED_0, "java")]


@pytest.mark.parametrize("data", [
    record_msg(101, 100, KILLED)[:60],  # cut short
    nlmsg(FAMILY + 1, record_msg(101, 100, KILLED)[16:]),  # another family
    ack(2),
    b"",
    nlmsg(FAMILY, struct.pack("=BBH", 2, 1, 0) + attr(4, attr(1, b"\0\0\0\0") + attr(3, b"\0" * 100))),  # old struct
])
def test_anything_else_is_skipped(data: bytes) -> None:
    assert parse_exits(data, FAMILY) == []


def test_the_family_id_comes_from_the_controller_reply() -> None:
    reply = nlmsg(0x10, struct.pack("=BBH", 1, 2, 0) + attr(2, b"TASKSTATS\0") + attr(1, struct.pack("=H", 31)))
    assert family_id(reply) == 31


def test_a_kernel_without_taskstats_answers_enoent() -> None:
    with pytest.raises(OSError) as raised:
        family_id(ack(1, errno.ENOENT))
    assert raised.value.errno == errno.ENOENT


def test_the_registration_ack_is_found_by_sequence_number() -> None:
    assert xw.ack_error(ack(2), 2) == 0
    assert xw.ack_error(ack(2, errno.EPERM), 2) == errno.EPERM
    assert xw.ack_error(ack(7), 2) is None
    assert xw.ack_error(record_msg(1, 2, 0), 2) is None


# --- the socket filter ---------------------------------------------------------------------------


def run_bpf(program: list[tuple[int, int, int, int]], packet: bytes) -> int:
    """The classic BPF subset the filter uses: absolute loads (big-endian, as the kernel's),
    jeq with a constant, return a constant. A load past the end drops the packet."""
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code in (xw.BPF_LD_H_ABS, xw.BPF_LD_W_ABS):
            size = 2 if code == xw.BPF_LD_H_ABS else 4
            if k + size > len(packet):
                return 0
            acc = int.from_bytes(packet[k:k + size], "big")
        elif code == xw.BPF_JEQ_K:
            pc += jt if acc == k else jf
        elif code == xw.BPF_RET_K:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.mark.parametrize(("packet", "kept"), [
    (record_msg(101, 100, KILLED), True),  # killed: maybe by a dying PID 1
    (record_msg(101, RUNTIME, EXITED_3), True),  # a main process (the runtime's child)
    (record_msg(101, RUNTIME, KILLED), True),
    (record_msg(101, 100, EXITED_0), False),  # the rest of the host
    (record_msg(101, 100, 15), False),  # SIGTERM is not the kernel's zap
    (record_msg(101, 100, KILLED << 8), False),  # exit(9) is not a SIGKILL
    (ack(2), True),  # our requests' answers
    (nlmsg(FAMILY, struct.pack("=BBH", 2, 1, 0) + attr(6, b"") + record_msg(1, 2, 0)[20:]), True),  # padded
])
def test_the_filter_keeps_kills_and_the_runtimes_children(packet: bytes, kept: bool) -> None:
    assert (run_bpf(filter_program(FAMILY, RUNTIME), packet) != 0) is kept


def test_filter_constants_follow_the_host_byte_order() -> None:
    program = filter_program(FAMILY, RUNTIME)
    assert program[-3][3] == int.from_bytes(RUNTIME.to_bytes(4, sys.byteorder), "big")
    assert all(0 <= jt < len(program) and 0 <= jf < len(program) for _, jt, jf, _ in program)


# --- the order rule ------------------------------------------------------------------------------


def rec(pid: int, ppid: int, status: int = KILLED, comm: str = "sleep") -> TaskExit:
    return TaskExit(pid, ppid, status, comm)


def test_the_tree_below_the_main_process_in_arrival_order() -> None:
    killed = [(1, rec(12, 11, comm="sleep")), (2, rec(11, 10, comm="sh")), (3, rec(13, 10)), (4, rec(99, 98))]
    assert [r.pid for r in killed_after(10, 0, killed)] == [12, 11, 13]


def test_kills_before_the_main_process_began_to_exit_do_not_count() -> None:
    """`sleep 100 & kill -9 $!; exit`: the child died while the main process still ran."""
    assert killed_after(10, 5, [(3, rec(11, 10)), (6, rec(12, 10))]) == [rec(12, 10)]


class FakeSocket:
    def __init__(self, datagrams: list[bytes | OSError]) -> None:
        self.datagrams = datagrams

    def recv(self, size: int, flags: int = 0) -> bytes:
        if not self.datagrams:
            raise BlockingIOError(errno.EAGAIN, "empty")
        item = self.datagrams.pop(0)
        if isinstance(item, OSError):
            raise item
        return item

    def fileno(self) -> int:
        return 99


def watch_over(*datagrams: bytes | OSError) -> ExitWatch:
    watch = ExitWatch(FakeSocket(list(datagrams)), FAMILY, RUNTIME, b"0-1")
    watch.drain()
    return watch


def test_the_seed_example_nohup_sleep_is_reported() -> None:
    watch = watch_over(record_msg(500, 400, EXITED_0, b"true"),  # unrelated host exit, dropped by the filter
                       record_msg(10, RUNTIME, EXITED_0, b"sh"), record_msg(11, 10, KILLED, b"sleep"))
    assert watch.exit_status(10) == EXITED_0
    assert watch.outlived(10) == [(11, "sleep")]


def test_a_script_that_ran_commands_in_sequence_is_not_reported() -> None:
    watch = watch_over(record_msg(11, 10, EXITED_0, b"true"), record_msg(12, 10, EXITED_0, b"sleep"),
                       record_msg(10, RUNTIME, EXITED_0, b"sh"))
    assert watch.outlived(10) == []


def test_a_main_process_never_seen_gives_nothing() -> None:
    watch = watch_over(record_msg(11, 10, KILLED))
    assert (watch.outlived(10), watch.exit_status(10)) == ([], None)


def test_two_containers_exiting_together_keep_their_own_children() -> None:
    watch = watch_over(record_msg(10, RUNTIME, EXITED_0), record_msg(20, RUNTIME, EXITED_0),
                       record_msg(21, 20, KILLED, b"b"), record_msg(11, 10, KILLED, b"a"))
    assert (watch.outlived(10), watch.outlived(20)) == ([(11, "a")], [(21, "b")])


def test_forget_releases_what_was_kept() -> None:
    watch = watch_over(record_msg(10, RUNTIME, EXITED_0), record_msg(11, 10, KILLED))
    watch.forget(10)
    assert watch.outlived(10) == [] and watch._killed == [] and watch._markers == {}


def test_kills_while_no_main_process_has_exited_are_not_kept() -> None:
    assert watch_over(record_msg(11, 10, KILLED))._killed == []


def test_a_full_receive_buffer_is_noted_and_reading_goes_on() -> None:
    watch = watch_over(OSError(errno.ENOBUFS, "full"), record_msg(10, RUNTIME, EXITED_0), record_msg(11, 10, KILLED))
    assert watch.lost and watch.outlived(10) == [(11, "sleep")]


def test_old_exits_of_the_runtimes_children_are_dropped_unless_watched() -> None:
    many = [record_msg(1000 + i, RUNTIME, EXITED_0) for i in range(xw.MARKERS_KEPT + 5)]
    watch = ExitWatch(FakeSocket([record_msg(10, RUNTIME, EXITED_0), *many]), FAMILY, RUNTIME, b"0")
    watch.watch(10)
    watch.drain()
    assert len(watch._markers) == xw.MARKERS_KEPT + 1 and watch.exit_status(10) == EXITED_0
    assert watch.exit_status(1000) is None


# --- the event -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "code", "says"), [
    ("Always", 0, "restarts it"),
    ("OnFailure", 1, "restarts it"),
    ("OnFailure", 0, "leaves it terminated (exit code 0)"),
    ("OnFailure", None, "restarts it if it exited non-zero"),
    ("Never", 0, "leaves it terminated"),
])
def test_the_event_says_what_restartpolicy_does(policy: str, code: int | None, says: str) -> None:
    kind, reason, message = events.background_process_killed("app", ["sleep"], policy, code)
    assert (kind, reason) == ("Warning", "BackgroundProcessKilled")
    assert f"restartPolicy {policy} {says}." in message and "(sleep)" in message


def test_a_crash_loop_folds_into_one_event() -> None:
    recorder = events.EventRecorder()
    for _ in range(3):
        recorder.record(*events.background_process_killed("app", ["sleep"], "Always", 0), obj="c", now=1.0)
    assert len(recorder) == 1 and recorder.events()[0].count == 3


@pytest.mark.parametrize("parents", [[RUNTIME, 4001], [RUNTIME, 4001, 4002, 4003]])
def test_the_filter_keeps_the_children_of_every_pod_shim(parents: list[int]) -> None:
    """The node agent's pods: their main processes are children of the pods' shims."""
    program = filter_program(FAMILY, parents)
    for parent in parents:
        assert run_bpf(program, record_msg(101, parent, EXITED_3)) != 0
    assert run_bpf(program, record_msg(101, 100, EXITED_0)) == 0
    assert run_bpf(program, record_msg(101, 100, KILLED)) != 0
    assert run_bpf(program, ack(2)) != 0
    assert all(0 <= jt < len(program) and 0 <= jf < len(program) for _, jt, jf, _ in program)
