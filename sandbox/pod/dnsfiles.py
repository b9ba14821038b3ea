"""/etc/hosts, /etc/resolv.conf and the pod's hostname, as the kubelet and containerd write them.

Pure: the caller reads the node's files and writes the results. The rules, from the kubelet's
sources (2026):
- names: GeneratePodHostNameAndDomain (spec.hostname else metadata.name, cut to 63 characters
  without a trailing '-' or '.'; `<subdomain>.<namespace>.svc.<clusterDomain>` as the domain;
  spec.hostnameOverride, beta and on by default since 1.35, replaces both) and
  GetNodenameForKernel (setHostnameAsFQDN: the UTS hostname is the FQDN, at most 64 characters).
- /etc/hosts: managedHostsFileContent (a header, the localhost lines, one `<ip>\t<fqdn>\t<name>`
  line per pod IP) and hostsEntriesFromHostAliases; a hostNetwork pod gets the node's file.
- resolv.conf: dns.go GetPodDNS (per dnsPolicy, dnsConfig appended, the limits applied with a
  DNSConfigForming event); containerd renders the result (`search`, `nameserver`, `options`
  lines) and copies the node's file when the result is empty.
There is no cluster DNS on one node: `cluster_dns` is empty unless a caller configures one, so
ClusterFirst falls back to Default with the kubelet's MissingClusterDNS event. The cluster domain
is the kubelet's usual `cluster.local` (kubeadm's default; the kubelet's own default is empty,
which would leave a subdomain pod without a domain).
"""

from __future__ import annotations

from sandbox.errors import SandboxError
from sandbox.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Sequence

    from sandbox.spec.model import HostAlias, Pod, PodDNSConfig

    Note = tuple[str, str, str]

CLUSTER_DOMAIN = "cluster.local"
HOSTNAME_MAX = 63  # truncatePodHostnameIfNeeded: 64 bytes with the terminating NUL
FQDN_MAX = 64  # GetNodenameForKernel: the kernel's nodename field
MAX_NAMESERVERS = 3  # validation.MaxDNSNameservers (glibc's MAXNS)
MAX_SEARCHES = 32  # MaxDNSSearchPathsExpanded (ExpandedDNSConfig, GA in 1.28)
MAX_SEARCH_CHARS = 2048  # MaxDNSSearchListCharsExpanded
SEARCH_MAX_LEN = 253  # a longer search path makes glibc 2.28 abort(); the kubelet drops it
CLUSTER_FIRST_OPTIONS = ("ndots:5",)  # the kubelet's defaultDNSOptions

HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
HOSTS_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
HOSTS_LOCAL = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


class HostnameError(SandboxError):
    """The pod's hostname cannot be set (the kubelet fails the sandbox: the pod stays Pending)."""


class PodNames(Record):
    hostname: str  # the short name (the /etc/hosts alias), or hostnameOverride
    domain: str  # "<subdomain>.<namespace>.svc.<clusterDomain>", "" without a subdomain
    kernel: str  # the UTS nodename: the FQDN under setHostnameAsFQDN, else `hostname`


class DNSConfig(Record):
    """The CRI DNSConfig: what resolv.conf will say."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def truncate_hostname(name: str) -> str:
    return name[:HOSTNAME_MAX].rstrip("-.") if len(name) > HOSTNAME_MAX else name


def pod_names(pod: Pod, cluster_domain: str = CLUSTER_DOMAIN) -> PodNames:
    """The kubelet's hostname and domain for a pod with its own UTS namespace; raises
    HostnameError when setHostnameAsFQDN asks for an FQDN longer than the kernel holds."""
    spec = pod.spec
    if spec.hostname_override:
        # Its own name and FQDN; cluster DNS records still follow hostname/subdomain.
        name = truncate_hostname(spec.hostname_override)
        return PodNames(name, "", name)
    name = truncate_hostname(spec.hostname or pod.metadata.name or "pod")
    domain = ""
    if spec.subdomain:
        domain = f"{spec.subdomain}.{pod.metadata.namespace or 'default'}.svc.{cluster_domain}"
    kernel = name
    if domain and spec.set_hostname_as_fqdn:
        fqdn = f"{name}.{domain}"
        if len(fqdn) > FQDN_MAX:
            raise HostnameError(f"failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} "
                                f"is too long ({FQDN_MAX} characters is the max, {len(fqdn)} characters "
                                "requested)")
        kernel = fqdn
    return PodNames(name, domain, kernel)


# --- /etc/hosts ---------------------------------------------------------------------------------

def hosts_file(names: PodNames, pod_ips: Sequence[str], aliases: Sequence[HostAlias] = ()) -> str:
    """managedHostsFileContent: a pod with its own network namespace."""
    lines = [HOSTS_HEADER, HOSTS_LOCAL]
    for ip in pod_ips:
        if names.domain:
            lines.append(f"{ip}\t{names.hostname}.{names.domain}\t{names.hostname}\n")
        else:
            lines.append(f"{ip}\t{names.hostname}\n")
    lines.append(alias_entries(aliases))
    return "".join(lines)


def host_network_hosts_file(node_hosts: str, aliases: Sequence[HostAlias] = ()) -> str:
    """nodeHostsFileContent: the node's /etc/hosts as it is, then the aliases."""
    return HOSTS_HEADER_HOST_NETWORK + node_hosts + alias_entries(aliases)


