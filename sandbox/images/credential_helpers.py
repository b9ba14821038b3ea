"""Docker credential helpers: `docker-credential-<name> get`, the registry on stdin, a JSON answer.

The protocol (docker/docker-credential-helpers): the helper reads the server address on stdin and
writes `{"ServerURL": ..., "Username": ..., "Secret": ...}`; the Username `<token>` means Secret is
an identity token (an OAuth2 refresh token), not a password. A helper that has nothing for the
server exits non-zero saying `credentials not found in native keychain`: no credentials, not an
error. Anything else a helper does wrong (a non-zero exit, an answer that is not that JSON, no
answer within the time bound, not in PATH) is an ImageError naming the helper.

The helper runs in a session of its own, so a helper that hangs is killed with whatever it
started: a child still holding its stdout would otherwise block the read past the time bound.
Helpers are named only by the runtime's own credentials file, never by a pod's pull secret (the
kubelet runs no program a Secret names).
"""

from __future__ import annotations

import os

from sandbox.errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sandbox.images.auth import Credential

HELPER_TIMEOUT = 10.0  # seconds: the pull waits on the helper (a keychain may ask a user; we cannot)
NOT_FOUND = "credentials not found in native keychain"
TOKEN_USERNAME = "<token>"
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"  # what `docker login` keys Docker Hub by


def program(helper: str) -> str:
    """`docker-credential-<helper>`; a name that would reach outside PATH is refused."""
    if not helper or "/" in helper or helper in (".", ".."):
        raise ImageError(f"credential helper name {helper!r} is not a plain name")
    return f"docker-credential-{helper}"


def server_address(registry: str) -> str:
    """What the helper is asked for: the registry host (Docker Hub by `docker login`'s key)."""
    return DOCKER_HUB_SERVER if registry == "docker.io" else registry


def get(helper: str, registry: str, timeout: float = HELPER_TIMEOUT) -> Credential | None:
    """Run `docker-credential-<helper> get` for `registry` (a normalized host[:port])."""
    import shutil

    name = program(helper)
    path = shutil.which(name)
    if path is None:
        raise ImageError(f"credential helper {name} is not in PATH ({os.environ.get('PATH', '')})")
    code, out, err = _run(path, name, server_address(registry), timeout)
    if code != 0:
        if out.strip() == NOT_FOUND.encode():
            return None
        said = (err or out).decode(errors="replace").strip().splitlines()
        detail = f": {said[0][:200]}" if said else ""
        raise ImageError(f"credential helper {name} get {registry}: exit status {code}{detail}")
    return parse_answer(out, name, registry)


def parse_answer(out: bytes, name: str, registry: str) -> Credential:
    """The helper's JSON; never quoted in an error (it holds the secret)."""
    import json

    from sandbox.images.auth import Credential

    try:
        doc = json.loads(out)
    except (ValueError, UnicodeDecodeError):
        doc = None
    username = doc.get("Username") if isinstance(doc, dict) else None
    secret = doc.get("Secret") if isinstance(doc, dict) else None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise ImageError(f"credential helper {name} get {registry}: the answer is not the JSON "
                         "{ServerURL, Username, Secret}")
    if username == TOKEN_USERNAME:
        return Credential("", "", identity_token=secret)
    return Credential(username, secret)


def _run(path: str, name: str, server: str, timeout: float) -> tuple[int, bytes, bytes]:
    import signal
    import subprocess

    try:
        proc = subprocess.Popen([path, "get"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        raise ImageError(f"credential helper {name}: {e.strerror}") from None
    try:
        out, err = proc.communicate(server.encode(), timeout=timeout)  # no newline, as Docker writes it
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the helper and what it started
        proc.communicate()
        raise ImageError(f"credential helper {name} get {server}: no answer within {timeout:g} s") from None
    return proc.returncode, out, err
