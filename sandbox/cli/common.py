"""Helpers shared by the verbs: the root layout, finding a pod's state, name checks."""

from __future__ import annotations

from sandbox.errors import NotFoundError, UsageError

# Imported where used, not here: `sandbox exec` imports this module but needs neither argparse
# (7.4 ms) nor pathlib (sandbox.paths.RootLayout, 3.2 ms); sandbox.names only when checking.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable
    from typing import Any

    from sandbox.paths import RootLayout
    from sandbox.state.store import PodDir


def layout(args: argparse.Namespace) -> RootLayout:
    from sandbox.paths import RootLayout

    return RootLayout.from_root(args.root)


def namespace(args: argparse.Namespace) -> str:
    ns = args.namespace or "default"
    check_label(ns, "namespace")
    return str(ns)


def check_pod_name(name: str) -> str:
    """CLI names become paths: the same DNS-1123 check as the API server's, before any use."""
    from sandbox.names import is_dns_subdomain

    if not is_dns_subdomain(name):
        raise UsageError(f"invalid pod name {name!r}: must be a lowercase RFC 1123 subdomain")
    return name


POD_KINDS = ("pod", "pods", "po")  # the names kubectl accepts for pods (cli/get.py's too)


def pod_of_resource(word: str) -> str:
    """NAME of `pod/NAME` (pods/, po/ too); another type is one this runtime does not have."""
    kind, _, name = word.partition("/")
    if kind.lower() not in POD_KINDS:
        raise UsageError(f'the server doesn\'t have a resource type "{kind}"')
    return name


def add_kind_argument(p: Any, kinds: Iterable[str], help_text: str) -> None:
    """The TYPE positional of get/describe/inspect/top: TYPE or TYPE/NAME, so no argparse
    choices; the kinds are kept on the action for the shell completion (cli/completion.py)."""
    action = p.add_argument("kind", metavar="TYPE[/NAME]", help=help_text)
    action.completions = tuple(kinds)


def split_resource(args: argparse.Namespace, kinds: Iterable[str]) -> None:
    """`get pod/web` as `get pod web`: a `kind` argument in TYPE/NAME form, for the verbs that
    take a type then a name (kubectl's resource builder). The type must be one of `kinds`."""
    kind = args.kind
    if "/" in kind:
        if getattr(args, "name", None):
            raise UsageError("there is no need to specify a resource type as a separate argument when passing "
                             "arguments in resource/name form (e.g. 'sandbox get resource/<resource_name>' "
                             "instead of 'sandbox get resource resource/<resource_name>'")
        kind, _, args.name = kind.partition("/")
        check_pod_name(args.name)
    if kind.lower() not in kinds:
        raise UsageError(f'the server doesn\'t have a resource type "{kind}"')
    args.kind = kind.lower()


def check_label(value: str, what: str) -> str:
    from sandbox.names import is_dns_label

    if not is_dns_label(value):
        raise UsageError(f"invalid {what} {value!r}: must be a lowercase RFC 1123 label")
    return value


def check_arguments(args: argparse.Namespace) -> None:
    """Every argument that names a pod, namespace or container becomes (part of) a path: each is
    checked once, for every verb, before the verb runs (`/`, `..`, NUL and the rest are refused)."""
    if getattr(args, "namespace", None) is not None:
        check_label(args.namespace, "namespace")
    name = getattr(args, "name", None)
    if name is not None:
        if "/" in name and name.partition("/")[0].isalpha():  # kubectl's TYPE/NAME form: `logs pod/web` (not `../x`)
            args.name = name = pod_of_resource(name)
        check_pod_name(name)
    if getattr(args, "container", None) is not None:
        check_label(args.container, "container name")


def image_name(reference: str, what: str, *, digest: bool = True) -> str:
    """The canonical name of an image reference given on the command line (UsageError when it is
    not in the reference grammar, or, with digest=False, names a digest)."""
    from sandbox.images.reference import parse_image_ref

    try:
        ref = parse_image_ref(reference)
    except ValueError as e:
        raise UsageError(f"{what}: {e}") from None
    if ref.digest and not digest:
        raise UsageError(f"{what} {reference!r}: a name to give an image takes a tag, not a digest")
    return ref.name


def pod_dir(args: argparse.Namespace, name: str) -> PodDir:
    """The state directory of a running pod (or NotFoundError naming it as kubectl does)."""
    from sandbox.state.store import PodDir

    root = layout(args)
    path = PodDir(root.pod_state_dir(namespace(args), check_pod_name(name)))
    if _too_long(namespace(args), name) or not path.state_file.exists():
        raise _not_found(name, namespace(args))
    return path


def pod_state(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """pod_dir(args, name).read() through a plain-str path: no pathlib (3.2 ms of imports) on
    `sandbox exec`'s way to the spawn."""
    from sandbox.paths import pod_state_file
    from sandbox.state.store import read_state

    ns, name = namespace(args), check_pod_name(name)
    if _too_long(ns, name):
        raise _not_found(name, ns)
    try:
        return read_state(pod_state_file(args.root, ns, name))
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(name, ns) from None


def _too_long(ns: str, name: str) -> bool:
    """Names each valid but together too long for the pod's files: no such pod can have run
    (`sandbox run` refuses it), so it is not found, not an OSError from a path too long."""
    from sandbox.paths import pod_names_fit

    return not pod_names_fit(ns, name)


def _not_found(name: str, ns: str) -> NotFoundError:
    return NotFoundError(f'pods "{name}" not found in namespace "{ns}"')
