"""A pod's network, as the runtime option chose it: `bridge` (the built-in network,
sandbox/network/bridge.py, the default), `cni` (the plugins of the first network configuration in
/etc/cni/net.d, sandbox/network/cni.py) or `none` (only `lo`). hostNetwork pods take none of them:
their pod IP is the node's.

Every object is recorded in the pod's tear-down journal before it is made (`teardown.Network`,
undone through `undo` below): the lease (whose release takes the bridge along with the last one),
the hostPort elements, the veth, the CNI attachment (DEL from its cached configuration, so a
changed or deleted conflist still tears down what ADD made).

Order: the bridge lease and the hostPorts come before pause (the pod IP goes into /etc/hosts and a
taken port fails the pod before anything runs); the veth and CNI's ADD need pause's namespace.
"""

from __future__ import annotations

import os

from sandbox.errors import SandboxError
from sandbox.log import get_logger
from sandbox.network.config import BridgeConfig
from sandbox.process.downward import Addresses
from sandbox.record import Record, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from sandbox.spec.model import Pod

log = get_logger(__name__)

MODES = ("bridge", "cni", "none")


class NetworkOptions(Record):
    """`sandbox run --network MODE` and its settings."""

    mode: str = "bridge"
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    cni: Any = None  # network.cni.CniConfig in `cni` mode


class HostPort(Record):
    protocol: str
    host_ip: str
    host_port: int
    container_port: int


def host_ports(pod: Pod) -> list[HostPort]:
    """Every `ports[]` entry with a hostPort, of the app and init containers (the kubelet's
    hostport manager reads both)."""
    found = []
    for container in (*pod.spec.init_containers, *pod.spec.containers):
        for port in container.ports:
            if port.host_port:
                host_ip = port.host_ip or ""
                found.append(HostPort(port.protocol or "TCP", "" if host_ip == "0.0.0.0" else host_ip,
                                      port.host_port, port.container_port))
    return found


def refuse_unpublishable_ports(pod: Pod, options: NetworkOptions) -> None:
    """A hostPort the chosen network cannot publish is refused by its field before anything is
    created (the kubelet would run the pod and silently not publish it): `--network none` has no
    pod address to forward to, and the forwarding handles TCP and UDP only. CNI publishes through
    the configuration's portmap plugin, checked when the configuration is loaded."""
    from sandbox.errors import FieldError, SpecError

    if pod.spec.host_network:
        return  # the container's own port is the host port
    errors = []
    for kind, containers in (("initContainers", pod.spec.init_containers), ("containers", pod.spec.containers)):
        for i, container in enumerate(containers):
            for j, port in enumerate(container.ports):
                if not port.host_port:
                    continue
                path = f"spec.{kind}[{i}].ports[{j}]"
                if options.mode == "none":
                    errors.append(FieldError(f"{path}.hostPort", "Forbidden: the pod has no network to publish "
                                                                 "it from (--network none)"))
                elif (port.protocol or "TCP") not in ("TCP", "UDP"):
                    errors.append(FieldError(f"{path}.protocol", f'Unsupported value: "{port.protocol}": '
                                                                 "hostPort forwarding supports TCP and UDP"))
    if errors:
        raise SpecError(errors)


