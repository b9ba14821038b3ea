"""`$(VAR)` expansion and the argv/environment a container's process gets (reference §4.1-4.3).

Expansion follows `third_party/forked/golang/expansion/expand.go`: `$(NAME)` becomes the value when
NAME is known and stays literally `$(NAME)` otherwise; `$$` is an escaped `$`; any other `$` (at the
end, before another character, or a `$(` that is never closed) is copied as written.
"""

from __future__ import annotations

from sandbox.spec.model import Container, EnvVar

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence


def expand(text: str, lookup: Mapping[str, str]) -> str:
    """Expand `$(VAR)` references in `text` from `lookup`."""
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        dollar = text.find("$", i)
        if dollar < 0 or dollar == n - 1:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        nxt = text[dollar + 1]
        if nxt == "$":
            out.append("$")
            i = dollar + 2
        elif nxt == "(":
            close = text.find(")", dollar + 2)
            if close < 0:  # unterminated: the rest is verbatim
                out.append(text[dollar:])
                break
            name = text[dollar + 2 : close]
            value = lookup.get(name)
            out.append(value if value is not None else text[dollar : close + 1])
            i = close + 1
        else:
            out.append("$" + nxt)
            i = dollar + 2
    return "".join(out)


def container_environment(container: Container, resolve: Callable[[EnvVar], str | None] | None = None,
                          env_from: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The container's `envFrom` pairs (resolved by the runtime, which has the objects they name),
    then its `env` entries, each literal value expanded against everything before it (and only when
    non-empty), as the kubelet's makeEnvironmentVariables does: envFrom first, so `env` overrides it
    and `$(KEY)` may name a key an envFrom source brought in. Values from sources are never expanded.

    `valueFrom` entries (ConfigMap, Secret, downward API) are resolved by `resolve`; one it cannot
    give (None, or no `resolve`) is left out, so an entry that refers to it stays literally
    `$(NAME)`. Order is the sources' then the manifest's; a later entry of the same name replaces the
    earlier value in `lookup`, and both are returned (the kubelet's map keeps the last, which callers
    get by building a dict).
    """
    lookup: dict[str, str] = dict(env_from)
    result: list[tuple[str, str]] = list(env_from)
    for var in container.env:
        if var.value_from is not None:
            # Resolved by the runtime (downward API, ConfigMaps, Secrets); a value it cannot give is left out.
            resolved = resolve(var) if resolve is not None else None
            if resolved is None:
                continue
            value = resolved
        else:
            value = expand(var.value, lookup) if var.value else ""
        lookup[var.name] = value
        result.append((var.name, value))
    return result


def container_argv(container: Container, image_entrypoint: Sequence[str], image_cmd: Sequence[str],
                   env: Mapping[str, str]) -> list[str]:
    """The argv to execute (containerd `WithProcessArgs`), `$(VAR)`-expanded from the final `env`.

    | command | args   | argv                       |
    | absent  | absent | ENTRYPOINT + CMD           |
    | set     | absent | command (CMD is ignored)   |
    | absent  | set    | ENTRYPOINT + args          |
    | set     | set    | command + args             |

    An empty list counts as absent. The image's own entries are not expanded (the kubelet never
    sees them). An empty result means "no command specified"; the caller reports that.
    """
    command = [expand(c, env) for c in container.command]
    args = [expand(a, env) for a in container.args]
    if command:
        return command + args
    if args:
        return list(image_entrypoint) + args
    return list(image_entrypoint) + list(image_cmd)