def alias_entries(aliases: Sequence[HostAlias]) -> str:
    """hostsEntriesFromHostAliases: after a blank line and its comment, one line per alias, its IP
    and all its hostnames tab-separated (the kubelet wrote a line per hostname before 1.16)."""
    if not aliases:
        return ""
    lines = ["\n# Entries added by HostAliases.\n"]
    lines += ["\t".join((alias.ip, *alias.hostnames)) + "\n" for alias in aliases]
    return "".join(lines)


# --- /etc/resolv.conf ---------------------------------------------------------------------------

def parse_resolv_conf(text: str) -> DNSConfig:
    """dns.go parseResolvConf: nameserver lines accumulate; the last `search` and the last
    `options` line win; a search path's trailing dot is dropped (one domain counts once)."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.split("\n"):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [s.removesuffix(".") for s in fields[1:]]
        elif fields[0] == "options":
            options = fields[1:]
    return DNSConfig(tuple(servers), tuple(searches), tuple(options))


def pod_dns(pod: Pod, node: DNSConfig, pod_ref: str, cluster_dns: Sequence[str] = (),
            cluster_domain: str = CLUSTER_DOMAIN) -> tuple[DNSConfig, list[Note]]:
    """GetPodDNS: the pod's DNS config from the node's and the pod's policy, with the events the
    kubelet records (`pod_ref` is its "<name>_<namespace>(<uid>)")."""
    from sandbox import events

    notes: list[Note] = []
    policy = pod.spec.dns_policy or "ClusterFirst"
    if policy == "ClusterFirst" and pod.spec.host_network:
        policy = "Default"  # a hostNetwork pod needs ClusterFirstWithHostNet for cluster DNS
    config = node
    if policy == "None":
        config = DNSConfig()
    elif policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        if cluster_dns:
            # The cluster DNS server is the only one: it forwards what it cannot answer.
            cluster = (f"{pod.metadata.namespace or 'default'}.svc.{cluster_domain}", f"svc.{cluster_domain}",
                       cluster_domain)
            config = DNSConfig(tuple(cluster_dns), _unique(cluster + node.searches), CLUSTER_FIRST_OPTIONS)
        else:
            notes.append(events.missing_cluster_dns(pod_ref))
    if pod.spec.dns_config is not None:
        config = append_dns_config(config, pod.spec.dns_config)
    return fit_limits(config, notes)


def append_dns_config(base: DNSConfig, extra: PodDNSConfig) -> DNSConfig:
    """appendDNSConfig: nameservers and searches appended without duplicates, options merged by
    name with the pod's value winning."""
    return DNSConfig(_unique(base.servers + extra.nameservers), _unique(base.searches + extra.searches),
                     merge_options(base.options, extra))


def merge_options(base: Sequence[str], extra: PodDNSConfig) -> tuple[str, ...]:
    """mergeDNSOptions. The kubelet rebuilds the list from a Go map, so its order is random; here
    the first place a name appears is kept (the node's order, then the pod's new names)."""
    merged: dict[str, str] = {}
    for option in base:
        name, _, value = option.partition(":")
        merged[name] = value
    for pod_option in extra.options:
        merged[pod_option.name or ""] = pod_option.value or ""
    return tuple(f"{name}:{value}" if value else name for name, value in merged.items())


def fit_limits(config: DNSConfig, notes: list[Note]) -> tuple[DNSConfig, list[Note]]:
    """formDNSConfigFitsLimits: at most 3 nameservers; at most 32 search paths, none longer than
    253 characters, 2048 characters in all (cut from the end); a DNSConfigForming warning each."""
    from sandbox import events

    servers = config.servers
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        notes.append(events.dns_config_forming(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver "
            f"line is: {' '.join(servers)}"))
    searches = config.searches[:MAX_SEARCHES]
    cut = len(searches) < len(config.searches)
    kept = tuple(s for s in searches if len(s) <= SEARCH_MAX_LEN)
    cut = cut or len(kept) < len(searches)
    while len(" ".join(kept)) > MAX_SEARCH_CHARS:
        kept = kept[:-1]
        cut = True
    if cut:
        notes.append(events.dns_config_forming(
            "Search Line limits were exceeded, some search paths have been omitted, the applied search line "
            f"is: {' '.join(kept)}"))
    return DNSConfig(servers, kept, config.options), notes


def resolv_conf(config: DNSConfig, node_text: str) -> str:
    """containerd's rendering; an empty config means the node's file as it is."""
    if not (config.servers or config.searches or config.options):
        return node_text
    text = f"search {' '.join(config.searches)}\n" if config.searches else ""
    text += "".join(f"nameserver {server}\n" for server in config.servers)
    if config.options:
        text += f"options {' '.join(config.options)}\n"
    return text


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
