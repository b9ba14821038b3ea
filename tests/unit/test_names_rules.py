"""sandbox.names checks DNS labels and subdomains without `re`: the same answers as the
API server's regular expressions (kept in names.py for the error messages)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as hs

from sandbox import names

TEXT = hs.text(alphabet="ab09-.A_ \n", max_size=70) | hs.lists(hs.sampled_from(["a", "z9", "-", ".", "x-y"]),
                                                                  max_size=40).map("".join)


@settings(max_examples=3000, deadline=None)
@given(TEXT)
def test_rules_match_the_api_server_patterns(value: str) -> None:
    label = len(value) <= names.DNS_LABEL_MAX and re.fullmatch(names.DNS_LABEL_RE, value) is not None
    subdomain = len(value) <= names.DNS_SUBDOMAIN_MAX and re.fullmatch(names.DNS_SUBDOMAIN_RE, value) is not None
    assert names.is_dns_label(value) == label
    assert names.is_dns_subdomain(value) == subdomain


def test_examples() -> None:
    assert names.is_dns_label("web-1") and not names.is_dns_label("-web") and not names.is_dns_label("a" * 64)
    assert names.is_dns_subdomain("a.b-c.d") and not names.is_dns_subdomain("a..b") and not names.is_dns_subdomain("")


@settings(max_examples=1500, deadline=None)
@given(TEXT | hs.integers(min_value=55, max_value=70).map(lambda n: "a" * n)
       | hs.integers(min_value=240, max_value=260).map(lambda n: ("a." * n)[:n].rstrip(".") + "b"))
def test_the_validator_and_the_cli_refuse_the_same_names(value: str) -> None:
    """Manifest validation (spec/validate.py) and the CLI's path checks (names.py) share one rule,
    lengths included: a pod or namespace name the one accepts the other accepts."""
    from sandbox.spec.validate import Errors, dns_label, dns_subdomain

    label, subdomain = Errors(), Errors()
    dns_label(label, "metadata.namespace", value)
    dns_subdomain(subdomain, "metadata.name", value)
    assert (not label) == names.is_dns_label(value)
    assert (not subdomain) == names.is_dns_subdomain(value)
