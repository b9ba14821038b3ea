"""`sandbox port-forward POD [LOCAL:]REMOTE...`: local ports forwarded into a pod, as kubectl's.

Each local listener (on --address, default localhost: 127.0.0.1 and ::1) accepts connections and
connects each one to `localhost:REMOTE` inside the pod's network namespace, as containerd's CRI
PortForward dials from the sandbox's namespace (tcp4, then tcp6): the pod is reached whatever its
network (`--network none` included), through a socket the native helper creates in pause's namespace
(sandbox/netns.py; the runtime never enters it itself). The ports' forms are kubectl's: `8080:80`,
`80` (the same port here), `:80` or `0:80` (a free port here, printed), and a REMOTE that names a
containerPort of the pod. Listening follows kubectl's failure modes: `localhost` needs one of
127.0.0.1 and ::1, an address given by IP must listen, and a port that cannot is reported ("Unable
to listen on port N: ...") while the others go on; none at all is an error. It runs until
Ctrl-C, or until the pod's sandbox ends ("lost connection to pod", exit 1). A connection the pod
refuses is reported and closed; the others go on.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NamedTuple

from sandbox.errors import SandboxError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any

LOCALHOST = "localhost"
CONNECT_TIMEOUT = 5  # seconds per family, containerd's dialTimeout


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("port-forward", help="forward local ports to a pod (kubectl port-forward)")
    p.add_argument("pod", metavar="[pod/]NAME", help="the pod")
    p.add_argument("ports", nargs="+", metavar="[LOCAL:]REMOTE",
                   help="8080:80, 80 (the same here), :80 (a free local port), or a containerPort's name")
    p.add_argument("--address", default=LOCALHOST,
                   help="addresses to listen on, comma-separated IPs or localhost (127.0.0.1 and ::1, either "
                        "enough); a port that cannot listen as asked is reported and the others go on")
    p.set_defaults(handler=handle)


def parse_port(text: str, named: dict[str, int]) -> tuple[int, int]:
    """(local, remote) of one `[LOCAL:]REMOTE`; local 0 is a free port."""
    local_text, colon, remote_text = text.partition(":")
    if not colon:
        local_text, remote_text = text, text
    remote = named.get(remote_text) if not remote_text.isdigit() else int(remote_text)
    if remote is None:
        raise UsageError(f"Pod does not have a named port '{remote_text}'" if remote_text else
                         f"Error parsing remote port '{remote_text}'")
    if not 0 < remote < 65536:
        raise UsageError(f"Error parsing remote port '{remote_text}': must be between 1 and 65535")
    if not colon and not remote_text.isdigit():
        local = remote  # a name alone: the same number here
    elif local_text in ("", "0"):
        local = 0
    elif local_text.isdigit() and 0 < int(local_text) < 65536:
        local = int(local_text)
    else:
        raise UsageError(f"Error parsing local port '{local_text}': must be between 0 and 65535")
    return local, remote


def named_ports(state: dict[str, Any]) -> dict[str, int]:
    """containerPort by name, over the pod's containers (kubectl's convertPodNamedPortToNumber)."""
    spec = (state.get("manifest") or {}).get("spec") or {}
    found: dict[str, int] = {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for port in c.get("ports") or []:
            if port.get("name") and (port.get("protocol") or "TCP") == "TCP":
                found.setdefault(str(port["name"]), int(port.get("containerPort") or 0))
    return found


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import pod_state
    from sandbox.errors import StateError
    from sandbox.state.proc import ProcessRef

    kind, slash, name = args.pod.partition("/")
    if slash and kind.lower() not in ("pod", "pods", "po"):
        raise UsageError(f"{args.pod!r}: port-forward works on pods (pod/NAME)")
    addresses = parse_addresses(args.address)
    name = name if slash else args.pod
    state = pod_state(args, name)
    phase = (state.get("status") or {}).get("phase")
    if phase != "Running":
        raise StateError(f"unable to forward port because pod is not running. Current status={phase}")
    pairs = [parse_port(p, named_ports(state)) for p in args.ports]
    ref = ProcessRef.from_json(state.get("pause"))
    pidfd = ref.open_pidfd() if ref else None
    if pidfd is None:
        raise StateError(f'unable to forward port: the sandbox of pod "{name}" is not running')
    try:
        return Forwarder(pidfd, name).run(addresses, pairs)
    finally:
        os.close(pidfd)


class ListenAddress(NamedTuple):
    host: str
    family: int
    localhost: bool  # one of the pair `localhost` stands for: either of the two is enough


class ListenError(SandboxError):
    """A port none of whose listeners could be made as kubectl's failure modes require."""


def parse_addresses(text: str) -> list[ListenAddress]:
    """--address as kubectl's parseAddresses: comma-separated IPs or `localhost` (127.0.0.1 and
    ::1), once each, in the order of their text (kubectl sorts them so)."""
    import ipaddress
    import socket

    found: dict[str, ListenAddress] = {}
    for item in text.split(","):
        if item == LOCALHOST:
            found.setdefault("127.0.0.1", ListenAddress("127.0.0.1", socket.AF_INET, True))
            found.setdefault("::1", ListenAddress("::1", socket.AF_INET6, True))
            continue
        try:
            ip = ipaddress.ip_address(item)
        except ValueError:
            raise UsageError(f"{item} is not a valid IP") from None
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        found[item] = ListenAddress(item, family, False)
    return [found[key] for key in sorted(found)]


