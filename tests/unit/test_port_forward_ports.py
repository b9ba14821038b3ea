"""`sandbox port-forward`'s port forms (sandbox/cli/portforward.py), as kubectl reads them."""

from __future__ import annotations

import pytest

from sandbox.cli.portforward import named_ports, parse_port
from sandbox.errors import UsageError

NAMED = {"http": 8000}


@pytest.mark.parametrize(("text", "pair"), [
    ("8080:80", (8080, 80)), ("80", (80, 80)), (":80", (0, 80)), ("0:80", (0, 80)),
    ("9000:http", (9000, 8000)), ("http", (8000, 8000)), (":http", (0, 8000)),
])
def test_port_forms(text: str, pair: tuple[int, int]) -> None:
    assert parse_port(text, NAMED) == pair


@pytest.mark.parametrize(("text", "words"), [
    ("8080:grpc", "Pod does not have a named port 'grpc'"),
    ("8080:0", "Error parsing remote port '0'"),
    ("8080:65536", "Error parsing remote port '65536'"),
    ("70000:80", "Error parsing local port '70000'"),
    ("-1:80", "Error parsing local port '-1'"),
])
def test_bad_ports(text: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        parse_port(text, NAMED)


def test_named_ports_come_from_the_containers_tcp_ports() -> None:
    state = {"manifest": {"spec": {
        "initContainers": [{"name": "side", "ports": [{"name": "metrics", "containerPort": 9090}]}],
        "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8000},
                                               {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]}}}
    assert named_ports(state) == {"metrics": 9090, "http": 8000}


def test_addresses_are_ips_or_localhost_once_each_in_kubectls_order() -> None:
    import socket

    from sandbox.cli.portforward import ListenAddress, parse_addresses

    assert parse_addresses("localhost") == [ListenAddress("127.0.0.1", socket.AF_INET, True),
                                            ListenAddress("::1", socket.AF_INET6, True)]
    # localhost inside a list stands for the pair too; an address given twice listens once
    assert [a.host for a in parse_addresses("10.0.0.1,localhost,10.0.0.1,0.0.0.0,::")] == [
        "0.0.0.0", "10.0.0.1", "127.0.0.1", "::", "::1"]
    assert [a.localhost for a in parse_addresses("127.0.0.1,localhost")] == [False, True]


@pytest.mark.parametrize("text", ["web.local", "", "localhost,10.0.0.300"])
def test_an_address_that_is_no_ip_is_refused(text: str) -> None:
    from sandbox.cli.portforward import parse_addresses

    with pytest.raises(UsageError, match=r"is not a valid IP"):
        parse_addresses(text)


def test_a_kernel_without_ipv6_leaves_localhost_on_ipv4(monkeypatch: pytest.MonkeyPatch) -> None:
    """ipv6.disable=1: socket(AF_INET6) itself fails (EAFNOSUPPORT); localhost listens on
    127.0.0.1 alone, as kubectl goes on with one of the pair, and ::1 asked by IP is the port's
    failure, not an internal error."""
    import errno
    import socket

    from sandbox.cli.portforward import Forwarder, ListenError, parse_addresses

    real = socket.socket

    def no_ipv6(family: int = socket.AF_INET, *args: object, **kwargs: object) -> socket.socket:
        if family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return real(family, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "socket", no_ipv6)
    opened = Forwarder(-1, "web")._listen(parse_addresses("localhost"), 0)
    try:
        assert [s.getsockname()[0] for s in opened] == ["127.0.0.1"]
    finally:
        for s in opened:
            s.close()
    with pytest.raises(ListenError, match=r"Error listen tcp6 \[::1\]:0: bind: address family not supported"):
        Forwarder(-1, "web")._listen(parse_addresses("::1"), 0)
