"""`sandbox image ls | pull | inspect | import | tag | rm | prune`: the local image store
(sandbox/images/store.py), pulls from registries (images/pull.py). Every reference is parsed with the one grammar (images/reference.py) before the store is
touched: one outside it is a usage error (exit 2), never a path."""

from __future__ import annotations

from sandbox.cli.fastargs import APPEND, VALUE, FastVerb

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    import argparse
    from typing import Any


def add_parser(verbs: Any) -> None:
    p = verbs.add_parser("image", help="manage local images")
    sub = p.add_subparsers(dest="image_verb", required=True)
    imp = sub.add_parser("import", help="import an OCI image layout directory, a `docker save` archive, or a "
                                        "root filesystem directory as a one-layer image")
    imp.add_argument("directory")
    imp.add_argument("reference", nargs="?", default="",
                     help="e.g. busybox:latest (an OCI layout's images are named by their ref.name annotations, "
                          "a docker archive's by their RepoTags: this names those without)")
    imp.add_argument("--entrypoint", default="", help="image ENTRYPOINT (a shell-quoted list)")
    imp.add_argument("--cmd", default="", help="image CMD (a shell-quoted list)")
    imp.add_argument("--env", action="append", default=[], help="NAME=value (repeatable)")
    imp.add_argument("--workdir", default="", help="image WorkingDir")
    imp.add_argument("--user", default="", help="image User (uid, name, uid:gid or name:group)")
    imp.set_defaults(handler=handle_import)
    tag = sub.add_parser("tag", help="give a stored image another name")
    tag.add_argument("source")
    tag.add_argument("target")
    tag.set_defaults(handler=handle_tag)
    ls = sub.add_parser("ls", help="list images")
    ls.set_defaults(handler=handle_ls)
    pull = sub.add_parser("pull", help="pull an image from its registry (or a mirror)")
    pull.add_argument("reference")
    add_registry_options(pull)
    pull.set_defaults(handler=handle_pull)
    inspect = sub.add_parser("inspect", help="an image's manifest digest, layers and config, as JSON")
    inspect.add_argument("reference")
    inspect.set_defaults(handler=handle_inspect)
    rm = sub.add_parser("rm", help="remove image names (their content goes with `prune`)")
    rm.add_argument("references", nargs="+")
    rm.set_defaults(handler=handle_rm)
    prune = sub.add_parser("prune", help="remove blobs and layers no image name reaches")
    prune.set_defaults(handler=handle_prune)
    export = sub.add_parser("export", help="write images to an OCI image layout directory")
    export.add_argument("directory", help="the layout to create (must not exist)")
    export.add_argument("references", nargs="+")
    export.set_defaults(handler=handle_export)


def handle_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sandbox.cli.common import layout
    from sandbox.images.pull import export_layout
    from sandbox.images.store import ImageStore

    export_layout(ImageStore(layout(args).images), list(args.references), Path(args.directory))
    print(f"exported {len(args.references)} image(s) to {args.directory}")
    return 0


class _PullLine(FastVerb):
    """`image pull REFERENCE [registry options]` read without argparse (fastargs.py: ~10 ms of a
    pull's start); any other image command, and `pull` with anything unusual, goes to argparse."""

    __slots__ = ()

    def read(self, argv: list[str], values: dict[str, Any], stop_at_positional: bool) -> int:
        if stop_at_positional or not argv or argv[0] != "pull":
            return -1
        at = super().read(argv[1:], values, stop_at_positional)
        return -1 if at < 0 else at + 1


def add_registry_options(p: Any) -> None:
    p.add_argument("--registry-config", default=None, metavar="DIR",
                   help="containerd-style hosts directory (<DIR>/<registry>/hosts.toml: mirrors, CAs); default "
                        "$SANDBOX_REGISTRY_CONFIG, else /etc/sandbox/certs.d")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                   help="allow plain HTTP to this registry (loopback registries need no flag)")
    p.add_argument("--registry-credentials", default=None, metavar="FILE",
                   help="a docker config.json with registry credentials (default $DOCKER_CONFIG/config.json, "
                        "else ~/.docker/config.json)")


