"""The DNS-1123 name rules (apimachinery validation.go), in one place: the manifest validator
reports them with the API server's messages; the CLI checks pod names and namespaces with them
before they become paths. Pure, imports only `re`."""

from __future__ import annotations

import re

DNS_LABEL_RE = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN_RE = DNS_LABEL_RE + r"(\." + DNS_LABEL_RE + ")*"
DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253


def is_dns_label(value: str) -> bool:
    return len(value) <= DNS_LABEL_MAX and re.fullmatch(DNS_LABEL_RE, value) is not None


def is_dns_subdomain(value: str) -> bool:
    return len(value) <= DNS_SUBDOMAIN_MAX and re.fullmatch(DNS_SUBDOMAIN_RE, value) is not None
