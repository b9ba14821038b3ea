"""A pod's network through CNI plugins (`sandbox run --network cni`), as containerd runs them.

The runtime's half of the CNI spec (containernetworking/cni SPEC.md, libcni): the network
configuration is the first file by name among *.conflist, *.conf and *.json in the conf dir (a
.conf is a list of one plugin); each plugin is an executable found by its `type` in the bin dirs,
run with the CNI_* environment and its own configuration on stdin, to which the runtime adds the
list's `name` and `cniVersion`, the previous plugin's result as `prevResult` and, for plugins whose
`capabilities` ask for them, `runtimeConfig` (here only `portMappings`). ADD runs the plugins in
order, chaining results; DEL runs them in reverse with the cached result; CHECK in order (0.4.0+).

Errors: a plugin that fails exits non-zero with {code, msg, details} on stdout; CniError carries
them with the plugin and the configuration file. The caller records `to_cache()` in the pod's
tear-down journal before `add()` (and again with the result after it), so a crash mid-ADD is
undone by `delete()`, which the spec requires plugins to tolerate (partial ADD, missing netns).

This module loads only in CNI mode; subprocess and ipaddress are imported when first needed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.log import get_logger
from sandbox.record import Record

TYPE_CHECKING = False  # typing costs start-up time; only checkers need it
if TYPE_CHECKING:
    from typing import Any, TypedDict

    class _Where(TypedDict):  # which file and plugin an error names
        source: str
        plugin: str

log = get_logger(__name__)

DEFAULT_TIMEOUT = 60.0  # seconds per plugin call; a plugin stuck on a lock is killed, not waited for
_EXTENSIONS = (".conflist", ".conf", ".json")  # libcni's ConfFiles set, as containerd passes it
_MAX_CONFIG_BYTES = 1 << 20  # a network configuration is a few hundred bytes; refuse a runaway file
_IFNAMSIZ = 16  # the kernel's limit includes the terminating NUL
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class CniError(SandboxError):
    """A CNI configuration that cannot be used, or a plugin call that failed.

    `source` is the configuration file, `plugin` the plugin's type, `command` ADD/DEL/CHECK, and
    `code`/`msg`/`details` the plugin's error object (code 0 when the plugin gave none)."""

    def __init__(self, message: str, *, source: str = "", plugin: str = "", command: str = "",
                 code: int = 0, msg: str = "", details: str = "") -> None:
        self.message = message
        self.source = source
        self.plugin = plugin
        self.command = command
        self.code = code
        self.msg = msg
        self.details = details
        super().__init__(self.describe())

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        where = f"CNI configuration {self.source}: " if self.source else "CNI: "
        who = f"plugin {self.plugin!r} {self.command}: " if self.plugin else ""
        return f"{where}{who}{self.message}"


class CniConfig(Record):
    conf_dir: Path = Path("/etc/cni/net.d")
    bin_dirs: tuple[Path, ...] = (Path("/opt/cni/bin"), Path("/usr/lib/cni"))  # containerd's, then Debian's
    timeout: float = DEFAULT_TIMEOUT


class CniResult(Record):
    ips: tuple[str, ...]  # the pod's addresses without prefix length, IPv4 first (-> status.podIPs)
    raw: dict[str, Any]  # the last plugin's ADD result, in the list's cniVersion


