"""`sandbox wait --for=CONDITION pod/NAME... [--timeout 30s]`, as `kubectl wait`:

    --for=condition=Ready[=true]              a status condition (the value compared case-insensitively)
    --for=delete                              the pod's record is gone (`sandbox delete`)
    --for=create                              the pod exists
    --for=jsonpath='{.status.phase}'=Running  a field of the Pod object (without `=VALUE`: that it is set)

`wait pod -l SELECTOR` (`--field-selector`, `--all`) waits for the pods that match as the wait
starts (`-A`: of every namespace). Prints `pod/NAME condition met` (`pod/NAME deleted`) per pod;
on timeout kubectl's `error: timed out waiting for the condition on pods/NAME` and exit code 1.
The timeout is per pod, as kubectl's: 0 checks once, a negative one means a week. The pods'
records are watched (cli/watch.py), not polled.
"""

from __future__ import annotations

import argparse
import time

from sandbox.cli.get import POD_KINDS

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any

    from sandbox.paths import RootLayout

WEEK = 7 * 24 * 3600.0


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("wait", help="wait for a condition of pods")
    p.add_argument("resources", nargs="+", metavar="pod/NAME", help="pod/NAME ... (or: pod NAME ...)")
    p.add_argument("--for", dest="for_", required=True, metavar="CONDITION",
                   help="condition=Ready[=true], delete, create or jsonpath='{.status.phase}'=Running")
    p.add_argument("--timeout", default="30s", help="per pod (0: check once, negative: a week; default 30s)")
    from sandbox.cli.selector import add_option

    add_option(p, "pods (`wait pod -l ...`), as they are when the wait starts,", fields=True)
    p.add_argument("--all", action="store_true", help="every pod of the namespace as the wait starts (`wait pod --all`)")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="with --all or -l: the pods of every namespace")
    p.set_defaults(handler=handle)


class Condition:
    """A parsed `--for`: what to wait for and how to say it was met."""

    def __init__(self, text: str) -> None:
        from sandbox.errors import UsageError

        self.kind, _, rest = text.partition("=")
        self.kind = self.kind.lower()
        self.value: str | None = None
        self.name = ""
        self.path: Any = None  # a jsonpath condition's parsed template (cli/jsonpath.py)
        if self.kind in ("delete", "create") and not rest:
            return
        if self.kind == "condition" and rest:
            self.name, eq, wanted = rest.partition("=")
            self.value = wanted if eq else "true"
            return
        if self.kind == "jsonpath" and rest:
            from sandbox.cli.printers import jsonpath_template, relaxed_path

            expr, self.value = _split_jsonpath(rest)
            self.path = jsonpath_template(relaxed_path(expr))  # client-go's JSONPath, as kubectl wait
            return
        raise UsageError(f"unrecognized condition: {text!r} (condition=NAME[=VALUE], delete, create or "
                         "jsonpath='{.PATH}'[=VALUE])")

    def met(self, pod: dict[str, Any] | None) -> bool:
        """Whether `pod` (a Pod object; None when there is none) meets it."""
        if self.kind == "delete":
            return pod is None
        if pod is None:
            return False
        if self.kind == "create":
            return True
        if self.kind == "condition":
            for c in (pod.get("status") or {}).get("conditions") or []:
                if str(c.get("type")) == self.name:
                    return str(c.get("status", "")).lower() == str(self.value).lower()
            return False
        from sandbox.cli.jsonpath import text_of

        # kubectl wait's isJSONPathConditionMet: one value found (none: not yet; several: never
        # met), compared as fmt's %v prints it; without a value, that the field is there
        pieces = self.path.results(pod)
        if len(pieces) != 1 or len(pieces[0]) != 1:
            return False
        return self.value is None or text_of(pieces[0][0]) == self.value

    def done_text(self, name: str) -> str:
        return f"pod/{name} deleted" if self.kind == "delete" else f"pod/{name} condition met"