def handle_pull(args: argparse.Namespace) -> int:
    import gc
    import sys
    import time

    # The cyclic collector finds nothing in a pull (its per-piece objects are bytes, freed by
    # their counts) yet ran 14-16 times in one, mostly while the pull's modules loaded: 3.2-3.8 ms
    # of a pull of a stored image (timed with gc.callbacks, loaded VM), 1 collection left with it
    # off from here. The command ends with the pull (os._exit).
    gc.disable()

    from sandbox.cli.common import image_name, layout
    from sandbox.images.options import from_args
    from sandbox.images.pull import client, pull
    from sandbox.images.store import ImageStore

    image_name(args.reference, "image")
    started = time.monotonic()
    image = pull(ImageStore(layout(args).images), args.reference, client(from_args(args)),
                 progress=progress_printer(sys.stderr))
    print(f"{image.name or args.reference} {image.digest} ({time.monotonic() - started:.1f}s)")
    return 0


def progress_printer(stream: Any) -> Any:
    """Per-layer bytes and rate: a rewritten line on a terminal, one line per finished blob
    otherwise."""
    import time

    tty = stream.isatty()
    started: dict[str, float] = {}

    def report(digest: str, done: int, total: int) -> None:
        now = time.monotonic()
        begin = started.setdefault(digest, now)
        if not tty and done < total:
            return  # a line per finished blob only: no formatting for each of a layer's ~150 pieces
        rate = done / (now - begin) / 1e6 if now > begin else 0.0
        line = f"{digest[7:19]}: {done / 1e6:.1f}/{total / 1e6:.1f} MB, {rate:.1f} MB/s"
        stream.write(f"\r{line}" + ("\n" if done >= total else "") if tty else f"{line}\n")
        stream.flush()

    return report


def handle_inspect(args: argparse.Namespace) -> int:
    import json

    from sandbox.cli.common import layout
    from sandbox.images.store import ImageStore

    store = ImageStore(layout(args).images)
    image = _lookup(store, args.reference)
    print(json.dumps({"name": image.name, "id": store.image_id(image.digest), "digest": image.digest,
                      "layers": [str(p) for p in image.layers],
                      "config": image.config.to_json()["config"]}, indent=2))
    return 0