class Attachment(Record):
    container_id: str  # the pod sandbox id (CNI_CONTAINERID; host-local keys reservations on it)
    netns: str  # a netns path; "" for a DEL after the pod is gone (the spec allows it)
    ifname: str = "eth0"
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    port_mappings: tuple[dict[str, Any], ...] = ()  # runtimeConfig.portMappings entries

    def cni_args(self) -> str:
        """CNI_ARGS as the kubelet/containerd pass them; IgnoreUnknown=1 because plugins that do not
        know a K8S_* key must not fail on it (CONVENTIONS.md)."""
        pairs = [("K8S_POD_NAMESPACE", self.pod_namespace), ("K8S_POD_NAME", self.pod_name),
                 ("K8S_POD_INFRA_CONTAINER_ID", self.container_id), ("K8S_POD_UID", self.pod_uid)]
        return ";".join(["IgnoreUnknown=1", *(f"{k}={v}" for k, v in pairs)])

    def validate(self, command: str) -> None:
        """libcni's ValidateContainerID/ValidateInterfaceName, plus CNI_ARGS separators: a value
        with ';' or '=' would smuggle a key to the plugins."""
        if not _valid_name(self.container_id):
            raise CniError(f"container id {self.container_id!r}: must be letters, digits, '_', '.', '-'",
                           command=command)
        name = self.ifname
        if (not name or len(name) >= _IFNAMSIZ or name in (".", "..")
                or any(c in "/:" or c.isspace() for c in name)):
            raise CniError(f"interface name {name!r}: must be 1-15 characters without '/', ':' or spaces",
                           command=command)
        for label, value in (("pod namespace", self.pod_namespace), ("pod name", self.pod_name),
                             ("pod uid", self.pod_uid)):
            if ";" in value or "=" in value:
                raise CniError(f"{label} {value!r}: ';' and '=' cannot be passed in CNI_ARGS", command=command)
        if command != "DEL" and not self.netns:
            raise CniError(f"{command} needs a network namespace path", command=command)