def _join(host: str, port: int) -> str:
    """Go's net.JoinHostPort."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Forwarder:
    def __init__(self, pidfd: int, pod: str) -> None:
        self.pidfd = pidfd
        self.pod = pod

    def run(self, addresses: list[ListenAddress], pairs: list[tuple[int, int]]) -> int:
        import selectors

        listeners: dict[socket.socket, tuple[int, int]] = {}
        try:
            for local, remote in pairs:
                try:
                    opened = self._listen(addresses, local)
                except ListenError as e:  # kubectl goes on with the other ports
                    print(f"Unable to listen on port {local}: {e}", file=sys.stderr, flush=True)
                    continue
                for sock in opened:
                    host, port = sock.getsockname()[:2]
                    print(f"Forwarding from {_join(host, port)} -> {remote}", flush=True)
                    listeners[sock] = (port, remote)
            if not listeners:
                shown = " ".join(f"{{{local} {remote}}}" for local, remote in pairs)
                raise SandboxError(f"unable to listen on any of the requested ports: [{shown}]")
            with selectors.DefaultSelector() as selector:
                selector.register(self.pidfd, selectors.EVENT_READ, None)
                for sock in listeners:
                    selector.register(sock, selectors.EVENT_READ, sock)
                while True:
                    try:
                        ready = selector.select()
                    except KeyboardInterrupt:
                        return 0
                    for key, _ in ready:
                        if key.data is None:  # pause ended: the pod's network namespace is gone
                            print("error: lost connection to pod", file=sys.stderr)
                            return 1
                        self._accept(key.data, *listeners[key.data])
        except KeyboardInterrupt:
            return 0
        finally:
            for sock in listeners:
                sock.close()

    def _listen(self, addresses: list[ListenAddress], port: int) -> list[socket.socket]:
        """One port's listeners, kubectl's listenOnPort: the localhost pair (127.0.0.1, ::1) needs
        one of its two, an address given by IP needs all of them (ListenError otherwise; the
        port's listeners made are closed, where kubectl leaves them serving a port it reported
        as failed)."""
        import socket

        out: list[socket.socket] = []
        errors: list[str] = []
        localhost_ok = localhost_failed = other_failed = 0
        for listen in addresses:
            sock = None
            try:
                # inside: a kernel without IPv6 (ipv6.disable=1) refuses the socket itself
                sock = socket.socket(listen.family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if listen.family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((listen.host, port))
                sock.listen(128)
            except OSError as e:
                if sock is not None:
                    sock.close()
                tcp = "tcp6" if listen.family == socket.AF_INET6 else "tcp4"
                reason = (e.strerror or str(e))
                errors.append(f"unable to create listener: Error listen {tcp} {_join(listen.host, port)}: bind: "
                              f"{reason[:1].lower()}{reason[1:]}")
                if listen.localhost:
                    localhost_failed += 1
                else:
                    other_failed += 1
                continue
            localhost_ok += listen.localhost
            out.append(sock)
            port = sock.getsockname()[1]  # `:80`: every address listens on the port the first one got
        if (localhost_failed and not localhost_ok) or other_failed:
            for sock in out:
                sock.close()
            raise ListenError(f"Listeners failed to create with the following errors: [{' '.join(errors)}]")
        return out

    def _accept(self, listener: socket.socket, local: int, remote: int) -> None:
        import threading

        try:
            client, _ = listener.accept()
        except OSError:
            return
        print(f"Handling connection for {local}", flush=True)
        # dialled on a thread of its own, as kubectl's handleConnection: a pod that is slow to
        # answer (a full accept queue drops the SYN: up to 5 s per family) holds up nothing else
        threading.Thread(target=self._dial, args=(client, local, remote), daemon=True).start()

    def _dial(self, client: socket.socket, local: int, remote: int) -> None:
        import socket

        from sandbox.netns import NetnsSocketError, socket_in_netns

        # containerd's dialLocalhost: tcp4 first, then tcp6, one after the other from the pod's
        # namespace (a server on the pod's ::1 alone, as `localhost` binds for some, is reached)
        failures: list[str] = []
        upstream = None
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                sock = socket_in_netns(self.pidfd, family, socket.SOCK_STREAM)
            except NetnsSocketError as e:
                print(f"error: an error occurred forwarding {local} -> {remote}: {e}", file=sys.stderr)
                client.close()
                return
            try:
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect((host, remote))
                sock.settimeout(None)
            except OSError as e:
                sock.close()
                failures.append(f"{'IPv4' if family == socket.AF_INET else 'IPv6'}: {e.strerror or e}")
                continue
            upstream = sock
            break
        if upstream is None:
            print(f"error: an error occurred forwarding {local} -> {remote}: error forwarding port {remote} to pod "
                  f"{self.pod}: failed to connect to localhost:{remote} inside the pod's network namespace: "
                  f"{' '.join(failures)}", file=sys.stderr)
            client.close()
            return
        _Relay(client, upstream).start()


class _Relay:
    """One forwarded connection: a thread per direction; each passes its end of file on
    (half-close), and the second to finish closes both sockets."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        import threading

        self.sockets = (client, upstream)
        self.lock = threading.Lock()
        self.running = 2

    def start(self) -> None:
        import threading

        client, upstream = self.sockets
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        import socket

        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            for sock in self.sockets:  # a reset either way ends both directions
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        finally:
            with self.lock:
                self.running -= 1
                if not self.running:
                    for sock in self.sockets:
                        sock.close()
