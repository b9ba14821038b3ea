"""Helpers shared by the verbs: the root layout, finding a pod's state, name checks."""

from __future__ import annotations

import argparse

from sandbox.errors import NotFoundError, UsageError
from sandbox.names import is_dns_label, is_dns_subdomain
from sandbox.paths import RootLayout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sandbox.state.store import PodDir


def layout(args: argparse.Namespace) -> RootLayout:
    return RootLayout.from_root(args.root)


def namespace(args: argparse.Namespace) -> str:
    ns = args.namespace or "default"
    check_label(ns, "namespace")
    return str(ns)


def check_pod_name(name: str) -> str:
    """CLI names become paths: the same DNS-1123 check as the API server's, before any use."""
    if not is_dns_subdomain(name):
        raise UsageError(f"invalid pod name {name!r}: must be a lowercase RFC 1123 subdomain")
    return name


def check_label(value: str, what: str) -> str:
    if not is_dns_label(value):
        raise UsageError(f"invalid {what} {value!r}: must be a lowercase RFC 1123 label")
    return value


def pod_dir(args: argparse.Namespace, name: str) -> PodDir:
    """The state directory of a running pod (or NotFoundError naming it as kubectl does)."""
    from sandbox.state.store import PodDir

    root = layout(args)
    path = PodDir(root.pod_state_dir(namespace(args), check_pod_name(name)))
    if not path.state_file.exists():
        raise NotFoundError(f'pods "{name}" not found in namespace "{namespace(args)}"')
    return path