class CniNetwork:
    """One network configuration list, ready to run against attachments."""

    __slots__ = ("bin_dirs", "cni_version", "disable_check", "name", "plugins", "source", "timeout")

    def __init__(self, name: str, cni_version: str, plugins: list[dict[str, Any]], source: Path,
                 bin_dirs: tuple[Path, ...], *, disable_check: bool = False,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.name = name
        self.cni_version = cni_version
        self.plugins = plugins
        self.source = source
        self.bin_dirs = bin_dirs
        self.disable_check = disable_check
        self.timeout = timeout

    def __repr__(self) -> str:
        types = ",".join(p["type"] for p in self.plugins)
        return f"CniNetwork({self.name!r}, {self.cni_version}, [{types}], {str(self.source)!r})"

    def add(self, attachment: Attachment) -> CniResult:
        """Every plugin's ADD in order, each given the previous result. Nothing is undone here on
        failure: the caller's journal runs delete(), as containerd tears down a failed set-up."""
        attachment.validate("ADD")
        prev: dict[str, Any] | None = None
        for plugin in self.plugins:
            prev = self._run("ADD", plugin, attachment, prev)
        if prev is None:  # load_network refuses an empty list; a hand-built network may have one
            raise CniError("the network has no plugins", source=str(self.source), command="ADD")
        return CniResult(_pod_ips(prev, attachment.ifname, self._where(self.plugins[-1])), prev)

    def check(self, attachment: Attachment, result: CniResult) -> None:
        """Every plugin's CHECK in order against the cached result (libcni: 0.4.0 and later only;
        `disableCheck: true` in the list skips it)."""
        attachment.validate("CHECK")
        if _version(self.cni_version) < (0, 4, 0):
            raise CniError(f"cniVersion {self.cni_version} does not support CHECK (0.4.0 or later)",
                           source=str(self.source), command="CHECK")
        if self.disable_check:
            return
        for plugin in self.plugins:
            self._run("CHECK", plugin, attachment, result.raw)

    def delete(self, attachment: Attachment, result: CniResult | None) -> None:
        """Every plugin's DEL in reverse order. Unlike libcni, which stops at the first failure,
        every plugin runs: one stuck plugin must not leave the others' addresses and rules behind.
        The failures are raised together afterwards."""
        attachment.validate("DEL")
        # Before 0.4.0 DEL got no prevResult (libcni); later the cached result, when there is one.
        prev = result.raw if result is not None and _version(self.cni_version) >= (0, 4, 0) else None
        errors: list[CniError] = []
        for plugin in reversed(self.plugins):
            try:
                self._run("DEL", plugin, attachment, prev)
            except CniError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            first = errors[0]
            raise CniError("; ".join(e.message if not e.plugin else f"{e.plugin}: {e.message}" for e in errors),
                           source=first.source, plugin=first.plugin, command="DEL",
                           code=first.code, msg=first.msg, details=first.details)

    def to_cache(self, attachment: Attachment, result: CniResult | None) -> dict[str, Any]:
        """A JSON-able record from which from_cache() can run DEL (or CHECK) in another process.

        The netns's identity (device and inode) is kept too: a /proc/<pid>/ns/net path outlives the
        pod's pause process and, once the pid is reused, names another namespace, whose eth0 the
        bridge plugin's DEL would delete. from_cache() drops a netns that is no longer the same."""
        return {
            "network": {"name": self.name, "cniVersion": self.cni_version, "plugins": self.plugins,
                        "source": str(self.source), "binDirs": [str(d) for d in self.bin_dirs],
                        "disableCheck": self.disable_check, "timeout": self.timeout},
            "attachment": {"containerId": attachment.container_id, "netns": attachment.netns,
                           "netnsId": _netns_id(attachment.netns), "ifname": attachment.ifname,
                           "podNamespace": attachment.pod_namespace, "podName": attachment.pod_name,
                           "podUid": attachment.pod_uid, "portMappings": list(attachment.port_mappings)},
            "result": None if result is None else {"ips": list(result.ips), "raw": result.raw},
        }

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> tuple[CniNetwork, Attachment, CniResult | None]:
        try:
            net, att, res = data["network"], data["attachment"], data["result"]
            for i, plugin in enumerate(net["plugins"]):
                _check_plugin(plugin, f"plugins[{i}]", Path(net["source"]))
            network = cls(net["name"], net["cniVersion"], list(net["plugins"]), Path(net["source"]),
                          tuple(Path(d) for d in net["binDirs"]), disable_check=bool(net["disableCheck"]),
                          timeout=float(net["timeout"]))
            netns = att["netns"]
            if netns and (not att["netnsId"] or _netns_id(netns) != att["netnsId"]):
                log.info("CNI: network namespace %s is gone or reused; DEL runs without it", netns)
                netns = ""
            attachment = Attachment(att["containerId"], netns, att["ifname"], att["podNamespace"],
                                    att["podName"], att["podUid"], tuple(att["portMappings"]))
            result = None if res is None else CniResult(tuple(res["ips"]), dict(res["raw"]))
        except (KeyError, TypeError, ValueError) as e:
            raise CniError(f"bad cached network record: {type(e).__name__}: {e}") from None
        return network, attachment, result

    def _where(self, plugin: dict[str, Any]) -> _Where:
        return {"source": str(self.source), "plugin": str(plugin.get("type", ""))}

    def _stdin(self, plugin: dict[str, Any], attachment: Attachment, prev: dict[str, Any] | None) -> bytes:
        """The plugin's own object plus what libcni injects; runtimeConfig carries only what the
        plugin's capabilities ask for (a plugin may refuse keys it does not know)."""
        conf = dict(plugin, name=self.name, cniVersion=self.cni_version)
        if prev is not None:
            conf["prevResult"] = prev
        capabilities = plugin.get("capabilities") or {}
        if capabilities.get("portMappings") and attachment.port_mappings:
            conf["runtimeConfig"] = {"portMappings": list(attachment.port_mappings)}
        return json.dumps(conf).encode()

    def _run(self, command: str, plugin: dict[str, Any], attachment: Attachment,
             prev: dict[str, Any] | None) -> dict[str, Any]:
        """One plugin call; ADD returns the parsed result, the others `{}`."""
        import subprocess

        where = self._where(plugin)
        binary = find_plugin(plugin["type"], self.bin_dirs)
        if binary is None:
            raise CniError(f"not found in {_dirs(self.bin_dirs)}", command=command, **where)
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": attachment.container_id,
               "CNI_NETNS": attachment.netns, "CNI_IFNAME": attachment.ifname,
               "CNI_ARGS": attachment.cni_args(), "CNI_PATH": os.pathsep.join(map(str, self.bin_dirs)),
               # portmap and firewall run iptables/nft; a plugin must not see the runtime's own env
               "PATH": os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin"}
        try:
            done = subprocess.run([str(binary)], input=self._stdin(plugin, attachment, prev), env=env,
                                  capture_output=True, timeout=self.timeout, cwd="/")
        except subprocess.TimeoutExpired:
            raise CniError(f"timed out after {self.timeout:g} s (killed)", command=command, **where) from None
        except OSError as e:
            raise CniError(f"cannot run {binary}: {e.strerror}", command=command, **where) from None
        if done.stderr:
            log.debug("CNI %s %s stderr: %s", plugin["type"], command, done.stderr.decode(errors="replace"))
        if done.returncode != 0:
            raise _plugin_error(done.returncode, done.stdout, done.stderr, command, where)
        if command != "ADD":
            return {}
        try:
            result = json.loads(done.stdout)
        except ValueError as e:
            raise CniError(f"result is not JSON: {e}", command=command, **where) from None
        if not isinstance(result, dict):
            raise CniError("result is not a JSON object", command=command, **where)
        return result


def load_network(config: CniConfig) -> CniNetwork:
    """The network containerd would use: the first configuration file by name in conf_dir."""
    conf_dir = config.conf_dir
    try:
        names = sorted(e.name for e in os.scandir(conf_dir)
                       if e.name.endswith(_EXTENSIONS) and e.is_file())
    except FileNotFoundError:
        raise CniError(f"configuration directory {conf_dir} does not exist") from None
    except OSError as e:
        raise CniError(f"cannot read configuration directory {conf_dir}: {e.strerror}") from None
    if not names:
        raise CniError(f"no network configuration (*.conflist, *.conf, *.json) in {conf_dir}")
    source = conf_dir / names[0]
    data = _read_json(source)
    if source.suffix == ".conflist":
        network = _parse_list(data, source, config)
    else:
        network = _parse_single(data, source, config)
    for i, plugin in enumerate(network.plugins):
        if find_plugin(plugin["type"], config.bin_dirs) is None:
            raise CniError(f"plugins[{i}].type: plugin {plugin['type']!r} not found in {_dirs(config.bin_dirs)}",
                           source=str(source))
    return network


def find_plugin(plugin_type: str, bin_dirs: tuple[Path, ...]) -> Path | None:
    """libcni's FindInPath: the first executable regular file named `plugin_type`."""
    for directory in bin_dirs:
        path = directory / plugin_type
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def _read_json(source: Path) -> dict[str, Any]:
    try:
        with open(source, "rb") as f:
            text = f.read(_MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise CniError(f"cannot read: {e.strerror}", source=str(source)) from None
    if len(text) > _MAX_CONFIG_BYTES:
        raise CniError(f"larger than {_MAX_CONFIG_BYTES} bytes", source=str(source))
    try:
        data = json.loads(text)
    except ValueError as e:  # JSONDecodeError names line and column; UnicodeDecodeError the byte
        raise CniError(f"not valid JSON: {e}", source=str(source)) from None
    if not isinstance(data, dict):
        raise CniError("must be a JSON object", source=str(source))
    return data


def _parse_list(data: dict[str, Any], source: Path, config: CniConfig) -> CniNetwork:
    name, version = _name_and_version(data, source)
    plugins = data.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise CniError("plugins: must be a non-empty list of plugin objects", source=str(source))
    for i, plugin in enumerate(plugins):
        _check_plugin(plugin, f"plugins[{i}]", source)
    disable_check = data.get("disableCheck", False)
    if not isinstance(disable_check, bool):
        raise CniError(f"disableCheck: must be true or false, got {disable_check!r}", source=str(source))
    return CniNetwork(name, version, plugins, source, config.bin_dirs, disable_check=disable_check,
                      timeout=config.timeout)


def _parse_single(data: dict[str, Any], source: Path, config: CniConfig) -> CniNetwork:
    """A .conf/.json file is one plugin's configuration; libcni's ConfListFromConf wraps it."""
    name, version = _name_and_version(data, source)
    _check_plugin(data, "", source)
    return CniNetwork(name, version, [data], source, config.bin_dirs, timeout=config.timeout)


def _name_and_version(data: dict[str, Any], source: Path) -> tuple[str, str]:
    name = data.get("name")
    if not isinstance(name, str) or not _valid_name(name):
        raise CniError(f"name: must be letters, digits, '_', '.', '-' (not starting with the last three), "
                       f"got {name!r}", source=str(source))
    version = data.get("cniVersion")
    if not isinstance(version, str) or _version(version) == (-1,):
        raise CniError(f"cniVersion: must be a version such as \"1.0.0\", got {version!r}", source=str(source))
    return name, version


def _check_plugin(plugin: object, path: str, source: Path) -> None:
    prefix = f"{path}." if path else ""
    if not isinstance(plugin, dict):
        raise CniError(f"{path}: must be a JSON object", source=str(source))
    plugin_type = plugin.get("type")
    # The type is a file name inside a bin dir, never a path (libcni joins it to each dir).
    if (not isinstance(plugin_type, str) or not plugin_type or "/" in plugin_type
            or plugin_type in (".", "..") or "\0" in plugin_type):
        raise CniError(f"{prefix}type: must name a plugin binary, got {plugin_type!r}", source=str(source))
    capabilities = plugin.get("capabilities", {})
    if not isinstance(capabilities, dict):
        raise CniError(f"{prefix}capabilities: must be a JSON object", source=str(source))


def _plugin_error(returncode: int, stdout: bytes, stderr: bytes, command: str, where: _Where) -> CniError:
    """The spec's error object from stdout; a plugin that crashed before writing one is reported
    with its exit status and the last line it wrote to stderr."""
    try:
        error = json.loads(stdout)
    except ValueError:
        error = None
    if isinstance(error, dict) and ("code" in error or "msg" in error):
        code = error.get("code")
        msg, details = str(error.get("msg", "")), str(error.get("details", ""))
        text = f"error {code}: {msg}" + (f" ({details})" if details else "")
        return CniError(text, command=command, code=code if isinstance(code, int) else 0,
                        msg=msg, details=details, **where)
    lines = (stderr or stdout).decode(errors="replace").strip().splitlines()
    tail = f": {lines[-1]}" if lines else ""
    return CniError(f"exited with status {returncode} without an error object{tail}", command=command, **where)


def _pod_ips(result: dict[str, Any], ifname: str, where: _Where) -> tuple[str, ...]:
    """The pod's addresses: IPs on `ifname` inside the sandbox (containerd's rule: the bridge's and
    the host veth's addresses are not the pod's), IPv4 first. 0.1.0/0.2.0 results use ip4/ip6."""
    import ipaddress

    if "ips" in result:
        entries, interfaces = result["ips"], result.get("interfaces") or []
    else:
        entries = [result[key] for key in ("ip4", "ip6") if isinstance(result.get(key), dict)]
        entries = [{"address": e.get("ip")} for e in entries]
        interfaces = []
    if not isinstance(entries, list) or not isinstance(interfaces, list):
        raise CniError("result: ips and interfaces must be lists", command="ADD", **where)
    found = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
            raise CniError(f"result: bad ips entry {entry!r}", command="ADD", **where)
        index = entry.get("interface")
        if isinstance(index, int) and 0 <= index < len(interfaces):
            iface = interfaces[index]
            if not isinstance(iface, dict) or not iface.get("sandbox") or iface.get("name") != ifname:
                continue
        try:
            found.append(ipaddress.ip_interface(entry["address"]).ip)
        except ValueError:
            raise CniError(f"result: bad address {entry['address']!r}", command="ADD", **where) from None
    found.sort(key=lambda ip: ip.version)  # stable: the plugin's order within each family
    return tuple(dict.fromkeys(str(ip) for ip in found))


def _version(text: str) -> tuple[int, ...]:
    """'1.0.0' -> (1, 0, 0); (-1,) for anything else."""
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts):
        return (-1,)
    return tuple(int(p) for p in parts)


def _valid_name(name: str) -> bool:
    """libcni's ValidateNetworkName/ValidateContainerID: ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$."""
    return bool(name) and name[0] not in "_.-" and all(c in _NAME_CHARS for c in name)


def _netns_id(path: str) -> str:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return ""
    return f"{st.st_dev}:{st.st_ino}"


def _dirs(bin_dirs: tuple[Path, ...]) -> str:
    return ", ".join(map(str, bin_dirs)) or "(no bin dirs)"