class PodNetwork:
    """Sets up and records one pod's network; `addresses` is what status and the downward API show."""

    def __init__(self, options: NetworkOptions, pod: Pod, uid: str, record: Callable[[Any], None],
                 state_dir: Path) -> None:
        self.options, self.pod, self.uid, self.record, self.state_dir = options, pod, uid, record, state_dir
        self.addresses = Addresses()
        self.lease: Any = None
        self.cni_network: Any = None  # network.cni.CniNetwork, loaded before pause starts
        self.host_network = bool(pod.spec.host_network)

    @property
    def mode(self) -> str:
        return "host" if self.host_network else self.options.mode

    def owner(self) -> str:
        meta = self.pod.metadata
        return f"{self.uid} {meta.namespace or 'default'}/{meta.name}"

    def port_owner(self) -> str:
        """The owner of the pod's hostPort elements, as another pod's conflict message names it."""
        meta = self.pod.metadata
        return f"{meta.namespace or 'default'}/{meta.name} (uid {self.uid})"

    def record_first(self) -> None:
        """The veth, recorded before anything else of the pod so that its undo runs last: the
        pair dies with pause's network namespace, which the kernel frees in a worker one RCU grace
        period (10-20 ms here) after pause is gone; by the end of the tear-down it often has, and
        the undo finds nothing to delete; when it has not, the undo sees the namespace dying and
        leaves the pair to the kernel instead of deleting it (10-25 ms: bridge.delete_veth)."""
        if self.mode == "bridge":
            from sandbox.network.bridge import veth_name

            self.record(network_record("veth", name=veth_name(self.uid)))

    def before_pause(self) -> None:
        """hostNetwork: the node's address; bridge: the lease (and the bridge), the hostPorts."""
        mode = self.mode
        if mode == "host":
            from sandbox.network.bridge import host_ip

            node = host_ip("127.0.0.1")
            self.addresses = Addresses((node,), (node,))
            return
        ports = host_ports(self.pod)
        if ports:
            from sandbox.network.hostports import PortMapping, check_free

            check_free([PortMapping(p.protocol, p.host_ip, p.host_port, p.container_port, "") for p in ports])
        if mode == "cni":
            self._cni_load(bool(ports))
        if mode != "bridge":
            return
        from sandbox.network import bridge

        config = self.options.bridge
        self.record(network_record("lease", bridge=config.bridge, subnet=config.subnet, base=str(config.base),
                                   keep=config.keep_bridge, owner=self.owner()))

        def claim_ports(lease: bridge.Lease) -> None:
            if config.masquerade or ports:  # the network's last release must remove the table
                bridge.mark(config, bridge.NFT_MARKER)
            if ports:
                self._reserve(config, lease.address, ports)
            if config.masquerade:
                from sandbox.network.hostports import HostPorts

                HostPorts(config.nft_table, config.bridge, config.subnet).set_masquerade()
                _enable_forwarding()

        self.lease = bridge.lease(config, self.owner(), claim_ports)
        node = bridge.host_ip(self.lease.gateway)
        self.addresses = Addresses((self.lease.address,), (node,))

    def _reserve(self, config: BridgeConfig, pod_ip: str, ports: list[HostPort]) -> None:
        from sandbox.network.hostports import HostPorts, PortMapping

        self.record(network_record("hostports", table=config.nft_table, bridge=config.bridge,
                                   subnet=config.subnet, owner=self.port_owner()))
        mappings = [PortMapping(p.protocol, p.host_ip, p.host_port, p.container_port, pod_ip) for p in ports]
        HostPorts(config.nft_table, config.bridge, config.subnet).reserve(self.port_owner(), mappings)

    def pause_sysctls(self) -> tuple[tuple[str, str], ...]:
        """Sysctls pause's stage 1 writes in the pod's new network namespace, before the pod's own:
        on the built-in bridge, no IPv6 link-local address on any link made there later (eth0;
        the network is IPv4 only; what a netlink request per link did, bridge.attach)."""
        if self.mode == "bridge" and os.path.isdir("/proc/sys/net/ipv6"):
            return (("net/ipv6/conf/default/addr_gen_mode", "1"),)  # under /proc/sys; 1: IN6_ADDR_GEN_MODE_NONE
        return ()

    def after_pause(self, pause_pid: int, pause_pidfd: int) -> None:
        """The veth into pause's namespace, or CNI's ADD with pause's namespace."""
        if self.mode == "bridge":
            from sandbox.network import bridge

            bridge.attach(self.options.bridge, self.uid, self.lease, pause_pid, pause_pidfd)
        elif self.mode == "cni":
            self._cni_add(pause_pid)

    def _cni_load(self, has_host_ports: bool) -> None:
        """The configuration, loaded (and its plugins found) before pause starts; hostPorts need a
        plugin that takes portMappings (portmap), or they would be silently unpublished."""
        from sandbox.network import cni

        self.cni_network = cni.load_network(self.options.cni)
        if has_host_ports and not any((plugin.get("capabilities") or {}).get("portMappings")
                                      for plugin in self.cni_network.plugins):
            raise cni.CniError(f"CNI configuration {self.cni_network.source}: the pod has hostPorts and no plugin "
                               "takes portMappings (add portmap with capabilities.portMappings)")

    def _cni_add(self, pause_pid: int) -> None:
        from sandbox.network import cni
        from sandbox.network.bridge import host_ip

        network = self.cni_network
        meta = self.pod.metadata
        mappings = tuple({"hostPort": p.host_port, "containerPort": p.container_port,
                          "protocol": p.protocol.lower(), "hostIP": p.host_ip} for p in host_ports(self.pod))
        attachment = cni.Attachment(self.uid.replace("-", ""), f"/proc/{pause_pid}/ns/net", "eth0",
                                    meta.namespace or "default", meta.name or "", self.uid, mappings)
        self.record(network_record("cni", cache=network.to_cache(attachment, None)))
        result = network.add(attachment)
        # the result too, so a DEL after a crash hands it back as prevResult
        self.record(network_record("cni", cache=network.to_cache(attachment, result)))
        node = host_ip("127.0.0.1")
        self.addresses = Addresses(tuple(result.ips), (node,))


def _enable_forwarding() -> None:
    """Outbound traffic is routed from the bridge to the host's uplink: IPv4 forwarding on, as
    CNI's bridge plugin (ipMasq) and Docker turn it on. It stays on after the pods (other users of
    the host may rely on it by then); `--masquerade` is the only thing that sets it."""
    from sandbox.network.bridge import set_knob

    set_knob("/proc/sys/net/ipv4/ip_forward")


def network_record(what: str, **spec: Any) -> Any:
    from sandbox.pod.teardown import Network, network_spec

    return Network(what, network_spec(spec))


def undo(what: str, spec: dict[str, Any]) -> bool:
    """Undo one recorded network object (teardown.Network); True if something was removed."""
    from pathlib import Path

    if what == "veth":
        from sandbox.network.bridge import delete_veth

        return delete_veth(str(spec["name"]))
    if what == "lease":
        from sandbox.network.bridge import release
        from sandbox.network.config import check_bridge_name

        check_bridge_name(str(spec["bridge"]))
        config = BridgeConfig(str(spec["bridge"]), str(spec["subnet"]), keep_bridge=bool(spec.get("keep")),
                              base=Path(str(spec["base"])))
        return release(config, str(spec["owner"]))
    if what == "hostports":
        from sandbox.network.hostports import HostPorts

        HostPorts(str(spec["table"]), str(spec["bridge"]), str(spec["subnet"])).release(str(spec["owner"]))
        return True
    if what == "cni":
        return _cni_undo(spec["cache"])
    raise SandboxError(f"unknown network record {what!r}")


_cni_done: set[str] = set()  # one DEL per attachment per tear-down (the journal holds two records)


def _cni_undo(cache: dict[str, Any]) -> bool:
    from sandbox.network import cni

    network, attachment, result = cni.CniNetwork.from_cache(cache)
    key = f"{network.name}/{attachment.container_id}/{attachment.ifname}"
    if key in _cni_done:
        return False
    network.delete(attachment, result)
    _cni_done.add(key)
    return True
