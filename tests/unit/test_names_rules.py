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