def handle(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout, namespace
    from sandbox.cli.duration import parse_duration

    condition = Condition(args.for_)
    timeout = parse_duration(args.timeout, "--timeout")
    if timeout < 0:
        timeout = WEEK
    if args.all or args.selector is not None or args.field_selector is not None:
        targets = selected_names(args, None if args.all_namespaces else namespace(args))
        if not targets:
            if condition.kind == "delete":
                return 0  # nothing left to wait for
            from sandbox.errors import SandboxError

            raise SandboxError("no matching resources found")
    else:
        if args.all_namespaces:
            from sandbox.errors import UsageError

            raise UsageError("a resource cannot be retrieved by name across all namespaces")
        targets = [(namespace(args), name) for name in pod_names(args.resources)]
    for ns, name in targets:
        outcome = wait_one(layout(args), ns, name, condition, timeout)
        if outcome == TIMED_OUT:
            from sandbox.errors import SandboxError

            raise SandboxError(f"timed out waiting for the condition on pods/{name}")
        if outcome == MET:  # --for=delete of a pod already gone: kubectl says nothing
            print(condition.done_text(name), flush=True)
    return 0


MET, ALREADY_GONE, TIMED_OUT = "met", "gone", "timed out"


def pod_names(resources: list[str]) -> list[str]:
    """`pod/a pod/b` or `pod a b` (kubectl's two forms), checked as pod names."""
    from sandbox.cli.common import check_pod_name
    from sandbox.errors import UsageError

    if "/" not in resources[0]:
        kind, names = resources[0], resources[1:]
        if kind.lower() not in POD_KINDS:
            raise UsageError(f'the server doesn\'t have a resource type "{kind}" (wait works on pods)')
        if not names:
            raise UsageError("resource(s) were provided, but no name was specified")
        return [check_pod_name(n) for n in names]
    out = []
    for item in resources:
        kind, _, name = item.partition("/")
        if kind.lower() not in POD_KINDS or not name or "/" in name:
            raise UsageError(f"{item!r}: expected pod/NAME (wait works on pods)")
        out.append(check_pod_name(name))
    return out


def selected_names(args: argparse.Namespace, ns: str | None) -> list[tuple[str, str]]:
    """`wait pod -l SELECTOR` (or `--all`): (namespace, name) of the pods of `ns` (None: every
    namespace) that match when the wait starts (kubectl's resource builder lists them once)."""
    from sandbox.cli.selector import selected_pods
    from sandbox.errors import UsageError

    kind, *names = args.resources
    if kind.lower() not in POD_KINDS or "/" in kind:
        raise UsageError(f'{kind!r}: with -l or --all, give the resource type only (`wait pod -l ...`)')
    if names:
        raise UsageError("name cannot be provided when a selector is specified")
    return [(str(state.get("namespace") or "default"), str(state.get("name")))
            for state in selected_pods(args, ns, args.selector, args.field_selector).values()]


def wait_one(root: RootLayout, ns: str, name: str, condition: Condition, timeout: float) -> str:
    """MET once the pod meets `condition` (ALREADY_GONE: --for=delete and it never existed),
    TIMED_OUT after `timeout` seconds; NotFoundError when it does not exist (or is deleted
    meanwhile) and the condition needs it."""
    from sandbox.cli.watch import PodWatch
    from sandbox.errors import NotFoundError

    deadline = time.monotonic() + timeout
    with PodWatch(root.pods) as watch:  # armed before the first look: no change is missed
        first = True
        while True:
            pod = read_pod_object(root, ns, name)
            if condition.met(pod):
                return ALREADY_GONE if first and pod is None else MET
            if pod is None and condition.kind != "create":
                raise NotFoundError(f'pods "{name}" not found')
            first = False
            left = deadline - time.monotonic()
            if left <= 0:
                return TIMED_OUT
            watch.wait(left)


def read_pod_object(root: RootLayout, ns: str, name: str) -> dict[str, Any] | None:
    """The Pod object as `get -o json` shows it, or None when the pod has no record."""
    from sandbox.cli.get import pod_object
    from sandbox.errors import NotFoundError, StateError
    from sandbox.state.store import PodDir
    from sandbox.state.view import read_pod

    try:
        state, _ = read_pod(PodDir(root.pod_state_dir(ns, name)))
    except NotFoundError:
        return None
    except StateError:  # unreadable right now: shown as not (yet) meeting anything but delete
        return {}
    return pod_object(state)


# --- kubectl wait's jsonpath condition -------------------------------------------------------------


def _split_jsonpath(text: str) -> tuple[str, str | None]:
    """`{.status.phase}=Running` -> (`.status.phase`, `Running`); braces optional; no `=` -> None."""
    if text.startswith("{"):
        end = text.find("}")
        if end < 0:
            from sandbox.errors import UsageError

            raise UsageError(f"jsonpath {text!r}: unclosed '{{'")
        expr, rest = text[1:end], text[end + 1 :]
        return expr, (rest[1:] if rest.startswith("=") else None)
    expr, eq, value = text.partition("=")
    return expr, (value if eq else None)
