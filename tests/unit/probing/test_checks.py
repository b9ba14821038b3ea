"""tcpSocket and sleep checks, and the reference selector driver, against real loopback sockets."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable

import pytest

from sandbox.probing.checks import Check, SleepCheck, TcpCheck, rewatch, run_check, run_checks, unwatch
from sandbox.probing.outcome import ERROR, FAILURE, SUCCESS, Outcome

SocketFactory = Callable[[int, int], socket.socket]


def test_tcp_connect_is_success_even_if_closed_at_once(
        open_socket: SocketFactory, silent_listener: int) -> None:
    assert run_check(TcpCheck(open_socket, "127.0.0.1", silent_listener, 1)) == Outcome(SUCCESS)


def test_tcp_refused_fails_with_the_go_dial_error(open_socket: SocketFactory, closed_port: int) -> None:
    outcome = run_check(TcpCheck(open_socket, "127.0.0.1", closed_port, 1))
    assert outcome == Outcome(FAILURE, f"dial tcp 127.0.0.1:{closed_port}: connect: connection refused")


def test_tcp_timeout_when_the_syn_is_never_answered(
        open_socket: SocketFactory, full_backlog_port: int) -> None:
    began = time.monotonic()
    outcome = run_check(TcpCheck(open_socket, "127.0.0.1", full_backlog_port, 0.3))
    assert outcome == Outcome(FAILURE, f"dial tcp 127.0.0.1:{full_backlog_port}: i/o timeout")
    assert 0.25 < time.monotonic() - began < 1.0


def test_tcp_over_ipv6_loopback(open_socket: SocketFactory) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        listener = socket.socket(socket.AF_INET6)
        listener.bind(("::1", 0))
    except OSError as exc:
        listener.close()
        pytest.skip(f"no IPv6 loopback: {exc}")
    with listener:
        listener.listen(1)
        assert run_check(TcpCheck(open_socket, "::1", listener.getsockname()[1], 1)).status == SUCCESS


def test_a_host_name_is_an_error_not_a_blocking_lookup(open_socket: SocketFactory) -> None:
    outcome = run_check(TcpCheck(open_socket, "localhost", 80, 1))
    assert outcome.status == ERROR and "not an IP address" in outcome.output


def test_a_failing_socket_factory_is_an_error() -> None:
    def no_netns(family: int, type_: int) -> socket.socket:
        raise OSError(3, "No such process")

    outcome = run_check(TcpCheck(no_netns, "127.0.0.1", 80, 1))
    assert outcome.status == ERROR and "pod network namespace" in outcome.output


def test_the_checker_makes_the_socket_non_blocking(silent_listener: int) -> None:
    made: list[socket.socket] = []

    def factory(family: int, type_: int) -> socket.socket:
        made.append(socket.socket(family, type_))  # blocking, as a native helper may hand it over
        return made[-1]

    check = TcpCheck(factory, "127.0.0.1", silent_listener, 1)
    check.start(time.monotonic())
    assert made[0].getblocking() is False
    check.close()
    check.close()  # idempotent


def test_sleep_hook_completes_at_its_deadline_with_success() -> None:
    began = time.monotonic()
    assert run_check(SleepCheck(0.2)) == Outcome(SUCCESS)
    assert 0.2 <= time.monotonic() - began < 0.5
    assert SleepCheck(0).start(0.0) == Outcome(SUCCESS)


def test_sleep_check_has_no_fds_and_a_deadline() -> None:
    check = SleepCheck(5)
    assert check.start(100.0) is None
    assert (check.interest(), check.deadline) == ([], 105.0)


def test_run_checks_drives_mixed_checks_in_one_loop(
        open_socket: SocketFactory, silent_listener: int, closed_port: int) -> None:
    checks: list[Check] = [SleepCheck(0.1), TcpCheck(open_socket, "127.0.0.1", silent_listener, 1),
                           TcpCheck(open_socket, "127.0.0.1", closed_port, 1)]
    assert [o.status for o in run_checks(checks)] == [SUCCESS, SUCCESS, FAILURE]


def test_rewatch_survives_a_reused_fd_number(open_socket: SocketFactory, silent_listener: int) -> None:
    """A check's new socket can get the number of one it just closed: rewatch must leave the
    selector watching the new one."""
    with selectors.DefaultSelector() as selector:
        first = TcpCheck(open_socket, "127.0.0.1", silent_listener, 1)
        first.start(time.monotonic())
        fds = rewatch(selector, first, [])
        first.close()  # epoll forgets the fd by itself
        second = TcpCheck(open_socket, "127.0.0.1", silent_listener, 1)
        second.start(time.monotonic())
        assert second.interest()[0][0] == fds[0]  # the kernel reused the number
        fds = rewatch(selector, second, fds)
        ready = selector.select(1)
        assert [key.data for key, _ in ready] == [second]
        unwatch(selector, fds)
        second.close()


def test_a_port_name_no_container_port_has_errors_as_the_kubelet_words_it() -> None:
    # ResolveContainerPort: the name, else strconv.Atoi of it, whose error the event carries.
    from sandbox.probing.outcome import Outcome
    from sandbox.process.request import Identity
    from sandbox.supervisor.probes import CheckContext, _port

    ctx = CheckContext(spawner=None, main_pidfd=-1, pod_pidfd=-1, env=(), cwd="/", ports={"http": 8080},
                       identity=Identity())
    assert _port("http", ctx) == 8080 and _port("9090", ctx) == 9090 and _port(80, ctx) == 80
    missing = _port("nope", ctx)
    assert isinstance(missing, Outcome) and missing.output == 'strconv.Atoi: parsing "nope": invalid syntax'


def test_an_exec_probe_past_its_timeout_fails_in_the_kubelets_words() -> None:
    # remote_runtime.go ExecSync on DeadlineExceeded: `command %q timed out`, the argv joined by spaces
    from sandbox.process.exec_check import ExecCheck

    check = ExecCheck(spawner=None, main_pidfd=-1, argv=["sh", "-c", 'sleep 5; echo "done"'], env=[], cwd="/",  # type: ignore[arg-type]
                      timeout=1)
    outcome = check.on_timeout(0.0)
    assert outcome.status == FAILURE
    assert outcome.output == 'command "sh -c sleep 5; echo \\"done\\"" timed out'


def test_an_exec_hooks_failure_is_the_cri_clients_error_beside_its_output() -> None:
    # cri-client ExecSync: "command '<argv joined>' exited with N: <stderr>"; RunInContainer's
    # output is stdout then stderr (not interleaved), which the hook's wording quotes apart
    from sandbox.process.exec_check import ExecCheck

    check = ExecCheck(spawner=None, main_pidfd=-1, argv=["sh", "-c", "echo out; echo err >&2; exit 3"],  # type: ignore[arg-type]
                      env=[], cwd="/", timeout=1, hook=True)
    check.stderr += b"err\n"
    check.stdout += b"out\n"
    assert check.result(3) == Outcome(FAILURE, "command 'sh -c echo out; echo err >&2; exit 3' exited with 3: err\n",
                                      message="out\nerr\n")
    assert check.result(0) == Outcome(SUCCESS, "out\nerr\n")


def test_an_exec_probes_failure_is_its_output_alone_stdout_first() -> None:
    from sandbox.process.exec_check import OUTPUT_LIMIT, ExecCheck

    check = ExecCheck(spawner=None, main_pidfd=-1, argv=["sh"], env=[], cwd="/", timeout=1)  # type: ignore[arg-type]
    check.stderr += b"err\n"
    check.stdout += b"out\n"
    assert check.result(1) == Outcome(FAILURE, "out\nerr\n")
    check.stdout[:] = b"x" * OUTPUT_LIMIT
    assert check.result(1).output == "x" * OUTPUT_LIMIT  # pkg/probe/exec keeps 10 KiB of the whole