def handle_rm(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout
    from sandbox.errors import ImageError
    from sandbox.images.store import ImageStore

    store = ImageStore(layout(args).images)
    for reference in args.references:
        try:
            print(f"untagged {reference} ({store.remove(reference)})")
        except ImageError:
            found = store.by_id(reference)  # an image ID: every name of that image, as crictl rmi
            if found is None:
                raise
            for name in found[1]:
                print(f"untagged {name} ({store.remove(name)})")
    return 0


def _lookup(store: Any, reference: str) -> Any:
    """The stored image `reference` names, by name or else by its ID (`image ls`'s IMAGE ID)."""
    from sandbox.errors import ImageError

    try:
        return store.lookup(reference)
    except ImageError:
        found = store.by_id(reference)
        if found is None:
            raise
        digest, names = found
        return store.lookup(f"{names[0].rpartition(':')[0]}@{digest}")


def handle_prune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sandbox.cli.common import layout
    from sandbox.images.lease import Collection
    from sandbox.images.store import ImageStore
    from sandbox.rmtree import rmtree
    from sandbox.rootfs.mounted import mounted_layers

    store = ImageStore(layout(args).images)
    # under the leases' exclusive lock: no runtime resolves an image meanwhile, so what is neither
    # mounted nor leased now is used by no one
    trash: list[Path] = []
    with Collection(store.root) as leases:
        removed = store.prune(mounted=mounted_layers(store), held=leases.held(), trash=trash)
    for directory in trash:  # the layers' files, deleted with no lookup waiting
        rmtree(directory, ignore_errors=True)
    for path in removed:
        print(f"removed {path}")
    return 0


def handle_import(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout
    from sandbox.images.store import Lease

    # a pull's lease: `image prune` meanwhile keeps the blobs and layers written before the name
    lease = Lease(layout(args).images, pulling=True)
    lease.begin()
    try:
        return _import(args)
    finally:
        lease.release()


def _import(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from sandbox.cli.common import image_name, layout
    from sandbox.images.store import ImageConfig, ImageStore

    source = Path(args.directory)
    if source.is_file():  # a `docker save` archive
        from sandbox.images.pull import import_docker_archive

        if args.reference:
            image_name(args.reference, "image name", digest=False)
        for image in import_docker_archive(ImageStore(layout(args).images), source, args.reference):
            print(f"{image.name} {image.digest}")
        return 0
    if (source / "oci-layout").is_file():
        from sandbox.images.pull import import_layout

        if args.reference:
            image_name(args.reference, "image name", digest=False)
        for image in import_layout(ImageStore(layout(args).images), source, args.reference):
            print(f"{image.name} {image.digest}")
        return 0
    if not args.reference:
        from sandbox.errors import UsageError

        raise UsageError("image import: a root filesystem directory needs an image name")
    image_name(args.reference, "image name", digest=False)
    config = ImageConfig(entrypoint=tuple(shlex.split(args.entrypoint)), cmd=tuple(shlex.split(args.cmd)),
                         env=tuple(args.env), working_dir=args.workdir, user=args.user)
    image = ImageStore(layout(args).images).import_directory(source, args.reference, config)
    print(f"{image.name} {image.digest}")
    return 0


def handle_tag(args: argparse.Namespace) -> int:
    from sandbox.cli.common import image_name, layout
    from sandbox.images.store import ImageStore

    image_name(args.source, "source image")
    target = image_name(args.target, "target image name", digest=False)
    store = ImageStore(layout(args).images)
    image = _lookup(store, args.source)
    store.tag(image.digest, target)
    return 0


def handle_ls(args: argparse.Namespace) -> int:
    from sandbox.cli.common import layout
    from sandbox.images.store import ImageStore

    store = ImageStore(layout(args).images)
    rows = [("IMAGE", "TAG", "IMAGE ID", "SIZE")]
    for name, digest in sorted(store.refs().items()):
        repository, _, tag = name.rpartition(":")
        image_id = store.image_id(digest) or digest  # crictl's: the config's digest, its first 13 digits
        rows.append((repository, tag, image_id.partition(":")[2][:13], _size(store, digest)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:  # crictl images' columns
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
    return 0


def _size(store: Any, digest: str) -> str:
    """The image's blobs, in crictl's units (1000-based, 3 significant digits)."""
    from sandbox.errors import ImageError

    try:
        if store.blob_path(digest).is_dir():
            return "-"  # a first-format image: no blobs to count
        manifest = store.read_json(digest)
        size = float(sum(int(d.get("size", 0)) for d in [manifest["config"], *manifest["layers"]]))
    except (ImageError, KeyError, TypeError, ValueError):
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.3g}{unit}"
        size /= 1000
    return f"{size:.3g}TB"


# `sandbox image pull`'s table (sandbox/cli/__init__.py FAST_VERBS), in step with add_parser's
# pull and add_registry_options (tests/unit/test_cli_fastargs.py compares them)
FAST = _PullLine("image", {
    "--registry-config": ("registry_config", VALUE, None),
    "--insecure-registry": ("insecure_registry", APPEND, None),
    "--registry-credentials": ("registry_credentials", VALUE, None),
}, {"image_verb": "pull", "registry_config": None, "insecure_registry": [], "registry_credentials": None,
    "handler": handle_pull}, positionals=("reference",))
