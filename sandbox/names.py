"""The DNS-1123 name rules (apimachinery validation.go), in one place: the manifest validator
reports them with the API server's messages; the CLI checks pod names and namespaces with them
before they become paths. Pure, imports nothing: `re` (with enum) costs ~5.5 ms on the exec path."""

from __future__ import annotations

DNS_LABEL_RE = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN_RE = DNS_LABEL_RE + r"(\." + DNS_LABEL_RE + ")*"
DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253


_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def is_dns_label(value: str) -> bool:
    return len(value) <= DNS_LABEL_MAX and _label(value)


def is_dns_subdomain(value: str) -> bool:
    return len(value) <= DNS_SUBDOMAIN_MAX and all(_label(part) for part in value.split("."))


def _label(part: str) -> bool:
    """DNS_LABEL_RE without `re` (~6 ms with enum on `sandbox exec`'s path)."""
    return part != "" and part[0] != "-" and part[-1] != "-" and _LABEL_CHARS.issuperset(part)
